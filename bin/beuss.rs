//! `beuss`: the command-line client, with the Go original's verbs and argument order
//! (`echo data | beuss PUT q`, `beuss GET q out.bin`, `beuss ON q`) plus `STATS`,
//! `PURGE` and `PING`.
//!
//! The flow is: parse the arguments by hand (no argument crate, to keep the binary
//! small), resolve the server address (`--host`/`--port`, else `BHOST`/`BPORT`, else
//! `localhost:6552`), run one verb on a [`beuss::Client`], and map every failure to a
//! message a person can act on plus a documented exit code (see [`USAGE`]).
//!
//! `ON` consumes with the server's waiting `GET` (parked for [`ON_WAIT`] at a time),
//! so a message reaches it as soon as it is `PUT`; nothing here polls with sleeps.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use beuss::client::{self, Error as ClientError, PutStatus};
use beuss::join_host_port;
use beuss::protocol::{self, ErrorCode, Request, Response, StatsReport};
use beuss::{Client, DEFAULT_HOST, DEFAULT_PORT};

/// Success.
const EXIT_OK: u8 = 0;
/// Any error not listed below (I/O, protocol, a server error other than `FULL`).
const EXIT_ERROR: u8 = 1;
/// Bad arguments.
const EXIT_USAGE: u8 = 2;
/// The server could not be reached, or the connection broke.
const EXIT_CONNECT: u8 = 3;
/// `GET` found the queue empty.
const EXIT_EMPTY: u8 = 4;
/// `PUT` was refused because the server is full (`BMAXMEMORY`).
const EXIT_FULL: u8 = 5;

/// How long one `GET` of `ON` stays parked on the server before it is renewed. Long
/// waits cost nothing (the server wakes the consumer the moment a message arrives);
/// a finite one lets a silently dead connection be noticed through the read timeout.
const ON_WAIT: Duration = Duration::from_secs(30);
/// Slack on top of a request's own wait before a missing reply counts as a dead server.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// First pause before `ON` reconnects; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest pause between two reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Digits of the file names `ON --dir` writes (`0000000001`, ...).
const DIR_NAME_DIGITS: usize = 10;

/// `beuss --help`.
const USAGE: &str = "\
Usage:
  echo data | beuss PUT <queue>        store one message read from standard input
  beuss GET <queue> [output-file]      take the oldest message (to the file, else stdout)
  beuss ON <queue>                     print every message as it arrives, until stopped
  beuss STATS [queue] [--json]         server and queue figures
  beuss PURGE <queue>                  drop every message of a queue
  beuss PING                           check that the server answers
  beuss <VERB> --help                  details of one verb

Verbs are case-insensitive: put, get, on, stats, purge and ping work too.

Options (any verb, anywhere on the line):
  --host HOST      server host (default: $BHOST, else localhost)
  --port PORT      server port (default: $BPORT, else 6552)
  -h, --help       show help;   -V, --version   show the version

Environment: BHOST and BPORT select the server, as for beuss-server.

Exit codes:
  0  success
  1  error (I/O, protocol, a server error other than FULL)
  2  usage error (bad arguments)
  3  cannot connect to the server, or the connection broke
  4  GET: the queue is empty
  5  PUT: the server is full (BMAXMEMORY); nothing was stored
";

const PUT_HELP: &str = "\
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

const GET_HELP: &str = "\
Usage: beuss GET <queue> [output-file] [--wait SECONDS]

Takes the oldest message of <queue> and writes it, byte for byte with nothing
added, to <output-file> (replaced atomically: written to a temporary file next to
it, then renamed), or to standard output if there is none or it is `-`.
The message is removed from the queue.

  -w, --wait SECONDS   wait up to SECONDS (decimals allowed) for a message to
                       arrive if the queue is empty (default: answer at once)

Exit codes: 0 got a message, 1 error, 2 usage, 3 cannot connect,
4 the queue is empty (output-file is left untouched).

