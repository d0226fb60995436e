//! Fan-out end to end (protocol.md section 15, issue 9): the real server on a free
//! loopback port, spoken to in raw frames built by the crate's codec
//! (`Request::encode`, `decode_response`) or, for what the codec refuses to build, by
//! hand. Subjects and patterns, bindings, `PUB`, live subscriptions and their slow
//! consumers, request/reply, confirmations, `WITH_META`, cut payloads, durability
//! and the `STATS` figures of 15.11.
//!
//! Every wait synchronises on a reply or a `STATS` figure. The tests whose outcome
//! involves a timer (a `REQ` or confirmation timeout, idle expiry, lease expiry) say so
//! in their doc comment; each was run 100 times in a loop.

mod common;

use std::collections::VecDeque;
use std::net::TcpStream;

use beuss::protocol::{
    LeaseRef, MAX_LEASE_MS, Pairs, Published, Request, Response, SettleResult, decode_response,
};
use common::*;

const MALFORMED: u16 = 1;
const BAD_QUEUE_NAME: u16 = 3;
const BAD_ARGUMENT: u16 = 6;
const FULL: u16 = 7;
const BAD_SUBJECT: u16 = 12;
const NO_RESPONDERS: u16 = 13;
const TOO_FEW_COPIES: u16 = 14;
const LIMIT: u16 = 15;

/// A long wait: longer than any test, so that only the event under test ends it.
const LONG_MS: u32 = 600_000;

// ---------------------------------------------------------------------------
// A raw connection that sets EVENTs aside
// ---------------------------------------------------------------------------

/// An `EVENT` frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    sid: u32,
    subject: Option<String>,
    reply_to: Option<u64>,
    dropped: Option<u32>,
    /// The tags of the metadata entries, in the order they came.
    tags: Vec<u8>,
    payload: Vec<u8>,
}

/// One message of an `ENVELOPES` reply, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Env {
    id: u64,
    attempt: u32,
    subject: Option<String>,
    reply_to: Option<u64>,
    tags: Vec<u8>,
    payload: Vec<u8>,
}

impl Env {
    fn lease(&self) -> LeaseRef {
        LeaseRef {
            id: self.id,
            attempt: self.attempt,
        }
    }
}

/// Decodes one whole response frame with the crate's codec.
fn decode(frame: &[u8]) -> Response<'_> {
    let (response, used) = decode_response(frame, u32::MAX)
        .unwrap_or_else(|e| panic!("undecodable frame {frame:02x?}: {e}"))
        .expect("a whole frame");
    assert_eq!(used, frame.len(), "frame length");
    response
}

/// The event in `frame`, or `None` if it is not an `EVENT`.
fn event_of(frame: &[u8]) -> Option<Event> {
    if frame.get(4) != Some(&0x3F) {
        return None;
    }
    match decode(frame) {
        Response::Event { sid, meta, payload } => Some(Event {
            sid,
            subject: meta.subject().map(str::to_owned),
            reply_to: meta.reply_to(),
            dropped: meta.dropped(),
            tags: meta.iter().map(|(tag, _)| tag).collect(),
            payload: payload.to_vec(),
        }),
        other => panic!("status 0x3F decoded as {other:?}"),
    }
}

/// A raw connection: replies are read in order, with the `EVENT`s that come between
/// them set aside (protocol.md 15.6: the n-th frame that is not an `EVENT` answers the
/// n-th request).
struct Conn {
    s: TcpStream,
    events: VecDeque<Event>,
}

impl Conn {
    fn open(server: &TestServer) -> Conn {
        Conn {
            s: server.raw(),
            events: VecDeque::new(),
        }
    }

    fn send(&mut self, request: &Request<'_>) {
        let mut frame = Vec::new();
        request.encode(&mut frame).expect("the codec encodes it");
        send(&mut self.s, &frame);
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        send(&mut self.s, bytes);
    }

    /// The next frame that is not an `EVENT`.
    fn reply(&mut self) -> Vec<u8> {
        loop {
            let frame = read_frame(&mut self.s);
            match event_of(&frame) {
                Some(event) => self.events.push_back(event),
                None => return frame,
            }
        }
    }

    fn call(&mut self, request: &Request<'_>) -> Vec<u8> {
        self.send(request);
        self.reply()
    }

    /// The next event: one set aside, or the next frame, which must be one.
    fn event(&mut self) -> Event {
        if let Some(event) = self.events.pop_front() {
            return event;
        }
        let frame = read_frame(&mut self.s);
        event_of(&frame).unwrap_or_else(|| panic!("expected an EVENT, got {frame:02x?}"))
    }

    /// Asserts that no event came: none set aside, and a `PING` answered with nothing
    /// in front of its `PONG` (an event queued before the `PING` was read would be).
    fn assert_no_event(&mut self) {
        assert_eq!(self.events, VecDeque::new(), "no event expected");
        send(&mut self.s, &ping_frame());
        let frame = read_frame(&mut self.s);
        assert_eq!(frame, PONG, "expected PONG and no event before it");
    }

    fn ping(&mut self) {
        assert_eq!(self.call(&Request::Ping), PONG);
    }

    fn bind(&mut self, pattern: &str, queue: &str) -> bool {
        match decode(&self.call(&Request::Bind { pattern, queue })) {
            Response::Bound { created } => created,
            other => panic!("BIND {pattern} {queue}: {other:?}"),
        }
    }

    fn unbind(&mut self, pattern: &str, queue: &str) -> bool {
        match decode(&self.call(&Request::Unbind { pattern, queue })) {
            Response::Unbound { removed } => removed,
            other => panic!("UNBIND {pattern} {queue}: {other:?}"),
        }
    }

    fn publish(&mut self, subject: &str, payload: &[u8]) -> Published {
        published(&self.call(&publish(subject, payload)))
    }

    fn sub(&mut self, pattern: &str) -> u32 {
        match decode(&self.call(&Request::Subscribe { pattern })) {
            Response::Subscribed { sid } => sid,
            other => panic!("SUB {pattern}: {other:?}"),
        }
    }

    fn unsub(&mut self, sid: u32) -> bool {
        match decode(&self.call(&Request::Unsubscribe { sid })) {
            Response::Unsubscribed { removed } => removed,
            other => panic!("UNSUB {sid}: {other:?}"),
        }
    }

    fn send_req(&mut self, subject: &str, timeout_ms: u32, payload: &[u8]) {
        self.send(&Request::Req {
            subject,
            timeout_ms,
            payload,
        });
    }

    fn reply_to(&mut self, reply_to: u64, payload: &[u8]) -> bool {
        match decode(&self.call(&Request::Reply { reply_to, payload })) {
            Response::Replied { delivered } => delivered,
            other => panic!("REPLY {reply_to}: {other:?}"),
        }
    }

    fn put(&mut self, queue: &str, payload: &[u8]) {
        assert_eq!(self.call(&Request::Put { queue, payload }), STORED);
    }

    /// A plain `GET` (wait 0): the payloads.
    fn get(&mut self, queue: &str, max: u16) -> Vec<Vec<u8>> {
        payloads(&self.call(&Request::Get {
            queue,
            wait_ms: 0,
            max,
        }))
    }

    fn get_meta(&mut self, queue: &str, max: u16) -> Vec<Env> {
        envelopes(&self.call(&Request::GetWithMeta {
            queue,
            wait_ms: 0,
            max,
        }))
    }

    fn peek_meta(&mut self, queue: &str, max: u16) -> Vec<Env> {
        envelopes(&self.call(&Request::PeekWithMeta { queue, max }))
    }

    fn lease_meta(&mut self, queue: &str, max: u16, lease_ms: u32) -> Vec<Env> {
        envelopes(&self.call(&lease_meta(queue, 0, max, lease_ms)))
    }

    /// A plain `LEASE` (wait 0): `(lease, payload)` of each message.
    fn lease(&mut self, queue: &str, max: u16, lease_ms: u32) -> Vec<(LeaseRef, Vec<u8>)> {
        let frame = self.call(&Request::Lease {
            queue,
            wait_ms: 0,
            max,
            lease_ms,
            max_deliveries: 0,
            detached: false,
        });
        match decode(&frame) {
            Response::Leased(d) => d.iter().map(|d| (d.lease, d.payload.to_vec())).collect(),
            Response::Empty => Vec::new(),
            other => panic!("LEASE {queue}: {other:?}"),
        }
    }

    fn ack(&mut self, queue: &str, lease: LeaseRef) -> Option<SettleResult> {
        let pairs = [lease];
        settled_one(&self.call(&Request::Ack {
            queue,
            pairs: Pairs::List(&pairs),
        }))
    }

    fn purge_all(&mut self, queues: &[&str]) {
        for queue in queues {
            match decode(&self.call(&Request::Purge { queue })) {
                Response::Purged { .. } => {}
                other => panic!("PURGE {queue}: {other:?}"),
            }
        }
    }

    fn nack(&mut self, queue: &str, dead: bool, lease: LeaseRef) -> Option<SettleResult> {
        let pairs = [lease];
        settled_one(&self.call(&Request::Nack {
            queue,
            delay_ms: 0,
            dead,
            no_charge: false,
            pairs: Pairs::List(&pairs),
        }))
    }
}

/// A `PUB` with no delay, priority 5 and no confirmation.
fn publish<'a>(subject: &'a str, payload: &'a [u8]) -> Request<'a> {
    Request::Publish {
        subject,
        delay_ms: 0,
        priority: 5,
        confirm: 0,
        timeout_ms: 0,
        payload,
    }
}

/// A `PUB` answered once `confirm` copies are confirmed, or after `timeout_ms`.
fn confirmed<'a>(
    subject: &'a str,
    payload: &'a [u8],
    confirm: u32,
    timeout_ms: u32,
) -> Request<'a> {
    Request::Publish {
        subject,
        delay_ms: 0,
        priority: 5,
        confirm,
        timeout_ms,
        payload,
    }
}

fn lease_meta(queue: &str, wait_ms: u32, max: u16, lease_ms: u32) -> Request<'_> {
    Request::LeaseWithMeta {
        queue,
        wait_ms,
        max,
        lease_ms,
        max_deliveries: 0,
        detached: false,
    }
}

fn published(frame: &[u8]) -> Published {
    match decode(frame) {
        Response::Published(p) => p,
        other => panic!("expected PUBLISHED, got {other:?}"),
    }
}

fn payloads(frame: &[u8]) -> Vec<Vec<u8>> {
    match decode(frame) {
        Response::Messages(m) => m.iter().map(<[u8]>::to_vec).collect(),
        Response::Empty => Vec::new(),
        other => panic!("expected MESSAGES or EMPTY, got {other:?}"),
    }
}

