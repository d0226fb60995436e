//! A blocking beuss client over `std::net`, built on the same codec as the server.
//!
//! ```no_run
//! use std::time::Duration;
//! use beuss::Client;
//!
//! # fn main() -> Result<(), beuss::client::Error> {
//! let mut client = Client::connect("localhost:6552")?;
//! client.put("jobs", b"resize photo 42")?;
//! if let Some(message) = client.get_wait("jobs", Duration::from_secs(5))? {
//!     println!("got {} bytes", message.len());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Many requests can share one round trip: [`Client::put_many`], or the low-level
//! [`Client::send`] / [`Client::flush`] / [`Client::recv`] trio.
//!
//! Fan-out (protocol.md section 15: bindings, `PUB`, subscriptions, request/reply and
//! receives with metadata) is in [`Client::publish`], [`Client::bind`],
//! [`Client::subscribe`], [`Client::next_event`], [`Client::request`] and their
//! neighbours. A connection that subscribes gets `EVENT` frames between its replies;
//! every reply reader of this client sets them aside for [`Client::next_event`], so
//! no method ever takes an event for a reply.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use crate::protocol::{
    self, ErrorCode, PROTOCOL_VERSION, ProtocolError, QueueReport, Request, Response, StatsReport,
    Status, WAIT_FOREVER,
};
use crate::{DEFAULT_HOST, DEFAULT_PORT, join_host_port};

mod fanout;
mod jobs;
mod lease;
mod schedule;
mod stream;

pub use fanout::{Envelope, Event, Events, PublishOptions};
pub use jobs::{Expiry, Unique, UniquePut};
pub use lease::{Delivery, LeaseOptions, NackOptions, PutOptions};
pub use protocol::Holder;
pub use protocol::ScheduleInfo;
pub use protocol::{LeaseRef, Limits, Published, SettleResult};
pub use schedule::Schedule;
pub use stream::{Stream, UNIX_PREFIX, read_token_file};

/// Largest reply the client accepts: a server's largest message (1 GiB cap) plus headers.
const MAX_RESPONSE: u32 = (1 << 30) + 4096;
/// Requests written before their replies are read in [`Client::put_many`]: deep enough
/// to fill the pipe, small enough that neither side's buffers fill up and deadlock.
const PIPELINE_WINDOW: usize = 1024;
/// Bytes read per `read` call.
const READ_SIZE: usize = 64 * 1024;

/// How long [`Client::connect`] waits for each address the server's name resolves to
/// (a host that drops packets would otherwise hold it for the OS's minutes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Anything that can go wrong talking to a server.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be made: the name did not resolve, or no address it
    /// resolved to accepted within the connect timeout.
    Connect {
        /// The address as given (a string unquoted, other types in their `Debug` form).
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// The server sent bytes that break the protocol, or a request could not be encoded.
    Protocol(ProtocolError),
    /// The server answered `ERROR`.
    Server {
        /// Wire error code (see [`ErrorCode::from_u16`]).
        code: u16,
        /// True when the server closes the connection after it.
        fatal: bool,
        /// The server's explanation.
        message: String,
    },
    /// The server answered with a reply that does not fit the request.
    Unexpected(String),
    /// A `REQ` matched no bound queue and no subscription: nobody could answer
    /// (`ERROR NO_RESPONDERS`, not fatal; nothing was stored).
    NoResponders {
        /// The server's explanation.
        message: String,
    },
    /// A `PUB` asked for more confirmations than queues are bound to its subject
    /// (`ERROR TOO_FEW_COPIES`, not fatal; nothing was published).
    TooFewCopies {
        /// The server's explanation, with both numbers.
        message: String,
    },
    /// The server does not have a feature this call needs (an older server).
    Unsupported {
        /// The feature, e.g. `"fan-out"`.
        feature: &'static str,
        /// The server's software and version, from its `HELLO` reply.
        server: String,
        /// The protocol version the server speaks.
        version: u16,
    },
}

