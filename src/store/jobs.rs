//! The store's side of job messages: unique keys (protocol.md 18) and expiry (19). A
//! `PUT` with a key is not stored while another message of its queue holds the key,
//! or, asked to, replaces that message in place. A message with a time to live is
//! never delivered once it has expired: it is dropped or dead-lettered then. Such a
//! message lives in `held` for its whole stay (never in the FIFO chunks), so that it
//! can be changed or taken out in place, and its key and expiry released whichever
//! way it leaves.

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::journal::record::Record as LogRecord;
use crate::protocol::{Holder, PutOptions, Ttl, Unique};

use super::bodies::Payload;
use super::expiry::{EXPIRY_OVERHEAD, Expiry};
use super::held::{HELD_OVERHEAD, Held, HeldState};
use super::unique::{KeyCounts, KeyState, compound_len, key_memory};
use super::{Full, FullCap, PutOutcome, Store, own_len};

/// What a `PUT` with a key or a time to live did ([`Store::put_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPut<W> {
    /// No message held the key: stored as a new message (a parked consumer gets it
    /// as a handoff, see [`Store::take_handoff`]).
    New(PutOutcome<W>),
    /// Not stored: the message with this id holds the key, and stands as `Holder`
    /// says.
    Duplicate(Holder),
    /// The waiting message with this id now has the new payload, priority and delay.
    Replaced,
}

/// The unique key (with its window) and expiry of a message handed to a plain
/// consumer, kept in its [`super::Handoff`] so that a give-back restores them.
#[derive(Debug)]
pub(super) struct HandedJob {
    key: Option<(Box<[u8]>, u32)>,
    expiry: Option<Expiry>,
}

impl HandedJob {
    /// A handed message with no key and this expiry.
    pub(super) fn expiring(expiry: Expiry) -> HandedJob {
        HandedJob {
            key: None,
            expiry: Some(expiry),
        }
    }
}

impl<W: Copy + Eq + Hash + fmt::Debug> Store<W> {
    /// The key and expiry of held message `id`, about to be handed out; `None`
    /// if it has neither.
    pub(super) fn handed_job(&self, id: u64) -> Option<Box<HandedJob>> {
        let h = self.held.get(&id)?;
        if !h.keyed && !h.expires {
            return None;
        }
        let key = h
            .keyed
            .then(|| self.uniques.held_by(id))
            .flatten()
            .map(|(key, window)| (key.into(), window));
        let expiry = self.expiries.get(id).filter(|_| h.expires);
        Some(Box::new(HandedJob { key, expiry }))
    }

    /// A handed message came back (its consumer could not be written to): it
    /// holds its key again, unless another message took the key meanwhile, and it
    /// expires as before.
    pub(super) fn restore_job(&mut self, queue_key: usize, id: u64, job: HandedJob, now: Instant) {
        let Some(queue) = self.queues.by_key(queue_key).map(|q| q.name.clone()) else {
            return;
        };
        if let Some((key, window_ms)) = job.key {
            let free = match self.uniques.lookup(&queue, &key, now) {
                None => true,
                Some(KeyState::Remembered { id: was, .. }) => was == id,
                Some(KeyState::Held { .. }) => false,
            };
            if free {
                let unique = Unique {
                    key: &key,
                    replace: false,
                    window_ms,
                };
                self.take_key(id, &queue, unique);
            }
        }
        if job.expiry.is_some() {
            self.set_expiry(id, job.expiry);
        }
    }

    /// Caps the keys remembered after their message left (`BMAXUNIQUEKEYS`).
    pub fn set_max_remembered_keys(&mut self, max: usize) {
        self.uniques.set_max_remembered(max);
    }

    /// Keys held and remembered, for `STATS`.
    pub fn key_counts(&self) -> KeyCounts {
        self.uniques.counts()
    }

    /// Gives the messages of queue `name` that come without a time to live this one
    /// (`BQUEUETTL`); `name` "*" is every queue not named. Zero is none: a queue named
    /// with zero is exempt from "*".
    pub fn set_default_ttl(&mut self, name: &str, ttl: Duration) {
        self.default_ttls.insert(name.into(), ttl);
    }

