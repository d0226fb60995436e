//! Records and segment headers: their bytes, their checksums, encode and decode.
//!
//! Little-endian throughout. A record is `len u32 | crc u32 | type u8 | body`, with
//! `len` counting the type byte and the body, and `crc` the masked CRC32C of the
//! `len` bytes, the type byte and the body. STORAGE.md has every body's layout.

use std::fmt;

/// The first eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"BEUSLOG\0";

/// The format version written in segment headers; the only one read.
pub const VERSION: u16 = 1;

/// Bytes of a segment header: magic, version, kind, seq and crc.
pub const HEADER_LEN: usize = 24;

/// Bytes in front of a record's type byte: `len` and `crc`.
pub const RECORD_HEADER_LEN: usize = 8;

/// The longest queue name a QUEUE record carries (the protocol's limit).
pub const MAX_NAME_LEN: usize = 255;

/// The longest pattern a BIND or UNBIND record, or subject a SUBJECT record, carries
/// (the protocol's limit for a `name`, as for queue names).
pub const MAX_TEXT_LEN: usize = 255;

/// The longest payload a PUT record carries (the largest `BMAXMESSAGESIZE`).
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// The largest valid `len`: the type byte, room for any fixed fields (64 bytes, more
/// than any type has), a queue name's worth and the largest payload. A `len` above
/// this is damage, not a long record, so one flipped high bit cannot make the
/// scanner wait for a gigabyte that will never come.
pub const MAX_RECORD_LEN: u32 = 1 + 64 + MAX_NAME_LEN as u32 + MAX_PAYLOAD_LEN as u32;

/// Type byte of [`Record::Queue`].
pub const TYPE_QUEUE: u8 = 1;
/// Type byte of [`Record::Put`].
pub const TYPE_PUT: u8 = 2;
/// Type byte of [`Record::Del`].
pub const TYPE_DEL: u8 = 3;
/// Type byte of [`Record::Leased`].
pub const TYPE_LEASED: u8 = 4;
/// Type byte of [`Record::Requeue`].
pub const TYPE_REQUEUE: u8 = 5;
/// Type byte of [`Record::Move`].
pub const TYPE_MOVE: u8 = 6;
/// Type byte of [`Record::Purge`].
pub const TYPE_PURGE: u8 = 7;
/// Type byte of [`Record::Ids`].
pub const TYPE_IDS: u8 = 8;
/// Type byte of [`Record::Bind`].
pub const TYPE_BIND: u8 = 9;
/// Type byte of [`Record::Unbind`].
pub const TYPE_UNBIND: u8 = 10;
/// Type byte of [`Record::Subject`].
pub const TYPE_SUBJECT: u8 = 11;
/// Type byte of [`Record::Copy`].
pub const TYPE_COPY: u8 = 12;
/// Type byte of [`Record::Schedule`].
pub const TYPE_SCHEDULE: u8 = 13;
/// Type byte of [`Record::Unschedule`].
pub const TYPE_UNSCHEDULE: u8 = 14;
/// Type byte of [`Record::Fired`].
pub const TYPE_FIRED: u8 = 15;
/// Type byte of [`Record::Key`].
pub const TYPE_KEY: u8 = 16;
/// Type byte of [`Record::Unkey`].
pub const TYPE_UNKEY: u8 = 17;
/// Fixed bytes of a KEY body: id, window_ms, until_ms, key_len.
const KEY_FIXED: usize = 8 + 4 + 8 + 1;
/// Bytes of an UNKEY body: the id.
const UNKEY_LEN: usize = 8;
/// Type byte of [`Record::Expires`].
pub const TYPE_EXPIRES: u8 = 18;
/// Bytes of an EXPIRES body: id, at_ms, flags.
const EXPIRES_LEN: usize = 8 + 8 + 1;
/// EXPIRES flag: the message is dead-lettered when it expires, not dropped.
pub const EXPIRES_DEAD_LETTER: u8 = 0x01;

/// The longest payload a SCHEDULE record carries (what a `SCHEDULE` frame can hold).
pub const MAX_SCHEDULE_PAYLOAD: usize = 64 * 1024;

/// Bit of a SCHEDULE record's flags: the schedule is paused.
pub const SCHEDULE_PAUSED: u8 = 0x01;
/// Bit of a SCHEDULE record's flags: its target is a subject, not a queue.
pub const SCHEDULE_SUBJECT: u8 = 0x02;

