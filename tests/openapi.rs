//! The OpenAPI documents (`/api/openapi.json`, a node's `/openapi.json`) against live
//! processes: every answer of a real cluster conforms to them, and schemathesis, fuzzing a
//! real orchestrator and node by their contract (examples, coverage, fuzzing with negative
//! data, stateful sequences), finds no server error and no answer off the document.
//!
//! schemathesis is installed by `.ci/run` into `target/schemathesis-venv` (or named by
//! `SCHEMATHESIS`); without it the test fails, it is never skipped. Every load it can start
//! goes to loopback: the default allowlist refuses any other target (422), and the
//! documents' examples send 10 requests to a closed loopback port.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::{Cluster, Server, get, load_body, post};
use common::wait_until;
use serde_json::{Value, json};

const TOKEN: &str = "openapi-test-token";

/// Bounds for whatever the fuzzer manages to start.
const ENV: &[(&str, &str)] = &[
    ("MCP_API_TOKEN", TOKEN),
    ("MCP_LOAD_GENERATION_DEFAULT_TIMEOUT", "2"),
];

/// An orchestrator and one node, both with the token and the bounds.
fn cluster() -> Cluster {
    let mut c = Cluster::start_with(0, ENV);
    let url = c.orchestrator.url("");
    c.add_node_with("node-0", &url, ENV);
    c.wait_connected(1);
    c
}

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_path("target/schemathesis-venv/bin/schemathesis"));
    let runs = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "schemathesis is missing at {}: `.ci/run` installs it (python3 -m venv \
         target/schemathesis-venv && target/schemathesis-venv/bin/pip install schemathesis), \
         or set SCHEMATHESIS",
        path.display()
    );
    path
}

/// A child process killed (by its own pid) and reaped when dropped, even on a panic.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// schemathesis's configuration. `DELETE /api/executions/{id}` cancels: the execution stays
/// readable (SPEC, DESIGN §7), which the use_after_free check would take for a read after a
/// delete; it stays on for every other operation (a released allocation must answer 404).
const CONFIG: &str = r#"
[[operations]]
include-path-regex = "^/api/executions/\\{"
checks.use_after_free.enabled = false
"#;

/// Runs schemathesis against the document at `server`'s `doc` path for at most `seconds`;
/// its exit status and everything it printed.
fn fuzz(server: &Server, doc: &str, seconds: u32) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.txt");
    let out = std::fs::File::create(&out_path).unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut cmd = Command::new(schemathesis());
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url(doc))
        .args(["--url", &server.url("")])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        // Every check but positive_data_acceptance: a plan the document allows is not always
        // one the validator accepts (its targets must be allowed, its options consistent).
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--mode", "all"])
        .args(["--max-examples", "25", "--max-time", &seconds.to_string()])
        .args(["--seed", "13", "--request-timeout", "10"])
        .args(["--generation-database", "none", "--no-color"])
        .arg("--report-dir")
        .arg(dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let mut child = Kill(cmd.spawn().expect("schemathesis starts"));
    // The run stops itself at --max-time; the guard is for a hung one.
    let limit = Duration::from_secs(u64::from(seconds) + 90);
    let mut status = None;
    wait_until(limit, || {
        status = child.0.try_wait().ok().flatten();
        status.is_some()
    });
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("schemathesis did not finish:\n{text}"));
    (status.success(), text)
}

/// The closing summary of a schemathesis run (for the failure message and the log).
fn summary(text: &str) -> &str {
    text.rfind("SUMMARY").map_or(text, |i| &text[i..])
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let c = cluster();
    let node = &c.nodes[0];

    let (ok, text) = fuzz(&c.orchestrator, "/api/openapi.json", 60);
    eprintln!("orchestrator:\n{}", summary(&text));
    assert!(ok, "schemathesis failed against the orchestrator:\n{text}");
    assert!(text.contains("Stateful"), "the stateful phase ran:\n{text}");
    assert!(!text.contains("Server error"), "{text}");

    let (ok, text) = fuzz(node, "/openapi.json", 25);
    eprintln!("node:\n{}", summary(&text));
    assert!(ok, "schemathesis failed against the node:\n{text}");

    // Still serving afterwards.
    assert_eq!(get(&c.orchestrator.url("/api/health")).0, 200);
}

/// The response schema a document gives `method path` for `status`, as a validator whose
/// `$ref`s resolve in the document.
fn answer_schema(doc: &Value, path: &str, method: &str, status: u16) -> jsonschema::Validator {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is in the document");
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents a JSON {status}"
    );
    let mut root = doc.clone();
    root["allOf"] = json!([schema]);
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn conforms(doc: &Value, path: &str, method: &str, url: &str, status: u16, body: &Value) {
    let v = answer_schema(doc, path, method, status);
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {url} ({status}) is off the document: {errors:#?}\n{body:#}"
    );
}

