//! The HTML report: `mcpt run --html` writes one self-contained file that headless Chromium
//! renders with no network; the orchestrator serves it and compares two executions.

mod common;

use std::time::Duration;

use common::browser::{Browser, NO_NETWORK_ARGS, js_string};
use common::cluster::{Cluster, get, load_body};
use common::{ChildGuard, mcpt, target, temp_file};
use mcp_testing::stats::html::{fmt_percent, fmt_rate, fmt_seconds};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const RUN_WAIT: Duration = Duration::from_secs(60);

/// A task name that would break out of a `<script>` or add markup if it were not escaped.
const HOSTILE: &str = "open </script><b>bold</b> & co";

/// `mcpt run --html` writes a page that renders in Chromium with no network at all: three
/// charts per task with data, the summary figures of the JSON report, nothing fetched.
#[test]
fn run_writes_an_html_report_that_renders_offline() {
    let t = target();
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "name: html-report\ntasks:\n- name: {}\n  type: load_test\n  parameters:\n    targets: ['http://{1}/', 'http://{1}/status?code=500']\n    duration: 2s\n    base_rps: 50\n",
            serde_json::to_string(HOSTILE).unwrap(),
            t.addr
        ),
    );
    let out = tempfile::tempdir().unwrap();
    let (json_path, html_path) = (
        out.path().join("report.json"),
        out.path().join("report.html"),
    );
    let output = ChildGuard::spawn(&mut mcpt(&[
        "run",
        plan.path.to_str().unwrap(),
        "--quiet",
        "--output",
        json_path.to_str().unwrap(),
        "--html",
        html_path.to_str().unwrap(),
    ]))
    .wait(RUN_WAIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stderr}",
        output.status
    );
    assert!(stderr.contains("HTML report written to"), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let s = &report["summary"];
    assert!(
        s["errors"]["total"].as_u64().unwrap() > 0,
        "the 500 target fails: {s}"
    );

    let b = Browser::start_with("report_html", NO_NETWORK_ARGS);
    // Kept beside the screenshot, to look at.
    let kept = b.out_dir.join("report.html");
    std::fs::copy(&html_path, &kept).unwrap();
    b.open(&format!("file://{}", kept.display()));
    b.wait_js(
        "Array.from(document.querySelectorAll('svg.mcpt-chart')).filter(function (s) { \
           return Array.from(s.querySelectorAll('path')).some(function (p) { \
             return (p.getAttribute('d') || '').length > 1; }); }).length >= 3",
        WAIT,
        "three charts with lines",
    );
    assert_eq!(
        b.eval("return document.documentElement.dataset.charts;"),
        "drawn"
    );
    assert_eq!(b.count("section.task"), 1);
    assert_eq!(b.count("svg.mcpt-chart"), 3);
    // Nothing was fetched: no resource besides the page itself.
    assert_eq!(
        b.eval("return performance.getEntriesByType('resource').length;"),
        0
    );
    // The hostile name is text.
    assert_eq!(b.count("b"), 0, "no element from the task name");
    assert_eq!(b.text("section.task h2"), format!("Task {HOSTILE}"));
    assert_eq!(b.eval("return document.scripts.length;"), 3);

    // The summary shows the JSON report's figures.
    let shown = |key: &str| {
        b.eval(&format!(
            "var e = document.querySelector('#summary dd[data-figure=' + {} + ']'); \
             return e && [e.textContent, e.dataset.value];",
            js_string(key)
        ))
    };
    let f = |key: &str| s[key].as_f64().unwrap();
    for (key, text) in [
        ("total_requests", s["total_requests"].to_string()),
        ("achieved_rps", fmt_rate(f("achieved_rps"))),
        ("duration_s", fmt_seconds(f("duration_s"))),
        ("error_rate", fmt_percent(f("error_rate"))),
        ("late_starts", s["late_starts"].to_string()),
        ("interrupted", "no".to_string()),
    ] {
        let got = shown(key);
        assert_eq!(got[0], text.as_str(), "{key} shown");
        let raw: Value = serde_json::from_str(got[1].as_str().unwrap()).unwrap();
        match (raw.as_f64(), s[key].as_f64()) {
            (Some(x), Some(y)) => assert_eq!(x, y, "{key} in data-value"),
            _ => assert_eq!(raw, s[key], "{key} in data-value"),
        }
    }
    assert_eq!(
        shown("errors")[0],
        s["errors"]["total"].to_string().as_str()
    );
    // The task's status codes and errors by kind are there too.
    let status_text = b.text("section.task table.status-codes");
    assert!(
        status_text.contains("500") && status_text.contains("200"),
        "{status_text}"
    );

    let png = b.screenshot_page("report.png", 2400);
    println!("HTML report screenshot: {}", png.display());
}

