//! The actors, one per file. Decisions live in plain functions elsewhere; these receive, decide
//! by calling them, send and record.

pub mod load_worker;
pub mod run_collector;
pub mod worker_pool;
