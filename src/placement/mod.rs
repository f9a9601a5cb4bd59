//! Placement: which node runs which scenario. Plain data in, a plan out, no actors: the
//! distributor gathers [`NodeState`]s (capabilities and capacity from discovery, reservations
//! from the resource pool, health from the monitor, the record from past metric windows) and
//! calls [`place`].
//!
//! Hard constraints, kept by every strategy:
//! - a scenario goes only to a healthy node that has every one of its `required_capabilities`;
//! - on every node and for every resource, `allocated` plus the requirements of the scenarios
//!   this plan puts there never exceeds `capacity` (a resource the node does not list has
//!   capacity 0, so a scenario needing it does not fit there);
//! - a scenario that fits nowhere is listed in [`Placement::unplaced`] with the reason (which
//!   capability no healthy node has, or which resource is short and by how much, naming the
//!   nodes left out for their health that could have taken it and why); the others still
//!   place;
//! - the plan is deterministic: the same input and seed give the same plan. The seed only
//!   breaks ties (each node gets a seeded tie rank, and round-robin starts at a seeded offset);
//!   nodes are taken in `node_id` order, so the order of the `nodes` slice does not matter.
//!   A node id listed twice counts once (its first entry).
//!
//! Scenarios are placed one by one, in the order given, each onto the best eligible node by the
//! strategy's soft preference; each choice sees what the plan already placed. The load of a
//! node is `(utilization, tasks)` compared in that order: `utilization` is the highest
//! `(allocated + placed) / capacity` over the resources the node lists, `tasks` its
//! `active_tasks` plus the scenarios placed on it so far.
//! - `round_robin`: cycles over the nodes in `node_id` order from an offset given by the seed,
//!   skipping those the scenario does not fit; with ample room on every node the counts differ
//!   by at most one.
//! - `least_loaded`: the eligible node with the lowest load.
//! - `capability_based`: the eligible node with the fewest capabilities (the tightest match,
//!   so specialised nodes take specialised work and general nodes stay free), then the least
//!   loaded.
//! - `locality_aware`: a node whose `location` equals the preferred location (the scenario's,
//!   else the request's), then one in the same region ([`region`]: `us-west-1` and `us-west-2`
//!   share `us-west`), then the least loaded.
//! - `weighted_scoring`: the highest `capacity·free + load·(1 - load) + health·score/100 +
//!   locality·match + performance·record`, see [`Weights`]; ties go to the least loaded.
//! - `adaptive`: the highest `max(record_score, 0.01) / (1 + tasks)`, so a node with a better
//!   [`record_score`] takes proportionally more work while the load still spreads (with equal
//!   records it spreads like `least_loaded`); ties go to the least loaded.

mod form;
mod table;
#[cfg(test)]
mod tests;
mod unhealthy;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use form::check_workload;
use table::{Key, Table};

/// What the distributor knows of one node when it plans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub node_id: String,
    pub capabilities: BTreeSet<String>,
    /// Free-form zone or region such as `us-west-1`; empty when unknown.
    pub location: String,
    /// Resource name to total: `cpu` cores, `memory` bytes, `disk` bytes, `network` Mbit/s,
    /// `connections`, or custom names.
    pub capacity: BTreeMap<String, f64>,
    /// Already reserved on the node by the resource pool.
    pub allocated: BTreeMap<String, f64>,
    /// 0 to 100.
    pub health_score: f64,
    /// An unhealthy node is never chosen.
    pub healthy: bool,
    /// Why an unhealthy node is, for the reasons of scenarios it could have taken, e.g.
    /// `critical (disk: disk use 96.2% is at or past the critical threshold 95%)` or
    /// `unreachable`: read as `<node_id> is <unhealthy>`. `None` reads as `unhealthy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy: Option<String>,
    /// Tasks running on the node now.
    pub active_tasks: u32,
    pub record: NodeRecord,
}

/// A node's observed record from its metric windows (the caller keeps the moving averages).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Windows seen; 0 means no record yet, which scores [`NEUTRAL_RECORD`].
    pub windows: u64,
    /// Requests sent over requests planned; 1.0 when the node kept up.
    pub achieved_ratio: f64,
    /// 0 to 1.
    pub error_rate: f64,
    pub p99_ms: f64,
}

