//! The cluster's resource pool (DESIGN §3 `resources`): each node's capacity, allocations
//! granted all-or-nothing across the nodes, confirmation, expiry, release and a priority
//! queue. Plain data, no actors; time is passed in as an `Instant`, so tests control it. The
//! `ResourceAllocator` actor owns one [`Ledger`].
//!
//! # Resources
//! Named by string, case-insensitive (kept lowercase). Well known: `cpu` (cores), `memory`
//! (bytes), `disk` (bytes), `network` (mbps), `connections` (requests in flight); any other
//! name is a custom resource, counted in whatever unit its capacity was given in. A spec may
//! name a unit for a well-known resource (`GiB`, `millicores`, `gbps`, ...): the amount is
//! converted to the resource's base unit. Amounts are kept exactly in millionths of the base
//! unit, so capacity checks never suffer rounding.
//!
//! # Granting
//! A request is a list of specs. A spec with a `node_id` takes its amount from that node; the
//! others may be split across nodes, greedily from the node with the most free (ties by node
//! id), so an amount that fits on one node is put on one node. Either every spec is granted or
//! nothing changes. A node whose capacity shrank below its grants keeps them, but gets nothing
//! new of that resource until its usage is under its capacity again.
//!
//! A grant is unconfirmed until its owner confirms it (or asked for it confirmed); an
//! unconfirmed grant older than `allocation_timeout` is released. A node that leaves releases
//! every grant with a portion on it, whole, and tells which.
//!
//! # Priority rule: queueing, no preemption
//! A granted allocation is never taken back for a higher priority: load tests in flight must
//! not be cut. Waiting requests are ordered by priority (higher first), then by arrival.
//! - A new request is granted at once only if it fits and no waiting request has a priority
//!   greater than or equal to its own.
//! - Otherwise, with `queue: true` it waits in that order; with `queue: false` it is refused:
//!   [`AllocError::Insufficient`] with what was short, or [`AllocError::Blocked`] when it would
//!   fit but others wait ahead of it.
//! - Whenever capacity frees (release, expiry, a node's capacity growing), the queue is served
//!   from its head while the head fits, and stops at the first that does not (strict order: a
//!   large high-priority request is not starved by small ones behind it).
//! - A request larger than the pool's total capacity is refused at once
//!   ([`AllocError::NeverFits`]) even with `queue`; a waiting request that capacity changes make
//!   impossible is dropped. A request that waits longer than `allocation_timeout` is dropped.

mod ledger;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

pub use ledger::Ledger;

/// Amounts are kept in millionths of the base unit.
const SCALE: f64 = 1_000_000.0;
/// The largest amount or capacity of one resource (1 EB of memory).
pub const MAX_AMOUNT: f64 = 1e18;
/// The smallest amount a spec may ask (one millionth of the base unit).
pub const MIN_AMOUNT: f64 = 1e-6;
/// The most specs in one request.
pub const MAX_SPECS: usize = 4096;
/// The longest id or name.
pub const MAX_ID_LEN: usize = 256;
/// The most requests that may wait at once.
pub const MAX_QUEUED: usize = 10_000;

/// The resources every node reports, in their base units.
pub const WELL_KNOWN: [(&str, &str); 5] = [
    ("cpu", "cores"),
    ("memory", "bytes"),
    ("disk", "bytes"),
    ("network", "mbps"),
    ("connections", "requests"),
];

/// An amount in millionths of its base unit.
pub(crate) type Units = u128;

pub(crate) fn to_units(x: f64) -> Units {
    (x * SCALE).round() as Units
}

pub(crate) fn from_units(u: Units) -> f64 {
    u as f64 / SCALE
}

/// An amount of one resource, asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResourceSpec {
    pub resource: String,
    pub amount: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Pins the amount to this node; otherwise it may be split across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

impl ResourceSpec {
    /// An amount in the base unit, anywhere in the cluster.
    pub fn new(resource: impl Into<String>, amount: f64) -> Self {
        ResourceSpec {
            resource: resource.into(),
            amount,
            unit: None,
            node_id: None,
        }
    }

    /// The same amount, pinned to one node.
    pub fn on(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = Some(node_id.into());
        self
    }
}

/// A request for resources, granted whole or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationRequest {
    pub allocation_id: String,
    pub requester_id: String,
    pub resources: Vec<ResourceSpec>,
    /// Higher first; 0 by default.
    #[serde(default)]
    pub priority: i32,
    /// Wait for capacity instead of being refused.
    #[serde(default)]
    pub queue: bool,
    /// Grant it confirmed (it then never expires; it ends on deallocation).
    #[serde(default)]
    pub confirm: bool,
}

