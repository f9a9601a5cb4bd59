//! An execution as plain data: its phase, its tasks' shares over the nodes, the merged
//! windows, and the views the REST API shows. The `Orchestrator` actor owns these and decides
//! with the functions here (and the pure ones of [`admission`]); nothing in this module sends
//! or stores.
//!
//! States: `pending → planning → running → (completed | completed_degraded | failed |
//! cancelled)`, read from the [`Phase`]. A node lost mid-run is handled by its task's
//! `on_node_failure`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::share::ShareTable;
use crate::stats::Window;
use crate::stats::watch::Stop;
use crate::task::TestPlan;
use crate::task::work::{Loss, Work};

mod adjust;
pub mod admission;
mod phase;
mod report;
mod stream;
mod task;
#[cfg(test)]
mod tests;
mod view;

pub use adjust::{AdjustError, AdjustRequest, AdjustmentView, change_instant};
pub use phase::{Halt, Phase, Reservation};
pub use stream::{TaskRef, TaskSecond, Timeline};
pub use task::ExecTask;
pub use view::{ExecutionView, TaskView};

// Kept while callers move to `crate::clock` (issue 14: the clock is no part of an execution).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Planning,
    Running,
    Completed,
    CompletedDegraded,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Planning => "planning",
            State::Running => "running",
            State::Completed => "completed",
            State::CompletedDegraded => "completed_degraded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "pending" => State::Pending,
            "planning" => State::Planning,
            "running" => State::Running,
            "completed" => State::Completed,
            "completed_degraded" => State::CompletedDegraded,
            "failed" => State::Failed,
            "cancelled" => State::Cancelled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Completed | State::CompletedDegraded | State::Failed | State::Cancelled
        )
    }
}

/// What is stored of a plan once it starts, so a restarted orchestrator can go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub start_unix_ms: u64,
    pub tasks: Vec<StoredTask>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTask {
    pub shares: ShareTable,
    /// Per slot: the node was lost.
    pub lost: Vec<bool>,
    /// Per slot: the epoch the node was fenced at (its windows of earlier epochs count).
    #[serde(default)]
    pub lost_epoch: Vec<u64>,
}

/// What happens to the execution after a node is lost.
#[derive(Debug, Clone, PartialEq)]
pub enum LossOutcome {
    /// The node took no part (or had finished): nothing to do.
    Unaffected,
    /// Go on; these tasks got new shares to send to their owners.
    Reshared(Vec<u32>),
    /// Go on without the node's share.
    Tolerated,
    /// The execution fails, with the reason.
    Fail(String),
}

/// An execution the orchestrator holds in memory.
pub struct Execution {
    pub id: String,
    pub name: String,
    pub request_json: String,
    pub plan: TestPlan,
    /// Where it is in its life (the state shown is read from it).
    pub phase: Phase,
    pub reason: Option<String>,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// Empty until planned.
    pub tasks: Vec<ExecTask>,
    /// A node was lost while it ran, or the store could not keep all of its windows.
    pub degraded: bool,
    /// What the store's trouble with this execution was, if it had any (set when it ends;
    /// part of the final reason).
    pub store_note: Option<String>,
    /// When its tasks were handed to the nodes (or restored after a restart).
    pub planned_at: Option<std::time::Instant>,
    pub report: Option<serde_json::Value>,
    /// Executions of a coordinated workload start together once all of them hold their
    /// resources: the group's id and size (fixed when submitted).
    pub barrier: Option<(String, usize)>,
    /// When its watchdog is due (ms since the Unix epoch): an earlier one armed before a
    /// live change made the run longer does nothing.
    pub watchdog_due_ms: u64,
}

impl Execution {
    /// A new execution from its stored record, not planned yet.
    pub fn pending(r: &crate::store::ExecutionRecord, plan: TestPlan) -> Execution {
        Execution {
            id: r.id.clone(),
            name: r.name.clone(),
            request_json: r.request_json.clone(),
            plan,
            phase: Phase::pending(),
            reason: r.reason.clone(),
            created_at_ms: r.created_at_ms,
            started_at_ms: r.started_at_ms,
            finished_at_ms: None,
            tasks: Vec::new(),
            degraded: false,
            store_note: None,
            planned_at: None,
            report: None,
            barrier: None,
            watchdog_due_ms: 0,
        }
    }

