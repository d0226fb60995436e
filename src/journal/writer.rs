//! The journal at run time: one `write` per loop turn of the records the store made
//! in it, syncs on the helper thread as `BFSYNC` says, a new segment file every
//! `BSEGMENT` bytes, and a rewrite (a new base snapshot, the old files deleted) when
//! the logs have grown to twice the live data, so that disk use stays bounded.
//!
//! Log positions count the bytes of records the store made since start; the server
//! holds each reply that depends on records until [`Journal::durable`] passes them.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Fsync;

use super::files::{self, FileKind, LoadReport, OpenError};
use super::record::{self, SegmentKind};
use super::replay::Recovered;
use super::worker::{self, Job, Report, Worker};

/// The logs are rewritten into a new base once they hold more than this many
/// segments' worth of bytes (64 MiB with the default `BSEGMENT`) and more than twice
/// the live data (Redis rewrites its AOF at 100 % growth and 64 MiB too).
const REWRITE_SEGMENTS: u64 = 8;
/// Size of the file set aside in the data directory and deleted when the disk is
/// full, so that acks, expiries and moves can still be written while `PUT`s are
/// refused.
const RESERVE: u64 = 4 << 20;
/// Name of that file.
const RESERVE_FILE: &str = "reserve";
/// How often writing is tried again after the disk was full.
const DISK_FULL_RETRY: Duration = Duration::from_secs(1);
/// Threads that run syncs (see `Journal::syncers`).
const SYNC_THREADS: usize = 1;
/// Sync latencies kept for `STATS` percentiles.
const LATENCIES: usize = 1024;

/// Figures for `STATS`.
#[derive(Debug, Clone, Default)]
pub struct JournalStats {
    /// Bytes in journal files now.
    pub disk_bytes: u64,
    /// Bytes of the last base written.
    pub base_bytes: u64,
    /// Bytes written to logs since that base.
    pub log_bytes: u64,
    /// Syncs done.
    pub syncs: u64,
    /// Median and 99th percentile of the last syncs, in microseconds.
    pub sync_p50_us: u64,
    /// See `sync_p50_us`.
    pub sync_p99_us: u64,
    /// Time since the last sync finished, if there was one.
    pub since_sync: Option<Duration>,
    /// Rewrites done.
    pub rewrites: u64,
    /// Records loaded at start.
    pub recovered_records: u64,
    /// Bytes cut off a torn tail at start.
    pub truncated_bytes: u64,
    /// Times the disk was found full.
    pub disk_full: u64,
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    _lock: File,
    fsync: Fsync,
    segment_size: u64,
    /// Current log segment: sequence number, file, bytes in it.
    seq: u64,
    file: Arc<File>,
    file_len: u64,
    /// Every file in use, in load order (base first).
    files: Vec<PathBuf>,
    /// The next sequence number to give a segment.
    next_seq: u64,
    /// A segment the helper thread made ahead of time, for the next rotation.
    prepared: Option<(u64, File, PathBuf)>,
    pending: Vec<u8>,
    /// Log position written to the OS (safe from a crash of the process).
    written: u64,
    /// Log position synced (safe from a power cut).
    synced: u64,
    /// Highest position a sync was asked for.
    sync_asked: u64,
    /// In interval mode: when the next sync is due.
    sync_due: Option<Instant>,
    /// Sync threads, and whether each has a sync running. One: two syncs of one
    /// file must never overlap, since a write-back error is reported to one of
    /// them only (a second thread gained about 10 % with clients waiting for each
    /// reply, not worth that risk).
    syncers: Vec<(Worker, bool)>,
    /// Long writes (segments made ahead, bases), on a thread of their own so that
    /// they never hold a sync up.
    bulk: Worker,
    failed: Option<String>,
    /// Since when `PUT`s are refused for want of room (the next segment could not
    /// be made, or a write found the disk full).
    disk_full_since: Option<Instant>,
    /// When to try again to write records that found no room at all.
    retry_at: Option<Instant>,
    /// Whether the helper thread is making a segment ahead.
    preparing: bool,
    /// The current segment was made just now, not ahead: its first sync syncs the
    /// directory too.
    new_file: bool,
    /// The sequence number of the base being written by a rewrite, and the log
    /// bytes counted before it (back in the count if it fails).
    rewriting: Option<(u64, u64)>,
    latencies: Vec<u64>,
    last_sync: Option<Instant>,
    stats: JournalStats,
}