Example: beuss GET photos /tmp/photo.jpg || echo \"nothing yet\"
";

const ON_HELP: &str = "\
Usage: beuss ON <queue> [--raw | -0 | --dir DIR] [--no-reconnect]

Takes every message of <queue> as it arrives, oldest first, and writes it out at
once (standard output is flushed after each message), until stopped. Messages are
taken one at a time with the server's waiting GET: there is no polling.

Output formats:
  (default)        one message per line. One final newline of the message is not
                   doubled (\"hi\\n\" and \"hi\" both print as `hi`). Inside the line,
                   a backslash prints as \\\\, a newline as \\n, a carriage return as
                   \\r, and other control bytes and bytes that are not UTF-8 as \\xHH.
                   So plain text prints unchanged, and a line never breaks in two;
                   printf '%b\\n' \"$line\" gives the message back (minus that final
                   newline).
  --raw            the bytes of each message as they are, nothing between messages
  -0, --null       each message followed by a NUL byte (for xargs -0; a message
                   that contains NUL bytes breaks this framing: use --dir)
  --dir DIR        each message into its own file DIR/0000000001, DIR/0000000002,
                   ... (numbering goes on after the highest number already there;
                   DIR is created if needed; a number already taken, e.g. by
                   another ON on the same DIR, is skipped). Each file is written
                   to a temporary name first, so it appears whole. Prints each
                   file's path, one per line.

  --no-reconnect   exit (code 3) when the connection breaks, instead of
                   reconnecting with a backoff of 100 ms doubling up to 5 s
                   (reconnection attempts are reported on stderr)

The first connection is not retried: if the server cannot be reached at start,
ON exits with code 3. ON exits with 0 when its reader goes away (beuss ON q |
head -1); while it waits for a message it notices at once, so the next message
stays in the queue. Delivery is at most once: a message taken just before the
output fails (e.g. one already queued behind the last one head read) is lost.

Example: beuss ON jobs | while IFS= read -r job; do echo \"doing $job\"; done
";

const STATS_HELP: &str = "\
Usage: beuss STATS [queue] [--json]

Prints the server's figures and one row per queue (or only <queue>): messages
held, bytes, memory, puts, gets, truncations, waiting consumers, idle time.
protocol.md section 6 explains each figure.

  --json   one JSON object on one line instead of the table:
           {\"server\":{\"uptime_seconds\":12,...},\"queues\":{\"jobs\":{\"messages\":3,...}}}

Exit codes: 0 ok, 1 error, 2 usage, 3 cannot connect.
";

const PURGE_HELP: &str = "\
Usage: beuss PURGE <queue>

Drops every message held in <queue> and prints how many there were.

Exit codes: 0 ok, 1 error, 2 usage, 3 cannot connect.
";

const PING_HELP: &str = "\
Usage: beuss PING

Checks that the server answers; prints its version, protocol version, message
size limit and the round-trip time.

Exit codes: 0 the server answered, 1 error, 2 usage, 3 cannot connect.
";

/// A verb of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Put,
    Get,
    On,
    Stats,
    Purge,
    Ping,
}

impl Verb {
    /// Parses a verb in any letter case.
    fn parse(word: &str) -> Option<Verb> {
        Some(match word.to_ascii_uppercase().as_str() {
            "PUT" => Verb::Put,
            "GET" => Verb::Get,
            "ON" => Verb::On,
            "STATS" => Verb::Stats,
            "PURGE" => Verb::Purge,
            "PING" => Verb::Ping,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Verb::Put => "PUT",
            Verb::Get => "GET",
            Verb::On => "ON",
            Verb::Stats => "STATS",
            Verb::Purge => "PURGE",
            Verb::Ping => "PING",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Verb::Put => PUT_HELP,
            Verb::Get => GET_HELP,
            Verb::On => ON_HELP,
            Verb::Stats => STATS_HELP,
            Verb::Purge => PURGE_HELP,
            Verb::Ping => PING_HELP,
        }
    }

    /// The verb's own options (the global ones are accepted everywhere).
    fn options(self) -> &'static [&'static str] {
        match self {
            Verb::Get => &["--wait"],
            Verb::On => &["--raw", "--null", "--dir", "--no-reconnect"],
            Verb::Stats => &["--json"],
            Verb::Put | Verb::Purge | Verb::Ping => &[],
        }
    }

