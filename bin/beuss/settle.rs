//! `beuss ACK`, `NACK` and `TOUCH`: settle leases taken by `GET --lease` (or by any
//! detached `LEASE`), named as `ID:ATTEMPT`.
//!
//! One line per lease on standard output, `ID:ATTEMPT RESULT`, in the order given;
//! the exit code is 6 if any result is not `OK`, so that a script's `&&` chain stops
//! when the work may have been done twice.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::Duration;

use beuss::client::NackOptions;
use beuss::protocol::{LeaseRef, MAX_DELAY_MS, MAX_LEASE_MS, SettleResult};
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, duration_value, lease_refs, queue_name, show_duration};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{EXIT_UNSETTLED, Failure, write_stdout};

/// The verb table's row for `ACK`.
pub const ACK: Verb = Verb {
    name: "ACK",
    summary: "beuss ACK <queue> <lease>...     delete messages taken with GET --lease",
    help: ACK_HELP,
    arity: (2, usize::MAX),
    takes: "a queue name and one or more leases (ID:ATTEMPT)",
    new: || Box::new(Settle::new(Kind::Ack)),
};

/// The verb table's row for `NACK`.
pub const NACK: Verb = Verb {
    name: "NACK",
    summary: "beuss NACK <queue> <lease>...    give leased messages back (or --dead)",
    help: NACK_HELP,
    arity: (2, usize::MAX),
    takes: "a queue name and one or more leases (ID:ATTEMPT)",
    new: || Box::new(Settle::new(Kind::Nack)),
};

/// The verb table's row for `TOUCH`.
pub const TOUCH: Verb = Verb {
    name: "TOUCH",
    summary: "beuss TOUCH <queue> <lease>...   extend leases (a lease is ID:ATTEMPT)",
    help: TOUCH_HELP,
    arity: (2, usize::MAX),
    takes: "a queue name and one or more leases (ID:ATTEMPT)",
    new: || Box::new(Settle::new(Kind::Touch)),
};

/// What every settle verb's help ends with.
macro_rules! results_help {
    () => {
        "
Prints one line per lease, in order: `ID:ATTEMPT OK`, `ID:ATTEMPT STALE` (the
lease ended: it ran out or was given back, and the message may already be
with another consumer, under a new attempt), or `ID:ATTEMPT NOT_FOUND` (no
such message in <queue> to settle: already acknowledged, purged, dead, or
never there). Leases are `ID:ATTEMPT` exactly as GET --lease prints them; the
attempt is required, so a command that was too slow cannot settle the
message's next delivery.

Exit codes: 0 every lease OK, 1 error, 2 usage, 3 cannot connect,
6 at least one lease was STALE or NOT_FOUND.
"
    };
}

const ACK_HELP: &str = concat!(
    "\
Usage: beuss ACK <queue> ID:ATTEMPT...

Acknowledges messages taken with beuss GET --lease: they are deleted.
",
    results_help!(),
    "
Example: lease=$(beuss GET jobs job.txt --lease 5m) && ./run job.txt &&
           beuss ACK jobs \"$lease\"
"
);

const NACK_HELP: &str = concat!(
    "\
Usage: beuss NACK <queue> ID:ATTEMPT... [--delay DURATION] [--dead]
                                        [--no-charge]

Ends leases without deleting the messages: each goes back to <queue>, ahead of
messages never delivered, to be delivered again with its attempt raised.

  --delay DURATION  give it back only after DURATION (500ms, 30s, 10m, 2h, up
                    to 30 days)
  --dead            send it to the dead-letter queue <queue>.dead now
                    (see beuss DEAD)
  --no-charge       do not count this delivery toward the message's
                    --max-deliveries (for work given back untouched)
",
    results_help!()
);

const TOUCH_HELP: &str = concat!(
    "\
Usage: beuss TOUCH <queue> ID:ATTEMPT... [--lease DURATION]

Extends leases, so that long work is not delivered to someone else meanwhile.

  --lease DURATION  the lease now ends DURATION from now (up to 12h); default:
                    the length the lease was taken with
",
    results_help!()
);

/// Which settle verb.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ack,
    Nack,
    Touch,
}

/// A settle verb and its options.
struct Settle {
    kind: Kind,
    /// `NACK --delay`.
    delay: Option<Duration>,
    /// `NACK --dead`.
    dead: bool,
    /// `NACK --no-charge`.
    no_charge: bool,
    /// `TOUCH --lease`.
    lease: Option<Duration>,
}

impl Settle {
    fn new(kind: Kind) -> Settle {
        Settle {
            kind,
            delay: None,
            dead: false,
            no_charge: false,
            lease: None,
        }
    }
}

impl Command for Settle {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        match (self.kind, option.arg()) {
            (Kind::Nack, Arg::Long("delay")) => {
                let most = Duration::from_millis(MAX_DELAY_MS.into());
                self.delay = Some(duration_value(parser, option, most)?);
            }
            (Kind::Nack, Arg::Long("dead")) => self.dead = true,
            (Kind::Nack, Arg::Long("no-charge")) => self.no_charge = true,
            (Kind::Touch, Arg::Long("lease")) => {
                let most = Duration::from_millis(MAX_LEASE_MS.into());
                let lease = duration_value(parser, option, most)?;
                if lease.is_zero() {
                    return Err(Failure::usage("--lease must be longer than 0"));
                }
                self.lease = Some(lease);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = queue_name(&args[0])?;
        let leases = lease_refs(&args[1..])?;
        if self.dead && (self.delay.is_some() || self.no_charge) {
            return Err(Failure::usage(
                "--dead sends the messages to the dead-letter queue now: it takes no \
                 --delay or --no-charge",
            ));
        }
        let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
        let limits = server.leases(addr)?;
        let over = |what: &str, asked: Duration, most: u32| {
            Failure::usage(format!(
                "{what} {} is longer than this server allows ({})",
                show_duration(asked),
                show_duration(Duration::from_millis(most.into()))
            ))
        };
        if let Some(delay) = self
            .delay
            .filter(|d| d.as_millis() > limits.max_delay_ms.into())
        {
            return Err(over("--delay", delay, limits.max_delay_ms));
        }
        if let Some(lease) = self
            .lease
            .filter(|d| d.as_millis() > limits.max_lease_ms.into())
        {
            return Err(over("--lease", lease, limits.max_lease_ms));
        }
        let results = match self.kind {
            Kind::Ack => client.ack(queue, &leases),
            Kind::Nack => client.nack(
                queue,
                &leases,
                NackOptions {
                    delay: self.delay.unwrap_or_default(),
                    dead: self.dead,
                    no_charge: self.no_charge,
                },
            ),
            Kind::Touch => client.touch(queue, &leases, self.lease),
        }
        .map_err(|e| Failure::client(addr, &e))?;
        report(&leases, &results)
    }
}

/// Prints one line per lease; exit code 6 unless every result is `OK`.
fn report(leases: &[LeaseRef], results: &[SettleResult]) -> Result<(), Failure> {
    let mut text = String::new();
    let mut all_ok = true;
    for (lease, result) in leases.iter().zip(results) {
        let word = match result {
            SettleResult::Ok => "OK",
            SettleResult::Stale => "STALE",
            SettleResult::NotFound => "NOT_FOUND",
        };
        all_ok &= *result == SettleResult::Ok;
        let _ = writeln!(text, "{}:{} {word}", lease.id, lease.attempt);
    }
    write_stdout(text.as_bytes())?;
    if all_ok {
        Ok(())
    } else {
        // The lines above say which; stderr needs no second copy.
        Err(Failure::new(EXIT_UNSETTLED, String::new()))
    }
}
