//! The two transports the server listens on, TCP and a Unix stream socket, behind
//! one listener type and one stream type, so that the event loop and connections do
//! not care which one a client came by (protocol.md 16.6).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

/// Who is at the other end of a connection, for logs and per-address limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A client of the Unix socket (such peers have no address of their own).
    Unix,
}

impl Peer {
    /// The client's IP address; `None` for the Unix socket.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr.ip()),
            Peer::Unix => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Unix => f.write_str("unix socket"),
        }
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// On a TCP address.
    Tcp(TcpListener),
    /// On a Unix socket path; the file is removed when this is dropped, if it is
    /// still the one bound (device and inode as recorded at bind).
    Unix(UnixListener, PathBuf, Option<(u64, u64)>),
}

impl Listener {
    /// Accepts one connection.
    ///
    /// # Errors
    /// As `accept(2)`; `WouldBlock` when none is waiting.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), Peer::Tcp(a))),
            Listener::Unix(l, ..) => l.accept().map(|(s, _)| (Stream::Unix(s), Peer::Unix)),
        }
    }

    /// The TCP address it is bound to; `None` for the Unix socket.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// How it is named in logs and to clients: `host:port` or `unix:PATH`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
            Listener::Unix(_, path, _) => format!("unix:{}", path.display()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path, bound) = self {
            // Only our own socket: a stopped server leaves nothing behind for the next
            // one to trip over, but never removes another server's socket that took
            // the path after ours was deleted.
            if file_id(path) == *bound {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The device and inode of the file at `path`, to tell one file from another put in
/// its place.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Binds the Unix socket at `path` with permission bits `mode`.
///
/// A socket file left by a server that is gone (nothing accepts on it) is replaced;
/// a path that is not a socket, or a socket some process still listens on, is refused,
/// so that a second server cannot silently steal the first one's clients.
///
/// # Errors
/// Why the path cannot be used, naming it.
pub fn bind_unix(path: &Path, mode: u32) -> io::Result<Listener> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("cannot listen on unix:{shown}: the path exists and is not a socket"),
            ));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("cannot listen on unix:{shown}: another server is listening there"),
                ));
            }
            // Only a refusal says nobody listens; any other error (no permission,
            // say) leaves the path alone rather than delete a live server's socket.
            Err(e) if e.kind() != io::ErrorKind::ConnectionRefused => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on unix:{shown}: a socket is there already: {e}"),
                ));
            }
            Err(_) => std::fs::remove_file(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot remove the stale socket unix:{shown}: {e}"),
                )
            })?,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot listen on unix:{shown}: {e}"),
            ));
        }
    }
    // The socket file is created by bind(2) with the process's umask: narrow it for
    // that call so that no client can connect in the moment before the chmod below.
    // SAFETY: umask only swaps the process's file-creation mask; the server is still
    // single-threaded here, so no other file is created meanwhile.
    let old_mask = unsafe { libc::umask(!(mode as libc::mode_t) & 0o777) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, putting the previous mask back.
    unsafe { libc::umask(old_mask) };
    let listener = bound
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on unix:{shown}: {e}")))?;
    // Owned from here: dropping it on an error below removes the file.
    let listener = Listener::Unix(listener, path.to_owned(), file_id(path));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot set the mode of unix:{shown} to {mode:o}: {e}"),
        )
    })?;
    Ok(listener)
}

/// A client connection's socket.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// The Unix socket.
    Unix(UnixStream),
}

impl Stream {
    /// Shuts down one or both directions.
    ///
    /// # Errors
    /// As `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Turns Nagle's algorithm off on TCP (replies are whole frames written at once);
    /// nothing to do on a Unix socket.
    ///
    /// # Errors
    /// As `setsockopt(2)`.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Implements mio's `Source` for an enum of sockets by handing each call to the socket
/// inside, so that the poller registers a listener or stream of either transport.
macro_rules! delegate_source {
    ($kind:ident, $($variant:ident($inner:ident $(, $rest:tt)*)),+) => {
        impl Source for $kind {
            fn register(
                &mut self,
                registry: &Registry,
                token: Token,
                interests: Interest,
            ) -> io::Result<()> {
                match self {
                    $($kind::$variant($inner $(, $rest)*) => $inner.register(registry, token, interests),)+
                }
            }

            fn reregister(
                &mut self,
                registry: &Registry,
                token: Token,
                interests: Interest,
            ) -> io::Result<()> {
                match self {
                    $($kind::$variant($inner $(, $rest)*) => $inner.reregister(registry, token, interests),)+
                }
            }

            fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
                match self {
                    $($kind::$variant($inner $(, $rest)*) => $inner.deregister(registry),)+
                }
            }
        }
    };
}

delegate_source!(Listener, Tcp(l), Unix(l, _, _));
delegate_source!(Stream, Tcp(s), Unix(s));
