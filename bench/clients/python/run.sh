#!/usr/bin/env bash
# Runs bench.py in a venv of its own with redis-py and the beuss client installed
# (bench dependencies stay here, never in the client package). Arguments go to bench.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${BEUSS_BENCH_VENV:-$here/.venv}"
if [ -z "${BEUSS_SERVER:-}" ] && [ ! -x "$repo/target/release/beuss-server" ]; then
  (cd "$repo" && cargo build --quiet --release --bin beuss-server)
fi
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --force-reinstall --no-deps "$repo/clients/python"
exec "$venv/bin/python" "$here/bench.py" "$@"
