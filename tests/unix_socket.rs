//! The Unix socket (protocol.md 16.6) against a real server: its file and mode, TCP
//! turned off, what the server does with a path already taken, the file removed at a
//! clean stop, and the CLI on it. Every library-client scenario of tests/client.rs and
//! tests/fanout_client.rs also runs over the socket (`on_both_transports!`).

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use beuss::Client;
use common::*;

/// The socket file exists with BUNIXMODE, serves the protocol, and is removed when
/// the server stops cleanly.
#[test]
fn socket_file_has_its_mode_and_is_removed_at_stop() {
    let path = temp_socket_path();
    let server =
        TestServer::start_with(&[("BUNIX", path.to_str().unwrap()), ("BUNIXMODE", "0600")]);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    server.wait_for_log(&format!("unix:{}", path.display()));
    let mut c = Client::connect_to(&format!("unix:{}", path.display())).unwrap();
    c.put("q", b"over the socket").unwrap();
    // And TCP still serves the same queues.
    assert_eq!(
        server.client_tcp().get("q").unwrap().as_deref(),
        Some(&b"over the socket"[..])
    );
    assert!(server.stop_with(libc::SIGTERM).success());
    assert!(!path.exists(), "socket file left behind");
}

/// BPORT=off leaves only the socket; without BUNIX it is refused at start-up.
#[test]
fn tcp_can_be_turned_off() {
    let path = temp_socket_path();
    let server = TestServer::start_with(&[("BUNIX", path.to_str().unwrap()), ("BPORT", "off")]);
    assert_eq!(server.port, 0);
    server.wait_for_log("TCP is off");
    let mut c = Client::connect_to(&format!("unix:{}", path.display())).unwrap();
    c.ping().unwrap();
    drop(server);
    let (status, _, stderr) = run_server_to_exit(&[], &[("BPORT", "off")]);
    assert!(!status.success());
    assert!(stderr.contains("BUNIX"), "{stderr}");
    let (status, _, stderr) = run_server_to_exit(
        &[],
        &[
            ("BUNIX", path.to_str().unwrap()),
            ("BUNIXMODE", "rw-rw----"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("BUNIXMODE"), "{stderr}");
    let _ = std::fs::remove_file(&path);
}

/// A socket file left by a killed server is replaced; a path that is not a socket,
/// or a socket another server listens on, is refused.
#[test]
fn a_taken_path_is_refused_and_a_stale_one_replaced() {
    let path = temp_socket_path();
    let text = path.to_str().unwrap().to_owned();
    let first = TestServer::start_with(&[("BUNIX", &text)]);
    let (status, _, stderr) = run_server_to_exit(&[], &[("BUNIX", &text), ("BPORT", "0")]);
    assert!(!status.success());
    assert!(stderr.contains("another server is listening"), "{stderr}");
    first.stop_with(libc::SIGKILL);
    assert!(path.exists(), "a killed server leaves its socket");
    let second = TestServer::start_with(&[("BUNIX", &text)]);
    Client::connect_to(&format!("unix:{text}"))
        .unwrap()
        .ping()
        .unwrap();
    drop(second);

    let file = TempFile::with("not-a-socket", "precious", 0o600);
    let (status, _, stderr) = run_server_to_exit(&[], &[("BUNIX", file.text()), ("BPORT", "0")]);
    assert!(!status.success());
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file.path).unwrap(), "precious");
    let _ = std::fs::remove_file(&path);
}

/// The CLI reaches the socket with --unix, or BUNIX in its environment (which wins
/// over BHOST/BPORT unless --host or --port is given).
#[test]
fn cli_over_the_socket() {
    let server = TestServer::start_on(Transport::Unix);
    let path = server.unix.clone().unwrap();
    let path = path.to_str().unwrap();
    let out = run_cli(&["--unix", path, "PUT", "q"], &[], b"one");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(&["GET", "q"], &[("BUNIX", path), ("BPORT", "1")], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"one");
    let out = run_cli(&["PING"], &[("BUNIX", path)], b"");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unix:"),
        "{out:?}"
    );
    // --port names TCP: BUNIX is then not used.
    let port = server.port.to_string();
    let out = run_cli(
        &["--port", &port, "PING"],
        &[("BUNIX", "/nonexistent")],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
