# shellcheck shell=bash
# bench/fanout.sh: the fan-out rows of compare.sh (issue 9). Sourced, not run: the
# caller defines log(), bench(), step(), start(), stop_all(), wait_quiet(), the table
# helpers (fig, spread, ratio, num, verdict), OUT, RAW, BIN, ROUNDS, STEP and the
# PIDS array, and has built beuss-server and beuss-bench.
#
# fanout_measure runs, with beuss-bench driving every server:
#   - live fan-out: one publisher, 10 subscribers, 32-byte messages, publishes in
#     batches of 64 at most FAN_WINDOWS messages ahead of the slowest subscriber:
#     beuss PUB/SUB/EVENT, NATS core PUB (+ PING per batch)/SUB/MSG, Redis
#     PUBLISH/SUBSCRIBE; messages delivered per second, all subscribers together;
#   - request/reply, one responder, 1 requester in lockstep and 10 requesters with
#     one request in flight each: beuss REQ with the responder subscribed (EVENT
#     with REPLY_TO, then REPLY) or leasing from a bound queue (LEASE WITH_META,
#     REPLY, ACK); NATS PUB with a reply subject in the requester's inbox; once as
#     the scheduler places client and server, once with both on CPU 0 (taskset);
#   - publish into 10 bound queues, one consumer per queue draining it (beuss GET
#     of up to 64 waiting; and LEASE + ACK), against Redis MULTI + 10 LPUSH + EXEC
#     drained by BLMPOP COUNT 64 (and PUBLISH to 10 subscribers, the live row);
#   ROUNDS rounds, peers in a different order each round, medians and min-max;
#   - memory: a fresh beuss (BMAXMEMORY=4G) per test, 10,000 publishes of 1 KiB to a
#     subject bound to 100 queues, against 10,000 x 100 plain PUTs of 1 KiB: RSS and
#     STATS memory per publish;
#   - A/B of plain PUT/GET (beuss-bench -t putget, -c 8 -P 64 and -c 50 -P 1) between
#     beuss-server built at AB_BASE (default 230f9cc, the last commit before fan-out;
#     AB_BASE=none skips it) and this checkout, a fresh server per step, the two
#     builds alternating, ROUNDS rounds.
# fanout_table appends the tables to $OUT/table.md.

AB_BASE=${AB_BASE:-230f9cc}
# Publisher windows of the live row: about 1 ms and 10 ms of messages in flight.
FAN_WINDOWS=(1000 10000)
# Publishes per live and per queue run; requests per request/reply run (1 and 10
# requesters).
FAN_LIVE_N=${FAN_LIVE_N:-1000000}
FAN_QUEUE_N=${FAN_QUEUE_N:-300000}
FAN_REQ_SHAPES=("1 50000" "10 150000")
# Request/reply is run twice: as the scheduler places client and server, and with
# both on CPU 0. On this VM a wake-up across the two vCPUs costs tens of µs (an idle
# vCPU halts), and a lockstep round trip is four wake-ups: with client and server
# on different vCPUs both beuss and NATS sit at that floor (about 5,500 round trips
# a second), on one vCPU the servers' own costs show.
PINNED=("" "-pin")
FAN_MEM_N=10000
AB_SHAPES=("8 64 2000000" "50 1 300000")
FANMEM=$OUT/fanmem.csv

# bench_pinned ARGS...: bench, on CPU 0 only.
bench_pinned() {
    taskset -c 0 "$BIN/beuss-bench" -h 127.0.0.1 -d "$DATA" --csv "$@" 2>>"$OUT/progress.log"
}

# fan ROUND KEY PEER PORT PID ARGS...: one fan-out run, its row into $RAW as
# round,KEY,PEER,fan,rps,p50,p99,client cpu,server cpu. A KEY ending in -pin runs
# the client and every thread of the server on CPU 0 (see PINNED).
fan() {
    local round=$1 key=$2 peer=$3 port=$4 pid=$5 target run=bench
    shift 5
    target=${peer%%-*}
    if [[ $key == *-pin ]]; then
        taskset -a -p -c 0 "$pid" >/dev/null
        run=bench_pinned
    fi
    step "$pid" "fan$round/$key/$peer" "$run" -p "$port" --target "$target" \
        --server-pid "$pid" "$@"
    if [[ $key == *-pin ]]; then
        taskset -a -p -c "0-$(($(nproc) - 1))" "$pid" >/dev/null
    fi
    awk -F, -v r="$round" -v s="$key" -v peer="$peer" 'NR > 1 {
        print r "," s "," peer ",fan," $8 "," $9 "," $10 "," $13 "," $14 }' "$STEP" >>"$RAW"
}

