"""Unit tests of the codec (no server)."""

from __future__ import annotations

import struct
from typing import Tuple

import pytest

import beuss
from beuss import errors, ops
from beuss import protocol as p
from beuss.models import Meta, Scheduled, ScheduleInfo


def frame(status: int, body: bytes) -> bytes:
    return struct.pack(">IB", 1 + len(body), status) + body


def test_names_are_checked_in_bytes() -> None:
    assert p.name("jobs") == b"\x04jobs"
    assert p.name("é" * 127)[0] == 254
    for bad in ("", "x" * 256, "é" * 128):
        with pytest.raises(ValueError):
            p.name(bad)


def test_durations() -> None:
    assert p.ms(None) == p.WAIT_FOREVER
    assert p.ms(0) == 0 and p.ms(1.5) == 1500 and p.ms(0.0004) == 0
    with pytest.raises(ValueError):
        p.ms(-1)
    with pytest.raises(ValueError):
        p.ms(5_000_000)  # over 49.7 days


def test_frame_buffer_any_split() -> None:
    stream = frame(p.S_PONG, b"") + frame(p.S_PURGED, struct.pack(">Q", 7)) + frame(p.S_EMPTY, b"")
    for cut in range(len(stream) + 1):
        buf = p.FrameBuffer()
        buf.feed(stream[:cut])
        got = []
        while (f := buf.pop()) is not None:
            got.append(f)
        buf.feed(stream[cut:])
        while (f := buf.pop()) is not None:
            got.append(f)
        assert got == [(p.S_PONG, b""), (p.S_PURGED, struct.pack(">Q", 7)), (p.S_EMPTY, b"")]
        assert buf.pending() == 0


def test_frame_buffer_refuses_absurd_lengths() -> None:
    buf = p.FrameBuffer(max_frame=100)
    buf.feed(struct.pack(">IB", 101, 0x12))
    with pytest.raises(beuss.ProtocolError):
        buf.pop()
    buf = p.FrameBuffer()
    buf.feed(struct.pack(">IB", 0, 0x12))
    with pytest.raises(beuss.ProtocolError):
        buf.pop()


def test_replies_ignore_trailing_bytes() -> None:
    assert ops.decode_put(p.S_STORED, struct.pack(">Q", 9) + b"future") == beuss.PutResult(9)
    assert ops.decode_put(p.S_STORED, b"") == beuss.PutResult(None)
    hello = struct.pack(">HIB", 1, 1024, 1) + b"s" + b"extra"
    assert p.decode_hello(hello) == beuss.ServerInfo(1, 1024, "s")
    assert ops.purge("q").decode(p.S_PURGED, struct.pack(">Q", 3) + b"\x00") == 3
    pub = struct.pack(">IIIIII", 1, 2, 3, 3, 0, 0) + b"more"
    assert ops.publish("a", b"").decode(p.S_PUBLISHED, pub) == beuss.Published(1, 2, 3, 3, 0, 0)


def test_short_replies_are_protocol_errors() -> None:
    with pytest.raises(beuss.ProtocolError):
        ops.get("q").decode(p.S_MESSAGES, struct.pack(">II", 1, 10) + b"short")
    with pytest.raises(beuss.ProtocolError):
        ops.ack("q", [(1, 1)]).decode(p.S_SETTLED, struct.pack(">H", 3) + b"\x00")
    with pytest.raises(beuss.ProtocolError):
        ops.ping().decode(p.S_STORED, b"")  # a status this request cannot get


def test_metadata_rules() -> None:
    sub = bytes((1, 3)) + b"a.b"
    dup = bytes((1, 1)) + b"z"
    unknown = bytes((99, 2)) + b"??"
    reply_to = bytes((2, 8)) + struct.pack(">Q", 77)
    dropped = bytes((3, 4)) + struct.pack(">I", 5)
    assert p.decode_meta(unknown + sub + dup + reply_to + dropped) == Meta("a.b", 77, 5)
    assert p.decode_meta(b"") == Meta()
    with pytest.raises(beuss.ProtocolError):
        p.decode_meta(bytes((1, 9)) + b"abc")
    with pytest.raises(beuss.ProtocolError):
        p.decode_meta(b"\x01")


