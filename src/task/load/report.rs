//! A load or performance test in the report, in text and HTML. A kind that runs on the request
//! engine too (a stress test) adds its part between [`figures_text`] and [`thresholds_text`],
//! and between [`html_head`] and [`html_tail`]. A load test adds nothing to the task's JSON.

use std::fmt::Write as _;

use crate::stats::html::{
    errors_table, escape, figure, fmt_percent, fmt_rate, fmt_seconds, percentile_table,
};
use crate::stats::report::TaskReport;

/// The task in the text report.
pub fn text<S>(t: &TaskReport<S>, out: &mut String) {
    figures_text(t, out);
    thresholds_text(t, out);
}

/// The task's `<section>` in the HTML report.
pub fn html<S>(t: &TaskReport<S>, i: usize, out: &mut String) {
    html_head(t, i, out);
    html_tail(t, i, out);
}

/// The task's line, its requests, latency, errors, status codes and lost nodes.
pub fn figures_text<S>(t: &TaskReport<S>, out: &mut String) {
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
    outcomes_text(t, out);
}

fn outcomes_text<S>(t: &TaskReport<S>, out: &mut String) {
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
}

/// Each threshold's verdict.
pub fn thresholds_text<S>(t: &TaskReport<S>, out: &mut String) {
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

/// The section's opening: the task's line, its figures and its thresholds.
pub fn html_head<S>(t: &TaskReport<S>, i: usize, out: &mut String) {
    let _ = write!(
        out,
        "<section class=\"task\" data-task-index=\"{i}\"><h2>Task {}</h2><p class=\"meta\">\
         {} model, {} pattern, {} arrivals, {} users, seed {}</p><dl class=\"figures\">",
        escape(&t.name),
        escape(&t.model),
        escape(&t.pattern),
        escape(&t.arrivals),
        t.concurrent_users,
        t.seed
    );
    for (key, label, raw, shown, warn) in html_figures(t) {
        figure(out, key, label, &raw, &shown, warn);
    }
    out.push_str("</dl>");
    thresholds_html(t, out);
}

/// The task's figures: `(key, label, raw value, shown value, warn)` each.
fn html_figures<S>(t: &TaskReport<S>) -> Vec<(&'static str, &'static str, String, String, bool)> {
    let n = |v: u64| v.to_string();
    let mut rows = vec![(
        "total_requests",
        "Requests",
        n(t.total_requests),
        n(t.total_requests),
        false,
    )];
    if let Some(p) = t.planned_requests {
        rows.push(("planned_requests", "Planned", n(p), n(p), false));
    }
    let rate = if t.total_requests > 0 {
        t.errors.total as f64 / t.total_requests as f64
    } else {
        0.0
    };
    rows.extend([
        (
            "achieved_rps",
            "Achieved req/s",
            t.achieved_rps.to_string(),
            fmt_rate(t.achieved_rps),
            false,
        ),
        (
            "duration_s",
            "Duration",
            t.duration_s.to_string(),
            fmt_seconds(t.duration_s),
            false,
        ),
        (
            "error_rate",
            "Error rate",
            rate.to_string(),
            fmt_percent(rate),
            t.errors.total > 0,
        ),
        (
            "late_starts",
            "Late starts",
            n(t.late_starts),
            n(t.late_starts),
            t.late_starts > 0,
        ),
    ]);
    if let Some(k) = t.not_sent {
        rows.push(("not_sent", "Not sent", n(k), n(k), k > 0));
    }
    rows.push((
        "slow_responses",
        "Slow responses",
        n(t.slow_responses),
        n(t.slow_responses),
        t.slow_responses > 0,
    ));
    rows
}

fn thresholds_html<S>(t: &TaskReport<S>, out: &mut String) {
    if t.thresholds.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Thresholds</h3><table class=\"thresholds\"><thead><tr><th>threshold</th>\
         <th>verdict</th><th>actual</th><th>bound</th></tr></thead><tbody>",
    );
    for v in &t.thresholds {
        let verdict = match (v.passed, v.aborted_at_s) {
            (true, _) => "pass".to_string(),
            (false, Some(at)) => format!("FAIL, aborted the run at {at} s"),
            (false, None) => "FAIL".to_string(),
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{verdict}</td><td>{}</td><td>{}</td></tr>",
            if v.passed { "pass" } else { "fail" },
            escape(&v.threshold),
            (v.actual * 1000.0).round() / 1000.0,
            (v.bound * 1000.0).round() / 1000.0
        );
    }
    out.push_str("</tbody></table>");
}

/// The section's rest: latency, the timeline's charts, status codes, errors, nodes.
pub fn html_tail<S>(t: &TaskReport<S>, i: usize, out: &mut String) {
    out.push_str("<h3>Latency</h3>");
    percentile_table(out, &t.latency_ms, &t.latency_uncorrected_ms);
    let _ = write!(
        out,
        "<h3>Timeline</h3><div class=\"charts\" data-task=\"{i}\">"
    );
    if t.timeline.is_empty() {
        out.push_str("<p class=\"muted\">No timeline: no complete second was recorded.</p>");
    }
    out.push_str("</div><div class=\"tables\"><div><h3>Status codes</h3>");
    if t.status_codes.is_empty() {
        out.push_str("<p class=\"muted\">no responses</p>");
    } else {
        out.push_str(
            "<table class=\"status-codes\"><thead><tr><th>status</th><th>count</th></tr></thead><tbody>",
        );
        for (code, n) in &t.status_codes {
            let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(code));
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div><div><h3>Errors</h3>");
    errors_table(out, &t.errors);
    out.push_str("</div>");
    nodes_html(t, out);
    out.push_str("</div></section>");
}

fn nodes_html<S>(t: &TaskReport<S>, out: &mut String) {
    if t.nodes.is_empty() {
        return;
    }
    out.push_str(
        "<div><h3>Nodes</h3><table class=\"nodes\"><thead><tr><th>node</th><th>sent</th>\
         <th>completed</th><th>errors</th><th>state</th></tr></thead><tbody>",
    );
    for n in &t.nodes {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&n.node_id),
            n.sent,
            n.completed,
            n.errors,
            match (n.lost, n.in_flight) {
                (true, Some(k)) => format!("lost ({k} in flight)"),
                (true, None) => "lost".into(),
                _ => "ok".into(),
            }
        );
    }
    out.push_str("</tbody></table></div>");
}
