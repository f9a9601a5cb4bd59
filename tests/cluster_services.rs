//! The cluster services through a real orchestrator and real nodes: executions reserving
//! from the resource pool, workloads placed by a strategy and run in each execution mode, and
//! the adaptive strategy moving work away from a node whose record is worse.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse};
use common::cluster::{Cluster, get, load_body, post};
use common::{TestServer, target, wait_until};
use serde_json::{Value, json};

fn plan(c: &Cluster, id: &str) -> Value {
    get(&c.orchestrator.url(&format!("/api/plans/{id}"))).1
}

fn wait_plan_done(c: &Cluster, id: &str) -> Value {
    let mut last = Value::Null;
    let done = wait_until(Duration::from_secs(60), || {
        last = plan(c, id);
        last["state"] != "running"
    });
    assert!(done, "plan {id} did not end: {last}");
    last
}

fn scenario(id: &str, target: SocketAddr, rps: u32, seconds: u32) -> Value {
    json!({
        "scenario_id": id,
        "name": id,
        "description": "a load test scenario",
        "test_type": "load_test",
        "parameters": {
            "targets": [{"url": format!("http://{target}/")}],
            "duration": format!("{seconds}s"),
            "base_rps": rps,
            "pattern": "constant",
        },
        "required_capabilities": ["http_load"],
        "estimated_duration": seconds,
        "resource_requirements": {"cpu": 0.5},
    })
}

#[test]
fn two_executions_share_the_pool_without_oversubscription() {
    let mut c = Cluster::empty();
    let url = c.orchestrator.url("");
    // One node offering 100 connections: two executions of 80 users cannot run together.
    c.add_node_with(
        "node-0",
        &url,
        &[("MCP_LOAD_GENERATION_MAX_CONCURRENT_REQUESTS", "100")],
    );
    c.wait_connected(1);
    let t = target();
    let body = load_body(t.addr, 50, 3, json!({"concurrent_users": 80}));
    let a = c.submit(&body);
    let b = c.submit(&body);
    let mut b_waited = false;
    let mut most = 0.0f64;
    let finished = wait_until(Duration::from_secs(40), || {
        let pool = get(&c.orchestrator.url("/api/resources")).1;
        let conn = &pool["aggregate_utilization"]["connections"];
        let (allocated, total) = (
            conn["allocated"].as_f64().unwrap_or(0.0),
            conn["total"].as_f64().unwrap_or(0.0),
        );
        assert!(
            allocated <= total + 1e-9,
            "the pool is oversubscribed: {pool}"
        );
        most = most.max(allocated);
        let vb = c.execution(&b);
        if vb["state"] == "pending" && c.execution(&a)["state"] == "running" {
            assert!(
                vb["waiting_for"]
                    .as_str()
                    .is_some_and(|w| w.contains("resources")),
                "{vb}"
            );
            b_waited = true;
        }
        vb["finished_at_ms"].is_u64()
    });
    assert!(finished, "{}", c.execution(&b));
    let (va, vb) = (c.wait_done(&a, Duration::from_secs(5)), c.execution(&b));
    assert_eq!(va["state"], "completed", "{va}");
    assert_eq!(vb["state"], "completed", "{vb}");
    assert!(b_waited, "the second execution never waited for the first");
    assert!(
        vb["started_at_ms"].as_u64() >= va["finished_at_ms"].as_u64(),
        "the second started before the first gave its connections back: {va} {vb}"
    );
    assert_eq!(most, 80.0, "one execution's 80 connections at a time");
    let pool = get(&c.orchestrator.url("/api/resources")).1;
    assert_eq!(
        pool["aggregate_utilization"]["connections"]["allocated"], 0.0,
        "everything given back: {pool}"
    );
}

