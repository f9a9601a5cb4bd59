//! Nothing lost, nothing misreported: real processes (an orchestrator, nodes, `mcpt run`, an
//! `mcpt target`), faults made for real (SIGSTOP, kill -9, a partition by the fault proxy, a
//! cancel while a node is cut off), and the report held against what the target counted, node
//! by node (the target tells the nodes apart by the `x-mcpt-node` header).

mod common;

use std::time::Duration;

use common::cluster::{Cluster, Server, get, load_body};
use common::proxy::FaultProxy;
use common::{mcpt, target};
use mcp_testing::cli::TargetGuard;
use serde_json::{Value, json};

fn wait_state(c: &Cluster, node: &str, state: &str) {
    let ok = common::wait_until(Duration::from_secs(20), || {
        c.node_view(node)["state"] == state
    });
    assert!(ok, "{node} never {state}: {}", c.node_view(node));
}

/// Each node's completed requests in the report equal what the target got from it.
fn report_matches_target(report: &Value, t: &TargetGuard) -> bool {
    let received = t.stats.view();
    report["tasks"][0]["nodes"].as_array().is_some_and(|nodes| {
        nodes.iter().all(|n| {
            let id = n["node_id"].as_str().unwrap_or_default();
            n["completed"].as_u64() == Some(received.nodes.get(id).copied().unwrap_or(0))
        })
    })
}

/// The report once a lost node's late windows are in (they may come after the end, and
/// amend it), or the last one seen.
fn settled_report(c: &Cluster, id: &str, t: &TargetGuard) -> Value {
    let mut report = Value::Null;
    common::wait_until(Duration::from_secs(30), || {
        report = c.report(id);
        report_matches_target(&report, t)
    });
    report
}

/// The report against the target, node by node: completed and sent equal what the target
/// received from each node, and `not_sent` is exactly what it never received.
fn assert_exact(report: &Value, t: &TargetGuard, case: &str) {
    let received = t.stats.view();
    let s = &report["summary"];
    let planned = s["planned_requests"].as_u64().unwrap();
    eprintln!(
        "{case}: planned {planned}; target received {} {:?}; report completed {}, sent {}, \
         not_sent {}; nodes {}",
        received.total,
        received.nodes,
        s["total_requests"],
        s["sent_requests"],
        s["not_sent"],
        report["tasks"][0]["nodes"]
    );
    for n in report["tasks"][0]["nodes"].as_array().unwrap() {
        let node = n["node_id"].as_str().unwrap();
        let got = received.nodes.get(node).copied().unwrap_or(0);
        assert_eq!(n["completed"].as_u64(), Some(got), "{case}: {n}");
        assert_eq!(n["sent"].as_u64(), Some(got), "{case}: {n}");
    }
    assert_eq!(s["total_requests"].as_u64(), Some(received.total), "{case}");
    assert_eq!(s["sent_requests"].as_u64(), Some(received.total), "{case}");
    assert_eq!(
        s["not_sent"].as_u64(),
        Some(planned - received.total),
        "{case}: not_sent is what the target never received"
    );
}

fn lost(report: &Value, node: &str) -> Value {
    report["tasks"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == node)
        .cloned()
        .unwrap_or_default()
}

/// Issue 13 item 5: a node frozen (SIGSTOP) past the death timeout is fenced, its share goes
/// to the others, and once thawed its windows of the old epoch (the requests it really sent
/// before the fence, and those that were in flight) are stored once and counted: the report
/// equals the target, node by node.
#[test]
fn a_frozen_nodes_windows_count_once() {
    let t = target();
    let c = Cluster::start(3);
    let id = c.submit(&load_body(t.addr, 300, 12, json!({})));
    c.wait_for_second(&id, 4.0);
    c.nodes[1].signal("STOP");
    wait_state(&c, "node-1", "failed");
    common::hold(Duration::from_millis(1000));
    c.nodes[1].signal("CONT");
    let view = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed_degraded", "{view}");
    wait_state(&c, "node-1", "connected");
    let report = settled_report(&c, &id, &t);
    assert_exact(&report, &t, "SIGSTOP");
    let n1 = lost(&report, "node-1");
    assert_eq!(n1["lost"], true, "{n1}");
    assert!(c.node_view("node-1")["epoch"].as_u64().unwrap() >= 1);
}

