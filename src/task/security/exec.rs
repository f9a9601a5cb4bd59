//! A security scan on the orchestrator's side: its endpoints dealt over its nodes (see
//! [`distribute`]), each node's slice report as it comes, and the merged report.

use std::time::Duration;

use crate::stats::report::TaskInfo;
use crate::task::security::{ScanReport, ScanSpec, distribute};

use crate::task::work::Slots;

/// A scan under way: the spec and, per slot, the node's report once it came.
pub struct ScanWork {
    pub spec: ScanSpec,
    pub slices: Vec<Option<ScanReport>>,
}

impl ScanWork {
    pub fn new(spec: ScanSpec, n: usize) -> ScanWork {
        ScanWork {
            spec,
            slices: vec![None; n],
        }
    }

    /// How many of `nodes` it runs on: one endpoint each at least.
    pub fn node_count(spec: &ScanSpec, nodes: usize) -> usize {
        distribute::node_count(spec, nodes)
    }

    /// Its planned duration.
    pub fn duration(spec: &ScanSpec) -> Duration {
        distribute::estimate(spec).1
    }

    /// How much longer than planned it may take before the watchdog gives up on its missing
    /// slices: slow answers stretch a scan (its estimate assumes quick ones), so its estimate
    /// again plus two request timeouts.
    pub fn slack(spec: &ScanSpec) -> Duration {
        distribute::estimate(spec).1 + spec.timeout * 2
    }

    /// The merged report: every slice in so far, the lost ones marked.
    pub fn report(&self, nodes: &[String]) -> ScanReport {
        distribute::merge(&self.spec, nodes, &self.slices)
    }

    /// Takes the slice report of `slot` (on `node`) as the node sent it (JSON): the requests
    /// it sent, or `None` when it already came (a resent report counts once). An unreadable
    /// report still ends the node's slice (with a note), rather than leave the execution
    /// waiting for it.
    pub fn add_result(&mut self, slot: usize, node: &str, json: &str) -> Option<u64> {
        if self.slices[slot].is_some() {
            return None;
        }
        let report = serde_json::from_str(json).unwrap_or_else(|e| {
            tracing::warn!(node, error = %e, "unreadable scan report");
            ScanReport {
                notes: vec![format!("node {node}: unreadable scan report: {e}")],
                ..Default::default()
            }
        });
        let sent = report.requests_sent;
        self.slices[slot] = Some(report);
        Some(sent)
    }

    /// Its facts for the report.
    pub fn info(&self, slots: Slots) -> TaskInfo {
        let scan = self.report(&slots.nodes);
        TaskInfo {
            name: slots.name,
            model: "scan",
            pattern: "none".into(),
            arrivals: "none",
            seed: 0,
            concurrent_users: 1,
            duration_s: scan.duration_s.max(0.001),
            planned_requests: None,
            nodes: slots.nodes,
            lost: slots.lost,
            reported_sent: slots.reported_sent,
            kind: "security_test",
            thresholds: Vec::new(),
            judged: super::verdict::judge(&self.spec, &scan),
            aborted: None,
            tls: None,
        }
    }
}
