//! The `beuss` command-line client, run as a real process against a real server on
//! loopback. Every wait is bounded by [`TIMEOUT`]; long-running `ON` processes are
//! killed when their test ends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};

use common::{TIMEOUT, TestServer, wait_exit};

/// Exit codes documented in `beuss --help`.
const EXIT_USAGE: i32 = 2;
const EXIT_CONNECT: i32 = 3;
const EXIT_EMPTY: i32 = 4;
const EXIT_FULL: i32 = 5;

/// A `beuss` command aimed at `port` through `BHOST`/`BPORT`, with nothing else
/// from the environment.
fn beuss_at(port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beuss"));
    command
        .env_clear()
        .env("BHOST", "127.0.0.1")
        .env("BPORT", port.to_string());
    command
}

fn beuss(server: &TestServer) -> Command {
    beuss_at(server.port)
}

/// Runs `command` to completion with `stdin` as its input; kills it and fails the
/// test if it takes longer than [`TIMEOUT`].
fn run(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn beuss");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin); // dropping `input` closes stdin
    });
    let output = finish(child);
    writer.join().unwrap();
    output
}

/// Runs `command` with `file`, from its current offset, as standard input.
fn run_from_file(command: &mut Command, file: std::fs::File) -> Output {
    let child = command
        .stdin(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn beuss");
    finish(child)
}

/// Waits for `child` and collects its output; kills it and fails the test if it
/// takes longer than [`TIMEOUT`].
fn finish(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.expect("wait for beuss"),
        Err(_) => {
            // SAFETY: kill() on the pid of a child we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("beuss did not finish within {TIMEOUT:?}");
        }
    }
}

/// `echo payload | beuss PUT queue`, asserting success.
fn put(server: &TestServer, queue: &str, payload: &[u8]) {
    let output = run(beuss(server).args(["PUT", queue]), payload);
    assert_eq!(
        output.status.code(),
        Some(0),
        "PUT failed: {}",
        stderr(&output)
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Every byte value, NUL runs and a newline-free tail: the worst case for a CLI.
fn binary_payload() -> Vec<u8> {
    let mut payload: Vec<u8> = (0..=255u8).cycle().take(256 * 4).collect();
    payload.extend_from_slice(&[0; 64]);
    payload.extend_from_slice(b"\r\n\0end");
    payload
}

/// A running `beuss ON`, its stdout read line by line (or by NUL) on a thread.
struct OnProcess {
    child: Child,
    records: Receiver<Vec<u8>>,
    /// Everything written to stderr so far; the condvar is told at each write.
    stderr: Arc<(Mutex<Vec<u8>>, Condvar)>,
}

impl OnProcess {
    /// Starts `beuss ON <args>`; records on stdout end with `separator`.
    fn start(mut command: Command, args: &[&str], separator: u8) -> OnProcess {
        let mut child = command
            .arg("ON")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn beuss ON");
        let records = read_records(child.stdout.take().unwrap(), separator);
        let stderr = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = Arc::clone(&stderr);
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
                sink.1.notify_all();
            }
        });
        OnProcess {
            child,
            records,
            stderr,
        }
    }

    /// The next record, without its separator; fails the test after [`TIMEOUT`].
    fn next(&self) -> Vec<u8> {
        self.records
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("no output from beuss ON; stderr:\n{}", self.stderr()))
    }

    fn next_line(&self) -> String {
        String::from_utf8(self.next()).expect("ON lines are UTF-8")
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.0.lock().unwrap()).into_owned()
    }

    /// Stderr once it contains `needle` (stderr is read on another thread, so what
    /// ON wrote may not be in yet); fails the test after [`TIMEOUT`].
    fn stderr_with(&self, needle: &str) -> String {
        let (text, written) = &*self.stderr;
        let text = written
            .wait_timeout_while(text.lock().unwrap(), TIMEOUT, |text| {
                !String::from_utf8_lossy(text).contains(needle)
            })
            .unwrap()
            .0;
        let text = String::from_utf8_lossy(&text).into_owned();
        assert!(text.contains(needle), "no {needle:?} on stderr: {text}");
        text
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        wait_exit(&mut self.child, "beuss ON did not exit").code()
    }
}

