"""Reconnect helpers: run an operation, reopen the connection if it broke.

What a broken connection means (protocol.md 2.8, 12): a request without a reply has an
unknown outcome. A ``put`` may have been stored; a ``get`` may have taken messages that
are now lost; an ``ack`` may or may not have been carried out. So by default the
operation is **not** run again: the connection is reopened for the next one and the
error is raised, and the caller decides. With ``replay=True`` the operation runs again
on the new connection: at-least-once, duplicates possible, which is what a producer
that must not lose a message usually wants. Messages leased before the break settle as
``STALE`` afterwards (the server gave them back), so a replayed ``ack`` never acks
another delivery.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Awaitable, Callable, TypeVar

from .errors import BeussError, ClientTimeout, ConnectionClosed, ShuttingDown, TooManyConnections

if TYPE_CHECKING:  # pragma: no cover
    from .aio import AsyncClient
    from .client import Client

T = TypeVar("T")

#: What ends a connection: a reset or timeout, and the two errors the server sends of
#: its own accord (protocol.md 2.8), after which the request was not carried out.
_BROKEN = (ConnectionClosed, ClientTimeout, ShuttingDown, TooManyConnections)


def with_reconnect(
    client: "Client",
    operation: Callable[["Client"], T],
    *,
    replay: bool = False,
    attempts: int = 5,
    delay: float = 0.1,
) -> T:
    """Run ``operation(client)``; if the connection breaks (``ConnectionClosed``,
    ``ClientTimeout``, or the server's ``ShuttingDown``/``TooManyConnections``), reconnect (up to ``attempts`` tries, ``delay`` doubling) and,
    only with ``replay``, run it again. Without ``replay`` the error is raised once the
    client is connected again."""
    tries = 0
    while True:
        if not client.connected:
            _reopen(client, attempts, delay)
        try:
            return operation(client)
        except _BROKEN:
            tries += 1
            _reopen(client, attempts, delay)
            if not replay or tries >= attempts:
                raise


def _reopen(client: "Client", attempts: int, delay: float) -> None:
    for attempt in range(attempts):
        try:
            client.reconnect()
            return
        except (OSError, BeussError):
            if attempt == attempts - 1:
                raise
            time.sleep(delay * 2**attempt)


async def with_reconnect_async(
    client: "AsyncClient",
    operation: Callable[["AsyncClient"], Awaitable[T]],
    *,
    replay: bool = False,
    attempts: int = 5,
    delay: float = 0.1,
) -> T:
    """The asyncio form of ``with_reconnect``."""
    tries = 0
    while True:
        if not client.connected:
            await _reopen_async(client, attempts, delay)
        try:
            return await operation(client)
        except _BROKEN:
            tries += 1
            await _reopen_async(client, attempts, delay)
            if not replay or tries >= attempts:
                raise


async def _reopen_async(client: "AsyncClient", attempts: int, delay: float) -> None:
    for attempt in range(attempts):
        try:
            await client.reconnect()
            return
        except (OSError, BeussError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(delay * 2**attempt)
