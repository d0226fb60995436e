//! Authentication (protocol.md 16.1 to 16.4, 16.8) against a real server started with
//! `BAUTHFILE`: what may come before `AUTH`, wrong and right tokens, read-only tokens,
//! rotation with `SIGHUP`, the wait after repeated failures, the start-up checks of the
//! token file, and the Rust client and the CLI authenticating.

mod common;

use std::time::{Duration, Instant};

use beuss::Client;
use beuss::client::Error;
use beuss::protocol::ErrorCode;
use common::*;

const RW: &str = "rw-token-0123456789abcdef";
const RO: &str = "ro-token-fedcba9876543210";
const NEW: &str = "new-token-aaaabbbbccccdddd";

/// HELLO, PONG, AUTHED and the status bytes this file reads.
const PONG: [u8; 5] = [0, 0, 0, 1, 0x01];
const AUTHED_RW: [u8; 6] = [0, 0, 0, 2, 0x04, 0];
const AUTHED_RO: [u8; 6] = [0, 0, 0, 2, 0x04, 1];
const STORED: [u8; 5] = [0, 0, 0, 1, 0x10];

fn token_file() -> TempFile {
    TempFile::with(
        "tokens",
        &format!("# test tokens\n{RW}\n\n{RO} ro\n"),
        0o600,
    )
}

fn start(tokens: &TempFile) -> TestServer {
    TestServer::start_with(&[("BAUTHFILE", tokens.text())])
}

/// HELLO (with the AUTH_REQUIRED feature bit) and PING are answered before AUTH; a
/// PUT then gets a fatal AUTH_REQUIRED that says nothing else, and is closed.
#[test]
fn only_hello_ping_quit_and_auth_before_auth() {
    let tokens = token_file();
    let server = start(&tokens);
    let mut s = server.raw();
    let hello = call(&mut s, &request_frame(0x01, &4u16.to_be_bytes()));
    assert_eq!(hello[4], 0x02);
    let server_len = usize::from(hello[11]);
    let features = u32::from_be_bytes(hello[12 + server_len..16 + server_len].try_into().unwrap());
    assert_eq!(features & 0x20, 0x20, "AUTH_REQUIRED bit");
    assert_eq!(call(&mut s, &ping_frame()), PONG);
    send(&mut s, &put_frame(b"jobs", b"secret"));
    assert_eq!(
        expect_fatal_error(&mut s, ErrorCode::AuthRequired as u16),
        "authentication required"
    );
    // Every other request is refused the same way, STATS included.
    for frame in [
        stats_frame(b""),
        get_frame(b"jobs", 0, 1),
        request_frame(0x12, b"\x04jobs"),
    ] {
        let mut s = server.raw();
        send(&mut s, &frame);
        assert_eq!(
            expect_fatal_error(&mut s, ErrorCode::AuthRequired as u16),
            "authentication required"
        );
    }
    // QUIT is answered.
    let mut s = server.raw();
    assert_eq!(call(&mut s, &quit_frame()), [0, 0, 0, 1, 0x03]);
    let mut c = authed_client(&server, RW);
    assert_eq!(stat_of(&mut c, "auth_required"), 4);
    assert_eq!(stat_of(&mut c, "messages"), 0, "nothing was stored");
    assert_eq!(stat_of(&mut c, "protocol_errors"), 0);
}

/// The refusal comes from the frame's first bytes: a PUT announcing 100 MB is refused
/// without the server waiting for (or keeping) its payload.
#[test]
fn a_large_frame_before_auth_is_refused_from_its_head() {
    let tokens = token_file();
    let server = start(&tokens);
    let mut s = server.raw();
    send(&mut s, &put_head(b"jobs", 100 << 20));
    expect_fatal_error(&mut s, ErrorCode::AuthRequired as u16);
}

