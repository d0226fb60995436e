//! The journal's pure parts on byte buffers: the record codec, the scanner's verdict
//! on clean, zero-filled, garbage, torn and bit-flipped segments, and replay.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::record::{
    HEADER_LEN, MAX_NAME_LEN, MAX_PAYLOAD_LEN, MAX_RECORD_LEN, MAX_SCHEDULE_PAYLOAD, MAX_TEXT_LEN,
    RECORD_HEADER_LEN, SCHEDULE_PAUSED, SCHEDULE_SUBJECT, ScheduleRuns, TYPE_BIND, TYPE_EXPIRES,
    TYPE_FIRED, TYPE_KEY, TYPE_SCHEDULE, TYPE_SUBJECT, TYPE_UNBIND, TYPE_UNKEY, TYPE_UNSCHEDULE,
    mask, record_crc, unmask,
};
use super::*;
use crate::test_rng::Rng;

/// Encodes `records` one after the other; returns the bytes and each record's offset.
fn encode_all(records: &[Record<'_>]) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut offsets = Vec::new();
    for r in records {
        offsets.push(buf.len());
        encode(r, &mut buf);
    }
    (buf, offsets)
}

/// Scans `buf` from 0: the records with their offsets, and how it ended.
fn scan_all(buf: &[u8]) -> (Vec<(usize, Record<'_>)>, ScanEnd) {
    let mut s = Scanner::new(buf, 0);
    let records: Vec<_> = s.by_ref().collect();
    (records, s.end())
}

/// One record of each type, with boundary values: empty and long fields, extremes.
fn samples() -> Vec<Record<'static>> {
    let long_name: &'static str = "n".repeat(MAX_NAME_LEN).leak();
    // Three-byte characters: the longest name of multi-byte UTF-8.
    let long_utf8: &'static str = "€".repeat(MAX_NAME_LEN / 3).leak();
    let long_text: &'static str = "p".repeat(MAX_TEXT_LEN).leak();
    const PAYLOAD: &[u8] = &[0, 1, 2, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    vec![
        Record::Queue {
            queue: 0,
            name: "q",
        },
        Record::Queue {
            queue: u32::MAX,
            name: long_name,
        },
        Record::Queue {
            queue: 7,
            name: long_utf8,
        },
        Record::Put {
            queue: 0,
            id: 0,
            due_ms: 0,
            priority: 0,
            attempt: 0,
            charged: 0,
            payload: b"",
        },
        Record::Put {
            queue: u32::MAX,
            id: u64::MAX,
            due_ms: u64::MAX,
            priority: u8::MAX,
            attempt: u32::MAX,
            charged: u16::MAX,
            payload: PAYLOAD,
        },
        Record::Put {
            queue: 3,
            id: 0x0102_0304_0506_0708,
            due_ms: 1_700_000_000_000,
            priority: 9,
            attempt: 2,
            charged: 1,
            payload: b"hello",
        },
        Record::Del { id: 0 },
        Record::Del { id: u64::MAX },
        Record::Leased {
            id: 5,
            attempt: 1,
            max_deliveries: 0,
        },
        Record::Leased {
            id: u64::MAX,
            attempt: u32::MAX,
            max_deliveries: u16::MAX,
        },
        Record::Requeue {
            id: 5,
            attempt: 1,
            charged: 1,
            due_ms: 0,
        },
        Record::Requeue {
            id: u64::MAX,
            attempt: u32::MAX,
            charged: u16::MAX,
            due_ms: u64::MAX,
        },
        Record::Move {
            id: 5,
            queue: 0,
            attempt: 0,
            charged: 0,
        },
        Record::Move {
            id: u64::MAX,
            queue: u32::MAX,
            attempt: u32::MAX,
            charged: u16::MAX,
        },
        Record::Purge { queue: 0 },
        Record::Purge { queue: u32::MAX },
        Record::Ids { next: 0 },
        Record::Ids { next: u64::MAX },
        Record::Bind {
            queue: 0,
            pattern: "*",
        },
        Record::Bind {
            queue: u32::MAX,
            pattern: long_text,
        },
        Record::Bind {
            queue: 7,
            pattern: long_utf8,
        },
        Record::Unbind {
            queue: 0,
            pattern: ">",
        },
        Record::Unbind {
            queue: u32::MAX,
            pattern: long_text,
        },
        Record::Unbind {
            queue: 3,
            pattern: "orders.*.créé",
        },
        Record::Subject {
            id: 0,
            subject: "a",
        },
        Record::Subject {
            id: u64::MAX,
            subject: long_text,
        },
        Record::Subject {
            id: 0x0102_0304_0506_0708,
            subject: long_utf8,
        },
        Record::Copy {
            queue: u32::MAX,
            id: 9,
            due_ms: u64::MAX,
            priority: 9,
            attempt: 3,
            charged: u16::MAX,
            of: u64::MAX,
        },
        Record::Schedule {
            name: "s",
            spec: "@daily",
            target: "q",
            flags: 0,
            priority: 0,
            anchor_ms: 0,
            runs: ScheduleRuns::default(),
            payload: b"",
        },
        Record::Schedule {
            name: long_text,
            spec: long_utf8,
            target: long_name,
            flags: SCHEDULE_PAUSED | SCHEDULE_SUBJECT,
            priority: 9,
            anchor_ms: u64::MAX,
            runs: ScheduleRuns {
                after_ms: 1,
                last_ms: 2,
                runs: 3,
                misfires: 4,
                failures: u64::MAX,
            },
            payload: PAYLOAD,
        },
        Record::Unschedule { name: "s" },
        Record::Unschedule { name: long_utf8 },
        Record::Fired {
            name: "s",
            runs: ScheduleRuns::default(),
        },
        Record::Fired {
            name: long_text,
            runs: ScheduleRuns {
                after_ms: u64::MAX,
                last_ms: u64::MAX - 1,
                runs: 1,
                misfires: 0,
                failures: 7,
            },
        },
    ]
}

/// SCHEDULE, UNSCHEDULE and FIRED bodies that no writer makes are damage: names that
/// are empty, too long or not UTF-8, and a payload over the limit.
#[test]
fn bad_schedule_bodies_are_rejected() {
    let schedule = |name: &[u8], payload_len: usize| {
        let mut body = vec![0u8; 8 + 40 + 2];
        for text in [name, b"@daily".as_slice(), b"q".as_slice()] {
            body.push(text.len() as u8);
            body.extend_from_slice(text);
        }
        body.extend(std::iter::repeat_n(7u8, payload_len));
        body
    };
    assert!(decode(TYPE_SCHEDULE, &schedule(b"ok", MAX_SCHEDULE_PAYLOAD)).is_ok());
    let too_long = schedule(b"ok", MAX_SCHEDULE_PAYLOAD + 1);
    assert!(matches!(
        decode(TYPE_SCHEDULE, &too_long),
        Err(Damage::BodyLength {
            kind: TYPE_SCHEDULE,
            ..
        })
    ));
    assert!(matches!(
        decode(TYPE_SCHEDULE, &schedule(b"", 0)),
        Err(Damage::BodyLength { .. })
    ));
    assert_eq!(
        decode(TYPE_SCHEDULE, &schedule(b"\xff", 0)),
        Err(Damage::BadText(TYPE_SCHEDULE))
    );
    // Cut anywhere inside the fixed fields or the names: too short.
    let whole = schedule(b"name", 0);
    for cut in 0..8 + 40 + 2 + 5 + 7 + 1 {
        assert!(
            matches!(
                decode(TYPE_SCHEDULE, &whole[..cut]),
                Err(Damage::BodyLength { .. })
            ),
            "{cut}"
        );
    }
    assert!(matches!(
        decode(TYPE_UNSCHEDULE, b""),
        Err(Damage::BodyLength { .. })
    ));
    let long = vec![b'n'; MAX_TEXT_LEN + 1];
    assert!(matches!(
        decode(TYPE_UNSCHEDULE, &long),
        Err(Damage::BodyLength { .. })
    ));
    assert_eq!(
        decode(TYPE_UNSCHEDULE, b"\xfe"),
        Err(Damage::BadText(TYPE_UNSCHEDULE))
    );
    assert!(matches!(
        decode(TYPE_FIRED, &[0; 40]),
        Err(Damage::BodyLength { .. })
    ));
    let mut fired = vec![0; 40];
    fired.push(0xff);
    assert_eq!(decode(TYPE_FIRED, &fired), Err(Damage::BadText(TYPE_FIRED)));
    assert_eq!(
        Damage::BadText(TYPE_FIRED).to_string(),
        "a name of record type 15 is not UTF-8"
    );
}

/// Schedules replay by name: the last SCHEDULE defines one, FIRED moves its runs on,
/// UNSCHEDULE removes it; records for a schedule that is not there are counted.
#[test]
fn schedules_replay_by_name() {
    let runs = |n: u64| ScheduleRuns {
        after_ms: 1000 * n,
        last_ms: 1000 * n,
        runs: n,
        misfires: 0,
        failures: 0,
    };
    let def = |name: &'static str, spec: &'static str| Record::Schedule {
        name,
        spec,
        target: "q",
        flags: 0,
        priority: 5,
        anchor_ms: 0,
        runs: ScheduleRuns::default(),
        payload: b"tick",
    };
    let r = replay(&[
        def("a", "@daily"),
        def("b", "@hourly"),
        Record::Fired {
            name: "a",
            runs: runs(1),
        },
        Record::Fired {
            name: "b",
            runs: runs(2),
        },
        Record::Unschedule { name: "b" },
        Record::Fired {
            name: "b",
            runs: runs(3),
        },
        Record::Unschedule { name: "zz" },
        def("b", "@every 1s"),
        Record::Fired {
            name: "a",
            runs: runs(4),
        },
    ]);
    let got: Vec<(&str, &str, u64)> = r
        .schedules
        .iter()
        .map(|s| (s.name.as_str(), s.spec.as_str(), s.runs.runs))
        .collect();
    assert_eq!(got, [("a", "@daily", 4), ("b", "@every 1s", 0)]);
    assert_eq!(r.ignored, 2);
    assert_eq!(&*r.schedules[0].payload, b"tick");
}

#[test]
fn sample_names_are_at_the_limits() {
    let names: Vec<usize> = samples()
        .iter()
        .filter_map(|r| match r {
            Record::Queue { name, .. } => Some(name.len()),
            _ => None,
        })
        .collect();
    assert_eq!(names, [1, MAX_NAME_LEN, MAX_NAME_LEN]);
    let texts: Vec<(u8, usize)> = samples()
        .iter()
        .filter_map(|r| match r {
            Record::Bind { pattern: t, .. }
            | Record::Unbind { pattern: t, .. }
            | Record::Subject { subject: t, .. } => Some((r.kind(), t.len())),
            _ => None,
        })
        .collect();
    for kind in [TYPE_BIND, TYPE_UNBIND, TYPE_SUBJECT] {
        let lens: BTreeSet<usize> = texts.iter().filter(|t| t.0 == kind).map(|t| t.1).collect();
        assert!(lens.contains(&1) && lens.contains(&MAX_TEXT_LEN), "{kind}");
    }
}

/// Every record type, with empty, maximal and ordinary fields, reads back equal, at
/// the offset it was written, taking the bytes `encoded_len` says.
#[test]
fn every_record_round_trips() {
    for r in samples() {
        let mut buf = vec![0xAA; 3];
        encode(&r, &mut buf);
        assert_eq!(buf.len(), 3 + encoded_len(&r), "{r:?}");
        assert_eq!(&buf[..3], [0xAA; 3], "encode only appends");
        let len = u32::from_le_bytes(buf[3..7].try_into().unwrap());
        assert_eq!(len as usize, encoded_len(&r) - RECORD_HEADER_LEN);
        assert_eq!(buf[3 + RECORD_HEADER_LEN], r.kind());
        assert_eq!(
            decode(r.kind(), &buf[3 + RECORD_HEADER_LEN + 1..]),
            Ok(r),
            "{r:?}"
        );
        let mut s = Scanner::new(&buf, 3);
        assert_eq!(s.next(), Some((3, r)));
        assert_eq!(s.next(), None);
        assert_eq!(s.end(), ScanEnd::Clean);
        assert_eq!(s.offset(), buf.len());
    }
    let (buf, offsets) = encode_all(&samples());
    let (read, end) = scan_all(&buf);
    let expected: Vec<_> = offsets.into_iter().zip(samples()).collect();
    assert_eq!(read, expected);
    assert_eq!(end, ScanEnd::Clean);
}

/// Field bytes sit where STORAGE.md says (a change of layout must change that
/// document too).
#[test]
fn byte_layout_is_the_documented_one() {
    let mut buf = Vec::new();
    encode(
        &Record::Put {
            queue: 0x0403_0201,
            id: 0x1817_1615_1413_1211,
            due_ms: 0x2827_2625_2423_2221,
            priority: 0x31,
            attempt: 0x4443_4241,
            charged: 0x5251,
            payload: b"xyz",
        },
        &mut buf,
    );
    assert_eq!(&buf[0..4], &(1u32 + 27 + 3).to_le_bytes());
    assert_eq!(buf[8], 2);
    assert_eq!(
        &buf[9..],
        &[
            1, 2, 3, 4, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24,
            0x25, 0x26, 0x27, 0x28, 0x31, 0x41, 0x42, 0x43, 0x44, 0x51, 0x52, b'x', b'y', b'z'
        ]
    );
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let mut covered = buf[0..4].to_vec();
    covered.extend_from_slice(&buf[8..]);
    assert_eq!(unmask(crc), crc32c::crc32c(&covered));

    let h = encode_header(SegmentKind::Base, 0x0807_0605_0403_0201);
    assert_eq!(&h[..8], b"BEUSLOG\0");
    assert_eq!(&h[8..20], &[1, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        u32::from_le_bytes(h[20..].try_into().unwrap()),
        mask(crc32c::crc32c(&h[..20]))
    );

    // BIND, UNBIND and SUBJECT: a fixed number or id, then the text.
    for (record, kind, fixed) in [
        (
            Record::Bind {
                queue: 0x0403_0201,
                pattern: "a.*",
            },
            9,
            &[1u8, 2, 3, 4][..],
        ),
        (
            Record::Unbind {
                queue: 0x0403_0201,
                pattern: "a.*",
            },
            10,
            &[1, 2, 3, 4][..],
        ),
        (
            Record::Subject {
                id: 0x1817_1615_1413_1211,
                subject: "a.*",
            },
            11,
            &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18][..],
        ),
    ] {
        let mut buf = Vec::new();
        encode(&record, &mut buf);
        let len = 1 + fixed.len() as u32 + 3;
        assert_eq!(&buf[0..4], &len.to_le_bytes(), "{record:?}");
        let mut covered = buf[0..4].to_vec();
        covered.extend_from_slice(&buf[8..]);
        assert_eq!(buf[4..8], mask(crc32c::crc32c(&covered)).to_le_bytes());
        assert_eq!(buf[8], kind, "{record:?}");
        assert_eq!(&buf[9..9 + fixed.len()], fixed, "{record:?}");
        assert_eq!(&buf[9 + fixed.len()..], b"a.*", "{record:?}");
    }
}

/// The example dump in STORAGE.md, byte for byte: a log header with seq 1, then
/// QUEUE 0 "jobs", PUT id 1 "hi" and DEL id 1.
#[test]
fn storage_md_example() {
    let mut buf = encode_header(SegmentKind::Log, 1).to_vec();
    encode(
        &Record::Queue {
            queue: 0,
            name: "jobs",
        },
        &mut buf,
    );
    encode(&put(0, 1, b"hi"), &mut buf);
    encode(&Record::Del { id: 1 }, &mut buf);
    let hex: Vec<String> = buf.iter().map(|b| format!("{b:02x}")).collect();
    let expected = [
        // header: magic, version 1, kind 0 (log), seq 1, crc
        "42 45 55 53 4c 4f 47 00 01 00 00 00 01 00 00 00 00 00 00 00 6c 18 1b 78",
        // QUEUE 0 "jobs"
        "09 00 00 00 ce ae 59 6f 01 00 00 00 00 6a 6f 62 73",
        // PUT queue 0, id 1, due 0, priority 0, attempt 0, charged 0, "hi"
        "1e 00 00 00 f4 92 4a f3 02 \
         00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 68 69",
        // DEL 1
        "09 00 00 00 a6 a9 2f 55 03 01 00 00 00 00 00 00 00",
    ]
    .join(" ");
    assert_eq!(hex.join(" "), expected);
}

/// The second example dump in STORAGE.md, byte for byte: a log header with seq 2,
/// then QUEUE 0 "jobs", BIND 0 "orders.>", PUT id 1 "hi", SUBJECT 1 "orders.eu" and
/// UNBIND 0 "orders.>".
#[test]
fn storage_md_fanout_example() {
    let mut buf = encode_header(SegmentKind::Log, 2).to_vec();
    for r in [
        queue(0, "jobs"),
        bind(0, "orders.>"),
        put(0, 1, b"hi"),
        subject(1, "orders.eu"),
        unbind(0, "orders.>"),
    ] {
        encode(&r, &mut buf);
    }
    let hex: Vec<String> = buf.iter().map(|b| format!("{b:02x}")).collect();
    let expected = [
        // header: magic, version 1, kind 0 (log), seq 2, crc
        "42 45 55 53 4c 4f 47 00 01 00 00 00 02 00 00 00 00 00 00 00 f5 85 ce 7d",
        // QUEUE 0 "jobs"
        "09 00 00 00 ce ae 59 6f 01 00 00 00 00 6a 6f 62 73",
        // BIND queue 0 "orders.>"
        "0d 00 00 00 4d 8c b1 de 09 00 00 00 00 6f 72 64 65 72 73 2e 3e",
        // PUT queue 0, id 1, due 0, priority 0, attempt 0, charged 0, "hi"
        "1e 00 00 00 f4 92 4a f3 02 \
         00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 68 69",
        // SUBJECT id 1 "orders.eu"
        "12 00 00 00 cf 3c 2a 0c 0b 01 00 00 00 00 00 00 00 6f 72 64 65 72 73 2e 65 75",
        // UNBIND queue 0 "orders.>"
        "0d 00 00 00 71 ee f2 4f 0a 00 00 00 00 6f 72 64 65 72 73 2e 3e",
    ]
    .join(" ");
    assert_eq!(hex.join(" "), expected);
    assert_eq!(buf.len(), 0x93);
}

/// Bodies of the wrong length, unknown types and bad names are damage, never records.
#[test]
fn bad_bodies_are_rejected() {
    for r in samples() {
        let mut buf = Vec::new();
        encode(&r, &mut buf);
        let body = &buf[RECORD_HEADER_LEN + 1..];
        let kind = r.kind();
        let fixed = !matches!(
            r,
            Record::Queue { .. }
                | Record::Put { .. }
                | Record::Bind { .. }
                | Record::Unbind { .. }
                | Record::Subject { .. }
                | Record::Schedule { .. }
                | Record::Unschedule { .. }
                | Record::Fired { .. }
        );
        if fixed {
            let mut longer = body.to_vec();
            longer.push(0);
            assert_eq!(
                decode(kind, &longer),
                Err(Damage::BodyLength {
                    kind,
                    len: body.len() + 1
                })
            );
        }
        // Every body shorter than the fixed fields (and, for QUEUE, BIND, UNBIND and
        // SUBJECT, an empty name, pattern or subject).
        let min = match r {
            Record::Queue { .. } | Record::Bind { .. } | Record::Unbind { .. } => 5,
            Record::Subject { .. } => 9,
            Record::Put { .. } => 27,
            Record::Unschedule { .. } => 1,
            Record::Fired { .. } => 41,
            // Every cut inside the three names (the payload runs to the end).
            Record::Schedule { payload, .. } => body.len() - payload.len(),
            _ => body.len(),
        };
        for n in 0..min {
            assert_eq!(
                decode(kind, &body[..n]),
                Err(Damage::BodyLength { kind, len: n }),
                "{r:?} cut to {n}"
            );
        }
    }
    let long = [b'a'; 4 + MAX_NAME_LEN + 1];
    assert_eq!(
        decode(1, &long),
        Err(Damage::BodyLength {
            kind: 1,
            len: long.len()
        })
    );
    assert_eq!(decode(1, &[0, 0, 0, 0, 0xff]), Err(Damage::BadName));
    assert_eq!(
        decode(1, &[0, 0, 0, 0, b'a', 0xe2, 0x82]),
        Err(Damage::BadName)
    );
    for kind in [0, 19, 100, 255] {
        assert_eq!(decode(kind, &[0; 8]), Err(Damage::UnknownType(kind)));
    }
}

/// KEY and UNKEY bodies: they round-trip; a key of 0 bytes, a key longer than the
/// body, no queue name, one over 255 bytes or not UTF-8 is damage.
#[test]
fn key_records_round_trip_and_bad_key_bodies_are_rejected() {
    let key = Record::Key {
        id: 9,
        window_ms: 1000,
        until_ms: 1_700_000_000_000,
        queue: "jobs",
        key: b"order-1",
    };
    let expires = Record::Expires {
        id: 9,
        at_ms: 1_700_000_000_000,
        dead_letter: true,
    };
    for record in [key, Record::Unkey { id: 9 }, expires] {
        let mut out = Vec::new();
        encode(&record, &mut out);
        let body = &out[RECORD_HEADER_LEN + 1..];
        assert_eq!(decode(record.kind(), body), Ok(record));
    }
    let body = |key_len: u8, key: &[u8], queue: &[u8]| {
        let mut b = vec![0u8; 20];
        b.push(key_len);
        b.extend_from_slice(key);
        b.extend_from_slice(queue);
        b
    };
    let bad_len = |b: &[u8]| {
        Err(Damage::BodyLength {
            kind: TYPE_KEY,
            len: b.len(),
        })
    };
    for b in [
        body(0, b"", b"q"),
        body(3, b"ab", b""),
        body(1, b"k", b""),
        body(1, b"k", &[b'q'; 256]),
        vec![0u8; 20],
    ] {
        assert_eq!(decode(TYPE_KEY, &b), bad_len(&b), "{b:?}");
    }
    assert_eq!(
        decode(TYPE_KEY, &body(1, b"k", &[0xff])),
        Err(Damage::BadName)
    );
    assert!(decode(TYPE_KEY, &body(1, b"k", &[b'q'; 255])).is_ok());
    assert!(decode(TYPE_UNKEY, &[0; 9]).is_err());
    assert!(decode(TYPE_EXPIRES, &[0; 16]).is_err());
    assert!(decode(TYPE_EXPIRES, &[0; 18]).is_err());
}

/// BIND, UNBIND and SUBJECT bodies: a text over 255 bytes, an empty one, or one that
/// is not UTF-8 (a stray byte, a character cut short, a surrogate's encoding) is
/// damage, and the scanner stops there.
#[test]
fn bad_pattern_and_subject_bodies_are_rejected() {
    for (kind, fixed) in [(TYPE_BIND, 4), (TYPE_UNBIND, 4), (TYPE_SUBJECT, 8)] {
        let mut body = vec![7u8; fixed];
        body.extend_from_slice(&[b'a'; MAX_TEXT_LEN]);
        assert!(decode(kind, &body).is_ok(), "{kind}: longest");
        body.push(b'a');
        assert_eq!(
            decode(kind, &body),
            Err(Damage::BodyLength {
                kind,
                len: fixed + MAX_TEXT_LEN + 1
            })
        );
        // Far too long: rejected on the length, before the text is looked at.
        let mut huge = vec![0xff; fixed + 4096];
        huge[..fixed].fill(0);
        assert_eq!(
            decode(kind, &huge),
            Err(Damage::BodyLength {
                kind,
                len: huge.len()
            })
        );
        assert_eq!(
            decode(kind, &vec![0; fixed]),
            Err(Damage::BodyLength { kind, len: fixed }),
            "{kind}: empty text"
        );
        for bad in [
            &[0xff][..],
            &[b'a', 0xe2, 0x82],
            &[0xed, 0xa0, 0x80],
            &[0x80],
        ] {
            let mut body = vec![0; fixed];
            body.extend_from_slice(bad);
            assert_eq!(decode(kind, &body), Err(Damage::BadText(kind)), "{bad:?}");
            // The same through the scanner: a good record, then this one.
            let mut buf = Vec::new();
            encode(&Record::Ids { next: 1 }, &mut buf);
            let at = buf.len();
            let len = (1 + body.len()) as u32;
            let mut typed = vec![kind];
            typed.extend_from_slice(&body);
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&record_crc(len.to_le_bytes(), &typed).to_le_bytes());
            buf.extend_from_slice(&typed);
            assert_eq!(
                scan_all(&buf),
                (
                    vec![(0, Record::Ids { next: 1 })],
                    ScanEnd::Damaged {
                        offset: at,
                        reason: Damage::BadText(kind)
                    }
                )
            );
        }
    }
    assert_eq!(Damage::BadText(11).to_string(), "subject is not UTF-8");
    assert_eq!(
        Damage::BadText(9).to_string(),
        "pattern of record type 9 is not UTF-8"
    );
}

/// A log segment written before BIND, UNBIND and SUBJECT existed (these bytes come
/// from that version's encoder, one line per record) reads and replays as it did:
/// the same records, encoded today to the same bytes, no bindings, no subjects.
#[test]
fn a_journal_of_old_record_types_replays_as_before() {
    let lines = [
        // header, seq 3
        "42 45 55 53 4c 4f 47 00 01 00 00 00 03 00 00 00 00 00 00 00 3d f4 87 c3",
        "09 00 00 00 bb 52 79 49 08 10 00 00 00 00 00 00 00",
        "09 00 00 00 ce ae 59 6f 01 00 00 00 00 6a 6f 62 73",
        "0e 00 00 00 a0 66 2c e0 01 01 00 00 00 6a 6f 62 73 2e 64 65 61 64",
        "1f 00 00 00 62 f1 82 99 02 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
         03 00 00 00 00 00 00 6f 6e 65",
        "1f 00 00 00 ff ce bb df 02 00 00 00 00 02 00 00 00 00 00 00 00 00 68 e5 cf 8b 01 00 00 \
         00 00 00 00 00 00 00 74 77 6f",
        "0f 00 00 00 22 7b e7 4b 04 01 00 00 00 00 00 00 00 01 00 00 00 02 00",
        "17 00 00 00 ba c3 de 4b 05 01 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 \
         00 00",
        "0f 00 00 00 0b e4 53 e1 04 01 00 00 00 00 00 00 00 02 00 00 00 02 00",
        "13 00 00 00 7a 20 6f a8 06 01 00 00 00 00 00 00 00 01 00 00 00 02 00 00 00 00 00",
        "17 00 00 00 35 a1 08 44 05 01 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 00 00 00 00 \
         00 00",
        "21 00 00 00 ff 14 7b ea 02 00 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
         00 00 00 00 00 00 00 74 68 72 65 65",
        "09 00 00 00 17 85 b4 e8 03 03 00 00 00 00 00 00 00",
        "20 00 00 00 07 5d f7 b8 02 00 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
         00 00 00 00 00 00 00 66 6f 75 72",
        "0f 00 00 00 04 c8 69 c8 04 04 00 00 00 00 00 00 00 01 00 00 00 00 00",
        "08 00 00 00 93 75 40 02 01 02 00 00 00 74 6d 70",
        "1d 00 00 00 61 8a 64 fb 02 02 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
         00 00 00 00 00 00 00 78",
        "05 00 00 00 e2 f6 bd 44 07 02 00 00 00",
    ];
    let bytes = |line: &str| -> Vec<u8> {
        line.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    };
    let buf: Vec<u8> = lines.iter().flat_map(|l| bytes(l)).collect();
    let records = [
        Record::Ids { next: 16 },
        Record::Queue {
            queue: 0,
            name: "jobs",
        },
        Record::Queue {
            queue: 1,
            name: "jobs.dead",
        },
        Record::Put {
            queue: 0,
            id: 1,
            due_ms: 0,
            priority: 3,
            attempt: 0,
            charged: 0,
            payload: b"one",
        },
        Record::Put {
            queue: 0,
            id: 2,
            due_ms: 1_700_000_000_000,
            priority: 0,
            attempt: 0,
            charged: 0,
            payload: b"two",
        },
        Record::Leased {
            id: 1,
            attempt: 1,
            max_deliveries: 2,
        },
        Record::Requeue {
            id: 1,
            attempt: 1,
            charged: 1,
            due_ms: 0,
        },
        Record::Leased {
            id: 1,
            attempt: 2,
            max_deliveries: 2,
        },
        Record::Move {
            id: 1,
            queue: 1,
            attempt: 2,
            charged: 0,
        },
        Record::Requeue {
            id: 1,
            attempt: 2,
            charged: 0,
            due_ms: 0,
        },
        put(0, 3, b"three"),
        Record::Del { id: 3 },
        put(0, 4, b"four"),
        Record::Leased {
            id: 4,
            attempt: 1,
            max_deliveries: 0,
        },
        Record::Queue {
            queue: 2,
            name: "tmp",
        },
        put(2, 5, b"x"),
        Record::Purge { queue: 2 },
    ];
    assert_eq!(
        decode_header(&buf),
        Ok(SegmentHeader {
            kind: SegmentKind::Log,
            seq: 3
        })
    );
    let mut s = Scanner::new(&buf, HEADER_LEN);
    let read: Vec<Record<'_>> = s.by_ref().map(|(_, r)| r).collect();
    assert_eq!(s.end(), ScanEnd::Clean);
    assert_eq!(read, records);
    for (line, r) in lines[1..].iter().zip(&records) {
        let mut again = Vec::new();
        encode(r, &mut again);
        assert_eq!(again, bytes(line), "{r:?} is encoded as before");
    }
    let msg = |id, due_ms, priority, attempt, charged, in_flight, order, payload: &[u8]| {
        RecoveredMessage {
            id,
            due_ms,
            priority,
            attempt,
            charged,
            in_flight,
            order,
            payload: payload.into(),
            subject: None,
            expires: None,
        }
    };
    assert_eq!(
        replay(&read),
        Recovered {
            queues: vec![
                RecoveredQueue {
                    name: "jobs".into(),
                    messages: vec![
                        msg(2, 1_700_000_000_000, 0, 0, 0, None, Some(0), b"two"),
                        msg(4, 0, 0, 1, 0, Some(0), Some(0), b"four"),
                    ],
                },
                RecoveredQueue {
                    name: "jobs.dead".into(),
                    messages: vec![msg(1, 0, 3, 2, 0, None, None, b"one")],
                },
            ],
            bindings: vec![],
            schedules: vec![],
            keys: vec![],
            next_id: 16,
            ignored: 0,
        }
    );
}

/// The largest payload is accepted, one byte more is not. (The buffer is calloc'd and
/// only its first bytes are read, so this costs address space, not memory.)
#[test]
fn payload_limit() {
    let body = vec![0u8; 27 + MAX_PAYLOAD_LEN + 1];
    assert!(matches!(
        decode(2, &body[..body.len() - 1]),
        Ok(Record::Put { payload, .. }) if payload.len() == MAX_PAYLOAD_LEN
    ));
    assert_eq!(
        decode(2, &body),
        Err(Damage::BodyLength {
            kind: 2,
            len: body.len()
        })
    );
    // The longest valid record, a PUT with the largest payload, is within the bound.
    assert!(1 + 27 + MAX_PAYLOAD_LEN as u64 <= u64::from(MAX_RECORD_LEN));
}

/// The checksum is CRC-32C (Castagnoli), not the zlib CRC-32: its standard check
/// value, so files move between x86-64 (SSE4.2), aarch64 (CRC instructions) and
/// 32-bit ARM (tables) builds.
#[test]
fn checksum_is_crc32c() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    // A fixed record's bytes, as every build must write them.
    let mut buf = Vec::new();
    encode(&Record::Del { id: 1 }, &mut buf);
    assert_eq!(buf[..4], [9, 0, 0, 0]);
    assert_eq!(&buf[8..], &[3, 1, 0, 0, 0, 0, 0, 0, 0]);
    let mut covered = buf[..4].to_vec();
    covered.extend_from_slice(&buf[8..]);
    assert_eq!(buf[4..8], mask(crc32c::crc32c(&covered)).to_le_bytes());
}

