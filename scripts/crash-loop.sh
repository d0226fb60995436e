#!/usr/bin/env bash
# Runs the SIGKILL-under-load tests of tests/durable.rs (sigkill_under_load_fsync_always
# and sigkill_under_load_fsync_default) for many more rounds than `cargo test` does:
# RUNS runs of ROUNDS kill/restart rounds each, every run with its own seed. Stops at
# the first failure and prints the command that replays it.
#
#   bash scripts/crash-loop.sh                 20 runs x 200 rounds, seeds from the clock
#   bash scripts/crash-loop.sh RUNS ROUNDS     e.g. 100 500
#   BEUSS_TEST_SEED=N bash scripts/crash-loop.sh 1 50   one run with seed N
#
# Each round kills a loaded server at a random moment and restarts it on the same
# temporary directory; a round takes about 50 ms and the two tests run side by side,
# so 20 runs x 200 rounds take about 4 minutes. Servers and directories are the
# test's own (the directory is removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
ROUNDS=${2:-200}
FIRST=${BEUSS_TEST_SEED:-$(date +%s)}
cargo test --test durable --no-run --quiet
for ((i = 0; i < RUNS; i++)); do
    seed=$((FIRST + i))
    started=$(date +%s)
    status=0
    out=$(BEUSS_TEST_SEED=$seed BEUSS_CRASH_ROUNDS=$ROUNDS \
        cargo test --quiet --test durable sigkill_under_load -- --nocapture 2>&1) || status=$?
    grep -oE "BFSYNC=[a-z0-9]+: [0-9]+ rounds.*" <<<"$out" || true
    if ((status != 0)); then
        tail -n 40 <<<"$out"
        echo "crash-loop: run $((i + 1)) failed; replay with:" >&2
        echo "  BEUSS_TEST_SEED=$seed BEUSS_CRASH_ROUNDS=$ROUNDS cargo test --test durable sigkill_under_load -- --nocapture" >&2
        exit 1
    fi
    echo "crash-loop: run $((i + 1))/$RUNS (seed $seed, $ROUNDS rounds) passed in $(($(date +%s) - started)) s"
done
echo "crash-loop: $RUNS runs x $ROUNDS rounds x 2 policies passed"
