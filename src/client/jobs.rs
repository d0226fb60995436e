//! Job `PUT`s on the client: with a unique key (protocol.md section 18) that the
//! server stores once, refuses as a duplicate, or uses to replace the waiting message;
//! with a time to live (section 19) after which the message is never delivered.

use std::time::Duration;

use super::lease::duration_ms;
use super::{Client, PutOptions, PutStatus, Result, unexpected};
use crate::protocol::{self, FEATURE_TTL, FEATURE_UNIQUE, Holder, Request, Response};

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

/// The time to live of a [`Client::put_expiring`] or [`Client::put_job`]: a message
/// not delivered by then never is.
///
/// ```
/// use std::time::Duration;
/// use beuss::client::Expiry;
///
/// let fresh = Expiry::after(Duration::from_secs(60)); // dropped after a minute
/// let kept = Expiry::after(Duration::from_secs(3600)).dead_letter(); // to jobs.dead
/// let forever = Expiry::never(); // whatever the queue's BQUEUETTL says
/// # let _ = (fresh, kept, forever);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    ttl: Duration,
    dead_letter: bool,
}

impl Expiry {
    /// Expires `ttl` after the `PUT` (whole milliseconds, rounded up; at most 30
    /// days), delayed time included: then it is dropped.
    pub fn after(ttl: Duration) -> Self {
        Expiry {
            ttl,
            dead_letter: false,
        }
    }

    /// Never expires, even on a queue with a default time to live (`BQUEUETTL`).
    pub fn never() -> Self {
        Expiry::after(Duration::ZERO)
    }

    /// Moves it to the queue's dead-letter queue when it expires, instead of dropping
    /// it.
    pub fn dead_letter(mut self) -> Self {
        self.dead_letter = true;
        self
    }
}

/// What a [`Client::put_unique`] or [`Client::put_job`] did.
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
        self.put_job(queue, payload, Some(unique), None, options)
    }

    /// Appends a message that expires (protocol.md 19) to `queue`, with a delay and
    /// a priority; returns its id and whether it was truncated.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use beuss::Client;
    /// use beuss::client::{Expiry, PutOptions};
    ///
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = Client::connect("localhost:6552")?;
    /// let (id, _) =
    ///     client.put_expiring("quotes", b"1.07", Expiry::after(Duration::from_secs(5)), PutOptions::default())?;
    /// # let _ = id;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Any [`Error`](super::Error); [`Error::Unsupported`](super::Error::Unsupported)
    /// from a server older than version 6; a time to live over 30 days is
    /// [`Error::Protocol`](super::Error::Protocol) before anything is sent.
    pub fn put_expiring(
        &mut self,
        queue: &str,
        payload: &[u8],
        expiry: Expiry,
        options: PutOptions,
    ) -> Result<(u64, PutStatus)> {
        match self.put_job(queue, payload, None, Some(expiry), options)? {
            UniquePut::Stored { id, status } | UniquePut::Replaced { id, status } => {
                Ok((id, status))
            }
            UniquePut::Duplicate { id, .. } => Err(super::Error::Unexpected(format!(
                "DUPLICATE (message {id}) to a PUT without a key"
            ))),
        }
    }

    /// Appends a message with a unique key, a time to live, or both (see
    /// [`Client::put_unique`] and [`Client::put_expiring`]).
    ///
    /// # Errors
    /// As [`Client::put_unique`] and [`Client::put_expiring`]; with neither a key
    /// nor an expiry, [`Error::Protocol`](super::Error::Protocol).
    pub fn put_job(
        &mut self,
        queue: &str,
        payload: &[u8],
        unique: Option<Unique<'_>>,
        expiry: Option<Expiry>,
        options: PutOptions,
    ) -> Result<UniquePut> {
        if unique.is_some() {
            self.require_feature(6, FEATURE_UNIQUE, "unique messages")?;
        }
        if expiry.is_some() {
            self.require_feature(6, FEATURE_TTL, "message expiry")?;
        }
        let default = options == PutOptions::default();
        let request = Request::PutJob {
            queue,
            options: (!default).then(|| protocol::PutOptions {
                delay_ms: duration_ms(options.delay),
                priority: options.priority,
            }),
            unique: unique.map(|u| protocol::Unique {
                key: u.key,
                replace: u.replace,
                window_ms: duration_ms(u.window),
            }),
            ttl: expiry.map(|e| protocol::Ttl {
                ttl_ms: duration_ms(e.ttl),
                dead_letter: e.dead_letter,
            }),
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
}
