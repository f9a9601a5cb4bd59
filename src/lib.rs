//! mcp-testing: distributed load, stress, performance and security testing.
//!
//! The folder tree is the architecture (DESIGN §9): `plan/` reads and validates the execution
//! document, `task/` holds one folder per task kind, `engine/` is the request engine (rate
//! schedules, shares, the HTTP sender, worker loops), `stats/` the windows and reports,
//! `actors/` the actors that run them, `messages/` what the actors say to each other, `hub/`
//! the cluster link, `http/` the HTTP servers, `mcp/` the MCP server, `run.rs` the
//! standalone `mcpt run`, and `embed/` the library: the handles re-exported here
//! ([`Orchestrator`], [`LoadGenerator`], [`Discovery`], [`Distributor`], [`ResourcePool`],
//! [`NodeMonitor`]) that a program embedding mcp-testing uses.

pub mod actors;
pub mod allowlist;
pub mod app;
pub mod cli;
pub mod clock;
pub mod discovery;
pub mod embed;
pub mod engine;
pub mod execution;
pub mod exposition;
pub mod health;
pub mod hex;
pub mod http;
pub mod hub;
pub mod mcp;
pub mod messages;
pub mod metrics;
pub mod placement;
pub mod plan;
pub mod resources;
pub mod run;
pub mod settings;
pub mod stats;
pub mod store;
pub mod task;
pub mod validate;

pub use embed::{
    Discovery, Distributor, LoadGenerator, NodeMonitor, Orchestrator, OrchestratorClient,
    ResourcePool,
};
