//! `beuss GET`: one message to a file or standard output.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lexopt::{Arg, Parser};

use beuss::client::{LeaseOptions, NackOptions};
use beuss::protocol::{MAX_LEASE_MS, NEVER_DEAD};

use crate::args::{
    Command, Opt, Verb, duration_value, number_value, queue_name, seconds_value, show_duration,
};
use crate::conn::{REPLY_TIMEOUT, connect};
use crate::files::create_temp;
use crate::output::{EXIT_EMPTY, EXIT_ERROR, Failure, write_stdout};

/// The verb table's row for `GET`.
pub const VERB: Verb = Verb {
    name: "GET",
    summary: "beuss GET <queue> [file]         take the oldest message (to file or stdout)",
    help: HELP,
    arity: (1, 2),
    takes: "a queue name and an optional output file",
    new: || Box::<Get>::default(),
};

const HELP: &str = "\
Usage: beuss GET <queue> [output-file] [--wait SECONDS] [--lease DURATION]

Takes the oldest message of <queue> and writes it, byte for byte with nothing
added, to <output-file> (replaced atomically: written to a new temporary file
next to it, then renamed), or to standard output if there is none or it is `-`.
The message is removed from the queue.

  -w, --wait SECONDS   wait up to SECONDS (decimals allowed) for a message to
                       arrive if the queue is empty (default: answer at once)

  --lease DURATION     take the message on a lease instead (500ms, 30s, 10m,
                       up to 12h): it stays on the server until `beuss ACK`
                       deletes it, and comes back (attempt raised) if nobody
                       does before the lease ends. The lease outlives this
                       command. Prints `id=N attempt=M` on stderr and, when
                       the message goes to <output-file>, the lease `N:M` on
                       standard output, which ACK, NACK and TOUCH take.
  --max-deliveries N   with --lease: dead-letter the message to <queue>.dead
                       after N failed deliveries (default: the server's, 20)

Exit codes: 0 got a message, 1 error, 2 usage, 3 cannot connect,
4 the queue is empty (output-file is left untouched).

Example: beuss GET photos /tmp/photo.jpg || echo \"nothing yet\"
         lease=$(beuss GET jobs job.txt --lease 5m) && ./run job.txt &&
           beuss ACK jobs \"$lease\"
";

/// `GET`'s options.
#[derive(Default)]
struct Get {
    /// `--wait`: how long the server may hold the request for a message to arrive.
    wait: Duration,
    /// `--lease`: take the message on a detached lease of this length.
    lease: Option<Duration>,
    /// `--max-deliveries`.
    max_deliveries: Option<u16>,
}

impl Command for Get {
    fn option(&mut self, option: &Opt, parser: &mut Parser) -> Result<bool, Failure> {
        match option.arg() {
            Arg::Short('w') | Arg::Long("wait") => self.wait = seconds_value(parser, option)?,
            Arg::Long("lease") => {
                let most = Duration::from_millis(MAX_LEASE_MS.into());
                let lease = duration_value(parser, option, most)?;
                if lease.is_zero() {
                    return Err(Failure::usage("--lease must be longer than 0"));
                }
                self.lease = Some(lease);
            }
            Arg::Long("max-deliveries") => {
                let n = number_value(parser, option, 1, u64::from(NEVER_DEAD) - 1)?;
                self.max_deliveries = u16::try_from(n).ok();
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn run(self: Box<Self>, addr: &str, args: &[OsString]) -> Result<(), Failure> {
        let queue = queue_name(&args[0])?;
        let path = args.get(1).map(Path::new);
        match self.lease {
            Some(lease) => get_leased(addr, queue, path, self.wait, lease, self.max_deliveries),
            None if self.max_deliveries.is_some() => {
                Err(Failure::usage("--max-deliveries goes with --lease"))
            }
            None => get(addr, queue, path, self.wait),
        }
    }
}

/// Where `GET` writes its message.
enum Output {
    Stdout,
    /// A file that is not regular (a FIFO, `/dev/null`...): written in place.
    Special(File),
    /// A regular file: written to `temp`, then renamed to `path`.
    Replace {
        file: File,
        temp: PathBuf,
        path: PathBuf,
    },
}

impl Output {
    /// Opens the destination before the message is taken, so that a bad path fails
    /// without consuming anything.
    fn open(path: Option<&Path>) -> Result<Output, Failure> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Output::Stdout);
        };
        let cannot = |e: io::Error| {
            Failure::new(EXIT_ERROR, format!("cannot write {}: {e}", path.display()))
        };
        if let Ok(meta) = fs::metadata(path)
            && !meta.is_file()
        {
            if meta.is_dir() {
                return Err(cannot(io::Error::other("it is a directory")));
            }
            return Ok(Output::Special(
                File::options().write(true).open(path).map_err(cannot)?,
            ));
        }
        let name = path.file_name().unwrap_or(path.as_os_str());
        let dir = path.parent().unwrap_or(Path::new(""));
        let (file, temp) = create_temp(dir, name).map_err(cannot)?;
        Ok(Output::Replace {
            file,
            temp,
            path: path.to_owned(),
        })
    }

    /// True when the message goes to standard output.
    fn is_stdout(&self) -> bool {
        matches!(self, Output::Stdout)
    }

    /// Writes the message; the file appears whole or not at all.
    fn finish(self, message: &[u8]) -> Result<(), Failure> {
        match self {
            Output::Stdout => write_stdout(message).map(|_| ()),
            Output::Special(mut file) => file
                .write_all(message)
                .map_err(|e| Failure::new(EXIT_ERROR, format!("cannot write the message: {e}"))),
            Output::Replace {
                mut file,
                temp,
                path,
            } => {
                let result = file
                    .write_all(message)
                    .and_then(|()| file.flush())
                    .and_then(|()| fs::rename(&temp, &path));
                result.map_err(|e| {
                    let _ = fs::remove_file(&temp);
                    Failure::new(
                        EXIT_ERROR,
                        format!(
                            "cannot write {}: {e} (the message was taken from the queue \
                             and is lost)",
                            path.display()
                        ),
                    )
                })
            }
        }
    }

    /// Cleans up when there is no message to write.
    fn abandon(self) {
        if let Output::Replace { temp, .. } = self {
            let _ = fs::remove_file(temp);
        }
    }
}

/// `GET`: one message to a file or stdout; exit code 4 when the queue is empty.
fn get(addr: &str, queue: &str, path: Option<&Path>, wait: Duration) -> Result<(), Failure> {
    let output = Output::open(path)?;
    let message = connect(addr, wait.saturating_add(REPLY_TIMEOUT)).and_then(|(mut client, _)| {
        client
            .get_wait(queue, wait)
            .map_err(|e| Failure::client(addr, &e))
    });
    match message {
        Ok(Some(message)) => output.finish(&message),
        Ok(None) => {
            output.abandon();
            Err(Failure::new(
                EXIT_EMPTY,
                format!("queue {queue:?} is empty"),
            ))
        }
        Err(failure) => {
            output.abandon();
            Err(failure)
        }
    }
}

/// `GET --lease`: one message on a detached lease, written as `GET` writes it; its
/// lease on stderr (and stdout, when the message went to a file). If the message
/// cannot be written, the lease is given back uncharged.
fn get_leased(
    addr: &str,
    queue: &str,
    path: Option<&Path>,
    wait: Duration,
    lease: Duration,
    max_deliveries: Option<u16>,
) -> Result<(), Failure> {
    let output = Output::open(path)?;
    let taken =
        connect(addr, wait.saturating_add(REPLY_TIMEOUT)).and_then(|(mut client, server)| {
            let limits = server.leases(addr)?;
            if lease.as_millis() > u128::from(limits.max_lease_ms) {
                return Err(Failure::usage(format!(
                    "--lease {} is longer than this server allows ({})",
                    show_duration(lease),
                    show_duration(Duration::from_millis(limits.max_lease_ms.into()))
                )));
            }
            let options = LeaseOptions {
                lease: Some(lease),
                max_deliveries: max_deliveries.unwrap_or(0),
                detached: true,
            };
            let mut taken = client
                .lease(queue, 1, wait, options)
                .map_err(|e| Failure::client(addr, &e))?;
            Ok((client, taken.pop()))
        });
    let (mut client, delivery) = match taken {
        Ok((client, Some(delivery))) => (client, delivery),
        Ok((_, None)) => {
            output.abandon();
            return Err(Failure::new(
                EXIT_EMPTY,
                format!("queue {queue:?} is empty"),
            ));
        }
        Err(failure) => {
            output.abandon();
            return Err(failure);
        }
    };
    let to_stdout = output.is_stdout();
    if let Err(mut failure) = output.finish(delivery.payload()) {
        let back = NackOptions {
            no_charge: true,
            ..NackOptions::default()
        };
        if client.nack(queue, &[delivery.lease()], back).is_ok() {
            failure.message = failure.message.replace(
                "taken from the queue and is lost",
                "given back to the queue",
            );
        }
        return Err(failure);
    }
    eprintln!("id={} attempt={}", delivery.id(), delivery.attempt());
    if !to_stdout {
        write_stdout(format!("{}:{}\n", delivery.id(), delivery.attempt()).as_bytes())?;
    }
    Ok(())
}
