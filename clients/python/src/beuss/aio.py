"""The asyncio client: the same methods as ``Client``, as coroutines.

It uses an ``asyncio.Protocol``, not a stream reader: bytes are split into frames and
matched to waiting requests right in ``data_received``, with no task per reply, which is
what lets one connection carry tens of thousands of requests a second. Requests in
flight wait in a FIFO (replies come in request order, protocol.md 2.4); ``EVENT``
frames are taken out of the stream first and handed to their subscription.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import socket
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

from . import ops
from . import protocol as p
from .client import Address, SubscriptionBase, Token, describe, max_frame, resolve_target, resolve_token, route
from .errors import BeussError, ClientTimeout, ConnectionClosed, ProtocolError, ServerError
from .message import AsyncMessage
from .models import FEATURE_PUT_OPTIONS, Envelope, Event, Published, PutResult, Scheduled, ScheduleInfo, ServerInfo, SettleResult, Stats

if TYPE_CHECKING:  # pragma: no cover - names for the type checker
    from .consumer import AsyncConsumer

T = TypeVar("T")

_CHUNK = 1024
# ...and at most about this many bytes, so that a batch of large payloads is not
# copied into one huge buffer before the first byte goes out.
_CHUNK_BYTES = 1 << 20


def _chunks(sizes: Sequence[int]) -> Iterator[Tuple[int, int]]:
    """(start, end) slices of a batch, each at most ``_CHUNK`` frames and, unless
    a single frame is bigger, ``_CHUNK_BYTES`` bytes."""
    start = total = 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= _CHUNK or total + size > _CHUNK_BYTES):
            yield start, i
            start, total = i, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes)


class _Entry:
    """One request in flight: decodes its reply into its future."""

    __slots__ = ("decode", "fut", "timeout")

    def __init__(self, decode: Callable[[int, bytes], Any], fut: "asyncio.Future[Any]", timeout: Optional[float]) -> None:
        self.decode = decode
        self.fut = fut
        self.timeout = timeout

    def reply(self, status: int, body: bytes) -> bool:
        """Takes one reply; returns True when the entry is complete."""
        fut = self.fut
        try:
            result = self.decode(status, body)
        except BeussError as err:
            if not fut.done():
                fut.set_exception(err)
            raise
        if not fut.done():
            fut.set_result(result)
        return True

    def fail(self, err: BaseException) -> None:
        """The reply will never come."""
        if not self.fut.done():
            self.fut.set_exception(err)


class _PutBatch(_Entry):
    """The replies of a ``put_many`` chunk: one entry (and one future) for many PUTs."""

    __slots__ = ("left", "replies")

    def __init__(self, count: int, fut: "asyncio.Future[Any]", timeout: Optional[float]) -> None:
        super().__init__(ops.decode_put, fut, timeout)
        self.left = count
        self.replies = ops.PutReplies()

    def reply(self, status: int, body: bytes) -> bool:
        try:
            self.replies.add(status, body)
        except BeussError as err:  # fatal: the connection closes
            self.fail(err)
            raise
        self.left -= 1
        if self.left:
            return False
        if not self.fut.done():
            self.fut.set_result(self.replies)
        return True


class AsyncSubscription(SubscriptionBase):
    """A live subscription on an ``AsyncClient``: ``async for event in sub`` or
    ``await sub.next(timeout)``. Iteration ends when the subscription or the connection
    ends."""

    def __init__(self, client: "AsyncClient", sid: int, pattern: str) -> None:
        super().__init__(sid, pattern)
        self.client = client
        self._events: "asyncio.Queue[Optional[Event]]" = asyncio.Queue()

    def _buffered(self) -> int:
        return self._events.qsize()

    def _push(self, event: Event) -> None:
        self._events.put_nowait(event)

    async def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, or ``None`` after ``timeout`` seconds or once it ended."""
        if not self._events.empty():
            return self._events.get_nowait()
        if not self.active:
            return None
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except asyncio.TimeoutError:
            return None

    def __aiter__(self) -> "AsyncSubscription":
        return self

    async def __anext__(self) -> Event:
        event = await self.next()
        if event is None:
            raise StopAsyncIteration
        return event

    async def unsubscribe(self) -> bool:
        """End the subscription; True if the server still had it."""
        return await self.client.unsubscribe(self.sid)

    def _end(self) -> None:
        self.active = False
        self._events.put_nowait(None)


