//! The run report: JSON (its schema is `schemas/report.schema.json`, a contract) and text.
//!
//! The report knows no task kind: each task carries its kind's [`Section`] (flattened into the
//! task's JSON object), which also says how the task reads in text and HTML.
//! `crate::task::report` lists the kinds.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::request::{self, FailureReport, ITERATION, IterationsReport, RequestReport};
use super::thresholds::{Figures, Threshold, Verdict, verdicts};
use super::{ErrorCounts, Percentiles, TaskAccumulator, TimelinePoint, new_histogram};

/// What a task kind adds to its task's report: its part of the JSON (the fields of its
/// serialization, flattened into the task's object after `timeline`), and how the task reads
/// in the text and the HTML report.
pub trait Section: Sized {
    /// The task in the text report (`t.section` is `self`).
    fn text(t: &TaskReport<Self>, out: &mut String);
    /// The task's `<section>` in the HTML report; `i` is its index in `tasks`.
    fn html(t: &TaskReport<Self>, i: usize, out: &mut String);
    /// Page script drawing the kind's own charts, run once per task with `t` (the task's
    /// JSON), `i` (its index) and `C` (the chart module) in scope.
    const CHARTS_JS: &'static str = "";
    /// The kind's own JUnit test cases, after the task's and its thresholds' (a scan's one
    /// per check).
    fn junit(_t: &TaskReport<Self>, _cases: &mut Vec<super::junit::Case>) {}
}

/// Also read back (`Deserialize`) from the store, for the HTML report and comparisons.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report<S> {
    pub name: String,
    /// Milliseconds since the Unix epoch when the first task started.
    pub started_at_ms: u64,
    pub summary: Summary,
    pub tasks: Vec<TaskReport<S>>,
}

/// All tasks together.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    /// The run was stopped before its plan ended (Ctrl-C, or a watch: a failed threshold with
    /// `abort_on_fail`); the figures cover what ran.
    pub interrupted: bool,
    /// Why a watch stopped the run early, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// The run's verdict: whether every threshold of every task passed, a `security_test`'s
    /// `fail_on` included (`null` when no task has one). `mcpt run` exits 3 when it is
    /// `false`; MCP's verdict and the web UI read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds_passed: Option<bool>,
    pub total_requests: u64,
    /// Requests the plans called for (open-model tasks only).
    pub planned_requests: u64,
    /// Requests started (by every node, lost ones included as far as they reported).
    pub sent_requests: u64,
    /// Open-model requests planned and never sent (a lost node's share before it was
    /// re-split, a paused node, an interrupted run).
    pub not_sent: u64,
    pub achieved_rps: f64,
    pub duration_s: f64,
    pub late_starts: u64,
    pub errors: ErrorCounts,
    pub error_rate: f64,
    pub latency_ms: Percentiles,
    pub latency_uncorrected_ms: Percentiles,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskReport<S> {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    pub model: Cow<'static, str>,
    pub pattern: String,
    pub arrivals: Cow<'static, str>,
    pub seed: u64,
    pub concurrent_users: u32,
    pub duration_s: f64,
    /// Open model: the plan's request count (its rate integral); `null` for closed.
    pub planned_requests: Option<u64>,
    /// Requests that finished (successes and failures).
    pub total_requests: u64,
    /// Requests started.
    pub sent_requests: u64,
    /// Open model: planned requests never sent; `null` for closed.
    pub not_sent: Option<u64>,
    pub achieved_rps: f64,
    /// Open model: arrivals that had to wait for the `concurrent_users` cap.
    pub late_starts: u64,
    /// From the planned start: what a user arriving on schedule saw.
    pub latency_ms: Percentiles,
    /// From the actual send.
    pub latency_uncorrected_ms: Percentiles,
    pub errors: ErrorCounts,
    pub status_codes: BTreeMap<String, u64>,
    /// Responses slower than their target's `expected_response_time`.
    pub slow_responses: u64,
    pub bytes_received: u64,
    /// A task with https targets: its TLS handshakes, and whether certificates went
    /// unverified. Absent for a task that spoke only http.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    /// Per node (a standalone run has one, `local`).
    pub nodes: Vec<NodeReport>,
    /// Per request name (a load task; absent from reports stored before names were added).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestReport>,
    /// The failed requests by name, kind and message, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureReport>,
    /// A flow's iterations (absent for a task of targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<IterationsReport>,
    pub timeline: Vec<TimelinePoint>,
    /// The live changes made to the task while it ran (its plan, users, pauses), and who
    /// made them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<super::change::Adjustment>,
    /// The kind's own part (a stress test's curve, a scan's findings; nothing for a load test).
    #[serde(flatten)]
    pub section: S,
    /// Each threshold's verdict over the task's final figures (the aborting one failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Verdict>,
}