/// Issue 13 item 5: an 8 s partition of one node's link: fenced, re-split, and after the
/// partition heals its old-epoch windows come in and count once.
#[test]
fn a_partitioned_nodes_windows_count_once() {
    let t = target();
    let mut c = Cluster::start(2);
    let proxy = FaultProxy::start(c.orchestrator.addr);
    c.add_node_via("node-p", &format!("http://{}", proxy.addr));
    c.wait_connected(3);
    let id = c.submit(&load_body(t.addr, 300, 14, json!({})));
    c.wait_for_second(&id, 3.0);
    proxy.partition();
    common::hold(Duration::from_secs(8));
    proxy.heal();
    let view = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed_degraded", "{view}");
    let report = settled_report(&c, &id, &t);
    assert_exact(&report, &t, "8 s partition");
    assert_eq!(lost(&report, "node-p")["lost"], true);
    assert!(
        t.stats.view().nodes["node-p"] > 0,
        "the partitioned node sent before the partition"
    );
}

/// Issue 13 item 5: cancelled while a node is cut off. The cut-off node is marked lost (the
/// end does not wait for it for ever), and when it comes back, what it sent counts.
#[test]
fn a_cancel_during_a_partition_counts_the_cut_off_node() {
    let t = target();
    let mut c = Cluster::start(1);
    let proxy = FaultProxy::start(c.orchestrator.addr);
    c.add_node_via("node-p", &format!("http://{}", proxy.addr));
    c.wait_connected(2);
    let id = c.submit(&load_body(t.addr, 200, 30, json!({})));
    c.wait_for_second(&id, 3.0);
    proxy.partition();
    common::hold(Duration::from_millis(300));
    let url = c.orchestrator.url(&format!("/api/executions/{id}"));
    let (status, body) = common::cluster::delete(&url, None);
    assert_eq!(status, 200, "{body}");
    let view = c.wait_done(&id, Duration::from_secs(30));
    assert_eq!(view["state"], "cancelled", "{view}");
    // Still cut off: the report says the node was lost.
    let report = c.report(&id);
    let cut = lost(&report, "node-p");
    assert_eq!(cut["lost"], true, "{cut}");
    assert!(cut["in_flight"].is_u64(), "{cut}");
    // What it sent after its last delivered window is still on the node.
    let before_heal = t.stats.view().nodes["node-p"];
    assert!(cut["completed"].as_u64().unwrap() < before_heal, "{cut}");
    proxy.heal();
    let report = settled_report(&c, &id, &t);
    assert_exact(&report, &t, "cancel during a partition");
    assert_eq!(c.execution(&id)["state"], "cancelled");
}

/// Issue 13 item 5: with `on_node_failure: fail`, a node killed mid-run fails the execution,
/// and the survivors' last windows (their last partial second) are kept: each survivor's
/// completed equals what the target got from it. The lost node's requests in flight are
/// reported.
#[test]
fn a_failing_execution_keeps_the_survivors_last_second() {
    let t = target();
    let mut c = Cluster::start(3);
    let id = c.submit(&load_body(
        t.addr,
        300,
        12,
        json!({"on_node_failure": "fail"}),
    ));
    c.wait_for_second(&id, 4.5);
    c.nodes[1].kill();
    let view = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "failed", "{view}");
    let report = c.report(&id);
    let received = t.stats.view();
    eprintln!(
        "fail policy: target {:?}; report nodes {}",
        received.nodes, report["tasks"][0]["nodes"]
    );
    for node in ["node-0", "node-2"] {
        let n = lost(&report, node);
        assert_eq!(
            n["completed"].as_u64(),
            received.nodes.get(node).copied(),
            "{n}"
        );
        assert_eq!(n["sent"].as_u64(), received.nodes.get(node).copied(), "{n}");
        assert!(n.get("in_flight").is_none(), "{n}");
    }
    let problems = common::schema_errors("schemas/report.schema.json", &report);
    assert!(problems.is_empty(), "{problems:#?}");
    let killed = lost(&report, "node-1");
    assert_eq!(killed["lost"], true, "{killed}");
    let in_flight = killed["in_flight"]
        .as_u64()
        .expect("in_flight of a lost node");
    assert_eq!(
        in_flight,
        killed["sent"].as_u64().unwrap() - killed["completed"].as_u64().unwrap(),
        "{killed}"
    );
}

