//! Message expiry (protocol.md section 19): when each message with a time to live
//! expires, ordered by that time, so that the store finds the next one due without
//! looking at any other message. Only messages with a time to live are here, and
//! each is held (`Store::held`), so that it can be taken out of its queue alone.

use std::collections::BTreeSet;
use std::time::Instant;

use super::idhash::IdMap;

/// Memory charged per message with a time to live, on top of its held message: its
/// entry in the id map (at the table's worst load) and its key in the ordered set.
pub const EXPIRY_OVERHEAD: usize = 128;

/// When a message expires, and what happens to it then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expiry {
    /// From this instant on, it is never delivered.
    pub(super) at: Instant,
    /// It goes to the dead-letter queue instead of away.
    pub(super) dead_letter: bool,
}

/// Every message's expiry, by id and by time.
#[derive(Debug, Default)]
pub(super) struct Expiries {
    by_id: IdMap<u64, Expiry>,
    /// (at, id) of the messages not yet found expired.
    due: BTreeSet<(Instant, u64)>,
}

impl Expiries {
    /// Message `id` expires as `expiry` says (replacing an earlier expiry).
    pub(super) fn insert(&mut self, id: u64, expiry: Expiry) {
        self.remove(id);
        self.by_id.insert(id, expiry);
        self.due.insert((expiry.at, id));
    }

    /// Message `id` no longer expires (it left, or lost its time to live).
    pub(super) fn remove(&mut self, id: u64) -> Option<Expiry> {
        let expiry = self.by_id.remove(&id)?;
        self.due.remove(&(expiry.at, id));
        Some(expiry)
    }

    /// Message `id`'s expiry.
    pub(super) fn get(&self, id: u64) -> Option<Expiry> {
        self.by_id.get(&id).copied()
    }

    /// Whether message `id` has expired by `now`.
    pub(super) fn expired(&self, id: u64, now: Instant) -> bool {
        self.by_id.get(&id).is_some_and(|e| e.at <= now)
    }

    /// The next message found expired by `now`, taken off the time order (it stays
    /// known by id until [`Expiries::remove`]: one in flight expires only once its
    /// lease ends).
    pub(super) fn next_due(&mut self, now: Instant) -> Option<u64> {
        let &(at, id) = self.due.first()?;
        if at > now {
            return None;
        }
        self.due.remove(&(at, id));
        Some(id)
    }

    /// When the next message expires.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.due.first().map(|&(at, _)| at)
    }

    /// Messages with an expiry.
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every message's expiry, for a snapshot.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, Expiry)> + '_ {
        self.by_id.iter().map(|(&id, &e)| (id, e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn messages_come_due_in_time_order_and_stay_known_until_removed() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut e = Expiries::default();
        e.insert(
            1,
            Expiry {
                at: at(20),
                dead_letter: false,
            },
        );
        e.insert(
            2,
            Expiry {
                at: at(10),
                dead_letter: true,
            },
        );
        e.insert(
            3,
            Expiry {
                at: at(30),
                dead_letter: false,
            },
        );
        e.insert(
            3,
            Expiry {
                at: at(5),
                dead_letter: false,
            },
        );
        assert_eq!(e.next_deadline(), Some(at(5)));
        assert_eq!(e.next_due(at(4)), None);
        assert_eq!(e.next_due(at(20)), Some(3));
        assert_eq!(e.next_due(at(20)), Some(2));
        assert_eq!(e.next_due(at(20)), Some(1));
        assert_eq!(e.next_due(at(99)), None);
        assert!(e.expired(2, at(10)) && !e.expired(2, at(9)));
        assert_eq!(e.len(), 3, "known until removed");
        assert_eq!(e.remove(2).map(|x| x.dead_letter), Some(true));
        assert_eq!(e.remove(2), None);
        assert_eq!(e.len(), 2);
        assert_eq!(e.next_deadline(), None);
    }
}
