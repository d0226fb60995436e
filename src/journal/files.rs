//! The data directory: file names, the lock, and loading what is on disk at start
//! (the rules are in STORAGE.md: a torn tail of the last log is cut off, damage
//! anywhere else refuses the start unless `BRECOVER=skip`).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::record::{self, HEADER_LEN, SegmentKind};
use super::replay::{Recovered, Replay};
use super::scan::{ScanEnd, Scanner};

/// Name of the lock file in the data directory.
const LOCK: &str = "lock";

/// Kinds of journal file, by suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum FileKind {
    Base,
    Log,
}

/// The path of journal file `seq` of `kind` in `dir`.
pub(super) fn path_of(dir: &Path, kind: FileKind, seq: u64) -> PathBuf {
    dir.join(match kind {
        FileKind::Base => format!("{seq:016x}.base"),
        FileKind::Log => format!("{seq:016x}.log"),
    })
}

/// The kind and sequence number of a journal file, from its path.
pub(super) fn seq_of(path: &Path) -> Option<(FileKind, u64)> {
    parse_name(path.file_name()?.to_str()?)
}

/// Reads a journal file name: its kind and sequence number.
fn parse_name(name: &str) -> Option<(FileKind, u64)> {
    let (stem, kind) = if let Some(stem) = name.strip_suffix(".log") {
        (stem, FileKind::Log)
    } else if let Some(stem) = name.strip_suffix(".base") {
        (stem, FileKind::Base)
    } else {
        return None;
    };
    if stem.len() != 16 {
        return None;
    }
    Some((kind, u64::from_str_radix(stem, 16).ok()?))
}

/// Why the journal could not be opened; the server does not start.
#[derive(Debug)]
pub enum OpenError {
    /// An I/O error on a named path.
    Io(PathBuf, io::Error),
    /// Another process holds the directory's lock.
    Locked(PathBuf),
    /// A file is damaged where a cut-off write cannot explain it.
    Damaged {
        /// The file.
        path: PathBuf,
        /// Offset of the first bad byte.
        offset: u64,
        /// What is wrong there.
        reason: String,
        /// Bytes from there to the end of the file, which would not be loaded.
        lost: u64,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            OpenError::Locked(path) => write!(
                f,
                "{} is in use by another beuss-server (its lock file is held); \
                 each server needs its own BDATADIR",
                path.display()
            ),
            OpenError::Damaged {
                path,
                offset,
                reason,
                lost,
            } => write!(
                f,
                "{} is damaged at offset {offset} ({reason}); the {lost} bytes from there \
                 on would not be loaded. Nothing was changed. To start anyway without \
                 that file, set BRECOVER=skip: it is renamed to *.corrupt and the rest \
                 is loaded (messages only it held are lost, acknowledged ones it deleted \
                 may come back)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |e| OpenError::Io(path.to_owned(), e)
}

/// Creates the directory if needed and takes its lock, which is held as long as
/// the returned file is open.
pub(super) fn lock(dir: &Path) -> Result<File, OpenError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(OpenError::Locked(dir.to_owned())),
        Err(fs::TryLockError::Error(e)) => Err(OpenError::Io(path, e)),
    }
}

/// What loading found, for the start-up log and `STATS`.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Records applied.
    pub records: u64,
    /// Bytes cut off the end of the last log (a write the crash interrupted).
    pub truncated: u64,
    /// Files set aside as `*.corrupt` (with `BRECOVER=skip`).
    pub quarantined: Vec<PathBuf>,
    /// Highest sequence number in use.
    pub last_seq: u64,
    /// Files the next base replaces (everything loaded).
    pub loaded: Vec<PathBuf>,
}

