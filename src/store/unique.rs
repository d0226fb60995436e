//! Unique keys (protocol.md 18): which key each keyed message of a queue holds, and
//! the keys remembered for a while after their message left the queue (the dedup
//! window), so that a `PUT` with a key already there is not stored twice.
//!
//! A key belongs to its queue: the index is keyed by the queue's name and the key
//! together. A key is *held* from the `PUT` that stores its message until that
//! message leaves the queue (acknowledged, taken by a plain `GET`, purged, moved or
//! dead-lettered); then it is forgotten at once, or *remembered* until its window
//! ends. Remembered keys are capped: past the cap, the one whose window ends first is
//! forgotten first, and counted.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::idhash::IdMap;

/// Memory charged per key on top of twice its length (the index and the id map each
/// keep a copy): the two map entries at their tables' worst load, the window-set
/// entry of a remembered key, and two allocations' overhead. BENCHMARKS.md
/// ("Unique keys") has the measured figure.
pub const KEY_OVERHEAD: usize = 160;

/// Remembered keys kept at most when `BMAXUNIQUEKEYS` is not set.
pub const DEFAULT_MAX_REMEMBERED: usize = crate::config::DEFAULT_MAX_UNIQUE_KEYS;

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyState {
    /// Message `id` holds it; when that message leaves, the key is remembered for
    /// `window_ms` (0: forgotten at once).
    Held { id: u64, window_ms: u32 },
    /// Message `id` held it and left; the key is remembered until `until`.
    Remembered { id: u64, until: Instant },
}

/// What the store's counters say about keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Keys held by messages in their queues.
    pub held: u64,
    /// Keys remembered after their message left.
    pub remembered: u64,
    /// Remembered keys forgotten before their window ended, to stay under the cap.
    pub forgotten: u64,
}

/// The key index of every queue.
#[derive(Debug)]
pub(super) struct Uniques {
    /// (queue, key), encoded by [`compound`], to where it stands.
    index: HashMap<Box<[u8]>, KeyState>,
    /// The encoded (queue, key) of each message id in `index`.
    names: IdMap<u64, Box<[u8]>>,
    /// Remembered keys by the end of their window, as (until, id).
    windows: BTreeSet<(Instant, u64)>,
    max_remembered: usize,
    forgotten: u64,
    memory: usize,
    /// Reused to build lookup keys without an allocation each.
    scratch: Vec<u8>,
}

impl Default for Uniques {
    fn default() -> Self {
        Uniques {
            index: HashMap::new(),
            names: IdMap::default(),
            windows: BTreeSet::new(),
            max_remembered: DEFAULT_MAX_REMEMBERED,
            forgotten: 0,
            memory: 0,
            scratch: Vec::new(),
        }
    }
}

/// The memory one key of `len` encoded bytes is charged.
pub(super) fn key_memory(len: usize) -> usize {
    KEY_OVERHEAD + 2 * len
}

/// The encoded length of (queue, key): what [`key_memory`] is given.
pub(super) fn compound_len(queue: &str, key: &[u8]) -> usize {
    1 + queue.len() + key.len()
}

/// (queue, key) as one byte string: the queue name's length, the name, the key. The
/// length byte keeps ("ab", "c") apart from ("a", "bc").
fn compound(out: &mut Vec<u8>, queue: &str, key: &[u8]) {
    out.clear();
    // Queue names are at most 255 bytes (protocol.md 2.3).
    out.push(queue.len().min(255) as u8);
    out.extend_from_slice(queue.as_bytes());
    out.extend_from_slice(key);
}

/// The (queue, key) of an encoded name.
fn split(name: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = name.split_first()?;
    let (queue, key) = rest.split_at_checked(usize::from(len))?;
    Some((std::str::from_utf8(queue).ok()?, key))
}

impl Uniques {
    /// Caps the keys remembered at once (0: none are).
    pub(super) fn set_max_remembered(&mut self, max: usize) {
        self.max_remembered = max;
    }

    /// Memory the index is charged.
    pub(super) fn memory(&self) -> usize {
        self.memory
    }

    /// Where `key` of `queue` stands at `now`: a remembered key whose window has
    /// ended is as good as forgotten.
    pub(super) fn lookup(&mut self, queue: &str, key: &[u8], now: Instant) -> Option<KeyState> {
        compound(&mut self.scratch, queue, key);
        match self.index.get(self.scratch.as_slice()).copied()? {
            KeyState::Remembered { until, .. } if until <= now => None,
            state => Some(state),
        }
    }

