//! The library client against a real server: the Go original's scenarios, then
//! batches, waits, purge, stats, hello, pipelined puts and the FULL error.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use beuss::client::{Error, PutStatus};
use beuss::protocol::ErrorCode;
use common::*;

on_both_transports! {
/// Put two messages, get them back in order, then the queue is empty.
fn put_two_get_two_then_empty(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    assert_eq!(c.put("q", b"first").unwrap(), PutStatus::Stored);
    assert_eq!(c.put("q", b"second").unwrap(), PutStatus::Stored);
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(c.get("q").unwrap(), None);
}
}

on_both_transports! {
/// Messages on one queue never show up on another.
fn two_queues_are_independent(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.put("a", b"for a").unwrap();
    c.put("b", b"for b 1").unwrap();
    c.put("b", b"for b 2").unwrap();
    assert_eq!(c.get("b").unwrap().as_deref(), Some(&b"for b 1"[..]));
    assert_eq!(c.get("a").unwrap().as_deref(), Some(&b"for a"[..]));
    assert_eq!(c.get("a").unwrap(), None);
    assert_eq!(c.get("b").unwrap().as_deref(), Some(&b"for b 2"[..]));
    assert_eq!(c.get("b").unwrap(), None);
    assert_eq!(c.get("A").unwrap(), None, "names are case-sensitive");
}
}

on_both_transports! {
/// 10,000 sequential puts, then 10,000 gets return them in order.
fn ten_thousand_puts_then_ten_thousand_gets_in_order(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    for i in 0..10_000u32 {
        assert_eq!(
            c.put("q", format!("m{i}").as_bytes()).unwrap(),
            PutStatus::Stored
        );
    }
    assert_eq!(stat_of(&mut c, "messages"), 10_000);
    for i in 0..10_000u32 {
        let got = c.get("q").unwrap().expect("a message");
        assert_eq!(got, format!("m{i}").as_bytes(), "message {i}");
    }
    assert_eq!(c.get("q").unwrap(), None);
}
}

on_both_transports! {
/// A consumer waiting in another thread receives 3 messages put from this one, in order.
fn waiting_consumer_receives_three_messages_in_order(t: Transport) {
    let server = TestServer::start_on(t);
    let mut consumer = server.client();
    let receiver = thread::spawn(move || {
        (0..3)
            .map(|_| {
                consumer
                    .get_wait("jobs", Duration::from_secs(5))
                    .unwrap()
                    .expect("a message within the wait")
            })
            .collect::<Vec<_>>()
    });
    server.wait_for_stat("waiters", 1);
    let mut producer = server.client();
    for m in ["one", "two", "three"] {
        assert_eq!(
            producer.put("jobs", m.as_bytes()).unwrap(),
            PutStatus::Stored
        );
    }
    let got = receiver.join().unwrap();
    assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    assert_eq!(stat_of(&mut producer, "messages"), 0);
}
}

on_both_transports! {
/// 10,000 messages put from another connection while a consumer loops on get_wait
/// are all received, exactly once, in order.
fn ten_thousand_messages_to_a_looping_waiting_consumer(t: Transport) {
    const N: u32 = 10_000;
    let server = TestServer::start_on(t);
    let mut consumer = server.client();
    let receiver = thread::spawn(move || {
        let mut got = Vec::with_capacity(N as usize);
        while got.len() < N as usize {
            match consumer.get_wait("stream", Duration::from_secs(5)).unwrap() {
                Some(m) => got.push(u32::from_be_bytes(m.try_into().unwrap())),
                None => break, // 5 s without a message: the producer is done or stuck
            }
        }
        got
    });
    let mut producer = server.client();
    for i in 0..N {
        producer.put("stream", &i.to_be_bytes()).unwrap();
    }
    let got = receiver.join().unwrap();
    assert_eq!(got.len(), N as usize, "messages received");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(*m, i as u32, "message at position {i}");
    }
    let stats = producer.stats().unwrap();
    assert_eq!(stats.get("puts"), Some(u64::from(N)));
    assert_eq!(stats.get("gets"), Some(u64::from(N)));
    assert_eq!(stats.get("messages"), Some(0));
}
}

