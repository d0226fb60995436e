//! Bindings of subject patterns onto queues, and publishing: one message copied into
//! every queue whose bindings match its subject, exactly once per queue, sharing one
//! payload between the copies (see `bodies`).
//!
//! A bound queue is never idle-expired, so its slab key, which the bindings name it
//! by, stays its own while it is bound.

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::journal::record::Record as LogRecord;
use crate::protocol::{LeaseRef, PutOptions};

use super::bodies::{Bodies, Payload};
use super::held::{HELD_OVERHEAD, Held, HeldState};
use super::records::Body;
use super::{Full, QUEUE_OVERHEAD, Store};

/// Memory charged per binding: its target entry in the trie and the queue's count.
pub const BINDING_OVERHEAD: usize = 64;
/// Memory charged per node of a pattern trie (64-byte nodes, tokens longer than 22
/// bytes in their own allocation, the map of a node with many children: about 110
/// bytes of RSS per node measured at 100,000 bindings, see BENCHMARKS.md).
pub const TRIE_NODE_MEMORY: usize = 128;

/// Memory a trie holding `bindings` bindings in `nodes` nodes is charged.
pub fn trie_memory(bindings: usize, nodes: usize) -> usize {
    bindings * BINDING_OVERHEAD + nodes * TRIE_NODE_MEMORY
}

/// A copy a publish handed straight to a consumer parked on its queue; the caller
/// writes it to `waiter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<W> {
    /// The consumer.
    pub waiter: W,
    /// Its queue's key, the copy's priority and confirmation, to put the copy back
    /// if it cannot be written ([`Store::put_back_copy`]).
    queue: u32,
    priority: u8,
    confirm: u64,
    /// The copy's id.
    pub id: u64,
    /// The lease it is under, for a parked `LEASE`; `None` for a plain `GET` (the
    /// copy has left the store: the caller has its payload).
    pub lease: Option<LeaseRef>,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Queues that got a copy.
    pub queues: u32,
    /// Id of the first copy; the others follow it one by one.
    pub first_id: u64,
}

impl<W: Copy + Eq + Hash + fmt::Debug> Store<W> {
    /// Binds `pattern` (already checked) to `queue`, creating the queue; returns
    /// whether the binding is new. A bound queue is never idle-expired.
    ///
    /// # Errors
    /// [`Full`] when the binding (or the new queue) would pass the memory cap.
    pub fn bind(&mut self, pattern: &str, queue: &str, now: Instant) -> Result<bool, Full> {
        let before = self.binding_memory();
        let (key, created) = match self.queues.key_of(queue) {
            Some(key) => (key, false),
            None => {
                self.check_room(QUEUE_OVERHEAD + queue.len())?;
                (self.create_queue(queue, now), true)
            }
        };
        if !self.bindings.insert(pattern, key as u64) {
            return Ok(false);
        }
        let cost = self.binding_memory() - before;
        if let Err(full) = self.check_room(cost) {
            self.bindings.remove(pattern, &(key as u64));
            if created {
                self.arm_idle_if_idle(key, now);
            }
            return Err(full);
        }
        self.memory += cost;
        self.outside += cost;
        if let Some(q) = self.queues.by_key_mut(key) {
            q.bindings += 1;
            q.last_used = now;
        }
        if let Some(log) = &mut self.log {
            log.push(&LogRecord::Bind {
                queue: key as u32,
                pattern,
            });
        }
        Ok(true)
    }

    /// Removes the binding of `pattern` to `queue`; returns whether there was one.
    /// The queue may be idle-expired again once it has no binding left.
    pub fn unbind(&mut self, pattern: &str, queue: &str, now: Instant) -> bool {
        let Some(key) = self.queues.key_of(queue) else {
            return false;
        };
        let before = self.binding_memory();
        if !self.bindings.remove(pattern, &(key as u64)) {
            return false;
        }
        let freed = before - self.binding_memory();
        self.memory -= freed;
        self.outside -= freed;
        if let Some(q) = self.queues.by_key_mut(key) {
            q.bindings = q.bindings.saturating_sub(1);
            q.last_used = now;
        }
        if let Some(log) = &mut self.log {
            log.push(&LogRecord::Unbind {
                queue: key as u32,
                pattern,
            });
        }
        self.arm_idle_if_idle(key, now);
        true
    }

