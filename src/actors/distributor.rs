//! `Distributor`: places workloads of scenarios on the cluster's nodes by a strategy (the
//! decision is `crate::placement::place`), submits each scenario to the orchestrator as an
//! execution pinned to its node, and follows those executions for the plan's progress. A
//! coordinated workload is submitted as one group, which the orchestrator starts at one
//! instant once every member holds its resources; a sequential one submits the next scenario
//! when the one before ends; a parallel one submits all at once.
//! Supervises nothing. Takes: `SubmitWorkload`, `GetPlan`, `ListPlans`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{Value, json};

use crate::actors::registry::Registry;
use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::clock::unix_ms;
use crate::messages::cluster::{Cancel, GetExecution, GetNodeStates, Submit, SubmitError};
use crate::messages::distributor::{
    AssignmentView, ExecutionMode, GetPlan, ListPlans, PlanView, SubmitWorkload, Workload,
    WorkloadError,
};
use crate::messages::resources::GetPoolStatus;
use crate::messages::store as db;
use crate::placement::{self, NodeState, PlacementInput};

/// How often the plans' executions are looked at.
const TICK: Duration = Duration::from_millis(500);
/// Plans kept for the API; the oldest finished ones go first.
const PLANS_KEPT: usize = 256;

/// What a plan's execution was last seen as: its state and progress.
type Seen = (String, f64);

struct PlanState {
    view: PlanView,
    workload: Workload,
    started: Instant,
    /// A submission is on its way to the orchestrator.
    submitting: bool,
}

/// What the orchestrator answered a `Submit`.
type Submitted = Result<Result<String, SubmitError>, MailboxError>;

impl PlanState {
    fn finished(&self) -> bool {
        !matches!(self.view.state, "running")
    }

    /// The assignments that may be submitted now: every one not yet submitted, or in
    /// sequential mode the next one once none runs.
    fn ready(&self) -> Vec<usize> {
        let assignments = &self.view.assignments;
        let waiting = (0..assignments.len()).filter(|&i| assignments[i].execution_id.is_none());
        let busy = assignments
            .iter()
            .any(|a| a.execution_id.is_some() && !a.state.as_deref().is_some_and(terminal));
        match self.workload.execution_mode {
            ExecutionMode::Sequential if busy => Vec::new(),
            ExecutionMode::Sequential => waiting.take(1).collect(),
            _ => waiting.collect(),
        }
    }

    /// The execution request of assignment `i`: its scenario's plan, placed on its node.
    fn submit(&self, i: usize, barrier: Option<(String, usize)>) -> Submit {
        let a = &self.view.assignments[i];
        let prepared = self
            .workload
            .scenarios
            .iter()
            .find(|s| s.scenario.scenario_id == a.scenario_id)
            .expect("every assignment comes from a scenario");
        let s = &prepared.scenario;
        let mut plan = prepared.plan.clone();
        plan.placement.nodes = vec![a.node_id.clone()];
        plan.placement.priority = self.workload.priority;
        plan.placement.required_capabilities = s.required_capabilities.clone();
        plan.placement.resource_requirements = s.resource_requirements.clone();
        let mut request = prepared.request.clone();
        request["placement"] = json!({
            "nodes": [a.node_id],
            "priority": self.workload.priority,
            "required_capabilities": s.required_capabilities,
            "resource_requirements": s.resource_requirements,
        });
        Submit {
            request,
            plan,
            barrier,
        }
    }
}

pub struct Distributor {
    registry: Arc<Registry>,
    plans: BTreeMap<String, PlanState>,
    /// Plan ids, oldest first.
    order: VecDeque<String>,
    supervisor: Option<Recipient<ChildExited>>,
}

/// An assignment as the API shows it before its execution is submitted.
fn unsubmitted(a: placement::Assignment) -> AssignmentView {
    AssignmentView {
        scenario_id: a.scenario_id,
        node_id: a.node_id,
        execution_id: None,
        state: None,
        progress_percent: 0.0,
    }
}

fn terminal(state: &str) -> bool {
    matches!(
        state,
        "completed" | "completed_degraded" | "failed" | "cancelled"
    )
}