on_both_transports! {
/// get_batch returns up to max messages, oldest first, and EMPTY gives an empty batch.
fn get_batch_returns_up_to_max_in_order(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    let payloads: Vec<Vec<u8>> = (0..25u8).map(|i| vec![i; usize::from(i)]).collect();
    c.put_many("q", &payloads).unwrap();
    let first = c.get_batch("q", 10, Duration::ZERO).unwrap();
    assert_eq!(first, payloads[..10]);
    let second = c.get_batch("q", 10, Duration::ZERO).unwrap();
    assert_eq!(second, payloads[10..20]);
    let rest = c.get_batch("q", 10, Duration::ZERO).unwrap();
    assert_eq!(rest, payloads[20..]);
    assert!(c.get_batch("q", 10, Duration::ZERO).unwrap().is_empty());
}
}

on_both_transports! {
/// A batch stops before its payloads pass 1 MiB: ten 300 KiB messages come out
/// three at a time (900 KiB), and the last one alone.
fn get_batch_respects_the_one_mib_cap(t: Transport) {
    let server = TestServer::start_with_on(t, &[("BMAXMESSAGESIZE", "300K")]);
    let mut c = server.client();
    let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 300 * 1024]).collect();
    for p in &payloads {
        assert_eq!(c.put("big", p).unwrap(), PutStatus::Stored);
    }
    let mut received = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..10 {
        let batch = c.get_batch("big", 10, Duration::ZERO).unwrap();
        if batch.is_empty() {
            break;
        }
        let bytes: usize = batch.iter().map(Vec::len).sum();
        assert!(bytes <= 1 << 20, "batch of {bytes} bytes passes 1 MiB");
        sizes.push(batch.len());
        received.extend(batch);
    }
    assert!(
        sizes[0] >= 1 && sizes[0] < 10,
        "first batch of {}",
        sizes[0]
    );
    assert_eq!(sizes, [3, 3, 3, 1], "batch sizes");
    assert_eq!(received, payloads, "every message once, in order");
}
}

on_both_transports! {
/// A message larger than 1 MiB still comes out, alone, in a batch.
fn get_batch_returns_a_message_over_one_mib_alone(t: Transport) {
    let server = TestServer::start_with_on(t, &[("BMAXMESSAGESIZE", "2M")]);
    let mut c = server.client();
    let big = vec![0xab; 1_500_000];
    c.put("q", &big).unwrap();
    c.put("q", b"small").unwrap();
    let batch = c.get_batch("q", 10, Duration::ZERO).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0], big);
    assert_eq!(
        c.get_batch("q", 10, Duration::ZERO).unwrap(),
        [b"small".to_vec()]
    );
}
}

on_both_transports! {
/// get_wait on an empty queue returns None once its wait runs out.
fn get_wait_times_out_with_none(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    assert_eq!(
        c.get_wait("nothing", Duration::from_millis(50)).unwrap(),
        None
    );
    assert!(
        c.get_batch("nothing", 5, Duration::from_millis(20))
            .unwrap()
            .is_empty()
    );
    // The connection is still in step: the next reply answers the next request.
    c.put("nothing", b"now").unwrap();
    assert_eq!(
        c.get_wait("nothing", Duration::from_millis(50))
            .unwrap()
            .as_deref(),
        Some(&b"now"[..])
    );
}
}

on_both_transports! {
/// PURGE reports how many messages it dropped; a missing queue reports 0.
fn purge_reports_how_many_were_dropped(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    for i in 0..7u8 {
        c.put("q", &[i]).unwrap();
    }
    c.put("other", b"stays").unwrap();
    assert_eq!(c.purge("q").unwrap(), 7);
    assert_eq!(c.get("q").unwrap(), None);
    assert_eq!(c.purge("q").unwrap(), 0);
    assert_eq!(c.purge("never-created").unwrap(), 0);
    assert_eq!(c.queue_stats("never-created").unwrap(), None);
    let stats = c.stats().unwrap();
    assert_eq!(stats.get("purged"), Some(7));
    assert_eq!(stats.get("messages"), Some(1));
    assert_eq!(c.get("other").unwrap().as_deref(), Some(&b"stays"[..]));
}
}

