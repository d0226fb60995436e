//! The beuss wire protocol: frame layout, opcodes, status and error codes, and the
//! codec that turns bytes into [`Request`]s and [`Response`]s and back.
//!
//! This module does no I/O and never panics on input: every decoder checks a length
//! before it reads or allocates, and "not enough bytes yet" is `Ok(None)`, kept apart
//! from a real [`ProtocolError`]. `protocol.md` at the repository root is the contract
//! this code implements; change both together.
//!
//! Every frame, in both directions, is a big-endian `u32` length (the number of bytes
//! that follow it) and then a one-byte opcode or status. Requests carry one more byte of
//! flags, reserved for later versions and zero in version 1.
//!
//! Each version's additions live in a file of their own, hooked into the decoders and
//! `Request::encode` here: `leases` (version 2), `fanout` (version 3) and `auth`
//! (version 4).

use std::fmt;

use bytes::BufMut;

/// The protocol version this crate speaks (sent and checked by `HELLO`).
pub const PROTOCOL_VERSION: u16 = 6;

/// Longest queue name in bytes. The name's length travels in one byte, so a longer
/// name cannot even be expressed.
pub const MAX_QUEUE_NAME: usize = 255;

/// Largest declared length of any request frame other than `PUT`. A `PUT`'s payload is
/// streamed and truncated instead, so it has no such cap below `u32::MAX`.
pub const MAX_CONTROL_FRAME: u32 = 1024;

/// `GET` wait value meaning "wait until a message arrives, however long".
pub const WAIT_FOREVER: u32 = u32::MAX;

/// A `MESSAGES` reply's payloads total at most this many bytes, so a batch cannot
/// build an unbounded reply; a reply always carries at least one message, so one
/// larger than this comes alone.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// Bytes of the length prefix that starts every frame.
pub const LEN_PREFIX: usize = 4;

/// Bytes before a request's body: length prefix, opcode, flags.
pub const REQUEST_HEADER: usize = 6;

/// Bytes before a response's body: length prefix, status.
pub const RESPONSE_HEADER: usize = 5;

/// Request opcodes: the byte after a request's length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Opcode {
    /// Exchange protocol versions and limits.
    Hello = 0x01,
    /// Liveness check.
    Ping = 0x02,
    /// Ask the server to answer `BYE` and close the connection.
    Quit = 0x03,
    /// Append a message to a queue.
    Put = 0x10,
    /// Take up to N messages from a queue, optionally waiting for one.
    Get = 0x11,
    /// Drop every message held in a queue.
    Purge = 0x12,
    /// Take messages on lease (version 2).
    Lease = 0x13,
    /// Delete leased messages (version 2).
    Ack = 0x14,
    /// Give leased messages back, delay them or dead-letter them (version 2).
    Nack = 0x15,
    /// Extend leases (version 2).
    Touch = 0x16,
    /// Look at ready messages without taking them (version 2).
    Peek = 0x17,
    /// Move ready messages to another queue (version 2).
    Move = 0x18,
    /// Server-wide and per-queue figures.
    Stats = 0x20,
    /// Bind a pattern onto a queue (version 3).
    Bind = 0x30,
    /// Remove a binding (version 3).
    Unbind = 0x31,
    /// Publish to a subject: a copy to every bound queue, an event to every
    /// subscription (version 3).
    Publish = 0x32,
    /// Subscribe the connection to a pattern (version 3).
    Subscribe = 0x33,
    /// End a subscription (version 3).
    Unsubscribe = 0x34,
    /// Publish a request and wait for the first reply (version 3).
    Req = 0x35,
    /// Answer a request by its reply address (version 3).
    Reply = 0x36,
    /// Present a token (version 4).
    Auth = 0x40,
    /// Define or replace a schedule (version 5).
    Schedule = 0x50,
    /// Delete a schedule (version 5).
    Unschedule = 0x51,
    /// Pause or resume a schedule (version 5).
    PauseSchedule = 0x52,
    /// List schedules with their run figures (version 5).
    Schedules = 0x53,
}

impl Opcode {
    /// Largest declared `length` a frame of this opcode may have (`PUT`, `PUB`, `REQ`
    /// and `REPLY` stream their payload and have none below `u32::MAX`).
    pub fn max_frame(self) -> u32 {
        match self {
            Opcode::Put | Opcode::Publish | Opcode::Req | Opcode::Reply => u32::MAX,
            Opcode::Ack | Opcode::Nack | Opcode::Touch => MAX_SETTLE_FRAME,
            Opcode::Schedule => MAX_SCHEDULE_FRAME,
            _ => MAX_CONTROL_FRAME,
        }
    }
}

impl TryFrom<u8> for Opcode {
    type Error = ProtocolError;

    fn try_from(byte: u8) -> Result<Self, ProtocolError> {
        Ok(match byte {
            0x01 => Opcode::Hello,
            0x02 => Opcode::Ping,
            0x03 => Opcode::Quit,
            0x10 => Opcode::Put,
            0x11 => Opcode::Get,
            0x12 => Opcode::Purge,
            0x13 => Opcode::Lease,
            0x14 => Opcode::Ack,
            0x15 => Opcode::Nack,
            0x16 => Opcode::Touch,
            0x17 => Opcode::Peek,
            0x18 => Opcode::Move,
            0x20 => Opcode::Stats,
            0x30 => Opcode::Bind,
            0x31 => Opcode::Unbind,
            0x32 => Opcode::Publish,
            0x33 => Opcode::Subscribe,
            0x34 => Opcode::Unsubscribe,
            0x35 => Opcode::Req,
            0x36 => Opcode::Reply,
            0x40 => Opcode::Auth,
            0x50 => Opcode::Schedule,
            0x51 => Opcode::Unschedule,
            0x52 => Opcode::PauseSchedule,
            0x53 => Opcode::Schedules,
            other => return Err(ProtocolError::UnknownOpcode(other)),
        })
    }
}

/// Response statuses: the byte after a response's length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Status {
    /// Reply to `PING`.
    Pong = 0x01,
    /// Reply to `HELLO`: version, limits, server name.
    Hello = 0x02,
    /// Reply to `QUIT`; the server closes the connection after it.
    Bye = 0x03,
    /// `AUTH` accepted, with the access it gives (version 4).
    Authed = 0x04,
    /// `PUT` stored the whole payload.
    Stored = 0x10,
    /// `PUT` stored the payload cut to the message size limit.
    Truncated = 0x11,
    /// `GET` returns one or more messages.
    Messages = 0x12,
    /// `GET` found no message (at once, or when its wait ran out).
    Empty = 0x13,
    /// `PURGE` dropped this many messages.
    Purged = 0x14,
    /// `LEASE` returns one or more messages with ids and attempts (version 2).
    Leased = 0x15,
    /// One result per pair of an `ACK`, `NACK` or `TOUCH` (version 2).
    Settled = 0x16,
    /// `PEEK` returns copies of ready messages (version 2).
    Peeked = 0x17,
    /// `MOVE` moved this many messages (version 2).
    Moved = 0x18,
    /// Reply to `STATS`.
    Stats = 0x20,
    /// `BIND` done: whether the binding is new (version 3).
    Bound = 0x30,
    /// `UNBIND` done: whether there was such a binding (version 3).
    Unbound = 0x31,
    /// `PUB` done: copies made, events queued, confirmations (version 3).
    Published = 0x32,
    /// `SUB` done: the subscription's id (version 3).
    Subscribed = 0x33,
    /// `UNSUB` done: whether there was such a subscription (version 3).
    Unsubscribed = 0x34,
    /// Reply to `REQ`: the first reply's payload (version 3).
    Reply = 0x35,
    /// `REPLY` done: whether a requester got it (version 3).
    Replied = 0x36,
    /// `GET`, `LEASE` or `PEEK` with `WITH_META`: messages with ids, attempts and
    /// metadata (version 3).
    Envelopes = 0x37,
    /// A message pushed to a subscription: sent by the server of its own accord, not
    /// a reply (version 3).
    Event = 0x3F,
    /// `SCHEDULE` done: whether it is new, and its next run time (version 5).
    Scheduled = 0x50,
    /// `UNSCHEDULE` done: whether there was such a schedule (version 5).
    Unscheduled = 0x51,
    /// `PAUSE_SCHEDULE` done: whether there was such a schedule, its next run
    /// (version 5).
    SchedulePaused = 0x52,
    /// Reply to `SCHEDULES` (version 5).
    ScheduleList = 0x53,
    /// A unique `PUT` was not stored: another message holds its key (version 6).
    Duplicate = 0x54,
    /// A unique `PUT` replaced the waiting message that holds its key (version 6).
    Replaced = 0x55,
    /// The request failed; the body says why and whether the connection closes.
    Error = 0x7F,
}

