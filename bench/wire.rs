//! The three wire protocols `beuss-bench` speaks, reduced to what a queue benchmark
//! needs: put a message, take one (at once or waiting), acknowledge it (beanstalkd's
//! `delete`), ping; and for the leased test, take a batch on lease and acknowledge it
//! (beuss `LEASE` / `ACK`, Redis Streams `XADD` / `XREADGROUP` / `XACK`). Encoders append to the connection's output buffer; the decoder
//! reads one reply from the front of the input buffer and says how many bytes it used.
//!
//! beuss goes through the crate's own codec (`Request::encode`, `decode_response`), so
//! the benchmark exercises the same bytes as the real client. Redis (RESP2) and
//! beanstalkd (its text protocol) are written out by hand: only the few replies the
//! benchmark provokes are understood, and anything else is an error, never a guess.

use beuss::protocol::{self, Pairs, PutOptions, Request, Response, SettleResult};

/// Largest beuss reply accepted: one 1 GiB message plus headers.
const MAX_REPLY: u32 = (1 << 30) + 4096;

/// Which server the benchmark talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// beuss: `PUT` / `GET` (max 1) / `PING`.
    Beuss,
    /// Redis: `LPUSH` / `RPOP` or `BRPOP` / `PING`, so a list behaves as a FIFO.
    Redis,
    /// beanstalkd: `put` / `reserve-with-timeout` then `delete`, one tube per queue.
    Beanstalkd,
}

/// One reply, as far as the benchmark cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A put was accepted.
    Stored,
    /// A get returned one message; beanstalkd also gives the job id to delete.
    Message {
        /// The message bytes.
        payload: &'a [u8],
        /// beanstalkd's job id (0 for the others).
        id: u64,
    },
    /// A get found nothing (at once, or when its wait ran out).
    Empty,
    /// Any other success: `PONG`, `DELETED`, `USING`, `WATCHING`.
    Ack,
    /// A RESP integer: `LPUSH`'s length, `XACK`'s count of acknowledged entries.
    Count(u64),
    /// A batch taken on lease (beuss `LEASED`, an `XREADGROUP` reply): `count`
    /// entries, whose bytes [`Target::leased`] walks.
    Leased {
        /// Entries in the batch.
        count: usize,
        /// The entries as they came, already checked whole.
        items: &'a [u8],
    },
    /// beuss's answer to `ACK`: how many pairs were `OK`, `STALE` and `NOT_FOUND`.
    Settled {
        /// Acknowledged.
        ok: usize,
        /// The lease had ended.
        stale: usize,
        /// No such message in a state a lease reaches.
        missing: usize,
    },
}

/// The consumer group every Redis connection of the leased test reads in.
const GROUP: &[u8] = b"g";
/// Lease length of the leased test: far longer than any phase, so that nothing
/// expires while measuring.
pub const LEASE_MS: u32 = 30_000;
/// Most entries one leased batch may hold: one `ACK` frame settles at most this many.
pub const MAX_LEASE_BATCH: usize = protocol::MAX_SETTLE_PAIRS;

impl Target {
    /// Parses a `--target` value.
    pub fn parse(name: &str) -> Option<Target> {
        match name {
            "beuss" => Some(Target::Beuss),
            "redis" => Some(Target::Redis),
            "beanstalkd" | "beanstalk" => Some(Target::Beanstalkd),
            _ => None,
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Beuss => "beuss",
            Target::Redis => "redis",
            Target::Beanstalkd => "beanstalkd",
        }
    }

    /// The port a server of this kind listens on by default.
    pub fn default_port(self) -> u16 {
        match self {
            Target::Beuss => beuss::DEFAULT_PORT,
            Target::Redis => 6379,
            Target::Beanstalkd => 11300,
        }
    }

