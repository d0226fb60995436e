//! The client engine of `beuss-bench`: one thread, one `mio::Poll`, every connection
//! non-blocking, the same design as `redis-benchmark` so that neither side of a
//! comparison gets a better client.
//!
//! A *phase* is one kind of work done by every connection until its share of the
//! requests is answered:
//!
//! - `Put` / `Get`: like `redis-benchmark -P`, a connection writes a batch of up to
//!   `pipeline` requests at once and writes the next batch when the last reply of this
//!   one is in. A reply's latency runs from its batch's write to the read that brought
//!   it. beanstalkd's `delete`s for the jobs reserved in one batch ride at the front of
//!   the next, so a message costs it one round trip, like the others.
//! - `Lease`: like `Get`, but each batch is one request for up to `pipeline` messages
//!   on lease (beuss `LEASE`, Redis `XREADGROUP ... >`; beanstalkd, which reserves one
//!   job per request, writes `pipeline` `reserve`s as in `Get`), and the
//!   acknowledgement of everything the previous batch brought (one `ACK` / `XACK`, or
//!   one `delete` per job) rides at the front of the next one. At `-P 1` that is one
//!   message and one acknowledgement per round trip.
//! - `Latency`: half the connections produce at a fixed pace, the other half keep one
//!   waiting GET outstanding each. The producer stamps the send time into the payload;
//!   the consumer records receive minus send. A delivery counts as *parked* when the
//!   consumer's GET was written before the message was, i.e. the consumer was waiting.
//!
//! Every payload says who sent it and its sequence number, and the rest of its bytes
//! follow a pattern derived from both, so each message that comes back is checked:
//! exactly once, in order per (consumer, producer), bytes intact ([`Verifier`]).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::wire::{MAX_LEASE_BATCH, Reply, Target};

/// Bytes at the front of each payload: producer id, sequence number, send stamp.
pub const PAYLOAD_HEADER: usize = 16;
/// Largest number of connections whose order is checked pairwise (the order table is
/// connections squared).
pub const MAX_CHECKED_CONNECTIONS: usize = 1024;
/// Free input space kept before each read.
const READ_ROOM: usize = 64 * 1024;
/// How long a waiting GET waits before the server answers "empty" and it is re-sent.
const WAIT_SECONDS: u32 = 1;

/// What one benchmark run is about; shared by every phase.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server kind.
    pub target: Target,
    /// Where it listens (every resolved address, tried in turn).
    pub addrs: Vec<SocketAddr>,
    /// Connections.
    pub clients: usize,
    /// Requests per batch.
    pub pipeline: usize,
    /// Payload bytes per message.
    pub data: usize,
    /// Queues the connections spread over (see `queue_of`).
    pub queues: usize,
    /// Messages per second, all producers together, in the latency phase.
    pub rate: f64,
    /// A phase with no reply for this long fails.
    pub stall: Duration,
    /// The leased test: puts are `XADD`s on Redis, whose streams are set up first.
    pub leased: bool,
    /// Leases are never acknowledged: the in-flight memory measurement.
    pub hold: bool,
    /// beuss puts carry this delay (the delayed memory measurement); 0 = plain `PUT`.
    pub delay_ms: u32,
}

/// The kind of work in one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Every connection puts its share of messages on its queue.
    Put,
    /// Every connection takes its share of messages from its queue (never waiting:
    /// the queue must hold them).
    Get,
    /// Like `Get`, with messages taken on lease and acknowledged (see the module
    /// documentation).
    Lease,
    /// Paced producers and parked consumers; latency is delivery time.
    Latency,
    /// Every connection sends a ping at a fixed pace; latency is the round trip. The
    /// floor under `Latency` on this machine: the same two wake-ups (server, then
    /// client) with no queue work in between.
    Rtt,
}

