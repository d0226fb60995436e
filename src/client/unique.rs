//! Unique messages on the client (protocol.md section 18): a `PUT` with a key that the
//! server stores once, refuses as a duplicate, or uses to replace the waiting message.

use std::time::Duration;

use super::lease::duration_ms;
use super::{Client, PutOptions, PutStatus, Result, unexpected};
use crate::protocol::{self, FEATURE_UNIQUE, Holder, Request, Response};

/// The key of a [`Client::put_unique`], and what to do when a message of the queue
/// already holds it.
///
/// ```
/// use std::time::Duration;
/// use beuss::client::Unique;
///
/// // At most one "send invoice 42" job waiting, and none again for 10 minutes.
/// let once = Unique::key(b"invoice-42").remember_for(Duration::from_secs(600));
/// // The latest price wins: a waiting update is replaced in place.
/// let latest = Unique::key(b"price-EURUSD").replace();
/// # let _ = (once, latest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unique<'a> {
    key: &'a [u8],
    replace: bool,
    window: Duration,
}

impl<'a> Unique<'a> {
    /// Refuse a second message with `key` (1 to 255 bytes) while one holds it.
    pub fn key(key: &'a [u8]) -> Self {
        Unique {
            key,
            replace: false,
            window: Duration::ZERO,
        }
    }

    /// Replace the waiting (ready or delayed) message that holds the key instead:
    /// its payload, priority and delay become this `PUT`'s. One in flight is never
    /// replaced.
    pub fn replace(mut self) -> Self {
        self.replace = true;
        self
    }

    /// Keep refusing the key for `window` after its message left the queue
    /// (acknowledged, taken, purged, moved or dead-lettered); at most 30 days.
    pub fn remember_for(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
}

/// What a [`Client::put_unique`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniquePut {
    /// No message held the key: stored as message `id`.
    Stored {
        /// The new message's id.
        id: u64,
        /// Whether the payload was cut to the server's message size limit.
        status: PutStatus,
    },
    /// Not stored: message `id` holds the key (or held it, for [`Holder::Gone`]).
    Duplicate {
        /// That message's id.
        id: u64,
        /// Where it stands.
        holder: Holder,
    },
    /// The waiting message `id` that held the key now has this payload.
    Replaced {
        /// That message's id.
        id: u64,
        /// Whether the payload was cut to the server's message size limit.
        status: PutStatus,
    },
}

impl UniquePut {
    /// The id of the message stored, replaced, or holding the key.
    pub fn id(&self) -> u64 {
        match *self {
            UniquePut::Stored { id, .. }
            | UniquePut::Duplicate { id, .. }
            | UniquePut::Replaced { id, .. } => id,
        }
    }
}

impl Client {
    /// Appends a message with a unique key to `queue`, with a delay and a priority
    /// (`options`), unless a message of the queue holds the key (protocol.md 18.3).
    ///
    /// ```no_run
    /// use beuss::Client;
    /// use beuss::client::{PutOptions, Unique, UniquePut};
    ///
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = Client::connect("localhost:6552")?;
    /// match client.put_unique("mail", b"welcome", Unique::key(b"user-7"), PutOptions::default())? {
    ///     UniquePut::Stored { id, .. } => println!("queued as {id}"),
    ///     UniquePut::Duplicate { id, holder } => println!("{id} is {}", holder.describe()),
    ///     UniquePut::Replaced { id, .. } => println!("updated {id}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Any [`Error`](super::Error); [`Error::Unsupported`](super::Error::Unsupported) from a server older than version 6; an
    /// empty key, one over 255 bytes or a window over 30 days is
    /// [`Error::Protocol`](super::Error::Protocol) before anything is sent; a full server gives an error for
    /// which [`Error::is_full`](super::Error::is_full) holds.
    pub fn put_unique(
        &mut self,
        queue: &str,
        payload: &[u8],
        unique: Unique<'_>,
        options: PutOptions,
    ) -> Result<UniquePut> {
        self.require_unique()?;
        let default = options == PutOptions::default();
        let request = Request::PutUnique {
            queue,
            options: (!default).then(|| protocol::PutOptions {
                delay_ms: duration_ms(options.delay),
                priority: options.priority,
            }),
            unique: protocol::Unique {
                key: unique.key,
                replace: unique.replace,
                window_ms: duration_ms(unique.window),
            },
            payload,
        };
        match self.call(&request)? {
            Response::StoredId { id } => Ok(UniquePut::Stored {
                id,
                status: PutStatus::Stored,
            }),
            Response::TruncatedId {
                original_len,
                stored_len,
                id,
            } => Ok(UniquePut::Stored {
                id,
                status: PutStatus::Truncated {
                    original_len,
                    stored_len,
                },
            }),
            Response::Duplicate { id, holder } => Ok(UniquePut::Duplicate { id, holder }),
            Response::Replaced {
                id,
                original_len,
                stored_len,
            } => Ok(UniquePut::Replaced {
                id,
                status: if stored_len < original_len {
                    PutStatus::Truncated {
                        original_len,
                        stored_len,
                    }
                } else {
                    PutStatus::Stored
                },
            }),
            other => Err(unexpected("STORED, DUPLICATE or REPLACED", &other)),
        }
    }

    fn require_unique(&mut self) -> Result<()> {
        self.require_feature(6, FEATURE_UNIQUE, "unique messages")
    }
}
