//! `beuss-bench`: a load generator for beuss in the spirit of `redis-benchmark`, that
//! also speaks Redis and beanstalkd so that one client engine drives every server in a
//! comparison.
//!
//! Each test opens its own connections, runs one or two timed phases and prints
//! requests per second and latency percentiles (from an HDR histogram) per phase. It
//! verifies what it measures: every payload carries its connection id and sequence
//! number, and every message that comes back is checked for its bytes, for arriving
//! exactly once, and for order per connection; a test whose messages do not all come
//! back makes the program exit non-zero.
//!
//! The engine is in `bench/engine.rs`, the three wire protocols in `bench/wire.rs`,
//! the in-process subject-matching benchmark (`-t route`) in `bench/route.rs`, the
//! fan-out tests (beuss against NATS and Redis) in `bench/fanout.rs` with the NATS
//! protocol in `bench/nats.rs` and the Redis replies they need in `bench/resp.rs`,
//! and `bench/compare.sh` runs the side-by-side comparison behind `BENCHMARKS.md`.

#[path = "../bench/engine.rs"]
mod engine;
#[path = "../bench/fanout.rs"]
mod fanout;
#[path = "../bench/local.rs"]
mod local;
#[path = "../bench/nats.rs"]
mod nats;
#[path = "../bench/resp.rs"]
mod resp;
#[path = "../bench/route.rs"]
mod route;
#[path = "../bench/wire.rs"]
mod wire;

use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use engine::{Engine, MAX_CHECKED_CONNECTIONS, Measured, PAYLOAD_HEADER, Settings, Work};
use fanout::Peer;
use wire::Target;

/// The fan-out tests (`bench/fanout.rs`), which also speak NATS.
const FANOUT_TESTS: [&str; 7] = [
    "fanout",
    "fanqueue",
    "fanlease",
    "reqrep",
    "reqqueue",
    "fanmem",
    "fanmemput",
];

const USAGE: &str = "\
Usage: beuss-bench [options]

Benchmarks a beuss server (or Redis, beanstalkd or, for fan-out, NATS) with
pipelined requests from one event-loop thread, and checks every message that comes
back.

