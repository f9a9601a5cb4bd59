//! Messages of the load engine: to the worker pool and its workers, and from the workers to
//! whoever collects their windows.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use crate::allowlist::Allowlist;
use crate::load::plan::LoadTask;
use crate::stats::report::Report;
use crate::stats::{Snapshot, Window};

/// Everything a worker needs to run its share of a task.
#[derive(Clone)]
pub struct ShardSpec {
    pub task_id: usize,
    pub task: Arc<LoadTask>,
    /// This shard's index and the number of shards: the shard takes arrivals
    /// `shard, shard + shards, ...` (open model) or its share of the users (closed).
    pub shard: usize,
    pub shards: usize,
    /// The common start of every shard of the task.
    pub start: Instant,
    /// How long in-flight requests may finish after the planned end.
    pub drain: std::time::Duration,
    pub allowlist: Allowlist,
    /// The least number of pooled connections per worker.
    pub pool_size: usize,
    pub sink: Recipient<WindowReport>,
    /// Turns true when the run is interrupted: start no more requests.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// To a `LoadWorker`: run one shard of a task (the reply comes when it starts).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunShard(pub ShardSpec);

/// To a `WorkerPool`: run a task across the workers; answers with the number of shards.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StartTask {
    pub task_id: usize,
    pub task: Arc<LoadTask>,
    pub start: Instant,
    pub drain: std::time::Duration,
    pub allowlist: Allowlist,
    pub pool_size: usize,
    pub sink: Recipient<WindowReport>,
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// From a worker: one second of one shard; `last` on the shard's final window.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WindowReport {
    pub task_id: usize,
    pub shard: usize,
    pub window: Window,
    pub last: bool,
}

/// To a `RunCollector`: the live figures of every task, in plan order.
#[derive(Message)]
#[rtype(result = "Vec<Snapshot>")]
pub struct GetProgress;

/// To a `RunCollector`: the report of everything collected so far.
#[derive(Message)]
#[rtype(result = "Report")]
pub struct GetReport;

/// How many shards a task gets: one per worker, but never more than its users (every shard
/// needs at least one user or one slot in flight).
pub fn shard_count(workers: usize, users: u32) -> usize {
    workers.min(users as usize).max(1)
}

/// Shard `shard`'s part of `total`, spread as evenly as possible.
pub fn share(total: u32, shard: usize, shards: usize) -> u32 {
    let shards = shards as u32;
    total / shards + u32::from((shard as u32) < total % shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for total in 1..50u32 {
            for workers in 1..9 {
                let shards = shard_count(workers, total);
                let parts: Vec<u32> = (0..shards).map(|s| share(total, s, shards)).collect();
                assert_eq!(parts.iter().sum::<u32>(), total);
                assert!(parts.iter().all(|&p| p >= 1));
            }
        }
    }
}
