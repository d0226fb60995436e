//! The store and the journal: switching the change log on, taking its records,
//! writing a snapshot of everything held (the base of a rewritten journal), and
//! loading what a journal replay recovered.

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::journal::record::Record;
use crate::journal::replay::{Recovered, RecoveredKey, RecoveredMessage};
use crate::protocol::{MAX_QUEUE_NAME, NEVER_DEAD};

use super::bodies::Payload;
use super::expiry::{EXPIRY_OVERHEAD, Expiry};
use super::held::{Held, HeldState};
use super::idhash::IdMap;
use super::log::StoreLog;
use super::records::Body;
use super::{DEAD_SUFFIX, Store};

/// What [`Store::restore`] loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// Queues with messages.
    pub queues: usize,
    /// Messages, in every state.
    pub messages: usize,
    /// Messages that were in flight: ready again, that delivery charged.
    pub leases_returned: usize,
    /// Of those, the ones that had used their last delivery: dead-lettered.
    pub dead_lettered: usize,
    /// Schedules.
    pub schedules: usize,
    /// Schedules that could not be loaded, each with the reason.
    pub skipped_schedules: Vec<String>,
    /// Unique keys, held and remembered.
    pub keys: usize,
    /// Messages whose time to live ran out while the server was down: dropped or
    /// dead-lettered at start.
    pub expired: usize,
}

impl<W: Copy + Eq + Hash + fmt::Debug> Store<W> {
    /// Starts recording every change as journal records, with `now` going with unix
    /// time `wall_ms`. Nothing is recorded for what the store already holds: write a
    /// [`Store::snapshot`] for that.
    pub fn enable_log(&mut self, now: Instant, wall_ms: u64) {
        self.log = Some(StoreLog::new(now, wall_ms));
    }

    /// Whether changes are being recorded.
    pub fn logs(&self) -> bool {
        self.log.is_some()
    }

    /// Tells the log which unix time (ms) goes with the monotonic `now`; call once per
    /// loop turn, before the store is used with that `now`.
    pub fn set_log_clock(&mut self, now: Instant, wall_ms: u64) {
        if let Some(log) = &mut self.log {
            log.set_clock(now, wall_ms);
        }
    }

    /// Log position after the last record made (0 when not logging): bytes of records
    /// ever made, including those already taken.
    pub fn log_position(&self) -> u64 {
        self.log.as_ref().map_or(0, StoreLog::position)
    }

    /// Whether records are waiting to be taken.
    pub fn log_pending(&self) -> bool {
        self.log.as_ref().is_some_and(|l| !l.is_empty())
    }

    /// Moves the records made since the last call to the end of `out`.
    pub fn take_log(&mut self, out: &mut Vec<u8>) {
        if let Some(log) = &mut self.log {
            log.take(out);
        }
    }

