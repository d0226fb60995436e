//! Version 6 of the protocol (protocol.md section 18): unique messages. A `PUT` with
//! the `PUT_UNIQUE` flag carries a key; while a message with that key is in the queue
//! (or remembered, for a window after it left), another is not stored, or, with the
//! replace mode, the waiting one is changed in place.

use bytes::BufMut;

use super::leases::MAX_DELAY_MS;
use super::{ProtocolError, Reader, Response, Status};

/// `PUT` flag bit: the message carries a unique key (protocol.md 18.1).
pub const PUT_UNIQUE: u8 = 0x04;

/// `HELLO` feature bit: `PUT` with a unique key, `DUPLICATE` and `REPLACED`.
pub const FEATURE_UNIQUE: u32 = 0x80;

/// Longest key: as long as a queue name.
pub const MAX_KEY_LEN: usize = 255;

/// Longest dedup window: as long as the longest delay (30 days).
pub const MAX_WINDOW_MS: u32 = MAX_DELAY_MS;

/// Mode bit of a unique `PUT`: replace the waiting message instead of refusing.
const MODE_REPLACE: u8 = 0x01;

/// Bytes of the unique fields besides the key: key_len, mode, window_ms.
pub const UNIQUE_FIXED: usize = 1 + 1 + 4;

/// The key of a `PUT` with [`PUT_UNIQUE`], and what to do with a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unique<'a> {
    /// The key: 1 to [`MAX_KEY_LEN`] bytes, any bytes.
    pub key: &'a [u8],
    /// Replace the waiting message that holds the key (ready or delayed) instead of
    /// refusing this one.
    pub replace: bool,
    /// Milliseconds the key is remembered after its message leaves the queue (0:
    /// forgotten at once).
    pub window_ms: u32,
}

/// Where the message that holds a key stands, in a `DUPLICATE` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Ready in the queue (a `PUT` without replace was refused).
    Ready = 1,
    /// Delayed (a `PUT` without replace was refused).
    Delayed = 2,
    /// In flight under a lease: never replaced.
    InFlight = 3,
    /// It left the queue, and the key is remembered for its window.
    Gone = 4,
}

impl Holder {
    /// The state byte's meaning, for messages and the CLI.
    pub fn describe(self) -> &'static str {
        match self {
            Holder::Ready => "ready",
            Holder::Delayed => "delayed",
            Holder::InFlight => "in flight",
            Holder::Gone => "consumed within its window",
        }
    }

    fn from_byte(b: u8) -> Option<Holder> {
        Some(match b {
            1 => Holder::Ready,
            2 => Holder::Delayed,
            3 => Holder::InFlight,
            4 => Holder::Gone,
            _ => return None,
        })
    }
}

impl<'a> Unique<'a> {
    /// Bytes these fields take in a frame.
    pub fn wire_len(&self) -> usize {
        UNIQUE_FIXED + self.key.len()
    }

    /// Reads the fields at the front of `fields`, which holds at least
    /// [`UNIQUE_FIXED`] bytes and the key: (fields, bytes used), or `None` until
    /// enough bytes are in (`fields` may be the whole rest of a frame).
    pub(super) fn decode(fields: &'a [u8]) -> Result<Option<(Unique<'a>, usize)>, ProtocolError> {
        let Some(&key_len) = fields.first() else {
            return Ok(None);
        };
        let key_len = usize::from(key_len);
        if key_len == 0 {
            return Err(ProtocolError::BadArgument("PUT key is empty"));
        }
        let Some(rest) = fields.get(1..1 + key_len + UNIQUE_FIXED - 1) else {
            return Ok(None);
        };
        let (key, tail) = rest.split_at(key_len);
        let mut r = Reader::new(tail);
        let mode = r.u8("unique mode")?;
        let window_ms = r.u32("window_ms")?;
        if mode & !MODE_REPLACE != 0 {
            return Err(ProtocolError::BadArgument(
                "PUT unique mode has bits other than 0x01",
            ));
        }
        if window_ms > MAX_WINDOW_MS {
            return Err(ProtocolError::BadArgument(
                "PUT window_ms is over 30 days (2592000000)",
            ));
        }
        let unique = Unique {
            key,
            replace: mode & MODE_REPLACE != 0,
            window_ms,
        };
        Ok(Some((unique, UNIQUE_FIXED + key_len)))
    }

    /// Checks what the decoder checks, before a client sends it.
    pub(super) fn check(&self) -> Result<(), ProtocolError> {
        if self.key.is_empty() {
            return Err(ProtocolError::BadArgument("PUT key is empty"));
        }
        if self.key.len() > MAX_KEY_LEN {
            return Err(ProtocolError::BadArgument(
                "PUT key is longer than 255 bytes",
            ));
        }
        if self.window_ms > MAX_WINDOW_MS {
            return Err(ProtocolError::BadArgument(
                "PUT window_ms is over 30 days (2592000000)",
            ));
        }
        Ok(())
    }

    /// Appends the fields.
    pub(super) fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.key.len() as u8);
        dst.put_slice(self.key);
        dst.put_u8(if self.replace { MODE_REPLACE } else { 0 });
        dst.put_u32(self.window_ms);
    }
}

/// Appends a `DUPLICATE` reply: message `id` holds the key and stands as `holder`.
pub fn encode_duplicate(dst: &mut impl BufMut, id: u64, holder: Holder) {
    dst.put_u32(1 + 8 + 1);
    dst.put_u8(Status::Duplicate as u8);
    dst.put_u64(id);
    dst.put_u8(holder as u8);
}

