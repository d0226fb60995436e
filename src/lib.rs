//! beuss: a tiny message-queue server, its wire protocol and a blocking Rust client.
//!
//! # Layout
//! - [`protocol`]: frames, opcodes, status and error codes, and the codec. No I/O.
//! - [`store`]: named FIFO queues held compactly in memory, waiting consumers, idle
//!   expiry and the memory cap. No I/O and no clock: callers pass `now` in.
//! - [`config`]: the server's settings, read from `B*` environment variables.
//! - [`server`]: the single-threaded `mio` event loop that ties sockets to the store.
//! - [`client`]: a blocking `std::net` client built on the same codec as the server,
//!   so the two cannot disagree about the wire.
//!
//! The binaries in `bin/` are thin wrappers around these modules.
//!
//! # Errors
//! Each layer has one small error enum with a hand-written `Display`:
//! [`protocol::ProtocolError`], [`config::ConfigError`] and [`client::Error`]. In the
//! server, anything a client causes becomes an `ERROR` reply or closes that one
//! connection; only failing to bind or to create the poller ends the process.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod client;
pub mod config;
mod conn;
mod net;
pub mod protocol;
pub mod server;
pub mod store;
#[cfg(test)]
mod test_rng;

pub use client::Client;
pub use config::Config;

/// Host the server binds and clients connect to when `BHOST` is not set.
pub const DEFAULT_HOST: &str = "localhost";

/// TCP port used when `BPORT` is not set (the Go original's port).
pub const DEFAULT_PORT: u16 = 6552;

/// `host:port`, with brackets around an IPv6 literal: the one way both the server
/// (binding `BHOST`) and clients (connecting) spell an address.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
