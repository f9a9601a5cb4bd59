//! Load tasks (`load_test`, `performance_test`): a rate shape or a number of users sent to
//! weighted targets, merged second by second, judged by thresholds.

pub mod exec;
pub mod mcp;
pub mod node;
pub mod report;
pub mod spec;

pub use crate::engine::schedule::Model;
pub use spec::{LoadTask, OnNodeFailure, read_load_task};

#[cfg(test)]
mod tests;
