//! The server process from start to stop: its settings and their errors, `--help`,
//! the startup line, clean shutdown on SIGTERM and SIGINT, and what happens to a
//! waiting consumer when its own connection or the server goes away.

mod common;

use common::*;

/// Stops `server` with `signal` and checks that it exited 0 and logged a "stopped:"
/// line; returns that line.
fn stop_cleanly(server: TestServer, signal: i32) -> String {
    let (status, logs) = server.stop_collecting_logs(signal);
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        logs.join("\n")
    );
    logs.iter()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no \"stopped:\" line; log:\n{}", logs.join("\n")))
        .clone()
}

/// Stops a server holding 3 messages in 2 queues with `signal`: it exits 0 and its
/// last words say how many messages were held.
fn stops_cleanly_on(signal: i32) {
    let server = TestServer::start();
    let mut c = server.client();
    c.put("a", b"one").unwrap();
    c.put("a", b"two").unwrap();
    c.put("b", b"three").unwrap();
    let mut idle = server.raw();
    send(&mut idle, &ping_frame());
    assert_eq!(read_frame(&mut idle), PONG);
    let stopped = stop_cleanly(server, signal);
    assert!(stopped.contains("stopped: 3 messages"), "{stopped}");
    assert!(stopped.contains("2 queues"), "{stopped}");
    assert!(stopped.contains("; 2 connections closed"), "{stopped}");
    // Every connection was told, then closed.
    expect_shutting_down_then_eof(&mut idle);
    assert!(c.ping().is_err());
}

/// Reads a fatal SHUTTING_DOWN and then a clean end of stream: a FIN, not a reset
/// (which could have destroyed the error before it was read).
fn expect_shutting_down_then_eof(stream: &mut std::net::TcpStream) {
    let (code, fatal, _) = parse_error(&read_frame(stream));
    assert_eq!((code, fatal), (10, 1), "expected a fatal SHUTTING_DOWN");
    expect_closed_cleanly(stream);
}

/// Asserts a clean end of stream (a FIN), not a reset.
fn expect_closed_cleanly(stream: &mut std::net::TcpStream) {
    use std::io::Read;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("expected EOF, got data"),
        Err(e) => panic!("expected EOF, got {e}"),
    }
}

/// The stop line counts in the singular too.
#[test]
fn stop_line_uses_the_singular_for_one() {
    let server = TestServer::start();
    let mut c = server.client();
    c.put("a", b"x").unwrap();
    let stopped = stop_cleanly(server, libc::SIGTERM);
    assert!(
        stopped.contains("stopped: 1 message (1 byte) in 1 queue were held"),
        "{stopped}"
    );
    assert!(stopped.contains("; 1 connection closed"), "{stopped}");
}

/// SIGTERM: exit status 0 and a "stopped:" line with the count of messages held.
#[test]
fn sigterm_stops_cleanly_and_reports_what_was_held() {
    stops_cleanly_on(libc::SIGTERM);
}

/// SIGINT: the same as SIGTERM.
#[test]
fn sigint_stops_cleanly_and_reports_what_was_held() {
    stops_cleanly_on(libc::SIGINT);
}

/// An empty server stops cleanly too and says it held nothing.
#[test]
fn empty_server_stops_cleanly() {
    let server = TestServer::start();
    let stopped = stop_cleanly(server, libc::SIGTERM);
    assert!(stopped.contains("stopped: 0 messages"), "{stopped}");
}

/// A parked GET is answered with a fatal SHUTTING_DOWN (code 10) when the server
/// receives SIGTERM, and the connection is then closed.
#[test]
fn parked_get_gets_shutting_down_on_sigterm() {
    let server = TestServer::start();
    let mut consumer = server.raw();
    send(&mut consumer, &get_frame(b"q", 60_000, 1));
    server.wait_for_stat("waiters", 1);
    let status = server.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    expect_shutting_down_then_eof(&mut consumer);
}

/// A GET parked forever also gets SHUTTING_DOWN, after the replies to the requests
/// that came before it.
#[test]
fn parked_forever_get_gets_shutting_down_after_earlier_replies() {
    let server = TestServer::start();
    let mut consumer = server.raw();
    let mut bytes = ping_frame();
    bytes.extend(get_frame(b"q", u32::MAX, 1));
    bytes.extend(ping_frame());
    send(&mut consumer, &bytes);
    assert_eq!(read_frame(&mut consumer), PONG);
    server.wait_for_stat("waiters", 1);
    assert!(server.stop_with(libc::SIGINT).success());
    expect_shutting_down_then_eof(&mut consumer);
}

