//! The queue store: named queues held in memory, the consumers waiting on them,
//! leases (messages in flight until acknowledged), delays, priorities, dead letters,
//! idle-queue expiry and the memory cap.
//!
//! No I/O and no clock here: every method that cares about time takes `now`, and the
//! store answers with outcomes ("hand this message to that waiter") that the server
//! carries out. A waiter is whatever handle type `W` the caller uses to find a
//! connection again.

mod bodies;
mod durable;
mod expiry;
mod fanout;
mod held;
mod idhash;
mod jobs;
mod log;
mod queues;
mod ready;
mod records;
mod schedules;
mod unique;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub use bodies::BODY_OVERHEAD;
use bodies::{Bodies, Payload};
pub use durable::Restored;
pub use expiry::EXPIRY_OVERHEAD;
use expiry::Expiries;
pub use fanout::{BINDING_OVERHEAD, Delivery, Published, TRIE_NODE_MEMORY, trie_memory};
pub use held::{HELD_OVERHEAD, LeaseSpec};
use held::{Held, HeldState, OwnedLeases};
use idhash::IdMap;
pub use jobs::JobPut;
use log::StoreLog;
use queues::Queues;
use ready::Levels;
pub use records::{Body, CHUNK_SIZE, RECORD_HEADER, Record, Records};
pub use schedules::DueRun;
use unique::Uniques;
pub use unique::{DEFAULT_MAX_REMEMBERED, KEY_OVERHEAD, KeyCounts};

use crate::journal::record::Record as LogRecord;
use crate::protocol::{LeaseRef, NEVER_DEAD, PutOptions, SettleResult};

/// Memory charged for a queue's own bookkeeping (map entry, struct, name), on top of
/// its message chunks. It makes the cap count queues too, so that a flood of queue
/// names cannot grow memory past it.
pub const QUEUE_OVERHEAD: usize = 160;

/// Most timers one call of [`Store::expire`] runs, so that a mass expiry (100,000
/// leases given in one tick) is spread over many loop turns with other clients served
/// in between, instead of stalling them all at once.
pub const EXPIRE_BUDGET: usize = 1024;

/// Suffix of the dead-letter queue of a queue.
pub const DEAD_SUFFIX: &str = ".dead";

/// A `PUT` refused because it would take the store over its memory cap, or a queue
/// over one of its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// Bytes held now (messages or payload bytes of the queue, for a queue's cap).
    pub used: usize,
    /// The cap.
    pub limit: usize,
    /// Which cap.
    pub cap: FullCap,
}

/// The cap a [`Full`] refusal ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullCap {
    /// The server's memory cap (`BMAXMEMORY`).
    Memory,
    /// A queue's message cap (`BQUEUEMAXMESSAGES`, protocol.md 7.4).
    QueueMessages,
    /// A queue's payload byte cap (`BQUEUEMAXBYTES`).
    QueueBytes,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cap {
            FullCap::Memory => write!(
                f,
                "memory cap reached ({} of {} bytes held); message not stored",
                self.used, self.limit
            ),
            FullCap::QueueMessages => write!(
                f,
                "the queue holds {} messages, its cap (BQUEUEMAXMESSAGES); message not stored",
                self.used
            ),
            FullCap::QueueBytes => write!(
                f,
                "the queue holds {} payload bytes and its cap is {} (BQUEUEMAXBYTES); \
                 message not stored",
                self.used, self.limit
            ),
        }
    }
}

impl std::error::Error for Full {}

/// What happened to a message given to [`Store::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome<W> {
    /// Appended to the queue (or delayed).
    Stored,
    /// Not stored: a plain `GET` was waiting, and the caller must deliver the payload
    /// to it now. The waiter has been removed.
    Handed(W),
    /// A `LEASE` was waiting: the message is now in flight under this lease, and the
    /// caller must deliver it to the waiter now (or [`Store::give_back`] it).
    Leased(W, LeaseRef),
}

/// A message the store gave to a parked consumer outside of a request of that
/// consumer (a lease ended, a delay ran out, a `MOVE`, a `NACK`): the caller writes
/// it to `waiter`, or hands it back with [`Store::give_back`] if it cannot.
#[derive(Debug)]
pub struct Handoff<W> {
    /// The consumer it is for.
    pub waiter: W,
    /// The lease, for a `LEASE` waiter; `None` for a plain `GET`.
    pub lease: Option<LeaseRef>,
    /// The payload, for a plain `GET` (the message has left the store); for a lease
    /// it stays in the store: see [`Store::payload`].
    pub payload: Option<Box<[u8]>>,
    /// What a published copy taken by a plain `GET` carried (for a lease, see
    /// [`Store::published_meta`]).
    pub meta: Option<CopyMeta>,
    /// Its queue, by name: by the time a handoff comes back, the queue may have been
    /// removed and its slab key reused.
    queue: Box<str>,
    /// What the waiter was parked with, to park it again (see [`Store::repark`]).
    spec: Option<LeaseSpec>,
    deadline: Option<Instant>,
    /// The message's id.
    pub id: u64,
    /// Its attempt number.
    pub attempt: u32,
    priority: u8,
    /// The key and expiry it had, to have again if it is given back.
    job: Job,
}

/// The unique key (with its window) and the expiry a message handed to a plain
/// consumer had: `None` for most, so that a handoff stays small.
type Job = Option<Box<jobs::HandedJob>>;

/// What a published message carries besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta<'a> {
    /// The subject it was published to.
    pub subject: &'a str,
    /// The reply address of a request; 0 for none.
    pub reply_to: u64,
}

/// A message leaving the store for a plain consumer: its payload, and the subject
/// and reply address of a published copy.
type Taken = (Box<[u8]>, Option<CopyMeta>);

/// What a published copy carries besides its payload, owned: for one that left the
/// store on its way to a plain consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyMeta {
    /// The subject it was published to.
    pub subject: Box<str>,
    /// The reply address of a request; 0 for none.
    pub reply_to: u64,
    /// The confirmation it counts toward (0 for none): the caller reports it with
    /// [`Store::confirm_taken`] once the copy is written.
    pub confirm: u64,
}

/// How a `NACK` ends a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nack {
    /// Return the message after this long (zero = now).
    pub delay: Duration,
    /// Dead-letter it now.
    pub dead: bool,
    /// Do not charge this delivery.
    pub no_charge: bool,
}

/// Server-wide counters kept by the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages accepted by `put` (stored or handed to a waiter).
    pub puts: u64,
    /// Messages taken by consumers (from the queue or handed over), plain or leased.
    pub gets: u64,
    /// Messages that arrived longer than the limit and were cut.
    pub truncations: u64,
    /// `put`s refused by the memory cap.
    pub rejected_full: u64,
    /// `put`s and publishes refused by a queue's cap (protocol.md 7.4).
    pub rejected_queue_full: u64,
    /// Messages dropped by `purge`.
    pub purged: u64,
    /// Queues removed after being idle.
    pub expired_queues: u64,
    /// Deliveries under lease.
    pub leases: u64,
    /// Messages acknowledged.
    pub acks: u64,
    /// Leases ended by `NACK`.
    pub nacks: u64,
    /// Messages made ready again after a lease.
    pub redeliveries: u64,
    /// Leases that ran out.
    pub expired_leases: u64,
    /// Messages moved to a dead-letter queue.
    pub dead_lettered: u64,
    /// Dead letters dropped because the dead-letter queue could not be named.
    pub dead_dropped: u64,
    /// Copies publishes stored in (or handed out from) queues.
    pub routed_copies: u64,
    /// `PUT`s with a unique key not stored because another message held the key.
    pub duplicates: u64,
    /// `PUT`s with a unique key that replaced the waiting message holding it.
    pub replaced: u64,
    /// Messages that expired (dropped or dead-lettered) before delivery.
    pub expired: u64,
}

/// Counters of one queue (the lease-related ones of [`Totals`], per queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Messages put since the queue was created.
    pub puts: u64,
    /// Messages taken since the queue was created (plain or leased).
    pub gets: u64,
    /// Truncated puts.
    pub truncations: u64,
    /// Deliveries under lease.
    pub leases: u64,
    /// Messages acknowledged.
    pub acks: u64,
    /// Leases ended by `NACK`.
    pub nacks: u64,
    /// Messages made ready again after a lease.
    pub redeliveries: u64,
    /// Leases that ran out.
    pub expired_leases: u64,
    /// Messages moved from here to the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages of this queue that expired (dropped or dead-lettered).
    pub expired: u64,
}

/// One queue's figures, for `STATS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueInfo {
    /// Messages held: ready, in flight and delayed.
    pub messages: u64,
    /// Payload bytes held.
    pub bytes: u64,
    /// Memory held (chunks, held messages and bookkeeping).
    pub memory: u64,
    /// Messages ready now.
    pub ready: u64,
    /// Messages leased now.
    pub in_flight: u64,
    /// Messages delayed now.
    pub delayed: u64,
    /// Messages in this queue's dead-letter queue now.
    pub dead: u64,
    /// Consumers parked on it.
    pub waiters: u64,
    /// Patterns bound to it.
    pub bindings: u64,
    /// Time since it was last used.
    pub idle: Duration,
    /// Counters since the queue was created.
    pub counters: QueueCounters,
}

#[derive(Debug)]
struct Waiter<W> {
    handle: W,
    /// The key of its timeout in `Store::timers`, if it has one.
    timer: Option<TimerKey>,
    /// For a parked `LEASE`: the lease it will be given.
    lease: Option<LeaseSpec>,
}