    /// The time to live a message put on `queue` without one gets.
    pub(super) fn default_ttl(&self, queue: &str) -> Option<Duration> {
        if self.default_ttls.is_empty() {
            return None;
        }
        self.default_ttls
            .get(queue)
            .or_else(|| self.default_ttls.get("*"))
            .copied()
            .filter(|ttl| !ttl.is_zero())
    }

    /// Messages waiting to expire.
    pub fn expiring_count(&self) -> usize {
        self.expiries.len()
    }

    /// [`Store::put_with`] for a message with a unique key, a time to live, or both:
    /// returns the id of the new message, or of the one that holds the key, and what
    /// was done. Without `ttl`, the queue's default time to live applies; a `ttl` of
    /// 0 ms is none.
    ///
    /// # Errors
    /// [`Full`] when storing (or replacing) would pass the memory cap or a queue cap;
    /// nothing changes then.
    #[allow(clippy::too_many_arguments)]
    pub fn put_job(
        &mut self,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        unique: Option<Unique<'_>>,
        ttl: Option<Ttl>,
        now: Instant,
    ) -> Result<(u64, JobPut<W>), Full> {
        let expiry = match ttl {
            Some(ttl) => (ttl.ttl_ms > 0).then(|| Expiry {
                at: now + Duration::from_millis(u64::from(ttl.ttl_ms)),
                dead_letter: ttl.dead_letter,
            }),
            None => self.default_ttl(queue).map(|ttl| Expiry {
                at: now + ttl,
                dead_letter: false,
            }),
        };
        let Some(unique) = unique else {
            return self.put_new_job(queue, payload, original_len, options, None, expiry, now);
        };
        match self.uniques.lookup(queue, unique.key, now) {
            Some(KeyState::Held { id, .. }) => {
                if let Some(h) = self.held.get(&id) {
                    let holder = match h.state {
                        HeldState::Ready => Holder::Ready,
                        HeldState::Delayed => Holder::Delayed,
                        HeldState::InFlight => Holder::InFlight,
                    };
                    if unique.replace && holder != Holder::InFlight {
                        self.replace(id, payload, original_len, options, unique, expiry, now)?;
                        self.totals.replaced += 1;
                        return Ok((id, JobPut::Replaced));
                    }
                    self.totals.duplicates += 1;
                    return Ok((id, JobPut::Duplicate(holder)));
                }
                // A key outliving its message would be a bug; stored anew, the new
                // message takes the key over.
            }
            Some(KeyState::Remembered { id, .. }) => {
                self.totals.duplicates += 1;
                return Ok((id, JobPut::Duplicate(Holder::Gone)));
            }
            None => {}
        }
        self.put_new_job(
            queue,
            payload,
            original_len,
            options,
            Some(unique),
            expiry,
            now,
        )
    }

