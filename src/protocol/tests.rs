//! Unit tests for the codec.

use super::*;
use crate::test_rng::Rng;

/// A payload limit large enough that no test PUT is cut unless a test asks for it.
const BIG: usize = 1 << 20;

/// A response size limit large enough for every test response.
const MAX_RESPONSE: u32 = 1 << 24;

pub(super) fn encode(req: &Request<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    req.encode(&mut buf).expect("valid request encodes");
    buf
}

fn decode(buf: &[u8]) -> Result<Option<(Decoded<'_>, usize)>, ProtocolError> {
    decode_request(buf, BIG)
}

/// A frame built by hand: length prefix computed from opcode, flags and body.
fn raw_request(opcode: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&(body.len() as u32 + 2).to_be_bytes());
    buf.push(opcode);
    buf.push(flags);
    buf.extend_from_slice(body);
    buf
}

/// A response frame built by hand: length prefix computed from status and body.
fn raw_response(status: u8, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
    buf.push(status);
    buf.extend_from_slice(body);
    buf
}

/// A queue name body: length byte then the bytes.
fn name_field(name: &[u8]) -> Vec<u8> {
    let mut out = vec![name.len() as u8];
    out.extend_from_slice(name);
    out
}

fn long_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| "n".repeat(MAX_QUEUE_NAME))
}

/// One or more requests of every variant, covering the edges of each field.
fn sample_requests() -> Vec<Request<'static>> {
    static PAYLOAD: [u8; 300] = [0xA5; 300];
    vec![
        Request::Hello { version: 1 },
        Request::Hello { version: 0 },
        Request::Hello { version: u16::MAX },
        Request::Ping,
        Request::Quit,
        Request::Put {
            queue: "jobs",
            payload: b"hello",
        },
        Request::Put {
            queue: "q",
            payload: b"",
        },
        Request::Put {
            queue: "file d'attente \u{e9}\u{1F600}",
            payload: &[0, 1, 2, 255, 0],
        },
        Request::Put {
            queue: long_name(),
            payload: &PAYLOAD,
        },
        Request::Get {
            queue: "jobs",
            wait_ms: 0,
            max: 1,
        },
        Request::Get {
            queue: long_name(),
            wait_ms: WAIT_FOREVER,
            max: u16::MAX,
        },
        Request::Get {
            queue: "x",
            wait_ms: 1234,
            max: 7,
        },
        Request::Purge { queue: "jobs" },
        Request::Purge { queue: long_name() },
        Request::Stats { queue: None },
        Request::Stats {
            queue: Some("jobs"),
        },
        Request::Stats {
            queue: Some(long_name()),
        },
    ]
}

// ---------------------------------------------------------------------------
// Constants and small enums
// ---------------------------------------------------------------------------

/// Every byte that `Opcode::try_from` accepts maps back to itself, and every other
/// byte is an `UnknownOpcode` error carrying that byte.
#[test]
fn opcode_try_from_round_trips_every_byte() {
    let mut known = 0;
    for byte in 0..=255u8 {
        match Opcode::try_from(byte) {
            Ok(op) => {
                known += 1;
                assert_eq!(op as u8, byte);
            }
            Err(e) => assert_eq!(e, ProtocolError::UnknownOpcode(byte)),
        }
    }
    assert_eq!(known, 25);
}

/// Every byte that `Status::try_from` accepts maps back to itself, and every other
/// byte is an `UnknownStatus` error carrying that byte.
#[test]
fn status_try_from_round_trips_every_byte() {
    let mut known = 0;
    for byte in 0..=255u8 {
        match Status::try_from(byte) {
            Ok(status) => {
                known += 1;
                assert_eq!(status as u8, byte);
            }
            Err(e) => assert_eq!(e, ProtocolError::UnknownStatus(byte)),
        }
    }
    assert_eq!(known, 30);
}

/// `ErrorCode::from_u16` inverts `as u16` for codes 1..=19, rejects 0 and newer codes,
/// and `name`/`Display` give the upper-case protocol names.
#[test]
fn error_code_wire_values_and_names() {
    for value in 1..=19u16 {
        let code = ErrorCode::from_u16(value).expect("known code");
        assert_eq!(code as u16, value);
        assert_eq!(code.to_string(), code.name());
        assert!(
            code.name()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_'),
            "{}",
            code.name()
        );
    }
    assert_eq!(ErrorCode::from_u16(0), None);
    assert_eq!(ErrorCode::from_u16(21), None);
    assert_eq!(ErrorCode::from_u16(u16::MAX), None);
    assert_eq!(ErrorCode::Malformed.name(), "MALFORMED");
    assert_eq!(ErrorCode::Full.to_string(), "FULL");
    assert_eq!(ErrorCode::ShuttingDown.name(), "SHUTTING_DOWN");
    assert_eq!(ErrorCode::Storage.name(), "STORAGE");
    assert_eq!(ErrorCode::BadSubject.name(), "BAD_SUBJECT");
    assert_eq!(ErrorCode::NoResponders.name(), "NO_RESPONDERS");
    assert_eq!(ErrorCode::TooFewCopies.name(), "TOO_FEW_COPIES");
    assert_eq!(ErrorCode::Limit.name(), "LIMIT");
}

/// `Request::opcode` names the opcode each variant travels under, and the encoded
/// frame carries it after the length prefix.
#[test]
fn request_opcode_matches_encoded_byte() {
    for req in sample_requests() {
        let frame = encode(&req);
        assert_eq!(frame[LEN_PREFIX], req.opcode() as u8, "{req:?}");
        assert_eq!(frame[LEN_PREFIX + 1], 0, "flags of {req:?}");
    }
    assert_eq!(Request::Ping.opcode(), Opcode::Ping);
    assert_eq!(Request::Stats { queue: None }.opcode(), Opcode::Stats);
}

// ---------------------------------------------------------------------------
// Requests: round trips and framing
// ---------------------------------------------------------------------------

/// Every request variant survives encode then decode, consuming exactly the frame,
/// and the length prefix counts the bytes after it.
#[test]
fn every_request_variant_round_trips() {
    for req in sample_requests() {
        let frame = encode(&req);
        let declared = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(declared, frame.len() - LEN_PREFIX, "{req:?}");
        assert_eq!(
            decode(&frame),
            Ok(Some((Decoded::Request(req), frame.len()))),
            "{req:?}"
        );
    }
}

/// The exact bytes of a few frames, so that encoder and decoder cannot agree on a
/// wrong layout.
#[test]
fn request_frames_have_the_documented_layout() {
    assert_eq!(encode(&Request::Ping), [0, 0, 0, 2, 0x02, 0]);
    assert_eq!(encode(&Request::Quit), [0, 0, 0, 2, 0x03, 0]);
    assert_eq!(
        encode(&Request::Hello { version: 0x0102 }),
        [0, 0, 0, 4, 0x01, 0, 1, 2]
    );
    assert_eq!(
        encode(&Request::Put {
            queue: "ab",
            payload: b"xyz"
        }),
        [0, 0, 0, 8, 0x10, 0, 2, b'a', b'b', b'x', b'y', b'z']
    );
    assert_eq!(
        encode(&Request::Get {
            queue: "q",
            wait_ms: 0x0A0B0C0D,
            max: 0x0102
        }),
        [0, 0, 0, 10, 0x11, 0, 1, b'q', 0x0A, 0x0B, 0x0C, 0x0D, 1, 2]
    );
    assert_eq!(
        encode(&Request::Purge { queue: "q" }),
        [0, 0, 0, 4, 0x12, 0, 1, b'q']
    );
    assert_eq!(
        encode(&Request::Stats { queue: None }),
        [0, 0, 0, 3, 0x20, 0, 0]
    );
    assert_eq!(
        encode(&Request::Stats { queue: Some("q") }),
        [0, 0, 0, 4, 0x20, 0, 1, b'q']
    );
}

/// Fed one byte at a time, every strict prefix of every valid frame is `Ok(None)`
/// ("need more bytes") and the whole frame decodes to the request.
#[test]
fn every_prefix_of_a_request_is_incomplete() {
    for req in sample_requests() {
        let frame = encode(&req);
        let mut buf = Vec::new();
        for &byte in &frame[..frame.len() - 1] {
            buf.push(byte);
            assert_eq!(decode(&buf), Ok(None), "{req:?} after {} bytes", buf.len());
        }
        assert_eq!(decode(&[]), Ok(None));
        buf.push(frame[frame.len() - 1]);
        assert_eq!(decode(&buf), Ok(Some((Decoded::Request(req), frame.len()))));
    }
}

/// Two frames back to back decode one after the other, the first consuming only
/// its own bytes.
#[test]
fn two_requests_back_to_back() {
    let mut buf = encode(&Request::Put {
        queue: "a",
        payload: b"one",
    });
    let first_len = buf.len();
    buf.extend(encode(&Request::Ping));
    let (first, n) = decode(&buf).unwrap().unwrap();
    assert_eq!(n, first_len);
    assert_eq!(
        first,
        Decoded::Request(Request::Put {
            queue: "a",
            payload: b"one"
        })
    );
    assert_eq!(
        decode(&buf[n..]),
        Ok(Some((Decoded::Request(Request::Ping), 6)))
    );
}

/// All sample frames concatenated in one buffer decode in order, consuming the
/// buffer exactly; a partial frame left at the end is `Ok(None)`.
#[test]
fn many_requests_back_to_back() {
    let requests = sample_requests();
    let mut buf = Vec::new();
    for req in &requests {
        req.encode(&mut buf).unwrap();
    }
    let whole = buf.len();
    // A partial GET at the end.
    let tail = encode(&Request::Get {
        queue: "tail",
        wait_ms: 5,
        max: 2,
    });
    buf.extend_from_slice(&tail[..tail.len() - 3]);
    let mut pos = 0;
    let mut decoded = Vec::new();
    while let Some((d, n)) = decode(&buf[pos..]).unwrap() {
        assert!(n <= buf.len() - pos);
        pos += n;
        match d {
            Decoded::Request(r) => decoded.push(r),
            Decoded::PutHead { .. } | Decoded::BodyHead { .. } => {
                panic!("no payload here is over the limit")
            }
        }
    }
    assert_eq!(pos, whole);
    assert_eq!(decoded, requests);
}

