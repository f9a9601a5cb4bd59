//! The Kubernetes manifests: required fields, selectors that match, ports that resolve,
//! Secret references, the pods' security context, and how the nodes find the orchestrator.

use std::collections::BTreeSet;

use mcp_testing::settings::env_key;
use yaml_rust2::Yaml;

use super::model::*;

pub struct Obj {
    pub file: String,
    pub doc: Yaml,
}

impl Obj {
    pub fn kind(&self) -> String {
        text(&self.doc["kind"]).unwrap_or_default()
    }
    pub fn name(&self) -> String {
        text(&self.doc["metadata"]["name"]).unwrap_or_default()
    }
    pub fn at(&self) -> String {
        format!("{}: {}/{}", self.file, self.kind(), self.name())
    }
}

pub fn k8s_objects() -> Vec<Obj> {
    let kustomization = "deploy/k8s/kustomization.yaml";
    let mut out = Vec::new();
    for f in FILES.iter().filter(|f| f.starts_with("deploy/k8s/")) {
        if *f == kustomization {
            continue;
        }
        for doc in yaml(f) {
            out.push(Obj {
                file: f.to_string(),
                doc,
            });
        }
    }
    out
}

pub fn find<'a>(objs: &'a [Obj], kind: &str, name: &str) -> Option<&'a Obj> {
    objs.iter().find(|o| o.kind() == kind && o.name() == name)
}

pub fn deployment_containers(d: &Obj, p: &mut Problems) -> Vec<Container> {
    let pod = &d.doc["spec"]["template"]["spec"];
    let mut out = Vec::new();
    for c in pod["containers"].as_vec().into_iter().flatten() {
        let name = text(&c["name"]).unwrap_or_default();
        let at = format!("{} container {name}", d.at());
        let mut env = Vec::new();
        for e in c["env"].as_vec().into_iter().flatten() {
            let name = text(&e["name"]).unwrap_or_default();
            let (value, source) = if let Some(v) = text(&e["value"]) {
                (v.clone(), v)
            } else if let Some(secret) = text(&e["valueFrom"]["secretKeyRef"]["name"]) {
                let key = text(&e["valueFrom"]["secretKeyRef"]["key"]).unwrap_or_default();
                let v = sample(&name).unwrap_or("s3cret").to_string();
                (v, format!("secretKeyRef {secret}/{key}"))
            } else if let Some(path) = text(&e["valueFrom"]["fieldRef"]["fieldPath"]) {
                let v = match path.as_str() {
                    "metadata.name" => "node-abc",
                    "metadata.namespace" => "mcpt",
                    "spec.nodeName" => "worker-1",
                    "status.podIP" => "10.0.0.7",
                    other => {
                        p.push(&at, format!("env {name}: no sample for fieldRef {other}"));
                        continue;
                    }
                };
                (v.to_string(), format!("fieldRef {path}"))
            } else {
                p.push(
                    &at,
                    format!("env {name}: neither value nor a known valueFrom"),
                );
                continue;
            };
            env.push((name, value, source));
        }
        let ports = c["ports"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(|q| Some((text(&q["name"]), port_of(&q["containerPort"])?)))
            .collect();
        let mounts = c["volumeMounts"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(|m| text(&m["mountPath"]))
            .collect();
        out.push(Container {
            name,
            at,
            args: words(&c["args"]),
            env,
            ports,
            mounts,
        });
    }
    out
}

/// The Deployments whose pods a Service selects.
pub fn selected<'a>(objs: &'a [Obj], svc: &Obj) -> Vec<&'a Obj> {
    let sel = labels(&svc.doc["spec"]["selector"]);
    objs.iter()
        .filter(|o| o.kind() == "Deployment")
        .filter(|d| {
            is_subset(
                &sel,
                &labels(&d.doc["spec"]["template"]["metadata"]["labels"]),
            )
        })
        .collect()
}

/// Every container of the k8s manifests with its Deployment and settings.
pub fn k8s_containers(objs: &[Obj], image: &Image, p: &mut Problems) -> Vec<(usize, Container)> {
    let mut out = Vec::new();
    for (i, d) in objs.iter().enumerate() {
        if d.kind() == "Deployment" {
            for c in deployment_containers(d, p) {
                out.push((i, c));
            }
        }
    }
    for (_, c) in &mut out {
        if c.args.is_empty() {
            c.args = image.cmd.clone();
        }
    }
    out
}

