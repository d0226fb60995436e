//! `beuss DEAD`: look at a queue's dead letters (`<queue>.dead`), move them back, or
//! drop them.

use std::ffi::OsString;
use std::fmt::Write as _;

use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, number_value, queue_name};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{Failure, display_bytes, display_name, write_stdout};

/// The verb table's row for `DEAD`.
pub const VERB: Verb = Verb {
    name: "DEAD",
    summary: "beuss DEAD <queue>               list, --retry or --purge dead letters",
    help: HELP,
    arity: (1, 1),
    takes: "a queue name",
    new: || Box::<Dead>::default(),
};

/// Payload bytes a listing shows of each message.
const PREVIEW: usize = 60;

/// Messages listed when `--max` is not given.
const LIST_DEFAULT: u64 = 100;

const HELP: &str = "\
Usage: beuss DEAD <queue> [--max N]
       beuss DEAD <queue> --retry [--max N]
       beuss DEAD <queue> --purge

A message that failed too often (its lease ended --max-deliveries times
without an ACK) or was given up with NACK --dead goes to <queue>.dead.

  (none)     list the first N dead letters (default 100), one per line:
             id, attempt, size in bytes and the first 60 bytes, escaped as
             ON prints them. Nothing is changed
  --retry    move them back to the end of <queue> (all of them, or the first
             N), with a fresh count of deliveries; prints how many moved
  --purge    drop every dead letter of <queue>; prints how many there were
  --max N    at most N messages (1 to 65535 for a list)

Exit codes: 0 ok (also when there are no dead letters), 1 error, 2 usage,
3 cannot connect.

Example: beuss DEAD jobs; beuss DEAD jobs --retry
";

/// What `DEAD` does.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Action {
    #[default]
    List,
    Retry,
    Purge,
}

/// `DEAD`'s options.
#[derive(Default)]
struct Dead {
    action: Action,
    /// `--max`, or `--retry=N`.
    max: Option<u64>,
}

impl Command for Dead {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        let action = match option.arg() {
            Arg::Long("max") => {
                self.max = Some(number_value(parser, option, 1, u32::MAX.into())?);
                return Ok(true);
            }
            Arg::Long("retry") => Action::Retry,
            Arg::Long("purge") => Action::Purge,
            _ => return Ok(false),
        };
        if self.action != Action::List {
            return Err(Failure::usage("choose one of --retry and --purge"));
        }
        self.action = action;
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = queue_name(&args[0])?;
        let dead = format!("{queue}.dead");
        queue_name(dead.as_ref()).map_err(|_| {
            Failure::usage(format!(
                "{} has no dead-letter queue: its name is over 250 bytes",
                display_name(queue)
            ))
        })?;
        let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
        let failed = |e| Failure::client(addr, &e);
        let text = match self.action {
            Action::List => {
                server.leases(addr)?;
                let max = self.max.unwrap_or(LIST_DEFAULT);
                let max = u16::try_from(max)
                    .map_err(|_| Failure::usage("a list shows at most 65535 messages"))?;
                let letters = client.peek(&dead, max).map_err(failed)?;
                let mut text = String::new();
                if letters.is_empty() {
                    let _ = writeln!(text, "no dead letters in {}", display_name(&dead));
                }
                for letter in &letters {
                    let payload = letter.payload();
                    let _ = writeln!(
                        text,
                        "id={} attempt={} bytes={} {}{}",
                        letter.id(),
                        letter.attempt(),
                        payload.len(),
                        display_bytes(&payload[..payload.len().min(PREVIEW)]),
                        if payload.len() > PREVIEW { "..." } else { "" }
                    );
                }
                text
            }
            Action::Retry => {
                server.leases(addr)?;
                let max = self.max.map_or(u32::MAX, |n| n as u32);
                let moved = client.move_messages(&dead, queue, max).map_err(failed)?;
                format!(
                    "moved {moved} message{} from {} back to {}\n",
                    plural(moved),
                    display_name(&dead),
                    display_name(queue)
                )
            }
            Action::Purge => {
                if self.max.is_some() {
                    return Err(Failure::usage("--purge drops them all: it takes no --max"));
                }
                let count = client.purge(&dead).map_err(failed)?;
                format!(
                    "purged {count} dead letter{} from {}\n",
                    plural(count),
                    display_name(&dead)
                )
            }
        };
        write_stdout(text.as_bytes()).map(|_| ())
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