fn envelopes(frame: &[u8]) -> Vec<Env> {
    match decode(frame) {
        Response::Envelopes(e) => e
            .iter()
            .map(|e| Env {
                id: e.id,
                attempt: e.attempt,
                subject: e.meta.subject().map(str::to_owned),
                reply_to: e.meta.reply_to(),
                tags: e.meta.iter().map(|(tag, _)| tag).collect(),
                payload: e.payload.to_vec(),
            })
            .collect(),
        Response::Empty => Vec::new(),
        other => panic!("expected ENVELOPES or EMPTY, got {other:?}"),
    }
}

fn settled_one(frame: &[u8]) -> Option<SettleResult> {
    match decode(frame) {
        Response::Settled(s) => {
            assert_eq!(s.len(), 1);
            s.iter().next().flatten()
        }
        other => panic!("expected SETTLED, got {other:?}"),
    }
}

/// Asserts `frame` is a non-fatal `ERROR` with `code`; returns its text.
fn soft_error(frame: &[u8], code: u16) -> String {
    let (got, fatal, text) = parse_error(frame);
    assert_eq!(got, code, "error code (text {text:?})");
    assert_eq!(fatal, 0, "error {code} must not be fatal");
    text
}

fn pub_result(p: &Published) -> (u32, u32, u32, u32, u32, u32) {
    (
        p.queues,
        p.subscribers,
        p.original_len,
        p.stored_len,
        p.acked,
        p.failed,
    )
}

// ---------------------------------------------------------------------------
// STATS
// ---------------------------------------------------------------------------

/// A queue figure, `None` if the queue does not exist.
fn qstat(server: &TestServer, queue: &str, name: &str) -> Option<u64> {
    let report = server.client().stats().expect("STATS");
    report.queue(queue).map(|q| {
        q.get(name)
            .unwrap_or_else(|| panic!("no queue figure {name:?}"))
    })
}

fn wait_qstat(server: &TestServer, queue: &str, name: &str, value: u64) {
    eventually(&format!("STATS {queue} {name} == {value}"), || {
        qstat(server, queue, name) == Some(value)
    });
}

