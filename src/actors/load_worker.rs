//! `LoadWorker`: generates load on its own arbiter (one per core), apart from the control
//! actors, so a saturated worker never delays them. Owns nothing between tasks; each
//! [`RunShard`] spawns the shard's loops on this arbiter. Takes: `RunShard`.

use actix::prelude::*;

use crate::engine::workers::run_shard;
use crate::messages::load::RunShard;

#[derive(Default)]
pub struct LoadWorker {
    /// Shards started since the worker began, for logs.
    started: u64,
}

impl Actor for LoadWorker {
    type Context = Context<Self>;
}

impl Handler<RunShard> for LoadWorker {
    type Result = ();

    fn handle(&mut self, RunShard(spec): RunShard, _ctx: &mut Context<Self>) {
        self.started += 1;
        tracing::debug!(
            task = spec.task_id,
            shard = spec.shard,
            shards = spec.shards,
            started = self.started,
            "shard starting"
        );
        actix_rt::spawn(run_shard(spec));
    }
}