impl Distributor {
    pub fn new(registry: Arc<Registry>, supervisor: Option<Recipient<ChildExited>>) -> Self {
        Distributor {
            registry,
            plans: BTreeMap::new(),
            order: VecDeque::new(),
            supervisor,
        }
    }

    /// Fills each node's reservations (and capacity, the pool's word being the latest) from
    /// the pool.
    fn with_pool(
        mut nodes: Vec<NodeState>,
        pool: Option<crate::resources::PoolStatus>,
    ) -> Vec<NodeState> {
        if let Some(pool) = pool {
            for n in &mut nodes {
                if let Some(u) = pool.nodes.iter().find(|u| u.node_id == n.node_id) {
                    n.capacity = u.capacity.clone();
                    n.allocated = u.allocated.clone();
                }
            }
        }
        nodes
    }

    fn keep(&mut self, plan_id: String, state: PlanState) {
        self.plans.insert(plan_id.clone(), state);
        self.order.push_back(plan_id);
        while self.order.len() > PLANS_KEPT {
            let Some(pos) = self
                .order
                .iter()
                .position(|id| self.plans.get(id).is_none_or(PlanState::finished))
            else {
                break;
            };
            if let Some(id) = self.order.remove(pos) {
                self.plans.remove(&id);
            }
        }
    }

    /// Submits what may start now: everything (parallel, coordinated), or the next scenario
    /// once none runs (sequential).
    fn submit_ready(&mut self, plan_id: &str, ctx: &mut Context<Self>) {
        let Some(orchestrator) = self.registry.orchestrator() else {
            return;
        };
        let Some(p) = self.plans.get_mut(plan_id) else {
            return;
        };
        if p.submitting || p.finished() {
            return;
        }
        let batch = p.ready();
        if batch.is_empty() {
            return;
        }
        let group = (p.workload.execution_mode == ExecutionMode::Coordinated)
            .then(|| (plan_id.to_string(), p.view.assignments.len()));
        let submits: Vec<(usize, Submit)> = batch
            .into_iter()
            .map(|i| (i, p.submit(i, group.clone())))
            .collect();
        p.submitting = true;
        let fut = async move {
            let mut ids = Vec::new();
            for (i, s) in submits {
                ids.push((i, orchestrator.send(s).await));
            }
            ids
        };
        let plan_id = plan_id.to_string();
        ctx.spawn(
            fut.into_actor(self)
                .map(move |ids, act, _| act.submitted(&plan_id, ids)),
        );
    }

    /// Records the ids the orchestrator gave a plan's submissions; a refused one fails the
    /// plan.
    fn submitted(&mut self, plan_id: &str, ids: Vec<(usize, Submitted)>) {
        let Some(p) = self.plans.get_mut(plan_id) else {
            return;
        };
        p.submitting = false;
        let ended = p.finished();
        for (i, res) in ids {
            match res {
                Ok(Ok(id)) => {
                    if ended {
                        // The plan timed out (or failed) while this was on its way.
                        if let Some(o) = self.registry.orchestrator() {
                            o.do_send(Cancel(id.clone()));
                        }
                    }
                    let a = &mut p.view.assignments[i];
                    a.execution_id = Some(id);
                    a.state = Some("pending".into());
                }
                other => {
                    let why = match other {
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                        Ok(Ok(_)) => unreachable!(),
                    };
                    tracing::warn!(plan = %plan_id, error = %why, "scenario not submitted");
                    p.view.state = "failed";
                    p.view.finished_at_ms = Some(unix_ms());
                }
            }
        }
        if !ended && p.view.state == "failed" {
            // A workload runs whole or not at all: what was submitted is cancelled (a
            // coordinated group would otherwise wait for its missing member forever).
            if let Some(o) = self.registry.orchestrator() {
                for a in &p.view.assignments {
                    if let Some(id) = &a.execution_id {
                        o.do_send(Cancel(id.clone()));
                    }
                }
            }
        }
    }

