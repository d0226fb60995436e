#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (FUZZING.md) one after the other, each with one
# libFuzzer worker at nice 10, and prints per target: executions, execs/s, coverage
# (libFuzzer's cov and ft), time, and resident memory (after the first pulse and at the
# peak: a leak shows as growth). Exits non-zero if any target crashes, hangs (a unit
# over -timeout), or passes the RSS limit; the input that did it is in
# fuzz/artifacts/TARGET/, and `bash scripts/fuzz.sh --replay TARGET FILE` replays it.
#
#   bash scripts/fuzz.sh                      every target for 60 s
#   bash scripts/fuzz.sh --time 600           every target for 600 s
#   bash scripts/fuzz.sh --runs 10000000      every target for 10M executions
#   bash scripts/fuzz.sh --time 30 store_ops  one target
#   bash scripts/fuzz.sh --ci                 what CI runs: installs the nightly
#                                             toolchain and cargo-fuzz if missing,
#                                             then every target for 30 s
#   bash scripts/fuzz.sh --replay TARGET FILE runs one input, with its backtrace
#
# The corpus grows in fuzz/corpus/TARGET/ (not in git) and is reused by the next run.
# Needs the nightly toolchain (`rustup toolchain install nightly --profile minimal`)
# and cargo-fuzz (`cargo install cargo-fuzz --locked`); --ci installs both.
set -euo pipefail
CALLER_DIR=$PWD
cd "$(dirname "$0")/../fuzz"

TARGETS_ALL=(decode_request decode_response store_ops cron_spec)
MODE="time"
AMOUNT=60
CI=false
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) MODE="time" AMOUNT=$2; shift 2 ;;
        --runs) MODE=runs AMOUNT=$2; shift 2 ;;
        --ci) CI=true MODE="time" AMOUNT=30; shift ;;
        --replay)
            [ $# -eq 3 ] || { echo "usage: $0 --replay TARGET FILE" >&2; exit 2; }
            # Under the same build as the runs (no sanitizer), so it reproduces.
            case "$3" in /*) input=$3 ;; *) input=$CALLER_DIR/$3 ;; esac
            RUST_BACKTRACE=1 exec cargo +nightly fuzz run --sanitizer none "$2" "$input"
            ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${TARGETS_ALL[@]}")

if $CI; then
    export CARGO_TERM_COLOR=never
    rustup run nightly rustc --version >/dev/null 2>&1 \
        || rustup toolchain install nightly --profile minimal
    cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
fi

# Inputs up to 4 KiB: several frames, or a few hundred store operations. RSS limit:
# the targets keep at most a few MB per input, so 512 MB is growth, not work.
MAX_LEN=${FUZZ_MAX_LEN:-4096}
RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-512}
# No sanitizer: the code under test has no `unsafe` (the codec and the store), and
# AddressSanitizer would halve the executions per second. Debug assertions and
# overflow checks stay on (cargo-fuzz's default).
nice -n 10 cargo +nightly fuzz build --sanitizer none
HOST=$(rustc +nightly -vV | sed -n 's/^host: //p')
BIN_DIR=$PWD/target/$HOST/release
FUZZ_DIR=$PWD
LOG_ROOT=$PWD/target/fuzz-logs

case "$MODE" in
    time) LIMIT=(-max_total_time="$AMOUNT") ;;
    runs) LIMIT=(-runs="$AMOUNT") ;;
esac

failed=0
rows=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "$LOG_ROOT/$t"
    rm -f "$LOG_ROOT/$t"/fuzz-*.log
    start=$(date +%s)
    # -jobs=1 -workers=1: one worker process, its output in fuzz-0.log of its
    # working directory.
    status=0
    (cd "$LOG_ROOT/$t" && nice -n 10 "$BIN_DIR/$t" -jobs=1 -workers=1 "${LIMIT[@]}" \
        -max_len="$MAX_LEN" -rss_limit_mb="$RSS_LIMIT_MB" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$FUZZ_DIR/artifacts/$t/" \
        "$FUZZ_DIR/corpus/$t" >/dev/null 2>&1) || status=$?
    secs=$(($(date +%s) - start))
    log=$LOG_ROOT/$t/fuzz-0.log
    [ -f "$log" ] || : >"$log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    first_rss=$(grep -E '^#[0-9]+.*pulse' "$log" | head -1 | sed -n 's/.* rss: \([0-9]*\)Mb.*/\1/p' || true)
    verdict=ok
    if [ "$status" -ne 0 ] || grep -qE '^(==[0-9]+== ?ERROR|SUMMARY: libFuzzer)' "$log"; then
        verdict=FAILED
        failed=1
        echo "== $t FAILED (exit $status); from $log:" >&2
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' -A2 "$log" | head -20 >&2 || true
    fi
    rows+=("$(printf '%-16s %12s %10s %6s %7s %6s %10s %9s  %s' "$t" "${execs:-?}" \
        "${rate:-?}" "${cov:-?}" "${ft:-?}" "${secs}s" "${first_rss:-?}MB" "${peak:-?}MB" "$verdict")")
done

printf '%-16s %12s %10s %6s %7s %6s %10s %9s  %s\n' target execs execs/s cov ft time \
    "rss@pulse" "rss peak" result
printf '%s\n' "${rows[@]}"
exit "$failed"
