//! One reader per section of the settings document: each takes its section's object, reads and
//! checks every key (pushing each problem to `e`), and returns the section with defaults filled in.
//! [`Settings::validate`](super::Settings) puts them together.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::allowlist::{Allowlist, TargetPattern};
use crate::validate::{FieldErrors, FromValue, Obj};

/// `orchestrator`: the orchestrator process.
pub(super) fn orchestrator(mut o: Obj<'_>, e: &mut FieldErrors) -> OrchestratorSettings {
    let data_dir: String = o.or("data_dir", "./data".into(), e);
    if data_dir.trim().is_empty() {
        // An empty path would put the database in whatever folder the process starts in.
        e.push(
            o.key_path("data_dir"),
            "must not be empty (a folder, e.g. ./data)",
        );
    }
    let s = OrchestratorSettings {
        host: o.or("host", "localhost".into(), e),
        port: o.or("port", 8080, e),
        max_concurrent_executions: positive(&mut o, "max_concurrent_executions", 10, e),
        task_timeout: o.or("task_timeout", Duration::from_secs(3600), e),
        log_level: log_level(&mut o, e),
        data_dir: PathBuf::from(data_dir),
    };
    o.finish(e);
    s
}

/// `load_generation`: what a node's workers may send, and how much.
pub(super) fn load_generation(mut o: Obj<'_>, e: &mut FieldErrors) -> LoadSettings {
    let patterns: Vec<String> = o.or("allowed_targets", Vec::new(), e);
    let mut parsed = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        match p.parse::<TargetPattern>() {
            Ok(p) => parsed.push(p),
            Err(why) => e.push(format!("{}[{i}]", o.key_path("allowed_targets")), why),
        }
    }
    let workers: u32 = o.or("workers", 0, e);
    let max_rps: f64 = o.or("max_rps", 1_000_000.0, e);
    if !(max_rps.is_finite() && max_rps > 0.0) {
        e.push(
            o.key_path("max_rps"),
            format!("must be a number greater than 0, got {max_rps}"),
        );
    }
    let s = LoadSettings {
        default_timeout: nonzero(&mut o, "default_timeout", 300, e),
        max_concurrent_requests: positive(&mut o, "max_concurrent_requests", 1000, e),
        connection_pool_size: positive(&mut o, "connection_pool_size", 100, e),
        allowed_targets: Allowlist::new(parsed),
        drain_timeout: o.or("drain_timeout", Duration::from_secs(10), e),
        workers: (workers > 0).then_some(workers as usize),
        task_timeout: Duration::from_secs(3600),
        max_rps,
    };
    o.finish(e);
    s
}

/// `service_discovery`: multicast and DNS.
pub(super) fn service_discovery(mut o: Obj<'_>, e: &mut FieldErrors) -> DiscoverySettings {
    let group: String = o.or("multicast_group", "239.255.255.250".into(), e);
    let multicast_group = match group.parse::<Ipv4Addr>() {
        Ok(ip) if ip.is_multicast() => ip,
        _ => {
            e.push(
                o.key_path("multicast_group"),
                format!("expected an IPv4 multicast address (224.0.0.0/4), got {group:?}"),
            );
            Ipv4Addr::new(239, 255, 255, 250)
        }
    };
    let iface: String = o.or("multicast_interface", "0.0.0.0".into(), e);
    let multicast_interface = iface.parse::<Ipv4Addr>().unwrap_or_else(|_| {
        e.push(
            o.key_path("multicast_interface"),
            format!("expected an IPv4 address of a local interface, got {iface:?}"),
        );
        Ipv4Addr::UNSPECIFIED
    });
    let dns_name: String = o.or("dns_name", String::new(), e);
    let server: String = o.or("dns_server", String::new(), e);
    let dns_server = if server.is_empty() {
        None
    } else {
        server.parse().map(Some).unwrap_or_else(|_| {
            e.push(
                o.key_path("dns_server"),
                format!("expected an IP address and port, e.g. 10.96.0.10:53, got {server:?}"),
            );
            None
        })
    };
    let s = DiscoverySettings {
        multicast_enabled: o.or("multicast_enabled", true, e),
        multicast_group,
        multicast_port: o.or("multicast_port", 1900, e),
        multicast_interface,
        service_timeout: nonzero(&mut o, "service_timeout", 90, e),
        health_check_enabled: o.or("health_check_enabled", true, e),
        broadcast_interval: nonzero(&mut o, "broadcast_interval", 30, e),
        dns_name: (!dns_name.trim().is_empty()).then(|| dns_name.trim().to_string()),
        dns_server,
    };
    o.finish(e);
    s
}

