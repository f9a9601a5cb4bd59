//! `mcpt run` as a user runs it: the exit codes, the text and JSON reports (checked against
//! the committed schema), and bad plans refused before a single request is sent.

mod common;

use std::time::Duration;

use common::{ChildGuard, mcpt, repo_path, target, temp_file, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn schema_errors(report: &Value) -> Vec<String> {
    common::schema_errors("schemas/report.schema.json", report)
}

#[test]
fn a_run_prints_a_report_and_writes_json_that_matches_the_schema() {
    let t = target();
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "name: smoke\ntasks:\n- name: open\n  type: load_test\n  parameters:\n    targets: ['http://{0}/', {{url: 'http://{0}/status?code=503', expected_status: 503}}]\n    duration: 2s\n    base_rps: 100\n- name: closed\n  type: load_test\n  parameters:\n    targets: ['http://{0}/bytes?n=64']\n    duration: 1s\n    model: closed\n    concurrent_users: 2\n    think_time: 20ms\n",
            t.addr
        ),
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("report.json");
    let output = ChildGuard::spawn(&mut mcpt(&[
        "run",
        plan.path.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]))
    .wait(WAIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("task open") && stdout.contains("task closed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("corrected") && stdout.contains("p99"),
        "{stdout}"
    );
    // Not a terminal: one plain progress line a second on stderr.
    assert!(
        stderr.contains("planned") && stderr.contains("achieved"),
        "{stderr}"
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let problems = schema_errors(&report);
    assert!(
        problems.is_empty(),
        "report breaks its schema: {problems:#?}"
    );
    let open = &report["tasks"][0];
    assert_eq!(open["planned_requests"], 200);
    assert_eq!(open["total_requests"], 200);
    assert_eq!(
        open["errors"]["total"], 0,
        "503 was expected on that target"
    );
    assert_eq!(open["status_codes"]["503"], 100);
    let closed = &report["tasks"][1];
    assert_eq!(closed["model"], "closed");
    assert_eq!(closed["planned_requests"], Value::Null);
    assert!(closed["total_requests"].as_u64().unwrap() > 10);
    assert_eq!(
        closed["bytes_received"].as_u64().unwrap(),
        64 * closed["total_requests"].as_u64().unwrap()
    );
    // Every request the report counts reached the target.
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    assert_eq!(total, t.stats.view().total);
}

#[test]
fn a_broken_report_fails_the_schema() {
    // The schema test above can only fail if the schema actually constrains something.
    let broken = serde_json::json!({"name": "x", "started_at_ms": 1, "summary": {}, "tasks": []});
    assert!(!schema_errors(&broken).is_empty());
}

/// Each bad plan names its field, exits 2, and sends nothing: every plan below also has a
/// valid target on the live server, so a request sent by mistake would be seen.
#[test]
fn bad_plans_are_refused_before_anything_is_sent() {
    let t = target();
    let url = format!("http://{}/", t.addr);
    let task = |extra: &str| {
        format!(
            "name: bad\ntasks:\n- type: load_test\n  parameters:\n    targets: ['{url}']\n    duration: 2s\n    base_rps: 50\n{extra}"
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            task("    colour: blue\n"),
            "tasks[0].parameters.colour",
        ),
        (
            "negative rate",
            task("").replace("base_rps: 50", "base_rps: -5"),
            "tasks[0].parameters.base_rps",
        ),
        (
            "empty targets",
            task("").replace(&format!("['{url}']"), "[]"),
            "tasks[0].parameters.targets",
        ),
        (
            "bad URL",
            task("").replace(&format!("['{url}']"), &format!("['{url}', 'http//nope']")),
            "tasks[0].parameters.targets[1].url",
        ),
        (
            "host not allowlisted",
            task("").replace(
                &format!("['{url}']"),
                &format!("['{url}', 'http://10.255.255.1:80/']"),
            ),
            "tasks[0].parameters.targets[1].url",
        ),
        (
            "duration 0",
            task("").replace("duration: 2s", "duration: 0"),
            "tasks[0].parameters.duration",
        ),
        (
            "unknown pattern",
            task("    pattern: zigzag\n"),
            "tasks[0].parameters.pattern",
        ),
        (
            "a rate beyond load_generation.max_rps",
            task("").replace("base_rps: 50", "base_rps: 1.0e308"),
            "tasks[0].parameters.base_rps",
        ),
        (
            "a think time beyond orchestrator.task_timeout",
            task("    model: closed\n    think_time: 100000000\n")
                .replace("    base_rps: 50\n", ""),
            "tasks[0].parameters.think_time",
        ),
        (
            "peak_rps without a pattern",
            task("    peak_rps: 500\n"),
            "tasks[0].parameters.peak_rps",
        ),
    ];
    for (what, yaml, field) in cases {
        let plan = temp_file("plan.yaml", &yaml);
        let output = ChildGuard::spawn(&mut mcpt(&["run", plan.path.to_str().unwrap()])).wait(WAIT);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{what}: exit {:?}\n{stderr}",
            output.status
        );
        assert!(
            stderr.contains(field),
            "{what}: the error should name {field}:\n{stderr}"
        );
        assert!(output.stdout.is_empty(), "{what}: no report for a bad plan");
    }
    assert_eq!(t.stats.view().total, 0, "a bad plan sent requests");
}

#[test]
fn several_mistakes_are_reported_together() {
    let plan = temp_file(
        "plan.json",
        r#"{"tasks": [{"type": "load_test", "parameters": {"targets": ["http://127.0.0.1:9/"], "duration": -1, "base_rps": "fast", "arrivals": "bursty"}}], "extra": true}"#,
    );
    let output = ChildGuard::spawn(&mut mcpt(&["run", plan.path.to_str().unwrap()])).wait(WAIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    for field in [
        "extra",
        "parameters.duration",
        "parameters.base_rps",
        "parameters.arrivals",
    ] {
        assert!(stderr.contains(field), "missing {field} in:\n{stderr}");
    }
}

#[test]
fn unreadable_plans_and_bad_config_exit_2() {
    let missing = ChildGuard::spawn(&mut mcpt(&["run", "/nonexistent/plan.yaml"])).wait(WAIT);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/plan.yaml"));
    let syntax = temp_file("plan.yaml", "tasks: [unclosed");
    let out = ChildGuard::spawn(&mut mcpt(&["run", syntax.path.to_str().unwrap()])).wait(WAIT);
    assert_eq!(out.status.code(), Some(2));
    let example = repo_path("config/examples/quickstart.yaml");
    let mut cmd = mcpt(&["run", example.to_str().unwrap()]);
    cmd.env("MCP_ORCHESTRATOR_PORT", "not-a-port");
    let out = ChildGuard::spawn(&mut cmd).wait(WAIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MCP_ORCHESTRATOR_PORT"));
    let usage = ChildGuard::spawn(&mut mcpt(&["run"])).wait(WAIT);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn the_allowlist_comes_from_configuration() {
    // Narrowed by --set to one address and port: 127.0.0.2, allowed by default, is refused;
    // the allowed address runs, and its refused connections are counted, not fatal.
    let port = common::closed_port();
    let allow = format!("load_generation.allowed_targets=127.0.0.1:{port}");
    let plan_for = |host: &str| {
        temp_file(
            "plan.yaml",
            &format!(
                "tasks:\n- type: load_test\n  parameters:\n    targets: [{{url: 'http://{host}:{port}/', timeout: 200ms}}]\n    duration: 1s\n    base_rps: 20\n"
            ),
        )
    };
    let refused = plan_for("127.0.0.2");
    let output = ChildGuard::spawn(&mut mcpt(&[
        "run",
        refused.path.to_str().unwrap(),
        "--set",
        &allow,
        "-q",
    ]))
    .wait(WAIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("targets[0].url") && stderr.contains("allowed_targets"),
        "{stderr}"
    );

    let allowed = plan_for("127.0.0.1");
    let output = ChildGuard::spawn(&mut mcpt(&[
        "run",
        allowed.path.to_str().unwrap(),
        "--set",
        &allow,
        "-q",
    ]))
    .wait(WAIT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("errors     20 (connect 20"), "{stdout}");
}

#[test]
fn ctrl_c_stops_the_run_and_still_reports() {
    let t = target();
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "tasks:\n- type: load_test\n  parameters:\n    targets: ['http://{}/']\n    duration: 30s\n    base_rps: 100\n",
            t.addr
        ),
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("report.json");
    let child = ChildGuard::spawn(&mut mcpt(&[
        "run",
        plan.path.to_str().unwrap(),
        "-q",
        "--output",
        out.to_str().unwrap(),
    ]));
    assert!(
        wait_until(Duration::from_secs(20), || t.stats.view().total >= 50),
        "no load arrived"
    );
    // SIGINT to our own child, by its PID.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait(Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("interrupted"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        schema_errors(&report).is_empty(),
        "{:#?}",
        schema_errors(&report)
    );
    assert_eq!(report["summary"]["interrupted"], true);
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    assert_eq!(
        total,
        t.stats.view().total,
        "the report counts what the target received"
    );
    assert!(
        total < 1500,
        "the run stopped early ({total} of 3000 planned)"
    );
    // Rates cover the time that ran: about 100 rps, not total / 30 s.
    let rps = report["tasks"][0]["achieved_rps"].as_f64().unwrap();
    assert!(
        rps > 50.0,
        "achieved_rps {rps} should be over the time that ran"
    );
}

/// The spec's environment block sets the heartbeat alone: the lease and death timeouts follow
/// from it, and a combination that still does not hold names every variable in it.
#[test]
fn a_heartbeat_from_the_environment_alone_is_accepted() {
    let t = target();
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "name: hb\ntasks:\n- type: load_test\n  parameters:\n    targets: ['http://{}/']\n    duration: 1s\n    base_rps: 10\n",
            t.addr
        ),
    );
    let out = ChildGuard::spawn(
        mcpt(&["run", "--quiet", plan.path.to_str().unwrap()])
            .env("MCP_COMM_HEARTBEAT_INTERVAL", "30"),
    )
    .wait(WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(t.stats.view().total, 10);

    let out = ChildGuard::spawn(
        mcpt(&["run", "--quiet", plan.path.to_str().unwrap()])
            .env("MCP_COMM_HEARTBEAT_INTERVAL", "30")
            .env("MCP_COMM_LEASE_TIMEOUT", "40"),
    )
    .wait(WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in [
        "communication.death_timeout",
        "MCP_COMM_HEARTBEAT_INTERVAL",
        "MCP_COMM_LEASE_TIMEOUT",
        "death_timeout 5s: the default",
    ] {
        assert!(stderr.contains(name), "{name} missing: {stderr}");
    }
}

/// The spec writes enum names in upper case (`LOAD_TEST`, `ROUND_ROBIN`); a plan written so
/// runs as its lower-case twin would.
#[test]
fn a_plan_with_the_specs_upper_case_names_runs() {
    let t = target();
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "name: upper\nplacement:\n  strategy: ROUND_ROBIN\ntasks:\n- type: LOAD_TEST\n  parameters:\n    targets: ['http://{}/']\n    duration: 1s\n    base_rps: 10\n    pattern: CONSTANT\n    model: OPEN\n    arrivals: UNIFORM\n",
            t.addr
        ),
    );
    let out =
        ChildGuard::spawn(&mut mcpt(&["run", "--quiet", plan.path.to_str().unwrap()])).wait(WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(t.stats.view().total, 10);
}
