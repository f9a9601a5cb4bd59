//! What names a task of an execution, and the live `stats` event of one of its merged seconds
//! (defined here, below `messages`, which re-exports them).

use serde::{Deserialize, Serialize};

use crate::stats::TimelinePoint;
use crate::stats::request::RequestReport;

/// A task of an execution, as the cluster protocol and the nodes name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskRef {
    pub execution_id: String,
    pub task_id: u32,
}

/// One second of one task, merged across its nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSecond {
    pub execution_id: String,
    pub task_id: u32,
    pub task: String,
    pub second: u64,
    pub planned_rps: f64,
    pub achieved_rps: f64,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// The task's figures so far, every node.
    pub total_completed: u64,
    pub total_errors: u64,
    /// Nodes the task runs on (0 standalone).
    pub nodes: usize,
    /// Each request name's figures so far, every node (a load task; empty for a scan).
    pub requests: Vec<RequestReport>,
}

impl TaskSecond {
    /// The event of a settled timeline point.
    pub fn of(
        execution_id: &str,
        task_id: u32,
        task: &str,
        point: &TimelinePoint,
        totals: (u64, u64),
        nodes: usize,
        requests: Vec<RequestReport>,
    ) -> TaskSecond {
        TaskSecond {
            execution_id: execution_id.to_string(),
            task_id,
            task: task.to_string(),
            second: point.second,
            planned_rps: point.planned,
            achieved_rps: point.completed as f64,
            sent: point.sent,
            completed: point.completed,
            errors: point.errors,
            p50_ms: point.p50_ms,
            p95_ms: point.p95_ms,
            p99_ms: point.p99_ms,
            total_completed: totals.0,
            total_errors: totals.1,
            nodes,
            requests,
        }
    }
}