/// `resource_management`: the allocator's timers.
pub(super) fn resource_management(mut o: Obj<'_>, e: &mut FieldErrors) -> ResourceSettings {
    let s = ResourceSettings {
        allocation_timeout: nonzero(&mut o, "allocation_timeout", 60, e),
        cleanup_interval: nonzero(&mut o, "cleanup_interval", 300, e),
        monitoring_interval: nonzero(&mut o, "monitoring_interval", 30, e),
    };
    o.finish(e);
    s
}

/// `health_monitoring`: sampling, checks and alert levels (None when the levels are unreadable).
/// `origin`: the keys not at their default, to blame the one set when two levels conflict.
pub(super) fn health_monitoring(
    mut o: Obj<'_>,
    origin: &BTreeMap<String, String>,
    e: &mut FieldErrors,
) -> Option<HealthSettings> {
    let alert_thresholds = o.child("alert_thresholds", e).map(|mut t| {
        let mut pct = |key: &'static str, default: f64, e: &mut FieldErrors| {
            let v: f64 = t.or(key, default, e);
            // Above 100 a level is never reached: the way to switch it off (a
            // load generator's CPU at 100% is its job, not a fault).
            if !(v.is_finite() && v >= 0.0) {
                e.push(
                    t.key_path(key),
                    format!("must be a percentage (0 or more; above 100: never), got {v}"),
                );
            }
            v
        };
        let a = AlertThresholds {
            cpu_warning: pct("cpu_warning", 80.0, e),
            cpu_critical: pct("cpu_critical", 95.0, e),
            memory_warning: pct("memory_warning", 85.0, e),
            memory_critical: pct("memory_critical", 95.0, e),
            disk_warning: pct("disk_warning", 80.0, e),
            disk_critical: pct("disk_critical", 95.0, e),
        };
        for (name, warn, crit) in [
            ("cpu", a.cpu_warning, a.cpu_critical),
            ("memory", a.memory_warning, a.memory_critical),
            ("disk", a.disk_warning, a.disk_critical),
        ] {
            let key = |level: &str| format!("{}.{name}_{level}", t.path());
            if warn > crit {
                // The critical level when only it was set (the warning left at its default).
                if origin.contains_key(&key("critical")) && !origin.contains_key(&key("warning")) {
                    e.push(
                        key("critical"),
                        format!("must not be below {name}_warning ({crit} < {warn})"),
                    );
                } else {
                    e.push(
                        key("warning"),
                        format!("must not exceed {name}_critical ({warn} > {crit})"),
                    );
                }
            }
        }
        t.finish(e);
        a
    });
    let checks: Vec<CheckSpec> = o.or("checks", Vec::new(), e);
    distinct_prometheus_names(&checks, &o.key_path("checks"), e);
    let s = alert_thresholds.map(|alert_thresholds| HealthSettings {
        check_interval: nonzero(&mut o, "check_interval", 30, e),
        alert_threshold: positive(&mut o, "alert_threshold", 3, e),
        alert_thresholds,
        checks,
    });
    o.finish(e);
    s
}

/// A `prometheus` check's name is the name of its gauge (`mcp_node_custom_metric{name}`): two
/// with one name would be one gauge for two values. (Other checks of one name stay apart by
/// their ids, `http:api` and `http:api#2`.)
fn distinct_prometheus_names(checks: &[CheckSpec], path: &str, e: &mut FieldErrors) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in checks.iter().enumerate() {
        if !matches!(c.target, CheckTarget::Prometheus { .. }) {
            continue;
        }
        if let Some(&first) = seen.get(c.name.as_str()) {
            e.push(
                format!("{path}[{i}].name"),
                format!(
                    "{:?} is already the name of prometheus check {path}[{first}]: each needs its own",
                    c.name
                ),
            );
        } else {
            seen.insert(&c.name, i);
        }
    }
}

