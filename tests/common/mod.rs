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
    /// Its port (0 when it listens on no TCP port).
    pub port: u16,
    /// Its Unix socket, when the test asked for one: [`TestServer::client`] then
    /// connects there.
    pub unix: Option<std::path::PathBuf>,
    logs: Arc<Mutex<Vec<String>>>,
}

/// Which transport a test's clients use (protocol.md 16.6); tests written once run
/// on both through [`on_both_transports!`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Loopback TCP.
    Tcp,
    /// A Unix socket in the temporary directory.
    Unix,
}

/// A fresh socket path in the temporary directory, unique to this process and call.
pub fn temp_socket_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("beuss-test-{}-{n}.sock", std::process::id()))
}

/// Writes `test_name(transport: Transport) { body }` once and gets two tests,
/// `test_name::tcp` and `test_name::unix`, so that every client scenario runs on both
/// transports without being written twice.
#[macro_export]
macro_rules! on_both_transports {
    ($(#[doc = $doc:literal])* fn $name:ident($t:ident: Transport) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($t: Transport) $body
            #[test]
            fn tcp() {
                run(Transport::Tcp)
            }
            #[test]
            fn unix() {
                run(Transport::Unix)
            }
        }
    };
}

impl TestServer {
    /// Starts a server with default settings on a free port.
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Starts a server whose [`TestServer::client`]s use `transport`.
    pub fn start_on(transport: Transport) -> TestServer {
        TestServer::start_with_on(transport, &[])
    }

    /// [`TestServer::start_with`], with clients on `transport`: for the Unix socket the
    /// server also listens on a fresh path (`BUNIX`).
    pub fn start_with_on(transport: Transport, env: &[(&str, &str)]) -> TestServer {
        match transport {
            Transport::Tcp => TestServer::start_with(env),
            Transport::Unix => {
                let path = temp_socket_path();
                let path_text = path.to_str().expect("a UTF-8 temporary path").to_owned();
                let mut env = env.to_vec();
                env.push(("BUNIX", &path_text));
                let mut server = TestServer::start_with(&env);
                server.unix = Some(path);
                server
            }
        }
    }

    /// Starts a server with extra environment variables (e.g. `("BQUEUEIDLE", "1")`).
    pub fn start_with(env: &[(&str, &str)]) -> TestServer {
        TestServer::launch(server_command(env))
    }

    /// Like [`TestServer::start_with`], but the server runs with its open-file limit
    /// (soft and hard) set to `max_files`.
    pub fn start_with_file_limit(env: &[(&str, &str)], max_files: u64) -> TestServer {
        use std::os::unix::process::CommandExt;
        let mut command = server_command(env);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child here.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: max_files as libc::rlim_t,
                    rlim_max: max_files as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        TestServer::launch(command)
    }

