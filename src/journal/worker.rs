//! The journal's helper thread: it only syncs files and writes rewritten bases, so
//! that a slow disk (an SD card's sync takes tens of milliseconds) never stops the
//! event loop. Jobs run in the order they were sent; each report wakes the loop.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Work for the helper thread.
#[derive(Debug)]
pub(super) enum Job {
    /// `fdatasync` the file; records up to log position `upto` are then on disk.
    Sync {
        file: Arc<File>,
        upto: u64,
        /// Sync the directory first: the file is new, and its name must last too.
        dir_first: bool,
    },
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

/// Jobs for a thread and its reports, behind one lock. (A mutex and a condition
/// variable rather than `std::sync::mpsc`: the same for a few jobs a second, and
/// about 20 KB less in the static binary.)
#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    reports: VecDeque<Report>,
    /// Set when the journal closes: the thread ends once `jobs` is empty.
    closing: bool,
    /// A job is being run.
    busy: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    more: Condvar,
    /// Notified when the thread has nothing left to do.
    idle: Condvar,
}

impl Shared {
    /// The lock, even if the other side panicked while holding it: the queue holds
    /// plain data that stays consistent between operations.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handle the journal keeps on its helper thread.
#[derive(Debug)]
pub(super) struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread; `wake` is called after each report is sent.
    pub(super) fn start(
        name: &str,
        dir: PathBuf,
        wake: impl Fn() + Send + 'static,
    ) -> io::Result<Worker> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                loop {
                    let job = {
                        let mut q = theirs.lock();
                        loop {
                            if let Some(job) = q.jobs.pop_front() {
                                q.busy = true;
                                break job;
                            }
                            theirs.idle.notify_all();
                            if q.closing {
                                return;
                            }
                            q = theirs.more.wait(q).unwrap_or_else(PoisonError::into_inner);
                        }
                    };
                    let report = run(&dir, job);
                    {
                        let mut q = theirs.lock();
                        q.reports.push_back(report);
                        q.busy = false;
                    }
                    wake();
                }
            })?;
        Ok(Worker {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a job; false if the thread is gone (it only ends when told to).
    pub(super) fn send(&self, job: Job) -> bool {
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            return false;
        }
        self.shared.lock().jobs.push_back(job);
        self.shared.more.notify_one();
        true
    }

    /// Waits until every job sent so far has run (its report is then waiting).
    pub(super) fn wait_idle(&self) {
        let mut q = self.shared.lock();
        while (q.busy || !q.jobs.is_empty())
            && self.thread.as_ref().is_some_and(|t| !t.is_finished())
        {
            q = self
                .shared
                .idle
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The next report, if one is waiting.
    pub(super) fn try_report(&self) -> Option<Report> {
        self.shared.lock().reports.pop_front()
    }

    /// Lets the queued jobs finish, then ends the thread; returns their reports.
    pub(super) fn finish(&mut self) -> Vec<Report> {
        self.shared.lock().closing = true;
        self.shared.more.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.lock().reports.drain(..).collect()
    }
}

fn run(dir: &Path, job: Job) -> Report {
    match job {
        Job::Sync {
            file,
            upto,
            dir_first,
        } => {
            let started = Instant::now();
            if dir_first && let Err(e) = sync_dir(dir) {
                return Report::Failed(e);
            }
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
