//! Acknowledged delivery end to end (protocol.md section 13): the real server on
//! loopback, driven through the library client and, where the wire itself matters,
//! through raw frames. Leases are short (tens to hundreds of ms); every wait for
//! something the server does later is a poll with a generous deadline.

mod common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beuss::Client;
use beuss::client::{
    Delivery, Error, LeaseOptions, LeaseRef, NackOptions, PutOptions, SettleResult,
};
use beuss::protocol::{
    ErrorCode, MAX_DELAY_MS, MAX_LEASE_MS, NEVER_DEAD, Pairs, Request, Response,
};
use common::*;

/// A lease of `ms` milliseconds, attached to the connection.
fn lease_ms(ms: u64) -> LeaseOptions {
    LeaseOptions {
        lease: Some(Duration::from_millis(ms)),
        ..LeaseOptions::default()
    }
}

/// A long lease (60 s) that never runs out during a test.
fn long() -> LeaseOptions {
    lease_ms(60_000)
}

/// A queue figure, 0 when the queue does not exist.
fn qstat(client: &mut Client, queue: &str, name: &str) -> u64 {
    client.queue_stats(queue).expect("STATS").map_or(0, |q| {
        q.get(name)
            .unwrap_or_else(|| panic!("no queue figure {name}"))
    })
}

/// Polls until the queue figure `name` of `queue` is `value`.
fn wait_qstat(client: &mut Client, queue: &str, name: &str, value: u64) {
    eventually(&format!("{queue} {name} == {value}"), || {
        qstat(client, queue, name) == value
    });
}

fn payloads(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(d.payload()).into_owned())
        .collect()
}

fn attempts(deliveries: &[Delivery]) -> Vec<u32> {
    deliveries.iter().map(Delivery::attempt).collect()
}

fn refs(deliveries: &[Delivery]) -> Vec<LeaseRef> {
    deliveries.iter().map(Delivery::lease).collect()
}

fn put_all(client: &mut Client, queue: &str, items: &[&[u8]]) -> Vec<u64> {
    items
        .iter()
        .map(|p| {
            client
                .put_with(queue, p, PutOptions::default())
                .expect("PUT")
        })
        .collect()
}

/// Leases one message, waiting up to [`TIMEOUT`] for it.
fn lease_one(client: &mut Client, queue: &str, options: LeaseOptions) -> Delivery {
    let mut got = client.lease(queue, 1, TIMEOUT / 2, options).expect("LEASE");
    assert_eq!(got.len(), 1, "no message came on {queue}");
    got.remove(0)
}

use SettleResult::{NotFound, Ok as Done, Stale};

// ---------------------------------------------------------------------------
// Raw frames for what the client refuses to encode, and for reading slowly
// ---------------------------------------------------------------------------

fn put_options_frame(queue: &[u8], delay_ms: u32, priority: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = request_frame(0x10, &{
        let mut body = vec![queue.len() as u8];
        body.extend_from_slice(queue);
        body.extend_from_slice(&delay_ms.to_be_bytes());
        body.push(priority);
        body.extend_from_slice(payload);
        body
    });
    frame[5] = 0x01;
    frame
}

