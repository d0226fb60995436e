"""Every frame of clients/testdata/protocol-examples.json (the hex dumps of protocol.md)
checked against this client's codec: requests are encoded with the client's own request
builders and compared byte for byte, replies are decoded with the client's own decoders
and compared with what the document says. A frame without a check here fails the test,
so a new example in protocol.md forces a new check."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable, Dict, List, Tuple

import pytest

from beuss import ops
from beuss import protocol as p
from beuss.errors import AuthRequired, Forbidden, UnknownOpcode
from beuss.models import Envelope, HolderState, Published, PutResult, Scheduled, ScheduleInfo, ServerInfo, SettleResult

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "protocol-examples.json"
FRAMES: List[Dict[str, Any]] = json.loads(EXAMPLES.read_text())["frames"]

OK, STALE, NOT_FOUND = SettleResult.OK, SettleResult.STALE, SettleResult.NOT_FOUND


def raw(d: p.RawDelivery) -> p.RawDelivery:
    return d


def split(frame: bytes) -> Tuple[int, bytes]:
    """A whole reply frame to (status, body), through the client's FrameBuffer."""
    buf = p.FrameBuffer()
    # Fed one byte at a time: the splitter must cope with any read boundary.
    for i in range(len(frame)):
        assert buf.pop() is None
        buf.feed(frame[i : i + 1])
    got = buf.pop()
    assert got is not None and buf.pending() == 0
    return got


def request(op: "ops.Op[Any]") -> Callable[[bytes], None]:
    def check(frame: bytes) -> None:
        assert op.frame == frame

    return check


def elided_put(queue: str, size: int) -> Callable[[bytes], None]:
    def check(frame: bytes) -> None:
        full = ops.put(queue, b"x" * size, options=False).frame
        assert full[: len(frame)] == frame and len(full) == 4 + int.from_bytes(frame[:4], "big")

    return check


def reply(decode: Callable[[int, bytes], Any], expected: Any) -> Callable[[bytes], None]:
    def check(frame: bytes) -> None:
        status, body = split(frame)
        assert decode(status, body) == expected

    return check


def lease_reply(expected: List[Tuple[int, int, bytes]]) -> Callable[[bytes], None]:
    op = ops.lease("jobs", raw, max=1)
    return reply(op.decode, [(i, a, b, None) for i, a, b in expected])


def error_reply(cls: type, code: int, fatal: bool, text: str) -> Callable[[bytes], None]:
    def check(frame: bytes) -> None:
        status, body = split(frame)
        with pytest.raises(cls) as info:
            ops.ping().decode(status, body)
        err = info.value
        assert (err.code, err.fatal, err.text) == (code, fatal, text)  # type: ignore[attr-defined]

    return check


def event_reply(sid: int, subject: str, reply_to: Any, body: bytes) -> Callable[[bytes], None]:
    def check(frame: bytes) -> None:
        status, data = split(frame)
        assert status == p.S_EVENT
        ev = p.decode_event(data)
        assert (ev.sid, ev.subject, ev.reply_to, ev.dropped, ev.body) == (sid, subject, reply_to, 0, body)

    return check


def stats_reply(frame: bytes) -> None:
    status, body = split(frame)
    st = ops.stats().decode(status, body)
    assert st.server == {"uptime_seconds": 42, "queues": 1}
    assert st.queues == {"jobs": {"messages": 2}}


V3 = ServerInfo(3, 1048576, "beuss 0.1.0", 0x13, 30000, 43200000, 2592000000, 20)
#: The first run of 17.8's schedule: 2026-12-04T03:00:00Z.
NIGHTLY_FIRST_RUN = 1796353200000
NIGHTLY_PAUSED = ScheduleInfo("nightly", "0 3 * * *", False, "jobs", 5, True, 0, 0, 0, 0, 0, 6)

