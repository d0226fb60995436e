//! Applying records in order to rebuild the state a server loads at start.
//!
//! Queues are identified by name, not by the log's queue numbers: a number only
//! means a name from its QUEUE record on, and may name another queue later. A
//! message's queue is resolved when its PUT or MOVE is applied, and a binding's when
//! its BIND or UNBIND is: bindings belong to the queue's name, as messages do.
//!
//! # Purged messages are kept until the end
//! A base snapshot is written while traffic goes on, so the log after it repeats
//! changes the base already holds. Replaying those again is harmless for records
//! about one id, but PURGE removes whatever the queue holds *now*: a message the
//! base has in queue `dead`, put there by a MOVE after the purge, would be removed
//! by the older PURGE replayed after the base, and the MOVE that follows could not
//! bring it back (a MOVE carries no payload). So purged messages are set aside, not
//! dropped: a later LEASED, REQUEUE or MOVE of one (which a writer never logs for a
//! message that really was purged) brings it back with that record's state; a PUT
//! or DEL of its id forgets it; the rest are dropped by [`Replay::finish`].
//!
//! # What this asks of the writer (STORAGE.md, "Replay")
//! - Every log segment starts with the QUEUE records of the numbers bound when it
//!   is opened. A base binds only the numbers of its own time, and the log after it
//!   starts earlier: a number freed in between would otherwise be unbound when its
//!   older records are replayed, and those records skipped.
//! - No LEASED, REQUEUE or MOVE for a message after the PURGE that removed it.
//! - A SUBJECT after every PUT of a message that has a subject (a PUT sets the whole
//!   state, subject none included).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::record::{Record, ScheduleRuns};

/// A message's state during replay.
#[derive(Debug)]
struct Message {
    /// The queue's slot.
    slot: usize,
    due_ms: u64,
    priority: u8,
    attempt: u32,
    charged: u16,
    in_flight: Option<u16>,
    /// Where it waits when ready (see [`RecoveredMessage::order`]).
    order: Option<u64>,
    payload: Box<[u8]>,
    subject: Option<Box<str>>,
}

/// A queue during replay; a slot per name, kept (even empty) once created.
#[derive(Debug)]
struct Slot {
    name: String,
    /// Ids placed in this queue, for PURGE; some may have left since (they are
    /// checked against the message's own slot) or appear twice.
    members: Vec<u64>,
    /// Messages in this queue now.
    live: usize,
    /// Patterns bound to this queue now. Ordered, so [`Replay::finish`] lists them
    /// sorted without another pass.
    bindings: BTreeSet<Box<str>>,
}

/// Applies records in log order (base first, then each log) and builds a
/// [`Recovered`]. Every record sets state absolutely, so applying a record again, or
/// applying log records that the base already includes, gives the same result.
/// Records that name a message, queue number or binding that does not exist are
/// skipped and counted in [`Recovered::ignored`].
#[derive(Debug, Default)]
pub struct Replay {
    /// Queue name -> its slot.
    by_name: HashMap<String, usize>,
    slots: Vec<Slot>,
    /// Log queue number -> the slot it names now.
    bound: HashMap<u32, usize>,
    messages: IdMap<Message>,
    /// Messages removed by PURGE, in case a later record shows that the purge came
    /// from a log older than their state (module docs).
    purged: IdMap<Message>,
    /// The highest `Ids::next` seen.
    ids_next: u64,
    /// One more than the highest message id seen in any record.
    after_max_id: u64,
    ignored: u64,
    /// Records applied so far: the place numbers of [`RecoveredMessage::order`].
    applied: u64,
    /// Schedules by name.
    schedules: BTreeMap<String, RecoveredSchedule>,
    /// Unique keys by the id of the message that holds (or held) them.
    keys: IdMap<RecoveredKey>,
    /// Expiries by message id: (at_ms, dead-letter).
    expiries: IdMap<(u64, bool)>,
}