/// The mask makes zeros fail: the CRC of nothing is 0, masked it is not, so neither
/// an all-zero record header nor an all-zero segment header checks out.
#[test]
fn masking_rejects_zeros() {
    assert_eq!(crc32c::crc32c(&[]), 0);
    assert_ne!(mask(0), 0);
    for c in [0, 1, 0xa282_ead8, u32::MAX, 0x1234_5678] {
        assert_eq!(unmask(mask(c)), c);
    }
    // Any length's worth of zero body under a zero crc field fails.
    for n in 1..64u32 {
        assert_ne!(record_crc(n.to_le_bytes(), &vec![0; n as usize]), 0);
    }
    assert_ne!(record_crc([0; 4], &[]), 0);
    // A zero header followed by anything but zeros is damage, not a record or an end.
    let mut buf = vec![0; 16];
    buf.push(1);
    assert_eq!(
        scan_all(&buf),
        (
            vec![],
            ScanEnd::Damaged {
                offset: 0,
                reason: Damage::BadLen(0)
            }
        )
    );
    // A record whose header bytes are right but whose crc field was never written.
    let mut buf = Vec::new();
    encode(&Record::Del { id: 0 }, &mut buf);
    buf[4..8].fill(0);
    buf[9..].fill(0);
    assert_eq!(
        scan_all(&buf).1,
        ScanEnd::Damaged {
            offset: 0,
            reason: Damage::BadCrc
        }
    );
}

