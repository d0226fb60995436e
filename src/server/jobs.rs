//! Job `PUT`s: with a unique key (protocol.md section 18), stored, refused as a
//! duplicate, or replacing the waiting message that holds the key; with a time to
//! live (section 19), stored to expire.

use std::time::Instant;

use crate::protocol::{self, ErrorCode, PutOptions, Ttl, Unique};
use crate::store::JobPut;

use super::{ConnRef, Server};

impl Server {
    /// `PUT` with `PUT_UNIQUE` or `PUT_TTL`: answers `STORED`/`TRUNCATED` with the
    /// new id, `DUPLICATE`, `REPLACED`, or `FULL`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_job(
        &mut self,
        r: ConnRef,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        unique: Option<Unique<'_>>,
        ttl: Option<Ttl>,
        now: Instant,
    ) {
        let done = self
            .store
            .put_job(queue, payload, original_len, options, unique, ttl, now);
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        let start = conn.queued_end();
        let duplicate = matches!(done, Ok((_, JobPut::Duplicate(_))));
        let out = &mut conn.output;
        match done {
            Ok((id, JobPut::New(_))) if original_len > payload.len() => {
                protocol::encode_truncated_id(out, original_len as u32, payload.len() as u32, id);
            }
            Ok((id, JobPut::New(_))) => protocol::encode_stored_id(out, id),
            Ok((id, JobPut::Duplicate(holder))) => {
                protocol::encode_duplicate(out, id, holder);
            }
            Ok((id, JobPut::Replaced)) => {
                protocol::encode_replaced(out, id, original_len as u32, payload.len() as u32);
            }
            Err(full) => {
                log::debug!("{}: PUT {queue}: {full}", conn.peer);
                protocol::encode_error(out, ErrorCode::Full, false, &full.to_string());
            }
        }
        if duplicate {
            self.hold_until_durable(r, start);
        }
    }
}