impl AllocationRequest {
    /// Priority 0, not queued, unconfirmed.
    pub fn new(
        allocation_id: impl Into<String>,
        requester_id: impl Into<String>,
        resources: Vec<ResourceSpec>,
    ) -> Self {
        AllocationRequest {
            allocation_id: allocation_id.into(),
            requester_id: requester_id.into(),
            resources,
            priority: 0,
            queue: false,
            confirm: false,
        }
    }
}

/// A part of a grant: an amount of one resource on one node, in the base unit.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Portion {
    pub node_id: String,
    pub resource: String,
    pub amount: f64,
}

/// A granted allocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    pub allocation_id: String,
    pub requester_id: String,
    pub priority: i32,
    /// Sorted by node, then resource; one portion per node and resource.
    pub portions: Vec<Portion>,
    pub confirmed: bool,
    #[serde(skip)]
    pub granted_at: Instant,
}

/// What became of an accepted request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Granted(Grant),
    /// Waiting; `position` requests wait ahead of it (0: it is next).
    Queued {
        position: usize,
    },
}

/// What was short for a request: of one resource on one node (`node_id`), or in the whole
/// pool (`node_id` absent). `available` is free now (for a request that can never fit: the
/// capacity), `total` the capacity.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Shortage {
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    pub requested: f64,
    pub available: f64,
    pub total: f64,
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: requested {}, available {} of {}",
            self.resource, self.requested, self.available, self.total
        )?;
        if let Some(n) = &self.node_id {
            write!(f, " on node {n}")?;
        }
        Ok(())
    }
}

fn list(shortages: &[Shortage]) -> String {
    let parts: Vec<String> = shortages.iter().map(|s| s.to_string()).collect();
    parts.join("; ")
}

/// Why a request was refused. A refused request changes nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllocError {
    #[error("invalid allocation request: {0}")]
    Invalid(FieldErrors),
    #[error("allocation {0} exists already")]
    Duplicate(String),
    #[error("insufficient resources: {}", list(.shortages))]
    Insufficient { shortages: Vec<Shortage> },
    #[error("the request exceeds the pool's total capacity: {}", list(.shortages))]
    NeverFits { shortages: Vec<Shortage> },
    #[error(
        "{ahead} waiting requests of higher or equal priority come first; ask with queue to wait"
    )]
    Blocked { ahead: usize },
    #[error("{limit} requests are waiting already")]
    QueueFull { limit: usize },
}

/// An allocation id the ledger does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allocation {0} not found")]
pub struct UnknownAllocation(pub String);

/// Whether a confirmed allocation was granted or still waits (it is then granted confirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmed {
    Granted,
    Queued,
}

/// What a deallocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    Grant(Grant),
    /// A waiting request, cancelled.
    Queued {
        allocation_id: String,
    },
}

/// Why an allocation ended without its owner asking.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EndReason {
    /// Granted and not confirmed within `allocation_timeout`.
    Expired,
    /// Waited longer than `allocation_timeout`.
    QueueTimeout,
    /// A node it had a portion on left the pool.
    NodeRemoved { node_id: String },
    /// Waiting, and capacity changes made it impossible.
    NeverFits { shortages: Vec<Shortage> },
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Expired => write!(f, "not confirmed in time"),
            EndReason::QueueTimeout => write!(f, "waited longer than the allocation timeout"),
            EndReason::NodeRemoved { node_id } => write!(f, "node {node_id} left the pool"),
            EndReason::NeverFits { shortages } => {
                write!(f, "can no longer fit: {}", list(shortages))
            }
        }
    }
}

/// An allocation, granted or waiting, that ended without its owner asking.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub allocation_id: String,
    pub requester_id: String,
    pub reason: EndReason,
}

/// What a change did besides itself: waiting requests granted (in order) and allocations ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub granted: Vec<Grant>,
    pub ended: Vec<Ended>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty() && self.ended.is_empty()
    }

    fn extend(&mut self, other: Effects) {
        self.granted.extend(other.granted);
        self.ended.extend(other.ended);
    }
}

/// One node's capacity and what is allocated on it, per resource, in base units.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeUsage {
    pub node_id: String,
    pub capacity: BTreeMap<String, f64>,
    pub allocated: BTreeMap<String, f64>,
}

/// One resource over the whole pool. `available_capacity` is what could be granted now: the
/// sum of each node's free amount (a node over its capacity adds nothing), so it may be less
/// than `total - allocated`. `utilization_percent` is `allocated / total × 100` (above 100
/// after a capacity shrank below its grants; 100 when nothing is left of a resource still held).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Aggregate {
    pub total: f64,
    pub allocated: f64,
    pub available_capacity: f64,
    pub utilization_percent: f64,
}

/// A granted allocation, as the status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AllocationView {
    pub allocation_id: String,
    pub requester_id: String,
    pub priority: i32,
    pub confirmed: bool,
    pub portions: Vec<Portion>,
    pub age_ms: u64,
    /// Until it is released unless confirmed; absent once confirmed.
    pub expires_in_ms: Option<u64>,
}

