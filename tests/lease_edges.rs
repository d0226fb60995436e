//! Edges of acknowledged delivery found in review: settles and shutdown, settles
//! behind a receive parked for long, a handoff that ended before it was written, and
//! memory when leasing tiny messages. Each test is the scenario that failed.

mod common;

use std::time::Duration;

use beuss::client::{LeaseOptions, PutOptions};
use common::*;

fn qstat(c: &mut beuss::Client, q: &str, name: &str) -> u64 {
    c.queue_stats(q)
        .unwrap()
        .map_or(0, |s| s.get(name).unwrap())
}

/// Settles carried out behind a parked LEASE are answered before the fatal
/// SHUTTING_DOWN when the server stops: the parked receive gets EMPTY, then the
/// SETTLED reply, then the error (protocol.md 2.8: what comes after a fatal error was
/// not carried out, so a carried-out ACK must be answered before it).
#[test]
fn shutdown_answers_carried_out_settles_before_the_fatal_error() {
    let server = TestServer::start();
    let mut b = server.client();
    let id = b.put_with("q", b"m", PutOptions::default()).unwrap();
    let mut a = server.raw();
    send(&mut a, &lease_frame(b"q", 0, 1, 60_000, 0, 0));
    assert_eq!(parse_leased(&read_frame(&mut a))[0].0, id);
    send(&mut a, &lease_frame(b"other", u32::MAX, 1, 60_000, 0, 0));
    send(&mut a, &ack_frame(b"q", &[(id, 1)]));
    eventually("ack carried out", || qstat(&mut b, "q", "acks") == 1);
    drop(b);
    let _ = server.stop_with(libc::SIGTERM);
    assert_eq!(
        read_frame(&mut a)[4],
        0x13,
        "the parked LEASE is answered EMPTY"
    );
    assert_eq!(
        read_frame(&mut a),
        [0, 0, 0, 4, 0x16, 0, 1, 0],
        "then SETTLED OK"
    );
    assert_eq!(read_frame(&mut a)[4], 0x7F, "then the fatal SHUTTING_DOWN");
}

/// Settles behind a receive that stays parked keep being carried out past the cap on
/// held replies (33,000 TOUCHes, then an ACK): the server answers the parked LEASE
/// EMPTY early so that the replies can go out (protocol.md 13.7).
#[test]
fn settles_go_on_behind_a_long_parked_receive() {
    let server = TestServer::start();
    let mut b = server.client();
    let id = b.put_with("q", b"m", PutOptions::default()).unwrap();
    let mut a = server.raw();
    send(&mut a, &lease_frame(b"q", 0, 1, 600_000, 0, 0));
    parse_leased(&read_frame(&mut a));
    send(&mut a, &lease_frame(b"idle", u32::MAX, 1, 60_000, 0, 0));
    let touch = touch_frame(b"q", 600_000, &[(id, 1)]);
    let mut bulk = Vec::new();
    for _ in 0..33_000 {
        bulk.extend_from_slice(&touch);
    }
    bulk.extend_from_slice(&ack_frame(b"q", &[(id, 1)]));
    let mut w = a.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        w.write_all(&bulk).unwrap();
    });
    // Read everything the server answers: EMPTY for the parked LEASE at some point,
    // 33,000 SETTLED for the TOUCHes and one for the ACK, all OK.
    let mut empties = 0;
    let mut settled = 0;
    while settled < 33_001 {
        let frame = read_frame(&mut a);
        match frame[4] {
            0x13 => empties += 1,
            0x16 => {
                assert_eq!(frame, [0, 0, 0, 4, 0x16, 0, 1, 0], "settle {settled}");
                settled += 1;
            }
            other => panic!("unexpected status {other:#x}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(empties, 1);
    assert_eq!(qstat(&mut b, "q", "acks"), 1);
}

/// A NACK whose first pair returns a message to the connection's own parked LEASE
/// and whose second pair ends that new lease (dead-lettered; its dead-letter queue
/// cannot be named, so it is dropped) writes no LEASED for it: the consumer stays
/// parked, first in line, and gets the next message put.
#[test]
fn a_handoff_ended_in_the_same_request_is_not_written() {
    let server = TestServer::start();
    let q = "x".repeat(251);
    let mut b = server.client();
    let id = b.put_with(&q, b"payload", PutOptions::default()).unwrap();
    let mut a = server.raw();
    send(&mut a, &lease_frame(q.as_bytes(), 0, 1, 60_000, 0, 0));
    parse_leased(&read_frame(&mut a));
    send(
        &mut a,
        &lease_frame(q.as_bytes(), u32::MAX, 1, 60_000, 1, 0),
    );
    send(&mut a, &nack_frame(q.as_bytes(), 0, 0, &[(id, 1), (id, 2)]));
    eventually("dropped", || {
        b.stats().unwrap().get("dead_dropped") == Some(1)
    });
    b.put(&q, b"next").unwrap();
    let got = parse_leased(&read_frame(&mut a));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, b"next");
    assert_eq!(read_frame(&mut a), [0, 0, 0, 5, 0x16, 0, 2, 0, 0]);
}

/// Leasing a mass of tiny messages cannot grow memory without bound: each leased
/// message costs more than a ready one, so leasing stops at twice the cap with a
/// non-fatal FULL (acknowledging makes room again).
#[test]
fn leasing_tiny_messages_stops_at_twice_the_cap() {
    let cap = 1_048_576u64;
    let server = TestServer::start_with(&[("BMAXMEMORY", "1048576"), ("BMAXMESSAGESIZE", "1024")]);
    let mut c = server.client();
    while c.put("q", b"").is_ok() {}
    let opts = LeaseOptions {
        lease: Some(Duration::from_secs(600)),
        ..LeaseOptions::default()
    };
    let mut leased_all = Vec::new();
    let full = loop {
        match c.lease("q", 65535, Duration::ZERO, opts) {
            Ok(got) if got.is_empty() => panic!("queue drained before the cap"),
            Ok(got) => leased_all.extend(got),
            Err(e) => break e,
        }
    };
    assert!(full.is_full(), "{full:?}");
    let memory = stat_of(&mut c, "memory");
    assert!(
        memory <= 2 * cap + 1024,
        "memory {memory} past twice the cap"
    );
    // The connection is still usable; acking frees room to lease again.
    let refs: Vec<_> = leased_all.iter().map(|d| d.lease()).collect();
    c.ack("q", &refs).unwrap();
    assert!(!c.lease("q", 10, Duration::ZERO, opts).unwrap().is_empty());
}
