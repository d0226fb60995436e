//! `beuss REQ`: send a request to a subject and print the first reply
//! (protocol.md 15.8).

use std::ffi::OsString;
use std::time::Duration;

use beuss::protocol::MAX_LEASE_MS;
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, duration_value, show_duration, subject};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::input::{read_payload, warn_if_cut};
use crate::output::{EXIT_EMPTY, Failure, write_stdout};

/// The verb table's row for `REQ`.
pub const VERB: Verb = Verb {
    name: "REQ",
    summary: "echo data | beuss REQ <subject>  send a request, print the first reply",
    help: HELP,
    arity: (1, 2),
    takes: "a subject and an optional input file",
    new: || Box::<Req>::default(),
};

/// How long `REQ` waits for a reply without `--timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const HELP: &str = "\
Usage: beuss REQ <subject> [input-file] [--timeout DURATION]

Sends a request to <subject> (no wildcards) and waits for the first reply,
which it writes to standard output byte for byte, nothing added. The request
is <input-file>, or standard input if there is none or it is `-`. It is
published like beuss PUB, with a one-time reply address: a subscriber (beuss
SUB, or a program) or a worker on a bound queue (beuss SERVE) answers it.

  --timeout DURATION  wait at most DURATION for a reply (500ms, 30s, 10m, up
                      to 12h; default 5s)

If no queue is bound and nobody subscribes to a matching pattern, REQ says so
at once (exit code 7) instead of waiting. A request that finds a bound queue
waits there until a worker answers it; a later answer (after the timeout)
reaches nobody.

Exit codes: 0 a reply came (it is on standard output), 1 error, 2 usage,
3 cannot connect, 4 no reply within --timeout, 5 the server is full: nothing
sent, 7 no responders: nothing sent.

Example: date +%s | beuss REQ svc.clock --timeout 2s
         beuss SERVE svc.upper -- tr a-z A-Z &   echo hi | beuss REQ svc.upper
";

/// `REQ`'s options.
#[derive(Default)]
struct Req {
    /// `--timeout`.
    timeout: Option<Duration>,
}

impl Command for Req {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        match option.arg() {
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
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
        server.fanout(addr)?;
        let payload = read_payload(
            args.get(1).map(OsString::as_os_str),
            server.max_message_size,
        )?;
        // The server cuts a request without a word; say so here.
        warn_if_cut(
            payload.total,
            payload.total.min(server.max_message_size.into()),
        );
        match client
            .request(subject, &payload.bytes, timeout)
            .map_err(|e| Failure::client(addr, &e))?
        {
            Some(reply) => write_stdout(&reply).map(|_| ()),
            None => Err(Failure::new(
                EXIT_EMPTY,
                format!("no reply to {subject} within {}", show_duration(timeout)),
            )),
        }
    }
}