/// What one phase measured.
#[derive(Debug)]
pub struct Measured {
    /// Requests (messages, for gets and latency) completed.
    pub requests: u64,
    /// From the first write to the last reply.
    pub elapsed: Duration,
    /// Latencies in nanoseconds.
    pub hist: Histogram<u64>,
    /// CPU time (user + system) this process used meanwhile.
    pub client_cpu: Duration,
    /// Deliveries to a consumer that was already waiting (latency phase only).
    pub parked: u64,
}

/// Replies expected, oldest first (replies carry no id: the n-th answers the n-th).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Put,
    /// An `XADD` (answered by the entry id) or, elsewhere, a put.
    Add,
    Get,
    /// A lease of up to this many messages.
    Lease(u32),
    /// An acknowledgement of this many leases in one request.
    Settle(u32),
    /// A reply to count nothing for: beanstalkd's `DELETED`.
    Aux,
    /// A paced ping, timed.
    Ping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
}

/// A connection's progress in the current phase (kept apart from its buffers so that
/// a decoded reply can borrow the input while this is updated).
#[derive(Debug)]
struct Flow {
    /// Index among all connections, stamped into its payloads.
    id: u32,
    queue: String,
    role: Role,
    pending: VecDeque<Pending>,
    /// When the current batch was written.
    batch_at: Instant,
    /// Requests still to send in this phase.
    todo: u64,
    /// beanstalkd jobs reserved and not yet deleted.
    deletes: Vec<u64>,
    /// Leased test: Redis consumer name, unique per connection.
    consumer: String,
    /// Leases received and not yet acknowledged: their ack bytes, end to end.
    acks: Vec<u8>,
    ack_count: u32,
    /// Latency phase: when the outstanding GET was written, in stamp nanoseconds.
    get_sent_ns: u64,
    /// Latency phase: when the producer sends next.
    due: Instant,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// Encoded requests; `out[sent..]` is not written yet.
    out: Vec<u8>,
    sent: usize,
    /// Received bytes live in `input[start..end]`.
    input: Vec<u8>,
    start: usize,
    end: usize,
    flow: Flow,
}

/// Checks every message that comes back against what was sent.
#[derive(Debug)]
pub struct Verifier {
    clients: usize,
    data: usize,
    /// Mixed into the sender id of every payload, different for every verifier, so
    /// that messages left in the server by an earlier run or test are reported
    /// instead of being counted as this run's.
    nonce: u32,
    /// Bytes that payload filler is cut from.
    pattern: Vec<u8>,
    /// Puts sent, confirmed and received per producer.
    issued: Vec<u32>,
    stored: Vec<u32>,
    received: Vec<u32>,
    /// One bit per (producer, sequence number) received.
    seen: Vec<Vec<u64>>,
    /// Last sequence number consumer `c` got from producer `p`, at `c * clients + p`.
    last: Vec<u32>,
}

impl Verifier {
    /// A verifier for `clients` connections sending `data`-byte payloads.
    pub fn new(clients: usize, data: usize) -> Verifier {
        let checked = clients.min(MAX_CHECKED_CONNECTIONS);
        Verifier {
            clients,
            data,
            nonce: run_nonce(),
            pattern: (0..data + 256).map(|i| (i * 131 + 7) as u8).collect(),
            issued: vec![0; clients],
            stored: vec![0; clients],
            received: vec![0; clients],
            seen: vec![Vec::new(); clients],
            last: vec![u32::MAX; checked * checked],
        }
    }

    /// Writes the payload of producer `id`'s next message into `dst`.
    fn payload(&mut self, dst: &mut Vec<u8>, id: u32, stamp: u64) {
        let seq = self.issued[id as usize];
        self.issued[id as usize] += 1;
        dst.clear();
        dst.extend_from_slice(&(id ^ self.nonce).to_be_bytes());
        dst.extend_from_slice(&seq.to_be_bytes());
        dst.extend_from_slice(&stamp.to_be_bytes());
        let off = filler_offset(id, seq);
        dst.extend_from_slice(&self.pattern[off..off + self.data - PAYLOAD_HEADER]);
    }

