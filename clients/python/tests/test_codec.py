"""Unit tests of the codec (no server)."""

from __future__ import annotations

import struct

import pytest

import beuss
from beuss import errors, ops
from beuss import protocol as p
from beuss.models import Meta


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
        19: "TimedOut",
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
