"""The blocking client: one TCP connection, requests sent and answered in order.

Thread safety: every request (or pipeline) holds the connection's lock from the first
byte written to the last reply read, so threads may share a ``Client`` (the consumer's
auto-touch thread does); they simply take turns.
"""

from __future__ import annotations

import collections
import functools
import os
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from . import ops
from . import protocol as p
from .errors import BeussError, ClientTimeout, ConnectionClosed, ProtocolError, ServerError
from .message import Message
from .models import FEATURE_PUT_OPTIONS, Envelope, Event, Published, PutResult, Scheduled, ScheduleInfo, ServerInfo, SettleResult, Stats

if TYPE_CHECKING:  # pragma: no cover
    from .consumer import Consumer

T = TypeVar("T")
Address = Union[str, Tuple[str, int], None]

#: Port the server listens on unless ``BPORT`` says otherwise.
DEFAULT_PORT = 6552
_RECV = 256 * 1024
# Writes above this interleave reads, so that a long pipeline never blocks on replies
# we have not read (protocol.md 2.4: the server stops reading at 256 KiB unread).
_BIG_WRITE = 64 * 1024
#: Unread events a subscription keeps by default (``Subscription.max_buffered``).
EVENT_BUFFER = 10_000


def _wait_io(sock: socket.socket, timeout: Optional[float]) -> Tuple[bool, bool]:
    """Whether ``sock`` can be read, written, within ``timeout`` seconds. ``poll`` where
    there is one: ``select`` fails on descriptors past 1023, which a busy process has."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLOUT)
        events = poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
        mask = 0
        for _, ev in events:
            mask |= ev
        # An error or hang-up shows as readable: the read then says what happened.
        return bool(mask & (select.POLLIN | select.POLLERR | select.POLLHUP)), bool(mask & select.POLLOUT)
    readable, writable, _ = select.select([sock], [sock], [], timeout)
    return bool(readable), bool(writable)


def default_address() -> Tuple[str, int]:
    """``(BHOST or "localhost", BPORT or 6552)``, read as the server and the CLI read
    them: trimmed, blank meaning unset, an IPv6 host with or without brackets."""
    host = (os.environ.get("BHOST") or "").strip() or "localhost"
    port = (os.environ.get("BPORT") or "").strip() or str(DEFAULT_PORT)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


#: The prefix that names a Unix socket in an address: ``"unix:/run/beuss/beuss.sock"``.
UNIX_PREFIX = "unix:"
#: A token given as text or bytes.
Token = Union[str, bytes, None]


def unix_path(address: Address) -> Optional[str]:
    """The socket path of a ``"unix:PATH"`` address; for ``None`` (the environment
    defaults), ``BUNIX`` when it is set (protocol.md 16.6); else ``None``: TCP."""
    if address is None:
        return (os.environ.get("BUNIX") or "").strip() or None
    if isinstance(address, str) and address.strip().startswith(UNIX_PREFIX):
        return address.strip()[len(UNIX_PREFIX):]
    return None


def read_token_file(path: "Union[str, os.PathLike[str]]") -> bytes:
    """The first token of a token file (protocol.md 16.8): the first line that is
    not blank or a ``#`` comment, up to its first blank. The server's own
    ``BAUTHFILE`` will do. Raises ``OSError`` or ``ValueError`` (never showing it)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                return line.split()[0].encode()
    raise ValueError(f"the token file {os.fspath(path)} holds no token")


def resolve_token(address: Address, token: Token, token_file: "Optional[Union[str, os.PathLike[str]]]") -> Optional[bytes]:
    """The token a new client presents: ``token``, else the first of ``token_file``,
    else, for the environment's address (``address`` None), the first of
    ``BAUTHFILE`` when it is set; ``None``: no ``AUTH``."""
    if token is not None:
        return token.encode() if isinstance(token, str) else bytes(token)
    if token_file is not None:
        return read_token_file(token_file)
    env = (os.environ.get("BAUTHFILE") or "").strip()
    if address is None and env:
        return read_token_file(env)
    return None