    /// Checks a received message; returns its send stamp.
    fn check(&mut self, consumer: u32, payload: &[u8]) -> Result<u64, String> {
        if payload.len() != self.data {
            return Err(format!(
                "a message of {} bytes came back, {} were sent",
                payload.len(),
                self.data
            ));
        }
        let word = |at: usize| {
            u32::from_be_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ])
        };
        let (id, seq) = (word(0) ^ self.nonce, word(4));
        let p = id as usize;
        if p >= self.clients || seq >= self.issued[p] {
            return Err(format!(
                "connection {consumer} got message {seq} of connection {id}, which was never sent"
            ));
        }
        let off = filler_offset(id, seq);
        if payload[PAYLOAD_HEADER..] != self.pattern[off..off + self.data - PAYLOAD_HEADER] {
            return Err(format!(
                "message {seq} of connection {id} came back with wrong bytes"
            ));
        }
        let bits = &mut self.seen[p];
        let (word_at, bit) = (seq as usize / 64, 1u64 << (seq % 64));
        if bits.len() <= word_at {
            bits.resize(word_at + 1, 0);
        }
        if bits[word_at] & bit != 0 {
            return Err(format!("message {seq} of connection {id} came back twice"));
        }
        let c = consumer as usize;
        if c < MAX_CHECKED_CONNECTIONS && p < MAX_CHECKED_CONNECTIONS {
            let at = c * self.clients.min(MAX_CHECKED_CONNECTIONS) + p;
            let last = self.last[at];
            if last != u32::MAX && seq <= last {
                return Err(format!(
                    "connection {consumer} got message {seq} of connection {id} after message {last}: out of order"
                ));
            }
            self.last[at] = seq;
        }
        bits[word_at] |= bit;
        self.received[p] += 1;
        Ok(u64::from_be_bytes(
            payload[8..16].try_into().unwrap_or([0; 8]),
        ))
    }

    /// Messages confirmed stored and not yet received.
    pub fn outstanding(&self) -> u64 {
        self.stored
            .iter()
            .zip(&self.received)
            .map(|(s, r)| u64::from(s.saturating_sub(*r)))
            .sum()
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received.iter().map(|&r| u64::from(r)).sum()
    }

    /// Checks that every message sent was confirmed and came back.
    ///
    /// # Errors
    /// The first connection whose counts disagree.
    pub fn finish(&self) -> Result<(), String> {
        for p in 0..self.clients {
            let (issued, stored, received) = (self.issued[p], self.stored[p], self.received[p]);
            if issued != stored || stored != received {
                return Err(format!(
                    "connection {p}: {issued} messages sent, {stored} confirmed, {received} came back"
                ));
            }
        }
        Ok(())
    }
}

/// A number unlikely to repeat between two verifiers, in one process or two.
fn run_nonce() -> u32 {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u32);
    let count = COUNT.fetch_add(0x9E37_79B9, std::sync::atomic::Ordering::Relaxed);
    clock ^ std::process::id().rotate_left(16) ^ count
}

fn filler_offset(id: u32, seq: u32) -> usize {
    (id as usize * 31 + seq as usize) % 251
}

/// Connections to one server, ready to run phases.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    /// What was sent, for checking what comes back.
    pub verifier: Verifier,
    /// Origin of the stamps in payloads.
    epoch: Instant,
    /// Payload being built.
    scratch: Vec<u8>,
    /// Latency phase: time between two messages of one producer.
    interval: Duration,
}

/// Counters of the phase in progress.
#[derive(Debug)]
struct Tally {
    work: Work,
    hist: Histogram<u64>,
    /// Requests completed (messages, for gets).
    done: u64,
    /// Requests the phase must complete.
    goal: u64,
    parked: u64,
    /// Replies of the current read whose latency is still to be recorded.
    batched: u64,
    last_progress: Instant,
}