// ---------------------------------------------------------------------------
// Requests: PUT over the payload limit
// ---------------------------------------------------------------------------

/// A PUT longer than `max_payload` comes back as `PutHead` as soon as the queue
/// name is buffered, before any payload byte, consuming only the header; fewer
/// bytes are `Ok(None)`, and more bytes do not change the answer.
#[test]
fn oversized_put_yields_head_as_soon_as_name_arrives() {
    let payload = b"0123456789abcdef";
    let frame = encode(&Request::Put {
        queue: "big",
        payload,
    });
    let head_len = REQUEST_HEADER + 1 + 3;
    for end in 0..head_len {
        assert_eq!(decode_request(&frame[..end], 4), Ok(None), "{end} bytes");
    }
    let expected = Decoded::PutHead {
        queue: "big",
        options: None,
        unique: None,
        ttl: None,
        payload_len: payload.len() as u32,
    };
    for end in head_len..=frame.len() {
        assert_eq!(
            decode_request(&frame[..end], 4),
            Ok(Some((expected, head_len))),
            "{end} bytes"
        );
    }
}

/// The limit is inclusive: a payload of exactly `max_payload` bytes is a whole
/// request, one more byte makes it a `PutHead`; with a limit of 0, only empty
/// payloads pass whole.
#[test]
fn put_payload_limit_is_inclusive() {
    let req = Request::Put {
        queue: "q",
        payload: b"abcd",
    };
    let frame = encode(&req);
    assert_eq!(
        decode_request(&frame, 4),
        Ok(Some((Decoded::Request(req), frame.len())))
    );
    assert_eq!(
        decode_request(&frame, 3),
        Ok(Some((
            Decoded::PutHead {
                queue: "q",
                options: None,
                unique: None,
                ttl: None,
                payload_len: 4
            },
            8
        )))
    );
    let empty = Request::Put {
        queue: "q",
        payload: b"",
    };
    let frame = encode(&empty);
    assert_eq!(
        decode_request(&frame, 0),
        Ok(Some((Decoded::Request(empty), frame.len())))
    );
}

/// A PUT may declare a length up to `u32::MAX` (it is streamed, not capped); the
/// head reports the declared payload length.
#[test]
fn put_with_huge_declared_length_is_a_head_not_an_error() {
    let mut buf = Vec::new();
    buf.extend_from_slice(&u32::MAX.to_be_bytes());
    buf.extend_from_slice(&[0x10, 0, 2, b'q', b'z']);
    assert_eq!(
        decode_request(&buf, BIG),
        Ok(Some((
            Decoded::PutHead {
                queue: "qz",
                options: None,
                unique: None,
                ttl: None,
                payload_len: u32::MAX - 2 - 1 - 2
            },
            9
        )))
    );
}

/// The queue name of an oversized PUT is still validated before the head is
/// returned.
#[test]
fn oversized_put_head_still_checks_the_name() {
    let mut body = name_field(&[0xC3, 0x28]);
    body.extend_from_slice(&[0; 10]);
    let frame = raw_request(0x10, 0, &body);
    assert_eq!(
        decode_request(&frame[..9], 1),
        Err(ProtocolError::BadQueueName("not valid UTF-8"))
    );
    let mut body = name_field(b"");
    body.extend_from_slice(&[0; 10]);
    assert_eq!(
        decode_request(&raw_request(0x10, 0, &body), 1),
        Err(ProtocolError::BadQueueName("empty"))
    );
}

// ---------------------------------------------------------------------------
// Requests: errors
// ---------------------------------------------------------------------------

/// An unknown opcode is reported from the first five bytes (length and opcode),
/// whatever the declared length; four bytes are still `Ok(None)`.
#[test]
fn unknown_opcode_is_detected_from_five_bytes() {
    for op in [0x00, 0x04, 0x0F, 0x19, 0x21, 0x2F, 0x7F, 0x80, 0xFF] {
        for len in [2u32, 3, 1000, MAX_CONTROL_FRAME + 1, u32::MAX] {
            let mut buf = len.to_be_bytes().to_vec();
            assert_eq!(decode(&buf), Ok(None));
            buf.push(op);
            assert_eq!(
                decode(&buf),
                Err(ProtocolError::UnknownOpcode(op)),
                "op {op:#x} len {len}"
            );
        }
    }
}

/// protocol.md section 2.5: a length below 2 is `MALFORMED` as soon as the four
/// length bytes are in, whatever opcode would follow, so a frame too short to hold
/// its own opcode is never read into the next one.
#[test]
fn short_length_is_reported_from_the_length_alone() {
    for len in [0u32, 1] {
        let mut buf = len.to_be_bytes().to_vec();
        assert_eq!(decode(&buf), Err(ProtocolError::FrameTooShort { len }));
        buf.push(0x2F);
        assert_eq!(decode(&buf), Err(ProtocolError::FrameTooShort { len }));
    }
    // Three bytes are not a length yet.
    assert_eq!(decode(&[0, 0, 0]), Ok(None));
}

/// A control frame (any opcode but PUT) declaring more than `MAX_CONTROL_FRAME`
/// bytes is refused from five bytes; exactly the cap is accepted (waits for more).
#[test]
fn control_frame_over_cap_is_detected_from_five_bytes() {
    for op in [0x01u8, 0x02, 0x03, 0x11, 0x12, 0x20] {
        for len in [MAX_CONTROL_FRAME + 1, 1 << 20, u32::MAX] {
            let mut buf = len.to_be_bytes().to_vec();
            buf.push(op);
            assert_eq!(
                decode(&buf),
                Err(ProtocolError::FrameTooLarge {
                    len,
                    max: MAX_CONTROL_FRAME
                }),
                "op {op:#x} len {len}"
            );
        }
        let mut buf = MAX_CONTROL_FRAME.to_be_bytes().to_vec();
        buf.push(op);
        assert_eq!(decode(&buf), Ok(None), "op {op:#x} at the cap");
        buf.push(0);
        assert_eq!(decode(&buf), Ok(None), "op {op:#x} at the cap");
    }
}

/// A declared length of 0 or 1 cannot hold opcode and flags: `FrameTooShort`, for
/// every opcode including PUT, from five bytes.
#[test]
fn frame_length_below_two_is_too_short() {
    for op in [0x01u8, 0x02, 0x03, 0x10, 0x11, 0x12, 0x20] {
        for len in [0u32, 1] {
            let mut buf = len.to_be_bytes().to_vec();
            buf.push(op);
            assert_eq!(
                decode(&buf),
                Err(ProtocolError::FrameTooShort { len }),
                "op {op:#x} len {len}"
            );
        }
    }
}

/// Any non-zero flags byte is `BadFlags` carrying the byte, for control frames and
/// PUT alike, from six bytes, except the defined bits: `PUT_OPTIONS` on PUT and
/// `WITH_META` on GET, LEASE and PEEK (tested in fanout_tests.rs).
#[test]
fn nonzero_flags_are_rejected() {
    for op in [
        0x01u8, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x20,
    ] {
        for flags in [0x01u8, 0x02, 0x80, 0xFF] {
            if op == 0x10 && flags == PUT_OPTIONS
                || matches!(op, 0x11 | 0x13 | 0x17) && flags == WITH_META
            {
                continue;
            }
            let mut buf = 20u32.to_be_bytes().to_vec();
            buf.push(op);
            buf.push(flags);
            assert_eq!(
                decode(&buf),
                Err(ProtocolError::BadFlags(flags)),
                "op {op:#x} flags {flags:#x}"
            );
        }
    }
}

/// An empty queue name is `BadQueueName("empty")` in PUT, GET and PURGE.
#[test]
fn empty_queue_name_is_rejected() {
    let empty = ProtocolError::BadQueueName("empty");
    assert_eq!(
        decode(&raw_request(0x10, 0, &[0, b'x'])),
        Err(empty.clone())
    );
    assert_eq!(decode(&raw_request(0x10, 0, &[0])), Err(empty.clone()));
    assert_eq!(
        decode(&raw_request(0x11, 0, &[0, 0, 0, 0, 0, 0, 1])),
        Err(empty.clone())
    );
    assert_eq!(decode(&raw_request(0x12, 0, &[0])), Err(empty));
}

/// A queue name that is not UTF-8 is `BadQueueName("not valid UTF-8")` in PUT, GET,
/// PURGE and STATS.
#[test]
fn non_utf8_queue_name_is_rejected() {
    let bad = ProtocolError::BadQueueName("not valid UTF-8");
    for name in [&[0xFFu8][..], &[b'a', 0xC3], &[0xED, 0xA0, 0x80]] {
        let mut put = name_field(name);
        put.extend_from_slice(b"payload");
        assert_eq!(decode(&raw_request(0x10, 0, &put)), Err(bad.clone()));
        let mut get = name_field(name);
        get.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        assert_eq!(decode(&raw_request(0x11, 0, &get)), Err(bad.clone()));
        assert_eq!(
            decode(&raw_request(0x12, 0, &name_field(name))),
            Err(bad.clone())
        );
        assert_eq!(
            decode(&raw_request(0x20, 0, &name_field(name))),
            Err(bad.clone())
        );
    }
}