impl Error {
    /// The server's error code, if this is a known server error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => ErrorCode::from_u16(*code),
            Error::NoResponders { .. } => Some(ErrorCode::NoResponders),
            Error::TooFewCopies { .. } => Some(ErrorCode::TooFewCopies),
            _ => None,
        }
    }

    /// True if the server refused a `PUT` because its memory cap is reached.
    pub fn is_full(&self) -> bool {
        self.code() == Some(ErrorCode::Full)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Io(e) => write!(f, "connection error: {e}"),
            Error::Closed => f.write_str("the server closed the connection"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Server { code, message, .. } => match ErrorCode::from_u16(*code) {
                Some(name) => write!(f, "server error {name}: {message}"),
                None => write!(f, "server error {code}: {message}"),
            },
            Error::Unexpected(what) => write!(f, "unexpected reply: {what}"),
            Error::NoResponders { message } => write!(f, "no responders: {message}"),
            Error::TooFewCopies { message } => write!(f, "too few copies: {message}"),
            Error::Unsupported {
                feature,
                server,
                version,
            } => write!(
                f,
                "the server ({server}, protocol version {version}) has no {feature}; \
                 this needs a newer beuss-server"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Io(source) => Some(source),
            Error::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

/// Result alias for client calls.
pub type Result<T> = std::result::Result<T, Error>;

/// How a `PUT` was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStatus {
    /// Stored whole.
    Stored,
    /// Stored cut to the server's message size limit.
    Truncated {
        /// Bytes sent.
        original_len: u32,
        /// Bytes kept.
        stored_len: u32,
    },
}

/// What the server said about itself in reply to `HELLO`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// Protocol version both sides will speak.
    pub version: u16,
    /// The server's message size limit (`BMAXMESSAGESIZE`).
    pub max_message_size: u32,
    /// Server software and version.
    pub server: String,
    /// Features and lease limits of a version-2 server; `None` from version 1.
    pub limits: Option<Limits>,
}

impl ServerInfo {
    /// The figures of a `HELLO` reply, for a program that exchanged its `HELLO`
    /// itself before handing the stream to [`Client::from_stream`] (then
    /// [`Client::set_server_info`]); `None` for any other reply.
    pub fn from_response(response: &Response<'_>) -> Option<ServerInfo> {
        match response {
            Response::Hello {
                version,
                max_message_size,
                server,
                limits,
            } => Some(ServerInfo {
                version: *version,
                max_message_size: *max_message_size,
                server: (*server).to_owned(),
                limits: *limits,
            }),
            _ => None,
        }
    }

    /// True if the server has every feature bit of `feature` (for example
    /// [`protocol::FEATURE_FANOUT`]); a version-1 server has none.
    pub fn has(&self, feature: u32) -> bool {
        self.limits.is_some_and(|l| l.features & feature == feature)
    }
}

/// A blocking connection to a beuss server.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    /// Received bytes live in `rbuf[rstart..rend]`.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Length of the reply last returned by `recv`, dropped at the next call (the
    /// reply borrows from `rbuf` until then).
    last: usize,
    /// Encoded requests not yet written.
    wbuf: Vec<u8>,
    /// Requests sent whose replies have not been read yet.
    awaiting: usize,
    /// The read and write timeout the caller chose (see [`Client::set_timeout`]);
    /// calls that wait change the socket's for a while and put this back.
    timeout: Option<Duration>,
    /// The read timeout the socket has now, to skip setting it again.
    applied: Option<Duration>,
    /// What `HELLO` said, once it has been exchanged.
    server: Option<ServerInfo>,
    /// `server` showed fan-out, checked once.
    fanout_ok: bool,
    /// `EVENT`s read while looking for a reply, oldest first, for `next_event`.
    events: VecDeque<Event>,
    /// Payload and subject bytes held in `events`.
    event_bytes: usize,
    /// Most bytes `events` may hold before new events are dropped.
    event_limit: usize,
    /// Events this client dropped (its buffer was full), per subscription, not yet
    /// reported: added to the `dropped` count of that subscription's next event.
    unreported_drops: HashMap<u32, u32>,
    /// Events this client dropped since it connected.
    events_dropped: u64,
}

