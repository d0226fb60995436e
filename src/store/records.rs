//! A FIFO of byte records held contiguously: each record is a big-endian `u32` length,
//! the message id as a varint of its difference from the previous record's id, the
//! attempt number as a varint, and the payload, appended to chunks of up to
//! [`CHUNK_SIZE`] bytes. Ids of consecutive records usually differ by one and
//! attempts are usually 0, so the id and attempt cost two bytes.
//!
//! One heap allocation per message would cost ~32 bytes of allocator overhead on top
//! of a small payload and scatter messages over the heap; here a million 32-byte
//! messages take about 36 MB in 550 chunks, and a chunk is freed as soon as the
//! consumer has read past it. A queue's first chunk starts small and doubles, so the
//! many queues that hold a handful of messages do not each pin 64 KiB.

use std::collections::VecDeque;

/// Largest chunk built by appending; a record longer than this gets a chunk of its own.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Capacity of a queue's first chunk (it doubles up to `CHUNK_SIZE` as needed).
const FIRST_CHUNK: usize = 256;
/// A drained queue keeps its one chunk for reuse only if it is at most this big, so
/// that a producer and consumer in lockstep allocate nothing, while a queue that was
/// once busy gives its memory back when it empties.
const KEEP_WHEN_EMPTY: usize = 4 * 1024;
/// Bytes of the length header in front of each record (the id and attempt varints
/// follow it).
pub const RECORD_HEADER: usize = 4;
/// Longest varint of a `u64`.
const MAX_VARINT: usize = 10;

#[derive(Debug, Default)]
struct Chunk {
    /// Records, back to back.
    buf: Vec<u8>,
    /// Offset of the first unread record; only the front chunk is ever read.
    head: usize,
}

/// How a push of a record would fit, worked out before anything is allocated so that
/// the store can check its memory cap first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Room at the end of the last chunk.
    Append,
    /// Room once the read bytes at the front of the only chunk are moved out.
    Compact,
    /// The only chunk is compacted and grown to this capacity.
    Grow(usize),
    /// A new chunk of this capacity.
    NewChunk(usize),
}

/// A FIFO of byte records in chunked buffers.
#[derive(Debug, Default)]
pub struct Records {
    chunks: VecDeque<Chunk>,
    /// Records held.
    len: usize,
    /// Payload bytes held (headers not counted).
    bytes: usize,
    /// Sum of chunk capacities: the memory this FIFO holds.
    capacity: usize,
    /// Id of the last record pushed: the next record's id is stored relative to it.
    tail_id: u64,
    /// Id of the last record popped: the front record's id is stored relative to it.
    head_id: u64,
    /// Records that hold a shared body's key (their bodies must be released when
    /// the FIFO is cleared).
    shared: usize,
}

/// One record as read from the FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Message id.
    pub id: u64,
    /// Attempt number (0 if never leased).
    pub attempt: u32,
    /// Its payload, or where the payload it shares is.
    pub body: Body<'a>,
}

/// What a record holds: its own payload, or the key of a payload that several
/// messages share (the copies of one published message, see `store::bodies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// The payload, in the chunk.
    Inline(&'a [u8]),
    /// A shared payload: its key and length.
    Shared {
        /// Key in the store's shared bodies.
        key: u32,
        /// Payload length.
        len: u32,
    },
}

impl Body<'_> {
    /// Payload length.
    pub fn len(&self) -> usize {
        match self {
            Body::Inline(p) => p.len(),
            Body::Shared { len, .. } => *len as usize,
        }
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Top bit of a record's length word: the record holds a shared body's key, not its
/// payload (payloads are far shorter than 2^31 bytes).
const SHARED: u32 = 1 << 31;
/// Bytes a shared record keeps where an inline one keeps its payload: the key.
const SHARED_LEN: usize = 4;

/// Iterator over [`Records`], oldest first.
#[derive(Debug)]
pub struct RecordsIter<'a> {
    chunks: std::collections::vec_deque::Iter<'a, Chunk>,
    current: Option<&'a Chunk>,
    at: usize,
    /// Id of the record before the next one.
    base: u64,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        loop {
            if let Some(chunk) = self.current
                && let Some((record, next)) = read_record(&chunk.buf, self.at, self.base)
            {
                self.at = next;
                self.base = record.id;
                return Some(record);
            }
            let chunk = self.chunks.next()?;
            self.current = Some(chunk);
            self.at = chunk.head;
        }
    }
}

