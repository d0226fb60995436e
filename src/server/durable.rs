//! The server and its journal (`BDATADIR`): loading at start, one write per loop
//! turn of the records the store made in it, and replies held until the records
//! they depend on are durable (written to the OS; with `BFSYNC=always`, synced),
//! while the replies of other clients go out at once.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use log::{info, warn};
use mio::{Poll, Token, Waker};

use crate::config::{Config, Fsync};
use crate::conn::State;
use crate::journal::Journal;
use crate::protocol::{self, ErrorCode, Request};
use crate::store::Store;

use super::{ConnRef, Server};

/// Token of the waker the journal's helper thread pokes when a sync is done.
pub(super) const WAKER: Token = Token(usize::MAX - 1);

/// Opens the journal of `config.data_dir`, loads it into `store` and starts logging
/// (the files loaded stay: the first rewrite replaces them). `None` without
/// `BDATADIR`.
pub(super) fn open(
    config: &Config,
    poll: &Poll,
    store: &mut Store<ConnRef>,
) -> io::Result<Option<Journal>> {
    let Some(dir) = &config.data_dir else {
        return Ok(None);
    };
    let started = Instant::now();
    crate::net::ignore_file_size_signal();
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (mut journal, recovered, report) = Journal::open(
        dir,
        config.fsync,
        config.segment_size,
        config.recover_skip,
        move || {
            let _ = waker.wake();
        },
    )
    .map_err(|e| io::Error::other(format!("BDATADIR: {e}")))?;
    let loaded = started.elapsed();
    let now = Instant::now();
    let wall = crate::civil::now_ms();
    store.enable_log(now, wall);
    let restored = store.restore(recovered, now, wall);
    if !report.quarantined.is_empty() {
        // What was loaded from the damaged files is in no file any more: a base
        // keeps it before anything else is written.
        if rewrite(&mut journal, store, now) {
            journal.wait_for_base();
        }
    }
    log::debug!(
        "journal: read and replayed in {loaded:?}, restored by {:?}",
        started.elapsed()
    );
    let policy = match config.fsync {
        Fsync::Always => "BFSYNC=always: every change is synced before its reply".to_owned(),
        Fsync::Every(d) => format!("BFSYNC={}: synced every {d:?}", d.as_millis()),
        Fsync::Never => "BFSYNC=never: synced when the OS likes".to_owned(),
    };
    info!(
        "journal {}: loaded {} messages in {} queues from {} files ({} bytes, {} records) \
         in {:?}; {policy}",
        dir.display(),
        restored.messages,
        restored.queues,
        report.files,
        report.bytes,
        report.records,
        started.elapsed(),
    );
    if restored.leases_returned > 0 {
        info!(
            "journal: {} messages were in flight when the server stopped: ready again, \
             each delivery charged",
            restored.leases_returned
        );
    }
    if restored.schedules > 0 {
        info!("journal: {} schedules loaded", restored.schedules);
    }
    if restored.keys > 0 {
        info!("journal: {} unique keys loaded", restored.keys);
    }
    if restored.expired > 0 {
        info!(
            "journal: {} messages expired while the server was down: dropped or \
             dead-lettered as their time to live said",
            restored.expired
        );
    }
    for why in &restored.skipped_schedules {
        warn!("journal: {why}; it was not loaded");
    }
    if report.truncated > 0 {
        warn!(
            "journal: {} bytes of an incomplete last write were cut off",
            report.truncated
        );
    }
    if store.memory() > store.max_memory() {
        warn!(
            "journal: what was loaded ({} bytes) is over BMAXMEMORY ({} bytes): PUT gets \
             FULL until consumers take messages",
            store.memory(),
            store.max_memory()
        );
    }
    Ok(Some(journal))
}

/// Starts a rewrite: a new segment, and a base of what `store` holds now handed to
/// the journal's helper thread. False if no segment could be started.
fn rewrite(journal: &mut Journal, store: &mut Store<ConnRef>, now: Instant) -> bool {
    let bindings = |out: &mut Vec<u8>| store.encode_queues(out);
    let Some(mut base) = journal.begin_rewrite(now, &bindings) else {
        return false;
    };
    store.snapshot(&mut base);
    journal.finish_rewrite(base);
    true
}

