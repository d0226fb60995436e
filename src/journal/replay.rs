//! Applying records in order to rebuild the state a server loads at start.
//!
//! Queues are identified by name, not by the log's queue numbers: a number only
//! means a name from its QUEUE record on, and may name another queue later. A
//! message's queue is resolved when its PUT or MOVE is applied.

use std::collections::HashMap;

use super::record::Record;

/// A message's state during replay.
#[derive(Debug)]
struct Message {
    due_ms: u64,
    priority: u8,
    attempt: u32,
    charged: u16,
    in_flight: Option<u16>,
    payload: Box<[u8]>,
}

/// A queue's messages during replay; a slot per name, kept (empty) once created.
#[derive(Debug)]
struct Slot {
    name: String,
    messages: HashMap<u64, Message>,
}

/// Applies records in log order (base first, then each log) and builds a
/// [`Recovered`]. Every record sets state absolutely, so applying a record again, or
/// applying log records that the base already includes, gives the same result.
/// Records that name a message or queue that does not exist are skipped and counted
/// in [`Recovered::ignored`].
#[derive(Debug, Default)]
pub struct Replay {
    /// Queue name -> its slot.
    by_name: HashMap<String, usize>,
    slots: Vec<Slot>,
    /// Log queue number -> the slot it names now.
    bound: HashMap<u32, usize>,
    /// Message id -> the slot holding it. Lets DEL and friends, which carry only an
    /// id, find the message, and PURGE remove a queue's messages without a scan of
    /// every other queue.
    where_is: HashMap<u64, usize>,
    /// The highest `Ids::next` seen.
    ids_next: u64,
    /// One more than the highest message id seen in any record.
    after_max_id: u64,
    ignored: u64,
}

