//! One client connection: its socket, the bytes it sent that are not yet handled, the
//! replies not yet written, and what it is doing (answering requests, waiting on a
//! queue, streaming an oversized PUT, closing). It knows nothing of queues.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::auth::Access;
use crate::protocol::{self, ErrorCode};
use crate::transport::{Peer, Stream};
use bytes::{Buf, BytesMut};

/// Bytes read per `read` call, into the server's one shared scratch buffer.
pub const READ_CHUNK: usize = 64 * 1024;

/// Once this many reply bytes wait unwritten, the server stops reading the
/// connection's requests until the client reads (backpressure).
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Unwritten replies past which a connection yet to authenticate is read no more.
pub const PRE_AUTH_OUTPUT: usize = 4 * 1024;

/// Buffers that grew past this are dropped once empty, so that an idle connection
/// holds no buffer memory and 10,000 idle clients cost a few MiB.
const KEEP_BUFFER: usize = 8 * 1024;
/// The output buffer a connection with subscriptions keeps once empty: events come
/// in bursts every loop turn, and growing the buffer from nothing each time cost live
/// fan-out a fifth of its speed (BENCHMARKS.md, "Fan-out"; 256 KiB was not enough at
/// a window of 10,000 events). The default `BSUBBUFFER`: what a subscriber may have
/// pending anyway.
const KEEP_SUBSCRIBER_BUFFER: usize = 1 << 20;

/// During shutdown, a connection whose replies are all written and whose peer has sent
/// nothing for this long is closed without waiting for the peer's EOF. The wait is
/// for a peer that was in the middle of sending its next request when the server
/// stopped (`beuss ON` between two `GET`s): its bytes arrive, are read and dropped, and
/// the close stays a FIN. A client that just sits idle does not hold up the exit.
pub const LINGER_QUIET: Duration = Duration::from_millis(200);

/// Most bytes read and dropped from a connection right before it is closed outside
/// shutdown (after `BYE`, a fatal `ERROR`, a refusal). That is enough for what a
/// client pipelined behind its last request; a client that keeps sending past it gets
/// a reset, which is its own doing.
pub const CLOSE_DISCARD: usize = 4 * READ_CHUNK;

/// Most bytes one [`Connection::linger`] step reads and drops, so that a client that
/// keeps sending cannot hold the shutdown loop on itself.
const LINGER_STEP: usize = 16 * READ_CHUNK;

/// A partial frame that brings this many more bytes restarts its `BFRAMETIMEOUT`
/// clock, so that a large payload on a slow link is not cut off while one trickled a
/// byte at a time is (protocol.md 16.5).
pub const FRAME_PROGRESS: usize = 64 * 1024;

/// The bytes a client of the Go beuss sends on their own to open a connection, before
/// it waits for the server's `OK` (protocol.md section 9.4).
const GO_OPENINGS: [&[u8]; 2] = [b"PUT", b"GET"];

/// True when a connection's first bytes are exactly what a client of the Go beuss
/// sends first. As a protocol-1 frame they would be an incomplete length; the old
/// client sends nothing more until it has an answer, so without this check both
/// sides would wait forever.
pub fn is_go_opening(first: &[u8]) -> bool {
    GO_OPENINGS.contains(&first)
}

/// What a connection is doing.
#[derive(Debug)]
pub enum State {
    /// Reading and answering requests.
    Ready,
    /// A `GET` is parked on this queue; later requests wait in `input` until it is
    /// answered, which keeps replies in request order.
    Parked {
        /// The queue it waits on.
        queue: Box<str>,
        /// A `LEASE` that asked for messages with their metadata (`ENVELOPES`).
        meta: bool,
    },
    /// A `REQ` waits for its reply, or a `PUB` for its confirmations (protocol.md
    /// 15); later requests wait in `input`, as behind a parked `GET`.
    Awaiting {
        /// The reply address or confirmation it waits on.
        token: u64,
    },
    /// Receiving a `PUT` longer than the message limit: the first bytes are kept, the
    /// rest dropped as they arrive (`options` set for a `PUT` with a delay/priority).
    Streaming(Box<Oversize>),
    /// A `BYE` or fatal `ERROR` was queued; close once the output is written.
    Closing,
    /// A failed `AUTH` waits before its `AUTH_FAILED` goes out (protocol.md 16.2);
    /// nothing more is read meanwhile.
    Penalized,
}

