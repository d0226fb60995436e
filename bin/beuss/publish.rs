//! `beuss PUB`: publish one message to a subject (protocol.md 15.4): a copy into
//! every bound queue, an event to every subscriber, optionally waiting until some
//! copies are confirmed.

use std::ffi::OsString;
use std::time::Duration;

use beuss::client::PublishOptions;
use beuss::protocol::{DEFAULT_PRIORITY, MAX_DELAY_MS, MAX_LEASE_MS, MAX_PRIORITY};
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, duration_value, number_value, show_duration, subject};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::input::{read_payload, warn_if_cut};
use crate::output::{EXIT_UNCONFIRMED, Failure, write_stdout};

/// The verb table's row for `PUB`.
pub const VERB: Verb = Verb {
    name: "PUB",
    summary: "echo data | beuss PUB <subject>  publish to every bound queue and subscriber",
    help: HELP,
    arity: (1, 2),
    takes: "a subject and an optional input file",
    new: || Box::<Pub>::default(),
};

/// How long `--confirm` waits when `--timeout` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const HELP: &str = "\
Usage: beuss PUB <subject> [input-file] [--delay DURATION] [--priority 0-9]
                 [--confirm N [--timeout DURATION]]

Publishes one message to <subject> (tokens separated by dots, like
orders.eu.created; no wildcards): a copy goes into every queue bound to a
matching pattern (beuss BIND), once per queue, and an event to every live
subscriber (beuss SUB). The message is <input-file>, or standard input if
there is none or it is `-`, byte for byte.

Prints how many got it, on one line of standard output:
  queues=2 subscribers=1
and with --confirm also how many copies were confirmed and failed:
  queues=2 subscribers=1 acked=2 failed=0
Publishing to a subject nobody listens to is not an error (queues=0
subscribers=0).

  --delay DURATION   the queue copies become ready after DURATION (500ms, 30s,
                     10m, 2h, up to 30 days); events are pushed at once
  --priority N       priority of the queue copies: 0 (first) to 9; default 5
  --confirm N        wait until N copies have been confirmed: acknowledged
                     by a consumer (beuss WORK, ACK) or taken by a plain GET
  --timeout DURATION how long --confirm waits at most (default 30s, up to 12h)

Messages longer than the server's BMAXMESSAGESIZE are cut to it; PUB warns on
stderr with both sizes. The message is held in memory (up to BMAXMESSAGESIZE).

Exit codes: 0 published (and confirmed, with --confirm), 1 error, 2 usage,
3 cannot connect, 5 the server is full: nothing published,
7 --confirm N with fewer than N queues bound: nothing published,
8 --confirm N: published, but fewer than N copies confirmed in time (the
counts are printed as usual).

Example: echo '{\"id\":42}' | beuss PUB orders.eu.created
         beuss PUB reports.daily report.pdf --confirm 1 --timeout 5m
";

/// `PUB`'s options.
#[derive(Default)]
struct Pub {
    /// `--delay`.
    delay: Option<Duration>,
    /// `--priority`.
    priority: Option<u8>,
    /// `--confirm`.
    confirm: u32,
    /// `--timeout`.
    timeout: Option<Duration>,
}

impl Command for Pub {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        match option.arg() {
            Arg::Long("delay") => {
                let most = Duration::from_millis(MAX_DELAY_MS.into());
                self.delay = Some(duration_value(parser, option, most)?);
            }
            Arg::Long("priority") => {
                let n = number_value(parser, option, 0, MAX_PRIORITY.into())?;
                self.priority = u8::try_from(n).ok();
            }
            Arg::Long("confirm") => {
                self.confirm = number_value(parser, option, 1, u32::MAX.into())? as u32;
            }
            Arg::Long("timeout") => {
                let most = Duration::from_millis(MAX_LEASE_MS.into());
                let timeout = duration_value(parser, option, most)?;
                if timeout.is_zero() {
                    return Err(Failure::usage("--timeout must be longer than 0"));
                }
                self.timeout = Some(timeout);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let subject = subject(&args[0])?;
        if self.timeout.is_some() && self.confirm == 0 {
            return Err(Failure::usage("--timeout goes with --confirm"));
        }
        let mut options = PublishOptions::default()
            .delay(self.delay.unwrap_or_default())
            .priority(self.priority.unwrap_or(DEFAULT_PRIORITY));
        if self.confirm > 0 {
            options = options.confirm(self.confirm, self.timeout.unwrap_or(DEFAULT_TIMEOUT));
        }
        publish(addr, subject, args.get(1), options)
    }
}

/// `PUB`: the input as one message to `subject`.
fn publish(
    addr: &str,
    subject: &str,
    file: Option<&OsString>,
    options: PublishOptions,
) -> Result<(), Failure> {
    // Connect first: the server's limit bounds what is read into memory.
    let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
    server.fanout(addr)?;
    if let Some(limits) = server.limits
        && options.delay.as_millis() > u128::from(limits.max_delay_ms)
    {
        return Err(Failure::usage(format!(
            "--delay {} is longer than this server allows ({})",
            show_duration(options.delay),
            show_duration(Duration::from_millis(limits.max_delay_ms.into()))
        )));
    }
    let payload = read_payload(file.map(OsString::as_os_str), server.max_message_size)?;
    let published = client
        .publish_with(subject, &payload.bytes, options)
        .map_err(|e| Failure::client(addr, &e))?;
    warn_if_cut(payload.total, published.stored_len.into());
    let mut line = format!(
        "queues={} subscribers={}",
        published.queues, published.subscribers
    );
    if options.confirm > 0 {
        line.push_str(&format!(
            " acked={} failed={}",
            published.acked, published.failed
        ));
    }
    line.push('\n');
    write_stdout(line.as_bytes())?;
    if options.confirm > published.acked {
        let why = if published.queues.saturating_sub(published.failed) < options.confirm {
            "the others failed (dead-lettered or purged)".to_owned()
        } else {
            format!("within {}", show_duration(options.timeout))
        };
        return Err(Failure::new(
            EXIT_UNCONFIRMED,
            format!(
                "only {} of the {} confirmations asked for came, {why}",
                published.acked, options.confirm
            ),
        ));
    }
    Ok(())
}
