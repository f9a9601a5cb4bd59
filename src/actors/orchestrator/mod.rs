//! `Orchestrator`: owns the executions (their phases, shares and merged windows) and the
//! registry of nodes; supervises one `NodeProxy` per node. Plans an execution over the
//! connected nodes, re-splits a lost node's share by the task's policy, stores every state
//! change before announcing it, and on start reloads whatever was running from the store.
//! The decisions are pure functions of `crate::execution` (`admission` among them).
//!
//! Takes:
//! - from the REST API, the MCP server, the distributor and the runner: `Submit`, `Cancel`,
//!   `GetExecution`, `GetTimeline`, `ListExecutions`, `GetReport`, `BuildReport`, `ListNodes`,
//!   `GetNodeStates`, `Adjust` (`adjust.rs`);
//! - from the REST API's cluster endpoint (`nodes.rs`): `Attach`, a node's new connection;
//! - from the proxies (`nodes.rs`): `NodeUp`, `NodeLinkDown`, `NodeWindow`, `NodeHealth`,
//!   `NodeProgress`, `NodeRunning`, `NodeJobDone`, `NodeRejected`, `NodeFailed`, `NodeLeft`,
//!   `ForgetNode`;
//! - from the resource pool (`planning.rs`): `AllocationEvent`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::node_proxy::{NodeProxy, StopProxy};
use crate::actors::registry::Registry;
use crate::actors::store::Store;
use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::clock::unix_ms;
use crate::execution::{Execution, Halt, LossOutcome, Phase, State, StoredPlan};
use crate::hub::LinkTimers;
use crate::messages::cluster::{
    BuildReport, Cancel, Deliver, GetExecution, GetNodeView, GetReport, GetTimeline,
    ListExecutions, ListNodes, NodeView, Submit, SubmitError,
};
use crate::messages::events::{Event, EventKind, Publish};
use crate::messages::store as db;
use crate::messages::wire::{OrchMsg, read_stored_window};
use crate::settings::Settings;
use crate::stats::watch::Stop;
use crate::store::ExecutionRecord;
use crate::task;

mod adjust;
mod metrics;
mod nodes;
mod planning;
mod store_health;

/// Time between planning and the common start, for the start message to reach every node.
const START_DELAY: Duration = Duration::from_millis(500);
/// How far ahead a re-split takes effect, so every survivor has it before it applies.
const RESHARE_MARGIN: Duration = Duration::from_millis(250);
/// Finished executions kept in memory (with their merged histograms) for the API.
const FINISHED_KEPT: usize = 64;
/// After the planned end and the drain, how long to wait for last windows before giving up.
const LAST_WINDOW_GRACE: Duration = Duration::from_secs(10);

struct NodeEntry {
    proxy: Addr<NodeProxy>,
    up: bool,
    epoch: u64,
    /// When its current session began.
    up_since: std::time::Instant,
    /// What placement needs to know of it.
    facts: planning::NodeFacts,
}

pub struct Orchestrator {
    settings: Arc<Settings>,
    store: Addr<Store>,
    registry: Arc<Registry>,
    supervisor: Option<Recipient<ChildExited>>,
    timers: LinkTimers,
    nodes: BTreeMap<String, NodeEntry>,
    executions: HashMap<String, Execution>,
    /// Execution ids, oldest first.
    order: Vec<String>,
    /// The store's last answer on what it could not write, and whether a retry is under way.
    store_status: crate::store::pending::StoreStatus,
    store_retrying: bool,
}

impl Orchestrator {
    /// `registry` gives the current event bus (it may have been restarted); `supervisor`
    /// hears of this actor's exit.
    pub fn new(
        settings: Arc<Settings>,
        store: Addr<Store>,
        registry: Arc<Registry>,
        supervisor: Option<Recipient<ChildExited>>,
    ) -> Self {
        Orchestrator {
            timers: LinkTimers::from_settings(&settings),
            settings,
            store,
            registry,
            supervisor,
            nodes: BTreeMap::new(),
            executions: HashMap::new(),
            order: Vec::new(),
            store_status: Default::default(),
            store_retrying: false,
        }
    }

