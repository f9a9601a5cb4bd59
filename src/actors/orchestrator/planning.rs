//! How the orchestrator starts executions: it chooses their nodes with a placement strategy,
//! reserves what they need in the resource pool, holds the members of a coordinated group
//! until all of them hold their resources, then hands the tasks out with one start time.
//! Also what it knows of each node for placement: capabilities, location, capacity, health,
//! and the node's record (how its recent windows went).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::prelude::*;

use super::{LAST_WINDOW_GRACE, Orchestrator, START_DELAY};
use crate::execution::{Reservation, State, task_jsons, unix_ms};
use crate::messages::cluster::GetNodeStates;
use crate::messages::resources::{Allocate, AllocationEvent, Deallocate, SetNodeCapacity};
use crate::messages::wire::{OrchMsg, StartTask};
use crate::placement::{self, NodeRecord, NodeState, PlacementInput, Scenario};
use crate::resources::{AllocError, AllocationRequest, Outcome, ResourceSpec};
use crate::stats::Window;
use crate::task::TaskKind;

/// How soon to try again after a reservation was given back (its node went away).
const RETRY_START: Duration = Duration::from_millis(100);

/// How much a new window moves a node's record (exponentially weighted).
const RECORD_WEIGHT: f64 = 0.2;

/// What placement knows of a node.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    pub capabilities: BTreeSet<String>,
    pub location: String,
    /// Where its own REST API listens (`host:port`).
    pub rest_addr: String,
    /// From its health reports (or, until the first, from what it said when it joined).
    pub capacity: BTreeMap<String, f64>,
    /// Its latest health score and whether it is short of critical; `None` before a report.
    pub health: Option<(f64, bool)>,
    pub record: NodeRecord,
}

/// The node capability a task type needs.
pub fn capability_for(kind: &TaskKind) -> &'static str {
    match kind {
        TaskKind::LoadTest(_) => "http_load",
        TaskKind::SecurityTest(_) => "security_testing",
    }
}

/// Folds one of a node's metric windows into its record: how many of its requests started
/// on time (the achieved share of what was planned), its error rate and its p99.
pub fn observe(record: &mut NodeRecord, w: &Window) {
    if w.sent == 0 && w.completed == 0 {
        return;
    }
    let on_time = if w.sent == 0 {
        1.0
    } else {
        1.0 - (w.late_starts.min(w.sent) as f64 / w.sent as f64)
    };
    let error_rate = if w.completed == 0 {
        0.0
    } else {
        w.errors.total as f64 / w.completed as f64
    };
    let p99_ms = w.corrected.value_at_quantile(0.99) as f64 / 1000.0;
    if record.windows == 0 {
        record.achieved_ratio = on_time;
        record.error_rate = error_rate;
        record.p99_ms = p99_ms;
    } else {
        let mix = |old: f64, new: f64| old + RECORD_WEIGHT * (new - old);
        record.achieved_ratio = mix(record.achieved_ratio, on_time);
        record.error_rate = mix(record.error_rate, error_rate);
        record.p99_ms = mix(record.p99_ms, p99_ms);
    }
    record.windows += 1;
}

