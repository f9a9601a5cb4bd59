//! A real cluster of processes on loopback: an orchestrator, three nodes, a target that tells
//! the nodes apart. Executions over REST; a node killed mid-run; a node frozen past the death
//! timeout; the orchestrator killed and restarted on the same data folder.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, load_body};
use common::target;
use serde_json::json;

/// Acceptance 1: 300 rps for 20 s over three nodes; the target counts exactly the report's
/// total, and each node sent within 5% of a third.
#[test]
fn three_nodes_share_an_execution_exactly() {
    let t = target();
    let c = Cluster::start(3);
    let id = c.submit(&load_body(t.addr, 300, 20, json!({})));
    let view = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed", "{view}");
    let report = c.report(&id);
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    let received = t.stats.view();
    eprintln!(
        "planned 6000, report total {total}, target {}, per node {:?}",
        received.total, received.nodes
    );
    assert_eq!(
        total, received.total,
        "the target's count equals the report's total"
    );
    assert_eq!(total, 6000);
    for (node, n) in &received.nodes {
        let share = *n as f64 / received.total as f64;
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.05 / 3.0,
            "{node} sent {n} ({share:.3})"
        );
    }
    let nodes = report["tasks"][0]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        let id = n["node_id"].as_str().unwrap();
        assert_eq!(n["sent"].as_u64(), received.nodes.get(id).copied(), "{n}");
    }
}

/// Acceptance 2: `kill -9` a node at t = 8 s. It is marked failed (how soon is measured by
/// `benches/failover.sh`, not asserted: a busy machine delays it), its share moves to the others, the execution ends `completed_degraded`, the target gets nearly all
/// of the plan, and the report's planned-minus-sent matches what the target missed.
#[test]
fn a_killed_node_is_replaced_by_the_others() {
    let t = target();
    let mut c = Cluster::start(3);
    let id = c.submit(&load_body(t.addr, 300, 20, json!({})));
    c.wait_for_second(&id, 8.0);
    c.nodes[1].kill();
    let killed = std::time::Instant::now();
    assert!(common::wait_until(Duration::from_secs(10), || {
        c.node_view("node-1")["state"] == "failed"
    }));
    let detected = killed.elapsed();
    let view = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed_degraded", "{view}");
    let report = c.report(&id);
    let s = &report["summary"];
    let planned = s["planned_requests"].as_u64().unwrap();
    let sent = s["sent_requests"].as_u64().unwrap();
    let not_sent = s["not_sent"].as_u64().unwrap();
    let received = t.stats.view();
    let missed = planned - received.total;
    eprintln!(
        "failure detected after {detected:?} (D 1.2 s + H 0.2 s); planned {planned}, target \
         received {} ({:.1}%), report sent {sent}, not sent {not_sent} vs target missed \
         {missed}; per node {:?}",
        received.total,
        received.total as f64 * 100.0 / planned as f64,
        received.nodes
    );
    assert!(
        received.total as f64 >= 0.95 * planned as f64,
        "{}",
        received.total
    );
    assert!(
        (not_sent as f64 - missed as f64).abs() <= 0.01 * planned as f64,
        "not sent {not_sent} vs missed {missed}"
    );
    // Survivors: every window stored exactly once, so the report's per-node figures are
    // exactly what the target saw from them.
    for n in report["tasks"][0]["nodes"].as_array().unwrap() {
        let node = n["node_id"].as_str().unwrap();
        if node == "node-1" {
            assert_eq!(n["lost"], true);
            continue;
        }
        assert_eq!(
            n["completed"].as_u64(),
            received.nodes.get(node).copied(),
            "{n}"
        );
        assert_eq!(n["sent"].as_u64(), received.nodes.get(node).copied(), "{n}");
        let v = c.node_view(node);
        assert_eq!(v["windows_duplicate"].as_u64(), Some(0), "{v}");
    }
    // Survivors took over: each sent more than its third.
    for node in ["node-0", "node-2"] {
        assert!(
            received.nodes[node] > 2000 + 300,
            "{node}: {}",
            received.nodes[node]
        );
    }
}

