//! Messages of the load engine's actors: to the worker pool and its workers. What a worker
//! runs and reports ([`ShardSpec`], [`WindowReport`]) is the engine's.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use crate::allowlist::Allowlist;
use crate::engine::share::{NodeShare, UserSplit};
use crate::engine::target::Traffic;
use crate::engine::workers::{ShardSpec, WindowReport};

/// To a `LoadWorker`: run one shard of a task.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunShard(pub ShardSpec);

/// To a `WorkerPool`: run a task across the workers, `split.shards` of them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartTask {
    pub task_id: usize,
    pub task: Arc<Traffic>,
    pub split: UserSplit,
    pub start: Instant,
    pub drain: std::time::Duration,
    pub allowlist: Allowlist,
    pub pool_size: usize,
    pub sink: Recipient<WindowReport>,
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub share: Option<Arc<NodeShare>>,
}