    /// Stores a new held message with its key and expiry.
    #[allow(clippy::too_many_arguments)]
    fn put_new_job(
        &mut self,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        unique: Option<Unique<'_>>,
        expiry: Option<Expiry>,
        now: Instant,
    ) -> Result<(u64, JobPut<W>), Full> {
        let truncated = u64::from(original_len > payload.len());
        let id = self.next_id + 1;
        let delayed = options.delay_ms > 0;
        let priority = options.priority;
        let existing = self.queues.key_of(queue);
        if (self.queue_max_messages | self.queue_max_bytes) != 0
            && let Some(full) = self.queue_cap_refusal(existing, payload.len())
        {
            return Err(full);
        }
        let key_cost = unique.map_or(0, |u| key_memory(compound_len(queue, u.key)));
        let expiry_cost = if expiry.is_some() { EXPIRY_OVERHEAD } else { 0 };
        let queue_cost = existing.map_or(super::QUEUE_OVERHEAD + queue.len(), |_| 0);
        self.check_room(queue_cost + HELD_OVERHEAD + payload.len() + key_cost + expiry_cost)?;
        let key = match existing {
            Some(key) => key,
            None => self.create_queue(queue, now),
        };
        let Some(q) = self.queues.by_key_mut(key) else {
            return Err(self.refuse());
        };
        self.next_id = id;
        q.last_used = now;
        q.counters.puts += 1;
        q.counters.truncations += truncated;
        self.totals.puts += 1;
        self.totals.truncations += truncated;
        if let Some(log) = &mut self.log {
            log.reserve_id(id);
        }
        let at = now + Duration::from_millis(u64::from(options.delay_ms));
        if let Some(log) = &mut self.log {
            let due_ms = if delayed { log.wall_ms(at) } else { 0 };
            log.put_new(key, id, due_ms, priority, payload);
        }
        self.messages += 1;
        self.bytes += payload.len();
        let state = if delayed {
            HeldState::Delayed
        } else {
            HeldState::Ready
        };
        self.insert_held(
            key,
            id,
            Held::waiting(
                Payload::Own(payload.into()),
                key,
                priority,
                (0, 0),
                state,
                at,
            ),
        );
        if let Some(unique) = unique {
            self.take_key(id, queue, unique);
        }
        if let Some(expiry) = expiry {
            self.set_expiry(id, Some(expiry));
        }
        if delayed {
            self.deadlines.insert((at, id));
        } else if let Some(q) = self.queues.by_key_mut(key) {
            q.fresh.insert((priority, id));
            // A parked consumer gets it as a handoff, which the server writes or
            // gives back: a keyed message is never handed over in the PUT itself.
            self.serve(key, now);
        }
        Ok((id, JobPut::New(PutOutcome::Stored)))
    }

    /// Gives held message `id` an expiry, or takes its expiry away, and logs it.
    pub(super) fn set_expiry(&mut self, id: u64, expiry: Option<Expiry>) {
        let Some(h) = self.held.get_mut(&id) else {
            return;
        };
        let had = std::mem::replace(&mut h.expires, expiry.is_some());
        match (had, expiry) {
            (false, Some(_)) => self.charge_outside(EXPIRY_OVERHEAD),
            (true, None) => self.uncharge_outside(EXPIRY_OVERHEAD),
            _ => {}
        }
        match expiry {
            Some(e) => self.expiries.insert(id, e),
            None => {
                self.expiries.remove(id);
            }
        }
        if let Some(log) = &mut self.log {
            let (at_ms, dead_letter) =
                expiry.map_or((0, false), |e| (log.wall_ms(e.at).max(1), e.dead_letter));
            log.push(&LogRecord::Expires {
                id,
                at_ms,
                dead_letter,
            });
        }
    }

    /// Message `id`, which had an expiry, left `held` (its queue, or for a dead
    /// letter or a `MOVE`, its time to live): forgets the expiry, and logs that.
    pub(super) fn drop_expiry(&mut self, id: u64) {
        if self.expiries.remove(id).is_some() {
            self.uncharge_outside(EXPIRY_OVERHEAD);
            if let Some(log) = &mut self.log {
                log.push(&LogRecord::Expires {
                    id,
                    at_ms: 0,
                    dead_letter: false,
                });
            }
        }
    }

    /// Runs the expiries due at `now`, at most `budget` of them; returns how many
    /// ran. A message in flight is left to its lease: it expires when the lease
    /// ends without an ACK ([`Store::end_lease`]).
    pub(super) fn run_expiries(&mut self, now: Instant, budget: usize) -> usize {
        let mut ran = 0;
        while ran < budget
            && let Some(id) = self.expiries.next_due(now)
        {
            ran += 1;
            let Some(h) = self.held.get(&id) else {
                self.drop_expiry(id);
                continue;
            };
            let (state, priority, key) = (h.state, h.priority, h.queue as usize);
            match state {
                HeldState::InFlight => {}
                HeldState::Ready => {
                    if let Some(q) = self.queues.by_key_mut(key) {
                        q.unready(priority, id);
                    }
                    self.expire_message(id, now);
                }
                HeldState::Delayed => self.expire_message(id, now),
            }
        }
        ran
    }

