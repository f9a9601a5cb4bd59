//! `LoadWorker`: one load-generating thread (one per core), apart from the control actors, so
//! a saturated worker never delays them. The thread runs its own tokio current-thread runtime
//! with a `LocalSet` (the request loops hold `Rc` state, and the sender spawns connection
//! drivers with `tokio::task::spawn_local`); it owns nothing between tasks. Each [`RunShard`]
//! handed to it starts the shard's loops there.
//!
//! Not an actix arbiter: nothing here is an actor, and a plain runtime is what the request
//! loops and the sender need (what it costs: benches/RESULTS.md, issue 15).

use std::io;

use tokio::sync::mpsc;

use crate::engine::workers::run_shard;
use crate::messages::load::RunShard;

/// A handle on the thread: dropping it ends the thread, cancelling any shard still running
/// there (as stopping an arbiter did). Not joined: a blocking DNS lookup in flight there must
/// not hold up the control actor that drops it.
pub struct LoadWorker {
    shards: mpsc::UnboundedSender<RunShard>,
}

impl LoadWorker {
    /// Starts worker thread `index`.
    pub fn spawn(index: usize) -> io::Result<LoadWorker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (shards, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("mcpt-load-{index}"))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                runtime.block_on(local.run_until(serve(rx)));
            })?;
        Ok(LoadWorker { shards })
    }

    /// Starts a shard on this worker's thread. One message per shard per task: not a hot path.
    pub fn run(&self, shard: RunShard) {
        if self.shards.send(shard).is_err() {
            tracing::error!("load worker thread gone; shard not started");
        }
    }
}

/// The thread's main loop: starts each shard it is given, until the pool drops its sender.
async fn serve(mut rx: mpsc::UnboundedReceiver<RunShard>) {
    let mut started = 0u64;
    // Holds the thread briefly while responses trickle in (engine::pace).
    tokio::task::spawn_local(crate::engine::pace::run());
    while let Some(RunShard(spec)) = rx.recv().await {
        started += 1;
        tracing::debug!(
            task = spec.task_id,
            shard = spec.shard,
            shards = spec.shards,
            started,
            "shard starting"
        );
        tokio::task::spawn_local(run_shard(spec));
    }
}