/// A waiting request, as the status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueuedView {
    pub allocation_id: String,
    pub requester_id: String,
    pub priority: i32,
    /// Requests ahead of it.
    pub position: usize,
    /// In base units, names lowercase.
    pub resources: Vec<ResourceSpec>,
    pub waited_ms: u64,
    pub expires_in_ms: u64,
}

/// One allocation looked up by id.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AllocationState {
    Granted(AllocationView),
    Queued(QueuedView),
}

/// The pool: nodes, per-resource aggregates, grants (by id) and the queue (in order).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PoolStatus {
    pub nodes: Vec<NodeUsage>,
    pub aggregate_utilization: BTreeMap<String, Aggregate>,
    pub allocations: Vec<AllocationView>,
    pub queued: Vec<QueuedView>,
}

/// A resource's name as kept: trimmed, lowercase.
pub fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// Checks a resource name; `None` when good, else what is wrong.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 64 {
        return Some("must be at most 64 characters".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':');
    (!name.chars().all(ok)).then(|| {
        format!("{name:?} may hold only letters, digits and _ - . / : (e.g. cpu, memory, gpu)")
    })
}

fn id_problem(id: &str) -> Option<&'static str> {
    if id.trim().is_empty() {
        Some("must not be empty")
    } else if id.len() > MAX_ID_LEN {
        Some("must be at most 256 bytes")
    } else if id.chars().any(char::is_control) {
        Some("must not hold control characters")
    } else {
        None
    }
}

/// The factor from `unit` to `resource`'s base unit. Custom resources take any unit as a label.
pub fn unit_factor(resource: &str, unit: &str) -> Result<f64, String> {
    let u = unit.trim().to_ascii_lowercase();
    let factor = match resource {
        "cpu" => match u.as_str() {
            "core" | "cores" | "cpu" | "cpus" | "vcpu" | "vcpus" => Some(1.0),
            "millicore" | "millicores" | "m" => Some(1e-3),
            _ => None,
        },
        "memory" | "disk" => match u.as_str() {
            "b" | "byte" | "bytes" => Some(1.0),
            "kb" => Some(1e3),
            "mb" => Some(1e6),
            "gb" => Some(1e9),
            "tb" => Some(1e12),
            "kib" => Some(1024.0),
            "mib" => Some(1024.0 * 1024.0),
            "gib" => Some(1024.0 * 1024.0 * 1024.0),
            "tib" => Some(1024.0 * 1024.0 * 1024.0 * 1024.0),
            _ => None,
        },
        "network" => match u.as_str() {
            "bps" => Some(1e-6),
            "kbps" => Some(1e-3),
            "mbps" => Some(1.0),
            "gbps" => Some(1e3),
            _ => None,
        },
        "connections" => match u.as_str() {
            "connection" | "connections" | "request" | "requests" => Some(1.0),
            _ => None,
        },
        _ => Some(1.0),
    };
    factor.ok_or_else(|| {
        let base = WELL_KNOWN
            .iter()
            .find(|(r, _)| *r == resource)
            .map_or("", |(_, b)| b);
        format!("{unit:?} is not a unit of {resource} (its base unit is {base})")
    })
}

/// Splits an amount written with its unit (`"128GB"`, `"10000mbps"`, `"64 cores"`,
/// `"1.5e3 millicores"`) into the number and the unit (empty when there is none).
pub fn split_amount(text: &str) -> Option<(f64, &str)> {
    let text = text.trim();
    // The longest prefix that is a number; the rest, trimmed, is the unit.
    (1..=text.len())
        .rev()
        .filter(|&i| text.is_char_boundary(i))
        .find_map(|i| {
            let number = text[..i].trim().parse::<f64>().ok()?;
            let unit = text[i..].trim();
            let looks_like_unit = unit.chars().all(|c| c.is_ascii_alphabetic());
            (number.is_finite() && looks_like_unit).then_some((number, unit))
        })
}

/// An amount of `resource` (a normalized name) as a document writes it: a number in the
/// resource's base unit, or a string with a unit where the spec writes one (`"128GB"`,
/// `"10000mbps"`, `"64 cores"`), converted to the base unit ([`unit_factor`]). Reports a
/// problem at `path`.
pub fn read_amount(
    resource: &str,
    v: &serde_json::Value,
    path: &str,
    e: &mut FieldErrors,
) -> Option<f64> {
    let parsed = match v {
        serde_json::Value::Number(n) => n.as_f64().ok_or_else(|| "not a finite number".to_string()),
        serde_json::Value::String(s) => match split_amount(s) {
            Some((x, "")) => Ok(x),
            Some((x, unit)) => unit_factor(resource, unit).map(|f| x * f),
            None => Err(format!(
                "{s:?} is not an amount: a number, or a number and a unit like \"128GB\", \"10000mbps\", \"64 cores\""
            )),
        },
        other => Err(format!(
            "expected an amount (a number, or a string like \"128GB\"), got {}",
            crate::validate::describe(other)
        )),
    };
    parsed.map_err(|why| e.push(path, why)).ok()
}

