//! The HTML report: one self-contained file (no network at all: a Content-Security-Policy that
//! forbids every fetch, no external URL), from the same [`Report`] as the JSON one. The
//! figures are static HTML; the timeline charts are drawn in the page by `charts.js` (shared
//! with the web UI) from the report JSON embedded in it.
//!
//! Text from the report (names, node ids) is HTML-escaped; the embedded JSON has `<`, `>`,
//! `&`, U+2028 and U+2029 as `\u` escapes, so no string in it can close its `<script>`.

use std::fmt::Write as _;

use super::report::{Report, Section, Summary};
use super::{ErrorCounts, Percentiles};

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

/// The page's own script: draws each task's charts from the embedded report; each task kind
/// may add its own ([`Section::CHARTS_JS`]) between [`DRAW_HEAD`] and [`DRAW_TAIL`].
const DRAW_HEAD: &str = r#"
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
    // The live changes made while it ran, as dotted lines (their words on hover).
    var marks = (t.adjustments || []).map(function (a) {
      var k = Object.keys(a.change || {})[0];
      return { x: a.from_ms / 1000, label: k + ' ' + JSON.stringify(a.change[k]) + ' by ' + a.by };
    });
    el.innerHTML = [
      C.line({ title: 'Requests per second', unit: 'req/s', x: x, series: rate, marks: marks }),
      C.line({ title: 'Latency (corrected)', unit: 'ms', x: x, marks: marks, series: [
        { name: 'p50', values: col('p50_ms') },
        { name: 'p95', values: col('p95_ms') },
        { name: 'p99', values: col('p99_ms') }] }),
      C.line({ title: 'Errors per second', unit: 'errors/s', x: x, marks: marks, series: [
        { name: 'errors', values: col('errors'), color: '#D55E00' }] })
    ].join('');
"#;

const DRAW_TAIL: &str = r#"  });
  // The per-request tables sort by a heading's column (again: the other way).
  document.querySelectorAll('table.sortable th[data-sort]').forEach(function (th) {
    th.style.cursor = 'pointer';
    th.addEventListener('click', function () {
      var key = th.getAttribute('data-sort');
      var body = th.closest('table').tBodies[0];
      var down = th.getAttribute('data-dir') !== 'down';
      th.setAttribute('data-dir', down ? 'down' : 'up');
      var value = function (tr) {
        var v = tr.querySelector('td[data-key="' + key + '"]').getAttribute('data-value');
        var n = Number(v);
        return isNaN(n) ? v : n;
      };
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = value(a), y = value(b);
        var c = x < y ? -1 : x > y ? 1 : 0;
        return down ? -c : c;
      }).forEach(function (tr) { body.appendChild(tr); });
    });
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
pub fn figure(out: &mut String, key: &str, label: &str, raw: &str, shown: &str, warn: bool) {
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

/// The latency percentiles, corrected and uncorrected, as a table.
pub fn percentile_table(out: &mut String, corrected: &Percentiles, uncorrected: &Percentiles) {
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

/// The error counts by kind as a table.
pub fn errors_table(out: &mut String, e: &ErrorCounts) {
    out.push_str("<table class=\"errors\"><thead><tr><th>errors by kind</th><th>count</th></tr></thead><tbody>");
    for (k, v) in [
        ("connect", e.connect),
        ("timeout", e.timeout),
        ("status", e.status),
        ("body", e.body),
        ("tls", e.tls),
        ("total", e.total),
    ] {
        let _ = write!(out, "<tr data-kind=\"{k}\"><td>{k}</td><td>{v}</td></tr>");
    }
    out.push_str("</tbody></table>");
}

/// The page's script: the report's charts, each task kind's own among them.
pub fn draw_script<S: Section>() -> String {
    format!("{DRAW_HEAD}{}{DRAW_TAIL}", S::CHARTS_JS)
}

/// The report as one self-contained HTML page.
pub fn render<S: Section + serde::Serialize>(report: &Report<S>) -> String {
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
    summary_section(&mut out, &report.summary);
    for (i, t) in report.tasks.iter().enumerate() {
        S::html(t, i, &mut out);
    }
    let _ = writeln!(
        out,
        "<footer>Corrected latency is measured from each request's planned start \
         (coordinated omission corrected); uncorrected from its actual send. The report's \
         JSON is embedded in this page (element #report-data).</footer></main>\
         <script>{CHARTS_JS}</script>\
         <script type=\"application/json\" id=\"report-data\">{}</script>\
         <script>{}</script></body></html>",
        script_json(report),
        draw_script::<S>()
    );
    out
}

/// The summary: how the run ended, the thresholds' verdict, the figures of all tasks.
fn summary_section(out: &mut String, s: &Summary) {
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
    summary_figures(out, s);
    out.push_str("</dl><h3>Latency, all tasks</h3>");
    percentile_table(out, &s.latency_ms, &s.latency_uncorrected_ms);
    out.push_str("<h3>Errors, all tasks</h3>");
    errors_table(out, &s.errors);
    out.push_str("</section>");
}

/// The summary's figures: `(key, label, raw value, shown value, warn)` each.
fn summary_figures(out: &mut String, s: &Summary) {
    let n = |v: u64| v.to_string();
    let rows: [(&str, &str, String, String, bool); 10] = [
        (
            "total_requests",
            "Requests",
            n(s.total_requests),
            n(s.total_requests),
            false,
        ),
        (
            "achieved_rps",
            "Achieved req/s",
            s.achieved_rps.to_string(),
            fmt_rate(s.achieved_rps),
            false,
        ),
        (
            "duration_s",
            "Duration",
            s.duration_s.to_string(),
            fmt_seconds(s.duration_s),
            false,
        ),
        (
            "error_rate",
            "Error rate",
            s.error_rate.to_string(),
            fmt_percent(s.error_rate),
            s.errors.total > 0,
        ),
        (
            "errors",
            "Errors",
            n(s.errors.total),
            n(s.errors.total),
            s.errors.total > 0,
        ),
        (
            "late_starts",
            "Late starts",
            n(s.late_starts),
            n(s.late_starts),
            s.late_starts > 0,
        ),
        (
            "interrupted",
            "Interrupted",
            s.interrupted.to_string(),
            if s.interrupted { "yes" } else { "no" }.to_string(),
            s.interrupted,
        ),
        (
            "planned_requests",
            "Planned",
            n(s.planned_requests),
            n(s.planned_requests),
            false,
        ),
        (
            "sent_requests",
            "Sent",
            n(s.sent_requests),
            n(s.sent_requests),
            false,
        ),
        (
            "not_sent",
            "Not sent",
            n(s.not_sent),
            n(s.not_sent),
            s.not_sent > 0,
        ),
    ];
    for (key, label, raw, shown, warn) in rows {
        figure(out, key, label, &raw, &shown, warn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
