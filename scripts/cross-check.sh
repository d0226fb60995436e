#!/usr/bin/env bash
# Runs the release builds for real: for each target, unpacks the tarball release.sh
# made, starts that target's beuss-server on a free loopback port (natively for
# x86_64, under qemu-user for the ARM targets, with the CPU pinned to the oldest one
# the target supports: Cortex-A7 for armv7, ARM1176 (Pi 1/Zero) for arm), and drives
# it with the same target's beuss CLI: PUT/GET of text and of every byte value, GET to
# a file and to stdout, ON receiving messages as they are put, STATS --json. Bytes are
# compared with cmp. Every server and ON it starts is stopped by pid (trap on exit).
#
#   bash scripts/cross-check.sh                 build with ./release.sh, check all targets
#   bash scripts/cross-check.sh --no-build      check the tarballs already in dist/
#   bash scripts/cross-check.sh TARGET...       only these targets
#
# Installs qemu-user-static with apt-get when missing. Runs unattended (CI=true, no
# stdin). Exits non-zero if any target fails; prints a summary table either way, with
# the static size of beuss-server per target and, for x86_64 (native, so the number is
# the server's own), its resident memory (VmRSS) after start-up and after the checks.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

ALL_TARGETS=(
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
    armv7-unknown-linux-musleabihf
    arm-unknown-linux-musleabihf
)
BUILD=1
TARGETS=()
for arg in "$@"; do
    case $arg in
        --no-build) BUILD=0 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "cross-check: unknown option $arg" >&2; exit 2 ;;
        *) TARGETS+=("$arg") ;;
    esac
done
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")

VERSION=$(awk '
    /^\[/ { in_package = ($0 == "[package]") }
    in_package && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
' Cargo.toml)
DIST=${DIST_DIR:-dist}
STEP_TIMEOUT=60 # seconds any one CLI call may take (qemu is slow, not that slow)
START=$SECONDS

say() { printf '==> %s\n' "$*"; }

# How to run a target's binaries on this machine.
runner() {
    case $1 in
        x86_64-unknown-linux-musl) echo "" ;;
        aarch64-unknown-linux-musl) echo "qemu-aarch64-static" ;;
        armv7-unknown-linux-musleabihf) echo "qemu-arm-static -cpu cortex-a7" ;;
        arm-unknown-linux-musleabihf) echo "qemu-arm-static -cpu arm1176" ;;
        *) echo "cross-check: unknown target $1" >&2; return 1 ;;
    esac
}

ensure_qemu() {
    command -v qemu-aarch64-static >/dev/null && command -v qemu-arm-static >/dev/null && return
    say "installing qemu-user-static"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q qemu-user-static </dev/null ||
        { $sudo apt-get update -q </dev/null && $sudo apt-get install -y -q qemu-user-static </dev/null; }
    command -v qemu-aarch64-static >/dev/null && command -v qemu-arm-static >/dev/null
}

