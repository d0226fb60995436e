#!/usr/bin/env bash
# Go client benchmark: beuss (pipelined PUT/GET, consumer) against go-redis
# (pipelined LPUSH/RPOP) on this machine. Starts its own redis-server and
# beuss-server on free loopback ports and ends them. Arguments go to the program
# (-n, -batch, -rounds, -size, -consume-n, -concurrency).
#
# go-redis comes from Debian (golang-gopkg-redis.v5-dev: go-redis v5, module path
# gopkg.in/redis.v5), since only Debian's packages are reachable here; it is copied
# into third_party/ with a go.mod, so the build needs no network.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
src=/usr/share/gocode/src/gopkg.in/redis.v5
[ -d "$src" ] || need+=(golang-gopkg-redis.v5-dev)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q </dev/null >/dev/null
    apt-get install -y -q "${need[@]}" </dev/null >/dev/null
fi
dst="$here/third_party/redis.v5"
if [ ! -f "$dst/go.mod" ]; then
    rm -rf "$dst"
    mkdir -p "$dst"
    tar -C "$src" -cf - --exclude='*_test.go' . | tar -C "$dst" -xf -
    printf 'module gopkg.in/redis.v5\n\ngo 1.19\n' > "$dst/go.mod"
fi
server="${BEUSS_SERVER:-$repo/target/release/beuss-server}"
if [ ! -x "$server" ]; then
    (cd "$repo" && cargo build --release --bin beuss-server)
    server="$repo/target/release/beuss-server"
fi
cd "$here"
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
go build -o "$here/third_party/beuss-go-bench" .
exec "$here/third_party/beuss-go-bench" -server "$server" "$@"
