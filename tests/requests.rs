//! Per-request statistics (issue 16): a task with a fast, a slow and a failing target reports
//! one row per request name whose counts, errors and latency match what the target served, in
//! the JSON, text and HTML reports of `mcpt run`; and a threshold filtered to one request
//! fails the run (exit 3) when only that request breaches it.

mod common;

use common::{run_plan, target, temp_file};
use serde_json::Value;

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tasks"][0]["requests"]
        .as_array()
        .expect("the task has requests")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name:?} in {}", report["tasks"][0]["requests"]))
}

#[test]
fn each_request_name_has_its_row_and_a_filtered_threshold_judges_it_alone() {
    let t = target();
    let html = temp_file("report.html", "");
    let plan = format!(
        "name: three targets\ntasks:\n- type: load_test\n  parameters:\n    targets:\n    \
         - {{url: 'http://{0}/', name: fast}}\n    - 'http://{0}/delay?ms=50'\n    \
         - {{url: 'http://{0}/status?code=500', name: fail}}\n    duration: 2s\n    \
         base_rps: 60\n    thresholds:\n    - 'p99_ms < 60000'\n    \
         - 'error_rate{{request=fast}} < 0.01'\n    - 'error_rate{{request=fail}} < 0.01'\n    \
         - 'p50_ms{{request=\"GET /delay\"}} >= 50'\n",
        t.addr
    );
    let (out, report) = run_plan(&plan, &["-q", "--html", html.path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = report.unwrap_or_else(|| {
        panic!(
            "no report: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let problems = common::schema_errors("schemas/report.schema.json", &report);
    assert!(problems.is_empty(), "{problems:#?}");

    // The target's own counts, by path: 120 arrivals dealt over 3 equal weights.
    let served = t.stats.view();
    assert_eq!(
        (
            served.paths["/"],
            served.paths["/delay"],
            served.paths["/status"]
        ),
        (40, 40, 40),
        "{served:?}"
    );
    let task = &report["tasks"][0];
    let names: Vec<&str> = task["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast", "GET /delay", "fail"]);
    let (fast, slow, fail) = (
        row(&report, "fast"),
        row(&report, "GET /delay"),
        row(&report, "fail"),
    );
    for (r, path) in [(fast, "/"), (slow, "/delay"), (fail, "/status")] {
        assert_eq!(r["count"], served.paths[path], "{r}");
        assert_eq!(r["method"], "GET");
    }
    assert_eq!(fast["errors"]["total"], 0);
    assert_eq!(fast["status_codes"]["200"], 40);
    assert_eq!(slow["errors"]["total"], 0);
    assert_eq!(fail["errors"]["total"], 40);
    assert_eq!(fail["errors"]["status"], 40);
    assert_eq!(fail["status_codes"]["500"], 40);
    assert_eq!(fail["error_rate"], 1.0);
    // The slow one waited 50 ms at the target for every request: its median cannot be less.
    let slow_p50 = slow["latency_ms"]["p50"].as_f64().unwrap();
    assert!(slow_p50 >= 49.5, "slow p50 {slow_p50}");
    // The rows add up to the task.
    let sum: u64 = task["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, task["total_requests"].as_u64().unwrap());
    // The failures table names the request, the kind and the status.
    let failures = task["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["request"], "fail");
    assert_eq!(failures[0]["kind"], "status");
    assert_eq!(failures[0]["message"], "unexpected status 500");
    assert_eq!(failures[0]["count"], 40);

    // Only the threshold on `fail` failed, and it alone makes the run exit 3.
    let verdicts: Vec<(String, bool)> = task["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["threshold"].as_str().unwrap().to_string(),
                v["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("p99_ms < 60000".to_string(), true),
            ("error_rate{request=fast} < 0.01".to_string(), true),
            ("error_rate{request=fail} < 0.01".to_string(), false),
            ("p50_ms{request=\"GET /delay\"} >= 50".to_string(), true),
        ]
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}");

    // The text report: a row per name, and the failure.
    let line = |name: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name} in\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(&line("fast ")[..4], ["fast", "40", "0", "0.00"], "{stdout}");
    assert_eq!(
        &line("GET /delay")[..5],
        ["GET", "/delay", "40", "0", "0.00"],
        "{stdout}"
    );
    assert_eq!(
        &line("fail ")[..4],
        ["fail", "40", "40", "100.00"],
        "{stdout}"
    );
    assert!(
        stdout.contains("failure    fail x40: unexpected status 500 (status)"),
        "{stdout}"
    );

    // The HTML report: the same rows, with raw values to sort by.
    let page = std::fs::read_to_string(&html.path).unwrap();
    for name in ["fast", "GET /delay", "fail"] {
        let at = page
            .find(&format!("data-request=\"{name}\""))
            .unwrap_or_else(|| panic!("no HTML row for {name}"));
        let row_html = &page[at..at + page[at..].find("</tr>").unwrap()];
        assert!(
            row_html.contains("<td data-key=\"count\" data-value=\"40\">40</td>"),
            "{row_html}"
        );
    }
    assert!(page.contains("<td>fail</td><td>status</td><td>unexpected status 500</td><td>40</td>"));
}

/// A filter that names no request of the task is refused at submit, saying which there are.
#[test]
fn a_filter_on_an_unknown_request_is_refused_naming_the_requests() {
    let t = target();
    let plan = format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets:\n    \
         - {{url: 'http://{0}/', name: home}}\n    - 'http://{0}/items?x=1'\n    \
         duration: 1s\n    base_rps: 5\n    thresholds: ['p99_ms{{request=login}} < 200']\n",
        t.addr
    );
    let (out, report) = run_plan(&plan, &["-q"]);
    assert!(report.is_none());
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tasks[0].parameters.thresholds[0]")
            && stderr.contains(
                "no request of this task is named \"login\"; its requests: home, GET /items"
            ),
        "{stderr}"
    );
    assert_eq!(t.stats.view().total, 0, "nothing was sent");
}