on_both_transports! {
/// STATS counts puts, gets, held messages and bytes, queues and truncations, overall
/// and per queue.
fn stats_count_puts_gets_messages_queues_and_truncations(t: Transport) {
    let server = TestServer::start_with_on(t, &[("BMAXMESSAGESIZE", "10240")]);
    let mut c = server.client();
    let fresh = c.stats().unwrap();
    for name in ["puts", "gets", "messages", "queues", "truncations", "bytes"] {
        assert_eq!(fresh.get(name), Some(0), "{name} on a fresh server");
    }
    assert_eq!(fresh.get("connections"), Some(1));
    c.put("a", b"12345").unwrap();
    c.put("a", b"678").unwrap();
    c.put("a", &vec![1; 20_000]).unwrap();
    c.put("b", b"x").unwrap();
    assert_eq!(c.get("a").unwrap().as_deref(), Some(&b"12345"[..]));
    assert_eq!(c.get("missing").unwrap(), None);

    let stats = c.stats().unwrap();
    assert_eq!(stats.get("puts"), Some(4));
    assert_eq!(stats.get("gets"), Some(1));
    assert_eq!(stats.get("messages"), Some(3));
    assert_eq!(stats.get("bytes"), Some(3 + 10240 + 1));
    assert_eq!(stats.get("queues"), Some(2));
    assert_eq!(stats.get("truncations"), Some(1));
    assert_eq!(stats.get("waiters"), Some(0));
    assert_eq!(stats.get("connections_total"), Some(1));
    assert!(stats.get("memory").unwrap() > 3 + 10240);
    assert_eq!(stats.queues.len(), 2);

    let a = stats.queue("a").expect("queue a");
    assert_eq!(a.get("messages"), Some(2));
    assert_eq!(a.get("bytes"), Some(3 + 10240));
    assert_eq!(a.get("puts"), Some(3));
    assert_eq!(a.get("gets"), Some(1));
    assert_eq!(a.get("truncations"), Some(1));
    assert_eq!(a.get("waiters"), Some(0));
    let b = c.queue_stats("b").unwrap().expect("queue b");
    assert_eq!(b.name, "b");
    assert_eq!(b.get("messages"), Some(1));
    assert_eq!(b.get("puts"), Some(1));
    assert_eq!(b.get("gets"), Some(0));
    assert_eq!(b.get("truncations"), Some(0));
}
}

on_both_transports! {
/// HELLO says version 6 and the server's message size limit.
fn hello_reports_version_and_max_message_size(t: Transport) {
    let server = TestServer::start_on(t);
    let info = server.client().hello().unwrap();
    assert_eq!(info.version, 6);
    assert_eq!(info.max_message_size, 1 << 20);
    assert!(info.server.starts_with("beuss"), "{}", info.server);

    let server = TestServer::start_with_on(t, &[("BMAXMESSAGESIZE", "300K")]);
    let info = server.client().hello().unwrap();
    assert_eq!(info.version, 6);
    assert_eq!(info.max_message_size, 300 * 1024);
}
}

on_both_transports! {
/// put_many pipelines its PUTs and returns one status per message, in order.
fn put_many_returns_pipelined_statuses_in_order(t: Transport) {
    let server = TestServer::start_with_on(t, &[("BMAXMESSAGESIZE", "10240")]);
    let mut c = server.client();
    // Past the client's pipeline window, with every 500th message over the limit.
    let payloads: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| {
            if i % 500 == 499 {
                vec![b'x'; 10240 + 1 + i as usize]
            } else {
                i.to_be_bytes().to_vec()
            }
        })
        .collect();
    let statuses = c.put_many("q", &payloads).unwrap();
    assert_eq!(statuses.len(), 3000);
    for (i, status) in statuses.iter().enumerate() {
        if i % 500 == 499 {
            assert_eq!(
                *status,
                PutStatus::Truncated {
                    original_len: (10240 + 1 + i) as u32,
                    stored_len: 10240
                },
                "status {i}"
            );
        } else {
            assert_eq!(*status, PutStatus::Stored, "status {i}");
        }
    }
    let first = c.get_batch("q", 499, Duration::ZERO).unwrap();
    assert_eq!(first, payloads[..499]);
    assert_eq!(stat_of(&mut c, "truncations"), 6);
}
}

