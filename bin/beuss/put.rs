//! `beuss PUT`: one message from standard input, streamed.
//!
//! A frame's length comes before its payload, so the length must be known first. A
//! large regular file gives it (`fstat`) and is copied from disk to the socket in
//! pieces; anything else (a pipe, a terminal, a small or `/proc` file) is read into
//! memory, but never more than the server keeps plus one byte: the rest of the input
//! is read, counted and dropped, as the server would drop it, and the warning gives
//! the real size.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek};
use std::os::fd::AsFd;

use std::time::Duration;

use beuss::client::{Expiry, PutOptions, PutStatus, Unique, UniquePut};
use beuss::protocol::{
    DEFAULT_PRIORITY, FEATURE_PUT_OPTIONS, FEATURE_TTL, FEATURE_UNIQUE, MAX_DELAY_MS, MAX_KEY_LEN,
    MAX_PRIORITY, MAX_TTL_MS, MAX_WINDOW_MS,
};
use lexopt::{Arg, Parser};

use crate::args::{
    Command, Opt, Verb, duration_value, number_value, queue_name, show_duration, string_value,
};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{EXIT_DUPLICATE, EXIT_ERROR, Failure, write_stdout};

/// The verb table's row for `PUT`.
pub const VERB: Verb = Verb {
    name: "PUT",
    summary: "echo data | beuss PUT <queue>    store one message read from standard input",
    help: HELP,
    arity: (1, 1),
    takes: "a queue name",
    new: || Box::<Put>::default(),
};

/// Regular files over this size are streamed from disk. Smaller ones are read into
/// memory like a pipe: that costs nothing, and files in `/proc` and `/sys` claim
/// sizes (0, 4096) that are not their content.
const STREAM_FROM: u64 = 1 << 20;

const HELP: &str = "\
Usage: beuss PUT <queue> [--delay DURATION] [--priority 0-9] [--id]
                [--unique KEY [--unique-for DURATION] [--replace]]
                [--ttl DURATION [--ttl-dead]]

Stores one message on <queue>: all of standard input, read to its end, byte for
byte (binary is fine; nothing is added or removed, so `echo hi` stores \"hi\\n\").
The queue is created if needed. Prints nothing on success.

  --delay DURATION  the message becomes ready only after DURATION (500ms,
                    30s, 10m, 2h, up to 30 days); until then no consumer sees it
  --priority N      0 (delivered first) to 9 (last); default 5. Messages of one
                    priority keep their order
  --id              print the new message's id on standard output
  --unique KEY      store it only if no message of <queue> holds KEY (ready,
                    delayed or in flight); else exit 9, saying which does
  --unique-for DURATION
                    keep refusing KEY for DURATION after its message left the
                    queue (acked, taken, purged): a dedup window, up to 30 days
  --replace         with --unique: replace the waiting message that holds KEY
                    (its payload, priority and delay become this PUT's; it
                    keeps its id and place); one in flight is never replaced
  --ttl DURATION    expire it DURATION after this PUT (up to 30 days): not
                    delivered by then, it never is, and is dropped; 0 = never,
                    whatever the server's BQUEUETTL for <queue>
  --ttl-dead        with --ttl: move it to <queue>.dead when it expires

If the message is longer than the server's BMAXMESSAGESIZE, the server keeps
only the first BMAXMESSAGESIZE bytes: beuss sends no more than that (plus one
byte, so that the server counts the truncation) and skips the rest (a pipe is
still read to its end, so that its writer is not cut off), warns on stderr with
both sizes and exits 0.

Memory: a regular file over 1 MiB (beuss PUT q < file) is sent straight from
disk; from a pipe, up to BMAXMESSAGESIZE + 1 bytes are held in memory (with
--delay, --priority or --id, from a file too).

Exit codes: 0 stored or replaced (whole or truncated), 1 error, 2 usage,
3 cannot connect, 5 the server is full (BMAXMEMORY, or its disk): nothing
stored, try later; 9 --unique: a message holds the key, nothing stored.

Example: beuss PUT photos < photo.jpg
         echo \"send reminder 7\" | beuss PUT mail --delay 10m --priority 3
         echo \"invoice 42\" | beuss PUT bills --unique inv-42 --unique-for 1h
";

/// `PUT`'s options: with any of them, the message goes as a version-2 `PUT` with
/// options (which returns the id).
#[derive(Default)]
struct Put {
    /// `--delay`.
    delay: Option<Duration>,
    /// `--priority`.
    priority: Option<u8>,
    /// `--id`.
    print_id: bool,
    /// `--unique`.
    unique: Option<String>,
    /// `--unique-for`.
    unique_for: Option<Duration>,
    /// `--replace`.
    replace: bool,
    /// `--ttl`.
    ttl: Option<Duration>,
    /// `--ttl-dead`.
    ttl_dead: bool,
}

impl Command for Put {
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
            Arg::Long("id") => self.print_id = true,
            Arg::Long("unique") => {
                let key = string_value(parser, option)?;
                if key.is_empty() || key.len() > MAX_KEY_LEN {
                    return Err(Failure::usage(format!(
                        "--unique: a key is 1 to {MAX_KEY_LEN} bytes, not {}",
                        key.len()
                    )));
                }
                self.unique = Some(key);
            }
            Arg::Long("unique-for") => {
                let most = Duration::from_millis(MAX_WINDOW_MS.into());
                self.unique_for = Some(duration_value(parser, option, most)?);
            }
            Arg::Long("replace") => self.replace = true,
            Arg::Long("ttl") => {
                let most = Duration::from_millis(MAX_TTL_MS.into());
                self.ttl = Some(duration_value(parser, option, most)?);
            }
            Arg::Long("ttl-dead") => self.ttl_dead = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = queue_name(&args[0])?;
        let options = PutOptions {
            delay: self.delay.unwrap_or_default(),
            priority: self.priority.unwrap_or(DEFAULT_PRIORITY),
        };
        if self.unique.is_none() && (self.unique_for.is_some() || self.replace) {
            return Err(Failure::usage(
                "--unique-for and --replace go with --unique KEY".to_owned(),
            ));
        }
        if self.ttl.is_none() && self.ttl_dead {
            return Err(Failure::usage(
                "--ttl-dead goes with --ttl DURATION".to_owned(),
            ));
        }
        let expiry = self.ttl.map(|ttl| {
            let expiry = Expiry::after(ttl);
            if self.ttl_dead {
                expiry.dead_letter()
            } else {
                expiry
            }
        });
        let unique = self.unique.as_deref().map(|key| {
            let mut unique = Unique::key(key.as_bytes());
            if let Some(window) = self.unique_for {
                unique = unique.remember_for(window);
            }
            if self.replace {
                unique = unique.replace();
            }
            (unique, key)
        });
        if unique.is_some() || expiry.is_some() {
            return put_job(addr, queue, unique, expiry, options, self.print_id);
        }
        let with =
            (self.delay.is_some() || self.priority.is_some() || self.print_id).then_some(options);
        put(addr, queue, with)
    }
}

