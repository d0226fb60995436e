# shellcheck shell=bash
# bench/durable-servers.sh: servers that keep their messages on disk, for compare.sh
# and durable-size.sh. Sourced, not run; the caller sources bench/ports.sh first and
# defines log(), OUT, BIN (the release directory) and the PIDS array.

# start_durable CONFIG DIR: starts a server that keeps its data in DIR (made here if
# missing; ignored by beuss-memory), sets PORT and PID. CONFIG is one of
#   beuss-always, beuss-1000   BDATADIR=DIR with BFSYNC=always / BFSYNC=1000
#   beuss-memory               no BDATADIR: the in-memory reference
#   redis-always, redis-everysec   --appendonly yes --appendfsync always / everysec
#   beanstalkd-f0, beanstalkd-default   -b DIR with -f 0 (fsync every write) / its
#                                       default (-f 50: at most every 50 ms)
start_durable() {
    local config=$1 dir=$2
    mkdir -p "$dir"
    PORT=$(free_port)
    case $config in
    beuss-always | beuss-1000)
        BHOST=127.0.0.1 BPORT=$PORT BQUEUEIDLE=0 BDATADIR=$dir BFSYNC=${config#beuss-} \
            RUST_LOG=warn "$BIN/beuss-server" >>"$OUT/beuss-server.log" 2>&1 &
        ;;
    beuss-memory)
        BHOST=127.0.0.1 BPORT=$PORT BQUEUEIDLE=0 \
            RUST_LOG=warn "$BIN/beuss-server" >>"$OUT/beuss-server.log" 2>&1 &
        ;;
    redis-always | redis-everysec)
        redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly yes \
            --appendfsync "${config#redis-}" --dir "$dir" --daemonize no \
            >>"$OUT/redis-server.log" 2>&1 &
        ;;
    beanstalkd-f0)
        beanstalkd -l 127.0.0.1 -p "$PORT" -b "$dir" -f 0 >>"$OUT/beanstalkd.log" 2>&1 &
        ;;
    beanstalkd-default)
        beanstalkd -l 127.0.0.1 -p "$PORT" -b "$dir" >>"$OUT/beanstalkd.log" 2>&1 &
        ;;
    *)
        log "unknown server configuration $config"
        return 1
        ;;
    esac
    PID=$!
    PIDS+=("$PID")
    wait_port "$PORT" 60
}

# target_of CONFIG: the beuss-bench --target for it.
target_of() { echo "${1%%-*}"; }

# stop_server PID [SECONDS]: SIGTERM, then waits up to SECONDS (default 120) for the
# process to end (a durable server may write or sync on the way out) before SIGKILL.
# Sets STOP_SECONDS to the time it took (not printed: it must run in this shell, not
# in a $(...) subshell, to wait for the process and take it out of PIDS).
stop_server() {
    local pid=$1 seconds=${2:-120} t0 state _ keep=() p
    t0=$(date +%s%N)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((seconds * 20))); do
        # An ended child stays a zombie until waited for: look at its state.
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
        [[ $state == Z || $state == gone ]] && break
        sleep 0.05
    done
    if [[ $state != Z && $state != gone ]]; then
        log "pid $pid still running $seconds s after SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    # shellcheck disable=SC2034 # for the caller
    STOP_SECONDS=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}

# ping_once PORT TARGET: one ping (PING, or a peek on beanstalkd) answered. A Redis
# still loading its file answers an error, which counts as no answer.
ping_once() {
    "$BIN/beuss-bench" -h 127.0.0.1 -p "$1" --target "$2" -c 1 -n 1 --rate 1000 -t rtt \
        --timeout 600 >/dev/null 2>&1
}

# wait_ping PORT TARGET SINCE_NS [SECONDS]: waits (up to SECONDS, default 600) until
# the server answers a ping; sets UP_SECONDS to the seconds from SINCE_NS (date +%s%N)
# to then.
wait_ping() {
    local port=$1 target=$2 since=$3 seconds=${4:-600} deadline
    deadline=$(($(date +%s) + seconds))
    until ping_once "$port" "$target"; do
        if (($(date +%s) > deadline)); then
            log "$target on port $port did not answer a ping within $seconds s"
            return 1
        fi
        sleep 0.01
    done
    # shellcheck disable=SC2034 # for the caller
    UP_SECONDS=$(awk -v a="$since" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}

# beuss_durable TMPDIR: true if this beuss-server build keeps a message across a
# SIGTERM and a restart on the same BDATADIR (builds before durability ignore it).
beuss_durable() {
    local dir=$1/probe got
    start_durable beuss-always "$dir"
    if ! echo durability-probe | "$BIN/beuss" --host 127.0.0.1 --port "$PORT" PUT probe \
        >/dev/null 2>&1; then
        stop_server "$PID"
        rm -rf "$dir"
        return 1
    fi
    stop_server "$PID"
    start_durable beuss-always "$dir"
    got=$("$BIN/beuss" --host 127.0.0.1 --port "$PORT" GET probe 2>/dev/null) || got=""
    stop_server "$PID"
    rm -rf "$dir"
    [[ $got == durability-probe ]]
}

# held_count CONFIG PORT: messages the server holds in bench-0 (where beuss-bench
# -t fill puts them).
held_count() {
    case $1 in
    beuss*)
        "$BIN/beuss" --host 127.0.0.1 --port "$2" STATS --json 2>/dev/null |
            grep -o '"messages":[0-9]*' | head -1 | cut -d: -f2
        ;;
    redis*) redis-cli -p "$2" llen bench-0 ;;
    beanstalkd*) bean_stat "$2" "stats-tube bench-0" current-jobs-ready ;;
    esac
}

# bean_stat PORT COMMAND FIELD: FIELD of a beanstalkd stats reply (0 if not found).
bean_stat() {
    local fd line n=""
    exec {fd}<>"/dev/tcp/127.0.0.1/$1"
    printf '%s\r\n' "$2" >&"$fd"
    while IFS= read -r -t 5 line <&"$fd"; do
        line=${line%$'\r'}
        [[ $line == NOT_FOUND ]] && break
        if [[ $line == "$3: "* ]]; then
            n=${line#*: }
            break
        fi
    done
    exec {fd}>&-
    echo "${n:-0}"
}

# put_live CONFIG PORT COUNT: COUNT messages of 32 bytes left in queue / list / tube
# "live", apart from the queues beuss-bench uses.
put_live() {
    local i fd line
    case $1 in
    beuss*)
        for i in $(seq "$3"); do
            printf '%032d' "$i" | "$BIN/beuss" --host 127.0.0.1 --port "$2" PUT live >/dev/null
        done
        ;;
    redis*)
        for i in $(seq "$3"); do printf 'RPUSH live %032d\n' "$i"; done |
            redis-cli -p "$2" >/dev/null
        ;;
    beanstalkd*)
        exec {fd}<>"/dev/tcp/127.0.0.1/$2"
        {
            printf 'use live\r\n'
            for i in $(seq "$3"); do printf 'put 0 0 600 32\r\n%032d\r\n' "$i"; done
        } >&"$fd"
        # USING, then one INSERTED per put.
        for i in $(seq $(($3 + 1))); do
            IFS= read -r -t 30 line <&"$fd" || { log "beanstalkd: no reply to put $i"; break; }
        done
        exec {fd}>&-
        ;;
    esac
}
