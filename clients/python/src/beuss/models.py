"""Plain values the server's replies decode into."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional

#: Feature bits of the ``HELLO`` reply (protocol.md 13.1).
FEATURE_LEASES = 0x01
FEATURE_PUT_OPTIONS = 0x02
FEATURE_DURABLE = 0x04
FEATURE_SYNCED = 0x08
FEATURE_FANOUT = 0x10
#: The server requires ``AUTH`` before anything but HELLO, PING and QUIT (16.3).
FEATURE_AUTH_REQUIRED = 0x20
#: Schedules: ``SCHEDULE``, ``UNSCHEDULE``, ``PAUSE_SCHEDULE``, ``SCHEDULES`` (17.1);
#: set only when the negotiated version is 5 or more.
FEATURE_SCHEDULES = 0x40
#: Unique messages: ``PUT`` with a unique key, ``DUPLICATE``, ``REPLACED`` (18.1); set
#: only when the negotiated version is 6 or more.
FEATURE_UNIQUE = 0x80
#: Message expiry: ``PUT`` with a time to live (19.1); set only when the negotiated
#: version is 6 or more.
FEATURE_TTL = 0x100


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


class HolderState(str, enum.Enum):
    """What became of the message holding a unique key, as a ``DUPLICATE`` reply
    says (protocol.md 18.3). A ``str`` enum, so ``result.duplicate == "in_flight"``
    works as well as ``is HolderState.IN_FLIGHT``."""

    #: Ready to be taken (state 1).
    READY = "ready"
    #: Delayed: ready once its delay has passed (state 2).
    DELAYED = "delayed"
    #: Leased and not settled yet (state 3); it is never replaced.
    IN_FLIGHT = "in_flight"
    #: It left its queue, within the window of its key (state 4).
    GONE = "gone"

    @classmethod
    def from_wire(cls, state: int) -> "Optional[HolderState]":
        """The state of a ``DUPLICATE`` reply's ``state`` byte; ``None`` for a value
        protocol.md does not define."""
        return _HOLDER_STATES.get(state)


_HOLDER_STATES = {1: HolderState.READY, 2: HolderState.DELAYED, 3: HolderState.IN_FLIGHT, 4: HolderState.GONE}


@dataclass(frozen=True)
class PutResult:
    """The reply to one ``PUT``: the message id (``None`` from a version-1 server) and,
    when the payload was cut to the server's limit, both lengths.

    A ``PUT`` with a unique key (protocol.md 18) may store nothing: then ``duplicate``
    says what the message holding the key is doing and ``id`` is that message's; or
    it may replace a waiting message: then ``replaced`` is true, ``id`` is the message
    replaced (it keeps its id) and both lengths are set (equal when not cut)."""

    id: Optional[int] = None
    original_len: Optional[int] = None
    stored_len: Optional[int] = None
    #: ``None`` unless the key was held or remembered: nothing was stored.
    duplicate: Optional[HolderState] = None
    #: Whether this payload replaced the waiting message that held the key.
    replaced: bool = False

    @property
    def truncated(self) -> bool:
        """Whether the server kept only the first ``stored_len`` bytes."""
        # A REPLACED reply carries both lengths even when they are equal.
        return self.stored_len is not None and self.original_len != self.stored_len

    @property
    def created(self) -> bool:
        """Whether a new message was stored (neither a duplicate nor a replace)."""
        return self.duplicate is None and not self.replaced


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


class Scheduled(NamedTuple):
    """The ``SCHEDULED`` reply (protocol.md 17.3); a tuple, so
    ``created, next_run_ms = client.schedule(...)`` works."""

    #: True for a new schedule; False when one of that name was replaced.
    created: bool
    #: Its first run time, milliseconds since 1970-01-01T00:00:00Z (wall clock, UTC).
    next_run_ms: int


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule as ``schedules()`` lists it (protocol.md 17.6). Times are
    milliseconds since 1970-01-01T00:00:00Z; the figures count from when the
    schedule was defined or last replaced."""

    #: Its name.
    name: str
    #: When it runs, as it was given (``"0 3 * * *"``, ``"@every 10s"``, ...).
    spec: str
    #: True when ``target`` is a subject it publishes to, False for a queue.
    to_subject: bool
    #: The queue or subject its messages go to.
    target: str
    #: The priority of its messages, 0 (first) to 9.
    priority: int
    #: Whether it is paused (it does not run until resumed).
    paused: bool
    #: Its next run time; 0 while paused or when no run is left.
    next_run_ms: int
    #: Its last run time; 0 before the first run.
    last_run_ms: int
    #: Runs so far, refused ones included.
    runs: int
    #: Late runs that stood for missed run times (protocol.md 17.2).
    misfires: int
    #: Runs whose message the server refused (its memory cap, a queue's cap).
    failures: int
    #: Bytes of its payload (the payload itself is not listed).
    payload_len: int

    @property
    def queue(self) -> Optional[str]:
        """The queue its messages are put on, or ``None`` when it publishes."""
        return None if self.to_subject else self.target

    @property
    def subject(self) -> Optional[str]:
        """The subject its messages are published to, or ``None`` for a queue."""
        return self.target if self.to_subject else None
