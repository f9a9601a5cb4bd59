//! How the orchestrator starts executions: it chooses their nodes with a placement strategy,
//! reserves what they need in the resource pool, holds the members of a coordinated group
//! until all of them hold their resources, then hands the tasks out with one start time.
//! Also what it knows of each node for placement: capabilities, location, capacity, health,
//! and the node's record (how its recent windows went).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::prelude::*;

use super::{LAST_WINDOW_GRACE, Orchestrator, START_DELAY};
use crate::clock::unix_ms;
use crate::execution::admission::{self, NodeChoice};
use crate::execution::{Phase, Reservation, State};
use crate::messages::cluster::GetNodeStates;
use crate::messages::resources::{Allocate, AllocationEvent, Deallocate, SetNodeCapacity};
use crate::messages::wire::{OrchMsg, StartTask};
use crate::placement::{NodeRecord, NodeState};
use crate::resources::{AllocError, Outcome};
use crate::stats::Window;

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
    /// Why its latest report is critical ([`HealthReport::why_critical`]).
    ///
    /// [`HealthReport::why_critical`]: crate::health::HealthReport::why_critical
    pub why_critical: Option<String>,
    pub record: NodeRecord,
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
            .map(|(id, e)| self.node_state(id, &e.facts))
            .collect()
    }

    fn node_state(&self, id: &str, facts: &NodeFacts) -> NodeState {
        // A node whose health is not known yet (its first report was slower than its join)
        // is not chosen until it is: it may be critical.
        let healthy = facts.health.is_some_and(|h| h.1);
        NodeState {
            node_id: id.to_string(),
            capabilities: facts.capabilities.clone(),
            location: facts.location.clone(),
            capacity: facts.capacity.clone(),
            allocated: BTreeMap::new(),
            health_score: facts.health.map_or(0.0, |h| h.0),
            healthy,
            unhealthy: (!healthy).then(|| match (&facts.health, &facts.why_critical) {
                (None, _) => "waiting for its first health report".into(),
                (Some(_), Some(why)) => why.clone(),
                (Some(_), None) => "critical".into(),
            }),
            active_tasks: self.active_tasks(id),
            record: facts.record,
        }
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
            .filter(|e| e.phase.is_live())
            .flat_map(|e| e.tasks.iter())
            .filter(|t| t.shares.slot(node).is_some())
            .count() as u32
    }

    /// The nodes execution `id` runs on, of the connected ones (see
    /// [`admission::choose_nodes`]); `Err` says what it waits for.
    fn choose_nodes(&self, id: &str) -> Result<Vec<String>, String> {
        let e = &self.executions[id];
        admission::choose_nodes(NodeChoice {
            execution_id: id,
            name: &e.name,
            plan: &e.plan,
            duration: e.duration(),
            nodes: self.node_states(),
            default_strategy: self.settings.distribution.default_strategy,
            weights: &self.settings.distribution.weights,
        })
    }

    /// Starts pending executions while there are nodes and free slots: each gets its nodes
    /// and a reservation first.
    pub(super) fn try_start(&mut self, ctx: &mut Context<Self>) {
        self.evict_finished();
        if !self.nodes.values().any(|n| n.up) {
            return;
        }
        let max = self.settings.orchestrator.max_concurrent_executions as usize;
        let mut free = admission::free_slots(max, self.executions.values().map(|e| &e.phase));
        let mut again = false;
        let pending: Vec<String> = self
            .order
            .iter()
            .filter(|id| {
                self.executions
                    .get(*id)
                    .is_some_and(|e| e.state() == State::Pending)
            })
            .cloned()
            .collect();
        for id in pending {
            // A nested pass (a reservation answered at once) may have moved it on.
            let Some(e) = self
                .executions
                .get(&id)
                .filter(|e| e.state() == State::Pending)
            else {
                continue;
            };
            match e.phase.reservation().cloned().unwrap_or(Reservation::None) {
                Reservation::None if free > 0 => match self.choose_nodes(&id) {
                    Ok(nodes) => {
                        free -= 1;
                        if let Some(e) = self.executions.get_mut(&id) {
                            e.set_waiting(None);
                        }
                        self.reserve(&id, nodes, ctx);
                    }
                    Err(what) => {
                        if let Some(e) = self.executions.get_mut(&id) {
                            e.set_waiting(Some(what));
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
                    e.state() == State::Pending
                        && e.barrier.as_ref().is_some_and(|(g, _)| *g == group)
                })
            })
            .cloned()
            .collect();
        for o in others {
            let reason = format!(
                "execution {id} of its coordinated group ended before the group could start"
            );
            let ended = Phase::Ended {
                state: State::Cancelled,
                halt: None,
            };
            self.set_phase(&o, ended, Some(reason), ctx);
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
                match e.phase.reservation() {
                    Some(Reservation::Granted { nodes }) if in_group => {
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
                e.set_reservation(Reservation::Granted { nodes });
            }
            self.try_start(ctx);
            return;
        };
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let request = admission::allocation_request(id, &e.plan, &nodes);
        e.set_reservation(Reservation::Asked {
            nodes: nodes.clone(),
            queued: false,
        });
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
                    if e.phase.is_ended() {
                        // Cancelled meanwhile: whatever the pool answered goes back.
                        act.release(&id);
                        return;
                    }
                    if !matches!(
                        e.phase.reservation(),
                        Some(Reservation::None | Reservation::Asked { .. })
                    ) {
                        // A grant event came before this answer (the pool freed room in
                        // between) and the execution may have started: nothing to change.
                        return;
                    }
                    match res {
                        Ok(Ok(Outcome::Granted(_))) => {
                            e.set_reservation(Reservation::Granted { nodes });
                            act.try_start(ctx);
                        }
                        Ok(Ok(Outcome::Queued { .. })) => {
                            e.set_reservation(Reservation::Asked {
                                nodes,
                                queued: true,
                            });
                        }
                        Ok(Err(AllocError::Duplicate(_))) => {
                            // Asked for by this orchestrator before it restarted: its events
                            // went to the old one. Give it back and ask again.
                            e.set_reservation(Reservation::None);
                            if let Some(allocator) = act.registry.allocator.get() {
                                allocator.do_send(Deallocate(Reservation::allocation_id(&id)));
                            }
                            act.try_start(ctx);
                        }
                        Ok(Err(why)) => {
                            e.set_reservation(Reservation::None);
                            let reason = format!("the resource pool refused it: {why}");
                            act.fail_execution(&id, reason, ctx);
                        }
                        Err(_) => {
                            tracing::warn!(execution = %id, "the resource pool did not answer; starting without a reservation");
                            e.set_reservation(Reservation::Granted { nodes });
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
        e.set_reservation(Reservation::None);
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
        self.set_phase(id, Phase::Planning, None, ctx);
        let Some(e) = self.executions.get_mut(id) else {
            return;
        };
        let start = start.unwrap_or_else(|| unix_ms() + START_DELAY.as_millis() as u64);
        e.plan_over(nodes, start);
        let lead = Duration::from_millis(start.saturating_sub(unix_ms()));
        let watchdog = e.duration()
            + e.slack()
            + self.settings.load_generation.drain_timeout
            + LAST_WINDOW_GRACE
            + lead;
        self.store_plan(id, ctx);
        self.set_phase(id, Phase::Running, None, ctx);
        let e = &self.executions[id];
        let starts: Vec<(String, OrchMsg)> = e
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                let start = StartTask {
                    task: e.task_ref(i as u32),
                    spec: e.plan.tasks[i].clone(),
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
        // The known nodes that are not connected too: never chosen, but named (`unreachable`)
        // when placement says why a scenario fits nowhere.
        let down = self
            .nodes
            .iter()
            .filter(|(_, e)| !e.up)
            .map(|(id, e)| NodeState {
                healthy: false,
                unhealthy: Some("unreachable".into()),
                ..self.node_state(id, &e.facts)
            });
        MessageResult(self.node_states().into_iter().chain(down).collect())
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
        if e.state() != State::Pending {
            if granted {
                self.release(&id);
            }
            return;
        }
        let nodes = match e.phase.reservation() {
            Some(Reservation::Asked { nodes, .. } | Reservation::Granted { nodes }) => {
                nodes.clone()
            }
            _ => return,
        };
        if granted {
            e.set_reservation(Reservation::Granted { nodes });
        } else {
            // Its grant lapsed before it started (a coordinated group waited too long), or
            // it waited in the queue past allocation_timeout: ask again from scratch.
            tracing::info!(execution = %id, event = ?msg, "reservation lapsed; asking again");
            e.set_reservation(Reservation::None);
        }
        self.try_start(ctx);
    }
}