/// The TLS of a task with https targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TlsReport {
    /// Connections opened with a full handshake.
    pub handshakes_full: u64,
    /// Connections opened by resuming an earlier connection's session.
    pub handshakes_resumed: u64,
    /// A target had `insecure: true`: its server's certificate was not verified.
    pub insecure: bool,
}

/// One node's part of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeReport {
    pub node_id: String,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    /// The node was lost during the task; `sent` is what it last reported.
    pub lost: bool,
    /// A lost node: requests it had sent with no response recorded when it was last heard
    /// from (its windows and heartbeats); the target may have seen them. `null` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
}

/// What the report needs to know of a task besides its figures.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub name: String,
    pub model: &'static str,
    pub pattern: String,
    pub arrivals: &'static str,
    pub seed: u64,
    pub concurrent_users: u32,
    pub duration_s: f64,
    pub planned_requests: Option<u64>,
    /// The nodes by shard slot (empty standalone), and which of them were lost.
    pub nodes: Vec<String>,
    pub lost: Vec<bool>,
    /// Per slot: requests the node said it had sent (its heartbeats), which may exceed what
    /// its windows show when it was lost before its last window.
    pub reported_sent: Vec<u64>,
    /// The task's type: `load_test` or `performance_test`.
    pub kind: &'static str,
    pub thresholds: Vec<Threshold>,
    /// Verdicts the task's kind reached over its own figures (a scan's `fail_on` and its
    /// thresholds over its counters), listed before those of `thresholds`.
    pub judged: Vec<Verdict>,
    /// The threshold that stopped the run (its index), and at which second (0-based).
    pub aborted: Option<(usize, u64)>,
    /// `Some` for a task with https targets, with `insecure` set when one of them had
    /// `insecure: true`; the handshakes are counted from the windows.
    pub tls: Option<TlsReport>,
}

impl<S> TaskReport<S> {
    /// The task's figures from its accumulator; `section` is its kind's part.
    pub fn build(info: TaskInfo, acc: &TaskAccumulator, section: S) -> TaskReport<S> {
        let total = acc.total();
        let nodes = node_reports(&info, acc);
        let sent_requests = if nodes.is_empty() {
            total.sent
        } else {
            nodes.iter().map(|n| n.sent).sum()
        };
        let achieved_rps = super::achieved_rps(total.completed, info.duration_s);
        let (mut requests, failures) = request::rows(acc.names(), &total.requests, info.duration_s);
        let iterations = take_iterations(&mut requests, info.planned_requests, total);
        TaskReport {
            name: info.name,
            kind: info.kind.into(),
            model: info.model.into(),
            pattern: info.pattern,
            arrivals: info.arrivals.into(),
            seed: info.seed,
            concurrent_users: info.concurrent_users,
            duration_s: info.duration_s,
            planned_requests: info.planned_requests,
            total_requests: total.completed,
            sent_requests,
            // A flow plans iterations: those not started.
            not_sent: info.planned_requests.map(|p| {
                p.saturating_sub(iterations.as_ref().map_or(sent_requests, |i| i.started))
            }),
            achieved_rps,
            late_starts: total.late_starts,
            latency_ms: Percentiles::of(&total.corrected),
            latency_uncorrected_ms: Percentiles::of(&total.uncorrected),
            errors: total.errors,
            status_codes: total
                .status_codes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            slow_responses: total.slow,
            bytes_received: total.bytes,
            tls: info.tls.map(|t| TlsReport {
                handshakes_full: total.tls_handshakes_full,
                handshakes_resumed: total.tls_handshakes_resumed,
                insecure: t.insecure,
            }),
            nodes,
            requests,
            failures,
            iterations,
            timeline: acc.timeline().to_vec(),
            adjustments: Vec::new(),
            section,
            thresholds: info
                .judged
                .into_iter()
                .chain(verdicts(
                    &info.thresholds,
                    &Figures::so_far(acc, info.duration_s),
                    info.aborted,
                ))
                .collect(),
        }
    }
}

/// Each node's part of a task, lost nodes with what they last said they had sent.
fn node_reports(info: &TaskInfo, acc: &TaskAccumulator) -> Vec<NodeReport> {
    info.nodes
        .iter()
        .enumerate()
        .map(|(slot, id)| {
            let t = acc.shard_totals().get(slot).copied().unwrap_or_default();
            let sent = t
                .sent
                .max(info.reported_sent.get(slot).copied().unwrap_or(0));
            let lost = info.lost.get(slot).copied().unwrap_or(false);
            NodeReport {
                node_id: id.clone(),
                sent,
                completed: t.completed,
                errors: t.errors,
                lost,
                in_flight: lost.then(|| sent.saturating_sub(t.completed)),
            }
        })
        .collect()
}

