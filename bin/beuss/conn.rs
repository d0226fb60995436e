//! Connecting to the server: the TCP or Unix-socket connection, its timeouts, a first
//! `HELLO` exchanged here by hand, and `AUTH` when a token file is given, before the
//! stream is handed to [`beuss::Client`].
//!
//! Doing the first exchange with a small, bounded buffer lets every verb tell a beuss
//! protocol-1 server from something else listening on the port: the old Go beuss
//! (which closes the connection without a word when the first bytes are not the
//! ASCII `PUT` or `GET`), or any other service, whose first reply must not be taken
//! for a length prefix (an HTTP server's `HTTP` reads as a 1.2 GB frame). The
//! `HELLO` also gives `PUT` the server's message size limit.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use beuss::Client;
use beuss::client::{ServerInfo, Stream, read_token_file};
use beuss::protocol::{self, LEN_PREFIX, Limits, PROTOCOL_VERSION, Request, Response};

use crate::output::{EXIT_CONNECT, Failure, describe_io, display_bytes};

/// Slack on top of a request's own wait before a missing reply counts as a dead server.
/// Also bounds how long a connection attempt may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest first reply accepted. A version-1 `HELLO` reply is at most 267 bytes and an
/// `ERROR` 1032; the rest is room for fields later versions may append.
const FIRST_REPLY_MAX: usize = 4096;

/// How long the old-protocol probe waits for the Go server's `OK`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The token file `--auth-file` named, for every connection of this run.
static AUTH_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Makes every connection of this run authenticate with the first token of `path`
/// (`--auth-file`; without it, `BAUTHFILE` is read).
pub fn set_auth_file(path: PathBuf) {
    let _ = AUTH_FILE.set(path);
}

/// The token file to use: `--auth-file`, else `BAUTHFILE`, else none.
fn auth_file() -> Option<PathBuf> {
    AUTH_FILE.get().cloned().or_else(|| {
        std::env::var_os("BAUTHFILE")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    })
}

/// What the server said about itself in its `HELLO` reply.
#[derive(Debug)]
pub struct Server {
    /// Protocol version spoken on this connection.
    pub version: u16,
    /// `BMAXMESSAGESIZE`: the longest payload a `PUT` keeps.
    pub max_message_size: u32,
    /// Server software and version.
    pub name: String,
    /// Version 2's features and lease limits; `None` from a version-1 server.
    pub limits: Option<Limits>,
    /// The same, as the library client keeps it (handed to each [`Client`] made on
    /// this connection, so that it does not send a second `HELLO`).
    pub info: Option<ServerInfo>,
}

impl Server {
    /// The version-2 limits, or a failure saying that this server has no leases.
    ///
    /// # Errors
    /// Exit code 1 when the server speaks only version 1.
    pub fn leases(&self, addr: &str) -> Result<Limits, Failure> {
        self.limits
            .filter(|l| l.features & protocol::FEATURE_LEASES != 0)
            .ok_or_else(|| {
                Failure::new(
                    crate::output::EXIT_ERROR,
                    format!(
                        "the server at {addr} ({}) has no leases (protocol version {}); \
                         this needs a version-2 beuss-server",
                        self.name, self.version
                    ),
                )
            })
    }

    /// Checks the server has schedules (protocol version 5).
    ///
    /// # Errors
    /// Exit code 1 when it does not.
    pub fn schedules(&self, addr: &str) -> Result<(), Failure> {
        let has = self
            .limits
            .is_some_and(|l| l.features & protocol::FEATURE_SCHEDULES != 0);
        if self.version >= 5 && has {
            return Ok(());
        }
        Err(Failure::new(
            crate::output::EXIT_ERROR,
            format!(
                "the server at {addr} ({}) has no schedules (protocol version {}); \
                 SCHEDULE needs a version-5 beuss-server",
                self.name, self.version
            ),
        ))
    }

    /// Checks the server has fan-out (subjects, PUB, SUB, REQ: protocol version 3).
    ///
    /// # Errors
    /// Exit code 1 when it does not.
    pub fn fanout(&self, addr: &str) -> Result<(), Failure> {
        let has = self
            .limits
            .is_some_and(|l| l.features & protocol::FEATURE_FANOUT != 0);
        if self.version >= 3 && has {
            return Ok(());
        }
        Err(Failure::new(
            crate::output::EXIT_ERROR,
            format!(
                "the server at {addr} ({}) has no fan-out (protocol version {}); subjects, \
                 PUB, BIND, SUB, REQ and SERVE need a version-3 beuss-server",
                self.name, self.version
            ),
        ))
    }

