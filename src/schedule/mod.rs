//! Schedules: named timers that produce a message on a queue or subject at the times
//! of a cron expression or a fixed interval (protocol.md section 17).

pub mod cron;