/// A Service port as seen from outside: its number, and the container port and role it reaches.
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub reaches: Option<(u16, String)>,
}

pub fn service_ports(
    svc: &Obj,
    objs: &[Obj],
    containers: &[(usize, Container)],
) -> Vec<ServicePort> {
    let targets: Vec<&Container> = selected(objs, svc)
        .iter()
        .flat_map(|d| {
            containers
                .iter()
                .filter(move |(i, _)| std::ptr::eq(&objs[*i], *d))
                .map(|(_, c)| c)
        })
        .collect();
    svc.doc["spec"]["ports"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|q| {
            let port = port_of(&q["port"])?;
            let target = if q["targetPort"].is_badvalue() {
                &q["port"]
            } else {
                &q["targetPort"]
            };
            let reaches = targets
                .iter()
                .find_map(|c| Some((c.resolve_port(target)?, c.role().to_string())));
            Some(ServicePort {
                name: text(&q["name"]),
                port,
                reaches,
            })
        })
        .collect()
}

pub fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn k8s_manifests_are_complete_and_consistent() {
    let mut p = Problems::default();
    let img = image();
    let objs = k8s_objects();

    let kfile = "deploy/k8s/kustomization.yaml";
    let k = &yaml(kfile)[0];
    p.check(
        text(&k["apiVersion"]).as_deref() == Some("kustomize.config.k8s.io/v1beta1")
            && text(&k["kind"]).as_deref() == Some("Kustomization"),
        kfile,
        "want apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization",
    );
    let listed: BTreeSet<String> = words(&k["resources"]).into_iter().collect();
    let manifests: BTreeSet<String> = FILES
        .iter()
        .filter_map(|f| f.strip_prefix("deploy/k8s/"))
        .filter(|f| *f != "kustomization.yaml")
        .map(String::from)
        .collect();
    p.check(
        listed == manifests,
        kfile,
        format!("resources {listed:?}, want {manifests:?}"),
    );
    let image_names: BTreeSet<String> = k["images"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|i| text(&i["name"]))
        .collect();

    let mut seen = BTreeSet::new();
    for o in &objs {
        let at = o.at();
        let want = match o.kind().as_str() {
            "Deployment" => "apps/v1",
            "Service" | "Secret" | "ConfigMap" => "v1",
            other => {
                p.push(&at, format!("unexpected kind {other:?}"));
                continue;
            }
        };
        p.check(
            text(&o.doc["apiVersion"]).as_deref() == Some(want),
            &at,
            format!("want apiVersion {want}"),
        );
        p.check(
            is_dns_label(&o.name()),
            &at,
            "metadata.name is not a DNS label",
        );
        p.check(
            o.doc["metadata"]["namespace"].is_badvalue(),
            &at,
            "names a namespace (keep the manifests namespace-agnostic)",
        );
        p.check(seen.insert((o.kind(), o.name())), &at, "defined twice");
        if o.kind() == "Secret" {
            let values: Vec<String> = ["stringData", "data"]
                .iter()
                .flat_map(|k| entries(&o.doc[*k]))
                .filter_map(|(_, v)| text(v))
                .collect();
            p.check(
                !values.is_empty() && values.iter().all(|v| !v.is_empty()),
                &at,
                "no keys, or an empty value",
            );
        }
    }

    let containers = k8s_containers(&objs, &img, &mut p);
    let services: Vec<&Obj> = objs.iter().filter(|o| o.kind() == "Service").collect();
    for (i, d) in objs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind() == "Deployment")
    {
        let at = d.at();
        let spec = &d.doc["spec"];
        let pod = &spec["template"]["spec"];
        let matched = labels(&spec["selector"]["matchLabels"]);
        p.check(
            is_subset(&matched, &labels(&spec["template"]["metadata"]["labels"])),
            &at,
            "spec.selector.matchLabels is empty or not in spec.template.metadata.labels",
        );
        p.check(
            spec["replicas"].as_i64().is_some_and(|r| r >= 1),
            &at,
            "spec.replicas is not >= 1",
        );
        let mine: Vec<&Container> = containers
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, c)| c)
            .collect();
        p.check(!mine.is_empty(), &at, "no containers");
        if mine.iter().any(|c| c.role() == "orchestrator") {
            p.check(
                spec["replicas"].as_i64() == Some(1),
                &at,
                "an orchestrator owns its database: replicas 1",
            );
            p.check(
                text(&spec["strategy"]["type"]).as_deref() == Some("Recreate"),
                &at,
                "strategy Recreate, so a rollout never runs two orchestrators on one database",
            );
        }
        // Service links would add <SERVICE>_PORT=tcp://... to the environment.
        if pod["enableServiceLinks"].as_bool() != Some(false) {
            for s in &services {
                let prefix = s.name().to_ascii_uppercase().replace('-', "_");
                for var in [format!("{prefix}_SERVICE_HOST"), format!("{prefix}_PORT")] {
                    let why = format!(
                        "Service {} injects {var}, a settings variable: \
                         set enableServiceLinks: false",
                        s.name()
                    );
                    p.check(env_key(&var).is_none(), &at, why);
                }
            }
        }
        let volumes: BTreeSet<String> = pod["volumes"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(|v| text(&v["name"]))
            .collect();
        let pod_sc = &pod["securityContext"];
        for (c, y) in mine
            .iter()
            .zip(pod["containers"].as_vec().into_iter().flatten())
        {
            let at = &c.at;
            let sc = &y["securityContext"];
            let non_root = sc["runAsNonRoot"]
                .as_bool()
                .or(pod_sc["runAsNonRoot"].as_bool());
            p.check(non_root == Some(true), at, "runAsNonRoot is not true");
            let uid = sc["runAsUser"].as_i64().or(pod_sc["runAsUser"].as_i64());
            p.check(
                uid.is_some_and(|u| u != 0) && uid == img.uid,
                at,
                format!("runAsUser {uid:?}, want the image's USER {:?}", img.uid),
            );
            p.check(
                sc["readOnlyRootFilesystem"].as_bool() == Some(true),
                at,
                "readOnlyRootFilesystem is not true",
            );
            p.check(
                sc["allowPrivilegeEscalation"].as_bool() == Some(false),
                at,
                "allowPrivilegeEscalation is not false",
            );
            p.check(
                is_dns_label(&c.name),
                at,
                "container name is not a DNS label",
            );
            let image = text(&y["image"]).unwrap_or_default();
            let repo = image.split(':').next().unwrap_or("");
            p.check(!repo.is_empty(), at, "no image");
            p.check(
                repo == "mcpt" || image_names.contains(repo),
                at,
                format!("image {image} is not the mcpt image"),
            );
            p.check(!c.ports.is_empty(), at, "no ports");
            let names: Vec<&String> = c.ports.iter().filter_map(|(n, _)| n.as_ref()).collect();
            p.check(
                names.iter().collect::<BTreeSet<_>>().len() == names.len(),
                at,
                "port names repeat",
            );
            for m in y["volumeMounts"].as_vec().into_iter().flatten() {
                let v = text(&m["name"]).unwrap_or_default();
                p.check(
                    volumes.contains(&v),
                    at,
                    format!("volumeMount {v} names no volume"),
                );
            }
            for e in y["env"].as_vec().into_iter().flatten() {
                let r = &e["valueFrom"]["secretKeyRef"];
                if r.is_badvalue() {
                    continue;
                }
                let (secret, key) = (
                    text(&r["name"]).unwrap_or_default(),
                    text(&r["key"]).unwrap_or_default(),
                );
                let has_key = find(&objs, "Secret", &secret).is_some_and(|s| {
                    !s.doc["stringData"][key.as_str()].is_badvalue()
                        || !s.doc["data"][key.as_str()].is_badvalue()
                });
                p.check(
                    has_key,
                    at,
                    format!("secretKeyRef {secret}/{key}: no such Secret key"),
                );
            }
            let health = match c.role() {
                "orchestrator" => "/api/health",
                _ => "/health",
            };
            for probe in ["readinessProbe", "livenessProbe"] {
                let get = &y[probe]["httpGet"];
                p.check(
                    text(&get["path"]).as_deref() == Some(health),
                    at,
                    format!("{probe}.httpGet.path is not {health}"),
                );
                p.check(
                    c.resolve_port(&get["port"]).is_some(),
                    at,
                    format!("{probe}.httpGet.port is no container port"),
                );
            }
        }
    }

    for s in &services {
        let at = s.at();
        let chosen = selected(&objs, s);
        p.check(
            chosen.len() == 1,
            &at,
            format!("selector matches {} Deployments, want 1", chosen.len()),
        );
        let ports = service_ports(s, &objs, &containers);
        let declared = s.doc["spec"]["ports"].as_vec().map_or(0, Vec::len);
        p.check(
            ports.len() == declared && declared > 0,
            &at,
            "a port without a number",
        );
        for q in &ports {
            p.check(
                q.reaches.is_some(),
                &at,
                format!(
                    "port {}: targetPort is no containerPort of the selected pods",
                    q.port
                ),
            );
            p.check(
                declared == 1 || q.name.is_some(),
                &at,
                format!("port {} has no name", q.port),
            );
        }
        let roles: BTreeSet<&str> = ports
            .iter()
            .filter_map(|q| q.reaches.as_ref())
            .map(|(_, r)| r.as_str())
            .collect();
        if roles.contains("node") {
            p.check(
                text(&s.doc["spec"]["clusterIP"]).as_deref() == Some("None"),
                &at,
                "the nodes' Service is not headless (clusterIP: None)",
            );
        }
        if roles.contains("orchestrator") {
            p.check(
                ports.iter().any(|q| q.name.as_deref() == Some("cluster")),
                &at,
                "no port named cluster (nodes resolve _cluster._tcp.<service>)",
            );
        }
    }

    // Each node finds the orchestrator: by address or by DNS name (SRV or A of a Service).
    let orchestrator_port = containers
        .iter()
        .filter(|(_, c)| c.role() == "orchestrator")
        .find_map(|(_, c)| load(&c.env_map(&img)).ok())
        .map(|s| s.orchestrator.port);
    for (_, c) in containers.iter().filter(|(_, c)| c.role() == "node") {
        let Ok(s) = load(&c.env_map(&img)) else {
            continue;
        };
        let reaches_orchestrator = |svc: &str, port: Option<u16>, port_name: Option<&str>| {
            find(&objs, "Service", svc).is_some_and(|o| {
                service_ports(o, &objs, &containers).iter().any(|q| {
                    port.is_none_or(|p| p == q.port)
                        && port_name.is_none_or(|n| q.name.as_deref() == Some(n))
                        && q.reaches.as_ref().is_some_and(|(cp, role)| {
                            role == "orchestrator" && Some(*cp) == orchestrator_port
                        })
                })
            })
        };
        let ok = if let Some(url) = &s.node.orchestrator {
            let svc = url.host_str().unwrap_or("").split('.').next().unwrap_or("");
            reaches_orchestrator(svc, url.port_or_known_default(), None)
        } else if let Some(name) = &s.service_discovery.dns_name {
            let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
            let rest_ok = |rest: &[&str]| {
                rest.is_empty()
                    || rest.len() == 1
                    || rest.ends_with(&["svc", "cluster", "local"]) && rest.len() == 4
            };
            match labels.as_slice() {
                [srv, proto, svc, rest @ ..] if srv.starts_with('_') => {
                    *proto == "_tcp"
                        && rest_ok(rest)
                        && reaches_orchestrator(svc, None, srv.strip_prefix('_'))
                }
                [svc, rest @ ..] => {
                    rest_ok(rest) && reaches_orchestrator(svc, Some(s.orchestrator.port), None)
                }
                [] => false,
            }
        } else {
            false
        };
        p.check(
            ok,
            &c.at,
            "finds no orchestrator: MCP_NODE_ORCHESTRATOR or MCP_DISCOVERY_DNS_NAME must name \
             the orchestrator's Service and port (multicast does not cross pod networks)",
        );
    }
    p.assert_none();
}
