//! The journal: how the server's state is kept in `BDATADIR` when durability is on.
//! (Module header to be merged with the codec branch's.)

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
pub use replay::{Recovered, RecoveredMessage, RecoveredQueue, Replay};
pub use scan::{ScanEnd, Scanner};
pub use writer::{Journal, JournalStats};
