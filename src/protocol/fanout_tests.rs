//! Unit tests for the version-3 codec (fan-out, protocol.md section 15).

use super::super::tests::{check_decoders, check_documented_examples, encode_response, hex};
use super::super::*;
use super::check_subject_syntax;

fn encode(request: &Request<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    request.encode(&mut buf).expect("encodable");
    buf
}

fn decode(buf: &[u8]) -> Result<Option<(Decoded<'_>, usize)>, ProtocolError> {
    decode_request(buf, 1 << 20)
}

fn err(buf: &[u8]) -> ProtocolError {
    match decode(buf) {
        Err(e) => e,
        other => panic!("{other:?}"),
    }
}

fn frame(opcode: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut buf = ((body.len() + 2) as u32).to_be_bytes().to_vec();
    buf.push(opcode);
    buf.push(flags);
    buf.extend_from_slice(body);
    buf
}

fn name(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// A `PUB` body built by hand.
fn pub_body(
    subject: &[u8],
    delay_ms: u32,
    priority: u8,
    confirm: u32,
    timeout_ms: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = name(subject);
    b.extend(delay_ms.to_be_bytes());
    b.push(priority);
    b.extend(confirm.to_be_bytes());
    b.extend(timeout_ms.to_be_bytes());
    b.extend(payload);
    b
}

/// A `REQ` body built by hand.
fn req_body(subject: &[u8], timeout_ms: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = name(subject);
    b.extend(timeout_ms.to_be_bytes());
    b.extend(payload);
    b
}

fn long_subject() -> &'static str {
    static SUBJECT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // 64 tokens of 3 bytes and 63 dots: 255 bytes.
    SUBJECT.get_or_init(|| vec!["abc"; 64].join(".")[..255].to_owned())
}

/// Every version-3 request, covering the edges of each field.
fn samples() -> Vec<Request<'static>> {
    static PAYLOAD: [u8; 300] = [0x5A; 300];
    vec![
        Request::Bind {
            pattern: "orders.*.created",
            queue: "audit",
        },
        Request::Bind {
            pattern: ">",
            queue: "everything",
        },
        Request::Unbind {
            pattern: "orders.>",
            queue: "audit",
        },
        Request::Publish {
            subject: "orders.eu.created",
            delay_ms: 0,
            priority: 5,
            confirm: 0,
            timeout_ms: 0,
            payload: b"hello",
        },
        Request::Publish {
            subject: long_subject(),
            delay_ms: MAX_DELAY_MS,
            priority: MAX_PRIORITY,
            confirm: u32::MAX,
            timeout_ms: MAX_LEASE_MS,
            payload: &PAYLOAD,
        },
        // Without confirm, timeout_ms is not checked but kept as sent.
        Request::Publish {
            subject: "caf\u{e9}.\u{1F600}",
            delay_ms: 1,
            priority: 0,
            confirm: 0,
            timeout_ms: u32::MAX,
            payload: b"",
        },
        Request::Subscribe { pattern: "*" },
        Request::Subscribe { pattern: "a.*.b.>" },
        Request::Unsubscribe { sid: 1 },
        Request::Unsubscribe { sid: 0 },
        Request::Unsubscribe { sid: u32::MAX },
        Request::Req {
            subject: "svc.time",
            timeout_ms: 1,
            payload: b"now?",
        },
        Request::Req {
            subject: "x",
            timeout_ms: MAX_LEASE_MS,
            payload: b"",
        },
        Request::Reply {
            reply_to: 1,
            payload: b"12:00",
        },
        Request::Reply {
            reply_to: 0,
            payload: b"",
        },
        Request::Reply {
            reply_to: u64::MAX,
            payload: &PAYLOAD,
        },
        Request::GetWithMeta {
            queue: "audit",
            wait_ms: WAIT_FOREVER,
            max: 10,
        },
        Request::LeaseWithMeta {
            queue: "audit",
            wait_ms: 5000,
            max: 1,
            lease_ms: MAX_LEASE_MS,
            max_deliveries: NEVER_DEAD,
            detached: true,
        },
        Request::PeekWithMeta {
            queue: "audit.dead",
            max: u16::MAX,
        },
    ]
}

