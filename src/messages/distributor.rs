//! Messages to the `Distributor` (from the REST handlers): submit a workload of scenarios with
//! a strategy, read its distribution plan. The plan's shape is the REST answer.

use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::placement::{Scenario, Strategy, Unplaced};
use crate::task::TestPlan;

/// How a workload's scenarios run relative to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// All start at one instant, once every one holds its resources (a barrier).
    Coordinated,
    /// Each starts as soon as its node and resources allow.
    Parallel,
    /// One after another, in the order given.
    Sequential,
}

impl std::str::FromStr for ExecutionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "coordinated" => Ok(ExecutionMode::Coordinated),
            "parallel" => Ok(ExecutionMode::Parallel),
            "sequential" => Ok(ExecutionMode::Sequential),
            other => Err(format!(
                "unknown execution mode {other:?}: expected coordinated, parallel or sequential"
            )),
        }
    }
}

/// A validated workload: its scenarios, each with the execution it becomes.
#[derive(Debug, Clone)]
pub struct Workload {
    pub workload_id: String,
    pub name: String,
    pub execution_mode: ExecutionMode,
    /// After this long, what still runs is cancelled.
    pub timeout: Option<Duration>,
    pub preferred_location: Option<String>,
    pub priority: i32,
    pub scenarios: Vec<PreparedScenario>,
}

/// A scenario and the execution request (and its validated plan) that runs it.
#[derive(Debug, Clone)]
pub struct PreparedScenario {
    pub scenario: Scenario,
    pub request: Value,
    pub plan: TestPlan,
}

/// Places a workload by `strategy` and, unless `dry_run`, runs it; answers the plan.
#[derive(Message)]
#[rtype(result = "Result<PlanView, WorkloadError>")]
pub struct SubmitWorkload {
    pub workload: Workload,
    pub strategy: Strategy,
    pub dry_run: bool,
}

/// One distribution plan; `None` if unknown.
#[derive(Message)]
#[rtype(result = "Option<PlanView>")]
pub struct GetPlan(pub String);

/// Every plan kept, newest first.
#[derive(Message)]
#[rtype(result = "Vec<PlanView>")]
pub struct ListPlans;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{} scenario(s) fit no node: {}", .0.len(), .0.iter().map(|u| format!("{}: {}", u.scenario_id, u.reason)).collect::<Vec<_>>().join("; "))]
    Unplaced(Vec<Unplaced>),
    #[error(
        "a coordinated workload of {size} scenarios cannot start together: orchestrator.max_concurrent_executions is {max}"
    )]
    TooLargeToCoordinate { size: usize, max: u32 },
    #[error("a workload id {0:?} is already planned")]
    Duplicate(String),
    #[error("{0}")]
    Unavailable(String),
}

/// A distribution plan as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub plan_id: String,
    pub workload_id: String,
    pub name: String,
    pub strategy: Strategy,
    pub execution_mode: ExecutionMode,
    /// `planned` (a dry run), `running`, `completed`, `failed` (one of its executions did not
    /// complete), `cancelled` or `timed_out`.
    pub state: &'static str,
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub progress_percent: f64,
    pub assignments: Vec<AssignmentView>,
    pub unplaced: Vec<Unplaced>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssignmentView {
    pub scenario_id: String,
    pub node_id: String,
    /// Set once its execution was submitted (a sequential workload submits one at a time).
    pub execution_id: Option<String>,
    pub state: Option<String>,
    pub progress_percent: f64,
}
