//! The wire contract byte for byte: raw `TcpStream`s send hand-built frames and check
//! the exact reply bytes `protocol.md` documents, including how the server reassembles
//! split and coalesced frames and how it treats broken ones.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;

/// Queue used by the "bystander" messages that malformed requests must not touch.
const HELD: &[u8] = b"held";

/// The examples of protocol.md section 10 replay exactly.
#[test]
fn documented_examples_replay_byte_for_byte() {
    let server = TestServer::start();
    let mut s = server.raw();

    // 10.1 PING / PONG
    assert_eq!(call(&mut s, &[0, 0, 0, 2, 0x02, 0]), PONG);
    // 10.2 PUT "hello" to "jobs" / STORED
    let put_hello = [
        0x00, 0x00, 0x00, 0x0c, 0x10, 0x00, 0x04, 0x6a, 0x6f, 0x62, 0x73, 0x68, 0x65, 0x6c, 0x6c,
        0x6f,
    ];
    assert_eq!(call(&mut s, &put_hello), [0, 0, 0, 1, 0x10]);
    // 10.3 GET "jobs" wait 0 max 1 / MESSAGES "hello"
    let get_jobs = [
        0x00, 0x00, 0x00, 0x0d, 0x11, 0x00, 0x04, 0x6a, 0x6f, 0x62, 0x73, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01,
    ];
    assert_eq!(
        call(&mut s, &get_jobs),
        [
            0x00, 0x00, 0x00, 0x0e, 0x12, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x68,
            0x65, 0x6c, 0x6c, 0x6f
        ]
    );
    // Two messages "one" and "two!" in one reply (max 10).
    send(&mut s, &put_frame(b"jobs", b"one"));
    assert_eq!(read_frame(&mut s), STORED);
    send(&mut s, &put_frame(b"jobs", b"two!"));
    assert_eq!(read_frame(&mut s), STORED);
    assert_eq!(
        call(&mut s, &get_frame(b"jobs", 0, 10)),
        [
            0x00, 0x00, 0x00, 0x14, 0x12, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x6f,
            0x6e, 0x65, 0x00, 0x00, 0x00, 0x04, 0x74, 0x77, 0x6f, 0x21
        ]
    );
    // 10.4 EMPTY
    assert_eq!(call(&mut s, &get_jobs), [0, 0, 0, 1, 0x13]);
    // 10.7 HELLO: version 1, max_message_size 1 MiB (the default), then a server string.
    let hello = call(&mut s, &[0, 0, 0, 4, 0x01, 0, 0, 1]);
    assert_eq!(hello[4..11], [0x02, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00]);
    let server_len = hello[11] as usize;
    assert_eq!(hello.len(), 12 + server_len, "HELLO length adds up");
    assert_eq!(&hello[..4], &((8 + server_len) as u32).to_be_bytes());
    assert!(
        std::str::from_utf8(&hello[12..])
            .unwrap()
            .starts_with("beuss")
    );
    // 10.8 PURGED 3
    for m in [&b"a"[..], b"b", b"c"] {
        assert_eq!(call(&mut s, &put_frame(b"jobs", m)), STORED);
    }
    assert_eq!(
        call(
            &mut s,
            &[0, 0, 0, 0x07, 0x12, 0, 0x04, 0x6a, 0x6f, 0x62, 0x73]
        ),
        [0, 0, 0, 0x09, 0x14, 0, 0, 0, 0, 0, 0, 0, 0x03]
    );
    // STATS "jobs": layout of section 6, one queue entry named "jobs".
    let stats = call(
        &mut s,
        &[0, 0, 0, 0x07, 0x20, 0, 0x04, 0x6a, 0x6f, 0x62, 0x73],
    );
    let report = parse_stats(&stats);
    assert_eq!(report.queues.len(), 1);
    assert_eq!(report.queues[0].0, "jobs");
    assert_eq!(report.queue_figure("jobs", "messages"), 0);
    assert_eq!(report.server_figure("puts"), 6);
    // 10.8 QUIT / BYE, then the server closes.
    assert_eq!(call(&mut s, &[0, 0, 0, 2, 0x03, 0]), BYE);
    expect_closed(&mut s);
}

/// A STATS reply decoded by hand, following section 6 exactly (every length must add up).
struct RawStats {
    server: Vec<(String, u64)>,
    queues: Vec<(String, Vec<(String, u64)>)>,
}

impl RawStats {
    fn server_figure(&self, name: &str) -> u64 {
        self.server
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no server figure {name}"))
            .1
    }

    fn queue_figure(&self, queue: &str, name: &str) -> u64 {
        let (_, fields) = self.queues.iter().find(|(q, _)| q == queue).unwrap();
        fields.iter().find(|(k, _)| k == name).unwrap().1
    }
}

fn parse_stats(frame: &[u8]) -> RawStats {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
        assert!(rest.len() >= n, "STATS field runs past the frame");
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        head
    }
    fn fields(rest: &mut &[u8]) -> Vec<(String, u64)> {
        let n = u16::from_be_bytes(take(rest, 2).try_into().unwrap());
        (0..n)
            .map(|_| {
                let len = take(rest, 1)[0] as usize;
                let name = String::from_utf8(take(rest, len).to_vec()).unwrap();
                let value = u64::from_be_bytes(take(rest, 8).try_into().unwrap());
                (name, value)
            })
            .collect()
    }
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len + 4, frame.len());
    assert_eq!(frame[4], 0x20, "status STATS");
    let mut rest = &frame[5..];
    let server = fields(&mut rest);
    let n = u32::from_be_bytes(take(&mut rest, 4).try_into().unwrap());
    let queues = (0..n)
        .map(|_| {
            let len = take(&mut rest, 1)[0] as usize;
            let name = String::from_utf8(take(&mut rest, len).to_vec()).unwrap();
            (name, fields(&mut rest))
        })
        .collect();
    assert!(rest.is_empty(), "STATS has {} bytes left over", rest.len());
    RawStats { server, queues }
}