fn assert_fatal(result: Result<impl std::fmt::Debug, Error>, code: ErrorCode) {
    match result {
        Err(Error::Server {
            code: got, fatal, ..
        }) => {
            assert_eq!(ErrorCode::from_u16(got), Some(code));
            assert!(fatal, "{code} must be fatal");
        }
        other => panic!("expected fatal {code}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Settling
// ---------------------------------------------------------------------------

/// HELLO version 2 and later announces leases, PUT options and the documented limits.
#[test]
fn hello_v2_announces_limits() {
    let server = TestServer::start();
    let info = server.client().hello().unwrap();
    assert_eq!(info.version, 6);
    let limits = info.limits.expect("v2 limits");
    assert_eq!(limits.features & 3, 3);
    assert_eq!(limits.default_lease_ms, 30_000);
    assert_eq!(limits.max_lease_ms, MAX_LEASE_MS);
    assert_eq!(limits.max_delay_ms, MAX_DELAY_MS);
    assert_eq!(limits.max_deliveries, 20);
}

/// A leased message stays (in flight) until ACKed, and the ACK deletes it.
#[test]
fn lease_then_ack_deletes() {
    let server = TestServer::start();
    let mut c = server.client();
    let id = c.put_with("q", b"job", PutOptions::default()).unwrap();
    let d = lease_one(&mut c, "q", long());
    assert_eq!((d.id(), d.attempt(), d.payload()), (id, 1, &b"job"[..]));
    assert_eq!(qstat(&mut c, "q", "in_flight"), 1);
    assert_eq!(qstat(&mut c, "q", "messages"), 1);
    assert_eq!(d.ack(&mut c).unwrap(), Done);
    assert_eq!(qstat(&mut c, "q", "in_flight"), 0);
    assert_eq!(qstat(&mut c, "q", "messages"), 0);
    assert_eq!(qstat(&mut c, "q", "acks"), 1);
    assert_eq!(stat_of(&mut c, "acks"), 1);
    assert_eq!(stat_of(&mut c, "in_flight"), 0);
    assert!(c.lease("q", 1, Duration::ZERO, long()).unwrap().is_empty());
}

/// A second ACK of the same lease, alone or in the same request, is NOT_FOUND.
#[test]
fn double_ack_is_not_found() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"a", b"b"]);
    let got = c.lease("q", 2, Duration::ZERO, long()).unwrap();
    assert_eq!(got[0].ack(&mut c).unwrap(), Done);
    assert_eq!(got[0].ack(&mut c).unwrap(), NotFound);
    let b = got[1].lease();
    assert_eq!(c.ack("q", &[b, b]).unwrap(), vec![Done, NotFound]);
    c.ping().unwrap();
}

/// An ACK whose lease expired and was redelivered to another consumer is STALE, and
/// the new holder keeps the message.
#[test]
fn stale_ack_after_redelivery() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    put_all(&mut a, "q", &[b"job"]);
    let first = lease_one(&mut a, "q", lease_ms(100));
    let second = lease_one(&mut b, "q", long());
    assert_eq!((second.id(), second.attempt()), (first.id(), 2));
    assert_eq!(first.ack(&mut a).unwrap(), Stale);
    assert_eq!(first.touch(&mut a).unwrap(), Stale);
    assert_eq!(first.nack(&mut a, Duration::ZERO).unwrap(), Stale);
    assert_eq!(qstat(&mut a, "q", "in_flight"), 1);
    assert_eq!(second.ack(&mut b).unwrap(), Done);
    assert_eq!(qstat(&mut a, "q", "messages"), 0);
}

/// From the deadline on, an ACK is STALE even if the server has not yet returned
/// the message (racing the expiry timer), and the message is not deleted.
#[test]
fn ack_at_deadline_is_stale() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"job"]);
    let options = LeaseOptions {
        max_deliveries: NEVER_DEAD,
        ..lease_ms(20)
    };
    for round in 0..30 {
        let d = lease_one(&mut c, "q", options);
        // Asked before the reply was made, so the deadline has surely passed.
        let asked = Instant::now();
        std::thread::sleep(Duration::from_millis(20).saturating_sub(asked.elapsed()));
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(d.ack(&mut c).unwrap(), Stale, "round {round}");
        assert_eq!(d.attempt(), round + 1);
        assert_eq!(qstat(&mut c, "q", "messages"), 1);
    }
}

/// Unknown ids and unknown queues are answered NOT_FOUND per id; the queue is not
/// made and the connection stays open.
#[test]
fn unknown_ids_and_queues_are_not_found() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"x"]);
    let d = lease_one(&mut c, "q", long());
    let wrong_attempt = LeaseRef {
        id: d.id(),
        attempt: 7,
    };
    let unknown = LeaseRef {
        id: 999_999,
        attempt: 1,
    };
    assert_eq!(
        c.ack("q", &[unknown, wrong_attempt]).unwrap(),
        vec![NotFound, Stale]
    );
    assert_eq!(c.ack("nope", &[d.lease()]).unwrap(), vec![NotFound]);
    assert_eq!(c.touch("nope", &[d.lease()], None).unwrap(), vec![NotFound]);
    assert_eq!(
        c.nack("nope", &[d.lease()], NackOptions::default())
            .unwrap(),
        vec![NotFound]
    );
    assert!(c.queue_stats("nope").unwrap().is_none());
    // A lease of another queue is not reachable through this one.
    put_all(&mut c, "other", &[b"y"]);
    assert_eq!(c.ack("other", &[d.lease()]).unwrap(), vec![NotFound]);
    c.ping().unwrap();
    assert_eq!(d.ack(&mut c).unwrap(), Done);
}