/// Reads the base and logs in `dir` in order and replays them. Leftovers of an
/// interrupted rewrite (`*.tmp`, files older than the newest base) are deleted.
pub(super) fn load(dir: &Path, skip_damaged: bool) -> Result<(Recovered, LoadReport), OpenError> {
    let mut found: Vec<(FileKind, u64, PathBuf)> = Vec::new();
    // Deleted only once the load succeeded, so that a refused start changes nothing.
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.ends_with(".tmp") {
            leftovers.push(entry.path());
            continue;
        }
        if let Some((kind, seq)) = parse_name(name) {
            found.push((kind, seq, entry.path()));
        }
    }
    let base_seq = found
        .iter()
        .filter(|f| f.0 == FileKind::Base)
        .map(|f| f.1)
        .max();
    let mut report = LoadReport::default();
    let mut files = Vec::new();
    for (kind, seq, path) in found {
        report.last_seq = report.last_seq.max(seq);
        let stale = match (kind, base_seq) {
            (FileKind::Base, Some(b)) => seq < b,
            (FileKind::Log, Some(b)) => seq < b,
            _ => false,
        };
        if stale {
            // Replaced by the newest base; its deletion was interrupted.
            leftovers.push(path);
        } else {
            files.push((seq, kind, path));
        }
    }
    // The base first, then the logs by sequence number.
    files.sort_unstable_by_key(|f| (f.0, f.1));
    // The last log that holds records is where a write may have been cut short: the
    // ones after it are segments made ahead of time (or whose header the crash cut),
    // with nothing in them.
    let mut last = files.len();
    while last > 0 && files[last - 1].1 == FileKind::Log && holds_nothing(&files[last - 1].2)? {
        last -= 1;
    }
    let last_log = last.checked_sub(1);
    let mut replay = Replay::new();
    for (i, (_, kind, path)) in files.into_iter().enumerate() {
        if i >= last && kind == FileKind::Log {
            // Nothing in it (made ahead, or cut before its header): not needed.
            leftovers.push(path);
            continue;
        }
        let last_log = Some(i) == last_log && kind == FileKind::Log;
        match load_file(&path, kind, last_log, &mut replay, &mut report) {
            Ok(()) => report.loaded.push(path),
            Err(OpenError::Damaged { .. }) if skip_damaged => {
                let mut aside = path.clone().into_os_string();
                aside.push(".corrupt");
                fs::rename(&path, &aside).map_err(io_err(&path))?;
                log::warn!(
                    "journal: {} is damaged; BRECOVER=skip: set aside as {}",
                    path.display(),
                    PathBuf::from(&aside).display()
                );
                report.quarantined.push(aside.into());
            }
            Err(e) => return Err(e),
        }
        report.files += 1;
    }
    for path in leftovers {
        fs::remove_file(&path).map_err(io_err(&path))?;
    }
    Ok((replay.finish(), report))
}

/// Whether a log file holds no record: empty, all zeros, a header cut short, or a
/// good header followed by zeros (a segment made ahead of time).
fn holds_nothing(path: &Path) -> Result<bool, OpenError> {
    let buf = fs::read(path).map_err(io_err(path))?;
    if buf.len() < HEADER_LEN {
        return Ok(true);
    }
    if buf.iter().all(|&b| b == 0) {
        return Ok(true);
    }
    if record::decode_header(&buf).is_err() {
        return Ok(false);
    }
    Ok(buf[HEADER_LEN..].iter().all(|&b| b == 0))
}

fn load_file(
    path: &Path,
    kind: FileKind,
    last_log: bool,
    replay: &mut Replay,
    report: &mut LoadReport,
) -> Result<(), OpenError> {
    let buf = fs::read(path).map_err(io_err(path))?;
    report.bytes += buf.len() as u64;
    let damaged = |offset: usize, reason: String| OpenError::Damaged {
        path: path.to_owned(),
        offset: offset as u64,
        reason,
        lost: (buf.len() - offset.min(buf.len())) as u64,
    };
    if buf.iter().all(|&b| b == 0) {
        // Created, but the crash came before its header reached the disk.
        return Ok(());
    }
    let header = record::decode_header(&buf).map_err(|e| damaged(0, format!("header: {e}")))?;
    let want = match kind {
        FileKind::Base => SegmentKind::Base,
        FileKind::Log => SegmentKind::Log,
    };
    if header.kind != want {
        return Err(damaged(0, "header names the other kind of file".into()));
    }
    let mut scanner = Scanner::new(&buf, HEADER_LEN);
    for (_, r) in scanner.by_ref() {
        replay.apply(&r);
        report.records += 1;
    }
    match scanner.end() {
        ScanEnd::Clean | ScanEnd::ZeroTail { .. } => Ok(()),
        ScanEnd::Torn { offset } | ScanEnd::Damaged { offset, .. }
            if last_log && is_cut_short(&buf, offset) =>
        {
            // Bytes cut, not counting the zeros the segment was made with (a run of
            // a sector or more at its end).
            let data_end = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            let used = if buf.len() - data_end >= SECTOR {
                data_end
            } else {
                buf.len()
            };
            let cut = used.saturating_sub(offset) as u64;
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            file.set_len(offset as u64).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            log::warn!(
                "journal: {} ends in an incomplete record (a write cut short by a crash): \
                 truncated {cut} bytes at offset {offset}",
                path.display()
            );
            report.truncated += cut;
            Ok(())
        }
        ScanEnd::Torn { offset } => Err(damaged(offset, "a record runs past the end".into())),
        ScanEnd::Damaged { offset, reason } => Err(damaged(offset, reason.to_string())),
    }
}

