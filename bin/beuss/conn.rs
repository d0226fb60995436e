//! Connecting to the server.

use std::time::Duration;

use beuss::Client;

use crate::output::Failure;

/// Slack on top of a request's own wait before a missing reply counts as a dead server.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects, with a timeout on every read and write of `reply_within`.
pub fn connect(addr: &str, reply_within: Duration) -> Result<Client, Failure> {
    let mut client = Client::connect(addr).map_err(|e| Failure::client(addr, &e))?;
    client
        .set_timeout(Some(reply_within))
        .map_err(|e| Failure::client(addr, &e))?;
    Ok(client)
}