/// Settling more than 4096 leases at once goes in several frames, one result each.
#[test]
fn batch_ack_over_one_frame() {
    let server = TestServer::start();
    let mut c = server.client();
    let n = 5000;
    c.put_many("q", (0..n).map(|i| format!("{i}"))).unwrap();
    let mut held = Vec::new();
    while held.len() < n {
        held.extend(c.lease("q", 4096, Duration::ZERO, long()).unwrap());
    }
    let mut pairs = refs(&held);
    pairs.push(pairs[0]);
    let results = c.ack("q", &pairs).unwrap();
    assert_eq!(results.len(), n + 1);
    assert!(results[..n].iter().all(|r| *r == Done));
    assert_eq!(results[n], NotFound);
    assert_eq!(qstat(&mut c, "q", "messages"), 0);
}

// ---------------------------------------------------------------------------
// Leases ending: disconnect, detach, expiry
// ---------------------------------------------------------------------------

/// Closing a connection returns its in-flight messages at once (no waiting for the
/// lease), attempt raised, in id order ahead of messages never delivered.
#[test]
fn disconnect_returns_in_flight_at_once() {
    let server = TestServer::start();
    let mut b = server.client();
    let ids = put_all(&mut b, "q", &[b"1", b"2", b"3", b"4", b"5"]);
    {
        let mut a = server.client();
        let got = a.lease("q", 3, Duration::ZERO, long()).unwrap();
        assert_eq!(payloads(&got), ["1", "2", "3"]);
        put_all(&mut b, "q", &[b"6"]);
    }
    wait_qstat(&mut b, "q", "in_flight", 0);
    let got = b.lease("q", 10, Duration::ZERO, long()).unwrap();
    assert_eq!(payloads(&got), ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(attempts(&got), [2, 2, 2, 1, 1, 1]);
    assert_eq!(got[0].id(), ids[0]);
    assert_eq!(qstat(&mut b, "q", "redeliveries"), 3);
}

/// Closing a connection whose LEASED replies are still mostly unwritten (the client
/// never read them; the server's output is backed up) returns every one of those
/// messages at once, exactly once each, whether or not its bytes reached the client.
#[test]
fn disconnect_with_a_half_written_reply_returns_everything() {
    use std::io::Write;
    let server = TestServer::start();
    let mut b = server.client();
    let payload = vec![b'x'; 60_000];
    let items: Vec<&[u8]> = (0..200).map(|_| &payload[..]).collect();
    put_all(&mut b, "big", &items);
    {
        let mut a = server.raw();
        // 200 x 60 KB = 12 MB of replies asked for in one go, never read.
        let mut frames = Vec::new();
        for _ in 0..200 {
            frames.extend(lease_frame(b"big", 0, 1, 3_600_000, 0, 0));
        }
        a.write_all(&frames).unwrap();
        // Wait until the server leased some (it stops once its output backs up).
        let deadline = Instant::now() + Duration::from_secs(10);
        while qstat(&mut b, "big", "in_flight") == 0 {
            assert!(Instant::now() < deadline, "nothing leased");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    wait_qstat(&mut b, "big", "in_flight", 0);
    assert_eq!(qstat(&mut b, "big", "ready"), 200);
    let mut seen = HashMap::new();
    loop {
        let got = b.lease("big", 50, Duration::ZERO, long()).unwrap();
        if got.is_empty() {
            break;
        }
        for d in &got {
            *seen.entry(d.id()).or_insert(0) += 1;
            assert_eq!(d.payload().len(), payload.len());
        }
        let results = b.ack("big", &refs(&got)).unwrap();
        assert!(results.iter().all(|r| *r == Done), "{results:?}");
    }
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|&n| n == 1));
}

/// A connection that closes while its LEASE is parked is cancelled at once: a message
/// put afterwards goes to the next consumer, not into a dead connection's lease.
#[test]
fn disconnect_while_parked_leaks_no_lease() {
    let server = TestServer::start();
    let mut b = server.client();
    {
        let mut a = server.raw();
        use std::io::Write;
        a.write_all(&lease_frame(b"p", 60_000, 1, 3_600_000, 0, 0))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.stats().unwrap().get("waiters") != Some(1) {
            assert!(Instant::now() < deadline, "LEASE never parked");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.stats().unwrap().get("waiters") != Some(0) {
        assert!(Instant::now() < deadline, "parked LEASE not cancelled");
        std::thread::sleep(Duration::from_millis(2));
    }
    put_all(&mut b, "p", &[b"after"]);
    assert_eq!(qstat(&mut b, "p", "in_flight"), 0);
    let got = b.lease("p", 1, Duration::ZERO, long()).unwrap();
    assert_eq!(payloads(&got), ["after"]);
    assert_eq!(attempts(&got), [1]);
}

/// A detached lease survives its connection and can be acked from another one.
#[test]
fn detached_lease_survives_disconnect() {
    let server = TestServer::start();
    let mut b = server.client();
    put_all(&mut b, "q", &[b"job"]);
    let d = {
        let mut a = server.client();
        let options = LeaseOptions {
            detached: true,
            ..long()
        };
        lease_one(&mut a, "q", options)
    };
    // Once a's close is handled (b and the polling connection are left), the lease
    // still holds.
    server.wait_for_stat("connections", 2);
    assert_eq!(qstat(&mut b, "q", "in_flight"), 1);
    assert!(b.lease("q", 1, Duration::ZERO, long()).unwrap().is_empty());
    assert_eq!(d.ack(&mut b).unwrap(), Done);
    assert_eq!(qstat(&mut b, "q", "messages"), 0);
}

/// A lease that runs out hands the message to a consumer parked on the queue.
#[test]
fn expiry_wakes_parked_lease() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    put_all(&mut a, "q", &[b"job"]);
    let first = lease_one(&mut a, "q", lease_ms(100));
    let second = lease_one(&mut b, "q", long());
    assert_eq!((second.id(), second.attempt()), (first.id(), 2));
    assert_eq!(qstat(&mut a, "q", "expired_leases"), 1);
}

/// After expiry, returned messages come back ahead of never-delivered ones, in id
/// order (even if they expired in another order).
#[test]
fn order_after_redelivery() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"a", b"b", b"c", b"d", b"e"]);
    let late = lease_one(&mut c, "q", lease_ms(300));
    let early = c.lease("q", 2, Duration::ZERO, lease_ms(50)).unwrap();
    assert_eq!(payloads(&early), ["b", "c"]);
    wait_qstat(&mut c, "q", "in_flight", 0);
    let got = c.lease("q", 10, Duration::ZERO, long()).unwrap();
    assert_eq!(payloads(&got), ["a", "b", "c", "d", "e"]);
    assert_eq!(attempts(&got), [2, 2, 2, 1, 1]);
    assert_eq!(late.ack(&mut c).unwrap(), Stale);
}

