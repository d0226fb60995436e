//! A model test of the store (issue 11): seeded random sequences of requests run
//! against the store and against [`Model`], a plain reference written from
//! protocol.md (sections 3.4-3.6, 7 and 13) out of maps, `VecDeque`s and sets,
//! with time advanced by the test. After every operation every observable answer
//! must be identical: ids, payloads, attempts, settle results, handoffs and the
//! waiter each goes to, timed-out waiters, peeks of every queue, queue figures and
//! the server totals.
//!
//! Where protocol.md leaves a choice, the model makes the store's, and says so:
//! timers run only when the test calls `expire` (the protocol allows "within a few
//! milliseconds"; settles are `STALE` from the deadline on either way); a waiter's
//! timeout due at the same instant as a lease or delay runs first; a disconnect
//! returns leases in the order they were given; a `MOVE` that finds nothing ready
//! does not create `to`, and counts each moved message in `to`'s `puts`; a dead
//! letter waits with the returned ones of `q.dead`; a dead letter dropped for its
//! name counts in `dead_lettered` as well as `dead_dropped`.
//!
//! Not modelled: the memory cap (the cap is out of reach, so `FULL` never
//! happens), idle-queue expiry (off), memory and idle figures, fan-out (15), the
//! journal.
//!
//! `BEUSS_MODEL_SEED=N` changes the first seed, `BEUSS_MODEL_RUNS=K` the number of
//! sequences and `BEUSS_MODEL_OPS=L` their length, to search harder locally; a
//! failure prints the seed to replay with `BEUSS_MODEL_RUNS=1`, the failing
//! operation and a shrunk sequence.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::*;
use crate::protocol::MAX_QUEUE_NAME;
use crate::test_rng::Rng;

/// Consumers (connections) are numbered.
type W = u32;

/// Priorities 0..=9 (13.3).
const PRIORITIES: usize = 10;

/// Sequences run by default, and operations in each.
const RUNS: u64 = 300;
const OPS: usize = 300;

/// Consumers 0..CONSUMERS.
const CONSUMERS: u32 = 5;

/// Handoffs kept unwritten for a later [`Op::GiveBack`] or [`Op::Write`].
const PENDING: usize = 4;

/// The queues operations pick from: two plain ones, dead-letter queues, a queue
/// no dead letter can follow (its `.dead` name would be too long, 13.10).
fn names() -> Vec<String> {
    let mut names: Vec<String> = ["a", "b", "a.dead", "b.dead", "c", "a.dead.dead"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.push("l".repeat(MAX_QUEUE_NAME - DEAD_SUFFIX.len() + 1));
    names
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// A message held by the model.
#[derive(Debug, Clone)]
struct Msg {
    queue: String,
    priority: u8,
    payload: Vec<u8>,
    /// Leases given so far (13.2).
    attempt: u32,
    /// Charged deliveries (13.2).
    charged: u16,
    state: State,
}

/// The states of 13.3, with ready split by where the message waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Ready at the end of its priority's FIFO: never delivered, or moved (13.3 rule 3).
    Fifo,
    /// Ready among the returned ones, by (priority, id) (13.3 rule 2).
    Returned,
    /// Leased.
    InFlight(Lease),
    /// Waiting for its time.
    Delayed { due: Instant },
}

/// A live or expired-but-not-yet-returned lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    deadline: Instant,
    /// The connection it ends with; `None` for a detached lease (13.5).
    owner: Option<W>,
    lease_ms: u32,
    max_deliveries: u16,
    /// Order of leasing, which is the order a disconnect returns leases in.
    seq: u64,
}

/// A parked `GET` or `LEASE`.
#[derive(Debug, Clone, Copy)]
struct Waiter {
    consumer: W,
    deadline: Option<Instant>,
    lease: Option<LeaseSpec>,
    /// Order of parking: waiter timeouts due at the same instant run in it.
    seq: u64,
}

/// One queue of the model.
#[derive(Debug, Default)]
struct MQueue {
    fifo: [VecDeque<u64>; PRIORITIES],
    returned: BTreeSet<(u8, u64)>,
    waiters: VecDeque<Waiter>,
    counters: QueueCounters,
}

/// A message handed to a parked consumer outside its own request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MHandoff {
    waiter: W,
    lease: Option<LeaseRef>,
    id: u64,
    attempt: u32,
    payload: Vec<u8>,
    queue: String,
    priority: u8,
    /// What the waiter was parked with, to park it again (13.7).
    spec: Option<LeaseSpec>,
    deadline: Option<Instant>,
}

/// What a timer run by `expire` is, in the order the runs happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// A parked consumer's wait ran out: the waiter's seq.
    Waiter(u64),
    /// A lease deadline or a delay of message `id`.
    Message(u64),
}

/// The reference: every message by id, every queue by name, in the plainest
/// structures that say what protocol.md says.
#[derive(Debug, Default)]
struct Model {
    queues: BTreeMap<String, MQueue>,
    msgs: BTreeMap<u64, Msg>,
    next_id: u64,
    seq: u64,
    totals: Totals,
    handoffs: VecDeque<MHandoff>,
}

