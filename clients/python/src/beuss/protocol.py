"""The wire codec: request encoders, reply decoders and a frame splitter.

Everything here is pure (no sockets), so the sync and asyncio clients share it and the
unit tests can check it against every hex example of protocol.md. All integers are
big-endian (protocol.md 2.1); the ``struct.Struct`` objects are compiled once because
the encoders sit on the hot path of pipelined ``put_many``/``get``.
"""

from __future__ import annotations

import functools
import struct
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import ProtocolError, ServerError, server_error
from .models import Envelope, Event, HolderState, Meta, Published, PutResult, Scheduled, ScheduleInfo, ServerInfo, Stats

#: The highest protocol version this client speaks.
PROTOCOL_VERSION = 6

# Opcodes (protocol.md 3, 13.12, 15.13, 16, 17.9).
HELLO = 0x01
PING = 0x02
QUIT = 0x03
PUT = 0x10
GET = 0x11
PURGE = 0x12
LEASE = 0x13
ACK = 0x14
NACK = 0x15
TOUCH = 0x16
PEEK = 0x17
MOVE = 0x18
STATS = 0x20
BIND = 0x30
UNBIND = 0x31
PUB = 0x32
SUB = 0x33
UNSUB = 0x34
REQ = 0x35
REPLY = 0x36
AUTH = 0x40
SCHEDULE = 0x50
UNSCHEDULE = 0x51
PAUSE_SCHEDULE = 0x52
SCHEDULES = 0x53

# Statuses (protocol.md 4, 13.12, 15.13, 16, 17.9, 18.8).
S_PONG = 0x01
S_HELLO = 0x02
S_BYE = 0x03
S_AUTHED = 0x04
S_STORED = 0x10
S_TRUNCATED = 0x11
S_MESSAGES = 0x12
S_EMPTY = 0x13
S_PURGED = 0x14
S_LEASED = 0x15
S_SETTLED = 0x16
S_PEEKED = 0x17
S_MOVED = 0x18
S_STATS = 0x20
S_BOUND = 0x30
S_UNBOUND = 0x31
S_PUBLISHED = 0x32
S_SUBSCRIBED = 0x33
S_UNSUBSCRIBED = 0x34
S_REPLY = 0x35
S_REPLIED = 0x36
S_ENVELOPES = 0x37
S_EVENT = 0x3F
S_SCHEDULED = 0x50
S_UNSCHEDULED = 0x51
S_SCHEDULE_PAUSED = 0x52
S_SCHEDULE_LIST = 0x53
S_DUPLICATE = 0x54
S_REPLACED = 0x55
S_ERROR = 0x7F

# Flags and option bits (protocol.md 13.4, 15.9, 18.3, 19.2).
FLAG_PUT_OPTIONS = 0x01
FLAG_WITH_META = 0x02
FLAG_PUT_UNIQUE = 0x04
FLAG_PUT_TTL = 0x08
LEASE_DETACHED = 0x01
NACK_DEAD = 0x01
NACK_NO_CHARGE = 0x02

# Metadata tags (protocol.md 15.7).
TAG_SUBJECT = 1
TAG_REPLY_TO = 2
TAG_DROPPED = 3

# A unique PUT's mode (protocol.md 18.3): 0 refuses a duplicate.
UNIQUE_REFUSE = 0x00
UNIQUE_REPLACE = 0x01

# A PUT_TTL mode (protocol.md 19.2): what becomes of the message when it expires.
TTL_DROP = 0x00
TTL_DEAD_LETTER = 0x01

# A schedule's target_kind (protocol.md 17.3).
TARGET_QUEUE = 0
TARGET_SUBJECT = 1