    /// Like [`TestServer::start_with`], but `hook` runs in the child between fork and
    /// exec (to set a limit or enter a namespace); it must only make system calls.
    pub fn start_with_pre_exec(
        env: &[(&str, &str)],
        hook: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> TestServer {
        use std::os::unix::process::CommandExt;
        let mut command = server_command(env);
        // SAFETY: the caller's hook only makes async-signal-safe system calls.
        unsafe {
            command.pre_exec(hook);
        }
        TestServer::launch(command)
    }

    /// Spawns `command` and waits for its "listening on" line.
    fn launch(mut command: Command) -> TestServer {
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
        // "unix:PATH" when TCP is off: no port.
        let port = addr.rsplit(':').next().unwrap().parse().unwrap_or(0);
        TestServer {
            child,
            addr,
            port,
            unix: None,
            logs,
        }
    }

    /// A library client connected to this server, with a read timeout so that a
    /// missing reply fails the test instead of hanging it.
    pub fn client(&self) -> Client {
        let mut client = match &self.unix {
            Some(path) => Client::connect_to(&format!("unix:{}", path.display())),
            None => Client::connect_to(&self.addr),
        }
        .expect("connect");
        client.set_timeout(Some(TIMEOUT)).unwrap();
        client
    }

    /// A library client on this server's TCP port, whatever transport the test chose.
    pub fn client_tcp(&self) -> Client {
        let mut client = Client::connect_to(&self.addr).expect("connect");
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
        wait_exit(&mut self.child, "beuss-server did not exit on the signal")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killed, the server could not remove its socket file.
        if let Some(path) = &self.unix {
            let _ = std::fs::remove_file(path);
        }
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

// ---------------------------------------------------------------------------
// Raw frames, STATS look-ups and process helpers (added for the wire, limits,
// lifecycle and concurrency tests). They build bytes by hand, independent of the
// crate's codec, so that the tests check the wire as `protocol.md` documents it.
// ---------------------------------------------------------------------------

/// A request frame: `u32` length, `opcode`, flags 0, `body`.
pub fn request_frame(opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = ((body.len() + 2) as u32).to_be_bytes().to_vec();
    frame.push(opcode);
    frame.push(0);
    frame.extend_from_slice(body);
    frame
}

/// `PING`.
pub fn ping_frame() -> Vec<u8> {
    request_frame(0x02, &[])
}

/// `QUIT`.
pub fn quit_frame() -> Vec<u8> {
    request_frame(0x03, &[])
}

/// `PUT queue payload`.
pub fn put_frame(queue: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = vec![queue.len() as u8];
    body.extend_from_slice(queue);
    body.extend_from_slice(payload);
    request_frame(0x10, &body)
}

/// The head of a `PUT` of `payload_len` bytes (the payload itself is sent separately).
pub fn put_head(queue: &[u8], payload_len: u32) -> Vec<u8> {
    let len = 2 + 1 + queue.len() as u32 + payload_len;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0x10, 0x00, queue.len() as u8]);
    frame.extend_from_slice(queue);
    frame
}

/// `GET queue wait_ms max`.
pub fn get_frame(queue: &[u8], wait_ms: u32, max: u16) -> Vec<u8> {
    let mut body = vec![queue.len() as u8];
    body.extend_from_slice(queue);
    body.extend_from_slice(&wait_ms.to_be_bytes());
    body.extend_from_slice(&max.to_be_bytes());
    request_frame(0x11, &body)
}

/// `STATS` for all queues (empty `queue`) or one.
pub fn stats_frame(queue: &[u8]) -> Vec<u8> {
    let mut body = vec![queue.len() as u8];
    body.extend_from_slice(queue);
    request_frame(0x20, &body)
}

/// Exact reply bytes of the bodiless statuses.
pub const PONG: [u8; 5] = [0, 0, 0, 1, 0x01];
/// `BYE`.
pub const BYE: [u8; 5] = [0, 0, 0, 1, 0x03];
/// `STORED`.
pub const STORED: [u8; 5] = [0, 0, 0, 1, 0x10];
/// `EMPTY`.
pub const EMPTY: [u8; 5] = [0, 0, 0, 1, 0x13];

/// The exact `MESSAGES` frame carrying `payloads`.
pub fn messages_reply(payloads: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![0x12];
    body.extend_from_slice(&(payloads.len() as u32).to_be_bytes());
    for p in payloads {
        body.extend_from_slice(&(p.len() as u32).to_be_bytes());
        body.extend_from_slice(p);
    }
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// The exact `TRUNCATED` frame.
pub fn truncated_reply(original_len: u32, stored_len: u32) -> Vec<u8> {
    let mut frame = vec![0, 0, 0, 9, 0x11];
    frame.extend_from_slice(&original_len.to_be_bytes());
    frame.extend_from_slice(&stored_len.to_be_bytes());
    frame
}

/// Checks that `frame` is a well-formed `ERROR` (length consistent, UTF-8 text of at
/// most 1024 bytes) and returns `(code, fatal, text)`.
pub fn parse_error(frame: &[u8]) -> (u16, u8, String) {
    assert!(
        frame.len() >= 8 && frame[4] == 0x7F,
        "expected an ERROR frame, got {frame:02x?}"
    );
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len + 4, frame.len(), "ERROR length prefix");
    let code = u16::from_be_bytes([frame[5], frame[6]]);
    let fatal = frame[7];
    let text = String::from_utf8(frame[8..].to_vec()).expect("ERROR text is UTF-8");
    assert!(text.len() <= 1024, "ERROR text over 1024 bytes");
    (code, fatal, text)
}

/// Reads one frame and asserts it is a fatal `ERROR` with `code`, then that the
/// server closes the connection. Returns the error text.
pub fn expect_fatal_error(stream: &mut TcpStream, code: u16) -> String {
    let frame = read_frame(stream);
    let (got, fatal, text) = parse_error(&frame);
    assert_eq!(got, code, "error code (text: {text:?})");
    assert_eq!(fatal, 1, "error {code} must be fatal");
    expect_closed(stream);
    text
}

/// A server figure from a `STATS` reply.
pub fn stat_of(client: &mut Client, name: &str) -> u64 {
    client
        .stats()
        .expect("STATS")
        .get(name)
        .unwrap_or_else(|| panic!("no server figure {name:?} in STATS"))
}

impl TestServer {
    /// A server figure, read over a fresh connection (which counts in `connections`).
    pub fn stat(&self, name: &str) -> u64 {
        stat_of(&mut self.client(), name)
    }

