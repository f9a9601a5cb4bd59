//! Messages of the load engine: to the worker pool and its workers, and from the workers to
//! whoever collects their windows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use actix::prelude::*;

use crate::allowlist::Allowlist;
use crate::engine::share::ShareTable;
use crate::stats::Window;
use crate::task::load::LoadTask;

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
    /// On a cluster node: which of the task's arrivals are this node's, and its lease.
    pub share: Option<Arc<NodeShare>>,
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
    pub share: Option<Arc<NodeShare>>,
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

/// A node's part of a cluster task, shared by its workers: the arrivals it owns (the table
/// changes when a node is lost), the lease without which it sends nothing, and its counters.
pub struct NodeShare {
    pub node_id: String,
    pub slot: u16,
    table: RwLock<Arc<ShareTable>>,
    pub lease: Arc<Lease>,
    /// Held after the node's session was renewed, until the orchestrator confirms the task.
    pub held: AtomicBool,
    /// Requests this node started for the task.
    pub sent: AtomicU64,
    /// Arrivals this node owned but skipped because its lease had run out.
    pub paused: AtomicU64,
}

impl NodeShare {
    pub fn new(node_id: String, slot: u16, table: ShareTable, lease: Arc<Lease>) -> NodeShare {
        NodeShare {
            node_id,
            slot,
            table: RwLock::new(Arc::new(table)),
            lease,
            held: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            paused: AtomicU64::new(0),
        }
    }

    pub fn table(&self) -> Arc<ShareTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_table(&self, table: ShareTable) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    /// Whether the node may send now: its lease is valid and the task is not held.
    pub fn may_send(&self) -> bool {
        self.lease.is_valid() && !self.held.load(Ordering::Relaxed)
    }

    /// Whether arrival `n`, planned `offset` after the start, is this node's.
    pub fn owns(&self, n: u64, offset: std::time::Duration) -> bool {
        self.table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .owner(n, offset)
            == self.slot
    }
}

/// A node's right to send load: renewed by every frame from the orchestrator, it runs out
/// after `cluster.lease_timeout` of silence, and the node's load pauses until it is renewed.
#[derive(Debug)]
pub struct Lease {
    base: Instant,
    /// Milliseconds after `base` until which load may be sent.
    until_ms: AtomicU64,
}

impl Lease {
    /// A lease that has run out.
    pub fn expired() -> Lease {
        Lease {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
        }
    }

    /// Valid for `length` from now.
    pub fn renew(&self, length: std::time::Duration) {
        let until = (Instant::now() + length).saturating_duration_since(self.base);
        self.until_ms
            .fetch_max(until.as_millis() as u64, Ordering::Relaxed);
    }

    /// Ends the lease at once (the node was fenced or lost its session).
    pub fn revoke(&self) {
        self.until_ms.store(0, Ordering::Relaxed);
    }

    pub fn is_valid(&self) -> bool {
        let now = Instant::now()
            .saturating_duration_since(self.base)
            .as_millis() as u64;
        now < self.until_ms.load(Ordering::Relaxed)
    }
}

/// A node's part of a task's `concurrent_users`: all of them standalone; in a cluster, the
/// users the share table's first period deals to the node (at least one).
pub fn node_users(users: u32, share: Option<&NodeShare>) -> u32 {
    match share {
        None => users,
        Some(s) => {
            let table = s.table();
            let owned = (0..u64::from(users))
                .filter(|&u| table.owner(u, std::time::Duration::ZERO) == s.slot)
                .count() as u32;
            owned.max(1)
        }
    }
}

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
