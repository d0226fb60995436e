//! The `beuss` fan-out verbs (`PUB`, `BIND`, `UNBIND`, `SUB`, `REQ`, `SERVE`) run as
//! real processes against a real server on loopback. Long-running processes are
//! killed when their test ends; tests synchronise on `STATS` figures (a
//! subscription or binding in place) and on output, never on sleeps alone.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use beuss::client::LeaseOptions;
use beuss::protocol::{self, Limits, SettleResult};
use common::{TIMEOUT, TestServer, eventually, stat_of, wait_exit};

/// Exit codes documented in `beuss --help`.
const EXIT_ERROR: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_EMPTY: i32 = 4;
const EXIT_NO_RESPONDERS: i32 = 7;
const EXIT_UNCONFIRMED: i32 = 8;

/// A `beuss` command aimed at `port`, with nothing else from the environment.
fn beuss_at(port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beuss"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BHOST", "127.0.0.1")
        .env("BPORT", port.to_string());
    command
}

fn beuss(server: &TestServer) -> Command {
    beuss_at(server.port)
}

/// Runs `command` with `stdin` as its input; kills it and fails the test if it
/// takes longer than [`TIMEOUT`].
fn run(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn beuss");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.expect("wait for beuss"),
        Err(_) => {
            // SAFETY: kill() on the pid of a child we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("beuss did not finish within {TIMEOUT:?}");
        }
    };
    writer.join().unwrap();
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts `output` exited with `code`, showing its stderr otherwise.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// A long-running `beuss` (SUB, SERVE), its stdout read line by line on a thread;
/// killed when dropped.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    fn start(mut command: Command, args: &[&str]) -> Running {
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn beuss");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next line of stdout; fails the test after [`TIMEOUT`].
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("a line from beuss within the timeout")
    }

    /// Sends `signal` and returns the exit code (bounded wait).
    fn stop(&mut self, signal: i32) -> Option<i32> {
        // SAFETY: kill() on a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.exit_code()
    }

    fn exit_code(&mut self) -> Option<i32> {
        wait_exit(&mut self.child, "beuss did not exit").code()
    }

    /// Everything it wrote to stderr (once it has exited).
    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// BIND two queues, PUB once: each queue gets a copy, PUB says how many; BIND of
/// an existing pair says EXISTS; UNBIND says UNBOUND, then NOT_FOUND (exit 4).
#[test]
fn bind_publish_unbind_end_to_end() {
    let server = TestServer::start();
    let bind = run(beuss(&server).args(["BIND", "orders.>", "audit"]), b"");
    assert_exit(&bind, 0);
    assert_eq!(stdout(&bind), "BOUND\n");
    assert_eq!(
        stdout(&run(
            beuss(&server).args(["bind", "orders.*.created", "mail"]),
            b""
        )),
        "BOUND\n"
    );
    let again = run(beuss(&server).args(["BIND", "orders.>", "audit"]), b"");
    assert_exit(&again, 0);
    assert_eq!(stdout(&again), "EXISTS\n");

    let published = run(
        beuss(&server).args(["PUB", "orders.eu.created"]),
        b"order 42\n",
    );
    assert_exit(&published, 0);
    assert_eq!(stdout(&published), "queues=2 subscribers=0\n");
    let mut c = server.client();
    for queue in ["audit", "mail"] {
        assert_eq!(c.get(queue).unwrap().as_deref(), Some(&b"order 42\n"[..]));
    }
    // Only audit's pattern matches this one; the payload comes from a file.
    let file = std::env::temp_dir().join(format!("beuss-pub-{}", std::process::id()));
    std::fs::write(&file, b"from a file").unwrap();
    let from_file = run(
        beuss(&server).args(["PUB", "orders.eu"]).arg(&file),
        b"not this",
    );
    std::fs::remove_file(&file).unwrap();
    assert_exit(&from_file, 0);
    assert_eq!(stdout(&from_file), "queues=1 subscribers=0\n");
    assert_eq!(
        c.get("audit").unwrap().as_deref(),
        Some(&b"from a file"[..])
    );
    assert_eq!(c.get("mail").unwrap(), None);

    let unbind = run(beuss(&server).args(["UNBIND", "orders.>", "audit"]), b"");
    assert_exit(&unbind, 0);
    assert_eq!(stdout(&unbind), "UNBOUND\n");
    let missing = run(beuss(&server).args(["UNBIND", "orders.>", "audit"]), b"");
    assert_exit(&missing, EXIT_EMPTY);
    assert_eq!(stdout(&missing), "NOT_FOUND\n");
    let nobody = run(beuss(&server).args(["PUB", "orders.eu"]), b"x");
    assert_exit(&nobody, 0);
    assert_eq!(stdout(&nobody), "queues=0 subscribers=0\n");
}

