//! `beuss SERVE`: answer requests (`REQ`) with a command's output.
//!
//! # Shape
//! `SERVE` binds the subject onto a queue and works that queue as `WORK` does, one
//! request at a time: it takes each request on lease with its metadata (reply
//! address, subject), runs the command with the request on its standard input,
//! sends the command's standard output as the reply, then acknowledges the request;
//! a command that fails gets its request given back (`NACK`).
//!
//! Requests come only through the bound queue, never through a subscription: with
//! both, every request would reach `SERVE` twice; through a queue, several `SERVE`s
//! on one queue share the requests (each is answered once), and a request whose
//! `SERVE` dies is delivered again to the next.
//!
//! The main thread waits in `LEASE`; while a command runs, it waits on a
//! [`Mailbox`] for the command's end or a signal, and `TOUCH`es the lease every
//! half lease. (A mutex and a condition variable rather than a channel: the
//! channel's code would be instantiated again for this one type.)

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use beuss::Client;
use beuss::client::{Envelope, LeaseOptions, NackOptions};
use beuss::protocol::{MAX_LEASE_MS, NEVER_DEAD};
use lexopt::{Arg, Parser};

use crate::args::{Command, Opt, Verb, duration_value, number_value, pattern, queue_name};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::on::{breaks_connection, reconnect_with_backoff};
use crate::output::{EXIT_ERROR, Failure, write_stdout};
use crate::signals::on_signals;
use crate::work::{Proc, kill, lock, run_command};

/// The verb table's row for `SERVE`.
pub const VERB: Verb = Verb {
    name: "SERVE",
    summary: "beuss SERVE <subject> -- CMD     answer requests with the output of CMD",
    help: HELP,
    arity: (2, usize::MAX),
    takes: "a subject, then -- and the command to run",
    new: || Box::<Serve>::default(),
};

/// How long one `LEASE` waits on the server: what bounds how long `SERVE` takes to
/// stop when no request comes.
const LEASE_WAIT: Duration = Duration::from_secs(2);

const HELP: &str = "\
Usage: beuss SERVE <subject> [--queue QUEUE] [options] -- COMMAND [ARGS...]