/// Issue 13 item 9: a 2 s link drop, shorter than the death timeout: the node pauses (its
/// lease lapsed), resumes its session, and the run did not send everything it planned, so it
/// ends `completed_degraded` with a reason that says so, never `completed`.
#[test]
fn a_link_drop_that_left_requests_unsent_is_degraded() {
    let t = target();
    let long_death = [("MCP_COMM_DEATH_TIMEOUT", "6s")];
    let mut c = Cluster::start_with(0, &long_death);
    let proxy = FaultProxy::start(c.orchestrator.addr);
    c.add_node_with("node-p", &format!("http://{}", proxy.addr), &long_death);
    c.wait_connected(1);
    let id = c.submit(&load_body(t.addr, 200, 8, json!({})));
    c.wait_for_second(&id, 2.0);
    proxy.partition();
    common::hold(Duration::from_secs(2));
    proxy.heal();
    let view = c.wait_done(&id, Duration::from_secs(60));
    let report = c.report(&id);
    let not_sent = report["summary"]["not_sent"].as_u64().unwrap();
    eprintln!(
        "2 s link drop: state {}, reason {}, not_sent {not_sent}, target {}",
        view["state"],
        view["reason"],
        t.stats.view().total
    );
    assert!(not_sent > 0, "{report}");
    assert_eq!(view["state"], "completed_degraded", "{view}");
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "{not_sent} of 1600 planned requests were not sent"
        )),
        "{view}"
    );
    // Not fenced: the session resumed.
    assert_eq!(c.node_view("node-p")["epoch"].as_u64(), Some(0));
    assert_exact(&report, &t, "2 s link drop");
}

/// Issue 13 item 6: 3000 rps with `concurrent_users: 2` against `/delay?ms=20` for 2 s, with
/// `mcpt run` and an `mcpt target`: arrivals that never got a slot before the run's end are
/// not sent (not "sent and timed out"); the report's `sent_requests` is exactly the target's
/// count (requests in flight at the end finish in the drain), and `not_sent` the rest.
#[test]
fn arrivals_without_a_slot_are_not_sent() {
    let mut target_cmd = mcpt(&["target", "--port", "0", "--workers", "1"]);
    let target = Server::spawn("target", &mut target_cmd);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    let out = dir.path().join("report.json");
    std::fs::write(
        &plan,
        format!(
            "name: slots\ntasks:\n  - type: load_test\n    parameters:\n      targets:\n        \
             - url: \"{}\"\n      base_rps: 3000\n      pattern: constant\n      duration: 2s\n      \
             concurrent_users: 2\n",
            target.url("/delay?ms=20")
        ),
    )
    .unwrap();
    let run = common::ChildGuard::spawn(&mut mcpt(&[
        "run",
        plan.to_str().unwrap(),
        "--quiet",
        "--output",
        out.to_str().unwrap(),
    ]))
    .wait(Duration::from_secs(60));
    assert!(run.status.success(), "{run:?}");
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let (_, stats) = get(&target.url("/stats"));
    let received = stats["total"].as_u64().unwrap();
    let s = &report["summary"];
    eprintln!(
        "3000 rps, 2 users, 20 ms: target received {received}; report sent {}, completed {}, \
         not_sent {}, timeouts {}",
        s["sent_requests"], s["total_requests"], s["not_sent"], s["errors"]["timeout"]
    );
    assert_eq!(s["planned_requests"].as_u64(), Some(6000));
    assert_eq!(s["sent_requests"].as_u64(), Some(received));
    assert_eq!(s["total_requests"].as_u64(), Some(received));
    assert_eq!(s["not_sent"].as_u64(), Some(6000 - received));
    assert_eq!(s["errors"]["timeout"].as_u64(), Some(0), "{s}");
}
