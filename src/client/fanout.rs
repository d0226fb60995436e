//! Fan-out on the client (protocol.md section 15): bindings, `PUB` with its
//! confirmation, subscriptions and the `EVENT`s they bring, request/reply, and
//! receives with metadata (`WITH_META`).
//!
//! Events are server-initiated: they may come between any two replies. Every reply
//! reader of the client ([`Client::recv`] and all that use it) sets the events it
//! meets aside, in order, in a buffer that [`Client::next_event`] empties first.
//! That buffer is bounded ([`Client::set_event_buffer`]): a program that subscribes
//! and then only makes requests, never reading its events, has the newest ones
//! dropped and counted, as the server does for a subscriber that does not read.

use std::io;
use std::time::{Duration, Instant};

use super::{Client, Error, LeaseOptions, MAX_RESPONSE, NackOptions, Result, unexpected, wait_ms};
use crate::protocol::{
    self, DEFAULT_PRIORITY, FEATURE_FANOUT, LeaseRef, Published, Request, Response, SettleResult,
};

/// Bytes of events a client holds by default while it waits for replies
/// ([`Client::set_event_buffer`]).
pub(super) const EVENT_BUFFER: usize = 4 << 20;
/// What one held event costs on top of its payload and subject, for the buffer's
/// bound.
const EVENT_OVERHEAD: usize = 64;
/// Timeout of a confirmed `PUB` when [`PublishOptions::confirm`] was not given one.
const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest read timeout the OS accepts for a poll of the socket (zero means "no
/// timeout" to it, and is refused).
const SHORTEST_READ: Duration = Duration::from_millis(1);

/// How a [`Client::publish_with`] publishes: the delay and priority of the copies
/// stored in queues, and whether to wait for some of them to be confirmed.
///
/// ```
/// use std::time::Duration;
/// use beuss::client::PublishOptions;
///
/// let options = PublishOptions::default()
///     .priority(1)
///     .confirm(2, Duration::from_secs(5)); // answer once 2 copies are acknowledged
/// assert_eq!(options.confirm, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOptions {
    /// The copies become ready after this long (whole milliseconds, rounded up);
    /// zero means now. Events are pushed at once whatever it is. Over the server's
    /// cap (30 days) is a fatal `BAD_ARGUMENT`.
    pub delay: Duration,
    /// Priority of the copies: 0 (delivered first) to [`protocol::MAX_PRIORITY`].
    pub priority: u8,
    /// Answer only once this many copies are confirmed (acknowledged, or taken by a
    /// plain `GET`); 0 answers at once.
    pub confirm: u32,
    /// With `confirm` above 0: answer after this long at the latest, with the
    /// counts reached (1 ms to the server's lease cap, 12 h).
    pub timeout: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            delay: Duration::ZERO,
            priority: DEFAULT_PRIORITY,
            confirm: 0,
            timeout: DEFAULT_CONFIRM_TIMEOUT,
        }
    }
}

impl PublishOptions {
    /// The copies become ready after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The copies' priority, 0..=9.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Wait until `copies` copies are confirmed, or `timeout` has passed, or that
    /// many can no longer be confirmed; the reply's `acked` says how many were.
    pub fn confirm(mut self, copies: u32, timeout: Duration) -> Self {
        self.confirm = copies;
        self.timeout = timeout;
        self
    }
}

/// A message pushed to a subscription of this connection ([`Client::subscribe`]),
/// owned: read with [`Client::next_event`] or [`Client::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    sid: u32,
    subject: String,
    reply_to: Option<u64>,
    dropped: u32,
    payload: Vec<u8>,
}

impl Event {
    /// The subscription it matched, as [`Client::subscribe`] returned it.
    pub fn sid(&self) -> u32 {
        self.sid
    }

    /// The subject it was published to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The reply address when it is a request (`REQ`): what [`Client::reply`] takes.
    pub fn reply_to(&self) -> Option<u64> {
        self.reply_to
    }

