//! Node health as plain data (DESIGN §3): a [`Sample`] of the machine's metrics, the built-in
//! checks that compare it with the configured thresholds ([`evaluate`]), the health score
//! ([`score`]), the capacity a node offers ([`capacity`]) and the [`HealthReport`] that carries
//! them to the orchestrator. The consecutive-failure alert rule is in [`alerts`], the cluster
//! aggregation in [`cluster`]; the two impure parts, reading the machine ([`sample`]) and running
//! custom checks ([`checks`]), are beside them and used only by the `NodeMonitor` actor.
//!
//! Every type here travels over the cluster link encoded with postcard: plain structs and
//! enums, no untagged or flattened serde.

pub mod alerts;
pub mod checks;
pub mod cluster;
pub mod code;
pub mod custom;
pub mod prometheus;
pub mod sample;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::settings::{AlertThresholds, NodeSettings};

pub use alerts::{Alert, AlertChange, AlertTracker};
pub use cluster::{
    ClusterHealth, ClusterState, HealthChange, NodeEntry, NodeHealthDetail, NodeHealthView,
    aggregate,
};

/// One reading of a machine's metrics. Percentages are 0..=100; byte rates are averages over
/// the time since the previous sample.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Use of all cores together.
    pub cpu_percent: f64,
    pub cpu_cores: u32,
    pub memory_used: u64,
    pub memory_total: u64,
    pub memory_percent: f64,
    pub disk_used: u64,
    pub disk_total: u64,
    pub disk_percent: f64,
    pub net_rx_bytes_per_s: f64,
    pub net_tx_bytes_per_s: f64,
    pub load_average_1m: f64,
}

/// `used` as a percentage of `total`, 0 when `total` is 0, at most 100.
pub fn percent(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (used as f64 / total as f64 * 100.0).clamp(0.0, 100.0)
    }
}

/// The state of a check, a node or the cluster, best first (so `max` is the worst). The
/// cluster calls a node "failed" when it is critical or unreachable.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = HealthStatus)]
pub enum Status {
    #[default]
    Healthy,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// What ran a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// CPU, memory or disk against the thresholds (or `system`, when metrics are unreadable).
    Builtin,
    Http,
    Tcp,
    Command,
    /// A check registered from code ([`code::CodeCheck`], through the library's `NodeMonitor`).
    Code,
    /// A custom metric pushed to the node (`POST /health/metrics` or `SetCustomMetric`).
    Metric,
    /// A series read from an application's `/metrics` (a `prometheus` check), judged as a
    /// custom metric.
    Prometheus,
}

/// The outcome of one check in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// Stable across rounds: `cpu`, `memory`, `disk`, `http:<name>`, `tcp:<name>`,
    /// `command:<name>`, `metric:<name>`, `prometheus:<name>`.
    pub check_id: String,
    pub name: String,
    pub kind: CheckKind,
    pub status: Status,
    pub message: String,
    /// The measured figure: a percentage for the built-ins, the response time in
    /// milliseconds for a custom check that got an answer, the latest value of a metric (a
    /// pushed one or a prometheus check's series).
    pub value: Option<f64>,
    /// What `value` counts: `%`, `ms`, or a metric's own unit (`None` when it has none).
    pub unit: Option<String>,
}

impl CheckResult {
    pub fn is_healthy(&self) -> bool {
        self.status == Status::Healthy
    }

    /// The name of the custom metric this result is, if it is one (a pushed metric or a
    /// prometheus check): its id after the kind, so that two prometheus checks of one name
    /// (`prometheus:q`, `prometheus:q#2`) stay apart.
    pub fn metric_name(&self) -> Option<&str> {
        match self.kind {
            CheckKind::Metric | CheckKind::Prometheus => self
                .check_id
                .split_once(':')
                .map_or(Some(self.name.as_str()), |(_, n)| Some(n)),
            _ => None,
        }
    }
}

/// `value` against a warning and a critical threshold: at or past critical is critical, at
/// or past warning is warning.
pub fn level(value: f64, warning: f64, critical: f64) -> Status {
    if value >= critical {
        Status::Critical
    } else if value >= warning {
        Status::Warning
    } else {
        Status::Healthy
    }
}

