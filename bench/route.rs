//! `beuss-bench -t route`: what matching one published subject costs as the number of
//! bindings grows (issue 9: "about O(number of tokens), not O(bindings)"). In-process,
//! no server: the same `beuss::route::Trie` the server routes with, against the
//! linear scan it replaces (every binding tested with `route::matches`).
//!
//! Bindings look like an application's: a first token naming one of many services
//! (a tenth as many as there are bindings), then a region, an entity and an event from
//! small sets (`svc17.eu.orders.created`). 70% are literal 3- or 4-token subjects,
//! 20% have one token replaced by `*`, 10% are a 1- to 3-token prefix and `>`. Each
//! binding has its own target (a `u32`, as a queue id would be). The subjects looked
//! up are 1,024 4-token subjects drawn from the same sets, taken in turn, so the
//! larger tries are looked up cold as they would be in a server.

use std::hint::black_box;
use std::time::Instant;

use beuss::route::{Trie, matches};

/// Bindings in each trie measured, largest first so that the first RSS reading is
/// not blurred by memory freed by an earlier trie.
const SIZES: [usize; 5] = [100_000, 10_000, 1_000, 100, 10];
/// Timed runs per size; the figure is their median.
const RUNS: usize = 7;
/// Distinct subjects looked up, in turn.
const SUBJECTS: usize = 1024;

const REGIONS: [&str; 8] = ["eu", "us", "ap", "sa", "af", "me", "cn", "oc"];
const ENTITIES: [&str; 16] = [
    "orders",
    "users",
    "carts",
    "items",
    "payments",
    "refunds",
    "invoices",
    "shipments",
    "reviews",
    "coupons",
    "stock",
    "prices",
    "returns",
    "tickets",
    "sessions",
    "emails",
];
const EVENTS: [&str; 8] = [
    "created", "updated", "deleted", "paid", "failed", "sent", "opened", "closed",
];

/// What was measured for one trie size.
#[derive(Debug)]
pub struct Figure {
    /// Bindings in the trie.
    pub bindings: usize,
    /// How many of them have a `*` token, and how many end with `>`.
    pub stars: usize,
    pub fulls: usize,
    /// Nodes the trie has.
    pub nodes: usize,
    /// `matches_into` calls per timed run.
    pub lookups: u64,
    /// Nanoseconds per `matches_into`: median, fastest and slowest run.
    pub ns: f64,
    pub ns_min: f64,
    pub ns_max: f64,
    /// Targets found per lookup, on average.
    pub matched: f64,
    /// The linear scan: lookups per run, and median nanoseconds per lookup.
    pub scan_lookups: u64,
    pub scan_ns: f64,
    /// Growth of the process's resident memory while the trie was built, in KiB
    /// (only for the first, largest, trie).
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
}

/// xorshift64*, so that every run measures the same bindings.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// The tokens of a random 4-token subject among `services` services.
fn subject_tokens(rng: &mut Rng, services: usize) -> [String; 4] {
    [
        format!("svc{}", rng.below(services)),
        REGIONS[rng.below(REGIONS.len())].to_owned(),
        ENTITIES[rng.below(ENTITIES.len())].to_owned(),
        EVENTS[rng.below(EVENTS.len())].to_owned(),
    ]
}

