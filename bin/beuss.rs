//! `beuss` (being written).

fn main() {}
