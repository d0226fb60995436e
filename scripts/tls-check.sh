#!/usr/bin/env bash
# Runs the README's TLS recipe ("Security": stunnel in front of beuss-server) end to
# end on loopback and checks that it works: a self-signed certificate, beuss-server
# with a token file, stunnel terminating TLS in front of it, a client-side stunnel
# that verifies the certificate, and the beuss CLI putting and getting a message
# through both. Also checks that the TLS port refuses plain beuss and that a client
# stunnel without the certificate cannot connect. Installs stunnel4 (apt-get) if
# missing. Exits non-zero on any failure.
#
#   bash scripts/tls-check.sh              uses target/debug (built if needed)
#   BEUSS_BIN=target/release bash scripts/tls-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v stunnel >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq stunnel4 openssl >/dev/null
    else
        echo "tls-check: stunnel is not installed (apt-get install stunnel4)" >&2
        exit 1
    fi
fi
BIN=${BEUSS_BIN:-target/debug}
if [ -z "${BEUSS_BIN:-}" ]; then
    cargo build --quiet --bin beuss-server --bin beuss
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits (up to 10 s) until something accepts on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "tls-check: nothing listens on port $1" >&2
    return 1
}

# 1. A certificate for "localhost" (self-signed here; use your own CA or Let's
#    Encrypt for a real host) and a token file.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
chmod 600 "$work/token" "$work/key.pem"

beuss_port=$(free_port)
tls_port=$(free_port)
local_port=$(free_port)

# 2. The server on loopback only, requiring the token.
BHOST=127.0.0.1 BPORT=$beuss_port BAUTHFILE="$work/token" RUST_LOG=warn \
    "$BIN/beuss-server" 2>"$work/server.log" &
pids+=($!)

# 3. stunnel on the server machine: TLS on tls_port, plain beuss on loopback behind.
cat > "$work/server.conf" <<CONF
foreground = yes
pid =
[beuss]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$beuss_port
cert = $work/cert.pem
key = $work/key.pem
CONF
stunnel "$work/server.conf" 2>"$work/stunnel-server.log" &
pids+=($!)

# 4. stunnel on the client machine: plain beuss on its loopback, TLS to the server,
#    the server's certificate verified.
cat > "$work/client.conf" <<CONF
foreground = yes
pid =
[beuss]
client = yes
accept = 127.0.0.1:$local_port
connect = 127.0.0.1:$tls_port
verifyChain = yes
CAfile = $work/cert.pem
checkHost = localhost
CONF
stunnel "$work/client.conf" 2>"$work/stunnel-client.log" &
pids+=($!)
wait_port "$beuss_port"
wait_port "$tls_port"
wait_port "$local_port"

# 5. The CLI through the tunnel.
export BHOST=127.0.0.1
printf 'over TLS' | "$BIN/beuss" --port "$local_port" --auth-file "$work/token" PUT secure
got=$("$BIN/beuss" --port "$local_port" --auth-file "$work/token" GET secure)
if [ "$got" != "over TLS" ]; then
    echo "tls-check: GET through the tunnel gave \"$got\"" >&2
    exit 1
fi
# The token is still required behind TLS.
if "$BIN/beuss" --port "$local_port" GET secure 2>/dev/null; then
    echo "tls-check: the server answered without a token" >&2
    exit 1
fi
# Plain beuss on the TLS port gets no answer it understands.
if "$BIN/beuss" --port "$tls_port" --auth-file "$work/token" PING >/dev/null 2>&1; then
    echo "tls-check: the TLS port answered plain beuss" >&2
    exit 1
fi
# A client that does not trust the certificate is refused by its own stunnel.
other_cert="$work/other.pem"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$work/other-key.pem" -out "$other_cert" 2>/dev/null
untrusting_port=$(free_port)
sed -e "s|$local_port|$untrusting_port|" -e "s|CAfile = .*|CAfile = $other_cert|" \
    "$work/client.conf" > "$work/untrusting.conf"
stunnel "$work/untrusting.conf" 2>"$work/stunnel-untrusting.log" &
pids+=($!)
wait_port "$untrusting_port"
if "$BIN/beuss" --port "$untrusting_port" --auth-file "$work/token" PING >/dev/null 2>&1; then
    echo "tls-check: a client that does not trust the certificate got through" >&2
    exit 1
fi
echo "tls-check: ok (beuss over stunnel TLS with a verified certificate and a token)"
