//! The library client's fan-out calls (protocol.md section 15) against a real
//! server: bindings, publishes and their confirmation, subscriptions and events
//! (interleaved with the replies of other requests on the same connection),
//! request/reply, receives with metadata, and the errors of each. Every wait is
//! bounded; tests synchronise on `STATS` figures, never on sleeps.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use beuss::Client;
use beuss::client::{Error, LeaseOptions, PublishOptions};
use beuss::protocol::{self, ErrorCode, Limits, Response, SettleResult};
use common::*;

on_both_transports! {
/// BIND says whether the binding is new; UNBIND whether there was one; both are
/// counted in STATS, and the first fan-out call sent the HELLO itself.
fn bind_and_unbind_report_what_changed(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    assert!(c.server_info().is_none());
    assert!(c.bind("orders.*", "audit").unwrap());
    let info = c
        .server_info()
        .expect("the first fan-out call exchanged HELLO");
    assert!(info.version >= 3);
    assert!(info.has(protocol::FEATURE_FANOUT));
    assert!(!c.bind("orders.*", "audit").unwrap(), "the same pair again");
    assert!(
        c.bind("orders.>", "audit").unwrap(),
        "another pattern is another binding"
    );
    assert_eq!(stat_of(&mut c, "bindings"), 2);
    assert!(c.unbind("orders.*", "audit").unwrap());
    assert!(!c.unbind("orders.*", "audit").unwrap());
    assert!(!c.unbind("nothing", "nowhere").unwrap());
    assert_eq!(stat_of(&mut c, "bindings"), 1);
}
}

on_both_transports! {
/// Two bound queues get a copy each; overlapping bindings of one queue still make
/// one copy; the copies carry their subject; nothing bound is 0, not an error.
fn publish_copies_once_per_bound_queue(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("orders.*.created", "audit").unwrap();
    c.bind("orders.>", "audit").unwrap();
    c.bind("orders.>", "mail").unwrap();
    let p = c.publish("orders.eu.created", b"order 42").unwrap();
    assert_eq!((p.queues, p.subscribers), (2, 0));
    assert_eq!((p.original_len, p.stored_len), (8, 8));
    assert_eq!((p.acked, p.failed), (0, 0));
    for queue in ["audit", "mail"] {
        let got = c.get_with_meta(queue, 10, Duration::ZERO).unwrap();
        assert_eq!(got.len(), 1, "{queue}");
        assert_eq!(got[0].payload(), b"order 42");
        assert_eq!(got[0].subject(), Some("orders.eu.created"));
        assert_eq!(got[0].reply_to(), None);
        assert_eq!(got[0].queue(), queue);
        assert_eq!(got[0].attempt(), 0);
    }
    let p = c.publish("invoices.paid", b"x").unwrap();
    assert_eq!((p.queues, p.subscribers), (0, 0));
    assert_eq!(stat_of(&mut c, "unroutable"), 1);
}
}

on_both_transports! {
/// Delay and priority apply to the copies: a delayed copy is not ready yet, and a
/// priority-0 copy overtakes a priority-9 one.
fn publish_options_reach_the_copies(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("jobs", "jobs").unwrap();
    let later = PublishOptions::default().delay(Duration::from_secs(3600));
    assert_eq!(c.publish_with("jobs", b"later", later).unwrap().queues, 1);
    let low = PublishOptions::default().priority(9);
    c.publish_with("jobs", b"low", low).unwrap();
    c.publish_with("jobs", b"high", low.priority(0)).unwrap();
    let ready: Vec<Vec<u8>> = c
        .peek_with_meta("jobs", 10)
        .unwrap()
        .into_iter()
        .map(|e| e.into_payload())
        .collect();
    assert_eq!(ready, [b"high".to_vec(), b"low".to_vec()]);
}
}

on_both_transports! {
/// A confirmed publish is answered once a consumer on another connection has
/// acknowledged its copy.
fn confirmed_publish_waits_for_the_ack(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("orders.>", "audit").unwrap();
    let mut worker = server.client();
    let consumer = thread::spawn(move || {
        let got = worker
            .lease_with_meta("audit", 1, TIMEOUT, LeaseOptions::default())
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].attempt(), 1);
        assert_eq!(got[0].ack(&mut worker).unwrap(), SettleResult::Ok);
    });
    let options = PublishOptions::default().confirm(1, TIMEOUT);
    let p = c.publish_with("orders.eu", b"hi", options).unwrap();
    assert_eq!((p.queues, p.acked, p.failed), (1, 1, 0));
    consumer.join().unwrap();
    assert_eq!(stat_of(&mut c, "confirmed"), 1);
}
}

