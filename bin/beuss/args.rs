//! The argument layer: the verb table, global options and each verb's options.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use beuss::protocol;
use beuss::{DEFAULT_HOST, DEFAULT_PORT, join_host_port};

use crate::on::OnFormat;
use crate::output::Failure;
use crate::{get, on, ping, purge, put, stats};

/// `beuss --help`.
pub const USAGE: &str = "\
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

/// A verb of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Put,
    Get,
    On,
    Stats,
    Purge,
    Ping,
}

impl Verb {
    /// Parses a verb in any letter case.
    pub fn parse(word: &str) -> Option<Verb> {
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

    pub fn name(self) -> &'static str {
        match self {
            Verb::Put => "PUT",
            Verb::Get => "GET",
            Verb::On => "ON",
            Verb::Stats => "STATS",
            Verb::Purge => "PURGE",
            Verb::Ping => "PING",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Verb::Put => put::PUT_HELP,
            Verb::Get => get::GET_HELP,
            Verb::On => on::ON_HELP,
            Verb::Stats => stats::STATS_HELP,
            Verb::Purge => purge::PURGE_HELP,
            Verb::Ping => ping::PING_HELP,
        }
    }

    /// The verb's own options (the global ones are accepted everywhere).
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Verb::Get => &["--wait"],
            Verb::On => &["--raw", "--null", "--dir", "--no-reconnect"],
            Verb::Stats => &["--json"],
            Verb::Put | Verb::Purge | Verb::Ping => &[],
        }
    }

    /// Least and most positional arguments after the verb.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Verb::Put | Verb::On | Verb::Purge => (1, 1),
            Verb::Get => (1, 2),
            Verb::Stats => (0, 1),
            Verb::Ping => (0, 0),
        }
    }
}

/// The parsed command line.
#[derive(Debug, Default)]
pub struct Args {
    pub verb: Option<Verb>,
    pub positional: Vec<OsString>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub help: bool,
    pub version: bool,
    /// Verb options seen, by canonical long name, to reject those of another verb.
    pub seen: Vec<&'static str>,
    pub wait: Option<Duration>,
    pub json: bool,
    pub format: Option<OnFormat>,
    pub no_reconnect: bool,
}

pub fn main_help() -> String {
    format!(
        "beuss {}: command-line client for beuss-server\n\n{USAGE}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Parses the command line. Options may come before or after the verb, as
/// `--opt value` or `--opt=value`; `--` ends the options.
pub fn parse_args(raw: impl Iterator<Item = OsString>) -> Result<Args, Failure> {
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
pub fn set_format(
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
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// The server address: flags first, then `BHOST`/`BPORT`, then the defaults.
pub fn server_addr(args: &Args) -> Result<String, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::EXIT_USAGE;

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
