//! Unit tests for the codec.
