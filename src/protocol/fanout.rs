//! The version-3 part of the codec (protocol.md section 15): fan-out. Subjects and
//! patterns, `BIND`/`UNBIND`, `PUB`, `SUB`/`UNSUB`, `REQ`/`REPLY`, the `WITH_META`
//! receive flag and the replies and server-initiated `EVENT` frames they bring, with
//! the metadata block those carry. Kept apart from the older codec like `leases.rs`.
//!
//! `PUB`, `REQ` and `REPLY` end in a payload, streamed and cut like a `PUT`'s: a
//! frame whose payload is over the limit comes back as [`Decoded::BodyHead`] as soon
//! as its fixed fields are in (`decode_streamed`).

use bytes::BufMut;

use super::{
    CountedReply, Decoded, LEN_PREFIX, MAX_QUEUE_NAME, Opcode, ProtocolError, REQUEST_HEADER,
    Reader, Request, Response, Status, check_queue_name, cut_at_char_boundary, put_name,
    to_queue_name,
};
use super::{LeaseRef, MAX_DELAY_MS, MAX_LEASE_MS, MAX_PRIORITY};

/// Flag bit of `GET`, `LEASE` and `PEEK`: answer `ENVELOPES` (id, attempt, metadata
/// and payload of each message) instead of `MESSAGES`, `LEASED` or `PEEKED`. The
/// request's layout does not change.
pub const WITH_META: u8 = 0x02;
/// `HELLO` feature bit: subjects, bindings, subscriptions, request/reply and
/// `WITH_META` (protocol.md 15).
pub const FEATURE_FANOUT: u32 = 0x10;
/// Most live subscriptions one connection may hold; one more `SUB` gets `LIMIT`.
pub const MAX_SUBSCRIPTIONS: u32 = 1024;

/// Metadata tag: the subject a message was published to (UTF-8).
pub const META_SUBJECT: u8 = 1;
/// Metadata tag: the `u64` reply address of a `REQ`.
pub const META_REPLY_TO: u8 = 2;
/// Metadata tag: `u32` events of this subscription dropped since the last one
/// delivered (only in `EVENT`).
pub const META_DROPPED: u8 = 3;

/// Bytes of the fields between a `PUB`'s subject and its payload: `delay_ms: u32`,
/// `priority: u8`, `confirm: u32`, `timeout_ms: u32`.
const PUBLISH_FIELDS_LEN: usize = 13;
/// Bytes of the field between a `REQ`'s subject and its payload: `timeout_ms: u32`.
const REQ_FIELDS_LEN: usize = 4;
/// Bytes of a `REPLY`'s `reply_to`, before its payload.
const REPLY_TO_LEN: usize = 8;
/// Bytes of a `PUBLISHED` body: six `u32`s.
const PUBLISHED_LEN: usize = 24;
/// Bytes in front of each envelope's metadata: id, attempt, meta_len.
const ENVELOPE_HEAD: usize = 14;

// ---------------------------------------------------------------------------
// Subjects and patterns
// ---------------------------------------------------------------------------

/// Checks a subject (`allow_wildcards` false: `PUB`, `REQ`) or a pattern (true:
/// `BIND`, `UNBIND`, `SUB`) against protocol.md 15.1, returning what is wrong: the
/// first fault from the left, with its byte offset (the rules live in `route`).
fn check_subject_syntax(s: &str, allow_wildcards: bool) -> Result<(), String> {
    let checked = if allow_wildcards {
        crate::route::check_pattern(s)
    } else {
        crate::route::check_subject(s)
    };
    checked.map_err(|e| e.to_string())
}

/// What a subject or pattern field is, for error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubjectKind {
    /// A publish subject: no wildcards.
    Subject,
    /// A binding or subscription pattern.
    Pattern,
}

impl SubjectKind {
    fn word(self) -> &'static str {
        match self {
            SubjectKind::Subject => "subject",
            SubjectKind::Pattern => "pattern",
        }
    }
}

