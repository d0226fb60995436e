//! Connection hygiene (protocol.md 16.5) against a real server: the partial-frame,
//! authentication and idle timeouts close what they should, with a TIMEOUT error and a
//! log line, and leave everyone else alone; the cap on connections per address.

mod common;

use std::io::Write;
use std::thread::sleep;
use std::time::Duration;

use beuss::protocol::ErrorCode;
use common::*;

const PONG: [u8; 5] = [0, 0, 0, 1, 0x01];
const TIMEOUT_CODE: u16 = ErrorCode::Timeout as u16;

/// Half a frame, then nothing: closed with TIMEOUT once BFRAMETIMEOUT has passed;
/// a connection that sent nothing is not (there is no idle timeout by default), and a
/// client trickling a frame a byte at a time is closed too.
#[test]
fn partial_frame_times_out() {
    let server = TestServer::start_with(&[("BFRAMETIMEOUT", "200ms")]);
    let mut quiet = server.raw();
    let mut half = server.raw();
    let frame = put_frame(b"jobs", b"hello");
    send(&mut half, &frame[..7]);
    let text = expect_fatal_error(&mut half, TIMEOUT_CODE);
    assert!(text.contains("BFRAMETIMEOUT"), "{text}");
    server.wait_for_log("BFRAMETIMEOUT");

    let mut trickle = server.raw();
    let long = put_frame(b"jobs", &[b'x'; 200]);
    let mut closed = false;
    for byte in &long {
        if std::io::Write::write_all(&mut trickle, &[*byte]).is_err() {
            closed = true;
            break;
        }
        sleep(Duration::from_millis(20));
        if server.stat("frame_timeouts") >= 2 {
            closed = true;
            break;
        }
    }
    assert!(closed, "a frame trickled over 4 s was never cut off");
    expect_fatal_error(&mut trickle, TIMEOUT_CODE);

    assert_eq!(
        call(&mut quiet, &ping_frame()),
        PONG,
        "an idle client is left alone"
    );
    assert_eq!(server.stat("messages"), 0);
    assert_eq!(server.stat("frame_timeouts"), 2);
}

/// A long payload that keeps coming is not cut off, even when it takes longer than
/// BFRAMETIMEOUT, as long as 64 KiB of it arrive within each timeout.
#[test]
fn a_slow_but_moving_payload_is_not_cut_off() {
    let server = TestServer::start_with(&[("BFRAMETIMEOUT", "300ms")]);
    let mut s = server.raw();
    let payload = vec![b'p'; 512 << 10];
    let frame = put_frame(b"big", &payload);
    for piece in frame.chunks(64 << 10) {
        send(&mut s, piece);
        sleep(Duration::from_millis(100));
    }
    assert_eq!(read_frame(&mut s), [0, 0, 0, 1, 0x10], "STORED");
    assert_eq!(server.stat("frame_timeouts"), 0);
}

/// On a server that requires AUTH, a connection that does not authenticate within
/// BFRAMETIMEOUT is closed, even if it keeps pinging.
#[test]
fn no_auth_in_time_is_closed() {
    let tokens = TempFile::with("tokens", "a-token-of-sixteen-bytes\n", 0o600);
    let server =
        TestServer::start_with(&[("BAUTHFILE", tokens.text()), ("BFRAMETIMEOUT", "300ms")]);
    let mut s = server.raw();
    let mut text = None;
    for _ in 0..100 {
        send(&mut s, &ping_frame());
        let frame = read_frame(&mut s);
        if frame != PONG {
            let (code, fatal, t) = parse_error(&frame);
            assert_eq!((code, fatal), (TIMEOUT_CODE, 1));
            text = Some(t);
            break;
        }
        sleep(Duration::from_millis(50));
    }
    let text = text.expect("closed within 5 s");
    assert!(text.contains("no AUTH"), "{text}");
    // One that authenticates stays.
    let mut c = server.client();
    c.auth(b"a-token-of-sixteen-bytes").unwrap();
    sleep(Duration::from_millis(500));
    c.ping().unwrap();
}

