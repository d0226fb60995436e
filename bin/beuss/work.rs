//! `beuss WORK`: the job runner. Takes messages on lease, runs a command for each
//! with the payload on its standard input, and settles each lease by the command's
//! exit status.
//!
//! # Shape
//! One connection, used from two threads: this module's main loop writes every
//! request (`LEASE`, `ACK`, `NACK`, `TOUCH`) on the stream, and a reader thread reads
//! the replies with a [`beuss::Client`] on a clone of it. One `LEASE` for as many
//! messages as there are free slots stays parked on the server; settles sent behind
//! it are carried out at once (protocol.md 13.7), only their replies wait. Replies
//! come in request order, so the main loop records what it sent in a queue that the
//! reader pops. Everything that happens (a reply, a job's end, a signal, a lost
//! connection) reaches the main loop as an [`Event`] on one channel; its only other
//! wake-ups are job deadlines and `TOUCH` times, as the channel's timeout.
//!
//! Leases are attached to the connection: if `WORK` dies, the server returns its
//! messages at once. A job's process is watched by a thread of its own with
//! `waitid(WNOWAIT)`, so that a kill never hits a reaped (and reused) pid.

use beuss::client::Stream;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use beuss::Client;
use beuss::client::Error as ClientError;
use beuss::protocol::{LeaseRef, MAX_LEASE_MS, NEVER_DEAD, Pairs, Request, Response, SettleResult};
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, duration_value, number_value, queue_name, show_duration};
use crate::conn::{REPLY_TIMEOUT, Server, connect_stream};
use crate::on::{BACKOFF_MAX, BACKOFF_START, breaks_connection};
use crate::output::{EXIT_ERROR, Failure};

/// The verb table's row for `WORK`.
pub const VERB: Verb = Verb {
    name: "WORK",
    summary: "beuss WORK <queue> -- COMMAND    run COMMAND for each message (job runner)",
    help: HELP,
    arity: (2, usize::MAX),
    takes: "a queue name, then -- and the command to run",
    new: || Box::<Work>::default(),
};

/// Pause before leasing again after the server answered a `LEASE` with `FULL`.
const FULL_PAUSE: Duration = Duration::from_millis(200);
const HELP: &str = "\
Usage: beuss WORK <queue> [options] -- COMMAND [ARGS...]

