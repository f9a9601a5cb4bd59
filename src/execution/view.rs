//! What `GET /api/executions` and `GET /api/executions/{id}` show of an execution.

use serde::Serialize;

use super::{Execution, Phase, Reservation, State};
use crate::engine::share::ShareTable;
use crate::stats::Snapshot;
use crate::stats::report::NodeReport;
use crate::stats::request::{FailureReport, IterationsReport, RequestReport};

impl Execution {
    pub fn view(&self, now_unix_ms: u64) -> ExecutionView {
        let duration = self.duration();
        let progress_percent = if self.state().is_terminal() {
            // A run stopped before its plan ended got as far as its stop, not to 100 %.
            match self.stopped_after_s() {
                Some(ran) if !duration.is_zero() => {
                    (ran / duration.as_secs_f64() * 100.0).clamp(0.0, 100.0)
                }
                _ => 100.0,
            }
        } else {
            match self.started_at_ms {
                Some(start) if !duration.is_zero() => {
                    let elapsed = now_unix_ms.saturating_sub(start) as f64 / 1000.0;
                    (elapsed / duration.as_secs_f64() * 100.0).clamp(0.0, 99.9)
                }
                _ => 0.0,
            }
        };
        let tasks: Vec<TaskView> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let info = self.task_info(t);
                let ran_s = crate::stats::load_seconds(t.acc.timeline().len(), info.duration_s);
                let report = crate::stats::report::TaskReport::build(info, &t.acc, ());
                let mut figures = t.acc.snapshot();
                // Lost nodes count with what they last said they had sent.
                figures.sent = report.sent_requests;
                TaskView {
                    task_id: i as u32,
                    name: t.name.clone(),
                    planned_requests: report.planned_requests,
                    achieved_rps: crate::stats::achieved_rps(figures.completed, ran_s),
                    ran_s,
                    figures,
                    nodes: report.nodes,
                    shares: t.shares.clone(),
                    requests: report.requests,
                    failures: report.failures,
                    iterations: report.iterations,
                }
            })
            .collect();
        // The report's figure once there is one; until then the tasks' completed over the
        // longest time any of them ran, as the report's summary counts it.
        let achieved_rps = self
            .report
            .as_ref()
            .and_then(|r| r["summary"]["achieved_rps"].as_f64())
            .unwrap_or_else(|| {
                let completed = tasks.iter().map(|t| t.figures.completed).sum();
                let ran_s = tasks.iter().map(|t| t.ran_s).fold(0.0, f64::max);
                crate::stats::achieved_rps(completed, ran_s)
            });
        ExecutionView {
            execution_id: self.id.clone(),
            name: self.name.clone(),
            state: self.state(),
            reason: self.reason.clone(),
            created_at_ms: self.created_at_ms,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            progress_percent,
            duration_s: duration.as_secs_f64(),
            achieved_rps,
            waiting_for: self.waiting_for(),
            adjustments: self.adjustments(),
            tasks,
        }
    }

    /// Why a pending execution has not started (no eligible node, waiting for resources or
    /// for the other executions of its workload).
    fn waiting_for(&self) -> Option<String> {
        match &self.phase {
            Phase::Pending {
                reservation: Reservation::Asked { queued: true, .. },
                ..
            } => Some("resources: queued in the pool".into()),
            Phase::Pending {
                reservation: Reservation::Asked { .. },
                ..
            } => Some("resources".into()),
            Phase::Pending {
                reservation: Reservation::Granted { .. },
                ..
            } if self.barrier.is_some() => Some("the other executions of its workload".into()),
            Phase::Pending {
                reservation: Reservation::None,
                waiting,
            } => waiting.clone(),
            _ => None,
        }
    }
}

/// `GET /api/executions/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutionView {
    pub execution_id: String,
    pub name: String,
    pub state: State,
    pub reason: Option<String>,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub progress_percent: f64,
    pub duration_s: f64,
    /// Requests completed per second over the time the load ran (`stats::achieved_rps`):
    /// so far while it runs, the report's figure once it has ended.
    pub achieved_rps: f64,
    /// Why a pending execution has not started (no eligible node, waiting for resources).
    pub waiting_for: Option<String>,
    /// The live changes made while it ran (`PATCH /api/executions/{id}`, MCP), oldest first.
    pub adjustments: Vec<super::AdjustmentView>,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub task_id: u32,
    pub name: String,
    pub planned_requests: Option<u64>,
    /// Completed per second over the seconds its load has run so far (`stats::achieved_rps`).
    pub achieved_rps: f64,
    /// Those seconds (`stats::load_seconds`): merged so far, the drain excluded.
    pub ran_s: f64,
    /// Sent, completed, errors, late starts, latency and the latest complete second (planned
    /// and achieved rate, live), merged over the nodes.
    #[serde(flatten)]
    pub figures: Snapshot,
    pub nodes: Vec<NodeReport>,
    pub shares: ShareTable,
    /// Per request name so far, merged over the nodes (empty for a scan).
    pub requests: Vec<RequestReport>,
    /// The failed requests so far by name, kind and message, most frequent first.
    pub failures: Vec<FailureReport>,
    /// A flow's iterations so far (absent for a task of targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<IterationsReport>,
}