/// Several server figures from one `STATS`.
fn stats(server: &TestServer, names: &[&str]) -> Vec<u64> {
    let report = server.client().stats().expect("STATS");
    names
        .iter()
        .map(|n| {
            report
                .get(n)
                .unwrap_or_else(|| panic!("no server figure {n:?}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Frames the codec refuses to build
// ---------------------------------------------------------------------------

/// `name` fields: a length byte, then the bytes.
fn names(fields: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in fields {
        body.push(f.len() as u8);
        body.extend_from_slice(f);
    }
    body
}

fn pub_raw(subject: &[u8], priority: u8, confirm: u32, timeout_ms: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = names(&[subject]);
    body.extend_from_slice(&0u32.to_be_bytes());
    body.push(priority);
    body.extend_from_slice(&confirm.to_be_bytes());
    body.extend_from_slice(&timeout_ms.to_be_bytes());
    body.extend_from_slice(payload);
    request_frame(0x32, &body)
}

fn req_raw(subject: &[u8], timeout_ms: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = names(&[subject]);
    body.extend_from_slice(&timeout_ms.to_be_bytes());
    body.extend_from_slice(payload);
    request_frame(0x35, &body)
}

// ---------------------------------------------------------------------------
// Subjects and patterns (15.1, 15.2)
// ---------------------------------------------------------------------------

/// (binding pattern, published subject, delivered?): the tables of protocol.md 15.1
/// and the NATS rules around them.
const MATCHES: &[(&str, &str, bool)] = &[
    ("orders.eu.created", "orders.eu.created", true),
    ("orders.eu.created", "orders.eu", false),
    ("orders.eu.created", "orders.eu.created.x", false),
    ("orders.eu.created", "Orders.eu.created", false),
    ("orders.*.created", "orders.eu.created", true),
    ("orders.*.created", "orders.us.created", true),
    ("orders.*.created", "orders.created", false),
    ("orders.*.created", "orders.eu.x.created", false),
    ("orders.>", "orders.eu", true),
    ("orders.>", "orders.eu.created", true),
    ("orders.>", "orders", false),
    ("orders.>", "ordersx.eu", false),
    ("orders.*", "orders.eu", true),
    ("orders.*", "orders", false),
    ("orders.*", "orders.eu.created", false),
    ("*", "a", true),
    ("*", "orders", true),
    ("*", "a.b", false),
    ("*.*.>", "a.b.c", true),
    ("*.*.>", "a.b.c.d", true),
    ("*.*.>", "a.b", false),
    (">", "a", true),
    (">", "a.b.c", true),
    // `a.>` needs at least one token after `a`; a literal matches only itself.
    ("a.>", "a", false),
    ("a.>", "a.b", true),
    ("a", "a", true),
    ("a", "a.b", false),
    ("a", "ab", false),
    // `*` is a whole token, never part of one.
    ("a.*", "a.bc", true),
    ("a.*", "ab.c", false),
    ("*.b", "ab.b", true),
    ("*.b", "a.b.b", false),
    ("a.*.c", "a.b.b.c", false),
    // Byte for byte: no case folding, no normalisation.
    ("é.*", "é.ü", true),
    ("é.*", "e.ü", false),
    ("e\u{301}.x", "é.x", false),
];

/// Every row of the table, for bindings (one copy or none) and for subscriptions
/// (one event or none) at once.
#[test]
fn pattern_semantics_table() {
    let server = TestServer::start();
    let mut admin = Conn::open(&server);
    let mut watcher = Conn::open(&server);
    let mut producer = Conn::open(&server);
    for (i, &(pattern, subject, delivered)) in MATCHES.iter().enumerate() {
        let queue = format!("t{i}");
        let row = format!("row {i}: {pattern:?} vs {subject:?}");
        assert!(admin.bind(pattern, &queue), "{row}: new binding");
        let sid = watcher.sub(pattern);
        let payload = format!("m{i}");
        let p = producer.publish(subject, payload.as_bytes());
        let n = u32::from(delivered);
        assert_eq!((p.queues, p.subscribers), (n, n), "{row}: PUBLISHED");
        let got = admin.get(&queue, 10);
        if delivered {
            assert_eq!(got, [payload.as_bytes()], "{row}: the copy");
            let e = watcher.event();
            assert_eq!(e.sid, sid, "{row}");
            assert_eq!(e.subject.as_deref(), Some(subject), "{row}");
            assert_eq!(e.payload, payload.as_bytes(), "{row}");
        } else {
            assert!(got.is_empty(), "{row}: no copy");
        }
        watcher.assert_no_event();
        assert!(admin.unbind(pattern, &queue), "{row}: unbound");
        assert!(watcher.unsub(sid), "{row}: unsubscribed");
    }
    assert_eq!(stats(&server, &["bindings", "subscriptions"]), [0, 0]);
}

/// Several bindings of one queue matching a subject give it exactly one copy; two
/// queues get two; binding a pair again changes nothing.
#[test]
fn one_copy_per_queue_however_many_bindings_match() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for pattern in [
        "orders.eu.created",
        "orders.*.created",
        "orders.>",
        ">",
        "*.eu.*",
    ] {
        assert!(c.bind(pattern, "audit"));
    }
    assert!(
        !c.bind("orders.>", "audit"),
        "the same pair again is not new"
    );
    assert_eq!(qstat(&server, "audit", "bindings"), Some(5));
    let p = c.publish("orders.eu.created", b"one");
    assert_eq!((p.queues, p.subscribers), (1, 0));
    assert_eq!(c.get("audit", 10), [b"one"]);

    assert!(c.bind("orders.*.created", "mail"));
    let p = c.publish("orders.eu.created", b"two");
    assert_eq!(p.queues, 2, "two queues, two copies");
    assert_eq!(c.get("audit", 10), [b"two"]);
    assert_eq!(c.get("mail", 10), [b"two"]);
    // Only audit's `orders.>` and `>` match this one.
    let p = c.publish("orders.us", b"three");
    assert_eq!(p.queues, 1);
    assert_eq!(c.get("audit", 10), [b"three"]);
    assert!(c.get("mail", 10).is_empty());
    // Removing some of audit's bindings leaves one copy while any still matches.
    assert!(c.unbind(">", "audit"));
    assert!(c.unbind("orders.>", "audit"));
    assert!(!c.unbind("orders.>", "audit"), "gone already");
    assert!(!c.unbind("orders.>", "nosuchqueue"));
    assert_eq!(
        qstat(&server, "nosuchqueue", "bindings"),
        None,
        "not created"
    );
    let p = c.publish("orders.eu.created", b"four");
    assert_eq!(p.queues, 2);
    assert_eq!(qstat(&server, "audit", "messages"), Some(1));
    assert_eq!(qstat(&server, "audit", "bindings"), Some(3));
    assert_eq!(
        stats(&server, &["bindings", "routed_copies", "published"]),
        [4, 6, 4]
    );
}

/// `delay_ms` and `priority` apply to the queue copies; events go out at once.
#[test]
fn publish_options_apply_to_the_copies() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.bind("opt", "oq");
    let mut watcher = Conn::open(&server);
    watcher.sub("opt");
    c.put("oq", b"put at 5");
    let p = published(&c.call(&Request::Publish {
        subject: "opt",
        delay_ms: 0,
        priority: 0,
        confirm: 0,
        timeout_ms: 0,
        payload: b"published at 0",
    }));
    assert_eq!(p.queues, 1);
    let p = published(&c.call(&Request::Publish {
        subject: "opt",
        delay_ms: LONG_MS,
        priority: 5,
        confirm: 0,
        timeout_ms: 0,
        payload: b"delayed",
    }));
    assert_eq!((p.queues, p.subscribers), (1, 1));
    assert_eq!(watcher.event().payload, b"published at 0");
    assert_eq!(
        watcher.event().payload,
        b"delayed",
        "the event is not delayed"
    );
    assert_eq!(qstat(&server, "oq", "delayed"), Some(1));
    assert_eq!(c.get("oq", 10), [&b"published at 0"[..], b"put at 5"]);
    assert_eq!(
        qstat(&server, "oq", "messages"),
        Some(1),
        "the delayed copy stays"
    );
}

/// (bytes, as a publish subject, as a pattern: `None` = valid): the refusals of
/// protocol.md 15.1, with the text after the field's name and quote.
const REFUSALS: &[(&[u8], &str, Option<&str>)] = &[
    (b"", "empty", Some("empty")),
    (
        b"a..b",
        "empty token at byte 2",
        Some("empty token at byte 2"),
    ),
    (
        b".a",
        "empty token at byte 0",
        Some("empty token at byte 0"),
    ),
    (
        b"a.",
        "empty token at byte 2",
        Some("empty token at byte 2"),
    ),
    (b"a b", "space at byte 1", Some("space at byte 1")),
    (
        b"a\tb",
        "control character 0x09 at byte 1",
        Some("control character 0x09 at byte 1"),
    ),
    (
        b"a.\x7f",
        "control character 0x7f at byte 2",
        Some("control character 0x7f at byte 2"),
    ),
    (
        b"a*",
        "'*' inside a token at byte 1",
        Some("'*' inside a token at byte 1"),
    ),
    (
        b"a>",
        "'>' inside a token at byte 1",
        Some("'>' inside a token at byte 1"),
    ),
    (
        b"x.>b",
        "'>' inside a token at byte 2",
        Some("'>' inside a token at byte 2"),
    ),
    (b"orders.*", "wildcard in a publish subject at byte 7", None),
    (b">", "wildcard in a publish subject at byte 0", None),
    (
        b"a.>.b",
        "wildcard in a publish subject at byte 2",
        Some("'>' must be the last token (byte 2)"),
    ),
    // The first fault from the left is the one reported.
    (b"a b..c", "space at byte 1", Some("space at byte 1")),
    (
        b"*.a b",
        "wildcard in a publish subject at byte 0",
        Some("space at byte 3"),
    ),
    (b"\xff", "not valid UTF-8", Some("not valid UTF-8")),
];

/// The whole `BAD_SUBJECT` text for `bytes` as a `word` field.
fn refusal_text(word: &str, bytes: &[u8], why: &str) -> String {
    match std::str::from_utf8(bytes) {
        Ok("") | Err(_) => format!("bad {word}: {why}"),
        Ok(s) => format!("bad {word} {s:?}: {why}"),
    }
}

/// Every refusal, in every request that takes a subject or a pattern, is a fatal
/// `BAD_SUBJECT` with the documented text; valid patterns are accepted.
#[test]
fn every_bad_subject_is_fatal_with_its_text() {
    let server = TestServer::start();
    let mut refused = 0;
    for &(bytes, as_subject, as_pattern) in REFUSALS {
        let subject_frames = [
            ("PUB", pub_raw(bytes, 5, 0, 0, b"x")),
            ("REQ", req_raw(bytes, 1000, b"x")),
        ];
        for (op, frame) in subject_frames {
            let mut s = server.raw();
            send(&mut s, &frame);
            let text = expect_fatal_error(&mut s, BAD_SUBJECT);
            assert_eq!(
                text,
                refusal_text("subject", bytes, as_subject),
                "{op} {bytes:02x?}"
            );
            refused += 1;
        }
        let pattern_frames = [
            ("BIND", request_frame(0x30, &names(&[bytes, b"q"]))),
            ("UNBIND", request_frame(0x31, &names(&[bytes, b"q"]))),
            ("SUB", request_frame(0x33, &names(&[bytes]))),
        ];
        for (op, frame) in pattern_frames {
            let mut s = server.raw();
            send(&mut s, &frame);
            match as_pattern {
                Some(why) => {
                    let text = expect_fatal_error(&mut s, BAD_SUBJECT);
                    assert_eq!(
                        text,
                        refusal_text("pattern", bytes, why),
                        "{op} {bytes:02x?}"
                    );
                    refused += 1;
                }
                None => {
                    let reply = read_frame(&mut s);
                    assert!(
                        matches!(
                            decode(&reply),
                            Response::Bound { .. }
                                | Response::Unbound { .. }
                                | Response::Subscribed { .. }
                        ),
                        "{op} {bytes:02x?} is a valid pattern: {reply:02x?}"
                    );
                }
            }
        }
    }
    assert_eq!(server.stat("protocol_errors"), refused);
}

/// Structure before names, names in field order (15.2); a `PUB` head is checked as
/// its bytes come, so a bad subject is refused before the payload is sent.
#[test]
fn check_order_of_the_new_requests() {
    let server = TestServer::start();
    let cases: [(Vec<u8>, u16); 4] = [
        // Bad pattern and bad (empty) queue name: the pattern comes first.
        (request_frame(0x30, &names(&[b"a..b", b""])), BAD_SUBJECT),
        // Good pattern, bad queue name.
        (request_frame(0x30, &names(&[b"a.*", b""])), BAD_QUEUE_NAME),
        // Bad pattern and a trailing byte: structure first.
        (
            request_frame(0x30, &[&names(&[b"a..b", b"q"])[..], &[0]].concat()),
            MALFORMED,
        ),
        // A wildcard in a PUB, whose payload never comes.
        (
            {
                let mut f = pub_raw(b"orders.*", 5, 0, 0, b"");
                let declared = (f.len() - 4 + 1_000_000) as u32;
                f[..4].copy_from_slice(&declared.to_be_bytes());
                f
            },
            BAD_SUBJECT,
        ),
    ];
    for (frame, code) in cases {
        let mut s = server.raw();
        send(&mut s, &frame);
        expect_fatal_error(&mut s, code);
    }
    // Values after the subject: priority, confirm without a timeout.
    for frame in [
        pub_raw(b"a", 10, 0, 0, b"x"),
        pub_raw(b"a", 5, 1, 0, b"x"),
        pub_raw(b"a", 5, 1, MAX_LEASE_MS + 1, b"x"),
        req_raw(b"a", 0, b"x"),
    ] {
        let mut s = server.raw();
        send(&mut s, &frame);
        expect_fatal_error(&mut s, BAD_ARGUMENT);
    }
    // WITH_META is for GET, LEASE and PEEK only.
    let mut s = server.raw();
    let mut frame = put_frame(b"q", b"x");
    frame[5] = 0x02;
    send(&mut s, &frame);
    expect_fatal_error(&mut s, 5);
    assert_eq!(
        stats(&server, &["bindings", "published", "messages"]),
        [0, 0, 0]
    );
}

/// `HELLO` 3 says version 3 and sets the `FANOUT` feature bit.
#[test]
fn hello_announces_fanout() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    match decode(&c.call(&Request::Hello { version: 3 })) {
        Response::Hello {
            version, limits, ..
        } => {
            assert_eq!(version, 3);
            let features = limits.expect("version-2 fields").features;
            assert_eq!(features & 0x10, 0x10, "FANOUT bit");
        }
        other => panic!("HELLO: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The memory cap, idle expiry, independent copies
// ---------------------------------------------------------------------------

/// A publish to 1,000 bound queues that cannot all take their copy stores none of
/// them: `FULL`, every queue and figure as before, and the server keeps serving.
#[test]
fn publish_to_a_thousand_queues_is_all_or_nothing() {
    let server = TestServer::start_with(&[("BMAXMEMORY", "1M"), ("BMAXMESSAGESIZE", "1K")]);
    let mut c = Conn::open(&server);
    for i in 0..1000 {
        assert!(c.bind("fan.*", &format!("q{i:04}")));
    }
    let payload = [b'p'; 200];
    // Publish until the cap refuses one; each takes 1,000 copies' worth of memory.
    let mut rounds = 0u64;
    let refusal = loop {
        let before = stats(&server, &["messages", "memory", "routed_copies"]);
        let frame = c.call(&publish("fan.out", &payload));
        if frame[4] == 0x7F {
            break (frame, before);
        }
        assert_eq!(published(&frame).queues, 1000);
        rounds += 1;
        assert!(rounds < 1000, "the cap never refused a publish");
    };
    let (frame, before) = refusal;
    let text = soft_error(&frame, FULL);
    assert!(text.contains("nothing published"), "{text}");
    assert!(rounds > 0, "at least one publish fit");
    let after = stats(
        &server,
        &[
            "messages",
            "memory",
            "routed_copies",
            "rejected_full",
            "published",
        ],
    );
    assert_eq!(after[..3], before[..], "nothing stored anywhere");
    assert_eq!(after[3], 1);
    assert_eq!(
        after[4], rounds,
        "a refused PUB is not counted as published"
    );
    let max_memory = server.stat("max_memory");
    assert!(
        max_memory - after[1] > 200 + 1000,
        "room was left for part of the copies: the refusal was for the whole"
    );
    let report = server.client().stats().unwrap();
    for i in 0..1000 {
        let q = report.queue(&format!("q{i:04}")).expect("bound queue");
        assert_eq!(q.get("messages"), Some(rounds), "queue {i}");
    }
    // Part of it would have fit: one copy's worth does.
    c.put("q0000", &payload);
    c.ping();
    // Drain everything; a publish fits again.
    for i in 0..1000 {
        let queue = format!("q{i:04}");
        let n = rounds as usize + usize::from(i == 0);
        assert_eq!(c.get(&queue, 1000).len(), n, "{queue}");
    }
    assert_eq!(c.publish("fan.out", b"again").queues, 1000);
}

/// `BIND`, `PUB` and `REQ` past the memory cap are a non-fatal `FULL` that does
/// nothing: no binding, no queue, no copy, no event, no wait.
#[test]
fn bind_publish_and_request_past_the_cap_are_full() {
    let server = TestServer::start_with(&[("BMAXMEMORY", "64K"), ("BMAXMESSAGESIZE", "4K")]);
    let mut c = Conn::open(&server);
    assert!(c.bind("r.*", "rq"));
    let mut watcher = Conn::open(&server);
    watcher.sub("r.*");
    // Fill the cap with bindings onto rq, each the same size: what is left is less
    // than one more.
    let mut n = 0;
    loop {
        let frame = c.call(&Request::Bind {
            pattern: &format!("fill.{n}"),
            queue: "rq",
        });
        if frame[4] == 0x7F {
            soft_error(&frame, FULL);
            break;
        }
        n += 1;
        assert!(n < 100_000, "the cap never refused a BIND");
    }
    let filler = vec![b'f'; 4096];
    let figures = [
        "bindings",
        "queues",
        "messages",
        "events",
        "published",
        "requests",
        "waiting",
    ];
    let before = stats(&server, &figures);
    soft_error(
        &c.call(&Request::Bind {
            pattern: "r.>",
            queue: "new",
        }),
        FULL,
    );
    // As big as each filling one (a binding and a trie node).
    soft_error(
        &c.call(&Request::Bind {
            pattern: "r.y",
            queue: "rq",
        }),
        FULL,
    );
    assert!(!c.bind("r.*", "rq"), "a binding that exists costs nothing");
    soft_error(&c.call(&publish("r.x", &filler)), FULL);
    c.send_req("r.x", LONG_MS, &filler);
    soft_error(&c.reply(), FULL);
    c.ping();
    watcher.assert_no_event();
    assert_eq!(
        stats(&server, &figures),
        before,
        "nothing done, nothing counted"
    );
    assert_eq!(qstat(&server, "new", "messages"), None);
    assert_eq!(qstat(&server, "rq", "bindings"), Some(1 + n));
    assert_eq!(server.stat("rejected_full"), 5);
}

/// A bound queue is never idle-expired; once unbound it expires like any other.
/// Timing: `BQUEUEIDLE` 100 ms (run 100 times).
#[test]
fn bound_queue_survives_idle_expiry_until_unbound() {
    let server = TestServer::start_with(&[("BQUEUEIDLE", "100ms")]);
    let mut c = Conn::open(&server);
    assert!(c.bind("keep.>", "kept"));
    // A queue used after `kept` was made: had `kept` no protection it would go first.
    c.put("control", b"x");
    assert_eq!(c.get("control", 1), [b"x"]);
    server.wait_for_stat("expired_queues", 1);
    assert_eq!(
        qstat(&server, "control", "messages"),
        None,
        "control expired"
    );
    assert_eq!(qstat(&server, "kept", "bindings"), Some(1), "kept survived");
    assert_eq!(c.publish("keep.it", b"m").queues, 1);
    assert_eq!(c.get("kept", 1), [b"m"]);
    assert!(c.unbind("keep.>", "kept"));
    server.wait_for_stat("expired_queues", 2);
    assert_eq!(
        qstat(&server, "kept", "messages"),
        None,
        "expired once unbound"
    );
    assert_eq!(c.publish("keep.it", b"m").queues, 0);
}

/// Copies of one publish are separate messages: one leased and acked, one
/// dead-lettered, one taken by GET; the shared payload goes with the last of them.
#[test]
fn copies_are_independent() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for q in ["qa", "qb", "qc"] {
        c.bind("job.*", q);
    }
    let baseline = server.stat("memory");
    for round in 0..2 {
        let p = c.publish("job.x", b"shared");
        assert_eq!(p.queues, 3);
        let a = c.lease("qa", 1, 60_000);
        assert_eq!(a.len(), 1);
        let b = c.lease("qb", 1, 60_000);
        assert_ne!(a[0].0.id, b[0].0.id, "each copy has its own id");
        assert_eq!(c.ack("qa", a[0].0), Some(SettleResult::Ok));
        assert_eq!(c.nack("qb", true, b[0].0), Some(SettleResult::Ok));
        assert_eq!(qstat(&server, "qc", "ready"), Some(1), "qc untouched");
        assert_eq!(c.get("qc", 10), [b"shared"]);
        let dead = c.get_meta("qb.dead", 10);
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].subject.as_deref(),
            Some("job.x"),
            "kept its subject"
        );
        assert_eq!(dead[0].payload, b"shared");
        assert_eq!(qstat(&server, "qa", "acks"), Some(round + 1));
        assert_eq!(qstat(&server, "qb", "dead_lettered"), Some(round + 1));
        assert_eq!(stats(&server, &["messages", "bytes"]), [0, 0]);
    }
    // The dead-letter queue exists now (it was made in round 0); nothing else stays.
    let after_rounds = server.stat("memory");
    c.publish("job.x", b"shared");
    for q in ["qa", "qb", "qc"] {
        assert_eq!(c.get(q, 10).len(), 1);
    }
    assert_eq!(
        server.stat("memory"),
        after_rounds,
        "the shared body was freed"
    );
    assert!(after_rounds >= baseline);
}

/// The payload is stored once for all the copies: a 1 KiB publish into 100 bound
/// queues costs about 1 KiB plus a little per copy, not 100 KiB.
#[test]
fn payload_is_stored_once_for_all_copies() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for i in 0..100 {
        c.bind("once", &format!("o{i}"));
    }
    // Each queue's first message makes room it keeps: made before measuring.
    c.publish("once", b"warm");
    for i in 0..100 {
        assert_eq!(c.get(&format!("o{i}"), 1).len(), 1);
    }
    let before = server.stat("memory");
    assert_eq!(c.publish("once", &[b'k'; 1024]).queues, 100);
    let cost = server.stat("memory") - before;
    assert!(
        (1024..1024 + 100 * 64).contains(&cost),
        "1 KiB into 100 queues cost {cost} bytes"
    );
    assert_eq!(
        server.stat("bytes"),
        100 * 1024,
        "each copy counts its bytes"
    );
}

// ---------------------------------------------------------------------------
// Live subscriptions (15.6)
// ---------------------------------------------------------------------------

/// protocol.md 15.12's first exchange, byte for byte: a subscriber, a binding, a
/// confirmed publish, a `GET` with `WITH_META`.
#[test]
fn documented_fanout_example_replays_byte_for_byte() {
    let server = TestServer::start();
    let mut a = server.raw();
    let mut b = server.raw();
    let mut c = server.raw();
    let sub = [&[0, 0, 0, 0x0b, 0x33, 0, 8][..], b"orders.>"].concat();
    assert_eq!(call(&mut a, &sub), [0, 0, 0, 5, 0x33, 0, 0, 0, 1]);
    let bind = [
        &[0, 0, 0, 0x19, 0x30, 0, 0x10][..],
        b"orders.*.created",
        &[5],
        b"audit",
    ]
    .concat();
    assert_eq!(call(&mut b, &bind), [0, 0, 0, 2, 0x30, 1]);
    let publish = [
        &[0, 0, 0, 0x23, 0x32, 0, 0x11][..],
        b"orders.eu.created",
        &[0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0x13, 0x88],
        b"hi",
    ]
    .concat();
    send(&mut b, &publish);
    let event = [
        &[0, 0, 0, 0x1c, 0x3f, 0, 0, 0, 1, 0, 0x13, 1, 0x11][..],
        b"orders.eu.created",
        b"hi",
    ]
    .concat();
    assert_eq!(read_frame(&mut a), event);
    let get = [
        &[0, 0, 0, 0x0e, 0x11, 0x02, 5][..],
        b"audit",
        &[0, 0, 0, 0, 0, 0x0a],
    ]
    .concat();
    let envelopes = [
        &[0, 0, 0, 0x2c, 0x37, 0, 0, 0, 1][..],
        &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x13, 1, 0x11],
        b"orders.eu.created",
        &[0, 0, 0, 2],
        b"hi",
    ]
    .concat();
    assert_eq!(call(&mut c, &get), envelopes);
    let published = [
        0, 0, 0, 0x19, 0x32, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0,
    ];
    assert_eq!(read_frame(&mut b), published);
}

