//! `beuss-bench`'s fan-out tests (issue 9): one message, many receivers, on beuss
//! (version 3: `PUB`, `SUB`/`EVENT`, bound queues, `REQ`/`REPLY`), NATS core and
//! Redis, one client engine for all of them (one thread, one `mio::Poll`, as in
//! `engine.rs`).
//!
//! - `fanout` (live): one publisher, `fans` subscribers of one subject; beuss `PUB`
//!   (each answered `PUBLISHED`) and `EVENT`s, NATS `PUB` (a `PING` after each batch:
//!   its `PONG` says the batch is done) and `MSG`s, Redis `PUBLISH` and `message`
//!   pushes.
//! - `fanqueue`: one publisher, `fans` queues bound to one subject, one consumer per
//!   queue draining it: beuss `PUB` into the bound queues, each consumer keeping one
//!   waiting `GET` (or `LEASE` + `ACK`) of up to `pipeline` messages outstanding;
//!   Redis `MULTI`, an `LPUSH` per list, `EXEC`, with one `BLMPOP ... COUNT` per
//!   consumer outstanding.
//! - `reqrep`: `requesters` connections, each with one request in flight (lockstep),
//!   and one responder that echoes the payload: beuss `REQ` to a subject the
//!   responder subscribes to (`EVENT` with `REPLY_TO`, then `REPLY`), or, with the
//!   responder leasing from a bound queue, `LEASE` with `WITH_META`, then `REPLY`
//!   and `ACK`; NATS `PUB` with a reply subject in the requester's inbox (one
//!   `_INBOX.<conn>.*` subscription per requester, as NATS clients do).
//!
//! Throughput runs are bounded: the publisher is never more than `window` messages
//! ahead of its slowest receiver, nor more than `window` publishes ahead of the
//! server's answers, so nothing queues without bound anywhere and no subscriber is
//! ever a slow consumer (a beuss event dropped for one is an error here).
//!
//! Every payload carries the run's nonce, the sender's sequence number and a send
//! stamp, the rest a pattern derived from them: each receiver checks that it gets
//! every message once, in order, bytes intact; a requester checks that its reply is
//! its request's payload.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use beuss::protocol::{self, LeaseRef, Pairs, Request, Response};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::engine::{PAYLOAD_HEADER, connect, process_cpu};
use crate::wire::{LEASE_MS, resp_command};
use crate::{nats, resp};

/// Largest beuss reply accepted.
const MAX_REPLY: u32 = 64 << 20;
/// Free input space kept before each read.
const READ_ROOM: usize = 64 * 1024;
/// How long a consumer's waiting `GET`, `LEASE` or `BLMPOP` waits before it is
/// answered empty and sent again.
const WAIT_MS: u32 = 1000;
/// How long a beuss `REQ` waits for its reply: far longer than any round trip.
const REQ_TIMEOUT_MS: u32 = 10_000;
/// Subjects and names the tests use.
const LIVE_SUBJECT: &str = "bench.live";
const SERVICE: &str = "bench.svc";
const SERVICE_QUEUED: &str = "bench.svcq";
const SERVICE_QUEUE: &str = "bench-svc";

/// The servers the fan-out tests speak to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// beuss, protocol version 3.
    Beuss,
    /// NATS core (`nats-server`), its text protocol.
    Nats,
    /// Redis: pub/sub, and lists in transactions.
    Redis,
}

impl Peer {
    /// Parses a `--target` value.
    pub fn parse(name: &str) -> Option<Peer> {
        match name {
            "beuss" => Some(Peer::Beuss),
            "nats" => Some(Peer::Nats),
            "redis" => Some(Peer::Redis),
            _ => None,
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Beuss => "beuss",
            Peer::Nats => "nats",
            Peer::Redis => "redis",
        }
    }

    /// The port a server of this kind listens on by default.
    pub fn default_port(self) -> u16 {
        match self {
            Peer::Beuss => beuss::DEFAULT_PORT,
            Peer::Nats => nats::DEFAULT_PORT,
            Peer::Redis => 6379,
        }
    }
}

/// Which fan-out test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// Live subscribers.
    Live,
    /// Bound queues (beuss) or lists in a transaction (Redis), drained by one
    /// consumer each.
    Queues,
    /// Request/reply, the responder subscribed to the subject.
    Request,
    /// Request/reply, the responder leasing from a queue bound to the subject
    /// (beuss only).
    RequestQueued,
}

impl Test {
    /// Whether `peer` has this test.
    pub fn supports(self, peer: Peer) -> bool {
        match self {
            Test::Live => true,
            Test::Queues => peer != Peer::Nats,
            Test::Request => peer != Peer::Redis,
            Test::RequestQueued => peer == Peer::Beuss,
        }
    }
}

/// One fan-out run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server kind.
    pub peer: Peer,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
    /// The test.
    pub test: Test,
    /// Subscribers (`Live`) or queues (`Queues`).
    pub fans: usize,
    /// Requesters (`Request`, `RequestQueued`).
    pub requesters: usize,
    /// Publishes per batch; messages per `GET`, `LEASE` or `BLMPOP`.
    pub pipeline: usize,
    /// Payload bytes.
    pub data: usize,
    /// Publishes, or requests.
    pub messages: u64,
    /// How far the publisher may run ahead (see the module documentation).
    pub window: u64,
    /// Consumers of bound queues take on lease and acknowledge (beuss), instead of
    /// a plain `GET`.
    pub leased: bool,
    /// A run with no progress for this long fails.
    pub stall: Duration,
}