#[derive(Debug)]
struct Queue<W> {
    name: Box<str>,
    /// Never-delivered ready messages, by priority.
    ready: Levels,
    /// Ready messages that were delivered before, by (priority, id); their payloads
    /// are in `Store::held`.
    returned: BTreeSet<(u8, u64)>,
    /// Ready messages never delivered that hold a unique key, by (priority, id):
    /// they are in `Store::held` so that a replace can change them in place, and
    /// take their turn with the FIFO's messages by id.
    fresh: BTreeSet<(u8, u64)>,
    /// Parked consumers, first come first served.
    waiters: VecDeque<Waiter<W>>,
    last_used: Instant,
    /// Whether an idle-expiry timer for this queue is in `Store::timers`; at most one
    /// is, so touching an idle queue costs nothing.
    idle_timer: bool,
    /// A dead-letter queue that received a message: never idle-expired.
    keep: bool,
    /// Patterns bound to it: a bound queue is never idle-expired.
    bindings: u32,
    /// Messages of this queue in `Store::held` (returned, in flight, delayed).
    held: usize,
    in_flight: usize,
    delayed: usize,
    /// Payload bytes and memory of those held messages.
    held_bytes: usize,
    held_memory: usize,
    counters: QueueCounters,
}

impl<W> Queue<W> {
    fn new(name: &str, now: Instant) -> Self {
        Queue {
            name: name.into(),
            ready: Levels::default(),
            returned: BTreeSet::new(),
            fresh: BTreeSet::new(),
            waiters: VecDeque::new(),
            last_used: now,
            idle_timer: false,
            keep: false,
            bindings: 0,
            held: 0,
            in_flight: 0,
            delayed: 0,
            held_bytes: 0,
            held_memory: 0,
            counters: QueueCounters::default(),
        }
    }

    fn is_idle(&self) -> bool {
        self.ready.is_empty()
            && self.held == 0
            && self.waiters.is_empty()
            && !self.keep
            && self.bindings == 0
    }

    fn has_ready(&self) -> bool {
        !self.returned.is_empty() || !self.ready.is_empty() || !self.fresh.is_empty()
    }

    /// Where the next message to deliver is: `Some(Ok((priority, id)))` for a held
    /// one (returned, or keyed), `Some(Err(priority))` for the front of a priority
    /// FIFO.
    fn front(&self) -> Option<Front> {
        let returned = self.returned.first().copied();
        let fifo = self.ready.front().map(|(p, _)| p);
        let front = match (returned, fifo) {
            (Some(r), Some(p)) if p < r.0 => Err(p),
            (Some(r), _) => Ok(r),
            (None, Some(p)) => Err(p),
            (None, None) => return self.fresh.first().copied().map(Ok),
        };
        let Some(&(fp, fid)) = self.fresh.first() else {
            return Some(front);
        };
        // A keyed message comes after the returned ones of its priority and takes
        // its turn among the never-delivered ones by id (protocol.md 13.3).
        let first = match front {
            Ok((p, _)) => fp < p,
            Err(p) => fp < p || (fp == p && self.ready.front_id().is_some_and(|id| fid < id)),
        };
        Some(if first { Ok((fp, fid)) } else { front })
    }

    /// Takes a held message out of the ready order (whichever set has it).
    fn unready(&mut self, priority: u8, id: u64) {
        if !self.returned.remove(&(priority, id)) {
            self.fresh.remove(&(priority, id));
        }
    }

    fn memory(&self) -> usize {
        self.ready.capacity() + self.held_memory + QUEUE_OVERHEAD + self.name.len()
    }
}

/// Where a queue's next message is: `Ok((priority, id))` for a returned message (in
/// `Store::held`), `Err(priority)` for the front of that priority's FIFO.
type Front = Result<(u8, u64), u8>;

/// Timers are ordered by deadline; the sequence number makes keys unique.
type TimerKey = (Instant, u64);

#[derive(Debug)]
enum Timer<W> {
    /// A parked `GET` runs out of time.
    Waiter { queue: Box<str>, handle: W },
    /// A queue may have been idle long enough to drop.
    Idle { queue: Box<str> },
}

/// Named queues with waiting consumers, leases, delays, dead letters, idle expiry and
/// a memory cap.
#[derive(Debug)]
pub struct Store<W> {
    /// O(1) lookup by name (the Go original scanned a list).
    queues: Queues<Queue<W>>,
    /// Messages outside the FIFO chunks: in flight, delayed, returned, by id.
    held: IdMap<u64, Held>,
    /// Lease ends and delays as (deadline, id), soonest first: one 24-byte key per
    /// held message in flight or delayed, removed in O(log n) when it is settled.
    deadlines: BTreeSet<(Instant, u64)>,
    /// The number each connection holding leases goes by in `Held::owner` (a
    /// 4-byte number instead of the caller's handle in every held message).
    owners: HashMap<W, u32>,
    /// The last owner looked up and its number: consecutive leases nearly always go
    /// to the same connection.
    last_owner: Option<(W, u32)>,
    next_owner: u32,
    /// Each owner's leases, so that they can be returned when it closes.
    owned: IdMap<u32, OwnedLeases>,
    /// Waiter timeouts and idle checks, soonest first. A `BTreeMap` keeps them
    /// ordered and lets a served waiter's timeout be removed in O(log n).
    timers: BTreeMap<TimerKey, Timer<W>>,
    next_timer: u64,
    /// Messages given to parked consumers outside their own requests.
    handoffs: VecDeque<Handoff<W>>,
    next_id: u64,
    /// Memory held: chunk capacity, held messages, and per-queue overhead.
    memory: usize,
    max_memory: usize,
    /// Most messages and payload bytes one queue may hold (0: no cap).
    queue_max_messages: usize,
    queue_max_bytes: usize,
    queue_idle: Option<Duration>,
    messages: usize,
    bytes: usize,
    in_flight: usize,
    delayed: usize,
    totals: Totals,
    /// Records of every change, when the server keeps a journal (`BDATADIR`).
    log: Option<StoreLog>,
    /// Payloads shared by the copies of published messages.
    bodies: Bodies,
    /// The part of `memory` no queue accounts for: shared bodies, bindings, and
    /// what callers charged (subscriptions).
    outside: usize,
    /// Patterns bound onto queues (by slab key: a bound queue is never removed).
    bindings: crate::route::Trie<u64>,
    /// Reused by every publish for its list of target queues.
    route_scratch: Vec<u64>,
    /// Copies of confirmed publishes that were settled, as (confirmation, message
    /// id, acknowledged rather than failed), for the caller to count.
    confirms: Vec<(u64, u64, bool)>,
    /// Schedules, whose memory is part of `outside`.
    schedules: crate::schedule::Schedules,
    /// Unique keys, whose memory is part of `outside`.
    uniques: Uniques,
    /// When messages with a time to live expire; their memory is part of `outside`.
    expiries: Expiries,
    /// Time to live of the messages put without one, by queue name ("*": any other
    /// queue), from `BQUEUETTL`.
    default_ttls: HashMap<Box<str>, Duration>,
}

impl<W: Copy + Eq + Hash + fmt::Debug> Store<W> {
    /// An empty store holding at most `max_memory` bytes, dropping queues idle for
    /// `queue_idle` (never, if `None`).
    pub fn new(max_memory: usize, queue_idle: Option<Duration>) -> Self {
        Store {
            queues: Queues::default(),
            held: IdMap::default(),
            deadlines: BTreeSet::new(),
            owners: HashMap::new(),
            last_owner: None,
            next_owner: 0,
            owned: IdMap::default(),
            timers: BTreeMap::new(),
            next_timer: 0,
            handoffs: VecDeque::new(),
            next_id: 0,
            memory: 0,
            max_memory,
            queue_max_messages: 0,
            queue_max_bytes: 0,
            queue_idle,
            messages: 0,
            bytes: 0,
            in_flight: 0,
            delayed: 0,
            totals: Totals::default(),
            log: None,
            bodies: Bodies::default(),
            outside: 0,
            bindings: crate::route::Trie::new(),
            route_scratch: Vec::new(),
            confirms: Vec::new(),
            schedules: crate::schedule::Schedules::default(),
            uniques: Uniques::default(),
            expiries: Expiries::default(),
            default_ttls: HashMap::new(),
        }
    }

    /// Appends `payload` to `queue`, creating the queue on first use, or hands it to
    /// the longest-waiting consumer. `original_len` is the length the client sent;
    /// more than `payload.len()` counts as a truncation.
    ///
    /// # Errors
    /// [`Full`] when storing would pass the memory cap; nothing changes then.
    pub fn put(
        &mut self,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        now: Instant,
    ) -> Result<PutOutcome<W>, Full> {
        self.put_with(queue, payload, original_len, PutOptions::default(), now)
            .map(|(_, outcome)| outcome)
    }