#: ``wait_ms`` meaning "wait forever".
WAIT_FOREVER = 0xFFFFFFFF
#: Most (id, attempt) pairs in one settle request (13.6).
MAX_SETTLE_PAIRS = 4096
#: Priority a plain PUT gives.
DEFAULT_PRIORITY = 5
#: Longest ``length`` a ``SCHEDULE`` frame may declare (17.3): its payload is inside.
MAX_SCHEDULE_FRAME = 65536
#: Longest unique key, in bytes (18.5).
MAX_UNIQUE_KEY = 255
#: Longest dedup window a unique ``PUT`` may ask for: 30 days in ms (18.3).
MAX_UNIQUE_WINDOW_MS = 2_592_000_000
#: Longest time to live a ``PUT_TTL`` may ask for: 30 days in ms (19.2).
MAX_TTL_MS = 2_592_000_000

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HEAD = struct.Struct(">IBB")  # length, opcode, flags
_WAIT_MAX = struct.Struct(">IH")  # wait_ms, max
_LEASE_TAIL = struct.Struct(">IHIHB")  # wait_ms, max, lease_ms, max_deliveries, options
_DELAY_PRIO = struct.Struct(">IB")
_PUB_TAIL = struct.Struct(">IBII")  # delay_ms, priority, confirm, timeout_ms
_PAIR = struct.Struct(">QI")
_ID_ATTEMPT_LEN = struct.Struct(">QII")
_ID_ATTEMPT_META = struct.Struct(">QIH")
_TRUNC = struct.Struct(">II")
_HELLO_V1 = struct.Struct(">HIB")
_HELLO_V2 = struct.Struct(">IIIIH")
_ERROR = struct.Struct(">HB")
_PUBLISHED = struct.Struct(">IIIIII")
_EVENT_HEAD = struct.Struct(">IH")
_FRAME_HEAD = struct.Struct(">IB")  # length, status
_MODE_WINDOW = struct.Struct(">BI")  # a unique PUT's mode, window_ms
_TTL_MODE = struct.Struct(">IB")  # a PUT_TTL's ttl_ms, mode
_DUPLICATE = struct.Struct(">QB")  # id, state
_REPLACED = struct.Struct(">QII")  # id, original_len, stored_len
_FLAG_U64 = struct.Struct(">BQ")  # SCHEDULED, SCHEDULE_PAUSED: a flag, then a time
# A SCHEDULE_LIST entry after its target: priority, paused, next_run_ms, last_run_ms,
# runs, misfires, failures, payload_len.
_SCHEDULE_TAIL = struct.Struct(">BBQQQQQI")

Pair = Tuple[int, int]
#: One leased or peeked message as decoded: (id, attempt, payload, metadata).
RawDelivery = Tuple[int, int, bytes, Optional[Meta]]


@functools.lru_cache(maxsize=4096)
def name(text: str, what: str = "queue name") -> bytes:
    """Encodes a ``name`` field (u8 length + UTF-8), refusing what the server would
    refuse with a fatal error, so a typo costs an exception instead of the connection."""
    raw = text.encode("utf-8")
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"{what} must be 1..255 bytes of UTF-8, got {len(raw)} bytes")
    return bytes((len(raw),)) + raw


def ms(seconds: Optional[float], what: str = "wait") -> int:
    """Seconds (``None`` = forever) to the protocol's u32 milliseconds."""
    if seconds is None:
        return WAIT_FOREVER
    if seconds < 0:
        raise ValueError(f"{what} must not be negative")
    value = int(round(seconds * 1000))
    if value >= WAIT_FOREVER:
        raise ValueError(f"{what} must be under 49.7 days (or None for ever)")
    return value


def _count(value: int, low: int, high: int, what: str) -> int:
    """``value`` if ``low <= value <= high``; else ``ValueError``: the values the server
    answers with a fatal ``BAD_ARGUMENT`` (or that do not fit their field) are refused
    here, like bad names."""
    if not low <= value <= high:
        raise ValueError(f"{what} must be {low}..{high}, got {value}")
    return value


def _control(opcode: int, body: bytes, flags: int = 0) -> bytes:
    return _HEAD.pack(2 + len(body), opcode, flags) + body


#: Longest token an ``AUTH`` frame carries (16.2).
MAX_TOKEN = 1022


def encode_auth(token: bytes) -> bytes:
    """``AUTH`` (16.2) presenting ``token``, 1 to 1022 bytes."""
    if not 1 <= len(token) <= MAX_TOKEN:
        raise ValueError(f"an AUTH token is 1 to {MAX_TOKEN} bytes, not {len(token)}")
    return _control(AUTH, bytes(token))


def decode_authed(body: bytes) -> bool:
    """``AUTHED`` (16.2): True for read-only access (any access byte but 0)."""
    if len(body) < 1:
        raise _short("access")
    return body[0] != 0


def encode_hello(version: int = PROTOCOL_VERSION) -> bytes:
    """``HELLO`` (3.1) offering ``version``."""
    return _control(HELLO, _U16.pack(version))


def encode_ping() -> bytes:
    """``PING`` (3.2)."""
    return _control(PING, b"")


def encode_quit() -> bytes:
    """``QUIT`` (3.3)."""
    return _control(QUIT, b"")


