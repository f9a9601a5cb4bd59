//! Pass/fail for every test type and the CI formats (issue 17): a `security_test`'s `fail_on`
//! and its thresholds on its counters decide `mcpt run`'s exit code (3 when it fails), and
//! `--junit` shows a failed threshold and a high finding as failed test cases in a document
//! that the Jenkins xunit plugin's JUnit schema validates (with xmllint); `--csv` writes the
//! timeline and per-request tables.

mod common;

use std::path::Path;
use std::process::Command;

use common::target;
use common::vulnerable::{Flavor, VulnServer};
use serde_json::{Value, json};

const XSD: &str = "tests/fixtures/junit/junit-10.xsd";

/// A quick scan of the vulnerable server's `/item` (an SQL injection: critical) and `/search`
/// (a reflected XSS: high), with `extra` parameters.
fn scan_plan(server: &VulnServer, extra: Value) -> String {
    let mut params = json!({
        "target": server.url().as_str(),
        "endpoints": [
            {"path": "/item", "params": [{"name": "id", "value": "1"}]},
            {"path": "/search", "params": [{"name": "q", "value": "apple"}]}
        ],
        "rate_limit_rps": 100,
        "timeout": "5s"
    });
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"name": "ci <scan> & \"co\"", "tasks": [{"name": "scan", "type": "security_test",
           "parameters": params}]})
    .to_string()
}