/// Frames for the fuzz tests of `tests.rs`: every sample request and reply.
pub(crate) fn fuzz_seeds() -> Vec<Vec<u8>> {
    let mut frames: Vec<Vec<u8>> = samples().iter().map(encode).collect();
    frames.extend(sample_replies().into_iter().map(|(f, _)| f));
    frames
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Every version-3 request decodes back to itself from its whole frame only (every
/// shorter prefix is "not yet"), consuming exactly the frame, and re-encodes to the
/// same bytes; the opcode byte is the variant's.
#[test]
fn version_3_requests_round_trip() {
    for request in samples() {
        let buf = encode(&request);
        assert_eq!(buf[LEN_PREFIX], request.opcode() as u8, "{request:?}");
        let declared = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(declared, buf.len() - LEN_PREFIX, "{request:?}");
        for end in 0..buf.len() {
            assert_eq!(decode(&buf[..end]), Ok(None), "{request:?} at {end}");
        }
        assert_eq!(
            decode(&buf),
            Ok(Some((Decoded::Request(request), buf.len()))),
            "{request:?}"
        );
        check_decoders(&buf, 1 << 20, 1 << 20);
    }
}

/// The exact bytes of each new request, as protocol.md 15 lays them out.
#[test]
fn version_3_request_layouts() {
    assert_eq!(
        encode(&Request::Bind {
            pattern: "a.*",
            queue: "q"
        }),
        [0, 0, 0, 8, 0x30, 0, 3, b'a', b'.', b'*', 1, b'q']
    );
    assert_eq!(
        encode(&Request::Unbind {
            pattern: "a",
            queue: "q"
        }),
        [0, 0, 0, 6, 0x31, 0, 1, b'a', 1, b'q']
    );
    assert_eq!(
        encode(&Request::Publish {
            subject: "a.b",
            delay_ms: 0x0102_0304,
            priority: 9,
            confirm: 0x0A0B_0C0D,
            timeout_ms: 0x0000_1388,
            payload: b"xy",
        }),
        [
            0, 0, 0, 21, 0x32, 0, 3, b'a', b'.', b'b', 1, 2, 3, 4, 9, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0,
            0x13, 0x88, b'x', b'y'
        ]
    );
    assert_eq!(
        encode(&Request::Subscribe { pattern: ">" }),
        [0, 0, 0, 4, 0x33, 0, 1, b'>']
    );
    assert_eq!(
        encode(&Request::Unsubscribe { sid: 0x0102_0304 }),
        [0, 0, 0, 6, 0x34, 0, 1, 2, 3, 4]
    );
    assert_eq!(
        encode(&Request::Req {
            subject: "s",
            timeout_ms: 1000,
            payload: b"?",
        }),
        [0, 0, 0, 9, 0x35, 0, 1, b's', 0, 0, 0x03, 0xE8, b'?']
    );
    assert_eq!(
        encode(&Request::Reply {
            reply_to: 0x0102_0304_0506_0708,
            payload: b"ok",
        }),
        [0, 0, 0, 12, 0x36, 0, 1, 2, 3, 4, 5, 6, 7, 8, b'o', b'k']
    );
}

/// `WITH_META` is the plain request's frame with flag 0x02 set, and decodes to the
/// `...WithMeta` variant; without it GET, LEASE and PEEK are byte for byte what
/// versions 1 and 2 sent, and decode to the plain variants.
#[test]
fn with_meta_is_a_flag_on_the_unchanged_layouts() {
    let pairs = [
        (
            Request::Get {
                queue: "q",
                wait_ms: 7,
                max: 2,
            },
            Request::GetWithMeta {
                queue: "q",
                wait_ms: 7,
                max: 2,
            },
        ),
        (
            Request::Lease {
                queue: "q",
                wait_ms: 7,
                max: 2,
                lease_ms: 30_000,
                max_deliveries: 0,
                detached: false,
            },
            Request::LeaseWithMeta {
                queue: "q",
                wait_ms: 7,
                max: 2,
                lease_ms: 30_000,
                max_deliveries: 0,
                detached: false,
            },
        ),
        (
            Request::Peek { queue: "q", max: 2 },
            Request::PeekWithMeta { queue: "q", max: 2 },
        ),
    ];
    for (plain, meta) in pairs {
        let plain_bytes = encode(&plain);
        let meta_bytes = encode(&meta);
        assert_eq!(plain_bytes[LEN_PREFIX + 1], 0, "{plain:?}");
        let mut expected = plain_bytes.clone();
        expected[LEN_PREFIX + 1] = WITH_META;
        assert_eq!(meta_bytes, expected, "{meta:?}");
        assert_eq!(meta.opcode(), plain.opcode());
        assert_eq!(
            decode(&plain_bytes),
            Ok(Some((Decoded::Request(plain), plain_bytes.len())))
        );
        assert_eq!(
            decode(&meta_bytes),
            Ok(Some((Decoded::Request(meta), meta_bytes.len())))
        );
        // Any other bit, alone or with WITH_META, is BAD_FLAGS from 6 bytes.
        for flags in [0x01, 0x03, 0x04, 0x80] {
            let mut bad = plain_bytes.clone();
            bad[LEN_PREFIX + 1] = flags;
            assert_eq!(
                decode(&bad[..REQUEST_HEADER]),
                Err(ProtocolError::BadFlags(flags))
            );
        }
    }
    // The exact GET bytes of protocol.md 10.3, and the same with the flag.
    let get = hex("00 00 00 0d 11 02 04 6a 6f 62 73 00 00 00 00 00 01");
    assert_eq!(
        decode(&get),
        Ok(Some((
            Decoded::Request(Request::GetWithMeta {
                queue: "jobs",
                wait_ms: 0,
                max: 1
            }),
            get.len()
        )))
    );
    // WITH_META means nothing on any other opcode.
    for (opcode, body) in [
        (0x10, name(b"q")),
        (0x12, name(b"q")),
        (0x33, name(b"a")),
        (0x32, pub_body(b"a", 0, 0, 0, 0, b"")),
        (0x02, vec![]),
    ] {
        assert_eq!(
            err(&frame(opcode, WITH_META, &body)),
            ProtocolError::BadFlags(WITH_META),
            "opcode {opcode:#x}"
        );
    }
}

/// The subject and pattern rules of protocol.md 15.1, one row per rule: what is
/// accepted as a publish subject, what only as a pattern, and the text of each
/// rejection (which names the rule and the byte).
#[test]
fn subject_and_pattern_rules() {
    // (text, valid as a subject, valid as a pattern)
    let valid = [
        ("a", true, true),
        ("orders.eu.created", true, true),
        ("caf\u{e9}.\u{1F600}", true, true),
        ("a-b_c:d/e\\f#g", true, true),
        ("*", false, true),
        (">", false, true),
        ("a.*", false, true),
        ("*.b", false, true),
        ("a.*.c", false, true),
        ("a.>", false, true),
        ("*.*.>", false, true),
    ];
    for (s, subject, pattern) in valid {
        assert_eq!(check_subject_syntax(s, false).is_ok(), subject, "{s:?}");
        assert_eq!(check_subject_syntax(s, true).is_ok(), pattern, "{s:?}");
    }
    assert!(check_subject_syntax(long_subject(), false).is_ok());
    // (text, expected error as a subject and as a pattern)
    let invalid: &[(&str, &str)] = &[
        ("", "empty"),
        (".", "empty token at byte 0"),
        (".a", "empty token at byte 0"),
        ("a.", "empty token at byte 2"),
        ("a..b", "empty token at byte 2"),
        ("abcd..x", "empty token at byte 5"),
        ("a b", "space at byte 1"),
        ("a. b", "space at byte 2"),
        ("a\tb", "control character 0x09 at byte 1"),
        ("a.\u{0}", "control character 0x00 at byte 2"),
        ("\u{1f}", "control character 0x1f at byte 0"),
        ("a\u{7f}", "control character 0x7f at byte 1"),
        ("a*", "'*' inside a token at byte 1"),
        ("*a", "'*' inside a token at byte 0"),
        ("a.b*c", "'*' inside a token at byte 3"),
        ("**", "'*' inside a token at byte 0"),
        ("a>", "'>' inside a token at byte 1"),
        (">b", "'>' inside a token at byte 0"),
        (">>", "'>' inside a token at byte 0"),
    ];
    for &(s, why) in invalid {
        assert_eq!(check_subject_syntax(s, true), Err(why.to_owned()), "{s:?}");
        assert_eq!(check_subject_syntax(s, false), Err(why.to_owned()), "{s:?}");
    }
    // '>' elsewhere than last: a bad pattern (in a subject, a wildcard at all is).
    for (s, why) in [
        ("a.>.b", "'>' must be the last token (byte 2)"),
        (">.a", "'>' must be the last token (byte 0)"),
        (">.>", "'>' must be the last token (byte 0)"),
        ("*.>.*", "'>' must be the last token (byte 2)"),
    ] {
        assert_eq!(check_subject_syntax(s, true), Err(why.to_owned()), "{s:?}");
        assert!(check_subject_syntax(s, false).is_err(), "{s:?}");
    }
    // Wildcards are refused in a publish subject only.
    for (s, why) in [
        ("*", "wildcard in a publish subject at byte 0"),
        (">", "wildcard in a publish subject at byte 0"),
        ("a.*.c", "wildcard in a publish subject at byte 2"),
        ("orders.>", "wildcard in a publish subject at byte 7"),
    ] {
        assert_eq!(check_subject_syntax(s, false), Err(why.to_owned()), "{s:?}");
    }
    // A rule broken early wins over one broken later.
    assert_eq!(
        check_subject_syntax("a..b c", true),
        Err("empty token at byte 2".to_owned())
    );
}

/// Every request that carries a subject or pattern refuses a bad one with
/// BAD_SUBJECT, whose text names the field, quotes it and says what is wrong; PUB and
/// REQ refuse wildcards, BIND, UNBIND and SUB take them.
#[test]
fn bad_subjects_are_refused_by_every_request() {
    let bind = |p: &[u8]| {
        let mut b = name(p);
        b.extend(name(b"q"));
        b
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            frame(0x30, 0, &bind(b"a..b")),
            "bad pattern \"a..b\": empty token at byte 2",
        ),
        (
            frame(0x31, 0, &bind(b"a.>.b")),
            "bad pattern \"a.>.b\": '>' must be the last token (byte 2)",
        ),
        (
            frame(0x33, 0, &name(b"a*")),
            "bad pattern \"a*\": '*' inside a token at byte 1",
        ),
        (frame(0x33, 0, &name(b"")), "bad pattern: empty"),
        (
            frame(0x33, 0, &name(b"a\n")),
            "bad pattern \"a\\n\": control character 0x0a at byte 1",
        ),
        (
            frame(0x33, 0, &name(&[b'a', 0xFF])),
            "bad pattern: not valid UTF-8",
        ),
        (
            frame(0x32, 0, &pub_body(b"a.*", 0, 0, 0, 0, b"x")),
            "bad subject \"a.*\": wildcard in a publish subject at byte 2",
        ),
        (
            frame(0x32, 0, &pub_body(b"", 0, 0, 0, 0, b"")),
            "bad subject: empty",
        ),
        (
            frame(0x32, 0, &pub_body(b"a b", 0, 0, 0, 0, b"")),
            "bad subject \"a b\": space at byte 1",
        ),
        (
            frame(0x35, 0, &req_body(b">", 1, b"")),
            "bad subject \">\": wildcard in a publish subject at byte 0",
        ),
        (
            frame(0x35, 0, &req_body(&[0xC3], 1, b"")),
            "bad subject: not valid UTF-8",
        ),
    ];
    for (buf, text) in cases {
        let e = err(&buf);
        assert_eq!(e, ProtocolError::BadSubject(text.to_owned()), "{buf:02x?}");
        assert_eq!(e.code(), ErrorCode::BadSubject);
        assert_eq!(e.to_string(), text);
    }
    // Patterns with wildcards are fine in BIND, UNBIND and SUB.
    for buf in [
        frame(0x30, 0, &bind(b"*.>")),
        frame(0x31, 0, &bind(b">")),
        frame(0x33, 0, &name(b"a.*")),
    ] {
        assert!(matches!(decode(&buf), Ok(Some((Decoded::Request(_), _)))));
    }
}

/// The checks run in the order of protocol.md 2.5: structure (MALFORMED) before the
/// subject or pattern (BAD_SUBJECT), before the queue name (BAD_QUEUE_NAME), before
/// the values (BAD_ARGUMENT); trailing bytes and short fields are MALFORMED.
#[test]
fn version_3_check_order() {
    let bind = |p: &[u8], q: &[u8]| {
        let mut b = name(p);
        b.extend(name(q));
        b
    };
    // Structure first: a bad pattern with a trailing byte is MALFORMED.
    let mut trailing = bind(b"a..b", b"q");
    trailing.push(0);
    assert_eq!(
        err(&frame(0x30, 0, &trailing)),
        ProtocolError::TrailingBytes(1)
    );
    // Pattern before queue name, in field order.
    assert!(matches!(
        err(&frame(0x30, 0, &bind(b"a..b", b""))),
        ProtocolError::BadSubject(_)
    ));
    assert_eq!(
        err(&frame(0x30, 0, &bind(b"a.b", b""))),
        ProtocolError::BadQueueName("empty")
    );
    assert_eq!(
        err(&frame(0x31, 0, &bind(b"a", &[0xFF]))),
        ProtocolError::BadQueueName("not valid UTF-8")
    );
    // Subject before values.
    assert!(matches!(
        err(&frame(0x32, 0, &pub_body(b"a.>", 0, 10, 0, 0, b""))),
        ProtocolError::BadSubject(_)
    ));
    assert!(matches!(
        err(&frame(0x35, 0, &req_body(b"*", 0, b""))),
        ProtocolError::BadSubject(_)
    ));
    // Short and trailing fields of every control request.
    let short: Vec<(Vec<u8>, ProtocolError)> = vec![
        (
            frame(0x30, 0, &[]),
            ProtocolError::ShortField("pattern_len"),
        ),
        (
            frame(0x30, 0, &[3, b'a']),
            ProtocolError::ShortField("pattern"),
        ),
        (
            frame(0x30, 0, &name(b"a")),
            ProtocolError::ShortField("queue_len"),
        ),
        (
            frame(0x31, 0, &[1, b'a', 2, b'q']),
            ProtocolError::ShortField("queue"),
        ),
        (
            frame(0x33, 0, &[]),
            ProtocolError::ShortField("pattern_len"),
        ),
        (
            frame(0x33, 0, &[2, b'a']),
            ProtocolError::ShortField("pattern"),
        ),
        (
            frame(0x33, 0, &[1, b'a', b'b']),
            ProtocolError::TrailingBytes(1),
        ),
        (frame(0x34, 0, &[0, 0, 1]), ProtocolError::ShortField("sid")),
        (
            frame(0x34, 0, &[0, 0, 0, 1, 0]),
            ProtocolError::TrailingBytes(1),
        ),
        (
            frame(0x31, 0, &[bind(b"a", b"q"), vec![1, 2]].concat()),
            ProtocolError::TrailingBytes(2),
        ),
    ];
    for (buf, expected) in short {
        assert_eq!(err(&buf), expected, "{buf:02x?}");
        assert_eq!(err(&buf).code(), ErrorCode::Malformed);
    }
}

/// Values out of range are BAD_ARGUMENT: PUB priority over 9 or delay over 30 days;
/// a confirm with timeout 0 or over 12 hours; a REQ timeout of 0 or over 12 hours.
/// The edges themselves are accepted, and a timeout is not checked without confirm.
#[test]
fn version_3_bad_arguments() {
    let bad = [
        frame(0x32, 0, &pub_body(b"s", 0, MAX_PRIORITY + 1, 0, 0, b"")),
        frame(0x32, 0, &pub_body(b"s", MAX_DELAY_MS + 1, 0, 0, 0, b"")),
        frame(0x32, 0, &pub_body(b"s", 0, 0, 1, 0, b"")),
        frame(0x32, 0, &pub_body(b"s", 0, 0, 1, MAX_LEASE_MS + 1, b"")),
        frame(0x35, 0, &req_body(b"s", 0, b"")),
        frame(0x35, 0, &req_body(b"s", MAX_LEASE_MS + 1, b"")),
        frame(0x35, 0, &req_body(b"s", u32::MAX, b"x")),
    ];
    for buf in bad {
        let e = err(&buf);
        assert!(
            matches!(e, ProtocolError::BadArgument(_)),
            "{buf:02x?}: {e}"
        );
        assert_eq!(e.code(), ErrorCode::BadArgument);
    }
    let good = [
        frame(
            0x32,
            0,
            &pub_body(b"s", MAX_DELAY_MS, MAX_PRIORITY, 0, 0, b""),
        ),
        frame(0x32, 0, &pub_body(b"s", 0, 0, 0, u32::MAX, b"")),
        frame(0x32, 0, &pub_body(b"s", 0, 0, 1, 1, b"")),
        frame(0x32, 0, &pub_body(b"s", 0, 0, u32::MAX, MAX_LEASE_MS, b"")),
        frame(0x35, 0, &req_body(b"s", 1, b"")),
        frame(0x35, 0, &req_body(b"s", MAX_LEASE_MS, b"")),
    ];
    for buf in good {
        assert!(
            matches!(decode(&buf), Ok(Some((Decoded::Request(_), _)))),
            "{buf:02x?}"
        );
    }
}

/// The streamed requests' heads are checked as their bytes arrive, structure first:
/// a PUB or REQ of length 2 is MALFORMED from 6 bytes; a subject, or the fields after
/// it, that would run past the frame is MALFORMED from 7 bytes, before the subject is
/// in; a REPLY too short for its reply_to is MALFORMED from 6 bytes.
#[test]
fn streamed_heads_are_checked_as_they_arrive() {
    let head = |opcode: u8, len: u32, rest: &[u8]| {
        let mut b = len.to_be_bytes().to_vec();
        b.extend([opcode, 0]);
        b.extend(rest);
        b
    };
    assert_eq!(
        decode(&head(0x32, 2, &[])),
        Err(ProtocolError::ShortField("subject_len"))
    );
    assert_eq!(
        decode(&head(0x35, 2, &[])),
        Err(ProtocolError::ShortField("subject_len"))
    );
    // length 2 + 1 + 4: the subject alone would not fit.
    assert_eq!(
        decode(&head(0x32, 7, &[5])),
        Err(ProtocolError::ShortField("subject"))
    );
    // The subject fits, its 13 bytes of fields do not.
    assert_eq!(
        decode(&head(0x32, 2 + 1 + 1 + 12, &[1])),
        Err(ProtocolError::ShortField("publish fields"))
    );
    assert_eq!(
        decode(&head(0x32, 2 + 1 + 1 + 13, &[1])),
        Ok(None),
        "exactly room for the fields"
    );
    assert_eq!(
        decode(&head(0x35, 2 + 1 + 1 + 3, &[1])),
        Err(ProtocolError::ShortField("timeout_ms"))
    );
    assert_eq!(decode(&head(0x35, 2 + 1 + 1 + 4, &[1])), Ok(None));
    assert_eq!(
        decode(&head(0x36, 2 + 7, &[])),
        Err(ProtocolError::ShortField("reply_to"))
    );
    assert_eq!(decode(&head(0x36, 2 + 8, &[])), Ok(None));
    // A bad subject is reported once it is in, before the fields after it.
    assert!(matches!(
        decode(&head(0x32, 2 + 1 + 2 + 13 + 100, &[2, b'.', b'a'])),
        Err(ProtocolError::BadSubject(_))
    ));
    // Control frames of version 3 keep the 1024 cap, streamed ones have none.
    for opcode in [0x30, 0x31, 0x33, 0x34] {
        assert!(matches!(
            decode(&head(opcode, MAX_CONTROL_FRAME + 1, &[])[..5]),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }
    for opcode in [0x32, 0x35, 0x36] {
        assert_eq!(decode(&head(opcode, u32::MAX, &[])), Ok(None));
    }
}

/// A PUB, REQ or REPLY whose payload is over the limit comes back as a `BodyHead` as
/// soon as its fields are in, consuming only them, with everything checked; a
/// payload of exactly the limit is whole. `with_payload` rebuilds the request.
#[test]
fn oversized_payloads_stream_as_heads() {
    let limit = 3;
    for request in samples() {
        let (head, payload) = match request {
            Request::Publish {
                subject,
                delay_ms,
                priority,
                confirm,
                timeout_ms,
                payload,
            } => (
                BodyHead::Publish {
                    subject,
                    delay_ms,
                    priority,
                    confirm,
                    timeout_ms,
                },
                payload,
            ),
            Request::Req {
                subject,
                timeout_ms,
                payload,
            } => (
                BodyHead::Req {
                    subject,
                    timeout_ms,
                },
                payload,
            ),
            Request::Reply { reply_to, payload } => (BodyHead::Reply { reply_to }, payload),
            _ => continue,
        };
        assert_eq!(head.with_payload(payload), request);
        assert_eq!(head.opcode(), request.opcode());
        let buf = encode(&request);
        let head_end = buf.len() - payload.len();
        for end in 0..head_end {
            assert_eq!(decode_request(&buf[..end], limit), Ok(None), "{request:?}");
        }
        let expected = if payload.len() > limit {
            Some((
                Decoded::BodyHead {
                    head,
                    payload_len: payload.len() as u32,
                },
                head_end,
            ))
        } else {
            None
        };
        for end in head_end..=buf.len() {
            let got = decode_request(&buf[..end], limit);
            match &expected {
                Some(e) => assert_eq!(got, Ok(Some(*e)), "{request:?} at {end}"),
                None if end < buf.len() => assert_eq!(got, Ok(None)),
                None => assert_eq!(got, Ok(Some((Decoded::Request(request), buf.len())))),
            }
        }
        // The limit is inclusive: a payload of exactly max_payload is whole.
        assert_eq!(
            decode_request(&buf, payload.len()),
            Ok(Some((Decoded::Request(request), buf.len())))
        );
        check_decoders(&buf, limit, 1 << 20);
    }
    // A declared length of 2^32 - 1 is a head, not an error.
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend([0x36, 0]);
    huge.extend(7u64.to_be_bytes());
    assert_eq!(
        decode_request(&huge, 1 << 20),
        Ok(Some((
            Decoded::BodyHead {
                head: BodyHead::Reply { reply_to: 7 },
                payload_len: u32::MAX - 10,
            },
            huge.len()
        )))
    );
    // An oversized PUB still gets its values checked.
    let buf = frame(
        0x32,
        0,
        &pub_body(b"s", 0, MAX_PRIORITY + 1, 0, 0, &[0; 10]),
    );
    assert!(matches!(
        decode_request(&buf[..REQUEST_HEADER + 2 + 13], 1),
        Err(ProtocolError::BadArgument(_))
    ));
}

/// `encode` refuses what the decoder would refuse and then writes nothing: bad
/// subjects and patterns, wildcards in PUB and REQ, bad queue names, and values out
/// of range.
#[test]
fn encode_refuses_what_decode_refuses() {
    let long_queue = "q".repeat(256);
    let long_pattern = "a".repeat(256);
    let bad: Vec<(Request<'_>, ErrorCode)> = vec![
        (
            Request::Bind {
                pattern: "a..b",
                queue: "q",
            },
            ErrorCode::BadSubject,
        ),
        (
            Request::Bind {
                pattern: "a",
                queue: "",
            },
            ErrorCode::BadQueueName,
        ),
        (
            Request::Unbind {
                pattern: "a",
                queue: &long_queue,
            },
            ErrorCode::BadQueueName,
        ),
        (
            Request::Subscribe {
                pattern: &long_pattern,
            },
            ErrorCode::BadSubject,
        ),
        (Request::Subscribe { pattern: "" }, ErrorCode::BadSubject),
        (
            Request::Publish {
                subject: "a.*",
                delay_ms: 0,
                priority: 0,
                confirm: 0,
                timeout_ms: 0,
                payload: b"",
            },
            ErrorCode::BadSubject,
        ),
        (
            Request::Publish {
                subject: "a",
                delay_ms: 0,
                priority: 10,
                confirm: 0,
                timeout_ms: 0,
                payload: b"",
            },
            ErrorCode::BadArgument,
        ),
        (
            Request::Publish {
                subject: "a",
                delay_ms: 0,
                priority: 0,
                confirm: 2,
                timeout_ms: 0,
                payload: b"",
            },
            ErrorCode::BadArgument,
        ),
        (
            Request::Req {
                subject: ">",
                timeout_ms: 1,
                payload: b"",
            },
            ErrorCode::BadSubject,
        ),
        (
            Request::Req {
                subject: "a",
                timeout_ms: 0,
                payload: b"",
            },
            ErrorCode::BadArgument,
        ),
        (
            Request::GetWithMeta {
                queue: "",
                wait_ms: 0,
                max: 1,
            },
            ErrorCode::BadQueueName,
        ),
        (
            Request::PeekWithMeta { queue: "", max: 1 },
            ErrorCode::BadQueueName,
        ),
    ];
    for (request, code) in bad {
        let mut sink = Vec::new();
        let e = request.encode(&mut sink).expect_err("refused");
        assert_eq!(e.code(), code, "{request:?}: {e}");
        assert!(sink.is_empty(), "{request:?} wrote {sink:?}");
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

fn decode_one(buf: &[u8]) -> Response<'_> {
    match decode_response(buf, 1 << 24) {
        Ok(Some((r, n))) => {
            assert_eq!(n, buf.len(), "{buf:02x?}");
            r
        }
        other => panic!("{buf:02x?}: {other:?}"),
    }
}

fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::new();
    f(&mut buf);
    buf
}

const PUBLISHED: Published = Published {
    queues: 3,
    subscribers: 1,
    original_len: 2,
    stored_len: 2,
    acked: 2,
    failed: 0,
};

/// One frame of every version-3 reply, and what it decodes to.
fn sample_replies() -> Vec<(Vec<u8>, Response<'static>)> {
    let mut out = vec![
        (
            with(|b| encode_bound(b, true)),
            Response::Bound { created: true },
        ),
        (
            with(|b| encode_bound(b, false)),
            Response::Bound { created: false },
        ),
        (
            with(|b| encode_unbound(b, true)),
            Response::Unbound { removed: true },
        ),
        (
            with(|b| encode_published(b, &PUBLISHED)),
            Response::Published(PUBLISHED),
        ),
        (
            with(|b| encode_subscribed(b, u32::MAX)),
            Response::Subscribed { sid: u32::MAX },
        ),
        (
            with(|b| encode_unsubscribed(b, false)),
            Response::Unsubscribed { removed: false },
        ),
        (
            with(|b| encode_reply(b, b"12:00")),
            Response::Reply { payload: b"12:00" },
        ),
        (
            with(|b| encode_reply(b, b"")),
            Response::Reply { payload: b"" },
        ),
        (
            with(|b| encode_replied(b, true)),
            Response::Replied { delivered: true },
        ),
    ];
    let event = with(|b| encode_event(b, 7, Some("a.b"), Some(9), Some(2), b"xyz"));
    // The meta entries are borrowed from the frame; leak it to get 'static samples.
    let event: &'static [u8] = Vec::leak(event);
    out.push((event.to_vec(), decode_one(event)));
    let envelopes: &'static [u8] = Vec::leak(with(|b| {
        let mut w = EnvelopesWriter::begin(b);
        w.push(b, 1, 0, Some("orders.eu"), None, b"one");
        w.push(b, u64::MAX, u32::MAX, None, Some(5), b"");
        w.push(b, 3, 2, None, None, b"three");
        w.finish(b);
    }));
    out.push((envelopes.to_vec(), decode_one(envelopes)));
    out
}

