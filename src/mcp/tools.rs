//! The generic tools' inputs (with their JSON schemas) and the pure parts of their answers:
//! the verdict of `get_report`, the progress line of `wait_for_execution`. Each task kind's
//! own tool (its input and the plan it becomes) is in its folder, `crate::task::<kind>::mcp`.
//! No I/O here.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::execution::State;
use crate::task::security::mcp as scan;

/// An execution id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionId {
    /// The id `run_load_test` or `list_executions` gave.
    #[schemars(length(min = 1, max = 128))]
    pub execution_id: String,
}

/// `wait_for_execution`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    /// The id `run_load_test` gave.
    #[schemars(length(min = 1, max = 128))]
    pub execution_id: String,
    /// Give up waiting after this many seconds (default 300); the execution keeps running.
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_s: Option<u64>,
}

pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

impl WaitFor {
    pub fn timeout(&self) -> Duration {
        self.timeout_s
            .map_or(DEFAULT_WAIT, |s| Duration::from_secs(s.max(1)))
            .min(MAX_WAIT)
    }
}

/// `adjust_execution`'s input: exactly one change.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustExecution {
    /// The running execution's id.
    #[schemars(length(min = 1, max = 128))]
    pub execution_id: String,
    /// The task's index (from 0); absent: every task that takes the change.
    #[schemars(range(min = 0, max = 1000))]
    pub task: Option<u32>,
    /// Scale the rest of the rate plan by this factor (open model), e.g. 2 doubles it.
    #[schemars(range(min = 0.01, max = 100.0))]
    pub rate_factor: Option<f64>,
    /// A new base rate in requests per second (open model); capped by mcp.max_rps.
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub base_rps: Option<f64>,
    /// A new peak rate, with base_rps, for patterns that have one; capped by mcp.max_rps.
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub peak_rps: Option<f64>,
    /// The closed model's users over the cluster.
    #[schemars(range(min = 1, max = 100000))]
    pub concurrent_users: Option<u32>,
    /// true pauses (nothing is sent, the rest of the plan waits), false resumes.
    pub paused: Option<bool>,
}

/// `list_executions`' input.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListExecutions {
    /// The newest this many (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

impl ListExecutions {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(20).clamp(1, 100) as usize
    }
}

/// `compare_executions`' input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The baseline execution.
    #[schemars(length(min = 1, max = 128))]
    pub a: String,
    /// The execution compared with it (deltas are b - a).
    #[schemars(length(min = 1, max = 128))]
    pub b: String,
}

/// What an execution's report says, in one word with reasons. `failed` is what makes
/// `mcpt run` exit non-zero, read from the same fields: the execution failed, was cancelled or
/// has not finished, or the report's `summary.thresholds_passed` is `false` (a threshold, or a
/// `security_test`'s `fail_on`). Otherwise `passed` when it completed with an error rate under
/// 1 % and every planned request sent, and `degraded` for anything short of that (errors,
/// planned requests not sent, no request completed, a node lost, findings under `fail_on`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub verdict: &'static str,
    pub reasons: Vec<String>,
}

pub const PASS_ERROR_RATE: f64 = 0.01;

/// The verdict of an execution in `state` whose report summary is `summary` (`None`: no
/// report).
pub fn verdict(state: &str, summary: Option<&Value>) -> Verdict {
    let mut failed = Vec::new();
    let mut degraded = Vec::new();
    match State::parse(state) {
        Some(State::Completed) => {}
        Some(State::CompletedDegraded) => {
            degraded.push("completed degraded: a node was lost during the run".to_string())
        }
        Some(State::Failed) => failed.push("the execution failed".to_string()),
        Some(State::Cancelled) => failed.push("the execution was cancelled".to_string()),
        _ => failed.push(format!("the execution is {state}, not finished")),
    }
    match summary {
        None => failed.push("there is no report".to_string()),
        Some(s) => judge_summary(s, state, &mut failed, &mut degraded),
    }
    if !failed.is_empty() {
        failed.extend(degraded);
        Verdict {
            verdict: "failed",
            reasons: failed,
        }
    } else if !degraded.is_empty() {
        Verdict {
            verdict: "degraded",
            reasons: degraded,
        }
    } else {
        Verdict {
            verdict: "passed",
            reasons: vec![format!(
                "completed with an error rate below 1 % and every planned request sent"
            )],
        }
    }
}

