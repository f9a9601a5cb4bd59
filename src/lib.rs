//! mcp-testing: distributed load, stress, performance and security testing.
//!
//! The folder tree is the architecture: `load/` is the load engine (plans, rate schedules,
//! the HTTP sender, worker loops), `stats/` the histogram windows and reports, `actors/` the
//! actors that run them, `messages/` what the actors say to each other, `http/` the HTTP
//! servers, `settings.rs` the configuration, `mcp/` the MCP server.

pub mod actors;
pub mod allowlist;
pub mod app;
pub mod cli;
pub mod discovery;
pub mod execution;
pub mod health;
pub mod http;
pub mod hub;
pub mod load;
pub mod mcp;
pub mod messages;
pub mod metrics;
pub mod placement;
pub mod resources;
pub mod security;
pub mod settings;
pub mod stats;
pub mod store;
pub mod validate;