    /// [`Store::put`] with a delay and a priority; also returns the new message's id.
    ///
    /// # Errors
    /// [`Full`] when storing would pass the memory cap; nothing changes then.
    pub fn put_with(
        &mut self,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        now: Instant,
    ) -> Result<(u64, PutOutcome<W>), Full> {
        if let Some(ttl) = self.default_ttl(queue) {
            // A message with a time to live is held (protocol.md 19). BQUEUETTL is at
            // most 30 days, so it fits a PUT's ttl_ms.
            let ttl = crate::protocol::Ttl {
                ttl_ms: u32::try_from(ttl.as_millis()).unwrap_or(crate::protocol::MAX_TTL_MS),
                dead_letter: false,
            };
            return self
                .put_job(queue, payload, original_len, options, None, Some(ttl), now)
                .map(|(id, done)| match done {
                    JobPut::New(outcome) => (id, outcome),
                    JobPut::Duplicate(_) | JobPut::Replaced => (id, PutOutcome::Stored),
                });
        }
        let truncated = u64::from(original_len > payload.len());
        let id = self.next_id + 1;
        let delayed = options.delay_ms > 0;
        let priority = options.priority;
        // One hash lookup on the common path: the queue exists.
        let existing = self.queues.key_of(queue);
        if (self.queue_max_messages | self.queue_max_bytes) != 0
            && let Some(full) = self.queue_cap_refusal(existing, payload.len())
        {
            return Err(full);
        }
        let key = match existing {
            Some(key) => key,
            None => {
                let growth = QUEUE_OVERHEAD
                    + queue.len()
                    + if delayed {
                        HELD_OVERHEAD + payload.len()
                    } else {
                        Levels::default().growth_for(priority, id, 0, payload.len())
                    };
                self.check_room(growth)?;
                self.create_queue(queue, now)
            }
        };
        let Some(q) = self.queues.by_key_mut(key) else {
            return Err(self.refuse());
        };
        if !delayed && let Some(waiter) = q.waiters.pop_front() {
            if let Some(timer) = waiter.timer {
                self.timers.remove(&timer);
            }
            self.next_id = id;
            if let Some(log) = &mut self.log {
                log.reserve_id(id);
            }
            let Some(q) = self.queues.by_key_mut(key) else {
                return Err(self.refuse());
            };
            q.last_used = now;
            q.counters.puts += 1;
            q.counters.gets += 1;
            q.counters.truncations += truncated;
            self.totals.puts += 1;
            self.totals.gets += 1;
            self.totals.truncations += truncated;
            let outcome = match waiter.lease {
                None => {
                    if let Some(log) = &mut self.log {
                        // Recorded, and at once gone: the producer's reply and the
                        // consumer's message then wait for the same records, and the
                        // message is never delivered and lost unrecorded.
                        log.put_new(key, id, 0, priority, payload);
                        log.push(&LogRecord::Del { id });
                    }
                    PutOutcome::Handed(waiter.handle)
                }
                Some(spec) => {
                    let lease =
                        self.hold_leased(key, id, priority, payload, waiter.handle, spec, now);
                    PutOutcome::Leased(waiter.handle, lease)
                }
            };
            self.arm_idle_if_idle(key, now);
            return Ok((id, outcome));
        }
        let growth = if delayed {
            HELD_OVERHEAD + payload.len()
        } else {
            q.ready.growth_for(priority, id, 0, payload.len())
        };
        if self.memory + growth > self.max_memory {
            return Err(self.refuse());
        }
        self.next_id = id;
        q.last_used = now;
        q.counters.puts += 1;
        q.counters.truncations += truncated;
        if let Some(log) = &mut self.log {
            log.reserve_id(id);
            let due_ms = if delayed {
                log.wall_ms(now + Duration::from_millis(u64::from(options.delay_ms)))
            } else {
                0
            };
            log.put_new(key, id, due_ms, priority, payload);
        }
        self.totals.puts += 1;
        self.totals.truncations += truncated;
        self.messages += 1;
        self.bytes += payload.len();
        if delayed {
            let at = now + Duration::from_millis(u64::from(options.delay_ms));
            self.deadlines.insert((at, id));
            self.insert_held(
                key,
                id,
                Held::waiting(
                    Payload::Own(payload.into()),
                    key,
                    priority,
                    (0, 0),
                    HeldState::Delayed,
                    at,
                ),
            );
        } else if let Some(q) = self.queues.by_key_mut(key) {
            self.memory += q.ready.push(priority, id, 0, payload);
        }
        Ok((id, PutOutcome::Stored))
    }

    /// Caps what one queue may hold (protocol.md 7.4): `PUT`s and publishes that would
    /// pass them are refused with [`Full`]; 0 means no cap. What is held already is
    /// never dropped, and messages coming back (returned leases, dead letters, a
    /// journal's replay) are never refused.
    pub fn set_queue_caps(&mut self, max_messages: usize, max_bytes: usize) {
        self.queue_max_messages = max_messages;
        self.queue_max_bytes = max_bytes;
    }

    /// The refusal, if a message of `len` payload bytes would take queue `key` (or a
    /// new queue, for `None`) past one of its caps; counted when it is one.
    fn queue_cap_refusal(&mut self, key: Option<usize>, len: usize) -> Option<Full> {
        let (messages, bytes) = key.and_then(|k| self.queues.by_key(k)).map_or((0, 0), |q| {
            (q.ready.len() + q.held, q.ready.bytes() + q.held_bytes)
        });
        let full = if self.queue_max_messages > 0 && messages >= self.queue_max_messages {
            Full {
                used: messages,
                limit: self.queue_max_messages,
                cap: FullCap::QueueMessages,
            }
        } else if self.queue_max_bytes > 0 && bytes + len > self.queue_max_bytes {
            Full {
                used: bytes,
                limit: self.queue_max_bytes,
                cap: FullCap::QueueBytes,
            }
        } else {
            return None;
        };
        self.totals.rejected_queue_full += 1;
        Some(full)
    }

    /// Messages queue `key` may still take under its message cap.
    fn queue_room(&self, key: usize) -> u64 {
        if self.queue_max_messages == 0 {
            return u64::MAX;
        }
        let held = self
            .queues
            .by_key(key)
            .map_or(0, |q| q.ready.len() + q.held);
        self.queue_max_messages.saturating_sub(held) as u64
    }

    fn check_room(&mut self, growth: usize) -> Result<(), Full> {
        if self.memory + growth > self.max_memory {
            return Err(self.refuse());
        }
        Ok(())
    }

    fn refuse(&mut self) -> Full {
        self.totals.rejected_full += 1;
        Full {
            used: self.memory,
            limit: self.max_memory,
            cap: FullCap::Memory,
        }
    }

    /// Removes up to `max` messages of `queue` in delivery order, handing each payload
    /// to `each`, and stops early once the payloads would pass `max_bytes` (at least
    /// one message is always taken). Returns how many were taken. A queue that does
    /// not exist is not created.
    pub fn get(
        &mut self,
        queue: &str,
        max: usize,
        max_bytes: usize,
        now: Instant,
        mut each: impl FnMut(&[u8]),
    ) -> usize {
        self.get_with(queue, max, max_bytes, now, |_, _, payload, _| each(payload))
    }