#[test]
fn workloads_run_in_every_mode_on_the_nodes_placed() {
    let c = Cluster::start(2);
    let t = target();
    let url = c.orchestrator.url("/api/workloads");

    // Parallel, round robin: four scenarios, two per node, each run only where placed.
    let scenarios: Vec<Value> = (0..4)
        .map(|i| scenario(&format!("s{i}"), t.addr, 20, 2))
        .collect();
    let (status, p) = post(
        &url,
        &json!({"workload_id": "par", "name": "parallel", "scenarios": scenarios,
                "strategy": "round_robin", "execution_mode": "parallel"}),
        None,
    );
    assert_eq!(status, 201, "{p}");
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for a in p["assignments"].as_array().unwrap() {
        *per_node
            .entry(a["node_id"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{p}"
    );
    let done = wait_plan_done(&c, p["plan_id"].as_str().unwrap());
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["progress_percent"], 100.0, "{done}");
    for a in done["assignments"].as_array().unwrap() {
        let report = c.report(a["execution_id"].as_str().unwrap());
        let nodes: Vec<&str> = report["tasks"][0]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node_id"].as_str().unwrap())
            .collect();
        assert_eq!(nodes, [a["node_id"].as_str().unwrap()], "{report}");
        assert_eq!(report["summary"]["total_requests"], 40, "{report}");
    }

    // Coordinated: both start at one instant.
    let (status, p) = post(
        &url,
        &json!({"workload_id": "co", "scenarios": [scenario("a", t.addr, 10, 1), scenario("b", t.addr, 10, 1)],
                "strategy": "least_loaded", "execution_mode": "coordinated"}),
        None,
    );
    assert_eq!(status, 201, "{p}");
    let done = wait_plan_done(&c, p["plan_id"].as_str().unwrap());
    assert_eq!(done["state"], "completed", "{done}");
    let starts: Vec<u64> = done["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            c.execution(a["execution_id"].as_str().unwrap())["started_at_ms"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        starts[0], starts[1],
        "coordinated executions start together"
    );

    // Sequential: the second starts after the first has ended.
    let (status, p) = post(
        &url,
        &json!({"workload_id": "seq", "scenarios": [scenario("first", t.addr, 10, 1), scenario("second", t.addr, 10, 1)],
                "execution_mode": "sequential"}),
        None,
    );
    assert_eq!(status, 201, "{p}");
    let done = wait_plan_done(&c, p["plan_id"].as_str().unwrap());
    assert_eq!(done["state"], "completed", "{done}");
    let views: Vec<Value> = done["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| c.execution(a["execution_id"].as_str().unwrap()))
        .collect();
    assert!(
        views[1]["started_at_ms"].as_u64() >= views[0]["finished_at_ms"].as_u64(),
        "{views:?}"
    );

    // A scenario no node can take is refused, whole, with the reason; nothing runs.
    let mut greedy = scenario("greedy", t.addr, 10, 1);
    greedy["required_capabilities"] = json!(["gpu_inference"]);
    let (status, body) = post(
        &url,
        &json!({"scenarios": [scenario("fine", t.addr, 10, 1), greedy]}),
        None,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["unplaced"][0]["scenario_id"], "greedy", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("gpu_inference"),
        "{body}"
    );

    // A scenario whose parameters do not validate is named by its path.
    let mut bad = scenario("bad", t.addr, 10, 1);
    bad["parameters"]["base_rps"] = json!(-5);
    let (status, body) = post(&url, &json!({"scenarios": [bad]}), None);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "scenarios[0].parameters.base_rps", "{body}");
}

/// A target that answers node `slow_node`'s requests `delay` late (it tells nodes apart by the
/// `x-mcpt-node` header every request carries), everyone else's at once.
fn slow_for(slow_node: &'static str, delay: Duration) -> TestServer {
    TestServer::start(move |req: HttpRequest| async move {
        let node = req
            .headers()
            .get("x-mcpt-node")
            .and_then(|v| v.to_str().ok());
        if node == Some(slow_node) {
            tokio::time::sleep(delay).await;
        }
        HttpResponse::Ok().body("ok")
    })
}

#[test]
fn adaptive_moves_work_away_from_a_slow_node() {
    let c = Cluster::start(2);
    let slow = slow_for("node-1", Duration::from_millis(500));
    // An execution over both nodes gives each a record: node-1's requests take 500 ms.
    let id = c.submit(&load_body(
        slow.addr,
        40,
        3,
        json!({"concurrent_users": 50}),
    ));
    let view = c.wait_done(&id, Duration::from_secs(30));
    assert_eq!(view["state"], "completed", "{view}");

    // No resource requirements: only the strategy's preference decides.
    let scenarios: Vec<Value> = (0..10)
        .map(|i| {
            let mut s = scenario(&format!("s{i}"), slow.addr, 10, 1);
            s["resource_requirements"] = json!({});
            s
        })
        .collect();
    let count = |strategy: &str| {
        let (status, p) = post(
            &c.orchestrator.url("/api/workloads"),
            &json!({"scenarios": scenarios, "strategy": strategy, "dry_run": true}),
            None,
        );
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["state"], "planned", "{p}");
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        for a in p["assignments"].as_array().unwrap() {
            *n.entry(a["node_id"].as_str().unwrap().into()).or_default() += 1;
        }
        (
            n.get("node-0").copied().unwrap_or(0),
            n.get("node-1").copied().unwrap_or(0),
        )
    };
    let (fast, slow_n) = count("adaptive");
    println!("adaptive: node-0 (fast) {fast}, node-1 (slow) {slow_n}");
    assert!(
        fast > slow_n,
        "adaptive gave the slow node as much: {fast} vs {slow_n}"
    );
    assert_eq!(fast + slow_n, 10);
    // The same nodes under least_loaded, which ignores records: an even split.
    assert_eq!(count("least_loaded"), (5, 5));
    drop(slow);
}

