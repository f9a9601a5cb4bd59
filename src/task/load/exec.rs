//! A load task on the orchestrator's side: its rate plan split into shares over its nodes,
//! the accumulator and watches its merged seconds feed, what a lost node does to it (its
//! `on_node_failure` policy), and its facts for the report.

use std::time::Duration;

use super::{LoadTask, Model, OnNodeFailure};
use crate::engine::schedule::adjust::{Adjustment, Change, stretched};
use crate::engine::share::ShareTable;
use crate::stats::TaskAccumulator;
use crate::stats::report::{TaskInfo, TlsReport};
use crate::stats::thresholds::ThresholdWatch;
use crate::stats::watch::Watch;

use crate::task::work::{Loss, Slots};

/// A load task under way.
pub struct LoadWork {
    pub task: LoadTask,
    /// Open model: the plan's request count (its rate integral), computed again on every
    /// live change.
    pub planned_requests: Option<u64>,
    /// How long it runs: its profile's duration, moved by live changes (pauses).
    pub duration: Duration,
}

impl LoadWork {
    /// Its accumulator over `n` nodes, and the watches of its merged seconds.
    pub fn new(task: LoadTask, n: usize) -> (LoadWork, TaskAccumulator, Vec<Watch>) {
        let rate = (task.model == Model::Open).then(|| task.rate_plan());
        let planned_requests = rate
            .as_ref()
            .map(|r| r.planned_requests(task.arrivals, task.profile.seed));
        let acc = crate::engine::schedule::accumulator(n, rate).named(task.request_names());
        let thresholds = task.thresholds.clone();
        let mut watches = if thresholds.iter().any(|t| t.abort_on_fail) {
            vec![Watch::Thresholds(
                ThresholdWatch::new(thresholds).over(task.profile.duration),
            )]
        } else {
            Vec::new()
        };
        if let Some(spec) = &task.stress {
            watches.push(Watch::Kind(Box::new(
                crate::task::stress::StressWatch::new(spec),
            )));
        }
        let work = LoadWork {
            duration: task.profile.duration,
            task,
            planned_requests,
        };
        (work, acc, watches)
    }

    /// What the loss of `slot` (not lost before) means for the task, by its policy; a
    /// re-split takes effect `at_ms` after the start.
    pub fn on_loss(
        &self,
        name: &str,
        node: &str,
        slot: u16,
        shares: &mut ShareTable,
        at_ms: u64,
    ) -> Loss {
        match self.task.on_node_failure {
            OnNodeFailure::Fail => Loss::Fail(format!(
                "node {node} was lost and task {name:?} has on_node_failure: fail"
            )),
            OnNodeFailure::Tolerate => Loss::Tolerated,
            // A closed model's users are fixed per node at the start.
            OnNodeFailure::Rebalance if self.task.model == Model::Closed => Loss::Tolerated,
            OnNodeFailure::Rebalance => {
                if shares.without(slot, at_ms) {
                    Loss::Reshared
                } else {
                    Loss::Fail(format!(
                        "node {node} was lost and no other node is left for task {name:?}"
                    ))
                }
            }
        }
    }

    /// Whether the task takes `change`: the open model has rates and no users to set, the
    /// closed model users and no rate; both pause.
    pub fn takes(&self, change: &Change) -> Result<(), String> {
        match (self.task.model, change) {
            (_, Change::Paused(_))
            | (Model::Open, Change::RateFactor(_) | Change::Rates { .. })
            | (Model::Closed, Change::ConcurrentUsers(_)) => Ok(()),
            (Model::Open, _) => Err("an open-model task changes by its rates \
                 (rate_factor, base_rps, peak_rps), not by its users"
                .into()),
            (Model::Closed, _) => Err("a closed-model task has no rate: \
                 change its concurrent_users"
                .into()),
        }
    }

    /// The plan as its live changes left it: the planned requests and seconds (`acc`'s), and
    /// the duration.
    pub fn replan(&mut self, adjustments: &[Adjustment], acc: &mut TaskAccumulator) {
        let task = &self.task;
        if task.model == Model::Open {
            let rates = (task.profile.base_rps, task.profile.peak_rps);
            let plan = task.rate_plan().adjusted(rates, adjustments);
            self.planned_requests = Some(plan.planned_requests(task.arrivals, task.profile.seed));
            self.duration = plan.duration();
            acc.set_planned(crate::engine::schedule::planned_seconds(plan));
        } else {
            self.duration = stretched(task.profile.duration, adjustments);
        }
    }

    /// The highest rate its plan asks for from `from_ms` on, as `adjustments` left it
    /// (`None` for the closed model).
    pub fn peak_from(&self, adjustments: &[Adjustment], from_ms: u64) -> Option<f64> {
        let task = &self.task;
        (task.model == Model::Open).then(|| {
            let rates = (task.profile.base_rps, task.profile.peak_rps);
            task.rate_plan()
                .adjusted(rates, adjustments)
                .peak_from(Duration::from_millis(from_ms))
        })
    }

    /// Its facts for the report; `aborted` is the threshold that stopped it, if one did.
    pub fn info(&self, slots: Slots, aborted: Option<(usize, u64)>) -> TaskInfo {
        let load = &self.task;
        TaskInfo {
            name: slots.name,
            model: load.model.name(),
            pattern: load.profile.pattern.name().to_string(),
            arrivals: load.arrivals.name(),
            seed: load.profile.seed,
            concurrent_users: load.concurrent_users,
            duration_s: self.duration.as_secs_f64(),
            planned_requests: self.planned_requests,
            nodes: slots.nodes,
            lost: slots.lost,
            reported_sent: slots.reported_sent,
            kind: load.label,
            judged: Vec::new(),
            thresholds: load.thresholds.clone(),
            aborted,
            tls: tls_of(load),
        }
    }
}

/// A task with https targets: whether one of them had `insecure: true`.
fn tls_of(load: &LoadTask) -> Option<TlsReport> {
    let https: Vec<_> = load
        .targets
        .iter()
        .filter(|t| t.url.scheme() == "https")
        .collect();
    (!https.is_empty()).then(|| TlsReport {
        insecure: https.iter().any(|t| t.tls.insecure),
        ..TlsReport::default()
    })
}

/// The connections a load task holds open on the node of `slot` of `nodes`: its part of the
/// task's `connections` if it has them, else of its `concurrent_users`; one at least.
pub fn connections(task: &LoadTask, slot: usize, nodes: usize) -> u32 {
    let n = nodes.max(1) as u32;
    let total = task.connections.unwrap_or(task.concurrent_users);
    (total / n + u32::from((slot as u32) < total % n)).max(1)
}