/// A request sent just as the server stops gets its reply or SHUTTING_DOWN, and the
/// connection then ends cleanly (no reset), whichever the server saw first.
#[test]
fn request_sent_as_the_server_stops_gets_an_answer_or_shutting_down() {
    let server = TestServer::start();
    let mut client = server.raw();
    send(&mut client, &ping_frame());
    assert_eq!(read_frame(&mut client), PONG);
    send(&mut client, &ping_frame());
    assert!(server.stop_with(libc::SIGTERM).success());
    let first = read_frame(&mut client);
    if first != PONG {
        let (code, fatal, _) = parse_error(&first);
        assert_eq!((code, fatal), (10, 1), "expected PONG or SHUTTING_DOWN");
        expect_closed_cleanly(&mut client);
    } else {
        expect_shutting_down_then_eof(&mut client);
    }
}

/// A parked consumer whose pipelined backlog the server had stopped reading (bytes
/// left unread in the server's kernel buffer) still reads SHUTTING_DOWN and then a
/// clean EOF: the server drops the unread input before closing, so the close is not
/// a reset.
#[test]
fn parked_consumer_with_a_full_backlog_gets_shutting_down_without_a_reset() {
    let server = TestServer::start();
    let mut a = server.raw();
    send(&mut a, &get_frame(b"q", 60_000, 1));
    server.wait_for_stat("waiters", 1);
    fill_backlog(&server, &mut a);
    assert!(server.stop_with(libc::SIGTERM).success());
    expect_shutting_down_then_eof(&mut a);
}

/// `beuss-server --help` lists every variable and exits 0.
#[test]
fn help_lists_every_variable() {
    let (status, stdout, _) = run_server_to_exit(&["--help"], &[]);
    assert!(status.success(), "{status:?}");
    for var in [
        "BHOST",
        "BPORT",
        "BMAXMESSAGESIZE",
        "BQUEUEIDLE",
        "BMAXMEMORY",
        "BMAXCONNECTIONS",
    ] {
        assert!(
            stdout.contains(var),
            "--help does not mention {var}:\n{stdout}"
        );
    }
}