    /// Announces an event on the live stream (a handful per second: not a hot path).
    fn publish(&self, kind: EventKind) {
        if let Some(events) = self.registry.events() {
            events.do_send(Publish(Event::now(kind)));
        }
    }

    /// Announces an execution's state.
    fn publish_state(&self, id: &str) {
        if let Some(e) = self.executions.get(id) {
            self.publish(EventKind::ExecutionState {
                execution_id: id.to_string(),
                name: e.name.clone(),
                state: e.state().as_str(),
                reason: e.reason.clone(),
            });
        }
    }

    /// Announces the seconds of an execution's tasks merged since the last call, and stops
    /// the execution if a task's watch asks for it.
    fn publish_seconds(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let (seconds, stop) = e.new_seconds();
        for second in seconds {
            self.publish(EventKind::Stats(second));
        }
        if let Some(stop) = stop {
            self.stop_early(id, stop, ctx);
        }
    }

    /// A watch ends the run before its plan does (a threshold with `abort_on_fail` failed):
    /// the nodes stop as for a cancel, and the execution ends in the watch's state once their
    /// last windows are in.
    fn stop_early(&mut self, id: &str, stop: Stop, ctx: &mut Context<Self>) {
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        if e.phase != Phase::Running {
            return;
        }
        tracing::info!(execution = %id, reason = %stop.reason, "execution stopped early");
        e.phase = Phase::Stopping(Halt::Watch {
            ends_as: stop.state,
            at_ms: unix_ms(),
        });
        e.reason = Some(stop.reason);
        self.stop_everywhere(id);
        self.check_done(id, ctx);
    }

    fn proxy(&mut self, node_id: &str, ctx: &mut Context<Self>) -> Addr<NodeProxy> {
        if let Some(e) = self.nodes.get(node_id) {
            return e.proxy.clone();
        }
        let proxy = NodeProxy::new(
            node_id.to_string(),
            self.timers.clone(),
            ctx.address(),
            self.store.clone(),
        )
        .start();
        self.nodes.insert(
            node_id.to_string(),
            NodeEntry {
                proxy: proxy.clone(),
                up: false,
                epoch: 0,
                up_since: std::time::Instant::now(),
                facts: planning::NodeFacts::default(),
            },
        );
        proxy
    }

    fn send_to(&self, node: &str, msg: OrchMsg) {
        if let Some(e) = self.nodes.get(node) {
            // A handful of control messages per execution: not a hot path.
            e.proxy.do_send(Deliver(msg));
        }
    }

    /// Moves an execution to `phase`, stores its state, then announces it.
    fn set_phase(
        &mut self,
        id: &str,
        phase: Phase,
        reason: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let state = phase.state();
        let now = unix_ms();
        if state.is_terminal() && !e.state().is_terminal() {
            // `finish` stamps the end before the final phase; a cancel before start has none.
            let end = e.finished_at_ms.unwrap_or(now);
            let ran_s = e.started_at_ms.map(|s| end.saturating_sub(s) as f64 / 1e3);
            self.registry
                .metrics
                .execution_ended(state, e.plan.tasks.len(), ran_s);
        }
        e.phase = phase;
        e.reason = reason.clone();
        let ended = e.phase.is_ended();
        if ended && e.finished_at_ms.is_none() {
            e.finished_at_ms = Some(now);
        }
        if ended {
            self.release(id);
            self.break_group(id, ctx);
        }
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let msg = db::UpdateExecution {
            id: id.to_string(),
            state: state.as_str().to_string(),
            reason,
            started_at_ms: e.started_at_ms,
            finished_at_ms: e.finished_at_ms,
        };
        let id = id.to_string();
        ctx.wait(self.store.send(msg).into_actor(self).map(move |res, act, _| {
            if !matches!(res, Ok(Ok(()))) {
                tracing::error!(execution = %id, result = ?res.map(|r| r.err()), "state change not stored");
            }
            act.publish_state(&id);
        }));
    }

    fn store_plan(&self, id: &str, ctx: &mut Context<Self>) {
        let Some(e) = self.executions.get(id) else {
            return;
        };
        let plan_json = serde_json::to_string(&e.stored_plan()).expect("plans serialize");
        let msg = db::SetExecutionPlan {
            id: id.to_string(),
            plan_json,
        };
        ctx.wait(self.store.send(msg).into_actor(self).map(|res, _, _| {
            if !matches!(res, Ok(Ok(()))) {
                tracing::error!(result = ?res.map(|r| r.err()), "plan not stored");
            }
        }));
    }