/// Every version-3 reply decodes to what was written, consuming exactly its frame,
/// re-encodes to the same bytes, and every shorter prefix is "not yet".
#[test]
fn version_3_replies_round_trip() {
    for (buf, expected) in sample_replies() {
        assert_eq!(decode_one(&buf), expected);
        assert_eq!(encode_response(&expected), buf, "{expected:?}");
        for end in 0..buf.len() {
            assert_eq!(
                decode_response(&buf[..end], 1 << 20),
                Ok(None),
                "{expected:?}"
            );
        }
        check_decoders(&buf, 1 << 20, 1 << 20);
    }
}

/// The exact bytes of each reply, as protocol.md 15 lays them out.
#[test]
fn version_3_reply_layouts() {
    assert_eq!(with(|b| encode_bound(b, true)), [0, 0, 0, 2, 0x30, 1]);
    assert_eq!(with(|b| encode_unbound(b, false)), [0, 0, 0, 2, 0x31, 0]);
    assert_eq!(
        with(|b| encode_published(
            b,
            &Published {
                queues: 1,
                subscribers: 2,
                original_len: 3,
                stored_len: 4,
                acked: 5,
                failed: 6
            }
        )),
        [
            0, 0, 0, 25, 0x32, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0,
            6
        ]
    );
    assert_eq!(
        with(|b| encode_subscribed(b, 0x0102_0304)),
        [0, 0, 0, 5, 0x33, 1, 2, 3, 4]
    );
    assert_eq!(
        with(|b| encode_unsubscribed(b, true)),
        [0, 0, 0, 2, 0x34, 1]
    );
    assert_eq!(
        with(|b| encode_reply(b, b"ok")),
        [0, 0, 0, 3, 0x35, b'o', b'k']
    );
    assert_eq!(with(|b| encode_replied(b, false)), [0, 0, 0, 2, 0x36, 0]);
    assert_eq!(
        with(|b| encode_event(b, 1, Some("a"), Some(0x0102), Some(3), b"p")),
        [
            0, 0, 0, 27, 0x3F, 0, 0, 0, 1, 0, 19, 1, 1, b'a', 2, 8, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
            0, 0, 0, 3, b'p'
        ]
    );
    assert_eq!(
        with(|b| encode_event(b, 2, None, None, None, b"")),
        [0, 0, 0, 7, 0x3F, 0, 0, 0, 2, 0, 0]
    );
    let mut buf = Vec::new();
    let mut w = EnvelopesWriter::begin(&mut buf);
    w.push(&mut buf, 0x0102, 3, Some("s"), None, b"xy");
    w.finish(&mut buf);
    assert_eq!(
        buf,
        [
            0, 0, 0, 28, 0x37, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3, 0, 3, 1, 1, b's', 0,
            0, 0, 2, b'x', b'y'
        ]
    );
}

