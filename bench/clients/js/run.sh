#!/usr/bin/env bash
# Runs the JS client benchmark: builds the client, installs the bench-only dependencies
# (ioredis and the local client, never in the client's own package), then bench.mjs.
# Environment: N, WINDOW, ROUNDS, BEUSS_SERVER, REDIS_SERVER (see bench.mjs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
client="$here/../../../clients/js"
if ! command -v redis-server >/dev/null 2>&1 && [ -z "${REDIS_SERVER:-}" ]; then
  apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null
fi
(cd "$client" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build) </dev/null
cd "$here"
npm ci --no-audit --no-fund --loglevel=error </dev/null
node bench.mjs
