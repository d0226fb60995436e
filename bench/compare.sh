#!/usr/bin/env bash
# bench/compare.sh: beuss against Redis and beanstalkd on this machine, in one run.
#
# Installs redis-server, redis-tools and beanstalkd with apt-get if they are missing,
# builds beuss in release mode, starts each server on a free loopback port and runs
# the same workloads on all of them:
#   - throughput, three shapes (-c 8 -P 64, -c 50 -P 1, -c 1 -P 1), 32-byte messages:
#     beuss-bench -t putget on beuss, redis-benchmark -t lpush / -t rpop on Redis,
#     beuss-bench --target beanstalkd -t putget (put, reserve + delete) on beanstalkd;
#     ROUNDS rounds, interleaved (peers in a different order each round), the
#     median is reported;
#   - leased delivery, -c 8 -P 64 and -c 50 -P 1: beuss-bench -t lease on all three
#     (beuss LEASE + ACK, Redis Streams XADD then XREADGROUP + XACK in a consumer
#     group, beanstalkd reserve + delete), with beuss's plain GET rate measured in the
#     same step for the leased/plain ratio; ROUNDS rounds, interleaved, medians;
#   - delivery latency to a consumer parked in a waiting GET (BRPOP, reserve), and the
#     paced round trip that is its floor on this machine;
#   - RSS with 1,000,000 messages of 32 bytes held in one queue / list (fresh servers);
#   - RSS per connection with 10,000 idle connections (fresh servers);
#   - durability: PUT+GET throughput (beuss-bench -t putget, -c 50 -P 1 and
#     -c 8 -P 64) with messages kept on disk: beuss BDATADIR with BFSYNC=always and
#     BFSYNC=1000, Redis --appendonly yes with --appendfsync always and everysec,
#     beanstalkd -b with -f 0 and its default (-f 50), and beuss in memory as the
#     reference; a fresh server on a fresh data directory (under one mktemp -d,
#     removed on exit) for every step, ROUNDS rounds interleaved, medians and
#     min-max; this disk's fdatasync latency (bench/fsync-probe.py); then
#     bench/durable-size.sh (start-up time and disk use with 1,000,000 messages held,
#     disk use after CYCLES put/take cycles with 1,000 live). A beuss build that
#     ignores BDATADIR is detected (a message put, SIGTERM, restart, gone) and its
#     durable rows are skipped.
#   - fan-out (issue 9, bench/fanout.sh): live fan-out to 10 subscribers against
#     NATS core and Redis PUBLISH, request/reply against NATS, publish into 10
#     bound queues drained by GET or LEASE + ACK against Redis MULTI/LPUSH/EXEC
#     with BLMPOP, the memory of one publish to 100 queues against 100 PUTs, and an
#     A/B of plain PUT/GET against beuss-server at AB_BASE (230f9cc, before
#     fan-out); installs nats-server with apt-get if missing.
# Prints one table with each figure and the ratio beuss/peer, and keeps the raw
# figures in $OUT. Every server it starts is stopped on exit (by pid).
#
# Not run by CI: it takes a few minutes. Usage:
#   bash bench/compare.sh                 # ROUNDS=5, results in /tmp/beuss-compare
#   ROUNDS=1 OUT=/tmp/cmp bash bench/compare.sh
#   QUIET_WAIT=600 bash bench/compare.sh  # on a shared machine: wait longer for quiet
#   bash bench/compare.sh --table         # print the table again from $OUT
#   LEASE_ONLY=1 bash bench/compare.sh    # only the leased-delivery rows
#   DURABLE_ONLY=1 bash bench/compare.sh  # only the durability rows (CYCLES=1000000
#                                         # unless set; the full run uses 10000000)
#   FANOUT_ONLY=1 bash bench/compare.sh   # only the fan-out rows; AB_BASE=none skips
#                                         # their A/B against an older server
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
OUT=${OUT:-/tmp/beuss-compare}
# Before each step, wait up to QUIET_WAIT seconds for other processes to use at most
# BUSY_LIMIT % of the CPU (on 2 cores a parallel build halves every figure); a step
# measured anyway is named under the table.
QUIET_WAIT=${QUIET_WAIT:-45}
BUSY_LIMIT=${BUSY_LIMIT:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
BIN=$CARGO_TARGET_DIR/release
DATA=32
IDLE=10000
# clients pipeline requests requests-for-beanstalkd (it is 10-30x slower; fewer
# requests keep each phase near the same duration)
SHAPES=("8 64 3000000 200000" "50 1 300000 100000" "1 1 100000 50000")
# The same for leased delivery (requests for beuss and Redis, then for beanstalkd).
LEASE_SHAPES=("8 64 2000000 200000" "50 1 300000 100000")
LEASE_ONLY=${LEASE_ONLY:-}
# Durable PUT+GET: c P, then requests for beuss and Redis syncing on an interval (and
# beuss in memory), for the fsync-always modes of beuss and Redis, for beanstalkd
# with its default sync and for beanstalkd -f 0 (a sync per write, no group commit).
DURABLE_SHAPES=("50 1 300000 20000 100000 10000" "8 64 2000000 100000 200000 10000")
DURABLE_CONFIGS=(beuss-always beuss-1000 beuss-memory redis-always redis-everysec
    beanstalkd-f0 beanstalkd-default)
DURABLE_ONLY=${DURABLE_ONLY:-}
FANOUT_ONLY=${FANOUT_ONLY:-}

mkdir -p "$OUT"
log() { echo "compare: $*" >&2; }

# --- servers: started here, stopped on exit -------------------------------------
PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
# Data directories of the durability steps, all under one mktemp -d.
DTMP=""
cleanup() {
    stop_all
    if [[ -n $DTMP ]]; then rm -rf "$DTMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "failed (line $LINENO); last lines of $OUT/progress.log:"; tail -3 "$OUT/progress.log" >&2 || true' ERR

# shellcheck source=bench/ports.sh
source bench/ports.sh
# shellcheck source=bench/durable-servers.sh
source bench/durable-servers.sh
# shellcheck source=bench/fanout.sh
source bench/fanout.sh

# start KIND [BINARY]: starts a fresh server, sets PORT and PID. For beuss, BINARY
# replaces this build's beuss-server, and BEUSS_ENV (words NAME=VALUE) adds to its
# environment.
start() {
    PORT=$(free_port)
    case $1 in
    beuss)
        # shellcheck disable=SC2086 # BEUSS_ENV is a list of words
        env BHOST=127.0.0.1 BPORT="$PORT" BQUEUEIDLE=0 BMAXCONNECTIONS=$((IDLE + 100)) \
            RUST_LOG=warn ${BEUSS_ENV:-} "${2:-$BIN/beuss-server}" >>"$OUT/beuss-server.log" 2>&1 &
        ;;
    nats)
        nats-server -a 127.0.0.1 -p "$PORT" >>"$OUT/nats-server.log" 2>&1 &
        ;;
    redis)
        redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
            --daemonize no --maxclients $((IDLE + 100)) >>"$OUT/redis-server.log" 2>&1 &
        ;;
    beanstalkd)
        beanstalkd -l 127.0.0.1 -p "$PORT" >>"$OUT/beanstalkd.log" 2>&1 &
        ;;
    esac
    PID=$!
    PIDS+=("$PID")
    wait_port "$PORT"
}