/// The built-in metrics: id, display name, value, warning, critical.
fn metrics(
    sample: &Sample,
    t: &AlertThresholds,
) -> [(&'static str, &'static str, f64, f64, f64); 3] {
    [
        (
            "cpu",
            "CPU",
            sample.cpu_percent,
            t.cpu_warning,
            t.cpu_critical,
        ),
        (
            "memory",
            "memory",
            sample.memory_percent,
            t.memory_warning,
            t.memory_critical,
        ),
        (
            "disk",
            "disk",
            sample.disk_percent,
            t.disk_warning,
            t.disk_critical,
        ),
    ]
}

/// The built-in checks of a sample: CPU, memory and disk use against their thresholds.
pub fn evaluate(sample: &Sample, thresholds: &AlertThresholds) -> Vec<CheckResult> {
    metrics(sample, thresholds)
        .into_iter()
        .map(|(id, name, value, warning, critical)| {
            let status = level(value, warning, critical);
            let message = match status {
                Status::Healthy => format!("{name} use {value:.1}% (warning at {warning}%)"),
                Status::Warning => {
                    format!("{name} use {value:.1}% is at or past the warning threshold {warning}%")
                }
                Status::Critical => format!(
                    "{name} use {value:.1}% is at or past the critical threshold {critical}%"
                ),
            };
            CheckResult {
                check_id: id.into(),
                name: id.into(),
                kind: CheckKind::Builtin,
                status,
                message,
                value: Some(value),
                unit: Some("%".into()),
            }
        })
        .collect()
}

/// The worst status of a set of checks (healthy when there are none).
pub fn worst(checks: &[CheckResult]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Healthy)
}

/// Penalty of a built-in metric just at its warning threshold.
pub const WARNING_PENALTY: f64 = 10.0;
/// Penalty of a built-in metric just below its critical threshold.
pub const NEAR_CRITICAL_PENALTY: f64 = 30.0;
/// Penalty of a built-in metric at or past its critical threshold.
pub const CRITICAL_PENALTY: f64 = 50.0;
/// Penalty of a custom check that failed (critical).
pub const FAILED_CHECK_PENALTY: f64 = 25.0;
/// Penalty of a custom check that is warning.
pub const WARNING_CHECK_PENALTY: f64 = 10.0;

/// The penalty of one metric: 0 below warning; from [`WARNING_PENALTY`] at warning rising
/// linearly to [`NEAR_CRITICAL_PENALTY`] as the value nears critical; [`CRITICAL_PENALTY`] at
/// or past critical. Never falls as the value rises.
pub fn metric_penalty(value: f64, warning: f64, critical: f64) -> f64 {
    match level(value, warning, critical) {
        Status::Healthy => 0.0,
        Status::Critical => CRITICAL_PENALTY,
        Status::Warning => {
            let span = critical - warning;
            let past = if span > 0.0 {
                ((value - warning) / span).clamp(0.0, 1.0)
            } else {
                1.0
            };
            WARNING_PENALTY + (NEAR_CRITICAL_PENALTY - WARNING_PENALTY) * past
        }
    }
}

/// The health score, 0..=100: 100 minus the [`metric_penalty`] of CPU, memory and disk
/// (computed from the sample, so the built-in results in `checks` are not counted twice),
/// minus [`FAILED_CHECK_PENALTY`] per failed and [`WARNING_CHECK_PENALTY`] per warning
/// custom check, floored at 0. Worse metrics or more failing checks never raise it.
pub fn score(checks: &[CheckResult], sample: &Sample, thresholds: &AlertThresholds) -> f64 {
    let metric: f64 = metrics(sample, thresholds)
        .into_iter()
        .map(|(_, _, v, w, c)| metric_penalty(v, w, c))
        .sum();
    let custom: f64 = checks
        .iter()
        .filter(|c| c.kind != CheckKind::Builtin)
        .map(|c| match c.status {
            Status::Healthy => 0.0,
            Status::Warning => WARNING_CHECK_PENALTY,
            Status::Critical => FAILED_CHECK_PENALTY,
        })
        .sum();
    (100.0 - metric - custom).clamp(0.0, 100.0)
}

