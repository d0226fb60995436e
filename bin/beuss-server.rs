//! `beuss-server`: reads its settings from `B*` environment variables, binds, and
//! serves until SIGINT or SIGTERM.

use std::process::ExitCode;

use beuss::config::{Config, VARIABLES};
use beuss::server::Server;

fn help() -> String {
    let mut text = format!(
        "beuss-server {}: a tiny message-queue server\n\n\
         Usage: beuss-server [--help | --version]\n\n\
         Takes no arguments; set these environment variables instead:\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in VARIABLES {
        text.push_str(&format!("  {name:<16} default {default:<10} {meaning}\n"));
    }
    text.push_str(
        "\nExample: BHOST=0.0.0.0 BMAXMESSAGESIZE=1M beuss-server\n\
         Stops cleanly on SIGINT or SIGTERM. Messages are held in memory only.\n",
    );
    text
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
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
