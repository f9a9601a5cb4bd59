//! Thresholds (`performance_test`, and `thresholds` on a `load_test`): a run that passes, a run
//! that fails one threshold (exit code 3, the verdict in the report), and `abort_on_fail`
//! stopping a run within two windows of the breach, standalone (`mcpt run`) and on a cluster
//! of two nodes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, post};
use common::{ChildGuard, mcpt, target, temp_file};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// `mcpt run` of `plan`; its exit code and JSON report.
fn run(plan: &str) -> (Option<i32>, Value, String) {
    let (output, report) = common::run_plan(plan, &["-q"]);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let report = report.unwrap_or_else(|| {
        panic!(
            "no report; exit {:?}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let problems = common::schema_errors("schemas/report.schema.json", &report);
    assert!(problems.is_empty(), "{problems:#?}");
    (output.status.code(), report, stdout)
}

fn passed(report: &Value) -> Vec<(String, bool)> {
    report["tasks"][0]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["threshold"].as_str().unwrap().to_string(),
                v["passed"] == true,
            )
        })
        .collect()
}

#[test]
fn a_run_that_passes_and_one_that_fails_a_threshold() {
    let t = target();
    let (code, report, stdout) = run(&format!(
        r#"
name: passes
tasks:
  - type: performance_test
    parameters:
      targets: [{{url: "http://{addr}/"}}]
      duration: 3s
      base_rps: 50
      thresholds:
        - "p99_ms < 1000"
        - "error_rate < 0.01"
        - "achieved_rps >= 0.95 * planned"
"#,
        addr = t.addr
    ));
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(report["tasks"][0]["type"], "performance_test");
    assert_eq!(report["summary"]["thresholds_passed"], true);
    assert!(passed(&report).iter().all(|(_, p)| *p), "{stdout}");
    assert!(stdout.contains("thresholds passed"), "{stdout}");
    eprintln!("passing run:\n{stdout}");

    // Half the requests fail: the error-rate threshold fails, the latency one holds.
    let (code, report, stdout) = run(&format!(
        r#"
name: fails
tasks:
  - type: load_test
    parameters:
      targets:
        - {{url: "http://{addr}/"}}
        - {{url: "http://{addr}/status?code=500"}}
      duration: 3s
      base_rps: 50
      thresholds: ["p99_ms < 1000", "error_rate < 0.01"]
"#,
        addr = t.addr
    ));
    assert_eq!(code, Some(3), "a failed threshold exits 3\n{stdout}");
    assert_eq!(report["summary"]["thresholds_passed"], false);
    assert_eq!(
        passed(&report),
        [
            ("p99_ms < 1000".to_string(), true),
            ("error_rate < 0.01".to_string(), false)
        ]
    );
    let v = &report["tasks"][0]["thresholds"][1];
    assert!((v["actual"].as_f64().unwrap() - 0.5).abs() < 0.05, "{v}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("thresholds FAILED"),
        "{stdout}"
    );
    assert_eq!(report["summary"]["interrupted"], false, "ran to its end");
    eprintln!("failing run:\n{stdout}");
}

#[test]
fn abort_on_fail_stops_a_standalone_run_within_two_windows_of_the_breach() {
    let failing = Arc::new(AtomicBool::new(false));
    let t = common::switchable_target(failing.clone());
    let plan = temp_file(
        "plan.yaml",
        &format!(
            r#"
name: aborts
tasks:
  - type: performance_test
    parameters:
      targets: [{{url: "http://{addr}/"}}]
      duration: 30s
      base_rps: 50
      thresholds:
        - threshold: "error_rate < 0.1"
          abort_on_fail: true
          delay_abort_eval: 1s
"#,
            addr = t.addr
        ),
    );
    let out = plan.path.with_extension("json");
    let child = ChildGuard::spawn(&mut mcpt(&[
        "run",
        plan.path.to_str().unwrap(),
        "-q",
        "--output",
        out.to_str().unwrap(),
    ]));
    // Healthy for 3 s, then every answer is a 500.
    common::hold(Duration::from_secs(3));
    failing.store(true, Ordering::SeqCst);
    let breach = Instant::now();
    let output = child.wait(WAIT);
    let stopped_after = breach.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let s = &report["summary"];
    let why = s["stopped_by"].as_str().unwrap();
    assert!(why.contains("error_rate"), "{why}");
    let v = &report["tasks"][0]["thresholds"][0];
    assert_eq!(v["passed"], false);
    let aborted_at = v["aborted_at_s"].as_u64().unwrap();
    // The breach began about 3 s in; the run stops on the first or second window after it.
    let timeline = report["tasks"][0]["timeline"].as_array().unwrap();
    let first_bad = timeline
        .iter()
        .position(|p| p["errors"].as_u64().unwrap() > 0)
        .expect("a window with errors") as u64;
    assert!(
        aborted_at <= first_bad + 2,
        "aborted at {aborted_at} s, first failing window {first_bad}"
    );
    assert!(
        s["duration_s"].as_f64().unwrap() < 10.0,
        "stopped long before its 30 s: {s}"
    );
    eprintln!(
        "abort: first failing window {first_bad}, aborted at {aborted_at} s, process ended {:.1} s after the switch, ran {} s: {why}",
        stopped_after.as_secs_f64(),
        s["duration_s"]
    );
}

