//! The event loop: one thread, one `mio::Poll`, connections in a slab indexed by token.
//!
//! Each turn reads the clock once, handles every ready socket, wakes the consumers a
//! `PUT` handed a message to, and runs the store's timers (waits that ran out, idle
//! queues). The poll timeout is the store's next deadline, so there is no timer thread
//! and no polling delay. Requests are decoded straight from one shared read buffer;
//! only a partial frame is copied into a connection's own buffer. Replies to all the
//! requests found in one read go out in one `write`.

mod auth;
mod batch;
mod durable;
mod fanout;
mod hygiene;
mod jobs;
mod leases;
mod requests;
mod schedules;

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use log::{debug, info, warn};
use mio::event::Event;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::auth::{Access, LogLimit, Penalties, Tokens};
use crate::config::Config;
use crate::conn::{
    self, CLOSE_DISCARD, Connection, Linger, Oversize, READ_CHUNK, ReadOutcome, State, Streamed,
};
use crate::journal::Journal;
use crate::net;
use crate::protocol::{self, Decoded, ErrorCode, MAX_CONTROL_FRAME, Request};
use crate::store::Store;
use crate::transport::{self, Listener, Peer, Stream};

/// Token of the signal pipe; the journal's waker and the listeners sit just below
/// it, connections use slab keys.
const SIGNAL: Token = Token(usize::MAX);
/// Token of the first listener.
const LISTENER_BASE: usize = usize::MAX - 64;
/// Listeners at most (one host name rarely resolves to more than a few addresses);
/// their tokens end below the waker's.
const MAX_LISTENERS: usize = 63;
/// Pause before accepting again when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Read calls one connection gets per turn before others have theirs.
const MAX_ROUNDS: usize = 32;
/// How long shutdown waits for pending replies to be written.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A waiter handle: the connection's slab key plus its id, because keys are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    key: usize,
    id: u64,
}

/// Counters the store does not keep.
#[derive(Debug, Default)]
struct Counters {
    connections_total: u64,
    connections_rejected: u64,
    protocol_errors: u64,
    auth_failures: u64,
    auth_required: u64,
    forbidden: u64,
    idle_timeouts: u64,
    frame_timeouts: u64,
    connections_rejected_address: u64,
}

