//! The per-request table and the failures table, in the text and the HTML report.

use std::fmt::Write as _;

use super::html::{escape, fmt_percent};
use super::request::{FailureReport, RequestReport};

/// The table's columns: `(key, heading)`; the HTML table sorts by any of them.
const COLUMNS: [(&str, &str); 10] = [
    ("name", "request"),
    ("count", "count"),
    ("errors", "errors"),
    ("error_rate", "error %"),
    ("rps", "req/s"),
    ("p50", "p50 ms"),
    ("p95", "p95 ms"),
    ("p99", "p99 ms"),
    ("max", "max ms"),
    ("checks_failed", "checks failed"),
];

/// The rows of the text report: every name, with corrected latency.
pub fn text(requests: &[RequestReport], failures: &[FailureReport], out: &mut String) {
    if requests.is_empty() {
        return;
    }
    let width = requests
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 48);
    let _ = writeln!(
        out,
        "  {:<width$} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "request",
        "count",
        "errors",
        "err %",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "checks"
    );
    for r in requests {
        let p = &r.latency_ms;
        let _ = writeln!(
            out,
            "  {:<width$} {:>9} {:>7} {:>7} {:>9.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7}",
            clip(&r.name, width),
            r.count,
            r.errors.total,
            format!("{:.2}", r.error_rate * 100.0),
            r.rps,
            p.p50,
            p.p95,
            p.p99,
            p.max,
            r.checks_failed
        );
    }
    for f in failures {
        let _ = writeln!(
            out,
            "  failure    {} x{}: {} ({})",
            f.request, f.count, f.message, f.kind
        );
    }
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(width.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// The requests table (sortable by its headings in the page) and the failures table.
pub fn html(requests: &[RequestReport], failures: &[FailureReport], out: &mut String) {
    if requests.is_empty() {
        return;
    }
    out.push_str("<h3>Requests</h3><table class=\"requests sortable\"><thead><tr>");
    for (key, heading) in COLUMNS {
        let _ = write!(out, "<th data-sort=\"{key}\">{heading}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for r in requests {
        let p = &r.latency_ms;
        let cells: [(String, String); 10] = [
            (r.name.clone(), escape(&r.name)),
            (r.count.to_string(), r.count.to_string()),
            (r.errors.total.to_string(), r.errors.total.to_string()),
            (r.error_rate.to_string(), fmt_percent(r.error_rate)),
            (r.rps.to_string(), format!("{:.1}", r.rps)),
            (p.p50.to_string(), format!("{:.3}", p.p50)),
            (p.p95.to_string(), format!("{:.3}", p.p95)),
            (p.p99.to_string(), format!("{:.3}", p.p99)),
            (p.max.to_string(), format!("{:.3}", p.max)),
            (r.checks_failed.to_string(), r.checks_failed.to_string()),
        ];
        let class = if r.errors.total > 0 {
            " class=\"warn\""
        } else {
            ""
        };
        let _ = write!(out, "<tr{class} data-request=\"{}\">", escape(&r.name));
        for ((key, _), (raw, shown)) in COLUMNS.iter().zip(cells) {
            let _ = write!(
                out,
                "<td data-key=\"{key}\" data-value=\"{}\">{shown}</td>",
                escape(&raw)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if failures.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Failures</h3><table class=\"failures\"><thead><tr><th>request</th><th>kind</th>\
         <th>message</th><th>count</th></tr></thead><tbody>",
    );
    for f in failures {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.request),
            escape(&f.kind),
            escape(&f.message),
            f.count
        );
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::request::{RequestNames, RequestWindow, rows};
    use crate::stats::{ErrorKind, Outcome};
    use std::time::Duration;

    fn sample() -> (Vec<RequestReport>, Vec<FailureReport>) {
        let names = RequestNames::new([("login", "POST"), ("GET /items/<b>", "GET")]);
        let mut login = RequestWindow::default();
        let mut items = RequestWindow::default();
        let ms = Duration::from_millis;
        login.record(&Outcome::default(), ms(40), ms(40));
        let failed = Outcome {
            status: Some(503),
            error: Some(ErrorKind::Status),
            ..Outcome::default()
        };
        items.record(&failed, ms(2), ms(2));
        items.record(&Outcome::default(), ms(3), ms(3));
        rows(&names, &[Some(Box::new(login)), Some(Box::new(items))], 1.0)
    }

    #[test]
    fn the_text_table_has_a_row_per_name_and_the_failures() {
        let (requests, failures) = sample();
        let mut out = String::new();
        text(&requests, &failures, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].trim_start().starts_with("login "), "{out}");
        let items: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            &items[..5],
            ["GET", "/items/<b>", "2", "1", "50.00"],
            "{out}"
        );
        assert!(
            lines[3].contains("GET /items/<b> x1: unexpected status 503 (status)"),
            "{out}"
        );
    }

    #[test]
    fn the_html_tables_escape_names_and_carry_raw_values_to_sort_by() {
        let (requests, failures) = sample();
        let mut out = String::new();
        html(&requests, &failures, &mut out);
        assert!(
            out.contains("data-request=\"GET /items/&lt;b&gt;\""),
            "{out}"
        );
        assert!(out.contains("<td data-key=\"count\" data-value=\"2\">2</td>"));
        assert!(out.contains("<th data-sort=\"p99\">"));
        assert!(out.contains("<td>unexpected status 503</td><td>1</td>"));
        assert!(!out.contains("<b>"), "names are escaped");
    }
}