# --- the machine must be quiet: other work on 2 cores skews everything -------------
# Ticks busy (user, nice, system, irq, softirq: processes are charged their softirq
# work too, e.g. loopback TCP) and ticks in all, steal included.
cpu_sample() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
busy_pct() {
    local b1 t1 b2 t2
    read -r b1 t1 < <(cpu_sample)
    sleep 1
    read -r b2 t2 < <(cpu_sample)
    echo $((100 * (b2 - b1) / (t2 - t1 + 1)))
}
NOISY=""
wait_quiet() {
    local busy _
    for _ in $(seq "$QUIET_WAIT"); do
        busy=$(busy_pct)
        ((busy <= BUSY_LIMIT)) && return 0
        log "machine busy ($busy% CPU used by other processes); waiting"
    done
    log "WARNING: still busy ($busy%); measuring anyway"
    NOISY+=" $1($busy%)"
}

server_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# step SERVER_PID NAME COMMAND...: runs COMMAND (output to $STEP) and checks that no
# other process took more than BUSY_LIMIT % of the machine meanwhile: busy CPU time
# (/proc/stat) less the server's and the command's own. Else it waits for quiet and
# measures again, up to 3 times; a step still disturbed is named under the table.
STEP=$OUT/step.out
step() {
    local pid=$1 name=$2 try others b1 t1 b2 t2 s1 s2
    shift 2
    for try in 1 2 3; do
        wait_quiet "$name"
        read -r b1 t1 < <(cpu_sample)
        s1=$(server_ticks "$pid")
        { TIMEFORMAT='%U %S'; time "$@" >"$STEP"; } 2>"$OUT/step-time.tmp"
        read -r b2 t2 < <(cpu_sample)
        s2=$(server_ticks "$pid")
        others=$(awk -v b=$((b2 - b1)) -v t=$((t2 - t1)) -v s=$((s2 - s1)) \
            -v own="$(tail -1 "$OUT/step-time.tmp")" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { split(own, x, " "); c = (x[1] + x[2]) * hz; o = 100 * (b - s - c) / (t + 1)
                     printf "%d", o < 0 ? 0 : o }')
        ((others <= BUSY_LIMIT)) && return 0
        log "$name: other processes took $others% of the CPU meanwhile (try $try)"
    done
    NOISY+=" $name($others%)"
}

# --- measuring -----------------------------------------------------------------------
bench() { "$BIN/beuss-bench" -h 127.0.0.1 -d "$DATA" --csv "$@" 2>>"$OUT/progress.log"; }

# raw.csv: round,shape,peer,op,rps,p50_us,p99_us,client_cpu_pct,server_cpu_pct
RAW=$OUT/raw.csv
# latency.csv: peer,test,p50_us,p99_us,p999_us,max_us,parked_pct (one line per round)
LAT=$OUT/latency.csv
# memory.csv: peer,fill|idle,rss_before_kib,rss_after_kib,bytes_each
MEM=$OUT/memory.csv
# beuss-bench CSV -> raw rows.
from_bench() {
    awk -F, -v r="$1" -v s="$2" -v peer="$3" 'NR > 1 {
        op = ($2 == "PUT") ? "put" : "get"
        print r "," s "," peer "," op "," $8 "," $9 "," $10 "," $13 "," $14 }'
}

