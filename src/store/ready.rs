//! A queue's never-delivered ready messages: one chunked FIFO per priority level, the
//! lowest level first. Most queues only ever use the default level, so levels are a
//! short sorted list made on first use rather than ten FIFOs per queue.

use super::records::{Body, Record, Records};

#[derive(Debug)]
struct Level {
    priority: u8,
    records: Records,
}

/// FIFOs by priority, lowest number first.
#[derive(Debug, Default)]
pub(super) struct Levels {
    levels: Vec<Level>,
}

impl Levels {
    /// Messages held in all levels.
    pub(super) fn len(&self) -> usize {
        self.levels.iter().map(|l| l.records.len()).sum()
    }

    /// True when no level holds a message.
    pub(super) fn is_empty(&self) -> bool {
        self.levels.iter().all(|l| l.records.is_empty())
    }

    /// Payload bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.levels.iter().map(|l| l.records.bytes()).sum()
    }

    /// Chunk memory held.
    pub(super) fn capacity(&self) -> usize {
        self.levels.iter().map(|l| l.records.capacity()).sum()
    }

    /// The FIFO of `priority`, if it was ever used.
    fn level(&self, priority: u8) -> Option<&Records> {
        self.levels
            .iter()
            .find(|l| l.priority == priority)
            .map(|l| &l.records)
    }

    /// Memory a push of this record at `priority` would add.
    pub(super) fn growth_for(&self, priority: u8, id: u64, attempt: u32, len: usize) -> usize {
        match self.level(priority) {
            Some(records) => records.growth_for(id, attempt, len),
            None => Records::default().growth_for(id, attempt, len),
        }
    }

    /// Memory a push of a shared record at `priority` would add.
    pub(super) fn growth_for_shared(&self, priority: u8, id: u64, attempt: u32) -> usize {
        match self.level(priority) {
            Some(records) => records.growth_for_shared(id, attempt),
            None => Records::default().growth_for_shared(id, attempt),
        }
    }

    /// Appends a record at the end of `priority`; returns the memory added.
    pub(super) fn push(&mut self, priority: u8, id: u64, attempt: u32, payload: &[u8]) -> usize {
        self.push_body(priority, id, attempt, Body::Inline(payload))
    }

    /// Appends a record of either kind at the end of `priority`; returns the memory
    /// added.
    pub(super) fn push_body(
        &mut self,
        priority: u8,
        id: u64,
        attempt: u32,
        body: Body<'_>,
    ) -> usize {
        let at = match self.levels.binary_search_by_key(&priority, |l| l.priority) {
            Ok(at) => at,
            Err(at) => {
                self.levels.insert(
                    at,
                    Level {
                        priority,
                        records: Records::default(),
                    },
                );
                at
            }
        };
        self.levels[at].records.push_body(id, attempt, body)
    }

    /// The first non-empty level: (priority, payload length of its front record).
    pub(super) fn front(&self) -> Option<(u8, usize)> {
        self.levels
            .iter()
            .find(|l| !l.records.is_empty())
            .and_then(|l| Some((l.priority, l.records.front_len()?)))
    }

    /// Id of the front record of the first non-empty level.
    pub(super) fn front_id(&self) -> Option<u64> {
        self.levels
            .iter()
            .find(|l| !l.records.is_empty())
            .and_then(|l| l.records.front_id())
    }

    /// Removes the front record of the first non-empty level, handing it to `f` with
    /// its priority; returns the memory freed.
    pub(super) fn pop_with(&mut self, f: impl FnOnce(u8, Record<'_>)) -> Option<usize> {
        let level = self.levels.iter_mut().find(|l| !l.records.is_empty())?;
        let priority = level.priority;
        level.records.pop_with(|r| f(priority, r))
    }

    /// The records of one priority, oldest first.
    pub(super) fn iter_level(&self, priority: u8) -> impl Iterator<Item = Record<'_>> + '_ {
        self.level(priority).into_iter().flat_map(Records::iter)
    }

    /// The priorities in use, lowest first.
    pub(super) fn priorities(&self) -> impl Iterator<Item = u8> + '_ {
        self.levels.iter().map(|l| l.priority)
    }

    /// (message id, body key) of the records that hold a shared body (to release
    /// them before a clear).
    pub(super) fn shared_keys(&self) -> Vec<(u64, u32)> {
        let mut keys = Vec::new();
        for level in self.levels.iter().filter(|l| l.records.shared() > 0) {
            keys.extend(level.records.iter().filter_map(|r| match r.body {
                Body::Shared { key, .. } => Some((r.id, key)),
                Body::Inline(_) => None,
            }));
        }
        keys
    }

    /// Drops every record; returns (records dropped, memory freed).
    pub(super) fn clear(&mut self) -> (usize, usize) {
        let mut dropped = (0, 0);
        for level in &mut self.levels {
            let (n, freed) = level.records.clear();
            dropped.0 += n;
            dropped.1 += freed;
        }
        dropped
    }
}
