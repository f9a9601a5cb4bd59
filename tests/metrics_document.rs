//! `GET /api/metrics`, the spec's metrics document, on a live cluster: it validates against
//! `schemas/metrics.schema.json` while a run goes on and after, and its figures agree with the
//! report and with `/metrics`.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, get, load_body};
use common::{target, wait_until};
use serde_json::{Value, json};

fn document(c: &Cluster) -> Value {
    let (status, doc) = get(&c.orchestrator.url("/api/metrics"));
    assert_eq!(status, 200, "{doc}");
    let problems = common::schema_errors("schemas/metrics.schema.json", &doc);
    assert!(problems.is_empty(), "{problems:?}\n{doc:#}");
    doc
}

/// A sample's value on the orchestrator's `/metrics`.
fn scraped(c: &Cluster, name: &str) -> f64 {
    scraped_from(&c.orchestrator.url("/metrics"), name)
}

fn scraped_from(url: &str, name: &str) -> f64 {
    let text = ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not on /metrics:\n{text}"))
}

#[test]
fn the_metrics_document_follows_a_live_run_and_agrees_with_the_report() {
    let t = target();
    let c = Cluster::start(2);
    let id = c.submit(&load_body(t.addr, 50, 3, json!({})));
    c.wait_for_second(&id, 1.5);

    let live = document(&c);
    assert_eq!(live["orchestrator"]["active_executions"], 1, "{live:#}");
    assert_eq!(live["orchestrator"]["total_nodes"], 2);
    // Its first merged second counts.
    assert!(wait_until(Duration::from_secs(20), || {
        document(&c)["load_generation"]["total_requests"]
            .as_u64()
            .is_some_and(|n| n > 0)
    }));
    let health = &live["node_health"];
    let counted: u64 = ["healthy_nodes", "warning_nodes", "failed_nodes"]
        .iter()
        .map(|k| health[k].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2, "{health}");

    let view = c.wait_done(&id, Duration::from_secs(30));
    let report = c.report(&id);
    let mut last = Value::Null;
    // The health samples of both nodes (each sends one on joining).
    assert!(wait_until(Duration::from_secs(20), || {
        last = document(&c);
        last["resource_utilization"]["nodes_sampled"] == 2
    }));
    let doc = last;
    let load = &doc["load_generation"];
    assert_eq!(
        load["total_requests"], report["summary"]["total_requests"],
        "{doc:#}"
    );
    assert_eq!(load["requests_per_second"], 0.0, "nothing runs now");
    let rate = load["error_rate"].as_f64().unwrap();
    assert!((rate - report["summary"]["error_rate"].as_f64().unwrap()).abs() < 1e-9);
    let mean = load["average_response_time"].as_f64().unwrap();
    let report_mean = report["summary"]["latency_ms"]["mean"].as_f64().unwrap();
    assert!(
        (mean - report_mean).abs() <= 0.01 * report_mean + 0.001,
        "{mean} vs {report_mean}"
    );
    let o = &doc["orchestrator"];
    assert_eq!(o["active_executions"], 0);
    assert_eq!(o["tasks_completed"], 1);
    assert_eq!(o["tasks_failed"], 0);
    let ran = (view["finished_at_ms"].as_u64().unwrap() - view["started_at_ms"].as_u64().unwrap())
        as f64
        / 1e3;
    assert!((o["average_execution_time"].as_f64().unwrap() - ran).abs() < 1e-9);
    assert_eq!(
        o["average_execution_time"].as_f64().unwrap(),
        scraped(&c, "mcp_orchestrator_average_execution_time_seconds")
    );
    let nodes = &doc["node_health"];
    for (key, series) in [
        ("healthy_nodes", "mcp_orchestrator_healthy_nodes"),
        ("warning_nodes", "mcp_orchestrator_warning_nodes"),
        ("failed_nodes", "mcp_orchestrator_failed_nodes"),
    ] {
        assert_eq!(nodes[key].as_f64().unwrap(), scraped(&c, series), "{key}");
    }
    assert_eq!(
        o["tasks_completed"].as_f64().unwrap(),
        scraped(&c, "mcp_orchestrator_tasks_completed")
    );
    assert_eq!(
        o["total_nodes"].as_f64().unwrap(),
        scraped(&c, "mcp_orchestrator_total_nodes")
    );
    let r = &doc["resource_utilization"];
    assert!(r["memory_usage"].as_f64().unwrap() > 0.0, "{r}");
    // Each node serves its disk and network use beside its CPU and memory.
    for node in &c.nodes {
        let url = node.url("/metrics");
        let disk = scraped_from(
            &url,
            &format!("mcp_node_disk_usage{{node_id=\"{}\"}}", node.name),
        );
        assert!((0.0..=100.0).contains(&disk), "{disk}");
        scraped_from(
            &url,
            &format!(
                "mcp_node_network_receive_bytes_per_second{{node_id=\"{}\"}}",
                node.name
            ),
        );
    }
}
