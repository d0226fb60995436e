//! One reply that carries a batch of messages, in whichever of its layouts the
//! request asked for: so that each kind of receive runs one copy of the store's code
//! whether or not it asked for metadata (the binary stays small).

use bytes::BytesMut;

use crate::protocol::{EnvelopesWriter, LeaseRef, LeasedWriter, MessagesWriter, Status};
use crate::store::Meta;

/// A batch reply being written.
pub(super) enum Batch {
    /// `MESSAGES`: payloads only (a plain `GET`).
    Messages(MessagesWriter),
    /// `LEASED` or `PEEKED`: ids, attempts and payloads.
    Leased(LeasedWriter),
    /// `ENVELOPES`: ids, attempts, metadata and payloads (`WITH_META`).
    Envelopes(EnvelopesWriter),
}

impl Batch {
    /// Starts a batch in `out`: `ENVELOPES` with `meta`, else the request's own
    /// layout (`status` `Messages`, `Leased` or `Peeked`).
    #[inline]
    pub(super) fn begin(out: &mut BytesMut, status: Status, meta: bool) -> Batch {
        if meta {
            Batch::Envelopes(EnvelopesWriter::begin(out))
        } else if status == Status::Messages {
            Batch::Messages(MessagesWriter::begin(out))
        } else {
            Batch::Leased(LeasedWriter::begin(out, status))
        }
    }

    /// Adds one message.
    #[inline]
    pub(super) fn push(
        &mut self,
        out: &mut BytesMut,
        lease: LeaseRef,
        payload: &[u8],
        meta: Option<Meta<'_>>,
    ) {
        match self {
            Batch::Messages(w) => w.push(out, payload),
            Batch::Leased(w) => w.push(out, lease, payload),
            Batch::Envelopes(w) => {
                let subject = meta.map(|m| m.subject);
                let reply_to = meta.map(|m| m.reply_to).filter(|&r| r != 0);
                w.push(out, lease.id, lease.attempt, subject, reply_to, payload);
            }
        }
    }

    /// Ends the batch (at least one message was pushed).
    #[inline]
    pub(super) fn finish(self, out: &mut BytesMut) {
        match self {
            Batch::Messages(w) => w.finish(out),
            Batch::Leased(w) => w.finish(out),
            Batch::Envelopes(w) => w.finish(out),
        }
    }
}
