//! Unique messages (protocol.md section 18): a `PUT` with a key is stored, refused
//! as a duplicate, or replaces the waiting message that holds the key.

use std::time::Instant;

use crate::protocol::{self, ErrorCode, PutOptions, Unique};
use crate::store::KeyedPut;

use super::{ConnRef, Server};

impl Server {
    /// `PUT` with `PUT_UNIQUE`: answers `STORED`/`TRUNCATED` with the new id,
    /// `DUPLICATE`, `REPLACED`, or `FULL`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_unique(
        &mut self,
        r: ConnRef,
        queue: &str,
        payload: &[u8],
        original_len: usize,
        options: PutOptions,
        unique: Unique<'_>,
        now: Instant,
    ) {
        let done = self
            .store
            .put_keyed(queue, payload, original_len, options, unique, now);
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        let out = &mut conn.output;
        match done {
            Ok((id, KeyedPut::New(_))) if original_len > payload.len() => {
                protocol::encode_truncated_id(out, original_len as u32, payload.len() as u32, id);
            }
            Ok((id, KeyedPut::New(_))) => protocol::encode_stored_id(out, id),
            Ok((id, KeyedPut::Duplicate(holder))) => {
                protocol::encode_duplicate(out, id, holder);
            }
            Ok((id, KeyedPut::Replaced)) => {
                protocol::encode_replaced(out, id, original_len as u32, payload.len() as u32);
            }
            Err(full) => {
                log::debug!("{}: PUT {queue}: {full}", conn.peer);
                protocol::encode_error(out, ErrorCode::Full, false, &full.to_string());
            }
        }
    }
}
