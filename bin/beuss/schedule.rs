//! `beuss SCHEDULE`: schedules that the server runs by itself, putting a message on
//! a queue (or publishing it to a subject) at the times of a cron expression or an
//! interval (protocol.md section 17). Sub-commands `add`, `ls`, `rm`, `pause` and
//! `resume`.

use std::ffi::OsString;

use beuss::civil::rfc3339;
use beuss::client::{Error as ClientError, Schedule, ScheduleInfo};
use beuss::protocol::{DEFAULT_PRIORITY, MAX_PRIORITY, MAX_QUEUE_NAME, MAX_SCHEDULE_FRAME};
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, number_value, queue_name, subject};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::input::read_payload;
use crate::output::{EXIT_EMPTY, EXIT_ERROR, EXIT_FULL, Failure, display_name, write_stdout};

/// The verb table's row for `SCHEDULE`.
pub const VERB: Verb = Verb {
    name: "SCHEDULE",
    summary: "beuss SCHEDULE add|ls|rm|...     messages the server makes on a timer",
    help: HELP,
    arity: (1, 5),
    takes: "a sub-command (add, ls, rm, pause, resume) and its arguments",
    new: || Box::<ScheduleCmd>::default(),
};

const HELP: &str = "\
Usage: beuss SCHEDULE add <name> <spec> <queue> [input-file] [--priority 0-9]
       beuss SCHEDULE add <name> <spec> <subject> [input-file] --subject
       beuss SCHEDULE ls [name]
       beuss SCHEDULE rm <name>
       beuss SCHEDULE pause <name>
       beuss SCHEDULE resume <name>

A schedule is kept by the server: at each time of <spec> it puts its message
on <queue> (or publishes it to <subject> with --subject), where consumers take
it as any other. The message is <input-file>, or standard input if there is
none or it is `-` (use /dev/null for an empty one). add replaces a schedule of
the same name. With BDATADIR, schedules survive restarts.

<spec> is, in UTC unless it starts with TZ=+HH:MM (a fixed offset):
  '*/5 * * * *'      five cron fields: minute hour day-of-month month
                     day-of-week, with *, lists 1,2, ranges 1-5, steps */10,
                     names JAN-DEC and SUN-SAT
  '0 9 * * 1-5'      09:00 on weekdays;  'TZ=+01:00 0 9 * * *' 09:00 at +01:00
  @hourly @daily @weekly @monthly @yearly
  '@every 10s'       a fixed interval: ms, s, m, h, d (100ms at least)
Runs missed while the server was down are made up by one run at start (a
misfire, counted); a schedule never runs twice for the same time.

  --priority N   priority of its messages: 0 (first) to 9; default 5
  --subject      the target is a subject (beuss PUB), not a queue

add prints CREATED or REPLACED and the first run time (UTC):
  CREATED next=2026-12-04T03:00:00Z
ls prints one line per schedule: name, spec, target, priority, state (on or
paused), next and last run, runs, misfires (late runs), failures (runs whose
message was refused: a full queue) and payload bytes.
rm prints REMOVED; pause prints PAUSED; resume prints RESUMED and the next run.

Exit codes: 0 ok, 1 error (a spec the server cannot read, a payload over
BMAXMESSAGESIZE), 2 usage, 3 cannot connect, 4 no such schedule, 5 the server
is full (BMAXMEMORY): schedule not made.

Example: echo backup | beuss SCHEDULE add nightly '0 3 * * *' jobs
         beuss SCHEDULE add tick '@every 2s' clock.tick /dev/null --subject
";

/// `SCHEDULE`'s options (they only go with `add`).
#[derive(Default)]
struct ScheduleCmd {
    priority: Option<u8>,
    subject: bool,
}

impl Command for ScheduleCmd {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        match option.arg() {
            Arg::Long("priority") => {
                let n = number_value(parser, option, 0, MAX_PRIORITY.into())?;
                self.priority = u8::try_from(n).ok();
            }
            Arg::Long("subject") => self.subject = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let sub = args[0].to_string_lossy().to_ascii_lowercase();
        let rest = &args[1..];
        let arity = |least: usize, most: usize, takes: &str| {
            if (least..=most).contains(&rest.len()) {
                Ok(())
            } else {
                Err(Failure::usage(format!(
                    "SCHEDULE {sub} takes {takes}; see beuss SCHEDULE --help"
                )))
            }
        };
        if sub != "add" && (self.priority.is_some() || self.subject) {
            return Err(Failure::usage(
                "--priority and --subject go with SCHEDULE add",
            ));
        }
        match sub.as_str() {
            "add" => {
                arity(
                    3,
                    4,
                    "a name, a spec, a queue (or subject) and an optional input file",
                )?;
                self.add(addr, rest)
            }
            "ls" | "list" => {
                arity(0, 1, "at most a schedule name")?;
                let name = rest.first().map(|n| schedule_name(n)).transpose()?;
                list(addr, name)
            }
            "rm" | "remove" | "pause" | "resume" => {
                arity(1, 1, "a schedule name")?;
                change(addr, &sub, schedule_name(&rest[0])?)
            }
            _ => Err(Failure::usage(format!(
                "SCHEDULE {:?}: the sub-commands are add, ls, rm, pause and resume",
                args[0].to_string_lossy()
            ))),
        }
    }
}

