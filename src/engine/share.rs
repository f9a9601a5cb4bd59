//! How a task's arrivals are split over the nodes of a cluster, and re-split when a node is
//! lost. Plain data and functions, property-tested; the orchestrator decides, the nodes read.
//!
//! A task's arrival sequence is global (same rate plan, same seed) and every node runs the
//! arrivals it owns, computing only those (`RatePlan::own_arrivals`). Ownership is a
//! [`ShareTable`]: a list of periods, each from an offset of the task's start, each with a
//! list of owners indexed by arrival number modulo its length. A uniform arrival belongs to
//! the owner its number maps to in the period its planned time falls in; a Poisson arrival,
//! in the period in force at the start of its block (`schedule::POISSON_BLOCK`), since nodes
//! draw their Poisson times apart and agree only on each block's count. A re-split adds a
//! period that starts a little in the future, so every node learns of it before it matters;
//! the past never changes.
//!
//! Splitting arrival numbers (not rates) keeps the sum exact: every planned arrival has
//! exactly one owner, so the nodes' planned counts add up to the task's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::schedule::adjust::Adjustment;

/// The largest owner list a re-split may build; past it, owners are re-dealt from scratch.
const MAX_MODULUS: usize = 720;

/// Who owns which arrivals of one task, over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShareTable {
    /// The nodes taking part, by slot; `owners` hold slots.
    pub nodes: Vec<String>,
    /// Sorted by `from_ms`; the first starts at 0.
    pub periods: Vec<SharePeriod>,
    /// The live changes to the task's plan, in the order they were made (each from a future
    /// instant): the table says who sends which arrivals of which plan.
    #[serde(default)]
    pub adjustments: Vec<Adjustment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SharePeriod {
    /// Milliseconds after the task's start.
    pub from_ms: u64,
    /// Arrival `n` belongs to slot `owners[n % owners.len()]`.
    pub owners: Vec<u16>,
}

impl ShareTable {
    /// Equal shares: arrival `n` goes to node `n % nodes.len()`.
    pub fn equal(nodes: Vec<String>) -> ShareTable {
        let owners = (0..nodes.len() as u16).collect();
        ShareTable {
            nodes,
            periods: vec![SharePeriod { from_ms: 0, owners }],
            adjustments: Vec::new(),
        }
    }

    /// The slot of `node`, if it takes part.
    pub fn slot(&self, node: &str) -> Option<u16> {
        self.nodes.iter().position(|n| n == node).map(|s| s as u16)
    }

    /// The period in force `offset` after the task's start.
    pub fn period_at(&self, offset: Duration) -> &SharePeriod {
        let ms = offset.as_millis() as u64;
        let i = self.periods.partition_point(|p| p.from_ms <= ms);
        &self.periods[i.saturating_sub(1)]
    }

    /// The slot owning arrival `n`, planned `offset` after the task's start.
    pub fn owner(&self, n: u64, offset: Duration) -> u16 {
        let p = self.period_at(offset);
        p.owners[(n % p.owners.len() as u64) as usize]
    }