Options:
  -h <host>        server host (default $BHOST or localhost)
  -p <port>        server port (default $BPORT or 6552; 6379 for redis, 11300 for
                   beanstalkd, 4222 for nats)
  -c <clients>     connections (default 50)
  -P <depth>       requests written per batch on each connection (default 1)
  -d <bytes>       payload bytes per message, at least 16 (default 32)
  -n <requests>    requests per timed phase, all connections together (default 100000;
                   k and M suffixes allowed)
  -q <queues>      queues the connections spread over (default 1)
  -t <tests>       comma-separated tests (default putget,latency):
                     put      timed PUTs, then an untimed drain that checks them
                     get      an untimed fill, then timed GETs that check them
                     putget   timed PUTs, then timed GETs that check them
                     lease    an untimed fill, then timed leased receives that
                              acknowledge and check them: beuss LEASE (30 s, max
                              -P) + one ACK per reply; Redis XADD, then XREADGROUP
                              (COUNT -P) + XACK in a consumer group; beanstalkd
                              reserve + delete
                     latency  half the connections put at --rate, the other half
                              wait in GET; latency is delivery time (send stamp in
                              the payload to receipt)
                     rtt      every connection pings at --rate in all; latency is
                              the round trip (the floor under latency's figures)
                     fill     timed PUTs left in the server (memory measurement;
                              with --delay-ms, delayed PUTs)
                     inflight timed PUTs, then timed LEASEs (30 s, max -P) never
                              acknowledged, the connections kept open: RSS with
                              every message in flight (beuss only)
                     idle     open -c connections, ping each, measure, close
                     localrtt one client, one request at a time, over TCP and
                              over the Unix socket --unix (server started with
                              BUNIX): PING and PUT+GET round trips, -n per
                              transport in 7 alternating rounds; p50 is the
                              median round trip, spread the rounds' medians
                     cycle    put/get cycles: --window PUTs, then --window GETs
                              that check them, again until -n cycles are done
                              (at most --window messages held at a time; queue
                              bench-0); one CYCLE row, req/s = cycles per second
                     leasecycle  the same with LEASE + ACK instead of GET
                              (Redis: XADD, XREADGROUP + XACK; queue lease-0)
                     route    no server: subject matching in this process, tries
                              of 10 to 100,000 bindings (70% literal, 20% '*',
                              10% '>'), ns per match of a 4-token subject against
                              a linear scan; -n lookups per run, median of 7 runs
                   Fan-out (-c is the fan: subscribers, queues or requesters):
                     fanout   one publisher, -c live subscribers of one subject,
                              -n publishes in batches of -P; req/s = messages
                              delivered, all subscribers together; latency =
                              publish to receipt (beuss PUB/SUB/EVENT, nats
                              PUB + PING per batch/SUB/MSG, redis PUBLISH/
                              SUBSCRIBE)
                     fanqueue one publisher into -c queues bound to one subject,
                              one consumer per queue in a waiting GET of up to -P
                              (redis: MULTI, LPUSH per list, EXEC; BLMPOP COUNT -P)
                     fanlease the same, consumers LEASE + ACK (beuss only)
                     reqrep   -c requesters, one request in flight each, one
                              responder echoing it: beuss REQ, responder SUB ->
                              EVENT with REPLY_TO -> REPLY; nats PUB with a reply
                              subject in the requester's _INBOX.<conn>.*;
                              req/s = round trips, latency = round trip
                     reqqueue the same, the beuss responder leasing the requests
                              from a bound queue WITH_META (REPLY, then ACK)
                     fanmem   -n publishes of -d bytes to a subject bound to -c
                              queues (beuss only): server RSS and STATS memory per
                              publish (use a fresh server)
                     fanmemput  the same copies as -n x -c plain PUTs
  --target <kind>  beuss (default), redis (LPUSH/RPOP/BRPOP), beanstalkd
                   (put/reserve-with-timeout/delete) or nats (fan-out tests only)
  --window <n>     fan-out: most messages the publisher is ahead of its slowest
                   receiver, and of the server's answers (default 10000)
  --rate <n>       messages per second in the latency test, all producers (default 5000)
  --delay-ms <ms>  beuss only: PUTs carry this delay (PUT_OPTIONS), for -t fill
  --server-pid <pid>  also report the server's CPU use and RSS (from /proc)
  --window <n>     cycle tests: messages put before they are taken back (default
                   10000; k and M suffixes allowed); fan-out: see above
  --hold <secs>    idle test: keep the connections open this long after measuring
  --unix <path>    localrtt test: the server's Unix socket (default $BUNIX)
  --timeout <secs> fail a phase that gets no reply for this long (default 10)
  --csv            print CSV rows on stdout (progress goes to stderr)
  --json           print a JSON array on stdout (progress goes to stderr)
  --help           this text

Payloads hold the sending connection's id, a sequence number and a send stamp; the
rest of their bytes follow a pattern derived from those. A message that comes back
twice, out of order, with wrong bytes, or not at all makes the exit status 1.

Examples:
  beuss-bench -c 8 -P 64 -d 32 -n 2M -t putget
  beuss-bench -c 2 -n 20000 --rate 2000 -t latency
  beuss-bench --target redis -p 6379 -c 50 -t putget
";

/// Command-line options.
#[derive(Debug)]
struct Options {
    host: String,
    port: Option<u16>,
    clients: usize,
    pipeline: usize,
    data: usize,
    requests: u64,
    queues: usize,
    tests: Vec<String>,
    /// The queue-test target; `None` for a fan-out-only one (NATS).
    target: Option<Target>,
    /// The fan-out target; `None` for a queue-only one (beanstalkd).
    peer: Option<Peer>,
    rate: f64,
    server_pid: Option<u32>,
    delay_ms: u32,
    window: u64,
    hold: Duration,
    stall: Duration,
    format: Format,
    /// The server's Unix socket, for `-t localrtt`.
    unix: Option<String>,
}

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Csv,
    Json,
}

