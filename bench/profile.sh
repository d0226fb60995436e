#!/usr/bin/env bash
# bench/profile.sh: where beuss-server spends its time under a fixed load.
#
# For each load (pipelined: -c 8 -P 64; unpipelined: -c 50 -P 1; 32-byte messages,
# put then get) it records, on a server of its own:
#   1. system calls per request (perf stat on the syscall tracepoints);
#   2. where the CPU time goes, kernel included (perf record -e cpu-clock: a software
#      clock, since this VM exposes no hardware counters: `perf stat -e instructions`
#      says <not supported>);
#   3. user-space instructions per function (valgrind --tool=callgrind), the exact
#      and repeatable view of the server's own code.
# Results go to $OUT (default /tmp/beuss-profile); a summary is printed. Not run by CI.
# Needs perf (Debian: linux-perf) and valgrind; installs valgrind if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/beuss-profile}
# A build of its own with line tables, so that profiles name files and lines.
export CARGO_TARGET_DIR=${PROFILE_TARGET_DIR:-/tmp/target-bench-prof}
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
export CARGO_PROFILE_RELEASE_STRIP=none
BIN=$CARGO_TARGET_DIR/release
mkdir -p "$OUT"
rm -f "$OUT/summary.txt.new"
log() { echo "profile: $*" >&2; }

PID=""
stop() {
    if [[ -n $PID ]]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=""
    fi
}
trap stop EXIT
trap 'exit 130' INT TERM

if ! command -v valgrind >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq valgrind >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
fi
command -v perf >/dev/null || { log "perf is missing (Debian: linux-perf)"; exit 1; }

log "building (release, line tables)"
cargo build --release --quiet --features bench --bin beuss-server --bin beuss-bench

# shellcheck source=bench/ports.sh
source bench/ports.sh
PORT=$(free_port)
server() { # command prefix...
    BHOST=127.0.0.1 BPORT=$PORT BQUEUEIDLE=0 RUST_LOG=warn "$@" "$BIN/beuss-server" \
        >>"$OUT/server.log" 2>&1 &
    PID=$!
    wait_port "$PORT" 20 # valgrind starts slowly
}
load() { # c P n
    "$BIN/beuss-bench" -h 127.0.0.1 -p "$PORT" -c "$1" -P "$2" -d 32 -n "$3" -t putget \
        >>"$OUT/load.log"
}

SYSCALLS="raw_syscalls:sys_enter,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,\
syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_read,\
syscalls:sys_enter_write"

for shape in "8 64 1000000" "50 1 200000"; do
    read -r c p n <<<"$shape"
    name="c$c-P$p"
    requests=$((2 * n))
    log "$name: system calls"
    server
    perf stat -x, -e "$SYSCALLS" -p "$PID" -o "$OUT/syscalls-$name.csv" &
    stat_pid=$!
    sleep 0.2
    load "$c" "$p" "$n"
    kill -INT "$stat_pid"
    wait "$stat_pid" || true
    stop

    log "$name: perf record (cpu-clock)"
    server
    perf record -q -e cpu-clock -F 4999 -g -p "$PID" -o "$OUT/perf-$name.data" 2>/dev/null &
    rec_pid=$!
    sleep 0.2
    load "$c" "$p" "$n"
    kill -INT "$rec_pid"
    wait "$rec_pid" || true
    stop
    perf report -i "$OUT/perf-$name.data" --stdio --no-children --sort dso \
        2>/dev/null >"$OUT/perf-$name-dso.txt"
    perf report -i "$OUT/perf-$name.data" --stdio --no-children --sort sym -g none \
        --percent-limit 1 2>/dev/null >"$OUT/perf-$name-sym.txt"

    log "$name: callgrind (slow: a tenth of the load)"
    server valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$name.out"
    load "$c" "$p" $((n / 10))
    stop
    callgrind_annotate --inclusive=no "$OUT/callgrind-$name.out" \
        >"$OUT/callgrind-$name-self.txt" 2>/dev/null
    callgrind_annotate --inclusive=yes "$OUT/callgrind-$name.out" \
        >"$OUT/callgrind-$name-inclusive.txt" 2>/dev/null

    {
        echo "== $name: $requests requests (put then get), system calls per request"
        awk -F, -v r="$requests" '$1 ~ /^[0-9]+$/ { printf "  %-32s %10d  %6.3f per request\n", $3, $1, $1 / r }' \
            "$OUT/syscalls-$name.csv"
        echo "== $name: CPU time by binary (perf, cpu-clock)"
        grep -E '^ +[0-9]' "$OUT/perf-$name-dso.txt" | sed -n 1,6p
        echo "== $name: hottest symbols, kernel included (perf, cpu-clock)"
        grep -E '^ +[0-9]' "$OUT/perf-$name-sym.txt" | sed -n 1,20p
        echo "== $name: user-space instructions by function (callgrind, self)"
        grep -E '^ *[0-9,]+ ' "$OUT/callgrind-$name-self.txt" | sed -n 1,25p
        echo
    } >>"$OUT/summary.txt.new"
done
mv "$OUT/summary.txt.new" "$OUT/summary.txt"
cat "$OUT/summary.txt"
