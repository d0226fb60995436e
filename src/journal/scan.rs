//! Walking the records of one segment, and saying how its bytes end.

use super::record::{Damage, MAX_RECORD_LEN, RECORD_HEADER_LEN, Record, decode, record_crc};

/// How a [`Scanner`] stopped. Every offset is where the first byte that was not part
/// of a valid record starts, i.e. where the file can be cut to keep exactly the
/// records that were yielded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// The last record ended exactly at the end of the buffer.
    Clean,
    /// From `offset` on every byte is zero: preallocated or never-written space, the
    /// normal end of a segment.
    ZeroTail {
        /// Where the zeros start.
        offset: usize,
    },
    /// The record at `offset` runs past the end of the buffer (its header or its
    /// body): a write cut short.
    Torn {
        /// Where the cut-short record starts.
        offset: usize,
    },
    /// The bytes at `offset` are not a valid record, and not zeros.
    Damaged {
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong with it.
        reason: Damage,
    },
}

/// Yields `(offset, record)` for each valid record of a segment, in order, stopping
/// at the first thing that is not one; [`Scanner::end`] then says what that was.
/// Records borrow from the buffer (names and payloads are not copied).
///
/// Nothing after a bad record is read: one flipped bit in a length would otherwise
/// turn the rest of the file into records that were never written.
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    end: Option<ScanEnd>,
}

impl<'a> Scanner<'a> {
    /// Scans `buf` from offset `start` (normally just after the segment header, so
    /// that offsets are file offsets). A `start` past the end reads as a clean end.
    pub fn new(buf: &'a [u8], start: usize) -> Self {
        Scanner {
            buf,
            pos: start.min(buf.len()),
            end: None,
        }
    }

    /// How the scan ended. Meant for after the iteration has stopped; called earlier,
    /// it scans the rest of the buffer (without yielding it) to find out.
    pub fn end(&self) -> ScanEnd {
        match self.end {
            Some(end) => end,
            None => {
                let mut rest = self.clone();
                for _ in &mut rest {}
                rest.end.unwrap_or(ScanEnd::Clean)
            }
        }
    }

    /// Where the next record starts: after iteration, the end of the last valid
    /// record (the same as the offset in [`ScanEnd`], or the buffer's length when
    /// clean).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Reads the record at `self.pos`, or says why there is none.
    fn read(&self) -> Result<(Record<'a>, usize), ScanEnd> {
        let offset = self.pos;
        let rest = self.buf.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            return Err(ScanEnd::Clean);
        }
        let zeros = || rest.iter().all(|&b| b == 0);
        let Some((&head, after)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
            return Err(if zeros() {
                ScanEnd::ZeroTail { offset }
            } else {
                ScanEnd::Torn { offset }
            });
        };
        let len_bytes = [head[0], head[1], head[2], head[3]];
        let len = u32::from_le_bytes(len_bytes);
        let stored = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_RECORD_LEN {
            // A zero length is where the written part of a zero-filled segment ends;
            // checking the rest for zeros only here keeps the scan linear.
            if len == 0 && zeros() {
                return Err(ScanEnd::ZeroTail { offset });
            }
            return Err(ScanEnd::Damaged {
                offset,
                reason: Damage::BadLen(len),
            });
        }
        let Some(typed) = after.get(..len as usize) else {
            return Err(ScanEnd::Torn { offset });
        };
        if record_crc(len_bytes, typed) != stored {
            return Err(ScanEnd::Damaged {
                offset,
                reason: Damage::BadCrc,
            });
        }
        let Some((&kind, body)) = typed.split_first() else {
            // Unreachable: len >= 1 was checked. Reported as damage all the same.
            return Err(ScanEnd::Damaged {
                offset,
                reason: Damage::BadLen(len),
            });
        };
        match decode(kind, body) {
            Ok(record) => Ok((record, RECORD_HEADER_LEN + len as usize)),
            Err(reason) => Err(ScanEnd::Damaged { offset, reason }),
        }
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = (usize, Record<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.end.is_some() {
            return None;
        }
        match self.read() {
            Ok((record, size)) => {
                let offset = self.pos;
                self.pos += size;
                Some((offset, record))
            }
            Err(end) => {
                self.end = Some(end);
                None
            }
        }
    }
}
