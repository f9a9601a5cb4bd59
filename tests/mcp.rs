//! The MCP server, driven by the official Python SDK (`mcp` from PyPI, in the virtual
//! environment `.ci/run` makes at `target/mcp-venv`) over both transports: stdio (`mcpt mcp`,
//! a client of the REST API) and streamable HTTP (`/mcp` on the orchestrator). The client
//! (`tests/mcp/client.py`) initializes, lists the tools, is refused by the guardrails, runs a
//! load test against `mcpt target` and follows it with progress notifications, reads the report
//! as a tool result and as a resource, compares two runs, and times 200 `get_execution` calls.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::ChildGuard;
use common::cluster::{Cluster, post};
use serde_json::{Value, json};

const TOKEN: &str = "mcp-test-token";
const MAX_RPS: u32 = 100;
/// Requests of the three runs the client starts: 50 rps for 7 s, then 20 and 40 rps for 3 s.
const EXPECTED_REQUESTS: u64 = 50 * 7 + 20 * 3 + 40 * 3;

/// The virtual environment's Python, made by `.ci/run`; fails loudly without it.
fn python() -> PathBuf {
    let venv = common::repo_path("target/mcp-venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: .ci/run makes it (python3 -m venv target/mcp-venv && \
         target/mcp-venv/bin/pip install mcp==2.3.0)",
        venv.display()
    );
    venv
}

/// Runs the Python client against `endpoint` and returns what it saw.
fn drive(mode: &str, endpoint: &str, target: &common::TargetGuard) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("client.json");
    let mut cmd = Command::new(python());
    cmd.arg(common::repo_path("tests/mcp/client.py"))
        .args([
            mode,
            endpoint,
            &format!("http://{}/", target.addr),
            // Not on the allowlist (loopback only): refused before anything is sent.
            "http://10.255.255.1/",
            &MAX_RPS.to_string(),
            TOKEN,
        ])
        .env("MCPT", common::mcpt_path())
        .env("MCPT_CLIENT_OUT", &out);
    let output = ChildGuard::spawn(&mut cmd).wait(Duration::from_secs(240));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {mode} client failed ({}):\n{stderr}",
        output.status
    );
    let text = std::fs::read_to_string(&out).expect("the client wrote its figures");
    serde_json::from_str(&text).unwrap()
}

fn check(mode: &str, seen: &Value) {
    assert_eq!(
        seen["missing_tools"],
        json!([]),
        "{mode}: {}",
        seen["tools"]
    );
    // Every tool has an input schema; the run's rate and duration are bounded there.
    let run = &seen["schemas"]["run_load_test"];
    assert_eq!(run["type"], "object", "{run}");
    assert!(
        run.to_string().contains("maximum"),
        "{mode}: run_load_test's schema sets bounds: {run}"
    );

    let refused = &seen["refused"];
    for (limit, needle) in [("allowlist", "allowed_targets"), ("max_rps", "mcp.max_rps")] {
        let r = &refused[limit];
        assert_eq!(r["is_error"], true, "{mode} {limit}: {r}");
        let text = r["text"].as_str().unwrap();
        assert!(text.contains(needle), "{mode} {limit}: {text}");
    }

    let notes = seen["progress"].as_array().unwrap();
    assert!(
        notes.len() >= 5,
        "{mode}: {} progress notifications: {notes:?}",
        notes.len()
    );
    let total = seen["report"]["summary"]["total_requests"].as_u64();
    assert_eq!(total, Some(350), "{mode}: {}", seen["report"]);
    assert!(
        seen["report"]["verdict"].is_string() || seen["report"]["verdict"].is_object(),
        "{mode}: a verdict: {}",
        seen["report"]
    );
    assert_eq!(
        seen["resource_listed"], true,
        "{mode}: {}",
        seen["resources"]
    );
    assert_eq!(seen["resource_mime"], "application/json");
    assert_eq!(
        seen["resource_report"]["summary"]["total_requests"], 350,
        "{mode}"
    );

    let rate = &seen["compare"]["summary"]["achieved_rps"];
    let delta = rate["delta_percent"].as_f64().unwrap();
    assert!(
        (delta - 100.0).abs() <= 1.0,
        "{mode}: 20 → 40 rps compares as {delta:+.2}%: {rate}"
    );
    eprintln!(
        "{mode}: protocol {}, initialize {} ms, {} progress notifications ({:?} … {:?}), \
         report total {}, compare rate {}→{} ({delta:+.2}%), get_execution round trips {}",
        seen["protocol_version"],
        seen["initialize_ms"],
        notes.len(),
        notes.first().map(|n| &n["message"]),
        notes.last().map(|n| &n["message"]),
        total.unwrap(),
        rate["a"],
        rate["b"],
        seen["get_execution_ms"],
    );
}

#[test]
fn an_assistant_runs_watches_and_compares_over_stdio_and_http() {
    let py = python();
    let c = Cluster::start_with(
        1,
        &[
            ("MCP_API_TOKEN", TOKEN),
            ("MCP_MCP_MAX_RPS", &MAX_RPS.to_string()),
        ],
    );
    let target = common::target();
    let base = c.orchestrator.url("");

    // Without the token, /mcp answers 401 and starts nothing.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "no-token", "version": "0"}}});
    let (status, body) = post(&c.orchestrator.url("/mcp"), &init, None);
    assert_eq!(status, 401, "{body}");
    let (status, _) = post(&c.orchestrator.url("/mcp"), &init, Some("wrong"));
    assert_eq!(status, 401);

    eprintln!("python: {}", py.display());
    let stdio = drive("stdio", base.trim_end_matches('/'), &target);
    check("stdio", &stdio);
    let http = drive("http", &c.orchestrator.url("/mcp"), &target);
    check("http", &http);

    // The target saw the six runs and nothing of the refused calls.
    let seen = target.stats.view().total;
    assert_eq!(
        seen,
        2 * EXPECTED_REQUESTS,
        "the target saw only the allowed runs"
    );
}
