//! `AUTH` and what it guards (protocol.md 16.1 to 16.4): the check before every
//! request of a connection yet to authenticate, the token check and the wait after
//! a failure, read-only access, and re-reading the token file on `SIGHUP`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use log::{info, warn};

use crate::auth::{Access, Tokens};
use crate::conn::State;
use crate::protocol::{self, ErrorCode, Request};

use super::{ConnRef, Server};

/// The text of every `AUTH_REQUIRED`: it must tell nothing about the request.
const REQUIRED_TEXT: &str = "authentication required";
/// The text of every `AUTH_FAILED`.
const FAILED_TEXT: &str = "authentication failed";

/// Reads the token file, warning when other users may read it too.
///
/// # Errors
/// As [`Tokens::load`].
pub(super) fn load_tokens(path: &Path) -> Result<Tokens, String> {
    let tokens = Tokens::load(path)?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(
            "BAUTHFILE {} can be read by other users (mode {:o}): anyone on this machine \
             who can read it can use the server; chmod 600 it, or use systemd's \
             LoadCredential= (README, \"Security\")",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(tokens)
}

impl Server {
    /// Answers `AUTH`: `AUTHED` with the token's access, or, after the wait the
    /// client's address has earned, a fatal `AUTH_FAILED`.
    pub(super) fn authenticate(&mut self, r: ConnRef, token: &[u8], now: Instant) {
        let access = match &self.tokens {
            None => Some(Access::ReadWrite),
            Some(tokens) => tokens.check(token),
        };
        let Some(conn) = self.conn_mut(r) else {
            return;
        };
        if let Some(access) = access {
            conn.access = Some(access);
            protocol::encode_authed(&mut conn.output, access == Access::ReadOnly);
            return;
        }
        let peer = conn.peer;
        self.counters.auth_failures += 1;
        let wait = self.penalties.fail(peer.ip(), now);
        if let Some(held_back) = self.auth_log.allow(now) {
            let more = if held_back > 0 {
                format!(" ({held_back} more failed attempts since the last line)")
            } else {
                String::new()
            };
            warn!(
                "{peer}: AUTH failed, answered in {wait:?}; {} failed since start{more}",
                self.counters.auth_failures
            );
        }
        if wait.is_zero() {
            self.close_with(r, ErrorCode::AuthFailed, FAILED_TEXT);
            return;
        }
        if let Some(conn) = self.conn_mut(r) {
            let until = now + wait;
            conn.state = State::Penalized;
            conn.input.clear();
            self.penalized.push((until, r));
        }
    }

    /// Sends the `AUTH_FAILED` of every connection whose wait is over.
    pub(super) fn release_penalized(&mut self, now: Instant) {
        if self.penalized.is_empty() {
            return;
        }
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.penalized)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.penalized = waiting;
        for (_, r) in due {
            if self
                .conn_mut(r)
                .is_some_and(|c| matches!(c.state, State::Penalized))
            {
                self.close_with(r, ErrorCode::AuthFailed, FAILED_TEXT);
                self.ready.push_back(r);
            }
        }
        self.penalties.forget_old(now);
    }

    /// A connection yet to authenticate sent something other than `HELLO`, `PING`,
    /// `QUIT` or `AUTH`: a fatal `AUTH_REQUIRED`, decided from the opcode alone.
    pub(super) fn auth_required(&mut self, r: ConnRef) {
        self.counters.auth_required += 1;
        if let Some(conn) = self.conn_mut(r) {
            info!("{}: request before AUTH; closing the connection", conn.peer);
        }
        self.close_with(r, ErrorCode::AuthRequired, REQUIRED_TEXT);
    }

    /// True (and answered `FORBIDDEN`) when the connection's token is read-only and
    /// `request` would change something.
    pub(super) fn forbidden(&mut self, r: ConnRef, request: &Request<'_>) -> bool {
        let Some(conn) = self.conn_mut(r) else {
            return false;
        };
        if conn.access != Some(Access::ReadOnly) || protocol::allowed_read_only(request.opcode()) {
            return false;
        }
        protocol::encode_error(
            &mut conn.output,
            ErrorCode::Forbidden,
            false,
            "this connection's token is read-only",
        );
        self.counters.forbidden += 1;
        true
    }

    /// `SIGHUP`: reads `BAUTHFILE` again. A file that cannot be used now leaves the
    /// tokens in force, so that a typo cannot lock every client out.
    pub(super) fn reload_tokens(&mut self) {
        let Some(path) = self.config.auth_file.clone() else {
            info!("SIGHUP received: no BAUTHFILE to read again");
            return;
        };
        match load_tokens(&path) {
            Ok(tokens) => {
                info!(
                    "SIGHUP received: BAUTHFILE {} read again, {} tokens",
                    path.display(),
                    tokens.len()
                );
                self.tokens = Some(tokens);
            }
            Err(e) => warn!("SIGHUP received: {e}; the tokens read before stay in force"),
        }
    }

    /// Warns at start-up about what may reach the server unchecked (protocol.md 16,
    /// README "Security"): other machines without authentication, or tokens over
    /// plain TCP.
    pub(super) fn log_security(&self, exposed: &[String]) {
        if exposed.is_empty() {
            if let Some(tokens) = &self.tokens {
                info!("authentication required ({} tokens)", tokens.len());
            }
            return;
        }
        match &self.tokens {
            None => warn!(
                "{} can be reached from other machines and no authentication is set: \
                 anyone who can connect can read, add and delete every message. Unless \
                 this network is trusted or the port is firewalled, set BAUTHFILE, or \
                 listen on loopback only (BHOST=localhost, the default)",
                exposed.join(", ")
            ),
            Some(tokens) => info!(
                "authentication required ({} tokens); {} can be reached from other \
                 machines over plain TCP: tokens and messages travel unencrypted unless \
                 TLS is put in front (README, \"Security\")",
                tokens.len(),
                exposed.join(", ")
            ),
        }
    }
}