/// Zigzag-maps a signed difference so that small ones of either sign stay small.
fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a varint at the front of `bytes`: (value, bytes used).
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().take(MAX_VARINT).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Decodes the record starting at `at` in `buf` whose id is relative to `base`:
/// (record, offset just past it).
fn read_record(buf: &[u8], at: usize, base: u64) -> Option<(Record<'_>, usize)> {
    let header = buf.get(at..at + RECORD_HEADER)?;
    let word = u32::from_be_bytes(header.try_into().ok()?);
    let mut pos = at + RECORD_HEADER;
    let (delta, n) = read_varint(buf.get(pos..)?)?;
    pos += n;
    let (attempt, n) = read_varint(buf.get(pos..)?)?;
    pos += n;
    let (body, size) = if word & SHARED == 0 {
        let len = word as usize;
        (Body::Inline(buf.get(pos..pos + len)?), len)
    } else {
        let key = u32::from_be_bytes(buf.get(pos..pos + SHARED_LEN)?.try_into().ok()?);
        let len = word & !SHARED;
        (Body::Shared { key, len }, SHARED_LEN)
    };
    let id = base.wrapping_add(unzigzag(delta) as u64);
    Some((
        Record {
            id,
            attempt: attempt as u32,
            body,
        },
        pos + size,
    ))
}

impl Records {
    /// Records held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of chunk memory held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records that hold a shared body.
    pub fn shared(&self) -> usize {
        self.shared
    }

    fn plan(&self, record: usize) -> Plan {
        if let Some(back) = self.chunks.back() {
            let cap = back.buf.capacity();
            // Only the front chunk has read bytes, and a chunk below full size is
            // always the first one made, so both cases below touch the only chunk.
            let live = back.buf.len() - back.head;
            if back.buf.len() + record <= cap {
                return Plan::Append;
            }
            if live + record <= cap {
                return Plan::Compact;
            }
            if cap < CHUNK_SIZE && live + record <= CHUNK_SIZE {
                let grown = (cap * 2)
                    .max((live + record).next_power_of_two())
                    .min(CHUNK_SIZE);
                return Plan::Grow(grown);
            }
        }
        let cap = if record > CHUNK_SIZE {
            record
        } else if self.chunks.is_empty() {
            FIRST_CHUNK.max(record.next_power_of_two())
        } else {
            CHUNK_SIZE
        };
        Plan::NewChunk(cap)
    }

    fn record_len(&self, id: u64, attempt: u32, payload_len: usize) -> usize {
        let delta = zigzag(id.wrapping_sub(self.tail_id) as i64);
        RECORD_HEADER + varint_len(delta) + varint_len(u64::from(attempt)) + payload_len
    }

    /// How many bytes of memory pushing message `id` with `attempt` and a payload of
    /// `payload_len` bytes would add.
    pub fn growth_for(&self, id: u64, attempt: u32, payload_len: usize) -> usize {
        match self.plan(self.record_len(id, attempt, payload_len)) {
            Plan::Append | Plan::Compact => 0,
            Plan::Grow(cap) => cap - self.chunks.back().map_or(0, |c| c.buf.capacity()),
            Plan::NewChunk(cap) => cap,
        }
    }

    /// How many bytes of memory pushing a shared record would add.
    pub fn growth_for_shared(&self, id: u64, attempt: u32) -> usize {
        self.growth_for(id, attempt, SHARED_LEN)
    }

    /// Appends a record and returns the memory it added (what
    /// [`Records::growth_for`] predicted). Callers keep payloads far below `u32::MAX`.
    pub fn push(&mut self, id: u64, attempt: u32, payload: &[u8]) -> usize {
        self.push_body(id, attempt, Body::Inline(payload))
    }

