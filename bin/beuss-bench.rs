//! `beuss-bench` (being written).

fn main() {}