/// An oversized `PUT` (or `PUB`, `REQ`, `REPLY`) in flight.
#[derive(Debug)]
pub struct Oversize {
    /// What it is, with every field but the payload.
    pub head: Streamed,
    /// The payload bytes kept so far (at most the message limit).
    pub kept: Vec<u8>,
    /// Bytes to keep in all.
    pub keep: usize,
    /// Payload length the client declared.
    pub original: u32,
    /// Payload bytes still to come.
    pub remaining: usize,
}

/// The fields of a request whose payload streams in, owned.
#[derive(Debug)]
pub enum Streamed {
    /// A `PUT` (`options` set for one with a delay and priority).
    Put {
        /// Target queue.
        queue: Box<str>,
        /// Delay and priority.
        options: Option<crate::protocol::PutOptions>,
        /// The unique key (as `(key, replace, window_ms)`), for a `PUT_UNIQUE` one.
        unique: Option<(Box<[u8]>, bool, u32)>,
        /// The time to live, for a `PUT_TTL` one.
        ttl: Option<crate::protocol::Ttl>,
    },
    /// A `PUB`.
    Publish {
        /// Its subject.
        subject: Box<str>,
        /// Delay and priority of its copies.
        options: crate::protocol::PutOptions,
        /// Copies to confirm.
        confirm: u32,
        /// How long to wait for them.
        timeout_ms: u32,
    },
    /// A `REQ`.
    Req {
        /// Its subject.
        subject: Box<str>,
        /// How long to wait for the reply.
        timeout_ms: u32,
    },
    /// A `REPLY`.
    Reply {
        /// The requester's address.
        reply_to: u64,
    },
}

impl Streamed {
    /// The head of a streamed `PUB`, `REQ` or `REPLY`, owned.
    pub fn from_head(head: crate::protocol::BodyHead<'_>) -> Streamed {
        use crate::protocol::BodyHead;
        match head {
            BodyHead::Publish {
                subject,
                delay_ms,
                priority,
                confirm,
                timeout_ms,
            } => Streamed::Publish {
                subject: subject.into(),
                options: crate::protocol::PutOptions { delay_ms, priority },
                confirm,
                timeout_ms,
            },
            BodyHead::Req {
                subject,
                timeout_ms,
            } => Streamed::Req {
                subject: subject.into(),
                timeout_ms,
            },
            BodyHead::Reply { reply_to } => Streamed::Reply { reply_to },
        }
    }
}

impl Oversize {
    /// Takes what it needs from the front of `data`; returns bytes consumed.
    pub fn absorb(&mut self, data: &[u8]) -> usize {
        let take = self.remaining.min(data.len());
        let room = self.keep - self.kept.len();
        self.kept.extend_from_slice(&data[..take.min(room)]);
        self.remaining -= take;
        take
    }

    /// True once the whole payload has arrived.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

/// Result of one read attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes are in the scratch buffer; `drained` is true when the read was
    /// short, which on a stream socket means the kernel buffer is empty for now.
    Data { len: usize, drained: bool },
    /// Nothing to read now.
    WouldBlock,
    /// The peer closed its side.
    Eof,
}

/// What a [`Connection::linger`] step found.
#[derive(Debug, PartialEq, Eq)]
pub enum Linger {
    /// The connection can be closed without a reset: the peer closed its side and
    /// every reply is written, or it has been quiet for [`LINGER_QUIET`] since the
    /// FIN, or the socket failed.
    Done,
    /// Waiting for the socket: replies to write, or the peer's EOF.
    Wait,
    /// The read budget ran out with input still coming: step again soon, without
    /// waiting for a readiness event (none may come for bytes already there).
    Again,
}

