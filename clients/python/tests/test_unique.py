"""Unique messages (protocol.md 18) against the real server, blocking and asyncio: a
duplicate of a ready, a delayed and a leased message, a replace that changes the
payload, priority and delay (and never touches a message in flight), the dedup window
after a GET or an ACK, keys per queue, pipelines, the five STATS figures, and the
checks made before sending (bad arguments, an older version, a server that does not
announce the feature)."""

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


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def ready(c: beuss.Client, queue: str) -> int:
    return c.stats(queue).queues.get(queue, {}).get("ready", 0)


def test_duplicate_while_ready(server: Server) -> None:
    with beuss.Client(server.address) as c:
        assert c.server.version == 6 and c.server.has(beuss.FEATURE_UNIQUE)
        first = c.put("jobs", b"one", unique="order-42")
        assert first.created and first.id is not None and first.duplicate is None and not first.replaced
        again = c.put("jobs", b"two", unique="order-42")
        # Not an exception: the reply names the message that holds the key.
        assert again == beuss.PutResult(first.id, duplicate=HolderState.READY)
        assert again.duplicate == "ready" and not again.created
        # bytes and the str they encode are one key.
        assert c.put("jobs", b"three", unique=b"order-42").duplicate is HolderState.READY
        assert ready(c, "jobs") == 1
        # Keys belong to their queue.
        other = c.put("mail", b"one", unique="order-42")
        assert other.created and other.id != first.id
        # A plain put is not held back by anyone's key.
        assert c.put("jobs", b"plain").created
        assert c.get("jobs", max=10) == [b"one", b"plain"]
        # Taken by a GET with no window: the key is forgotten at once.
        fresh = c.put("jobs", b"four", unique="order-42")
        assert fresh.created and fresh.id is not None and fresh.id > first.id


def test_duplicate_of_a_delayed_message(server: Server) -> None:
    with beuss.Client(server.address) as c:
        held = c.put("later", b"x", delay=60, unique="k")
        assert held.created
        assert c.put("later", b"y", unique="k") == beuss.PutResult(held.id, duplicate=HolderState.DELAYED)
        # Delayed messages are not ready: nothing to take now.
        assert c.get("later") == []


def test_replace_changes_the_payload(server: Server) -> None:
    with beuss.Client(server.address) as c:
        c.put("prices", b"first in line", priority=5)
        held = c.put("prices", b"10.00", unique="EURUSD")
        replaced = c.put("prices", b"10.25", unique="EURUSD", replace=True)
        assert replaced == beuss.PutResult(held.id, 5, 5, replaced=True)
        assert replaced.replaced and not replaced.truncated and not replaced.created
        # Its priority too: at 0 it now comes before the earlier message of priority 5.
        again = c.put("prices", b"10.50!", unique="EURUSD", replace=True, priority=0)
        assert (again.id, again.replaced, again.original_len, again.stored_len) == (held.id, True, 6, 6)
        assert ready(c, "prices") == 2
        [env] = c.peek("prices")
        assert (env.id, env.body) == (held.id, b"10.50!")
        assert c.get("prices", max=10) == [b"10.50!", b"first in line"]

        # A replace with a delay makes the waiting message delayed from now...
        c.put("prices", b"a", unique="GBPUSD")
        moved = c.put("prices", b"b", unique="GBPUSD", replace=True, delay=60)
        assert moved.replaced
        assert c.get("prices") == []
        assert c.put("prices", b"c", unique="GBPUSD").duplicate is HolderState.DELAYED
        # ...and one without a delay makes it ready now, with the last payload.
        assert c.put("prices", b"d", unique="GBPUSD", replace=True).replaced
        assert c.get("prices") == [b"d"]
        # With no holder, a replace simply stores.
        assert c.put("prices", b"e", unique="GBPUSD", replace=True).created


def test_replace_sets_the_window_of_the_key(server: Server) -> None:
    """A replace gives the key the window this PUT asks for (18.3), 0 included."""
    with beuss.Client(server.address) as c:
        c.put("q", b"a", unique="dropped", unique_for=60)
        assert c.put("q", b"b", unique="dropped", replace=True).replaced  # window now 0
        c.put("q", b"c", unique="kept")
        assert c.put("q", b"d", unique="kept", replace=True, unique_for=60).replaced
        assert c.get("q", max=2) == [b"b", b"d"]
        assert c.put("q", b"e", unique="dropped").created
        assert c.put("q", b"f", unique="kept").duplicate is HolderState.GONE