    /// Keeps the newest [`FINISHED_KEPT`] finished executions in memory; older ones are read
    /// from the store when asked for (their state, summary and report are stored).
    fn evict_finished(&mut self) {
        let finished: Vec<String> = self
            .order
            .iter()
            .filter(|id| self.executions.get(*id).is_some_and(|e| e.phase.is_ended()))
            .cloned()
            .collect();
        let excess = finished.len().saturating_sub(FINISHED_KEPT);
        for id in finished.into_iter().take(excess) {
            self.executions.remove(&id);
            self.order.retain(|o| *o != id);
        }
    }

    /// Ends a running execution that never got all its last windows.
    /// A later one (a live change made the run longer) replaces it.
    fn arm_watchdog(&mut self, id: &str, after: Duration, ctx: &mut Context<Self>) {
        let due = unix_ms() + after.as_millis() as u64;
        if let Some(e) = self.executions.get_mut(id) {
            e.watchdog_due_ms = due;
        }
        let id = id.to_string();
        ctx.run_later(after, move |act, ctx| {
            let Some(e) = act.executions.get_mut(&id) else {
                return;
            };
            if e.all_done() || !e.phase.is_live() || e.watchdog_due_ms > due {
                return;
            }
            tracing::warn!(execution = %id, "last windows missing after the grace period; ending");
            for task in &mut e.tasks {
                for slot in 0..task.shares.nodes.len() {
                    if !task.acc.is_shard_done(slot) {
                        task.lost[slot] = true;
                        task.acc.finish(slot);
                    }
                }
            }
            e.degraded = true;
            act.finish(&id, ctx);
        });
    }

    /// Every window is in: build and store the report, then the final state.
    fn finish(&mut self, id: &str, ctx: &mut Context<Self>) {
        self.note_store_trouble(id);
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let built = e.report();
        let (state, reason) = e.final_state(&built);
        let halt = e.phase.halt();
        let report = serde_json::to_value(built).expect("reports serialize");
        e.report = Some(report.clone());
        e.finished_at_ms = Some(unix_ms());
        let msg = db::SetExecutionReport {
            id: id.to_string(),
            report_json: report.to_string(),
        };
        ctx.wait(self.store.send(msg).into_actor(self).map(|res, _, _| {
            if !matches!(res, Ok(Ok(()))) {
                tracing::error!(result = ?res.map(|r| r.err()), "report not stored");
            }
        }));
        tracing::info!(execution = %id, state = state.as_str(), "execution ended");
        self.set_phase(id, Phase::Ended { state, halt }, reason, ctx);
        self.try_start(ctx);
    }

    /// A window came after the execution ended (a lost node that came back): rebuild and
    /// store its report, and the reason of a degraded end, from the final accounting.
    fn amend_report(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        if !e.phase.is_ended() || e.report.is_none() {
            return;
        }
        let built = e.report();
        if e.state() == State::CompletedDegraded
            && e.watch_stop().is_none()
            && let (State::CompletedDegraded, reason) = e.final_state(&built)
            && reason != e.reason
        {
            e.reason = reason.clone();
            self.store.do_send(db::UpdateExecution {
                id: id.to_string(),
                state: e.state().as_str().to_string(),
                reason,
                started_at_ms: e.started_at_ms,
                finished_at_ms: e.finished_at_ms,
            });
        }
        let report = serde_json::to_value(built).expect("reports serialize");
        e.report = Some(report.clone());
        tracing::info!(execution = %id, "late window of a lost node counted; report amended");
        ctx.wait(
            self.store
                .send(db::SetExecutionReport {
                    id: id.to_string(),
                    report_json: report.to_string(),
                })
                .into_actor(self)
                .map(|res, _, _| {
                    if !matches!(res, Ok(Ok(()))) {
                        tracing::error!(result = ?res.map(|r| r.err()), "amended report not stored");
                    }
                }),
        );
    }