/// Fixed bytes of a QUEUE body in front of the name.
const QUEUE_FIXED: usize = 4;
/// Fixed bytes of a PUT body in front of the payload.
const PUT_FIXED: usize = 4 + 8 + 8 + 1 + 4 + 2;
const DEL_LEN: usize = 8;
const LEASED_LEN: usize = 8 + 4 + 2;
const REQUEUE_LEN: usize = 8 + 4 + 2 + 8;
const MOVE_LEN: usize = 8 + 4 + 4 + 2;
const PURGE_LEN: usize = 4;
const IDS_LEN: usize = 8;
/// Fixed bytes of a BIND or UNBIND body in front of the pattern.
const BIND_FIXED: usize = 4;
/// Fixed bytes of a SUBJECT body in front of the subject.
const SUBJECT_FIXED: usize = 8;
const COPY_LEN: usize = PUT_FIXED + 8;
/// Bytes of a schedule's run state: `after_ms`, `last_ms`, runs, misfires, failures.
const RUNS_LEN: usize = 5 * 8;
/// Fixed bytes of a SCHEDULE body: anchor, run state, flags, priority.
const SCHEDULE_FIXED: usize = 8 + RUNS_LEN + 1 + 1;

/// Where a schedule stands: what a FIRED record sets, and a SCHEDULE record carries
/// besides the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScheduleRuns {
    /// The next run is the first run time after this (unix-epoch milliseconds).
    pub after_ms: u64,
    /// The time of the last run; 0 before the first.
    pub last_ms: u64,
    /// Runs so far.
    pub runs: u64,
    /// Late runs that stood for missed run times.
    pub misfires: u64,
    /// Runs whose message was refused.
    pub failures: u64,
}

