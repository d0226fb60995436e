//! Version 5 of the protocol (protocol.md section 17): schedules. `SCHEDULE` defines
//! one, `UNSCHEDULE` deletes it, `PAUSE_SCHEDULE` pauses or resumes it, and
//! `SCHEDULES` lists them with their run figures.

use bytes::BufMut;

use super::fanout::{SubjectKind, check_subject, to_subject};
use super::{
    MAX_PRIORITY, MAX_QUEUE_NAME, Opcode, ProtocolError, Reader, Request, Response, Status,
    check_queue_name, put_name, to_queue_name,
};

/// `HELLO` feature bit: schedules (`SCHEDULE`, `UNSCHEDULE`, `PAUSE_SCHEDULE`,
/// `SCHEDULES`; protocol.md 17).
pub const FEATURE_SCHEDULES: u32 = 0x40;

/// Largest declared `length` of a `SCHEDULE` frame: its payload travels inside it.
pub const MAX_SCHEDULE_FRAME: u32 = 64 * 1024;

/// Where a schedule's messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleTarget<'a> {
    /// Put on this queue.
    Queue(&'a str),
    /// Published to this subject (no wildcards).
    Subject(&'a str),
}

impl<'a> ScheduleTarget<'a> {
    /// The queue name or subject.
    pub fn name(&self) -> &'a str {
        match *self {
            ScheduleTarget::Queue(name) | ScheduleTarget::Subject(name) => name,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            ScheduleTarget::Queue(_) => 0,
            ScheduleTarget::Subject(_) => 1,
        }
    }
}

/// One schedule as `SCHEDULES` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInfo {
    /// Its name.
    pub name: String,
    /// Its expression, as it was given.
    pub spec: String,
    /// True when its target is a subject, false for a queue.
    pub to_subject: bool,
    /// The queue or subject.
    pub target: String,
    /// The priority of its messages.
    pub priority: u8,
    /// Paused.
    pub paused: bool,
    /// Next run time, unix-epoch milliseconds; 0 while paused (or none left).
    pub next_run_ms: u64,
    /// Time of the last run; 0 before the first.
    pub last_run_ms: u64,
    /// Runs so far.
    pub runs: u64,
    /// Late runs that stood for missed run times.
    pub misfires: u64,
    /// Runs whose message was refused.
    pub failures: u64,
    /// Bytes of its payload.
    pub payload_len: u32,
}

/// A schedule's name: 1 to 255 bytes of UTF-8, like a queue name, but its own error.
fn to_schedule_name(bytes: &[u8]) -> Result<&str, ProtocolError> {
    if bytes.is_empty() {
        return Err(ProtocolError::BadArgument("schedule name is empty"));
    }
    std::str::from_utf8(bytes)
        .map_err(|_| ProtocolError::BadArgument("schedule name is not valid UTF-8"))
}

fn check_schedule_name(name: &str) -> Result<(), ProtocolError> {
    if name.is_empty() {
        return Err(ProtocolError::BadArgument("schedule name is empty"));
    }
    if name.len() > MAX_QUEUE_NAME {
        return Err(ProtocolError::BadArgument(
            "schedule name is longer than 255 bytes",
        ));
    }
    Ok(())
}