impl Drop for OnProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits `stdout` into records ending with `separator`, sent on a channel.
fn read_records(stdout: ChildStdout, separator: u8) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut record = Vec::new();
            match reader.read_until(separator, &mut record) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if record.last() == Some(&separator) {
                        record.pop();
                    }
                    if tx.send(record).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// A text file and a binary file (all 256 byte values, NULs) go through PUT and
/// GET-to-file unchanged, byte for byte; lower-case verbs work too.
#[test]
fn put_from_stdin_then_get_to_file_is_byte_identical() {
    let server = TestServer::start();
    let dir = tempdir("put-get");
    for (verb_put, verb_get, payload) in [
        ("PUT", "GET", b"my-message-content\n".to_vec()),
        ("put", "get", binary_payload()),
        ("Put", "Get", Vec::new()),
    ] {
        let output = run(beuss(&server).args([verb_put, "files"]), &payload);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(output.stdout.is_empty(), "PUT prints nothing on success");
        let file = dir.join("out.bin");
        let output = run(beuss(&server).args([verb_get, "files"]).arg(&file), b"");
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(std::fs::read(&file).unwrap(), payload);
    }
}

/// GET without a file writes the raw message to stdout, nothing added.
#[test]
fn get_without_file_writes_raw_bytes_to_stdout() {
    let server = TestServer::start();
    let payload = binary_payload();
    put(&server, "raw", &payload);
    let output = run(beuss(&server).args(["GET", "raw"]), b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(output.stdout, payload);
    put(&server, "raw", b"dash");
    let output = run(beuss(&server).args(["GET", "raw", "-"]), b"");
    assert_eq!(output.stdout, b"dash");
}

/// GET on an empty queue exits 4 with a message, and leaves an existing output file
/// as it was.
#[test]
fn get_on_empty_queue_exits_4_and_leaves_file_untouched() {
    let server = TestServer::start();
    let dir = tempdir("empty");
    let file = dir.join("keep.txt");
    std::fs::write(&file, b"old content").unwrap();
    let output = run(beuss(&server).args(["GET", "nothing"]).arg(&file), b"");
    assert_eq!(output.status.code(), Some(EXIT_EMPTY));
    assert!(stderr(&output).contains("empty"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&file).unwrap(), b"old content");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temp file left"
    );
    let output = run(beuss(&server).args(["GET", "nothing"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_EMPTY));
    assert!(output.stdout.is_empty());
}

/// GET --wait parks on the server and returns the message PUT meanwhile.
#[test]
fn get_wait_returns_a_message_put_later() {
    let server = TestServer::start();
    let mut child = beuss(&server)
        .args(["GET", "later", "--wait", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let records = read_records(child.stdout.take().unwrap(), b'\n');
    put(&server, "later", b"arrived\n");
    let line = records.recv_timeout(TIMEOUT).expect("GET --wait output");
    assert_eq!(line, b"arrived");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// ON prints each message on its own line, in order, as it arrives: one final
/// newline is not doubled, newlines, backslashes, controls and non-UTF-8 bytes inside
/// a message are escaped so that a message is always exactly one line.
#[test]
fn on_prints_messages_in_order_one_per_line() {
    let server = TestServer::start();
    put(&server, "events", b"queued before ON\n");
    let on = OnProcess::start(beuss(&server), &["events"], b'\n');
    assert_eq!(on.next_line(), "queued before ON");
    for i in 0..20 {
        put(&server, "events", format!("event {i}\n").as_bytes());
        assert_eq!(on.next_line(), format!("event {i}"));
    }
    put(
        &server,
        "events",
        b"two\nlines\\ and \x00\x1b \xff\xfe caf\xc3\xa9",
    );
    assert_eq!(
        on.next_line(),
        "two\\nlines\\\\ and \\0000\\0033 \\0377\\0376 café"
    );
    put(&server, "events", b"no newline");
    put(&server, "events", b"");
    assert_eq!(on.next_line(), "no newline");
    assert_eq!(on.next_line(), "");
}

/// The shells `printf '%b'` is tried with: dash (`/bin/sh` on Debian and Raspberry Pi
/// OS, which knows no `\xHH`) and bash, whichever are installed; `sh` if neither is.
fn posix_shells() -> Vec<&'static str> {
    let found: Vec<&str> = ["dash", "bash"]
        .into_iter()
        .filter(|shell| {
            Command::new(shell)
                .args(["-c", "exit 0"])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if found.is_empty() { vec!["sh"] } else { found }
}

/// What ON's help and the README promise: `IFS= read -r line` then
/// `printf '%b\n' "$line"` gives every message back byte for byte (with one final
/// newline) in dash as in bash, whatever bytes it holds.
#[test]
fn on_lines_come_back_with_printf_b_in_posix_sh() {
    let server = TestServer::start();
    let messages: Vec<Vec<u8>> = vec![
        binary_payload(),
        (0..=255u8).collect(),
        b"tab\tand \\c and \\0101 and %s and \x1b5 and caf\xc3\xa9\n".to_vec(),
        b"-n".to_vec(),
        b"ends with two newlines\n\n".to_vec(),
        Vec::new(),
    ];
    for message in &messages {
        put(&server, "shell", message);
    }
    let on = OnProcess::start(beuss(&server), &["shell"], b'\n');
    let lines: Vec<Vec<u8>> = messages.iter().map(|_| on.next()).collect();
    for shell in posix_shells() {
        for (message, line) in messages.iter().zip(&lines) {
            let output = Command::new(shell)
                .args(["-c", "IFS= read -r line; printf '%b\\n' \"$line\""])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    let mut input = child.stdin.take().unwrap();
                    input.write_all(line)?;
                    input.write_all(b"\n")?;
                    drop(input);
                    child.wait_with_output()
                })
                .unwrap();
            let mut expected = message.clone();
            if !expected.ends_with(b"\n") {
                expected.push(b'\n');
            }
            assert!(
                output.stdout == expected,
                "{shell}: {:?} came back as {:?}, not {:?}",
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&expected)
            );
        }
    }
}

/// ON -0 ends each message with NUL; ON --raw writes the bytes alone.
#[test]
fn on_null_and_raw_formats() {
    let server = TestServer::start();
    let on = OnProcess::start(beuss(&server), &["nul", "-0"], 0);
    put(&server, "nul", b"line one\nline two\n");
    put(&server, "nul", b"\xff\\");
    assert_eq!(on.next(), b"line one\nline two\n");
    assert_eq!(on.next(), b"\xff\\");

    let on = OnProcess::start(beuss(&server), &["raw", "--raw"], b'|');
    put(&server, "raw", b"a|");
    put(&server, "raw", b"\x00b|");
    assert_eq!(on.next(), b"a");
    assert_eq!(on.next(), b"\x00b");
}

/// ON --dir writes each message whole into its own numbered file, numbering on after
/// the files already there, and prints each path.
#[test]
fn on_dir_writes_one_numbered_file_per_message() {
    let server = TestServer::start();
    let dir = tempdir("on-dir").join("inbox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0000000007"), b"from an earlier run").unwrap();
    let on = OnProcess::start(
        beuss(&server),
        &["jobs", "--dir", dir.to_str().unwrap()],
        b'\n',
    );
    let payloads = [binary_payload(), b"second\n".to_vec(), Vec::new()];
    for payload in &payloads {
        put(&server, "jobs", payload);
    }
    for (i, payload) in payloads.iter().enumerate() {
        let path = on.next_line();
        let expected = dir.join(format!("{:010}", 8 + i));
        assert_eq!(Path::new(&path), expected);
        assert_eq!(&std::fs::read(&path).unwrap(), payload);
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "no temporary files left: {names:?}");
}

/// ON --dir never overwrites a file that appeared after it started (say, written by
/// another ON on the same folder): it skips to the next free number.
#[test]
fn on_dir_skips_a_number_taken_after_it_started() {
    let server = TestServer::start();
    let dir = tempdir("on-dir-shared").join("inbox");
    std::fs::create_dir_all(&dir).unwrap();
    let on = OnProcess::start(
        beuss(&server),
        &["shared", "--dir", dir.to_str().unwrap()],
        b'\n',
    );
    // Once ON waits in its GET it has chosen 0000000001 as its next name.
    server.wait_for_stat("waiters", 1);
    std::fs::write(dir.join("0000000001"), b"someone else's").unwrap();
    put(&server, "shared", b"mine");
    assert_eq!(Path::new(&on.next_line()), dir.join("0000000002"));
    assert_eq!(
        std::fs::read(dir.join("0000000001")).unwrap(),
        b"someone else's"
    );
    assert_eq!(std::fs::read(dir.join("0000000002")).unwrap(), b"mine");
}

/// ON survives a server restart on the same port: it says so on stderr, reconnects
/// and goes on printing messages sent to the new server.
#[test]
fn on_reconnects_after_server_restart() {
    let first = TestServer::start();
    let port = first.port;
    let on = OnProcess::start(beuss_at(port), &["restart"], b'\n');
    put(&first, "restart", b"before\n");
    assert_eq!(on.next_line(), "before");
    first.stop_with(libc::SIGTERM);
    let second = TestServer::start_with(&[("BPORT", &port.to_string())]);
    assert_eq!(second.port, port);
    put(&second, "restart", b"after\n");
    assert_eq!(on.next_line(), "after");
    on.stderr_with("reconnecting");
    on.stderr_with("reconnected");
}

/// ON --no-reconnect exits with code 3 when the server stops.
#[test]
fn on_without_reconnect_exits_3_when_server_stops() {
    let server = TestServer::start();
    let mut on = OnProcess::start(beuss(&server), &["q", "--no-reconnect"], b'\n');
    put(&server, "q", b"one\n");
    assert_eq!(on.next_line(), "one");
    // Stop only once ON waits again, so that this always tests a parked consumer (a
    // consumer between two GETs is told the same way, see tests/lifecycle.rs).
    server.wait_for_stat("waiters", 1);
    server.stop_with(libc::SIGTERM);
    assert_eq!(on.exit_code(), Some(EXIT_CONNECT));
    assert!(on.stderr().contains("shutting down"), "{}", on.stderr());
}

/// When ON's reader goes away (`beuss ON q | head -1`), ON exits 0 while waiting,
/// without taking the next message from the queue.
#[test]
fn on_exits_when_its_reader_goes_away() {
    let server = TestServer::start();
    let mut child = beuss(&server)
        .args(["ON", "head"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Like `head -1`: read one line, then close the pipe.
    let stdout = child.stdout.take().unwrap();
    let (tx, first) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    put(&server, "head", b"first\n");
    assert_eq!(first.recv_timeout(TIMEOUT).expect("first line"), "first\n");
    let status = wait_exit(&mut child, "ON did not exit after its reader left");
    assert_eq!(status.code(), Some(0));
    put(&server, "head", b"second\n");
    let output = run(beuss(&server).args(["GET", "head"]), b"");
    assert_eq!(output.stdout, b"second\n", "the next message stayed queued");
}

/// With no server listening, every verb explains it and exits 3.
#[test]
fn connection_refused_is_explained_with_exit_3() {
    let port = closed_port();
    for args in [
        &["PUT", "q"][..],
        &["GET", "q"],
        &["ON", "q"],
        &["STATS"],
        &["PING"],
    ] {
        let output = run(beuss_at(port).args(args), b"x");
        assert_eq!(output.status.code(), Some(EXIT_CONNECT), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains(&format!(
                "cannot connect to 127.0.0.1:{port}: connection refused"
            )) && message.contains("is beuss-server running?"),
            "{args:?}: {message}"
        );
    }
}

/// A stand-in for something else on a free loopback port, serving until the test
/// process ends: `answer` gets each connection's first read and says what to write
/// back, or `None` to close the connection without a word.
fn fake_server(answer: fn(&[u8]) -> Option<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    match answer(&buf[..n]) {
                        Some(reply) => {
                            if conn.write_all(reply).is_err() {
                                return;
                            }
                        }
                        None => return, // dropping `conn` closes it
                    }
                }
            });
        }
    });
    port
}