/// Every server and queue figure section 6 lists is in a STATS reply, once.
#[test]
fn stats_lists_every_documented_figure() {
    let server = TestServer::start();
    let mut s = server.raw();
    assert_eq!(call(&mut s, &put_frame(b"q", b"x")), STORED);
    let report = parse_stats(&call(&mut s, &stats_frame(b"")));
    for name in [
        "uptime_seconds",
        "connections",
        "connections_total",
        "connections_rejected",
        "queues",
        "messages",
        "bytes",
        "memory",
        "max_memory",
        "max_message_size",
        "waiters",
        "puts",
        "gets",
        "truncations",
        "rejected_full",
        "purged",
        "expired_queues",
        "protocol_errors",
    ] {
        let n = report.server.iter().filter(|(k, _)| k == name).count();
        assert_eq!(n, 1, "server figure {name}");
    }
    assert_eq!(report.queues.len(), 1);
    for name in [
        "messages",
        "bytes",
        "memory",
        "puts",
        "gets",
        "truncations",
        "waiters",
        "idle_ms",
    ] {
        let n = report.queues[0].1.iter().filter(|(k, _)| k == name).count();
        assert_eq!(n, 1, "queue figure {name}");
    }
    assert_eq!(report.server_figure("max_message_size"), 1 << 20);
    assert_eq!(report.server_figure("max_memory"), 256 << 20);
    assert_eq!(report.server_figure("connections"), 1);
}

/// A frame written one byte at a time, each byte its own segment, is reassembled.
#[test]
fn frame_written_one_byte_at_a_time() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = put_frame(b"jobs", b"slowly, byte by byte");
    bytes.extend(get_frame(b"jobs", 0, 1));
    bytes.extend(ping_frame());
    for byte in &bytes {
        s.write_all(std::slice::from_ref(byte)).unwrap();
        s.flush().unwrap();
    }
    assert_eq!(read_frame(&mut s), STORED);
    assert_eq!(
        read_frame(&mut s),
        messages_reply(&[b"slowly, byte by byte"])
    );
    assert_eq!(read_frame(&mut s), PONG);
}

/// 1,000 frames in one write get 1,000 replies, in request order.
#[test]
fn thousand_frames_in_one_write() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for i in 0..500 {
        bytes.extend(put_frame(b"q", format!("message {i}").as_bytes()));
        bytes.extend(get_frame(b"q", 0, 1));
    }
    send(&mut s, &bytes);
    for i in 0..500 {
        assert_eq!(read_frame(&mut s), STORED, "reply to PUT {i}");
        assert_eq!(
            read_frame(&mut s),
            messages_reply(&[format!("message {i}").as_bytes()]),
            "reply to GET {i}"
        );
    }
    assert_eq!(call(&mut s, &get_frame(b"q", 0, 1)), EMPTY);
}

/// Two whole frames and the first half of a third in one packet, the rest later.
#[test]
fn two_and_a_half_frames_in_one_packet() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = ping_frame();
    bytes.extend(put_frame(b"q", b"first"));
    let third = put_frame(b"q", b"second");
    bytes.extend(&third[..7]);
    send(&mut s, &bytes);
    assert_eq!(read_frame(&mut s), PONG);
    assert_eq!(read_frame(&mut s), STORED);
    send(&mut s, &third[7..]);
    assert_eq!(read_frame(&mut s), STORED);
    assert_eq!(
        call(&mut s, &get_frame(b"q", 0, 10)),
        messages_reply(&[b"first", b"second"])
    );
}

/// Half a PUT then a disconnect stores nothing, for a small and for an oversized
/// (streamed) PUT, and the server goes on serving.
#[test]
fn half_frame_then_disconnect_stores_nothing() {
    let server = TestServer::start();
    {
        let mut small = server.raw();
        let frame = put_frame(b"small", &[7u8; 100]);
        send(&mut small, &frame[..frame.len() - 50]);
        let mut big = server.raw();
        send(&mut big, &put_head(b"big", 50_000));
        send(&mut big, &[9u8; 20_000]);
        // Both sockets close here, their PUTs unfinished.
    }
    server.wait_for_stat("connections", 1);
    let mut c = server.client();
    let stats = c.stats().unwrap();
    assert_eq!(stats.get("messages"), Some(0));
    assert_eq!(stats.get("puts"), Some(0));
    assert_eq!(stats.get("queues"), Some(0));
    assert_eq!(c.get("small").unwrap(), None);
    assert_eq!(c.get("big").unwrap(), None);
    c.put("after", b"still serving").unwrap();
    assert_eq!(
        c.get("after").unwrap().as_deref(),
        Some(&b"still serving"[..])
    );
}

/// One malformed request: the bytes sent, and the error code expected.
struct BadCase {
    name: &'static str,
    bytes: Vec<u8>,
    code: u16,
    /// Whether the bytes are a whole frame; when they are, a valid PUT is sent right
    /// behind them to check that requests after a fatal error are never processed.
    whole: bool,
}