def test_every_error_code_has_its_class() -> None:
    names = {
        1: "Malformed", 2: "UnknownOpcode", 3: "BadQueueName", 4: "FrameTooLarge", 5: "BadFlags",
        6: "BadArgument", 7: "Full", 8: "TooManyConnections", 9: "UnsupportedVersion",
        10: "ShuttingDown", 11: "Storage", 12: "BadSubject", 13: "NoResponders",
        14: "TooFewCopies", 15: "Limit", 16: "AuthRequired", 17: "AuthFailed", 18: "Forbidden",
        19: "TimedOut", 20: "BadSchedule",
    }
    assert set(errors.ERROR_CLASSES) == set(names)
    for code, cls_name in names.items():
        body = struct.pack(">HB", code, code % 2) + "texte é".encode()
        err = p.decode_error(body)
        assert type(err).__name__ == cls_name and type(err) is getattr(beuss, cls_name)
        assert (err.code, err.fatal, err.text) == (code, code % 2 == 1, "texte é")
        assert isinstance(err, beuss.ServerError) and isinstance(err, beuss.BeussError)
    err = p.decode_error(struct.pack(">HB", 999, 0) + b"new")
    assert type(err) is beuss.ServerError and err.code == 999 and not err.fatal


def test_settle_pair_limits() -> None:
    with pytest.raises(ValueError):
        ops.ack("q", [])
    with pytest.raises(ValueError):
        ops.ack("q", [(1, 1)] * 4097)
    frame_ = ops.ack("q", [(1, 1)] * 4096).frame
    assert len(frame_) - 4 <= 65536  # within the settle frame limit (13.6)


def test_put_batch_frames_equal_single_puts() -> None:
    bodies = [b"", b"a", b"x" * 300]
    for options in (False, True):
        single = [ops.put("jobs", b, options=options).frame for b in bodies]
        assert ops.put_frames("jobs", bodies, options=options) == single
    with pytest.raises(ValueError):
        ops.put("jobs", b"x", priority=10)


def test_streamed_request_lengths() -> None:
    pub = p.encode_pub("a.b", b"xyz", 1, 2, 3, 4)
    assert struct.unpack(">I", pub[:4])[0] == len(pub) - 4 == 2 + 1 + 3 + 13 + 3
    req = p.encode_req("a.b", 1000, b"xyz")
    assert struct.unpack(">I", req[:4])[0] == len(req) - 4 == 2 + 1 + 3 + 4 + 3
    rep = p.encode_reply(5, b"xyz")
    assert struct.unpack(">I", rep[:4])[0] == len(rep) - 4 == 2 + 8 + 3


def test_stats_by_name_whatever_the_order() -> None:
    def fig(name: str, v: int) -> bytes:
        return bytes((len(name),)) + name.encode() + struct.pack(">Q", v)

    body = (
        struct.pack(">H", 3) + fig("zz_new", 1) + fig("messages", 5) + fig("messages", 6)
        + struct.pack(">I", 2)
        + b"\x01b" + struct.pack(">H", 1) + fig("ready", 2)
        + b"\x01a" + struct.pack(">H", 0)
    )
    st = p.decode_stats(body)
    assert st.server == {"zz_new": 1, "messages": 5}  # a name twice: the first counts
    assert st.queues == {"b": {"ready": 2}, "a": {}}


def test_envelopes_and_events() -> None:
    meta = bytes((1, 1)) + b"s"
    env = struct.pack(">IQIH", 1, 7, 2, len(meta)) + meta + struct.pack(">I", 2) + b"hi"
    assert ops.get_meta("q").decode(p.S_ENVELOPES, env) == [beuss.Envelope(7, 2, b"hi", "s")]
    ev = p.decode_event(struct.pack(">IH", 3, len(meta)) + meta + b"payload")
    assert ev == beuss.Event(3, b"payload", "s")


