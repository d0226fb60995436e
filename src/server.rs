//! Event loop (in progress).