    /// Requests that prepare a fresh connection to use `queue`, each answered by
    /// [`Reply::Ack`]. Only beanstalkd needs any: `use` for puts, `watch` (and
    /// `ignore default`) for reserves.
    pub fn setup(self, out: &mut Vec<u8>, queue: &str) -> usize {
        match self {
            Target::Beuss | Target::Redis => 0,
            Target::Beanstalkd => {
                out.extend_from_slice(format!("use {queue}\r\nwatch {queue}\r\n").as_bytes());
                out.extend_from_slice(b"ignore default\r\n");
                3
            }
        }
    }

    /// Appends a request that adds `payload` at the tail of `queue`.
    pub fn put(self, out: &mut Vec<u8>, queue: &str, payload: &[u8]) {
        match self {
            Target::Beuss => {
                // The engine checked the queue name and payload size up front.
                let _ = Request::Put { queue, payload }.encode(out);
            }
            Target::Redis => {
                resp_command(out, &[b"LPUSH", queue.as_bytes(), payload]);
            }
            Target::Beanstalkd => {
                // Priority 0, no delay, 60 s to delete it once reserved.
                push_line(out, format_args!("put 0 0 60 {}", payload.len()));
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Requests that prepare `queue` for the leased test, each answered by
    /// [`Reply::Ack`] or [`Reply::Count`], sent once per queue before any connection
    /// uses it: Redis starts from an empty stream with a fresh group; beuss and
    /// beanstalkd need nothing.
    pub fn lease_setup(self, out: &mut Vec<u8>, queue: &str) -> usize {
        if self != Target::Redis {
            return 0;
        }
        resp_command(out, &[b"DEL", queue.as_bytes()]);
        resp_command(
            out,
            &[
                b"XGROUP",
                b"CREATE",
                queue.as_bytes(),
                GROUP,
                b"$",
                b"MKSTREAM",
            ],
        );
        2
    }

    /// Appends a beuss `PUT` with the `PUT_OPTIONS` flag: `payload` becomes ready
    /// after `delay_ms` (priority 5, as a plain `PUT`). Only beuss has it; the engine
    /// never asks another target.
    pub fn put_delayed(self, out: &mut Vec<u8>, queue: &str, payload: &[u8], delay_ms: u32) {
        let options = PutOptions {
            delay_ms,
            ..PutOptions::default()
        };
        let _ = Request::PutWith {
            queue,
            options,
            payload,
        }
        .encode(out);
    }

    /// Appends a request that adds `payload` to `queue` for the leased test: `XADD`
    /// for Redis (answered by the entry id, a bulk string), `put` for the others.
    pub fn add(self, out: &mut Vec<u8>, queue: &str, payload: &[u8]) {
        match self {
            Target::Redis => {
                resp_command(out, &[b"XADD", queue.as_bytes(), b"*", b"p", payload]);
            }
            Target::Beuss | Target::Beanstalkd => self.put(out, queue, payload),
        }
    }

    /// Appends a request that leases up to `max` messages of `queue` without waiting:
    /// beuss `LEASE` (30 s), Redis `XREADGROUP GROUP g <consumer> COUNT max STREAMS
    /// queue >`. beanstalkd leases one job per `reserve`: [`Target::get`] is its lease.
    pub fn lease(self, out: &mut Vec<u8>, queue: &str, consumer: &str, max: u16) {
        match self {
            Target::Beuss => {
                let _ = Request::Lease {
                    queue,
                    wait_ms: 0,
                    max,
                    lease_ms: LEASE_MS,
                    max_deliveries: 0,
                    detached: false,
                }
                .encode(out);
            }
            Target::Redis => {
                let mut digits = [0u8; 5];
                let count = decimal(u64::from(max), &mut digits);
                resp_command(
                    out,
                    &[
                        b"XREADGROUP",
                        b"GROUP",
                        GROUP,
                        consumer.as_bytes(),
                        b"COUNT",
                        count,
                        b"STREAMS",
                        queue.as_bytes(),
                        b">",
                    ],
                );
            }
            Target::Beanstalkd => self.get(out, queue, 0),
        }
    }

    /// Appends one request acknowledging `count` leased entries whose ack bytes (as
    /// [`Target::leased`] gives them) are concatenated in `acks`: a beuss `ACK`, or
    /// `XACK queue g id...`. Nothing for beanstalkd (its `delete` names one job).
    pub fn ack(self, out: &mut Vec<u8>, queue: &str, acks: &[u8], count: usize) {
        match self {
            Target::Beuss => {
                let _ = Request::Ack {
                    queue,
                    pairs: Pairs::Wire(acks),
                }
                .encode(out);
            }
            Target::Redis => {
                // The ids are kept as the bulk strings they arrived as.
                push_line(out, format_args!("*{}", 3 + count));
                for arg in [b"XACK".as_slice(), queue.as_bytes(), GROUP] {
                    push_line(out, format_args!("${}", arg.len()));
                    out.extend_from_slice(arg);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(acks);
            }
            Target::Beanstalkd => {}
        }
    }

    /// The entries of a [`Reply::Leased`]: for each, the bytes that name it in an
    /// acknowledgement (beuss's 12-byte `(id, attempt)` pair, Redis's entry id as a
    /// RESP bulk string) and its payload.
    pub fn leased(self, items: &[u8]) -> LeasedIter<'_> {
        LeasedIter {
            target: self,
            rest: items,
        }
    }

    /// Appends a request that takes the oldest message of `queue`, answering at once
    /// when `wait_s` is 0 or else waiting up to that many seconds for one.
    pub fn get(self, out: &mut Vec<u8>, queue: &str, wait_s: u32) {
        match self {
            Target::Beuss => {
                let _ = Request::Get {
                    queue,
                    wait_ms: wait_s.saturating_mul(1000),
                    max: 1,
                }
                .encode(out);
            }
            Target::Redis if wait_s == 0 => resp_command(out, &[b"RPOP", queue.as_bytes()]),
            Target::Redis => {
                let wait = wait_s.to_string();
                resp_command(out, &[b"BRPOP", queue.as_bytes(), wait.as_bytes()]);
            }
            Target::Beanstalkd => push_line(out, format_args!("reserve-with-timeout {wait_s}")),
        }
    }

    /// Appends beanstalkd's `delete` for a reserved job; false (nothing written) for
    /// the targets whose get already removed the message.
    pub fn delete(self, out: &mut Vec<u8>, id: u64) -> bool {
        if self != Target::Beanstalkd {
            return false;
        }
        push_line(out, format_args!("delete {id}"));
        true
    }

    /// Appends a cheap request answered by [`Reply::Ack`]: `PING`, or beanstalkd's
    /// `list-tube-used` (it has no ping).
    pub fn ping(self, out: &mut Vec<u8>) {
        match self {
            Target::Beuss => {
                let _ = Request::Ping.encode(out);
            }
            Target::Redis => resp_command(out, &[b"PING"]),
            Target::Beanstalkd => push_line(out, format_args!("list-tube-used")),
        }
    }

    /// Decodes the reply at the front of `buf`: `Ok(None)` until it is all there.
    ///
    /// # Errors
    /// The server's error reply, or bytes this decoder does not understand.
    pub fn decode(self, buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, String> {
        match self {
            Target::Beuss => decode_beuss(buf),
            Target::Redis => decode_redis(buf),
            Target::Beanstalkd => decode_beanstalkd(buf),
        }
    }
}

fn decode_beuss(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, String> {
    let Some((response, used)) =
        protocol::decode_response(buf, MAX_REPLY).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let reply = match response {
        Response::Leased(deliveries) => {
            // u32 length, u8 status, u32 count, then the entries.
            return Ok(Some((
                Reply::Leased {
                    count: deliveries.len(),
                    items: &buf[9..used],
                },
                used,
            )));
        }
        Response::Settled(settled) => {
            let count = |v: SettleResult| settled.raw().iter().filter(|&&b| b == v as u8).count();
            Reply::Settled {
                ok: count(SettleResult::Ok),
                stale: count(SettleResult::Stale),
                missing: settled.len() - count(SettleResult::Ok) - count(SettleResult::Stale),
            }
        }
        Response::Stored | Response::StoredId { .. } => Reply::Stored,
        Response::Empty => Reply::Empty,
        Response::Pong => Reply::Ack,
        Response::Messages(messages) if messages.len() == 1 => match messages.iter().next() {
            Some(payload) => Reply::Message { payload, id: 0 },
            None => return Err("MESSAGES reply without its message".to_owned()),
        },
        Response::Messages(messages) => {
            return Err(format!("asked for 1 message, got {}", messages.len()));
        }
        Response::Error { code, message, .. } => {
            return Err(format!("server error {code}: {message}"));
        }
        other => return Err(format!("unexpected reply {other:?}")),
    };
    Ok(Some((reply, used)))
}

/// Iterator over the entries of a [`Reply::Leased`]: `(ack bytes, payload)`.
#[derive(Debug, Clone)]
pub struct LeasedIter<'a> {
    target: Target,
    rest: &'a [u8],
}

impl<'a> Iterator for LeasedIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let rest = self.rest;
        let (ack, payload, used) = match self.target {
            Target::Beuss => {
                let len = u32::from_be_bytes(rest.get(12..16)?.try_into().ok()?) as usize;
                (rest.get(..12)?, rest.get(16..16 + len)?, 16 + len)
            }
            Target::Redis => {
                let (entry, payload) = stream_entry(rest).ok()??;
                (entry.ack, entry.payload, payload)
            }
            Target::Beanstalkd => return None,
        };
        self.rest = &rest[used..];
        Some((ack, payload))
    }
}

/// One stream entry of an `XREADGROUP` reply.
struct StreamEntry<'a> {
    /// The entry id as its bulk string, `$len\r\nid\r\n`.
    ack: &'a [u8],
    payload: &'a [u8],
}

/// The entry `*2 [id, *2 [field, value]]` at the front of `buf`, and the bytes it
/// takes: `Ok(None)` if incomplete.
fn stream_entry(buf: &[u8]) -> Result<Option<(StreamEntry<'_>, usize)>, String> {
    let expect_pair = |buf: &[u8]| -> Result<Option<usize>, String> {
        match line(buf) {
            None => Ok(None),
            Some((b"*2", used)) => Ok(Some(used)),
            Some((other, _)) => Err(format!(
                "expected a stream entry, got {:?}",
                String::from_utf8_lossy(other)
            )),
        }
    };
    let Some(mut at) = expect_pair(buf)? else {
        return Ok(None);
    };
    let Some((Some(_), id_used)) = resp_bulk(&buf[at..])? else {
        return Ok(None);
    };
    let ack = &buf[at..at + id_used];
    at += id_used;
    let Some(used) = expect_pair(&buf[at..])? else {
        return Ok(None);
    };
    at += used;
    let Some((_field, used)) = resp_bulk(&buf[at..])? else {
        return Ok(None);
    };
    at += used;
    let Some((value, used)) = resp_bulk(&buf[at..])? else {
        return Ok(None);
    };
    at += used;
    let payload = value.ok_or("a stream entry with a null value")?;
    Ok(Some((StreamEntry { ack, payload }, at)))
}

/// An `XREADGROUP` reply for one stream whose `*1` head took `used` bytes:
/// `[[stream, [entry...]]]`.
fn decode_xreadgroup(buf: &[u8], used: usize) -> Result<Option<(Reply<'_>, usize)>, String> {
    let mut at = used;
    match line(&buf[at..]) {
        None => return Ok(None),
        Some((b"*2", n)) => at += n,
        Some((other, _)) => {
            return Err(format!(
                "unexpected XREADGROUP reply {:?}",
                String::from_utf8_lossy(other)
            ));
        }
    }
    let Some((_stream, n)) = resp_bulk(&buf[at..])? else {
        return Ok(None);
    };
    at += n;
    let Some((head, n)) = line(&buf[at..]) else {
        return Ok(None);
    };
    if head.first() != Some(&b'*') {
        return Err("XREADGROUP: the entries are not an array".to_owned());
    }
    let count = number(&head[1..])?.max(0) as usize;
    at += n;
    let start = at;
    for _ in 0..count {
        let Some((_, n)) = stream_entry(&buf[at..])? else {
            return Ok(None);
        };
        at += n;
    }
    if count == 0 {
        return Ok(Some((Reply::Empty, at)));
    }
    Ok(Some((
        Reply::Leased {
            count,
            items: &buf[start..at],
        },
        at,
    )))
}

/// `n` in decimal, written into `buf` (which must be long enough).
fn decimal(mut n: u64, buf: &mut [u8]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Appends a RESP array of bulk strings.
pub fn resp_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_line(out, format_args!("*{}", args.len()));
    for arg in args {
        push_line(out, format_args!("${}", arg.len()));
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends a formatted line and its CRLF, with no allocation on the way: these run
/// once or more per request, on the same cores as the server being measured.
fn push_line(out: &mut Vec<u8>, line: std::fmt::Arguments<'_>) {
    // Writing into a Vec cannot fail.
    let _ = std::io::Write::write_fmt(out, line);
    out.extend_from_slice(b"\r\n");
}

/// The line at the front of `buf` without its CRLF, and the bytes it takes with it.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], end + 2))
}

fn number(text: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("bad number {:?}", String::from_utf8_lossy(text)))
}

/// A RESP bulk string at the front of `buf`: `Ok(None)` if incomplete, the payload
/// (`None` for the null bulk `$-1`) and the bytes used.
#[allow(clippy::type_complexity)]
fn resp_bulk(buf: &[u8]) -> Result<Option<(Option<&[u8]>, usize)>, String> {
    let Some((head, used)) = line(buf) else {
        return Ok(None);
    };
    if head.first() != Some(&b'$') {
        return Err(format!(
            "expected a bulk string, got {:?}",
            String::from_utf8_lossy(head)
        ));
    }
    let len = number(&head[1..])?;
    if len < 0 {
        return Ok(Some((None, used)));
    }
    let end = used + len as usize;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    Ok(Some((Some(&buf[used..end]), end + 2)))
}

fn decode_redis(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, String> {
    let Some((head, used)) = line(buf) else {
        return Ok(None);
    };
    let reply = match head.first() {
        Some(b':') => Reply::Count(number(&head[1..])?.max(0) as u64),
        Some(b'+') => Reply::Ack,
        Some(b'_') => Reply::Empty,
        Some(b'-') => return Err(String::from_utf8_lossy(head).into_owned()),
        Some(b'$') => {
            return Ok(resp_bulk(buf)?.map(|(bulk, used)| match bulk {
                Some(payload) => (Reply::Message { payload, id: 0 }, used),
                None => (Reply::Empty, used),
            }));
        }
        Some(b'*') => {
            // BRPOP: [key, value], or a null array when the wait ran out;
            // XREADGROUP: [[stream, [entry...]]], or a null array when none is new.
            if number(&head[1..])? < 0 {
                return Ok(Some((Reply::Empty, used)));
            }
            match buf.get(used) {
                None => return Ok(None),
                Some(b'*') => return decode_xreadgroup(buf, used),
                Some(_) => {}
            }
            let Some((_key, key_used)) = resp_bulk(&buf[used..])? else {
                return Ok(None);
            };
            let at = used + key_used;
            let Some((value, value_used)) = resp_bulk(&buf[at..])? else {
                return Ok(None);
            };
            let payload = value.ok_or("BRPOP returned a null value")?;
            return Ok(Some((Reply::Message { payload, id: 0 }, at + value_used)));
        }
        _ => {
            return Err(format!(
                "unexpected RESP reply {:?}",
                String::from_utf8_lossy(head)
            ));
        }
    };
    Ok(Some((reply, used)))
}

fn decode_beanstalkd(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, String> {
    let Some((head, used)) = line(buf) else {
        return Ok(None);
    };
    let mut words = head.split(|&b| b == b' ');
    let word = words.next().unwrap_or_default();
    let reply = match word {
        b"INSERTED" => Reply::Stored,
        b"TIMED_OUT" => Reply::Empty,
        b"DELETED" | b"USING" | b"WATCHING" => Reply::Ack,
        b"RESERVED" => {
            let id = number(words.next().unwrap_or_default())? as u64;
            let len = number(words.next().unwrap_or_default())? as usize;
            let end = used + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            return Ok(Some((
                Reply::Message {
                    payload: &buf[used..end],
                    id,
                },
                end + 2,
            )));
        }
        _ => {
            return Err(format!(
                "beanstalkd replied {:?}",
                String::from_utf8_lossy(head)
            ));
        }
    };
    Ok(Some((reply, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each target's replies decode to the same few meanings, and only once whole.
    #[test]
    fn replies_decode_only_when_complete() {
        let cases: &[(Target, &[u8], Reply<'_>)] = &[
            (Target::Redis, b":12\r\n", Reply::Count(12)),
            (
                Target::Redis,
                b"$3\r\nabc\r\n",
                Reply::Message {
                    payload: b"abc",
                    id: 0,
                },
            ),
            (Target::Redis, b"$-1\r\n", Reply::Empty),
            (
                Target::Redis,
                b"*2\r\n$1\r\nq\r\n$2\r\nhi\r\n",
                Reply::Message {
                    payload: b"hi",
                    id: 0,
                },
            ),
            (Target::Redis, b"*-1\r\n", Reply::Empty),
            (Target::Beanstalkd, b"INSERTED 7\r\n", Reply::Stored),
            (
                Target::Beanstalkd,
                b"RESERVED 7 2\r\nhi\r\n",
                Reply::Message {
                    payload: b"hi",
                    id: 7,
                },
            ),
            (Target::Beanstalkd, b"TIMED_OUT\r\n", Reply::Empty),
            (Target::Beuss, &[0, 0, 0, 1, 0x10], Reply::Stored),
        ];
        for (target, bytes, want) in cases {
            for cut in 0..bytes.len() {
                assert_eq!(
                    target.decode(&bytes[..cut]),
                    Ok(None),
                    "{bytes:?} cut {cut}"
                );
            }
            assert_eq!(target.decode(bytes), Ok(Some((*want, bytes.len()))));
        }
        assert!(Target::Redis.decode(b"-ERR nope\r\n").is_err());
    }

    /// A leased batch decodes only once whole, and its entries give the bytes that
    /// acknowledge them and their payloads.
    #[test]
    fn leased_batches_decode_with_their_acks() {
        let id = b"$3\r\n1-0\r\n";
        let mut redis = b"*1\r\n*2\r\n$1\r\nq\r\n*1\r\n*2\r\n".to_vec();
        redis.extend_from_slice(id);
        redis.extend_from_slice(b"*2\r\n$1\r\np\r\n$2\r\nhi\r\n");
        let mut beuss = vec![0, 0, 0, 23, 0x15, 0, 0, 0, 1];
        beuss.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2]);
        beuss.extend_from_slice(b"hi");
        for (target, bytes, ack) in [
            (Target::Redis, &redis, id.as_slice()),
            (Target::Beuss, &beuss, &beuss[9..21]),
        ] {
            for cut in 0..bytes.len() {
                assert_eq!(
                    target.decode(&bytes[..cut]),
                    Ok(None),
                    "{target:?} cut {cut}"
                );
            }
            let Ok(Some((Reply::Leased { count: 1, items }, used))) = target.decode(bytes) else {
                panic!("{target:?}: not a batch of one");
            };
            assert_eq!(used, bytes.len());
            let entries: Vec<_> = target.leased(items).collect();
            assert_eq!(entries, [(ack, b"hi".as_slice())]);
        }
        assert_eq!(
            Target::Redis.decode(b"*-1\r\n"),
            Ok(Some((Reply::Empty, 5)))
        );
        assert!(Target::Beanstalkd.decode(b"OUT_OF_MEMORY\r\n").is_err());
    }
}
