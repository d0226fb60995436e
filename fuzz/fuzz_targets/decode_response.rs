//! The response decoder the clients use, fed arbitrary bytes in arbitrary pieces
//! (a server, or anything at the address, can send anything).
//!
//! Input: byte 0 picks the length cap, byte 1 the number `k` of piece sizes, the
//! next `k` bytes the piece sizes (used in turn; none: one byte at a time), the rest
//! is the stream.
//!
//! Checked, beyond "no panic": the responses and error found, and where each starts
//! and ends, are the same whatever the pieces; each decoded frame claims no more
//! bytes than it was given and decodes the same from exactly its own bytes; every
//! list in it (messages, deliveries, settle results, envelopes, metadata) iterates
//! to the count it declares; a `STATS` report re-encodes to one that decodes to
//! itself.
#![no_main]

use beuss::protocol::{LEN_PREFIX, ProtocolError, Response, decode_response};
use libfuzzer_sys::fuzz_target;

#[path = "shared/pieces.rs"]
mod pieces;
use pieces::split_input;

/// Length caps: the client's (`MAX_RESPONSE` in src/client.rs), and small ones.
const CAPS: [u32; 4] = [(1 << 30) + 4096, 0, 16, 1024];

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Frame { start: usize, used: usize },
    Error { start: usize, error: ProtocolError },
}

fn run(stream: &[u8], pieces: &[usize], max_len: u32) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut pos = 0;
    let mut received = 0;
    let mut turn = 0;
    while received < stream.len() {
        let piece = pieces.get(turn % pieces.len().max(1)).copied().unwrap_or(1);
        turn += 1;
        received = (received + piece).min(stream.len());
        loop {
            let buf = &stream[pos..received];
            match decode_response(buf, max_len) {
                Ok(None) => break,
                Ok(Some((response, used))) => {
                    check_frame(buf, response, used, max_len);
                    events.push(Event::Frame { start: pos, used });
                    pos += used;
                }
                Err(error) => {
                    assert!(!error.to_string().is_empty());
                    let _ = error.code();
                    events.push(Event::Error { start: pos, error });
                    return (events, pos);
                }
            }
        }
    }
    (events, pos)
}

fn check_frame(buf: &[u8], response: Response<'_>, used: usize, max_len: u32) {
    assert!(used <= buf.len(), "consumed {used} of {}", buf.len());
    assert!(used > LEN_PREFIX);
    assert_eq!(
        decode_response(&buf[..used], max_len),
        Ok(Some((response.clone(), used)))
    );
    match response {
        Response::Messages(m) => assert_eq!(m.iter().count(), m.len()),
        Response::Leased(d) | Response::Peeked(d) => {
            assert_eq!(d.iter().count(), d.len());
            for delivery in d.iter() {
                assert!(delivery.payload.len() <= used);
            }
        }
        Response::Settled(s) => assert_eq!(s.iter().count(), s.len()),
        Response::Envelopes(e) => {
            assert_eq!(e.iter().count(), e.len());
            for envelope in e.iter() {
                let _ = envelope.meta.iter().count();
                let _ = envelope.meta.subject();
            }
        }
        Response::Event { meta, .. } => {
            let _ = meta.iter().count();
            let _ = meta.subject();
        }
        Response::Stats(report) => {
            let mut frame = Vec::new();
            report.encode(&mut frame);
            match decode_response(&frame, u32::MAX) {
                Ok(Some((Response::Stats(again), n))) => {
                    assert_eq!(n, frame.len());
                    assert_eq!(again, report);
                }
                other => panic!("re-encoded STATS decodes as {other:?}"),
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((max_len, pieces, stream)) = split_input(data, &CAPS) else {
        return;
    };
    let whole = run(stream, &[stream.len().max(1)], max_len);
    let split = run(stream, &pieces, max_len);
    assert_eq!(whole, split, "pieces {pieces:?}, cap {max_len}");
});