/// `PUT`: standard input as one message, with options if `with` is given (then
/// the id is printed).
fn put(addr: &str, queue: &str, with: Option<PutOptions>) -> Result<(), Failure> {
    // Connect first: the server's limit bounds what is read into memory.
    let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
    if let Some(options) = with {
        let limits = server
            .limits
            .ok_or_else(|| no_options(addr, &server.name))?;
        if limits.features & FEATURE_PUT_OPTIONS == 0 {
            return Err(no_options(addr, &server.name));
        }
        if options.delay.as_millis() > u128::from(limits.max_delay_ms) {
            return Err(Failure::usage(format!(
                "--delay {} is longer than this server allows ({})",
                show_duration(options.delay),
                show_duration(Duration::from_millis(limits.max_delay_ms.into()))
            )));
        }
    }
    let mut stdin = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| cannot_read(&e))?;
    if stdin.is_terminal() {
        eprintln!("beuss: reading the message from standard input (end it with Ctrl-D)");
    }
    // One byte over the limit is enough for the server to see (and count) a
    // truncation; a frame cannot pass 2^32 - 1 bytes.
    let most =
        (u64::from(server.max_message_size) + 1).min(u64::from(u32::MAX) - 3 - queue.len() as u64);
    let client_failure = |e| Failure::client(addr, &e);
    let mut id = None;
    let streamable = if with.is_some() {
        None
    } else {
        streamable_len(&mut stdin)
    };
    let (status, sent, total) = match streamable {
        Some(total) => {
            let len = total.min(most);
            let mut input = Tracked::new(&mut stdin);
            let status = client
                .put_reader(queue, len as u32, &mut input)
                .map_err(|e| input.failure(len).unwrap_or_else(|| client_failure(e)))?;
            (status, len, total)
        }
        None => {
            let mut kept = Vec::new();
            (&mut stdin)
                .take(most)
                .read_to_end(&mut kept)
                .map_err(|e| cannot_read(&e))?;
            let mut total = kept.len() as u64;
            if total == most {
                total += io::copy(&mut stdin, &mut io::sink()).map_err(|e| cannot_read(&e))?;
            }
            let status = match with {
                Some(options) => {
                    let (new_id, status) = client
                        .put_with_status(queue, &kept, options)
                        .map_err(client_failure)?;
                    id = Some(new_id);
                    status
                }
                None => client
                    .put_reader(queue, kept.len() as u32, kept.as_slice())
                    .map_err(client_failure)?,
            };
            (status, kept.len() as u64, total)
        }
    };
    let stored = match status {
        PutStatus::Stored => sent,
        PutStatus::Truncated { stored_len, .. } => u64::from(stored_len),
    };
    if total > stored {
        eprintln!(
            "beuss: warning: message truncated: standard input had {total} bytes, the \
             server stored the first {stored} (its BMAXMESSAGESIZE)"
        );
    }
    if let Some(id) = id {
        write_stdout(format!("{id}\n").as_bytes())?;
    }
    Ok(())
}

