//! Subject matching for fan-out: which bindings and subscriptions a published subject
//! reaches. Pure: no sockets, no queues, no clock; it knows patterns and targets only,
//! and the server decides what a target is (a queue's name, a subscription's key).
//!
//! - [`subject`]: what makes a subject or a pattern valid ([`check_subject`],
//!   [`check_pattern`], with a [`SubjectError`] saying why not) and [`matches()`], the
//!   reference definition of a match.
//! - [`trie`]: [`Trie`], patterns bound to targets, matched in time that follows the
//!   subject's token count rather than the number of bindings.
//!
//! The rules (NATS's): tokens are separated by `.` and are never empty; in a pattern
//! a token that is exactly `*` matches exactly one token, and a last token that is
//! exactly `>` matches one or more tokens, so `a.>` matches `a.b` and `a.b.c` but not
//! `a`. Matching is exact and case-sensitive otherwise.
//!
//! ```
//! use beuss::route::{Trie, check_pattern};
//!
//! let mut trie = Trie::new();
//! for (pattern, queue) in [("orders.*.created", "mail"), ("orders.>", "audit")] {
//!     assert!(check_pattern(pattern).is_ok());
//!     trie.insert(pattern, queue);
//! }
//! let mut out = Vec::new();
//! trie.matches_into("orders.eu.created", &mut out);
//! assert_eq!(out, ["audit", "mail"]);
//! trie.matches_into("orders", &mut out);
//! assert!(out.is_empty());
//! ```

pub mod subject;
pub mod trie;

pub use subject::{MAX_SUBJECT_LEN, SubjectError, check_pattern, check_subject, matches};
pub use trie::{MAX_TOKENS, Trie};

#[cfg(test)]
mod tests;