/// Events carry their subject; a subscription's events come in publish order; two
/// matching subscriptions of one connection give two events; only subscribers get
/// events.
#[test]
fn events_carry_subject_in_publish_order() {
    let server = TestServer::start();
    let mut s = Conn::open(&server);
    let mut p = Conn::open(&server);
    let all = s.sub("feed.>");
    let some = s.sub("feed.*.b");
    assert_eq!((all, some), (1, 2));
    let mut other = Conn::open(&server);
    assert_eq!(other.sub("feed.x"), 1, "sids belong to their connection");
    for i in 0..100u32 {
        // Pipelined: the server carries them out in the order sent.
        p.send(&publish("feed.a.b", &i.to_be_bytes()));
    }
    for _ in 0..100 {
        assert_eq!(published(&p.reply()).subscribers, 2);
    }
    for i in 0..100u32 {
        // The two events of one publish may come in either order.
        let mut pair = [s.event(), s.event()];
        pair.sort_by_key(|e| e.sid);
        for (e, sid) in pair.into_iter().zip([all, some]) {
            assert_eq!(e.sid, sid, "event {i}: one per subscription");
            assert_eq!(e.subject.as_deref(), Some("feed.a.b"));
            assert_eq!(e.tags, [1], "SUBJECT only");
            assert_eq!(e.reply_to, None);
            assert_eq!(e.payload, i.to_be_bytes(), "publish order");
        }
    }
    s.assert_no_event();
    other.assert_no_event();
    p.assert_no_event();
    assert_eq!(
        stats(&server, &["events", "published", "subscriptions"]),
        [200, 100, 3]
    );
}

/// EVENTs come between replies without taking a reply's place: on the publisher's
/// own connection, and while one of its requests is parked.
#[test]
fn events_between_replies_and_while_parked() {
    let server = TestServer::start();
    let mut s = Conn::open(&server);
    let sid = s.sub("self");
    s.send(&publish("self", b"1"));
    s.send(&Request::Ping);
    s.send(&publish("self", b"2"));
    s.send(&Request::Ping);
    let replies: Vec<Vec<u8>> = (0..4).map(|_| s.reply()).collect();
    assert_eq!(published(&replies[0]).subscribers, 1);
    assert_eq!(replies[1], PONG);
    assert_eq!(published(&replies[2]).subscribers, 1);
    assert_eq!(replies[3], PONG);
    assert_eq!(s.event().payload, b"1");
    assert_eq!(s.event().payload, b"2");
    s.assert_no_event();

    // Parked on an empty queue, the connection still gets its events.
    s.send(&Request::Get {
        queue: "empty",
        wait_ms: u32::MAX,
        max: 1,
    });
    wait_qstat(&server, "empty", "waiters", 1);
    let mut p = Conn::open(&server);
    p.publish("self", b"while parked");
    let e = s.event();
    assert_eq!((e.sid, e.payload.as_slice()), (sid, &b"while parked"[..]));
    p.put("empty", b"wake");
    assert_eq!(payloads(&s.reply()), [b"wake"]);
    s.assert_no_event();
}

/// No event of a subscription after its `UNSUBSCRIBED`; `UNSUB` of an unknown sid is
/// 0; sids are never reused; 1,025 subscriptions are one too many.
#[test]
fn unsubscribe_and_the_subscription_limit() {
    let server = TestServer::start();
    let mut s = Conn::open(&server);
    let mut p = Conn::open(&server);
    let sid = s.sub("u.*");
    assert_eq!(p.publish("u.1", b"before").subscribers, 1);
    assert!(s.unsub(sid));
    assert!(!s.unsub(sid), "ended already");
    assert!(!s.unsub(0), "0 is never a sid");
    assert!(!s.unsub(77), "never had it");
    assert_eq!(s.event().payload, b"before", "sent before UNSUB");
    assert_eq!(p.publish("u.1", b"after").subscribers, 0);
    s.assert_no_event();
    assert_eq!(s.sub("u.*"), sid + 1, "sids are not reused");

    let mut many = Conn::open(&server);
    for i in 1..=1024 {
        assert_eq!(many.sub("lim.>"), i);
    }
    let text = soft_error(&many.call(&Request::Subscribe { pattern: "lim.>" }), LIMIT);
    assert!(text.contains("1024"), "{text}");
    assert_eq!(server.stat("subscriptions"), 1 + 1024);
    assert!(many.unsub(5));
    assert_eq!(many.sub("lim.>"), 1025, "room again; the next sid");
    assert_eq!(p.publish("lim.x", b"x").subscribers, 1024);
}