impl Model {
    fn queue(&mut self, name: &str) -> &mut MQueue {
        self.queues.entry(name.to_string()).or_default()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The next message to deliver from `name` (13.3): lowest priority number;
    /// within it returned messages in id order, then the FIFO.
    fn front(&self, name: &str) -> Option<u64> {
        let q = self.queues.get(name)?;
        (0..PRIORITIES as u8).find_map(|p| {
            q.returned
                .range((p, 0)..=(p, u64::MAX))
                .next()
                .map(|&(_, id)| id)
                .or_else(|| q.fifo[p as usize].front().copied())
        })
    }

    /// Every ready message of `name` in delivery order (13.3, 13.8).
    fn order(&self, name: &str) -> Vec<u64> {
        let Some(q) = self.queues.get(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in 0..PRIORITIES as u8 {
            out.extend(q.returned.range((p, 0)..=(p, u64::MAX)).map(|&(_, id)| id));
            out.extend(q.fifo[p as usize].iter().copied());
        }
        out
    }

    /// Takes message `id` out of the ready structures of its queue.
    fn unlink(&mut self, id: u64) {
        let Some(m) = self.msgs.get(&id) else {
            return;
        };
        let (state, priority) = (m.state, m.priority);
        let Some(q) = self.queues.get_mut(&m.queue) else {
            return;
        };
        match state {
            State::Fifo => {
                let fifo = &mut q.fifo[priority as usize];
                if let Some(pos) = fifo.iter().position(|&x| x == id) {
                    fifo.remove(pos);
                }
            }
            State::Returned => {
                q.returned.remove(&(priority, id));
            }
            _ => {}
        }
    }

    /// The ids a batch from `name` takes: at most `max`, in delivery order, stopping
    /// before a payload that would pass `max_bytes`, but never empty (3.5, 13.5).
    fn batch(&self, name: &str, max: usize, max_bytes: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for id in self.order(name).into_iter().take(max) {
            let len = self.msgs[&id].payload.len();
            if !out.is_empty() && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            out.push(id);
        }
        out
    }

    /// `PUT` (3.4, 13.4): a new id (growing); a message that is ready now goes to
    /// the longest-waiting parked consumer if there is one, else to the end of its
    /// priority's FIFO; a delayed one waits, whoever is parked. The queue is created.
    fn put(
        &mut self,
        name: &str,
        payload: &[u8],
        truncated: bool,
        opts: PutOptions,
        now: Instant,
    ) -> (u64, PutOutcome<W>) {
        self.next_id += 1;
        let id = self.next_id;
        let t = u64::from(truncated);
        self.totals.puts += 1;
        self.totals.truncations += t;
        let q = self.queue(name);
        q.counters.puts += 1;
        q.counters.truncations += t;
        let mut msg = Msg {
            queue: name.to_string(),
            priority: opts.priority,
            payload: payload.to_vec(),
            attempt: 0,
            charged: 0,
            state: State::Fifo,
        };
        if opts.delay_ms > 0 {
            msg.state = State::Delayed {
                due: now + ms(opts.delay_ms),
            };
            self.msgs.insert(id, msg);
            return (id, PutOutcome::Stored);
        }
        if let Some(w) = q.waiters.pop_front() {
            q.counters.gets += 1;
            self.totals.gets += 1;
            return match w.lease {
                None => (id, PutOutcome::Handed(w.consumer)),
                Some(spec) => {
                    self.msgs.insert(id, msg);
                    let lease = self.lease_msg(id, w.consumer, spec, now);
                    (id, PutOutcome::Leased(w.consumer, lease))
                }
            };
        }
        q.fifo[opts.priority as usize].push_back(id);
        self.msgs.insert(id, msg);
        (id, PutOutcome::Stored)
    }

    /// Puts message `id` (taken out of its ready place) in flight for `consumer`:
    /// its attempt goes up by one (13.2); counted as a get and a lease (13.11).
    fn lease_msg(&mut self, id: u64, consumer: W, spec: LeaseSpec, now: Instant) -> LeaseRef {
        let seq = self.next_seq();
        let m = self.msgs.get_mut(&id).expect("model message");
        m.attempt = m.attempt.saturating_add(1);
        m.state = State::InFlight(Lease {
            deadline: now + ms(spec.lease_ms),
            owner: (!spec.detached).then_some(consumer),
            lease_ms: spec.lease_ms,
            max_deliveries: spec.max_deliveries,
            seq,
        });
        let attempt = m.attempt;
        let q = self.queues.get_mut(&m.queue).expect("model queue");
        q.counters.leases += 1;
        self.totals.leases += 1;
        LeaseRef { id, attempt }
    }

    /// Plain `GET` (3.5): removes the batch; a missing queue is not created.
    fn get(&mut self, name: &str, max: usize, max_bytes: usize) -> Vec<(u64, u32, Vec<u8>)> {
        let ids = self.batch(name, max, max_bytes);
        let mut out = Vec::new();
        for &id in &ids {
            self.unlink(id);
            let m = self.msgs.remove(&id).expect("model message");
            out.push((id, m.attempt, m.payload));
        }
        if let Some(q) = self.queues.get_mut(name) {
            q.counters.gets += ids.len() as u64;
        }
        self.totals.gets += ids.len() as u64;
        out
    }

    /// `LEASE` (13.5): takes the batch like `GET` but leaves it in flight.
    fn lease(
        &mut self,
        name: &str,
        max: usize,
        max_bytes: usize,
        spec: LeaseSpec,
        consumer: W,
        now: Instant,
    ) -> Vec<(LeaseRef, Vec<u8>)> {
        let mut out = Vec::new();
        for id in self.batch(name, max, max_bytes) {
            self.unlink(id);
            let q = self.queue(name);
            q.counters.gets += 1;
            self.totals.gets += 1;
            let lease = self.lease_msg(id, consumer, spec, now);
            out.push((lease, self.msgs[&id].payload.clone()));
        }
        out
    }

    /// Parks a `GET` or `LEASE` at the back of the line (3.5), creating the queue.
    fn park(
        &mut self,
        name: &str,
        consumer: W,
        deadline: Option<Instant>,
        lease: Option<LeaseSpec>,
    ) {
        let seq = self.next_seq();
        self.queue(name).waiters.push_back(Waiter {
            consumer,
            deadline,
            lease,
            seq,
        });
    }

    /// Where `consumer` is parked, if it is.
    fn parked(&self, consumer: W) -> Option<String> {
        self.queues
            .iter()
            .find(|(_, q)| q.waiters.iter().any(|w| w.consumer == consumer))
            .map(|(name, _)| name.clone())
    }

    /// Withdraws a parked consumer (its client went away, 3.5): no message is
    /// handed to it afterwards.
    fn cancel(&mut self, name: &str, consumer: W) -> bool {
        let Some(q) = self.queues.get_mut(name) else {
            return false;
        };
        let Some(pos) = q.waiters.iter().position(|w| w.consumer == consumer) else {
            return false;
        };
        q.waiters.remove(pos);
        true
    }

    /// Hands ready messages of `name` to its parked consumers, longest-waiting
    /// first, one message each (3.5, 13.3): a plain one takes it, a `LEASE` leases it.
    fn serve(&mut self, name: &str, now: Instant) {
        loop {
            let Some(id) = self.front(name) else {
                return;
            };
            let Some(w) = self.queue(name).waiters.pop_front() else {
                return;
            };
            self.unlink(id);
            let q = self.queue(name);
            q.counters.gets += 1;
            self.totals.gets += 1;
            let handoff = match w.lease {
                Some(spec) => {
                    let lease = self.lease_msg(id, w.consumer, spec, now);
                    let m = &self.msgs[&id];
                    MHandoff {
                        waiter: w.consumer,
                        lease: Some(lease),
                        id,
                        attempt: lease.attempt,
                        payload: m.payload.clone(),
                        queue: name.to_string(),
                        priority: m.priority,
                        spec: w.lease,
                        deadline: w.deadline,
                    }
                }
                None => {
                    let m = self.msgs.remove(&id).expect("model message");
                    MHandoff {
                        waiter: w.consumer,
                        lease: None,
                        id,
                        attempt: m.attempt,
                        payload: m.payload,
                        queue: name.to_string(),
                        priority: m.priority,
                        spec: w.lease,
                        deadline: w.deadline,
                    }
                }
            };
            self.handoffs.push_back(handoff);
        }
    }

    /// A message becomes ready (13.3): with the returned ones if it was delivered
    /// before, else at the end of its priority's FIFO; parked consumers are served.
    fn make_ready(&mut self, id: u64, now: Instant) {
        let m = self.msgs.get_mut(&id).expect("model message");
        let (name, priority) = (m.queue.clone(), m.priority);
        let q = self.queues.get_mut(&name).expect("model queue");
        if m.attempt > 0 {
            m.state = State::Returned;
            q.returned.insert((priority, id));
        } else {
            m.state = State::Fifo;
            q.fifo[priority as usize].push_back(id);
        }
        self.serve(&name, now);
    }

    /// Dead-letters `id` (13.10): to `q.dead` (created), ready, keeping id, priority
    /// and attempt, with charged deliveries cleared; dropped if `q.dead` is too long
    /// a name. Counted on the source queue.
    fn dead_letter(&mut self, id: u64, now: Instant) {
        let source = self.msgs[&id].queue.clone();
        self.queue(&source).counters.dead_lettered += 1;
        self.totals.dead_lettered += 1;
        let dead = format!("{source}{DEAD_SUFFIX}");
        if dead.len() > MAX_QUEUE_NAME {
            self.msgs.remove(&id);
            self.totals.dead_dropped += 1;
            return;
        }
        self.queue(&dead);
        let m = self.msgs.get_mut(&id).expect("model message");
        m.queue = dead;
        m.charged = 0;
        self.make_ready(id, now);
    }

    /// Ends a lease without `ACK` (13.5): charged unless excused; at the lease's
    /// `max_deliveries` charged deliveries the message is dead-lettered, else it is
    /// returned now or delayed (13.6), counted as a redelivery.
    fn end_lease(&mut self, id: u64, charged: bool, delay: Option<Duration>, now: Instant) {
        let m = self.msgs.get_mut(&id).expect("model message");
        let State::InFlight(lease) = m.state else {
            return;
        };
        if charged {
            m.charged = m.charged.saturating_add(1);
        }
        if charged && lease.max_deliveries != NEVER_DEAD && m.charged >= lease.max_deliveries {
            self.dead_letter(id, now);
            return;
        }
        let name = m.queue.clone();
        self.queue(&name).counters.redeliveries += 1;
        self.totals.redeliveries += 1;
        match delay {
            Some(d) => {
                let m = self.msgs.get_mut(&id).expect("model message");
                m.state = State::Delayed { due: now + d };
            }
            None => self.make_ready(id, now),
        }
    }

    /// How a settle naming `pair` on `name` stands (13.6): `OK` for a live lease
    /// (deadline not reached, even if not yet returned); `STALE` for a message of
    /// this queue that was leased before but that this pair holds no lease on;
    /// `NOT_FOUND` for anything else (gone, in another queue, never leased).
    fn settle_check(&self, name: &str, pair: LeaseRef, now: Instant) -> SettleResult {
        if !self.queues.contains_key(name) {
            return SettleResult::NotFound;
        }
        match self.msgs.get(&pair.id) {
            Some(m) if m.queue == name && m.attempt > 0 => match m.state {
                State::InFlight(l) if m.attempt == pair.attempt && l.deadline > now => {
                    SettleResult::Ok
                }
                _ => SettleResult::Stale,
            },
            _ => SettleResult::NotFound,
        }
    }

    /// `ACK` (13.6): a live lease's message leaves the server.
    fn ack(&mut self, name: &str, pair: LeaseRef, now: Instant) -> SettleResult {
        let r = self.settle_check(name, pair, now);
        if r == SettleResult::Ok {
            self.msgs.remove(&pair.id);
            self.queue(name).counters.acks += 1;
            self.totals.acks += 1;
        }
        r
    }

    /// `NACK` (13.6): ends a live lease; `DEAD` dead-letters at once, else the
    /// lease ends as 13.5 says, charged unless `NO_CHARGE`, returned after `delay`.
    fn nack(&mut self, name: &str, pair: LeaseRef, how: Nack, now: Instant) -> SettleResult {
        let r = self.settle_check(name, pair, now);
        if r == SettleResult::Ok {
            self.queue(name).counters.nacks += 1;
            self.totals.nacks += 1;
            if how.dead {
                self.dead_letter(pair.id, now);
            } else {
                let delay = (!how.delay.is_zero()).then_some(how.delay);
                self.end_lease(pair.id, !how.no_charge, delay, now);
            }
        }
        r
    }

    /// `TOUCH` (13.6): a live lease runs `lease_ms` from now (0: its own length).
    fn touch(&mut self, name: &str, pair: LeaseRef, lease_ms: u32, now: Instant) -> SettleResult {
        let r = self.settle_check(name, pair, now);
        if r == SettleResult::Ok
            && let Some(m) = self.msgs.get_mut(&pair.id)
            && let State::InFlight(l) = &mut m.state
        {
            let len = if lease_ms == 0 { l.lease_ms } else { lease_ms };
            l.deadline = now + ms(len);
        }
        r
    }

    /// A connection closes (13.5): each of its live attached leases ends, charged,
    /// in the order they were given; expired ones are left to the timer.
    fn disconnect(&mut self, consumer: W, now: Instant) {
        let mut ends: Vec<(u64, u64)> = self
            .msgs
            .iter()
            .filter_map(|(&id, m)| match m.state {
                State::InFlight(l) if l.owner == Some(consumer) && l.deadline > now => {
                    Some((l.seq, id))
                }
                _ => None,
            })
            .collect();
        ends.sort_unstable();
        for (_, id) in ends {
            self.end_lease(id, true, None, now);
        }
    }

    /// A lease the server could not deliver is taken back: if still live, it
    /// ends uncharged and the message is returned.
    fn give_back_lease(&mut self, pair: LeaseRef, now: Instant) {
        let live = self.msgs.get(&pair.id).is_some_and(|m| {
            matches!(m.state, State::InFlight(l) if m.attempt == pair.attempt && l.deadline > now)
        });
        if live {
            self.end_lease(pair.id, false, None, now);
        }
    }

    /// A plain handoff the server could not deliver comes back among the returned
    /// ones (ahead of newer work), uncounted as a get; a lease handoff as
    /// [`Model::give_back_lease`].
    fn give_back(&mut self, h: MHandoff, now: Instant) {
        if let Some(lease) = h.lease {
            self.give_back_lease(lease, now);
            return;
        }
        let q = self.queue(&h.queue);
        q.counters.gets = q.counters.gets.saturating_sub(1);
        q.returned.insert((h.priority, h.id));
        self.totals.gets = self.totals.gets.saturating_sub(1);
        self.msgs.insert(
            h.id,
            Msg {
                queue: h.queue.clone(),
                priority: h.priority,
                payload: h.payload,
                attempt: h.attempt,
                charged: 0,
                state: State::Returned,
            },
        );
        self.serve(&h.queue, now);
    }

    /// Whether a handoff can still be written: a lease handoff stops being live
    /// when its lease ends before it is written (13.7: a settle behind the parked
    /// receive is carried out at once).
    fn handoff_is_live(&self, h: &MHandoff, now: Instant) -> bool {
        h.lease
            .is_none_or(|pair| self.settle_check(&h.queue, pair, now) == SettleResult::Ok)
    }

    /// A handoff that is no longer live: its consumer is parked again, first in
    /// line, with what it was parked with, and served at once if it can be (its
    /// receive must not end without a message or its own timeout, 3.5).
    fn repark(&mut self, h: MHandoff, now: Instant) {
        let seq = self.next_seq();
        self.queue(&h.queue).waiters.push_front(Waiter {
            consumer: h.waiter,
            deadline: h.deadline,
            lease: h.spec,
            seq,
        });
        self.serve(&h.queue, now);
    }

    /// `PEEK` (13.8): the batch, unchanged, with each message's last attempt.
    fn peek(&self, name: &str, max: usize, max_bytes: usize) -> Vec<(LeaseRef, Vec<u8>)> {
        self.batch(name, max, max_bytes)
            .into_iter()
            .map(|id| {
                let m = &self.msgs[&id];
                let attempt = m.attempt;
                (LeaseRef { id, attempt }, m.payload.clone())
            })
            .collect()
    }

    /// `MOVE` (13.9): up to `max` ready messages from the front of `from`, in
    /// delivery order, to the end of `to`'s FIFOs, keeping id, priority and attempt
    /// and clearing charged deliveries; `to`'s parked consumers are then served.
    /// With nothing ready in `from`, nothing happens (`to` is not created).
    fn move_ready(&mut self, from: &str, to: &str, max: u64, now: Instant) -> u64 {
        let ids: Vec<u64> = self
            .order(from)
            .into_iter()
            .take(usize::try_from(max).unwrap_or(usize::MAX))
            .collect();
        if ids.is_empty() {
            return 0;
        }
        self.queue(to);
        for &id in &ids {
            self.unlink(id);
            let m = self.msgs.get_mut(&id).expect("model message");
            m.queue = to.to_string();
            m.charged = 0;
            m.state = State::Fifo;
            let p = m.priority as usize;
            let q = self.queue(to);
            q.fifo[p].push_back(id);
            q.counters.puts += 1;
        }
        self.serve(to, now);
        ids.len() as u64
    }

    /// `PURGE` (3.6, 13.11): every message of the queue goes, in every state;
    /// parked consumers stay; `q.dead` is untouched; a missing queue reports 0.
    fn purge(&mut self, name: &str) -> u64 {
        let Some(q) = self.queues.get_mut(name) else {
            return 0;
        };
        q.fifo.iter_mut().for_each(VecDeque::clear);
        q.returned.clear();
        let before = self.msgs.len();
        self.msgs.retain(|_, m| m.queue != name);
        let n = (before - self.msgs.len()) as u64;
        self.totals.purged += n;
        n
    }

    /// The next timer due at `now`, if any: waiter timeouts and message deadlines in
    /// time order. At the same instant a waiter's timeout runs first (the protocol
    /// allows either: the wait is never cut short), waiters in parking order,
    /// messages in id order (13.4).
    fn next_due(&self, now: Instant) -> Option<(Instant, Due)> {
        let waiters = self.queues.values().flat_map(|q| {
            q.waiters
                .iter()
                .filter_map(|w| w.deadline.map(|d| (d, Due::Waiter(w.seq))))
        });
        let msgs = self.msgs.iter().filter_map(|(&id, m)| match m.state {
            State::InFlight(l) => Some((l.deadline, Due::Message(id))),
            State::Delayed { due } => Some((due, Due::Message(id))),
            _ => None,
        });
        waiters.chain(msgs).filter(|(at, _)| *at <= now).min()
    }

    /// Runs every timer due at `now`: a parked consumer whose wait ran out leaves
    /// with `EMPTY` (3.5); an expired lease ends, charged (13.5); a delayed message
    /// becomes ready (13.4). Returns the timed-out consumers in order.
    fn expire(&mut self, now: Instant) -> Vec<W> {
        let mut timed_out = Vec::new();
        while let Some((_, due)) = self.next_due(now) {
            match due {
                Due::Waiter(seq) => {
                    for q in self.queues.values_mut() {
                        if let Some(pos) = q.waiters.iter().position(|w| w.seq == seq) {
                            if let Some(w) = q.waiters.remove(pos) {
                                timed_out.push(w.consumer);
                            }
                            break;
                        }
                    }
                }
                Due::Message(id) => match self.msgs[&id].state {
                    State::InFlight(_) => {
                        let name = self.msgs[&id].queue.clone();
                        self.queue(&name).counters.expired_leases += 1;
                        self.totals.expired_leases += 1;
                        self.end_lease(id, true, None, now);
                    }
                    State::Delayed { .. } => self.make_ready(id, now),
                    _ => {}
                },
            }
        }
        timed_out
    }

    /// The figures of queue `name` (13.11): messages in each state, payload bytes,
    /// the dead-letter queue's size, waiters and counters.
    fn info(&self, name: &str) -> Option<Figures> {
        let q = self.queues.get(name)?;
        let mut f = Figures {
            waiters: q.waiters.len() as u64,
            counters: q.counters,
            ..Figures::default()
        };
        let dead = format!("{name}{DEAD_SUFFIX}");
        for m in self.msgs.values() {
            if m.queue == dead {
                f.dead += 1;
            }
            if m.queue != name {
                continue;
            }
            f.messages += 1;
            f.bytes += m.payload.len() as u64;
            match m.state {
                State::Fifo | State::Returned => f.ready += 1,
                State::InFlight(_) => f.in_flight += 1,
                State::Delayed { .. } => f.delayed += 1,
            }
        }
        Some(f)
    }
}

/// The part of [`QueueInfo`] the model keeps (not memory, idle time or bindings).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    messages: u64,
    bytes: u64,
    ready: u64,
    in_flight: u64,
    delayed: u64,
    dead: u64,
    waiters: u64,
    counters: QueueCounters,
}

impl From<QueueInfo> for Figures {
    fn from(i: QueueInfo) -> Self {
        Figures {
            messages: i.messages,
            bytes: i.bytes,
            ready: i.ready,
            in_flight: i.in_flight,
            delayed: i.delayed,
            dead: i.dead,
            waiters: i.waiters,
            counters: i.counters,
        }
    }
}

fn ms(n: u32) -> Duration {
    Duration::from_millis(u64::from(n))
}

// ---------------------------------------------------------------------------
// Operations and their generator
// ---------------------------------------------------------------------------

/// How long a receive waits on an empty queue.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    For(u32),
    Forever,
}

