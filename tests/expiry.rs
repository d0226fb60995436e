//! Message expiry end to end (protocol.md section 19): the real server dropping or
//! dead-lettering messages whose time to live ran out, on its own clock; a queue's
//! default (`BQUEUETTL`); a lease outliving the time to live; a restart with
//! `BDATADIR` after the time passed; the CLI's `--ttl`.

mod common;

use std::time::Duration;

use beuss::client::{Expiry, LeaseOptions, PutOptions, SettleResult, Unique};
use beuss::protocol::FEATURE_TTL;
use common::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn hello_announces_expiry() {
    let server = TestServer::start();
    let info = server.client().hello().unwrap();
    assert!(info.has(FEATURE_TTL));
}

#[test]
fn an_expired_message_is_dropped_and_never_delivered() {
    let server = TestServer::start();
    let mut client = server.client();
    let opts = PutOptions::default();
    client
        .put_expiring("quotes", b"old", Expiry::after(ms(200)), opts)
        .unwrap();
    client
        .put_expiring("quotes", b"fresh", Expiry::after(ms(600_000)), opts)
        .unwrap();
    assert_eq!(server.stat("expiring"), 2);
    server.wait_for_stat("expired", 1);
    assert_eq!(client.get("quotes").unwrap(), Some(b"fresh".to_vec()));
    assert_eq!(client.get("quotes").unwrap(), None);
    assert_eq!(server.stat("expiring"), 0);
}

#[test]
fn a_dead_letter_expiry_moves_it_to_the_dead_letter_queue() {
    let server = TestServer::start();
    let mut client = server.client();
    let expiry = Expiry::after(ms(100)).dead_letter();
    let (id, _) = client
        .put_expiring("jobs", b"late", expiry, PutOptions::default())
        .unwrap();
    server.wait_for_stat("expired", 1);
    let dead = client.peek("jobs.dead", 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id(), dead[0].payload()), (id, &b"late"[..]));
    assert_eq!(server.stat("dead_lettered"), 1);
}

#[test]
fn a_lease_outlives_the_time_to_live_and_a_nack_then_expires_it() {
    let server = TestServer::start();
    let mut client = server.client();
    let opts = PutOptions::default();
    for body in [&b"a"[..], b"b"] {
        client
            .put_expiring("work", body, Expiry::after(ms(150)), opts)
            .unwrap();
    }
    let lease = LeaseOptions {
        lease: Some(Duration::from_secs(30)),
        ..LeaseOptions::default()
    };
    let got = client.lease("work", 2, Duration::ZERO, lease).unwrap();
    assert_eq!(got.len(), 2);
    // Past the time to live, the leases are still live.
    std::thread::sleep(ms(300));
    assert_eq!(got[0].ack(&mut client).unwrap(), SettleResult::Ok);
    assert_eq!(server.stat("expired"), 0);
    assert_eq!(
        got[1].nack(&mut client, Duration::ZERO).unwrap(),
        SettleResult::Ok
    );
    assert_eq!(server.stat("expired"), 1);
    assert_eq!(client.get("work").unwrap(), None, "never given out again");
}

#[test]
fn a_queue_default_applies_unless_the_put_says_never() {
    let server = TestServer::start_with(&[("BQUEUETTL", "cache=200ms")]);
    let mut client = server.client();
    client.put("cache", b"dropped").unwrap();
    client
        .put_expiring("cache", b"kept", Expiry::never(), PutOptions::default())
        .unwrap();
    client.put("other", b"not this queue").unwrap();
    // A keyed message takes the default too.
    client
        .put_unique("cache", b"keyed", Unique::key(b"k"), PutOptions::default())
        .unwrap();
    server.wait_for_stat("expired", 2);
    assert_eq!(client.get("cache").unwrap(), Some(b"kept".to_vec()));
    assert_eq!(client.get("cache").unwrap(), None);
    assert_eq!(
        client.get("other").unwrap(),
        Some(b"not this queue".to_vec())
    );
}

#[test]
fn a_bad_bqueuettl_stops_the_start() {
    for bad in ["jobs", "jobs=31d", "=1h", "a=1h,a=2h", "1h,b=2"] {
        let (status, _, stderr) = run_server_to_exit(&[], &[("BQUEUETTL", bad), ("BPORT", "0")]);
        assert!(!status.success(), "{bad}");
        assert!(stderr.contains("BQUEUETTL"), "{bad}: {stderr}");
    }
}

/// With `BDATADIR`, a message whose time to live passed while the server was down is
/// gone at start; one with time left keeps it.
#[test]
fn expiry_counts_the_time_the_server_was_down() {
    let dir = TempDir::new("down");
    let env = [("BDATADIR", dir.text()), ("BFSYNC", "always")];
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    let opts = PutOptions::default();
    client
        .put_expiring("q", b"short", Expiry::after(ms(300)), opts)
        .unwrap();
    client
        .put_expiring("q", b"long", Expiry::after(ms(600_000)), opts)
        .unwrap();
    server.stop_with(libc::SIGKILL);
    std::thread::sleep(ms(400));
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    assert_eq!(server.stat("expired"), 1);
    assert_eq!(server.stat("expiring"), 1);
    let peeked = client.peek("q", 10).unwrap();
    assert_eq!(peeked.len(), 1);
    assert_eq!(peeked[0].payload(), b"long");
    server.stop_with(libc::SIGTERM);
    let server = TestServer::start_with(&env);
    assert_eq!(server.stat("expiring"), 1);
}

#[test]
fn the_cli_puts_with_a_time_to_live() {
    let server = TestServer::start();
    let port = server.port.to_string();
    let env = [("BPORT", port.as_str())];
    let put = run_cli(&["PUT", "q", "--ttl", "200ms", "--ttl-dead"], &env, b"x");
    assert!(put.status.success(), "{put:?}");
    server.wait_for_stat("expired", 1);
    let dead = run_cli(&["GET", "q.dead"], &env, b"");
    assert_eq!(dead.stdout, b"x");
    let usage = run_cli(&["PUT", "q", "--ttl-dead"], &env, b"");
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    let usage = run_cli(&["PUT", "q", "--ttl", "31d"], &env, b"");
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
}