impl ScheduleCmd {
    fn add(&self, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let name = schedule_name(&args[0])?;
        let spec = args[1]
            .to_str()
            .filter(|s| (1..=MAX_QUEUE_NAME).contains(&s.len()))
            .ok_or_else(|| Failure::usage("a spec is 1 to 255 bytes of UTF-8"))?;
        let target = if self.subject {
            subject(&args[2])?
        } else {
            queue_name(&args[2])?
        };
        let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
        server.schedules(addr)?;
        // The whole frame must fit 64 KiB, and the server keeps no more than its
        // message size.
        let most = server.max_message_size.min(MAX_SCHEDULE_FRAME - 1024);
        let payload = read_payload(args.get(3).map(OsString::as_os_str), most)?;
        if payload.total > u64::from(most) {
            return Err(Failure::new(
                EXIT_ERROR,
                format!(
                    "the message is {} bytes; a schedule's message is at most {most} bytes \
                     here; schedule not made",
                    payload.total
                ),
            ));
        }
        let priority = self.priority.unwrap_or(DEFAULT_PRIORITY);
        let schedule = if self.subject {
            Schedule::to_subject(spec, target, &payload.bytes)
        } else {
            Schedule::to_queue(spec, target, &payload.bytes)
        }
        .priority(priority);
        let (created, next) = client
            .schedule(name, &schedule)
            .map_err(|e| failure(addr, &e))?;
        let word = if created { "CREATED" } else { "REPLACED" };
        write_stdout(format!("{word} next={}\n", when(next)).as_bytes())?;
        Ok(())
    }
}

/// A schedule name: 1 to 255 bytes of UTF-8, as a queue name.
fn schedule_name(arg: &OsString) -> Result<&str, Failure> {
    arg.to_str()
        .filter(|s| (1..=MAX_QUEUE_NAME).contains(&s.len()))
        .ok_or_else(|| Failure::usage("a schedule name is 1 to 255 bytes of UTF-8"))
}

fn failure(addr: &str, e: &ClientError) -> Failure {
    if e.is_full() {
        Failure::new(
            EXIT_FULL,
            format!("the server at {addr} is full (BMAXMEMORY): schedule not made"),
        )
    } else {
        Failure::client(addr, e)
    }
}

/// A run time for people: RFC 3339 in UTC, or `-` for none.
fn when(ms: u64) -> String {
    if ms == 0 { "-".to_owned() } else { rfc3339(ms) }
}

/// `rm`, `pause` or `resume`.
fn change(addr: &str, sub: &str, name: &str) -> Result<(), Failure> {
    let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
    server.schedules(addr)?;
    let line = match sub {
        "rm" | "remove" => client
            .unschedule(name)
            .map_err(|e| failure(addr, &e))?
            .then(|| "REMOVED".to_owned()),
        "pause" => client
            .pause_schedule(name, true)
            .map_err(|e| failure(addr, &e))?
            .map(|_| "PAUSED".to_owned()),
        _ => client
            .pause_schedule(name, false)
            .map_err(|e| failure(addr, &e))?
            .map(|next| format!("RESUMED next={}", when(next))),
    };
    match line {
        Some(line) => {
            write_stdout(format!("{line}\n").as_bytes())?;
            Ok(())
        }
        None => {
            write_stdout(b"NOT_FOUND\n")?;
            Err(Failure::new(
                EXIT_EMPTY,
                format!("there is no schedule {} at {addr}", display_name(name)),
            ))
        }
    }
}

/// `ls`: a table, one line per schedule, columns aligned.
fn list(addr: &str, name: Option<&str>) -> Result<(), Failure> {
    let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
    server.schedules(addr)?;
    let list = client.schedules(name).map_err(|e| failure(addr, &e))?;
    if list.is_empty()
        && let Some(name) = name
    {
        return Err(Failure::new(
            EXIT_EMPTY,
            format!("there is no schedule {} at {addr}", display_name(name)),
        ));
    }
    write_stdout(table(&list).as_bytes())?;
    Ok(())
}

fn table(list: &[ScheduleInfo]) -> String {
    let header = [
        "NAME", "SPEC", "TARGET", "PRI", "STATE", "NEXT", "LAST", "RUNS", "MISFIRES", "FAILURES",
        "BYTES",
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let target = if s.to_subject {
                format!("subject {}", display_name(&s.target))
            } else {
                display_name(&s.target)
            };
            vec![
                display_name(&s.name),
                s.spec.clone(),
                target,
                s.priority.to_string(),
                if s.paused { "paused" } else { "on" }.to_owned(),
                when(s.next_run_ms),
                when(s.last_run_ms),
                s.runs.to_string(),
                s.misfires.to_string(),
                s.failures.to_string(),
                s.payload_len.to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}
