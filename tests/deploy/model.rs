//! Reading the deployment files: YAML and Dockerfile helpers, the containers the files start
//! (our image with its environment, ports and mounts) and the settings they load, and the
//! failures a test collects.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::path::PathBuf;

use mcp_testing::settings::{DEFAULT_YAML, Settings};
use yaml_rust2::{Yaml, YamlLoader};

/// Every file under `deploy/`, each read by the checks below; a new file needs a check.
pub const FILES: &[&str] = &[
    "deploy/Dockerfile",
    "deploy/README.md",
    "deploy/docker-compose.yml",
    "deploy/prometheus.yml",
    "deploy/grafana/dashboard.json",
    "deploy/grafana/provisioning/dashboards/mcpt.yml",
    "deploy/grafana/provisioning/datasources/prometheus.yml",
    "deploy/k8s/kustomization.yaml",
    "deploy/k8s/secret.yaml",
    "deploy/k8s/orchestrator.yaml",
    "deploy/k8s/nodes.yaml",
    "deploy/k8s/prometheus-config.yaml",
];
pub const COMPOSE: &str = "deploy/docker-compose.yml";
pub const DOCKERFILE: &str = "deploy/Dockerfile";

/// Values for variables whose value the files do not hold (compose substitutions, Secrets).
pub const SAMPLES: &[(&str, &str)] =
    &[("MCP_CLUSTER_SECRET", "s3cret"), ("MCP_API_TOKEN", "t0ken")];

// ---------------------------------------------------------------------------------------------
// Reading

/// Failures collected over one test, asserted at its end.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn push(&mut self, at: impl Display, msg: impl Display) {
        self.0.push(format!("{at}: {msg}"));
    }
    pub fn check(&mut self, ok: bool, at: impl Display, msg: impl Display) {
        if !ok {
            self.push(at, msg);
        }
    }
    pub fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: cannot read: {e}"))
}

pub fn parse_yaml(at: &str, text: &str) -> Vec<Yaml> {
    let docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{at}: bad YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

pub fn yaml(rel: &str) -> Vec<Yaml> {
    parse_yaml(rel, &read(rel))
}

/// A scalar as the text a program would see.
pub fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn port_of(y: &Yaml) -> Option<u16> {
    y.as_i64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// A list of strings, or a string split on whitespace (compose `command`).
pub fn words(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a.iter().filter_map(text).collect(),
        Yaml::String(s) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    }
}

pub fn entries(y: &Yaml) -> Vec<(String, &Yaml)> {
    y.as_hash()
        .map(|h| h.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect())
        .unwrap_or_default()
}

pub fn labels(y: &Yaml) -> BTreeMap<String, String> {
    entries(y)
        .into_iter()
        .filter_map(|(k, v)| Some((k, text(v)?)))
        .collect()
}

pub fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    !small.is_empty() && small.iter().all(|(k, v)| big.get(k) == Some(v))
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

pub struct Stage {
    pub image: String,
    pub name: Option<String>,
    /// (line, instruction in upper case, arguments with continuations joined).
    pub instrs: Vec<(usize, String, String)>,
}

/// The build stages; ARGs before the first FROM are substituted into FROM lines.
pub fn dockerfile() -> Vec<Stage> {
    let mut args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in read(DOCKERFILE).lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        acc.push(' ');
        acc.push_str(t.strip_suffix('\\').unwrap_or(t));
        if t.ends_with('\\') {
            pending = Some((start, acc));
            continue;
        }
        let acc = acc.trim().to_string();
        let (op, rest) = acc.split_once(' ').unwrap_or((&acc, ""));
        let (op, rest) = (op.to_ascii_uppercase(), rest.trim().to_string());
        match (op.as_str(), stages.last_mut()) {
            ("ARG", None) => {
                if let Some((k, v)) = rest.split_once('=') {
                    args.insert(k.to_string(), v.to_string());
                }
            }
            ("FROM", _) => {
                let mut image = rest.split_whitespace().next().unwrap_or("").to_string();
                for (k, v) in &args {
                    image = image.replace(&format!("${{{k}}}"), v);
                }
                let name = rest
                    .to_ascii_lowercase()
                    .split_once(" as ")
                    .map(|(_, n)| n.trim().to_string());
                stages.push(Stage {
                    image,
                    name,
                    instrs: Vec::new(),
                });
            }
            (_, Some(stage)) => stage.instrs.push((start, op, rest)),
            (_, None) => panic!("{DOCKERFILE}:{start}: {op} before the first FROM"),
        }
    }
    stages
}

pub fn instrs<'a>(stage: &'a Stage, op: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    stage
        .instrs
        .iter()
        .filter(move |(_, o, _)| o == op)
        .map(|(l, _, a)| (*l, a.as_str()))
}

/// `ENV K=V K2=V2` or the old `ENV K V`.
pub fn env_args(args: &str) -> Vec<(String, String)> {
    let unquote = |s: &str| s.trim_matches('"').to_string();
    let mut tokens = args.split_whitespace();
    match tokens.next() {
        Some(first) if !first.contains('=') => {
            vec![(
                first.to_string(),
                unquote(&tokens.collect::<Vec<_>>().join(" ")),
            )]
        }
        Some(first) => std::iter::once(first)
            .chain(tokens)
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.to_string(), unquote(v)))
            .collect(),
        None => Vec::new(),
    }
}

/// What the runtime image sets up: its environment, default command and user id.
pub struct Image {
    pub env: Vec<(String, String)>,
    pub cmd: Vec<String>,
    pub uid: Option<i64>,
}