fn bad_cases() -> Vec<BadCase> {
    let mut non_utf8_get = vec![2, 0xff, 0xfe];
    non_utf8_get.extend_from_slice(&0u32.to_be_bytes());
    non_utf8_get.extend_from_slice(&1u16.to_be_bytes());
    let mut trailing_get = get_frame(b"q", 0, 1);
    trailing_get[3] += 1;
    trailing_get.push(0);
    vec![
        BadCase {
            name: "unknown opcode 0x2f",
            bytes: vec![0, 0, 0, 2, 0x2f, 0],
            code: 2,
            whole: true,
        },
        BadCase {
            name: "unknown opcode, checked from the first 5 bytes",
            bytes: vec![0, 0, 0x10, 0, 0x55],
            code: 2,
            whole: false,
        },
        BadCase {
            name: "frame length 1",
            bytes: vec![0, 0, 0, 1, 0x02],
            code: 1,
            whole: false,
        },
        BadCase {
            name: "frame length 0",
            bytes: vec![0, 0, 0, 0],
            code: 1,
            whole: false,
        },
        BadCase {
            name: "control frame declaring 1025 bytes (not sent)",
            bytes: vec![0, 0, 0x04, 0x01, 0x02, 0],
            code: 4,
            whole: false,
        },
        BadCase {
            name: "GET declaring 4 GiB (not sent)",
            bytes: vec![0xff, 0xff, 0xff, 0xff, 0x11, 0],
            code: 4,
            whole: false,
        },
        BadCase {
            name: "nonzero flags on PING",
            bytes: vec![0, 0, 0, 2, 0x02, 0x01],
            code: 5,
            whole: true,
        },
        BadCase {
            name: "nonzero flags on PUT",
            bytes: vec![0, 0, 0, 5, 0x10, 0x80, 1, b'q', b'x'],
            code: 5,
            whole: true,
        },
        BadCase {
            name: "PUT with an empty queue name",
            bytes: put_frame(b"", b"payload"),
            code: 3,
            whole: true,
        },
        BadCase {
            name: "GET with an empty queue name",
            bytes: get_frame(b"", 0, 1),
            code: 3,
            whole: true,
        },
        BadCase {
            name: "PURGE with an empty queue name",
            bytes: request_frame(0x12, &[0]),
            code: 3,
            whole: true,
        },
        BadCase {
            name: "PUT with a non-UTF-8 queue name",
            bytes: put_frame(&[0xff, 0xfe], b"payload"),
            code: 3,
            whole: true,
        },
        BadCase {
            name: "GET with a non-UTF-8 queue name",
            bytes: request_frame(0x11, &non_utf8_get),
            code: 3,
            whole: true,
        },
        BadCase {
            name: "STATS with a non-UTF-8 queue name",
            bytes: stats_frame(&[0xc3]),
            code: 3,
            whole: true,
        },
        BadCase {
            name: "oversized PUT head with a bad name (payload never sent)",
            bytes: put_head(&[0x80], 1_000_000),
            code: 3,
            whole: false,
        },
        BadCase {
            name: "PUT whose queue_len runs past the frame",
            bytes: vec![0, 0, 0, 5, 0x10, 0, 10, b'a', b'b'],
            code: 1,
            whole: true,
        },
        BadCase {
            name: "PUT with no queue_len byte",
            bytes: vec![0, 0, 0, 2, 0x10, 0],
            code: 1,
            whole: true,
        },
        BadCase {
            name: "GET whose queue_len runs past the frame",
            bytes: vec![0, 0, 0, 5, 0x11, 0, 10, b'a', b'b'],
            code: 1,
            whole: true,
        },
        BadCase {
            name: "GET missing its max field",
            bytes: request_frame(0x11, &[1, b'q', 0, 0, 0, 0]),
            code: 1,
            whole: true,
        },
        BadCase {
            name: "STATS of length 2 (no queue_len byte)",
            bytes: vec![0, 0, 0, 2, 0x20, 0],
            code: 1,
            whole: true,
        },
        BadCase {
            name: "PING with a trailing byte",
            bytes: vec![0, 0, 0, 3, 0x02, 0, 0],
            code: 1,
            whole: true,
        },
        BadCase {
            name: "GET with a trailing byte",
            bytes: trailing_get,
            code: 1,
            whole: true,
        },
        BadCase {
            name: "HELLO with a trailing byte",
            bytes: vec![0, 0, 0, 5, 0x01, 0, 0, 1, 0],
            code: 1,
            whole: true,
        },
        BadCase {
            name: "GET max 0",
            bytes: get_frame(b"q", 0, 0),
            code: 6,
            whole: true,
        },
        BadCase {
            name: "HELLO version 0",
            bytes: vec![0, 0, 0, 4, 0x01, 0, 0, 0],
            code: 9,
            whole: true,
        },
    ]
}

/// Each malformed frame gets a fatal ERROR with the documented code, then the
/// connection closes; requests sent behind it are never processed; a client connected
/// before, one connected after, and the messages held are unaffected.
#[test]
fn malformed_frames_get_fatal_errors_and_harm_no_one_else() {
    let server = TestServer::start();
    let mut before = server.raw();
    for i in 0..3u8 {
        assert_eq!(call(&mut before, &put_frame(HELD, &[i])), STORED);
    }
    let cases = bad_cases();
    for case in &cases {
        let mut bad = server.raw();
        let mut bytes = case.bytes.clone();
        if case.whole {
            bytes.extend(put_frame(b"victim", b"must not be stored"));
        }
        send(&mut bad, &bytes);
        let frame = read_frame(&mut bad);
        let (code, fatal, text) = parse_error(&frame);
        assert_eq!(code, case.code, "{}: error code (text {text:?})", case.name);
        assert_eq!(fatal, 1, "{}: fatal byte", case.name);
        assert!(!text.is_empty(), "{}: error text", case.name);
        expect_closed(&mut bad);

        assert_eq!(call(&mut before, &ping_frame()), PONG, "{}", case.name);
        let mut after = server.raw();
        assert_eq!(call(&mut after, &ping_frame()), PONG, "{}", case.name);
    }
    let mut c = server.client();
    let stats = c.stats().unwrap();
    assert_eq!(
        stats.queue("victim"),
        None,
        "a request behind a fatal one ran"
    );
    assert_eq!(stats.get("messages"), Some(3));
    assert_eq!(stats.get("protocol_errors"), Some(cases.len() as u64));
    assert_eq!(
        call(&mut before, &get_frame(HELD, 0, 10)),
        messages_reply(&[&[0], &[1], &[2]])
    );
}