def unique_key(key: Union[str, bytes]) -> bytes:
    """A unique key (18.3) as the bytes it is sent as: ``str`` as UTF-8, ``bytes`` as
    they are. The server refuses an empty key with a fatal ``BAD_ARGUMENT`` and a
    ``u8`` cannot count past 255, so both are a ``ValueError`` here."""
    if isinstance(key, str):
        raw = key.encode("utf-8")
    elif isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
    else:
        # bytes(42) would be 42 zero bytes: a key by accident.
        raise TypeError(f"a unique key is str or bytes, not {type(key).__name__}")
    if not 1 <= len(raw) <= MAX_UNIQUE_KEY:
        raise ValueError(f"a unique key must be 1..{MAX_UNIQUE_KEY} bytes, got {len(raw)} bytes")
    return raw


def unique_fields(key: bytes, replace: bool = False, window_ms: int = 0) -> bytes:
    """The ``PUT_UNIQUE`` fields (18.3): ``key_len``, ``key``, ``mode``, ``window_ms``.
    ``key`` is checked as ``unique_key`` checks it; a window over 30 days (a fatal
    ``BAD_ARGUMENT`` on the server) is a ``ValueError``."""
    if not 1 <= len(key) <= MAX_UNIQUE_KEY:
        raise ValueError(f"a unique key must be 1..{MAX_UNIQUE_KEY} bytes, got {len(key)} bytes")
    _count(window_ms, 0, MAX_UNIQUE_WINDOW_MS, "a unique key's window in ms (30 days at most)")
    mode = UNIQUE_REPLACE if replace else UNIQUE_REFUSE
    return bytes((len(key),)) + key + _MODE_WINDOW.pack(mode, window_ms)


def ttl_fields(ttl_ms: int, dead_letter: bool = False) -> bytes:
    """The ``PUT_TTL`` fields (19.2): ``ttl_ms`` (0: never expires, whatever the
    queue's default) and ``mode`` (drop, or dead-letter with ``dead_letter``). A
    ``ttl_ms`` over 30 days (a fatal ``BAD_ARGUMENT`` on the server) is a
    ``ValueError``."""
    _count(ttl_ms, 0, MAX_TTL_MS, "a time to live in ms (30 days at most)")
    return _TTL_MODE.pack(ttl_ms, TTL_DEAD_LETTER if dead_letter else TTL_DROP)


def put_prefix(
    queue: str,
    delay_ms: Optional[int] = None,
    priority: Optional[int] = None,
    unique: Optional[bytes] = None,
    ttl: Optional[bytes] = None,
) -> Tuple[bytes, int]:
    """The bytes of a ``PUT`` after its length field and before the payload, and the
    length those bytes add: computed once per batch by ``put_many``. ``unique`` is
    the encoded ``PUT_UNIQUE`` fields (``unique_fields``), which go after the options;
    ``ttl`` the encoded ``PUT_TTL`` fields (``ttl_fields``), which go last (19.2)."""
    qname = name(queue)
    flags = (0 if unique is None else FLAG_PUT_UNIQUE) | (0 if ttl is None else FLAG_PUT_TTL)
    if delay_ms is None and priority is None:
        head = bytes((PUT, flags)) + qname
    else:
        prio = DEFAULT_PRIORITY if priority is None else priority
        if not 0 <= prio <= 9:
            raise ValueError("priority must be 0..9")
        head = bytes((PUT, flags | FLAG_PUT_OPTIONS)) + qname + _DELAY_PRIO.pack(delay_ms or 0, prio)
    if unique is not None:
        head += unique
    if ttl is not None:
        head += ttl
    return head, len(head)


def encode_put(
    queue: str,
    payload: bytes,
    delay_ms: Optional[int] = None,
    priority: Optional[int] = None,
    unique: Optional[bytes] = None,
    ttl: Optional[bytes] = None,
) -> bytes:
    """``PUT`` (3.4), with options (13.4) when a delay or priority is given, with a
    unique key (18.3) when ``unique`` holds the ``unique_fields``, and with a time to
    live (19.2) when ``ttl`` holds the ``ttl_fields``."""
    head, n = put_prefix(queue, delay_ms, priority, unique, ttl)
    return _U32.pack(n + len(payload)) + head + payload


def encode_get(queue: str, wait_ms: int, max_count: int, meta: bool = False) -> bytes:
    """``GET`` (3.5), with ``WITH_META`` (15.9) when ``meta``."""
    _count(max_count, 1, 0xFFFF, "max")
    return _control(GET, name(queue) + _WAIT_MAX.pack(wait_ms, max_count), FLAG_WITH_META if meta else 0)


def encode_purge(queue: str) -> bytes:
    """``PURGE`` (3.6)."""
    return _control(PURGE, name(queue))