/// One change of state, as it is logged. Each is absolute ("the message now has this
/// state"), never relative, so applying one twice changes nothing the second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Log queue number `queue` names the queue `name` from here on.
    Queue {
        /// The number later records use for the queue.
        queue: u32,
        /// The queue's name: 1 to 255 bytes.
        name: &'a str,
    },
    /// Message `id` exists in `queue` with this state, not in flight (replaces any
    /// earlier state of `id`).
    Put {
        /// The queue's number (bound by an earlier QUEUE record).
        queue: u32,
        /// The message id.
        id: u64,
        /// Unix-epoch milliseconds at which the message becomes ready; 0 = ready now.
        due_ms: u64,
        /// The message's priority.
        priority: u8,
        /// Deliveries so far (the number of the last lease).
        attempt: u32,
        /// Deliveries counted against the dead-letter limit.
        charged: u16,
        /// The message's bytes: at most [`MAX_PAYLOAD_LEN`].
        payload: &'a [u8],
    },
    /// Message `id` is gone.
    Del {
        /// The message id.
        id: u64,
    },
    /// Message `id` is in flight under lease `attempt`.
    Leased {
        /// The message id.
        id: u64,
        /// The lease's number (the message's attempt count with this delivery).
        attempt: u32,
        /// The dead-letter limit the lease was granted under.
        max_deliveries: u16,
    },
    /// Message `id`'s lease ended; it is ready at `due_ms` (0 = now), not in flight.
    Requeue {
        /// The message id.
        id: u64,
        /// Deliveries so far.
        attempt: u32,
        /// Deliveries counted against the dead-letter limit.
        charged: u16,
        /// Unix-epoch milliseconds at which it becomes ready; 0 = ready now.
        due_ms: u64,
    },
    /// Message `id` now belongs to `queue`, ready now, not in flight.
    Move {
        /// The message id.
        id: u64,
        /// The queue's number.
        queue: u32,
        /// Deliveries so far.
        attempt: u32,
        /// Deliveries counted against the dead-letter limit.
        charged: u16,
    },
    /// Every message of `queue` is gone (ready, delayed and in flight).
    Purge {
        /// The queue's number.
        queue: u32,
    },
    /// Ids below `next` may have been handed out.
    Ids {
        /// The lowest id that has surely not been handed out.
        next: u64,
    },
    /// `pattern` is bound to `queue` (applying it again changes nothing).
    Bind {
        /// The queue's number (bound by an earlier QUEUE record).
        queue: u32,
        /// The subject pattern: 1 to [`MAX_TEXT_LEN`] bytes.
        pattern: &'a str,
    },
    /// The binding of `pattern` to `queue` is gone (if there was one).
    Unbind {
        /// The queue's number (bound by an earlier QUEUE record).
        queue: u32,
        /// The subject pattern: 1 to [`MAX_TEXT_LEN`] bytes.
        pattern: &'a str,
    },
    /// Message `id`, put by the PUT just before, was published to `subject`. A PUT
    /// carries no subject and replaces the whole state, so this follows every PUT of
    /// a published message, the first and any later one (a snapshot, say).
    Subject {
        /// The message id.
        id: u64,
        /// The subject it was published to: 1 to [`MAX_TEXT_LEN`] bytes.
        subject: &'a str,
    },
    /// Message `id` exists in `queue` with this state, as a PUT would say, and its
    /// payload and subject are those of message `of`, which an earlier record put
    /// and which is still there: one copy of a publish, whose payload is written
    /// once for all the copies.
    Copy {
        /// The queue's number (bound by an earlier QUEUE record).
        queue: u32,
        /// The message id.
        id: u64,
        /// Unix-epoch milliseconds at which the message becomes ready; 0 = ready now.
        due_ms: u64,
        /// The message's priority.
        priority: u8,
        /// Deliveries so far (the number of the last lease).
        attempt: u32,
        /// Deliveries counted against the dead-letter limit.
        charged: u16,
        /// The message whose payload and subject it shares.
        of: u64,
    },
    /// Schedule `name` exists with this definition and state (replaces any earlier).
    Schedule {
        /// The schedule's name: 1 to [`MAX_TEXT_LEN`] bytes.
        name: &'a str,
        /// Its expression, as the client gave it: 1 to [`MAX_TEXT_LEN`] bytes.
        spec: &'a str,
        /// Its queue or subject: 1 to [`MAX_TEXT_LEN`] bytes.
        target: &'a str,
        /// [`SCHEDULE_PAUSED`], [`SCHEDULE_SUBJECT`].
        flags: u8,
        /// The priority of its messages.
        priority: u8,
        /// When it was defined (unix-epoch milliseconds): `@every` runs count from it.
        anchor_ms: u64,
        /// Where its runs stand.
        runs: ScheduleRuns,
        /// The payload of its messages: at most [`MAX_SCHEDULE_PAYLOAD`] bytes.
        payload: &'a [u8],
    },
    /// Schedule `name` is gone (if there was one).
    Unschedule {
        /// The schedule's name.
        name: &'a str,
    },
    /// Schedule `name` ran: its run state is now `runs`. Logged before the message
    /// the run makes, so that a crash between the two loses that message rather than
    /// running the schedule twice for one time.
    Fired {
        /// The schedule's name.
        name: &'a str,
        /// Where its runs stand.
        runs: ScheduleRuns,
    },
    /// Unique key `key` of queue `queue` is held by message `id` (`until_ms` 0), or
    /// remembered until `until_ms` after that message left (replaces any earlier
    /// state of `id`'s key).
    Key {
        /// The message that holds (or held) it.
        id: u64,
        /// How long it is remembered once its message leaves.
        window_ms: u32,
        /// Unix-epoch milliseconds until which it is remembered; 0 while held.
        until_ms: u64,
        /// The queue's name: 1 to [`MAX_NAME_LEN`] bytes (a name, not a number:
        /// a remembered key can outlive its queue).
        queue: &'a str,
        /// The key: 1 to [`MAX_TEXT_LEN`] bytes.
        key: &'a [u8],
    },
    /// The key of message `id` is forgotten (if it had one).
    Unkey {
        /// The message id.
        id: u64,
    },
    /// Message `id` expires at `at_ms` (0: it no longer expires).
    Expires {
        /// The message id.
        id: u64,
        /// Unix-epoch milliseconds from which it is never delivered; 0 for none.
        at_ms: u64,
        /// It is dead-lettered then, not dropped.
        dead_letter: bool,
    },
}