/// The metadata accessors find subject, reply address and drop count; an entry of a
/// tag this crate does not know is skipped wherever it is; an empty block has none.
#[test]
fn meta_skips_unknown_tags() {
    let entries = [
        9, 3, b'z', b'z', b'z', // unknown tag 9
        1, 3, b'a', b'.', b'b', // SUBJECT
        200, 0, // unknown tag 200, empty
        2, 8, 0, 0, 0, 0, 0, 0, 0, 42, // REPLY_TO
        3, 4, 0, 0, 0, 7, // DROPPED
        4, 1, 0xFF, // unknown tag 4
    ];
    let meta = Meta::parse(&entries).expect("valid");
    assert_eq!(meta.subject(), Some("a.b"));
    assert_eq!(meta.reply_to(), Some(42));
    assert_eq!(meta.dropped(), Some(7));
    assert_eq!(meta.as_bytes(), &entries[..]);
    assert_eq!(
        meta.iter().map(|(tag, _)| tag).collect::<Vec<_>>(),
        [9, 1, 200, 2, 3, 4]
    );
    let empty = Meta::parse(&[]).expect("valid");
    assert!(empty.is_empty());
    assert_eq!(
        (empty.subject(), empty.reply_to(), empty.dropped()),
        (None, None, None)
    );
    assert_eq!(empty, Meta::default());
    // An EVENT carrying unknown tags decodes, and its payload is intact.
    let mut body = 5u32.to_be_bytes().to_vec();
    body.extend((entries.len() as u16).to_be_bytes());
    body.extend(entries);
    body.extend(b"payload");
    let mut buf = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    buf.push(0x3F);
    buf.extend(&body);
    let Response::Event { sid, meta, payload } = decode_one(&buf) else {
        panic!();
    };
    assert_eq!(
        (sid, meta.reply_to(), payload),
        (5, Some(42), &b"payload"[..])
    );
    // encoded_meta_len is what encode_meta writes.
    for (s, r, d) in [
        (None, None, None),
        (Some("a.b"), None, None),
        (Some(long_subject()), Some(1), Some(2)),
        (None, Some(u64::MAX), None),
    ] {
        let buf = with(|b| encode_meta(b, s, r, d));
        assert_eq!(buf.len(), encoded_meta_len(s, r, d));
        let meta = Meta::parse(&buf[2..]).expect("valid");
        assert_eq!((meta.subject(), meta.reply_to(), meta.dropped()), (s, r, d));
    }
    // A subject too long for a name (never a valid one) is cut on a character
    // boundary, and the length written says so.
    let long = format!("{}\u{e9}", "a".repeat(254));
    let buf = with(|b| encode_meta(b, Some(&long), None, None));
    assert_eq!(buf.len(), encoded_meta_len(Some(&long), None, None));
    assert_eq!(
        Meta::parse(&buf[2..]).unwrap().subject(),
        Some(&long[..254])
    );
}