/// Which lease a settle names: the `back`-th most recent one given (modulo how
/// many), possibly twisted into a pair or queue that holds no lease.
#[derive(Debug, Clone, Copy)]
struct Pick {
    back: u16,
    twist: Twist,
}

#[derive(Debug, Clone, Copy)]
enum Twist {
    None,
    NextAttempt,
    PrevAttempt,
    /// Named on another queue.
    Queue(u8),
}

/// One request (or event) of a sequence. Queues are indexes into [`names`];
/// consumers are connections, a busy (parked) one is replaced by the next free.
#[derive(Debug, Clone, Copy)]
enum Op {
    Put {
        queue: u8,
        len: u8,
        truncated: bool,
        delay_ms: u32,
        priority: u8,
    },
    Get {
        consumer: W,
        queue: u8,
        max: u8,
        max_bytes: Option<u8>,
        wait: Wait,
    },
    Lease {
        consumer: W,
        queue: u8,
        max: u8,
        max_bytes: Option<u8>,
        wait: Wait,
        lease_ms: u32,
        max_deliveries: u16,
        detached: bool,
    },
    Ack {
        pick: Pick,
    },
    Nack {
        pick: Pick,
        delay_ms: u32,
        dead: bool,
        no_charge: bool,
    },
    Touch {
        pick: Pick,
        lease_ms: u32,
    },
    /// The server could not write a lease it gave (`give_back_lease`).
    GiveBackLease {
        pick: Pick,
    },
    /// The server could not write one of the last handoffs (`give_back`).
    GiveBack {
        index: u8,
    },
    /// The server writes one of the last handoffs, or parks its consumer again if
    /// its lease ended meanwhile (`handoff_is_live`, `repark`).
    Write {
        index: u8,
    },
    Peek {
        queue: u8,
        max: u8,
        max_bytes: Option<u8>,
    },
    Move {
        from: u8,
        to: u8,
        max: u8,
    },
    Purge {
        queue: u8,
    },
    /// A parked consumer is withdrawn, from where it waits (`None`) or from a
    /// queue that may be the wrong one.
    Cancel {
        consumer: W,
        queue: Option<u8>,
    },
    /// A connection closes: its parked receive is cancelled, its leases returned.
    Disconnect {
        consumer: W,
    },
    /// Time passes, without running timers.
    Advance {
        ms: u32,
    },
    /// The event loop runs the due timers.
    Expire,
}

