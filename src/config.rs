//! Server settings, read from `B*` environment variables.
//!
//! [`Config::from_vars`] takes any list of (name, value) pairs so that tests never touch
//! the process environment; [`Config::from_env`] is the one-line wrapper the binary uses.
//! An empty value counts as unset, as it does for the `beuss` command and the Go
//! original, and as shells and systemd's `Environment=` users expect.
//!
//! [`log_filter`] checks `RUST_LOG`, which the logger reads, so that a typo warns
//! instead of silencing the server.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::{DEFAULT_HOST, DEFAULT_PORT};

/// Default `BMAXMESSAGESIZE`: 1 MiB, as NATS uses, so that a web-sized photo or a
/// large JSON document fits. The Go original's code default was 102,400 bytes (its
/// README said 10 KB); this is ten times that.
///
/// Connection buffers are not counted in `BMAXMEMORY`, and a connection part-way
/// through a `PUT` buffers up to this much (plus a 64 KiB read chunk): 10,000 such
/// connections at once would hold about 11 GiB. Idle connections hold no buffers.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Default `BMAXUNIQUEKEYS`: unique keys remembered at most after their message left.
pub const DEFAULT_MAX_UNIQUE_KEYS: usize = 100_000;

/// Default `BQUEUEIDLE`: an empty, unused queue is dropped after five minutes.
pub const DEFAULT_QUEUE_IDLE: Duration = Duration::from_secs(300);
/// Default `BMAXMEMORY`: small enough for a 512 MiB Raspberry Pi Zero.
pub const DEFAULT_MAX_MEMORY: usize = 256 << 20;
/// Default `BMAXCONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Largest allowed `BMAXMESSAGESIZE`: a message and its reply header must fit in a
/// frame whose length is a `u32`, and one message should not be able to take a
/// small machine's whole memory.
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 1 << 30;

/// Everything `beuss-server` can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Host name or address to bind (`BHOST`).
    pub host: String,
    /// TCP port (`BPORT`); 0 asks the OS for a free one.
    pub port: u16,
    /// Payload bytes kept per message; longer payloads are truncated (`BMAXMESSAGESIZE`).
    pub max_message_size: usize,
    /// How long an empty queue with no waiter lives unused (`BQUEUEIDLE`); `None` keeps
    /// queues forever.
    pub queue_idle: Option<Duration>,
    /// Cap on memory held for messages and queues (`BMAXMEMORY`).
    pub max_memory: usize,
    /// Cap on open client connections (`BMAXCONNECTIONS`).
    pub max_connections: usize,
    /// Directory of the journal (`BDATADIR`); `None` keeps messages in memory only.
    pub data_dir: Option<PathBuf>,
    /// When the journal is synced to the disk (`BFSYNC`).
    pub fsync: Fsync,
    /// Size of a journal segment file (`BSEGMENT`).
    pub segment_size: u64,
    /// Start even if a journal file is damaged, setting that file aside (`BRECOVER=skip`).
    pub recover_skip: bool,
    /// Unread output past which a subscriber's events are dropped (`BSUBBUFFER`).
    pub sub_buffer: usize,
    /// Listen on TCP at all (`BPORT=off` turns it off, leaving the Unix socket).
    pub tcp: bool,
    /// Path of the Unix socket to listen on as well (`BUNIX`).
    pub unix_path: Option<PathBuf>,
    /// Permission bits of the Unix socket file (`BUNIXMODE`).
    pub unix_mode: u32,
    /// File of the tokens clients must present (`BAUTHFILE`); `None`: no
    /// authentication.
    pub auth_file: Option<PathBuf>,
    /// Time a partial frame (or a connection yet to authenticate) may take
    /// (`BFRAMETIMEOUT`); `None`: no limit.
    pub frame_timeout: Option<Duration>,
    /// Time a connection may send nothing while it waits for nothing (`BIDLETIMEOUT`);
    /// `None`: no limit.
    pub idle_timeout: Option<Duration>,
    /// Most connections open at once from one client IP address (`BMAXPERADDRESS`);
    /// 0: no cap.
    pub max_per_address: usize,
    /// Most messages one queue may hold (`BQUEUEMAXMESSAGES`); 0: no cap.
    pub queue_max_messages: usize,
    /// Most payload bytes one queue may hold (`BQUEUEMAXBYTES`); 0: no cap.
    pub queue_max_bytes: usize,
    /// Most unique keys remembered after their message left (`BMAXUNIQUEKEYS`);
    /// 0: none are.
    pub max_unique_keys: usize,
    /// Time to live of messages put without one, by queue name, `*` for every
    /// other queue (`BQUEUETTL`); empty: none.
    pub queue_ttls: Vec<(String, Duration)>,
}

