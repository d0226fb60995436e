//! Acknowledged delivery on the client (protocol.md section 13): leased receive,
//! `ACK`/`NACK`/`TOUCH`, `PUT` with a delay and a priority, `PEEK` and `MOVE`.

use std::time::Duration;

use super::{Client, Error, PutStatus, Result, unexpected, wait_ms};
use crate::protocol::{
    self, DEFAULT_PRIORITY, Deliveries, LeaseRef, MAX_SETTLE_PAIRS, Pairs, Request, Response,
    SettleResult,
};

/// How a [`Client::lease`] asks for its leases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseOptions {
    /// Lease length (whole milliseconds, rounded up); `None` takes the server's
    /// default (30 s). A lease over the server's cap (12 h) is a fatal `BAD_ARGUMENT`.
    pub lease: Option<Duration>,
    /// Dead-letter a message once it has this many charged deliveries; 0 takes the
    /// server's default (20), [`protocol::NEVER_DEAD`] never dead-letters.
    pub max_deliveries: u16,
    /// The leases outlive this connection: only `ACK`, `NACK` or the deadline ends
    /// them, and any connection may settle them.
    pub detached: bool,
}

/// How a [`Client::nack`] ends its leases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackOptions {
    /// Return the messages after this long (whole milliseconds, rounded up); zero
    /// returns them at once, in their place ahead of newer messages.
    pub delay: Duration,
    /// Send the messages to the dead-letter queue (`<queue>.dead`) now.
    pub dead: bool,
    /// Do not charge this delivery toward `max_deliveries` (a worker giving back
    /// what it did not start, e.g. on shutdown).
    pub no_charge: bool,
}

/// Delay and priority of a [`Client::put_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOptions {
    /// The message becomes ready after this long (whole milliseconds, rounded up);
    /// zero means now. Over the server's cap (30 days) is a fatal `BAD_ARGUMENT`.
    pub delay: Duration,
    /// 0 (delivered first) to [`protocol::MAX_PRIORITY`] (last); a plain `PUT` gives
    /// [`protocol::DEFAULT_PRIORITY`].
    pub priority: u8,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            delay: Duration::ZERO,
            priority: DEFAULT_PRIORITY,
        }
    }
}

/// A message taken by [`Client::lease`] (or copied by [`Client::peek`]), owned so it
/// can outlive the reply it came in and be settled later.
///
/// A worker takes messages on lease, does the work, and acknowledges each one; a
/// message it fails, or whose lease it lets run out, comes back with its attempt
/// number raised:
///
/// ```no_run
/// use std::time::Duration;
/// use beuss::Client;
/// use beuss::client::LeaseOptions;
///
/// # fn work(_: &[u8]) -> Result<(), String> { Ok(()) }
/// # fn main() -> Result<(), beuss::client::Error> {
/// let mut client = Client::connect("localhost:6552")?;
/// let options = LeaseOptions {
///     lease: Some(Duration::from_secs(30)),
///     ..LeaseOptions::default()
/// };
/// loop {
///     // Wait up to 5 s for one job; the lease starts when the server replies.
///     for job in client.lease("jobs", 1, Duration::from_secs(5), options)? {
///         match work(job.payload()) {
///             Ok(()) => {
///                 job.ack(&mut client)?;
///             }
///             // Give it back in a second; after `max_deliveries` charged
///             // deliveries it goes to "jobs.dead" instead.
///             Err(why) => {
///                 eprintln!("job {} attempt {} failed: {why}", job.id(), job.attempt());
///                 job.nack(&mut client, Duration::from_secs(1))?;
///             }
///         }
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    queue: String,
    lease: LeaseRef,
    payload: Vec<u8>,
}

impl Delivery {
    /// The message id: unique for the server's life.
    pub fn id(&self) -> u64 {
        self.lease.id
    }

    /// 1 on first delivery, raised by each lease (for a peeked message: its last
    /// lease's number, 0 if never leased).
    pub fn attempt(&self) -> u32 {
        self.lease.attempt
    }

    /// The message bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The message bytes, without copying.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The `(id, attempt)` pair the settle requests take.
    pub fn lease(&self) -> LeaseRef {
        self.lease
    }

