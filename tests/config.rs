//! Start-up configuration through the real `beuss-server` binary: which variables it
//! reads, how an error names the one at fault, empty values, `RUST_LOG`, `--help`.

mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStringExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

use common::{TIMEOUT, run_server_to_exit, wait_exit};

/// How a start attempt ended.
enum Started {
    /// The server printed its "listening on" line; it is killed on drop.
    Listening {
        // Held, never read: the server lives as long as the binding does.
        #[allow(dead_code)]
        child: KillOnDrop,
        /// Its log up to and including that line.
        log: Vec<String>,
        /// The address of that line.
        addr: String,
    },
    /// The server exited without listening.
    Exited { status: ExitStatus, stderr: String },
}

/// A server child process killed when the test is done with it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `beuss-server` with exactly `env` (plus `RUST_LOG=info` unless `env` sets
/// it) and waits for it to listen or exit.
fn start(env: &[(&str, OsString)]) -> Started {
    let mut command = Command::new(env!("CARGO_BIN_EXE_beuss-server"));
    command
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn beuss-server");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(line) => {
                let addr = line
                    .split("listening on ")
                    .nth(1)
                    .map(|rest| rest.split([' ', ',']).next().unwrap_or_default().to_owned());
                log.push(line);
                if let Some(addr) = addr {
                    return Started::Listening {
                        child: KillOnDrop(child),
                        log,
                        addr,
                    };
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = wait_exit(&mut child, "beuss-server closed stderr but runs on");
                return Started::Exited {
                    status,
                    stderr: log.join("\n"),
                };
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("beuss-server neither listened nor exited; its log:\n{log:?}");
            }
        }
    }
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// A loopback address on a free port, for servers that must start.
fn free_port_env() -> Vec<(&'static str, OsString)> {
    vec![("BHOST", os("127.0.0.1")), ("BPORT", os("0"))]
}

/// A variable beuss does not read cannot stop it, even when it is not UTF-8.
#[test]
fn unrelated_non_utf8_variable_is_ignored() {
    let mut env = free_port_env();
    env.push(("BFOO", OsString::from_vec(vec![0xff])));
    env.push(("B", OsString::from_vec(vec![b'x', 0xfe])));
    match start(&env) {
        Started::Listening { .. } => {}
        Started::Exited { status, stderr } => {
            panic!("BFOO=\\xff stopped start-up ({status}):\n{stderr}")
        }
    }
}

/// A variable beuss reads that is not UTF-8 stops start-up, named.
#[test]
fn non_utf8_value_names_its_variable() {
    let mut env = free_port_env();
    env.push(("BMAXMEMORY", OsString::from_vec(vec![b'1', 0xff])));
    match start(&env) {
        Started::Exited { status, stderr } => {
            assert_eq!(status.code(), Some(2), "{stderr}");
            assert!(stderr.contains("BMAXMEMORY="), "{stderr}");
            assert!(stderr.contains("not valid UTF-8"), "{stderr}");
        }
        Started::Listening { log, .. } => panic!("started: {log:?}"),
    }
}

/// `BMAXMEMORY` alone below the default message size is blamed, with what to change;
/// the `BMAXMESSAGESIZE` the user never set is not.
#[test]
fn small_memory_cap_alone_names_bmaxmemory() {
    let (status, _, stderr) = run_server_to_exit(
        &[],
        &[("BHOST", "127.0.0.1"), ("BPORT", "0"), ("BMAXMEMORY", "1K")],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("beuss-server: BMAXMEMORY=\"1K\""),
        "{stderr}"
    );
    assert!(stderr.contains("raise BMAXMEMORY"), "{stderr}");
}

/// Empty values are unset: the server starts with its defaults, on `localhost`.
#[test]
fn empty_values_count_as_unset() {
    let env: Vec<(&str, OsString)> = [
        "BHOST",
        "BMAXMESSAGESIZE",
        "BMAXMEMORY",
        "BQUEUEIDLE",
        "BMAXCONNECTIONS",
    ]
    .into_iter()
    .map(|name| (name, os("")))
    .chain([("BPORT", os("0"))])
    .collect();
    let Started::Listening {
        addr,
        child: _server,
        ..
    } = start(&env)
    else {
        panic!("empty values stopped start-up");
    };
    assert!(
        addr.starts_with("127.0.0.1:") || addr.starts_with("[::1]:"),
        "an empty BHOST should bind localhost, not {addr}"
    );
    let mut client = beuss::Client::connect(addr.as_str()).expect("connect");
    client.set_timeout(Some(TIMEOUT)).unwrap();
    let info = client.hello().unwrap();
    assert_eq!(info.max_message_size, 1 << 20, "the default message size");
    let stats = client.stats().unwrap();
    assert_eq!(stats.get("max_memory"), Some(256 << 20));
}

/// A `RUST_LOG` the logger would read as a module name (logging nothing) warns and
/// logs at `info`.
#[test]
fn unknown_rust_log_warns_and_logs_at_info() {
    let mut env = free_port_env();
    env.push(("RUST_LOG", os("bogus")));
    let Started::Listening {
        log,
        child: _server,
        ..
    } = start(&env)
    else {
        panic!("RUST_LOG=bogus stopped start-up");
    };
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("RUST_LOG=\"bogus\"")),
        "no warning about RUST_LOG: {log:?}"
    );
    assert!(log.last().is_some_and(|l| l.contains("INFO")), "{log:?}");
}

/// `--help` fits an 80-column terminal and still lists every variable.
#[test]
fn help_fits_80_columns() {
    let (status, stdout, _) = run_server_to_exit(&["--help"], &[]);
    assert!(status.success());
    for line in stdout.lines() {
        assert!(line.chars().count() < 80, "{} columns: {line}", line.len());
    }
    for (name, _, _) in beuss::config::VARIABLES {
        assert!(
            stdout.contains(&format!("{name}=")),
            "{name} missing:\n{stdout}"
        );
    }
}