impl Replay {
    /// An empty state: no queues, no messages, next id 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &Record<'_>) {
        match *record {
            Record::Queue { queue, name } => {
                let slot = self.slot(name);
                self.bound.insert(queue, slot);
            }
            Record::Put {
                queue,
                id,
                due_ms,
                priority,
                attempt,
                charged,
                payload,
            } => {
                self.saw_id(id);
                let Some(&slot) = self.bound.get(&queue) else {
                    self.ignored += 1;
                    return;
                };
                self.remove(id);
                self.insert(
                    slot,
                    id,
                    Message {
                        due_ms,
                        priority,
                        attempt,
                        charged,
                        in_flight: None,
                        payload: payload.into(),
                    },
                );
            }
            Record::Del { id } => {
                self.saw_id(id);
                if self.remove(id).is_none() {
                    self.ignored += 1;
                }
            }
            Record::Leased {
                id,
                attempt,
                max_deliveries,
            } => {
                self.saw_id(id);
                match self.get_mut(id) {
                    Some(m) => {
                        m.attempt = attempt;
                        m.in_flight = Some(max_deliveries);
                    }
                    None => self.ignored += 1,
                }
            }
            Record::Requeue {
                id,
                attempt,
                charged,
                due_ms,
            } => {
                self.saw_id(id);
                match self.get_mut(id) {
                    Some(m) => {
                        m.attempt = attempt;
                        m.charged = charged;
                        m.due_ms = due_ms;
                        m.in_flight = None;
                    }
                    None => self.ignored += 1,
                }
            }
            Record::Move {
                id,
                queue,
                attempt,
                charged,
            } => {
                self.saw_id(id);
                let Some(&slot) = self.bound.get(&queue) else {
                    self.ignored += 1;
                    return;
                };
                let Some(mut m) = self.remove(id) else {
                    self.ignored += 1;
                    return;
                };
                m.attempt = attempt;
                m.charged = charged;
                m.due_ms = 0;
                m.in_flight = None;
                self.insert(slot, id, m);
            }
            Record::Purge { queue } => {
                let Some(&slot) = self.bound.get(&queue) else {
                    self.ignored += 1;
                    return;
                };
                if let Some(s) = self.slots.get_mut(slot) {
                    for id in std::mem::take(&mut s.messages).into_keys() {
                        self.where_is.remove(&id);
                    }
                }
            }
            Record::Ids { next } => self.ids_next = self.ids_next.max(next),
        }
    }

    /// The lowest id a new message may get: above every message id any record named,
    /// and at least every IDS record's `next`.
    pub fn next_id(&self) -> u64 {
        self.ids_next.max(self.after_max_id)
    }

    /// The state to load: queues that hold messages, by name, each with its messages
    /// by id.
    pub fn finish(self) -> Recovered {
        let next_id = self.next_id();
        let mut queues: Vec<RecoveredQueue> = self
            .slots
            .into_iter()
            .filter(|s| !s.messages.is_empty())
            .map(|s| {
                let mut messages: Vec<RecoveredMessage> = s
                    .messages
                    .into_iter()
                    .map(|(id, m)| RecoveredMessage {
                        id,
                        due_ms: m.due_ms,
                        priority: m.priority,
                        attempt: m.attempt,
                        charged: m.charged,
                        in_flight: m.in_flight,
                        payload: m.payload,
                    })
                    .collect();
                messages.sort_unstable_by_key(|m| m.id);
                RecoveredQueue {
                    name: s.name,
                    messages,
                }
            })
            .collect();
        queues.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Recovered {
            queues,
            next_id,
            ignored: self.ignored,
        }
    }

    /// The slot of queue `name`, made if new.
    fn slot(&mut self, name: &str) -> usize {
        if let Some(&slot) = self.by_name.get(name) {
            return slot;
        }
        let slot = self.slots.len();
        self.slots.push(Slot {
            name: name.to_owned(),
            messages: HashMap::new(),
        });
        self.by_name.insert(name.to_owned(), slot);
        slot
    }

    fn saw_id(&mut self, id: u64) {
        self.after_max_id = self.after_max_id.max(id.saturating_add(1));
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Message> {
        let slot = *self.where_is.get(&id)?;
        self.slots.get_mut(slot)?.messages.get_mut(&id)
    }

    fn remove(&mut self, id: u64) -> Option<Message> {
        let slot = self.where_is.remove(&id)?;
        self.slots.get_mut(slot)?.messages.remove(&id)
    }

    /// Puts `m` in `slot`; the caller has removed any earlier state of `id`.
    fn insert(&mut self, slot: usize, id: u64, m: Message) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.messages.insert(id, m);
            self.where_is.insert(id, slot);
        }
    }
}

/// What replay rebuilt: the state to load into the store.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The queues that hold messages, sorted by name.
    pub queues: Vec<RecoveredQueue>,
    /// The lowest id the server may give a new message.
    pub next_id: u64,
    /// Records skipped because the message or queue number they name did not exist
    /// (expected after a base snapshot: log records it already includes).
    pub ignored: u64,
}

/// One queue and its messages.
#[derive(Debug, PartialEq, Eq)]
pub struct RecoveredQueue {
    /// The queue's name.
    pub name: String,
    /// Its messages, by id (the order they were put in, ids being handed out in
    /// increasing order).
    pub messages: Vec<RecoveredMessage>,
}

/// One message, as its last record left it.
#[derive(Debug, PartialEq, Eq)]
pub struct RecoveredMessage {
    /// The message id.
    pub id: u64,
    /// Unix-epoch milliseconds at which it becomes ready; 0 = ready now.
    pub due_ms: u64,
    /// Its priority.
    pub priority: u8,
    /// Deliveries so far.
    pub attempt: u32,
    /// Deliveries counted against the dead-letter limit.
    pub charged: u16,
    /// `Some(max_deliveries)` of its lease if it was in flight when the log ended
    /// (the loader makes it ready again, the attempt kept); `None` if not.
    pub in_flight: Option<u16>,
    /// Its bytes.
    pub payload: Box<[u8]>,
}
