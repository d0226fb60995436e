//! Schedules: named timers that produce a message on a queue or a subject at the
//! times of a cron expression or a fixed interval (protocol.md section 17).
//!
//! No clock and no I/O: every method takes the wall-clock time in milliseconds since
//! 1970 (UTC), because run times are calendar times that must mean the same after a
//! restart. The server asks [`Schedules::next_due`] for its poll timeout, so that
//! 10,000 idle schedules cost nothing between their runs, and takes due runs with
//! [`Schedules::take_due`].
//!
//! # Misfires
//! A schedule runs at most once per call of `take_due` however many of its run
//! times have passed: after a restart (or a clock jump, or a loop stalled by a huge
//! burst) it runs once, late, and then at its next run time after now. A run taken
//! more than [`MISFIRE_AFTER_MS`] after its time, or after a later run time has
//! passed too, is counted as a misfire. A paused schedule misses its runs without
//! catching up when resumed.

pub mod cron;

use std::collections::{BTreeMap, BTreeSet};

pub use cron::Spec;

/// Memory charged per schedule on top of its name, expression, target and payload:
/// the map and due-set entries and the struct.
pub const SCHEDULE_OVERHEAD: usize = 192;

/// A run taken more than this long after its time counts as a misfire: the server
/// was down or stalled through it (a busy loop turn is far shorter).
pub const MISFIRE_AFTER_MS: u64 = 1000;

/// Where a schedule's messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Put on this queue.
    Queue(Box<str>),
    /// Published to this subject (copies to the bound queues, events to subscribers).
    Subject(Box<str>),
}

impl Target {
    /// The queue name or subject.
    pub fn name(&self) -> &str {
        match self {
            Target::Queue(name) | Target::Subject(name) => name,
        }
    }
}

/// What a schedule is, as a client defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The schedule's name: 1 to 255 bytes of UTF-8, like a queue name.
    pub name: Box<str>,
    /// The expression as given (kept for listing).
    pub spec_text: Box<str>,
    /// The expression, parsed.
    pub spec: Spec,
    /// Where its messages go.
    pub target: Target,
    /// The priority of its messages (0..=9).
    pub priority: u8,
    /// Their payload.
    pub payload: Box<[u8]>,
}

/// A schedule and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// What it is.
    pub def: Definition,
    /// Paused: no runs until resumed.
    pub paused: bool,
    /// When it was defined: `@every` runs fall on this plus whole intervals.
    pub anchor_ms: u64,
    /// Its next run is the first run time after this: its last run time, or when it
    /// was defined or resumed.
    pub after_ms: u64,
    /// The next run time; 0 while paused or when none is left (past year 9999).
    pub next_ms: u64,
    /// The time of its last run; 0 before the first.
    pub last_ms: u64,
    /// Runs so far.
    pub runs: u64,
    /// Runs that came late, standing for one or more missed run times (module docs).
    pub misfires: u64,
    /// Runs whose message was refused (a cap was reached).
    pub failures: u64,
}

impl Definition {
    /// Memory charged for a schedule of this definition.
    pub fn memory(&self) -> usize {
        SCHEDULE_OVERHEAD
            + 2 * self.name.len()
            + self.spec_text.len()
            + self.target.name().len()
            + self.payload.len()
    }
}

impl Schedule {
    /// Memory charged for it.
    pub fn memory(&self) -> usize {
        self.def.memory()
    }
}

/// A run that is due: what the caller must produce. The schedule has already moved
/// on to its next run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<'a> {
    /// The schedule.
    pub schedule: &'a Schedule,
    /// The run time it stands for.
    pub at_ms: u64,
    /// Later run times had passed too, and were skipped.
    pub misfire: bool,
}

/// Every schedule, by name, and their run times in order.
#[derive(Debug, Default)]
pub struct Schedules {
    by_name: BTreeMap<Box<str>, Schedule>,
    /// (next run time, name) of every schedule that has one.
    due: BTreeSet<(u64, Box<str>)>,
    memory: usize,
    totals: Totals,
}

/// Counters of all schedules, for `STATS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Runs of every schedule.
    pub runs: u64,
    /// Late runs standing for missed run times.
    pub misfires: u64,
    /// Runs whose message was refused.
    pub failures: u64,
}

