//! `beuss SUB`: print every message published to one or more patterns while it
//! runs (live subscriptions, protocol.md 15.6), in `ON`'s formats or as JSON.
//!
//! Events are pushed by the server: nothing here polls. When no event has come for
//! [`KEEPALIVE`], a `PING` checks that the connection is still there.

use std::ffi::OsString;
use std::io;
use std::time::Duration;

use beuss::Client;
use beuss::client::Event;
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, number_value, pattern};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::on::{
    OnFormat, Sink, breaks_connection, exit_when_reader_leaves, format_option,
    reconnect_with_backoff,
};
use crate::output::{EXIT_OK, Failure, escape_line, write_stdout};
use crate::signals::on_signals;
use crate::stats::json_string;

/// The verb table's row for `SUB`.
pub const VERB: Verb = Verb {
    name: "SUB",
    summary: "beuss SUB <pattern>...           print every message published, live",
    help: HELP,
    arity: (1, beuss::protocol::MAX_SUBSCRIPTIONS as usize),
    takes: "one or more patterns",
    new: || Box::<Sub>::default(),
};

/// Silence after which `SUB` checks its connection with a `PING`.
const KEEPALIVE: Duration = Duration::from_secs(30);

const HELP: &str = "\
Usage: beuss SUB <pattern>... [--raw | -0 | --dir DIR | --json] [--subject]
                 [--count N] [--no-reconnect]

Subscribes to each <pattern> and writes every message published to a matching
subject (beuss PUB, REQ) as it is published, until stopped (SIGINT, SIGTERM:
exit 0) or, with --count, after N messages. A message matching two of the
patterns is printed twice. Nothing is taken from any queue: SUB only watches,
and gets only what is published while it is connected.

A pattern is tokens separated by dots; * matches exactly one token, a last >
one or more: 'orders.*' matches orders.eu; 'orders.>' matches orders.eu and
orders.eu.created. Quote them for the shell.

