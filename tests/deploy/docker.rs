//! The Dockerfile and docker-compose.yml: stages, user, ports and entry point of the image;
//! compose services, their builds, networks, volumes, and how the nodes reach the orchestrator.

use std::collections::{BTreeMap, BTreeSet};

use mcp_testing::settings::Settings;
use yaml_rust2::Yaml;

use super::model::*;

pub fn compose_services(doc: &Yaml) -> Vec<(String, &Yaml)> {
    entries(&doc["services"])
}

/// A compose service that runs our image.
pub fn is_ours(svc: &Yaml) -> bool {
    text(&svc["build"]["dockerfile"]).as_deref() == Some(DOCKERFILE)
        || text(&svc["image"]).is_some_and(|i| i.split(':').next() == Some("mcpt"))
}

pub fn compose_containers(doc: &Yaml, image: &Image, p: &mut Problems) -> Vec<Container> {
    let mut out = Vec::new();
    for (name, svc) in compose_services(doc) {
        if !is_ours(svc) {
            continue;
        }
        let at = format!("{COMPOSE}: services.{name}");
        let raw: Vec<(String, String)> = match &svc["environment"] {
            Yaml::Array(list) => list
                .iter()
                .filter_map(text)
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv, String::new()),
                })
                .collect(),
            other => entries(other)
                .into_iter()
                .map(|(k, v)| (k, text(v).unwrap_or_default()))
                .collect(),
        };
        let mut env = Vec::new();
        for (k, v) in raw {
            match substitute(&v) {
                Ok(value) => env.push((k, value, v)),
                Err(e) => p.push(format!("{at}.environment.{k}"), e),
            }
        }
        let ports = words(&svc["ports"])
            .iter()
            .filter_map(|spec| spec.rsplit(':').next()?.split('/').next()?.parse().ok())
            .map(|port| (None, port))
            .collect();
        let mounts = words(&svc["volumes"])
            .iter()
            .filter_map(|v| v.split(':').nth(1).map(String::from))
            .collect();
        let args = match words(&svc["command"]) {
            a if a.is_empty() => image.cmd.clone(),
            a => a,
        };
        out.push(Container {
            name,
            at,
            args,
            env,
            ports,
            mounts,
        });
    }
    out
}