/// What one run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Messages received, all receivers together; or round trips.
    pub deliveries: u64,
    /// From the first write to the last delivery.
    pub elapsed: Duration,
    /// Delivery latency (send stamp to receipt) or round-trip time, in nanoseconds.
    pub hist: Histogram<u64>,
    /// CPU time this process used meanwhile.
    pub client_cpu: Duration,
}

/// Payload contents: the run's nonce, a sequence number and a stamp, then filler.
#[derive(Debug)]
struct Payloads {
    nonce: u32,
    data: usize,
    pattern: Vec<u8>,
}

impl Payloads {
    fn new(data: usize) -> Payloads {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u32);
        Payloads {
            nonce: clock ^ std::process::id().rotate_left(16),
            data,
            pattern: (0..data + 256).map(|i| (i * 131 + 7) as u8).collect(),
        }
    }

    fn fill(&self, dst: &mut Vec<u8>, sender: u32, seq: u32, stamp: u64) {
        dst.clear();
        dst.extend_from_slice(&(sender ^ self.nonce).to_be_bytes());
        dst.extend_from_slice(&seq.to_be_bytes());
        dst.extend_from_slice(&stamp.to_be_bytes());
        let off = (sender as usize * 31 + seq as usize) % 251;
        dst.extend_from_slice(&self.pattern[off..off + self.data - PAYLOAD_HEADER]);
    }

    /// Checks a message of sender 0 that must be number `seq`; returns its stamp.
    fn check(&self, payload: &[u8], seq: u32, who: &str) -> Result<u64, String> {
        let word = |at: usize| {
            u32::from_be_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ])
        };
        if payload.len() != self.data {
            return Err(format!(
                "{who}: a message of {} bytes came, {} were sent",
                payload.len(),
                self.data
            ));
        }
        if word(0) != self.nonce {
            return Err(format!("{who}: a message this run did not send"));
        }
        let got = word(4);
        if got != seq {
            return Err(format!(
                "{who}: message {got} came where {seq} was due (lost, doubled or out of order)"
            ));
        }
        let off = seq as usize % 251;
        if payload[PAYLOAD_HEADER..] != self.pattern[off..off + self.data - PAYLOAD_HEADER] {
            return Err(format!("{who}: message {seq} came with wrong bytes"));
        }
        Ok(u64::from_be_bytes(
            payload[8..16].try_into().unwrap_or([0; 8]),
        ))
    }
}

#[derive(Debug)]
struct Publisher {
    /// Publishes written, and answered by the server.
    sent: u64,
    acked: u64,
    /// NATS: publishes in each batch whose `PONG` is still to come.
    batches: VecDeque<u64>,
    /// Redis transactions: replies of the current one seen so far.
    txn_replies: usize,
}

#[derive(Debug)]
struct Sink {
    /// Which subscriber or queue.
    index: usize,
    /// The queue (beuss) or list (Redis) it drains.
    queue: String,
    /// Messages received.
    got: u64,
    /// A receive request is outstanding.
    waiting: bool,
    /// Leased messages to acknowledge with the next `LEASE`.
    acks: Vec<LeaseRef>,
    /// `ACK`s whose `SETTLED` is still to come.
    settling: u32,
}

#[derive(Debug)]
struct Requester {
    id: u32,
    todo: u64,
    seq: u32,
    in_flight: bool,
    sent_at: Instant,
    payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Responder {
    /// `REPLIED` answers still to come.
    replied: u64,
    /// A `LEASE` is outstanding (queued responder).
    leasing: bool,
    /// `ACK`s whose `SETTLED` is still to come, with their pair counts.
    settles: VecDeque<usize>,
    acks: Vec<LeaseRef>,
}

#[derive(Debug)]
enum Role {
    Publisher(Publisher),
    Sink(Sink),
    Requester(Requester),
    Responder(Responder),
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    sent: usize,
    input: Vec<u8>,
    start: usize,
    end: usize,
    role: Role,
}

/// What the handlers share.
#[derive(Debug)]
struct Tally {
    hist: Histogram<u64>,
    deliveries: u64,
    last_progress: Instant,
    epoch: Instant,
    /// Read once per read: the receipt time of everything in it.
    now_ns: u64,
    now: Instant,
}

struct Ctx<'a> {
    plan: &'a Plan,
    payloads: &'a Payloads,
    tally: &'a mut Tally,
    scratch: &'a mut Vec<u8>,
}

