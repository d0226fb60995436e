#!/usr/bin/env python3
"""Usage: python3 bench/redelivery.py PORT [SAMPLES]  (a beuss-server listening on PORT)

Redelivery latency: A leases a message (lease L ms) and never acks; B waits in a
parked LEASE. Latency = time B receives it - (time A sent its LEASE + L): an upper
bound on (expiry -> delivery to the waiting consumer)."""
import socket, struct, sys, time
PORT = int(sys.argv[1]); N = int(sys.argv[2]) if len(sys.argv) > 2 else 300; L = 20
def frame(op, flags, body): return struct.pack(">IBB", 2 + len(body), op, flags) + body
def name(q): b = q.encode(); return bytes([len(b)]) + b
def recv(s):
    buf = b""
    while len(buf) < 4: buf += s.recv(65536)
    (n,) = struct.unpack(">I", buf[:4])
    while len(buf) < 4 + n: buf += s.recv(65536)
    return buf[4:4+n]
def conn():
    s = socket.create_connection(("127.0.0.1", PORT)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
a, b = conn(), conn()
lat = []
for i in range(N):
    a.sendall(frame(0x10, 0, name("r") + b"job")); assert recv(a)[0] == 0x10
    t_send = time.monotonic()
    a.sendall(frame(0x13, 0, name("r") + struct.pack(">IHIHB", 0, 1, L, 0, 1))); f = recv(a); assert f[0] == 0x15
    b.sendall(frame(0x13, 0, name("r") + struct.pack(">IHIHB", 0xFFFFFFFF, 1, 60000, 0, 0)))
    f = recv(b); t_got = time.monotonic(); assert f[0] == 0x15, f
    lat.append((t_got - t_send - L / 1000) * 1e6)
    (id_,) = struct.unpack(">Q", f[5:13]); (att,) = struct.unpack(">I", f[13:17])
    b.sendall(frame(0x14, 0, name("r") + struct.pack(">HQI", 1, id_, att))); assert recv(b) == bytes([0x16, 0, 1, 0])
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
print(f"redelivery after lease expiry, {N} samples: p50 {q(.5):.0f} us, p90 {q(.9):.0f} us, p99 {q(.99):.0f} us, max {lat[-1]:.0f} us")