#[test]
fn segment_header_round_trips() {
    for kind in [SegmentKind::Log, SegmentKind::Base] {
        for seq in [0, 1, 0x0123_4567_89ab_cdef, u64::MAX] {
            let h = encode_header(kind, seq);
            assert_eq!(decode_header(&h), Ok(SegmentHeader { kind, seq }));
            let mut longer = h.to_vec();
            longer.extend_from_slice(b"records...");
            assert_eq!(decode_header(&longer), Ok(SegmentHeader { kind, seq }));
        }
    }
}

/// A header cut short, zeroed, bit-flipped or from another version is an error,
/// and each says which.
#[test]
fn bad_segment_headers() {
    let h = encode_header(SegmentKind::Log, 42);
    for n in 0..HEADER_LEN {
        assert_eq!(decode_header(&h[..n]), Err(HeaderError::Short(n)));
    }
    assert_eq!(decode_header(&[0; 24]), Err(HeaderError::BadMagic));
    let mut zero_after_magic = [0; 24];
    zero_after_magic[..8].copy_from_slice(b"BEUSLOG\0");
    assert_eq!(decode_header(&zero_after_magic), Err(HeaderError::BadCrc));
    for byte in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut bad = h;
            bad[byte] ^= 1 << bit;
            let expected = if byte < 8 {
                HeaderError::BadMagic
            } else {
                HeaderError::BadCrc
            };
            assert_eq!(decode_header(&bad), Err(expected), "byte {byte} bit {bit}");
        }
    }
    let with = |version: u16, kind: u16| {
        let mut h = encode_header(SegmentKind::Log, 42);
        h[8..10].copy_from_slice(&version.to_le_bytes());
        h[10..12].copy_from_slice(&kind.to_le_bytes());
        let crc = mask(crc32c::crc32c(&h[..20]));
        h[20..].copy_from_slice(&crc.to_le_bytes());
        h
    };
    assert_eq!(decode_header(&with(2, 0)), Err(HeaderError::Version(2)));
    assert_eq!(decode_header(&with(0, 0)), Err(HeaderError::Version(0)));
    assert_eq!(decode_header(&with(1, 2)), Err(HeaderError::Kind(2)));
    assert_eq!(
        decode_header(&with(1, 1)),
        Ok(SegmentHeader {
            kind: SegmentKind::Base,
            seq: 42
        })
    );
}

