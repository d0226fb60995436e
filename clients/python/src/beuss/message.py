"""Leased messages: the data plus the settle methods (ack, nack, touch).

A message remembers that it was settled: a second ``ack``/``nack`` sends nothing and
returns ``False`` (as nats.js does), so a consumer and a handler that both settle cannot
settle twice or settle another delivery.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Optional

from .models import SettleResult

if TYPE_CHECKING:  # pragma: no cover - imports for the type checker only
    from .aio import AsyncClient
    from .client import Client


class _Delivery:
    __slots__ = ("queue", "id", "attempt", "body", "subject", "reply_to", "leased_at", "result", "_done")

    def __init__(
        self,
        queue: str,
        id: int,
        attempt: int,
        body: bytes,
        subject: Optional[str] = None,
        reply_to: Optional[int] = None,
    ) -> None:
        self.queue = queue
        self.id = id
        self.attempt = attempt
        self.body = body
        self.subject = subject
        self.reply_to = reply_to
        #: ``time.monotonic()`` when the lease was read or last extended.
        self.leased_at = time.monotonic()
        #: The server's answer to the settle request, once there is one.
        self.result: Optional[SettleResult] = None
        self._done = False

    @property
    def pair(self) -> "tuple[int, int]":
        """The (id, attempt) pair that names this lease."""
        return (self.id, self.attempt)

    @property
    def settled(self) -> bool:
        """Whether ``ack`` or ``nack`` was called already."""
        return self._done

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def _claim(self) -> bool:
        if self._done:
            return False
        self._done = True
        return True

    def _record(self, result: SettleResult) -> bool:
        self.result = result
        return result is SettleResult.OK

    def __repr__(self) -> str:
        return f"{type(self).__name__}(queue={self.queue!r}, id={self.id}, attempt={self.attempt}, body={self.body[:32]!r})"


class Message(_Delivery):
    """A message leased through a blocking ``Client``.

    ``ack()``, ``nack()`` and ``touch()`` return ``True`` when the server answered
    ``OK``; ``False`` when it said ``STALE``/``NOT_FOUND`` (the lease ended, e.g. after
    a reconnect) or when the message was settled already (then nothing is sent)."""

    __slots__ = ("client",)

    def __init__(self, client: "Client", queue: str, id: int, attempt: int, body: bytes,
                 subject: Optional[str] = None, reply_to: Optional[int] = None) -> None:
        super().__init__(queue, id, attempt, body, subject, reply_to)
        self.client = client

    def ack(self) -> bool:
        """Acknowledge: the server deletes the message."""
        if not self._claim():
            return False
        return self._record(self.client.ack(self.queue, [self.pair])[0])

    def nack(self, delay: float = 0.0, dead: bool = False, count: bool = True) -> bool:
        """Give it back: ready again after ``delay`` seconds, or dead-lettered with
        ``dead``; ``count=False`` does not charge the attempt (for work not started)."""
        if not self._claim():
            return False
        return self._record(self.client.nack(self.queue, [self.pair], delay=delay, dead=dead, count=count)[0])

    def touch(self, lease: Optional[float] = None) -> bool:
        """Extend the lease (to ``lease`` seconds from now; ``None`` = as first given)."""
        if self._done:
            return False
        self.leased_at = time.monotonic()
        return self.client.touch(self.queue, [self.pair], lease=lease)[0] is SettleResult.OK

    def reply(self, body: bytes) -> bool:
        """Answer the request this message is a copy of (it needs ``reply_to``, so lease
        with ``meta=True``); True if the requester got it."""
        if self.reply_to is None:
            raise ValueError("this message carries no reply address (lease with meta=True)")
        return self.client.reply(self.reply_to, body)


class AsyncMessage(_Delivery):
    """A message leased through an ``AsyncClient``: the same methods as ``Message``,
    as coroutines. Acks issued in the same event-loop turn share one ``ACK`` frame."""

    __slots__ = ("client",)

    def __init__(self, client: "AsyncClient", queue: str, id: int, attempt: int, body: bytes,
                 subject: Optional[str] = None, reply_to: Optional[int] = None) -> None:
        super().__init__(queue, id, attempt, body, subject, reply_to)
        self.client = client

    async def ack(self) -> bool:
        """Acknowledge: the server deletes the message."""
        if not self._claim():
            return False
        return self._record(await self.client._ack_soon(self.queue, self.pair))

    async def nack(self, delay: float = 0.0, dead: bool = False, count: bool = True) -> bool:
        """Give it back (see ``Message.nack``)."""
        if not self._claim():
            return False
        return self._record((await self.client.nack(self.queue, [self.pair], delay=delay, dead=dead, count=count))[0])

    async def touch(self, lease: Optional[float] = None) -> bool:
        """Extend the lease (see ``Message.touch``)."""
        if self._done:
            return False
        self.leased_at = time.monotonic()
        return (await self.client.touch(self.queue, [self.pair], lease=lease))[0] is SettleResult.OK

    async def reply(self, body: bytes) -> bool:
        """Answer the request this message is a copy of (see ``Message.reply``)."""
        if self.reply_to is None:
            raise ValueError("this message carries no reply address (lease with meta=True)")
        return await self.client.reply(self.reply_to, body)