    /// The slots that own anything from `from_ms` on.
    pub fn active_from(&self, from_ms: u64) -> Vec<u16> {
        let mut slots: Vec<u16> = self
            .periods
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                self.periods
                    .get(i + 1)
                    .is_none_or(|next| next.from_ms > from_ms)
            })
            .flat_map(|(_, p)| p.owners.iter().copied())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// From `from_ms` on, whatever `lost` owned goes to the other owners, dealt evenly: each
    /// residue of the lost slot is split further by the quotient, so the survivors' shares stay
    /// equal. Returns `false` (and changes nothing) when no other owner is left.
    pub fn without(&mut self, lost: u16, from_ms: u64) -> bool {
        let current = self
            .periods
            .last()
            .expect("a share table has at least one period")
            .owners
            .clone();
        let mut survivors: Vec<u16> = current.iter().copied().filter(|&s| s != lost).collect();
        survivors.sort_unstable();
        survivors.dedup();
        if survivors.is_empty() {
            return false;
        }
        let owners = if current.len() * survivors.len() > MAX_MODULUS {
            survivors.clone()
        } else {
            let m = current.len();
            (0..m * survivors.len())
                .map(|r| {
                    let old = current[r % m];
                    if old == lost {
                        survivors[(r / m) % survivors.len()]
                    } else {
                        old
                    }
                })
                .collect()
        };
        // A period starting at the same time replaces the last one.
        if self.periods.last().is_some_and(|p| p.from_ms >= from_ms) {
            let last = self.periods.last_mut().expect("checked above");
            last.owners = owners;
        } else {
            self.periods.push(SharePeriod { from_ms, owners });
        }
        true
    }

    /// Of the arrival offsets in `arrivals` (numbered from 0), how many each slot owns (as
    /// uniform arrivals; see the module's description for Poisson ones).
    pub fn counts(&self, arrivals: impl Iterator<Item = Duration>) -> Vec<u64> {
        let mut counts = vec![0u64; self.nodes.len()];
        for (n, offset) in arrivals.enumerate() {
            counts[self.owner(n as u64, offset) as usize] += 1;
        }
        counts
    }
}

