//! The load and performance tests: the request engine at a planned rate or with a number of
//! users, judged by thresholds.

pub mod exec;
pub mod mcp;
pub mod report;