impl TryFrom<u8> for Status {
    type Error = ProtocolError;

    fn try_from(byte: u8) -> Result<Self, ProtocolError> {
        Ok(match byte {
            0x01 => Status::Pong,
            0x02 => Status::Hello,
            0x03 => Status::Bye,
            0x04 => Status::Authed,
            0x10 => Status::Stored,
            0x11 => Status::Truncated,
            0x12 => Status::Messages,
            0x13 => Status::Empty,
            0x14 => Status::Purged,
            0x15 => Status::Leased,
            0x16 => Status::Settled,
            0x17 => Status::Peeked,
            0x18 => Status::Moved,
            0x20 => Status::Stats,
            0x30 => Status::Bound,
            0x31 => Status::Unbound,
            0x32 => Status::Published,
            0x33 => Status::Subscribed,
            0x34 => Status::Unsubscribed,
            0x35 => Status::Reply,
            0x36 => Status::Replied,
            0x37 => Status::Envelopes,
            0x3F => Status::Event,
            0x50 => Status::Scheduled,
            0x51 => Status::Unscheduled,
            0x52 => Status::SchedulePaused,
            0x53 => Status::ScheduleList,
            0x54 => Status::Duplicate,
            0x55 => Status::Replaced,
            0x7F => Status::Error,
            other => return Err(ProtocolError::UnknownStatus(other)),
        })
    }
}

/// Error codes carried in an `ERROR` reply. Codes are stable: new ones are only added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Lengths inside the frame do not add up (fatal).
    Malformed = 1,
    /// The opcode is not one this server knows (fatal).
    UnknownOpcode = 2,
    /// The queue name is empty or not UTF-8 (fatal). Names over 255 bytes cannot be
    /// expressed: the length travels in one byte.
    BadQueueName = 3,
    /// The declared frame length is over the cap (fatal).
    FrameTooLarge = 4,
    /// A reserved flag bit is set (fatal).
    BadFlags = 5,
    /// A field has a value the operation does not allow (fatal).
    BadArgument = 6,
    /// The server's memory cap would be passed; nothing was stored (not fatal).
    Full = 7,
    /// The server is at its connection cap (fatal, sent instead of any reply).
    TooManyConnections = 8,
    /// `HELLO` asked for a version this server cannot speak (fatal).
    UnsupportedVersion = 9,
    /// The server is stopping; a parked `GET` gets this (fatal).
    ShuttingDown = 10,
    /// The journal (`BDATADIR`) could not be written or synced: nothing was changed
    /// (not fatal), or, sent instead of replies that waited for the disk, their
    /// changes may be lost (fatal). See protocol.md 14.
    Storage = 11,
    /// A subject or pattern breaks the rules of protocol.md 15.1 (fatal).
    BadSubject = 12,
    /// A `REQ` matched no queue and no subscription; nothing was stored (not fatal).
    NoResponders = 13,
    /// A `PUB` asked for more confirmations than it would make copies; nothing was
    /// stored or pushed (not fatal).
    TooFewCopies = 14,
    /// A per-connection limit was reached, such as 1024 subscriptions (not fatal).
    Limit = 15,
    /// The server requires `AUTH` before this request (fatal; version 4).
    AuthRequired = 16,
    /// `AUTH` with a token the server does not have (fatal; version 4).
    AuthFailed = 17,
    /// The connection's token is read-only (not fatal; version 4).
    Forbidden = 18,
    /// The connection ran out of time: a partial frame, no `AUTH`, or idle (fatal,
    /// unprompted; version 4).
    Timeout = 19,
    /// A `SCHEDULE` whose expression cannot be read, or whose payload is longer than
    /// `BMAXMESSAGESIZE`; nothing done (not fatal; version 5).
    BadSchedule = 20,
}

impl ErrorCode {
    /// Maps a wire value back to a code; `None` for codes newer than this crate.
    pub fn from_u16(value: u16) -> Option<ErrorCode> {
        Some(match value {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::UnknownOpcode,
            3 => ErrorCode::BadQueueName,
            4 => ErrorCode::FrameTooLarge,
            5 => ErrorCode::BadFlags,
            6 => ErrorCode::BadArgument,
            7 => ErrorCode::Full,
            8 => ErrorCode::TooManyConnections,
            9 => ErrorCode::UnsupportedVersion,
            10 => ErrorCode::ShuttingDown,
            11 => ErrorCode::Storage,
            12 => ErrorCode::BadSubject,
            13 => ErrorCode::NoResponders,
            14 => ErrorCode::TooFewCopies,
            15 => ErrorCode::Limit,
            16 => ErrorCode::AuthRequired,
            17 => ErrorCode::AuthFailed,
            18 => ErrorCode::Forbidden,
            19 => ErrorCode::Timeout,
            20 => ErrorCode::BadSchedule,
            _ => return None,
        })
    }