# beuss-bench CSV of -t get,lease / -t lease -> raw rows, ops "plainget" and "lease"
# (apart from the put/get rows of the throughput shapes).
from_lease() {
    awk -F, -v r="$1" -v s="$2" -v peer="$3" 'NR > 1 && ($2 == "GET" || $2 == "LEASE") {
        op = ($2 == "LEASE") ? "lease" : "plainget"
        print r "," s "," peer "," op "," $8 "," $9 "," $10 "," $13 "," $14 }'
}

# leased ROUND KEY c P n n-for-beanstalkd PEER: one peer's leased (and for beuss,
# plain GET) figures.
leased() {
    local round=$1 key=$2 c=$3 p=$4 n=$5 nb=$6 port pid tests=lease
    case $7 in
    beuss) port=$BEUSS_PORT pid=$BEUSS_PID tests=get,lease ;;
    redis) port=$REDIS_PORT pid=$REDIS_PID ;;
    beanstalkd) port=$BEAN_PORT pid=$BEAN_PID n=$nb ;;
    esac
    step "$pid" "lease$round/$key/$7" bench -p "$port" --target "$7" \
        --server-pid "$pid" -c "$c" -P "$p" -n "$n" -t "$tests"
    from_lease "$round" "$key" "$7" <"$STEP" >>"$RAW"
}

# One redis-benchmark test, with the client's and the server's CPU.
redis_benchmark() { # round shape c P n test op
    local t0 t1 times out held
    # Each try starts from the same list: empty for LPUSH, n elements for RPOP.
    if [[ $6 == lpush ]]; then
        redis-cli -p "$REDIS_PORT" del mylist >/dev/null
    else
        held=$(redis-cli -p "$REDIS_PORT" llen mylist)
        if ((held < $5)); then
            redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$3" -P "$4" -d "$DATA" \
                -n $(($5 - held)) -t lpush -q >/dev/null
        fi
    fi
    t0=$(server_ticks "$REDIS_PID")
    out=$( { TIMEFORMAT='%U %S %R'; time redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" \
        -c "$3" -P "$4" -d "$DATA" -n "$5" -t "$6" --csv; } 2>"$OUT/time.tmp")
    times=$(tail -1 "$OUT/time.tmp")
    t1=$(server_ticks "$REDIS_PID")
    echo "$out" >>"$OUT/redis-benchmark.csv"
    echo "$out" | awk -F'"' -v r="$1" -v s="$2" -v op="$7" -v t="$times" \
        -v st=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '$2 != "test" && NF > 2 {
        split(t, x, " "); wall = x[3]; rps = $4
        printf "%s,%s,redis,%s,%.0f,%.1f,%.1f,%.0f,%.0f\n", r, s, op, rps, $10 * 1000,
            $14 * 1000, 100 * (x[1] + x[2]) / wall, 100 * st / hz / wall }'
}

# throughput ROUND KEY c P n n-for-beanstalkd PEER: one peer's put and get figures.
throughput() {
    local round=$1 key=$2 c=$3 p=$4 n=$5 nb=$6
    case $7 in
    beuss)
        step "$BEUSS_PID" "round$round/$key/beuss" bench -p "$BEUSS_PORT" \
            --server-pid "$BEUSS_PID" -c "$c" -P "$p" -n "$n" -t putget
        from_bench "$round" "$key" beuss <"$STEP" >>"$RAW"
        ;;
    redis)
        step "$REDIS_PID" "round$round/$key/lpush" \
            redis_benchmark "$round" "$key" "$c" "$p" "$n" lpush put
        cat "$STEP" >>"$RAW"
        step "$REDIS_PID" "round$round/$key/rpop" \
            redis_benchmark "$round" "$key" "$c" "$p" "$n" rpop get
        cat "$STEP" >>"$RAW"
        ;;
    beanstalkd)
        step "$BEAN_PID" "round$round/$key/beanstalkd" bench -p "$BEAN_PORT" \
            --target beanstalkd --server-pid "$BEAN_PID" -c "$c" -P "$p" -n "$nb" -t putget
        from_bench "$round" "$key" beanstalkd <"$STEP" >>"$RAW"
        ;;
    redis-engine)
        # Redis again, driven by the client that drives beuss: the two clients do not
        # cost the same, and with 2 cores that shows in the figures.
        step "$REDIS_PID" "round$round/$key/redis-engine" bench -p "$REDIS_PORT" \
            --target redis --server-pid "$REDIS_PID" -c "$c" -P "$p" -n "$n" -t putget
        from_bench "$round" "$key" redis-engine <"$STEP" >>"$RAW"
        ;;
    esac
}

