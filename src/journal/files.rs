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
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.ends_with(".tmp") {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err(&path))?;
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
            fs::remove_file(&path).map_err(io_err(&path))?;
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
            fs::remove_file(&path).map_err(io_err(&path))?;
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
            if last_log && !has_records_after(&buf, offset) =>
        {
            let cut = (buf.len() - offset) as u64;
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

/// Whether two valid records follow each other somewhere after `offset`: then the
/// damage at `offset` is not a cut-off last write, and cutting there would throw
/// good records away. (One valid-looking record alone can be chance: a 1 in 2^32
/// checksum match in garbage; two chained ones are not.)
fn has_records_after(buf: &[u8], offset: usize) -> bool {
    (offset + 1..buf.len().saturating_sub(8)).any(|at| {
        let mut scanner = Scanner::new(buf, at);
        scanner.next().is_some() && scanner.next().is_some()
    })
}