    /// Appends a record of either kind; returns the memory it added.
    pub fn push_body(&mut self, id: u64, attempt: u32, body: Body<'_>) -> usize {
        let stored = match body {
            Body::Inline(p) => p.len(),
            Body::Shared { .. } => SHARED_LEN,
        };
        let record = self.record_len(id, attempt, stored);
        let plan = self.plan(record);
        if let Plan::NewChunk(cap) = plan {
            self.chunks.push_back(Chunk {
                buf: Vec::with_capacity(cap),
                head: 0,
            });
        }
        let Some(back) = self.chunks.back_mut() else {
            return 0; // plan() always leaves a chunk to append to
        };
        let before = if let Plan::NewChunk(_) = plan {
            0
        } else {
            back.buf.capacity()
        };
        if let Plan::Compact | Plan::Grow(_) = plan {
            back.buf.drain(..back.head);
            back.head = 0;
        }
        if let Plan::Grow(cap) = plan {
            back.buf.reserve_exact(cap - back.buf.len());
        }
        let word = match body {
            Body::Inline(p) => p.len() as u32,
            Body::Shared { len, .. } => SHARED | len,
        };
        back.buf.extend_from_slice(&word.to_be_bytes());
        put_varint(&mut back.buf, zigzag(id.wrapping_sub(self.tail_id) as i64));
        put_varint(&mut back.buf, u64::from(attempt));
        match body {
            Body::Inline(p) => back.buf.extend_from_slice(p),
            Body::Shared { key, .. } => back.buf.extend_from_slice(&key.to_be_bytes()),
        }
        self.tail_id = id;
        let growth = back.buf.capacity() - before;
        self.capacity += growth;
        self.len += 1;
        self.bytes += body.len();
        if let Body::Shared { .. } = body {
            self.shared += 1;
        }
        growth
    }

    /// Length of the oldest record's payload, if any.
    pub fn front_len(&self) -> Option<usize> {
        let front = self.chunks.front()?;
        let header = front.buf.get(front.head..front.head + RECORD_HEADER)?;
        Some((u32::from_be_bytes(header.try_into().ok()?) & !SHARED) as usize)
    }

    /// Id of the oldest record, if any.
    pub fn front_id(&self) -> Option<u64> {
        let front = self.chunks.front()?;
        read_record(&front.buf, front.head, self.head_id).map(|(r, _)| r.id)
    }