    /// Least and most positional arguments after the verb.
    fn arity(self) -> (usize, usize) {
        match self {
            Verb::Put | Verb::On | Verb::Purge => (1, 1),
            Verb::Get => (1, 2),
            Verb::Stats => (0, 1),
            Verb::Ping => (0, 0),
        }
    }
}

/// How `ON` writes each message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OnFormat {
    /// One escaped message per line (the default).
    Line,
    /// Bytes as they are.
    Raw,
    /// Bytes followed by NUL.
    Null,
    /// One file per message in this directory.
    Dir(PathBuf),
}

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    verb: Option<Verb>,
    positional: Vec<OsString>,
    host: Option<String>,
    port: Option<String>,
    help: bool,
    version: bool,
    /// Verb options seen, by canonical long name, to reject those of another verb.
    seen: Vec<&'static str>,
    wait: Option<Duration>,
    json: bool,
    format: Option<OnFormat>,
    no_reconnect: bool,
}

/// Why the command failed: the message for stderr and the exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    fn usage(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_USAGE, message)
    }

    /// A client error while talking to `addr`, with the exit code its kind calls for.
    fn client(addr: &str, e: &ClientError) -> Failure {
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
            _ if e.is_full() => Failure::new(
                EXIT_FULL,
                format!(
                    "the server at {addr} is full (BMAXMEMORY reached): the message was \
                     not stored; try again once consumers have taken some messages"
                ),
            ),
            _ if e.code() == Some(ErrorCode::ShuttingDown) => Failure::new(
                EXIT_CONNECT,
                format!("the server at {addr} is shutting down"),
            ),
            _ => Failure::new(EXIT_ERROR, format!("{addr}: {e}")),
        }
    }
}

/// An I/O error in words a person can act on.
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused — is beuss-server running?".to_owned()
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "no reply in time".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        _ => e.to_string(),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(failure) => return report(&failure),
    };
    let printed = |text: String| match write_stdout(text.as_bytes()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    };
    if args.version {
        return printed(format!("beuss {}\n", env!("CARGO_PKG_VERSION")));
    }
    let Some(verb) = args.verb else {
        if args.help {
            return printed(main_help());
        }
        eprint!("{}", main_help());
        return ExitCode::from(EXIT_USAGE);
    };
    if args.help {
        return printed(verb.help().to_string());
    }
    match run(verb, &args) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => report(&failure),
    }
}

