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
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("-h" | "--help" | "help") => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("beuss-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
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
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.handle_signals() {
        log::error!("cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