    /// [`Store::get`] that also hands each message's id, attempt number and, for a
    /// published copy, its metadata to `each`.
    pub fn get_with(
        &mut self,
        queue: &str,
        max: usize,
        max_bytes: usize,
        now: Instant,
        mut each: impl FnMut(u64, u32, &[u8], Option<Meta<'_>>),
    ) -> usize {
        let Some(key) = self.queues.key_of(queue) else {
            return 0;
        };
        let mut taken = 0;
        let mut bytes = 0;
        while taken < max {
            self.drop_expired_front(key, now);
            let Some((front, len)) = self.next_in_batch(key, taken, bytes, max_bytes) else {
                break;
            };
            let Some(q) = self.queues.by_key_mut(key) else {
                break;
            };
            match front {
                Ok((priority, id)) => {
                    q.unready(priority, id);
                    if let Some(h) = self.remove_held(id, now) {
                        each(
                            id,
                            h.attempt,
                            self.bodies.bytes(&h.payload),
                            self.meta(&h.payload),
                        );
                        self.discard(id, h.payload, true);
                    }
                    if let Some(log) = &mut self.log {
                        log.push(&LogRecord::Del { id });
                    }
                }
                Err(_) => {
                    let log = &mut self.log;
                    let bodies = &self.bodies;
                    let mut shared = None;
                    let Some(freed) = q.ready.pop_with(|_, r| {
                        match r.body {
                            Body::Inline(p) => each(r.id, r.attempt, p, None),
                            Body::Shared { key, .. } => {
                                let b = bodies.get(key);
                                let meta = b.map(|b| Meta {
                                    subject: &b.subject,
                                    reply_to: b.reply_to,
                                });
                                each(r.id, r.attempt, bodies.payload(key), meta);
                                shared = Some((r.id, key));
                            }
                        }
                        if let Some(log) = log {
                            log.push(&LogRecord::Del { id: r.id });
                        }
                    }) else {
                        break;
                    };
                    self.memory -= freed;
                    self.messages -= 1;
                    self.bytes -= len;
                    if let Some((id, key)) = shared {
                        self.discard(id, Payload::Shared(key), true);
                    }
                }
            }
            bytes += len;
            taken += 1;
        }
        if let Some(q) = self.queues.by_key_mut(key) {
            q.last_used = now;
            q.counters.gets += taken as u64;
        }
        self.totals.gets += taken as u64;
        self.arm_idle_if_idle(key, now);
        taken
    }

    /// Whether `queue` has a message ready to deliver.
    pub fn has_ready(&self, queue: &str) -> bool {
        self.queues.get(queue).is_some_and(Queue::has_ready)
    }

    /// Where the next message of queue `key` is (as [`Queue::front`] says) and its
    /// payload length, if it may join a batch that holds `taken` messages of `bytes`
    /// payload bytes so far: a batch stops before passing `max_bytes`, but always
    /// takes one message.
    fn next_in_batch(
        &self,
        key: usize,
        taken: usize,
        bytes: usize,
        max_bytes: usize,
    ) -> Option<(Front, usize)> {
        let q = self.queues.by_key(key)?;
        let front = q.front()?;
        let len = match front {
            Ok((_, id)) => self.bodies.bytes(&self.held.get(&id)?.payload).len(),
            Err(_) => q.ready.front()?.1,
        };
        (taken == 0 || bytes + len <= max_bytes).then_some((front, len))
    }

    /// Leases up to `max` messages of `queue` in delivery order to `owner` under
    /// `spec`, handing each to `each`, with the same byte rule as [`Store::get`].
    /// Returns how many were leased. A queue that does not exist is not created.
    #[allow(clippy::too_many_arguments)]
    pub fn lease(
        &mut self,
        queue: &str,
        max: usize,
        max_bytes: usize,
        spec: LeaseSpec,
        owner: W,
        now: Instant,
        mut each: impl FnMut(LeaseRef, &[u8], Option<Meta<'_>>),
    ) -> usize {
        let Some(key) = self.queues.key_of(queue) else {
            return 0;
        };
        let mut taken = 0;
        let mut bytes = 0;
        while taken < max {
            self.drop_expired_front(key, now);
            let Some((_, len)) = self.next_in_batch(key, taken, bytes, max_bytes) else {
                break;
            };
            // A leased message costs HELD_OVERHEAD more than a ready one, and
            // leasing is never refused by the cap; past twice the cap it stops, so
            // that leasing a mass of tiny messages cannot grow memory without bound
            // (the server answers FULL when nothing could be leased).
            if self.memory + HELD_OVERHEAD + len > self.max_memory.saturating_mul(2) {
                break;
            }
            let Some(lease) = self.lease_front(key, owner, spec, now) else {
                break;
            };
            if let Some(h) = self.held.get(&lease.id) {
                each(lease, self.bodies.bytes(&h.payload), self.meta(&h.payload));
            }
            bytes += len;
            taken += 1;
        }
        if let Some(q) = self.queues.by_key_mut(key) {
            q.last_used = now;
        }
        taken
    }

    /// Leases the next ready message of queue `key` to `owner`.
    fn lease_front(
        &mut self,
        key: usize,
        owner: W,
        spec: LeaseSpec,
        now: Instant,
    ) -> Option<LeaseRef> {
        let q = self.queues.by_key_mut(key)?;
        match q.front()? {
            Ok((priority, id)) => {
                q.unready(priority, id);
                q.in_flight += 1;
                q.counters.gets += 1;
                q.counters.leases += 1;
                self.in_flight += 1;
                self.totals.gets += 1;
                self.totals.leases += 1;
                let owner = self.owner_number(owner, spec);
                let deadline = lease_deadline(now, spec.lease_ms);
                self.deadlines.insert((deadline, id));
                let h = self.held.get_mut(&id)?;
                h.attempt = h.attempt.saturating_add(1);
                h.state = HeldState::InFlight;
                h.deadline = deadline;
                h.owner = owner;
                h.lease_ms = spec.lease_ms;
                h.max_deliveries = spec.max_deliveries;
                let lease = LeaseRef {
                    id,
                    attempt: h.attempt,
                };
                if owner != 0 {
                    self.owned.entry(owner).or_default().push(lease, &self.held);
                }
                if let Some(log) = &mut self.log {
                    log.push(&LogRecord::Leased {
                        id,
                        attempt: lease.attempt,
                        max_deliveries: spec.max_deliveries,
                    });
                }
                Some(lease)
            }
            Err(_) => {
                let mut taken = None;
                let freed = q.ready.pop_with(|priority, r| {
                    taken = Some((priority, r.id, r.attempt, r.body.len(), own_payload(r.body)));
                })?;
                let (priority, id, attempt, len, payload) = taken?;
                self.memory -= freed;
                self.messages -= 1;
                self.bytes -= len;
                // Counted again by hold_leased, with the held overhead.
                let q = self.queues.by_key_mut(key)?;
                q.counters.gets += 1;
                self.totals.gets += 1;
                Some(self.hold(key, id, attempt, priority, payload, owner, spec, now))
            }
        }
    }

    /// Puts a message that just arrived straight in flight, for a parked `LEASE`.
    #[allow(clippy::too_many_arguments)]
    fn hold_leased(
        &mut self,
        key: usize,
        id: u64,
        priority: u8,
        payload: &[u8],
        owner: W,
        spec: LeaseSpec,
        now: Instant,
    ) -> LeaseRef {
        if let Some(log) = &mut self.log {
            log.put_new(key, id, 0, priority, payload);
        }
        self.hold(
            key,
            id,
            0,
            priority,
            Payload::Own(payload.into()),
            owner,
            spec,
            now,
        )
    }

    /// Adds a message to `held` in flight with its attempt raised by one.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        key: usize,
        id: u64,
        attempt: u32,
        priority: u8,
        payload: Payload,
        owner: W,
        spec: LeaseSpec,
        now: Instant,
    ) -> LeaseRef {
        let owner = self.owner_number(owner, spec);
        let deadline = lease_deadline(now, spec.lease_ms);
        self.deadlines.insert((deadline, id));
        let attempt = attempt.saturating_add(1);
        self.messages += 1;
        self.bytes += self.bodies.bytes(&payload).len();
        self.insert_held(
            key,
            id,
            Held {
                payload,
                deadline,
                queue: key as u32,
                attempt,
                owner,
                lease_ms: spec.lease_ms,
                charged: 0,
                max_deliveries: spec.max_deliveries,
                priority,
                state: HeldState::InFlight,
                keyed: false,
                expires: false,
            },
        );
        if let Some(q) = self.queues.by_key_mut(key) {
            q.in_flight += 1;
            q.counters.leases += 1;
        }
        self.in_flight += 1;
        self.totals.leases += 1;
        let lease = LeaseRef { id, attempt };
        if owner != 0 {
            self.owned.entry(owner).or_default().push(lease, &self.held);
        }
        if let Some(log) = &mut self.log {
            log.push(&LogRecord::Leased {
                id,
                attempt,
                max_deliveries: spec.max_deliveries,
            });
        }
        lease
    }

    /// The number `owner` goes by in held messages, given on its first lease; 0 for
    /// a detached lease.
    fn owner_number(&mut self, owner: W, spec: LeaseSpec) -> u32 {
        if spec.detached {
            return 0;
        }
        if let Some((w, n)) = self.last_owner
            && w == owner
        {
            return n;
        }
        if let Some(&n) = self.owners.get(&owner) {
            self.last_owner = Some((owner, n));
            return n;
        }
        // 0 means "none"; a number comes back into use only after 4 billion
        // connections have held leases, long after the first has gone.
        self.next_owner = self.next_owner.wrapping_add(1).max(1);
        self.owners.insert(owner, self.next_owner);
        self.last_owner = Some((owner, self.next_owner));
        self.next_owner
    }

    /// Adds a held message (its state's counters are the caller's job, apart from
    /// `delayed`) and charges its memory.
    fn insert_held(&mut self, key: usize, id: u64, h: Held) {
        let memory = HELD_OVERHEAD + own_len(&h.payload);
        let len = self.bodies.bytes(&h.payload).len();
        let delayed = h.state == HeldState::Delayed;
        if let Some(q) = self.queues.by_key_mut(key) {
            q.held += 1;
            q.held_bytes += len;
            q.held_memory += memory;
            q.delayed += usize::from(delayed);
        }
        self.delayed += usize::from(delayed);
        self.memory += memory;
        self.held.insert(id, h);
    }

    /// Removes a held message, which leaves its queue at `now`, and uncharges it; the
    /// caller has already taken it out of its queue's ready sets or timers. Its unique
    /// key, if it has one, is released.
    fn remove_held(&mut self, id: u64, now: Instant) -> Option<Held> {
        let h = self.held.remove(&id)?;
        if h.keyed {
            self.release_key(id, now);
        }
        if h.expires {
            self.drop_expiry(id);
        }
        let memory = HELD_OVERHEAD + own_len(&h.payload);
        let len = self.bodies.bytes(&h.payload).len();
        let (in_flight, delayed) = match h.state {
            HeldState::InFlight => (1, 0),
            HeldState::Delayed => (0, 1),
            HeldState::Ready => (0, 0),
        };
        if h.state != HeldState::Ready {
            self.deadlines.remove(&(h.deadline, id));
        }
        if let Some(q) = self.queues.by_key_mut(h.queue as usize) {
            q.held -= 1;
            q.held_bytes -= len;
            q.held_memory -= memory;
            q.in_flight -= in_flight;
            q.delayed -= delayed;
        }
        self.in_flight -= in_flight;
        self.delayed -= delayed;
        self.memory -= memory;
        self.messages -= 1;
        self.bytes -= len;
        Some(h)
    }

    /// Parks a plain `GET` on `queue` (creating it, so that a `PUT` finds the waiter)
    /// until a message arrives or `deadline` passes. Call only after a `get` found
    /// the queue empty. Waiters count toward no cap: there is at most one per
    /// connection, and connections are capped.
    pub fn park(&mut self, queue: &str, handle: W, deadline: Option<Instant>, now: Instant) {
        self.park_waiter(queue, handle, deadline, None, now);
    }

    /// Parks a `LEASE` like [`Store::park`]: the message it is woken with is leased
    /// to `handle` under `spec`.
    pub fn park_lease(
        &mut self,
        queue: &str,
        handle: W,
        deadline: Option<Instant>,
        spec: LeaseSpec,
        now: Instant,
    ) {
        self.park_waiter(queue, handle, deadline, Some(spec), now);
    }

    fn park_waiter(
        &mut self,
        queue: &str,
        handle: W,
        deadline: Option<Instant>,
        lease: Option<LeaseSpec>,
        now: Instant,
    ) {
        let timer = deadline.map(|at| {
            self.add_timer(
                at,
                Timer::Waiter {
                    queue: queue.into(),
                    handle,
                },
            )
        });
        let key = self.queue_key_or_create(queue, now);
        let Some(q) = self.queues.by_key_mut(key) else {
            return;
        };
        q.last_used = now;
        q.waiters.push_back(Waiter {
            handle,
            timer,
            lease,
        });
    }

    /// Removes a parked consumer (its client went away). Returns whether it was found.
    ///
    /// Cost: a scan of that queue's waiters, which is short in practice; a map from
    /// handle to position would make it O(1) at the price of upkeep on every park.
    pub fn cancel(&mut self, queue: &str, handle: W, now: Instant) -> bool {
        let Some(key) = self.queues.key_of(queue) else {
            return false;
        };
        let Some(q) = self.queues.by_key_mut(key) else {
            return false;
        };
        let Some(pos) = q.waiters.iter().position(|w| w.handle == handle) else {
            return false;
        };
        if let Some(Waiter {
            timer: Some(timer), ..
        }) = q.waiters.remove(pos)
        {
            self.timers.remove(&timer);
        }
        self.waiter_left(key, now);
        true
    }

    /// A waiter left queue `key` (cancelled or timed out). A queue that is now idle
    /// is normally kept for `queue_idle`; past the memory cap it goes at once, so
    /// that waits on ever new names (each one creates a queue) cannot pile up queues
    /// beyond the cap.
    fn waiter_left(&mut self, key: usize, now: Instant) {
        let over = self.memory > self.max_memory;
        if over && self.queues.by_key(key).is_some_and(Queue::is_idle) {
            let name = self.queues.by_key(key).map(|q| q.name.clone());
            if let Some(name) = name
                && let Some(q) = self.queues.remove(&name)
            {
                self.memory -= q.memory();
                self.totals.expired_queues += 1;
            }
            return;
        }
        self.arm_idle_if_idle(key, now);
    }

    /// Returns every lease `owner` holds (its connection closed): each message is
    /// returned, or dead-lettered if that was its last delivery. Detached leases are
    /// not affected.
    pub fn disconnect(&mut self, owner: W, now: Instant) {
        if self.last_owner.is_some_and(|(w, _)| w == owner) {
            self.last_owner = None;
        }
        let Some(number) = self.owners.remove(&owner) else {
            return;
        };
        let Some(owned) = self.owned.remove(&number) else {
            return;
        };
        for lease in owned.into_leases() {
            if self.held.get(&lease.id).is_some_and(|h| {
                h.attempt == lease.attempt
                        && h.state == HeldState::InFlight
                        && h.owner == number
                        // An expired lease is the timer's to return (and count).
                        && h.deadline > now
            }) {
                self.end_lease(lease.id, true, None, now);
            }
        }
    }

    /// The lease `pair` names, if it is live at `now` (in flight under that attempt,
    /// deadline not reached).
    fn live_lease(&self, pair: LeaseRef, now: Instant) -> Option<&Held> {
        let h = self.held.get(&pair.id)?;
        (h.state == HeldState::InFlight && h.attempt == pair.attempt && h.deadline > now)
            .then_some(h)
    }

    /// How a settle request stands for `pair` on `queue`: `Ok` if its lease is live.
    fn settle_check(&self, queue: &str, pair: LeaseRef, now: Instant) -> SettleResult {
        let Some(key) = self.queues.key_of_shared(queue) else {
            return SettleResult::NotFound;
        };
        match self.held.get(&pair.id) {
            // Never leased (a delayed PUT): no lease could ever name it.
            Some(h) if h.queue as usize == key && h.attempt > 0 => {
                if self.live_lease(pair, now).is_some() {
                    SettleResult::Ok
                } else {
                    SettleResult::Stale
                }
            }
            _ => SettleResult::NotFound,
        }
    }

    /// Deletes the message `pair` holds a lease on.
    pub fn ack(&mut self, queue: &str, pair: LeaseRef, now: Instant) -> SettleResult {
        let result = self.settle_check(queue, pair, now);
        if result != SettleResult::Ok {
            return result;
        }
        if let Some(h) = self.remove_held(pair.id, now) {
            if let Some(log) = &mut self.log {
                log.push(&LogRecord::Del { id: pair.id });
            }
            let key = h.queue as usize;
            self.discard(pair.id, h.payload, true);
            if let Some(q) = self.queues.by_key_mut(key) {
                q.counters.acks += 1;
                q.last_used = now;
            }
            self.totals.acks += 1;
            self.arm_idle_if_idle(key, now);
        }
        result
    }

    /// Ends the lease `pair` holds: the message is returned (now or after a delay) or
    /// dead-lettered, as `how` says.
    pub fn nack(&mut self, queue: &str, pair: LeaseRef, how: Nack, now: Instant) -> SettleResult {
        let result = self.settle_check(queue, pair, now);
        if result != SettleResult::Ok {
            return result;
        }
        if let Some(h) = self.held.get(&pair.id)
            && let Some(q) = self.queues.by_key_mut(h.queue as usize)
        {
            q.counters.nacks += 1;
        }
        self.totals.nacks += 1;
        if how.dead {
            self.stop_lease(pair.id);
            self.dead_letter(pair.id, now);
        } else {
            let delay = (!how.delay.is_zero()).then_some(how.delay);
            self.end_lease(pair.id, !how.no_charge, delay, now);
        }
        result
    }

    /// Extends the lease `pair` holds to `lease_ms` from now (0: the length it was
    /// given with).
    pub fn touch(
        &mut self,
        queue: &str,
        pair: LeaseRef,
        lease_ms: u32,
        now: Instant,
    ) -> SettleResult {
        let result = self.settle_check(queue, pair, now);
        if result != SettleResult::Ok {
            return result;
        }
        let Some(h) = self.held.get_mut(&pair.id) else {
            return SettleResult::Stale;
        };
        let lease_ms = if lease_ms == 0 { h.lease_ms } else { lease_ms };
        let old = h.deadline;
        h.deadline = lease_deadline(now, lease_ms);
        let new = h.deadline;
        self.deadlines.remove(&(old, pair.id));
        self.deadlines.insert((new, pair.id));
        result
    }

    /// Turns an in-flight message into a ready-state held one without placing it
    /// anywhere yet; removes its deadline. Returns the lease's `max_deliveries`.
    fn stop_lease(&mut self, id: u64) -> Option<u16> {
        let h = self.held.get_mut(&id)?;
        if h.state != HeldState::InFlight {
            return None;
        }
        h.state = HeldState::Ready;
        h.owner = 0;
        self.deadlines.remove(&(h.deadline, id));
        let max_deliveries = h.max_deliveries;
        if let Some(q) = self.queues.by_key_mut(h.queue as usize) {
            q.in_flight -= 1;
        }
        self.in_flight -= 1;
        Some(max_deliveries)
    }

    /// Ends a lease that was not acknowledged: charges it if `charged`, then
    /// dead-letters the message if that was its last delivery, else returns it now or
    /// after `delay`.
    fn end_lease(&mut self, id: u64, charged: bool, delay: Option<Duration>, now: Instant) {
        let Some(max_deliveries) = self.stop_lease(id) else {
            return;
        };
        // Its time to live ran out while it was leased: it goes no further
        // (protocol.md 19.3).
        if self.expiries.expired(id, now) {
            self.expire_message(id, now);
            return;
        }
        let Some(h) = self.held.get_mut(&id) else {
            return;
        };
        if charged {
            h.charged = h.charged.saturating_add(1);
        }
        // Only a charged delivery dead-letters (protocol.md 13.2): a NO_CHARGE NACK
        // or a give_back returns the message even if an earlier lease with a larger
        // max_deliveries left it with more charged deliveries than this lease allows.
        if charged && max_deliveries != NEVER_DEAD && h.charged >= max_deliveries {
            self.dead_letter(id, now);
            return;
        }
        let key = h.queue as usize;
        if let Some(log) = &mut self.log {
            log.push(&LogRecord::Requeue {
                id,
                attempt: h.attempt,
                charged: h.charged,
                due_ms: delay.map_or(0, |d| log.wall_ms(now + d)),
            });
        }
        if let Some(q) = self.queues.by_key_mut(key) {
            q.counters.redeliveries += 1;
        }
        self.totals.redeliveries += 1;
        match delay {
            Some(delay) => self.delay_held(id, now + delay),
            None => self.make_ready(id, now),
        }
    }

    /// Puts a ready-state held message on its timer until `at`.
    fn delay_held(&mut self, id: u64, at: Instant) {
        let Some(h) = self.held.get_mut(&id) else {
            return;
        };
        h.state = HeldState::Delayed;
        h.deadline = at;
        self.deadlines.insert((at, id));
        if let Some(q) = self.queues.by_key_mut(h.queue as usize) {
            q.delayed += 1;
        }
        self.delayed += 1;
    }

    /// Makes a ready-state held message deliverable: into its queue's returned set if
    /// it was delivered before, else to the end of its priority FIFO (leaving `held`).
    /// Serves the queue's parked consumers.
    fn make_ready(&mut self, id: u64, now: Instant) {
        let Some(h) = self.held.get(&id) else {
            return;
        };
        let key = h.queue as usize;
        if h.attempt > 0 {
            if let Some(q) = self.queues.by_key_mut(key) {
                q.returned.insert((h.priority, id));
            }
        } else if h.keyed || h.expires {
            if let Some(q) = self.queues.by_key_mut(key) {
                q.fresh.insert((h.priority, id));
            }
        } else if let Some(h) = self.remove_held(id, now)
            && let Some(q) = self.queues.by_key_mut(key)
        {
            let body = record_body(&self.bodies, &h.payload);
            self.memory += q.ready.push_body(h.priority, id, 0, body);
            self.messages += 1;
            self.bytes += body.len();
        }
        self.serve(key, now);
    }

    /// Moves a message (held, in no state that counts) to its queue's dead-letter
    /// queue, keeping id, priority and attempt; or drops it if that queue cannot be
    /// named.
    fn dead_letter(&mut self, id: u64, now: Instant) {
        let Some(source) = self.held.get(&id).map(|h| h.queue as usize) else {
            return;
        };
        let Some(name) = self
            .queues
            .by_key(source)
            .map(|q| format!("{}{DEAD_SUFFIX}", q.name))
        else {
            return;
        };
        if let Some(q) = self.queues.by_key_mut(source) {
            q.counters.dead_lettered += 1;
        }
        self.totals.dead_lettered += 1;
        let Some(h) = self.remove_held(id, now) else {
            return;
        };
        if name.len() > crate::protocol::MAX_QUEUE_NAME {
            if let Some(log) = &mut self.log {
                log.push(&LogRecord::Del { id });
            }
            self.discard(id, h.payload, false);
            self.totals.dead_dropped += 1;
            self.arm_idle_if_idle(source, now);
            return;
        }
        let dead = self.queue_key_or_create(&name, now);
        if let Some(q) = self.queues.by_key_mut(dead) {
            q.keep = true;
            q.last_used = now;
        }
        let mut h = h;
        h.queue = dead as u32;
        h.charged = 0;
        h.owner = 0;
        h.state = HeldState::Ready;
        // Its key stayed with its queue, and a dead letter waits for a person.
        h.keyed = false;
        h.expires = false;
        if let Some(log) = &mut self.log {
            log.push(&LogRecord::Move {
                id,
                queue: h.queue,
                attempt: h.attempt,
                charged: 0,
            });
            // With the returned ones of the dead-letter queue, not at its end (as a
            // MOVE alone would say): a REQUEUE of a message delivered before.
            log.push(&LogRecord::Requeue {
                id,
                attempt: h.attempt,
                charged: 0,
                due_ms: 0,
            });
        }
        if let Payload::Shared(key) = h.payload {
            // Dead-lettered counts as failed for a confirmation, whatever happens to
            // it in the dead-letter queue later.
            self.confirm_copy(id, key, false);
        }
        self.messages += 1;
        self.bytes += self.bodies.bytes(&h.payload).len();
        self.insert_held(dead, id, h);
        self.make_ready(id, now);
        self.arm_idle_if_idle(source, now);
    }

    /// Hands ready messages of queue `key` to its parked consumers, first come first
    /// served, as [`Handoff`]s.
    fn serve(&mut self, key: usize, now: Instant) {
        loop {
            self.drop_expired_front(key, now);
            let Some(q) = self.queues.by_key_mut(key) else {
                return;
            };
            if q.waiters.is_empty() || !q.has_ready() {
                break;
            }
            let Some(waiter) = q.waiters.pop_front() else {
                break;
            };
            q.last_used = now;
            let name = q.name.clone();
            if let Some(timer) = waiter.timer {
                self.timers.remove(&timer);
            }
            let deadline = waiter.timer.map(|t| t.0);
            let handoff = match waiter.lease {
                Some(spec) => {
                    let Some(lease) = self.lease_front(key, waiter.handle, spec, now) else {
                        break;
                    };
                    let Some(h) = self.held.get(&lease.id) else {
                        break;
                    };
                    Handoff {
                        waiter: waiter.handle,
                        lease: Some(lease),
                        payload: None,
                        meta: None,
                        queue: name,
                        spec: Some(spec),
                        deadline,
                        id: lease.id,
                        attempt: lease.attempt,
                        priority: h.priority,
                        // A lease given back stays held, with its key and expiry.
                        job: None,
                    }
                }
                None => {
                    let Some((id, attempt, priority, (payload, meta), job)) =
                        self.take_front(key, now)
                    else {
                        break;
                    };
                    Handoff {
                        waiter: waiter.handle,
                        lease: None,
                        payload: Some(payload),
                        meta,
                        queue: name,
                        spec: None,
                        deadline,
                        id,
                        attempt,
                        priority,
                        job,
                    }
                }
            };
            self.handoffs.push_back(handoff);
        }
        self.arm_idle_if_idle(key, now);
    }

    /// Removes the next ready message of queue `key` for a plain consumer.
    /// Its key and expiry come along, for a [`Store::give_back`].
    fn take_front(&mut self, key: usize, now: Instant) -> Option<(u64, u32, u8, Taken, Job)> {
        let q = self.queues.by_key_mut(key)?;
        q.counters.gets += 1;
        self.totals.gets += 1;
        match q.front()? {
            Ok((priority, id)) => {
                q.unready(priority, id);
                let job = self.handed_job(id);
                let h = self.remove_held(id, now)?;
                if let Some(log) = &mut self.log {
                    log.push(&LogRecord::Del { id });
                }
                let payload = self.take_payload(h.payload);
                Some((id, h.attempt, priority, payload, job))
            }
            Err(_) => {
                let mut taken = None;
                let freed = q.ready.pop_with(|priority, r| {
                    taken = Some((r.id, r.attempt, priority, r.body.len(), own_payload(r.body)));
                })?;
                let (id, attempt, priority, len, payload) = taken?;
                self.memory -= freed;
                self.messages -= 1;
                self.bytes -= len;
                if let Some(log) = &mut self.log {
                    log.push(&LogRecord::Del { id });
                }
                let payload = self.take_payload(payload);
                Some((id, attempt, priority, payload, None))
            }
        }
    }

    /// What a published copy carries besides its payload.
    fn meta(&self, payload: &Payload) -> Option<Meta<'_>> {
        match payload {
            Payload::Shared(key) => self.bodies.get(*key).map(|b| Meta {
                subject: &b.subject,
                reply_to: b.reply_to,
            }),
            Payload::Own(_) => None,
        }
    }