def encode_stats(queue: Optional[str] = None) -> bytes:
    """``STATS`` (3.7) of every queue, or of ``queue`` only."""
    return _control(STATS, b"\x00" if queue is None else name(queue))


def encode_lease(
    queue: str,
    wait_ms: int,
    max_count: int,
    lease_ms: int = 0,
    max_deliveries: int = 0,
    options: int = 0,
    meta: bool = False,
) -> bytes:
    """``LEASE`` (13.5)."""
    _count(max_count, 1, 0xFFFF, "max")
    _count(max_deliveries, 0, 0xFFFF, "max_deliveries")
    tail = _LEASE_TAIL.pack(wait_ms, max_count, lease_ms, max_deliveries, options)
    return _control(LEASE, name(queue) + tail, FLAG_WITH_META if meta else 0)


def _pairs(pairs: Sequence[Pair]) -> bytes:
    if not 1 <= len(pairs) <= MAX_SETTLE_PAIRS:
        raise ValueError(f"a settle request names 1..{MAX_SETTLE_PAIRS} pairs, got {len(pairs)}")
    pack = _PAIR.pack
    return _U16.pack(len(pairs)) + b"".join([pack(i, a) for i, a in pairs])


def encode_ack(queue: str, pairs: Sequence[Pair]) -> bytes:
    """``ACK`` (13.6)."""
    return _control(ACK, name(queue) + _pairs(pairs))


def encode_nack(queue: str, pairs: Sequence[Pair], delay_ms: int = 0, options: int = 0) -> bytes:
    """``NACK`` (13.6); ``options`` is ``NACK_DEAD`` and/or ``NACK_NO_CHARGE``."""
    return _control(NACK, name(queue) + _DELAY_PRIO.pack(delay_ms, options) + _pairs(pairs))


def encode_touch(queue: str, pairs: Sequence[Pair], lease_ms: int = 0) -> bytes:
    """``TOUCH`` (13.6); ``lease_ms`` 0 = the length the lease was given."""
    return _control(TOUCH, name(queue) + _U32.pack(lease_ms) + _pairs(pairs))


def encode_peek(queue: str, max_count: int, meta: bool = False) -> bytes:
    """``PEEK`` (13.8)."""
    _count(max_count, 1, 0xFFFF, "max")
    return _control(PEEK, name(queue) + _U16.pack(max_count), FLAG_WITH_META if meta else 0)


def encode_move(source: str, dest: str, max_count: int) -> bytes:
    """``MOVE`` (13.9)."""
    _count(max_count, 1, 0xFFFFFFFF, "max")
    if source == dest:
        raise ValueError("MOVE needs two different queues")
    return _control(MOVE, name(source) + name(dest) + _U32.pack(max_count))


def encode_bind(pattern: str, queue: str) -> bytes:
    """``BIND`` (15.3)."""
    return _control(BIND, name(pattern, "pattern") + name(queue))


def encode_unbind(pattern: str, queue: str) -> bytes:
    """``UNBIND`` (15.3)."""
    return _control(UNBIND, name(pattern, "pattern") + name(queue))


def encode_pub(
    subject: str,
    payload: bytes,
    delay_ms: int = 0,
    priority: int = DEFAULT_PRIORITY,
    confirm: int = 0,
    timeout_ms: int = 0,
) -> bytes:
    """``PUB`` (15.4)."""
    _count(priority, 0, 9, "priority")
    _count(confirm, 0, 0xFFFFFFFF, "confirm")
    if confirm:
        _count(timeout_ms, 1, 0xFFFFFFFF, "a confirmed publish's timeout in ms")
    head = bytes((PUB, 0)) + name(subject, "subject") + _PUB_TAIL.pack(delay_ms, priority, confirm, timeout_ms)
    return _U32.pack(len(head) + len(payload)) + head + payload


def encode_sub(pattern: str) -> bytes:
    """``SUB`` (15.6)."""
    return _control(SUB, name(pattern, "pattern"))


def encode_unsub(sid: int) -> bytes:
    """``UNSUB`` (15.6)."""
    return _control(UNSUB, _U32.pack(sid))


def encode_req(subject: str, timeout_ms: int, payload: bytes) -> bytes:
    """``REQ`` (15.8)."""
    _count(timeout_ms, 1, 0xFFFFFFFF, "a request's timeout in ms")
    head = bytes((REQ, 0)) + name(subject, "subject") + _U32.pack(timeout_ms)
    return _U32.pack(len(head) + len(payload)) + head + payload


