//! Payloads shared by several messages: a publish stores one payload for the copies
//! it makes in every bound queue, each copy holding only its key. A shared body also
//! carries what the copies have in common: the subject they were published to, the
//! reply address of a request, the confirmation that counts their acks.
//!
//! The body is charged against the memory cap once, when it is made, and released
//! when its last copy leaves the server.

use slab::Slab;

/// Memory charged for a shared body on top of its payload and subject: the slab
/// entry (a 64-byte `Shared`) and the two allocations' own overhead.
pub const BODY_OVERHEAD: usize = 96;

/// One shared payload and what its copies have in common.
#[derive(Debug)]
pub struct Shared {
    /// The message bytes.
    pub payload: Box<[u8]>,
    /// The subject it was published to.
    pub subject: Box<str>,
    /// The reply address of a request; 0 for none.
    pub reply_to: u64,
    /// The confirmation its acks count toward; 0 for none.
    pub confirm: u64,
    /// Copies that hold its key.
    refs: u32,
}

/// What a copy's payload is when it lives outside the chunks: its own bytes, or a
/// shared body's key.
#[derive(Debug)]
pub(super) enum Payload {
    /// Bytes of its own.
    Own(Box<[u8]>),
    /// A key in [`Bodies`].
    Shared(u32),
}

/// The shared bodies, by key.
#[derive(Debug, Default)]
pub(super) struct Bodies {
    slab: Slab<Shared>,
}

impl Bodies {
    /// Memory a body of this payload and subject length costs.
    pub(super) fn cost(payload_len: usize, subject_len: usize) -> usize {
        BODY_OVERHEAD + payload_len + subject_len
    }

    /// Whether another body can be keyed (keys are `u32`).
    pub(super) fn has_room(&self) -> bool {
        u32::try_from(self.slab.vacant_key()).is_ok()
    }

    /// Stores a body held by `refs` copies; returns its key and the memory it costs.
    /// The caller checked [`Bodies::has_room`].
    pub(super) fn insert(
        &mut self,
        payload: &[u8],
        subject: &str,
        reply_to: u64,
        confirm: u64,
        refs: u32,
    ) -> (u32, usize) {
        let key = self.slab.insert(Shared {
            payload: payload.into(),
            subject: subject.into(),
            reply_to,
            confirm,
            refs,
        });
        (key as u32, Self::cost(payload.len(), subject.len()))
    }

    /// The body of `key`.
    pub(super) fn get(&self, key: u32) -> Option<&Shared> {
        self.slab.get(key as usize)
    }

    /// The payload of `key` (empty if there is no such body, which the store's
    /// bookkeeping never lets happen).
    pub(super) fn payload(&self, key: u32) -> &[u8] {
        self.get(key).map_or(&[], |b| &b.payload)
    }

    /// The payload a copy holds.
    pub(super) fn bytes<'a>(&'a self, payload: &'a Payload) -> &'a [u8] {
        match payload {
            Payload::Own(bytes) => bytes,
            Payload::Shared(key) => self.payload(*key),
        }
    }

    /// One more copy holds `key`.
    pub(super) fn retain(&mut self, key: u32) {
        if let Some(body) = self.slab.get_mut(key as usize) {
            body.refs = body.refs.saturating_add(1);
        }
    }

    /// A copy of `key` has left the server: drops the body with its last copy and
    /// returns the memory freed then (0 otherwise).
    pub(super) fn release(&mut self, key: u32) -> usize {
        let Some(body) = self.slab.get_mut(key as usize) else {
            return 0;
        };
        body.refs = body.refs.saturating_sub(1);
        if body.refs > 0 {
            return 0;
        }
        let body = self.slab.remove(key as usize);
        Self::cost(body.payload.len(), body.subject.len())
    }

    /// Bodies held now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body lives until its last copy is released, and frees what it cost.
    #[test]
    fn released_with_the_last_copy() {
        let mut b = Bodies::default();
        let (key, cost) = b.insert(b"hello", "a.b", 0, 0, 3);
        assert_eq!(cost, BODY_OVERHEAD + 5 + 3);
        assert_eq!(b.payload(key), b"hello");
        assert_eq!(b.release(key), 0);
        assert_eq!(b.release(key), 0);
        assert_eq!(b.len(), 1);
        assert_eq!(b.release(key), cost);
        assert_eq!(b.len(), 0);
        assert_eq!(b.release(key), 0, "a stale key frees nothing");
        assert_eq!(b.payload(key), b"");
    }

    /// A copy's payload reads the same whether it is its own or shared.
    #[test]
    fn payload_of_either_kind() {
        let mut b = Bodies::default();
        let (key, _) = b.insert(b"shared", "s", 9, 4, 1);
        assert_eq!(b.bytes(&Payload::Shared(key)), b"shared");
        assert_eq!(b.bytes(&Payload::Own(b"own".as_slice().into())), b"own");
        let body = b.get(key).map(|s| (s.reply_to, s.confirm, &*s.subject));
        assert_eq!(body, Some((9, 4, "s")));
    }
}