/// Acceptance 3: a node frozen (SIGSTOP) past the death timeout is fenced: once thawed it
/// sends no more requests for the execution, and its old-epoch frames are rejected and
/// counted.
#[test]
fn a_frozen_node_is_fenced() {
    let t = target();
    let c = Cluster::start(3);
    let id = c.submit(&load_body(t.addr, 300, 16, json!({})));
    c.wait_for_second(&id, 6.0);
    c.nodes[1].signal("STOP");
    assert!(common::wait_until(Duration::from_secs(10), || {
        c.node_view("node-1")["state"] == "failed"
    }));
    // Frozen a while longer than the death timeout.
    common::hold(Duration::from_millis(1000));
    let before = t.stats.view().nodes.get("node-1").copied().unwrap_or(0);
    c.nodes[1].signal("CONT");
    let view = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed_degraded", "{view}");
    let after = t.stats.view().nodes.get("node-1").copied().unwrap_or(0);
    assert!(common::wait_until(Duration::from_secs(10), || {
        c.node_view("node-1")["state"] == "connected"
    }));
    let v = c.node_view("node-1");
    eprintln!(
        "node-1 sent {before} before SIGCONT and {after} in all; rejected {} old-epoch frames; epoch now {}",
        v["fenced_frames_rejected"], v["epoch"]
    );
    // An arrival whose lease check passed just before the freeze is written just after it: at
    // most one per load worker of the node (one per core, 2 here). A node that ignored its
    // fence would send the hundreds it missed while frozen.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    assert!(
        after <= before + workers,
        "a fenced node sent requests after SIGCONT: {before} before, {after} after"
    );
    assert!(v["epoch"].as_u64().unwrap() >= 1, "{v}");
    let report = c.report(&id);
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    let survivors: u64 = ["node-0", "node-2"]
        .iter()
        .map(|n| t.stats.view().nodes[*n])
        .sum();
    // The report counts the survivors exactly, and node-1's windows (old epoch included: the
    // requests it sent before the fence), never more than the target got.
    assert!(total >= survivors && total <= survivors + after, "{total}");
}

/// Acceptance 4: `kill -9` the orchestrator at t = 8 s, restart it at t = 9 s on the same
/// data folder and port. The execution keeps its id and state, the nodes reconnect (how soon
/// is measured by `benches/failover.sh`), no window is lost or doubled, and the execution
/// completes.
#[test]
fn the_orchestrator_restarts_without_losing_anything() {
    let t = target();
    let mut c = Cluster::start(3);
    let id = c.submit(&load_body(t.addr, 300, 20, json!({})));
    c.wait_for_second(&id, 8.0);
    let port = c.orchestrator.addr.port();
    c.orchestrator.kill();
    common::hold(Duration::from_millis(1000));
    c.orchestrator = Cluster::spawn_orchestrator(&c.data, port);
    let restarted = std::time::Instant::now();
    let view = c.execution(&id);
    assert_eq!(view["state"], "running", "{view}");
    c.wait_connected(3);
    let reconnected = restarted.elapsed();
    let view = c.wait_done(&id, Duration::from_secs(60));
    let report = c.report(&id);
    // Paused while the orchestrator was away: whatever was not sent makes it degraded.
    let degraded = report["summary"]["not_sent"].as_u64() > Some(0);
    let expected = if degraded {
        "completed_degraded"
    } else {
        "completed"
    };
    assert_eq!(view["state"], expected, "{view}");
    let received = t.stats.view();
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    eprintln!(
        "nodes reconnected {reconnected:?} after the restart; report total {total}, target {}, \
         not sent {} (paused while the orchestrator was away)",
        received.total, report["summary"]["not_sent"]
    );
    assert_eq!(total, received.total, "a window was lost or doubled");
    for n in report["tasks"][0]["nodes"].as_array().unwrap() {
        let node = n["node_id"].as_str().unwrap();
        assert_eq!(
            n["completed"].as_u64(),
            received.nodes.get(node).copied(),
            "{n}"
        );
    }
}

/// Cancelling over REST stops every node: once the execution has ended (every node has sent
/// its last window, so it has stopped), nothing more reaches the target. The call is
/// idempotent and the report covers what ran. How soon the target goes quiet is measured by
/// `benches/failover.sh`.
#[test]
fn a_cancelled_execution_stops_on_every_node() {
    let t = target();
    let c = Cluster::start(2);
    let id = c.submit(&load_body(t.addr, 200, 30, json!({})));
    c.wait_for_second(&id, 3.0);
    let url = c.orchestrator.url(&format!("/api/executions/{id}"));
    let (status, body) = common::cluster::delete(&url, None);
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    let view = c.wait_done(&id, Duration::from_secs(20));
    assert_eq!(view["state"], "cancelled");
    let at_end = t.stats.view().total;
    common::hold(Duration::from_millis(1500));
    let later = t.stats.view().total;
    eprintln!("cancelled after 3 s: {at_end} requests when it ended, {later} 1.5 s later");
    assert_eq!(
        later, at_end,
        "requests kept coming after the execution ended"
    );
    // Again: the same answer.
    let (status, body) = common::cluster::delete(&url, None);
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    let report = c.report(&id);
    assert_eq!(
        report["summary"]["total_requests"].as_u64(),
        Some(t.stats.view().total),
        "{report}"
    );
}