/// `PUT --unique` or `--ttl`: standard input as one message with a key (given with
/// its text, for messages) or an expiry, read into memory.
fn put_job(
    addr: &str,
    queue: &str,
    unique: Option<(Unique<'_>, &str)>,
    expiry: Option<Expiry>,
    options: PutOptions,
    print_id: bool,
) -> Result<(), Failure> {
    let (mut client, server) = connect(addr, REPLY_TIMEOUT)?;
    let features = server
        .limits
        .filter(|_| server.version >= 6)
        .map_or(0, |l| l.features);
    for (asked, bit, what) in [
        (
            unique.is_some(),
            FEATURE_UNIQUE,
            "unique messages; --unique",
        ),
        (expiry.is_some(), FEATURE_TTL, "message expiry; --ttl"),
    ] {
        if asked && features & bit == 0 {
            return Err(Failure::new(
                EXIT_ERROR,
                format!(
                    "the server at {addr} ({}) has no {what} needs a version-6 \
                     beuss-server",
                    server.name
                ),
            ));
        }
    }
    let mut stdin = io::stdin();
    if stdin.is_terminal() {
        eprintln!("beuss: reading the message from standard input (end it with Ctrl-D)");
    }
    let most = u64::from(server.max_message_size) + 1;
    let mut kept = Vec::new();
    (&mut stdin)
        .take(most)
        .read_to_end(&mut kept)
        .map_err(|e| cannot_read(&e))?;
    let mut total = kept.len() as u64;
    if total == most {
        total += io::copy(&mut stdin, &mut io::sink()).map_err(|e| cannot_read(&e))?;
    }
    let done = client
        .put_job(queue, &kept, unique.map(|(u, _)| u), expiry, options)
        .map_err(|e| Failure::client(addr, &e))?;
    let key = unique.map_or("", |(_, key)| key);
    let status = match done {
        UniquePut::Stored { status, .. } | UniquePut::Replaced { status, .. } => status,
        UniquePut::Duplicate { id, holder } => {
            if print_id {
                write_stdout(format!("{id}\n").as_bytes())?;
            }
            return Err(Failure::new(
                EXIT_DUPLICATE,
                format!(
                    "not stored: message {id} of {queue} holds the key {key:?} ({})",
                    holder.describe()
                ),
            ));
        }
    };
    if let PutStatus::Truncated { stored_len, .. } = status
        && total > u64::from(stored_len)
    {
        eprintln!(
            "beuss: warning: message truncated: standard input had {total} bytes, the \
             server stored the first {stored_len} (its BMAXMESSAGESIZE)"
        );
    }
    if print_id {
        write_stdout(format!("{}\n", done.id()).as_bytes())?;
    }
    Ok(())
}

/// The server at `addr` cannot put with options.
fn no_options(addr: &str, name: &str) -> Failure {
    Failure::new(
        EXIT_ERROR,
        format!(
            "the server at {addr} ({name}) has no delays or priorities; --delay, \
             --priority and --id need a version-2 beuss-server"
        ),
    )
}

/// The bytes left in `stdin` if it is a regular file big enough to stream.
fn streamable_len(stdin: &mut File) -> Option<u64> {
    let size = stdin.metadata().ok().filter(|m| m.is_file())?.len();
    let left = size.saturating_sub(stdin.stream_position().ok()?);
    (left > STREAM_FROM).then_some(left)
}

fn cannot_read(e: &io::Error) -> Failure {
    Failure::new(
        EXIT_ERROR,
        format!("cannot read standard input: {e}; nothing was stored"),
    )
}

/// A reader that remembers why it stopped, so that a failed streaming `PUT` can
/// blame standard input rather than the connection.
struct Tracked<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// The read error, if one ended the copy.
    error: Option<io::Error>,
    /// True once a read returned end of file.
    ended: bool,
}

impl<R: Read> Tracked<R> {
    fn new(inner: R) -> Tracked<R> {
        Tracked {
            inner,
            read: 0,
            error: None,
            ended: false,
        }
    }

    /// What went wrong on the input side of a `PUT` of `len` bytes, if anything.
    fn failure(&mut self, len: u64) -> Option<Failure> {
        if let Some(e) = self.error.take() {
            return Some(cannot_read(&e));
        }
        self.ended.then(|| {
            Failure::new(
                EXIT_ERROR,
                format!(
                    "standard input ended after {} of the {len} bytes its size announced \
                     (did the file shrink while it was sent?); nothing was stored",
                    self.read
                ),
            )
        })
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.ended = true;
                Ok(0)
            }
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let relayed = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(relayed)
            }
        }
    }
}
