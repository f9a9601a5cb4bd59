//! The request engine: rate schedules and arrivals, the share of a plan each node and shard
//! runs, the guarded HTTP sender, and the worker loops that send and record.

pub mod flow;
pub mod h2;
pub mod http;
pub mod pace;
pub mod schedule;
pub mod share;
pub mod target;
pub mod workers;
