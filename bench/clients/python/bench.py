"""Python client benchmark: beuss vs redis-py on the same machine.

Figures (messages of --size bytes, --messages per round, --batch requests in flight):

* put / get: pipelined PUT then pipelined GET (one message per GET) with the blocking
  beuss Client, against redis-py ``pipeline()`` LPUSH then RPOP;
* async_put: the same PUTs from AsyncClient.put_many;
* consume: AsyncConsumer leasing and acking (trivial handler), messages/s from the
  first lease to the last ack confirmed; with --concurrency/--prefetch (64/1000), and
  as consume_c16 with concurrency 16 and the default prefetch (32).

Several rounds; prints median and spread, and one machine-readable line per figure:
``client=python server=beuss op=put msgs_per_s=... min=... max=... rounds=N``.

It starts its own beuss-server ($BEUSS_SERVER, default target/release/beuss-server)
and redis-server on free loopback ports and ends them by pid. Needs redis-py (run.sh
and hiredis, its C parser, into a venv of its own). Numbers on a shared 2-core machine
are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Tuple

import beuss

REPO = pathlib.Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_beuss() -> Tuple[subprocess.Popen[bytes], str]:
    binary = os.environ.get("BEUSS_SERVER") or str(REPO / "target" / "release" / "beuss-server")
    env = dict(os.environ, BHOST="127.0.0.1", BPORT="0", BMAXMEMORY="2G", RUST_LOG="info")
    proc = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    found: List[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            m = re.search(r"listening on (127\.0\.0\.1:\d+)", raw.decode("utf-8", "replace"))
            if m and not found:
                found.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(10) or not found:
        proc.kill()
        raise SystemExit("beuss-server did not start")
    return proc, found[0]


def start_redis() -> Tuple[subprocess.Popen[bytes], int]:
    import redis

    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    r = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            r.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("redis-server did not start")
            time.sleep(0.01)
    r.close()
    return proc, port


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def beuss_put_get(address: str, n: int, batch: int, body: bytes) -> Tuple[float, float]:
    with beuss.Client(address) as c:
        c.purge("bench")
        chunks = [[body] * batch for _ in range(n // batch)]

        def put() -> None:
            for chunk in chunks:
                c.put_many("bench", chunk)

        def get() -> None:
            got = 0
            for _ in range(n // batch):
                pipe = c.pipeline()
                for _ in range(batch):
                    pipe.get("bench")
                for r in pipe.execute():
                    got += len(r)
            assert got == n, got

        return n / timed(put), n / timed(get)


def redis_put_get(port: int, n: int, batch: int, body: bytes) -> Tuple[float, float]:
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    r.delete("bench")

    def put() -> None:
        for _ in range(n // batch):
            pipe = r.pipeline(transaction=False)
            for _ in range(batch):
                pipe.lpush("bench", body)
            pipe.execute()

    def get() -> None:
        got = 0
        for _ in range(n // batch):
            pipe = r.pipeline(transaction=False)
            for _ in range(batch):
                pipe.rpop("bench")
            got += sum(1 for x in pipe.execute() if x is not None)
        assert got == n, got

    rates = n / timed(put), n / timed(get)
    r.close()
    return rates


def beuss_async_put(address: str, n: int, batch: int, body: bytes) -> float:
    async def main() -> float:
        async with beuss.AsyncClient(address) as c:
            await c.purge("abench")
            start = time.perf_counter()
            for _ in range(n // batch):
                await c.put_many("abench", [body] * batch)
            elapsed = time.perf_counter() - start
            await c.purge("abench")
            return n / elapsed

    return asyncio.run(main())


def beuss_consume(address: str, n: int, body: bytes, concurrency: int, prefetch: int) -> float:
    async def main() -> float:
        async with beuss.AsyncClient(address) as c:
            await c.purge("cbench")
            for start in range(0, n, 10_000):
                await c.put_many("cbench", [body] * min(10_000, n - start))
            handled = 0
            done = asyncio.Event()

            async def handle(m: beuss.AsyncMessage) -> None:
                nonlocal handled
                handled += 1
                if handled == n:
                    done.set()

            cons = c.consume("cbench", concurrency=concurrency, prefetch=prefetch, wait=0.05)
            t0 = time.perf_counter()
            task = asyncio.ensure_future(cons.run(handle))
            await done.wait()
            # Count only what the server confirmed acked.
            while (await c.stats("cbench")).queues["cbench"].get("acks", 0) < n:
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - t0
            cons.stop()
            await task
            await cons.close()
            return n / elapsed

    return asyncio.run(main())


def report(name: str, server: str, rates: List[float], extra: str = "") -> None:
    med = statistics.median(rates)
    lo, hi = min(rates), max(rates)
    spread = (hi - lo) / med * 100 if med else 0.0
    print(f"  {server:6} {name:10} median {med:>10,.0f} msg/s   min {lo:>10,.0f}   max {hi:>10,.0f}   spread {spread:4.1f}%")
    print(f"client=python server={server} op={name} msgs_per_s={med:.0f} min={lo:.0f} max={hi:.0f} "
          f"rounds={len(rates)}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--consume-messages", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--prefetch", type=int, default=1000)
    ap.add_argument("--no-redis", action="store_true", help="skip the redis-py figures")
    args = ap.parse_args()
    body = b"x" * args.size

    bproc, address = start_beuss()
    rproc = None
    try:
        if not args.no_redis:
            rproc, rport = start_redis()
        results: Dict[str, List[float]] = {}
        for _ in range(args.rounds):
            put, get = beuss_put_get(address, args.messages, args.batch, body)
            results.setdefault("beuss put", []).append(put)
            results.setdefault("beuss get", []).append(get)
            if rproc is not None:
                put, get = redis_put_get(rport, args.messages, args.batch, body)
                results.setdefault("redis put", []).append(put)
                results.setdefault("redis get", []).append(get)
            results.setdefault("beuss async_put", []).append(
                beuss_async_put(address, args.messages, args.batch, body))
            results.setdefault("beuss consume", []).append(
                beuss_consume(address, args.consume_messages, body, args.concurrency, args.prefetch))
            # The consumer's defaults apart from concurrency: prefetch = 2 x concurrency.
            results.setdefault("beuss consume_c16", []).append(
                beuss_consume(address, args.consume_messages, body, 16, 32))
        try:
            import hiredis  # noqa: F401  (redis-py uses it as its parser when present)

            parser = "hiredis"
        except ImportError:
            parser = "pure-python parser"
        print(f"python {sys.version.split()[0]}, {args.messages} messages of {args.size} B, "
              f"batches of {args.batch}, {args.rounds} rounds; redis-py with {parser}")
        for key, rates in results.items():
            server, op = key.split()
            if op == "consume":
                extra = f" size={args.size} concurrency={args.concurrency} prefetch={args.prefetch}"
            elif op == "consume_c16":
                extra = f" size={args.size} concurrency=16 prefetch=32"
            else:
                extra = f" size={args.size} batch={args.batch}"
            report(op, server, rates, extra)
        if rproc is not None:
            for op in ("put", "get"):
                ratio = statistics.median(results[f"beuss {op}"]) / statistics.median(results[f"redis {op}"])
                print(f"client=python op={op} beuss_vs_redis={ratio:.2f}")
    finally:
        for proc in (bproc, rproc):
            if proc is not None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