impl Server {
    /// Whether `request` changes state and so must write records: refused while the
    /// journal has failed (and `PUT`s while the disk is full), before anything
    /// changes. Returns true if it was refused (an error reply was queued).
    pub(super) fn refuse_change(&mut self, r: ConnRef, request: &Request<'_>) -> bool {
        let Some(journal) = &self.journal else {
            return false;
        };
        let put = matches!(
            request,
            Request::Put { .. }
                | Request::PutWith { .. }
                | Request::PutJob { .. }
                | Request::Publish { .. }
                | Request::Req { .. }
                | Request::Bind { .. }
                | Request::Schedule { .. }
        );
        let changes = put
            || matches!(
                request,
                Request::Get { .. }
                    | Request::GetWithMeta { .. }
                    | Request::Lease { .. }
                    | Request::LeaseWithMeta { .. }
                    | Request::Ack { .. }
                    | Request::Nack { .. }
                    | Request::Purge { .. }
                    | Request::Move { .. }
                    | Request::Unbind { .. }
                    | Request::Unschedule { .. }
                    | Request::PauseSchedule { .. }
            );
        let (code, message) = if let Some(why) = journal.failed()
            && changes
        {
            (
                ErrorCode::Storage,
                format!("the journal failed ({why}); nothing was changed"),
            )
        } else if put && journal.disk_full() {
            (
                ErrorCode::Full,
                "the disk of BDATADIR is full; message not stored".to_owned(),
            )
        } else {
            return false;
        };
        if let Some(conn) = self.conn_mut(r) {
            // Behind a parked receive, replies wait for it (protocol.md 13.7).
            let out = if matches!(conn.state, State::Parked { .. }) {
                &mut conn.held_replies
            } else {
                &mut conn.output
            };
            protocol::encode_error(out, code, false, &message);
        }
        true
    }

    /// After a request of `r` ran: if it made records, its reply (from stream offset
    /// `start`) waits until they are durable.
    pub(super) fn hold_reply(&mut self, r: ConnRef, start: u64, log_before: u64) {
        if self.store.log_position() != log_before {
            self.hold_until_durable(r, start);
        }
    }

    /// Holds `r`'s output from `start` on until every record made so far is durable:
    /// also for a reply that made no record itself but speaks of one that may not be
    /// durable yet (a `DUPLICATE` names a message another connection just put, which
    /// a crash could still lose).
    pub(super) fn hold_until_durable(&mut self, r: ConnRef, start: u64) {
        let Some(journal) = &self.journal else {
            return;
        };
        let pos = self.store.log_position();
        let written = journal.written();
        if let Some(conn) = self.conns.get_mut(r.key).filter(|c| c.id == r.id) {
            let had = conn.holds_output();
            conn.hold_output(start, pos, written);
            if !had {
                self.holding.push(r);
            }
        }
    }

    /// End of a loop turn: writes the records the store made, asks for syncs, starts
    /// a rewrite when the logs have grown, and lets out the replies that became
    /// durable.
    pub(super) fn journal_turn(&mut self, now: Instant) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        journal.collect();
        journal.tick(now);
        let end = self.store.log_position();
        self.store.take_log(&mut self.log_buf);
        let store = &self.store;
        journal.write(&mut self.log_buf, end, now, &|out| store.encode_queues(out));
        let live = self.store.bytes() as u64 + 48 * self.store.message_count() as u64;
        if journal.wants_rewrite(live) {
            rewrite(journal, &mut self.store, now);
        }
        let failed = journal.failed().map(str::to_owned);
        let moved = journal.durable() != self.durable.get();
        self.durable.set(journal.durable());
        if moved || failed.is_some() {
            self.release(failed.as_deref(), now);
        }
    }

    /// Writes out the replies whose records are now durable (or, if the journal
    /// failed, replaces them with a fatal error), and goes on with those
    /// connections' held requests.
    fn release(&mut self, failed: Option<&str>, now: Instant) {
        if self.holding.is_empty() {
            return;
        }
        let durable = self.durable.get();
        let mut still = Vec::new();
        for r in std::mem::take(&mut self.holding) {
            let Some(conn) = self.conn_mut(r) else {
                continue;
            };
            if let Some(why) = failed {
                conn.fail_held(&format!(
                    "the journal failed ({why}): changes answered from here on may not be \
                     on disk"
                ));
            }
            if !conn.holds_output_past(durable) {
                self.service(r, now);
            }
            if self.conn_mut(r).is_some_and(|c| c.holds_output()) {
                still.push(r);
            }
        }
        // Servicing may have listed a connection again (a new reply to hold).
        self.holding.append(&mut still);
        self.holding.sort_unstable_by_key(|r| (r.key, r.id));
        self.holding.dedup();
    }

    /// When the loop must come back for the journal: at once if records wait to be
    /// written, else at its next timer.
    pub(super) fn journal_deadline(&self, now: Instant) -> Option<Instant> {
        let journal = self.journal.as_ref()?;
        if self.store.log_pending() {
            return Some(now);
        }
        journal.next_deadline()
    }

    /// At shutdown: writes and syncs everything, then lets every held reply out.
    pub(super) fn close_journal(&mut self, now: Instant) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        let end = self.store.log_position();
        self.store.take_log(&mut self.log_buf);
        let store = &self.store;
        journal.close(&mut self.log_buf, end, now, &|out| store.encode_queues(out));
        let failed = journal.failed().map(str::to_owned);
        self.durable.set(journal.durable());
        for r in std::mem::take(&mut self.holding) {
            if let Some(conn) = self.conn_mut(r) {
                if let Some(why) = &failed {
                    conn.fail_held(why);
                }
                conn.flush();
            }
        }
    }
}