    /// The upper-case name used in `protocol.md` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "MALFORMED",
            ErrorCode::UnknownOpcode => "UNKNOWN_OPCODE",
            ErrorCode::BadQueueName => "BAD_QUEUE_NAME",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::BadFlags => "BAD_FLAGS",
            ErrorCode::BadArgument => "BAD_ARGUMENT",
            ErrorCode::Full => "FULL",
            ErrorCode::TooManyConnections => "TOO_MANY_CONNECTIONS",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Storage => "STORAGE",
            ErrorCode::BadSubject => "BAD_SUBJECT",
            ErrorCode::NoResponders => "NO_RESPONDERS",
            ErrorCode::TooFewCopies => "TOO_FEW_COPIES",
            ErrorCode::Limit => "LIMIT",
            ErrorCode::AuthRequired => "AUTH_REQUIRED",
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::BadSchedule => "BAD_SCHEDULE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame that breaks the protocol. Each variant names the problem precisely enough
/// to be sent back to the client as the text of an `ERROR` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Request opcode not known.
    UnknownOpcode(u8),
    /// Response status not known (client side).
    UnknownStatus(u8),
    /// Declared length over the cap for this kind of frame.
    FrameTooLarge {
        /// The declared length.
        len: u32,
        /// The cap it passed.
        max: u32,
    },
    /// Declared length too short to hold the frame's fixed header.
    FrameTooShort {
        /// The declared length.
        len: u32,
    },
    /// A reserved flag bit was set.
    BadFlags(u8),
    /// The queue name is empty or not UTF-8.
    BadQueueName(&'static str),
    /// A field runs past the end of its frame.
    ShortField(&'static str),
    /// The frame has bytes left over after its last field.
    TrailingBytes(usize),
    /// A field holds a value that is not allowed.
    BadArgument(&'static str),
    /// A subject or pattern breaks the rules (protocol.md 15.1); the text says which
    /// field, and what is wrong where.
    BadSubject(String),
}

impl ProtocolError {
    /// The wire error code for this problem.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::UnknownOpcode(_) | ProtocolError::UnknownStatus(_) => {
                ErrorCode::UnknownOpcode
            }
            ProtocolError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtocolError::FrameTooShort { .. }
            | ProtocolError::ShortField(_)
            | ProtocolError::TrailingBytes(_) => ErrorCode::Malformed,
            ProtocolError::BadFlags(_) => ErrorCode::BadFlags,
            ProtocolError::BadQueueName(_) => ErrorCode::BadQueueName,
            ProtocolError::BadArgument(_) => ErrorCode::BadArgument,
            ProtocolError::BadSubject(_) => ErrorCode::BadSubject,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnknownOpcode(op) => write!(f, "unknown opcode 0x{op:02x}"),
            ProtocolError::UnknownStatus(st) => write!(f, "unknown response status 0x{st:02x}"),
            ProtocolError::FrameTooLarge { len, max } => {
                write!(f, "frame length {len} is over the limit of {max} bytes")
            }
            ProtocolError::FrameTooShort { len } => {
                write!(f, "frame length {len} is too short for its header")
            }
            ProtocolError::BadFlags(flags) => {
                write!(
                    f,
                    "reserved flag bits set (0x{flags:02x}); version 1 needs 0"
                )
            }
            ProtocolError::BadQueueName(why) => write!(f, "bad queue name: {why}"),
            ProtocolError::ShortField(field) => {
                write!(f, "field '{field}' runs past the end of the frame")
            }
            ProtocolError::TrailingBytes(n) => write!(f, "{n} unexpected bytes at end of frame"),
            ProtocolError::BadArgument(why) => write!(f, "bad argument: {why}"),
            ProtocolError::BadSubject(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A request, borrowing its queue name and payload from the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// Announce the client's highest protocol version.
    Hello {
        /// Highest version the client speaks.
        version: u16,
    },
    /// Liveness check.
    Ping,
    /// Say goodbye; the server answers `BYE` and closes.
    Quit,
    /// Append `payload` to `queue`.
    Put {
        /// Queue name.
        queue: &'a str,
        /// Message bytes (already cut to the limit when decoded by the server).
        payload: &'a [u8],
    },
    /// Take up to `max` messages from `queue`, waiting up to `wait_ms` for the first.
    Get {
        /// Queue name.
        queue: &'a str,
        /// Milliseconds to wait when empty; 0 answers at once, [`WAIT_FOREVER`] never times out.
        wait_ms: u32,
        /// Most messages wanted in the reply (1 or more).
        max: u16,
    },
    /// Drop every message in `queue`.
    Purge {
        /// Queue name.
        queue: &'a str,
    },
    /// Figures for the server and every queue, or for one queue.
    Stats {
        /// Only this queue's figures, or all queues when `None`.
        queue: Option<&'a str>,
    },
    /// A `PUT` with the `PUT_OPTIONS` flag: a delay and a priority (version 2).
    PutWith {
        /// Queue name.
        queue: &'a str,
        /// Delay and priority.
        options: PutOptions,
        /// Message bytes (already cut to the limit when decoded by the server).
        payload: &'a [u8],
    },
    /// A `PUT` with the `PUT_UNIQUE` flag (a unique key) or the `PUT_TTL` flag (a
    /// time to live), or both (version 6), and with `PUT_OPTIONS` a delay and a
    /// priority too. At least one of `unique` and `ttl` is set.
    PutJob {
        /// Queue name.
        queue: &'a str,
        /// Delay and priority (`None`: the defaults, and no `PUT_OPTIONS` flag).
        options: Option<PutOptions>,
        /// The key and what to do with a duplicate.
        unique: Option<Unique<'a>>,
        /// The time to live.
        ttl: Option<Ttl>,
        /// Message bytes (already cut to the limit when decoded by the server).
        payload: &'a [u8],
    },
    /// Take up to `max` messages on lease (version 2).
    Lease {
        /// Queue name.
        queue: &'a str,
        /// As for [`Request::Get`].
        wait_ms: u32,
        /// Most messages wanted (1 or more).
        max: u16,
        /// Lease length; 0 asks for the server's default.
        lease_ms: u32,
        /// Dead-letter after this many charged deliveries; 0 = server default,
        /// [`NEVER_DEAD`] = never.
        max_deliveries: u16,
        /// The lease does not end when the connection closes.
        detached: bool,
    },
    /// Delete leased messages (version 2).
    Ack {
        /// Queue name.
        queue: &'a str,
        /// The leases, as `(id, attempt)`.
        pairs: Pairs<'a>,
    },
    /// End leases: give the messages back now or later, or dead-letter them (version 2).
    Nack {
        /// Queue name.
        queue: &'a str,
        /// Return the messages after this long (0 = now).
        delay_ms: u32,
        /// Send them to the dead-letter queue now.
        dead: bool,
        /// Do not charge this delivery against `max_deliveries`.
        no_charge: bool,
        /// The leases.
        pairs: Pairs<'a>,
    },
    /// Extend leases to `lease_ms` from now (version 2).
    Touch {
        /// Queue name.
        queue: &'a str,
        /// New lease length; 0 = the length the `LEASE` asked for.
        lease_ms: u32,
        /// The leases.
        pairs: Pairs<'a>,
    },
    /// Copies of up to `max` ready messages, without taking them (version 2).
    Peek {
        /// Queue name.
        queue: &'a str,
        /// Most messages wanted (1 or more).
        max: u16,
    },
    /// Move up to `max` ready messages from one queue to another (version 2).
    Move {
        /// Source queue.
        from: &'a str,
        /// Destination queue.
        to: &'a str,
        /// Most messages to move (1 or more).
        max: u32,
    },
    /// A `GET` with the `WITH_META` flag: answered `ENVELOPES` (version 3).
    GetWithMeta {
        /// As for [`Request::Get`].
        queue: &'a str,
        /// As for [`Request::Get`].
        wait_ms: u32,
        /// As for [`Request::Get`].
        max: u16,
    },
    /// A `LEASE` with the `WITH_META` flag: answered `ENVELOPES` (version 3).
    LeaseWithMeta {
        /// As for [`Request::Lease`].
        queue: &'a str,
        /// As for [`Request::Lease`].
        wait_ms: u32,
        /// As for [`Request::Lease`].
        max: u16,
        /// As for [`Request::Lease`].
        lease_ms: u32,
        /// As for [`Request::Lease`].
        max_deliveries: u16,
        /// As for [`Request::Lease`].
        detached: bool,
    },
    /// A `PEEK` with the `WITH_META` flag: answered `ENVELOPES` (version 3).
    PeekWithMeta {
        /// As for [`Request::Peek`].
        queue: &'a str,
        /// As for [`Request::Peek`].
        max: u16,
    },
    /// Bind `pattern` onto `queue`, creating the queue if needed (version 3).
    Bind {
        /// A pattern: may hold `*` and `>` tokens.
        pattern: &'a str,
        /// Queue name.
        queue: &'a str,
    },
    /// Remove the binding of `pattern` onto `queue` (version 3).
    Unbind {
        /// The pattern, as bound.
        pattern: &'a str,
        /// Queue name.
        queue: &'a str,
    },
    /// Publish `payload` to `subject` (version 3).
    Publish {
        /// The subject: no wildcards.
        subject: &'a str,
        /// Delay of the queue copies, as for a `PUT` with options.
        delay_ms: u32,
        /// Priority of the queue copies, 0..=9.
        priority: u8,
        /// Answer only once this many copies are confirmed; 0 = at once.
        confirm: u32,
        /// With `confirm` > 0: answer after this long at the latest (1 ms to 12 h).
        /// Ignored, but kept as sent, with `confirm` 0.
        timeout_ms: u32,
        /// Message bytes (already cut to the limit when decoded by the server).
        payload: &'a [u8],
    },
    /// Subscribe this connection to `pattern` (version 3).
    Subscribe {
        /// A pattern: may hold `*` and `>` tokens.
        pattern: &'a str,
    },
    /// End subscription `sid` of this connection (version 3).
    Unsubscribe {
        /// The id `SUBSCRIBED` gave.
        sid: u32,
    },
    /// Publish a request to `subject` and wait for the first reply (version 3).
    Req {
        /// The subject: no wildcards.
        subject: &'a str,
        /// Wait at most this long for a reply (1 ms to 12 h).
        timeout_ms: u32,
        /// Request bytes (already cut to the limit when decoded by the server).
        payload: &'a [u8],
    },
    /// Answer the request whose reply address is `reply_to` (version 3).
    Reply {
        /// The `REPLY_TO` of the request's metadata.
        reply_to: u64,
        /// Reply bytes (already cut to the limit when decoded by the server).
        payload: &'a [u8],
    },
    /// Present a token to a server that requires one (version 4).
    Auth {
        /// The secret, up to 1022 bytes (an empty one is refused as wrong).
        token: &'a [u8],
    },
    /// Define schedule `name`, or replace it (version 5).
    Schedule {
        /// The schedule's name: 1 to 255 bytes of UTF-8.
        name: &'a str,
        /// When it runs: a cron expression, a macro or `@every <duration>` (17.2).
        spec: &'a str,
        /// Where its messages go.
        target: ScheduleTarget<'a>,
        /// Their priority, 0..=9.
        priority: u8,
        /// Their payload.
        payload: &'a [u8],
    },
    /// Delete schedule `name` (version 5).
    Unschedule {
        /// The schedule's name.
        name: &'a str,
    },
    /// Pause or resume schedule `name` (version 5).
    PauseSchedule {
        /// The schedule's name.
        name: &'a str,
        /// True to pause, false to resume.
        paused: bool,
    },
    /// List the schedules, or only one (version 5).
    Schedules {
        /// Only this one, or all of them when `None`.
        name: Option<&'a str>,
    },
}

impl Request<'_> {
    /// The opcode this request travels under.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Hello { .. } => Opcode::Hello,
            Request::Ping => Opcode::Ping,
            Request::Quit => Opcode::Quit,
            Request::Put { .. } => Opcode::Put,
            Request::Get { .. } => Opcode::Get,
            Request::Purge { .. } => Opcode::Purge,
            Request::Stats { .. } => Opcode::Stats,
            Request::PutWith { .. } | Request::PutJob { .. } => Opcode::Put,
            Request::Lease { .. } => Opcode::Lease,
            Request::Ack { .. } => Opcode::Ack,
            Request::Nack { .. } => Opcode::Nack,
            Request::Touch { .. } => Opcode::Touch,
            Request::Peek { .. } => Opcode::Peek,
            Request::Move { .. } => Opcode::Move,
            Request::GetWithMeta { .. } => Opcode::Get,
            Request::LeaseWithMeta { .. } => Opcode::Lease,
            Request::PeekWithMeta { .. } => Opcode::Peek,
            Request::Bind { .. } => Opcode::Bind,
            Request::Unbind { .. } => Opcode::Unbind,
            Request::Publish { .. } => Opcode::Publish,
            Request::Subscribe { .. } => Opcode::Subscribe,
            Request::Unsubscribe { .. } => Opcode::Unsubscribe,
            Request::Req { .. } => Opcode::Req,
            Request::Reply { .. } => Opcode::Reply,
            Request::Auth { .. } => Opcode::Auth,
            Request::Schedule { .. } => Opcode::Schedule,
            Request::Unschedule { .. } => Opcode::Unschedule,
            Request::PauseSchedule { .. } => Opcode::PauseSchedule,
            Request::Schedules { .. } => Opcode::Schedules,
        }
    }