    /// Events of this subscription lost just before this one: dropped by the server
    /// because this connection was not reading fast enough, or by this client
    /// because its event buffer was full ([`Client::set_event_buffer`]).
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// The message bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The message bytes, without copying.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// Answers the request this event carries, on `client` (any connection will
    /// do). `Ok(false)` when nobody waits for the answer any more, or when the
    /// event is not a request.
    ///
    /// # Errors
    /// As [`Client::reply`].
    pub fn reply(&self, client: &mut Client, payload: &[u8]) -> Result<bool> {
        match self.reply_to {
            Some(reply_to) => client.reply(reply_to, payload),
            None => Ok(false),
        }
    }
}

/// A message taken with its metadata ([`Client::get_with_meta`],
/// [`Client::lease_with_meta`], [`Client::peek_with_meta`]), owned so it can
/// outlive the reply it came in and be settled or answered later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    queue: String,
    id: u64,
    attempt: u32,
    subject: Option<String>,
    reply_to: Option<u64>,
    payload: Vec<u8>,
}

impl Envelope {
    /// The message id: unique for the server's life.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// From a lease: the attempt of this lease (1 on first delivery). From `GET`
    /// or `PEEK`: how many times the message has been leased, 0 if never.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The subject it was published to; `None` for a message that was `PUT`.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The reply address of the `REQ` that sent it: what [`Client::reply`] takes.
    pub fn reply_to(&self) -> Option<u64> {
        self.reply_to
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

    /// The `(id, attempt)` pair the settle requests take (meaningful once leased).
    pub fn lease(&self) -> LeaseRef {
        LeaseRef {
            id: self.id,
            attempt: self.attempt,
        }
    }

    /// Acknowledges a leased message: the server deletes it.
    ///
    /// # Errors
    /// Any [`Error`]; a stale or unknown lease is a result, not an error.
    pub fn ack(&self, client: &mut Client) -> Result<SettleResult> {
        single(client.ack(&self.queue, &[self.lease()])?)
    }

    /// Gives a leased message back, ready again after `delay` (charged as a
    /// delivery).
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn nack(&self, client: &mut Client, delay: Duration) -> Result<SettleResult> {
        let options = NackOptions {
            delay,
            ..NackOptions::default()
        };
        single(client.nack(&self.queue, &[self.lease()], options)?)
    }

    /// Extends the lease to its original length from now.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn touch(&self, client: &mut Client) -> Result<SettleResult> {
        single(client.touch(&self.queue, &[self.lease()], None)?)
    }

    /// Answers the request this message carries. `Ok(false)` when nobody waits for
    /// the answer any more, or when the message is not a request.
    ///
    /// # Errors
    /// As [`Client::reply`].
    pub fn reply(&self, client: &mut Client, payload: &[u8]) -> Result<bool> {
        match self.reply_to {
            Some(reply_to) => client.reply(reply_to, payload),
            None => Ok(false),
        }
    }
}

fn single(results: Vec<SettleResult>) -> Result<SettleResult> {
    results
        .into_iter()
        .next()
        .ok_or_else(|| Error::Unexpected("SETTLED with no result".to_owned()))
}

/// The events of a connection as an iterator ([`Client::events`]): each item is
/// the next event, or the error that ended the stream. It ends after an error, or
/// when its timeout passes without an event.
#[derive(Debug)]
pub struct Events<'a> {
    client: &'a mut Client,
    timeout: Option<Duration>,
    done: bool,
}