/// Runs one fan-out test.
///
/// # Errors
/// A connection or its set-up failed, a server answered an error, a message came
/// wrong, twice, out of order or not at all, or nothing happened for `plan.stall`.
pub fn run(plan: &Plan) -> Result<Outcome, String> {
    if !plan.test.supports(plan.peer) {
        return Err(format!(
            "{:?} is not a test for {}",
            plan.test,
            plan.peer.name()
        ));
    }
    if plan.leased && plan.peer != Peer::Beuss {
        return Err("leased consumers are beuss only".to_owned());
    }
    let payloads = Payloads::new(plan.data);
    let poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
    let mut conns = Vec::new();
    // Receivers first, so that they are listening before anything is published.
    match plan.test {
        Test::Live | Test::Queues => {
            for index in 0..plan.fans {
                let queue = queue_name(plan, index);
                let role = Role::Sink(Sink {
                    index,
                    queue,
                    got: 0,
                    waiting: false,
                    acks: Vec::new(),
                    settling: 0,
                });
                conns.push(open(plan, &poll, conns.len(), role)?);
            }
            let role = Role::Publisher(Publisher {
                sent: 0,
                acked: 0,
                batches: VecDeque::new(),
                txn_replies: 0,
            });
            conns.push(open(plan, &poll, conns.len(), role)?);
        }
        Test::Request | Test::RequestQueued => {
            let role = Role::Responder(Responder::default());
            conns.push(open(plan, &poll, conns.len(), role)?);
            for i in 0..plan.requesters {
                let role = Role::Requester(Requester {
                    id: i as u32,
                    todo: share(plan.messages, i, plan.requesters),
                    seq: 0,
                    in_flight: false,
                    sent_at: Instant::now(),
                    payload: Vec::new(),
                });
                conns.push(open(plan, &poll, conns.len(), role)?);
            }
        }
    }
    let epoch = Instant::now();
    let mut tally = Tally {
        hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| format!("histogram: {e}"))?,
        deliveries: 0,
        last_progress: epoch,
        epoch,
        now_ns: 0,
        now: epoch,
    };
    let mut scratch = Vec::new();
    let mut poll = poll;
    let mut events = Events::with_capacity(1024);
    let cpu_before = process_cpu();
    let start = Instant::now();
    let mut end = start;
    loop {
        let mut ctx = Ctx {
            plan,
            payloads: &payloads,
            tally: &mut tally,
            scratch: &mut scratch,
        };
        let floor = slowest(plan, &conns);
        for conn in &mut conns {
            advance(conn, &mut ctx, floor)?;
        }
        if finished(plan, &conns) {
            end = end.max(tally.last_progress);
            break;
        }
        let now = Instant::now();
        if now.duration_since(tally.last_progress) > plan.stall {
            return Err(format!(
                "nothing for {:?}: {}",
                plan.stall,
                progress(plan, &conns)
            ));
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        let mut ctx = Ctx {
            plan,
            payloads: &payloads,
            tally: &mut tally,
            scratch: &mut scratch,
        };
        for event in &events {
            if let Some(conn) = conns.get_mut(event.token().0) {
                on_ready(conn, &mut ctx).map_err(|e| format!("{}: {e}", who(conn)))?;
            }
        }
        end = tally.last_progress;
    }
    Ok(Outcome {
        deliveries: tally.deliveries,
        elapsed: end.duration_since(start),
        hist: tally.hist,
        client_cpu: process_cpu().saturating_sub(cpu_before),
    })
}

/// The queue (beuss) or list (Redis) of receiver `index`; queues are named after
/// the fan count, so that runs with other counts on the same server do not share
/// them.
fn queue_name(plan: &Plan, index: usize) -> String {
    format!("bench-fan{}-{index}", plan.fans)
}

/// The subject a `Queues` run publishes to (bound to exactly its queues).
fn queues_subject(plan: &Plan) -> String {
    format!("bench.fan{}", plan.fans)
}

fn who(conn: &Conn) -> String {
    match &conn.role {
        Role::Publisher(_) => "publisher".to_owned(),
        Role::Sink(s) => format!("receiver {}", s.index),
        Role::Requester(r) => format!("requester {}", r.id),
        Role::Responder(_) => "responder".to_owned(),
    }
}

fn share(total: u64, index: usize, parts: usize) -> u64 {
    let parts = parts.max(1) as u64;
    total / parts + u64::from((index as u64) < total % parts)
}

/// The fewest messages any receiver has got.
fn slowest(plan: &Plan, conns: &[Conn]) -> u64 {
    conns
        .iter()
        .filter_map(|c| match &c.role {
            Role::Sink(s) => Some(s.got),
            _ => None,
        })
        .min()
        .unwrap_or(plan.messages)
}

fn finished(plan: &Plan, conns: &[Conn]) -> bool {
    conns.iter().all(|c| match &c.role {
        Role::Publisher(p) => p.acked == plan.messages,
        // A leased receiver's last acknowledgements must be in too.
        Role::Sink(s) => {
            s.got == plan.messages && s.acks.is_empty() && s.settling == 0 && !s.waiting
        }
        Role::Requester(r) => r.todo == 0 && !r.in_flight,
        Role::Responder(r) => r.replied == 0 && r.settles.is_empty() && r.acks.is_empty(),
    })
}

fn progress(plan: &Plan, conns: &[Conn]) -> String {
    let parts: Vec<String> = conns
        .iter()
        .map(|c| match &c.role {
            Role::Publisher(p) => format!("published {} (answered {})", p.sent, p.acked),
            Role::Sink(s) => format!("receiver {} got {}", s.index, s.got),
            Role::Requester(r) => format!("requester {} has {} to go", r.id, r.todo),
            Role::Responder(r) => format!("responder awaits {} REPLIED", r.replied),
        })
        .collect();
    format!(
        "{} of {} messages: {}",
        plan.test_name(),
        plan.messages,
        parts.join(", ")
    )
}

impl Plan {
    fn test_name(&self) -> &'static str {
        match self.test {
            Test::Live => "fanout",
            Test::Queues => "fanqueue",
            Test::Request => "reqrep",
            Test::RequestQueued => "reqqueue",
        }
    }
}

