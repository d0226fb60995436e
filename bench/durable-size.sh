#!/usr/bin/env bash
# bench/durable-size.sh: start-up time and disk use of servers that keep messages on
# disk (issue 13's figures), beuss against Redis (AOF, everysec) and beanstalkd (-b).
#
#   - held: a fresh server on a fresh data directory, HELD x 32-byte messages put
#     (beuss-bench -c 8 -P 64 -t fill, left in queue bench-0), stopped with SIGTERM,
#     started again on the same directory: the seconds from the start to the first
#     answered ping, the messages found after it, and `du -sb` of the directory
#     (before the restart and after it);
#   - cycles: a fresh server, LIVE messages of 32 bytes left in queue "live", then
#     CYCLES put/take cycles on another queue (beuss-bench -c 8 -P 64 --window WINDOW:
#     at most WINDOW of them held at a time) and `du -sb` of the directory with only
#     the LIVE messages left (right after, and after a SIGTERM), and its ratio to the
#     live bytes (LIVE x 32). beuss runs put/lease+ack (-t leasecycle) and put/get
#     (-t cycle); Redis LPUSH/RPOP (its Streams keep acknowledged entries, so XACK is
#     no cycle); beanstalkd put, reserve + delete, BEAN_CYCLES of them (it is slower).
#
# beuss runs with BDATADIR and BFSYNC=$SIZE_FSYNC (default 1000). A build that ignores
# BDATADIR (before durability) is detected and its rows skipped.
#
# Usage (about 2 minutes with the defaults; compare.sh runs it with CYCLES=10000000):
#   bash bench/durable-size.sh
#   CYCLES=10000000 OUT=/tmp/size bash bench/durable-size.sh
#   PEERS=beuss HELD=100000 bash bench/durable-size.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/beuss-durable-size}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
BIN=$CARGO_TARGET_DIR/release
HELD=${HELD:-1000000}
CYCLES=${CYCLES:-1000000}
BEAN_CYCLES=${BEAN_CYCLES:-$((CYCLES / 10))}
LIVE=${LIVE:-1000}
WINDOW=${WINDOW:-10000}
PEERS=${PEERS:-beuss redis beanstalkd}
SIZE_FSYNC=${SIZE_FSYNC:-1000}
# compare.sh has built already.
BUILD=${BUILD:-1}
DATA=32

mkdir -p "$OUT"
log() { echo "durable-size: $*" >&2; }

PIDS=()
DTMP=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    if [[ -n $DTMP ]]; then rm -rf "$DTMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/ports.sh
source bench/ports.sh
# shellcheck source=bench/durable-servers.sh
source bench/durable-servers.sh

if ((BUILD)); then
    log "building beuss (release)"
    cargo build --release --quiet --features bench --bin beuss-server --bin beuss-bench --bin beuss
fi
DTMP=$(mktemp -d -t beuss-durable-size.XXXXXX)

# held.csv: config,held,fill_s,disk_bytes,stop_s,start_s,found,disk_after_restart_bytes
HELD_CSV=$OUT/durable-held.csv
# cycles.csv: config,test,cycles,live,run_s,disk_bytes,disk_after_stop_bytes,live_bytes
CYCLES_CSV=$OUT/durable-cycles.csv
rm -f "$HELD_CSV" "$CYCLES_CSV"

disk() { du -sb "$1" | awk '{print $1}'; }

BEUSS_CONFIG=beuss-$SIZE_FSYNC
configs=()
for peer in $PEERS; do
    case $peer in
    beuss)
        if beuss_durable "$DTMP"; then
            configs+=("$BEUSS_CONFIG")
        else
            log "beuss: durability not supported by this build; skipping"
            echo "$BEUSS_CONFIG,skipped" >>"$HELD_CSV"
            echo "$BEUSS_CONFIG,skipped" >>"$CYCLES_CSV"
        fi
        ;;
    redis) configs+=(redis-everysec) ;;
    beanstalkd) configs+=(beanstalkd-default) ;;
    *) log "unknown peer $peer" && exit 2 ;;
    esac
done

for config in "${configs[@]}"; do
    target=$(target_of "$config")
    dir=$DTMP/$config-held
    log "held: $config, $HELD x $DATA bytes"
    start_durable "$config" "$dir"
    t0=$(date +%s%N)
    "$BIN/beuss-bench" -h 127.0.0.1 -p "$PORT" --target "$target" -d "$DATA" -c 8 -P 64 \
        -n "$HELD" -t fill --timeout 60 >>"$OUT/durable-size.log" 2>&1
    fill=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    before=$(disk "$dir")
    stop_server "$PID"
    stopped=$STOP_SECONDS
    t0=$(date +%s%N)
    start_durable "$config" "$dir"
    wait_ping "$PORT" "$target" "$t0"
    found=$(held_count "$config" "$PORT")
    after=$(disk "$dir")
    log "held: $config: start-up $UP_SECONDS s, $found messages found, $before bytes on disk"
    if [[ $found != "$HELD" ]]; then
        log "WARNING: $config: $found of $HELD messages came back after the restart"
    fi
    echo "$config,$HELD,$fill,$before,$stopped,$UP_SECONDS,$found,$after" >>"$HELD_CSV"
    stop_server "$PID"
    rm -rf "$dir"
done

for config in "${configs[@]}"; do
    target=$(target_of "$config")
    case $config in
    beuss*) tests="leasecycle cycle" n=$CYCLES ;;
    redis*) tests=cycle n=$CYCLES ;;
    beanstalkd*) tests=cycle n=$BEAN_CYCLES ;;
    esac
    for test in $tests; do
        dir=$DTMP/$config-$test
        log "cycles: $config, $LIVE live, $n $test cycles (window $WINDOW)"
        start_durable "$config" "$dir"
        put_live "$config" "$PORT" "$LIVE"
        t0=$(date +%s%N)
        "$BIN/beuss-bench" -h 127.0.0.1 -p "$PORT" --target "$target" -d "$DATA" -c 8 -P 64 \
            -n "$n" --window "$WINDOW" -t "$test" --timeout 60 >>"$OUT/durable-size.log" 2>&1
        run=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
        running=$(disk "$dir")
        stop_server "$PID"
        stopped=$(disk "$dir")
        log "cycles: $config $test: $running bytes on disk ($stopped after SIGTERM) in $run s"
        echo "$config,$test,$n,$LIVE,$run,$running,$stopped,$((LIVE * DATA))" >>"$CYCLES_CSV"
        rm -rf "$dir"
    done
done

{
    echo "| Server | Messages held | Fill (s) | Disk (bytes) | Bytes per message | Stop after SIGTERM (s) | Start to first ping (s) | Found after restart | Disk after restart (bytes) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F, '$2 == "skipped" { print "| " $1 " | (beuss figures: pending the server change) | | | | | | | |"; next }
        { printf "| %s | %s | %s | %s | %.1f | %s | %s | %s | %s |\n", $1, $2, $3, $4, $4 / $2, $5, $6, $7, $8 }' "$HELD_CSV"
    echo
    echo "| Server | Cycles | Live messages | Run (s) | Disk right after (bytes) | Disk after SIGTERM (bytes) | Live bytes | Disk / live |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    awk -F, '$2 == "skipped" { print "| " $1 " | (beuss figures: pending the server change) | | | | | | |"; next }
        { printf "| %s | %s %s | %s | %s | %s | %s | %s | %.1f |\n", $1, $3, $2, $4, $5, $6, $7, $8, $6 / $8 }' "$CYCLES_CSV"
} >"$OUT/durable-size.md"
cat "$OUT/durable-size.md"
