//! Two runs side by side: the deltas between two reports, for the summary and for each task
//! matched by name. Plain figures, no verdict: the reader decides what a change means.
//!
//! The JSON shape (schema: `schemas/compare.schema.json`, a contract):
//! ```text
//! { "a": {execution_id?, name, started_at_ms, duration_s},  "b": {...},
//!   "summary": Figures,
//!   "tasks": [ {"name": ..., ...Figures,          // tasks present in both, in a's order
//!               "requests": [ {"name": ..., ...Figures} ]} ],  // names in both, a's order
//!   "only_in_a": [task names], "only_in_b": [task names] }
//! Figures = { achieved_rps, total_requests, error_count, error_rate: Delta,
//!             latency_ms: {p50, p95, p99, p999: Delta} }   // corrected latency
//! Delta   = { a, b, delta: b - a, delta_percent: (b - a) / a * 100, or null when a is 0 }
//! ```

use serde::Serialize;

use super::Percentiles;
use super::report::{Report, Summary, TaskReport};
use super::request::RequestReport;

/// One figure in both runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delta {
    pub a: f64,
    pub b: f64,
    /// `b - a`.
    pub delta: f64,
    /// `(b - a) / a` in percent; `None` (JSON null) when `a` is 0, where no ratio exists.
    pub delta_percent: Option<f64>,
}

impl Delta {
    pub fn of(a: f64, b: f64) -> Delta {
        let delta = b - a;
        Delta {
            a,
            b,
            delta,
            delta_percent: (a != 0.0 && a.is_finite() && b.is_finite()).then(|| delta / a * 100.0),
        }
    }
}

/// The corrected latency percentiles compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LatencyDeltas {
    pub p50: Delta,
    pub p95: Delta,
    pub p99: Delta,
    pub p999: Delta,
}

impl LatencyDeltas {
    fn of(a: &Percentiles, b: &Percentiles) -> LatencyDeltas {
        LatencyDeltas {
            p50: Delta::of(a.p50, b.p50),
            p95: Delta::of(a.p95, b.p95),
            p99: Delta::of(a.p99, b.p99),
            p999: Delta::of(a.p999, b.p999),
        }
    }
}

/// The figures compared for the summary and for each task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ComparedFigures)]
pub struct Figures {
    pub achieved_rps: Delta,
    pub total_requests: Delta,
    pub error_count: Delta,
    pub error_rate: Delta,
    pub latency_ms: LatencyDeltas,
}

/// The figures the comparison reads from a summary or a task.
struct Side<'a> {
    achieved_rps: f64,
    total_requests: u64,
    errors: u64,
    latency: &'a Percentiles,
}

impl<'a> From<&'a Summary> for Side<'a> {
    fn from(s: &'a Summary) -> Self {
        Side {
            achieved_rps: s.achieved_rps,
            total_requests: s.total_requests,
            errors: s.errors.total,
            latency: &s.latency_ms,
        }
    }
}

impl<'a, S> From<&'a TaskReport<S>> for Side<'a> {
    fn from(t: &'a TaskReport<S>) -> Self {
        Side {
            achieved_rps: t.achieved_rps,
            total_requests: t.total_requests,
            errors: t.errors.total,
            latency: &t.latency_ms,
        }
    }
}

fn error_rate(errors: u64, total: u64) -> f64 {
    if total > 0 {
        errors as f64 / total as f64
    } else {
        0.0
    }
}

impl Figures {
    fn of(a: Side<'_>, b: Side<'_>) -> Figures {
        Figures {
            achieved_rps: Delta::of(a.achieved_rps, b.achieved_rps),
            total_requests: Delta::of(a.total_requests as f64, b.total_requests as f64),
            error_count: Delta::of(a.errors as f64, b.errors as f64),
            error_rate: Delta::of(
                error_rate(a.errors, a.total_requests),
                error_rate(b.errors, b.total_requests),
            ),
            latency_ms: LatencyDeltas::of(a.latency, b.latency),
        }
    }
}

/// Which run a side is.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    pub name: String,
    pub started_at_ms: u64,
    pub duration_s: f64,
}

impl RunInfo {
    fn of<S>(r: &Report<S>) -> RunInfo {
        RunInfo {
            execution_id: None,
            name: r.name.clone(),
            started_at_ms: r.started_at_ms,
            duration_s: r.summary.duration_s,
        }
    }
}

/// One task present in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskComparison {
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
    /// The request names present in both runs' task, in run `a`'s order.
    pub requests: Vec<RequestComparison>,
}