/// What a node offers the resource pool: `cpu` (cores), `memory` and `disk` (total bytes),
/// `network` (`node.network_mbps`), `connections` (`max_concurrent_requests`), plus the
/// node's configured `resources`. A configured resource named like a measured one replaces
/// it, so an operator can offer less than the machine has.
pub fn capacity(
    sample: &Sample,
    node: &NodeSettings,
    max_concurrent_requests: u32,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::from([
        ("cpu".to_string(), f64::from(sample.cpu_cores)),
        ("memory".to_string(), sample.memory_total as f64),
        ("disk".to_string(), sample.disk_total as f64),
        ("network".to_string(), node.network_mbps),
        (
            "connections".to_string(),
            f64::from(max_concurrent_requests),
        ),
    ]);
    out.extend(node.resources.iter().map(|(k, v)| (k.clone(), *v)));
    out
}

/// Failing checks named in [`HealthReport::why_critical`]; the rest are counted.
const CHECKS_NAMED: usize = 3;

/// Characters kept of one check's message in [`HealthReport::why_critical`].
const MESSAGE_CHARS: usize = 80;

impl HealthReport {
    /// Why the node is critical, for placement's reasons: `critical (disk: disk use 96.2% is
    /// at or past the critical threshold 95%, command:probe: exit status 1)`, at most
    /// [`CHECKS_NAMED`] checks, each message clipped. `None` short of critical.
    pub fn why_critical(&self) -> Option<String> {
        if self.status != Status::Critical {
            return None;
        }
        let failing: Vec<&CheckResult> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Critical)
            .collect();
        let mut named: Vec<String> = failing
            .iter()
            .take(CHECKS_NAMED)
            .map(|c| {
                let message = c.message.split_whitespace().collect::<Vec<_>>().join(" ");
                match message.char_indices().nth(MESSAGE_CHARS) {
                    _ if message.is_empty() => c.check_id.clone(),
                    Some((end, _)) => format!("{}: {}…", c.check_id, &message[..end]),
                    None => format!("{}: {message}", c.check_id),
                }
            })
            .collect();
        if failing.len() > CHECKS_NAMED {
            named.push(format!("and {} more", failing.len() - CHECKS_NAMED));
        }
        if named.is_empty() {
            return Some("critical".into());
        }
        Some(format!("critical ({})", named.join(", ")))
    }
}