/// One test scenario of a workload, with the spec's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub scenario_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// One of [`TEST_TYPES`].
    pub test_type: String,
    /// A mapping; absent reads as `{}`.
    #[serde(default = "form::empty_object")]
    pub parameters: serde_json::Value,
    #[serde(default)]
    pub required_capabilities: Vec<String>,
    /// Seconds (`1800`) or a string with a unit (`"30m"`); written back as seconds.
    #[serde(default, with = "form::seconds")]
    pub estimated_duration: Duration,
    /// Resource name to amount, in the units of [`NodeState::capacity`].
    #[serde(default)]
    pub resource_requirements: BTreeMap<String, f64>,
    #[serde(default)]
    pub preferred_location: Option<String>,
}

/// The scenario test types the spec names.
pub const TEST_TYPES: [&str; 4] = [
    "load_test",
    "stress_test",
    "performance_test",
    "security_test",
];

/// The six distribution strategies; see the module documentation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    LeastLoaded,
    CapabilityBased,
    LocalityAware,
    WeightedScoring,
    Adaptive,
}

impl Strategy {
    pub const ALL: [Strategy; 6] = [
        Strategy::RoundRobin,
        Strategy::LeastLoaded,
        Strategy::CapabilityBased,
        Strategy::LocalityAware,
        Strategy::WeightedScoring,
        Strategy::Adaptive,
    ];

    /// The snake_case name used in requests and settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLoaded => "least_loaded",
            Strategy::CapabilityBased => "capability_based",
            Strategy::LocalityAware => "locality_aware",
            Strategy::WeightedScoring => "weighted_scoring",
            Strategy::Adaptive => "adaptive",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of the six.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown strategy {0:?}: expected one of round_robin, least_loaded, capability_based, locality_aware, weighted_scoring, adaptive"
)]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// The terms of `weighted_scoring`, each multiplying a value in 0..=1:
/// - `capacity`: the node's free fraction, the mean over the resources it lists of
///   `free / capacity`;
/// - `load`: `1 - load`, with `load = max(utilization, tasks / (most tasks on any node + 1))`,
///   so busy nodes lose whether the work is measured in resources or in tasks;
/// - `health`: `health_score / 100`;
/// - `locality`: 1 when the node's location is the preferred one, 0.5 in the same region, else 0;
/// - `performance`: [`record_score`].
///
/// The default (0.25, 0.25, 0.2, 0.15, 0.15) sums to 1 and favours room and spread, with health,
/// locality and record as tie-breakers of weight. Weights must be finite and not negative.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub capacity: f64,
    pub load: f64,
    pub health: f64,
    pub locality: f64,
    pub performance: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            capacity: 0.25,
            load: 0.25,
            health: 0.2,
            locality: 0.15,
            performance: 0.15,
        }
    }
}

/// What [`place`] plans from.
#[derive(Debug, Clone, Copy)]
pub struct PlacementInput<'a> {
    pub scenarios: &'a [Scenario],
    pub nodes: &'a [NodeState],
    pub strategy: Strategy,
    pub weights: &'a Weights,
    /// Breaks ties only.
    pub seed: u64,
    /// The request's preferred location, for scenarios that name none.
    pub preferred_location: Option<&'a str>,
}

/// A plan: every scenario appears exactly once, in `assignments` or in `unplaced`, each list
/// in the order of the input scenarios.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub assignments: Vec<Assignment>,
    pub unplaced: Vec<Unplaced>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub scenario_id: String,
    pub node_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unplaced {
    pub scenario_id: String,
    /// What was missing, e.g. `capability "gpu" on no healthy node: gpu_1 has it but is
    /// critical (memory: ...)`, `no healthy node: web_1 is critical (disk: ...), and 2 more` or
    /// `resource "cpu" short: needed 8, most free 4`.
    pub reason: String,
}

