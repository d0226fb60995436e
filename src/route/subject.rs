//! Subjects and patterns: what makes one valid, and the reference matcher.
//!
//! A subject is tokens separated by `.`, each non-empty and free of spaces and ASCII
//! control characters. A pattern may also have tokens that are exactly `*` (one
//! token) or `>` (one or more trailing tokens; last token only). `*` or `>` inside a
//! longer token is invalid everywhere. These are NATS's rules; `protocol.md` is the
//! contract.

use std::fmt;

/// Longest subject or pattern in bytes: a `name` on the wire has a one-byte length.
pub const MAX_SUBJECT_LEN: usize = 255;

/// Why a subject or pattern is invalid. `Display` gives the short text for an
/// `ERROR BAD_SUBJECT` frame; byte offsets count from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectError {
    /// The empty string.
    Empty,
    /// Longer than [`MAX_SUBJECT_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A token with nothing in it: a leading or trailing `.`, or `..`.
    EmptyToken {
        /// Where the empty token starts.
        at: usize,
    },
    /// A space.
    Space {
        /// Where it is.
        at: usize,
    },
    /// An ASCII control character (0x00-0x1F, 0x7F).
    Control {
        /// The character.
        byte: u8,
        /// Where it is.
        at: usize,
    },
    /// A `*` or `>` token in a subject that is published to (PUB, REQ).
    WildcardInSubject {
        /// Where the wildcard token starts.
        at: usize,
    },
    /// A `>` token that is not the last one.
    FullWildcardNotLast {
        /// Where the `>` is.
        at: usize,
    },
    /// A `*` or `>` inside a longer token (`a*`, `>b`).
    WildcardInsideToken {
        /// The wildcard character found.
        wildcard: char,
        /// Where it is.
        at: usize,
    },
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectError::Empty => f.write_str("empty"),
            SubjectError::TooLong { len } => {
                write!(f, "{len} bytes, longer than {MAX_SUBJECT_LEN}")
            }
            SubjectError::EmptyToken { at } => write!(f, "empty token at byte {at}"),
            SubjectError::Space { at } => write!(f, "space at byte {at}"),
            SubjectError::Control { byte, at } => {
                write!(f, "control character 0x{byte:02x} at byte {at}")
            }
            SubjectError::WildcardInSubject { at } => {
                write!(f, "wildcard in a publish subject at byte {at}")
            }
            SubjectError::FullWildcardNotLast { at } => {
                write!(f, "'>' must be the last token (byte {at})")
            }
            SubjectError::WildcardInsideToken { wildcard, at } => {
                write!(f, "'{wildcard}' inside a token at byte {at}")
            }
        }
    }
}

impl std::error::Error for SubjectError {}

/// Checks a subject that is published to (PUB, REQ): wildcard tokens are refused.
///
/// # Errors
/// The first problem from the left, as a [`SubjectError`].
pub fn check_subject(s: &str) -> Result<(), SubjectError> {
    check(s, false)
}

/// Checks a pattern (BIND, SUB): like [`check_subject`], but a token may be exactly
/// `*`, and the last token may be exactly `>`.
///
/// # Errors
/// The first problem from the left, as a [`SubjectError`].
pub fn check_pattern(s: &str) -> Result<(), SubjectError> {
    check(s, true)
}

fn check(s: &str, pattern: bool) -> Result<(), SubjectError> {
    if s.is_empty() {
        return Err(SubjectError::Empty);
    }
    if s.len() > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong { len: s.len() });
    }
    let mut start = 0;
    for token in s.split('.') {
        let end = start + token.len();
        check_token(token, start, end == s.len(), pattern)?;
        start = end + 1;
    }
    Ok(())
}

/// Checks one token that starts at byte `at`; `last` says whether it ends the string.
fn check_token(token: &str, at: usize, last: bool, pattern: bool) -> Result<(), SubjectError> {
    if token.is_empty() {
        return Err(SubjectError::EmptyToken { at });
    }
    for (i, b) in token.bytes().enumerate() {
        if b == b' ' {
            return Err(SubjectError::Space { at: at + i });
        }
        if b < b' ' || b == 0x7F {
            return Err(SubjectError::Control {
                byte: b,
                at: at + i,
            });
        }
        if (b == b'*' || b == b'>') && token.len() > 1 {
            return Err(SubjectError::WildcardInsideToken {
                wildcard: char::from(b),
                at: at + i,
            });
        }
    }
    match token {
        "*" | ">" if !pattern => Err(SubjectError::WildcardInSubject { at }),
        ">" if !last => Err(SubjectError::FullWildcardNotLast { at }),
        _ => Ok(()),
    }
}

/// Whether `pattern` matches `subject`: the definition the trie is tested against,
/// written to be obviously right rather than fast (it walks both strings once).
///
/// Both are taken as valid (see [`check_pattern`], [`check_subject`]); on other
/// input it still answers, token by token, and never panics: a `>` that is not the
/// last token is then an ordinary literal, as it is in the trie.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            // `>` takes this token and all after it: at least one.
            (Some(">"), Some(_)) if p.clone().next().is_none() => return true,
            (Some(pt), Some(st)) if pt == "*" || pt == st => {}
            _ => return false,
        }
    }
}