    /// A copy leaves the server (acknowledged or taken if `ok`, purged or dropped if
    /// not): a shared body is released with its last copy, and a confirmed publish
    /// hears of it.
    fn discard(&mut self, id: u64, payload: Payload, ok: bool) {
        if let Payload::Shared(key) = payload {
            self.confirm_copy(id, key, ok);
            let freed = self.bodies.release(key);
            self.memory -= freed;
            self.outside -= freed;
        }
    }

    /// Notes that copy `id` of body `key` was settled, if its publish asked for a
    /// confirmation.
    fn confirm_copy(&mut self, id: u64, key: u32, ok: bool) {
        if let Some(body) = self.bodies.get(key)
            && body.confirm != 0
        {
            self.confirms.push((body.confirm, id, ok));
        }
    }

    /// A payload leaving for a plain consumer, as bytes of its own, with what a
    /// published copy carried. Its confirmation is left to the caller, who knows
    /// when the copy is written ([`Store::confirm_taken`]).
    fn take_payload(&mut self, payload: Payload) -> Taken {
        match payload {
            Payload::Own(p) => (p, None),
            Payload::Shared(key) => {
                let taken = match self.bodies.get(key) {
                    Some(b) => (
                        b.payload.clone(),
                        Some(CopyMeta {
                            subject: b.subject.clone(),
                            reply_to: b.reply_to,
                            confirm: b.confirm,
                        }),
                    ),
                    None => (Box::default(), None),
                };
                let freed = self.bodies.release(key);
                self.memory -= freed;
                self.outside -= freed;
                taken
            }
        }
    }