on_both_transports! {
/// Asking for more confirmations than queues are bound is TOO_FEW_COPIES at once,
/// nothing published, and the connection goes on.
fn too_few_copies_is_a_typed_error(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("a.b", "one").unwrap();
    let options = PublishOptions::default().confirm(2, TIMEOUT);
    match c.publish_with("a.b", b"x", options) {
        Err(e @ Error::TooFewCopies { .. }) => {
            assert_eq!(e.code(), Some(ErrorCode::TooFewCopies));
            assert!(e.to_string().contains("too few copies"), "{e}");
        }
        other => panic!("expected TooFewCopies, got {other:?}"),
    }
    c.ping().unwrap();
    assert_eq!(
        c.queue_stats("one").unwrap().unwrap().get("messages"),
        Some(0)
    );
}
}

on_both_transports! {
/// A confirmation that runs out of time answers with the count it reached: one
/// copy taken by a GET parked before the publish, the other never.
fn confirm_timeout_gives_the_partial_count(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("t", "a").unwrap();
    c.bind("t", "b").unwrap();
    let mut taker = server.client();
    let consumer = thread::spawn(move || taker.get_wait("a", TIMEOUT).unwrap());
    server.wait_for_stat("waiters", 1);
    let options = PublishOptions::default().confirm(2, Duration::from_millis(200));
    let p = c.publish_with("t", b"x", options).unwrap();
    assert_eq!((p.queues, p.acked, p.failed), (2, 1, 0));
    assert_eq!(consumer.join().unwrap().as_deref(), Some(&b"x"[..]));
}
}

on_both_transports! {
/// Events carry their sid, subject and payload; two subscriptions of one
/// connection get one event each; after UNSUB no event of it comes.
fn subscribe_receive_unsubscribe(t: Transport) {
    let server = TestServer::start_on(t);
    let mut sub = server.client();
    let all = sub.subscribe("orders.>").unwrap();
    let eu = sub.subscribe("orders.eu.*").unwrap();
    assert_ne!(all, eu);
    let mut publisher = server.client();
    let p = publisher.publish("orders.eu.created", b"hi").unwrap();
    assert_eq!(p.subscribers, 2);
    let mut sids = Vec::new();
    for _ in 0..2 {
        let event = sub.next_event(Some(TIMEOUT)).unwrap().expect("an event");
        assert_eq!(event.subject(), "orders.eu.created");
        assert_eq!(event.payload(), b"hi");
        assert_eq!(event.reply_to(), None);
        assert_eq!(event.dropped(), 0);
        sids.push(event.sid());
    }
    sids.sort();
    assert_eq!(sids, [all, eu]);
    assert!(sub.unsubscribe(eu).unwrap());
    assert!(!sub.unsubscribe(eu).unwrap());
    assert!(!sub.unsubscribe(0).unwrap());
    assert_eq!(
        publisher.publish("orders.eu.x", b"2").unwrap().subscribers,
        1
    );
    let event = sub.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert_eq!((event.sid(), event.payload()), (all, &b"2"[..]));
    assert_eq!(
        sub.next_event(Some(Duration::from_millis(50))).unwrap(),
        None
    );
}
}

on_both_transports! {
/// Events that arrive before the replies of other requests on the same connection
/// are set aside, not taken for replies: PING, PUT, GET and STATS all get their own
/// replies, and the events come out afterwards, in publish order.
fn events_between_replies_are_set_aside(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.subscribe("t.>").unwrap();
    let mut publisher = server.client();
    for i in 0..3 {
        publisher
            .publish("t.x", format!("e{i}").as_bytes())
            .unwrap();
    }
    server.wait_for_stat("events", 3);
    // The three events are in c's socket ahead of every reply below.
    c.ping().unwrap();
    c.put("q", b"message").unwrap();
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"message"[..]));
    assert_eq!(stat_of(&mut c, "subscriptions"), 1);
    assert_eq!(c.buffered_events(), 3);
    let payloads: Vec<Vec<u8>> = c
        .events(Some(Duration::from_millis(50)))
        .map(|e| e.unwrap().into_payload())
        .collect();
    assert_eq!(payloads, [b"e0".to_vec(), b"e1".to_vec(), b"e2".to_vec()]);
}
}