/// How often the journal is synced to the disk (`BFSYNC`), which says how much a
/// power cut may lose; a crash of the process alone loses nothing acknowledged in
/// any mode, as every record is written to the OS before its reply leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fsync {
    /// Replies to changes leave only after their records are synced (`always`).
    Always,
    /// A sync at most this long after a write (`BFSYNC=<ms>`).
    Every(Duration),
    /// Never sync; the OS writes back when it likes (`never`).
    Never,
}

/// Default `BFSYNC` interval: at most a second of changes lost in a power cut.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(1000);
/// Default `BSEGMENT`.
pub const DEFAULT_SEGMENT_SIZE: u64 = 8 << 20;
/// Default `BSUBBUFFER`: a subscriber may fall this far behind before its events
/// are dropped (protocol.md 15.6).
pub const DEFAULT_SUB_BUFFER: usize = 1 << 20;
/// Default `BUNIXMODE`: the server's user and group may connect, nobody else.
pub const DEFAULT_UNIX_MODE: u32 = 0o660;
/// Default `BFRAMETIMEOUT`: generous for a slow link, short enough that a client
/// sending half a frame cannot hold its slot for long (protocol.md 16.5).
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for Config {
    fn default() -> Self {
        Config {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            queue_idle: Some(DEFAULT_QUEUE_IDLE),
            max_memory: DEFAULT_MAX_MEMORY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            data_dir: None,
            fsync: Fsync::Every(DEFAULT_FSYNC_INTERVAL),
            segment_size: DEFAULT_SEGMENT_SIZE,
            recover_skip: false,
            sub_buffer: DEFAULT_SUB_BUFFER,
            tcp: true,
            unix_path: None,
            unix_mode: DEFAULT_UNIX_MODE,
            auth_file: None,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            idle_timeout: None,
            max_per_address: 0,
            queue_max_messages: 0,
            queue_max_bytes: 0,
            max_unique_keys: DEFAULT_MAX_UNIQUE_KEYS,
            queue_ttls: Vec::new(),
        }
    }
}