/// A placement seed from a name (a workload's or an execution's id), so the same name places
/// the same way every time (FNV-1a).
pub fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The score of a node with no record yet: midway, so an unknown node takes about half the
/// share of a perfect one under `adaptive`.
pub const NEUTRAL_RECORD: f64 = 0.5;

/// The p99 at which the latency factor of [`record_score`] halves.
pub const P99_HALF_MS: f64 = 1000.0;

/// How well a node has done, 0..=1 with 1 the best: `kept · (1 - errors) · 1 / (1 + p99 /
/// 1000 ms)`, where `kept` is the achieved ratio capped at 1. Each factor only falls as its
/// measure gets worse (a missing or NaN measure counts as the worst). A node with no windows
/// scores [`NEUTRAL_RECORD`].
pub fn record_score(r: &NodeRecord) -> f64 {
    if r.windows == 0 {
        return NEUTRAL_RECORD;
    }
    let kept = if r.achieved_ratio.is_nan() {
        0.0
    } else {
        r.achieved_ratio.clamp(0.0, 1.0)
    };
    let ok = if r.error_rate.is_nan() {
        0.0
    } else {
        1.0 - r.error_rate.clamp(0.0, 1.0)
    };
    let p99 = if r.p99_ms.is_nan() {
        f64::INFINITY
    } else {
        r.p99_ms.max(0.0)
    };
    kept * ok / (1.0 + p99 / P99_HALF_MS)
}

/// The region of a location: the part before its last `-` or `/` (`us-west-1` is in
/// `us-west`, `eu/paris/dc2` in `eu/paris`); a location without either is its own region.
pub fn region(location: &str) -> &str {
    match location.rfind(['-', '/']) {
        Some(i) if i > 0 => &location[..i],
        _ => location,
    }
}

/// The nodes `scenario` may go to before anything is placed: healthy, holding every required
/// capability, with room for every required resource. In the order of `nodes`.
pub fn eligible<'n>(scenario: &Scenario, nodes: &'n [NodeState]) -> Vec<&'n NodeState> {
    nodes
        .iter()
        .filter(|n| {
            n.healthy
                && scenario
                    .required_capabilities
                    .iter()
                    .all(|c| n.capabilities.contains(c))
                && scenario
                    .resource_requirements
                    .iter()
                    .filter(|(_, need)| table::needed(**need))
                    .all(|(r, need)| {
                        let cap = table::capacity_of(n.capacity.get(r).copied());
                        let used = table::allocated_of(n.allocated.get(r).copied());
                        used + need <= cap
                    })
        })
        .collect()
}

/// Plans every scenario of `input` onto nodes by its strategy; see the module documentation.
pub fn place(input: &PlacementInput) -> Placement {
    let mut table = Table::new(input.scenarios, input.nodes, input.seed);
    let mut plan = Placement::default();
    let mut cursor = table.start_offset(input.seed);
    for scenario in input.scenarios {
        let need = table.need(scenario, input.preferred_location);
        let chosen = match input.strategy {
            Strategy::RoundRobin => table.next_from(&mut cursor, &need),
            Strategy::LeastLoaded => table.pick(&need, |t, c| Key(0, 0.0, t.load_key(c))),
            Strategy::CapabilityBased => {
                table.pick(&need, |t, c| Key(t.cap_count(c), 0.0, t.load_key(c)))
            }
            Strategy::LocalityAware => table.pick(&need, |t, c| {
                Key(2 - t.locality_rank(c, &need), 0.0, t.load_key(c))
            }),
            Strategy::WeightedScoring => table.pick(&need, |t, c| {
                Key(0, -t.weighted_score(c, &need, input.weights), t.load_key(c))
            }),
            Strategy::Adaptive => {
                table.pick(&need, |t, c| Key(0, -t.adaptive_value(c), t.load_key(c)))
            }
        };
        match chosen {
            Some(c) => {
                table.commit(c, &need);
                plan.assignments.push(Assignment {
                    scenario_id: scenario.scenario_id.clone(),
                    node_id: table.node_id(c).to_string(),
                });
            }
            None => plan.unplaced.push(Unplaced {
                scenario_id: scenario.scenario_id.clone(),
                reason: table.diagnose(scenario, &need),
            }),
        }
    }
    plan
}