Runs COMMAND once for each message of <queue>, with the message on its
standard input and BEUSS_QUEUE, BEUSS_ID and BEUSS_ATTEMPT in its environment
(its stdout and stderr are WORK's). Messages are taken on lease: exit status 0
acknowledges the message (it is deleted); anything else gives it back to be
run again after a backoff of min(BACKOFF * 2^(attempt-1), 10m): 1s, 2s, 4s...
by default, the same for every job (no jitter). After --max-deliveries
failures the message goes to <queue>.dead (see beuss DEAD). A job may run
twice (WORK or its machine dies after the command succeeded but before the
ACK reached the server): make jobs idempotent.

  -c, --concurrency N   run up to N commands at once (default 1, at most 4096)
  --timeout DURATION    kill a command (its whole process group, SIGKILL)
                        running longer than DURATION and give the message
                        back with the backoff (default: no limit)
  --lease DURATION      lease length (default: the server's, 30s); a command
                        running longer than half of it has its lease extended
                        (TOUCH) every half lease, so long jobs are not handed
                        to anyone else
  --max-deliveries N    dead-letter a message after N failed runs (default:
                        the server's, 20)
  --backoff DURATION    BACKOFF above (default 1s; 0 retries at once)

Durations: 500ms, 30s, 10m, 2h. The options go before --.

If WORK is killed, or its connection breaks, the server gives its messages
back at once (their running commands still finish). When the server goes
away, WORK says so on stderr and reconnects with a backoff of 100 ms
doubling up to 5 s. SIGTERM or SIGINT (Ctrl-C): take no more messages, let
the running commands finish and settle them, then exit 0; a second signal
kills the running commands and gives their messages back without counting
the attempt. Stopping can take up to 2 s more (the wait for new messages
the server is holding must end first).

Exit codes: 0 stopped by SIGTERM or SIGINT, 1 error (COMMAND cannot be
started, the server refused a request), 2 usage, 3 cannot connect at start.

Example: beuss WORK jobs -c 4 --timeout 5m -- ./resize.sh
";

/// How long the parked `LEASE` waits before it is renewed: what bounds how long
/// `WORK` takes to stop once its last command has finished.
const LEASE_WAIT: Duration = Duration::from_secs(2);

/// Longest backoff between two runs of a failing message.
const BACKOFF_CAP: Duration = Duration::from_secs(600);

/// Most commands at once.
const MAX_CONCURRENCY: u64 = 4096;

/// How often the reader thread wakes while nothing is outstanding.
const READ_TICK: Duration = Duration::from_secs(5);

/// `WORK`'s options.
struct Work {
    concurrency: usize,
    timeout: Option<Duration>,
    lease: Option<Duration>,
    max_deliveries: u16,
    backoff: Duration,
}

impl Default for Work {
    fn default() -> Work {
        Work {
            concurrency: 1,
            timeout: None,
            lease: None,
            max_deliveries: 0,
            backoff: Duration::from_secs(1),
        }
    }
}

impl Command for Work {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        let forever = Duration::from_secs(u64::from(u32::MAX));
        match option.arg() {
            Arg::Short('c') | Arg::Long("concurrency") => {
                self.concurrency = number_value(parser, option, 1, MAX_CONCURRENCY)? as usize;
            }
            Arg::Long("timeout") => {
                let timeout = duration_value(parser, option, forever)?;
                if timeout.is_zero() {
                    return Err(Failure::usage("--timeout must be longer than 0"));
                }
                self.timeout = Some(timeout);
            }
            Arg::Long("lease") => {
                let most = Duration::from_millis(MAX_LEASE_MS.into());
                let lease = duration_value(parser, option, most)?;
                if lease < Duration::from_millis(10) {
                    return Err(Failure::usage("--lease must be at least 10ms"));
                }
                self.lease = Some(lease);
            }
            Arg::Long("max-deliveries") => {
                let n = number_value(parser, option, 1, u64::from(NEVER_DEAD) - 1)?;
                self.max_deliveries = n as u16;
            }
            Arg::Long("backoff") => self.backoff = duration_value(parser, option, BACKOFF_CAP)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = queue_name(&args[0])?.to_owned();
        let command = args[1..].to_vec();
        Runner::start(addr, queue, command, *self)?.run()
    }
}

/// Delay before a failed message is run again: `backoff * 2^(attempt - 1)`, at most
/// [`BACKOFF_CAP`].
fn retry_delay(backoff: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(30);
    backoff
        .checked_mul(1 << doublings)
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP)
}

/// A request written, waiting for its reply.
enum Sent {
    Lease,
    Ack(Vec<LeaseRef>),
    Nack(Vec<LeaseRef>),
    Touch(Vec<LeaseRef>),
}

/// What the main loop hears about.
enum Event {
    /// A reply on connection `link`.
    Leased {
        link: u64,
        jobs: Vec<(LeaseRef, Vec<u8>)>,
    },
    /// The parked `LEASE` ended without a message.
    Empty { link: u64 },
    /// Results of a settle request.
    Settled {
        link: u64,
        sent: Sent,
        results: Vec<Option<SettleResult>>,
    },
    /// Connection `link` is gone.
    Lost { link: u64, failure: Failure },
    /// A command ended.
    Done {
        lease: LeaseRef,
        result: io::Result<ExitStatus>,
    },
    /// SIGTERM or SIGINT.
    Signal,
}

/// Requests written on a connection and not yet answered, oldest first, with when
/// they were written.
type Pending = Arc<Mutex<VecDeque<(Sent, Instant)>>>;

/// The connection as the main loop writes to it.
struct Link {
    /// Tells its events from a previous connection's.
    number: u64,
    stream: Stream,
    pending: Pending,
    /// A `LEASE` is outstanding.
    parked: bool,
}

/// The process of one job, shared with the thread that waits for it (`SERVE`'s
/// too).
#[derive(Default)]
pub struct Proc {
    /// Its pid (and process group) once spawned.
    pid: Option<i32>,
    /// It has exited (not yet reaped, or reaped): no more kills.
    exited: bool,
    /// Kill it as soon as it exists.
    kill: bool,
}

/// Why a job's command was killed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Killed {
    Timeout,
    Stop,
}

/// A running job.
struct Job {
    /// The connection its lease belongs to.
    link: u64,
    deadline: Option<Instant>,
    next_touch: Instant,
    proc: Arc<Mutex<Proc>>,
    killed: Option<Killed>,
}

/// The state of a `WORK` run.
struct Runner {
    addr: String,
    queue: String,
    command: Vec<OsString>,
    options: Work,
    /// Lease length asked for.
    lease: Duration,
    /// `None` while disconnected.
    link: Option<Link>,
    links_made: u64,
    /// When to try connecting again, and the pause after that.
    reconnect: Option<(Instant, Duration)>,
    jobs: HashMap<LeaseRef, Job>,
    /// Signals received.
    signals: u32,
    /// Why the run ends in failure, once something made it stop.
    failure: Option<Failure>,
    events: Receiver<Event>,
    sender: Sender<Event>,
}

impl Runner {
    /// Connects (not retried: a wrong address fails at once), checks the server has
    /// leases, and starts listening for signals.
    fn start(
        addr: &str,
        queue: String,
        command: Vec<OsString>,
        options: Work,
    ) -> Result<Runner, Failure> {
        let (sender, events) = mpsc::channel();
        let (stream, server) = connect_stream(addr, REPLY_TIMEOUT)?;
        let lease = lease_length(addr, &server, options.lease)?;
        watch_signals(sender.clone())?;
        let mut runner = Runner {
            addr: addr.to_owned(),
            queue,
            command,
            options,
            lease,
            link: None,
            links_made: 0,
            reconnect: None,
            jobs: HashMap::new(),
            signals: 0,
            failure: None,
            events,
            sender,
        };
        runner.attach(stream)?;
        Ok(runner)
    }

    /// Makes `stream` the connection, with its reader thread.
    fn attach(&mut self, stream: Stream) -> Result<(), Failure> {
        let lost = |e: io::Error| Failure::new(EXIT_ERROR, format!("{}: {e}", self.addr));
        let read_half = stream.try_clone().map_err(lost)?;
        read_half.set_read_timeout(Some(READ_TICK)).map_err(lost)?;
        let client = Client::from_stream(read_half).map_err(|e| Failure::client(&self.addr, &e))?;
        self.links_made += 1;
        let pending = Pending::default();
        let reader = Reader {
            number: self.links_made,
            client,
            pending: Arc::clone(&pending),
            events: self.sender.clone(),
            addr: self.addr.clone(),
        };
        std::thread::spawn(move || reader.run());
        self.link = Some(Link {
            number: self.links_made,
            stream,
            pending,
            parked: false,
        });
        Ok(())
    }

    /// The main loop; returns when stopped by a signal (or a fatal failure) and every
    /// job has ended and been settled.
    fn run(mut self) -> Result<(), Failure> {
        loop {
            self.take_more();
            if self.finished() {
                break;
            }
            let now = Instant::now();
            let wake = self.next_wake(now);
            let event = match wake {
                Some(at) => self.events.recv_timeout(at.saturating_duration_since(now)),
                None => self
                    .events
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match event {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                // Unreachable: the runner holds a sender itself.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.timers(Instant::now());
        }
        // Dropping the link closes the connection; nothing is leased on it now.
        self.failure.map_or(Ok(()), Err)
    }

    /// True once stopping and nothing is left to wait for.
    fn finished(&self) -> bool {
        let stopping = self.signals > 0 || self.failure.is_some();
        let quiet = match &self.link {
            None => true,
            Some(link) => !link.parked && lock(&link.pending).is_empty(),
        };
        stopping && self.jobs.is_empty() && quiet
    }

    /// Parks a `LEASE` for the free slots, unless one is parked or WORK is stopping.
    fn take_more(&mut self) {
        if self.signals > 0 || self.failure.is_some() {
            return;
        }
        let free = self.options.concurrency.saturating_sub(self.jobs.len());
        let Some(link) = &self.link else { return };
        if link.parked || free == 0 {
            return;
        }
        let request = Request::Lease {
            queue: &self.queue,
            wait_ms: LEASE_WAIT.as_millis() as u32,
            max: free.min(usize::from(u16::MAX)) as u16,
            lease_ms: self.lease.as_millis() as u32,
            max_deliveries: self.options.max_deliveries,
            detached: false,
        };
        if self.write(encode(&request), Sent::Lease)
            && let Some(link) = &mut self.link
        {
            link.parked = true;
        }
    }

    /// Writes one request and records it; on failure the link is dropped (its reader
    /// reports why). False if nothing was written.
    fn write(&mut self, frame: Result<Vec<u8>, Failure>, sent: Sent) -> bool {
        let frame = match frame {
            Ok(frame) => frame,
            Err(failure) => {
                self.fail(failure);
                return false;
            }
        };
        let Some(link) = &mut self.link else {
            return false;
        };
        lock(&link.pending).push_back((sent, Instant::now()));
        if let Err(e) = link.stream.write_all(&frame) {
            eprintln!("beuss: lost the connection to {}: {e}", self.addr);
            let _ = link.stream.shutdown(std::net::Shutdown::Both);
            self.disconnected();
            return false;
        }
        true
    }

    /// The earliest job deadline, `TOUCH` time or reconnection time.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let jobs = self.jobs.values().flat_map(|job| {
            let touch =
                (self.link.as_ref().map(|l| l.number) == Some(job.link)).then_some(job.next_touch);
            let deadline = job.deadline.filter(|_| job.killed.is_none());
            touch.into_iter().chain(deadline)
        });
        let reconnect = self.reconnect.map(|(at, _)| at);
        jobs.chain(reconnect).min().map(|at| at.max(now))
    }

    fn handle(&mut self, event: Event) {
        let current = self.link.as_ref().map(|l| l.number);
        match event {
            Event::Leased { link, jobs } if Some(link) == current => {
                self.unpark();
                let (start, give_back): (Vec<_>, Vec<_>) = jobs
                    .into_iter()
                    .partition(|_| self.signals == 0 && self.failure.is_none());
                for (lease, payload) in start {
                    self.spawn(lease, payload);
                }
                let give_back: Vec<LeaseRef> = give_back.into_iter().map(|(l, _)| l).collect();
                if !give_back.is_empty() {
                    self.nack(give_back, Duration::ZERO, true);
                }
            }
            Event::Empty { link } if Some(link) == current => self.unpark(),
            Event::Settled {
                link,
                sent,
                results,
            } if Some(link) == current => {
                warn_unsettled(&sent, &results);
            }
            Event::Lost { link, failure } if Some(link) == current => {
                eprintln!("beuss: {}", failure.message);
                if failure.incompatible {
                    self.fail(failure);
                }
                self.disconnected();
            }
            Event::Done { lease, result } => self.done(lease, result),
            Event::Signal => {
                self.signals += 1;
                if self.signals == 1 {
                    eprintln!(
                        "beuss: stopping: taking no more messages; {} running command{} \
                         will finish (signal again to stop them now)",
                        self.jobs.len(),
                        if self.jobs.len() == 1 { "" } else { "s" }
                    );
                } else {
                    eprintln!("beuss: stopping now: killing the running commands");
                    for job in self.jobs.values_mut() {
                        kill(&job.proc);
                        job.killed.get_or_insert(Killed::Stop);
                    }
                }
            }
            // Events of a connection already given up.
            _ => {}
        }
    }

    fn unpark(&mut self) {
        if let Some(link) = &mut self.link {
            link.parked = false;
        }
    }

    /// Stops after the running jobs, with `failure` as the outcome.
    fn fail(&mut self, failure: Failure) {
        self.failure.get_or_insert(failure);
    }

    /// The connection is gone: the server has returned every message leased on it.
    fn disconnected(&mut self) {
        if self.link.take().is_some() && self.signals == 0 && self.failure.is_none() {
            self.reconnect = Some((Instant::now() + BACKOFF_START, BACKOFF_START));
        }
    }

    /// Deadlines (kill), `TOUCH`es, and reconnection.
    fn timers(&mut self, now: Instant) {
        let current = self.link.as_ref().map(|l| l.number);
        let mut touch = Vec::new();
        let half = self.lease / 2;
        for (lease, job) in &mut self.jobs {
            if job.killed.is_none() && job.deadline.is_some_and(|d| d <= now) {
                kill(&job.proc);
                job.killed = Some(Killed::Timeout);
            }
            if Some(job.link) == current && job.next_touch <= now {
                touch.push(*lease);
                job.next_touch = now + half;
            }
        }
        if !touch.is_empty() {
            let request = Request::Touch {
                queue: &self.queue,
                lease_ms: self.lease.as_millis() as u32,
                pairs: Pairs::List(&touch),
            };
            self.write(encode(&request), Sent::Touch(touch.clone()));
        }
        if let Some((at, pause)) = self.reconnect
            && at <= now
        {
            self.reconnect = None;
            if self.signals > 0 || self.failure.is_some() {
                return;
            }
            match connect_stream(&self.addr, REPLY_TIMEOUT) {
                Ok((stream, _)) => match self.attach(stream) {
                    Ok(()) => eprintln!("beuss: reconnected to {}", self.addr),
                    Err(failure) => self.fail(failure),
                },
                Err(failure) if failure.incompatible => self.fail(failure),
                Err(failure) => {
                    let next = (pause * 2).min(BACKOFF_MAX);
                    eprintln!(
                        "beuss: {}; retrying in {:.1} s",
                        failure.message,
                        next.as_secs_f64()
                    );
                    self.reconnect = Some((Instant::now() + next, next));
                }
            }
        }
    }

    /// Starts the command for one message.
    fn spawn(&mut self, lease: LeaseRef, payload: Vec<u8>) {
        let now = Instant::now();
        let proc = Arc::new(Mutex::new(Proc::default()));
        let job = Job {
            link: self.links_made,
            deadline: self.options.timeout.map(|t| now + t),
            next_touch: now + self.lease / 2,
            proc: Arc::clone(&proc),
            killed: None,
        };
        self.jobs.insert(lease, job);
        let mut command = std::process::Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .env("BEUSS_QUEUE", &self.queue)
            .env("BEUSS_ID", lease.id.to_string())
            .env("BEUSS_ATTEMPT", lease.attempt.to_string())
            .stdin(Stdio::piped())
            // Its own process group: a timeout kills what it started too, and
            // Ctrl-C reaches WORK alone, which decides what the commands get.
            .process_group(0);
        let events = self.sender.clone();
        std::thread::spawn(move || {
            let result = run_command(command, payload, &proc, &mut |_| {});
            let _ = events.send(Event::Done { lease, result });
        });
    }

    /// A job ended: settle its lease by how.
    fn done(&mut self, lease: LeaseRef, result: io::Result<ExitStatus>) {
        let Some(job) = self.jobs.remove(&lease) else {
            return;
        };
        let name = format!("job {}:{}", lease.id, lease.attempt);
        if self.link.as_ref().map(|l| l.number) != Some(job.link) {
            eprintln!(
                "beuss: {name} ended after its connection was lost; the server had \
                 already given its message back"
            );
            return;
        }
        let delay = retry_delay(self.options.backoff, lease.attempt);
        match (result, job.killed) {
            (_, Some(Killed::Stop)) => {
                eprintln!("beuss: {name} stopped; its message goes back uncounted");
                self.nack(vec![lease], Duration::ZERO, true);
            }
            (_, Some(Killed::Timeout)) => {
                eprintln!(
                    "beuss: {name} timed out after {} and was killed; retry in {}",
                    show_duration(self.options.timeout.unwrap_or_default()),
                    show_duration(delay)
                );
                self.nack(vec![lease], delay, false);
            }
            (Ok(status), None) if status.success() => {
                let request = Request::Ack {
                    queue: &self.queue,
                    pairs: Pairs::List(&[lease]),
                };
                self.write(encode(&request), Sent::Ack(vec![lease]));
            }
            (Ok(status), None) => {
                eprintln!(
                    "beuss: {name} failed ({status}); retry in {}",
                    show_duration(delay)
                );
                self.nack(vec![lease], delay, false);
            }
            (Err(e), None) => {
                self.fail(Failure::new(
                    EXIT_ERROR,
                    format!("cannot run {:?}: {e}", self.command[0].to_string_lossy()),
                ));
                eprintln!("beuss: cannot run the command: {e}; stopping");
                self.nack(vec![lease], Duration::ZERO, true);
            }
        }
    }

    fn nack(&mut self, leases: Vec<LeaseRef>, delay: Duration, no_charge: bool) {
        for chunk in leases.chunks(beuss::protocol::MAX_SETTLE_PAIRS) {
            let request = Request::Nack {
                queue: &self.queue,
                delay_ms: delay.as_millis() as u32,
                dead: false,
                no_charge,
                pairs: Pairs::List(chunk),
            };
            self.write(encode(&request), Sent::Nack(chunk.to_vec()));
        }
    }
}

