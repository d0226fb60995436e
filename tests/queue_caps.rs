//! Per-queue caps (protocol.md 7.4) against a real server: BQUEUEMAXMESSAGES and
//! BQUEUEMAXBYTES refuse PUT with a non-fatal FULL for that queue only, leased
//! messages still count, consuming makes room, a publish reaching a full queue is
//! refused whole, MOVE stops at the destination's room, and a restart with lower caps
//! keeps every message the journal held.

mod common;

use std::time::Duration;

use beuss::client::LeaseOptions;
use common::*;

/// The message cap: the third PUT is refused, not fatally; another queue takes
/// messages; a leased message still counts until it is acked.
#[test]
fn message_cap_refuses_put_for_that_queue_only() {
    let server = TestServer::start_with(&[("BQUEUEMAXMESSAGES", "2")]);
    let mut c = server.client();
    c.put("q", b"1").unwrap();
    c.put("q", b"2").unwrap();
    let e = c.put("q", b"3").unwrap_err();
    assert!(e.is_full(), "{e}");
    assert!(e.to_string().contains("BQUEUEMAXMESSAGES"), "{e}");
    c.ping().unwrap(); // not fatal
    c.put("other", b"fine").unwrap();
    let leased = c
        .lease("q", 1, Duration::ZERO, LeaseOptions::default())
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert!(c.put("q", b"3").unwrap_err().is_full(), "in flight counts");
    leased[0].ack(&mut c).unwrap();
    c.put("q", b"3").unwrap();
    assert_eq!(stat_of(&mut c, "rejected_queue_full"), 2);
    assert_eq!(stat_of(&mut c, "rejected_full"), 0);
}

/// The byte cap counts payload bytes as kept; the CLI reports FULL with its exit code.
#[test]
fn byte_cap_refuses_what_would_pass_it() {
    let server = TestServer::start_with(&[("BQUEUEMAXBYTES", "1K")]);
    let mut c = server.client();
    c.put("q", &[b'x'; 1000]).unwrap();
    assert!(c.put("q", &[b'x'; 25]).unwrap_err().is_full());
    c.put("q", &[b'x'; 24]).unwrap();
    let out = run_cli(
        &["PUT", "q"],
        &[("BPORT", &server.port.to_string())],
        b"more",
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("BQUEUEMAXBYTES"));
}

/// PUB is all or nothing; MOVE moves what the destination has room for.
#[test]
fn publish_and_move_respect_the_caps() {
    let server = TestServer::start_with(&[("BQUEUEMAXMESSAGES", "2")]);
    let mut c = server.client();
    c.bind("orders.>", "audit").unwrap();
    c.bind("orders.>", "mail").unwrap();
    c.put("mail", b"a").unwrap();
    c.put("mail", b"b").unwrap();
    assert!(c.publish("orders.new", b"o").unwrap_err().is_full());
    assert_eq!(
        c.queue_stats("audit").unwrap().unwrap().get("messages"),
        Some(0)
    );
    c.get("mail").unwrap();
    c.publish("orders.new", b"o").unwrap();
    assert_eq!(
        c.queue_stats("audit").unwrap().unwrap().get("messages"),
        Some(1)
    );
    // "mail" holds 2 ("b" and the copy); "audit" has room for 1 more.
    assert_eq!(c.move_messages("mail", "audit", 10).unwrap(), 1);
    assert_eq!(
        c.queue_stats("audit").unwrap().unwrap().get("messages"),
        Some(2)
    );
}

/// Restarted with a lower cap, the server keeps every message the journal holds, and
/// refuses only new ones.
#[test]
fn a_lower_cap_after_a_restart_keeps_what_was_stored() {
    let dir = std::env::temp_dir().join(format!("beuss-caps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.to_str().unwrap().to_owned();
    let server = TestServer::start_with(&[("BDATADIR", &data), ("BFSYNC", "always")]);
    let mut c = server.client();
    for i in 0..5u8 {
        c.put("q", &[i]).unwrap();
    }
    drop(c);
    assert!(server.stop_with(libc::SIGTERM).success());
    let server = TestServer::start_with(&[
        ("BDATADIR", &data),
        ("BFSYNC", "always"),
        ("BQUEUEMAXMESSAGES", "2"),
    ]);
    let mut c = server.client();
    assert_eq!(
        c.queue_stats("q").unwrap().unwrap().get("messages"),
        Some(5)
    );
    assert!(c.put("q", b"new").unwrap_err().is_full());
    for i in 0..5u8 {
        assert_eq!(c.get("q").unwrap(), Some(vec![i]));
    }
    c.put("q", b"new").unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