/// Checks a subject or pattern the caller holds as text (encoding, and the decoder
/// once the bytes are UTF-8).
pub(super) fn check_subject(s: &str, kind: SubjectKind) -> Result<(), ProtocolError> {
    let word = kind.word();
    let text = if s.len() > MAX_QUEUE_NAME {
        format!("bad {word}: longer than 255 bytes")
    } else {
        match check_subject_syntax(s, kind == SubjectKind::Pattern) {
            Ok(()) => return Ok(()),
            Err(why) if s.is_empty() => format!("bad {word}: {why}"),
            Err(why) => format!("bad {word} {s:?}: {why}"),
        }
    };
    Err(ProtocolError::BadSubject(text))
}

/// A subject or pattern as it came off the wire.
pub(super) fn to_subject(bytes: &[u8], kind: SubjectKind) -> Result<&str, ProtocolError> {
    let s = std::str::from_utf8(bytes)
        .map_err(|_| ProtocolError::BadSubject(format!("bad {}: not valid UTF-8", kind.word())))?;
    check_subject(s, kind)?;
    Ok(s)
}

/// A `name` field (length byte, then bytes) whose parts are named for error texts.
fn name_field<'a>(
    r: &mut Reader<'a>,
    len_field: &'static str,
    field: &'static str,
) -> Result<&'a [u8], ProtocolError> {
    let len = r.u8(len_field)? as usize;
    r.bytes(len, field)
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// The head of a `PUB`, `REQ` or `REPLY` whose payload is over the limit: every field
/// but the payload, checked. The server keeps the first `limit` payload bytes as they
/// stream in and drops the rest, then carries the request out with
/// [`BodyHead::with_payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyHead<'a> {
    /// A `PUB` without its payload.
    Publish {
        /// The subject, without wildcards.
        subject: &'a str,
        /// As for [`Request::Publish`].
        delay_ms: u32,
        /// As for [`Request::Publish`].
        priority: u8,
        /// As for [`Request::Publish`].
        confirm: u32,
        /// As for [`Request::Publish`].
        timeout_ms: u32,
    },
    /// A `REQ` without its payload.
    Req {
        /// The subject, without wildcards.
        subject: &'a str,
        /// As for [`Request::Req`].
        timeout_ms: u32,
    },
    /// A `REPLY` without its payload.
    Reply {
        /// As for [`Request::Reply`].
        reply_to: u64,
    },
}

impl<'a> BodyHead<'a> {
    /// The opcode of the request this is the head of.
    pub fn opcode(&self) -> Opcode {
        match self {
            BodyHead::Publish { .. } => Opcode::Publish,
            BodyHead::Req { .. } => Opcode::Req,
            BodyHead::Reply { .. } => Opcode::Reply,
        }
    }

