//! The report as JUnit XML (`mcpt run --junit FILE`), for CI test reporters (GitLab, Jenkins,
//! GitHub Actions' JUnit actions). A pure renderer of [`Report`]: one `<testsuite>` per task,
//! holding one `<testcase>` for the task itself (failed when it was interrupted, lost a node,
//! completed nothing or saw every request fail), one per threshold verdict (a scan's `fail_on` is one), and whatever its
//! kind adds ([`Section::junit`]: a scan's one case per check). The document follows the
//! Jenkins xunit plugin's `junit-10.xsd` (tests/fixtures/junit-10.xsd validates it).

use std::fmt::Write as _;

use super::report::{Report, Section, TaskReport};
use super::thresholds::Verdict;

/// One test case: its name, and why it failed (`None`: it passed).
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub failure: Option<Failure>,
    /// What a passed case still says (a check's findings under `fail_on`).
    pub output: Option<String>,
}

/// A failed case's short `message` (an attribute), its `kind` (the `type` attribute) and its
/// longer text.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
    pub text: String,
}

impl Case {
    pub fn passed(name: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            failure: None,
            output: None,
        }
    }

    pub fn failed(name: impl Into<String>, failure: Failure) -> Case {
        Case {
            name: name.into(),
            failure: Some(failure),
            output: None,
        }
    }
}

/// The JUnit XML document of `report`.
pub fn render<S: Section>(report: &Report<S>) -> String {
    let suites: Vec<(&TaskReport<S>, Vec<Case>)> =
        report.tasks.iter().map(|t| (t, cases(report, t))).collect();
    let tests: usize = suites.iter().map(|(_, c)| c.len()).sum();
    let failures: usize = suites.iter().map(|(_, c)| failed(c)).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">",
        escape(&report.name),
        seconds(report.summary.duration_s)
    );
    for (t, cases) in &suites {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" \
             time=\"{}\" package=\"{}\">",
            escape(&t.name),
            cases.len(),
            failed(cases),
            seconds(t.duration_s),
            escape(&report.name)
        );
        let classname = escape(&format!("{}.{}", report.name, t.name));
        for c in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{classname}\" name=\"{}\" time=\"{}\"",
                escape(&c.name),
                seconds(t.duration_s)
            );
            if c.failure.is_none() && c.output.is_none() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            if let Some(f) = &c.failure {
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    escape(&f.message),
                    f.kind,
                    escape(&f.text)
                );
            }
            if let Some(o) = &c.output {
                let _ = writeln!(out, "      <system-out>{}</system-out>", escape(o));
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn failed(cases: &[Case]) -> usize {
    cases.iter().filter(|c| c.failure.is_some()).count()
}

/// A task's cases: the task's own, its thresholds', its kind's.
fn cases<S: Section>(report: &Report<S>, t: &TaskReport<S>) -> Vec<Case> {
    let mut out = vec![task_case(report, t)];
    out.extend(t.thresholds.iter().map(threshold_case));
    S::junit(t, &mut out);
    out
}

/// The task ran to its end on every node it was planned on.
fn task_case<S>(report: &Report<S>, t: &TaskReport<S>) -> Case {
    let name = format!("task {} ({})", t.name, t.kind);
    let s = &report.summary;
    let mut why = Vec::new();
    // A watch's stop is no failure of its own: a threshold's abort fails that threshold's
    // case, and a stress test that found its breaking point ended as planned (exit 0).
    if s.interrupted && s.stopped_by.is_none() {
        why.push("the run was interrupted (Ctrl-C or cancelled)".to_string());
    }
    let lost: Vec<&str> = t
        .nodes
        .iter()
        .filter(|n| n.lost)
        .map(|n| n.node_id.as_str())
        .collect();
    if !lost.is_empty() {
        why.push(format!("lost nodes: {}", lost.join(", ")));
    }
    if t.planned_requests.is_some_and(|p| p > 0) && t.total_requests == 0 {
        why.push("no request completed".to_string());
    } else if t.total_requests > 0 && t.errors.total == t.total_requests {
        why.push(format!("every request failed ({})", t.errors.total));
    }
    let mut figures = format!(
        "{} requests completed, {} errors, {:.1} req/s, p99 {:.2} ms over {:.1} s",
        t.total_requests, t.errors.total, t.achieved_rps, t.latency_ms.p99, t.duration_s
    );
    if let Some(stop) = &s.stopped_by {
        figures += &format!("\nstopped early: {stop}");
    }
    if why.is_empty() {
        let mut c = Case::passed(name);
        c.output = Some(figures);
        return c;
    }
    Case::failed(
        name,
        Failure {
            kind: "task",
            message: why.join("; "),
            text: figures,
        },
    )
}

fn threshold_case(v: &Verdict) -> Case {
    let name = format!("threshold {}", v.threshold);
    if v.passed {
        return Case::passed(name);
    }
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let mut message = format!(
        "`{}` failed: {} against {}",
        v.threshold,
        round(v.actual),
        round(v.bound)
    );
    if let Some(at) = v.aborted_at_s {
        message += &format!("; it stopped the run at {at} s");
    }
    Case::failed(
        name,
        Failure {
            kind: "threshold",
            text: message.clone(),
            message,
        },
    )
}

/// Seconds with at most three decimals (the schema's `SUREFIRE_TIME`).
fn seconds(s: f64) -> String {
    format!("{:.3}", if s.is_finite() { s.max(0.0) } else { 0.0 })
}

/// Text for an XML attribute or element: the five markup characters escaped, and the
/// characters XML 1.0 cannot hold at all (control characters but tab, newline and carriage
/// return; U+FFFE, U+FFFF) replaced by U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // In an attribute a raw newline or tab reads back as a space.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_hostile_text_as_text() {
        assert_eq!(
            escape("a<b>&\"c\"'d'\u{1}]]>\n"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\u{FFFD}]]&gt;&#10;"
        );
        assert_eq!(seconds(1234.56789), "1234.568");
        assert_eq!(seconds(f64::NAN), "0.000");
    }
}
