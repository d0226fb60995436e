//! Socket chores kept in one place: resolving and binding the listen address, socket
//! options, the open-file limit. Every failure names the call and the address.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use log::warn;
use mio::net::TcpListener;

/// Binds every address `address` resolves to (both `127.0.0.1` and `::1` for
/// `localhost`), so that clients reach the server whichever one they try first.
/// An address family the machine lacks is skipped as long as one bind succeeds.
///
/// # Errors
/// The resolver's error, or the first bind error when no address could be bound.
pub fn bind_all(address: &str) -> io::Result<Vec<TcpListener>> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {address}: {e}")))?
        .collect();
    let mut listeners = Vec::new();
    let mut first_error = None;
    let mut seen = Vec::new();
    for addr in addrs {
        if seen.contains(&addr) {
            continue;
        }
        seen.push(addr);
        // With port 0 every address would get a different port; bind the first one
        // and reuse its port for the rest so that one port number serves them all.
        let addr = match listeners.first().map(TcpListener::local_addr) {
            Some(Ok(bound)) if addr.port() == 0 => SocketAddr::new(addr.ip(), bound.port()),
            _ => addr,
        };
        match TcpListener::bind(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                let e = io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
                if listeners.is_empty() && first_error.is_none() {
                    first_error = Some(e);
                } else {
                    warn!("{e}");
                }
            }
        }
    }
    if listeners.is_empty() {
        return Err(first_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{address} resolved to no address"),
            )
        }));
    }
    Ok(listeners)
}

/// True for an address that only this machine can reach: `127.0.0.0/8`, `::1`, or
/// a loopback address in IPv4-mapped form (`::ffff:127.0.0.1`). The server has no
/// authentication, so anything else exposes every message to whoever can connect.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Raises the soft open-file limit so that `connections` clients (plus listeners and
/// the poller) fit, up to the hard limit. Returns the limit now in force.
// rlim_t is u64 on 64-bit targets and may be u32 on 32-bit ones; the conversions
// below are needed there and look useless here.
#[allow(clippy::useless_conversion)]
pub fn raise_fd_limit(connections: usize) -> io::Result<u64> {
    let wanted = connections as u64 + 64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let current = u64::from(limit.rlim_cur);
    if current >= wanted {
        return Ok(current);
    }
    let target = wanted.min(u64::from(limit.rlim_max));
    limit.rlim_cur = libc::rlim_t::try_from(target).unwrap_or(limit.rlim_max);
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(target)
}

/// Ignores SIGXFSZ, so that a write past the file-size limit (`ulimit -f`, a quota)
/// fails with an error the journal handles as a full disk, instead of the signal's
/// default action, which ends the process.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code and
    // touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// True for accept errors that mean "out of file descriptors": retrying at once
/// would spin, so the server pauses accepting for a moment instead.
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback is 127.0.0.0/8 and ::1 (also written IPv4-mapped); the wildcard and
    /// every other address are not.
    #[test]
    fn loopback_addresses() {
        for loopback in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(loopback.parse().unwrap()), "{loopback}");
        }
        for exposed in [
            "0.0.0.0",
            "::",
            "192.168.1.10",
            "10.0.0.1",
            "::ffff:192.168.1.10",
            "fe80::1",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(exposed.parse().unwrap()), "{exposed}");
        }
    }
}