    /// Records that message `id` holds `key` of `queue`, with its window. A key
    /// remembered (or held) before is replaced.
    pub(super) fn hold(&mut self, queue: &str, key: &[u8], id: u64, window_ms: u32) {
        compound(&mut self.scratch, queue, key);
        if let Some(old) = self.index.get(self.scratch.as_slice()).copied() {
            self.forget(old);
        }
        self.insert(id, KeyState::Held { id, window_ms });
    }

    /// Records that `key` of `queue` was held by message `id`, which left at once
    /// (handed to a waiting `GET`): remembered until `now + window_ms`.
    pub(super) fn remember(&mut self, queue: &str, key: &[u8], id: u64, until: Instant) {
        compound(&mut self.scratch, queue, key);
        if let Some(old) = self.index.get(self.scratch.as_slice()).copied() {
            self.forget(old);
        }
        if self.max_remembered == 0 {
            return;
        }
        self.insert(id, KeyState::Remembered { id, until });
        self.windows.insert((until, id));
        self.trim();
    }

    /// Changes the window of the key message `id` holds.
    pub(super) fn set_window(&mut self, id: u64, window_ms: u32) {
        if let Some(name) = self.names.get(&id)
            && let Some(state) = self.index.get_mut(name)
        {
            *state = KeyState::Held { id, window_ms };
        }
    }

    /// Message `id` left its queue at `now`: its key, if it held one, is forgotten,
    /// or remembered until its window ends. Returns the time it is remembered until,
    /// `None` if it is forgotten (or `id` held no key).
    pub(super) fn release(&mut self, id: u64, now: Instant) -> Option<Option<Instant>> {
        let name = self.names.get(&id)?;
        let state = self.index.get_mut(name)?;
        let KeyState::Held { window_ms, .. } = *state else {
            return Some(None);
        };
        if window_ms == 0 || self.max_remembered == 0 {
            let old = *state;
            self.forget(old);
            return Some(None);
        }
        let until = now + Duration::from_millis(u64::from(window_ms));
        *state = KeyState::Remembered { id, until };
        self.windows.insert((until, id));
        self.trim();
        Some(Some(until))
    }

    /// Forgets up to `max` remembered keys whose window ended by `now`; returns how
    /// many.
    pub(super) fn expire(&mut self, now: Instant, max: usize) -> usize {
        let mut n = 0;
        while n < max
            && let Some(&(until, id)) = self.windows.first()
            && until <= now
        {
            self.forget(KeyState::Remembered { id, until });
            n += 1;
        }
        n
    }

