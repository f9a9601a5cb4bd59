//! Configuration: `config/default.yaml` (embedded), then a YAML file, then `MCP_*` environment
//! variables, then `--set key=value` overrides, merged by the `config` crate and validated into
//! [`Settings`] with every error reported at once, each naming its key (and the variable it
//! came from). The environment is an argument, so tests never touch the process environment.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, File, FileFormat};
use serde_json::Value;

use crate::allowlist::Allowlist;
use crate::validate::{FieldErrors, FromValue, Obj};

mod read;

/// The defaults, documented key by key.
pub const DEFAULT_YAML: &str = include_str!("../../config/default.yaml");

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub orchestrator: OrchestratorSettings,
    pub load_generation: LoadSettings,
    pub service_discovery: DiscoverySettings,
    pub resource_management: ResourceSettings,
    pub health_monitoring: HealthSettings,
    pub communication: CommunicationSettings,
    pub api: ApiSettings,
    pub cluster: ClusterSettings,
    pub node: NodeSettings,
    pub distribution: DistributionSettings,
    pub mcp: McpSettings,
}

/// The guardrails of the MCP server (`mcpt mcp` and `/mcp`): whatever an assistant asks for,
/// a load test it starts stays within these.
#[derive(Debug, Clone, PartialEq)]
pub struct McpSettings {
    /// Highest base or peak rate (requests per second) a test started over MCP may ask for.
    pub max_rps: f64,
    /// Longest a test started over MCP may run.
    pub max_duration: Duration,
    /// Executions started over MCP that may be unfinished at once.
    pub max_concurrent_executions: u32,
}

