//! SIGTERM and SIGINT for `SUB` and `SERVE`: the signal handler only writes to a
//! pipe (signal-hook's), and a thread reading it calls the verb's handler, which may
//! then do anything a thread can.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;

use crate::output::{EXIT_ERROR, Failure};

/// Calls `handler` on a thread of its own for every SIGTERM and SIGINT from now on
/// (which no longer end the process by themselves).
///
/// # Errors
/// Exit code 1 when the pipe or the handlers cannot be set up.
pub fn on_signals(mut handler: impl FnMut() + Send + 'static) -> Result<(), Failure> {
    let cannot = |e: io::Error| Failure::new(EXIT_ERROR, format!("cannot watch signals: {e}"));
    let (mut read, write) = UnixStream::pair().map_err(cannot)?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let end = write.try_clone().map_err(cannot)?;
        signal_hook::low_level::pipe::register(signal, end).map_err(cannot)?;
    }
    std::thread::spawn(move || {
        let mut buf = [0; 16];
        loop {
            match read.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(0) | Err(_) => return,
                Ok(n) => (0..n).for_each(|_| handler()),
            }
        }
    });
    Ok(())
}