CHECKS: Dict[Tuple[str, int], Callable[[bytes], None]] = {
    ("10.1", 0): request(ops.ping()),
    ("10.1", 1): reply(ops.ping().decode, None),
    ("10.2", 0): request(ops.put("jobs", b"hello", options=False)),
    ("10.2", 1): reply(ops.decode_put, PutResult()),
    ("10.3", 0): request(ops.get("jobs", 0, 1)),
    ("10.3", 1): reply(ops.get("jobs").decode, [b"hello"]),
    ("10.3", 2): request(ops.put("jobs", b"one", options=False)),
    ("10.3", 3): reply(ops.decode_put, PutResult()),
    ("10.3", 4): request(ops.put("jobs", b"two!", options=False)),
    ("10.3", 5): reply(ops.decode_put, PutResult()),
    ("10.3", 6): request(ops.get("jobs", 0, 10)),
    ("10.3", 7): reply(ops.get("jobs").decode, [b"one", b"two!"]),
    ("10.4", 0): reply(ops.get("jobs").decode, []),
    ("10.5", 0): elided_put("jobs", 20000),
    ("10.5", 1): reply(ops.decode_put, PutResult(None, 20000, 10240)),
    ("10.6", 0): error_reply(UnknownOpcode, 2, True, "unknown opcode 0x2f"),
    ("10.7", 0): request(ops.hello(1)),
    ("10.7", 1): reply(ops.hello().decode, ServerInfo(1, 1048576, "beuss 0.1.0")),
    ("10.8", 0): request(ops.quit()),
    ("10.8", 1): reply(ops.quit().decode, None),
    ("10.8", 2): request(ops.purge("jobs")),
    ("10.8", 3): reply(ops.purge("jobs").decode, 3),
    ("10.8", 4): request(ops.stats()),
    ("10.8", 5): request(ops.stats("jobs")),
    ("10.8", 6): request(ops.get("jobs", None, 10)),
    ("10.8", 7): stats_reply,
    ("13.13", 0): request(ops.hello(3)),
    ("13.13", 1): reply(ops.hello().decode, V3),
    ("13.13", 2): request(ops.put("jobs", b"job", priority=2)),
    ("13.13", 3): reply(ops.decode_put, PutResult(1)),
    ("13.13", 4): request(ops.lease("jobs", raw, wait=0, max=1, lease=30.0)),
    ("13.13", 5): lease_reply([(1, 1, b"job")]),
    ("13.13", 6): request(ops.touch("jobs", [(1, 1)])),
    ("13.13", 7): reply(ops.touch("jobs", [(1, 1)]).decode, [OK]),
    ("13.13", 8): request(ops.ack("jobs", [(1, 1), (1, 1)])),
    ("13.13", 9): reply(ops.ack("jobs", [(1, 1)]).decode, [OK, NOT_FOUND]),
    ("13.13", 10): request(ops.put("jobs", b"bad")),
    ("13.13", 11): reply(ops.decode_put, PutResult(2)),
    ("13.13", 12): request(ops.lease("jobs", raw, wait=0, max=1, lease=30.0)),
    ("13.13", 13): lease_reply([(2, 1, b"bad")]),
    ("13.13", 14): request(ops.nack("jobs", [(2, 1)], dead=True)),
    ("13.13", 15): reply(ops.nack("jobs", [(2, 1)]).decode, [OK]),
    ("13.13", 16): request(ops.peek("jobs.dead", max=10)),
    ("13.13", 17): reply(ops.peek("jobs.dead").decode, [Envelope(2, 1, b"bad")]),
    ("13.13", 18): request(ops.move("jobs.dead", "jobs", max=100)),
    ("13.13", 19): reply(ops.move("a", "b").decode, 1),
    ("15.12", 0): request(ops.subscribe("orders.>", lambda sid: sid)),
    ("15.12", 1): reply(ops.subscribe("x", lambda sid: sid).decode, 1),
    ("15.12", 2): request(ops.bind("orders.*.created", "audit")),
    ("15.12", 3): reply(ops.bind("a", "b").decode, True),
    ("15.12", 4): request(ops.publish("orders.eu.created", b"hi", confirm=1, timeout=5.0)),
    ("15.12", 5): event_reply(1, "orders.eu.created", None, b"hi"),
    ("15.12", 6): request(ops.get_meta("audit", 0, 10)),
    ("15.12", 7): reply(ops.get_meta("audit").decode, [Envelope(1, 0, b"hi", "orders.eu.created")]),
    ("15.12", 8): reply(ops.publish("a", b"").decode, Published(1, 1, 2, 2, 1, 0)),
    ("15.12", 9): request(ops.subscribe("svc.*", lambda sid: sid)),
    ("15.12", 10): reply(ops.subscribe("x", lambda sid: sid).decode, 2),
    ("15.12", 11): request(ops.request("svc.time", b"now?", timeout=1.0)),
    ("15.12", 12): event_reply(2, "svc.time", 1, b"now?"),
    ("15.12", 13): request(ops.reply(1, b"12:00")),
    ("15.12", 14): reply(ops.reply(1, b"").decode, True),
    ("15.12", 15): reply(ops.request("svc.time", b"").decode, b"12:00"),
    ("16.9", 0): request(ops.put("jobs", b"", options=False)),
    ("16.9", 1): error_reply(AuthRequired, 16, True, "authentication required"),
    ("16.9", 2): request(ops.auth(b"0123456789abcdef")),
    ("16.9", 3): reply(ops.auth(b"x").decode, False),
    ("16.9", 4): request(ops.purge("jobs")),
    ("16.9", 5): error_reply(Forbidden, 18, False, "this connection's token is read-only"),
    ("17.8", 0): request(ops.schedule("nightly", "0 3 * * *", "jobs", payload=b"backup", priority=5)),
    ("17.8", 1): reply(ops.schedule("n", "@daily", "q").decode, Scheduled(True, NIGHTLY_FIRST_RUN)),
    ("17.8", 2): request(ops.pause_schedule("nightly")),
    ("17.8", 3): reply(ops.pause_schedule("n").decode, 0),
    ("17.8", 4): request(ops.schedules()),
    ("17.8", 5): reply(ops.schedules().decode, [NIGHTLY_PAUSED]),
    ("17.8", 6): request(ops.unschedule("nightly")),
    ("17.8", 7): reply(ops.unschedule("n").decode, True),
    ("18.7", 0): request(ops.put("jobs", b"hi", unique="order-42", unique_for=600.0)),
    ("18.7", 1): reply(ops.put("q", b"", unique="k").decode, PutResult(1)),
    ("18.7", 2): request(ops.put("jobs", b"hi", unique=b"order-42", unique_for=600.0)),
    ("18.7", 3): reply(ops.put("q", b"", unique="k").decode, PutResult(1, duplicate=HolderState.READY)),
    ("18.7", 4): request(ops.put("jobs", b"hey", priority=2, unique="order-42", replace=True)),
    ("18.7", 5): reply(ops.put("q", b"", unique="k", replace=True).decode, PutResult(1, 3, 3, replaced=True)),
    ("19.7", 0): request(ops.put("quotes", b"hi", ttl=5.0)),
    ("19.7", 1): reply(ops.put("q", b"", ttl=5.0).decode, PutResult(1)),
    ("19.7", 2): request(ops.put("jobs", b"x", priority=5, unique="k", ttl=60.0, ttl_dead_letter=True)),
    ("19.7", 3): reply(ops.put("q", b"", priority=5, unique="k", ttl=60.0, ttl_dead_letter=True).decode, PutResult(2)),
}


@pytest.mark.parametrize("frame", FRAMES, ids=[f"{f['section']}-{f['index']}" for f in FRAMES])
def test_example_frame(frame: Dict[str, Any]) -> None:
    key = (frame["section"], frame["index"])
    assert key in CHECKS, f"no check for the example {key} ({frame['heading']}): add one"
    check = CHECKS[key]
    data = bytes.fromhex(frame["hex"])
    # Direction sanity: a request check given a reply frame would pass vacuously never,
    # but keep the file's labels honest too.
    assert frame["dir"] in (">", "<")
    check(data)


def test_every_check_has_a_frame() -> None:
    keys = {(f["section"], f["index"]) for f in FRAMES}
    assert set(CHECKS) == keys