/// A live subscription of a connection (protocol.md 15).
#[derive(Debug)]
pub struct Sub {
    /// Its number on the connection.
    pub sid: u32,
    /// The pattern it matches.
    pub pattern: Box<str>,
    /// Events dropped since the last one delivered (a slow consumer).
    pub dropped: u32,
}

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: Stream,
    /// Unique for the server's lifetime (tokens are reused, ids never).
    pub id: u64,
    /// Who it is, for logs and the per-address cap.
    pub peer: Peer,
    /// What its `AUTH` allows; `None` until it authenticates on a server that
    /// requires it (protocol.md 16.1).
    pub access: Option<Access>,
    /// When it was accepted.
    pub accepted: Instant,
    /// When its last request arrived whole (or it was accepted), for `BIDLETIMEOUT`.
    pub last_request: Instant,
    /// Since when a partial frame has waited to be completed, for `BFRAMETIMEOUT`.
    pub frame_since: Option<Instant>,
    /// Bytes read since `frame_since` was last set: a long payload that keeps coming
    /// restarts the clock every [`FRAME_PROGRESS`] bytes.
    pub frame_bytes: usize,
    /// Received bytes not yet handled: a partial frame, or requests held back while
    /// a `GET` is parked or output is over the high-water mark.
    pub input: BytesMut,
    /// Replies not yet written.
    pub output: BytesMut,
    /// Replies to settle requests carried out behind a parked receive; they go out
    /// right after that receive's reply, so replies stay in request order.
    pub held_replies: BytesMut,
    /// What it is doing.
    pub state: State,
    /// The peer sent EOF.
    pub read_closed: bool,
    /// A read or write failed: drop without further I/O.
    pub broken: bool,
    /// The poller said the peer hung up. Reads then continue to EOF instead of
    /// stopping at a short read, and while reading is paused the hint alone counts.
    pub hup_hint: bool,
    /// Some bytes have been read from the peer (the first ones are checked against
    /// [`is_go_opening`]).
    pub heard: bool,
    /// The write side is shut down (FIN sent after the last reply).
    pub write_shut: bool,
    /// During shutdown: when the FIN went out or, if later, when the peer last sent
    /// something; the start of the quiet wait.
    pub quiet_since: Option<Instant>,
    /// Replies waiting that the client does not read: the count of bytes written when
    /// the sweep first saw them not move, and when (`BIDLETIMEOUT`, 16.5).
    pub stalled: Option<(u64, Instant)>,
    /// Its live subscriptions.
    pub subs: Vec<Sub>,
    /// The last subscription number given (numbers are never reused).
    pub next_sid: u32,
    /// Bytes of output written so far: the stream offset of `output[0]`.
    pub(crate) sent: u64,
    /// Replies that wait for the journal, as (stream offset where they start, log
    /// position that must be durable first), oldest first. Empty without `BDATADIR`.
    barriers: VecDeque<(u64, u64)>,
    /// The journal's durable log position, shared by all connections (`u64::MAX`
    /// when there is no journal).
    durable: Rc<Cell<u64>>,
}

impl Connection {
    /// A new connection in the `Ready` state, with no buffer allocated.
    pub fn new(
        stream: Stream,
        id: u64,
        peer: Peer,
        access: Option<Access>,
        now: Instant,
        durable: Rc<Cell<u64>>,
    ) -> Self {
        Connection {
            stream,
            id,
            peer,
            access,
            accepted: now,
            last_request: now,
            frame_since: None,
            frame_bytes: 0,
            input: BytesMut::new(),
            output: BytesMut::new(),
            held_replies: BytesMut::new(),
            state: State::Ready,
            read_closed: false,
            broken: false,
            hup_hint: false,
            heard: false,
            write_shut: false,
            quiet_since: None,
            stalled: None,
            subs: Vec::new(),
            next_sid: 0,
            sent: 0,
            barriers: VecDeque::new(),
            durable,
        }
    }

    /// Stream offset just past the last byte queued in `output`.
    pub fn queued_end(&self) -> u64 {
        self.sent + self.output.len() as u64
    }

    /// Holds the output from stream offset `start` on until log position `pos` is
    /// durable. While the journal has not yet written `written`, a new hold joins the
    /// last one (both are written and synced together), so there are at most a few
    /// per connection however many requests it pipelines.
    pub fn hold_output(&mut self, start: u64, pos: u64, written: u64) {
        match self.barriers.back_mut() {
            Some(last) if last.1 > written => last.1 = last.1.max(pos),
            _ => self.barriers.push_back((start, pos)),
        }
    }

    /// Whether some output waits for a log position past `durable`.
    pub fn holds_output_past(&self, durable: u64) -> bool {
        self.barriers.front().is_some_and(|b| b.1 > durable)
    }

