//! The version-2 part of the codec (protocol.md section 13): leased receive, the
//! settle requests (`ACK`, `NACK`, `TOUCH`), `PEEK`, `MOVE`, `PUT` options and the
//! replies they get. Kept apart from the version-1 codec so that each stays readable.

use bytes::BufMut;

use super::{
    CountedReply, LEN_PREFIX, Opcode, ProtocolError, RESPONSE_HEADER, Reader, Request, Status,
    check_queue_name, encode_hello_head, put_name, to_queue_name,
};

/// `PUT` flag bit: a delay and a priority follow the queue name.
pub const PUT_OPTIONS: u8 = 0x01;
/// Bytes the `PUT_OPTIONS` fields take: `delay_ms: u32`, `priority: u8`.
pub const PUT_OPTIONS_LEN: usize = 5;
/// Highest priority number (the last to be delivered); 0 is the first.
pub const MAX_PRIORITY: u8 = 9;
/// Priority of a message put without options.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Longest delay a `PUT` or `NACK` may ask for: 30 days.
pub const MAX_DELAY_MS: u32 = 30 * 24 * 3600 * 1000;
/// Longest lease a `LEASE` or `TOUCH` may ask for: 12 hours.
pub const MAX_LEASE_MS: u32 = 12 * 3600 * 1000;
/// Most `(id, attempt)` pairs in one settle request.
pub const MAX_SETTLE_PAIRS: usize = 4096;
/// Largest declared `length` of an `ACK`, `NACK` or `TOUCH` frame.
pub const MAX_SETTLE_FRAME: u32 = 64 * 1024;
/// `max_deliveries` value meaning "never dead-letter".
pub const NEVER_DEAD: u16 = u16::MAX;
/// `HELLO` feature bit: `LEASE`, `ACK`, `NACK`, `TOUCH`, `PEEK`, `MOVE`.
pub const FEATURE_LEASES: u32 = 1;
/// `HELLO` feature bit: `PUT` with a delay and a priority.
pub const FEATURE_PUT_OPTIONS: u32 = 2;
/// `HELLO` feature bit: the server keeps messages on disk (`BDATADIR`): they survive
/// a restart and a crash of the server (protocol.md 14).
pub const FEATURE_DURABLE: u32 = 4;
/// `HELLO` feature bit: with [`FEATURE_DURABLE`], replies to changes leave only once
/// the changes are synced to the disk (`BFSYNC=always`): they survive a power cut.
pub const FEATURE_SYNCED: u32 = 8;

/// `LEASE` option bit: the lease outlives the connection.
const LEASE_DETACHED: u8 = 0x01;
/// `NACK` option bit: dead-letter now.
const NACK_DEAD: u8 = 0x01;
/// `NACK` option bit: do not charge this delivery.
const NACK_NO_CHARGE: u8 = 0x02;
/// Bytes of one `(id, attempt)` pair on the wire.
const PAIR_LEN: usize = 12;
/// Bytes in front of each message of a `LEASED`/`PEEKED` reply: id, attempt, len.
const DELIVERY_HEADER: usize = 16;

/// Delay and priority of a `PUT` with the `PUT_OPTIONS` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOptions {
    /// Milliseconds before the message becomes ready (0 = now).
    pub delay_ms: u32,
    /// 0 (first) to [`MAX_PRIORITY`] (last).
    pub priority: u8,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            delay_ms: 0,
            priority: DEFAULT_PRIORITY,
        }
    }
}

impl PutOptions {
    /// Decodes and checks the option fields (exactly [`PUT_OPTIONS_LEN`] bytes).
    pub(super) fn decode(fields: &[u8]) -> Result<PutOptions, ProtocolError> {
        let mut r = Reader::new(fields);
        let options = PutOptions {
            delay_ms: r.u32("delay_ms")?,
            priority: r.u8("priority")?,
        };
        options.check()?;
        Ok(options)
    }

    fn check(&self) -> Result<(), ProtocolError> {
        if self.delay_ms > MAX_DELAY_MS {
            return Err(ProtocolError::BadArgument(
                "PUT delay_ms is over 30 days (2592000000)",
            ));
        }
        if self.priority > MAX_PRIORITY {
            return Err(ProtocolError::BadArgument("PUT priority must be 0..9"));
        }
        Ok(())
    }
}

/// One lease, as named by the settle requests: a message id and the attempt number
/// it was leased under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseRef {
    /// Message id.
    pub id: u64,
    /// Attempt number of the lease.
    pub attempt: u32,
}

