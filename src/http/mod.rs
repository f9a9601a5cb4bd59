//! HTTP surfaces: for now the `mcpt target` server.

pub mod error;
pub mod target;
