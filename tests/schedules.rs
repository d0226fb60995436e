//! Schedules end to end (protocol.md section 17): the real server running them on
//! its own clock, through the Rust client and raw frames, with a full queue, after a
//! restart with `BDATADIR`, and across downtime (one late run, counted).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beuss::Client;
use beuss::client::{Error, Schedule};
use beuss::protocol::{self, ErrorCode, ScheduleInfo};
use common::*;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn info(client: &mut Client, name: &str) -> ScheduleInfo {
    let list = client.schedules(Some(name)).expect("SCHEDULES");
    assert_eq!(list.len(), 1, "{list:?}");
    list.into_iter().next().expect("one schedule")
}

#[test]
fn an_interval_schedule_puts_its_message_on_a_queue() {
    let server = TestServer::start();
    let mut client = server.client();
    let before = wall_ms();
    let (created, next) = client
        .schedule(
            "tick",
            &Schedule::to_queue("@every 200ms", "ticks", b"tick!").priority(1),
        )
        .unwrap();
    assert!(created);
    // The first run is one interval after the definition.
    assert!(next >= before + 200 && next <= wall_ms() + 200, "{next}");
    let mut consumer = server.client();
    for _ in 0..3 {
        let got = consumer.get_wait("ticks", Duration::from_secs(10)).unwrap();
        assert_eq!(got.as_deref(), Some(b"tick!".as_slice()));
    }
    let tick = info(&mut client, "tick");
    assert!(tick.runs >= 3, "{tick:?}");
    assert_eq!((tick.failures, tick.priority, tick.payload_len), (0, 1, 5));
    assert!(tick.last_run_ms >= next && tick.next_run_ms > tick.last_run_ms);
    assert_eq!(tick.spec, "@every 200ms");
    assert!(client.stats().unwrap().get("schedule_runs").unwrap() >= 3);
    // Replacing it: not new, its figures from zero.
    let (created, _) = client
        .schedule("tick", &Schedule::to_queue("@daily", "ticks", b""))
        .unwrap();
    assert!(!created);
    let tick = info(&mut client, "tick");
    assert_eq!((tick.runs, tick.spec.as_str()), (0, "@daily"));
}

#[test]
fn a_subject_schedule_reaches_bound_queues() {
    let server = TestServer::start();
    let mut client = server.client();
    client.bind("clock.>", "audit").unwrap();
    client.bind("clock.*", "mail").unwrap();
    client
        .schedule(
            "clock",
            &Schedule::to_subject("@every 100ms", "clock.tick", b"now"),
        )
        .unwrap();
    for queue in ["audit", "mail"] {
        let got = client.get_wait(queue, Duration::from_secs(10)).unwrap();
        assert_eq!(got.as_deref(), Some(b"now".as_slice()), "{queue}");
    }
    assert!(info(&mut client, "clock").to_subject);
}

#[test]
fn pause_resume_remove_and_list() {
    let server = TestServer::start();
    let mut client = server.client();
    for name in ["b", "a", "c"] {
        client
            .schedule(
                name,
                &Schedule::to_queue("0 3 * * *", "jobs", name.as_bytes()),
            )
            .unwrap();
    }
    let names: Vec<String> = client
        .schedules(None)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    // 03:00 UTC: a whole minute, within a day.
    let next = info(&mut client, "a").next_run_ms;
    assert_eq!(next % 86_400_000, 3 * 3_600_000);
    assert!(next > wall_ms() && next <= wall_ms() + 86_400_000);
    assert_eq!(client.pause_schedule("a", true).unwrap(), Some(0));
    let a = info(&mut client, "a");
    assert!(a.paused);
    assert_eq!(a.next_run_ms, 0);
    assert_eq!(client.pause_schedule("a", false).unwrap(), Some(next));
    assert_eq!(client.pause_schedule("zz", true).unwrap(), None);
    assert!(client.unschedule("b").unwrap());
    assert!(!client.unschedule("b").unwrap());
    assert!(client.schedules(Some("b")).unwrap().is_empty());
    assert_eq!(client.stats().unwrap().get("schedules"), Some(2));
}