/// A queue index, mostly the two plain queues.
fn gen_queue(rng: &mut Rng) -> u8 {
    match rng.below(20) {
        0..=6 => 0,
        7..=11 => 1,
        12..=13 => 2,
        14 => 3,
        15..=16 => 4,
        17..=18 => 6,
        _ => 5,
    }
}

/// Milliseconds in steps of 10 (so that deadlines often tie), `1..=10 * steps`.
fn gen_ms(rng: &mut Rng, steps: u64) -> u32 {
    (10 * (1 + rng.below(steps))) as u32
}

fn gen_max_bytes(rng: &mut Rng) -> Option<u8> {
    (rng.below(5) == 0).then(|| rng.byte() % 64)
}

fn gen_wait(rng: &mut Rng) -> Wait {
    match rng.below(10) {
        0..=4 => Wait::No,
        5..=8 => Wait::For(gen_ms(rng, 30)),
        _ => Wait::Forever,
    }
}

fn gen_pick(rng: &mut Rng) -> Pick {
    let back = if rng.below(4) == 0 {
        rng.below(1000) as u16
    } else {
        rng.below(6) as u16
    };
    let twist = match rng.below(20) {
        0 => Twist::NextAttempt,
        1 => Twist::PrevAttempt,
        2 => Twist::Queue(gen_queue(rng)),
        _ => Twist::None,
    };
    Pick { back, twist }
}

