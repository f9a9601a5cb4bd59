//! `GET /metrics` after real runs on a cluster of processes (an orchestrator and two nodes):
//! every endpoint passes `promtool check metrics`, is read back with a Prometheus text parser
//! (prometheus-parse), and its figures agree with the execution reports: the nodes' request
//! and error counters sum to the reports' totals, each node's latency histogram counts what its
//! counter counts, the orchestrator counts the finished tasks and no active execution. The
//! served names are the dashboard's (`tests/deploy/metric_names.rs`).

mod common;
#[path = "deploy/metric_names.rs"]
mod metric_names;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{Cluster, Server, cluster_env, load_body};
use common::{mcpt, target, wait_until};
use metric_names::{METRICS, MetricKind};
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;

/// Served, but on no dashboard panel.
const NOT_ON_THE_DASHBOARD: &[&str] = &[
    "mcp_orchestrator_executions_ended_total",
    // TLS handshakes by kind (full, resumed): no panel yet.
    "mcp_load_generator_tls_handshakes_total",
    // Custom metrics pushed to a node (POST /health/metrics): the operator's own names.
    "mcp_node_custom_metric",
];

/// Counters the spec names without a `_total` suffix (SPEC.md, Monitoring), served as named.
const SPEC_COUNTERS_WITHOUT_TOTAL: &[&str] = &[
    "mcp_orchestrator_tasks_completed",
    "mcp_orchestrator_tasks_failed",
    "mcp_load_generator_total_requests",
];

/// One endpoint's text: checked by promtool, then parsed.
struct Metrics {
    text: String,
    scrape: Scrape,
}

impl Metrics {
    fn of(server: &Server) -> Metrics {
        let mut resp = ureq::get(&server.url("/metrics"))
            .call()
            .unwrap_or_else(|e| panic!("GET /metrics on {}: {e}", server.name));
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{}: content type {content_type:?}",
            server.name
        );
        let text = resp.body_mut().read_to_string().unwrap();
        promtool_check(&server.name, &text);
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        Metrics { text, scrape }
    }

    fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.scrape.samples.iter().filter(move |s| s.metric == name)
    }

    /// The one sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .samples(name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => panic!("{name} is not a single value: {:?}", s.value),
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {name}{labels:?} expected in\n{}",
            self.text
        );
        found[0]
    }

    /// The sum over every label set of `name`.
    fn sum(&self, name: &str) -> f64 {
        self.samples(name)
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// The names served; a histogram under its family name (the parser files its buckets
    /// there, and its `_sum` and `_count` stripped here).
    fn names(&self) -> BTreeSet<String> {
        self.scrape
            .samples
            .iter()
            .map(|s| {
                let n = s.metric.as_str();
                n.strip_suffix("_sum")
                    .or_else(|| n.strip_suffix("_count"))
                    .unwrap_or(n)
                    .to_string()
            })
            .collect()
    }

    /// The cumulative buckets of a histogram, `le` ascending, `+Inf` last.
    fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let s = self
            .samples(name)
            .next()
            .unwrap_or_else(|| panic!("no {name} in\n{}", self.text));
        match &s.value {
            Value::Histogram(b) => {
                let mut b: Vec<(f64, f64)> = b.iter().map(|h| (h.less_than, h.count)).collect();
                b.sort_by(|x, y| x.0.total_cmp(&y.0));
                b
            }
            v => panic!("{name} is not a histogram: {v:?}"),
        }
    }
}

