//! `WorkerPool`: owns the load workers, one `LoadWorker` thread each, and splits each task
//! into the shards its `UserSplit` says. Takes: `StartTask`.

use actix::prelude::*;

use crate::actors::load_worker::LoadWorker;
use crate::engine::workers::ShardSpec;
use crate::messages::load::{RunShard, StartTask};

pub struct WorkerPool {
    workers: Vec<LoadWorker>,
}

impl WorkerPool {
    /// Starts `n` workers (at least one), each on a thread of its own.
    pub fn new(n: usize) -> WorkerPool {
        let workers = (0..n.max(1))
            .map(|i| LoadWorker::spawn(i).expect("cannot start a load worker thread"))
            .collect();
        WorkerPool { workers }
    }
}

impl Actor for WorkerPool {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // Dropping a worker ends its thread.
        self.workers.clear();
    }
}

impl Handler<StartTask> for WorkerPool {
    type Result = ();

    fn handle(&mut self, msg: StartTask, _ctx: &mut Context<Self>) {
        let shards = msg.split.shards;
        // One for the task's shards on this node: a flow's `before` runs once per node.
        let node_flow = msg.task.flow.as_ref().map(|_| std::sync::Arc::default());
        for (shard, worker) in self.workers.iter().take(shards).enumerate() {
            let spec = ShardSpec {
                task_id: msg.task_id,
                task: msg.task.clone(),
                shard,
                shards,
                users: msg.split.shard_users(shard),
                start: msg.start,
                drain: msg.drain,
                allowlist: msg.allowlist.clone(),
                pool_size: msg.pool_size,
                connections: msg.split.shard_connections(shard),
                sink: msg.sink.clone(),
                stop: msg.stop.clone(),
                share: msg.share.clone(),
                node_flow: node_flow.clone(),
            };
            worker.run(RunShard(spec));
        }
    }
}
