"""Requests as values: each operation is an ``Op`` (the frame to send, how to decode its
reply, how long the server may legitimately hold that reply).

``Client``, ``AsyncClient`` and the pipelines only differ in how they move bytes; they
all build their requests here, so the three cannot disagree about the protocol.
Durations are seconds (``float``), ``None`` meaning "for ever" where the protocol has
one; they become the protocol's milliseconds here.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, List, Optional, Protocol, Sequence, Tuple, TypeVar, Union
from . import protocol as p
from .errors import BeussError, ProtocolError, RequestTimeout, ServerError, Unsupported
from .models import FEATURE_SCHEDULES, FEATURE_TTL, FEATURE_UNIQUE, Envelope, Published, PutResult, Scheduled, ScheduleInfo, ServerInfo, SettleResult, Stats

T = TypeVar("T")
M = TypeVar("M")

#: Builds the caller's message object from one decoded delivery.
Maker = Callable[[p.RawDelivery], M]


class Op(Generic[T]):
    """One request: ``frame`` to send, ``decode(status, body)`` for its reply (raises
    the ``ServerError`` an ``ERROR`` reply stands for), and ``wait``: seconds the server
    may hold the reply on purpose (a parked ``GET``), ``None`` = possibly for ever. A
    client's read timeout is ``wait`` plus its own margin."""

    __slots__ = ("frame", "decode", "wait", "version", "feature")

    def __init__(self, frame: bytes, decode: Callable[[int, bytes], T], wait: Optional[float] = 0.0,
                 version: int = 1, feature: int = 0) -> None:
        self.frame = frame
        self.decode = decode
        self.wait = wait
        #: The protocol version that defines this request (its opcode or flag).
        self.version = version
        #: The ``HELLO`` feature bits the server must announce for it (0: none).
        self.feature = feature


def check_version(ops: Sequence["Op[Any]"], negotiated: int, features: int = 0) -> None:
    """``Unsupported`` if a request needs a newer version than ``HELLO`` gave, or a
    feature bit the server did not announce in ``features``: an older server would
    answer it with a fatal error (protocol.md 9.2)."""
    for op in ops:
        if op.version > negotiated:
            raise Unsupported(f"this request needs protocol version {op.version}; the connection speaks {negotiated}")
        missing = op.feature & ~features
        if missing:
            # The missing bits only: a PUT with a key and a time to live needs two.
            raise Unsupported(
                f"this request needs the server's feature 0x{missing:02x}, which its HELLO"
                f" (features 0x{features:02x}) does not announce"
            )


def _unexpected(status: int, body: bytes) -> Exception:
    if status == p.S_ERROR:
        return p.decode_error(body)
    return ProtocolError(f"unexpected reply status 0x{status:02x}")


def _none(expected: int) -> Callable[[int, bytes], None]:
    def decode(status: int, body: bytes) -> None:
        if status != expected:
            raise _unexpected(status, body)

    return decode


def hello(version: int = p.PROTOCOL_VERSION) -> Op[ServerInfo]:
    """``HELLO``: negotiate ``version`` (protocol.md 9.1)."""

    def decode(status: int, body: bytes) -> ServerInfo:
        if status != p.S_HELLO:
            raise _unexpected(status, body)
        return p.decode_hello(body)

    return Op(p.encode_hello(version), decode, 0.0, 0)


def auth(token: bytes) -> Op[bool]:
    """``AUTH`` (16.2): True when the token is read-only. Version 1 for the version
    check: a version-4 server answers it whatever version was negotiated."""

    def decode(status: int, body: bytes) -> bool:
        if status != p.S_AUTHED:
            raise _unexpected(status, body)
        return p.decode_authed(body)

    return Op(p.encode_auth(token), decode)


def ping() -> Op[None]:
    """``PING``."""
    return Op(p.encode_ping(), _none(p.S_PONG))


def quit() -> Op[None]:
    """``QUIT``: the server answers ``BYE`` and closes."""
    return Op(p.encode_quit(), _none(p.S_BYE))