    /// Appends this request's frame to `dst`.
    ///
    /// # Errors
    /// [`ProtocolError::BadQueueName`] for an empty or over-long queue name,
    /// [`ProtocolError::BadSubject`] for a subject or pattern the server would refuse,
    /// [`ProtocolError::BadArgument`] for a value it would refuse, and
    /// [`ProtocolError::FrameTooLarge`] for a payload that cannot fit in a frame; nothing
    /// is written then.
    pub fn encode(&self, dst: &mut impl BufMut) -> Result<(), ProtocolError> {
        if let Some(result) = leases::encode_request(self, dst) {
            return result;
        }
        if let Some(result) = fanout::encode_request(self, dst) {
            return result;
        }
        if let Some(result) = auth::encode_request(self, dst) {
            return result;
        }
        if let Some(result) = schedule::encode_request(self, dst) {
            return result;
        }
        let queue = match self {
            Request::Put { queue, .. } | Request::Get { queue, .. } | Request::Purge { queue } => {
                Some(*queue)
            }
            Request::Stats { queue } => *queue,
            _ => None,
        };
        if let Some(queue) = queue {
            check_queue_name(queue)?;
        }
        let body_len = match self {
            Request::Hello { .. } => 2,
            Request::Ping | Request::Quit => 0,
            Request::Put { queue, payload } => 1 + queue.len() + payload.len(),
            Request::Get { queue, .. } => 1 + queue.len() + 4 + 2,
            Request::Purge { queue } => 1 + queue.len(),
            Request::Stats { queue } => 1 + queue.map_or(0, str::len),
            // Encoded by leases:: and fanout::encode_request above.
            _ => 0,
        };
        let len = u32::try_from(body_len + 2).map_err(|_| ProtocolError::FrameTooLarge {
            len: u32::MAX,
            max: u32::MAX,
        })?;
        dst.put_u32(len);
        dst.put_u8(self.opcode() as u8);
        dst.put_u8(0);
        match self {
            Request::Hello { version } => dst.put_u16(*version),
            Request::Ping | Request::Quit => {}
            Request::Put { queue, payload } => {
                put_name(dst, queue);
                dst.put_slice(payload);
            }
            Request::Get {
                queue,
                wait_ms,
                max,
            } => {
                put_name(dst, queue);
                dst.put_u32(*wait_ms);
                dst.put_u16(*max);
            }
            Request::Purge { queue } => put_name(dst, queue),
            Request::Stats { queue } => put_name(dst, queue.unwrap_or("")),
            _ => {}
        }
        Ok(())
    }
}

/// What the server-side decoder found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole request frame.
    Request(Request<'a>),
    /// The head of a `PUT` whose payload is longer than the limit: only the head is
    /// consumed, and the caller keeps the first `limit` payload bytes and drops the rest
    /// as they stream in, so the excess is never buffered.
    PutHead {
        /// Queue name.
        queue: &'a str,
        /// Delay and priority, for a `PUT` with the `PUT_OPTIONS` flag.
        options: Option<PutOptions>,
        /// The key, for a `PUT` with the `PUT_UNIQUE` flag.
        unique: Option<Unique<'a>>,
        /// The time to live, for a `PUT` with the `PUT_TTL` flag.
        ttl: Option<Ttl>,
        /// Payload length the client declared.
        payload_len: u32,
    },
    /// The head of a `PUB`, `REQ` or `REPLY` whose payload is longer than the limit,
    /// every field before the payload checked; handled as [`Decoded::PutHead`] is
    /// (version 3).
    BodyHead {
        /// The request without its payload.
        head: BodyHead<'a>,
        /// Payload length the client declared.
        payload_len: u32,
    },
}

