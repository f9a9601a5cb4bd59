//! The actors, one per file. Decisions live in plain functions elsewhere; these receive, decide
//! by calling them, send and record.

pub mod agent_relay;
pub mod discovery;
pub mod distributor;
pub mod event_bus;
pub mod health_monitor;
pub mod load_worker;
pub mod node_agent;
pub mod node_monitor;
pub mod node_proxy;
pub mod orchestrator;
pub mod recorder;
pub mod registry;
pub mod resource_allocator;
pub mod store;
pub mod supervisor;
pub mod worker_pool;
