//! Blocking client (in progress).
