#!/usr/bin/env bash
# CI for the Go client (run from anywhere, e.g. `bash clients/go/ci.sh` from the
# repository root): installs Go if it is missing, checks formatting, vets, and runs
# the unit and integration tests against the real beuss-server. Needs no network:
# the client module has no dependencies.
#
# Environment: BEUSS_SERVER (server binary; default <repo>/target/debug/beuss-server,
# which ci.sh first brings up to date with cargo), BEUSS_GO_RACE=1 (also run the tests with -race).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if ! command -v go >/dev/null 2>&1; then
    echo "ci.sh: go not found, installing golang-go" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q </dev/null
    $sudo apt-get install -y -q golang-go </dev/null
fi

# Offline and reproducible: no module downloads, no toolchain switching, and a
# build cache that works where $HOME is not writable.
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off
if [ -z "${GOCACHE:-}" ] && ! { [ -n "${HOME:-}" ] && [ -w "${HOME:-/nonexistent}" ]; }; then
    export GOCACHE="$repo/target/go-cache"
    export GOPATH="${GOPATH:-$repo/target/go-path}"
fi

# Without $BEUSS_SERVER, the checkout's own debug build, brought up to date (a no-op
# when it is), so that a stale binary from an older checkout is never tested.
if [ -z "${BEUSS_SERVER:-}" ]; then
    (cd "$repo" && cargo build --quiet --bin beuss-server)
    export BEUSS_SERVER="$repo/target/debug/beuss-server"
fi

go version
cd "$here"
# The bench's own files only: its third_party/ copy of go-redis is not ours to format.
unformatted="$(gofmt -l . "$repo"/bench/clients/go/*.go)"
if [ -n "$unformatted" ]; then
    echo "ci.sh: gofmt would change:" >&2
    echo "$unformatted" >&2
    exit 1
fi
go vet ./...
go test -count=1 -timeout 170s ./...
if [ "${BEUSS_GO_RACE:-0}" = 1 ]; then
    go test -race -count=1 -timeout 300s ./...
fi
echo "ci.sh: Go client OK"