/// A bad value stops start-up: non-zero exit and a message naming the variable.
#[test]
fn bad_settings_stop_startup_naming_the_variable() {
    for (var, value) in [
        ("BPORT", "abc"),
        ("BPORT", "70000"),
        ("BMAXMESSAGESIZE", "0"),
        ("BMAXMESSAGESIZE", "ten"),
        ("BMAXMESSAGESIZE", "2G"),
        ("BMAXMEMORY", "0"),
        ("BMAXMEMORY", "lots"),
        ("BMAXCONNECTIONS", "0"),
        ("BMAXCONNECTIONS", "-5"),
        ("BQUEUEIDLE", "soon"),
        ("BQUEUEIDLE", "-1"),
    ] {
        let mut env = vec![("BHOST", "127.0.0.1"), ("BPORT", "0")];
        env.retain(|(k, _)| *k != var);
        env.push((var, value));
        let (status, _, stderr) = run_server_to_exit(&[], &env);
        assert!(
            !status.success(),
            "{var}={value:?} was accepted; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains(var),
            "{var}={value:?}: the message does not name {var}:\n{stderr}"
        );
    }
    // Two variables that are fine alone but not together.
    let (status, _, stderr) = run_server_to_exit(
        &[],
        &[
            ("BHOST", "127.0.0.1"),
            ("BPORT", "0"),
            ("BMAXMESSAGESIZE", "2M"),
            ("BMAXMEMORY", "1M"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("BMAXMESSAGESIZE"), "{stderr}");
}

/// An unexpected argument is refused with a non-zero exit.
#[test]
fn unexpected_argument_is_refused() {
    let (status, _, stderr) = run_server_to_exit(&["--port=1"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("--port=1"), "{stderr}");
}

/// The startup line names the address and every limit in force.
#[test]
fn startup_line_names_address_and_limits() {
    let server = TestServer::start_with(&[
        ("BMAXMESSAGESIZE", "2K"),
        ("BMAXMEMORY", "3M"),
        ("BMAXCONNECTIONS", "77"),
        ("BQUEUEIDLE", "250ms"),
    ]);
    let line = server.wait_for_log("listening on");
    assert!(
        line.contains(&format!("127.0.0.1:{}", server.port)),
        "{line}"
    );
    for figure in ["2048", "3145728", "77", "250ms"] {
        assert!(line.contains(figure), "{figure} missing from: {line}");
    }
    assert!(line.contains("loopback only"), "{line}");
    let mut c = server.client();
    let stats = c.stats().unwrap();
    assert_eq!(stats.get("max_message_size"), Some(2048));
    assert_eq!(stats.get("max_memory"), Some(3 << 20));
    let (_, logs) = server.stop_collecting_logs(libc::SIGTERM);
    assert!(
        !logs.iter().any(|l| l.contains("no authentication")),
        "a loopback bind must not warn: {logs:?}"
    );
}

/// Binding every interface logs it and warns that anyone who can connect can read
/// and delete every message (there is no authentication).
#[test]
fn non_loopback_bind_warns_at_startup() {
    let server = TestServer::start_with(&[("BHOST", "0.0.0.0")]);
    let line = server.wait_for_log("listening on");
    assert!(line.contains("every network interface"), "{line}");
    let warning = server.wait_for_log("no authentication");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(&format!("0.0.0.0:{}", server.port))
            && warning.contains("read, add and delete every message"),
        "{warning}"
    );
}

/// `localhost` resolves to loopback addresses only: no warning.
#[test]
fn localhost_bind_is_loopback_only() {
    let server = TestServer::start_with(&[("BHOST", "localhost")]);
    let line = server.wait_for_log("listening on");
    assert!(line.contains("loopback only"), "{line}");
    let (_, logs) = server.stop_collecting_logs(libc::SIGTERM);
    assert!(
        !logs.iter().any(|l| l.contains("no authentication")),
        "{logs:?}"
    );
}

/// A consumer whose client disconnects while parked is cancelled at once: the next
/// PUT is stored, not handed to the dead connection, and another consumer gets it.
#[test]
fn waiter_whose_client_disconnects_is_cancelled_at_once() {
    let server = TestServer::start();
    let mut a = server.raw();
    send(&mut a, &get_frame(b"q", 5000, 1));
    server.wait_for_stat("waiters", 1);
    drop(a);
    server.wait_for_stat("waiters", 0);

    let mut b = server.raw();
    send(&mut b, &put_frame(b"q", b"not for A"));
    assert_eq!(read_frame(&mut b), STORED);
    send(&mut b, &get_frame(b"q", 0, 1));
    assert_eq!(read_frame(&mut b), messages_reply(&[b"not for A"]));
    let stats = server.client().stats().unwrap();
    assert_eq!(stats.get("puts"), Some(1));
    assert_eq!(stats.get("gets"), Some(1));
}

/// A consumer that half-closes (shuts its write side) while parked is cancelled too,
/// and the message it did not get stays for the next consumer.
#[test]
fn waiter_that_shuts_down_its_side_is_cancelled() {
    let server = TestServer::start();
    let mut a = server.raw();
    let mut bytes = get_frame(b"q", 5000, 1);
    bytes.extend(ping_frame());
    send(&mut a, &bytes);
    server.wait_for_stat("waiters", 1);
    a.shutdown(std::net::Shutdown::Write).unwrap();
    server.wait_for_stat("waiters", 0);
    let mut c = server.client();
    c.put("q", b"kept").unwrap();
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"kept"[..]));
}

/// Of two parked consumers, the one that disconnects is skipped and the other gets
/// the message.
#[test]
fn disconnected_waiter_is_skipped_for_the_next_one() {
    let server = TestServer::start();
    let mut first = server.raw();
    send(&mut first, &get_frame(b"q", 5000, 1));
    server.wait_for_stat("waiters", 1);
    let mut second = server.raw();
    send(&mut second, &get_frame(b"q", 5000, 1));
    server.wait_for_stat("waiters", 2);
    drop(first);
    server.wait_for_stat("waiters", 1);
    let mut c = server.client();
    c.put("q", b"to the second").unwrap();
    assert_eq!(read_frame(&mut second), messages_reply(&[b"to the second"]));
    assert_eq!(stat_of(&mut c, "messages"), 0);
}

