//! An execution as plain data: its state machine, its tasks' shares over the nodes, the merged
//! windows, and the views the REST API shows. The `Orchestrator` actor owns these and decides
//! with the functions here; nothing in this module sends or stores.
//!
//! States: `pending → planning → running → (completed | completed_degraded | failed |
//! cancelled)`. A node lost mid-run is handled by its task's `on_node_failure`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::schedule::{Arrivals, Pattern};
use crate::engine::share::ShareTable;
use crate::messages::events::TaskSecond;
use crate::messages::wire::TaskRef;
use crate::stats::report::{NodeReport, Report, TaskInfo};
use crate::stats::thresholds::ThresholdWatch;
use crate::stats::watch::{Stop, StopAs, Watch};
use crate::stats::{Snapshot, TaskAccumulator, Window};
use crate::task::load::{LoadTask, Model, OnNodeFailure};
use crate::task::security::distribute;
use crate::task::security::{ScanReport, ScanSpec};
use crate::task::{TaskKind, TestPlan};

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

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Each task of a submitted execution body, as the JSON its nodes are given.
pub fn task_jsons(request_json: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(request_json)
        .ok()
        .and_then(|doc| {
            doc["tasks"]
                .as_array()
                .map(|ts| ts.iter().map(|t| t.to_string()).collect())
        })
        .unwrap_or_default()
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

/// What a task of a running execution does.
pub enum Work {
    /// A load test: its rate plan split into shares over its nodes.
    Load(LoadTask),
    /// A security scan: its endpoints dealt over its nodes (see [`distribute`]).
    Scan(ScanWork),
}

/// A scan under way: the spec and, per slot, the node's report once it came.
pub struct ScanWork {
    pub spec: ScanSpec,
    pub slices: Vec<Option<ScanReport>>,
}

/// One task of a running execution. A scan task keeps an accumulator too (it receives no
/// windows): its slots are finished as their reports come, so completion, losses and the
/// watchdog treat both kinds alike.
pub struct ExecTask {
    pub name: String,
    pub work: Work,
    /// The task as submitted, sent to the nodes as is.
    pub task_json: String,
    pub shares: ShareTable,
    pub lost: Vec<bool>,
    /// Per slot: the epoch a lost node was fenced at.
    pub lost_epoch: Vec<u64>,
    /// Per slot: what the node's heartbeats said it had sent.
    pub reported_sent: Vec<u64>,
    pub acc: TaskAccumulator,
    /// Open model: the plan's request count (its rate integral), computed once.
    planned_requests: Option<u64>,
    /// Timeline points already published as live `stats` events.
    streamed: usize,
    /// What watches the task's merged seconds (its thresholds), and may stop the run.
    pub watches: Vec<Watch>,
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

impl ExecTask {
    /// A scan task over `shares.nodes`, one slice per node.
    pub fn scan(name: String, spec: ScanSpec, task_json: String, shares: ShareTable) -> ExecTask {
        let n = shares.nodes.len();
        ExecTask {
            name,
            work: Work::Scan(ScanWork {
                spec,
                slices: vec![None; n],
            }),
            task_json,
            lost: vec![false; n],
            lost_epoch: vec![0; n],
            reported_sent: vec![0; n],
            acc: TaskAccumulator::for_plan(n, None),
            shares,
            planned_requests: None,
            streamed: 0,
            watches: Vec::new(),
        }
    }

    pub fn new(name: String, task: LoadTask, task_json: String, shares: ShareTable) -> ExecTask {
        let n = shares.nodes.len();
        let rate = (task.model == Model::Open).then(|| task.rate_plan());
        let planned_requests = rate
            .as_ref()
            .map(|r| r.planned_requests(task.arrivals, task.profile.seed));
        let acc = TaskAccumulator::for_plan(n, rate);
        let thresholds = task.thresholds.clone();
        let mut watches = if thresholds.iter().any(|t| t.abort_on_fail) {
            vec![Watch::Thresholds(
                ThresholdWatch::new(thresholds).over(task.profile.duration),
            )]
        } else {
            Vec::new()
        };
        if let Some(spec) = &task.stress {
            watches.push(Watch::Stress(Box::new(
                crate::task::stress::StressWatch::new(spec),
            )));
        }
        ExecTask {
            name,
            work: Work::Load(task),
            task_json,
            lost: vec![false; n],
            lost_epoch: vec![0; n],
            reported_sent: vec![0; n],
            acc,
            shares,
            planned_requests,
            streamed: 0,
            watches,
        }
    }

    /// The load test this task runs, if it is one.
    pub fn load(&self) -> Option<&LoadTask> {
        match &self.work {
            Work::Load(l) => Some(l),
            Work::Scan(_) => None,
        }
    }

    /// A scan task's merged report: every slice in so far, the lost ones marked.
    pub fn scan_report(&self) -> Option<ScanReport> {
        let Work::Scan(s) = &self.work else {
            return None;
        };
        Some(distribute::merge(&s.spec, &self.shares.nodes, &s.slices))
    }

    /// Takes a node's slice report; `false` when the node has no slot, was lost, or already
    /// sent it (a resent report counts once).
    pub fn add_scan_slice(&mut self, node: &str, report: ScanReport) -> bool {
        let Work::Scan(s) = &mut self.work else {
            return false;
        };
        let Some(slot) = self.shares.slot(node).map(usize::from) else {
            return false;
        };
        if self.lost[slot] || s.slices[slot].is_some() {
            return false;
        }
        self.reported_sent[slot] = report.requests_sent;
        s.slices[slot] = Some(report);
        self.acc.finish(slot);
        true
    }

    pub fn info(&self) -> TaskInfo {
        let Work::Load(load) = &self.work else {
            let scan = self.scan_report().unwrap_or_default();
            return TaskInfo {
                name: self.name.clone(),
                model: "scan",
                pattern: "none".into(),
                arrivals: "none",
                seed: 0,
                concurrent_users: 1,
                duration_s: scan.duration_s.max(0.001),
                planned_requests: None,
                nodes: self.shares.nodes.clone(),
                lost: self.lost.clone(),
                reported_sent: self.reported_sent.clone(),
                kind: "security_test",
                thresholds: Vec::new(),
                aborted: None,
                stress: None,
            };
        };
        let open = load.model == Model::Open;
        TaskInfo {
            name: self.name.clone(),
            model: if open { "open" } else { "closed" },
            pattern: pattern_name(&load.profile.pattern).to_string(),
            arrivals: match load.arrivals {
                Arrivals::Uniform => "uniform",
                Arrivals::Poisson => "poisson",
            },
            seed: load.profile.seed,
            concurrent_users: load.concurrent_users,
            duration_s: load.profile.duration.as_secs_f64(),
            planned_requests: self.planned_requests,
            nodes: self.shares.nodes.clone(),
            lost: self.lost.clone(),
            reported_sent: self.reported_sent.clone(),
            stress: load.stress.clone(),
            kind: load.label,
            thresholds: load.thresholds.clone(),
            aborted: self.watches.iter().find_map(|w| match w {
                Watch::Thresholds(t) => t.aborted(),
                Watch::Stress(_) => None,
            }),
        }
    }
}

pub fn pattern_name(p: &Pattern) -> &'static str {
    match p {
        Pattern::Constant => "constant",
        Pattern::RampUp { .. } => "ramp_up",
        Pattern::RampDown { .. } => "ramp_down",
        Pattern::Spike { .. } => "spike",
        Pattern::Wave { .. } => "wave",
        Pattern::Random { .. } => "random",
        Pattern::Burst { .. } => "burst",
        Pattern::Stages { .. } => "stages",
    }
}

/// An execution the orchestrator holds in memory.
pub struct Execution {
    pub id: String,
    pub name: String,
    pub request_json: String,
    pub plan: TestPlan,
    pub state: State,
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
    /// Cancelled while running: the state is `cancelled` already, the nodes are stopping.
    /// Also set while a watch's stop is under way (`stopped_early`).
    pub stopping: bool,
    /// A watch stopped the run: how it ends, and when (ms since the Unix epoch).
    pub stopped_early: Option<(StopAs, u64)>,
    /// Cancelled while running, when (ms since the Unix epoch): rates and progress cover the
    /// time until then.
    pub cancelled_at_ms: Option<u64>,
    /// When its tasks were handed to the nodes (or restored after a restart).
    pub planned_at: Option<std::time::Instant>,
    pub report: Option<serde_json::Value>,
    /// Where it stands with the resource pool before it starts.
    pub reservation: Reservation,
    /// Executions of a coordinated workload start together once all of them hold their
    /// resources: the group's id and size.
    pub barrier: Option<(String, usize)>,
    /// Why a pending execution has not been given nodes yet (none eligible, say).
    pub waiting: Option<String>,
}

/// An execution's reservation in the resource pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// Not asked for yet.
    None,
    /// Asked for on these nodes; waiting for the pool's answer (or in its queue).
    Asked { nodes: Vec<String>, queued: bool },
    /// Granted on these nodes: the execution may start there.
    Granted { nodes: Vec<String> },
}