# VmRSS of a process in kB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Checks one target; runs in a subshell whose EXIT trap stops what it started.
# Prints "key=value" facts for the summary on fd 3.
check_target() {
    set -eE # -E: the ERR trap below fires inside functions too
    trap 'echo "FAILED at: $BASH_COMMAND (exit $?)"' ERR
    local target=$1 work=$2
    local -a run
    read -r -a run <<<"$(runner "$target")"
    PIDS=() # global to the subshell, so that the EXIT trap still sees it
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

    local tarball="$DIST/beuss-$VERSION-$target.tar.gz"
    [[ -f $tarball ]] || { echo "no $tarball (run ./release.sh)"; return 1; }
    tar -xzf "$tarball" -C "$work"
    local bin="$work/beuss-$VERSION-$target"
    echo "server_size=$(stat -c %s "$bin/beuss-server")" >&3

    # Starts a server with the given extra environment (VAR=value ...), logging to
    # $work/server.log; sets $server and $port. BPORT=0: the kernel picks a free
    # port, read back from the server's log, so two checks can never race for one.
    local server="" port="" i
    start_server() {
        # The log is emptied here, before the fork: a redirection in the background
        # child may happen after the loop below first reads the file, which then
        # finds no file at all, or the port of the server before.
        : >"$work/server.log"
        env BHOST=127.0.0.1 BPORT=0 RUST_LOG=info "$@" "${run[@]}" "$bin/beuss-server" \
            </dev/null >/dev/null 2>>"$work/server.log" &
        server=$!
        PIDS+=("$server")
        port=""
        for ((i = 0; i < 400; i++)); do
            port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log")
            [[ -n $port ]] && break
            kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; echo "server died"; return 1; }
            sleep 0.05
        done
        [[ -n $port ]] || { cat "$work/server.log"; echo "server did not start"; return 1; }
        echo "server on 127.0.0.1:$port (${run[*]:-native}) $*"
    }
    start_server
    [[ -n ${run[*]} ]] || echo "rss_start=$(rss_kb "$server")" >&3

    cli() { BHOST=127.0.0.1 BPORT=$port timeout "$STEP_TIMEOUT" "${run[@]}" "$bin/beuss" "$@"; }

    # Text: PUT from stdin, GET to a file.
    printf 'hello from %s\n' "$target" >"$work/text.in"
    cli PUT text <"$work/text.in"
    cli GET text "$work/text.out"
    cmp "$work/text.in" "$work/text.out"
    echo "text round trip ok"

    # Binary: every byte value four times, NUL runs, no final newline; GET to stdout.
    local b
    for ((b = 0; b < 1024; b++)); do printf "\\$(printf %03o $((b % 256)))"; done >"$work/bin.in"
    printf '\0\0\0\0\r\n\0end' >>"$work/bin.in"
    cli PUT bin <"$work/bin.in"
    cli GET bin >"$work/bin.out"
    cmp "$work/bin.in" "$work/bin.out"
    echo "binary round trip ok ($(stat -c %s "$work/bin.in") bytes)"

    # Empty queue: exit code 4.
    local code=0
    cli GET nothing >/dev/null 2>&1 || code=$?
    [[ $code -eq 4 ]] || { echo "GET on an empty queue exited $code, not 4"; return 1; }

    # ON: messages put after it started arrive, in order, one per line.
    # Started without the cli function so that $! is timeout's pid, which passes
    # SIGTERM on to the command it runs.
    BHOST=127.0.0.1 BPORT=$port timeout "$STEP_TIMEOUT" "${run[@]}" "$bin/beuss" ON events \
        >"$work/on.out" 2>"$work/on.err" &
    PIDS+=("$!")
    printf 'one\n' | cli PUT events
    printf 'two' | cli PUT events
    printf 'three\nlines\n' | cli PUT events
    printf 'one\ntwo\nthree\\nlines\n' >"$work/on.expected"
    for ((i = 0; i < 600; i++)); do
        [[ $(wc -l <"$work/on.out") -ge 3 ]] && break
        sleep 0.05
    done
    cmp "$work/on.expected" "$work/on.out" ||
        { echo "ON printed:"; cat "$work/on.out" "$work/on.err"; return 1; }
    echo "ON ok"

    # ON --raw gets a binary message byte for byte.
    BHOST=127.0.0.1 BPORT=$port timeout "$STEP_TIMEOUT" "${run[@]}" "$bin/beuss" ON binon --raw \
        >"$work/onraw.out" 2>"$work/onraw.err" &
    PIDS+=("$!")
    cli PUT binon <"$work/bin.in"
    local want
    want=$(stat -c %s "$work/bin.in")
    for ((i = 0; i < 600; i++)); do
        [[ $(stat -c %s "$work/onraw.out") -ge $want ]] && break
        sleep 0.05
    done
    cmp "$work/bin.in" "$work/onraw.out"
    echo "ON --raw ok"

    cli STATS --json >"$work/stats.json"
    grep -qE '"puts":6[,}]' "$work/stats.json" || { cat "$work/stats.json"; return 1; }
    cli PING
    [[ -n ${run[*]} ]] || echo "rss_after=$(rss_kb "$server")" >&3

    # Stop cleanly: SIGTERM, then the server must exit 0 on its own.
    kill -TERM "$server"
    local status=0
    wait "$server" || status=$?
    [[ $status -eq 0 ]] || { echo "server exited $status on SIGTERM"; return 1; }
    grep -q "stopped" "$work/server.log" || { cat "$work/server.log"; return 1; }
    echo "server stopped cleanly"

    # With BDATADIR, messages survive a kill -9 and a clean restart (the journal's
    # CRC32C runs on this CPU: hardware on x86_64 and aarch64, a table on 32-bit ARM).
    start_server BDATADIR="$work/data" BFSYNC=always
    cli PUT kept <"$work/bin.in"
    printf 'second\n' | cli PUT kept
    printf 'gone\n' | cli PUT kept2
    cli GET kept2 >/dev/null
    kill -KILL "$server"
    wait "$server" 2>/dev/null || true
    start_server BDATADIR="$work/data"
    grep -q "loaded 2 messages" "$work/server.log" || { cat "$work/server.log"; return 1; }
    cli GET kept >"$work/kept.out"
    cmp "$work/bin.in" "$work/kept.out"
    kill -TERM "$server"
    wait "$server" || { echo "durable server exited $? on SIGTERM"; return 1; }
    start_server BDATADIR="$work/data"
    cli GET kept >"$work/kept2.out"
    printf 'second\n' | cmp - "$work/kept2.out"
    code=0
    cli GET kept2 >/dev/null 2>&1 || code=$?
    [[ $code -eq 4 ]] || { echo "an acknowledged GET came back after restart"; return 1; }
    kill -TERM "$server"
    wait "$server" || { echo "durable server exited $? on SIGTERM"; return 1; }
    echo "journal kept messages across kill -9 and restart"
}