#[test]
fn thresholds_judge_and_abort_on_a_cluster_of_two_nodes() {
    let c = Cluster::start(2);
    let t = target();
    let body = |thresholds: Value, secs: u32, path: &str| {
        json!({"name": "cluster-thresholds", "tasks": [{"type": "performance_test", "parameters": {
            "targets": [{"url": format!("http://{}{path}", t.addr)}],
            "duration": format!("{secs}s"), "base_rps": 100, "thresholds": thresholds}}]})
    };
    // Passes, judged over both nodes' merged figures.
    let id = c.submit(&body(
        json!(["error_rate < 0.01", "achieved_rps >= 0.95 * planned"]),
        3,
        "/",
    ));
    assert_eq!(c.wait_done(&id, WAIT)["state"], "completed");
    let r = c.report(&id);
    assert_eq!(r["summary"]["thresholds_passed"], true, "{}", r["summary"]);
    assert_eq!(r["tasks"][0]["nodes"].as_array().unwrap().len(), 2);

    // Every request fails: aborted after its 2 s delay, the execution ends failed.
    let id = c.submit(&body(
        json!([{"threshold": "error_rate < 0.5", "abort_on_fail": true, "delay_abort_eval": "2s"}]),
        30,
        "/status?code=500",
    ));
    let view = c.wait_done(&id, WAIT);
    assert_eq!(view["state"], "failed", "{view}");
    let r = c.report(&id);
    let v = &r["tasks"][0]["thresholds"][0];
    assert_eq!(v["passed"], false);
    let at = v["aborted_at_s"].as_u64().unwrap();
    assert!((2..=4).contains(&at), "aborted at {at} s: {v}");
    assert!(r["summary"]["duration_s"].as_f64().unwrap() < 10.0);
    // The HTML report shows the verdict.
    let html = ureq::get(
        &c.orchestrator
            .url(&format!("/api/executions/{id}/report.html")),
    )
    .call()
    .unwrap()
    .body_mut()
    .read_to_string()
    .unwrap();
    assert!(
        html.contains("Thresholds failed") && html.contains("FAIL, aborted the run at"),
        "the HTML report shows the thresholds' verdicts"
    );
    eprintln!(
        "cluster abort at {at} s, ran {} s: {}",
        r["summary"]["duration_s"], r["summary"]["stopped_by"]
    );

    // A performance_test without thresholds, and a bad one, are named 422s.
    let (status, e) = post(
        &c.orchestrator.url("/api/executions"),
        &body(json!([]), 3, "/"),
        None,
    );
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "tasks[0].parameters.thresholds");
    let (status, e) = post(
        &c.orchestrator.url("/api/executions"),
        &body(json!(["p99 < 5"]), 3, "/"),
        None,
    );
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["field"], "tasks[0].parameters.thresholds[0]");
    assert!(
        e["message"].as_str().unwrap().contains("unknown metric"),
        "{e}"
    );
}

/// `achieved_rps` is one figure: the threshold reads the rate the report shows (completed over
/// the seconds the load ran), not one diluted by the drain second in which the last requests
/// complete. 50 rps for 4 s against a 600 ms answer: the last second's requests complete in
/// the drain, so the timeline has a fifth second.
#[test]
fn an_achieved_rps_threshold_the_report_meets_passes() {
    let t = target();
    let (code, report, stdout) = run(&format!(
        r#"
name: rate-threshold
tasks:
  - type: performance_test
    parameters:
      targets: [{{url: "http://{addr}/delay?ms=600"}}]
      duration: 4s
      base_rps: 50
      thresholds:
        - "achieved_rps >= 45"
"#,
        addr = t.addr
    ));
    let task = &report["tasks"][0];
    let verdict = &task["thresholds"][0];
    eprintln!(
        "report achieved_rps {} over {} s ({} completed, timeline of {} s); threshold actual {}",
        task["achieved_rps"],
        task["duration_s"],
        task["total_requests"],
        task["timeline"].as_array().map_or(0, Vec::len),
        verdict["actual"]
    );
    assert!(
        task["timeline"].as_array().unwrap().len() > 4,
        "the drain makes a second of its own: {task}"
    );
    assert_eq!(
        task["total_requests"].as_u64(),
        Some(t.stats.view().total),
        "the report counts what the target received"
    );
    assert_eq!(
        verdict["actual"], task["achieved_rps"],
        "the threshold reads the report's rate"
    );
    assert_eq!(passed(&report), [("achieved_rps >= 45".to_string(), true)]);
    assert_eq!(code, Some(0), "{stdout}");
}