/// What a report's summary adds to the verdict.
fn judge_summary(s: &Value, state: &str, failed: &mut Vec<String>, degraded: &mut Vec<String>) {
    let num = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let total = num("total_requests");
    let rate = num("error_rate");
    let not_sent = num("not_sent");
    let errors = s
        .get("errors")
        .and_then(|e| e.get("total"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if total == 0.0 {
        degraded.push("no request completed".to_string());
    } else if rate >= PASS_ERROR_RATE {
        degraded.push(format!(
            "error rate {:.2} % ({errors} of {total} requests) is 1 % or more; no threshold \
             holds it (add one, e.g. \"error_rate < 0.01\", to fail on it)",
            rate * 100.0
        ));
    }
    if not_sent > 0.0 {
        degraded.push(format!("{not_sent} planned requests were never sent"));
    }
    if s.get("thresholds_passed").and_then(Value::as_bool) == Some(false) {
        failed.push(
            "a threshold failed (see each task's `thresholds`: threshold, actual, bound)"
                .to_string(),
        );
    }
    // A watch's stop (a threshold's abort fails the execution; a stress test's breaking
    // point completes it) is no interruption.
    if let Some(why) = s.get("stopped_by").and_then(Value::as_str) {
        if State::parse(state) == Some(State::Failed) {
            failed.push(format!("stopped early: {why}"));
        }
    } else if s.get("interrupted").and_then(Value::as_bool) == Some(true) {
        degraded.push("the run was interrupted".to_string());
    }
}

/// `get_report`'s verdict over a whole report: [`verdict`] over the load figures (over the
/// scans' own requests when every task is a scan), each failed threshold named (a scan's
/// `fail_on` is one), and the security tasks' findings under their `fail_on` and slices not
/// scanned, which degrade it.
pub fn report_verdict(state: &str, report: &Value) -> Verdict {
    let tasks: Vec<&Value> = report["tasks"].as_array().into_iter().flatten().collect();
    let scans: Vec<&Value> = tasks
        .iter()
        .copied()
        .filter(|t| t["type"] == scan::TASK_TYPE)
        .collect();
    let mut summary = report["summary"].clone();
    if !scans.is_empty() && scans.len() == tasks.len() {
        summary = scan::summary(&scans, &report["summary"]);
    }
    let v = verdict(state, Some(&summary));
    let mut failed = Vec::new();
    for t in &tasks {
        for th in t["thresholds"].as_array().into_iter().flatten() {
            if th["passed"] == Value::Bool(false) {
                failed.push(format!(
                    "task {}: `{}` failed: {} against {}",
                    t["name"].as_str().unwrap_or(""),
                    th["threshold"].as_str().unwrap_or(""),
                    th["actual"],
                    th["bound"]
                ));
            }
        }
    }
    let mut degraded = Vec::new();
    for t in scans {
        scan::judge_findings(t, &mut degraded);
    }
    let verdict = if v.verdict == "failed" {
        "failed"
    } else if v.verdict == "degraded" || !degraded.is_empty() {
        "degraded"
    } else {
        "passed"
    };
    let mut reasons = if v.verdict == "passed" && !degraded.is_empty() {
        Vec::new()
    } else {
        v.reasons
    };
    reasons.extend(failed);
    reasons.extend(degraded);
    Verdict { verdict, reasons }
}

/// Live figures of an execution view (`GET /api/executions/{id}`), summed over its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Live {
    pub elapsed_s: f64,
    pub duration_s: f64,
    /// Completed in the latest complete second while it runs; once it has ended, the
    /// server's `achieved_rps` (completed over the seconds the load ran).
    pub rps: f64,
    /// The highest p99 so far among the tasks (ms).
    pub p99_ms: f64,
    pub errors: u64,
}

impl Live {
    pub fn of(view: &Value) -> Live {
        let duration_s = view["duration_s"].as_f64().unwrap_or(0.0);
        let percent = view["progress_percent"].as_f64().unwrap_or(0.0);
        let mut live = Live {
            elapsed_s: (percent / 100.0 * duration_s).clamp(0.0, duration_s),
            duration_s,
            ..Live::default()
        };
        let ended = view["state"].as_str().is_some_and(is_final);
        if ended {
            live.rps = view["achieved_rps"].as_f64().unwrap_or(0.0);
        }
        for t in view["tasks"].as_array().into_iter().flatten() {
            if !ended {
                live.rps += t["last_second"]["completed"].as_f64().unwrap_or(0.0);
            }
            live.p99_ms = live
                .p99_ms
                .max(t["latency_ms"]["p99"].as_f64().unwrap_or(0.0));
            live.errors += t["errors"].as_u64().unwrap_or(0);
        }
        live
    }

    /// `running 3/8 s: 99.8 rps, p99 2.1 ms, 0 errors`.
    pub fn message(&self, state: &str) -> String {
        format!(
            "{state} {:.0}/{:.0} s: {:.1} rps, p99 {:.1} ms, {} errors",
            self.elapsed_s, self.duration_s, self.rps, self.p99_ms, self.errors
        )
    }
}

/// Whether an execution state is final.
pub fn is_final(state: &str) -> bool {
    State::parse(state).is_some_and(State::is_terminal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(total: u64, errors: u64, not_sent: u64) -> Value {
        json!({"total_requests": total, "not_sent": not_sent, "interrupted": false,
               "errors": {"total": errors},
               "error_rate": if total > 0 { errors as f64 / total as f64 } else { 0.0 }})
    }

    #[test]
    fn verdicts() {
        let v = |state: &str, s: Option<Value>| verdict(state, s.as_ref());
        assert_eq!(v("completed", Some(summary(1000, 9, 0))).verdict, "passed");
        let d = v("completed", Some(summary(1000, 10, 0)));
        assert_eq!(d.verdict, "degraded");
        assert!(d.reasons[0].contains("1.00 %"), "{d:?}");
        assert_eq!(
            v("completed", Some(summary(1000, 0, 3))).verdict,
            "degraded"
        );
        assert_eq!(
            v("completed_degraded", Some(summary(1000, 0, 0))).verdict,
            "degraded"
        );
        // Errors alone do not fail it: `mcpt run` exits 0 for them without a threshold.
        let e = v("completed", Some(summary(1000, 50, 0)));
        assert_eq!(e.verdict, "degraded", "{e:?}");
        assert!(e.reasons[0].contains("no threshold holds it"), "{e:?}");
        let mut judged = summary(1000, 0, 0);
        judged["thresholds_passed"] = json!(false);
        let t = v("completed", Some(judged));
        assert_eq!(t.verdict, "failed");
        assert!(t.reasons[0].contains("threshold"), "{t:?}");
        assert_eq!(v("completed", Some(summary(0, 0, 0))).verdict, "degraded");
        let c = v("cancelled", Some(summary(1000, 0, 500)));
        assert_eq!(c.verdict, "failed");
        assert_eq!(c.reasons.len(), 2, "{c:?}");
        assert_eq!(v("failed", None).verdict, "failed");
        assert_eq!(v("running", Some(summary(10, 0, 0))).verdict, "failed");
    }

    /// A scan fails the verdict exactly when its `fail_on` verdict (or a threshold) failed,
    /// as `mcpt run`'s exit code does; findings that pass it degrade it.
    #[test]
    fn a_security_reports_verdict_reads_its_fail_on() {
        let report = |findings: Value, fail_on_passed: Option<bool>| {
            let thresholds: Vec<Value> = fail_on_passed
                .map(|p| {
                    json!({"threshold": "fail_on: high", "passed": p,
                                "actual": if p { 0 } else { 1 }, "bound": 0})
                })
                .into_iter()
                .collect();
            json!({"summary": {"total_requests": 0, "errors": {"total": 0}, "error_rate": 0.0,
                               "not_sent": 0, "interrupted": false,
                               "thresholds_passed": fail_on_passed},
                   "tasks": [{"type": "security_test", "name": "s", "thresholds": thresholds,
                       "security": {"requests_sent": 40, "request_errors": 0,
                       "findings": findings, "nodes_lost": []}}]})
        };
        let clean = report_verdict("completed", &report(json!([]), Some(true)));
        assert_eq!(clean.verdict, "passed", "{clean:?}");
        let low = report_verdict(
            "completed",
            &report(json!([{"severity": "low"}]), Some(true)),
        );
        assert_eq!(low.verdict, "degraded", "{low:?}");
        assert_eq!(low.reasons, ["security_test s: 1 findings (1 low)"]);
        let findings = json!([{"severity": "low"}, {"severity": "critical"}]);
        let high = report_verdict("completed", &report(findings.clone(), Some(false)));
        assert_eq!(high.verdict, "failed", "{high:?}");
        assert!(
            high.reasons
                .iter()
                .any(|r| r == "task s: `fail_on: high` failed: 1 against 0"),
            "{high:?}"
        );
        // fail_on: none: no verdict, so no failure, whatever was found.
        let none = report_verdict("completed", &report(findings, None));
        assert_eq!(none.verdict, "degraded", "{none:?}");
    }

    #[test]
    fn the_progress_line_sums_the_tasks() {
        let view = json!({"state": "running", "duration_s": 8.0, "progress_percent": 37.5,
        "tasks": [
            {"errors": 1, "latency_ms": {"p99": 2.1}, "last_second": {"completed": 60}},
            {"errors": 0, "latency_ms": {"p99": 1.5}, "last_second": {"completed": 39.8}},
        ]});
        let live = Live::of(&view);
        assert_eq!(live.elapsed_s, 3.0);
        assert_eq!(
            live.message("running"),
            "running 3/8 s: 99.8 rps, p99 2.1 ms, 1 errors"
        );
        let pending = Live::of(
            &json!({"state": "pending", "duration_s": 8.0, "progress_percent": 0, "tasks": []}),
        );
        assert_eq!(
            pending.message("pending"),
            "pending 0/8 s: 0.0 rps, p99 0.0 ms, 0 errors"
        );
        // Cancelled after 2 of 8 s: how far it got and the server's rate over those 2 s.
        let cancelled = Live::of(&json!({"state": "cancelled", "duration_s": 8.0,
            "progress_percent": 25.0, "achieved_rps": 107.0,
            "tasks": [{"errors": 0, "latency_ms": {"p99": 1.0}, "last_second": {"completed": 3}}]}));
        assert_eq!(
            cancelled.message("cancelled"),
            "cancelled 2/8 s: 107.0 rps, p99 1.0 ms, 0 errors"
        );
    }
}
