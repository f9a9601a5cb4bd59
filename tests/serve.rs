//! The serving commands on their own: `mcpt up` (orchestrator and a local node in one
//! process) and the README lines that try it, a node's own REST API, and the refusal to
//! listen beyond loopback without a cluster secret or an API token.

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

/// Runs a command that should refuse to start; one that serves instead is killed (and the
/// test fails) rather than waited for.
fn refused(cmd: &mut std::process::Command) -> std::process::Output {
    common::ChildGuard::spawn(cmd).wait(Duration::from_secs(30))
}

/// The message every refusal to listen beyond loopback without a token gives: it names the
/// key, the variable and the flag that set one.
fn assert_says_how_to_set_a_token(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for hint in [
        "without an API token",
        "api.token",
        "MCP_API_TOKEN",
        "--set api.token=",
    ] {
        assert!(stderr.contains(hint), "{hint:?} missing from: {stderr}");
    }
}

/// Issue 13, item 2: with a cluster secret but no API token, `mcpt orchestrator` and `mcpt up`
/// on 0.0.0.0 used to start and take executions from anyone, and `mcpt node` on 0.0.0.0
/// opened `/load/start` to anyone. Each now refuses to start (exit 2).
#[test]
fn processes_beyond_loopback_refuse_to_start_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for serve in ["orchestrator", "up"] {
        let mut cmd = mcpt(&[
            serve,
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            data,
        ]);
        cmd.env("MCP_CLUSTER_SECRET", "s3cret");
        assert_says_how_to_set_a_token(&refused(&mut cmd));
    }
    let orchestrator = format!("http://127.0.0.1:{}", common::closed_port());
    for secret in [None, Some("s3cret")] {
        let mut cmd = mcpt(&[
            "node",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--orchestrator",
            &orchestrator,
        ]);
        if let Some(s) = secret {
            cmd.env("MCP_CLUSTER_SECRET", s);
        }
        assert_says_how_to_set_a_token(&refused(&mut cmd));
    }
    assert!(
        !std::path::Path::new(data).join("mcpt.db").exists(),
        "nothing started"
    );
}

/// With a token, the same processes start beyond loopback; reads stay open, changes need it.
#[test]
fn processes_beyond_loopback_start_with_a_token() {
    let t = target();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let orch = Server::spawn(
        "orchestrator",
        mcpt(&[
            "orchestrator",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env("MCP_CLUSTER_SECRET", "s3cret")
        .env("MCP_API_TOKEN", "t0ken")
        .env("MCP_DISCOVERY_MULTICAST_ENABLED", "false")
        .env("MCPT_LOG", "warn"),
    );
    // Reached over loopback: it listens on every address.
    let api = format!("http://127.0.0.1:{}", orch.addr.port());
    assert_eq!(get(&format!("{api}/api/health")).0, 200);
    assert_eq!(get(&format!("{api}/api/executions")).0, 200);
    let plan = load_body(t.addr, 10, 1, json!({}));
    let (status, body) = post(&format!("{api}/api/executions"), &plan, None);
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    let (status, body) = post(&format!("{api}/api/executions"), &plan, Some("t0ken"));
    assert_eq!(status, 201, "{body}");

    let node = Server::spawn(
        "node",
        mcpt(&[
            "node",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--orchestrator",
            &api,
        ])
        .env("MCP_CLUSTER_SECRET", "s3cret")
        .env("MCP_API_TOKEN", "t0ken")
        .env("MCP_DISCOVERY_MULTICAST_ENABLED", "false")
        .env("MCPT_LOG", "warn"),
    );
    let node_api = format!("http://127.0.0.1:{}", node.addr.port());
    assert_eq!(get(&format!("{node_api}/health")).0, 200);
    let task = json!({"type": "load_test", "parameters": {
        "targets": [{"url": format!("http://{}/", t.addr)}], "duration": "1s", "base_rps": 1}});
    let (status, body) = post(&format!("{node_api}/load/start"), &task, None);
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
}

/// The `mcpt up` lines of the README (issue 13, item 11: its `curl -d @plan.json` answered
/// 415), run as written: inside a network namespace of their own, so its fixed ports
/// (8080, 8089) are free, from a folder holding the repository's `config/`.
#[test]
fn the_readme_mcpt_up_lines_run_as_written() {
    let readme = std::fs::read_to_string(common::repo_path("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(|b| b.lines().map(str::trim).collect::<Vec<_>>())
        .find(|lines| {
            lines
                .first()
                .is_some_and(|l| l.starts_with("mcpt target &"))
        })
        .expect("the README's `mcpt up` block");
    let mut net = common::netns::Netns::new(113);
    let ns = net.host(1);
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(common::repo_path("config"), dir.path().join("config")).unwrap();
    let bin = common::mcpt_path();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let sh = |line: &str| {
        let mut c = net.command(&ns, "sh");
        c.arg("-c")
            .arg(line)
            .current_dir(dir.path())
            .env("PATH", &path);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MCP_")) {
            c.env_remove(k);
        }
        c
    };
    let mut running = Vec::new();
    let mut answers = Vec::new();
    for line in &block {
        // Drop the comment (` # ...`); keep the command exactly.
        let command = line.split("  #").next().unwrap().trim();
        if command.is_empty() {
            continue;
        }
        if let Some(background) = command.strip_suffix('&') {
            let mut cmd = sh(&format!("exec {}", background.trim()));
            cmd.env("MCPT_LOG", "warn");
            running.push(Server::spawn(background.trim(), &mut cmd));
        } else {
            let out = sh(command).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "{command}: {text} {out:?}");
            let answer: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {text}"));
            answers.push((command.to_string(), answer));
        }
    }
    let ids: Vec<String> = answers
        .iter()
        .filter(|(c, _)| c.contains("-XPOST"))
        .map(|(c, a)| match a["execution_id"].as_str() {
            Some(id) => id.to_string(),
            None => panic!("{c} answered {a}"),
        })
        .collect();
    assert_eq!(ids.len(), 2, "{answers:?}");
    let listed = &answers.last().unwrap().1["executions"];
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // Both run to the end, and the target got what the reports count.
    let curl = |path: &str| -> serde_json::Value {
        let out = sh(&format!("curl -s localhost:8080{path}"))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let mut total = 0;
    for id in &ids {
        let mut view = json!(null);
        assert!(
            wait_until(Duration::from_secs(60), || {
                view = curl(&format!("/api/executions/{id}"));
                view["finished_at_ms"].is_u64()
            }),
            "{view}"
        );
        assert_eq!(view["state"], "completed", "{view}");
        total += curl(&format!("/api/executions/{id}/report"))["summary"]["total_requests"]
            .as_u64()
            .unwrap();
    }
    let out = sh("curl -s localhost:8089/stats").output().unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["total"].as_u64(), Some(total), "{stats}");
}