/// A queue length that runs past the end of the frame is `ShortField("queue")` in
/// PUT (caught as soon as the length byte arrives), GET, PURGE and STATS.
#[test]
fn queue_length_past_end_of_frame_is_short_field() {
    let short = ProtocolError::ShortField("queue");
    // PUT declares 3 body bytes but a 10-byte name; only 7 bytes are buffered.
    let put = raw_request(0x10, 0, &[10, b'a', b'b']);
    assert_eq!(decode(&put[..7]), Err(short.clone()));
    assert_eq!(decode(&put), Err(short.clone()));
    // Name length exactly one past the body.
    assert_eq!(
        decode(&raw_request(0x10, 0, &[3, b'a', b'b'])),
        Err(short.clone())
    );
    assert_eq!(
        decode(&raw_request(0x11, 0, &[10, b'a', b'b'])),
        Err(short.clone())
    );
    assert_eq!(
        decode(&raw_request(0x12, 0, &[2, b'a'])),
        Err(short.clone())
    );
    assert_eq!(decode(&raw_request(0x20, 0, &[5, b'a'])), Err(short));
}

/// Fields missing at the end of a complete control frame are `ShortField` naming
/// the field: HELLO version, GET queue_len/wait_ms/max, PURGE queue_len, STATS
/// queue_len.
#[test]
fn missing_fields_name_the_field() {
    let cases: [(u8, &[u8], &str); 8] = [
        (0x01, &[], "version"),
        (0x01, &[1], "version"),
        (0x11, &[], "queue_len"),
        (0x11, &[1, b'q'], "wait_ms"),
        (0x11, &[1, b'q', 0, 0, 0], "wait_ms"),
        (0x11, &[1, b'q', 0, 0, 0, 0, 1], "max"),
        (0x12, &[], "queue_len"),
        (0x20, &[], "queue_len"),
    ];
    for (op, body, field) in cases {
        assert_eq!(
            decode(&raw_request(op, 0, body)),
            Err(ProtocolError::ShortField(field)),
            "op {op:#x} body {body:?}"
        );
    }
}

/// Bytes after the last field of a control frame are `TrailingBytes(n)`.
#[test]
fn trailing_bytes_in_control_frames_are_rejected() {
    let cases: [(u8, &[u8], usize); 6] = [
        (0x01, &[0, 1, 9], 1),
        (0x02, &[9, 9], 2),
        (0x03, &[9], 1),
        (0x11, &[1, b'q', 0, 0, 0, 0, 0, 1, 9, 9, 9], 3),
        (0x12, &[1, b'q', 9], 1),
        (0x20, &[1, b'q', 9, 9], 2),
    ];
    for (op, body, n) in cases {
        assert_eq!(
            decode(&raw_request(op, 0, body)),
            Err(ProtocolError::TrailingBytes(n)),
            "op {op:#x}"
        );
    }
    // STATS with no queue and a stray byte.
    assert_eq!(
        decode(&raw_request(0x20, 0, &[0, 7])),
        Err(ProtocolError::TrailingBytes(1))
    );
}

