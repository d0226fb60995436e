//! Who may use the server: the tokens of `BAUTHFILE`, checked in constant time, and
//! the growing wait after failed attempts from one address (protocol.md 16). No I/O
//! but reading the token file, and no clock: callers pass `now` in.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::protocol::MAX_TOKEN;

/// Shortest token the file may hold: 16 bytes of a random hex or base64 string are
/// far past guessing at the rate failed attempts are allowed.
pub const MIN_TOKEN: usize = 16;

/// What an accepted token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every request.
    ReadWrite,
    /// Only requests that look (protocol.md 16.4).
    ReadOnly,
}

/// The tokens the server accepts. `Debug` shows how many, never the tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Access)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Parses a token file (protocol.md 16.8): one token per line, optionally
    /// followed by `rw` or `ro`; blank lines and `#` comments skipped.
    ///
    /// # Errors
    /// What is wrong and on which line; the text never contains a token.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let token = words.next().unwrap_or_default();
            let access = match words.next() {
                None | Some("rw") => Access::ReadWrite,
                Some("ro") => Access::ReadOnly,
                Some(_) => {
                    return Err(format!(
                        "line {n}: after the token only \"rw\" or \"ro\" may follow"
                    ));
                }
            };
            if words.next().is_some() {
                return Err(format!(
                    "line {n}: more than a token and an access word (tokens hold no blanks)"
                ));
            }
            if token.len() < MIN_TOKEN || token.len() > MAX_TOKEN {
                return Err(format!(
                    "line {n}: a token is {} bytes; it must be {MIN_TOKEN} to {MAX_TOKEN}",
                    token.len()
                ));
            }
            entries.push((token.as_bytes().to_vec(), access));
        }
        if entries.is_empty() {
            return Err("the file holds no token, so no client could connect".to_owned());
        }
        Ok(Tokens { entries })
    }

    /// Reads and parses the token file at `path`.
    ///
    /// # Errors
    /// The file cannot be read, is not UTF-8, or is not a valid token file; the text
    /// names the path.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("BAUTHFILE {shown}: cannot read: {e}"))?;
        Tokens::parse(&text).map_err(|e| format!("BAUTHFILE {shown}: {e}"))
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no token (never after a successful parse).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The access `token` gives, if it is one of these.
    ///
    /// Every token is compared, each in time that depends only on the lengths, so the
    /// time taken tells nothing of where a guess first goes wrong, nor which token it
    /// came close to.
    pub fn check(&self, token: &[u8]) -> Option<Access> {
        let mut found = None;
        for (known, access) in &self.entries {
            if constant_time_eq(known, token) {
                found = Some(*access);
            }
        }
        found
    }
}

/// Compares two byte strings without an early exit on the first difference: every
/// byte of the longer one is looked at whatever the contents, and lengths are
/// compared the same way.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    // black_box: keep the optimiser from turning the loop back into an early exit.
    std::hint::black_box(diff) == 0
}

/// The wait before the answer to a second failure from one address; it doubles with
/// each further one.
pub const FIRST_PENALTY: Duration = Duration::from_millis(100);
/// The longest wait.
pub const MAX_PENALTY: Duration = Duration::from_secs(10);
/// Failures from an address are forgotten once it has had none for this long.
pub const PENALTY_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most, so that failures from many addresses cannot grow
/// the server's memory without bound.
pub const MAX_REMEMBERED: usize = 4096;

/// Failed attempts per client address (`None`: the Unix socket), and the wait each
/// new failure earns (protocol.md 16.2).
#[derive(Debug, Default)]
pub struct Penalties {
    failures: HashMap<Option<IpAddr>, (u32, Instant)>,
}

impl Penalties {
    /// Records a failure from `addr` at `now`; returns how long to wait before
    /// answering it.
    pub fn fail(&mut self, addr: Option<IpAddr>, now: Instant) -> Duration {
        let addr = addr.map(network);
        if self.failures.len() >= MAX_REMEMBERED && !self.failures.contains_key(&addr) {
            self.forget_old(now);
            if self.failures.len() >= MAX_REMEMBERED {
                // Still full of recent failures: start over rather than grow. The
                // waits of those addresses begin again from nothing, a cost only to
                // whoever floods the server from thousands of addresses.
                self.failures.clear();
            }
        }
        let entry = self.failures.entry(addr).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= PENALTY_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        penalty(entry.0)
    }

    /// Drops the addresses with no failure for [`PENALTY_MEMORY`].
    pub fn forget_old(&mut self, now: Instant) {
        self.failures
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < PENALTY_MEMORY);
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// True when no failure is remembered.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The network an address is counted under: an IPv6 address by its /64, since one
/// host is commonly given a whole /64 and could otherwise start afresh from each of
/// its addresses; an IPv4 address (or IPv4-mapped) as itself. The failure penalties
/// and `BMAXPERADDRESS` both count by it.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The wait for the `n`th failure in a row from one address: none for the first,
/// then [`FIRST_PENALTY`] doubling up to [`MAX_PENALTY`].
pub fn penalty(n: u32) -> Duration {
    if n <= 1 {
        return Duration::ZERO;
    }
    let doublings = (n - 2).min(16);
    FIRST_PENALTY
        .saturating_mul(1 << doublings)
        .min(MAX_PENALTY)
}

/// Lets one log line through per interval and counts the ones held back, so that a
/// flood of failed attempts cannot flood the log.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last one)` if a line may be written at `now`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef";
    const B: &str = "fedcba9876543210-and-more";