    /// A library client on `stream`, told what this server said to `HELLO`.
    ///
    /// # Errors
    /// As [`Client::from_stream`].
    pub fn client(&self, addr: &str, stream: Stream) -> Result<Client, Failure> {
        let mut client = Client::from_stream(stream).map_err(|e| Failure::client(addr, &e))?;
        if let Some(info) = &self.info {
            client.set_server_info(info.clone());
        }
        Ok(client)
    }
}

/// Connects to `addr`, says `HELLO`, and returns a client whose every read and write
/// times out after `reply_within`.
///
/// # Errors
/// A [`Failure`] a person can act on: exit code 3 when the server cannot be reached,
/// 1 when what answers is not a beuss protocol-1 server.
pub fn connect(addr: &str, reply_within: Duration) -> Result<(Client, Server), Failure> {
    let (stream, server) = connect_stream(addr, reply_within)?;
    let client = server.client(addr, stream)?;
    Ok((client, server))
}

/// As [`connect`], but hands back the stream itself, for `WORK`, which reads replies
/// on one thread while it writes requests on another.
///
/// # Errors
/// As [`connect`].
pub fn connect_stream(addr: &str, reply_within: Duration) -> Result<(Stream, Server), Failure> {
    let mut stream = open(addr)?;
    let lost = |e: io::Error| lost(addr, &e);
    stream.set_read_timeout(Some(reply_within)).map_err(lost)?;
    stream.set_write_timeout(Some(reply_within)).map_err(lost)?;
    let server = hello(&mut stream, addr)?;
    match auth_file() {
        // A server older than version 4 has no AUTH (and requires none).
        Some(path) if server.version >= 4 => {
            authenticate(&mut stream, addr, &path).map_err(|mut failure| {
                // A wrong token or an unreadable file does not get better by trying
                // again; a connection lost meanwhile may.
                failure.incompatible = failure.code != EXIT_CONNECT;
                failure
            })?
        }
        Some(_) => {}
        None if server
            .limits
            .is_some_and(|l| l.features & protocol::FEATURE_AUTH_REQUIRED != 0) =>
        {
            let mut failure = Failure::new(
                crate::output::EXIT_ERROR,
                format!(
                    "the server at {addr} requires authentication: give --auth-file FILE \
                     (a file whose first line is a token) or set BAUTHFILE"
                ),
            );
            failure.incompatible = true;
            return Err(failure);
        }
        None => {}
    }
    Ok((stream, server))
}

/// The first address `addr` resolves to that accepts a connection (`unix:PATH`: that
/// Unix socket).
fn open(addr: &str) -> Result<Stream, Failure> {
    Stream::connect(addr, REPLY_TIMEOUT).map_err(|e| {
        Failure::new(
            EXIT_CONNECT,
            format!("cannot connect to {addr}: {}", describe_io(&e)),
        )
    })
}