/// One line of results.
#[derive(Debug, Default)]
struct Row {
    target: &'static str,
    test: String,
    clients: usize,
    pipeline: usize,
    data: usize,
    requests: u64,
    seconds: f64,
    rps: f64,
    /// Latency percentiles and maximum in microseconds.
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    client_cpu: f64,
    server_cpu: Option<f64>,
    parked: Option<f64>,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    /// RSS growth per message (fill), per connection (idle) or per binding (route).
    bytes_each: Option<f64>,
    /// Route test: bindings in the trie, and nanoseconds per lookup.
    bindings: Option<usize>,
    ns_each: Option<f64>,
    /// Fan-out memory tests: the server's `STATS` memory before and after.
    stats_memory_before: Option<u64>,
    stats_memory_after: Option<u64>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("beuss-bench: {e}\nTry beuss-bench --help.");
            return ExitCode::from(2);
        }
    };
    let mut rows = Vec::new();
    let result = run(&options, &mut rows);
    match options.format {
        Format::Text => {}
        Format::Csv => print!("{}", csv(&rows)),
        Format::Json => print!("{}", json(&rows)),
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beuss-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut o = Options {
        host: env("BHOST").unwrap_or_else(|| beuss::DEFAULT_HOST.to_owned()),
        port: None,
        clients: 50,
        pipeline: 1,
        data: 32,
        requests: 100_000,
        queues: 1,
        tests: vec!["putget".to_owned(), "latency".to_owned()],
        target: Some(Target::Beuss),
        peer: Some(Peer::Beuss),
        rate: 5000.0,
        server_pid: None,
        delay_ms: 0,
        window: 10_000,
        hold: Duration::ZERO,
        stall: Duration::from_secs(10),
        format: Format::Text,
        unix: env("BUNIX"),
    };
    let bport = env("BPORT");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--help" | "help" => return Ok(None),
            "-h" => o.host = value()?.to_owned(),
            "-p" => {
                let port = number(arg, value()?)?;
                o.port = Some(u16::try_from(port).map_err(|_| format!("-p {port}: not a port"))?);
            }
            "-c" => o.clients = number(arg, value()?)? as usize,
            "-P" => o.pipeline = number(arg, value()?)? as usize,
            "-d" => o.data = number(arg, value()?)? as usize,
            "-n" => o.requests = number(arg, value()?)?,
            "-q" => o.queues = number(arg, value()?)? as usize,
            "-t" => o.tests = value()?.split(',').map(str::to_owned).collect(),
            "--target" => {
                let name = value()?;
                o.target = Target::parse(name);
                o.peer = Peer::parse(name);
                if o.target.is_none() && o.peer.is_none() {
                    return Err(format!("unknown target {name}"));
                }
            }
            "--rate" => o.rate = number(arg, value()?)? as f64,
            "--server-pid" => o.server_pid = Some(number(arg, value()?)? as u32),
            "--delay-ms" => {
                let ms = number(arg, value()?)?;
                o.delay_ms = u32::try_from(ms)
                    .ok()
                    .filter(|&ms| ms <= beuss::protocol::MAX_DELAY_MS)
                    .ok_or_else(|| format!("--delay-ms {ms}: over the server's maximum"))?;
            }
            "--window" => o.window = number(arg, value()?)?,
            "--hold" => o.hold = Duration::from_secs(number(arg, value()?)?),
            "--unix" => o.unix = Some(value()?.to_owned()),
            "--timeout" => o.stall = Duration::from_secs(number(arg, value()?)?),
            "--csv" => o.format = Format::Csv,
            "--json" => o.format = Format::Json,
            other => return Err(format!("unknown option {other}")),
        }
    }
    // BPORT names a beuss server; the other targets default to their own port.
    if o.port.is_none()
        && o.target == Some(Target::Beuss)
        && let Some(p) = bport
    {
        o.port = Some(
            p.trim()
                .parse()
                .map_err(|_| format!("BPORT={p} is not a port"))?,
        );
    }
    if o.clients == 0 || o.pipeline == 0 || o.queues == 0 || o.window == 0 || o.rate <= 0.0 {
        return Err("-c, -P, -q, --window and --rate must be above 0".to_owned());
    }
    if o.data < PAYLOAD_HEADER {
        return Err(format!(
            "-d must be at least {PAYLOAD_HEADER}: payloads carry a 16-byte header"
        ));
    }
    for test in &o.tests {
        let known = [
            "put",
            "get",
            "putget",
            "lease",
            "inflight",
            "latency",
            "rtt",
            "fill",
            "idle",
            "localrtt",
            "cycle",
            "leasecycle",
            "route",
        ];
        let fan = FANOUT_TESTS.contains(&test.as_str());
        if !known.contains(&test.as_str()) && !fan {
            return Err(format!("unknown test {test}"));
        }
        if fan {
            let supported = o
                .peer
                .is_some_and(|peer| fan_test(test).is_none_or(|(t, _)| t.supports(peer)))
                && (!test.starts_with("fanmem") && test != "fanlease"
                    || o.peer == Some(Peer::Beuss));
            if !supported {
                return Err(format!("test {test} is not one for this --target"));
            }
            continue;
        }
        if o.target.is_none() && test != "route" {
            return Err(format!("test {test} is not one for --target nats"));
        }
        if test != "idle" && o.clients > MAX_CHECKED_CONNECTIONS {
            return Err(format!(
                "test {test} checks order per connection pair; use -c {MAX_CHECKED_CONNECTIONS} or less"
            ));
        }
        if (test == "inflight" || o.delay_ms > 0) && o.target != Some(Target::Beuss) {
            return Err("-t inflight and --delay-ms are for beuss only".into());
        }
        if test == "latency" && o.clients < 2 {
            return Err("the latency test needs -c 2 or more (producers and consumers)".into());
        }
    }
    Ok(Some(o))
}