    /// Acknowledges the message: the server deletes it. [`SettleResult::Stale`] means
    /// the lease had ended (expired, or redelivered): the work may be done twice.
    ///
    /// # Errors
    /// Any [`Error`]; a stale or unknown lease is a result, not an error.
    pub fn ack(&self, client: &mut Client) -> Result<SettleResult> {
        first(client.ack(&self.queue, &[self.lease])?)
    }

    /// Gives the message back, ready again after `delay` (charged as a delivery).
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn nack(&self, client: &mut Client, delay: Duration) -> Result<SettleResult> {
        let options = NackOptions {
            delay,
            ..NackOptions::default()
        };
        first(client.nack(&self.queue, &[self.lease], options)?)
    }

    /// Extends the lease to its original length from now.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn touch(&self, client: &mut Client) -> Result<SettleResult> {
        first(client.touch(&self.queue, &[self.lease], None)?)
    }
}

fn first(results: Vec<SettleResult>) -> Result<SettleResult> {
    results
        .into_iter()
        .next()
        .ok_or_else(|| Error::Unexpected("SETTLED with no result".to_owned()))
}

/// Milliseconds for a lease or delay: rounded up, saturating at `u32::MAX` so that an
/// absurd value reaches the server (which refuses it) instead of wrapping.
pub(super) fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

/// Owned copies of a `LEASED`/`PEEKED` reply's messages.
fn owned(queue: &str, deliveries: Deliveries<'_>) -> Vec<Delivery> {
    deliveries
        .iter()
        .map(|d| Delivery {
            queue: queue.to_owned(),
            lease: d.lease,
            payload: d.payload.to_vec(),
        })
        .collect()
}

/// Which settle request a batch is.
#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Nack(NackOptions),
    Touch(u32),
}

impl Client {
    /// Takes up to `max` messages of `queue` on lease, waiting up to `wait` for the
    /// first ([`Duration::MAX`]: forever); empty if none came. Each must be settled
    /// ([`Delivery::ack`], [`Delivery::nack`]) before its lease ends, or it is
    /// delivered again.
    ///
    /// # Errors
    /// Any [`Error`]; `max` of 0 or a lease over the cap is a fatal `BAD_ARGUMENT`.
    pub fn lease(
        &mut self,
        queue: &str,
        max: u16,
        wait: Duration,
        options: LeaseOptions,
    ) -> Result<Vec<Delivery>> {
        self.send(&Request::Lease {
            queue,
            wait_ms: wait_ms(wait),
            max,
            lease_ms: options.lease.map_or(0, |l| duration_ms(l).max(1)),
            max_deliveries: options.max_deliveries,
            detached: options.detached,
        })?;
        self.flush()?;
        match self.recv()? {
            Response::Leased(deliveries) => Ok(owned(queue, deliveries)),
            Response::Empty => Ok(Vec::new()),
            other => Err(unexpected("LEASED or EMPTY", &other)),
        }
    }

    /// Acknowledges leases of `queue`: one result per lease, in order. Any number of
    /// leases may be given; they travel in frames of up to 4096, pipelined.
    ///
    /// # Errors
    /// Any [`Error`]; stale and unknown leases are results, not errors.
    pub fn ack(&mut self, queue: &str, leases: &[LeaseRef]) -> Result<Vec<SettleResult>> {
        self.settle(queue, leases, Settle::Ack)
    }

    /// Ends leases of `queue` without deleting the messages: they are returned
    /// (after `options.delay`) or dead-lettered. One result per lease, in order.
    ///
    /// # Errors
    /// Any [`Error`]; a delay over the cap is a fatal `BAD_ARGUMENT`.
    pub fn nack(
        &mut self,
        queue: &str,
        leases: &[LeaseRef],
        options: NackOptions,
    ) -> Result<Vec<SettleResult>> {
        self.settle(queue, leases, Settle::Nack(options))
    }

    /// Extends leases of `queue` to `lease` from now (`None`: the length their
    /// `LEASE` asked for). One result per lease, in order.
    ///
    /// # Errors
    /// Any [`Error`]; a lease over the cap is a fatal `BAD_ARGUMENT`.
    pub fn touch(
        &mut self,
        queue: &str,
        leases: &[LeaseRef],
        lease: Option<Duration>,
    ) -> Result<Vec<SettleResult>> {
        let lease_ms = lease.map_or(0, |l| duration_ms(l).max(1));
        self.settle(queue, leases, Settle::Touch(lease_ms))
    }