/// Decodes the body of a `SCHEDULE`, `UNSCHEDULE`, `PAUSE_SCHEDULE` or `SCHEDULES`
/// frame, in the order of protocol.md 2.5: structure, then names, then values.
pub(super) fn decode_control<'a>(
    opcode: Opcode,
    r: &mut Reader<'a>,
) -> Result<Request<'a>, ProtocolError> {
    let name = {
        let len = r.u8("name_len")? as usize;
        r.bytes(len, "name")?
    };
    match opcode {
        Opcode::Schedule => {
            let spec = {
                let len = r.u8("spec_len")? as usize;
                r.bytes(len, "spec")?
            };
            let kind = r.u8("target_kind")?;
            let target = {
                let len = r.u8("target_len")? as usize;
                r.bytes(len, "target")?
            };
            let priority = r.u8("priority")?;
            let payload = r.rest();
            // Names in the order of the layout (name, spec, target), then values.
            let name = to_schedule_name(name)?;
            let spec = std::str::from_utf8(spec)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or(ProtocolError::BadArgument(
                    "SCHEDULE spec must be 1 to 255 bytes of UTF-8",
                ))?;
            // The kind says which rules the target's name follows; an unknown kind is
            // a value error, reported after the names.
            let target = match kind {
                0 => Some(ScheduleTarget::Queue(to_queue_name(target)?)),
                1 => Some(ScheduleTarget::Subject(to_subject(
                    target,
                    SubjectKind::Subject,
                )?)),
                _ => None,
            };
            let Some(target) = target else {
                return Err(ProtocolError::BadArgument(
                    "SCHEDULE target_kind must be 0 (queue) or 1 (subject)",
                ));
            };
            if priority > MAX_PRIORITY {
                return Err(ProtocolError::BadArgument("priority must be 0 to 9"));
            }
            Ok(Request::Schedule {
                name,
                spec,
                target,
                priority,
                payload,
            })
        }
        Opcode::PauseSchedule => {
            let paused = r.u8("paused")?;
            r.finish()?;
            let name = to_schedule_name(name)?;
            if paused > 1 {
                return Err(ProtocolError::BadArgument(
                    "PAUSE_SCHEDULE paused must be 0 (resume) or 1 (pause)",
                ));
            }
            Ok(Request::PauseSchedule {
                name,
                paused: paused == 1,
            })
        }
        Opcode::Unschedule => {
            r.finish()?;
            Ok(Request::Unschedule {
                name: to_schedule_name(name)?,
            })
        }
        _ => {
            // SCHEDULES: name_len 0 lists them all.
            r.finish()?;
            let name = if name.is_empty() {
                None
            } else {
                Some(to_schedule_name(name)?)
            };
            Ok(Request::Schedules { name })
        }
    }
}

/// Encodes the four schedule requests; `None` for the others.
pub(super) fn encode_request(
    request: &Request<'_>,
    dst: &mut impl BufMut,
) -> Option<Result<(), ProtocolError>> {
    let result = match *request {
        Request::Schedule {
            name,
            spec,
            target,
            priority,
            payload,
        } => encode_schedule(dst, name, spec, target, priority, payload),
        Request::Unschedule { name } => check_schedule_name(name).map(|()| {
            dst.put_u32((2 + 1 + name.len()) as u32);
            dst.put_u8(Opcode::Unschedule as u8);
            dst.put_u8(0);
            put_name(dst, name);
        }),
        Request::PauseSchedule { name, paused } => check_schedule_name(name).map(|()| {
            dst.put_u32((2 + 1 + name.len() + 1) as u32);
            dst.put_u8(Opcode::PauseSchedule as u8);
            dst.put_u8(0);
            put_name(dst, name);
            dst.put_u8(u8::from(paused));
        }),
        Request::Schedules { name } => {
            let name = name.unwrap_or("");
            let checked = if name.is_empty() {
                Ok(())
            } else {
                check_schedule_name(name)
            };
            checked.map(|()| {
                dst.put_u32((2 + 1 + name.len()) as u32);
                dst.put_u8(Opcode::Schedules as u8);
                dst.put_u8(0);
                put_name(dst, name);
            })
        }
        _ => return None,
    };
    Some(result)
}