/// A metadata entry that runs past `meta_len` is MALFORMED, as is a `meta_len` past
/// the frame; a known tag of the wrong length or a subject that is not UTF-8 is
/// refused too; in EVENT and in ENVELOPES alike.
#[test]
fn malformed_meta_is_refused() {
    for entries in [&[1u8][..], &[1, 3, b'a', b'b'], &[9, 1], &[2, 8, 0, 0, 0]] {
        let e = Meta::parse(entries).expect_err("past the end");
        assert_eq!(e.code(), ErrorCode::Malformed, "{entries:?}");
    }
    for entries in [
        &[2u8, 4, 0, 0, 0, 1][..],
        &[3, 8, 0, 0, 0, 0, 0, 0, 0, 1],
        &[1, 1, 0xFF],
    ] {
        assert!(
            matches!(Meta::parse(entries), Err(ProtocolError::BadArgument(_))),
            "{entries:?}"
        );
    }
    let event = |meta_len: u16, entries: &[u8]| {
        let mut body = vec![0x3F, 0, 0, 0, 1];
        body.extend(meta_len.to_be_bytes());
        body.extend(entries);
        body.extend(b"xyz");
        let mut buf = (body.len() as u32).to_be_bytes().to_vec();
        buf.extend(body);
        buf
    };
    // An entry of 3 bytes declared inside a meta_len of 2.
    let buf = event(2, &[1, 1, b'a']);
    assert_eq!(
        decode_response(&buf, 1 << 20).map_err(|e| e.code()),
        Err(ErrorCode::Malformed)
    );
    // meta_len past the end of the frame.
    let buf = event(100, &[1, 1, b'a']);
    assert_eq!(
        decode_response(&buf, 1 << 20),
        Err(ProtocolError::ShortField("meta"))
    );
    // The same in an envelope.
    let mut body = vec![0x37, 0, 0, 0, 1];
    body.extend(1u64.to_be_bytes());
    body.extend(1u32.to_be_bytes());
    body.extend(2u16.to_be_bytes());
    body.extend([1, 1, b'a']);
    body.extend(0u32.to_be_bytes());
    let mut buf = (body.len() as u32).to_be_bytes().to_vec();
    buf.extend(body);
    assert_eq!(
        decode_response(&buf, 1 << 20).map_err(|e| e.code()),
        Err(ErrorCode::Malformed)
    );
}

