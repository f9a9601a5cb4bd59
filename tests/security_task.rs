//! `security_test` as a task type (issue 7): run by `mcpt run` (the in-process cluster with
//! one node) and on a cluster of two nodes, each scanning a slice of the endpoints; either way
//! every known flaw of the vulnerable server is in the task's report, and its fixed twin
//! yields none. A bad scan type or fail_on is a 422 that names its field.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{Cluster, post};
use common::vulnerable::{Flavor, KNOWN_FLAWS, VulnServer, endpoints};
use common::{ChildGuard, mcpt, schema_errors, temp_file};
use mcp_testing::task::security::{Finding, ScanReport};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// A plan with one quick `security_test` of every endpoint of `server`.
fn plan(server: &VulnServer) -> Value {
    let endpoints: Vec<Value> = endpoints()
        .iter()
        .map(|e| {
            let params: Vec<Value> = e
                .params
                .iter()
                .map(|p| json!({"name": p.name, "value": p.value}))
                .collect();
            json!({"path": e.path, "method": e.method, "params": params})
        })
        .collect();
    json!({
        "name": "scan",
        "tasks": [{
            "name": "scan",
            "type": "security_test",
            "parameters": {
                "target": server.url().as_str(),
                "endpoints": endpoints,
                "depth": "quick",
                "rate_limit_rps": 50,
                "timeout": "5s"
            }
        }]
    })
}

fn security_of(report: &Value) -> ScanReport {
    assert_eq!(report["tasks"][0]["type"], "security_test", "{report}");
    serde_json::from_value(report["tasks"][0]["security"].clone())
        .unwrap_or_else(|e| panic!("no security report ({e}): {report}"))
}

/// Every quick-scan flaw of the vulnerable server is reported, and nothing else.
fn assert_exactly_the_known_flaws(scan: &ScanReport) {
    for flaw in KNOWN_FLAWS.iter().filter(|f| !f.deep_only) {
        assert!(
            scan.findings.iter().any(|f| flaw.matches(f)),
            "not found: {flaw:?}\n{}",
            scan.table()
        );
    }
    for f in &scan.findings {
        assert!(
            KNOWN_FLAWS.iter().any(|k| k.matches(f)),
            "unexpected finding: {f:#?}"
        );
    }
    // A site-wide finding (a missing header) is reported once, however many slices saw it.
    let keys: BTreeSet<_> = scan.findings.iter().map(Finding::key).collect();
    assert_eq!(keys.len(), scan.findings.len(), "{}", scan.table());
    assert!(
        scan.findings
            .windows(2)
            .all(|w| w[0].severity >= w[1].severity),
        "not most severe first:\n{}",
        scan.table()
    );
    assert_eq!(scan.requests_refused, 0, "{:?}", scan.notes);
    assert_eq!(scan.request_errors, 0, "{:?}", scan.notes);
    assert!(scan.nodes_lost.is_empty(), "{:?}", scan.nodes_lost);
}

fn show(what: &str, scan: &ScanReport) {
    println!(
        "{what}: {} findings, {} requests, {:.1} s, nodes {:?}\n{}",
        scan.findings.len(),
        scan.requests_sent,
        scan.duration_s,
        scan.nodes
            .iter()
            .map(|n| (&n.node_id, n.endpoints.len(), n.requests_sent, n.findings))
            .collect::<Vec<_>>(),
        scan.table()
    );
}