/// The address the environment points at: `unix:PATH` when `BUNIX` is set (protocol.md
/// 16.6), else `BHOST`/`BPORT` (`localhost:6552` when unset).
pub fn address_from_env() -> String {
    if let Some(path) = std::env::var_os("BUNIX").filter(|p| !p.is_empty()) {
        return format!("{UNIX_PREFIX}{}", path.to_string_lossy());
    }
    let host = std::env::var("BHOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    let port = std::env::var("BPORT")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PORT.to_string());
    join_host_port(host.trim(), port.trim())
}

impl Client {
    /// Connects to `addr`, anything [`TcpStream::connect`] takes: `"localhost:6552"`,
    /// `("localhost", 6552)`, a [`SocketAddr`]... Each address it resolves to is tried
    /// in turn, each for up to [`CONNECT_TIMEOUT`].
    ///
    /// # Errors
    /// [`Error::Connect`] naming the address and the last reason.
    pub fn connect<A: ToSocketAddrs + fmt::Debug>(addr: A) -> Result<Client> {
        Client::connect_timeout(addr, CONNECT_TIMEOUT)
    }

    /// Like [`Client::connect`], waiting up to `timeout` for each address (a zero
    /// `timeout` is refused by the OS as an invalid argument).
    ///
    /// # Errors
    /// [`Error::Connect`] naming the address and the last reason.
    pub fn connect_timeout<A: ToSocketAddrs + fmt::Debug>(
        addr: A,
        timeout: Duration,
    ) -> Result<Client> {
        let connect_error = |source| Error::Connect {
            addr: label(&addr),
            source,
        };
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(connect_error)?.collect();
        let mut last_error = None;
        for candidate in &addrs {
            match TcpStream::connect_timeout(candidate, timeout) {
                Ok(stream) => return Client::from_stream(Stream::Tcp(stream)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(connect_error(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "resolved to no address")
        })))
    }

    /// Connects to `addr` given as text: `unix:PATH` for a Unix socket (protocol.md
    /// 16.6), else `host:port` as for [`Client::connect`].
    ///
    /// # Errors
    /// [`Error::Connect`] naming the address and the reason.
    pub fn connect_to(addr: &str) -> Result<Client> {
        let stream = Stream::connect(addr, CONNECT_TIMEOUT).map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        Client::from_stream(stream)
    }

    /// Connects to the server the environment names ([`address_from_env`]: `BUNIX`,
    /// else `BHOST`/`BPORT`, else `localhost:6552`) and, when `BAUTHFILE` names a
    /// token file, authenticates with its first token ([`read_token_file`]).
    ///
    /// # Errors
    /// As [`Client::connect_to`] and [`Client::auth`]; [`Error::Io`] if the token file
    /// cannot be read.
    pub fn connect_env() -> Result<Client> {
        let mut client = Client::connect_to(&address_from_env())?;
        if let Some(path) = std::env::var_os("BAUTHFILE").filter(|p| !p.is_empty()) {
            client.auth_file(Path::new(&path))?;
        }
        Ok(client)
    }

    /// Authenticates with `token` (protocol.md 16.2). Returns true when the token is
    /// read-only. A server that requires no authentication accepts any token.
    ///
    /// # Errors
    /// [`Error::Server`] with code `AUTH_FAILED` (fatal: the connection is closed)
    /// for a token the server does not have, `UNKNOWN_OPCODE` from a server older
    /// than version 4; [`Error::Protocol`] for a token over 1022 bytes.
    pub fn auth(&mut self, token: &[u8]) -> Result<bool> {
        match self.call(&Request::Auth { token })? {
            Response::Authed { read_only } => Ok(read_only),
            other => Err(unexpected("AUTHED", &other)),
        }
    }

    /// [`Client::auth`] with the first token of the file at `path` (the format the
    /// server's `BAUTHFILE` has; [`read_token_file`]).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read or holds no token; else as
    /// [`Client::auth`].
    pub fn auth_file(&mut self, path: &Path) -> Result<bool> {
        let token = read_token_file(path)?;
        self.auth(&token)
    }

    /// Wraps a connected stream: a [`TcpStream`], a Unix socket's stream, or a
    /// [`Stream`].
    ///
    /// # Errors
    /// Setting `TCP_NODELAY` failed.
    pub fn from_stream(stream: impl Into<Stream>) -> Result<Client> {
        let stream = stream.into();
        stream.set_nodelay()?;
        // A stream may come with timeouts set (the beuss command sets its own).
        let timeout = stream.read_timeout()?;
        Ok(Client {
            stream,
            rbuf: vec![0; READ_SIZE],
            rstart: 0,
            rend: 0,
            last: 0,
            wbuf: Vec::new(),
            awaiting: 0,
            timeout,
            applied: timeout,
            server: None,
            fanout_ok: false,
            events: VecDeque::new(),
            event_bytes: 0,
            event_limit: fanout::EVENT_BUFFER,
            unreported_drops: HashMap::new(),
            events_dropped: 0,
        })
    }

    /// Sets how long a read or write may block before failing with
    /// [`io::ErrorKind::WouldBlock`]/`TimedOut` (`None`: forever, the default). A
    /// waiting `GET` needs a timeout longer than its wait; the fan-out calls that
    /// wait on the server ([`Client::request`], a confirmed [`Client::publish_with`],
    /// [`Client::get_with_meta`], [`Client::lease_with_meta`]) add their wait to it
    /// themselves, and [`Client::next_event`] takes its own.
    ///
    /// # Errors
    /// The OS refused the setting.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)?;
        self.timeout = timeout;
        self.applied = timeout;
        Ok(())
    }

    /// What the server's `HELLO` reply said, once [`Client::hello`] (or a fan-out
    /// call, or [`Client::set_server_info`]) has exchanged it.
    pub fn server_info(&self) -> Option<&ServerInfo> {
        self.server.as_ref()
    }

    /// Tells the client what the server answered to a `HELLO` sent on this stream
    /// before [`Client::from_stream`] (see [`ServerInfo::from_response`]), so that
    /// fan-out calls do not send a second one.
    pub fn set_server_info(&mut self, info: ServerInfo) {
        self.fanout_ok = false;
        self.server = Some(info);
    }

    /// Checks the server is alive.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn ping(&mut self) -> Result<()> {
        match self.call(&Request::Ping)? {
            Response::Pong => Ok(()),
            other => Err(unexpected("PONG", &other)),
        }
    }

    /// Exchanges versions and limits with the server. The protocol wants it as the
    /// first request of a connection that uses anything newer than version 1; the
    /// fan-out calls send it themselves if it was not.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn hello(&mut self) -> Result<ServerInfo> {
        let response = self.call(&Request::Hello {
            version: PROTOCOL_VERSION,
        })?;
        let Some(info) = ServerInfo::from_response(&response) else {
            return Err(unexpected("HELLO", &response));
        };
        self.set_server_info(info.clone());
        Ok(info)
    }

    /// Appends a message to `queue`.
    ///
    /// ```no_run
    /// # let mut client = beuss::Client::connect("localhost:6552").unwrap();
    /// use beuss::client::PutStatus;
    /// match client.put("jobs", b"hello").unwrap() {
    ///     PutStatus::Stored => {}
    ///     PutStatus::Truncated { original_len, stored_len } => {
    ///         eprintln!("kept {stored_len} of {original_len} bytes")
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    /// Any [`Error`]; a full server gives an error for which [`Error::is_full`] holds.
    pub fn put(&mut self, queue: &str, payload: &[u8]) -> Result<PutStatus> {
        self.send(&Request::Put { queue, payload })?;
        self.flush()?;
        self.recv_put()
    }

    /// Appends many messages to `queue` in few round trips (requests are pipelined).
    /// Returns one status per message, in order.
    ///
    /// # Errors
    /// The first [`Error`]; messages before it were stored.
    pub fn put_many<I, P>(&mut self, queue: &str, payloads: I) -> Result<Vec<PutStatus>>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let mut statuses = Vec::new();
        let mut in_flight = 0;
        for payload in payloads {
            self.send(&Request::Put {
                queue,
                payload: payload.as_ref(),
            })?;
            in_flight += 1;
            if in_flight == PIPELINE_WINDOW {
                self.flush()?;
                for _ in 0..in_flight {
                    statuses.push(self.recv_put()?);
                }
                in_flight = 0;
            }
        }
        self.flush()?;
        for _ in 0..in_flight {
            statuses.push(self.recv_put()?);
        }
        Ok(statuses)
    }

    fn recv_put(&mut self) -> Result<PutStatus> {
        match self.recv()? {
            Response::Stored => Ok(PutStatus::Stored),
            Response::Truncated {
                original_len,
                stored_len,
            } => Ok(PutStatus::Truncated {
                original_len,
                stored_len,
            }),
            other => Err(unexpected("STORED or TRUNCATED", &other)),
        }
    }

    /// Takes the oldest message of `queue`, or `None` at once if it is empty.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn get(&mut self, queue: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_batch(queue, 1, Duration::ZERO)?.pop())
    }

    /// Takes the oldest message of `queue`, waiting up to `wait` for one to arrive;
    /// `None` if none came. [`Duration::MAX`] waits forever.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn get_wait(&mut self, queue: &str, wait: Duration) -> Result<Option<Vec<u8>>> {
        Ok(self.get_batch(queue, 1, wait)?.pop())
    }

    /// Takes up to `max` messages of `queue`, oldest first, waiting up to `wait` for
    /// the first; empty if none came. The server may return fewer than `max` (it
    /// stops near 1 MiB per reply).
    ///
    /// # Errors
    /// Any [`Error`]; `max` of 0 is refused by the server as `BAD_ARGUMENT`.
    pub fn get_batch(&mut self, queue: &str, max: u16, wait: Duration) -> Result<Vec<Vec<u8>>> {
        self.send(&Request::Get {
            queue,
            wait_ms: wait_ms(wait),
            max,
        })?;
        self.flush()?;
        match self.recv()? {
            Response::Messages(messages) => Ok(messages.iter().map(<[u8]>::to_vec).collect()),
            Response::Empty => Ok(Vec::new()),
            other => Err(unexpected("MESSAGES or EMPTY", &other)),
        }
    }

    /// Drops every message of `queue`; returns how many there were.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn purge(&mut self, queue: &str) -> Result<u64> {
        match self.call(&Request::Purge { queue })? {
            Response::Purged { count } => Ok(count),
            other => Err(unexpected("PURGED", &other)),
        }
    }

    /// Server-wide and per-queue figures.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn stats(&mut self) -> Result<StatsReport> {
        match self.call(&Request::Stats { queue: None })? {
            Response::Stats(report) => Ok(report),
            other => Err(unexpected("STATS", &other)),
        }
    }

    /// One queue's figures, or `None` if the queue does not exist.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn queue_stats(&mut self, queue: &str) -> Result<Option<QueueReport>> {
        match self.call(&Request::Stats { queue: Some(queue) })? {
            Response::Stats(report) => Ok(report.queues.into_iter().next()),
            other => Err(unexpected("STATS", &other)),
        }
    }

    /// Says goodbye and closes the connection.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn quit(mut self) -> Result<()> {
        match self.call(&Request::Quit)? {
            Response::Bye => {
                let _ = self.stream.shutdown(Shutdown::Both);
                Ok(())
            }
            other => Err(unexpected("BYE", &other)),
        }
    }

    /// Encodes a request into the write buffer; nothing is sent until
    /// [`Client::flush`]. With `recv`, this is the pipelining interface:
    /// send N requests, flush once, then `recv` N replies in order.
    ///
    /// # Errors
    /// [`Error::Protocol`] if the request cannot be encoded (bad queue name).
    pub fn send(&mut self, request: &Request<'_>) -> Result<()> {
        request.encode(&mut self.wbuf)?;
        self.awaiting += 1;
        Ok(())
    }

    /// Writes every buffered request.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads the next reply. An `ERROR` reply is returned as [`Error::Server`]
    /// (`NO_RESPONDERS` and `TOO_FEW_COPIES` as [`Error::NoResponders`] and
    /// [`Error::TooFewCopies`]). `EVENT` frames that come before it are not
    /// replies: they are set aside for [`Client::next_event`], so this never returns
    /// [`Response::Event`].
    ///
    /// # Errors
    /// [`Error::Closed`] if the server hung up, or any other [`Error`].
    pub fn recv(&mut self) -> Result<Response<'_>> {
        self.fill_reply()?;
        self.decode_reply()
    }

    /// Reads until a whole frame that is not an `EVENT` starts the buffer, setting
    /// aside the events before it.
    fn fill_reply(&mut self) -> Result<()> {
        self.rstart += std::mem::take(&mut self.last);
        loop {
            let needed = self.frame_len_needed(0);
            if let Some(needed) = needed
                && self.rend - self.rstart >= needed
            {
                if !self.is_event_at(self.rstart, needed) {
                    return Ok(());
                }
                let event = fanout::owned_event(&self.rbuf[self.rstart..self.rstart + needed])?;
                self.rstart += needed;
                self.stash_event(event);
                continue;
            }
            self.fill(needed)?;
        }
    }

    /// Decodes the reply [`Client::fill_reply`] left at the front of the buffer.
    fn decode_reply(&mut self) -> Result<Response<'_>> {
        let buf = &self.rbuf[self.rstart..self.rend];
        let Some((response, used)) = protocol::decode_response(buf, MAX_RESPONSE)? else {
            return Err(Error::Unexpected("incomplete frame".to_owned()));
        };
        self.last = used;
        self.awaiting = self.awaiting.saturating_sub(1);
        if let Response::Error {
            code,
            fatal,
            message,
        } = response
        {
            let message = message.to_owned();
            return Err(match ErrorCode::from_u16(code) {
                Some(ErrorCode::NoResponders) if !fatal => Error::NoResponders { message },
                Some(ErrorCode::TooFewCopies) if !fatal => Error::TooFewCopies { message },
                _ => Error::Server {
                    code,
                    fatal,
                    message,
                },
            });
        }
        Ok(response)
    }

    /// Total bytes of the frame that starts `offset` bytes after `rstart`, once its
    /// length prefix is buffered.
    fn frame_len_needed(&self, offset: usize) -> Option<usize> {
        let at = self.rstart + offset;
        let prefix = self.rbuf[..self.rend].get(at..at + 4)?;
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        Some(4 + len.min(MAX_RESPONSE) as usize)
    }

    /// True if the whole frame of `len` bytes at `at` is an `EVENT`.
    fn is_event_at(&self, at: usize, len: usize) -> bool {
        len > protocol::LEN_PREFIX && self.rbuf[at + protocol::LEN_PREFIX] == Status::Event as u8
    }

    /// Reads more bytes, making room for a frame of `needed` bytes if known.
    fn fill(&mut self, needed: Option<usize>) -> Result<()> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        let want = needed.unwrap_or(4);
        if self.rstart + want > self.rbuf.len() || self.rend == self.rbuf.len() {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rbuf.len() < want {
            self.rbuf.resize(want, 0);
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => {
                    self.rend += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// Sends `request` and reads its reply.
    /// Says HELLO if nobody did yet, then checks that the server speaks `version`
    /// and announces `bit`.
    fn require_feature(&mut self, version: u16, bit: u32, feature: &'static str) -> Result<()> {
        if self.server.is_none() {
            if self.awaiting > 0 {
                return Err(Error::Unexpected(format!(
                    "call Client::hello before pipelining requests for {feature}"
                )));
            }
            self.hello()?;
        }
        let Some(info) = &self.server else {
            return Err(Error::Unexpected("no HELLO reply".to_owned()));
        };
        if info.version < version || !info.has(bit) {
            return Err(Error::Unsupported {
                feature,
                server: info.server.clone(),
                version: info.version,
            });
        }
        Ok(())
    }

    fn call(&mut self, request: &Request<'_>) -> Result<Response<'_>> {
        self.send(request)?;
        self.flush()?;
        self.recv()
    }

    // ---- Streaming PUT (added for `beuss PUT`; self-contained, touches nothing above) ----

    /// Appends one message of exactly `len` bytes, read from `payload`, to `queue`,
    /// without holding it in memory: the frame's head is sent, then the payload is
    /// copied to the socket in 64 KiB pieces. The frame's length must be known before
    /// its first byte is sent, hence `len`.
    ///
    /// ```no_run
    /// # let mut client = beuss::Client::connect("localhost:6552").unwrap();
    /// let file = std::fs::File::open("photo.jpg").unwrap();
    /// let len = file.metadata().unwrap().len() as u32;
    /// client.put_reader("photos", len, file).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Protocol`] for a bad queue name or a frame that would pass `2^32 - 1`
    /// bytes (nothing is sent then). [`Error::Io`] if `payload` fails or ends before
    /// `len` bytes: the connection is then shut down mid-frame, so the server stores
    /// nothing, and this client cannot be used again. Otherwise as [`Client::put`].
    pub fn put_reader(
        &mut self,
        queue: &str,
        len: u32,
        mut payload: impl Read,
    ) -> Result<PutStatus> {
        let frame_len = (2 + 1 + queue.len() as u64 + u64::from(len))
            .try_into()
            .map_err(|_| ProtocolError::FrameTooLarge {
                len: u32::MAX,
                max: u32::MAX,
            })?;
        // The codec writes (and checks) the head of a PUT with no payload; only its
        // length prefix changes to cover the payload that follows.
        let head = self.wbuf.len();
        self.send(&Request::Put {
            queue,
            payload: &[],
        })?;
        self.wbuf[head..head + 4].copy_from_slice(&u32::to_be_bytes(frame_len));
        let mut left = len as usize;
        while left > 0 {
            // Read straight into the write buffer: no copy of our own, and the head
            // travels with the first piece.
            let start = self.wbuf.len();
            let want = left.min(READ_SIZE);
            self.wbuf.resize(start + want, 0);
            let got = loop {
                match payload.read(&mut self.wbuf[start..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            let n = match got {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the payload ended {left} bytes short of the {len} announced"),
                )),
                Ok(n) => Ok(n),
                Err(e) => Err(e),
            }
            .inspect_err(|_| {
                self.wbuf.clear();
                let _ = self.stream.shutdown(Shutdown::Both);
            })?;
            self.wbuf.truncate(start + n);
            left -= n;
            if self.wbuf.len() >= READ_SIZE {
                self.flush()?;
            }
        }
        self.flush()?;
        self.recv_put()
    }
}

/// How an address given to [`Client::connect`] is named in errors: a string as
/// written (`localhost:6552`, not `"localhost:6552"`), anything else by `Debug`.
fn label(addr: &impl fmt::Debug) -> String {
    let text = format!("{addr:?}");
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains(['"', '\\']) => inner.to_owned(),
        _ => text,
    }
}

/// Converts a wait to the wire's milliseconds: rounded up so a tiny wait still
/// waits, and capped so that only [`Duration::MAX`] means forever.
fn wait_ms(wait: Duration) -> u32 {
    if wait == Duration::MAX {
        return WAIT_FOREVER;
    }
    let ms = wait.as_nanos().div_ceil(1_000_000);
    ms.min(u128::from(WAIT_FOREVER - 1)) as u32
}

fn unexpected(expected: &str, got: &Response<'_>) -> Error {
    let got = match got {
        Response::Messages(m) => format!("MESSAGES ({} messages)", m.len()),
        Response::Stats(_) => "STATS".to_owned(),
        other => format!("{other:?}"),
    };
    Error::Unexpected(format!("expected {expected}, got {got}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits round up to whole milliseconds and only Duration::MAX is forever.
    #[test]
    fn wait_conversion() {
        assert_eq!(wait_ms(Duration::ZERO), 0);
        assert_eq!(wait_ms(Duration::from_micros(1)), 1);
        assert_eq!(wait_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(wait_ms(Duration::from_secs(10_000_000)), WAIT_FOREVER - 1);
        assert_eq!(wait_ms(Duration::MAX), WAIT_FOREVER);
    }

    /// An address is named as the caller wrote it.
    #[test]
    fn address_labels() {
        assert_eq!(label(&"localhost:6552"), "localhost:6552");
        assert_eq!(label(&String::from("[::1]:7")), "[::1]:7");
        assert_eq!(label(&("localhost", 6552)), "(\"localhost\", 6552)");
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(label(&addr), "127.0.0.1:9");
    }

    /// `connect` takes any `ToSocketAddrs`; a refused connection names the address.
    #[test]
    fn connect_takes_any_socket_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        Client::connect(addr).unwrap();
        Client::connect(("127.0.0.1", addr.port())).unwrap();
        Client::connect_timeout(format!("127.0.0.1:{}", addr.port()), Duration::from_secs(5))
            .unwrap();
        drop(listener);
        // The port is free now (nothing else binds it this fast on loopback).
        match Client::connect(format!("127.0.0.1:{}", addr.port())) {
            Err(Error::Connect {
                addr: named,
                source,
            }) => {
                assert_eq!(named, format!("127.0.0.1:{}", addr.port()));
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected Error::Connect, got {other:?}"),
        }
    }

    /// IPv6 hosts get brackets.
    #[test]
    fn host_port_joining() {
        assert_eq!(join_host_port("localhost", "6552"), "localhost:6552");
        assert_eq!(join_host_port("::1", "7"), "[::1]:7");
        assert_eq!(join_host_port("[::1]", "7"), "[::1]:7");
    }
}