# build_base: beuss-server at AB_BASE, from `git archive` (the repository is not
# touched), in a target directory of its own; kept for the next run.
# Returns non-zero (every step checked: it runs where errexit is off) when AB_BASE
# is not in this checkout's history or does not build.
build_base() {
    local src=$CARGO_TARGET_DIR-base-src commit
    commit=$(git rev-parse --verify --quiet "$AB_BASE^{commit}") || return 1
    BASE_BIN=$CARGO_TARGET_DIR-base/release/beuss-server
    if [[ -x $BASE_BIN && $(cat "$src/.commit" 2>/dev/null) == "$commit" ]]; then
        return 0
    fi
    log "building beuss-server at $AB_BASE for the A/B (release)"
    rm -rf "$src" && mkdir -p "$src" || return 1
    git archive "$commit" | tar -x -C "$src" || return 1
    (cd "$src" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR-base cargo build --release --quiet \
        --bin beuss-server) || return 1
    echo "$commit" >"$src/.commit"
}

# rotate ROUND PEER...: the peers in an order that changes with the round.
rotate() {
    local r=$1
    shift
    local all=("$@") k
    for k in "${!all[@]}"; do echo "${all[(k + r) % ${#all[@]}]}"; done
}

fanout_measure() {
    local round order peer w c n p key build shape nab i t pin
    if [[ $AB_BASE != none ]] && ! build_base; then
        log "cannot build beuss-server at $AB_BASE; no A/B"
        AB_BASE=none
    fi
    start beuss
    # shellcheck disable=SC2153 # start sets PORT and PID
    local beuss_port=$PORT beuss_pid=$PID
    start nats
    local nats_port=$PORT nats_pid=$PID
    start redis
    local redis_port=$PORT redis_pid=$PID
    log "fan-out servers: beuss :$beuss_port, nats :$nats_port, redis :$redis_port"
    # port_of PEER: the port and pid of its server.
    port_of() {
        case ${1%%-*} in
        beuss) echo "$beuss_port $beuss_pid" ;;
        nats) echo "$nats_port $nats_pid" ;;
        redis) echo "$redis_port $redis_pid" ;;
        esac
    }
    for round in $(seq "$ROUNDS"); do
        log "fan-out round $round/$ROUNDS"
        for w in "${FAN_WINDOWS[@]}"; do
            mapfile -t order < <(rotate "$round" beuss nats redis)
            for peer in "${order[@]}"; do
                read -r p i <<<"$(port_of "$peer")"
                fan "$round" "live-w$w" "$peer" "$p" "$i" -c 10 -P 64 -n "$FAN_LIVE_N" \
                    --window "$w" -t fanout
            done
        done
        for pin in "${PINNED[@]}"; do
            for shape in "${FAN_REQ_SHAPES[@]}"; do
                read -r c n <<<"$shape"
                mapfile -t order < <(rotate "$round" beuss-sub nats beuss-queue)
                for peer in "${order[@]}"; do
                    read -r p i <<<"$(port_of "$peer")"
                    case $peer in
                    beuss-queue) t=reqqueue ;;
                    *) t=reqrep ;;
                    esac
                    fan "$round" "req-c$c$pin" "$peer" "$p" "$i" -c "$c" -P 64 -n "$n" -t "$t"
                done
            done
        done
        mapfile -t order < <(rotate "$round" beuss-get redis-multi beuss-lease)
        for peer in "${order[@]}"; do
            read -r p i <<<"$(port_of "$peer")"
            case $peer in
            beuss-lease) t=fanlease ;;
            *) t=fanqueue ;;
            esac
            fan "$round" queues "$peer" "$p" "$i" -c 10 -P 64 -n "$FAN_QUEUE_N" -t "$t"
        done
    done
    stop_all

    # Memory: a fresh server per test.
    for t in fanmem fanmemput; do
        wait_quiet "memory-$t"
        BEUSS_ENV="BMAXMEMORY=4G" start beuss
        log "memory: $t, $FAN_MEM_N x 1 KiB to 100 queues"
        bench -p "$PORT" --server-pid "$PID" -c 100 -d 1024 -P 64 -n "$FAN_MEM_N" -t "$t" |
            awk -F, -v t="$t" 'NR > 1 { print t "," $16 "," $17 "," $18 "," $21 "," $22 }' >>"$FANMEM"
        stop_all
    done

    # A/B of the plain path: AB_BASE's server against this one's, alternating.
    if [[ $AB_BASE == none ]]; then return 0; fi
    for round in $(seq "$ROUNDS"); do
        if ((round % 2)); then order=(base main); else order=(main base); fi
        for shape in "${AB_SHAPES[@]}"; do
            read -r c p nab <<<"$shape"
            key="c$c-P$p"
            for build in "${order[@]}"; do
                log "A/B round $round/$ROUNDS: $build, -c $c -P $p"
                if [[ $build == base ]]; then start beuss "$BASE_BIN"; else start beuss; fi
                step "$PID" "ab$round/$key/$build" bench -p "$PORT" --server-pid "$PID" \
                    -c "$c" -P "$p" -n "$nab" -t putget
                from_bench "$round" "$key" "ab-$build" <"$STEP" >>"$RAW"
                stop_all
            done
        done
    done
}