fn main_help() -> String {
    format!(
        "beuss {}: command-line client for beuss-server\n\n{USAGE}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Prints a failure (if it has a message) and turns it into the exit code.
fn report(failure: &Failure) -> ExitCode {
    if !failure.message.is_empty() {
        eprintln!("beuss: {}", failure.message);
        if failure.code == EXIT_USAGE && !failure.message.contains("--help") {
            eprintln!("beuss: see beuss --help");
        }
    }
    ExitCode::from(failure.code)
}

/// Parses the command line. Options may come before or after the verb, as
/// `--opt value` or `--opt=value`; `--` ends the options.
fn parse_args(raw: impl Iterator<Item = OsString>) -> Result<Args, Failure> {
    let mut args = Args::default();
    let mut raw = raw.peekable();
    let mut options_done = false;
    while let Some(arg) = raw.next() {
        let text = arg.to_str();
        let is_option = !options_done && text.is_some_and(|t| t.starts_with('-') && t != "-");
        if !is_option {
            if args.verb.is_none() && args.positional.is_empty() {
                let word = text.unwrap_or_default();
                if word.eq_ignore_ascii_case("help") {
                    args.help = true;
                    continue;
                }
                args.verb = Some(Verb::parse(word).ok_or_else(|| {
                    Failure::usage(format!("unknown verb {:?}", arg.to_string_lossy()))
                })?);
            } else {
                args.positional.push(arg);
            }
            continue;
        }
        let text = text.unwrap_or_default();
        if text == "--" {
            options_done = true;
            continue;
        }
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (text, None),
        };
        let mut value = |long: &str| -> Result<String, Failure> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            match raw.next() {
                Some(v) => v
                    .into_string()
                    .map_err(|_| Failure::usage(format!("{long} needs a UTF-8 value"))),
                None => Err(Failure::usage(format!("{long} needs a value"))),
            }
        };
        let no_value = |long: &str| -> Result<(), Failure> {
            match inline {
                Some(_) => Err(Failure::usage(format!("{long} takes no value"))),
                None => Ok(()),
            }
        };
        match name {
            "-h" | "--help" => args.help = true,
            "-V" | "--version" => args.version = true,
            "--host" => args.host = Some(value("--host")?),
            "--port" => args.port = Some(value("--port")?),
            "-w" | "--wait" => {
                let text = value("--wait")?;
                args.wait = Some(parse_seconds(&text).ok_or_else(|| {
                    Failure::usage(format!("--wait wants seconds, like 5 or 0.5, not {text:?}"))
                })?);
                args.seen.push("--wait");
            }
            "--json" => {
                no_value("--json")?;
                args.json = true;
                args.seen.push("--json");
            }
            "--raw" => set_format(&mut args, "--raw", OnFormat::Raw, no_value("--raw"))?,
            "-0" | "--null" => set_format(&mut args, "--null", OnFormat::Null, no_value("--null"))?,
            "--dir" => {
                let dir = match inline.clone() {
                    Some(v) => OsString::from(v),
                    None => raw
                        .next()
                        .ok_or_else(|| Failure::usage("--dir needs a directory"))?,
                };
                set_format(
                    &mut args,
                    "--dir",
                    OnFormat::Dir(PathBuf::from(dir)),
                    Ok(()),
                )?;
            }
            "--no-reconnect" => {
                no_value("--no-reconnect")?;
                args.no_reconnect = true;
                args.seen.push("--no-reconnect");
            }
            _ => return Err(Failure::usage(format!("unknown option {name}"))),
        }
    }
    if args.help || args.version {
        return Ok(args);
    }
    if let Some(verb) = args.verb {
        if let Some(option) = args.seen.iter().find(|o| !verb.options().contains(o)) {
            return Err(Failure::usage(format!(
                "{option} does not apply to {}",
                verb.name()
            )));
        }
        let (least, most) = verb.arity();
        let given = args.positional.len();
        if given < least || given > most {
            return Err(Failure::usage(format!(
                "{} takes {}; try beuss {} --help",
                verb.name(),
                match (least, most) {
                    (0, 0) => "no argument".to_owned(),
                    (1, 1) => "a queue name".to_owned(),
                    (0, 1) => "at most a queue name".to_owned(),
                    _ => "a queue name and an optional output file".to_owned(),
                },
                verb.name()
            )));
        }
    } else if !args.seen.is_empty() {
        return Err(Failure::usage("options given without a verb"));
    }
    Ok(args)
}

/// Records `ON`'s output format, refusing a second one.
fn set_format(
    args: &mut Args,
    name: &'static str,
    format: OnFormat,
    value_ok: Result<(), Failure>,
) -> Result<(), Failure> {
    value_ok?;
    if args.format.is_some() {
        return Err(Failure::usage("choose one of --raw, --null and --dir"));
    }
    args.format = Some(format);
    args.seen.push(name);
    Ok(())
}

/// `"5"`, `"0.25"` → a duration; `None` for anything else (negative, NaN, huge).
fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// The server address: flags first, then `BHOST`/`BPORT`, then the defaults.
fn server_addr(args: &Args) -> Result<String, Failure> {
    let from_env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let host = args
        .host
        .clone()
        .or_else(|| from_env("BHOST"))
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    let (port, source) = match &args.port {
        Some(port) => (port.clone(), "--port"),
        None => match from_env("BPORT") {
            Some(port) => (port, "BPORT"),
            None => (DEFAULT_PORT.to_string(), "default"),
        },
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(Failure::usage(format!(
            "{source} must be a port number from 1 to 65535, not {port:?}"
        )));
    }
    Ok(join_host_port(host.trim(), &port))
}

/// Checks a queue name the way the server will (1..255 bytes of UTF-8).
fn queue_name(arg: &OsStr) -> Result<&str, Failure> {
    let name = arg
        .to_str()
        .ok_or_else(|| Failure::usage("a queue name must be UTF-8"))?;
    protocol::check_queue_name(name).map_err(|_| {
        Failure::usage(format!(
            "a queue name is 1 to 255 bytes long, {name:?} is {}",
            name.len()
        ))
    })?;
    Ok(name)
}

/// Connects, with a timeout on every read and write of `reply_within`.
fn connect(addr: &str, reply_within: Duration) -> Result<Client, Failure> {
    let mut client = Client::connect(addr).map_err(|e| Failure::client(addr, &e))?;
    client
        .set_timeout(Some(reply_within))
        .map_err(|e| Failure::client(addr, &e))?;
    Ok(client)
}

fn run(verb: Verb, args: &Args) -> Result<(), Failure> {
    let addr = server_addr(args)?;
    // The first positional argument is always the queue (PING takes none).
    let queue = args.positional.first().map(|a| queue_name(a)).transpose()?;
    match verb {
        Verb::Put => put(&addr, queue.unwrap_or_default()),
        Verb::Get => get(
            &addr,
            queue.unwrap_or_default(),
            args.positional.get(1).map(Path::new),
            args.wait.unwrap_or(Duration::ZERO),
        ),
        Verb::On => on(
            &addr,
            queue.unwrap_or_default(),
            args.format.clone().unwrap_or(OnFormat::Line),
            !args.no_reconnect,
        ),
        Verb::Stats => stats(&addr, queue, args.json),
        Verb::Purge => purge(&addr, queue.unwrap_or_default()),
        Verb::Ping => ping(&addr),
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
    let mut client = connect(addr, REPLY_TIMEOUT)?;
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

/// Where `GET` writes its message.
enum Output {
    Stdout,
    /// A file that is not regular (a FIFO, `/dev/null`...): written in place.
    Special(File),
    /// A regular file: written to `temp`, then renamed to `path`.
    Replace {
        file: File,
        temp: PathBuf,
        path: PathBuf,
    },
}

impl Output {
    /// Opens the destination before the message is taken, so that a bad path fails
    /// without consuming anything.
    fn open(path: Option<&Path>) -> Result<Output, Failure> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Output::Stdout);
        };
        let cannot = |e: io::Error| {
            Failure::new(EXIT_ERROR, format!("cannot write {}: {e}", path.display()))
        };
        if let Ok(meta) = fs::metadata(path)
            && !meta.is_file()
        {
            if meta.is_dir() {
                return Err(cannot(io::Error::other("it is a directory")));
            }
            return Ok(Output::Special(
                File::options().write(true).open(path).map_err(cannot)?,
            ));
        }
        let name = path.file_name().unwrap_or(path.as_os_str());
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".beuss-{}.tmp", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file = File::create(&temp).map_err(cannot)?;
        Ok(Output::Replace {
            file,
            temp,
            path: path.to_owned(),
        })
    }

    /// Writes the message; the file appears whole or not at all.
    fn finish(self, message: &[u8]) -> Result<(), Failure> {
        match self {
            Output::Stdout => write_stdout(message).map(|_| ()),
            Output::Special(mut file) => file
                .write_all(message)
                .map_err(|e| Failure::new(EXIT_ERROR, format!("cannot write the message: {e}"))),
            Output::Replace {
                mut file,
                temp,
                path,
            } => {
                let result = file
                    .write_all(message)
                    .and_then(|()| file.flush())
                    .and_then(|()| fs::rename(&temp, &path));
                result.map_err(|e| {
                    let _ = fs::remove_file(&temp);
                    Failure::new(
                        EXIT_ERROR,
                        format!(
                            "cannot write {}: {e} (the message was taken from the queue \
                             and is lost)",
                            path.display()
                        ),
                    )
                })
            }
        }
    }

    /// Cleans up when there is no message to write.
    fn abandon(self) {
        if let Output::Replace { temp, .. } = self {
            let _ = fs::remove_file(temp);
        }
    }
}

/// `GET`: one message to a file or stdout; exit code 4 when the queue is empty.
fn get(addr: &str, queue: &str, path: Option<&Path>, wait: Duration) -> Result<(), Failure> {
    let output = Output::open(path)?;
    let message = connect(addr, wait.saturating_add(REPLY_TIMEOUT)).and_then(|mut client| {
        client
            .get_wait(queue, wait)
            .map_err(|e| Failure::client(addr, &e))
    });
    match message {
        Ok(Some(message)) => output.finish(&message),
        Ok(None) => {
            output.abandon();
            Err(Failure::new(
                EXIT_EMPTY,
                format!("queue {queue:?} is empty"),
            ))
        }
        Err(failure) => {
            output.abandon();
            Err(failure)
        }
    }
}

/// `ON`: every message as it arrives, until stopped or the reader goes away.
fn on(addr: &str, queue: &str, format: OnFormat, reconnect: bool) -> Result<(), Failure> {
    let mut sink = Sink::new(format)?;
    let reply_within = ON_WAIT.saturating_add(REPLY_TIMEOUT);
    let mut client = connect(addr, reply_within)?;
    exit_when_reader_leaves();
    loop {
        match client.get_wait(queue, ON_WAIT) {
            Ok(Some(message)) => sink.write(&message)?,
            Ok(None) => {}
            Err(e) if reconnect && breaks_connection(&e) => {
                eprintln!("beuss: {}; reconnecting", Failure::client(addr, &e).message);
                client = reconnect_with_backoff(addr, reply_within);
                eprintln!("beuss: reconnected to {addr}");
            }
            Err(e) => return Err(Failure::client(addr, &e)),
        }
    }
}

/// True for the errors after which a new connection may work: the server stopped,
/// restarted or the network failed; not for a refused request.
fn breaks_connection(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Closed => true,
        ClientError::Server { .. } => e.code() == Some(ErrorCode::ShuttingDown),
        _ => false,
    }
}