/// Decodes the request at the front of `buf`.
///
/// Returns `Ok(None)` until a whole frame is buffered, or `Ok(Some((decoded, consumed)))`.
/// A `PUT` whose payload is at most `max_payload` bytes is returned whole; a longer one
/// comes back as [`Decoded::PutHead`] as soon as its queue name is readable. `PUB`,
/// `REQ` and `REPLY` are the same, a long one coming back as [`Decoded::BodyHead`]
/// once every field before its payload is readable.
///
/// # Errors
/// Any [`ProtocolError`]; it is reported as early as the bytes allow (an unknown opcode
/// or an oversized control frame is caught from the first five bytes).
pub fn decode_request(
    buf: &[u8],
    max_payload: usize,
) -> Result<Option<(Decoded<'_>, usize)>, ProtocolError> {
    if buf.len() < LEN_PREFIX {
        return Ok(None);
    }
    let len = be_u32(buf);
    if len < 2 {
        return Err(ProtocolError::FrameTooShort { len });
    }
    if buf.len() < LEN_PREFIX + 1 {
        return Ok(None);
    }
    if buf[LEN_PREFIX] == Opcode::Put as u8 {
        // The most common request first, past the checks that cannot fail for it
        // (its frame has no cap below u32::MAX).
        let Some(&flags) = buf.get(LEN_PREFIX + 1) else {
            return Ok(None);
        };
        if flags & !(PUT_OPTIONS | PUT_UNIQUE | PUT_TTL) != 0 {
            return Err(ProtocolError::BadFlags(flags));
        }
        return decode_put(buf, len as usize - 2, flags, max_payload);
    }
    let opcode = Opcode::try_from(buf[LEN_PREFIX])?;
    let max = opcode.max_frame();
    if len > max {
        return Err(ProtocolError::FrameTooLarge { len, max });
    }
    if buf.len() < REQUEST_HEADER {
        return Ok(None);
    }
    let flags = buf[LEN_PREFIX + 1];
    let allowed = match opcode {
        Opcode::Put => PUT_OPTIONS | PUT_UNIQUE | PUT_TTL,
        Opcode::Get | Opcode::Lease | Opcode::Peek => WITH_META,
        _ => 0,
    };
    if flags & !allowed != 0 {
        return Err(ProtocolError::BadFlags(flags));
    }
    let body_len = len as usize - 2;
    match opcode {
        Opcode::Put => return decode_put(buf, body_len, flags, max_payload),
        Opcode::Publish | Opcode::Req | Opcode::Reply => {
            return fanout::decode_streamed(opcode, buf, body_len, max_payload);
        }
        _ => {}
    }
    let frame_end = LEN_PREFIX + len as usize;
    let Some(body) = buf.get(REQUEST_HEADER..frame_end) else {
        return Ok(None);
    };
    let mut request = decode_control(opcode, body)?;
    if flags & WITH_META != 0 {
        request = fanout::with_meta(request);
    }
    Ok(Some((Decoded::Request(request), frame_end)))
}

/// Decodes the body of a complete frame of any opcode but `PUT`.
///
/// The checks run in the order protocol.md section 2.5 gives, the same for every
/// opcode, so that a frame with several faults always gets the same error: first the
/// structure (every field present, nothing left over: `MALFORMED`), then the queue
/// name (`BAD_QUEUE_NAME`), then the values (`BAD_ARGUMENT`). `HELLO` version 0
/// (`UNSUPPORTED_VERSION`) is a value check too; the server makes it after decoding.
fn decode_control(opcode: Opcode, body: &[u8]) -> Result<Request<'_>, ProtocolError> {
    let mut r = Reader::new(body);
    let request = match opcode {
        Opcode::Hello => {
            let version = r.u16("version")?;
            r.finish()?;
            Request::Hello { version }
        }
        Opcode::Ping => {
            r.finish()?;
            Request::Ping
        }
        Opcode::Quit => {
            r.finish()?;
            Request::Quit
        }
        Opcode::Get => {
            let name = r.name_bytes()?;
            let wait_ms = r.u32("wait_ms")?;
            let max = r.u16("max")?;
            r.finish()?;
            let queue = to_queue_name(name)?;
            if max == 0 {
                return Err(ProtocolError::BadArgument("GET max must be at least 1"));
            }
            Request::Get {
                queue,
                wait_ms,
                max,
            }
        }
        Opcode::Purge => {
            let name = r.name_bytes()?;
            r.finish()?;
            Request::Purge {
                queue: to_queue_name(name)?,
            }
        }
        Opcode::Stats => {
            // queue_len 0 means all queues, so an empty name is allowed here.
            let name = r.name_bytes()?;
            r.finish()?;
            Request::Stats {
                queue: if name.is_empty() {
                    None
                } else {
                    Some(to_queue_name(name)?)
                },
            }
        }
        Opcode::Lease
        | Opcode::Ack
        | Opcode::Nack
        | Opcode::Touch
        | Opcode::Peek
        | Opcode::Move => leases::decode_control(opcode, &mut r)?,
        Opcode::Bind | Opcode::Unbind | Opcode::Subscribe | Opcode::Unsubscribe => {
            fanout::decode_control(opcode, &mut r)?
        }
        Opcode::Auth => auth::decode_auth(&mut r),
        Opcode::Schedule | Opcode::Unschedule | Opcode::PauseSchedule | Opcode::Schedules => {
            schedule::decode_control(opcode, &mut r)?
        }
        // These stream their payload and never reach here (see decode_put and
        // fanout::decode_streamed); a plain error keeps this total without a panic path.
        Opcode::Put | Opcode::Publish | Opcode::Req | Opcode::Reply => {
            return Err(ProtocolError::BadArgument(
                "a streamed request has no control body",
            ));
        }
    };
    Ok(request)
}