pub fn image() -> Image {
    let stages = dockerfile();
    let last = stages.last().expect("at least one FROM");
    let exec_form = |op| {
        instrs(last, op)
            .last()
            .and_then(|(_, a)| serde_json::from_str::<Vec<String>>(a).ok())
            .unwrap_or_default()
    };
    let uid = instrs(last, "USER").last().and_then(|(_, a)| {
        let user = a.split(':').next().unwrap_or(a);
        user.parse::<i64>().ok()
    });
    Image {
        env: instrs(last, "ENV").flat_map(|(_, a)| env_args(a)).collect(),
        cmd: exec_form("CMD"),
        uid,
    }
}

// ---------------------------------------------------------------------------------------------
// Containers and their settings

/// One process running our image, as a deployment file starts it.
pub struct Container {
    /// The compose service or the k8s container.
    pub name: String,
    pub at: String,
    /// The image's `mcpt` arguments; the Dockerfile's CMD when the file gives none.
    pub args: Vec<String>,
    /// (name, value the process sees, where the value comes from in the file).
    pub env: Vec<(String, String, String)>,
    /// Ports declared for the container (k8s containerPort, compose published target), by name.
    pub ports: Vec<(Option<String>, u16)>,
    /// Paths mounted into the container.
    pub mounts: Vec<String>,
}

impl Container {
    pub fn role(&self) -> &str {
        self.args.first().map_or("", String::as_str)
    }
    pub fn env_map(&self, image: &Image) -> HashMap<String, String> {
        let base = image.env.iter().map(|(k, v)| (k.clone(), v.clone()));
        let own = self.env.iter().map(|(k, v, _)| (k.clone(), v.clone()));
        base.chain(own).collect()
    }
    pub fn source(&self, var: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _, _)| k == var)
            .map(|(_, _, s)| s.as_str())
    }
    /// The port its role listens on.
    pub fn listen_port(&self, s: &Settings) -> Option<u16> {
        match self.role() {
            "orchestrator" | "up" => Some(s.orchestrator.port),
            "node" => Some(s.node.port),
            _ => None,
        }
    }
    /// A named or numeric port of this container.
    pub fn resolve_port(&self, port: &Yaml) -> Option<u16> {
        match port {
            Yaml::String(name) => self
                .ports
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name))
                .map(|(_, p)| *p),
            other => port_of(other).filter(|p| self.ports.iter().any(|(_, q)| q == p)),
        }
    }
}

pub fn sample(var: &str) -> Option<&'static str> {
    SAMPLES.iter().find(|(k, _)| *k == var).map(|(_, v)| *v)
}

/// Compose's `${NAME}`, `${NAME:?message}`, `${NAME:-default}`: the sample value for NAME,
/// else the default.
pub fn substitute(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let inner = rest[i..]
            .strip_prefix("${")
            .and_then(|r| r.split_once('}'))
            .ok_or_else(|| format!("unsupported substitution in {value:?}"))?;
        let (expr, after) = inner;
        let name_end = expr.find([':', '-', '?']).unwrap_or(expr.len());
        let (name, op) = expr.split_at(name_end);
        let default = op.strip_prefix(":-").or_else(|| op.strip_prefix('-'));
        match (sample(name), default) {
            (Some(s), _) => out.push_str(s),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("no sample value for ${{{name}}}: add one")),
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

pub fn load(env: &HashMap<String, String>) -> Result<Settings, String> {
    Settings::load(None, env, &[]).map_err(|e| e.to_string())
}

/// The `MCP_*` variables named anywhere in `text`, each with the literal value given after `=`
/// where there is one.
pub fn mentioned_vars(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for (i, _) in text.match_indices("MCP_") {
        if i > 0 && ident(bytes[i - 1]) {
            continue;
        }
        let end = text[i..]
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |n| i + n);
        let name = &text[i..end];
        if name.len() <= 4 || name.ends_with('_') {
            continue;
        }
        let value = text[end..].strip_prefix('=').and_then(|v| {
            let v: String = v
                .chars()
                .take_while(|c| !" \t\n`)'\"".contains(*c))
                .collect();
            // A sentence may end right after the value.
            let v = v.trim_end_matches(['.', ',', ';', ':']).to_string();
            (!v.is_empty() && !v.contains('$')).then_some(v)
        });
        out.push((name.to_string(), value));
    }
    out
}

/// The default of a settings key as an environment variable would give it; `None` when the
/// key is not in config/default.yaml, `Some(None)` when it has no text form (a map).
pub fn default_text(key: &str) -> Option<Option<String>> {
    let doc = YamlLoader::load_from_str(DEFAULT_YAML).expect("default.yaml parses");
    let mut y = &doc[0];
    for part in key.split('.') {
        y = &y[part];
    }
    match y {
        Yaml::BadValue => None,
        Yaml::Array(a) => Some(Some(
            a.iter().filter_map(text).collect::<Vec<_>>().join(","),
        )),
        Yaml::Hash(_) => Some(None),
        other => Some(text(other)),
    }
}

#[test]
fn substitution_uses_samples_then_defaults() {
    let v = substitute("${MCP_CLUSTER_SECRET:?set it}").unwrap();
    assert_eq!(v, "s3cret");
    assert_eq!(substitute("a${UNKNOWN:-b}c").unwrap(), "abc");
    assert!(substitute("${UNKNOWN}").is_err());
    assert!(substitute("$UNKNOWN").is_err());
    let got = mentioned_vars("x MCP_A_B=1. `MCP_C` MCP_* XMCP_D MCP_E=\"$(f)\"");
    let want = [("MCP_A_B", Some("1")), ("MCP_C", None), ("MCP_E", None)]
        .map(|(k, v)| (k.to_string(), v.map(String::from)));
    assert_eq!(got, want);
}
