//! The HTML report: one self-contained file (no network at all: a Content-Security-Policy that
//! forbids every fetch, no external URL), from the same [`Report`] as the JSON one. The
//! figures are static HTML; the timeline charts are drawn in the page by `charts.js` (shared
//! with the web UI) from the report JSON embedded in it.
//!
//! Text from the report (names, node ids) is HTML-escaped; the embedded JSON has `<`, `>`,
//! `&`, U+2028 and U+2029 as `\u` escapes, so no string in it can close its `<script>`.

use std::fmt::Write as _;

use super::report::{Report, TaskReport};
use super::{ErrorCounts, Percentiles};
use crate::task::security::ScanReport;

/// The chart module, inlined into every report.
pub const CHARTS_JS: &str = include_str!("../http/ui/charts.js");

/// The page's Content-Security-Policy: inline script and style, data: images, nothing else.
pub const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1d1d1f; background: #f6f7f9; margin: 0; padding: 24px; }
main { max-width: 1240px; margin: 0 auto; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 6px; }
h3 { font-size: 14px; margin: 16px 0 6px; color: #444; }
.meta { color: #555; margin: 0 0 16px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 16px 18px;
  margin: 0 0 18px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px;
  margin: 8px 0 0; }
.figures div { border: 1px solid #e6e8eb; border-radius: 4px; padding: 8px 10px; }
.figures dt { color: #555; font-size: 12px; }
.figures dd { margin: 2px 0 0; font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.warn dd { color: #b35900; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 4px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e8eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { color: #555; font-weight: 600; font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 8px;
  margin-top: 8px; }
.charts svg { width: 100%; height: auto; border: 1px solid #eef0f2; border-radius: 4px; }
.tables { display: flex; flex-wrap: wrap; gap: 28px; }
.muted { color: #777; }
footer { color: #777; font-size: 12px; }
"#;

/// The page's own script: draws each task's charts from the embedded report.
const DRAW: &str = r#"
(function () {
  'use strict';
  var report = JSON.parse(document.getElementById('report-data').textContent);
  var C = globalThis.McptCharts;
  report.tasks.forEach(function (t, i) {
    var el = document.querySelector('.charts[data-task="' + i + '"]');
    if (!el) return;
    var tl = t.timeline || [];
    var x = tl.map(function (p) { return p.second; });
    var col = function (k) { return tl.map(function (p) { return p[k]; }); };
    var rate = [{ name: 'achieved', values: col('completed') }];
    if (t.model !== 'closed') rate.unshift({ name: 'planned', values: col('planned'), dashed: true });
    rate.push({ name: 'sent', values: col('sent') });
    el.innerHTML = [
      C.line({ title: 'Requests per second', unit: 'req/s', x: x, series: rate }),
      C.line({ title: 'Latency (corrected)', unit: 'ms', x: x, series: [
        { name: 'p50', values: col('p50_ms') },
        { name: 'p95', values: col('p95_ms') },
        { name: 'p99', values: col('p99_ms') }] }),
      C.line({ title: 'Errors per second', unit: 'errors/s', x: x, series: [
        { name: 'errors', values: col('errors'), color: '#D55E00' }] })
    ].join('');
    var st = document.querySelector('.charts[data-stress="' + i + '"]');
    if (st && t.stress) {
      var steps = t.stress.steps || [];
      var rx = steps.map(function (s) { return s.rps; });
      var sc = function (k) { return steps.map(function (s) { return s[k]; }); };
      st.innerHTML = [
        C.line({ title: 'Latency by step rate', unit: 'ms', xUnit: 'req/s', x: rx, series: [
          { name: 'p50', values: sc('p50_ms') },
          { name: 'p95', values: sc('p95_ms') },
          { name: 'p99', values: sc('p99_ms') }] }),
        C.line({ title: 'Achieved rate and errors by step rate', unit: 'req/s', xUnit: 'req/s', x: rx, series: [
          { name: 'planned', values: rx, dashed: true },
          { name: 'achieved', values: sc('achieved_rps') },
          { name: 'errors', values: steps.map(function (s) { return s.error_rate * s.achieved_rps; }),
            color: '#D55E00' }] })
      ].join('');
    }
  });
  document.documentElement.setAttribute('data-charts', 'drawn');
})();
"#;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside a `<script>` element: `<`, `>`, `&` and the line separators
/// U+2028/U+2029 become `\u` escapes. They can occur only inside JSON strings, where the
/// escapes mean the same characters, so the data is unchanged.
pub fn script_json<T: serde::Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("reports serialize");
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// How the page shows a rate (req/s).
pub fn fmt_rate(v: f64) -> String {
    format!("{v:.1}")
}

/// How the page shows a duration in seconds.
pub fn fmt_seconds(v: f64) -> String {
    format!("{v:.1} s")
}

/// How the page shows an error rate (a fraction) as a percentage.
pub fn fmt_percent(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

/// How the page shows a latency in ms.
pub fn fmt_ms(v: f64) -> String {
    format!("{v:.3}")
}

/// One figure: `<div><dt>label</dt><dd data-figure=key data-value=raw>shown</dd></div>`.
fn figure(out: &mut String, key: &str, label: &str, raw: &str, shown: &str, warn: bool) {
    let _ = write!(
        out,
        "<div{}><dt>{}</dt><dd data-figure=\"{}\" data-value=\"{}\">{}</dd></div>",
        if warn { " class=\"warn\"" } else { "" },
        escape(label),
        escape(key),
        escape(raw),
        escape(shown)
    );
}

fn percentile_table(out: &mut String, corrected: &Percentiles, uncorrected: &Percentiles) {
    out.push_str(
        "<table class=\"percentiles\"><thead><tr><th>latency ms</th><th>p50</th><th>p90</th>\
         <th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr></thead><tbody>",
    );
    for (label, p) in [("corrected", corrected), ("uncorrected", uncorrected)] {
        let _ = write!(out, "<tr data-kind=\"{label}\"><td>{label}</td>");
        for v in [p.p50, p.p90, p.p95, p.p99, p.p999, p.max, p.mean] {
            let _ = write!(out, "<td>{}</td>", fmt_ms(v));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

fn errors_table(out: &mut String, e: &ErrorCounts) {
    out.push_str("<table class=\"errors\"><thead><tr><th>errors by kind</th><th>count</th></tr></thead><tbody>");
    for (k, v) in [
        ("connect", e.connect),
        ("timeout", e.timeout),
        ("status", e.status),
        ("body", e.body),
        ("total", e.total),
    ] {
        let _ = write!(out, "<tr data-kind=\"{k}\"><td>{k}</td><td>{v}</td></tr>");
    }
    out.push_str("</tbody></table>");
}

/// A stress test's verdict, its steps table, and a place for its rate charts.
fn stress_block(out: &mut String, i: usize, s: &crate::task::stress::StressResult) {
    let rps = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{r} req/s"));
    let raw = |r: Option<f64>| r.map_or("null".to_string(), |r| r.to_string());
    out.push_str("<h3>Stress</h3><dl class=\"figures stress\">");
    figure(
        out,
        "breaking_point_rps",
        "Breaking point",
        &raw(s.breaking_point_rps),
        &rps(s.breaking_point_rps),
        false,
    );
    figure(
        out,
        "broke_at_rps",
        "Broke at",
        &raw(s.broke_at_rps),
        &rps(s.broke_at_rps),
        s.broke,
    );
    out.push_str("</dl>");
    let verdict = match &s.condition {
        Some(c) if s.broke => format!("Broke: {c}."),
        _ => "Did not break: the steps reached max_rps.".to_string(),
    };
    let _ = write!(
        out,
        "<p class=\"meta\" data-figure=\"condition\">{}</p>",
        escape(&verdict)
    );
    out.push_str(
        "<table class=\"stress-steps\"><thead><tr><th>step req/s</th><th>achieved req/s</th>\
         <th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>error rate</th><th>seconds</th>\
         </tr></thead><tbody>",
    );
    for st in &s.steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            fmt_rate(st.rps),
            fmt_rate(st.achieved_rps),
            fmt_ms(st.p50_ms),
            fmt_ms(st.p95_ms),
            fmt_ms(st.p99_ms),
            fmt_percent(st.error_rate),
            st.seconds
        );
    }
    let _ = write!(
        out,
        "</tbody></table><div class=\"charts\" data-stress=\"{i}\"></div>"
    );
}

/// A `security_test` task: its counts, a findings table (evidence excerpts escaped like
/// every other text of the target's) and its nodes' slices.
fn security_section(out: &mut String, i: usize, t: &TaskReport, scan: &ScanReport) {
    let _ = write!(
        out,
        "<section class=\"task security\" data-task-index=\"{i}\"><h2>Task {}</h2>\
         <p class=\"meta\">security_test</p><dl class=\"figures\">",
        escape(&t.name)
    );
    let findings = scan.findings.len();
    figure(
        out,
        "findings",
        "Findings",
        &findings.to_string(),
        &findings.to_string(),
        findings > 0,
    );
    for (key, label, n) in [
        ("requests_sent", "Requests sent", scan.requests_sent),
        (
            "requests_refused",
            "Refused (allowlist)",
            scan.requests_refused,
        ),
        ("request_errors", "Request errors", scan.request_errors),
    ] {
        figure(
            out,
            key,
            label,
            &n.to_string(),
            &n.to_string(),
            key != "requests_sent" && n > 0,
        );
    }
    figure(
        out,
        "duration_s",
        "Duration",
        &scan.duration_s.to_string(),
        &fmt_seconds(scan.duration_s),
        false,
    );
    out.push_str("</dl>");
    if !scan.nodes_lost.is_empty() {
        let _ = write!(
            out,
            "<p class=\"warn nodes-lost\">Not scanned: the slices of lost nodes {}.</p>",
            escape(&scan.nodes_lost.join(", "))
        );
    }
    out.push_str("<h3>Findings</h3>");
    if scan.findings.is_empty() {
        out.push_str("<p class=\"muted\">no findings</p>");
    } else {
        out.push_str(
            "<table class=\"findings\"><thead><tr><th>severity</th><th>type</th>\
             <th>endpoint</th><th>parameter</th><th>title</th><th>evidence</th>\
             <th>remediation</th></tr></thead><tbody>",
        );
        for f in &scan.findings {
            let _ = write!(
                out,
                "<tr data-severity=\"{sev}\"><td>{sev}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td><code>{} {}</code><pre>{}</pre></td><td>{}</td></tr>",
                f.scan_type,
                escape(&f.endpoint),
                escape(f.parameter.as_deref().unwrap_or("-")),
                escape(&f.title),
                escape(&f.evidence.request.method),
                escape(&f.evidence.request.url),
                escape(&f.evidence.excerpt),
                escape(&f.remediation),
                sev = f.severity,
            );
        }
        out.push_str("</tbody></table>");
    }
    if !scan.nodes.is_empty() {
        out.push_str(
            "<h3>Nodes</h3><table class=\"nodes\"><thead><tr><th>node</th><th>endpoints</th>\
             <th>requests</th><th>findings</th><th>state</th></tr></thead><tbody>",
        );
        for n in &scan.nodes {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&n.node_id),
                escape(&n.endpoints.join(", ")),
                n.requests_sent,
                n.findings,
                if n.lost { "lost" } else { "ok" }
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

fn task_section(out: &mut String, i: usize, t: &TaskReport) {
    if let Some(scan) = &t.security {
        return security_section(out, i, t, scan);
    }
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
    figure(
        out,
        "total_requests",
        "Requests",
        &t.total_requests.to_string(),
        &t.total_requests.to_string(),
        false,
    );
    if let Some(p) = t.planned_requests {
        figure(
            out,
            "planned_requests",
            "Planned",
            &p.to_string(),
            &p.to_string(),
            false,
        );
    }
    figure(
        out,
        "achieved_rps",
        "Achieved req/s",
        &t.achieved_rps.to_string(),
        &fmt_rate(t.achieved_rps),
        false,
    );
    figure(
        out,
        "duration_s",
        "Duration",
        &t.duration_s.to_string(),
        &fmt_seconds(t.duration_s),
        false,
    );
    let rate = if t.total_requests > 0 {
        t.errors.total as f64 / t.total_requests as f64
    } else {
        0.0
    };
    figure(
        out,
        "error_rate",
        "Error rate",
        &rate.to_string(),
        &fmt_percent(rate),
        t.errors.total > 0,
    );
    figure(
        out,
        "late_starts",
        "Late starts",
        &t.late_starts.to_string(),
        &t.late_starts.to_string(),
        t.late_starts > 0,
    );
    if let Some(n) = t.not_sent {
        figure(
            out,
            "not_sent",
            "Not sent",
            &n.to_string(),
            &n.to_string(),
            n > 0,
        );
    }
    figure(
        out,
        "slow_responses",
        "Slow responses",
        &t.slow_responses.to_string(),
        &t.slow_responses.to_string(),
        t.slow_responses > 0,
    );
    out.push_str("</dl>");
    if !t.thresholds.is_empty() {
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
    if let Some(stress) = &t.stress {
        stress_block(out, i, stress);
    }
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
    if !t.nodes.is_empty() {
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
    out.push_str("</div></section>");
}

/// The report as one self-contained HTML page.
pub fn render(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"mcpt {}\">\
         <title>mcpt report: {}</title><style>{STYLE}</style></head><body><main>\
         <h1>{}</h1><p class=\"meta\">started {}, {} task{}, mcpt {}</p>",
        env!("CARGO_PKG_VERSION"),
        escape(&report.name),
        escape(&report.name),
        utc(report.started_at_ms),
        report.tasks.len(),
        if report.tasks.len() == 1 { "" } else { "s" },
        env!("CARGO_PKG_VERSION"),
    );

    out.push_str("<section id=\"summary\"><h2>Summary</h2>");
    if let Some(why) = &s.stopped_by {
        let _ = write!(
            out,
            "<p class=\"warn\"><strong>Stopped early:</strong> {}</p>",
            escape(why)
        );
    } else if s.interrupted {
        out.push_str(
            "<p class=\"warn\"><strong>Interrupted:</strong> the figures cover the part of the \
             plan that ran.</p>",
        );
    }
    if let Some(passed) = s.thresholds_passed {
        let _ = write!(
            out,
            "<p class=\"{}\" id=\"thresholds-verdict\"><strong>Thresholds {}</strong></p>",
            if passed { "ok" } else { "warn" },
            if passed { "passed" } else { "failed" }
        );
    }
    out.push_str("<dl class=\"figures\">");
    let n = |v: u64| v.to_string();
    figure(
        &mut out,
        "total_requests",
        "Requests",
        &n(s.total_requests),
        &n(s.total_requests),
        false,
    );
    figure(
        &mut out,
        "achieved_rps",
        "Achieved req/s",
        &s.achieved_rps.to_string(),
        &fmt_rate(s.achieved_rps),
        false,
    );
    figure(
        &mut out,
        "duration_s",
        "Duration",
        &s.duration_s.to_string(),
        &fmt_seconds(s.duration_s),
        false,
    );
    figure(
        &mut out,
        "error_rate",
        "Error rate",
        &s.error_rate.to_string(),
        &fmt_percent(s.error_rate),
        s.errors.total > 0,
    );
    figure(
        &mut out,
        "errors",
        "Errors",
        &n(s.errors.total),
        &n(s.errors.total),
        s.errors.total > 0,
    );
    figure(
        &mut out,
        "late_starts",
        "Late starts",
        &n(s.late_starts),
        &n(s.late_starts),
        s.late_starts > 0,
    );
    figure(
        &mut out,
        "interrupted",
        "Interrupted",
        &s.interrupted.to_string(),
        if s.interrupted { "yes" } else { "no" },
        s.interrupted,
    );
    figure(
        &mut out,
        "planned_requests",
        "Planned",
        &n(s.planned_requests),
        &n(s.planned_requests),
        false,
    );
    figure(
        &mut out,
        "sent_requests",
        "Sent",
        &n(s.sent_requests),
        &n(s.sent_requests),
        false,
    );
    figure(
        &mut out,
        "not_sent",
        "Not sent",
        &n(s.not_sent),
        &n(s.not_sent),
        s.not_sent > 0,
    );
    out.push_str("</dl><h3>Latency, all tasks</h3>");
    percentile_table(&mut out, &s.latency_ms, &s.latency_uncorrected_ms);
    out.push_str("<h3>Errors, all tasks</h3>");
    errors_table(&mut out, &s.errors);
    out.push_str("</section>");

    for (i, t) in report.tasks.iter().enumerate() {
        task_section(&mut out, i, t);
    }
    let _ = writeln!(
        out,
        "<footer>Corrected latency is measured from each request's planned start \
         (coordinated omission corrected); uncorrected from its actual send. The report's \
         JSON is embedded in this page (element #report-data).</footer></main>\
         <script>{CHARTS_JS}</script>\
         <script type=\"application/json\" id=\"report-data\">{}</script>\
         <script>{DRAW}</script></body></html>",
        script_json(report)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixtures::report_with;

    #[test]
    fn escapes_text() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            script_json(&"</script>\u{2028}&"),
            r#""\u003c/script\u003e\u2028\u0026""#
        );
        // The escaped JSON reads back as the same value.
        let v: String = serde_json::from_str(&script_json(&"</script>\u{2028}&")).unwrap();
        assert_eq!(v, "</script>\u{2028}&");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    /// A hostile task name stays text: it never closes a script, opens an element or adds an
    /// attribute, in the markup or in the embedded JSON.
    #[test]
    fn a_hostile_task_name_cannot_break_out() {
        let evil = "</script><img src=x onerror=alert(1)>";
        let mut r = report_with(evil, &[(evil, 100, 1, 10.0, 5.0)]);
        r.tasks[0].nodes[0].node_id = evil.into();
        r.tasks[0].status_codes.insert("<b>\u{2028}".into(), 1);
        let html = render(&r);
        // Exactly the page's three script elements, each closed once.
        assert_eq!(html.matches("<script").count(), 3, "{html}");
        assert_eq!(html.matches("</script>").count(), 3);
        assert!(!html.contains("<img"), "no element from the name");
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains(r"\u003c/script\u003e\u003cimg src=x onerror=alert(1)\u003e"));
        // The embedded JSON is the report, with no raw line separator (a JavaScript string
        // may not hold one in older engines; in HTML text it is harmless).
        let start = html.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
        let end = start + html[start..].find("</script>").unwrap();
        assert!(!html[start..end].contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
        assert_eq!(back, serde_json::to_value(&r).unwrap());
    }

    /// The page fetches nothing: its own markup, style and script name no URL and load
    /// nothing. A URL can appear only where the report's data holds one (say, a task named
    /// after its target), and there only as escaped text or inside the JSON string, never as
    /// an attribute the browser would follow.
    #[test]
    fn no_external_url() {
        let r = report_with("plain", &[("get", 100, 0, 10.0, 5.0)]);
        let html = render(&r);
        for needle in [
            "http:", "https:", "//", "src=", "href=", "url(", "@import", "<link",
        ] {
            let hits: Vec<_> = html.match_indices(needle).map(|(i, _)| i).collect();
            // `//` opens comments in the inlined charts.js; none of them names a URL (the
            // `http:`/`https:` checks above would see one).
            if needle == "//" {
                assert!(
                    CHARTS_JS.matches("//").count() + DRAW.matches("//").count() == hits.len(),
                    "`//` outside the scripts' comments"
                );
                continue;
            }
            assert!(hits.is_empty(), "{needle} in the page at {hits:?}");
        }
        assert!(html.contains(CSP));

        // With a URL in the data it appears only as text and as a JSON string.
        let named = "https://target.test/x?a=1&b=2";
        let r = report_with(named, &[(named, 100, 0, 10.0, 5.0)]);
        let html = render(&r);
        let escaped = escape(named);
        let in_json = script_json(&named);
        let in_json = &in_json[1..in_json.len() - 1];
        let total = html.matches("https:").count();
        let as_text = html.matches(escaped.as_str()).count();
        let as_json = html.matches(in_json).count();
        assert_eq!(total, as_text + as_json, "a URL outside the escaped data");
        assert!(!html.contains("src=") && !html.contains("href="));
    }

    #[test]
    fn a_security_task_shows_its_findings_escaped() {
        use crate::task::security::{Evidence, Finding, ScanType, SentRequest, Severity};
        let mut r = report_with("scan", &[("scan", 0, 0, 0.0, 0.0)]);
        let hostile = "<script>alert(1)</script>";
        r.tasks[0].security = Some(ScanReport {
            findings: vec![Finding {
                scan_type: ScanType::Xss,
                severity: Severity::High,
                endpoint: "GET /search".into(),
                parameter: Some("q".into()),
                title: "reflected XSS".into(),
                evidence: Evidence {
                    request: SentRequest {
                        method: "GET".into(),
                        url: "http://127.0.0.1:9/search?q=%3Cscript%3E".into(),
                        body: None,
                        headers: Vec::new(),
                    },
                    response_status: 200,
                    excerpt: format!("<p>{hostile}</p>"),
                },
                remediation: "escape <output>".into(),
            }],
            requests_sent: 12,
            nodes_lost: vec!["node-1".into()],
            ..ScanReport::default()
        });
        let html = render(&r);
        let (_, section) = html.split_once("<table class=\"findings\">").unwrap();
        let (table, _) = section.split_once("</table>").unwrap();
        assert!(!table.contains(hostile), "{table}");
        assert!(table.contains(&escape(hostile)), "{table}");
        assert!(table.contains("escape &lt;output&gt;"), "{table}");
        for cell in ["high", "xss", "GET /search", "reflected XSS"] {
            assert!(table.contains(cell), "{cell} missing: {table}");
        }
        assert!(html.contains("Not scanned: the slices of lost nodes node-1"));
    }

    #[test]
    fn renders_an_empty_timeline_and_no_tasks() {
        let mut r = report_with("empty", &[("idle", 0, 0, 0.0, 0.0)]);
        r.tasks[0].timeline.clear();
        r.tasks[0].nodes.clear();
        let html = render(&r);
        assert!(html.contains("No timeline"));
        assert!(html.contains("data-task=\"0\""));
        let markup = &html[..html.find("<script").unwrap()];
        assert!(!markup.contains("NaN"));
        let none = report_with("none", &[]);
        let html = render(&none);
        assert!(html.contains("id=\"summary\"") && !html.contains("class=\"task\""));
    }

    #[test]
    fn summary_figures_show_the_report() {
        let r = report_with("s", &[("get", 1234, 12, 123.4, 5.0)]);
        let html = render(&r);
        assert!(html.contains("<dd data-figure=\"total_requests\" data-value=\"1234\">1234</dd>"));
        assert!(
            html.contains(
                "data-figure=\"error_rate\" data-value=\"0.009724473257698542\">0.97%</dd>"
            )
        );
        assert!(html.contains("data-figure=\"interrupted\" data-value=\"false\">no</dd>"));
    }

    /// Issue 13 item 5: a lost node's requests in flight, in the HTML and the text report.
    #[test]
    fn a_lost_nodes_requests_in_flight_are_shown() {
        let mut r = report_with("s", &[("get", 100, 0, 10.0, 5.0)]);
        let n = &mut r.tasks[0].nodes[0];
        (n.lost, n.in_flight) = (true, Some(7));
        assert!(render(&r).contains("<td>lost (7 in flight)</td>"));
        assert!(
            r.to_text()
                .contains("lost node  node-1: 100 sent, 100 completed, 7 in flight")
        );
    }
}
