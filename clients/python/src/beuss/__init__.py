"""beuss: a client for the beuss message-queue server.

``Client`` is blocking, ``AsyncClient`` is its asyncio twin with the same methods.
Both speak protocol version 6 (protocol.md): queues, leases, delays and priority,
dead letters, publish/bind/subscribe, request/reply, authentication, schedules, unique
messages, message expiry. No dependencies.
"""

from .aio import AsyncClient, AsyncPipeline, AsyncSubscription, connect_async
from .client import UNIX_PREFIX, Client, Pipeline, Subscription, connect, default_address, read_token_file
from .consumer import AsyncConsumer, Consumer, exponential_backoff
from .errors import (
    BadArgument,
    BadFlags,
    BadQueueName,
    BadSchedule,
    BadSubject,
    BeussError,
    ClientTimeout,
    ConnectionClosed,
    FrameTooLarge,
    Full,
    Limit,
    Malformed,
    NoResponders,
    AuthFailed,
    AuthRequired,
    Forbidden,
    ProtocolError,
    RequestTimeout,
    ServerError,
    ShuttingDown,
    Storage,
    TooFewCopies,
    TimedOut,
    TooManyConnections,
    UnknownOpcode,
    Unsupported,
    UnsupportedVersion,
)
from .message import AsyncMessage, Message
from .reconnect import with_reconnect, with_reconnect_async
from .models import (
    FEATURE_AUTH_REQUIRED,
    FEATURE_DURABLE,
    FEATURE_FANOUT,
    FEATURE_LEASES,
    FEATURE_PUT_OPTIONS,
    FEATURE_SCHEDULES,
    FEATURE_SYNCED,
    FEATURE_TTL,
    FEATURE_UNIQUE,
    Envelope,
    Event,
    HolderState,
    Published,
    PutResult,
    Scheduled,
    ScheduleInfo,
    ServerInfo,
    SettleResult,
    Stats,
)

__version__ = "0.1.0"

__all__ = [
    "AuthFailed", "AuthRequired", "FEATURE_AUTH_REQUIRED", "Forbidden", "TimedOut", "UNIX_PREFIX",
    "read_token_file",
    "BadSchedule", "FEATURE_SCHEDULES", "Scheduled", "ScheduleInfo",
    "FEATURE_UNIQUE", "HolderState", "FEATURE_TTL",
    "AsyncClient", "AsyncConsumer", "AsyncMessage", "AsyncPipeline", "AsyncSubscription",
    "BadArgument", "BadFlags", "BadQueueName", "BadSubject", "BeussError", "Client",
    "ClientTimeout", "ConnectionClosed", "Consumer", "Envelope", "Event", "FEATURE_DURABLE",
    "FEATURE_FANOUT", "FEATURE_LEASES", "FEATURE_PUT_OPTIONS", "FEATURE_SYNCED",
    "FrameTooLarge", "Full", "Limit", "Malformed", "Message", "NoResponders", "Pipeline",
    "ProtocolError", "Published", "PutResult", "RequestTimeout", "ServerError", "ServerInfo",
    "SettleResult", "ShuttingDown", "Stats", "Storage", "Subscription", "TooFewCopies",
    "TooManyConnections", "UnknownOpcode", "Unsupported", "UnsupportedVersion", "connect", "connect_async",
    "default_address", "exponential_backoff", "with_reconnect", "with_reconnect_async",
]