def resolve_target(
    address: Address, token: Token, token_file: "Optional[Union[str, os.PathLike[str]]]"
) -> Tuple[Optional[str], str, int, Optional[bytes]]:
    """What a new client connects to and presents, shared by both clients: (Unix
    socket path or None, host, port, token or None)."""
    unix = unix_path(address)
    host, port = ("", 0) if unix is not None else parse_address(address)
    return unix, host, port, resolve_token(address, token, token_file)


def describe(host: str, port: int, unix: Optional[str]) -> str:
    """An address as errors name it."""
    return f"{UNIX_PREFIX}{unix}" if unix is not None else f"{host}:{port}"


def parse_address(address: Address) -> Tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"``, ``"host"`` (a bare IPv6 literal such as
    ``"::1"`` included), ``(host, port)`` or ``None`` (the environment defaults) to
    ``(host, port)``."""
    if address is None:
        return default_address()
    if isinstance(address, tuple):
        return address[0], int(address[1])
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
    if address.count(":") > 1:
        return address, DEFAULT_PORT  # IPv6 without brackets: no port can follow
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, DEFAULT_PORT
    return host or "localhost", int(port)


def max_frame(info: Optional[ServerInfo]) -> int:
    """Longest reply frame accepted: the largest ``ENVELOPES`` a server can send
    (protocol.md 8) with a floor for big ``STATS``; anything longer is a broken peer."""
    size = info.max_message_size if info else 1 << 20
    return max(5 + 285 * 65535 + max(1 << 20, size), 256 << 20)


class SubscriptionBase:
    """What the blocking and the asyncio subscriptions share: identity, state and the
    bounded buffer events are routed into."""

    def __init__(self, sid: int, pattern: str) -> None:
        self.sid = sid
        self.pattern = pattern
        self.active = True
        #: Events kept unread at most; past it new ones are dropped and counted in
        #: ``dropped`` (the server's own limit, BSUBBUFFER, only bounds unread bytes on
        #: the socket, and this client reads the socket eagerly).
        self.max_buffered = EVENT_BUFFER
        #: Events this client dropped because ``max_buffered`` were waiting.
        self.dropped = 0

    def _buffered(self) -> int:
        raise NotImplementedError

    def _push(self, event: Event) -> None:
        raise NotImplementedError


def route(subs: Mapping[int, SubscriptionBase], body: bytes) -> None:
    """Hands an ``EVENT`` frame's body to its subscription (none: it just ended)."""
    event = p.decode_event(body)
    sub = subs.get(event.sid)
    if sub is not None:
        if sub._buffered() >= sub.max_buffered:
            sub.dropped += 1
        else:
            sub._push(event)


