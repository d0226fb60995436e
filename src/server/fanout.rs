//! The version-3 request family (protocol.md section 15): bindings, publishing,
//! live subscriptions, request/reply and confirmed publishes.
//!
//! What must outlive a restart (bindings, the copies in queues) is in the store;
//! what lives only as long as a connection is here: subscriptions, the requests
//! waiting for a reply, the publishes waiting for their confirmations.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::conn::{State, Sub};
use crate::protocol::{self, ErrorCode, PutOptions, Status};
use crate::route::Trie;
use crate::store::{Delivery, Full};

use super::requests::Outgoing;
use super::{ConnRef, Server};

/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS: usize = protocol::MAX_SUBSCRIPTIONS as usize;
/// Memory charged against the cap per subscription, on top of its pattern.
const SUB_OVERHEAD: usize = 128;

/// A subscription in the trie: its connection's slab key in the high 32 bits, its
/// sid in the low ones. (A `u64`, like the store's queue keys, so that one copy of
/// the trie's code serves both.) A connection's subscriptions leave the trie when it
/// closes, before its key can be reused.
type SubKey = u64;

fn sub_key(conn: usize, sid: u32) -> SubKey {
    ((conn as u64) << 32) | u64::from(sid)
}

/// Server figures of the family, for `STATS`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FanoutCounters {
    pub(super) published: u64,
    pub(super) unroutable: u64,
    pub(super) events: u64,
    pub(super) slow_consumer_drops: u64,
    pub(super) requests: u64,
    pub(super) replies: u64,
    pub(super) late_replies: u64,
    pub(super) no_responders: u64,
    pub(super) confirmed: u64,
}

/// What a connection parked in `State::Awaiting` waits for.
#[derive(Debug)]
enum Wait {
    /// The first reply to its request.
    Reply,
    /// Acknowledgements of the copies of its publish.
    Confirm(Box<Confirm>),
}

#[derive(Debug)]
struct Confirm {
    need: u32,
    /// The copies' ids run from `first_id`, one per queue.
    first_id: u64,
    /// Bit `i` set: copy `first_id + i` is not settled yet.
    pending: Vec<u64>,
    /// Bits set in `pending`.
    pending_count: u32,
    acked: u32,
    failed: u32,
    reply: PublishReply,
}

impl Confirm {
    fn new(need: u32, first_id: u64, copies: u32, reply: PublishReply) -> Self {
        let mut pending = vec![u64::MAX; copies.div_ceil(64) as usize];
        if let Some(last) = pending.last_mut()
            && !copies.is_multiple_of(64)
        {
            *last = (1 << (copies % 64)) - 1;
        }
        Confirm {
            need,
            first_id,
            pending,
            pending_count: copies,
            acked: 0,
            failed: 0,
            reply,
        }
    }

    /// Marks copy `id` settled; false if it is not a copy of this publish or was
    /// settled before.
    fn settle(&mut self, id: u64) -> bool {
        let Some(i) = id.checked_sub(self.first_id) else {
            return false;
        };
        let Some(word) = self.pending.get_mut((i / 64) as usize) else {
            return false;
        };
        let bit = 1 << (i % 64);
        if *word & bit == 0 {
            return false;
        }
        *word &= !bit;
        self.pending_count -= 1;
        true
    }
}

/// The fields of a `PUBLISHED` reply.
#[derive(Debug, Clone, Copy, Default)]
struct PublishReply {
    queues: u32,
    subscribers: u32,
    original_len: u32,
    stored_len: u32,
}

#[derive(Debug)]
struct Waiting {
    conn: ConnRef,
    deadline: Instant,
    wait: Wait,
}

/// Subscriptions and waits, next to the store in the server.
#[derive(Debug, Default)]
pub(super) struct Fanout {
    subs: Trie<SubKey>,
    scratch: Vec<SubKey>,
    handed: Vec<Delivery<ConnRef>>,
    /// Connections given events this turn, flushed at its end (one write for many
    /// events).
    pushed: Vec<ConnRef>,
    waits: HashMap<u64, Waiting>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Reply addresses and confirmation numbers: never 0, never reused.
    next_token: u64,
    pub(super) counters: FanoutCounters,
}