/// GET with max 0 is `BadArgument` (code BAD_ARGUMENT); max 1 is fine.
#[test]
fn get_with_max_zero_is_bad_argument() {
    let err = decode(&raw_request(0x11, 0, &[1, b'q', 0, 0, 0, 0, 0, 0])).unwrap_err();
    assert!(matches!(err, ProtocolError::BadArgument(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::BadArgument);
    assert!(err.to_string().contains("max"), "{err}");
    assert_eq!(
        decode(&raw_request(0x11, 0, &[1, b'q', 0, 0, 0, 0, 0, 1])),
        Ok(Some((
            Decoded::Request(Request::Get {
                queue: "q",
                wait_ms: 0,
                max: 1
            }),
            14
        )))
    );
}

/// protocol.md section 2.5 step 3: whatever the opcode, a control frame's structure
/// is checked before its queue name, and the name before its values. So a frame with
/// two faults gets the error of the earlier check: trailing bytes or a missing field
/// win over a bad name or a bad value, and a bad name wins over a bad value.
#[test]
fn control_frame_checks_run_structure_then_name_then_value() {
    let trailing = ProtocolError::TrailingBytes;
    let cases: [(&str, u8, &[u8], ProtocolError); 10] = [
        (
            "GET max 0, trailing byte",
            0x11,
            &[1, b'q', 0, 0, 0, 0, 0, 0, 9],
            trailing(1),
        ),
        (
            "GET bad name, trailing byte",
            0x11,
            &[1, 0xff, 0, 0, 0, 0, 0, 1, 9],
            trailing(1),
        ),
        (
            "GET bad name, max field missing",
            0x11,
            &[1, 0xff, 0, 0, 0, 0, 0],
            ProtocolError::ShortField("max"),
        ),
        (
            "GET empty name, max 0",
            0x11,
            &[0, 0, 0, 0, 0, 0, 0],
            ProtocolError::BadQueueName("empty"),
        ),
        (
            "GET bad name, max 0",
            0x11,
            &[1, 0xff, 0, 0, 0, 0, 0, 0],
            ProtocolError::BadQueueName("not valid UTF-8"),
        ),
        (
            "HELLO version 0, trailing byte",
            0x01,
            &[0, 0, 9],
            trailing(1),
        ),
        (
            "PURGE empty name, trailing byte",
            0x12,
            &[0, 9],
            trailing(1),
        ),
        (
            "PURGE bad name, trailing bytes",
            0x12,
            &[1, 0xff, 9, 9],
            trailing(2),
        ),
        (
            "STATS bad name, trailing byte",
            0x20,
            &[1, 0xff, 9],
            trailing(1),
        ),
        (
            "STATS bad name running past the frame",
            0x20,
            &[3, 0xff],
            ProtocolError::ShortField("queue"),
        ),
    ];
    for (what, op, body, expected) in cases {
        assert_eq!(decode(&raw_request(op, 0, body)), Err(expected), "{what}");
    }
    // HELLO's only value check, version 0, is the server's (UNSUPPORTED_VERSION): the
    // decoder passes a well-formed frame through.
    assert_eq!(
        decode(&raw_request(0x01, 0, &[0, 0])),
        Ok(Some((Decoded::Request(Request::Hello { version: 0 }), 8)))
    );
}

/// protocol.md section 2.5 step 4: a PUT's structure (its queue_len fitting in the
/// frame) is checked from the queue_len byte, before the name is even in, so a
/// non-UTF-8 name whose length runs past the frame is `MALFORMED`, not
/// `BAD_QUEUE_NAME`; a name that fits is checked once it is all in.
#[test]
fn put_head_checks_structure_before_name() {
    let past_end = raw_request(0x10, 0, &[9, 0xff, 0xfe]);
    assert_eq!(
        decode(&past_end[..7]),
        Err(ProtocolError::ShortField("queue"))
    );
    let fits = raw_request(0x10, 0, &[2, 0xff, 0xfe, b'p']);
    assert_eq!(decode(&fits[..8]), Ok(None));
    assert_eq!(
        decode(&fits[..9]),
        Err(ProtocolError::BadQueueName("not valid UTF-8"))
    );
}

/// STATS with a zero queue length means all queues (`None`); with a name it means
/// that queue.
#[test]
fn stats_with_and_without_queue() {
    assert_eq!(
        decode(&[0, 0, 0, 3, 0x20, 0, 0]),
        Ok(Some((Decoded::Request(Request::Stats { queue: None }), 7)))
    );
    assert_eq!(
        decode(&raw_request(0x20, 0, &name_field(b"jobs"))),
        Ok(Some((
            Decoded::Request(Request::Stats {
                queue: Some("jobs")
            }),
            11
        )))
    );
}

/// A complete PUT frame of declared length 2 (no room even for the queue length
/// byte) is `ShortField("queue_len")` as soon as its six bytes are buffered, like
/// the same frame for PURGE, instead of waiting for a seventh byte that would belong
/// to the next frame.
#[test]
fn put_frame_of_length_two_is_malformed_at_once() {
    assert_eq!(
        decode(&[0, 0, 0, 2, 0x12, 0]),
        Err(ProtocolError::ShortField("queue_len"))
    );
    assert_eq!(
        decode(&[0, 0, 0, 2, 0x10, 0]),
        Err(ProtocolError::ShortField("queue_len"))
    );
}

/// Whatever byte follows a length-2 PUT frame, the decoder does not take it as the
/// PUT's queue length and accept the frame: it is an error.
#[test]
fn put_frame_of_length_two_followed_by_more_bytes_is_an_error() {
    for next in [0u8, 1, 2, 255] {
        let frame = [0, 0, 0, 2, 0x10, 0, next, 0, 0, 0];
        let result = decode(&frame);
        assert!(
            matches!(result, Err(ProtocolError::ShortField(_))),
            "{result:?}"
        );
    }
}

/// Each `ProtocolError` maps to the documented wire code.
#[test]
fn protocol_errors_map_to_error_codes() {
    let cases = [
        (ProtocolError::UnknownOpcode(0x99), ErrorCode::UnknownOpcode),
        (ProtocolError::UnknownStatus(0x99), ErrorCode::UnknownOpcode),
        (
            ProtocolError::FrameTooLarge {
                len: 5000,
                max: 1024,
            },
            ErrorCode::FrameTooLarge,
        ),
        (
            ProtocolError::FrameTooShort { len: 1 },
            ErrorCode::Malformed,
        ),
        (ProtocolError::ShortField("queue"), ErrorCode::Malformed),
        (ProtocolError::TrailingBytes(3), ErrorCode::Malformed),
        (ProtocolError::BadFlags(0x80), ErrorCode::BadFlags),
        (
            ProtocolError::BadQueueName("empty"),
            ErrorCode::BadQueueName,
        ),
        (ProtocolError::BadArgument("nope"), ErrorCode::BadArgument),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code, "{err:?}");
    }
}

/// The errors a decoder returns carry the right code end to end.
#[test]
fn decoder_errors_carry_the_right_code() {
    let cases: [(Vec<u8>, ErrorCode); 8] = [
        (vec![0, 0, 0, 2, 0x99], ErrorCode::UnknownOpcode),
        (vec![0, 0, 4, 1, 0x02], ErrorCode::FrameTooLarge),
        (vec![0, 0, 0, 1, 0x02], ErrorCode::Malformed),
        (vec![0, 0, 0, 2, 0x02, 4], ErrorCode::BadFlags),
        (raw_request(0x12, 0, &[0]), ErrorCode::BadQueueName),
        (raw_request(0x12, 0, &[4, b'a']), ErrorCode::Malformed),
        (raw_request(0x02, 0, &[1]), ErrorCode::Malformed),
        (
            raw_request(0x11, 0, &[1, b'q', 0, 0, 0, 0, 0, 0]),
            ErrorCode::BadArgument,
        ),
    ];
    for (frame, code) in cases {
        assert_eq!(decode(&frame).unwrap_err().code(), code, "{frame:?}");
    }
}

/// Each `ProtocolError` displays as one readable line naming the offending value.
#[test]
fn protocol_errors_display_readably() {
    let cases: [(ProtocolError, &[&str]); 9] = [
        (ProtocolError::UnknownOpcode(0x99), &["opcode", "0x99"]),
        (ProtocolError::UnknownStatus(0x5a), &["status", "0x5a"]),
        (
            ProtocolError::FrameTooLarge {
                len: 5000,
                max: 1024,
            },
            &["5000", "1024"],
        ),
        (ProtocolError::FrameTooShort { len: 1 }, &["1", "short"]),
        (ProtocolError::BadFlags(0x80), &["flag", "0x80"]),
        (
            ProtocolError::BadQueueName("empty"),
            &["queue name", "empty"],
        ),
        (ProtocolError::ShortField("wait_ms"), &["'wait_ms'"]),
        (ProtocolError::TrailingBytes(3), &["3", "end of frame"]),
        (ProtocolError::BadArgument("why not"), &["why not"]),
    ];
    for (err, needles) in cases {
        let text = err.to_string();
        assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        assert!(!text.contains("ProtocolError"), "{text:?}");
        for needle in needles {
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
        // Usable as a std error.
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert_eq!(boxed.to_string(), text);
    }
}

/// `Request::encode` refuses an empty or over-255-byte queue name in every variant
/// that carries one and writes nothing; 255 bytes is fine.
#[test]
fn encode_refuses_bad_queue_names_and_writes_nothing() {
    let too_long = "x".repeat(MAX_QUEUE_NAME + 1);
    for name in ["", too_long.as_str()] {
        let requests = [
            Request::Put {
                queue: name,
                payload: b"p",
            },
            Request::Get {
                queue: name,
                wait_ms: 0,
                max: 1,
            },
            Request::Purge { queue: name },
            Request::Stats { queue: Some(name) },
        ];
        for req in requests {
            let mut buf = vec![0xEEu8];
            let err = req.encode(&mut buf).unwrap_err();
            assert!(matches!(err, ProtocolError::BadQueueName(_)), "{err:?}");
            assert_eq!(buf, [0xEE], "nothing written for {req:?}");
        }
    }
    assert_eq!(
        check_queue_name(""),
        Err(ProtocolError::BadQueueName("empty"))
    );
    assert!(check_queue_name(&too_long).is_err());
    assert_eq!(check_queue_name(long_name()), Ok(()));
    // 85 three-byte characters: 255 bytes, fine; one more is 258 bytes, refused.
    assert_eq!(check_queue_name(&"\u{20AC}".repeat(85)), Ok(()));
    assert!(check_queue_name(&"\u{20AC}".repeat(86)).is_err());
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

fn decode_resp(buf: &[u8]) -> Result<Option<(Response<'_>, usize)>, ProtocolError> {
    decode_response(buf, MAX_RESPONSE)
}

/// Decodes a buffer holding exactly one response and checks it consumed it all.
pub(super) fn decode_one(buf: &[u8]) -> Response<'_> {
    let (resp, n) = decode_resp(buf)
        .expect("valid response")
        .expect("complete response");
    assert_eq!(n, buf.len());
    resp
}

fn messages_frame(payloads: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = MessagesWriter::begin(&mut buf);
    for p in payloads {
        w.push(&mut buf, p);
    }
    assert_eq!(w.count() as usize, payloads.len());
    w.finish(&mut buf);
    buf
}

fn sample_stats() -> StatsReport {
    StatsReport {
        server: vec![
            ("connections".into(), 3),
            ("memory".into(), u64::MAX),
            ("uptime_s".into(), 0),
        ],
        queues: vec![
            QueueReport {
                name: "jobs".into(),
                fields: vec![("messages".into(), 12), ("bytes".into(), 3400)],
            },
            QueueReport {
                name: "empty \u{e9}".into(),
                fields: vec![],
            },
            QueueReport {
                name: long_name().into(),
                fields: vec![("waiters".into(), 1)],
            },
        ],
    }
}

/// One encoded frame per response encoder and the response it must decode to.
fn sample_responses() -> Vec<(Vec<u8>, Response<'static>)> {
    let mut out = Vec::new();
    for (status, resp) in [
        (Status::Pong, Response::Pong),
        (Status::Bye, Response::Bye),
        (Status::Stored, Response::Stored),
        (Status::Empty, Response::Empty),
    ] {
        let mut buf = Vec::new();
        encode_empty(&mut buf, status);
        out.push((buf, resp));
    }
    let mut buf = Vec::new();
    encode_truncated(&mut buf, 5_000_000, 1 << 20);
    out.push((
        buf,
        Response::Truncated {
            original_len: 5_000_000,
            stored_len: 1 << 20,
        },
    ));
    let mut buf = Vec::new();
    encode_hello(&mut buf, PROTOCOL_VERSION, 1 << 20, "beuss/0.1.0");
    out.push((
        buf,
        Response::Hello {
            version: PROTOCOL_VERSION,
            max_message_size: 1 << 20,
            server: "beuss/0.1.0",
            limits: None,
        },
    ));
    let mut buf = Vec::new();
    encode_hello(&mut buf, 0, 0, "");
    out.push((
        buf,
        Response::Hello {
            version: 0,
            max_message_size: 0,
            server: "",
            limits: None,
        },
    ));
    for count in [0, 1, u64::MAX] {
        let mut buf = Vec::new();
        encode_purged(&mut buf, count);
        out.push((buf, Response::Purged { count }));
    }
    for (code, fatal, message) in [
        (ErrorCode::Full, false, "memory cap reached"),
        (ErrorCode::Malformed, true, ""),
        (ErrorCode::BadQueueName, true, "nom de file \u{e9}\u{1F600}"),
    ] {
        let mut buf = Vec::new();
        encode_error(&mut buf, code, fatal, message);
        out.push((
            buf,
            Response::Error {
                code: code as u16,
                fatal,
                message,
            },
        ));
    }
    let mut buf = Vec::new();
    sample_stats().encode(&mut buf);
    out.push((buf, Response::Stats(sample_stats())));
    let mut buf = Vec::new();
    StatsReport::default().encode(&mut buf);
    out.push((buf, Response::Stats(StatsReport::default())));
    out
}

/// Every response encoder's output decodes back to the same response, consuming
/// exactly the frame, and the length prefix counts the bytes after it.
#[test]
fn every_response_encoder_round_trips() {
    for (frame, expected) in sample_responses() {
        let declared = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(declared, frame.len() - LEN_PREFIX, "{expected:?}");
        assert_eq!(decode_one(&frame), expected);
    }
}

/// `encode_empty` writes a five-byte frame for each empty-body status.
#[test]
fn empty_body_responses_are_five_bytes() {
    for status in [Status::Pong, Status::Bye, Status::Stored, Status::Empty] {
        let mut buf = Vec::new();
        encode_empty(&mut buf, status);
        assert_eq!(buf, [0, 0, 0, 1, status as u8]);
    }
}

/// Every `ErrorCode`, fatal or not, survives an `ERROR` round trip, and the code
/// number maps back with `from_u16`.
#[test]
fn error_response_round_trips_every_code() {
    for value in 1..=10u16 {
        let code = ErrorCode::from_u16(value).unwrap();
        for fatal in [false, true] {
            let mut buf = Vec::new();
            encode_error(&mut buf, code, fatal, code.name());
            match decode_one(&buf) {
                Response::Error {
                    code: c,
                    fatal: f,
                    message,
                } => {
                    assert_eq!(ErrorCode::from_u16(c), Some(code));
                    assert_eq!(f, fatal);
                    assert_eq!(message, code.name());
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// An `ERROR` message is cut to 1024 bytes, stepping back to a character boundary
/// when byte 1024 falls inside a multi-byte character.
#[test]
fn error_message_is_cut_to_1024_bytes_on_a_char_boundary() {
    let check = |message: &str, expected: &str| {
        let mut buf = Vec::new();
        encode_error(&mut buf, ErrorCode::Malformed, true, message);
        match decode_one(&buf) {
            Response::Error { message: got, .. } => assert_eq!(got, expected),
            other => panic!("{other:?}"),
        }
    };
    let ascii = "a".repeat(2000);
    check(&ascii, &ascii[..1024]);
    let exact = "b".repeat(1024);
    check(&exact, &exact);
    // Three-byte characters: 1024 is inside the 342nd, so 341 are kept (1023 bytes).
    let euros = "\u{20AC}".repeat(400);
    check(&euros, &"\u{20AC}".repeat(341));
    // A four-byte character starting at byte 1022 is dropped whole.
    let emoji = format!("{}\u{1F600}tail", "c".repeat(1022));
    check(&emoji, &"c".repeat(1022));
    // A two-byte character ending exactly at byte 1024 is kept.
    let e_acute = format!("{}\u{e9}zz", "d".repeat(1022));
    check(&e_acute, &e_acute[..1024]);
}

/// A `HELLO` server name longer than 255 ASCII bytes is cut to 255.
#[test]
fn hello_server_name_is_cut_to_255_bytes() {
    let name = "s".repeat(300);
    let mut buf = Vec::new();
    encode_hello(&mut buf, 1, 42, &name);
    match decode_one(&buf) {
        Response::Hello { server, .. } => assert_eq!(server, &name[..255]),
        other => panic!("{other:?}"),
    }
}

/// A `HELLO` server name over 255 bytes whose byte 255 falls inside a multi-byte
/// character is cut on a character boundary, so the frame still decodes.
#[test]
fn hello_server_name_is_cut_on_a_char_boundary() {
    // 128 two-byte characters: 256 bytes; byte 255 is in the middle of the last one.
    let name = "\u{e9}".repeat(128);
    let mut buf = Vec::new();
    encode_hello(&mut buf, 1, 42, &name);
    match decode_resp(&buf) {
        Ok(Some((Response::Hello { server, .. }, _))) => {
            assert_eq!(server, "\u{e9}".repeat(127));
        }
        other => panic!("{other:?}"),
    }
}

/// `MessagesWriter` with no message gives a `MESSAGES` reply of length 0.
#[test]
fn messages_writer_with_no_message() {
    let frame = messages_frame(&[]);
    assert_eq!(frame, [0, 0, 0, 5, Status::Messages as u8, 0, 0, 0, 0]);
    match decode_one(&frame) {
        Response::Messages(m) => {
            assert_eq!(m.len(), 0);
            assert!(m.is_empty());
            assert_eq!(m.iter().count(), 0);
        }
        other => panic!("{other:?}"),
    }
}

/// `MessagesWriter` with one message round trips its exact bytes.
#[test]
fn messages_writer_with_one_message() {
    let frame = messages_frame(&[b"only one"]);
    match decode_one(&frame) {
        Response::Messages(m) => {
            assert_eq!(m.len(), 1);
            assert!(!m.is_empty());
            assert_eq!(m.iter().collect::<Vec<_>>(), [&b"only one"[..]]);
        }
        other => panic!("{other:?}"),
    }
}

/// `MessagesWriter` with many messages, empty ones and a large one among them,
/// round trips them in order; `IntoIterator` gives the same as `iter`.
#[test]
fn messages_writer_with_many_messages() {
    let big = vec![0x5Au8; 70_000];
    let mut payloads: Vec<Vec<u8>> = (0..200u32)
        .map(|i| i.to_be_bytes()[..(i % 5) as usize].to_vec())
        .collect();
    payloads.insert(0, Vec::new());
    payloads.push(big);
    payloads.push(Vec::new());
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let frame = messages_frame(&refs);
    match decode_one(&frame) {
        Response::Messages(m) => {
            assert_eq!(m.len(), refs.len());
            assert_eq!(m.iter().collect::<Vec<_>>(), refs);
            assert_eq!(m.into_iter().collect::<Vec<_>>(), refs);
        }
        other => panic!("{other:?}"),
    }
}

/// A `MessagesWriter` started after other bytes in the buffer patches only its own
/// frame, so replies can be queued back to back in one output buffer.
#[test]
fn messages_writer_after_other_frames() {
    let mut buf = Vec::new();
    encode_empty(&mut buf, Status::Pong);
    let mut w = MessagesWriter::begin(&mut buf);
    w.push(&mut buf, b"a");
    w.push(&mut buf, b"");
    w.finish(&mut buf);
    encode_purged(&mut buf, 9);

    let (first, n1) = decode_resp(&buf).unwrap().unwrap();
    assert_eq!(first, Response::Pong);
    let (second, n2) = decode_resp(&buf[n1..]).unwrap().unwrap();
    match second {
        Response::Messages(m) => {
            assert_eq!(m.iter().collect::<Vec<_>>(), [&b"a"[..], &b""[..]]);
        }
        other => panic!("{other:?}"),
    }
    let (third, n3) = decode_resp(&buf[n1 + n2..]).unwrap().unwrap();
    assert_eq!(third, Response::Purged { count: 9 });
    assert_eq!(n1 + n2 + n3, buf.len());
}

/// `StatsReport` accessors find server and queue figures by name, and miss cleanly.
#[test]
fn stats_report_lookups() {
    let report = sample_stats();
    let mut buf = Vec::new();
    report.encode(&mut buf);
    let Response::Stats(decoded) = decode_one(&buf) else {
        panic!("not stats");
    };
    assert_eq!(decoded.get("connections"), Some(3));
    assert_eq!(decoded.get("memory"), Some(u64::MAX));
    assert_eq!(decoded.get("nope"), None);
    let jobs = decoded.queue("jobs").unwrap();
    assert_eq!(jobs.get("messages"), Some(12));
    assert_eq!(jobs.get("bytes"), Some(3400));
    assert_eq!(jobs.get("waiters"), None);
    assert!(decoded.queue("missing").is_none());
    assert_eq!(decoded.queue(long_name()).unwrap().get("waiters"), Some(1));
    assert!(decoded.queue("empty \u{e9}").unwrap().fields.is_empty());
}

/// Every strict prefix of every response frame is `Ok(None)`.
#[test]
fn every_prefix_of_a_response_is_incomplete() {
    let mut frames: Vec<Vec<u8>> = sample_responses().into_iter().map(|(f, _)| f).collect();
    frames.push(messages_frame(&[b"x", b"", b"yz"]));
    for frame in frames {
        for end in 0..frame.len() {
            assert_eq!(decode_resp(&frame[..end]), Ok(None), "{end} of {frame:?}");
        }
        assert!(decode_resp(&frame).unwrap().is_some());
    }
}

/// A declared response length over `max_len` is `FrameTooLarge` from the four length
/// bytes alone; exactly `max_len` is allowed.
#[test]
fn response_over_max_len_is_frame_too_large() {
    let buf = 101u32.to_be_bytes();
    assert_eq!(
        decode_response(&buf, 100),
        Err(ProtocolError::FrameTooLarge { len: 101, max: 100 })
    );
    assert_eq!(
        decode_response(&u32::MAX.to_be_bytes(), MAX_RESPONSE),
        Err(ProtocolError::FrameTooLarge {
            len: u32::MAX,
            max: MAX_RESPONSE
        })
    );
    let mut frame = Vec::new();
    encode_purged(&mut frame, 1);
    assert_eq!(
        decode_response(&frame, 9),
        Ok(Some((Response::Purged { count: 1 }, 13)))
    );
    assert_eq!(
        decode_response(&frame, 8),
        Err(ProtocolError::FrameTooLarge { len: 9, max: 8 })
    );
    assert_eq!(
        decode_response(&frame, 8).unwrap_err().code(),
        ErrorCode::FrameTooLarge
    );
}

/// A response of declared length 0 has no status byte: `FrameTooShort`.
#[test]
fn response_of_length_zero_is_too_short() {
    assert_eq!(
        decode_resp(&[0, 0, 0, 0]),
        Err(ProtocolError::FrameTooShort { len: 0 })
    );
}

/// An unknown status byte is `UnknownStatus` (code UNKNOWN_OPCODE).
#[test]
fn unknown_response_status_is_an_error() {
    for status in [0x00u8, 0x05, 0x19, 0x21, 0x7E, 0x80, 0xFF] {
        let err = decode_resp(&raw_response(status, &[])).unwrap_err();
        assert_eq!(err, ProtocolError::UnknownStatus(status));
        assert_eq!(err.code(), ErrorCode::UnknownOpcode);
    }
}

/// A `MESSAGES` frame whose inner lengths do not add up to the frame is an error,
/// never a panic or a read past the frame: a count larger than the messages present,
/// a message length past the end, a missing count, and a huge count.
#[test]
fn messages_with_inconsistent_lengths_are_errors() {
    // Count 2, one message.
    let mut body = 2u32.to_be_bytes().to_vec();
    body.extend_from_slice(&1u32.to_be_bytes());
    body.push(b'a');
    assert_eq!(
        decode_resp(&raw_response(0x12, &body)),
        Err(ProtocolError::ShortField("message_len"))
    );
    // Count 1, message length 10 with 3 bytes present; the next frame's bytes must
    // not be read as the rest of it.
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&10u32.to_be_bytes());
    body.extend_from_slice(b"abc");
    let mut buf = raw_response(0x12, &body);
    encode_error(&mut buf, ErrorCode::Full, false, "padding padding");
    assert_eq!(decode_resp(&buf), Err(ProtocolError::ShortField("message")));
    // A message length of u32::MAX.
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        decode_resp(&raw_response(0x12, &body)),
        Err(ProtocolError::ShortField("message"))
    );
    // No count at all, or a partial one.
    assert_eq!(
        decode_resp(&raw_response(0x12, &[])),
        Err(ProtocolError::ShortField("count"))
    );
    assert_eq!(
        decode_resp(&raw_response(0x12, &[0, 0])),
        Err(ProtocolError::ShortField("count"))
    );
    // A count of u32::MAX with an empty body: an error, found quickly.
    assert_eq!(
        decode_resp(&raw_response(0x12, &u32::MAX.to_be_bytes())),
        Err(ProtocolError::ShortField("message_len"))
    );
    // Errors of this kind map to MALFORMED.
    assert_eq!(
        ProtocolError::ShortField("message").code(),
        ErrorCode::Malformed
    );
}

/// Fixed-size bodies cut short are errors naming the missing field.
#[test]
fn short_response_bodies_are_errors() {
    let cases: [(u8, &[u8], &str); 8] = [
        (0x02, &[0], "version"),
        (0x02, &[0, 1, 0, 0, 0], "max_message_size"),
        (0x02, &[0, 1, 0, 0, 0, 9], "server"),
        (0x02, &[0, 1, 0, 0, 0, 9, 5, b'a'], "server"),
        (0x11, &[0, 0, 0, 1, 0, 0], "stored_len"),
        (0x14, &[0, 0, 0, 0, 0, 0, 0], "count"),
        (0x7F, &[0, 1], "fatal"),
        (0x7F, &[], "code"),
    ];
    for (status, body, field) in cases {
        assert_eq!(
            decode_resp(&raw_response(status, body)),
            Err(ProtocolError::ShortField(field)),
            "status {status:#x} body {body:?}"
        );
    }
}

/// A `STATS` body that is cut short or claims more entries than it holds is an
/// error; a huge declared queue count does not allocate for it.
#[test]
fn malformed_stats_bodies_are_errors() {
    let mut full = Vec::new();
    sample_stats().encode(&mut full);
    let body = &full[RESPONSE_HEADER..];
    for cut in 0..body.len() {
        let frame = raw_response(0x20, &body[..cut]);
        let result = decode_resp(&frame);
        assert!(
            matches!(result, Err(ProtocolError::ShortField(_))),
            "cut at {cut}: {result:?}"
        );
    }
    // No server fields, u32::MAX queues, nothing else.
    let mut body = 0u16.to_be_bytes().to_vec();
    body.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        decode_resp(&raw_response(0x20, &body)),
        Err(ProtocolError::ShortField("queue"))
    );
    // u16::MAX server fields, none present.
    assert_eq!(
        decode_resp(&raw_response(0x20, &u16::MAX.to_be_bytes())),
        Err(ProtocolError::ShortField("field_name"))
    );
    // A field name that is not UTF-8.
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(&[1, 0xFF]);
    body.extend_from_slice(&7u64.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    let err = decode_resp(&raw_response(0x20, &body)).unwrap_err();
    assert!(matches!(err, ProtocolError::BadArgument(_)), "{err:?}");
}

/// Text fields that are not UTF-8 (the HELLO server name, the ERROR message) are
/// `BadArgument`, not a panic.
#[test]
fn non_utf8_text_in_responses_is_bad_argument() {
    let err = decode_resp(&raw_response(0x02, &[0, 1, 0, 0, 0, 1, 1, 0xFF])).unwrap_err();
    assert!(matches!(err, ProtocolError::BadArgument(_)), "{err:?}");
    let err = decode_resp(&raw_response(0x7F, &[0, 1, 1, 0xC3])).unwrap_err();
    assert!(matches!(err, ProtocolError::BadArgument(_)), "{err:?}");
}

/// An `ERROR` with a code newer than this crate keeps the number, and any non-zero
/// fatal byte means fatal.
#[test]
fn error_response_keeps_unknown_codes() {
    assert_eq!(
        decode_one(&raw_response(0x7F, &[0x03, 0xE7, 2, b'h', b'i'])),
        Response::Error {
            code: 999,
            fatal: true,
            message: "hi"
        }
    );
    assert_eq!(ErrorCode::from_u16(999), None);
}

/// Bytes after the fields a status defines are accepted and skipped (forward
/// compatibility): the response is decoded from its known fields and the whole
/// frame is consumed.
#[test]
fn responses_accept_trailing_bytes() {
    let extra = [0xAB, 0xCD, 0xEF];
    let with_extra = |status: u8, body: &[u8]| {
        let mut b = body.to_vec();
        b.extend_from_slice(&extra);
        raw_response(status, &b)
    };
    let cases: Vec<(Vec<u8>, Response<'static>)> = vec![
        (with_extra(0x01, &[]), Response::Pong),
        (with_extra(0x03, &[]), Response::Bye),
        (with_extra(0x10, &[]), Response::Stored),
        (with_extra(0x13, &[]), Response::Empty),
        (
            with_extra(0x14, &42u64.to_be_bytes()),
            Response::Purged { count: 42 },
        ),
        (
            with_extra(0x11, &[0, 0, 0, 9, 0, 0, 0, 4]),
            Response::Truncated {
                original_len: 9,
                stored_len: 4,
            },
        ),
        (
            with_extra(0x02, &[0, 1, 0, 0, 1, 0, 2, b'b', b'z']),
            Response::Hello {
                version: 1,
                max_message_size: 256,
                server: "bz",
                limits: None,
            },
        ),
    ];
    for (frame, expected) in cases {
        assert_eq!(decode_one(&frame), expected);
    }
    // A MESSAGES frame with bytes after its messages yields only its messages.
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&2u32.to_be_bytes());
    body.extend_from_slice(b"ok");
    body.extend_from_slice(&extra);
    match decode_one(&raw_response(0x12, &body)) {
        Response::Messages(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m.iter().collect::<Vec<_>>(), [&b"ok"[..]]);
        }
        other => panic!("{other:?}"),
    }
    // A STATS frame with bytes after its last queue.
    let mut stats = Vec::new();
    sample_stats().encode(&mut stats);
    let mut body = stats[RESPONSE_HEADER..].to_vec();
    body.extend_from_slice(&extra);
    assert_eq!(
        decode_one(&raw_response(0x20, &body)),
        Response::Stats(sample_stats())
    );
}

/// Several responses back to back in one buffer decode one after the other.
#[test]
fn many_responses_back_to_back() {
    let samples = sample_responses();
    let mut buf = Vec::new();
    for (frame, _) in &samples {
        buf.extend_from_slice(frame);
    }
    let mut pos = 0;
    for (_, expected) in &samples {
        let (resp, n) = decode_resp(&buf[pos..]).unwrap().unwrap();
        assert_eq!(&resp, expected);
        pos += n;
    }
    assert_eq!(pos, buf.len());
    assert_eq!(decode_resp(&buf[pos..]), Ok(None));
}

// ---------------------------------------------------------------------------
// The examples of protocol.md, section 10
// ---------------------------------------------------------------------------

pub(super) fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// The request hex dumps of protocol.md section 10 are exactly what the encoder
/// writes, and decode back to the same requests.
#[test]
fn spec_request_examples_match_the_codec() {
    let cases = [
        ("00 00 00 02 02 00", Request::Ping),
        (
            "00 00 00 0c 10 00 04 6a 6f 62 73 68 65 6c 6c 6f",
            Request::Put {
                queue: "jobs",
                payload: b"hello",
            },
        ),
        (
            "00 00 00 0d 11 00 04 6a 6f 62 73 00 00 00 00 00 01",
            Request::Get {
                queue: "jobs",
                wait_ms: 0,
                max: 1,
            },
        ),
        ("00 00 00 04 01 00 00 01", Request::Hello { version: 1 }),
        ("00 00 00 02 03 00", Request::Quit),
        (
            "00 00 00 07 12 00 04 6a 6f 62 73",
            Request::Purge { queue: "jobs" },
        ),
        ("00 00 00 03 20 00 00", Request::Stats { queue: None }),
        (
            "00 00 00 07 20 00 04 6a 6f 62 73",
            Request::Stats {
                queue: Some("jobs"),
            },
        ),
        (
            "00 00 00 0d 11 00 04 6a 6f 62 73 ff ff ff ff 00 0a",
            Request::Get {
                queue: "jobs",
                wait_ms: WAIT_FOREVER,
                max: 10,
            },
        ),
    ];
    for (dump, req) in cases {
        let bytes = hex(dump);
        assert_eq!(encode(&req), bytes, "{req:?}");
        assert_eq!(
            decode(&bytes),
            Ok(Some((Decoded::Request(req), bytes.len())))
        );
    }
    // 10.5: the head of a 20000-byte PUT under a 10240-byte limit.
    let head = hex("00 00 4e 27 10 00 04 6a 6f 62 73");
    assert_eq!(
        decode_request(&head, 10240),
        Ok(Some((
            Decoded::PutHead {
                queue: "jobs",
                options: None,
                unique: None,
                ttl: None,
                payload_len: 20000
            },
            head.len()
        )))
    );
    // 10.6: opcode 0x2F is unknown.
    assert_eq!(
        decode(&hex("00 00 00 02 2f 00")),
        Err(ProtocolError::UnknownOpcode(0x2F))
    );
}

/// The response hex dumps of protocol.md section 10 are exactly what the encoders
/// write, and decode back to the same responses.
#[test]
fn spec_response_examples_match_the_codec() {
    let check = |dump: &str, encoded: Vec<u8>| {
        let bytes = hex(dump);
        assert_eq!(encoded, bytes, "{dump}");
        decode_one(&bytes);
    };
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut buf = Vec::new();
        f(&mut buf);
        buf
    };
    check("00 00 00 01 01", with(&|b| encode_empty(b, Status::Pong)));
    check("00 00 00 01 10", with(&|b| encode_empty(b, Status::Stored)));
    check("00 00 00 01 13", with(&|b| encode_empty(b, Status::Empty)));
    check("00 00 00 01 03", with(&|b| encode_empty(b, Status::Bye)));
    check(
        "00 00 00 0e 12 00 00 00 01 00 00 00 05 68 65 6c 6c 6f",
        messages_frame(&[b"hello"]),
    );
    check(
        "00 00 00 14 12 00 00 00 02 00 00 00 03 6f 6e 65 00 00 00 04 74 77 6f 21",
        messages_frame(&[b"one", b"two!"]),
    );
    check(
        "00 00 00 09 11 00 00 4e 20 00 00 28 00",
        with(&|b| encode_truncated(b, 20000, 10240)),
    );
    check(
        "00 00 00 17 7f 00 02 01 75 6e 6b 6e 6f 77 6e 20 6f 70 63 6f 64 65 20 30 78 32 66",
        with(&|b| {
            let err = ProtocolError::UnknownOpcode(0x2F);
            encode_error(b, err.code(), true, &err.to_string());
        }),
    );
    check(
        "00 00 00 13 02 00 01 00 10 00 00 0b 62 65 75 73 73 20 30 2e 31 2e 30",
        with(&|b| encode_hello(b, 1, 1 << 20, "beuss 0.1.0")),
    );
    check(
        "00 00 00 09 14 00 00 00 00 00 00 00 03",
        with(&|b| encode_purged(b, 3)),
    );
    let stats = StatsReport {
        server: vec![("uptime_seconds".into(), 42), ("queues".into(), 1)],
        queues: vec![QueueReport {
            name: "jobs".into(),
            fields: vec![("messages".into(), 2)],
        }],
    };
    check(
        "00 00 00 45 20 00 02 0e 75 70 74 69 6d 65 5f 73 65 63 6f 6e 64 73 00 00 00 00 \
         00 00 00 2a 06 71 75 65 75 65 73 00 00 00 00 00 00 00 01 00 00 00 01 04 6a 6f \
         62 73 00 01 08 6d 65 73 73 61 67 65 73 00 00 00 00 00 00 00 02",
        with(&|b| stats.encode(b)),
    );
}

/// Hex bytes at the start of `text`, up to its first token that is not one; true if
/// that token starts with `...` (the dump elides the rest of the frame).
fn leading_hex(text: &str) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    for token in text.split_whitespace() {
        match u8::from_str_radix(token, 16) {
            Ok(byte) if token.len() == 2 => bytes.push(byte),
            _ => return (bytes, token.starts_with("...")),
        }
    }
    (bytes, false)
}

/// The frames one subsection of protocol.md section 10 shows, in order, read from the
/// document itself so that it cannot drift from the codec unnoticed: (direction,
/// bytes, elided). In a code block, a frame starts at a `>` (client to server) or `<`
/// (server to client) followed by hex bytes, and goes on over the lines right after
/// it that are indented by exactly two spaces; the field-by-field breakdown, indented
/// by four, is not read. A dump cut short with `...` is returned as far as it goes.
pub(super) fn documented_frames(heading: &str) -> Vec<(char, Vec<u8>, bool)> {
    const DOC: &str = include_str!("../../protocol.md");
    let start = DOC
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("no heading {heading:?} in protocol.md"))
        + 1;
    let section = &DOC[start..];
    let end = section.find("\n#").unwrap_or(section.len());
    let mut frames: Vec<(char, Vec<u8>, bool)> = Vec::new();
    let mut in_code = false;
    // Whether the last line read was part of a frame, so that a two-space line goes on.
    let mut open = false;
    for line in section[..end].lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            open = false;
            continue;
        }
        if !in_code {
            continue;
        }
        if let Some(at) = line.find(['>', '<']) {
            let (bytes, elided) = leading_hex(&line[at + 1..]);
            if !bytes.is_empty() {
                frames.push((char::from(line.as_bytes()[at]), bytes, elided));
                open = !elided;
                continue;
            }
        }
        let continued = line
            .strip_prefix("  ")
            .filter(|rest| !rest.starts_with(' '));
        match (open, continued, frames.last_mut()) {
            (true, Some(rest), Some(frame)) => {
                let (bytes, elided) = leading_hex(rest);
                frame.1.extend(bytes);
                frame.2 = elided;
            }
            _ => open = false,
        }
    }
    frames
}

