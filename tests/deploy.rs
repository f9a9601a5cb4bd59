//! The deployment files under `deploy/`, checked without a container engine (our machines have
//! none): every file is parsed (YAML with yaml-rust2, JSON with serde_json, the Dockerfile by
//! lines) and checked for the fields its consumer requires, ports that agree with the
//! settings, label selectors and secret references that resolve, metric names the dashboard
//! may use, and `MCP_*` variables the settings accept. Every failure names the file and the
//! object or field, and all of a test's failures are reported at once.
//!
//! Here: the checks over every file and every container; the modules in `deploy/` hold the
//! readers (`model`) and the checks of each kind of file.

#[path = "deploy/docker.rs"]
mod docker;
#[path = "deploy/k8s.rs"]
mod k8s;
#[path = "deploy/metric_names.rs"]
mod metric_names;
#[path = "deploy/model.rs"]
mod model;
#[path = "deploy/monitoring.rs"]
mod monitoring;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mcp_testing::settings::env_key;

use docker::compose_containers;
use k8s::{k8s_containers, k8s_objects};
use model::*;

#[test]
fn every_deploy_file_is_known_and_parses() {
    let mut p = Problems::default();
    let mut found = BTreeSet::new();
    let mut dirs = vec![root().join("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("deploy/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root()).expect("under the repository");
                found.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let listed: BTreeSet<String> = FILES.iter().map(|f| f.to_string()).collect();
    for f in found.difference(&listed) {
        p.push(
            f,
            "not checked by tests/deploy.rs: add it to FILES and check it",
        );
    }
    for f in listed.difference(&found) {
        p.push(f, "listed in FILES but missing");
    }
    for f in listed.intersection(&found) {
        if f.ends_with(".yml") || f.ends_with(".yaml") {
            let docs = yaml(f);
            p.check(!docs.is_empty(), f, "no YAML document");
        } else if f.ends_with(".json")
            && let Err(e) = serde_json::from_str::<serde_json::Value>(&read(f))
        {
            p.push(f, format!("bad JSON: {e}"));
        }
    }
    let ignore = read(".dockerignore");
    for must in ["target", ".git", "data"] {
        let listed = ignore.lines().any(|l| l.trim().trim_matches('/') == must);
        p.check(
            listed,
            ".dockerignore",
            format!("does not leave out {must}/"),
        );
    }
    p.assert_none();
}

/// Every container of every deployment file, with the name of its environment (containers
/// of one environment share a cluster).
fn all_containers(p: &mut Problems) -> Vec<(&'static str, Container)> {
    let img = image();
    let mut out = vec![(
        "docker run",
        Container {
            name: "mcpt".into(),
            at: format!("{DOCKERFILE} (docker run with no arguments)"),
            args: img.cmd.clone(),
            env: img
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), "Dockerfile ENV".to_string()))
                .collect(),
            ports: Vec::new(),
            mounts: Vec::new(),
        },
    )];
    let compose = &yaml(COMPOSE)[0];
    out.extend(
        compose_containers(compose, &img, p)
            .into_iter()
            .map(|c| ("compose", c)),
    );
    let objs = k8s_objects();
    out.extend(
        k8s_containers(&objs, &img, p)
            .into_iter()
            .map(|(_, c)| ("k8s", c)),
    );
    out
}

#[test]
fn every_mcp_variable_is_one_the_settings_accept() {
    let mut p = Problems::default();
    let img = image();
    for (_, c) in all_containers(&mut p) {
        for (k, v, _) in &c.env {
            if !k.starts_with("MCP_") {
                continue;
            }
            match env_key(k) {
                None => p.push(&c.at, format!("{k} is no settings variable")),
                Some(key) => {
                    if let Err(e) = load(&HashMap::from([(k.clone(), v.clone())])) {
                        p.push(&c.at, format!("{k}={v:?} (key {key}) alone: {e}"));
                    }
                }
            }
        }
        // Together, as the process gets them (the image's ENV first).
        if let Err(e) = load(&c.env_map(&img)) {
            p.push(&c.at, e);
        }
    }
    // Named anywhere, comments and the README included.
    for f in FILES {
        for (var, literal) in mentioned_vars(&read(f)) {
            let Some(key) = env_key(&var) else {
                p.push(f, format!("{var} is no settings variable"));
                continue;
            };
            let Some(default) = default_text(&key) else {
                p.push(f, format!("{var}: key {key} is not in config/default.yaml"));
                continue;
            };
            let value = literal.or(sample(&var).map(String::from)).or(default);
            if let Some(v) = value
                && let Err(e) = load(&HashMap::from([(var.clone(), v.clone())]))
            {
                p.push(f, format!("{var}={v:?}: {e}"));
            }
        }
    }
    p.assert_none();
}

#[test]
fn containers_listen_on_their_configured_ports_and_share_the_secret() {
    let mut p = Problems::default();
    let img = image();
    let exposed: BTreeSet<u16> = dockerfile()
        .last()
        .map(|s| {
            instrs(s, "EXPOSE")
                .flat_map(|(_, a)| a.split_whitespace())
                .filter_map(|t| t.split('/').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut secrets: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (env, c) in all_containers(&mut p) {
        let Ok(s) = load(&c.env_map(&img)) else {
            continue;
        };
        let Some(port) = c.listen_port(&s) else {
            continue;
        };
        let at = &c.at;
        p.check(
            exposed.contains(&port),
            at,
            format!("listens on {port}, which the Dockerfile does not EXPOSE"),
        );
        for (name, q) in &c.ports {
            p.check(
                *q == port,
                at,
                format!("declares port {q} ({name:?}) but listens on {port}"),
            );
        }
        let host = match c.role() {
            "node" => &s.node.host,
            _ => &s.orchestrator.host,
        };
        p.check(
            !mcp_testing::app::is_loopback_host(host),
            at,
            format!("listens on {host}: unreachable from other containers"),
        );
        if env == "docker run" {
            continue;
        }
        match c.role() {
            "orchestrator" | "up" => {
                p.check(
                    !c.ports.is_empty(),
                    at,
                    format!("declares or publishes no port (it listens on {port})"),
                );
                if let Err(e) = mcp_testing::app::check_exposure(&s, host) {
                    p.push(at, e);
                }
                let dir = s.orchestrator.data_dir.to_string_lossy().into_owned();
                p.check(
                    c.mounts.contains(&dir),
                    at,
                    format!("data dir {dir} is not a mounted volume"),
                );
            }
            _ => {
                p.check(
                    s.cluster.secret.is_some(),
                    at,
                    "no cluster secret: it cannot join",
                );
                if let Err(e) = mcp_testing::app::check_node_exposure(&s, host) {
                    p.push(at, e);
                }
            }
        }
        secrets.entry(env).or_default().insert(
            c.source("MCP_CLUSTER_SECRET")
                .unwrap_or("(none)")
                .to_string(),
        );
    }
    for (env, sources) in secrets {
        p.check(
            sources.len() == 1,
            env,
            format!("the containers take the cluster secret from different places: {sources:?}"),
        );
    }
    p.assert_none();
}
