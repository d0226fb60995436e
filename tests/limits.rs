//! The server's limits hold under pressure: message size (truncation, also for a huge
//! streamed PUT), the memory cap, the connection cap, idle-queue expiry, a client that
//! never reads its replies, and 10,000 idle connections. Memory is read from /proc.

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use beuss::client::{Error, PutStatus};
use common::*;

const MIB: u64 = 1024; // in KiB

/// A recognisable payload: byte i is i mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// Message size
// ---------------------------------------------------------------------------

/// A 20,000-byte PUT with a 10240-byte limit is answered TRUNCATED(20000, 10240) and
/// stores exactly the first 10,240 bytes; requests behind it in the same write run.
#[test]
fn oversize_put_is_truncated() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "10240")]);
    let mut s = server.raw();
    let payload = pattern(20_000);
    let mut bytes = put_frame(b"jobs", &payload);
    assert_eq!(
        &bytes[..11],
        [0, 0, 0x4e, 0x27, 0x10, 0, 4, b'j', b'o', b'b', b's']
    );
    bytes.extend(ping_frame());
    send(&mut s, &bytes);
    assert_eq!(
        read_frame(&mut s),
        [
            0x00, 0x00, 0x00, 0x09, 0x11, 0x00, 0x00, 0x4e, 0x20, 0x00, 0x00, 0x28, 0x00
        ]
    );
    assert_eq!(read_frame(&mut s), PONG);
    assert_eq!(
        call(&mut s, &get_frame(b"jobs", 0, 10)),
        messages_reply(&[&payload[..10240]])
    );
    let stats = server.client().stats().unwrap();
    assert_eq!(stats.get("truncations"), Some(1));
    assert_eq!(stats.get("bytes"), Some(0));
}

/// A PUT of exactly the limit is STORED; one byte more is TRUNCATED.
#[test]
fn put_at_the_limit_is_stored_one_byte_over_is_truncated() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "100")]);
    let mut s = server.raw();
    assert_eq!(call(&mut s, &put_frame(b"q", &pattern(100))), STORED);
    assert_eq!(
        call(&mut s, &put_frame(b"q", &pattern(101))),
        truncated_reply(101, 100)
    );
    assert_eq!(
        call(&mut s, &get_frame(b"q", 0, 2)),
        messages_reply(&[&pattern(100), &pattern(100)])
    );
}

/// An oversized PUT handed straight to a parked consumer arrives truncated too.
#[test]
fn oversize_put_to_a_waiting_consumer_is_truncated() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "1K")]);
    let mut consumer = server.raw();
    send(&mut consumer, &get_frame(b"q", 5000, 1));
    server.wait_for_stat("waiters", 1);
    let mut producer = server.raw();
    let payload = pattern(5000);
    assert_eq!(
        call(&mut producer, &put_frame(b"q", &payload)),
        truncated_reply(5000, 1024)
    );
    assert_eq!(
        read_frame(&mut consumer),
        messages_reply(&[&payload[..1024]])
    );
}

/// Payload streamed by the very large PUT test: the largest a frame can carry (its
/// length, 2 + 1 + 4 + payload, is exactly `u32::MAX`), just under 4 GiB. It takes
/// about two seconds in a debug build; the server must keep only 10 KiB of it.
const HUGE_PUT: u64 = u32::MAX as u64 - 7;