/// Checks every frame of the examples subsection of a section (the heading that starts
/// with `prefix` and names "Examples") against the codec: a `>` frame decodes as a
/// whole request and re-encodes the same; a `<` frame decodes as a response and
/// re-encodes the same. Returns how many frames it checked.
pub(super) fn check_documented_examples(prefix: &str) -> usize {
    const DOC: &str = include_str!("../../protocol.md");
    let heading = DOC
        .lines()
        .find(|l| l.starts_with(prefix) && l.contains("Examples"))
        .unwrap_or_else(|| panic!("no examples subsection {prefix}"));
    let frames = documented_frames(heading);
    for (dir, bytes, elided) in &frames {
        let what = format!("{heading}: {dir} {bytes:02x?}");
        assert!(!elided, "{what}");
        match dir {
            '>' => {
                let Ok(Some((Decoded::Request(req), used))) = decode(bytes) else {
                    panic!("{what}: {:?}", decode(bytes));
                };
                assert_eq!(used, bytes.len(), "{what}");
                assert_eq!(&encode(&req), bytes, "{what}");
            }
            _ => assert_eq!(&encode_response(&decode_one(bytes)), bytes, "{what}"),
        }
    }
    frames.len()
}

/// Every frame protocol.md section 13's examples show is what the codec writes.
#[test]
fn every_frame_in_section_13_is_what_the_codec_writes() {
    let checked = check_documented_examples("### 13.");
    assert!(
        checked >= 20,
        "only {checked} frames in section 13's examples"
    );
}