fn encode_schedule(
    dst: &mut impl BufMut,
    name: &str,
    spec: &str,
    target: ScheduleTarget<'_>,
    priority: u8,
    payload: &[u8],
) -> Result<(), ProtocolError> {
    check_schedule_name(name)?;
    if spec.is_empty() || spec.len() > MAX_QUEUE_NAME {
        return Err(ProtocolError::BadArgument(
            "SCHEDULE spec must be 1 to 255 bytes of UTF-8",
        ));
    }
    match target {
        ScheduleTarget::Queue(queue) => check_queue_name(queue)?,
        ScheduleTarget::Subject(subject) => check_subject(subject, SubjectKind::Subject)?,
    }
    if priority > MAX_PRIORITY {
        return Err(ProtocolError::BadArgument("priority must be 0 to 9"));
    }
    let len = 2 + 1 + name.len() + 1 + spec.len() + 1 + 1 + target.name().len() + 1 + payload.len();
    if len > MAX_SCHEDULE_FRAME as usize {
        return Err(ProtocolError::FrameTooLarge {
            len: u32::try_from(len).unwrap_or(u32::MAX),
            max: MAX_SCHEDULE_FRAME,
        });
    }
    dst.put_u32(len as u32);
    dst.put_u8(Opcode::Schedule as u8);
    dst.put_u8(0);
    put_name(dst, name);
    put_name(dst, spec);
    dst.put_u8(target.kind());
    put_name(dst, target.name());
    dst.put_u8(priority);
    dst.put_slice(payload);
    Ok(())
}

/// Appends a `SCHEDULED` reply.
pub fn encode_scheduled(dst: &mut impl BufMut, created: bool, next_run_ms: u64) {
    dst.put_u32(1 + 1 + 8);
    dst.put_u8(Status::Scheduled as u8);
    dst.put_u8(u8::from(created));
    dst.put_u64(next_run_ms);
}

/// Appends an `UNSCHEDULED` reply.
pub fn encode_unscheduled(dst: &mut impl BufMut, removed: bool) {
    dst.put_u32(2);
    dst.put_u8(Status::Unscheduled as u8);
    dst.put_u8(u8::from(removed));
}

/// Appends a `SCHEDULE_PAUSED` reply.
pub fn encode_schedule_paused(dst: &mut impl BufMut, found: bool, next_run_ms: u64) {
    dst.put_u32(1 + 1 + 8);
    dst.put_u8(Status::SchedulePaused as u8);
    dst.put_u8(u8::from(found));
    dst.put_u64(next_run_ms);
}

/// Bytes one schedule's entry takes in a `SCHEDULE_LIST` reply after its
/// `entry_len`.
pub fn schedule_info_len(info: &ScheduleInfo) -> usize {
    1 + info.name.len() + 1 + info.spec.len() + 1 + 1 + info.target.len() + 1 + 1 + 5 * 8 + 4
}

/// Appends a `SCHEDULE_LIST` reply.
pub fn encode_schedule_list(dst: &mut impl BufMut, schedules: &[ScheduleInfo]) {
    let len: usize = 1
        + 4
        + schedules
            .iter()
            .map(|s| 2 + schedule_info_len(s))
            .sum::<usize>();
    // Fits: at most 255 names a schedule takes 1 KiB, and the memory cap bounds
    // how many there are far below 4 million.
    dst.put_u32(len as u32);
    dst.put_u8(Status::ScheduleList as u8);
    dst.put_u32(schedules.len() as u32);
    for s in schedules {
        // At most 3 names of 255 bytes and 47 more: fits a u16.
        dst.put_u16(schedule_info_len(s) as u16);
        put_name(dst, &s.name);
        put_name(dst, &s.spec);
        dst.put_u8(u8::from(s.to_subject));
        put_name(dst, &s.target);
        dst.put_u8(s.priority);
        dst.put_u8(u8::from(s.paused));
        for n in [s.next_run_ms, s.last_run_ms, s.runs, s.misfires, s.failures] {
            dst.put_u64(n);
        }
        dst.put_u32(s.payload_len);
    }
}