/// The `(id, attempt)` pairs of a settle request: borrowed from a decoded frame, or
/// from a caller's slice when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairs<'a> {
    /// `count` pairs as they travel: 12 bytes each, already length-checked.
    Wire(&'a [u8]),
    /// Pairs to encode.
    List(&'a [LeaseRef]),
}

impl<'a> Pairs<'a> {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        match self {
            Pairs::Wire(bytes) => bytes.len() / PAIR_LEN,
            Pairs::List(list) => list.len(),
        }
    }

    /// True when there is no pair.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pairs, in order.
    pub fn iter(&self) -> PairsIter<'a> {
        PairsIter {
            pairs: *self,
            next: 0,
        }
    }
}

/// Iterator over [`Pairs`].
#[derive(Debug, Clone)]
pub struct PairsIter<'a> {
    pairs: Pairs<'a>,
    next: usize,
}

impl Iterator for PairsIter<'_> {
    type Item = LeaseRef;

    fn next(&mut self) -> Option<LeaseRef> {
        let i = self.next;
        self.next += 1;
        match self.pairs {
            Pairs::List(list) => list.get(i).copied(),
            Pairs::Wire(bytes) => {
                let pair = bytes.get(i * PAIR_LEN..(i + 1) * PAIR_LEN)?;
                let (id, attempt) = pair.split_at(8);
                Some(LeaseRef {
                    id: u64::from_be_bytes(id.try_into().ok()?),
                    attempt: u32::from_be_bytes(attempt.try_into().ok()?),
                })
            }
        }
    }
}

/// Decodes the body of a version-2 control request (everything but `PUT`), in the
/// check order of protocol.md 2.5: the whole structure first (`MALFORMED`), then the
/// names (`BAD_QUEUE_NAME`), then the values (`BAD_ARGUMENT`).
pub(super) fn decode_control<'a>(
    opcode: Opcode,
    r: &mut Reader<'a>,
) -> Result<Request<'a>, ProtocolError> {
    Ok(match opcode {
        Opcode::Lease => {
            let name = r.name_bytes()?;
            let wait_ms = r.u32("wait_ms")?;
            let max = r.u16("max")?;
            let lease_ms = r.u32("lease_ms")?;
            let max_deliveries = r.u16("max_deliveries")?;
            let options = r.u8("options")?;
            r.finish()?;
            let queue = to_queue_name(name)?;
            if max == 0 {
                return Err(ProtocolError::BadArgument("LEASE max must be at least 1"));
            }
            if lease_ms > MAX_LEASE_MS {
                return Err(ProtocolError::BadArgument(
                    "LEASE lease_ms is over 12 hours (43200000)",
                ));
            }
            if options & !LEASE_DETACHED != 0 {
                return Err(ProtocolError::BadArgument("LEASE options: unknown bit set"));
            }
            Request::Lease {
                queue,
                wait_ms,
                max,
                lease_ms,
                max_deliveries,
                detached: options & LEASE_DETACHED != 0,
            }
        }
        Opcode::Ack => {
            let name = r.name_bytes()?;
            let pairs = read_pairs(r)?;
            let queue = to_queue_name(name)?;
            check_pairs(&pairs)?;
            Request::Ack { queue, pairs }
        }
        Opcode::Nack => {
            let name = r.name_bytes()?;
            let delay_ms = r.u32("delay_ms")?;
            let options = r.u8("options")?;
            let pairs = read_pairs(r)?;
            let queue = to_queue_name(name)?;
            check_pairs(&pairs)?;
            if delay_ms > MAX_DELAY_MS {
                return Err(ProtocolError::BadArgument(
                    "NACK delay_ms is over 30 days (2592000000)",
                ));
            }
            if options & !(NACK_DEAD | NACK_NO_CHARGE) != 0 {
                return Err(ProtocolError::BadArgument("NACK options: unknown bit set"));
            }
            Request::Nack {
                queue,
                delay_ms,
                dead: options & NACK_DEAD != 0,
                no_charge: options & NACK_NO_CHARGE != 0,
                pairs,
            }
        }
        Opcode::Touch => {
            let name = r.name_bytes()?;
            let lease_ms = r.u32("lease_ms")?;
            let pairs = read_pairs(r)?;
            let queue = to_queue_name(name)?;
            check_pairs(&pairs)?;
            if lease_ms > MAX_LEASE_MS {
                return Err(ProtocolError::BadArgument(
                    "TOUCH lease_ms is over 12 hours (43200000)",
                ));
            }
            Request::Touch {
                queue,
                lease_ms,
                pairs,
            }
        }
        Opcode::Peek => {
            let name = r.name_bytes()?;
            let max = r.u16("max")?;
            r.finish()?;
            let queue = to_queue_name(name)?;
            if max == 0 {
                return Err(ProtocolError::BadArgument("PEEK max must be at least 1"));
            }
            Request::Peek { queue, max }
        }
        Opcode::Move => {
            let from = r.name_bytes()?;
            let to = r.name_bytes()?;
            let max = r.u32("max")?;
            r.finish()?;
            let (from, to) = (to_queue_name(from)?, to_queue_name(to)?);
            if max == 0 {
                return Err(ProtocolError::BadArgument("MOVE max must be at least 1"));
            }
            if from == to {
                return Err(ProtocolError::BadArgument(
                    "MOVE needs two different queues",
                ));
            }
            Request::Move { from, to, max }
        }
        _ => return Err(ProtocolError::BadArgument("not a version-2 request")),
    })
}

