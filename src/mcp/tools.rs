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

/// What an execution's report says, in one word with reasons:
/// - `passed`: it completed, its error rate is below 1 % and every planned request was sent;
/// - `failed`: it failed or was cancelled, no request completed, or 5 % or more failed;
/// - `degraded`: anything between (errors from 1 % up to 5 %, planned requests not sent, a
///   node lost during the run, an interrupted run).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub verdict: &'static str,
    pub reasons: Vec<String>,
}

pub const PASS_ERROR_RATE: f64 = 0.01;
pub const FAIL_ERROR_RATE: f64 = 0.05;

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
        Some(s) => {
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
                failed.push("no request completed".to_string());
            } else if rate >= FAIL_ERROR_RATE {
                failed.push(format!(
                    "error rate {:.2} % ({errors} of {total} requests) is 5 % or more",
                    rate * 100.0
                ));
            } else if rate >= PASS_ERROR_RATE {
                degraded.push(format!(
                    "error rate {:.2} % ({errors} of {total} requests) is 1 % or more",
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

/// `get_report`'s verdict over a whole report: [`verdict`] over the load figures (over the
/// scans' own requests when every task is a scan), and the security tasks' findings: a high
/// or critical one fails it, a medium or low one degrades it, as does a slice not scanned.
pub fn report_verdict(state: &str, report: &Value) -> Verdict {
    let tasks: Vec<&Value> = report["tasks"].as_array().into_iter().flatten().collect();
    let scans: Vec<&Value> = tasks
        .iter()
        .copied()
        .filter(|t| t["type"] == scan::TASK_TYPE)
        .collect();
    let mut summary = report["summary"].clone();
    if !scans.is_empty() && scans.len() == tasks.len() {
        summary = scan::summary(&scans, &report["summary"]["interrupted"]);
    }
    let v = verdict(state, Some(&summary));
    let (mut failed, mut degraded) = (Vec::new(), Vec::new());
    for t in scans {
        scan::judge_findings(t, &mut failed, &mut degraded);
    }
    let mut reasons = if v.verdict == "passed" && (failed.len() + degraded.len()) > 0 {
        Vec::new()
    } else {
        v.reasons
    };
    let verdict = if v.verdict == "failed" || !failed.is_empty() {
        "failed"
    } else if v.verdict == "degraded" || !degraded.is_empty() {
        "degraded"
    } else {
        "passed"
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
        assert_eq!(v("completed", Some(summary(1000, 50, 0))).verdict, "failed");
        let mut judged = summary(1000, 0, 0);
        judged["thresholds_passed"] = json!(false);
        let t = v("completed", Some(judged));
        assert_eq!(t.verdict, "failed");
        assert!(t.reasons[0].contains("threshold"), "{t:?}");
        assert_eq!(v("completed", Some(summary(0, 0, 0))).verdict, "failed");
        let c = v("cancelled", Some(summary(1000, 0, 500)));
        assert_eq!(c.verdict, "failed");
        assert_eq!(c.reasons.len(), 2, "{c:?}");
        assert_eq!(v("failed", None).verdict, "failed");
        assert_eq!(v("running", Some(summary(10, 0, 0))).verdict, "failed");
    }

    #[test]
    fn a_security_reports_verdict_reads_the_findings() {
        let report = |findings: Value| {
            json!({"summary": {"total_requests": 0, "errors": {"total": 0}, "error_rate": 0.0,
                               "not_sent": 0, "interrupted": false},
                   "tasks": [{"type": "security_test", "name": "s", "security": {
                       "requests_sent": 40, "request_errors": 0, "findings": findings,
                       "nodes_lost": []}}]})
        };
        let clean = report_verdict("completed", &report(json!([])));
        assert_eq!(clean.verdict, "passed", "{clean:?}");
        let low = report_verdict("completed", &report(json!([{"severity": "low"}])));
        assert_eq!(low.verdict, "degraded", "{low:?}");
        assert_eq!(low.reasons.len(), 1, "{low:?}");
        let high = report_verdict(
            "completed",
            &report(json!([{"severity": "low"}, {"severity": "critical"}])),
        );
        assert_eq!(high.verdict, "failed", "{high:?}");
        assert!(high.reasons[0].contains("1 high or critical"), "{high:?}");
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
