//! The queue store: named FIFO queues held in memory, the consumers waiting on them,
//! idle-queue expiry and the memory cap.
//!
//! No I/O and no clock here: every method that cares about time takes `now`, and the
//! store answers with outcomes ("hand this message to that waiter") that the server
//! carries out. A waiter is whatever handle type `W` the caller uses to find a
//! connection again.

mod queues;
mod records;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use queues::Queues;
pub use records::{CHUNK_SIZE, RECORD_HEADER, Records};

/// Memory charged for a queue's own bookkeeping (map entry, struct, name), on top of
/// its message chunks. It makes the cap count queues too, so that a flood of queue
/// names cannot grow memory past it.
pub const QUEUE_OVERHEAD: usize = 160;

/// A `PUT` refused because it would take the store over its memory cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// Bytes held now.
    pub used: usize,
    /// The cap.
    pub limit: usize,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory cap reached ({} of {} bytes held); message not stored",
            self.used, self.limit
        )
    }
}

impl std::error::Error for Full {}

/// What happened to a message given to [`Store::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome<W> {
    /// Appended to the queue.
    Stored,
    /// Not stored: a consumer was waiting, and the caller must deliver the payload to
    /// it now. The waiter has been removed.
    Handed(W),
}

/// Server-wide counters kept by the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages accepted by `put` (stored or handed to a waiter).
    pub puts: u64,
    /// Messages taken by consumers (from the queue or handed over).
    pub gets: u64,
    /// Messages that arrived longer than the limit and were cut.
    pub truncations: u64,
    /// `put`s refused by the memory cap.
    pub rejected_full: u64,
    /// Messages dropped by `purge`.
    pub purged: u64,
    /// Queues removed after being idle.
    pub expired_queues: u64,
}

/// One queue's figures, for `STATS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueInfo {
    /// Messages held.
    pub messages: u64,
    /// Payload bytes held.
    pub bytes: u64,
    /// Memory held (chunks and bookkeeping).
    pub memory: u64,
    /// Messages put since the queue was created.
    pub puts: u64,
    /// Messages taken since the queue was created.
    pub gets: u64,
    /// Truncated puts since the queue was created.
    pub truncations: u64,
    /// Consumers parked on it.
    pub waiters: u64,
    /// Time since it was last used.
    pub idle: Duration,
}

#[derive(Debug)]
struct Waiter<W> {
    handle: W,
    /// The key of its timeout in `Store::timers`, if it has one.
    timer: Option<TimerKey>,
}

#[derive(Debug)]
struct Queue<W> {
    records: Records,
    /// Parked consumers, first come first served.
    waiters: VecDeque<Waiter<W>>,
    last_used: Instant,
    /// Whether an idle-expiry timer for this queue is in `Store::timers`; at most one
    /// is, so touching an idle queue costs nothing.
    idle_timer: bool,
    puts: u64,
    gets: u64,
    truncations: u64,
}

impl<W> Queue<W> {
    fn new(now: Instant) -> Self {
        Queue {
            records: Records::default(),
            waiters: VecDeque::new(),
            last_used: now,
            idle_timer: false,
            puts: 0,
            gets: 0,
            truncations: 0,
        }
    }

    fn is_idle(&self) -> bool {
        self.records.is_empty() && self.waiters.is_empty()
    }
}

/// Timers are ordered by deadline; the sequence number makes keys unique.
type TimerKey = (Instant, u64);

#[derive(Debug)]
enum Timer<W> {
    /// A parked `GET` runs out of time.
    Waiter { queue: Box<str>, handle: W },
    /// A queue may have been idle long enough to drop.
    Idle { queue: Box<str> },
}

/// Named FIFO queues with waiting consumers, idle expiry and a memory cap.
#[derive(Debug)]
pub struct Store<W> {
    /// O(1) lookup by name (the Go original scanned a list).
    queues: Queues<Queue<W>>,
    /// Waiter timeouts and idle checks, soonest first. A `BTreeMap` keeps them ordered
    /// and lets a served waiter's timeout be removed in O(log n).
    timers: BTreeMap<TimerKey, Timer<W>>,
    next_timer: u64,
    /// Memory held: chunk capacity plus `QUEUE_OVERHEAD` and name per queue.
    memory: usize,
    max_memory: usize,
    queue_idle: Option<Duration>,
    messages: usize,
    bytes: usize,
    totals: Totals,
}

