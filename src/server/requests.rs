//! One function per request: each turns a decoded [`Request`] into store calls and
//! a reply appended to the connection's output.

use std::time::{Duration, Instant};

use crate::conn::State;
use crate::protocol::{
    self, EnvelopesWriter, ErrorCode, LeaseRef, LeasedWriter, MAX_BATCH_BYTES, MessagesWriter,
    PROTOCOL_VERSION, PutOptions, QueueReport, Request, StatsReport, Status, WAIT_FOREVER,
};
use crate::store::{PutOutcome, QueueInfo};

use super::{ConnRef, Server};

/// A message on its way to a parked consumer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outgoing<'a> {
    /// The lease it is under, for a `LEASE`.
    pub(super) lease: Option<LeaseRef>,
    pub(super) id: u64,
    pub(super) attempt: u32,
    /// The subject of a published copy.
    pub(super) subject: Option<&'a str>,
    /// The reply address of a request's copy; 0 for none.
    pub(super) reply_to: u64,
    pub(super) payload: &'a [u8],
}

impl<'a> Outgoing<'a> {
    /// A message taken by a plain `GET`, never leased, with no metadata.
    pub(super) fn plain(id: u64, payload: &'a [u8]) -> Self {
        Outgoing {
            lease: None,
            id,
            attempt: 0,
            subject: None,
            reply_to: 0,
            payload,
        }
    }

    /// A message under `lease`, with no metadata.
    pub(super) fn leased(lease: LeaseRef, payload: &'a [u8]) -> Self {
        Outgoing {
            lease: Some(lease),
            id: lease.id,
            attempt: lease.attempt,
            subject: None,
            reply_to: 0,
            payload,
        }
    }
}

/// Server name sent in the `HELLO` reply.
const SERVER_NAME: &str = concat!("beuss ", env!("CARGO_PKG_VERSION"));

impl Server {
    /// Runs one request, refused first if it would change state the journal can
    /// no longer record; a reply that depends on new records waits for them.
    pub(super) fn execute_held(&mut self, r: ConnRef, request: Request<'_>, now: Instant) {
        if self.forbidden(r, &request) {
            return;
        }
        if self.journal.is_none() {
            return self.execute(r, request, now);
        }
        let Some(start) = self.conn_mut(r).map(|c| c.queued_end()) else {
            return;
        };
        if self.refuse_change(r, &request) {
            return;
        }
        let log_before = self.store.log_position();
        self.execute(r, request, now);
        self.hold_reply(r, start, log_before);
    }

    pub(super) fn execute(&mut self, r: ConnRef, request: Request<'_>, now: Instant) {
        self.execute_sized(r, request, None, now);
    }

