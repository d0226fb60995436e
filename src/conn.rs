//! One client connection: its socket, the bytes it sent that are not yet handled, the
//! replies not yet written, and what it is doing (answering requests, waiting on a
//! queue, streaming an oversized PUT, closing). It knows nothing of queues.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;

/// Bytes read per `read` call, into the server's one shared scratch buffer.
pub const READ_CHUNK: usize = 64 * 1024;

/// Once this many reply bytes wait unwritten, the server stops reading the
/// connection's requests until the client reads (backpressure).
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Buffers that grew past this are dropped once empty, so that an idle connection
/// holds no buffer memory and 10,000 idle clients cost a few MiB.
const KEEP_BUFFER: usize = 8 * 1024;

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
    },
    /// Receiving a `PUT` longer than the message limit: the first bytes are kept, the
    /// rest dropped as they arrive (`options` set for a `PUT` with a delay/priority).
    Streaming(Box<Oversize>),
    /// A `BYE` or fatal `ERROR` was queued; close once the output is written.
    Closing,
}

/// An oversized `PUT` in flight.
#[derive(Debug)]
pub struct Oversize {
    /// Target queue.
    pub queue: Box<str>,
    /// The payload bytes kept so far (at most the message limit).
    pub kept: Vec<u8>,
    /// Bytes to keep in all.
    pub keep: usize,
    /// Payload length the client declared.
    pub original: u32,
    /// Payload bytes still to come.
    pub remaining: usize,
    /// Delay and priority of a `PUT` with options.
    pub options: Option<crate::protocol::PutOptions>,
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

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// Unique for the server's lifetime (tokens are reused, ids never).
    pub id: u64,
    /// Peer address, for logs.
    pub peer: SocketAddr,
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
}

impl Connection {
    /// A new connection in the `Ready` state, with no buffer allocated.
    pub fn new(stream: TcpStream, id: u64, peer: SocketAddr) -> Self {
        Connection {
            stream,
            id,
            peer,
            input: BytesMut::new(),
            output: BytesMut::new(),
            held_replies: BytesMut::new(),
            state: State::Ready,
            read_closed: false,
            broken: false,
            hup_hint: false,
        }
    }

    /// Whether requests may be taken from this connection now.
    pub fn accepts_requests(&self) -> bool {
        matches!(self.state, State::Ready | State::Streaming(_))
            && self.output.len() < OUTPUT_HIGH_WATER
            && !self.broken
    }

    /// Whether settle requests (`ACK`, `NACK`, `TOUCH`) may be carried out now behind a
    /// parked receive, their replies held back (protocol.md 13.7).
    pub fn accepts_settles(&self) -> bool {
        matches!(self.state, State::Parked { .. })
            && !self.broken
            && self.output.len() < OUTPUT_HIGH_WATER
            && self.held_replies.len() < OUTPUT_HIGH_WATER
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
            && !matches!(self.state, State::Closing)
            && self.output.len() < OUTPUT_HIGH_WATER
            && self.input.len() < input_cap
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
        while !self.output.is_empty() && !self.broken {
            match self.stream.write(&self.output) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.output.advance(n);
                    // A short write means the socket buffer is full; a writable event
                    // will follow when it drains.
                    if !self.output.is_empty() {
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
        if self.output.is_empty() && self.output.capacity() > KEEP_BUFFER {
            self.output = BytesMut::new();
        }
    }

    /// Drops the input buffer's memory if it is empty and large.
    pub fn trim_input(&mut self) {
        if self.input.is_empty() && self.input.capacity() > KEEP_BUFFER {
            self.input = BytesMut::new();
        }
    }
}