/// ENVELOPES lists id, attempt, metadata and payload of each message, in order; the
/// writer can be dropped back to its start, and counts what it pushed.
#[test]
fn envelopes_writer_and_iterator() {
    let mut buf = vec![0xEE; 3];
    let mut w = EnvelopesWriter::begin(&mut buf);
    assert_eq!(w.start(), 3);
    w.push(&mut buf, 10, 1, Some("a.b"), Some(77), b"first");
    w.push(&mut buf, 11, 0, None, None, b"");
    w.push(&mut buf, 12, 4, Some("c"), None, &[0; 1000]);
    assert_eq!(w.count(), 3);
    w.finish(&mut buf);
    let Response::Envelopes(envelopes) = decode_one(&buf[3..]) else {
        panic!();
    };
    assert_eq!(envelopes.len(), 3);
    assert!(!envelopes.is_empty());
    let got: Vec<_> = envelopes
        .iter()
        .map(|e| {
            (
                e.id,
                e.attempt,
                e.meta.subject(),
                e.meta.reply_to(),
                e.payload.len(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (10, 1, Some("a.b"), Some(77), 5),
            (11, 0, None, None, 0),
            (12, 4, Some("c"), None, 1000)
        ]
    );
    let first = envelopes.into_iter().next().unwrap();
    assert_eq!(first.lease(), LeaseRef { id: 10, attempt: 1 });
    // A writer truncated back to its start leaves the buffer as it was.
    let mut buf = vec![1, 2];
    let w = EnvelopesWriter::begin(&mut buf);
    buf.truncate(w.start());
    assert_eq!(buf, [1, 2]);
    // An envelope whose payload runs past the frame is MALFORMED.
    let mut bad = with(|b| {
        let mut w = EnvelopesWriter::begin(b);
        w.push(b, 1, 1, None, None, b"abc");
        w.finish(b);
    });
    bad.pop();
    let len = (bad.len() - LEN_PREFIX) as u32;
    bad[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        decode_response(&bad, 1 << 20),
        Err(ProtocolError::ShortField("message"))
    );
}

/// Replies with fixed fields ignore bytes after them (later versions may append);
/// REPLY and EVENT end in their payload, which takes every remaining byte; a fixed
/// field cut short is MALFORMED.
#[test]
fn version_3_replies_and_trailing_bytes() {
    let mut bound = with(|b| encode_bound(b, true));
    bound.push(0xAA);
    bound[3] += 1;
    assert_eq!(decode_one(&bound), Response::Bound { created: true });
    let mut published = with(|b| encode_published(b, &PUBLISHED));
    published.extend([1, 2, 3, 4]);
    published[3] += 4;
    assert_eq!(decode_one(&published), Response::Published(PUBLISHED));
    for (status, body_len, field) in [
        (0x30, 0, "created"),
        (0x31, 0, "removed"),
        (0x32, 23, "failed"),
        (0x33, 3, "sid"),
        (0x34, 0, "removed"),
        (0x36, 0, "delivered"),
        (0x37, 3, "count"),
        (0x3F, 3, "sid"),
        (0x3F, 5, "meta_len"),
    ] {
        let mut buf = ((body_len + 1) as u32).to_be_bytes().to_vec();
        buf.push(status);
        buf.extend(std::iter::repeat_n(0, body_len));
        assert_eq!(
            decode_response(&buf, 1 << 20),
            Err(ProtocolError::ShortField(field)),
            "status {status:#x}"
        );
    }
}

/// The version numbers and feature bit of version 3.
#[test]
fn version_3_constants() {
    // Version 4 (auth.rs) came after; the fan-out bit is unchanged.
    const { assert!(PROTOCOL_VERSION >= 3) };
    assert_eq!(FEATURE_FANOUT, 0x10);
    assert_eq!(
        FEATURE_FANOUT & (FEATURE_LEASES | FEATURE_PUT_OPTIONS | FEATURE_DURABLE | FEATURE_SYNCED),
        0
    );
    assert_eq!(WITH_META & PUT_OPTIONS, 0);
    assert_eq!(MAX_SUBSCRIPTIONS, 1024);
}

/// Every frame protocol.md section 15's examples show is what the codec writes.
#[test]
fn every_frame_in_section_15_is_what_the_codec_writes() {
    let checked = check_documented_examples("### 15.");
    assert!(
        checked >= 10,
        "only {checked} frames in section 15's examples"
    );
}
