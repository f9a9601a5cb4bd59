//! Stress tests against a target of known capacity (K requests a second, the rest queued):
//! the rate steps up until the target breaks, and the breaking point found is within 10% of
//! K, standalone (`mcpt run`) and over a cluster of two nodes.

mod common;

use std::time::Duration;

use common::browser::{Browser, NO_NETWORK_ARGS};
use common::capacity::CapacityTarget;
use common::cluster::Cluster;
use common::{ChildGuard, mcpt, temp_file};
use serde_json::{Value, json};

const K: f64 = 300.0;
const WAIT: Duration = Duration::from_secs(90);

/// Steps of 25 req/s from 200 every 2 s: 300 is a step, 325 the first over K. Without an
/// early stop the steps would run to 600 (34 s).
fn parameters(target: std::net::SocketAddr) -> Value {
    json!({
        "targets": [format!("http://{target}/")],
        "start_rps": 200,
        "step_rps": 25,
        "step_duration": "2s",
        "max_rps": 600,
    })
}

/// The steps' length without an early stop: 17 steps of 2 s (200 to 600 by 25).
const ALL_STEPS_S: usize = 34;

/// Prints the stress figures, checks the breaking point against K, and that the run stopped
/// once the target broke rather than stepping on to 600.
fn check(how: &str, report: &Value) -> f64 {
    let task = &report["tasks"][0];
    let stopped_by = report["summary"]["stopped_by"].as_str().unwrap_or_default();
    assert!(
        stopped_by.starts_with("stress test broke at"),
        "{}",
        report["summary"]
    );
    let seconds = task["timeline"].as_array().unwrap().len();
    eprintln!("  stopped after {seconds} s of {ALL_STEPS_S}: {stopped_by}");
    assert!(seconds < ALL_STEPS_S - 4, "{seconds} s ran");
    assert_eq!(task["type"], "stress_test", "{task}");
    let stress = &task["stress"];
    eprintln!("{how}: K = {K} req/s");
    eprintln!("  step req/s  achieved    p50 ms    p95 ms    p99 ms   errors  seconds");
    for s in stress["steps"].as_array().expect("steps") {
        eprintln!(
            "  {:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.2}% {:>8}",
            s["rps"].as_f64().unwrap(),
            s["achieved_rps"].as_f64().unwrap(),
            s["p50_ms"].as_f64().unwrap(),
            s["p95_ms"].as_f64().unwrap(),
            s["p99_ms"].as_f64().unwrap(),
            s["error_rate"].as_f64().unwrap() * 100.0,
            s["seconds"]
        );
    }
    eprintln!(
        "  breaking point {} req/s, broke at {} req/s: {}",
        stress["breaking_point_rps"], stress["broke_at_rps"], stress["condition"]
    );
    assert_eq!(stress["broke"], true, "{stress}");
    let point = stress["breaking_point_rps"]
        .as_f64()
        .unwrap_or_else(|| panic!("no breaking point: {stress}"));
    assert!(
        (point - K).abs() <= 0.1 * K,
        "breaking point {point} is not within 10% of {K}: {stress}"
    );
    point
}

#[test]
fn standalone_finds_the_capacity() {
    let t = CapacityTarget::start(K);
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "name: stress\ntasks:\n- name: capacity\n  type: stress_test\n  parameters: {}\n",
            parameters(t.addr)
        ),
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("report.json");
    let html = out_dir.path().join("report.html");
    let output = ChildGuard::spawn(&mut mcpt(&[
        "run",
        plan.path.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]))
    .wait(WAIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("breaking point"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let problems = common::schema_errors("schemas/report.schema.json", &report);
    assert!(
        problems.is_empty(),
        "report breaks its schema: {problems:#?}"
    );
    let point = check("standalone", &report);

    // The HTML report shows the verdict and draws the rate charts (x in req/s).
    let b = Browser::start_with("stress_html", NO_NETWORK_ARGS);
    let kept = b.out_dir.join("report.html");
    std::fs::copy(&html, &kept).unwrap();
    b.open(&format!("file://{}", kept.display()));
    b.wait_js(
        "document.querySelectorAll('.charts[data-stress] svg.mcpt-chart path.mcpt-series').length >= 5",
        Duration::from_secs(30),
        "the stress charts with their lines",
    );
    assert_eq!(
        b.eval("return document.querySelector('[data-figure=breaking_point_rps]').dataset.value;"),
        json!(point.to_string())
    );
    assert!(
        b.text(".charts[data-stress]").contains("req/s"),
        "the x axis is the step rate"
    );
    b.screenshot_page("stress.png", 2400);
}

#[test]
fn two_nodes_find_the_capacity() {
    let t = CapacityTarget::start(K);
    let c = Cluster::start(2);
    let id = c.submit(&json!({
        "name": "stress",
        "tasks": [{"name": "capacity", "type": "stress_test", "parameters": parameters(t.addr)}],
    }));
    let view = c.wait_done(&id, WAIT);
    assert_eq!(view["state"], "completed", "{view}");
    assert!(
        view["reason"]
            .as_str()
            .is_some_and(|r| r.contains("breaking point 300 rps")),
        "{view}"
    );
    let report = c.report(&id);
    let task = &report["tasks"][0];
    let nodes = task["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{task}");
    assert!(
        nodes.iter().all(|n| n["sent"].as_u64().unwrap() > 0),
        "both nodes sent: {nodes:?}"
    );
    check("two nodes", &report);
}