/// One PUT of almost 4 GiB streamed in 1 MiB writes is TRUNCATED with its real
/// length, and the server's RSS, sampled during the stream and read after it, stays
/// within 16 MiB of what it was before.
#[test]
fn huge_put_is_streamed_without_buffering() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "10240")]);
    let mut s = server.raw();
    // Warm up: the read path and a truncated PUT have run once.
    assert_eq!(
        call(&mut s, &put_frame(b"warm", &pattern(20_000))),
        truncated_reply(20_000, 10240)
    );
    let before = server.rss_kib();

    let mut writer = s.try_clone().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let done_w = Arc::clone(&done);
    let stream = thread::spawn(move || {
        writer
            .write_all(&put_head(b"huge", HUGE_PUT as u32))
            .unwrap();
        let chunk = pattern(1 << 20);
        let mut left = HUGE_PUT as usize;
        while left > 0 {
            let n = left.min(chunk.len());
            writer.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        writer.write_all(&ping_frame()).unwrap();
        done_w.store(true, Ordering::SeqCst);
    });
    let started = Instant::now();
    let mut peak = before;
    let mut samples = 0;
    while !done.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stream stalled"
        );
        peak = peak.max(server.rss_kib());
        samples += 1;
        thread::sleep(Duration::from_millis(20));
    }
    stream.join().unwrap();
    let streamed = started.elapsed();
    assert_eq!(
        read_frame(&mut s),
        truncated_reply(HUGE_PUT as u32, 10240),
        "reply to the huge PUT"
    );
    assert_eq!(read_frame(&mut s), PONG);
    let after = server.rss_kib();
    peak = peak.max(after);
    eprintln!(
        "huge PUT: {HUGE_PUT} bytes in {streamed:?}; server RSS before {before} KiB, peak \
         {peak} KiB over {samples} samples, after {after} KiB"
    );
    assert!(
        peak < before + 16 * MIB,
        "RSS grew from {before} KiB to {peak} KiB during a streamed PUT"
    );
    assert_eq!(
        call(&mut s, &get_frame(b"huge", 0, 1)),
        messages_reply(&[&pattern(1 << 20)[..10240]])
    );
}

// ---------------------------------------------------------------------------
// Memory cap
// ---------------------------------------------------------------------------