/// PUB's --delay and --priority reach the queue copies.
#[test]
fn publish_delay_and_priority() {
    let server = TestServer::start();
    let mut c = server.client();
    c.bind("jobs", "jobs").unwrap();
    for (args, payload) in [
        (&["--delay", "1h"][..], &b"later"[..]),
        (&["--priority", "9"], b"low"),
        (&["--priority=0"], b"high"),
    ] {
        let output = run(beuss(&server).args(["PUB", "jobs"]).args(args), payload);
        assert_exit(&output, 0);
    }
    let ready: Vec<Vec<u8>> = c
        .peek_with_meta("jobs", 10)
        .unwrap()
        .into_iter()
        .map(|e| e.into_payload())
        .collect();
    assert_eq!(ready, [b"high".to_vec(), b"low".to_vec()]);
}

/// PUB --confirm 1 returns once a consumer has acknowledged its copy, with the
/// counts; asking for more copies than queues is exit 7, nothing published; a
/// confirmation that does not come in time is exit 8, with the counts printed.
#[test]
fn publish_confirm_exit_codes() {
    let server = TestServer::start();
    let mut c = server.client();
    c.bind("orders.>", "audit").unwrap();
    let mut worker = server.client();
    let consumer = thread::spawn(move || {
        let got = worker
            .lease_with_meta("audit", 1, TIMEOUT, LeaseOptions::default())
            .unwrap();
        assert_eq!(got[0].payload(), b"confirm me");
        assert_eq!(got[0].ack(&mut worker).unwrap(), SettleResult::Ok);
    });
    let confirmed = run(
        beuss(&server).args(["PUB", "orders.eu", "--confirm", "1", "--timeout", "10s"]),
        b"confirm me",
    );
    consumer.join().unwrap();
    assert_exit(&confirmed, 0);
    assert_eq!(
        stdout(&confirmed),
        "queues=1 subscribers=0 acked=1 failed=0\n"
    );

    let too_many = run(
        beuss(&server).args(["PUB", "orders.eu", "--confirm", "2"]),
        b"x",
    );
    assert_exit(&too_many, EXIT_NO_RESPONDERS);
    assert!(
        stderr(&too_many).contains("nothing published"),
        "{}",
        stderr(&too_many)
    );
    assert_eq!(stdout(&too_many), "");
    assert_eq!(
        c.queue_stats("audit").unwrap().unwrap().get("messages"),
        Some(0)
    );

    let late = run(
        beuss(&server).args(["PUB", "orders.eu", "--confirm", "1", "--timeout", "100ms"]),
        b"nobody takes this",
    );
    assert_exit(&late, EXIT_UNCONFIRMED);
    assert_eq!(stdout(&late), "queues=1 subscribers=0 acked=0 failed=0\n");
    assert!(
        stderr(&late).contains("only 0 of the 1"),
        "{}",
        stderr(&late)
    );
}

/// SUB prints each event as ON prints messages, until --count is reached.
#[test]
fn sub_prints_events_until_count() {
    let server = TestServer::start();
    let mut sub = Running::start(beuss(&server), &["SUB", "t.>", "--count", "3"]);
    server.wait_for_stat("subscriptions", 1);
    let mut c = server.client();
    for payload in [&b"one\n"[..], b"two\nlines", b"tab\there"] {
        assert_eq!(c.publish("t.x", payload).unwrap().subscribers, 1);
    }
    assert_eq!(c.publish("other", b"not for SUB").unwrap().subscribers, 0);
    assert_eq!(sub.next_line(), "one");
    assert_eq!(sub.next_line(), "two\\nlines");
    assert_eq!(sub.next_line(), "tab\there");
    assert_eq!(sub.exit_code(), Some(0));
    server.wait_for_stat("subscriptions", 0);
}