/// The beuss server: bound listeners, connections, queues.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Option<Signals>,
    /// O(1) lookup by token; freed slots are reused.
    conns: Slab<Connection>,
    store: Store<ConnRef>,
    config: Config,
    counters: Counters,
    started: Instant,
    next_id: u64,
    /// The one read buffer shared by all connections.
    scratch: Vec<u8>,
    /// Connections to service again this turn: consumers just handed a message may
    /// have requests held back behind their `GET`.
    ready: VecDeque<ConnRef>,
    /// Connections that used up their reads this turn; serviced next turn.
    deferred: Vec<ConnRef>,
    accept_paused_until: Option<Instant>,
    /// Most bytes a connection may hold unprocessed: one largest frame plus one read.
    input_cap: usize,
    stop: bool,
    /// The journal, with `BDATADIR`.
    journal: Option<Journal>,
    /// Its durable log position, which every connection reads before writing
    /// (`u64::MAX` without a journal: nothing waits).
    durable: Rc<Cell<u64>>,
    /// Connections with replies waiting for the journal.
    holding: Vec<ConnRef>,
    /// Records taken from the store, on their way to the journal.
    log_buf: Vec<u8>,
    /// Subscriptions, and the requests and publishes waiting for answers.
    fanout: fanout::Fanout,
    /// The tokens of `BAUTHFILE`; `None`: no authentication.
    tokens: Option<Tokens>,
    /// Failed `AUTH`s per client address, for the wait before the next answer.
    penalties: Penalties,
    /// Connections whose `AUTH_FAILED` waits, with when it goes out.
    penalized: Vec<(Instant, ConnRef)>,
    /// Keeps failed attempts from flooding the log.
    auth_log: LogLimit,
    /// Open TCP connections per client address, with `BMAXPERADDRESS`.
    per_address: HashMap<IpAddr, u32>,
    /// When the connections are next checked against their timeouts.
    next_sweep: Option<Instant>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.local_addrs())
            .field("connections", &self.conns.len())
            .field("queues", &self.store.queue_count())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the configured address (every address the host name resolves to) and
    /// sets up the poller. Nothing is served until [`Server::run`].
    ///
    /// # Errors
    /// The poller could not be created or no address could be bound.
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let tokens = match &config.auth_file {
            Some(path) => Some(auth::load_tokens(path).map_err(io::Error::other)?),
            None => None,
        };
        let mut listeners = Vec::new();
        if config.tcp {
            listeners.extend(
                net::bind_all(&config.address())?
                    .into_iter()
                    .map(Listener::Tcp),
            );
        }
        listeners.truncate(MAX_LISTENERS - 1);
        if let Some(path) = &config.unix_path {
            listeners.push(transport::bind_unix(path, config.unix_mode)?);
        }
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener, Token(LISTENER_BASE + i), Interest::READABLE)?;
        }
        match net::raise_fd_limit(config.max_connections) {
            Ok(limit) if (limit as usize) < config.max_connections + 16 => warn!(
                "open-file limit is {limit}, below BMAXCONNECTIONS={}; \
                 connections past it will be refused by the OS",
                config.max_connections
            ),
            Ok(_) => {}
            Err(e) => warn!("cannot read or raise the open-file limit: {e}"),
        }
        let mut store = Store::new(config.max_memory, config.queue_idle);
        // Before the replay: the cap on remembered keys applies again at start
        // (protocol.md 18.4).
        store.set_max_remembered_keys(config.max_unique_keys);
        let journal = durable::open(&config, &poll, &mut store)?;
        // After the replay: what was acknowledged before a restart is never refused,
        // even if the caps were lowered since (protocol.md 7.4).
        store.set_queue_caps(config.queue_max_messages, config.queue_max_bytes);
        for (queue, ttl) in &config.queue_ttls {
            store.set_default_ttl(queue, *ttl);
        }
        let durable = Rc::new(Cell::new(if journal.is_some() { 0 } else { u64::MAX }));
        let input_cap = config.max_message_size + MAX_CONTROL_FRAME as usize + READ_CHUNK;
        Ok(Server {
            poll,
            listeners,
            signals: None,
            conns: Slab::new(),
            store,
            config,
            counters: Counters::default(),
            started: Instant::now(),
            next_id: 0,
            scratch: vec![0; READ_CHUNK],
            ready: VecDeque::new(),
            deferred: Vec::new(),
            accept_paused_until: None,
            input_cap,
            stop: false,
            journal,
            durable,
            holding: Vec::new(),
            log_buf: Vec::new(),
            fanout: fanout::Fanout::default(),
            tokens,
            penalties: Penalties::default(),
            penalized: Vec::new(),
            auth_log: LogLimit::new(Duration::from_secs(1)),
            per_address: HashMap::new(),
            next_sweep: None,
        })
    }

    /// The TCP addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(Listener::tcp_addr)
            .collect()
    }

    /// Makes SIGINT and SIGTERM stop the server cleanly: stop accepting, write what
    /// is pending, log what was held, and return from [`Server::run`].
    ///
    /// # Errors
    /// The signal handlers could not be installed.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNAL, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Serves until a signal (see [`Server::handle_signals`]) asks it to stop.
    ///
    /// # Errors
    /// Only if polling itself fails; client errors never end the loop.
    pub fn run(&mut self) -> io::Result<()> {
        self.log_startup();
        let mut events = Events::with_capacity(1024);
        while !self.stop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            if self.journal.is_some() {
                self.store.set_log_clock(now, crate::civil::now_ms());
            }
            for r in std::mem::take(&mut self.deferred) {
                self.service(r, now);
            }
            for event in events.iter() {
                self.dispatch(event, now);
            }
            self.drain_ready(now);
            self.run_timers(now);
            self.flush_events();
            self.journal_turn(now);
        }
        self.shutdown();
        Ok(())
    }

    /// Logs where the server listens and with which limits, and warns when an
    /// address other machines can reach is bound: there is no authentication, and
    /// users of the Go beuss, which always listened on every interface, may not
    /// expect the default to be loopback only.
    fn log_startup(&self) {
        let bound = self.local_addrs();
        let everywhere: Vec<String> = self.listeners.iter().map(Listener::describe).collect();
        let exposed: Vec<String> = bound
            .iter()
            .filter(|a| !net::is_loopback(a.ip()))
            .map(|a| a.to_string())
            .collect();
        let reach = if bound.is_empty() {
            "the Unix socket only: TCP is off (BPORT=off)"
        } else if exposed.is_empty() {
            "loopback only: other machines cannot connect; set BHOST=0.0.0.0 to accept them"
        } else if bound.iter().any(|a| a.ip().is_unspecified()) {
            "every network interface"
        } else {
            "reachable from other machines"
        };
        info!(
            "listening on {} ({reach}); max message {} bytes, max memory {} bytes, \
             max connections {}, queue idle {}",
            everywhere.join(", "),
            self.config.max_message_size,
            self.config.max_memory,
            self.config.max_connections,
            self.config
                .queue_idle
                .map_or("never".to_owned(), |d| format!("{d:?}")),
        );
        self.log_security(&exposed);
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.deferred.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.store.next_deadline(),
            self.fanout.next_deadline(),
            self.accept_paused_until,
            self.journal_deadline(now),
            self.schedule_deadline(now),
            self.penalized.iter().map(|(at, _)| *at).min(),
            self.next_sweep,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now))
    }

    fn dispatch(&mut self, event: &Event, now: Instant) {
        match event.token() {
            SIGNAL => self.on_signal(),
            // A sync finished: the end of this turn takes its report.
            durable::WAKER => {}
            Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE, now),
            Token(key) => {
                let Some(conn) = self.conns.get_mut(key) else {
                    return; // a connection closed earlier in this batch
                };
                if event.is_read_closed() || event.is_error() {
                    conn.hup_hint = true;
                }
                let r = ConnRef { key, id: conn.id };
                self.service(r, now);
            }
        }
    }

    fn on_signal(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let mut reload = false;
        for signal in signals.pending() {
            if signal == SIGHUP {
                reload = true;
                continue;
            }
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            info!("{name} received: shutting down");
            self.stop = true;
        }
        if reload {
            self.reload_tokens();
        }
    }

    fn run_timers(&mut self, now: Instant) {
        if let Some(at) = self.accept_paused_until
            && at <= now
        {
            self.accept_paused_until = None;
            for i in 0..self.listeners.len() {
                self.accept(i, now);
            }
        }
        let mut timed_out = Vec::new();
        self.store.expire(now, |w| timed_out.push(w));
        for r in timed_out {
            if let Some(conn) = self.conn_mut(r) {
                protocol::encode_empty(&mut conn.output, protocol::Status::Empty);
                conn.unpark();
                self.ready.push_back(r);
            }
        }
        self.run_schedules(now);
        self.drain_handoffs(now);
        self.expire_waits(now);
        self.release_penalized(now);
        self.sweep(now);
        self.drain_ready(now);
    }

    fn drain_ready(&mut self, now: Instant) {
        while let Some(r) = self.ready.pop_front() {
            self.service(r, now);
        }
    }

    fn accept(&mut self, index: usize, now: Instant) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    if net::is_fd_exhaustion(&e) {
                        warn!("accept: {e}; pausing new connections for a moment");
                    } else {
                        warn!("accept: {e}");
                    }
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: Stream, peer: Peer, now: Instant) {
        if self.conns.len() >= self.config.max_connections {
            self.counters.connections_rejected += 1;
            let n = self.counters.connections_rejected;
            if n.is_power_of_two() {
                warn!(
                    "{peer}: refused, at BMAXCONNECTIONS={} ({n} refused so far)",
                    self.config.max_connections
                );
            }
            let text = format!(
                "server is at its limit of {} connections (BMAXCONNECTIONS); try again later",
                self.config.max_connections
            );
            self.refuse(&mut stream, &text);
            return;
        }
        if let Some(text) = self.over_address_cap(peer) {
            self.refuse(&mut stream, &text);
            return;
        }
        if let Err(e) = stream.set_nodelay() {
            debug!("{peer}: setsockopt TCP_NODELAY: {e}");
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        // Registered for both directions once: with edge-triggered readiness a
        // WRITABLE event only comes when a full socket buffer drains, so this costs
        // nothing and saves a re-register call each time output backs up.
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("{peer}: cannot register connection: {e}");
            return;
        }
        self.next_id += 1;
        // Without BAUTHFILE every connection may do everything from the start.
        let access = self.tokens.is_none().then_some(Access::ReadWrite);
        entry.insert(Connection::new(
            stream,
            self.next_id,
            peer,
            access,
            now,
            Rc::clone(&self.durable),
        ));
        if let Some(ip) = hygiene::counted_as(peer) {
            *self.per_address.entry(ip).or_insert(0) += 1;
        }
        self.counters.connections_total += 1;
        self.schedule_sweep(now);
        debug!("{peer}: connected");
    }

    /// Sends a fatal `TOO_MANY_CONNECTIONS` on a socket just accepted and drops it.
    fn refuse(&mut self, stream: &mut Stream, text: &str) {
        let mut reply = BytesMut::new();
        protocol::encode_error(&mut reply, ErrorCode::TooManyConnections, true, text);
        // Best effort: a fresh socket's buffer takes a few bytes without blocking.
        // The client's first request may already be in; reading it keeps the close
        // a FIN rather than a reset that could destroy the error before it is read.
        let _ = stream.write(&reply);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = stream.read(&mut self.scratch);
    }

    fn conn_mut(&mut self, r: ConnRef) -> Option<&mut Connection> {
        self.conns.get_mut(r.key).filter(|c| c.id == r.id)
    }

    /// Moves a connection forward as far as it can go now: handles held-back
    /// requests, writes replies, reads and handles new requests, then closes it if
    /// it is done.
    fn service(&mut self, r: ConnRef, now: Instant) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let input_cap = self.input_cap;
        let mut socket_drained = false;
        let mut finished = false;
        for _ in 0..MAX_ROUNDS {
            let consumed = self.process_input(r, now);
            let Some(conn) = self.conn_mut(r) else {
                finished = true;
                break;
            };
            let unwritten = conn.output.len();
            conn.flush();
            if socket_drained || !conn.wants_read(input_cap) {
                // Go round again only if that can move: requests are held and either
                // some were just handled or writing made room for more. A write that
                // empties the buffer in one go brings no writable event later, so
                // held requests must be taken now or never.
                let wrote = conn.output.len() < unwritten;
                if (consumed == 0 && !wrote) || conn.input.is_empty() || !conn.accepts_requests() {
                    finished = true;
                    break;
                }
                continue;
            }
            match conn.read_into(&mut scratch) {
                ReadOutcome::Data { len, drained } => {
                    // On a stream socket a short read means the kernel buffer is empty
                    // (epoll(7)), so the next edge will wake us: skip the extra read
                    // that would only say EAGAIN, unless the peer is hanging up.
                    socket_drained = drained && !conn.hup_hint;
                    self.absorb(r, &scratch[..len], now);
                }
                ReadOutcome::WouldBlock | ReadOutcome::Eof => socket_drained = true,
            }
        }
        self.scratch = scratch;
        if !finished {
            self.deferred.push(r);
        }
        if let Some(conn) = self.conn_mut(r) {
            conn.note_partial(now);
        }
        self.close_if_done(r, now);
    }

    /// Handles freshly read bytes: decoded in place when nothing is held back,
    /// otherwise appended to the held bytes first so that order is kept.
    fn absorb(&mut self, r: ConnRef, data: &[u8], now: Instant) {
        if self.conn_mut(r).is_some_and(Connection::first_bytes) && conn::is_go_opening(data) {
            let message = format!(
                "the Go beuss protocol (a connection opened with {:?}) is not supported: \
                 this server speaks beuss protocol 1 (see its protocol.md, section 9.4)",
                String::from_utf8_lossy(data)
            );
            self.fail(r, ErrorCode::UnsupportedVersion, &message);
            return;
        }
        let held = self.conn_mut(r).is_some_and(|c| !c.input.is_empty());
        if held {
            if let Some(conn) = self.conn_mut(r) {
                conn.input.extend_from_slice(data);
            }
            self.process_input(r, now);
        } else {
            let used = self.process(r, data, now);
            if let Some(conn) = self.conn_mut(r)
                && !matches!(conn.state, State::Closing | State::Penalized)
            {
                conn.input.extend_from_slice(&data[used..]);
            }
        }
    }

    /// Handles requests held in the connection's input buffer; returns bytes used.
    fn process_input(&mut self, r: ConnRef, _now: Instant) -> usize {
        let Some(conn) = self.conn_mut(r) else {
            return 0;
        };
        if conn.input.is_empty()
            || !(conn.accepts_requests() || conn.accepts_settles() || conn.held_replies_full())
        {
            return 0;
        }
        let mut input = std::mem::take(&mut conn.input);
        let used = self.process(r, &input, _now);
        bytes::Buf::advance(&mut input, used);
        if let Some(conn) = self.conn_mut(r) {
            if matches!(conn.state, State::Closing | State::Penalized) {
                input.clear();
            }
            conn.input = input;
            conn.trim_input();
        }
        used
    }

    /// Decodes and executes requests from `data` while the connection accepts them;
    /// returns the bytes used. A protocol error answers a fatal `ERROR` and uses all.
    fn process(&mut self, r: ConnRef, data: &[u8], now: Instant) -> usize {
        let max_payload = self.config.max_message_size;
        let mut pos = 0;
        while pos < data.len() {
            let Some(conn) = self.conn_mut(r) else {
                break;
            };
            if !conn.accepts_requests() {
                if conn.held_replies_full() {
                    // Settle replies cannot pile up without bound behind a receive
                    // that may wait for ever: answer it EMPTY now so that they go out
                    // and settles go on being carried out (protocol.md 13.7).
                    if let State::Parked { queue, .. } = &conn.state {
                        let queue = queue.clone();
                        protocol::encode_empty(&mut conn.output, protocol::Status::Empty);
                        conn.unpark();
                        self.store.cancel(&queue, r, now);
                        continue;
                    }
                }
                // Behind a parked receive only settle requests go ahead (13.7).
                if conn.accepts_settles()
                    && let Ok(Some((Decoded::Request(request), used))) =
                        protocol::decode_request(&data[pos..], max_payload)
                    && matches!(
                        request,
                        Request::Ack { .. } | Request::Nack { .. } | Request::Touch { .. }
                    )
                {
                    pos += used;
                    self.execute_held(r, request, now);
                    continue;
                }
                break;
            }
            if let State::Streaming(over) = &mut conn.state {
                pos += over.absorb(&data[pos..]);
                if over.is_done()
                    && let State::Streaming(over) = std::mem::replace(&mut conn.state, State::Ready)
                {
                    let start = conn.queued_end();
                    let log_before = self.store.log_position();
                    self.finish_streamed(r, *over, now);
                    self.hold_reply(r, start, log_before);
                    self.drain_handoffs(now);
                }
                continue;
            }
            if conn.access.is_none()
                && let Some(&opcode) = data.get(pos + protocol::LEN_PREFIX)
                && !protocol::allowed_before_auth(opcode)
            {
                self.auth_required(r);
                return data.len();
            }
            match protocol::decode_request(&data[pos..], max_payload) {
                Ok(None) => break,
                Ok(Some((Decoded::Request(request), used))) => {
                    pos += used;
                    conn.note_request(now);
                    self.execute_held(r, request, now);
                }
                Ok(Some((
                    Decoded::PutHead {
                        queue,
                        options,
                        unique,
                        ttl,
                        payload_len,
                    },
                    used,
                ))) => {
                    pos += used;
                    conn.note_request(now);
                    conn.state = State::Streaming(Box::new(Oversize {
                        head: Streamed::Put {
                            queue: queue.into(),
                            options,
                            unique: unique.map(|u| (u.key.into(), u.replace, u.window_ms)),
                            ttl,
                        },
                        kept: Vec::with_capacity(max_payload),
                        keep: max_payload,
                        original: payload_len,
                        remaining: payload_len as usize,
                    }));
                }
                Ok(Some((Decoded::BodyHead { head, payload_len }, used))) => {
                    pos += used;
                    conn.note_request(now);
                    conn.state = State::Streaming(Box::new(Oversize {
                        head: Streamed::from_head(head),
                        kept: Vec::with_capacity(max_payload),
                        keep: max_payload,
                        original: payload_len,
                        remaining: payload_len as usize,
                    }));
                }
                Err(e) => {
                    self.fail(r, e.code(), &e.to_string());
                    return data.len();
                }
            }
        }
        pos
    }

    /// Carries out a request whose payload streamed in and was cut to the limit.
    fn finish_streamed(&mut self, r: ConnRef, over: Oversize, now: Instant) {
        let original = over.original as usize;
        let payload = &over.kept;
        let request = match &over.head {
            Streamed::Put {
                queue,
                options,
                unique,
                ttl,
            } => {
                let unique = unique
                    .as_ref()
                    .map(|(key, replace, window_ms)| protocol::Unique {
                        key,
                        replace: *replace,
                        window_ms: *window_ms,
                    });
                match (options, unique, ttl) {
                    (Some(options), None, None) => Request::PutWith {
                        queue,
                        options: *options,
                        payload,
                    },
                    (None, None, None) => Request::Put { queue, payload },
                    (options, unique, ttl) => Request::PutJob {
                        queue,
                        options: *options,
                        unique,
                        ttl: *ttl,
                        payload,
                    },
                }
            }
            Streamed::Publish {
                subject,
                options,
                confirm,
                timeout_ms,
            } => Request::Publish {
                subject,
                delay_ms: options.delay_ms,
                priority: options.priority,
                confirm: *confirm,
                timeout_ms: *timeout_ms,
                payload,
            },
            Streamed::Req {
                subject,
                timeout_ms,
            } => Request::Req {
                subject,
                timeout_ms: *timeout_ms,
                payload,
            },
            Streamed::Reply { reply_to } => Request::Reply {
                reply_to: *reply_to,
                payload,
            },
        };
        // FORBIDDEN before anything the journal may say (as in `execute_held`).
        if !self.forbidden(r, &request) && !self.refuse_change(r, &request) {
            self.execute_sized(r, request, Some(original), now);
        }
    }

    /// Queues a fatal `ERROR` for a request the server cannot carry out (counted in
    /// `protocol_errors`) and marks the connection to close once it is written.
    fn fail(&mut self, r: ConnRef, code: ErrorCode, message: &str) {
        self.counters.protocol_errors += 1;
        if let Some(conn) = self.conn_mut(r) {
            warn!("{}: {code}: {message}; closing the connection", conn.peer);
        }
        self.close_with(r, code, message);
    }

    /// Queues a fatal `ERROR` and marks the connection to close once it is written.
    fn close_with(&mut self, r: ConnRef, code: ErrorCode, message: &str) {
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        protocol::encode_error(&mut conn.output, code, true, message);
        conn.state = State::Closing;
        conn.input.clear();
    }

    fn close_if_done(&mut self, r: ConnRef, now: Instant) {
        let input_cap = self.input_cap;
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        if conn.hup_hint
            && !conn.read_closed
            && matches!(
                conn.state,
                State::Parked { .. } | State::Awaiting { .. } | State::Penalized
            )
            && !conn.wants_read(input_cap)
        {
            // A waiter whose reading is paused cannot see EOF, and it must be cancelled
            // at once: the poller's word must do. Not for other states: after a
            // half-close, requests may still wait unread in the kernel buffer, and
            // reading resumes once the output drains, up to the real EOF.
            conn.read_closed = true;
        }
        let done = conn.broken
            || match conn.state {
                State::Closing => conn.output.is_empty(),
                // A client gone while waiting: cancel at once, never hand it a message.
                State::Parked { .. } | State::Awaiting { .. } => conn.read_closed,
                // Half a PUT then EOF: nothing is stored.
                State::Streaming(_) => conn.read_closed,
                // Gone before its AUTH_FAILED: nobody to answer.
                State::Penalized => conn.read_closed,
                State::Ready => conn.read_closed && conn.output.is_empty(),
            };
        if done {
            self.close(r, now);
        }
    }

    fn close(&mut self, r: ConnRef, now: Instant) {
        if self.conn_mut(r).is_none() {
            return;
        }
        let mut conn = self.conns.remove(r.key);
        self.drop_fanout(r, std::mem::take(&mut conn.subs), &conn.state);
        match &conn.state {
            State::Parked { queue, .. } => {
                self.store.cancel(queue, r, now);
            }
            State::Awaiting { .. } => {}
            // After BYE or a fatal ERROR: what the client pipelined behind would make
            // the close a reset, which can destroy that last reply before it is read.
            State::Closing => {
                conn.discard_input(&mut self.scratch, CLOSE_DISCARD);
            }
            State::Penalized => {
                conn.discard_input(&mut self.scratch, CLOSE_DISCARD);
                // Gone before its answer: drop its place in the wait list now, so
                // that clients that open and close connections cannot pile it up.
                self.penalized.retain(|(_, p)| *p != r);
            }
            State::Ready | State::Streaming(_) => {}
        }
        self.forget_peer(conn.peer);
        // Its leases (not detached ones) go back to their queues at once.
        self.store.disconnect(r, now);
        self.drain_handoffs(now);
        if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
            debug!("{}: deregister: {e}", conn.peer);
        }
        debug!("{}: closed", conn.peer);
    }

    /// Stops accepting and closes every connection as gracefully as `SHUTDOWN_GRACE`
    /// allows, then logs what was held.
    ///
    /// Every connection not already closing gets a fatal `SHUTTING_DOWN` after the
    /// replies already queued, so that its client knows which requests were carried
    /// out: those answered before it. Sending it only to parked consumers would miss
    /// one caught between two `GET`s (its next `GET` unread or still on the way), which
    /// would see a bare close or a reset instead. Then each connection writes its
    /// replies, sends FIN, and reads and drops what the peer sends until the peer
    /// closes or goes quiet: a socket closed with unread input sends a reset, which
    /// can destroy the replies not yet read.
    fn shutdown(&mut self) {
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let start = Instant::now();
        let total = self.conns.len();
        let mut step: Vec<usize> = Vec::with_capacity(total);
        for (key, conn) in self.conns.iter_mut() {
            let r = ConnRef { key, id: conn.id };
            if let State::Parked { queue, .. } = &conn.state {
                self.store.cancel(queue, r, start);
                if !conn.held_replies.is_empty() {
                    // Settles were carried out behind the parked receive: answer it
                    // EMPTY so that their replies come before the fatal error, which
                    // says that nothing after it was carried out (protocol.md 2.8).
                    protocol::encode_empty(&mut conn.output, protocol::Status::Empty);
                }
                conn.unpark();
            }
            if !matches!(conn.state, State::Closing) {
                protocol::encode_error(
                    &mut conn.output,
                    ErrorCode::ShuttingDown,
                    true,
                    "server is shutting down",
                );
            }
            conn.state = State::Closing;
            conn.input.clear();
            step.push(key);
        }
        if self.journal.is_some() {
            // Leases cannot outlive the process; a stop the worker did not cause does
            // not charge their messages (a crash does: they are charged at start).
            self.store.return_leases(start);
            self.close_journal(start);
        }
        let deadline = start + SHUTDOWN_GRACE;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut events = Events::with_capacity(1024);
        let mut again = Vec::new();
        let mut hurry = false;
        loop {
            let now = Instant::now();
            // Quiet peers time out without an event of their own; their last step
            // also picks up anything that came since the last event.
            step.extend(
                self.conns
                    .iter()
                    .filter(|(_, c)| c.linger_until().is_some_and(|at| at <= now))
                    .map(|(key, _)| key),
            );
            for key in step.drain(..) {
                let Some(conn) = self.conns.get_mut(key) else {
                    continue; // already closed (a key may come twice)
                };
                match conn.linger(&mut scratch, now) {
                    Linger::Done => self.drop_connection(key),
                    Linger::Again => again.push(key),
                    Linger::Wait => {}
                }
            }
            if self.conns.is_empty() || now >= deadline || hurry {
                break;
            }
            let wake = self
                .conns
                .iter()
                .filter_map(|(_, c)| c.linger_until())
                .fold(deadline, Instant::min);
            let timeout = if again.is_empty() {
                wake.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            step.append(&mut again);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
            for event in events.iter() {
                match event.token() {
                    SIGNAL => {
                        // A second SIGINT/SIGTERM: stop waiting for the clients.
                        hurry = self
                            .signals
                            .as_mut()
                            .is_some_and(|s| s.pending().count() > 0);
                    }
                    Token(key) if key < LISTENER_BASE => step.push(key),
                    Token(_) => {}
                }
            }
        }
        let cut = self.conns.len();
        let unwritten = self
            .conns
            .iter()
            .filter(|(_, c)| !c.output.is_empty())
            .count();
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.discard_input(&mut scratch, CLOSE_DISCARD);
            }
            self.drop_connection(key);
        }
        self.scratch = scratch;
        if cut > 0 {
            info!(
                "{} still open after the {:?} grace period ({} with replies unwritten); \
                 closed now",
                plural(cut as u64, "connection", "connections"),
                SHUTDOWN_GRACE,
                unwritten,
            );
        }
        let fate = match &self.config.data_dir {
            Some(dir) => format!("are kept in {}", dir.display()),
            None => "were held in memory and are gone".to_owned(),
        };
        info!(
            "stopped: {} ({}) in {} {fate}; {} closed",
            plural(self.store.message_count() as u64, "message", "messages"),
            plural(self.store.bytes() as u64, "byte", "bytes"),
            plural(self.store.queue_count() as u64, "queue", "queues"),
            plural(total as u64, "connection", "connections"),
        );
    }

    /// Removes a connection during shutdown (the store needs no word of it: nothing
    /// is parked any more).
    fn drop_connection(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        self.forget_peer(conn.peer);
        if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
            debug!("{}: deregister: {e}", conn.peer);
        }
    }
}

/// `n` followed by the singular or plural noun, for log lines.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