/// Everything of a subscription goes with its connection: the count and the memory
/// it was charged.
#[test]
fn subscriptions_freed_on_disconnect() {
    let server = TestServer::start();
    let baseline = server.stat("memory");
    let mut s = Conn::open(&server);
    for i in 0..1000 {
        s.sub(&format!("gone.{i}.>"));
    }
    let [subs, memory] = stats(&server, &["subscriptions", "memory"])[..] else {
        unreachable!()
    };
    assert_eq!(subs, 1000);
    assert!(memory > baseline, "subscriptions are charged");
    for sid in 1..=500 {
        assert!(s.unsub(sid));
    }
    drop(s);
    server.wait_for_stat("subscriptions", 0);
    assert_eq!(server.stat("memory"), baseline, "all freed");
    let mut p = Conn::open(&server);
    let r = p.publish("gone.1.x", b"x");
    assert_eq!((r.queues, r.subscribers), (0, 0));
    assert_eq!(server.stat("unroutable"), 1);
}

/// A subscriber that never reads cannot grow the server: events past its buffer are
/// dropped and counted, the server's RSS stays bounded while 128 MiB are published
/// to it, and the event after a gap says how many were dropped.
#[test]
fn slow_subscriber_cannot_grow_the_server() {
    const PAYLOAD: usize = 256 * 1024;
    const COUNT: u64 = 512;
    let server = TestServer::start();
    let mut s = Conn::open(&server);
    let sid = s.sub("fire.>");
    let mut p = Conn::open(&server);
    p.publish("fire.warm", &vec![0; PAYLOAD]);
    assert_eq!(s.event().payload.len(), PAYLOAD);
    let rss_before = server.rss_kib();
    let memory_before = server.stat("memory");
    let mut payload = vec![b'f'; PAYLOAD];
    let mut queued = 0;
    let mut peak_rss = 0;
    for i in 0..COUNT {
        payload[..8].copy_from_slice(&i.to_be_bytes());
        let r = p.publish("fire.hose", &payload);
        queued += u64::from(r.subscribers);
        if i % 64 == 0 {
            peak_rss = peak_rss.max(server.rss_kib());
        }
    }
    peak_rss = peak_rss.max(server.rss_kib());
    let [drops, events, unroutable, memory] = stats(
        &server,
        &["slow_consumer_drops", "events", "unroutable", "memory"],
    )[..] else {
        unreachable!()
    };
    assert!(
        drops > 0,
        "a subscriber that does not read has events dropped"
    );
    assert_eq!(drops + queued, COUNT, "each event queued or dropped");
    assert_eq!(events, 1 + queued);
    assert_eq!(
        unroutable, 0,
        "a dropped event still matched a subscription"
    );
    assert_eq!(memory, memory_before, "events are not charged as messages");
    // 128 MiB went to it; the server may hold its 1 MiB buffer, one event over it and
    // allocator slack, never the stream.
    assert!(
        peak_rss < rss_before + 40 * 1024,
        "server RSS grew from {rss_before} KiB to {peak_rss} KiB"
    );

    // Now read: each event after a gap says how big the gap was.
    s.send(&Request::Ping);
    assert_eq!(s.reply(), PONG);
    let mut next = 0u64;
    let mut dropped_seen = 0u64;
    while let Some(e) = s.events.pop_front() {
        assert_eq!(e.sid, sid);
        let seq = u64::from_be_bytes(e.payload[..8].try_into().unwrap());
        let gap = u64::from(e.dropped.unwrap_or(0));
        assert_eq!(seq, next + gap, "DROPPED {gap} before event {seq}");
        dropped_seen += gap;
        next = seq + 1;
    }
    let last = p.publish("fire.hose", b"\0\0\0\0\0\0\0\0last");
    assert_eq!(last.subscribers, 1, "caught up: delivered again");
    let e = s.event();
    let gap = COUNT - next;
    assert_eq!(
        e.dropped,
        (gap > 0).then_some(gap as u32),
        "the gap at the end"
    );
    assert_eq!(&e.payload[8..], b"last");
    assert_eq!(dropped_seen + gap, drops, "every drop reported once");
    if gap > 0 {
        assert_eq!(e.tags, [1, 3], "SUBJECT then DROPPED");
    }
    s.assert_no_event();
    assert_eq!(
        server.stat("slow_consumer_drops"),
        drops,
        "no drop once read"
    );
}

/// A `REQ` whose only responder is a slow subscriber waits for its timeout (15.8),
/// its event dropped: it had a responder, so it is not `NO_RESPONDERS`.
/// Timing: a 50 ms `REQ` timeout (run 100 times).
#[test]
fn request_to_a_slow_subscriber_only_times_out() {
    let server = TestServer::start();
    let mut s = Conn::open(&server);
    s.sub("slow.>");
    let mut p = Conn::open(&server);
    let payload = vec![b's'; 256 * 1024];
    while server.stat("slow_consumer_drops") == 0 {
        p.publish("slow.fill", &payload);
    }
    let mut r = Conn::open(&server);
    r.send_req("slow.svc", 50, b"anyone?");
    assert_eq!(r.reply(), EMPTY, "waited for its timeout");
    assert_eq!(stats(&server, &["no_responders", "waiting"]), [0, 0]);
}

/// No `EVENT` comes after `BYE` (15.6), even when the subscriber's output still holds
/// earlier events when its `QUIT` is carried out.
///
/// `BSUBBUFFER` is kept under the server's read-pause mark (256 KiB) so that the
/// `QUIT` is read at once, never waiting for the output to drain. The kernel may let
/// a socket's send buffer grow to megabytes behind the server's back, taking all of
/// the output at the next write; so a `PING` from the subscriber first makes the
/// server write until the kernel takes no more, and the buffers are filled again
/// past `BSUBBUFFER` before the `QUIT`.
#[test]
fn no_event_after_bye() {
    let server = TestServer::start_with(&[("BSUBBUFFER", "64K")]);
    let mut s = Conn {
        s: small_buffer_socket(&server),
        events: VecDeque::new(),
    };
    let sid = s.sub("bye.>");
    let mut p = Conn::open(&server);
    let payload = vec![b'b'; 16 * 1024];
    // Fill its socket buffers and its output until events are dropped.
    while server.stat("slow_consumer_drops") == 0 {
        p.publish("bye.fill", &payload);
    }
    s.send(&Request::Ping);
    wait_until_read(&server, &s.s);
    let drops = server.stat("slow_consumer_drops");
    while server.stat("slow_consumer_drops") == drops {
        p.publish("bye.fill", &payload);
    }
    s.send(&Request::Quit);
    wait_until_read(&server, &s.s);
    assert_eq!(
        server.stat("subscriptions"),
        1,
        "the connection is closing, its output not yet all written"
    );
    // Published while the connection is closing, as what is left of its output
    // drains: none of these may come after the BYE.
    let mut late = 0;
    let mut frames = Vec::new();
    loop {
        late += p.publish("bye.late", b"after QUIT").subscribers;
        let mut prefix = [0u8; 4];
        match std::io::Read::read_exact(&mut s.s, &mut prefix) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read: {e}"),
        }
        let len = u32::from_be_bytes(prefix) as usize;
        let mut body = vec![0; len];
        std::io::Read::read_exact(&mut s.s, &mut body).expect("frame body");
        frames.push([&prefix[..], &body].concat());
    }
    let bye = frames
        .iter()
        .position(|f| f[..] == BYE)
        .unwrap_or_else(|| panic!("no BYE among {} frames", frames.len()));
    assert!(bye > 0, "events were waiting in its output");
    let pongs = frames[..bye].iter().filter(|f| f[..] == PONG).count();
    assert_eq!(pongs, 1, "the PING's reply comes before the BYE");
    for frame in frames[..bye].iter().filter(|f| f[..] != PONG) {
        assert_eq!(
            event_of(frame).map(|e| e.sid),
            Some(sid),
            "only events before BYE"
        );
    }
    let after: Vec<_> = frames[bye + 1..]
        .iter()
        .filter_map(|f| event_of(f))
        .collect();
    assert!(
        after.is_empty(),
        "{} events after BYE ({bye} before it, {late} counted late)",
        after.len(),
    );
    assert_eq!(late, 0, "a closing connection gets no events");
}

