//! The actors, one per file. Decisions live in plain functions elsewhere; these receive, decide
//! by calling them, send and record.

pub mod event_bus;
pub mod load_worker;
pub mod node_agent;
pub mod node_proxy;
pub mod orchestrator;
pub mod store;
pub mod supervisor;
pub mod worker_pool;