/// The old Go beuss server, as its `handleIncomingConnection` behaves: a connection
/// opens with the ASCII word `GET` or `PUT`, answered `OK`; `QUIT` ends it; any other
/// first bytes (such as a protocol-1 frame) close it without a reply. After `GET` it
/// answers a queue name with `EMPTY`.
fn old_go_server(got: &[u8]) -> Option<&'static [u8]> {
    match got {
        b"GET" | b"PUT" => Some(b"OK"),
        b"QUIT" => None,
        _ if got.first().is_some_and(u8::is_ascii_alphanumeric) => Some(b"EMPTY"),
        _ => None,
    }
}

/// Every verb pointed at an old Go beuss server says that it is not a protocol-1
/// server and exits 1, instead of blaming a stopped server; anything else that
/// answers with bytes that are not a protocol-1 reply gets the same diagnosis.
#[test]
fn old_go_server_and_other_services_are_recognised() {
    let go = fake_server(old_go_server);
    for args in [
        &["PUT", "q"][..],
        &["GET", "q"],
        &["ON", "q"],
        &["STATS"],
        &["PURGE", "q"],
        &["PING"],
    ] {
        let output = run(beuss_at(go).args(args), b"x");
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {message}");
        assert!(
            message.contains("is not a beuss protocol-1 server")
                && message.contains("old Go beuss"),
            "{args:?}: {message}"
        );
    }
    let http = fake_server(|_| Some(b"HTTP/1.1 400 Bad Request\r\n\r\n"));
    let output = run(beuss_at(http).arg("PING"), b"");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("is not a beuss protocol-1 server (it answered \"HTTP/1.1 400"),
        "{message}"
    );
}