impl Journal {
    /// Opens the journal in `dir`: takes its lock, loads what is there, and starts a
    /// new log file. The caller restores `Recovered` into the store with its log on:
    /// the new file starts with the queue bindings and the leases that restore ended,
    /// after the files loaded, which stay until the first rewrite replaces them.
    ///
    /// # Errors
    /// The directory cannot be used, another server holds it, or a file is damaged
    /// where a cut-off write cannot explain it (see [`OpenError`]).
    pub fn open(
        dir: &Path,
        fsync: Fsync,
        segment_size: u64,
        skip_damaged: bool,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<(Journal, Recovered, LoadReport), OpenError> {
        let lock = files::lock(dir)?;
        let (recovered, report) = files::load(dir, skip_damaged)?;
        let seq = report.last_seq + 1;
        let path = files::path_of(dir, FileKind::Log, seq);
        let file = worker::prepare(dir, &path, seq, segment_size)
            .map_err(|e| OpenError::Io(path.clone(), e))?;
        let wake = Arc::new(wake);
        let wake_bulk = Arc::clone(&wake);
        let mut syncers = Vec::new();
        for _ in 0..SYNC_THREADS {
            let wake = Arc::clone(&wake);
            let worker = Worker::start("beuss-sync", dir.to_owned(), move || wake())
                .map_err(|e| OpenError::Io(dir.to_owned(), e))?;
            syncers.push((worker, false));
        }
        let bulk = Worker::start("beuss-journal", dir.to_owned(), move || wake_bulk())
            .map_err(|e| OpenError::Io(dir.to_owned(), e))?;
        let mut files = report.loaded.clone();
        files.push(path);
        let mut journal = Journal {
            dir: dir.to_owned(),
            _lock: lock,
            fsync,
            segment_size,
            seq,
            file: Arc::new(file),
            file_len: record::HEADER_LEN as u64,
            files,
            next_seq: seq + 1,
            prepared: None,
            pending: Vec::new(),
            written: 0,
            synced: 0,
            sync_asked: 0,
            sync_due: None,
            syncers,
            bulk,
            failed: None,
            disk_full_since: None,
            retry_at: None,
            preparing: false,
            new_file: false,
            rewriting: None,
            latencies: Vec::new(),
            last_sync: None,
            stats: JournalStats {
                // The files loaded count toward the next rewrite, which replaces them.
                log_bytes: report.bytes,
                recovered_records: report.records,
                truncated_bytes: report.truncated,
                ..JournalStats::default()
            },
        };
        journal.make_reserve();
        journal.prepare_next();
        Ok((journal, recovered, report))
    }

    /// Log position up to which replies may leave: written to the OS, and synced
    /// too with `BFSYNC=always`.
    pub fn durable(&self) -> u64 {
        match self.fsync {
            Fsync::Always => self.synced,
            _ => self.written,
        }
    }

    /// Log position written to the OS.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Why the journal stopped accepting changes, if it did.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Whether the disk is full: `PUT`s are refused until it has room again.
    pub fn disk_full(&self) -> bool {
        self.disk_full_since.is_some()
    }

    /// Whether records are waiting for a retry after the disk was full.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes `records` (what the store made this loop turn, ending at log position
    /// `end`) with one `write`, then asks for a sync if the policy says so.
    ///
    /// `bindings` appends a QUEUE record for every queue number in use: each new
    /// segment starts with them (STORAGE.md section 7).
    pub fn write(
        &mut self,
        records: &mut Vec<u8>,
        end: u64,
        now: Instant,
        bindings: &dyn Fn(&mut Vec<u8>),
    ) {
        if self.failed.is_some() {
            // Nothing is acknowledged any more; records of timers are dropped.
            records.clear();
            return;
        }
        if self.pending.is_empty() {
            // The usual case: take the buffer rather than copy it.
            std::mem::swap(&mut self.pending, records);
        } else {
            self.pending.append(records);
        }
        if self.pending.is_empty() || self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        self.retry_at = None;
        if self.file_len + self.pending.len() as u64 > self.segment_size
            && self.file_len > record::HEADER_LEN as u64
            // On a full disk only a segment made ahead is worth a try.
            && (self.prepared.is_some() || self.disk_full_since.is_none())
            && let Err(e) = self.rotate(bindings)
        {
            // Segments are a soft size: the current one takes the records instead.
            if is_full(&e) {
                self.enter_disk_full(now);
            } else {
                self.fail(format!("creating a segment in {}: {e}", self.dir.display()));
                return;
            }
        }
        if let Err(e) = self.append() {
            if !is_full(&e) {
                self.fail(format!("writing {}: {e}", self.dir.display()));
                return;
            }
            // A file size limit (EFBIG) is per file: a new segment takes the records.
            if e.kind() == io::ErrorKind::FileTooLarge
                && self.file_len > record::HEADER_LEN as u64
                && self.rotate(bindings).is_ok()
                && self.append().is_ok()
            {
                self.written = end;
                self.after_write(now);
                return;
            }
            // Give the records the reserve's room, and try once more.
            let first = self.disk_full_since.is_none();
            self.enter_disk_full(now);
            if !first || self.append().is_err() {
                // Still no room: they wait for the next try (and so do their replies).
                self.retry_at = Some(now + DISK_FULL_RETRY);
                return;
            }
        }
        self.written = end;
        self.after_write(now);
    }

    /// Asks for a sync as the policy says, after a write.
    fn after_write(&mut self, now: Instant) {
        match self.fsync {
            Fsync::Always => self.ask_sync(),
            Fsync::Every(every) => {
                if self.sync_due.is_none() {
                    self.sync_due = Some(now + every);
                }
            }
            Fsync::Never => {}
        }
    }

    fn append(&mut self) -> io::Result<()> {
        let mut file = &*self.file;
        file.seek(SeekFrom::Start(self.file_len))?;
        if let Err(e) = file.write_all(&self.pending) {
            // Cut off whatever part went in, so that the file ends on a record.
            let _ = self.file.set_len(self.file_len);
            return Err(e);
        }
        self.file_len += self.pending.len() as u64;
        self.stats.log_bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// The disk is full: `PUT`s are refused (the server asks [`Journal::disk_full`])
    /// and the reserve file is deleted to make room for the other records.
    fn enter_disk_full(&mut self, now: Instant) {
        if self.disk_full_since.is_none() {
            self.stats.disk_full += 1;
            log::error!(
                "journal: the disk is full ({}): PUT is refused with FULL until it has \
                 room; acks, leases and moves go on",
                self.dir.display()
            );
            let _ = std::fs::remove_file(self.dir.join(RESERVE_FILE));
        }
        self.disk_full_since = Some(now);
    }

    /// Stops accepting changes for good (until a restart): an error was seen after
    /// which what is on disk cannot be known.
    fn fail(&mut self, why: String) {
        if self.failed.is_none() {
            log::error!(
                "journal: {why}. Changes are refused from now on (ERROR STORAGE) and \
                 replies waiting for the disk are not sent: restart the server once the \
                 disk is sound"
            );
            self.failed = Some(why);
        }
    }

    fn ask_sync(&mut self) {
        if self.written <= self.sync_asked {
            return;
        }
        let Some((worker, busy)) = self.syncers.iter_mut().find(|(_, busy)| !busy) else {
            return;
        };
        let job = Job::Sync {
            file: Arc::clone(&self.file),
            upto: self.written,
            dir_first: std::mem::take(&mut self.new_file),
        };
        if worker.send(job) {
            *busy = true;
            self.sync_asked = self.written;
        } else {
            self.fail("the journal's sync thread is gone".into());
        }
    }

    /// Starts a new segment file. The old one is synced first, here and now (once
    /// per segment), so that every log but the last is complete on disk: a torn
    /// record can then only be at the end of the last one, and damage anywhere else
    /// is real damage.
    fn rotate(&mut self, bindings: &dyn Fn(&mut Vec<u8>)) -> io::Result<()> {
        // On the sync thread, so that no two syncs of one file ever overlap (an error
        // is reported to one of them only), and waited for.
        if self.written > self.synced {
            let job = Job::Sync {
                file: Arc::clone(&self.file),
                upto: self.written,
                dir_first: std::mem::take(&mut self.new_file),
            };
            if self.syncers[0].0.send(job) {
                self.syncers[0].1 = true;
                self.sync_asked = self.sync_asked.max(self.written);
            }
        }
        for (worker, _) in &self.syncers {
            worker.wait_idle();
        }
        self.collect();
        if let Some(why) = &self.failed {
            return Err(io::Error::other(why.clone()));
        }
        let (seq, file, path) = match self.prepared.take() {
            Some(next) => next,
            None => {
                // None made ahead (the helper thread is busy with a base, or the
                // disk is full): a plain file, whose name the next sync makes last.
                let seq = self.next_seq;
                self.next_seq += 1;
                let path = files::path_of(&self.dir, FileKind::Log, seq);
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                file.write_all(&record::encode_header(SegmentKind::Log, seq))?;
                self.new_file = true;
                (seq, file, path)
            }
        };
        self.seq = seq;
        self.file = Arc::new(file);
        self.file_len = record::HEADER_LEN as u64;
        self.files.push(path);
        if self.prepared.is_none() && !self.preparing {
            self.prepare_next();
        }
        let mut head = Vec::new();
        bindings(&mut head);
        let mut f = &*self.file;
        f.seek(SeekFrom::Start(self.file_len))?;
        f.write_all(&head)?;
        self.file_len += head.len() as u64;
        Ok(())
    }

    /// Asks the helper thread to make the segment after this one.
    fn prepare_next(&mut self) {
        self.preparing = true;
        let seq = self.next_seq;
        self.next_seq += 1;
        let job = Job::Prepare {
            path: files::path_of(&self.dir, FileKind::Log, seq),
            seq,
            size: self.segment_size,
        };
        if !self.bulk.send(job) {
            self.fail("the journal's helper thread is gone".into());
        }
    }

    /// Whether the logs have grown enough for a rewrite, given the live data.
    pub fn wants_rewrite(&self, live_bytes: u64) -> bool {
        // On a full disk a rewrite is what frees room: then it starts as soon as the
        // logs hold twice the live data, whatever their size.
        let floor = if self.disk_full_since.is_some() {
            self.segment_size
        } else {
            REWRITE_SEGMENTS * self.segment_size
        };
        self.rewriting.is_none()
            && self.failed.is_none()
            && self.stats.log_bytes > floor.max(live_bytes.saturating_mul(2))
    }

    /// Starts a rewrite: a new segment begins now, and the returned buffer (a
    /// base header, to which the caller appends the store's snapshot at this moment,
    /// taken after every earlier record was written) goes to
    /// [`Journal::finish_rewrite`]. `None` if no segment could be started.
    pub fn begin_rewrite(
        &mut self,
        now: Instant,
        bindings: &dyn Fn(&mut Vec<u8>),
    ) -> Option<Vec<u8>> {
        if let Err(e) = self.rotate(bindings) {
            log::warn!("journal: rewrite not started: {e}");
            if is_full(&e) {
                self.enter_disk_full(now);
            }
            return None;
        }
        Some(record::encode_header(SegmentKind::Base, self.seq).to_vec())
    }

    /// Hands the base begun by [`Journal::begin_rewrite`] to the helper thread,
    /// which writes it at the current sequence number and then deletes the older
    /// files.
    pub fn finish_rewrite(&mut self, bytes: Vec<u8>) {
        let path = files::path_of(&self.dir, FileKind::Base, self.seq);
        let current = files::path_of(&self.dir, FileKind::Log, self.seq);
        let replaces: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|p| **p != current)
            .cloned()
            .collect();
        self.rewriting = Some((self.seq, self.stats.log_bytes));
        self.stats.log_bytes = 0;
        let tmp = tmp_path(&path);
        if !self.bulk.send(Job::Base {
            bytes,
            tmp,
            path,
            replaces,
        }) {
            self.fail("the journal's helper thread is gone".into());
        }
    }

    /// Waits for the helper thread's long jobs (a base being written) to end.
    pub fn wait_for_base(&mut self) {
        self.bulk.wait_idle();
        self.collect();
    }

    /// When the loop must come back to the journal: a sync due in interval mode, or a
    /// write to try again after the disk was full.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retry = self.retry_at.filter(|_| !self.pending.is_empty());
        let room_check = self.disk_full_since.map(|at| at + DISK_FULL_RETRY);
        [self.sync_due, retry, room_check]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs what is due at `now` (an interval sync).
    pub fn tick(&mut self, now: Instant) {
        if let Some(since) = self.disk_full_since
            && now >= since + DISK_FULL_RETRY
        {
            // PUTs again once there is room for the reserve and a segment more.
            let wanted = RESERVE + self.segment_size;
            if free_space(&self.dir).is_some_and(|free| free >= wanted) && self.make_reserve() {
                log::info!("journal: the disk has room again; PUT is accepted again");
                self.disk_full_since = None;
                if self.prepared.is_none() && !self.preparing {
                    self.prepare_next();
                }
            } else {
                self.disk_full_since = Some(now);
            }
        }
        if let Some(due) = self.sync_due
            && due <= now
        {
            self.sync_due = None;
            self.ask_sync();
            if self.written > self.sync_asked {
                // The sync thread is busy: try again shortly rather than wait for
                // the next write, which may never come.
                self.sync_due = Some(now + Duration::from_millis(1));
            }
        }
    }

    /// Takes the helper thread's reports; returns whether the durable mark moved.
    pub fn collect(&mut self) -> bool {
        let before = self.durable();
        for i in 0..self.syncers.len() {
            while let Some(report) = self.syncers[i].0.try_report() {
                self.syncers[i].1 = false;
                self.take(report);
            }
        }
        while let Some(report) = self.bulk.try_report() {
            self.take(report);
        }
        if matches!(self.fsync, Fsync::Always) {
            // A sync finished while more was written: one sync covers it all.
            self.ask_sync();
        }
        self.durable() != before
    }

    fn take(&mut self, report: Report) {
        match report {
            Report::Synced { upto, took } => {
                if upto > 0 {
                    self.synced = self.synced.max(upto);
                    self.stats.syncs += 1;
                    self.last_sync = Some(Instant::now());
                    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                    if self.latencies.len() == LATENCIES {
                        self.latencies.remove(0);
                    }
                    self.latencies.push(us);
                }
            }
            Report::Prepared(seq, Ok(file)) => {
                self.preparing = false;
                let path = files::path_of(&self.dir, FileKind::Log, seq);
                if seq > self.seq && self.prepared.is_none() {
                    self.prepared = Some((seq, file, path));
                } else {
                    // A rotation could not wait for it and made its own.
                    drop(file);
                    let _ = std::fs::remove_file(path);
                }
            }
            Report::Prepared(seq, Err(e)) => {
                self.preparing = false;
                if is_full(&e) {
                    // The next segment has no room: refuse PUTs now, while the
                    // current one still has room for acks and the like.
                    self.enter_disk_full(Instant::now());
                } else {
                    log::warn!("journal: segment {seq} not made ahead: {e}");
                }
            }
            Report::Based(Ok(bytes)) => {
                let Some((base, _)) = self.rewriting.take() else {
                    return;
                };
                self.stats.rewrites += 1;
                self.stats.base_bytes = bytes;
                self.files.retain(|p| {
                    files::seq_of(p).is_some_and(|(kind, seq)| kind == FileKind::Log && seq >= base)
                });
                self.files
                    .insert(0, files::path_of(&self.dir, FileKind::Base, base));
                log::debug!("journal: rewritten: base of {bytes} bytes");
            }
            Report::Based(Err(e)) => {
                if let Some((_, before)) = self.rewriting.take() {
                    self.stats.log_bytes += before;
                }
                if is_full(&e) {
                    self.enter_disk_full(Instant::now());
                }
                log::warn!("journal: rewrite failed ({e}); the old files are kept");
            }
            Report::Failed(e) => self.fail(format!("syncing {}: {e}", self.dir.display())),
        }
    }

    /// Figures for `STATS`.
    pub fn stats(&self) -> JournalStats {
        let mut stats = self.stats.clone();
        // Everything in the directory: the journal, segments made ahead, the reserve.
        stats.disk_bytes = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let pick =
            |q: usize| sorted.get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)));
        stats.sync_p50_us = pick(50).copied().unwrap_or(0);
        stats.sync_p99_us = pick(99).copied().unwrap_or(0);
        stats.since_sync = self.last_sync.map(|at| at.elapsed());
        stats
    }

    /// Writes what is pending and syncs everything, waiting for it: at shutdown.
    pub fn close(
        &mut self,
        records: &mut Vec<u8>,
        end: u64,
        now: Instant,
        bindings: &dyn Fn(&mut Vec<u8>),
    ) {
        self.write(records, end, now, bindings);
        for i in 0..self.syncers.len() {
            for report in self.syncers[i].0.finish() {
                self.take(report);
            }
        }
        for report in self.bulk.finish() {
            self.take(report);
        }
        if !matches!(self.fsync, Fsync::Never) && self.failed.is_none() {
            match self.file.sync_data() {
                Ok(()) => self.synced = self.written,
                Err(e) => self.fail(format!("final sync of {}: {e}", self.dir.display())),
            }
        }
    }

    /// Sets the reserve file aside (best effort: without it a full disk stops acks
    /// too, until it has room).
    fn make_reserve(&self) -> bool {
        let path = self.dir.join(RESERVE_FILE);
        let result = (|| {
            let mut f = File::create(&path)?;
            let zeros = vec![0u8; 64 << 10];
            let mut left = RESERVE;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            Ok::<(), io::Error>(())
        })();
        match result {
            Ok(()) => true,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                log::debug!("journal: no reserve file: {e}");
                false
            }
        }
    }
}

/// Bytes free for an unprivileged user on the file system of `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs writes only into the struct we pass; the path is a valid
        // NUL-terminated string for the duration of the call.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        #[allow(clippy::useless_conversion)]
        Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.to_owned().into_os_string();
    tmp.push(".tmp");
    tmp.into()
}