/// A segment-like buffer: a header, then a mix of records, many of them short
/// (DEL, LEASED) as in real traffic.
fn segment() -> (Vec<u8>, Vec<usize>, Vec<Record<'static>>) {
    let records = vec![
        Record::Ids { next: 1000 },
        Record::Queue {
            queue: 1,
            name: "jobs",
        },
        Record::Put {
            queue: 1,
            id: 1,
            due_ms: 0,
            priority: 0,
            attempt: 0,
            charged: 0,
            payload: b"first message",
        },
        Record::Leased {
            id: 1,
            attempt: 1,
            max_deliveries: 5,
        },
        Record::Put {
            queue: 1,
            id: 2,
            due_ms: 1_700_000_000_123,
            priority: 3,
            attempt: 0,
            charged: 0,
            payload: &[0; 40],
        },
        Record::Requeue {
            id: 1,
            attempt: 1,
            charged: 1,
            due_ms: 1_700_000_001_000,
        },
        Record::Move {
            id: 2,
            queue: 1,
            attempt: 0,
            charged: 0,
        },
        Record::Del { id: 1 },
        Record::Purge { queue: 1 },
    ];
    let mut buf = encode_header(SegmentKind::Log, 7).to_vec();
    let mut offsets = Vec::new();
    for r in &records {
        offsets.push(buf.len());
        encode(r, &mut buf);
    }
    (buf, offsets, records)
}

fn scan_segment(buf: &[u8]) -> (Vec<(usize, Record<'_>)>, ScanEnd) {
    let mut s = Scanner::new(buf, HEADER_LEN);
    let records: Vec<_> = s.by_ref().collect();
    let end = s.end();
    assert_eq!(
        s.offset(),
        match end {
            ScanEnd::Clean => buf.len(),
            ScanEnd::ZeroTail { offset }
            | ScanEnd::Torn { offset }
            | ScanEnd::Damaged { offset, .. } => offset,
        },
        "offset() is where the scan stopped"
    );
    (records, end)
}

fn first(
    records: &[Record<'static>],
    offsets: &[usize],
    n: usize,
) -> Vec<(usize, Record<'static>)> {
    offsets[..n]
        .iter()
        .copied()
        .zip(records[..n].iter().copied())
        .collect()
}

#[test]
fn clean_end_and_empty_segments() {
    let (buf, offsets, records) = segment();
    assert_eq!(
        scan_segment(&buf),
        (first(&records, &offsets, records.len()), ScanEnd::Clean)
    );
    assert_eq!(scan_segment(&buf[..HEADER_LEN]), (vec![], ScanEnd::Clean));
    assert_eq!(scan_all(&[]), (vec![], ScanEnd::Clean));
    let mut past = Scanner::new(&buf, buf.len() + 10);
    assert_eq!(past.next(), None);
    assert_eq!(past.end(), ScanEnd::Clean);
}

/// `end()` before the iteration finished says how it will finish, and changes
/// nothing.
#[test]
fn end_before_iterating() {
    let (mut buf, offsets, records) = segment();
    buf.extend_from_slice(&[0; 100]);
    let mut s = Scanner::new(&buf, HEADER_LEN);
    let end = ScanEnd::ZeroTail {
        offset: offsets[records.len() - 1] + encoded_len(&records[records.len() - 1]),
    };
    assert_eq!(s.end(), end);
    assert_eq!(s.next(), Some((offsets[0], records[0])));
    assert_eq!(s.end(), end);
    assert_eq!(s.count(), records.len() - 1);
}

/// Zeros after the records (a preallocated segment, or 4 KiB of zeros the file
/// system left after a crash) are the end of the segment, however many.
#[test]
fn zero_tail_is_the_end() {
    let (buf, offsets, records) = segment();
    let all = first(&records, &offsets, records.len());
    for zeros in [1, 3, 7, 8, 9, 100, 4096] {
        let mut b = buf.clone();
        b.resize(buf.len() + zeros, 0);
        assert_eq!(
            scan_segment(&b),
            (all.clone(), ScanEnd::ZeroTail { offset: buf.len() }),
            "{zeros} zeros"
        );
    }
    // Zeros, then anything else, is not a zero tail.
    let mut b = buf.clone();
    b.resize(buf.len() + 4096, 0);
    b.push(1);
    assert_eq!(
        scan_segment(&b),
        (
            all,
            ScanEnd::Damaged {
                offset: buf.len(),
                reason: Damage::BadLen(0)
            }
        )
    );
}

/// Random bytes after the records end the scan there (Damaged, or Torn when they
/// read as a length running past the end); none is taken for a record.
#[test]
fn garbage_tail_yields_nothing() {
    let (buf, offsets, records) = segment();
    let all = first(&records, &offsets, records.len());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..2000 {
        let n = 1 + rng.index(if round % 2 == 0 { 16 } else { 4096 });
        let mut b = buf.clone();
        b.extend((0..n).map(|_| rng.byte()));
        if b[buf.len()..].iter().all(|&x| x == 0) {
            continue;
        }
        let (read, end) = scan_segment(&b);
        assert_eq!(read, all, "round {round}");
        assert!(
            matches!(
                end,
                ScanEnd::Damaged { offset, .. } | ScanEnd::Torn { offset } if offset == buf.len()
            ),
            "round {round}: {end:?}"
        );
    }
    // Garbage whose first four bytes are a plausible length is torn, with a length
    // too large damaged.
    for (len, expected) in [
        (1000u32, ScanEnd::Torn { offset: buf.len() }),
        (
            MAX_RECORD_LEN + 1,
            ScanEnd::Damaged {
                offset: buf.len(),
                reason: Damage::BadLen(MAX_RECORD_LEN + 1),
            },
        ),
        (
            u32::MAX,
            ScanEnd::Damaged {
                offset: buf.len(),
                reason: Damage::BadLen(u32::MAX),
            },
        ),
    ] {
        let mut b = buf.clone();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&[0x55; 20]);
        assert_eq!(scan_segment(&b).1, expected);
    }
}

/// A write cut short at every byte of each of the last three records (as a crash
/// leaves a file: a prefix), and the same prefixes followed by the zeros of a
/// preallocated file: the scan yields exactly the records before the cut one and
/// stops at its start; at a record boundary it ends cleanly (or at the zeros).
#[test]
fn torn_write_at_every_offset() {
    let (buf, offsets, records) = segment();
    let n = records.len();
    for r in n - 3..n {
        let start = offsets[r];
        let end = start + encoded_len(&records[r]);
        for cut in start + 1..=end {
            let before = if cut == end { r + 1 } else { r };
            let expected_records = first(&records, &offsets, before);
            let prefix = &buf[..cut];
            let (read, how) = scan_segment(prefix);
            assert_eq!(read, expected_records, "record {r} cut at {cut}");
            if cut == end {
                assert_eq!(how, ScanEnd::Clean, "cut at {cut}");
            } else {
                let zeros = prefix[start..].iter().all(|&b| b == 0);
                let expected = if zeros {
                    ScanEnd::ZeroTail { offset: start }
                } else {
                    ScanEnd::Torn { offset: start }
                };
                assert_eq!(how, expected, "record {r} cut at {cut}");
            }

            // In a zero-filled file the missing bytes read as zeros; when the record's
            // own missing bytes were zeros anyway, it is whole and is read.
            let mut prealloc = prefix.to_vec();
            prealloc.resize(buf.len() + 4096, 0);
            let whole = buf[cut..end].iter().all(|&b| b == 0);
            let (read, how) = scan_segment(&prealloc);
            let expected_records = first(&records, &offsets, if whole { r + 1 } else { r });
            assert_eq!(
                read, expected_records,
                "preallocated, record {r} cut at {cut}"
            );
            let stop = if whole { end } else { start };
            assert!(
                matches!(
                    how,
                    ScanEnd::ZeroTail { offset }
                    | ScanEnd::Torn { offset }
                    | ScanEnd::Damaged { offset, .. } if offset == stop
                ),
                "preallocated, record {r} cut at {cut}: {how:?}"
            );
        }
    }
}

/// One flipped bit anywhere in a record (every bit of every byte, every record)
/// stops the scan at that record: Damaged, or Torn when the flip is in `len` and
/// makes the record run past the end. The records before it are read; no wrong
/// record ever is.
#[test]
fn flipped_bit_in_every_byte_is_damage() {
    let (buf, offsets, records) = segment();
    for (r, &start) in offsets.iter().enumerate() {
        let end = start + encoded_len(&records[r]);
        for byte in start..end {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                let (read, how) = scan_segment(&b);
                let what = format!("record {r}, byte {}, bit {bit}", byte - start);
                assert_eq!(read, first(&records, &offsets, r), "{what}");
                match how {
                    ScanEnd::Damaged { offset, .. } => assert_eq!(offset, start, "{what}"),
                    ScanEnd::Torn { offset } => {
                        assert_eq!(offset, start, "{what}");
                        assert!(byte < start + 4, "{what}: torn without touching len");
                    }
                    other => panic!("{what}: {other:?}"),
                }
            }
        }
    }
}

