//! The store's side of the journal (`BDATADIR`): every change to a message is
//! encoded as a record the moment it happens, into a buffer the server writes out
//! once per loop turn (see `crate::journal` and STORAGE.md).
//!
//! The store has no clock of its own, and records carry wall-clock due times (a
//! restart must not move a delay), so the server tells the log, once per loop turn,
//! which wall-clock time goes with the monotonic `now` it passes to the store.

use std::time::Instant;

use crate::journal::record::{self, Record};

/// Ids are reserved in the log this many at a time (an `IDS` record), so that an id
/// handed out but never logged (a `PUT` given straight to a waiting `GET`) is still
/// never given again after a restart, at the cost of one small record per block.
const ID_BLOCK: u64 = 1 << 16;

/// Records not yet taken by the server, and what is needed to make them.
#[derive(Debug)]
pub(super) struct StoreLog {
    buf: Vec<u8>,
    /// Log position of `buf[0]`: bytes encoded (and taken) before it.
    taken: u64,
    /// A monotonic instant and the unix time in milliseconds that goes with it.
    anchor: (Instant, u64),
    /// Ids below this are covered by an `IDS` record.
    ids_reserved: u64,
}

impl StoreLog {
    pub(super) fn new(now: Instant, wall_ms: u64) -> Self {
        StoreLog {
            buf: Vec::new(),
            taken: 0,
            anchor: (now, wall_ms),
            ids_reserved: 0,
        }
    }

    /// Appends one record.
    pub(super) fn push(&mut self, record: &Record<'_>) {
        record::encode(record, &mut self.buf);
    }

    /// Logs the `PUT` of a message just accepted (never delivered, nothing charged)
    /// into queue `key`; `due_ms` 0 for a message ready now.
    pub(super) fn put_new(
        &mut self,
        key: usize,
        id: u64,
        due_ms: u64,
        priority: u8,
        payload: &[u8],
    ) {
        self.push(&Record::Put {
            queue: key as u32,
            id,
            due_ms,
            priority,
            attempt: 0,
            charged: 0,
            payload,
        });
    }

    /// Logs an `IDS` record if `id` is not yet covered by one.
    pub(super) fn reserve_id(&mut self, id: u64) {
        if id >= self.ids_reserved {
            self.ids_reserved = id.saturating_add(ID_BLOCK);
            let next = self.ids_reserved;
            self.push(&Record::Ids { next });
        }
    }

    /// Forgets the reserved block: the next id at or above `next` logs a new one (a
    /// snapshot has just recorded `next` itself).
    pub(super) fn restart_ids(&mut self, next: u64) {
        self.ids_reserved = next;
    }

    /// The unix time in milliseconds of the monotonic instant `at` (for due times).
    pub(super) fn wall_ms(&self, at: Instant) -> u64 {
        let (now, wall) = self.anchor;
        if at >= now {
            wall.saturating_add(ms(at - now))
        } else {
            wall.saturating_sub(ms(now - at)).max(1)
        }
    }

    pub(super) fn set_clock(&mut self, now: Instant, wall_ms: u64) {
        self.anchor = (now, wall_ms);
    }

    /// Log position after the last record encoded.
    pub(super) fn position(&self) -> u64 {
        self.taken + self.buf.len() as u64
    }

    /// Moves the records encoded so far to the end of `out`.
    pub(super) fn take(&mut self, out: &mut Vec<u8>) {
        self.taken += self.buf.len() as u64;
        if out.is_empty() {
            std::mem::swap(out, &mut self.buf);
        } else {
            out.extend_from_slice(&self.buf);
            self.buf.clear();
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