    /// The whole request, with `payload` (the kept part, for a streamed one).
    pub fn with_payload(self, payload: &'a [u8]) -> Request<'a> {
        match self {
            BodyHead::Publish {
                subject,
                delay_ms,
                priority,
                confirm,
                timeout_ms,
            } => Request::Publish {
                subject,
                delay_ms,
                priority,
                confirm,
                timeout_ms,
                payload,
            },
            BodyHead::Req {
                subject,
                timeout_ms,
            } => Request::Req {
                subject,
                timeout_ms,
                payload,
            },
            BodyHead::Reply { reply_to } => Request::Reply { reply_to, payload },
        }
    }

    /// Checks the values (protocol.md 2.5 step 3.3), once structure and subject passed.
    fn check(&self) -> Result<(), ProtocolError> {
        match *self {
            BodyHead::Publish {
                delay_ms,
                priority,
                confirm,
                timeout_ms,
                ..
            } => {
                if delay_ms > MAX_DELAY_MS {
                    return Err(ProtocolError::BadArgument(
                        "PUB delay_ms is over 30 days (2592000000)",
                    ));
                }
                if priority > MAX_PRIORITY {
                    return Err(ProtocolError::BadArgument("PUB priority must be 0..9"));
                }
                if confirm > 0 && !(1..=MAX_LEASE_MS).contains(&timeout_ms) {
                    return Err(ProtocolError::BadArgument(
                        "PUB with confirm needs timeout_ms 1..43200000 (12 hours)",
                    ));
                }
            }
            BodyHead::Req { timeout_ms, .. } => {
                if !(1..=MAX_LEASE_MS).contains(&timeout_ms) {
                    return Err(ProtocolError::BadArgument(
                        "REQ timeout_ms must be 1..43200000 (12 hours)",
                    ));
                }
            }
            BodyHead::Reply { .. } => {}
        }
        Ok(())
    }

    /// Bytes of the body before the payload.
    fn len(&self) -> usize {
        match self {
            BodyHead::Publish { subject, .. } => 1 + subject.len() + PUBLISH_FIELDS_LEN,
            BodyHead::Req { subject, .. } => 1 + subject.len() + REQ_FIELDS_LEN,
            BodyHead::Reply { .. } => REPLY_TO_LEN,
        }
    }
}

/// Decodes a `PUB`, `REQ` or `REPLY` from the front of `buf` (whose header has been
/// checked), as `decode_put` does a `PUT`: the head is checked as its bytes arrive,
/// structure before subject before values (protocol.md 15.2), and a payload over
/// `max_payload` gives a [`Decoded::BodyHead`] without waiting for it.
pub(super) fn decode_streamed(
    opcode: Opcode,
    buf: &[u8],
    body_len: usize,
    max_payload: usize,
) -> Result<Option<(Decoded<'_>, usize)>, ProtocolError> {
    let head = match opcode {
        Opcode::Reply => {
            if body_len < REPLY_TO_LEN {
                return Err(ProtocolError::ShortField("reply_to"));
            }
            let Some(field) = buf.get(REQUEST_HEADER..REQUEST_HEADER + REPLY_TO_LEN) else {
                return Ok(None);
            };
            BodyHead::Reply {
                reply_to: Reader::new(field).u64("reply_to")?,
            }
        }
        Opcode::Publish | Opcode::Req => {
            if body_len == 0 {
                // Checked before reading on, so that a short frame never reads into
                // the next one.
                return Err(ProtocolError::ShortField("subject_len"));
            }
            let Some(&subject_len) = buf.get(REQUEST_HEADER) else {
                return Ok(None);
            };
            let subject_len = subject_len as usize;
            let fields_len = if opcode == Opcode::Publish {
                PUBLISH_FIELDS_LEN
            } else {
                REQ_FIELDS_LEN
            };
            // The whole head's structure is known from the length byte: a subject or
            // fields running past the frame are MALFORMED before any of them is read.
            if 1 + subject_len > body_len {
                return Err(ProtocolError::ShortField("subject"));
            }
            if 1 + subject_len + fields_len > body_len {
                return Err(ProtocolError::ShortField(if opcode == Opcode::Publish {
                    "publish fields"
                } else {
                    "timeout_ms"
                }));
            }
            let subject_end = REQUEST_HEADER + 1 + subject_len;
            let Some(subject) = buf.get(REQUEST_HEADER + 1..subject_end) else {
                return Ok(None);
            };
            let subject = to_subject(subject, SubjectKind::Subject)?;
            let Some(fields) = buf.get(subject_end..subject_end + fields_len) else {
                return Ok(None);
            };
            let mut r = Reader::new(fields);
            if opcode == Opcode::Publish {
                BodyHead::Publish {
                    subject,
                    delay_ms: r.u32("delay_ms")?,
                    priority: r.u8("priority")?,
                    confirm: r.u32("confirm")?,
                    timeout_ms: r.u32("timeout_ms")?,
                }
            } else {
                BodyHead::Req {
                    subject,
                    timeout_ms: r.u32("timeout_ms")?,
                }
            }
        }
        _ => return Err(ProtocolError::BadArgument("not a streamed request")),
    };
    head.check()?;
    let head_end = REQUEST_HEADER + head.len();
    let payload_len = body_len - head.len();
    if payload_len > max_payload {
        // body_len came from a u32, so payload_len fits in one.
        let payload_len = payload_len as u32;
        return Ok(Some((Decoded::BodyHead { head, payload_len }, head_end)));
    }
    let frame_end = head_end + payload_len;
    let Some(payload) = buf.get(head_end..frame_end) else {
        return Ok(None);
    };
    Ok(Some((
        Decoded::Request(head.with_payload(payload)),
        frame_end,
    )))
}

/// Decodes the body of a version-3 control request (`BIND`, `UNBIND`, `SUB`,
/// `UNSUB`) in the check order of protocol.md 2.5: structure (`MALFORMED`), then the
/// pattern and queue name in field order (`BAD_SUBJECT`, `BAD_QUEUE_NAME`).
pub(super) fn decode_control<'a>(
    opcode: Opcode,
    r: &mut Reader<'a>,
) -> Result<Request<'a>, ProtocolError> {
    Ok(match opcode {
        Opcode::Bind | Opcode::Unbind => {
            let pattern = name_field(r, "pattern_len", "pattern")?;
            let queue = r.name_bytes()?;
            r.finish()?;
            let pattern = to_subject(pattern, SubjectKind::Pattern)?;
            let queue = to_queue_name(queue)?;
            if opcode == Opcode::Bind {
                Request::Bind { pattern, queue }
            } else {
                Request::Unbind { pattern, queue }
            }
        }
        Opcode::Subscribe => {
            let pattern = name_field(r, "pattern_len", "pattern")?;
            r.finish()?;
            Request::Subscribe {
                pattern: to_subject(pattern, SubjectKind::Pattern)?,
            }
        }
        Opcode::Unsubscribe => {
            let sid = r.u32("sid")?;
            r.finish()?;
            Request::Unsubscribe { sid }
        }
        _ => {
            return Err(ProtocolError::BadArgument(
                "not a version-3 control request",
            ));
        }
    })
}

