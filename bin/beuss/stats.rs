//! `beuss STATS`: the server's figures as a table or JSON.

use std::ffi::OsString;
use std::fmt::Write as _;

use beuss::Client;
use beuss::client::{self, Error as ClientError};
use beuss::protocol::{Request, Response, StatsReport};
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, queue_name};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::output::{EXIT_EMPTY, Failure, display_name, write_stdout};

/// The verb table's row for `STATS`.
pub const VERB: Verb = Verb {
    name: "STATS",
    summary: "beuss STATS [queue] [--json]     server and queue figures",
    help: HELP,
    arity: (0, 1),
    takes: "at most a queue name",
    new: || Box::<Stats>::default(),
};

const HELP: &str = "\
Usage: beuss STATS [queue] [--json]

Prints the server's figures and one row per queue (or only <queue>): messages
ready, in flight (leased), delayed and dead (in <queue>.dead), waiting
consumers, bytes, memory and milliseconds since last use. --json has every
figure (puts, gets, leases, acks, nacks, redeliveries...); protocol.md
sections 6 and 13.11 explain each.

  --json   one JSON object on one line instead of the table:
           {\"server\":{\"uptime_seconds\":12,...},\"queues\":{\"jobs\":{...}}}

With a <queue> that does not exist (never used, or removed after BQUEUEIDLE
unused), the server's figures are printed (with --json, \"queues\":{}) and beuss
says so on stderr and exits 4, as GET does for an empty queue.

Exit codes: 0 ok, 1 error, 2 usage, 3 cannot connect, 4 no such queue.
";

/// `STATS`'s options.
#[derive(Default)]
struct Stats {
    /// `--json`.
    json: bool,
}

impl Command for Stats {
    fn option(&mut self, option: &Opt, _parser: &mut Parser) -> Result<bool, Failure> {
        match option.arg() {
            Arg::Long("json") => self.json = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = args.first().map(|a| queue_name(a)).transpose()?;
        stats(addr, queue, self.json)
    }
}

/// `STATS`: a table, or one line of JSON.
fn stats(addr: &str, queue: Option<&str>, json: bool) -> Result<(), Failure> {
    let (mut client, _) = connect(addr, REPLY_TIMEOUT)?;
    let mut report = match queue {
        None => client.stats(),
        Some(name) => stats_of_queue(&mut client, name),
    }
    .map_err(|e| Failure::client(addr, &e))?;
    report.queues.sort_by(|a, b| a.name.cmp(&b.name));
    let text = if json {
        stats_json(&report)
    } else {
        stats_table(addr, &report)
    };
    write_stdout(text.as_bytes())?;
    match queue {
        // Like GET on an empty queue: a script learns it from the exit code, and a
        // mistyped name does not pass for an idle queue.
        Some(name) if report.queues.is_empty() => Err(Failure::new(
            EXIT_EMPTY,
            format!(
                "no queue named {} (a queue exists while it holds messages or has a \
                 waiting consumer, and for BQUEUEIDLE after its last use)",
                display_name(name)
            ),
        )),
        _ => Ok(()),
    }
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

/// The queue figures the table shows, in this order: what a person watching work
/// needs (where the messages are, who waits, what they cost, how long since the
/// queue was used). The others (puts, gets, leases, acks, nacks, redeliveries...)
/// are in `--json`, which has every figure the server sends.
const QUEUE_COLUMNS: &[&str] = &[
    "ready",
    "in_flight",
    "delayed",
    "dead",
    "waiters",
    "bytes",
    "memory",
    "idle_ms",
];

/// The columns for a version-1 server, which has no `ready` and the like.
const QUEUE_COLUMNS_V1: &[&str] = &[
    "messages",
    "bytes",
    "memory",
    "puts",
    "gets",
    "truncations",
    "waiters",
    "idle_ms",
];

fn stats_table(addr: &str, report: &StatsReport) -> String {
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
        text.push_str("no queues\n");
        return text;
    }
    let columns = if report.queues.iter().any(|q| q.get("ready").is_some()) {
        QUEUE_COLUMNS
    } else {
        QUEUE_COLUMNS_V1
    };
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
pub fn json_string(s: &str, out: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON strings escape quotes, backslashes and control characters.
    #[test]
    fn json_escaping() {
        let mut out = String::new();
        json_string("a\"b\\c\nd\u{1}é", &mut out);
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