impl Engine {
    /// Opens `settings.clients` connections and prepares each for its queue.
    ///
    /// # Errors
    /// A connection or its set-up failed.
    pub fn connect(settings: Settings, work: Work) -> Result<Engine, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
        let mut conns = Vec::with_capacity(settings.clients);
        for i in 0..settings.clients {
            // Its own queues for the leased test: Redis keys of another type.
            let queue = format!(
                "{}-{}",
                if settings.leased { "lease" } else { "bench" },
                queue_of(work, i, settings.clients, settings.queues)
            );
            let std = connect(&settings.addrs)?;
            std.set_nodelay(true)
                .map_err(|e| format!("setsockopt TCP_NODELAY: {e}"))?;
            let mut out = Vec::new();
            let mut acks = settings.target.setup(&mut out, &queue);
            // Connection i < queues is the first on queue i (see queue_of).
            if settings.leased && i < settings.queues {
                acks += settings.target.lease_setup(&mut out, &queue);
            }
            if acks > 0 {
                exchange(&std, settings.target, &out, acks)?;
            }
            std.set_nonblocking(true)
                .map_err(|e| format!("cannot make a socket non-blocking: {e}"))?;
            let mut stream = TcpStream::from_std(std);
            poll.registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| format!("cannot register a connection: {e}"))?;
            conns.push(Conn {
                stream,
                out: Vec::with_capacity(READ_ROOM),
                sent: 0,
                input: vec![0; 2 * READ_ROOM],
                start: 0,
                end: 0,
                flow: Flow {
                    id: i as u32,
                    queue,
                    role: Role::Producer,
                    pending: VecDeque::new(),
                    batch_at: Instant::now(),
                    todo: 0,
                    deletes: Vec::new(),
                    consumer: format!("c{i}"),
                    acks: Vec::with_capacity(MAX_LEASE_BATCH * 16),
                    ack_count: 0,
                    get_sent_ns: 0,
                    due: Instant::now(),
                },
            });
        }
        let verifier = Verifier::new(settings.clients, settings.data);
        Ok(Engine {
            settings,
            poll,
            events: Events::with_capacity(1024),
            conns,
            verifier,
            epoch: Instant::now(),
            scratch: Vec::new(),
            interval: Duration::ZERO,
        })
    }

    /// Runs one phase in which all connections together complete `requests`.
    ///
    /// # Errors
    /// A connection failed, the server answered an error, a message came back wrong
    /// or missing, or nothing happened for `settings.stall`.
    pub fn run(&mut self, work: Work, requests: u64) -> Result<Measured, String> {
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| format!("histogram: {e}"))?;
        let start = Instant::now();
        let mut tally = Tally {
            work,
            hist,
            done: 0,
            goal: requests,
            parked: 0,
            batched: 0,
            last_progress: start,
        };
        self.assign(work, requests, start);
        let cpu_before = process_cpu();
        for i in 0..self.conns.len() {
            self.advance(i, start, &mut tally)?;
        }
        let mut end = start;
        while !self.finished(&tally) {
            let now = Instant::now();
            if now.duration_since(tally.last_progress) > self.settings.stall {
                return Err(format!(
                    "no reply for {:?}: {} of {} requests done",
                    self.settings.stall, tally.done, tally.goal
                ));
            }
            let timeout = self.poll_timeout(now, &tally);
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll: {e}"));
            }
            let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            for i in ready {
                self.on_ready(i, &mut tally)?;
            }
            if matches!(work, Work::Latency | Work::Rtt) {
                let now = Instant::now();
                for i in 0..self.conns.len() {
                    self.advance(i, now, &mut tally)?;
                }
            }
            end = tally.last_progress;
        }
        Ok(Measured {
            requests: tally.done,
            elapsed: end.duration_since(start),
            hist: tally.hist,
            client_cpu: process_cpu().saturating_sub(cpu_before),
            parked: tally.parked,
        })
    }

    /// Gives every connection its role and share of the phase's requests.
    fn assign(&mut self, work: Work, requests: u64, start: Instant) {
        let clients = self.conns.len();
        let producers = if work == Work::Latency {
            clients / 2
        } else {
            clients
        };
        let paced = matches!(work, Work::Latency | Work::Rtt);
        let interval = Duration::from_secs_f64(producers.max(1) as f64 / self.settings.rate);
        self.interval = interval;
        for (i, conn) in self.conns.iter_mut().enumerate() {
            let flow = &mut conn.flow;
            let (role, index, share_of) = match work {
                Work::Put | Work::Rtt => (Role::Producer, i, clients),
                Work::Get | Work::Lease => (Role::Consumer, i, clients),
                Work::Latency if i < producers => (Role::Producer, i, producers),
                Work::Latency => (Role::Consumer, i - producers, clients - producers),
            };
            flow.role = role;
            flow.todo = share(requests, index, share_of);
            if paced {
                // Spread the producers over one interval so that they do not send
                // in step.
                flow.due = start + interval.mul_f64(index as f64 / producers.max(1) as f64);
                if role == Role::Consumer {
                    flow.todo = 0;
                }
            }
        }
    }

    fn finished(&self, tally: &Tally) -> bool {
        match tally.work {
            Work::Put | Work::Get | Work::Lease => self.conns.iter().all(|c| {
                c.flow.todo == 0
                    && c.flow.pending.is_empty()
                    && c.flow.deletes.is_empty()
                    && c.flow.ack_count == 0
            }),
            // Consumers may still have a GET parked (it is dropped with the
            // connection), but every put must be confirmed and every beanstalkd job
            // deleted, or the job would go back to its tube when the connection closes.
            Work::Latency | Work::Rtt => {
                tally.done >= tally.goal
                    && self.conns.iter().all(|c| {
                        c.flow.deletes.is_empty()
                            && !c.flow.pending.iter().any(|p| *p != Pending::Get)
                    })
            }
        }
    }

    fn poll_timeout(&self, now: Instant, tally: &Tally) -> Duration {
        let mut timeout = Duration::from_millis(100);
        if matches!(tally.work, Work::Latency | Work::Rtt) {
            for c in &self.conns {
                let f = &c.flow;
                if f.role == Role::Producer && f.todo > 0 && f.pending.is_empty() {
                    timeout = timeout.min(f.due.saturating_duration_since(now));
                }
            }
        }
        timeout
    }

    fn on_ready(&mut self, i: usize, tally: &mut Tally) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(i) else {
            return Ok(());
        };
        write_out(conn)?;
        let target = self.settings.target;
        let mut now = None;
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
                Ok(0) => return Err(format!("connection {i}: the server closed it")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("connection {i}: read: {e}")),
            };
            conn.end += n;
            let at = Instant::now();
            now = Some(at);
            let now_ns = at.duration_since(self.epoch).as_nanos() as u64;
            while let Some((reply, used)) = target
                .decode(&conn.input[conn.start..conn.end])
                .map_err(|e| format!("connection {i}: {e}"))?
            {
                on_reply(
                    &mut conn.flow,
                    target,
                    reply,
                    &mut self.verifier,
                    tally,
                    at,
                    now_ns,
                )?;
                conn.start += used;
            }
            // Every reply in one read has the same latency: record them at once.
            if tally.batched > 0 {
                let latency = at.duration_since(conn.flow.batch_at);
                tally
                    .hist
                    .saturating_record_n(nanos(latency), std::mem::take(&mut tally.batched));
            }
            // A short read on a stream socket means its buffer is empty for now; the
            // next arrival raises a new edge, so the read that would say EAGAIN is
            // skipped.
            if n < room {
                break;
            }
        }
        self.advance(i, now.unwrap_or_else(Instant::now), tally)
    }

    /// Sends the connection's next request or batch if it is due.
    fn advance(&mut self, i: usize, now: Instant, tally: &mut Tally) -> Result<(), String> {
        let target = self.settings.target;
        let pipeline = self.settings.pipeline;
        let Some(conn) = self.conns.get_mut(i) else {
            return Ok(());
        };
        let flow = &mut conn.flow;
        if !flow.pending.is_empty() {
            return Ok(());
        }
        let consumer = flow.role == Role::Consumer;
        // beanstalkd leases with reserve, one job each: its batches are Get's.
        let lease = tally.work == Work::Lease && target != Target::Beanstalkd;
        let batch = match tally.work {
            Work::Put | Work::Get => flow.todo.min(pipeline as u64),
            Work::Lease if lease => flow.todo.min(pipeline.min(MAX_LEASE_BATCH) as u64),
            Work::Lease => flow.todo.min(pipeline as u64),
            Work::Latency if consumer => u64::from(tally.done < tally.goal),
            Work::Latency | Work::Rtt => u64::from(flow.todo > 0 && flow.due <= now),
        };
        if batch == 0 && flow.deletes.is_empty() && flow.ack_count == 0 {
            return Ok(());
        }
        for id in flow.deletes.drain(..) {
            if target.delete(&mut conn.out, id) {
                flow.pending.push_back(Pending::Aux);
            }
        }
        if self.settings.hold {
            flow.acks.clear();
            flow.ack_count = 0;
        }
        if flow.ack_count > 0 {
            target.ack(
                &mut conn.out,
                &flow.queue,
                &flow.acks,
                flow.ack_count as usize,
            );
            flow.pending.push_back(Pending::Settle(flow.ack_count));
            flow.acks.clear();
            flow.ack_count = 0;
        }
        if lease && batch > 0 {
            // batch is at most MAX_LEASE_BATCH, which fits a u16.
            target.lease(&mut conn.out, &flow.queue, &flow.consumer, batch as u16);
            flow.pending.push_back(Pending::Lease(batch as u32));
        }
        for _ in 0..if lease { 0 } else { batch } {
            if tally.work == Work::Rtt {
                target.ping(&mut conn.out);
                flow.pending.push_back(Pending::Ping);
            } else if consumer {
                let wait = if tally.work == Work::Latency {
                    WAIT_SECONDS
                } else {
                    0
                };
                target.get(&mut conn.out, &flow.queue, wait);
                flow.pending.push_back(Pending::Get);
            } else {
                // Only the latency test reads the stamp; a clock read per put
                // would be most of the client's cost elsewhere.
                let stamp = if tally.work == Work::Latency {
                    self.epoch.elapsed().as_nanos() as u64
                } else {
                    0
                };
                self.verifier.payload(&mut self.scratch, flow.id, stamp);
                if self.settings.leased {
                    target.add(&mut conn.out, &flow.queue, &self.scratch);
                    flow.pending.push_back(Pending::Add);
                } else if self.settings.delay_ms > 0 {
                    let delay = self.settings.delay_ms;
                    target.put_delayed(&mut conn.out, &flow.queue, &self.scratch, delay);
                    flow.pending.push_back(Pending::Put);
                } else {
                    target.put(&mut conn.out, &flow.queue, &self.scratch);
                    flow.pending.push_back(Pending::Put);
                }
            }
        }
        if matches!(tally.work, Work::Latency | Work::Rtt) {
            if consumer {
                flow.get_sent_ns = self.epoch.elapsed().as_nanos() as u64;
            } else {
                // No catching up in bursts after a late wake-up (poll timeouts are
                // whole milliseconds): a burst would find the consumer busy instead
                // of parked. The achieved rate is what gets reported.
                flow.todo -= batch;
                flow.due = (flow.due + self.interval).max(now + self.interval / 2);
            }
        } else {
            conn.flow.todo -= batch;
        }
        // Latency runs from the write, not from the read that led to it: the replies
        // handled in between are the client's time, not the server's.
        conn.flow.batch_at = Instant::now();
        write_out(conn)
    }
}

