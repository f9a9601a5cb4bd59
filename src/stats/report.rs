//! The run report: JSON (its schema is `schemas/report.schema.json`, a contract) and text.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::thresholds::{Figures, Threshold, Verdict, verdicts};
use super::{ErrorCounts, Percentiles, TaskAccumulator, TimelinePoint, new_histogram};

/// Also read back (`Deserialize`) from the store, for the HTML report and comparisons.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub name: String,
    /// Milliseconds since the Unix epoch when the first task started.
    pub started_at_ms: u64,
    pub summary: Summary,
    pub tasks: Vec<TaskReport>,
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
    /// Whether every threshold of every task passed (`null` without thresholds).
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
pub struct TaskReport {
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
    /// Per node (a standalone run has one, `local`).
    pub nodes: Vec<NodeReport>,
    pub timeline: Vec<TimelinePoint>,
    /// A `stress_test`: the breaking point and the curve of rate against latency and errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<crate::task::stress::StressResult>,
    /// Each threshold's verdict over the task's final figures (the aborting one failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Verdict>,
    /// A `security_test`: its findings, merged over the nodes that scanned a slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<crate::task::security::ScanReport>,
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
    /// A `stress_test`'s spec: its result is the merged timeline read by its watch.
    pub stress: Option<crate::task::stress::StressSpec>,
    /// The task's type: `load_test` or `performance_test`.
    pub kind: &'static str,
    pub thresholds: Vec<Threshold>,
    /// The threshold that stopped the run (its index), and at which second (0-based).
    pub aborted: Option<(usize, u64)>,
}

impl TaskReport {
    pub fn build(info: TaskInfo, acc: &TaskAccumulator) -> TaskReport {
        let total = acc.total();
        let nodes: Vec<NodeReport> = info
            .nodes
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
            .collect();
        let sent_requests = if nodes.is_empty() {
            total.sent
        } else {
            nodes.iter().map(|n| n.sent).sum()
        };
        let achieved_rps = super::achieved_rps(total.completed, info.duration_s);
        // The watch is pure: replaying the timeline gives what the live one decided.
        let stress = info.stress.as_ref().map(|spec| {
            let mut watch = crate::task::stress::StressWatch::new(spec);
            for p in acc.timeline() {
                watch.second(p);
            }
            watch.result()
        });
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
            not_sent: info
                .planned_requests
                .map(|p| p.saturating_sub(sent_requests)),
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
            nodes,
            timeline: acc.timeline().to_vec(),
            stress,
            thresholds: verdicts(
                &info.thresholds,
                &Figures::so_far(acc, info.duration_s),
                info.aborted,
            ),
            security: None,
        }
    }
}

impl Report {
    /// Builds the report from each task's description and accumulator.
    pub fn build(
        name: String,
        started_at_ms: u64,
        tasks: Vec<(TaskInfo, &TaskAccumulator)>,
    ) -> Report {
        let mut corrected = new_histogram();
        let mut uncorrected = new_histogram();
        let mut errors = ErrorCounts::default();
        let (mut total, mut planned, mut late) = (0, 0, 0);
        let (mut sent, mut not_sent) = (0, 0);
        let mut duration_s: f64 = 0.0;
        let mut reports = Vec::new();
        for (info, acc) in tasks {
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
            let task = TaskReport::build(info, acc);
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
            if let Some(scan) = &t.security {
                security_text(&mut out, &t.name, scan);
                continue;
            }
            let _ = writeln!(
                out,
                "\ntask {} ({} model, {}, {} arrivals, {} users)",
                t.name, t.model, t.pattern, t.arrivals, t.concurrent_users
            );
            match t.planned_requests {
                Some(p) => {
                    let _ = writeln!(
                        out,
                        "  requests   {} of {} planned, {:.1} req/s, {} late starts",
                        t.total_requests, p, t.achieved_rps, t.late_starts
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  requests   {}, {:.1} req/s",
                        t.total_requests, t.achieved_rps
                    );
                }
            }
            let _ = writeln!(
                out,
                "  latency ms       p50       p90       p95       p99     p99.9       max      mean"
            );
            for (label, p) in [
                ("corrected", &t.latency_ms),
                ("uncorrected", &t.latency_uncorrected_ms),
            ] {
                let _ = writeln!(
                    out,
                    "  {label:<12}{:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                    p.p50, p.p90, p.p95, p.p99, p.p999, p.max, p.mean
                );
            }
            let e = &t.errors;
            let _ = writeln!(
                out,
                "  errors     {} (connect {}, timeout {}, status {}, body {})",
                e.total, e.connect, e.timeout, e.status, e.body
            );
            let codes: Vec<String> = t
                .status_codes
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(
                out,
                "  status     {}",
                if codes.is_empty() {
                    "none".into()
                } else {
                    codes.join(", ")
                }
            );
            if t.slow_responses > 0 {
                let _ = writeln!(
                    out,
                    "  slow       {} responses over expected_response_time",
                    t.slow_responses
                );
            }
            for n in t.nodes.iter().filter(|n| n.lost) {
                let _ = writeln!(
                    out,
                    "  lost node  {}: {} sent, {} completed, {} in flight when last heard from",
                    n.node_id,
                    n.sent,
                    n.completed,
                    n.in_flight.unwrap_or(0)
                );
            }
            if let Some(stress) = &t.stress {
                out.push_str(&stress.to_text());
            }
            for v in &t.thresholds {
                let mark = match (v.passed, v.aborted_at_s) {
                    (true, _) => "pass".to_string(),
                    (false, Some(at)) => format!("FAIL (aborted the run at {at} s)"),
                    (false, None) => "FAIL".to_string(),
                };
                let _ = writeln!(
                    out,
                    "  threshold  {:<36} {mark}: {} against {}",
                    v.threshold,
                    (v.actual * 1000.0).round() / 1000.0,
                    (v.bound * 1000.0).round() / 1000.0
                );
            }
        }
        if let Some(passed) = s.thresholds_passed {
            let verdict = if passed { "passed" } else { "FAILED" };
            let _ = writeln!(out, "\nthresholds {verdict}");
        }
        out
    }
}

/// A `security_test` task in the text report: its counts, its findings, its lost slices.
fn security_text(out: &mut String, name: &str, scan: &crate::task::security::ScanReport) {
    let _ = writeln!(
        out,
        "\ntask {name} (security_test): {} findings, {} requests sent, {} refused, {} errors, {:.1} s",
        scan.findings.len(),
        scan.requests_sent,
        scan.requests_refused,
        scan.request_errors,
        scan.duration_s
    );
    let by_type: Vec<String> = scan
        .by_type
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(out, "  by type    {}", by_type.join(", "));
    if !scan.findings.is_empty() {
        for line in scan.table().lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !scan.nodes_lost.is_empty() {
        let _ = writeln!(
            out,
            "  NOT SCANNED: the slices of lost nodes {}",
            scan.nodes_lost.join(", ")
        );
    }
    for note in &scan.notes {
        let _ = writeln!(out, "  note       {note}");
    }
}