/// The examples file the Python, TypeScript and Go clients test their codecs against
/// (`clients/testdata/protocol-examples.json`) holds exactly the frames protocol.md
/// shows in sections 10, 13 and 15, so that the four codecs check the same bytes and
/// the document stays their one source. `BEUSS_BLESS=1 cargo test` rewrites the file
/// after the document changed.
#[test]
fn client_examples_file_is_the_documents_frames() {
    const DOC: &str = include_str!("../../protocol.md");
    const PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/testdata/protocol-examples.json"
    );
    let mut json = String::from("{\"frames\": [\n");
    let mut first = true;
    let headings = DOC.lines().filter(|l| {
        l.starts_with("### 10.") || (l.starts_with("### 1") && l.contains("Examples (hex dumps)"))
    });
    for heading in headings {
        let section = heading[4..].split(' ').next().unwrap_or_default();
        let title = heading.replace('\\', "\\\\").replace('"', "\\\"");
        for (index, (dir, bytes, elided)) in documented_frames(heading).into_iter().enumerate() {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if !first {
                json.push_str(",\n");
            }
            first = false;
            json.push_str(&format!(
                "  {{\"section\": \"{section}\", \"heading\": \"{title}\", \"index\": {index}, \
                 \"dir\": \"{dir}\", \"hex\": \"{hex}\", \"elided\": {elided}}}"
            ));
        }
    }
    json.push_str("\n]}\n");
    if std::env::var_os("BEUSS_BLESS").is_some() {
        std::fs::write(PATH, &json).expect("write the examples file");
    }
    let file = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        file == json,
        "{PATH} is not the frames of protocol.md: run `BEUSS_BLESS=1 cargo test \
         client_examples_file` and commit the file"
    );
}

