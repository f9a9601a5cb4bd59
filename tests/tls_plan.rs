//! A plan's `tls` keys through a real orchestrator and node: an https load task is accepted
//! (by the preview and by a submit), runs, and reports its `tls` part; and the client key it
//! names is read by the orchestrator and carried to the node, yet its PEM text shows in no
//! REST body of the execution (its views, its report, the node's status), only its path.

mod common;

use std::time::Duration;

use common::closed_port;
use common::cluster::{Cluster, get, post};
use serde_json::{Value, json};

const CERT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tls/client-cert.pem"
);
const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tls/client-key.pem"
);

/// A 1 s load task at 2 requests per second to an https URL on a closed loopback port,
/// with a client certificate and key.
fn plan() -> Value {
    json!({"name": "tls-plan", "tasks": [{"type": "load_test", "name": "secure", "parameters": {
        "targets": [{"url": format!("https://127.0.0.1:{}/", closed_port()),
                     "timeout": "2s", "http_version": "1.1"}],
        "tls": {"ca": CERT, "cert": CERT, "key": KEY, "server_name": "localhost"},
        "connections": 2,
        "duration": "1s",
        "base_rps": 2,
    }}]})
}

/// Every line of the key's base64 text, each of which must appear nowhere.
fn key_lines() -> Vec<String> {
    let text = std::fs::read_to_string(KEY).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    assert!(!lines.is_empty());
    lines
}

#[test]
fn an_https_task_runs_and_its_key_shows_in_no_rest_body() {
    let c = Cluster::start(1);
    let (status, preview) = post(
        &c.orchestrator.url("/api/executions/preview"),
        &plan(),
        None,
    );
    assert_eq!(status, 200, "an https load task is accepted: {preview}");
    assert_eq!(
        preview["tasks"][0]["planned_requests"],
        json!(2),
        "{preview}"
    );
    let id = c.submit(&plan());
    c.wait_done(&id, Duration::from_secs(60));
    let report = c.report(&id);
    let task = &report["tasks"][0];
    assert_eq!(task["sent_requests"], json!(2), "{report:#}");
    assert_eq!(task["tls"]["insecure"], json!(false), "{report:#}");
    assert_eq!(
        task["errors"]["total"],
        json!(2),
        "a closed port: {report:#}"
    );
    let o = |p: &str| c.orchestrator.url(p);
    let node = &c.nodes[0];
    let bodies = [
        (o("/api/executions"), get(&o("/api/executions")).1),
        (o(&format!("/api/executions/{id}")), c.execution(&id)),
        (o("/report"), report.clone()),
        (
            o("/report.html"),
            get(&o(&format!("/api/executions/{id}/report.html"))).1,
        ),
        (o("/api/plans"), get(&o("/api/plans")).1),
        (node.url("/load/status"), get(&node.url("/load/status")).1),
    ];
    for (url, body) in &bodies {
        let text = body.to_string();
        assert!(text.len() > 2, "{url} answered nothing");
        assert!(!text.contains("PRIVATE KEY"), "{url}: {text}");
        for line in key_lines() {
            assert!(!text.contains(&line), "{url} shows the key: {text}");
        }
    }
}