/// How scenarios and executions are placed on nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionSettings {
    /// The strategy of executions and workloads that name none.
    pub default_strategy: crate::placement::Strategy,
    /// The terms of `weighted_scoring`.
    pub weights: crate::placement::Weights,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrchestratorSettings {
    pub host: String,
    pub port: u16,
    pub max_concurrent_executions: u32,
    pub task_timeout: Duration,
    pub log_level: tracing::Level,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// `None`: mutating calls need no token.
    pub token: Option<String>,
    pub max_body_size: usize,
    /// Live events that may wait for one `/api/events` subscriber before it is dropped.
    pub event_buffer: usize,
    /// How long a client may take to send a request's head (line and headers).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body, from the end of its head.
    pub body_timeout: Duration,
    /// Request bodies a server receives at once; when one more starts, the one that has been
    /// arriving longest is cut (408), so slow bodies cannot pile up.
    pub max_pending_bodies: usize,
    /// Connections a server keeps open at once (all its workers together); more wait in the
    /// listen queue. Lowered at start to what the open-file limit leaves room for.
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// `None`: no secret; the orchestrator then listens on loopback only.
    pub secret: Option<String>,
    pub max_frame_size: usize,
    pub outbox_capacity: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    pub host: String,
    pub port: u16,
    /// `None`: derived from the host name and port.
    pub id: Option<String>,
    /// `None`: not given (discovery finds one later).
    pub orchestrator: Option<url::Url>,
    pub location: String,
    /// What the node can run, matched against a scenario's `required_capabilities`.
    pub capabilities: Vec<String>,
    /// The network bandwidth the node offers to the resource pool (megabits per second).
    pub network_mbps: f64,
    /// Named custom resources the node offers to the resource pool (`gpu: 1`).
    pub resources: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadSettings {
    pub default_timeout: Duration,
    pub max_concurrent_requests: u32,
    pub connection_pool_size: u32,
    pub allowed_targets: Allowlist,
    pub drain_timeout: Duration,
    /// `None`: one worker per available core.
    pub workers: Option<usize>,
    /// The longest a task may plan to run: `orchestrator.task_timeout`, copied here because
    /// plans are validated against the load settings.
    pub task_timeout: Duration,
    /// The highest rate (requests per second) a plan may ask for.
    pub max_rps: f64,
}

/// Workers for a run: the configured number, else one per available core.
pub fn worker_count(settings: &LoadSettings) -> usize {
    settings
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverySettings {
    /// Announce (orchestrator) and listen (node without an address) on the multicast group.
    pub multicast_enabled: bool,
    pub multicast_group: Ipv4Addr,
    pub multicast_port: u16,
    /// The local interface announcements leave by and the group is joined on; unspecified
    /// (`0.0.0.0`): the kernel's choice.
    pub multicast_interface: Ipv4Addr,
    pub service_timeout: Duration,
    pub health_check_enabled: bool,
    pub broadcast_interval: Duration,
    /// A DNS name a node without an address resolves to find the orchestrator: an SRV name
    /// (`_cluster._tcp.mcpt-orchestrator.ns.svc.cluster.local`) or an A/AAAA name (the port is
    /// then `orchestrator.port`).
    pub dns_name: Option<String>,
    /// The DNS server to ask (`host:port`); `None`: the system's resolver configuration.
    pub dns_server: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSettings {
    pub allocation_timeout: Duration,
    pub cleanup_interval: Duration,
    pub monitoring_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    pub check_interval: Duration,
    pub alert_threshold: u32,
    pub alert_thresholds: AlertThresholds,
    /// Custom checks a node runs beside its built-in ones.
    pub checks: Vec<CheckSpec>,
}

/// A custom health check: an HTTP GET whose status must match, a TCP connect, a command, or a
/// series read from an application's Prometheus `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub name: String,
    pub target: CheckTarget,
    pub timeout: Duration,
    /// How often it runs; `None`: every `check_interval`. Checks run in the monitor's rounds,
    /// so an interval shorter than `check_interval` runs every round.
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckTarget {
    /// Passes when the answer's status is `expect_status`, or any 2xx/3xx when `None`.
    Http {
        url: url::Url,
        expect_status: Option<u16>,
    },
    /// Passes when a TCP connection to `address` (`host:port`) opens.
    Tcp { address: String },
    /// Passes when `program` run with `args` (no shell; split like a POSIX shell would,
    /// quotes honoured) exits 0 within the timeout.
    Command { program: String, args: Vec<String> },
    /// Reads the one sample of `series` in what `url` serves (the Prometheus text format) and
    /// judges its value by `levels`, as a custom metric is judged; unreachable, unreadable, no
    /// such sample or several are critical.
    Prometheus {
        url: url::Url,
        series: crate::exposition::Selector,
        levels: MetricLevels,
    },
}

/// How a metric's value is judged and shown.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricLevels {
    /// Shown after the value; at most 32 characters.
    pub unit: Option<String>,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// `true`: at or above a threshold is bad; `false`: at or below.
    pub higher_is_worse: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertThresholds {
    pub cpu_warning: f64,
    pub cpu_critical: f64,
    pub memory_warning: f64,
    pub memory_critical: f64,
    pub disk_warning: f64,
    pub disk_critical: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommunicationSettings {
    pub heartbeat_interval: Duration,
    pub message_timeout: Duration,
    pub lease_timeout: Duration,
    pub death_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration: {0}")]
    Source(#[from] config::ConfigError),
    #[error("invalid configuration:\n{0}")]
    Invalid(FieldErrors),
    #[error("bad override {0:?}: expected KEY=VALUE, e.g. load_generation.workers=2")]
    BadOverride(String),
}

/// The spec's short environment names whose key does not follow from the name.
const ENV_ALIASES: &[(&str, &str)] = &[
    (
        "MCP_RESOURCE_MONITOR_INTERVAL",
        "resource_management.monitoring_interval",
    ),
    ("MCP_ORCHESTRATOR_LOG_LEVEL", "orchestrator.log_level"),
];

/// Environment prefixes (after `MCP_`) and the section each names; the short forms are the
/// spec's (`MCP_DISCOVERY_*`, `MCP_RESOURCE_*`, `MCP_COMM_*`, `MCP_HEALTH_*`).
const ENV_SECTIONS: &[(&str, &str)] = &[
    ("ORCHESTRATOR_", "orchestrator"),
    ("LOAD_GENERATION_", "load_generation"),
    ("SERVICE_DISCOVERY_", "service_discovery"),
    ("DISCOVERY_", "service_discovery"),
    ("RESOURCE_MANAGEMENT_", "resource_management"),
    ("RESOURCE_", "resource_management"),
    ("HEALTH_MONITORING_", "health_monitoring"),
    ("HEALTH_", "health_monitoring"),
    ("COMMUNICATION_", "communication"),
    ("COMM_", "communication"),
    ("API_", "api"),
    ("CLUSTER_", "cluster"),
    ("NODE_", "node"),
    ("DISTRIBUTION_", "distribution"),
    ("MCP_", "mcp"),
];

/// Keys that hold a list: comma-separated in the environment and in `--set`.
const LIST_KEYS: &[&str] = &["load_generation.allowed_targets", "node.capabilities"];

/// The key path an `MCP_*` variable sets, or `None` for variables of other tools that share
/// the prefix (no known section).
pub fn env_key(var: &str) -> Option<String> {
    if let Some((_, key)) = ENV_ALIASES.iter().find(|(v, _)| *v == var) {
        return Some(key.to_string());
    }
    let rest = var.strip_prefix("MCP_")?;
    let (prefix, section) = ENV_SECTIONS.iter().find(|(p, _)| rest.starts_with(p))?;
    let key = rest[prefix.len()..].to_ascii_lowercase();
    let key = match key.strip_prefix("alert_thresholds_") {
        Some(inner) => format!("alert_thresholds.{inner}"),
        None => key,
    };
    Some(format!("{section}.{key}"))
}

impl Settings {
    /// The embedded defaults alone.
    pub fn defaults() -> Settings {
        Settings::load(None, &HashMap::new(), &[]).expect("embedded defaults are valid")
    }

    /// The defaults with the orchestrator and the node on 127.0.0.1, each on a free port: what
    /// a program embedding the library runs on one machine.
    pub fn loopback() -> Settings {
        Settings::defaults().on_loopback()
    }

    /// The defaults and this process's `MCP_*` environment, read as `mcpt` reads it (e.g.
    /// `MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_CRITICAL=98`); a bad value is an error
    /// naming its variable.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::load(None, &std::env::vars().collect(), &[])
    }

    /// These settings with the orchestrator and the node on 127.0.0.1, each on a free port.
    pub fn on_loopback(mut self) -> Settings {
        self.orchestrator.host = "127.0.0.1".into();
        self.orchestrator.port = 0;
        self.node.host = "127.0.0.1".into();
        self.node.port = 0;
        self
    }

    /// Merges defaults, `file`, the `MCP_*` entries of `env` and `overrides` (`key=value`).
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &[String],
    ) -> Result<Settings, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_YAML, FileFormat::Yaml));
        // Where each key not left at its default came from, to name it in errors.
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            let source = || File::from(path).format(FileFormat::Yaml).required(true);
            let given: Value = Config::builder()
                .add_source(source())
                .build()?
                .try_deserialize()?;
            let mut keys = Vec::new();
            leaf_keys(&given, "", &mut keys);
            for key in keys {
                origin.insert(key, format!("from {}", path.display()));
            }
            builder = builder.add_source(source());
        }
        let mut vars: Vec<(&String, &String)> = env.iter().collect();
        vars.sort();
        for (var, value) in vars {
            if let Some(key) = env_key(var) {
                builder = set(builder, &key, value)?;
                origin.insert(key, format!("from environment variable {var}"));
            }
        }
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| SettingsError::BadOverride(o.clone()))?;
            let key = key.trim().to_string();
            builder = set(builder, &key, value.trim())?;
            origin.insert(key, format!("from --set {o}"));
        }
        let mut doc: Value = builder.build()?.try_deserialize()?;
        derive_timeouts(&mut doc, &mut origin);
        Settings::validate(&doc, &origin).map_err(|mut errors| {
            for e in &mut errors.0 {
                if let Some(src) = origin.get(&e.field)
                    && !e.message.contains(src.as_str())
                {
                    e.message = format!("{} ({src})", e.message);
                }
            }
            SettingsError::Invalid(errors)
        })
    }

    /// Validates a merged document.
    pub fn from_value(doc: &Value) -> Result<Settings, FieldErrors> {
        Settings::validate(doc, &BTreeMap::new())
    }

    /// Validates a merged document; `origin` says where keys not at their default came from.
    fn validate(doc: &Value, origin: &BTreeMap<String, String>) -> Result<Settings, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let mut top = Obj::new(doc, "", e).ok_or_else(|| e.clone())?;

        let orchestrator = top
            .child("orchestrator", e)
            .map(|o| read::orchestrator(o, e));
        let load_generation = top
            .child("load_generation", e)
            .map(|o| read::load_generation(o, e));
        let service_discovery = top
            .child("service_discovery", e)
            .map(|o| read::service_discovery(o, e));
        let resource_management = top
            .child("resource_management", e)
            .map(|o| read::resource_management(o, e));
        let health_monitoring = top
            .child("health_monitoring", e)
            .map(|o| read::health_monitoring(o, origin, e));
        let communication = top
            .child("communication", e)
            .map(|o| read::communication(o, origin, e));
        let api = top.child("api", e).map(|o| read::api(o, e));
        let cluster = top.child("cluster", e).map(|o| read::cluster(o, e));
        let node = top.child("node", e).map(|o| read::node(o, e));
        let distribution = top
            .child("distribution", e)
            .map(|o| read::distribution(o, e));
        let mcp = top.child("mcp", e).map(|o| read::mcp(o, e));
        top.finish(e);

        match (
            orchestrator,
            load_generation,
            service_discovery,
            resource_management,
            health_monitoring.flatten(),
            communication,
            (api, cluster, node, distribution, mcp),
        ) {
            (
                Some(o),
                Some(l),
                Some(d),
                Some(r),
                Some(h),
                Some(c),
                (Some(a), Some(k), Some(n), Some(dist), Some(m)),
            ) if errors.is_empty() => {
                let l = LoadSettings {
                    task_timeout: o.task_timeout,
                    ..l
                };
                Ok(Settings {
                    orchestrator: o,
                    load_generation: l,
                    service_discovery: d,
                    resource_management: r,
                    health_monitoring: h,
                    communication: c,
                    api: a,
                    cluster: k,
                    node: n,
                    distribution: dist,
                    mcp: m,
                })
            }
            _ => Err(errors),
        }
    }
}