impl Replay {
    /// An empty state: no queues, no messages, next id 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &Record<'_>) {
        self.applied += 1;
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
                let state = (queue, due_ms, priority, attempt, charged);
                // A published message's SUBJECT follows (module docs).
                self.put(id, state, payload.into(), None);
            }
            Record::Copy {
                queue,
                id,
                due_ms,
                priority,
                attempt,
                charged,
                of,
            } => {
                self.saw_id(id);
                let Some(source) = self.messages.get(&of) else {
                    // The copy it shares with was not put (a damaged or skipped
                    // record): nothing to take the payload from.
                    self.ignored += 1;
                    return;
                };
                let (payload, subject) = (source.payload.clone(), source.subject.clone());
                self.put(
                    id,
                    (queue, due_ms, priority, attempt, charged),
                    payload,
                    subject,
                );
            }
            Record::Del { id } => {
                self.saw_id(id);
                if self.take(id).is_none() && self.purged.remove(&id).is_none() {
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
                let applied = self.applied;
                match self.get_mut(id) {
                    Some(m) => {
                        m.attempt = attempt;
                        m.charged = charged;
                        m.due_ms = due_ms;
                        m.in_flight = None;
                        // Delivered before: with the returned ones; never delivered
                        // (a delay that ran out): at the end of its queue.
                        m.order = (attempt == 0).then_some(applied);
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
                let Some(mut m) = self.take(id).or_else(|| self.purged.remove(&id)) else {
                    self.ignored += 1;
                    return;
                };
                m.slot = slot;
                m.attempt = attempt;
                m.charged = charged;
                m.due_ms = 0;
                m.in_flight = None;
                m.order = Some(self.applied);
                self.place(id, m);
            }
            Record::Purge { queue } => {
                let Some(&slot) = self.bound.get(&queue) else {
                    self.ignored += 1;
                    return;
                };
                let Some(s) = self.slots.get_mut(slot) else {
                    return;
                };
                s.live = 0;
                for id in std::mem::take(&mut s.members) {
                    if id_in(&self.messages, id, slot)
                        && let Some(m) = self.messages.remove(&id)
                    {
                        self.purged.insert(id, m);
                    }
                }
            }
            Record::Ids { next } => self.ids_next = self.ids_next.max(next),
            Record::Bind { queue, pattern } => {
                match self
                    .bound
                    .get(&queue)
                    .and_then(|&slot| self.slots.get_mut(slot))
                {
                    Some(s) => {
                        if !s.bindings.contains(pattern) {
                            s.bindings.insert(pattern.into());
                        }
                    }
                    None => self.ignored += 1,
                }
            }
            Record::Unbind { queue, pattern } => {
                let removed = self
                    .bound
                    .get(&queue)
                    .and_then(|&slot| self.slots.get_mut(slot))
                    .is_some_and(|s| s.bindings.remove(pattern));
                if !removed {
                    self.ignored += 1;
                }
            }
            Record::Subject { id, subject } => {
                self.saw_id(id);
                // Only a live message: a SUBJECT comes right after the PUT that made
                // it live (a PUT takes its id out of the purged ones), so an id that
                // is not live had that PUT ignored, or the replay began between the
                // two and the message is gone since. Setting it on a purged one could
                // pin the subject of an ignored PUT's message on it.
                match self.messages.get_mut(&id) {
                    Some(m) => m.subject = Some(subject.into()),
                    None => self.ignored += 1,
                }
            }
            Record::Schedule {
                name,
                spec,
                target,
                flags,
                priority,
                anchor_ms,
                runs,
                payload,
            } => {
                self.schedules.insert(
                    name.to_owned(),
                    RecoveredSchedule {
                        name: name.to_owned(),
                        spec: spec.to_owned(),
                        target: target.to_owned(),
                        flags,
                        priority,
                        anchor_ms,
                        runs,
                        payload: payload.into(),
                    },
                );
            }
            Record::Unschedule { name } => {
                if self.schedules.remove(name).is_none() {
                    self.ignored += 1;
                }
            }
            Record::Fired { name, runs } => match self.schedules.get_mut(name) {
                Some(schedule) => schedule.runs = runs,
                None => self.ignored += 1,
            },
            Record::Key {
                id,
                window_ms,
                until_ms,
                queue,
                key,
            } => {
                self.saw_id(id);
                self.keys.insert(
                    id,
                    RecoveredKey {
                        id,
                        queue: queue.to_owned(),
                        key: key.into(),
                        window_ms,
                        until_ms,
                    },
                );
            }
            Record::Unkey { id } => {
                if self.keys.remove(&id).is_none() {
                    self.ignored += 1;
                }
            }
            Record::Expires {
                id,
                at_ms,
                dead_letter,
            } => {
                self.saw_id(id);
                if at_ms == 0 {
                    self.expiries.remove(&id);
                } else {
                    self.expiries.insert(id, (at_ms, dead_letter));
                }
            }
        }
    }

    /// The lowest id a new message may get: above every message id any record named,
    /// and at least every IDS record's `next`.
    pub fn next_id(&self) -> u64 {
        self.ids_next.max(self.after_max_id)
    }

    /// The state to load: queues that hold messages or have bindings, by name, each
    /// with its messages by id; and the bindings.
    pub fn finish(self) -> Recovered {
        let next_id = self.next_id();
        let mut by_slot: Vec<Vec<RecoveredMessage>> = self
            .slots
            .iter()
            .map(|s| Vec::with_capacity(s.live))
            .collect();
        for (id, m) in self.messages {
            if let Some(list) = by_slot.get_mut(m.slot) {
                list.push(RecoveredMessage {
                    expires: self.expiries.get(&id).copied(),
                    id,
                    due_ms: m.due_ms,
                    priority: m.priority,
                    attempt: m.attempt,
                    charged: m.charged,
                    in_flight: m.in_flight,
                    order: m.order,
                    payload: m.payload,
                    subject: m.subject,
                });
            }
        }
        let mut bindings: Vec<RecoveredBinding> = self
            .slots
            .iter()
            .flat_map(|s| {
                s.bindings.iter().map(|pattern| RecoveredBinding {
                    queue: s.name.clone(),
                    pattern: pattern.to_string(),
                })
            })
            .collect();
        // Each name has one slot and a slot's patterns are a set: no duplicates.
        bindings.sort_unstable();
        let mut queues: Vec<RecoveredQueue> = self
            .slots
            .into_iter()
            .zip(by_slot)
            // A bound queue is kept empty: the store recreates it for its bindings.
            .filter(|(s, messages)| !messages.is_empty() || !s.bindings.is_empty())
            .map(|(s, mut messages)| {
                messages.sort_unstable_by_key(|m| m.id);
                RecoveredQueue {
                    name: s.name,
                    messages,
                }
            })
            .collect();
        queues.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut keys: Vec<RecoveredKey> = self.keys.into_values().collect();
        keys.sort_unstable_by_key(|k| k.id);
        Recovered {
            queues,
            bindings,
            schedules: self.schedules.into_values().collect(),
            keys,
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
            members: Vec::new(),
            live: 0,
            bindings: BTreeSet::new(),
        });
        self.by_name.insert(name.to_owned(), slot);
        slot
    }

    fn saw_id(&mut self, id: u64) {
        self.after_max_id = self.after_max_id.max(id.saturating_add(1));
    }

    /// The live message `id`, brought back first if a PURGE set it aside.
    fn get_mut(&mut self, id: u64) -> Option<&mut Message> {
        if !self.messages.contains_key(&id) {
            let m = self.purged.remove(&id)?;
            self.place(id, m);
        }
        self.messages.get_mut(&id)
    }

    /// Removes the live message `id`.
    fn take(&mut self, id: u64) -> Option<Message> {
        let m = self.messages.remove(&id)?;
        if let Some(s) = self.slots.get_mut(m.slot) {
            s.live = s.live.saturating_sub(1);
        }
        Some(m)
    }

    /// Message `id` now exists with this state (queue number, due_ms, priority,
    /// attempt, charged), payload and subject: what a PUT or a COPY says.
    fn put(
        &mut self,
        id: u64,
        (queue, due_ms, priority, attempt, charged): (u32, u64, u8, u32, u16),
        payload: Box<[u8]>,
        subject: Option<Box<str>>,
    ) {
        let Some(&slot) = self.bound.get(&queue) else {
            self.ignored += 1;
            return;
        };
        self.purged.remove(&id);
        let order = (attempt == 0).then_some(self.applied);
        self.place(
            id,
            Message {
                slot,
                due_ms,
                priority,
                attempt,
                charged,
                in_flight: None,
                order,
                payload,
                subject,
            },
        );
    }

    /// Makes `m` the live message `id` in its slot, replacing any earlier state of
    /// `id` (one map operation for a PUT, the commonest record).
    fn place(&mut self, id: u64, m: Message) {
        let slot = m.slot;
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        s.members.push(id);
        s.live += 1;
        // Ids that left (acked, moved) pile up in `members`; past twice the live
        // count they are dropped, so memory follows the live messages, not the log.
        if s.members.len() > 2 * s.live + 1024 {
            let messages = &self.messages;
            s.members.retain(|id| id_in(messages, *id, slot));
            s.members.sort_unstable();
            s.members.dedup();
            // `id` is kept whatever its old state: its new one is not in `messages` yet.
            if s.members.binary_search(&id).is_err() {
                s.members.push(id);
            }
        }
        if let Some(old) = self.messages.insert(id, m)
            && let Some(s) = self.slots.get_mut(old.slot)
        {
            s.live = s.live.saturating_sub(1);
        }
    }
}