/// A count, with an optional k (thousand) or M (million) suffix.
fn number(option: &str, text: &str) -> Result<u64, String> {
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1_000),
        None => match text.strip_suffix('M') {
            Some(d) => (d, 1_000_000),
            None => (text, 1),
        },
    };
    digits
        .parse::<u64>()
        .map(|n| n * scale)
        .map_err(|_| format!("{option} {text}: not a whole number"))
}

/// The fan-out test a `-t` name stands for, and whether its consumers lease.
fn fan_test(name: &str) -> Option<(fanout::Test, bool)> {
    match name {
        "fanout" => Some((fanout::Test::Live, false)),
        "fanqueue" => Some((fanout::Test::Queues, false)),
        "fanlease" => Some((fanout::Test::Queues, true)),
        "reqrep" => Some((fanout::Test::Request, false)),
        "reqqueue" => Some((fanout::Test::RequestQueued, false)),
        _ => None,
    }
}

/// The name of the target in reports.
fn target_name(o: &Options) -> &'static str {
    match (o.target, o.peer) {
        (Some(t), _) => t.name(),
        (None, Some(p)) => p.name(),
        (None, None) => "?",
    }
}

fn run(o: &Options, rows: &mut Vec<Row>) -> Result<(), String> {
    let port = o.port.unwrap_or_else(|| match (o.target, o.peer) {
        (Some(t), _) => t.default_port(),
        (None, Some(p)) => p.default_port(),
        (None, None) => beuss::DEFAULT_PORT,
    });
    // Queue tests need a queue target (checked by parse for every test named).
    let target = o.target.unwrap_or(Target::Beuss);
    // The route test runs in this process and needs no server.
    let needs_server = o.tests.iter().any(|t| t != "route");
    let addrs: Vec<SocketAddr> = if needs_server {
        beuss::join_host_port(&o.host, &port.to_string())
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", o.host))?
            .collect()
    } else {
        Vec::new()
    };
    let settings = Settings {
        target,
        addrs,
        clients: o.clients,
        pipeline: o.pipeline,
        data: o.data,
        queues: o.queues,
        rate: o.rate,
        stall: o.stall,
        leased: false,
        hold: false,
        delay_ms: o.delay_ms,
    };
    if needs_server {
        progress(
            o,
            &format!(
                "beuss-bench: {} at {}:{port}, {} connections, pipeline {}, {}-byte payloads, \
                 {} requests, {} queue(s)",
                target_name(o),
                o.host,
                o.clients,
                o.pipeline,
                o.data,
                o.requests,
                o.queues
            ),
        );
    }
    for test in &o.tests {
        match test.as_str() {
            "idle" => rows.push(idle(o, &settings)?),
            "fanmem" | "fanmemput" => {
                let row = fan_memory(o, &settings.addrs, test == "fanmemput")?;
                report(o, &row);
                rows.push(row);
            }
            name if FANOUT_TESTS.contains(&name) => {
                let row = fan_row(o, &settings.addrs, name)?;
                report(o, &row);
                rows.push(row);
            }
            "route" => rows.extend(route_rows(o)?),
            "localrtt" => {
                for row in localrtt_rows(o, port)? {
                    report(o, &row);
                    rows.push(row);
                }
            }
            "fill" => {
                let mut engine = Engine::connect(settings.clone(), Work::Put)?;
                let before = o.server_pid.and_then(rss_kib);
                // The phase ends only once every put is confirmed stored; nothing is
                // taken back, so the server now holds them all.
                let mut row = phase(o, &mut engine, Work::Put, "FILL")?;
                // Let the server settle before reading its RSS.
                std::thread::sleep(Duration::from_millis(200));
                row.rss_before_kib = before;
                row.rss_after_kib = o.server_pid.and_then(rss_kib);
                if let (Some(b), Some(a)) = (before, row.rss_after_kib) {
                    row.bytes_each = Some((a.saturating_sub(b) * 1024) as f64 / o.requests as f64);
                }
                report(o, &row);
                rows.push(row);
            }
            "rtt" => {
                let mut engine = Engine::connect(settings.clone(), Work::Rtt)?;
                let row = phase(o, &mut engine, Work::Rtt, "RTT")?;
                report(o, &row);
                rows.push(row);
            }
            "lease" => {
                let settings = Settings {
                    leased: true,
                    ..settings.clone()
                };
                let mut engine = Engine::connect(settings, Work::Put)?;
                phase(o, &mut engine, Work::Put, "FILL")?;
                let row = phase(o, &mut engine, Work::Lease, "LEASE")?;
                report(o, &row);
                rows.push(row);
                engine.verifier.finish()?;
                progress(o, &verified(&engine));
            }
            "inflight" => {
                let settings = Settings {
                    hold: true,
                    ..settings.clone()
                };
                let mut engine = Engine::connect(settings, Work::Put)?;
                let before = o.server_pid.and_then(rss_kib);
                let put = phase(o, &mut engine, Work::Put, "FILL")?;
                report(o, &put);
                let held = o.server_pid.and_then(rss_kib);
                let mut row = phase(o, &mut engine, Work::Lease, "INFLIGHT")?;
                std::thread::sleep(Duration::from_millis(200));
                row.rss_before_kib = before;
                row.rss_after_kib = o.server_pid.and_then(rss_kib);
                if let (Some(b), Some(a)) = (before, row.rss_after_kib) {
                    row.bytes_each = Some((a.saturating_sub(b) * 1024) as f64 / o.requests as f64);
                }
                if let Some(h) = held {
                    progress(
                        o,
                        &format!(
                            "  server RSS once filled, before leasing: {:.1} MiB",
                            h as f64 / 1024.0
                        ),
                    );
                }
                report(o, &row);
                rows.push(row);
                engine.verifier.finish()?;
                progress(o, &verified(&engine));
                std::thread::sleep(o.hold);
            }
            "cycle" | "leasecycle" => {
                let row = cycles(o, &settings, test == "leasecycle")?;
                report(o, &row);
                rows.push(row);
            }
            "latency" => {
                let mut engine = Engine::connect(settings.clone(), Work::Latency)?;
                let row = phase(o, &mut engine, Work::Latency, "LATENCY")?;
                report(o, &row);
                rows.push(row);
                engine.verifier.finish()?;
                progress(o, &verified(&engine));
            }
            put_get => {
                let mut engine = Engine::connect(settings.clone(), Work::Put)?;
                let put = phase(o, &mut engine, Work::Put, "PUT")?;
                if put_get != "get" {
                    report(o, &put);
                    rows.push(put);
                }
                let get = phase(o, &mut engine, Work::Get, "GET")?;
                if put_get != "put" {
                    report(o, &get);
                    rows.push(get);
                }
                engine.verifier.finish()?;
                progress(o, &verified(&engine));
            }
        }
    }
    Ok(())
}