/// Connects, sets the connection up for its role (blocking), then registers it.
fn open(plan: &Plan, poll: &Poll, token: usize, role: Role) -> Result<Conn, String> {
    let std = connect(&plan.addrs)?;
    std.set_nodelay(true)
        .map_err(|e| format!("setsockopt TCP_NODELAY: {e}"))?;
    std.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("setsockopt SO_RCVTIMEO: {e}"))?;
    let leftover = set_up(plan, &std, &role)?;
    std.set_nonblocking(true)
        .map_err(|e| format!("cannot make a socket non-blocking: {e}"))?;
    let mut stream = TcpStream::from_std(std);
    poll.registry()
        .register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|e| format!("cannot register a connection: {e}"))?;
    let mut input = vec![0; 2 * READ_ROOM];
    input[..leftover.len()].copy_from_slice(&leftover);
    Ok(Conn {
        stream,
        out: Vec::with_capacity(READ_ROOM),
        sent: 0,
        input,
        start: 0,
        end: leftover.len(),
        role,
    })
}

/// The requests that prepare a connection for its role, sent and answered before
/// the timed run; returns bytes read past the last expected answer.
fn set_up(plan: &Plan, stream: &std::net::TcpStream, role: &Role) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut expect = 0usize;
    match plan.peer {
        Peer::Beuss => {
            let mut push = |request: Request<'_>| -> Result<(), String> {
                request.encode(&mut out).map_err(|e| e.to_string())?;
                expect += 1;
                Ok(())
            };
            match (plan.test, role) {
                (Test::Live, Role::Sink(_)) => push(Request::Subscribe {
                    pattern: LIVE_SUBJECT,
                })?,
                (Test::Queues, Role::Publisher(_)) => {
                    let subject = queues_subject(plan);
                    for i in 0..plan.fans {
                        let queue = queue_name(plan, i);
                        push(Request::Bind {
                            pattern: &subject,
                            queue: &queue,
                        })?;
                        push(Request::Purge { queue: &queue })?;
                    }
                }
                (Test::Request, Role::Responder(_)) => {
                    push(Request::Subscribe { pattern: SERVICE })?
                }
                (Test::RequestQueued, Role::Responder(_)) => {
                    push(Request::Bind {
                        pattern: SERVICE_QUEUED,
                        queue: SERVICE_QUEUE,
                    })?;
                    push(Request::Purge {
                        queue: SERVICE_QUEUE,
                    })?;
                }
                _ => {}
            }
            converse(stream, &out, |buf| {
                let mut at = 0;
                for _ in 0..expect {
                    let Some((reply, used)) = protocol::decode_response(&buf[at..], MAX_REPLY)
                        .map_err(|e| e.to_string())?
                    else {
                        return Ok(None);
                    };
                    match reply {
                        Response::Subscribed { .. }
                        | Response::Bound { .. }
                        | Response::Purged { .. } => {}
                        Response::Error { code, message, .. } => {
                            return Err(format!("set-up: server error {code}: {message}"));
                        }
                        other => return Err(format!("set-up: unexpected reply {other:?}")),
                    }
                    at += used;
                }
                Ok(Some(at))
            })
        }
        Peer::Nats => {
            // The server speaks first: INFO, then the client's CONNECT.
            converse(stream, &[], |buf| {
                Ok(match nats::decode(buf)? {
                    Some((nats::Op::Info, used)) => Some(used),
                    Some((op, _)) => return Err(format!("expected INFO, got {op:?}")),
                    None => None,
                })
            })?;
            nats::connect(&mut out);
            match (plan.test, role) {
                (Test::Live, Role::Sink(_)) => nats::sub(&mut out, LIVE_SUBJECT.as_bytes(), 1),
                (Test::Request, Role::Responder(_)) => nats::sub(&mut out, SERVICE.as_bytes(), 1),
                (Test::Request, Role::Requester(r)) => {
                    nats::sub(&mut out, format!("_INBOX.bench{}.*", r.id).as_bytes(), 1);
                }
                _ => {}
            }
            // Its PONG says the server has taken the subscriptions.
            nats::ping(&mut out);
            converse(stream, &out, |buf| {
                let mut at = 0;
                while let Some((op, used)) = nats::decode(&buf[at..])? {
                    at += used;
                    match op {
                        nats::Op::Pong => return Ok(Some(at)),
                        nats::Op::Info | nats::Op::Ok | nats::Op::Ping => {}
                        nats::Op::Msg { .. } => return Err("a MSG during set-up".to_owned()),
                    }
                }
                Ok(None)
            })
        }
        Peer::Redis => {
            match (plan.test, role) {
                (Test::Live, Role::Sink(_)) => {
                    resp_command(&mut out, &[b"SUBSCRIBE", LIVE_SUBJECT.as_bytes()]);
                    expect += 1;
                }
                (Test::Queues, Role::Sink(s)) => {
                    resp_command(&mut out, &[b"DEL", s.queue.as_bytes()]);
                    expect += 1;
                }
                _ => {}
            }
            converse(stream, &out, |buf| {
                let mut at = 0;
                for _ in 0..expect {
                    let Some((_, _, used)) = resp::skip(&buf[at..])? else {
                        return Ok(None);
                    };
                    at += used;
                }
                Ok(Some(at))
            })
        }
    }
}

/// Writes `request` on a blocking socket, then reads until `done` says how many
/// bytes the expected answers took; returns what was read past them.
fn converse(
    mut stream: &std::net::TcpStream,
    request: &[u8],
    mut done: impl FnMut(&[u8]) -> Result<Option<usize>, String>,
) -> Result<Vec<u8>, String> {
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(used) = done(&buf)? {
            return Ok(buf.split_off(used));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err("the server closed the connection".to_owned()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("set-up read: {e}")),
        }
    }
}

