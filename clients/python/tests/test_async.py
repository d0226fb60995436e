"""Integration tests of the asyncio client and consumer against the real server."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Set

import pytest

import beuss
from beuss.models import SettleResult

from .conftest import Server


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


async def until(cond: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll a server-side condition (readiness, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within 10 s")
        await asyncio.sleep(0.005)


def test_basics(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            assert c.server.version == 6
            await c.ping()
            r = await c.put("jobs", b"hello", priority=1)
            assert r.id
            assert await c.get("jobs") == [b"hello"]
            results = await c.put_many("jobs", [b"%d" % i for i in range(5000)])
            assert len(results) == 5000
            got: List[bytes] = []
            while len(got) < 5000:
                got.extend(await c.get("jobs", max=2000))
            assert got == [b"%d" % i for i in range(5000)]
            # Many tasks, one connection: replies are matched in order.
            answers = await asyncio.gather(*(c.put("many", b"%d" % i) for i in range(200)))
            assert [a.id for a in answers] == sorted(a.id for a in answers)  # type: ignore[type-var]
            assert await c.purge("many") == 200
            with pytest.raises(beuss.Full.__mro__[1]):  # ServerError base catches any code
                await c.publish("bad..subject", b"x")
            assert not c.connected
            with pytest.raises(beuss.ConnectionClosed):
                await c.ping()
            await c.reconnect()
            await c.ping()

    run(main())


def test_waiting_get_and_timeouts(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address, timeout=0.05) as c, beuss.AsyncClient(server.address) as other:
            assert await c.get("w", wait=0.2) == []  # wait + margin, not the bare margin
            task = asyncio.ensure_future(c.get("w", wait=None))
            await until(lambda: _waiters(other, "w"))
            await other.put("w", b"late")
            assert await task == [b"late"]

    run(main())


async def _waiters(c: beuss.AsyncClient, queue: str) -> bool:
    return (await c.stats(queue)).server["waiters"] == 1


def test_full_and_truncation(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXMEMORY="64K", BMAXMESSAGESIZE="4K")

    async def main() -> None:
        async with beuss.AsyncClient(s.address) as c:
            r = await c.put("t", b"x" * 5000)
            assert r.truncated and r.stored_len == 4096
            with pytest.raises(beuss.Full) as info:
                await c.put_many("t", [b"y" * 4000] * 40)
            results = getattr(info.value, "results")
            assert any(isinstance(x, beuss.PutResult) for x in results)
            assert isinstance(results[-1], beuss.Full)
            await c.ping()

    run(main())


def test_leases_and_settles(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            await c.put_many("l", [b"a", b"b"])
            ms = await c.lease("l", max=10, lease=30, meta=True)
            assert [m.body for m in ms] == [b"a", b"b"] and ms[0].subject is None
            assert await ms[0].touch()
            assert all(await asyncio.gather(*(m.ack() for m in ms)))  # one ACK frame
            assert not await ms[0].ack()
            await c.put("l", b"c")
            [m] = await c.lease("l", lease=0.05)
            await until(lambda: _expired(c))
            assert not await m.nack() and m.result is SettleResult.STALE

    run(main())


async def _expired(c: beuss.AsyncClient) -> bool:
    return (await c.stats()).server["expired_leases"] == 1


def test_events_interleaved_with_replies(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            sub = await c.subscribe("t.>")
            await c.bind("t.>", "tq")
            # Publish from the subscribed connection itself: EVENTs and replies share
            # the stream, and the events must not be taken for replies.
            pubs = await asyncio.gather(*(c.publish("t.x", b"%d" % i) for i in range(100)))
            assert all(pb.queues == 1 and pb.subscribers == 1 for pb in pubs)
            events = [await sub.next(5) for _ in range(100)]
            assert [e.body for e in events if e] == [b"%d" % i for i in range(100)]
            assert len(await c.get("tq", max=1000)) == 100
            assert await sub.unsubscribe()
            assert await sub.next(0.01) is None

    run(main())


def test_request_reply(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as req, beuss.AsyncClient(server.address) as resp:
            with pytest.raises(beuss.NoResponders):
                await req.request("math.add", b"1 2")
            sub = await resp.subscribe("math.*")

            async def serve() -> None:
                async for ev in sub:
                    assert ev.reply_to
                    a, b = ev.body.split()
                    await resp.reply(ev.reply_to, b"%d" % (int(a) + int(b)))

            task = asyncio.ensure_future(serve())
            assert await req.request("math.add", b"1 2", timeout=10) == b"3"
            assert await req.request("math.add", b"20 22", timeout=10) == b"42"
            task.cancel()
            with pytest.raises(beuss.RequestTimeout):
                await req.request("math.add", b"0 0", timeout=0.05)

    run(main())


def test_pipeline_and_confirm(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c, beuss.AsyncClient(server.address) as w:
            await c.bind("o.*", "oq")
            async with c.pipeline() as pipe:
                pipe.put("pq", b"1").put("pq", b"2").get("pq", max=5).peek("oq").publish("o.a", b"p")
            assert pipe.results[2] == [b"1", b"2"] and pipe.results[3] == []
            assert pipe.results[4].queues == 1
            confirm = asyncio.ensure_future(c.publish("o.b", b"c", confirm=1, timeout=10))
            await until(lambda: _waiting(w))
            got = await w.get_meta("oq", max=10)
            assert [e.subject for e in got] == ["o.a", "o.b"]
            done = await confirm
            assert done.acked == 1

    run(main())


async def _waiting(c: beuss.AsyncClient) -> bool:
    return (await c.stats()).server["waiting"] == 1


def test_ten_consumers_exactly_once(server: Server) -> None:
    """10 asyncio consumers x 1,000 messages: every message handled exactly once."""
    total = 10_000

    async def main() -> None:
        async with beuss.AsyncClient(server.address) as producer:
            await producer.put_many("ten", [b"%d" % i for i in range(total)])
            seen: Dict[bytes, int] = collections.Counter()
            per_consumer: List[int] = [0] * 10
            all_done = asyncio.Event()
            consumers = [producer.consume("ten", concurrency=4, lease=30, wait=0.05) for _ in range(10)]

            def handler_for(n: int) -> Callable[[beuss.AsyncMessage], Awaitable[None]]:
                async def handle(m: beuss.AsyncMessage) -> None:
                    seen[m.body] += 1
                    per_consumer[n] += 1
                    await asyncio.sleep(0)  # let the others interleave
                    if sum(seen.values()) >= total:
                        all_done.set()

                return handle

            runs = [asyncio.ensure_future(cons.run(handler_for(n))) for n, cons in enumerate(consumers)]
            await asyncio.wait_for(all_done.wait(), 50)
            for cons in consumers:
                cons.stop()
            await asyncio.gather(*runs)
            for cons in consumers:
                await cons.close()
            assert len(seen) == total and set(seen.values()) == {1}
            assert sum(1 for n in per_consumer if n) > 1  # the work was shared
            await until(lambda: _acked(producer, "ten", total))
            st = (await producer.stats("ten")).queues["ten"]
            assert st["messages"] == 0 and st["redeliveries"] == 0

    run(main())


async def _acked(c: beuss.AsyncClient, queue: str, n: int) -> bool:
    return (await c.stats(queue)).queues[queue]["acks"] == n


def test_consumer_failures_timeouts_and_concurrency(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            await c.put_many("cf", [b"ok"] * 20 + [b"fail", b"hang"])
            running = 0
            peak = 0
            attempts: Dict[bytes, List[int]] = collections.defaultdict(list)
            done = asyncio.Event()
            acked: Set[int] = set()

            async def handle(m: beuss.AsyncMessage) -> None:
                nonlocal running, peak
                running += 1
                peak = max(peak, running)
                try:
                    attempts[m.body].append(m.attempt)
                    if m.body == b"fail" and m.attempt == 1:
                        raise ValueError("boom")
                    if m.body == b"hang" and m.attempt == 1:
                        await asyncio.sleep(30)  # cut off by handler_timeout
                    await asyncio.sleep(0.001)
                    acked.add(m.id)
                    if len(acked) == 22:
                        done.set()
                finally:
                    running -= 1

            cons = c.consume("cf", concurrency=3, handler_timeout=0.2, backoff=lambda a: 0.0, wait=0.05)
            task = asyncio.ensure_future(cons.run(handle))
            await asyncio.wait_for(done.wait(), 30)
            cons.stop()
            await task
            await cons.close()
            assert peak <= 3
            assert attempts[b"fail"] == [1, 2] and attempts[b"hang"] == [1, 2]
            await until(lambda: _acked(c, "cf", 22))

    run(main())


def test_consumer_shutdown_gives_back_uncharged(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            await c.put_many("sd", [b"%d" % i for i in range(10)])
            started = asyncio.Event()

            async def slow(m: beuss.AsyncMessage) -> None:
                started.set()
                await asyncio.sleep(30)

            cons = c.consume("sd", concurrency=2, prefetch=10, max_deliveries=1, grace=0.05, wait=0.05)
            task = asyncio.ensure_future(cons.run(slow))
            await started.wait()
            cons.stop()
            await cons.close()
            await task
            # With max_deliveries 1, a charged give-back would dead-letter them.
            st = (await c.stats("sd")).queues["sd"]
            assert st["ready"] == 10 and st["in_flight"] == 0
            assert await c.peek("sd.dead") == []

    run(main())


def test_consumer_iterator_and_touch(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            await c.put_many("it", [b"a", b"b", b"c"])
            seen: List[bytes] = []
            async with c.consume("it", lease=0.4, wait=0.05) as jobs:
                async for m in jobs:
                    seen.append(m.body)
                    if m.body == b"a":
                        await asyncio.sleep(1.0)  # longer than the lease: auto-touch keeps it
                    if len(seen) == 3:
                        break
            assert seen == [b"a", b"b", b"c"]
            st = (await c.stats()).server
            assert st["expired_leases"] == 0
            # a and b were acked as the loop moved on; c (the loop broke on it) was
            # given back uncharged.
            assert (await c.stats("it")).queues["it"]["acks"] == 2
            [back] = await c.lease("it")
            assert back.body == b"c"

    run(main())


def test_consumer_reconnects_and_settles_stale(server: Server) -> None:
    """After the consumer's connection drops, the message it was handling settles as
    STALE (the server gave it back), is delivered again, and is acked exactly once."""

    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            await c.put_many("rc", [b"first", b"second"])
            release = asyncio.Event()
            handled: List[Any] = []
            done = asyncio.Event()

            async def handle(m: beuss.AsyncMessage) -> None:
                handled.append((m.body, m.attempt))
                if m.body == b"first" and m.attempt == 1:
                    await release.wait()
                if (b"first", 2) in handled and any(b == b"second" for b, _ in handled):
                    done.set()

            cons = c.consume("rc", concurrency=1, prefetch=1, wait=0.05, backoff=lambda a: 0.0)
            task = asyncio.ensure_future(cons.run(handle))
            await until(lambda: _handled(handled))
            first = cons._held[next(iter(cons._held))]
            conn = cons._conn
            assert conn is not None and conn._transport is not None
            old = conn._link
            conn._transport.abort()  # the connection drops under the consumer
            await until(lambda: _reconnected(conn, old))
            release.set()
            await asyncio.wait_for(done.wait(), 20)
            cons.stop()
            await task
            await cons.close()
            assert first.result is SettleResult.STALE
            await until(lambda: _acked(c, "rc", 2))
            assert (await c.stats("rc")).queues["rc"]["messages"] == 0

    run(main())


async def _handled(handled: List[Any]) -> bool:
    return bool(handled)


async def _reconnected(conn: beuss.AsyncClient, old: Any) -> bool:
    return conn.connected and conn._link is not None and conn._link is not old


def test_client_timeout_on_a_silent_peer() -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]

        async def main() -> None:
            c = beuss.AsyncClient(("127.0.0.1", port), timeout=0.1)
            with pytest.raises(beuss.ClientTimeout):
                await c.connect()
            assert not c.connected

        run(main())