fn decode_put(
    buf: &[u8],
    body_len: usize,
    flags: u8,
    max_payload: usize,
) -> Result<Option<(Decoded<'_>, usize)>, ProtocolError> {
    let with_options = flags & PUT_OPTIONS != 0;
    if body_len == 0 {
        // Checked before reading on, so that a short PUT never reads into the next frame.
        return Err(ProtocolError::ShortField("queue_len"));
    }
    let Some(&name_len) = buf.get(REQUEST_HEADER) else {
        return Ok(None);
    };
    let name_len = name_len as usize;
    if 1 + name_len > body_len {
        return Err(ProtocolError::ShortField("queue"));
    }
    let name_end = REQUEST_HEADER + 1 + name_len;
    let Some(name) = buf.get(REQUEST_HEADER + 1..name_end) else {
        return Ok(None);
    };
    let queue = to_queue_name(name)?;
    let (options, head_end) = if with_options {
        if 1 + name_len + PUT_OPTIONS_LEN > body_len {
            return Err(ProtocolError::ShortField("put options"));
        }
        let Some(fields) = buf.get(name_end..name_end + PUT_OPTIONS_LEN) else {
            return Ok(None);
        };
        (
            Some(PutOptions::decode(fields)?),
            name_end + PUT_OPTIONS_LEN,
        )
    } else {
        (None, name_end)
    };
    let (unique, head_end) = if flags & PUT_UNIQUE != 0 {
        let frame_end = REQUEST_HEADER + body_len;
        let fields = buf.get(head_end..frame_end.min(buf.len())).unwrap_or(&[]);
        let declared = frame_end - head_end;
        // Short of the frame (a key longer than what is left) is malformed; short of
        // the buffer, wait for more bytes.
        let need = |n: usize| n > declared;
        if need(1)
            || fields
                .first()
                .is_some_and(|&k| need(UNIQUE_FIXED + usize::from(k)))
        {
            return Err(ProtocolError::ShortField("unique key"));
        }
        match Unique::decode(fields)? {
            Some((unique, used)) => (Some(unique), head_end + used),
            None => return Ok(None),
        }
    } else {
        (None, head_end)
    };
    let (ttl, head_end) = if flags & PUT_TTL != 0 {
        if head_end + TTL_LEN > REQUEST_HEADER + body_len {
            return Err(ProtocolError::ShortField("ttl"));
        }
        let Some(fields) = buf.get(head_end..head_end + TTL_LEN) else {
            return Ok(None);
        };
        (Some(Ttl::decode(fields)?), head_end + TTL_LEN)
    } else {
        (None, head_end)
    };
    let payload_len = body_len - (head_end - REQUEST_HEADER);
    if payload_len > max_payload {
        // body_len came from a u32, so payload_len fits in one.
        let payload_len = payload_len as u32;
        return Ok(Some((
            Decoded::PutHead {
                queue,
                options,
                unique,
                ttl,
                payload_len,
            },
            head_end,
        )));
    }
    let frame_end = head_end + payload_len;
    let Some(payload) = buf.get(head_end..frame_end) else {
        return Ok(None);
    };
    let request = match (options, unique, ttl) {
        (Some(options), None, None) => Request::PutWith {
            queue,
            options,
            payload,
        },
        (None, None, None) => Request::Put { queue, payload },
        (options, unique, ttl) => Request::PutJob {
            queue,
            options,
            unique,
            ttl,
            payload,
        },
    };
    Ok(Some((Decoded::Request(request), frame_end)))
}

/// Checks a queue name against the protocol's rules (1 to 255 bytes of UTF-8).
///
/// # Errors
/// [`ProtocolError::BadQueueName`] saying which rule failed.
pub fn check_queue_name(name: &str) -> Result<(), ProtocolError> {
    if name.is_empty() {
        return Err(ProtocolError::BadQueueName("empty"));
    }
    if name.len() > MAX_QUEUE_NAME {
        return Err(ProtocolError::BadQueueName("longer than 255 bytes"));
    }
    Ok(())
}

/// The big-endian `u32` in the first four bytes of `b`; callers have checked the length.
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn to_queue_name(bytes: &[u8]) -> Result<&str, ProtocolError> {
    if bytes.is_empty() {
        return Err(ProtocolError::BadQueueName("empty"));
    }
    std::str::from_utf8(bytes).map_err(|_| ProtocolError::BadQueueName("not valid UTF-8"))
}

fn put_name(dst: &mut impl BufMut, name: &str) {
    // Callers checked the length against MAX_QUEUE_NAME.
    dst.put_u8(name.len() as u8);
    dst.put_slice(name.as_bytes());
}

/// A cursor over one complete frame body; reading past the end is a
/// [`ProtocolError::ShortField`], never a panic.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::ShortField(field));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.bytes(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        Ok(be_u32(self.bytes(4, field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.bytes(8, field)?);
        Ok(u64::from_be_bytes(b))
    }

    /// A queue name's raw bytes; the caller checks them once the whole frame has
    /// been read, since structure is checked before names (protocol.md 2.5).
    fn name_bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = self.u8("queue_len")? as usize;
        self.bytes(len, "queue")
    }

    fn short_str(&mut self, field: &'static str) -> Result<&'a str, ProtocolError> {
        let len = self.u8(field)? as usize;
        std::str::from_utf8(self.bytes(len, field)?)
            .map_err(|_| ProtocolError::BadArgument("text field is not UTF-8"))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes(self.buf.len()))
        }
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// A response, borrowing from the buffer it was decoded from (except `Stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response<'a> {
    /// Reply to `PING`.
    Pong,
    /// Reply to `HELLO`.
    Hello {
        /// The version the server will speak on this connection.
        version: u16,
        /// The server's `BMAXMESSAGESIZE`.
        max_message_size: u32,
        /// Server software and version, for logs.
        server: &'a str,
        /// What a version-2 server supports and its lease limits; `None` from a
        /// version-1 reply.
        limits: Option<Limits>,
    },
    /// Reply to `QUIT`.
    Bye,
    /// `AUTH` accepted (version 4).
    Authed {
        /// The token is read-only: only requests that look are allowed (16.4).
        read_only: bool,
    },
    /// `PUT` stored the whole payload.
    Stored,
    /// `PUT` stored the first `stored_len` of `original_len` bytes.
    Truncated {
        /// Payload length the client sent.
        original_len: u32,
        /// Bytes kept (the server's message size limit).
        stored_len: u32,
    },
    /// One or more messages, oldest first.
    Messages(Messages<'a>),
    /// No message.
    Empty,
    /// `PURGE` dropped this many messages.
    Purged {
        /// Messages dropped.
        count: u64,
    },
    /// Reply to `STATS`.
    Stats(StatsReport),
    /// A `PUT` with options stored the whole payload as message `id`.
    StoredId {
        /// The new message's id.
        id: u64,
    },
    /// A `PUT` with options stored `stored_len` of `original_len` bytes as message `id`.
    TruncatedId {
        /// Payload length the client sent.
        original_len: u32,
        /// Bytes kept.
        stored_len: u32,
        /// The new message's id.
        id: u64,
    },
    /// Messages on lease, oldest first.
    Leased(Deliveries<'a>),
    /// Copies of ready messages (`PEEK`).
    Peeked(Deliveries<'a>),
    /// One result per pair of an `ACK`, `NACK` or `TOUCH`.
    Settled(Settled<'a>),
    /// `MOVE` moved this many messages.
    Moved {
        /// Messages moved.
        count: u64,
    },
    /// `BIND` done (version 3).
    Bound {
        /// True for a new binding, false when it existed already.
        created: bool,
    },
    /// `UNBIND` done (version 3).
    Unbound {
        /// True when a binding was removed, false when there was none.
        removed: bool,
    },
    /// `PUB` done (version 3).
    Published(Published),
    /// `SUB` done (version 3).
    Subscribed {
        /// The subscription's id on this connection, from 1, never reused on it.
        sid: u32,
    },
    /// `UNSUB` done (version 3).
    Unsubscribed {
        /// True when a subscription was ended, false when there was none.
        removed: bool,
    },
    /// The first reply to a `REQ` (version 3).
    Reply {
        /// The reply's bytes.
        payload: &'a [u8],
    },
    /// `REPLY` done (version 3).
    Replied {
        /// True when the requester got it; false when nobody waited for it.
        delivered: bool,
    },
    /// Messages with ids, attempts and metadata: a receive with `WITH_META`
    /// (version 3).
    Envelopes(Envelopes<'a>),
    /// A message pushed to a subscription, not a reply to any request (version 3).
    Event {
        /// The subscription it matched.
        sid: u32,
        /// Subject, reply address, events dropped.
        meta: Meta<'a>,
        /// The message bytes.
        payload: &'a [u8],
    },
    /// `SCHEDULE` done (version 5).
    Scheduled {
        /// True for a new schedule, false when one of that name was replaced.
        created: bool,
        /// Its next run time, unix-epoch milliseconds (0: none).
        next_run_ms: u64,
    },
    /// `UNSCHEDULE` done (version 5).
    Unscheduled {
        /// True when a schedule was deleted, false when there was none.
        removed: bool,
    },
    /// `PAUSE_SCHEDULE` done (version 5).
    SchedulePaused {
        /// False when there is no such schedule.
        found: bool,
        /// Its next run time (0 while paused).
        next_run_ms: u64,
    },
    /// The schedules, sorted by name (version 5).
    ScheduleList(Vec<ScheduleInfo>),
    /// A unique `PUT` was not stored (version 6).
    Duplicate {
        /// The message that holds the key (or held it, for [`Holder::Gone`]).
        id: u64,
        /// Where that message stands.
        holder: Holder,
    },
    /// A unique `PUT` replaced the waiting message that holds its key (version 6).
    Replaced {
        /// That message's id.
        id: u64,
        /// Payload length the client sent.
        original_len: u32,
        /// Bytes kept.
        stored_len: u32,
    },
    /// A failed request.
    Error {
        /// The error code; unknown (newer) codes are kept as their number.
        code: u16,
        /// True when the server closes the connection after this reply.
        fatal: bool,
        /// Human-readable detail.
        message: &'a str,
    },
}

/// The messages of a `MESSAGES` reply, validated when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Messages<'a> {
    count: u32,
    body: &'a [u8],
}

impl<'a> Messages<'a> {
    /// How many messages the reply holds.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True if the reply holds no message (never sent by a beuss server).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The payloads, oldest first.
    pub fn iter(&self) -> MessagesIter<'a> {
        MessagesIter { rest: self.body }
    }
}

impl<'a> IntoIterator for Messages<'a> {
    type Item = &'a [u8];
    type IntoIter = MessagesIter<'a>;

    fn into_iter(self) -> MessagesIter<'a> {
        self.iter()
    }
}

/// Iterator over the payloads of a [`Messages`] reply.
#[derive(Debug, Clone)]
pub struct MessagesIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for MessagesIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = be_u32(self.rest.get(..4)?) as usize;
        let payload = self.rest.get(4..4 + len)?;
        self.rest = &self.rest[4 + len..];
        Some(payload)
    }
}

