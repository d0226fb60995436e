//! beuss: a tiny message-queue server, its wire protocol and a blocking Rust client.
//!
//! # Layout
//! - [`protocol`]: frames, opcodes, status and error codes, and the codec. No I/O.
//! - [`client`]: a blocking `std::net` client built on the same codec as the server,
//!   so the two cannot disagree about the wire.
//! - `config`: the server's settings, read from `B*` environment variables.
//! - `journal`: the format of the files in `BDATADIR` (STORAGE.md): records, the
//!   scanner that reads them back, and replay. No I/O.
//! - `route`: subjects, patterns and the trie that matches a published subject
//!   against every binding and subscription. No I/O.
//! - `server`: the single-threaded `mio` event loop that ties sockets to the store.
//! - `auth`: the tokens of `BAUTHFILE`, compared in constant time, and the growing
//!   wait after failed attempts. No I/O but reading the file.
//! - `transport` (internal): the TCP and Unix-socket listeners and streams behind one
//!   type each.
//! - `store` (internal): named FIFO queues held compactly in memory, waiting
//!   consumers, idle expiry and the memory cap. No I/O and no clock: callers pass
//!   `now` in.
//!
//! The binaries in `bin/` are thin wrappers around these modules.
//!
//! # Features
//! - `server` (default): the `config`, `journal`, `route` and `server` modules and
//!   `beuss-server`; pulls in `mio`, `signal-hook`, `slab`, `libc`, `log`
//!   and `crc32c`; the `civil` and `logger` modules are its own.
//! - `cli` (default): the `beuss` command.
//! - `bench` (not default): `beuss-bench`, the load generator.
//!
//! A program that only talks to a server needs neither: with
//! `default-features = false` the crate is [`protocol`] and [`client`] over `bytes`
//! and `std`, and builds on Linux, macOS and Windows.
//!
//! # Errors
//! Each layer has one small error enum with a hand-written `Display`:
//! [`protocol::ProtocolError`], `config::ConfigError` and [`client::Error`]. In the
//! server, anything a client causes becomes an `ERROR` reply or closes that one
//! connection; only failing to bind or to create the poller ends the process.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod civil;
pub mod client;
pub mod protocol;

// The server side, behind the `server` feature; gated per module here so that files
// added under src/server/ or src/store/ need no attribute of their own. The
// configuration parsers (sizes, durations) are std-only and shared with the CLI.
#[cfg(feature = "server")]
pub mod auth;
#[cfg(any(feature = "server", feature = "cli"))]
pub mod config;
#[cfg(feature = "server")]
mod conn;
#[cfg(feature = "server")]
pub mod journal;
#[cfg(feature = "server")]
pub mod logger;
#[cfg(feature = "server")]
mod net;
pub mod route;
#[cfg(feature = "server")]
pub mod schedule;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
mod transport;
// Hidden rather than private: the store's API is wider than what the server uses
// today (its tests and features in progress use the rest), and private items would be
// flagged as dead code. It is not part of the crate's supported API.
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod store;
#[cfg(test)]
mod test_rng;

pub use client::Client;
#[cfg(any(feature = "server", feature = "cli"))]
pub use config::Config;
// For beuss-bench, which opens as many connections as the server accepts; not part of
// the supported API.
#[cfg(feature = "server")]
#[doc(hidden)]
pub use net::raise_fd_limit;

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
