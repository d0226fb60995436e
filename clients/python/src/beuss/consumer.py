"""Consumers: lease, run the handler, settle, keep leases alive, give back on shutdown.

The rules (the same for ``Consumer`` and ``AsyncConsumer``):

* a message whose handler returns is acked (unless the handler settled it itself);
* a handler that raises gets its message nacked after ``backoff(attempt)`` seconds (the
  attempt is charged, so a poison message ends in ``<queue>.dead`` after the server's
  ``max_deliveries``);
* while a message is held longer than half its lease it is touched (BullMQ's
  ``lockRenewTime = lockDuration / 2``), so slow work keeps its lease;
* it never holds more messages than it can finish inside one lease: the prefetch
  shrinks when handlers are slow (PyQS #76 is what happens otherwise);
* on shutdown every message taken but not finished is nacked with ``count=False``: no
  attempt is charged for work that never ran.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Deque, Dict, List, Optional, Tuple

from . import ops
from .errors import BeussError, ClientTimeout, ConnectionClosed, ServerError
from .message import AsyncMessage, Message, _Delivery
from .models import SettleResult

if TYPE_CHECKING:  # pragma: no cover
    from .aio import AsyncClient
    from .client import Client

log = logging.getLogger("beuss")

Backoff = Callable[[int], float]

# Seconds before leasing again after a non-fatal refusal (FULL).
_RETRY = 0.5


def exponential_backoff(attempt: int) -> float:
    """Delay before a failed message is retried: 1 s, 2 s, 4 s ... capped at 60 s."""
    return float(min(60.0, 2.0 ** max(0, attempt - 1)))


class _Pace:
    """How many messages may be held: ``prefetch``, cut down so that what is held can
    be handled within half a lease at the measured handler speed."""

    def __init__(self, lease: float, prefetch: int, workers: int) -> None:
        self.lease = lease
        self.prefetch = max(1, prefetch)
        self.workers = max(1, workers)
        self.avg = 0.0

    def record(self, seconds: float) -> None:
        # An exponential moving average follows a change of speed within ~10 messages.
        self.avg = seconds if self.avg == 0.0 else self.avg * 0.9 + seconds * 0.1

    def limit(self) -> int:
        if self.avg <= 0.0:
            return self.prefetch
        doable = int(self.lease / 2 / self.avg * self.workers)
        return max(1, min(self.prefetch, max(self.workers, doable)))


def _due(held: List[_Delivery], lease: float, now: float) -> List[_Delivery]:
    return [m for m in held if not m.settled and now - m.leased_at >= lease / 2]


class Consumer:
    """A blocking consumer of ``queue`` on a ``Client``'s connection.

    Iterate it; the loop body is the handler::

        with client.consume("jobs", lease=30) as jobs:
            for m in jobs:
                work(m.body)          # returns: acked when the next message is asked for

    If the body raises, leaving the ``with`` block nacks that message with backoff and
    gives back the prefetched rest (``count=False``); the exception goes on. To keep
    going after failures, use ``run(handler)``. ``stop()`` (from a signal handler or
    another thread) ends the iteration after the current message, within ``wait``
    seconds when parked. A lost connection is reopened (``reconnect``); messages held
    from before it come back ``STALE`` and are dropped."""

    def __init__(
        self,
        client: "Client",
        queue: str,
        *,
        lease: float = 30.0,
        prefetch: int = 10,
        wait: float = 1.0,
        max_deliveries: int = 0,
        backoff: Backoff = exponential_backoff,
        auto_touch: bool = True,
        meta: bool = False,
        reconnect: bool = True,
    ) -> None:
        self.client = client
        self.queue = queue
        self.lease = lease
        self.wait = wait
        self.max_deliveries = max_deliveries
        self.backoff = backoff
        self.auto_touch = auto_touch
        self.meta = meta
        self.reconnect = reconnect
        self._pace = _Pace(lease, prefetch, 1)
        self._buffer: Deque[Message] = collections.deque()
        self._current: Optional[Message] = None
        self._started = 0.0
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._toucher: Optional[threading.Thread] = None

    def __iter__(self) -> "Consumer":
        return self

    def __next__(self) -> Message:
        self._finish(None)
        while True:
            if self._stop.is_set():
                raise StopIteration  # what is still buffered, close() gives back
            with self._state:
                if self._buffer:
                    m = self._buffer.popleft()
                    self._current = m
                    self._started = time.monotonic()
                    return m
            self._fill()

    def _fill(self) -> None:
        try:
            got = self.client.lease(self.queue, wait=self.wait, max=self._pace.limit(), lease=self.lease,
                                    max_deliveries=self.max_deliveries, meta=self.meta)
        except (ConnectionClosed, ClientTimeout):
            if not self.reconnect or self._stop.is_set():
                raise
            self._reopen()
            return
        except ServerError as err:
            if self._stop.is_set() or (not self.reconnect and (err.fatal or not self.client.connected)):
                raise
            if err.fatal or not self.client.connected:
                # SHUTTING_DOWN (a restart) or another fatal error: the connection is
                # gone as surely as after a reset.
                log.warning("beuss consumer: connection ended by the server: %s", err)
                self._reopen()
            else:
                # FULL: leasing would pass twice the memory cap (protocol.md 13.11);
                # the messages held elsewhere must be acked first.
                log.warning("beuss consumer: lease refused (%s); retrying", err)
                self._stop.wait(_RETRY)
            return
        with self._state:
            self._buffer.extend(got)
        if got and self.auto_touch and self._toucher is None:
            self._toucher = threading.Thread(target=self._touch_loop, name="beuss-touch", daemon=True)
            self._toucher.start()

    def _reopen(self) -> None:
        delay = 0.1
        with self._state:
            self._buffer.clear()  # the server gave these back when the connection died
        while not self._stop.is_set():
            try:
                self.client.reconnect()
                return
            except (OSError, BeussError) as err:
                log.warning("beuss consumer: reconnect failed (%s); retrying in %.1f s", err, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _finish(self, failed: Optional[BaseException]) -> None:
        m, self._current = self._current, None
        if m is None:
            return
        self._pace.record(time.monotonic() - self._started)
        if m.settled:
            return
        try:
            if failed is None:
                m.ack()
            else:
                m.nack(delay=self.backoff(m.attempt))
        except BeussError as err:
            # The connection is gone (reset, timeout, SHUTTING_DOWN): the server gave
            # the message back; the next lease reconnects.
            log.warning("beuss consumer: could not settle message %d: %s", m.id, err)
        if m.result is not None and m.result is not SettleResult.OK:
            log.warning("beuss consumer: message %d settled too late (%s)", m.id, m.result.name)

    def _touch_loop(self) -> None:
        while not self._stop.wait(self.lease / 4):
            with self._state:
                held: List[_Delivery] = list(self._buffer)
                if self._current is not None:
                    held.append(self._current)
            due = _due(held, self.lease, time.monotonic())
            for start in range(0, len(due), 4096):
                chunk = due[start : start + 4096]
                try:
                    self.client.touch(self.queue, [m.pair for m in chunk], lease=self.lease)
                except BeussError as err:
                    log.warning("beuss consumer: touch failed: %s", err)
                    continue
                now = time.monotonic()
                for m in chunk:
                    m.leased_at = now

    def run(self, handler: Callable[[Message], Any]) -> None:
        """Call ``handler`` for every message until ``stop()``: ack on return, nack with
        backoff on an exception (logged, then the next message). Ends by ``close()``."""
        try:
            for m in self:
                try:
                    handler(m)
                except Exception as err:  # a failing job must not stop the worker
                    log.warning("beuss consumer: handler failed on message %d: %r", m.id, err)
                    self._finish(err)
        finally:
            self.close()

    def stop(self) -> None:
        """End the iteration after the current message (thread- and signal-safe)."""
        self._stop.set()

    def close(self, failed: Optional[BaseException] = None) -> None:
        """Stop; settle the current message (nack with backoff if ``failed``, else give
        it back uncharged as unfinished) and give back the prefetched rest uncharged."""
        self._stop.set()
        m, self._current = self._current, None
        with self._state:
            rest = [x for x in self._buffer if not x.settled]
            self._buffer.clear()
        try:
            if m is not None and not m.settled:
                if failed is not None:
                    m.nack(delay=self.backoff(m.attempt))
                else:
                    rest.insert(0, m)
            for start in range(0, len(rest), 4096):
                chunk = rest[start : start + 4096]
                for x in chunk:
                    x._claim()
                self.client.nack(self.queue, [x.pair for x in chunk], count=False)
        except BeussError as err:
            # A closed connection (or one the server ended) gave them back already.
            log.info("beuss consumer: give-back on close not sent: %s", err)
        if self._toucher is not None:
            self._toucher.join()
            self._toucher = None

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: object) -> None:
        self.close(exc if isinstance(exc, Exception) else None)


Handler = Callable[[AsyncMessage], Awaitable[Any]]


class AsyncConsumer:
    """An asyncio consumer of ``queue``, on a connection of its own (so its parked
    ``LEASE`` never holds back the other requests of the client it came from).

    Run handlers concurrently::

        async with client.consume("jobs", concurrency=16, handler_timeout=60) as jobs:
            await jobs.run(handle)          # until jobs.stop() or cancellation

    or iterate (one at a time; the loop body is the handler)::

        async with client.consume("jobs") as jobs:
            async for m in jobs:
                await work(m.body)

    ``concurrency`` handlers run at once; ``prefetch`` (default twice that) messages
    are held at most; a handler running past ``handler_timeout`` is cancelled and
    counts as failed. ``stop()`` ends it: running handlers get ``grace`` seconds to
    finish, then are cancelled; every unfinished message is nacked ``count=False``.
    Settles are sent without waiting for their reply (acks of one event-loop turn share
    one frame); their results land in ``message.result``."""

    def __init__(
        self,
        client: "AsyncClient",
        queue: str,
        *,
        lease: float = 30.0,
        concurrency: int = 1,
        prefetch: Optional[int] = None,
        handler_timeout: Optional[float] = None,
        wait: float = 1.0,
        max_deliveries: int = 0,
        backoff: Backoff = exponential_backoff,
        auto_touch: bool = True,
        meta: bool = False,
        grace: float = 5.0,
        reconnect: bool = True,
    ) -> None:
        self.client = client
        self.queue = queue
        self.lease = lease
        self.concurrency = max(1, concurrency)
        self.handler_timeout = handler_timeout
        self.wait = wait
        self.max_deliveries = max_deliveries
        self.backoff = backoff
        self.auto_touch = auto_touch
        self.meta = meta
        self.grace = grace
        self.reconnect = reconnect
        self._pace = _Pace(lease, prefetch or 2 * self.concurrency, self.concurrency)
        self._conn: Optional["AsyncClient"] = None
        self._ready: Deque[AsyncMessage] = collections.deque()
        self._held: Dict[Tuple[int, int], AsyncMessage] = {}
        self._wake: Optional["asyncio.Future[None]"] = None
        self._space = asyncio.Event()
        self._stopping = False
        self._feeder: Optional["asyncio.Task[None]"] = None
        self._closing: Optional["asyncio.Future[None]"] = None
        self._toucher: Optional["asyncio.Task[None]"] = None
        self._workers: List["asyncio.Task[None]"] = []
        self._current: Optional[AsyncMessage] = None
        self._started = 0.0

    # -- life cycle ---------------------------------------------------------------

    async def start(self) -> "AsyncConsumer":
        """Open the consumer's connection and start leasing."""
        if self._conn is None:
            from .aio import AsyncClient

            # Made here, in the running loop: Python 3.9's Event binds to a loop when made.
            self._space = asyncio.Event()
            self._conn = await AsyncClient((self.client.host, self.client.port), timeout=self.client.timeout,
                                           version=self.client.version_offered).connect()
            self._conn.on_close.append(self._space.set)
            self._feeder = asyncio.ensure_future(self._feed())
            self._feeder.add_done_callback(self._fed)
            if self.auto_touch:
                self._toucher = asyncio.ensure_future(self._touch_loop())
        return self

    def _fed(self, task: "asyncio.Task[None]") -> None:
        # The feeder only ends on stop(); if a bug ends it early, stop rather than
        # leave the workers waiting for messages that will never come.
        if not task.cancelled() and task.exception() is not None:
            log.error("beuss consumer: leasing failed: %r", task.exception())
            self.stop()

    def stop(self) -> None:
        """Stop leasing; ``run`` returns once running handlers are done (or cancelled
        after ``grace``) and iteration ends."""
        self._stopping = True
        self._space.set()
        self._notify()

    async def close(self, failed: Optional[BaseException] = None) -> None:
        """Stop, give every unfinished message back (``count=False``; the current one of
        an iteration nacked with backoff if ``failed``), close the connection. Calls
        after the first wait for it."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(failed))
        await asyncio.shield(self._closing)

    async def _close(self, failed: Optional[BaseException]) -> None:
        self.stop()
        if self._workers:
            _, running = await asyncio.wait(self._workers, timeout=self.grace)
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
        if self._toucher is not None:
            self._toucher.cancel()
            await asyncio.gather(self._toucher, return_exceptions=True)  # no task left behind
        if self._feeder is not None and not self._feeder.done():
            # Its parked LEASE comes back within ``wait``; what it brings is given back.
            try:
                await asyncio.wait_for(asyncio.shield(self._feeder), self.wait + self.client.timeout)
            except asyncio.TimeoutError:
                self._feeder.cancel()
        m, self._current = self._current, None
        if m is not None and not m.settled and failed is not None:
            self._nack(m, self.backoff(m.attempt), True)
        conn = self._conn
        if conn is not None and conn.connected:
            rest = [x for x in self._held.values() if not x.settled]
            waits: List["asyncio.Future[Any]"] = []
            for start in range(0, len(rest), 4096):
                chunk = rest[start : start + 4096]
                for x in chunk:
                    x._claim()
                waits.append(conn._submit(ops.nack(self.queue, [x.pair for x in chunk], count=False)))
            waits.append(conn._submit(ops.ping()))  # every settle before it is answered
            await asyncio.gather(*waits, return_exceptions=True)
            conn.close()
        self._held.clear()
        self._ready.clear()

    async def __aenter__(self) -> "AsyncConsumer":
        return await self.start()

    async def __aexit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: object) -> None:
        await self.close(exc if isinstance(exc, Exception) else None)

    # -- leasing ------------------------------------------------------------------

    def _notify(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _feed(self) -> None:
        conn = self._conn
        assert conn is not None
        while not self._stopping:
            if not conn.connected:
                await self._reopen(conn)
                continue
            limit = self._pace.limit()
            room = limit - len(self._held)
            # Lease in batches: wait for half the room unless nothing is held.
            if room <= 0 or (self._held and room < max(1, limit // 2)):
                self._space.clear()
                await self._space.wait()
                continue
            # Park (wait) only while nothing is held: a parked LEASE holds back the
            # replies of the settles sent behind it, which a handler may be awaiting.
            wait = 0.0 if self._held else self.wait
            try:
                got = await conn.lease(self.queue, wait=wait, max=room, lease=self.lease,
                                       max_deliveries=self.max_deliveries, meta=self.meta)
            except (ConnectionClosed, ClientTimeout) as err:
                if self._stopping:
                    return
                log.warning("beuss consumer: connection lost: %s", err)
                continue
            except ServerError as err:
                if self._stopping:
                    return
                if err.fatal or not conn.connected:
                    # SHUTTING_DOWN (a restart) or another fatal error: the loop's
                    # top reconnects, as after a reset.
                    log.warning("beuss consumer: connection ended by the server: %s", err)
                else:
                    # FULL: leasing would pass twice the memory cap (13.11).
                    log.warning("beuss consumer: lease refused (%s); retrying", err)
                    await asyncio.sleep(_RETRY)
                continue
            if self._stopping:
                if got:
                    for m in got:
                        m._claim()
                    conn._submit(ops.nack(self.queue, [m.pair for m in got], count=False))
                return
            if not got and self._held:
                # Nothing ready: lease again once a handler finishes (or park then).
                self._space.clear()
                if self._held:
                    await self._space.wait()
                continue
            for m in got:
                self._held[m.pair] = m
            self._ready.extend(got)
            self._notify()

    async def _reopen(self, conn: "AsyncClient") -> None:
        if not self.reconnect:
            log.error("beuss consumer: connection lost; stopping (reconnect=False)")
            self.stop()
            return
        # The server gave back everything this connection held; those pairs are stale.
        for m in self._ready:
            self._held.pop(m.pair, None)
        self._ready.clear()
        delay = 0.1
        while not self._stopping:
            try:
                await conn.reconnect()
                return
            except (OSError, BeussError) as err:
                log.warning("beuss consumer: reconnect failed (%s); retrying in %.1f s", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _take(self) -> Optional[AsyncMessage]:
        while not self._ready:
            if self._stopping:
                return None
            if self._wake is None:
                self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        if self._stopping:
            return None
        return self._ready.popleft()

    async def _touch_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        while not self._stopping:
            await asyncio.sleep(self.lease / 4)
            due = _due(list(self._held.values()), self.lease, time.monotonic())
            if not due or not conn.connected:
                continue
            now = time.monotonic()
            for start in range(0, len(due), 4096):
                chunk = due[start : start + 4096]
                for m in chunk:
                    m.leased_at = now
                conn._submit(ops.touch(self.queue, [m.pair for m in chunk], self.lease)).add_done_callback(_quiet)

    # -- settling -----------------------------------------------------------------

    def _release(self, m: AsyncMessage) -> None:
        self._held.pop(m.pair, None)
        self._space.set()

    def _ack(self, m: AsyncMessage) -> None:
        conn = self._conn
        if m._claim():
            if conn is None or not conn.connected:
                _lost(m)
                return
            conn._ack_soon(self.queue, m.pair).add_done_callback(lambda f: _settled(m, f))

    def _nack(self, m: AsyncMessage, delay: float, count: bool) -> None:
        conn = self._conn
        if m._claim():
            if conn is None or not conn.connected:
                _lost(m)
                return
            op = ops.nack(self.queue, [m.pair], delay=delay, count=count)
            conn._submit(op).add_done_callback(lambda f: _settled(m, f, first=True))

    async def _handle(self, m: AsyncMessage, handler: Handler) -> None:
        started = time.monotonic()
        try:
            if self.handler_timeout is None:
                await handler(m)
            else:
                await asyncio.wait_for(handler(m), self.handler_timeout)
        except asyncio.CancelledError:
            self._nack(m, 0.0, False)  # cut short by shutdown: not the message's fault
            raise
        except Exception as err:  # a failing job must not stop the worker
            log.warning("beuss consumer: handler failed on message %d: %r", m.id, err)
            self._nack(m, self.backoff(m.attempt), True)
        else:
            self._ack(m)
        finally:
            self._pace.record(time.monotonic() - started)
            self._release(m)

    async def _worker(self, handler: Handler) -> None:
        while True:
            m = await self._take()
            if m is None:
                return
            await self._handle(m, handler)

    async def run(self, handler: Handler) -> None:
        """Run ``handler`` on every message, ``concurrency`` at a time, until
        ``stop()``; cancelling ``run`` stops too. It ends by ``close()``: unfinished
        messages are given back and the consumer's connection is closed."""
        await self.start()
        self._workers = [asyncio.ensure_future(self._worker(handler)) for _ in range(self.concurrency)]
        try:
            # Workers cancelled by close() after ``grace`` are not an error of run().
            await asyncio.gather(*self._workers, return_exceptions=True)
        except asyncio.CancelledError:
            self.stop()
            for task in self._workers:
                task.cancel()
            raise
        finally:
            await self.close()

    # -- iteration ----------------------------------------------------------------

    def __aiter__(self) -> "AsyncConsumer":
        return self

    async def __anext__(self) -> AsyncMessage:
        m, self._current = self._current, None
        if m is not None:
            self._pace.record(time.monotonic() - self._started)
            if not m.settled:
                self._ack(m)
            self._release(m)
        await self.start()
        nxt = await self._take()
        if nxt is None:
            raise StopAsyncIteration
        self._current = nxt
        self._started = time.monotonic()
        return nxt


def _quiet(fut: "asyncio.Future[Any]") -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved, so asyncio does not log it as lost


def _lost(m: AsyncMessage) -> None:
    log.warning("beuss consumer: message %d not settled: no connection (the server gives it back)", m.id)


def _settled(m: AsyncMessage, fut: "asyncio.Future[Any]", first: bool = False) -> None:
    if fut.cancelled() or fut.exception() is not None:
        if not fut.cancelled():
            _lost(m)
        return
    result = fut.result()
    m.result = result[0] if first else result
    if m.result is not SettleResult.OK:
        log.warning("beuss consumer: message %d settled too late (%s)", m.id, m.result.name)