/// `n` patterns of the mix described at the top; returns them with the number that
/// have a `*` and the number that end with `>`.
fn patterns(n: usize, rng: &mut Rng) -> (Vec<String>, usize, usize) {
    let services = (n / 10).max(10);
    let (mut stars, mut fulls) = (0, 0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tokens = subject_tokens(rng, services).to_vec();
        let kind = rng.below(10);
        if kind == 0 {
            tokens.truncate(1 + rng.below(3));
            tokens.push(">".to_owned());
            fulls += 1;
        } else {
            tokens.truncate(3 + rng.below(2));
            if kind <= 2 {
                let at = rng.below(tokens.len());
                tokens[at] = "*".to_owned();
                stars += 1;
            }
        }
        out.push(tokens.join("."));
    }
    (out, stars, fulls)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Measures every size. `lookups` is the number of `matches_into` calls per timed
/// run; `progress` gets one line per size; `rss` reads this process's RSS in KiB.
pub fn run(
    lookups: u64,
    progress: &mut dyn FnMut(&str),
    rss: &dyn Fn() -> Option<u64>,
) -> Result<Vec<Figure>, String> {
    if lookups == 0 {
        return Err("-n 0: no lookups to time".into());
    }
    let mut figures = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
        let (patterns, stars, fulls) = patterns(n, &mut rng);
        let services = (n / 10).max(10);
        let subjects: Vec<String> = (0..SUBJECTS)
            .map(|_| subject_tokens(&mut rng, services).join("."))
            .collect();
        let before = if i == 0 { rss() } else { None };
        let mut trie = Trie::new();
        for (target, p) in patterns.iter().enumerate() {
            trie.insert(p, target as u32);
        }
        let after = if i == 0 { rss() } else { None };
        if trie.len() != n {
            return Err(format!("route: {} bindings stored of {n}", trie.len()));
        }
        let bindings: Vec<(&str, u32)> = patterns
            .iter()
            .enumerate()
            .map(|(t, p)| (p.as_str(), t as u32))
            .collect();

        let mut out = Vec::new();
        let mut times = Vec::with_capacity(RUNS);
        let mut found = 0u64;
        for _ in 0..RUNS {
            found = 0;
            let start = Instant::now();
            for k in 0..lookups {
                let subject = &subjects[k as usize % SUBJECTS];
                trie.matches_into(black_box(subject), &mut out);
                found += black_box(&out).len() as u64;
            }
            times.push(start.elapsed().as_nanos() as f64 / lookups as f64);
        }
        // The scan must find the same targets; it is slow at large sizes, so it
        // gets fewer lookups (at least 100).
        let scan_lookups = (lookups * 10 / n as u64).clamp(100, lookups);
        let mut scan_times = Vec::with_capacity(RUNS);
        let mut expected = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            for k in 0..scan_lookups {
                let subject = black_box(&subjects[k as usize % SUBJECTS]);
                expected.clear();
                expected.extend(
                    bindings
                        .iter()
                        .filter(|(p, _)| matches(p, subject))
                        .map(|&(_, t)| t),
                );
                expected.sort_unstable();
                expected.dedup();
                black_box(&expected);
            }
            scan_times.push(start.elapsed().as_nanos() as f64 / scan_lookups as f64);
        }
        for subject in &subjects {
            trie.matches_into(subject, &mut out);
            expected.clear();
            expected.extend(
                bindings
                    .iter()
                    .filter(|(p, _)| matches(p, subject))
                    .map(|&(_, t)| t),
            );
            expected.sort_unstable();
            if out != expected {
                return Err(format!(
                    "route: the trie and the scan disagree on {subject} at {n} bindings"
                ));
            }
        }
        let ns_min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let ns_max = times.iter().copied().fold(0.0, f64::max);
        let figure = Figure {
            bindings: trie.len(),
            stars,
            fulls,
            nodes: trie.node_count(),
            lookups,
            ns: median(times),
            ns_min,
            ns_max,
            matched: found as f64 / lookups as f64,
            scan_lookups,
            scan_ns: median(scan_times),
            rss_before_kib: before,
            rss_after_kib: after,
        };
        let mut line = format!(
            "ROUTE    {:>6} bindings ({} with '*', {} with '>'; {} nodes): matches_into {:.0} ns \
             (runs {:.0}-{:.0}), {:.2} targets per subject; linear scan {:.0} ns",
            figure.bindings,
            figure.stars,
            figure.fulls,
            figure.nodes,
            figure.ns,
            figure.ns_min,
            figure.ns_max,
            figure.matched,
            figure.scan_ns,
        );
        if let (Some(b), Some(a)) = (before, after) {
            line.push_str(&format!(
                "\n         RSS grew {:.1} MiB building it ({:.0} bytes per binding)",
                a.saturating_sub(b) as f64 / 1024.0,
                (a.saturating_sub(b) * 1024) as f64 / figure.bindings.max(1) as f64
            ));
        }
        progress(&line);
        figures.push(figure);
    }
    figures.sort_by_key(|f| f.bindings);
    Ok(figures)
}