on_both_transports! {
/// Events pushed while a GET of the same connection is parked come before its
/// reply; the GET still gets its message and the events are kept.
fn events_while_a_get_is_parked(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.subscribe("news").unwrap();
    let getter = thread::spawn(move || {
        let got = c.get_wait("q", TIMEOUT).unwrap();
        (c, got)
    });
    server.wait_for_stat("waiters", 1);
    let mut publisher = server.client();
    publisher.publish("news", b"one").unwrap();
    publisher.publish("news", b"two").unwrap();
    server.wait_for_stat("events", 2);
    publisher.put("q", b"job").unwrap();
    let (mut c, got) = getter.join().unwrap();
    assert_eq!(got.as_deref(), Some(&b"job"[..]));
    let first = c.next_event(Some(TIMEOUT)).unwrap().unwrap();
    let second = c.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert_eq!(
        (first.payload(), second.payload()),
        (&b"one"[..], &b"two"[..])
    );
}
}

on_both_transports! {
/// An event that arrives behind a pipelined reply not yet read is returned by
/// next_event, and the reply stays for recv.
fn next_event_leaves_pending_replies_for_recv(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.hello().unwrap();
    c.send(&protocol::Request::Subscribe { pattern: "t" })
        .unwrap();
    c.flush().unwrap();
    // SUBSCRIBED is written before any event of the subscription can be.
    server.wait_for_stat("subscriptions", 1);
    server.client().publish("t", b"after the reply").unwrap();
    let event = c.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert_eq!(event.payload(), b"after the reply");
    assert_eq!(c.recv().unwrap(), Response::Subscribed { sid: 1 });
    c.ping().unwrap();
}
}

on_both_transports! {
/// With a small event buffer, events that arrive while the client waits for
/// replies are dropped past the first, counted, and reported on the next event of
/// their subscription.
fn a_full_event_buffer_drops_and_counts(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.set_event_buffer(0);
    let sid = c.subscribe("t").unwrap();
    let mut publisher = server.client();
    for i in 0..3 {
        publisher.publish("t", &[i]).unwrap();
    }
    server.wait_for_stat("events", 3);
    c.ping().unwrap();
    assert_eq!(c.buffered_events(), 1);
    assert_eq!(c.events_dropped(), 2);
    let first = c.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert_eq!((first.payload(), first.dropped()), (&[0][..], 0));
    publisher.publish("t", &[3]).unwrap();
    let next = c.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert_eq!(
        (next.sid(), next.payload(), next.dropped()),
        (sid, &[3][..], 2)
    );
}
}

on_both_transports! {
/// A subscriber waiting for events hears the server's SHUTTING_DOWN as an error.
fn shutdown_reaches_a_waiting_subscriber(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.subscribe("t").unwrap();
    let waiter = thread::spawn(move || c.next_event(None));
    server.wait_for_stat("subscriptions", 1);
    server.stop_with(libc::SIGTERM);
    match waiter.join().unwrap() {
        Err(e) => assert_eq!(e.code(), Some(ErrorCode::ShuttingDown), "{e:?}"),
        Ok(event) => panic!("expected an error, got {event:?}"),
    }
}
}

on_both_transports! {
/// A connection that publishes to its own subscription gets the PUBLISHED reply
/// and the event, whichever the server wrote first.
fn publishing_to_ones_own_subscription(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    let sid = c.subscribe("me").unwrap();
    for i in 0..50u8 {
        let p = c.publish("me", &[i]).unwrap();
        assert_eq!(p.subscribers, 1);
        c.ping().unwrap();
    }
    for i in 0..50u8 {
        let event = c.next_event(Some(TIMEOUT)).unwrap().unwrap();
        assert_eq!((event.sid(), event.payload()), (sid, &[i][..]));
    }
    assert_eq!(c.next_event(Some(Duration::ZERO)).unwrap(), None);
}
}