def encode_reply(reply_to: int, payload: bytes) -> bytes:
    """The request ``REPLY`` (15.8) a responder sends."""
    return _U32.pack(10 + len(payload)) + bytes((REPLY, 0)) + _U64.pack(reply_to) + payload


def publish_subject(text: str) -> bytes:
    """Encodes a publish subject (15.1) as a ``name`` field, refusing what the server
    would answer with a fatal ``BAD_SUBJECT``: an empty token, a space or control
    character, or a ``*`` or ``>`` anywhere (a subject names one subject: no wildcard)."""
    field = name(text, "subject")
    pos = 0
    for token in text.split("."):
        if not token:
            raise ValueError(f"bad subject {text!r}: empty token at byte {pos}")
        for i, ch in enumerate(token):
            if ch == " " or ch < " " or ch == "\x7f":
                at = pos + len(token[:i].encode("utf-8"))
                raise ValueError(f"bad subject {text!r}: space or control character at byte {at}")
            if ch in "*>":
                at = pos + len(token[:i].encode("utf-8"))
                raise ValueError(f"bad subject {text!r}: {ch!r} at byte {at} (a subject has no wildcard)")
        pos += len(token.encode("utf-8")) + 1
    return field


def encode_schedule(
    schedule_name: str,
    spec: str,
    target: str,
    payload: bytes = b"",
    priority: int = DEFAULT_PRIORITY,
    to_subject: bool = False,
) -> bytes:
    """``SCHEDULE`` (17.3): define (or replace) ``schedule_name``, which puts
    ``payload`` on the queue ``target`` (or publishes it to the subject ``target``,
    ``to_subject``) at the times of ``spec``. What the server would refuse with a fatal
    error (bad names, a priority over 9, a frame declaring more than 65536 bytes) is a
    ``ValueError`` here; whether ``spec`` can be read is the server's to say
    (``BadSchedule``)."""
    head = bytes((SCHEDULE, 0)) + name(schedule_name, "schedule name") + name(spec, "schedule spec")
    if to_subject:
        head += bytes((TARGET_SUBJECT,)) + publish_subject(target)
    else:
        head += bytes((TARGET_QUEUE,)) + name(target)
    head += bytes((_count(priority, 0, 9, "priority"),))
    length = len(head) + len(payload)
    if length > MAX_SCHEDULE_FRAME:
        raise ValueError(
            f"a SCHEDULE frame declares at most {MAX_SCHEDULE_FRAME} bytes; this one would declare {length}"
            f" (its payload may be {MAX_SCHEDULE_FRAME - len(head)} bytes at most)"
        )
    return _U32.pack(length) + head + bytes(payload)


def encode_unschedule(schedule_name: str) -> bytes:
    """``UNSCHEDULE`` (17.4)."""
    return _control(UNSCHEDULE, name(schedule_name, "schedule name"))


def encode_pause_schedule(schedule_name: str, paused: bool = True) -> bytes:
    """``PAUSE_SCHEDULE`` (17.5): pause (``paused``) or resume."""
    return _control(PAUSE_SCHEDULE, name(schedule_name, "schedule name") + bytes((1 if paused else 0,)))


def encode_schedules(schedule_name: Optional[str] = None) -> bytes:
    """``SCHEDULES`` (17.6) of every schedule (``None`` or ``""``), or of one."""
    return _control(SCHEDULES, name(schedule_name, "schedule name") if schedule_name else b"\x00")


# ---------------------------------------------------------------------------
# Decoding. Every decoder takes the frame body (the bytes after the status byte)
# and ignores bytes after the fields it knows (protocol.md 9.2).


def _short(what: str) -> ProtocolError:
    return ProtocolError(f"{what} reply is shorter than its fields")


def decode_error(body: bytes) -> ServerError:
    """``ERROR`` (4.7) to the exception it stands for."""
    if len(body) < 3:
        raise _short("ERROR")
    code, fatal = _ERROR.unpack_from(body)
    return server_error(code, fatal != 0, bytes(body[3:]).decode("utf-8", "replace"))


def decode_hello(body: bytes) -> ServerInfo:
    """``HELLO`` (4.2, 13.1)."""
    if len(body) < 7:
        raise _short("HELLO")
    version, max_size, slen = _HELLO_V1.unpack_from(body)
    end = 7 + slen
    if len(body) < end:
        raise _short("HELLO")
    server = bytes(body[7:end]).decode("utf-8", "replace")
    if version >= 2 and len(body) >= end + _HELLO_V2.size:
        features, dlease, mlease, mdelay, mdel = _HELLO_V2.unpack_from(body, end)
        return ServerInfo(version, max_size, server, features, dlease, mlease, mdelay, mdel)
    return ServerInfo(version, max_size, server)