impl Orchestrator {
    /// The connected nodes as placement sees them. `allocated` is left empty: the pool
    /// checks fit when the execution reserves.
    pub(super) fn node_states(&self) -> Vec<NodeState> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.up)
            .map(|(id, e)| NodeState {
                node_id: id.clone(),
                capabilities: e.facts.capabilities.clone(),
                location: e.facts.location.clone(),
                capacity: e.facts.capacity.clone(),
                allocated: BTreeMap::new(),
                health_score: e.facts.health.map_or(100.0, |h| h.0),
                healthy: e.facts.health.is_none_or(|h| h.1),
                active_tasks: self.active_tasks(id),
                record: e.facts.record,
            })
            .collect()
    }

    /// Tells the pool what `node` offers.
    pub(super) fn offer_capacity(&self, node: &str) {
        let (Some(allocator), Some(e)) = (self.registry.allocator.get(), self.nodes.get(node))
        else {
            return;
        };
        allocator.do_send(SetNodeCapacity {
            node_id: node.to_string(),
            capacity: e.facts.capacity.clone(),
        });
    }

    /// Tasks of running executions that `node` takes part in.
    fn active_tasks(&self, node: &str) -> u32 {
        self.executions
            .values()
            .filter(|e| e.state == State::Running || e.stopping)
            .flat_map(|e| e.tasks.iter())
            .filter(|t| t.shares.slot(node).is_some())
            .count() as u32
    }

    /// The nodes an execution runs on: its pinned ones, or the eligible ones (capabilities
    /// met; a critical node only when no other is eligible), narrowed to `node_count` by the
    /// strategy. `Err` says what it waits for.
    fn choose_nodes(&self, id: &str) -> Result<Vec<String>, String> {
        let e = &self.executions[id];
        let p = &e.plan.placement;
        let mut states = self.node_states();
        if !p.nodes.is_empty() {
            return match p
                .nodes
                .iter()
                .find(|n| !states.iter().any(|s| &s.node_id == *n))
            {
                Some(missing) => Err(format!("node {missing} to connect")),
                None => Ok(p.nodes.clone()),
            };
        }
        let mut required: BTreeSet<String> = p.required_capabilities.iter().cloned().collect();
        required.extend(
            e.plan
                .tasks
                .iter()
                .map(|t| capability_for(&t.kind).to_string()),
        );
        let scenario = Scenario {
            scenario_id: id.to_string(),
            name: e.name.clone(),
            description: String::new(),
            test_type: "load_test".into(),
            parameters: serde_json::Value::Null,
            required_capabilities: required.iter().cloned().collect(),
            estimated_duration: e.duration(),
            resource_requirements: BTreeMap::new(),
            preferred_location: p.preferred_location.clone(),
        };
        let mut eligible: Vec<String> = placement::eligible(&scenario, &states)
            .into_iter()
            .map(|s| s.node_id.clone())
            .collect();
        if eligible.is_empty() {
            for s in &mut states {
                s.healthy = true;
            }
            eligible = placement::eligible(&scenario, &states)
                .into_iter()
                .map(|s| s.node_id.clone())
                .collect();
        }
        if eligible.is_empty() {
            let caps: Vec<&str> = required.iter().map(String::as_str).collect();
            return Err(format!(
                "a connected node with the capabilities [{}]",
                caps.join(", ")
            ));
        }
        let wanted = p.node_count.map_or(eligible.len(), |n| n as usize);
        if wanted > eligible.len() {
            return Err(format!(
                "{wanted} eligible nodes ({} connected now)",
                eligible.len()
            ));
        }
        if wanted == eligible.len() {
            return Ok(eligible);
        }
        // Pick one node at a time by the strategy, each pick counted as load on its node.
        let strategy = p
            .strategy
            .unwrap_or(self.settings.distribution.default_strategy);
        let seed = placement::seed_of(id);
        let mut pool: Vec<NodeState> = states
            .into_iter()
            .filter(|s| eligible.contains(&s.node_id))
            .collect();
        let mut chosen = Vec::new();
        for _ in 0..wanted {
            let plan = placement::place(&PlacementInput {
                scenarios: std::slice::from_ref(&scenario),
                nodes: &pool,
                strategy,
                weights: &self.settings.distribution.weights,
                seed,
                preferred_location: p.preferred_location.as_deref(),
            });
            let Some(a) = plan.assignments.first() else {
                break;
            };
            chosen.push(a.node_id.clone());
            pool.retain(|s| s.node_id != a.node_id);
        }
        chosen.sort();
        Ok(chosen)
    }

    /// What an execution reserves on `nodes`: the connections its tasks hold open there (each
    /// node's part of every task's `concurrent_users`), plus its declared requirements split
    /// evenly over the nodes.
    fn allocation_request(&self, id: &str, nodes: &[String]) -> AllocationRequest {
        let e = &self.executions[id];
        let n = nodes.len().max(1) as u32;
        let mut resources = Vec::new();
        for (slot, node) in nodes.iter().enumerate() {
            let connections: u32 = e
                .plan
                .tasks
                .iter()
                .map(|t| match &t.kind {
                    TaskKind::LoadTest(l) => {
                        let users = l.concurrent_users;
                        (users / n + u32::from((slot as u32) < users % n)).max(1)
                    }
                    // One request at a time, on the nodes that get a slice.
                    TaskKind::SecurityTest(spec) => u32::from(
                        slot < crate::task::security::distribute::node_count(spec, nodes.len()),
                    ),
                })
                .sum();
            resources.push(ResourceSpec {
                resource: "connections".into(),
                amount: f64::from(connections),
                unit: None,
                node_id: Some(node.clone()),
            });
            for (name, total) in &e.plan.placement.resource_requirements {
                resources.push(ResourceSpec {
                    resource: name.clone(),
                    amount: total / f64::from(n),
                    unit: None,
                    node_id: Some(node.clone()),
                });
            }
        }
        // Amounts too small for the pool to count are not asked for.
        resources.retain(|r| r.amount >= crate::resources::MIN_AMOUNT);
        AllocationRequest {
            allocation_id: Reservation::allocation_id(id),
            requester_id: id.to_string(),
            resources,
            priority: e.plan.placement.priority,
            queue: true,
            // Held until the execution ends, however long its group waits to start.
            confirm: true,
        }
    }

    /// Starts pending executions while there are nodes and free slots: each gets its nodes
    /// and a reservation first.
    pub(super) fn try_start(&mut self, ctx: &mut Context<Self>) {
        self.evict_finished();
        if !self.nodes.values().any(|n| n.up) {
            return;
        }
        let max = self.settings.orchestrator.max_concurrent_executions as usize;
        // Slots: running executions and pending ones that hold or await a reservation. One
        // still waiting for a node takes none, so it never blocks those behind it.
        let taken = self
            .executions
            .values()
            .filter(|e| {
                matches!(e.state, State::Planning | State::Running)
                    || e.stopping
                    || (e.state == State::Pending && e.reservation != Reservation::None)
            })
            .count();
        let mut free = max.saturating_sub(taken);
        let mut again = false;
        let pending: Vec<String> = self
            .order
            .iter()
            .filter(|id| {
                self.executions
                    .get(*id)
                    .is_some_and(|e| e.state == State::Pending)
            })
            .cloned()
            .collect();
        for id in pending {
            // A nested pass (a reservation answered at once) may have moved it on.
            let Some(e) = self
                .executions
                .get(&id)
                .filter(|e| e.state == State::Pending)
            else {
                continue;
            };
            match e.reservation.clone() {
                Reservation::None if free > 0 => match self.choose_nodes(&id) {
                    Ok(nodes) => {
                        free -= 1;
                        if let Some(e) = self.executions.get_mut(&id) {
                            e.waiting = None;
                        }
                        self.reserve(&id, nodes, ctx);
                    }
                    Err(what) => {
                        if let Some(e) = self.executions.get_mut(&id) {
                            e.waiting = Some(what);
                        }
                    }
                },
                Reservation::None | Reservation::Asked { .. } => {}
                Reservation::Granted { nodes } => {
                    if nodes
                        .iter()
                        .any(|n| !self.nodes.get(n).is_some_and(|e| e.up))
                    {
                        // A node it was granted on has gone: give it back, choose again.
                        tracing::info!(execution = %id, "a node of its reservation is gone; choosing again");
                        self.release(&id);
                        again = true;
                        continue;
                    }
                    match e.barrier.clone() {
                        None => self.start_execution(&id, &nodes, None, ctx),
                        Some((group, size)) => self.start_group_if_ready(&group, size, ctx),
                    }
                }
            }
        }
        if again {
            ctx.run_later(RETRY_START, |act, ctx| act.try_start(ctx));
        }
    }

    /// A member of a coordinated group ended before the group started: the others cannot
    /// start together any more, so they end too (and give their reservations back).
    pub(super) fn break_group(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some((group, _)) = self
            .executions
            .get(id)
            .filter(|e| e.started_at_ms.is_none())
            .and_then(|e| e.barrier.clone())
        else {
            return;
        };
        let others: Vec<String> = self
            .order
            .iter()
            .filter(|o| {
                self.executions.get(*o).is_some_and(|e| {
                    e.state == State::Pending
                        && e.barrier.as_ref().is_some_and(|(g, _)| *g == group)
                })
            })
            .cloned()
            .collect();
        for o in others {
            let reason = format!(
                "execution {id} of its coordinated group ended before the group could start"
            );
            self.set_state(&o, State::Cancelled, Some(reason), ctx);
        }
    }

    /// Starts every member of a coordinated group at one instant once all `size` of them
    /// hold their reservations.
    fn start_group_if_ready(&mut self, group: &str, size: usize, ctx: &mut Context<Self>) {
        let members: Vec<(String, Vec<String>)> = self
            .order
            .iter()
            .filter_map(|id| {
                let e = self.executions.get(id)?;
                let in_group = e.barrier.as_ref().is_some_and(|(g, _)| g == group);
                match (&e.reservation, e.state) {
                    (Reservation::Granted { nodes }, State::Pending) if in_group => {
                        Some((id.clone(), nodes.clone()))
                    }
                    _ => None,
                }
            })
            .collect();
        if members.len() < size {
            return;
        }
        let start = unix_ms() + START_DELAY.as_millis() as u64;
        tracing::info!(group, size, "coordinated executions starting together");
        for (id, nodes) in members {
            self.start_execution(&id, &nodes, Some(start), ctx);
        }
    }

    /// Asks the pool for an execution's resources on `nodes`.
    fn reserve(&mut self, id: &str, nodes: Vec<String>, ctx: &mut Context<Self>) {
        let Some(allocator) = self.registry.allocator.get() else {
            // No pool in this process: nothing to share, start at once.
            if let Some(e) = self.executions.get_mut(id) {
                e.reservation = Reservation::Granted { nodes };
            }
            self.try_start(ctx);
            return;
        };
        let request = self.allocation_request(id, &nodes);
        if let Some(e) = self.executions.get_mut(id) {
            e.reservation = Reservation::Asked {
                nodes: nodes.clone(),
                queued: false,
            };
        }
        let msg = Allocate {
            request,
            notify: Some(ctx.address().recipient()),
        };
        let id = id.to_string();
        ctx.spawn(
            allocator
                .send(msg)
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let Some(e) = act.executions.get_mut(&id) else {
                        return;
                    };
                    if e.state.is_terminal() && !e.stopping {
                        // Cancelled meanwhile: whatever the pool answered goes back.
                        act.release(&id);
                        return;
                    }
                    if e.state != State::Pending
                        || matches!(e.reservation, Reservation::Granted { .. })
                    {
                        // A grant event came before this answer (the pool freed room in
                        // between) and the execution may have started: nothing to change.
                        return;
                    }
                    match res {
                        Ok(Ok(Outcome::Granted(_))) => {
                            e.reservation = Reservation::Granted { nodes };
                            act.try_start(ctx);
                        }
                        Ok(Ok(Outcome::Queued { .. })) => {
                            e.reservation = Reservation::Asked {
                                nodes,
                                queued: true,
                            };
                        }
                        Ok(Err(AllocError::Duplicate(_))) => {
                            // Asked for by this orchestrator before it restarted: its events
                            // went to the old one. Give it back and ask again.
                            e.reservation = Reservation::None;
                            if let Some(allocator) = act.registry.allocator.get() {
                                allocator.do_send(Deallocate(Reservation::allocation_id(&id)));
                            }
                            act.try_start(ctx);
                        }
                        Ok(Err(why)) => {
                            e.reservation = Reservation::None;
                            let reason = format!("the resource pool refused it: {why}");
                            act.fail_execution(&id, reason, ctx);
                        }
                        Err(_) => {
                            tracing::warn!(execution = %id, "the resource pool did not answer; starting without a reservation");
                            e.reservation = Reservation::Granted { nodes };
                            act.try_start(ctx);
                        }
                    }
                }),
        );
    }

    /// Gives an execution's reservation back to the pool (or takes it out of its queue).
    /// Sent whatever this orchestrator remembers: one restored after a restart holds a grant
    /// it never asked for itself, and an unknown id costs the pool nothing.
    pub(super) fn release(&mut self, id: &str) {
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        e.reservation = Reservation::None;
        if let Some(allocator) = self.registry.allocator.get() {
            allocator.do_send(Deallocate(Reservation::allocation_id(id)));
        }
    }

    /// Plans an execution over `nodes` and hands its tasks out; all start at `start`
    /// (default: a moment from now, for the start message to reach every node).
    fn start_execution(
        &mut self,
        id: &str,
        nodes: &[String],
        start: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        self.set_state(id, State::Planning, None, ctx);
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let task_jsons = task_jsons(&e.request_json);
        let start = start.unwrap_or_else(|| unix_ms() + START_DELAY.as_millis() as u64);
        e.plan_over(nodes, start, task_jsons);
        let lead = Duration::from_millis(start.saturating_sub(unix_ms()));
        let watchdog = e.duration()
            + e.scan_slack()
            + self.settings.load_generation.drain_timeout
            + LAST_WINDOW_GRACE
            + lead;
        self.store_plan(id, ctx);
        self.set_state(id, State::Running, None, ctx);
        let e = &self.executions[id];
        let starts: Vec<(String, OrchMsg)> = e
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                let start = StartTask {
                    task: e.task_ref(i as u32),
                    task_json: t.task_json.clone(),
                    start_unix_ms: start,
                    shares: t.shares.clone(),
                };
                t.shares
                    .nodes
                    .iter()
                    .map(move |n| (n.clone(), OrchMsg::Start(Box::new(start.clone()))))
            })
            .collect();
        tracing::info!(execution = %id, nodes = nodes.len(), "execution starting");
        for (node, msg) in starts {
            self.send_to(&node, msg);
        }
        self.arm_watchdog(id, watchdog, ctx);
    }
}

