//! `beuss ON`: every message as it arrives, until stopped.
//!
//! `ON` consumes with the server's waiting `GET` (parked for [`ON_WAIT`] at a time),
//! so a message reaches it as soon as it is `PUT`; nothing here polls with sleeps.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use beuss::Client;
use beuss::client::Error as ClientError;
use beuss::protocol::ErrorCode;
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, queue_name};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::files::create_temp;
use crate::output::{EXIT_ERROR, EXIT_OK, Failure, escape_line, write_stdout};

/// How long one `GET` of `ON` stays parked on the server before it is renewed. Long
/// waits cost nothing (the server wakes the consumer the moment a message arrives);
/// a finite one lets a silently dead connection be noticed through the read timeout.
const ON_WAIT: Duration = Duration::from_secs(30);

/// First pause before `ON` reconnects; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest pause between two reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Digits of the file names `ON --dir` writes (`0000000001`, ...).
const DIR_NAME_DIGITS: usize = 10;

/// The verb table's row for `ON`.
pub const VERB: Verb = Verb {
    name: "ON",
    summary: "beuss ON <queue>                 print every message as it arrives",
    help: HELP,
    arity: (1, 1),
    takes: "a queue name",
    new: || Box::<On>::default(),
};

const HELP: &str = "\
Usage: beuss ON <queue> [--raw | -0 | --dir DIR] [--no-reconnect]

Takes every message of <queue> as it arrives, oldest first, and writes it out
at once (standard output is flushed after each message), until stopped.
Messages are taken one at a time with the server's waiting GET: no polling.

Output formats:
  (default)       one message per line. One final newline of the message is
                  not doubled (\"hi\\n\" and \"hi\" both print as `hi`). Inside
                  the line, a backslash prints as \\\\, a newline as \\n, a
                  carriage return as \\r, any other control byte (but tab,
                  which prints as it is) and any byte that is not UTF-8 as \\0
                  and three octal digits (ESC is \\0033). So text prints
                  unchanged and a line never breaks in two; in any POSIX shell
                  (dash too), IFS= read -r line then printf '%b\\n' \"$line\"
                  gives the message back byte for byte (with one final newline).
  --raw           the bytes of each message as they are, nothing in between
  -0, --null      each message followed by a NUL byte (for xargs -0; a message
                  that contains NUL bytes breaks this framing: use --dir)
  --dir DIR       each message into its own file DIR/0000000001, ...0002, ...
                  (numbering goes on after the highest number already there;
                  DIR is created if needed; a number already taken, e.g. by
                  another ON on the same DIR, is skipped). Each file is written
                  to a new temporary name first, so it appears whole. Prints
                  each file's path, one per line.

  --no-reconnect  exit (code 3) when the connection breaks, instead of
                  reconnecting with a backoff of 100 ms doubling up to 5 s
                  (reconnection attempts are reported on stderr)

The first connection is not retried: if the server cannot be reached at start,
ON exits with code 3. ON exits with 0 when its reader goes away (beuss ON q |
head -1); while it waits for a message it notices at once, so the next message
stays in the queue.

What can be lost: delivery is at most once, and a pipe widens the window. ON
takes each message from the queue as soon as the pipe has room for it, whatever
the reader is doing, and a pipe holds 64 KiB (hundreds of short messages).
Every message written into the pipe but not yet read is lost when the reader
stops or dies: with 100 jobs queued, a `while read` loop that handles one and
exits (or crashes) loses the other 99. Use ON where that is acceptable (logs,
notifications). For jobs that must not be lost, take one at a time, only when
ready for it:
  while beuss GET jobs job.txt --wait 60; do ./handle job.txt; done
(a job is then lost only if the handler dies while on it), or better, keep
each job on the server until it is done: beuss GET --lease and ACK, or the
job runner beuss WORK (see their --help).

Example: beuss ON jobs | while IFS= read -r job; do echo \"doing $job\"; done
";

/// How `ON` (and `SUB`) writes each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFormat {
    /// One escaped message per line (the default).
    Line,
    /// Bytes as they are.
    Raw,
    /// Bytes followed by NUL.
    Null,
    /// One file per message in this directory.
    Dir(PathBuf),
}