fn verified(engine: &Engine) -> String {
    format!(
        "  verified: {} messages came back once each, in order per connection, bytes intact",
        engine.verifier.received()
    )
}

/// Runs one phase and turns its measurements into a row.
fn phase(o: &Options, engine: &mut Engine, work: Work, name: &str) -> Result<Row, String> {
    let server_before = o.server_pid.and_then(server_cpu);
    let m: Measured = engine.run(work, o.requests)?;
    let server_after = o.server_pid.and_then(server_cpu);
    let server = server_before
        .zip(server_after)
        .map(|(b, a)| a.saturating_sub(b));
    Ok(row_of(o, work, name, &m, m.requests, server))
}

/// The row for `m`, counting `requests` of it (messages, or cycles) over its time;
/// `server` is the server's CPU time meanwhile.
fn row_of(
    o: &Options,
    work: Work,
    name: &str,
    m: &Measured,
    requests: u64,
    server: Option<Duration>,
) -> Row {
    let seconds = m.elapsed.as_secs_f64().max(1e-9);
    let us = |q: f64| m.hist.value_at_quantile(q) as f64 / 1000.0;
    Row {
        target: target_name(o),
        test: name.to_owned(),
        clients: o.clients,
        pipeline: if matches!(work, Work::Latency | Work::Rtt) {
            1
        } else {
            o.pipeline
        },
        data: o.data,
        requests,
        seconds,
        rps: requests as f64 / seconds,
        p50: us(0.5),
        p99: us(0.99),
        p999: us(0.999),
        max: m.hist.max() as f64 / 1000.0,
        client_cpu: 100.0 * m.client_cpu.as_secs_f64() / seconds,
        server_cpu: server.map(|s| 100.0 * s.as_secs_f64() / seconds),
        parked: (work == Work::Latency).then(|| 100.0 * m.parked as f64 / m.requests.max(1) as f64),
        ..Row::default()
    }
}