// ---------------------------------------------------------------------------
// NACK, dead letters, max_deliveries
// ---------------------------------------------------------------------------

/// NACK with a delay holds the message back (never handed out before its time).
#[test]
fn nack_with_delay() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"job"]);
    let d = lease_one(&mut c, "q", long());
    let sent = Instant::now();
    assert_eq!(d.nack(&mut c, Duration::from_millis(200)).unwrap(), Done);
    assert_eq!(qstat(&mut c, "q", "delayed"), 1);
    let again = lease_one(&mut c, "q", long());
    assert!(sent.elapsed() >= Duration::from_millis(200));
    assert_eq!((again.id(), again.attempt()), (d.id(), 2));
    assert_eq!(qstat(&mut c, "q", "nacks"), 1);
}

/// NACK DEAD moves the message to `q.dead`, where it can be peeked, moved back and
/// purged.
#[test]
fn nack_dead_then_peek_move_purge() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"bad", b"good"]);
    let d = lease_one(&mut c, "q", long());
    let dead = NackOptions {
        dead: true,
        ..NackOptions::default()
    };
    assert_eq!(c.nack("q", &[d.lease()], dead).unwrap(), vec![Done]);
    let peeked = c.peek("q.dead", 10).unwrap();
    assert_eq!(payloads(&peeked), ["bad"]);
    assert_eq!((peeked[0].id(), peeked[0].attempt()), (d.id(), 1));
    assert_eq!(qstat(&mut c, "q", "dead"), 1);
    assert_eq!(qstat(&mut c, "q", "dead_lettered"), 1);
    // Peeking twice changes nothing.
    assert_eq!(c.peek("q.dead", 10).unwrap(), peeked);
    assert_eq!(c.move_messages("q.dead", "q", 100).unwrap(), 1);
    assert!(c.peek("q.dead", 10).unwrap().is_empty());
    // Moved to the end of q, behind "good", keeping id and attempt count.
    let got = c.lease("q", 10, Duration::ZERO, long()).unwrap();
    assert_eq!(payloads(&got), ["good", "bad"]);
    assert_eq!((got[1].id(), got[1].attempt()), (d.id(), 2));
    assert_eq!(c.nack("q", &[got[1].lease()], dead).unwrap(), vec![Done]);
    assert_eq!(c.purge("q.dead").unwrap(), 1);
    assert_eq!(qstat(&mut c, "q", "dead"), 0);
}