    fn stop_everywhere(&self, id: &str) {
        let Some(e) = self.executions.get(id) else {
            return;
        };
        for (i, t) in e.tasks.iter().enumerate() {
            for node in &t.shares.nodes {
                self.send_to(
                    node,
                    OrchMsg::Stop {
                        task: e.task_ref(i as u32),
                    },
                );
            }
        }
    }

    /// Fails an execution. A running one stops on every node and ends `failed` once the
    /// nodes' last windows are in (as a cancel does), so the report keeps what they sent up
    /// to the stop; one that never ran fails at once.
    fn fail_execution(&mut self, id: &str, reason: String, ctx: &mut Context<Self>) {
        tracing::warn!(execution = %id, %reason, "execution failed");
        if self.executions.get(id).is_some_and(Execution::stopping) {
            // Winding down already (cancelled, failing or stopped by a watch): it ends as
            // that decided.
            return;
        }
        self.stop_everywhere(id);
        if let Some(e) = self.executions.get_mut(id)
            && e.phase == Phase::Running
        {
            // The report so far, stored now (a failed execution is not reloaded after a
            // restart); the final one replaces it once the last windows are in.
            self.store.do_send(db::SetExecutionReport {
                id: id.to_string(),
                report_json: serde_json::to_string(&e.report()).expect("reports serialize"),
            });
            self.set_phase(id, Phase::Stopping(Halt::Failed), Some(reason), ctx);
            self.check_done(id, ctx);
            return;
        }
        if let Some(e) = self.executions.get_mut(id) {
            e.reason = Some(reason.clone());
            let report = serde_json::to_value(e.report()).expect("reports serialize");
            e.report = Some(report.clone());
            self.store.do_send(db::SetExecutionReport {
                id: id.to_string(),
                report_json: report.to_string(),
            });
        }
        let ended = Phase::Ended {
            state: State::Failed,
            halt: None,
        };
        self.set_phase(id, ended, Some(reason), ctx);
        self.try_start(ctx);
    }

    fn check_done(&mut self, id: &str, ctx: &mut Context<Self>) {
        let done = self
            .executions
            .get(id)
            .is_some_and(|e| e.all_done() && e.phase.is_live());
        if done {
            self.finish(id, ctx);
        }
    }

    /// Applies the loss of `node` (fenced at `epoch`) to one execution, by each task's policy.
    fn lose_node_in(&mut self, id: &str, node: &str, epoch: u64, ctx: &mut Context<Self>) {
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let Some(start) = e.started_at_ms else {
            return;
        };
        let at_ms = (unix_ms() + RESHARE_MARGIN.as_millis() as u64).saturating_sub(start);
        let outcome = e.lose_node(node, at_ms, epoch);
        // Seconds that waited only for the lost node are complete now.
        self.publish_seconds(id, ctx);
        if !self.executions.contains_key(id) {
            return;
        }
        match outcome {
            LossOutcome::Unaffected => return,
            LossOutcome::Fail(reason) => {
                self.fail_execution(id, reason, ctx);
                return;
            }
            LossOutcome::Tolerated => {}
            LossOutcome::Reshared(tasks) => {
                tracing::info!(execution = %id, node = %node, at_ms, "lost node's share re-split");
                self.send_shares(id, &tasks, at_ms);
            }
        }
        self.store_plan(id, ctx);
        self.check_done(id, ctx);
    }

    /// Rebuilds what was running from the store (a restarted orchestrator).
    fn reload(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let fut = async move {
            let records = store
                .send(db::ExecutionsInStates(vec![
                    "pending".into(),
                    "planning".into(),
                    "running".into(),
                    "cancelled".into(),
                ]))
                .await
                .ok()?
                .ok()?;
            let mut restored = Vec::new();
            for r in records {
                let windows = store.send(db::WindowsOf(r.id.clone())).await.ok()?.ok()?;
                let sent = store
                    .send(db::GetNodeTaskSent(r.id.clone()))
                    .await
                    .ok()?
                    .ok()?;
                restored.push((r, windows, sent));
            }
            Some(restored)
        };
        ctx.wait(fut.into_actor(self).map(|restored, act, ctx| {
            let Some(restored) = restored else {
                tracing::error!("could not read running executions from the store");
                return;
            };
            for (record, windows, sent) in restored {
                act.restore(record, windows, sent, ctx);
            }
        }));
    }