/// The unknown-opcode ERROR of section 10.6 is exactly the documented frame.
#[test]
fn unknown_opcode_error_is_the_documented_frame() {
    let server = TestServer::start();
    let mut s = server.raw();
    send(&mut s, &[0x00, 0x00, 0x00, 0x02, 0x2f, 0x00]);
    let mut expected = vec![0x00, 0x00, 0x00, 0x17, 0x7f, 0x00, 0x02, 0x01];
    expected.extend_from_slice(b"unknown opcode 0x2f");
    assert_eq!(read_frame(&mut s), expected);
    expect_closed(&mut s);
}

/// Replies to requests before a malformed one are all sent, in order, before its ERROR.
#[test]
fn replies_before_a_fatal_error_are_delivered_first() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = put_frame(b"q", b"kept");
    bytes.extend(ping_frame());
    bytes.extend([0, 0, 0, 2, 0x02, 0x04]); // bad flags
    bytes.extend(ping_frame());
    send(&mut s, &bytes);
    assert_eq!(read_frame(&mut s), STORED);
    assert_eq!(read_frame(&mut s), PONG);
    expect_fatal_error(&mut s, 5);
    let mut c = server.client();
    assert_eq!(c.get("q").unwrap().as_deref(), Some(&b"kept"[..]));
}

/// An HTTP request line gets a fatal ERROR and a close, not a hang.
#[test]
fn http_request_gets_an_error_not_a_hang() {
    let server = TestServer::start();
    let mut s = server.raw();
    send(&mut s, b"GET / HTTP/1.1\r\n\r\n");
    // "GET " is a length of ~1.1 GB, then opcode '/' (0x2f): unknown.
    let text = expect_fatal_error(&mut s, 2);
    assert!(text.contains("0x2f"), "{text}");
    let mut c = server.client();
    c.ping().unwrap();
}

/// QUIT gets BYE, then the server closes; requests sent behind QUIT are ignored.
#[test]
fn quit_gets_bye_then_close() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = ping_frame();
    bytes.extend(quit_frame());
    bytes.extend(put_frame(b"late", b"after QUIT"));
    send(&mut s, &bytes);
    assert_eq!(read_frame(&mut s), PONG);
    assert_eq!(read_frame(&mut s), BYE);
    expect_closed(&mut s);
    let mut c = server.client();
    assert_eq!(c.queue_stats("late").unwrap(), None);
    assert_eq!(stat_of(&mut c, "protocol_errors"), 0);
}

/// Requests pipelined behind a parked GET wait for it and are answered after it,
/// in order.
#[test]
fn requests_behind_a_parked_get_are_answered_after_it() {
    let server = TestServer::start();
    let mut consumer = server.raw();
    let mut bytes = get_frame(b"jobs", 2000, 10);
    bytes.extend(ping_frame());
    bytes.extend(get_frame(b"jobs", 0, 1));
    bytes.extend(ping_frame());
    send(&mut consumer, &bytes);
    server.wait_for_stat("waiters", 1);

    let mut producer = server.raw();
    assert_eq!(call(&mut producer, &put_frame(b"jobs", b"hello")), STORED);
    // Exactly one message, whatever max was.
    assert_eq!(read_frame(&mut consumer), messages_reply(&[b"hello"]));
    assert_eq!(read_frame(&mut consumer), PONG);
    assert_eq!(read_frame(&mut consumer), EMPTY);
    assert_eq!(read_frame(&mut consumer), PONG);
}

/// A parked GET whose wait runs out is answered EMPTY, then the requests behind it.
#[test]
fn parked_get_times_out_with_empty_then_pipelined_requests_run() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = get_frame(b"q", 30, 1);
    bytes.extend(put_frame(b"q", b"mine"));
    bytes.extend(get_frame(b"q", 30, 1));
    send(&mut s, &bytes);
    assert_eq!(read_frame(&mut s), EMPTY);
    assert_eq!(read_frame(&mut s), STORED);
    assert_eq!(read_frame(&mut s), messages_reply(&[b"mine"]));
}

/// Consumers parked on one queue are served first come, first served, one message each.
#[test]
fn parked_consumers_are_served_in_arrival_order() {
    let server = TestServer::start();
    let mut consumers = Vec::new();
    for i in 0..3 {
        let mut c = server.raw();
        send(&mut c, &get_frame(b"q", 5000, 5));
        server.wait_for_stat("waiters", i + 1);
        consumers.push(c);
    }
    let mut producer = server.raw();
    let mut bytes = Vec::new();
    for m in [&b"m0"[..], b"m1", b"m2", b"m3"] {
        bytes.extend(put_frame(b"q", m));
    }
    send(&mut producer, &bytes);
    for _ in 0..4 {
        assert_eq!(read_frame(&mut producer), STORED);
    }
    for (i, c) in consumers.iter_mut().enumerate() {
        let expected = format!("m{i}");
        assert_eq!(read_frame(c), messages_reply(&[expected.as_bytes()]));
    }
    assert_eq!(
        call(&mut producer, &get_frame(b"q", 0, 5)),
        messages_reply(&[b"m3"])
    );
}

/// Queue names are byte strings: case matters, and spaces, NUL and a 255-byte name
/// are all legal.
#[test]
fn queue_names_are_compared_byte_for_byte() {
    let server = TestServer::start();
    let mut s = server.raw();
    let long = "é".repeat(127) + "x"; // 255 bytes of UTF-8
    assert_eq!(long.len(), 255);
    let names: [&[u8]; 5] = [
        b"Jobs",
        b"jobs",
        b"a b\0c",
        long.as_bytes(),
        "\u{1F980}".as_bytes(),
    ];
    for name in names {
        assert_eq!(call(&mut s, &put_frame(name, name)), STORED);
    }
    for name in names {
        assert_eq!(
            call(&mut s, &get_frame(name, 0, 10)),
            messages_reply(&[name])
        );
    }
}