/// A variable with a value the server cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The value it had.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.var, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The variables, their defaults and meanings, as `--help` and the README list them.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "BHOST",
        "localhost",
        "address to bind; 0.0.0.0 or :: to accept other machines",
    ),
    ("BPORT", "6552", "TCP port"),
    (
        "BMAXMESSAGESIZE",
        "1M",
        "bytes kept per message; longer payloads are truncated (K/M/G suffixes)",
    ),
    (
        "BQUEUEIDLE",
        "300",
        "seconds an empty queue with no waiter lives unused; 0 = forever (ms/s/m/h suffixes)",
    ),
    (
        "BMAXMEMORY",
        "256M",
        "cap on memory held for messages; a PUT past it gets FULL (K/M/G suffixes)",
    ),
    ("BMAXCONNECTIONS", "10000", "cap on open client connections"),
    (
        "BQUEUEMAXMESSAGES",
        "0",
        "cap on the messages one queue holds; a PUT past it gets FULL; 0 = no cap",
    ),
    (
        "BQUEUEMAXBYTES",
        "0",
        "cap on the payload bytes one queue holds (K/M/G suffixes); 0 = no cap",
    ),
    (
        "BMAXUNIQUEKEYS",
        "100000",
        "cap on unique keys remembered after their message left (--unique-for); \
         past it the window ending first is forgotten",
    ),
    (
        "BQUEUETTL",
        "(unset)",
        "time to live of messages put without one: 1h for every queue, or \
         jobs=10m,cache=30s,*=1d by queue (* = any other); expired ones are dropped",
    ),
    (
        "BDATADIR",
        "(unset)",
        "keep messages on disk in this directory (a journal); unset = memory only",
    ),
    (
        "BFSYNC",
        "1000",
        "with BDATADIR: always, never, or ms between syncs (what a power cut may lose)",
    ),
    (
        "BSEGMENT",
        "8M",
        "with BDATADIR: size of one journal file (K/M/G suffixes)",
    ),
    (
        "BRECOVER",
        "refuse",
        "with BDATADIR: skip = start even if a journal file is damaged, setting it aside",
    ),
    (
        "BSUBBUFFER",
        "1M",
        "unread output past which a subscriber's events are dropped and counted (K/M/G)",
    ),
    (
        "BUNIX",
        "(unset)",
        "also listen on a Unix socket at this path (clients: unix:PATH)",
    ),
    (
        "BUNIXMODE",
        "0660",
        "permission bits (octal) of the BUNIX socket file",
    ),
    (
        "BAUTHFILE",
        "(unset)",
        "file of tokens clients must present with AUTH (one per line, optionally ro); \
         re-read on SIGHUP; unset = no authentication",
    ),
    (
        "BFRAMETIMEOUT",
        "60",
        "seconds a partial request, or a connection yet to AUTH, may take; 0 = no limit",
    ),
    (
        "BIDLETIMEOUT",
        "0",
        "seconds a connection that waits for nothing may stay silent; 0 = no limit",
    ),
    (
        "BMAXPERADDRESS",
        "0",
        "cap on connections open at once from one client IP address; 0 = no cap",
    ),
    (
        "RUST_LOG",
        "info",
        "log level: error, warn, info, debug or trace",
    ),
];