    /// Whether [`Store::take_handoff`] has anything.
    pub fn has_handoffs(&self) -> bool {
        !self.handoffs.is_empty()
    }

    /// The next message given to a parked consumer outside of its own request.
    pub fn take_handoff(&mut self) -> Option<Handoff<W>> {
        self.handoffs.pop_front()
    }

    /// The payload of a held message (in flight, delayed or returned).
    pub fn payload(&self, id: u64) -> Option<&[u8]> {
        self.held.get(&id).map(|h| self.bodies.bytes(&h.payload))
    }

    /// Takes back a handoff or a `PutOutcome::Leased` the caller could not deliver
    /// (the consumer's socket failed): the message is ready again, in its place, and
    /// the delivery is not charged.
    pub fn give_back(&mut self, handoff: Handoff<W>, now: Instant) {
        match handoff.lease {
            Some(lease) => self.give_back_lease(lease, now),
            None => {
                let Some(payload) = handoff.payload else {
                    return;
                };
                let key = self.queue_key_or_create(&handoff.queue, now);
                if let Some(log) = &mut self.log {
                    log.push(&LogRecord::Put {
                        queue: key as u32,
                        id: handoff.id,
                        due_ms: 0,
                        priority: handoff.priority,
                        attempt: handoff.attempt,
                        charged: 0,
                        payload: &payload,
                    });
                    if let Some(meta) = &handoff.meta {
                        log.push(&LogRecord::Subject {
                            id: handoff.id,
                            subject: &meta.subject,
                        });
                    }
                }
                self.messages += 1;
                self.bytes += payload.len();
                // A published copy goes back with its metadata, in a body of its own.
                let payload = match &handoff.meta {
                    Some(m) if self.bodies.has_room() => {
                        let (body, cost) = self
                            .bodies
                            .insert(&payload, &m.subject, m.reply_to, m.confirm, 1);
                        self.memory += cost;
                        self.outside += cost;
                        Payload::Shared(body)
                    }
                    _ => Payload::Own(payload),
                };
                self.insert_held(
                    key,
                    handoff.id,
                    Held::waiting(
                        payload,
                        key,
                        handoff.priority,
                        (handoff.attempt, 0),
                        HeldState::Ready,
                        now,
                    ),
                );
                if let Some(q) = self.queues.by_key_mut(key) {
                    q.counters.gets = q.counters.gets.saturating_sub(1);
                    // Back in its place ahead of newer messages, whatever its attempt.
                    q.returned.insert((handoff.priority, handoff.id));
                }
                if let Some(job) = handoff.job {
                    self.restore_job(key, handoff.id, *job, now);
                }
                self.totals.gets = self.totals.gets.saturating_sub(1);
                self.serve(key, now);
            }
        }
    }