def decode_put(status: int, body: bytes) -> PutResult:
    """``STORED`` or ``TRUNCATED`` (4.3, 13.4), with the id when the PUT had options,
    a unique key or a time to live (19.2); ``DUPLICATE`` and ``REPLACED`` (18.3), the
    replies of a PUT with a unique key that stored no new message."""
    if status == S_STORED:
        return PutResult(_U64.unpack_from(body)[0] if len(body) >= 8 else None)
    if status == S_DUPLICATE:
        return decode_duplicate(body)
    if status == S_REPLACED:
        return decode_replaced(body)
    if len(body) < 8:
        raise _short("TRUNCATED")
    orig, stored = _TRUNC.unpack_from(body)
    mid = _U64.unpack_from(body, 8)[0] if len(body) >= 16 else None
    return PutResult(mid, orig, stored)


def decode_duplicate(body: bytes) -> PutResult:
    """``DUPLICATE`` (18.3): nothing stored; the id and state of the message that
    holds the key (or held it, state 4). A state this version does not define is a
    ``ProtocolError``: a new state would come with a new version (9.2)."""
    if len(body) < _DUPLICATE.size:
        raise _short("DUPLICATE")
    mid, state = _DUPLICATE.unpack_from(body)
    holder = HolderState.from_wire(state)
    if holder is None:
        raise ProtocolError(f"DUPLICATE state {state} is not one of 1..4")
    return PutResult(mid, duplicate=holder)


def decode_replaced(body: bytes) -> PutResult:
    """``REPLACED`` (18.3): the waiting message that held the key now holds this
    payload; its id, and both lengths as in ``TRUNCATED`` (equal when not cut)."""
    if len(body) < _REPLACED.size:
        raise _short("REPLACED")
    mid, orig, stored = _REPLACED.unpack_from(body)
    return PutResult(mid, orig, stored, replaced=True)


def decode_messages(body: bytes) -> List[bytes]:
    """``MESSAGES`` (4.4) to the payloads, oldest first."""
    mv = memoryview(body)
    if len(mv) < 4:
        raise _short("MESSAGES")
    (count,) = _U32.unpack_from(mv)
    if count == 1 and len(mv) >= 8:
        # The common reply of a pipelined one-message GET: skip the loop.
        (n,) = _U32.unpack_from(mv, 4)
        if 8 + n > len(mv):
            raise _short("MESSAGES")
        return [bytes(mv[8 : 8 + n])]
    out: List[bytes] = []
    pos = 4
    unpack = _U32.unpack_from
    end = len(mv)
    for _ in range(count):
        if pos + 4 > end:
            raise _short("MESSAGES")
        (n,) = unpack(mv, pos)
        pos += 4
        if pos + n > end:
            raise _short("MESSAGES")
        out.append(bytes(mv[pos : pos + n]))
        pos += n
    return out


def decode_meta(raw: bytes) -> Meta:
    """Metadata entries (15.7); unknown tags are skipped, a repeated tag keeps its first
    value, and an entry running past the block is a protocol error."""
    subject: Optional[str] = None
    reply_to: Optional[int] = None
    dropped: Optional[int] = None
    pos = 0
    end = len(raw)
    while pos < end:
        if pos + 2 > end:
            raise ProtocolError("metadata entry runs past its block")
        tag, n = raw[pos], raw[pos + 1]
        pos += 2
        if pos + n > end:
            raise ProtocolError("metadata entry runs past its block")
        value = raw[pos : pos + n]
        pos += n
        if tag == TAG_SUBJECT and subject is None:
            subject = bytes(value).decode("utf-8", "replace")
        elif tag == TAG_REPLY_TO and reply_to is None and n == 8:
            reply_to = _U64.unpack(value)[0]
        elif tag == TAG_DROPPED and dropped is None and n == 4:
            dropped = _U32.unpack(value)[0]
    return Meta(subject, reply_to, dropped or 0)


def decode_leased(body: bytes) -> List[RawDelivery]:
    """``LEASED`` or ``PEEKED`` (13.5, 13.8) to (id, attempt, payload, None) tuples."""
    mv = memoryview(body)
    if len(mv) < 4:
        raise _short("LEASED")
    (count,) = _U32.unpack_from(mv)
    out: List[RawDelivery] = []
    pos = 4
    end = len(mv)
    unpack = _ID_ATTEMPT_LEN.unpack_from
    for _ in range(count):
        if pos + 16 > end:
            raise _short("LEASED")
        mid, attempt, n = unpack(mv, pos)
        pos += 16
        if pos + n > end:
            raise _short("LEASED")
        out.append((mid, attempt, bytes(mv[pos : pos + n]), None))
        pos += n
    return out


