//! The store's side of schedules: they count against the memory cap, every change is
//! logged to the journal, and a snapshot and a restart carry them over. When a run is
//! due the store says what to produce; the server produces it like a client's `PUT`
//! or `PUB`.

use std::fmt;
use std::hash::Hash;

use crate::journal::record::{Record, SCHEDULE_PAUSED, SCHEDULE_SUBJECT, ScheduleRuns};
use crate::journal::replay::RecoveredSchedule;
use crate::schedule::{Definition, Schedule, Schedules, Spec, Target};

use super::{Full, Store};

/// A run the server must carry out: put `payload` on the queue, or publish it to the
/// subject, of `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRun {
    /// The schedule's name.
    pub name: Box<str>,
    /// Where the message goes.
    pub target: Target,
    /// Its priority.
    pub priority: u8,
    /// Its payload.
    pub payload: Box<[u8]>,
    /// The run time it stands for.
    pub at_ms: u64,
    /// It stands for missed run times too.
    pub misfire: bool,
}

impl<W: Copy + Eq + Hash + fmt::Debug> Store<W> {
    /// Defines schedule `def.name` at `wall_ms` (unix-epoch milliseconds), or
    /// replaces it. Returns whether it is new, and its next run time.
    ///
    /// # Errors
    /// [`Full`] when it would take the store over its memory cap; nothing changes.
    pub fn define_schedule(&mut self, def: Definition, wall_ms: u64) -> Result<(bool, u64), Full> {
        let old = self.schedules.get(&def.name).map_or(0, Schedule::memory);
        let new = def.memory();
        if new > old {
            self.check_room(new - old)?;
        }
        let name = def.name.clone();
        let result = self.schedules.define(def, wall_ms);
        self.memory = self.memory + new - old;
        self.outside = self.outside + new - old;
        self.log_schedule(&name);
        Ok(result)
    }

    /// Deletes schedule `name`; false if there was none.
    pub fn remove_schedule(&mut self, name: &str) -> bool {
        let Some(schedule) = self.schedules.remove(name) else {
            return false;
        };
        self.uncharge(schedule.memory());
        if let Some(log) = &mut self.log {
            log.push(&Record::Unschedule { name });
        }
        true
    }

    /// Pauses or resumes schedule `name` at `wall_ms`; returns its next run time
    /// (0 while paused), or `None` if there is no such schedule.
    pub fn pause_schedule(&mut self, name: &str, paused: bool, wall_ms: u64) -> Option<u64> {
        let before = self.schedules.get(name)?.paused;
        let next = self.schedules.set_paused(name, paused, wall_ms)?.next_ms;
        if before != paused {
            self.log_schedule(name);
        }
        Some(next)
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }

    /// The soonest run time of any schedule (unix-epoch milliseconds).
    pub fn next_schedule_due(&self) -> Option<u64> {
        self.schedules.next_due()
    }

    /// The soonest run due at `wall_ms`, now recorded as run (and logged so, before
    /// the message it makes: a crash in between loses that one message rather than
    /// running the schedule twice for one time).
    pub fn take_due_run(&mut self, wall_ms: u64) -> Option<DueRun> {
        let run = self.schedules.take_due(wall_ms)?;
        let s = run.schedule;
        let due = DueRun {
            name: s.def.name.clone(),
            target: s.def.target.clone(),
            priority: s.def.priority,
            payload: s.def.payload.clone(),
            at_ms: run.at_ms,
            misfire: run.misfire,
        };
        if let Some(log) = &mut self.log {
            log.push(&Record::Fired {
                name: &s.def.name,
                runs: runs_of(s),
            });
        }
        Some(due)
    }

    /// Takes the soonest run due at `wall_ms` as a refused one, without logging it:
    /// for when the journal cannot take records (it failed, or its disk is full), so
    /// that runs neither make messages that would not be kept nor pile up records.
    /// Returns its schedule's name and failures so far.
    pub fn skip_due_run(&mut self, wall_ms: u64) -> Option<(Box<str>, u64)> {
        let name = self.schedules.take_due(wall_ms)?.schedule.def.name.clone();
        self.schedules.count_failure(&name);
        let failures = self.schedules.get(&name).map_or(0, |s| s.failures);
        Some((name, failures))
    }

