#!/usr/bin/env python3
"""Usage: python3 bench/jobs.py SERVER [COUNT] [ROUNDS]

What unique keys (protocol.md section 18) and expiry (19) cost a beuss-server:

1. PUT cost: COUNT (default 200,000) 16-byte messages put on one queue, pipelined
   1,000 frames a write, as plain PUTs (flags 0), as PUTs with a distinct 8-byte
   key each (flags 0x04), then the same keyed PUTs again (every one a DUPLICATE),
   and as PUTs with a time to live of an hour (flags 0x08).
   The figure is the server's CPU time for the batch (utime + stime from
   /proc/PID/stat), so the Python client's own cost is left out; wall time is
   printed too. Cases alternate, a fresh server each, ROUNDS times (default 5);
   medians and min-max are printed.
2. Memory: the server's RSS with 1,000,000 messages held, plain, keyed and with a
   time to live, and with 1,000,000 keys remembered after their messages were taken
   (a window of an hour, BMAXUNIQUEKEYS=1000000), each over the RSS of an empty
   server.

Servers listen on a free loopback port with BMAXMEMORY=4G and are stopped by pid."""
import os, signal, socket, struct, subprocess, sys, time

SERVER = sys.argv[1]
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
TICK = os.sysconf("SC_CLK_TCK")
PAYLOAD = b"0123456789abcdef"
BATCH = 1000


def put_plain(queue):
    body = bytes([len(queue)]) + queue + PAYLOAD
    return struct.pack(">IBB", 2 + len(body), 0x10, 0) + body


def put_keyed(queue, key, window_ms=0):
    body = bytes([len(queue)]) + queue + bytes([len(key)]) + key + b"\x00"
    body += struct.pack(">I", window_ms) + PAYLOAD
    return struct.pack(">IBB", 2 + len(body), 0x10, 0x04) + body


def put_ttl(queue, ttl_ms=3_600_000):
    body = bytes([len(queue)]) + queue + struct.pack(">IB", ttl_ms, 0) + PAYLOAD
    return struct.pack(">IBB", 2 + len(body), 0x10, 0x08) + body


def get_frame(queue, max_):
    body = bytes([len(queue)]) + queue + struct.pack(">IH", 0, max_)
    return struct.pack(">IBB", 2 + len(body), 0x11, 0) + body


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def figures(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return ticks, rss


class Server:
    def __init__(self, extra=None):
        self.port = free_port()
        env = dict(os.environ, BHOST="127.0.0.1", BPORT=str(self.port), RUST_LOG="warn",
                   BMAXMEMORY="4G", BQUEUEIDLE="0")
        env.update(extra or {})
        self.proc = subprocess.Popen([SERVER], env=env, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.01)
        self.buf = b""

    def replies(self, count, status=None):
        got = 0
        while got < count:
            while len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) < 4 + n:
                    break
                if status is not None:
                    assert self.buf[4] in status, self.buf[4:4 + n]
                self.buf = self.buf[4 + n:]
                got += 1
                if got == count:
                    return
            chunk = self.sock.recv(1 << 20)
            assert chunk, "server closed"
            self.buf += chunk

    def run(self, frames, status):
        for i in range(0, len(frames), BATCH):
            part = frames[i:i + BATCH]
            self.sock.sendall(b"".join(part))
            self.replies(len(part), status)

    def stop(self):
        self.sock.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def timed(server, frames, status):
    t0, _ = figures(server.proc.pid)
    w0 = time.perf_counter()
    server.run(frames, status)
    w1 = time.perf_counter()
    t1, _ = figures(server.proc.pid)
    return (t1 - t0) / TICK * 1000.0, (w1 - w0) * 1000.0


def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def show(label, xs, unit):
    print(f"  {label:34} median {med(xs):8.1f} {unit}  (min {min(xs):.1f}, max {max(xs):.1f})")


def put_cost():
    q = b"jobs"
    keys = [b"k%07d" % i for i in range(COUNT)]
    plain = [put_plain(q)] * COUNT
    keyed = [put_keyed(q, k) for k in keys]
    ttl = [put_ttl(q)] * COUNT
    results = {"plain": ([], []), "keyed": ([], []), "duplicate": ([], []), "ttl": ([], [])}
    for _ in range(ROUNDS):
        for case in ("plain", "keyed", "ttl"):
            s = Server()
            try:
                if case == "plain":
                    cpu, wall = timed(s, plain, {0x10})
                elif case == "ttl":
                    cpu, wall = timed(s, ttl, {0x10})
                else:
                    cpu, wall = timed(s, keyed, {0x10})
                    dcpu, dwall = timed(s, keyed, {0x54})
                    results["duplicate"][0].append(dcpu)
                    results["duplicate"][1].append(dwall)
                results[case][0].append(cpu)
                results[case][1].append(wall)
            finally:
                s.stop()
    print(f"PUT of {COUNT} 16-byte messages, pipelined {BATCH} a write, {ROUNDS} rounds:")
    for case, label in (("plain", "plain PUT"), ("keyed", "PUT with a distinct key"),
                        ("duplicate", "the same keyed PUTs again (DUPLICATE)"),
                        ("ttl", "PUT with a time to live")):
        show(label + ", server CPU", results[case][0], "ms")
        show(label + ", wall", results[case][1], "ms")
    ratio = [k / p for k, p in zip(results["keyed"][0], results["plain"][0]) if p > 0]
    if ratio:
        print(f"  keyed / plain server CPU: median {med(ratio):.2f} "
              f"(min {min(ratio):.2f}, max {max(ratio):.2f})")


def memory():
    n = 1_000_000
    q = b"jobs"
    print(f"RSS with {n} messages of 16 bytes (over an empty server's):")
    cases = [
        ("plain messages held", lambda: [put_plain(q)] * n, {0x10}, False),
        ("keyed messages held (8-byte keys)", lambda: [put_keyed(q, b"k%07d" % i) for i in range(n)],
         {0x10}, False),
        ("messages with a time to live held", lambda: [put_ttl(q)] * n, {0x10}, False),
        ("keys remembered, messages taken", lambda: [put_keyed(q, b"k%07d" % i, 3_600_000) for i in range(n)],
         {0x10}, True),
    ]
    for label, make, status, take in cases:
        s = Server({"BMAXUNIQUEKEYS": str(n)})
        try:
            _, empty = figures(s.proc.pid)
            s.run(make(), status)
            if take:
                for _ in range(n // 1000):
                    s.sock.sendall(get_frame(q, 1000))
                    s.replies(1, {0x12})
            _, rss = figures(s.proc.pid)
            print(f"  {label:36} {(rss - empty) / 1024:8.1f} MiB  "
                  f"({(rss - empty) * 1024 / n:.0f} bytes each)")
        finally:
            s.stop()


if __name__ == "__main__":
    put_cost()
    memory()