/// Reads `count` and the pairs that end a settle request, and checks the frame ends
/// there; the value of `count` is checked by the caller, after the name.
fn read_pairs<'a>(r: &mut Reader<'a>) -> Result<Pairs<'a>, ProtocolError> {
    let count = r.u16("count")? as usize;
    let bytes = r.bytes(count * PAIR_LEN, "pairs")?;
    r.finish()?;
    Ok(Pairs::Wire(bytes))
}

/// Encodes the version-2 requests; `None` for the others, which the caller encodes.
pub(super) fn encode_request(
    request: &Request<'_>,
    dst: &mut impl BufMut,
) -> Option<Result<(), ProtocolError>> {
    let body_len = match request {
        Request::PutWith { queue, payload, .. } => {
            1 + queue.len() + PUT_OPTIONS_LEN + payload.len()
        }
        Request::PutJob {
            queue,
            options,
            unique,
            ttl,
            payload,
        } => {
            let options = if options.is_some() {
                PUT_OPTIONS_LEN
            } else {
                0
            };
            let unique = unique.map_or(0, |u| u.wire_len());
            let ttl = if ttl.is_some() { super::TTL_LEN } else { 0 };
            1 + queue.len() + options + unique + ttl + payload.len()
        }
        Request::Lease { queue, .. } => 1 + queue.len() + 13,
        Request::Ack { queue, pairs } => 1 + queue.len() + 2 + pairs.len() * PAIR_LEN,
        Request::Nack { queue, pairs, .. } => 1 + queue.len() + 5 + 2 + pairs.len() * PAIR_LEN,
        Request::Touch { queue, pairs, .. } => 1 + queue.len() + 4 + 2 + pairs.len() * PAIR_LEN,
        Request::Peek { queue, .. } => 1 + queue.len() + 2,
        Request::Move { from, to, .. } => 1 + from.len() + 1 + to.len() + 4,
        _ => return None,
    };
    Some(encode_checked(request, body_len, dst))
}

