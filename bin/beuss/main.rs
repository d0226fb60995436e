//! `beuss`: the command-line client, with the Go original's verbs and argument order
//! (`echo data | beuss PUT q`, `beuss GET q out.bin`, `beuss ON q`) plus `STATS`,
//! `PURGE` and `PING`, and the work-queue verbs of protocol version 2: `ACK`, `NACK`,
//! `TOUCH`, `DEAD` and the job runner `WORK`.
//!
//! The flow is: parse the arguments ([`args`]), resolve the server address
//! (`--host`/`--port`, else `BHOST`/`BPORT`, else `localhost:6552`), run one verb (one
//! module each) on a [`beuss::Client`], and map every failure to a message a person
//! can act on plus a documented exit code ([`output`]).

mod args;
mod conn;
mod dead;
mod files;
mod get;
mod on;
mod output;
mod ping;
mod purge;
mod put;
mod settle;
mod stats;
mod work;

use std::process::ExitCode;

use args::{Parsed, Verb};
use output::{EXIT_USAGE, report, write_stdout};

/// The verbs, in the order `beuss --help` lists them.
const VERBS: &[Verb] = &[
    put::VERB,
    get::VERB,
    on::VERB,
    settle::ACK,
    settle::NACK,
    settle::TOUCH,
    dead::VERB,
    work::VERB,
    stats::VERB,
    purge::VERB,
    ping::VERB,
];

fn main() -> ExitCode {
    let printed = |text: &str| match write_stdout(text.as_bytes()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    };
    match args::parse(std::env::args_os().skip(1), VERBS) {
        Ok(Parsed::Version) => printed(&format!("beuss {}\n", env!("CARGO_PKG_VERSION"))),
        Ok(Parsed::Help(text)) => printed(&text),
        Ok(Parsed::NoVerb(usage)) => {
            eprint!("{usage}");
            ExitCode::from(EXIT_USAGE)
        }
        Ok(Parsed::Run {
            command,
            args,
            addr,
        }) => match command.run(&addr, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => report(&failure),
        },
        Err(failure) => report(&failure),
    }
}