/// What a validated request needs, in units: per (node, resource) pinned, per resource not
/// pinned, and per resource in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Needs {
    pub pinned: BTreeMap<(String, String), Units>,
    pub unpinned: BTreeMap<String, Units>,
    pub total: BTreeMap<String, Units>,
}

/// Checks a request and returns it normalized (names lowercase, amounts in base units, no
/// unit) with what it needs. Every problem is reported with its field.
pub(crate) fn validate(req: &AllocationRequest) -> Result<(AllocationRequest, Needs), FieldErrors> {
    let mut e = FieldErrors::default();
    if let Some(p) = id_problem(&req.allocation_id) {
        e.push("allocation_id", p);
    }
    if let Some(p) = id_problem(&req.requester_id) {
        e.push("requester_id", p);
    }
    if req.resources.is_empty() {
        e.push("resources", "must name at least one resource");
    }
    if req.resources.len() > MAX_SPECS {
        e.push(
            "resources",
            format!("must hold at most {MAX_SPECS} entries"),
        );
    }
    let mut needs = Needs::default();
    let mut specs = Vec::with_capacity(req.resources.len());
    for (i, spec) in req.resources.iter().enumerate() {
        let Some((resource, amount, units)) = read_spec(spec, &format!("resources[{i}]"), &mut e)
        else {
            continue;
        };
        *needs.total.entry(resource.clone()).or_default() += units;
        match &spec.node_id {
            Some(n) => {
                *needs
                    .pinned
                    .entry((n.clone(), resource.clone()))
                    .or_default() += units
            }
            None => *needs.unpinned.entry(resource.clone()).or_default() += units,
        }
        specs.push(ResourceSpec {
            resource,
            amount,
            unit: None,
            node_id: spec.node_id.clone(),
        });
    }
    let normalized = AllocationRequest {
        resources: specs,
        ..req.clone()
    };
    e.into_result((normalized, needs))
}

/// One entry of a request's resources: its name normalized, its amount in the base unit and
/// in units, or None with the problems pushed to `e`.
fn read_spec(spec: &ResourceSpec, path: &str, e: &mut FieldErrors) -> Option<(String, f64, Units)> {
    let resource = normalize(&spec.resource);
    if let Some(p) = name_problem(&resource) {
        e.push(format!("{path}.resource"), p);
        return None;
    }
    let factor = match spec.unit.as_deref() {
        None => 1.0,
        Some(u) => match unit_factor(&resource, u) {
            Ok(f) => f,
            Err(p) => {
                e.push(format!("{path}.unit"), p);
                return None;
            }
        },
    };
    if let Some(n) = &spec.node_id
        && let Some(p) = id_problem(n)
    {
        e.push(format!("{path}.node_id"), p);
        return None;
    }
    let amount = spec.amount * factor;
    if !(amount.is_finite() && amount > 0.0) {
        e.push(
            format!("{path}.amount"),
            format!("must be a finite number > 0, got {}", spec.amount),
        );
        return None;
    }
    if amount > MAX_AMOUNT {
        e.push(
            format!("{path}.amount"),
            format!("must be at most {MAX_AMOUNT:e} {resource} base units"),
        );
        return None;
    }
    let units = to_units(amount);
    if units == 0 {
        e.push(
            format!("{path}.amount"),
            format!("must be at least {MIN_AMOUNT} in the base unit of {resource}"),
        );
        return None;
    }
    Some((resource, amount, units))
}

/// Checks a node's capacity and returns it in units, names lowercase.
pub(crate) fn validate_capacity(
    node_id: &str,
    capacity: &BTreeMap<String, f64>,
) -> Result<BTreeMap<String, Units>, FieldErrors> {
    let mut e = FieldErrors::default();
    if let Some(p) = id_problem(node_id) {
        e.push("node_id", p);
    }
    let mut out = BTreeMap::new();
    for (name, &amount) in capacity {
        let path = format!("capacity.{name}");
        let resource = normalize(name);
        if let Some(p) = name_problem(&resource) {
            e.push(path, p);
            continue;
        }
        if !(amount.is_finite() && (0.0..=MAX_AMOUNT).contains(&amount)) {
            e.push(
                path,
                format!("must be a finite number from 0 to {MAX_AMOUNT:e}, got {amount}"),
            );
            continue;
        }
        if out.insert(resource.clone(), to_units(amount)).is_some() {
            e.push(
                path,
                format!("{resource} is given twice (names are case-insensitive)"),
            );
        }
    }
    e.into_result(out)
}
