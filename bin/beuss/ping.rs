//! `beuss PING`: is the server there, and what is it.

use std::ffi::OsString;
use std::time::Instant;

use beuss::protocol;

use crate::args::{Command, Verb};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{Failure, write_stdout};

/// The verb table's row for `PING`.
pub const VERB: Verb = Verb {
    name: "PING",
    summary: "beuss PING                       check that the server answers",
    help: HELP,
    arity: (0, 0),
    takes: "no argument",
    new: || Box::new(Ping),
};

const HELP: &str = "\
Usage: beuss PING

Checks that the server answers; prints its version, protocol version, message
size limit, whether it keeps messages on disk (BDATADIR), and the round-trip
time.

Exit codes: 0 the server answered, 1 error, 2 usage, 3 cannot connect.
";

/// `PING` has no options of its own.
struct Ping;

impl Command for Ping {
    /// The `HELLO` of every connection, then one `PING`, timed.
    fn run(self: Box<Self>, addr: &str, _args: &[OsString]) -> Result<(), Failure> {
        let (mut client, info) = connect(addr, REPLY_TIMEOUT)?;
        let start = Instant::now();
        client.ping().map_err(|e| Failure::client(addr, &e))?;
        let rtt = start.elapsed();
        let _ = client.quit();
        let features = info.limits.map_or(0, |l| l.features);
        let keeps = if features & protocol::FEATURE_SYNCED != 0 {
            ", messages on disk (synced before each reply)"
        } else if features & protocol::FEATURE_DURABLE != 0 {
            ", messages on disk"
        } else {
            ""
        };
        let text = format!(
            "PONG from {addr}: {}, protocol {}, max message size {} bytes{keeps}, round trip \
             {:.3} ms\n",
            info.name,
            info.version,
            info.max_message_size,
            rtt.as_secs_f64() * 1000.0
        );
        write_stdout(text.as_bytes()).map(|_| ())
    }
}