/// `communication`: heartbeats and the timeouts that follow from them.
pub(super) fn communication(
    mut o: Obj<'_>,
    origin: &BTreeMap<String, String>,
    e: &mut FieldErrors,
) -> CommunicationSettings {
    let s = CommunicationSettings {
        heartbeat_interval: nonzero(&mut o, "heartbeat_interval", 1, e),
        message_timeout: nonzero(&mut o, "message_timeout", 60, e),
        lease_timeout: nonzero(&mut o, "lease_timeout", 3, e),
        death_timeout: nonzero(&mut o, "death_timeout", 5, e),
    };
    if s.death_timeout < s.lease_timeout + 2 * s.heartbeat_interval {
        let src = |key: &str| {
            origin
                .get(&o.key_path(key))
                .map_or("the default", String::as_str)
                .to_string()
        };
        e.push(
            o.key_path("death_timeout"),
            format!(
                "must be at least lease_timeout + 2 * heartbeat_interval ({:?} < {:?} + 2 * {:?}), \
                 so a node pauses before its share is given away. heartbeat_interval {:?}: {}; \
                 lease_timeout {:?}: {}; death_timeout {:?}: {}. Set heartbeat_interval alone \
                 (lease_timeout and death_timeout then follow as 3x and 5x) or all three",
                s.death_timeout,
                s.lease_timeout,
                s.heartbeat_interval,
                s.heartbeat_interval,
                src("heartbeat_interval"),
                s.lease_timeout,
                src("lease_timeout"),
                s.death_timeout,
                src("death_timeout"),
            ),
        );
    }
    o.finish(e);
    s
}

/// `api`: the REST API's token and limits.
pub(super) fn api(mut o: Obj<'_>, e: &mut FieldErrors) -> ApiSettings {
    let token: String = o.or("token", String::new(), e);
    let s = ApiSettings {
        token: (!token.is_empty()).then_some(token),
        max_body_size: positive(&mut o, "max_body_size", 1 << 20, e),
        event_buffer: positive(&mut o, "event_buffer", 256, e),
        header_timeout: nonzero(&mut o, "header_timeout", 5, e),
        body_timeout: nonzero(&mut o, "body_timeout", 10, e),
        max_pending_bodies: positive(&mut o, "max_pending_bodies", 256, e),
        max_connections: positive(&mut o, "max_connections", 10_000, e),
    };
    o.finish(e);
    s
}

/// `cluster`: the cluster link's secret and limits.
pub(super) fn cluster(mut o: Obj<'_>, e: &mut FieldErrors) -> ClusterSettings {
    let secret: String = o.or("secret", String::new(), e);
    let s = ClusterSettings {
        secret: (!secret.is_empty()).then_some(secret),
        max_frame_size: positive(&mut o, "max_frame_size", 1 << 20, e),
        outbox_capacity: positive(&mut o, "outbox_capacity", 4096, e),
    };
    o.finish(e);
    s
}

/// `node`: a load-generator node.
pub(super) fn node(mut o: Obj<'_>, e: &mut FieldErrors) -> NodeSettings {
    let id: String = o.or("id", String::new(), e);
    let orchestrator: String = o.or("orchestrator", String::new(), e);
    let orchestrator = if orchestrator.is_empty() {
        None
    } else {
        match url::Url::parse(&orchestrator) {
            Ok(u) if matches!(u.scheme(), "http" | "ws") && u.host().is_some() => Some(u),
            _ => {
                e.push(
                    o.key_path("orchestrator"),
                    format!(
                        "expected the orchestrator's address, e.g. http://127.0.0.1:8080, got {orchestrator:?}"
                    ),
                );
                None
            }
        }
    };
    let s = NodeSettings {
        host: o.or("host", "127.0.0.1".into(), e),
        port: o.or("port", 8090, e),
        id: (!id.is_empty()).then_some(id),
        orchestrator,
        location: o.or("location", String::new(), e),
        capabilities: o.or("capabilities", Vec::new(), e),
        network_mbps: o.or("network_mbps", 1000.0, e),
        resources: o.or("resources", BTreeMap::new(), e),
    };
    if s.network_mbps < 0.0 {
        e.push(o.key_path("network_mbps"), "must not be negative");
    }
    for (name, amount) in &s.resources {
        if *amount < 0.0 {
            e.push(
                format!("{}.{name}", o.key_path("resources")),
                "must not be negative",
            );
        }
    }
    o.finish(e);
    s
}

