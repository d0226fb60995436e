"""Message expiry (protocol.md 19) against the real server, blocking and asyncio: a
message past its time to live is never delivered (dropped, or dead-lettered to
``<queue>.dead``), a delayed one expires without becoming ready, one in flight is left
to its lease, a queue default from ``BQUEUETTL`` and ``ttl=0`` opting out of it, keys
released on expiry, pipelines and ``put_many``, the ``expired`` and ``expiring``
figures, and the checks made before sending (bad arguments, an older version, a server
that does not announce the feature)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Coroutine, List

import pytest

import beuss
from beuss import HolderState
from beuss import protocol as p

from .conftest import Server
from .test_robustness import FakePeer, hello_reply, hello_then_pongs

#: Every wait for the server's expiry is bounded by this (it takes milliseconds).
BOUND = 10.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def until(cond: Callable[[], bool], timeout: float = BOUND) -> None:
    """Poll a server-side condition, never a fixed sleep: ``AssertionError`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(0.01)


def server_figure(c: beuss.Client, name: str) -> int:
    return c.stats().server[name]


def queue_figure(c: beuss.Client, queue: str, name: str) -> int:
    return c.stats(queue).queues.get(queue, {}).get(name, 0)


def test_an_expired_message_is_never_delivered(server: Server) -> None:
    with beuss.Client(server.address) as c:
        assert c.server.version == 6 and c.server.has(beuss.FEATURE_TTL)
        assert (server_figure(c, "expired"), server_figure(c, "expiring")) == (0, 0)
        long = c.put("quotes", b"1.08", ttl=600)
        plain = c.put("quotes", b"no ttl")
        # A message with a time to live is counted as expiring, the plain one not.
        assert server_figure(c, "expiring") == 1
        short = c.put("quotes", b"1.07", ttl=0.2, priority=0)
        assert short.created and short.id is not None
        until(lambda: server_figure(c, "expired") == 1)
        assert queue_figure(c, "quotes", "expired") == 1
        assert server_figure(c, "expiring") == 1
        # The expired one is gone (though first by priority): neither peek nor get
        # sees it; the others are there.
        assert [e.id for e in c.peek("quotes", max=10)] == [long.id, plain.id]
        assert c.get("quotes", max=10) == [b"1.08", b"no ttl"]
        assert c.get("quotes") == []
        # Dropped (the default mode): nothing went to the dead-letter queue.
        assert queue_figure(c, "quotes", "dead") == 0 and server_figure(c, "dead_lettered") == 0
        # Taken before its time, a message with a time to live is delivered as usual.
        c.put("quotes", b"fresh", ttl=600)
        assert c.get("quotes") == [b"fresh"]
        assert server_figure(c, "expiring") == 0


def test_dead_letter_mode_moves_it_to_the_dead_queue(server: Server) -> None:
    with beuss.Client(server.address) as c:
        held = c.put("jobs", b"resize 42", priority=2, ttl=0.2, ttl_dead_letter=True)
        until(lambda: server_figure(c, "expired") == 1)
        assert c.get("jobs") == []
        assert queue_figure(c, "jobs", "expired") == 1 and queue_figure(c, "jobs", "dead_lettered") == 1
        assert server_figure(c, "dead_lettered") == 1
        # Ready in <queue>.dead, keeping its id, without a time to live (19.3).
        [dead] = c.get_meta("jobs.dead")
        assert (dead.id, dead.body) == (held.id, b"resize 42")
        assert server_figure(c, "expiring") == 0


def test_a_delayed_message_expires_without_becoming_ready(server: Server) -> None:
    with beuss.Client(server.address) as c:
        c.put("later", b"never", delay=60, ttl=0.2)
        assert queue_figure(c, "later", "delayed") == 1
        until(lambda: queue_figure(c, "later", "expired") == 1)
        assert queue_figure(c, "later", "delayed") == 0 and queue_figure(c, "later", "messages") == 0
        assert c.get("later") == []


def test_a_message_in_flight_is_left_to_its_lease(server: Server) -> None:
    with beuss.Client(server.address) as c:
        acked = c.put("work", b"done in time", ttl=0.2)
        [m] = c.lease("work", lease=30)
        assert m.id == acked.id
        # Past its time to live while leased: it stays in flight, and the ACK works.
        time.sleep(0.4)
        assert queue_figure(c, "work", "in_flight") == 1 and server_figure(c, "expired") == 0
        assert m.ack()
        assert server_figure(c, "expired") == 0

        c.put("work", b"given back", ttl=0.2)
        [m2] = c.lease("work", lease=30)
        time.sleep(0.4)
        # Given back after its time: not delivered again, it expires then.
        assert m2.nack()
        until(lambda: server_figure(c, "expired") == 1)
        assert c.lease("work") == [] and c.get("work") == []


def test_queue_default_from_bqueuettl_and_ttl_zero_opts_out(make_server: Callable[..., Server]) -> None:
    s = make_server(BQUEUETTL="cache=200ms")
    with beuss.Client(s.address) as c:
        c.put("cache", b"default")  # no TTL field: the queue's 200 ms apply
        kept = c.put("cache", b"for ever", ttl=0)  # opted out
        longer = c.put("cache", b"a minute", ttl=60)  # its own TTL wins over the default
        c.put("other", b"not cache")  # BQUEUETTL names only cache
        until(lambda: queue_figure(c, "cache", "expired") == 1)
        assert server_figure(c, "expired") == 1
        assert server_figure(c, "expiring") == 1  # the minute; ttl=0 is not expiring
        # Expired by the default, a message is dropped (19.4), never dead-lettered.
        assert queue_figure(c, "cache", "dead_lettered") == 0
        assert [(e.id, e.body) for e in c.peek("cache", max=10)] == [(kept.id, b"for ever"), (longer.id, b"a minute")]
        assert c.get("other") == [b"not cache"]
        # The default applies to keyed PUTs and put_many too; ttl=0 opts either out.
        c.put("cache", b"keyed", unique="k")
        c.put_many("cache", [b"m1", b"m2"])
        c.put_many("cache", [b"m3"], ttl=0)
        c.put("cache", b"keyed too", unique="k2", ttl=0)
        until(lambda: queue_figure(c, "cache", "expired") == 4)
        assert c.get("cache", max=10) == [b"for ever", b"a minute", b"m3", b"keyed too"]
        # The key of the expired message was released with it.
        assert c.put("cache", b"keyed again", unique="k", ttl=0).created


def test_ttl_with_a_unique_key(server: Server) -> None:
    """Flags 0x0C and 0x0D: the key's replies, and the key released on expiry."""
    with beuss.Client(server.address) as c:
        # Half a second: ample time for the duplicate to be seen before the expiry.
        held = c.put("mail", b"welcome", unique="welcome:ann", ttl=0.5)
        assert held.created
        assert c.put("mail", b"welcome", unique="welcome:ann", ttl=0.5) == beuss.PutResult(
            held.id, duplicate=HolderState.READY)
        with_options = c.put("mail", b"other", priority=1, unique="other", ttl=0.5, ttl_dead_letter=True)
        assert with_options.created
        until(lambda: server_figure(c, "expired") == 2)
        assert c.get("mail") == []
        assert [e.id for e in c.get_meta("mail.dead", max=10)] == [with_options.id]
        # Expired with no window: the key is free at once (18, 19.3).
        again = c.put("mail", b"welcome", unique="welcome:ann", ttl=60)
        assert again.created and again.id != held.id
        # A replace gives the waiting message this PUT's time to live, or none (19.3).
        assert c.put("mail", b"welcome!", unique="welcome:ann", replace=True).replaced
        assert server_figure(c, "expiring") == 0
        assert c.put("mail", b"welcome!!", unique="welcome:ann", replace=True, ttl=0.5).replaced
        assert server_figure(c, "expiring") == 1
        until(lambda: server_figure(c, "expired") == 3)
        assert c.get("mail") == []


def test_pipelined_and_batched_puts_with_a_ttl(server: Server) -> None:
    with beuss.Client(server.address) as c:
        with c.pipeline() as pipe:
            pipe.put("q", b"short", ttl=0.2).put("q", b"long", ttl=600).put("q", b"dead", ttl=0.2, ttl_dead_letter=True)
            pipe.put("q", b"keyed", unique="k", ttl=0.2).put("q", b"plain")
        assert all(r.created for r in pipe.results)
        results = c.put_many("q", [b"b1", b"b2", b"b3"], ttl=0.2)
        assert [r.id for r in results] == [pipe.results[-1].id + i for i in (1, 2, 3)]
        until(lambda: server_figure(c, "expired") == 6)
        assert server_figure(c, "expiring") == 1  # "long"
        assert c.get("q", max=10) == [b"long", b"plain"]
        assert c.get("q.dead", max=10) == [b"dead"]
        c.put_many("q", [b"d1", b"d2"], ttl=0.2, ttl_dead_letter=True, priority=0)
        until(lambda: server_figure(c, "expired") == 8)
        assert c.get("q.dead", max=10) == [b"d1", b"d2"]


def test_bad_arguments_are_refused_before_sending(server: Server) -> None:
    with beuss.Client(server.address) as c:
        for call in (lambda: c.put("q", b"", ttl=-1), lambda: c.put("q", b"", ttl=float("nan")),
                     lambda: c.put("q", b"", ttl=30 * 86400 + 1), lambda: c.put("q", b"", ttl_dead_letter=True),
                     lambda: c.put_many("q", [b"a"], ttl=-0.5), lambda: c.put_many("q", [b"a"], ttl_dead_letter=True),
                     lambda: c.pipeline().put("q", b"", ttl_dead_letter=True).execute()):
            with pytest.raises(ValueError):
                call()
        assert c.connected
        assert c.stats().queues.get("q", {}).get("messages", 0) == 0
        # The longest time to live is fine.
        assert c.put("q", b"", ttl=30 * 86400, ttl_dead_letter=True).created
        assert c.stats("q").queues["q"]["messages"] == 1 and server_figure(c, "expiring") == 1


def test_older_version_is_unsupported_before_sending(server: Server) -> None:
    with beuss.Client(server.address, version=5) as c:
        # The bit is only announced when version 6 is negotiated (19.1).
        assert c.server.version == 5 and not c.server.has(beuss.FEATURE_TTL)
        for call in (lambda: c.put("q", b"x", ttl=1), lambda: c.put("q", b"x", ttl=0),
                     lambda: c.put_many("q", [b"x"], ttl=1),
                     lambda: c.pipeline().put("q", b"plain").put("q", b"x", ttl=1).execute()):
            with pytest.raises(beuss.Unsupported, match="version 6"):
                call()
        assert c.connected
        # Nothing of it was sent, the pipeline's plain put included; a plain put still works.
        assert c.stats().queues.get("q", {}).get("messages", 0) == 0
        assert c.put("q", b"plain").created
        assert c.put_many("q", [b"plain too"])[0].created

    async def main() -> None:
        async with beuss.AsyncClient(server.address, version=5) as a:
            with pytest.raises(beuss.Unsupported):
                await a.put("q", b"x", ttl=1)
            with pytest.raises(beuss.Unsupported):
                await a.put_many("q", [b"x"], ttl=1)
            with pytest.raises(beuss.Unsupported):
                await a.pipeline().put("q", b"x", ttl=1).execute()
            await a.ping()
            assert (await a.stats("q")).queues["q"]["messages"] == 2

    run(main())


#: A version-6 HELLO reply with UNIQUE (bit 7) but without TTL (bit 8).
HELLO_V6_WITHOUT_TTL = hello_reply(6, 0xDF)


def test_a_server_without_the_feature_is_unsupported() -> None:
    """The feature bit is checked, not only the version: nothing is sent."""
    opcodes: List[int] = []
    with FakePeer(hello_then_pongs(HELLO_V6_WITHOUT_TTL, opcodes)) as peer:
        with beuss.Client(peer.address) as c:
            assert c.server.has(beuss.FEATURE_UNIQUE) and not c.server.has(beuss.FEATURE_TTL)
            for call in (lambda: c.put("q", b"x", ttl=1), lambda: c.put("q", b"x", unique="k", ttl=1),
                         lambda: c.put_many("q", [b"x"], ttl=1),
                         lambda: c.pipeline().put("q", b"x", ttl=1).execute()):
                with pytest.raises(beuss.Unsupported, match="feature 0x100,"):
                    call()
            c.ping()
        assert peer.finished.wait(10)
        assert opcodes == [p.PING]


def test_async_ttl(make_server: Callable[..., Server]) -> None:
    s = make_server(BQUEUETTL="cache=200ms")

    async def stat(c: beuss.AsyncClient, name: str) -> int:
        return (await c.stats()).server[name]

    async def until_async(c: beuss.AsyncClient, name: str, value: int) -> None:
        deadline = time.monotonic() + BOUND
        while await stat(c, name) != value:
            assert time.monotonic() < deadline, f"{name} did not reach {value}"
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with beuss.AsyncClient(s.address) as c:
            assert c.server.version == 6 and c.server.has(beuss.FEATURE_TTL)
            await c.put("aq", b"long", ttl=600)
            assert await stat(c, "expiring") == 1
            dropped = await c.put("aq", b"short", ttl=0.2)
            dead = await c.put("aq", b"dead", ttl=0.2, ttl_dead_letter=True, unique="k")
            await c.put("cache", b"by default")
            kept = await c.put("cache", b"kept", ttl=0)
            await c.put_many("aq", [b"m1", b"m2"], ttl=0.2)
            assert dropped.created and dead.created and kept.created
            await until_async(c, "expired", 5)
            assert await stat(c, "expiring") == 1
            assert await c.get("aq", max=10) == [b"long"]
            assert [e.id for e in await c.get_meta("aq.dead", max=10)] == [dead.id]
            assert await c.get("cache", max=10) == [b"kept"]
            with pytest.raises(ValueError):
                await c.put("aq", b"", ttl_dead_letter=True)
            await c.ping()

    run(main())