fn id_in(messages: &IdMap<Message>, id: u64, slot: usize) -> bool {
    messages.get(&id).is_some_and(|m| m.slot == slot)
}

/// Maps keyed by message id. Ids are numbers the server handed out, not chosen by
/// clients, so a multiply-rotate mix (as the store's `IdHasher`) can replace
/// SipHash for the millions of lookups a large log takes.
type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing, as in the store: one multiply spreads consecutive ids over the
/// table, the rotate brings high bits down to the index bits.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys that are not plain integers; still well defined.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What replay rebuilt: the state to load into the store.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The queues that hold messages or have bindings (or both), sorted by name.
    pub queues: Vec<RecoveredQueue>,
    /// Every binding, sorted by queue name, then pattern; each once. Each binding's
    /// queue is in `queues`.
    pub bindings: Vec<RecoveredBinding>,
    /// Every schedule, sorted by name.
    pub schedules: Vec<RecoveredSchedule>,
    /// Every unique key, sorted by the id of its message. A held one whose message
    /// is not in its queue any more is the loader's to drop.
    pub keys: Vec<RecoveredKey>,
    /// The lowest id the server may give a new message.
    pub next_id: u64,
    /// Records skipped because the message, queue number or binding they name did not
    /// exist (expected after a base snapshot: log records it already includes).
    pub ignored: u64,
}