/// A wrong token (and an empty one) gets a fatal AUTH_FAILED, counted and logged; the
/// right one works on the same server.
#[test]
fn wrong_token_fails_right_token_works() {
    let tokens = token_file();
    let server = start(&tokens);
    for wrong in [
        &b"rw-token-0123456789abcdeF"[..],
        b"",
        &RW.as_bytes()[..RW.len() - 1],
    ] {
        let mut s = server.raw();
        send(&mut s, &auth_frame(wrong));
        assert_eq!(
            expect_fatal_error(&mut s, ErrorCode::AuthFailed as u16),
            "authentication failed"
        );
    }
    server.wait_for_log("AUTH failed");
    let mut s = server.raw();
    assert_eq!(call(&mut s, &auth_frame(RW.as_bytes())), AUTHED_RW);
    assert_eq!(call(&mut s, &put_frame(b"jobs", b"hello")), STORED);
    let mut c = authed_client(&server, RW);
    assert_eq!(c.get("jobs").unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(stat_of(&mut c, "auth_failures"), 3);
    assert!(
        !server
            .logs()
            .iter()
            .any(|l| l.contains(RW) || l.contains(RO)),
        "a token in the log"
    );
}

/// A read-only token may look (STATS, PEEK, SUB) but every change is a non-fatal
/// FORBIDDEN, and the connection goes on.
#[test]
fn read_only_token_can_look_but_not_change() {
    let tokens = token_file();
    let server = start(&tokens);
    let mut writer = authed_client(&server, RW);
    writer.put("jobs", b"one").unwrap();
    let mut s = server.raw();
    assert_eq!(call(&mut s, &auth_frame(RO.as_bytes())), AUTHED_RO);
    let forbidden = ErrorCode::Forbidden as u16;
    send(&mut s, &put_frame(b"jobs", b"two"));
    assert_eq!(
        expect_error(&mut s, forbidden),
        "this connection's token is read-only"
    );
    send(&mut s, &get_frame(b"jobs", 0, 1));
    expect_error(&mut s, forbidden);
    send(&mut s, &request_frame(0x12, b"\x04jobs"));
    expect_error(&mut s, forbidden);
    // An oversized PUT is read to its end, then refused the same way.
    let mut big = put_head(b"jobs", 2 << 20);
    big.extend(vec![b'x'; 2 << 20]);
    send(&mut s, &big);
    expect_error(&mut s, forbidden);
    assert_eq!(call(&mut s, &ping_frame()), PONG);
    let stats = call(&mut s, &stats_frame(b"jobs"));
    assert_eq!(stats[4], 0x20, "STATS answered");

    let mut ro = server.client();
    assert!(ro.auth(RO.as_bytes()).unwrap(), "read-only");
    assert_eq!(ro.peek("jobs", 10).unwrap().len(), 1);
    let e = ro.put("jobs", b"x").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{e}");
    ro.subscribe("jobs.>").unwrap();
    ro.ping().unwrap();

    assert_eq!(writer.get("jobs").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(writer.get("jobs").unwrap(), None, "nothing was added");
    assert_eq!(stat_of(&mut writer, "forbidden"), 5);
}

/// Rotation without downtime: add a token and SIGHUP, move to it, remove the old one
/// and SIGHUP. Connections already authenticated keep their access; a file that cannot
/// be used leaves the tokens in force.
#[test]
fn tokens_rotate_on_sighup() {
    let tokens = token_file();
    let server = start(&tokens);
    let mut old = authed_client(&server, RW);
    tokens.write(&format!("{RW}\n{NEW}\n"));
    hup(&server, 1);
    let mut new = authed_client(&server, NEW);
    new.put("q", b"from new").unwrap();
    tokens.write(&format!("{NEW}\n"));
    hup(&server, 2);
    let mut s = server.raw();
    send(&mut s, &auth_frame(RW.as_bytes()));
    expect_fatal_error(&mut s, ErrorCode::AuthFailed as u16);
    assert_eq!(old.get("q").unwrap().as_deref(), Some(&b"from new"[..]));
    // A broken file: refused, the tokens stay.
    tokens.write("short\n");
    // SAFETY: kill() on the server child this test owns.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    server.wait_for_log("the tokens read before stay in force");
    authed_client(&server, NEW).ping().unwrap();
}

/// Sends SIGHUP and waits for the `n`th reload line.
fn hup(server: &TestServer, n: usize) {
    // SAFETY: kill() on the server child this test owns.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    eventually("the token file read again", || {
        server
            .logs()
            .iter()
            .filter(|l| l.contains("read again"))
            .count()
            >= n
    });
}

/// Repeated failures from one address are answered later and later, without holding
/// up anyone else: the fifth waits 800 ms, and a PING from another connection is
/// answered meanwhile.
#[test]
fn repeated_failures_are_slowed_down_without_blocking_others() {
    let tokens = token_file();
    let server = start(&tokens);
    for _ in 0..4 {
        let mut s = server.raw();
        send(&mut s, &auth_frame(b"guess-guess-guess-guess"));
        expect_fatal_error(&mut s, ErrorCode::AuthFailed as u16);
    }
    let mut slow = server.raw();
    let sent = Instant::now();
    send(&mut slow, &auth_frame(b"guess-guess-guess-guess"));
    let mut other = server.raw();
    assert_eq!(call(&mut other, &ping_frame()), PONG);
    assert_eq!(call(&mut other, &auth_frame(RW.as_bytes())), AUTHED_RW);
    expect_fatal_error(&mut slow, ErrorCode::AuthFailed as u16);
    assert!(
        sent.elapsed() >= Duration::from_millis(800),
        "the fifth failure was answered after {:?}",
        sent.elapsed()
    );
}