/// Decodes the replies of section 17.
pub(super) fn decode_response<'a>(
    status: Status,
    r: &mut Reader<'a>,
) -> Result<Response<'a>, ProtocolError> {
    Ok(match status {
        Status::Scheduled => Response::Scheduled {
            created: r.u8("created")? != 0,
            next_run_ms: r.u64("next_run_ms")?,
        },
        Status::Unscheduled => Response::Unscheduled {
            removed: r.u8("removed")? != 0,
        },
        Status::SchedulePaused => Response::SchedulePaused {
            found: r.u8("found")? != 0,
            next_run_ms: r.u64("next_run_ms")?,
        },
        _ => {
            let count = r.u32("count")?;
            // Each entry takes at least 54 bytes: never trust a count to reserve.
            let mut list = Vec::with_capacity((count as usize).min(r.buf.len() / 54));
            for _ in 0..count {
                let entry_len = r.u16("entry_len")? as usize;
                // Fields a later version appends to an entry are skipped.
                let mut r = Reader::new(r.bytes(entry_len, "entry")?);
                let name = r.short_str("name")?.to_owned();
                let spec = r.short_str("spec")?.to_owned();
                let to_subject = r.u8("target_kind")? != 0;
                let target = r.short_str("target")?.to_owned();
                let priority = r.u8("priority")?;
                let paused = r.u8("paused")? != 0;
                list.push(ScheduleInfo {
                    name,
                    spec,
                    to_subject,
                    target,
                    priority,
                    paused,
                    next_run_ms: r.u64("next_run_ms")?,
                    last_run_ms: r.u64("last_run_ms")?,
                    runs: r.u64("runs")?,
                    misfires: r.u64("misfires")?,
                    failures: r.u64("failures")?,
                    payload_len: r.u32("payload_len")?,
                });
            }
            Response::ScheduleList(list)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_decoders, decode_one, encode_response};
    use super::super::{Decoded, decode_request};
    use super::*;

    fn samples() -> Vec<Request<'static>> {
        let long: &'static str = "n".repeat(255).leak();
        vec![
            Request::Schedule {
                name: "nightly",
                spec: "0 3 * * *",
                target: ScheduleTarget::Queue("jobs"),
                priority: 5,
                payload: b"backup",
            },
            Request::Schedule {
                name: long,
                spec: long,
                target: ScheduleTarget::Subject("orders.eu.tick"),
                priority: 0,
                payload: b"",
            },
            Request::Unschedule { name: "nightly" },
            Request::PauseSchedule {
                name: "n",
                paused: true,
            },
            Request::PauseSchedule {
                name: long,
                paused: false,
            },
            Request::Schedules { name: None },
            Request::Schedules { name: Some("n") },
        ]
    }

    fn encode(request: &Request<'_>) -> Vec<u8> {
        let mut frame = Vec::new();
        request.encode(&mut frame).unwrap();
        frame
    }

    #[test]
    fn requests_round_trip() {
        for request in samples() {
            let frame = encode(&request);
            assert_eq!(
                decode_request(&frame, 1 << 20),
                Ok(Some((Decoded::Request(request), frame.len()))),
                "{request:?}"
            );
            for start in 0..frame.len() {
                check_decoders(&frame[start..], 1 << 20, 1 << 20);
            }
            // A frame cut short is waited for, never an error.
            for end in 0..frame.len() {
                assert_eq!(decode_request(&frame[..end], 1 << 20), Ok(None), "{end}");
            }
        }
    }

    #[test]
    fn the_largest_schedule_frame_and_one_byte_more() {
        let name_etc = 2 + 1 + 1 + 1 + 9 + 1 + 1 + 4 + 1;
        let payload = vec![b'p'; MAX_SCHEDULE_FRAME as usize - name_etc];
        let request = Request::Schedule {
            name: "n",
            spec: "0 3 * * *",
            target: ScheduleTarget::Queue("jobs"),
            priority: 9,
            payload: &payload,
        };
        let frame = encode(&request);
        assert_eq!(frame.len(), 4 + MAX_SCHEDULE_FRAME as usize);
        assert!(decode_request(&frame, 0).unwrap().is_some());
        let longer = vec![b'p'; payload.len() + 1];
        let too_long = Request::Schedule {
            name: "n",
            spec: "0 3 * * *",
            target: ScheduleTarget::Queue("jobs"),
            priority: 9,
            payload: &longer,
        };
        assert!(matches!(
            too_long.encode(&mut Vec::new()),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        let mut head = frame.clone();
        head[..4].copy_from_slice(&(MAX_SCHEDULE_FRAME + 1).to_be_bytes());
        assert!(matches!(
            decode_request(&head[..6], 0),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    /// Structure before names before values (protocol.md 2.5), with the errors the
    /// spec gives.
    #[test]
    fn bad_requests() {
        let frame = |body: &[u8], opcode: u8| {
            let mut f = ((body.len() + 2) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&[opcode, 0]);
            f.extend_from_slice(body);
            f
        };
        let schedule = |name: &[u8], spec: &[u8], kind: u8, target: &[u8], priority: u8| {
            let mut body = Vec::new();
            for (i, text) in [name, spec].iter().enumerate() {
                body.push(text.len() as u8);
                body.extend_from_slice(text);
                if i == 1 {
                    body.push(kind);
                }
            }
            body.push(target.len() as u8);
            body.extend_from_slice(target);
            body.push(priority);
            frame(&body, 0x50)
        };
        let err = |f: Vec<u8>| decode_request(&f, 1024).unwrap_err();
        assert!(matches!(
            err(schedule(b"", b"@daily", 0, b"q", 5)),
            ProtocolError::BadArgument("schedule name is empty")
        ));
        assert!(matches!(
            err(schedule(b"\xff", b"@daily", 0, b"q", 5)),
            ProtocolError::BadArgument(_)
        ));
        assert!(matches!(
            err(schedule(b"n", b"@daily", 0, b"", 5)),
            ProtocolError::BadQueueName(_)
        ));
        assert!(matches!(
            err(schedule(b"n", b"@daily", 1, b"a.*", 5)),
            ProtocolError::BadSubject(_)
        ));
        assert!(matches!(
            err(schedule(b"n", b"@daily", 2, b"q", 5)),
            ProtocolError::BadArgument(_)
        ));
        assert!(matches!(
            err(schedule(b"n", b"", 0, b"q", 5)),
            ProtocolError::BadArgument(_)
        ));
        assert!(matches!(
            err(schedule(b"n", b"@daily", 0, b"q", 10)),
            ProtocolError::BadArgument("priority must be 0 to 9")
        ));
        // A bad name and a bad priority: the name is reported.
        assert!(matches!(
            err(schedule(b"", b"@daily", 0, b"q", 10)),
            ProtocolError::BadArgument("schedule name is empty")
        ));
        // Names in layout order: an empty spec before an empty queue name; an unknown
        // kind (a value) after the spec.
        assert!(matches!(
            err(schedule(b"n", b"", 0, b"", 5)),
            ProtocolError::BadArgument("SCHEDULE spec must be 1 to 255 bytes of UTF-8")
        ));
        assert!(matches!(
            err(schedule(b"n", b"", 2, b"q", 5)),
            ProtocolError::BadArgument("SCHEDULE spec must be 1 to 255 bytes of UTF-8")
        ));
        assert!(matches!(
            err(schedule(b"n", b"@daily", 0, b"", 10)),
            ProtocolError::BadQueueName(_)
        ));
        // A target running past the end is MALFORMED, whatever else is wrong.
        let mut cut = schedule(b"", b"@daily", 0, b"q", 10);
        cut.truncate(cut.len() - 2);
        let len = (cut.len() - 4) as u32;
        cut[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(err(cut), ProtocolError::ShortField(_)));
        assert!(matches!(
            err(frame(&[1, b'n', 2], 0x52)),
            ProtocolError::BadArgument(_)
        ));
        assert!(matches!(
            err(frame(&[1, b'n', 1, 0], 0x52)),
            ProtocolError::TrailingBytes(1)
        ));
        assert!(matches!(
            err(frame(&[0], 0x51)),
            ProtocolError::BadArgument("schedule name is empty")
        ));
        assert!(matches!(
            err(frame(&[1, b'n', 0], 0x53)),
            ProtocolError::TrailingBytes(1)
        ));
        assert!(matches!(
            decode_request(&[0, 0, 0, 3, 0x53, 1, 0], 0),
            Err(ProtocolError::BadFlags(1))
        ));
        // The encoder refuses what the decoder would.
        let bad = |r: Request<'_>| r.encode(&mut Vec::new()).is_err();
        assert!(bad(Request::Unschedule { name: "" }));
        // An empty name in SCHEDULES means all of them, as name_len 0 does.
        assert_eq!(
            encode(&Request::Schedules { name: Some("") }),
            encode(&Request::Schedules { name: None })
        );
        assert!(bad(Request::Schedule {
            name: "n",
            spec: "",
            target: ScheduleTarget::Queue("q"),
            priority: 0,
            payload: b"",
        }));
        assert!(bad(Request::Schedule {
            name: "n",
            spec: "@daily",
            target: ScheduleTarget::Subject("a.>"),
            priority: 0,
            payload: b"",
        }));
        assert!(bad(Request::Schedule {
            name: "n",
            spec: "@daily",
            target: ScheduleTarget::Queue("q"),
            priority: 10,
            payload: b"",
        }));
    }

    fn sample_list() -> Vec<ScheduleInfo> {
        vec![
            ScheduleInfo {
                name: "nightly".into(),
                spec: "0 3 * * *".into(),
                to_subject: false,
                target: "jobs".into(),
                priority: 5,
                paused: false,
                next_run_ms: 1_796_353_200_000,
                last_run_ms: 0,
                runs: 0,
                misfires: 0,
                failures: 0,
                payload_len: 6,
            },
            ScheduleInfo {
                name: "tick".into(),
                spec: "@every 2s".into(),
                to_subject: true,
                target: "clock.tick".into(),
                priority: 0,
                paused: true,
                next_run_ms: 0,
                last_run_ms: u64::MAX,
                runs: 3,
                misfires: 1,
                failures: 2,
                payload_len: u32::MAX,
            },
        ]
    }

    #[test]
    fn replies_round_trip_and_entries_may_grow() {
        let replies = [
            Response::Scheduled {
                created: true,
                next_run_ms: 7,
            },
            Response::Scheduled {
                created: false,
                next_run_ms: u64::MAX,
            },
            Response::Unscheduled { removed: true },
            Response::Unscheduled { removed: false },
            Response::SchedulePaused {
                found: true,
                next_run_ms: 0,
            },
            Response::ScheduleList(vec![]),
            Response::ScheduleList(sample_list()),
        ];
        for reply in replies {
            let frame = encode_response(&reply);
            assert_eq!(decode_one(&frame), reply);
        }
        // An entry with two more bytes than this version knows: skipped over.
        let mut frame = encode_response(&Response::ScheduleList(sample_list()));
        let first_len = schedule_info_len(&sample_list()[0]);
        let at = 4 + 1 + 4;
        frame[at..at + 2].copy_from_slice(&((first_len + 2) as u16).to_be_bytes());
        frame.splice(at + 2 + first_len..at + 2 + first_len, [0xEE, 0xEE]);
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(decode_one(&frame), Response::ScheduleList(sample_list()));
        // A count larger than the entries: an error, not a huge allocation.
        let mut short = encode_response(&Response::ScheduleList(vec![]));
        short[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(super::super::decode_response(&short, 1024).is_err());
    }

    /// Every frame of protocol.md 17's examples is what the codec writes.
    #[test]
    fn every_frame_in_section_17_is_what_the_codec_writes() {
        let checked = super::super::tests::check_documented_examples("### 17.");
        assert_eq!(checked, 8);
    }
}