on_both_transports! {
/// Request and reply through a subscription: the responder sees the reply
/// address, its answer reaches the requester, and a second answer is late.
fn request_answered_by_a_subscriber(t: Transport) {
    let server = TestServer::start_on(t);
    let mut responder = server.client();
    responder.subscribe("svc.*").unwrap();
    let answering = thread::spawn(move || {
        let event = responder.next_event(Some(TIMEOUT)).unwrap().unwrap();
        assert_eq!(event.subject(), "svc.time");
        assert_eq!(event.payload(), b"now?");
        assert!(event.reply_to().is_some());
        assert!(event.reply(&mut responder, b"12:00").unwrap());
        assert!(
            !event.reply(&mut responder, b"again").unwrap(),
            "answered already"
        );
    });
    let mut c = server.client();
    let reply = c.request("svc.time", b"now?", TIMEOUT).unwrap();
    assert_eq!(reply.as_deref(), Some(&b"12:00"[..]));
    answering.join().unwrap();
    assert_eq!(stat_of(&mut c, "replies"), 1);
    assert_eq!(stat_of(&mut c, "late_replies"), 1);
}
}

on_both_transports! {
/// Request and reply through a bound queue: a worker leases the request with its
/// metadata, answers and acknowledges it.
fn request_answered_from_a_bound_queue(t: Transport) {
    let server = TestServer::start_on(t);
    let mut worker = server.client();
    worker.bind("svc.upper", "upper").unwrap();
    let answering = thread::spawn(move || {
        let got = worker
            .lease_with_meta("upper", 1, TIMEOUT, LeaseOptions::default())
            .unwrap();
        let request = &got[0];
        assert_eq!(request.subject(), Some("svc.upper"));
        let answer = request.payload().to_ascii_uppercase();
        assert!(request.reply(&mut worker, &answer).unwrap());
        assert_eq!(request.ack(&mut worker).unwrap(), SettleResult::Ok);
    });
    let mut c = server.client();
    let reply = c.request("svc.upper", b"shout", TIMEOUT).unwrap();
    assert_eq!(reply.as_deref(), Some(&b"SHOUT"[..]));
    answering.join().unwrap();
}
}

on_both_transports! {
/// Nobody bound or subscribed: NO_RESPONDERS at once, typed, not fatal.
fn request_without_responders(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    match c.request("svc.none", b"?", TIMEOUT) {
        Err(e @ Error::NoResponders { .. }) => {
            assert_eq!(e.code(), Some(ErrorCode::NoResponders));
        }
        other => panic!("expected NoResponders, got {other:?}"),
    }
    c.ping().unwrap();
    assert_eq!(stat_of(&mut c, "no_responders"), 1);
}
}

on_both_transports! {
/// A responder that never answers: the request times out with None, and the
/// answer sent afterwards is late.
fn request_timeout_then_late_reply(t: Transport) {
    let server = TestServer::start_on(t);
    let mut responder = server.client();
    responder.subscribe("slow").unwrap();
    let mut c = server.client();
    let reply = c.request("slow", b"?", Duration::from_millis(100)).unwrap();
    assert_eq!(reply, None);
    let event = responder.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert!(!event.reply(&mut responder, b"too late").unwrap());
    // The reply address is one-shot and gone; the connection works on.
    c.ping().unwrap();
}
}

on_both_transports! {
/// A request's copy in a queue carries its reply address in the metadata; a
/// message that was PUT has none.
fn receives_with_meta_show_the_reply_address(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("svc.x", "box").unwrap();
    c.put("box", b"plain").unwrap();
    assert_eq!(
        c.request("svc.x", b"req", Duration::from_millis(1))
            .unwrap(),
        None
    );
    let peeked = c.peek_with_meta("box", 10).unwrap();
    assert_eq!(peeked.len(), 2);
    assert_eq!(peeked[0].subject(), None);
    assert_eq!(peeked[0].reply_to(), None);
    assert_eq!(peeked[1].subject(), Some("svc.x"));
    assert!(peeked[1].reply_to().is_some());
    let got = c.get_with_meta("box", 10, Duration::ZERO).unwrap();
    assert_eq!(got, peeked, "GET returns what PEEK showed");
    assert!(
        c.get_with_meta("box", 1, Duration::ZERO)
            .unwrap()
            .is_empty()
    );
}
}

on_both_transports! {
/// Subjects and patterns the server would refuse are refused before anything is
/// sent: the connection stays usable.
fn bad_subjects_are_refused_locally(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    for result in [
        c.publish("orders.*", b"x").map(|_| ()),
        c.bind("a.>.b", "q").map(|_| ()),
        c.subscribe("a..b").map(|_| ()),
        c.request("a b", b"x", TIMEOUT).map(|_| ()),
        c.request("ok", b"x", Duration::ZERO).map(|_| ()),
    ] {
        assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    }
    c.ping().unwrap();
    assert_eq!(stat_of(&mut c, "protocol_errors"), 0);
}
}

