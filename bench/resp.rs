//! The Redis replies of `beuss-bench`'s fan-out tests (RESP2), decoded without
//! allocating: a pub/sub `message` push, the replies of a `MULTI` ... `EXEC`
//! transaction, and `BLMPOP ... COUNT n`'s batch. Requests are encoded by
//! `wire::resp_command`. As in `wire.rs`, anything unexpected is an error, never a
//! guess.

/// The line at the front of `buf` without its CRLF, and the bytes it takes with it.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], end + 2))
}

fn number(text: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("bad number {:?} from Redis", String::from_utf8_lossy(text)))
}

/// Skips the whole value at the front of `buf` (an array with everything in it):
/// `Ok(None)` until it is all there, else its type byte, the number in its head
/// line (an integer's value, an array's or bulk string's length; 0 for a simple
/// string) and the bytes it takes.
///
/// # Errors
/// An error reply (`-...`), or bytes that are not RESP.
pub fn skip(buf: &[u8]) -> Result<Option<(u8, i64, usize)>, String> {
    let Some((head, mut used)) = line(buf) else {
        return Ok(None);
    };
    let kind = head.first().copied().unwrap_or(0);
    let n = match kind {
        b'+' => 0,
        b':' => number(&head[1..])?,
        b'$' => {
            let len = number(&head[1..])?;
            if len >= 0 {
                used += len as usize + 2;
                if buf.len() < used {
                    return Ok(None);
                }
            }
            len
        }
        b'*' => {
            let len = number(&head[1..])?;
            for _ in 0..len.max(0) {
                let Some((_, _, n)) = skip(&buf[used..])? else {
                    return Ok(None);
                };
                used += n;
            }
            len
        }
        b'-' => return Err(format!("Redis: {}", String::from_utf8_lossy(head))),
        _ => {
            return Err(format!(
                "unexpected RESP reply {:?}",
                String::from_utf8_lossy(head)
            ));
        }
    };
    Ok(Some((kind, n, used)))
}

/// The bulk string at the front of `buf` (`None` for the null bulk) and the bytes
/// it takes; `Ok(None)` if incomplete.
#[allow(clippy::type_complexity)]
fn bulk(buf: &[u8]) -> Result<Option<(Option<&[u8]>, usize)>, String> {
    match skip(buf)? {
        None => Ok(None),
        Some((b'$', len, used)) if len < 0 => Ok(Some((None, used))),
        Some((b'$', len, used)) => Ok(Some((Some(&buf[used - 2 - len as usize..used - 2]), used))),
        Some((kind, _, _)) => Err(format!(
            "expected a bulk string from Redis, got a {:?} reply",
            kind as char
        )),
    }
}

/// A pub/sub push `["message", channel, payload]` at the front of `buf`: its payload
/// and the bytes it takes; `Ok(None)` if incomplete.
///
/// # Errors
/// Another push or reply, or bytes that are not RESP.
pub fn message(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    let Some((head, mut at)) = line(buf) else {
        return Ok(None);
    };
    if head != b"*3" {
        return Err(format!(
            "expected a pub/sub message, got {:?}",
            String::from_utf8_lossy(head)
        ));
    }
    let mut parts = [None; 3];
    for part in &mut parts {
        let Some((value, used)) = bulk(&buf[at..])? else {
            return Ok(None);
        };
        *part = value;
        at += used;
    }
    match parts {
        [Some(b"message"), Some(_), Some(payload)] => Ok(Some((payload, at))),
        _ => Err("a pub/sub push that is not a message".to_owned()),
    }
}

/// What `BLMPOP ... COUNT n` answered: the bulk strings it popped, end to end, and
/// how many; none when its wait ran out (a null array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Popped<'a> {
    /// Elements popped.
    pub count: usize,
    items: &'a [u8],
}

impl<'a> Popped<'a> {
    /// The popped elements, in the order they were popped.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || {
            let (value, used) = bulk(rest).ok()??;
            rest = &rest[used..];
            value
        })
    }
}

/// The `BLMPOP` reply at the front of `buf`: `[key, [element...]]`, or a null array
/// when nothing came; `Ok(None)` if incomplete.
///
/// # Errors
/// Another reply, or bytes that are not RESP.
pub fn popped(buf: &[u8]) -> Result<Option<(Popped<'_>, usize)>, String> {
    let Some((head, mut at)) = line(buf) else {
        return Ok(None);
    };
    match head {
        b"*-1" => {
            return Ok(Some((
                Popped {
                    count: 0,
                    items: &[],
                },
                at,
            )));
        }
        b"*2" => {}
        other => {
            return Err(format!(
                "unexpected BLMPOP reply {:?}",
                String::from_utf8_lossy(other)
            ));
        }
    }
    let Some((Some(_key), used)) = bulk(&buf[at..])? else {
        return Ok(None);
    };
    at += used;
    let Some((kind, count, used)) = skip(&buf[at..])? else {
        return Ok(None);
    };
    if kind != b'*' || count < 0 {
        return Err("BLMPOP: the elements are not an array".to_owned());
    }
    let head_len = line(&buf[at..]).map_or(0, |(_, n)| n);
    let items = &buf[at + head_len..at + used];
    Ok(Some((
        Popped {
            count: count as usize,
            items,
        },
        at + used,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A push, a transaction's replies and a popped batch each decode only once
    /// whole, and give what they hold.
    #[test]
    fn replies_decode_only_when_complete() {
        let push = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n";
        let exec = b"*2\r\n:1\r\n:4\r\n";
        let pop = b"*2\r\n$1\r\nq\r\n*2\r\n$1\r\na\r\n$2\r\nbc\r\n";
        for cut in 0..pop.len() {
            assert_eq!(message(&push[..cut.min(push.len() - 1)]), Ok(None));
            assert_eq!(skip(&exec[..cut.min(exec.len() - 1)]), Ok(None));
            assert_eq!(popped(&pop[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(message(push), Ok(Some((b"hi".as_slice(), push.len()))));
        assert_eq!(skip(exec), Ok(Some((b'*', 2, exec.len()))));
        assert_eq!(skip(b"+QUEUED\r\n"), Ok(Some((b'+', 0, 9))));
        let Ok(Some((batch, used))) = popped(pop) else {
            panic!("no batch");
        };
        assert_eq!(used, pop.len());
        assert_eq!(batch.count, 2);
        assert_eq!(batch.iter().collect::<Vec<_>>(), [b"a".as_slice(), b"bc"]);
        assert_eq!(
            popped(b"*-1\r\n").map(|r| r.map(|(p, _)| p.count)),
            Ok(Some(0))
        );
        assert!(skip(b"-ERR no\r\n").is_err());
        assert!(message(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n$1\r\nx\r\n").is_err());
    }
}