/// Whether the bad bytes at `offset` of the last log are the end of what a crash
/// cut short, rather than damage in the middle of good records:
/// - nothing valid follows (a torn last write, or garbage after it); or
/// - what follows comes after a run of zeros of a disk sector or more: pages the
///   OS wrote back out of order before a power cut, beyond the last sync (a copy of
///   a running server's file looks the same).
///
/// A flipped bit in the middle, with good records right after it, is damage.
fn is_cut_short(buf: &[u8], offset: usize) -> bool {
    match first_records_after(buf, offset) {
        None => true,
        Some(at) => has_zero_run(&buf[offset..at], SECTOR),
    }
}

/// Smallest run of zeros taken for a hole the OS left (a disk sector).
const SECTOR: usize = 512;

/// Where, after `offset`, the first two valid records that follow each other start.
/// (One valid-looking record alone can be chance: a 1 in 2^32 checksum match in
/// garbage; two chained ones are not.) Offsets whose length field is zero or runs
/// past the end are skipped without a scan, which keeps a zero-filled segment fast.
fn first_records_after(buf: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..buf.len().saturating_sub(8)).find(|&at| {
        let len = buf
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes) as usize;
        if len == 0 || at + 8 + len > buf.len() {
            return false;
        }
        let mut scanner = Scanner::new(buf, at);
        scanner.next().is_some() && scanner.next().is_some()
    })
}

fn has_zero_run(bytes: &[u8], run: usize) -> bool {
    let mut zeros = 0;
    for &b in bytes {
        zeros = if b == 0 { zeros + 1 } else { 0 };
        if zeros >= run {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{Record, encode, encode_header};

    /// A log segment: header, `n` one-byte PUTs; returns the bytes and where each
    /// record starts.
    fn segment(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = encode_header(SegmentKind::Log, 1).to_vec();
        let mut starts = Vec::new();
        for id in 1..=n {
            starts.push(buf.len());
            encode(
                &Record::Put {
                    queue: 0,
                    id,
                    due_ms: 0,
                    priority: 5,
                    attempt: 0,
                    charged: 0,
                    payload: b"x",
                },
                &mut buf,
            );
        }
        (buf, starts)
    }

    #[test]
    fn a_torn_last_write_is_cut_short() {
        let (mut buf, starts) = segment(5);
        let last = starts[4];
        buf.truncate(last + 10);
        assert!(is_cut_short(&buf, last));
        // The same in a segment made ahead: zeros up to its size.
        buf.resize(1 << 20, 0);
        assert!(is_cut_short(&buf, last));
    }

    #[test]
    fn a_flipped_bit_before_good_records_is_damage() {
        let (mut buf, starts) = segment(5);
        buf[starts[2] + 9] ^= 0x10;
        assert!(!is_cut_short(&buf, starts[2]));
    }

    #[test]
    fn a_hole_of_zeros_before_records_is_a_write_back_gap() {
        // Records 1-2, then a page the OS never wrote (zeros), then records 4-5
        // that it did: a power cut beyond the last sync, not damage.
        let (buf, starts) = segment(5);
        let mut holed = buf[..starts[2]].to_vec();
        holed.resize(starts[2] + 4096, 0);
        holed.extend_from_slice(&buf[starts[3]..]);
        assert!(is_cut_short(&holed, starts[2]));
        // A few zero bytes (less than a sector) are not such a gap.
        let mut short = buf[..starts[2]].to_vec();
        short.resize(starts[2] + 16, 0);
        short.extend_from_slice(&buf[starts[3]..]);
        assert!(!is_cut_short(&short, starts[2]));
    }

    /// Looking for good records after the damage skips zeros without a scan each:
    /// an 8 MiB segment made ahead is checked in one pass (this took hours when
    /// every offset scanned the zeros to the end).
    #[test]
    fn the_search_after_damage_is_linear_in_zeros() {
        let (mut buf, starts) = segment(3);
        buf.truncate(starts[2] + 5);
        buf.resize(8 << 20, 0);
        // (No clock here: a quadratic search simply never ends, and the suite's
        // time limit catches it.)
        assert_eq!(first_records_after(&buf, starts[2]), None);
    }
}
