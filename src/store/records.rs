//! A FIFO of byte records held contiguously: each record is a big-endian `u32` length
//! and its bytes, appended to chunks of up to [`CHUNK_SIZE`] bytes.
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
/// Bytes of the length header in front of each record.
pub const RECORD_HEADER: usize = 4;

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

    /// How many bytes of memory pushing a payload of `payload_len` bytes would add.
    pub fn growth_for(&self, payload_len: usize) -> usize {
        match self.plan(RECORD_HEADER + payload_len) {
            Plan::Append | Plan::Compact => 0,
            Plan::Grow(cap) => cap - self.chunks.back().map_or(0, |c| c.buf.capacity()),
            Plan::NewChunk(cap) => cap,
        }
    }

    /// Appends a record and returns the memory it added (what
    /// [`Records::growth_for`] predicted). Callers keep payloads far below `u32::MAX`.
    pub fn push(&mut self, payload: &[u8]) -> usize {
        let record = RECORD_HEADER + payload.len();
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
        back.buf
            .extend_from_slice(&(payload.len() as u32).to_be_bytes());
        back.buf.extend_from_slice(payload);
        let growth = back.buf.capacity() - before;
        self.capacity += growth;
        self.len += 1;
        self.bytes += payload.len();
        growth
    }

    /// Length of the oldest record's payload, if any.
    pub fn front_len(&self) -> Option<usize> {
        let front = self.chunks.front()?;
        let header = front.buf.get(front.head..front.head + RECORD_HEADER)?;
        Some(u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize)
    }

    /// Removes the oldest record, handing its payload to `f`; returns the memory freed
    /// (a chunk is released as soon as it has been read through), or `None` when empty.
    pub fn pop_with(&mut self, f: impl FnOnce(&[u8])) -> Option<usize> {
        let front = self.chunks.front_mut()?;
        let header = front.buf.get(front.head..front.head + RECORD_HEADER)?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let start = front.head + RECORD_HEADER;
        f(front.buf.get(start..start + len)?);
        front.head = start + len;
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

    fn pop(records: &mut Records) -> Option<Vec<u8>> {
        let mut out = None;
        records.pop_with(|p| out = Some(p.to_vec()))?;
        out
    }

    /// Records come out in the order they went in, with the right bytes.
    #[test]
    fn fifo_order_and_contents() {
        let mut r = Records::default();
        for i in 0..10_000u32 {
            r.push(&i.to_be_bytes()[..(i % 5) as usize]);
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
            let predicted = r.growth_for(payload.len());
            let growth = r.push(&payload);
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

    /// Small queues start with a small chunk; a million 32-byte records stay close to
    /// 36 bytes each.
    #[test]
    fn memory_stays_compact() {
        let mut r = Records::default();
        r.push(b"hello");
        assert_eq!(r.capacity(), FIRST_CHUNK);
        let mut r = Records::default();
        for _ in 0..1_000_000 {
            r.push(&[1u8; 32]);
        }
        let per_record = r.capacity() as f64 / 1_000_000.0;
        assert!(per_record < 36.1, "{per_record} bytes per record");
    }

    /// Chunks are released as they are read through, and a drained big queue frees all.
    #[test]
    fn chunks_are_released_while_draining() {
        let mut r = Records::default();
        for _ in 0..100_000 {
            r.push(&[0u8; 60]);
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
        r.push(b"x");
        pop(&mut r);
        let cap = r.capacity();
        assert!(cap > 0 && cap <= KEEP_WHEN_EMPTY);
        for _ in 0..1000 {
            assert_eq!(r.push(b"abc"), 0);
            assert_eq!(pop(&mut r).unwrap(), b"abc");
        }
        assert_eq!(r.capacity(), cap);
    }

    /// A record bigger than a chunk gets its own and is freed when read.
    #[test]
    fn oversized_record_gets_its_own_chunk() {
        let mut r = Records::default();
        r.push(b"small");
        let big = vec![9u8; CHUNK_SIZE * 2];
        assert_eq!(r.push(&big), RECORD_HEADER + big.len());
        r.push(b"after");
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
        r.push(b"abcd");
        r.push(b"ef");
        assert_eq!(r.front_len(), Some(4));
        assert_eq!(r.clear(), (2, FIRST_CHUNK));
        assert!(r.is_empty());
        assert_eq!(r.capacity(), 0);
    }
}