/// The `WITH_META` form of a decoded `GET`, `LEASE` or `PEEK`; other requests never
/// carry the flag (the decoder refused it as `BAD_FLAGS`) and come back unchanged.
pub(super) fn with_meta(request: Request<'_>) -> Request<'_> {
    match request {
        Request::Get {
            queue,
            wait_ms,
            max,
        } => Request::GetWithMeta {
            queue,
            wait_ms,
            max,
        },
        Request::Lease {
            queue,
            wait_ms,
            max,
            lease_ms,
            max_deliveries,
            detached,
        } => Request::LeaseWithMeta {
            queue,
            wait_ms,
            max,
            lease_ms,
            max_deliveries,
            detached,
        },
        Request::Peek { queue, max } => Request::PeekWithMeta { queue, max },
        other => other,
    }
}

/// Encodes the version-3 requests; `None` for the others, which the caller encodes.
pub(super) fn encode_request(
    request: &Request<'_>,
    dst: &mut impl BufMut,
) -> Option<Result<(), ProtocolError>> {
    Some(match *request {
        Request::GetWithMeta {
            queue,
            wait_ms,
            max,
        } => encode_with_meta(
            &Request::Get {
                queue,
                wait_ms,
                max,
            },
            dst,
        ),
        Request::LeaseWithMeta {
            queue,
            wait_ms,
            max,
            lease_ms,
            max_deliveries,
            detached,
        } => encode_with_meta(
            &Request::Lease {
                queue,
                wait_ms,
                max,
                lease_ms,
                max_deliveries,
                detached,
            },
            dst,
        ),
        Request::PeekWithMeta { queue, max } => {
            encode_with_meta(&Request::Peek { queue, max }, dst)
        }
        Request::Bind { .. }
        | Request::Unbind { .. }
        | Request::Subscribe { .. }
        | Request::Unsubscribe { .. }
        | Request::Publish { .. }
        | Request::Req { .. }
        | Request::Reply { .. } => encode_checked(request, dst),
        _ => return None,
    })
}

/// A `WITH_META` receive is the plain request's frame with the flag bit set; control
/// frames are small, so it is written aside first.
fn encode_with_meta(plain: &Request<'_>, dst: &mut impl BufMut) -> Result<(), ProtocolError> {
    let mut frame = Vec::with_capacity(64);
    plain.encode(&mut frame)?;
    frame[LEN_PREFIX + 1] |= WITH_META;
    dst.put_slice(&frame);
    Ok(())
}

/// The head and payload of a `PUB`, `REQ` or `REPLY`.
fn split_body<'a>(request: &Request<'a>) -> Option<(BodyHead<'a>, &'a [u8])> {
    Some(match *request {
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
        _ => return None,
    })
}