/// Waits (bounded) until the server has read everything `client` sent, without
/// reading anything from `client`.
fn wait_until_read(server: &TestServer, client: &TcpStream) {
    let mut polls = 0;
    while server_unread(server.port, client) > 0 {
        polls += 1;
        assert!(polls < 10_000, "the server never read the request");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Like `common::server_unread_bytes`, but finds its line by the two ports' text
/// instead of parsing every line: fast enough to poll on a machine with thousands of
/// sockets.
fn server_unread(server_port: u16, client: &TcpStream) -> u64 {
    let client_port = client.local_addr().unwrap().port();
    let local = format!(":{server_port:04X} ");
    let remote = format!(":{client_port:04X} ");
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let line = table
        .lines()
        .find(|l| {
            l.get(..40).is_some_and(|head| {
                head.find(&local)
                    .is_some_and(|at| head[at + local.len()..].contains(&remote))
            })
        })
        .unwrap_or_else(|| panic!("no server-side socket for client port {client_port}"));
    let queues = line.split_whitespace().nth(4).expect("tx_queue:rx_queue");
    let (_, rx) = queues.split_once(':').expect("tx:rx");
    u64::from_str_radix(rx, 16).expect("hex rx_queue")
}

/// A connection to `server` whose receive buffer is made small before it connects, so
/// that the server's socket buffers fill soon and its own output holds the rest.
fn small_buffer_socket(server: &TestServer) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor made here and handed to TcpStream,
    // which owns (and closes) it from then on.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let size: libc::c_int = 4096;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: server.port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    };
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

// ---------------------------------------------------------------------------
// Request/reply (15.8)
// ---------------------------------------------------------------------------

/// Nothing bound or subscribed: `NO_RESPONDERS` at once (the timeout is 12 hours),
/// nothing stored, the connection goes on.
#[test]
fn request_with_no_responders_fails_at_once() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.bind("other.>", "elsewhere");
    c.sub("other.>");
    c.send_req("svc.none", MAX_LEASE_MS, b"hello?");
    let text = soft_error(&c.reply(), NO_RESPONDERS);
    assert!(text.contains("svc.none"), "{text}");
    c.ping();
    assert_eq!(
        stats(
            &server,
            &["requests", "no_responders", "waiting", "messages", "events"]
        ),
        [1, 1, 0, 0, 0]
    );
}

/// One responder through a bound queue: a parked `LEASE` with `WITH_META` and an
/// immediate one both see `REPLY_TO`; the requester gets the reply's payload.
#[test]
fn request_answered_through_a_bound_queue() {
    let server = TestServer::start();
    let mut worker = Conn::open(&server);
    worker.bind("svc.add", "adders");
    let mut requester = Conn::open(&server);

    // The worker waits first: the copy is handed to it.
    worker.send(&lease_meta("adders", u32::MAX, 1, 60_000));
    wait_qstat(&server, "adders", "waiters", 1);
    requester.send_req("svc.add", LONG_MS, b"1+2");
    let envs = envelopes(&worker.reply());
    assert_eq!(envs.len(), 1);
    let e = &envs[0];
    assert_eq!(
        (e.subject.as_deref(), e.attempt, e.payload.as_slice()),
        (Some("svc.add"), 1, &b"1+2"[..])
    );
    assert_eq!(e.tags, [1, 2], "SUBJECT then REPLY_TO");
    let first = e.reply_to.expect("REPLY_TO");
    assert_ne!(first, 0);
    assert_eq!(server.stat("waiting"), 1);
    assert!(worker.reply_to(first, b"3"));
    assert_eq!(requester.reply(), [0, 0, 0, 2, 0x35, b'3'], "REPLY 3");
    assert_eq!(worker.ack("adders", e.lease()), Some(SettleResult::Ok));

    // The request is stored first and leased later.
    requester.send_req("svc.add", LONG_MS, b"2+2");
    wait_qstat(&server, "adders", "ready", 1);
    let e = worker.lease_meta("adders", 1, 60_000).remove(0);
    let second = e.reply_to.expect("REPLY_TO");
    assert_ne!(second, first, "a fresh address per request");
    assert!(worker.reply_to(second, b"4"));
    assert_eq!(
        decode(&requester.reply()),
        Response::Reply { payload: b"4" }
    );
    assert!(!worker.reply_to(second, b"again"), "answered already");
    assert_eq!(
        stats(&server, &["requests", "replies", "late_replies", "waiting"]),
        [2, 2, 1, 0]
    );
}

/// One responder through a subscription: its `EVENT` carries `REPLY_TO`.
#[test]
fn request_answered_through_a_subscription() {
    let server = TestServer::start();
    let mut responder = Conn::open(&server);
    let sid = responder.sub("svc.*");
    let mut requester = Conn::open(&server);
    requester.send_req("svc.time", LONG_MS, b"now?");
    let e = responder.event();
    assert_eq!(e.sid, sid);
    assert_eq!(e.subject.as_deref(), Some("svc.time"));
    assert_eq!(e.tags, [1, 2]);
    assert_eq!(e.payload, b"now?");
    assert!(responder.reply_to(e.reply_to.expect("REPLY_TO"), b"12:00"));
    assert_eq!(
        decode(&requester.reply()),
        Response::Reply { payload: b"12:00" }
    );
    requester.ping();
    assert_eq!(stats(&server, &["events", "replies"]), [1, 1]);
}

/// Two responders: the first reply wins, the second is `REPLIED 0`, and the requester
/// gets one reply only. Any connection may reply.
#[test]
fn first_of_two_replies_wins() {
    let server = TestServer::start();
    let mut one = Conn::open(&server);
    let mut two = Conn::open(&server);
    one.sub("svc.>");
    two.sub("svc.>");
    let mut requester = Conn::open(&server);
    requester.send_req("svc.q", LONG_MS, b"?");
    let a = one.event().reply_to.expect("REPLY_TO");
    let b = two.event().reply_to.expect("REPLY_TO");
    assert_eq!(a, b, "one address per request");
    assert!(two.reply_to(b, b"from two"));
    assert!(!one.reply_to(a, b"from one"));
    let mut third = Conn::open(&server);
    assert!(!third.reply_to(a, b"from a stranger"));
    assert!(!third.reply_to(0, b"to nobody"));
    assert_eq!(
        decode(&requester.reply()),
        Response::Reply {
            payload: b"from two"
        }
    );
    requester.ping();
    assert_eq!(stats(&server, &["replies", "late_replies"]), [1, 3]);
}

/// A requester that goes while it waits: its address is dropped at once, a late reply
/// is `REPLIED 0`, and nothing is left behind but the copy in its queue.
#[test]
fn requester_gone_then_late_reply() {
    let server = TestServer::start();
    let mut worker = Conn::open(&server);
    worker.bind("late.*", "late");
    worker.sub("late.*");
    // A queue keeps the room its first message made: make it before the baseline.
    worker.publish("late.warm", b"warm");
    assert_eq!(worker.event().payload, b"warm");
    assert_eq!(worker.get("late", 1), [b"warm"]);
    let baseline = server.stat("memory");
    let mut requester = Conn::open(&server);
    requester.send_req("late.x", LONG_MS, b"will you wait?");
    let address = worker.event().reply_to.expect("REPLY_TO");
    assert_eq!(server.stat("waiting"), 1);
    drop(requester);
    server.wait_for_stat("waiting", 0);
    assert!(!worker.reply_to(address, b"too late"));
    let copy = worker.get_meta("late", 1).remove(0);
    assert_eq!(
        copy.reply_to,
        Some(address),
        "the copy is an ordinary message"
    );
    assert_eq!(server.stat("memory"), baseline, "nothing leaked");
    assert_eq!(stats(&server, &["late_replies", "replies"]), [1, 0]);
    worker.assert_no_event();
}

/// Nobody answers in time: `EMPTY`, then the address is gone.
/// Timing: a 50 ms `REQ` timeout (run 100 times).
#[test]
fn request_times_out_with_empty() {
    let server = TestServer::start();
    let mut silent = Conn::open(&server);
    silent.sub("quiet.>");
    let mut requester = Conn::open(&server);
    requester.send_req("quiet.please", 50, b"?");
    let address = silent.event().reply_to.expect("REPLY_TO");
    assert_eq!(requester.reply(), EMPTY);
    assert!(!silent.reply_to(address, b"late"));
    requester.ping();
    assert_eq!(stats(&server, &["waiting", "late_replies"]), [0, 1]);
}

/// Nothing the requester sends behind a parked `REQ` is carried out before its reply.
#[test]
fn requests_behind_a_parked_request_wait() {
    let server = TestServer::start();
    let mut responder = Conn::open(&server);
    responder.sub("order.>");
    let mut requester = Conn::open(&server);
    let mut frames = Vec::new();
    for request in [
        Request::Req {
            subject: "order.svc",
            timeout_ms: LONG_MS,
            payload: b"first",
        },
        Request::Put {
            queue: "behind",
            payload: b"second",
        },
    ] {
        request.encode(&mut frames).unwrap();
    }
    requester.send_raw(&frames);
    let address = responder.event().reply_to.expect("REPLY_TO");
    // The server has read the PUT behind it (nothing unread in its socket) ...
    eventually("the server read both frames", || {
        server_unread_bytes(server.port, &requester.s) == 0
    });
    // ... and has not carried it out.
    responder.ping();
    assert_eq!(qstat(&server, "behind", "messages"), None);
    assert!(responder.reply_to(address, b"answer"));
    assert_eq!(
        decode(&requester.reply()),
        Response::Reply { payload: b"answer" }
    );
    assert_eq!(requester.reply(), STORED);
    assert_eq!(qstat(&server, "behind", "messages"), Some(1));
}

// ---------------------------------------------------------------------------
// Confirmation (15.5)
// ---------------------------------------------------------------------------

/// More confirmations than bound queues: `TOO_FEW_COPIES` at once, nothing stored,
/// no event pushed (events never count).
#[test]
fn confirm_more_than_copies_is_refused() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.bind("few.*", "f1");
    c.bind("few.>", "f2");
    let mut watcher = Conn::open(&server);
    watcher.sub("few.>");
    let text = soft_error(&c.call(&confirmed("few.x", b"m", 3, 1000)), TOO_FEW_COPIES);
    assert!(text.contains('3') && text.contains('2'), "{text}");
    let text = soft_error(&c.call(&confirmed("nobody", b"m", 1, 1000)), TOO_FEW_COPIES);
    assert!(text.contains("nobody"), "{text}");
    c.ping();
    watcher.assert_no_event();
    assert_eq!(
        stats(
            &server,
            &["messages", "published", "events", "routed_copies"]
        ),
        [0, 0, 0, 0]
    );
}

/// The reply waits until N copies are acked; a copy returned and leased again before
/// its ack counts once; a copy leased on another connection, its lease expired, leased
/// again and acked counts once too.
/// Timing: a 50 ms lease that must expire (run 100 times).
#[test]
fn confirm_reached_by_acks_redelivery_counted_once() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for q in ["c1", "c2", "c3"] {
        c.bind("conf.*", q);
    }
    let mut publisher = Conn::open(&server);
    publisher.send(&confirmed("conf.x", b"m", 2, LONG_MS));
    server.wait_for_stat("waiting", 1);

    // c1: leased, given back, leased again, acked: one confirmation.
    let first = c.lease("c1", 1, 60_000).remove(0).0;
    assert_eq!(c.nack("c1", false, first), Some(SettleResult::Ok));
    let again = c.lease("c1", 1, 60_000).remove(0).0;
    assert_eq!((again.id, again.attempt), (first.id, 2));
    assert_eq!(c.ack("c1", again), Some(SettleResult::Ok));
    assert_eq!(c.ack("c1", first), Some(SettleResult::NotFound));

    // c2: its lease runs out, it is leased again and acked.
    let short = c.lease("c2", 1, 50).remove(0).0;
    wait_qstat(&server, "c2", "expired_leases", 1);
    assert_eq!(c.ack("c2", short), Some(SettleResult::Stale), "lease ended");
    assert_eq!(
        stats(&server, &["waiting", "confirmed"]),
        [1, 0],
        "one copy confirmed so far"
    );
    let retry = c.lease("c2", 1, 60_000).remove(0).0;
    assert_eq!(c.ack("c2", retry), Some(SettleResult::Ok));
    let p = published(&publisher.reply());
    assert_eq!(pub_result(&p), (3, 0, 1, 1, 2, 0));
    assert_eq!(stats(&server, &["waiting", "confirmed"]), [0, 1]);
    // The third copy is still an ordinary message.
    assert_eq!(c.get("c3", 10), [b"m"]);
}