/// Pipelines PINGs behind a parked GET on `a`, step by step, until the server has
/// stopped reading `a` (bytes left unread in its kernel buffer, and still unread a
/// moment later) while every byte sent has reached that kernel buffer (none stuck in
/// `a`'s send queue). Returns how many PINGs were sent.
///
/// Steps are small (3,000 bytes) so that the first step the server leaves unread
/// cannot overflow its receive window, however small the kernel made it.
fn fill_backlog(server: &TestServer, a: &mut std::net::TcpStream) -> usize {
    const STEP: usize = 500;
    let step: Vec<u8> = (0..STEP).flat_map(|_| ping_frame()).collect();
    let mut pings = 0;
    loop {
        assert!(
            pings < 400_000,
            "the server kept reading a parked connection"
        );
        send(a, &step);
        pings += STEP;
        eventually("the backlog to reach the server's kernel", || {
            unacked_bytes(a) == 0
        });
        let unread = server_unread_bytes(server.port, a);
        if unread > 0 {
            // Unread for a moment, not merely not yet read: the server has stopped.
            std::thread::sleep(std::time::Duration::from_millis(50));
            if server_unread_bytes(server.port, a) == unread {
                return pings;
            }
        }
    }
}

/// A parked consumer with a backlog of pipelined requests larger than the server
/// will buffer (so it has stopped reading that socket) is still cancelled at once
/// when it disconnects.
///
/// The backlog is sent in steps until the server leaves bytes unread in its kernel
/// buffer, and every byte must have reached the server's kernel before the close, so
/// that the FIN really goes out (a FIN queued behind unsent bytes could not).
#[test]
fn parked_consumer_with_a_full_backlog_is_cancelled_on_disconnect() {
    // A small message limit keeps the server's input cap, and so the backlog, small.
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "10240")]);
    let mut a = server.raw();
    send(&mut a, &get_frame(b"q", 60_000, 1));
    server.wait_for_stat("waiters", 1);
    fill_backlog(&server, &mut a);
    drop(a);
    server.wait_for_stat("waiters", 0);
    server.wait_for_stat("connections", 1);
    let mut c = server.client();
    c.put("q", b"stored, not lost").unwrap();
    assert_eq!(stat_of(&mut c, "messages"), 1);
}

/// SIGTERM in the middle of a streamed PUT: the server exits 0 at once and the half
/// message was never stored.
#[test]
fn sigterm_during_a_streamed_put() {
    let server = TestServer::start();
    let mut s = server.raw();
    send(&mut s, &put_head(b"q", 100 << 20));
    send(&mut s, &vec![1u8; 1 << 20]);
    let mut c = server.client();
    assert_eq!(stat_of(&mut c, "connections"), 2);
    let stopped = stop_cleanly(server, libc::SIGTERM);
    assert!(stopped.contains("stopped: 0 messages"), "{stopped}");
}

/// A client that never reads its replies cannot keep the server from stopping: it
/// exits 0 after its short grace period.
#[test]
fn sigterm_with_a_client_that_never_reads() {
    use std::io::Write;
    let server = TestServer::start();
    let mut flooder = server.raw();
    flooder
        .set_write_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.extend(stats_frame(b""));
    }
    let mut blocked = false;
    for _ in 0..10_000 {
        if flooder.write_all(&batch).is_err() {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "the server never pushed back");
    stop_cleanly(server, libc::SIGTERM);
}

/// A parked consumer whose backlog filled what the server buffers (so it stopped
/// reading the socket) gets its message, then the replies to the whole backlog: the
/// server resumes reading without a new readiness event.
#[test]
fn parked_consumer_with_a_full_backlog_resumes_after_its_message() {
    // A small message limit keeps the server's input cap, and so the backlog, small.
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "10240")]);
    let mut a = server.raw();
    send(&mut a, &get_frame(b"q", 60_000, 1));
    server.wait_for_stat("waiters", 1);
    let pings = fill_backlog(&server, &mut a);
    let mut c = server.client();
    c.put("q", b"go").unwrap();
    assert_eq!(read_frame(&mut a), messages_reply(&[b"go"]));
    for i in 0..pings {
        assert_eq!(read_frame(&mut a), PONG, "PONG {i}");
    }
    send(&mut a, &ping_frame());
    assert_eq!(read_frame(&mut a), PONG);
}

/// A port already in use stops start-up with a non-zero exit and a message naming
/// the address.
#[test]
fn port_in_use_stops_startup() {
    let first = TestServer::start();
    let port = first.port.to_string();
    let (status, _, stderr) = run_server_to_exit(&[], &[("BHOST", "127.0.0.1"), ("BPORT", &port)]);
    assert!(!status.success(), "a second server bound the same port");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "the message does not name the address:\n{stderr}"
    );
    first.client().ping().unwrap();
}