/// A broken connection (cut by a proxy) is not a lost node: the node reconnects and resumes
/// its session, keeps its epoch, and no window is lost or doubled.
#[test]
fn a_cut_link_resumes_its_session() {
    let t = target();
    let mut c = Cluster::start(1);
    let proxy = common::proxy::FaultProxy::start(c.orchestrator.addr);
    c.add_node_via("node-via-proxy", &format!("http://{}", proxy.addr));
    c.wait_connected(2);
    let id = c.submit(&load_body(t.addr, 200, 8, json!({})));
    c.wait_for_second(&id, 3.0);
    proxy.cut();
    let view = c.wait_done(&id, Duration::from_secs(40));
    assert_eq!(view["state"], "completed", "{view}");
    let v = c.node_view("node-via-proxy");
    let node_log = c.nodes[1].log_text();
    eprintln!(
        "after the cut: {} connections through the proxy, epoch {}, link {}",
        proxy.accepted.load(std::sync::atomic::Ordering::SeqCst),
        v["epoch"],
        v["link"]
    );
    assert!(proxy.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert!(node_log.contains("resumed=true"), "{node_log}");
    assert_eq!(v["epoch"].as_u64(), Some(0), "{v}");
    let report = c.report(&id);
    let received = t.stats.view();
    assert_eq!(
        report["summary"]["total_requests"].as_u64(),
        Some(received.total)
    );
    assert_eq!(v["windows_duplicate"].as_u64(), Some(0), "{v}");
}

/// A node checks every task it is given against its OWN allowlist (the orchestrator's is
/// wider): it refuses the task, the execution fails naming the node and the allowlist, and the
/// target receives nothing. Both kinds of targets: a load test's and a scan's.
#[test]
fn a_node_refuses_a_task_its_own_allowlist_refuses() {
    let t = target();
    let mut c = Cluster::empty();
    let url = c.orchestrator.url("");
    c.add_node_with(
        "narrow",
        &url,
        &[
            ("MCP_LOAD_GENERATION_ALLOWED_TARGETS", "127.0.0.2"),
            ("MCP_NODE_CAPABILITIES", "http_load,security_testing"),
        ],
    );
    c.wait_connected(1);
    let scan = json!({"name": "scan", "tasks": [{"type": "security_test", "parameters": {
        "target": format!("http://{}/", t.addr),
        "endpoints": [{"path": "/search", "params": ["q"]}],
        "timeout": "2s"}}]});
    for body in [load_body(t.addr, 50, 4, json!({})), scan] {
        let id = c.submit(&body);
        let view = c.wait_done(&id, Duration::from_secs(30));
        assert_eq!(view["state"], "failed", "{view}");
        let reason = view["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("node narrow refused task 0")
                && reason.contains(&t.addr.ip().to_string())
                && reason.contains("allowed_targets"),
            "{reason}"
        );
    }
    assert_eq!(t.stats.view().total, 0, "a refused task reached the target");
}

/// A node grows its file-descriptor table for 65,536 descriptors (or its open-file limit) when
/// it starts, before any load: a load worker opening sockets would otherwise grow it at 256,
/// 512, 1,024 ... descriptors, and each growth in a process with several threads blocks the
/// worker for an RCU grace period (the open-model stall in benches/RESULTS.md).
#[test]
fn a_node_sizes_its_descriptor_table_before_any_load() {
    let c = Cluster::start(1);
    let pid = c.nodes[0].pid();
    let field = |file: &str, key: &str| -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        let value = line[key.len()..].split_whitespace().next().unwrap();
        value.parse().unwrap_or(u64::MAX) // "unlimited"
    };
    let table = field("status", "FDSize:");
    let limit = field("limits", "Max open files");
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    eprintln!("node: descriptor table {table}, open-file limit {limit}, open {open}");
    assert!(
        table >= limit.min(65_536),
        "table {table} < min(limit {limit}, 65536)"
    );
    assert!(
        open < 1_000,
        "the reservation left descriptors open: {open}"
    );
}