/// The same records read from a base and from a log, and offsets count from the
/// buffer's start (file offsets) whatever `start` is.
#[test]
fn offsets_are_file_offsets() {
    let (buf, offsets, _) = segment();
    let got: Vec<usize> = Scanner::new(&buf, HEADER_LEN).map(|(o, _)| o).collect();
    assert_eq!(got, offsets);
    let got: Vec<usize> = Scanner::new(&buf, offsets[3]).map(|(o, _)| o).collect();
    assert_eq!(got, offsets[3..]);
}

// ---- replay ----

fn replay(records: &[Record<'_>]) -> Recovered {
    let mut r = Replay::new();
    for rec in records {
        r.apply(rec);
    }
    r.finish()
}

fn put(queue: u32, id: u64, payload: &[u8]) -> Record<'_> {
    Record::Put {
        queue,
        id,
        due_ms: 0,
        priority: 0,
        attempt: 0,
        charged: 0,
        payload,
    }
}

/// (queue name, ids) of a result, to compare briefly.
fn shape(r: &Recovered) -> Vec<(&str, Vec<u64>)> {
    r.queues
        .iter()
        .map(|q| (q.name.as_str(), q.messages.iter().map(|m| m.id).collect()))
        .collect()
}

#[test]
fn empty_replay() {
    let r = replay(&[]);
    assert_eq!(
        r,
        Recovered {
            queues: vec![],
            bindings: vec![],
            schedules: vec![],
            keys: vec![],
            next_id: 0,
            ignored: 0
        }
    );
}

/// A later PUT of an id replaces its whole state, including its queue.
#[test]
fn put_replaces_state() {
    let r = replay(&[
        Record::Queue {
            queue: 1,
            name: "a",
        },
        Record::Queue {
            queue: 2,
            name: "b",
        },
        put(1, 5, b"old"),
        Record::Leased {
            id: 5,
            attempt: 1,
            max_deliveries: 3,
        },
        Record::Put {
            queue: 2,
            id: 5,
            due_ms: 77,
            priority: 4,
            attempt: 2,
            charged: 1,
            payload: b"new",
        },
    ]);
    assert_eq!(
        r.queues,
        vec![RecoveredQueue {
            name: "b".into(),
            messages: vec![RecoveredMessage {
                id: 5,
                due_ms: 77,
                priority: 4,
                attempt: 2,
                charged: 1,
                in_flight: None,
                order: None,
                payload: (*b"new").into(),
                subject: None,
                expires: None,
            }],
        }]
    );
    assert_eq!(r.ignored, 0);
}

/// Records about ids that do not exist, or queue numbers never bound, change
/// nothing and are counted; a DEL removes only its id.
#[test]
fn unknown_ids_and_queues_are_ignored_and_counted() {
    let r = replay(&[
        Record::Queue {
            queue: 1,
            name: "a",
        },
        put(1, 1, b"x"),
        Record::Del { id: 9 },
        Record::Leased {
            id: 9,
            attempt: 1,
            max_deliveries: 1,
        },
        Record::Requeue {
            id: 9,
            attempt: 1,
            charged: 1,
            due_ms: 0,
        },
        Record::Move {
            id: 9,
            queue: 1,
            attempt: 0,
            charged: 0,
        },
        Record::Move {
            id: 1,
            queue: 2,
            attempt: 0,
            charged: 0,
        },
        put(2, 3, b"y"),
        Record::Purge { queue: 2 },
        put(1, 2, b"z"),
        Record::Del { id: 2 },
        Record::Del { id: 2 },
    ]);
    assert_eq!(shape(&r), [("a", vec![1])]);
    assert_eq!(r.ignored, 8);
    assert_eq!(r.queues[0].messages[0].payload[..], *b"x");
    // Ids named by ignored records still count for next_id.
    assert_eq!(r.next_id, 10);
}

/// MOVE puts the message in the other queue, ready now and not in flight, keeping
/// its payload and priority and taking the record's counters.
#[test]
fn move_changes_queue() {
    let r = replay(&[
        Record::Queue {
            queue: 1,
            name: "work",
        },
        Record::Queue {
            queue: 2,
            name: "dead",
        },
        Record::Put {
            queue: 1,
            id: 1,
            due_ms: 500,
            priority: 7,
            attempt: 0,
            charged: 0,
            payload: b"p",
        },
        Record::Leased {
            id: 1,
            attempt: 3,
            max_deliveries: 3,
        },
        Record::Move {
            id: 1,
            queue: 2,
            attempt: 3,
            charged: 3,
        },
    ]);
    assert_eq!(
        r.queues,
        vec![RecoveredQueue {
            name: "dead".into(),
            messages: vec![RecoveredMessage {
                id: 1,
                due_ms: 0,
                priority: 7,
                attempt: 3,
                charged: 3,
                in_flight: None,
                order: Some(0),
                payload: (*b"p").into(),
                subject: None,
                expires: None,
            }],
        }]
    );
}

/// PURGE empties its queue (in flight too) and only that one; the queue can fill
/// again after.
#[test]
fn purge_empties_one_queue() {
    let r = replay(&[
        Record::Queue {
            queue: 1,
            name: "a",
        },
        Record::Queue {
            queue: 2,
            name: "b",
        },
        put(1, 1, b""),
        put(1, 2, b""),
        Record::Leased {
            id: 2,
            attempt: 1,
            max_deliveries: 0,
        },
        put(2, 3, b""),
        Record::Purge { queue: 1 },
        put(1, 4, b""),
        // Gone with the purge, and now forgotten.
        Record::Del { id: 1 },
        Record::Del { id: 1 },
    ]);
    assert_eq!(shape(&r), [("a", vec![4]), ("b", vec![3])]);
    assert_eq!(r.ignored, 1);
    assert_eq!(shape(&replay(&[Record::Purge { queue: 1 }])), []);
}

/// A PURGE replayed from a log older than the base must not lose a message the
/// base holds: the base has `m` in `dead` (moved there after the purge), the
/// overlapping log purges `dead` and then moves `m` there. The MOVE brings `m` back.
#[test]
fn purge_then_move_of_a_base_message_keeps_it() {
    let base = [
        Record::Queue {
            queue: 1,
            name: "work",
        },
        Record::Queue {
            queue: 2,
            name: "dead",
        },
        Record::Put {
            queue: 2,
            id: 7,
            due_ms: 0,
            priority: 3,
            attempt: 5,
            charged: 5,
            payload: b"poison",
        },
    ];
    let log = [
        Record::Leased {
            id: 7,
            attempt: 5,
            max_deliveries: 5,
        },
        Record::Purge { queue: 2 },
        Record::Move {
            id: 7,
            queue: 2,
            attempt: 5,
            charged: 5,
        },
    ];
    let mut recs = base.to_vec();
    recs.extend_from_slice(&log);
    let r = replay(&recs);
    assert_eq!(shape(&r), [("dead", vec![7])]);
    let m = &r.queues[0].messages[0];
    assert_eq!(
        (m.priority, m.attempt, m.charged, m.in_flight),
        (3, 5, 5, None)
    );
    assert_eq!(m.payload[..], *b"poison");
    // A purged message that no later record names stays purged, and one whose id a
    // later DEL or PUT names is not brought back by a record after that.
    let mut recs = base.to_vec();
    recs.push(Record::Purge { queue: 2 });
    assert_eq!(shape(&replay(&recs)), []);
    recs.push(Record::Del { id: 7 });
    recs.push(Record::Move {
        id: 7,
        queue: 1,
        attempt: 5,
        charged: 5,
    });
    let r = replay(&recs);
    assert_eq!(shape(&r), []);
    assert_eq!(r.ignored, 1);
    // LEASED and REQUEUE bring it back too, in the queue it was purged from.
    let mut recs = base.to_vec();
    recs.push(Record::Purge { queue: 2 });
    recs.push(Record::Leased {
        id: 7,
        attempt: 6,
        max_deliveries: 9,
    });
    let r = replay(&recs);
    assert_eq!(shape(&r), [("dead", vec![7])]);
    assert_eq!(r.queues[0].messages[0].in_flight, Some(9));
}

