//! The journal's helper thread: it only syncs files and writes rewritten bases, so
//! that a slow disk (an SD card's sync takes tens of milliseconds) never stops the
//! event loop. Jobs run in the order they were sent; each report wakes the loop.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Work for the helper thread.
#[derive(Debug)]
pub(super) enum Job {
    /// `fdatasync` the file; records up to log position `upto` are then on disk.
    Sync { file: Arc<File>, upto: u64 },
    /// Make the next log segment ahead of time: header, then zeros up to `size`,
    /// synced, so that appending to it later changes neither its size nor its
    /// allocation and an `fdatasync` has only the data to write.
    Prepare { path: PathBuf, seq: u64, size: u64 },
    /// Write a base snapshot: to `tmp`, synced, renamed to `path`, directory synced;
    /// then the files it replaces are deleted.
    Base {
        bytes: Vec<u8>,
        tmp: PathBuf,
        path: PathBuf,
        replaces: Vec<PathBuf>,
    },
}

/// What the helper thread did.
#[derive(Debug)]
pub(super) enum Report {
    /// Records up to `upto` are on disk; the sync took `took`.
    Synced { upto: u64, took: Duration },
    /// The segment of that sequence number is ready (or could not be made; then
    /// the journal makes it itself when it needs it).
    Prepared(u64, io::Result<File>),
    /// A base was written (`Ok(bytes)`) or could not be (the old files stay).
    Based(io::Result<u64>),
    /// A sync failed: what was written may not be on disk. Never retried (after a
    /// failed fsync the kernel may have dropped the dirty pages: a retry that
    /// succeeds proves nothing).
    Failed(io::Error),
}

/// The handle the journal keeps on its helper thread.
#[derive(Debug)]
pub(super) struct Worker {
    jobs: Option<Sender<Job>>,
    reports: Receiver<Report>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread; `wake` is called after each report is sent.
    pub(super) fn start(
        name: &str,
        dir: PathBuf,
        wake: impl Fn() + Send + 'static,
    ) -> io::Result<Worker> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (report_tx, reports) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in job_rx {
                    let report = run(&dir, job);
                    if report_tx.send(report).is_err() {
                        return;
                    }
                    wake();
                }
            })?;
        Ok(Worker {
            jobs: Some(jobs),
            reports,
            thread: Some(thread),
        })
    }

    /// Queues a job; false if the thread is gone (it only ends when told to).
    pub(super) fn send(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// The next report, if one is waiting.
    pub(super) fn try_report(&self) -> Option<Report> {
        self.reports.try_recv().ok()
    }

    /// Lets the queued jobs finish, then ends the thread; returns their reports.
    pub(super) fn finish(&mut self) -> Vec<Report> {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.reports.try_iter().collect()
    }
}

fn run(dir: &Path, job: Job) -> Report {
    match job {
        Job::Sync { file, upto } => {
            let started = Instant::now();
            match file.sync_data() {
                Ok(()) => Report::Synced {
                    upto,
                    took: started.elapsed(),
                },
                Err(e) => Report::Failed(e),
            }
        }
        Job::Prepare { path, seq, size } => Report::Prepared(seq, prepare(dir, &path, seq, size)),
        Job::Base {
            bytes,
            tmp,
            path,
            replaces,
        } => Report::Based(write_base(dir, &bytes, &tmp, &path, &replaces)),
    }
}

/// Makes a preallocated segment (see [`Job::Prepare`]).
pub(super) fn prepare(dir: &Path, path: &Path, seq: u64, size: u64) -> io::Result<File> {
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let header = super::record::encode_header(super::record::SegmentKind::Log, seq);
        file.write_all(&header)?;
        let zeros = vec![0u8; 64 << 10];
        let mut left = size.saturating_sub(header.len() as u64);
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(file)
    })();
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Writes a complete file under a temporary name, syncs it, renames it into place
/// and syncs the directory: after a crash at any point either the old files or the
/// new base are there, never a partial base under the real name.
pub(super) fn write_base(
    dir: &Path,
    bytes: &[u8],
    tmp: &Path,
    path: &Path,
    replaces: &[PathBuf],
) -> io::Result<u64> {
    let result = (|| {
        let mut file = File::create(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(tmp, path)?;
        sync_dir(dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    for old in replaces {
        if let Err(e) = fs::remove_file(old)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("journal: could not delete {}: {e}", old.display());
        }
    }
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Syncs a directory's entries (a no-op where directories cannot be opened).
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
