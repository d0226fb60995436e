//! `beuss`: the command-line client, with the Go original's verbs and argument order
//! (`echo data | beuss PUT q`, `beuss GET q out.bin`, `beuss ON q`) plus `STATS`,
//! `PURGE` and `PING`, the work-queue verbs of protocol version 2: `ACK`, `NACK`,
//! `TOUCH`, `DEAD` and the job runner `WORK`, and the fan-out verbs of version 3:
//! `PUB`, `BIND`, `UNBIND`, `SUB`, `REQ` and the responder `SERVE`, and `SCHEDULE`
//! of version 5.
//!
//! The flow is: parse the arguments ([`args`]), resolve the server address
//! (`--host`/`--port`, else `BHOST`/`BPORT`, else `localhost:6552`), run one verb (one
//! module each) on a [`beuss::Client`], and map every failure to a message a person
//! can act on plus a documented exit code ([`output`]).

mod args;
mod bind;
mod conn;
mod dead;
mod files;
mod get;
mod input;
mod on;
mod output;
mod ping;
mod publish;
mod purge;
mod put;
mod req;
mod schedule;
mod serve;
mod settle;
mod signals;
mod stats;
mod sub;
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
    publish::VERB,
    bind::BIND,
    bind::UNBIND,
    sub::VERB,
    req::VERB,
    serve::VERB,
    schedule::VERB,
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
            auth_file,
        }) => {
            if let Some(path) = auth_file {
                conn::set_auth_file(path);
            }
            match command.run(&addr, &args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(failure) => report(&failure),
            }
        }
        Err(failure) => report(&failure),
    }
}