fn encode_checked(request: &Request<'_>, dst: &mut impl BufMut) -> Result<(), ProtocolError> {
    // Everything the decoder would refuse is refused before the first byte is written.
    match *request {
        Request::Bind { pattern, queue } | Request::Unbind { pattern, queue } => {
            check_subject(pattern, SubjectKind::Pattern)?;
            check_queue_name(queue)?;
        }
        Request::Subscribe { pattern } => check_subject(pattern, SubjectKind::Pattern)?,
        Request::Publish { subject, .. } | Request::Req { subject, .. } => {
            check_subject(subject, SubjectKind::Subject)?;
        }
        _ => {}
    }
    let body = split_body(request);
    let body_len = match *request {
        Request::Bind { pattern, queue } | Request::Unbind { pattern, queue } => {
            1 + pattern.len() + 1 + queue.len()
        }
        Request::Subscribe { pattern } => 1 + pattern.len(),
        Request::Unsubscribe { .. } => 4,
        _ => body.map_or(0, |(head, payload)| head.len() + payload.len()),
    };
    if let Some((head, _)) = &body {
        head.check()?;
    }
    let len = u32::try_from(body_len + 2).map_err(|_| ProtocolError::FrameTooLarge {
        len: u32::MAX,
        max: u32::MAX,
    })?;
    dst.put_u32(len);
    dst.put_u8(request.opcode() as u8);
    dst.put_u8(0);
    match *request {
        Request::Bind { pattern, queue } | Request::Unbind { pattern, queue } => {
            put_name(dst, pattern);
            put_name(dst, queue);
        }
        Request::Subscribe { pattern } => put_name(dst, pattern),
        Request::Unsubscribe { sid } => dst.put_u32(sid),
        _ => {}
    }
    if let Some((head, payload)) = body {
        match head {
            BodyHead::Publish {
                subject,
                delay_ms,
                priority,
                confirm,
                timeout_ms,
            } => {
                put_name(dst, subject);
                dst.put_u32(delay_ms);
                dst.put_u8(priority);
                dst.put_u32(confirm);
                dst.put_u32(timeout_ms);
            }
            BodyHead::Req {
                subject,
                timeout_ms,
            } => {
                put_name(dst, subject);
                dst.put_u32(timeout_ms);
            }
            BodyHead::Reply { reply_to } => dst.put_u64(reply_to),
        }
        dst.put_slice(payload);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------

/// The metadata block of an envelope or an `EVENT` (protocol.md 15.7): entries of
/// `tag: u8, len: u8, len bytes`, checked when decoded. Unknown tags are kept (see
/// [`Meta::iter`]) but skipped by the accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta<'a> {
    entries: &'a [u8],
}

impl<'a> Meta<'a> {
    /// Checks the `meta_len` bytes of entries (without the `u16 meta_len` itself).
    ///
    /// # Errors
    /// [`ProtocolError::ShortField`] (`MALFORMED`) for an entry that runs past the end;
    /// [`ProtocolError::BadArgument`] for a known tag of the wrong length or a
    /// subject that is not UTF-8.
    pub fn parse(entries: &'a [u8]) -> Result<Meta<'a>, ProtocolError> {
        let mut r = Reader::new(entries);
        while !r.buf.is_empty() {
            let tag = r.u8("meta tag")?;
            let len = r.u8("meta len")? as usize;
            let value = r.bytes(len, "meta entry")?;
            match tag {
                META_SUBJECT if std::str::from_utf8(value).is_err() => {
                    return Err(ProtocolError::BadArgument("meta SUBJECT is not UTF-8"));
                }
                META_REPLY_TO if len != 8 => {
                    return Err(ProtocolError::BadArgument("meta REPLY_TO must be 8 bytes"));
                }
                META_DROPPED if len != 4 => {
                    return Err(ProtocolError::BadArgument("meta DROPPED must be 4 bytes"));
                }
                _ => {}
            }
        }
        Ok(Meta { entries })
    }

    /// Reads `u16 meta_len` and the entries from a response body.
    fn read(r: &mut Reader<'a>) -> Result<Meta<'a>, ProtocolError> {
        let len = r.u16("meta_len")? as usize;
        Meta::parse(r.bytes(len, "meta")?)
    }

    /// The entries as they travel (without `meta_len`).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.entries
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry as `(tag, value)`, in order, unknown tags included.
    pub fn iter(&self) -> MetaIter<'a> {
        MetaIter { rest: self.entries }
    }

    fn find(&self, tag: u8) -> Option<&'a [u8]> {
        self.iter().find(|&(t, _)| t == tag).map(|(_, value)| value)
    }

    /// The subject the message was published to.
    pub fn subject(&self) -> Option<&'a str> {
        std::str::from_utf8(self.find(META_SUBJECT)?).ok()
    }

    /// The reply address of the `REQ` that sent the message: what `REPLY` takes.
    pub fn reply_to(&self) -> Option<u64> {
        Some(u64::from_be_bytes(
            self.find(META_REPLY_TO)?.try_into().ok()?,
        ))
    }

    /// Events of this subscription dropped since the last one delivered (`EVENT`).
    pub fn dropped(&self) -> Option<u32> {
        Some(u32::from_be_bytes(
            self.find(META_DROPPED)?.try_into().ok()?,
        ))
    }
}