    /// [`Server::execute`] for a request whose payload may have been cut as it
    /// streamed in: `original` is the length the client sent (`None`: the payload's
    /// own length).
    pub(super) fn execute_sized(
        &mut self,
        r: ConnRef,
        request: Request<'_>,
        original: Option<usize>,
        now: Instant,
    ) {
        let sent = |payload: &[u8]| original.unwrap_or(payload.len());
        if self.forbidden(r, &request) {
            return;
        }
        match request {
            Request::Hello { version } => self.hello(r, version),
            Request::Ping => self.reply_empty(r, Status::Pong),
            Request::Quit => {
                self.reply_empty(r, Status::Bye);
                if let Some(conn) = self.conn_mut(r) {
                    conn.state = State::Closing;
                }
            }
            Request::Put { queue, payload } => {
                self.put(r, queue, payload, sent(payload), None, now);
            }
            Request::PutWith {
                queue,
                options,
                payload,
            } => {
                self.put(r, queue, payload, sent(payload), Some(options), now);
            }
            Request::PutJob {
                queue,
                options,
                unique,
                ttl,
                payload,
            } => {
                let options = options.unwrap_or_default();
                self.put_job(r, queue, payload, sent(payload), options, unique, ttl, now);
            }
            Request::Get {
                queue,
                wait_ms,
                max,
            } => self.get(r, queue, wait_ms, max, false, now),
            Request::Purge { queue } => {
                let count = self.store.purge(queue, now);
                if let Some(conn) = self.conn_mut(r) {
                    protocol::encode_purged(&mut conn.output, count);
                }
            }
            Request::Stats { queue } => {
                let report = self.stats_report(queue, now);
                if let Some(conn) = self.conn_mut(r) {
                    report.encode(&mut conn.output);
                }
            }
            Request::Lease {
                queue,
                wait_ms,
                max,
                lease_ms,
                max_deliveries,
                detached,
            } => {
                let spec = super::leases::lease_spec(lease_ms, max_deliveries, detached);
                self.lease(r, queue, wait_ms, max, spec, false, now);
            }
            Request::Ack { .. } | Request::Nack { .. } | Request::Touch { .. } => {
                self.settle(r, &request, now);
            }
            Request::Peek { queue, max } => self.peek(r, queue, max, false),
            Request::Move { from, to, max } => {
                let count = self.store.move_ready(from, to, u64::from(max), now);
                if let Some(conn) = self.conn_mut(r) {
                    protocol::encode_moved(&mut conn.output, count);
                }
            }
            Request::Bind { pattern, queue } => self.bind_pattern(r, pattern, queue, now),
            Request::Unbind { pattern, queue } => self.unbind_pattern(r, pattern, queue, now),
            Request::Publish {
                subject,
                delay_ms,
                priority,
                confirm,
                timeout_ms,
                payload,
            } => {
                let options = PutOptions { delay_ms, priority };
                let len = sent(payload);
                self.publish(r, subject, payload, len, options, confirm, timeout_ms, now);
            }
            Request::Subscribe { pattern } => self.subscribe(r, pattern),
            Request::Unsubscribe { sid } => self.unsubscribe(r, sid),
            Request::Req {
                subject,
                timeout_ms,
                payload,
            } => self.request(r, subject, payload, sent(payload), timeout_ms, now),
            Request::Reply { reply_to, payload } => self.reply(r, reply_to, payload),
            Request::GetWithMeta {
                queue,
                wait_ms,
                max,
            } => self.get(r, queue, wait_ms, max, true, now),
            Request::LeaseWithMeta {
                queue,
                wait_ms,
                max,
                lease_ms,
                max_deliveries,
                detached,
            } => {
                let spec = super::leases::lease_spec(lease_ms, max_deliveries, detached);
                self.lease(r, queue, wait_ms, max, spec, true, now);
            }
            Request::PeekWithMeta { queue, max } => self.peek(r, queue, max, true),
            Request::Auth { token } => self.authenticate(r, token, now),
            Request::Schedule {
                name,
                spec,
                target,
                priority,
                payload,
            } => self.define_schedule(r, name, spec, target, priority, payload),
            Request::Unschedule { name } => self.unschedule(r, name),
            Request::PauseSchedule { name, paused } => self.pause_schedule(r, name, paused),
            Request::Schedules { name } => self.list_schedules(r, name),
        }
        self.drain_handoffs(now);
    }

    fn reply_empty(&mut self, r: ConnRef, status: Status) {
        if let Some(conn) = self.conn_mut(r) {
            protocol::encode_empty(&mut conn.output, status);
        }
    }