/// One request name present in both runs' task.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RequestComparison {
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
}

impl<'a> From<&'a RequestReport> for Side<'a> {
    fn from(r: &'a RequestReport) -> Self {
        Side {
            achieved_rps: r.rps,
            total_requests: r.count,
            errors: r.errors.total,
            latency: &r.latency_ms,
        }
    }
}

/// The request names of `a`'s task also in `b`'s, compared.
fn requests<S>(a: &TaskReport<S>, b: &TaskReport<S>) -> Vec<RequestComparison> {
    a.requests
        .iter()
        .filter_map(|ra| {
            let rb = b.requests.iter().find(|rb| rb.name == ra.name)?;
            Some(RequestComparison {
                name: ra.name.clone(),
                figures: Figures::of(ra.into(), rb.into()),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub a: RunInfo,
    pub b: RunInfo,
    pub summary: Figures,
    /// Tasks present in both runs (matched by name), in the order of run `a`.
    pub tasks: Vec<TaskComparison>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
}

impl Comparison {
    /// Names the executions the two sides come from.
    pub fn with_ids(mut self, a: &str, b: &str) -> Comparison {
        self.a.execution_id = Some(a.to_string());
        self.b.execution_id = Some(b.to_string());
        self
    }
}

/// Compares run `b` against run `a` (deltas are `b - a`). Tasks are matched by name; a name
/// that occurs twice in a run is matched once, by its first occurrence.
pub fn compare<S>(a: &Report<S>, b: &Report<S>) -> Comparison {
    let find = |r: &'_ Report<S>, name: &str| r.tasks.iter().position(|t| t.name == name);
    let mut tasks = Vec::new();
    let mut only_in_a = Vec::new();
    for (i, ta) in a.tasks.iter().enumerate() {
        if find(a, &ta.name) != Some(i) {
            continue; // a repeated name: its first occurrence stands for it
        }
        match find(b, &ta.name) {
            Some(j) => tasks.push(TaskComparison {
                name: ta.name.clone(),
                figures: Figures::of(ta.into(), (&b.tasks[j]).into()),
                requests: requests(ta, &b.tasks[j]),
            }),
            None => only_in_a.push(ta.name.clone()),
        }
    }
    let mut only_in_b = Vec::new();
    for (j, tb) in b.tasks.iter().enumerate() {
        if find(b, &tb.name) == Some(j) && find(a, &tb.name).is_none() {
            only_in_b.push(tb.name.clone());
        }
    }
    Comparison {
        a: RunInfo::of(a),
        b: RunInfo::of(b),
        summary: Figures::of((&a.summary).into(), (&b.summary).into()),
        tasks,
        only_in_a,
        only_in_b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of plain tasks (no kind adds a part).
    fn report_with(name: &str, tasks: &[(&str, u64, u64, f64, f64)]) -> Report<()> {
        crate::stats::fixtures::report_with(name, tasks)
    }

    #[test]
    fn delta_of_known_values() {
        assert_eq!(
            Delta::of(50.0, 100.0),
            Delta {
                a: 50.0,
                b: 100.0,
                delta: 50.0,
                delta_percent: Some(100.0)
            }
        );
        assert_eq!(Delta::of(4.0, 3.0).delta_percent, Some(-25.0));
        assert_eq!(Delta::of(0.0, 3.0).delta_percent, None, "no ratio from 0");
        assert_eq!(Delta::of(0.0, 0.0).delta, 0.0);
    }

    #[test]
    fn summary_and_matched_tasks() {
        // a: 50 rps for 10 s, 5 errors; b: 100 rps, 0 errors; p99 from 8 to 4 ms.
        let a = report_with(
            "a",
            &[("get", 500, 5, 50.0, 8.0), ("only-a", 10, 0, 1.0, 1.0)],
        );
        let b = report_with(
            "b",
            &[("get", 1000, 0, 100.0, 4.0), ("only-b", 10, 0, 1.0, 1.0)],
        );
        let c = compare(&a, &b);
        let get = &c.tasks[0].figures;
        assert_eq!(c.tasks.len(), 1);
        assert_eq!(c.tasks[0].name, "get");
        assert_eq!(get.achieved_rps.delta_percent, Some(100.0));
        assert_eq!(get.total_requests.delta, 500.0);
        assert_eq!(get.error_count.delta_percent, Some(-100.0));
        assert_eq!(get.error_rate.a, 0.01);
        assert_eq!(get.error_rate.b, 0.0);
        assert_eq!(get.latency_ms.p99.delta, -4.0);
        assert_eq!(get.latency_ms.p99.delta_percent, Some(-50.0));
        assert_eq!(c.only_in_a, ["only-a"]);
        assert_eq!(c.only_in_b, ["only-b"]);
        // The summary is the reports' own summary, not a sum of the matched tasks.
        assert_eq!(c.summary.total_requests.a, 510.0);
        assert_eq!(c.summary.total_requests.b, 1010.0);
        assert_eq!(c.summary.error_count.a, 5.0);
    }

    /// The request names of a task present in both runs are compared, in run a's order.
    #[test]
    fn request_names_in_both_runs_are_compared() {
        let row = |name: &str, count: u64, errors: u64, p99: f64| RequestReport {
            name: name.into(),
            method: "GET".into(),
            count,
            errors: crate::stats::ErrorCounts {
                total: errors,
                status: errors,
                ..Default::default()
            },
            error_rate: errors as f64 / count as f64,
            status_codes: Default::default(),
            latency_ms: Percentiles {
                p99,
                ..Percentiles::default()
            },
            latency_uncorrected_ms: Percentiles::default(),
            checks_failed: 0,
            rps: count as f64 / 10.0,
        };
        let mut a = report_with("a", &[("get", 300, 0, 30.0, 5.0)]);
        let mut b = report_with("b", &[("get", 300, 0, 30.0, 5.0)]);
        a.tasks[0].requests = vec![row("login", 100, 0, 20.0), row("me", 200, 2, 4.0)];
        b.tasks[0].requests = vec![row("me", 250, 0, 2.0), row("logout", 50, 0, 1.0)];
        let c = compare(&a, &b);
        let requests = &c.tasks[0].requests;
        assert_eq!(requests.len(), 1, "only me is in both");
        assert_eq!(requests[0].name, "me");
        let me = &requests[0].figures;
        assert_eq!(me.total_requests.delta, 50.0);
        assert_eq!(me.error_count.delta_percent, Some(-100.0));
        assert_eq!(me.latency_ms.p99.delta_percent, Some(-50.0));
        assert_eq!(me.achieved_rps.a, 20.0);
    }

    #[test]
    fn comparing_a_run_with_itself_gives_zero_deltas() {
        let a = report_with("a", &[("get", 500, 5, 50.0, 8.0)]);
        let c = compare(&a, &a).with_ids("x", "x");
        for d in [
            c.summary.achieved_rps,
            c.summary.total_requests,
            c.summary.error_rate,
            c.summary.latency_ms.p50,
            c.summary.latency_ms.p999,
        ] {
            assert_eq!(d.delta, 0.0);
            assert!(matches!(d.delta_percent, Some(p) if p == 0.0) || d.a == 0.0);
        }
        assert_eq!(c.a.execution_id.as_deref(), Some("x"));
    }

    #[test]
    fn repeated_task_names_match_once() {
        let a = report_with("a", &[("t", 1, 0, 1.0, 1.0), ("t", 2, 0, 1.0, 1.0)]);
        let b = report_with("b", &[("t", 3, 0, 1.0, 1.0)]);
        let c = compare(&a, &b);
        assert_eq!(c.tasks.len(), 1);
        assert_eq!(c.tasks[0].figures.total_requests.a, 1.0);
        assert!(c.only_in_a.is_empty() && c.only_in_b.is_empty());
    }

    /// The comparison's JSON keeps to its published schema, null percentages included.
    #[test]
    fn matches_its_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/compare.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        let a = report_with("a", &[("get", 0, 0, 0.0, 0.0), ("x", 5, 0, 1.0, 1.0)]);
        let b = report_with("b", &[("get", 100, 3, 10.0, 4.0), ("y", 5, 0, 1.0, 1.0)]);
        for c in [compare(&a, &b), compare(&a, &b).with_ids("ea", "eb")] {
            let v = serde_json::to_value(&c).unwrap();
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:#?}\n{v:#}");
        }
        let v = serde_json::to_value(compare(&a, &b)).unwrap();
        assert!(v["tasks"][0]["achieved_rps"]["delta_percent"].is_null());
    }

    /// A report reads back from its JSON (as the orchestrator stores it) unchanged.
    #[test]
    fn reports_read_back() {
        let a = report_with("a", &[("get", 500, 5, 50.0, 8.0)]);
        let json = serde_json::to_value(&a).unwrap();
        let back: Report<()> = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
    }
}