/// `ON`'s options.
#[derive(Default)]
struct On {
    /// `--raw`, `--null` or `--dir`; one line per message when none is given.
    format: Option<OnFormat>,
    /// `--no-reconnect`.
    no_reconnect: bool,
}

/// The output format `option` chooses (`--raw`, `-0`/`--null`, `--dir DIR`), if it
/// is one of them.
///
/// # Errors
/// A usage failure for `--dir` without a directory.
pub fn format_option(option: &Opt, parser: &mut Parser) -> Result<Option<OnFormat>, Failure> {
    Ok(Some(match option.arg() {
        Arg::Long("raw") => OnFormat::Raw,
        Arg::Short('0') | Arg::Long("null") => OnFormat::Null,
        Arg::Long("dir") => OnFormat::Dir(PathBuf::from(
            parser
                .value()
                .map_err(|_| Failure::usage("--dir needs a directory"))?,
        )),
        _ => return Ok(None),
    }))
}

impl Command for On {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        if option.arg() == Arg::Long("no-reconnect") {
            self.no_reconnect = true;
            return Ok(true);
        }
        let Some(format) = format_option(option, parser)? else {
            return Ok(false);
        };
        if self.format.replace(format).is_some() {
            return Err(Failure::usage("choose one of --raw, --null and --dir"));
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = queue_name(&args[0])?;
        let format = self.format.unwrap_or(OnFormat::Line);
        on(addr, queue, format, !self.no_reconnect)
    }
}

/// `ON`: every message as it arrives, until stopped or the reader goes away.
fn on(addr: &str, queue: &str, format: OnFormat, reconnect: bool) -> Result<(), Failure> {
    let mut sink = Sink::new(format)?;
    let reply_within = ON_WAIT.saturating_add(REPLY_TIMEOUT);
    let (mut client, _) = connect(addr, reply_within)?;
    exit_when_reader_leaves();
    loop {
        match client.get_wait(queue, ON_WAIT) {
            Ok(Some(message)) => sink.write(&message)?,
            Ok(None) => {}
            Err(e) if reconnect && breaks_connection(&e) => {
                eprintln!("beuss: {}; reconnecting", Failure::client(addr, &e).message);
                client = reconnect_with_backoff(addr, reply_within)?;
                eprintln!("beuss: reconnected to {addr}");
            }
            Err(e) => return Err(Failure::client(addr, &e)),
        }
    }
}

/// True for the errors after which a new connection may work: the server stopped,
/// restarted or the network failed; not for a refused request.
pub fn breaks_connection(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Closed => true,
        // TIMEOUT: the server closed an idle connection (BIDLETIMEOUT); a new one works.
        ClientError::Server { .. } => {
            matches!(e.code(), Some(ErrorCode::ShuttingDown | ErrorCode::Timeout))
        }
        _ => false,
    }
}

/// Connects again, pausing [`BACKOFF_START`], doubling up to [`BACKOFF_MAX`], and
/// saying so on stderr at each failed attempt. Never gives up: `ON` is meant to
/// outlive server restarts (Ctrl-C or `--no-reconnect` stop it), except when what
/// answers now is not a beuss protocol-1 server: waiting cannot fix that.
pub fn reconnect_with_backoff(addr: &str, reply_within: Duration) -> Result<Client, Failure> {
    let mut pause = BACKOFF_START;
    loop {
        std::thread::sleep(pause);
        match connect(addr, reply_within) {
            Ok((client, _)) => return Ok(client),
            Err(failure) if failure.incompatible => return Err(failure),
            Err(failure) => {
                pause = (pause * 2).min(BACKOFF_MAX);
                eprintln!(
                    "beuss: {}; retrying in {:.1} s",
                    failure.message,
                    pause.as_secs_f64()
                );
            }
        }
    }
}

