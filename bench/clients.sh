#!/usr/bin/env bash
# The three clients of clients/ against their language's Redis client, one after the
# other on one release server build: Python (redis-py pipeline), TypeScript (ioredis
# pipeline), Go (go-redis pipeline). Each bench starts and ends its own redis-server
# and beuss-server on free loopback ports and prints one `client=...` line per figure,
# per round and as a median with min and max; this script keeps those lines and ends
# with the beuss/Redis ratios. ROUNDS (default 5) sets the rounds of each.
#
#   bash bench/clients.sh            # about 3 minutes on 2 cores
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${ROUNDS:-5}"
(cd "$repo" && cargo build --quiet --release --bin beuss-server)
export BEUSS_SERVER="$repo/target/release/beuss-server"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $rounds rounds each"
bash "$repo/bench/clients/python/run.sh" --rounds "$rounds" | tee -a "$out"
ROUNDS="$rounds" bash "$repo/bench/clients/js/run.sh" | tee -a "$out"
bash "$repo/bench/clients/go/run.sh" -rounds "$rounds" | tee -a "$out"
echo "# ratios (beuss client / Redis client of the same language, medians):"
grep -E 'beuss_vs_redis|ratio_beuss_over' "$out"