impl Record<'_> {
    /// The record's type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Record::Queue { .. } => TYPE_QUEUE,
            Record::Put { .. } => TYPE_PUT,
            Record::Del { .. } => TYPE_DEL,
            Record::Leased { .. } => TYPE_LEASED,
            Record::Requeue { .. } => TYPE_REQUEUE,
            Record::Move { .. } => TYPE_MOVE,
            Record::Purge { .. } => TYPE_PURGE,
            Record::Ids { .. } => TYPE_IDS,
            Record::Bind { .. } => TYPE_BIND,
            Record::Unbind { .. } => TYPE_UNBIND,
            Record::Subject { .. } => TYPE_SUBJECT,
            Record::Copy { .. } => TYPE_COPY,
            Record::Schedule { .. } => TYPE_SCHEDULE,
            Record::Unschedule { .. } => TYPE_UNSCHEDULE,
            Record::Fired { .. } => TYPE_FIRED,
            Record::Key { .. } => TYPE_KEY,
            Record::Unkey { .. } => TYPE_UNKEY,
            Record::Expires { .. } => TYPE_EXPIRES,
        }
    }

    /// Bytes of the body (after the type byte).
    fn body_len(&self) -> usize {
        match self {
            Record::Queue { name, .. } => QUEUE_FIXED + name.len(),
            Record::Put { payload, .. } => PUT_FIXED + payload.len(),
            Record::Del { .. } => DEL_LEN,
            Record::Leased { .. } => LEASED_LEN,
            Record::Requeue { .. } => REQUEUE_LEN,
            Record::Move { .. } => MOVE_LEN,
            Record::Purge { .. } => PURGE_LEN,
            Record::Ids { .. } => IDS_LEN,
            Record::Bind { pattern, .. } | Record::Unbind { pattern, .. } => {
                BIND_FIXED + pattern.len()
            }
            Record::Subject { subject, .. } => SUBJECT_FIXED + subject.len(),
            Record::Copy { .. } => COPY_LEN,
            Record::Schedule {
                name,
                spec,
                target,
                payload,
                ..
            } => SCHEDULE_FIXED + 3 + name.len() + spec.len() + target.len() + payload.len(),
            Record::Unschedule { name } => name.len(),
            Record::Fired { name, .. } => RUNS_LEN + name.len(),
            Record::Key { queue, key, .. } => KEY_FIXED + key.len() + queue.len(),
            Record::Unkey { .. } => UNKEY_LEN,
            Record::Expires { .. } => EXPIRES_LEN,
        }
    }
}

/// Why a record (or what should have been one) is not valid. Found by the
/// [`Scanner`](super::Scanner) and reported in
/// [`ScanEnd::Damaged`](super::ScanEnd::Damaged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// `len` is 0 or above [`MAX_RECORD_LEN`].
    BadLen(u32),
    /// The stored checksum does not match the record's bytes.
    BadCrc,
    /// The type byte names no record type.
    UnknownType(u8),
    /// The body's length does not fit its type (too short, or longer than a fixed-size
    /// type, or a name or payload over its limit).
    BodyLength {
        /// The type byte.
        kind: u8,
        /// The body's length in bytes.
        len: usize,
    },
    /// A QUEUE record's name is not UTF-8.
    BadName,
    /// The pattern of a BIND or UNBIND record, or the subject of a SUBJECT record, is
    /// not UTF-8; the type byte says which.
    BadText(u8),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::BadLen(len) => write!(f, "record length {len} out of range"),
            Damage::BadCrc => f.write_str("checksum mismatch"),
            Damage::UnknownType(kind) => write!(f, "unknown record type {kind}"),
            Damage::BodyLength { kind, len } => {
                write!(f, "{len}-byte body does not fit record type {kind}")
            }
            Damage::BadName => f.write_str("queue name is not UTF-8"),
            Damage::BadText(TYPE_SUBJECT) => f.write_str("subject is not UTF-8"),
            Damage::BadText(kind @ (TYPE_BIND | TYPE_UNBIND)) => {
                write!(f, "pattern of record type {kind} is not UTF-8")
            }
            Damage::BadText(kind) => write!(f, "a name of record type {kind} is not UTF-8"),
        }
    }
}

/// LevelDB's CRC mask: stored checksums are rotated and offset, so that the CRC of a
/// run of zeros (0) never checks out and a checksum computed over bytes that contain
/// checksums stays well spread.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The inverse of [`mask`].
pub fn unmask(masked: u32) -> u32 {
    masked.wrapping_sub(0xa282_ead8).rotate_left(15)
}