    fn restore(
        &mut self,
        r: ExecutionRecord,
        windows: Vec<(crate::store::WindowKey, Vec<u8>)>,
        sent: Vec<(u32, String, u64)>,
        ctx: &mut Context<Self>,
    ) {
        let id = r.id.clone();
        let plan = serde_json::from_str(&r.request_json)
            .map_err(|e| e.to_string())
            .and_then(|doc| {
                task::validate(&doc, &self.settings.load_generation).map_err(|e| e.to_string())
            });
        let mut e = match plan {
            Ok(plan) => Execution::pending(&r, plan),
            Err(why) => {
                tracing::error!(execution = %id, %why, "stored execution no longer validates");
                self.store.do_send(db::UpdateExecution {
                    id,
                    state: "failed".into(),
                    reason: Some(format!("no longer valid after a restart: {why}")),
                    started_at_ms: r.started_at_ms,
                    finished_at_ms: Some(unix_ms()),
                });
                return;
            }
        };
        let state = State::parse(&r.state).unwrap_or(State::Pending);
        let stored: Option<StoredPlan> = r
            .plan_json
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        match (state, stored) {
            // Cancelled and reported, or cancelled before it ever ran: nothing to go on with.
            (State::Cancelled, _) if r.report_json.is_some() || r.plan_json.is_none() => {}
            // Running, or cancelled while its nodes were still stopping: gather the windows
            // again and end it (a cancelled one ends cancelled, with its report).
            (State::Running | State::Cancelled, Some(stored)) => {
                e.restore(stored);
                e.phase = if state == State::Cancelled {
                    Phase::Stopping(Halt::Cancelled { at_ms: None })
                } else {
                    Phase::Running
                };
                e.reason = r.reason.clone();
                replay(&mut e, windows, sent);
                let nodes: Vec<String> = e
                    .tasks
                    .iter()
                    .flat_map(|t| t.shares.nodes.iter().cloned())
                    .collect();
                let remaining = e.duration().saturating_sub(Duration::from_millis(
                    unix_ms().saturating_sub(e.started_at_ms.unwrap_or(0)),
                ));
                let watchdog = remaining
                    + e.slack()
                    + self.settings.load_generation.drain_timeout
                    + LAST_WINDOW_GRACE;
                tracing::info!(execution = %id, "execution reloaded; waiting for its nodes");
                self.order.push(id.clone());
                self.executions.insert(id.clone(), e);
                for n in nodes {
                    // The death timer of each node starts now.
                    self.proxy(&n, ctx);
                }
                self.arm_watchdog(&id, watchdog, ctx);
                self.check_done(&id, ctx);
            }
            _ => {
                // Pending, or planning when the orchestrator stopped: plan again (a new
                // execution is pending).
                self.order.push(id.clone());
                self.executions.insert(id, e);
            }
        }
    }
}