/// NACK NO_CHARGE gives a message back without counting toward max_deliveries; the
/// attempt number still rises.
#[test]
fn nack_no_charge_is_not_counted() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"job"]);
    let once = LeaseOptions {
        max_deliveries: 1,
        ..long()
    };
    let free = NackOptions {
        no_charge: true,
        ..NackOptions::default()
    };
    for attempt in 1..=3 {
        let d = lease_one(&mut c, "q", once);
        assert_eq!(d.attempt(), attempt);
        assert_eq!(c.nack("q", &[d.lease()], free).unwrap(), vec![Done]);
    }
    let d = lease_one(&mut c, "q", once);
    assert_eq!(d.attempt(), 4);
    assert_eq!(d.nack(&mut c, Duration::ZERO).unwrap(), Done);
    assert_eq!(qstat(&mut c, "q", "messages"), 0);
    assert_eq!(payloads(&c.peek("q.dead", 10).unwrap()), ["job"]);
}

/// max_deliveries reached by lease expiry dead-letters the message.
#[test]
fn max_deliveries_by_expiry() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"job"]);
    let twice = LeaseOptions {
        max_deliveries: 2,
        ..lease_ms(50)
    };
    assert_eq!(lease_one(&mut c, "q", twice).attempt(), 1);
    assert_eq!(lease_one(&mut c, "q", twice).attempt(), 2);
    wait_qstat(&mut c, "q", "dead", 1);
    assert_eq!(qstat(&mut c, "q", "messages"), 0);
    assert_eq!(attempts(&c.peek("q.dead", 1).unwrap()), [2]);
}

/// max_deliveries reached by NACK dead-letters the message.
#[test]
fn max_deliveries_by_nack() {
    let server = TestServer::start();
    let mut c = server.client();
    put_all(&mut c, "q", &[b"job"]);
    let twice = LeaseOptions {
        max_deliveries: 2,
        ..long()
    };
    let d = lease_one(&mut c, "q", twice);
    assert_eq!(d.nack(&mut c, Duration::ZERO).unwrap(), Done);
    assert_eq!(qstat(&mut c, "q", "dead"), 0);
    let d = lease_one(&mut c, "q", twice);
    assert_eq!(d.nack(&mut c, Duration::ZERO).unwrap(), Done);
    assert_eq!(qstat(&mut c, "q", "dead"), 1);
    assert_eq!(qstat(&mut c, "q", "messages"), 0);
}

/// max_deliveries reached by a disconnect dead-letters the message.
#[test]
fn max_deliveries_by_disconnect() {
    let server = TestServer::start();
    let mut b = server.client();
    put_all(&mut b, "q", &[b"job"]);
    {
        let mut a = server.client();
        let once = LeaseOptions {
            max_deliveries: 1,
            ..long()
        };
        lease_one(&mut a, "q", once);
    }
    wait_qstat(&mut b, "q", "dead", 1);
    assert_eq!(qstat(&mut b, "q", "messages"), 0);
}

/// A batch of 100 leased and NACKed together, over and over, keeps its order and is
/// dead-lettered together at max_deliveries.
#[test]
fn batch_of_100_requeued_repeatedly() {
    let server = TestServer::start();
    let mut c = server.client();
    let items: Vec<Vec<u8>> = (0..100).map(|i| format!("{i:03}").into_bytes()).collect();
    let ids = put_all(
        &mut c,
        "q",
        &items.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    );
    let five = LeaseOptions {
        max_deliveries: 5,
        ..long()
    };
    for attempt in 1..=5 {
        let got = c.lease("q", 1000, Duration::ZERO, five).unwrap();
        assert_eq!(got.iter().map(Delivery::id).collect::<Vec<_>>(), ids);
        assert!(got.iter().all(|d| d.attempt() == attempt));
        let results = c.nack("q", &refs(&got), NackOptions::default()).unwrap();
        assert!(results.iter().all(|r| *r == Done));
    }
    assert_eq!(qstat(&mut c, "q", "messages"), 0);
    let dead = c.peek("q.dead", 1000).unwrap();
    assert_eq!(dead.iter().map(Delivery::id).collect::<Vec<_>>(), ids);
}