fn gen_op(rng: &mut Rng) -> Op {
    let consumer = rng.below(u64::from(CONSUMERS)) as W;
    match rng.below(100) {
        0..=19 => Op::Put {
            queue: gen_queue(rng),
            len: rng.byte() % 24,
            truncated: rng.below(10) == 0,
            delay_ms: if rng.below(5) == 0 {
                gen_ms(rng, 20)
            } else {
                0
            },
            priority: if rng.below(3) == 0 {
                rng.below(PRIORITIES as u64) as u8
            } else {
                5
            },
        },
        20..=31 => Op::Get {
            consumer,
            queue: gen_queue(rng),
            max: 1 + rng.byte() % 4,
            max_bytes: gen_max_bytes(rng),
            wait: gen_wait(rng),
        },
        32..=46 => Op::Lease {
            consumer,
            queue: gen_queue(rng),
            max: 1 + rng.byte() % 4,
            max_bytes: gen_max_bytes(rng),
            wait: gen_wait(rng),
            lease_ms: gen_ms(rng, 30),
            max_deliveries: if rng.below(4) == 0 {
                NEVER_DEAD
            } else {
                1 + rng.below(3) as u16
            },
            detached: rng.below(4) == 0,
        },
        47..=56 => Op::Ack {
            pick: gen_pick(rng),
        },
        57..=64 => Op::Nack {
            pick: gen_pick(rng),
            delay_ms: if rng.below(3) == 0 {
                gen_ms(rng, 20)
            } else {
                0
            },
            dead: rng.below(8) == 0,
            no_charge: rng.below(4) == 0,
        },
        65..=68 => Op::Touch {
            pick: gen_pick(rng),
            lease_ms: if rng.below(3) == 0 {
                0
            } else {
                gen_ms(rng, 30)
            },
        },
        69..=70 => Op::GiveBackLease {
            pick: gen_pick(rng),
        },
        71 => Op::GiveBack { index: rng.byte() },
        72 => Op::Write { index: rng.byte() },
        73..=74 => Op::Peek {
            queue: gen_queue(rng),
            max: 1 + rng.byte() % 8,
            max_bytes: gen_max_bytes(rng),
        },
        75..=77 => {
            let from = gen_queue(rng);
            let mut to = gen_queue(rng);
            if to == from {
                to = (from + 1) % 7;
            }
            Op::Move {
                from,
                to,
                max: 1 + rng.byte() % 5,
            }
        }
        78..=79 => Op::Purge {
            queue: gen_queue(rng),
        },
        80..=82 => Op::Cancel {
            consumer,
            queue: (rng.below(3) == 0).then(|| gen_queue(rng)),
        },
        83..=85 => Op::Disconnect { consumer },
        86..=94 => Op::Advance {
            ms: if rng.below(4) == 0 {
                rng.below(10) as u32
            } else {
                gen_ms(rng, 12) - 10
            },
        },
        _ => Op::Expire,
    }
}