class _Link(asyncio.Protocol):
    """The asyncio protocol of one socket. A new one per connection, so that the late
    callbacks of a closed socket (after ``reconnect``) are recognised and ignored."""

    def __init__(self, client: "AsyncClient") -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client._made(self, transport)

    def data_received(self, data: bytes) -> None:
        self.client._data(self, data)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.client._lost(self, exc)

    def pause_writing(self) -> None:
        self.client._pause(self)

    def resume_writing(self) -> None:
        if self is self.client._link:
            self.client._resume()


class AsyncClient:
    """An asyncio connection to a beuss server; see ``Client`` for every method.

    Open it with ``await AsyncClient(address).connect()``, ``await connect_async()``
    or ``async with AsyncClient(address) as client``. Requests from many tasks may be
    in flight at once on the one connection (pipelining); a request that waits on the
    server (``get(wait=...)``, ``lease(wait=...)``, ``request``, a confirmed
    ``publish``) holds back the replies of everything sent after it."""

    def __init__(self, address: Address = None, *, timeout: float = 10.0, version: int = p.PROTOCOL_VERSION,
                 token: Token = None, token_file: "Optional[Union[str, os.PathLike[str]]]" = None) -> None:
        self.unix, self.host, self.port, self._token = resolve_target(address, token, token_file)
        #: Whether the token presented is read-only (16.4).
        self.read_only = False
        self.timeout = timeout
        self.version_offered = version
        #: The server's ``HELLO`` answer (after ``connect``).
        self.server = ServerInfo(0, 0, "")
        self._transport: Optional[asyncio.Transport] = None
        self._link: Optional[_Link] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._buf = p.FrameBuffer()
        self._pending: Deque[_Entry] = collections.deque()
        self._subs: Dict[int, AsyncSubscription] = {}
        self._closed: Optional[BaseException] = ConnectionClosed("not connected")
        self._paused = False
        self._drained: Optional["asyncio.Future[None]"] = None
        self._deadline: Optional[float] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._acks: Dict[str, List[Tuple[Tuple[int, int], "asyncio.Future[SettleResult]"]]] = {}
        self._options = False
        #: Called (with no argument) whenever the connection ends, e.g. so a consumer
        #: waiting for room notices a drop at once and reconnects.
        self.on_close: List[Callable[[], None]] = []

    # -- connection ---------------------------------------------------------------

    async def connect(self) -> "AsyncClient":
        """Open the connection and say ``HELLO``; returns the client. A client that is
        open already stays as it is (``reconnect`` opens a new connection)."""
        if self._closed is None:
            return self
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._buf = p.FrameBuffer()
        where = describe(self.host, self.port, self.unix)
        try:
            if self.unix is not None:
                opening = loop.create_unix_connection(lambda: _Link(self), self.unix)
            else:
                opening = loop.create_connection(lambda: _Link(self), self.host, self.port)
            await asyncio.wait_for(opening, self.timeout)
        except asyncio.TimeoutError:
            self._closed = ConnectionClosed("connect timed out")
            raise ClientTimeout(f"could not connect to {where} within {self.timeout} s") from None
        except OSError as err:
            self._closed = ConnectionClosed(str(err))
            raise ConnectionClosed(f"could not connect to {where}: {err}") from err
        try:
            self.server = await self._call(ops.hello(self.version_offered))
            if self._token is not None:
                self.read_only = await self._call(ops.auth(self._token))
        except BaseException:
            self.close()  # cancelled or refused: the socket must not outlive this call
            raise
        self._buf.max_frame = max_frame(self.server)
        self._options = self.server.has(FEATURE_PUT_OPTIONS)
        return self

    async def auth(self, token: Token) -> bool:
        """As ``Client.auth``: authenticate with ``token``; True when it is read-only."""
        value = resolve_token(None, token, None) if token is not None else None
        if value is None:
            raise ValueError("no token given")
        self.read_only = await self._call(ops.auth(value))
        self._token = value
        return self.read_only

    async def reconnect(self) -> None:
        """Close and open again; the same rules as ``Client.reconnect``: held messages
        settle as ``STALE``, subscriptions end, nothing is replayed."""
        self.close()
        await self.connect()

    @property
    def connected(self) -> bool:
        """Whether the connection is open (as far as this client knows)."""
        return self._closed is None

    def _made(self, link: "_Link", transport: asyncio.Transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != getattr(socket, "AF_UNIX", None):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._link = link
        self._transport = transport
        self._closed = None  # open from here on, not before: requests need the transport

    def _lost(self, link: "_Link", exc: Optional[Exception]) -> None:
        if link is self._link:
            self._shut(ConnectionClosed(f"connection lost: {exc}" if exc else "the server closed the connection"))

    def _pause(self, link: "_Link") -> None:
        if link is self._link:
            self._paused = True

    def _resume(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _shut(self, err: BaseException) -> None:
        if self._closed is None:
            self._closed = err
        transport, self._transport = self._transport, None
        self._link = None  # callbacks of the old socket must not touch a new one
        if transport is not None:
            transport.close()
        pending, self._pending = self._pending, collections.deque()
        for entry in pending:
            entry.fail(err)
        for sub in self._subs.values():
            sub._end()
        self._subs.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._resume()
        if transport is not None:
            for hook in self.on_close:
                hook()

    def close(self) -> None:
        """Close the connection (without ``QUIT``); requests in flight fail."""
        self._shut(ConnectionClosed("the connection is closed"))

    async def quit(self) -> None:
        """``QUIT``: wait for every earlier request to be done, then close."""
        try:
            await self._call(ops.quit())
        finally:
            self.close()

    async def __aenter__(self) -> "AsyncClient":
        if self._closed is not None:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- the wire -----------------------------------------------------------------

    def _data(self, link: "_Link", data: bytes) -> None:
        """Split frames, route events, answer requests in order."""
        if link is not self._link:
            return
        buf = self._buf
        buf.feed(data)
        pending = self._pending
        if self._deadline is not None:
            # The reply timeout means "no progress for that long" (as the sync client's
            # socket timeout): bytes coming in, even replies of a long put_many batch
            # or one big frame, push the head's deadline on.
            self._deadline = max(self._deadline, self._now() + self.timeout)
        try:
            while True:
                frame = buf.pop()
                if frame is None:
                    break
                status, body = frame
                if status == p.S_EVENT:
                    self._route(body)
                    continue
                if not pending:
                    self._unprompted(status, body)
                    return
                entry = pending[0]
                try:
                    done = entry.reply(status, body)
                except ServerError as err:
                    pending.popleft()
                    if err.fatal:
                        self._shut(ConnectionClosed(f"closed after a fatal error: {err}"))
                        return
                    self._new_head()
                    continue
                except ProtocolError:
                    raise  # the stream cannot be trusted: below, everything fails
                except BeussError:  # RequestTimeout: answered, the stream is in step
                    pending.popleft()
                    self._new_head()
                    continue
                if done:
                    pending.popleft()
                    self._new_head()
        except ProtocolError as err:
            self._shut(err)

    def _unprompted(self, status: int, body: bytes) -> None:
        err: BaseException = ProtocolError(f"reply 0x{status:02x} with no request in flight")
        if status == p.S_ERROR:
            err = p.decode_error(body)
        self._shut(err)

    def _route(self, body: bytes) -> None:
        route(self._subs, body)

    def _new_head(self) -> None:
        # The reply timeout of a request starts when it reaches the head of the FIFO:
        # until then it legitimately waits behind the requests sent before it.
        if self._pending:
            timeout = self._pending[0].timeout
            self._deadline = None if timeout is None else self._now() + timeout
            if self._deadline is not None:
                # Usually a timer is armed already for an earlier deadline, and fires
                # then to look again; re-arm only if this deadline comes sooner.
                if self._timer is None:
                    self._arm(self._deadline)
                elif self._deadline < self._timer.when():
                    self._timer.cancel()
                    self._arm(self._deadline)
        else:
            self._deadline = None

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_at(when, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self._now() >= self._deadline:
            self._shut(ClientTimeout("no reply within the timeout; connection closed"))
        else:
            self._arm(self._deadline)

    def _reply_timeout(self, op: ops.Op[Any]) -> Optional[float]:
        return None if op.wait is None else op.wait + self.timeout

    def _write(self, data: bytes, entries: Iterable[_Entry]) -> None:
        if self._closed is not None:
            raise ConnectionClosed(f"the connection is closed ({self._closed})")
        assert self._transport is not None
        was_idle = not self._pending
        self._pending.extend(entries)
        self._transport.write(data)
        if was_idle:
            self._new_head()

    def _submit(self, op: ops.Op[T]) -> "asyncio.Future[T]":
        assert self._loop is not None
        if op.version > self.server.version or op.feature:
            ops.check_version((op,), self.server.version, self.server.features)
        fut: "asyncio.Future[T]" = self._loop.create_future()
        self._write(op.frame, (_Entry(op.decode, fut, self._reply_timeout(op)),))
        return fut

    async def _drain(self) -> None:
        if self._paused and self._loop is not None:
            if self._drained is None:
                self._drained = self._loop.create_future()
            await self._drained

    async def _call(self, op: ops.Op[T]) -> T:
        fut = self._submit(op)
        if self._paused:
            await self._drain()
        return await fut

    def _ack_soon(self, queue: str, pair: Tuple[int, int]) -> "asyncio.Future[SettleResult]":
        """Queue an ACK for this event-loop turn: all acks of one turn and queue go out
        in one frame (up to 4096 pairs), which is most of a consumer's throughput."""
        assert self._loop is not None
        fut: "asyncio.Future[SettleResult]" = self._loop.create_future()
        if not self._acks:
            self._loop.call_soon(self._flush_acks)
        self._acks.setdefault(queue, []).append((pair, fut))
        return fut

    def _flush_acks(self) -> None:
        batches, self._acks = self._acks, {}
        for queue, items in batches.items():
            for start in range(0, len(items), p.MAX_SETTLE_PAIRS):
                chunk = items[start : start + p.MAX_SETTLE_PAIRS]
                futs = [f for _, f in chunk]
                try:
                    fut = self._submit(ops.ack(queue, [pair for pair, _ in chunk]))
                except BaseException as err:  # closed: every ack of the chunk fails
                    for f in futs:
                        if not f.done():
                            f.set_exception(err)
                    continue
                fut.add_done_callback(functools.partial(_spread, futs=futs))

    async def _run_many(self, batch: Sequence[ops.Op[Any]], raise_first: bool) -> List[Any]:
        assert self._loop is not None
        ops.check_version(batch, self.server.version, self.server.features)
        futs: List["asyncio.Future[Any]"] = []
        for start, end in _chunks([len(op.frame) for op in batch]):
            chunk = batch[start:end]
            entries = []
            for op in chunk:
                fut: "asyncio.Future[Any]" = self._loop.create_future()
                futs.append(fut)
                entries.append(_Entry(op.decode, fut, self._reply_timeout(op)))
            self._write(b"".join([op.frame for op in chunk]), entries)
            await self._drain()
        results = await asyncio.gather(*futs, return_exceptions=True)
        if raise_first:
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        return list(results)

    # -- operations (documented on Client) ----------------------------------------

    async def ping(self) -> None:
        """``PING`` (see ``Client.ping``)."""
        await self._call(ops.ping())

    async def put(self, queue: str, body: bytes, *, delay: float = 0.0, priority: Optional[int] = None,
                  unique: Optional[ops.Key] = None, unique_for: float = 0.0, replace: bool = False,
                  ttl: Optional[float] = None, ttl_dead_letter: bool = False) -> PutResult:
        """Append a message, with a unique key and a time to live if given (see
        ``Client.put``)."""
        return await self._call(ops.put(queue, body, delay, priority, self._options, unique, unique_for, replace,
                                        ttl, ttl_dead_letter))

    async def put_many(self, queue: str, bodies: Iterable[bytes], *, delay: float = 0.0, priority: Optional[int] = None,
                       ttl: Optional[float] = None, ttl_dead_letter: bool = False) -> List[PutResult]:
        """Put every body, pipelined, with a time to live if given; no unique key (see
        ``Client.put_many``)."""
        assert self._loop is not None
        probe = ops.put(queue, b"", delay, priority, self._options, ttl=ttl, ttl_dead_letter=ttl_dead_letter)
        ops.check_version((probe,), self.server.version, self.server.features)
        frames = ops.put_frames(queue, list(bodies), delay, priority, self._options, ttl, ttl_dead_letter)
        batches: List["asyncio.Future[ops.PutReplies]"] = []
        for start, end in _chunks([len(f) for f in frames]):
            chunk = frames[start:end]
            fut: "asyncio.Future[ops.PutReplies]" = self._loop.create_future()
            self._write(b"".join(chunk), (_PutBatch(len(chunk), fut, self.timeout),))
            batches.append(fut)
            await self._drain()
        replies = ops.PutReplies()
        for fut in batches:
            part = await fut
            replies.results.extend(part.results)
            replies.first = replies.first or part.first
        return replies.outcome()

    async def get(self, queue: str, *, wait: Optional[float] = 0.0, max: int = 1) -> List[bytes]:
        """Take up to ``max`` payloads (see ``Client.get``)."""
        return await self._call(ops.get(queue, wait, max))

    async def get_meta(self, queue: str, *, wait: Optional[float] = 0.0, max: int = 1) -> List[Envelope]:
        """``get`` with metadata (see ``Client.get_meta``)."""
        return await self._call(ops.get_meta(queue, wait, max))

    async def purge(self, queue: str) -> int:
        """Drop every message of ``queue`` (see ``Client.purge``)."""
        return await self._call(ops.purge(queue))

    async def stats(self, queue: Optional[str] = None) -> Stats:
        """Server and queue figures (see ``Client.stats``)."""
        return await self._call(ops.stats(queue))

    def _maker(self, queue: str) -> ops.Maker[AsyncMessage]:
        return ops.maker(functools.partial(AsyncMessage, self), queue)

    async def lease(self, queue: str, *, wait: Optional[float] = 0.0, max: int = 1, lease: Optional[float] = None,
                    max_deliveries: int = 0, detached: bool = False, meta: bool = False) -> List[AsyncMessage]:
        """Take messages under a lease (see ``Client.lease``). If the await is
        cancelled, what the reply brings is given back at once (``NACK``,
        ``count=False``) instead of waiting out its lease."""
        wanted = [True]
        taken: List[AsyncMessage] = []
        make = self._maker(queue)

        def keep(d: p.RawDelivery) -> AsyncMessage:
            m = make(d)
            if wanted[0]:
                taken.append(m)
            else:
                self._give_back(queue, [m])
            return m

        try:
            return await self._call(ops.lease(queue, keep, wait, max, lease, max_deliveries, detached, meta))
        except asyncio.CancelledError:
            wanted[0] = False
            self._give_back(queue, taken)  # LEASED came already
            raise

    def _give_back(self, queue: str, held: List[AsyncMessage]) -> None:
        mine = [m for m in held if m._claim()]
        if mine and self._closed is None:
            self._submit(ops.nack(queue, [m.pair for m in mine], count=False)).add_done_callback(_retrieved)

    async def ack(self, queue: str, pairs: Sequence[Tuple[int, int]]) -> List[SettleResult]:
        """Acknowledge (id, attempt) pairs (see ``Client.ack``)."""
        return await self._call(ops.ack(queue, pairs))

    async def nack(self, queue: str, pairs: Sequence[Tuple[int, int]], *, delay: float = 0.0, dead: bool = False, count: bool = True) -> List[SettleResult]:
        """Give leased messages back (see ``Client.nack``)."""
        return await self._call(ops.nack(queue, pairs, delay, dead, count))

    async def touch(self, queue: str, pairs: Sequence[Tuple[int, int]], *, lease: Optional[float] = None) -> List[SettleResult]:
        """Extend leases (see ``Client.touch``)."""
        return await self._call(ops.touch(queue, pairs, lease))

    async def peek(self, queue: str, *, max: int = 1, meta: bool = False) -> List[Envelope]:
        """Look at the front of a queue (see ``Client.peek``)."""
        return await self._call(ops.peek(queue, max, meta))

    async def move(self, source: str, dest: str, *, max: int = 0xFFFFFFFF) -> int:
        """Move ready messages between queues (see ``Client.move``)."""
        return await self._call(ops.move(source, dest, max))

    async def bind(self, pattern: str, queue: str) -> bool:
        """Bind a pattern onto a queue (see ``Client.bind``)."""
        return await self._call(ops.bind(pattern, queue))

    async def unbind(self, pattern: str, queue: str) -> bool:
        """Remove a binding (see ``Client.unbind``)."""
        return await self._call(ops.unbind(pattern, queue))

    async def publish(self, subject: str, body: bytes, *, delay: float = 0.0, priority: int = p.DEFAULT_PRIORITY,
                      confirm: int = 0, timeout: float = 5.0) -> Published:
        """Publish to a subject (see ``Client.publish``)."""
        return await self._call(ops.publish(subject, body, delay, priority, confirm, timeout))

    async def subscribe(self, pattern: str) -> AsyncSubscription:
        """Subscribe this connection to ``pattern`` (see ``Client.subscribe``). If the
        await is cancelled, the subscription is ended once it exists: nobody could read
        its events."""
        wanted = [True]
        made: List[AsyncSubscription] = []
        register = self._register(pattern)

        def keep(sid: int) -> AsyncSubscription:
            sub = register(sid)
            made.append(sub)
            if not wanted[0]:
                self._drop_sub(sub)
            return sub

        try:
            return await self._call(ops.subscribe(pattern, keep))
        except asyncio.CancelledError:
            wanted[0] = False
            for sub in made:  # SUBSCRIBED came already
                self._drop_sub(sub)
            raise

    def _drop_sub(self, sub: AsyncSubscription) -> None:
        if self._subs.pop(sub.sid, None) is not None:
            sub._end()
            if self._closed is None:
                self._submit(ops.unsubscribe(sub.sid)).add_done_callback(_retrieved)

    def _register(self, pattern: str) -> Callable[[int], AsyncSubscription]:
        """What ``SUBSCRIBED`` runs (see ``Client._register``)."""

        def register(sid: int) -> AsyncSubscription:
            sub = AsyncSubscription(self, sid, pattern)
            self._subs[sid] = sub
            return sub

        return register

    async def unsubscribe(self, sid: int) -> bool:
        """End subscription ``sid`` (see ``Client.unsubscribe``)."""
        removed = await self._call(ops.unsubscribe(sid))
        sub = self._subs.pop(sid, None)
        if sub is not None:
            sub._end()
        return removed

    async def request(self, subject: str, body: bytes, *, timeout: float = 5.0) -> bytes:
        """Request/reply (see ``Client.request``)."""
        return await self._call(ops.request(subject, body, timeout))

    async def reply(self, reply_to: int, body: bytes) -> bool:
        """Answer a request (see ``Client.reply``)."""
        return await self._call(ops.reply(reply_to, body))

    async def schedule(self, name: str, spec: str, queue: Optional[str] = None, *, subject: Optional[str] = None,
                       payload: bytes = b"", priority: int = p.DEFAULT_PRIORITY) -> Scheduled:
        """Define or replace a schedule (see ``Client.schedule``)."""
        return await self._call(ops.schedule(name, spec, queue, subject, payload, priority))

    async def unschedule(self, name: str) -> bool:
        """Delete a schedule (see ``Client.unschedule``)."""
        return await self._call(ops.unschedule(name))

    async def pause_schedule(self, name: str) -> Optional[int]:
        """Pause a schedule (see ``Client.pause_schedule``)."""
        return await self._call(ops.pause_schedule(name, True))

    async def resume_schedule(self, name: str) -> Optional[int]:
        """Resume a schedule (see ``Client.resume_schedule``)."""
        return await self._call(ops.pause_schedule(name, False))

    async def schedules(self, name: Optional[str] = None) -> List[ScheduleInfo]:
        """List schedules (see ``Client.schedules``)."""
        return await self._call(ops.schedules(name))

    def pipeline(self) -> "AsyncPipeline":
        """A batch of arbitrary requests sent together (see ``AsyncPipeline``)."""
        return AsyncPipeline(self)

    def consume(self, queue: str, **options: Any) -> "AsyncConsumer":
        """A consumer on a connection of its own; see ``beuss.consumer.AsyncConsumer``."""
        from .consumer import AsyncConsumer

        return AsyncConsumer(self, queue, **options)


def _retrieved(fut: "asyncio.Future[Any]") -> None:
    if not fut.cancelled():
        fut.exception()  # looked at, so asyncio does not report it as never retrieved


def _spread(done: "asyncio.Future[List[SettleResult]]", futs: List["asyncio.Future[SettleResult]"]) -> None:
    if done.cancelled():
        err: BaseException = ConnectionClosed("cancelled")
    else:
        exc = done.exception()
        if exc is None:
            for f, r in zip(futs, done.result()):
                if not f.done():
                    f.set_result(r)
            return
        err = exc
    for f in futs:
        if not f.done():
            f.set_exception(err)


class AsyncPipeline(ops.Batch):
    """The asyncio form of ``Pipeline``: queue calls, then ``await pipe.execute()``."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.client = client

    async def execute(self, raise_on_error: bool = True) -> List[Any]:
        """Send everything queued; one result per request, in order (see
        ``Pipeline.execute``)."""
        batch, self._ops = self._ops, []
        self.results = await self.client._run_many(batch, raise_on_error)
        return self.results

    async def __aenter__(self) -> "AsyncPipeline":
        return self

    async def __aexit__(self, exc_type: Optional[type], *exc: object) -> None:
        if exc_type is None:
            await self.execute()


async def connect_async(address: Address = None, **options: Any) -> AsyncClient:
    """``await AsyncClient(address, **options).connect()``."""
    return await AsyncClient(address, **options).connect()