fn get_html(url: &str) -> (u16, String, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut r = agent.get(url).call().expect("the orchestrator answers");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (ct, csp) = (header("content-type"), header("content-security-policy"));
    let status = r.status().as_u16();
    (status, ct, csp, r.body_mut().read_to_string().unwrap())
}

fn compare_schema_errors(v: &Value) -> Vec<String> {
    common::schema_errors("schemas/compare.schema.json", v)
}

/// The orchestrator serves a finished execution's report as HTML and compares two runs: at
/// 50 and then 100 req/s, run b achieves about +100% of run a's rate.
#[test]
fn orchestrator_serves_html_reports_and_comparisons() {
    let t = target();
    let c = Cluster::start(1);
    let a = c.submit(&load_body(t.addr, 50, 3, json!({})));
    c.wait_done(&a, RUN_WAIT);
    let b = c.submit(&load_body(t.addr, 100, 3, json!({})));
    c.wait_done(&b, RUN_WAIT);
    let url = |p: &str| c.orchestrator.url(p);

    let (status, ct, csp, body) = get_html(&url(&format!("/api/executions/{a}/report.html")));
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(body.starts_with("<!doctype html>") && body.contains("id=\"report-data\""));
    let report = c.report(&a);
    assert!(
        body.contains(&format!(
            "data-figure=\"total_requests\" data-value=\"{}\"",
            report["summary"]["total_requests"]
        )),
        "the page shows the report's request count"
    );

    // Its tables as CSV (the execution page's links): the timeline a row per second.
    let (status, ct, _, csv) = get_html(&url(&format!(
        "/api/executions/{a}/report.csv?table=timeline"
    )));
    assert_eq!(status, 200, "{csv}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert!(
        csv.starts_with("task,second,planned,sent,completed,errors,rps"),
        "{csv}"
    );
    let seconds = report["tasks"][0]["timeline"].as_array().unwrap().len();
    assert_eq!(csv.lines().count(), 1 + seconds, "{csv}");
    let (status, _, _, csv) = get_html(&url(&format!(
        "/api/executions/{a}/report.csv?table=requests"
    )));
    assert_eq!(status, 200, "{csv}");
    assert!(csv.starts_with("task,name,method,count,errors"), "{csv}");
    for query in ["?table=bogus", ""] {
        let (status, body) = get(&url(&format!("/api/executions/{a}/report.csv{query}")));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], "table", "{body}");
    }

    let (status, cmp) = get(&url(&format!("/api/executions/{a}/compare/{b}")));
    assert_eq!(status, 200, "{cmp}");
    let problems = compare_schema_errors(&cmp);
    assert!(
        problems.is_empty(),
        "comparison breaks its schema: {problems:#?}\n{cmp:#}"
    );
    assert_eq!(cmp["a"]["execution_id"], a.as_str());
    assert_eq!(cmp["b"]["execution_id"], b.as_str());
    let rps = &cmp["summary"]["achieved_rps"];
    let pct = rps["delta_percent"].as_f64().unwrap();
    eprintln!(
        "compare: achieved rps {} -> {} ({pct:+.2}%), p99 {:?}",
        rps["a"], rps["b"], cmp["summary"]["latency_ms"]["p99"]
    );
    assert!(
        (pct - 100.0).abs() <= 5.0,
        "rate delta {pct}% (a {}, b {})",
        rps["a"],
        rps["b"]
    );
    assert_eq!(cmp["tasks"].as_array().unwrap().len(), 1, "{cmp:#}");
    let task_pct = cmp["tasks"][0]["achieved_rps"]["delta_percent"]
        .as_f64()
        .unwrap();
    assert!(
        (task_pct - 100.0).abs() <= 5.0,
        "task rate delta {task_pct}%"
    );
    assert_eq!(
        cmp["summary"]["total_requests"]["delta"].as_f64().unwrap(),
        cmp["summary"]["total_requests"]["b"].as_f64().unwrap()
            - cmp["summary"]["total_requests"]["a"].as_f64().unwrap()
    );

    // Unknown executions: the JSON 404 of the API, on both routes and either side.
    let unknown = "no-such-execution";
    for path in [
        format!("/api/executions/{unknown}/report.html"),
        format!("/api/executions/{unknown}/report"),
        format!("/api/executions/{a}/compare/{unknown}"),
        format!("/api/executions/{unknown}/compare/{b}"),
    ] {
        let (status, body) = get(&url(&path));
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
    let (status, body) = common::cluster::post(
        &url(&format!("/api/executions/{a}/compare/{b}")),
        &json!({}),
        None,
    );
    assert_eq!(status, 405, "{body}");
}