on_both_transports! {
/// One SUB more than a connection may hold is the non-fatal LIMIT.
fn subscription_limit(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    for i in 0..protocol::MAX_SUBSCRIPTIONS {
        assert_eq!(c.subscribe("t").unwrap(), i + 1);
    }
    let e = c.subscribe("t").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Limit), "{e:?}");
    c.ping().unwrap();
}
}

/// A server that answers HELLO without the fan-out feature bit (a version-2 or
/// version-1 server) gets no fan-out request: the call fails with Unsupported.
#[test]
fn older_servers_are_refused_clearly() {
    for version in [1u16, 2] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut hello = [0u8; 8];
            stream.read_exact(&mut hello).unwrap();
            assert_eq!(hello[4], 0x01, "HELLO first");
            let mut reply = Vec::new();
            if version == 1 {
                protocol::encode_hello(&mut reply, 1, 1024, "old");
            } else {
                let limits = Limits {
                    features: protocol::FEATURE_LEASES | protocol::FEATURE_PUT_OPTIONS,
                    default_lease_ms: 30_000,
                    max_lease_ms: 43_200_000,
                    max_delay_ms: 2_592_000_000,
                    max_deliveries: 20,
                };
                protocol::encode_hello_v2(&mut reply, 2, 1024, "old", &limits);
            }
            stream.write_all(&reply).unwrap();
            // Nothing else may come: the client closes without another request.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            rest
        });
        let mut c = Client::connect(addr).unwrap();
        c.set_timeout(Some(TIMEOUT)).unwrap();
        match c.subscribe("t") {
            Err(e @ Error::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(text.contains("fan-out") && text.contains("old"), "{text}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert!(matches!(
            c.publish("t", b"x"),
            Err(Error::Unsupported { .. })
        ));
        drop(c);
        assert_eq!(fake.join().unwrap(), Vec::<u8>::new(), "version {version}");
    }
}

on_both_transports! {
/// No event of a subscription comes after its UNSUBSCRIBED, even while another
/// connection publishes to it as fast as it can.
fn no_event_after_unsubscribed(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    let busy = c.subscribe("t").unwrap();
    let end = c.subscribe("end").unwrap();
    let mut publisher = server.client();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let flood = thread::spawn(move || {
        let mut sent = 0u32;
        while stop_rx.try_recv().is_err() {
            publisher.publish("t", &sent.to_be_bytes()).unwrap();
            sent += 1;
        }
        publisher.publish("end", b"").unwrap();
        sent
    });
    // Let a few arrive, then unsubscribe in the middle of the flood.
    for _ in 0..10 {
        assert_eq!(c.next_event(Some(TIMEOUT)).unwrap().unwrap().sid(), busy);
    }
    assert!(c.unsubscribe(busy).unwrap());
    stop_tx.send(()).unwrap();
    let sent = flood.join().unwrap();
    loop {
        let event = c
            .next_event(Some(TIMEOUT))
            .unwrap()
            .expect("the end marker");
        assert_ne!(
            event.sid(),
            busy,
            "an event of sid {busy} after UNSUBSCRIBED"
        );
        if event.sid() == end {
            break;
        }
    }
    assert!(sent >= 10);
}
}

on_both_transports! {
/// A subscriber that does not read has events dropped by the server; every event
/// is either delivered or counted in the `dropped` of a later one.
fn slow_subscriber_drops_are_reported(t: Transport) {
    let server = TestServer::start_with_on(t, &[("BSUBBUFFER", "64K")]);
    let mut c = server.client();
    c.subscribe("t").unwrap();
    let mut publisher = server.client();
    let payload = vec![b'x'; 16 * 1024];
    let total = 400u32;
    for _ in 0..total {
        publisher.publish("t", &payload).unwrap();
    }
    assert!(stat_of(&mut publisher, "slow_consumer_drops") > 0);
    // A PING's reply comes after every event queued before it: once it is read,
    // the server holds nothing for c, so the next event cannot be dropped.
    c.set_event_buffer(usize::MAX);
    c.ping().unwrap();
    publisher.publish("t", b"last").unwrap();
    // The last one carries the count of every drop not yet reported.
    let mut delivered = 0u32;
    let mut dropped = 0u32;
    loop {
        let event = c
            .next_event(Some(TIMEOUT))
            .unwrap()
            .expect("the last event");
        dropped += event.dropped();
        if event.payload() == b"last" {
            break;
        }
        delivered += 1;
    }
    assert_eq!(c.events_dropped(), 0);
    assert_eq!(
        delivered + dropped,
        total,
        "delivered {delivered}, dropped {dropped}"
    );
    assert_eq!(
        u64::from(dropped),
        stat_of(&mut publisher, "slow_consumer_drops")
    );
}
}