    /// The records from oldest to newest, without removing them.
    pub fn iter(&self) -> RecordsIter<'_> {
        RecordsIter {
            chunks: self.chunks.iter(),
            current: None,
            at: 0,
            base: self.head_id,
        }
    }

    /// Removes the oldest record, handing it to `f`; returns the memory freed (a chunk
    /// is released as soon as it has been read through), or `None` when empty.
    pub fn pop_with(&mut self, f: impl FnOnce(Record<'_>)) -> Option<usize> {
        let front = self.chunks.front_mut()?;
        let (record, end) = read_record(&front.buf, front.head, self.head_id)?;
        let len = record.body.len();
        if let Body::Shared { .. } = record.body {
            self.shared -= 1;
        }
        self.head_id = record.id;
        f(record);
        front.head = end;
        self.len -= 1;
        self.bytes -= len;
        if front.head < front.buf.len() {
            return Some(0);
        }
        let cap = front.buf.capacity();
        let only = self.chunks.len() == 1;
        let Some(front) = self.chunks.front_mut() else {
            return Some(0);
        };
        if only && cap <= KEEP_WHEN_EMPTY {
            front.buf.clear();
            front.head = 0;
            return Some(0);
        }
        self.chunks.pop_front();
        self.capacity -= cap;
        Some(cap)
    }

    /// Drops every record; returns (records dropped, memory freed).
    pub fn clear(&mut self) -> (usize, usize) {
        let dropped = (self.len, self.capacity);
        *self = Records::default();
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(r: Record<'_>) -> &[u8] {
        match r.body {
            Body::Inline(p) => p,
            Body::Shared { .. } => panic!("a shared record"),
        }
    }

    fn pop(records: &mut Records) -> Option<Vec<u8>> {
        let mut out = None;
        records.pop_with(|r| out = Some(inline(r).to_vec()))?;
        out
    }

    /// Records come out in the order they went in, with the right bytes.
    #[test]
    fn fifo_order_and_contents() {
        let mut r = Records::default();
        for i in 0..10_000u32 {
            r.push(u64::from(i) + 1, 0, &i.to_be_bytes()[..(i % 5) as usize]);
        }
        assert_eq!(r.len(), 10_000);
        for i in 0..10_000u32 {
            assert_eq!(pop(&mut r).unwrap(), &i.to_be_bytes()[..(i % 5) as usize]);
        }
        assert!(r.is_empty());
        assert_eq!(pop(&mut r), None);
        assert_eq!(r.bytes(), 0);
    }

    /// growth_for predicts exactly what push adds, and capacity is always what was
    /// added minus what pops freed.
    #[test]
    fn growth_prediction_is_exact() {
        let mut r = Records::default();
        let (mut added, mut freed) = (0, 0);
        for i in 0..5_000usize {
            let payload = vec![7u8; (i * 37) % 300];
            let predicted = r.growth_for(i as u64 + 1, 0, payload.len());
            let growth = r.push(i as u64 + 1, 0, &payload);
            assert_eq!(predicted, growth, "push {i}");
            added += growth;
            if i % 3 == 0 {
                freed += r.pop_with(|_| {}).unwrap();
            }
            assert_eq!(r.capacity(), added - freed);
        }
        while let Some(f) = r.pop_with(|_| {}) {
            freed += f;
        }
        assert_eq!(r.capacity(), added - freed);
    }

    /// Small queues start with a small chunk; a million 32-byte records with
    /// consecutive ids stay close to 38 bytes each.
    #[test]
    fn memory_stays_compact() {
        let mut r = Records::default();
        r.push(3, 0, b"hello");
        assert_eq!(r.capacity(), FIRST_CHUNK);
        let mut r = Records::default();
        for id in 1..=1_000_000 {
            r.push(id, 0, &[1u8; 32]);
        }
        let per_record = r.capacity() as f64 / 1_000_000.0;
        assert!(per_record < 38.1, "{per_record} bytes per record");
    }

    /// Chunks are released as they are read through, and a drained big queue frees all.
    #[test]
    fn chunks_are_released_while_draining() {
        let mut r = Records::default();
        for _ in 0..100_000 {
            r.push(5, 0, &[0u8; 60]);
        }
        let full = r.capacity();
        for _ in 0..50_000 {
            pop(&mut r);
        }
        assert!(r.capacity() < full * 6 / 10, "{} of {full}", r.capacity());
        while pop(&mut r).is_some() {}
        assert_eq!(r.capacity(), 0);
    }

    /// A producer and consumer in lockstep reuse one small chunk.
    #[test]
    fn lockstep_reuses_the_chunk() {
        let mut r = Records::default();
        r.push(6, 0, b"x");
        pop(&mut r);
        let cap = r.capacity();
        assert!(cap > 0 && cap <= KEEP_WHEN_EMPTY);
        for _ in 0..1000 {
            assert_eq!(r.push(7, 0, b"abc"), 0);
            assert_eq!(pop(&mut r).unwrap(), b"abc");
        }
        assert_eq!(r.capacity(), cap);
    }

    /// A record bigger than a chunk gets its own and is freed when read.
    #[test]
    fn oversized_record_gets_its_own_chunk() {
        let mut r = Records::default();
        r.push(8, 0, b"small");
        let big = vec![9u8; CHUNK_SIZE * 2];
        assert_eq!(r.push(9, 0, &big), RECORD_HEADER + 2 + big.len());
        r.push(10, 0, b"after");
        assert_eq!(pop(&mut r).unwrap(), b"small");
        assert_eq!(pop(&mut r).unwrap(), big);
        assert_eq!(pop(&mut r).unwrap(), b"after");
        assert!(r.capacity() <= KEEP_WHEN_EMPTY);
    }

    /// front_len peeks without removing; clear drops everything.
    #[test]
    fn front_len_and_clear() {
        let mut r = Records::default();
        assert_eq!(r.front_len(), None);
        r.push(11, 0, b"abcd");
        r.push(12, 0, b"ef");
        assert_eq!(r.front_len(), Some(4));
        assert_eq!(r.clear(), (2, FIRST_CHUNK));
        assert!(r.is_empty());
        assert_eq!(r.capacity(), 0);
    }

    /// Ids and attempts come back as pushed, whatever their order and size, both
    /// through iter() and pop_with().
    #[test]
    fn ids_and_attempts_round_trip() {
        let ids = [5u64, 6, 7, 3, u64::MAX, 1, 1 << 40, 2, 9];
        let attempts = [0u32, 1, 0, 300, u32::MAX, 0, 7, 0, 2];
        let mut r = Records::default();
        for (i, (&id, &attempt)) in ids.iter().zip(&attempts).enumerate() {
            let predicted = r.growth_for(id, attempt, i);
            assert_eq!(r.push(id, attempt, &vec![i as u8; i]), predicted);
        }
        let seen: Vec<(u64, u32, usize)> = r
            .iter()
            .map(|rec| (rec.id, rec.attempt, rec.body.len()))
            .collect();
        let want: Vec<(u64, u32, usize)> = ids
            .iter()
            .zip(&attempts)
            .enumerate()
            .map(|(i, (&id, &a))| (id, a, i))
            .collect();
        assert_eq!(seen, want);
        for (i, (&id, &attempt)) in ids.iter().zip(&attempts).enumerate() {
            assert_eq!(r.front_id(), Some(id));
            let mut got = None;
            r.pop_with(|rec| got = Some((rec.id, rec.attempt, inline(rec).to_vec())));
            assert_eq!(got, Some((id, attempt, vec![i as u8; i])));
            // The rest still reads right after each pop.
            assert_eq!(r.iter().count(), ids.len() - i - 1);
        }
        assert_eq!(r.front_id(), None);
    }

    /// iter() crosses chunk boundaries.
    #[test]
    fn iter_spans_chunks() {
        let mut r = Records::default();
        for id in 1..=10_000u64 {
            r.push(id, 0, &[0u8; 50]);
        }
        for _ in 0..3 {
            r.pop_with(|_| {});
        }
        let ids: Vec<u64> = r.iter().map(|rec| rec.id).collect();
        assert_eq!(ids, (4..=10_000).collect::<Vec<_>>());
    }

    /// Shared records interleave with inline ones: each comes back as pushed, counts
    /// its logical length in `bytes` and `front_len`, and `shared` follows them.
    #[test]
    fn shared_records_round_trip() {
        let mut r = Records::default();
        r.push(1, 0, b"own");
        let predicted = r.growth_for_shared(2, 0);
        assert_eq!(
            r.push_body(2, 0, Body::Shared { key: 7, len: 1000 }),
            predicted
        );
        r.push_body(
            3,
            4,
            Body::Shared {
                key: u32::MAX,
                len: (1 << 30),
            },
        );
        assert_eq!(r.shared(), 2);
        assert_eq!(r.bytes(), 3 + 1000 + (1 << 30));
        assert_eq!(r.front_len(), Some(3));
        r.pop_with(|_| {});
        assert_eq!(r.front_len(), Some(1000));
        let mut got = None;
        r.pop_with(|rec| got = Some((rec.id, rec.attempt, format!("{:?}", rec.body))));
        let want = format!("{:?}", Body::Shared { key: 7, len: 1000 });
        assert_eq!(got, Some((2, 0, want)));
        let rest: Vec<_> = r
            .iter()
            .map(|rec| (rec.id, rec.attempt, rec.body))
            .collect();
        assert_eq!(
            rest,
            vec![(
                3,
                4,
                Body::Shared {
                    key: u32::MAX,
                    len: 1 << 30
                }
            )]
        );
        assert_eq!(r.shared(), 1);
        r.pop_with(|_| {});
        assert_eq!((r.shared(), r.bytes(), r.len()), (0, 0, 0));
    }
}