/// With BMAXMEMORY=1M, PUTs succeed until FULL (code 7, not fatal); the connection
/// stays usable, every earlier message is still there in order, and once the queue
/// is drained a PUT is stored again.
#[test]
fn memory_cap_refuses_with_full_and_drops_nothing() {
    let server = TestServer::start_with(&[("BMAXMEMORY", "1M")]);
    let mut c = server.client();
    let message = |i: u32| {
        let mut m = i.to_be_bytes().to_vec();
        m.resize(1000, b'.');
        m
    };
    let mut stored = 0u32;
    let err = loop {
        assert!(stored < 5000, "1 MiB cap never reached after {stored} KB");
        match c.put("q", &message(stored)) {
            Ok(PutStatus::Stored) => stored += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
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
    assert!(
        stored > 500,
        "only {stored} messages of 1000 bytes fit in 1 MiB"
    );
    // Refused again, still not fatal; the connection answers other requests.
    assert!(c.put("q", &message(stored)).unwrap_err().is_full());
    c.ping().unwrap();

    let stats = c.stats().unwrap();
    assert!(stats.get("memory").unwrap() <= 1 << 20);
    assert_eq!(
        stats.queue("q").unwrap().get("messages"),
        Some(u64::from(stored))
    );
    assert!(stats.get("rejected_full").unwrap() >= 2);

    let mut next = 0u32;
    for _ in 0..stored {
        let batch = c.get_batch("q", 100, Duration::ZERO).unwrap();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            assert_eq!(m, message(next), "message {next}");
            next += 1;
        }
    }
    assert_eq!(next, stored, "every stored message came back");
    assert_eq!(c.put("q", b"room again").unwrap(), PutStatus::Stored);
}

/// A full server still hands a PUT straight to a parked consumer.
#[test]
fn full_server_still_hands_messages_to_waiting_consumers() {
    let server = TestServer::start_with(&[("BMAXMEMORY", "256K"), ("BMAXMESSAGESIZE", "8K")]);
    let mut c = server.client();
    let mut stored = 0;
    loop {
        assert!(stored < 1000, "256K cap never reached");
        match c.put("filler", &[1; 8000]) {
            Ok(_) => stored += 1,
            Err(e) if e.is_full() => break,
            Err(e) => panic!("{e}"),
        }
    }
    let mut consumer = server.raw();
    send(&mut consumer, &get_frame(b"direct", 5000, 1));
    server.wait_for_stat("waiters", 1);
    assert_eq!(c.put("direct", &[2; 8000]).unwrap(), PutStatus::Stored);
    assert_eq!(read_frame(&mut consumer), messages_reply(&[&[2; 8000]]));
    assert!(c.put("filler", &[1; 8000]).unwrap_err().is_full());
}

// ---------------------------------------------------------------------------
// Connection cap
// ---------------------------------------------------------------------------

/// With BMAXCONNECTIONS=5 the 6th connection reads a fatal TOO_MANY_CONNECTIONS and is
/// closed; once one of the 5 closes, a new connection is accepted.
#[test]
fn connection_cap_turns_the_sixth_away() {
    let server = TestServer::start_with(&[("BMAXCONNECTIONS", "5")]);
    let mut stats = server.client();
    let mut open: Vec<TcpStream> = (0..4).map(|_| server.raw()).collect();
    for s in &mut open {
        assert_eq!(call(s, &ping_frame()), PONG);
    }
    assert_eq!(stat_of(&mut stats, "connections"), 5);

    let mut sixth = server.raw();
    send(&mut sixth, &ping_frame());
    let text = expect_fatal_error(&mut sixth, 8);
    assert!(text.contains('5'), "{text}");
    assert_eq!(stat_of(&mut stats, "connections_rejected"), 1);
    assert_eq!(stat_of(&mut stats, "connections"), 5);

    // The five are unaffected.
    for s in &mut open {
        assert_eq!(call(s, &ping_frame()), PONG);
    }
    drop(open.pop());
    eventually("the server to see a connection close", || {
        stat_of(&mut stats, "connections") == 4
    });
    let mut again = server.raw();
    assert_eq!(call(&mut again, &ping_frame()), PONG);
    assert_eq!(stat_of(&mut stats, "connections_rejected"), 1);
}

// ---------------------------------------------------------------------------
// Idle queues
// ---------------------------------------------------------------------------

/// With a short BQUEUEIDLE a queue created by PUT and drained by GET disappears from
/// STATS, and expired_queues counts it. (One second, not less: the queue must still
/// be there when the test looks right after the GET, even on a busy machine.)
#[test]
fn drained_queue_expires_after_idle_time() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "1s")]);
    let mut c = server.client();
    c.put("brief", b"x").unwrap();
    assert_eq!(c.get("brief").unwrap().as_deref(), Some(&b"x"[..]));
    assert!(c.queue_stats("brief").unwrap().is_some());
    eventually("the drained queue to expire", || {
        c.queue_stats("brief").unwrap().is_none()
    });
    let stats = c.stats().unwrap();
    assert_eq!(stats.get("queues"), Some(0));
    assert_eq!(stats.get("expired_queues"), Some(1));
    // Created again, it starts from zero.
    c.put("brief", b"y").unwrap();
    assert_eq!(
        c.queue_stats("brief").unwrap().unwrap().get("puts"),
        Some(1)
    );
}

/// A queue holding messages outlives the idle time (proved by a queue used after it
/// expiring first).
#[test]
fn queue_holding_messages_does_not_expire() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "300ms")]);
    let mut c = server.client();
    c.put("held", b"keep me").unwrap();
    c.put("tmp", b"x").unwrap();
    c.get("tmp").unwrap();
    eventually("tmp to expire", || c.queue_stats("tmp").unwrap().is_none());
    let held = c.queue_stats("held").unwrap().expect("held still exists");
    assert_eq!(held.get("messages"), Some(1));
    assert!(held.get("idle_ms").unwrap() >= 300);
    assert_eq!(c.get("held").unwrap().as_deref(), Some(&b"keep me"[..]));
}

