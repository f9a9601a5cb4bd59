//! Each task kind's part of the report ([`Section`]), the one place that lists them for the
//! report: its JSON fields (flattened into the task's object) and, through the kind's own
//! `report.rs`, how the task reads in text and HTML.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::security::ScanReport;
use super::stress::{StressResult, StressSpec};
use super::{load, security, stress};
use crate::stats::TimelinePoint;

/// The run report, each task with its kind's section.
pub type Report = crate::stats::report::Report<Section>;
/// One task's report.
pub type TaskReport = crate::stats::report::TaskReport<Section>;

/// A task kind's part of its report.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Section {
    /// A load or performance test: nothing of its own.
    #[default]
    Load,
    /// A stress test: the breaking point and the curve (`stress`).
    Stress(StressResult),
    /// A security scan: its findings, merged over the nodes (`security`).
    Security(ScanReport),
}

impl Section {
    /// A test on the request engine's section: a stress test's result is its timeline
    /// replayed through its watch.
    pub fn of_load(stress: Option<&StressSpec>, timeline: &[TimelinePoint]) -> Section {
        match stress {
            Some(spec) => Section::Stress(stress::report::replay(spec, timeline)),
            None => Section::Load,
        }
    }

    pub fn stress(&self) -> Option<&StressResult> {
        match self {
            Section::Stress(r) => Some(r),
            _ => None,
        }
    }

    pub fn security(&self) -> Option<&ScanReport> {
        match self {
            Section::Security(r) => Some(r),
            _ => None,
        }
    }
}

impl crate::stats::report::Section for Section {
    fn text(t: &TaskReport, out: &mut String) {
        match &t.section {
            Section::Load => load::report::text(t, out),
            Section::Stress(r) => stress::report::text(t, r, out),
            Section::Security(r) => security::report::text(t, r, out),
        }
    }

    fn html(t: &TaskReport, i: usize, out: &mut String) {
        match &t.section {
            Section::Load => load::report::html(t, i, out),
            Section::Stress(r) => stress::report::html(t, r, i, out),
            Section::Security(r) => security::report::html(t, r, i, out),
        }
    }

    const CHARTS_JS: &'static str = stress::report::CHARTS_JS;

    fn junit(t: &TaskReport, cases: &mut Vec<crate::stats::junit::Case>) {
        if let Section::Security(r) = &t.section {
            security::report::junit(r, cases);
        }
    }
}

/// The section's JSON: the fields of the task's object it adds (and their schema).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TaskSection)]
struct Fields {
    /// A `stress_test`: the breaking point and the curve of rate against latency and errors.
    #[serde(default)]
    stress: Option<StressResult>,
    /// A `security_test`: its findings, merged over the nodes that scanned a slice.
    #[serde(default)]
    security: Option<ScanReport>,
}

/// [`Fields`] to write.
#[derive(Serialize)]
struct FieldsRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    stress: Option<&'a StressResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security: Option<&'a ScanReport>,
}