/// A dead-lettered copy fails: the reply comes as soon as N can no longer be reached,
/// and a dead letter acked later in its dead-letter queue does not count.
#[test]
fn dead_letters_fail_and_end_the_wait_early() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for q in ["d1", "d2", "d3"] {
        c.bind("dl.*", q);
    }
    let mut publisher = Conn::open(&server);
    publisher.send(&confirmed("dl.x", b"m", 2, LONG_MS));
    server.wait_for_stat("waiting", 1);
    let l1 = c.lease("d1", 1, 60_000).remove(0).0;
    assert_eq!(c.nack("d1", true, l1), Some(SettleResult::Ok));
    // Acking the dead letter does not make it a confirmation.
    let dead = c.lease("d1.dead", 1, 60_000).remove(0).0;
    assert_eq!(c.ack("d1.dead", dead), Some(SettleResult::Ok));
    let l2 = c.lease("d2", 1, 60_000).remove(0).0;
    assert_eq!(c.ack("d2", l2), Some(SettleResult::Ok));
    assert_eq!(
        server.stat("waiting"),
        1,
        "1 acked, 1 failed, 1 pending of 2"
    );
    // The last copy purged: 2 can no longer be reached.
    assert_eq!(
        decode(&c.call(&Request::Purge { queue: "d3" })),
        Response::Purged { count: 1 }
    );
    let p = published(&publisher.reply());
    assert_eq!((p.queues, p.acked, p.failed), (3, 1, 2));

    // All of them dead: answered at the first failure that makes N unreachable.
    publisher.send(&confirmed("dl.x", b"m", 3, LONG_MS));
    server.wait_for_stat("waiting", 1);
    let l = c.lease("d1", 1, 60_000).remove(0).0;
    assert_eq!(c.nack("d1", true, l), Some(SettleResult::Ok));
    let p = published(&publisher.reply());
    assert_eq!((p.queues, p.acked, p.failed), (3, 0, 1));
    assert_eq!(server.stat("confirmed"), 2);
}

/// A plain `GET` confirms (immediate, parked, with `WITH_META`); the timeout answers
/// with the count so far.
/// Timing: a 100 ms confirmation timeout (run 100 times).
#[test]
fn plain_get_confirms_and_timeout_gives_partial_count() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    for q in ["g1", "g2"] {
        c.bind("get.*", q);
    }
    let mut publisher = Conn::open(&server);
    // Immediate GETs.
    publisher.send(&confirmed("get.x", b"m", 2, LONG_MS));
    server.wait_for_stat("waiting", 1);
    assert_eq!(c.get("g1", 1), [b"m"]);
    assert_eq!(c.get_meta("g2", 1).len(), 1);
    let p = published(&publisher.reply());
    assert_eq!((p.acked, p.failed), (2, 0));

    // A GET parked on g1 takes its copy at once; g2's copy stays: the timeout answers.
    let mut parked = Conn::open(&server);
    parked.send(&Request::Get {
        queue: "g1",
        wait_ms: u32::MAX,
        max: 1,
    });
    wait_qstat(&server, "g1", "waiters", 1);
    publisher.send(&confirmed("get.x", b"n", 2, 100));
    assert_eq!(payloads(&parked.reply()), [b"n"]);
    let p = published(&publisher.reply());
    assert_eq!(
        pub_result(&p),
        (2, 0, 1, 1, 1, 0),
        "1 of 2 when it timed out"
    );
    assert_eq!(stats(&server, &["waiting", "confirmed"]), [0, 1]);
    assert_eq!(c.get("g2", 1), [b"n"], "the copy stays");
}

/// A copy moved to another queue keeps its id and its confirmation: acked there, it
/// counts.
#[test]
fn moved_copy_still_confirms() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.bind("mv", "from");
    let mut publisher = Conn::open(&server);
    publisher.send(&confirmed("mv", b"m", 1, LONG_MS));
    server.wait_for_stat("waiting", 1);
    assert_eq!(
        decode(&c.call(&Request::Move {
            from: "from",
            to: "elsewhere",
            max: 10
        })),
        Response::Moved { count: 1 }
    );
    assert_eq!(server.stat("waiting"), 1, "moved is still pending");
    let e = c.lease_meta("elsewhere", 1, 60_000).remove(0);
    assert_eq!(e.subject.as_deref(), Some("mv"));
    assert_eq!(c.ack("elsewhere", e.lease()), Some(SettleResult::Ok));
    assert_eq!(published(&publisher.reply()).acked, 1);
}

/// Nothing behind a confirmed `PUB` is carried out until it is answered; a publisher
/// that goes while it waits leaves its copies and nothing else.
#[test]
fn confirm_parks_the_connection_and_disconnect_leaks_nothing() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.bind("park.*", "p1");
    let mut publisher = Conn::open(&server);
    let mut frames = Vec::new();
    confirmed("park.x", b"m", 1, LONG_MS)
        .encode(&mut frames)
        .unwrap();
    put_frame(b"behind", b"x")
        .iter()
        .for_each(|&b| frames.push(b));
    publisher.send_raw(&frames);
    server.wait_for_stat("waiting", 1);
    eventually("the server read both frames", || {
        server_unread_bytes(server.port, &publisher.s) == 0
    });
    c.ping();
    assert_eq!(
        qstat(&server, "behind", "messages"),
        None,
        "not carried out yet"
    );
    let l = c.lease("p1", 1, 60_000).remove(0).0;
    assert_eq!(c.ack("p1", l), Some(SettleResult::Ok));
    assert_eq!(published(&publisher.reply()).acked, 1);
    assert_eq!(publisher.reply(), STORED);

    let baseline = server.stat("memory");
    publisher.send(&confirmed("park.x", b"m", 1, LONG_MS));
    server.wait_for_stat("waiting", 1);
    drop(publisher);
    server.wait_for_stat("waiting", 0);
    assert_eq!(qstat(&server, "p1", "messages"), Some(1), "the copy stays");
    let l = c.lease("p1", 1, 60_000).remove(0).0;
    assert_eq!(c.ack("p1", l), Some(SettleResult::Ok), "acked to nobody");
    assert_eq!(server.stat("memory"), baseline, "nothing leaked");
    assert_eq!(server.stat("confirmed"), 1);
}

// ---------------------------------------------------------------------------
// WITH_META (15.9) and cut payloads
// ---------------------------------------------------------------------------

/// `GET`, `LEASE` (immediate, parked, handed back) and `PEEK` with `WITH_META` answer
/// `ENVELOPES` with the subject (and `REPLY_TO` for a request's copy); a `PUT` message
/// has no metadata; without the flag the replies keep their version-1/2 layout.
#[test]
fn with_meta_on_every_receive() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.bind("m.>", "meta");
    c.put("meta", b"plain");
    let e = c.get_meta("meta", 10);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].tags.as_slice(), e[0].attempt), (&[][..], 0));
    assert_eq!(e[0].payload, b"plain");

    c.publish("m.one", b"p1");
    let e = c.get_meta("meta", 10).remove(0);
    assert_eq!(
        (e.subject.as_deref(), e.reply_to, e.attempt),
        (Some("m.one"), None, 0)
    );

    c.publish("m.two", b"p2");
    let peeked = c.peek_meta("meta", 10).remove(0);
    assert_eq!(
        (peeked.subject.as_deref(), peeked.attempt),
        (Some("m.two"), 0)
    );
    let leased = c.lease_meta("meta", 10, 60_000).remove(0);
    assert_eq!(
        (leased.id, leased.subject.as_deref(), leased.attempt),
        (peeked.id, Some("m.two"), 1)
    );
    // Given back to a LEASE WITH_META parked meanwhile: handed over with its subject.
    let mut parked = Conn::open(&server);
    parked.send(&lease_meta("meta", u32::MAX, 1, 60_000));
    wait_qstat(&server, "meta", "waiters", 1);
    assert_eq!(
        c.nack("meta", false, leased.lease()),
        Some(SettleResult::Ok)
    );
    let handed = envelopes(&parked.reply()).remove(0);
    assert_eq!(
        (handed.id, handed.subject.as_deref(), handed.attempt),
        (peeked.id, Some("m.two"), 2)
    );
    assert_eq!(
        parked.nack("meta", false, handed.lease()),
        Some(SettleResult::Ok)
    );
    let e = c.peek_meta("meta", 1).remove(0);
    assert_eq!((e.attempt, e.subject.as_deref()), (2, Some("m.two")));
    let e = c.get_meta("meta", 1).remove(0);
    assert_eq!((e.attempt, e.payload.as_slice()), (2, &b"p2"[..]));

    // A LEASE WITH_META parked before the publish.
    parked.send(&lease_meta("meta", u32::MAX, 1, 60_000));
    wait_qstat(&server, "meta", "waiters", 1);
    c.publish("m.three", b"p3");
    let e = envelopes(&parked.reply()).remove(0);
    assert_eq!((e.subject.as_deref(), e.attempt), (Some("m.three"), 1));
    parked.ack("meta", e.lease());
    // A GET WITH_META parked before the publish.
    parked.send(&Request::GetWithMeta {
        queue: "meta",
        wait_ms: u32::MAX,
        max: 1,
    });
    wait_qstat(&server, "meta", "waiters", 1);
    c.publish("m.four", b"p4");
    let e = envelopes(&parked.reply()).remove(0);
    assert_eq!((e.subject.as_deref(), e.attempt), (Some("m.four"), 0));

    // A request's copy carries its reply address.
    let mut requester = Conn::open(&server);
    requester.send_req("m.req", LONG_MS, b"q");
    wait_qstat(&server, "meta", "ready", 1);
    let e = c.peek_meta("meta", 1).remove(0);
    assert_eq!(e.tags, [1, 2]);
    let address = e.reply_to.expect("REPLY_TO");
    let e = c.get_meta("meta", 1).remove(0);
    assert_eq!(e.reply_to, Some(address));
    assert!(c.reply_to(address, b"a"));
    assert_eq!(
        decode(&requester.reply()),
        Response::Reply { payload: b"a" }
    );

    // Without the flag: MESSAGES and LEASED exactly as before.
    c.publish("m.five", b"p5");
    assert_eq!(
        call(&mut c.s, &get_frame(b"meta", 0, 10)),
        messages_reply(&[b"p5"])
    );
    c.publish("m.six", b"p6");
    let leased = parse_leased(&call(&mut c.s, &lease_frame(b"meta", 0, 1, 60_000, 0, 0)));
    assert_eq!(leased.len(), 1);
    assert_eq!((leased[0].1, leased[0].2.as_slice()), (1, &b"p6"[..]));
}

