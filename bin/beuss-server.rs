//! `beuss-server`: reads its settings from `B*` environment variables, binds, and
//! serves until SIGINT or SIGTERM.

use std::process::ExitCode;

use beuss::config::{self, Config, VARIABLES};
use beuss::server::Server;

/// Help lines stay under this many columns, to fit an 80-column terminal.
const HELP_WIDTH: usize = 79;

fn help() -> String {
    let mut text = format!(
        "beuss-server {}: a tiny message-queue server\n\n\
         Usage: beuss-server [--help | --version]\n\n\
         Takes no arguments; set these environment variables instead (an empty\n\
         value counts as unset):\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in VARIABLES {
        text.push_str(&format!("  {name}={default}\n"));
        wrap_into(&mut text, meaning, "      ");
    }
    text.push_str(
        "\nExample: BHOST=0.0.0.0 BMAXMESSAGESIZE=16M beuss-server\n\
         Set BAUTHFILE before binding a non-loopback BHOST, and put TLS in front\n\
         on a network you do not trust (README, \"Security\"). Without BDATADIR\n\
         messages are held in memory only: SIGINT or SIGTERM stops the server\n\
         cleanly and they are gone; with it they are kept on disk and loaded again\n\
         at the next start. SIGHUP reads BAUTHFILE again.\n",
    );
    text
}

/// Appends `words` to `text`, wrapped at [`HELP_WIDTH`], each line led by `indent`.
fn wrap_into(text: &mut String, words: &str, indent: &str) {
    let mut line = String::new();
    for word in words.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > HELP_WIDTH {
            text.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        text.push_str(&format!("{indent}{line}\n"));
    }
}

fn main() -> ExitCode {
    // args_os: an argument that is not UTF-8 is refused like any other, not a panic.
    let arg = std::env::args_os().nth(1);
    match arg.as_ref().map(|a| a.to_string_lossy()).as_deref() {
        None => {}
        Some("-h" | "--help" | "help") => return print(&help()),
        Some("-V" | "--version") => {
            return print(&format!("beuss-server {}\n", env!("CARGO_PKG_VERSION")));
        }
        Some(other) => {
            eprintln!("beuss-server: unexpected argument {other:?}; see beuss-server --help");
            return ExitCode::from(2);
        }
    }
    let (filter, warning) = config::log_filter(std::env::var_os("RUST_LOG").as_deref());
    beuss::logger::init(&filter);
    if let Some(warning) = warning {
        log::warn!("{warning}");
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("beuss-server: {e}");
            return ExitCode::from(2);
        }
    };
    // Fatal errors go to stderr directly, not through the logger: they must be seen
    // even with RUST_LOG=off.
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("beuss-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.handle_signals() {
        eprintln!("beuss-server: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beuss-server: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to standard output; a reader gone early (`| head`) is no error.
fn print(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("beuss-server: cannot write standard output: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}