/// Accounts for one reply.
#[allow(clippy::too_many_arguments)]
fn on_reply(
    flow: &mut Flow,
    target: Target,
    reply: Reply<'_>,
    verifier: &mut Verifier,
    tally: &mut Tally,
    now: Instant,
    now_ns: u64,
) -> Result<(), String> {
    let id = flow.id;
    let Some(expected) = flow.pending.pop_front() else {
        return Err(format!("connection {id}: a reply nobody asked for"));
    };
    // A waiting GET that ran out is not progress: the stall timeout must still fire
    // when messages stop coming.
    if !matches!((expected, &reply), (Pending::Get, Reply::Empty)) {
        tally.last_progress = now;
    }
    match (expected, reply) {
        // LPUSH answers the list's length; XADD the entry's id.
        (Pending::Put, Reply::Stored | Reply::Count(_))
        | (Pending::Add, Reply::Stored | Reply::Count(_) | Reply::Message { id: 0, .. }) => {
            verifier.stored[id as usize] += 1;
            if tally.work != Work::Latency {
                tally.batched += 1;
                tally.done += 1;
            }
        }
        (Pending::Get, Reply::Message { payload, id: job }) => {
            let stamp = verifier.check(id, payload)?;
            if job != 0 {
                flow.deletes.push(job);
            }
            tally.done += 1;
            if tally.work == Work::Latency {
                record(
                    &mut tally.hist,
                    Duration::from_nanos(now_ns.saturating_sub(stamp)),
                );
                tally.parked += u64::from(flow.get_sent_ns < stamp);
            } else {
                tally.batched += 1;
            }
        }
        (Pending::Lease(asked), Reply::Leased { count, items }) => {
            if count > asked as usize {
                return Err(format!(
                    "connection {id}: asked for {asked} leases, got {count}"
                ));
            }
            let mut seen = 0;
            for (ack, payload) in target.leased(items) {
                verifier.check(id, payload)?;
                flow.acks.extend_from_slice(ack);
                seen += 1;
            }
            if seen != count {
                return Err(format!(
                    "connection {id}: a lease reply announced {count} messages and held {seen}"
                ));
            }
            flow.ack_count += count as u32;
            // Fewer than asked (a batch size rule): ask again for the rest.
            flow.todo += u64::from(asked) - count as u64;
            tally.done += count as u64;
            tally.batched += count as u64;
        }
        (Pending::Settle(n), Reply::Count(k)) if k == u64::from(n) => {}
        (Pending::Settle(n), Reply::Settled { ok, .. }) if ok == n as usize => {}
        (Pending::Settle(n), Reply::Settled { ok, stale, missing }) => {
            return Err(format!(
                "connection {id}: ACK of {n} leases on {}: {ok} OK, {stale} STALE, {missing} NOT_FOUND",
                flow.queue
            ));
        }
        (Pending::Settle(n), Reply::Count(k)) => {
            return Err(format!(
                "connection {id}: XACK of {n} entries acknowledged {k}"
            ));
        }
        (Pending::Get, Reply::Empty) if tally.work == Work::Latency => {}
        (Pending::Get | Pending::Lease(_), Reply::Empty) => {
            return Err(format!(
                "connection {id}: {} was empty with {} messages still to come back",
                flow.queue,
                verifier.outstanding()
            ));
        }
        (Pending::Aux, Reply::Ack) => {}
        (Pending::Ping, Reply::Ack) => {
            record(&mut tally.hist, now.duration_since(flow.batch_at));
            tally.done += 1;
        }
        (expected, reply) => {
            return Err(format!(
                "connection {id}: expected a reply to {expected:?}, got {reply:?}"
            ));
        }
    }
    Ok(())
}

