//! The version-2 request family: `LEASE`, the settle requests, `PEEK`, and handing
//! messages to parked consumers outside their own requests (protocol.md section 13).

use std::time::{Duration, Instant};

use crate::conn::State;
use crate::protocol::{
    self, DEFAULT_LEASE_MS, DEFAULT_MAX_DELIVERIES, ErrorCode, FEATURE_LEASES, FEATURE_PUT_OPTIONS,
    Limits, MAX_BATCH_BYTES, MAX_DELAY_MS, MAX_LEASE_MS, Request, SettledWriter, Status,
    WAIT_FOREVER,
};
use crate::store::{LeaseSpec, Nack};

use super::batch::Batch;
use super::requests::Outgoing;
use super::{ConnRef, Server};

/// What this server announces in a version-2 `HELLO` reply.
pub(super) const LIMITS: Limits = Limits {
    features: FEATURE_LEASES | FEATURE_PUT_OPTIONS | protocol::FEATURE_FANOUT,
    default_lease_ms: DEFAULT_LEASE_MS,
    max_lease_ms: MAX_LEASE_MS,
    max_delay_ms: MAX_DELAY_MS,
    max_deliveries: DEFAULT_MAX_DELIVERIES,
};

/// A `LEASE`'s fields with the server's defaults applied for the zeros.
pub(super) fn lease_spec(lease_ms: u32, max_deliveries: u16, detached: bool) -> LeaseSpec {
    LeaseSpec {
        lease_ms: if lease_ms == 0 {
            DEFAULT_LEASE_MS
        } else {
            lease_ms
        },
        max_deliveries: if max_deliveries == 0 {
            DEFAULT_MAX_DELIVERIES
        } else {
            max_deliveries
        },
        detached,
    }
}

impl Server {
    /// `LEASE`: like `GET`, but the messages stay on the server in flight; with
    /// `meta`, each comes with its metadata (`ENVELOPES`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lease(
        &mut self,
        r: ConnRef,
        queue: &str,
        wait_ms: u32,
        max: u16,
        spec: LeaseSpec,
        meta: bool,
        now: Instant,
    ) {
        let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) else {
            return;
        };
        let out = &mut conn.output;
        let start = out.len();
        let mut batch = Batch::begin(out, Status::Leased, meta);
        let taken = self.store.lease(
            queue,
            usize::from(max),
            MAX_BATCH_BYTES,
            spec,
            r,
            now,
            |lease, payload, m| batch.push(out, lease, payload, m),
        );
        if taken > 0 {
            batch.finish(out);
        }
        if taken > 0 {
            return;
        }
        conn.output.truncate(start);
        if self.store.has_ready(queue) {
            // Messages are there but leasing them would take memory past twice the
            // cap (protocol.md 13.11): back-pressure, as for PUT.
            protocol::encode_error(
                &mut conn.output,
                ErrorCode::Full,
                false,
                "memory cap reached: acknowledge leased messages before leasing more",
            );
            return;
        }
        if wait_ms == 0 {
            protocol::encode_empty(&mut conn.output, Status::Empty);
            return;
        }
        let deadline =
            (wait_ms != WAIT_FOREVER).then(|| now + Duration::from_millis(u64::from(wait_ms)));
        conn.state = State::Parked {
            queue: queue.into(),
            meta,
        };
        self.store.park_lease(queue, r, deadline, spec, now);
    }

    /// `ACK`, `NACK`, `TOUCH`: one result per pair. Behind a parked receive the reply
    /// is held back until that receive is answered (protocol.md 13.7).
    pub(super) fn settle(&mut self, r: ConnRef, request: &Request<'_>, now: Instant) {
        let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) else {
            return;
        };
        let out = if matches!(conn.state, State::Parked { .. }) {
            &mut conn.held_replies
        } else {
            &mut conn.output
        };
        let mut writer = SettledWriter::begin(out);
        match *request {
            Request::Ack { queue, pairs } => {
                for pair in pairs.iter() {
                    writer.push(out, self.store.ack(queue, pair, now));
                }
            }
            Request::Nack {
                queue,
                delay_ms,
                dead,
                no_charge,
                pairs,
            } => {
                let how = Nack {
                    delay: Duration::from_millis(u64::from(delay_ms)),
                    dead,
                    no_charge,
                };
                for pair in pairs.iter() {
                    writer.push(out, self.store.nack(queue, pair, how, now));
                }
            }
            Request::Touch {
                queue,
                lease_ms,
                pairs,
            } => {
                for pair in pairs.iter() {
                    writer.push(out, self.store.touch(queue, pair, lease_ms, now));
                }
            }
            _ => {}
        }
        writer.finish(out);
    }

    /// `PEEK`: copies of ready messages; with `meta`, with their metadata.
    pub(super) fn peek(&mut self, r: ConnRef, queue: &str, max: u16, meta: bool) {
        let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) else {
            return;
        };
        let out = &mut conn.output;
        let start = out.len();
        let mut batch = Batch::begin(out, Status::Peeked, meta);
        let n = self.store.peek(
            queue,
            usize::from(max),
            MAX_BATCH_BYTES,
            |lease, payload, m| batch.push(out, lease, payload, m),
        );
        if n > 0 {
            batch.finish(out);
        }
        if n == 0 {
            conn.output.truncate(start);
            protocol::encode_empty(&mut conn.output, Status::Empty);
        }
    }

    /// Writes the messages the store gave to parked consumers outside their own
    /// requests (a lease ended, a delay ran out, a `MOVE`, a `NACK`); one that cannot
    /// be written goes back to the store, which offers it to the next consumer.
    #[inline]
    pub(super) fn drain_handoffs(&mut self, now: Instant) {
        // After every request; nearly always there is nothing to do.
        if self.store.has_handoffs() {
            self.write_handoffs(now);
        }
        self.drain_confirms();
    }

    fn write_handoffs(&mut self, now: Instant) {
        while let Some(handoff) = self.store.take_handoff() {
            if !self.store.handoff_is_live(&handoff, now) {
                // A later settle of the same request ended that lease: the consumer
                // waits on, first in line.
                self.store.repark(handoff, now);
                continue;
            }
            let payload = match (&handoff.payload, handoff.lease) {
                (Some(payload), _) => payload.to_vec(),
                (None, Some(lease)) => match self.store.payload(lease.id) {
                    Some(payload) => payload.to_vec(),
                    None => continue,
                },
                (None, None) => continue,
            };
            let published = match handoff.lease {
                Some(lease) => self
                    .store
                    .published_meta(lease.id)
                    .map(|m| (m.subject.to_owned(), m.reply_to)),
                None => handoff
                    .meta
                    .as_ref()
                    .map(|m| (m.subject.to_string(), m.reply_to)),
            };
            let m = Outgoing {
                lease: handoff.lease,
                id: handoff.id,
                attempt: handoff.attempt,
                subject: published.as_ref().map(|(s, _)| s.as_str()),
                reply_to: published.as_ref().map_or(0, |(_, r)| *r),
                payload: &payload,
            };
            let delivered = self.deliver(handoff.waiter, m);
            if !delivered {
                self.store.give_back(handoff, now);
            } else if let Some(meta) = &handoff.meta {
                // A copy taken by a plain GET counts once it is written.
                self.store.confirm_taken(meta.confirm, handoff.id);
            }
        }
    }
}