#[test]
fn dockerfile_builds_in_stages_and_runs_mcpt_as_a_user() {
    let mut p = Problems::default();
    let stages = dockerfile();
    let at = DOCKERFILE;
    p.check(
        stages.len() >= 2,
        at,
        format!(
            "{} FROM stage(s); want a build and a runtime stage",
            stages.len()
        ),
    );
    let (build, last) = (&stages[0], stages.last().expect("a stage"));
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("Cargo.toml has rust-version");
    p.check(
        build.image.starts_with(&format!("rust:{rust_version}")),
        at,
        format!(
            "build stage FROM {}: want rust:{rust_version} (Cargo.toml rust-version)",
            build.image
        ),
    );
    p.check(
        instrs(build, "RUN").any(|(_, a)| a.contains("cargo build --release --locked --bin mcpt")),
        at,
        "build stage does not run `cargo build --release --locked --bin mcpt`",
    );
    let from = format!("--from={}", build.name.as_deref().unwrap_or("0"));
    p.check(
        instrs(last, "COPY").any(|(_, a)| a.contains(&from) && a.contains("mcpt")),
        at,
        format!("final stage does not COPY {from} the mcpt binary"),
    );
    let img = image();
    match instrs(last, "USER").last() {
        None => p.push(at, "final stage has no USER: it would run as root"),
        Some((line, user)) => match img.uid {
            Some(0) | None => p.push(
                format!("{at}:{line}"),
                format!(
                    "USER {user}: want a numeric non-root UID \
                     (Kubernetes checks runAsNonRoot by number)"
                ),
            ),
            Some(_) => {}
        },
    }
    p.check(
        instrs(last, "WORKDIR").next().is_some(),
        at,
        "final stage has no WORKDIR",
    );
    let exposed: BTreeSet<u16> = instrs(last, "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .filter_map(|t| t.split('/').next()?.parse().ok())
        .collect();
    let d = Settings::defaults();
    for (what, port) in [("orchestrator", d.orchestrator.port), ("node", d.node.port)] {
        p.check(
            exposed.contains(&port),
            at,
            format!("EXPOSE {exposed:?} lacks the {what} port {port}"),
        );
    }
    let entry = instrs(last, "ENTRYPOINT")
        .last()
        .and_then(|(_, a)| serde_json::from_str::<Vec<String>>(a).ok())
        .unwrap_or_default();
    p.check(
        entry
            .first()
            .is_some_and(|e| e == "mcpt" || e.ends_with("/mcpt")),
        at,
        format!("ENTRYPOINT {entry:?}: want the exec form running mcpt"),
    );
    p.check(
        matches!(
            img.cmd.first().map(String::as_str),
            Some("orchestrator" | "node" | "up")
        ),
        at,
        format!("CMD {:?}: want an mcpt subcommand that serves", img.cmd),
    );
    // The data directory must exist in the image, owned by the user, so a fresh volume mounted
    // there (compose) is writable.
    match load(&img.env.iter().cloned().collect()) {
        Err(e) => p.push(at, format!("ENV: {e}")),
        Ok(s) => {
            let dir = s.orchestrator.data_dir.to_string_lossy().into_owned();
            let uid = img.uid.unwrap_or(0).to_string();
            p.check(
                s.orchestrator.data_dir.is_absolute()
                    && instrs(last, "RUN").any(|(_, a)| a.contains(&dir) && a.contains(&uid)),
                at,
                format!("data dir {dir:?} is not an absolute path created owned by {uid}"),
            );
        }
    }
    p.assert_none();
}

#[test]
fn compose_runs_an_orchestrator_and_two_nodes() {
    let mut p = Problems::default();
    let doc = &yaml(COMPOSE)[0];
    let img = image();
    let services = compose_services(doc);
    let names: BTreeSet<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    let keys = |y: &Yaml| -> BTreeSet<String> {
        match y {
            Yaml::Hash(_) => entries(y).into_iter().map(|(k, _)| k).collect(),
            other => words(other).into_iter().collect(),
        }
    };
    let (networks, volumes) = (keys(&doc["networks"]), keys(&doc["volumes"]));
    for (net, cfg) in entries(&doc["networks"]) {
        p.check(
            text(&cfg["driver"]).as_deref() == Some("bridge"),
            format!("{COMPOSE}: networks.{net}"),
            "want driver: bridge",
        );
    }
    for (name, svc) in &services {
        let at = format!("{COMPOSE}: services.{name}");
        let build = &svc["build"];
        p.check(
            text(&svc["image"]).is_some() || !build.is_badvalue(),
            &at,
            "neither image nor build",
        );
        if !build.is_badvalue() {
            let ctx = root()
                .join("deploy")
                .join(text(&build["context"]).unwrap_or(".".into()));
            let file = text(&build["dockerfile"]).unwrap_or("Dockerfile".into());
            p.check(
                ctx.join(&file).is_file(),
                &at,
                format!("build.dockerfile {file} not in the context"),
            );
            p.check(
                ctx.join("Cargo.toml").is_file(),
                &at,
                "build.context is not the repository root",
            );
        }
        for net in keys(&svc["networks"]) {
            p.check(
                networks.contains(&net),
                &at,
                format!("network {net} is not declared"),
            );
        }
        for vol in words(&svc["volumes"]) {
            let src = vol.split(':').next().unwrap_or("");
            if src.starts_with('.') || src.starts_with('/') {
                let exists = root().join("deploy").join(src).exists();
                p.check(
                    exists,
                    &at,
                    format!("bind mount source {src} does not exist"),
                );
            } else {
                p.check(
                    volumes.contains(src),
                    &at,
                    format!("volume {src} is not declared"),
                );
            }
        }
        for dep in keys(&svc["depends_on"]) {
            p.check(
                names.contains(dep.as_str()),
                &at,
                format!("depends_on unknown {dep}"),
            );
        }
    }

    let containers: Vec<(Container, Settings)> = compose_containers(doc, &img, &mut p)
        .into_iter()
        .filter_map(|c| match load(&c.env_map(&img)) {
            Ok(s) => Some((c, s)),
            Err(e) => {
                p.push(&c.at, e);
                None
            }
        })
        .collect();
    let orchestrators: BTreeMap<&str, &Settings> = containers
        .iter()
        .filter(|(c, _)| c.role() == "orchestrator")
        .map(|(c, s)| (c.name.as_str(), s))
        .collect();
    p.check(
        orchestrators.keys().eq(["orchestrator"].iter()),
        COMPOSE,
        format!(
            "want one orchestrator service named orchestrator, got {:?}",
            orchestrators.keys()
        ),
    );
    let nodes: Vec<&(Container, Settings)> = containers
        .iter()
        .filter(|(c, _)| c.role() == "node")
        .collect();
    p.check(
        nodes.len() >= 2,
        COMPOSE,
        format!("{} node service(s), want at least 2", nodes.len()),
    );
    for (c, s) in &containers {
        let svc = &doc["services"][c.name.as_str()];
        if c.role() == "orchestrator" {
            let check = words(&svc["healthcheck"]["test"]).join(" ");
            let port = s.orchestrator.port.to_string();
            p.check(
                check.contains("/api/health") && check.contains(&port),
                &c.at,
                format!("healthcheck does not ask GET /api/health on port {port}"),
            );
        }
    }
    let mut ids = BTreeSet::new();
    for (c, s) in nodes {
        let id = s.node.id.clone().unwrap_or_default();
        p.check(
            ids.insert(id.clone()),
            &c.at,
            format!("node id {id:?} is not unique"),
        );
        let deps = keys(&doc["services"][c.name.as_str()]["depends_on"]);
        match &s.node.orchestrator {
            Some(url) => {
                let host = url.host_str().unwrap_or("");
                match orchestrators.get(host) {
                    None => p.push(
                        &c.at,
                        format!("MCP_NODE_ORCHESTRATOR {url}: {host} is no orchestrator service"),
                    ),
                    Some(o) => p.check(
                        url.port_or_known_default() == Some(o.orchestrator.port),
                        &c.at,
                        format!(
                            "MCP_NODE_ORCHESTRATOR {url}: the orchestrator listens on {}",
                            o.orchestrator.port
                        ),
                    ),
                }
                p.check(
                    deps.contains(host),
                    &c.at,
                    format!("does not depend_on {host}"),
                );
            }
            // The bridge network carries multicast; the announcements need the secret.
            None => p.check(
                s.service_discovery.multicast_enabled && s.cluster.secret.is_some(),
                &c.at,
                "no MCP_NODE_ORCHESTRATOR and no multicast discovery: it finds no orchestrator",
            ),
        }
    }

    // Grafana's provisioning points at the compose Prometheus and the mounted dashboard.
    let at = "deploy/grafana/provisioning/datasources/prometheus.yml";
    let ds = &yaml(at)[0];
    for d in ds["datasources"].as_vec().into_iter().flatten() {
        let url = text(&d["url"]).and_then(|u| url::Url::parse(&u).ok());
        let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or("");
        p.check(
            names.contains(host),
            at,
            format!("data source url host {host:?} is no compose service"),
        );
        p.check(
            text(&d["type"]).as_deref() == Some("prometheus"),
            at,
            "data source type is not prometheus",
        );
    }
    let at = "deploy/grafana/provisioning/dashboards/mcpt.yml";
    let grafana_mounts: Vec<String> = services
        .iter()
        .filter(|(_, s)| text(&s["image"]).is_some_and(|i| i.starts_with("grafana/")))
        .flat_map(|(_, s)| words(&s["volumes"]))
        .collect();
    for prov in yaml(at)[0]["providers"].as_vec().into_iter().flatten() {
        let path = text(&prov["options"]["path"]).unwrap_or_default();
        let mounted = grafana_mounts.iter().any(|m| {
            m.starts_with("./grafana/dashboard.json:") && m.contains(&format!(":{path}/"))
        });
        p.check(
            mounted,
            at,
            format!("options.path {path:?}: grafana mounts no dashboard there"),
        );
    }
    p.assert_none();
}
