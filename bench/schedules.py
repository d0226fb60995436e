#!/usr/bin/env python3
"""Usage: python3 bench/schedules.py SERVER [IDLE_SECONDS] [ROUNDS]

What schedules cost a beuss-server while they wait: for 0, then 10,000 schedules
(cron '0 3 * * *', 8-byte payloads), the server's CPU time (utime + stime from
/proc/PID/stat, in clock ticks), its wake-ups (voluntary context switches: each is
a return from epoll_wait) during IDLE_SECONDS (default 20) with no client traffic,
and its RSS. Then the same with a 'every 1s' schedule added to the 10,000, to show
that the cost follows the runs, not the number of schedules. Each case starts a
fresh server (on a free loopback port, stopped by pid) and runs ROUNDS times
(default 3); medians and min-max are printed."""
import os, signal, socket, struct, subprocess, sys, time

SERVER = sys.argv[1]
IDLE = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
TICK = os.sysconf("SC_CLK_TCK")


def frame(op, body):
    return struct.pack(">IBB", 2 + len(body), op, 0) + body


def name(text):
    b = text.encode()
    return bytes([len(b)]) + b


def schedule(n, spec, queue, payload):
    return frame(0x50, name(n) + name(spec) + b"\x00" + name(queue) + b"\x05" + payload)


def recv_frames(s, count):
    buf = b""
    got = 0
    while got < count:
        chunk = s.recv(1 << 20)
        assert chunk, "server closed"
        buf += chunk
        while len(buf) >= 4:
            (n,) = struct.unpack(">I", buf[:4])
            if len(buf) < 4 + n:
                break
            assert buf[4] == 0x50, buf[4 : 4 + n]
            buf = buf[4 + n :]
            got += 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def figures(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, v = line.split(":", 1)
            status[k] = (v.split() or [""])[0]
    return ticks, int(status["voluntary_ctxt_switches"]), int(status["VmRSS"])


def case(count, every):
    port = free_port()
    env = dict(os.environ, BHOST="127.0.0.1", BPORT=str(port), RUST_LOG="warn")
    proc = subprocess.Popen([SERVER], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                s = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.01)
        frames = [schedule(f"s{i:05}", "0 3 * * *", "jobs", b"8 bytes!") for i in range(count)]
        if every:
            frames.append(schedule("beat", "@every 1s", "beats", b"beat"))
        for start in range(0, len(frames), 500):
            batch = frames[start : start + 500]
            s.sendall(b"".join(batch))
            recv_frames(s, len(batch))
        time.sleep(1.0)  # let the defining turn's work settle
        t0, w0, _ = figures(proc.pid)
        time.sleep(IDLE)
        t1, w1, rss = figures(proc.pid)
        s.close()
        return (t1 - t0) * 1000 / TICK, w1 - w0, rss
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def summary(values):
    v = sorted(values)
    return f"{v[len(v) // 2]:g} ({v[0]:g}-{v[-1]:g})"


print(f"# {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, {os.cpu_count()} cores, "
      f"{IDLE:g} s idle per round, {ROUNDS} rounds; median (min-max)")
print("| schedules | CPU ms while idle | wake-ups | RSS KiB |")
print("|---|---:|---:|---:|")
for label, count, every in [("0", 0, False), ("10,000 (03:00 daily)", 10_000, False),
                            ("10,000 + 1 every 1s", 10_000, True)]:
    cpu, wakes, rss = [], [], []
    for _ in range(ROUNDS):
        c, w, r = case(count, every)
        cpu.append(c); wakes.append(w); rss.append(r)
    print(f"| {label} | {summary(cpu)} | {summary(wakes)} | {summary(rss)} |")
