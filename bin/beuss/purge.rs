//! `beuss PURGE`: drop every message of a queue.

use std::ffi::OsString;

use crate::args::{Command, Verb, queue_name};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{Failure, display_name, write_stdout};

/// The verb table's row for `PURGE`.
pub const VERB: Verb = Verb {
    name: "PURGE",
    summary: "beuss PURGE <queue>              drop every message of a queue",
    help: HELP,
    arity: (1, 1),
    takes: "a queue name",
    new: || Box::new(Purge),
};

const HELP: &str = "\
Usage: beuss PURGE <queue>

Drops every message held in <queue> and prints how many there were.

Exit codes: 0 ok, 1 error, 2 usage, 3 cannot connect.
";

/// `PURGE` has no options of its own.
struct Purge;

impl Command for Purge {
    /// Drops a queue's messages and says how many.
    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = queue_name(&args[0])?;
        let (mut client, _) = connect(addr, REPLY_TIMEOUT)?;
        let count = client.purge(queue).map_err(|e| Failure::client(addr, &e))?;
        let text = format!(
            "purged {count} message{} from {}\n",
            if count == 1 { "" } else { "s" },
            display_name(queue)
        );
        write_stdout(text.as_bytes()).map(|_| ())
    }
}
