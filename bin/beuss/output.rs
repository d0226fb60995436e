//! The output layer shared by every verb: exit codes, [`Failure`] (a message for
//! stderr plus an exit code), writing standard output, and the one-line escaping that
//! `ON` and the tables use.

use std::io::{self, Write};
use std::process::ExitCode;

use beuss::client::Error as ClientError;
use beuss::protocol::ErrorCode;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Any error not listed below (I/O, protocol, a server error other than `FULL`).
pub const EXIT_ERROR: u8 = 1;
/// Bad arguments.
pub const EXIT_USAGE: u8 = 2;
/// The server could not be reached, or the connection broke.
pub const EXIT_CONNECT: u8 = 3;
/// `GET` found the queue empty, or `STATS <queue>` found no such queue.
pub const EXIT_EMPTY: u8 = 4;
/// `PUT` was refused because the server is full (`BMAXMEMORY`, or its disk).
pub const EXIT_FULL: u8 = 5;
/// `ACK`, `NACK` or `TOUCH`: at least one lease was `STALE` or `NOT_FOUND`.
pub const EXIT_UNSETTLED: u8 = 6;
/// `REQ`: nobody is bound or subscribed to the subject (`NO_RESPONDERS`); `PUB
/// --confirm N`: fewer than N queues are bound (`TOO_FEW_COPIES`). Nothing was sent.
pub const EXIT_NO_RESPONDERS: u8 = 7;
/// `PUB --confirm N`: published, but fewer than N copies were confirmed in time.
pub const EXIT_UNCONFIRMED: u8 = 8;
/// `PUT --unique`: not stored, another message holds the key (or held it within
/// its window).
pub const EXIT_DUPLICATE: u8 = 9;

/// The exit codes, as `beuss --help` lists them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  error (I/O, protocol, a server error other than FULL)
  2  usage error (bad arguments)
  3  cannot connect to the server, or the connection broke
  4  GET: the queue is empty; STATS <queue>: there is no such queue;
     REQ: no reply within --timeout; UNBIND: there was no such binding
  5  PUT, PUB, REQ, BIND: the server is full (BMAXMEMORY, or its disk)
  6  ACK, NACK, TOUCH: a lease was STALE or NOT_FOUND (see its line)
  7  REQ: no responders; PUB --confirm N: fewer than N queues bound
     (nothing was sent either way)
  8  PUB --confirm N: fewer than N copies confirmed within --timeout
  9  PUT --unique: not stored, a message holds the key (stderr says which)
";

/// Why the command failed: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process's exit code.
    pub code: u8,
    /// What went wrong, for stderr (without the `beuss: ` prefix).
    pub message: String,
    /// What answers at the address does not speak protocol 1: trying again cannot
    /// help (`ON` stops instead of reconnecting).
    pub incompatible: bool,
}

impl Failure {
    /// A failure with exit code `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            incompatible: false,
        }
    }

    /// Bad arguments (exit code 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_USAGE, message)
    }

    /// The peer is not a beuss protocol-1 server (exit code 1).
    pub fn not_beuss(message: impl Into<String>) -> Failure {
        Failure {
            incompatible: true,
            ..Failure::new(EXIT_ERROR, message)
        }
    }

    /// A client error while talking to `addr`, with the exit code its kind calls for.
    pub fn client(addr: &str, e: &ClientError) -> Failure {
        match e {
            ClientError::Connect { addr, source } => Failure::new(
                EXIT_CONNECT,
                format!("cannot connect to {addr}: {}", describe_io(source)),
            ),
            ClientError::Io(source) => Failure::new(
                EXIT_CONNECT,
                format!("lost the connection to {addr}: {}", describe_io(source)),
            ),
            ClientError::Closed => Failure::new(
                EXIT_CONNECT,
                format!("{addr} closed the connection (server stopped?)"),
            ),
            ClientError::Server { code, message, .. } => Failure::server(addr, *code, message),
            ClientError::NoResponders { message } => Failure::new(
                EXIT_NO_RESPONDERS,
                format!("no responders at {addr}: {message}"),
            ),
            ClientError::TooFewCopies { message } => {
                Failure::new(EXIT_NO_RESPONDERS, format!("{addr}: {message}"))
            }
            _ => Failure::new(EXIT_ERROR, format!("{addr}: {e}")),
        }
    }

    /// An `ERROR` reply from the server at `addr`.
    pub fn server(addr: &str, code: u16, message: &str) -> Failure {
        match ErrorCode::from_u16(code) {
            Some(ErrorCode::Full) if message.contains("disk") => Failure::new(
                EXIT_FULL,
                format!(
                    "the server at {addr} is full (its BDATADIR disk has no room): the \
                     message was not stored; try again once there is room"
                ),
            ),
            Some(ErrorCode::Full) if message.contains("BQUEUEMAX") => Failure::new(
                EXIT_FULL,
                format!(
                    "the queue is full at {addr} ({message}); try again once consumers \
                     have taken some of its messages"
                ),
            ),
            Some(ErrorCode::Full) => Failure::new(
                EXIT_FULL,
                format!(
                    "the server at {addr} is full (BMAXMEMORY reached): the message was \
                     not stored; try again once consumers have taken some messages"
                ),
            ),
            Some(ErrorCode::ShuttingDown) => Failure::new(
                EXIT_CONNECT,
                format!("the server at {addr} is shutting down"),
            ),
            Some(name) => Failure::new(
                EXIT_ERROR,
                format!("{addr}: server error {name}: {message}"),
            ),
            None => Failure::new(
                EXIT_ERROR,
                format!("{addr}: server error {code}: {message}"),
            ),
        }
    }
}