impl Iterator for Events<'_> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        if self.done {
            return None;
        }
        match self.client.next_event(self.timeout) {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// An owned copy of the `EVENT` frame `frame` (length prefix included).
pub(super) fn owned_event(frame: &[u8]) -> Result<Event> {
    match protocol::decode_response(frame, MAX_RESPONSE)? {
        Some((Response::Event { sid, meta, payload }, _)) => Ok(Event {
            sid,
            subject: meta.subject().unwrap_or_default().to_owned(),
            reply_to: meta.reply_to(),
            dropped: meta.dropped().unwrap_or(0),
            payload: payload.to_vec(),
        }),
        _ => Err(Error::Unexpected(
            "an EVENT frame that does not decode".to_owned(),
        )),
    }
}

/// Whole milliseconds for the wire, rounded up, saturating so that an absurd value
/// reaches the server (which refuses it) rather than wrapping.
fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn event_cost(event: &Event) -> usize {
    event.payload.len() + event.subject.len() + EVENT_OVERHEAD
}

impl Client {
    /// Makes sure the server has fan-out: asks with `HELLO` the first time, unless
    /// one was exchanged already.
    fn require_fanout(&mut self) -> Result<()> {
        if self.fanout_ok {
            return Ok(());
        }
        if self.server.is_none() {
            if self.awaiting > 0 {
                return Err(Error::Unexpected(
                    "call Client::hello before pipelining fan-out requests".to_owned(),
                ));
            }
            self.hello()?;
        }
        let Some(info) = &self.server else {
            return Err(Error::Unexpected("no HELLO reply".to_owned()));
        };
        if info.version < 3 || !info.has(FEATURE_FANOUT) {
            return Err(Error::Unsupported {
                feature: "fan-out (subjects, PUB, SUB, REQ)",
                server: info.server.clone(),
                version: info.version,
            });
        }
        self.fanout_ok = true;
        Ok(())
    }

    /// Sets the socket's read timeout, unless it has it already.
    fn apply_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if self.applied != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.applied = timeout;
        }
        Ok(())
    }

    /// Reads the reply of a request the server holds up to `wait` (a `REQ`, a
    /// confirmed `PUB`, a waiting receive): the caller's timeout counts from the end
    /// of that wait.
    fn recv_after_wait(&mut self, wait: Duration) -> Result<Response<'_>> {
        let extended = self.timeout.map(|t| t.saturating_add(wait));
        self.apply_read_timeout(extended)?;
        let filled = self.fill_reply();
        let restored = self.apply_read_timeout(self.timeout);
        filled?;
        restored?;
        self.decode_reply()
    }

    /// Holds an event read while looking for something else, unless the buffer is
    /// full: then it is dropped, and counted on its subscription's next event.
    pub(super) fn stash_event(&mut self, mut event: Event) {
        let cost = event_cost(&event);
        if !self.events.is_empty() && self.event_bytes + cost > self.event_limit {
            let unreported = self.unreported_drops.entry(event.sid).or_insert(0);
            *unreported = unreported.saturating_add(1).saturating_add(event.dropped);
            self.events_dropped += 1;
            return;
        }
        if let Some(unreported) = self.unreported_drops.remove(&event.sid) {
            event.dropped = event.dropped.saturating_add(unreported);
        }
        self.event_bytes += cost;
        self.events.push_back(event);
    }

    fn pop_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        self.event_bytes -= event_cost(&event);
        Some(event)
    }

    /// Takes the frame of `len` bytes at `at` out of the read buffer.
    fn remove_frame(&mut self, at: usize, len: usize) {
        if at == self.rstart {
            self.rstart += len;
        } else {
            self.rbuf.copy_within(at + len..self.rend, at);
            self.rend -= len;
        }
    }

    /// Binds `pattern` onto `queue` (created if needed): from then on every publish
    /// to a matching subject stores a copy in `queue`. Returns false if the binding
    /// existed already (nothing changes then).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = beuss::Client::connect("localhost:6552")?;
    /// client.bind("orders.*.created", "audit")?;
    /// client.bind("orders.>", "mail")?;
    /// let published = client.publish("orders.eu.created", b"order 42")?;
    /// assert_eq!(published.queues, 2); // one copy each
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Unsupported`] from a server without fan-out; a
    /// pattern the server would refuse is [`Error::Protocol`] and nothing is sent;
    /// a full server gives an error for which [`Error::is_full`] holds.
    pub fn bind(&mut self, pattern: &str, queue: &str) -> Result<bool> {
        self.require_fanout()?;
        match self.call(&Request::Bind { pattern, queue })? {
            Response::Bound { created } => Ok(created),
            other => Err(unexpected("BOUND", &other)),
        }
    }

    /// Removes the binding of `pattern` onto `queue`; the queue and the copies in it
    /// stay. Returns false if there was no such binding.
    ///
    /// # Errors
    /// As [`Client::bind`].
    pub fn unbind(&mut self, pattern: &str, queue: &str) -> Result<bool> {
        self.require_fanout()?;
        match self.call(&Request::Unbind { pattern, queue })? {
            Response::Unbound { removed } => Ok(removed),
            other => Err(unexpected("UNBOUND", &other)),
        }
    }

    /// Publishes `payload` to `subject` (no wildcards): a copy into every queue
    /// bound to a matching pattern, once per queue, and an event to every matching
    /// subscription. Publishing to a subject nobody listens to is not an error: the
    /// counts are 0.
    ///
    /// # Errors
    /// As [`Client::bind`]; a subject with a wildcard is [`Error::Protocol`].
    pub fn publish(&mut self, subject: &str, payload: &[u8]) -> Result<Published> {
        self.publish_with(subject, payload, PublishOptions::default())
    }

    /// Publishes with a delay and a priority for the copies, and optionally waits
    /// until `options.confirm` copies are confirmed (see [`PublishOptions`]). When
    /// the wait ends by its timeout, or because too many copies were dead-lettered
    /// or purged, the reply's `acked` is below `confirm` and `failed` says how many
    /// failed: that is an answer, not an error.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use beuss::client::{Error, PublishOptions};
    ///
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = beuss::Client::connect("localhost:6552")?;
    /// let options = PublishOptions::default().confirm(1, Duration::from_secs(5));
    /// match client.publish_with("orders.eu.created", b"order 42", options) {
    ///     Ok(p) if p.acked >= 1 => println!("handled by a consumer"),
    ///     Ok(p) => println!("{} copies, none acknowledged in time", p.queues),
    ///     Err(Error::TooFewCopies { message }) => println!("nothing published: {message}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Client::publish`]; [`Error::TooFewCopies`] (nothing published) when
    /// fewer queues are bound than `confirm`; a `timeout` of zero with `confirm` is
    /// [`Error::Protocol`].
    pub fn publish_with(
        &mut self,
        subject: &str,
        payload: &[u8],
        options: PublishOptions,
    ) -> Result<Published> {
        self.require_fanout()?;
        let (timeout_ms, wait) = if options.confirm > 0 {
            (ms(options.timeout), options.timeout)
        } else {
            (0, Duration::ZERO)
        };
        self.send(&Request::Publish {
            subject,
            delay_ms: ms(options.delay),
            priority: options.priority,
            confirm: options.confirm,
            timeout_ms,
            payload,
        })?;
        self.flush()?;
        match self.recv_after_wait(wait)? {
            Response::Published(published) => Ok(published),
            other => Err(unexpected("PUBLISHED", &other)),
        }
    }

    /// Subscribes this connection to `pattern`; returns the subscription's id, which
    /// every [`Event`] of it carries. Matching publishes are pushed to the
    /// connection from then on, as long as it is open; read them with
    /// [`Client::next_event`] or [`Client::events`]. The same connection can go on
    /// making requests: the events that arrive meanwhile are kept for later.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = beuss::Client::connect("localhost:6552")?;
    /// client.subscribe("orders.>")?;
    /// // Every event as it comes; the loop ends after 10 s without one.
    /// for event in client.events(Some(Duration::from_secs(10))) {
    ///     let event = event?;
    ///     println!("{}: {} bytes", event.subject(), event.payload().len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Client::bind`]; a connection holding 1024 subscriptions gets the
    /// non-fatal `LIMIT` ([`Error::code`]).
    pub fn subscribe(&mut self, pattern: &str) -> Result<u32> {
        self.require_fanout()?;
        match self.call(&Request::Subscribe { pattern })? {
            Response::Subscribed { sid } => Ok(sid),
            other => Err(unexpected("SUBSCRIBED", &other)),
        }
    }

    /// Ends subscription `sid`; returns false if this connection had no such
    /// subscription. Events of it that this client had set aside are dropped too:
    /// none is returned after this.
    ///
    /// # Errors
    /// As [`Client::bind`].
    pub fn unsubscribe(&mut self, sid: u32) -> Result<bool> {
        self.require_fanout()?;
        let removed = match self.call(&Request::Unsubscribe { sid })? {
            Response::Unsubscribed { removed } => removed,
            other => return Err(unexpected("UNSUBSCRIBED", &other)),
        };
        let mut bytes = 0;
        self.events.retain(|e| {
            let keep = e.sid != sid;
            if !keep {
                bytes += event_cost(e);
            }
            keep
        });
        self.event_bytes -= bytes;
        self.unreported_drops.remove(&sid);
        Ok(removed)
    }

    /// The next event of this connection's subscriptions: one set aside while
    /// reading replies, else the next to arrive, waiting up to `timeout` (`None`:
    /// until one comes, whatever [`Client::set_timeout`] says). `Ok(None)` when the
    /// timeout passed without one. Replies of requests sent with [`Client::send`]
    /// and not yet received stay for [`Client::recv`].
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::Io`] when the connection ends;
    /// [`Error::Server`] for an error the server sent unasked (`SHUTTING_DOWN`
    /// when it stops); [`Error::Protocol`] for a malformed frame.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<Event>> {
        if let Some(event) = self.pop_event() {
            return Ok(Some(event));
        }
        self.rstart += std::mem::take(&mut self.last);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let found = self.read_event(timeout.is_some().then_some(deadline).flatten());
        let restored = self.apply_read_timeout(self.timeout);
        let found = found?;
        restored?;
        Ok(found)
    }

    /// [`Client::next_event`] past the buffer: reads until an event is whole, or
    /// `deadline` (`None`: never).
    fn read_event(&mut self, deadline: Option<Instant>) -> Result<Option<Event>> {
        // Bytes after `rstart` that are whole replies, kept for `recv`.
        let mut kept = 0;
        let mut tried = false;
        loop {
            while let Some(len) = self.frame_len_needed(kept) {
                if self.rend - self.rstart < kept + len {
                    break;
                }
                let at = self.rstart + kept;
                if self.is_event_at(at, len) {
                    let event = owned_event(&self.rbuf[at..at + len])?;
                    self.remove_frame(at, len);
                    self.stash_event(event);
                } else if self.awaiting == 0 && kept == 0 {
                    // A frame no request asked for: the server's word before it
                    // closes the connection (SHUTTING_DOWN), or a broken server.
                    let response = self.decode_reply();
                    return match response {
                        Err(e) => Err(e),
                        Ok(other) => Err(unexpected("EVENT", &other)),
                    };
                } else {
                    kept += len;
                }
            }
            if let Some(event) = self.pop_event() {
                return Ok(Some(event));
            }
            let wait = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() && tried {
                        return Ok(None);
                    }
                    Some(left.max(SHORTEST_READ))
                }
            };
            self.apply_read_timeout(wait)?;
            tried = true;
            let needed = kept + self.frame_len_needed(kept).unwrap_or(protocol::LEN_PREFIX);
            match self.fill(Some(needed)) {
                Ok(()) => {}
                Err(Error::Io(e)) if deadline.is_some() && timed_out(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// This connection's events as an iterator; see [`Events`] and
    /// [`Client::subscribe`]. Each item waits up to `timeout` (`None`: forever);
    /// the iterator ends when one passes without an event.
    pub fn events(&mut self, timeout: Option<Duration>) -> Events<'_> {
        Events {
            client: self,
            timeout,
            done: false,
        }
    }

    /// How many bytes of events (payloads and subjects, plus a small overhead
    /// each) the client holds while it waits for replies; past that, new events
    /// are dropped and counted in the next event's [`Event::dropped`]. One event
    /// is always held, whatever its size. The default is 4 MiB.
    pub fn set_event_buffer(&mut self, bytes: usize) {
        self.event_limit = bytes;
    }

    /// Events set aside, waiting for [`Client::next_event`].
    pub fn buffered_events(&self) -> usize {
        self.events.len()
    }

    /// Events this client dropped since it connected because its buffer was full
    /// (the server's drops are not in it; see [`Event::dropped`] for both).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Sends a request to `subject` and waits up to `timeout` for the first reply:
    /// `Some(reply)`, or `None` when the timeout passed. The request is routed as a
    /// publish, with a reply address in its metadata: to the queues bound to a
    /// matching pattern, where a worker takes it ([`Client::lease_with_meta`]), and
    /// to the matching subscriptions.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use beuss::client::Error;
    ///
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = beuss::Client::connect("localhost:6552")?;
    /// match client.request("svc.time", b"now?", Duration::from_secs(1)) {
    ///     Ok(Some(reply)) => println!("{}", String::from_utf8_lossy(&reply)),
    ///     Ok(None) => println!("no answer within 1 s"),
    ///     Err(Error::NoResponders { .. }) => println!("nobody serves svc.time"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Client::publish`]; [`Error::NoResponders`] at once when no queue is
    /// bound and nobody subscribes to a matching pattern; a `timeout` of zero or
    /// over 12 h is [`Error::Protocol`].
    pub fn request(
        &mut self,
        subject: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>> {
        self.require_fanout()?;
        self.send(&Request::Req {
            subject,
            timeout_ms: ms(timeout),
            payload,
        })?;
        self.flush()?;
        match self.recv_after_wait(timeout)? {
            Response::Reply { payload } => Ok(Some(payload.to_vec())),
            Response::Empty => Ok(None),
            other => Err(unexpected("REPLY or EMPTY", &other)),
        }
    }

    /// Answers the request whose reply address is `reply_to` ([`Event::reply_to`],
    /// [`Envelope::reply_to`]); any connection may answer. Returns true if the
    /// requester got it, false if nobody waits on that address any more (answered
    /// already, timed out, gone).
    ///
    /// # Errors
    /// As [`Client::bind`].
    pub fn reply(&mut self, reply_to: u64, payload: &[u8]) -> Result<bool> {
        self.require_fanout()?;
        match self.call(&Request::Reply { reply_to, payload })? {
            Response::Replied { delivered } => Ok(delivered),
            other => Err(unexpected("REPLIED", &other)),
        }
    }

    /// As [`Client::get_batch`], with each message's id, attempt and metadata
    /// (subject, reply address): takes up to `max` messages of `queue`, waiting up
    /// to `wait` for the first; empty if none came.
    ///
    /// # Errors
    /// As [`Client::bind`]; `max` of 0 is a fatal `BAD_ARGUMENT`.
    pub fn get_with_meta(
        &mut self,
        queue: &str,
        max: u16,
        wait: Duration,
    ) -> Result<Vec<Envelope>> {
        self.require_fanout()?;
        self.send(&Request::GetWithMeta {
            queue,
            wait_ms: wait_ms(wait),
            max,
        })?;
        self.flush()?;
        self.recv_envelopes(queue, wait)
    }

    /// As [`Client::lease`], with each message's metadata: the way a worker takes
    /// requests from a bound queue and answers them.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use beuss::client::LeaseOptions;
    ///
    /// # fn main() -> Result<(), beuss::client::Error> {
    /// let mut client = beuss::Client::connect("localhost:6552")?;
    /// client.bind("svc.time", "svc.time")?;
    /// let wait = Duration::from_secs(5);
    /// for request in client.lease_with_meta("svc.time", 1, wait, LeaseOptions::default())? {
    ///     request.reply(&mut client, b"12:00")?;
    ///     request.ack(&mut client)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Client::lease`] and [`Client::bind`].
    pub fn lease_with_meta(
        &mut self,
        queue: &str,
        max: u16,
        wait: Duration,
        options: LeaseOptions,
    ) -> Result<Vec<Envelope>> {
        self.require_fanout()?;
        self.send(&Request::LeaseWithMeta {
            queue,
            wait_ms: wait_ms(wait),
            max,
            lease_ms: options.lease.map_or(0, |l| ms(l).max(1)),
            max_deliveries: options.max_deliveries,
            detached: options.detached,
        })?;
        self.flush()?;
        self.recv_envelopes(queue, wait)
    }

    /// As [`Client::peek`], with each message's metadata.
    ///
    /// # Errors
    /// As [`Client::bind`]; `max` of 0 is a fatal `BAD_ARGUMENT`.
    pub fn peek_with_meta(&mut self, queue: &str, max: u16) -> Result<Vec<Envelope>> {
        self.require_fanout()?;
        self.send(&Request::PeekWithMeta { queue, max })?;
        self.flush()?;
        self.recv_envelopes(queue, Duration::ZERO)
    }

    fn recv_envelopes(&mut self, queue: &str, wait: Duration) -> Result<Vec<Envelope>> {
        // Duration::MAX (wait forever) saturates the timeout to "forever" too.
        match self.recv_after_wait(wait)? {
            Response::Envelopes(envelopes) => Ok(envelopes
                .iter()
                .map(|e| Envelope {
                    queue: queue.to_owned(),
                    id: e.id,
                    attempt: e.attempt,
                    subject: e.meta.subject().map(str::to_owned),
                    reply_to: e.meta.reply_to(),
                    payload: e.payload.to_vec(),
                })
                .collect()),
            Response::Empty => Ok(Vec::new()),
            other => Err(unexpected("ENVELOPES or EMPTY", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder sets what it says and leaves the rest at a plain PUT's values.
    #[test]
    fn publish_options_builder() {
        let o = PublishOptions::default();
        assert_eq!((o.delay, o.priority, o.confirm), (Duration::ZERO, 5, 0));
        let o = o
            .delay(Duration::from_millis(1500))
            .priority(0)
            .confirm(3, Duration::from_secs(2));
        assert_eq!(o.delay, Duration::from_millis(1500));
        assert_eq!(o.priority, 0);
        assert_eq!((o.confirm, o.timeout), (3, Duration::from_secs(2)));
    }

    /// An EVENT frame (protocol.md 15.12's) becomes an owned event with its
    /// metadata; other frames are refused.
    #[test]
    fn events_decode_from_frames() {
        let mut frame = Vec::new();
        protocol::encode_event(&mut frame, 2, Some("svc.time"), Some(1), Some(7), b"now?");
        let event = owned_event(&frame).unwrap();
        assert_eq!(event.sid(), 2);
        assert_eq!(event.subject(), "svc.time");
        assert_eq!(event.reply_to(), Some(1));
        assert_eq!(event.dropped(), 7);
        assert_eq!(event.payload(), b"now?");
        let mut pong = Vec::new();
        protocol::encode_empty(&mut pong, protocol::Status::Pong);
        assert!(owned_event(&pong).is_err());
    }

    /// Durations round up to whole milliseconds and saturate.
    #[test]
    fn millisecond_conversion() {
        assert_eq!(ms(Duration::ZERO), 0);
        assert_eq!(ms(Duration::from_micros(1)), 1);
        assert_eq!(ms(Duration::from_secs(10_000_000)), u32::MAX);
    }
}
