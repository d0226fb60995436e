//! `beuss BIND` and `UNBIND`: bind a pattern onto a queue, or remove that binding
//! (protocol.md 15.3). One word on standard output says what happened.

use std::ffi::OsString;

use beuss::client::Error as ClientError;

use crate::args::{Command, Verb, pattern, queue_name};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{EXIT_EMPTY, EXIT_FULL, Failure, write_stdout};

/// The verb table's row for `BIND`.
pub const BIND: Verb = Verb {
    name: "BIND",
    summary: "beuss BIND <pattern> <queue>     copy what is published to pattern into queue",
    help: BIND_HELP,
    arity: (2, 2),
    takes: "a pattern and a queue name",
    new: || Box::new(Binding { bind: true }),
};

/// The verb table's row for `UNBIND`.
pub const UNBIND: Verb = Verb {
    name: "UNBIND",
    summary: "beuss UNBIND <pattern> <queue>   remove that binding",
    help: UNBIND_HELP,
    arity: (2, 2),
    takes: "a pattern and a queue name",
    new: || Box::new(Binding { bind: false }),
};

const BIND_HELP: &str = "\
Usage: beuss BIND <pattern> <queue>

Binds <pattern> onto <queue> (created if needed): from then on, every message
published (beuss PUB, or a request: beuss REQ) to a subject that matches
<pattern> is copied into <queue>, where consumers take it as any message
(GET, ON, WORK...). A queue gets one copy of a message however many of its
bindings match. A bound queue is never removed for being idle. Bindings are
kept across restarts when the server has BDATADIR.

A pattern is tokens separated by dots; the token * matches exactly one token,
and a last token > matches one or more: orders.*.created matches
orders.eu.created; orders.> matches orders.eu and orders.eu.created, not
orders.

Prints BOUND, or EXISTS if that binding was there already (nothing changes).

Exit codes: 0 bound (or already), 1 error, 2 usage, 3 cannot connect,
5 the server is full (BMAXMEMORY): binding not made.

Example: beuss BIND 'orders.>' audit && beuss BIND 'orders.*.created' mail
";

const UNBIND_HELP: &str = "\
Usage: beuss UNBIND <pattern> <queue>

Removes the binding of <pattern> onto <queue>, written exactly as it was
bound. The queue and the messages already in it stay.

Prints UNBOUND, or NOT_FOUND if there was no such binding.

Exit codes: 0 removed, 1 error, 2 usage, 3 cannot connect,
4 there was no such binding.

Example: beuss UNBIND 'orders.>' audit
";

/// `BIND` or `UNBIND`; neither has options.
struct Binding {
    bind: bool,
}

impl Command for Binding {
    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let pattern = pattern(&args[0])?;
        let queue = queue_name(&args[1])?;
        let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
        server.fanout(addr)?;
        let failure = |e: ClientError| {
            if e.is_full() {
                Failure::new(
                    EXIT_FULL,
                    format!("the server at {addr} is full (BMAXMEMORY): binding not made"),
                )
            } else {
                Failure::client(addr, &e)
            }
        };
        if self.bind {
            let created = client.bind(pattern, queue).map_err(failure)?;
            write_stdout(if created { b"BOUND\n" } else { b"EXISTS\n" })?;
            return Ok(());
        }
        if client.unbind(pattern, queue).map_err(failure)? {
            write_stdout(b"UNBOUND\n")?;
            Ok(())
        } else {
            write_stdout(b"NOT_FOUND\n")?;
            Err(Failure::new(EXIT_EMPTY, String::new()))
        }
    }
}