/// Every leaf's key path in `v` (`communication.heartbeat_interval`).
fn leaf_keys(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                leaf_keys(child, &crate::validate::join(path, k), out);
            }
        }
        _ if !path.is_empty() => out.push(path.to_string()),
        _ => {}
    }
}

/// When `communication.heartbeat_interval` was given (in the file, the environment or a flag)
/// and neither the lease nor the death timeout was, they follow from it as the defaults do:
/// lease 3 heartbeats, death 5. (The spec's environment block sets the heartbeat alone.) Any
/// other combination is taken as given and checked.
fn derive_timeouts(doc: &mut Value, origin: &mut BTreeMap<String, String>) {
    const HEARTBEAT: &str = "communication.heartbeat_interval";
    let Some(from) = origin.get(HEARTBEAT).cloned() else {
        return;
    };
    if ["lease_timeout", "death_timeout"]
        .iter()
        .any(|k| origin.contains_key(&format!("communication.{k}")))
    {
        return;
    }
    let Some(comm) = doc.get_mut("communication").and_then(Value::as_object_mut) else {
        return;
    };
    let mut ignored = FieldErrors::default();
    let Some(heartbeat) = comm
        .get("heartbeat_interval")
        .and_then(|v| Duration::from_value(v, HEARTBEAT, &mut ignored))
    else {
        return; // reported by validation
    };
    for (key, times) in [("lease_timeout", 3), ("death_timeout", 5)] {
        let path = format!("communication.{key}");
        let Some(derived) = heartbeat.checked_mul(times) else {
            continue;
        };
        comm.insert(key.to_string(), Value::from(derived.as_secs_f64()));
        origin.insert(
            path,
            format!("{times} x heartbeat_interval, which is {from}"),
        );
    }
}

fn set(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    key: &str,
    value: &str,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, SettingsError> {
    Ok(if LIST_KEYS.contains(&key) {
        let items: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        builder.set_override(key, items)?
    } else {
        builder.set_override(key, value)?
    })
}

#[cfg(test)]
mod tests;
