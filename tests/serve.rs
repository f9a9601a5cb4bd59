//! The serving commands on their own: `mcpt up` (orchestrator and a local node in one
//! process), a node's own REST API, and the refusal to expose an orchestrator without a
//! cluster secret.

mod common;

use std::time::Duration;

use common::cluster::{Server, get, load_body, post};
use common::{mcpt, target, wait_until};
use serde_json::json;

#[test]
fn up_runs_an_execution_with_no_setup() {
    let t = target();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let up = Server::spawn(
        "up",
        mcpt(&["up", "--port", "0", "--data-dir", data.to_str().unwrap()])
            .env("MCPT_LOG", "info,actix_server=warn"),
    );
    let (status, body) = post(
        &up.url("/api/executions"),
        &load_body(t.addr, 50, 2, json!({})),
        None,
    );
    assert_eq!(status, 201, "{body}");
    let id = body["execution_id"].as_str().unwrap().to_string();
    let mut view = json!(null);
    assert!(
        wait_until(Duration::from_secs(20), || {
            view = get(&up.url(&format!("/api/executions/{id}"))).1;
            view["state"] == "completed"
        }),
        "{view}"
    );
    assert_eq!(t.stats.view().total, 100);
    let (status, health) = get(&up.url("/api/health"));
    assert_eq!(status, 200);
    assert_eq!(health["nodes"]["connected"], 1, "{health}");
    assert!(
        data.join("mcpt.db").exists(),
        "the store lives in the data folder"
    );
}

#[test]
fn an_orchestrator_without_a_secret_stays_on_loopback() {
    let out = mcpt(&["orchestrator", "--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cluster secret"), "{stderr}");
}

#[test]
fn a_node_serves_its_own_api() {
    let t = target();
    // A node with an orchestrator that is not there: its own API still works.
    let node = Server::spawn(
        "node",
        mcpt(&[
            "node",
            "--orchestrator",
            &format!("http://127.0.0.1:{}", common::closed_port()),
            "--port",
            "0",
            "--id",
            "solo",
        ])
        .env("MCPT_LOG", "warn")
        .env("MCP_API_TOKEN", "node-token"),
    );
    let (status, health) = get(&node.url("/health"));
    assert_eq!(
        (status, &health["node_id"]),
        (200, &json!("solo")),
        "{health}"
    );
    assert_eq!(health["joined"], false);
    let task = json!({"type": "load_test", "parameters": {
        "targets": [{"url": format!("http://{}/", t.addr)}], "duration": "10s", "base_rps": 20}});
    let (status, body) = post(&node.url("/load/start"), &task, None);
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    let (status, body) = post(&node.url("/load/start"), &task, Some("node-token"));
    assert_eq!(status, 201, "{body}");
    let task_id = body["task_id"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(5), || t.stats.view().total >= 20));
    let (status, m) = get(&node.url(&format!("/load/metrics/{task_id}")));
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["task"]["state"], "running", "{m}");
    let (status, s) = get(&node.url("/load/status"));
    assert_eq!(status, 200);
    assert!(s["tasks"].get(&task_id).is_some(), "{s}");
    let (status, _) = post(
        &node.url(&format!("/load/stop/{task_id}")),
        &json!({}),
        Some("node-token"),
    );
    assert_eq!(status, 200);
    let stopped_at = t.stats.view().total;
    common::hold(Duration::from_millis(1500));
    let after = t.stats.view().total;
    assert!(after <= stopped_at + 1, "{stopped_at} then {after}");
    let (status, e) = post(&node.url("/load/stop/nope"), &json!({}), Some("node-token"));
    assert_eq!((status, &e["error"]), (404, &json!("not_found")), "{e}");
    let (status, e) = post(
        &node.url("/load/start"),
        &json!({"type": "load_test", "parameters": {"targets": [{"url": "http://10.9.9.9/"}], "duration": "1s", "base_rps": 1}}),
        Some("node-token"),
    );
    assert_eq!(status, 422, "{e}");
}

/// Finished executions beyond the newest 64 leave the orchestrator's memory but not the API:
/// they are read back from the store.
#[test]
fn old_executions_are_served_from_the_store() {
    let t = target();
    let c = common::cluster::Cluster::start(0);
    let mut ids = Vec::new();
    for _ in 0..70 {
        // No node: each stays pending until cancelled.
        let id = c.submit(&load_body(t.addr, 10, 1, json!({})));
        let url = c.orchestrator.url(&format!("/api/executions/{id}"));
        let (status, _) = common::cluster::delete(&url, None);
        assert_eq!(status, 200);
        ids.push(id);
    }
    let (status, list) = get(&c.orchestrator.url("/api/executions"));
    assert_eq!(status, 200);
    assert_eq!(list["executions"].as_array().unwrap().len(), 70, "{list}");
    let oldest = c.execution(&ids[0]);
    let newest = c.execution(&ids[69]);
    assert_eq!(
        (&oldest["state"], &newest["state"]),
        (&json!("cancelled"), &json!("cancelled"))
    );
    assert!(
        oldest.get("tasks").is_none(),
        "the oldest is read from the store: {oldest}"
    );
    assert!(
        newest.get("tasks").is_some(),
        "the newest is still in memory: {newest}"
    );
    assert_eq!(t.stats.view().total, 0);
}