def test_values_the_server_refuses_fatally_are_refused_here() -> None:
    """A bad count, priority or timeout raises ValueError before anything is sent, as a
    bad name does: a typo must not cost the connection (BAD_ARGUMENT is fatal)."""
    bad = [
        lambda: ops.get("q", max=0),
        lambda: ops.get("q", max=65536),
        lambda: ops.get_meta("q", max=0),
        lambda: ops.lease("q", lambda d: d, max=0),
        lambda: ops.lease("q", lambda d: d, max_deliveries=65536),
        lambda: ops.peek("q", max=0),
        lambda: ops.move("a", "b", max=0),
        lambda: ops.move("a", "a"),
        lambda: ops.publish("s", b"", priority=10),
        lambda: ops.publish("s", b"", confirm=1, timeout=0.0001),
        lambda: ops.request("s", b"", timeout=0),
        lambda: ops.put("q", b"", priority=-1),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()
    # The edges that are allowed.
    ops.get("q", max=65535)
    ops.move("a", "b", max=0xFFFFFFFF)
    ops.publish("s", b"", priority=9, confirm=0, timeout=0)
    ops.request("s", b"", timeout=0.001)


def test_async_batches_are_cut_by_count_and_by_bytes() -> None:
    from beuss.aio import _CHUNK, _CHUNK_BYTES, _chunks

    assert list(_chunks([])) == []
    assert list(_chunks([10] * (_CHUNK + 1))) == [(0, _CHUNK), (_CHUNK, _CHUNK + 1)]
    big = _CHUNK_BYTES // 2 + 1
    # Two frames over the byte budget go out apart; one frame over it goes alone.
    assert list(_chunks([big, big, big])) == [(0, 1), (1, 2), (2, 3)]
    assert list(_chunks([1, 3 * _CHUNK_BYTES, 1])) == [(0, 1), (1, 2), (2, 3)]
    assert list(_chunks([_CHUNK_BYTES // 4] * 4)) == [(0, 4)]


# -- schedules (protocol.md 17) ----------------------------------------------------


def test_schedule_request_layouts() -> None:
    to_queue = ops.schedule("n", "@every 1s", "q", payload=b"pp", priority=0).frame
    assert to_queue == struct.pack(">IBB", 2 + 2 + 10 + 1 + 2 + 1 + 2, p.SCHEDULE, 0) + (
        b"\x01n" + b"\x09@every 1s" + b"\x00" + b"\x01q" + b"\x00" + b"pp"
    )
    to_subject = ops.schedule("n", "@daily", subject="clock.tick", priority=9).frame
    assert to_subject == struct.pack(">IBB", 2 + 2 + 7 + 1 + 11 + 1, p.SCHEDULE, 0) + (
        b"\x01n" + b"\x06@daily" + b"\x01" + b"\x0aclock.tick" + b"\x09"
    )
    # Schedule names, specs and subjects are counted in bytes of UTF-8.
    assert ops.schedule("é" * 127, "@daily", subject="é.ü").frame[6] == 254
    assert ops.pause_schedule("n", False).frame == bytes((0, 0, 0, 5, p.PAUSE_SCHEDULE, 0, 1)) + b"n\x00"
    assert ops.pause_schedule("n").frame == bytes((0, 0, 0, 5, p.PAUSE_SCHEDULE, 0, 1)) + b"n\x01"
    assert ops.unschedule("n").frame == bytes((0, 0, 0, 4, p.UNSCHEDULE, 0, 1)) + b"n"
    assert ops.schedules("n").frame == bytes((0, 0, 0, 4, p.SCHEDULES, 0, 1)) + b"n"
    assert ops.schedules("nm").frame == bytes((0, 0, 0, 5, p.SCHEDULES, 0, 2)) + b"nm"
    # An empty name lists every schedule, as name_len 0 does.
    assert ops.schedules("").frame == ops.schedules(None).frame == bytes((0, 0, 0, 3, p.SCHEDULES, 0, 0))
    for op in (ops.schedule("n", "@daily", "q"), ops.unschedule("n"), ops.pause_schedule("n"), ops.schedules()):
        assert (op.version, op.feature) == (5, beuss.FEATURE_SCHEDULES)


def test_schedule_values_the_server_refuses_fatally_are_refused_here() -> None:
    """Names, specs, targets, priorities and frame sizes the server would answer with
    a fatal error (BAD_ARGUMENT, BAD_QUEUE_NAME, BAD_SUBJECT, FRAME_TOO_LARGE) raise
    ValueError before anything is sent."""
    head = 2 + 2 + 7 + 1 + 2 + 1  # opcode, flags, name "n", spec "@daily", kind, "q", priority
    room = p.MAX_SCHEDULE_FRAME - head
    bad = [
        lambda: ops.schedule("", "@daily", "q"),
        lambda: ops.schedule("n" * 256, "@daily", "q"),
        lambda: ops.schedule("\ud800", "@daily", "q"),  # cannot be UTF-8
        lambda: ops.schedule("n", "", "q"),
        lambda: ops.schedule("n", "*" * 256, "q"),
        lambda: ops.schedule("n", "@daily"),  # no target
        lambda: ops.schedule("n", "@daily", "q", subject="s"),  # two targets
        lambda: ops.schedule("n", "@daily", ""),
        lambda: ops.schedule("n", "@daily", "q" * 256),
        lambda: ops.schedule("n", "@daily", subject=""),
        lambda: ops.schedule("n", "@daily", subject="s" * 256),
        lambda: ops.schedule("n", "@daily", "q", priority=10),
        lambda: ops.schedule("n", "@daily", "q", priority=-1),
        lambda: ops.schedule("n", "@daily", "q", payload=b"p" * (room + 1)),
        lambda: ops.unschedule(""),
        lambda: ops.unschedule("n" * 256),
        lambda: ops.pause_schedule(""),
        lambda: ops.schedules("n" * 256),
    ]
    # A schedule publishes to one subject: no wildcard, and the rules of 15.1.
    for subject in ("orders.*", ">", "a.>", "a*", ">b", "a..b", ".a", "a.", "a b", "a\tb", "a\x7f"):
        bad.append(lambda subject=subject: ops.schedule("n", "@daily", subject=subject))
    for make in bad:
        with pytest.raises(ValueError):
            make()
    # The edges that are allowed.
    assert len(ops.schedule("n", "@daily", "q", payload=b"p" * room).frame) == 4 + p.MAX_SCHEDULE_FRAME
    ops.schedule("n" * 255, "@" * 255, "q" * 255, priority=9)
    ops.schedule("n", "@daily", subject="s" * 255, priority=0)
    ops.schedule("n", "@daily", subject="orders.eu-west.créé")
    ops.schedule("n", "@daily", "a queue with * and > is fine")  # queue names are not subjects
    ops.unschedule("n" * 255)
    ops.schedules("n" * 255)


def _entry(name: bytes, spec: bytes, kind: int, target: bytes, priority: int, paused: int,
           figures: Tuple[int, int, int, int, int], payload_len: int, extra: bytes = b"") -> bytes:
    entry = (
        bytes((len(name),)) + name + bytes((len(spec),)) + spec + bytes((kind, len(target))) + target
        + struct.pack(">BBQQQQQI", priority, paused, *figures, payload_len) + extra
    )
    return struct.pack(">H", len(entry)) + entry


def test_schedule_list_decoding_skips_what_a_later_version_appends() -> None:
    first = _entry(b"nightly", b"0 3 * * *", 0, b"jobs", 5, 0, (1796353200000, 0, 0, 0, 0), 6)
    # An entry with fields this version does not know: skipped by entry_len.
    second = _entry(b"tick", b"@every 2s", 1, b"clock.tick", 0, 1, (0, 2**64 - 1, 3, 1, 2), 2**32 - 1,
                    extra=b"\xee\xee\xee")
    body = struct.pack(">I", 2) + first + second + b"trailing bytes after the list"
    assert ops.schedules().decode(p.S_SCHEDULE_LIST, body) == [
        ScheduleInfo("nightly", "0 3 * * *", False, "jobs", 5, False, 1796353200000, 0, 0, 0, 0, 6),
        ScheduleInfo("tick", "@every 2s", True, "clock.tick", 0, True, 0, 2**64 - 1, 3, 1, 2, 2**32 - 1),
    ]
    [nightly, tick] = p.decode_schedule_list(body)
    assert (nightly.queue, nightly.subject) == ("jobs", None)
    assert (tick.queue, tick.subject) == (None, "clock.tick")
    assert p.decode_schedule_list(struct.pack(">I", 0)) == []
    # A count past the entries, an entry running past the reply, and an entry shorter
    # than the fields it must have are protocol errors, never a guess.
    for broken in (
        struct.pack(">I", 3) + first + second,
        struct.pack(">I", 2**32 - 1),
        struct.pack(">I", 1) + first[:-1],
        struct.pack(">I", 1) + struct.pack(">H", len(first) - 3) + first[2:-1],
        struct.pack(">I", 1) + struct.pack(">H", 3) + b"\x05ab",
        b"\x00\x00\x00",
    ):
        with pytest.raises(beuss.ProtocolError):
            p.decode_schedule_list(broken)


def test_schedule_replies() -> None:
    created, next_run_ms = ops.schedule("n", "@daily", "q").decode(p.S_SCHEDULED, struct.pack(">BQ", 0, 7) + b"+")
    assert (created, next_run_ms) == (False, 7)
    assert p.decode_scheduled(struct.pack(">BQ", 1, 2**64 - 1)) == Scheduled(True, 2**64 - 1)
    paused = ops.pause_schedule("n").decode
    assert paused(p.S_SCHEDULE_PAUSED, struct.pack(">BQ", 1, 0)) == 0
    assert paused(p.S_SCHEDULE_PAUSED, struct.pack(">BQ", 1, 1796353200000)) == 1796353200000
    assert paused(p.S_SCHEDULE_PAUSED, struct.pack(">BQ", 0, 0)) is None  # no such schedule
    assert ops.unschedule("n").decode(p.S_UNSCHEDULED, b"\x00") is False
    assert ops.unschedule("n").decode(p.S_UNSCHEDULED, b"\x01") is True
    for op, status in ((ops.schedule("n", "@daily", "q"), p.S_SCHEDULED), (ops.pause_schedule("n"), p.S_SCHEDULE_PAUSED),
                       (ops.unschedule("n"), p.S_UNSCHEDULED)):
        with pytest.raises(beuss.ProtocolError):
            op.decode(status, b"")  # shorter than its fields
        with pytest.raises(beuss.ProtocolError):
            op.decode(p.S_PONG, b"")  # a status this request cannot get
    err = struct.pack(">HB", 20, 0) + b"bad schedule: minute 61 is out of range 0-59"
    with pytest.raises(beuss.BadSchedule) as info:
        ops.schedule("n", "61 * * * *", "q").decode(p.S_ERROR, err)
    assert (info.value.code, info.value.fatal) == (20, False)
    assert info.value.text.startswith("bad schedule")


def test_schedules_need_version_5_and_the_feature_bit() -> None:
    """What the clients check before sending (protocol.md 17.1, 9.1)."""
    op = ops.schedules()
    ops.check_version([op], 5, beuss.FEATURE_SCHEDULES | 0x3F)
    with pytest.raises(beuss.Unsupported, match="version 5"):
        ops.check_version([op], 4, 0x7F)
    with pytest.raises(beuss.Unsupported, match="feature 0x40"):
        ops.check_version([op], 5, 0x3F)
    # Requests of earlier versions need no feature bit.
    ops.check_version([ops.ping(), ops.bind("a", "q")], 5, 0)


# -- unique messages (protocol.md 18) ----------------------------------------------


def test_unique_put_layouts() -> None:
    # A key alone: flags 0x04, the key fields right after the queue name.
    plain = ops.put("q", b"body", unique="k1", unique_for=1.5).frame
    assert plain == struct.pack(">IBB", 2 + 2 + 1 + 2 + 1 + 4 + 4, p.PUT, p.FLAG_PUT_UNIQUE) + (
        b"\x01q" + b"\x02k1" + b"\x00" + struct.pack(">I", 1500) + b"body"
    )
    # With a delay or a priority: flags 0x05, the option fields first (18.3).
    for kwargs, delay_ms, prio in (({"delay": 0.25}, 250, 5), ({"priority": 0}, 0, 0), ({"delay": 1, "priority": 9}, 1000, 9)):
        frame = ops.put("q", b"", unique=b"\x00\xff", replace=True, **kwargs).frame  # type: ignore[arg-type]
        assert frame == struct.pack(">IBB", 2 + 2 + 5 + 1 + 2 + 1 + 4, p.PUT, p.FLAG_PUT_OPTIONS | p.FLAG_PUT_UNIQUE) + (
            b"\x01q" + struct.pack(">IB", delay_ms, prio) + b"\x02\x00\xff" + b"\x01" + struct.pack(">I", 0)
        )
    # A text key is its UTF-8 bytes: "é" and b"\xc3\xa9" are one key.
    assert ops.put("q", b"", unique="é").frame == ops.put("q", b"", unique="é".encode()).frame
    assert ops.put("q", b"", unique="é" * 127).frame[8] == 254
    # Whatever the connection's PUT_OPTIONS, a keyed PUT is the same frame.
    assert ops.put("q", b"x", unique="k", options=False).frame == ops.put("q", b"x", unique="k").frame
    # The pipelines build the same frames.
    batch = ops.Batch(_Source())
    batch.put("q", b"body", unique="k1", unique_for=1.5)
    assert batch._ops[0].frame == plain
    for op in (ops.put("q", b"", unique="k"), ops.put("q", b"", delay=1, unique="k", replace=True)):
        assert (op.version, op.feature) == (6, beuss.FEATURE_UNIQUE)
    # Without a key nothing changes: versions 1 and 2, no feature needed.
    assert (ops.put("q", b"", options=False).version, ops.put("q", b"").version) == (1, 2)
    assert ops.put("q", b"").feature == 0


class _Source:
    """Enough of a client for ``ops.Batch``."""

    _options = True

    def _maker(self, queue: str) -> ops.Maker[object]:
        raise AssertionError("not used")

    def _register(self, pattern: str) -> "object":
        raise AssertionError("not used")


def test_unique_values_the_server_refuses_fatally_are_refused_here() -> None:
    """Keys, windows and combinations the server would answer with a fatal
    BAD_ARGUMENT (or that mean nothing) raise ValueError before anything is sent."""
    bad = [
        lambda: ops.put("q", b"", unique=""),
        lambda: ops.put("q", b"", unique=b""),
        lambda: ops.put("q", b"", unique="k" * 256),
        lambda: ops.put("q", b"", unique=b"k" * 256),
        lambda: ops.put("q", b"", unique="é" * 128),  # 256 bytes of UTF-8
        lambda: ops.put("q", b"", unique="\ud800"),  # cannot be UTF-8
        lambda: ops.put("q", b"", unique="k", unique_for=2_592_000.001),
        lambda: ops.put("q", b"", unique="k", unique_for=31 * 86400),
        lambda: ops.put("q", b"", unique="k", unique_for=-1),
        lambda: ops.put("q", b"", unique="k", unique_for=float("nan")),
        lambda: ops.put("q", b"", unique="k", unique_for=float("inf")),
        lambda: ops.put("q", b"", replace=True),  # replace what? it needs a key
        lambda: ops.put("q", b"", unique_for=60),  # a window for no key
        lambda: ops.put("q", b"", unique="k", priority=10),
        lambda: ops.put("", b"", unique="k"),
        lambda: p.unique_fields(b"", False, 0),
        lambda: p.unique_fields(b"k", False, p.MAX_UNIQUE_WINDOW_MS + 1),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()
    with pytest.raises(TypeError):
        ops.put("q", b"", unique=42)  # type: ignore[arg-type]
    # The edges that are allowed.
    longest = ops.put("q", b"", unique="k" * 255, unique_for=2_592_000.0).frame
    assert longest[8] == 255 and longest[-4:] == struct.pack(">I", p.MAX_UNIQUE_WINDOW_MS)
    assert ops.put("q", b"", unique=b"\x00").frame[8:10] == b"\x01\x00"  # any bytes, NUL too
    assert ops.put("q", b"", unique="k", unique_for=0.0).frame[-4:] == b"\x00\x00\x00\x00"
    ops.put("q", b"", unique=bytearray(b"k"))


def test_unique_replies() -> None:
    decode = ops.put("q", b"", unique="k").decode
    # STORED and TRUNCATED as for a PUT with options: with the new id.
    assert decode(p.S_STORED, struct.pack(">Q", 7)) == beuss.PutResult(7)
    assert decode(p.S_STORED, struct.pack(">Q", 7)).created
    cut = decode(p.S_TRUNCATED, struct.pack(">IIQ", 20, 10, 8))
    assert cut == beuss.PutResult(8, 20, 10) and cut.truncated and cut.created
    # DUPLICATE: every state, bytes a later version appends ignored.
    for state, holder, text in ((1, beuss.HolderState.READY, "ready"), (2, beuss.HolderState.DELAYED, "delayed"),
                                (3, beuss.HolderState.IN_FLIGHT, "in_flight"), (4, beuss.HolderState.GONE, "gone")):
        got = decode(p.S_DUPLICATE, struct.pack(">QB", 2**64 - 1, state) + b"later")
        assert got == beuss.PutResult(2**64 - 1, duplicate=holder)
        assert got.duplicate == text and got.duplicate is holder
        assert not got.created and not got.replaced and not got.truncated
    # REPLACED: the holder's id; lengths equal when not cut, which is not "truncated".
    same = decode(p.S_REPLACED, struct.pack(">QII", 3, 5, 5) + b"\x00")
    assert same == beuss.PutResult(3, 5, 5, replaced=True)
    assert same.replaced and not same.truncated and not same.created and same.duplicate is None
    shorter = decode(p.S_REPLACED, struct.pack(">QII", 3, 5000, 4096))
    assert shorter.truncated and (shorter.original_len, shorter.stored_len) == (5000, 4096)
    # Short replies and states protocol.md does not define are protocol errors.
    for status, body in ((p.S_DUPLICATE, struct.pack(">Q", 1)), (p.S_DUPLICATE, b""),
                         (p.S_REPLACED, struct.pack(">QI", 1, 1)), (p.S_DUPLICATE, struct.pack(">QB", 1, 0)),
                         (p.S_DUPLICATE, struct.pack(">QB", 1, 5))):
        with pytest.raises(beuss.ProtocolError):
            decode(status, body)
    # A PUT without a key never gets these statuses: a broken peer.
    for status in (p.S_DUPLICATE, p.S_REPLACED):
        with pytest.raises(beuss.ProtocolError):
            ops.put("q", b"").decode(status, struct.pack(">QII", 1, 1, 1))
    # An ERROR is still the error it stands for (FULL for a replace over the cap).
    with pytest.raises(beuss.Full):
        decode(p.S_ERROR, struct.pack(">HB", 7, 0) + b"full")


def test_unique_needs_version_6_and_the_feature_bit() -> None:
    """What the clients check before sending (protocol.md 18.1, 9.1)."""
    op = ops.put("q", b"", unique="k")
    ops.check_version([op], 6, beuss.FEATURE_UNIQUE | 0x7F)
    with pytest.raises(beuss.Unsupported, match="version 6"):
        ops.check_version([op], 5, 0xFF)
    with pytest.raises(beuss.Unsupported, match="feature 0x80"):
        ops.check_version([op], 6, 0x7F)
    assert p.PROTOCOL_VERSION == 6 and ops.hello().frame == bytes.fromhex("00000004010000 06".replace(" ", ""))


# -- message expiry (protocol.md 19) -----------------------------------------------


def ttl_tail(ttl_ms: int, mode: int) -> bytes:
    """The PUT_TTL fields as protocol.md 19.2 lays them out: u32 ttl_ms, u8 mode."""
    return struct.pack(">IB", ttl_ms, mode)


def test_ttl_put_layouts_for_every_flag_combination() -> None:
    """The four flag values a PUT with a time to live can have (0x08, 0x09, 0x0C,
    0x0D), each byte where 19.2 puts it: after the queue name, the option fields and
    the key fields, before the payload."""
    key = b"\x02k1" + b"\x00" + struct.pack(">I", 0)  # key "k1", refuse, no window
    key_replace = b"\x02k1" + b"\x01" + struct.pack(">I", 1500)
    opts = struct.pack(">IB", 250, 5)
    cases = [
        # (put's keyword arguments, flags, the fields after the queue name)
        ({"ttl": 5.0}, 0x08, ttl_tail(5000, 0)),
        ({"ttl": 0.2, "ttl_dead_letter": True}, 0x08, ttl_tail(200, 1)),
        ({"ttl": 0.0}, 0x08, ttl_tail(0, 0)),
        ({"ttl": 1.0, "delay": 0.25}, 0x09, opts + ttl_tail(1000, 0)),
        ({"ttl": 1.0, "priority": 0, "ttl_dead_letter": True}, 0x09, struct.pack(">IB", 0, 0) + ttl_tail(1000, 1)),
        ({"ttl": 2.5, "unique": "k1"}, 0x0C, key + ttl_tail(2500, 0)),
        ({"ttl": 2.5, "unique": b"k1", "replace": True, "unique_for": 1.5, "ttl_dead_letter": True}, 0x0C,
         key_replace + ttl_tail(2500, 1)),
        ({"ttl": 60.0, "unique": "k1", "delay": 0.25}, 0x0D, opts + key + ttl_tail(60000, 0)),
        ({"ttl": 60.0, "unique": "k1", "delay": 0.25, "priority": 5, "replace": True, "unique_for": 1.5,
          "ttl_dead_letter": True}, 0x0D, opts + key_replace + ttl_tail(60000, 1)),
    ]
    for kwargs, flags, fields in cases:
        op = ops.put("q", b"body", **kwargs)  # type: ignore[arg-type]
        rest = b"\x01q" + fields + b"body"
        assert op.frame == struct.pack(">IBB", 2 + len(rest), p.PUT, flags) + rest, kwargs
        assert flags & p.FLAG_PUT_TTL and op.version == 6
        want = beuss.FEATURE_TTL | (beuss.FEATURE_UNIQUE if "unique" in kwargs else 0)
        assert op.feature == want, kwargs
        # The pipelines build the same frame.
        batch = ops.Batch(_Source())
        batch.put("q", b"body", **kwargs)  # type: ignore[arg-type]
        assert batch._ops[0].frame == op.frame
    # Whatever the connection's PUT_OPTIONS, a PUT with a time to live is one frame.
    assert ops.put("q", b"x", ttl=1, options=False).frame == ops.put("q", b"x", ttl=1).frame
    # No ttl, no TTL field: the frames of before, and no TTL feature needed.
    assert ops.put("q", b"x").frame == p.encode_put("q", b"x", 0, 5)
    assert ops.put("q", b"x", ttl=None).feature == 0
    assert ops.put("q", b"x", unique="k").frame[5] == p.FLAG_PUT_UNIQUE
    assert ops.put("q", b"x", unique="k").feature == beuss.FEATURE_UNIQUE


def test_ttl_milliseconds() -> None:
    ttl_of = lambda seconds: struct.unpack(">I", ops.put("q", b"", ttl=seconds).frame[-5:-1])[0]  # noqa: E731
    assert ttl_of(0) == 0 and ttl_of(0.0) == 0
    assert ttl_of(1.5) == 1500 and ttl_of(0.2) == 200 and ttl_of(0.0016) == 2
    # A positive ttl under half a millisecond must not round to 0, "never expires".
    assert ttl_of(0.0004) == 1 and ttl_of(1e-9) == 1
    # An int is fine, and so is the longest: 30 days exactly.
    assert ttl_of(10) == 10000
    assert ttl_of(2_592_000) == p.MAX_TTL_MS == 2_592_000_000
    assert ttl_of(2_592_000.0) == p.MAX_TTL_MS


def test_ttl_arguments_the_server_refuses_fatally_are_refused_here() -> None:
    """Times to live the server would answer with a fatal BAD_ARGUMENT (or that mean
    nothing) raise ValueError before anything is built."""
    bad = [
        lambda: ops.put("q", b"", ttl=-0.001),
        lambda: ops.put("q", b"", ttl=-1),
        lambda: ops.put("q", b"", ttl=float("nan")),
        lambda: ops.put("q", b"", ttl=float("inf")),
        lambda: ops.put("q", b"", ttl=float("-inf")),
        lambda: ops.put("q", b"", ttl=2_592_000.001),
        lambda: ops.put("q", b"", ttl=31 * 86400),
        lambda: ops.put("q", b"", ttl_dead_letter=True),  # dead-letter when? it needs a ttl
        lambda: ops.put("q", b"", ttl=None, ttl_dead_letter=True),
        lambda: ops.put("q", b"", ttl_dead_letter=True, unique="k"),
        lambda: ops.put("q", b"", ttl=1, priority=10),
        lambda: ops.put("q", b"", ttl=1, delay=-1),
        lambda: ops.put("q", b"", ttl=1, unique=""),
        lambda: ops.put("", b"", ttl=1),
        lambda: ops.put_frames("q", [b"a"], ttl=-1),
        lambda: ops.put_frames("q", [b"a"], ttl_dead_letter=True),
        lambda: ops.Batch(_Source()).put("q", b"", ttl_dead_letter=True),
        lambda: p.ttl_fields(p.MAX_TTL_MS + 1),
        lambda: p.ttl_fields(-1),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()
    assert p.ttl_fields(p.MAX_TTL_MS, True) == struct.pack(">IB", p.MAX_TTL_MS, p.TTL_DEAD_LETTER)
    assert p.ttl_fields(0) == b"\x00\x00\x00\x00\x00"
    # ttl=0 with dead-lettering is allowed: the message never expires, the mode is moot.
    assert ops.put("q", b"", ttl=0, ttl_dead_letter=True).frame[-5:] == ttl_tail(0, 1)


def test_ttl_put_many_frames() -> None:
    """put_many's frames are put's frames, the TTL fields on every one."""
    bodies = [b"", b"a", b"bb" * 100]
    for kwargs in ({"ttl": 0.5}, {"ttl": 0.5, "ttl_dead_letter": True}, {"ttl": 0, "delay": 1},
                   {"ttl": 3, "priority": 1}, {}):
        frames = ops.put_frames("q", bodies, options=True, **kwargs)  # type: ignore[arg-type]
        assert frames == [ops.put("q", b, **kwargs).frame for b in bodies], kwargs  # type: ignore[arg-type]
    assert ops.put_frames("q", [b"x"], ttl=0.5)[0] == bytes.fromhex("0000000a1008") + b"\x01q" + ttl_tail(500, 0) + b"x"


def test_ttl_replies() -> None:
    # Without a key: the replies of a PUT with options (19.2), with the id.
    decode = ops.put("q", b"", ttl=1).decode
    assert decode(p.S_STORED, struct.pack(">Q", 7)) == beuss.PutResult(7)
    cut = decode(p.S_TRUNCATED, struct.pack(">IIQ", 20, 10, 8))
    assert cut == beuss.PutResult(8, 20, 10) and cut.truncated
    with pytest.raises(beuss.Full):
        decode(p.S_ERROR, struct.pack(">HB", 7, 0) + b"full")
    with pytest.raises(beuss.BadArgument):
        decode(p.S_ERROR, struct.pack(">HB", beuss.BadArgument.CODE, 1) + b"ttl")
    # A key's replies are not the replies of a PUT without one: a broken peer.
    for status in (p.S_DUPLICATE, p.S_REPLACED):
        with pytest.raises(beuss.ProtocolError):
            decode(status, struct.pack(">QII", 1, 1, 1))
    # With a key too: those of a keyed PUT (18.3).
    keyed = ops.put("q", b"", unique="k", ttl=1).decode
    assert keyed(p.S_STORED, struct.pack(">Q", 2)) == beuss.PutResult(2)
    assert keyed(p.S_DUPLICATE, struct.pack(">QB", 3, 2)) == beuss.PutResult(3, duplicate=beuss.HolderState.DELAYED)
    assert keyed(p.S_REPLACED, struct.pack(">QII", 3, 4, 4)) == beuss.PutResult(3, 4, 4, replaced=True)


def test_ttl_needs_version_6_and_the_feature_bit() -> None:
    """What the clients check before sending (protocol.md 19.1, 9.1)."""
    op = ops.put("q", b"", ttl=1)
    ops.check_version([op], 6, beuss.FEATURE_TTL)
    ops.check_version([op], 6, 0x1FF)
    with pytest.raises(beuss.Unsupported, match="version 6"):
        ops.check_version([op], 5, 0x1FF)
    with pytest.raises(beuss.Unsupported, match="feature 0x100"):
        ops.check_version([op], 6, 0xFF)
    # A key and a time to live need both bits; the message names the one missing.
    both = ops.put("q", b"", ttl=1, unique="k")
    ops.check_version([both], 6, beuss.FEATURE_TTL | beuss.FEATURE_UNIQUE)
    with pytest.raises(beuss.Unsupported, match="feature 0x100,"):
        ops.check_version([both], 6, beuss.FEATURE_UNIQUE)
    with pytest.raises(beuss.Unsupported, match="feature 0x80,"):
        ops.check_version([both], 6, beuss.FEATURE_TTL)
    with pytest.raises(beuss.Unsupported, match="feature 0x180,"):
        ops.check_version([both], 6, 0x7F)
    assert beuss.FEATURE_TTL == 0x100