/// next_id is at least every IDS record's `next` and above every id seen; a lower
/// IDS later does not lower it; u64::MAX does not overflow.
#[test]
fn ids_raise_next_id() {
    let q = Record::Queue {
        queue: 0,
        name: "q",
    };
    assert_eq!(replay(&[Record::Ids { next: 100 }]).next_id, 100);
    assert_eq!(
        replay(&[Record::Ids { next: 100 }, Record::Ids { next: 50 }]).next_id,
        100
    );
    assert_eq!(replay(&[q, put(0, 7, b"")]).next_id, 8);
    assert_eq!(
        replay(&[q, Record::Ids { next: 5 }, put(0, 7, b"")]).next_id,
        8
    );
    assert_eq!(
        replay(&[q, put(0, 7, b""), Record::Del { id: 7 }]).next_id,
        8,
        "a deleted id is not handed out again"
    );
    assert_eq!(replay(&[q, put(0, u64::MAX, b"")]).next_id, u64::MAX);
    let mut r = Replay::new();
    r.apply(&Record::Ids { next: 10 });
    r.apply(&Record::Del { id: 20 });
    assert_eq!(r.next_id(), 21);
    assert_eq!(r.finish().next_id, 21);
}

/// A queue number names the queue of its latest QUEUE record: rebinding sends later
/// records to the new queue and leaves the old one's messages where they are; two
/// numbers bound to one name are one queue.
#[test]
fn queue_numbers_rebind() {
    let r = replay(&[
        Record::Queue {
            queue: 1,
            name: "a",
        },
        put(1, 1, b""),
        Record::Queue {
            queue: 1,
            name: "b",
        },
        put(1, 2, b""),
        Record::Queue {
            queue: 9,
            name: "a",
        },
        put(9, 3, b""),
        Record::Purge { queue: 1 },
    ]);
    assert_eq!(shape(&r), [("a", vec![1, 3])]);
}

/// Messages come out by id within a queue, queues by name, and queues left without
/// messages are not listed.
#[test]
fn sorted_and_empty_queues_left_out() {
    let mut recs = vec![
        Record::Queue {
            queue: 1,
            name: "zeta",
        },
        Record::Queue {
            queue: 2,
            name: "alpha",
        },
        Record::Queue {
            queue: 3,
            name: "empty",
        },
        put(3, 1000, b""),
        Record::Del { id: 1000 },
    ];
    let mut rng = Rng(42);
    let mut ids: Vec<u64> = (1..=200).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.index(i + 1));
    }
    for &id in &ids {
        recs.push(put(1 + (id % 2) as u32, id, b""));
    }
    let r = replay(&recs);
    let names: Vec<&str> = r.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    for q in &r.queues {
        assert_eq!(q.messages.len(), 100);
        assert!(
            q.messages.windows(2).all(|w| w[0].id < w[1].id),
            "{}",
            q.name
        );
    }
}

/// `in_flight` is `Some(max_deliveries)` after LEASED, and None after REQUEUE, MOVE
/// or PUT; LEASED keeps the rest of the state.
#[test]
fn in_flight_follows_leases() {
    let base = [
        Record::Queue {
            queue: 1,
            name: "q",
        },
        Record::Put {
            queue: 1,
            id: 1,
            due_ms: 99,
            priority: 2,
            attempt: 0,
            charged: 0,
            payload: b"m",
        },
        Record::Leased {
            id: 1,
            attempt: 1,
            max_deliveries: 4,
        },
    ];
    let one = |extra: &[Record<'_>]| {
        let mut recs = base.to_vec();
        recs.extend_from_slice(extra);
        let mut r = replay(&recs);
        assert_eq!(r.queues.len(), 1);
        r.queues.remove(0).messages.remove(0)
    };
    let leased = one(&[]);
    assert_eq!(leased.in_flight, Some(4));
    assert_eq!((leased.attempt, leased.due_ms, leased.priority), (1, 99, 2));
    let requeued = one(&[Record::Requeue {
        id: 1,
        attempt: 1,
        charged: 1,
        due_ms: 5000,
    }]);
    assert_eq!(requeued.in_flight, None);
    assert_eq!(
        (requeued.attempt, requeued.charged, requeued.due_ms),
        (1, 1, 5000)
    );
    let moved = one(&[Record::Move {
        id: 1,
        queue: 1,
        attempt: 1,
        charged: 1,
    }]);
    assert_eq!(moved.in_flight, None);
    assert_eq!(one(&[put(1, 1, b"m")]).in_flight, None);
    let released = one(&[Record::Leased {
        id: 1,
        attempt: 2,
        max_deliveries: 0,
    }]);
    assert_eq!((released.in_flight, released.attempt), (Some(0), 2));
}

// ---- bindings and subjects ----

fn queue(queue: u32, name: &str) -> Record<'_> {
    Record::Queue { queue, name }
}

fn bind(queue: u32, pattern: &str) -> Record<'_> {
    Record::Bind { queue, pattern }
}

fn unbind(queue: u32, pattern: &str) -> Record<'_> {
    Record::Unbind { queue, pattern }
}

fn subject(id: u64, subject: &str) -> Record<'_> {
    Record::Subject { id, subject }
}

/// (queue, pattern) of every binding, to compare briefly.
fn bound(r: &Recovered) -> Vec<(&str, &str)> {
    r.bindings
        .iter()
        .map(|b| (b.queue.as_str(), b.pattern.as_str()))
        .collect()
}

/// The subject of each message, by queue, in id order.
fn subjects(r: &Recovered) -> Vec<(u64, Option<&str>)> {
    r.queues
        .iter()
        .flat_map(|q| q.messages.iter().map(|m| (m.id, m.subject.as_deref())))
        .collect()
}

/// BIND adds, UNBIND removes, the last record about a binding decides; bindings are
/// listed by queue, then pattern.
#[test]
fn bind_and_unbind_sequences() {
    let r = replay(&[
        queue(1, "b"),
        queue(2, "a"),
        bind(1, "x.>"),
        bind(1, "orders.*"),
        bind(2, "orders.*"),
        unbind(1, "x.>"),
        bind(2, "z"),
        unbind(2, "z"),
        bind(2, "z"),
        bind(1, "m"),
        unbind(1, "m"),
    ]);
    assert_eq!(
        bound(&r),
        [("a", "orders.*"), ("a", "z"), ("b", "orders.*")]
    );
    assert_eq!(r.ignored, 0);
    assert_eq!(
        r.bindings[0],
        RecoveredBinding {
            queue: "a".into(),
            pattern: "orders.*".into()
        }
    );
    // Patterns are compared as bytes: no normalisation, case counts.
    let r = replay(&[queue(0, "q"), bind(0, "A"), bind(0, "a"), unbind(0, "A")]);
    assert_eq!(bound(&r), [("q", "a")]);
}

/// Binding twice is binding once, also through two numbers bound to one name; an
/// UNBIND then removes it.
#[test]
fn duplicate_bind_is_one_binding() {
    let recs = [
        queue(1, "q"),
        bind(1, "a.*"),
        bind(1, "a.*"),
        queue(2, "q"),
        bind(2, "a.*"),
    ];
    let r = replay(&recs);
    assert_eq!(bound(&r), [("q", "a.*")]);
    assert_eq!(r.ignored, 0);
    let mut more = recs.to_vec();
    more.push(unbind(1, "a.*"));
    assert_eq!(bound(&replay(&more)), []);
}

/// A binding goes with the name its number had when it was logged: rebinding the
/// number sends later BINDs to the new name and leaves the old name's bindings.
#[test]
fn bindings_follow_queue_names() {
    let r = replay(&[
        queue(1, "old"),
        bind(1, "p"),
        queue(1, "new"),
        bind(1, "q"),
        unbind(1, "p"),
    ]);
    assert_eq!(bound(&r), [("new", "q"), ("old", "p")]);
    // The UNBIND named "new", which had no "p".
    assert_eq!(r.ignored, 1);
}

/// BIND or UNBIND of a number no QUEUE record bound, and UNBIND of a binding that is
/// not there, change nothing and are counted.
#[test]
fn unknown_bindings_are_ignored_and_counted() {
    let r = replay(&[
        bind(5, "p"),
        unbind(5, "p"),
        queue(1, "q"),
        unbind(1, "p"),
        bind(1, "p"),
        unbind(1, "p"),
        unbind(1, "p"),
    ]);
    assert_eq!(bound(&r), []);
    assert_eq!(shape(&r), []);
    assert_eq!(r.ignored, 4);
}

/// A queue with a binding is recovered even with no messages (the store recreates
/// it for its bindings); an unbound one without messages is not, and a bound one
/// whose last binding goes is not either.
#[test]
fn bound_empty_queue_is_recovered() {
    let recs = [
        queue(1, "bound"),
        queue(2, "idle"),
        queue(3, "full"),
        bind(1, "a"),
        put(1, 1, b""),
        Record::Del { id: 1 },
        put(3, 2, b"m"),
        bind(3, "b"),
    ];
    let r = replay(&recs);
    assert_eq!(shape(&r), [("bound", vec![]), ("full", vec![2])]);
    assert_eq!(bound(&r), [("bound", "a"), ("full", "b")]);
    assert!(
        r.bindings
            .iter()
            .all(|b| r.queues.iter().any(|q| q.name == b.queue))
    );
    let mut more = recs.to_vec();
    more.push(unbind(1, "a"));
    let r = replay(&more);
    assert_eq!(shape(&r), [("full", vec![2])]);
    assert_eq!(bound(&r), [("full", "b")]);
}

/// PURGE removes a queue's messages, never its bindings.
#[test]
fn purge_keeps_bindings() {
    let r = replay(&[
        queue(1, "q"),
        bind(1, "orders.>"),
        put(1, 1, b""),
        Record::Leased {
            id: 1,
            attempt: 1,
            max_deliveries: 0,
        },
        put(1, 2, b""),
        Record::Purge { queue: 1 },
    ]);
    assert_eq!(shape(&r), [("q", vec![])]);
    assert_eq!(bound(&r), [("q", "orders.>")]);
}

/// A SUBJECT sets the subject of the message its PUT just made; LEASED, REQUEUE,
/// MOVE (dead-lettering) and PURGE-and-back keep it; a later PUT of the id resets it
/// to none and a SUBJECT after that sets it again; the last SUBJECT wins.
#[test]
fn subject_follows_its_put() {
    let r = replay(&[
        queue(1, "q"),
        queue(2, "q.dead"),
        put(1, 1, b"a"),
        subject(1, "orders.eu.created"),
        put(1, 2, b"b"),
        Record::Leased {
            id: 1,
            attempt: 1,
            max_deliveries: 1,
        },
        Record::Move {
            id: 1,
            queue: 2,
            attempt: 1,
            charged: 0,
        },
        Record::Requeue {
            id: 1,
            attempt: 1,
            charged: 0,
            due_ms: 0,
        },
        put(1, 3, b"c"),
        subject(3, "first"),
        subject(3, "second"),
    ]);
    assert_eq!(
        subjects(&r),
        [
            (2, None),
            (3, Some("second")),
            (1, Some("orders.eu.created"))
        ]
    );
    assert_eq!(r.ignored, 0);
    // A later PUT (a snapshot re-putting it, or a move logged as a PUT) resets it;
    // the SUBJECT that follows restates it.
    let base = [queue(1, "q"), put(1, 1, b"a"), subject(1, "s.1")];
    let mut recs = base.to_vec();
    recs.push(put(1, 1, b"a"));
    assert_eq!(subjects(&replay(&recs)), [(1, None)]);
    recs.push(subject(1, "s.2"));
    assert_eq!(subjects(&replay(&recs)), [(1, Some("s.2"))]);
    // Set aside by a PURGE and brought back by a MOVE: kept.
    let mut recs = base.to_vec();
    recs.push(Record::Purge { queue: 1 });
    recs.push(Record::Move {
        id: 1,
        queue: 1,
        attempt: 0,
        charged: 0,
    });
    assert_eq!(subjects(&replay(&recs)), [(1, Some("s.1"))]);
}

