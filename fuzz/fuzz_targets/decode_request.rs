//! The request decoder fed arbitrary bytes in arbitrary pieces, the way the server
//! reads a connection (`Server::process`): decode at the front of what is buffered,
//! consume what a request used, skip the payload of a `PUT`/`PUB`/`REQ`/`REPLY`
//! head that came back over the limit, stop at the first error.
//!
//! Input: byte 0 picks the payload limit, byte 1 the number `k` of piece sizes,
//! the next `k` bytes the piece sizes (used in turn; none: one byte at a time),
//! the rest is the stream.
//!
//! Checked, beyond "no panic": the requests, heads and error found, and where each
//! starts and ends, are the same whatever the pieces (the whole stream at once is
//! the reference); and each decoded frame obeys what `check_decoders` in
//! src/protocol/tests.rs states: it claims no more bytes than it was given,
//! decodes the same from exactly its own bytes, and re-encodes to those bytes.
#![no_main]

use beuss::protocol::{
    Decoded, LEN_PREFIX, PUT_OPTIONS_LEN, ProtocolError, REQUEST_HEADER, TTL_LEN, decode_request,
};
use libfuzzer_sys::fuzz_target;

#[path = "shared/pieces.rs"]
mod pieces;
use pieces::split_input;

/// Payload limits: small ones so that heads over the limit are reached with
/// short inputs, and the server's default (1 MiB).
const LIMITS: [usize; 8] = [0, 1, 3, 8, 64, 1024, 65_536, 1 << 20];

/// What the server would do with one frame.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A request or a head over the limit at `start`, `used` bytes long; the
    /// payload of a head, `skip` bytes, follows it.
    Frame {
        start: usize,
        used: usize,
        skip: usize,
    },
    /// The connection is closed with this error for the frame at `start`.
    Error { start: usize, error: ProtocolError },
}

/// How a run ended: every event, and where the stream stood.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    /// Bytes consumed (requests and skipped payload).
    pos: usize,
    /// Payload bytes still to skip.
    skipping: usize,
}

fn run(stream: &[u8], pieces: &[usize], max_payload: usize) -> Outcome {
    let mut out = Outcome {
        events: Vec::new(),
        pos: 0,
        skipping: 0,
    };
    let mut received = 0;
    let mut turn = 0;
    while received < stream.len() {
        let piece = pieces.get(turn % pieces.len().max(1)).copied().unwrap_or(1);
        turn += 1;
        received = (received + piece).min(stream.len());
        loop {
            if out.skipping > 0 {
                let n = out.skipping.min(received - out.pos);
                out.pos += n;
                out.skipping -= n;
                if out.skipping > 0 {
                    break;
                }
            }
            let buf = &stream[out.pos..received];
            match decode_request(buf, max_payload) {
                Ok(None) => break,
                Ok(Some((decoded, used))) => {
                    let skip = check_frame(buf, decoded, used, max_payload);
                    out.events.push(Event::Frame {
                        start: out.pos,
                        used,
                        skip,
                    });
                    out.pos += used;
                    out.skipping = skip;
                }
                Err(error) => {
                    assert!(!error.to_string().is_empty());
                    let _ = error.code();
                    out.events.push(Event::Error {
                        start: out.pos,
                        error,
                    });
                    return out;
                }
            }
        }
    }
    out
}

/// The properties of one decoded frame; returns the payload bytes to skip.
fn check_frame(buf: &[u8], decoded: Decoded<'_>, used: usize, max_payload: usize) -> usize {
    assert!(used <= buf.len(), "consumed {used} of {}", buf.len());
    assert!(used >= REQUEST_HEADER);
    // The answer depends only on the bytes consumed.
    assert_eq!(
        decode_request(&buf[..used], max_payload),
        Ok(Some((decoded, used)))
    );
    match decoded {
        Decoded::Request(request) => {
            let mut frame = Vec::new();
            assert!(request.encode(&mut frame).is_ok(), "{request:?}");
            assert_eq!(frame, &buf[..used], "{request:?}");
            0
        }
        Decoded::PutHead {
            queue,
            options,
            unique,
            ttl,
            payload_len,
        } => {
            assert!(payload_len as usize > max_payload);
            let options_len = if options.is_some() {
                PUT_OPTIONS_LEN
            } else {
                0
            };
            let key_len = unique.map_or(0, |u| u.wire_len());
            let ttl_len = if ttl.is_some() { TTL_LEN } else { 0 };
            assert_eq!(
                used,
                REQUEST_HEADER + 1 + queue.len() + options_len + key_len + ttl_len
            );
            // The declared frame is exactly the head and the payload.
            let declared = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            assert_eq!(LEN_PREFIX + declared, used + payload_len as usize);
            payload_len as usize
        }
        Decoded::BodyHead { head, payload_len } => {
            assert!(payload_len as usize > max_payload);
            // A head is the frame without its payload: the same bytes but for the
            // length prefix.
            let mut frame = Vec::new();
            assert!(head.with_payload(&[]).encode(&mut frame).is_ok());
            assert_eq!(frame.len(), used);
            assert_eq!(frame[LEN_PREFIX..], buf[LEN_PREFIX..used]);
            let declared = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            assert_eq!(LEN_PREFIX + declared, used + payload_len as usize);
            payload_len as usize
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((max_payload, pieces, stream)) = split_input(data, &LIMITS) else {
        return;
    };
    let whole = run(stream, &[stream.len().max(1)], max_payload);
    let split = run(stream, &pieces, max_payload);
    assert_eq!(whole, split, "pieces {pieces:?}, limit {max_payload}");
});