/// The masked checksum a record stores: over its `len` bytes, then the type byte and
/// the body (`rest`).
pub fn record_crc(len: [u8; 4], rest: &[u8]) -> u32 {
    mask(crc32c::crc32c_append(crc32c::crc32c(&len), rest))
}

/// Appends `record` to `out`: `len`, `crc`, type and body.
///
/// The record must be valid: a QUEUE name of 1 to [`MAX_NAME_LEN`] bytes, a pattern
/// or subject of 1 to [`MAX_TEXT_LEN`] bytes, a PUT payload of at most
/// [`MAX_PAYLOAD_LEN`]; anything else would be written as a record that reads back as
/// damage. The server's limits (protocol names, `BMAXMESSAGESIZE`) guarantee this;
/// debug builds check it.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    debug_assert!(
        match record {
            Record::Queue { name, .. } => (1..=MAX_NAME_LEN).contains(&name.len()),
            Record::Put { payload, .. } => payload.len() <= MAX_PAYLOAD_LEN,
            Record::Bind { pattern, .. } | Record::Unbind { pattern, .. } =>
                (1..=MAX_TEXT_LEN).contains(&pattern.len()),
            Record::Subject { subject, .. } => (1..=MAX_TEXT_LEN).contains(&subject.len()),
            Record::Schedule {
                name,
                spec,
                target,
                payload,
                ..
            } =>
                [name, spec, target]
                    .iter()
                    .all(|t| (1..=MAX_TEXT_LEN).contains(&t.len()))
                    && payload.len() <= MAX_SCHEDULE_PAYLOAD,
            Record::Unschedule { name } | Record::Fired { name, .. } =>
                (1..=MAX_TEXT_LEN).contains(&name.len()),
            Record::Key { queue, key, .. } =>
                (1..=MAX_NAME_LEN).contains(&queue.len()) && (1..=MAX_TEXT_LEN).contains(&key.len()),
            _ => true,
        },
        "journal record out of limits"
    );
    let start = out.len();
    // Fits: a valid record's len is at most MAX_RECORD_LEN, below u32::MAX.
    let len = (1 + record.body_len()) as u32;
    out.reserve(RECORD_HEADER_LEN + len as usize);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(record.kind());
    match *record {
        Record::Queue { queue, name } => {
            out.extend_from_slice(&queue.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        Record::Put {
            queue,
            id,
            due_ms,
            priority,
            attempt,
            charged,
            payload,
        } => {
            put_state(out, queue, id, due_ms, priority, attempt, charged);
            out.extend_from_slice(payload);
        }
        Record::Copy {
            queue,
            id,
            due_ms,
            priority,
            attempt,
            charged,
            of,
        } => {
            put_state(out, queue, id, due_ms, priority, attempt, charged);
            out.extend_from_slice(&of.to_le_bytes());
        }
        Record::Del { id } => out.extend_from_slice(&id.to_le_bytes()),
        Record::Leased {
            id,
            attempt,
            max_deliveries,
        } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&attempt.to_le_bytes());
            out.extend_from_slice(&max_deliveries.to_le_bytes());
        }
        Record::Requeue {
            id,
            attempt,
            charged,
            due_ms,
        } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&attempt.to_le_bytes());
            out.extend_from_slice(&charged.to_le_bytes());
            out.extend_from_slice(&due_ms.to_le_bytes());
        }
        Record::Move {
            id,
            queue,
            attempt,
            charged,
        } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&queue.to_le_bytes());
            out.extend_from_slice(&attempt.to_le_bytes());
            out.extend_from_slice(&charged.to_le_bytes());
        }
        Record::Purge { queue } => out.extend_from_slice(&queue.to_le_bytes()),
        Record::Ids { next } => out.extend_from_slice(&next.to_le_bytes()),
        Record::Bind { queue, pattern } | Record::Unbind { queue, pattern } => {
            out.extend_from_slice(&queue.to_le_bytes());
            out.extend_from_slice(pattern.as_bytes());
        }
        Record::Subject { id, subject } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(subject.as_bytes());
        }
        Record::Schedule {
            name,
            spec,
            target,
            flags,
            priority,
            anchor_ms,
            runs,
            payload,
        } => {
            out.extend_from_slice(&anchor_ms.to_le_bytes());
            put_runs(out, &runs);
            out.push(flags);
            out.push(priority);
            for text in [name, spec, target] {
                out.push(text.len() as u8);
                out.extend_from_slice(text.as_bytes());
            }
            out.extend_from_slice(payload);
        }
        Record::Unschedule { name } => out.extend_from_slice(name.as_bytes()),
        Record::Fired { name, runs } => {
            put_runs(out, &runs);
            out.extend_from_slice(name.as_bytes());
        }
        Record::Key {
            id,
            window_ms,
            until_ms,
            queue,
            key,
        } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&window_ms.to_le_bytes());
            out.extend_from_slice(&until_ms.to_le_bytes());
            out.push(key.len() as u8);
            out.extend_from_slice(key);
            out.extend_from_slice(queue.as_bytes());
        }
        Record::Unkey { id } => out.extend_from_slice(&id.to_le_bytes()),
        Record::Expires {
            id,
            at_ms,
            dead_letter,
        } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&at_ms.to_le_bytes());
            out.push(if dead_letter { EXPIRES_DEAD_LETTER } else { 0 });
        }
    }
    let crc = record_crc(len.to_le_bytes(), &out[start + RECORD_HEADER_LEN..]);
    out[start + 4..start + RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

fn put_runs(out: &mut Vec<u8>, runs: &ScheduleRuns) {
    for n in [
        runs.after_ms,
        runs.last_ms,
        runs.runs,
        runs.misfires,
        runs.failures,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// Bytes [`encode`] appends for `record`.
pub fn encoded_len(record: &Record<'_>) -> usize {
    RECORD_HEADER_LEN + 1 + record.body_len()
}

/// Reads little-endian fields off the front of a body; `None` when it runs out.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn rest(self) -> &'a [u8] {
        self.0
    }
    fn runs(&mut self) -> Option<ScheduleRuns> {
        Some(ScheduleRuns {
            after_ms: self.u64()?,
            last_ms: self.u64()?,
            runs: self.u64()?,
            misfires: self.u64()?,
            failures: self.u64()?,
        })
    }
    /// A length byte and that many bytes of UTF-8, 1 to [`MAX_TEXT_LEN`] of them:
    /// `Ok(None)` when the body runs out, `Err` when they are not UTF-8.
    fn short_text(&mut self) -> Result<Option<&'a str>, ()> {
        let Some(len) = self.u8().filter(|&n| n > 0) else {
            return Ok(None);
        };
        let Some((text, rest)) = self.0.split_at_checked(len as usize) else {
            return Ok(None);
        };
        self.0 = rest;
        std::str::from_utf8(text).map(Some).map_err(|_| ())
    }
}