/// A SUBJECT of an id that is not a live message (never put, put into an unbound
/// queue number, deleted, or purged) changes nothing and is counted; its id still
/// counts for the next id.
#[test]
fn subject_of_an_unknown_id_is_ignored() {
    let r = replay(&[
        queue(1, "q"),
        subject(40, "s"),
        put(9, 2, b""),
        subject(2, "s"),
        put(1, 3, b""),
        Record::Del { id: 3 },
        subject(3, "s"),
        put(1, 4, b""),
        Record::Purge { queue: 1 },
        subject(4, "s"),
        put(1, 5, b""),
    ]);
    assert_eq!(subjects(&r), [(5, None)]);
    // PUT into number 9 and the four SUBJECTs.
    assert_eq!(r.ignored, 5);
    assert_eq!(r.next_id, 41);
    // The purged message stays purged: the SUBJECT did not bring it back.
    assert_eq!(shape(&r), [("q", vec![5])]);
}

/// Bindings and subjects through bytes and files: a base, then the log opened with
/// it (overlapping the base: it repeats a BIND and an UNBIND the base includes), and
/// one more log; an older log the base replaced is not read.
#[test]
fn bindings_survive_base_and_logs_on_disk() {
    let dir = std::env::temp_dir().join(format!("beuss-journal-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, kind: SegmentKind, seq: u64, records: &[Record<'_>]| {
        let mut buf = encode_header(kind, seq).to_vec();
        for r in records {
            encode(r, &mut buf);
        }
        std::fs::write(dir.join(name), buf).unwrap();
    };
    // Replaced by the base: its UNBIND must not be applied.
    write(
        "0000000000000003.log",
        SegmentKind::Log,
        3,
        &[
            queue(0, "audit"),
            bind(0, "orders.>"),
            unbind(0, "orders.>"),
        ],
    );
    write(
        "0000000000000004.base",
        SegmentKind::Base,
        4,
        &[
            Record::Ids { next: 10 },
            queue(0, "audit"),
            queue(1, "mail"),
            bind(0, "orders.>"),
            bind(1, "orders.*.created"),
            bind(1, "users.*"),
            put(0, 7, b"order"),
            subject(7, "orders.eu.created"),
        ],
    );
    write(
        "0000000000000004.log",
        SegmentKind::Log,
        4,
        &[
            queue(0, "audit"),
            queue(1, "mail"),
            // Already in the base: applied again, the same state.
            bind(1, "users.*"),
            put(0, 7, b"order"),
            subject(7, "orders.eu.created"),
            // New since the base.
            unbind(1, "users.*"),
            queue(2, "search"),
            bind(2, ">"),
        ],
    );
    write(
        "0000000000000005.log",
        SegmentKind::Log,
        5,
        &[
            queue(0, "audit"),
            queue(1, "mail"),
            queue(2, "search"),
            unbind(0, "orders.>"),
            bind(0, "orders.eu.*"),
            put(1, 10, b"copy"),
            subject(10, "orders.us.created"),
        ],
    );
    let (r, report) = files::load(&dir, false).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(report.files, 3);
    assert_eq!(
        bound(&r),
        [
            ("audit", "orders.eu.*"),
            ("mail", "orders.*.created"),
            ("search", ">")
        ]
    );
    assert_eq!(
        shape(&r),
        [("audit", vec![7]), ("mail", vec![10]), ("search", vec![])]
    );
    assert_eq!(
        subjects(&r),
        [
            (7, Some("orders.eu.created")),
            (10, Some("orders.us.created"))
        ]
    );
    assert_eq!(r.ignored, 0);
    assert_eq!(r.next_id, 11);
}

// ---- replay against a model of the server ----

/// What the model knows of one message.
#[derive(Clone)]
struct ModelMsg {
    queue: &'static str,
    due_ms: u64,
    priority: u8,
    attempt: u32,
    charged: u16,
    in_flight: Option<u16>,
    /// Waits at the end of its queue when ready (put, moved, or never delivered
    /// and its delay ran out), rather than with the returned ones.
    fifo: bool,
    payload: &'static [u8],
    /// The subject it was published to; `None` for a plain PUT.
    subject: Option<&'static str>,
}

/// A writer that behaves as the server should: it binds a number before using it,
/// frees a number once its queue is empty and unbound (and may bind it to another
/// name later), hands out increasing ids, logs a SUBJECT after every PUT of a
/// published message, and logs every change as the spec says.
struct Model {
    rng: Rng,
    /// Log a move as a PUT with the message's whole state instead of a MOVE.
    moves_as_put: bool,
    /// Forget the numbers of empty queues, so that numbers get bound again to other
    /// names.
    frees: bool,
    names: HashMap<&'static str, u32>,
    messages: BTreeMap<u64, ModelMsg>,
    /// (queue, pattern) bound now.
    bindings: BTreeSet<(&'static str, &'static str)>,
    next_id: u64,
    ids_reserved: u64,
    log: Vec<Record<'static>>,
    payloads: Vec<&'static [u8]>,
}

const NAMES: [&str; 4] = ["a", "b", "c", "dead"];
const PATTERNS: [&str; 4] = ["orders.*", "orders.>", "*", "orders.eu.created"];
const SUBJECTS: [&str; 3] = ["orders.eu.created", "orders.us", "x"];

impl Model {
    fn new(seed: u64, moves_as_put: bool, frees: bool) -> Self {
        Model {
            rng: Rng(seed),
            moves_as_put,
            frees,
            names: HashMap::new(),
            messages: BTreeMap::new(),
            bindings: BTreeSet::new(),
            next_id: 1,
            ids_reserved: 1,
            log: Vec::new(),
            payloads: vec![b"", b"x", b"payload", &[0, 1, 2, 3, 255]],
        }
    }

    fn number(&mut self, name: &'static str) -> u32 {
        if let Some(&n) = self.names.get(name) {
            return n;
        }
        // The lowest free number, so numbers do get reused for other names.
        let n = (0..)
            .find(|n| !self.names.values().any(|v| v == n))
            .unwrap_or(0);
        self.names.insert(name, n);
        self.log.push(Record::Queue { queue: n, name });
        n
    }

    /// Forgets the numbers of queues with no messages and no bindings (the server
    /// dropping an idle queue; a bound one never is).
    fn free_empty(&mut self) {
        let (messages, bindings) = (&self.messages, &self.bindings);
        self.names.retain(|name, _| {
            messages.values().any(|m| m.queue == *name) || bindings.iter().any(|b| b.0 == *name)
        });
    }

    /// Logs the PUT of message `id` as it is now, and its SUBJECT if it has one.
    fn log_put(&mut self, queue: u32, id: u64) {
        let m = &self.messages[&id];
        self.log.push(Record::Put {
            queue,
            id,
            due_ms: m.due_ms,
            priority: m.priority,
            attempt: m.attempt,
            charged: m.charged,
            payload: m.payload,
        });
        if let Some(subject) = m.subject {
            self.log.push(Record::Subject { id, subject });
        }
    }

    fn pick(&mut self, f: impl Fn(&ModelMsg) -> bool) -> Option<u64> {
        let ids: Vec<u64> = self
            .messages
            .iter()
            .filter(|(_, m)| f(m))
            .map(|(&id, _)| id)
            .collect();
        (!ids.is_empty()).then(|| ids[self.rng.index(ids.len())])
    }

    fn step(&mut self) {
        match self.rng.below(24) {
            0..=6 => {
                let name = NAMES[self.rng.index(NAMES.len())];
                let queue = self.number(name);
                let id = self.next_id;
                self.next_id += 1;
                if id >= self.ids_reserved {
                    self.ids_reserved = id + 8;
                    self.log.push(Record::Ids {
                        next: self.ids_reserved,
                    });
                }
                let payload = self.payloads[self.rng.index(self.payloads.len())];
                let due_ms = if self.rng.below(3) == 0 {
                    1_700_000_000_000 + self.rng.below(10_000)
                } else {
                    0
                };
                let priority = self.rng.below(3) as u8;
                // Half of them published (a copy routed into the queue).
                let subject =
                    (self.rng.below(2) == 0).then(|| SUBJECTS[self.rng.index(SUBJECTS.len())]);
                self.messages.insert(
                    id,
                    ModelMsg {
                        queue: name,
                        due_ms,
                        priority,
                        attempt: 0,
                        charged: 0,
                        in_flight: None,
                        fifo: true,
                        payload,
                        subject,
                    },
                );
                self.log_put(queue, id);
            }
            7..=9 => {
                if let Some(id) = self.pick(|m| m.in_flight.is_none()) {
                    let max = self.rng.below(4) as u16;
                    let m = self.messages.get_mut(&id).unwrap();
                    m.attempt += 1;
                    m.in_flight = Some(max);
                    self.log.push(Record::Leased {
                        id,
                        attempt: m.attempt,
                        max_deliveries: max,
                    });
                }
            }
            10..=12 => {
                if let Some(id) = self.pick(|_| true) {
                    self.messages.remove(&id);
                    self.log.push(Record::Del { id });
                }
            }
            13..=14 => {
                if let Some(id) = self.pick(|m| m.in_flight.is_some()) {
                    let due = self.rng.below(2) * 1_700_000_005_000;
                    let m = self.messages.get_mut(&id).unwrap();
                    m.charged += 1;
                    m.due_ms = due;
                    m.in_flight = None;
                    m.fifo = m.attempt == 0;
                    self.log.push(Record::Requeue {
                        id,
                        attempt: m.attempt,
                        charged: m.charged,
                        due_ms: due,
                    });
                }
            }
            15..=16 => {
                if let Some(id) = self.pick(|_| true) {
                    let name = NAMES[self.rng.index(NAMES.len())];
                    let queue = self.number(name);
                    let m = self.messages.get_mut(&id).unwrap();
                    m.queue = name;
                    m.due_ms = 0;
                    m.in_flight = None;
                    // A PUT of a message delivered before puts it with the returned.
                    m.fifo = !self.moves_as_put || m.attempt == 0;
                    let (attempt, charged) = (m.attempt, m.charged);
                    if self.moves_as_put {
                        self.log_put(queue, id);
                    } else {
                        self.log.push(Record::Move {
                            id,
                            queue,
                            attempt,
                            charged,
                        });
                    }
                }
            }
            17 => {
                let name = NAMES[self.rng.index(NAMES.len())];
                if let Some(&queue) = self.names.get(name) {
                    self.messages.retain(|_, m| m.queue != name);
                    self.log.push(Record::Purge { queue });
                }
            }
            18..=19 => {
                let name = NAMES[self.rng.index(NAMES.len())];
                let pattern = PATTERNS[self.rng.index(PATTERNS.len())];
                let queue = self.number(name);
                // Logged even when it exists (absolute): the server may, or may not.
                self.bindings.insert((name, pattern));
                self.log.push(Record::Bind { queue, pattern });
            }
            20 => {
                let all: Vec<_> = self.bindings.iter().copied().collect();
                if !all.is_empty() {
                    let (name, pattern) = all[self.rng.index(all.len())];
                    self.bindings.remove(&(name, pattern));
                    let queue = self.names[name];
                    self.log.push(Record::Unbind { queue, pattern });
                }
            }
            _ if self.frees => self.free_empty(),
            _ => {}
        }
    }

    /// What replay should give for the model's state now: queues with messages or
    /// bindings.
    fn expected(&self) -> Vec<RecoveredQueue> {
        let mut queues: BTreeMap<&str, Vec<RecoveredMessage>> = BTreeMap::new();
        for &(name, _) in &self.bindings {
            queues.entry(name).or_default();
        }
        for (&id, m) in &self.messages {
            queues.entry(m.queue).or_default().push(RecoveredMessage {
                id,
                due_ms: m.due_ms,
                priority: m.priority,
                attempt: m.attempt,
                charged: m.charged,
                in_flight: m.in_flight,
                order: m.fifo.then_some(0),
                payload: m.payload.into(),
                subject: m.subject.map(Into::into),
                expires: None,
            });
        }
        queues
            .into_iter()
            .map(|(name, messages)| RecoveredQueue {
                name: name.to_owned(),
                messages,
            })
            .collect()
    }

    /// The bindings replay should give, by queue then pattern.
    fn expected_bindings(&self) -> Vec<RecoveredBinding> {
        self.bindings
            .iter()
            .map(|&(queue, pattern)| RecoveredBinding {
                queue: queue.into(),
                pattern: pattern.into(),
            })
            .collect()
    }

    /// The QUEUE records of every number bound now: how a new segment starts.
    fn numbers(&self) -> Vec<Record<'static>> {
        self.names
            .iter()
            .map(|(&name, &queue)| Record::Queue { queue, name })
            .collect()
    }

    /// A base snapshot of the model's state now, as the rewrite would write it:
    /// the numbers bound, the bindings, each message's PUT and SUBJECT (and LEASED
    /// when in flight), and the ids handed out. The SUBJECT comes right after the
    /// PUT or after the record that follows it: either works.
    fn base(&self) -> Vec<Record<'static>> {
        let mut out = vec![Record::Ids {
            next: self.ids_reserved,
        }];
        out.extend(self.numbers());
        for &(name, pattern) in &self.bindings {
            out.push(Record::Bind {
                queue: self.names[name],
                pattern,
            });
        }
        for (&id, m) in &self.messages {
            let subject = m.subject.map(|subject| Record::Subject { id, subject });
            let Some(&queue) = self.names.get(m.queue) else {
                continue;
            };
            out.push(Record::Put {
                queue,
                id,
                due_ms: m.due_ms,
                priority: m.priority,
                attempt: m.attempt,
                charged: m.charged,
                payload: m.payload,
            });
            if id % 2 == 0 {
                out.extend(subject);
            }
            if let Some(max) = m.in_flight {
                out.push(Record::Leased {
                    id,
                    attempt: m.attempt,
                    max_deliveries: max,
                });
            } else if m.fifo && m.attempt > 0 {
                // Delivered before but moved to the end of its queue: a PUT alone
                // would put it with the returned ones (as the server's snapshot does).
                out.push(Record::Move {
                    id,
                    queue,
                    attempt: m.attempt,
                    charged: m.charged,
                });
            }
            if id % 2 == 1 {
                out.extend(subject);
            }
        }
        out
    }
}