fn gen_ops(seed: u64, n: usize) -> Vec<Op> {
    // xorshift never leaves 0; spread nearby seeds apart.
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n).map(|_| gen_op(&mut rng)).collect()
}

// ---------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------

/// How often interesting things happened, over all sequences.
#[derive(Debug, Default)]
struct Coverage {
    settles: [u64; 3],
    handoffs: u64,
    timed_out: u64,
    given_back: u64,
    reparked: u64,
    moved: u64,
    purged: u64,
    dead_lettered: u64,
    dead_dropped: u64,
    expired_leases: u64,
    cancelled: u64,
}

/// The store and the model side by side, at the same time.
struct Run<'a> {
    s: Store<W>,
    m: Model,
    t0: Instant,
    clock: u32,
    names: Vec<String>,
    /// Every lease given, with its queue, for settles.
    given: Vec<(String, LeaseRef)>,
    /// Handoffs not yet "written", in the store's and the model's form.
    pending: Vec<(Handoff<W>, MHandoff)>,
    cov: &'a mut Coverage,
}

/// Returns an error naming what differs.
macro_rules! same {
    ($store:expr, $model:expr, $($what:tt)+) => {{
        let (store, model) = (&$store, &$model);
        if store != model {
            return Err(format!(
                "{}: store {:?}, model {:?}",
                format!($($what)+),
                store,
                model
            ));
        }
    }};
}

impl<'a> Run<'a> {
    fn new(t0: Instant, cov: &'a mut Coverage) -> Self {
        Run {
            // Far beyond anything a sequence stores: FULL never happens.
            s: Store::new(1 << 40, None),
            m: Model::default(),
            t0,
            clock: 0,
            names: names(),
            given: Vec::new(),
            pending: Vec::new(),
            cov,
        }
    }

    fn now(&self) -> Instant {
        self.t0 + ms(self.clock)
    }

    fn name(&self, queue: u8) -> String {
        self.names[queue as usize % self.names.len()].clone()
    }

    /// `consumer`, or the next one that is not parked (a parked connection sends
    /// no receive); `None` if all are.
    fn free_consumer(&self, consumer: W) -> Option<W> {
        (0..CONSUMERS)
            .map(|i| (consumer + i) % CONSUMERS)
            .find(|&c| self.m.parked(c).is_none())
    }

    /// The queue and pair a settle names.
    fn pick(&self, pick: Pick) -> (String, LeaseRef) {
        let Some(n) = self.given.len().checked_sub(1) else {
            return ("a".to_string(), LeaseRef { id: 1, attempt: 1 });
        };
        let (queue, mut pair) = self.given[n - (pick.back as usize % (n + 1))].clone();
        match pick.twist {
            Twist::None => (queue, pair),
            Twist::NextAttempt => {
                pair.attempt += 1;
                (queue, pair)
            }
            Twist::PrevAttempt => {
                pair.attempt = pair.attempt.saturating_sub(1);
                (queue, pair)
            }
            Twist::Queue(q) => (self.name(q), pair),
        }
    }

    fn settled(
        &mut self,
        store: SettleResult,
        model: SettleResult,
        what: &str,
    ) -> Result<(), String> {
        self.cov.settles[model as usize] += 1;
        same!(store, model, "{what}");
        Ok(())
    }

    /// The answer to a settle once the rule for moved messages is applied (13.6): a
    /// message that `MOVE` put into the queue waits there like one never leased, so
    /// no earlier pair reaches it: `NOT_FOUND`, not `STALE`, until it is leased again.
    fn expected(&self, queue: &str, pair: LeaseRef, want: SettleResult) -> SettleResult {
        let moved = self
            .m
            .msgs
            .get(&pair.id)
            .is_some_and(|m| m.queue == queue && m.state == State::Fifo);
        if want == SettleResult::Stale && moved {
            SettleResult::NotFound
        } else {
            want
        }
    }

    /// Parks `consumer` if a receive found nothing and it asked to wait.
    fn park(&mut self, queue: &str, consumer: W, wait: Wait, lease: Option<LeaseSpec>) {
        let now = self.now();
        let deadline = match wait {
            Wait::No => return,
            Wait::For(t) => Some(now + ms(t)),
            Wait::Forever => None,
        };
        match lease {
            Some(spec) => self.s.park_lease(queue, consumer, deadline, spec, now),
            None => self.s.park(queue, consumer, deadline, now),
        }
        self.m.park(queue, consumer, deadline, lease);
    }