/// `mcpt run` of `plan` with `extra` flags: its exit code, JSON report and stderr.
fn run(plan: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["-q"];
    args.extend_from_slice(extra);
    let (output, report) = common::run_plan(plan, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let report = report.unwrap_or_else(|| panic!("no report: {:?}\n{stderr}", output.status));
    let problems = common::schema_errors("schemas/report.schema.json", &report);
    assert!(problems.is_empty(), "{problems:#?}");
    (output.status.code(), report, stderr)
}

/// xmllint, or a loud failure: the validation is the point of the test.
fn xmllint(args: &[&str]) -> std::process::Output {
    Command::new("xmllint").args(args).output().unwrap_or_else(|e| {
        panic!("xmllint is needed to validate the JUnit XML ({e}): apt-get install libxml2-utils (.ci/run does)")
    })
}

/// Validates `file` against the vendored JUnit schema.
fn assert_valid_junit(file: &Path) {
    let out = xmllint(&["--noout", "--schema", XSD, file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "the JUnit XML breaks {XSD}:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap()
    );
}

/// The value of an XPath expression over `file`.
fn xpath(file: &Path, expr: &str) -> String {
    let out = xmllint(&["--xpath", expr, file.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn verdicts(report: &Value) -> Vec<(String, bool)> {
    report["tasks"][0]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["threshold"].as_str().unwrap().into(), v["passed"] == true))
        .collect()
}

/// The default `fail_on: high` fails the run on the critical SQL injection and the high XSS:
/// exit 3, and in the JUnit XML the `fail_on` verdict and both checks are failed cases
/// carrying the reason, while the headers check (low and medium findings) passes.
#[test]
fn a_high_finding_fails_the_run_and_is_a_failed_junit_case() {
    let server = VulnServer::start(Flavor::Vulnerable);
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let (code, report, stderr) = run(
        &scan_plan(&server, json!({})),
        &["--junit", junit.to_str().unwrap()],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(report["summary"]["thresholds_passed"], false);
    assert_eq!(verdicts(&report), [("fail_on: high".to_string(), false)]);
    assert_eq!(report["tasks"][0]["security"]["fail_on"], "high");
    assert!(stderr.contains("JUnit XML written to"), "{stderr}");

    assert_valid_junit(&junit);
    let case = |name: &str| format!("//testsuite[@name='scan']/testcase[@name='{name}']");
    assert_eq!(
        xpath(
            &junit,
            &format!("count({}/failure)", case("threshold fail_on: high"))
        ),
        "1"
    );
    let sqli = xpath(
        &junit,
        &format!(
            "string({}/failure/@message)",
            case("security sql_injection")
        ),
    );
    assert!(
        sqli.contains("critical") && sqli.contains("fail_on: high") && sqli.contains("/item"),
        "{sqli}"
    );
    let evidence = xpath(
        &junit,
        &format!("string({}/failure)", case("security sql_injection")),
    );
    assert!(evidence.contains("request: GET "), "{evidence}");
    assert_eq!(
        xpath(&junit, &format!("count({}/failure)", case("security xss"))),
        "1"
    );
    assert_eq!(
        xpath(
            &junit,
            &format!("count({}/failure)", case("security headers"))
        ),
        "0"
    );
    assert_eq!(
        xpath(
            &junit,
            &format!("count({}/failure)", case("task scan (security_test)"))
        ),
        "0"
    );
    // The hostile run name is text: the document parsed, and the name reads back whole.
    assert_eq!(
        xpath(&junit, "string(/testsuites/@name)"),
        "ci <scan> & \"co\""
    );
    let failures = xpath(&junit, "string(/testsuites/@failures)");
    assert_eq!(failures, xpath(&junit, "count(//testcase[failure])"));
}

/// `fail_on: none` passes whatever was found (exit 0); a threshold on a counter then decides:
/// one that holds passes, `findings{severity=critical} < 1` fails the run (exit 3).
#[test]
fn fail_on_none_passes_and_a_threshold_on_a_counter_decides() {
    let server = VulnServer::start(Flavor::Vulnerable);
    let (code, report, stderr) = run(
        &scan_plan(
            &server,
            json!({"fail_on": "none", "thresholds": [
                "requests_sent > 0", "findings{scan_type=xss} >= 1", "errors < 1"]}),
        ),
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        verdicts(&report),
        [
            ("requests_sent > 0".to_string(), true),
            ("findings{scan_type=xss} >= 1".to_string(), true),
            ("errors < 1".to_string(), true)
        ]
    );
    assert_eq!(report["summary"]["thresholds_passed"], true);

    let (code, report, stderr) = run(
        &scan_plan(
            &server,
            json!({"fail_on": "none", "thresholds": ["findings{severity=critical} < 1"]}),
        ),
        &[],
    );
    assert_eq!(code, Some(3), "{stderr}");
    let v = &report["tasks"][0]["thresholds"][0];
    assert_eq!(v["passed"], false, "{v}");
    assert!(v["actual"].as_f64().unwrap() >= 1.0, "{v}");
}

/// A bad `fail_on` is refused before anything is sent, naming its key path (exit 2).
#[test]
fn a_bad_fail_on_is_named() {
    let server = VulnServer::start(Flavor::Vulnerable);
    let (output, report) = common::run_plan(&scan_plan(&server, json!({"fail_on": "severe"})), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(report.is_none());
    assert!(
        stderr.contains("tasks[0].parameters.fail_on: unknown severity \"severe\""),
        "{stderr}"
    );
}

/// A load task's failing threshold is a failed JUnit case (exit 3), its passing one a passed
/// case; `--csv` writes the timeline (a row per second) and the per-request table.
#[test]
fn a_failing_threshold_is_a_failed_junit_case_and_the_csv_has_both_tables() {
    let t = target();
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let csv = dir.path().join("csv");
    let plan = format!(
        r#"
name: ci-load
tasks:
  - name: "load <1>"
    type: load_test
    parameters:
      targets: [{{url: "http://{addr}/", name: home}}]
      duration: 2s
      base_rps: 20
      thresholds: ["errors < 1", "achieved_rps > 100000"]
"#,
        addr = t.addr
    );
    let (code, report, stderr) = run(
        &plan,
        &[
            "--junit",
            junit.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert_valid_junit(&junit);
    let case = |name: &str| format!("//testsuite[@name='load <1>']/testcase[@name='{name}']");
    let failed = xpath(
        &junit,
        &format!(
            "string({}/failure/@message)",
            case("threshold achieved_rps > 100000")
        ),
    );
    assert!(
        failed.contains("`achieved_rps > 100000` failed") && failed.contains("against 100000"),
        "{failed}"
    );
    assert_eq!(
        xpath(&junit, &format!("count({})", case("threshold errors < 1"))),
        "1"
    );
    assert_eq!(
        xpath(
            &junit,
            &format!("count({}/failure)", case("threshold errors < 1"))
        ),
        "0"
    );
    assert_eq!(
        xpath(&junit, "count(//testcase)"),
        "3",
        "task and two thresholds"
    );

    let mut rd = csv::Reader::from_path(csv.join("timeline.csv")).unwrap();
    let header: Vec<&str> = rd.headers().unwrap().iter().take(3).collect();
    assert_eq!(header, ["task", "second", "planned"]);
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    let timeline = report["tasks"][0]["timeline"].as_array().unwrap();
    assert_eq!(rows.len(), timeline.len());
    assert!(rows.iter().all(|r| &r[0] == "load <1>"));
    let completed: u64 = rows.iter().map(|r| r[4].parse::<u64>().unwrap()).sum();
    assert_eq!(
        completed,
        report["tasks"][0]["total_requests"].as_u64().unwrap()
    );
    let mut rd = csv::Reader::from_path(csv.join("requests.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((&rows[0][0], &rows[0][1]), ("load <1>", "home"));
    assert_eq!(
        rows[0][3],
        report["tasks"][0]["requests"][0]["count"].to_string()
    );
}

/// A stress test's thresholds are its verdict like a load test's: one that fails exits 3 and
/// is the failed JUnit case, while the task's own case passes (it ran its steps).
#[test]
fn a_stress_tests_failing_threshold_exits_3() {
    let t = target();
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let plan = format!(
        r#"
name: ci-stress
tasks:
  - name: steps
    type: stress_test
    parameters:
      targets: ["http://{addr}/"]
      start_rps: 10
      step_rps: 10
      step_duration: 2s
      max_rps: 20
      thresholds: ["p99_ms < 60000", "achieved_rps > 100000"]
"#,
        addr = t.addr
    );
    let (code, report, stderr) = run(&plan, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(report["tasks"][0]["type"], "stress_test");
    assert_eq!(report["summary"]["thresholds_passed"], false);
    assert_valid_junit(&junit);
    let failed: Vec<String> = xpath(&junit, "//testcase[failure]/@name")
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(
        failed,
        [r#"name="threshold achieved_rps &gt; 100000""#],
        "{failed:?}"
    );
}