/// `-n` put/get (or put/lease+ack) cycles on one set of connections, `--window`
/// messages at a time, so that the server holds at most that many of them however
/// many cycles run: the traffic that a durable server's log must not grow under.
/// The row's time and latencies are those of every phase together.
fn cycles(o: &Options, settings: &Settings, leased: bool) -> Result<Row, String> {
    let settings = Settings {
        leased,
        ..settings.clone()
    };
    let take = if leased { Work::Lease } else { Work::Get };
    let mut engine = Engine::connect(settings, Work::Put)?;
    let server_before = o.server_pid.and_then(server_cpu);
    let mut total: Option<Measured> = None;
    let mut left = o.requests;
    while left > 0 {
        let n = left.min(o.window);
        for work in [Work::Put, take] {
            let m = engine.run(work, n)?;
            match total.as_mut() {
                None => total = Some(m),
                Some(t) => {
                    t.elapsed += m.elapsed;
                    t.client_cpu += m.client_cpu;
                    t.hist
                        .add(&m.hist)
                        .map_err(|e| format!("histogram: {e:?}"))?;
                }
            }
        }
        left -= n;
    }
    let server_after = o.server_pid.and_then(server_cpu);
    engine.verifier.finish()?;
    progress(o, &verified(&engine));
    let total = total.ok_or("-n 0: no cycles to run")?;
    let server = server_before
        .zip(server_after)
        .map(|(b, a)| a.saturating_sub(b));
    let name = if leased { "LEASECYCLE" } else { "CYCLE" };
    Ok(row_of(o, take, name, &total, o.requests, server))
}

/// Runs one fan-out test (`bench/fanout.rs`) and makes its row: req/s is messages
/// delivered (all receivers together) or round trips per second.
fn fan_row(o: &Options, addrs: &[SocketAddr], name: &str) -> Result<Row, String> {
    let (test, leased) = fan_test(name).ok_or_else(|| format!("no fan-out test {name}"))?;
    let peer = o.peer.ok_or("no fan-out target")?;
    let plan = fanout::Plan {
        peer,
        addrs: addrs.to_vec(),
        test,
        fans: o.clients,
        requesters: o.clients,
        pipeline: o.pipeline,
        data: o.data,
        messages: o.requests,
        window: o.window,
        leased,
        stall: o.stall,
    };
    let server_before = o.server_pid.and_then(server_cpu);
    let m = fanout::run(&plan)?;
    let server_after = o.server_pid.and_then(server_cpu);
    let server = server_before
        .zip(server_after)
        .map(|(b, a)| a.saturating_sub(b));
    let seconds = m.elapsed.as_secs_f64().max(1e-9);
    let us = |q: f64| m.hist.value_at_quantile(q) as f64 / 1000.0;
    let what = match test {
        fanout::Test::Request | fanout::Test::RequestQueued => "round trips, each reply checked",
        _ => "deliveries, each once and in order, bytes intact",
    };
    progress(o, &format!("  verified: {} {what}", m.deliveries));
    Ok(Row {
        target: peer.name(),
        test: name.to_ascii_uppercase(),
        clients: o.clients,
        pipeline: o.pipeline,
        data: o.data,
        requests: m.deliveries,
        seconds,
        rps: m.deliveries as f64 / seconds,
        p50: us(0.5),
        p99: us(0.99),
        p999: us(0.999),
        max: m.hist.max() as f64 / 1000.0,
        client_cpu: 100.0 * m.client_cpu.as_secs_f64() / seconds,
        server_cpu: server.map(|s| 100.0 * s.as_secs_f64() / seconds),
        ..Row::default()
    })
}

/// `-t fanmem` / `fanmemput`: what `-n` publishes to `-c` bound queues (or as many
/// plain `PUT`s) cost the server; `bytes_each` is RSS growth per publish (per `-c`
/// `PUT`s), and the `STATS` memory figures come with it.
fn fan_memory(o: &Options, addrs: &[SocketAddr], puts: bool) -> Result<Row, String> {
    let before = o.server_pid.and_then(rss_kib);
    let start = Instant::now();
    let m = fanout::memory(addrs, o.clients, o.data, o.requests, o.pipeline, puts)?;
    let seconds = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let after = o.server_pid.and_then(rss_kib);
    let stats_each = m.stats_after.saturating_sub(m.stats_before) as f64 / o.requests.max(1) as f64;
    progress(
        o,
        &format!(
            "  STATS memory {} -> {} bytes: {stats_each:.0} per {} of {} bytes to {} queues",
            m.stats_before,
            m.stats_after,
            if puts { "round of PUTs" } else { "publish" },
            o.data,
            o.clients
        ),
    );
    Ok(Row {
        target: "beuss",
        test: if puts { "FANMEMPUT" } else { "FANMEM" }.to_owned(),
        clients: o.clients,
        pipeline: o.pipeline,
        data: o.data,
        requests: o.requests,
        seconds,
        rps: o.requests as f64 / seconds.max(1e-9),
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_each: before
            .zip(after)
            .map(|(b, a)| (a.saturating_sub(b) * 1024) as f64 / o.requests.max(1) as f64),
        stats_memory_before: Some(m.stats_before),
        stats_memory_after: Some(m.stats_after),
        ..Row::default()
    })
}

