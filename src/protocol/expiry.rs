//! Version 6 of the protocol (protocol.md section 19): message expiry. A `PUT` with
//! the `PUT_TTL` flag carries a time to live; a message not delivered by then is
//! never delivered: it is dropped, or moved to the dead-letter queue.

use bytes::BufMut;

use super::leases::MAX_DELAY_MS;
use super::{ProtocolError, Reader};

/// `PUT` flag bit: the message carries a time to live (protocol.md 19.2).
pub const PUT_TTL: u8 = 0x08;

/// `HELLO` feature bit: `PUT` with a time to live.
pub const FEATURE_TTL: u32 = 0x100;

/// Longest time to live: 30 days, as the longest delay.
pub const MAX_TTL_MS: u32 = MAX_DELAY_MS;

/// Bytes of the TTL fields: ttl_ms, mode.
pub const TTL_LEN: usize = 4 + 1;

/// Mode bit: an expired message goes to the dead-letter queue, not away.
const MODE_DEAD: u8 = 0x01;

/// The time to live of a `PUT` with [`PUT_TTL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// Milliseconds from the `PUT` after which the message is never delivered; 0:
    /// it never expires, whatever its queue's default.
    pub ttl_ms: u32,
    /// An expired message is moved to the dead-letter queue instead of dropped.
    pub dead_letter: bool,
}

impl Ttl {
    /// Reads and checks the fields (exactly [`TTL_LEN`] bytes).
    pub(super) fn decode(fields: &[u8]) -> Result<Ttl, ProtocolError> {
        let mut r = Reader::new(fields);
        let ttl_ms = r.u32("ttl_ms")?;
        let mode = r.u8("ttl mode")?;
        if mode & !MODE_DEAD != 0 {
            return Err(ProtocolError::BadArgument(
                "PUT ttl mode has bits other than 0x01",
            ));
        }
        let ttl = Ttl {
            ttl_ms,
            dead_letter: mode & MODE_DEAD != 0,
        };
        ttl.check()?;
        Ok(ttl)
    }

    /// Checks what the decoder checks, before a client sends it.
    pub(super) fn check(&self) -> Result<(), ProtocolError> {
        if self.ttl_ms > MAX_TTL_MS {
            return Err(ProtocolError::BadArgument(
                "PUT ttl_ms is over 30 days (2592000000)",
            ));
        }
        Ok(())
    }

    /// Appends the fields.
    pub(super) fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u32(self.ttl_ms);
        dst.put_u8(if self.dead_letter { MODE_DEAD } else { 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_documented_examples, encode};
    use super::super::{Decoded, ErrorCode, PutOptions, Request, Unique, decode_request};
    use super::*;

    /// Every frame of protocol.md 19's examples is what the codec writes.
    #[test]
    fn every_frame_in_section_19_is_what_the_codec_writes() {
        assert_eq!(check_documented_examples("### 19."), 4);
    }

    const TTL: Ttl = Ttl {
        ttl_ms: 5000,
        dead_letter: true,
    };

    #[test]
    fn every_combination_of_put_fields_round_trips() {
        let options = PutOptions {
            delay_ms: 3,
            priority: 2,
        };
        let key = Unique {
            key: b"key",
            replace: false,
            window_ms: 9,
        };
        for options in [None, Some(options)] {
            for unique in [None, Some(key)] {
                let request = Request::PutJob {
                    queue: "q",
                    options,
                    unique,
                    ttl: Some(TTL),
                    payload: b"body",
                };
                let frame = encode(&request);
                assert_eq!(
                    decode_request(&frame, 1 << 20),
                    Ok(Some((Decoded::Request(request), frame.len())))
                );
                for end in 0..frame.len() {
                    assert_eq!(decode_request(&frame[..end], 1 << 20), Ok(None), "{end}");
                }
                // Longer than the limit: a head that keeps every field.
                let Ok(Some((Decoded::PutHead { ttl, unique: u, .. }, _))) =
                    decode_request(&frame, 2)
                else {
                    panic!("a head");
                };
                assert_eq!((ttl, u), (Some(TTL), unique));
            }
        }
    }

    #[test]
    fn bad_ttl_fields_are_refused() {
        let request = Request::PutJob {
            queue: "q",
            options: None,
            unique: None,
            ttl: Some(TTL),
            payload: b"",
        };
        let frame = encode(&request);
        let at = 4 + 2 + 2;
        let mut bad = frame.clone();
        bad[at + 4] = 0x02;
        assert_eq!(
            decode_request(&bad, 64).unwrap_err().code(),
            ErrorCode::BadArgument
        );
        let mut bad = frame.clone();
        bad[at..at + 4].copy_from_slice(&(MAX_TTL_MS + 1).to_be_bytes());
        assert_eq!(
            decode_request(&bad, 64).unwrap_err().code(),
            ErrorCode::BadArgument
        );
        // A frame that ends inside the fields.
        let mut short = frame[..at + 3].to_vec();
        short[3] = (short.len() - 4) as u8;
        assert_eq!(
            decode_request(&short, 64).unwrap_err().code(),
            ErrorCode::Malformed
        );
        // The client refuses what the server would, and a PutJob with nothing in it.
        let over = Ttl {
            ttl_ms: MAX_TTL_MS + 1,
            dead_letter: false,
        };
        for bad in [
            Request::PutJob {
                queue: "q",
                options: None,
                unique: None,
                ttl: Some(over),
                payload: b"",
            },
            Request::PutJob {
                queue: "q",
                options: None,
                unique: None,
                ttl: None,
                payload: b"",
            },
        ] {
            let mut out = Vec::new();
            assert!(bad.encode(&mut out).is_err());
            assert!(out.is_empty());
        }
    }
}