def decode_envelopes(body: bytes) -> List[RawDelivery]:
    """``ENVELOPES`` (15.9) to (id, attempt, payload, metadata) tuples."""
    mv = memoryview(body)
    if len(mv) < 4:
        raise _short("ENVELOPES")
    (count,) = _U32.unpack_from(mv)
    out: List[RawDelivery] = []
    pos = 4
    end = len(mv)
    for _ in range(count):
        if pos + 14 > end:
            raise _short("ENVELOPES")
        mid, attempt, mlen = _ID_ATTEMPT_META.unpack_from(mv, pos)
        pos += 14
        if pos + mlen + 4 > end:
            raise _short("ENVELOPES")
        meta = decode_meta(bytes(mv[pos : pos + mlen]))
        pos += mlen
        (n,) = _U32.unpack_from(mv, pos)
        pos += 4
        if pos + n > end:
            raise _short("ENVELOPES")
        out.append((mid, attempt, bytes(mv[pos : pos + n]), meta))
        pos += n
    return out


def to_envelopes(raw: Iterable[RawDelivery]) -> List[Envelope]:
    """Decoded deliveries as ``Envelope`` values."""
    return [
        Envelope(i, a, b, m.subject if m else None, m.reply_to if m else None) for i, a, b, m in raw
    ]


def decode_settled(body: bytes) -> List[int]:
    """``SETTLED`` (13.6) to one result code per pair."""
    if len(body) < 2:
        raise _short("SETTLED")
    (count,) = _U16.unpack_from(body)
    if len(body) < 2 + count:
        raise _short("SETTLED")
    return list(body[2 : 2 + count])


def decode_u64(body: bytes) -> int:
    """``PURGED`` / ``MOVED`` (4.5, 13.9) count."""
    if len(body) < 8:
        raise _short("count")
    return int(_U64.unpack_from(body)[0])


def decode_flag(body: bytes) -> bool:
    """``BOUND``, ``UNBOUND``, ``UNSUBSCRIBED``, ``REPLIED``: one u8 flag."""
    if len(body) < 1:
        raise _short("flag")
    return body[0] != 0


def decode_u32(body: bytes) -> int:
    """``SUBSCRIBED`` (15.6) sid."""
    if len(body) < 4:
        raise _short("SUBSCRIBED")
    return int(_U32.unpack_from(body)[0])


def decode_published(body: bytes) -> Published:
    """``PUBLISHED`` (15.4)."""
    if len(body) < _PUBLISHED.size:
        raise _short("PUBLISHED")
    return Published(*_PUBLISHED.unpack_from(body))


def decode_event(body: bytes) -> Event:
    """``EVENT`` (15.6)."""
    if len(body) < 6:
        raise _short("EVENT")
    sid, mlen = _EVENT_HEAD.unpack_from(body)
    if len(body) < 6 + mlen:
        raise _short("EVENT")
    meta = decode_meta(bytes(body[6 : 6 + mlen]))
    return Event(sid, bytes(body[6 + mlen :]), meta.subject or "", meta.reply_to, meta.dropped)


def decode_scheduled(body: bytes) -> Scheduled:
    """``SCHEDULED`` (17.3)."""
    if len(body) < _FLAG_U64.size:
        raise _short("SCHEDULED")
    created, next_run_ms = _FLAG_U64.unpack_from(body)
    return Scheduled(created != 0, next_run_ms)


def decode_schedule_paused(body: bytes) -> Optional[int]:
    """``SCHEDULE_PAUSED`` (17.5): the next run time (0 while paused), or ``None``
    when there is no such schedule."""
    if len(body) < _FLAG_U64.size:
        raise _short("SCHEDULE_PAUSED")
    found, next_run_ms = _FLAG_U64.unpack_from(body)
    return int(next_run_ms) if found else None


def _short_text(entry: memoryview, pos: int) -> Tuple[str, int]:
    """A u8-length string of a ``SCHEDULE_LIST`` entry, and the position after it."""
    if pos >= len(entry) or pos + 1 + entry[pos] > len(entry):
        raise _short("SCHEDULE_LIST entry")
    end = pos + 1 + entry[pos]
    return bytes(entry[pos + 1 : end]).decode("utf-8", "replace"), end