/// `promtool check metrics` (the Prometheus project's own parser and linter) passes the text.
fn promtool_check(what: &str, text: &str) {
    let out = common::promtool_check_metrics(text);
    // Exit 1 is a parse error; 3 is lint problems only. The spec names three counters without
    // the `_total` suffix Prometheus recommends; we keep the spec's names, so that one lint on
    // those three names is the only one allowed.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let only_spec_suffix_lints = out.status.code() == Some(3)
        && stdout.lines().filter(|l| !l.trim().is_empty()).all(|l| {
            SPEC_COUNTERS_WITHOUT_TOTAL
                .iter()
                .any(|name| l == format!("{name} counter metrics should have \"_total\" suffix"))
        });
    assert!(
        out.status.success() || only_spec_suffix_lints,
        "promtool check metrics on {what}: {}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Request and error totals of one or more runs, from their reports.
#[derive(Debug, Clone, Copy)]
struct Totals {
    requests: u64,
    errors: u64,
    status_errors: u64,
}

impl std::ops::Add for Totals {
    type Output = Totals;

    fn add(self, o: Totals) -> Totals {
        Totals {
            requests: self.requests + o.requests,
            errors: self.errors + o.errors,
            status_errors: self.status_errors + o.status_errors,
        }
    }
}

fn report_totals(c: &Cluster, id: &str) -> Totals {
    let r = c.report(id);
    let s = &r["summary"];
    Totals {
        requests: s["total_requests"].as_u64().unwrap(),
        errors: s["errors"]["total"].as_u64().unwrap(),
        status_errors: s["errors"]["status"].as_u64().unwrap(),
    }
}

/// The orchestrator's task counters: (completed, failed or cancelled).
fn tasks(orch: &Metrics) -> (f64, f64) {
    (
        orch.value("mcp_orchestrator_tasks_completed", &[]),
        orch.value("mcp_orchestrator_tasks_failed", &[]),
    )
}

/// Checks every node's endpoint against the reports' totals so far; returns the nodes' sums.
fn check_nodes(c: &Cluster, want: &Totals) -> Vec<Metrics> {
    let nodes: Vec<Metrics> = c.nodes.iter().map(Metrics::of).collect();
    let mut requests = 0.0;
    let mut errors = 0.0;
    let mut status = 0.0;
    for (server, m) in c.nodes.iter().zip(&nodes) {
        let id = [("node_id", server.name.as_str())];
        let n = m.value("mcp_load_generator_total_requests", &id);
        requests += n;
        errors += m.sum("mcp_load_generator_errors_total");
        status += m.value(
            "mcp_load_generator_errors_total",
            &[("node_id", &server.name), ("kind", "status")],
        );
        // The histogram counts each completed request once, in some bucket.
        let count = m.value("mcp_load_generator_request_duration_seconds_count", &id);
        assert_eq!(
            count, n,
            "{}: histogram count against the counter",
            server.name
        );
        // The per-request series split the same requests by name (one name per run here).
        assert_eq!(
            m.sum("mcp_load_generator_requests_by_name_total"),
            n,
            "{}: requests by name against the counter",
            server.name
        );
        assert_eq!(
            m.sum("mcp_load_generator_request_errors_by_name_total"),
            m.sum("mcp_load_generator_errors_total"),
            "{}: errors by name against the errors",
            server.name
        );
        let buckets = m.buckets("mcp_load_generator_request_duration_seconds");
        assert_eq!(buckets.first().map(|b| b.0), Some(0.001), "{}", m.text);
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, n)), "{}", m.text);
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        eprintln!(
            "{}: {n} requests, {} errors, buckets {buckets:?}",
            server.name,
            m.sum("mcp_load_generator_errors_total")
        );
    }
    assert_eq!(requests, want.requests as f64, "requests over the nodes");
    assert_eq!(errors, want.errors as f64, "errors over the nodes");
    assert_eq!(
        status, want.status_errors as f64,
        "status errors over the nodes"
    );
    nodes
}

/// Waits for the orchestrator's gauges (counted every second) to show no active execution.
fn orchestrator_settled(c: &Cluster) -> Metrics {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let m = Metrics::of(&c.orchestrator);
        let idle = m.value("mcp_orchestrator_active_executions", &[]) == 0.0;
        last = Some(m);
        idle
    });
    let m = last.unwrap();
    assert!(ok, "executions still active after the run:\n{}", m.text);
    m
}