impl Fanout {
    /// Subscriptions held, all connections.
    pub(super) fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Requests and publishes waiting now.
    pub(super) fn waiting_count(&self) -> usize {
        self.waits.len()
    }

    /// When the next wait runs out.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|d| d.0)
    }

    /// What the subscription trie is charged now.
    fn trie_memory(&self) -> usize {
        crate::store::trie_memory(self.subs.len(), self.subs.node_count())
    }

    /// Takes `sub` of `r` out of the trie; returns the memory it was charged.
    fn remove_sub(&mut self, r: ConnRef, sub: &Sub) -> usize {
        let before = self.trie_memory();
        self.subs.remove(&sub.pattern, &sub_key(r.key, sub.sid));
        SUB_OVERHEAD + sub.pattern.len() + before - self.trie_memory()
    }

    fn token(&mut self) -> u64 {
        if self.next_token == 0 {
            // Start from the wall clock: a responder that took a request before a
            // restart and answers after it must not reach another requester.
            self.next_token = crate::civil::now_ms().max(1) << 20;
        }
        self.next_token += 1;
        self.next_token
    }
}

impl Server {
    /// `BIND`.
    pub(super) fn bind_pattern(&mut self, r: ConnRef, pattern: &str, queue: &str, now: Instant) {
        let result = self.store.bind(pattern, queue, now);
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        match result {
            Ok(created) => protocol::encode_bound(&mut conn.output, created),
            Err(full) => full_error(&mut conn.output, &full, "binding not made"),
        }
    }

    /// `UNBIND`.
    pub(super) fn unbind_pattern(&mut self, r: ConnRef, pattern: &str, queue: &str, now: Instant) {
        let removed = self.store.unbind(pattern, queue, now);
        if let Some(conn) = self.conn_mut(r) {
            protocol::encode_unbound(&mut conn.output, removed);
        }
    }

