//! `WorkerPool`: owns the load workers, one `LoadWorker` per arbiter thread, and splits each
//! task into the shards its `UserSplit` says. Takes: `StartTask`.

use actix::prelude::*;

use crate::actors::load_worker::LoadWorker;
use crate::engine::workers::ShardSpec;
use crate::messages::load::{RunShard, StartTask};

pub struct WorkerPool {
    workers: Vec<(Arbiter, Addr<LoadWorker>)>,
}

impl WorkerPool {
    /// Starts `n` workers (at least one), each on a new arbiter.
    pub fn new(n: usize) -> WorkerPool {
        let workers = (0..n.max(1))
            .map(|_| {
                let arbiter = Arbiter::new();
                let addr =
                    LoadWorker::start_in_arbiter(&arbiter.handle(), |_| LoadWorker::default());
                (arbiter, addr)
            })
            .collect();
        WorkerPool { workers }
    }
}

impl Actor for WorkerPool {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for (arbiter, _) in &self.workers {
            arbiter.stop();
        }
    }
}

impl Handler<StartTask> for WorkerPool {
    type Result = ();

    fn handle(&mut self, msg: StartTask, _ctx: &mut Context<Self>) {
        let shards = msg.split.shards;
        for (shard, (_, worker)) in self.workers.iter().take(shards).enumerate() {
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
                sink: msg.sink.clone(),
                stop: msg.stop.clone(),
                share: msg.share.clone(),
            };
            // One message per shard per task: not a hot path.
            worker.do_send(RunShard(spec));
        }
    }
}
