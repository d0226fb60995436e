//! The map from queue name to queue, with the last queue found remembered.
//!
//! Consecutive requests nearly always name the same queue (a producer or consumer
//! pipelining to one queue), so a lookup first compares the name with the last one
//! found and only hashes on a miss. The profile in BENCHMARKS.md showed SipHash at a
//! quarter of the server's own instructions under pipelined load; SipHash itself is
//! kept because queue names come from clients (no hash flooding).

use std::collections::HashMap;

use slab::Slab;

/// Queues by name: a hash index into a slab, plus a one-entry cache of the last hit.
#[derive(Debug)]
pub(super) struct Queues<Q> {
    index: HashMap<Box<str>, usize>,
    slots: Slab<Q>,
    /// Slab key and name of the last queue found or inserted.
    last: Option<usize>,
    last_name: String,
}

impl<Q> Default for Queues<Q> {
    fn default() -> Self {
        Queues {
            index: HashMap::new(),
            slots: Slab::new(),
            last: None,
            last_name: String::new(),
        }
    }
}

impl<Q> Queues<Q> {
    /// The queue named `name`, if it exists.
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Q> {
        let key = match self.last {
            Some(key) if self.last_name == name => key,
            _ => {
                let key = *self.index.get(name)?;
                self.remember(key, name);
                key
            }
        };
        self.slots.get_mut(key)
    }

    /// The slab key of the queue named `name`, if it exists. A key stays valid until
    /// that queue is removed.
    pub(super) fn key_of(&mut self, name: &str) -> Option<usize> {
        match self.last {
            Some(key) if self.last_name == name => Some(key),
            _ => {
                let key = *self.index.get(name)?;
                self.remember(key, name);
                Some(key)
            }
        }
    }

    /// [`Queues::key_of`] through a shared borrow (no cache update).
    pub(super) fn key_of_shared(&self, name: &str) -> Option<usize> {
        match self.last {
            Some(key) if self.last_name == name => Some(key),
            _ => self.index.get(name).copied(),
        }
    }

    /// The queue with slab key `key`.
    pub(super) fn by_key(&self, key: usize) -> Option<&Q> {
        self.slots.get(key)
    }

    /// The queue with slab key `key`.
    pub(super) fn by_key_mut(&mut self, key: usize) -> Option<&mut Q> {
        self.slots.get_mut(key)
    }

    /// The queue named `name`, if it exists (no cache update: a shared borrow).
    pub(super) fn get(&self, name: &str) -> Option<&Q> {
        self.slots.get(*self.index.get(name)?)
    }

    /// Adds a queue that does not exist yet and returns it.
    pub(super) fn insert(&mut self, name: &str, queue: Q) -> &mut Q {
        let key = self.slots.insert(queue);
        self.index.insert(name.into(), key);
        self.remember(key, name);
        &mut self.slots[key]
    }

    /// Removes the queue named `name` and returns it.
    pub(super) fn remove(&mut self, name: &str) -> Option<Q> {
        let key = self.index.remove(name)?;
        if self.last == Some(key) {
            // Its slab key will be reused by the next queue created.
            self.last = None;
        }
        self.slots.try_remove(key)
    }

    /// Number of queues.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Every queue with its name, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Q)> + '_ {
        self.index
            .iter()
            .filter_map(|(name, &key)| Some((&**name, self.slots.get(key)?)))
    }

    /// Every queue with its slab key, in no particular order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (usize, &Q)> + '_ {
        self.slots.iter()
    }

    /// Every queue, in no particular order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Q> + '_ {
        self.slots.iter().map(|(_, q)| q)
    }

    fn remember(&mut self, key: usize, name: &str) {
        self.last = Some(key);
        self.last_name.clear();
        self.last_name.push_str(name);
    }
}

#[cfg(test)]
mod tests {
    use super::Queues;

    #[test]
    fn lookups_find_the_right_queue_whatever_was_found_last() {
        let mut qs = Queues::default();
        qs.insert("a", 1);
        qs.insert("b", 2);
        assert_eq!(qs.get_mut("a"), Some(&mut 1));
        assert_eq!(qs.get_mut("a"), Some(&mut 1));
        assert_eq!(qs.get_mut("b"), Some(&mut 2));
        assert_eq!(qs.get_mut("c"), None);
        assert_eq!(qs.get_mut("b"), Some(&mut 2));
        assert_eq!(qs.get("a"), Some(&1));
        assert_eq!(qs.len(), 2);
    }

    #[test]
    fn a_removed_queue_is_not_found_through_a_reused_slot() {
        let mut qs = Queues::default();
        qs.insert("old", 1);
        assert_eq!(qs.get_mut("old"), Some(&mut 1));
        assert_eq!(qs.remove("old"), Some(1));
        // The new queue takes the freed slab slot.
        qs.insert("new", 2);
        assert_eq!(qs.get_mut("old"), None);
        assert_eq!(qs.get_mut("new"), Some(&mut 2));
        assert_eq!(qs.remove("old"), None);
        assert_eq!(qs.len(), 1);
    }

    #[test]
    fn removing_another_queue_keeps_the_last_one_found() {
        let mut qs = Queues::default();
        qs.insert("a", 1);
        qs.insert("b", 2);
        assert_eq!(qs.get_mut("a"), Some(&mut 1));
        assert_eq!(qs.remove("b"), Some(2));
        assert_eq!(qs.get_mut("a"), Some(&mut 1));
        let mut all: Vec<(&str, &i32)> = qs.iter().collect();
        all.sort();
        assert_eq!(all, [("a", &1)]);
        assert_eq!(qs.values().count(), 1);
    }
}
