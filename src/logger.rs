//! The server's logger: `RUST_LOG` directives, one line per record on stderr.
//!
//! It reads the directives `env_logger` users know (`info`, `beuss::server=debug`, a
//! bare target for all its levels, `/text` to keep only messages containing `text`)
//! and writes lines in `env_logger`'s default shape,
//! `[2026-12-03T13:04:00Z INFO  beuss::server] message`. It exists because
//! `env_logger` cost the static server binary about 50 KB that its size budget
//! needs for features.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

/// A parsed `RUST_LOG`: a default level, levels per target prefix, and an optional
/// text a message must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    default: LevelFilter,
    /// Longest prefix first, so that the first match is the most specific one.
    targets: Vec<(String, LevelFilter)>,
    contains: Option<String>,
}

impl Filter {
    /// Parses directives already checked by `config::log_filter`; anything it cannot
    /// read is skipped.
    pub fn parse(spec: &str) -> Filter {
        let (directives, contains) = match spec.split_once('/') {
            Some((d, text)) => (d, Some(text.to_owned())),
            None => (spec, None),
        };
        let mut filter = Filter {
            default: LevelFilter::Error,
            targets: Vec::new(),
            contains,
        };
        for directive in directives.split(',').map(str::trim) {
            match directive.split_once('=') {
                Some((target, level)) => {
                    if let Ok(level) = level.trim().parse() {
                        filter.targets.push((target.trim().to_owned(), level));
                    }
                }
                None => match directive.parse() {
                    Ok(level) => filter.default = level,
                    Err(_) if !directive.is_empty() => {
                        filter
                            .targets
                            .push((directive.to_owned(), LevelFilter::Trace));
                    }
                    Err(_) => {}
                },
            }
        }
        filter
            .targets
            .sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        filter
    }

    /// The level records of `target` are kept at.
    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map_or(self.default, |(_, level)| *level)
    }

    /// The most verbose level any target is kept at, for `log::set_max_level`.
    pub fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, std::cmp::max)
    }

    /// Whether `record` passes the filter.
    fn keeps(&self, record: &Record<'_>) -> bool {
        record.level() <= self.level_for(record.target())
            && self.contains.as_deref().is_none_or(|text| {
                // A message is formatted only when a text filter asks for it.
                record.args().to_string().contains(text)
            })
    }
}

/// The line `record` is logged as, at `ms` since 1970 (UTC).
pub fn line(record: &Record<'_>, ms: u64) -> String {
    format!(
        "[{} {:<5} {}] {}\n",
        crate::civil::rfc3339(ms),
        record.level(),
        record.target(),
        record.args()
    )
}

struct Stderr(Filter);

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.0.level_for(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.0.keeps(record) {
            return;
        }
        let ms = crate::civil::now_ms();
        // One write per line, so that lines are whole even if something else writes
        // to stderr; a failed write has nowhere to be reported.
        let _ = std::io::stderr()
            .lock()
            .write_all(line(record, ms).as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger for `spec` (a `RUST_LOG` value checked by
/// `config::log_filter`). A second call changes nothing.
pub fn init(spec: &str) {
    let filter = Filter::parse(spec);
    let max = filter.max_level();
    if log::set_boxed_logger(Box::new(Stderr(filter))).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    fn keeps(filter: &Filter, target: &str, level: Level, text: &str) -> bool {
        filter.keeps(
            &Record::builder()
                .target(target)
                .level(level)
                .args(format_args!("{text}"))
                .build(),
        )
    }

    #[test]
    fn default_level_and_targets() {
        let f = Filter::parse("warn,beuss::server=debug,beuss::server::auth=error");
        assert!(keeps(&f, "beuss::store", Level::Warn, "x"));
        assert!(!keeps(&f, "beuss::store", Level::Info, "x"));
        assert!(keeps(&f, "beuss::server", Level::Debug, "x"));
        assert!(keeps(&f, "beuss::server::hygiene", Level::Debug, "x"));
        assert!(!keeps(&f, "beuss::server::auth", Level::Warn, "x"));
        assert!(keeps(&f, "beuss::server::auth", Level::Error, "x"));
        assert_eq!(f.max_level(), LevelFilter::Debug);
    }

    #[test]
    fn bare_target_means_every_level_and_off_means_none() {
        let f = Filter::parse("beuss");
        assert!(keeps(&f, "beuss::server", Level::Trace, "x"));
        assert!(!keeps(&f, "mio::poll", Level::Warn, "x"));
        assert!(keeps(&f, "mio::poll", Level::Error, "x"));
        let off = Filter::parse("off");
        assert!(!keeps(&off, "beuss", Level::Error, "x"));
        assert_eq!(off.max_level(), LevelFilter::Off);
        let upper = Filter::parse("INFO");
        assert!(keeps(&upper, "beuss", Level::Info, "x"));
        assert!(!keeps(&upper, "beuss", Level::Debug, "x"));
    }

    #[test]
    fn text_filter_keeps_matching_messages_only() {
        let f = Filter::parse("info/closed");
        assert!(keeps(&f, "beuss", Level::Info, "connection closed"));
        assert!(!keeps(&f, "beuss", Level::Info, "listening"));
    }

    #[test]
    fn line_has_env_loggers_shape() {
        let port = 6552;
        let text = line(
            &Record::builder()
                .target("beuss::server")
                .level(Level::Info)
                .args(format_args!("listening on {port}"))
                .build(),
            0,
        );
        assert_eq!(
            text,
            "[1970-01-01T00:00:00Z INFO  beuss::server] listening on 6552\n"
        );
    }
}