/// Figures reported by `STATS`: named counters for the server and for each queue.
///
/// Figures travel as (name, value) pairs so that later versions can add some without
/// breaking older clients; see `protocol.md` for the names defined today.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsReport {
    /// Server-wide figures.
    pub server: Vec<(String, u64)>,
    /// Per-queue figures, one entry per queue.
    pub queues: Vec<QueueReport>,
}

/// One queue's figures in a [`StatsReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueReport {
    /// Queue name.
    pub name: String,
    /// Its figures.
    pub fields: Vec<(String, u64)>,
}

impl StatsReport {
    /// A server-wide figure by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        lookup(&self.server, name)
    }

    /// A queue's report by queue name.
    pub fn queue(&self, name: &str) -> Option<&QueueReport> {
        self.queues.iter().find(|q| q.name == name)
    }
}

impl QueueReport {
    /// A figure of this queue by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        lookup(&self.fields, name)
    }
}

fn lookup(fields: &[(String, u64)], name: &str) -> Option<u64> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// Appends a response whose body is empty (`PONG`, `BYE`, `STORED`, `EMPTY`).
pub fn encode_empty(dst: &mut impl BufMut, status: Status) {
    dst.put_u32(1);
    dst.put_u8(status as u8);
}

/// Appends a `TRUNCATED` response.
pub fn encode_truncated(dst: &mut impl BufMut, original_len: u32, stored_len: u32) {
    dst.put_u32(1 + 8);
    dst.put_u8(Status::Truncated as u8);
    dst.put_u32(original_len);
    dst.put_u32(stored_len);
}

/// Appends a `HELLO` response. `server` is cut to 255 bytes on a character boundary.
pub fn encode_hello(dst: &mut impl BufMut, version: u16, max_message_size: u32, server: &str) {
    encode_hello_head(dst, version, max_message_size, server, 0);
}

/// The version-1 fields of a `HELLO` reply, with `extra` more bytes announced in the
/// length for fields that follow (version 2 appends its limits).
fn encode_hello_head(
    dst: &mut impl BufMut,
    version: u16,
    max_message_size: u32,
    server: &str,
    extra: usize,
) {
    let server = cut_at_char_boundary(server, 255).as_bytes();
    dst.put_u32((1 + 2 + 4 + 1 + server.len() + extra) as u32);
    dst.put_u8(Status::Hello as u8);
    dst.put_u16(version);
    dst.put_u32(max_message_size);
    dst.put_u8(server.len() as u8);
    dst.put_slice(server);
}

/// Appends a `PURGED` response.
pub fn encode_purged(dst: &mut impl BufMut, count: u64) {
    dst.put_u32(1 + 8);
    dst.put_u8(Status::Purged as u8);
    dst.put_u64(count);
}