/// `request` as a frame (queue names were checked before anything was sent).
fn encode(request: &Request<'_>) -> Result<Vec<u8>, Failure> {
    let mut frame = Vec::new();
    request
        .encode(&mut frame)
        .map_err(|e| Failure::new(EXIT_ERROR, format!("cannot encode a request: {e}")))?;
    Ok(frame)
}

/// The lease to ask for: `asked`, or the server's default; checked against its cap.
fn lease_length(addr: &str, server: &Server, asked: Option<Duration>) -> Result<Duration, Failure> {
    let limits = server.leases(addr)?;
    let most = Duration::from_millis(limits.max_lease_ms.into());
    match asked {
        Some(lease) if lease > most => Err(Failure::usage(format!(
            "--lease {} is longer than this server allows ({})",
            show_duration(lease),
            show_duration(most)
        ))),
        Some(lease) => Ok(lease),
        None => Ok(Duration::from_millis(limits.default_lease_ms.into())),
    }
}

/// Says which settles did not take, and what that means for the job.
fn warn_unsettled(sent: &Sent, results: &[Option<SettleResult>]) {
    let (verb, leases) = match sent {
        Sent::Ack(l) => ("ACK", l),
        Sent::Nack(l) => ("NACK", l),
        Sent::Touch(l) => ("TOUCH", l),
        Sent::Lease => return,
    };
    for (lease, result) in leases.iter().zip(results) {
        if *result == Some(SettleResult::Ok) {
            continue;
        }
        let what = match result {
            Some(SettleResult::Stale) => "STALE: its lease had ended",
            _ => "NOT_FOUND",
        };
        eprintln!(
            "beuss: {verb} of job {}:{} was {what}; the message may be run again",
            lease.id, lease.attempt
        );
    }
}