    /// Loads what a journal replay recovered into this (empty) store. `wall_ms` is
    /// the unix time that goes with `now`: a
    /// message due before it is ready at once, a later one is delayed until its time.
    /// Messages that were in flight when the server stopped without returning them (a
    /// crash) are ready again and that delivery is charged, as when a consumer's
    /// connection closes; one that used its last delivery is dead-lettered. The memory
    /// cap is not checked: everything on disk is loaded.
    ///
    /// With the log on ([`Store::enable_log`] first), what this changes is logged: the
    /// queues, bound to their numbers here, and the leases it ended; so the journal
    /// files loaded stay valid, followed by the new records.
    pub fn restore(&mut self, recovered: Recovered, now: Instant, wall_ms: u64) -> Restored {
        let mut restored = Restored::default();
        // Bodies made so far, by a hash of (subject, payload).
        let mut shared = IdMap::default();
        self.next_id = self.next_id.max(recovered.next_id.saturating_sub(1));
        // Messages that hold a key, by id, with their key's queue: they are placed in
        // `held` (protocol.md 18), not at the end of the queue.
        let key_queues: IdMap<u64, &str> = recovered
            .keys
            .iter()
            .filter(|k| k.until_ms == 0)
            .map(|k| (k.id, k.queue.as_str()))
            .collect();
        let mut keyed: IdMap<u64, ()> = IdMap::default();
        for rq in recovered.queues {
            restored.queues += 1;
            let key = self.queue_key_or_create(&rq.name, now);
            if rq.name.ends_with(DEAD_SUFFIX)
                && let Some(q) = self.queues.by_key_mut(key)
            {
                q.keep = true;
            }
            // Messages that wait at the end of the queue go back in their order;
            // those whose delay ran out while the server was down come after them,
            // by due time (they became ready after every record was written).
            let mut fifo = Vec::new();
            let mut came_due = Vec::new();
            for mut m in rq.messages {
                restored.messages += 1;
                self.messages += 1;
                self.bytes += m.payload.len();
                let payload = self.restored_payload(&mut m, &mut shared);
                let id = m.id;
                let holds_key = key_queues.get(&id).is_some_and(|q| *q == rq.name);
                let expires = m.expires;
                if holds_key || expires.is_some() {
                    self.restore_keyed(key, m, payload, now, wall_ms, &mut restored);
                    let home = self.held.get(&id).is_some_and(|h| h.queue as usize == key);
                    if holds_key
                        && home
                        && let Some(h) = self.held.get_mut(&id)
                    {
                        h.keyed = true;
                        keyed.insert(id, ());
                    }
                    if let Some((at_ms, dead_letter)) = expires {
                        self.restore_expiry(id, home, at_ms, dead_letter, now, wall_ms);
                    }
                } else if let Some(max_deliveries) = m.in_flight {
                    restored.leases_returned += 1;
                    let name = &rq.name;
                    self.restore_lease(name, key, m, payload, max_deliveries, now, &mut restored);
                } else if m.due_ms > wall_ms {
                    let at = now + Duration::from_millis(m.due_ms - wall_ms);
                    self.hold_restored(key, m, payload, HeldState::Delayed, at);
                } else if m.due_ms != 0 && m.attempt == 0 {
                    came_due.push((m, payload));
                } else if let Some(order) = m.order {
                    fifo.push((order, (m, payload)));
                } else {
                    self.hold_restored(key, m, payload, HeldState::Ready, now);
                }
            }
            fifo.sort_unstable_by_key(|(order, _)| *order);
            came_due.sort_unstable_by_key(|(m, _)| (m.due_ms, m.id));
            for (m, _) in &came_due {
                // Their place, at the end, is new: recorded for the next start.
                self.log_record(&Record::Requeue {
                    id: m.id,
                    attempt: 0,
                    charged: m.charged,
                    due_ms: 0,
                });
            }
            let fifo = fifo.into_iter().map(|(_, m)| m).chain(came_due);
            if let Some(q) = self.queues.by_key_mut(key) {
                for (m, payload) in fifo {
                    let body = super::record_body(&self.bodies, &payload);
                    self.memory += q.ready.push_body(m.priority, m.id, m.attempt, body);
                }
            }
        }
        let before = self.binding_memory();
        for b in recovered.bindings {
            let key = self.queue_key_or_create(&b.queue, now);
            if self.bindings.insert(&b.pattern, key as u64)
                && let Some(q) = self.queues.by_key_mut(key)
            {
                q.bindings += 1;
            }
        }
        let cost = self.binding_memory() - before;
        self.memory += cost;
        self.outside += cost;
        (restored.schedules, restored.skipped_schedules) =
            self.restore_schedules(recovered.schedules);
        restored.keys = self.restore_keys(&recovered.keys, &keyed, now, wall_ms);
        // Whatever expired while the server was down goes before anyone can take it.
        restored.expired = self.run_expiries(now, usize::MAX);
        restored
    }

    /// Gives a restored message its expiry (at once, if its time passed while the
    /// server was down), if it is still `home` in its queue; a message dead-lettered
    /// by the restore loses it, and that is logged.
    fn restore_expiry(
        &mut self,
        id: u64,
        home: bool,
        at_ms: u64,
        dead_letter: bool,
        now: Instant,
        wall_ms: u64,
    ) {
        if !home {
            self.log_record(&Record::Expires {
                id,
                at_ms: 0,
                dead_letter: false,
            });
            return;
        }
        let Some(h) = self.held.get_mut(&id) else {
            return;
        };
        h.expires = true;
        // A clock set back must not make a time to live longer than any PUT could ask.
        let left = at_ms
            .saturating_sub(wall_ms)
            .min(u64::from(crate::protocol::MAX_TTL_MS));
        // One that expired while the server was down keeps its time in the past (as
        // far as the monotonic clock reaches back): its key's window runs from then.
        let at = if at_ms >= wall_ms {
            now + Duration::from_millis(left)
        } else {
            now.checked_sub(Duration::from_millis(wall_ms - at_ms))
                .unwrap_or(now)
        };
        self.expiries.insert(id, Expiry { at, dead_letter });
        self.memory += EXPIRY_OVERHEAD;
        self.outside += EXPIRY_OVERHEAD;
    }