/// Opens `-c` connections, pings each so the server has surely accepted it, and
/// measures what they cost the server.
fn idle(o: &Options, settings: &Settings) -> Result<Row, String> {
    if let Err(e) = beuss::raise_fd_limit(o.clients) {
        eprintln!("beuss-bench: cannot raise the open-file limit: {e}");
    }
    let before = o.server_pid.and_then(rss_kib);
    let start = Instant::now();
    let mut streams = Vec::with_capacity(o.clients);
    let mut ping = Vec::new();
    settings.target.ping(&mut ping);
    for i in 0..o.clients {
        let stream = engine::connect(&settings.addrs)
            .map_err(|e| format!("connection {i} of {}: {e}", o.clients))?;
        engine::exchange(&stream, settings.target, &ping, 1)
            .map_err(|e| format!("connection {i}: {e}"))?;
        streams.push(stream);
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let after = o.server_pid.and_then(rss_kib);
    let row = Row {
        target: target_name(o),
        test: "IDLE".to_owned(),
        clients: o.clients,
        pipeline: 1,
        requests: o.clients as u64,
        seconds: elapsed,
        rps: o.clients as f64 / elapsed.max(1e-9),
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_each: before
            .zip(after)
            .map(|(b, a)| (a.saturating_sub(b) * 1024) as f64 / o.clients as f64),
        ..Row::default()
    };
    report(o, &row);
    std::thread::sleep(o.hold);
    drop(streams);
    Ok(row)
}

/// Runs the in-process subject-matching benchmark (`bench/route.rs`); it prints its
/// own lines, and gives a ROUTE row (the trie) and a SCAN row (every binding tested)
/// per size.
/// `-t localrtt`: rows `tcp`/`unix` x `PING`/`PUTGET`, latency in microseconds.
fn localrtt_rows(o: &Options, port: u16) -> Result<Vec<Row>, String> {
    let unix = o
        .unix
        .as_deref()
        .ok_or("localrtt needs the server's Unix socket: --unix PATH or BUNIX")?;
    let tcp = beuss::join_host_port(&o.host, &port.to_string());
    let per_round = (o.requests / local::ROUNDS as u64).max(1);
    let figures = local::run(&tcp, &format!("unix:{unix}"), per_round)?;
    let us = |ns: u64| ns as f64 / 1000.0;
    let mut rows = Vec::new();
    for f in figures {
        let medians = &f.round_medians;
        progress(
            o,
            &format!(
                "{} {}: median of {} round medians {:.1} us (spread {:.1}-{:.1} us)",
                f.transport,
                f.op,
                medians.len(),
                us(medians[medians.len() / 2]),
                us(medians[0]),
                us(medians[medians.len() - 1]),
            ),
        );
        let seconds = f.hist.mean() * f.count as f64 / 1e9;
        rows.push(Row {
            target: if f.transport == "tcp" {
                "beuss-tcp"
            } else {
                "beuss-unix"
            },
            test: format!("{}-{}", f.transport.to_uppercase(), f.op),
            clients: 1,
            pipeline: 1,
            data: 16,
            requests: f.count,
            seconds,
            rps: f.count as f64 / seconds.max(1e-9),
            p50: us(f.hist.value_at_quantile(0.5)),
            p99: us(f.hist.value_at_quantile(0.99)),
            p999: us(f.hist.value_at_quantile(0.999)),
            max: us(f.hist.max()),
            ..Row::default()
        });
    }
    Ok(rows)
}

fn route_rows(o: &Options) -> Result<Vec<Row>, String> {
    let pid = std::process::id();
    let figures = route::run(o.requests, &mut |line| progress(o, line), &|| rss_kib(pid))?;
    let mut rows = Vec::new();
    for f in figures {
        let row = |test: &str, lookups: u64, ns: f64| Row {
            target: "route",
            test: test.to_owned(),
            requests: lookups,
            seconds: ns * lookups as f64 / 1e9,
            rps: 1e9 / ns.max(1e-9),
            bindings: Some(f.bindings),
            ns_each: Some(ns),
            ..Row::default()
        };
        let mut trie = row("ROUTE", f.lookups, f.ns);
        trie.rss_before_kib = f.rss_before_kib;
        trie.rss_after_kib = f.rss_after_kib;
        trie.bytes_each = f
            .rss_before_kib
            .zip(f.rss_after_kib)
            .map(|(b, a)| (a.saturating_sub(b) * 1024) as f64 / f.bindings.max(1) as f64);
        rows.push(trie);
        rows.push(row("SCAN", f.scan_lookups, f.scan_ns));
    }
    Ok(rows)
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) a process has used (`/proc/PID/stat`).
fn server_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

fn progress(o: &Options, line: &str) {
    if o.format == Format::Text {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Prints a row for people as soon as it is measured.
fn report(o: &Options, r: &Row) {
    let mut line = format!("{:<8}", r.test);
    if r.test == "IDLE" {
        let _ = write!(
            line,
            " {} connections opened in {:.2} s",
            r.requests, r.seconds
        );
    } else if r.test.starts_with("FANMEM") {
        let _ = write!(
            line,
            " {} {} in {:.2} s",
            r.requests,
            if r.test == "FANMEM" {
                "publishes"
            } else {
                "rounds of PUTs"
            },
            r.seconds
        );
    } else {
        let _ = write!(
            line,
            " {:>9} req in {:>6.2} s {:>10.0} req/s   {} p50 {:.1} p99 {:.1} p99.9 {:.1} \
             max {:.1} us   cpu client {:.0}%",
            r.requests,
            r.seconds,
            r.rps,
            if r.test == "LATENCY" {
                "delivery"
            } else {
                "latency"
            },
            r.p50,
            r.p99,
            r.p999,
            r.max,
            r.client_cpu
        );
        if let Some(s) = r.server_cpu {
            let _ = write!(line, " server {s:.0}%");
        }
        if let Some(p) = r.parked {
            let _ = write!(line, ", {p:.1}% delivered to a parked GET");
        }
    }
    if let (Some(b), Some(a)) = (r.rss_before_kib, r.rss_after_kib) {
        let _ = write!(
            line,
            "\n         server RSS {:.1} MiB -> {:.1} MiB",
            b as f64 / 1024.0,
            a as f64 / 1024.0
        );
        if let Some(each) = r.bytes_each {
            let what = match r.test.as_str() {
                "IDLE" => "connection",
                "FANMEM" => "publish",
                "FANMEMPUT" => "round of PUTs",
                _ => "message",
            };
            let _ = write!(line, " ({each:.0} bytes per {what})");
        }
    }
    progress(o, &line);
}

const COLUMNS: &str = "target,test,clients,pipeline,data,requests,seconds,rps,p50_us,p99_us,\
p999_us,max_us,client_cpu_pct,server_cpu_pct,parked_pct,rss_before_kib,rss_after_kib,bytes_each,\
bindings,ns_each,stats_memory_before,stats_memory_after";

fn fields(r: &Row) -> Vec<(&'static str, String)> {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
    let int = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    let names: Vec<&str> = COLUMNS.split(',').collect();
    let values = vec![
        r.target.to_owned(),
        r.test.clone(),
        r.clients.to_string(),
        r.pipeline.to_string(),
        r.data.to_string(),
        r.requests.to_string(),
        format!("{:.3}", r.seconds),
        format!("{:.0}", r.rps),
        format!("{:.1}", r.p50),
        format!("{:.1}", r.p99),
        format!("{:.1}", r.p999),
        format!("{:.1}", r.max),
        format!("{:.0}", r.client_cpu),
        opt(r.server_cpu),
        opt(r.parked),
        int(r.rss_before_kib),
        int(r.rss_after_kib),
        opt(r.bytes_each),
        r.bindings.map_or(String::new(), |b| b.to_string()),
        opt(r.ns_each),
        int(r.stats_memory_before),
        int(r.stats_memory_after),
    ];
    names.into_iter().zip(values).collect()
}

fn csv(rows: &[Row]) -> String {
    let mut out = format!("{COLUMNS}\n");
    for r in rows {
        let values: Vec<String> = fields(r).into_iter().map(|(_, v)| v).collect();
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

fn json(rows: &[Row]) -> String {
    let objects: Vec<String> = rows
        .iter()
        .map(|r| {
            let pairs: Vec<String> = fields(r)
                .into_iter()
                .map(|(k, v)| match (k, v.as_str()) {
                    ("target" | "test", _) => format!("\"{k}\":\"{v}\""),
                    (_, "") => format!("\"{k}\":null"),
                    _ => format!("\"{k}\":{v}"),
                })
                .collect();
            format!("{{{}}}", pairs.join(","))
        })
        .collect();
    format!("[{}]\n", objects.join(",\n"))
}
