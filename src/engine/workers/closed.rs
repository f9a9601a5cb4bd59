//! The closed model on one shard: its users loop request (or flow iteration), then think.
//! Live changes (the share table's `adjustments`) set the cluster's users, pause, and move
//! the end: the shard looks at the table now and then, starts the users it gains, and a user
//! past the shard's count rests until it is counted again.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::spawn_local;

use super::{LEASE_POLL, LocalStop, Run, ShardSpec, sleep_or_stop};
use crate::engine::schedule::adjust::{Adjustment, Change, paused_at, stretched, users_at};
use crate::engine::share::shard_part;

/// How often the shard looks at the share table for live changes.
const CHANGE_POLL: Duration = Duration::from_millis(50);

/// What the shard's users read of the live changes.
struct Live {
    start: Instant,
    /// The task's users over the cluster at its start.
    initial: u32,
    adjustments: RefCell<Vec<Adjustment>>,
    /// This shard's users now.
    users: Cell<usize>,
    end: Cell<Instant>,
    version: Cell<u64>,
    /// The cluster's users and the table version the shard's count was last dealt from.
    dealt: Cell<Option<(u32, u64)>>,
}

impl Live {
    fn paused(&self, now: Instant) -> bool {
        paused_at(
            &self.adjustments.borrow(),
            now.saturating_duration_since(self.start),
        )
    }

    /// Reads the share table again if it changed (the changes, the end), and the shard's
    /// users now: the task's split at the start until a change of the users holds.
    fn refresh(&self, spec: &ShardSpec, initial_shard_users: usize) {
        let Some(share) = spec.share.as_deref() else {
            return;
        };
        let version = share.version();
        if version != self.version.get() {
            self.version.set(version);
            let table = share.table();
            let length = stretched(spec.task.profile.duration, &table.adjustments);
            self.end.set(self.start + length);
            *self.adjustments.borrow_mut() = table.adjustments.clone();
        }
        let now = Instant::now().saturating_duration_since(self.start);
        let adjustments = self.adjustments.borrow();
        let changed = adjustments.iter().any(|a| {
            matches!(a.change, Change::ConcurrentUsers(_))
                && Duration::from_millis(a.from_ms) <= now
        });
        let users = if changed {
            let total = users_at(&adjustments, now, self.initial);
            // Dealt again only when the count or the table moved.
            if self.dealt.get() == Some((total, version)) {
                return;
            }
            self.dealt.set(Some((total, version)));
            shard_part(total, share, spec.shard, spec.shards)
        } else {
            initial_shard_users
        };
        self.users.set(users);
    }
}

pub(super) async fn run_closed(spec: &ShardSpec, users: usize, run: &Run) {
    let stop = LocalStop::watch(spec.stop.clone());
    let live = Rc::new(Live {
        start: spec.start,
        initial: spec.task.concurrent_users,
        adjustments: RefCell::new(Vec::new()),
        users: Cell::new(users),
        end: Cell::new(spec.start + spec.task.profile.duration),
        version: Cell::new(u64::MAX),
        dealt: Cell::new(None),
    });
    live.refresh(spec, users);
    let mut loops: Vec<_> = (0..live.users.get().max(users))
        .map(|u| {
            spawn_local(user(
                spec.clone(),
                run.clone(),
                live.clone(),
                stop.clone(),
                u,
                users,
            ))
        })
        .collect();
    // Until the end: start the users a live change adds.
    while Instant::now() < live.end.get() && !stop.is_set() {
        let next = (Instant::now() + CHANGE_POLL).min(live.end.get());
        if !sleep_or_stop(next, &stop).await {
            break;
        }
        live.refresh(spec, users);
        for u in loops.len()..live.users.get() {
            let task = user(
                spec.clone(),
                run.clone(),
                live.clone(),
                stop.clone(),
                u,
                users,
            );
            loops.push(spawn_local(task));
        }
    }
    for user in loops {
        let _ = user.await;
    }
}

/// User `u` of the shard (`initial` users at the start): its turns until the end.
async fn user(
    spec: ShardSpec,
    run: Run,
    live: Rc<Live>,
    stop: LocalStop,
    u: usize,
    initial: usize,
) {
    let think = spec.task.think_time;
    let stride = (initial.max(1) * spec.shards) as u64;
    let mut n = (u * spec.shards + spec.shard) as u64;
    // A flow deals rows by turns, interleaved with the other nodes'.
    let deal = spec
        .share
        .as_ref()
        .map_or((0, 1), |s| (s.slot, s.table().nodes.len()));
    if !sleep_or_stop(spec.start, &stop).await {
        return;
    }
    let deadline = || live.end.get() + spec.drain;
    let mut user = match &run.flow {
        Some((flow, node_flow)) => Some(flow.user(n, node_flow, deadline()).await),
        None => None,
    };
    let mut iteration = 0;
    while Instant::now() < live.end.get() && !stop.is_set() {
        // Resting: past the shard's users, or paused, or (below) without a lease.
        let resting = u >= live.users.get() || live.paused(Instant::now());
        let no_lease = spec.share.as_ref().is_some_and(|s| !s.may_send());
        if resting || no_lease {
            if let (true, Some(share)) = (no_lease && !resting, &spec.share) {
                share.paused.fetch_add(1, Ordering::Relaxed);
            }
            let again = (Instant::now() + LEASE_POLL).min(live.end.get());
            if !sleep_or_stop(again, &stop).await {
                break;
            }
            continue;
        }
        if let Some(share) = &spec.share {
            share.sent.fetch_add(1, Ordering::Relaxed);
        }
        if !run
            .closed_turn(&mut user, &mut iteration, n, deadline(), deal)
            .await
        {
            break;
        }
        n += stride;
        if !think.is_zero()
            && !sleep_or_stop((Instant::now() + think).min(live.end.get()), &stop).await
        {
            break;
        }
    }
}
