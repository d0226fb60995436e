//! `-t localrtt`: the round trip of one client over loopback TCP against the same over
//! the server's Unix socket (`BUNIX`, protocol.md 16.6), one request at a time, so the
//! figure is the transport's cost and not throughput. The library's blocking client
//! drives both; rounds alternate between the two transports so that whatever else the
//! machine does falls on both alike.

use std::time::{Duration, Instant};

use beuss::Client;
use hdrhistogram::Histogram;

/// Rounds per transport; the median round and the spread of the rounds' medians
/// are reported.
pub const ROUNDS: usize = 7;

/// One transport's figures for one request kind.
#[derive(Debug)]
pub struct Figures {
    /// `tcp` or `unix`.
    pub transport: &'static str,
    /// `PING` or `PUTGET` (a 16-byte `PUT`, then the `GET` that takes it back).
    pub op: &'static str,
    /// Round trips measured, all rounds together.
    pub count: u64,
    /// Every round trip, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Each round's median, in nanoseconds.
    pub round_medians: Vec<u64>,
}

/// Measures `per_round` round trips of each kind per round, [`ROUNDS`] rounds on each
/// of `tcp` (`host:port`) and `unix` (`unix:PATH`).
///
/// # Errors
/// A connection failed, or a reply was not what the request asks for.
pub fn run(tcp: &str, unix: &str, per_round: u64) -> Result<Vec<Figures>, String> {
    let mut figures = Vec::new();
    for transport in ["tcp", "unix"] {
        for op in ["PING", "PUTGET"] {
            figures.push(Figures {
                transport,
                op,
                count: 0,
                hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                    .map_err(|e| e.to_string())?,
                round_medians: Vec::new(),
            });
        }
    }
    let connect = |addr: &str| {
        let mut c = Client::connect_to(addr).map_err(|e| format!("{addr}: {e}"))?;
        c.set_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        Ok::<Client, String>(c)
    };
    let mut clients = [connect(tcp)?, connect(unix)?];
    // Warm-up: the first requests pay for page faults and the server's first queue.
    for c in &mut clients {
        for _ in 0..1000 {
            c.ping().map_err(|e| e.to_string())?;
        }
    }
    let payload = [b'x'; 16];
    for _ in 0..ROUNDS {
        for (t, c) in clients.iter_mut().enumerate() {
            let mut ping = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| e.to_string())?;
            let mut putget = ping.clone();
            for _ in 0..per_round {
                let start = Instant::now();
                c.ping().map_err(|e| e.to_string())?;
                ping.saturating_record(start.elapsed().as_nanos() as u64);
                let start = Instant::now();
                c.put("localrtt", &payload).map_err(|e| e.to_string())?;
                let got = c.get("localrtt").map_err(|e| e.to_string())?;
                putget.saturating_record(start.elapsed().as_nanos() as u64);
                if got.as_deref() != Some(&payload[..]) {
                    return Err(format!("GET gave {got:?} after its PUT"));
                }
            }
            for (k, round) in [ping, putget].into_iter().enumerate() {
                let f = &mut figures[t * 2 + k];
                f.round_medians.push(round.value_at_quantile(0.5));
                f.count += round.len();
                f.hist.add(&round).map_err(|e| e.to_string())?;
            }
        }
    }
    for f in &mut figures {
        f.round_medians.sort_unstable();
    }
    Ok(figures)
}