    fn settle(
        &mut self,
        queue: &str,
        leases: &[LeaseRef],
        kind: Settle,
    ) -> Result<Vec<SettleResult>> {
        let chunks: Vec<&[LeaseRef]> = leases.chunks(MAX_SETTLE_PAIRS).collect();
        for chunk in &chunks {
            let pairs = Pairs::List(chunk);
            self.send(&match kind {
                Settle::Ack => Request::Ack { queue, pairs },
                Settle::Nack(o) => Request::Nack {
                    queue,
                    delay_ms: duration_ms(o.delay),
                    dead: o.dead,
                    no_charge: o.no_charge,
                    pairs,
                },
                Settle::Touch(lease_ms) => Request::Touch {
                    queue,
                    lease_ms,
                    pairs,
                },
            })?;
        }
        self.flush()?;
        let mut results = Vec::with_capacity(leases.len());
        for chunk in &chunks {
            match self.recv()? {
                Response::Settled(settled) if settled.len() == chunk.len() => {
                    for result in settled.iter() {
                        results.push(result.ok_or_else(|| {
                            Error::Unexpected("unknown SETTLED result".to_owned())
                        })?);
                    }
                }
                other => return Err(unexpected("SETTLED with one result per lease", &other)),
            }
        }
        Ok(results)
    }

    /// Appends a message to `queue` with a delay and a priority; returns its id.
    ///
    /// # Errors
    /// Any [`Error`]; a full server gives an error for which [`Error::is_full`]
    /// holds; priority over 9 or a delay over the cap is a fatal `BAD_ARGUMENT`.
    pub fn put_with(&mut self, queue: &str, payload: &[u8], options: PutOptions) -> Result<u64> {
        Ok(self.put_with_status(queue, payload, options)?.0)
    }

    /// As [`Client::put_with`], also telling whether the payload was cut to the
    /// server's message size limit.
    ///
    /// # Errors
    /// As [`Client::put_with`].
    pub fn put_with_status(
        &mut self,
        queue: &str,
        payload: &[u8],
        options: PutOptions,
    ) -> Result<(u64, PutStatus)> {
        self.send(&Request::PutWith {
            queue,
            options: protocol::PutOptions {
                delay_ms: duration_ms(options.delay),
                priority: options.priority,
            },
            payload,
        })?;
        self.flush()?;
        match self.recv()? {
            Response::StoredId { id } => Ok((id, PutStatus::Stored)),
            Response::TruncatedId {
                original_len,
                stored_len,
                id,
            } => Ok((
                id,
                PutStatus::Truncated {
                    original_len,
                    stored_len,
                },
            )),
            other => Err(unexpected("STORED or TRUNCATED with an id", &other)),
        }
    }

    /// Copies of up to `max` ready messages at the front of `queue`, in delivery
    /// order, changing nothing (for looking at a dead-letter queue).
    ///
    /// # Errors
    /// Any [`Error`]; `max` of 0 is a fatal `BAD_ARGUMENT`.
    pub fn peek(&mut self, queue: &str, max: u16) -> Result<Vec<Delivery>> {
        match self.call(&Request::Peek { queue, max })? {
            Response::Peeked(deliveries) => Ok(owned(queue, deliveries)),
            Response::Empty => Ok(Vec::new()),
            other => Err(unexpected("PEEKED or EMPTY", &other)),
        }
    }

    /// Moves up to `max` ready messages from the front of `from` to the end of `to`
    /// (e.g. `"jobs.dead"` back to `"jobs"`); returns how many moved.
    ///
    /// # Errors
    /// Any [`Error`]; `from == to` or `max` of 0 is a fatal `BAD_ARGUMENT`.
    pub fn move_messages(&mut self, from: &str, to: &str, max: u32) -> Result<u64> {
        match self.call(&Request::Move { from, to, max })? {
            Response::Moved { count } => Ok(count),
            other => Err(unexpected("MOVED", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leases and delays round up to whole milliseconds and saturate instead of wrapping.
    #[test]
    fn duration_conversion() {
        assert_eq!(duration_ms(Duration::ZERO), 0);
        assert_eq!(duration_ms(Duration::from_micros(1)), 1);
        assert_eq!(duration_ms(Duration::from_millis(250)), 250);
        assert_eq!(duration_ms(Duration::from_secs(10_000_000)), u32::MAX);
    }
}