/// An I/O error in words a person can act on.
pub fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused — is beuss-server running?".to_owned()
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "no reply in time".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        _ => e.to_string(),
    }
}

/// Prints a failure (if it has a message) and turns it into the exit code.
pub fn report(failure: &Failure) -> ExitCode {
    if !failure.message.is_empty() {
        eprintln!("beuss: {}", failure.message);
        if failure.code == EXIT_USAGE && !failure.message.contains("--help") {
            eprintln!("beuss: see beuss --help");
        }
    }
    ExitCode::from(failure.code)
}

/// Writes `bytes` to standard output and flushes: `Ok(false)` if the reader went
/// away (a pipe closed early, as with `| head`, is not an error), an error for any
/// other failure (a full disk must not pass for success).
pub fn write_stdout(bytes: &[u8]) -> Result<bool, Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::new(
            EXIT_ERROR,
            format!("cannot write standard output: {e}"),
        )),
    }
}

/// The default `ON` format: one line per message. Drops one final newline, then
/// escapes `\` as `\\`, newline as `\n`, CR as `\r`, every other control byte but
/// tab, and every byte that is not UTF-8, as `\0ooo` (three octal digits); ends with
/// a newline.
///
/// These are exactly the escapes POSIX `printf %b` turns back into bytes (dash, the
/// `/bin/sh` of Debian and Raspberry Pi OS, knows no `\xHH`), so
/// `printf '%b\n' "$line"` restores the message in any POSIX shell. The octal form
/// always has three digits, so a digit after it is never taken as part of it.
pub fn escape_line(message: &[u8], out: &mut Vec<u8>) {
    let message = message.strip_suffix(b"\n").unwrap_or(message);
    escape_into(message, out);
    out.push(b'\n');
}

/// The escaping of [`escape_line`], without the line handling.
fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.push(b'\t'),
                0..=0x1f | 0x7f => push_octal(b, out),
                _ => out.push(b),
            }
        }
        for &b in chunk.invalid() {
            push_octal(b, out);
        }
    }
}

/// `b` as `\0ooo`.
fn push_octal(b: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'\\',
        b'0',
        b'0' + (b >> 6),
        b'0' + ((b >> 3) & 7),
        b'0' + (b & 7),
    ]);
}

/// A queue name made safe for one line of a terminal (same escapes as `ON`).
pub fn display_name(name: &str) -> String {
    display_bytes(name.as_bytes())
}

/// Any bytes made safe for one line of a terminal (same escapes as `ON`).
pub fn display_bytes(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    escape_into(bytes, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &[u8]) -> String {
        let mut out = Vec::new();
        escape_line(message, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Plain text is unchanged; one final newline is dropped; framing bytes are escaped.
    #[test]
    fn line_escaping() {
        assert_eq!(line(b"hello world"), "hello world\n");
        assert_eq!(line(b"hello\n"), "hello\n");
        assert_eq!(line(b"a\nb\n\n"), "a\\nb\\n\n");
        assert_eq!(line(b"back\\slash\r\ttab"), "back\\\\slash\\r\ttab\n");
        assert_eq!(line(b"nul\0\x1b\x7f"), "nul\\0000\\0033\\0177\n");
        assert_eq!(line(b"\x1b5"), "\\00335\n");
        assert_eq!(line(b"caf\xc3\xa9 \xff\xfe"), "café \\0377\\0376\n");
        assert_eq!(line(b""), "\n");
    }
}