impl Serialize for Section {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FieldsRef {
            stress: self.stress(),
            security: self.security(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Section {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Section, D::Error> {
        let f = Fields::deserialize(d)?;
        Ok(match (f.stress, f.security) {
            (_, Some(scan)) => Section::Security(scan),
            (Some(r), None) => Section::Stress(r),
            (None, None) => Section::Load,
        })
    }
}

impl utoipa::PartialSchema for Section {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <Fields as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Section {
    fn name() -> Cow<'static, str> {
        <Fields as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <Fields as utoipa::ToSchema>::schemas(schemas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::html::{CHARTS_JS, CSP, draw_script, escape, render, script_json};
    use crate::task::security::{Evidence, Finding, ScanType, SentRequest, Severity};

    fn report_with(name: &str, tasks: &[(&str, u64, u64, f64, f64)]) -> Report {
        crate::stats::fixtures::report_with(name, tasks)
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
                    CHARTS_JS.matches("//").count()
                        + draw_script::<Section>().matches("//").count()
                        == hits.len(),
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
        let mut r = report_with("scan", &[("scan", 0, 0, 0.0, 0.0)]);
        let hostile = "<script>alert(1)</script>";
        r.tasks[0].section = Section::Security(ScanReport {
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

    /// The JUnit cases follow the verdicts: a failed threshold and a check with a finding at
    /// or over `fail_on` fail, a finding under it passes (listed), and the task's own case
    /// fails on a Ctrl-C but not on a watch's stop (a stress test's breaking point).
    #[test]
    fn junit_cases_follow_the_verdicts() {
        use crate::stats::junit::render;
        use crate::stats::thresholds::Verdict;
        let finding = |scan_type, severity| Finding {
            scan_type,
            severity,
            endpoint: "GET /item".into(),
            parameter: Some("id".into()),
            title: "SQL injection".into(),
            evidence: Evidence {
                request: SentRequest {
                    method: "GET".into(),
                    url: "http://127.0.0.1:9/item?id=%27".into(),
                    body: None,
                    headers: Vec::new(),
                },
                response_status: 500,
                excerpt: "syntax error near \u{1}'".into(),
            },
            remediation: "bind parameters".into(),
        };
        let mut r = report_with("ci", &[("scan", 0, 0, 0.0, 0.0)]);
        r.tasks[0].kind = "security_test".into();
        r.tasks[0].thresholds = vec![Verdict {
            threshold: "fail_on: high".into(),
            passed: false,
            actual: 1.0,
            bound: 0.0,
            aborted_at_s: None,
        }];
        r.tasks[0].section = Section::Security(ScanReport {
            findings: vec![
                finding(ScanType::SqlInjection, Severity::Critical),
                finding(ScanType::Headers, Severity::Low),
            ],
            by_type: [(ScanType::SqlInjection, 1), (ScanType::Headers, 1)].into(),
            fail_on: Some(Severity::High),
            ..ScanReport::default()
        });
        let xml = render(&r);
        let case = |name: &str| {
            let at = xml
                .find(&format!("name=\"{name}\""))
                .unwrap_or_else(|| panic!("{name}: {xml}"));
            let rest = &xml[at..];
            let end = [rest.find("</testcase>"), rest.find("/>\n")]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            rest[..end].to_string()
        };
        assert!(
            case("threshold fail_on: high")
                .contains("<failure message=\"`fail_on: high` failed: 1 against 0\""),
            "{xml}"
        );
        let sqli = case("security sql_injection");
        assert!(
            sqli.contains("1 sql_injection findings of high or worse (1 critical), fail_on: high"),
            "{sqli}"
        );
        assert!(sqli.contains("syntax error near \u{FFFD}&apos;"), "{sqli}");
        let headers = case("security headers");
        assert!(!headers.contains("<failure"), "{headers}");
        assert!(headers.contains("1 findings under fail_on"), "{headers}");
        assert!(xml.contains("tests=\"4\" failures=\"2\""), "{xml}");
        assert!(
            !case("task scan (security_test)").contains("<failure"),
            "{xml}"
        );
        r.summary.interrupted = true;
        r.summary.stopped_by = Some("breaking point".into());
        assert!(!render(&r).contains("interrupted (Ctrl-C"));
        r.summary.stopped_by = None;
        assert!(render(&r).contains(
            "<failure message=\"the run was interrupted (Ctrl-C or cancelled)\" type=\"task\">"
        ));
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

    /// A report reads back from its JSON (as the orchestrator stores it) unchanged, each
    /// kind's section included, and a load test's adds no key.
    #[test]
    fn every_kinds_section_reads_back() {
        let mut r = report_with("a", &[("load", 5, 0, 1.0, 1.0), ("s", 5, 0, 1.0, 1.0)]);
        r.tasks.push(r.tasks[1].clone());
        r.tasks[1].section = Section::Stress(StressResult {
            breaking_point_rps: Some(10.0),
            broke_at_rps: None,
            condition: None,
            broke: false,
            steps: Vec::new(),
        });
        r.tasks[2].section = Section::Security(ScanReport {
            requests_sent: 3,
            ..ScanReport::default()
        });
        let json = serde_json::to_value(&r).unwrap();
        let keys = |i: usize| {
            let t = json["tasks"][i].as_object().unwrap();
            (t.contains_key("stress"), t.contains_key("security"))
        };
        assert_eq!(
            [keys(0), keys(1), keys(2)],
            [(false, false), (true, false), (false, true)]
        );
        let back: Report = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        let sections: Vec<&Section> = back.tasks.iter().map(|t| &t.section).collect();
        assert_eq!(
            sections,
            r.tasks.iter().map(|t| &t.section).collect::<Vec<_>>()
        );
    }
}