fn record(hist: &mut Histogram<u64>, latency: Duration) {
    hist.saturating_record(nanos(latency));
}

fn nanos(latency: Duration) -> u64 {
    (latency.as_nanos() as u64).max(1)
}

/// The queue connection `i` of `clients` uses, chosen once at connect time because
/// beanstalkd binds a connection to its tube then. In the latency test the first half
/// of the connections produce and the second half consume, and producer `p` shares
/// its queue with consumer `p`; in the others, connections spread over the queues.
fn queue_of(work: Work, i: usize, clients: usize, queues: usize) -> usize {
    if work == Work::Latency {
        let producers = (clients / 2).max(1);
        let index = if i < producers { i } else { i - producers };
        index % queues.clamp(1, producers)
    } else {
        i % queues.clamp(1, clients.max(1))
    }
}

/// Share `index` of `total` split over `parts` (the first ones get the remainder).
fn share(total: u64, index: usize, parts: usize) -> u64 {
    let parts = parts.max(1) as u64;
    total / parts + u64::from((index as u64) < total % parts)
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

/// Connects a blocking socket to the first address that accepts.
///
/// # Errors
/// Every address refused; the last reason is given.
pub fn connect(addrs: &[SocketAddr]) -> Result<std::net::TcpStream, String> {
    std::net::TcpStream::connect(addrs).map_err(|e| format!("cannot connect to {addrs:?}: {e}"))
}

/// Writes `request` on a blocking socket and reads `replies` replies, each of which
/// must be [`Reply::Ack`] or [`Reply::Count`] (Redis's `DEL`).
///
/// # Errors
/// I/O failed or a reply was not an acknowledgement.
pub fn exchange(
    mut stream: &std::net::TcpStream,
    target: Target,
    request: &[u8],
    replies: usize,
) -> Result<(), String> {
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    for _ in 0..replies {
        loop {
            if let Some((reply, used)) = target.decode(&buf)? {
                if !matches!(reply, Reply::Ack | Reply::Count(_)) {
                    return Err(format!("expected an acknowledgement, got {reply:?}"));
                }
                buf.drain(..used);
                break;
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection".to_owned()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
    Ok(())
}

/// CPU time (user + system) used by this process so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(v: &mut Verifier, id: u32) -> Vec<u8> {
        let mut payload = Vec::new();
        v.payload(&mut payload, id, 42);
        v.stored[id as usize] += 1;
        payload
    }

    /// Messages that come back whole, once and in order pass, and give their stamp.
    #[test]
    fn intact_messages_pass() {
        let mut v = Verifier::new(2, 32);
        let a = sent(&mut v, 0);
        let b = sent(&mut v, 0);
        let c = sent(&mut v, 1);
        assert_eq!(v.check(1, &a), Ok(42));
        assert_eq!(v.check(1, &c), Ok(42));
        assert_eq!(v.check(0, &b), Ok(42));
        assert_eq!(v.finish(), Ok(()));
    }

    /// A wrong byte, a duplicate, a reordering, an unknown sender and a missing message
    /// are each reported.
    #[test]
    fn every_kind_of_damage_is_caught() {
        let mut v = Verifier::new(2, 32);
        let first = sent(&mut v, 0);
        let second = sent(&mut v, 0);
        let mut damaged = first.clone();
        damaged[31] ^= 1;
        assert!(v.check(0, &damaged).unwrap_err().contains("wrong bytes"));
        assert!(v.check(0, &first[..31]).unwrap_err().contains("31 bytes"));
        assert_eq!(v.check(0, &second), Ok(42));
        assert!(v.check(0, &first).unwrap_err().contains("out of order"));
        assert!(v.check(1, &second).unwrap_err().contains("twice"));
        let mut stranger = first.clone();
        stranger[0] ^= 0x80;
        assert!(v.check(0, &stranger).unwrap_err().contains("never sent"));
        // A message another verifier (another run) sent is not taken for this one's.
        let mut other = Verifier::new(2, 32);
        let leftover = sent(&mut other, 0);
        assert!(v.check(0, &leftover).is_err());
        assert!(v.finish().unwrap_err().contains("2 confirmed, 1 came back"));
    }
}