    /// Counts a run of `name` whose message was refused.
    pub fn schedule_failed(&mut self, name: &str) {
        self.schedules.count_failure(name);
        if let (Some(log), Some(s)) = (&mut self.log, self.schedules.get(name)) {
            log.push(&Record::Fired {
                name,
                runs: runs_of(s),
            });
        }
    }

    /// Loads the schedules a journal replay recovered; returns how many, and a line
    /// for each one that could not be loaded (an expression or target this build
    /// does not accept). They are charged against the memory cap but never refused.
    pub(super) fn restore_schedules(
        &mut self,
        recovered: Vec<RecoveredSchedule>,
    ) -> (usize, Vec<String>) {
        let mut skipped = Vec::new();
        let mut loaded = 0;
        for r in recovered {
            let spec = match Spec::parse(&r.spec) {
                Ok(spec) => spec,
                Err(e) => {
                    skipped.push(format!("schedule {:?}: {e}", r.name));
                    continue;
                }
            };
            let target = if r.flags & SCHEDULE_SUBJECT != 0 {
                if let Err(e) = crate::route::check_subject(&r.target) {
                    skipped.push(format!(
                        "schedule {:?}: subject {:?}: {e}",
                        r.name, r.target
                    ));
                    continue;
                }
                Target::Subject(r.target.into())
            } else {
                if crate::protocol::check_queue_name(&r.target).is_err() {
                    skipped.push(format!(
                        "schedule {:?}: bad queue name {:?}",
                        r.name, r.target
                    ));
                    continue;
                }
                Target::Queue(r.target.into())
            };
            let schedule = Schedule {
                def: Definition {
                    name: r.name.into(),
                    spec_text: r.spec.into(),
                    spec,
                    target,
                    priority: r.priority.min(crate::protocol::MAX_PRIORITY),
                    payload: r.payload,
                },
                paused: r.flags & SCHEDULE_PAUSED != 0,
                anchor_ms: r.anchor_ms,
                after_ms: r.runs.after_ms,
                next_ms: 0,
                last_ms: r.runs.last_ms,
                runs: r.runs.runs,
                misfires: r.runs.misfires,
                failures: r.runs.failures,
            };
            let memory = schedule.memory();
            self.schedules.insert(schedule);
            self.memory += memory;
            self.outside += memory;
            loaded += 1;
        }
        (loaded, skipped)
    }

    fn log_schedule(&mut self, name: &str) {
        if let (Some(log), Some(s)) = (&mut self.log, self.schedules.get(name)) {
            log.push(&schedule_record(s));
        }
    }
}

/// Appends a SCHEDULE record for every schedule (part of a snapshot).
pub(super) fn snapshot(schedules: &Schedules, enc: &mut impl FnMut(&Record<'_>)) {
    for s in schedules.iter() {
        enc(&schedule_record(s));
    }
}

fn runs_of(s: &Schedule) -> ScheduleRuns {
    ScheduleRuns {
        after_ms: s.after_ms,
        last_ms: s.last_ms,
        runs: s.runs,
        misfires: s.misfires,
        failures: s.failures,
    }
}

fn schedule_record(s: &Schedule) -> Record<'_> {
    let mut flags = 0;
    if s.paused {
        flags |= SCHEDULE_PAUSED;
    }
    if matches!(s.def.target, Target::Subject(_)) {
        flags |= SCHEDULE_SUBJECT;
    }
    Record::Schedule {
        name: &s.def.name,
        spec: &s.def.spec_text,
        target: s.def.target.name(),
        flags,
        priority: s.def.priority,
        anchor_ms: s.anchor_ms,
        runs: runs_of(s),
        payload: &s.def.payload,
    }
}