/// charts.js on its own, in the browser: edge cases render without NaN, text is escaped.
#[test]
fn charts_render_edge_cases_in_the_browser() {
    let b = Browser::start_with("charts", NO_NETWORK_ARGS);
    let page = b.out_dir.join("charts.html");
    let js = std::fs::read_to_string(common::repo_path("src/http/ui/charts.js")).unwrap();
    std::fs::write(
        &page,
        format!(
            "<!doctype html><meta charset=utf-8><title>charts</title><body><div id=c></div>\
             <script>{js}</script><script>\
             var C = McptCharts, out = [];\
             out.push(C.line({{title: 'rate <b>', unit: 'req/s', x: [0,1,2,3,4], series: [\
               {{name: 'planned', values: [50,50,50,50,50], dashed: true}},\
               {{name: '<\\/script><i>x</i>', values: [48, null, NaN, 51, 49]}}]}}));\
             out.push(C.line({{title: 'empty', unit: 'ms', x: [], series: []}}));\
             out.push(C.line({{title: 'one point', unit: 'ms', x: [7], series: [{{name: 'p50', values: [3.5]}}]}}));\
             out.push(C.line({{title: 'zeros', unit: 'ms', x: [0,1], series: [{{name: 'p99', values: [0,0]}}]}}));\
             document.getElementById('c').innerHTML = out.join('');\
             </script>"
        ),
    )
    .unwrap();
    b.open(&format!("file://{}", page.display()));
    b.wait_js(
        "document.querySelectorAll('svg.mcpt-chart').length === 4",
        WAIT,
        "4 charts",
    );
    let html = b.eval("return document.getElementById('c').innerHTML;");
    let html = html.as_str().unwrap();
    assert!(!html.contains("NaN") && !html.contains("Infinity") && !html.contains("undefined"));
    assert_eq!(b.count("#c i"), 0, "a series name is text, not markup");
    assert_eq!(b.count("#c b"), 0, "a title is text, not markup");
    assert_eq!(
        b.eval("return document.querySelector('svg.mcpt-chart').dataset.series;"),
        "2"
    );
    // 48 at x=0 (a gap follows) and the single point 3.5 stand alone: each is a dot.
    assert_eq!(b.count("svg.mcpt-chart circle"), 2, "lone points are dots");
    assert_eq!(
        b.eval("return performance.getEntriesByType('resource').length;"),
        0
    );
    b.screenshot("charts.png");
}
