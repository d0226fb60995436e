//! Unique messages end to end (protocol.md section 18): the real server refusing
//! duplicates while a message holds its key and within a window after, replacing a
//! waiting message in place, through the Rust client, raw frames and the CLI, and
//! keeping keys across a restart with `BDATADIR`.

mod common;

use std::time::Duration;

use beuss::Client;
use beuss::client::{LeaseOptions, PutOptions, PutStatus, Unique, UniquePut};
use beuss::protocol::{FEATURE_UNIQUE, Holder};
use common::*;

const EXIT_DUPLICATE: i32 = 9;

fn put(client: &mut Client, queue: &str, payload: &[u8], unique: Unique<'_>) -> UniquePut {
    client
        .put_unique(queue, payload, unique, PutOptions::default())
        .expect("PUT with a key")
}

fn stored_id(done: UniquePut) -> u64 {
    match done {
        UniquePut::Stored { id, .. } => id,
        other => panic!("not stored: {other:?}"),
    }
}

fn lease_opts() -> LeaseOptions {
    LeaseOptions {
        lease: Some(Duration::from_secs(30)),
        ..LeaseOptions::default()
    }
}

#[test]
fn hello_announces_unique_messages() {
    let server = TestServer::start();
    let info = server.client().hello().unwrap();
    assert!(info.version >= 6);
    assert!(info.has(FEATURE_UNIQUE));
}

#[test]
fn a_key_is_refused_while_ready_delayed_or_in_flight_and_free_after_the_ack() {
    let server = TestServer::start();
    let mut client = server.client();
    let key = Unique::key(b"invoice-42");
    let id = stored_id(put(&mut client, "billing", b"first", key));
    assert_eq!(
        put(&mut client, "billing", b"second", key),
        UniquePut::Duplicate {
            id,
            holder: Holder::Ready
        }
    );
    let later = PutOptions {
        delay: Duration::from_secs(60),
        ..PutOptions::default()
    };
    let delayed = Unique::key(b"later");
    let d = match client.put_unique("billing", b"x", delayed, later).unwrap() {
        UniquePut::Stored { id, .. } => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        put(&mut client, "billing", b"y", delayed),
        UniquePut::Duplicate {
            id: d,
            holder: Holder::Delayed
        }
    );
    let got = client
        .lease("billing", 1, Duration::ZERO, lease_opts())
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id(), got[0].payload()), (id, &b"first"[..]));
    assert_eq!(
        put(&mut client, "billing", b"third", key),
        UniquePut::Duplicate {
            id,
            holder: Holder::InFlight
        }
    );
    // Replace never touches a message in flight either.
    assert_eq!(
        put(&mut client, "billing", b"third", key.replace()),
        UniquePut::Duplicate {
            id,
            holder: Holder::InFlight
        }
    );
    got[0].ack(&mut client).unwrap();
    let again = stored_id(put(&mut client, "billing", b"fourth", key));
    assert!(again > id);
    assert_eq!(server.stat("unique_duplicates"), 4);
    assert_eq!(server.stat("unique_keys"), 2);
}

#[test]
fn a_window_refuses_the_key_after_its_message_was_taken() {
    let server = TestServer::start();
    let mut client = server.client();
    let key = Unique::key(b"welcome-7").remember_for(Duration::from_millis(300));
    let id = stored_id(put(&mut client, "mail", b"hi", key));
    assert_eq!(client.get("mail").unwrap(), Some(b"hi".to_vec()));
    assert_eq!(
        put(&mut client, "mail", b"hi", key),
        UniquePut::Duplicate {
            id,
            holder: Holder::Gone
        }
    );
    assert_eq!(server.stat("unique_remembered"), 1);
    // The server forgets it on its own clock once the window ends.
    server.wait_for_stat("unique_remembered", 0);
    stored_id(put(&mut client, "mail", b"hi", key));
}

#[test]
fn replace_changes_the_waiting_message_in_its_place() {
    let server = TestServer::start();
    let mut client = server.client();
    client.put("prices", b"before").unwrap();
    let key = Unique::key(b"EURUSD").replace();
    let id = stored_id(put(&mut client, "prices", b"1.05", key));
    client.put("prices", b"after").unwrap();
    match put(&mut client, "prices", b"1.07", key) {
        UniquePut::Replaced { id: r, status } => {
            assert_eq!((r, status), (id, PutStatus::Stored));
        }
        other => panic!("{other:?}"),
    }
    let got: Vec<Vec<u8>> = (0..3)
        .map(|_| client.get("prices").unwrap().expect("a message"))
        .collect();
    assert_eq!(
        got,
        [b"before".to_vec(), b"1.07".to_vec(), b"after".to_vec()]
    );
    assert_eq!(server.stat("unique_replaced"), 1);
    assert_eq!(server.stat("unique_keys"), 0);
}

#[test]
fn a_parked_get_receives_a_keyed_message() {
    let server = TestServer::start();
    let waiter = std::thread::spawn({
        let mut client = server.client();
        move || {
            client
                .get_batch("jobs", 1, Duration::from_secs(5))
                .unwrap()
                .pop()
        }
    });
    let mut producer = server.client();
    eventually("the GET is parked", || {
        stat_of(&mut producer, "waiters") == 1
    });
    stored_id(put(&mut producer, "jobs", b"job", Unique::key(b"k")));
    assert_eq!(waiter.join().unwrap(), Some(b"job".to_vec()));
    // It left with the GET: the key is free.
    stored_id(put(&mut producer, "jobs", b"job", Unique::key(b"k")));
}