def _schedule_entry(entry: memoryview) -> ScheduleInfo:
    sname, pos = _short_text(entry, 0)
    spec, pos = _short_text(entry, pos)
    if pos >= len(entry):
        raise _short("SCHEDULE_LIST entry")
    to_subject = entry[pos] != 0
    target, pos = _short_text(entry, pos + 1)
    if pos + _SCHEDULE_TAIL.size > len(entry):
        raise _short("SCHEDULE_LIST entry")
    priority, paused, next_run, last_run, runs, misfires, failures, payload_len = _SCHEDULE_TAIL.unpack_from(entry, pos)
    # Bytes after these fields are ones a later version appended (17.6): skipped.
    return ScheduleInfo(
        sname, spec, to_subject, target, priority, paused != 0, next_run, last_run, runs, misfires, failures,
        payload_len,
    )


def decode_schedule_list(body: bytes) -> List[ScheduleInfo]:
    """``SCHEDULE_LIST`` (17.6): each entry is read within its ``entry_len``, so the
    fields a later version appends to an entry are skipped."""
    mv = memoryview(body)
    if len(mv) < 4:
        raise _short("SCHEDULE_LIST")
    (count,) = _U32.unpack_from(mv)
    out: List[ScheduleInfo] = []
    pos = 4
    end = len(mv)
    for _ in range(count):
        if pos + 2 > end:
            raise _short("SCHEDULE_LIST")
        (n,) = _U16.unpack_from(mv, pos)
        pos += 2
        if pos + n > end:
            raise _short("SCHEDULE_LIST")
        out.append(_schedule_entry(mv[pos : pos + n]))
        pos += n
    return out


def _figures(mv: memoryview, pos: int, count: int) -> Tuple[Dict[str, int], int]:
    out: Dict[str, int] = {}
    for _ in range(count):
        if pos >= len(mv):
            raise _short("STATS")
        n = mv[pos]
        if pos + 1 + n + 8 > len(mv):
            raise _short("STATS")
        key = bytes(mv[pos + 1 : pos + 1 + n]).decode("utf-8", "replace")
        out.setdefault(key, _U64.unpack_from(mv, pos + 1 + n)[0])
        pos += 1 + n + 8
    return out, pos


def decode_stats(body: bytes) -> Stats:
    """``STATS`` (6): figures by name, queues by name; order is not relied on."""
    mv = memoryview(body)
    if len(mv) < 2:
        raise _short("STATS")
    (n_server,) = _U16.unpack_from(mv)
    server, pos = _figures(mv, 2, n_server)
    if pos + 4 > len(mv):
        raise _short("STATS")
    (n_queues,) = _U32.unpack_from(mv, pos)
    pos += 4
    queues: Dict[str, Dict[str, int]] = {}
    for _ in range(n_queues):
        if pos >= len(mv):
            raise _short("STATS")
        n = mv[pos]
        qname = bytes(mv[pos + 1 : pos + 1 + n]).decode("utf-8", "replace")
        pos += 1 + n
        if pos + 2 > len(mv):
            raise _short("STATS")
        (n_fields,) = _U16.unpack_from(mv, pos)
        queues[qname], pos = _figures(mv, pos + 2, n_fields)
    return Stats(server, queues)


class FrameBuffer:
    """Reassembles reply frames from a byte stream (protocol.md 2.2, 12).

    ``feed`` the bytes as they arrive, then ``pop`` frames until it returns ``None``.
    Frames over ``max_frame`` bytes are refused: a broken peer must not make the client
    allocate gigabytes."""

    __slots__ = ("_buf", "_pos", "max_frame")

    def __init__(self, max_frame: int = 1 << 31) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_frame = max_frame

    def feed(self, data: bytes) -> None:
        """Appends received bytes."""
        if self._pos and self._pos == len(self._buf):
            # Everything read was consumed: start over instead of growing forever.
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def pop(self) -> Optional[Tuple[int, bytes]]:
        """The next whole frame as (status, body), or ``None`` until more bytes come."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 5:
            return None
        length, status = _FRAME_HEAD.unpack_from(buf, pos)
        if length < 1 or length > self.max_frame:
            raise ProtocolError(f"reply frame length {length} is out of range")
        end = pos + 4 + length
        if end > len(buf):
            return None
        body = bytes(buf[pos + 5 : end])
        if end == len(buf):
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
            if end > 1 << 20:
                # Drop the consumed head now and then so the buffer stays small.
                del buf[:end]
                self._pos = 0
        return status, body

    def pending(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos
