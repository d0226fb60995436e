//! The argument layer: the verb table's row type, the options every verb shares, and
//! the loop that hands each verb its own options.
//!
//! Tokens come from `lexopt` (`--opt value`, `--opt=value`, `-o value`, `-ovalue`,
//! clustered short flags, `--` to end options, non-UTF-8 values kept as they are).
//! Global options (`--host`, `--port`, `--help`, `--version`) go anywhere on the line;
//! a verb's own options come after the verb. Adding a verb is a module with a
//! [`Verb`] constant and a [`Command`] type, plus one line in `main.rs`'s table.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::time::Duration;

use beuss::protocol::{self, LeaseRef, MAX_SETTLE_PAIRS};
use beuss::{DEFAULT_HOST, DEFAULT_PORT, join_host_port};
use lexopt::{Arg, Parser};

use crate::output::{EXIT_CODES_HELP, Failure};

/// One row of the verb table.
pub struct Verb {
    /// The verb in upper case, as the help shows it (typed in any case).
    pub name: &'static str,
    /// Its line in `beuss --help`.
    pub summary: &'static str,
    /// `beuss <VERB> --help`.
    pub help: &'static str,
    /// Least and most positional arguments after the verb.
    pub arity: (usize, usize),
    /// What those arguments are, for the error when their number is wrong.
    pub takes: &'static str,
    /// A fresh value to collect the verb's options and run it.
    pub new: fn() -> Box<dyn Command>,
}

/// A verb being parsed, then run.
pub trait Command {
    /// Takes `option` if it is one of this verb's, reading its value from `parser`;
    /// `Ok(false)` if it is not.
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        let _ = (option, parser);
        Ok(false)
    }

    /// Runs the verb against the server at `addr` with its positional arguments
    /// (their number already checked against [`Verb::arity`]).
    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure>;
}

/// An option as typed, owned so that a verb can read its value from the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opt {
    /// `-x`.
    Short(char),
    /// `--name`.
    Long(String),
}

impl Opt {
    /// The option as `lexopt` spells it, for matching: `Long("wait") | Short('w')`.
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Opt::Short(c) => Arg::Short(*c),
            Opt::Long(name) => Arg::Long(name),
        }
    }
}

impl fmt::Display for Opt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opt::Short(c) => write!(f, "-{c}"),
            Opt::Long(name) => write!(f, "--{name}"),
        }
    }
}

/// What the command line asks for.
pub enum Parsed {
    /// `--version`.
    Version,
    /// `--help`, for the whole command or one verb: the text to print.
    Help(String),
    /// No verb at all: the usage goes to stderr, exit code 2.
    NoVerb(String),
    /// Run a verb.
    Run {
        /// What collected the verb's options.
        command: Box<dyn Command>,
        /// Positional arguments after the verb.
        args: Vec<OsString>,
        /// The server address, `host:port` or `unix:PATH`.
        addr: String,
        /// The token file `--auth-file` named.
        auth_file: Option<std::path::PathBuf>,
    },
}

/// Parses the command line (without the program name) against the verb table.
///
/// # Errors
/// A usage [`Failure`] (exit code 2) naming what is wrong.
pub fn parse(
    raw: impl IntoIterator<Item = OsString>,
    verbs: &'static [Verb],
) -> Result<Parsed, Failure> {
    let mut parser = Parser::from_args(raw);
    let (mut host, mut port, mut unix) = (None, None, None);
    let mut auth_file = None;
    let (mut help, mut version) = (false, false);
    let mut chosen: Option<(&'static Verb, Box<dyn Command>)> = None;
    let mut args = Vec::new();
    while let Some(arg) = parser.next().map_err(lexopt_failure)? {
        let option = match arg {
            Arg::Value(word) => {
                if chosen.is_some() {
                    args.push(word);
                } else if word.eq_ignore_ascii_case("help") {
                    help = true;
                } else {
                    let verb = find_verb(verbs, &word)?;
                    chosen = Some((verb, (verb.new)()));
                }
                continue;
            }
            Arg::Short(c) => Opt::Short(c),
            Arg::Long(name) => Opt::Long(name.to_owned()),
        };
        match option.arg() {
            Arg::Short('h') | Arg::Long("help") => help = true,
            Arg::Short('V') | Arg::Long("version") => version = true,
            Arg::Long("host") => host = Some(string_value(&mut parser, &option)?),
            Arg::Long("port") => port = Some(string_value(&mut parser, &option)?),
            Arg::Long("unix") => unix = Some(string_value(&mut parser, &option)?),
            Arg::Long("auth-file") => {
                auth_file = Some(std::path::PathBuf::from(
                    parser.value().map_err(lexopt_failure)?,
                ));
            }
            _ => match &mut chosen {
                Some((verb, command)) => {
                    if !command.option(&option, &mut parser)? {
                        return Err(Failure::usage(format!(
                            "{} has no option {option}; see beuss {} --help",
                            verb.name, verb.name
                        )));
                    }
                }
                None => {
                    return Err(Failure::usage(format!(
                        "unknown option {option} (a verb's own options go after the verb)"
                    )));
                }
            },
        }
    }
    if version {
        return Ok(Parsed::Version);
    }
    let Some((verb, command)) = chosen else {
        let usage = main_help(verbs);
        return Ok(if help {
            Parsed::Help(usage)
        } else {
            Parsed::NoVerb(usage)
        });
    };
    if help {
        return Ok(Parsed::Help(verb.help.to_owned()));
    }
    let (least, most) = verb.arity;
    if args.len() < least || args.len() > most {
        return Err(Failure::usage(format!(
            "{} takes {}; see beuss {} --help",
            verb.name, verb.takes, verb.name
        )));
    }
    let addr = server_addr(host, port, unix)?;
    Ok(Parsed::Run {
        command,
        args,
        addr,
        auth_file,
    })
}

/// The verb `word` names, in any letter case.
fn find_verb(verbs: &'static [Verb], word: &OsStr) -> Result<&'static Verb, Failure> {
    verbs
        .iter()
        .find(|verb| word.eq_ignore_ascii_case(verb.name))
        .ok_or_else(|| Failure::usage(format!("unknown verb {:?}", word.to_string_lossy())))
}

/// `beuss --help`: one line per verb from the table, then the shared options and
/// the exit codes.
pub fn main_help(verbs: &[Verb]) -> String {
    let mut text = String::from("Usage:\n");
    for verb in verbs {
        text.push_str("  ");
        text.push_str(verb.summary);
        text.push('\n');
    }
    text.push_str(
        "  beuss <VERB> --help              details of one verb

Verbs are case-insensitive: put, get, on... work too.

Options (any verb, anywhere on the line; a verb's own options come after it):
  --host HOST      server host (default: $BHOST, else localhost)
  --port PORT      server port (default: $BPORT, else 6552)
  --unix PATH      the server's Unix socket instead (default: $BUNIX, if set)
  --auth-file FILE authenticate with FILE's first token (default: $BAUTHFILE)
  -h, --help       show help;   -V, --version   show the version
  --opt VALUE, --opt=VALUE, -o VALUE and -oVALUE all work; -- ends the options.

Environment: BUNIX, else BHOST and BPORT, select the server (as for
beuss-server); BAUTHFILE names the token file (the server's own will do).

",
    );
    text.push_str(EXIT_CODES_HELP);
    text
}

/// A `lexopt` error as a usage failure, in the words the rest of the CLI uses.
fn lexopt_failure(e: lexopt::Error) -> Failure {
    Failure::usage(match e {
        lexopt::Error::UnexpectedValue { option, .. } => format!("{option} takes no value"),
        lexopt::Error::MissingValue {
            option: Some(option),
        } => format!("{option} needs a value"),
        e => e.to_string(),
    })
}

/// The value of `option`, which must be UTF-8.
///
/// # Errors
/// A usage failure if it is missing or not UTF-8.
pub fn string_value(parser: &mut Parser, option: &Opt) -> Result<String, Failure> {
    parser
        .value()
        .map_err(lexopt_failure)?
        .into_string()
        .map_err(|_| Failure::usage(format!("{option} needs a UTF-8 value")))
}

/// The value of `option` as seconds (`5`, `0.25`).
///
/// # Errors
/// A usage failure for anything else (negative, NaN, huge).
pub fn seconds_value(parser: &mut Parser, option: &Opt) -> Result<Duration, Failure> {
    let text = string_value(parser, option)?;
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            Failure::usage(format!(
                "{option} wants seconds, like 5 or 0.5, not {text:?}"
            ))
        })
}

/// The value of `option` as a duration: a whole number with `ms`, `s`, `m` or `h`
/// (`500ms`, `30s`, `10m`, `2h`; a bare number is seconds), at most `most`.
///
/// # Errors
/// A usage failure naming the option, what it wants and the limit.
pub fn duration_value(
    parser: &mut Parser,
    option: &Opt,
    most: Duration,
) -> Result<Duration, Failure> {
    let text = string_value(parser, option)?;
    let duration = beuss::config::parse_duration("", &text).map_err(|_| {
        Failure::usage(format!(
            "{option} wants a duration like 500ms, 30s, 10m or 2h, not {text:?}"
        ))
    })?;
    if duration > most {
        return Err(Failure::usage(format!(
            "{option} {text} is longer than the most the server allows, {}",
            show_duration(most)
        )));
    }
    Ok(duration)
}

/// A duration in the unit that shows it best (`12h`, `30 days`, `1500ms`).
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_owned(),
        ms if ms % 86_400_000 == 0 => format!("{} days", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// The value of `option` as a whole number from `least` to `most`.
///
/// # Errors
/// A usage failure naming the range.
pub fn number_value(
    parser: &mut Parser,
    option: &Opt,
    least: u64,
    most: u64,
) -> Result<u64, Failure> {
    let text = string_value(parser, option)?;
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (least..=most).contains(n))
        .ok_or_else(|| {
            Failure::usage(format!(
                "{option} wants a whole number from {least} to {most}, not {text:?}"
            ))
        })
}

/// Reads the leases named on the command line: `ID:ATTEMPT` each, as `GET --lease`
/// prints them.
///
/// # Errors
/// A usage failure for anything else (a bare id included: the attempt is what keeps
/// an old command from settling a newer delivery of the same message).
pub fn lease_refs(args: &[OsString]) -> Result<Vec<LeaseRef>, Failure> {
    if args.len() > MAX_SETTLE_PAIRS {
        return Err(Failure::usage(format!(
            "at most {MAX_SETTLE_PAIRS} leases at a time, not {}",
            args.len()
        )));
    }
    args.iter()
        .map(|arg| {
            let text = arg.to_string_lossy();
            text.split_once(':')
                .and_then(|(id, attempt)| {
                    Some(LeaseRef {
                        id: id.parse().ok().filter(|&id| id != 0)?,
                        attempt: attempt.parse().ok()?,
                    })
                })
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "a lease is ID:ATTEMPT as GET --lease prints it (like 12:1), not {text:?}"
                    ))
                })
        })
        .collect()
}

/// The server address: flags first (`--unix`, else `--host`/`--port`), then `BUNIX`,
/// then `BHOST`/`BPORT`, then the defaults.
fn server_addr(
    host: Option<String>,
    port: Option<String>,
    unix: Option<String>,
) -> Result<String, Failure> {
    let from_env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let explicit_tcp = host.is_some() || port.is_some();
    if let Some(path) = unix.or_else(|| from_env("BUNIX").filter(|_| !explicit_tcp)) {
        return Ok(format!("{}{path}", beuss::client::UNIX_PREFIX));
    }
    let host = host
        .or_else(|| from_env("BHOST"))
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    let (port, source) = match port {
        Some(port) => (port, "--port"),
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
///
/// # Errors
/// A usage failure saying what is wrong.
pub fn queue_name(arg: &OsStr) -> Result<&str, Failure> {
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

/// Checks a publish subject (`PUB`, `REQ`: no wildcards) the way the server will.
///
/// # Errors
/// A usage failure saying what is wrong and where.
pub fn subject(arg: &OsStr) -> Result<&str, Failure> {
    subject_or_pattern(arg, false)
}

/// Checks a pattern (`BIND`, `UNBIND`, `SUB`, `SERVE`: `*` and `>` allowed) the way
/// the server will.
///
/// # Errors
/// A usage failure saying what is wrong and where.
pub fn pattern(arg: &OsStr) -> Result<&str, Failure> {
    subject_or_pattern(arg, true)
}

fn subject_or_pattern(arg: &OsStr, wildcards: bool) -> Result<&str, Failure> {
    let word = if wildcards { "pattern" } else { "subject" };
    let text = arg
        .to_str()
        .ok_or_else(|| Failure::usage(format!("a {word} must be UTF-8")))?;
    let checked = if wildcards {
        beuss::route::check_pattern(text)
    } else {
        beuss::route::check_subject(text)
    };
    checked.map_err(|why| {
        let hint = if wildcards {
            ""
        } else {
            " (wildcards * and > are for BIND, SUB and SERVE patterns)"
        };
        Failure::usage(format!("bad {word} {text:?}: {why}{hint}"))
    })?;
    if text.len() > protocol::MAX_QUEUE_NAME {
        return Err(Failure::usage(format!(
            "a {word} is at most 255 bytes long, {text:?} is {}",
            text.len()
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::EXIT_USAGE;

    /// A verb that records what it was given, to test the shared loop alone.
    #[derive(Default)]
    struct Probe {
        wait: Option<Duration>,
        flag: bool,
    }

    impl Command for Probe {
        fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
            match option.arg() {
                Arg::Short('w') | Arg::Long("wait") => {
                    self.wait = Some(seconds_value(parser, option)?);
                }
                Arg::Short('0') | Arg::Long("flag") => self.flag = true,
                _ => return Ok(false),
            }
            Ok(true)
        }

        fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
            // Reports what it saw through the failure message, which the test reads.
            Err(Failure::new(
                0,
                format!("{addr} {args:?} {:?} {}", self.wait, self.flag),
            ))
        }
    }

    const VERBS: &[Verb] = &[Verb {
        name: "PROBE",
        summary: "beuss PROBE <queue> [file]",
        help: "Usage: beuss PROBE",
        arity: (1, 2),
        takes: "a queue name and an optional file",
        new: || Box::<Probe>::default(),
    }];

    /// What the probe verb saw, or the usage error's exit code.
    fn parse_run(args: &[&str]) -> Result<String, u8> {
        match parse(args.iter().map(OsString::from), VERBS) {
            Ok(Parsed::Run {
                command,
                args,
                addr,
                ..
            }) => Ok(command.run(&addr, &args).unwrap_err().message),
            Ok(_) => Ok("not run".to_owned()),
            Err(failure) => Err(failure.code),
        }
    }

    /// Verbs are case-insensitive, global options go anywhere, values attach in every
    /// usual spelling, short flags cluster, and `--` ends the options.
    #[test]
    fn argument_parsing() {
        assert_eq!(
            parse_run(&["--host", "h", "probe", "q", "--port=7", "-w5", "-0"]),
            Ok("h:7 [\"q\"] Some(5s) true".to_owned())
        );
        for spelling in [&["-w", "0.5"][..], &["-w0.5"], &["-w=0.5"], &["--wait=0.5"]] {
            let mut args = vec!["--host", "h", "--port", "7", "PROBE", "q"];
            args.extend_from_slice(spelling);
            assert_eq!(
                parse_run(&args),
                Ok("h:7 [\"q\"] Some(500ms) false".to_owned()),
                "{spelling:?}"
            );
        }
        assert_eq!(
            parse_run(&["--host", "h", "--port", "7", "PROBE", "-0w1", "q", "-"]),
            Ok("h:7 [\"q\", \"-\"] Some(1s) true".to_owned())
        );
        assert_eq!(
            parse_run(&["--host", "h", "--port", "7", "PROBE", "--", "-q"]),
            Ok("h:7 [\"-q\"] None false".to_owned())
        );
        assert_eq!(parse_run(&["PROBE"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["PROBE", "a", "b", "c"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["PROBE", "q", "--json"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["PROBE", "q", "--flag=yes"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["PROBE", "q", "-w"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["PROBE", "q", "-wsoon"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["-w5", "PROBE", "q"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["FETCH", "q"]), Err(EXIT_USAGE));
        assert_eq!(parse_run(&["--port", "0", "PROBE", "q"]), Err(EXIT_USAGE));
        assert!(matches!(
            parse(["probe", "--help"].map(OsString::from), VERBS),
            Ok(Parsed::Help(text)) if text == "Usage: beuss PROBE"
        ));
        assert!(matches!(
            parse(["help", "probe"].map(OsString::from), VERBS),
            Ok(Parsed::Help(text)) if text == "Usage: beuss PROBE"
        ));
        assert!(matches!(
            parse(Vec::<OsString>::new(), VERBS),
            Ok(Parsed::NoVerb(_))
        ));
    }
}
