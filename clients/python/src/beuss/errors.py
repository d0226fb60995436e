"""Exceptions: one class per server error code (protocol.md sections 5, 13.12, 15.13,
16, 17.9), plus the client-side failures (connection lost, timeouts, bad arguments)."""

from __future__ import annotations

from typing import Dict, Type


class BeussError(Exception):
    """Base class of every exception this package raises."""


class ConnectionClosed(BeussError):
    """The connection ended (or was never made); requests without a reply have an
    unknown outcome (protocol.md 12, "Reconnecting")."""


class ClientTimeout(BeussError):
    """No reply came within the client's own socket timeout.

    The connection is closed when this is raised, because a reply that comes later
    would be matched to the wrong request."""


class RequestTimeout(BeussError):
    """A ``request()`` got no reply within its ``timeout`` (the server answered
    ``EMPTY``); the connection stays usable."""


class ProtocolError(BeussError):
    """The server sent a frame this client cannot make sense of; the connection is
    closed, since nothing after it can be trusted."""


class Unsupported(BeussError):
    """The protocol version negotiated by ``HELLO`` lacks this request (protocol.md
    9.1: a client uses only the features of the version in the reply); nothing was
    sent and the connection is fine."""


class ServerError(BeussError):
    """An ``ERROR`` frame from the server.

    ``code`` is the protocol error code, ``fatal`` whether the server closes the
    connection after it, ``text`` the server's explanation (for people, never parse
    it). Codes this client does not know arrive as this class itself."""

    #: The protocol error code the subclass stands for (0 for the base class).
    CODE = 0

    def __init__(self, code: int, fatal: bool, text: str) -> None:
        super().__init__(f"{type(self).__name__} (code {code}{', fatal' if fatal else ''}): {text}")
        self.code = code
        self.fatal = fatal
        self.text = text


class Malformed(ServerError):
    """Code 1: a request's fields did not add up to its length (a client bug)."""

    CODE = 1


class UnknownOpcode(ServerError):
    """Code 2: the server does not know the opcode (an older server)."""

    CODE = 2


class BadQueueName(ServerError):
    """Code 3: the queue name is empty or not valid UTF-8."""

    CODE = 3


class FrameTooLarge(ServerError):
    """Code 4: a control frame was over its size limit."""

    CODE = 4


class BadFlags(ServerError):
    """Code 5: a flag bit the server does not allow on that request."""

    CODE = 5


class BadArgument(ServerError):
    """Code 6: a field has a value the request does not allow."""

    CODE = 6


class Full(ServerError):
    """Code 7, not fatal: the server's memory cap refused the change; retry later."""

    CODE = 7


class TooManyConnections(ServerError):
    """Code 8: the server was full when it accepted the connection."""

    CODE = 8


class UnsupportedVersion(ServerError):
    """Code 9: the server refused the protocol version."""

    CODE = 9


class ShuttingDown(ServerError):
    """Code 10: the server is stopping; requests without a reply were not carried out."""

    CODE = 10


class Storage(ServerError):
    """Code 11: the server's journal could not be written (fatal or not, see ``fatal``)."""

    CODE = 11


class BadSubject(ServerError):
    """Code 12: a subject or pattern breaks the rules of protocol.md 15.1."""

    CODE = 12


class NoResponders(ServerError):
    """Code 13, not fatal: a ``request()`` matched no queue and no subscription."""

    CODE = 13


class TooFewCopies(ServerError):
    """Code 14, not fatal: a confirmed ``publish()`` matched fewer queues than asked."""

    CODE = 14


class Limit(ServerError):
    """Code 15, not fatal: a per-connection limit (1024 subscriptions) was reached."""

    CODE = 15


class AuthRequired(ServerError):
    """Code 16, fatal: the server requires ``AUTH`` before this request (16.1)."""

    CODE = 16


class AuthFailed(ServerError):
    """Code 17, fatal: the token is not one of the server's (16.2)."""

    CODE = 17


class Forbidden(ServerError):
    """Code 18, not fatal: the connection's token is read-only (16.4)."""

    CODE = 18


class TimedOut(ServerError):
    """Code 19, fatal, unprompted: a partial request, a missing ``AUTH`` or an idle
    connection ran out of time on the server (16.5)."""

    CODE = 19


class BadSchedule(ServerError):
    """Code 20, not fatal: a ``schedule()`` whose spec the server cannot read (a
    minute of 61, a named time zone, ...) or whose payload is over the server's
    message size; ``text`` says which. Nothing was changed (17.3)."""

    CODE = 20


#: Error code -> exception class, for every code protocol.md defines.
ERROR_CLASSES: Dict[int, Type[ServerError]] = {
    cls.CODE: cls
    for cls in (
        Malformed,
        UnknownOpcode,
        BadQueueName,
        FrameTooLarge,
        BadFlags,
        BadArgument,
        Full,
        TooManyConnections,
        UnsupportedVersion,
        ShuttingDown,
        Storage,
        BadSubject,
        NoResponders,
        TooFewCopies,
        Limit,
        AuthRequired,
        AuthFailed,
        Forbidden,
        TimedOut,
        BadSchedule,
    )
}


def server_error(code: int, fatal: bool, text: str) -> ServerError:
    """Builds the exception for an ``ERROR`` frame; unknown codes get ``ServerError``."""
    return ERROR_CLASSES.get(code, ServerError)(code, fatal, text)