    /// Whether a handoff can still be delivered: a lease handoff can stop being live
    /// before it is written, when a later settle in the same request ends that lease.
    pub fn handoff_is_live(&self, handoff: &Handoff<W>, now: Instant) -> bool {
        handoff
            .lease
            .is_none_or(|lease| self.live_lease(lease, now).is_some())
    }

    /// Parks a handoff's consumer again, first in line, with its lease spec and
    /// deadline, because the handoff is no longer live; it is served at once if its
    /// queue has a message ready.
    pub fn repark(&mut self, handoff: Handoff<W>, now: Instant) {
        let key = self.queue_key_or_create(&handoff.queue, now);
        let timer = handoff.deadline.map(|at| {
            self.add_timer(
                at,
                Timer::Waiter {
                    queue: handoff.queue.clone(),
                    handle: handoff.waiter,
                },
            )
        });
        if let Some(q) = self.queues.by_key_mut(key) {
            q.waiters.push_front(Waiter {
                handle: handoff.waiter,
                timer,
                lease: handoff.spec,
            });
        }
        self.serve(key, now);
    }

    /// The slab key of queue `name`, creating it (uncapped, like a parked `GET`'s).
    fn queue_key_or_create(&mut self, name: &str, now: Instant) -> usize {
        match self.queues.key_of(name) {
            Some(key) => key,
            None => self.create_queue(name, now),
        }
    }

    /// Adds an empty queue (the caller checked it does not exist) and charges its
    /// bookkeeping; returns its slab key, which is also its number in the journal.
    fn create_queue(&mut self, name: &str, now: Instant) -> usize {
        self.memory += QUEUE_OVERHEAD + name.len();
        self.queues.insert(name, Queue::new(name, now));
        let key = self.queues.key_of(name).unwrap_or_default();
        if let Some(log) = &mut self.log {
            log.push(&LogRecord::Queue {
                queue: key as u32,
                name,
            });
        }
        key
    }

    /// Takes back a lease that could not be delivered (see [`Store::give_back`]).
    pub fn give_back_lease(&mut self, lease: LeaseRef, now: Instant) {
        if self.live_lease(lease, now).is_some() {
            self.end_lease(lease.id, false, None, now);
        }
    }

    /// Copies of up to `max` ready messages of `queue` in delivery order, with the
    /// byte rule of [`Store::get`]; changes nothing. Returns how many.
    pub fn peek(
        &self,
        queue: &str,
        max: usize,
        max_bytes: usize,
        mut each: impl FnMut(LeaseRef, &[u8], Option<Meta<'_>>),
    ) -> usize {
        let Some(q) = self.queues.get(queue) else {
            return 0;
        };
        let mut priorities: Vec<u8> = q
            .ready
            .priorities()
            .chain(q.returned.iter().map(|(p, _)| *p))
            .chain(q.fresh.iter().map(|(p, _)| *p))
            .collect();
        priorities.sort_unstable();
        priorities.dedup();
        let mut taken = 0;
        let mut bytes = 0;
        let mut emit = |lease: LeaseRef, payload: &[u8], meta: Option<Meta<'_>>| {
            if taken >= max || (taken > 0 && bytes + payload.len() > max_bytes) {
                return false;
            }
            each(lease, payload, meta);
            taken += 1;
            bytes += payload.len();
            true
        };
        'outer: for p in priorities {
            for &(_, id) in q.returned.range((p, 0)..=(p, u64::MAX)) {
                let Some(h) = self.held.get(&id) else {
                    continue;
                };
                if !emit(
                    LeaseRef {
                        id,
                        attempt: h.attempt,
                    },
                    self.bodies.bytes(&h.payload),
                    self.meta(&h.payload),
                ) {
                    break 'outer;
                }
            }
            // The FIFO and the keyed ones, merged by id as `Queue::front` takes them.
            let mut fresh = q.fresh.range((p, 0)..=(p, u64::MAX)).peekable();
            let mut fifo = q.ready.iter_level(p).peekable();
            loop {
                let keyed_first = match (fresh.peek(), fifo.peek()) {
                    (Some(&&(_, k)), Some(r)) => k < r.id,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                let more = if keyed_first {
                    let Some(&(_, id)) = fresh.next() else {
                        break;
                    };
                    let Some(h) = self.held.get(&id) else {
                        continue;
                    };
                    emit(
                        LeaseRef {
                            id,
                            attempt: h.attempt,
                        },
                        self.bodies.bytes(&h.payload),
                        self.meta(&h.payload),
                    )
                } else {
                    let Some(r) = fifo.next() else {
                        break;
                    };
                    emit(
                        LeaseRef {
                            id: r.id,
                            attempt: r.attempt,
                        },
                        body_bytes(&self.bodies, r.body),
                        match r.body {
                            Body::Shared { key, .. } => self.meta(&Payload::Shared(key)),
                            Body::Inline(_) => None,
                        },
                    )
                };
                if !more {
                    break 'outer;
                }
            }
        }
        taken
    }

    /// Moves up to `max` ready messages from the front of `from` to the end of `to`
    /// (created if needed), keeping ids, priorities and attempt numbers and clearing
    /// charged deliveries; serves `to`'s parked consumers. Never refused by the cap.
    pub fn move_ready(&mut self, from: &str, to: &str, max: u64, now: Instant) -> u64 {
        let Some(src) = self.queues.key_of(from) else {
            return 0;
        };
        if self.queues.by_key(src).is_none_or(|q| !q.has_ready()) {
            return 0;
        }
        let dst = self.queue_key_or_create(to, now);
        // The destination's message cap bounds a move (protocol.md 7.4).
        let max = if src == dst {
            max
        } else {
            max.min(self.queue_room(dst))
        };
        let mut moved = 0;
        while moved < max {
            self.drop_expired_front(src, now);
            let Some(q) = self.queues.by_key_mut(src) else {
                break;
            };
            let taken = match q.front() {
                Some(Ok((priority, id))) => {
                    q.unready(priority, id);
                    self.remove_held(id, now)
                        .map(|h| (id, h.attempt, priority, h.payload))
                }
                Some(Err(_)) => {
                    let mut taken = None;
                    let freed = q.ready.pop_with(|priority, r| {
                        taken =
                            Some((r.id, r.attempt, priority, r.body.len(), own_payload(r.body)));
                    });
                    if let Some(freed) = freed {
                        self.memory -= freed;
                    }
                    taken.map(|(id, attempt, priority, len, payload)| {
                        self.messages -= 1;
                        self.bytes -= len;
                        (id, attempt, priority, payload)
                    })
                }
                None => None,
            };
            let Some((id, attempt, priority, payload)) = taken else {
                break;
            };
            if let Some(log) = &mut self.log {
                log.push(&LogRecord::Move {
                    id,
                    queue: dst as u32,
                    attempt,
                    charged: 0,
                });
            }
            if let Some(q) = self.queues.by_key_mut(dst) {
                let body = record_body(&self.bodies, &payload);
                self.memory += q.ready.push_body(priority, id, attempt, body);
                q.counters.puts += 1;
                self.messages += 1;
                self.bytes += body.len();
            }
            moved += 1;
        }
        if let Some(q) = self.queues.by_key_mut(src) {
            q.last_used = now;
        }
        if let Some(q) = self.queues.by_key_mut(dst) {
            q.last_used = now;
        }
        self.serve(dst, now);
        self.arm_idle_if_idle(src, now);
        self.arm_idle_if_idle(dst, now);
        moved
    }