/// Reads everything the socket has, hands each reply to the connection's role, and
/// writes what is pending.
fn on_ready(conn: &mut Conn, ctx: &mut Ctx<'_>) -> Result<(), String> {
    write_out(conn)?;
    loop {
        if conn.start == conn.end {
            conn.start = 0;
            conn.end = 0;
        }
        if conn.input.len() - conn.end < READ_ROOM {
            conn.input.copy_within(conn.start..conn.end, 0);
            conn.end -= conn.start;
            conn.start = 0;
            if conn.input.len() - conn.end < READ_ROOM {
                conn.input.resize(conn.end + READ_ROOM, 0);
            }
        }
        let room = conn.input.len() - conn.end;
        let n = match conn.stream.read(&mut conn.input[conn.end..]) {
            Ok(0) => return Err("the server closed the connection".to_owned()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        conn.end += n;
        ctx.tally.now = Instant::now();
        ctx.tally.now_ns = ctx.tally.now.duration_since(ctx.tally.epoch).as_nanos() as u64;
        let Conn {
            input,
            start,
            end,
            out,
            role,
            ..
        } = conn;
        while *start < *end {
            let used = handle(&input[*start..*end], role, out, ctx)?;
            if used == 0 {
                break;
            }
            *start += used;
        }
        // A short read means the socket is drained for now (the next arrival raises
        // a new edge).
        if n < room {
            break;
        }
    }
    write_out(conn)
}

/// Handles the reply at the front of `buf`; returns the bytes it took, 0 if it is
/// not all there yet.
fn handle(
    buf: &[u8],
    role: &mut Role,
    out: &mut Vec<u8>,
    ctx: &mut Ctx<'_>,
) -> Result<usize, String> {
    match ctx.plan.peer {
        Peer::Beuss => {
            let Some((reply, used)) =
                protocol::decode_response(buf, MAX_REPLY).map_err(|e| e.to_string())?
            else {
                return Ok(0);
            };
            on_beuss(reply, role, out, ctx)?;
            Ok(used)
        }
        Peer::Nats => {
            let Some((op, used)) = nats::decode(buf)? else {
                return Ok(0);
            };
            on_nats(op, role, out, ctx)?;
            Ok(used)
        }
        Peer::Redis => on_redis(buf, role, ctx),
    }
}

/// A message a receiver got: checked, counted, its latency recorded.
fn received(sink: &mut Sink, payload: &[u8], ctx: &mut Ctx<'_>) -> Result<(), String> {
    let seq = u32::try_from(sink.got).map_err(|_| "over 2^32 messages")?;
    let stamp = ctx.payloads.check(payload, seq, "receiver")?;
    sink.got += 1;
    ctx.tally.deliveries += 1;
    ctx.tally.last_progress = ctx.tally.now;
    ctx.tally
        .hist
        .saturating_record(ctx.tally.now_ns.saturating_sub(stamp).max(1));
    Ok(())
}

/// A requester's reply: it must be its request's payload.
fn answered(r: &mut Requester, payload: &[u8], ctx: &mut Ctx<'_>) -> Result<(), String> {
    if !r.in_flight {
        return Err("a reply with no request in flight".to_owned());
    }
    if payload != r.payload.as_slice() {
        return Err(format!("the reply to request {} is not its payload", r.seq));
    }
    r.in_flight = false;
    r.seq += 1;
    ctx.tally.deliveries += 1;
    ctx.tally.last_progress = ctx.tally.now;
    let rtt = ctx.tally.now.duration_since(r.sent_at).as_nanos() as u64;
    ctx.tally.hist.saturating_record(rtt.max(1));
    Ok(())
}

fn acked(p: &mut Publisher, n: u64, ctx: &mut Ctx<'_>) -> Result<(), String> {
    p.acked += n;
    if p.acked > p.sent {
        return Err("more answers than publishes".to_owned());
    }
    ctx.tally.last_progress = ctx.tally.now;
    Ok(())
}

fn on_beuss(
    reply: Response<'_>,
    role: &mut Role,
    out: &mut Vec<u8>,
    ctx: &mut Ctx<'_>,
) -> Result<(), String> {
    let plan = ctx.plan;
    match (role, reply) {
        (_, Response::Error { code, message, .. }) => {
            Err(format!("server error {code}: {message}"))
        }
        (Role::Publisher(p), Response::Published(published)) => {
            let (queues, subs) = match plan.test {
                Test::Queues => (plan.fans as u32, 0),
                _ => (0, plan.fans as u32),
            };
            if published.queues != queues || published.subscribers != subs {
                return Err(format!(
                    "a publish reached {} queues and {} subscribers, not {queues} and {subs} \
                     (events dropped for a slow consumer, or other bindings)",
                    published.queues, published.subscribers
                ));
            }
            acked(p, 1, ctx)
        }
        (Role::Sink(s), Response::Event { meta, payload, .. }) => {
            if let Some(n) = meta.dropped() {
                return Err(format!("{n} events dropped for a slow consumer"));
            }
            received(s, payload, ctx)
        }
        (Role::Sink(s), Response::Messages(messages)) => {
            s.waiting = false;
            for payload in messages.iter() {
                received(s, payload, ctx)?;
            }
            Ok(())
        }
        (Role::Sink(s), Response::Leased(deliveries)) => {
            s.waiting = false;
            for d in deliveries.iter() {
                received(s, d.payload, ctx)?;
                s.acks.push(d.lease);
            }
            Ok(())
        }
        (Role::Sink(s), Response::Empty) => {
            s.waiting = false;
            Ok(())
        }
        (Role::Sink(s), Response::Settled(settled)) => {
            s.settling = s
                .settling
                .checked_sub(1)
                .ok_or("a SETTLED nobody asked for")?;
            let ok = settled
                .raw()
                .iter()
                .all(|&b| b == protocol::SettleResult::Ok as u8);
            if ok {
                Ok(())
            } else {
                Err("an ACK was not OK".to_owned())
            }
        }
        (Role::Requester(r), Response::Reply { payload }) => answered(r, payload, ctx),
        (Role::Requester(r), Response::Empty) => Err(format!(
            "request {} timed out (no reply in {REQ_TIMEOUT_MS} ms)",
            r.seq
        )),
        (Role::Responder(r), Response::Event { meta, payload, .. }) => {
            let reply_to = meta.reply_to().ok_or("an EVENT without REPLY_TO")?;
            Request::Reply { reply_to, payload }
                .encode(out)
                .map_err(|e| e.to_string())?;
            r.replied += 1;
            Ok(())
        }
        (Role::Responder(r), Response::Envelopes(envelopes)) => {
            r.leasing = false;
            for e in envelopes.iter() {
                let reply_to = e.meta.reply_to().ok_or("a copy without REPLY_TO")?;
                Request::Reply {
                    reply_to,
                    payload: e.payload,
                }
                .encode(out)
                .map_err(|e| e.to_string())?;
                r.replied += 1;
                r.acks.push(e.lease());
            }
            Ok(())
        }
        (Role::Responder(r), Response::Empty) => {
            r.leasing = false;
            Ok(())
        }
        (Role::Responder(r), Response::Replied { delivered }) => {
            r.replied = r
                .replied
                .checked_sub(1)
                .ok_or("a REPLIED nobody asked for")?;
            if delivered {
                Ok(())
            } else {
                Err("a REPLY reached nobody (the requester had timed out)".to_owned())
            }
        }
        (Role::Responder(r), Response::Settled(settled)) => {
            let n = r.settles.pop_front().ok_or("a SETTLED nobody asked for")?;
            let ok = settled
                .raw()
                .iter()
                .filter(|&&b| b == protocol::SettleResult::Ok as u8)
                .count();
            if ok == n {
                Ok(())
            } else {
                Err(format!("{ok} of {n} ACKs OK"))
            }
        }
        (_, other) => Err(format!("unexpected reply {other:?}")),
    }
}

fn on_nats(
    op: nats::Op<'_>,
    role: &mut Role,
    out: &mut Vec<u8>,
    ctx: &mut Ctx<'_>,
) -> Result<(), String> {
    match (role, op) {
        (_, nats::Op::Ping) => {
            nats::pong(out);
            Ok(())
        }
        (_, nats::Op::Info | nats::Op::Ok) => Ok(()),
        (Role::Publisher(p), nats::Op::Pong) => {
            let n = p.batches.pop_front().ok_or("a PONG nobody asked for")?;
            acked(p, n, ctx)
        }
        (Role::Sink(s), nats::Op::Msg { payload, .. }) => received(s, payload, ctx),
        (Role::Requester(r), nats::Op::Msg { payload, .. }) => answered(r, payload, ctx),
        (Role::Responder(_), nats::Op::Msg { reply, payload, .. }) => {
            let reply = reply.ok_or("a request without a reply subject")?;
            nats::publish(out, reply, None, payload);
            Ok(())
        }
        (_, op) => Err(format!("unexpected {op:?}")),
    }
}

fn on_redis(buf: &[u8], role: &mut Role, ctx: &mut Ctx<'_>) -> Result<usize, String> {
    let plan = ctx.plan;
    match role {
        Role::Publisher(p) if plan.test == Test::Live => {
            let Some((kind, n, used)) = resp::skip(buf)? else {
                return Ok(0);
            };
            if kind != b':' || n != plan.fans as i64 {
                return Err(format!(
                    "PUBLISH reached {n} subscribers, not {}",
                    plan.fans
                ));
            }
            acked(p, 1, ctx)?;
            Ok(used)
        }
        Role::Publisher(p) => {
            // MULTI's +OK, one +QUEUED per LPUSH, then EXEC's array of lengths.
            let Some((kind, n, used)) = resp::skip(buf)? else {
                return Ok(0);
            };
            p.txn_replies += 1;
            if p.txn_replies == plan.fans + 2 {
                if kind != b'*' || n != plan.fans as i64 {
                    return Err(format!("EXEC answered a {:?} of {n}", kind as char));
                }
                p.txn_replies = 0;
                acked(p, 1, ctx)?;
            } else if kind != b'+' {
                return Err(format!("MULTI or LPUSH answered a {:?}", kind as char));
            }
            Ok(used)
        }
        Role::Sink(s) if plan.test == Test::Live => {
            let Some((payload, used)) = resp::message(buf)? else {
                return Ok(0);
            };
            received(s, payload, ctx)?;
            Ok(used)
        }
        Role::Sink(s) => {
            let Some((batch, used)) = resp::popped(buf)? else {
                return Ok(0);
            };
            s.waiting = false;
            let mut seen = 0;
            for payload in batch.iter() {
                received(s, payload, ctx)?;
                seen += 1;
            }
            if seen != batch.count {
                return Err(format!("BLMPOP announced {} and held {seen}", batch.count));
            }
            Ok(used)
        }
        _ => Err("a reply nobody asked for".to_owned()),
    }
}

/// Writes the connection's next requests if they are due.
fn advance(conn: &mut Conn, ctx: &mut Ctx<'_>, floor: u64) -> Result<(), String> {
    let plan = ctx.plan;
    let out = &mut conn.out;
    match &mut conn.role {
        Role::Publisher(p) => {
            let batch = plan.pipeline as u64;
            while p.sent < plan.messages
                && p.sent + batch <= floor + plan.window
                && p.sent + batch <= p.acked + plan.window
            {
                let n = batch.min(plan.messages - p.sent);
                let stamp = Instant::now().duration_since(ctx.tally.epoch).as_nanos() as u64;
                let subject = match plan.test {
                    Test::Queues => queues_subject(plan),
                    _ => LIVE_SUBJECT.to_owned(),
                };
                for _ in 0..n {
                    let seq = u32::try_from(p.sent).map_err(|_| "over 2^32 messages")?;
                    ctx.payloads.fill(ctx.scratch, 0, seq, stamp);
                    publish(plan, out, &subject, ctx.scratch)?;
                    p.sent += 1;
                }
                if plan.peer == Peer::Nats {
                    nats::ping(out);
                    p.batches.push_back(n);
                }
            }
        }
        Role::Sink(s) if plan.test == Test::Queues && !s.waiting && s.got < plan.messages => {
            let max = plan.pipeline.min(usize::from(u16::MAX)) as u16;
            match plan.peer {
                Peer::Beuss if plan.leased => {
                    if !s.acks.is_empty() {
                        Request::Ack {
                            queue: &s.queue,
                            pairs: Pairs::List(&s.acks),
                        }
                        .encode(out)
                        .map_err(|e| e.to_string())?;
                        s.acks.clear();
                        s.settling += 1;
                    }
                    Request::Lease {
                        queue: &s.queue,
                        wait_ms: WAIT_MS,
                        max: max.min(crate::wire::MAX_LEASE_BATCH as u16),
                        lease_ms: LEASE_MS,
                        max_deliveries: 0,
                        detached: false,
                    }
                    .encode(out)
                    .map_err(|e| e.to_string())?;
                }
                Peer::Beuss => Request::Get {
                    queue: &s.queue,
                    wait_ms: WAIT_MS,
                    max,
                }
                .encode(out)
                .map_err(|e| e.to_string())?,
                _ => {
                    let count = max.to_string();
                    resp_command(
                        out,
                        &[
                            b"BLMPOP",
                            b"1",
                            b"1",
                            s.queue.as_bytes(),
                            b"RIGHT",
                            b"COUNT",
                            count.as_bytes(),
                        ],
                    );
                }
            }
            s.waiting = true;
        }
        Role::Sink(s) if plan.leased && !s.acks.is_empty() && !s.waiting => {
            // The last batch's acknowledgement, with nothing left to lease.
            Request::Ack {
                queue: &s.queue,
                pairs: Pairs::List(&s.acks),
            }
            .encode(out)
            .map_err(|e| e.to_string())?;
            s.acks.clear();
            s.settling += 1;
        }
        Role::Requester(r) if !r.in_flight && r.todo > 0 => {
            ctx.payloads.fill(&mut r.payload, r.id, r.seq, 0);
            match plan.peer {
                Peer::Nats => {
                    ctx.scratch.clear();
                    let _ = write!(ctx.scratch, "_INBOX.bench{}.{}", r.id, r.seq);
                    nats::publish(out, SERVICE.as_bytes(), Some(ctx.scratch), &r.payload);
                }
                _ => Request::Req {
                    subject: if plan.test == Test::RequestQueued {
                        SERVICE_QUEUED
                    } else {
                        SERVICE
                    },
                    timeout_ms: REQ_TIMEOUT_MS,
                    payload: &r.payload,
                }
                .encode(out)
                .map_err(|e| e.to_string())?,
            }
            r.todo -= 1;
            r.in_flight = true;
            r.sent_at = Instant::now();
        }
        Role::Responder(r) if plan.test == Test::RequestQueued && !r.leasing => {
            // Replies to the last batch went out as it came; its ACK rides here.
            if !r.acks.is_empty() {
                Request::Ack {
                    queue: SERVICE_QUEUE,
                    pairs: Pairs::List(&r.acks),
                }
                .encode(out)
                .map_err(|e| e.to_string())?;
                r.settles.push_back(r.acks.len());
                r.acks.clear();
            }
            if !finished_requests(ctx) {
                Request::LeaseWithMeta {
                    queue: SERVICE_QUEUE,
                    wait_ms: WAIT_MS,
                    max: plan.pipeline.min(crate::wire::MAX_LEASE_BATCH) as u16,
                    lease_ms: LEASE_MS,
                    max_deliveries: 0,
                    detached: false,
                }
                .encode(out)
                .map_err(|e| e.to_string())?;
                r.leasing = true;
            }
        }
        _ => {}
    }
    write_out(conn)
}

/// Whether every request has been answered (the queued responder then stops
/// leasing, so that the run can end without a `LEASE` parked).
fn finished_requests(ctx: &Ctx<'_>) -> bool {
    ctx.tally.deliveries >= ctx.plan.messages
}

/// Appends one publish of `payload` to `subject`.
fn publish(plan: &Plan, out: &mut Vec<u8>, subject: &str, payload: &[u8]) -> Result<(), String> {
    match plan.peer {
        Peer::Beuss => Request::Publish {
            subject,
            delay_ms: 0,
            priority: 5,
            confirm: 0,
            timeout_ms: 0,
            payload,
        }
        .encode(out)
        .map_err(|e| e.to_string()),
        Peer::Nats => {
            nats::publish(out, subject.as_bytes(), None, payload);
            Ok(())
        }
        Peer::Redis if plan.test == Test::Live => {
            resp_command(out, &[b"PUBLISH", subject.as_bytes(), payload]);
            Ok(())
        }
        Peer::Redis => {
            resp_command(out, &[b"MULTI"]);
            for i in 0..plan.fans {
                let list = queue_name(plan, i);
                resp_command(out, &[b"LPUSH", list.as_bytes(), payload]);
            }
            resp_command(out, &[b"EXEC"]);
            Ok(())
        }
    }
}

fn write_out(conn: &mut Conn) -> Result<(), String> {
    while conn.sent < conn.out.len() {
        match conn.stream.write(&conn.out[conn.sent..]) {
            Ok(0) => return Err("the server stopped reading".to_owned()),
            Ok(n) => conn.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    conn.out.clear();
    conn.sent = 0;
    Ok(())
}

/// What one publish to `queues` bound queues costs the server, against as many
/// plain `PUT`s (beuss only; see [`memory`]).
#[derive(Debug)]
pub struct MemoryFigures {
    /// `memory` of `STATS` before and after, bytes.
    pub stats_before: u64,
    pub stats_after: u64,
}

/// `messages` publishes of `data` bytes to a subject bound to `queues` queues, or
/// with `puts`, `messages` × `queues` plain `PUT`s of the same payloads to the same
/// queues (one per queue per message); pipelined `pipeline` deep. Returns the
/// server's `STATS` memory before and after; the caller reads its RSS around it.
///
/// # Errors
/// A connection failed or the server refused a request (`FULL` included).
pub fn memory(
    addrs: &[SocketAddr],
    queues: usize,
    data: usize,
    messages: u64,
    pipeline: usize,
    puts: bool,
) -> Result<MemoryFigures, String> {
    let mut client = beuss::Client::connect(addrs).map_err(|e| e.to_string())?;
    let subject = format!("bench.mem{queues}");
    let names: Vec<String> = (0..queues)
        .map(|i| format!("bench-mem{queues}-{i}"))
        .collect();
    if !puts {
        for name in &names {
            call(
                &mut client,
                &Request::Bind {
                    pattern: &subject,
                    queue: name,
                },
            )?;
        }
    }
    let stats_before = stats_memory(&mut client)?;
    let payloads = Payloads::new(data);
    let mut payload = Vec::new();
    let mut in_flight = 0usize;
    for seq in 0..messages {
        payloads.fill(&mut payload, 0, seq as u32, 0);
        if puts {
            for name in &names {
                client
                    .send(&Request::Put {
                        queue: name,
                        payload: &payload,
                    })
                    .map_err(|e| e.to_string())?;
                in_flight += 1;
            }
        } else {
            client
                .send(&Request::Publish {
                    subject: &subject,
                    delay_ms: 0,
                    priority: 5,
                    confirm: 0,
                    timeout_ms: 0,
                    payload: &payload,
                })
                .map_err(|e| e.to_string())?;
            in_flight += 1;
        }
        if in_flight >= pipeline || seq + 1 == messages {
            client.flush().map_err(|e| e.to_string())?;
            for _ in 0..std::mem::take(&mut in_flight) {
                match client.recv().map_err(|e| e.to_string())? {
                    Response::Stored => {}
                    Response::Published(p) if p.queues as usize == queues => {}
                    other => return Err(format!("unexpected reply {other:?}")),
                }
            }
        }
    }
    let stats_after = stats_memory(&mut client)?;
    Ok(MemoryFigures {
        stats_before,
        stats_after,
    })
}

fn call(client: &mut beuss::Client, request: &Request<'_>) -> Result<(), String> {
    client.send(request).map_err(|e| e.to_string())?;
    client.flush().map_err(|e| e.to_string())?;
    client.recv().map(|_| ()).map_err(|e| e.to_string())
}

fn stats_memory(client: &mut beuss::Client) -> Result<u64, String> {
    client
        .stats()
        .map_err(|e| e.to_string())?
        .get("memory")
        .ok_or_else(|| "STATS has no memory figure".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload checks only as the message due, with its bytes intact.
    #[test]
    fn payloads_check_sequence_and_bytes() {
        let p = Payloads::new(32);
        let mut buf = Vec::new();
        p.fill(&mut buf, 0, 3, 77);
        assert_eq!(p.check(&buf, 3, "r"), Ok(77));
        assert!(p.check(&buf, 2, "r").unwrap_err().contains("came where 2"));
        let mut bad = buf.clone();
        bad[31] ^= 1;
        assert!(p.check(&bad, 3, "r").unwrap_err().contains("wrong bytes"));
        assert!(p.check(&buf[..31], 3, "r").is_err());
        let other = Payloads {
            nonce: p.nonce ^ 1,
            ..Payloads::new(32)
        };
        let mut theirs = Vec::new();
        other.fill(&mut theirs, 0, 3, 77);
        assert!(
            p.check(&theirs, 3, "r")
                .unwrap_err()
                .contains("did not send")
        );
    }
}