/// Connects again, pausing [`BACKOFF_START`], doubling up to [`BACKOFF_MAX`], and
/// saying so on stderr at each failed attempt. Never gives up: `ON` is meant to
/// outlive server restarts (Ctrl-C or `--no-reconnect` stop it).
fn reconnect_with_backoff(addr: &str, reply_within: Duration) -> Client {
    let mut pause = BACKOFF_START;
    loop {
        std::thread::sleep(pause);
        match connect(addr, reply_within) {
            Ok(client) => return client,
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
fn exit_when_reader_leaves() {
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

/// Where `ON` puts each message, per [`OnFormat`].
struct Sink {
    format: OnFormat,
    /// Number of the next file (`--dir`).
    next: u64,
    /// Reused output buffer.
    buf: Vec<u8>,
}

impl Sink {
    fn new(format: OnFormat) -> Result<Sink, Failure> {
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
    fn write(&mut self, message: &[u8]) -> Result<(), Failure> {
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

/// Writes `bytes` to standard output and flushes: `Ok(false)` if the reader went
/// away (a pipe closed early, as with `| head`, is not an error), an error for any
/// other failure (a full disk must not pass for success).
fn write_stdout(bytes: &[u8]) -> Result<bool, Failure> {
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

/// Writes `message` to `dir/<number>` through a temporary file, taking the next
/// number free from `*next` on: the name is claimed with a hard link, which fails if
/// it exists, so two `ON --dir` runs on one folder never overwrite each other's
/// files. (On a file system without hard links, a rename does it, as before.)
fn write_numbered(dir: &Path, next: &mut u64, message: &[u8]) -> Result<PathBuf, Failure> {
    let temp = dir.join(format!(".beuss-{}.tmp", std::process::id()));
    let cannot = |path: &Path, e: io::Error| {
        Failure::new(
            EXIT_ERROR,
            format!(
                "cannot write {}: {e} (that message was taken from the queue and is lost)",
                path.display()
            ),
        )
    };
    fs::write(&temp, message).map_err(|e| cannot(&temp, e))?;
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

/// The default `ON` format: one line per message. Drops one final newline, then
/// escapes `\` as `\\`, newline as `\n`, CR as `\r`, other control bytes and bytes
/// that are not UTF-8 as `\xHH`; ends with a newline.
fn escape_line(message: &[u8], out: &mut Vec<u8>) {
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
                0..=0x1f | 0x7f => push_hex(b, out),
                _ => out.push(b),
            }
        }
        for &b in chunk.invalid() {
            push_hex(b, out);
        }
    }
}

fn push_hex(b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
    ]);
}

/// `STATS`: a table, or one line of JSON.
fn stats(addr: &str, queue: Option<&str>, json: bool) -> Result<(), Failure> {
    let mut client = connect(addr, REPLY_TIMEOUT)?;
    let mut report = match queue {
        None => client.stats(),
        Some(name) => stats_of_queue(&mut client, name),
    }
    .map_err(|e| Failure::client(addr, &e))?;
    report.queues.sort_by(|a, b| a.name.cmp(&b.name));
    let text = if json {
        stats_json(&report)
    } else {
        stats_table(addr, &report, queue)
    };
    write_stdout(text.as_bytes()).map(|_| ())
}

/// Server figures plus one queue's (the client's `queue_stats` keeps only the latter).
fn stats_of_queue(client: &mut Client, name: &str) -> client::Result<StatsReport> {
    client.send(&Request::Stats { queue: Some(name) })?;
    client.flush()?;
    match client.recv()? {
        Response::Stats(report) => Ok(report),
        _ => Err(ClientError::Unexpected("expected STATS".to_owned())),
    }
}

/// Queue figures in the order the table shows them; figures a newer server adds
/// come after, in the order it sends them.
const QUEUE_COLUMNS: &[&str] = &[
    "messages",
    "bytes",
    "memory",
    "puts",
    "gets",
    "truncations",
    "waiters",
    "idle_ms",
];

fn stats_table(addr: &str, report: &StatsReport, only: Option<&str>) -> String {
    let mut text = format!("server {addr}\n");
    let width = report
        .server
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0);
    for (name, value) in &report.server {
        let _ = writeln!(text, "  {name:<width$}  {value:>14}");
    }
    text.push('\n');
    if report.queues.is_empty() {
        match only {
            Some(name) => {
                let _ = writeln!(text, "no queue named {}", display_name(name));
            }
            None => text.push_str("no queues\n"),
        }
        return text;
    }
    let mut columns: Vec<&str> = QUEUE_COLUMNS.to_vec();
    for queue in &report.queues {
        for (name, _) in &queue.fields {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let mut rows: Vec<Vec<String>> = vec![
        std::iter::once("queue".to_owned())
            .chain(columns.iter().map(|c| (*c).to_owned()))
            .collect(),
    ];
    for queue in &report.queues {
        let mut row = vec![display_name(&queue.name)];
        row.extend(columns.iter().map(|c| {
            queue
                .get(c)
                .map_or_else(|| "-".to_owned(), |v| v.to_string())
        }));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A queue name made safe for one line of a terminal (same escapes as `ON`).
fn display_name(name: &str) -> String {
    let mut out = Vec::new();
    escape_into(name.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn stats_json(report: &StatsReport) -> String {
    let mut text = String::from("{\"server\":");
    json_fields(&report.server, &mut text);
    text.push_str(",\"queues\":{");
    for (i, queue) in report.queues.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        json_string(&queue.name, &mut text);
        text.push(':');
        json_fields(&queue.fields, &mut text);
    }
    text.push_str("}}\n");
    text
}

fn json_fields(fields: &[(String, u64)], out: &mut String) {
    out.push('{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(name, out);
        let _ = write!(out, ":{value}");
    }
    out.push('}');
}

/// A JSON string literal (RFC 8259): quote, backslash and control characters escaped.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `PURGE`: drops a queue's messages and says how many.
fn purge(addr: &str, queue: &str) -> Result<(), Failure> {
    let mut client = connect(addr, REPLY_TIMEOUT)?;
    let count = client.purge(queue).map_err(|e| Failure::client(addr, &e))?;
    let text = format!(
        "purged {count} message{} from {}\n",
        if count == 1 { "" } else { "s" },
        display_name(queue)
    );
    write_stdout(text.as_bytes()).map(|_| ())
}

/// `PING`: one `HELLO` and one `PING`, timed.
fn ping(addr: &str) -> Result<(), Failure> {
    let mut client = connect(addr, REPLY_TIMEOUT)?;
    let info = client.hello().map_err(|e| Failure::client(addr, &e))?;
    let start = Instant::now();
    client.ping().map_err(|e| Failure::client(addr, &e))?;
    let rtt = start.elapsed();
    let _ = client.quit();
    let text = format!(
        "PONG from {addr}: {}, protocol {}, max message size {} bytes, round trip {:.3} ms\n",
        info.server,
        info.version,
        info.max_message_size,
        rtt.as_secs_f64() * 1000.0
    );
    write_stdout(text.as_bytes()).map(|_| ())
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
        assert_eq!(line(b"nul\0\x1b\x7f"), "nul\\x00\\x1b\\x7f\n");
        assert_eq!(line(b"caf\xc3\xa9 \xff\xfe"), "café \\xff\\xfe\n");
        assert_eq!(line(b""), "\n");
    }

    /// JSON strings escape quotes, backslashes and control characters.
    #[test]
    fn json_escaping() {
        let mut out = String::new();
        json_string("a\"b\\c\nd\u{1}é", &mut out);
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    fn parse(args: &[&str]) -> Result<Args, Failure> {
        parse_args(args.iter().map(OsString::from))
    }

    /// Verbs are case-insensitive and options go anywhere, in both spellings.
    #[test]
    fn argument_parsing() {
        let args = parse(&["--host", "h", "on", "q", "--port=7", "--dir", "d"]).unwrap();
        assert_eq!(args.verb, Some(Verb::On));
        assert_eq!(args.host.as_deref(), Some("h"));
        assert_eq!(args.port.as_deref(), Some("7"));
        assert_eq!(args.format, Some(OnFormat::Dir(PathBuf::from("d"))));
        assert_eq!(args.positional, vec![OsString::from("q")]);
        let args = parse(&["GET", "q", "-", "-w", "0.5"]).unwrap();
        assert_eq!(args.wait, Some(Duration::from_millis(500)));
        assert_eq!(parse(&["PUT"]).unwrap_err().code, EXIT_USAGE);
        assert_eq!(parse(&["PUT", "q", "--json"]).unwrap_err().code, EXIT_USAGE);
        assert_eq!(parse(&["FETCH", "q"]).unwrap_err().code, EXIT_USAGE);
        assert_eq!(
            parse(&["ON", "q", "--raw", "-0"]).unwrap_err().code,
            EXIT_USAGE
        );
        assert!(parse(&["put", "--help"]).unwrap().help);
        assert_eq!(
            parse(&["ON", "--", "-q"]).unwrap().positional,
            vec![OsString::from("-q")]
        );
    }
}