    /// Places a recovered message that holds a key in `held`: delayed, in flight
    /// (returned as [`Store::restore_lease`] says), or ready in its queue's `fresh`
    /// (never delivered) or `returned` set.
    fn restore_keyed(
        &mut self,
        key: usize,
        m: RecoveredMessage,
        payload: Payload,
        now: Instant,
        wall_ms: u64,
        restored: &mut Restored,
    ) {
        let (id, priority, attempt) = (m.id, m.priority, m.attempt);
        let expired = m.expires.is_some_and(|(at_ms, _)| at_ms <= wall_ms);
        if m.in_flight.is_some() && expired {
            // Its lease ended with the server after its time to live: it expires at
            // start, as a lease ending then would have made it, and that delivery is
            // not charged (nor can it dead-letter it).
            restored.leases_returned += 1;
            self.log_record(&Record::Requeue {
                id,
                attempt,
                charged: m.charged,
                due_ms: 0,
            });
            self.hold_restored(key, m, payload, HeldState::Ready, now);
        } else if let Some(max_deliveries) = m.in_flight {
            restored.leases_returned += 1;
            let name = self.queues.by_key(key).map(|q| q.name.to_string());
            let name = name.unwrap_or_default();
            self.restore_lease(&name, key, m, payload, max_deliveries, now, restored);
        } else if m.due_ms > wall_ms {
            let at = now + Duration::from_millis(m.due_ms - wall_ms);
            self.hold_restored(key, m, payload, HeldState::Delayed, at);
        } else {
            self.hold_restored(key, m, payload, HeldState::Ready, now);
            if attempt == 0
                && let Some(q) = self.queues.by_key_mut(key)
            {
                q.returned.remove(&(priority, id));
                q.fresh.insert((priority, id));
            }
        }
    }

    /// Loads the unique keys: a held one if its message was placed as keyed, a
    /// remembered one if its window has not ended. Returns how many were loaded.
    fn restore_keys(
        &mut self,
        keys: &[RecoveredKey],
        keyed: &IdMap<u64, ()>,
        now: Instant,
        wall_ms: u64,
    ) -> usize {
        // A clock set back must not make a window longer than any PUT could ask.
        let longest = u64::from(crate::protocol::MAX_WINDOW_MS);
        let mut loaded = 0;
        for k in keys {
            if k.until_ms == 0 && keyed.contains_key(&k.id) {
                self.sync_key_memory(|u| u.hold(&k.queue, &k.key, k.id, k.window_ms));
            } else if k.until_ms == 0 {
                // Its message left its queue now (dead-lettered by this restore): the
                // key is released as it would have been then, and that is logged.
                if k.window_ms == 0 {
                    self.log_record(&Record::Unkey { id: k.id });
                    continue;
                }
                let until = now + Duration::from_millis(u64::from(k.window_ms));
                self.sync_key_memory(|u| u.remember(&k.queue, &k.key, k.id, until));
                let until_ms = wall_ms + u64::from(k.window_ms);
                self.log_record(&Record::Key {
                    id: k.id,
                    window_ms: 0,
                    until_ms,
                    queue: &k.queue,
                    key: &k.key,
                });
            } else if k.until_ms > wall_ms {
                let left = (k.until_ms - wall_ms).min(longest);
                let until = now + Duration::from_millis(left);
                self.sync_key_memory(|u| u.remember(&k.queue, &k.key, k.id, until));
            } else {
                continue;
            }
            loaded += 1;
        }
        // A message placed as keyed whose key a later message took over holds none.
        for id in keyed.keys() {
            if self.uniques.name_of(*id).is_none()
                && let Some(h) = self.held.get_mut(id)
            {
                h.keyed = false;
            }
        }
        loaded
    }

    /// The payload a recovered message is loaded with: its own bytes, or, for a
    /// published copy, a shared body with its subject; copies with the same subject
    /// and payload share one body again, as they did before the restart.
    fn restored_payload(
        &mut self,
        m: &mut RecoveredMessage,
        shared: &mut IdMap<u64, u32>,
    ) -> Payload {
        let payload = std::mem::take(&mut m.payload);
        let Some(subject) = m.subject.take() else {
            return Payload::Own(payload);
        };
        let hash = fnv1a(subject.as_bytes(), &payload);
        if let Some(&key) = shared.get(&hash)
            && self
                .bodies
                .get(key)
                .is_some_and(|b| *b.subject == *subject && *b.payload == *payload)
        {
            self.bodies.retain(key);
            return Payload::Shared(key);
        }
        if !self.bodies.has_room() {
            return Payload::Own(payload);
        }
        let (key, cost) = self.bodies.insert(&payload, &subject, 0, 0, 1);
        self.memory += cost;
        self.outside += cost;
        shared.insert(hash, key);
        Payload::Shared(key)
    }