// ---------------------------------------------------------------------------
// Delays and priorities
// ---------------------------------------------------------------------------

/// Delayed PUTs come out in the order of their time, never before it.
#[test]
fn delayed_puts_in_time_order() {
    let server = TestServer::start();
    let mut c = server.client();
    let start = Instant::now();
    let delays = [300u64, 100, 200, 0];
    for ms in delays {
        let options = PutOptions {
            delay: Duration::from_millis(ms),
            ..PutOptions::default()
        };
        c.put_with("q", format!("{ms}").as_bytes(), options)
            .unwrap();
    }
    assert_eq!(qstat(&mut c, "q", "delayed"), 3);
    for ms in [0u64, 100, 200, 300] {
        let d = lease_one(&mut c, "q", long());
        assert_eq!(d.payload(), format!("{ms}").as_bytes());
        assert!(
            start.elapsed() >= Duration::from_millis(ms),
            "{ms} ms early"
        );
        d.ack(&mut c).unwrap();
    }
}

/// Lower priority numbers come first, FIFO within a level; plain PUT is priority 5.
#[test]
fn priority_order_fifo_within_level() {
    let server = TestServer::start();
    let mut c = server.client();
    for (priority, payload) in [(9, "a"), (0, "b"), (5, "c"), (0, "d"), (5, "e"), (9, "f")] {
        let options = PutOptions {
            priority,
            ..PutOptions::default()
        };
        c.put_with("q", payload.as_bytes(), options).unwrap();
    }
    c.put("q", b"g").unwrap();
    let got = c.lease("q", 10, Duration::ZERO, long()).unwrap();
    assert_eq!(payloads(&got), ["b", "d", "c", "e", "g", "a", "f"]);
}

// ---------------------------------------------------------------------------
// The wire: unread replies, settles behind a parked receive, bad input
// ---------------------------------------------------------------------------

/// A lease runs from when the reply is made: left unread in the socket, it expires,
/// another consumer gets the messages, and the slow reader's acks are STALE.
#[test]
fn lease_expires_while_reply_unread() {
    let server = TestServer::start();
    let mut b = server.client();
    put_all(&mut b, "q", &[b"1", b"2", b"3"]);
    let mut slow = server.raw();
    send(&mut slow, &lease_frame(b"q", 0, 3, 100, 0, 0));
    wait_qstat(&mut b, "q", "in_flight", 3);
    // A woken LEASE gets one message; the rest follow.
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(b.lease("q", 3, TIMEOUT / 2, long()).unwrap());
    }
    assert_eq!(payloads(&got), ["1", "2", "3"]);
    assert_eq!(attempts(&got), [2, 2, 2]);
    let leased = parse_leased(&read_frame(&mut slow));
    let pairs: Vec<(u64, u32)> = leased.iter().map(|(id, a, _)| (*id, *a)).collect();
    assert_eq!(pairs.iter().map(|p| p.1).collect::<Vec<_>>(), [1, 1, 1]);
    let reply = call(&mut slow, &ack_frame(b"q", &pairs));
    assert_eq!(reply, [0, 0, 0, 6, 0x16, 0, 3, 1, 1, 1]);
    assert!(c_ack_all(&mut b, &got));
}

fn c_ack_all(c: &mut Client, got: &[Delivery]) -> bool {
    let queue = got[0].queue().to_owned();
    c.ack(&queue, &refs(got))
        .unwrap()
        .iter()
        .all(|r| *r == Done)
}