    fn step(&mut self, op: Op) -> Result<(), String> {
        let now = self.now();
        match op {
            Op::Put {
                queue,
                len,
                truncated,
                delay_ms,
                priority,
            } => {
                let q = self.name(queue);
                let id = self.m.next_id + 1;
                let mut payload = format!("{id}:").into_bytes();
                payload.resize(payload.len() + len as usize, b'0' + (id % 10) as u8);
                let original = payload.len() + usize::from(truncated) * 7;
                let opts = PutOptions { delay_ms, priority };
                let got = self
                    .s
                    .put_with(&q, &payload, original, opts, now)
                    .map_err(|e| format!("put refused: {e}"))?;
                let want = self.m.put(&q, &payload, truncated, opts, now);
                same!(got, want, "put");
                if let (_, PutOutcome::Leased(_, lease)) = got {
                    self.given.push((q, lease));
                }
            }
            Op::Get {
                consumer,
                queue,
                max,
                max_bytes,
                wait,
            } => {
                let Some(c) = self.free_consumer(consumer) else {
                    return Ok(());
                };
                let q = self.name(queue);
                let max_bytes = max_bytes.map_or(usize::MAX, usize::from);
                let mut got = Vec::new();
                self.s
                    .get_with(&q, max.into(), max_bytes, now, |id, attempt, p, _| {
                        got.push((id, attempt, p.to_vec()));
                    });
                let want = self.m.get(&q, max.into(), max_bytes);
                same!(got, want, "get");
                if got.is_empty() {
                    self.park(&q, c, wait, None);
                }
            }
            Op::Lease {
                consumer,
                queue,
                max,
                max_bytes,
                wait,
                lease_ms,
                max_deliveries,
                detached,
            } => {
                let Some(c) = self.free_consumer(consumer) else {
                    return Ok(());
                };
                let q = self.name(queue);
                let max_bytes = max_bytes.map_or(usize::MAX, usize::from);
                let spec = LeaseSpec {
                    lease_ms,
                    max_deliveries,
                    detached,
                };
                let mut got = Vec::new();
                self.s
                    .lease(&q, max.into(), max_bytes, spec, c, now, |l, p, _| {
                        got.push((l, p.to_vec()));
                    });
                let want = self.m.lease(&q, max.into(), max_bytes, spec, c, now);
                same!(got, want, "lease");
                self.given.extend(got.iter().map(|(l, _)| (q.clone(), *l)));
                if got.is_empty() {
                    self.park(&q, c, wait, Some(spec));
                }
            }
            Op::Ack { pick } => {
                let (q, pair) = self.pick(pick);
                let want = self.m.settle_check(&q, pair, now);
                let expected = self.expected(&q, pair, want);
                let got = self.s.ack(&q, pair, now);
                self.m.ack(&q, pair, now);
                self.settled(got, expected, "ack")?;
            }
            Op::Nack {
                pick,
                delay_ms,
                dead,
                no_charge,
            } => {
                let (q, pair) = self.pick(pick);
                let how = Nack {
                    delay: ms(delay_ms),
                    dead,
                    no_charge,
                };
                let want = self.m.settle_check(&q, pair, now);
                let expected = self.expected(&q, pair, want);
                let got = self.s.nack(&q, pair, how, now);
                self.m.nack(&q, pair, how, now);
                self.settled(got, expected, "nack")?;
            }
            Op::Touch { pick, lease_ms } => {
                let (q, pair) = self.pick(pick);
                let want = self.m.settle_check(&q, pair, now);
                let expected = self.expected(&q, pair, want);
                let got = self.s.touch(&q, pair, lease_ms, now);
                self.m.touch(&q, pair, lease_ms, now);
                self.settled(got, expected, "touch")?;
            }
            Op::GiveBackLease { pick } => {
                let (_, pair) = self.pick(pick);
                self.s.give_back_lease(pair, now);
                self.m.give_back_lease(pair, now);
            }
            Op::GiveBack { index } => {
                if !self.pending.is_empty() {
                    let (h, mh) = self.pending.remove(index as usize % self.pending.len());
                    self.cov.given_back += 1;
                    self.s.give_back(h, now);
                    self.m.give_back(mh, now);
                }
            }
            Op::Write { index } => {
                if !self.pending.is_empty() {
                    let (h, mh) = self.pending.remove(index as usize % self.pending.len());
                    let live = self.s.handoff_is_live(&h, now);
                    same!(live, self.m.handoff_is_live(&mh, now), "live {h:?}");
                    // A connection with a handoff to write has sent nothing since.
                    if !live && self.m.parked(h.waiter).is_none() {
                        self.cov.reparked += 1;
                        self.s.repark(h, now);
                        self.m.repark(mh, now);
                    }
                }
            }
            Op::Peek {
                queue,
                max,
                max_bytes,
            } => {
                let q = self.name(queue);
                let max_bytes = max_bytes.map_or(usize::MAX, usize::from);
                let got = self.store_peek(&q, max.into(), max_bytes);
                same!(got, self.m.peek(&q, max.into(), max_bytes), "peek {q}");
            }
            Op::Move { from, to, max } => {
                let (from, to) = (self.name(from), self.name(to));
                let got = self.s.move_ready(&from, &to, max.into(), now);
                same!(got, self.m.move_ready(&from, &to, max.into(), now), "move");
                self.cov.moved += got;
            }
            Op::Purge { queue } => {
                let q = self.name(queue);
                let got = self.s.purge(&q, now);
                same!(got, self.m.purge(&q), "purge {q}");
                self.cov.purged += got;
            }
            Op::Cancel { consumer, queue } => {
                let q = match queue {
                    Some(q) => self.name(q),
                    None => self.m.parked(consumer).unwrap_or_else(|| "a".to_string()),
                };
                let got = self.s.cancel(&q, consumer, now);
                same!(got, self.m.cancel(&q, consumer), "cancel {consumer} on {q}");
                self.cov.cancelled += u64::from(got);
            }
            Op::Disconnect { consumer } => {
                if let Some(q) = self.m.parked(consumer) {
                    let got = self.s.cancel(&q, consumer, now);
                    same!(got, self.m.cancel(&q, consumer), "cancel {consumer} on {q}");
                }
                self.s.disconnect(consumer, now);
                self.m.disconnect(consumer, now);
            }
            Op::Advance { ms } => self.clock += ms,
            Op::Expire => {
                let mut got = Vec::new();
                loop {
                    self.s.expire(now, |w| got.push(w));
                    if self.s.next_deadline().is_none_or(|at| at > now) {
                        break;
                    }
                }
                let want = self.m.expire(now);
                self.cov.timed_out += got.len() as u64;
                same!(got, want, "timed out");
            }
        }
        self.handoffs()?;
        self.compare()
    }

    fn store_peek(&self, queue: &str, max: usize, max_bytes: usize) -> Vec<(LeaseRef, Vec<u8>)> {
        let mut out = Vec::new();
        self.s
            .peek(queue, max, max_bytes, |l, p, _| out.push((l, p.to_vec())));
        out
    }

    /// The handoffs the operation made, in order, to the same waiters.
    fn handoffs(&mut self) -> Result<(), String> {
        while let Some(h) = self.s.take_handoff() {
            let Some(want) = self.m.handoffs.pop_front() else {
                return Err(format!("store made an extra handoff {h:?}"));
            };
            let payload = match (&h.payload, h.lease) {
                (Some(p), _) => p.to_vec(),
                (None, Some(l)) => self.s.payload(l.id).unwrap_or_default().to_vec(),
                (None, None) => Vec::new(),
            };
            let got = MHandoff {
                waiter: h.waiter,
                lease: h.lease,
                id: h.id,
                attempt: h.attempt,
                payload,
                queue: h.queue.to_string(),
                priority: h.priority,
                spec: h.spec,
                deadline: h.deadline,
            };
            same!(got, want, "handoff");
            self.cov.handoffs += 1;
            if let Some(lease) = h.lease {
                self.given.push((got.queue.clone(), lease));
            }
            self.pending.push((h, want));
            if self.pending.len() > PENDING {
                self.pending.remove(0);
            }
        }
        if let Some(want) = self.m.handoffs.pop_front() {
            return Err(format!("store made no handoff, model made {want:?}"));
        }
        Ok(())
    }

