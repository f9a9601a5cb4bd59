//! A live change to a running task (its rates, its users, a pause) as the cluster carries it in
//! the task's share table and the report records it. What a change does to a plan is the
//! engine's (`crate::engine::schedule::adjust`).

use serde::{Deserialize, Serialize};

/// What one live change does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Every rate of the rest of the plan times this factor.
    RateFactor(f64),
    /// New base and peak rates: the rest of the plan's rates are mapped from the old
    /// `[base, peak]` onto the new one (a constant plan's rate becomes `base_rps`); without a
    /// peak, the plan moves by the change of its base.
    Rates {
        base_rps: f64,
        #[serde(default)]
        peak_rps: Option<f64>,
    },
    /// The closed model's users, over the whole cluster.
    ConcurrentUsers(u32),
    /// Pause (`true`) or resume (`false`).
    Paused(bool),
}

/// One change to a running task, as the orchestrator recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Adjustment {
    /// Milliseconds after the task's start from which it holds.
    pub from_ms: u64,
    pub change: Change,
    /// Who made it: the surface (`rest`, `mcp`) and, when known, the client's address.
    pub by: String,
    /// When it was asked for, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}