/// A flow's iteration row, taken out of `requests` (`None` for a task of targets).
fn take_iterations(
    requests: &mut Vec<RequestReport>,
    planned: Option<u64>,
    total: &super::Window,
) -> Option<IterationsReport> {
    let at = requests
        .iter()
        .position(|r| r.name == ITERATION && r.method == "FLOW")?;
    let row = requests.remove(at);
    Some(IterationsReport {
        planned,
        started: total.iterations,
        completed: row.count,
        failed: row.errors.total,
        rps: row.rps,
        latency_ms: row.latency_ms,
        latency_uncorrected_ms: row.latency_uncorrected_ms,
        data_exhausted: total.data_exhausted > 0,
    })
}

impl<S> Report<S> {
    /// Builds the report from each task's description, accumulator and kind's section.
    pub fn build(
        name: String,
        started_at_ms: u64,
        tasks: Vec<(TaskInfo, &TaskAccumulator, S)>,
    ) -> Report<S> {
        let mut corrected = new_histogram();
        let mut uncorrected = new_histogram();
        let mut errors = ErrorCounts::default();
        let (mut total, mut planned, mut late) = (0, 0, 0);
        let (mut sent, mut not_sent) = (0, 0);
        let mut duration_s: f64 = 0.0;
        let mut reports = Vec::new();
        for (info, acc, section) in tasks {
            let t = acc.total();
            corrected
                .add(&t.corrected)
                .expect("histograms share bounds");
            uncorrected
                .add(&t.uncorrected)
                .expect("histograms share bounds");
            errors.merge(&t.errors);
            total += t.completed;
            late += t.late_starts;
            planned += info.planned_requests.unwrap_or(0);
            duration_s = duration_s.max(info.duration_s);
            let task = TaskReport::build(info, acc, section);
            sent += task.sent_requests;
            not_sent += task.not_sent.unwrap_or(0);
            reports.push(task);
        }
        Report {
            name,
            started_at_ms,
            summary: Summary {
                interrupted: false,
                stopped_by: None,
                thresholds_passed: reports
                    .iter()
                    .any(|t| !t.thresholds.is_empty())
                    .then(|| reports.iter().flat_map(|t| &t.thresholds).all(|v| v.passed)),
                total_requests: total,
                planned_requests: planned,
                sent_requests: sent,
                not_sent,
                achieved_rps: super::achieved_rps(total, duration_s),
                duration_s,
                late_starts: late,
                errors,
                error_rate: if total > 0 {
                    errors.total as f64 / total as f64
                } else {
                    0.0
                },
                latency_ms: Percentiles::of(&corrected),
                latency_uncorrected_ms: Percentiles::of(&uncorrected),
            },
            tasks: reports,
        }
    }

    /// Marks the report as interrupted after `ran_s` seconds: durations and rates then cover
    /// the time that ran, not the planned time.
    pub fn interrupt(&mut self, ran_s: f64) {
        self.summary.interrupted = true;
        for t in &mut self.tasks {
            t.duration_s = t.duration_s.min(ran_s);
            t.achieved_rps = super::achieved_rps(t.total_requests, t.duration_s);
        }
        let s = &mut self.summary;
        s.duration_s = s.duration_s.min(ran_s);
        s.achieved_rps = super::achieved_rps(s.total_requests, s.duration_s);
    }
}

impl<S: Section> Report<S> {
    /// The text report printed at the end of `mcpt run`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        if let Some(why) = &s.stopped_by {
            let _ = writeln!(out, "\nstopped early: {why}");
        } else if s.interrupted {
            let _ = writeln!(
                out,
                "\ninterrupted: the figures cover the part of the plan that ran"
            );
        }
        let _ = writeln!(
            out,
            "\n{}: {} requests in {:.1} s, {:.1} req/s, {} errors ({:.2}%)",
            self.name,
            s.total_requests,
            s.duration_s,
            s.achieved_rps,
            s.errors.total,
            s.error_rate * 100.0
        );
        for t in &self.tasks {
            S::text(t, &mut out);
        }
        if let Some(passed) = s.thresholds_passed {
            let verdict = if passed { "passed" } else { "FAILED" };
            let _ = writeln!(out, "\nthresholds {verdict}");
        }
        out
    }
}
