//! Server settings, read from `B*` environment variables.
//!
//! [`Config::from_vars`] takes any list of (name, value) pairs so that tests never touch
//! the process environment; [`Config::from_env`] is the one-line wrapper the binary uses.

use std::ffi::OsString;
use std::fmt;
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            queue_idle: Some(DEFAULT_QUEUE_IDLE),
            max_memory: DEFAULT_MAX_MEMORY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A variable with a value the server cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        "seconds an empty queue with no waiter lives unused (ms/s/m/h suffixes; 0 = forever)",
    ),
    (
        "BMAXMEMORY",
        "256M",
        "cap on memory held for messages; a PUT past it gets FULL (K/M/G suffixes)",
    ),
    ("BMAXCONNECTIONS", "10000", "cap on open client connections"),
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
        for (key, value) in vars {
            let value = value.as_ref();
            match key.as_ref() {
                "BHOST" => {
                    if value.trim().is_empty() {
                        return Err(error("BHOST", value, "must not be empty"));
                    }
                    config.host = value.trim().to_owned();
                }
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
                _ => {}
            }
        }
        if config.max_message_size > config.max_memory {
            return Err(ConfigError {
                var: "BMAXMESSAGESIZE",
                value: config.max_message_size.to_string(),
                reason: format!(
                    "larger than BMAXMEMORY ({} bytes): no message that size could be stored",
                    config.max_memory
                ),
            });
        }
        Ok(config)
    }

    /// Reads settings from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first unusable variable, including one that is
    /// not valid UTF-8.
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut vars = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str().filter(|k| k.starts_with('B')) else {
                continue;
            };
            let value = os_to_string(key, value)?;
            vars.push((key.to_owned(), value));
        }
        Config::from_vars(vars)
    }

    /// `host:port`, as given to the resolver.
    pub fn address(&self) -> String {
        crate::join_host_port(&self.host, &self.port.to_string())
    }
}

fn os_to_string(key: &str, value: OsString) -> Result<String, ConfigError> {
    value.into_string().map_err(|v| {
        let var = VARIABLES
            .iter()
            .map(|(name, _, _)| *name)
            .find(|name| *name == key)
            .unwrap_or("a B* variable");
        ConfigError {
            var,
            value: v.to_string_lossy().into_owned(),
            reason: "not valid UTF-8".to_owned(),
        }
    })
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

/// Parses a duration: whole seconds, or a number with an ms, s, m or h suffix.
pub fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let millis = parse_scaled(value, |suffix| {
        Some(match suffix {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        })
    });
    scaled_result(
        var,
        value,
        millis,
        "a duration (seconds, or a number with ms, s, m or h)",
    )
    .map(Duration::from_millis)
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
            ("HOME", "/nowhere"),
        ])
        .unwrap();
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
            ("BMAXMEMORY", ""),
            ("BMAXCONNECTIONS", "0"),
            ("BHOST", " "),
        ] {
            let err = vars(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    /// A message size above the memory cap could never be stored, so it is refused.
    #[test]
    fn message_size_must_fit_memory() {
        let err = vars(&[("BMAXMESSAGESIZE", "2M"), ("BMAXMEMORY", "1M")]).unwrap_err();
        assert_eq!(err.var, "BMAXMESSAGESIZE");
    }

    /// IPv6 literals get brackets so that the port is not mistaken for part of them.
    #[test]
    fn ipv6_host_is_bracketed() {
        assert_eq!(vars(&[("BHOST", "::1")]).unwrap().address(), "[::1]:6552");
    }
}