/// Writes `resp` with the server's encoders.
pub(super) fn encode_response(resp: &Response<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    match resp {
        Response::Pong => encode_empty(&mut buf, Status::Pong),
        Response::Bye => encode_empty(&mut buf, Status::Bye),
        Response::Authed { read_only } => encode_authed(&mut buf, *read_only),
        Response::Stored => encode_empty(&mut buf, Status::Stored),
        Response::Empty => encode_empty(&mut buf, Status::Empty),
        Response::Hello {
            version,
            max_message_size,
            server,
            limits: None,
        } => encode_hello(&mut buf, *version, *max_message_size, server),
        Response::Hello {
            version,
            max_message_size,
            server,
            limits: Some(limits),
        } => encode_hello_v2(&mut buf, *version, *max_message_size, server, limits),
        Response::Truncated {
            original_len,
            stored_len,
        } => encode_truncated(&mut buf, *original_len, *stored_len),
        Response::Messages(messages) => {
            let mut w = MessagesWriter::begin(&mut buf);
            for payload in messages.iter() {
                w.push(&mut buf, payload);
            }
            w.finish(&mut buf);
        }
        Response::Purged { count } => encode_purged(&mut buf, *count),
        Response::Stats(report) => report.encode(&mut buf),
        Response::StoredId { id } => encode_stored_id(&mut buf, *id),
        Response::TruncatedId {
            original_len,
            stored_len,
            id,
        } => encode_truncated_id(&mut buf, *original_len, *stored_len, *id),
        Response::Leased(d) | Response::Peeked(d) => {
            let status = if matches!(resp, Response::Leased(_)) {
                Status::Leased
            } else {
                Status::Peeked
            };
            let mut w = LeasedWriter::begin(&mut buf, status);
            for delivery in d.iter() {
                w.push(&mut buf, delivery.lease, delivery.payload);
            }
            w.finish(&mut buf);
        }
        Response::Settled(settled) => {
            let mut w = SettledWriter::begin(&mut buf);
            for result in settled.iter().flatten() {
                w.push(&mut buf, result);
            }
            w.finish(&mut buf);
        }
        Response::Moved { count } => encode_moved(&mut buf, *count),
        Response::Bound { created } => encode_bound(&mut buf, *created),
        Response::Unbound { removed } => encode_unbound(&mut buf, *removed),
        Response::Published(published) => encode_published(&mut buf, published),
        Response::Subscribed { sid } => encode_subscribed(&mut buf, *sid),
        Response::Unsubscribed { removed } => encode_unsubscribed(&mut buf, *removed),
        Response::Reply { payload } => encode_reply(&mut buf, payload),
        Response::Replied { delivered } => encode_replied(&mut buf, *delivered),
        Response::Scheduled {
            created,
            next_run_ms,
        } => encode_scheduled(&mut buf, *created, *next_run_ms),
        Response::Unscheduled { removed } => encode_unscheduled(&mut buf, *removed),
        Response::SchedulePaused { found, next_run_ms } => {
            encode_schedule_paused(&mut buf, *found, *next_run_ms)
        }
        Response::ScheduleList(list) => encode_schedule_list(&mut buf, list),
        Response::Envelopes(envelopes) => {
            let mut w = EnvelopesWriter::begin(&mut buf);
            for e in envelopes.iter() {
                w.push(
                    &mut buf,
                    e.id,
                    e.attempt,
                    e.meta.subject(),
                    e.meta.reply_to(),
                    e.payload,
                );
            }
            w.finish(&mut buf);
        }
        Response::Event { sid, meta, payload } => encode_event(
            &mut buf,
            *sid,
            meta.subject(),
            meta.reply_to(),
            meta.dropped(),
            payload,
        ),
        Response::Duplicate { id, holder } => encode_duplicate(&mut buf, *id, *holder),
        Response::Replaced {
            id,
            original_len,
            stored_len,
        } => encode_replaced(&mut buf, *id, *original_len, *stored_len),
        Response::Error {
            code,
            fatal,
            message,
        } => {
            let code = ErrorCode::from_u16(*code).expect("a version-1 error code");
            encode_error(&mut buf, code, *fatal, message);
        }
    }
    buf
}