    /// Polls `STATS` over one connection until the server figure `name` equals `value`.
    pub fn wait_for_stat(&self, name: &str, value: u64) {
        let mut client = self.client();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = stat_of(&mut client, name);
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "STATS {name} stayed at {now}, expected {value}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal`, waits for the process to exit, and returns its status with
    /// every line it logged (read to the end of its stderr).
    pub fn stop_collecting_logs(self, signal: i32) -> (ExitStatus, Vec<String>) {
        let logs = Arc::clone(&self.logs);
        let status = self.stop_with(signal);
        // The log reader thread holds the only other reference; it drops it at EOF.
        let deadline = Instant::now() + TIMEOUT;
        while Arc::strong_count(&logs) > 1 {
            assert!(Instant::now() < deadline, "server stderr never reached EOF");
            std::thread::sleep(Duration::from_millis(5));
        }
        let lines = logs.lock().unwrap().clone();
        (status, lines)
    }
}

/// Runs `beuss-server` with `args` and only the given environment, expecting it to
/// exit by itself within [`TIMEOUT`] (it is killed, and the test fails, otherwise).
/// Returns its status, stdout and stderr.
pub fn run_server_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beuss-server"));
    command
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn beuss-server");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_exit(
        &mut child,
        &format!("beuss-server {args:?} with {env:?} did not exit by itself"),
    );
    (status, out.join().unwrap(), err.join().unwrap())
}

/// Bytes written to `stream` that the kernel has not yet seen acknowledged by the
/// peer (`SIOCOUTQ`); 0 once everything sent has reached the peer's kernel.
pub fn unacked_bytes(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (== TIOCOUTQ) writes one int through the pointer we pass.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(
        rc,
        0,
        "ioctl(SIOCOUTQ): {}",
        std::io::Error::last_os_error()
    );
    n as usize
}

/// Bytes waiting unread in the server's kernel receive buffer for the connection
/// whose client side is `client` (from `/proc/net/tcp`; IPv4 loopback only).
pub fn server_unread_bytes(server_port: u16, client: &TcpStream) -> u64 {
    server_socket_queues(server_port, client).1
}

/// Bytes the server has written to the connection whose client side is `client` that
/// the client's kernel has not yet taken (the server socket's send queue).
pub fn server_unsent_bytes(server_port: u16, client: &TcpStream) -> u64 {
    server_socket_queues(server_port, client).0
}

/// The server-side socket's (send queue, receive queue) in bytes, from `/proc/net/tcp`.
fn server_socket_queues(server_port: u16, client: &TcpStream) -> (u64, u64) {
    let client_port = client.local_addr().unwrap().port();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port_of = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 4
            && port_of(fields[1]) == server_port
            && port_of(fields[2]) == client_port
        {
            let (tx, rx) = fields[4].split_once(':').unwrap();
            return (
                u64::from_str_radix(tx, 16).unwrap(),
                u64::from_str_radix(rx, 16).unwrap(),
            );
        }
    }
    panic!("no server-side socket for client port {client_port} in /proc/net/tcp");
}

/// The server binary on port 0 of 127.0.0.1, logging at info to a piped stderr, with
/// a clean environment plus `env`.
fn server_command(env: &[(&str, &str)]) -> Command {
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
    command
}

/// Waits up to [`TIMEOUT`] for `child` to exit; past that it is killed and the test
/// fails with `what`.
pub fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `bytes` and reads one reply frame.
pub fn call(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    send(stream, bytes);
    read_frame(stream)
}

// ---------------------------------------------------------------------------
// Version-2 raw frames (protocol.md section 13), for tests that must send what the
// client would refuse or read replies slowly.
// ---------------------------------------------------------------------------