def _decode_put(status: int, body: bytes) -> PutResult:
    """One ``PUT`` reply: ``STORED``/``TRUNCATED``, or the error it stands for."""
    if status == p.S_STORED or status == p.S_TRUNCATED:
        return p.decode_put(status, body)
    raise _unexpected(status, body)


def _decode_unique_put(status: int, body: bytes) -> PutResult:
    """The reply of a ``PUT`` with a unique key: ``STORED``/``TRUNCATED``, or
    ``DUPLICATE``/``REPLACED``, which are results (18.3), not errors."""
    if status in (p.S_STORED, p.S_TRUNCATED, p.S_DUPLICATE, p.S_REPLACED):
        return p.decode_put(status, body)
    raise _unexpected(status, body)


#: A unique key as callers give it: text (sent as UTF-8) or bytes.
Key = Union[str, bytes]


def _window_ms(unique_for: float) -> int:
    """``unique_for`` seconds as a unique ``PUT``'s ``window_ms``: 0 to 30 days (a
    longer one is a fatal ``BAD_ARGUMENT`` on the server, 18.3)."""
    limit = p.MAX_UNIQUE_WINDOW_MS // 1000
    # Written so that NaN fails it too (every comparison with NaN is false).
    if not 0 <= unique_for <= limit:
        raise ValueError(f"unique_for must be 0 to {limit} seconds (30 days), got {unique_for}")
    return int(round(unique_for * 1000))


def _ttl_fields(ttl: Optional[float], dead_letter: bool) -> Optional[bytes]:
    """``ttl`` seconds and the mode as a ``PUT_TTL``'s fields (19.2), or ``None``
    without a time to live. 0 to 30 days (a longer one is a fatal ``BAD_ARGUMENT`` on
    the server); ``dead_letter`` without a ``ttl`` is a ``ValueError``."""
    if ttl is None:
        # Refused rather than ignored: a caller who asks for this wants an expiry.
        if dead_letter:
            raise ValueError("ttl_dead_letter=True needs a time to live (ttl=...)")
        return None
    limit = p.MAX_TTL_MS // 1000
    # Written so that NaN fails it too (every comparison with NaN is false).
    if not 0 <= ttl <= limit:
        raise ValueError(f"ttl must be 0 to {limit} seconds (30 days), got {ttl}")
    ttl_ms = int(round(ttl * 1000))
    if ttl > 0 and ttl_ms == 0:
        # Under half a millisecond: rounded to 0 it would mean "never expires".
        ttl_ms = 1
    return p.ttl_fields(ttl_ms, dead_letter)


def _option_fields(delay: float, priority: Optional[int]) -> Tuple[Optional[int], Optional[int]]:
    """``delay_ms`` and ``priority`` for a version-6 ``PUT``, or ``(None, None)``: its
    reply carries the id anyway (18.3, 19.2), so the option fields only go when a
    delay or priority is asked for (the shortest frames, as in 18.7 and 19.7)."""
    if delay or priority is not None:
        return p.ms(delay, "delay"), p.DEFAULT_PRIORITY if priority is None else priority
    return None, None