    /// A message that was in flight when the server stopped: that delivery is
    /// charged, as when a consumer's connection closes; it is returned, or
    /// dead-lettered if that was its last delivery. The change is logged.
    #[allow(clippy::too_many_arguments)]
    fn restore_lease(
        &mut self,
        name: &str,
        key: usize,
        mut m: RecoveredMessage,
        payload: Payload,
        max_deliveries: u16,
        now: Instant,
        restored: &mut Restored,
    ) {
        m.charged = m.charged.saturating_add(1);
        if max_deliveries == NEVER_DEAD || m.charged < max_deliveries {
            self.log_record(&Record::Requeue {
                id: m.id,
                attempt: m.attempt,
                charged: m.charged,
                due_ms: 0,
            });
            self.hold_restored(key, m, payload, HeldState::Ready, now);
            return;
        }
        restored.dead_lettered += 1;
        self.totals.dead_lettered += 1;
        let dead = format!("{name}{DEAD_SUFFIX}");
        if dead.len() > MAX_QUEUE_NAME {
            self.totals.dead_dropped += 1;
            self.messages -= 1;
            self.bytes -= self.bodies.bytes(&payload).len();
            self.log_record(&Record::Del { id: m.id });
            self.discard(m.id, payload, false);
            return;
        }
        let home = self.queue_key_or_create(&dead, now);
        self.log_record(&Record::Move {
            id: m.id,
            queue: home as u32,
            attempt: m.attempt,
            charged: 0,
        });
        self.log_record(&Record::Requeue {
            id: m.id,
            attempt: m.attempt,
            charged: 0,
            due_ms: 0,
        });
        if let Some(q) = self.queues.by_key_mut(home) {
            q.keep = true;
        }
        m.charged = 0;
        self.hold_restored(home, m, payload, HeldState::Ready, now);
    }

    /// Adds a recovered message to `held`: delayed until `at`, or ready with the
    /// returned ones (its queue's `returned` set).
    fn hold_restored(
        &mut self,
        key: usize,
        m: RecoveredMessage,
        payload: Payload,
        state: HeldState,
        at: Instant,
    ) {
        let (id, priority) = (m.id, m.priority);
        self.insert_held(
            key,
            id,
            Held::waiting(payload, key, priority, (m.attempt, m.charged), state, at),
        );
        match state {
            HeldState::Delayed => {
                self.deadlines.insert((at, id));
            }
            HeldState::Ready | HeldState::InFlight => {
                if let Some(q) = self.queues.by_key_mut(key) {
                    q.returned.insert((priority, id));
                }
            }
        }
    }

    fn log_record(&mut self, record: &Record<'_>) {
        if let Some(log) = &mut self.log {
            log.push(record);
        }
    }