#[test]
fn a_failing_custom_check_raises_an_alert_and_recovery_clears_it() {
    let failing = Arc::new(AtomicBool::new(false));
    let app = common::switchable_target(failing.clone());
    let config = common::temp_file(
        "node.yaml",
        &format!(
            "health_monitoring:\n  check_interval: 0.2\n  alert_threshold: 3\n  checks:\n    - {{name: app, type: http, url: \"http://{}/health\", timeout: 1}}\n",
            app.addr
        ),
    );
    let mut c = Cluster::empty();
    c.add_configured_node("node-1", &config.path, &[]);
    c.wait_connected(1);

    let node_health = || get(&c.orchestrator.url("/api/nodes/node-1/health")).1;
    let app_check = |h: &Value| {
        h["report"]["checks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "app").cloned())
            .unwrap_or(Value::Null)
    };
    let ok = wait_until(Duration::from_secs(20), || {
        app_check(&node_health())["status"] == "healthy"
    });
    assert!(ok, "the check never passed: {}", node_health());
    let alerts = |active: bool| {
        get(&c.orchestrator.url(&format!("/api/alerts?active={active}"))).1["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["name"] == "app")
            .collect::<Vec<Value>>()
    };
    assert!(alerts(true).is_empty(), "no alert while it passes");

    failing.store(true, Ordering::SeqCst);
    let raised = wait_until(Duration::from_secs(20), || !alerts(true).is_empty());
    assert!(raised, "no alert: {}", node_health());
    let alert = alerts(true).remove(0);
    assert_eq!(alert["node_id"], "node-1", "{alert}");
    assert!(alert["consecutive_failures"].as_u64() >= Some(3), "{alert}");
    assert!(alert["cleared_at_ms"].is_null(), "{alert}");
    // The cluster view shows it too.
    let health = get(&c.orchestrator.url("/api/health")).1;
    let n1 = health["cluster"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "node-1")
        .cloned()
        .unwrap();
    assert!(n1["active_alerts"].as_u64() >= Some(1), "{health}");
    assert!(
        n1["score"].as_f64() < Some(100.0),
        "a failing check lowers the score: {health}"
    );

    failing.store(false, Ordering::SeqCst);
    let cleared = wait_until(Duration::from_secs(20), || alerts(true).is_empty());
    assert!(cleared, "the alert stayed: {:?}", alerts(false));
    let history = alerts(false);
    assert!(
        history
            .iter()
            .any(|a| a["alert_id"] == alert["alert_id"] && a["cleared_at_ms"].is_u64()),
        "the cleared alert is kept in the history: {history:?}"
    );
}

/// A workload refused because its nodes are critical says which node is left out and which
/// check fails there, as the node's health monitor reported it.
#[test]
fn a_refused_workload_names_the_critical_node_and_its_failing_check() {
    let mut c = Cluster::empty();
    let url = c.orchestrator.url("");
    // Memory at or past 0% is critical on any machine.
    c.add_node_with(
        "node-sick",
        &url,
        &[
            ("MCP_NODE_CAPABILITIES", "http_load,gpu"),
            ("MCP_HEALTH_MONITORING_CHECK_INTERVAL", "0.2"),
            ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_MEMORY_WARNING", "0"),
            (
                "MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_MEMORY_CRITICAL",
                "0",
            ),
        ],
    );
    c.wait_connected(1);
    let t = target();
    let workloads = c.orchestrator.url("/api/workloads");
    let refusal = |scenario: Value| {
        let body = json!({"workload_id": "w", "scenarios": [scenario], "dry_run": true});
        let mut last = Value::Null;
        // Until the node's first report it counts as healthy and the dry run places.
        let refused = wait_until(Duration::from_secs(20), || {
            let (status, v) = post(&workloads, &body, None);
            last = v;
            status == 409
        });
        assert!(refused, "never refused: {last}");
        assert_eq!(last["error"], "unplaced", "{last}");
        let reason = last["unplaced"][0]["reason"].as_str().unwrap().to_string();
        assert!(
            last["message"].as_str().unwrap().contains(&reason),
            "{last}"
        );
        reason
    };
    let check = "critical (memory: memory use ";
    let threshold = "% is at or past the critical threshold 0%)";

    let reason = refusal(scenario("s", t.addr, 5, 1));
    let rest = reason
        .strip_prefix(&format!("no healthy node: node-sick is {check}"))
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(rest.ends_with(threshold), "{reason}");

    // A healthy node without the capability: the reason names the critical node that has it.
    c.add_node("node-ok");
    c.wait_connected(2);
    let mut gpu = scenario("g", t.addr, 5, 1);
    gpu["required_capabilities"] = json!(["gpu"]);
    let reason = refusal(gpu);
    let rest = reason
        .strip_prefix(&format!(
            r#"capability "gpu" on no healthy node: node-sick has it but is {check}"#
        ))
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(rest.ends_with(threshold), "{reason}");

    // A node that went away, until it is forgotten: unreachable.
    c.nodes[1].kill();
    assert!(wait_until(Duration::from_secs(20), || {
        c.node_view("node-ok")["state"] != "connected"
    }));
    let reason = refusal(scenario("s", t.addr, 5, 1));
    let rest = reason
        .strip_prefix(&format!(
            "no healthy node: node-ok is unreachable, node-sick is {check}"
        ))
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(rest.ends_with(threshold), "{reason}");
}
