//! The NATS core text protocol, as much of it as `beuss-bench`'s fan-out tests speak:
//! `CONNECT`, `SUB`, `PUB` (with a reply subject for request/reply), `PING`/`PONG`
//! from the client; `INFO`, `MSG`, `PING`, `PONG`, `+OK` and `-ERR` from the server.
//!
//! Written out by hand, like the Redis and beanstalkd codecs in `wire.rs`: encoders
//! append to an output buffer without allocating, and the decoder reads one server
//! operation from the front of the input buffer, saying how many bytes it used.
//! Headers (`HPUB`/`HMSG`) are never asked for, so an `HMSG` is an error.

use std::io::Write as _;

/// The port `nats-server` listens on by default.
pub const DEFAULT_PORT: u16 = 4222;

/// One operation from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// `INFO {...}`: sent on connect (and when the cluster changes).
    Info,
    /// `MSG <subject> <sid> [reply-to] <#bytes>` and its payload.
    Msg {
        /// The subject it was published to.
        subject: &'a [u8],
        /// The subscription it matched.
        sid: u64,
        /// The reply subject a request carries.
        reply: Option<&'a [u8]>,
        /// The message bytes.
        payload: &'a [u8],
    },
    /// `PING`: the server checks the client is alive; answer `PONG`.
    Ping,
    /// `PONG`: the answer to the client's `PING`; everything sent before it is done.
    Pong,
    /// `+OK` (only in verbose mode, which the benchmark turns off).
    Ok,
}

/// Appends the `CONNECT` a fresh connection sends after the server's `INFO`:
/// not verbose (no `+OK` per request), and the client does not get its own
/// messages back.
pub fn connect(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\
          \"name\":\"beuss-bench\",\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1,\
          \"echo\":false}\r\n",
    );
}

/// Appends `SUB <subject> <sid>`.
pub fn sub(out: &mut Vec<u8>, subject: &[u8], sid: u64) {
    out.extend_from_slice(b"SUB ");
    out.extend_from_slice(subject);
    let _ = write!(out, " {sid}\r\n");
}

/// Appends `PUB <subject> [reply-to] <#bytes>` and the payload.
pub fn publish(out: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    if let Some(reply) = reply {
        out.push(b' ');
        out.extend_from_slice(reply);
    }
    let _ = write!(out, " {}\r\n", payload.len());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Appends `PING`.
pub fn ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

/// Appends `PONG`, the answer to the server's `PING`.
pub fn pong(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PONG\r\n");
}

/// Decodes the operation at the front of `buf`: `Ok(None)` until it is all there.
///
/// # Errors
/// The server's `-ERR`, or bytes this decoder does not understand.
pub fn decode(buf: &[u8]) -> Result<Option<(Op<'_>, usize)>, String> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[..end];
    let used = end + 2;
    let mut words = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let verb = words.next().unwrap_or_default();
    let op = if verb.eq_ignore_ascii_case(b"MSG") {
        let args: [Option<&[u8]>; 4] = [words.next(), words.next(), words.next(), words.next()];
        let (subject, sid, reply, len) = match args {
            [Some(s), Some(sid), Some(len), None] => (s, sid, None, len),
            [Some(s), Some(sid), Some(reply), Some(len)] => (s, sid, Some(reply), len),
            _ => return Err(format!("bad MSG line {:?}", String::from_utf8_lossy(line))),
        };
        let sid = number(sid)?;
        let len = number(len)? as usize;
        let stop = used + len;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err("a MSG payload not followed by CRLF".to_owned());
        }
        return Ok(Some((
            Op::Msg {
                subject,
                sid,
                reply,
                payload: &buf[used..stop],
            },
            stop + 2,
        )));
    } else if verb.eq_ignore_ascii_case(b"PING") {
        Op::Ping
    } else if verb.eq_ignore_ascii_case(b"PONG") {
        Op::Pong
    } else if verb.eq_ignore_ascii_case(b"INFO") {
        Op::Info
    } else if verb.eq_ignore_ascii_case(b"+OK") {
        Op::Ok
    } else {
        return Err(format!(
            "nats-server said {:?}",
            String::from_utf8_lossy(line)
        ));
    };
    Ok(Some((op, used)))
}

fn number(text: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            format!(
                "bad number {:?} from nats-server",
                String::from_utf8_lossy(text)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every server operation decodes only once whole, `MSG` with and without a
    /// reply subject; an error line is an error.
    #[test]
    fn operations_decode_only_when_complete() {
        let cases: &[(&[u8], Op<'_>)] = &[
            (b"INFO {\"server_id\":\"x\"}\r\n", Op::Info),
            (b"PING\r\n", Op::Ping),
            (b"PONG\r\n", Op::Pong),
            (b"+OK\r\n", Op::Ok),
            (
                b"MSG a.b 7 2\r\nhi\r\n",
                Op::Msg {
                    subject: b"a.b",
                    sid: 7,
                    reply: None,
                    payload: b"hi",
                },
            ),
            (
                b"MSG svc 1 _INBOX.3.9 0\r\n\r\n",
                Op::Msg {
                    subject: b"svc",
                    sid: 1,
                    reply: Some(b"_INBOX.3.9"),
                    payload: b"",
                },
            ),
        ];
        for (bytes, want) in cases {
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "{bytes:?} cut {cut}");
            }
            assert_eq!(decode(bytes), Ok(Some((*want, bytes.len()))));
        }
        assert!(decode(b"-ERR 'Unknown Protocol Operation'\r\n").is_err());
        assert!(decode(b"MSG a 1\r\n").is_err());
        assert!(decode(b"MSG a 1 2\r\nhiXX").is_err());
    }

    /// Requests come out as the protocol writes them.
    #[test]
    fn requests_encode_as_documented() {
        let mut out = Vec::new();
        sub(&mut out, b"_INBOX.3.*", 2);
        publish(&mut out, b"svc", Some(b"_INBOX.3.9"), b"hi");
        publish(&mut out, b"a.b", None, b"");
        ping(&mut out);
        pong(&mut out);
        assert_eq!(
            out,
            b"SUB _INBOX.3.* 2\r\nPUB svc _INBOX.3.9 2\r\nhi\r\nPUB a.b 0\r\n\r\nPING\r\nPONG\r\n"
        );
    }
}
