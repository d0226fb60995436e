//! `beuss PUT`: one message from standard input.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Read};

use beuss::client::PutStatus;

use crate::args::{Command, Verb, queue_name};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{EXIT_ERROR, Failure};

/// The verb table's row for `PUT`.
pub const VERB: Verb = Verb {
    name: "PUT",
    summary: "echo data | beuss PUT <queue>        store one message read from standard input",
    help: HELP,
    arity: (1, 1),
    takes: "a queue name",
    new: || Box::new(Put),
};

const HELP: &str = "\
Usage: beuss PUT <queue>

Stores one message on <queue>: all of standard input, read to its end, byte for
byte (binary is fine; nothing is added or removed, so `echo hi` stores \"hi\\n\").
The queue is created if needed. Prints nothing on success.

If the message is longer than the server's BMAXMESSAGESIZE, the server keeps only
the first BMAXMESSAGESIZE bytes: beuss warns on stderr with both sizes and exits 0.

Exit codes: 0 stored (whole or truncated), 1 error, 2 usage, 3 cannot connect,
5 the server is full (BMAXMEMORY): nothing was stored, try again later.

Example: cat photo.jpg | beuss PUT photos
";

/// `PUT` has no options of its own.
struct Put;

impl Command for Put {
    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        put(addr, queue_name(&args[0])?)
    }
}

/// `PUT`: standard input, whole, as one message.
fn put(addr: &str, queue: &str) -> Result<(), Failure> {
    let mut stdin = io::stdin().lock();
    if stdin.is_terminal() {
        eprintln!("beuss: reading the message from standard input (end it with Ctrl-D)");
    }
    let mut payload = Vec::new();
    stdin
        .read_to_end(&mut payload)
        .map_err(|e| Failure::new(EXIT_ERROR, format!("cannot read standard input: {e}")))?;
    let (mut client, _) = connect(addr, REPLY_TIMEOUT)?;
    match client.put(queue, &payload) {
        Ok(PutStatus::Stored) => Ok(()),
        Ok(PutStatus::Truncated {
            original_len,
            stored_len,
        }) => {
            eprintln!(
                "beuss: warning: message truncated: sent {original_len} bytes, the server \
                 stored the first {stored_len} (its BMAXMESSAGESIZE)"
            );
            Ok(())
        }
        Err(e) => Err(Failure::client(addr, &e)),
    }
}