def put(
    queue: str,
    body: bytes,
    delay: float = 0.0,
    priority: Optional[int] = None,
    options: bool = True,
    unique: Optional[Key] = None,
    unique_for: float = 0.0,
    replace: bool = False,
    ttl: Optional[float] = None,
    ttl_dead_letter: bool = False,
) -> Op[PutResult]:
    """``PUT``; with ``options`` (a version-2 server) the reply carries the id. With
    ``unique``, a key (18.3): remembered ``unique_for`` seconds after its message
    leaves the queue, and with ``replace`` a waiting holder is replaced. With
    ``ttl``, a time to live in seconds (19.2; 0 = never expires, whatever the queue's
    default), dead-lettered rather than dropped with ``ttl_dead_letter``. A keyed
    ``PUT`` needs version 6 and the ``UNIQUE`` feature, one with a ``ttl`` version 6
    and the ``TTL`` feature (both features for both)."""
    if unique is None:
        # Refused rather than ignored: a caller who asks for these wants a key.
        if replace:
            raise ValueError("replace=True needs a unique key (unique=...)")
        if unique_for:
            raise ValueError("unique_for needs a unique key (unique=...)")
        key_fields: Optional[bytes] = None
    else:
        key_fields = p.unique_fields(p.unique_key(unique), replace, _window_ms(unique_for))
    ttl_fields = _ttl_fields(ttl, ttl_dead_letter)
    if key_fields is not None or ttl_fields is not None:
        delay_ms, prio = _option_fields(delay, priority)
        frame = p.encode_put(queue, body, delay_ms, prio, key_fields, ttl_fields)
        if key_fields is None:
            # The replies of a PUT with options (19.2): STORED or TRUNCATED, with the id.
            return Op(frame, _decode_put, 0.0, 6, FEATURE_TTL)
        feature = FEATURE_UNIQUE if ttl_fields is None else FEATURE_UNIQUE | FEATURE_TTL
        return Op(frame, _decode_unique_put, 0.0, 6, feature)
    if options or delay or priority is not None:
        frame = p.encode_put(queue, body, p.ms(delay, "delay"), p.DEFAULT_PRIORITY if priority is None else priority)
        return Op(frame, _decode_put, 0.0, 2)
    return Op(p.encode_put(queue, body), _decode_put)


def put_frames(
    queue: str,
    bodies: Sequence[bytes],
    delay: float = 0.0,
    priority: Optional[int] = None,
    options: bool = True,
    ttl: Optional[float] = None,
    ttl_dead_letter: bool = False,
) -> List[bytes]:
    """The ``PUT`` frames of a batch, the queue's head encoded once (the hot path);
    each frame is the one ``put`` would build for that body (a ``ttl`` included)."""
    ttl_fields = _ttl_fields(ttl, ttl_dead_letter)
    if ttl_fields is not None:
        delay_ms, prio = _option_fields(delay, priority)
        head, n = p.put_prefix(queue, delay_ms, prio, None, ttl_fields)
    elif options or delay or priority is not None:
        head, n = p.put_prefix(queue, p.ms(delay, "delay"), p.DEFAULT_PRIORITY if priority is None else priority)
    else:
        head, n = p.put_prefix(queue)
    pack = p._U32.pack
    return [pack(n + len(b)) + head + b for b in bodies]


#: Decoder of one ``PUT`` reply, for batches.
decode_put = _decode_put


class PutReplies:
    """The replies of a ``put_many``, in order: a ``PutResult`` or the non-fatal error
    (``Full``) for each body. ``add`` raises a fatal ``ServerError`` or a
    ``ProtocolError``, after which the caller closes the connection."""

    __slots__ = ("results", "first")

    def __init__(self) -> None:
        self.results: List[Any] = []
        self.first: Optional[BeussError] = None

    def add(self, status: int, body: bytes) -> None:
        """Takes one reply."""
        if status == p.S_STORED or status == p.S_TRUNCATED:
            self.results.append(p.decode_put(status, body))
            return
        try:
            self.results.append(_decode_put(status, body))
        except ServerError as err:
            if err.fatal:
                raise
            self.results.append(err)
            self.first = self.first or err

    def outcome(self) -> List[PutResult]:
        """The results, or the first error with every result in its ``results``."""
        if self.first is not None:
            setattr(self.first, "results", self.results)
            raise self.first
        return self.results


def _decode_messages(status: int, body: bytes) -> List[bytes]:
    if status == p.S_MESSAGES:
        return p.decode_messages(body)
    if status == p.S_EMPTY:
        return []
    raise _unexpected(status, body)


def get(queue: str, wait: Optional[float] = 0.0, max: int = 1) -> Op[List[bytes]]:
    """``GET``: take (remove) up to ``max`` payloads, waiting up to ``wait`` for one."""
    return Op(p.encode_get(queue, p.ms(wait), max), _decode_messages, wait)


def _decode_envelopes(status: int, body: bytes) -> List[Envelope]:
    if status == p.S_ENVELOPES:
        return p.to_envelopes(p.decode_envelopes(body))
    if status == p.S_PEEKED:
        return p.to_envelopes(p.decode_leased(body))
    if status == p.S_EMPTY:
        return []
    raise _unexpected(status, body)


