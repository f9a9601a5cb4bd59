//! The load engine: plans and their validation, rate schedules, the HTTP sender, the worker
//! loops, and the standalone runner.

pub mod engine;
pub mod http;
pub mod plan;
pub mod runner;
pub mod schedule;
pub mod share;
pub mod stress;