on_both_transports! {
/// Receives parked before the publish are handed the copy with its metadata; a
/// copy given back keeps it, with the attempt raised.
fn parked_receives_and_returned_copies_keep_the_metadata(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("svc.>", "meta").unwrap();
    let mut getter = server.client();
    let parked = thread::spawn(move || getter.get_with_meta("meta", 1, TIMEOUT).unwrap());
    server.wait_for_stat("waiters", 1);
    c.publish("svc.a", b"one").unwrap();
    let got = parked.join().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].subject(), got[0].payload()),
        (Some("svc.a"), &b"one"[..])
    );

    let mut worker = server.client();
    let parked = thread::spawn(move || {
        let got = worker
            .lease_with_meta("meta", 1, TIMEOUT, LeaseOptions::default())
            .unwrap();
        (worker, got)
    });
    server.wait_for_stat("waiters", 1);
    assert_eq!(
        c.request("svc.b", b"two", Duration::from_millis(1))
            .unwrap(),
        None
    );
    let (mut worker, got) = parked.join().unwrap();
    let first = &got[0];
    assert_eq!((first.subject(), first.attempt()), (Some("svc.b"), 1));
    let address = first.reply_to().expect("a request's copy has its address");
    assert_eq!(
        first.nack(&mut worker, Duration::ZERO).unwrap(),
        SettleResult::Ok
    );
    let again = worker
        .lease_with_meta("meta", 1, Duration::ZERO, LeaseOptions::default())
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id(), first.id());
    assert_eq!(again[0].attempt(), 2);
    assert_eq!(again[0].subject(), Some("svc.b"));
    assert_eq!(again[0].reply_to(), Some(address));
    assert_eq!(again[0].ack(&mut worker).unwrap(), SettleResult::Ok);
}
}

on_both_transports! {
/// A connection that used version-1 requests before its first fan-out call still
/// gets fan-out: the HELLO the client sends then is answered like a first one.
fn fanout_after_other_requests(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.put("q", b"first").unwrap();
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"first"[..]));
    assert!(c.bind("late", "q").unwrap());
    assert_eq!(c.publish("late", b"x").unwrap().queues, 1);
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"x"[..]));
}
}

on_both_transports! {
/// A copy that is dead-lettered counts as failed: a confirmation that can no
/// longer be reached is answered at once with the counts. The dead letter keeps
/// its subject.
fn dead_lettered_copy_fails_the_confirmation(t: Transport) {
    let server = TestServer::start_on(t);
    let mut c = server.client();
    c.bind("jobs.*", "jobs").unwrap();
    let mut worker = server.client();
    let failing = thread::spawn(move || {
        let options = LeaseOptions {
            max_deliveries: 1,
            ..LeaseOptions::default()
        };
        let got = worker.lease_with_meta("jobs", 1, TIMEOUT, options).unwrap();
        assert_eq!(
            got[0].nack(&mut worker, Duration::ZERO).unwrap(),
            SettleResult::Ok
        );
    });
    let options = PublishOptions::default().confirm(1, TIMEOUT);
    let p = c.publish_with("jobs.a", b"doomed", options).unwrap();
    failing.join().unwrap();
    assert_eq!((p.queues, p.acked, p.failed), (1, 0, 1));
    let dead = c.peek_with_meta("jobs.dead", 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].subject(), dead[0].payload()),
        (Some("jobs.a"), &b"doomed"[..])
    );
}
}

on_both_transports! {
/// A payload over the server's message size is cut, for the copies and the
/// events alike, and PUBLISHED gives both lengths.
fn long_payloads_are_cut_for_copies_and_events(t: Transport) {
    let server = TestServer::start_with_on(t, &[("BMAXMESSAGESIZE", "10")]);
    let mut c = server.client();
    c.bind("t", "q").unwrap();
    c.subscribe("t").unwrap();
    let p = c.publish("t", b"0123456789abcdef").unwrap();
    assert_eq!((p.original_len, p.stored_len), (16, 10));
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"0123456789"[..]));
    let event = c.next_event(Some(TIMEOUT)).unwrap().unwrap();
    assert_eq!(event.payload(), b"0123456789");
}
}