fn get_conforms(doc: &Value, base: &Server, path: &str, url: &str, status: u16) -> Value {
    let (got, body) = get(&base.url(url));
    assert_eq!(got, status, "GET {url}: {body}");
    conforms(doc, path, "get", url, status, &body);
    body
}

#[test]
fn every_answer_of_a_live_cluster_conforms_to_the_documents() {
    let target = common::target();
    let c = cluster();
    let (status, doc) = get(&c.orchestrator.url("/api/openapi.json"));
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let o = &c.orchestrator;
    // The check is not vacuous: an answer off the document fails it.
    let nodes = answer_schema(&doc, "/api/nodes", "get", 200);
    assert!(nodes.is_valid(&json!({"nodes": []})));
    assert!(!nodes.is_valid(&json!({"nodes": [{"node_id": 5}]})));
    assert!(!nodes.is_valid(&json!({})));

    // A plan off the document's form, then a run of real load.
    let plan = load_body(target.addr, 20, 2, json!({}));
    let (status, body) = post(&o.url("/api/executions/preview"), &plan, None);
    assert_eq!(status, 200, "{body}");
    conforms(
        &doc,
        "/api/executions/preview",
        "post",
        "preview",
        200,
        &body,
    );
    let (status, body) = post(&o.url("/api/executions"), &plan, None);
    assert_eq!(status, 401, "{body}");
    conforms(&doc, "/api/executions", "post", "submit", 401, &body);
    let (status, body) = post(&o.url("/api/executions"), &json!({"tasks": 5}), Some(TOKEN));
    assert_eq!(status, 422, "{body}");
    conforms(&doc, "/api/executions", "post", "submit", 422, &body);
    let (status, body) = post(&o.url("/api/executions"), &plan, Some(TOKEN));
    assert_eq!(status, 201, "{body}");
    conforms(&doc, "/api/executions", "post", "submit", 201, &body);
    let id = body["execution_id"].as_str().unwrap().to_string();

    // While it runs, and once it is done.
    get_conforms(
        &doc,
        o,
        "/api/executions/{id}",
        &format!("/api/executions/{id}"),
        200,
    );
    c.wait_done(&id, Duration::from_secs(30));
    let (status, body) = post(&o.url("/api/executions"), &plan, Some(TOKEN));
    assert_eq!(status, 201, "{body}");
    let other = body["execution_id"].as_str().unwrap().to_string();
    c.wait_done(&other, Duration::from_secs(30));
    assert!(target.stats.view().total > 0);

    get_conforms(&doc, o, "/api/executions", "/api/executions", 200);
    get_conforms(
        &doc,
        o,
        "/api/executions/{id}",
        &format!("/api/executions/{id}"),
        200,
    );
    let report = get_conforms(
        &doc,
        o,
        "/api/executions/{id}/report",
        &format!("/api/executions/{id}/report"),
        200,
    );
    assert!(report["summary"]["total_requests"].as_u64().unwrap() > 0);
    get_conforms(
        &doc,
        o,
        "/api/executions/{a}/compare/{b}",
        &format!("/api/executions/{id}/compare/{other}"),
        200,
    );
    get_conforms(&doc, o, "/api/executions/{id}", "/api/executions/nope", 404);
    let timeline = get_conforms(
        &doc,
        o,
        "/api/executions/{id}/timeline",
        &format!("/api/executions/{id}/timeline"),
        200,
    );
    assert!(
        !timeline["seconds"].as_array().unwrap().is_empty(),
        "{timeline}"
    );
    get_conforms(
        &doc,
        o,
        "/api/executions/{id}/timeline",
        "/api/executions/nope/timeline",
        404,
    );
    get_conforms(&doc, o, "/api/nodes", "/api/nodes", 200);
    get_conforms(&doc, o, "/api/health", "/api/health", 200);
    get_conforms(&doc, o, "/api/resources", "/api/resources", 200);
    get_conforms(&doc, o, "/api/plans", "/api/plans", 200);
    get_conforms(&doc, o, "/api/services", "/api/services", 200);
    get_conforms(&doc, o, "/api/services", "/api/services?healthy=maybe", 422);
    get_conforms(&doc, o, "/api/alerts", "/api/alerts", 200);
    // The node's health once the monitor has its first report.
    assert!(wait_until(Duration::from_secs(20), || {
        get(&o.url("/api/nodes/node-0/health")).0 == 200
    }));
    get_conforms(
        &doc,
        o,
        "/api/nodes/{id}/health",
        "/api/nodes/node-0/health",
        200,
    );

    // Resources and a workload (a dry run places it, starts nothing).
    let alloc = json!({"requester_id": "t", "resources": [{"resource": "cpu", "amount": 1}]});
    let (status, body) = post(&o.url("/api/allocations"), &alloc, Some(TOKEN));
    assert_eq!(status, 201, "{body}");
    conforms(&doc, "/api/allocations", "post", "allocate", 201, &body);
    let aid = body["allocation_id"].as_str().unwrap().to_string();
    get_conforms(
        &doc,
        o,
        "/api/allocations/{id}",
        &format!("/api/allocations/{aid}"),
        200,
    );
    get_conforms(&doc, o, "/api/resources", "/api/resources", 200);
    let huge = json!({"requester_id": "t", "resources": [{"resource": "cpu", "amount": 1e9}]});
    let (status, body) = post(&o.url("/api/allocations"), &huge, Some(TOKEN));
    assert_eq!(status, 409, "{body}");
    conforms(&doc, "/api/allocations", "post", "allocate", 409, &body);
    let workload = json!({"dry_run": true, "scenarios": [{"scenario_id": "s1",
        "test_type": "load_test", "parameters": plan["tasks"][0]["parameters"].clone()}]});
    // Placed (200), or refused as unplaced (409) when the node's health is not `healthy` on
    // a busy machine: either answer is checked against the document.
    let (status, body) = post(&o.url("/api/workloads"), &workload, Some(TOKEN));
    assert!(status == 200 || status == 409, "{status} {body}");
    conforms(&doc, "/api/workloads", "post", "workload", status, &body);

    // The node's own document and answers.
    let n = &c.nodes[0];
    let (status, ndoc) = get(&n.url("/openapi.json"));
    assert_eq!(status, 200);
    assert_eq!(ndoc["openapi"], "3.1.0");
    get_conforms(&ndoc, n, "/load/status", "/load/status", 200);
    get_conforms(&ndoc, n, "/health", "/health", 200);
    let task = &plan["tasks"][0];
    let (status, body) = post(&n.url("/load/start"), task, None);
    assert_eq!(status, 401, "{body}");
    conforms(&ndoc, "/load/start", "post", "start", 401, &body);
    // A bad task is a 422 naming its key from the body's top (it was `""`, with the key
    // only in the message, as `tasks[0].parameters...`).
    let mut bad = task.clone();
    bad["parameters"]["base_rps"] = json!(-1);
    bad["colour"] = json!("red");
    let (status, body) = post(&n.url("/load/start"), &bad, Some(TOKEN));
    assert_eq!(status, 422, "{body}");
    conforms(&ndoc, "/load/start", "post", "start", 422, &body);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["colour", "parameters.base_rps"], "{body}");
    assert_eq!(body["field"], "colour");
    // A custom metric: kept (200), refused without the token (401) or bad (422).
    let metric = json!({"name": "queue_depth", "value": 3, "unit": "jobs", "critical": 10});
    let (status, body) = post(&n.url("/health/metrics"), &metric, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    conforms(&ndoc, "/health/metrics", "post", "metric", 200, &body);
    let (status, body) = post(&n.url("/health/metrics"), &metric, None);
    assert_eq!(status, 401, "{body}");
    conforms(&ndoc, "/health/metrics", "post", "metric", 401, &body);
    let (status, body) = post(&n.url("/health/metrics"), &json!({"name": 1}), Some(TOKEN));
    assert_eq!(status, 422, "{body}");
    conforms(&ndoc, "/health/metrics", "post", "metric", 422, &body);
    let (status, body) = post(&n.url("/load/start"), task, Some(TOKEN));
    assert_eq!(status, 201, "{body}");
    conforms(&ndoc, "/load/start", "post", "start", 201, &body);
    let tid = body["task_id"].as_str().unwrap().to_string();
    get_conforms(
        &ndoc,
        n,
        "/load/metrics/{task_id}",
        &format!("/load/metrics/{tid}"),
        200,
    );
    get_conforms(&ndoc, n, "/load/status", "/load/status", 200);
    let (status, body) = post(
        &n.url(&format!("/load/stop/{tid}")),
        &json!({}),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    conforms(&ndoc, "/load/stop/{task_id}", "post", "stop", 200, &body);
    get_conforms(
        &ndoc,
        n,
        "/load/metrics/{task_id}",
        "/load/metrics/nope",
        404,
    );
}