    /// What the bindings are charged now.
    pub(super) fn binding_memory(&self) -> usize {
        trie_memory(self.bindings.len(), self.bindings.node_count())
    }

    /// Bindings held, all queues.
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// Every binding as (pattern, queue name), in no particular order.
    pub fn bindings(&self) -> Vec<(String, &str)> {
        self.bindings
            .iter()
            .filter_map(|(pattern, key)| {
                let q = self.queues.by_key(*key as usize)?;
                Some((pattern, &*q.name))
            })
            .collect()
    }

    /// How many queues a publish to `subject` would copy into.
    pub fn route_count(&mut self, subject: &str) -> usize {
        let mut targets = std::mem::take(&mut self.route_scratch);
        self.bindings.matches_into(subject, &mut targets);
        let n = targets.len();
        self.route_scratch = targets;
        n
    }

    /// Copies a message into every queue bound to a pattern matching `subject`, once
    /// per queue; the copies share one payload. A copy goes straight to a consumer
    /// parked on its queue if there is one (pushed to `handed`, which is cleared
    /// first), else it is stored like a `PUT` with `options`. `reply_to` and
    /// `confirm` (0 for none) travel with the copies.
    ///
    /// # Errors
    /// [`Full`] when storing the copies would pass the memory cap: then no queue gets
    /// one.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        subject: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        reply_to: u64,
        confirm: u64,
        now: Instant,
        handed: &mut Vec<Delivery<W>>,
    ) -> Result<Published, Full> {
        handed.clear();
        let mut targets = std::mem::take(&mut self.route_scratch);
        self.bindings.matches_into(subject, &mut targets);
        let result = self.publish_to(
            &targets,
            subject,
            payload,
            original_len,
            options,
            reply_to,
            confirm,
            now,
            handed,
        );
        self.route_scratch = targets;
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn publish_to(
        &mut self,
        targets: &[u64],
        subject: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        reply_to: u64,
        confirm: u64,
        now: Instant,
        handed: &mut Vec<Delivery<W>>,
    ) -> Result<Published, Full> {
        if targets.is_empty() {
            return Ok(Published {
                queues: 0,
                first_id: self.next_id + 1,
            });
        }
        let delayed = options.delay_ms > 0;
        // A queue at its cap refuses the whole publish, as the memory cap does.
        if (self.queue_max_messages | self.queue_max_bytes) != 0 {
            for &key in targets {
                if let Some(full) = self.queue_cap_refusal(Some(key as usize), payload.len()) {
                    return Err(full);
                }
            }
        }
        // First the whole cost, so that a refusal changes nothing anywhere.
        let mut growth = 0;
        let mut holders = 0u32;
        for (i, &key) in targets.iter().enumerate() {
            let Some(q) = self.queues.by_key(key as usize) else {
                continue;
            };
            let expires = self.default_ttl(&q.name).is_some();
            match q.waiters.front() {
                Some(w) if !delayed => holders += u32::from(w.lease.is_some()),
                _ => {
                    holders += 1;
                    growth += if expires {
                        HELD_OVERHEAD + super::EXPIRY_OVERHEAD
                    } else if delayed {
                        HELD_OVERHEAD
                    } else {
                        q.ready
                            .growth_for_shared(options.priority, self.next_id + 1 + i as u64, 0)
                    };
                }
            }
        }
        if holders > 0 {
            growth += Bodies::cost(payload.len(), subject.len());
            if !self.bodies.has_room() {
                return Err(self.refuse());
            }
        }
        if self.memory + growth > self.max_memory {
            return Err(self.refuse());
        }
        let body = (holders > 0).then(|| {
            let (key, cost) = self
                .bodies
                .insert(payload, subject, reply_to, confirm, holders);
            self.memory += cost;
            self.outside += cost;
            key
        });
        let truncated = u64::from(original_len > payload.len());
        let due = delayed.then(|| now + Duration::from_millis(u64::from(options.delay_ms)));
        let mut copies = 0;
        let first_id = self.next_id + 1;
        // Copies taken by plain GETs at once: their DELs go after every copy's
        // record, so that the first copy is there for the others to point at.
        let mut taken = Vec::new();
        for &key in targets {
            let key = key as usize;
            let Some(q) = self.queues.by_key_mut(key) else {
                continue;
            };
            let id = self.next_id + 1;
            self.next_id = id;
            copies += 1;
            q.last_used = now;
            q.counters.puts += 1;
            q.counters.truncations += truncated;
            self.totals.puts += 1;
            self.totals.truncations += truncated;
            let waiter = if delayed { None } else { q.waiters.pop_front() };
            if let Some(log) = &mut self.log {
                log.reserve_id(id);
                let due_ms = due.map_or(0, |at| log.wall_ms(at));
                if id == first_id {
                    log.put_new(key, id, due_ms, options.priority, payload);
                    log.push(&LogRecord::Subject { id, subject });
                } else {
                    // The payload is on disk once: the other copies point at the
                    // first, which stays until every record of this publish is in.
                    log.push(&LogRecord::Copy {
                        queue: key as u32,
                        id,
                        due_ms,
                        priority: options.priority,
                        attempt: 0,
                        charged: 0,
                        of: first_id,
                    });
                }
            }
            match waiter {
                Some(waiter) => {
                    if let Some(timer) = waiter.timer {
                        self.timers.remove(&timer);
                    }
                    if let Some(q) = self.queues.by_key_mut(key) {
                        q.counters.gets += 1;
                    }
                    self.totals.gets += 1;
                    let lease = match (waiter.lease, body) {
                        (Some(spec), Some(body)) => {
                            let lease = self.hold(
                                key,
                                id,
                                0,
                                options.priority,
                                Payload::Shared(body),
                                waiter.handle,
                                spec,
                                now,
                            );
                            // In flight, it keeps its queue's time to live: a NACK
                            // after it must not give it out again (protocol.md 19.3).
                            let ttl = self
                                .queues
                                .by_key(key)
                                .and_then(|q| self.default_ttl(&q.name));
                            if let Some(ttl) = ttl {
                                let expiry = super::expiry::Expiry {
                                    at: now + ttl,
                                    dead_letter: false,
                                };
                                self.set_expiry(id, Some(expiry));
                            }
                            Some(lease)
                        }
                        _ => {
                            if self.log.is_some() {
                                taken.push(id);
                            }
                            // A plain GET takes it: confirmed once the caller has
                            // written it (Store::confirm_taken).
                            None
                        }
                    };
                    handed.push(Delivery {
                        waiter: waiter.handle,
                        queue: key as u32,
                        priority: options.priority,
                        confirm,
                        id,
                        lease,
                    });
                    self.arm_idle_if_idle(key, now);
                }
                None => {
                    let Some(body) = body else {
                        continue;
                    };
                    let len = payload.len();
                    self.messages += 1;
                    self.bytes += len;
                    // A copy that expires (its queue's BQUEUETTL) is held, as a
                    // delayed one is (protocol.md 19.4).
                    let ttl = self
                        .queues
                        .by_key(key)
                        .and_then(|q| self.default_ttl(&q.name));
                    match (due, ttl) {
                        (None, None) => {
                            if let Some(q) = self.queues.by_key_mut(key) {
                                self.memory += q.ready.push_body(
                                    options.priority,
                                    id,
                                    0,
                                    Body::Shared {
                                        key: body,
                                        len: len as u32,
                                    },
                                );
                            }
                        }
                        _ => {
                            let state = if due.is_some() {
                                HeldState::Delayed
                            } else {
                                HeldState::Ready
                            };
                            self.insert_held(
                                key,
                                id,
                                Held::waiting(
                                    Payload::Shared(body),
                                    key,
                                    options.priority,
                                    (0, 0),
                                    state,
                                    due.unwrap_or(now),
                                ),
                            );
                            match due {
                                Some(at) => {
                                    self.deadlines.insert((at, id));
                                }
                                None => {
                                    if let Some(q) = self.queues.by_key_mut(key) {
                                        q.fresh.insert((options.priority, id));
                                    }
                                }
                            }
                            if let Some(ttl) = ttl {
                                let expiry = super::expiry::Expiry {
                                    at: now + ttl,
                                    dead_letter: false,
                                };
                                self.set_expiry(id, Some(expiry));
                            }
                        }
                    }
                }
            }
        }
        if let Some(log) = &mut self.log {
            for id in taken {
                log.push(&LogRecord::Del { id });
            }
        }
        self.totals.routed_copies += copies;
        Ok(Published {
            queues: copies as u32,
            first_id,
        })
    }

    /// The subject and reply address of a held copy (in flight, delayed or
    /// returned), if it was published.
    pub fn published_meta(&self, id: u64) -> Option<super::Meta<'_>> {
        self.meta(&self.held.get(&id)?.payload)
    }

    /// Takes back a copy handed to a plain `GET` that could not be written (its
    /// socket failed): ready again, ahead of newer messages, as
    /// [`Store::give_back`] does for a handoff.
    pub fn put_back_copy(
        &mut self,
        d: Delivery<W>,
        payload: &[u8],
        subject: &str,
        reply_to: u64,
        now: Instant,
    ) {
        let Some(name) = self.queues.by_key(d.queue as usize).map(|q| q.name.clone()) else {
            return;
        };
        let expiry = self.default_ttl(&name).map(|ttl| super::expiry::Expiry {
            at: now + ttl,
            dead_letter: false,
        });
        let handoff = super::Handoff {
            waiter: d.waiter,
            lease: None,
            payload: Some(payload.into()),
            meta: Some(super::CopyMeta {
                subject: subject.into(),
                reply_to,
                confirm: d.confirm,
            }),
            queue: name,
            spec: None,
            deadline: None,
            id: d.id,
            attempt: 0,
            priority: d.priority,
            // Its queue's time to live, counted again from now (the publish time is
            // not kept with a handed copy).
            job: expiry.map(|e| Box::new(super::jobs::HandedJob::expiring(e))),
        };
        self.give_back(handoff, now);
    }

    /// Copy `id` of a publish with confirmation `confirm` was handed to a plain
    /// `GET` and written: it counts as confirmed.
    pub fn confirm_taken(&mut self, confirm: u64, id: u64) {
        if confirm != 0 {
            self.confirms.push((confirm, id, true));
        }
    }

    /// The name of the queue a delivery's copy is in.
    pub fn queue_name_of(&self, d: Delivery<W>) -> Option<String> {
        self.queues
            .by_key(d.queue as usize)
            .map(|q| q.name.to_string())
    }

    /// Charges `bytes` of bookkeeping kept outside the store (subscriptions)
    /// against the memory cap.
    ///
    /// # Errors
    /// [`Full`] when that would pass the cap.
    pub fn charge(&mut self, bytes: usize) -> Result<(), Full> {
        self.check_room(bytes)?;
        self.memory += bytes;
        self.outside += bytes;
        Ok(())
    }

    /// Releases what [`Store::charge`] charged.
    pub fn uncharge(&mut self, bytes: usize) {
        self.memory = self.memory.saturating_sub(bytes);
        self.outside = self.outside.saturating_sub(bytes);
    }

    /// Whether [`Store::take_confirms`] has anything.
    pub fn has_confirms(&self) -> bool {
        !self.confirms.is_empty()
    }

    /// Settled copies of confirmed publishes since the last call, as (confirmation,
    /// copy id, acknowledged rather than failed).
    pub fn take_confirms(&mut self) -> impl Iterator<Item = (u64, u64, bool)> + '_ {
        self.confirms.drain(..)
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
