//! Cluster health from each node's latest report and reachability.
//!
//! A node is *failed* when it is unreachable (score 0, whatever it last reported) or its
//! latest report is critical; *warning* when its report is warning, or when it is reachable
//! but has not reported yet (it then has no score and does not count in the average);
//! *healthy* otherwise. The cluster is healthy when it has nodes and all are healthy,
//! critical when it has nodes and all have failed, warning otherwise, including when it has
//! no nodes at all (nothing can run).
//!
//! [`ClusterState`] is what the orchestrator's `HealthMonitor` keeps: each node's latest
//! report and reachability, the active alerts and the recently cleared ones. A node's alerts
//! are raised and cleared on the node (by its `AlertTracker`); the cluster sees an alert as
//! raised when it first appears in a report and as cleared, at that report's time, when a
//! report no longer carries it. An unreachable node gets a critical `reachability` alert of
//! the cluster's own, raised at once and cleared when the node is reachable again; its other
//! alerts stay as it last reported them.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::alerts::KEEP_CLEARED;
use super::{Alert, HealthReport, Status};

/// The check id of the cluster's own alert for an unreachable node.
pub const REACHABILITY: &str = "reachability";

/// What the cluster knows of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEntry {
    pub reachable: bool,
    pub report: Option<HealthReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeHealthView {
    pub node_id: String,
    pub status: Status,
    /// `None`: reachable, but no report yet.
    pub score: Option<f64>,
    pub reachable: bool,
    pub last_report_ms: Option<u64>,
    pub active_alerts: usize,
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub disk_percent: Option<f64>,
    /// The latest value of each custom metric of the node (pushed, or a prometheus check's
    /// series that was read), by name.
    pub custom_metrics: BTreeMap<String, f64>,
    /// The custom metrics' latest check results (pushed ones and prometheus checks, one that
    /// read nothing included), by check id: status, value, unit and message, for the web UI.
    pub custom_metric_checks: Vec<super::CheckResult>,
}

impl NodeHealthView {
    pub fn failed(&self) -> bool {
        self.status == Status::Critical
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ClusterHealth {
    pub status: Status,
    pub healthy: usize,
    pub warning: usize,
    pub failed: usize,
    /// The mean score of the nodes that have one; 0 when none has.
    pub average_score: f64,
    /// By node id.
    pub nodes: Vec<NodeHealthView>,
}

/// One node's view.
pub fn node_view(node_id: &str, entry: &NodeEntry) -> NodeHealthView {
    let report = entry.report.as_ref();
    let (status, score) = match report {
        _ if !entry.reachable => (Status::Critical, Some(0.0)),
        None => (Status::Warning, None),
        Some(r) => (r.status, Some(r.score.clamp(0.0, 100.0))),
    };
    NodeHealthView {
        node_id: node_id.to_string(),
        status,
        score,
        reachable: entry.reachable,
        last_report_ms: report.map(|r| r.at_ms),
        active_alerts: report.map_or(0, |r| r.alerts.len()),
        cpu_percent: report.map(|r| r.sample.cpu_percent),
        memory_percent: report.map(|r| r.sample.memory_percent),
        disk_percent: report.map(|r| r.sample.disk_percent),
        custom_metric_checks: report.map_or_else(Vec::new, |r| {
            let mut checks: Vec<super::CheckResult> = r
                .checks
                .iter()
                .filter(|c| c.metric_name().is_some())
                .cloned()
                .collect();
            checks.sort_by(|a, b| a.check_id.cmp(&b.check_id));
            checks
        }),
        custom_metrics: report.map_or_else(BTreeMap::new, |r| {
            r.checks
                .iter()
                .filter_map(|c| Some((c.metric_name()?.to_string(), c.value?)))
                .collect()
        }),
    }
}

/// The cluster's health from what it knows of each node.
pub fn aggregate(nodes: &BTreeMap<String, NodeEntry>) -> ClusterHealth {
    let nodes: Vec<NodeHealthView> = nodes.iter().map(|(id, e)| node_view(id, e)).collect();
    let count = |s: Status| nodes.iter().filter(|n| n.status == s).count();
    let (healthy, warning, failed) = (
        count(Status::Healthy),
        count(Status::Warning),
        count(Status::Critical),
    );
    let scores: Vec<f64> = nodes.iter().filter_map(|n| n.score).collect();
    let average_score = if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    let status = if nodes.is_empty() {
        Status::Warning
    } else if healthy == nodes.len() {
        Status::Healthy
    } else if failed == nodes.len() {
        Status::Critical
    } else {
        Status::Warning
    };
    ClusterHealth {
        status,
        healthy,
        warning,
        failed,
        average_score,
        nodes,
    }
}

/// One node's health as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeHealthDetail {
    pub node_id: String,
    pub reachable: bool,
    /// Critical when unreachable; warning before the first report; else the report's.
    pub status: Status,
    /// 0 when unreachable; `None` before the first report.
    pub score: Option<f64>,
    /// The node's active alerts, its reachability alert included, newest first.
    pub alerts: Vec<Alert>,
    /// The latest report, kept when the node becomes unreachable.
    pub report: Option<HealthReport>,
}

/// A change in the cluster's health, for the live event stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthChange {
    /// A node's status changed (`from` is `None` for a node first heard of).
    NodeStatusChanged {
        node_id: String,
        from: Option<Status>,
        to: Status,
        score: Option<f64>,
    },
    AlertRaised {
        alert: Alert,
    },
    AlertCleared {
        alert: Alert,
    },
}

