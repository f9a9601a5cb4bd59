//! A security scan on a node: the node's slice of the endpoints (all of them standalone),
//! scanned on the agent's arbiter (where its `awc` client lives) with the node's own
//! allowlist; its report goes to the orchestrator once, as JSON within the frame cap. A scan
//! paces itself (`rate_limit_rps`) and does not pause with the lease.

use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::watch;

use crate::task::security::{ScanReport, ScanSpec, distribute, scan};
use crate::task::work::{NodeCtx, NodeRun};

/// The node's slice of `spec`, run from `start` until done or `stop`; a scan stopped first
/// reports that its slice was not scanned.
pub fn run(
    spec: ScanSpec,
    ctx: &NodeCtx,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> NodeRun {
    let spec = match ctx.share {
        Some(s) => distribute::slice(&spec, usize::from(s.slot), s.table().nodes.len()),
        None => spec,
    };
    let (id, node_id) = (ctx.id.to_string(), ctx.node_id.to_string());
    let (allowlist, cap) = (ctx.allowlist.clone(), ctx.max_frame);
    tracing::info!(task = %id, endpoints = spec.endpoints.len(), "scan starting");
    let job = async move {
        let done = tokio::select! {
            r = async {
                actix_rt::time::sleep_until(start.into()).await;
                scan::scan(&spec, &allowlist).await
            } => Some(r),
            _ = stop.wait_for(|stopped| *stopped) => None,
        };
        let mut report = done.unwrap_or_else(|| ScanReport {
            notes: vec![format!(
                "node {node_id}: stopped before its slice was scanned"
            )],
            ..Default::default()
        });
        tracing::info!(task = %id, findings = report.findings.len(), "scan finished on this node");
        fit_report(&mut report, cap)
    };
    NodeRun::Job(job.boxed_local())
}

/// A scan report as JSON within the frame cap: when too big (thousands of findings), the
/// least severe findings are dropped, and a note says how many.
fn fit_report(report: &mut ScanReport, cap: usize) -> String {
    // Room for the frame around it (task ref, sequence numbers, the enum tags).
    let room = cap.saturating_sub(4096);
    let mut dropped = 0;
    loop {
        let json = serde_json::to_string(&*report).unwrap_or_else(|_| "{}".into());
        if json.len() <= room || report.findings.is_empty() {
            return json;
        }
        let cut = report.findings.len().div_ceil(10);
        report.findings.truncate(report.findings.len() - cut);
        if dropped == 0 {
            report.notes.push(String::new());
        }
        dropped += cut;
        if let Some(note) = report.notes.last_mut() {
            *note = format!(
                "{dropped} least severe findings dropped: the report exceeded the frame cap"
            );
        }
    }
}