    /// Drops every message in `queue`: ready, delayed and in flight; returns how many.
    ///
    /// Cost: held messages are found by a scan of all held messages, which is fine for
    /// an operator's command.
    pub fn purge(&mut self, queue: &str, now: Instant) -> u64 {
        let Some(key) = self.queues.key_of(queue) else {
            return 0;
        };
        let Some(q) = self.queues.by_key_mut(key) else {
            return 0;
        };
        q.last_used = now;
        if let Some(log) = &mut self.log {
            log.push(&LogRecord::Purge { queue: key as u32 });
        }
        let bytes = q.ready.bytes();
        let shared = q.ready.shared_keys();
        let (mut count, freed) = q.ready.clear();
        q.returned.clear();
        q.fresh.clear();
        let has_held = q.held > 0;
        self.memory -= freed;
        self.messages -= count;
        self.bytes -= bytes;
        if has_held {
            let ids: Vec<u64> = self
                .held
                .iter()
                .filter(|(_, h)| h.queue as usize == key)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(h) = self.remove_held(id, now) {
                    self.discard(id, h.payload, false);
                    count += 1;
                }
            }
        }
        for (id, key) in shared {
            self.discard(id, Payload::Shared(key), false);
        }
        self.totals.purged += count as u64;
        self.arm_idle_if_idle(key, now);
        count as u64
    }

    /// Runs the timers due at `now`, at most [`EXPIRE_BUDGET`] of them (the rest stay
    /// due, so [`Store::next_deadline`] says to come back at once): waiters whose
    /// wait ran out are removed and passed to `timed_out` (the caller answers them
    /// `EMPTY`), expired leases are returned or dead-lettered, delayed messages
    /// become ready, and queues idle for the configured time are dropped. Messages
    /// this hands to parked consumers wait in [`Store::take_handoff`].
    pub fn expire(&mut self, now: Instant, mut timed_out: impl FnMut(W)) {
        self.expire_keys(now);
        self.run_expiries(now, EXPIRE_BUDGET);
        for _ in 0..EXPIRE_BUDGET {
            let timer = self
                .timers
                .keys()
                .next()
                .map(|k| k.0)
                .filter(|&at| at <= now);
            let deadline = self.deadlines.first().copied().filter(|&(at, _)| at <= now);
            match (timer, deadline) {
                (Some(t), Some((d, _))) if t <= d => self.run_timer(now, &mut timed_out),
                (Some(_), None) => self.run_timer(now, &mut timed_out),
                (_, Some((at, id))) => {
                    self.deadlines.remove(&(at, id));
                    self.run_deadline(id, at, now);
                }
                (None, None) => break,
            }
        }
    }

    /// Runs the first waiter or idle timer (the caller checked it is due).
    fn run_timer(&mut self, now: Instant, timed_out: &mut impl FnMut(W)) {
        let Some(entry) = self.timers.first_entry() else {
            return;
        };
        let key = *entry.key();
        match entry.remove() {
            Timer::Waiter { queue, handle } => {
                if let Some(qkey) = self.queues.key_of(&queue) {
                    if let Some(q) = self.queues.by_key_mut(qkey) {
                        q.waiters.retain(|w| w.timer != Some(key));
                    }
                    self.waiter_left(qkey, now);
                }
                timed_out(handle);
            }
            Timer::Idle { queue } => self.check_idle(queue, now),
        }
    }

    /// A lease ran out or a delay is over for message `id` (its deadline `at` was
    /// just taken out of `deadlines`).
    fn run_deadline(&mut self, id: u64, at: Instant, now: Instant) {
        let Some(h) = self.held.get_mut(&id) else {
            return;
        };
        if h.deadline != at {
            return;
        }
        match h.state {
            HeldState::InFlight => {
                if let Some(q) = self.queues.by_key_mut(h.queue as usize) {
                    q.counters.expired_leases += 1;
                }
                self.totals.expired_leases += 1;
                self.end_lease(id, true, None, now);
            }
            HeldState::Delayed => {
                h.state = HeldState::Ready;
                if let Some(log) = &mut self.log {
                    // Where it now waits (the end of its queue, or with the returned
                    // ones) follows from the order of this record (STORAGE.md 7).
                    log.push(&LogRecord::Requeue {
                        id,
                        attempt: h.attempt,
                        charged: h.charged,
                        due_ms: 0,
                    });
                }
                if let Some(q) = self.queues.by_key_mut(h.queue as usize) {
                    q.delayed -= 1;
                }
                self.delayed -= 1;
                self.make_ready(id, now);
            }
            HeldState::Ready => {}
        }
    }

    /// When the next timer is due, for the poll timeout; `None` if there is none.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.keys().next().map(|(at, _)| *at);
        let deadline = self.deadlines.first().map(|(at, _)| *at);
        let expiry = self.expiries.next_deadline();
        [timer, deadline, self.uniques.next_deadline(), expiry]
            .into_iter()
            .flatten()
            .min()
    }

    fn add_timer(&mut self, at: Instant, timer: Timer<W>) -> TimerKey {
        let key = (at, self.next_timer);
        self.next_timer += 1;
        self.timers.insert(key, timer);
        key
    }

    fn arm_idle_if_idle(&mut self, key: usize, now: Instant) {
        let Some(idle) = self.queue_idle else {
            return;
        };
        let Some(q) = self.queues.by_key_mut(key) else {
            return;
        };
        if q.idle_timer || !q.is_idle() {
            return;
        }
        q.idle_timer = true;
        let name = q.name.clone();
        self.add_timer(now + idle, Timer::Idle { queue: name });
    }

    fn check_idle(&mut self, queue: Box<str>, now: Instant) {
        let Some(idle) = self.queue_idle else {
            return;
        };
        let Some(q) = self.queues.get_mut(&queue) else {
            return;
        };
        q.idle_timer = false;
        if !q.is_idle() {
            // Busy again; the timer is re-armed when it next goes idle.
            return;
        }
        let due = q.last_used + idle;
        if due > now {
            // Used since the timer was set: check again when the idle time has run
            // from that last use.
            q.idle_timer = true;
            self.add_timer(due, Timer::Idle { queue });
            return;
        }
        if let Some(q) = self.queues.remove(&queue) {
            self.memory -= q.memory();
            self.totals.expired_queues += 1;
        }
    }

    /// Number of queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Messages held in all queues: ready, in flight and delayed.
    pub fn message_count(&self) -> usize {
        self.messages
    }

    /// Messages leased now.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight
    }

    /// Messages delayed now.
    pub fn delayed_count(&self) -> usize {
        self.delayed
    }

    /// Payload bytes held in all queues.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Memory held, as counted against the cap.
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// The part of [`Store::memory`] outside every queue's own figure: shared
    /// payloads, bindings, and what [`Store::charge`] took.
    pub fn memory_outside_queues(&self) -> usize {
        self.outside
    }

    /// The memory cap.
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// Consumers parked on all queues.
    pub fn waiter_count(&self) -> usize {
        self.queues.values().map(|q| q.waiters.len()).sum()
    }

    /// Server-wide counters.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// One queue's figures, if it exists.
    pub fn queue_info(&self, queue: &str, now: Instant) -> Option<QueueInfo> {
        self.queues.get(queue).map(|q| self.info(q, now))
    }

    /// Every queue's figures, in no particular order.
    pub fn queue_infos(&self, now: Instant) -> impl Iterator<Item = (&str, QueueInfo)> + '_ {
        self.queues
            .iter()
            .map(move |(name, q)| (name, self.info(q, now)))
    }

    fn info(&self, q: &Queue<W>, now: Instant) -> QueueInfo {
        let ready = q.ready.len() + q.returned.len() + q.fresh.len();
        let dead = self
            .queues
            .get(&format!("{}{DEAD_SUFFIX}", q.name))
            .map_or(0, |d| d.ready.len() + d.held);
        QueueInfo {
            messages: (q.ready.len() + q.held) as u64,
            bytes: (q.ready.bytes() + q.held_bytes) as u64,
            memory: q.memory() as u64,
            ready: ready as u64,
            in_flight: q.in_flight as u64,
            delayed: q.delayed as u64,
            dead: dead as u64,
            waiters: q.waiters.len() as u64,
            bindings: u64::from(q.bindings),
            idle: now.saturating_duration_since(q.last_used),
            counters: q.counters,
        }
    }
}

/// A record's payload as a held message keeps it: a copy of inline bytes, or the
/// shared body's key.
fn own_payload(body: Body<'_>) -> Payload {
    match body {
        Body::Inline(p) => Payload::Own(p.into()),
        Body::Shared { key, .. } => Payload::Shared(key),
    }
}

/// Bytes a held payload keeps of its own (a shared body is charged once, apart).
fn own_len(payload: &Payload) -> usize {
    match payload {
        Payload::Own(p) => p.len(),
        Payload::Shared(_) => 0,
    }
}

/// A held payload as a FIFO record holds it.
fn record_body<'a>(bodies: &Bodies, payload: &'a Payload) -> Body<'a> {
    match payload {
        Payload::Own(p) => Body::Inline(p),
        Payload::Shared(key) => Body::Shared {
            key: *key,
            len: bodies.payload(*key).len() as u32,
        },
    }
}

/// The bytes of a record.
fn body_bytes<'a>(bodies: &'a Bodies, body: Body<'a>) -> &'a [u8] {
    match body {
        Body::Inline(p) => p,
        Body::Shared { key, .. } => bodies.payload(key),
    }
}

/// When a lease of `lease_ms` given at `now` runs out.
fn lease_deadline(now: Instant, lease_ms: u32) -> Instant {
    now + Duration::from_millis(u64::from(lease_ms))
}

#[cfg(test)]
mod jobs_tests;
#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
