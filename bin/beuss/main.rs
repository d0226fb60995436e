//! `beuss`: the command-line client, with the Go original's verbs and argument order
//! (`echo data | beuss PUT q`, `beuss GET q out.bin`, `beuss ON q`) plus `STATS`,
//! `PURGE` and `PING`.
//!
//! The flow is: parse the arguments ([`args`]), resolve the server address
//! (`--host`/`--port`, else `BHOST`/`BPORT`, else `localhost:6552`), run one verb (one
//! module each) on a [`beuss::Client`], and map every failure to a message a person
//! can act on plus a documented exit code ([`output`]).

mod args;
mod conn;
mod get;
mod on;
mod output;
mod ping;
mod purge;
mod put;
mod stats;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use args::{Args, Verb, main_help, parse_args, queue_name, server_addr};
use on::OnFormat;
use output::{EXIT_OK, EXIT_USAGE, Failure, report, write_stdout};

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(failure) => return report(&failure),
    };
    let printed = |text: String| match write_stdout(text.as_bytes()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    };
    if args.version {
        return printed(format!("beuss {}\n", env!("CARGO_PKG_VERSION")));
    }
    let Some(verb) = args.verb else {
        if args.help {
            return printed(main_help());
        }
        eprint!("{}", main_help());
        return ExitCode::from(EXIT_USAGE);
    };
    if args.help {
        return printed(verb.help().to_string());
    }
    match run(verb, &args) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => report(&failure),
    }
}

fn run(verb: Verb, args: &Args) -> Result<(), Failure> {
    let addr = server_addr(args)?;
    // The first positional argument is always the queue (PING takes none).
    let queue = args.positional.first().map(|a| queue_name(a)).transpose()?;
    match verb {
        Verb::Put => put::put(&addr, queue.unwrap_or_default()),
        Verb::Get => get::get(
            &addr,
            queue.unwrap_or_default(),
            args.positional.get(1).map(Path::new),
            args.wait.unwrap_or(Duration::ZERO),
        ),
        Verb::On => on::on(
            &addr,
            queue.unwrap_or_default(),
            args.format.clone().unwrap_or(OnFormat::Line),
            !args.no_reconnect,
        ),
        Verb::Stats => stats::stats(&addr, queue, args.json),
        Verb::Purge => purge::purge(&addr, queue.unwrap_or_default()),
        Verb::Ping => ping::ping(&addr),
    }
}