    /// When the first remembered key's window ends.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.windows.first().map(|&(at, _)| at)
    }

    /// The counts for `STATS`.
    pub(super) fn counts(&self) -> KeyCounts {
        let remembered = self.windows.len() as u64;
        KeyCounts {
            held: self.index.len() as u64 - remembered,
            remembered,
            forgotten: self.forgotten,
        }
    }

    /// Every key, as (queue name, key, state), for a snapshot.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &[u8], KeyState)> + '_ {
        self.index.iter().filter_map(|(name, &state)| {
            let (queue, key) = split(name)?;
            Some((queue, key, state))
        })
    }

    /// The key message `id` holds, with its window; `None` if it holds none (or
    /// its key is only remembered).
    pub(super) fn held_by(&self, id: u64) -> Option<(&[u8], u32)> {
        let name = self.names.get(&id)?;
        let KeyState::Held { window_ms, .. } = *self.index.get(name)? else {
            return None;
        };
        Some((split(name)?.1, window_ms))
    }

    /// The queue and key of message `id`'s key.
    pub(super) fn name_of(&self, id: u64) -> Option<(&str, &[u8])> {
        split(self.names.get(&id)?)
    }

    fn insert(&mut self, id: u64, state: KeyState) {
        let name: Box<[u8]> = self.scratch.as_slice().into();
        self.memory += key_memory(name.len());
        self.names.insert(id, name.clone());
        self.index.insert(name, state);
    }

    /// Drops a key entirely.
    fn forget(&mut self, state: KeyState) {
        let id = match state {
            KeyState::Held { id, .. } => id,
            KeyState::Remembered { id, until } => {
                self.windows.remove(&(until, id));
                id
            }
        };
        if let Some(name) = self.names.remove(&id) {
            self.memory -= key_memory(name.len());
            self.index.remove(&name);
        }
    }

    /// Forgets the remembered keys whose windows end first while there are more
    /// than the cap allows.
    fn trim(&mut self) {
        while self.windows.len() > self.max_remembered {
            let Some(&(until, id)) = self.windows.first() else {
                break;
            };
            self.forget(KeyState::Remembered { id, until });
            self.forgotten += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_held_key_is_found_until_released() {
        let t0 = Instant::now();
        let mut u = Uniques::default();
        assert_eq!(u.lookup("q", b"k", t0), None);
        u.hold("q", b"k", 7, 0);
        assert_eq!(
            u.lookup("q", b"k", t0),
            Some(KeyState::Held {
                id: 7,
                window_ms: 0
            })
        );
        assert_eq!(
            u.lookup("other", b"k", t0),
            None,
            "keys belong to their queue"
        );
        assert_eq!(u.counts().held, 1);
        assert_eq!(u.release(7, t0), Some(None));
        assert_eq!(u.lookup("q", b"k", t0), None);
        assert_eq!(u.memory(), 0);
        assert_eq!(u.release(7, t0), None, "released once");
    }

    #[test]
    fn queue_and_key_do_not_run_together() {
        let t0 = Instant::now();
        let mut u = Uniques::default();
        u.hold("ab", b"c", 1, 0);
        assert_eq!(u.lookup("a", b"bc", t0), None);
    }

    #[test]
    fn a_window_remembers_the_key_until_it_ends() {
        let t0 = Instant::now();
        let mut u = Uniques::default();
        u.hold("q", b"k", 1, 1000);
        assert_eq!(u.release(1, ms(t0, 10)), Some(Some(ms(t0, 1010))));
        let remembered = Some(KeyState::Remembered {
            id: 1,
            until: ms(t0, 1010),
        });
        assert_eq!(u.lookup("q", b"k", ms(t0, 1009)), remembered);
        assert_eq!(u.lookup("q", b"k", ms(t0, 1010)), None, "ended");
        assert_eq!(u.counts().remembered, 1);
        assert_eq!(u.next_deadline(), Some(ms(t0, 1010)));
        assert_eq!(u.expire(ms(t0, 1009), 10), 0);
        assert_eq!(u.expire(ms(t0, 1010), 0), 0, "no budget");
        assert_eq!(u.expire(ms(t0, 1010), 10), 1);
        assert_eq!(u.counts(), KeyCounts::default());
        assert_eq!(u.memory(), 0);
        assert_eq!(u.next_deadline(), None);
    }

    #[test]
    fn holding_a_remembered_key_again_replaces_it() {
        let t0 = Instant::now();
        let mut u = Uniques::default();
        u.hold("q", b"k", 1, 1000);
        u.release(1, t0);
        u.hold("q", b"k", 2, 0);
        assert_eq!(
            u.lookup("q", b"k", t0),
            Some(KeyState::Held {
                id: 2,
                window_ms: 0
            })
        );
        assert_eq!(u.counts().remembered, 0);
        assert_eq!(u.next_deadline(), None);
        assert_eq!(u.memory(), key_memory(compound_len("q", b"k")));
    }

    #[test]
    fn the_cap_forgets_the_window_that_ends_first() {
        let t0 = Instant::now();
        let mut u = Uniques::default();
        u.set_max_remembered(2);
        for (id, window) in [(1, 3000), (2, 1000), (3, 2000)] {
            u.hold("q", &[id as u8], id, window);
            u.release(id, t0);
        }
        assert_eq!(u.counts().remembered, 2);
        assert_eq!(u.counts().forgotten, 1);
        assert_eq!(u.lookup("q", &[2], t0), None, "its window ended first");
        assert!(u.lookup("q", &[1], t0).is_some());
        assert!(u.lookup("q", &[3], t0).is_some());
    }

    #[test]
    fn a_cap_of_zero_remembers_nothing() {
        let t0 = Instant::now();
        let mut u = Uniques::default();
        u.set_max_remembered(0);
        u.hold("q", b"k", 1, 1000);
        assert_eq!(u.release(1, t0), Some(None));
        u.remember("q", b"j", 2, ms(t0, 5));
        assert_eq!(u.counts(), KeyCounts::default());
        assert_eq!(u.memory(), 0);
    }

    #[test]
    fn iter_gives_queue_key_and_state() {
        let t0 = Instant::now();
        let mut u = Uniques::default();
        u.hold("jobs", b"a", 1, 0);
        u.remember("mail", b"b", 2, ms(t0, 5));
        let mut all: Vec<_> = u
            .iter()
            .map(|(q, k, s)| (q.to_owned(), k.to_vec(), s))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            all,
            vec![
                (
                    "jobs".to_owned(),
                    b"a".to_vec(),
                    KeyState::Held {
                        id: 1,
                        window_ms: 0
                    }
                ),
                (
                    "mail".to_owned(),
                    b"b".to_vec(),
                    KeyState::Remembered {
                        id: 2,
                        until: ms(t0, 5)
                    }
                ),
            ]
        );
    }
}