/// Sends `AUTH` with the first token of `path` and reads `AUTHED`.
fn authenticate(stream: &mut Stream, addr: &str, path: &std::path::Path) -> Result<(), Failure> {
    let token = read_token_file(path).map_err(|e| Failure::usage(e.to_string()))?;
    let mut request = Vec::new();
    Request::Auth { token: &token }
        .encode(&mut request)
        .map_err(|e| Failure::usage(format!("the token in {}: {e}", path.display())))?;
    stream.write_all(&request).map_err(|e| lost(addr, &e))?;
    let mut buf = vec![0; FIRST_REPLY_MAX];
    let mut have = 0;
    loop {
        match protocol::decode_response(&buf[..have], (FIRST_REPLY_MAX - LEN_PREFIX) as u32) {
            Ok(Some((Response::Authed { .. }, _))) => return Ok(()),
            Ok(Some((Response::Error { code, message, .. }, _))) => {
                return Err(Failure::server(addr, code, message));
            }
            Ok(Some(_)) | Err(_) => return Err(not_beuss(addr, &buf[..have])),
            Ok(None) => {}
        }
        let n = match stream.read(&mut buf[have..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(lost(addr, &e)),
        };
        if n == 0 {
            return Err(Failure::new(
                EXIT_CONNECT,
                format!("{addr} closed the connection before answering AUTH"),
            ));
        }
        have += n;
    }
}

/// The connection to `addr` broke.
fn lost(addr: &str, e: &io::Error) -> Failure {
    Failure::new(
        EXIT_CONNECT,
        format!("lost the connection to {addr}: {}", describe_io(e)),
    )
}

/// Sends `HELLO` and reads its reply, at most [`FIRST_REPLY_MAX`] bytes.
fn hello(stream: &mut Stream, addr: &str) -> Result<Server, Failure> {
    let mut request = Vec::new();
    Request::Hello {
        version: PROTOCOL_VERSION,
    }
    .encode(&mut request)
    .map_err(|e| Failure::new(crate::output::EXIT_ERROR, e.to_string()))?;
    stream.write_all(&request).map_err(|e| lost(addr, &e))?;
    let mut buf = vec![0; FIRST_REPLY_MAX];
    let mut have = 0;
    loop {
        match protocol::decode_response(&buf[..have], (FIRST_REPLY_MAX - LEN_PREFIX) as u32) {
            Ok(Some((response, _))) => return first_reply(addr, response, &buf[..have]),
            Ok(None) => {}
            Err(_) => return Err(not_beuss(addr, &buf[..have])),
        }
        let n = match stream.read(&mut buf[have..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The Go server reads only what one read gives it, then closes: a reset
            // (unread bytes left behind) means the same as a silent close.
            Err(e) if have == 0 && e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(lost(addr, &e)),
        };
        if n == 0 {
            return Err(match stream.peer_addr() {
                Some(peer) if have == 0 && speaks_old_go_protocol(peer) => {
                    Failure::not_beuss(format!(
                        "{addr} is not a beuss protocol-1 server: it speaks the old Go beuss \
                         protocol (ASCII PUT/GET). Run this beuss-server there, or use the \
                         Go beuss client with it"
                    ))
                }
                _ if have == 0 => Failure::new(
                    EXIT_CONNECT,
                    format!("{addr} closed the connection before answering (server stopped?)"),
                ),
                _ => not_beuss(addr, &buf[..have]),
            });
        }
        have += n;
    }
}

/// The server's reply to `HELLO`: its figures, or the error it sent instead.
fn first_reply(addr: &str, response: Response<'_>, bytes: &[u8]) -> Result<Server, Failure> {
    let info = ServerInfo::from_response(&response);
    match response {
        Response::Hello {
            version,
            max_message_size,
            server,
            limits,
            ..
        } => Ok(Server {
            version,
            max_message_size,
            name: server.to_owned(),
            limits,
            info,
        }),
        Response::Error { code, message, .. } => Err(Failure::server(addr, code, message)),
        _ => Err(not_beuss(addr, bytes)),
    }
}

/// Something answered, but not in protocol 1.
fn not_beuss(addr: &str, bytes: &[u8]) -> Failure {
    let shown = &bytes[..bytes.len().min(32)];
    Failure::not_beuss(format!(
        "{addr} is not a beuss protocol-1 server (it answered \"{}\"{})",
        display_bytes(shown),
        if shown.len() < bytes.len() { "..." } else { "" }
    ))
}

/// True if `peer` answers `OK` to the ASCII word `GET`, as the Go beuss server does when
/// a client opens a consumer connection. It then gets `QUIT`, which the Go server takes
/// as goodbye; nothing is consumed. Only asked after a connection closed without a
/// reply to `HELLO`, so a protocol-1 server never sees it unless it was stopping.
fn speaks_old_go_protocol(peer: SocketAddr) -> bool {
    let Ok(mut probe) = TcpStream::connect_timeout(&peer, PROBE_TIMEOUT) else {
        return false;
    };
    let mut reply = [0; 2];
    let answered = probe.set_read_timeout(Some(PROBE_TIMEOUT)).is_ok()
        && probe.set_write_timeout(Some(PROBE_TIMEOUT)).is_ok()
        && probe.write_all(b"GET").is_ok()
        && probe.read_exact(&mut reply).is_ok()
        && &reply == b"OK";
    if answered {
        let _ = probe.write_all(b"QUIT");
    }
    answered
}
