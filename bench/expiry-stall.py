#!/usr/bin/env python3
"""Usage: python3 bench/expiry-stall.py PORT [N]  (a beuss-server already listening on PORT)

Lease N messages with a short lease, then measure PING round trips on another
connection while they all expire at once. Prints the worst and p99 PING gap."""
import socket, struct, sys, time

HOST, PORT = "127.0.0.1", int(sys.argv[1])
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
LEASE_MS = 1500

def frame(op, flags, body):
    return struct.pack(">IBB", 2 + len(body), op, flags) + body

def name(q):
    b = q.encode(); return bytes([len(b)]) + b

def recv_frame(s, buf):
    while len(buf) < 4:
        buf += s.recv(1 << 20)
    (n,) = struct.unpack(">I", buf[:4])
    while len(buf) < 4 + n:
        buf += s.recv(1 << 20)
    return buf[4:4 + n], buf[4 + n:]

a = socket.create_connection((HOST, PORT)); a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# fill
batch = b"".join(frame(0x10, 0, name("stall") + b"x" * 32) for _ in range(1000))
buf = b""
for _ in range(N // 1000):
    a.sendall(batch)
    for _ in range(1000):
        _, buf = recv_frame(a, buf)
# lease all, detached, max 65535 per LEASE
got = 0
t_lease = time.monotonic()
while got < N:
    a.sendall(frame(0x13, 0, name("stall") + struct.pack(">IHIHB", 0, 65535, LEASE_MS, 0, 1)))
    f, buf = recv_frame(a, buf)
    assert f[0] == 0x15, f[:8]
    (count,) = struct.unpack(">I", f[1:5]); got += count
print(f"leased {got} in {time.monotonic() - t_lease:.3f}s", flush=True)
b = socket.create_connection((HOST, PORT)); b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
gaps = []; buf2 = b""
end = t_lease + LEASE_MS / 1000 + 1.5
while time.monotonic() < end:
    t = time.monotonic(); b.sendall(frame(0x02, 0, b"")); _, buf2 = recv_frame(b, buf2)
    gaps.append(((time.monotonic() - t) * 1e3, t - t_lease - LEASE_MS / 1000))
top = sorted(gaps, reverse=True)[:5]
print("worst gaps (ms, at s after the deadline):", [(round(g, 2), round(at, 3)) for g, at in top])
gaps = sorted(g for g, _ in gaps)
print(f"pings {len(gaps)}: p50 {gaps[len(gaps)//2]:.3f} ms, p99 {gaps[int(len(gaps)*.99)]:.3f} ms, max {gaps[-1]:.3f} ms")