/// Iterator over the `(tag, value)` entries of a [`Meta`].
#[derive(Debug, Clone)]
pub struct MetaIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for MetaIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let value = rest.get(..len as usize)?;
        self.rest = &rest[len as usize..];
        Some((tag, value))
    }
}

/// Bytes [`encode_meta`] writes for these entries, its `u16 meta_len` included.
pub fn encoded_meta_len(
    subject: Option<&str>,
    reply_to: Option<u64>,
    dropped: Option<u32>,
) -> usize {
    2 + subject.map_or(0, |s| 2 + cut_at_char_boundary(s, MAX_QUEUE_NAME).len())
        + reply_to.map_or(0, |_| 2 + 8)
        + dropped.map_or(0, |_| 2 + 4)
}

/// Appends a metadata block: `u16 meta_len`, then an entry for each field given, in
/// tag order. A subject over 255 bytes (never a valid one) is cut on a character
/// boundary.
pub fn encode_meta(
    dst: &mut impl BufMut,
    subject: Option<&str>,
    reply_to: Option<u64>,
    dropped: Option<u32>,
) {
    // At most 2 + 257 + 10 + 6 bytes, so the length fits a u16.
    dst.put_u16((encoded_meta_len(subject, reply_to, dropped) - 2) as u16);
    if let Some(subject) = subject {
        let subject = cut_at_char_boundary(subject, MAX_QUEUE_NAME);
        dst.put_u8(META_SUBJECT);
        dst.put_u8(subject.len() as u8);
        dst.put_slice(subject.as_bytes());
    }
    if let Some(reply_to) = reply_to {
        dst.put_u8(META_REPLY_TO);
        dst.put_u8(8);
        dst.put_u64(reply_to);
    }
    if let Some(dropped) = dropped {
        dst.put_u8(META_DROPPED);
        dst.put_u8(4);
        dst.put_u32(dropped);
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// The body of a `PUBLISHED` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// Copies stored: queues that got one.
    pub queues: u32,
    /// `EVENT`s queued to subscriptions.
    pub subscribers: u32,
    /// Payload length the client sent.
    pub original_len: u32,
    /// Payload length kept (below `original_len` when the payload was cut).
    pub stored_len: u32,
    /// Copies confirmed (acknowledged, or taken by a plain `GET`); 0 without confirm.
    pub acked: u32,
    /// Copies dead-lettered or purged before they were confirmed; 0 without confirm.
    pub failed: u32,
}

impl Published {
    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Published, ProtocolError> {
        Ok(Published {
            queues: r.u32("queues")?,
            subscribers: r.u32("subscribers")?,
            original_len: r.u32("original_len")?,
            stored_len: r.u32("stored_len")?,
            acked: r.u32("acked")?,
            failed: r.u32("failed")?,
        })
    }
}

/// Appends a `BOUND` reply: `created` is false when the binding existed already.
pub fn encode_bound(dst: &mut impl BufMut, created: bool) {
    encode_flag(dst, Status::Bound, created);
}

/// Appends an `UNBOUND` reply: `removed` is false when there was no such binding.
pub fn encode_unbound(dst: &mut impl BufMut, removed: bool) {
    encode_flag(dst, Status::Unbound, removed);
}

/// Appends an `UNSUBSCRIBED` reply: `removed` is false when there was no such
/// subscription on the connection.
pub fn encode_unsubscribed(dst: &mut impl BufMut, removed: bool) {
    encode_flag(dst, Status::Unsubscribed, removed);
}

/// Appends a `REPLIED` reply: `delivered` is false when nobody waited for it.
pub fn encode_replied(dst: &mut impl BufMut, delivered: bool) {
    encode_flag(dst, Status::Replied, delivered);
}

fn encode_flag(dst: &mut impl BufMut, status: Status, value: bool) {
    dst.put_u32(1 + 1);
    dst.put_u8(status as u8);
    dst.put_u8(u8::from(value));
}

/// Appends a `PUBLISHED` reply.
pub fn encode_published(dst: &mut impl BufMut, published: &Published) {
    dst.put_u32((1 + PUBLISHED_LEN) as u32);
    dst.put_u8(Status::Published as u8);
    dst.put_u32(published.queues);
    dst.put_u32(published.subscribers);
    dst.put_u32(published.original_len);
    dst.put_u32(published.stored_len);
    dst.put_u32(published.acked);
    dst.put_u32(published.failed);
}

/// Appends a `SUBSCRIBED` reply.
pub fn encode_subscribed(dst: &mut impl BufMut, sid: u32) {
    dst.put_u32(1 + 4);
    dst.put_u8(Status::Subscribed as u8);
    dst.put_u32(sid);
}

/// Appends the `REPLY` reply a `REQ` gets: the first reply's payload.
pub fn encode_reply(dst: &mut impl BufMut, payload: &[u8]) {
    // Payloads are at most the message size limit (1 GiB), so the length fits.
    dst.put_u32((1 + payload.len()) as u32);
    dst.put_u8(Status::Reply as u8);
    dst.put_slice(payload);
}

/// Appends an `EVENT` frame for subscription `sid`: the message's metadata, then its
/// payload.
pub fn encode_event(
    dst: &mut impl BufMut,
    sid: u32,
    subject: Option<&str>,
    reply_to: Option<u64>,
    dropped: Option<u32>,
    payload: &[u8],
) {
    let meta_len = encoded_meta_len(subject, reply_to, dropped);
    dst.put_u32((1 + 4 + meta_len + payload.len()) as u32);
    dst.put_u8(Status::Event as u8);
    dst.put_u32(sid);
    encode_meta(dst, subject, reply_to, dropped);
    dst.put_slice(payload);
}

/// Writes an `ENVELOPES` reply in place, as
/// [`MessagesWriter`](super::MessagesWriter) does for `MESSAGES`; the caller applies
/// the same 1 MiB batch rule.
#[derive(Debug)]
pub struct EnvelopesWriter(CountedReply);

impl EnvelopesWriter {
    /// Reserves an `ENVELOPES` header at the end of `dst`.
    pub fn begin<B: BufMut + AsRef<[u8]>>(dst: &mut B) -> EnvelopesWriter {
        EnvelopesWriter(CountedReply::begin(dst, Status::Envelopes))
    }

    /// Appends one message with its id, attempt number and metadata.
    pub fn push(
        &mut self,
        dst: &mut impl BufMut,
        id: u64,
        attempt: u32,
        subject: Option<&str>,
        reply_to: Option<u64>,
        payload: &[u8],
    ) {
        dst.put_u64(id);
        dst.put_u32(attempt);
        encode_meta(dst, subject, reply_to, None);
        dst.put_u32(payload.len() as u32);
        dst.put_slice(payload);
        self.0.count += 1;
    }

    /// Offset where this reply starts (truncate back to it to drop the reply).
    pub fn start(&self) -> usize {
        self.0.start
    }

    /// Messages pushed so far.
    pub fn count(&self) -> u32 {
        self.0.count
    }

    /// Fills in the frame length and message count.
    pub fn finish<B: AsMut<[u8]>>(self, dst: &mut B) {
        self.0.finish(dst);
    }
}

/// One message of an `ENVELOPES` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Message id.
    pub id: u64,
    /// Attempt number: of this lease for `LEASE`; the message's last lease (0 if
    /// never leased) for `GET` and `PEEK`.
    pub attempt: u32,
    /// Subject and reply address, when it was published.
    pub meta: Meta<'a>,
    /// The message bytes.
    pub payload: &'a [u8],
}

