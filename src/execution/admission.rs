//! Pure decisions of the orchestrator before an execution starts: how many more executions
//! may start (admission), which nodes one runs on (placement input), and what it reserves in
//! the resource pool (allocation request). Property-tested in `tests/admission_properties.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Phase, Reservation};
use crate::placement::{self, NodeState, PlacementInput, Scenario, Strategy, Weights};
use crate::resources::{AllocationRequest, ResourceSpec};
use crate::task::TestPlan;
use crate::task::work::Work;

/// Whether an execution in `phase` takes one of the `max_concurrent_executions` slots: running
/// ones (stopping included) and pending ones that hold or await a reservation. One still
/// waiting for a node takes none, so it never blocks those behind it.
pub fn takes_slot(phase: &Phase) -> bool {
    match phase {
        Phase::Planning | Phase::Running | Phase::Stopping(_) => true,
        Phase::Pending { reservation, .. } => *reservation != Reservation::None,
        Phase::Ended { .. } => false,
    }
}

/// How many more executions may be given nodes, of `max` slots, with executions in `phases`.
pub fn free_slots<'a>(max: usize, phases: impl IntoIterator<Item = &'a Phase>) -> usize {
    let taken = phases.into_iter().filter(|p| takes_slot(p)).count();
    max.saturating_sub(taken)
}

/// What choosing an execution's nodes looks at.
pub struct NodeChoice<'a> {
    pub execution_id: &'a str,
    pub name: &'a str,
    pub plan: &'a TestPlan,
    /// Its planned duration.
    pub duration: Duration,
    /// The connected nodes.
    pub nodes: Vec<NodeState>,
    /// The strategy when the plan names none.
    pub default_strategy: Strategy,
    pub weights: &'a Weights,
}

/// The capabilities an execution's nodes need: its plan's required ones and each task's.
pub fn required_capabilities(plan: &TestPlan) -> BTreeSet<String> {
    let mut required: BTreeSet<String> = plan
        .placement
        .required_capabilities
        .iter()
        .cloned()
        .collect();
    required.extend(
        plan.tasks
            .iter()
            .map(|t| Work::capability(&t.kind).to_string()),
    );
    required
}

/// The nodes an execution runs on: its pinned ones, or the eligible ones (capabilities met; a
/// critical node only when no other is eligible), narrowed to `node_count` by the strategy.
/// `Err` says what it waits for.
pub fn choose_nodes(mut c: NodeChoice) -> Result<Vec<String>, String> {
    let p = &c.plan.placement;
    if !p.nodes.is_empty() {
        return match p
            .nodes
            .iter()
            .find(|n| !c.nodes.iter().any(|s| &s.node_id == *n))
        {
            Some(missing) => Err(format!("node {missing} to connect")),
            None => Ok(p.nodes.clone()),
        };
    }
    let required = required_capabilities(c.plan);
    let scenario = Scenario {
        scenario_id: c.execution_id.to_string(),
        name: c.name.to_string(),
        description: String::new(),
        test_type: "load_test".into(),
        parameters: serde_json::Value::Null,
        required_capabilities: required.iter().cloned().collect(),
        estimated_duration: c.duration,
        resource_requirements: BTreeMap::new(),
        preferred_location: p.preferred_location.clone(),
    };
    let eligible = eligible(&scenario, &mut c.nodes);
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
    let pool: Vec<NodeState> = c
        .nodes
        .into_iter()
        .filter(|s| eligible.contains(&s.node_id))
        .collect();
    let strategy = p.strategy.unwrap_or(c.default_strategy);
    Ok(pick(&scenario, pool, wanted, strategy, c.weights))
}

/// The nodes eligible for `scenario`. When none is, the critical ones are given another
/// chance: every node is taken as healthy (in `nodes` too, for the strategy's picks).
fn eligible(scenario: &Scenario, nodes: &mut [NodeState]) -> Vec<String> {
    let ids = |nodes: &[NodeState]| -> Vec<String> {
        placement::eligible(scenario, nodes)
            .into_iter()
            .map(|s| s.node_id.clone())
            .collect()
    };
    let found = ids(nodes);
    if !found.is_empty() {
        return found;
    }
    for s in nodes.iter_mut() {
        s.healthy = true;
    }
    ids(nodes)
}

/// Picks `wanted` nodes of `pool` one at a time by the strategy, each pick counted as load on
/// its node; sorted.
fn pick(
    scenario: &Scenario,
    mut pool: Vec<NodeState>,
    wanted: usize,
    strategy: Strategy,
    weights: &Weights,
) -> Vec<String> {
    let seed = placement::seed_of(&scenario.scenario_id);
    let mut chosen = Vec::new();
    for _ in 0..wanted {
        let plan = placement::place(&PlacementInput {
            scenarios: std::slice::from_ref(scenario),
            nodes: &pool,
            strategy,
            weights,
            seed,
            preferred_location: scenario.preferred_location.as_deref(),
        });
        let Some(a) = plan.assignments.first() else {
            break;
        };
        chosen.push(a.node_id.clone());
        pool.retain(|s| s.node_id != a.node_id);
    }
    chosen.sort();
    chosen
}

/// What execution `id` reserves on `nodes`: the connections its tasks hold open there (each
/// node's part of every task's `concurrent_users`), plus its declared requirements split
/// evenly over the nodes. Amounts too small for the pool to count are not asked for.
pub fn allocation_request(id: &str, plan: &TestPlan, nodes: &[String]) -> AllocationRequest {
    let n = nodes.len().max(1) as u32;
    let mut resources = Vec::new();
    for (slot, node) in nodes.iter().enumerate() {
        let connections: u32 = plan
            .tasks
            .iter()
            .map(|t| Work::connections(&t.kind, slot, nodes.len()))
            .sum();
        resources.push(ResourceSpec {
            resource: "connections".into(),
            amount: f64::from(connections),
            unit: None,
            node_id: Some(node.clone()),
        });
        for (name, total) in &plan.placement.resource_requirements {
            resources.push(ResourceSpec {
                resource: name.clone(),
                amount: total / f64::from(n),
                unit: None,
                node_id: Some(node.clone()),
            });
        }
    }
    resources.retain(|r| r.amount >= crate::resources::MIN_AMOUNT);
    AllocationRequest {
        allocation_id: Reservation::allocation_id(id),
        requester_id: id.to_string(),
        resources,
        priority: plan.placement.priority,
        queue: true,
        // Held until the execution ends, however long its group waits to start.
        confirm: true,
    }
}