/// Kills a job's process group, unless it has exited (its pid may then be reused).
pub fn kill(proc: &Mutex<Proc>) {
    let mut proc = lock(proc);
    proc.kill = true;
    if let Some(pid) = proc.pid.filter(|_| !proc.exited) {
        // SAFETY: kill() on a process group we created, whose leader is not reaped.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// Runs one command to its end: spawns it, hands the child to `with_child` (which
/// may take its output pipes), feeds it the payload from a thread of its own (a
/// command that does not read its input must not block anything), and waits.
/// (`with_child` is a `dyn` so that WORK and SERVE share one copy of this.)
pub fn run_command(
    mut command: std::process::Command,
    payload: Vec<u8>,
    proc: &Mutex<Proc>,
    with_child: &mut dyn FnMut(&mut std::process::Child),
) -> io::Result<ExitStatus> {
    let mut child = command.spawn()?;
    with_child(&mut child);
    let pid = child.id() as i32;
    {
        let mut state = lock(proc);
        state.pid = Some(pid);
        if state.kill {
            // SAFETY: as in kill(): the child is not reaped yet.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            // A command that exits without reading its input is not an error.
            let _ = stdin.write_all(&payload);
        });
    }
    // Wait without reaping, so that a kill in between cannot reach a reused pid.
    loop {
        // SAFETY: waitid into a zeroed siginfo we own.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            break; // child.wait() below reports what is wrong
        }
    }
    lock(proc).exited = true;
    child.wait()
}