/// `distribution`: the placement strategy and its weights.
pub(super) fn distribution(mut o: Obj<'_>, e: &mut FieldErrors) -> DistributionSettings {
    let name: crate::validate::Keyword = o.or(
        "default_strategy",
        crate::validate::Keyword("least_loaded".into()),
        e,
    );
    let default_strategy = name
        .parse()
        .unwrap_or_else(|why: crate::placement::UnknownStrategy| {
            e.push(o.key_path("default_strategy"), why.to_string());
            crate::placement::Strategy::LeastLoaded
        });
    let mut weights = crate::placement::Weights::default();
    if let Some(mut w) = o.child("weights", e) {
        for (key, field) in [
            ("capacity", &mut weights.capacity),
            ("load", &mut weights.load),
            ("health", &mut weights.health),
            ("locality", &mut weights.locality),
            ("performance", &mut weights.performance),
        ] {
            let v: f64 = w.or(key, *field, e);
            if !(v.is_finite() && v >= 0.0) {
                e.push(
                    w.key_path(key),
                    format!("must be a non-negative number, got {v}"),
                );
            }
            *field = v;
        }
        w.finish(e);
    }
    o.finish(e);
    DistributionSettings {
        default_strategy,
        weights,
    }
}

/// `mcp`: the MCP server's guardrails.
pub(super) fn mcp(mut o: Obj<'_>, e: &mut FieldErrors) -> McpSettings {
    let max_rps: f64 = o.or("max_rps", 1000.0, e);
    if !(max_rps.is_finite() && max_rps > 0.0) {
        e.push(
            o.key_path("max_rps"),
            format!("must be a number greater than 0, got {max_rps}"),
        );
    }
    let s = McpSettings {
        max_rps,
        max_duration: nonzero(&mut o, "max_duration", 300, e),
        max_concurrent_executions: positive(&mut o, "max_concurrent_executions", 2, e),
    };
    o.finish(e);
    s
}

/// A whole number that must be at least 1.
fn positive<T: FromValue + From<u8> + PartialOrd + Copy>(
    o: &mut Obj<'_>,
    key: &'static str,
    default: T,
    e: &mut FieldErrors,
) -> T {
    let v = o.or(key, default, e);
    if v < T::from(1) {
        e.push(o.key_path(key), "must be at least 1");
        return default;
    }
    v
}

/// A duration that must be greater than zero.
fn nonzero(o: &mut Obj<'_>, key: &'static str, default_secs: u64, e: &mut FieldErrors) -> Duration {
    let v = o.or(key, Duration::from_secs(default_secs), e);
    if v.is_zero() {
        e.push(o.key_path(key), "must be greater than 0");
    }
    v
}

fn log_level(o: &mut Obj<'_>, e: &mut FieldErrors) -> tracing::Level {
    let s: String = o.or("log_level", "INFO".into(), e);
    let normal = match s.to_ascii_uppercase().as_str() {
        "WARNING" => "WARN".to_string(),
        "CRITICAL" => "ERROR".to_string(),
        other => other.to_string(),
    };
    normal.parse().unwrap_or_else(|_| {
        e.push(
            o.key_path("log_level"),
            format!("expected TRACE, DEBUG, INFO, WARN or ERROR, got {s:?}"),
        );
        tracing::Level::INFO
    })
}