impl<W: Copy + PartialEq + fmt::Debug> Store<W> {
    /// An empty store holding at most `max_memory` bytes, dropping queues idle for
    /// `queue_idle` (never, if `None`).
    pub fn new(max_memory: usize, queue_idle: Option<Duration>) -> Self {
        Store {
            queues: Queues::default(),
            timers: BTreeMap::new(),
            next_timer: 0,
            memory: 0,
            max_memory,
            queue_idle,
            messages: 0,
            bytes: 0,
            totals: Totals::default(),
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
        let truncated = original_len > payload.len();
        // One hash lookup on the common path: the queue exists.
        if let Some(q) = self.queues.get_mut(queue) {
            if let Some(waiter) = q.waiters.pop_front() {
                if let Some(key) = waiter.timer {
                    self.timers.remove(&key);
                }
                q.last_used = now;
                q.puts += 1;
                q.gets += 1;
                q.truncations += u64::from(truncated);
                let idle = q.is_idle();
                self.totals.puts += 1;
                self.totals.gets += 1;
                self.totals.truncations += u64::from(truncated);
                if idle {
                    self.arm_idle_timer(queue, now);
                }
                return Ok(PutOutcome::Handed(waiter.handle));
            }
            let growth = q.records.growth_for(payload.len());
            if self.memory + growth > self.max_memory {
                self.totals.rejected_full += 1;
                return Err(Full {
                    used: self.memory,
                    limit: self.max_memory,
                });
            }
            self.memory += q.records.push(payload);
            q.last_used = now;
            q.puts += 1;
            q.truncations += u64::from(truncated);
        } else {
            let growth =
                Records::default().growth_for(payload.len()) + QUEUE_OVERHEAD + queue.len();
            if self.memory + growth > self.max_memory {
                self.totals.rejected_full += 1;
                return Err(Full {
                    used: self.memory,
                    limit: self.max_memory,
                });
            }
            let mut q = Queue::new(now);
            self.memory += QUEUE_OVERHEAD + queue.len() + q.records.push(payload);
            q.puts += 1;
            q.truncations += u64::from(truncated);
            self.queues.insert(queue, q);
        }
        self.messages += 1;
        self.bytes += payload.len();
        self.totals.puts += 1;
        self.totals.truncations += u64::from(truncated);
        Ok(PutOutcome::Stored)
    }

    /// Removes up to `max` of the oldest messages of `queue`, handing each to `each`,
    /// and stops early once the payloads would pass `max_bytes` (at least one message
    /// is always taken). Returns how many were taken. A queue that does not exist is
    /// not created.
    pub fn get(
        &mut self,
        queue: &str,
        max: usize,
        max_bytes: usize,
        now: Instant,
        mut each: impl FnMut(&[u8]),
    ) -> usize {
        let Some(q) = self.queues.get_mut(queue) else {
            return 0;
        };
        q.last_used = now;
        let mut taken = 0;
        let mut bytes = 0;
        while taken < max {
            let Some(len) = q.records.front_len() else {
                break;
            };
            if taken > 0 && bytes + len > max_bytes {
                break;
            }
            let Some(freed) = q.records.pop_with(&mut each) else {
                break;
            };
            self.memory -= freed;
            bytes += len;
            taken += 1;
        }
        q.gets += taken as u64;
        self.messages -= taken;
        self.bytes -= bytes;
        self.totals.gets += taken as u64;
        if q.is_idle() {
            self.arm_idle_timer(queue, now);
        }
        taken
    }

    /// Parks a consumer on `queue` (creating it, so that a `PUT` finds the waiter)
    /// until a message arrives or `deadline` passes. Call only after a `get` found
    /// the queue empty. Waiters count toward no cap: there is at most one per
    /// connection, and connections are capped.
    pub fn park(&mut self, queue: &str, handle: W, deadline: Option<Instant>, now: Instant) {
        let timer = deadline.map(|at| {
            let key = (at, self.next_timer);
            self.next_timer += 1;
            self.timers.insert(
                key,
                Timer::Waiter {
                    queue: queue.into(),
                    handle,
                },
            );
            key
        });
        let q = match self.queues.get_mut(queue) {
            Some(q) => q,
            None => {
                self.memory += QUEUE_OVERHEAD + queue.len();
                self.queues.insert(queue, Queue::new(now))
            }
        };
        q.last_used = now;
        q.waiters.push_back(Waiter { handle, timer });
    }

    /// Removes a parked consumer (its client went away). Returns whether it was found.
    ///
    /// Cost: a scan of that queue's waiters, which is short in practice; a map from
    /// handle to position would make it O(1) at the price of upkeep on every park.
    pub fn cancel(&mut self, queue: &str, handle: W, now: Instant) -> bool {
        let Some(q) = self.queues.get_mut(queue) else {
            return false;
        };
        let Some(pos) = q.waiters.iter().position(|w| w.handle == handle) else {
            return false;
        };
        if let Some(Waiter {
            timer: Some(key), ..
        }) = q.waiters.remove(pos)
        {
            self.timers.remove(&key);
        }
        if q.is_idle() {
            self.arm_idle_timer(queue, now);
        }
        true
    }

    /// Drops every message in `queue`; returns how many.
    pub fn purge(&mut self, queue: &str, now: Instant) -> u64 {
        let Some(q) = self.queues.get_mut(queue) else {
            return 0;
        };
        q.last_used = now;
        let bytes = q.records.bytes();
        let (count, freed) = q.records.clear();
        self.memory -= freed;
        self.messages -= count;
        self.bytes -= bytes;
        self.totals.purged += count as u64;
        if q.is_idle() {
            self.arm_idle_timer(queue, now);
        }
        count as u64
    }

    /// Runs every timer due at `now`: waiters whose wait ran out are removed and
    /// passed to `timed_out` (the caller answers them `EMPTY`), and queues idle for
    /// the configured time are dropped with their memory.
    pub fn expire(&mut self, now: Instant, mut timed_out: impl FnMut(W)) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = *entry.key();
            match entry.remove() {
                Timer::Waiter { queue, handle } => {
                    if let Some(q) = self.queues.get_mut(&queue) {
                        q.waiters.retain(|w| w.timer != Some(key));
                        if q.is_idle() {
                            self.arm_idle_timer(&queue, now);
                        }
                    }
                    timed_out(handle);
                }
                Timer::Idle { queue } => self.check_idle(queue, now),
            }
        }
    }

    /// When the next timer is due, for the poll timeout; `None` if there is none.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    fn arm_idle_timer(&mut self, queue: &str, now: Instant) {
        let Some(idle) = self.queue_idle else {
            return;
        };
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        if q.idle_timer {
            return;
        }
        q.idle_timer = true;
        let key = (now + idle, self.next_timer);
        self.next_timer += 1;
        self.timers.insert(
            key,
            Timer::Idle {
                queue: queue.into(),
            },
        );
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
            let key = (due, self.next_timer);
            self.next_timer += 1;
            self.timers.insert(key, Timer::Idle { queue });
            return;
        }
        if let Some(q) = self.queues.remove(&queue) {
            self.memory -= q.records.capacity() + QUEUE_OVERHEAD + queue.len();
            self.totals.expired_queues += 1;
        }
    }

    /// Number of queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Messages held in all queues.
    pub fn message_count(&self) -> usize {
        self.messages
    }

    /// Payload bytes held in all queues.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Memory held, as counted against the cap.
    pub fn memory(&self) -> usize {
        self.memory
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
        self.queues.get(queue).map(|q| info(queue, q, now))
    }

    /// Every queue's figures, in no particular order.
    pub fn queue_infos(&self, now: Instant) -> impl Iterator<Item = (&str, QueueInfo)> + '_ {
        self.queues
            .iter()
            .map(move |(name, q)| (name, info(name, q, now)))
    }
}

fn info<W>(name: &str, q: &Queue<W>, now: Instant) -> QueueInfo {
    QueueInfo {
        messages: q.records.len() as u64,
        bytes: q.records.bytes() as u64,
        memory: (q.records.capacity() + QUEUE_OVERHEAD + name.len()) as u64,
        puts: q.puts,
        gets: q.gets,
        truncations: q.truncations,
        waiters: q.waiters.len() as u64,
        idle: now.saturating_duration_since(q.last_used),
    }
}

#[cfg(test)]
mod tests;