on_both_transports! {
/// A full server's FULL error is recognised by is_full, is not fatal, and the same
/// connection carries on.
fn full_server_error_is_full(t: Transport) {
    let server = TestServer::start_with_on(t, &[("BMAXMEMORY", "64K"), ("BMAXMESSAGESIZE", "4K")]);
    let mut c = server.client();
    let mut stored = 0;
    let err = loop {
        assert!(stored < 1000, "64K never filled up");
        match c.put("q", &[7; 1000]) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(err.is_full(), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::Full));
    assert!(
        matches!(
            err,
            Error::Server {
                code: 7,
                fatal: false,
                ..
            }
        ),
        "{err:?}"
    );
    c.ping().unwrap();
    assert_eq!(stat_of(&mut c, "messages"), stored);
    assert_eq!(stat_of(&mut c, "rejected_full"), 1);
    let other = Error::Closed;
    assert!(!other.is_full());
}
}

on_both_transports! {
/// GET max 0 is refused with a fatal BAD_ARGUMENT, and the connection ends.
fn get_batch_of_zero_is_a_fatal_bad_argument(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    let err = c.get_batch("q", 0, Duration::ZERO).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadArgument));
    assert!(matches!(err, Error::Server { fatal: true, .. }), "{err:?}");
    assert!(c.ping().is_err(), "the connection should be closed");
    server.client().ping().unwrap();
}
}

on_both_transports! {
/// An empty payload round-trips as an empty message, distinct from "no message".
fn empty_payload_round_trips(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.put("q", b"").unwrap();
    assert_eq!(c.get("q").unwrap(), Some(Vec::new()));
    assert_eq!(c.get("q").unwrap(), None);
}
}

on_both_transports! {
/// QUIT is answered and the connection ends cleanly.
fn quit_says_goodbye(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.put("q", b"kept").unwrap();
    c.quit().unwrap();
    server.wait_for_stat("connections", 1);
    assert_eq!(
        server.client().get("q").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}
}

on_both_transports! {
/// The low-level send/flush/recv trio pipelines mixed requests and replies in order.
fn send_flush_recv_pipeline_mixed_requests(t: Transport) {
    use beuss::protocol::{Request, Response};
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.send(&Request::Put {
        queue: "q",
        payload: b"p",
    })
    .unwrap();
    c.send(&Request::Ping).unwrap();
    c.send(&Request::Get {
        queue: "q",
        wait_ms: 0,
        max: 1,
    })
    .unwrap();
    c.send(&Request::Purge { queue: "q" }).unwrap();
    c.flush().unwrap();
    assert_eq!(c.recv().unwrap(), Response::Stored);
    assert_eq!(c.recv().unwrap(), Response::Pong);
    match c.recv().unwrap() {
        Response::Messages(m) => assert_eq!(m.iter().collect::<Vec<_>>(), [b"p"]),
        other => panic!("expected MESSAGES, got {other:?}"),
    }
    assert_eq!(c.recv().unwrap(), Response::Purged { count: 0 });
}
}

on_both_transports! {
/// A consumer waiting forever (Duration::MAX) is woken by a PUT.
fn get_wait_forever_is_woken_by_a_put(t: Transport) {
    let server = TestServer::start_on(t);
    let mut consumer = server.client();
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        tx.send(consumer.get_wait("q", Duration::MAX).unwrap())
            .unwrap();
    });
    server.wait_for_stat("waiters", 1);
    server.client().put("q", b"wake up").unwrap();
    let got = rx.recv_timeout(TIMEOUT).expect("consumer woken");
    assert_eq!(got.as_deref(), Some(&b"wake up"[..]));
    handle.join().unwrap();
}
}
