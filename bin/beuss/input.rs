//! The payload of `PUB` and `REQ`: a file named on the command line, or standard
//! input, read into memory but never more than the server keeps plus one byte (the
//! rest is read, counted and dropped, as `PUT` does from a pipe).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, IsTerminal, Read};

use crate::output::{EXIT_ERROR, Failure};

/// A payload as read: what will be sent, and how long the input really was.
pub struct Payload {
    /// At most the server's message size plus one byte, so that it counts a cut.
    pub bytes: Vec<u8>,
    /// Bytes the input had.
    pub total: u64,
}

/// Reads the payload from `file` (`None` or `-`: standard input), keeping at most
/// `max_message_size + 1` bytes.
///
/// # Errors
/// Exit code 1 when the input cannot be read; nothing was sent then.
pub fn read_payload(file: Option<&OsStr>, max_message_size: u32) -> Result<Payload, Failure> {
    let most = u64::from(max_message_size) + 1;
    let cannot = |what: &str, e: io::Error| {
        Failure::new(
            EXIT_ERROR,
            format!("cannot read {what}: {e}; nothing was sent"),
        )
    };
    match file.filter(|f| *f != "-") {
        Some(path) => {
            let what = path.to_string_lossy();
            let file = File::open(path).map_err(|e| cannot(&what, e))?;
            read_capped(file, most).map_err(|e| cannot(&what, e))
        }
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                eprintln!("beuss: reading the message from standard input (end it with Ctrl-D)");
            }
            read_capped(stdin.lock(), most).map_err(|e| cannot("standard input", e))
        }
    }
}

fn read_capped(mut input: impl Read, most: u64) -> io::Result<Payload> {
    let mut bytes = Vec::new();
    (&mut input).take(most).read_to_end(&mut bytes)?;
    let mut total = bytes.len() as u64;
    if total == most {
        total += io::copy(&mut input, &mut io::sink())?;
    }
    Ok(Payload { bytes, total })
}

/// Warns on stderr when the server kept fewer than `total` bytes.
pub fn warn_if_cut(total: u64, stored: u64) {
    if total > stored {
        eprintln!(
            "beuss: warning: message truncated: the input had {total} bytes, the server \
             kept the first {stored} (its BMAXMESSAGESIZE)"
        );
    }
}