    /// Returns every message in flight to its queue without charging the delivery
    /// (the server is stopping: leases do not outlive it, and it is not the
    /// consumer's failure).
    pub fn return_leases(&mut self, now: Instant) {
        let ids: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, h)| h.state == HeldState::InFlight)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.end_lease(id, false, None, now);
        }
    }

    /// Appends a QUEUE record for every queue (its slab key is its number in the
    /// journal): how each new journal segment starts.
    pub fn encode_queues(&self, out: &mut Vec<u8>) {
        for (key, q) in self.queues.entries() {
            crate::journal::record::encode(
                &Record::Queue {
                    queue: key as u32,
                    name: &q.name,
                },
                out,
            );
        }
    }

    /// Appends records that rebuild everything the store holds to `out`: every queue
    /// with a message (numbered by its slab key, as later records will number it),
    /// every message with its state, the leases in flight, and the ids in use. Records
    /// made after this call, replayed on top of it, give the store's state then.
    pub fn snapshot(&mut self, out: &mut Vec<u8>) {
        let Some(log) = &mut self.log else {
            return;
        };
        let mut enc = |r: &Record<'_>| crate::journal::record::encode(r, out);
        // The first message written of each shared body: the others are COPYs of it.
        let mut written: IdMap<u64, u64> = IdMap::default();
        for (key, q) in self.queues.entries() {
            // Every queue, even an empty one: later records may name it by number.
            enc(&Record::Queue {
                queue: key as u32,
                name: &q.name,
            });
            // In queue order: replay places them in the order of their records.
            for priority in q.ready.priorities() {
                for r in q.ready.iter_level(priority) {
                    let body = match r.body {
                        Body::Shared { key, .. } => Some(key),
                        Body::Inline(_) => None,
                    };
                    put_or_copy(
                        &mut enc,
                        &self.bodies,
                        &mut written,
                        Record::Put {
                            queue: key as u32,
                            id: r.id,
                            due_ms: 0,
                            priority,
                            attempt: r.attempt,
                            charged: 0,
                            payload: super::body_bytes(&self.bodies, r.body),
                        },
                        body,
                    );
                    if r.attempt > 0 {
                        // Delivered before, but at the end of the queue (moved or
                        // dead-lettered): a PUT alone would put it with the returned.
                        enc(&Record::Move {
                            id: r.id,
                            queue: key as u32,
                            attempt: r.attempt,
                            charged: 0,
                        });
                    }
                }
            }
        }
        for (&id, h) in self.held.iter() {
            let due_ms = match h.state {
                HeldState::Delayed => log.wall_ms(h.deadline),
                HeldState::Ready | HeldState::InFlight => 0,
            };
            let body = match h.payload {
                Payload::Shared(key) => Some(key),
                Payload::Own(_) => None,
            };
            put_or_copy(
                &mut enc,
                &self.bodies,
                &mut written,
                Record::Put {
                    queue: h.queue,
                    id,
                    due_ms,
                    priority: h.priority,
                    attempt: h.attempt,
                    charged: h.charged,
                    payload: self.bodies.bytes(&h.payload),
                },
                body,
            );
            if h.state == HeldState::InFlight {
                enc(&Record::Leased {
                    id,
                    attempt: h.attempt,
                    max_deliveries: h.max_deliveries,
                });
            }
        }
        for (pattern, &queue) in self.bindings.iter() {
            enc(&Record::Bind {
                queue: queue as u32,
                pattern: &pattern,
            });
        }
        super::schedules::snapshot(&self.schedules, &mut enc);
        for (id, e) in self.expiries.iter() {
            enc(&Record::Expires {
                id,
                at_ms: log.wall_ms(e.at).max(1),
                dead_letter: e.dead_letter,
            });
        }
        for (queue, key, state) in self.uniques.iter() {
            let (id, window_ms, until_ms) = match state {
                super::unique::KeyState::Held { id, window_ms } => (id, window_ms, 0),
                super::unique::KeyState::Remembered { id, until } => {
                    (id, 0, log.wall_ms(until).max(1))
                }
            };
            enc(&Record::Key {
                id,
                window_ms,
                until_ms,
                queue,
                key,
            });
        }
        // Ids up to the next one are in use; the log reserves a new block after it.
        log.restart_ids(self.next_id + 1);
        enc(&Record::Ids {
            next: self.next_id + 1,
        });
    }
}

/// FNV-1a of a subject and a payload: finds the copies of one publish among the
/// messages a restart loads (equal bodies are compared before they are shared).
fn fnv1a(subject: &[u8], payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in subject.iter().chain([0xFF].iter()).chain(payload) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Writes a message of a snapshot: `put` as it is, with its SUBJECT, for a message
/// of its own or the first of a shared body; a COPY of that first one for the
/// others, so that a shared payload is written once.
fn put_or_copy(
    enc: &mut impl FnMut(&Record<'_>),
    bodies: &super::bodies::Bodies,
    written: &mut IdMap<u64, u64>,
    put: Record<'_>,
    body: Option<u32>,
) {
    let Record::Put {
        queue,
        id,
        due_ms,
        priority,
        attempt,
        charged,
        ..
    } = put
    else {
        return;
    };
    let Some(body) = body else {
        return enc(&put);
    };
    if let Some(&of) = written.get(&u64::from(body)) {
        return enc(&Record::Copy {
            queue,
            id,
            due_ms,
            priority,
            attempt,
            charged,
            of,
        });
    }
    enc(&put);
    if let Some(b) = bodies.get(body) {
        enc(&Record::Subject {
            id,
            subject: &b.subject,
        });
    }
    written.insert(u64::from(body), id);
}