/// BIDLETIMEOUT closes a connection that sends nothing, but not one waiting on a
/// parked GET, a subscriber, or one that keeps talking.
#[test]
fn idle_connections_time_out_unless_they_wait() {
    let server = TestServer::start_with(&[("BIDLETIMEOUT", "300ms")]);
    let mut idle = server.raw();
    let mut parked = server.raw();
    send(&mut parked, &get_frame(b"work", u32::MAX, 1));
    let mut subscriber = server.client();
    subscriber.subscribe("news.>").unwrap();
    let mut chatty = server.client();
    for _ in 0..12 {
        chatty.ping().unwrap();
        sleep(Duration::from_millis(100));
    }
    let text = expect_fatal_error(&mut idle, TIMEOUT_CODE);
    assert!(text.contains("BIDLETIMEOUT"), "{text}");
    server.wait_for_log("BIDLETIMEOUT");
    assert_eq!(server.stat("idle_timeouts"), 1);
    // The parked GET is still there: a PUT reaches it, and its connection, which
    // waited far longer than BIDLETIMEOUT, is not closed the moment the wait ends.
    chatty.put("work", b"job").unwrap();
    let reply = read_frame(&mut parked);
    assert_eq!(reply[4], 0x12, "MESSAGES");
    assert_eq!(call(&mut parked, &ping_frame()), PONG);
    chatty.publish("news.today", b"hi").unwrap();
    let event = subscriber.next_event(Some(TIMEOUT)).unwrap();
    assert!(event.is_some(), "the subscriber still receives");
}

/// BIDLETIMEOUT also closes a connection that pipelines requests but never reads its
/// replies: past its output cap the server stops taking its requests, so it is never
/// without input, yet none of the output held for it moves.
#[test]
fn a_client_that_reads_no_reply_times_out() {
    let server = TestServer::start_with(&[("BIDLETIMEOUT", "300ms")]);
    let stuck = server.raw();
    let mut writer = stuck.try_clone().unwrap();
    // Each STATS reply is about 200 times its request: the replies fill every buffer
    // on the way (the kernel's receive buffer may grow to tens of MB) long before the
    // requests run out, and the server stops taking them with some still unread.
    let requests: Vec<u8> = (0..400_000).flat_map(|_| stats_frame(b"")).collect();
    let flood = std::thread::spawn(move || {
        let _ = writer.write_all(&requests);
    });
    server.wait_for_stat("idle_timeouts", 1);
    // Closed by the server while the client still holds its end.
    server.wait_for_stat("connections", 1);
    server.wait_for_log("(BIDLETIMEOUT); closing the connection");
    drop(stuck);
    flood.join().unwrap();
}

/// BMAXPERADDRESS: one connection more from the same address is refused with
/// TOO_MANY_CONNECTIONS; once one closes, a new one is accepted; the Unix socket is
/// not counted.
#[test]
fn connections_per_address_are_capped() {
    let server = TestServer::start_with_on(Transport::Unix, &[("BMAXPERADDRESS", "2")]);
    let mut a = server.raw();
    let mut b = server.raw();
    assert_eq!(call(&mut a, &ping_frame()), PONG);
    assert_eq!(call(&mut b, &ping_frame()), PONG);
    let mut c = server.raw();
    let text = expect_fatal_error(&mut c, ErrorCode::TooManyConnections as u16);
    assert!(text.contains("BMAXPERADDRESS"), "{text}");
    let mut unix = server.client();
    unix.ping().unwrap();
    let mut unix2 = server.client();
    unix2.ping().unwrap();
    drop(a);
    eventually("a slot freed", || {
        let mut d = server.raw();
        send(&mut d, &ping_frame());
        read_frame(&mut d) == PONG
    });
    assert!(server.stat("connections_rejected_address") >= 1);
    assert_eq!(
        server.stat("connections_rejected"),
        server.stat("connections_rejected_address")
    );
}