/// ACK and TOUCH behind a parked LEASE on the same connection are carried out at once
/// (another connection sees them); their replies come after the parked reply.
#[test]
fn settles_behind_parked_lease() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    put_all(&mut b, "work", &[b"m1", b"m2"]);
    let m1 = lease_one(&mut a, "work", long());
    let m2 = lease_one(&mut a, "work", lease_ms(200));
    a.send(&Request::Lease {
        queue: "new",
        wait_ms: u32::MAX,
        max: 1,
        lease_ms: 60_000,
        max_deliveries: 0,
        detached: false,
    })
    .unwrap();
    let m1_ref = [m1.lease()];
    let m2_ref = [m2.lease()];
    a.send(&Request::Touch {
        queue: "work",
        lease_ms: 60_000,
        pairs: Pairs::List(&m2_ref),
    })
    .unwrap();
    a.send(&Request::Ack {
        queue: "work",
        pairs: Pairs::List(&m1_ref),
    })
    .unwrap();
    a.flush().unwrap();
    wait_qstat(&mut b, "work", "acks", 1);
    // m2's lease was 200 ms; the TOUCH made it 60 s, so it outlives its first deadline.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(qstat(&mut b, "work", "in_flight"), 1);
    assert_eq!(qstat(&mut b, "work", "expired_leases"), 0);
    b.put("new", b"fresh").unwrap();
    match a.recv().unwrap() {
        Response::Leased(d) => {
            assert_eq!(d.iter().next().unwrap().payload, b"fresh");
        }
        other => panic!("expected LEASED, got {other:?}"),
    }
    for _ in 0..2 {
        match a.recv().unwrap() {
            Response::Settled(s) => assert_eq!(s.raw(), [0]),
            other => panic!("expected SETTLED, got {other:?}"),
        }
    }
    assert_eq!(m2.ack(&mut a).unwrap(), Done);
}

/// LEASE max 0, a lease over 12 h, PUT priority 10 and a delay over the cap are each
/// a fatal BAD_ARGUMENT.
#[test]
fn bad_arguments_are_fatal() {
    let server = TestServer::start();
    let frames = [
        lease_frame(b"q", 0, 0, 1000, 0, 0),
        lease_frame(b"q", 0, 1, MAX_LEASE_MS + 1, 0, 0),
        lease_frame(b"q", 0, 1, 1000, 0, 0x02),
        put_options_frame(b"q", 0, 10, b"x"),
        put_options_frame(b"q", MAX_DELAY_MS + 1, 5, b"x"),
    ];
    for frame in frames {
        let mut s = server.raw();
        send(&mut s, &frame);
        expect_fatal_error(&mut s, ErrorCode::BadArgument as u16);
    }
    // The client refuses what it can check itself, the server the rest.
    let mut c = server.client();
    assert_fatal(
        c.lease("q", 0, Duration::ZERO, long()),
        ErrorCode::BadArgument,
    );
    let mut c = server.client();
    let too_long = lease_ms(u64::from(MAX_LEASE_MS) + 1);
    assert_fatal(
        c.lease("q", 1, Duration::ZERO, too_long),
        ErrorCode::BadArgument,
    );
    assert_eq!(server.stat("messages"), 0);
}

/// An ACK frame claiming 100,000 pairs is a fatal FRAME_TOO_LARGE, refused from its
/// length alone.
#[test]
fn huge_ack_frame_is_too_large() {
    let server = TestServer::start();
    let mut s = server.raw();
    let len = 2 + 1 + 1 + 2 + 100_000u32 * 12;
    let mut head = len.to_be_bytes().to_vec();
    head.extend_from_slice(&[0x14, 0x00, 1, b'q']);
    send(&mut s, &head);
    expect_fatal_error(&mut s, ErrorCode::FrameTooLarge as u16);
}

/// Plain GET keeps the version-1 MESSAGES layout byte for byte, in the version-2
/// delivery order (priorities, returned messages first).
#[test]
fn plain_get_is_version_1() {
    let server = TestServer::start();
    let mut c = server.client();
    c.put("q", b"plain1").unwrap();
    c.put_with(
        "q",
        b"urgent",
        PutOptions {
            priority: 0,
            ..PutOptions::default()
        },
    )
    .unwrap();
    c.put("q", b"plain2").unwrap();
    let urgent = lease_one(&mut c, "q", long());
    assert_eq!(urgent.payload(), b"urgent");
    let plain1 = lease_one(&mut c, "q", long());
    assert_eq!(plain1.nack(&mut c, Duration::ZERO).unwrap(), Done);
    // "urgent" is in flight with c; "plain1" came back ahead of "plain2".
    let mut s = server.raw();
    assert_eq!(
        call(&mut s, &get_frame(b"q", 0, 10)),
        messages_reply(&[b"plain1", b"plain2"])
    );
    drop(c);
    assert_eq!(
        call(&mut s, &get_frame(b"q", 5000, 10)),
        messages_reply(&[b"urgent"])
    );
}

// ---------------------------------------------------------------------------
// Memory and a crash-prone worker pool
// ---------------------------------------------------------------------------

