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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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

/// `GET /api/executions/{id}/timeline`: every second merged so far of every task, so that a
/// page opened mid-run charts the seconds before it opened.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub execution_id: String,
    /// The execution's state (`running` while seconds still come).
    pub state: String,
    /// Each task's seconds in order, tasks in order: each the `stats` event of `GET
    /// /api/events` for that second (without `type` and `at_ms`), so a page merges them with
    /// the live events by `(task_id, second)`. `total_completed` and `total_errors` sum the
    /// task's seconds up to that one; `requests` holds the rows so far on each task's latest
    /// second and is empty on the others.
    pub seconds: Vec<TaskSecond>,
}

impl Timeline {
    /// The seconds of one task's timeline, `requests` on its latest.
    pub fn task(
        execution_id: &str,
        task_id: u32,
        task: &str,
        points: &[TimelinePoint],
        nodes: usize,
        requests: Vec<RequestReport>,
    ) -> Vec<TaskSecond> {
        let (mut completed, mut errors) = (0, 0);
        let last = points.len().saturating_sub(1);
        points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                completed += p.completed;
                errors += p.errors;
                let rows = if i == last {
                    requests.clone()
                } else {
                    Vec::new()
                };
                TaskSecond::of(
                    execution_id,
                    task_id,
                    task,
                    p,
                    (completed, errors),
                    nodes,
                    rows,
                )
            })
            .collect()
    }

    /// The timeline of a report (an execution known only to the store).
    pub fn of_report(
        execution_id: &str,
        state: &str,
        report: &crate::task::report::Report,
    ) -> Self {
        let seconds = report
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                Timeline::task(
                    execution_id,
                    i as u32,
                    &t.name,
                    &t.timeline,
                    t.nodes.len(),
                    t.requests.clone(),
                )
            })
            .collect();
        Timeline {
            execution_id: execution_id.to_string(),
            state: state.to_string(),
            seconds,
        }
    }
}

impl super::Execution {
    /// Its timeline so far: what the `stats` events of every second merged until now said.
    pub fn timeline(&self) -> Timeline {
        let seconds = self
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                let points = t.acc.timeline();
                Timeline::task(
                    &self.id,
                    i as u32,
                    &t.name,
                    points,
                    t.shares.nodes.len(),
                    t.acc.request_rows(points.len() as f64),
                )
            })
            .collect();
        Timeline {
            execution_id: self.id.clone(),
            state: self.state().as_str().to_string(),
            seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(second: u64, completed: u64, errors: u64) -> TimelinePoint {
        TimelinePoint {
            second,
            planned: 10.0,
            sent: completed,
            completed,
            errors,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.0,
        }
    }

    #[test]
    fn a_tasks_timeline_is_its_stats_events_with_running_totals() {
        let points = [point(0, 10, 1), point(1, 8, 0), point(2, 12, 2)];
        let rows = vec![RequestReport {
            name: "GET /".into(),
            method: "GET".into(),
            count: 30,
            errors: Default::default(),
            error_rate: 0.1,
            status_codes: Default::default(),
            latency_ms: Default::default(),
            latency_uncorrected_ms: Default::default(),
            checks_failed: 0,
            rps: 10.0,
        }];
        let got = Timeline::task("e", 1, "t", &points, 3, rows.clone());
        assert_eq!(got.len(), 3);
        let totals: Vec<(u64, u64, u64)> = got
            .iter()
            .map(|s| (s.second, s.total_completed, s.total_errors))
            .collect();
        assert_eq!(totals, [(0, 10, 1), (1, 18, 1), (2, 30, 3)]);
        // The same event as the live stream's for that second.
        assert_eq!(
            got[1],
            TaskSecond::of("e", 1, "t", &points[1], (18, 1), 3, vec![])
        );
        assert!(got[0].requests.is_empty() && got[1].requests.is_empty());
        assert_eq!(got[2].requests, rows);
        assert!(Timeline::task("e", 0, "t", &[], 1, rows).is_empty());
    }
}