def get_meta(queue: str, wait: Optional[float] = 0.0, max: int = 1) -> Op[List[Envelope]]:
    """``GET`` with ``WITH_META``: like ``get`` but with ids, attempts and metadata."""
    return Op(p.encode_get(queue, p.ms(wait), max, meta=True), _decode_envelopes, wait, 3)


def purge(queue: str) -> Op[int]:
    """``PURGE``: drop every message of ``queue``; returns how many."""

    def decode(status: int, body: bytes) -> int:
        if status != p.S_PURGED:
            raise _unexpected(status, body)
        return p.decode_u64(body)

    return Op(p.encode_purge(queue), decode)


def stats(queue: Optional[str] = None) -> Op[Stats]:
    """``STATS`` of every queue, or of ``queue`` only."""

    def decode(status: int, body: bytes) -> Stats:
        if status != p.S_STATS:
            raise _unexpected(status, body)
        return p.decode_stats(body)

    return Op(p.encode_stats(queue), decode)


def maker(build: Callable[[str, int, int, bytes, Optional[str], Optional[int]], M], queue: str) -> Maker[M]:
    """A ``Maker`` calling ``build(queue, id, attempt, body, subject, reply_to)``."""

    def make(d: p.RawDelivery) -> M:
        meta = d[3]
        if meta is None:
            return build(queue, d[0], d[1], d[2], None, None)
        return build(queue, d[0], d[1], d[2], meta.subject, meta.reply_to)

    return make


def lease(
    queue: str,
    make: Maker[M],
    wait: Optional[float] = 0.0,
    max: int = 1,
    lease: Optional[float] = None,
    max_deliveries: int = 0,
    detached: bool = False,
    meta: bool = False,
) -> Op[List[M]]:
    """``LEASE``: take up to ``max`` messages under a lease of ``lease`` seconds
    (``None`` = the server's default); ``make`` turns each into the caller's message."""
    lease_ms = 0 if lease is None else p.ms(lease, "lease")
    frame = p.encode_lease(queue, p.ms(wait), max, lease_ms, max_deliveries, p.LEASE_DETACHED if detached else 0, meta)

    def decode(status: int, body: bytes) -> List[M]:
        if status == p.S_LEASED:
            return [make(d) for d in p.decode_leased(body)]
        if status == p.S_ENVELOPES:
            return [make(d) for d in p.decode_envelopes(body)]
        if status == p.S_EMPTY:
            return []
        raise _unexpected(status, body)

    return Op(frame, decode, wait, 3 if meta else 2)


def _decode_settled(status: int, body: bytes) -> List[SettleResult]:
    if status != p.S_SETTLED:
        raise _unexpected(status, body)
    # An unknown result code (a later server) counts as "not done".
    return [SettleResult(r) if r <= 2 else SettleResult.NOT_FOUND for r in p.decode_settled(body)]


def ack(queue: str, pairs: Sequence[p.Pair]) -> Op[List[SettleResult]]:
    """``ACK`` the (id, attempt) pairs: one result per pair."""
    return Op(p.encode_ack(queue, pairs), _decode_settled, 0.0, 2)


def nack(queue: str, pairs: Sequence[p.Pair], delay: float = 0.0, dead: bool = False, count: bool = True) -> Op[List[SettleResult]]:
    """``NACK``: give the messages back (after ``delay``), or to ``<queue>.dead`` with
    ``dead``; ``count=False`` does not charge the delivery (graceful shutdown)."""
    options = (p.NACK_DEAD if dead else 0) | (0 if count else p.NACK_NO_CHARGE)
    return Op(p.encode_nack(queue, pairs, p.ms(delay, "delay"), options), _decode_settled, 0.0, 2)


def touch(queue: str, pairs: Sequence[p.Pair], lease: Optional[float] = None) -> Op[List[SettleResult]]:
    """``TOUCH``: extend the leases to ``lease`` seconds from now (``None`` = as given)."""
    return Op(p.encode_touch(queue, pairs, 0 if lease is None else p.ms(lease, "lease")), _decode_settled, 0.0, 2)