impl Reservation {
    /// The id of an execution's allocation in the pool.
    pub fn allocation_id(execution_id: &str) -> String {
        format!("execution:{execution_id}")
    }
}

impl Execution {
    /// A new execution from its stored record, not planned yet.
    pub fn pending(r: &crate::store::ExecutionRecord, plan: TestPlan) -> Execution {
        Execution {
            id: r.id.clone(),
            name: r.name.clone(),
            request_json: r.request_json.clone(),
            plan,
            state: State::Pending,
            reason: r.reason.clone(),
            created_at_ms: r.created_at_ms,
            started_at_ms: r.started_at_ms,
            finished_at_ms: None,
            tasks: Vec::new(),
            degraded: false,
            store_note: None,
            stopping: false,
            stopped_early: None,
            cancelled_at_ms: None,
            planned_at: None,
            report: None,
            reservation: Reservation::None,
            barrier: None,
            waiting: None,
        }
    }

    /// The longest task's planned duration.
    pub fn duration(&self) -> Duration {
        self.plan
            .tasks
            .iter()
            .map(|t| match &t.kind {
                TaskKind::LoadTest(l) => l.profile.duration,
                TaskKind::SecurityTest(spec) => distribute::estimate(spec).1,
            })
            .max()
            .unwrap_or_default()
    }