    /// Expires the messages at the front of queue `key` whose time to live has run
    /// out but whose turn in [`Store::expire`] has not come yet (later in this loop
    /// turn), so that no receive ever takes one. Costs one test while no message
    /// anywhere has a time to live.
    pub(super) fn drop_expired_front(&mut self, key: usize, now: Instant) {
        if self.expiries.len() == 0 {
            return;
        }
        while let Some(q) = self.queues.by_key_mut(key)
            && let Some(Ok((priority, id))) = q.front()
            && self.expiries.expired(id, now)
        {
            q.unready(priority, id);
            self.expire_message(id, now);
        }
    }

    /// Message `id` (held, in its queue's ready sets or timers no more) expired:
    /// dropped, or dead-lettered if its time to live said so. Counted either way.
    pub(super) fn expire_message(&mut self, id: u64, now: Instant) {
        let dead = self.expiries.get(id).is_some_and(|e| e.dead_letter);
        let Some(key) = self.held.get(&id).map(|h| h.queue as usize) else {
            return;
        };
        if let Some(q) = self.queues.by_key_mut(key) {
            q.counters.expired += 1;
        }
        self.totals.expired += 1;
        // Its key's window runs from when it expired, which a restart after downtime
        // (or a busy loop turn) comes to later.
        let expired_at = self.expiries.get(id).map_or(now, |e| e.at.min(now));
        if let Some(h) = self.held.get_mut(&id)
            && h.keyed
        {
            h.keyed = false;
            self.release_key(id, expired_at);
        }
        if dead {
            self.dead_letter(id, now);
            return;
        }
        if let Some(h) = self.remove_held(id, now) {
            if let Some(log) = &mut self.log {
                log.push(&LogRecord::Del { id });
            }
            self.discard(id, h.payload, false);
        }
        self.arm_idle_if_idle(key, now);
    }

    /// Gives held message `id` (just put) the key, and logs it.
    fn take_key(&mut self, id: u64, queue: &str, unique: Unique<'_>) {
        if let Some(h) = self.held.get_mut(&id) {
            h.keyed = true;
        }
        self.sync_key_memory(|u| u.hold(queue, unique.key, id, unique.window_ms));
        self.log_key(id, unique, queue, None);
    }