/// --host and --port win over BHOST and BPORT; BPORT alone is used without them.
#[test]
fn host_and_port_flags_override_env() {
    let server = TestServer::start();
    let port = server.port.to_string();
    let mut wrong_env = beuss_at(closed_port());
    wrong_env.env("BHOST", "127.0.0.2"); // loopback, but the server is not bound there
    let output = run(
        wrong_env.args(["--host", "127.0.0.1", "PUT", "q", "--port", &port]),
        b"via flags",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = run(
        beuss_at(closed_port()).args(["GET", "q", &format!("--port={port}")]),
        b"",
    );
    assert_eq!(output.stdout, b"via flags");
    let output = run(beuss(&server).args(["--port", "0", "PING"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_USAGE));
}

/// STATS prints a table with a row per queue; --json prints one JSON object with the
/// same figures.
#[test]
fn stats_table_and_json() {
    let server = TestServer::start();
    put(&server, "alpha", b"12345");
    put(&server, "alpha", b"6789");
    put(&server, "we\"ird\\name", b"x");
    let output = run(beuss(&server).arg("stats"), b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.contains("max_message_size"), "{table}");
    let header = table
        .lines()
        .find(|l| l.starts_with("queue "))
        .expect(&table);
    assert!(
        header.split_whitespace().eq([
            "queue",
            "ready",
            "in_flight",
            "delayed",
            "dead",
            "waiters",
            "bytes",
            "memory",
            "idle_ms"
        ]),
        "{header}"
    );
    let alpha: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("alpha "))
        .expect(&table)
        .split_whitespace()
        .collect();
    assert_eq!(&alpha[1..5], ["2", "0", "0", "0"], "ready..dead of alpha");
    assert_eq!(alpha[6], "9", "bytes of alpha");
    // Readable in a terminal: the queue rows fit 80 columns with short names.
    let widest = table
        .lines()
        .skip_while(|l| !l.starts_with("queue "))
        .map(str::len)
        .max();
    assert!(widest.is_some_and(|w| w <= 80), "{table}");

    let output = run(beuss(&server).args(["STATS", "--json"]), b"");
    let json = stdout(&output);
    assert!(
        json.starts_with("{\"server\":{") && json.ends_with("}}\n"),
        "{json}"
    );
    assert!(
        json.contains("\"alpha\":{\"messages\":2,\"bytes\":9,"),
        "{json}"
    );
    assert!(json.contains(r#""we\"ird\\name":{"messages":1,"#), "{json}");
    for figure in [
        "\"puts\":2",
        "\"ready\":2",
        "\"acks\":0",
        "\"dead_lettered\":0",
    ] {
        assert!(json.contains(figure), "{figure} in {json}");
    }
    assert_json_shape(json.trim_end());

    let output = run(beuss(&server).args(["STATS", "alpha", "--json"]), b"");
    let json = stdout(&output);
    assert!(
        json.contains("\"alpha\"") && !json.contains("ird"),
        "{json}"
    );
}

/// STATS on a queue that does not exist still prints the server's figures, says so
/// on stderr and exits 4, like GET on an empty queue; it does not create the queue.
#[test]
fn stats_of_a_missing_queue_exits_4() {
    let server = TestServer::start();
    let output = run(beuss(&server).args(["STATS", "nosuch"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_EMPTY));
    assert!(
        stdout(&output).contains("max_message_size"),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("no queue named nosuch"),
        "{}",
        stderr(&output)
    );
    let output = run(beuss(&server).args(["STATS", "nosuch", "--json"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_EMPTY));
    assert!(
        stdout(&output).ends_with(",\"queues\":{}}\n"),
        "{}",
        stdout(&output)
    );
    assert_eq!(server.stat("queues"), 0);
}

/// A minimal structural check of JSON: balanced braces outside strings, valid
/// escapes, no trailing commas.
fn assert_json_shape(json: &str) {
    let mut depth = 0i32;
    let mut in_string = false;
    let mut chars = json.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    let escaped = chars.next().expect("escape at end");
                    assert!("\"\\/bfnrtu".contains(escaped), "bad escape \\{escaped}");
                }
                '"' => in_string = false,
                c => assert!(u32::from(c) >= 0x20, "raw control character in string"),
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                assert_ne!(previous, ',', "trailing comma");
                depth -= 1;
            }
            c => assert!(c.is_ascii_digit() || c == ':' || c == ',', "stray {c:?}"),
        }
        previous = c;
    }
    assert!(!in_string && depth == 0, "unbalanced JSON: {json}");
}

/// A PUT over the server's BMAXMESSAGESIZE is stored cut, with a warning on stderr
/// naming both sizes; it still exits 0.
#[test]
fn truncated_put_warns_with_both_sizes() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "100")]);
    let payload = vec![b'z'; 250];
    let output = run(beuss(&server).args(["PUT", "big"]), &payload);
    assert_eq!(output.status.code(), Some(0));
    let warning = stderr(&output);
    assert!(
        warning.contains("truncated") && warning.contains("250") && warning.contains("100"),
        "{warning}"
    );
    let output = run(beuss(&server).args(["GET", "big"]), b"");
    assert_eq!(output.stdout, &payload[..100]);
}

