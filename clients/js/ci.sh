#!/usr/bin/env bash
# CI for the TypeScript/JavaScript client: installs its dev tools (npm ci), type-checks
# and builds with tsc (ESM + CJS), then runs the unit and integration tests with
# node --test on the built output. Run from anywhere: `bash clients/js/ci.sh`.
# The integration tests use $BEUSS_SERVER, default <repo>/target/debug/beuss-server,
# which this script first brings up to date with cargo.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "clients/js: node and npm are required (Node >= 18)" >&2
  exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 18 ]; then
  echo "clients/js: Node >= 18 required, found $(node --version)" >&2
  exit 1
fi

# Without $BEUSS_SERVER, the checkout's own debug build, brought up to date (a no-op
# when it is), so that a stale binary from an older checkout is never tested.
if [ -z "${BEUSS_SERVER:-}" ]; then
  (cd "$repo" && cargo build --quiet --bin beuss-server)
  export BEUSS_SERVER="$repo/target/debug/beuss-server"
fi

cd "$here"
npm ci --no-audit --no-fund --loglevel=error </dev/null
npm run --silent build </dev/null
npm test </dev/null
