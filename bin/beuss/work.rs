//! `beuss WORK`: the job runner.
use crate::args::Verb;
pub const VERB: Verb = crate::settle::ACK;