    /// How much longer than planned a scan may take before the watchdog gives up on its
    /// missing slices: slow answers stretch a scan (its estimate assumes quick ones), so its
    /// estimate again plus two request timeouts.
    pub fn scan_slack(&self) -> Duration {
        self.plan
            .tasks
            .iter()
            .filter_map(|t| match &t.kind {
                TaskKind::SecurityTest(spec) => {
                    Some(distribute::estimate(spec).1 + spec.timeout * 2)
                }
                TaskKind::LoadTest(_) => None,
            })
            .max()
            .unwrap_or_default()
    }

    /// Splits every task equally over `nodes` and starts it at `start_unix_ms`.
    pub fn plan_over(&mut self, nodes: &[String], start_unix_ms: u64, task_jsons: Vec<String>) {
        self.started_at_ms = Some(start_unix_ms);
        self.planned_at = Some(std::time::Instant::now());
        self.tasks = self
            .plan
            .tasks
            .iter()
            .zip(task_jsons)
            .map(|(t, json)| match &t.kind {
                TaskKind::LoadTest(load) => ExecTask::new(
                    t.name.clone(),
                    load.clone(),
                    json,
                    ShareTable::equal(nodes.to_vec()),
                ),
                TaskKind::SecurityTest(spec) => {
                    let n = distribute::node_count(spec, nodes.len());
                    ExecTask::scan(
                        t.name.clone(),
                        spec.clone(),
                        json,
                        ShareTable::equal(nodes[..n].to_vec()),
                    )
                }
            })
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
    pub fn restore(&mut self, stored: StoredPlan, task_jsons: Vec<String>) {
        // Every node of the execution: a scan task may use only the first few.
        let nodes = stored
            .tasks
            .iter()
            .max_by_key(|t| t.shares.nodes.len())
            .map(|t| t.shares.nodes.clone())
            .unwrap_or_default();
        self.plan_over(&nodes, stored.start_unix_ms, task_jsons);
        for (task, st) in self.tasks.iter_mut().zip(stored.tasks) {
            task.shares = st.shares;
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
            for point in &timeline[task.streamed..] {
                out.push(TaskSecond::of(
                    &self.id,
                    task_id as u32,
                    &task.name,
                    point,
                    totals,
                    task.shares.nodes.len(),
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
        self.state == State::Running
            && !self.stopping
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
        if self.state != State::Running && !self.stopping {
            return LossOutcome::Unaffected;
        }
        let winding_down = self.stopping;
        let mut fail = None;
        let mut reshared = Vec::new();
        let mut affected = false;
        for (i, task) in self.tasks.iter_mut().enumerate() {
            let Some(slot) = task.shares.slot(node) else {
                continue;
            };
            let s = slot as usize;
            if task.lost[s] || task.acc.is_shard_done(s) {
                continue;
            }
            affected = true;
            task.lost[s] = true;
            task.lost_epoch[s] = epoch;
            task.acc.finish(s);
            if winding_down {
                continue;
            }
            // A scan's lost slice is reported as not scanned; the others go on.
            let Work::Load(load) = &task.work else {
                continue;
            };
            match load.on_node_failure {
                OnNodeFailure::Fail => {
                    // The other tasks' slots of the node are given up too (no early return):
                    // the execution ends once the survivors' last windows are in.
                    fail.get_or_insert_with(|| {
                        format!(
                            "node {node} was lost and task {:?} has on_node_failure: fail",
                            task.name
                        )
                    });
                }
                OnNodeFailure::Tolerate => {}
                OnNodeFailure::Rebalance => {
                    if load.model == Model::Closed {
                        // A closed model's users are fixed per node at the start.
                        continue;
                    }
                    if !task.shares.without(slot, at_ms) {
                        fail.get_or_insert_with(|| {
                            format!(
                                "node {node} was lost and no other node is left for task {:?}",
                                task.name
                            )
                        });
                        continue;
                    }
                    reshared.push(i as u32);
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

    /// Seconds from the start to a cancel or a watch's stop, if the run was stopped.
    pub fn stopped_after_s(&self) -> Option<f64> {
        let at = self
            .stopped_early
            .map(|(_, at)| at)
            .or(self.cancelled_at_ms)?;
        Some(at.saturating_sub(self.started_at_ms?) as f64 / 1000.0)
    }

    /// A task's facts for its report, its time cut at the stop of a stopped run.
    fn task_info(&self, t: &ExecTask) -> TaskInfo {
        let mut info = t.info();
        if let Some(ran) = self.stopped_after_s() {
            info.duration_s = info.duration_s.min(ran);
        }
        info
    }

    pub fn report(&self) -> Report {
        let tasks = self
            .tasks
            .iter()
            .map(|t| (self.task_info(t), &t.acc))
            .collect();
        let started = self.started_at_ms.unwrap_or(0);
        let mut report = Report::build(self.name.clone(), started, tasks);
        if let Some(ran) = self.stopped_after_s()
            && self.stopped_early.is_none()
            && ran < self.duration().as_secs_f64()
        {
            // Cancelled before its plan ended: the figures cover the time that ran.
            report.interrupt(ran);
        }
        for (r, t) in report.tasks.iter_mut().zip(&self.tasks) {
            r.security = t.scan_report();
        }
        if let Some((_, at_ms)) = self.stopped_early {
            report.interrupt(at_ms.saturating_sub(started) as f64 / 1000.0);
            report.summary.stopped_by = self.reason.clone();
            // What the watch stopped was meant not to run: "not sent" counts only the seconds
            // that ran.
            let mut not_sent = 0;
            for t in &mut report.tasks {
                if t.not_sent.is_some() {
                    let planned: f64 = t.timeline.iter().map(|p| p.planned).sum();
                    let n = (planned.round() as u64).saturating_sub(t.sent_requests);
                    t.not_sent = Some(n);
                    not_sent += n;
                }
            }
            report.summary.not_sent = not_sent;
        }
        report
    }

    /// The state to end in once every task is done, and its reason, decided over the final
    /// accounting (`report`, from [`Execution::report`]): a stop by a watch ends as the watch
    /// said (with its reason); a cancel or a failure stays what it is; a run that ended by its
    /// plan and did not send everything it planned (`not_sent > 0`, whatever the cause: a lost
    /// node, a paused node, a link or orchestrator outage, arrivals that never got a slot) or
    /// that lost a node ends `completed_degraded` with the reason, never `completed`.
    pub fn final_state(&self, report: &Report) -> (State, Option<String>) {
        match self.stopped_early {
            // What a watch stopped was meant not to run, and the second it stopped in ran
            // only in part: its state is the watch's.
            Some((StopAs::Failed, _)) => return (State::Failed, self.reason.clone()),
            Some((StopAs::Completed, _)) => return (State::Completed, self.reason.clone()),
            None if self.stopping && matches!(self.state, State::Cancelled | State::Failed) => {
                return (self.state, self.reason.clone());
            }
            None => {}
        }
        let mut why = Vec::new();
        let lost: Vec<&str> = report
            .tasks
            .iter()
            .flat_map(|t| t.nodes.iter().filter(|n| n.lost))
            .map(|n| n.node_id.as_str())
            .collect();
        if !lost.is_empty() {
            let mut lost = lost;
            lost.sort_unstable();
            lost.dedup();
            why.push(format!("node(s) lost: {}", lost.join(", ")));
        }
        let s = &report.summary;
        if s.not_sent > 0 {
            why.push(format!(
                "{} of {} planned requests were not sent",
                s.not_sent, s.planned_requests
            ));
        }
        let degraded = self.degraded || !why.is_empty();
        if degraded && why.is_empty() && self.store_note.is_none() {
            why.push("a node was lost".into());
        }
        why.extend(self.store_note.iter().cloned());
        if !degraded {
            return (
                State::Completed,
                self.reason.clone().or(self.store_note.clone()),
            );
        }
        (State::CompletedDegraded, Some(why.join("; ")))
    }

    pub fn view(&self, now_unix_ms: u64) -> ExecutionView {
        let duration = self.duration();
        let progress_percent = if self.state.is_terminal() {
            // A run stopped before its plan ended got as far as its stop, not to 100 %.
            match self.stopped_after_s() {
                Some(ran) if !duration.is_zero() => {
                    (ran / duration.as_secs_f64() * 100.0).clamp(0.0, 100.0)
                }
                _ => 100.0,
            }
        } else {
            match self.started_at_ms {
                Some(start) if !duration.is_zero() => {
                    let elapsed = now_unix_ms.saturating_sub(start) as f64 / 1000.0;
                    (elapsed / duration.as_secs_f64() * 100.0).clamp(0.0, 99.9)
                }
                _ => 0.0,
            }
        };
        let tasks: Vec<TaskView> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let info = self.task_info(t);
                let ran_s = crate::stats::load_seconds(t.acc.timeline().len(), info.duration_s);
                let report = crate::stats::report::TaskReport::build(info, &t.acc);
                let mut figures = t.acc.snapshot();
                // Lost nodes count with what they last said they had sent.
                figures.sent = report.sent_requests;
                TaskView {
                    task_id: i as u32,
                    name: t.name.clone(),
                    planned_requests: report.planned_requests,
                    achieved_rps: crate::stats::achieved_rps(figures.completed, ran_s),
                    ran_s,
                    figures,
                    nodes: report.nodes,
                    shares: t.shares.clone(),
                }
            })
            .collect();
        // The report's figure once there is one; until then the tasks' completed over the
        // longest time any of them ran, as the report's summary counts it.
        let achieved_rps = self
            .report
            .as_ref()
            .and_then(|r| r["summary"]["achieved_rps"].as_f64())
            .unwrap_or_else(|| {
                let completed = tasks.iter().map(|t| t.figures.completed).sum();
                let ran_s = tasks.iter().map(|t| t.ran_s).fold(0.0, f64::max);
                crate::stats::achieved_rps(completed, ran_s)
            });
        ExecutionView {
            execution_id: self.id.clone(),
            name: self.name.clone(),
            state: self.state,
            reason: self.reason.clone(),
            created_at_ms: self.created_at_ms,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            progress_percent,
            duration_s: duration.as_secs_f64(),
            achieved_rps,
            waiting_for: match (&self.state, &self.reservation) {
                (State::Pending, Reservation::Asked { queued: true, .. }) => {
                    Some("resources: queued in the pool".into())
                }
                (State::Pending, Reservation::Asked { .. }) => Some("resources".into()),
                (State::Pending, Reservation::Granted { .. }) if self.barrier.is_some() => {
                    Some("the other executions of its workload".into())
                }
                (State::Pending, Reservation::None) => self.waiting.clone(),
                _ => None,
            },
            tasks,
        }
    }
}

/// `GET /api/executions/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutionView {
    pub execution_id: String,
    pub name: String,
    pub state: State,
    pub reason: Option<String>,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub progress_percent: f64,
    pub duration_s: f64,
    /// Requests completed per second over the time the load ran (`stats::achieved_rps`):
    /// so far while it runs, the report's figure once it has ended.
    pub achieved_rps: f64,
    /// Why a pending execution has not started (no eligible node, waiting for resources).
    pub waiting_for: Option<String>,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub task_id: u32,
    pub name: String,
    pub planned_requests: Option<u64>,
    /// Completed per second over the seconds its load has run so far (`stats::achieved_rps`).
    pub achieved_rps: f64,
    /// Those seconds (`stats::load_seconds`): merged so far, the drain excluded.
    pub ran_s: f64,
    /// Sent, completed, errors, late starts, latency and the latest complete second (planned
    /// and achieved rate, live), merged over the nodes.
    #[serde(flatten)]
    pub figures: Snapshot,
    pub nodes: Vec<NodeReport>,
    pub shares: ShareTable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;

    fn execution(policy: &str, model: &str) -> Execution {
        let settings = Settings::defaults();
        let mut params = json!({
            "targets": [{"url": "http://127.0.0.1:9/"}], "duration": "10s",
            "on_node_failure": policy, "model": model, "concurrent_users": 3});
        if model == "open" {
            params["base_rps"] = json!(30);
        }
        let doc = json!({"name": "e", "tasks": [{"type": "load_test", "parameters": params}]});
        let plan = crate::task::validate(&doc, &settings.load_generation).unwrap();
        let mut e = Execution {
            id: "x".into(),
            name: "e".into(),
            request_json: doc.to_string(),
            plan,
            state: State::Running,
            reason: None,
            created_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            tasks: Vec::new(),
            degraded: false,
            store_note: None,
            stopping: false,
            stopped_early: None,
            cancelled_at_ms: None,
            planned_at: None,
            report: None,
            reservation: Reservation::None,
            barrier: None,
            waiting: None,
        };
        let nodes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        e.plan_over(&nodes, 1000, vec!["{}".into()]);
        e
    }

    #[test]
    fn a_lost_node_is_reshared_then_done() {
        let mut e = execution("rebalance", "open");
        assert_eq!(e.lose_node("b", 5000, 1), LossOutcome::Reshared(vec![0]));
        assert!(e.degraded);
        assert!(!e.node_should_run(0, "b"));
        assert!(e.node_should_run(0, "a"));
        assert_eq!(e.tasks[0].shares.active_from(5000), [0, 2]);
        // Losing it again changes nothing.
        assert_eq!(e.lose_node("b", 6000, 1), LossOutcome::Unaffected);
        for node in ["a", "c"] {
            assert!(!e.all_done());
            e.add_window(0, node, Window::new(0), true);
        }
        assert!(e.all_done());
        assert_eq!(e.final_state(&e.report()).0, State::CompletedDegraded);
        // The stored plan restores the loss.
        let stored = e.stored_plan();
        let mut again = execution("rebalance", "open");
        again.restore(stored, vec!["{}".into()]);
        assert!(again.tasks[0].lost[1]);
        // Every window b recorded counts: the one of its old epoch and the one it sent after
        // it came back (the in-flight requests of before the fence, finishing).
        let mut before = Window::new(0);
        before.sent = 7;
        assert!(again.add_window(0, "b", before, false));
        let mut after = Window::new(1);
        after.completed = 5;
        assert!(again.add_window(0, "b", after, false));
        again.settle_losses();
        assert!(again.tasks[0].acc.is_shard_done(1));
        let b = again.tasks[0].acc.shard_totals()[1];
        assert_eq!((b.sent, b.completed), (7, 5));
    }

    #[test]
    fn a_scan_task_ends_when_every_slice_is_in_or_lost() {
        let settings = Settings::defaults();
        let eps: Vec<_> = (0..3)
            .map(|i| json!({"path": format!("/e{i}"), "params": ["q"]}))
            .collect();
        let doc = json!({"name": "s", "tasks": [{"type": "security_test", "parameters": {
            "target": "http://127.0.0.1:9/", "endpoints": eps}}]});
        let plan = crate::task::validate(&doc, &settings.load_generation).unwrap();
        let mut e = execution("rebalance", "open");
        e.plan = plan;
        let nodes: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        e.plan_over(&nodes, 1000, vec!["{}".into()]);
        // Three endpoints: three nodes at most.
        assert_eq!(e.tasks[0].shares.nodes, ["a", "b", "c"]);
        assert!(e.duration() > Duration::ZERO);
        let slice = ScanReport {
            requests_sent: 4,
            ..ScanReport::default()
        };
        assert!(e.tasks[0].add_scan_slice("a", slice.clone()));
        assert!(
            !e.tasks[0].add_scan_slice("a", slice.clone()),
            "counted twice"
        );
        assert!(
            !e.tasks[0].add_scan_slice("d", slice.clone()),
            "d has no slice"
        );
        assert_eq!(e.lose_node("b", 2000, 1), LossOutcome::Tolerated);
        assert!(!e.all_done());
        assert!(!e.tasks[0].add_scan_slice("b", slice.clone()), "b was lost");
        assert!(e.tasks[0].add_scan_slice("c", slice));
        assert!(e.all_done());
        assert_eq!(e.final_state(&e.report()).0, State::CompletedDegraded);
        let report = e.report();
        let t = &report.tasks[0];
        assert_eq!((t.kind.as_ref(), t.achieved_rps), ("security_test", 0.0));
        let scan = t.security.as_ref().unwrap();
        assert_eq!(
            (scan.requests_sent, scan.nodes_lost.clone()),
            (8, vec!["b".to_string()])
        );
        assert_eq!(t.nodes[0].sent, 4);
    }

    /// Issue 13 item 9: whatever left requests unsent, the end is `completed_degraded` and
    /// the reason says how many.
    #[test]
    fn requests_not_sent_end_degraded_with_the_reason() {
        for (sent_each, state) in [(100, State::Completed), (97, State::CompletedDegraded)] {
            let mut e = execution("rebalance", "open");
            for node in ["a", "b", "c"] {
                let mut w = Window::new(0);
                w.sent = sent_each;
                w.completed = sent_each;
                assert!(e.add_window(0, node, w, true));
            }
            assert!(e.all_done());
            let report = e.report();
            let (got, reason) = e.final_state(&report);
            assert_eq!(got, state, "{reason:?}");
            if state == State::CompletedDegraded {
                assert_eq!(
                    reason.as_deref(),
                    Some("9 of 300 planned requests were not sent")
                );
            } else {
                assert_eq!(reason, None);
            }
        }
    }

    /// A store that could not keep every window degrades the run with its own reason (not
    /// "a node was lost"), beside any other; a note of trouble that passed keeps it completed.
    #[test]
    fn the_stores_trouble_is_the_reason_it_gives() {
        for (sent_each, degraded, state, reason) in [
            (100, true, State::CompletedDegraded, "the store is full"),
            (
                97,
                true,
                State::CompletedDegraded,
                "9 of 300 planned requests were not sent; the store is full",
            ),
            (100, false, State::Completed, "the store is full"),
        ] {
            let mut e = execution("rebalance", "open");
            for node in ["a", "b", "c"] {
                let mut w = Window::new(0);
                w.sent = sent_each;
                w.completed = sent_each;
                assert!(e.add_window(0, node, w, true));
            }
            e.degraded = degraded;
            e.store_note = Some("the store is full".into());
            let report = e.report();
            let (got, why) = e.final_state(&report);
            assert_eq!((got, why.as_deref()), (state, Some(reason)));
            // Asked again (a late window amends the report), the reason does not grow.
            e.reason = why;
            assert_eq!(e.final_state(&report).1.as_deref(), Some(reason));
        }
    }

    /// A node that refused its task sends no window: the end waits only for the others.
    #[test]
    fn a_refusing_node_is_not_waited_for() {
        let mut e = execution("rebalance", "open");
        e.refused(0, "b");
        for node in ["a", "c"] {
            assert!(!e.all_done());
            e.add_window(0, node, Window::new(0), true);
        }
        assert!(e.all_done());
    }

    #[test]
    fn policies_tolerate_and_fail() {
        let mut e = execution("tolerate", "open");
        assert_eq!(e.lose_node("a", 1000, 1), LossOutcome::Tolerated);
        assert_eq!(e.tasks[0].shares.active_from(1000), [0, 1, 2]);
        let mut e = execution("fail", "open");
        assert!(matches!(e.lose_node("a", 1000, 1), LossOutcome::Fail(_)));
        let mut e = execution("rebalance", "closed");
        assert_eq!(e.lose_node("a", 1000, 1), LossOutcome::Tolerated);
    }
}