    #[test]
    fn parses_tokens_access_and_comments() {
        let text = format!("# tokens\n\n  {A}\n{B}   ro\n  # {A} not this\n{A}x rw\n");
        let tokens = Tokens::parse(&text).unwrap();
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens.check(A.as_bytes()), Some(Access::ReadWrite));
        assert_eq!(tokens.check(B.as_bytes()), Some(Access::ReadOnly));
        assert_eq!(
            tokens.check(format!("{A}x").as_bytes()),
            Some(Access::ReadWrite)
        );
        for wrong in [
            "",
            "0123456789abcde",
            "0123456789abcdeF",
            "0123456789abcdef0",
        ] {
            assert_eq!(tokens.check(wrong.as_bytes()), None, "{wrong:?}");
        }
        // Debug never shows a token.
        assert!(!format!("{tokens:?}").contains(A));
    }

    #[test]
    fn refuses_bad_files_without_showing_tokens() {
        for (text, line) in [
            ("short-token\n", "line 1"),
            (&format!("{A}\n{B} admin\n") as &str, "line 2"),
            (&format!("\n\n{A} ro extra\n"), "line 3"),
        ] {
            let e = Tokens::parse(text).unwrap_err();
            assert!(e.starts_with(line), "{e}");
            assert!(
                !e.contains(A) && !e.contains(B) && !e.contains("short-token"),
                "{e}"
            );
        }
        assert!(Tokens::parse("# only a comment\n\n").is_err());
        let long = "x".repeat(MAX_TOKEN + 1);
        assert!(Tokens::parse(&long).is_err());
        assert!(Tokens::parse(&"x".repeat(MAX_TOKEN)).is_ok());
    }

    #[test]
    fn constant_time_compare_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
    }

    #[test]
    fn penalties_grow_per_address_and_are_forgotten() {
        let t0 = Instant::now();
        let mut p = Penalties::default();
        let a: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let b: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        assert_eq!(p.fail(a, t0), Duration::ZERO);
        assert_eq!(p.fail(a, t0), Duration::from_millis(100));
        assert_eq!(p.fail(a, t0), Duration::from_millis(200));
        assert_eq!(p.fail(a, t0), Duration::from_millis(400));
        // Another address starts from nothing; the Unix socket is one address.
        assert_eq!(p.fail(b, t0), Duration::ZERO);
        assert_eq!(p.fail(None, t0), Duration::ZERO);
        assert_eq!(p.fail(None, t0), Duration::from_millis(100));
        for _ in 0..40 {
            p.fail(a, t0);
        }
        assert_eq!(p.fail(a, t0), MAX_PENALTY);
        // Quiet for the memory time: forgotten.
        let later = t0 + PENALTY_MEMORY;
        assert_eq!(p.fail(a, later), Duration::ZERO);
        p.forget_old(later + Duration::from_secs(1));
        assert_eq!(
            p.len(),
            1,
            "only the address that failed at `later` is left"
        );
    }

    #[test]
    fn ipv6_addresses_of_one_network_share_their_penalty() {
        let t0 = Instant::now();
        let mut p = Penalties::default();
        let a: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::10".parse().unwrap();
        assert_eq!(p.fail(Some(a), t0), Duration::ZERO);
        assert_eq!(p.fail(Some(b), t0), FIRST_PENALTY, "same /64");
        assert_eq!(p.fail(Some(other), t0), Duration::ZERO, "another /64");
        let v4: IpAddr = "10.0.0.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        assert_eq!(p.fail(Some(v4), t0), Duration::ZERO);
        assert_eq!(
            p.fail(Some(mapped), t0),
            FIRST_PENALTY,
            "mapped is the IPv4 address"
        );
    }

    #[test]
    fn penalties_stay_bounded() {
        let t0 = Instant::now();
        let mut p = Penalties::default();
        for i in 0..(MAX_REMEMBERED as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            p.fail(Some(ip), t0);
            assert!(p.len() <= MAX_REMEMBERED);
        }
    }

    #[test]
    fn log_limit_lets_one_line_through_per_interval() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(Duration::from_secs(1));
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_millis(10)), None);
        assert_eq!(l.allow(t0 + Duration::from_millis(900)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(l.allow(t0 + Duration::from_secs(3)), Some(0));
    }

    #[test]
    fn penalty_curve() {
        assert_eq!(penalty(0), Duration::ZERO);
        assert_eq!(penalty(1), Duration::ZERO);
        assert_eq!(penalty(2), Duration::from_millis(100));
        assert_eq!(penalty(8), Duration::from_millis(6400));
        assert_eq!(penalty(9), MAX_PENALTY);
        assert_eq!(penalty(u32::MAX), MAX_PENALTY);
    }
}
