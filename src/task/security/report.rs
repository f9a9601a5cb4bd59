//! A security scan in the report: its counts, its findings and its nodes' slices (`security`
//! in the task's JSON), in text and HTML. Evidence excerpts come from the target: they are
//! escaped like every other text of the target's.

use std::fmt::Write as _;

use super::{Finding, ScanReport};
use crate::stats::html::{escape, figure, fmt_seconds};
use crate::stats::junit::{Case, Failure};
use crate::stats::report::TaskReport;

/// A `security_test` task in the text report: its counts, its findings, its lost slices.
pub fn text<S>(t: &TaskReport<S>, scan: &ScanReport, out: &mut String) {
    let name = &t.name;
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
    crate::task::load::report::thresholds_text(t, out);
}

/// The task's `<section>` in the HTML report: its counts, a findings table and its nodes'
/// slices.
pub fn html<S>(t: &TaskReport<S>, scan: &ScanReport, i: usize, out: &mut String) {
    let _ = write!(
        out,
        "<section class=\"task security\" data-task-index=\"{i}\"><h2>Task {}</h2>\
         <p class=\"meta\">security_test</p><dl class=\"figures\">",
        escape(&t.name)
    );
    figures(scan, out);
    if !scan.nodes_lost.is_empty() {
        let _ = write!(
            out,
            "<p class=\"warn nodes-lost\">Not scanned: the slices of lost nodes {}.</p>",
            escape(&scan.nodes_lost.join(", "))
        );
    }
    crate::task::load::report::thresholds_html(t, out);
    findings_table(scan, out);
    nodes_table(scan, out);
    out.push_str("</section>");
}

fn figures(scan: &ScanReport, out: &mut String) {
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
}

fn findings_table(scan: &ScanReport, out: &mut String) {
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
}

fn nodes_table(scan: &ScanReport, out: &mut String) {
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
}

/// The scan's JUnit cases: one per check it ran, failed when it found something of its
/// `fail_on` or worse (the count by severity, and the first such finding's evidence); a
/// check's findings under `fail_on` go in its output.
pub fn junit(scan: &ScanReport, cases: &mut Vec<Case>) {
    for &kind in scan.by_type.keys() {
        let found: Vec<&Finding> = scan
            .findings
            .iter()
            .filter(|f| f.scan_type == kind)
            .collect();
        let failing: Vec<&Finding> = found
            .iter()
            .copied()
            .filter(|f| scan.fail_on.is_some_and(|level| f.severity >= level))
            .collect();
        let name = format!("security {kind}");
        let listed = |fs: &[&Finding]| -> String {
            fs.iter()
                .map(|f| {
                    format!(
                        "{} {} {} {}",
                        f.severity,
                        f.endpoint,
                        f.parameter.as_deref().unwrap_or("-"),
                        f.title
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let Some(first) = failing.first() else {
            let mut c = Case::passed(name);
            c.output = Some(match found.len() {
                0 => format!("no {kind} finding"),
                n => format!("{n} findings under fail_on:\n{}", listed(&found)),
            });
            cases.push(c);
            continue;
        };
        let level = scan.fail_on.expect("a failing finding has a fail_on");
        let text = format!(
            "first: {} {} parameter {}: {}\nrequest: {} {}{}\nresponse status {}, excerpt:\n{}\n\
             remediation: {}\n\nall {} findings:\n{}",
            first.severity,
            first.endpoint,
            first.parameter.as_deref().unwrap_or("-"),
            first.title,
            first.evidence.request.method,
            first.evidence.request.url,
            first
                .evidence
                .request
                .body
                .as_ref()
                .map_or(String::new(), |b| format!(" body {b}")),
            first.evidence.response_status,
            first.evidence.excerpt,
            first.remediation,
            found.len(),
            listed(&found)
        );
        cases.push(Case::failed(
            name,
            Failure {
                kind: "security_finding",
                message: format!(
                    "{} {kind} findings of {level} or worse ({}), fail_on: {level}; first: {} {}",
                    failing.len(),
                    by_severity(&failing),
                    first.endpoint,
                    first.title
                ),
                text,
            },
        ));
    }
}

/// `1 critical, 2 high`.
fn by_severity(fs: &[&Finding]) -> String {
    super::Severity::ALL
        .iter()
        .filter_map(|s| {
            let n = fs.iter().filter(|f| f.severity == *s).count();
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