/// A file over 1 MiB as standard input is sent from where its offset stands (as a
/// shell leaves it after `read`), whole and byte for byte.
#[test]
fn put_streams_a_large_file_from_its_offset() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "8M")]);
    let dir = tempdir("put-file");
    let payload: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(dir.join("big"), &payload).unwrap();
    let mut file = std::fs::File::open(dir.join("big")).unwrap();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(1000)).unwrap();
    let output = run_from_file(beuss(&server).args(["PUT", "file"]), file);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let output = run(beuss(&server).args(["GET", "file"]), b"");
    assert!(output.stdout == payload[1000..], "GET gave other bytes");
}

/// A stand-in protocol-1 server that announces a `max_message_size` of 100, records the
/// `length` of the one `PUT` frame it gets and how many bytes followed, and answers it
/// as the real server would (`TRUNCATED` or `STORED`).
fn recording_server() -> (u16, Receiver<(u32, usize)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut hello = [0; 8];
        conn.read_exact(&mut hello).unwrap();
        let mut reply = Vec::new();
        beuss::protocol::encode_hello(&mut reply, 1, 100, "recorder");
        conn.write_all(&reply).unwrap();
        let mut len = [0; 4];
        conn.read_exact(&mut len).unwrap();
        let len = u32::from_be_bytes(len);
        let mut frame = vec![0; len as usize];
        conn.read_exact(&mut frame).unwrap();
        let payload = frame.len() - 3 - usize::from(frame[2]);
        let reply = match payload {
            0..=100 => common::STORED.to_vec(),
            _ => common::truncated_reply(payload as u32, 100),
        };
        conn.write_all(&reply).unwrap();
        let mut rest = Vec::new();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let _ = conn.read_to_end(&mut rest); // the client hangs up
        tx.send((len, payload + rest.len())).unwrap();
    });
    (port, rx)
}