/// The cluster's health state.
#[derive(Debug, Default)]
pub struct ClusterState {
    nodes: BTreeMap<String, NodeEntry>,
    /// Per node, by alert id.
    active: BTreeMap<String, BTreeMap<String, Alert>>,
    /// Newest first, at most [`KEEP_CLEARED`].
    cleared: VecDeque<Alert>,
    unreachable_raised: u64,
}

impl ClusterState {
    /// A node's report. A node first heard of this way is reachable; a node marked
    /// unreachable stays so (only [`ClusterState::reachability`] changes that).
    pub fn report(&mut self, report: HealthReport) -> Vec<HealthChange> {
        let node_id = report.node_id.clone();
        let before = self.status_of(&node_id);
        let mut changes = Vec::new();
        let active = self.active.entry(node_id.clone()).or_default();
        let new: BTreeMap<&str, &Alert> = report
            .alerts
            .iter()
            .map(|a| (a.alert_id.as_str(), a))
            .collect();
        // Gone from the report, or the same id raised anew (the node's monitor restarted).
        let gone: Vec<String> = active
            .iter()
            .filter(|(id, a)| {
                a.check_id != REACHABILITY
                    && new
                        .get(id.as_str())
                        .is_none_or(|n| n.raised_at_ms != a.raised_at_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(mut a) = active.remove(&id) {
                a.cleared_at_ms = Some(report.at_ms.max(a.raised_at_ms));
                changes.push(clear(&mut self.cleared, a));
            }
        }
        for a in &report.alerts {
            let mut a = a.clone();
            a.cleared_at_ms = None;
            if active.insert(a.alert_id.clone(), a.clone()).is_none() {
                changes.push(HealthChange::AlertRaised { alert: a });
            }
        }
        self.nodes
            .entry(node_id.clone())
            .or_insert(NodeEntry {
                reachable: true,
                report: None,
            })
            .report = Some(report);
        changes.extend(self.status_change(&node_id, before));
        changes
    }

    /// A node's link came up or the node was declared failed, at `now_ms`.
    pub fn reachability(
        &mut self,
        node_id: &str,
        reachable: bool,
        now_ms: u64,
    ) -> Vec<HealthChange> {
        let before = self.status_of(node_id);
        let mut changes = Vec::new();
        self.nodes
            .entry(node_id.to_string())
            .or_insert(NodeEntry {
                reachable,
                report: None,
            })
            .reachable = reachable;
        let active = self.active.entry(node_id.to_string()).or_default();
        let current = active
            .values()
            .find(|a| a.check_id == REACHABILITY)
            .map(|a| a.alert_id.clone());
        match (reachable, current) {
            (false, None) => {
                self.unreachable_raised += 1;
                let alert = Alert {
                    alert_id: format!("{node_id}:{REACHABILITY}:{}", self.unreachable_raised),
                    node_id: node_id.to_string(),
                    check_id: REACHABILITY.into(),
                    name: "node unreachable".into(),
                    severity: Status::Critical,
                    message: "the node's cluster link is down or the node was declared failed"
                        .into(),
                    raised_at_ms: now_ms,
                    consecutive_failures: 1,
                    cleared_at_ms: None,
                };
                active.insert(alert.alert_id.clone(), alert.clone());
                changes.push(HealthChange::AlertRaised { alert });
            }
            (true, Some(id)) => {
                if let Some(mut a) = active.remove(&id) {
                    a.cleared_at_ms = Some(now_ms);
                    changes.push(clear(&mut self.cleared, a));
                }
            }
            _ => {}
        }
        changes.extend(self.status_change(node_id, before));
        changes
    }

    pub fn health(&self) -> ClusterHealth {
        aggregate(&self.nodes)
    }

    /// Forgets a node that left or stayed failed past `service_discovery.service_timeout`:
    /// its active alerts are cleared at `now_ms` and it no longer counts (status, average).
    pub fn forget(&mut self, node_id: &str, now_ms: u64) -> Vec<HealthChange> {
        self.nodes.remove(node_id);
        let mut changes = Vec::new();
        let mut alerts: Vec<Alert> = self
            .active
            .remove(node_id)
            .map(|a| a.into_values().collect())
            .unwrap_or_default();
        newest_first(&mut alerts);
        for mut a in alerts.into_iter().rev() {
            a.cleared_at_ms = Some(now_ms.max(a.raised_at_ms));
            changes.push(clear(&mut self.cleared, a));
        }
        changes
    }

    /// One node's health; `None` for a node never heard of.
    pub fn node(&self, node_id: &str) -> Option<NodeHealthDetail> {
        let entry = self.nodes.get(node_id)?;
        let view = node_view(node_id, entry);
        let mut alerts: Vec<Alert> = self
            .active
            .get(node_id)
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default();
        newest_first(&mut alerts);
        Some(NodeHealthDetail {
            node_id: node_id.to_string(),
            reachable: entry.reachable,
            status: view.status,
            score: view.score,
            alerts,
            report: entry.report.clone(),
        })
    }

    /// The active alerts, newest raised first, then (unless `active_only`) the cleared ones
    /// kept, newest cleared first.
    pub fn alerts(&self, active_only: bool) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .active
            .values()
            .flat_map(|a| a.values().cloned())
            .collect();
        newest_first(&mut out);
        if !active_only {
            out.extend(self.cleared.iter().cloned());
        }
        out
    }

    fn status_of(&self, node_id: &str) -> Option<Status> {
        self.nodes
            .get(node_id)
            .map(|e| node_view(node_id, e).status)
    }

    fn status_change(&self, node_id: &str, before: Option<Status>) -> Option<HealthChange> {
        let view = node_view(node_id, self.nodes.get(node_id)?);
        (before != Some(view.status)).then(|| HealthChange::NodeStatusChanged {
            node_id: node_id.to_string(),
            from: before,
            to: view.status,
            score: view.score,
        })
    }
}

fn clear(history: &mut VecDeque<Alert>, alert: Alert) -> HealthChange {
    history.push_front(alert.clone());
    history.truncate(KEEP_CLEARED);
    HealthChange::AlertCleared { alert }
}

fn newest_first(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        b.raised_at_ms
            .cmp(&a.raised_at_ms)
            .then_with(|| a.alert_id.cmp(&b.alert_id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Sample;
    use proptest::prelude::*;

    fn report(node: &str, status: Status, score: f64) -> HealthReport {
        HealthReport {
            node_id: node.into(),
            at_ms: 7,
            sample: Sample::default(),
            checks: vec![],
            status,
            score,
            alerts: vec![],
            capacity: BTreeMap::new(),
        }
    }

    fn entry(reachable: bool, r: Option<(Status, f64)>) -> NodeEntry {
        NodeEntry {
            reachable,
            report: r.map(|(s, score)| report("n", s, score)),
        }
    }

    /// Pushed metrics and prometheus checks are the node's custom metrics, by the name in
    /// their id; a prometheus check that read nothing has no value but is still shown.
    #[test]
    fn custom_metrics_are_viewed_with_their_checks() {
        use crate::health::CheckKind;
        let check = |id: &str, kind: CheckKind, value: Option<f64>| crate::health::CheckResult {
            check_id: id.into(),
            name: id.split([':', '#']).nth(1).unwrap().into(),
            kind,
            status: Status::Warning,
            message: String::new(),
            value,
            unit: Some("jobs".into()),
        };
        let mut r = report("n", Status::Warning, 90.0);
        r.checks = vec![
            check("prometheus:orders", CheckKind::Prometheus, Some(12.0)),
            check("metric:queue", CheckKind::Metric, Some(3.0)),
            check("prometheus:orders#2", CheckKind::Prometheus, Some(1.0)),
            check("prometheus:gone", CheckKind::Prometheus, None),
            check("http:orders", CheckKind::Http, Some(5.0)),
        ];
        let view = node_view(
            "n",
            &NodeEntry {
                reachable: true,
                report: Some(r),
            },
        );
        let named = |pairs: &[(&str, f64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            view.custom_metrics,
            named(&[("orders", 12.0), ("orders#2", 1.0), ("queue", 3.0)])
        );
        let ids: Vec<&str> = view
            .custom_metric_checks
            .iter()
            .map(|c| c.check_id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "metric:queue",
                "prometheus:gone",
                "prometheus:orders",
                "prometheus:orders#2"
            ]
        );
    }

    #[test]
    fn a_forgotten_node_clears_its_alerts_and_leaves_the_average() {
        let mut s = ClusterState::default();
        s.report(report("a", Status::Healthy, 100.0));
        s.report(report("b", Status::Healthy, 100.0));
        s.reachability("b", false, 10);
        assert_eq!(s.health().average_score, 50.0, "a failed node scores 0");
        assert_eq!(s.alerts(true).len(), 1);
        let changes = s.forget("b", 20);
        assert!(
            matches!(&changes[..], [HealthChange::AlertCleared { alert }] if alert.cleared_at_ms == Some(20)),
            "{changes:?}"
        );
        let h = s.health();
        assert_eq!(
            (h.average_score, h.nodes.len(), h.status),
            (100.0, 1, Status::Healthy)
        );
        assert!(s.alerts(true).is_empty());
        assert!(s.node("b").is_none());
        assert!(
            s.forget("b", 30).is_empty(),
            "forgetting twice changes nothing"
        );
    }

    #[test]
    fn counts_and_average() {
        let nodes = BTreeMap::from([
            ("a".to_string(), entry(true, Some((Status::Healthy, 100.0)))),
            ("b".to_string(), entry(true, Some((Status::Warning, 80.0)))),
            (
                "c".to_string(),
                entry(false, Some((Status::Healthy, 100.0))),
            ),
            ("d".to_string(), entry(true, None)),
        ]);
        let c = aggregate(&nodes);
        assert_eq!((c.healthy, c.warning, c.failed), (1, 2, 1));
        assert_eq!(
            c.average_score, 60.0,
            "(100 + 80 + 0) / 3; d has no score yet"
        );
        assert_eq!(c.status, Status::Warning);
        let unreachable = &c.nodes[2];
        assert_eq!(unreachable.node_id, "c");
        assert_eq!(
            (unreachable.status, unreachable.score),
            (Status::Critical, Some(0.0))
        );
        assert_eq!(
            unreachable.last_report_ms,
            Some(7),
            "its last report stays visible"
        );
        assert_eq!(c.nodes[3].score, None);
    }

    #[test]
    fn cluster_status() {
        let all = |e: Vec<NodeEntry>| {
            let m = e
                .into_iter()
                .enumerate()
                .map(|(i, e)| (i.to_string(), e))
                .collect();
            aggregate(&m).status
        };
        assert_eq!(all(vec![]), Status::Warning);
        assert_eq!(
            all(vec![entry(true, Some((Status::Healthy, 100.0)))]),
            Status::Healthy
        );
        assert_eq!(
            all(vec![
                entry(false, None),
                entry(true, Some((Status::Critical, 10.0)))
            ]),
            Status::Critical
        );
        assert_eq!(
            all(vec![
                entry(false, None),
                entry(true, Some((Status::Healthy, 100.0)))
            ]),
            Status::Warning
        );
    }

    fn alert(node: &str, check: &str, n: u32, raised_at_ms: u64) -> Alert {
        Alert {
            alert_id: format!("{node}:{check}:{n}"),
            node_id: node.into(),
            check_id: check.into(),
            name: check.into(),
            severity: Status::Critical,
            message: "down".into(),
            raised_at_ms,
            consecutive_failures: 3,
            cleared_at_ms: None,
        }
    }

    fn with_alerts(node: &str, at_ms: u64, alerts: Vec<Alert>) -> HealthReport {
        let status = if alerts.is_empty() {
            Status::Healthy
        } else {
            Status::Critical
        };
        HealthReport {
            at_ms,
            alerts,
            ..report(
                node,
                status,
                if status == Status::Healthy {
                    100.0
                } else {
                    75.0
                },
            )
        }
    }

    fn kinds(changes: &[HealthChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                HealthChange::NodeStatusChanged { from, to, .. } => {
                    format!(
                        "status {}->{}",
                        from.map_or("none", Status::as_str),
                        to.as_str()
                    )
                }
                HealthChange::AlertRaised { alert } => format!("raised {}", alert.alert_id),
                HealthChange::AlertCleared { alert } => format!(
                    "cleared {} at {}",
                    alert.alert_id,
                    alert.cleared_at_ms.unwrap()
                ),
            })
            .collect()
    }

    #[test]
    fn reported_alerts_are_raised_and_cleared_once() {
        let mut c = ClusterState::default();
        assert_eq!(
            kinds(&c.report(with_alerts("a", 1, vec![]))),
            ["status none->healthy"]
        );
        let a1 = alert("a", "http:api", 1, 2);
        assert_eq!(
            kinds(&c.report(with_alerts("a", 2, vec![a1.clone()]))),
            ["raised a:http:api:1", "status healthy->critical"]
        );
        let mut longer = a1.clone();
        longer.consecutive_failures = 4;
        assert_eq!(
            kinds(&c.report(with_alerts("a", 3, vec![longer]))),
            Vec::<String>::new()
        );
        assert_eq!(
            c.alerts(true)[0].consecutive_failures,
            4,
            "the newest figures"
        );
        assert_eq!(
            kinds(&c.report(with_alerts("a", 4, vec![]))),
            ["cleared a:http:api:1 at 4", "status critical->healthy"]
        );
        assert!(c.alerts(true).is_empty());
        assert_eq!(c.alerts(false).len(), 1);
        assert_eq!(c.alerts(false)[0].cleared_at_ms, Some(4));

        // A restarted node monitor numbers its alerts from 1 again: a new alert.
        c.report(with_alerts("a", 5, vec![alert("a", "http:api", 1, 5)]));
        let again = c.report(with_alerts("a", 6, vec![alert("a", "http:api", 1, 6)]));
        assert_eq!(
            kinds(&again),
            ["cleared a:http:api:1 at 6", "raised a:http:api:1"]
        );
    }

    #[test]
    fn an_unreachable_node_fails_with_an_alert_of_its_own() {
        let mut c = ClusterState::default();
        c.report(with_alerts("a", 1, vec![alert("a", "disk", 1, 1)]));
        c.report(with_alerts("b", 1, vec![]));
        assert_eq!(
            kinds(&c.reachability("b", false, 10)),
            ["raised b:reachability:1", "status healthy->critical"]
        );
        assert_eq!(kinds(&c.reachability("b", false, 11)), Vec::<String>::new());
        // A late report does not revive it.
        assert_eq!(
            kinds(&c.report(with_alerts("b", 12, vec![]))),
            Vec::<String>::new()
        );
        let h = c.health();
        assert_eq!((h.healthy, h.warning, h.failed), (0, 0, 2));
        let b = c.node("b").unwrap();
        assert!(!b.reachable);
        assert_eq!((b.status, b.score), (Status::Critical, Some(0.0)));
        assert_eq!(b.alerts.len(), 1);
        assert_eq!(b.report.unwrap().at_ms, 12);
        let active = c.alerts(true);
        assert_eq!(active.len(), 2);
        assert_eq!(active[0].alert_id, "b:reachability:1", "newest first");

        assert_eq!(
            kinds(&c.reachability("b", true, 20)),
            ["cleared b:reachability:1 at 20", "status critical->healthy"]
        );
        assert_eq!(c.health().healthy, 1);
        let all = c.alerts(false);
        assert_eq!(all.len(), 2);
        assert!(all[0].is_active() && !all[1].is_active(), "active first");

        // A node first heard of as unreachable.
        assert_eq!(
            kinds(&c.reachability("z", false, 30)),
            ["raised z:reachability:2", "status none->critical"]
        );
        assert_eq!(
            kinds(&c.reachability("y", true, 30)),
            ["status none->warning"]
        );
        assert!(c.node("x").is_none());
    }

    fn any_entry() -> impl Strategy<Value = NodeEntry> {
        let status = prop_oneof![
            Just(Status::Healthy),
            Just(Status::Warning),
            Just(Status::Critical)
        ];
        (
            any::<bool>(),
            proptest::option::of((status, 0.0..=100.0f64)),
        )
            .prop_map(|(reachable, r)| entry(reachable, r))
    }

    proptest! {
        #[test]
        fn counts_add_up_and_unreachable_nodes_fail(
            nodes in proptest::collection::btree_map("[a-z]{1,4}", any_entry(), 0..12),
        ) {
            let c = aggregate(&nodes);
            prop_assert_eq!(c.healthy + c.warning + c.failed, nodes.len());
            prop_assert!((0.0..=100.0).contains(&c.average_score));
            let unreachable = nodes.values().filter(|e| !e.reachable).count();
            prop_assert!(c.failed >= unreachable);
            for v in &c.nodes {
                if !v.reachable {
                    prop_assert_eq!(v.score, Some(0.0));
                    prop_assert!(v.failed());
                }
            }
            // Losing a node's link never raises the average or the healthy count.
            if let Some((id, _)) = nodes.iter().find(|(_, e)| e.reachable) {
                let mut worse = nodes.clone();
                worse.get_mut(id).unwrap().reachable = false;
                let w = aggregate(&worse);
                prop_assert!(w.healthy <= c.healthy);
                let was_failed = c.nodes.iter().any(|v| &v.node_id == id && v.failed());
                prop_assert_eq!(w.failed, c.failed + usize::from(!was_failed));
                prop_assert!(w.average_score <= c.average_score + 1e-9);
            }
        }
    }
}