/// Payloads over `BMAXMESSAGESIZE` are cut: `PUB` says both lengths, its copies and
/// events carry the cut payload; `REQ` and `REPLY` are cut without a word.
#[test]
fn oversized_payloads_are_cut() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "1K")]);
    let mut c = Conn::open(&server);
    c.bind("big.*", "big");
    let mut watcher = Conn::open(&server);
    watcher.sub("big.*");
    let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let p = c.publish("big.pub", &payload);
    assert_eq!(pub_result(&p), (1, 1, 5000, 1024, 0, 0));
    assert_eq!(c.get("big", 1), [&payload[..1024]]);
    assert_eq!(watcher.event().payload, &payload[..1024]);
    assert_eq!(qstat(&server, "big", "truncations"), Some(1));

    // A payload of 3 MB declared, streamed in pieces.
    let big = vec![b'z'; 3_000_000];
    let mut frame = Vec::new();
    publish("big.stream", &big).encode(&mut frame).unwrap();
    for piece in frame.chunks(64 * 1024) {
        c.send_raw(piece);
    }
    let p = published(&c.reply());
    assert_eq!((p.original_len, p.stored_len), (3_000_000, 1024));
    assert_eq!(c.get("big", 1), [&big[..1024]]);
    assert_eq!(watcher.event().payload.len(), 1024);

    let mut requester = Conn::open(&server);
    requester.send_req("big.req", LONG_MS, &payload);
    let e = watcher.event();
    assert_eq!(e.payload, &payload[..1024]);
    let copy = c.get_meta("big", 1).remove(0);
    assert_eq!(copy.payload, &payload[..1024]);
    assert!(watcher.reply_to(e.reply_to.unwrap(), &big));
    let reply = requester.reply();
    assert_eq!(
        decode(&reply),
        Response::Reply {
            payload: &big[..1024]
        }
    );
    requester.ping();
}

// ---------------------------------------------------------------------------
// Durability (15.10)
// ---------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed when dropped.
struct DataDir(std::path::PathBuf);

impl DataDir {
    fn new(tag: &str) -> DataDir {
        let path = std::env::temp_dir().join(format!("beuss-fanout-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp data dir");
        DataDir(path)
    }

    fn start(&self) -> TestServer {
        TestServer::start_with(&[("BDATADIR", self.0.to_str().expect("UTF-8 temp path"))])
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bindings (and an `UNBIND`) survive a clean stop and a `kill -9`; copies keep their
/// subject and reply address; subscriptions, waits and reply addresses do not.
#[test]
fn bindings_survive_restart_subscriptions_do_not() {
    for (tag, signal) in [("term", libc::SIGTERM), ("kill", libc::SIGKILL)] {
        let dir = DataDir::new(tag);
        let server = dir.start();
        let mut c = Conn::open(&server);
        assert!(c.bind("d.*", "dq1"));
        assert!(c.bind("d.>", "dq2"));
        assert!(c.bind("d.>", "dq1"));
        assert!(c.bind("x", "dq3"));
        assert!(c.unbind("x", "dq3"));
        assert!(c.unbind("d.>", "dq1"));
        let mut s = Conn::open(&server);
        s.sub("d.>");
        assert_eq!(c.publish("d.a", b"one").queues, 2);
        let mut requester = Conn::open(&server);
        requester.send_req("d.b", LONG_MS, b"question");
        assert_eq!(s.event().payload, b"one");
        let address = s.event().reply_to.expect("REPLY_TO");
        let mut publisher = Conn::open(&server);
        publisher.send(&confirmed("d.c", b"confirm me", 1, LONG_MS));
        server.wait_for_stat("waiting", 2);
        // A fresh connection's STATS comes after the records of everything above.
        assert_eq!(server.stat("messages"), 6);

        let server = {
            server.stop_with(signal);
            dir.start()
        };
        let mut c = Conn::open(&server);
        assert_eq!(
            stats(
                &server,
                &["bindings", "subscriptions", "waiting", "messages"]
            ),
            [2, 0, 0, 6],
            "{tag}"
        );
        assert_eq!(qstat(&server, "dq1", "bindings"), Some(1), "{tag}");
        assert_eq!(qstat(&server, "dq2", "bindings"), Some(1), "{tag}");
        let copies = c.get_meta("dq1", 10);
        let got: Vec<(Option<&str>, &[u8])> = copies
            .iter()
            .map(|e| (e.subject.as_deref(), e.payload.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("d.a"), &b"one"[..]),
                (Some("d.b"), b"question"),
                (Some("d.c"), b"confirm me")
            ],
            "{tag}"
        );
        // Reply addresses are not journalled (STORAGE.md): the copy loses its own.
        assert_eq!(copies[1].reply_to, None, "{tag}");
        assert!(
            !c.reply_to(address, b"after restart"),
            "{tag}: nobody waits"
        );
        // The bindings route as before; UNBINDs stayed undone.
        assert_eq!(c.publish("d.z", b"two").queues, 2, "{tag}");
        assert_eq!(c.publish("d.z.z", b"three").queues, 1, "{tag}");
        assert_eq!(c.publish("x", b"four").queues, 0, "{tag}");
        let r = c.publish("d.q", b"five");
        assert_eq!(r.subscribers, 0, "{tag}: no subscription survives");
    }
}

/// A stop answers the waiting `PUB` and `REQ` with `SHUTTING_DOWN`, and a subscriber
/// gets it too, with no event after it.
#[test]
fn stop_ends_waits_with_shutting_down() {
    let server = TestServer::start();
    let mut c = Conn::open(&server);
    c.bind("stop.*", "sq");
    let mut watcher = Conn::open(&server);
    watcher.sub("stop.*");
    let mut publisher = Conn::open(&server);
    publisher.send(&confirmed("stop.p", b"p", 1, LONG_MS));
    let mut requester = Conn::open(&server);
    requester.send_req("stop.r", LONG_MS, b"r");
    server.wait_for_stat("waiting", 2);
    assert_eq!(watcher.event().payload, b"p");
    assert_eq!(watcher.event().payload, b"r");
    server.stop_with(libc::SIGTERM);
    for conn in [&mut publisher, &mut requester, &mut watcher] {
        expect_fatal_error(&mut conn.s, 10);
    }
}

// ---------------------------------------------------------------------------
// STATS (15.11)
// ---------------------------------------------------------------------------

/// The server figures of 15.11 and the queue figure `bindings`, moving as documented.
#[test]
fn stats_figures_move_as_documented() {
    const NAMES: [&str; 13] = [
        "bindings",
        "subscriptions",
        "published",
        "routed_copies",
        "unroutable",
        "events",
        "slow_consumer_drops",
        "requests",
        "replies",
        "late_replies",
        "no_responders",
        "confirmed",
        "waiting",
    ];
    let server = TestServer::start();
    let figures = |server: &TestServer| -> Vec<u64> { stats(server, &NAMES) };
    let mut expect = [0u64; 13];
    let mut check = |server: &TestServer, changes: &[(&str, u64)], what: &str| {
        for (name, value) in changes {
            let at = NAMES.iter().position(|n| n == name).unwrap();
            expect[at] = *value;
        }
        assert_eq!(figures(server), expect, "after {what}");
    };
    check(&server, &[], "start");
    let mut c = Conn::open(&server);
    c.bind("s.*", "sq1");
    c.bind("s.>", "sq1");
    c.bind("s.>", "sq2");
    check(&server, &[("bindings", 3)], "3 BINDs");
    assert_eq!(qstat(&server, "sq1", "bindings"), Some(2));
    let mut watcher = Conn::open(&server);
    watcher.sub("s.>");
    check(&server, &[("subscriptions", 1)], "SUB");
    c.publish("s.a", b"1");
    assert_eq!(watcher.event().payload, b"1");
    check(
        &server,
        &[("published", 1), ("routed_copies", 2), ("events", 1)],
        "a PUB to 2 queues and 1 subscriber",
    );
    c.publish("none", b"1");
    check(
        &server,
        &[("published", 2), ("unroutable", 1)],
        "an unroutable PUB",
    );
    soft_error(&c.call(&confirmed("s.a", b"1", 3, 1000)), TOO_FEW_COPIES);
    check(&server, &[], "a refused PUB");
    c.send_req("none", 1000, b"?");
    soft_error(&c.reply(), NO_RESPONDERS);
    check(
        &server,
        &[("requests", 1), ("no_responders", 1)],
        "NO_RESPONDERS",
    );
    let mut requester = Conn::open(&server);
    requester.send_req("s.b", LONG_MS, b"?");
    let e = watcher.event();
    assert_eq!(e.payload, b"?");
    let address = e.reply_to.expect("REPLY_TO");
    check(
        &server,
        &[
            ("requests", 2),
            ("routed_copies", 4),
            ("events", 2),
            ("waiting", 1),
        ],
        "a waiting REQ",
    );
    assert!(watcher.reply_to(address, b"!"));
    requester.reply();
    check(&server, &[("replies", 1), ("waiting", 0)], "its REPLY");
    assert!(!watcher.reply_to(address, b"!"));
    check(&server, &[("late_replies", 1)], "a late REPLY");
    c.purge_all(&["sq1", "sq2"]);
    requester.send(&confirmed("s.c", b"c", 1, LONG_MS));
    watcher.event();
    check(
        &server,
        &[
            ("published", 3),
            ("routed_copies", 6),
            ("events", 3),
            ("waiting", 1),
        ],
        "a waiting confirmed PUB",
    );
    assert_eq!(c.get("sq1", 1), [b"c"]);
    published(&requester.reply());
    check(
        &server,
        &[("confirmed", 1), ("waiting", 0)],
        "its confirmation",
    );
    assert!(watcher.unsub(1));
    check(&server, &[("subscriptions", 0)], "UNSUB");
    assert!(c.unbind("s.>", "sq1"));
    check(&server, &[("bindings", 2)], "UNBIND");
    assert_eq!(qstat(&server, "sq1", "bindings"), Some(1));
}