    /// Reads the state of every plan's executions, submits what may go next, ends plans.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let Some(orchestrator) = self.registry.orchestrator() else {
            return;
        };
        let watched: Vec<(String, usize, String)> = self
            .plans
            .iter()
            .filter(|(_, p)| !p.finished())
            .flat_map(|(pid, p)| {
                p.view
                    .assignments
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, a)| Some((pid.clone(), i, a.execution_id.clone()?)))
            })
            .collect();
        let timed_out: Vec<String> = self
            .plans
            .iter()
            .filter(|(_, p)| {
                !p.finished() && p.workload.timeout.is_some_and(|t| p.started.elapsed() > t)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in timed_out {
            self.time_out(&id);
        }
        if watched.is_empty() {
            return;
        }
        let store = self.registry.store.clone();
        let fut = async move {
            let mut views: Vec<(String, usize, Option<Seen>)> = Vec::new();
            for (pid, i, exec) in watched {
                let v = match orchestrator.send(GetExecution(exec.clone())).await {
                    Ok(Some(v)) => Some((v.state.as_str().to_string(), v.progress_percent)),
                    // No longer in the orchestrator's memory (evicted, or it restarted after
                    // the execution ended): the store has its final state.
                    _ => match store.send(db::GetExecution(exec)).await {
                        Ok(Ok(Some(r))) => Some((r.state, 100.0)),
                        _ => None,
                    },
                };
                views.push((pid, i, v));
            }
            views
        };
        ctx.spawn(fut.into_actor(self).map(|views, act, ctx| {
            let mut touched: Vec<String> = Vec::new();
            for (pid, i, view) in views {
                let (Some(p), Some((state, progress))) = (act.plans.get_mut(&pid), view) else {
                    continue;
                };
                let a = &mut p.view.assignments[i];
                a.progress_percent = if terminal(&state) { 100.0 } else { progress };
                a.state = Some(state);
                if !touched.contains(&pid) {
                    touched.push(pid);
                }
            }
            for pid in touched {
                act.settle(&pid, ctx);
            }
        }));
    }

    /// Updates a plan's progress; submits the next scenarios; ends it when all have ended.
    fn settle(&mut self, plan_id: &str, ctx: &mut Context<Self>) {
        let Some(p) = self.plans.get_mut(plan_id) else {
            return;
        };
        let n = p.view.assignments.len().max(1) as f64;
        p.view.progress_percent = p
            .view
            .assignments
            .iter()
            .map(|a| a.progress_percent)
            .sum::<f64>()
            / n;
        let all_done = p
            .view
            .assignments
            .iter()
            .all(|a| a.state.as_deref().is_some_and(terminal));
        if all_done && !p.finished() {
            let ok =
                p.view.assignments.iter().all(|a| {
                    matches!(a.state.as_deref(), Some("completed" | "completed_degraded"))
                });
            p.view.state = if ok { "completed" } else { "failed" };
            p.view.progress_percent = 100.0;
            p.view.finished_at_ms = Some(unix_ms());
            tracing::info!(plan = %plan_id, state = p.view.state, "workload ended");
            return;
        }
        self.submit_ready(plan_id, ctx);
    }

    /// Cancels what still runs of a plan past its workload's timeout.
    fn time_out(&mut self, plan_id: &str) {
        let Some(p) = self.plans.get_mut(plan_id) else {
            return;
        };
        tracing::warn!(plan = %plan_id, "workload timed out; cancelling what still runs");
        p.view.state = "timed_out";
        p.view.finished_at_ms = Some(unix_ms());
        if let Some(orchestrator) = self.registry.orchestrator() {
            for a in &p.view.assignments {
                if let Some(id) = &a.execution_id
                    && !a.state.as_deref().is_some_and(terminal)
                {
                    orchestrator.do_send(Cancel(id.clone()));
                }
            }
        }
    }
}

impl Actor for Distributor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "distributor",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl Handler<SubmitWorkload> for Distributor {
    type Result = ResponseActFuture<Self, Result<PlanView, WorkloadError>>;