Output formats (as beuss ON's; see beuss ON --help for the escaping):
  (default)       one message per line, escaped so a line never breaks in two
  --subject       with the default format: the subject, a tab, then the line
  --raw           the bytes of each message as they are, nothing in between
  -0, --null      each message followed by a NUL byte
  --dir DIR       each message into its own file DIR/0000000001, ...; prints
                  each file's path
  --json          one JSON object per line: {\"sid\":1,\"subject\":\"orders.eu\",
                  \"reply_to\":null,\"dropped\":0,\"payload\":\"...\"}; a payload
                  that is not UTF-8 comes as \"payload_base64\" instead;
                  reply_to is the address of a request (beuss REQ), which
                  any program can answer

  --count N       exit 0 after N messages
  --no-reconnect  exit (code 3) when the connection breaks, instead of
                  reconnecting and subscribing again with a backoff of 100 ms
                  doubling up to 5 s (messages published meanwhile are lost)

A subscriber that does not keep up (the server holds more than BSUBBUFFER,
1 MiB by default, of output it has not read) misses messages: the server
drops them and SUB says on stderr how many before the next one it prints.
For messages that must not be lost, bind a queue instead (beuss BIND) and
consume it (beuss WORK, GET, ON).

Exit codes: 0 stopped by a signal or --count reached, or its reader went
away, 1 error, 2 usage, 3 cannot connect.

Example: beuss SUB 'orders.>' --subject
         beuss SUB 'logs.*.error' --json | jq .payload
";

/// `SUB`'s options.
#[derive(Default)]
struct Sub {
    /// `--raw`, `--null` or `--dir`.
    format: Option<OnFormat>,
    /// `--json`.
    json: bool,
    /// `--subject`.
    with_subject: bool,
    /// `--count`.
    count: Option<u64>,
    /// `--no-reconnect`.
    no_reconnect: bool,
}

impl Command for Sub {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        match option.arg() {
            Arg::Long("json") => self.json = true,
            Arg::Long("subject") => self.with_subject = true,
            Arg::Long("count") => self.count = Some(number_value(parser, option, 1, u64::MAX)?),
            Arg::Long("no-reconnect") => self.no_reconnect = true,
            _ => {
                let Some(format) = format_option(option, parser)? else {
                    return Ok(false);
                };
                if self.format.replace(format).is_some() {
                    return Err(Failure::usage(
                        "choose one of --raw, --null, --dir and --json",
                    ));
                }
            }
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let patterns = args
            .iter()
            .map(|arg| pattern(arg).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        if self.json && self.format.is_some() {
            return Err(Failure::usage(
                "choose one of --raw, --null, --dir and --json",
            ));
        }
        if self.with_subject && (self.json || self.format.is_some()) {
            return Err(Failure::usage(
                "--subject goes with the default format (--json has the subject)",
            ));
        }
        let raw_line = self.format.is_none();
        let printer = Printer {
            sink: if self.json {
                None
            } else {
                Some(Sink::new(self.format.unwrap_or(OnFormat::Line))?)
            },
            raw_line,
            with_subject: self.with_subject,
            buf: Vec::new(),
        };
        sub(addr, &patterns, printer, self.count, !self.no_reconnect)
    }
}

/// `SUB`: every event, until a signal, `--count` or the reader leaves.
fn sub(
    addr: &str,
    patterns: &[String],
    mut printer: Printer,
    count: Option<u64>,
    reconnect: bool,
) -> Result<(), Failure> {
    exit_on_signals()?;
    let reply_within = KEEPALIVE.saturating_add(REPLY_TIMEOUT);
    let (client, server) = connect(addr, reply_within)?;
    server.fanout(addr)?;
    let (mut client, mut sids) = subscribe_all(addr, client, patterns)?;
    exit_when_reader_leaves();
    let mut printed = 0;
    loop {
        let next = match client.next_event(Some(KEEPALIVE)) {
            Ok(None) => client.ping().map(|()| None),
            other => other,
        };
        match next {
            Ok(Some(event)) => {
                if event.dropped() > 0 {
                    let pattern = sids
                        .iter()
                        .find(|(sid, _)| *sid == event.sid())
                        .map_or("?", |(_, p)| p.as_str());
                    eprintln!(
                        "beuss: {} messages of {pattern:?} were dropped before this one \
                         (SUB did not keep up)",
                        event.dropped()
                    );
                }
                printer.write(&event)?;
                printed += 1;
                if count.is_some_and(|n| printed >= n) {
                    return Ok(());
                }
            }
            Ok(None) => {}
            Err(e) if reconnect && breaks_connection(&e) => {
                eprintln!("beuss: {}; reconnecting", Failure::client(addr, &e).message);
                (client, sids) = resubscribe(addr, reply_within, patterns)?;
                eprintln!(
                    "beuss: reconnected to {addr} and subscribed again (what was published \
                     meanwhile is lost)"
                );
            }
            Err(e) => return Err(Failure::client(addr, &e)),
        }
    }
}

/// Subscribes `client` to every pattern; returns it with each sid's pattern.
fn subscribe_all(
    addr: &str,
    mut client: Client,
    patterns: &[String],
) -> Result<(Client, Vec<(u32, String)>), Failure> {
    let mut sids = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        let sid = client
            .subscribe(pattern)
            .map_err(|e| Failure::client(addr, &e))?;
        sids.push((sid, pattern.clone()));
    }
    Ok((client, sids))
}

/// Connects again (with [`reconnect_with_backoff`]) and subscribes again, until
/// both work or what answers cannot be a beuss server.
fn resubscribe(
    addr: &str,
    reply_within: Duration,
    patterns: &[String],
) -> Result<(Client, Vec<(u32, String)>), Failure> {
    loop {
        let client = reconnect_with_backoff(addr, reply_within)?;
        match subscribe_all(addr, client, patterns) {
            Ok(done) => return Ok(done),
            Err(failure) if failure.code == crate::output::EXIT_CONNECT => {
                eprintln!("beuss: {}; reconnecting", failure.message);
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// Ends the process with code 0 on SIGTERM or SIGINT, between two messages: the
/// watching thread takes the lock on standard output first, so a message being
/// written is written whole. Nothing needs tidying: the server drops the
/// subscriptions with the connection.
fn exit_on_signals() -> Result<(), Failure> {
    on_signals(|| {
        let _out = io::stdout().lock();
        std::process::exit(i32::from(EXIT_OK));
    })
}

/// Writes each event in the chosen format.
struct Printer {
    /// `ON`'s formats; `None` for `--json`.
    sink: Option<Sink>,
    /// The default, one-line format (where `--subject` applies).
    raw_line: bool,
    /// `--subject`.
    with_subject: bool,
    /// Reused line buffer.
    buf: Vec<u8>,
}

impl Printer {
    fn write(&mut self, event: &Event) -> Result<(), Failure> {
        if let Some(sink) = &mut self.sink {
            if !(self.raw_line && self.with_subject) {
                return sink.write(event.payload());
            }
            self.buf.clear();
            // Subjects hold no tab, space or control byte: the tab cannot be in one.
            self.buf.extend_from_slice(event.subject().as_bytes());
            self.buf.push(b'\t');
            escape_line(event.payload(), &mut self.buf);
        } else {
            self.buf.clear();
            self.buf.extend_from_slice(json_line(event).as_bytes());
        }
        if !write_stdout(&self.buf)? {
            std::process::exit(i32::from(EXIT_OK));
        }
        Ok(())
    }
}

/// One event as a JSON object on one line.
fn json_line(event: &Event) -> String {
    let mut text = format!("{{\"sid\":{},\"subject\":", event.sid());
    json_string(event.subject(), &mut text);
    match event.reply_to() {
        Some(reply_to) => text.push_str(&format!(",\"reply_to\":{reply_to}")),
        None => text.push_str(",\"reply_to\":null"),
    }
    text.push_str(&format!(",\"dropped\":{}", event.dropped()));
    match std::str::from_utf8(event.payload()) {
        Ok(payload) => {
            text.push_str(",\"payload\":");
            json_string(payload, &mut text);
        }
        Err(_) => {
            text.push_str(",\"payload_base64\":\"");
            text.push_str(&base64(event.payload()));
            text.push('"');
        }
    }
    text.push_str("}\n");
    text
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648's test vectors.
    #[test]
    fn base64_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }
}