if [[ $BUILD -eq 1 ]]; then
    say "building: ./release.sh ${TARGETS[*]}"
    ./release.sh "${TARGETS[@]}"
fi
ensure_qemu
say "checking $DIST/SHA256SUMS"
(cd "$DIST" && sha256sum --check --quiet SHA256SUMS) ||
    { echo "cross-check: FAILED: the tarballs do not match SHA256SUMS"; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=0
ROWS=()
for target in "${TARGETS[@]}"; do
    say "checking $target"
    mkdir -p "$WORK/$target"
    result=PASS
    set +e # check_target sets -e again inside its subshell
    (check_target "$target" "$WORK/$target") 3>"$WORK/$target.facts" 2>&1 |
        sed -u "s/^/  [$target] /"
    status=${PIPESTATUS[0]}
    set -e
    [[ $status -eq 0 ]] || { result=FAIL; FAILED=1; }
    server_size=$(sed -n 's/^server_size=//p' "$WORK/$target.facts")
    rss_start=$(sed -n 's/^rss_start=//p' "$WORK/$target.facts")
    rss_after=$(sed -n 's/^rss_after=//p' "$WORK/$target.facts")
    rss=""
    [[ -n $rss_start ]] && rss="${rss_start} kB at start, ${rss_after:-?} kB after the checks"
    ROWS+=("$(printf '%-32s %-5s %12s  %s' "$target" "$result" "${server_size:-?}" "${rss:-"$(runner "$target")"}")")
done

echo
echo "cross-check summary: beuss $VERSION, $((SECONDS - START)) s"
printf '%-32s %-5s %12s  %s\n' target result server-bytes "server RSS (native) / runner"
printf '%s\n' "${ROWS[@]}"
if [[ $FAILED -ne 0 ]]; then
    echo "cross-check: FAILED (see the [target] lines above)"
    exit 1
fi
echo "cross-check: all targets passed"