measure() {
    rm -f "$OUT"/*.csv "$OUT"/*.log "$OUT/table.md"
    need=()
    command -v redis-server >/dev/null || need+=(redis-server)
    command -v redis-benchmark >/dev/null || need+=(redis-tools)
    command -v beanstalkd >/dev/null || need+=(beanstalkd)
    command -v nats-server >/dev/null || need+=(nats-server)
    if ((${#need[@]})); then
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq "${need[@]}" >"$OUT/apt.log" 2>&1; then
            apt-get update -qq >>"$OUT/apt.log" 2>&1
            apt-get install -y -qq "${need[@]}" >>"$OUT/apt.log" 2>&1
        fi
    fi
    log "building beuss (release)"
    cargo build --release --quiet --features bench --bin beuss-server --bin beuss-bench --bin beuss

    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if (($(ulimit -n) < IDLE + 300)); then
        IDLE=$(($(ulimit -n) - 300))
        log "open-file limit $(ulimit -n): idle test uses $IDLE connections"
    fi

    START=$(date +%s)
    if [[ -n $DURABLE_ONLY ]]; then
        durable "${CYCLES:-1000000}"
        write_meta
        return
    fi
    if [[ -n $FANOUT_ONLY ]]; then
        fanout_measure
        write_meta
        return
    fi

    start beuss
    BEUSS_PORT=$PORT BEUSS_PID=$PID
    start redis
    REDIS_PORT=$PORT REDIS_PID=$PID
    start beanstalkd
    BEAN_PORT=$PORT BEAN_PID=$PID
    log "servers: beuss :$BEUSS_PORT, redis :$REDIS_PORT, beanstalkd :$BEAN_PORT"

    START=$(date +%s)
    for round in $(seq "$ROUNDS"); do
        for shape in "${LEASE_SHAPES[@]}"; do
            read -r c p n nb <<<"$shape"
            key="c$c-P$p"
            log "leased round $round/$ROUNDS: -c $c -P $p"
            case $((round % 3)) in
            1) order=(beuss redis beanstalkd) ;;
            2) order=(beanstalkd redis beuss) ;;
            0) order=(redis beuss beanstalkd) ;;
            esac
            for peer in "${order[@]}"; do
                leased "$round" "$key" "$c" "$p" "$n" "$nb" "$peer"
            done
        done
    done
    if [[ -n $LEASE_ONLY ]]; then
        stop_all
        write_meta
        return
    fi
    for round in $(seq "$ROUNDS"); do
        for shape in "${SHAPES[@]}"; do
            read -r c p n nb <<<"$shape"
            key="c$c-P$p"
            log "round $round/$ROUNDS: -c $c -P $p"
            # Peers take turns in a different order each round, so that none is always
            # measured first after a pause or last after a long run.
            case $((round % 3)) in
            1) order=(beuss redis beanstalkd redis-engine) ;;
            2) order=(redis-engine beanstalkd redis beuss) ;;
            0) order=(beanstalkd beuss redis-engine redis) ;;
            esac
            for peer in "${order[@]}"; do
                throughput "$round" "$key" "$c" "$p" "$n" "$nb" "$peer"
            done
        done
    done

    # Delivery latency: one producer putting 1000 messages/s, one consumer parked; and
    # the paced ping round trip. Peers take turns, ROUNDS times; medians are reported.
    for round in $(seq "$ROUNDS"); do
        for peer in beuss redis beanstalkd; do
            case $peer in
            beuss) port=$BEUSS_PORT pid=$BEUSS_PID ;;
            redis) port=$REDIS_PORT pid=$REDIS_PID ;;
            beanstalkd) port=$BEAN_PORT pid=$BEAN_PID ;;
            esac
            log "latency round $round/$ROUNDS: $peer"
            step "$pid" "latency$round/$peer" \
                bench -p "$port" --target "$peer" -c 2 -n 4000 --rate 1000 -t rtt,latency
            awk -F, -v peer="$peer" 'NR > 1 { print peer "," $2 "," $9 "," $10 "," $11 "," $12 "," $15 }' \
                "$STEP" >>"$LAT"
        done
    done
    stop_all

    # Memory: fresh servers, 1,000,000 messages of 32 bytes in one queue / list.
    for peer in beuss redis; do
        wait_quiet "memory-$peer"
        start "$peer"
        log "memory: $peer, 1000000 x $DATA bytes"
        bench -p "$PORT" --target "$peer" --server-pid "$PID" -c 8 -P 64 -n 1000000 -t fill |
            awk -F, -v peer="$peer" 'NR > 1 { print peer ",fill," $16 "," $17 "," $18 }' >>"$MEM"
        if [[ $peer == redis ]]; then
            held=$(redis-cli -p "$PORT" llen bench-0)
            [[ $held == 1000000 ]] || { log "redis holds $held elements, not 1000000"; exit 1; }
        fi
        stop_all
    done
    for peer in beuss redis beanstalkd; do
        start "$peer"
        log "memory: $peer, $IDLE idle connections"
        bench -p "$PORT" --target "$peer" --server-pid "$PID" -c "$IDLE" -t idle |
            awk -F, -v peer="$peer" 'NR > 1 { print peer ",idle," $16 "," $17 "," $18 }' >>"$MEM"
        stop_all
    done
    fanout_measure
    durable "${CYCLES:-10000000}"
    write_meta
}

write_meta() {
    ELAPSED=$(($(date +%s) - START))
    printf 'ELAPSED=%s\nIDLE=%s\nROUNDS=%s\nNOISY=%q\nDURABLE_ONLY=%q\nFANOUT_ONLY=%q\nBEUSS_DURABLE=%q\n' \
        "$ELAPSED" "$IDLE" "$ROUNDS" "$NOISY" "$DURABLE_ONLY" "$FANOUT_ONLY" "${BEUSS_DURABLE:-}" >"$OUT/meta.env"
}

# durable CYCLES: the durability rows (see the top of this file), then
# bench/durable-size.sh with CYCLES put/take cycles.
FSYNC=$OUT/fsync.csv
durable() {
    local round shape c p nmem nsync nbean nbf0 key config n order dir i
    DTMP=$(mktemp -d -t beuss-compare.XXXXXX)
    df -T "$DTMP" >"$OUT/df.txt"
    python3 bench/fsync-probe.py "$DTMP" 1000 >"$FSYNC"
    log "fdatasync on $(awk 'NR == 2 {print $2}' "$OUT/df.txt") ($DTMP): $(awk -F, 'NR > 1 {printf "%s p50 %s us p99 %s us; ", $1, $3, $4}' "$FSYNC")"
    if beuss_durable "$DTMP"; then
        BEUSS_DURABLE=1
    else
        BEUSS_DURABLE=""
        log "beuss: durability not supported by this build; skipping"
    fi
    for round in $(seq "$ROUNDS"); do
        for shape in "${DURABLE_SHAPES[@]}"; do
            read -r c p nmem nsync nbean nbf0 <<<"$shape"
            key="c$c-P$p"
            log "durable round $round/$ROUNDS: -c $c -P $p"
            # A different order each round (rotated by the round number).
            order=()
            for i in "${!DURABLE_CONFIGS[@]}"; do
                order+=("${DURABLE_CONFIGS[(i + round) % ${#DURABLE_CONFIGS[@]}]}")
            done
            for config in "${order[@]}"; do
                case $config in
                beuss-always | beuss-1000) [[ -n $BEUSS_DURABLE ]] || continue ;;
                esac
                case $config in
                *-always) n=$nsync ;;
                beanstalkd-f0) n=$nbf0 ;;
                beanstalkd-*) n=$nbean ;;
                *) n=$nmem ;;
                esac
                dir=$DTMP/$config-$round-$key
                start_durable "$config" "$dir"
                step "$PID" "durable$round/$key/$config" bench -p "$PORT" \
                    --target "$(target_of "$config")" --server-pid "$PID" -c "$c" -P "$p" \
                    -n "$n" -t putget
                from_bench "$round" "$key" "d-$config" <"$STEP" >>"$RAW"
                stop_server "$PID"
                rm -rf "$dir"
            done
        done
    done
    log "durable sizes: bench/durable-size.sh with CYCLES=$1"
    OUT=$OUT BUILD=0 CYCLES=$1 bash bench/durable-size.sh >/dev/null
}

# --- the table ---------------------------------------------------------------------
median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print ""; exit }
        print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# col: 5 rps, 6 p50, 7 p99, 8 client cpu, 9 server cpu
fig() { awk -F, -v s="$1" -v p="$2" -v o="$3" -v c="$4" '$2 == s && $3 == p && $4 == o { print $c }' "$RAW" | median; }
lat() { awk -F, -v p="$1" -v t="$2" -v c="$3" '$1 == p && $2 == t { print $c }' "$LAT" | median; }
mem() { awk -F, -v p="$1" -v t="$2" -v c="$3" '$1 == p && $2 == t { print $c }' "$MEM"; }
# spread SHAPE PEER OP: lowest and highest req/s over the rounds.
spread() { awk -F, -v s="$1" -v p="$2" -v o="$3" '$2 == s && $3 == p && $4 == o { print $5 }' "$RAW" |
    sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.0f-%.0f", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
num() { awk -v a="$1" 'BEGIN { if (a == "") print "-"; else printf "%.0f", a }'; }
verdict() { # value op threshold
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v == "-" || v == "") { print "n/a"; exit }
        ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : (op == "<") ? v < t : v > t
        print ok ? "met" : "**missed**" }'
}

table() {
    # A LEASE_ONLY run leaves the other files out.
    touch "$RAW" "$LAT" "$MEM"
    rm -f "$OUT/table.md"
    if [[ -z ${DURABLE_ONLY:-} && -z ${FANOUT_ONLY:-} ]]; then main_table; fi
    if awk -F, '$4 == "fan" { found = 1 } END { exit !found }' "$RAW"; then fanout_table; fi
    if [[ -s $FSYNC ]]; then durable_table; fi
}

main_table() {
    {
        echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'), beuss $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
        echo "$(redis-server --version | awk '{print $1, $2, $3}'), beanstalkd $(beanstalkd -v | awk '{print $2}'),"
        echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r);"
        echo "client and server share these cores. Ratios are beuss/peer."
        echo
        echo "| Workload, 32-byte messages | beuss | Redis (redis-benchmark) | beuss/Redis | Redis (beuss-bench) | beuss/Redis | beanstalkd | beuss/beanstalkd | Target |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
        for shape in "${SHAPES[@]}"; do
            read -r c p _ _ <<<"$shape"
            key="c$c-P$p"
            case $key in
            c8-P64) want=1.5 ;;
            c50-P1) want=1.1 ;;
            *) want=1.0 ;;
            esac
            for op in put get; do
                if [[ $op == put ]]; then name="PUT / LPUSH / put"; else name="GET / RPOP / reserve+delete"; fi
                b=$(fig "$key" beuss "$op" 5)
                r=$(fig "$key" redis "$op" 5)
                e=$(fig "$key" redis-engine "$op" 5)
                k=$(fig "$key" beanstalkd "$op" 5)
                rr=$(ratio "$b" "$r")
                re=$(ratio "$b" "$e")
                rk=$(ratio "$b" "$k")
                # Judged on the lower of the two Redis ratios.
                low=$(awk -v a="$rr" -v b="$re" 'BEGIN { if (b == "-" || a + 0 < b + 0) print a; else print b }')
                echo "| $name, \`-c $c -P $p\` (req/s) | $(num "$b") | $(num "$r") | $rr | $(num "$e") | $re | $(num "$k") | $rk | Redis ≥ $want×: $(verdict "$low" ">=" "$want"); beanstalkd: $(verdict "$rk" ">" 1) |"
            done
        done
        for shape in "${LEASE_SHAPES[@]}"; do
            read -r c p _ _ <<<"$shape"
            key="c$c-P$p"
            b=$(fig "$key" beuss lease 5)
            g=$(fig "$key" beuss plainget 5)
            r=$(fig "$key" redis lease 5)
            k=$(fig "$key" beanstalkd lease 5)
            rr=$(ratio "$b" "$r")
            rk=$(ratio "$b" "$k")
            rg=$(ratio "$b" "$g")
            case $key in
            c8-P64) goal="Redis ≥ 3×: $(verdict "$rr" ">=" 3)" ;;
            *) goal="Redis ≥ 1.2×: $(verdict "$rr" ">=" 1.2); beanstalkd ≥ 2×: $(verdict "$rk" ">=" 2)" ;;
            esac
            echo "| Leased + acked: LEASE+ACK / XREADGROUP+XACK / reserve+delete, \`-c $c -P $p\` (req/s) | $(num "$b") | | | $(num "$r") | $rr | $(num "$k") | $rk | $goal |"
            echo "| Leased + acked / plain GET, beuss, \`-c $c -P $p\` (GET $(num "$g") req/s) | $rg | | | | | | | ≥ 0.6×: $(verdict "$rg" ">=" 0.6) |"
        done
        b=$(lat beuss LATENCY 4)
        r=$(lat redis LATENCY 4)
        k=$(lat beanstalkd LATENCY 4)
        echo "| Parked consumer gets a new message, p99 (µs, lower is better) | $b | | | $r | $(ratio "$b" "$r") | $k | $(ratio "$b" "$k") | < 100 µs: $(verdict "$b" "<" 100); beanstalkd: $(verdict "$(ratio "$b" "$k")" "<" 1) |"
        b=$(lat beuss LATENCY 3)
        r=$(lat redis LATENCY 3)
        k=$(lat beanstalkd LATENCY 3)
        echo "| Parked consumer gets a new message, p50 (µs) | $b | | | $r | $(ratio "$b" "$r") | $k | $(ratio "$b" "$k") | beanstalkd: $(verdict "$(ratio "$b" "$k")" "<" 1) |"
        b=$(lat beuss RTT 4)
        r=$(lat redis RTT 4)
        k=$(lat beanstalkd RTT 4)
        echo "| Paced round trip (ping), p99 (µs): the floor under the two rows above | $b | | | $r | $(ratio "$b" "$r") | $k | $(ratio "$b" "$k") | |"
        b=$(mem beuss fill 4)
        r=$(mem redis fill 4)
        echo "| RSS with 1,000,000 × 32 B held in one queue / list (MiB) | $(awk -v a="$b" 'BEGIN{printf "%.1f", a/1024}') | | | $(awk -v a="$r" 'BEGIN{printf "%.1f", a/1024}') | $(ratio "$b" "$r") | - | - | ≤ Redis: $(verdict "$(ratio "$b" "$r")" "<=" 1) |"
        b=$(mem beuss idle 5)
        r=$(mem redis idle 5)
        k=$(mem beanstalkd idle 5)
        echo "| Server memory per idle connection, $IDLE connections (bytes) | $(num "$b") | | | $(num "$r") | $(ratio "$b" "$r") | $(num "$k") | $(ratio "$b" "$k") | < 2048 B: $(verdict "$b" "<" 2048) |"
    } >>"$OUT/table.md"

    {
        echo
        echo "Median of $ROUNDS rounds (req/s; p99 latency per request in µs, client and server CPU in %):"
        echo
        echo "| Shape | Op | beuss req/s | p99 | CPU client/server | Redis (redis-benchmark) | p99 | CPU client/server | Redis (beuss-bench) | p99 | CPU client/server | beanstalkd | p99 | CPU client/server |"
        echo "|---|---|---:|---:|---|---:|---:|---|---:|---:|---|---:|---:|---|"
        for shape in "${SHAPES[@]}"; do
            read -r c p _ _ <<<"$shape"
            key="c$c-P$p"
            for op in put get; do
                row="| \`-c $c -P $p\` | $op |"
                for peer in beuss redis redis-engine beanstalkd; do
                    row+=" $(num "$(fig "$key" "$peer" "$op" 5)") | $(fig "$key" "$peer" "$op" 7) | $(num "$(fig "$key" "$peer" "$op" 8)")/$(num "$(fig "$key" "$peer" "$op" 9)") |"
                done
                echo "$row"
            done
        done
        echo
        echo "| Leased shape | Op | beuss req/s | p99 | CPU client/server | Redis Streams (beuss-bench) | p99 | CPU client/server | beanstalkd | p99 | CPU client/server | req/s min-max over rounds (beuss / Redis / beanstalkd) |"
        echo "|---|---|---:|---:|---|---:|---:|---|---:|---:|---|---|"
        for shape in "${LEASE_SHAPES[@]}"; do
            read -r c p _ _ <<<"$shape"
            key="c$c-P$p"
            for op in lease plainget; do
                row="| \`-c $c -P $p\` | $op |"
                for peer in beuss redis beanstalkd; do
                    if [[ $op == plainget && $peer != beuss ]]; then row+=" | | |"; continue; fi
                    row+=" $(num "$(fig "$key" "$peer" "$op" 5)") | $(fig "$key" "$peer" "$op" 7) | $(num "$(fig "$key" "$peer" "$op" 8)")/$(num "$(fig "$key" "$peer" "$op" 9)") |"
                done
                if [[ $op == lease ]]; then
                    row+=" $(spread "$key" beuss "$op") / $(spread "$key" redis "$op") / $(spread "$key" beanstalkd "$op") |"
                else
                    row+=" $(spread "$key" beuss "$op") |"
                fi
                echo "$row"
            done
        done
        echo
        echo "Parked deliveries: beuss $(lat beuss LATENCY 7)%, Redis $(lat redis LATENCY 7)%, beanstalkd $(lat beanstalkd LATENCY 7)% of messages reached a consumer already waiting."
        echo "Measured in ${ELAPSED}s. Raw figures: $RAW, $LAT, $MEM."
        if [[ -n $NOISY ]]; then
            echo "WARNING: other processes were using the CPU during:$NOISY."
        fi
    } >>"$OUT/table.md"
}

# dcell SHAPE CONFIG OP: "median (min-max)" req/s of a durability step.
dcell() {
    local m
    m=$(fig "$1" "d-$2" "$3" 5)
    if [[ -z $m ]]; then
        case $2 in
        beuss-always | beuss-1000) echo "skipped: durability not supported by this build" ;;
        *) echo "-" ;;
        esac
        return
    fi
    echo "$(num "$m") ($(spread "$1" "d-$2" "$3"))"
}

durable_table() {
    local shape c p key config name op a b want shapes goal row sep rp rg low
    {
        echo
        echo "Durability: run of $(date -u '+%Y-%m-%d %H:%M UTC'), beuss $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
        echo "$(redis-server --version | awk '{print $1, $2, $3}'), beanstalkd $(beanstalkd -v | awk '{print $2}'),"
        echo "data on $(awk 'NR == 2 {print $2 " (" $1 ")"}' "$OUT/df.txt"); fdatasync of a 48-byte write, 1000 times:"
        echo "$(awk -F, 'NR > 1 { printf "%s%s p50 %s µs, p99 %s µs, max %s µs", (NR > 2 ? "; " : ""), $1, $3, $4, $5 }' "$FSYNC")."
        echo
        echo "Durable PUT+GET, 32-byte messages, beuss-bench -t putget on every server, a fresh server and data"
        echo "directory per step; req/s, median of $ROUNDS rounds (min-max):"
        echo
        row="| Server, sync policy |"
        sep="|---|"
        for shape in "${DURABLE_SHAPES[@]}"; do
            read -r c p _ <<<"$shape"
            row+=" PUT \`-c $c -P $p\` | GET \`-c $c -P $p\` |"
            sep+="---:|---:|"
        done
        echo "$row"
        echo "$sep"
        for config in "${DURABLE_CONFIGS[@]}"; do
            case $config in
            beuss-always) name="beuss BDATADIR, BFSYNC=always" ;;
            beuss-1000) name="beuss BDATADIR, BFSYNC=1000" ;;
            beuss-memory) name="beuss in memory (no BDATADIR)" ;;
            redis-always) name="Redis appendonly, appendfsync always" ;;
            redis-everysec) name="Redis appendonly, appendfsync everysec" ;;
            beanstalkd-f0) name="beanstalkd -b, -f 0 (fsync every write)" ;;
            beanstalkd-default) name="beanstalkd -b, default (-f 50)" ;;
            esac
            row="| $name |"
            for shape in "${DURABLE_SHAPES[@]}"; do
                read -r c p _ <<<"$shape"
                for op in put get; do row+=" $(dcell "c$c-P$p" "$config" "$op") |"; done
            done
            echo "$row"
        done
        echo
        echo "| Goal (issue 13) | Shape | PUT ratio | GET ratio | Verdict |"
        echo "|---|---|---:|---:|---|"
        while read -r a b want shapes; do
            for key in $shapes; do
                rp=$(ratio "$(fig "$key" "d-$a" put 5)" "$(fig "$key" "d-$b" put 5)")
                rg=$(ratio "$(fig "$key" "d-$a" get 5)" "$(fig "$key" "d-$b" get 5)")
                low=$(awk -v x="$rp" -v y="$rg" 'BEGIN { if (x == "-" || y == "-") print "-"; else print (x + 0 < y + 0) ? x : y }')
                goal="$a ≥ $want× $b"
                c=${key%%-*} p=${key#*-P}
                echo "| $goal | \`-c ${c#c} -P $p\` | $rp | $rg | $(verdict "$low" ">=" "$want") |"
            done
        done <<'GOALS'
beuss-always redis-always 2 c50-P1
beuss-always beanstalkd-f0 10 c50-P1 c8-P64
beuss-1000 redis-everysec 1.2 c50-P1 c8-P64
beuss-1000 beuss-memory 0.8 c50-P1 c8-P64
GOALS
        if [[ -z ${BEUSS_DURABLE:-} ]]; then
            echo
            echo "beuss: durability not supported by this build (a message put with BDATADIR set was gone"
            echo "after SIGTERM and a restart); its durable rows were skipped."
        fi
        if [[ -s $OUT/durable-size.md ]]; then
            echo
            echo "Start-up and disk use (bench/durable-size.sh; beuss BFSYNC=1000, Redis everysec, beanstalkd default):"
            echo
            cat "$OUT/durable-size.md"
        fi
        if [[ -n ${DURABLE_ONLY:-} ]]; then
            echo
            echo "Measured in ${ELAPSED}s. Raw figures: $RAW (peers d-*)."
            if [[ -n $NOISY ]]; then
                echo "WARNING: other processes were using the CPU during:$NOISY."
            fi
        fi
    } >>"$OUT/table.md"
}

if [[ ${1:-} == --table ]]; then
    # shellcheck source=/dev/null
    source "$OUT/meta.env"
else
    measure
fi
table
cat "$OUT/table.md"