    fn hello(&mut self, r: ConnRef, version: u16) {
        if version == 0 {
            self.fail(
                r,
                ErrorCode::UnsupportedVersion,
                "protocol version 0 does not exist; this server speaks 1",
            );
            return;
        }
        let max_message_size = self.config.max_message_size as u32;
        let version = version.min(PROTOCOL_VERSION);
        let mut limits = super::leases::LIMITS;
        if self.tokens.is_some() {
            limits.features |= protocol::FEATURE_AUTH_REQUIRED;
        }
        if version >= 5 {
            limits.features |= protocol::FEATURE_SCHEDULES;
        }
        if version >= 6 {
            limits.features |= protocol::FEATURE_UNIQUE | protocol::FEATURE_TTL;
        }
        if self.journal.is_some() {
            limits.features |= protocol::FEATURE_DURABLE;
            if self.config.fsync == crate::config::Fsync::Always {
                limits.features |= protocol::FEATURE_SYNCED;
            }
        }
        if let Some(conn) = self.conn_mut(r) {
            if version >= 2 {
                protocol::encode_hello_v2(
                    &mut conn.output,
                    version,
                    max_message_size,
                    SERVER_NAME,
                    &limits,
                );
            } else {
                protocol::encode_hello(&mut conn.output, version, max_message_size, SERVER_NAME);
            }
        }
    }

    /// Stores a message, or hands it to the longest-waiting consumer, and answers
    /// `STORED`, `TRUNCATED` or `FULL` (with the id when it came with options).
    /// Returns false when it was refused.
    pub(super) fn put(
        &mut self,
        r: ConnRef,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        options: Option<PutOptions>,
        now: Instant,
    ) -> bool {
        let id = loop {
            let stored = self.store.put_with(
                queue,
                payload,
                original_len,
                options.unwrap_or_default(),
                now,
            );
            match stored {
                Ok((id, PutOutcome::Stored)) => break id,
                Ok((id, PutOutcome::Handed(waiter))) => {
                    if self.deliver(waiter, Outgoing::plain(id, payload)) {
                        break id;
                    }
                    // The consumer's socket failed before the message was out: offer
                    // it to the next waiter, or store it, rather than lose it.
                }
                Ok((id, PutOutcome::Leased(waiter, lease))) => {
                    if !self.deliver(waiter, Outgoing::leased(lease, payload)) {
                        // Back to ready, uncharged; the next waiter is served from
                        // the handoffs.
                        self.store.give_back_lease(lease, now);
                    }
                    break id;
                }
                Err(full) => {
                    if let Some(conn) = self.conn_mut(r) {
                        log::debug!("{}: PUT {queue}: {full}", conn.peer);
                        protocol::encode_error(
                            &mut conn.output,
                            ErrorCode::Full,
                            false,
                            &full.to_string(),
                        );
                    }
                    return false;
                }
            }
        };
        if let Some(conn) = self.conn_mut(r) {
            let truncated = original_len > payload.len();
            match (options.is_some(), truncated) {
                (false, true) => protocol::encode_truncated(
                    &mut conn.output,
                    original_len as u32,
                    payload.len() as u32,
                ),
                (false, false) => protocol::encode_empty(&mut conn.output, Status::Stored),
                (true, true) => protocol::encode_truncated_id(
                    &mut conn.output,
                    original_len as u32,
                    payload.len() as u32,
                    id,
                ),
                (true, false) => protocol::encode_stored_id(&mut conn.output, id),
            }
        }
        true
    }

    /// Writes a message to a parked consumer the store handed it to (as `ENVELOPES`
    /// when it asked for metadata, else `LEASED` for a lease or `MESSAGES`) and lets
    /// it go on with any requests it sent meanwhile. Returns false if it could not be
    /// written (not a live parked connection, or the socket failed), so that the
    /// caller offers it again.
    pub(super) fn deliver(&mut self, waiter: ConnRef, m: Outgoing<'_>) -> bool {
        let meta = self
            .conn_mut(waiter)
            .is_some_and(|c| matches!(c.state, State::Parked { meta: true, .. }));
        self.deliver_with(waiter, |out| {
            if meta {
                let mut writer = EnvelopesWriter::begin(out);
                let reply_to = (m.reply_to != 0).then_some(m.reply_to);
                writer.push(out, m.id, m.attempt, m.subject, reply_to, m.payload);
                writer.finish(out);
            } else if let Some(lease) = m.lease {
                let mut writer = LeasedWriter::begin(out, Status::Leased);
                writer.push(out, lease, m.payload);
                writer.finish(out);
            } else {
                let mut writer = MessagesWriter::begin(out);
                writer.push(out, m.payload);
                writer.finish(out);
            }
        })
    }