fn encode_checked(
    request: &Request<'_>,
    body_len: usize,
    dst: &mut impl BufMut,
) -> Result<(), ProtocolError> {
    // Everything is checked before the first byte is written.
    match request {
        Request::PutWith { queue, options, .. } => {
            check_queue_name(queue)?;
            options.check()?;
        }
        Request::PutJob {
            queue,
            options,
            unique,
            ttl,
            ..
        } => {
            check_queue_name(queue)?;
            if let Some(options) = options {
                options.check()?;
            }
            if let Some(unique) = unique {
                unique.check()?;
            }
            if let Some(ttl) = ttl {
                ttl.check()?;
            }
            if unique.is_none() && ttl.is_none() {
                return Err(ProtocolError::BadArgument(
                    "a PUT with neither a key nor a time to live is a plain PUT",
                ));
            }
        }
        Request::Ack { queue, pairs }
        | Request::Nack { queue, pairs, .. }
        | Request::Touch { queue, pairs, .. } => {
            check_queue_name(queue)?;
            check_pairs(pairs)?;
        }
        Request::Move { from, to, .. } => {
            check_queue_name(from)?;
            check_queue_name(to)?;
        }
        Request::Lease { queue, .. } | Request::Peek { queue, .. } => check_queue_name(queue)?,
        _ => {}
    }
    let len = u32::try_from(body_len + 2).map_err(|_| ProtocolError::FrameTooLarge {
        len: u32::MAX,
        max: u32::MAX,
    })?;
    dst.put_u32(len);
    dst.put_u8(request.opcode() as u8);
    dst.put_u8(match request {
        Request::PutWith { .. } => PUT_OPTIONS,
        Request::PutJob {
            options,
            unique,
            ttl,
            ..
        } => {
            let flag = |on: bool, bit: u8| if on { bit } else { 0 };
            flag(options.is_some(), PUT_OPTIONS)
                | flag(unique.is_some(), super::PUT_UNIQUE)
                | flag(ttl.is_some(), super::PUT_TTL)
        }
        _ => 0,
    });
    match request {
        Request::PutWith {
            queue,
            options,
            payload,
        } => {
            put_name(dst, queue);
            dst.put_u32(options.delay_ms);
            dst.put_u8(options.priority);
            dst.put_slice(payload);
        }
        Request::PutJob {
            queue,
            options,
            unique,
            ttl,
            payload,
        } => {
            put_name(dst, queue);
            if let Some(options) = options {
                dst.put_u32(options.delay_ms);
                dst.put_u8(options.priority);
            }
            if let Some(unique) = unique {
                unique.encode(dst);
            }
            if let Some(ttl) = ttl {
                ttl.encode(dst);
            }
            dst.put_slice(payload);
        }
        Request::Lease {
            queue,
            wait_ms,
            max,
            lease_ms,
            max_deliveries,
            detached,
        } => {
            put_name(dst, queue);
            dst.put_u32(*wait_ms);
            dst.put_u16(*max);
            dst.put_u32(*lease_ms);
            dst.put_u16(*max_deliveries);
            dst.put_u8(if *detached { LEASE_DETACHED } else { 0 });
        }
        Request::Ack { queue, pairs } => {
            put_name(dst, queue);
            put_pairs(dst, pairs);
        }
        Request::Nack {
            queue,
            delay_ms,
            dead,
            no_charge,
            pairs,
        } => {
            put_name(dst, queue);
            dst.put_u32(*delay_ms);
            let mut options = 0;
            if *dead {
                options |= NACK_DEAD;
            }
            if *no_charge {
                options |= NACK_NO_CHARGE;
            }
            dst.put_u8(options);
            put_pairs(dst, pairs);
        }
        Request::Touch {
            queue,
            lease_ms,
            pairs,
        } => {
            put_name(dst, queue);
            dst.put_u32(*lease_ms);
            put_pairs(dst, pairs);
        }
        Request::Peek { queue, max } => {
            put_name(dst, queue);
            dst.put_u16(*max);
        }
        Request::Move { from, to, max } => {
            put_name(dst, from);
            put_name(dst, to);
            dst.put_u32(*max);
        }
        _ => {}
    }
    Ok(())
}

fn check_pairs(pairs: &Pairs<'_>) -> Result<(), ProtocolError> {
    if pairs.is_empty() || pairs.len() > MAX_SETTLE_PAIRS {
        return Err(ProtocolError::BadArgument(
            "a settle request takes 1 to 4096 pairs",
        ));
    }
    Ok(())
}

