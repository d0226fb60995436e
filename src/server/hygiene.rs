//! What bounds a connection that holds a slot without using it (protocol.md 16.5):
//! the partial-frame, authentication and idle timeouts, and the cap on connections
//! per client address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::info;

use crate::conn::State;
use crate::protocol::ErrorCode;
use crate::transport::Peer;

use super::{ConnRef, Server};

/// The longest time between two checks of the timeouts: a connection is closed at
/// most this late.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest, for timeouts of a few milliseconds (tests).
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(10);

/// The key `BMAXPERADDRESS` counts `peer` under: its network (an IPv6 /64, as for
/// the failure penalties), `None` for a Unix-socket peer, which is not counted.
pub(super) fn counted_as(peer: Peer) -> Option<IpAddr> {
    peer.ip().map(crate::auth::network)
}

impl Server {
    /// The refusal text if `peer` already has `BMAXPERADDRESS` connections open
    /// (counted then in `connections_rejected`).
    pub(super) fn over_address_cap(&mut self, peer: Peer) -> Option<String> {
        let cap = self.config.max_per_address;
        let ip = counted_as(peer)?;
        if cap == 0 || (self.per_address.get(&ip).copied().unwrap_or(0) as usize) < cap {
            return None;
        }
        self.counters.connections_rejected += 1;
        self.counters.connections_rejected_address += 1;
        let n = self.counters.connections_rejected_address;
        if n.is_power_of_two() {
            info!("{peer}: refused, at BMAXPERADDRESS={cap} ({n} refused so far)");
        }
        Some(format!(
            "this address has {cap} connections open, its limit (BMAXPERADDRESS); \
             try again later"
        ))
    }

    /// A connection is gone: one fewer for its address.
    pub(super) fn forget_peer(&mut self, peer: Peer) {
        let Some(ip) = counted_as(peer) else {
            return;
        };
        if let Some(n) = self.per_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
    }

    /// How often the timeouts are checked: a quarter of the shortest one, within
    /// bounds; `None` when no timeout applies.
    fn sweep_interval(&self) -> Option<Duration> {
        let auth = self.tokens.is_some();
        [
            self.config.frame_timeout,
            self.config.idle_timeout,
            auth.then_some(self.config.frame_timeout).flatten(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| (t / 4).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL))
    }

    /// Makes sure a check is due while there are connections to check.
    pub(super) fn schedule_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none()
            && let Some(every) = self.sweep_interval()
        {
            self.next_sweep = Some(now + every);
        }
    }

    /// Closes the connections whose time ran out, each with a fatal `TIMEOUT`.
    pub(super) fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none_or(|at| at > now) {
            return;
        }
        self.next_sweep = None;
        let frame = self.config.frame_timeout;
        let idle = self.config.idle_timeout;
        let mut expired = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            // Waiting for the server (a parked receive, a REQ, a streamed payload) or
            // subscribed is not idle: the idle clock starts again from this check, so
            // a wait that just ended leaves at least three quarters of BIDLETIMEOUT.
            if !matches!(conn.state, State::Ready) || !conn.subs.is_empty() {
                conn.last_request = now;
            }
            let over = |since: Instant, limit: Option<Duration>| {
                limit.is_some_and(|l| now.saturating_duration_since(since) >= l)
            };
            // Output that does not move: the client stopped reading its replies. The
            // server then stops taking its requests, so those left in its input would
            // keep it from ever counting as idle. Replies held back for the journal
            // (none writable yet) are the server's wait, not the client's. Only
            // tracked when BIDLETIMEOUT is set, the one timeout that uses it.
            if idle.is_none() || conn.writable() == 0 {
                conn.stalled = None;
            } else if conn.stalled.is_none_or(|(sent, _)| sent != conn.sent) {
                conn.stalled = Some((conn.sent, now));
            }
            let reason = if matches!(conn.state, State::Penalized) {
                None
            } else if conn.stalled.is_some_and(|(_, since)| over(since, idle)) {
                // Before the Closing check: a closing connection whose last replies
                // are never read would otherwise keep its slot for ever.
                Some(Timeout::Unread)
            } else if matches!(conn.state, State::Closing) {
                None
            } else if conn.access.is_none() && over(conn.accepted, frame) {
                Some(Timeout::Auth)
            } else if conn.frame_since.is_some_and(|since| over(since, frame)) {
                Some(Timeout::Frame)
            } else if matches!(conn.state, State::Ready)
                && conn.subs.is_empty()
                && conn.input.is_empty()
                && over(conn.last_request, idle)
            {
                Some(Timeout::Idle)
            } else {
                None
            };
            if let Some(reason) = reason {
                expired.push((ConnRef { key, id: conn.id }, reason));
            }
        }
        for (r, reason) in expired {
            self.time_out(r, reason, now);
        }
        if !self.conns.is_empty() {
            self.schedule_sweep(now);
        }
    }

    fn time_out(&mut self, r: ConnRef, reason: Timeout, now: Instant) {
        let limit = match reason {
            Timeout::Idle | Timeout::Unread => self.config.idle_timeout,
            Timeout::Frame | Timeout::Auth => self.config.frame_timeout,
        }
        .unwrap_or_default();
        let text = match reason {
            Timeout::Idle => {
                self.counters.idle_timeouts += 1;
                format!("no request for {limit:?} (BIDLETIMEOUT)")
            }
            Timeout::Unread => {
                self.counters.idle_timeouts += 1;
                format!("no reply read for {limit:?} (BIDLETIMEOUT)")
            }
            Timeout::Frame => {
                self.counters.frame_timeouts += 1;
                format!("a request was still incomplete after {limit:?} (BFRAMETIMEOUT)")
            }
            Timeout::Auth => {
                self.counters.frame_timeouts += 1;
                format!("no AUTH within {limit:?} (BFRAMETIMEOUT)")
            }
        };
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        info!("{}: {text}; closing the connection", conn.peer);
        self.close_with(r, ErrorCode::Timeout, &text);
        if let Some(conn) = self.conn_mut(r) {
            conn.flush();
            // A client that does not read would hold the slot with its unread
            // output: what cannot be written now is dropped with the connection.
            if !conn.output.is_empty() {
                conn.broken = true;
            }
        }
        self.close_if_done(r, now);
    }
}

/// Which time ran out.
#[derive(Debug, Clone, Copy)]
enum Timeout {
    Idle,
    /// Replies waiting, none of their bytes written for `BIDLETIMEOUT`.
    Unread,
    Frame,
    Auth,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(addr: &str) -> Peer {
        Peer::Tcp(addr.parse().unwrap())
    }

    #[test]
    fn address_cap_counts_ipv6_by_its_64_and_ipv4_by_address() {
        let one = counted_as(tcp("[2001:db8:1:2:aaaa::1]:4000"));
        assert_eq!(one, counted_as(tcp("[2001:db8:1:2:bbbb::9]:5000")));
        assert_ne!(one, counted_as(tcp("[2001:db8:1:3::1]:4000")));
        let v4 = counted_as(tcp("192.0.2.7:1"));
        assert_eq!(v4, counted_as(tcp("192.0.2.7:2")));
        assert_ne!(v4, counted_as(tcp("192.0.2.8:1")));
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(v4, counted_as(tcp("[::ffff:192.0.2.7]:3")));
        assert_eq!(counted_as(Peer::Unix), None);
    }
}
