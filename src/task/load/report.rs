//! A load or performance test in the report, in text and HTML. A kind that runs on the request
//! engine too (a stress test) adds its part between [`figures_text`] and [`thresholds_text`],
//! and between [`html_head`] and [`html_tail`]. A load test adds nothing to the task's JSON.

use std::fmt::Write as _;

use crate::stats::html::{
    errors_table, escape, figure, fmt_percent, fmt_rate, fmt_seconds, percentile_table,
};
use crate::stats::report::TaskReport;
use crate::stats::request::IterationsReport;

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
    // A flow plans iterations (its line below), not requests.
    match t.planned_requests.filter(|_| t.iterations.is_none()) {
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
    if let Some(i) = &t.iterations {
        let planned = i
            .planned
            .map(|p| format!(" of {p} planned"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  iterations {}{planned} ({} started), {} failed, {:.1} it/s, p50 {:.3} ms, p99 {:.3} ms{}",
            i.completed,
            i.started,
            i.failed,
            i.rps,
            i.latency_ms.p50,
            i.latency_ms.p99,
            if i.data_exhausted {
                "; data exhausted: a unique data source ran out of rows, later arrivals not started"
            } else {
                ""
            }
        );
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
    crate::stats::request_view::text(&t.requests, &t.failures, out);
    crate::stats::change::text(&t.adjustments, out);
}

fn outcomes_text<S>(t: &TaskReport<S>, out: &mut String) {
    let e = &t.errors;
    let _ = writeln!(
        out,
        "  errors     {} (connect {}, timeout {}, status {}, body {}, tls {}, check {})",
        e.total, e.connect, e.timeout, e.status, e.body, e.tls, e.check
    );
    tls_text(t, out);
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

/// The TLS handshakes of a task with https targets, and a warning when certificates went
/// unverified.
fn tls_text<S>(t: &TaskReport<S>, out: &mut String) {
    let Some(tls) = &t.tls else {
        return;
    };
    let _ = writeln!(
        out,
        "  tls        {} full handshakes, {} resumed",
        tls.handshakes_full, tls.handshakes_resumed
    );
    if tls.insecure {
        let _ = writeln!(out, "  tls        {INSECURE}");
    }
}

/// What the report says of a task run with `insecure: true`.
pub const INSECURE: &str =
    "certificates NOT verified: a target has insecure: true (any server was trusted)";

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
    if t.tls.is_some_and(|tls| tls.insecure) {
        let _ = write!(
            out,
            "<p class=\"warn\" data-tls=\"insecure\"><strong>TLS:</strong> {}</p>",
            escape(INSECURE)
        );
    }
    for (key, label, raw, shown, warn) in html_figures(t) {
        figure(out, key, label, &raw, &shown, warn);
    }
    out.push_str("</dl>");
    thresholds_html(t, out);
}

/// The task's figures: `(key, label, raw value, shown value, warn)` each.
/// A figure: `(key, label, raw value, shown value, warn)`.
type Figure = (&'static str, &'static str, String, String, bool);

fn html_figures<S>(t: &TaskReport<S>) -> Vec<Figure> {
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
    if let Some(i) = &t.iterations {
        iteration_figures(i, &mut rows);
    }
    if let Some(tls) = &t.tls {
        let (full, resumed) = (tls.handshakes_full, tls.handshakes_resumed);
        rows.push((
            "tls.handshakes_full",
            "TLS handshakes, full",
            n(full),
            n(full),
            false,
        ));
        rows.push((
            "tls.handshakes_resumed",
            "TLS handshakes, resumed",
            n(resumed),
            n(resumed),
            false,
        ));
    }
    rows
}

/// A flow's iteration figures.
fn iteration_figures(i: &IterationsReport, rows: &mut Vec<Figure>) {
    let n = |v: u64| v.to_string();
    rows.push((
        "iterations.completed",
        "Iterations",
        n(i.completed),
        n(i.completed),
        false,
    ));
    rows.push((
        "iterations.failed",
        "Iterations failed",
        n(i.failed),
        n(i.failed),
        i.failed > 0,
    ));
    rows.push((
        "iterations.rps",
        "Iterations/s",
        i.rps.to_string(),
        fmt_rate(i.rps),
        false,
    ));
    if i.data_exhausted {
        rows.push((
            "iterations.data_exhausted",
            "Data exhausted",
            "true".into(),
            "yes".into(),
            true,
        ));
    }
}

/// Each threshold's verdict, as a table (nothing without thresholds).
pub fn thresholds_html<S>(t: &TaskReport<S>, out: &mut String) {
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
    crate::stats::request_view::html(&t.requests, &t.failures, out);
    let _ = write!(
        out,
        "<h3>Timeline</h3><div class=\"charts\" data-task=\"{i}\">"
    );
    if t.timeline.is_empty() {
        out.push_str("<p class=\"muted\">No timeline: no complete second was recorded.</p>");
    }
    out.push_str("</div>");
    crate::stats::change::html(&t.adjustments, out);
    out.push_str("<div class=\"tables\"><div><h3>Status codes</h3>");
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use crate::stats::report::{TaskInfo, TlsReport};
    use crate::stats::{ErrorKind, Handshake, Outcome, TaskAccumulator, Window};
    use crate::task::report::{Report, Section};

    fn info(tls: Option<TlsReport>) -> TaskInfo {
        TaskInfo {
            name: "secure".into(),
            model: "closed",
            pattern: "constant".into(),
            arrivals: "uniform",
            seed: 1,
            concurrent_users: 2,
            duration_s: 1.0,
            planned_requests: None,
            nodes: Vec::new(),
            lost: Vec::new(),
            reported_sent: Vec::new(),
            kind: "load_test",
            judged: Vec::new(),
            thresholds: Vec::new(),
            aborted: None,
            tls,
        }
    }

    /// One second: 2 full handshakes, 3 resumed, 1 refused certificate, over 6 requests.
    fn accumulator() -> TaskAccumulator {
        let mut w = Window::new(0);
        let ok = Outcome {
            status: Some(200),
            error: None,
            bytes: 1,
            slow: false,
            handshake: None,
            ..Outcome::default()
        };
        let shakes = [Some(Handshake::Full), Some(Handshake::Full)]
            .into_iter()
            .chain([Some(Handshake::Resumed); 3])
            .chain([None]);
        for (i, handshake) in shakes.enumerate() {
            let outcome = match i {
                5 => Outcome {
                    status: None,
                    error: Some(ErrorKind::Tls),
                    ..ok.clone()
                },
                _ => Outcome {
                    handshake,
                    ..ok.clone()
                },
            };
            w.sent += 1;
            w.record(&outcome, Duration::from_millis(2), Duration::from_millis(1));
        }
        let mut acc = TaskAccumulator::unplanned(1);
        acc.add(0, w, true);
        acc
    }

    fn report(tls: Option<TlsReport>) -> Report {
        let acc = accumulator();
        Report::build("r".into(), 0, vec![(info(tls), &acc, Section::Load)])
    }

    fn schema_errors(v: &Value) -> Vec<String> {
        let schema: Value =
            serde_json::from_str(include_str!("../../../schemas/report.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        validator.iter_errors(v).map(|e| e.to_string()).collect()
    }

    #[test]
    fn an_https_task_reports_its_handshakes_and_tls_errors() {
        let https = Some(TlsReport::default());
        let r = report(https);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["tasks"][0]["tls"],
            json!({"handshakes_full": 2, "handshakes_resumed": 3, "insecure": false})
        );
        assert_eq!(v["tasks"][0]["errors"]["tls"], json!(1));
        assert_eq!(v["summary"]["errors"]["tls"], json!(1));
        assert!(schema_errors(&v).is_empty(), "{:#?}", schema_errors(&v));
        let text = r.to_text();
        assert!(text.contains("body 0, tls 1, check 0)"), "{text}");
        assert!(
            text.contains("tls        2 full handshakes, 3 resumed"),
            "{text}"
        );
        assert!(!text.contains("NOT verified"), "{text}");
        let html = crate::stats::html::render(&r);
        assert!(html.contains("data-figure=\"tls.handshakes_full\" data-value=\"2\""));
        assert!(html.contains("data-figure=\"tls.handshakes_resumed\" data-value=\"3\""));
        assert!(html.contains("<tr data-kind=\"tls\"><td>tls</td><td>1</td></tr>"));
        assert!(!html.contains("data-tls=\"insecure\""));
        // Read back from the store as written.
        let back: Report = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), v);
    }

    #[test]
    fn insecure_is_said_in_json_text_and_html() {
        let r = report(Some(TlsReport {
            insecure: true,
            ..TlsReport::default()
        }));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["tasks"][0]["tls"]["insecure"], json!(true));
        assert!(schema_errors(&v).is_empty(), "{:#?}", schema_errors(&v));
        let text = r.to_text();
        assert!(
            text.contains(&format!("tls        {}", super::INSECURE)),
            "{text}"
        );
        let html = crate::stats::html::render(&r);
        assert!(html.contains("data-tls=\"insecure\""), "{html}");
        assert!(html.contains("certificates NOT verified"));
    }

    #[test]
    fn an_http_task_has_no_tls_part() {
        let r = report(None);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["tasks"][0].get("tls").is_none(), "{v:#}");
        assert!(schema_errors(&v).is_empty(), "{:#?}", schema_errors(&v));
        assert!(!r.to_text().contains("handshakes"));
        assert!(!crate::stats::html::render(&r).contains("tls.handshakes_full"));
        // A report stored before `tls` existed reads back, its errors' tls as 0.
        let mut old = v.clone();
        old["tasks"][0]["errors"]
            .as_object_mut()
            .unwrap()
            .remove("tls");
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back.tasks[0].errors.tls, 0);
    }
}