    /// Everything observable without changing anything: totals, counts, and every
    /// queue's figures and full peek.
    fn compare(&mut self) -> Result<(), String> {
        let now = self.now();
        let (s, m) = (&self.s, &self.m);
        same!(s.totals(), m.totals, "totals");
        same!(s.queue_count(), m.queues.len(), "queues");
        same!(s.message_count(), m.msgs.len(), "messages");
        let count = |f: fn(&State) -> bool| m.msgs.values().filter(|x| f(&x.state)).count();
        same!(
            s.in_flight_count(),
            count(|s| matches!(s, State::InFlight(_))),
            "in flight"
        );
        same!(
            s.delayed_count(),
            count(|s| matches!(s, State::Delayed { .. })),
            "delayed"
        );
        let bytes: usize = m.msgs.values().map(|x| x.payload.len()).sum();
        same!(s.bytes(), bytes, "bytes");
        let waiters: usize = m.queues.values().map(|q| q.waiters.len()).sum();
        same!(s.waiter_count(), waiters, "waiters");
        let mut all: BTreeSet<String> = self.names.iter().cloned().collect();
        all.extend(m.queues.keys().cloned());
        for (name, q) in &m.queues {
            // 7.1: a consumer only waits on a queue with nothing ready.
            if !q.waiters.is_empty() && m.front(name).is_some() {
                return Err(format!("{name} has waiters and ready messages"));
            }
        }
        for name in &all {
            let got = s.queue_info(name, now).map(Figures::from);
            same!(got, m.info(name), "figures of {name}");
            let got = self.store_peek(name, usize::MAX, usize::MAX);
            same!(got, m.peek(name, usize::MAX, usize::MAX), "peek of {name}");
        }
        Ok(())
    }
}

/// Runs `ops` from a fresh store; on a difference, the index of the operation
/// and what differed. A panic in the store counts as a difference.
fn run(ops: &[Op], cov: &mut Coverage) -> Result<(), (usize, String)> {
    let t0 = Instant::now();
    let mut r = Run::new(t0, cov);
    for (i, &op) in ops.iter().enumerate() {
        match catch_unwind(AssertUnwindSafe(|| r.step(op))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err((i, e)),
            Err(_) => return Err((i, "panicked".to_string())),
        }
    }
    let totals = r.s.totals();
    r.cov.dead_lettered += totals.dead_lettered;
    r.cov.dead_dropped += totals.dead_dropped;
    r.cov.expired_leases += totals.expired_leases;
    Ok(())
}

/// The failing prefix of `ops`, with every operation whose removal keeps it
/// failing removed (greedy, one at a time, until no removal does).
fn shrink(ops: &[Op], fail_at: usize) -> Vec<Op> {
    let mut ops = ops[..=fail_at].to_vec();
    let mut cov = Coverage::default();
    loop {
        let before = ops.len();
        let mut i = 0;
        while i < ops.len() {
            let mut fewer = ops.clone();
            fewer.remove(i);
            match run(&fewer, &mut cov) {
                Err((at, _)) => {
                    fewer.truncate(at + 1);
                    ops = fewer;
                }
                Ok(()) => i += 1,
            }
        }
        if ops.len() == before {
            return ops;
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Random sequences of every store operation, with time advanced by the test,
/// give the same observable answers from the store and from the model.
#[test]
fn store_matches_the_model() {
    let base = env_u64("BEUSS_MODEL_SEED", 0x5EED);
    let runs = env_u64("BEUSS_MODEL_RUNS", RUNS);
    let len = env_u64("BEUSS_MODEL_OPS", OPS as u64) as usize;
    let mut cov = Coverage::default();
    for seed in base..base + runs {
        let ops = gen_ops(seed, len);
        if let Err((at, why)) = run(&ops, &mut cov) {
            let small = shrink(&ops, at);
            let mut cov = Coverage::default();
            let last = run(&small, &mut cov).err().map(|(_, e)| e);
            panic!(
                "seed {seed} (replay: BEUSS_MODEL_SEED={seed} BEUSS_MODEL_RUNS=1): op {at} \
                 {:?}: {why}\nshrunk to {} ops, failing with {last:?}:\n{small:#?}",
                ops[at],
                small.len(),
            );
        }
    }
    // The sequences reach what they are meant to test.
    if runs >= RUNS && len >= OPS {
        let c = &cov;
        assert!(c.settles.iter().all(|&n| n > 1000), "{c:?}");
        assert!(c.handoffs > 1000 && c.timed_out > 500, "{c:?}");
        assert!(c.given_back > 100 && c.reparked > 10, "{c:?}");
        assert!(c.moved > 500 && c.purged > 500, "{c:?}");
        assert!(c.cancelled > 200 && c.expired_leases > 1000, "{c:?}");
        assert!(c.dead_lettered > 100 && c.dead_dropped > 10, "{c:?}");
    }
}

/// 13.6: after `MOVE "q.dead" "q"` (the typical use, 13.9) a pair from the lease
/// that dead-lettered the message is `STALE` while the message sits in `q.dead`, and
/// `NOT_FOUND` once it is back in `q`: a moved message starts afresh, like one never
/// leased, even though `PEEK` still shows its attempt number.
#[test]
fn settle_after_move_is_not_found() {
    let t0 = Instant::now();
    let mut s = Store::<W>::new(1 << 30, None);
    s.put("q", b"job", 3, t0).expect("room");
    let spec = LeaseSpec {
        lease_ms: 1000,
        max_deliveries: 1,
        detached: false,
    };
    let mut pair = None;
    s.lease("q", 1, usize::MAX, spec, 1, t0, |l, _, _| pair = Some(l));
    let pair = pair.expect("leased");
    let dead = Nack {
        dead: true,
        ..Nack::default()
    };
    assert_eq!(s.nack("q", pair, dead, t0), SettleResult::Ok);
    // Held in q.dead: STALE there, as 13.6 says.
    assert_eq!(s.ack("q.dead", pair, t0), SettleResult::Stale);
    assert_eq!(s.move_ready("q.dead", "q", 1, t0), 1);
    // Back in q, ready, attempt 1 (PEEK shows it), no lease any pair can reach.
    let mut peeked = Vec::new();
    s.peek("q", 10, usize::MAX, |l, _, _| peeked.push(l));
    assert_eq!(peeked, vec![pair]);
    assert_eq!(s.ack("q", pair, t0), SettleResult::NotFound);
}