/// Watches standard output when it is a pipe and ends the process as soon as the
/// reading end is closed (`beuss ON q | head -1`). Without this, ON would notice only
/// when writing the next message, which by then is taken from the queue and lost;
/// exiting while the GET is parked leaves that message in the queue (the server
/// cancels a parked GET when its connection closes). A thread blocked in `poll` costs
/// nothing while it waits.
pub fn exit_when_reader_leaves() {
    // SAFETY: fstat on fd 1 into a zeroed stat buffer we own.
    let is_pipe = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(libc::STDOUT_FILENO, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO
    };
    if !is_pipe {
        return;
    }
    std::thread::spawn(|| {
        loop {
            // events = 0: only POLLERR (no reader left) and POLLHUP are reported.
            let mut fd = libc::pollfd {
                fd: libc::STDOUT_FILENO,
                events: 0,
                revents: 0,
            };
            // SAFETY: poll on one pollfd we own, no timeout.
            let n = unsafe { libc::poll(&mut fd, 1, -1) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                std::process::exit(i32::from(EXIT_OK));
            }
            return; // POLLNVAL or an unexpected error: stop watching.
        }
    });
}

/// Where `ON` (and `SUB`) puts each message, per [`OnFormat`].
pub struct Sink {
    format: OnFormat,
    /// Number of the next file (`--dir`).
    next: u64,
    /// Reused output buffer.
    buf: Vec<u8>,
}

impl Sink {
    /// A sink for `format`; `--dir` creates its directory and numbers on after the
    /// highest file in it.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub fn new(format: OnFormat) -> Result<Sink, Failure> {
        let mut next = 1;
        if let OnFormat::Dir(dir) = &format {
            let cannot = |e: io::Error| {
                Failure::new(EXIT_ERROR, format!("cannot use {}: {e}", dir.display()))
            };
            fs::create_dir_all(dir).map_err(cannot)?;
            for entry in fs::read_dir(dir).map_err(cannot)? {
                let name = entry.map_err(cannot)?.file_name();
                if let Some(n) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    next = next.max(n.saturating_add(1));
                }
            }
        }
        Ok(Sink {
            format,
            next,
            buf: Vec::new(),
        })
    }

    /// Writes one message and flushes; a reader that went away ends the process
    /// quietly with code 0.
    pub fn write(&mut self, message: &[u8]) -> Result<(), Failure> {
        self.buf.clear();
        match &self.format {
            OnFormat::Line => escape_line(message, &mut self.buf),
            OnFormat::Raw => self.buf.extend_from_slice(message),
            OnFormat::Null => {
                self.buf.extend_from_slice(message);
                self.buf.push(0);
            }
            OnFormat::Dir(dir) => {
                let path = write_numbered(dir, &mut self.next, message)?;
                self.buf
                    .extend_from_slice(path.as_os_str().as_encoded_bytes());
                self.buf.push(b'\n');
            }
        }
        if !write_stdout(&self.buf)? {
            std::process::exit(i32::from(EXIT_OK));
        }
        Ok(())
    }
}

/// Writes `message` to `dir/<number>` through a temporary file, taking the next
/// number free from `*next` on: the name is claimed with a hard link, which fails if
/// it exists, so two `ON --dir` runs on one folder never overwrite each other's
/// files. (On a file system without hard links, a rename does it, as before.)
fn write_numbered(dir: &Path, next: &mut u64, message: &[u8]) -> Result<PathBuf, Failure> {
    let cannot = |path: &Path, e: io::Error| {
        Failure::new(
            EXIT_ERROR,
            format!(
                "cannot write {}: {e} (that message was taken from the queue and is lost)",
                path.display()
            ),
        )
    };
    let (mut file, temp) = create_temp(dir, OsStr::new("message")).map_err(|e| cannot(dir, e))?;
    if let Err(e) = file.write_all(message) {
        let _ = fs::remove_file(&temp);
        return Err(cannot(&temp, e));
    }
    drop(file);
    loop {
        let path = dir.join(format!("{:0DIR_NAME_DIGITS$}", *next));
        let claimed = match fs::hard_link(&temp, &path) {
            Ok(()) => {
                let _ = fs::remove_file(&temp);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                *next += 1;
                continue;
            }
            Err(_) => fs::rename(&temp, &path),
        };
        *next += 1;
        return match claimed {
            Ok(()) => Ok(path),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(cannot(&path, e))
            }
        };
    }
}