    /// `PUB`: copies into the bound queues, events to the subscriptions, and the
    /// reply now or, with a confirmation, once enough copies are settled. Returns
    /// false when nothing was published.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish(
        &mut self,
        r: ConnRef,
        subject: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        confirm: u32,
        timeout_ms: u32,
        now: Instant,
    ) -> bool {
        if confirm > 0 {
            let copies = self.store.route_count(subject);
            if copies < confirm as usize {
                if let Some(conn) = self.conn_mut(r) {
                    let text = format!(
                        "confirmation of {confirm} copies asked, but {copies} queues are bound \
                         to {subject}; nothing published"
                    );
                    protocol::encode_error(&mut conn.output, ErrorCode::TooFewCopies, false, &text);
                }
                return false;
            }
        }
        let token = if confirm > 0 { self.fanout.token() } else { 0 };
        let Some((queues, first_id)) =
            self.route(r, subject, payload, original_len, options, 0, token, now)
        else {
            return false;
        };
        let (subscribers, matched) = self.push_events(subject, 0, payload);
        self.fanout.counters.published += 1;
        if queues == 0 && matched == 0 {
            self.fanout.counters.unroutable += 1;
        }
        let reply = PublishReply {
            queues,
            subscribers,
            original_len: original_len as u32,
            stored_len: payload.len() as u32,
        };
        if confirm == 0 {
            if let Some(conn) = self.conn_mut(r) {
                encode_published(&mut conn.output, &reply, 0, 0);
            }
            return true;
        }
        let deadline = now + Duration::from_millis(u64::from(timeout_ms));
        let confirm = Confirm::new(confirm, first_id, queues, reply);
        self.await_token(r, token, deadline, Wait::Confirm(Box::new(confirm)));
        // Copies handed to plain GETs are confirmed already.
        self.drain_confirms();
        true
    }

    /// `REQ`: routes like a publish with a fresh reply address, then waits for the
    /// first `REPLY`; `NO_RESPONDERS` at once if nothing matched.
    pub(super) fn request(
        &mut self,
        r: ConnRef,
        subject: &str,
        payload: &[u8],
        original_len: usize,
        timeout_ms: u32,
        now: Instant,
    ) {
        let token = self.fanout.token();
        let Some((queues, _)) = self.route(
            r,
            subject,
            payload,
            original_len,
            PutOptions::default(),
            token,
            0,
            now,
        ) else {
            return; // FULL: refused, not carried out
        };
        self.fanout.counters.requests += 1;
        // A slow subscriber whose event was dropped is still a responder: the request
        // waits for its timeout (protocol.md 15.8).
        let (_, matched) = self.push_events(subject, token, payload);
        if queues == 0 && matched == 0 {
            self.fanout.counters.no_responders += 1;
            if let Some(conn) = self.conn_mut(r) {
                let text = format!("no queue is bound and nobody subscribes to {subject}");
                protocol::encode_error(&mut conn.output, ErrorCode::NoResponders, false, &text);
            }
            return;
        }
        let deadline = now + Duration::from_millis(u64::from(timeout_ms));
        self.await_token(r, token, deadline, Wait::Reply);
    }

    /// `REPLY`: hands the payload to the requester if it still waits.
    pub(super) fn reply(&mut self, r: ConnRef, reply_to: u64, payload: &[u8]) {
        let waiting = matches!(
            self.fanout.waits.get(&reply_to),
            Some(Waiting {
                wait: Wait::Reply,
                ..
            })
        );
        let delivered =
            waiting && self.end_wait(reply_to, |out, _| protocol::encode_reply(out, payload));
        if delivered {
            self.fanout.counters.replies += 1;
        } else {
            self.fanout.counters.late_replies += 1;
        }
        if let Some(conn) = self.conn_mut(r) {
            protocol::encode_replied(&mut conn.output, delivered);
        }
    }

    /// `SUB`.
    pub(super) fn subscribe(&mut self, r: ConnRef, pattern: &str) {
        let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) else {
            return;
        };
        if conn.subs.len() >= MAX_SUBSCRIPTIONS {
            let text = format!("a connection may hold {MAX_SUBSCRIPTIONS} subscriptions");
            protocol::encode_error(&mut conn.output, ErrorCode::Limit, false, &text);
            return;
        }
        let Some(sid) = conn.next_sid.checked_add(1) else {
            let text = "this connection has used every subscription number; reconnect";
            protocol::encode_error(&mut conn.output, ErrorCode::Limit, false, text);
            return;
        };
        let before = self.fanout.trie_memory();
        self.fanout.subs.insert(pattern, sub_key(r.key, sid));
        let cost = SUB_OVERHEAD + pattern.len() + self.fanout.trie_memory() - before;
        if let Err(full) = self.store.charge(cost) {
            self.fanout.subs.remove(pattern, &sub_key(r.key, sid));
            full_error(&mut conn.output, &full, "subscription not made");
            return;
        }
        conn.next_sid = sid;
        conn.subs.push(Sub {
            sid,
            pattern: pattern.into(),
            dropped: 0,
        });
        protocol::encode_subscribed(&mut conn.output, sid);
    }

    /// `UNSUB`.
    pub(super) fn unsubscribe(&mut self, r: ConnRef, sid: u32) {
        let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) else {
            return;
        };
        // Sids only grow and are pushed in order, so the list stays sorted.
        let removed = match conn.subs.binary_search_by_key(&sid, |s| s.sid) {
            Ok(at) => {
                let sub = conn.subs.remove(at);
                let freed = self.fanout.remove_sub(r, &sub);
                self.store.uncharge(freed);
                true
            }
            Err(_) => false,
        };
        protocol::encode_unsubscribed(&mut conn.output, removed);
    }

    /// Everything of a closing connection: its subscriptions and its wait.
    pub(super) fn drop_fanout(&mut self, r: ConnRef, subs: Vec<Sub>, state: &State) {
        for sub in subs {
            let freed = self.fanout.remove_sub(r, &sub);
            self.store.uncharge(freed);
        }
        if let State::Awaiting { token } = state
            && let Some(w) = self.fanout.waits.remove(token)
        {
            self.fanout.deadlines.remove(&(w.deadline, *token));
        }
    }

    /// Writes the events of this turn: one flush per subscriber.
    pub(super) fn flush_events(&mut self) {
        let mut pushed = std::mem::take(&mut self.fanout.pushed);
        for r in pushed.drain(..) {
            if let Some(conn) = self.conn_mut(r) {
                conn.flush();
            }
        }
        self.fanout.pushed = pushed;
    }

    /// Ends the waits that ran out: a request gets `EMPTY`, a confirmed publish its
    /// counts so far.
    pub(super) fn expire_waits(&mut self, now: Instant) {
        while let Some(&(at, token)) = self.fanout.deadlines.first() {
            if at > now {
                break;
            }
            self.fanout.deadlines.pop_first();
            self.end_wait(token, |out, wait| match wait {
                Wait::Reply => protocol::encode_empty(out, Status::Empty),
                Wait::Confirm(c) => encode_published(out, &c.reply, c.acked, c.failed),
            });
        }
    }

    /// Counts the copies the store says were settled; answers the publishes that
    /// have their count (or can no longer reach it).
    #[inline]
    pub(super) fn drain_confirms(&mut self) {
        // After every request: the check is kept apart so that it costs a compare.
        if self.store.has_confirms() {
            self.count_confirms();
        }
    }

    fn count_confirms(&mut self) {
        let settled: Vec<(u64, u64, bool)> = self.store.take_confirms().collect();
        for (token, id, ok) in settled {
            let Some(Waiting {
                wait: Wait::Confirm(c),
                ..
            }) = self.fanout.waits.get_mut(&token)
            else {
                continue;
            };
            if !c.settle(id) {
                continue; // settled before (a dead letter acked later), or not a copy
            }
            if ok {
                c.acked += 1;
            } else {
                c.failed += 1;
            }
            let done = c.acked >= c.need || c.acked + c.pending_count < c.need;
            if done {
                self.fanout.counters.confirmed += 1;
                self.end_wait(token, |out, wait| {
                    if let Wait::Confirm(c) = wait {
                        encode_published(out, &c.reply, c.acked, c.failed);
                    }
                });
            }
        }
    }

    /// Copies a publish or request into the bound queues and writes the copies
    /// handed to parked consumers; returns (queues, first copy's id), or `None`
    /// after answering `FULL`.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        r: ConnRef,
        subject: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        reply_to: u64,
        confirm: u64,
        now: Instant,
    ) -> Option<(u32, u64)> {
        let mut handed = std::mem::take(&mut self.fanout.handed);
        let result = self.store.publish(
            subject,
            payload,
            original_len,
            options,
            reply_to,
            confirm,
            now,
            &mut handed,
        );
        let published = match result {
            Ok(published) => published,
            Err(full) => {
                self.fanout.handed = handed;
                if let Some(conn) = self.conn_mut(r) {
                    full_error(&mut conn.output, &full, "nothing published");
                }
                return None;
            }
        };
        for d in handed.drain(..) {
            let delivered = self.deliver_copy(d, subject, reply_to, payload);
            match (delivered, d.lease) {
                (true, None) => self.store.confirm_taken(confirm, d.id),
                (true, Some(_)) => {}
                (false, Some(lease)) => self.store.give_back_lease(lease, now),
                (false, None) => self.store.put_back_copy(d, payload, subject, reply_to, now),
            }
        }
        self.fanout.handed = handed;
        Some((published.queues, published.first_id))
    }

    /// Writes a copy a publish handed to a parked consumer.
    fn deliver_copy(
        &mut self,
        d: Delivery<ConnRef>,
        subject: &str,
        reply_to: u64,
        payload: &[u8],
    ) -> bool {
        let m = Outgoing {
            lease: d.lease,
            id: d.id,
            attempt: d.lease.map_or(0, |l| l.attempt),
            subject: Some(subject),
            reply_to,
            payload,
        };
        self.deliver(d.waiter, m)
    }

    /// Pushes an `EVENT` to every subscription matching `subject`; returns how many
    /// got one (slow subscribers' drops not counted) and how many matched (drops
    /// counted).
    fn push_events(&mut self, subject: &str, reply_to: u64, payload: &[u8]) -> (u32, u32) {
        let mut targets = std::mem::take(&mut self.fanout.scratch);
        self.fanout.subs.matches_into(subject, &mut targets);
        let mut sent = 0;
        let limit = self.config.sub_buffer;
        let mut matched = 0;
        for &target in &targets {
            let (key, sid) = ((target >> 32) as usize, target as u32);
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let id = conn.id;
            if matches!(conn.state, State::Closing) {
                continue; // nothing after BYE or a fatal error
            }
            let at = conn.subs.binary_search_by_key(&sid, |s| s.sid);
            let Some(sub) = at.ok().and_then(|at| conn.subs.get_mut(at)) else {
                continue;
            };
            matched += 1;
            // A slow subscriber (or one whose socket failed) misses events: dropped
            // and counted, never queued without bound (protocol.md 15.6).
            if conn.output.len() > limit || conn.broken {
                sub.dropped = sub.dropped.saturating_add(1);
                self.fanout.counters.slow_consumer_drops += 1;
                continue;
            }
            let dropped = std::mem::take(&mut sub.dropped);
            let was_idle = conn.output.is_empty();
            protocol::encode_event(
                &mut conn.output,
                sid,
                Some(subject),
                (reply_to != 0).then_some(reply_to),
                (dropped > 0).then_some(dropped),
                payload,
            );
            if was_idle {
                self.fanout.pushed.push(ConnRef { key, id });
            }
            sent += 1;
        }
        self.fanout.counters.events += u64::from(sent);
        self.fanout.scratch = targets;
        (sent, matched)
    }

    /// Parks `r` until `token`'s wait ends or `deadline`.
    fn await_token(&mut self, r: ConnRef, token: u64, deadline: Instant, wait: Wait) {
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        conn.state = State::Awaiting { token };
        self.fanout.deadlines.insert((deadline, token));
        self.fanout.waits.insert(
            token,
            Waiting {
                conn: r,
                deadline,
                wait,
            },
        );
    }

    /// Ends `token`'s wait with the reply `write` makes, and lets its connection go
    /// on; returns false if there was no such wait or its connection is gone.
    fn end_wait(&mut self, token: u64, write: impl FnOnce(&mut bytes::BytesMut, &Wait)) -> bool {
        let Some(w) = self.fanout.waits.remove(&token) else {
            return false;
        };
        self.fanout.deadlines.remove(&(w.deadline, token));
        let journal_mark = self
            .journal
            .as_ref()
            .map(|j| (self.store.log_position(), j.written()));
        let Some(conn) = self.conns.get_mut(w.conn.key).filter(|c| c.id == w.conn.id) else {
            return false;
        };
        if !matches!(conn.state, State::Awaiting { token: t } if t == token) {
            return false;
        }
        let start = conn.queued_end();
        write(&mut conn.output, &w.wait);
        conn.unpark();
        if let Some((pos, written)) = journal_mark
            && matches!(w.wait, Wait::Confirm(_))
        {
            // A confirmation speaks of acks that must be on disk first.
            let had = conn.holds_output();
            conn.hold_output(start, pos, written);
            if !had {
                self.holding.push(w.conn);
            }
        }
        conn.flush();
        self.ready.push_back(w.conn);
        true
    }
}

fn full_error(out: &mut bytes::BytesMut, full: &Full, what: &str) {
    protocol::encode_error(out, ErrorCode::Full, false, &format!("{full}; {what}"));
}

fn encode_published(out: &mut bytes::BytesMut, reply: &PublishReply, acked: u32, failed: u32) {
    protocol::encode_published(
        out,
        &protocol::Published {
            queues: reply.queues,
            subscribers: reply.subscribers,
            original_len: reply.original_len,
            stored_len: reply.stored_len,
            acked,
            failed,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each copy settles once, whatever the number of copies; other ids never do.
    #[test]
    fn confirm_counts_each_copy_once() {
        for copies in [1u32, 63, 64, 65, 130] {
            let mut c = Confirm::new(1, 1000, copies, PublishReply::default());
            assert!(!c.settle(999));
            assert!(!c.settle(1000 + u64::from(copies)));
            for i in 0..u64::from(copies) {
                assert!(c.settle(1000 + i), "{copies}: {i}");
                assert!(!c.settle(1000 + i), "{copies}: {i} twice");
            }
            assert_eq!(c.pending_count, 0);
            assert!(c.pending.iter().all(|w| *w == 0));
        }
    }
}