/// Replaying the model's log gives the model's state, at every point of the log.
#[test]
fn replay_matches_a_model_of_the_server() {
    for seed in 1..=20u64 {
        let mut model = Model::new(seed * 0x1234_5678_9abc, seed % 2 == 0, seed % 3 != 0);
        let mut r = Replay::new();
        let mut applied = 0;
        for step in 0..400 {
            model.step();
            for rec in &model.log[applied..] {
                r.apply(rec);
            }
            applied = model.log.len();
            if step % 50 == 49 {
                let mut copy = Replay::new();
                for rec in &model.log {
                    copy.apply(rec);
                }
                let got = copy.finish();
                assert_eq!(got.queues, model.expected(), "seed {seed} step {step}");
                assert_eq!(
                    got.bindings,
                    model.expected_bindings(),
                    "seed {seed} step {step}"
                );
                assert_eq!(got.ignored, 0, "seed {seed}: a valid log ignores nothing");
                assert!(got.next_id >= model.next_id, "seed {seed} step {step}");
            }
        }
        let got = r.finish();
        assert_eq!(got.queues, model.expected(), "seed {seed}");
        assert_eq!(got.bindings, model.expected_bindings(), "seed {seed}");
        assert_eq!(got.ignored, 0, "seed {seed}");
    }
}

/// Idempotence: after the whole log, applying it again from any point changes
/// nothing but the ignored count. When queue numbers are never bound again to
/// another name, from any record; when they are, from any point where a segment
/// could start, restating its queue numbers first (as STORAGE.md requires).
#[test]
fn replaying_a_suffix_again_changes_nothing() {
    for seed in 1..=12u64 {
        let frees = seed % 2 == 0;
        let mut model = Model::new(seed, seed % 3 == 0, frees);
        let mut points = Vec::new();
        for _ in 0..120 {
            points.push((model.log.len(), model.numbers()));
            model.step();
        }
        let log = &model.log;
        let full = replay(log);
        assert_eq!(full.queues, model.expected());
        assert_eq!(full.bindings, model.expected_bindings());
        let from: Vec<(usize, Vec<Record<'static>>)> = if frees {
            points
        } else {
            (0..=log.len()).map(|k| (k, vec![])).collect()
        };
        for (k, numbers) in from {
            let mut twice = log.clone();
            twice.extend_from_slice(&numbers);
            twice.extend_from_slice(&log[k..]);
            let again = replay(&twice);
            assert_eq!(again.queues, full.queues, "seed {seed}, again from {k}");
            assert_eq!(again.bindings, full.bindings, "seed {seed}, again from {k}");
            assert_eq!(again.next_id, full.next_id, "seed {seed}, again from {k}");
        }
    }
}

/// Why a base plus the logs after it is consistent: a base snapshot taken at any
/// point `t`, followed by a log segment opened at any earlier point `k` (records the
/// base already includes, then newer ones), gives the same state as the whole log.
/// The segment starts by restating the queue numbers bound when it was opened, as
/// STORAGE.md requires: the base binds only the numbers of its own time.
#[test]
fn base_then_overlapping_log_gives_the_same_state() {
    for seed in 1..=8u64 {
        let mut model = Model::new(seed * 77, seed % 2 == 0, true);
        let mut points = Vec::new();
        for _ in 0..90 {
            points.push((model.log.len(), model.base(), model.numbers()));
            model.step();
        }
        let full = replay(&model.log);
        assert_eq!(full.queues, model.expected());
        assert_eq!(full.bindings, model.expected_bindings());
        for (t, base, _) in &points {
            for (k, _, numbers) in points.iter().take_while(|(k, ..)| k <= t) {
                let mut recs = base.clone();
                recs.extend_from_slice(numbers);
                recs.extend_from_slice(&model.log[*k..]);
                let got = replay(&recs);
                assert_eq!(
                    got.queues, full.queues,
                    "seed {seed}: base at {t}, log from {k}"
                );
                assert_eq!(
                    got.bindings, full.bindings,
                    "seed {seed}: base at {t}, log from {k}"
                );
                assert_eq!(
                    got.next_id, full.next_id,
                    "seed {seed}: base at {t}, log from {k}"
                );
            }
        }
    }
}

/// Encode, scan and replay together: the model's log through bytes gives the same
/// state as replaying the records directly.
#[test]
fn model_log_through_bytes() {
    let mut model = Model::new(99, false, true);
    for _ in 0..500 {
        model.step();
    }
    let (buf, _) = encode_all(&model.log);
    let (read, end) = scan_all(&buf);
    assert_eq!(end, ScanEnd::Clean);
    let records: Vec<Record<'_>> = read.into_iter().map(|(_, r)| r).collect();
    assert_eq!(records, model.log);
    let got = replay(&records);
    assert_eq!(got.queues, model.expected());
    assert_eq!(got.bindings, model.expected_bindings());
    assert!(
        model.log.iter().any(|r| matches!(r, Record::Unbind { .. }))
            && model
                .log
                .iter()
                .any(|r| matches!(r, Record::Subject { .. })),
        "the model logs every new record type"
    );
}

/// COPY: a message with the state it says and the payload and subject of the one it
/// points at, which may go later without taking the copy's payload with it; a COPY
/// of a message that is not there is ignored and counted.
#[test]
fn copy_takes_payload_and_subject_from_its_source() {
    let copy = |queue, id, of| Record::Copy {
        queue,
        id,
        due_ms: 0,
        priority: 3,
        attempt: 0,
        charged: 0,
        of,
    };
    let r = replay(&[
        Record::Queue {
            queue: 0,
            name: "a",
        },
        Record::Queue {
            queue: 1,
            name: "b",
        },
        put(0, 1, b"shared"),
        Record::Subject {
            id: 1,
            subject: "orders.eu",
        },
        copy(1, 2, 1),
        copy(1, 3, 99),
        Record::Del { id: 1 },
        copy(1, 4, 1),
    ]);
    assert_eq!(shape(&r), vec![("b", vec![2])]);
    let m = &r.queues[0].messages[0];
    assert_eq!((&*m.payload, m.priority), (&b"shared"[..], 3));
    assert_eq!(m.subject.as_deref(), Some("orders.eu"));
    assert_eq!(r.ignored, 2, "the copies of 99 and of the deleted 1");
}