impl Config {
    /// Reads settings from (name, value) pairs, ignoring names it does not know.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value is unusable.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = Config::default();
        // The values given for the two limits that must agree, to blame the right one.
        let mut size_given = None;
        let mut memory_given = None;
        for (key, value) in vars {
            let value = value.as_ref();
            if value.trim().is_empty() {
                continue;
            }
            match key.as_ref() {
                "BHOST" => config.host = value.trim().to_owned(),
                "BPORT" if value.trim() == "off" => config.tcp = false,
                "BPORT" => {
                    config.port = value
                        .trim()
                        .parse()
                        .map_err(|_| error("BPORT", value, "not a port number (0-65535)"))?;
                }
                "BMAXMESSAGESIZE" => {
                    let size = parse_size("BMAXMESSAGESIZE", value)?;
                    if size == 0 || size > MAX_MESSAGE_SIZE_LIMIT {
                        return Err(error(
                            "BMAXMESSAGESIZE",
                            value,
                            "must be between 1 byte and 1G",
                        ));
                    }
                    config.max_message_size = size;
                    size_given = Some(value.to_owned());
                }
                "BQUEUEIDLE" => {
                    let idle = parse_duration("BQUEUEIDLE", value)?;
                    config.queue_idle = (!idle.is_zero()).then_some(idle);
                }
                "BMAXMEMORY" => {
                    let size = parse_size("BMAXMEMORY", value)?;
                    if size == 0 {
                        return Err(error("BMAXMEMORY", value, "must be more than 0"));
                    }
                    config.max_memory = size;
                    memory_given = Some(value.to_owned());
                }
                "BMAXCONNECTIONS" => {
                    config.max_connections = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            error("BMAXCONNECTIONS", value, "not a whole number above 0")
                        })?;
                }
                "BQUEUEMAXMESSAGES" => {
                    config.queue_max_messages = value.trim().parse().map_err(|_| {
                        error(
                            "BQUEUEMAXMESSAGES",
                            value,
                            "not a whole number (0 = no cap)",
                        )
                    })?;
                }
                "BQUEUEMAXBYTES" => config.queue_max_bytes = parse_size("BQUEUEMAXBYTES", value)?,
                "BQUEUETTL" => config.queue_ttls = parse_queue_ttls(value)?,
                "BMAXUNIQUEKEYS" => {
                    config.max_unique_keys = value.trim().parse().map_err(|_| {
                        error(
                            "BMAXUNIQUEKEYS",
                            value,
                            "not a whole number (0 = remember none)",
                        )
                    })?;
                }
                "BDATADIR" => config.data_dir = Some(PathBuf::from(value)),
                "BFSYNC" => config.fsync = parse_fsync(value)?,
                "BSEGMENT" => {
                    let size = parse_size("BSEGMENT", value)?;
                    if !(64 << 10..=1 << 30).contains(&size) {
                        return Err(error("BSEGMENT", value, "must be between 64K and 1G"));
                    }
                    config.segment_size = size as u64;
                }
                "BSUBBUFFER" => {
                    let size = parse_size("BSUBBUFFER", value)?;
                    if size == 0 || size > 1 << 30 {
                        return Err(error("BSUBBUFFER", value, "must be between 1 byte and 1G"));
                    }
                    config.sub_buffer = size;
                }
                "BRECOVER" => {
                    config.recover_skip = match value.trim() {
                        "skip" => true,
                        "refuse" => false,
                        _ => return Err(error("BRECOVER", value, "must be skip or refuse")),
                    };
                }
                "BUNIX" => config.unix_path = Some(PathBuf::from(value)),
                "BUNIXMODE" => {
                    config.unix_mode = u32::from_str_radix(value.trim(), 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| {
                            error("BUNIXMODE", value, "not an octal mode such as 0660")
                        })?;
                }
                "BAUTHFILE" => config.auth_file = Some(PathBuf::from(value)),
                "BFRAMETIMEOUT" => {
                    let t = parse_duration("BFRAMETIMEOUT", value)?;
                    config.frame_timeout = (!t.is_zero()).then_some(t);
                }
                "BIDLETIMEOUT" => {
                    let t = parse_duration("BIDLETIMEOUT", value)?;
                    config.idle_timeout = (!t.is_zero()).then_some(t);
                }
                "BMAXPERADDRESS" => {
                    config.max_per_address = value.trim().parse().map_err(|_| {
                        error("BMAXPERADDRESS", value, "not a whole number (0 = no cap)")
                    })?;
                }
                _ => {}
            }
        }
        if !config.tcp && config.unix_path.is_none() {
            return Err(error(
                "BPORT",
                "off",
                "turns TCP off, so BUNIX must name a Unix socket to listen on",
            ));
        }
        if config.max_message_size > config.max_memory {
            return Err(size_above_memory(&config, size_given, memory_given));
        }
        Ok(config)
    }

    /// Reads settings from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first unusable variable, including one that is
    /// not valid UTF-8. Variables beuss does not read are never looked at.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the variables of [`VARIABLES`] that `lookup` finds; the seam that lets
    /// tests give values that are not UTF-8 without touching the process environment.
    fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Config, ConfigError> {
        let mut vars = Vec::new();
        for (name, _, _) in VARIABLES
            .iter()
            .filter(|(name, _, _)| name.starts_with('B'))
        {
            if let Some(value) = lookup(name) {
                vars.push((*name, os_to_string(name, value)?));
            }
        }
        Config::from_vars(vars)
    }

    /// `host:port`, as given to the resolver.
    pub fn address(&self) -> String {
        crate::join_host_port(&self.host, &self.port.to_string())
    }
}