def peek(queue: str, max: int = 1, meta: bool = False) -> Op[List[Envelope]]:
    """``PEEK``: copies of the ready messages at the front, changing nothing."""
    return Op(p.encode_peek(queue, max, meta), _decode_envelopes, 0.0, 3 if meta else 2)


def move(source: str, dest: str, max: int = 0xFFFFFFFF) -> Op[int]:
    """``MOVE`` up to ``max`` ready messages from ``source`` to ``dest``."""

    def decode(status: int, body: bytes) -> int:
        if status != p.S_MOVED:
            raise _unexpected(status, body)
        return p.decode_u64(body)

    return Op(p.encode_move(source, dest, max), decode, 0.0, 2)


def _flag(expected: int) -> Callable[[int, bytes], bool]:
    def decode(status: int, body: bytes) -> bool:
        if status != expected:
            raise _unexpected(status, body)
        return p.decode_flag(body)

    return decode


def bind(pattern: str, queue: str) -> Op[bool]:
    """``BIND``: True if the binding is new."""
    return Op(p.encode_bind(pattern, queue), _flag(p.S_BOUND), 0.0, 3)


def unbind(pattern: str, queue: str) -> Op[bool]:
    """``UNBIND``: True if a binding was removed."""
    return Op(p.encode_unbind(pattern, queue), _flag(p.S_UNBOUND), 0.0, 3)


def publish(
    subject: str,
    body: bytes,
    delay: float = 0.0,
    priority: int = p.DEFAULT_PRIORITY,
    confirm: int = 0,
    timeout: float = 5.0,
) -> Op[Published]:
    """``PUB``; with ``confirm`` N the reply waits (up to ``timeout``) for N copies to
    be acknowledged or taken."""
    timeout_ms = p.ms(timeout, "timeout") if confirm else 0

    def decode(status: int, body: bytes) -> Published:
        if status != p.S_PUBLISHED:
            raise _unexpected(status, body)
        return p.decode_published(body)

    frame = p.encode_pub(subject, body, p.ms(delay, "delay"), priority, confirm, timeout_ms)
    return Op(frame, decode, timeout if confirm else 0.0, 3)


def subscribe(pattern: str, register: Callable[[int], M]) -> Op[M]:
    """``SUB``; ``register(sid)`` runs as the reply is read, before any later frame, so
    no event of the new subscription can arrive before it exists."""

    def decode(status: int, body: bytes) -> M:
        if status != p.S_SUBSCRIBED:
            raise _unexpected(status, body)
        return register(p.decode_u32(body))

    return Op(p.encode_sub(pattern), decode, 0.0, 3)


def unsubscribe(sid: int) -> Op[bool]:
    """``UNSUB``: True if the subscription was ended."""
    return Op(p.encode_unsub(sid), _flag(p.S_UNSUBSCRIBED), 0.0, 3)


def request(subject: str, body: bytes, timeout: float = 5.0) -> Op[bytes]:
    """``REQ``: the payload of the first reply; ``RequestTimeout`` when none comes."""

    def decode(status: int, body: bytes) -> bytes:
        if status == p.S_REPLY:
            return body
        if status == p.S_EMPTY:
            raise RequestTimeout(f"no reply to {subject!r} within {timeout} s")
        raise _unexpected(status, body)

    return Op(p.encode_req(subject, p.ms(timeout, "timeout"), body), decode, timeout, 3)


def reply(reply_to: int, body: bytes) -> Op[bool]:
    """``REPLY`` to a request's address: True if the requester got it."""
    return Op(p.encode_reply(reply_to, body), _flag(p.S_REPLIED), 0.0, 3)


