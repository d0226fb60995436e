//! Many producers and consumers on one queue at once: every message is delivered
//! exactly once, and each consumer sees each producer's messages in the order that
//! producer sent them.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use beuss::client::PutStatus;
use common::*;

const PRODUCERS: u32 = 20;
const PER_PRODUCER: u32 = 1000;
const CONSUMERS: usize = 20;
const TOTAL: usize = (PRODUCERS * PER_PRODUCER) as usize;
/// Give up (and report what is missing) after this long.
const DEADLINE: Duration = Duration::from_secs(60);

/// How consumers take messages.
#[derive(Clone, Copy)]
enum Take {
    /// `get_wait`: one message per request, waiting when the queue is empty.
    One,
    /// `get_batch`: up to this many per request, waiting for the first.
    Batch(u16),
}

/// Payload: producer id then sequence number, both big-endian `u32`.
fn encode(producer: u32, seq: u32) -> [u8; 8] {
    let mut m = [0; 8];
    m[..4].copy_from_slice(&producer.to_be_bytes());
    m[4..].copy_from_slice(&seq.to_be_bytes());
    m
}

fn decode(m: &[u8]) -> (u32, u32) {
    assert_eq!(m.len(), 8, "payload {m:?}");
    (
        u32::from_be_bytes(m[..4].try_into().unwrap()),
        u32::from_be_bytes(m[4..].try_into().unwrap()),
    )
}

/// Runs 20 producers × 1,000 messages against 20 consumers on one queue and checks
/// exactly-once delivery and per-producer order at each consumer.
fn producers_and_consumers(take: Take) {
    let server = TestServer::start();
    let received = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let mut client = server.client();
            let received = Arc::clone(&received);
            thread::spawn(move || {
                let mut seen: Vec<(u32, u32)> = Vec::new();
                while received.load(Ordering::SeqCst) < TOTAL && started.elapsed() < DEADLINE {
                    let batch = match take {
                        Take::One => client
                            .get_wait("work", Duration::from_millis(100))
                            .unwrap()
                            .into_iter()
                            .collect(),
                        Take::Batch(max) => client
                            .get_batch("work", max, Duration::from_millis(100))
                            .unwrap(),
                    };
                    if let Take::Batch(max) = take {
                        assert!(batch.len() <= usize::from(max), "batch over max");
                    }
                    received.fetch_add(batch.len(), Ordering::SeqCst);
                    seen.extend(batch.iter().map(|m| decode(m)));
                }
                seen
            })
        })
        .collect();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut client = server.client();
            thread::spawn(move || {
                for seq in 0..PER_PRODUCER {
                    assert_eq!(
                        client.put("work", &encode(p, seq)).unwrap(),
                        PutStatus::Stored
                    );
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let per_consumer: Vec<Vec<(u32, u32)>> =
        consumers.into_iter().map(|c| c.join().unwrap()).collect();

    let mut all = HashSet::new();
    for (c, seen) in per_consumer.iter().enumerate() {
        let mut last = vec![None::<u32>; PRODUCERS as usize];
        for &(p, seq) in seen {
            assert!(p < PRODUCERS && seq < PER_PRODUCER, "bad message {p}/{seq}");
            assert!(all.insert((p, seq)), "message {p}/{seq} delivered twice");
            let prev = &mut last[p as usize];
            assert!(
                prev.is_none_or(|prev| prev < seq),
                "consumer {c} saw producer {p}'s {seq} after {prev:?}"
            );
            *prev = Some(seq);
        }
    }
    assert_eq!(
        all.len(),
        TOTAL,
        "messages delivered (missing ones were lost)"
    );
    let busy = per_consumer.iter().filter(|s| !s.is_empty()).count();
    eprintln!(
        "{TOTAL} messages through {busy} of {CONSUMERS} consumers in {:?}",
        started.elapsed()
    );
    let stats = server.client().stats().unwrap();
    assert_eq!(stats.get("puts"), Some(TOTAL as u64));
    assert_eq!(stats.get("gets"), Some(TOTAL as u64));
    assert_eq!(stats.get("messages"), Some(0));
}

/// 20 producers × 1,000 messages, 20 consumers on get_wait: exactly once, and
/// per-producer order at every consumer.
#[test]
fn twenty_producers_twenty_waiting_consumers() {
    producers_and_consumers(Take::One);
}

/// The same with consumers taking batches of up to 50.
#[test]
fn twenty_producers_twenty_batch_consumers() {
    producers_and_consumers(Take::Batch(50));
}

/// Consumers parked before any producer starts are each handed messages, and a
/// message handed to a waiter is never also left in the queue.
#[test]
fn parked_consumers_share_a_burst_without_duplicates() {
    let server = TestServer::start();
    let received = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..10)
        .map(|_| {
            let mut client = server.client();
            let received = Arc::clone(&received);
            thread::spawn(move || {
                // Parked first: each of the ten is handed one of the first ten PUTs.
                let first = client.get_wait("burst", TIMEOUT / 2).unwrap();
                let mut got = vec![decode(&first.expect("a parked consumer is served"))];
                received.fetch_add(1, Ordering::SeqCst);
                let started = Instant::now();
                while received.load(Ordering::SeqCst) < 1000 && started.elapsed() < DEADLINE {
                    if let Some(m) = client
                        .get_wait("burst", Duration::from_millis(100))
                        .unwrap()
                    {
                        got.push(decode(&m));
                        received.fetch_add(1, Ordering::SeqCst);
                    }
                }
                got
            })
        })
        .collect();
    server.wait_for_stat("waiters", 10);
    let mut producer = server.client();
    let payloads: Vec<[u8; 8]> = (0..1000).map(|i| encode(0, i)).collect();
    producer.put_many("burst", &payloads).unwrap();
    let mut all: Vec<u32> = Vec::new();
    for c in consumers {
        let got = c.join().unwrap();
        assert!(
            got.windows(2).all(|w| w[0].1 < w[1].1),
            "order at a consumer"
        );
        all.extend(got.iter().map(|&(_, seq)| seq));
    }
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}
