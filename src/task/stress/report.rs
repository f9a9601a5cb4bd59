//! A stress test in the report: the load test's figures with the breaking point and the
//! curve of rate against latency and errors (`stress` in the task's JSON) between them.

use std::fmt::Write as _;

use super::StressResult;
use crate::stats::html::{escape, figure, fmt_ms, fmt_percent, fmt_rate};
use crate::stats::report::TaskReport;
use crate::task::load::report as load;

/// The page script drawing a stress test's curve (`t.stress`) under its steps table.
pub const CHARTS_JS: &str = r#"    var st = document.querySelector('.charts[data-stress="' + i + '"]');
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
"#;

/// The task in the text report.
pub fn text<S>(t: &TaskReport<S>, result: &StressResult, out: &mut String) {
    load::figures_text(t, out);
    out.push_str(&result.to_text());
    load::thresholds_text(t, out);
}

/// The task's `<section>` in the HTML report.
pub fn html<S>(t: &TaskReport<S>, result: &StressResult, i: usize, out: &mut String) {
    load::html_head(t, i, out);
    html_block(result, i, out);
    load::html_tail(t, i, out);
}

/// A stress test's verdict, its steps table, and a place for its rate charts.
fn html_block(s: &StressResult, i: usize, out: &mut String) {
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

/// The result of a stress test whose merged seconds are `timeline`: the watch is pure, so
/// replaying the timeline gives what the live one decided.
pub fn replay(spec: &super::StressSpec, timeline: &[crate::stats::TimelinePoint]) -> StressResult {
    let mut watch = super::StressWatch::new(spec);
    for p in timeline {
        watch.second(p);
    }
    watch.result()
}
