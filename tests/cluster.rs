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
    eprintln!("planned 6000, report total {total}, target {}, per node {:?}", received.total, received.nodes);
    assert_eq!(total, received.total, "the target's count equals the report's total");
    assert_eq!(total, 6000);
    for (node, n) in &received.nodes {
        let share = *n as f64 / received.total as f64;
        assert!((share - 1.0 / 3.0).abs() <= 0.05 / 3.0, "{node} sent {n} ({share:.3})");
    }
    let nodes = report["tasks"][0]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        let id = n["node_id"].as_str().unwrap();
        assert_eq!(n["sent"].as_u64(), received.nodes.get(id).copied(), "{n}");
    }
}
