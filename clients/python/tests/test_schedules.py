"""Schedules (protocol.md 17) against the real server, blocking and asyncio: a schedule
that puts a message on a queue every 200 ms, one that publishes to a subject, listing,
pausing, resuming, replacing and deleting them, the non-fatal BAD_SCHEDULE, read-only
tokens, and the checks made before sending (an older version, a server that does not
announce the feature)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import tempfile
import time
from typing import Any, Callable, Coroutine, Iterator, List

import pytest

import beuss
from beuss import protocol as p

from .conftest import Server
from .test_robustness import FakePeer, hello_reply, hello_then_pongs

#: A margin for the server's wall clock against ours (the same machine: rounding only).
SLACK_MS = 50


def now_ms() -> int:
    return int(time.time() * 1000)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def test_schedule_onto_a_queue_list_pause_resume_unschedule(server: Server) -> None:
    with beuss.Client(server.address) as c, beuss.Client(server.address) as worker:
        assert c.server.version == 6 and c.server.has(beuss.FEATURE_SCHEDULES)
        assert c.schedules() == []
        before = now_ms()
        created, first = c.schedule("tick", "@every 200ms", "ticks", payload=b"tick", priority=3)
        assert created is True
        # The first run is one interval after the definition.
        assert before < first <= now_ms() + 200 + SLACK_MS
        # A waiting GET on another connection is answered by the schedule's run.
        assert worker.get("ticks", wait=5) == [b"tick"]

        [info] = c.schedules()
        assert (info.name, info.spec, info.to_subject, info.target, info.queue, info.subject) == (
            "tick", "@every 200ms", False, "ticks", "ticks", None)
        assert (info.priority, info.paused, info.payload_len, info.failures) == (3, False, 4, 0)
        assert info.runs >= 1 and info.last_run_ms >= first and info.next_run_ms > info.last_run_ms
        [named] = c.schedules("tick")
        assert (named.name, named.spec, named.target) == ("tick", "@every 200ms", "ticks")
        assert c.schedules("no such schedule") == []
        figures = c.stats().server
        assert figures["schedules"] == 1 and figures["schedule_runs"] >= 1

        # Paused: it does not run (three intervals with nothing), and says so.
        assert c.pause_schedule("tick") == 0
        assert c.pause_schedule("tick") == 0  # pausing a paused one changes nothing
        [paused] = c.schedules("tick")
        assert paused.paused and paused.next_run_ms == 0
        c.purge("ticks")
        assert worker.get("ticks", wait=0.6) == []
        assert c.schedules("tick")[0].runs == paused.runs

        # Resumed: its next run is its first run time after now (no catching up).
        before = now_ms()
        next_run = c.resume_schedule("tick")
        assert next_run is not None and before - SLACK_MS < next_run <= now_ms() + 200 + SLACK_MS
        assert worker.get("ticks", wait=5) == [b"tick"]
        assert not c.schedules("tick")[0].paused

        # No such schedule: None, not 0.
        assert c.pause_schedule("nope") is None
        assert c.resume_schedule("nope") is None

        # Replacing starts it afresh.
        created, _ = c.schedule("tick", "@every 1h", "ticks", payload=b"later")
        assert created is False
        [replaced] = c.schedules()
        assert (replaced.spec, replaced.runs, replaced.payload_len, replaced.priority) == ("@every 1h", 0, 5, 5)

        assert c.unschedule("tick") is True
        assert c.unschedule("tick") is False
        assert c.schedules() == []
        assert c.stats().server["schedules"] == 0


def test_schedule_onto_a_subject(server: Server) -> None:
    with beuss.Client(server.address) as c:
        assert c.bind("clock.*", "clock")
        c.schedule("clock", "@every 200ms", subject="clock.tick", payload=b"t", priority=0)
        [env] = c.get_meta("clock", wait=5)
        assert (env.body, env.subject) == (b"t", "clock.tick")
        [info] = c.schedules("clock")
        assert (info.to_subject, info.target, info.subject, info.queue, info.priority) == (
            True, "clock.tick", "clock.tick", None, 0)
        # Schedule names and queue names are separate: a queue of the same name is fine.
        c.schedule("clock.tick", "0 3 * * *", "clock.tick")
        assert [s.name for s in c.schedules()] == ["clock", "clock.tick"]  # sorted by name
        # A cron schedule's first run is at second 0 of a minute.
        assert c.schedules("clock.tick")[0].next_run_ms % 60000 == 0
        assert c.unschedule("clock") and c.unschedule("clock.tick")


def test_bad_schedule_is_not_fatal(make_server: Callable[..., Server]) -> None:
    s = make_server(BMAXMESSAGESIZE="4K")
    with beuss.Client(s.address) as c:
        c.schedule("keep", "@daily", "q")
        for spec in ("61 * * * *", "TZ=Europe/Paris 0 3 * * *", "@every 1ms", "not a spec"):
            with pytest.raises(beuss.BadSchedule) as info:
                c.schedule("bad", spec, "q")
            err = info.value
            assert (err.code, err.fatal) == (20, False) and err.text
            assert c.connected
            c.ping()  # the connection goes on
        # A payload over the server's message size: BAD_SCHEDULE too.
        with pytest.raises(beuss.BadSchedule):
            c.schedule("big", "@daily", "q", payload=b"x" * 5000)
        c.ping()
        # Nothing was changed by the refused ones.
        assert [i.name for i in c.schedules()] == ["keep"]
        # A bad value is refused before anything is sent, and the connection is fine.
        with pytest.raises(ValueError):
            c.schedule("bad", "@daily", subject="orders.*")
        with pytest.raises(ValueError):
            c.schedule("bad", "@daily", "q", subject="s")
        with pytest.raises(ValueError):
            c.schedule("bad", "@daily", "q", priority=10)
        assert c.connected and [i.name for i in c.schedules()] == ["keep"]


def test_pipelined_schedule_requests(server: Server) -> None:
    with beuss.Client(server.address) as c:
        with c.pipeline() as pipe:
            pipe.schedule("a", "@hourly", "q").schedule("b", "@daily", subject="s.t").pause_schedule("b")
            pipe.schedules().resume_schedule("b").unschedule("a").unschedule("a").schedules()
        created_a, created_b, paused, listed, resumed, removed, again, after = pipe.results
        assert created_a.created and created_b.created and paused == 0
        assert [(i.name, i.paused) for i in listed] == [("a", False), ("b", True)]
        assert resumed is not None and resumed > 0
        assert (removed, again) == (True, False)
        assert [i.name for i in after] == ["b"]


@pytest.fixture
def token_file() -> Iterator[pathlib.Path]:
    fd, name = tempfile.mkstemp(prefix="beuss-py-sched-tokens-")
    with os.fdopen(fd, "w") as f:
        f.write("py-sched-rw-0123456789abcdef\npy-sched-ro-fedcba9876543210 ro\n")
    yield pathlib.Path(name)
    os.unlink(name)


def test_read_only_token_may_list_only(make_server: Callable[..., Server], token_file: pathlib.Path) -> None:
    s = make_server(BAUTHFILE=str(token_file))
    with beuss.Client(s.address, token="py-sched-rw-0123456789abcdef") as rw:
        rw.schedule("n", "@daily", "q")
    with beuss.Client(s.address, token="py-sched-ro-fedcba9876543210") as ro:
        assert ro.read_only
        assert [i.name for i in ro.schedules()] == ["n"]
        for change in (lambda: ro.schedule("m", "@daily", "q"), lambda: ro.pause_schedule("n"),
                       lambda: ro.unschedule("n")):
            with pytest.raises(beuss.Forbidden) as info:
                change()
            assert not info.value.fatal
        assert ro.connected and not ro.schedules()[0].paused


def test_older_version_is_unsupported_before_sending(server: Server) -> None:
    with beuss.Client(server.address, version=4) as c:
        # The bit is only announced when version 5 is negotiated (17.1).
        assert c.server.version == 4 and not c.server.has(beuss.FEATURE_SCHEDULES)
        for call in (lambda: c.schedule("n", "@daily", "q"), lambda: c.unschedule("n"),
                     lambda: c.pause_schedule("n"), lambda: c.resume_schedule("n"), lambda: c.schedules(),
                     lambda: c.pipeline().ping().schedules().execute()):
            with pytest.raises(beuss.Unsupported):
                call()
        assert c.connected
        c.ping()
    with beuss.Client(server.address) as v5:
        assert v5.schedules() == []  # nothing was defined

    async def main() -> None:
        async with beuss.AsyncClient(server.address, version=4) as a:
            with pytest.raises(beuss.Unsupported):
                await a.schedules()
            with pytest.raises(beuss.Unsupported):
                await a.pipeline().schedule("n", "@daily", "q").execute()
            await a.ping()

    run(main())


#: A version-5 HELLO reply whose features lack bit 6 (SCHEDULES).
HELLO_V5_WITHOUT_SCHEDULES = hello_reply(5, 0x1F)


def test_a_server_without_the_feature_is_unsupported() -> None:
    """The feature bit is checked, not only the version: nothing is sent."""
    opcodes: List[int] = []
    with FakePeer(hello_then_pongs(HELLO_V5_WITHOUT_SCHEDULES, opcodes)) as peer:
        with beuss.Client(peer.address) as c:
            assert c.server.version == 5 and not c.server.has(beuss.FEATURE_SCHEDULES)
            with pytest.raises(beuss.Unsupported, match="feature 0x40"):
                c.schedule("n", "@daily", "q")
            with pytest.raises(beuss.Unsupported):
                c.schedules()
            c.ping()
        assert peer.finished.wait(10)
        assert opcodes == [p.PING]


def test_async_schedules(server: Server) -> None:
    async def main() -> None:
        async with beuss.AsyncClient(server.address) as c, beuss.AsyncClient(server.address) as worker:
            assert c.server.version == 6 and c.server.has(beuss.FEATURE_SCHEDULES)
            before = now_ms()
            created, first = await c.schedule("atick", "@every 200ms", "aticks", payload=b"async")
            assert created and before < first <= now_ms() + 200 + SLACK_MS
            assert await worker.get("aticks", wait=5) == [b"async"]
            [info] = await c.schedules("atick")
            assert (info.target, info.to_subject, info.priority, info.payload_len) == ("aticks", False, 5, 5)
            assert info.runs >= 1

            assert await c.pause_schedule("atick") == 0
            assert (await c.schedules())[0].paused
            await c.purge("aticks")
            assert await worker.get("aticks", wait=0.6) == []
            resumed = await c.resume_schedule("atick")
            assert resumed is not None and resumed > 0
            assert await worker.get("aticks", wait=5) == [b"async"]
            assert await c.pause_schedule("nope") is None

            with pytest.raises(beuss.BadSchedule) as bad:
                await c.schedule("bad", "61 * * * *", "aticks")
            assert not bad.value.fatal and c.connected
            await c.ping()  # still usable

            # Many tasks on the one connection: replies are matched in order.
            results = await asyncio.gather(*(c.schedule(f"s{i}", "@daily", "q") for i in range(20)))
            assert all(r.created for r in results)
            assert [i.name for i in await c.schedules()] == sorted(["atick"] + [f"s{i}" for i in range(20)])
            removed = await asyncio.gather(*(c.unschedule(f"s{i}") for i in range(20)))
            assert all(removed)
            assert await c.unschedule("atick") and await c.schedules() == []

    run(main())
