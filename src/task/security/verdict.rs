//! A scan's pass/fail: its `fail_on` and its thresholds over its counters, judged once over
//! the merged report. They are the task's `thresholds` verdicts in the report, so the run's
//! `summary.thresholds_passed` (what `mcpt run`'s exit code, MCP's verdict and the web UI
//! read) covers them like a load task's.

use std::collections::BTreeMap;

use super::{ScanReport, ScanSpec, Severity};
use crate::stats::thresholds::{Figures, Filter, Verdict, verdicts};

/// The `threshold` of the verdict `fail_on` gives: `fail_on: high`.
pub fn fail_on_label(fail_on: Severity) -> String {
    format!("fail_on: {fail_on}")
}

/// What a scan's thresholds read: its findings (in all, by severity, by scan type) and its
/// request counters. Every request sent completed, answered or not.
pub fn figures(scan: &ScanReport) -> Figures {
    let mut by: BTreeMap<Filter, u64> = BTreeMap::new();
    for f in &scan.findings {
        *by.entry(Filter::Severity(f.severity.name().into()))
            .or_default() += 1;
        *by.entry(Filter::ScanType(f.scan_type.name().into()))
            .or_default() += 1;
    }
    Figures {
        findings: scan.findings.len() as u64,
        findings_by: by,
        requests_sent: scan.requests_sent,
        requests_refused: scan.requests_refused,
        completed: scan.requests_sent,
        errors: scan.request_errors,
        ..Figures::default()
    }
}

/// The findings of `fail_on` or worse.
pub fn failing_findings(scan: &ScanReport, fail_on: Severity) -> usize {
    scan.findings
        .iter()
        .filter(|f| f.severity >= fail_on)
        .count()
}

/// The scan's verdicts: `fail_on`'s first (none for `fail_on: none`: its bound is 0 findings
/// of that severity or worse), then each threshold's.
pub fn judge(spec: &ScanSpec, scan: &ScanReport) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(level) = spec.fail_on {
        let n = failing_findings(scan, level);
        out.push(Verdict {
            threshold: fail_on_label(level),
            passed: n == 0,
            actual: n as f64,
            bound: 0.0,
            aborted_at_s: None,
        });
    }
    out.extend(verdicts(&spec.thresholds, &figures(scan), None));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use crate::task::security::spec::parse_scan_spec;
    use crate::task::security::{Evidence, Finding, ScanType, SentRequest};
    use serde_json::json;

    fn finding(scan_type: ScanType, severity: Severity) -> Finding {
        Finding {
            scan_type,
            severity,
            endpoint: "GET /search".into(),
            parameter: Some("q".into()),
            title: "t".into(),
            evidence: Evidence {
                request: SentRequest {
                    method: "GET".into(),
                    url: "http://127.0.0.1:9/search".into(),
                    body: None,
                    headers: Vec::new(),
                },
                response_status: 200,
                excerpt: String::new(),
            },
            remediation: String::new(),
        }
    }

    fn spec(extra: serde_json::Value) -> ScanSpec {
        let mut v = json!({"target": "http://127.0.0.1:9/", "endpoints": ["/search"]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        parse_scan_spec(&v, &Settings::defaults().load_generation).unwrap()
    }

    fn passed(vs: &[Verdict]) -> Vec<(String, bool)> {
        vs.iter().map(|v| (v.threshold.clone(), v.passed)).collect()
    }

    /// The default fails on a high finding; `fail_on: none` judges nothing; a threshold on
    /// a counter holds its count to its bound, by severity and by scan type.
    #[test]
    fn fail_on_and_thresholds_judge_the_findings() {
        let scan = ScanReport {
            findings: vec![
                finding(ScanType::Xss, Severity::High),
                finding(ScanType::Headers, Severity::Low),
                finding(ScanType::Headers, Severity::Low),
            ],
            requests_sent: 40,
            request_errors: 4,
            ..ScanReport::default()
        };
        assert_eq!(
            passed(&judge(&spec(json!({})), &scan)),
            [("fail_on: high".to_string(), false)]
        );
        assert_eq!(judge(&spec(json!({})), &scan)[0].actual, 1.0);
        assert!(judge(&spec(json!({"fail_on": "none"})), &scan).is_empty());
        assert!(judge(&spec(json!({"fail_on": "critical"})), &scan)[0].passed);
        let vs = judge(
            &spec(json!({"fail_on": "none", "thresholds": [
                "findings < 3", "findings{severity=low} <= 2", "findings{scan_type=xss} < 1",
                "requests_sent >= 40", "errors < 5", "error_rate < 0.1",
                "findings{severity=critical} < 1"]})),
            &scan,
        );
        assert_eq!(
            vs.iter().map(|v| v.passed).collect::<Vec<_>>(),
            [false, true, false, true, true, false, true]
        );
        assert_eq!(vs[5].actual, 0.1);
    }

    #[test]
    fn bad_verdict_keys_are_named() {
        let errors = |extra: serde_json::Value| -> Vec<String> {
            let mut v = json!({"target": "http://127.0.0.1:9/", "endpoints": ["/search"],
                               "scan_types": ["xss"]});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse_scan_spec(&v, &Settings::defaults().load_generation)
                .unwrap_err()
                .0
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let got = errors(json!({"fail_on": "severe"}));
        assert_eq!(
            got,
            [
                "parameters.fail_on: unknown severity \"severe\"; expected critical, high, medium, low or none"
            ]
        );
        let got = errors(json!({"thresholds": [
            "p99_ms < 200", "findings{severity=huge} < 1", "findings{scan_type=csrf} < 1",
            "findings{request=a} < 1", "requests_sent{severity=low} < 1",
            {"threshold": "findings < 1", "abort_on_fail": true}]}));
        for want in [
            "parameters.thresholds[0]: \"p99_ms\" is not one of a security_test's metrics",
            "parameters.thresholds[1]: unknown severity \"huge\"",
            "parameters.thresholds[2]: this scan does not run csrf; its scan_types: xss",
            "parameters.thresholds[3]: findings takes {severity=LEVEL} or {scan_type=TYPE}",
            "parameters.thresholds[4]: requests_sent takes no filter",
            "parameters.thresholds: a security_test's thresholds are judged once",
        ] {
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "missing {want:?} in {got:#?}"
            );
        }
    }
}
