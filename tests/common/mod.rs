//! Shared test helpers: start the real `beuss-server` binary on a free loopback port,
//! talk to it, read its logs and memory, stop it. Every server is killed on drop, so
//! none outlives its test.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beuss::Client;

/// How long any single wait in a test may take before it counts as a hang.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `beuss-server` child process.
pub struct TestServer {
    child: Child,
    /// `127.0.0.1:port` it listens on.
    pub addr: String,
    /// Its port.
    pub port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts a server with default settings on a free port.
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Starts a server with extra environment variables (e.g. `("BQUEUEIDLE", "1")`).
    pub fn start_with(env: &[(&str, &str)]) -> TestServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_beuss-server"));
        command
            .env_clear()
            .env("BHOST", "127.0.0.1")
            .env("BPORT", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn beuss-server");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split([' ', ',']).next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "beuss-server did not start; its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        TestServer {
            child,
            addr,
            port,
            logs,
        }
    }

    /// A library client connected to this server, with a read timeout so that a
    /// missing reply fails the test instead of hanging it.
    pub fn client(&self) -> Client {
        let mut client = Client::connect(&self.addr).expect("connect");
        client.set_timeout(Some(TIMEOUT)).unwrap();
        client
    }

    /// A raw socket to this server, with read and write timeouts.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; panics after [`TIMEOUT`].
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}; log:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) and waits for the process to exit.
    pub fn stop_with(mut self, signal: i32) -> ExitStatus {
        // SAFETY: kill() with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit on signal");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns true; panics with `what` after [`TIMEOUT`].
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes all of `bytes`.
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).expect("write to server");
}

/// Reads one whole response frame (length prefix included).
pub fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).expect("read frame length");
    let len = u32::from_be_bytes(prefix) as usize;
    let mut frame = prefix.to_vec();
    frame.resize(4 + len, 0);
    stream.read_exact(&mut frame[4..]).expect("read frame body");
    frame
}

/// Asserts the server closed `stream` (EOF, or a reset) within [`TIMEOUT`].
pub fn expect_closed(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("expected the server to close the connection, got data"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "expected close, got {e}"
        ),
    }
}