#[test]
fn metrics_agree_with_the_reports_on_a_cluster() {
    let t = target();
    let c = Cluster::start(2);

    // 1. A clean run: 200 rps for 3 s over two nodes.
    let ok = c.submit(&load_body(t.addr, 200, 3, json!({})));
    let view = c.wait_done(&ok, Duration::from_secs(60));
    assert_eq!(view["state"], "completed", "{view}");
    let first = report_totals(&c, &ok);
    assert!(first.requests > 0 && first.errors == 0);
    let nodes = check_nodes(&c, &first);
    let orch = orchestrator_settled(&c);
    assert_eq!(tasks(&orch), (1.0, 0.0));
    assert_eq!(orch.value("mcp_orchestrator_total_nodes", &[]), 2.0);
    let ended = "mcp_orchestrator_executions_ended_total";
    assert_eq!(orch.value(ended, &[("state", "completed")]), 1.0);
    // Health gauges for each node, from its monitor's reports (one at start, then each
    // interval).
    for (server, _) in c.nodes.iter().zip(&nodes) {
        let mut m = Metrics::of(server);
        let ok = wait_until(Duration::from_secs(20), || {
            m = Metrics::of(server);
            m.names().contains("mcp_node_health_score")
        });
        assert!(ok, "{}: no health gauges\n{}", server.name, m.text);
        let id = [("node_id", server.name.as_str())];
        let score = m.value("mcp_node_health_score", &id);
        assert!((0.0..=100.0).contains(&score), "score {score}");
        let cpu = m.value("mcp_node_cpu_usage", &id);
        assert!((0.0..=100.0).contains(&cpu), "cpu {cpu}");
        let mem = m.value("mcp_node_memory_usage", &id);
        assert!(mem > 0.0 && mem <= 100.0, "memory {mem}");
    }
    // Every name the dashboard reads is served, by the orchestrator or by every node; and
    // nothing is served that neither the dashboard list nor NOT_ON_THE_DASHBOARD knows.
    let node0 = Metrics::of(&c.nodes[0]);
    let node_names = node0.names();
    for (name, kind) in METRICS {
        let m = if name.starts_with("mcp_orchestrator_") {
            &orch
        } else {
            &node0
        };
        assert!(m.names().contains(*name), "{name} is not served");
        // Typed as the dashboard expects (the parser reads the TYPE lines).
        let typed = m.samples(name).all(|s| {
            matches!(
                (kind, &s.value),
                (MetricKind::Counter, Value::Counter(_))
                    | (MetricKind::Gauge, Value::Gauge(_))
                    | (MetricKind::Histogram, Value::Histogram(_))
            )
        });
        assert!(typed, "{name} is not a {kind:?}:\n{}", m.text);
    }
    for name in orch.names().iter().chain(&node_names) {
        let known =
            METRICS.iter().any(|(m, _)| name == m) || NOT_ON_THE_DASHBOARD.contains(&name.as_str());
        assert!(known, "{name} is served but listed nowhere");
    }
    // The rule of where series live: no load or node series on the orchestrator, no
    // orchestrator series on a node.
    assert!(
        orch.names()
            .iter()
            .all(|n| n.starts_with("mcp_orchestrator_"))
    );
    assert!(
        node_names
            .iter()
            .all(|n| !n.starts_with("mcp_orchestrator_"))
    );

    // 2. A run whose every response is a 500: the errors counters count them by kind.
    let mut body = load_body(t.addr, 100, 2, json!({}));
    body["tasks"][0]["parameters"]["targets"] =
        json!([{"url": format!("http://{}/status?code=500", t.addr)}]);
    let bad = c.submit(&body);
    let view = c.wait_done(&bad, Duration::from_secs(60));
    let second = report_totals(&c, &bad);
    eprintln!(
        "run 1: {} requests, {} errors; run 2 ({}): {} requests, {} errors ({} status)",
        first.requests,
        first.errors,
        view["state"],
        second.requests,
        second.errors,
        second.status_errors
    );
    assert!(second.errors > 0 && second.errors == second.status_errors);
    let both = first + second;
    check_nodes(&c, &both);
    let orch = orchestrator_settled(&c);
    let (completed, failed) = match view["state"].as_str() {
        Some("completed" | "completed_degraded") => (2.0, 0.0),
        _ => (1.0, 1.0),
    };
    assert_eq!(tasks(&orch), (completed, failed));

    // 3. A run cancelled while it runs: its task counts as failed, once (the execution is
    // cancelled at once and ends when its nodes have stopped), and what its nodes did before
    // they stopped is counted like any other run's.
    let long = c.submit(&load_body(t.addr, 100, 30, json!({})));
    // Cancelled once the nodes have counted some of its requests.
    let counted = || -> f64 {
        c.nodes
            .iter()
            .map(|n| Metrics::of(n).sum("mcp_load_generator_total_requests"))
            .sum()
    };
    assert!(wait_until(Duration::from_secs(20), || counted() > both.requests as f64));
    let (status, resp) = common::cluster::delete(
        &c.orchestrator.url(&format!("/api/executions/{long}")),
        None,
    );
    assert_eq!(status, 200, "{resp}");
    let view = c.wait_done(&long, Duration::from_secs(60));
    assert_eq!(view["state"], "cancelled", "{view}");
    let third = report_totals(&c, &long);
    let all = both + third;
    check_nodes(&c, &all);
    let orch = orchestrator_settled(&c);
    assert_eq!(tasks(&orch), (completed, failed + 1.0));
    assert_eq!(orch.value(ended, &[("state", "cancelled")]), 1.0);
    eprintln!(
        "totals matched: {} requests, {} errors over 2 nodes in 3 runs; orchestrator: {completed} tasks completed, {} failed or cancelled",
        all.requests,
        all.errors,
        failed + 1.0
    );
    eprintln!("orchestrator /metrics:\n{}", orch.text);
}