impl Schedules {
    /// Defines a schedule at `now_ms`, or replaces the one of that name (its
    /// counters start again). Returns whether it is new, and its next run time.
    pub fn define(&mut self, def: Definition, now_ms: u64) -> (bool, u64) {
        let schedule = Schedule {
            def,
            paused: false,
            anchor_ms: now_ms,
            after_ms: now_ms,
            next_ms: 0,
            last_ms: 0,
            runs: 0,
            misfires: 0,
            failures: 0,
        };
        let created = self.remove(&schedule.def.name).is_none();
        let next = self.insert(schedule);
        (created, next)
    }

    /// Adds a schedule as it was (from the journal), computing its next run time.
    /// Returns that time (0: none).
    pub fn insert(&mut self, mut schedule: Schedule) -> u64 {
        self.remove(&schedule.def.name);
        schedule.next_ms = if schedule.paused {
            0
        } else {
            schedule
                .def
                .spec
                .next_after(schedule.after_ms, schedule.anchor_ms)
                .unwrap_or(0)
        };
        if schedule.next_ms != 0 {
            self.due
                .insert((schedule.next_ms, schedule.def.name.clone()));
        }
        self.memory += schedule.memory();
        let next = schedule.next_ms;
        self.by_name.insert(schedule.def.name.clone(), schedule);
        next
    }

    /// Deletes a schedule; returns it if there was one.
    pub fn remove(&mut self, name: &str) -> Option<Schedule> {
        let schedule = self.by_name.remove(name)?;
        if schedule.next_ms != 0 {
            self.due
                .remove(&(schedule.next_ms, schedule.def.name.clone()));
        }
        self.memory -= schedule.memory();
        Some(schedule)
    }

    /// Pauses or resumes a schedule at `now_ms`; a resumed one runs next at its
    /// first run time after `now_ms`. Returns it, or `None` if there is none.
    pub fn set_paused(&mut self, name: &str, paused: bool, now_ms: u64) -> Option<&Schedule> {
        let current = self.by_name.get(name)?;
        if current.paused != paused {
            let mut schedule = self.remove(name)?;
            schedule.paused = paused;
            if !paused {
                // Never before its last run: a wall clock set back must not bring
                // back a run time that has run.
                schedule.after_ms = now_ms.max(schedule.last_ms);
            }
            self.insert(schedule);
        }
        self.by_name.get(name)
    }

    /// The schedule named `name`.
    pub fn get(&self, name: &str) -> Option<&Schedule> {
        self.by_name.get(name)
    }

    /// Every schedule, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Schedule> + '_ {
        self.by_name.values()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Memory charged for all of them.
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// Counters of all runs so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The soonest run time of any schedule.
    pub fn next_due(&self) -> Option<u64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Takes the soonest run if it is due at `now_ms`: the schedule records the run
    /// and moves on to its first run time after `now_ms` (module docs, "Misfires").
    pub fn take_due(&mut self, now_ms: u64) -> Option<Run<'_>> {
        let (at_ms, _) = self.due.first()?;
        if *at_ms > now_ms {
            return None;
        }
        let (at_ms, name) = self.due.pop_first()?;
        let schedule = self.by_name.get_mut(&name)?;
        let spec = &schedule.def.spec;
        let after_run = spec.next_after(at_ms, schedule.anchor_ms);
        let misfire = now_ms.saturating_sub(at_ms) > MISFIRE_AFTER_MS
            || after_run.is_some_and(|next| next <= now_ms);
        schedule.last_ms = at_ms;
        schedule.after_ms = at_ms.max(now_ms);
        // Saturating: the counters come back from the journal, which may say anything.
        schedule.runs = schedule.runs.saturating_add(1);
        self.totals.runs += 1;
        if misfire {
            schedule.misfires = schedule.misfires.saturating_add(1);
            self.totals.misfires += 1;
        }
        schedule.next_ms = spec
            .next_after(schedule.after_ms, schedule.anchor_ms)
            .unwrap_or(0);
        if schedule.next_ms != 0 {
            self.due.insert((schedule.next_ms, name));
        }
        Some(Run {
            schedule,
            at_ms,
            misfire,
        })
    }

    /// Counts a run of `name` whose message was refused.
    pub fn count_failure(&mut self, name: &str) {
        if let Some(schedule) = self.by_name.get_mut(name) {
            schedule.failures = schedule.failures.saturating_add(1);
            self.totals.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests;
