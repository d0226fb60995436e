//! One function per request: each turns a decoded [`Request`] into store calls and
//! a reply appended to the connection's output.

use std::time::{Duration, Instant};

use crate::conn::State;
use crate::protocol::{
    self, ErrorCode, MAX_BATCH_BYTES, MessagesWriter, PROTOCOL_VERSION, QueueReport, Request,
    StatsReport, Status, WAIT_FOREVER,
};
use crate::store::{PutOutcome, QueueInfo};

use super::{ConnRef, Server};

/// Server name sent in the `HELLO` reply.
const SERVER_NAME: &str = concat!("beuss ", env!("CARGO_PKG_VERSION"));

impl Server {
    pub(super) fn execute(&mut self, r: ConnRef, request: Request<'_>, now: Instant) {
        match request {
            Request::Hello { version } => self.hello(r, version),
            Request::Ping => self.reply_empty(r, Status::Pong),
            Request::Quit => {
                self.reply_empty(r, Status::Bye);
                if let Some(conn) = self.conn_mut(r) {
                    conn.state = State::Closing;
                }
            }
            Request::Put { queue, payload } => self.put(r, queue, payload, payload.len(), now),
            Request::Get {
                queue,
                wait_ms,
                max,
            } => self.get(r, queue, wait_ms, max, now),
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
        }
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
        if let Some(conn) = self.conn_mut(r) {
            protocol::encode_hello(
                &mut conn.output,
                version.min(PROTOCOL_VERSION),
                max_message_size,
                SERVER_NAME,
            );
        }
    }

    /// Stores a message, or hands it to the longest-waiting consumer, and answers
    /// `STORED`, `TRUNCATED` or `FULL`.
    pub(super) fn put(
        &mut self,
        r: ConnRef,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        now: Instant,
    ) {
        loop {
            match self.store.put(queue, payload, original_len, now) {
                Ok(PutOutcome::Stored) => break,
                Ok(PutOutcome::Handed(waiter)) => {
                    if self.deliver(waiter, payload) {
                        break;
                    }
                    // The consumer's socket failed before the message was out: offer
                    // it to the next waiter, or store it, rather than lose it.
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
                    return;
                }
            }
        }
        if let Some(conn) = self.conn_mut(r) {
            if original_len > payload.len() {
                protocol::encode_truncated(
                    &mut conn.output,
                    original_len as u32,
                    payload.len() as u32,
                );
            } else {
                protocol::encode_empty(&mut conn.output, Status::Stored);
            }
        }
    }

    /// Answers a parked consumer with one message and lets it go on with any
    /// requests it sent meanwhile. False if the waiter is not a live, parked
    /// connection.
    /// Writes `payload` to a parked consumer the store handed it to. Returns false if
    /// it could not be written (the socket failed), so that the caller offers it again.
    fn deliver(&mut self, waiter: ConnRef, payload: &[u8]) -> bool {
        let Some(conn) = self.conn_mut(waiter) else {
            log::error!("waiter {waiter:?} had no live connection; message kept");
            return false;
        };
        if conn.broken || !matches!(conn.state, State::Parked { .. }) {
            log::error!("waiter {waiter:?} was not parked; message kept");
            return false;
        }
        let mut writer = MessagesWriter::begin(&mut conn.output);
        writer.push(&mut conn.output, payload);
        writer.finish(&mut conn.output);
        // Written now, before the producer's reply and the rest of its batch: the
        // consumer has waited longest, and this write would come anyway.
        conn.flush();
        conn.state = State::Ready;
        // The frame is the last thing in the output, so a failed write left at most
        // part of it with the client, which cannot read that as a message.
        let delivered = !conn.broken;
        self.ready.push_back(waiter);
        delivered
    }

    fn get(&mut self, r: ConnRef, queue: &str, wait_ms: u32, max: u16, now: Instant) {
        let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) else {
            return;
        };
        let out = &mut conn.output;
        let mut writer = MessagesWriter::begin(out);
        let taken = self
            .store
            .get(queue, usize::from(max), MAX_BATCH_BYTES, now, |payload| {
                writer.push(out, payload)
            });
        if taken > 0 {
            writer.finish(&mut conn.output);
            return;
        }
        conn.output.truncate(writer.start());
        if wait_ms == 0 {
            protocol::encode_empty(&mut conn.output, Status::Empty);
            return;
        }
        let deadline =
            (wait_ms != WAIT_FOREVER).then(|| now + Duration::from_millis(u64::from(wait_ms)));
        conn.state = State::Parked {
            queue: queue.into(),
        };
        self.store.park(queue, r, deadline, now);
    }

    fn stats_report(&self, queue: Option<&str>, now: Instant) -> StatsReport {
        let t = self.store.totals();
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
            ("purged", t.purged),
            ("expired_queues", t.expired_queues),
            ("protocol_errors", self.counters.protocol_errors),
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
        StatsReport {
            server: fields(&server),
            queues,
        }
    }
}

fn queue_report(name: &str, info: QueueInfo) -> QueueReport {
    let figures = [
        ("messages", info.messages),
        ("bytes", info.bytes),
        ("memory", info.memory),
        ("puts", info.puts),
        ("gets", info.gets),
        ("truncations", info.truncations),
        ("waiters", info.waiters),
        ("idle_ms", info.idle.as_millis() as u64),
    ];
    QueueReport {
        name: name.to_owned(),
        fields: fields(&figures),
    }
}

fn fields(figures: &[(&str, u64)]) -> Vec<(String, u64)> {
    figures.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}