impl Handler<GetNodeStates> for Orchestrator {
    type Result = MessageResult<GetNodeStates>;

    fn handle(&mut self, _: GetNodeStates, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.node_states())
    }
}

impl Handler<AllocationEvent> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: AllocationEvent, ctx: &mut Context<Self>) {
        let (allocation_id, granted) = match &msg {
            AllocationEvent::Granted(g) => (g.allocation_id.clone(), true),
            AllocationEvent::Expired { allocation_id }
            | AllocationEvent::Released { allocation_id, .. } => (allocation_id.clone(), false),
        };
        let Some(id) = allocation_id.strip_prefix("execution:").map(String::from) else {
            return;
        };
        let Some(e) = self.executions.get_mut(&id) else {
            return;
        };
        if e.state != State::Pending {
            if granted {
                self.release(&id);
            }
            return;
        }
        let nodes = match &e.reservation {
            Reservation::Asked { nodes, .. } | Reservation::Granted { nodes } => nodes.clone(),
            Reservation::None => return,
        };
        if granted {
            e.reservation = Reservation::Granted { nodes };
        } else {
            // Its grant lapsed before it started (a coordinated group waited too long), or
            // it waited in the queue past allocation_timeout: ask again from scratch.
            tracing::info!(execution = %id, event = ?msg, "reservation lapsed; asking again");
            e.reservation = Reservation::None;
        }
        self.try_start(ctx);
    }
}