#[test]
fn mcpt_run_scans_the_vulnerable_server_and_reports_every_known_flaw() {
    let server = VulnServer::start(Flavor::Vulnerable);
    let plan = temp_file("plan.json", &plan(&server).to_string());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let output = ChildGuard::spawn(&mut mcpt(&[
        "run",
        plan.path.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]))
    .wait(WAIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Its findings include high and critical ones: the default `fail_on: high` fails it.
    assert_eq!(
        output.status.code(),
        Some(3),
        "exit {:?}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("(security_test)"), "{stdout}");
    assert!(stdout.contains("fail_on: high"), "{stdout}");
    assert!(stdout.contains("sql_injection"), "{stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let problems = schema_errors("schemas/report.schema.json", &report);
    assert!(
        problems.is_empty(),
        "report breaks its schema: {problems:#?}"
    );
    let task = &report["tasks"][0];
    assert_eq!(task["achieved_rps"], 0.0, "{task}");
    assert_eq!(task["total_requests"], 0, "{task}");
    let scan = security_of(&report);
    show("standalone", &scan);
    assert_exactly_the_known_flaws(&scan);
    // One node, `local`, scanned everything.
    assert_eq!(scan.nodes.len(), 1, "{:?}", scan.nodes);
    assert_eq!(scan.nodes[0].endpoints.len(), endpoints().len());
    assert_eq!(scan.nodes[0].requests_sent, scan.requests_sent);
}

#[test]
fn two_nodes_each_scan_a_slice_and_the_report_merges_them() {
    let vulnerable = VulnServer::start(Flavor::Vulnerable);
    let fixed = VulnServer::start(Flavor::Fixed);
    let c = Cluster::start(2);

    let id = c.submit(&plan(&vulnerable));
    let view = c.wait_done(&id, WAIT);
    assert_eq!(view["state"], "completed", "{view}");
    let report = c.report(&id);
    let problems = schema_errors("schemas/report.schema.json", &report);
    assert!(
        problems.is_empty(),
        "report breaks its schema: {problems:#?}"
    );
    let scan = security_of(&report);
    show("two nodes", &scan);
    assert_exactly_the_known_flaws(&scan);
    // Both nodes scanned a slice: the endpoints dealt between them, each once.
    assert_eq!(scan.nodes.len(), 2, "{:?}", scan.nodes);
    let mut dealt: Vec<String> = Vec::new();
    for n in &scan.nodes {
        assert!(!n.lost, "{n:?}");
        assert!(n.requests_sent > 0 && !n.endpoints.is_empty(), "{n:?}");
        dealt.extend(n.endpoints.iter().cloned());
    }
    assert_eq!(dealt.len(), endpoints().len(), "{dealt:?}");
    let site_wide: Vec<_> = scan
        .findings
        .iter()
        .filter(|f| f.scan_type == mcp_testing::task::security::ScanType::Headers)
        .map(|f| (f.parameter.clone(), f.title.clone()))
        .collect();
    let once: BTreeSet<_> = site_wide.iter().collect();
    assert_eq!(once.len(), site_wide.len(), "{}", scan.table());
    let nodes: BTreeSet<&str> = scan.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(nodes, BTreeSet::from(["node-0", "node-1"]));
    assert_eq!(
        scan.requests_sent,
        scan.nodes.iter().map(|n| n.requests_sent).sum::<u64>()
    );
    // The task's per-node figures show what each node sent.
    let per_node: Vec<u64> = report["tasks"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["sent"].as_u64().unwrap())
        .collect();
    assert!(
        per_node.len() == 2 && per_node.iter().all(|&s| s > 0),
        "{per_node:?}"
    );

    // The fixed twin, on the same cluster: nothing found.
    let id = c.submit(&plan(&fixed));
    let view = c.wait_done(&id, WAIT);
    assert_eq!(view["state"], "completed", "{view}");
    let scan = security_of(&c.report(&id));
    show("two nodes, fixed twin", &scan);
    assert!(scan.findings.is_empty(), "{}", scan.table());
    assert!(scan.requests_sent > 0);
    assert_eq!(scan.nodes.iter().filter(|n| n.requests_sent > 0).count(), 2);

    // A bad scan type is refused before anything is sent, naming its field.
    let mut bad = plan(&vulnerable);
    bad["tasks"][0]["parameters"]["scan_types"] = json!(["xss_typo"]);
    let (status, body) = post(&c.orchestrator.url("/api/executions"), &bad, None);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("tasks[0].parameters.scan_types[0]"),
        "{body}"
    );
    // So is a bad fail_on.
    let mut bad = plan(&vulnerable);
    bad["tasks"][0]["parameters"]["fail_on"] = json!("severe");
    let (status, body) = post(&c.orchestrator.url("/api/executions"), &bad, None);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "tasks[0].parameters.fail_on", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown severity \"severe\""),
        "{body}"
    );
}

#[test]
fn a_lost_node_leaves_its_slice_unscanned_and_the_execution_still_ends() {
    let server = VulnServer::start(Flavor::Vulnerable);
    let mut c = Cluster::start(2);
    // Slow enough (about 12 s a slice) for the node to be lost mid-scan.
    let mut body = plan(&server);
    body["tasks"][0]["parameters"]["rate_limit_rps"] = json!(2);
    let id = c.submit(&body);
    // Killed once its scan runs (the node's own status lists it).
    let scanning = common::wait_until(Duration::from_secs(20), || {
        let (_, status) = common::cluster::get(&c.nodes[1].url("/load/status"));
        status["tasks"]
            .as_object()
            .is_some_and(|t| t.values().any(|t| t["state"] == "running"))
    });
    assert!(scanning, "{}", c.execution(&id));
    c.nodes[1].kill();
    let view = c.wait_done(&id, WAIT);
    assert_eq!(view["state"], "completed_degraded", "{view}");
    let scan = security_of(&c.report(&id));
    show("node-1 lost", &scan);
    assert_eq!(scan.nodes_lost, ["node-1"]);
    let lost = scan.nodes.iter().find(|n| n.node_id == "node-1").unwrap();
    assert!(lost.lost && !lost.endpoints.is_empty(), "{lost:?}");
    let kept = scan.nodes.iter().find(|n| n.node_id == "node-0").unwrap();
    assert!(!kept.lost && kept.requests_sent > 0, "{kept:?}");
    // What node-0 scanned is reported.
    assert!(
        scan.findings
            .iter()
            .all(|f| kept.endpoints.contains(&f.endpoint))
    );
}
