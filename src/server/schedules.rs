//! Schedules (protocol.md section 17): `SCHEDULE`, `UNSCHEDULE`, `PAUSE_SCHEDULE` and
//! `SCHEDULES`, and the runs, which put or publish their message as a client's `PUT`
//! or `PUB` would, with nobody to answer.

use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::protocol::{self, ErrorCode, PutOptions, ScheduleInfo, ScheduleTarget};
use crate::schedule::{Definition, Schedule, Spec, Target};

use super::{ConnRef, Server};

/// Most runs carried out in one loop turn, so that thousands of schedules due at
/// the same minute are spread over turns with clients served in between.
const RUN_BUDGET: usize = 1024;

/// Largest `SCHEDULE_LIST` reply (the Rust client's cap on a reply is a little
/// more); protocol.md 17.6.
const MAX_LIST_REPLY: usize = 1 << 30;

/// The handle of no connection: what a run's `PUT` or `PUB` answers goes nowhere.
const NOBODY: ConnRef = ConnRef {
    key: usize::MAX,
    id: u64::MAX,
};

impl Server {
    /// `SCHEDULE`: checks the expression and the payload, then defines the schedule.
    pub(super) fn define_schedule(
        &mut self,
        r: ConnRef,
        name: &str,
        spec_text: &str,
        target: ScheduleTarget<'_>,
        priority: u8,
        payload: &[u8],
    ) {
        let spec = match Spec::parse(spec_text) {
            Ok(spec) => spec,
            Err(why) => return self.refuse_schedule(r, ErrorCode::BadSchedule, &why),
        };
        if payload.len() > self.config.max_message_size {
            let why = format!(
                "the payload is {} bytes; the server keeps messages of at most {} \
                 (BMAXMESSAGESIZE)",
                payload.len(),
                self.config.max_message_size
            );
            return self.refuse_schedule(r, ErrorCode::BadSchedule, &why);
        }
        let def = Definition {
            name: name.into(),
            spec_text: spec_text.into(),
            spec,
            target: match target {
                ScheduleTarget::Queue(q) => Target::Queue(q.into()),
                ScheduleTarget::Subject(s) => Target::Subject(s.into()),
            },
            priority,
            payload: payload.into(),
        };
        match self.store.define_schedule(def, crate::civil::now_ms()) {
            Ok((created, next)) => {
                debug!("schedule {name:?} ({spec_text}) defined; next run at {next}");
                if let Some(conn) = self.conn_mut(r) {
                    protocol::encode_scheduled(&mut conn.output, created, next);
                }
            }
            Err(full) => {
                let why = format!("{full}; schedule not defined");
                self.refuse_schedule(r, ErrorCode::Full, &why);
            }
        }
    }

    fn refuse_schedule(&mut self, r: ConnRef, code: ErrorCode, why: &str) {
        if let Some(conn) = self.conn_mut(r) {
            protocol::encode_error(&mut conn.output, code, false, why);
        }
    }

    /// `UNSCHEDULE`.
    pub(super) fn unschedule(&mut self, r: ConnRef, name: &str) {
        let removed = self.store.remove_schedule(name);
        if let Some(conn) = self.conn_mut(r) {
            protocol::encode_unscheduled(&mut conn.output, removed);
        }
    }

    /// `PAUSE_SCHEDULE`.
    pub(super) fn pause_schedule(&mut self, r: ConnRef, name: &str, paused: bool) {
        let next = self
            .store
            .pause_schedule(name, paused, crate::civil::now_ms());
        if let Some(conn) = self.conn_mut(r) {
            protocol::encode_schedule_paused(&mut conn.output, next.is_some(), next.unwrap_or(0));
        }
    }