/// Decodes the body of a record of type `kind` (the bytes after the type byte, whose
/// checksum the caller has checked).
///
/// Fixed-size types must have exactly their size: a longer body is as suspect as a
/// short one, since no version of the format wrote one.
///
/// # Errors
/// [`Damage::UnknownType`], [`Damage::BodyLength`], [`Damage::BadName`] or
/// [`Damage::BadText`].
pub fn decode(kind: u8, body: &[u8]) -> Result<Record<'_>, Damage> {
    let bad_len = Damage::BodyLength {
        kind,
        len: body.len(),
    };
    let exact = |n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err(bad_len)
        }
    };
    // A pattern or subject: 1 to MAX_TEXT_LEN bytes after `fixed` bytes.
    let text_len = |fixed: usize| {
        if (fixed + 1..=fixed + MAX_TEXT_LEN).contains(&body.len()) {
            Ok(())
        } else {
            Err(bad_len)
        }
    };
    let mut f = Fields(body);
    let record = match kind {
        TYPE_QUEUE => {
            if !(QUEUE_FIXED + 1..=QUEUE_FIXED + MAX_NAME_LEN).contains(&body.len()) {
                return Err(bad_len);
            }
            let queue = f.u32().ok_or(bad_len)?;
            let name = std::str::from_utf8(f.rest()).map_err(|_| Damage::BadName)?;
            Record::Queue { queue, name }
        }
        TYPE_PUT => {
            if !(PUT_FIXED..=PUT_FIXED + MAX_PAYLOAD_LEN).contains(&body.len()) {
                return Err(bad_len);
            }
            Record::Put {
                queue: f.u32().ok_or(bad_len)?,
                id: f.u64().ok_or(bad_len)?,
                due_ms: f.u64().ok_or(bad_len)?,
                priority: f.u8().ok_or(bad_len)?,
                attempt: f.u32().ok_or(bad_len)?,
                charged: f.u16().ok_or(bad_len)?,
                payload: f.rest(),
            }
        }
        TYPE_COPY => {
            exact(COPY_LEN)?;
            Record::Copy {
                queue: f.u32().ok_or(bad_len)?,
                id: f.u64().ok_or(bad_len)?,
                due_ms: f.u64().ok_or(bad_len)?,
                priority: f.u8().ok_or(bad_len)?,
                attempt: f.u32().ok_or(bad_len)?,
                charged: f.u16().ok_or(bad_len)?,
                of: f.u64().ok_or(bad_len)?,
            }
        }
        TYPE_DEL => {
            exact(DEL_LEN)?;
            Record::Del {
                id: f.u64().ok_or(bad_len)?,
            }
        }
        TYPE_LEASED => {
            exact(LEASED_LEN)?;
            Record::Leased {
                id: f.u64().ok_or(bad_len)?,
                attempt: f.u32().ok_or(bad_len)?,
                max_deliveries: f.u16().ok_or(bad_len)?,
            }
        }
        TYPE_REQUEUE => {
            exact(REQUEUE_LEN)?;
            Record::Requeue {
                id: f.u64().ok_or(bad_len)?,
                attempt: f.u32().ok_or(bad_len)?,
                charged: f.u16().ok_or(bad_len)?,
                due_ms: f.u64().ok_or(bad_len)?,
            }
        }
        TYPE_MOVE => {
            exact(MOVE_LEN)?;
            Record::Move {
                id: f.u64().ok_or(bad_len)?,
                queue: f.u32().ok_or(bad_len)?,
                attempt: f.u32().ok_or(bad_len)?,
                charged: f.u16().ok_or(bad_len)?,
            }
        }
        TYPE_PURGE => {
            exact(PURGE_LEN)?;
            Record::Purge {
                queue: f.u32().ok_or(bad_len)?,
            }
        }
        TYPE_IDS => {
            exact(IDS_LEN)?;
            Record::Ids {
                next: f.u64().ok_or(bad_len)?,
            }
        }
        TYPE_BIND | TYPE_UNBIND => {
            text_len(BIND_FIXED)?;
            let queue = f.u32().ok_or(bad_len)?;
            let pattern = std::str::from_utf8(f.rest()).map_err(|_| Damage::BadText(kind))?;
            if kind == TYPE_BIND {
                Record::Bind { queue, pattern }
            } else {
                Record::Unbind { queue, pattern }
            }
        }
        TYPE_SUBJECT => {
            text_len(SUBJECT_FIXED)?;
            let id = f.u64().ok_or(bad_len)?;
            let subject = std::str::from_utf8(f.rest()).map_err(|_| Damage::BadText(kind))?;
            Record::Subject { id, subject }
        }
        TYPE_SCHEDULE => {
            let anchor_ms = f.u64().ok_or(bad_len)?;
            let runs = f.runs().ok_or(bad_len)?;
            let flags = f.u8().ok_or(bad_len)?;
            let priority = f.u8().ok_or(bad_len)?;
            let mut text = || {
                f.short_text()
                    .map_err(|()| Damage::BadText(kind))?
                    .ok_or(bad_len)
            };
            let (name, spec, target) = (text()?, text()?, text()?);
            let payload = f.rest();
            if payload.len() > MAX_SCHEDULE_PAYLOAD {
                return Err(bad_len);
            }
            Record::Schedule {
                name,
                spec,
                target,
                flags,
                priority,
                anchor_ms,
                runs,
                payload,
            }
        }
        TYPE_UNSCHEDULE => {
            text_len(0)?;
            let name = std::str::from_utf8(f.rest()).map_err(|_| Damage::BadText(kind))?;
            Record::Unschedule { name }
        }
        TYPE_FIRED => {
            text_len(RUNS_LEN)?;
            let runs = f.runs().ok_or(bad_len)?;
            let name = std::str::from_utf8(f.rest()).map_err(|_| Damage::BadText(kind))?;
            Record::Fired { name, runs }
        }
        TYPE_KEY => {
            let id = f.u64().ok_or(bad_len)?;
            let window_ms = f.u32().ok_or(bad_len)?;
            let until_ms = f.u64().ok_or(bad_len)?;
            let key_len = usize::from(f.u8().ok_or(bad_len)?);
            let rest = f.rest();
            if key_len == 0 || !(key_len + 1..=key_len + MAX_NAME_LEN).contains(&rest.len()) {
                return Err(bad_len);
            }
            let (key, queue) = rest.split_at(key_len);
            let queue = std::str::from_utf8(queue).map_err(|_| Damage::BadName)?;
            Record::Key {
                id,
                window_ms,
                until_ms,
                queue,
                key,
            }
        }
        TYPE_UNKEY => {
            exact(UNKEY_LEN)?;
            Record::Unkey {
                id: f.u64().ok_or(bad_len)?,
            }
        }
        TYPE_EXPIRES => {
            exact(EXPIRES_LEN)?;
            Record::Expires {
                id: f.u64().ok_or(bad_len)?,
                at_ms: f.u64().ok_or(bad_len)?,
                // Other flag bits are for later versions to give a meaning.
                dead_letter: f.u8().ok_or(bad_len)? & EXPIRES_DEAD_LETTER != 0,
            }
        }
        other => return Err(Damage::UnknownType(other)),
    };
    Ok(record)
}