impl Actor for Orchestrator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.keep_gauges(ctx);
        self.keep_store_writing(ctx);
        self.reload(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // The proxies hold the node links; their successor builds its own from the store.
        for e in self.nodes.values() {
            e.proxy.do_send(StopProxy);
        }
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "orchestrator",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl Handler<Submit> for Orchestrator {
    type Result = ResponseActFuture<Self, Result<String, SubmitError>>;

    fn handle(&mut self, mut msg: Submit, _ctx: &mut Context<Self>) -> Self::Result {
        let id = uuid::Uuid::new_v4().to_string();
        crate::task::pin_seeds(&mut msg.request, &msg.plan);
        let record = ExecutionRecord {
            id: id.clone(),
            name: msg.plan.name.clone(),
            request_json: msg.request.to_string(),
            state: State::Pending.as_str().into(),
            reason: None,
            created_at_ms: unix_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            plan_json: None,
            report_json: None,
        };
        let mut execution = Execution::pending(&record, msg.plan);
        execution.barrier = msg.barrier;
        Box::pin(
            self.store
                .send(db::InsertExecution(record))
                .into_actor(self)
                .map(move |res, act, ctx| {
                    match res {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(SubmitError::Store(e.to_string())),
                        Err(e) => return Err(SubmitError::Store(e.to_string())),
                    }
                    act.order.push(id.clone());
                    act.executions.insert(id.clone(), execution);
                    act.publish_state(&id);
                    act.try_start(ctx);
                    Ok(id)
                }),
        )
    }
}

impl Handler<Cancel> for Orchestrator {
    type Result = Option<String>;

    fn handle(&mut self, Cancel(id): Cancel, ctx: &mut Context<Self>) -> Option<String> {
        let e = self.executions.get_mut(&id)?;
        match e.phase {
            Phase::Pending { .. } => {
                let ended = Phase::Ended {
                    state: State::Cancelled,
                    halt: None,
                };
                let reason = Some("cancelled before it started".into());
                self.set_phase(&id, ended, reason, ctx);
            }
            Phase::Planning | Phase::Running => {
                let halt = Halt::Cancelled {
                    at_ms: Some(unix_ms()),
                };
                let reason = Some("cancelled while running".to_string());
                self.set_phase(&id, Phase::Stopping(halt), reason, ctx);
                self.stop_everywhere(&id);
                self.check_done(&id, ctx);
            }
            // Ended, or stopping already: a watch's stop under way ends as the watch said.
            _ => {}
        }
        self.executions
            .get(&id)
            .map(|e| e.state().as_str().to_string())
    }
}

impl Handler<GetExecution> for Orchestrator {
    type Result = MessageResult<GetExecution>;

    fn handle(&mut self, GetExecution(id): GetExecution, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.executions.get(&id).map(|e| e.view(unix_ms())))
    }
}

impl Handler<GetTimeline> for Orchestrator {
    type Result = MessageResult<GetTimeline>;

    fn handle(&mut self, GetTimeline(id): GetTimeline, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.executions.get(&id).map(Execution::timeline))
    }
}

impl Handler<ListExecutions> for Orchestrator {
    type Result = MessageResult<ListExecutions>;

    fn handle(&mut self, _: ListExecutions, _ctx: &mut Context<Self>) -> Self::Result {
        let now = unix_ms();
        MessageResult(
            self.order
                .iter()
                .rev()
                .filter_map(|id| self.executions.get(id))
                .map(|e| e.view(now))
                .collect(),
        )
    }
}

impl Handler<GetReport> for Orchestrator {
    type Result = MessageResult<GetReport>;

    fn handle(&mut self, GetReport(id): GetReport, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.executions.get(&id).map(|e| {
            e.report
                .clone()
                .unwrap_or_else(|| serde_json::to_value(e.report()).expect("reports serialize"))
        }))
    }
}

impl Handler<BuildReport> for Orchestrator {
    type Result = MessageResult<BuildReport>;

    fn handle(&mut self, BuildReport(id): BuildReport, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.executions.get(&id).map(Execution::report))
    }
}

impl Handler<ListNodes> for Orchestrator {
    type Result = ResponseFuture<Vec<NodeView>>;

    fn handle(&mut self, _: ListNodes, _ctx: &mut Context<Self>) -> Self::Result {
        let proxies: Vec<Addr<NodeProxy>> = self.nodes.values().map(|e| e.proxy.clone()).collect();
        Box::pin(async move {
            let mut views = Vec::new();
            for p in proxies {
                if let Ok(v) = p.send(GetNodeView).await {
                    views.push(v);
                }
            }
            views
        })
    }
}

/// Replays a reloaded execution's stored windows and the sent counts its nodes reported,
/// then gives up on its lost nodes; the replayed seconds are not announced again (they were
/// before the restart, or nobody listened).
fn replay(
    e: &mut Execution,
    windows: Vec<(crate::store::WindowKey, Vec<u8>)>,
    sent: Vec<(u32, String, u64)>,
) {
    for (key, payload) in windows {
        match read_stored_window(&payload) {
            Ok((_, win, last)) => {
                e.add_window(key.task_id, &key.node_id, win, last);
            }
            Err(why) => {
                tracing::error!(execution = %e.id, %why, "stored window unreadable")
            }
        }
    }
    for (task, node, n) in sent {
        e.set_reported_sent(task, &node, n);
    }
    // Lost nodes count with what they sent before they were lost, then no more.
    e.settle_losses();
    // The replayed seconds were streamed before the restart (or nobody listened).
    let _ = e.new_seconds();
}