/// An empty payload is stored and returned as a zero-length message.
#[test]
fn empty_payload_round_trips() {
    let server = TestServer::start();
    let mut s = server.raw();
    assert_eq!(call(&mut s, &[0, 0, 0, 4, 0x10, 0, 1, b'q']), STORED);
    assert_eq!(
        call(&mut s, &get_frame(b"q", 0, 1)),
        [0, 0, 0, 9, 0x12, 0, 0, 0, 1, 0, 0, 0, 0]
    );
}

/// A connection that only connects and closes costs nothing and harms nothing.
#[test]
fn connect_and_close_without_a_request() {
    let server = TestServer::start();
    for _ in 0..20 {
        drop(TcpStream::connect(&server.addr).unwrap());
    }
    server.wait_for_stat("connections", 1);
    let mut c = server.client();
    c.ping().unwrap();
    assert_eq!(stat_of(&mut c, "protocol_errors"), 0);
}

/// Section 2.5's early checks: a length below 2 is MALFORMED from the 4 length bytes
/// alone (whatever opcode follows); then an unknown opcode comes before
/// FRAME_TOO_LARGE, which comes before BAD_FLAGS. None waits for the rest of a frame.
#[test]
fn early_checks_follow_section_2_5() {
    let server = TestServer::start();
    for (what, bytes, code) in [
        ("length 1 alone", vec![0, 0, 0, 1], 1),
        ("length 1 with an unknown opcode", vec![0, 0, 0, 1, 0x2f], 1),
        (
            "length 1025 with an unknown opcode",
            vec![0, 0, 0x04, 0x01, 0x2f],
            2,
        ),
        (
            "length 1025, PING, bad flags",
            vec![0, 0, 0x04, 0x01, 0x02, 0x01],
            4,
        ),
        (
            "GET with bad flags, body not sent",
            vec![0, 0, 0, 13, 0x11, 0x01],
            5,
        ),
    ] {
        let mut s = server.raw();
        send(&mut s, &bytes);
        let (got, fatal, text) = parse_error(&read_frame(&mut s));
        assert_eq!((got, fatal), (code, 1), "{what}: {text}");
        expect_closed(&mut s);
    }
}

/// A client that shuts down its writing half still gets the replies to every request
/// it sent in full, then EOF; a frame cut off by its EOF is discarded.
#[test]
fn half_close_still_gets_every_reply() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for i in 0..100u8 {
        bytes.extend(put_frame(b"q", &[i]));
    }
    bytes.extend(get_frame(b"q", 0, 100));
    bytes.extend(ping_frame());
    let cut = put_frame(b"cut", b"never stored");
    bytes.extend(&cut[..cut.len() - 3]);
    send(&mut s, &bytes);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    for _ in 0..100 {
        assert_eq!(read_frame(&mut s), STORED);
    }
    let all: Vec<[u8; 1]> = (0..100u8).map(|i| [i]).collect();
    let all: Vec<&[u8]> = all.iter().map(|m| &m[..]).collect();
    assert_eq!(read_frame(&mut s), messages_reply(&all));
    assert_eq!(read_frame(&mut s), PONG);
    expect_closed(&mut s);
    let mut c = server.client();
    assert_eq!(c.queue_stats("cut").unwrap(), None);
    assert_eq!(stat_of(&mut c, "puts"), 100);
}

/// HELLO with a newer version gets version 4 (with the version-2 fields after the
/// server string, as for version 2), version 1 gets version 1 byte for byte as
/// before; HELLO is answered anywhere in the connection, not only first.
#[test]
fn hello_negotiates_down_anywhere() {
    let server = TestServer::start();
    let mut s = server.raw();
    assert_eq!(call(&mut s, &ping_frame()), PONG);
    for (version, spoken) in [
        (2u16, 2u8),
        (3, 3),
        (4, 4),
        (5, 5),
        (6, 6),
        (7, 6),
        (u16::MAX, 6),
        (1, 1),
    ] {
        let mut bytes = vec![0, 0, 0, 4, 0x01, 0];
        bytes.extend_from_slice(&version.to_be_bytes());
        let hello = call(&mut s, &bytes);
        assert_eq!(hello[4..7], [0x02, 0x00, spoken], "version {version}");
        let server_len = usize::from(hello[11]);
        let limits = hello.len() - 12 - server_len;
        assert_eq!(
            limits,
            if spoken >= 2 { 18 } else { 0 },
            "version {version}"
        );
    }
    assert_eq!(call(&mut s, &ping_frame()), PONG);
}

/// PURGE drops held messages but leaves parked consumers parked.
#[test]
fn purge_leaves_parked_consumers_parked() {
    let server = TestServer::start();
    let mut consumer = server.raw();
    send(&mut consumer, &get_frame(b"q", 5000, 1));
    server.wait_for_stat("waiters", 1);
    let mut s = server.raw();
    assert_eq!(
        call(&mut s, &request_frame(0x12, b"\x01q")),
        [0, 0, 0, 9, 0x14, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(stat_of(&mut server.client(), "waiters"), 1);
    assert_eq!(call(&mut s, &put_frame(b"q", b"after purge")), STORED);
    assert_eq!(read_frame(&mut consumer), messages_reply(&[b"after purge"]));
}

/// An oversized PUT pipelined behind a parked GET is streamed and truncated once the
/// GET is answered, and the requests behind it follow in order.
#[test]
fn oversize_put_behind_a_parked_get() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "10240")]);
    let mut consumer = server.raw();
    let payload: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
    let mut bytes = get_frame(b"q", 5000, 1);
    bytes.extend(put_frame(b"other", &payload));
    bytes.extend(ping_frame());
    bytes.extend(get_frame(b"other", 0, 1));
    let mut writer = consumer.try_clone().unwrap();
    let write = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    server.wait_for_stat("waiters", 1);
    let mut producer = server.raw();
    assert_eq!(call(&mut producer, &put_frame(b"q", b"wake")), STORED);
    assert_eq!(read_frame(&mut consumer), messages_reply(&[b"wake"]));
    assert_eq!(read_frame(&mut consumer), truncated_reply(100_000, 10240));
    assert_eq!(read_frame(&mut consumer), PONG);
    assert_eq!(
        read_frame(&mut consumer),
        messages_reply(&[&payload[..10240]])
    );
    write.join().unwrap();
}