    /// Whether some output waits for the journal.
    pub fn holds_output(&self) -> bool {
        !self.barriers.is_empty()
    }

    /// The journal failed: replies that wait for it must never claim success. They
    /// are dropped, and a fatal error takes their place.
    pub fn fail_held(&mut self, message: &str) {
        let Some(&(start, _)) = self.barriers.front() else {
            return;
        };
        let keep = start.saturating_sub(self.sent) as usize;
        self.output.truncate(keep.min(self.output.len()));
        self.barriers.clear();
        self.held_replies.clear();
        protocol::encode_error(&mut self.output, ErrorCode::Storage, true, message);
        self.state = State::Closing;
        self.input.clear();
    }

    /// How much of `output` may be written now: up to the first reply still waiting
    /// for the journal.
    pub(crate) fn writable(&mut self) -> usize {
        let durable = self.durable.get();
        while self.barriers.front().is_some_and(|b| b.1 <= durable) {
            self.barriers.pop_front();
        }
        match self.barriers.front() {
            Some(&(start, _)) => (start.saturating_sub(self.sent) as usize).min(self.output.len()),
            None => self.output.len(),
        }
    }

    /// True the first time it is called, false ever after: called with each read,
    /// it tells the connection's first bytes apart.
    pub fn first_bytes(&mut self) -> bool {
        !std::mem::replace(&mut self.heard, true)
    }

    /// Whether requests may be taken from this connection now.
    pub fn accepts_requests(&self) -> bool {
        matches!(self.state, State::Ready | State::Streaming(_))
            && self.output.len() < self.output_high_water()
            && !self.broken
    }

    /// Reply bytes past which the server stops taking this connection's requests:
    /// far fewer before it authenticates, so that a client without a token cannot
    /// make the server hold much for it (protocol.md 16.1).
    fn output_high_water(&self) -> usize {
        if self.access.is_some() {
            OUTPUT_HIGH_WATER
        } else {
            PRE_AUTH_OUTPUT
        }
    }

    /// Whether settle requests (`ACK`, `NACK`, `TOUCH`) may be carried out now behind a
    /// parked receive, their replies held back (protocol.md 13.7).
    pub fn accepts_settles(&self) -> bool {
        matches!(self.state, State::Parked { .. })
            && !self.broken
            && self.output.len() < OUTPUT_HIGH_WATER
            && self.held_replies.len() < OUTPUT_HIGH_WATER
    }

    /// Whether replies held behind a parked receive reached their cap.
    pub fn held_replies_full(&self) -> bool {
        self.held_replies.len() >= OUTPUT_HIGH_WATER
    }

    /// Ends a parked receive whose reply was just appended to `output`: the replies
    /// held behind it follow, and requests are taken again.
    pub fn unpark(&mut self) {
        self.state = State::Ready;
        if !self.held_replies.is_empty() {
            let held = std::mem::take(&mut self.held_replies);
            self.output.extend_from_slice(&held);
        }
    }

    /// Whether reading more from the socket is allowed: not once it is closing, and
    /// not while replies pile up or held-back requests fill `input_cap`.
    pub fn wants_read(&self, input_cap: usize) -> bool {
        !self.read_closed
            && !self.broken
            && !matches!(self.state, State::Closing | State::Penalized)
            && self.output.len() < self.output_high_water()
            // Before AUTH nothing may be held but part of one control frame.
            && self.input.len()
                < if self.access.is_some() {
                    input_cap
                } else {
                    protocol::LEN_PREFIX + protocol::MAX_CONTROL_FRAME as usize
                }
    }