def schedule(
    name: str,
    spec: str,
    queue: Optional[str] = None,
    subject: Optional[str] = None,
    payload: bytes = b"",
    priority: int = p.DEFAULT_PRIORITY,
) -> Op[Scheduled]:
    """``SCHEDULE`` (17.3): define or replace schedule ``name``, which puts ``payload``
    on ``queue``, or publishes it to ``subject`` (exactly one of the two), at the times
    of ``spec``. Needs version 5 and the ``SCHEDULES`` feature."""
    if (queue is None) == (subject is None):
        raise ValueError("a schedule needs exactly one target: a queue or a subject")
    if subject is not None:
        frame = p.encode_schedule(name, spec, subject, payload, priority, to_subject=True)
    else:
        assert queue is not None
        frame = p.encode_schedule(name, spec, queue, payload, priority)

    def decode(status: int, body: bytes) -> Scheduled:
        if status != p.S_SCHEDULED:
            raise _unexpected(status, body)
        return p.decode_scheduled(body)

    return Op(frame, decode, 0.0, 5, FEATURE_SCHEDULES)


def unschedule(name: str) -> Op[bool]:
    """``UNSCHEDULE`` (17.4): True if the schedule was there and is deleted."""
    return Op(p.encode_unschedule(name), _flag(p.S_UNSCHEDULED), 0.0, 5, FEATURE_SCHEDULES)


def _decode_schedule_paused(status: int, body: bytes) -> Optional[int]:
    if status != p.S_SCHEDULE_PAUSED:
        raise _unexpected(status, body)
    return p.decode_schedule_paused(body)


def pause_schedule(name: str, paused: bool = True) -> Op[Optional[int]]:
    """``PAUSE_SCHEDULE`` (17.5): pause (or, ``paused=False``, resume) the schedule;
    its next run time (0 while paused), or ``None`` if there is no such schedule."""
    return Op(p.encode_pause_schedule(name, paused), _decode_schedule_paused, 0.0, 5, FEATURE_SCHEDULES)


def _decode_schedule_list(status: int, body: bytes) -> List[ScheduleInfo]:
    if status != p.S_SCHEDULE_LIST:
        raise _unexpected(status, body)
    return p.decode_schedule_list(body)


def schedules(name: Optional[str] = None) -> Op[List[ScheduleInfo]]:
    """``SCHEDULES`` (17.6): every schedule, sorted by name, or only ``name`` (an
    empty list if there is none of that name)."""
    return Op(p.encode_schedules(name), _decode_schedule_list, 0.0, 5, FEATURE_SCHEDULES)


B = TypeVar("B", bound="Batch")


class _Source(Protocol):
    """What a ``Batch`` needs of its client to build requests."""

    _options: bool

    def _maker(self, queue: str) -> Maker[Any]: ...

    def _register(self, pattern: str) -> Callable[[int], Any]: ...