/// The token file is checked at start-up: missing, empty, a short token or a bad
/// access word stop the server with a message naming the line but not the token; a
/// file other users can read gets a warning.
#[test]
fn token_file_is_checked_at_start() {
    let missing = std::env::temp_dir().join("beuss-no-such-token-file");
    let (status, _, stderr) = run_server_to_exit(
        &[],
        &[("BAUTHFILE", missing.to_str().unwrap()), ("BPORT", "0")],
    );
    assert!(!status.success());
    assert!(stderr.contains("cannot read"), "{stderr}");
    for (text, why) in [
        ("# nothing\n".to_owned(), "holds no token"),
        (format!("{RW}\nsecret12\n"), "line 2"),
        (format!("{RW} admin\n"), "line 1"),
    ] {
        let file = TempFile::with("bad-tokens", &text, 0o600);
        let (status, _, stderr) =
            run_server_to_exit(&[], &[("BAUTHFILE", file.text()), ("BPORT", "0")]);
        assert!(!status.success(), "{text:?}");
        assert!(stderr.contains(why), "{text:?}: {stderr}");
        assert!(
            !stderr.contains("secret12") && !stderr.contains(RW),
            "{stderr}"
        );
    }
    let open = TempFile::with("open-tokens", &format!("{RW}\n"), 0o644);
    let server = start(&open);
    server.wait_for_log("can be read by other users");
}

/// Without BAUTHFILE, AUTH is accepted whatever the token (clients can be given one
/// before the server requires it), and nothing is required.
#[test]
fn a_server_without_tokens_accepts_any_auth() {
    let server = TestServer::start();
    let mut c = server.client();
    c.put("q", b"no auth needed").unwrap();
    assert!(!c.auth(b"anything-at-all-really").unwrap());
    let info = c.hello().unwrap();
    assert_eq!(info.limits.unwrap().features & 0x20, 0);
}

/// The Rust client: `auth` and `auth_file` (the server's own file: its first token),
/// and the errors of a wrong token and of no token.
#[test]
fn rust_client_authenticates() {
    let tokens = token_file();
    let server = start(&tokens);
    let mut c = server.client();
    assert!(!c.auth_file(&tokens.path).unwrap());
    c.put("q", b"x").unwrap();
    let mut wrong = server.client();
    match wrong.auth(b"not-a-token-of-this-server") {
        Err(Error::Server { code, fatal, .. }) => {
            assert_eq!(code, ErrorCode::AuthFailed as u16);
            assert!(fatal);
        }
        other => panic!("{other:?}"),
    }
    let mut none = server.client();
    let e = none.get("q").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AuthRequired), "{e}");
}

/// The CLI: `--auth-file FILE`, or BAUTHFILE; without either it says what to do.
#[test]
fn cli_authenticates_with_auth_file() {
    let tokens = token_file();
    let server = start(&tokens);
    let out = beuss(
        &server,
        &["--auth-file", tokens.text(), "PUT", "q"],
        &[],
        b"via flag",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = beuss(&server, &["GET", "q"], &[("BAUTHFILE", tokens.text())], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"via flag");
    let out = beuss(&server, &["GET", "q"], &[], b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("requires authentication") && stderr.contains("--auth-file"),
        "{stderr}"
    );
    let wrong = TempFile::with("wrong-token", "this-is-not-the-token\n", 0o600);
    let out = beuss(&server, &["--auth-file", wrong.text(), "PING"], &[], b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AUTH_FAILED") || stderr.contains("authentication failed"),
        "{stderr}"
    );
}

/// Runs the `beuss` CLI against `server` with `args`, extra environment and stdin.
fn beuss(
    server: &TestServer,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> std::process::Output {
    let port = server.port.to_string();
    let mut all = vec![("BPORT", port.as_str())];
    all.extend_from_slice(env);
    run_cli(args, &all, stdin)
}

/// A library client authenticated with `token`.
fn authed_client(server: &TestServer, token: &str) -> Client {
    let mut c = server.client();
    c.auth(token.as_bytes()).unwrap();
    c
}