/// A node's part of a cluster task, shared by its workers: the arrivals it owns (the table
/// changes when a node is lost), the lease without which it sends nothing, and its counters.
pub struct NodeShare {
    pub node_id: String,
    pub slot: u16,
    table: RwLock<Arc<ShareTable>>,
    /// Bumped on every new table, so a reader can tell cheaply that it changed.
    version: AtomicU64,
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
            version: AtomicU64::new(0),
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
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Changes with every [`NodeShare::set_table`]: read it before the table, and a table
    /// read after it is at least that new.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Whether the node may send now: its lease is valid and the task is not held.
    pub fn may_send(&self) -> bool {
        self.lease.is_valid() && !self.held.load(Ordering::Relaxed)
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
    pub fn renew(&self, length: Duration) {
        let until = (Instant::now() + length).saturating_duration_since(self.base);
        self.until_ms
            .fetch_max(until.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn is_valid(&self) -> bool {
        let now = Instant::now()
            .saturating_duration_since(self.base)
            .as_millis() as u64;
        now < self.until_ms.load(Ordering::Relaxed)
    }
}

/// How a task's `concurrent_users` split on one node: the node's part and the number of its
/// shards. The only place that counts users per node and per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSplit {
    /// The node's users: all of them standalone; in a cluster, those the share table's first
    /// period deals to the node (at least one).
    pub users: u32,
    /// One shard per worker, never more than the node's users or its connections.
    pub shards: usize,
    /// The task's `connections`, the node's part of them (dealt like the users, at least one);
    /// `None` lets the engine choose.
    pub connections: Option<u32>,
}

impl UserSplit {
    pub fn new(
        users: u32,
        connections: Option<u32>,
        share: Option<&NodeShare>,
        workers: usize,
    ) -> UserSplit {
        let users = node_users(users, share);
        let connections = connections.map(|c| node_users(c, share));
        UserSplit {
            users,
            shards: shard_count(workers, connections.map_or(users, |c| c.min(users))),
            connections,
        }
    }

    /// The sockets shard `shard` may open: its part of the node's `connections`, at least one
    /// (there are never more shards than connections).
    pub fn shard_connections(&self, shard: usize) -> Option<usize> {
        self.connections
            .map(|c| share(c, shard, self.shards).max(1) as usize)
    }

    /// The users (closed model) or the in-flight cap (open model) of shard `shard`: its part
    /// of the node's, at least one.
    pub fn shard_users(&self, shard: usize) -> usize {
        share(self.users, shard, self.shards).max(1) as usize
    }
}

/// Shard `shard` of `shards`' part of `total` users over the cluster, as the node's share
/// table deals them (a live change of the users: a node or shard may get none).
pub fn shard_part(total: u32, node: &NodeShare, shard: usize, shards: usize) -> usize {
    let table = node.table();
    let owned = (0..u64::from(total))
        .filter(|&u| table.owner(u, Duration::ZERO) == node.slot)
        .count() as u32;
    share(owned, shard, shards) as usize
}

fn node_users(users: u32, share: Option<&NodeShare>) -> u32 {
    match share {
        None => users,
        Some(s) => {
            let table = s.table();
            let owned = (0..u64::from(users))
                .filter(|&u| table.owner(u, Duration::ZERO) == s.slot)
                .count() as u32;
            owned.max(1)
        }
    }
}

/// Every shard needs at least one user or one slot in flight.
fn shard_count(workers: usize, users: u32) -> usize {
    workers.min(users as usize).max(1)
}

/// Shard `shard`'s part of `total`, spread as evenly as possible.
fn share(total: u32, shard: usize, shards: usize) -> u32 {
    let shards = shards as u32;
    total / shards + u32::from((shard as u32) < total % shards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn offsets(count: u64, every_ms: u64) -> impl Iterator<Item = Duration> {
        (0..count).map(move |i| Duration::from_millis(i * every_ms))
    }

    #[test]
    fn equal_shares_are_round_robin() {
        let t = ShareTable::equal(nodes(3));
        let counts = t.counts(offsets(300, 10));
        assert_eq!(counts, [100, 100, 100]);
        assert_eq!(t.owner(4, Duration::ZERO), 1);
        assert_eq!(t.slot("n2"), Some(2));
    }

    #[test]
    fn a_lost_node_is_split_over_the_survivors_from_then_on() {
        let mut t = ShareTable::equal(nodes(3));
        assert!(t.without(1, 1000));
        // Before 1 s nothing changes.
        assert_eq!(t.owner(1, Duration::from_millis(999)), 1);
        // After it, slot 1 owns nothing and the others split its arrivals.
        let after: Vec<u16> = (0..600)
            .map(|n| t.owner(n, Duration::from_millis(1000)))
            .collect();
        assert!(!after.contains(&1));
        assert_eq!(after.iter().filter(|&&s| s == 0).count(), 300);
        assert_eq!(after.iter().filter(|&&s| s == 2).count(), 300);
        assert_eq!(t.active_from(1000), [0, 2]);
        assert_eq!(t.active_from(0), [0, 1, 2]);
        // The last one cannot go.
        assert!(t.without(0, 2000));
        assert!(!t.without(2, 3000));
    }

    proptest! {
        /// Every arrival has exactly one owner, the lost never own anything after they are
        /// lost, and the survivors' shares stay within one modulus of equal.
        #[test]
        fn re_splits_keep_every_arrival_owned_and_shares_even(
            n in 1usize..7,
            losses in proptest::collection::vec((0u16..7, 1u64..20), 0..5),
        ) {
            let mut t = ShareTable::equal(nodes(n));
            let mut lost = Vec::new();
            let mut at = 0u64;
            for (slot, gap) in losses {
                let slot = slot % n as u16;
                at += gap * 100;
                if t.without(slot, at) {
                    lost.push((slot, at));
                }
            }
            let end = at + 100;
            let counts = t.counts(offsets(end * 2, 1).map(|d| d / 2));
            prop_assert_eq!(counts.iter().sum::<u64>(), end * 2);
            for &(slot, from) in &lost {
                for k in 0..50u64 {
                    let n_arrival = from * 2 + k;
                    let off = Duration::from_millis(from) + Duration::from_micros(k * 500);
                    prop_assert_ne!(t.owner(n_arrival, off), slot);
                }
            }
            // Within the last period, owners' counts over a whole number of cycles are equal.
            let last = t.periods.last().unwrap();
            let m = last.owners.len();
            let active = t.active_from(last.from_ms);
            let mut per = vec![0usize; n];
            for r in 0..m { per[last.owners[r] as usize] += 1; }
            let shares: Vec<usize> = active.iter().map(|&s| per[s as usize]).collect();
            prop_assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1,
                "uneven shares {:?} of {:?}", shares, last.owners);
        }
    }

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