/// Appends an `ERROR` response. `message` is cut to 1024 bytes on a character boundary.
pub fn encode_error(dst: &mut impl BufMut, code: ErrorCode, fatal: bool, message: &str) {
    let message = cut_at_char_boundary(message, 1024).as_bytes();
    dst.put_u32((1 + 2 + 1 + message.len()) as u32);
    dst.put_u8(Status::Error as u8);
    dst.put_u16(code as u16);
    dst.put_u8(u8::from(fatal));
    dst.put_slice(message);
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut_at_char_boundary(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A reply whose body starts with a `u32` count of entries (`MESSAGES`, `LEASED`,
/// `PEEKED`), written in place: the header is reserved first and patched at the end.
#[derive(Debug)]
struct CountedReply {
    start: usize,
    count: u32,
}

impl CountedReply {
    fn begin<B: BufMut + AsRef<[u8]>>(dst: &mut B, status: Status) -> CountedReply {
        let start = dst.as_ref().len();
        dst.put_u32(0);
        dst.put_u8(status as u8);
        dst.put_u32(0);
        CountedReply { start, count: 0 }
    }

    fn finish<B: AsMut<[u8]>>(self, dst: &mut B) {
        let buf = dst.as_mut();
        let len = (buf.len() - self.start - LEN_PREFIX) as u32;
        buf[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
        let at = self.start + RESPONSE_HEADER;
        buf[at..at + 4].copy_from_slice(&self.count.to_be_bytes());
    }
}

/// Writes a `MESSAGES` response in place: [`MessagesWriter::begin`] reserves the
/// header, [`MessagesWriter::push`] appends payloads straight from the store, and
/// [`MessagesWriter::finish`] patches the length and count. No message is copied twice.
#[derive(Debug)]
pub struct MessagesWriter(CountedReply);

impl MessagesWriter {
    /// Reserves a `MESSAGES` header at the end of `dst`.
    pub fn begin<B: BufMut + AsRef<[u8]>>(dst: &mut B) -> MessagesWriter {
        MessagesWriter(CountedReply::begin(dst, Status::Messages))
    }

    /// Appends one message.
    pub fn push(&mut self, dst: &mut impl BufMut, payload: &[u8]) {
        dst.put_u32(payload.len() as u32);
        dst.put_slice(payload);
        self.0.count += 1;
    }

    /// Offset in the buffer where this reply starts; truncating the buffer back to it
    /// drops the reply (used when no message was found after all).
    pub fn start(&self) -> usize {
        self.0.start
    }

    /// Messages pushed so far.
    pub fn count(&self) -> u32 {
        self.0.count
    }

    /// Fills in the frame length and message count.
    pub fn finish<B: AsMut<[u8]>>(self, dst: &mut B) {
        self.0.finish(dst);
    }
}

impl StatsReport {
    /// Appends this report as a `STATS` response.
    pub fn encode(&self, dst: &mut impl BufMut) {
        let fields_len = |fields: &[(String, u64)]| -> usize {
            fields.iter().map(|(k, _)| 1 + k.len() + 8).sum()
        };
        let mut len = 1 + 2 + fields_len(&self.server) + 4;
        for q in &self.queues {
            len += 1 + q.name.len() + 2 + fields_len(&q.fields);
        }
        dst.put_u32(len as u32);
        dst.put_u8(Status::Stats as u8);
        put_fields(dst, &self.server);
        dst.put_u32(self.queues.len() as u32);
        for q in &self.queues {
            dst.put_u8(q.name.len() as u8);
            dst.put_slice(q.name.as_bytes());
            put_fields(dst, &q.fields);
        }
    }
}

fn put_fields(dst: &mut impl BufMut, fields: &[(String, u64)]) {
    dst.put_u16(fields.len() as u16);
    for (key, value) in fields {
        dst.put_u8(key.len() as u8);
        dst.put_slice(key.as_bytes());
        dst.put_u64(*value);
    }
}

/// Decodes the response at the front of `buf`; `Ok(None)` until it is all buffered.
///
/// Bytes after the fields a status defines are ignored, so that later versions can
/// append fields without breaking this decoder.
///
/// # Errors
/// [`ProtocolError`] for an unknown status, a declared length over `max_len`, or fields
/// that do not add up.
pub fn decode_response(
    buf: &[u8],
    max_len: u32,
) -> Result<Option<(Response<'_>, usize)>, ProtocolError> {
    if buf.len() < LEN_PREFIX {
        return Ok(None);
    }
    let len = be_u32(buf);
    if len > max_len {
        return Err(ProtocolError::FrameTooLarge { len, max: max_len });
    }
    if len < 1 {
        return Err(ProtocolError::FrameTooShort { len });
    }
    let frame_end = LEN_PREFIX + len as usize;
    let Some(frame) = buf.get(LEN_PREFIX..frame_end) else {
        return Ok(None);
    };
    let status = Status::try_from(frame[0])?;
    let mut r = Reader::new(&frame[1..]);
    let response = match status {
        Status::Pong => Response::Pong,
        Status::Bye => Response::Bye,
        Status::Authed => auth::decode_authed(&mut r)?,
        Status::Scheduled | Status::Unscheduled | Status::SchedulePaused | Status::ScheduleList => {
            schedule::decode_response(status, &mut r)?
        }
        Status::Duplicate | Status::Replaced => unique::decode_response(status, &mut r)?,
        Status::Stored if r.buf.len() >= 8 => Response::StoredId { id: r.u64("id")? },
        Status::Stored => Response::Stored,
        Status::Empty => Response::Empty,
        Status::Hello => Response::Hello {
            version: r.u16("version")?,
            max_message_size: r.u32("max_message_size")?,
            server: r.short_str("server")?,
            limits: Limits::decode(&mut r)?,
        },
        Status::Truncated => {
            let original_len = r.u32("original_len")?;
            let stored_len = r.u32("stored_len")?;
            if r.buf.len() >= 8 {
                Response::TruncatedId {
                    original_len,
                    stored_len,
                    id: r.u64("id")?,
                }
            } else {
                Response::Truncated {
                    original_len,
                    stored_len,
                }
            }
        }
        Status::Leased => Response::Leased(Deliveries::decode(&mut r)?),
        Status::Peeked => Response::Peeked(Deliveries::decode(&mut r)?),
        Status::Settled => Response::Settled(Settled::decode(&mut r)?),
        Status::Moved => Response::Moved {
            count: r.u64("count")?,
        },
        Status::Purged => Response::Purged {
            count: r.u64("count")?,
        },
        Status::Messages => {
            let count = r.u32("count")?;
            let start = r.buf;
            for _ in 0..count {
                let len = r.u32("message_len")? as usize;
                r.bytes(len, "message")?;
            }
            let used = start.len() - r.buf.len();
            Response::Messages(Messages {
                count,
                body: &start[..used],
            })
        }
        Status::Stats => Response::Stats(decode_stats(&mut r)?),
        Status::Bound
        | Status::Unbound
        | Status::Published
        | Status::Subscribed
        | Status::Unsubscribed
        | Status::Reply
        | Status::Replied
        | Status::Envelopes
        | Status::Event => fanout::decode_response(status, &mut r)?,
        Status::Error => Response::Error {
            code: r.u16("code")?,
            fatal: r.u8("fatal")? != 0,
            message: std::str::from_utf8(r.rest())
                .map_err(|_| ProtocolError::BadArgument("error text is not UTF-8"))?,
        },
    };
    Ok(Some((response, frame_end)))
}

fn decode_stats(r: &mut Reader<'_>) -> Result<StatsReport, ProtocolError> {
    let server = decode_fields(r)?;
    let count = r.u32("queue_count")?;
    // Each queue entry takes at least 4 bytes, which bounds the allocation by the frame.
    let mut queues = Vec::with_capacity((count as usize).min(r.buf.len() / 4));
    for _ in 0..count {
        let name = r.short_str("queue")?.to_owned();
        let fields = decode_fields(r)?;
        queues.push(QueueReport { name, fields });
    }
    Ok(StatsReport { server, queues })
}

fn decode_fields(r: &mut Reader<'_>) -> Result<Vec<(String, u64)>, ProtocolError> {
    let count = r.u16("field_count")?;
    let mut fields = Vec::with_capacity((count as usize).min(r.buf.len() / 9));
    for _ in 0..count {
        let key = r.short_str("field_name")?.to_owned();
        fields.push((key, r.u64("field_value")?));
    }
    Ok(fields)
}

mod leases;

pub use leases::{
    DEFAULT_LEASE_MS, DEFAULT_MAX_DELIVERIES, DEFAULT_PRIORITY, Deliveries, DeliveriesIter,
    Delivery, FEATURE_DURABLE, FEATURE_LEASES, FEATURE_PUT_OPTIONS, FEATURE_SYNCED, LeaseRef,
    LeasedWriter, Limits, MAX_DELAY_MS, MAX_LEASE_MS, MAX_PRIORITY, MAX_SETTLE_FRAME,
    MAX_SETTLE_PAIRS, NEVER_DEAD, PUT_OPTIONS, PUT_OPTIONS_LEN, Pairs, PairsIter, PutOptions,
    SettleResult, Settled, SettledWriter, encode_hello_v2, encode_moved, encode_stored_id,
    encode_truncated_id,
};

mod fanout;

pub use fanout::{
    BodyHead, Envelope, Envelopes, EnvelopesIter, EnvelopesWriter, FEATURE_FANOUT,
    MAX_SUBSCRIPTIONS, META_DROPPED, META_REPLY_TO, META_SUBJECT, Meta, MetaIter, Published,
    WITH_META, encode_bound, encode_event, encode_meta, encode_published, encode_replied,
    encode_reply, encode_subscribed, encode_unbound, encode_unsubscribed, encoded_meta_len,
};

mod schedule;

pub use schedule::{
    FEATURE_SCHEDULES, MAX_SCHEDULE_FRAME, ScheduleInfo, ScheduleTarget, encode_schedule_list,
    encode_schedule_paused, encode_scheduled, encode_unscheduled, schedule_info_len,
};

mod expiry;

pub use expiry::{FEATURE_TTL, MAX_TTL_MS, PUT_TTL, TTL_LEN, Ttl};

mod unique;

pub use unique::{
    FEATURE_UNIQUE, Holder, MAX_KEY_LEN, MAX_WINDOW_MS, PUT_UNIQUE, UNIQUE_FIXED, Unique,
    encode_duplicate, encode_replaced,
};

mod auth;

pub use auth::{
    FEATURE_AUTH_REQUIRED, MAX_TOKEN, allowed_before_auth, allowed_read_only, encode_authed,
};

#[cfg(test)]
mod tests;