/// One binding: messages published to a subject that `pattern` matches are copied
/// into `queue`. Ordered by queue name, then pattern (the field order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecoveredBinding {
    /// The queue's name.
    pub queue: String,
    /// The subject pattern, as the BIND record carried it.
    pub pattern: String,
}

/// One unique key, as its last KEY record left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredKey {
    /// The message that holds (or held) it.
    pub id: u64,
    /// Its queue's name.
    pub queue: String,
    /// The key.
    pub key: Box<[u8]>,
    /// How long it is remembered once its message leaves.
    pub window_ms: u32,
    /// Unix-epoch milliseconds until which it is remembered; 0 while held.
    pub until_ms: u64,
}

/// One schedule, as its last SCHEDULE record defined it and its last FIRED record
/// left its runs. Its expression and target are checked by the loader, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSchedule {
    /// Its name.
    pub name: String,
    /// Its expression, as the client gave it.
    pub spec: String,
    /// Its queue or subject.
    pub target: String,
    /// `SCHEDULE_PAUSED`, `SCHEDULE_SUBJECT` (module `record`).
    pub flags: u8,
    /// The priority of its messages.
    pub priority: u8,
    /// When it was defined.
    pub anchor_ms: u64,
    /// Where its runs stand.
    pub runs: ScheduleRuns,
    /// The payload of its messages.
    pub payload: Box<[u8]>,
}

/// One queue and its messages (none, for a queue kept for its bindings).
#[derive(Debug, PartialEq, Eq)]
pub struct RecoveredQueue {
    /// The queue's name.
    pub name: String,
    /// Its messages, by id (the order they were put in, ids being handed out in
    /// increasing order).
    pub messages: Vec<RecoveredMessage>,
}

/// One message, as its last record left it.
#[derive(Debug)]
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
    /// Where it waits when ready (protocol.md 13.3): `None` with the messages that
    /// came back from a lease (ahead, in id order); `Some(n)` at the end of its
    /// queue in the order of `n`, the place of the record that put it there (a
    /// `PUT`, a `MOVE`, or the `REQUEUE` of a delay that ran out). Only the order of
    /// these numbers means something, so equality leaves them out (two logs of the
    /// same state number them differently), and compares `None` against `Some` only
    /// for a message that is ready: in flight or delayed, its place is decided when
    /// it becomes ready.
    pub order: Option<u64>,
    /// Its bytes.
    pub payload: Box<[u8]>,
    /// The subject it was published to (its SUBJECT record); `None` for a message
    /// put straight into a queue.
    pub subject: Option<Box<str>>,
    /// When it expires, as (unix-epoch ms, dead-lettered rather than dropped), from
    /// its last EXPIRES record; `None` if it does not.
    pub expires: Option<(u64, bool)>,
}

impl PartialEq for RecoveredMessage {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.due_ms == other.due_ms
            && self.priority == other.priority
            && self.attempt == other.attempt
            && self.charged == other.charged
            && self.in_flight == other.in_flight
            // Where it waits matters only once it is ready and not in flight.
            && (self.in_flight.is_some()
                || self.due_ms != 0
                || self.order.is_some() == other.order.is_some())
            && self.payload == other.payload
            && self.subject == other.subject
            && self.expires == other.expires
    }
}

impl Eq for RecoveredMessage {}