    /// Reads once into `scratch`.
    pub fn read_into(&mut self, scratch: &mut [u8]) -> ReadOutcome {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.read_closed = true;
                    return ReadOutcome::Eof;
                }
                Ok(len) => {
                    self.frame_bytes = self.frame_bytes.saturating_add(len);
                    return ReadOutcome::Data {
                        len,
                        drained: len < scratch.len(),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("{}: read failed: {e}", self.peer);
                    self.broken = true;
                    self.read_closed = true;
                    return ReadOutcome::Eof;
                }
            }
        }
    }

    /// Writes as much pending output as the socket takes, in as few calls as it
    /// allows (all pipelined replies go out together).
    pub fn flush(&mut self) {
        let mut limit = self.writable();
        while limit > 0 && !self.broken {
            match self.stream.write(&self.output[..limit]) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.output.advance(n);
                    self.sent += n as u64;
                    limit -= n;
                    // A short write means the socket buffer is full; a writable event
                    // will follow when it drains.
                    if limit > 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{}: write failed: {e}", self.peer);
                    self.broken = true;
                }
            }
        }
        let keep = if self.subs.is_empty() {
            KEEP_BUFFER
        } else {
            KEEP_SUBSCRIBER_BUFFER
        };
        if self.output.is_empty() && self.output.capacity() > keep {
            self.output = BytesMut::new();
        }
    }

    /// Reads and drops what the peer has sent, until the socket has nothing more for now,
    /// the peer closed its side, or `limit` bytes went; returns the bytes dropped.
    ///
    /// Closing a socket that still holds unread input makes the kernel send a reset
    /// instead of a FIN, and a reset can destroy replies the peer has not read yet.
    /// Draining first keeps the close graceful.
    pub fn discard_input(&mut self, scratch: &mut [u8], limit: usize) -> usize {
        let mut dropped = 0;
        while dropped < limit && !self.read_closed && !self.broken {
            match self.read_into(scratch) {
                ReadOutcome::Data { len, drained } => {
                    dropped += len;
                    if drained && !self.hup_hint {
                        break;
                    }
                }
                ReadOutcome::WouldBlock | ReadOutcome::Eof => break,
            }
        }
        dropped
    }

    /// Shuts down the write side once every reply is written, so that the peer reads
    /// them all and then EOF.
    pub fn shut_write(&mut self) {
        if self.write_shut || self.broken || !self.output.is_empty() {
            return;
        }
        self.write_shut = true;
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            log::debug!("{}: shutdown(write): {e}", self.peer);
            self.broken = true;
        }
    }

    /// One step of closing the connection while the server stops: write what is
    /// pending, then send FIN, and meanwhile read and drop whatever the peer sends.
    pub fn linger(&mut self, scratch: &mut [u8], now: Instant) -> Linger {
        self.flush();
        let was_shut = self.write_shut;
        self.shut_write();
        let dropped = self.discard_input(scratch, LINGER_STEP);
        if dropped > 0 || self.write_shut != was_shut {
            self.quiet_since = Some(now);
        }
        if self.broken
            || (self.read_closed && self.output.is_empty())
            || self.linger_until().is_some_and(|at| at <= now)
        {
            Linger::Done
        } else if dropped >= LINGER_STEP {
            Linger::Again
        } else {
            Linger::Wait
        }
    }

    /// While lingering with every reply written and FIN sent: when the connection
    /// will be closed if the peer stays quiet.
    pub fn linger_until(&self) -> Option<Instant> {
        self.quiet_since
            .filter(|_| self.write_shut)
            .map(|since| since + LINGER_QUIET)
    }

    /// A request arrived whole: the idle and partial-frame clocks start again.
    pub fn note_request(&mut self, now: Instant) {
        self.last_request = now;
        self.frame_since = None;
        self.frame_bytes = 0;
    }

    /// After a turn of reading: starts the partial-frame clock if a frame is left
    /// incomplete, restarts it if enough of one came since, stops it if none is
    /// waiting. Bytes held while the server does not read (replies backed up) are not
    /// a partial frame of the client's making.
    pub fn note_partial(&mut self, now: Instant) {
        let partial = match self.state {
            State::Streaming(_) => self.output.len() < OUTPUT_HIGH_WATER,
            State::Ready => !self.input.is_empty() && self.output.len() < OUTPUT_HIGH_WATER,
            _ => false,
        };
        if !partial {
            self.frame_since = None;
            self.frame_bytes = 0;
        } else if self.frame_since.is_none() || self.frame_bytes >= FRAME_PROGRESS {
            self.frame_since = Some(now);
            self.frame_bytes = 0;
        }
    }

    /// Drops the input buffer's memory if it is empty and large.
    pub fn trim_input(&mut self) {
        if self.input.is_empty() && self.input.capacity() > KEEP_BUFFER {
            self.input = BytesMut::new();
        }
    }
}