/// Over the limit, PUT sends a frame that declares and carries exactly the limit
/// plus one byte, whether standard input is a pipe (read to its end, so its writer
/// is never cut off) or a large file (not read further); the warning gives the
/// input's real size.
#[test]
fn put_over_the_limit_sends_one_byte_more_and_reports_the_real_size() {
    let (port, frames) = recording_server();
    let mut child = beuss_at(port)
        .args(["PUT", "q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || input.write_all(&vec![b'p'; 300_000]));
    let output = finish(child);
    writer.join().unwrap().expect("beuss read the whole pipe");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("standard input had 300000 bytes, the server stored the first 100"),
        "{}",
        stderr(&output)
    );
    assert_eq!(frames.recv_timeout(TIMEOUT).unwrap(), (3 + 1 + 101, 101));

    let (port, frames) = recording_server();
    let dir = tempdir("put-limit");
    std::fs::write(dir.join("big"), vec![b'f'; 5 << 20]).unwrap();
    let file = std::fs::File::open(dir.join("big")).unwrap();
    let output = run_from_file(beuss_at(port).args(["PUT", "q"]), file);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("standard input had {} bytes", 5 << 20)),
        "{}",
        stderr(&output)
    );
    assert_eq!(frames.recv_timeout(TIMEOUT).unwrap(), (3 + 1 + 101, 101));
}