/// A queue with a parked consumer does not expire while it waits.
#[test]
fn queue_with_a_waiting_consumer_does_not_expire() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "300ms")]);
    let mut consumer = server.raw();
    send(&mut consumer, &get_frame(b"waited", 10_000, 1));
    server.wait_for_stat("waiters", 1);
    let mut c = server.client();
    c.put("tmp", b"x").unwrap();
    c.get("tmp").unwrap();
    eventually("tmp to expire", || c.queue_stats("tmp").unwrap().is_none());
    assert!(c.queue_stats("waited").unwrap().is_some());
    c.put("waited", b"for you").unwrap();
    assert_eq!(read_frame(&mut consumer), messages_reply(&[b"for you"]));
}

/// GET wait 0 on a missing queue creates nothing, nor do PURGE and STATS.
#[test]
fn get_without_wait_on_a_missing_queue_creates_nothing() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "300ms")]);
    let mut c = server.client();
    assert_eq!(c.get("ghost").unwrap(), None);
    assert_eq!(c.purge("ghost").unwrap(), 0);
    assert_eq!(c.queue_stats("ghost").unwrap(), None);
    assert_eq!(stat_of(&mut c, "queues"), 0);
    assert_eq!(stat_of(&mut c, "memory"), 0);
}

/// A GET that waits on a new queue creates it; after the wait times out the queue
/// expires like any idle one.
#[test]
fn queue_created_by_a_timed_out_wait_expires() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "300ms")]);
    let mut consumer = server.client();
    // Long enough for the checks below to see the waiter even on a busy machine.
    let waiting = thread::spawn(move || consumer.get_wait("w", Duration::from_secs(1)));
    server.wait_for_stat("waiters", 1);
    let mut c = server.client();
    let q = c
        .queue_stats("w")
        .unwrap()
        .expect("the waiting GET created w");
    assert_eq!(q.get("waiters"), Some(1));
    assert_eq!(waiting.join().unwrap().unwrap(), None);
    eventually("w to expire", || c.queue_stats("w").unwrap().is_none());
    let stats = c.stats().unwrap();
    assert_eq!(stats.get("queues"), Some(0));
    assert_eq!(stats.get("expired_queues"), Some(1));
    assert_eq!(stats.get("memory"), Some(0));
}

// ---------------------------------------------------------------------------
// Slow and many clients
// ---------------------------------------------------------------------------

/// A client that pipelines requests (GET, PING, STATS) and never reads its replies is
/// held back (its writes end up blocking), while another client is served normally
/// and the server's RSS stays under 64 MiB.
#[test]
fn client_that_never_reads_is_held_back() {
    const MAX_REQUESTS: usize = 3_000_000;
    let server = TestServer::start();
    let base = server.rss_kib();
    let flooder = server.raw();
    flooder
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.extend(get_frame(b"q", 0, 1));
        batch.extend(ping_frame());
        batch.extend(stats_frame(b""));
    }
    let per_batch = 3000;
    let flood = thread::spawn(move || {
        let mut flooder = flooder;
        let mut sent = 0;
        while sent < MAX_REQUESTS {
            match flooder.write_all(&batch) {
                Ok(()) => sent += per_batch,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (sent, true, flooder);
                }
                Err(e) => panic!("flood write: {e}"),
            }
        }
        (sent, false, flooder)
    });

    let mut c = server.client();
    let mut peak = base;
    let mut rounds = 0u32;
    while !flood.is_finished() {
        assert!(rounds < 100_000, "bounded");
        rounds += 1;
        c.put("other", &rounds.to_be_bytes()).unwrap();
        assert_eq!(
            c.get("other").unwrap().as_deref(),
            Some(&rounds.to_be_bytes()[..])
        );
        c.ping().unwrap();
        peak = peak.max(server.rss_kib());
    }
    let (sent, blocked, flooder) = flood.join().unwrap();
    // Still served after the flooder is stuck.
    for i in 0..100u32 {
        c.put("other", &i.to_be_bytes()).unwrap();
        c.get("other").unwrap().unwrap();
    }
    c.ping().unwrap();
    let after = server.rss_kib();
    peak = peak.max(after);
    eprintln!(
        "non-reading client: {sent} requests written before blocking={blocked}; other client \
         did {rounds} PUT/GET/PING rounds meanwhile; server RSS base {base} KiB, peak {peak} \
         KiB, after {after} KiB"
    );
    assert!(
        blocked,
        "{sent} requests were all accepted: the server never pushed back"
    );
    assert!(peak < 64 * MIB, "server RSS reached {peak} KiB");
    drop(flooder);
    drop(c);
    server.wait_for_stat("connections", 1);
}