/// Appends a `REPLACED` reply: message `id` now has the new payload, of which
/// `stored_len` of `original_len` bytes were kept.
pub fn encode_replaced(dst: &mut impl BufMut, id: u64, original_len: u32, stored_len: u32) {
    dst.put_u32(1 + 8 + 4 + 4);
    dst.put_u8(Status::Replaced as u8);
    dst.put_u64(id);
    dst.put_u32(original_len);
    dst.put_u32(stored_len);
}

/// Decodes the replies of section 18 (bytes after their fields are ignored, as for
/// every reply).
pub(super) fn decode_response<'a>(
    status: Status,
    r: &mut Reader<'a>,
) -> Result<Response<'a>, ProtocolError> {
    Ok(match status {
        Status::Duplicate => Response::Duplicate {
            id: r.u64("id")?,
            holder: Holder::from_byte(r.u8("state")?)
                .ok_or(ProtocolError::BadArgument("DUPLICATE state is not 1..4"))?,
        },
        _ => Response::Replaced {
            id: r.u64("id")?,
            original_len: r.u32("original_len")?,
            stored_len: r.u32("stored_len")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_documented_examples, decode_one, encode, encode_response};
    use super::super::{Decoded, ErrorCode, PutOptions, Request, Response, decode_request};
    use super::*;

    fn put(options: Option<PutOptions>, unique: Unique<'_>) -> Vec<u8> {
        encode(&Request::PutJob {
            queue: "q",
            options,
            unique: Some(unique),
            ttl: None,
            payload: b"payload",
        })
    }

    const KEY: Unique<'static> = Unique {
        key: b"k",
        replace: true,
        window_ms: 5,
    };

    /// Every frame of protocol.md 18's examples is what the codec writes.
    #[test]
    fn every_frame_in_section_18_is_what_the_codec_writes() {
        assert_eq!(check_documented_examples("### 18."), 6);
    }

    #[test]
    fn unique_puts_round_trip_with_and_without_options() {
        let options = PutOptions {
            delay_ms: 7,
            priority: 1,
        };
        for opts in [None, Some(options)] {
            let frame = put(opts, KEY);
            let expected = Request::PutJob {
                queue: "q",
                options: opts,
                unique: Some(KEY),
                ttl: None,
                payload: b"payload",
            };
            assert_eq!(
                decode_request(&frame, 1 << 20),
                Ok(Some((Decoded::Request(expected), frame.len())))
            );
            // Cut anywhere before the end: wait for more.
            for end in 0..frame.len() {
                assert_eq!(decode_request(&frame[..end], 1 << 20), Ok(None), "{end}");
            }
        }
    }

    #[test]
    fn a_long_unique_put_comes_back_as_a_head_with_its_key() {
        let frame = put(None, KEY);
        let head = 4 + 2 + 1 + 1 + KEY.wire_len();
        assert_eq!(
            decode_request(&frame, 3),
            Ok(Some((
                Decoded::PutHead {
                    queue: "q",
                    options: None,
                    unique: Some(KEY),
                    ttl: None,
                    payload_len: 7,
                },
                head
            )))
        );
    }

    #[test]
    fn bad_key_fields_are_refused() {
        let mut frame = put(None, KEY);
        let key_len_at = 4 + 2 + 2;
        frame[key_len_at] = 0;
        let err = decode_request(&frame, 1 << 20).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadArgument);
        let mut frame = put(None, KEY);
        frame[key_len_at + 2] = 0x03; // mode
        assert_eq!(
            decode_request(&frame, 1 << 20).unwrap_err().code(),
            ErrorCode::BadArgument
        );
        let mut frame = put(None, KEY);
        frame[key_len_at + 3..key_len_at + 7].copy_from_slice(&(MAX_WINDOW_MS + 1).to_be_bytes());
        assert_eq!(
            decode_request(&frame, 1 << 20).unwrap_err().code(),
            ErrorCode::BadArgument
        );
        // A key longer than the frame: malformed, even before the bytes are in.
        let mut frame = put(None, KEY);
        frame[key_len_at] = 200;
        let err = decode_request(&frame[..key_len_at + 1], 1 << 20).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Malformed);
        // A frame that ends at the key_len byte's place.
        let short = [0, 0, 0, 4, 0x10, 0x04, 1, b'q'];
        assert_eq!(
            decode_request(&short, 1 << 20).unwrap_err().code(),
            ErrorCode::Malformed
        );
        // The client refuses what the server would.
        let empty = Unique { key: b"", ..KEY };
        let long = [0u8; 256];
        for bad in [
            empty,
            Unique { key: &long, ..KEY },
            Unique {
                window_ms: MAX_WINDOW_MS + 1,
                ..KEY
            },
        ] {
            let mut out = Vec::new();
            let request = Request::PutJob {
                queue: "q",
                options: None,
                unique: Some(bad),
                ttl: None,
                payload: b"",
            };
            assert!(request.encode(&mut out).is_err());
            assert!(out.is_empty());
        }
    }

    #[test]
    fn replies_round_trip() {
        for holder in [
            Holder::Ready,
            Holder::Delayed,
            Holder::InFlight,
            Holder::Gone,
        ] {
            let resp = Response::Duplicate { id: 9, holder };
            assert_eq!(decode_one(&encode_response(&resp)), resp);
            assert!(!holder.describe().is_empty());
        }
        let resp = Response::Replaced {
            id: 3,
            original_len: 10,
            stored_len: 4,
        };
        assert_eq!(decode_one(&encode_response(&resp)), resp);
        let mut bad = encode_response(&Response::Duplicate {
            id: 1,
            holder: Holder::Gone,
        });
        let last = bad.len() - 1;
        bad[last] = 5;
        assert!(decode_one_err(&bad));
    }

    fn decode_one_err(bytes: &[u8]) -> bool {
        super::super::decode_response(bytes, 1 << 20).is_err()
    }
}