Answers the requests sent to <subject> (beuss REQ, or any client's request):
binds <subject> onto QUEUE (default: a queue named <subject> itself), then
takes the requests from it one at a time and runs COMMAND for each, with the
request on its standard input and BEUSS_SUBJECT (the subject the request was
sent to), BEUSS_QUEUE, BEUSS_ID and BEUSS_ATTEMPT in its environment. What
COMMAND writes to standard output (up to BMAXMESSAGESIZE) is the reply; its
stderr is SERVE's. <subject> may be a pattern: SERVE 'svc.*' answers svc.a
and svc.b.

  --queue QUEUE         the queue to bind and take requests from
  --timeout DURATION    kill COMMAND (its process group) after DURATION and
                        give the request back (default: no limit)
  --lease DURATION      lease of each request (default: the server's, 30s);
                        extended every half lease while COMMAND runs
  --max-deliveries N    a request whose COMMAND failed N times goes to
                        QUEUE.dead (default: the server's, 20)
  --unbind              remove the binding when SERVE stops (by default it
                        stays, so that requests wait in QUEUE for the next
                        SERVE instead of failing with no responders)

Exit status 0: the output is sent as the reply and the request acknowledged.
Anything else: no reply; the request is given back (NACK) at once, to be run
again (by this SERVE or another on QUEUE) until --max-deliveries. A request
whose requester has stopped waiting is still run; its reply reaches nobody
(SERVE says so on stderr). A message in QUEUE without a reply address (PUB,
PUT) runs COMMAND too, its output going to SERVE's standard output.

Requests are taken from the queue only, not through a subscription: several
SERVEs on the same QUEUE share the requests (one answers each), SERVEs on
different queues bound to the subject each answer (the first reply wins), and
a request whose SERVE dies is delivered again. While no SERVE runs, requests
wait in the bound queue until their requester's timeout.

SIGTERM or SIGINT: take no more requests, finish the running one, then exit 0
(within about 2 s when idle); a second signal kills COMMAND and gives its
request back uncounted. If the server goes away, SERVE reconnects with a
backoff of 100 ms doubling up to 5 s.

Exit codes: 0 stopped by a signal, 1 error (COMMAND cannot be started, the
server refused a request), 2 usage, 3 cannot connect at start.

Example: beuss SERVE svc.upper -- tr a-z A-Z &
         echo hello | beuss REQ svc.upper      # prints HELLO
";

/// `SERVE`'s options.
#[derive(Default)]
struct Serve {
    queue: Option<String>,
    timeout: Option<Duration>,
    lease: Option<Duration>,
    max_deliveries: u16,
    unbind: bool,
}

impl Command for Serve {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        match option.arg() {
            Arg::Long("queue") => {
                let value = parser
                    .value()
                    .map_err(|_| Failure::usage("--queue needs a queue name"))?;
                self.queue = Some(queue_name(&value)?.to_owned());
            }
            Arg::Long("timeout") => {
                let forever = Duration::from_secs(u64::from(u32::MAX));
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
            Arg::Long("unbind") => self.unbind = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let subject = pattern(&args[0])?.to_owned();
        let queue = match &self.queue {
            Some(queue) => queue.clone(),
            None => queue_name(&args[0])?.to_owned(),
        };
        let command = args[1..].to_vec();
        Server::start(addr, subject, queue, command, *self)?.run()
    }
}

/// How a command ended: its exit status, its output, and how many bytes of output
/// were cut.
type Ended = (io::Result<ExitStatus>, Vec<u8>, u64);

/// What the signal watcher and the command's thread tell the main loop.
#[derive(Default)]
struct Mailbox {
    /// SIGTERM and SIGINT received so far.
    signals: u32,
    /// The running command's end, once it has ended.
    ended: Option<Ended>,
}

/// The mailbox and the condition variable that announces each change to it.
type Shared = Arc<(Mutex<Mailbox>, Condvar)>;

/// Puts something in the mailbox and wakes the main loop.
fn post(shared: &Shared, change: impl FnOnce(&mut Mailbox)) {
    change(&mut lock(&shared.0));
    shared.1.notify_all();
}

/// A running `SERVE`.
struct Server {
    addr: String,
    subject: String,
    queue: String,
    command: Vec<OsString>,
    options: Serve,
    lease: Duration,
    /// Longest reply the server keeps: the command's output is cut to it.
    max_reply: usize,
    client: Client,
    /// Signals seen by the main loop.
    signals: u32,
    mailbox: Shared,
}

/// Reply timeout of `SERVE`'s connection: a `LEASE` waits on the server first.
fn reply_within() -> Duration {
    LEASE_WAIT.saturating_add(REPLY_TIMEOUT)
}

impl Server {
    /// Connects (not retried), checks the server, binds, and listens for signals.
    fn start(
        addr: &str,
        subject: String,
        queue: String,
        command: Vec<OsString>,
        options: Serve,
    ) -> Result<Server, Failure> {
        // Signals first: one that comes while starting stops SERVE at its first turn.
        let mailbox = Shared::default();
        let watched = Arc::clone(&mailbox);
        on_signals(move || post(&watched, |m| m.signals += 1))?;
        let (mut client, server) = connect(addr, reply_within())?;
        server.fanout(addr)?;
        let limits = server.leases(addr)?;
        let lease = match options.lease {
            Some(lease) if lease.as_millis() > u128::from(limits.max_lease_ms) => {
                return Err(Failure::usage(format!(
                    "--lease is longer than this server allows ({} ms)",
                    limits.max_lease_ms
                )));
            }
            Some(lease) => lease,
            None => Duration::from_millis(limits.default_lease_ms.into()),
        };
        client
            .bind(&subject, &queue)
            .map_err(|e| Failure::client(addr, &e))?;
        eprintln!("beuss: serving {subject} from queue {queue}");
        Ok(Server {
            addr: addr.to_owned(),
            subject,
            queue,
            command,
            options,
            lease,
            max_reply: server.max_message_size as usize,
            client,
            signals: 0,
            mailbox,
        })
    }

    /// Takes and answers requests until a signal.
    fn run(mut self) -> Result<(), Failure> {
        while self.signals == 0 {
            let options = LeaseOptions {
                lease: Some(self.lease),
                max_deliveries: self.options.max_deliveries,
                detached: false,
            };
            let taken = self
                .client
                .lease_with_meta(&self.queue, 1, LEASE_WAIT, options);
            self.note_signals();
            match taken {
                Ok(requests) => {
                    for request in requests {
                        self.answer(&request)?;
                    }
                }
                Err(e) if breaks_connection(&e) => {
                    self.reconnect(&Failure::client(&self.addr, &e))?
                }
                Err(e) => return Err(Failure::client(&self.addr, &e)),
            }
        }
        if self.options.unbind {
            self.client
                .unbind(&self.subject, &self.queue)
                .map_err(|e| Failure::client(&self.addr, &e))?;
        }
        Ok(())
    }

    /// Counts the signals that came in meanwhile.
    fn note_signals(&mut self) {
        self.signals = lock(&self.mailbox.0).signals;
    }

    /// The connection broke: connect again (with a backoff) and bind again.
    fn reconnect(&mut self, failure: &Failure) -> Result<(), Failure> {
        eprintln!("beuss: {}; reconnecting", failure.message);
        loop {
            self.client = reconnect_with_backoff(&self.addr, reply_within())?;
            match self.client.bind(&self.subject, &self.queue) {
                Ok(_) => {
                    eprintln!("beuss: reconnected to {}", self.addr);
                    return Ok(());
                }
                Err(e) if breaks_connection(&e) => {
                    eprintln!(
                        "beuss: {}; reconnecting",
                        Failure::client(&self.addr, &e).message
                    );
                }
                Err(e) => return Err(Failure::client(&self.addr, &e)),
            }
        }
    }

    /// Runs the command for one request and settles it by how it ended.
    fn answer(&mut self, request: &Envelope) -> Result<(), Failure> {
        let name = format!("request {}:{}", request.id(), request.attempt());
        let proc = Arc::new(Mutex::new(Proc::default()));
        self.spawn(request, Arc::clone(&proc));
        let started = Instant::now();
        let deadline = self.options.timeout.map(|t| started + t);
        let mut next_touch = started + self.lease / 2;
        let mut killed = None;
        let (result, output, cut) = loop {
            let now = Instant::now();
            let wake = deadline
                .filter(|_| killed.is_none())
                .map_or(next_touch, |d| d.min(next_touch));
            let (mailbox, changed) = &*self.mailbox;
            let seen = self.signals;
            let (mut inbox, _) = changed
                .wait_timeout_while(lock(mailbox), wake.saturating_duration_since(now), |m| {
                    m.ended.is_none() && m.signals == seen
                })
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(ended) = inbox.ended.take() {
                break ended;
            }
            self.signals = inbox.signals;
            drop(inbox);
            if self.signals > 1 && killed.is_none() {
                kill(&proc);
                killed = Some("stopped");
            }
            let now = Instant::now();
            if killed.is_none() && deadline.is_some_and(|d| d <= now) {
                kill(&proc);
                killed = Some("timed out and was killed");
            }
            if next_touch <= now {
                next_touch = now + self.lease / 2;
                // A broken connection shows at the next request.
                let _ = request.touch(&mut self.client);
            }
        };
        if cut > 0 {
            eprintln!(
                "beuss: {name}: the reply was cut to {} bytes (BMAXMESSAGESIZE); {cut} more \
                 were dropped",
                output.len()
            );
        }
        let settled = match (result, killed) {
            (_, Some(why)) => {
                eprintln!("beuss: {name} {why}; it goes back to {}", self.queue);
                let options = NackOptions {
                    no_charge: why == "stopped",
                    ..NackOptions::default()
                };
                self.client
                    .nack(&self.queue, &[request.lease()], options)
                    .map(|_| ())
            }
            (Ok(status), None) if status.success() => self.reply_and_ack(request, &name, &output),
            (Ok(status), None) => {
                eprintln!(
                    "beuss: {name} failed ({status}); it goes back to {}",
                    self.queue
                );
                request.nack(&mut self.client, Duration::ZERO).map(|_| ())
            }
            (Err(e), None) => {
                let options = NackOptions {
                    no_charge: true,
                    ..NackOptions::default()
                };
                let _ = self.client.nack(&self.queue, &[request.lease()], options);
                return Err(Failure::new(
                    EXIT_ERROR,
                    format!("cannot run {:?}: {e}", self.command[0].to_string_lossy()),
                ));
            }
        };
        match settled {
            Ok(()) => Ok(()),
            Err(e) if breaks_connection(&e) => {
                // The server has given the request back with the connection.
                self.reconnect(&Failure::client(&self.addr, &e))
            }
            Err(e) => Err(Failure::client(&self.addr, &e)),
        }
    }

    /// Sends the command's output as the reply (or to stdout, for a message that
    /// is not a request), then acknowledges the request.
    fn reply_and_ack(
        &mut self,
        request: &Envelope,
        name: &str,
        output: &[u8],
    ) -> beuss::client::Result<()> {
        match request.reply_to() {
            Some(_) => {
                if !request.reply(&mut self.client, output)? {
                    eprintln!(
                        "beuss: {name}: its requester had stopped waiting; nobody got the reply"
                    );
                }
            }
            None => {
                if let Err(failure) = write_stdout(output) {
                    eprintln!("beuss: {}", failure.message);
                }
            }
        }
        let result = request.ack(&mut self.client)?;
        if result != beuss::protocol::SettleResult::Ok {
            eprintln!("beuss: ACK of {name} was {result:?}: its lease had ended, it may run again");
        }
        Ok(())
    }

    /// Starts the command for `request` on a thread of its own, which posts its end
    /// to the mailbox.
    fn spawn(&self, request: &Envelope, proc: Arc<Mutex<Proc>>) {
        let mut command = std::process::Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .env("BEUSS_SUBJECT", request.subject().unwrap_or_default())
            .env("BEUSS_QUEUE", &self.queue)
            .env("BEUSS_ID", request.id().to_string())
            .env("BEUSS_ATTEMPT", request.attempt().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its own process group: a timeout kills what it started too, and
            // Ctrl-C reaches SERVE alone, which decides what the command gets.
            .process_group(0);
        let payload = request.payload().to_vec();
        let max_reply = self.max_reply;
        let mailbox = Arc::clone(&self.mailbox);
        std::thread::spawn(move || {
            let mut reader = None;
            let result = run_command(command, payload, &proc, &mut |child| {
                reader = child.stdout.take().map(|out| read_output(out, max_reply));
            });
            let (output, cut) = reader.and_then(|r| r.join().ok()).unwrap_or_default();
            post(&mailbox, |m| m.ended = Some((result, output, cut)));
        });
    }
}

/// Reads a command's standard output on a thread of its own, keeping at most
/// `most` bytes and counting the rest.
fn read_output(mut out: impl Read + Send + 'static, most: usize) -> JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut out).take(most as u64).read_to_end(&mut kept);
        let cut = io::copy(&mut out, &mut io::sink()).unwrap_or(0);
        (kept, cut)
    })
}