/// Raises this process's open-file soft limit to its hard limit; fails the test if
/// the hard limit cannot hold `needed` descriptors.
#[allow(clippy::useless_conversion)] // rlim_t differs between targets
fn raise_nofile_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let hard = u64::from(limit.rlim_max);
    assert!(
        hard >= needed,
        "this test needs {needed} open files but the hard RLIMIT_NOFILE is {hard}; \
         raise it (ulimit -Hn) to run the 10,000-connection test"
    );
    if u64::from(limit.rlim_cur) < needed {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we pass.
        assert_eq!(
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) },
            0,
            "setrlimit: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// 10,000 idle connections are all accepted and answered, and the server's RSS stays
/// well under 100 MiB.
#[test]
fn ten_thousand_idle_connections() {
    const N: usize = 10_000;
    raise_nofile_limit(N as u64 + 100);
    // Room for the STATS client on top of the 10,000 (the default cap is 10,000).
    let server = TestServer::start_with(&[("BMAXCONNECTIONS", "10010")]);
    let mut c = server.client();
    let base = server.rss_kib();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(N);
    // In batches, each confirmed by a PING round trip, so that the listen backlog
    // (128, mio's default) never overflows: an overflow drops the SYN and costs the
    // client a 1 s retransmission.
    while conns.len() < N {
        let start = conns.len();
        for _ in 0..100.min(N - start) {
            let s = TcpStream::connect(&server.addr).expect("connect");
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            conns.push(s);
        }
        for s in &mut conns[start..] {
            send(s, &ping_frame());
        }
        for s in &mut conns[start..] {
            assert_eq!(read_frame(s), PONG);
        }
    }
    assert_eq!(stat_of(&mut c, "connections"), N as u64 + 1);
    let after = server.rss_kib();
    let per_conn = (after.saturating_sub(base)) as f64 / N as f64;
    eprintln!(
        "10,000 idle connections: server RSS {base} KiB before, {after} KiB after, \
         {per_conn:.2} KiB per connection"
    );
    assert!(after < 100 * MIB, "server RSS is {after} KiB");
    // Still answering: a sample of the idle ones, and new work.
    for s in conns.iter_mut().step_by(997) {
        assert_eq!(call(s, &ping_frame()), PONG);
    }
    c.put("q", b"still fine").unwrap();
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"still fine"[..]));
    drop(conns);
    drop(c);
    server.wait_for_stat("connections", 1);
}

/// A queue created by a waiting GET whose client then disconnects expires like any
/// idle queue.
#[test]
fn queue_created_by_a_cancelled_wait_expires() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "300ms")]);
    let mut consumer = server.raw();
    send(&mut consumer, &get_frame(b"abandoned", 60_000, 1));
    server.wait_for_stat("waiters", 1);
    drop(consumer);
    server.wait_for_stat("waiters", 0);
    let mut c = server.client();
    eventually("the abandoned queue to expire", || {
        c.queue_stats("abandoned").unwrap().is_none()
    });
    assert_eq!(stat_of(&mut c, "expired_queues"), 1);
    assert_eq!(stat_of(&mut c, "memory"), 0);
}

/// STATS does not count as use: a queue's idle_ms grows while only STATS looks at it.
#[test]
fn stats_does_not_reset_idle_time() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "0")]);
    let mut c = server.client();
    c.put("q", b"x").unwrap();
    eventually("idle_ms to pass 50 while polled by STATS", || {
        c.queue_stats("q").unwrap().unwrap().get("idle_ms").unwrap() >= 50
    });
    c.get("q").unwrap();
    assert!(c.queue_stats("q").unwrap().unwrap().get("idle_ms").unwrap() < 50);
}