    /// Writes the reply `write` makes to a parked consumer and lets it go on; see
    /// [`Server::deliver`].
    fn deliver_with(&mut self, waiter: ConnRef, write: impl FnOnce(&mut bytes::BytesMut)) -> bool {
        let journal_mark = self
            .journal
            .as_ref()
            .map(|j| (self.store.log_position(), j.written()));
        let Some(conn) = self.conns.get_mut(waiter.key).filter(|c| c.id == waiter.id) else {
            log::error!("waiter {waiter:?} had no live connection; message kept");
            return false;
        };
        if conn.broken || !matches!(conn.state, State::Parked { .. }) {
            log::error!("waiter {waiter:?} was not parked; message kept");
            return false;
        }
        let start = conn.queued_end();
        write(&mut conn.output);
        conn.unpark();
        if let Some((pos, written)) = journal_mark {
            // Its records (the message's PUT, its DEL or LEASED) come first.
            let had = conn.holds_output();
            conn.hold_output(start, pos, written);
            if !had {
                self.holding.push(waiter);
            }
        }
        // Written now, before the producer's reply and the rest of its batch: the
        // consumer has waited longest, and this write would come anyway.
        conn.flush();
        // The frame is the last thing in the output, so a failed write left at most
        // part of it with the client, which cannot read that as a message.
        let delivered = !conn.broken;
        self.ready.push_back(waiter);
        delivered
    }