/// Locks `m`, even if a thread panicked while holding it (the data is plain state).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends an [`Event::Signal`] for every SIGTERM and SIGINT, from a thread reading
/// the pipe the signal handler writes to (the handler itself does nothing else).
fn watch_signals(events: Sender<Event>) -> Result<(), Failure> {
    let cannot = |e: io::Error| Failure::new(EXIT_ERROR, format!("cannot watch signals: {e}"));
    let (mut read, write) = UnixStream::pair().map_err(cannot)?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let end = write.try_clone().map_err(cannot)?;
        signal_hook::low_level::pipe::register(signal, end).map_err(cannot)?;
    }
    std::thread::spawn(move || {
        let mut buf = [0; 16];
        loop {
            match read.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    for _ in 0..n {
                        if events.send(Event::Signal).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    Ok(())
}

/// Reads one connection's replies and turns each into an [`Event`].
struct Reader {
    number: u64,
    client: Client,
    pending: Pending,
    events: Sender<Event>,
    addr: String,
}

impl Reader {
    fn run(mut self) {
        let failure = loop {
            match self.next() {
                Ok(Some(event)) => {
                    if self.events.send(event).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(failure) => break failure,
            }
        };
        let _ = self.events.send(Event::Lost {
            link: self.number,
            failure,
        });
    }

    /// The next reply as an event; `None` when the read timed out harmlessly.
    fn next(&mut self) -> Result<Option<Event>, Failure> {
        let link = self.number;
        let addr = self.addr.clone();
        let response = match self.client.recv() {
            Ok(response) => response,
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // Silence is fine while nothing is owed; a reply overdue is a dead link.
                let overdue = lock(&self.pending)
                    .front()
                    .is_some_and(|(_, at)| at.elapsed() > LEASE_WAIT + REPLY_TIMEOUT);
                if overdue {
                    return Err(Failure::client(&addr, &ClientError::Io(e)));
                }
                return Ok(None);
            }
            Err(e)
                if e.is_full()
                    && lock(&self.pending)
                        .front()
                        .is_some_and(|(sent, _)| matches!(sent, Sent::Lease)) =>
            {
                // The server holds too much in flight (protocol.md 13.11): the jobs
                // running now will free room; ask again in a moment.
                lock(&self.pending).pop_front();
                std::thread::sleep(FULL_PAUSE);
                return Ok(Some(Event::Empty { link }));
            }
            Err(e) => {
                let mut failure = Failure::client(&addr, &e);
                // A refused request: reconnecting would not help.
                failure.incompatible = !breaks_connection(&e);
                return Err(failure);
            }
        };
        let Some((sent, _)) = lock(&self.pending).pop_front() else {
            return Err(Failure::not_beuss(format!(
                "{addr} sent a reply nobody asked for"
            )));
        };
        Ok(Some(match (sent, response) {
            (Sent::Lease, Response::Leased(deliveries)) => Event::Leased {
                link,
                jobs: deliveries
                    .iter()
                    .map(|d| (d.lease, d.payload.to_vec()))
                    .collect(),
            },
            (Sent::Lease, Response::Empty) => Event::Empty { link },
            (sent @ (Sent::Ack(_) | Sent::Nack(_) | Sent::Touch(_)), Response::Settled(s)) => {
                Event::Settled {
                    link,
                    sent,
                    results: s.iter().collect(),
                }
            }
            (_, _) => {
                return Err(Failure::not_beuss(format!(
                    "{addr} answered a request with a reply of another kind"
                )));
            }
        }))
    }
}