/// `mcpt up` has no node endpoint: its orchestrator serves the in-process node's series too.
#[test]
fn a_standalone_process_serves_its_node_beside_the_orchestrator() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = mcpt(&[
        "up",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let up = Server::spawn("up", cluster_env(&mut cmd));
    let m = Metrics::of(&up);
    m.value("mcp_orchestrator_active_executions", &[]);
    let local = [("node_id", "local")];
    assert_eq!(m.value("mcp_load_generator_total_requests", &local), 0.0);
    assert_eq!(
        m.value("mcp_load_generator_request_duration_seconds_count", &local),
        0.0
    );
    // Another method is a JSON 405, as on every route.
    let (status, body) = common::cluster::post(&up.url("/metrics"), &json!({}), None);
    assert_eq!(
        (status, &body["error"]),
        (405, &json!("method_not_allowed"))
    );
}

/// Per-request series (issue 16): a fast, a slow and a failing target on three nodes. Summed
/// over the nodes, each name's requests and errors on `/metrics` (promtool-checked) are what
/// the target served and what the report says; the slow one's latency sits in its buckets.
#[test]
fn request_names_on_metrics_match_the_targets_counts_over_three_nodes() {
    let t = target();
    let c = Cluster::start(3);
    let a = t.addr;
    let mut body = load_body(a, 90, 3, json!({}));
    body["tasks"][0]["parameters"]["targets"] = json!([
        {"url": format!("http://{a}/"), "name": "fast"},
        format!("http://{a}/delay?ms=50"),
        {"url": format!("http://{a}/status?code=500"), "name": "fail"}
    ]);
    let id = c.submit(&body);
    let view = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed", "{view}");
    let report = c.report(&id);
    let served = t.stats.view();
    assert_eq!(served.total, 270);
    let nodes: Vec<Metrics> = c.nodes.iter().map(Metrics::of).collect();
    let total = |name: &str, labels: &[(&str, &str)]| -> f64 {
        nodes
            .iter()
            .map(|m| {
                m.samples(name)
                    .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
                    .map(|s| match s.value {
                        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                        _ => 0.0,
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let requests = "mcp_load_generator_requests_by_name_total";
    let errors = "mcp_load_generator_request_errors_by_name_total";
    for (name, path) in [("fast", "/"), ("GET /delay", "/delay"), ("fail", "/status")] {
        let row = report["tasks"][0]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        assert_eq!(
            total(requests, &[("request", name)]),
            served.paths[path] as f64,
            "{name}"
        );
        assert_eq!(row["count"], served.paths[path], "{name}");
        assert_eq!(
            total(errors, &[("request", name)]),
            row["errors"]["total"].as_f64().unwrap(),
            "{name}"
        );
    }
    assert_eq!(
        total(errors, &[("request", "fail"), ("kind", "status")]),
        served.paths["/status"] as f64
    );
    // Every slow request took 50 ms at least: none in the buckets up to 25 ms, all counted.
    let family = "mcp_load_generator_request_duration_by_name_seconds";
    let mut slow = std::collections::BTreeMap::<String, f64>::new();
    for m in &nodes {
        for s in m
            .samples(family)
            .filter(|s| s.labels.get("request") == Some("GET /delay"))
        {
            let Value::Histogram(b) = &s.value else {
                panic!("{family} is not a histogram")
            };
            for h in b {
                *slow.entry(format!("{}", h.less_than)).or_default() += h.count;
            }
        }
    }
    assert_eq!(slow.get("0.025"), Some(&0.0), "{slow:?}");
    assert_eq!(
        slow.get("inf"),
        Some(&(served.paths["/delay"] as f64)),
        "{slow:?}"
    );
}