    /// `GET`: takes messages (as `ENVELOPES` with `meta`), or parks.
    fn get(&mut self, r: ConnRef, queue: &str, wait_ms: u32, max: u16, meta: bool, now: Instant) {
        let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) else {
            return;
        };
        let out = &mut conn.output;
        let start = out.len();
        let mut batch = super::batch::Batch::begin(out, Status::Messages, meta);
        let taken = self.store.get_with(
            queue,
            usize::from(max),
            MAX_BATCH_BYTES,
            now,
            |id, attempt, payload, m| batch.push(out, LeaseRef { id, attempt }, payload, m),
        );
        if taken > 0 {
            batch.finish(out);
        }
        if taken > 0 {
            return;
        }
        conn.output.truncate(start);
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
        self.store.park(queue, r, deadline, now);
    }

    fn stats_report(&self, queue: Option<&str>, now: Instant) -> StatsReport {
        let t = self.store.totals();
        let f = self.fanout.counters;
        let server = [
            ("uptime_seconds", now.duration_since(self.started).as_secs()),
            ("connections", self.conns.len() as u64),
            ("connections_total", self.counters.connections_total),
            ("connections_rejected", self.counters.connections_rejected),
            ("queues", self.store.queue_count() as u64),
            ("messages", self.store.message_count() as u64),
            ("bytes", self.store.bytes() as u64),
            ("memory", self.store.memory() as u64),
            ("max_memory", self.store.max_memory() as u64),
            ("max_message_size", self.config.max_message_size as u64),
            ("waiters", self.store.waiter_count() as u64),
            ("puts", t.puts),
            ("gets", t.gets),
            ("truncations", t.truncations),
            ("rejected_full", t.rejected_full),
            ("rejected_queue_full", t.rejected_queue_full),
            ("purged", t.purged),
            ("expired_queues", t.expired_queues),
            ("protocol_errors", self.counters.protocol_errors),
            ("in_flight", self.store.in_flight_count() as u64),
            ("delayed", self.store.delayed_count() as u64),
            ("leases", t.leases),
            ("acks", t.acks),
            ("nacks", t.nacks),
            ("redeliveries", t.redeliveries),
            ("expired_leases", t.expired_leases),
            ("dead_lettered", t.dead_lettered),
            ("dead_dropped", t.dead_dropped),
            ("bindings", self.store.binding_count() as u64),
            ("subscriptions", self.fanout.subscription_count() as u64),
            ("published", f.published),
            ("routed_copies", t.routed_copies),
            ("unroutable", f.unroutable),
            ("events", f.events),
            ("slow_consumer_drops", f.slow_consumer_drops),
            ("requests", f.requests),
            ("replies", f.replies),
            ("late_replies", f.late_replies),
            ("no_responders", f.no_responders),
            ("confirmed", f.confirmed),
            ("waiting", self.fanout.waiting_count() as u64),
            ("auth_failures", self.counters.auth_failures),
            ("auth_required", self.counters.auth_required),
            ("forbidden", self.counters.forbidden),
            ("idle_timeouts", self.counters.idle_timeouts),
            ("frame_timeouts", self.counters.frame_timeouts),
            (
                "connections_rejected_address",
                self.counters.connections_rejected_address,
            ),
            ("schedules", self.store.schedules().len() as u64),
            ("schedule_runs", self.store.schedules().totals().runs),
            (
                "schedule_misfires",
                self.store.schedules().totals().misfires,
            ),
            (
                "schedule_failures",
                self.store.schedules().totals().failures,
            ),
            ("unique_keys", self.store.key_counts().held),
            ("unique_remembered", self.store.key_counts().remembered),
            ("unique_forgotten", self.store.key_counts().forgotten),
            ("unique_duplicates", self.store.totals().duplicates),
            ("unique_replaced", self.store.totals().replaced),
            ("expired", self.store.totals().expired),
            ("expiring", self.store.expiring_count() as u64),
        ];
        let mut queues: Vec<QueueReport> = match queue {
            Some(name) => self
                .store
                .queue_info(name, now)
                .map(|info| queue_report(name, info))
                .into_iter()
                .collect(),
            None => self
                .store
                .queue_infos(now)
                .map(|(name, info)| queue_report(name, info))
                .collect(),
        };
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        let mut server = fields(&server);
        if let Some(journal) = &self.journal {
            let j = journal.stats();
            let journal_figures = [
                ("journal_disk_bytes", j.disk_bytes),
                ("journal_base_bytes", j.base_bytes),
                ("journal_log_bytes", j.log_bytes),
                ("journal_syncs", j.syncs),
                ("journal_sync_p50_us", j.sync_p50_us),
                ("journal_sync_p99_us", j.sync_p99_us),
                (
                    "journal_since_sync_ms",
                    j.since_sync.map_or(u64::MAX, |d| {
                        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
                    }),
                ),
                ("journal_rewrites", j.rewrites),
                ("journal_recovered_records", j.recovered_records),
                ("journal_truncated_bytes", j.truncated_bytes),
                ("journal_disk_full", j.disk_full),
                ("journal_disk_full_now", u64::from(journal.disk_full())),
                ("journal_failed", u64::from(journal.failed().is_some())),
            ];
            server.extend(fields(&journal_figures));
        }
        StatsReport { server, queues }
    }
}

fn queue_report(name: &str, info: QueueInfo) -> QueueReport {
    let c = info.counters;
    let figures = [
        ("messages", info.messages),
        ("bytes", info.bytes),
        ("memory", info.memory),
        ("puts", c.puts),
        ("gets", c.gets),
        ("truncations", c.truncations),
        ("waiters", info.waiters),
        ("idle_ms", info.idle.as_millis() as u64),
        ("ready", info.ready),
        ("in_flight", info.in_flight),
        ("delayed", info.delayed),
        ("dead", info.dead),
        ("leases", c.leases),
        ("acks", c.acks),
        ("nacks", c.nacks),
        ("redeliveries", c.redeliveries),
        ("expired_leases", c.expired_leases),
        ("dead_lettered", c.dead_lettered),
        ("bindings", info.bindings),
        ("expired", c.expired),
    ];
    QueueReport {
        name: name.to_owned(),
        fields: fields(&figures),
    }
}

fn fields(figures: &[(&str, u64)]) -> Vec<(String, u64)> {
    figures.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}