/// One node's health at one moment, as the node sends it to the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub node_id: String,
    pub at_ms: u64,
    pub sample: Sample,
    /// Built-in checks first, then the custom ones in configuration order.
    pub checks: Vec<CheckResult>,
    /// The worst of `checks`.
    pub status: Status,
    pub score: f64,
    /// The node's active alerts.
    pub alerts: Vec<Alert>,
    pub capacity: BTreeMap<String, f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn thresholds() -> AlertThresholds {
        crate::settings::Settings::defaults()
            .health_monitoring
            .alert_thresholds
    }

    fn sample(cpu: f64, mem: f64, disk: f64) -> Sample {
        Sample {
            cpu_percent: cpu,
            memory_percent: mem,
            disk_percent: disk,
            ..Sample::default()
        }
    }

    fn custom(status: Status) -> CheckResult {
        CheckResult {
            check_id: "http:api".into(),
            name: "api".into(),
            kind: CheckKind::Http,
            status,
            message: String::new(),
            value: None,
            unit: None,
        }
    }

    #[test]
    fn thresholds_are_inclusive() {
        // Defaults: cpu 80/95, memory 85/95, disk 80/95.
        let t = thresholds();
        let by_id = |s: &Sample| {
            evaluate(s, &t)
                .into_iter()
                .map(|c| (c.check_id, c.status))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            by_id(&sample(79.9, 85.0, 95.0)),
            [
                ("cpu".to_string(), Status::Healthy),
                ("memory".to_string(), Status::Warning),
                ("disk".to_string(), Status::Critical),
            ]
        );
        assert_eq!(
            worst(&evaluate(&sample(10.0, 10.0, 10.0), &t)),
            Status::Healthy
        );
        assert_eq!(
            worst(&evaluate(&sample(96.0, 10.0, 10.0), &t)),
            Status::Critical
        );
        assert_eq!(worst(&[]), Status::Healthy);
    }

    #[test]
    fn score_penalties() {
        let t = thresholds();
        assert_eq!(score(&[], &sample(0.0, 0.0, 0.0), &t), 100.0);
        // CPU at warning: 10; memory halfway from warning to critical: 20; disk critical: 50.
        assert_eq!(score(&[], &sample(80.0, 90.0, 95.0), &t), 20.0);
        let checks = [custom(Status::Critical), custom(Status::Warning)];
        assert_eq!(score(&checks, &sample(0.0, 0.0, 0.0), &t), 65.0);
        // The built-in results are scored from the sample, not again from the list.
        let builtins = evaluate(&sample(96.0, 0.0, 0.0), &t);
        assert_eq!(score(&builtins, &sample(96.0, 0.0, 0.0), &t), 50.0);
        assert_eq!(score(&[], &sample(100.0, 100.0, 100.0), &t), 0.0);
    }

    #[test]
    fn capacity_lists_measured_and_configured_resources() {
        let mut node = crate::settings::Settings::defaults().node;
        node.network_mbps = 1000.0;
        node.resources = BTreeMap::from([("gpu".to_string(), 2.0), ("cpu".to_string(), 1.0)]);
        let s = Sample {
            cpu_cores: 8,
            memory_total: 16 << 30,
            disk_total: 100 << 30,
            ..Sample::default()
        };
        let c = capacity(&s, &node, 500);
        assert_eq!(
            c["cpu"], 1.0,
            "a configured resource replaces the measured one"
        );
        assert_eq!(c["memory"], (16u64 << 30) as f64);
        assert_eq!(c["disk"], (100u64 << 30) as f64);
        assert_eq!(c["network"], 1000.0);
        assert_eq!(c["connections"], 500.0);
        assert_eq!(c["gpu"], 2.0);
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn reports_survive_postcard_and_json() {
        let t = thresholds();
        let s = sample(85.0, 20.0, 30.0);
        let mut checks = evaluate(&s, &t);
        checks.push(custom(Status::Critical));
        let mut tracker = AlertTracker::new("n1", 1);
        tracker.observe(5, &checks);
        let report = HealthReport {
            node_id: "n1".into(),
            at_ms: 5,
            sample: s,
            status: worst(&checks),
            score: score(&checks, &s, &t),
            checks,
            alerts: tracker.active(),
            capacity: BTreeMap::from([("cpu".to_string(), 4.0)]),
        };
        assert_eq!(report.alerts.len(), 2);
        let bytes = postcard::to_stdvec(&report).unwrap();
        let back: HealthReport = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, report);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["status"], "critical");
        assert_eq!(json["checks"][0]["kind"], "builtin");
        assert_eq!(json["alerts"][0]["severity"], "warning");
        assert_eq!(json["alerts"][0]["cleared_at_ms"], serde_json::Value::Null);
    }

    fn report_of(checks: Vec<CheckResult>) -> HealthReport {
        HealthReport {
            node_id: "n1".into(),
            at_ms: 5,
            sample: Sample::default(),
            status: worst(&checks),
            score: 0.0,
            checks,
            alerts: Vec::new(),
            capacity: BTreeMap::new(),
        }
    }

    #[test]
    fn why_critical_names_the_failing_checks_briefly() {
        let t = thresholds();
        let warm = evaluate(&sample(85.0, 20.0, 30.0), &t);
        assert_eq!(report_of(warm).why_critical(), None);

        let mut checks = evaluate(&sample(85.0, 20.0, 96.2), &t);
        let mut probe = custom(Status::Critical);
        probe.check_id = "command:probe".into();
        probe.message = format!("exit status 1:\n{}", "y".repeat(200));
        checks.push(probe);
        let why = report_of(checks.clone()).why_critical().unwrap();
        assert_eq!(
            why,
            format!(
                "critical (disk: disk use 96.2% is at or past the critical threshold 95%, \
                 command:probe: exit status 1: {}…)",
                "y".repeat(80 - "exit status 1: ".len())
            )
        );

        // At most three named, then how many more.
        checks.extend((0..3).map(|_| custom(Status::Critical)));
        let why = report_of(checks).why_critical().unwrap();
        assert!(why.ends_with("…, http:api, and 2 more)"), "{why}");

        // Critical with no check to blame (it cannot happen today) still says critical.
        let mut bare = report_of(Vec::new());
        bare.status = Status::Critical;
        assert_eq!(bare.why_critical().as_deref(), Some("critical"));
    }

    fn pct() -> impl Strategy<Value = f64> {
        0.0..=100.0f64
    }

    fn any_thresholds() -> impl Strategy<Value = AlertThresholds> {
        let pair = || (pct(), pct()).prop_map(|(a, b)| (a.min(b), a.max(b)));
        (pair(), pair(), pair()).prop_map(|(c, m, d)| AlertThresholds {
            cpu_warning: c.0,
            cpu_critical: c.1,
            memory_warning: m.0,
            memory_critical: m.1,
            disk_warning: d.0,
            disk_critical: d.1,
        })
    }

    /// Any status (also used by the alert rule's proptest in `alerts.rs`).
    pub(super) fn any_status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Healthy),
            Just(Status::Warning),
            Just(Status::Critical)
        ]
    }

    proptest! {
        #[test]
        fn score_is_bounded(
            t in any_thresholds(),
            (c, m, d) in (pct(), pct(), pct()),
            statuses in proptest::collection::vec(any_status(), 0..8),
        ) {
            let checks: Vec<_> = statuses.into_iter().map(custom).collect();
            let s = score(&checks, &sample(c, m, d), &t);
            prop_assert!((0.0..=100.0).contains(&s), "{s}");
        }

        #[test]
        fn worse_metrics_never_raise_the_score(
            t in any_thresholds(),
            a in (pct(), pct(), pct()),
            b in (pct(), pct(), pct()),
            statuses in proptest::collection::vec(any_status(), 0..4),
        ) {
            let checks: Vec<_> = statuses.into_iter().map(custom).collect();
            let better = sample(a.0.min(b.0), a.1.min(b.1), a.2.min(b.2));
            let worse = sample(a.0.max(b.0), a.1.max(b.1), a.2.max(b.2));
            prop_assert!(score(&checks, &worse, &t) <= score(&checks, &better, &t));
            // And a status never improves when a metric gets worse.
            prop_assert!(worst(&evaluate(&worse, &t)) >= worst(&evaluate(&better, &t)));
        }

        #[test]
        fn worse_checks_never_raise_the_score(
            t in any_thresholds(),
            (c, m, d) in (pct(), pct(), pct()),
            pairs in proptest::collection::vec((any_status(), any_status()), 0..6),
        ) {
            let s = sample(c, m, d);
            let better: Vec<_> = pairs.iter().map(|(x, y)| custom(*x.min(y))).collect();
            let worse: Vec<_> = pairs.iter().map(|(x, y)| custom(*x.max(y))).collect();
            prop_assert!(score(&worse, &s, &t) <= score(&better, &s, &t));
            let mut more = better.clone();
            more.push(custom(Status::Critical));
            prop_assert!(score(&more, &s, &t) <= score(&better, &s, &t));
        }

        #[test]
        fn a_healthy_node_scores_100(t in any_thresholds(), (c, m, d) in (pct(), pct(), pct())) {
            let s = sample(c, m, d);
            if worst(&evaluate(&s, &t)) == Status::Healthy {
                prop_assert_eq!(score(&[custom(Status::Healthy)], &s, &t), 100.0);
            } else {
                prop_assert!(score(&[], &s, &t) <= 100.0 - WARNING_PENALTY);
            }
        }
    }
}
