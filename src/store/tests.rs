//! Unit tests for the store.