impl Envelope<'_> {
    /// The `(id, attempt)` pair that `ACK`, `NACK` and `TOUCH` take (meaningful for a
    /// leased message).
    pub fn lease(&self) -> LeaseRef {
        LeaseRef {
            id: self.id,
            attempt: self.attempt,
        }
    }
}

/// The messages of an `ENVELOPES` reply, validated when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelopes<'a> {
    count: u32,
    body: &'a [u8],
}

impl<'a> Envelopes<'a> {
    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Envelopes<'a>, ProtocolError> {
        let count = r.u32("count")?;
        let start = r.buf;
        for _ in 0..count {
            r.u64("id")?;
            r.u32("attempt")?;
            Meta::read(r)?;
            let len = r.u32("message_len")? as usize;
            r.bytes(len, "message")?;
        }
        let used = start.len() - r.buf.len();
        Ok(Envelopes {
            count,
            body: &start[..used],
        })
    }

    /// How many messages the reply holds.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True if the reply holds none (never sent by a beuss server).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The messages, in delivery order.
    pub fn iter(&self) -> EnvelopesIter<'a> {
        EnvelopesIter { rest: self.body }
    }
}

impl<'a> IntoIterator for Envelopes<'a> {
    type Item = Envelope<'a>;
    type IntoIter = EnvelopesIter<'a>;

