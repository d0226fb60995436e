//! The store driven by an arbitrary sequence of operations, with time advanced by
//! the input, called the way the server calls it (src/server/*.rs): a parked
//! consumer sends no receive, a `MOVE` names two queues, every handoff and copy a
//! publish hands out is written, given back or parked again, a closing connection
//! is cancelled and then disconnected.
//!
//! The server's request handling is tied to its `mio` connections, so it cannot be
//! driven without sockets; the store is where its state lives, and this drives it
//! directly. Unlike the model test (src/store/model_tests.rs), which compares every
//! answer with a reference, this one covers what the model leaves out: the memory
//! cap (`FULL`), idle-queue expiry, fan-out (bindings, publishes, confirmations)
//! and what callers charge.
//!
//! Checked after every operation, beyond "no panic and no hang": the server-wide
//! counts equal the sums of the queues' figures (messages, in flight, delayed,
//! bytes, waiters, queues), each queue's messages are its ready, in-flight and
//! delayed ones, a peek sees exactly the ready ones, memory is the queues' memory
//! plus what is outside them and stays within the cap plus what one operation may
//! add, a consumer waits only on a queue with nothing ready, and the totals never
//! go down. At the end, once every consumer is gone and every queue purged and past
//! every deadline, nothing is held: no messages, no bytes, nothing outside the
//! queues, and each queue left is its bare overhead.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beuss::protocol::{LeaseRef, MAX_PRIORITY, NEVER_DEAD, PutOptions, SettleResult, Ttl, Unique};
use beuss::store::{
    CHUNK_SIZE, Delivery, FullCap, HELD_OVERHEAD, Handoff, JobPut, LeaseSpec, Nack, PutOutcome,
    QUEUE_OVERHEAD, Store, Totals,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Consumers (connections) are numbered 0..CONSUMERS.
type W = u8;
const CONSUMERS: u8 = 6;

/// Handoffs kept unwritten for a later `GiveBack` or `Write`.
const PENDING: usize = 4;

/// Memory caps: out of reach, and tight ones around the 64 KiB chunk size.
const CAPS: [usize; 4] = [1 << 40, 70_000, 200_000, 1 << 20];

/// Per-queue caps (`BQUEUEMAXMESSAGES`, `BQUEUEMAXBYTES`; 0 is none): off, most
/// often, then a few messages, a few payloads of bytes, and both.
const QUEUE_CAPS: [(usize, usize); 6] = [(0, 0), (0, 0), (3, 0), (0, 3000), (2, 2500), (1, 0)];

/// Queue names: plain ones, dead-letter queues, and one whose dead-letter queue
/// cannot be named (255 bytes with `.dead`).
const NAMES: [&str; 7] = ["a", "b", "a.dead", "b.dead", "c", "a.dead.dead", LONG];
const LONG: &str = concat!(
    "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
    "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
    "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
    "lllllllllll"
);

/// Binding patterns and published subjects (checked ones, as the server passes).
const PATTERNS: [&str; 7] = ["a", "*", ">", "a.*", "a.>", "x.y", "b"];
const SUBJECTS: [&str; 5] = ["a", "a.b", "x.y", "b", "a.dead"];

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Wait {
    No,
    For(u16),
    Forever,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Twist {
    None,
    NextAttempt,
    PrevAttempt,
    Queue(u8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
struct Pick {
    back: u8,
    twist: Twist,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Op {
    Put {
        queue: u8,
        len: u16,
        truncated: bool,
        delay_ms: u16,
        priority: u8,
    },
    /// A `PUT` with a unique key (protocol.md 18), from a small set of keys so
    /// that duplicates and replaces happen.
    PutKeyed {
        queue: u8,
        key: u8,
        len: u16,
        delay_ms: u16,
        priority: u8,
        replace: bool,
        window_ms: u16,
        /// 0: no time to live of its own (the queue's default, if any).
        ttl_ms: u16,
        ttl_dead: bool,
        /// Without a key: a message with only a time to live.
        keyless: bool,
    },
    /// A queue's default time to live is set or removed (`BQUEUETTL`).
    DefaultTtl {
        queue: u8,
        ms: u16,
    },
    Get {
        consumer: u8,
        queue: u8,
        max: u8,
        max_bytes: Option<u16>,
        wait: Wait,
    },
    Lease {
        consumer: u8,
        queue: u8,
        max: u8,
        max_bytes: Option<u16>,
        wait: Wait,
        lease_ms: u16,
        max_deliveries: u8,
        detached: bool,
    },
    Ack {
        pick: Pick,
    },
    Nack {
        pick: Pick,
        delay_ms: u16,
        dead: bool,
        no_charge: bool,
    },
    Touch {
        pick: Pick,
        lease_ms: u16,
    },
    GiveBackLease {
        pick: Pick,
    },
    GiveBack {
        index: u8,
    },
    Write {
        index: u8,
    },
    Peek {
        queue: u8,
        max: u8,
        max_bytes: Option<u16>,
    },
    Move {
        from: u8,
        to: u8,
        max: u8,
    },
    Purge {
        queue: u8,
    },
    Cancel {
        consumer: u8,
        queue: Option<u8>,
    },
    Disconnect {
        consumer: u8,
    },
    Bind {
        pattern: u8,
        queue: u8,
    },
    Unbind {
        pattern: u8,
        queue: u8,
    },
    Publish {
        subject: u8,
        len: u16,
        delay_ms: u16,
        priority: u8,
        confirm: bool,
        /// Which handed copies could not be written, one bit each.
        fail: u8,
    },
    /// Subscriptions' bookkeeping charged or released (`Store::charge`).
    Charge {
        bytes: u16,
        release: bool,
    },
    Advance {
        ms: u16,
    },
    /// Minutes pass: leases and delays run out, queues go idle.
    AdvanceLong {
        minutes: u8,
    },
    Expire,
    /// A schedule is defined or replaced (`Store::define_schedule`).
    Schedule {
        name: u8,
        spec: u8,
        queue: u8,
        len: u16,
    },
    Unschedule {
        name: u8,
    },
    PauseSchedule {
        name: u8,
        paused: bool,
    },
    /// The due runs are carried out as the server does: a put per run, a refused
    /// one counted (`Store::take_due_run`, `schedule_failed`).
    RunSchedules,
}

/// Schedule specs: intervals and cron expressions whose runs come within the
/// minutes `AdvanceLong` moves the clock.
const SPECS: [&str; 5] = [
    "@every 100ms",
    "@every 2s",
    "* * * * *",
    "*/5 * * * *",
    "@hourly",
];

/// The wall-clock time the store's schedules see when the run's clock is at 0.
const WALL0: u64 = 1_700_000_000_000;

#[derive(Debug, Arbitrary)]
struct Input {
    cap: u8,
    queue_caps: u8,
    /// Idle-queue expiry in seconds; `None` for off.
    idle_s: Option<u8>,
    ops: Vec<Op>,
}

/// A handoff not yet written, and the queue its consumer was parked on.
struct Pending {
    handoff: Handoff<W>,
    queue: String,
}

struct Run {
    s: Store<W>,
    t0: Instant,
    clock_ms: u64,
    /// Where each parked consumer waits.
    parked: HashMap<W, String>,
    /// Every lease given, with its queue, for settles (the last 256).
    given: Vec<(String, LeaseRef)>,
    pending: Vec<Pending>,
    charged: usize,
    confirm: u64,
    bindings: Vec<(u8, u8)>,
    totals: Totals,
    /// Plain deliveries given back since the last check.
    given_back: u64,
    handed: Vec<Delivery<W>>,
    /// The per-queue caps in force: messages, payload bytes (0 for none).
    queue_caps: (usize, usize),
    /// The schedules defined (by name index), and whether each is paused.
    schedules: HashMap<u8, bool>,
}

fn name(q: u8) -> &'static str {
    NAMES[usize::from(q) % NAMES.len()]
}

fn ms(n: u16) -> Duration {
    Duration::from_millis(u64::from(n))
}

impl Run {
    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.clock_ms)
    }

    /// A queue's `messages` and `bytes` figures, the ones its caps are on (7.4).
    fn held(&self, queue: &str) -> (u64, u64) {
        self.s
            .queue_info(queue, self.now())
            .map_or((0, 0), |info| (info.messages, info.bytes))
    }

    fn free(&self, consumer: u8) -> Option<W> {
        (0..CONSUMERS)
            .map(|i| (consumer % CONSUMERS + i) % CONSUMERS)
            .find(|c| !self.parked.contains_key(c))
    }

    fn give(&mut self, queue: &str, lease: LeaseRef) {
        if self.given.len() >= 256 {
            self.given.remove(0);
        }
        self.given.push((queue.to_string(), lease));
    }

    fn pick(&self, pick: Pick) -> (String, LeaseRef) {
        let Some(n) = self.given.len().checked_sub(1) else {
            return ("a".to_string(), LeaseRef { id: 1, attempt: 1 });
        };
        let (queue, mut pair) = self.given[n - usize::from(pick.back) % (n + 1)].clone();
        match pick.twist {
            Twist::None => {}
            Twist::NextAttempt => pair.attempt += 1,
            Twist::PrevAttempt => pair.attempt = pair.attempt.saturating_sub(1),
            Twist::Queue(q) => return (name(q).to_string(), pair),
        }
        (queue, pair)
    }

    fn park(&mut self, queue: &str, c: W, wait: Wait, lease: Option<LeaseSpec>) {
        let now = self.now();
        let deadline = match wait {
            Wait::No => return,
            Wait::For(t) => Some(now + ms(t.max(1))),
            Wait::Forever => None,
        };
        match lease {
            Some(spec) => self.s.park_lease(queue, c, deadline, spec, now),
            None => self.s.park(queue, c, deadline, now),
        }
        self.parked.insert(c, queue.to_string());
    }

    fn served(&mut self, waiter: W) {
        assert!(
            self.parked.remove(&waiter).is_some(),
            "{waiter} served but not parked"
        );
    }

    fn settled(&self, result: SettleResult) {
        // Any answer is allowed; the invariants say whether the store stayed sound.
        let _ = result;
    }

    fn step(&mut self, op: Op) {
        let now = self.now();
        let before = self.s.memory();
        let cap = self.s.max_memory();
        // What a refusable operation may take memory to, if it did anything: PUT,
        // BIND, PUB and charges stop at the cap (7.2, 15), LEASE at twice it (13.11);
        // one that finds the store over its limit already may still fill room that
        // is counted (a buffer's free space) without growing.
        let within = |s: &Store<W>, limit: usize, what: &str| {
            assert!(
                s.memory() <= limit.max(before),
                "{what} took memory from {before} to {} (limit {limit})",
                s.memory()
            );
        };
        match op {
            Op::Put {
                queue,
                len,
                truncated,
                delay_ms,
                priority,
            } => {
                let q = name(queue);
                let payload = vec![b'p'; usize::from(len % 2048)];
                let original = payload.len() + usize::from(truncated) * 7;
                let options = PutOptions {
                    delay_ms: u32::from(delay_ms),
                    priority: priority % (MAX_PRIORITY + 1),
                };
                // 7.4: a queue at its cap refuses whoever waits; nothing else does.
                let (held, held_bytes) = self.held(q);
                let (max_messages, max_bytes) = self.queue_caps;
                let over = if max_messages > 0 && held >= max_messages as u64 {
                    Some(FullCap::QueueMessages)
                } else if max_bytes > 0 && held_bytes + payload.len() as u64 > max_bytes as u64 {
                    Some(FullCap::QueueBytes)
                } else {
                    None
                };
                let result = self.s.put_with(q, &payload, original, options, now);
                match (&result, over) {
                    (Err(full), Some(cap)) => assert_eq!(full.cap, cap, "put on {q}"),
                    (Err(full), None) => assert_eq!(full.cap, FullCap::Memory, "put on {q}"),
                    (Ok(_), Some(cap)) => panic!("a put on {q} past its {cap:?} cap was taken"),
                    (Ok(_), None) => {}
                }
                match result {
                    Ok((_, PutOutcome::Stored)) => within(&self.s, cap, "put"),
                    Err(_) => assert_eq!(self.s.memory(), before, "a refused put"),
                    Ok((_, PutOutcome::Handed(w))) => self.served(w),
                    Ok((_, PutOutcome::Leased(w, lease))) => {
                        self.served(w);
                        self.give(q, lease);
                    }
                }
            }
            Op::PutKeyed {
                queue,
                key,
                len,
                delay_ms,
                priority,
                replace,
                window_ms,
                ttl_ms,
                ttl_dead,
                keyless,
            } => {
                let q = name(queue);
                let payload = vec![b'k'; usize::from(len % 2048)];
                let options = PutOptions {
                    delay_ms: u32::from(delay_ms % 4000),
                    priority: priority % (MAX_PRIORITY + 1),
                };
                let key = [b'a' + key % 4];
                let unique = Unique {
                    key: &key,
                    replace,
                    window_ms: u32::from(window_ms % 3000),
                };
                let messages = self.s.message_count();
                let ttl = (ttl_ms > 0).then(|| Ttl {
                    ttl_ms: u32::from(ttl_ms % 5000),
                    dead_letter: ttl_dead,
                });
                let unique = (!keyless).then_some(unique);
                match self
                    .s
                    .put_job(q, &payload, payload.len(), options, unique, ttl, now)
                {
                    Ok((_, JobPut::New(outcome))) => {
                        assert_eq!(outcome, PutOutcome::Stored, "a keyed put is never handed");
                        within(&self.s, cap, "keyed put");
                    }
                    Ok((id, JobPut::Duplicate(_))) => {
                        assert_eq!(self.s.message_count(), messages, "a duplicate of {id}");
                    }
                    Ok((id, JobPut::Replaced)) => {
                        // Ready now, it may have gone to a parked plain GET at once.
                        let after = self.s.message_count();
                        assert!(after == messages || after + 1 == messages, "replace {id}");
                        if after == messages {
                            assert_eq!(self.s.payload(id), Some(payload.as_slice()));
                        }
                        within(&self.s, cap, "replace");
                    }
                    Err(_) => assert_eq!(self.s.memory(), before, "a refused keyed put"),
                }
                let keys = self.s.key_counts();
                assert!(keys.held as usize <= self.s.message_count(), "{keys:?}");
                assert!(self.s.expiring_count() <= self.s.message_count());
            }
            Op::DefaultTtl { queue, ms } => {
                self.s
                    .set_default_ttl(name(queue), Duration::from_millis(u64::from(ms % 3000)));
            }
            Op::Get {
                consumer,
                queue,
                max,
                max_bytes,
                wait,
            } => {
                let Some(c) = self.free(consumer) else {
                    return;
                };
                let q = name(queue);
                let max_bytes = max_bytes.map_or(usize::MAX, usize::from);
                let mut got = 0;
                let n =
                    self.s
                        .get_with(q, usize::from(max % 8) + 1, max_bytes, now, |_, _, _, _| {
                            got += 1;
                        });
                assert_eq!(n, got);
                if n == 0 {
                    self.park(q, c, wait, None);
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
                let Some(c) = self.free(consumer) else {
                    return;
                };
                let q = name(queue);
                let max_bytes = max_bytes.map_or(usize::MAX, usize::from);
                let spec = LeaseSpec {
                    lease_ms: u32::from(lease_ms.max(1)),
                    max_deliveries: match max_deliveries % 6 {
                        0 => NEVER_DEAD,
                        n => u16::from(n),
                    },
                    detached,
                };
                let mut got = Vec::new();
                let n = self.s.lease(
                    q,
                    usize::from(max % 8) + 1,
                    max_bytes,
                    spec,
                    c,
                    now,
                    |l, _, _| got.push(l),
                );
                assert_eq!(n, got.len());
                within(&self.s, 2 * cap, "lease");
                for l in got {
                    self.give(q, l);
                }
                // As the server does (src/server/leases.rs): nothing leased while
                // messages are ready means memory past twice the cap, answered FULL,
                // not a wait (13.11).
                if n == 0 && self.s.has_ready(q) {
                    // Payloads here are under 3000 bytes (puts and schedules).
                    assert!(
                        self.s.memory() + HELD_OVERHEAD + 3000 > cap.saturating_mul(2),
                        "a lease on {q} took nothing with messages ready and room"
                    );
                } else if n == 0 {
                    self.park(q, c, wait, Some(spec));
                }
            }
            Op::Ack { pick } => {
                let (q, pair) = self.pick(pick);
                let r = self.s.ack(&q, pair, now);
                self.settled(r);
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
                let r = self.s.nack(&q, pair, how, now);
                self.settled(r);
            }
            Op::Touch { pick, lease_ms } => {
                let (q, pair) = self.pick(pick);
                let r = self.s.touch(&q, pair, u32::from(lease_ms), now);
                self.settled(r);
            }
            Op::GiveBackLease { pick } => {
                let (_, pair) = self.pick(pick);
                self.s.give_back_lease(pair, now);
            }
            Op::GiveBack { index } => {
                if !self.pending.is_empty() {
                    let p = self.pending.remove(usize::from(index) % self.pending.len());
                    self.given_back += u64::from(p.handoff.lease.is_none());
                    self.s.give_back(p.handoff, now);
                }
            }
            Op::Write { index } => {
                if !self.pending.is_empty() {
                    let p = self.pending.remove(usize::from(index) % self.pending.len());
                    // A consumer with a handoff to write has sent nothing since.
                    if !self.s.handoff_is_live(&p.handoff, now)
                        && !self.parked.contains_key(&p.handoff.waiter)
                    {
                        self.parked.insert(p.handoff.waiter, p.queue);
                        self.s.repark(p.handoff, now);
                    } else if let Some(meta) = &p.handoff.meta {
                        self.s.confirm_taken(meta.confirm, p.handoff.id);
                    }
                }
            }
            Op::Peek {
                queue,
                max,
                max_bytes,
            } => {
                let max_bytes = max_bytes.map_or(usize::MAX, usize::from);
                let mut got = 0;
                let n = self
                    .s
                    .peek(name(queue), usize::from(max), max_bytes, |_, _, _| got += 1);
                assert_eq!(n, got);
            }
            Op::Move { from, to, max } => {
                // The decoder refuses a MOVE onto its own queue.
                let to = if from % 7 == to % 7 {
                    from.wrapping_add(1)
                } else {
                    to
                };
                let (held, _) = self.held(name(to));
                let moved = self
                    .s
                    .move_ready(name(from), name(to), u64::from(max.max(1)), now);
                // 7.4: at most as many as the destination has room for.
                let max_messages = self.queue_caps.0 as u64;
                if max_messages > 0 {
                    assert!(
                        moved <= max_messages.saturating_sub(held),
                        "moved {moved} onto {} holding {held} of {max_messages}",
                        name(to)
                    );
                }
            }
            Op::Purge { queue } => {
                self.s.purge(name(queue), now);
            }
            Op::Cancel { consumer, queue } => {
                let c = consumer % CONSUMERS;
                let q = match queue {
                    Some(q) => name(q).to_string(),
                    None => self.parked.get(&c).cloned().unwrap_or_else(|| "a".into()),
                };
                let was = self.parked.get(&c) == Some(&q);
                let cancelled = self.s.cancel(&q, c, now);
                assert_eq!(cancelled, was, "cancel {c} on {q}");
                if cancelled {
                    self.parked.remove(&c);
                }
            }
            Op::Disconnect { consumer } => self.disconnect(consumer % CONSUMERS),
            Op::Bind { pattern, queue } => {
                let (p, q) = (pattern % PATTERNS.len() as u8, queue % NAMES.len() as u8);
                let was = self.bindings.contains(&(p, q));
                match self.s.bind(PATTERNS[usize::from(p)], name(q), now) {
                    Ok(created) => {
                        within(&self.s, cap, "bind");
                        assert_eq!(created, !was, "bind {p} {q}");
                        if created {
                            self.bindings.push((p, q));
                        }
                    }
                    Err(_) => assert!(!was),
                }
            }
            Op::Unbind { pattern, queue } => {
                let (p, q) = (pattern % PATTERNS.len() as u8, queue % NAMES.len() as u8);
                let was = self.bindings.contains(&(p, q));
                let removed = self.s.unbind(PATTERNS[usize::from(p)], name(q), now);
                assert_eq!(removed, was, "unbind {p} {q}");
                self.bindings.retain(|&b| b != (p, q));
            }
            Op::Publish {
                subject,
                len,
                delay_ms,
                priority,
                confirm,
                fail,
            } => {
                let subject = SUBJECTS[usize::from(subject) % SUBJECTS.len()];
                let payload = vec![b's'; usize::from(len % 2048)];
                let options = PutOptions {
                    delay_ms: u32::from(delay_ms),
                    priority: priority % (MAX_PRIORITY + 1),
                };
                let confirm = if confirm {
                    self.confirm += 1;
                    self.confirm
                } else {
                    0
                };
                let mut handed = std::mem::take(&mut self.handed);
                let result = self.s.publish(
                    subject,
                    &payload,
                    payload.len(),
                    options,
                    0,
                    confirm,
                    now,
                    &mut handed,
                );
                // A copy handed to a parked LEASE is held in flight but, like a PUT
                // handed to one, never refused (7.2, 13.11): its bookkeeping may
                // pass the cap.
                let leased = handed.iter().filter(|d| d.lease.is_some()).count();
                match result {
                    Ok(_) => within(&self.s, cap + leased * HELD_OVERHEAD, "publish"),
                    Err(_) => {
                        assert!(handed.is_empty());
                        assert_eq!(self.s.memory(), before, "a refused publish");
                    }
                }
                for (i, d) in handed.drain(..).enumerate() {
                    let queue = self.parked.get(&d.waiter).cloned();
                    self.served(d.waiter);
                    let failed = fail & (1 << (i % 8)) != 0;
                    match (failed, d.lease) {
                        (false, None) => self.s.confirm_taken(confirm, d.id),
                        (false, Some(lease)) => {
                            if let Some(q) = queue {
                                self.give(&q, lease);
                            }
                        }
                        (true, Some(lease)) => self.s.give_back_lease(lease, now),
                        (true, None) => {
                            self.given_back += 1;
                            self.s.put_back_copy(d, &payload, subject, 0, now);
                        }
                    }
                }
                self.handed = handed;
            }
            Op::Charge { bytes, release } => {
                if release {
                    let n = usize::from(bytes).min(self.charged);
                    self.s.uncharge(n);
                    self.charged -= n;
                } else if self.s.charge(usize::from(bytes)).is_ok() {
                    self.charged += usize::from(bytes);
                    within(&self.s, cap, "charge");
                }
            }
            Op::Advance { ms } => self.clock_ms += u64::from(ms),
            Op::AdvanceLong { minutes } => self.clock_ms += u64::from(minutes) * 60_000,
            Op::Expire => self.expire(),
            Op::Schedule {
                name: n,
                spec,
                queue,
                len,
            } => {
                let n = n % 4;
                let spec_text = SPECS[usize::from(spec) % SPECS.len()];
                let def = beuss::schedule::Definition {
                    name: format!("s{n}").into(),
                    spec_text: spec_text.into(),
                    spec: beuss::schedule::Spec::parse(spec_text).expect("a valid spec"),
                    target: beuss::schedule::Target::Queue(name(queue).into()),
                    priority: 5,
                    payload: vec![b's'; usize::from(len % 3000)].into(),
                };
                let (charge, old) = (
                    def.memory(),
                    self.s.schedules().get(&def.name).map_or(0, |s| s.memory()),
                );
                let count = self.s.schedules().len();
                match self.s.define_schedule(def, self.wall()) {
                    Ok((created, next)) => {
                        within(&self.s, cap, "schedule");
                        assert_eq!(created, !self.schedules.contains_key(&n));
                        assert!(next > self.wall());
                        assert_eq!(self.s.memory(), before + charge - old);
                        self.schedules.insert(n, false);
                    }
                    Err(_) => {
                        assert_eq!(self.s.memory(), before, "a refused schedule");
                        assert_eq!(self.s.schedules().len(), count);
                    }
                }
            }
            Op::Unschedule { name: n } => {
                let n = n % 4;
                let charge = self.s.schedules().get(&format!("s{n}")).map(|s| s.memory());
                assert_eq!(self.s.remove_schedule(&format!("s{n}")), charge.is_some());
                assert_eq!(charge.is_some(), self.schedules.remove(&n).is_some());
                assert_eq!(self.s.memory(), before - charge.unwrap_or(0));
            }
            Op::PauseSchedule { name: n, paused } => {
                let n = n % 4;
                let next = self.s.pause_schedule(&format!("s{n}"), paused, self.wall());
                assert_eq!(next.is_some(), self.schedules.contains_key(&n));
                if let Some(next) = next {
                    assert_eq!(next == 0, paused);
                    self.schedules.insert(n, paused);
                }
                assert_eq!(self.s.memory(), before);
            }
            Op::RunSchedules => self.run_schedules(),
        }
        self.handoffs();
        let _ = self.s.take_confirms().count();
    }

    /// The wall-clock time of the run's clock.
    fn wall(&self) -> u64 {
        WALL0 + self.clock_ms
    }

    /// Carries out the due runs as the server does (src/server/schedules.rs), with a
    /// plain put for each.
    fn run_schedules(&mut self) {
        let wall = self.wall();
        while let Some(run) = self.s.take_due_run(wall) {
            assert!(run.at_ms <= wall, "{run:?} is not due at {wall}");
            let n: u8 = run.name[1..].parse().expect("a name s0..s3");
            assert_eq!(
                self.schedules.get(&n),
                Some(&false),
                "{run:?}: not defined or paused"
            );
            let now = self.now();
            let options = PutOptions {
                delay_ms: 0,
                priority: run.priority,
            };
            let len = run.payload.len();
            let beuss::schedule::Target::Queue(queue) = &run.target else {
                panic!("only queue targets here");
            };
            match self.s.put_with(queue, &run.payload, len, options, now) {
                Ok((_, PutOutcome::Stored)) => {}
                Ok((_, PutOutcome::Handed(w))) => self.served(w),
                Ok((_, PutOutcome::Leased(w, lease))) => {
                    self.served(w);
                    self.give(queue, lease);
                }
                Err(_) => self.s.schedule_failed(&run.name),
            }
            self.handoffs();
        }
        assert!(self.s.next_schedule_due().is_none_or(|at| at > wall));
    }

    fn disconnect(&mut self, c: W) {
        let now = self.now();
        if let Some(q) = self.parked.remove(&c) {
            assert!(self.s.cancel(&q, c, now), "cancel {c} on {q}");
        }
        self.s.disconnect(c, now);
    }

    /// Runs every timer due, as the event loop does.
    fn expire(&mut self) {
        let now = self.now();
        let mut timed_out = Vec::new();
        let mut rounds = 0;
        loop {
            self.s.expire(now, |w| timed_out.push(w));
            if self.s.next_deadline().is_none_or(|at| at > now) {
                break;
            }
            rounds += 1;
            assert!(rounds < 100_000, "expire makes no progress");
        }
        for w in timed_out {
            self.served(w);
        }
    }

    /// Takes the handoffs an operation made, keeping the last few unwritten.
    fn handoffs(&mut self) {
        while let Some(h) = self.s.take_handoff() {
            let queue = self
                .parked
                .remove(&h.waiter)
                .unwrap_or_else(|| panic!("handoff to {} who is not parked", h.waiter));
            if let Some(lease) = h.lease {
                assert!(self.s.payload(lease.id).is_some(), "{h:?}");
                self.give(&queue, lease);
            } else {
                assert!(h.payload.is_some(), "{h:?}");
            }
            self.pending.push(Pending { handoff: h, queue });
            if self.pending.len() > PENDING {
                let written = self.pending.remove(0);
                if let Some(meta) = &written.handoff.meta {
                    self.s.confirm_taken(meta.confirm, written.handoff.id);
                }
            }
        }
    }

    fn check(&mut self) {
        let now = self.now();
        let s = &self.s;
        let (mut queues, mut messages, mut in_flight, mut delayed) = (0, 0, 0, 0);
        let (mut bytes, mut memory, mut waiters) = (0, 0, 0);
        for (name, info) in s.queue_infos(now) {
            queues += 1;
            messages += info.messages;
            in_flight += info.in_flight;
            delayed += info.delayed;
            bytes += info.bytes;
            memory += info.memory;
            waiters += info.waiters;
            assert_eq!(
                info.ready + info.in_flight + info.delayed,
                info.messages,
                "{name}: {info:?}"
            );
            assert!(
                info.memory >= (QUEUE_OVERHEAD + name.len()) as u64,
                "{name}: {info:?}"
            );
            // 7.1: a consumer only waits on a queue with nothing ready.
            assert!(info.waiters == 0 || info.ready == 0, "{name}: {info:?}");
            let (mut seen, mut seen_bytes) = (0u64, 0u64);
            s.peek(name, usize::MAX, usize::MAX, |_, p, _| {
                seen += 1;
                seen_bytes += p.len() as u64;
            });
            assert_eq!(seen, info.ready, "{name}: peek");
            assert!(seen_bytes <= info.bytes, "{name}: peek");
        }
        assert_eq!(queues, s.queue_count());
        assert_eq!(messages, s.message_count() as u64);
        assert_eq!(in_flight, s.in_flight_count() as u64);
        assert_eq!(delayed, s.delayed_count() as u64);
        assert_eq!(bytes, s.bytes() as u64);
        assert_eq!(waiters, s.waiter_count() as u64);
        assert_eq!(waiters, self.parked.len() as u64);
        assert_eq!(memory + s.memory_outside_queues() as u64, s.memory() as u64);
        assert!(s.memory_outside_queues() >= self.charged);
        // Leasing stops at twice the cap; returning, delaying, dead-lettering and
        // moving are never refused (protocol.md 13.11), and a move may need a new
        // buffer in its target before the source's empties: no more than that.
        let bound = 2 * s.max_memory() + NAMES.len() * (CHUNK_SIZE + QUEUE_OVERHEAD + 256);
        assert!(
            s.memory() <= bound,
            "memory {} past {bound} (cap {})",
            s.memory(),
            s.max_memory()
        );
        let t = s.totals();
        let before = self.totals;
        for (now, was, what) in [
            (t.puts, before.puts, "puts"),
            (t.truncations, before.truncations, "truncations"),
            (t.rejected_full, before.rejected_full, "rejected_full"),
            (t.purged, before.purged, "purged"),
            (t.expired_queues, before.expired_queues, "expired_queues"),
            (t.leases, before.leases, "leases"),
            (t.acks, before.acks, "acks"),
            (t.nacks, before.nacks, "nacks"),
            (t.redeliveries, before.redeliveries, "redeliveries"),
            (t.expired_leases, before.expired_leases, "expired_leases"),
            (t.dead_lettered, before.dead_lettered, "dead_lettered"),
            (t.dead_dropped, before.dead_dropped, "dead_dropped"),
            (t.routed_copies, before.routed_copies, "routed_copies"),
        ] {
            assert!(now >= was, "total {what} went down");
        }
        // A plain delivery given back is not counted as taken (`give_back`).
        assert!(
            t.gets + self.given_back >= before.gets,
            "total gets went down"
        );
        self.given_back = 0;
        self.totals = t;
    }

    /// Every consumer leaves, every binding and charge is released, every queue is
    /// purged past every deadline: nothing may be left but empty queues.
    fn drain(&mut self) {
        // A message given back or a lease returned may go to another parked
        // consumer, as a new handoff: round until no one is left.
        for round in 0.. {
            assert!(round < 64, "consumers keep being served");
            while let Some(p) = self.pending.pop() {
                let now = self.now();
                self.given_back += u64::from(p.handoff.lease.is_none());
                self.s.give_back(p.handoff, now);
                self.handoffs();
            }
            for c in 0..CONSUMERS {
                self.disconnect(c);
                self.handoffs();
            }
            if self.pending.is_empty() && self.parked.is_empty() {
                break;
            }
        }
        self.check();
        for (p, q) in std::mem::take(&mut self.bindings) {
            let now = self.now();
            assert!(self.s.unbind(PATTERNS[usize::from(p)], name(q), now));
        }
        self.s.uncharge(self.charged);
        self.charged = 0;
        for n in std::mem::take(&mut self.schedules).into_keys() {
            assert!(self.s.remove_schedule(&format!("s{n}")));
        }
        assert!(self.s.schedules().is_empty());
        for _ in 0..3 {
            // Detached leases (12 h at most here) and delays run out, dead letters
            // land, then all is purged.
            self.clock_ms += 13 * 3600 * 1000;
            self.expire();
            self.handoffs();
            assert!(self.pending.is_empty() && self.parked.is_empty());
            let now = self.now();
            let names: Vec<String> = self.s.queue_infos(now).map(|(n, _)| n.into()).collect();
            for q in names {
                self.s.purge(&q, now);
            }
            self.check();
        }
        let s = &self.s;
        assert_eq!(s.message_count(), 0);
        assert_eq!(s.bytes(), 0);
        assert_eq!(s.in_flight_count(), 0);
        assert_eq!(s.delayed_count(), 0);
        assert_eq!(s.memory_outside_queues(), 0);
        assert_eq!(s.next_deadline().filter(|&at| at <= self.now()), None);
        for (name, info) in s.queue_infos(self.now()) {
            assert_eq!(
                info.memory,
                (QUEUE_OVERHEAD + name.len()) as u64,
                "{name} left with {info:?}"
            );
        }
    }
}

fuzz_target!(|input: Input| {
    let idle = input.idle_s.map(|s| Duration::from_secs(u64::from(s) + 1));
    let mut run = Run {
        s: Store::new(CAPS[usize::from(input.cap) % CAPS.len()], idle),
        queue_caps: QUEUE_CAPS[usize::from(input.queue_caps) % QUEUE_CAPS.len()],
        t0: Instant::now(),
        clock_ms: 0,
        parked: HashMap::new(),
        given: Vec::new(),
        pending: Vec::new(),
        charged: 0,
        confirm: 0,
        bindings: Vec::new(),
        totals: Totals::default(),
        given_back: 0,
        handed: Vec::new(),
        schedules: HashMap::new(),
    };
    run.s.set_queue_caps(run.queue_caps.0, run.queue_caps.1);
    // BEUSS_FUZZ_TRACE=1 when replaying an input: each operation and the memory.
    let trace = std::env::var_os("BEUSS_FUZZ_TRACE").is_some();
    for op in input.ops.into_iter().take(512) {
        if trace {
            eprintln!("{op:?}");
        }
        run.step(op);
        if trace {
            let now = run.now();
            let queues: Vec<_> = run
                .s
                .queue_infos(now)
                .map(|(n, i)| (n.len().min(12), i.memory, i.messages, i.waiters))
                .collect();
            eprintln!(
                "  memory {} of {}, outside {}, queues (name len, memory, messages, waiters) {queues:?}",
                run.s.memory(),
                run.s.max_memory(),
                run.s.memory_outside_queues()
            );
        }
        run.check();
    }
    run.drain();
});