/// A raw `LEASE` frame.
pub fn lease_frame(
    queue: &[u8],
    wait_ms: u32,
    max: u16,
    lease_ms: u32,
    max_deliveries: u16,
    options: u8,
) -> Vec<u8> {
    let mut body = vec![queue.len() as u8];
    body.extend_from_slice(queue);
    body.extend_from_slice(&wait_ms.to_be_bytes());
    body.extend_from_slice(&max.to_be_bytes());
    body.extend_from_slice(&lease_ms.to_be_bytes());
    body.extend_from_slice(&max_deliveries.to_be_bytes());
    body.push(options);
    request_frame(0x13, &body)
}

/// The body of a settle request: queue, its own fields, then the pairs.
fn settle_body(queue: &[u8], head: &[u8], pairs: &[(u64, u32)]) -> Vec<u8> {
    let mut body = vec![queue.len() as u8];
    body.extend_from_slice(queue);
    body.extend_from_slice(head);
    body.extend_from_slice(&(pairs.len() as u16).to_be_bytes());
    for (id, attempt) in pairs {
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&attempt.to_be_bytes());
    }
    body
}

/// A raw `ACK` frame.
pub fn ack_frame(queue: &[u8], pairs: &[(u64, u32)]) -> Vec<u8> {
    request_frame(0x14, &settle_body(queue, &[], pairs))
}

/// A raw `NACK` frame.
pub fn nack_frame(queue: &[u8], delay_ms: u32, options: u8, pairs: &[(u64, u32)]) -> Vec<u8> {
    let mut head = delay_ms.to_be_bytes().to_vec();
    head.push(options);
    request_frame(0x15, &settle_body(queue, &head, pairs))
}

/// A raw `TOUCH` frame.
pub fn touch_frame(queue: &[u8], lease_ms: u32, pairs: &[(u64, u32)]) -> Vec<u8> {
    request_frame(0x16, &settle_body(queue, &lease_ms.to_be_bytes(), pairs))
}

/// `(id, attempt, payload)` of each message of a raw `LEASED` frame.
pub fn parse_leased(frame: &[u8]) -> Vec<(u64, u32, Vec<u8>)> {
    assert_eq!(frame[4], 0x15, "expected LEASED, got {frame:02x?}");
    let count = u32::from_be_bytes(frame[5..9].try_into().unwrap());
    let mut at = 9;
    let mut out = Vec::new();
    for _ in 0..count {
        let id = u64::from_be_bytes(frame[at..at + 8].try_into().unwrap());
        let attempt = u32::from_be_bytes(frame[at + 8..at + 12].try_into().unwrap());
        let len = u32::from_be_bytes(frame[at + 12..at + 16].try_into().unwrap()) as usize;
        out.push((id, attempt, frame[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    assert_eq!(at, frame.len(), "LEASED length");
    out
}

/// A file in the temporary directory, removed when dropped.
pub struct TempFile {
    /// Where it is.
    pub path: std::path::PathBuf,
}

impl TempFile {
    /// A file named after `tag`, unique to this process and call, holding `contents`
    /// with permission bits `mode`.
    pub fn with(tag: &str, contents: &str, mode: u32) -> TempFile {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("beuss-{tag}-{}-{n}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        TempFile { path }
    }

    /// Replaces its contents.
    pub fn write(&self, contents: &str) {
        std::fs::write(&self.path, contents).unwrap();
    }

    /// Its path as text, for an environment variable.
    pub fn text(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A fresh directory in the temporary directory (a `BDATADIR`), removed with what it
/// holds when dropped.
pub struct TempDir {
    /// Where it is.
    pub path: std::path::PathBuf,
}

impl TempDir {
    /// A new empty directory named after `tag`, unique to this process and call.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("beuss-{tag}-{}-{n}-dir", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    /// Its path as text, for an environment variable.
    pub fn text(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// An `AUTH` frame for `token` (protocol.md 16.2).
pub fn auth_frame(token: &[u8]) -> Vec<u8> {
    request_frame(0x40, token)
}

/// Reads one frame and checks it is a non-fatal `ERROR` with `code`; returns its text.
pub fn expect_error(stream: &mut TcpStream, code: u16) -> String {
    let frame = read_frame(stream);
    let (got, fatal, text) = parse_error(&frame);
    assert_eq!(got, code, "error code (text: {text:?})");
    assert_eq!(fatal, 0, "error {code} must not be fatal");
    text
}

/// Runs the `beuss` CLI to its end with only `BHOST=127.0.0.1`, the given environment
/// and `args`, writing `stdin` to it.
pub fn run_cli(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_beuss"))
        .env_clear()
        .env("BHOST", "127.0.0.1")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn beuss");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}