fn os_to_string(var: &'static str, value: OsString) -> Result<String, ConfigError> {
    value.into_string().map_err(|v| ConfigError {
        var,
        value: v.to_string_lossy().into_owned(),
        reason: "not valid UTF-8".to_owned(),
    })
}

/// The error for a message size limit above the memory cap, blaming the variable the
/// user set: a `BMAXMEMORY` below the default message size must not be reported as a
/// problem with a `BMAXMESSAGESIZE` nobody wrote.
fn size_above_memory(
    config: &Config,
    size_given: Option<String>,
    memory_given: Option<String>,
) -> ConfigError {
    match (size_given, memory_given) {
        (None, Some(memory)) => ConfigError {
            var: "BMAXMEMORY",
            value: memory,
            reason: format!(
                "smaller than the default BMAXMESSAGESIZE ({} bytes), so no message that \
                 size could be stored: raise BMAXMEMORY to at least that, or set \
                 BMAXMESSAGESIZE to at most {} bytes",
                config.max_message_size, config.max_memory
            ),
        },
        (size, memory) => ConfigError {
            var: "BMAXMESSAGESIZE",
            value: size.unwrap_or_else(|| config.max_message_size.to_string()),
            reason: format!(
                "larger than BMAXMEMORY ({} bytes{}), so no message that size could be \
                 stored: lower BMAXMESSAGESIZE or raise BMAXMEMORY",
                config.max_memory,
                if memory.is_none() {
                    ", the default"
                } else {
                    ""
                }
            ),
        },
    }
}

/// Log levels `RUST_LOG` may name, as the logger spells them (any case).
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The logger filter to use for a `RUST_LOG` value (`None`: unset), and a warning to
/// log when the value was not understood.
///
/// The logger itself reads a word it does not know, such as `bogus` or `warning`, as
/// the name of a module to log at every level; no module of beuss has that name, so
/// the server would log nothing at all. Such a value, a `target=level` with an
/// unknown level, or one that is not UTF-8 gives `info` and a warning instead. An
/// empty value is unset (`info`). A bare module name is accepted only for beuss's own
/// modules; other crates take `target=level`.
pub fn log_filter(rust_log: Option<&OsStr>) -> (String, Option<String>) {
    const DEFAULT: &str = "info";
    let Some(value) = rust_log else {
        return (DEFAULT.to_owned(), None);
    };
    let Some(text) = value.to_str() else {
        return (
            DEFAULT.to_owned(),
            Some(format!(
                "RUST_LOG={:?} is not valid UTF-8; logging at {DEFAULT}",
                value.to_string_lossy()
            )),
        );
    };
    let is_level = |word: &str| LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word));
    let is_ours = |target: &str| {
        ["beuss", "beuss_server"]
            .iter()
            .any(|c| target == *c || target.starts_with(&format!("{c}::")))
    };
    // What follows a '/' is a message filter, not part of the directives.
    let directives = text.split('/').next().unwrap_or("");
    let mut understood = false;
    for directive in directives.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        let ok = match directive.split_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level.trim()),
            None => is_level(directive) || is_ours(directive),
        };
        if !ok {
            return (
                DEFAULT.to_owned(),
                Some(format!(
                    "RUST_LOG={text:?}: {directive:?} is neither LEVEL nor TARGET=LEVEL \
                     (levels: {}); logging at {DEFAULT}",
                    LOG_LEVELS.join(", ")
                )),
            );
        }
        understood = true;
    }
    if understood {
        (text.to_owned(), None)
    } else {
        (DEFAULT.to_owned(), None)
    }
}

