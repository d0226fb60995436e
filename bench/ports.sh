# bench/ports.sh: loopback ports for the servers compare.sh and profile.sh start.
# Sourced, not run; the caller defines log() and OUT.

# Listening ports come from below the ephemeral range: 10,000 closed client
# connections leave as many ephemeral ports in TIME_WAIT, where a bind would fail.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
USED_PORTS=" "

# free_port: prints a port nothing listens on and this script has not handed out.
free_port() {
    local port _
    for _ in $(seq 200); do
        port=$((EPHEMERAL_LOW - 1 - RANDOM % 10000))
        [[ $USED_PORTS == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            USED_PORTS+="$port "
            echo "$port"
            return 0
        fi
    done
    log "no free port found"
    return 1
}

# wait_port PORT [SECONDS]: returns once something listens on PORT (default: 10 s).
wait_port() {
    local seconds=${2:-10} _
    for _ in $(seq $((seconds * 20))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    log "nothing listens on port $1 after $seconds s; see $OUT/*.log"
    return 1
}
