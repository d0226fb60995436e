//! `beuss PURGE`: drop every message of a queue.

use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{Failure, display_name, write_stdout};

pub const PURGE_HELP: &str = "\
Usage: beuss PURGE <queue>

Drops every message held in <queue> and prints how many there were.

Exit codes: 0 ok, 1 error, 2 usage, 3 cannot connect.
";

/// `PURGE`: drops a queue's messages and says how many.
pub fn purge(addr: &str, queue: &str) -> Result<(), Failure> {
    let mut client = connect(addr, REPLY_TIMEOUT)?;
    let count = client.purge(queue).map_err(|e| Failure::client(addr, &e))?;
    let text = format!(
        "purged {count} message{} from {}\n",
        if count == 1 { "" } else { "s" },
        display_name(queue)
    );
    write_stdout(text.as_bytes()).map(|_| ())
}