/// A STATS reply far over the output high-water mark (3,000 queues) arrives whole,
/// followed by the reply to the next pipelined request.
#[test]
fn stats_over_thousands_of_queues_arrives_whole() {
    let server = TestServer::start();
    let mut s = server.raw();
    let mut bytes = Vec::new();
    for i in 0..3000 {
        bytes.extend(put_frame(format!("queue number {i:05}").as_bytes(), b"m"));
    }
    send(&mut s, &bytes);
    for _ in 0..3000 {
        assert_eq!(read_frame(&mut s), STORED);
    }
    let mut bytes = stats_frame(b"");
    bytes.extend(stats_frame(b""));
    bytes.extend(ping_frame());
    send(&mut s, &bytes);
    for _ in 0..2 {
        let report = parse_stats(&read_frame(&mut s));
        assert_eq!(report.queues.len(), 3000);
        assert_eq!(report.server_figure("messages"), 3000);
        assert_eq!(report.queue_figure("queue number 02999", "messages"), 1);
    }
    assert_eq!(read_frame(&mut s), PONG);
}

/// A reader that takes big GET batches slowly, with more requests pipelined behind,
/// gets every reply whole and in order.
#[test]
fn big_batches_to_a_slow_reader_arrive_whole_and_in_order() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "100K")]);
    let mut s = server.raw();
    let mut producer = server.client();
    let payloads: Vec<Vec<u8>> = (0..60u8).map(|i| vec![i; 100 * 1024]).collect();
    producer.put_many("big", &payloads).unwrap();
    let mut bytes = Vec::new();
    for _ in 0..6 {
        bytes.extend(get_frame(b"big", 0, 100));
        bytes.extend(ping_frame());
    }
    send(&mut s, &bytes);
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut raw = Vec::new();
    // Read in small pieces (the server must keep its output in order meanwhile).
    while raw.len() < 6 * (9 + 10 * (4 + 100 * 1024) + 5) {
        let n = std::io::Read::read(&mut s, &mut chunk)
            .unwrap_or_else(|e| panic!("stalled after {} bytes: {e}", raw.len()));
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&chunk[..n]);
    }
    let mut rest = &raw[..];
    for i in 0..6 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let frame = &rest[..4 + len];
        rest = &rest[4 + len..];
        assert_eq!(frame[4], 0x12, "reply {i} is MESSAGES");
        let count = u32::from_be_bytes(frame[5..9].try_into().unwrap());
        assert_eq!(count, 10, "1 MiB holds 10 messages of 100 KiB");
        let mut body = &frame[9..];
        for _ in 0..count {
            let l = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
            got.push(body[4..4 + l].to_vec());
            body = &body[4 + l..];
        }
        assert!(body.is_empty());
        assert_eq!(rest[..5], PONG);
        rest = &rest[5..];
    }
    assert!(rest.is_empty());
    assert_eq!(got, payloads);
}

/// A request pipelined behind a GET whose reply is over the 256 KiB output high-water
/// mark (30 messages of 10 KiB) is answered once that reply is out.
#[test]
fn request_behind_a_reply_over_256_kib_is_answered() {
    let server = TestServer::start();
    let mut s = server.raw();
    let payload = vec![b'x'; 10240];
    let mut bytes = Vec::new();
    for _ in 0..30 {
        bytes.extend(put_frame(b"q", &payload));
    }
    send(&mut s, &bytes);
    for _ in 0..30 {
        assert_eq!(read_frame(&mut s), STORED);
    }
    let mut bytes = get_frame(b"q", 0, 30);
    bytes.extend(ping_frame());
    send(&mut s, &bytes);
    let reply = read_frame(&mut s);
    assert_eq!(reply, messages_reply(&[&payload[..]; 30]));
    assert_eq!(read_frame(&mut s), PONG, "PING behind the big reply");
}

/// A client that half-closes right after a request whose reply is over the 256 KiB
/// high-water mark still gets the replies to the requests behind it.
#[test]
fn half_close_after_a_big_reply_still_answers_what_follows() {
    let server = TestServer::start();
    let mut producer = server.client();
    let payload = vec![b'y'; 10240];
    producer.put_many("q", vec![&payload[..]; 30]).unwrap();
    let mut s = server.raw();
    let mut bytes = get_frame(b"q", 0, 30);
    bytes.extend(ping_frame());
    bytes.extend(put_frame(b"late", b"after the big reply"));
    send(&mut s, &bytes);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_frame(&mut s), messages_reply(&[&payload[..]; 30]));
    assert_eq!(read_frame(&mut s), PONG);
    assert_eq!(read_frame(&mut s), STORED);
    expect_closed(&mut s);
}