#[test]
fn the_cap_on_remembered_keys_forgets_and_counts() {
    let server = TestServer::start_with(&[("BMAXUNIQUEKEYS", "2")]);
    let mut client = server.client();
    for key in [&b"a"[..], b"b", b"c"] {
        let unique = Unique::key(key).remember_for(Duration::from_secs(600));
        stored_id(put(&mut client, "q", b"x", unique));
        assert!(client.get("q").unwrap().is_some());
    }
    assert_eq!(server.stat("unique_remembered"), 2);
    assert_eq!(server.stat("unique_forgotten"), 1);
}

#[test]
fn bad_key_fields_are_a_fatal_bad_argument() {
    let server = TestServer::start();
    let mut raw = server.raw();
    // PUT_UNIQUE, queue "q", key_len 0.
    let body = [0x04, 1, b'q', 0, 0, 0, 0, 0, 0];
    let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    frame.push(0x10);
    frame.extend_from_slice(&body);
    send(&mut raw, &frame);
    let text = expect_fatal_error(&mut raw, 6);
    assert!(text.contains("key is empty"), "{text}");
}

/// With `BDATADIR`, a held key and a remembered one survive a SIGKILL and a clean
/// stop, and a replaced payload is the one that comes back.
#[test]
fn keys_survive_restarts() {
    let dir = TempDir::new("restart");
    let env = [("BDATADIR", dir.text()), ("BFSYNC", "always")];
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    let held = stored_id(put(&mut client, "q", b"v1", Unique::key(b"held")));
    let replaced = put(&mut client, "q", b"v2", Unique::key(b"held").replace());
    assert!(matches!(replaced, UniquePut::Replaced { .. }));
    let window = Unique::key(b"gone").remember_for(Duration::from_secs(600));
    let gone = stored_id(put(&mut client, "other", b"x", window));
    assert!(client.get("other").unwrap().is_some());
    server.stop_with(libc::SIGKILL);

    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let server = TestServer::start_with(&env);
        let mut client = server.client();
        assert_eq!(server.stat("unique_keys"), 1);
        assert_eq!(server.stat("unique_remembered"), 1);
        assert_eq!(
            put(&mut client, "q", b"v3", Unique::key(b"held")),
            UniquePut::Duplicate {
                id: held,
                holder: Holder::Ready
            }
        );
        assert_eq!(
            put(&mut client, "other", b"x", Unique::key(b"gone")),
            UniquePut::Duplicate {
                id: gone,
                holder: Holder::Gone
            }
        );
        let peeked = client.peek("q", 10).unwrap();
        assert_eq!(peeked.len(), 1);
        assert_eq!((peeked[0].id(), peeked[0].payload()), (held, &b"v2"[..]));
        server.stop_with(signal);
    }
}

/// The cap on remembered keys applies again at start (protocol.md 18.4).
#[test]
fn the_cap_applies_at_start() {
    let dir = TempDir::new("cap-at-start");
    let env = [("BDATADIR", dir.text()), ("BFSYNC", "always")];
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    for k in [&b"a"[..], b"b", b"c"] {
        let w = Unique::key(k).remember_for(Duration::from_secs(600));
        stored_id(put(&mut client, "q", b"x", w));
        assert!(client.get("q").unwrap().is_some());
    }
    assert_eq!(server.stat("unique_remembered"), 3);
    server.stop_with(libc::SIGTERM);
    let env = [
        ("BDATADIR", dir.text()),
        ("BFSYNC", "always"),
        ("BMAXUNIQUEKEYS", "1"),
    ];
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    assert_eq!(server.stat("unique_remembered"), 1);
    stored_id(put(&mut client, "q", b"y", Unique::key(b"a")));
}

#[test]
fn the_cli_puts_with_a_key_and_says_when_it_is_a_duplicate() {
    let server = TestServer::start();
    let port = server.port.to_string();
    let env = [("BPORT", port.as_str())];
    let first = run_cli(&["PUT", "jobs", "--unique", "k1", "--id"], &env, b"one");
    assert!(first.status.success(), "{first:?}");
    let id = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    assert!(id.parse::<u64>().is_ok(), "{id:?}");

    let dup = run_cli(&["PUT", "jobs", "--unique", "k1", "--id"], &env, b"two");
    assert_eq!(dup.status.code(), Some(EXIT_DUPLICATE), "{dup:?}");
    assert_eq!(String::from_utf8_lossy(&dup.stdout).trim(), id);
    let stderr = String::from_utf8_lossy(&dup.stderr);
    assert!(
        stderr.contains("not stored") && stderr.contains("ready"),
        "{stderr}"
    );

    let replace = run_cli(
        &["PUT", "jobs", "--unique", "k1", "--replace"],
        &env,
        b"three",
    );
    assert!(replace.status.success(), "{replace:?}");
    let get = run_cli(&["GET", "jobs"], &env, b"");
    assert_eq!(get.stdout, b"three");

    let usage = run_cli(&["PUT", "jobs", "--replace"], &env, b"");
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    let long = "k".repeat(256);
    let usage = run_cli(&["PUT", "jobs", "--unique", &long], &env, b"");
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
}