    /// The state shown for it.
    pub fn state(&self) -> State {
        self.phase.state()
    }

    /// Its nodes are stopping (cancelled, failing, or stopped by a watch).
    pub fn stopping(&self) -> bool {
        self.phase.is_stopping()
    }

    /// A pending execution's reservation changes (nothing changes in another phase).
    pub fn set_reservation(&mut self, to: Reservation) {
        if let Phase::Pending { reservation, .. } = &mut self.phase {
            *reservation = to;
        }
    }

    /// What a pending execution waits for before it is given nodes.
    pub fn set_waiting(&mut self, what: Option<String>) {
        if let Phase::Pending { waiting, .. } = &mut self.phase {
            *waiting = what;
        }
    }

    /// The longest task's planned duration, as live changes (pauses) moved it.
    pub fn duration(&self) -> Duration {
        self.plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.tasks
                    .get(i)
                    .and_then(|t| t.work.live_duration())
                    .unwrap_or_else(|| Work::duration(&t.kind))
            })
            .max()
            .unwrap_or_default()
    }

    /// How much longer than planned its tasks may take before the watchdog gives up on them
    /// (a scan's slow answers stretch it).
    pub fn slack(&self) -> Duration {
        self.plan
            .tasks
            .iter()
            .map(|t| Work::slack(&t.kind))
            .max()
            .unwrap_or_default()
    }

    /// Splits every task equally over `nodes` and starts it at `start_unix_ms`.
    pub fn plan_over(&mut self, nodes: &[String], start_unix_ms: u64) {
        self.started_at_ms = Some(start_unix_ms);
        self.planned_at = Some(std::time::Instant::now());
        self.tasks = self
            .plan
            .tasks
            .iter()
            .map(|t| ExecTask::new(t.name.clone(), &t.kind, nodes))
            .collect();
    }

    pub fn stored_plan(&self) -> StoredPlan {
        StoredPlan {
            start_unix_ms: self.started_at_ms.unwrap_or(0),
            tasks: self
                .tasks
                .iter()
                .map(|t| StoredTask {
                    shares: t.shares.clone(),
                    lost: t.lost.clone(),
                    lost_epoch: t.lost_epoch.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds the tasks of a stored plan (after a restart). Replay the stored windows with
    /// [`Execution::add_window`], then call [`Execution::settle_losses`].
    pub fn restore(&mut self, stored: StoredPlan) {
        // Every node of the execution: a scan task may use only the first few.
        let nodes = stored
            .tasks
            .iter()
            .max_by_key(|t| t.shares.nodes.len())
            .map(|t| t.shares.nodes.clone())
            .unwrap_or_default();
        self.plan_over(&nodes, stored.start_unix_ms);
        for (task, st) in self.tasks.iter_mut().zip(stored.tasks) {
            task.shares = st.shares;
            task.work.replan(&task.shares.adjustments, &mut task.acc);
            for (slot, lost) in st.lost.into_iter().enumerate() {
                task.lost[slot] = lost;
                task.lost_epoch[slot] = st.lost_epoch.get(slot).copied().unwrap_or(u64::MAX);
            }
        }
    }

    /// The seconds of every task merged since the last call, as live `stats` events, and the
    /// first stop a task's watches asked for on seeing them.
    pub fn new_seconds(&mut self) -> (Vec<TaskSecond>, Option<Stop>) {
        let mut out = Vec::new();
        let mut stop = None;
        for (task_id, task) in self.tasks.iter_mut().enumerate() {
            let timeline = task.acc.timeline();
            if task.streamed >= timeline.len() {
                continue;
            }
            let total = task.acc.total();
            let totals = (total.completed, total.errors.total);
            let requests = task.acc.request_rows(timeline.len() as f64);
            for point in &timeline[task.streamed..] {
                out.push(TaskSecond::of(
                    &self.id,
                    task_id as u32,
                    &task.name,
                    point,
                    totals,
                    task.shares.nodes.len(),
                    requests.clone(),
                ));
            }
            let last = timeline.len() as u64 - 1;
            task.streamed = timeline.len();
            for w in &mut task.watches {
                if let Some(s) = w.second(last, &task.acc) {
                    stop.get_or_insert(s);
                }
            }
        }
        (out, stop)
    }

    /// After a replay: stop waiting for the lost nodes.
    pub fn settle_losses(&mut self) {
        for task in &mut self.tasks {
            for slot in 0..task.lost.len() {
                if task.lost[slot] {
                    task.acc.finish(slot);
                }
            }
        }
    }

    pub fn task_ref(&self, task_id: u32) -> TaskRef {
        TaskRef {
            execution_id: self.id.clone(),
            task_id,
        }
    }

    /// Adds a node's window; `false` when it belongs to no task or node of this execution.
    ///
    /// A lost node's windows count like any other, whenever they come (before the end, after
    /// it, or replayed after a restart): the fence stops its new load (its lease lapsed before
    /// it was declared dead, and a fenced node is never confirmed again), so every window it
    /// sends records requests it really sent before the fence. Windows are stored once by
    /// `(execution, task, node, epoch, window_index)`, and a node queues each second once,
    /// with the epoch it had then, so none counts twice.
    pub fn add_window(&mut self, task_id: u32, node: &str, window: Window, last: bool) -> bool {
        let Some(task) = self.tasks.get_mut(task_id as usize) else {
            return false;
        };
        let Some(slot) = task.shares.slot(node) else {
            return false;
        };
        task.acc.add(slot as usize, window, last);
        true
    }

    /// `node` refused task `task_id`: it runs nothing and will send no window for it.
    pub fn refused(&mut self, task_id: u32, node: &str) {
        if let Some(task) = self.tasks.get_mut(task_id as usize)
            && let Some(slot) = task.shares.slot(node)
        {
            task.acc.finish(slot as usize);
        }
    }

    pub fn set_reported_sent(&mut self, task_id: u32, node: &str, sent: u64) {
        if let Some(task) = self.tasks.get_mut(task_id as usize)
            && let Some(slot) = task.shares.slot(node)
        {
            let r = &mut task.reported_sent[slot as usize];
            *r = (*r).max(sent);
        }
    }

    /// Every task has every node's last window (or gave up on it).
    pub fn all_done(&self) -> bool {
        !self.tasks.is_empty() && self.tasks.iter().all(|t| t.acc.is_done())
    }

    /// Whether `node` should still be running task `task_id` (after it rejoined).
    pub fn node_should_run(&self, task_id: u32, node: &str) -> bool {
        self.phase == Phase::Running
            && self.tasks.get(task_id as usize).is_some_and(|t| {
                t.shares
                    .slot(node)
                    .is_some_and(|s| !t.lost[s as usize] && !t.acc.is_shard_done(s as usize))
            })
    }

    /// Applies the loss of `node`, fenced at `epoch`, `at_ms` after the start (the time a
    /// re-split takes effect).
    ///
    /// While the execution winds down (cancelled, failing, or stopped by a watch) no policy
    /// applies, but the node is still marked lost, so the end does not wait for it and the
    /// report says so; its windows count if it comes back.
    pub fn lose_node(&mut self, node: &str, at_ms: u64, epoch: u64) -> LossOutcome {
        if !self.phase.is_live() {
            return LossOutcome::Unaffected;
        }
        let winding_down = self.stopping();
        let mut fail = None;
        let mut reshared = Vec::new();
        let mut affected = false;
        for (i, task) in self.tasks.iter_mut().enumerate() {
            let Some(slot) = task.shares.slot(node) else {
                continue;
            };
            let Some(loss) = task.lose(slot, epoch, at_ms, winding_down) else {
                continue;
            };
            affected = true;
            match loss {
                Loss::Tolerated => {}
                Loss::Reshared => reshared.push(i as u32),
                // The other tasks' slots of the node are given up too (no early return): the
                // execution ends once the survivors' last windows are in.
                Loss::Fail(reason) => {
                    fail.get_or_insert(reason);
                }
            }
        }
        if !affected {
            return LossOutcome::Unaffected;
        }
        self.degraded = true;
        if let Some(reason) = fail {
            return LossOutcome::Fail(reason);
        }
        if reshared.is_empty() {
            LossOutcome::Tolerated
        } else {
            LossOutcome::Reshared(reshared)
        }
    }
}