class Batch:
    """The request-queueing methods of ``Pipeline`` and ``AsyncPipeline``: each takes
    the client method's arguments, queues the ``Op`` and returns the pipeline, so calls
    chain. A subclass supplies ``_ops`` and how its client makes messages and
    subscriptions; sending is its own business."""

    def __init__(self, client: "_Source") -> None:
        self._source = client
        self._ops: List[Op[Any]] = []
        #: What the last ``execute()`` returned.
        self.results: List[Any] = []

    def __len__(self) -> int:
        return len(self._ops)

    def _add(self: B, op: Op[Any]) -> B:
        self._ops.append(op)
        return self

    def _put_options(self) -> bool:
        return self._source._options

    def _maker(self, queue: str) -> Maker[Any]:
        return self._source._maker(queue)

    def _register(self, pattern: str) -> Callable[[int], Any]:
        return self._source._register(pattern)

    def ping(self: B) -> B:
        """Queue a ``ping``."""
        return self._add(ping())

    def put(self: B, queue: str, body: bytes, *, delay: float = 0.0, priority: Optional[int] = None,
            unique: Optional[Key] = None, unique_for: float = 0.0, replace: bool = False,
            ttl: Optional[float] = None, ttl_dead_letter: bool = False) -> B:
        """Queue a ``put``."""
        return self._add(put(queue, body, delay, priority, self._put_options(), unique, unique_for, replace,
                             ttl, ttl_dead_letter))

    def get(self: B, queue: str, *, wait: Optional[float] = 0.0, max: int = 1) -> B:
        """Queue a ``get``."""
        return self._add(get(queue, wait, max))

    def get_meta(self: B, queue: str, *, wait: Optional[float] = 0.0, max: int = 1) -> B:
        """Queue a ``get_meta``."""
        return self._add(get_meta(queue, wait, max))

    def purge(self: B, queue: str) -> B:
        """Queue a ``purge``."""
        return self._add(purge(queue))

    def stats(self: B, queue: Optional[str] = None) -> B:
        """Queue a ``stats``."""
        return self._add(stats(queue))

    def lease(self: B, queue: str, *, wait: Optional[float] = 0.0, max: int = 1, lease: Optional[float] = None,
              max_deliveries: int = 0, detached: bool = False, meta: bool = False) -> B:
        """Queue a ``lease``."""
        return self._add(_lease(queue, self._maker(queue), wait, max, lease, max_deliveries, detached, meta))

    def ack(self: B, queue: str, pairs: Sequence[Tuple[int, int]]) -> B:
        """Queue an ``ack``."""
        return self._add(ack(queue, pairs))

    def nack(self: B, queue: str, pairs: Sequence[Tuple[int, int]], *, delay: float = 0.0, dead: bool = False,
             count: bool = True) -> B:
        """Queue a ``nack``."""
        return self._add(nack(queue, pairs, delay, dead, count))

    def touch(self: B, queue: str, pairs: Sequence[Tuple[int, int]], *, lease: Optional[float] = None) -> B:
        """Queue a ``touch``."""
        return self._add(touch(queue, pairs, lease))

    def peek(self: B, queue: str, *, max: int = 1, meta: bool = False) -> B:
        """Queue a ``peek``."""
        return self._add(peek(queue, max, meta))

    def move(self: B, source: str, dest: str, *, max: int = 0xFFFFFFFF) -> B:
        """Queue a ``move``."""
        return self._add(move(source, dest, max))

    def bind(self: B, pattern: str, queue: str) -> B:
        """Queue a ``bind``."""
        return self._add(bind(pattern, queue))

    def unbind(self: B, pattern: str, queue: str) -> B:
        """Queue an ``unbind``."""
        return self._add(unbind(pattern, queue))

    def publish(self: B, subject: str, body: bytes, *, delay: float = 0.0, priority: int = p.DEFAULT_PRIORITY,
                confirm: int = 0, timeout: float = 5.0) -> B:
        """Queue a ``publish``."""
        return self._add(publish(subject, body, delay, priority, confirm, timeout))

    def reply(self: B, reply_to: int, body: bytes) -> B:
        """Queue a ``reply``."""
        return self._add(reply(reply_to, body))

    def request(self: B, subject: str, body: bytes, *, timeout: float = 5.0) -> B:
        """Queue a ``request`` (it holds back the replies behind it until answered)."""
        return self._add(request(subject, body, timeout))

    def subscribe(self: B, pattern: str) -> B:
        """Queue a ``subscribe``; its result is the subscription."""
        return self._add(subscribe(pattern, self._register(pattern)))

    def schedule(self: B, name: str, spec: str, queue: Optional[str] = None, *, subject: Optional[str] = None,
                 payload: bytes = b"", priority: int = p.DEFAULT_PRIORITY) -> B:
        """Queue a ``schedule``."""
        return self._add(schedule(name, spec, queue, subject, payload, priority))

    def unschedule(self: B, name: str) -> B:
        """Queue an ``unschedule``."""
        return self._add(unschedule(name))

    def pause_schedule(self: B, name: str) -> B:
        """Queue a ``pause_schedule``."""
        return self._add(pause_schedule(name, True))

    def resume_schedule(self: B, name: str) -> B:
        """Queue a ``resume_schedule``."""
        return self._add(pause_schedule(name, False))

    def schedules(self: B, name: Optional[str] = None) -> B:
        """Queue a ``schedules``."""
        return self._add(schedules(name))


#: ``lease`` under a name the ``Batch.lease`` method does not hide.
_lease = lease