# fcell KEY PEER: "median (min-max)" of a fan-out row's rate.
fcell() {
    local m
    m=$(fig "$1" "$2" fan 5)
    if [[ -z $m ]]; then echo "-"; return; fi
    echo "$(num "$m") ($(spread "$1" "$2" fan))"
}

fanout_table() {
    local w key b r k c goal peer m what shape op where
    {
        echo
        echo "Fan-out: run of $(date -u '+%Y-%m-%d %H:%M UTC'), beuss $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
        echo "$(nats-server --version 2>/dev/null || echo 'nats-server ?'), $(redis-server --version | awk '{print $1, $2, $3}');"
        echo "beuss-bench drives every server; 32-byte messages; median of $ROUNDS rounds (min-max)."
        echo
        echo "| Workload | beuss | Peer | beuss/peer | Goal |"
        echo "|---|---:|---:|---:|---|"
        for w in "${FAN_WINDOWS[@]}"; do
            b=$(fig "live-w$w" beuss fan 5)
            r=$(fig "live-w$w" nats fan 5)
            echo "| Live: 1 publisher, 10 subscribers, window $w; messages delivered/s vs NATS | $(fcell "live-w$w" beuss) | $(fcell "live-w$w" nats) | $(ratio "$b" "$r") | ≥ 1× NATS: $(verdict "$(ratio "$b" "$r")" ">=" 1) |"
            r=$(fig "live-w$w" redis fan 5)
            echo "| Live, window $w, vs Redis PUBLISH to 10 subscribers | | $(fcell "live-w$w" redis) | $(ratio "$b" "$r") | |"
        done
        for key in req-c1 req-c10 req-c1-pin req-c10-pin; do
            c=${key#req-c}
            c=${c%-pin}
            where="as the scheduler places them"
            [[ $key == *-pin ]] && where="client and server on CPU 0"
            r=$(fig "$key" nats fan 5)
            for peer in beuss-sub beuss-queue; do
                b=$(fig "$key" "$peer" fan 5)
                if [[ $peer == beuss-sub ]]; then
                    what="responder subscribed"
                    goal="≥ 1.5× NATS: $(verdict "$(ratio "$b" "$r")" ">=" 1.5)"
                else
                    what="responder leasing from a bound queue"
                    goal=""
                fi
                echo "| Request/reply, $c requester(s), one in flight each, $what, $where; round trips/s vs NATS | $(fcell "$key" "$peer") | $(fcell "$key" nats) | $(ratio "$b" "$r") | $goal |"
                echo "| ... round trip p50 / p99 (µs) | $(fig "$key" "$peer" fan 6) / $(fig "$key" "$peer" fan 7) | $(fig "$key" nats fan 6) / $(fig "$key" nats fan 7) | | |"
            done
        done
        for peer in beuss-get beuss-lease; do
            b=$(fig queues "$peer" fan 5)
            r=$(fig queues redis-multi fan 5)
            k=$(fig live-w1000 redis fan 5)
            if [[ $peer == beuss-get ]]; then what="GET of up to 64, waiting"; else what="LEASE of up to 64 + ACK"; fi
            echo "| 10 bound queues, drained by $what; delivered/s vs Redis MULTI + 10 LPUSH + EXEC, BLMPOP COUNT 64 | $(fcell queues "$peer") | $(fcell queues redis-multi) | $(ratio "$b" "$r") | ≥ 2×: $(verdict "$(ratio "$b" "$r")" ">=" 2) |"
            echo "| ... vs Redis PUBLISH to 10 subscribers (live row, window 1000) | | $(fcell live-w1000 redis) | $(ratio "$b" "$k") | ≥ 2×: $(verdict "$(ratio "$b" "$k")" ">=" 2) |"
        done
        if [[ -s $FANMEM ]]; then
            echo
            echo "Memory, a fresh server each, $FAN_MEM_N × 1 KiB (RSS and STATS \`memory\` growth):"
            echo
            echo "| Stored as | RSS growth (MiB) | RSS per publish (bytes) | STATS memory per publish (bytes) | Payload bytes in it | Overhead per copy (RSS, bytes) |"
            echo "|---|---:|---:|---:|---:|---:|"
            awk -F, -v n="$FAN_MEM_N" '{
                shared = ($1 == "fanmem")
                name = shared ? "1 publish to a subject bound to 100 queues" : "100 plain PUTs, one per queue"
                payload = shared ? 1024 : 102400
                printf "| %s | %.1f | %.0f | %.0f | %d | %.1f |\n", name, ($3 - $2) / 1024, $4,
                    ($6 - $5) / n, payload, ($4 - payload) / 100 }' "$FANMEM"
        fi
        if awk -F, '$3 ~ /^ab-/ { found = 1 } END { exit !found }' "$RAW"; then
            echo
            echo "Plain PUT/GET, beuss-server at $AB_BASE (before fan-out) against this build, a fresh server per step,"
            echo "the two alternating, same client (beuss-bench -t putget); req/s, median (min-max):"
            echo
            echo "| Shape | Op | $AB_BASE | this build | this / $AB_BASE |"
            echo "|---|---|---:|---:|---:|"
            for shape in "${AB_SHAPES[@]}"; do
                read -r c p _ <<<"$shape"
                key="c$c-P$p"
                for op in put get; do
                    b=$(fig "$key" ab-main "$op" 5)
                    r=$(fig "$key" ab-base "$op" 5)
                    echo "| \`-c $c -P $p\` | $op | $(num "$r") ($(spread "$key" ab-base "$op")) | $(num "$b") ($(spread "$key" ab-main "$op")) | $(ratio "$b" "$r") |"
                done
            done
        fi
        echo
        echo "Every fan-out row, median of $ROUNDS rounds (p50 and p99: delivery latency, publish to receipt, for"
        echo "live and queue rows; round trip for request/reply; CPU client/server in %):"
        echo
        echo "| Workload | Peer | msgs/s | min-max | p50 µs | p99 µs | CPU client/server |"
        echo "|---|---|---:|---|---:|---:|---|"
        for key in live-w1000 live-w10000 req-c1 req-c10 req-c1-pin req-c10-pin queues; do
            for peer in beuss beuss-sub beuss-queue beuss-get beuss-lease nats redis redis-multi; do
                m=$(fig "$key" "$peer" fan 5)
                [[ -n $m ]] || continue
                echo "| $key | $peer | $(num "$m") | $(spread "$key" "$peer" fan) | $(fig "$key" "$peer" fan 6) | $(fig "$key" "$peer" fan 7) | $(num "$(fig "$key" "$peer" fan 8)")/$(num "$(fig "$key" "$peer" fan 9)") |"
            done
        done
        if [[ -n ${FANOUT_ONLY:-} ]]; then
            echo
            echo "Measured in ${ELAPSED}s. Raw figures: $RAW (op fan; peers ab-* for the A/B), $FANMEM."
            if [[ -n $NOISY ]]; then
                echo "WARNING: other processes were using the CPU during:$NOISY."
            fi
        fi
    } >>"$OUT/table.md"
}