/// In-flight and dead messages hold memory: PUT gets FULL while they are held, and
/// acking frees room at once.
#[test]
fn memory_cap_with_in_flight_and_dead() {
    let server = TestServer::start_with(&[("BMAXMEMORY", "256K"), ("BMAXMESSAGESIZE", "8K")]);
    let mut c = server.client();
    let payload = vec![7u8; 4096];
    // Fills the server to its cap; returns how many PUTs were stored.
    let fill = |c: &mut Client| {
        let mut n = 0;
        loop {
            match c.put_with("q", &payload, PutOptions::default()) {
                Ok(_) => n += 1,
                Err(e) if e.is_full() => return n,
                Err(e) => panic!("PUT: {e}"),
            }
        }
    };
    let n = fill(&mut c);
    assert!(n > 10);
    let mut held = c.lease("q", 1000, Duration::ZERO, long()).unwrap();
    assert_eq!(held.len(), n);
    // Leased messages may cost more or less than ready ones (ready ones share
    // chunks), but they still count: leased and new payloads together stay under the cap.
    let more = fill(&mut c);
    eprintln!("{n} ready at the cap; {more} more once those were leased");
    assert!((n + more) * payload.len() <= 256 * 1024);
    held.extend(c.lease("q", 1000, Duration::ZERO, long()).unwrap());
    assert_eq!(qstat(&mut c, "q", "ready"), 0);
    fill(&mut c);
    let dead = NackOptions {
        dead: true,
        ..NackOptions::default()
    };
    c.nack("q", &refs(&held[..5]), dead).unwrap();
    assert_eq!(qstat(&mut c, "q", "dead"), 5);
    assert!(c.put("q", &payload).unwrap_err().is_full());
    let before = stat_of(&mut c, "memory");
    assert_eq!(held[5].ack(&mut c).unwrap(), Done);
    assert!(stat_of(&mut c, "memory") <= before - 4096);
    // A plain PUT may need a whole new chunk of ready memory: free a few more.
    let results = c.ack("q", &refs(&held[6..30])).unwrap();
    assert!(results.iter().all(|r| *r == Done));
    c.put("q", &payload).unwrap();
    assert_eq!(c.purge("q.dead").unwrap(), 5);
    for _ in 0..5 {
        c.put("q", &payload).unwrap();
    }
}

/// Small deterministic generator so the pool test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

/// 20 workers share 1,000 jobs while each randomly crashes (drops its socket with
/// leases held) or NACKs 10 % of what it gets: every job is acked exactly once,
/// none is lost, none is dead.
#[test]
fn crashing_worker_pool_acks_every_job_once() {
    let server = TestServer::start();
    let jobs = 1000;
    let mut c = server.client();
    c.put_many("jobs", (0..jobs).map(|i| format!("{i}")))
        .unwrap();
    let acked: Arc<Mutex<HashMap<Vec<u8>, u32>>> = Arc::default();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..20u64)
        .map(|w| {
            let addr = server.addr.clone();
            let acked = Arc::clone(&acked);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w + 1) * 0x1234_5678));
                let options = LeaseOptions {
                    max_deliveries: NEVER_DEAD,
                    ..long()
                };
                let connect = || {
                    let mut c = Client::from_stream(TcpStream::connect(&addr).unwrap()).unwrap();
                    c.set_timeout(Some(TIMEOUT)).unwrap();
                    c
                };
                let mut c = connect();
                while done.load(Ordering::SeqCst) < jobs && Instant::now() < deadline {
                    let max = 1 + (rng.next() % 4) as u16;
                    let got = c
                        .lease("jobs", max, Duration::from_millis(50), options)
                        .unwrap();
                    if got.is_empty() {
                        continue;
                    }
                    if rng.percent() < 5 {
                        c = connect();
                        continue;
                    }
                    for d in got {
                        if rng.percent() < 10 {
                            assert_eq!(d.nack(&mut c, Duration::ZERO).unwrap(), Done);
                        } else {
                            assert_eq!(d.ack(&mut c).unwrap(), Done);
                            *acked.lock().unwrap().entry(d.into_payload()).or_default() += 1;
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len() as u64, jobs, "jobs acked (of {jobs})");
    assert!(acked.values().all(|n| *n == 1), "a job acked twice");
    assert_eq!(qstat(&mut c, "jobs", "messages"), 0);
    assert_eq!(qstat(&mut c, "jobs", "in_flight"), 0);
    assert_eq!(qstat(&mut c, "jobs", "dead"), 0);
    assert_eq!(qstat(&mut c, "jobs", "acks"), jobs);
    assert!(qstat(&mut c, "jobs", "redeliveries") > 0);
}
