//! The journal: how the server's state is kept in `BDATADIR` when durability is on.
//!
//! Every change that must survive a restart (a queue's name, a message put, acked,
//! leased, requeued, moved or purged, the subject it was published to, a pattern
//! bound to a queue or unbound, the next message id) is appended to a log
//! segment as one self-checking [`Record`]; now and then the whole state is written
//! as a base snapshot in the same record format, and the logs it covers are deleted.
//! At start the newest base and the logs after it are read back with a [`Scanner`]
//! and applied in order to a [`Replay`], which gives the queues, messages and
//! bindings to load. Live subscriptions and request/reply addresses are never
//! written: they end with the connection, or the server.
//!
//! The byte format, what each record means, and what start-up does with a damaged
//! or cut-short file are in `STORAGE.md` at the repository's root; that document is
//! the contract, and this module implements it.
//!
//! The first three parts are pure: they work on byte slices and never touch a file,
//! a clock or the store, so every rule about untrusted disk contents is tested on
//! buffers. Nothing in them panics on any input bytes. The other three do the I/O.
//!
//! - [`record`]: the records, the segment header, CRC masking, encode and decode.
//! - [`scan`]: walks one segment's records and says how it ended.
//! - [`replay`]: applies records in order and builds what to load.
//! - `files`: the data directory, its lock, and loading it at start.
//! - `writer`: the [`Journal`] at run time: one write per loop turn, syncs,
//!   segments, rewrites.
//! - `worker`: the helper threads that sync and write bases.

mod files;
pub mod record;
pub mod replay;
pub mod scan;
mod worker;
mod writer;

pub use files::{LoadReport, OpenError};

pub use record::{
    Damage, HeaderError, Record, SegmentHeader, SegmentKind, decode, decode_header, encode,
    encode_header, encoded_len,
};
pub use replay::{Recovered, RecoveredBinding, RecoveredMessage, RecoveredQueue, Replay};
pub use scan::{ScanEnd, Scanner};
pub use writer::{Journal, JournalStats};

#[cfg(test)]
mod tests;
