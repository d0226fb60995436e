"""Plain values the server's replies decode into."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

#: Feature bits of the ``HELLO`` reply (protocol.md 13.1).
FEATURE_LEASES = 0x01
FEATURE_PUT_OPTIONS = 0x02
FEATURE_DURABLE = 0x04
FEATURE_SYNCED = 0x08
FEATURE_FANOUT = 0x10
#: The server requires ``AUTH`` before anything but HELLO, PING and QUIT (16.3).
FEATURE_AUTH_REQUIRED = 0x20


@dataclass(frozen=True)
class ServerInfo:
    """What the server said in its ``HELLO`` reply (protocol.md 4.2, 13.1).

    The version-2 fields are 0 when the server negotiated version 1."""

    version: int
    max_message_size: int
    server: str
    features: int = 0
    default_lease_ms: int = 0
    max_lease_ms: int = 0
    max_delay_ms: int = 0
    max_deliveries: int = 0

    def has(self, feature: int) -> bool:
        """Whether every bit of ``feature`` (a ``FEATURE_*`` constant) is set."""
        return self.features & feature == feature


@dataclass(frozen=True)
class PutResult:
    """The reply to one ``PUT``: the message id (``None`` from a version-1 server) and,
    when the payload was cut to the server's limit, both lengths."""

    id: Optional[int] = None
    original_len: Optional[int] = None
    stored_len: Optional[int] = None

    @property
    def truncated(self) -> bool:
        """Whether the server kept only the first ``stored_len`` bytes."""
        return self.stored_len is not None


@dataclass(frozen=True)
class Stats:
    """A ``STATS`` reply: server figures and per-queue figures, looked up by name
    (protocol.md 6; names a server adds later simply appear in the maps)."""

    server: Dict[str, int] = field(default_factory=dict)
    queues: Dict[str, Dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """The ``PUBLISHED`` reply (protocol.md 15.4): copies stored, events queued,
    lengths, and with ``confirm`` the copies confirmed and failed."""

    queues: int
    subscribers: int
    original_len: int
    stored_len: int
    acked: int
    failed: int

    @property
    def truncated(self) -> bool:
        """Whether the payload was cut to the server's message size limit."""
        return self.stored_len < self.original_len


class SettleResult(enum.IntEnum):
    """One pair's result in a ``SETTLED`` reply (protocol.md 13.6)."""

    OK = 0
    STALE = 1
    NOT_FOUND = 2


@dataclass(frozen=True)
class Meta:
    """Decoded metadata entries (protocol.md 15.7); absent tags are ``None``/0."""

    subject: Optional[str] = None
    reply_to: Optional[int] = None
    dropped: int = 0


@dataclass(frozen=True)
class Envelope:
    """A message seen by ``PEEK`` or by a ``WITH_META`` ``GET``: it settles nothing
    (a ``GET`` already removed it, a ``PEEK`` left it where it was)."""

    id: int
    attempt: int
    body: bytes
    subject: Optional[str] = None
    reply_to: Optional[int] = None

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Event:
    """A message pushed to a subscription (protocol.md 15.6).

    ``dropped`` counts this subscription's events the server dropped just before it
    because the client read too slowly; ``reply_to`` is set when it is a request."""

    sid: int
    body: bytes
    subject: str
    reply_to: Optional[int] = None
    dropped: int = 0

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)