/// Every frame protocol.md section 10 shows, read from the document, is one the codec
/// reads back and writes again byte for byte: a `>` frame decodes as a whole request
/// (an elided PUT as a head) and re-encodes the same; a `<` frame decodes as a
/// response and re-encodes the same.
#[test]
fn every_frame_in_section_10_is_what_the_codec_writes() {
    const DOC: &str = include_str!("../../protocol.md");
    let headings: Vec<&str> = DOC.lines().filter(|l| l.starts_with("### 10.")).collect();
    assert!(headings.len() >= 8, "section 10 subsections: {headings:?}");
    let mut checked = 0;
    for heading in headings {
        let frames = documented_frames(heading);
        assert!(!frames.is_empty(), "{heading}: no frame found");
        for (dir, bytes, elided) in frames {
            let what = format!("{heading}: {dir} {bytes:02x?}");
            match (dir, elided) {
                ('>', true) => {
                    let (head, used) = decode_request(&bytes, 0).expect(&what).expect(&what);
                    assert!(matches!(head, Decoded::PutHead { .. }), "{what}");
                    assert_eq!(used, bytes.len(), "{what}");
                }
                ('>', false) => {
                    let (decoded, used) = decode(&bytes).expect(&what).expect(&what);
                    assert_eq!(used, bytes.len(), "{what}");
                    let Decoded::Request(req) = decoded else {
                        panic!("{what}: not a whole request");
                    };
                    assert_eq!(encode(&req), bytes, "{what}");
                }
                ('<', false) => assert_eq!(encode_response(&decode_one(&bytes)), bytes, "{what}"),
                _ => panic!("{what}: an elided response"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} frames found in section 10");
}

/// protocol.md section 10.3 shows every request with its reply, as the codec writes
/// them: GET max 1 answered with "hello"; then PUT "one", PUT "two!" and a GET max
/// 10 that gets both in one reply.
#[test]
fn section_10_3_is_the_codec_output() {
    let put = |payload: &'static [u8]| {
        encode(&Request::Put {
            queue: "jobs",
            payload,
        })
    };
    let get = |max| {
        encode(&Request::Get {
            queue: "jobs",
            wait_ms: 0,
            max,
        })
    };
    let mut stored = Vec::new();
    encode_empty(&mut stored, Status::Stored);
    let expected = vec![
        ('>', get(1)),
        ('<', messages_frame(&[b"hello"])),
        ('>', put(b"one")),
        ('<', stored.clone()),
        ('>', put(b"two!")),
        ('<', stored),
        ('>', get(10)),
        ('<', messages_frame(&[b"one", b"two!"])),
    ];
    let shown: Vec<(char, Vec<u8>)> = documented_frames("### 10.3 ")
        .into_iter()
        .map(|(dir, bytes, _)| (dir, bytes))
        .collect();
    assert_eq!(shown, expected);
}

// ---------------------------------------------------------------------------
// Fuzz-style robustness
// ---------------------------------------------------------------------------

/// Checks the properties every decoder answer must have on arbitrary input; the
/// absence of a panic is checked by the call itself.
pub(super) fn check_decoders(buf: &[u8], max_payload: usize, max_len: u32) {
    match decode_request(buf, max_payload) {
        Ok(Some((decoded, n))) => {
            assert!(n <= buf.len(), "consumed {n} of {} in {buf:?}", buf.len());
            assert!(n >= REQUEST_HEADER, "{buf:?}");
            // The answer depends only on the bytes consumed.
            assert_eq!(
                decode_request(&buf[..n], max_payload),
                Ok(Some((decoded, n))),
                "{buf:?}"
            );
            match decoded {
                // A decoder-accepted request re-encodes to exactly its bytes.
                Decoded::Request(req) => assert_eq!(encode(&req), &buf[..n], "{buf:?}"),
                Decoded::PutHead {
                    queue,
                    options,
                    unique,
                    ttl,
                    payload_len,
                } => {
                    assert!(payload_len as usize > max_payload);
                    let fields = if options.is_some() {
                        PUT_OPTIONS_LEN
                    } else {
                        0
                    };
                    let key = unique.map_or(0, |u| u.wire_len());
                    let ttl = if ttl.is_some() { TTL_LEN } else { 0 };
                    assert_eq!(n, REQUEST_HEADER + 1 + queue.len() + fields + key + ttl);
                }
                // A head is the frame without its payload: the same bytes but for the
                // length prefix.
                Decoded::BodyHead { head, payload_len } => {
                    assert!(payload_len as usize > max_payload);
                    let frame = encode(&head.with_payload(&[]));
                    assert_eq!(frame.len(), n, "{buf:?}");
                    assert_eq!(frame[LEN_PREFIX..], buf[LEN_PREFIX..n], "{buf:?}");
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.code();
            assert!(!e.to_string().is_empty());
        }
    }
    match decode_response(buf, max_len) {
        Ok(Some((resp, n))) => {
            assert!(n <= buf.len(), "consumed {n} of {} in {buf:?}", buf.len());
            assert!(n > LEN_PREFIX, "{buf:?}");
            assert_eq!(
                decode_response(&buf[..n], max_len),
                Ok(Some((resp.clone(), n)))
            );
            if let Response::Messages(m) = resp {
                assert_eq!(m.iter().count(), m.len(), "{buf:?}");
            }
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.code();
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Random byte strings (length 0..64, many with a plausible length prefix and a
/// real opcode or status byte) never make either decoder panic or claim more bytes
/// than it was given; whatever it accepts is self-consistent.
#[test]
fn fuzz_random_bytes_never_panic() {
    const CODES: [u8; 22] = [
        0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x20, 0x7F, 0x00, 0x04, 0xFF, 0x30, 0x31,
        0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x3F,
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut requests, mut responses) = (0, 0);
    for _ in 0..20_000 {
        let len = rng.index(64);
        let mut buf: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Most of the time, make the frame look plausible so the fuzz gets past the
        // first checks.
        if len >= 6 && rng.index(4) != 0 {
            let declared = rng.index(len + 4) as u32;
            buf[..4].copy_from_slice(&declared.to_be_bytes());
            buf[4] = CODES[rng.index(CODES.len())];
            if rng.index(3) != 0 {
                buf[5] = 0;
            }
            if len >= 7 && rng.index(2) == 0 {
                buf[6] = rng.index(8) as u8;
            }
        }
        let max_payload = rng.index(32);
        let max_len = rng.index(80) as u32;
        check_decoders(&buf, max_payload, max_len);
        if matches!(decode_request(&buf, max_payload), Ok(Some(_))) {
            requests += 1;
        }
        if matches!(decode_response(&buf, max_len), Ok(Some(_))) {
            responses += 1;
        }
    }
    // The generator reaches the decoders' success paths, not only their errors.
    assert!(requests >= 50, "only {requests} requests accepted");
    assert!(responses >= 50, "only {responses} responses accepted");
}

/// Random mutations of valid request and response frames (byte flips, insertions,
/// deletions, truncations, rewritten length prefixes, concatenations) never make
/// either decoder panic or over-consume.
#[test]
fn fuzz_mutated_valid_frames_never_panic() {
    let mut frames: Vec<Vec<u8>> = sample_requests().iter().map(encode).collect();
    frames.extend(sample_responses().into_iter().map(|(f, _)| f));
    frames.extend(super::fanout::tests::fuzz_seeds());
    frames.push(messages_frame(&[b"abc", b"", b"defgh"]));
    // Keep mutations cheap: skip the frames over 200 bytes except as-is.
    let small: Vec<Vec<u8>> = frames.iter().filter(|f| f.len() <= 200).cloned().collect();
    for frame in &frames {
        check_decoders(frame, BIG, MAX_RESPONSE);
    }
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let mut buf = small[rng.index(small.len())].clone();
        for _ in 0..1 + rng.index(4) {
            match rng.index(7) {
                0 if !buf.is_empty() => {
                    let i = rng.index(buf.len());
                    buf[i] ^= 1 << rng.index(8);
                }
                1 if !buf.is_empty() => {
                    let i = rng.index(buf.len());
                    buf[i] = rng.byte();
                }
                2 => {
                    let i = rng.index(buf.len() + 1);
                    buf.insert(i, rng.byte());
                }
                3 if !buf.is_empty() => {
                    let i = rng.index(buf.len());
                    buf.remove(i);
                }
                4 => {
                    let end = rng.index(buf.len() + 1);
                    buf.truncate(end);
                }
                5 if buf.len() >= 4 => {
                    let declared = match rng.index(3) {
                        0 => rng.index(buf.len() + 2) as u32,
                        1 => rng.next() as u32,
                        _ => (buf.len() - LEN_PREFIX) as u32,
                    };
                    buf[..4].copy_from_slice(&declared.to_be_bytes());
                }
                _ => {
                    let other = &small[rng.index(small.len())];
                    buf.extend_from_slice(other);
                }
            }
        }
        let max_payload = [0, 3, 16, BIG][rng.index(4)];
        let max_len = [0, 8, 64, MAX_RESPONSE][rng.index(4)];
        check_decoders(&buf, max_payload, max_len);
    }
}
