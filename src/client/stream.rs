//! The client's socket: TCP, or on Unix-like systems a Unix stream socket named by an
//! address `unix:PATH` (protocol.md 16.6). The protocol over both is the same.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The prefix that names a Unix socket in an address: `unix:/run/beuss/beuss.sock`.
pub const UNIX_PREFIX: &str = "unix:";

/// A connected socket to a beuss server.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix stream socket connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `addr`: `unix:PATH`, or anything [`TcpStream::connect`] takes as a
    /// string (`host:port`), each address it resolves to tried for up to `timeout`.
    ///
    /// # Errors
    /// The last connection error; `Unsupported` for `unix:` where Unix sockets do not
    /// exist.
    pub fn connect(addr: &str, timeout: Duration) -> io::Result<Stream> {
        if let Some(path) = addr.strip_prefix(UNIX_PREFIX) {
            return connect_unix(path);
        }
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let mut last_error = None;
        for candidate in &addrs {
            match TcpStream::connect_timeout(candidate, timeout) {
                Ok(stream) => return Ok(Stream::Tcp(stream)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "resolved to no address")
        }))
    }

    /// A second handle on the same socket (one thread reads while another writes).
    ///
    /// # Errors
    /// As `dup(2)`.
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            #[cfg(unix)]
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    /// Sets the read timeout (`None`: block for ever).
    ///
    /// # Errors
    /// The OS refused it (a zero duration).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Sets the write timeout (`None`: block for ever).
    ///
    /// # Errors
    /// The OS refused it (a zero duration).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    /// The read timeout in force.
    ///
    /// # Errors
    /// As `getsockopt(2)`.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        match self {
            Stream::Tcp(s) => s.read_timeout(),
            #[cfg(unix)]
            Stream::Unix(s) => s.read_timeout(),
        }
    }

    /// Shuts down one or both directions.
    ///
    /// # Errors
    /// As `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Turns Nagle's algorithm off on TCP; nothing to do on a Unix socket.
    ///
    /// # Errors
    /// As `setsockopt(2)`.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            #[cfg(unix)]
            Stream::Unix(_) => Ok(()),
        }
    }

    /// The server's TCP address; `None` over a Unix socket.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().ok(),
            #[cfg(unix)]
            Stream::Unix(_) => None,
        }
    }
}

#[cfg(unix)]
fn connect_unix(path: &str) -> io::Result<Stream> {
    UnixStream::connect(path).map(Stream::Unix)
}

#[cfg(not(unix))]
fn connect_unix(_path: &str) -> io::Result<Stream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Unix sockets (unix: addresses) do not exist on this system",
    ))
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Stream {
        Stream::Tcp(stream)
    }
}

#[cfg(unix)]
impl From<UnixStream> for Stream {
    fn from(stream: UnixStream) -> Stream {
        Stream::Unix(stream)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The first token of a token file (protocol.md 16.8): the first line that is not
/// blank or a `#` comment, up to its first blank. A client can thus read the very
/// file the server reads.
///
/// # Errors
/// The file cannot be read or holds no token; the text names the path, never the
/// token.
pub fn read_token_file(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the token file {}: {e}", path.display()),
        )
    })?;
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .and_then(|line| line.split_whitespace().next())
        .map(|token| token.as_bytes().to_vec())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the token file {} holds no token", path.display()),
            )
        })
}