    fn handle(&mut self, msg: SubmitWorkload, _ctx: &mut Context<Self>) -> Self::Result {
        let orchestrator = self.registry.orchestrator();
        let allocator = self.registry.allocator.get();
        let fut = async move {
            let orchestrator = orchestrator.ok_or_else(|| {
                WorkloadError::Unavailable("the orchestrator is restarting".into())
            })?;
            let nodes = orchestrator
                .send(GetNodeStates)
                .await
                .map_err(|e| WorkloadError::Unavailable(e.to_string()))?;
            let pool = match allocator {
                Some(a) => a.send(GetPoolStatus).await.ok(),
                None => None,
            };
            Ok::<_, WorkloadError>(Distributor::with_pool(nodes, pool))
        };
        Box::pin(
            fut.into_actor(self)
                .map(move |nodes, act, ctx| act.accept(msg, nodes?, ctx)),
        )
    }
}

impl Distributor {
    /// Places a workload on the nodes seen, keeps its plan and, unless a dry run, submits what
    /// may start.
    fn accept(
        &mut self,
        msg: SubmitWorkload,
        nodes: Vec<NodeState>,
        ctx: &mut Context<Self>,
    ) -> Result<PlanView, WorkloadError> {
        let SubmitWorkload {
            workload,
            strategy,
            dry_run,
        } = msg;
        let settings = self.registry.settings.clone();
        if self
            .plans
            .values()
            .any(|p| p.workload.workload_id == workload.workload_id && !p.finished())
        {
            return Err(WorkloadError::Duplicate(workload.workload_id));
        }
        let max = settings.orchestrator.max_concurrent_executions;
        if workload.execution_mode == ExecutionMode::Coordinated
            && workload.scenarios.len() > max as usize
        {
            return Err(WorkloadError::TooLargeToCoordinate {
                size: workload.scenarios.len(),
                max,
            });
        }
        let scenarios: Vec<placement::Scenario> = workload
            .scenarios
            .iter()
            .map(|s| s.scenario.clone())
            .collect();
        let plan = placement::place(&PlacementInput {
            scenarios: &scenarios,
            nodes: &nodes,
            strategy,
            weights: &settings.distribution.weights,
            seed: placement::seed_of(&workload.workload_id),
            preferred_location: workload.preferred_location.as_deref(),
        });
        if !plan.unplaced.is_empty() {
            return Err(WorkloadError::Unplaced(plan.unplaced));
        }
        let plan_id = uuid::Uuid::new_v4().to_string();
        let view = PlanView {
            plan_id: plan_id.clone(),
            workload_id: workload.workload_id.clone(),
            name: workload.name.clone(),
            strategy,
            execution_mode: workload.execution_mode,
            state: if dry_run { "planned" } else { "running" },
            created_at_ms: unix_ms(),
            finished_at_ms: None,
            progress_percent: 0.0,
            assignments: plan.assignments.into_iter().map(unsubmitted).collect(),
            unplaced: Vec::new(),
        };
        tracing::info!(plan = %plan_id, workload = %workload.workload_id, %strategy, dry_run, "workload placed");
        self.keep(
            plan_id.clone(),
            PlanState {
                view: view.clone(),
                workload,
                started: Instant::now(),
                submitting: false,
            },
        );
        if !dry_run {
            self.submit_ready(&plan_id, ctx);
        }
        Ok(view)
    }
}

impl Handler<GetPlan> for Distributor {
    type Result = MessageResult<GetPlan>;

    fn handle(&mut self, GetPlan(id): GetPlan, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.plans.get(&id).map(|p| p.view.clone()))
    }
}

impl Handler<ListPlans> for Distributor {
    type Result = MessageResult<ListPlans>;

    fn handle(&mut self, _: ListPlans, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.order
                .iter()
                .rev()
                .filter_map(|id| self.plans.get(id))
                .map(|p| p.view.clone())
                .collect(),
        )
    }
}

/// The request a scenario becomes: an execution of one task of its type.
pub fn scenario_request(s: &placement::Scenario) -> Value {
    json!({
        "name": if s.name.is_empty() { s.scenario_id.clone() } else { s.name.clone() },
        "description": s.description,
        "tasks": [{"type": s.test_type, "name": s.scenario_id, "parameters": s.parameters}],
    })
}
