//! Schedules on the client (protocol.md section 17): define, delete, pause, resume
//! and list the server's schedules.

use super::{Client, Result, unexpected};
use crate::protocol::{FEATURE_SCHEDULES, Request, Response, ScheduleInfo, ScheduleTarget};

/// A schedule's definition for [`Client::schedule`]: when it runs and what it sends
/// where.
///
/// ```
/// use beuss::client::Schedule;
///
/// let nightly = Schedule::to_queue("0 3 * * *", "jobs", b"backup").priority(1);
/// let ticks = Schedule::to_subject("@every 10s", "clock.tick", b"");
/// # let _ = (nightly, ticks);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule<'a> {
    spec: &'a str,
    target: ScheduleTarget<'a>,
    priority: u8,
    payload: &'a [u8],
}

impl<'a> Schedule<'a> {
    /// Puts `payload` on `queue` at the times of `spec` (a cron expression, a macro
    /// such as `@daily`, or `@every 30s`: protocol.md 17.2), with priority 5.
    pub fn to_queue(spec: &'a str, queue: &'a str, payload: &'a [u8]) -> Self {
        Schedule {
            spec,
            target: ScheduleTarget::Queue(queue),
            priority: crate::protocol::DEFAULT_PRIORITY,
            payload,
        }
    }

    /// Publishes `payload` to `subject` at the times of `spec`.
    pub fn to_subject(spec: &'a str, subject: &'a str, payload: &'a [u8]) -> Self {
        Schedule {
            target: ScheduleTarget::Subject(subject),
            ..Schedule::to_queue(spec, "", payload)
        }
    }

    /// The priority of its messages, 0 (first) to 9.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }
}

impl Client {
    /// Defines schedule `name`, or replaces the one of that name. Returns whether
    /// it is new, and its first run time in milliseconds since 1970 (UTC).
    ///
    /// ```no_run
    /// use beuss::Client;
    /// use beuss::client::Schedule;
    ///
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = Client::connect("localhost:6552")?;
    /// let (created, next_run_ms) =
    ///     client.schedule("nightly", &Schedule::to_queue("0 3 * * *", "jobs", b"backup"))?;
    /// println!("created {created}, first run at {next_run_ms} ms");
    /// for s in client.schedules(None)? {
    ///     println!("{} {} runs={} misfires={}", s.name, s.spec, s.runs, s.misfires);
    /// }
    /// client.pause_schedule("nightly", true)?; // Some(0); None if there is no such schedule
    /// client.unschedule("nightly")?; // true if it was there
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Any [`Error`](super::Error); [`Error::Unsupported`](super::Error::Unsupported) from a server older than version 5. A
    /// spec the server cannot read, or a payload over its message size, is an
    /// [`Error::Server`](super::Error::Server) with code `BAD_SCHEDULE` whose message says why; the
    /// connection stays usable.
    pub fn schedule(&mut self, name: &str, schedule: &Schedule<'_>) -> Result<(bool, u64)> {
        self.require_schedules()?;
        let request = Request::Schedule {
            name,
            spec: schedule.spec,
            target: schedule.target,
            priority: schedule.priority,
            payload: schedule.payload,
        };
        match self.call(&request)? {
            Response::Scheduled {
                created,
                next_run_ms,
            } => Ok((created, next_run_ms)),
            other => Err(unexpected("SCHEDULED", &other)),
        }
    }

    /// Deletes schedule `name`; false if there was none.
    ///
    /// # Errors
    /// As [`Client::schedule`].
    pub fn unschedule(&mut self, name: &str) -> Result<bool> {
        self.require_schedules()?;
        match self.call(&Request::Unschedule { name })? {
            Response::Unscheduled { removed } => Ok(removed),
            other => Err(unexpected("UNSCHEDULED", &other)),
        }
    }

    /// Pauses (`paused` true) or resumes schedule `name`. Returns its next run time
    /// (0 while paused), or `None` if there is no such schedule.
    ///
    /// # Errors
    /// As [`Client::schedule`].
    pub fn pause_schedule(&mut self, name: &str, paused: bool) -> Result<Option<u64>> {
        self.require_schedules()?;
        match self.call(&Request::PauseSchedule { name, paused })? {
            Response::SchedulePaused { found, next_run_ms } => Ok(found.then_some(next_run_ms)),
            other => Err(unexpected("SCHEDULE_PAUSED", &other)),
        }
    }

    /// Every schedule with its figures, sorted by name, or only the one named.
    ///
    /// # Errors
    /// As [`Client::schedule`].
    pub fn schedules(&mut self, name: Option<&str>) -> Result<Vec<ScheduleInfo>> {
        self.require_schedules()?;
        match self.call(&Request::Schedules { name })? {
            Response::ScheduleList(list) => Ok(list),
            other => Err(unexpected("SCHEDULE_LIST", &other)),
        }
    }

    fn require_schedules(&mut self) -> Result<()> {
        self.require_feature(5, FEATURE_SCHEDULES, "schedules")
    }
}