fn put_pairs(dst: &mut impl BufMut, pairs: &Pairs<'_>) {
    // check_pairs bounded the count by MAX_SETTLE_PAIRS, so it fits a u16.
    dst.put_u16(pairs.len() as u16);
    for pair in pairs.iter() {
        dst.put_u64(pair.id);
        dst.put_u32(pair.attempt);
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// What a version-2 server announces in its `HELLO` reply after the server string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// [`FEATURE_LEASES`], [`FEATURE_PUT_OPTIONS`], ...
    pub features: u32,
    /// Lease given when a `LEASE` asks for 0.
    pub default_lease_ms: u32,
    /// Longest lease a `LEASE` or `TOUCH` may ask for.
    pub max_lease_ms: u32,
    /// Longest delay a `PUT` or `NACK` may ask for.
    pub max_delay_ms: u32,
    /// Charged deliveries before dead-lettering when a `LEASE` asks for 0.
    pub max_deliveries: u16,
}

impl Limits {
    /// Bytes these fields take in a `HELLO` reply.
    const LEN: usize = 18;

    /// Reads the fields if the reply has them (a version-1 reply ends before).
    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Option<Limits>, ProtocolError> {
        if r.buf.len() < Self::LEN {
            return Ok(None);
        }
        Ok(Some(Limits {
            features: r.u32("features")?,
            default_lease_ms: r.u32("default_lease_ms")?,
            max_lease_ms: r.u32("max_lease_ms")?,
            max_delay_ms: r.u32("max_delay_ms")?,
            max_deliveries: r.u16("max_deliveries")?,
        }))
    }
}

/// Appends a version-2 `HELLO` reply: the version-1 fields, then `limits`.
pub fn encode_hello_v2(
    dst: &mut impl BufMut,
    version: u16,
    max_message_size: u32,
    server: &str,
    limits: &Limits,
) {
    encode_hello_head(dst, version, max_message_size, server, Limits::LEN);
    dst.put_u32(limits.features);
    dst.put_u32(limits.default_lease_ms);
    dst.put_u32(limits.max_lease_ms);
    dst.put_u32(limits.max_delay_ms);
    dst.put_u16(limits.max_deliveries);
}

/// Appends the `STORED` reply to a `PUT` with options.
pub fn encode_stored_id(dst: &mut impl BufMut, id: u64) {
    dst.put_u32(1 + 8);
    dst.put_u8(Status::Stored as u8);
    dst.put_u64(id);
}

/// Appends the `TRUNCATED` reply to a `PUT` with options.
pub fn encode_truncated_id(dst: &mut impl BufMut, original_len: u32, stored_len: u32, id: u64) {
    dst.put_u32(1 + 16);
    dst.put_u8(Status::Truncated as u8);
    dst.put_u32(original_len);
    dst.put_u32(stored_len);
    dst.put_u64(id);
}

/// Appends a `MOVED` reply.
pub fn encode_moved(dst: &mut impl BufMut, count: u64) {
    dst.put_u32(1 + 8);
    dst.put_u8(Status::Moved as u8);
    dst.put_u64(count);
}

/// Writes a `LEASED` or `PEEKED` reply in place, as
/// [`MessagesWriter`](super::MessagesWriter) does for `MESSAGES`.
#[derive(Debug)]
pub struct LeasedWriter(CountedReply);

impl LeasedWriter {
    /// Reserves the header of a reply with `status` ([`Status::Leased`] or
    /// [`Status::Peeked`]) at the end of `dst`.
    pub fn begin<B: BufMut + AsRef<[u8]>>(dst: &mut B, status: Status) -> LeasedWriter {
        LeasedWriter(CountedReply::begin(dst, status))
    }

    /// Appends one message.
    pub fn push(&mut self, dst: &mut impl BufMut, lease: LeaseRef, payload: &[u8]) {
        dst.put_u64(lease.id);
        dst.put_u32(lease.attempt);
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

/// One message of a `LEASED` or `PEEKED` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// Its id and attempt number: what `ACK`, `NACK` and `TOUCH` take.
    pub lease: LeaseRef,
    /// The message bytes.
    pub payload: &'a [u8],
}

/// The messages of a `LEASED` or `PEEKED` reply, validated when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliveries<'a> {
    count: u32,
    body: &'a [u8],
}

impl<'a> Deliveries<'a> {
    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Deliveries<'a>, ProtocolError> {
        let count = r.u32("count")?;
        let start = r.buf;
        for _ in 0..count {
            r.u64("id")?;
            r.u32("attempt")?;
            let len = r.u32("message_len")? as usize;
            r.bytes(len, "message")?;
        }
        let used = start.len() - r.buf.len();
        Ok(Deliveries {
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
    pub fn iter(&self) -> DeliveriesIter<'a> {
        DeliveriesIter { rest: self.body }
    }
}

impl<'a> IntoIterator for Deliveries<'a> {
    type Item = Delivery<'a>;
    type IntoIter = DeliveriesIter<'a>;

    fn into_iter(self) -> DeliveriesIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Deliveries`].
#[derive(Debug, Clone)]
pub struct DeliveriesIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for DeliveriesIter<'a> {
    type Item = Delivery<'a>;

    fn next(&mut self) -> Option<Delivery<'a>> {
        let head = self.rest.get(..DELIVERY_HEADER)?;
        let id = u64::from_be_bytes(head[..8].try_into().ok()?);
        let attempt = u32::from_be_bytes(head[8..12].try_into().ok()?);
        let len = u32::from_be_bytes(head[12..16].try_into().ok()?) as usize;
        let payload = self.rest.get(DELIVERY_HEADER..DELIVERY_HEADER + len)?;
        self.rest = &self.rest[DELIVERY_HEADER + len..];
        Some(Delivery {
            lease: LeaseRef { id, attempt },
            payload,
        })
    }
}

/// The result for one pair of a settle request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SettleResult {
    /// Done.
    Ok = 0,
    /// The message is on the server but this pair holds no lease on it any more.
    Stale = 1,
    /// No message with this id is in this queue in a state a lease can reach.
    NotFound = 2,
}

impl SettleResult {
    /// Maps a wire value back; `None` for values newer than this crate.
    pub fn from_u8(value: u8) -> Option<SettleResult> {
        Some(match value {
            0 => SettleResult::Ok,
            1 => SettleResult::Stale,
            2 => SettleResult::NotFound,
            _ => return None,
        })
    }
}

/// The per-pair results of a `SETTLED` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled<'a> {
    results: &'a [u8],
}

impl<'a> Settled<'a> {
    pub(super) fn decode(r: &mut Reader<'a>) -> Result<Settled<'a>, ProtocolError> {
        let count = r.u16("count")? as usize;
        Ok(Settled {
            results: r.bytes(count, "results")?,
        })
    }

    /// Number of results (the request's pair count).
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// The raw result bytes, in request order (see [`SettleResult::from_u8`]).
    pub fn raw(&self) -> &'a [u8] {
        self.results
    }

    /// The results in request order; a value this crate does not know reads as `None`.
    pub fn iter(&self) -> impl Iterator<Item = Option<SettleResult>> + 'a {
        self.results.iter().map(|&b| SettleResult::from_u8(b))
    }
}

/// Writes a `SETTLED` reply in place: one result per pair as the server handles it.
#[derive(Debug)]
pub struct SettledWriter {
    start: usize,
    count: u16,
}

impl SettledWriter {
    /// Reserves the header at the end of `dst`.
    pub fn begin<B: BufMut + AsRef<[u8]>>(dst: &mut B) -> SettledWriter {
        let start = dst.as_ref().len();
        dst.put_u32(0);
        dst.put_u8(Status::Settled as u8);
        dst.put_u16(0);
        SettledWriter { start, count: 0 }
    }

    /// Appends one result.
    pub fn push(&mut self, dst: &mut impl BufMut, result: SettleResult) {
        dst.put_u8(result as u8);
        self.count = self.count.saturating_add(1);
    }

    /// Fills in the frame length and count.
    pub fn finish<B: AsMut<[u8]>>(self, dst: &mut B) {
        let buf = dst.as_mut();
        let len = (buf.len() - self.start - LEN_PREFIX) as u32;
        buf[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
        let at = self.start + RESPONSE_HEADER;
        buf[at..at + 2].copy_from_slice(&self.count.to_be_bytes());
    }
}

/// Lease given when a `LEASE` asks for 0: 30 s, as SQS, JetStream and BullMQ.
pub const DEFAULT_LEASE_MS: u32 = 30_000;
/// Charged deliveries before dead-lettering when a `LEASE` asks for 0 (RabbitMQ's
/// default delivery limit).
pub const DEFAULT_MAX_DELIVERIES: u16 = 20;

#[cfg(test)]
mod tests {
    use super::super::{Decoded, Response, decode_request, decode_response};
    use super::*;

    fn encode(request: &Request<'_>) -> Vec<u8> {
        let mut buf = Vec::new();
        request.encode(&mut buf).expect("encodable");
        buf
    }

    fn decode(buf: &[u8]) -> Result<Option<(Decoded<'_>, usize)>, ProtocolError> {
        decode_request(buf, 1 << 20)
    }

    const PAIRS: [LeaseRef; 2] = [
        LeaseRef { id: 1, attempt: 1 },
        LeaseRef {
            id: u64::MAX,
            attempt: u32::MAX,
        },
    ];

    fn samples() -> Vec<Request<'static>> {
        vec![
            Request::PutWith {
                queue: "q",
                options: PutOptions {
                    delay_ms: MAX_DELAY_MS,
                    priority: MAX_PRIORITY,
                },
                payload: b"payload",
            },
            Request::Lease {
                queue: "jobs",
                wait_ms: 5000,
                max: 10,
                lease_ms: MAX_LEASE_MS,
                max_deliveries: NEVER_DEAD,
                detached: true,
            },
            Request::Ack {
                queue: "jobs",
                pairs: Pairs::List(&PAIRS),
            },
            Request::Nack {
                queue: "jobs",
                delay_ms: 250,
                dead: false,
                no_charge: true,
                pairs: Pairs::List(&PAIRS[..1]),
            },
            Request::Nack {
                queue: "jobs",
                delay_ms: 0,
                dead: true,
                no_charge: false,
                pairs: Pairs::List(&PAIRS),
            },
            Request::Touch {
                queue: "jobs",
                lease_ms: 0,
                pairs: Pairs::List(&PAIRS),
            },
            Request::Peek {
                queue: "q.dead",
                max: 3,
            },
            Request::Move {
                from: "q.dead",
                to: "q",
                max: u32::MAX,
            },
        ]
    }

    /// Every version-2 request decodes back to itself (pairs compared by value), whole
    /// frames only: every shorter prefix is "not yet".
    #[test]
    fn version_2_requests_round_trip() {
        for request in samples() {
            let buf = encode(&request);
            for end in 0..buf.len() {
                assert_eq!(decode(&buf[..end]), Ok(None), "{request:?} at {end}");
            }
            let Ok(Some((Decoded::Request(back), used))) = decode(&buf) else {
                panic!("{request:?}: {:?}", decode(&buf));
            };
            assert_eq!(used, buf.len());
            assert_eq!(encode(&back), buf, "{request:?}");
            if let (
                Request::Ack { pairs: a, .. } | Request::Touch { pairs: a, .. },
                Request::Ack { pairs: b, .. } | Request::Touch { pairs: b, .. },
            ) = (&request, &back)
            {
                assert!(a.iter().eq(b.iter()));
            }
        }
    }

    /// A PUT with options is answered as a head when its payload is over the limit,
    /// with the options decoded, as soon as they are in.
    #[test]
    fn put_with_options_streams_as_a_head() {
        let buf = encode(&samples()[0]);
        let head = REQUEST_HEADER_LEN + 1 + 1 + PUT_OPTIONS_LEN;
        for end in 0..head {
            assert_eq!(decode_request(&buf[..end], 3), Ok(None), "{end}");
        }
        assert_eq!(
            decode_request(&buf[..head], 3),
            Ok(Some((
                Decoded::PutHead {
                    queue: "q",
                    options: Some(PutOptions {
                        delay_ms: MAX_DELAY_MS,
                        priority: MAX_PRIORITY,
                    }),
                    unique: None,
                    ttl: None,
                    payload_len: 7,
                },
                head
            )))
        );
    }

    const REQUEST_HEADER_LEN: usize = super::super::REQUEST_HEADER;

    fn frame(opcode: u8, flags: u8, body: &[u8]) -> Vec<u8> {
        let mut buf = ((body.len() + 2) as u32).to_be_bytes().to_vec();
        buf.push(opcode);
        buf.push(flags);
        buf.extend_from_slice(body);
        buf
    }

    fn err(buf: &[u8]) -> ProtocolError {
        match decode(buf) {
            Err(e) => e,
            other => panic!("{other:?}"),
        }
    }

    /// Values out of range are BAD_ARGUMENT; a flag other than PUT_OPTIONS is BAD_FLAGS;
    /// structure comes first (MALFORMED beats a bad value), names second.
    #[test]
    fn version_2_bad_input() {
        let lease = |max: u16, lease_ms: u32, options: u8| {
            let mut b = vec![1, b'q'];
            b.extend(0u32.to_be_bytes());
            b.extend(max.to_be_bytes());
            b.extend(lease_ms.to_be_bytes());
            b.extend(0u16.to_be_bytes());
            b.push(options);
            b
        };
        assert!(matches!(
            err(&frame(0x13, 0, &lease(0, 0, 0))),
            ProtocolError::BadArgument(_)
        ));
        assert!(matches!(
            err(&frame(0x13, 0, &lease(1, MAX_LEASE_MS + 1, 0))),
            ProtocolError::BadArgument(_)
        ));
        assert!(matches!(
            err(&frame(0x13, 0, &lease(1, 0, 2))),
            ProtocolError::BadArgument(_)
        ));
        let mut trailing = lease(0, 0, 0);
        trailing.push(0);
        assert_eq!(
            err(&frame(0x13, 0, &trailing)),
            ProtocolError::TrailingBytes(1)
        );
        let mut bad_name = lease(0, 0, 0);
        bad_name[1] = 0xFF;
        assert!(matches!(
            err(&frame(0x13, 0, &bad_name)),
            ProtocolError::BadQueueName(_)
        ));
        // PUT options out of range, and an unknown PUT flag.
        let mut put = vec![1, b'q'];
        put.extend((MAX_DELAY_MS + 1).to_be_bytes());
        put.push(0);
        assert!(matches!(
            err(&frame(0x10, 1, &put)),
            ProtocolError::BadArgument(_)
        ));
        let mut put = vec![1, b'q'];
        put.extend(0u32.to_be_bytes());
        put.push(MAX_PRIORITY + 1);
        assert!(matches!(
            err(&frame(0x10, 1, &put)),
            ProtocolError::BadArgument(_)
        ));
        assert_eq!(err(&frame(0x10, 2, &put)), ProtocolError::BadFlags(2));
        // A PUT with options too short for them.
        assert_eq!(
            err(&frame(0x10, 1, &[1, b'q', 0])),
            ProtocolError::ShortField("put options")
        );
        // Settle counts: 0, and pairs that do not match count.
        let ack = |count: u16, pairs: usize| {
            let mut b = vec![1, b'q'];
            b.extend(count.to_be_bytes());
            b.extend(std::iter::repeat_n(0u8, pairs * 12));
            b
        };
        assert!(matches!(
            err(&frame(0x14, 0, &ack(0, 0))),
            ProtocolError::BadArgument(_)
        ));
        assert_eq!(
            err(&frame(0x14, 0, &ack(2, 1))),
            ProtocolError::ShortField("pairs")
        );
        assert_eq!(
            err(&frame(0x14, 0, &ack(1, 2))),
            ProtocolError::TrailingBytes(12)
        );
        assert!(matches!(
            err(&frame(0x14, 0, &ack(4097, 4097))),
            ProtocolError::BadArgument(_)
        ));
        // Settle frames may be up to 64 KiB; beyond is FRAME_TOO_LARGE from 5 bytes.
        let mut big = (MAX_SETTLE_FRAME + 1).to_be_bytes().to_vec();
        big.push(0x14);
        assert!(matches!(err(&big), ProtocolError::FrameTooLarge { .. }));
        let mut ok_len = MAX_SETTLE_FRAME.to_be_bytes().to_vec();
        ok_len.extend([0x14, 0]);
        assert_eq!(decode(&ok_len), Ok(None));
        // MOVE to itself, MOVE of 0.
        let mv = |to: &[u8], max: u32| {
            let mut b = vec![1, b'a', to.len() as u8];
            b.extend(to);
            b.extend(max.to_be_bytes());
            b
        };
        assert!(matches!(
            err(&frame(0x18, 0, &mv(b"a", 1))),
            ProtocolError::BadArgument(_)
        ));
        assert!(matches!(
            err(&frame(0x18, 0, &mv(b"b", 0))),
            ProtocolError::BadArgument(_)
        ));
        // Encoding refuses what decoding would refuse.
        let mut sink = Vec::new();
        let empty: [LeaseRef; 0] = [];
        assert!(
            Request::Ack {
                queue: "q",
                pairs: Pairs::List(&empty)
            }
            .encode(&mut sink)
            .is_err()
        );
        assert!(sink.is_empty());
    }

    /// The version-2 replies decode to what was written: LEASED/PEEKED with ids and
    /// attempts, SETTLED results, MOVED, STORED/TRUNCATED with an id, HELLO limits; a
    /// version-1 HELLO has no limits.
    #[test]
    fn version_2_replies_decode() {
        let mut buf = Vec::new();
        let mut w = LeasedWriter::begin(&mut buf, Status::Leased);
        w.push(&mut buf, LeaseRef { id: 7, attempt: 2 }, b"abc");
        w.push(&mut buf, LeaseRef { id: 9, attempt: 1 }, b"");
        w.finish(&mut buf);
        let Ok(Some((Response::Leased(d), used))) = decode_response(&buf, 1 << 20) else {
            panic!("{buf:?}");
        };
        assert_eq!(used, buf.len());
        let got: Vec<(u64, u32, Vec<u8>)> = d
            .iter()
            .map(|x| (x.lease.id, x.lease.attempt, x.payload.to_vec()))
            .collect();
        assert_eq!(got, [(7, 2, b"abc".to_vec()), (9, 1, vec![])]);

        let mut buf = Vec::new();
        let mut w = SettledWriter::begin(&mut buf);
        for r in [
            SettleResult::Ok,
            SettleResult::Stale,
            SettleResult::NotFound,
        ] {
            w.push(&mut buf, r);
        }
        w.finish(&mut buf);
        assert_eq!(buf, [0, 0, 0, 6, 0x16, 0, 3, 0, 1, 2]);
        let Ok(Some((Response::Settled(s), _))) = decode_response(&buf, 1 << 20) else {
            panic!();
        };
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [
                Some(SettleResult::Ok),
                Some(SettleResult::Stale),
                Some(SettleResult::NotFound)
            ]
        );

        let mut buf = Vec::new();
        encode_moved(&mut buf, 5);
        encode_stored_id(&mut buf, 11);
        encode_truncated_id(&mut buf, 10, 4, 12);
        let limits = Limits {
            features: FEATURE_LEASES | FEATURE_PUT_OPTIONS,
            default_lease_ms: DEFAULT_LEASE_MS,
            max_lease_ms: MAX_LEASE_MS,
            max_delay_ms: MAX_DELAY_MS,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
        };
        encode_hello_v2(&mut buf, 2, 1024, "beuss", &limits);
        let mut rest = &buf[..];
        let mut replies = Vec::new();
        while let Ok(Some((r, n))) = decode_response(rest, 1 << 20) {
            replies.push(format!("{r:?}"));
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
        assert_eq!(
            replies,
            [
                format!("{:?}", Response::Moved { count: 5 }),
                format!("{:?}", Response::StoredId { id: 11 }),
                format!(
                    "{:?}",
                    Response::TruncatedId {
                        original_len: 10,
                        stored_len: 4,
                        id: 12
                    }
                ),
                format!(
                    "{:?}",
                    Response::Hello {
                        version: 2,
                        max_message_size: 1024,
                        server: "beuss",
                        limits: Some(limits)
                    }
                ),
            ]
        );
    }
}