/// After a mix of puts (small, chunk-sized, oversized), batch gets, purges and waits
/// over many queues, once everything is drained and expired the memory count, bytes
/// and messages are all back to exactly zero.
#[test]
fn memory_accounting_returns_to_zero() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "200ms"), ("BMAXMESSAGESIZE", "200K")]);
    let mut c = server.client();
    let mut seed = 12345u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..2000 {
        let queue = format!("q{}", next() % 17);
        match next() % 10 {
            0..=5 => {
                let len = match next() % 20 {
                    0 => (next() % 300_000) as usize,
                    1..=3 => (next() % 70_000) as usize,
                    _ => (next() % 200) as usize,
                };
                c.put(&queue, &vec![round as u8; len]).unwrap();
            }
            6 | 7 => {
                c.get_batch(&queue, (next() % 20 + 1) as u16, Duration::ZERO)
                    .unwrap();
            }
            8 => {
                c.purge(&queue).unwrap();
            }
            _ => {
                c.get_wait(&queue, Duration::from_millis(1)).unwrap();
            }
        }
    }
    let stats = c.stats().unwrap();
    let sum: u64 = stats.queues.iter().map(|q| q.get("memory").unwrap()).sum();
    assert_eq!(
        stats.get("memory"),
        Some(sum),
        "server memory = sum of queues"
    );
    for q in 0..17 {
        c.purge(&format!("q{q}")).unwrap();
    }
    eventually("every queue to expire", || stat_of(&mut c, "queues") == 0);
    let stats = c.stats().unwrap();
    assert_eq!(stats.get("memory"), Some(0));
    assert_eq!(stats.get("bytes"), Some(0));
    assert_eq!(stats.get("messages"), Some(0));
}

/// A client that sends many requests before reading any reply (so the server stops
/// reading it for a while, with requests left in its kernel buffer) gets every reply,
/// in order, once it reads: the server resumes reading by itself.
#[test]
fn client_that_reads_late_gets_every_reply() {
    const PAIRS: usize = 50_000;
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for _ in 0..PAIRS {
        bytes.extend(stats_frame(b""));
        bytes.extend(ping_frame());
    }
    let mut writer = s.try_clone().unwrap();
    writer.set_write_timeout(None).unwrap();
    let write = thread::spawn(move || writer.write_all(&bytes).unwrap());
    // Wait until the server has left requests unread in its kernel buffer (it is
    // holding back because nobody reads its replies), then read everything.
    eventually("the server to stop reading", || {
        server_unread_bytes(server.port, &s) > 0
    });
    for i in 0..PAIRS {
        let stats = read_frame(&mut s);
        assert_eq!(stats[4], 0x20, "reply {} is STATS", 2 * i);
        assert_eq!(read_frame(&mut s), PONG, "reply {}", 2 * i + 1);
    }
    write.join().unwrap();
    assert_eq!(call(&mut s, &ping_frame()), PONG);
}

/// Out of file descriptors, the server warns at start, leaves extra connections
/// waiting in the listen backlog instead of failing, keeps serving the ones it has,
/// and accepts the waiting ones once others close.
#[test]
fn out_of_file_descriptors_waiting_connections_are_served_later() {
    const FILES: u64 = 48;
    const CONNS: usize = 80;
    let server = TestServer::start_with_file_limit(&[], FILES);
    server.wait_for_log("open-file limit is 48");
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| server.raw()).collect();
    for s in &mut conns {
        send(s, &ping_frame());
    }
    // The first ones fit: each is answered.
    for s in &mut conns[..20] {
        assert_eq!(read_frame(s), PONG);
    }
    server.wait_for_log("pausing new connections");
    // Free descriptors: the rest are accepted and their PINGs answered.
    let rest = conns.split_off(20);
    drop(conns);
    for mut s in rest {
        assert_eq!(read_frame(&mut s), PONG);
        drop(s);
    }
    let mut c = server.client();
    c.put("q", b"fine").unwrap();
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"fine"[..]));
}