def test_replace_with_a_payload_over_the_message_size(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXMESSAGESIZE="4K")
    with beuss.Client(s.address) as c:
        held = c.put("q", b"small", unique="k")
        big = c.put("q", b"x" * 5000, unique="k", replace=True)
        assert (big.id, big.replaced, big.truncated, big.original_len, big.stored_len) == (
            held.id, True, True, 5000, 4096)
        assert c.get("q") == [b"x" * 4096]


def test_duplicate_in_flight(server: Server) -> None:
    with beuss.Client(server.address) as c:
        held = c.put("work", b"job", unique="job-1")
        [m] = c.lease("work", lease=30)
        assert m.id == held.id
        assert c.put("work", b"again", unique="job-1") == beuss.PutResult(held.id, duplicate=HolderState.IN_FLIGHT)
        # A message in flight is never replaced (18.3): the same DUPLICATE.
        refused = c.put("work", b"new", unique="job-1", replace=True)
        assert refused.duplicate == "in_flight" and not refused.replaced
        # Given back, it holds its key as a ready message again, with its payload.
        assert m.nack()
        assert c.put("work", b"again", unique="job-1").duplicate is HolderState.READY
        [m2] = c.lease("work")
        assert (m2.id, m2.body) == (held.id, b"job")
        # Acknowledged with no window: forgotten, so the key can be used again.
        assert m2.ack()
        assert c.put("work", b"next", unique="job-1").created


def test_window_after_get_and_after_ack(server: Server) -> None:
    with beuss.Client(server.address) as c:
        held = c.put("mail", b"welcome", unique="welcome:ann", unique_for=60)
        assert c.get("mail") == [b"welcome"]
        # Its message left within the window: remembered, state "gone", the old id.
        gone = c.put("mail", b"welcome", unique="welcome:ann")
        assert gone == beuss.PutResult(held.id, duplicate=HolderState.GONE)
        assert c.put("mail", b"welcome", unique="welcome:ann", replace=True).duplicate is HolderState.GONE
        assert c.get("mail") == []

        leased = c.put("mail", b"invoice", unique="invoice:7", unique_for=60)
        [m] = c.lease("mail")
        assert m.ack()
        assert c.put("mail", b"invoice", unique="invoice:7").duplicate == "gone"
        assert c.put("mail", b"invoice", unique="invoice:7").id == leased.id

        # A short window ends: then the key is free again.
        c.put("mail", b"ping", unique="short", unique_for=0.2)
        assert c.get("mail") == [b"ping"]
        assert c.put("mail", b"ping", unique="short").duplicate is HolderState.GONE
        time.sleep(0.6)
        assert c.put("mail", b"ping", unique="short").created


def test_unique_stats_figures(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXUNIQUEKEYS="1")
    with beuss.Client(s.address) as c:
        figures = c.stats().server
        for name in ("unique_keys", "unique_remembered", "unique_forgotten", "unique_duplicates", "unique_replaced"):
            assert figures[name] == 0, name
        c.put("q", b"a", unique="a", unique_for=60)
        c.put("q", b"b", unique="b", unique_for=60)
        c.put("q", b"a", unique="a")
        c.put("q", b"b2", unique="b", replace=True, unique_for=60)
        figures = c.stats().server
        assert (figures["unique_keys"], figures["unique_duplicates"], figures["unique_replaced"]) == (2, 1, 1)
        # Both leave; one key may be remembered (BMAXUNIQUEKEYS=1): the other is forgotten.
        assert c.get("q", max=2) == [b"a", b"b2"]
        figures = c.stats().server
        assert (figures["unique_keys"], figures["unique_remembered"], figures["unique_forgotten"]) == (0, 1, 1)


def test_pipelined_unique_puts(server: Server) -> None:
    with beuss.Client(server.address) as c:
        with c.pipeline() as pipe:
            pipe.put("q", b"1", unique="a").put("q", b"2", unique="a").put("q", b"3", unique="b")
            pipe.put("q", b"4", unique="a", replace=True).put("q", b"5").get("q", max=10)
        first, dup, other, rep, plain, got = pipe.results
        assert first.created and other.created and plain.created
        assert dup == beuss.PutResult(first.id, duplicate=HolderState.READY)
        assert rep.replaced and rep.id == first.id
        assert got == [b"4", b"3", b"5"]


