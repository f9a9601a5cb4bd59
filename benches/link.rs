//! Placeholder replaced by the link benchmark.
fn main() {}