    fn into_iter(self) -> EnvelopesIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Envelopes`].
#[derive(Debug, Clone)]
pub struct EnvelopesIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for EnvelopesIter<'a> {
    type Item = Envelope<'a>;

    fn next(&mut self) -> Option<Envelope<'a>> {
        // The body was checked when decoded; a `get` that fails just ends the walk.
        let head = self.rest.get(..ENVELOPE_HEAD)?;
        let id = u64::from_be_bytes(head[..8].try_into().ok()?);
        let attempt = u32::from_be_bytes(head[8..12].try_into().ok()?);
        let meta_len = u16::from_be_bytes(head[12..14].try_into().ok()?) as usize;
        let meta_end = ENVELOPE_HEAD + meta_len;
        let entries = self.rest.get(ENVELOPE_HEAD..meta_end)?;
        let len = u32::from_be_bytes(self.rest.get(meta_end..meta_end + 4)?.try_into().ok()?);
        let payload_end = meta_end + 4 + len as usize;
        let payload = self.rest.get(meta_end + 4..payload_end)?;
        self.rest = &self.rest[payload_end..];
        Some(Envelope {
            id,
            attempt,
            meta: Meta { entries },
            payload,
        })
    }
}

/// Decodes the body of a version-3 status.
pub(super) fn decode_response<'a>(
    status: Status,
    r: &mut Reader<'a>,
) -> Result<Response<'a>, ProtocolError> {
    let flag = |r: &mut Reader<'a>, field| r.u8(field).map(|b| b != 0);
    Ok(match status {
        Status::Bound => Response::Bound {
            created: flag(r, "created")?,
        },
        Status::Unbound => Response::Unbound {
            removed: flag(r, "removed")?,
        },
        Status::Published => Response::Published(Published::decode(r)?),
        Status::Subscribed => Response::Subscribed { sid: r.u32("sid")? },
        Status::Unsubscribed => Response::Unsubscribed {
            removed: flag(r, "removed")?,
        },
        Status::Reply => Response::Reply { payload: r.rest() },
        Status::Replied => Response::Replied {
            delivered: flag(r, "delivered")?,
        },
        Status::Envelopes => Response::Envelopes(Envelopes::decode(r)?),
        Status::Event => Response::Event {
            sid: r.u32("sid")?,
            meta: Meta::read(r)?,
            payload: r.rest(),
        },
        _ => return Err(ProtocolError::BadArgument("not a version-3 status")),
    })
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
pub(super) mod tests;