fn error(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError {
        var,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Parses a byte count: digits with an optional K, M or G suffix (powers of 1024,
/// "KB"/"KiB" spellings accepted).
pub fn parse_size(var: &'static str, value: &str) -> Result<usize, ConfigError> {
    let bytes = parse_scaled(value, |suffix| {
        Some(match suffix.to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => 1 << 10,
            "M" | "MB" | "MIB" => 1 << 20,
            "G" | "GB" | "GIB" => 1 << 30,
            _ => return None,
        })
    });
    scaled_result(
        var,
        value,
        bytes,
        "a size (a number with an optional K, M or G suffix)",
    )
    .and_then(|n| usize::try_from(n).map_err(|_| error(var, value, "too large")))
}

/// Reads `BFSYNC`: `always`, `never`, or an interval (a bare number is in ms).
fn parse_fsync(value: &str) -> Result<Fsync, ConfigError> {
    let v = value.trim();
    match v {
        "always" => return Ok(Fsync::Always),
        "never" => return Ok(Fsync::Never),
        _ => {}
    }
    let every = if v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse::<u64>().ok().map(Duration::from_millis)
    } else {
        parse_duration("BFSYNC", value).ok()
    };
    match every {
        Some(d) if d.is_zero() => Ok(Fsync::Always),
        Some(d) if d <= Duration::from_secs(3600) => Ok(Fsync::Every(d)),
        _ => Err(error(
            "BFSYNC",
            value,
            "must be always, never, or an interval of at most an hour (ms, or with a unit)",
        )),
    }
}

/// Parses a duration: whole seconds, or a number with an ms, s, m, h or d suffix.
pub fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let millis = parse_scaled(value, |suffix| {
        Some(match suffix {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        })
    });
    scaled_result(
        var,
        value,
        millis,
        "a duration (seconds, or a number with ms, s, m, h or d)",
    )
    .map(Duration::from_millis)
}

/// `BQUEUETTL`: one duration for every queue, or `name=duration` pairs separated by
/// commas, `*` naming every queue not listed. A duration of 0 is no time to live.
///
/// # Errors
/// A [`ConfigError`] for a bad duration, one over 30 days, an empty or over-long
/// queue name, or a name given twice.
pub fn parse_queue_ttls(value: &str) -> Result<Vec<(String, Duration)>, ConfigError> {
    const VAR: &str = "BQUEUETTL";
    let most = Duration::from_millis(crate::protocol::MAX_TTL_MS.into());
    let mut ttls: Vec<(String, Duration)> = Vec::new();
    for part in value.split(',').map(str::trim) {
        let (name, ttl) = match part.split_once('=') {
            Some((name, ttl)) => (name.trim(), ttl.trim()),
            None if !value.contains(',') => ("*", part),
            None => return Err(error(VAR, value, "each item is queue=duration")),
        };
        if name.is_empty() || name.len() > crate::protocol::MAX_QUEUE_NAME {
            return Err(error(VAR, value, "a queue name is 1 to 255 bytes"));
        }
        let ttl = parse_duration(VAR, ttl)?;
        if ttl > most {
            return Err(error(VAR, value, "a time to live is at most 30 days"));
        }
        if ttls.iter().any(|(n, _)| n == name) {
            return Err(error(VAR, value, "a queue is named twice"));
        }
        ttls.push((name.to_owned(), ttl));
    }
    Ok(ttls)
}

/// Why a number with a unit suffix could not be read.
enum ScaledError {
    /// Not digits followed by a known suffix.
    Syntax,
    /// The product does not fit in a `u64`.
    Overflow,
}

/// Splits `value` into digits and a suffix, and multiplies the number by the factor
/// `unit` gives for the suffix (`None`: unknown suffix).
fn parse_scaled(value: &str, unit: impl Fn(&str) -> Option<u64>) -> Result<u64, ScaledError> {
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let factor = unit(suffix.trim()).ok_or(ScaledError::Syntax)?;
    let number: u64 = digits.parse().map_err(|_| ScaledError::Syntax)?;
    number.checked_mul(factor).ok_or(ScaledError::Overflow)
}