/// SUB on several patterns prints a message once per matching pattern; with
/// --subject each line starts with the subject and a tab; SIGTERM stops it with
/// exit code 0.
#[test]
fn sub_several_patterns_subject_and_sigterm() {
    let server = TestServer::start();
    let mut sub = Running::start(
        beuss(&server),
        &["SUB", "orders.*", "orders.>", "--subject"],
    );
    server.wait_for_stat("subscriptions", 2);
    let mut c = server.client();
    assert_eq!(c.publish("orders.eu", b"a").unwrap().subscribers, 2);
    assert_eq!(c.publish("orders.eu.x", b"b").unwrap().subscribers, 1);
    assert_eq!(sub.next_line(), "orders.eu\ta");
    assert_eq!(sub.next_line(), "orders.eu\ta");
    assert_eq!(sub.next_line(), "orders.eu.x\tb");
    assert_eq!(sub.stop(libc::SIGTERM), Some(0));
    server.wait_for_stat("subscriptions", 0);
}

/// SUB --json: one object per line with the subject, the reply address of a
/// request, and a payload that is not UTF-8 in base64.
#[test]
fn sub_json() {
    let server = TestServer::start();
    let sub = Running::start(beuss(&server), &["SUB", ">", "--json"]);
    server.wait_for_stat("subscriptions", 1);
    let mut c = server.client();
    c.publish("bin", &[0xff, 0x00, b'"']).unwrap();
    c.publish("text", b"say \"hi\"\n").unwrap();
    assert_eq!(
        sub.next_line(),
        r#"{"sid":1,"subject":"bin","reply_to":null,"dropped":0,"payload_base64":"/wAi"}"#
    );
    assert_eq!(
        sub.next_line(),
        r#"{"sid":1,"subject":"text","reply_to":null,"dropped":0,"payload":"say \"hi\"\n"}"#
    );
    assert_eq!(
        c.request("svc", b"q", Duration::from_millis(1)).unwrap(),
        None
    );
    let line = sub.next_line();
    let prefix = r#"{"sid":1,"subject":"svc","reply_to":"#;
    assert!(line.starts_with(prefix), "{line}");
    let address = &line[prefix.len()..line.find(",\"dropped\"").unwrap()];
    assert!(address.parse::<u64>().unwrap() > 0, "{line}");
    assert!(line.ends_with(r#","dropped":0,"payload":"q"}"#), "{line}");
}

/// REQ + SERVE: SERVE binds the subject, runs the command with the request on
/// stdin and replies with its stdout; REQ prints the reply. SIGTERM stops SERVE
/// with exit 0; the binding stays unless --unbind.
#[test]
fn req_and_serve_round_trip() {
    let server = TestServer::start();
    let mut serve = Running::start(
        beuss(&server),
        &["SERVE", "svc.upper", "--", "tr", "a-z", "A-Z"],
    );
    server.wait_for_stat("bindings", 1);
    for (input, reply) in [(&b"hello\n"[..], "HELLO\n"), (b"again", "AGAIN")] {
        let output = run(beuss(&server).args(["REQ", "svc.upper"]), input);
        assert_exit(&output, 0);
        assert_eq!(stdout(&output), reply);
    }
    assert_eq!(serve.stop(libc::SIGTERM), Some(0));
    assert_eq!(server.stat("bindings"), 1, "the binding outlives SERVE");
    // Nothing answers now: the request waits in the queue until its timeout.
    let unanswered = run(
        beuss(&server).args(["REQ", "svc.upper", "--timeout", "100ms"]),
        b"x",
    );
    assert_exit(&unanswered, EXIT_EMPTY);

    let mut serve = Running::start(
        beuss(&server),
        &[
            "SERVE",
            "svc.*",
            "--queue",
            "svcq",
            "--unbind",
            "--",
            "sh",
            "-c",
            "printf %s \"$BEUSS_SUBJECT\"",
        ],
    );
    server.wait_for_stat("bindings", 2);
    let output = run(beuss(&server).args(["REQ", "svc.who"]), b"");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "svc.who");
    assert_eq!(serve.stop(libc::SIGINT), Some(0));
    assert_eq!(server.stat("bindings"), 1, "--unbind removed its binding");
}

/// A failing command answers nothing: its request is given back, and after
/// --max-deliveries it is dead-lettered; REQ times out.
#[test]
fn serve_gives_back_failed_requests() {
    let server = TestServer::start();
    let mut serve = Running::start(
        beuss(&server),
        &["SERVE", "svc.fail", "--max-deliveries", "2", "--", "false"],
    );
    server.wait_for_stat("bindings", 1);
    let output = run(
        beuss(&server).args(["REQ", "svc.fail", "--timeout", "300ms"]),
        b"x",
    );
    assert_exit(&output, EXIT_EMPTY);
    let mut c = server.client();
    eventually("the failed request reaches svc.fail.dead", || {
        c.queue_stats("svc.fail.dead")
            .unwrap()
            .and_then(|q| q.get("messages"))
            == Some(1)
    });
    assert_eq!(serve.stop(libc::SIGTERM), Some(0));
    let log = serve.stderr();
    assert!(log.contains("failed"), "{log}");
}

/// REQ with nothing bound or subscribed: exit 7 at once; with a subscriber that
/// never answers: exit 4 after --timeout.
#[test]
fn req_no_responders_and_timeout() {
    let server = TestServer::start();
    let none = run(beuss(&server).args(["REQ", "svc.none"]), b"?");
    assert_exit(&none, EXIT_NO_RESPONDERS);
    assert!(stderr(&none).contains("no responders"), "{}", stderr(&none));
    assert_eq!(stdout(&none), "");

    let mut silent = server.client();
    silent.subscribe("svc.silent").unwrap();
    let timeout = run(
        beuss(&server).args(["REQ", "svc.silent", "--timeout", "100ms"]),
        b"?",
    );
    assert_exit(&timeout, EXIT_EMPTY);
    assert!(
        stderr(&timeout).contains("no reply"),
        "{}",
        stderr(&timeout)
    );
    let event = silent.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert!(event.reply_to().is_some());
    assert_eq!(stat_of(&mut silent, "no_responders"), 1);
}

/// Subjects and patterns are checked before connecting; options that do not go
/// together are usage errors.
#[test]
fn fanout_usage_errors() {
    let server = TestServer::start();
    for args in [
        &["PUB", "orders.*"][..],
        &["PUB", "a..b"],
        &["REQ", "a b"],
        &["BIND", "a.>.b", "q"],
        &["SUB", "x*"],
        &["PUB", "a", "--timeout", "1s"],
        &["PUB", "a", "--priority", "10"],
        &["REQ", "a", "--timeout", "0"],
        &["SUB", "a", "--json", "--raw"],
        &["SUB", "a", "--subject", "--json"],
        &["SERVE", "svc"],
        &["BIND", "a"],
    ] {
        let output = run(beuss(&server).args(args), b"");
        assert_exit(&output, EXIT_USAGE);
    }
    assert_eq!(server.stat("bindings"), 0);
    for verb in ["PUB", "BIND", "UNBIND", "SUB", "REQ", "SERVE"] {
        let help = run(beuss(&server).args([verb, "--help"]), b"");
        assert_exit(&help, 0);
        assert!(stdout(&help).starts_with(&format!("Usage: beuss {verb}")));
        for line in stdout(&help).lines() {
            assert!(line.chars().count() <= 80, "{verb} --help: {line:?}");
        }
    }
}

/// Against a server without fan-out (a version-2 server's HELLO), the fan-out
/// verbs say so and exit 1, sending nothing after the HELLO.
#[test]
fn fanout_verbs_need_a_version_3_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = thread::spawn(move || {
        for _ in 0..3 {
            let (mut stream, _) = listener.accept().unwrap();
            let mut hello = [0u8; 8];
            stream.read_exact(&mut hello).unwrap();
            let limits = Limits {
                features: protocol::FEATURE_LEASES | protocol::FEATURE_PUT_OPTIONS,
                default_lease_ms: 30_000,
                max_lease_ms: 43_200_000,
                max_delay_ms: 2_592_000_000,
                max_deliveries: 20,
            };
            let mut reply = Vec::new();
            protocol::encode_hello_v2(&mut reply, 2, 1024, "beuss-server 0.0.1", &limits);
            stream.write_all(&reply).unwrap();
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            assert!(rest.is_empty(), "sent after HELLO: {rest:02x?}");
        }
    });
    for args in [&["PUB", "a"][..], &["SUB", "a"], &["BIND", "a", "q"]] {
        let output = run(beuss_at(port).args(args), b"x");
        assert_exit(&output, EXIT_ERROR);
        assert!(
            stderr(&output).contains("has no fan-out"),
            "{}",
            stderr(&output)
        );
    }
    fake.join().unwrap();
}
