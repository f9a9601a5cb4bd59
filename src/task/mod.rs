//! The task kinds, one folder each: what a kind reads from a plan, runs on a node, merges on
//! the orchestrator and reports.

pub mod load;
pub mod report;
pub mod security;
pub mod stress;
pub mod work;