#[test]
fn a_spec_the_server_cannot_read_is_not_fatal() {
    let server = TestServer::start_with(&[("BMAXMESSAGESIZE", "16")]);
    let mut client = server.client();
    for (spec, needle) in [
        ("61 * * * *", "minute field"),
        ("0 0 30 2 *", "never fire"),
        ("TZ=Europe/Paris @daily", "named zones"),
        ("@every 10ms", "shortest interval"),
        ("sometimes", "has 1 fields"),
    ] {
        let err = client
            .schedule("s", &Schedule::to_queue(spec, "q", b""))
            .unwrap_err();
        match err {
            Error::Server {
                code,
                fatal,
                message,
            } => {
                assert_eq!(code, ErrorCode::BadSchedule as u16);
                assert!(!fatal);
                assert!(message.contains(needle), "{spec}: {message}");
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
    let err = client
        .schedule("s", &Schedule::to_queue("@daily", "q", &[0; 17]))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Server { code: 20, fatal: false, message } if message.contains("BMAXMESSAGESIZE")),
        "{err:?}"
    );
    // Nothing was defined, and the connection goes on.
    assert!(client.schedules(None).unwrap().is_empty());
    client.ping().unwrap();
}

#[test]
fn a_run_into_a_full_queue_is_counted_and_skipped() {
    let server = TestServer::start_with(&[("BQUEUEMAXMESSAGES", "2")]);
    let mut client = server.client();
    client
        .schedule("flood", &Schedule::to_queue("@every 100ms", "small", b"x"))
        .unwrap();
    eventually("a refused run", || info(&mut client, "flood").failures >= 2);
    let flood = info(&mut client, "flood");
    assert!(flood.runs >= flood.failures + 2, "{flood:?}");
    assert_eq!(
        client
            .queue_stats("small")
            .unwrap()
            .and_then(|q| q.get("messages")),
        Some(2)
    );
    assert!(client.stats().unwrap().get("schedule_failures").unwrap() >= 2);
    server.wait_for_log("refused its message");
}

/// Raw frames: a `SCHEDULE` over 65536 bytes is refused from its head, and a bad
/// target kind is fatal.
#[test]
fn frame_checks() {
    let server = TestServer::start();
    let mut stream = server.raw();
    let mut head = 65_537u32.to_be_bytes().to_vec();
    head.extend_from_slice(&[0x50, 0]);
    send(&mut stream, &head);
    expect_fatal_error(&mut stream, ErrorCode::FrameTooLarge as u16);
    let mut stream = server.raw();
    let mut body = vec![1, b'n', 6];
    body.extend_from_slice(b"@daily");
    body.extend_from_slice(&[7, 1, b'q', 5]);
    send(&mut stream, &request_frame(0x50, &body));
    expect_fatal_error(&mut stream, ErrorCode::BadArgument as u16);
}

/// With `BDATADIR`, a schedule and its figures survive a clean stop and a SIGKILL,
/// and every run made its message.
#[test]
fn schedules_survive_restarts() {
    let dir = TempDir::new("restart");
    let env = [("BDATADIR", dir.text()), ("BFSYNC", "always")];
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    client
        .schedule("tick", &Schedule::to_queue("@every 100ms", "ticks", b"t"))
        .unwrap();
    client
        .schedule(
            "night",
            &Schedule::to_subject("TZ=+01:00 0 3 * * *", "n.x", b"n"),
        )
        .unwrap();
    client.pause_schedule("night", true).unwrap();
    eventually("three runs", || info(&mut client, "tick").runs >= 3);
    drop(client);
    server.stop_with(libc::SIGKILL);

    let server = TestServer::start_with(&env);
    let mut client = server.client();
    let tick = info(&mut client, "tick");
    let night = info(&mut client, "night");
    assert!(night.paused && night.to_subject);
    assert_eq!(night.spec, "TZ=+01:00 0 3 * * *");
    // Killed: every run whose record reached the disk made its message, apart from
    // at most the last one, whose record comes first.
    client.pause_schedule("tick", true).unwrap();
    let runs = info(&mut client, "tick").runs;
    let messages = client
        .queue_stats("ticks")
        .unwrap()
        .and_then(|q| q.get("messages"))
        .unwrap();
    assert!(runs >= tick.runs.min(3), "{runs}");
    assert!(
        messages == runs || messages + 1 == runs,
        "{messages} messages, {runs} runs"
    );
    drop(client);
    server.stop_with(libc::SIGTERM);

    let server = TestServer::start_with(&env);
    let mut client = server.client();
    let again = info(&mut client, "tick");
    assert!(again.paused);
    assert_eq!(again.runs, runs);
}

/// Down through several run times: one late run at start, counted as a misfire,
/// then on time again.
#[test]
fn runs_missed_while_down_are_made_up_once() {
    let dir = TempDir::new("misfire");
    let env = [("BDATADIR", dir.text())];
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    let (_, first) = client
        .schedule("beat", &Schedule::to_queue("@every 1s", "beats", b"b"))
        .unwrap();
    drop(client);
    server.stop_with(libc::SIGTERM);
    // Down through at least three run times.
    while wall_ms() < first + 3_200 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = TestServer::start_with(&env);
    let mut client = server.client();
    eventually("the late run", || info(&mut client, "beat").runs >= 1);
    let beat = info(&mut client, "beat");
    // One run for all the missed times, not one each.
    assert_eq!(beat.misfires, 1, "{beat:?}");
    assert!(beat.runs <= 2, "{beat:?}");
    assert!(beat.next_run_ms > first + 3_000);
    assert_eq!(
        (beat.next_run_ms - first) % 1000,
        0,
        "on the interval's grid"
    );
    server.wait_for_log("schedules loaded");
}

#[test]
fn hello_announces_schedules_from_version_5() {
    let server = TestServer::start();
    let mut client = server.client();
    let info = client.hello().unwrap();
    assert!(info.has(protocol::FEATURE_SCHEDULES));
    let mut stream = server.raw();
    let reply = call(&mut stream, &request_frame(0x01, &4u16.to_be_bytes()));
    let Ok(Some((
        protocol::Response::Hello {
            version,
            limits: Some(limits),
            ..
        },
        _,
    ))) = protocol::decode_response(&reply, 1024)
    else {
        panic!("{reply:02x?}");
    };
    assert_eq!(version, 4);
    assert!(limits.features & protocol::FEATURE_FANOUT != 0);
    assert_eq!(limits.features & protocol::FEATURE_SCHEDULES, 0);
}

/// A read-only token may list schedules and nothing else of section 17; the
/// connection goes on after each FORBIDDEN.
#[test]
fn a_read_only_token_may_only_list() {
    const RW: &str = "rw-token-0123456789abcdef";
    const RO: &str = "ro-token-fedcba9876543210";
    let tokens = TempFile::with("tokens", &format!("{RW}\n{RO} ro\n"), 0o600);
    let server = TestServer::start_with(&[("BAUTHFILE", tokens.text())]);
    let mut writer = server.client();
    assert!(!writer.auth(RW.as_bytes()).unwrap(), "read-write");
    writer
        .schedule("nightly", &Schedule::to_queue("0 3 * * *", "jobs", b"x"))
        .unwrap();
    let mut reader = server.client();
    assert!(reader.auth(RO.as_bytes()).unwrap(), "read-only");
    assert_eq!(reader.schedules(None).unwrap().len(), 1);
    let forbidden = |e: Error| {
        matches!(
            e,
            Error::Server {
                code: 18,
                fatal: false,
                ..
            }
        )
    };
    assert!(forbidden(
        reader
            .schedule("other", &Schedule::to_queue("@daily", "jobs", b""))
            .unwrap_err()
    ));
    assert!(forbidden(
        reader.pause_schedule("nightly", true).unwrap_err()
    ));
    assert!(forbidden(reader.unschedule("nightly").unwrap_err()));
    assert!(!info(&mut writer, "nightly").paused);
    reader.ping().unwrap();
}