impl FromValue for CheckSpec {
    fn from_value(v: &Value, path: &str, e: &mut FieldErrors) -> Option<Self> {
        let mut o = Obj::new(v, path, e)?;
        let name: Option<String> = o.req("name", e);
        let kind: Option<crate::validate::Keyword> = o.req("type", e);
        let timeout = o.or("timeout", Duration::from_secs(5), e);
        if timeout.is_zero() {
            e.push(o.key_path("timeout"), "must be greater than 0");
        }
        let interval: Option<Duration> = o.opt("interval", e);
        if interval.is_some_and(|i| i.is_zero()) {
            e.push(o.key_path("interval"), "must be greater than 0");
        }
        let target = match kind.as_deref() {
            Some("http") => {
                let url = http_url(&mut o, e);
                let expect_status: Option<u16> = o.opt("expect_status", e);
                if expect_status.is_some_and(|s| !(100..=599).contains(&s)) {
                    e.push(
                        o.key_path("expect_status"),
                        "must be an HTTP status (100..=599)",
                    );
                }
                url.map(|url| CheckTarget::Http { url, expect_status })
            }
            Some("tcp") => o.req::<String>("address", e).and_then(|address| {
                if address
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                {
                    Some(CheckTarget::Tcp { address })
                } else {
                    e.push(
                        o.key_path("address"),
                        format!("expected host:port, got {address:?}"),
                    );
                    None
                }
            }),
            Some("command") => command_target(&mut o, e),
            Some("prometheus") => prometheus_target(&mut o, name.as_deref(), e),
            Some(other) => {
                e.push(
                    o.key_path("type"),
                    format!(
                        "expected \"http\", \"tcp\", \"command\" or \"prometheus\", got {other:?}"
                    ),
                );
                None
            }
            None => None,
        };
        o.finish(e);
        Some(CheckSpec {
            name: name?,
            target: target?,
            timeout,
            interval,
        })
    }
}

/// A command check's `run`: a program and its arguments, split as a POSIX shell would.
fn command_target(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<CheckTarget> {
    let run: String = o.req("run", e)?;
    match shlex::split(&run).filter(|w| !w.is_empty()) {
        Some(mut words) => {
            let program = words.remove(0);
            Some(CheckTarget::Command {
                program,
                args: words,
            })
        }
        None => {
            e.push(
                o.key_path("run"),
                format!("expected a program and its arguments, got {run:?}"),
            );
            None
        }
    }
}

/// A check's `url`: http or https.
fn http_url(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<url::Url> {
    let u: String = o.req("url", e)?;
    match url::Url::parse(&u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        _ => {
            e.push(
                o.key_path("url"),
                format!("expected an http(s) URL, got {u:?}"),
            );
            None
        }
    }
}

/// A prometheus check: `url`, `series` and the levels of a custom metric. Its `name` joins
/// the pushed metrics' names (`mcp_node_custom_metric{name}`), so it follows their rule.
fn prometheus_target(
    o: &mut Obj<'_>,
    name: Option<&str>,
    e: &mut FieldErrors,
) -> Option<CheckTarget> {
    if let Some(n) = name
        && !crate::validate::metric_name(n)
    {
        e.push(
            o.key_path("name"),
            format!("expected [a-z_][a-z0-9_]{{0,63}} (a prometheus check's value is a custom metric), got {n:?}"),
        );
    }
    let url = http_url(o, e);
    let series = o.req::<String>("series", e).and_then(|s| {
        s.parse::<crate::exposition::Selector>()
            .map_err(|why| {
                e.push(
                    o.key_path("series"),
                    format!("expected a metric name with optional label matchers (app_queue_depth{{queue=\"orders\"}}): {why}"),
                )
            })
            .ok()
    });
    let levels = metric_levels(o, e);
    Some(CheckTarget::Prometheus {
        url: url?,
        series: series?,
        levels,
    })
}

/// `unit`, `warning`, `critical` and `higher_is_worse` (default true) of a metric.
fn metric_levels(o: &mut Obj<'_>, e: &mut FieldErrors) -> MetricLevels {
    let unit: Option<String> = o.opt("unit", e);
    if unit.as_ref().is_some_and(|u| u.chars().count() > 32) {
        e.push(o.key_path("unit"), "must be at most 32 characters");
    }
    let warning: Option<f64> = o.opt("warning", e);
    let critical: Option<f64> = o.opt("critical", e);
    let higher_is_worse = o.or("higher_is_worse", true, e);
    for (key, x) in [("warning", warning), ("critical", critical)] {
        if x.is_some_and(|x| !x.is_finite()) {
            e.push(o.key_path(key), "must be a finite number");
        }
    }
    if let (Some(w), Some(c)) = (warning, critical)
        && let Some(why) = crate::validate::critical_after_warning(w, c, higher_is_worse)
    {
        e.push(o.key_path("critical"), why);
    }
    MetricLevels {
        unit,
        warning,
        critical,
        higher_is_worse,
    }
}
