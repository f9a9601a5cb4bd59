//! Prometheus scrape configurations and the Grafana dashboard: what is scraped where, and which
//! metric names the dashboard's PromQL reads.

use std::collections::{BTreeMap, BTreeSet};

use yaml_rust2::Yaml;

use super::docker::compose_containers;
use super::k8s::{find, k8s_containers, k8s_objects, service_ports};
use super::model::*;

pub use super::metric_names::{METRICS, MetricKind};

/// The metric names a PromQL expression reads: identifiers that are not functions, keywords,
/// label names (in `{...}`, `by (...)`, `on (...)`), strings, ranges or numbers.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // Modifiers whose parenthesis lists label names.
    const GROUPING: &str = "by without on ignoring group_left group_right";
    // Operators and aggregations, which may stand apart from their parenthesis
    // (`sum by (le) (...)`); no metric is named like them.
    const KEYWORDS: &str = "and or unless bool offset atan2 sum avg min max count group stddev \
                            stdvar topk bottomk quantile count_values limitk limit_ratio";
    let is_in = |list: &str, word: &str| list.split_whitespace().any(|w| w == word);
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |i: usize| -> usize {
        let q = c[i];
        let mut j = i + 1;
        while j < c.len() && c[j] != q {
            j += if c[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    let skip_to = |mut j: usize, close: char| -> usize {
        while j < c.len() && c[j] != close {
            j = if matches!(c[j], '"' | '\'' | '`') {
                skip_string(j)
            } else {
                j + 1
            };
        }
        j + 1
    };
    while i < c.len() {
        let ch = c[i];
        if matches!(ch, '"' | '\'' | '`') {
            i = skip_string(i);
        } else if ch == '{' {
            i = skip_to(i, '}');
        } else if ch == '[' {
            i = skip_to(i, ']');
        } else if ch.is_ascii_digit() || ch == '.' || ch == '$' {
            // numbers, durations (5m), Grafana variables ($node_id)
            i += 1;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || matches!(c[i], '_' | '.')) {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || matches!(c[i], '_' | ':')) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let call = j < c.len() && c[j] == '(';
            if is_in(GROUPING, &word) {
                if call {
                    i = skip_to(j, ')');
                }
            } else if !call && !is_in(KEYWORDS, &word) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// A Grafana template query: `label_values(selector, label)` reads the selector only.
pub fn template_metric_names(query: &str) -> BTreeSet<String> {
    match query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|r| r.rsplit_once(','))
    {
        Some((selector, _)) => metric_names(selector),
        None => metric_names(query),
    }
}

/// The known metric a series name belongs to.
pub fn known_metric(series: &str) -> Option<&'static str> {
    METRICS.iter().find_map(|(name, kind)| {
        let ok = match kind {
            MetricKind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| series.strip_suffix(s) == Some(name)),
            _ => series == *name,
        };
        ok.then_some(*name)
    })
}

#[test]
fn metric_names_skip_functions_labels_strings_and_ranges() {
    let expr = concat!(
        r#"histogram_quantile(0.99, sum by (le, node_id) (rate(a_bucket{node_id=~"$node_id", "#,
        r#"x="}"}[$__rate_interval] offset 5m))) / on(node_id) group_left b > bool 0.5 "#,
        r#"and sum(c) without (d)"#
    );
    let want: BTreeSet<String> = ["a_bucket", "b", "c"].map(String::from).into();
    assert_eq!(metric_names(expr), want);
    let want: BTreeSet<String> = ["mcp_node_health_score".to_string()].into();
    assert_eq!(
        template_metric_names("label_values(mcp_node_health_score{x=\"y\"}, node_id)"),
        want
    );
    assert_eq!(
        known_metric("mcp_load_generator_request_duration_seconds_bucket"),
        Some("mcp_load_generator_request_duration_seconds")
    );
    assert_eq!(
        known_metric("mcp_load_generator_request_duration_seconds"),
        None
    );
    assert_eq!(known_metric("mcp_node_cpu_usage_bucket"), None);
}

/// Checks a Prometheus configuration: `/metrics` on every job, and targets that are exactly the
/// hosts in `expected`, each on one of its ports.
pub fn check_scrape(
    at: &str,
    doc: &Yaml,
    expected: &BTreeMap<String, BTreeSet<u16>>,
    p: &mut Problems,
) {
    let mut scraped = BTreeSet::new();
    let mut jobs = BTreeSet::new();
    let jobs_list = doc["scrape_configs"].as_vec().cloned().unwrap_or_default();
    p.check(!jobs_list.is_empty(), at, "no scrape_configs");
    for job in &jobs_list {
        let name = text(&job["job_name"]).unwrap_or_default();
        let at = format!("{at}: job {name:?}");
        p.check(
            !name.is_empty() && jobs.insert(name.clone()),
            &at,
            "job_name missing or repeated",
        );
        p.check(
            text(&job["metrics_path"]).as_deref() == Some("/metrics"),
            &at,
            "metrics_path is not /metrics",
        );
        let mut targets: Vec<(String, Option<u16>)> = Vec::new();
        for sc in job["static_configs"].as_vec().into_iter().flatten() {
            for t in words(&sc["targets"]) {
                let (host, port) = t.rsplit_once(':').unwrap_or((&t, ""));
                targets.push((host.to_string(), port.parse().ok()));
            }
        }
        for sd in job["dns_sd_configs"].as_vec().into_iter().flatten() {
            for n in words(&sd["names"]) {
                targets.push((n, port_of(&sd["port"])));
            }
        }
        p.check(!targets.is_empty(), &at, "no targets");
        for (host, port) in targets {
            match expected.get(&host) {
                None => p.push(
                    &at,
                    format!("target {host} is neither the orchestrator nor a node"),
                ),
                Some(ports) => p.check(
                    port.is_some_and(|q| ports.contains(&q)),
                    &at,
                    format!("target {host}:{port:?}: its metrics are on {ports:?}"),
                ),
            }
            scraped.insert(host);
        }
    }
    for host in expected.keys().filter(|h| !scraped.contains(*h)) {
        p.push(at, format!("{host} is not scraped"));
    }
}

#[test]
fn prometheus_scrapes_the_orchestrator_and_every_node() {
    let mut p = Problems::default();
    let img = image();
    let compose = &yaml(COMPOSE)[0];
    let mut expected = BTreeMap::new();
    for c in compose_containers(compose, &img, &mut p) {
        // A container whose settings do not load is reported by the environment check.
        if let Ok(s) = load(&c.env_map(&img))
            && let Some(port) = c.listen_port(&s)
        {
            expected.insert(c.name.clone(), BTreeSet::from([port]));
        }
    }
    check_scrape(
        "deploy/prometheus.yml",
        &yaml("deploy/prometheus.yml")[0],
        &expected,
        &mut p,
    );

    let objs = k8s_objects();
    let containers = k8s_containers(&objs, &img, &mut p);
    let mut expected = BTreeMap::new();
    for s in objs.iter().filter(|o| o.kind() == "Service") {
        let headless = text(&s.doc["spec"]["clusterIP"]).as_deref() == Some("None");
        let ports: BTreeSet<u16> = service_ports(s, &objs, &containers)
            .into_iter()
            .filter_map(|q| {
                let (cp, _) = q.reaches?;
                Some(if headless { cp } else { q.port })
            })
            .collect();
        expected.insert(s.name(), ports);
    }
    match find(&objs, "ConfigMap", "mcpt-prometheus") {
        None => p.push(
            "deploy/k8s/prometheus-config.yaml",
            "no ConfigMap mcpt-prometheus",
        ),
        Some(cm) => {
            let at = format!("{} data.prometheus.yml", cm.at());
            let inner = text(&cm.doc["data"]["prometheus.yml"]).unwrap_or_default();
            match parse_yaml(&at, &inner).first() {
                Some(doc) => check_scrape(&at, doc, &expected, &mut p),
                None => p.push(&at, "empty"),
            }
        }
    }
    p.assert_none();
}

#[test]
fn dashboard_queries_only_known_metrics() {
    let mut p = Problems::default();
    let at = "deploy/grafana/dashboard.json";
    let d: serde_json::Value = serde_json::from_str(&read(at)).expect("dashboard JSON parses");
    for key in ["title", "uid"] {
        p.check(
            d[key].as_str().is_some_and(|s| !s.is_empty()),
            at,
            format!("no {key}"),
        );
    }
    p.check(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        at,
        "schemaVersion is not >= 36",
    );
    let vars: BTreeMap<&str, &serde_json::Value> = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v)))
        .collect();
    let mut used = BTreeSet::new();
    let mut record = |where_: String, names: BTreeSet<String>, p: &mut Problems| {
        for n in names {
            match known_metric(&n) {
                Some(m) => {
                    used.insert(m);
                }
                None => p.push(
                    &where_,
                    format!("{n} is not a known metric (METRICS in tests/deploy/monitoring.rs)"),
                ),
            }
        }
    };
    for (name, v) in &vars {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or("");
            record(
                format!("{at}: templating {name}"),
                template_metric_names(q),
                &mut p,
            );
        }
    }
    let panels = d["panels"].as_array().cloned().unwrap_or_default();
    p.check(!panels.is_empty(), at, "no panels");
    let mut ids = BTreeSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or("");
        let pat = format!("{at}: panel {title:?}");
        p.check(!title.is_empty(), &pat, "no title");
        p.check(
            panel["id"].as_u64().is_some_and(|id| ids.insert(id)),
            &pat,
            "id missing or repeated",
        );
        p.check(
            matches!(
                panel["type"].as_str(),
                Some("timeseries" | "stat" | "gauge" | "bargauge" | "table")
            ),
            &pat,
            format!("type {}", panel["type"]),
        );
        let g = &panel["gridPos"];
        let fits = ["x", "y", "w", "h"].iter().all(|k| g[k].as_u64().is_some())
            && g["x"].as_u64().unwrap_or(0) + g["w"].as_u64().unwrap_or(99) <= 24;
        p.check(fits, &pat, "gridPos missing or wider than 24 columns");
        let ds = panel["datasource"]["uid"].as_str().unwrap_or("");
        let ds_ok = ds
            .strip_prefix("${")
            .and_then(|v| v.strip_suffix('}'))
            .map_or(ds == "prometheus", |v| {
                vars.get(v)
                    .is_some_and(|var| var["type"] == "datasource" && var["query"] == "prometheus")
            });
        p.check(
            ds_ok && panel["datasource"]["type"] == "prometheus",
            &pat,
            "datasource is not Prometheus (the provisioned uid or a datasource variable)",
        );
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        p.check(!targets.is_empty(), &pat, "no targets");
        let mut refs = BTreeSet::new();
        for t in &targets {
            let expr = t["expr"].as_str().unwrap_or("");
            p.check(!expr.is_empty(), &pat, "a target without expr");
            p.check(
                t["refId"]
                    .as_str()
                    .is_some_and(|r| refs.insert(r.to_string())),
                &pat,
                "refId missing or repeated",
            );
            let names = metric_names(expr);
            p.check(!names.is_empty(), &pat, format!("{expr:?} reads no metric"));
            record(pat.clone(), names, &mut p);
        }
    }
    for (m, _) in METRICS {
        p.check(used.contains(m), at, format!("{m} is on no panel"));
    }
    p.assert_none();
}