/// What a segment file holds: appended changes, or a snapshot of the whole state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A `.log` segment (kind 0).
    Log,
    /// A `.base` snapshot (kind 1).
    Base,
}

impl SegmentKind {
    fn code(self) -> u16 {
        match self {
            SegmentKind::Log => 0,
            SegmentKind::Base => 1,
        }
    }
}

/// A segment file's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Log or base.
    pub kind: SegmentKind,
    /// The segment's sequence number (also in its file name).
    pub seq: u64,
}

/// Why a segment header cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes: the file was cut short before its header
    /// was whole.
    Short(usize),
    /// The first eight bytes are not [`MAGIC`] (a zero-filled file reads as this).
    BadMagic,
    /// The header's checksum does not match its first 20 bytes.
    BadCrc,
    /// A format version this build does not read.
    Version(u16),
    /// A kind other than 0 (log) or 1 (base).
    Kind(u16),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short(n) => write!(f, "file is {n} bytes, shorter than its header"),
            HeaderError::BadMagic => f.write_str("not a beuss segment (bad magic)"),
            HeaderError::BadCrc => f.write_str("header checksum mismatch"),
            HeaderError::Version(v) => write!(f, "format version {v}, this build reads {VERSION}"),
            HeaderError::Kind(k) => write!(f, "unknown segment kind {k}"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// The header of a new segment: magic, [`VERSION`], kind, seq and the masked CRC32C
/// of those 20 bytes.
pub fn encode_header(kind: SegmentKind, seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    h[10..12].copy_from_slice(&kind.code().to_le_bytes());
    h[12..20].copy_from_slice(&seq.to_le_bytes());
    let crc = mask(crc32c::crc32c(&h[..20]));
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads the header at the start of `buf` (a segment file's first bytes; more may
/// follow). The checksum is checked before the version and kind, so a damaged
/// header is reported as damage rather than as a strange version.
///
/// # Errors
/// A [`HeaderError`] saying what is wrong.
pub fn decode_header(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Err(HeaderError::Short(buf.len()));
    };
    let mut f = Fields(h);
    if f.take::<8>() != Some(MAGIC) {
        return Err(HeaderError::BadMagic);
    }
    let (Some(version), Some(kind), Some(seq), Some(crc)) = (f.u16(), f.u16(), f.u64(), f.u32())
    else {
        return Err(HeaderError::Short(buf.len()));
    };
    if crc != mask(crc32c::crc32c(&h[..20])) {
        return Err(HeaderError::BadCrc);
    }
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let kind = match kind {
        0 => SegmentKind::Log,
        1 => SegmentKind::Base,
        other => return Err(HeaderError::Kind(other)),
    };
    Ok(SegmentHeader { kind, seq })
}

/// The fields a PUT and a COPY share, in their order on disk.
fn put_state(
    out: &mut Vec<u8>,
    queue: u32,
    id: u64,
    due_ms: u64,
    priority: u8,
    attempt: u32,
    charged: u16,
) {
    out.extend_from_slice(&queue.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&due_ms.to_le_bytes());
    out.push(priority);
    out.extend_from_slice(&attempt.to_le_bytes());
    out.extend_from_slice(&charged.to_le_bytes());
}