class Subscription(SubscriptionBase):
    """A live subscription on a blocking ``Client`` (protocol.md 15.6).

    Iterate for events for ever, or call ``next(timeout)``. Events of all the
    connection's subscriptions are read from the one socket and sorted by sid here."""

    def __init__(self, client: "Client", sid: int, pattern: str) -> None:
        super().__init__(sid, pattern)
        self.client = client
        self._events: Deque[Event] = collections.deque()

    def _buffered(self) -> int:
        return len(self._events)

    def _push(self, event: Event) -> None:
        self._events.append(event)

    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (``None`` = for ever);
        ``None`` if none came in time."""
        return self.client._next_event(self, timeout)

    def __iter__(self) -> Iterator[Event]:
        while self.active:
            event = self.next()
            if event is not None:
                yield event

    def unsubscribe(self) -> bool:
        """End the subscription; True if the server still had it."""
        return self.client.unsubscribe(self.sid)


class Client:
    """A blocking connection to a beuss server.

    ``address`` is ``"host:port"``, ``(host, port)`` or ``"unix:PATH"`` (a Unix
    socket); by default ``BUNIX``, else ``BHOST``/``BPORT`` (localhost:6552). With
    ``token`` (or ``token_file``, or for the default address ``BAUTHFILE``) the
    connection authenticates right after ``HELLO``, and again on every reconnect;
    ``read_only`` says what the token allows. ``timeout`` is how long to wait for a reply beyond the wait the
    request itself asked for (a ``get(wait=5)`` waits up to ``5 + timeout``). The
    connection says ``HELLO`` at once, offering protocol ``version``; ``server`` holds
    the answer. ``TCP_NODELAY`` is on: requests are small and latency matters."""

    def __init__(self, address: Address = None, *, timeout: float = 10.0, version: int = p.PROTOCOL_VERSION,
                 token: Token = None, token_file: "Optional[Union[str, os.PathLike[str]]]" = None) -> None:
        self.unix, self.host, self.port, self._token = resolve_target(address, token, token_file)
        #: Whether the token presented is read-only (16.4).
        self.read_only = False
        self.timeout = timeout
        self.version_offered = version
        self._lock = threading.RLock()
        self._subs: Dict[int, Subscription] = {}
        self._sock: Optional[socket.socket] = None
        self._buf = p.FrameBuffer()
        self._sock_timeout: Optional[float] = -1.0
        #: The server's ``HELLO`` answer.
        self.server: ServerInfo = ServerInfo(0, 0, "")
        self._options = False
        self._connect()

    # -- connection ---------------------------------------------------------------

    def _connect(self) -> None:
        where = describe(self.host, self.port, self.unix)
        try:
            if self.unix is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(self.unix)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.timeout:
            raise ClientTimeout(f"could not connect to {where} within {self.timeout} s") from None
        except OSError as err:
            raise ConnectionClosed(f"could not connect to {where}: {err}") from err
        self._sock = sock
        self._sock_timeout = self.timeout
        self._buf = p.FrameBuffer()
        self.server = self._call(ops.hello(self.version_offered))
        self._buf.max_frame = max_frame(self.server)
        self._options = self.server.has(FEATURE_PUT_OPTIONS)
        if self._token is not None:
            self.read_only = self._call(ops.auth(self._token))

    def auth(self, token: Token) -> bool:
        """Authenticate with ``token`` (protocol.md 16.2); True when it is read-only.
        Kept for reconnects. A wrong token raises ``AuthFailed`` and the server closes
        the connection; a server that requires none accepts any."""
        value = resolve_token(None, token, None) if token is not None else None
        if value is None:
            raise ValueError("no token given")
        with self._lock:
            self.read_only = self._call(ops.auth(value))
            self._token = value
            return self.read_only

    def reconnect(self) -> None:
        """Close this connection (if open) and open a new one to the same address.

        Messages leased before keep their (id, attempt) pairs: the server gave those
        leases back when the old connection closed, so settling them now answers
        ``STALE`` (``False``), never acks a newer delivery. Subscriptions end; subscribe
        again. Nothing is replayed: a ``put`` whose reply was lost may or may not have
        been stored (at-least-once is the caller's choice: retry it if duplicates are
        acceptable)."""
        with self._lock:
            self._drop()
            self._connect()

    @property
    def connected(self) -> bool:
        """Whether the connection is open (as far as this client knows)."""
        return self._sock is not None

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        for sub in self._subs.values():
            sub.active = False
        self._subs.clear()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        """Close the connection (without ``QUIT``); safe to call twice, and from another
        thread: a request waiting there (a parked ``get``) ends with
        ``ConnectionClosed``, which is how a parked GET is abandoned (protocol.md 12)."""
        sock = self._sock
        if sock is not None:
            try:
                # Without the lock, which the waiting request holds: the shutdown wakes
                # its recv with end-of-stream.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            self._drop()

    def quit(self) -> None:
        """Send ``QUIT``, wait for ``BYE`` (every earlier request is done), close."""
        with self._lock:
            try:
                self._call(ops.quit())
            finally:
                self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the wire -----------------------------------------------------------------

    def _settimeout(self, sock: socket.socket, timeout: Optional[float]) -> None:
        if timeout != self._sock_timeout:
            sock.settimeout(timeout)
            self._sock_timeout = timeout

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionClosed("the connection is closed")
        return self._sock

    def _recv_some(self, sock: socket.socket, poll: bool = False) -> bool:
        """Reads what has come into the frame buffer. A timeout closes the connection,
        unless ``poll`` (no request in flight: the stream is still in step), when it
        returns False."""
        try:
            data = sock.recv(_RECV)
        except (socket.timeout, BlockingIOError):
            if poll:
                return False
            self._drop()
            raise ClientTimeout("no reply within the timeout; connection closed") from None
        except OSError as err:
            self._drop()
            raise ConnectionClosed(f"connection lost: {err}") from err
        if not data:
            self._drop()
            raise ConnectionClosed("the server closed the connection")
        self._buf.feed(data)
        return True

    def _send(self, data: bytes) -> None:
        sock = self._live()
        try:
            if len(data) <= _BIG_WRITE:
                self._settimeout(sock, self.timeout)
                sock.sendall(data)
                return
            view = memoryview(data)
            sent = 0
            while sent < len(view):
                readable, writable = _wait_io(sock, self.timeout)
                if not readable and not writable:
                    self._drop()
                    raise ClientTimeout("the server stopped reading; connection closed")
                if readable:
                    try:
                        self._recv_some(sock)
                    except ConnectionClosed:
                        # The server closed after answering (a fatal error): the
                        # frames it sent before are buffered; the reader raises them.
                        return
                if writable:
                    sent += sock.send(view[sent : sent + _RECV])
        except (BrokenPipeError, ConnectionResetError):
            # The server closed on us; what it sent before says why (protocol.md 2.8),
            # so leave the socket to the reader, which raises that error.
            return
        except socket.timeout:
            self._drop()
            raise ClientTimeout("could not write within the timeout; connection closed") from None
        except BaseException:
            # Interrupted mid-frame (KeyboardInterrupt, ...): the server would read the
            # next request as the rest of this one.
            self._drop()
            raise

    def _frame(self, timeout: Optional[float]) -> Tuple[int, bytes]:
        """The next frame that is not an EVENT (events go to their subscription)."""
        buf = self._buf
        while True:
            frame = buf.pop()
            if frame is None:
                sock = self._live()
                self._settimeout(sock, timeout)
                self._recv_some(sock)
                continue
            if frame[0] == p.S_EVENT:
                self._route(frame[1])
                continue
            return frame

    def _route(self, body: bytes) -> None:
        route(self._subs, body)

    def _reply_timeout(self, op: ops.Op[Any]) -> Optional[float]:
        return None if op.wait is None else op.wait + self.timeout

    def _next_reply(self, timeout: Optional[float]) -> Tuple[int, bytes]:
        """``_frame``, closing the connection if it fails for any reason: a reply still
        to come would otherwise answer the next request (a KeyboardInterrupt here is
        as bad as a timeout)."""
        try:
            return self._frame(timeout)
        except BaseException:
            self._drop()
            raise

    def _read(self, op: ops.Op[T]) -> T:
        status, body = self._next_reply(self._reply_timeout(op))
        try:
            return op.decode(status, body)
        except ServerError as err:
            if err.fatal:
                self._drop()
            raise
        except ProtocolError:
            self._drop()
            raise

    def _call(self, op: ops.Op[T]) -> T:
        if op.version > self.server.version or op.feature:
            ops.check_version((op,), self.server.version, self.server.features)
        with self._lock:
            self._send(op.frame)
            return self._read(op)

    def _run_many(self, batch: Sequence[ops.Op[Any]], raise_first: bool) -> List[Any]:
        """Send every op pipelined, read every reply; errors become list entries
        (or, with ``raise_first``, the first is raised once all replies are in)."""
        ops.check_version(batch, self.server.version, self.server.features)
        results: List[Any] = []
        first: Optional[BaseException] = None
        with self._lock:
            # One write: past 64 KiB it reads replies as it goes, so it cannot deadlock.
            self._send(b"".join([op.frame for op in batch]))
            for op in batch:
                try:
                    results.append(self._read(op))
                except (ConnectionClosed, ClientTimeout) as err:
                    results.extend([err] * (len(batch) - len(results)))
                    first = first or err
                    break
                except BeussError as err:
                    results.append(err)
                    first = first or err
        if raise_first and first is not None:
            raise first
        return results

    # -- operations ---------------------------------------------------------------

    def ping(self) -> None:
        """``PING``: round trip to the server."""
        self._call(ops.ping())

    def put(self, queue: str, body: bytes, *, delay: float = 0.0, priority: Optional[int] = None,
            unique: Optional[ops.Key] = None, unique_for: float = 0.0, replace: bool = False,
            ttl: Optional[float] = None, ttl_dead_letter: bool = False) -> PutResult:
        """Append ``body`` to ``queue``, ready after ``delay`` seconds, with ``priority``
        0 (first) .. 9 (default 5). Returns the id and, if the server cut the payload
        to its limit, both lengths (``result.truncated``). ``Full`` when over the
        memory cap (not fatal: retry later).

        With ``unique`` (a key of 1 to 255 bytes; ``str`` is sent as UTF-8) nothing
        is stored while a message of ``queue`` holds that key, nor for ``unique_for``
        seconds (at most 30 days) after it left the queue: the result's
        ``duplicate`` is then the holder's state (``HolderState``) and ``id`` the
        holder's id. With ``replace`` a ready or delayed holder takes this body,
        priority and delay instead (``replaced``, same id); one in flight is never
        replaced. Needs a version-6 server (``Unsupported`` otherwise, nothing
        sent); protocol.md 18.

        With ``ttl`` (seconds, at most 30 days) the message is never delivered once
        that time has passed since this ``put`` (a delay counts toward it): it is
        dropped, or moved to ``<queue>.dead`` with ``ttl_dead_letter``. ``ttl=0``
        means "never expires", even in a queue the server gives a default time to
        live (``BQUEUETTL``); ``None`` sends no time to live, so that default
        applies. A message in flight when its time comes is left to its lease: it
        can still be acked, and expires if it comes back. Needs a version-6 server
        announcing ``FEATURE_TTL`` (``Unsupported`` otherwise, nothing sent);
        protocol.md 19."""
        return self._call(ops.put(queue, body, delay, priority, self._options, unique, unique_for, replace,
                                  ttl, ttl_dead_letter))

    def put_many(self, queue: str, bodies: Iterable[bytes], *, delay: float = 0.0, priority: Optional[int] = None,
                 ttl: Optional[float] = None, ttl_dead_letter: bool = False) -> List[PutResult]:
        """Put every body, pipelined (all sent before the replies are read), in order.
        If some were refused (``Full``), the first error is raised after every reply
        was read; its ``results`` attribute holds a ``PutResult`` or the error for
        each body. ``ttl`` and ``ttl_dead_letter`` apply to every body (see ``put``).
        It takes no unique key (one key for the whole batch would store only the
        first body); pipeline ``put(..., unique=...)`` calls instead."""
        probe = ops.put(queue, b"", delay, priority, self._options, ttl=ttl, ttl_dead_letter=ttl_dead_letter)
        ops.check_version((probe,), self.server.version, self.server.features)
        frames = ops.put_frames(queue, list(bodies), delay, priority, self._options, ttl, ttl_dead_letter)
        replies = ops.PutReplies()
        with self._lock:
            self._send(b"".join(frames))  # one write, as in _run_many
            timeout = self.timeout
            frame = self._next_reply
            add = replies.add
            for _ in range(len(frames)):
                status, body = frame(timeout)
                try:
                    add(status, body)
                except (ServerError, ProtocolError):
                    self._drop()  # fatal: the server closes; nothing after is sure
                    raise
        return replies.outcome()

    def get(self, queue: str, *, wait: Optional[float] = 0.0, max: int = 1) -> List[bytes]:
        """Take (remove) up to ``max`` payloads, oldest first; if the queue is empty,
        wait up to ``wait`` seconds (``None`` = for ever) for one. At-most-once: use
        ``lease`` for work that must not be lost."""
        return self._call(ops.get(queue, wait, max))

    def get_meta(self, queue: str, *, wait: Optional[float] = 0.0, max: int = 1) -> List[Envelope]:
        """``get`` with metadata (``WITH_META``): ids, attempts, subject, reply_to."""
        return self._call(ops.get_meta(queue, wait, max))

    def purge(self, queue: str) -> int:
        """Drop every message of ``queue``; returns how many."""
        return self._call(ops.purge(queue))

    def stats(self, queue: Optional[str] = None) -> Stats:
        """Server figures and those of every queue (or of ``queue`` only)."""
        return self._call(ops.stats(queue))

    def _maker(self, queue: str) -> ops.Maker[Message]:
        return ops.maker(functools.partial(Message, self), queue)

    def lease(
        self,
        queue: str,
        *,
        wait: Optional[float] = 0.0,
        max: int = 1,
        lease: Optional[float] = None,
        max_deliveries: int = 0,
        detached: bool = False,
        meta: bool = False,
    ) -> List[Message]:
        """Take up to ``max`` messages under a lease of ``lease`` seconds (``None`` =
        the server's default, 30 s); each must be ``ack``ed, else it comes back. A
        message delivered ``max_deliveries`` times (0 = server default 20) goes to
        ``<queue>.dead``. ``detached`` leases survive this connection; ``meta`` adds
        subject and reply_to."""
        return self._call(ops.lease(queue, self._maker(queue), wait, max, lease, max_deliveries, detached, meta))

    def ack(self, queue: str, pairs: Sequence[Tuple[int, int]]) -> List[SettleResult]:
        """Acknowledge (id, attempt) pairs; one result per pair."""
        return self._call(ops.ack(queue, pairs))

    def nack(self, queue: str, pairs: Sequence[Tuple[int, int]], *, delay: float = 0.0, dead: bool = False, count: bool = True) -> List[SettleResult]:
        """Give leased messages back (after ``delay``), or dead-letter them; with
        ``count=False`` the delivery is not charged."""
        return self._call(ops.nack(queue, pairs, delay, dead, count))

    def touch(self, queue: str, pairs: Sequence[Tuple[int, int]], *, lease: Optional[float] = None) -> List[SettleResult]:
        """Extend leases to ``lease`` seconds from now (``None`` = their first length)."""
        return self._call(ops.touch(queue, pairs, lease))

    def peek(self, queue: str, *, max: int = 1, meta: bool = False) -> List[Envelope]:
        """Copies of the ready messages at the front of ``queue``; changes nothing."""
        return self._call(ops.peek(queue, max, meta))

    def move(self, source: str, dest: str, *, max: int = 0xFFFFFFFF) -> int:
        """Move up to ``max`` ready messages from ``source`` to ``dest`` (e.g. back from
        ``jobs.dead``); returns how many moved."""
        return self._call(ops.move(source, dest, max))

    def bind(self, pattern: str, queue: str) -> bool:
        """Copy every message published to a subject matching ``pattern`` into
        ``queue``; True if the binding is new."""
        return self._call(ops.bind(pattern, queue))

    def unbind(self, pattern: str, queue: str) -> bool:
        """Remove a binding; True if there was one."""
        return self._call(ops.unbind(pattern, queue))

    def publish(self, subject: str, body: bytes, *, delay: float = 0.0, priority: int = p.DEFAULT_PRIORITY,
                confirm: int = 0, timeout: float = 5.0) -> Published:
        """Publish to ``subject``: a copy into every bound queue, an event to every
        matching subscription. With ``confirm`` N, wait (up to ``timeout``) until N
        copies are acked or taken (``TooFewCopies`` if fewer than N queues match)."""
        return self._call(ops.publish(subject, body, delay, priority, confirm, timeout))

    def subscribe(self, pattern: str) -> Subscription:
        """Subscribe this connection to ``pattern``; read events from the result.
        Events arrive only while the connection reads, so a subscriber usually keeps
        a connection of its own."""

        return self._call(ops.subscribe(pattern, self._register(pattern)))

    def _register(self, pattern: str) -> Callable[[int], Subscription]:
        """What ``SUBSCRIBED`` runs: the subscription exists before any later frame is
        read, so none of its events can be missed."""

        def register(sid: int) -> Subscription:
            sub = Subscription(self, sid, pattern)
            self._subs[sid] = sub
            return sub

        return register

    def unsubscribe(self, sid: int) -> bool:
        """End subscription ``sid``; True if it existed."""
        with self._lock:
            removed = self._call(ops.unsubscribe(sid))
            sub = self._subs.pop(sid, None)
            if sub is not None:
                sub.active = False
            return removed

    def _next_event(self, sub: Subscription, timeout: Optional[float]) -> Optional[Event]:
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not sub._events:
                if not sub.active:
                    return None
                while True:
                    frame = self._buf.pop()
                    if frame is not None:
                        break
                    # timeout 0 (or a deadline passed) still reads what has arrived.
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    sock = self._live()
                    self._settimeout(sock, left)
                    if not self._recv_some(sock, poll=True):
                        return None
                if frame[0] == p.S_EVENT:
                    self._route(frame[1])
                elif frame[0] == p.S_ERROR:
                    error = p.decode_error(frame[1])
                    if error.fatal:
                        self._drop()
                    raise error
                else:
                    self._drop()
                    raise ProtocolError(f"reply 0x{frame[0]:02x} with no request in flight")
            return sub._events.popleft()

    def request(self, subject: str, body: bytes, *, timeout: float = 5.0) -> bytes:
        """Send a request to ``subject`` and return the first reply's payload;
        ``NoResponders`` if nothing listens, ``RequestTimeout`` if no reply came."""
        return self._call(ops.request(subject, body, timeout))

    def reply(self, reply_to: int, body: bytes) -> bool:
        """Answer a request's ``reply_to`` address; True if the requester got it."""
        return self._call(ops.reply(reply_to, body))

    def schedule(self, name: str, spec: str, queue: Optional[str] = None, *, subject: Optional[str] = None,
                 payload: bytes = b"", priority: int = p.DEFAULT_PRIORITY) -> Scheduled:
        """Define schedule ``name`` (or replace the one of that name, which starts
        afresh): the server puts ``payload`` on ``queue``, or publishes it to
        ``subject`` (give exactly one), with ``priority``, at the times of ``spec``: a
        cron expression (``"0 3 * * *"``, UTC unless it starts with ``TZ=+01:00``), a
        macro (``"@daily"``) or an interval (``"@every 10s"``), protocol.md 17.2.
        Returns ``(created, next_run_ms)``, the first run time in milliseconds since
        1970 (UTC). A spec the server cannot read, or a payload over its message size,
        raises ``BadSchedule`` (not fatal); over its memory cap, ``Full``. Needs a
        version-5 server (``Unsupported`` otherwise, nothing sent)."""
        return self._call(ops.schedule(name, spec, queue, subject, payload, priority))

    def unschedule(self, name: str) -> bool:
        """Delete schedule ``name``; True if it was there. Messages it made stay."""
        return self._call(ops.unschedule(name))

    def pause_schedule(self, name: str) -> Optional[int]:
        """Pause schedule ``name``: it does not run until resumed. Returns its next run
        time, 0 while paused, or ``None`` if there is no such schedule."""
        return self._call(ops.pause_schedule(name, True))

    def resume_schedule(self, name: str) -> Optional[int]:
        """Resume schedule ``name``; runs missed while paused are not made up. Returns
        its next run time (ms since 1970), or ``None`` if there is no such schedule."""
        return self._call(ops.pause_schedule(name, False))

    def schedules(self, name: Optional[str] = None) -> List[ScheduleInfo]:
        """Every schedule with its figures, sorted by name, or only the one named (an
        empty list if there is none)."""
        return self._call(ops.schedules(name))

    def pipeline(self) -> "Pipeline":
        """A batch of arbitrary requests sent together (see ``Pipeline``)."""
        return Pipeline(self)

    def consume(self, queue: str, **options: Any) -> "Consumer":
        """A consumer on this connection; see ``beuss.consumer.Consumer``."""
        from .consumer import Consumer

        return Consumer(self, queue, **options)


class Pipeline(ops.Batch):
    """Requests queued up, then sent in one write by ``execute()``; replies come back
    in order. Each method takes the ``Client`` method's arguments and returns the
    pipeline, so calls chain::

        with client.pipeline() as pipe:
            pipe.put("jobs", b"a").put("jobs", b"b").get("jobs", max=2)
        pipe.results  # [PutResult, PutResult, [b"a", b"b"]]

    Leaving the ``with`` block executes it (unless an exception is leaving it)."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.client = client

    def execute(self, raise_on_error: bool = True) -> List[Any]:
        """Send everything queued and return one result per request, in order. An
        error is raised after every reply was read (``raise_on_error``), or stands in
        its request's place in the list."""
        batch, self._ops = self._ops, []
        self.results = self.client._run_many(batch, raise_on_error)
        return self.results

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, exc_type: Optional[type], *exc: object) -> None:
        if exc_type is None:
            self.execute()


def connect(address: Address = None, **options: Any) -> Client:
    """``Client(address, **options)``: open a blocking connection."""
    return Client(address, **options)