/// A PUT refused because the server is full exits 5 and says so.
#[test]
fn full_server_put_exits_5() {
    let server = TestServer::start_with(&[("BMAXMEMORY", "4K"), ("BMAXMESSAGESIZE", "1K")]);
    let payload = vec![b'f'; 1000];
    for _ in 0..10 {
        let output = run(beuss(&server).args(["PUT", "full"]), &payload);
        match output.status.code() {
            Some(0) => continue,
            Some(EXIT_FULL) => {
                assert!(stderr(&output).contains("full"), "{}", stderr(&output));
                return;
            }
            other => panic!("unexpected exit {other:?}: {}", stderr(&output)),
        }
    }
    panic!("the server never reported FULL");
}

/// Bad arguments exit 2 with a pointer to --help; --help prints usage and exits 0,
/// for the whole command and for each verb.
#[test]
fn usage_and_help() {
    let port = closed_port();
    for args in [
        &[][..],
        &["FETCH", "q"],
        &["PUT"],
        &["GET"],
        &["PUT", "q", "--json"],
        &["ON", "q", "--raw", "-0"],
    ] {
        let output = run(beuss_at(port).args(args), b"");
        assert_eq!(output.status.code(), Some(EXIT_USAGE), "{args:?}");
        assert!(stderr(&output).contains("--help") || stderr(&output).contains("Usage"));
    }
    let output = run(beuss_at(port).arg("--help"), b"");
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("Exit codes"));
    for verb in [
        "PUT", "get", "On", "ACK", "nack", "TOUCH", "DEAD", "WORK", "STATS", "PURGE", "PING",
    ] {
        let output = run(beuss_at(port).args([verb, "--help"]), b"");
        assert_eq!(output.status.code(), Some(0), "{verb}");
        let help = stdout(&output);
        assert!(
            help.starts_with(&format!("Usage: beuss {}", verb.to_uppercase())),
            "{help}"
        );
        fits_80_columns(&help);
    }
    fits_80_columns(&stdout(&output_of_main_help(port)));
}

/// `beuss --help`.
fn output_of_main_help(port: u16) -> Output {
    run(beuss_at(port).arg("--help"), b"")
}

/// Help is read in 80-column terminals.
fn fits_80_columns(help: &str) {
    for line in help.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
    }
}

/// PING reports the server; PURGE empties a queue and says how many it dropped.
#[test]
fn ping_and_purge() {
    let server = TestServer::start();
    let output = run(beuss(&server).arg("ping"), b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("PONG from 127.0.0.1:"),
        "{}",
        stdout(&output)
    );
    put(&server, "p", b"1");
    put(&server, "p", b"2");
    let output = run(beuss(&server).args(["PURGE", "p"]), b"");
    assert_eq!(stdout(&output), "purged 2 messages from p\n");
    let output = run(beuss(&server).args(["GET", "p"]), b"");
    assert_eq!(output.status.code(), Some(EXIT_EMPTY));
}

/// A fresh, empty directory for one test under the target's temp dir.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("beuss-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
