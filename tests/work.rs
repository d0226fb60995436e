//! The work-queue verbs of the `beuss` command (`GET --lease`, `ACK`, `NACK`,
//! `TOUCH`, `DEAD`, `PUT --delay/--priority`, `WORK`), run as real processes against
//! a real server on loopback. Waits are bounded by [`TIMEOUT`] and synchronised on
//! what the server or the files say, never on sleeps.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{TIMEOUT, TestServer, eventually, wait_exit};

const EXIT_USAGE: i32 = 2;
const EXIT_EMPTY: i32 = 4;
const EXIT_UNSETTLED: i32 = 6;

fn beuss(server: &TestServer) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beuss"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BHOST", "127.0.0.1")
        .env("BPORT", server.port.to_string());
    command
}

/// Runs `command` with `stdin` to its end (at most [`TIMEOUT`]).
fn run(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn beuss");
    // A usage error exits before reading its input.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill() on the pid of a child we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("beuss did not finish within {TIMEOUT:?}");
        }
    }
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn put(server: &TestServer, queue: &str, payload: &str) {
    ok(&run(beuss(server).args(["PUT", queue]), payload.as_bytes()));
}

/// A queue figure (0 once the queue is gone).
fn figure(server: &TestServer, queue: &str, name: &str) -> u64 {
    let mut client = server.client();
    client
        .queue_stats(queue)
        .unwrap()
        .and_then(|q| q.get(name))
        .unwrap_or(0)
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beuss-work-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `beuss WORK`, its stderr in a file; killed if the test ends early.
struct Worker {
    child: Child,
    stderr: PathBuf,
}

impl Worker {
    fn start(server: &TestServer, dir: &Path, args: &[&str], script: &str) -> Worker {
        let stderr = dir.join("work.stderr");
        let child = beuss(server)
            .arg("WORK")
            .args(args)
            .args(["--", "sh", "-c", script])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn beuss WORK");
        Worker { child, stderr }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill() on a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the exit and returns its code.
    fn exit_code(&mut self) -> Option<i32> {
        wait_exit(&mut self.child, "beuss WORK did not exit").code()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of `path` (none if it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// GET --lease writes the payload and the lease (`N:M` on stdout, `id=N
/// attempt=M` on stderr); the message stays in flight after the command has ended,
/// another command ACKs it, and a second ACK says NOT_FOUND with exit code 6.
#[test]
fn get_lease_then_ack_from_another_command() {
    let server = TestServer::start();
    let dir = scratch("ack");
    put(&server, "jobs", "resize 42\n");
    let file = dir.join("job.txt");
    let output = run(
        beuss(&server)
            .args(["GET", "jobs"])
            .arg(&file)
            .args(["--lease", "30s"]),
        b"",
    );
    let lease = ok(&output).trim().to_owned();
    let (id, attempt) = lease.split_once(':').expect(&lease);
    assert_eq!(attempt, "1");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        format!("id={id} attempt=1")
    );
    assert_eq!(fs::read(&file).unwrap(), b"resize 42\n");
    assert_eq!(figure(&server, "jobs", "in_flight"), 1);

    let output = run(beuss(&server).args(["ACK", "jobs", &lease]), b"");
    assert_eq!(ok(&output), format!("{lease} OK\n"));
    assert_eq!(figure(&server, "jobs", "messages"), 0);
    let output = run(beuss(&server).args(["ack", "jobs", &lease, "999:1"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_UNSETTLED));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{lease} NOT_FOUND\n999:1 NOT_FOUND\n")
    );
    // A lease without its attempt is refused before anything is sent.
    let output = run(beuss(&server).args(["ACK", "jobs", id]), b"");
    assert_eq!(output.status.code(), Some(EXIT_USAGE));

    // GET --lease to stdout: the payload alone on stdout; an empty queue exits 4.
    put(&server, "jobs", "two");
    let output = run(beuss(&server).args(["GET", "jobs", "--lease", "1m"]), b"");
    assert_eq!(ok(&output), "two");
    let output = run(beuss(&server).args(["GET", "jobs", "--lease", "1m"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_EMPTY));
    let _ = fs::remove_dir_all(dir);
}

/// NACK --dead sends a leased message to q.dead; DEAD lists it (id, attempt, size,
/// escaped start), --retry moves it back, --purge drops what is dead; TOUCH and a
/// NACK of a settled lease answer per lease.
#[test]
fn nack_dead_then_dead_list_retry_purge() {
    let server = TestServer::start();
    put(&server, "q", "broken\njob");
    let get = || {
        let output = run(
            beuss(&server).args(["GET", "q", "/dev/null", "--lease", "1m"]),
            b"",
        );
        ok(&output).trim().to_owned()
    };
    let lease = get();
    assert_eq!(
        ok(&run(
            beuss(&server).args(["TOUCH", "q", &lease, "--lease", "2m"]),
            b""
        )),
        format!("{lease} OK\n")
    );
    ok(&run(
        beuss(&server).args(["NACK", "q", &lease, "--dead"]),
        b"",
    ));
    let output = run(beuss(&server).args(["NACK", "q", &lease]), b"");
    assert_eq!(output.status.code(), Some(EXIT_UNSETTLED));
    let id = lease.split(':').next().unwrap();
    assert_eq!(
        ok(&run(beuss(&server).args(["DEAD", "q"]), b"")),
        format!("id={id} attempt=1 bytes=10 broken\\njob\n")
    );
    assert_eq!(figure(&server, "q", "dead"), 1);
    assert_eq!(
        ok(&run(beuss(&server).args(["DEAD", "q", "--retry"]), b"")),
        "moved 1 message from q.dead back to q\n"
    );
    let lease = get();
    assert!(lease.ends_with(":2"), "{lease}");
    ok(&run(
        beuss(&server).args(["NACK", "q", &lease, "--dead"]),
        b"",
    ));
    assert_eq!(
        ok(&run(beuss(&server).args(["DEAD", "q", "--purge"]), b"")),
        "purged 1 dead letter from q.dead\n"
    );
    assert_eq!(
        ok(&run(beuss(&server).args(["DEAD", "q"]), b"")),
        "no dead letters in q.dead\n"
    );
    let output = run(
        beuss(&server).args(["NACK", "q", &lease, "--dead", "--delay", "1s"]),
        b"",
    );
    assert_eq!(output.status.code(), Some(EXIT_USAGE));
}

/// PUT --priority puts a message ahead of the default priority; PUT --delay keeps it
/// from consumers until its time; --id prints the id; values past the limits are
/// usage errors.
#[test]
fn put_delay_and_priority_order() {
    let server = TestServer::start();
    put(&server, "q", "normal");
    let id = ok(&run(
        beuss(&server).args(["PUT", "q", "--priority", "1", "--id"]),
        b"urgent",
    ));
    assert!(id.trim().parse::<u64>().unwrap() > 0, "{id}");
    ok(&run(
        beuss(&server).args(["PUT", "q", "--delay", "300ms", "--priority", "0"]),
        b"later",
    ));
    assert_eq!(figure(&server, "q", "delayed"), 1);
    let get = |args: &[&str]| run(beuss(&server).args(["GET", "q"]).args(args), b"");
    assert_eq!(ok(&get(&[])), "urgent");
    assert_eq!(ok(&get(&[])), "normal");
    assert_eq!(
        get(&[]).status.code(),
        Some(EXIT_EMPTY),
        "not before its time"
    );
    assert_eq!(ok(&get(&["--wait", "5"])), "later");
    for bad in [
        &["--priority", "10"][..],
        &["--delay", "31d"],
        &["--delay", "721h"],
        &["--delay", "soon"],
    ] {
        let output = run(beuss(&server).args(["PUT", "q"]).args(bad), b"x");
        assert_eq!(output.status.code(), Some(EXIT_USAGE), "{bad:?}");
    }
    let output = run(beuss(&server).args(["GET", "q", "--lease", "13h"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_USAGE));
    assert_eq!(server.stat("messages"), 0);
}

/// The job script of the WORK tests: a payload starting `fail-once` fails on its
/// first attempt, `slow-once` hangs on its first attempt (until the timeout kills
/// it); every successful run appends the payload to `done.txt`.
const JOB: &str = r#"
read -r job
case "$job:$BEUSS_ATTEMPT" in
  fail-once*:1) exit 3 ;;
  slow-once*:1) sleep 60 ;;
esac
echo "$job" >> done.txt
"#;

/// WORK end to end: 30 jobs, some failing once, one hanging until the timeout kills
/// it, with 4 at once. Every job is done exactly once, the queue ends empty with no
/// dead letters, and SIGTERM then exits 0.
#[test]
fn work_does_every_job_exactly_once() {
    let server = TestServer::start();
    let dir = scratch("once");
    let mut expected = Vec::new();
    for i in 0..30 {
        let job = match i % 7 {
            2 => format!("fail-once {i}"),
            5 if i == 5 => format!("slow-once {i}"),
            _ => format!("job {i}"),
        };
        put(&server, "jobs", &job);
        expected.push(job);
    }
    let mut worker = Worker::start(
        &server,
        &dir,
        &["jobs", "-c", "4", "--timeout", "500ms", "--backoff", "10ms"],
        JOB,
    );
    let done = dir.join("done.txt");
    eventually("every job done", || lines(&done).len() >= expected.len());
    eventually("every job acknowledged", || {
        figure(&server, "jobs", "messages") == 0
    });
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.exit_code(), Some(0), "{}", worker.stderr());
    let mut got = lines(&done);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "each job exactly once");
    assert_eq!(figure(&server, "jobs", "dead"), 0);
    assert_eq!(figure(&server, "jobs", "acks"), 30);
    let stderr = worker.stderr();
    assert!(stderr.contains("timed out after 500ms"), "{stderr}");
    assert!(stderr.contains("failed (exit status: 3)"), "{stderr}");
    let _ = fs::remove_dir_all(dir);
}

/// SIGTERM while a job runs: WORK takes no more messages, lets the job finish,
/// acknowledges it and exits 0; the other message stays ready for someone else.
#[test]
fn sigterm_lets_the_running_job_finish() {
    let server = TestServer::start();
    let dir = scratch("term");
    put(&server, "jobs", "first");
    put(&server, "jobs", "second");
    let script = r#"read -r job; touch "started-$job"
        while [ ! -e go ]; do sleep 0.01; done; echo "$job" >> done.txt"#;
    let mut worker = Worker::start(&server, &dir, &["jobs"], script);
    eventually("the first job started", || {
        dir.join("started-first").exists()
    });
    worker.signal(libc::SIGTERM);
    eventually("WORK says it stops", || {
        worker.stderr().contains("stopping")
    });
    fs::write(dir.join("go"), b"").unwrap();
    assert_eq!(worker.exit_code(), Some(0), "{}", worker.stderr());
    assert_eq!(lines(&dir.join("done.txt")), ["first"]);
    assert_eq!(figure(&server, "jobs", "ready"), 1);
    assert_eq!(figure(&server, "jobs", "in_flight"), 0);
    assert_eq!(figure(&server, "jobs", "acks"), 1);
    let _ = fs::remove_dir_all(dir);
}

/// A second signal kills the running command and gives its message back without
/// charging the attempt; WORK still exits 0.
#[test]
fn second_signal_kills_and_gives_back() {
    let server = TestServer::start();
    let dir = scratch("kill");
    put(&server, "jobs", "stuck");
    let script = r#"read -r job; touch started; sleep 60; echo "$job" >> done.txt"#;
    let mut worker = Worker::start(&server, &dir, &["jobs", "--max-deliveries", "1"], script);
    eventually("the job started", || dir.join("started").exists());
    worker.signal(libc::SIGTERM);
    eventually("WORK says it stops", || {
        worker.stderr().contains("stopping")
    });
    worker.signal(libc::SIGINT);
    assert_eq!(worker.exit_code(), Some(0), "{}", worker.stderr());
    assert!(lines(&dir.join("done.txt")).is_empty());
    // Not charged: with --max-deliveries 1 a charged return would have made it dead.
    assert_eq!(figure(&server, "jobs", "ready"), 1);
    assert_eq!(figure(&server, "jobs", "dead"), 0);
    let _ = fs::remove_dir_all(dir);
}

/// If WORK dies, the server gives its leased message back at once (leases are
/// attached to its connection), to be run again by the next worker.
#[test]
fn killed_worker_returns_its_message() {
    let server = TestServer::start();
    let dir = scratch("die");
    put(&server, "jobs", "survivor");
    let script = r#"read -r job; echo $$ > "started-$BEUSS_ATTEMPT"
        [ "$BEUSS_ATTEMPT" = 1 ] && sleep 60; echo "$job" >> done.txt"#;
    let mut first = Worker::start(&server, &dir, &["jobs"], script);
    let pid_file = dir.join("started-1");
    eventually("the job started", || {
        fs::read_to_string(&pid_file).is_ok_and(|pid| pid.ends_with('\n'))
    });
    first.signal(libc::SIGKILL);
    first.exit_code();
    // The dead WORK's command lives on in its own process group: end it.
    let group: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill() on the process group the job's shell leads (WORK made it).
    unsafe { libc::kill(-group, libc::SIGKILL) };
    eventually("the message is back", || {
        figure(&server, "jobs", "ready") == 1
    });
    let mut second = Worker::start(&server, &dir, &["jobs"], script);
    eventually("the job is done", || {
        lines(&dir.join("done.txt")).len() == 1
    });
    eventually("acknowledged", || figure(&server, "jobs", "messages") == 0);
    second.signal(libc::SIGTERM);
    assert_eq!(second.exit_code(), Some(0), "{}", second.stderr());
    let _ = fs::remove_dir_all(dir);
}