/// A consumer with a short wait times out while an earlier one with a long wait stays
/// parked and gets the next message.
#[test]
fn short_wait_times_out_while_a_longer_one_stays_parked() {
    let server = TestServer::start();
    let mut patient = server.raw();
    send(&mut patient, &get_frame(b"q", 10_000, 1));
    server.wait_for_stat("waiters", 1);
    let mut hasty = server.raw();
    assert_eq!(call(&mut hasty, &get_frame(b"q", 20, 1)), EMPTY);
    assert_eq!(stat_of(&mut server.client(), "waiters"), 1);
    assert_eq!(
        call(&mut hasty, &put_frame(b"q", b"for the patient")),
        STORED
    );
    assert_eq!(
        read_frame(&mut patient),
        messages_reply(&[b"for the patient"])
    );
}

/// A client that half-closes while the server has stopped reading it (its replies are
/// over the output high-water mark, so later requests wait unread in the server's
/// kernel buffer) still gets a reply to every request it sent before the half-close.
#[test]
fn half_close_while_reading_is_paused_loses_no_request() {
    const GETS: usize = 8;
    const PINGS: usize = 1000;
    let server = TestServer::start();
    let payload = vec![b'x'; 10240];
    server
        .client()
        .put_many("q", vec![&payload[..]; 800])
        .unwrap();
    let mut s = server.raw();
    // Each GET's reply is about 1 MiB (the batch cap), over the high-water mark; the
    // client reads nothing yet, so its small initial receive window fills, then the
    // server's send buffer, and the server stops taking requests and then reading.
    send(&mut s, &get_frame(b"q", 0, 1000).repeat(GETS));
    // Wait until the server's writes have stalled (its send queue full and no longer
    // moving): from then on it reads nothing more from this client.
    let mut last = 0;
    eventually("the server's replies to back up", || {
        let unsent = server_unsent_bytes(server.port, &s);
        let stalled = unsent > 0 && unsent == last;
        last = unsent;
        if !stalled {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stalled
    });
    send(&mut s, &ping_frame().repeat(PINGS));
    eventually(
        "the PINGs to wait unread in the server's kernel buffer",
        || server_unread_bytes(server.port, &s) > 0,
    );
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut messages = 0;
    for i in 0..GETS {
        let reply = read_frame(&mut s);
        assert_eq!(reply[4], 0x12, "reply {i} is MESSAGES");
        messages += u32::from_be_bytes(reply[5..9].try_into().unwrap());
    }
    assert_eq!(messages, 800);
    for i in 0..PINGS {
        assert_eq!(read_frame(&mut s), PONG, "PONG {i}");
    }
    expect_closed(&mut s);
}

// ---------------------------------------------------------------------------
// protocol.md as a client writer reads it (issue 7): the check order of section
// 2.5, and what the section 6.1 counters count.
// ---------------------------------------------------------------------------

/// protocol.md section 2.5 steps 3 and 4: one rule for every opcode. Structure first
/// (a missing field or bytes left over: MALFORMED), then the queue name
/// (BAD_QUEUE_NAME), then values (BAD_ARGUMENT, UNSUPPORTED_VERSION); a frame with two
/// faults gets the earlier one. A PUT's queue_len is checked from its own byte, before
/// the name is in.
#[test]
fn one_check_order_for_every_opcode() {
    let server = TestServer::start();
    let get = |name: &[u8], max: u16, trailing: &[u8]| {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&max.to_be_bytes());
        body.extend_from_slice(trailing);
        request_frame(0x11, &body)
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("GET max 0 + trailing byte", get(b"q", 0, &[0]), 1),
        ("GET bad name + trailing byte", get(&[0xff], 1, &[0]), 1),
        ("GET bad name + max 0", get(&[0xff], 0, &[]), 3),
        ("GET empty name + max 0", get(b"", 0, &[]), 3),
        ("GET max 0", get(b"q", 0, &[]), 6),
        (
            "HELLO version 0 + trailing byte",
            request_frame(0x01, &[0, 0, 0]),
            1,
        ),
        ("HELLO version 0", request_frame(0x01, &[0, 0]), 9),
        (
            "PURGE empty name + trailing byte",
            request_frame(0x12, &[0, 0]),
            1,
        ),
        (
            "STATS bad name + trailing byte",
            request_frame(0x20, &[1, 0xff, 0]),
            1,
        ),
        (
            "PUT bad name whose queue_len runs past the frame",
            request_frame(0x10, &[9, 0xff, 0xfe]),
            1,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut s = server.raw();
        let mut all = bytes;
        all.extend(put_frame(b"victim", b"never stored"));
        send(&mut s, &all);
        let (got, fatal, text) = parse_error(&read_frame(&mut s));
        assert_eq!((got, fatal), (code, 1), "{what}: {text}");
        expect_closed(&mut s);
    }
    // The PUT's queue_len byte alone is enough: the name and the rest are not sent.
    let mut s = server.raw();
    send(&mut s, &[0, 0, 0, 5, 0x10, 0, 9]);
    expect_fatal_error(&mut s, 1);
    let mut c = server.client();
    assert_eq!(c.stats().unwrap().queue("victim"), None);
}

/// protocol.md section 6.1: a connection refused with TOO_MANY_CONNECTIONS counts in
/// `connections_rejected` only, not in `connections_total`, `connections` or
/// `protocol_errors`; the fatal errors that `protocol_errors` counts are those sent
/// in answer to a bad request.
#[test]
fn refused_connections_count_only_as_rejected() {
    let server = TestServer::start_with(&[("BMAXCONNECTIONS", "2")]);
    let mut stats = server.client();
    let mut bad = server.raw();
    send(&mut bad, &request_frame(0x01, &[0, 0]));
    expect_fatal_error(&mut bad, 9);
    eventually("the bad connection to be closed", || {
        stat_of(&mut stats, "connections") == 1
    });
    let _second = server.raw();
    eventually("the second connection to be accepted", || {
        stat_of(&mut stats, "connections") == 2
    });
    // Sent unprompted (section 2.8); sending nothing first keeps the server's close
    // from meeting unread input, which could turn it into a reset.
    let mut refused = server.raw();
    expect_fatal_error(&mut refused, 8);
    let report = stats.stats().unwrap();
    assert_eq!(report.get("connections_rejected"), Some(1));
    assert_eq!(report.get("connections_total"), Some(3));
    assert_eq!(report.get("connections"), Some(2));
    assert_eq!(report.get("protocol_errors"), Some(1));
}

/// protocol.md section 8: with the version-6 figures a STATS reply is 1188 bytes after
/// the length prefix plus `329 + queue_len` per queue entry, so STATS for one queue
/// with a 255-byte name is 1772 bytes. (A new figure changes these sizes: update
/// section 8 with it.)
#[test]
fn stats_reply_sizes_match_section_8() {
    let server = TestServer::start();
    let mut s = server.raw();
    let long = vec![b'n'; 255];
    assert_eq!(call(&mut s, &put_frame(&long, b"x")), STORED);
    assert_eq!(call(&mut s, &put_frame(b"jobs", b"x")), STORED);
    let after_prefix = |frame: Vec<u8>| frame.len() - 4;
    assert_eq!(after_prefix(call(&mut s, &stats_frame(b"nosuch"))), 1188);
    assert_eq!(after_prefix(call(&mut s, &stats_frame(&long))), 1772);
    assert_eq!(
        after_prefix(call(&mut s, &stats_frame(b""))),
        1188 + (329 + 255) + (329 + 4)
    );
}

/// protocol.md section 7.1: an idle queue is never removed less than BQUEUEIDLE after
/// its last use (here the GET that emptied it), and it is removed after that.
#[test]
fn idle_queue_is_never_removed_early() {
    let idle = std::time::Duration::from_millis(300);
    let server = TestServer::start_with(&[("BQUEUEIDLE", "300ms")]);
    let mut s = server.raw();
    assert_eq!(call(&mut s, &put_frame(b"q", b"x")), STORED);
    // Taken before the GET is sent, so the server's clock reads later at its use.
    let last_use = std::time::Instant::now();
    assert_eq!(
        call(&mut s, &get_frame(b"q", 0, 1)),
        messages_reply(&[b"x"])
    );
    let mut c = server.client();
    eventually("the idle queue to be removed", || {
        let gone = c.stats().unwrap().queue("q").is_none();
        if gone {
            let after = last_use.elapsed();
            assert!(after >= idle, "removed {after:?} after its last use");
        }
        gone
    });
}

/// What a client of the Go beuss does first: it sends `word` alone, then reads at most
/// two bytes and accepts the connection only if they are `OK`. Returns those bytes
/// and the rest of what the server sent.
fn go_client_opening(server: &TestServer, word: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use std::io::Read;
    let mut s = server.raw();
    send(&mut s, word);
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .expect("the server closes the connection");
    let rest = all.split_off(all.len().min(2));
    (all, rest)
}

/// An old Go beuss client opening with `PUT` or `GET` gets a fatal
/// UNSUPPORTED_VERSION at once and the connection closes: its two-byte read is not
/// `OK`, so it fails instead of waiting forever. The server logs it once.
#[test]
fn go_client_opening_is_refused_with_unsupported_version() {
    let server = TestServer::start();
    for word in [&b"PUT"[..], b"GET"] {
        let (first_two, rest) = go_client_opening(&server, word);
        assert_ne!(first_two, b"OK");
        let mut frame = first_two;
        frame.extend(rest);
        let (code, fatal, text) = parse_error(&frame);
        assert_eq!((code, fatal), (9, 1), "UNSUPPORTED_VERSION, fatal");
        assert!(text.contains("Go beuss protocol"), "{text}");
    }
    server.wait_for_log("opened with \"GET\"");
    let logged = server
        .logs()
        .iter()
        .filter(|l| l.contains("Go beuss protocol"))
        .count();
    assert_eq!(logged, 2, "one line per connection: {:?}", server.logs());
    assert_eq!(server.stat("protocol_errors"), 2);
}

/// The head of a protocol-1 `PUT` to "q" whose `length` starts with the bytes `PUT`
/// (0x50555400, about 1.35 GB).
const PUT_HEAD_LIKE_GO: [u8; 8] = [b'P', b'U', b'T', 0x00, 0x10, 0x00, 0x01, b'q'];

/// Half-closes `s` and asserts the server then closes without sending anything: a
/// `PUT` cut off by EOF is dropped silently (an ERROR here would mean the bytes were
/// taken for the Go protocol).
fn expect_silent_close_after_eof(mut s: TcpStream) {
    use std::io::Read;
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("a clean close");
    assert_eq!(rest, b"", "nothing after the last reply");
}

/// A protocol-1 `PUT` whose length happens to start with `PUT` is still a `PUT` when
/// its head arrives in one piece, even as a connection's first bytes.
#[test]
fn put_whose_length_spells_put_is_a_put() {
    let server = TestServer::start();
    let mut s = server.raw();
    send(&mut s, &PUT_HEAD_LIKE_GO);
    expect_silent_close_after_eof(s);
}

/// Only a connection's first bytes are checked: the same three bytes alone later in
/// a connection are the start of a frame like any other.
#[test]
fn go_words_after_the_first_bytes_are_protocol_1() {
    let server = TestServer::start();
    let mut s = server.raw();
    assert_eq!(call(&mut s, &ping_frame()), PONG);
    send(&mut s, &PUT_HEAD_LIKE_GO[..3]);
    eventually("the server to read the three bytes", || {
        server_unread_bytes(server.port, &s) == 0
    });
    send(&mut s, &PUT_HEAD_LIKE_GO[3..]);
    expect_silent_close_after_eof(s);
}