def test_bad_arguments_are_refused_before_sending(server: Server) -> None:
    with beuss.Client(server.address) as c:
        for call in (lambda: c.put("q", b"", unique=""), lambda: c.put("q", b"", unique="k" * 256),
                     lambda: c.put("q", b"", unique="k", unique_for=30 * 86400 + 1),
                     lambda: c.put("q", b"", unique="k", unique_for=-1),
                     lambda: c.put("q", b"", replace=True), lambda: c.put("q", b"", unique_for=10),
                     lambda: c.pipeline().put("q", b"", replace=True).execute()):
            with pytest.raises(ValueError):
                call()
        assert c.connected
        # The longest key and window are fine.
        assert c.put("q", b"", unique="k" * 255, unique_for=30 * 86400).created
        assert c.stats("q").queues["q"]["messages"] == 1


def test_older_version_is_unsupported_before_sending(server: Server) -> None:
    with beuss.Client(server.address, version=5) as c:
        # The bit is only announced when version 6 is negotiated (18.1).
        assert c.server.version == 5 and not c.server.has(beuss.FEATURE_UNIQUE)
        for call in (lambda: c.put("q", b"x", unique="k"), lambda: c.put("q", b"x", unique="k", replace=True),
                     lambda: c.pipeline().put("q", b"plain").put("q", b"x", unique="k").execute()):
            with pytest.raises(beuss.Unsupported, match="version 6"):
                call()
        assert c.connected
        # Nothing of it was sent, the pipeline's plain put included; a plain put still works.
        assert c.stats().queues.get("q", {}).get("messages", 0) == 0
        assert c.put("q", b"plain").created

    async def main() -> None:
        async with beuss.AsyncClient(server.address, version=5) as a:
            with pytest.raises(beuss.Unsupported):
                await a.put("q", b"x", unique="k")
            with pytest.raises(beuss.Unsupported):
                await a.pipeline().put("q", b"x", unique="k").execute()
            await a.ping()
            assert (await a.stats("q")).queues["q"]["messages"] == 1

    run(main())


#: A version-6 HELLO reply whose features lack bit 7 (UNIQUE).
HELLO_V6_WITHOUT_UNIQUE = hello_reply(6, 0x5F)


def test_a_server_without_the_feature_is_unsupported() -> None:
    """The feature bit is checked, not only the version: nothing is sent."""
    opcodes: List[int] = []
    with FakePeer(hello_then_pongs(HELLO_V6_WITHOUT_UNIQUE, opcodes)) as peer:
        with beuss.Client(peer.address) as c:
            assert c.server.version == 6 and not c.server.has(beuss.FEATURE_UNIQUE)
            with pytest.raises(beuss.Unsupported, match="feature 0x80"):
                c.put("q", b"x", unique="k")
            c.ping()
        assert peer.finished.wait(10)
        assert opcodes == [p.PING]


def test_async_unique(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c:
            assert c.server.version == 6 and c.server.has(beuss.FEATURE_UNIQUE)
            held = await c.put("aq", b"v1", unique="k", unique_for=60)
            assert held.created
            assert await c.put("aq", b"v1", unique="k") == beuss.PutResult(held.id, duplicate=HolderState.READY)
            # A replace sets the key's window too: it keeps 60 s only if asked again.
            replaced = await c.put("aq", b"v2!", unique="k", replace=True, unique_for=60)
            assert (replaced.id, replaced.replaced, replaced.stored_len) == (held.id, True, 3)
            [m] = await c.lease("aq")
            assert (m.id, m.body) == (held.id, b"v2!")
            assert (await c.put("aq", b"v3", unique="k", replace=True)).duplicate is HolderState.IN_FLIGHT
            assert await m.ack()
            assert (await c.put("aq", b"v3", unique="k")).duplicate is HolderState.GONE

            # Many tasks at once on one connection, one key: exactly one is stored.
            results = await asyncio.gather(*(c.put("race", str(i).encode(), unique="once") for i in range(20)))
            stored = [r for r in results if r.created]
            assert len(stored) == 1
            assert all(r.duplicate is HolderState.READY and r.id == stored[0].id for r in results if not r.created)
            with pytest.raises(ValueError):
                await c.put("aq", b"", replace=True)
            await c.ping()

    run(main())