    /// Changes waiting (ready or delayed) message `id` into what this `PUT` says:
    /// its payload, priority, delay and window; its id, attempts and place among
    /// messages of its priority stay.
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &mut self,
        id: u64,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        unique: Unique<'_>,
        expiry: Option<Expiry>,
        now: Instant,
    ) -> Result<(), Full> {
        let Some(h) = self.held.get(&id) else {
            return Ok(());
        };
        let key = h.queue as usize;
        let old_memory = own_len(&h.payload);
        let old_len = self.bodies.bytes(&h.payload).len();
        let expiry_cost = if expiry.is_some() && !h.expires {
            EXPIRY_OVERHEAD
        } else {
            0
        };
        if payload.len() + expiry_cost > old_memory {
            self.check_room(payload.len() + expiry_cost - old_memory)?;
        }
        if self.queue_max_bytes > 0
            && let Some(q) = self.queues.by_key(key)
        {
            let bytes = q.ready.bytes() + q.held_bytes - old_len;
            if bytes + payload.len() > self.queue_max_bytes {
                self.totals.rejected_queue_full += 1;
                return Err(Full {
                    used: bytes + old_len,
                    limit: self.queue_max_bytes,
                    cap: FullCap::QueueBytes,
                });
            }
        }
        let Some(h) = self.held.get_mut(&id) else {
            return Ok(());
        };
        let (was, priority, deadline) = (h.state, h.priority, h.deadline);
        let delayed = options.delay_ms > 0;
        let at = now + Duration::from_millis(u64::from(options.delay_ms));
        h.payload = Payload::Own(payload.into());
        h.priority = options.priority;
        h.state = if delayed {
            HeldState::Delayed
        } else {
            HeldState::Ready
        };
        h.deadline = if delayed { at } else { now };
        let (attempt, charged) = (h.attempt, h.charged);
        self.memory = self.memory + payload.len() - old_memory;
        self.bytes = self.bytes + payload.len() - old_len;
        let truncated = u64::from(original_len > payload.len());
        self.totals.truncations += truncated;
        if let Some(q) = self.queues.by_key_mut(key) {
            q.held_memory = q.held_memory + payload.len() - old_memory;
            q.held_bytes = q.held_bytes + payload.len() - old_len;
            q.counters.truncations += truncated;
            q.last_used = now;
            match was {
                HeldState::Ready => q.unready(priority, id),
                HeldState::Delayed => q.delayed -= 1,
                HeldState::InFlight => {}
            }
            q.delayed += usize::from(delayed);
            if !delayed {
                if attempt > 0 {
                    q.returned.insert((options.priority, id));
                } else {
                    q.fresh.insert((options.priority, id));
                }
            }
        }
        if was == HeldState::Delayed {
            self.deadlines.remove(&(deadline, id));
            self.delayed -= 1;
        }
        if delayed {
            self.deadlines.insert((at, id));
            self.delayed += 1;
        }
        self.uniques.set_window(id, unique.window_ms);
        let had_expiry = self.held.get(&id).is_some_and(|h| h.expires);
        if let Some(log) = &mut self.log {
            // A PUT restates the whole message (STORAGE.md); its key follows.
            let due_ms = if delayed { log.wall_ms(at) } else { 0 };
            log.push(&LogRecord::Put {
                queue: key as u32,
                id,
                due_ms,
                priority: options.priority,
                attempt,
                charged,
                payload,
            });
        }
        let queue = self.queues.by_key(key).map(|q| q.name.clone());
        if let Some(queue) = queue {
            self.log_key(id, unique, &queue, None);
        }
        // The PUT restated the message without an expiry: its own (or none) follows.
        if expiry.is_some() || had_expiry {
            self.set_expiry(id, expiry);
        }
        if !delayed {
            self.serve(key, now);
        }
        Ok(())
    }

    /// Message `id`, which holds a key, left its queue at `now`: the key is
    /// forgotten, or remembered for its window; logged either way.
    pub(super) fn release_key(&mut self, id: u64, now: Instant) {
        let until = self.sync_key_memory(|u| u.release(id, now));
        let Some(until) = until else {
            return;
        };
        let Some(log) = &mut self.log else {
            return;
        };
        match until {
            None => log.push(&LogRecord::Unkey { id }),
            Some(until) => {
                let until_ms = log.wall_ms(until).max(1);
                match self.uniques.name_of(id) {
                    Some((queue, key)) => log.push(&LogRecord::Key {
                        id,
                        window_ms: 0,
                        until_ms,
                        queue,
                        key,
                    }),
                    // The cap forgot it at once (its window ends first).
                    None => log.push(&LogRecord::Unkey { id }),
                }
            }
        }
    }

    /// Forgets the remembered keys whose window has ended, at most
    /// [`super::EXPIRE_BUDGET`] (the rest stay due: the next turn comes at once).
    pub(super) fn expire_keys(&mut self, now: Instant) {
        self.sync_key_memory(|u| u.expire(now, super::EXPIRE_BUDGET));
    }

    fn charge_outside(&mut self, bytes: usize) {
        self.memory += bytes;
        self.outside += bytes;
    }

    fn uncharge_outside(&mut self, bytes: usize) {
        self.memory -= bytes;
        self.outside -= bytes;
    }

    /// Runs `f` on the key index and charges (or frees) the memory it changed.
    pub(super) fn sync_key_memory<R>(
        &mut self,
        f: impl FnOnce(&mut super::unique::Uniques) -> R,
    ) -> R {
        let before = self.uniques.memory();
        let result = f(&mut self.uniques);
        let after = self.uniques.memory();
        self.memory = self.memory + after - before;
        self.outside = self.outside + after - before;
        result
    }

    fn log_key(&mut self, id: u64, unique: Unique<'_>, queue: &str, until: Option<Instant>) {
        if let Some(log) = &mut self.log {
            let until_ms = until.map_or(0, |at| log.wall_ms(at).max(1));
            log.push(&LogRecord::Key {
                id,
                window_ms: unique.window_ms,
                until_ms,
                queue,
                key: unique.key,
            });
        }
    }
}