    /// `SCHEDULES`: every schedule, or the one named.
    pub(super) fn list_schedules(&mut self, r: ConnRef, name: Option<&str>) {
        let schedules = self.store.schedules();
        let list: Vec<ScheduleInfo> = match name {
            Some(name) => schedules.get(name).map(info).into_iter().collect(),
            None => schedules.iter().map(info).collect(),
        };
        let len: usize = list
            .iter()
            .map(|s| 2 + protocol::schedule_info_len(s))
            .sum();
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        if len > MAX_LIST_REPLY {
            let why = format!(
                "{} schedules take {len} bytes to list, more than one reply may hold; \
                 ask for them by name",
                list.len()
            );
            protocol::encode_error(&mut conn.output, ErrorCode::Limit, false, &why);
            return;
        }
        protocol::encode_schedule_list(&mut conn.output, &list);
    }

    /// When the soonest schedule is due, on the monotonic clock: wall-clock run
    /// times are turned into a poll timeout afresh every turn, so a change of the
    /// wall clock moves them as it should.
    pub(super) fn schedule_deadline(&self, now: Instant) -> Option<Instant> {
        let due = self.store.next_schedule_due()?;
        let wall = crate::civil::now_ms();
        Some(now + Duration::from_millis(due.saturating_sub(wall)))
    }

    /// Carries out the runs that are due, up to [`RUN_BUDGET`] of them.
    pub(super) fn run_schedules(&mut self, now: Instant) {
        let Some(due) = self.store.next_schedule_due() else {
            return;
        };
        let wall = crate::civil::now_ms();
        if due > wall {
            return;
        }
        let journal_refuses = self.journal.as_ref().and_then(|j| {
            j.failed().map(str::to_owned).or(j
                .disk_full()
                .then(|| "the disk of BDATADIR is full".to_owned()))
        });
        if let Some(why) = journal_refuses {
            for _ in 0..RUN_BUDGET {
                let Some((name, failures)) = self.store.skip_due_run(wall) else {
                    return;
                };
                if failures.is_power_of_two() {
                    warn!("schedule {name:?}: run skipped, {why} ({failures} failures so far)");
                }
            }
            return;
        }
        for _ in 0..RUN_BUDGET {
            let Some(run) = self.store.take_due_run(wall) else {
                return;
            };
            if run.misfire {
                debug!(
                    "schedule {:?}: the run of {} comes {} ms late (server down or \
                     stalled, or the clock moved); running once now",
                    run.name,
                    crate::civil::rfc3339(run.at_ms),
                    wall.saturating_sub(run.at_ms)
                );
            }
            let options = PutOptions {
                delay_ms: 0,
                priority: run.priority,
            };
            let len = run.payload.len();
            let stored = match &run.target {
                Target::Queue(queue) => {
                    self.put(NOBODY, queue, &run.payload, len, Some(options), now)
                }
                Target::Subject(subject) => {
                    self.publish(NOBODY, subject, &run.payload, len, options, 0, 0, now)
                }
            };
            if !stored {
                self.store.schedule_failed(&run.name);
                let failures = self
                    .store
                    .schedules()
                    .get(&run.name)
                    .map_or(0, |s| s.failures);
                // The 1st, 2nd, 4th, 8th... failure: a schedule every 100 ms into a
                // full queue must not flood the log.
                if failures.is_power_of_two() {
                    warn!(
                        "schedule {:?}: {} {} refused its message (a cap is reached); \
                         run skipped ({failures} so far)",
                        run.name,
                        match run.target {
                            Target::Queue(_) => "queue",
                            Target::Subject(_) => "subject",
                        },
                        run.target.name()
                    );
                }
            }
        }
    }
}

fn info(s: &Schedule) -> ScheduleInfo {
    ScheduleInfo {
        name: s.def.name.to_string(),
        spec: s.def.spec_text.to_string(),
        to_subject: matches!(s.def.target, Target::Subject(_)),
        target: s.def.target.name().to_owned(),
        priority: s.def.priority,
        paused: s.paused,
        next_run_ms: s.next_ms,
        last_run_ms: s.last_ms,
        runs: s.runs,
        misfires: s.misfires,
        failures: s.failures,
        payload_len: s.def.payload.len() as u32,
    }
}