fn scaled_result(
    var: &'static str,
    value: &str,
    result: Result<u64, ScaledError>,
    expected: &str,
) -> Result<u64, ConfigError> {
    result.map_err(|e| match e {
        ScaledError::Syntax => error(var, value, &format!("not {expected}")),
        ScaledError::Overflow => error(var, value, "too large"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(pairs.iter().copied())
    }

    /// BQUEUETTL: one duration for all, or queue=duration pairs with * for the rest;
    /// what the README shows is accepted.
    #[test]
    fn queue_ttls_are_read_as_documented() {
        let ttls = |v: &str| vars(&[("BQUEUETTL", v)]).map(|c| c.queue_ttls);
        let h = Duration::from_secs(3600);
        assert_eq!(ttls("1h").unwrap(), vec![("*".to_owned(), h)]);
        assert_eq!(
            ttls("jobs=10m, cache=30s,*=1d").unwrap(),
            vec![
                ("jobs".to_owned(), Duration::from_secs(600)),
                ("cache".to_owned(), Duration::from_secs(30)),
                ("*".to_owned(), Duration::from_secs(86_400)),
            ]
        );
        assert_eq!(
            ttls("jobs=0").unwrap(),
            vec![("jobs".to_owned(), Duration::ZERO)]
        );
        assert!(ttls("30d").is_ok());
        for bad in ["31d", "jobs", "=1h", "a=1h,a=2h", "1h,b=2", "a=x"] {
            assert!(ttls(bad).is_err(), "{bad}");
        }
    }

    /// No variables give the documented defaults.
    #[test]
    fn defaults_without_variables() {
        let config = vars(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.address(), "localhost:6552");
        assert_eq!(config.max_message_size, 1 << 20);
    }

    /// Every variable is read, with suffixes, and unknown ones are ignored.
    #[test]
    fn reads_every_variable() {
        let config = vars(&[
            ("BHOST", "0.0.0.0"),
            ("BPORT", "7000"),
            ("BMAXMESSAGESIZE", "1M"),
            ("BQUEUEIDLE", "2m"),
            ("BMAXMEMORY", "64MiB"),
            ("BMAXCONNECTIONS", "50"),
            ("BSUBBUFFER", "64K"),
            ("HOME", "/nowhere"),
        ])
        .unwrap();
        assert_eq!(config.sub_buffer, 64 << 10);
        assert_eq!(config.address(), "0.0.0.0:7000");
        assert_eq!(config.max_message_size, 1 << 20);
        assert_eq!(config.queue_idle, Some(Duration::from_secs(120)));
        assert_eq!(config.max_memory, 64 << 20);
        assert_eq!(config.max_connections, 50);
    }

    /// BQUEUEIDLE=0 keeps queues forever.
    #[test]
    fn zero_idle_means_forever() {
        assert_eq!(vars(&[("BQUEUEIDLE", "0")]).unwrap().queue_idle, None);
    }

    /// A bad value names its variable.
    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("BPORT", "abc"),
            ("BPORT", "70000"),
            ("BMAXMESSAGESIZE", "0"),
            ("BMAXMESSAGESIZE", "10X"),
            ("BMAXMESSAGESIZE", "2G"),
            ("BQUEUEIDLE", "-1"),
            ("BMAXMEMORY", "lots"),
            ("BMAXCONNECTIONS", "0"),
            ("BSUBBUFFER", "0"),
            ("BSUBBUFFER", "2G"),
        ] {
            let err = vars(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    /// A message size above the memory cap could never be stored, so it is refused,
    /// naming a variable the user set and saying what to change.
    #[test]
    fn message_size_must_fit_memory() {
        let err = vars(&[("BMAXMESSAGESIZE", "2M"), ("BMAXMEMORY", "1M")]).unwrap_err();
        assert_eq!((err.var, err.value.as_str()), ("BMAXMESSAGESIZE", "2M"));
        assert!(
            err.reason
                .contains("lower BMAXMESSAGESIZE or raise BMAXMEMORY"),
            "{err}"
        );
        // Only the memory cap given, below the default message size: that is the one.
        let err = vars(&[("BMAXMEMORY", "1K")]).unwrap_err();
        assert_eq!((err.var, err.value.as_str()), ("BMAXMEMORY", "1K"));
        assert!(err.reason.contains("raise BMAXMEMORY"), "{err}");
        assert!(
            err.reason.contains("BMAXMESSAGESIZE to at most 1024"),
            "{err}"
        );
        // Only the message size given, above the default memory cap.
        let err = vars(&[("BMAXMESSAGESIZE", "512M")]).unwrap_err();
        assert_eq!((err.var, err.value.as_str()), ("BMAXMESSAGESIZE", "512M"));
        assert!(err.reason.contains("the default"), "{err}");
        // Both lowered together is fine.
        let config = vars(&[("BMAXMEMORY", "1K"), ("BMAXMESSAGESIZE", "100")]).unwrap();
        assert_eq!((config.max_memory, config.max_message_size), (1024, 100));
    }

    /// An empty or blank value is the same as no value: the default.
    #[test]
    fn empty_values_are_unset() {
        let blank: Vec<(&str, &str)> = VARIABLES
            .iter()
            .map(|(name, _, _)| (*name, ""))
            .chain([("BHOST", "  "), ("BPORT", "\t")])
            .collect();
        assert_eq!(vars(&blank).unwrap(), Config::default());
    }

    /// Only the variables beuss reads are looked at, and one that is not UTF-8 is
    /// named.
    #[test]
    fn only_known_variables_are_read() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'a', 0xff]);
        let asked = std::cell::RefCell::new(Vec::new());
        let config = Config::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            (name == "BPORT").then(|| OsString::from("7000"))
        })
        .unwrap();
        assert_eq!(config.port, 7000);
        let asked = asked.into_inner();
        assert!(asked.iter().all(|name| name.starts_with('B')), "{asked:?}");
        assert!(!asked.iter().any(|name| name == "BFOO"), "{asked:?}");
        for var in ["BHOST", "BMAXMEMORY"] {
            let err = Config::from_lookup(|name| (name == var).then(bad)).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains("not valid UTF-8"), "{err}");
        }
    }

    /// RUST_LOG: levels and TARGET=LEVEL pass through; a word the logger would take
    /// for a module name (and so log nothing) falls back to info with a warning.
    #[test]
    fn rust_log_is_checked() {
        let filter = |v: Option<&str>| log_filter(v.map(OsStr::new));
        for good in [
            "debug",
            "WARN",
            "off",
            "beuss=debug",
            "info,mio=trace",
            "beuss::server",
        ] {
            assert_eq!(filter(Some(good)), (good.to_owned(), None), "{good}");
        }
        for unset in [None, Some(""), Some(" "), Some(",")] {
            assert_eq!(filter(unset), ("info".to_owned(), None), "{unset:?}");
        }
        for bad in ["bogus", "warning", "info,mio=loud", "=debug"] {
            let (used, warning) = filter(Some(bad));
            assert_eq!(used, "info", "{bad}");
            let warning = warning.expect("a warning");
            assert!(warning.starts_with("RUST_LOG="), "{warning}");
            assert!(warning.contains("logging at info"), "{warning}");
        }
        use std::os::unix::ffi::OsStrExt;
        let (used, warning) = log_filter(Some(OsStr::from_bytes(b"\xff")));
        assert_eq!(used, "info");
        assert!(warning.unwrap().contains("not valid UTF-8"));
    }

    /// IPv6 literals get brackets so that the port is not mistaken for part of them.
    #[test]
    fn ipv6_host_is_bracketed() {
        assert_eq!(vars(&[("BHOST", "::1")]).unwrap().address(), "[::1]:6552");
    }
}
