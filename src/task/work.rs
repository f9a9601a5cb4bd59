//! What a task does, by kind, on both sides of the cluster, each arm calling into its kind's
//! folder. On the orchestrator's side, [`Work`] (`load/exec.rs`, `security/exec.rs`): the
//! execution (`crate::execution`) holds one per task and asks it whatever depends on the kind.
//! On a node, [`Work::on_node`] (`load/node.rs`, `security/node.rs`) turns the task into a
//! [`NodeRun`], a mechanism the node agent runs without knowing the kinds.

use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use tokio::sync::watch;

use crate::allowlist::Allowlist;
use crate::engine::schedule::RatePlan;
use crate::engine::schedule::adjust::{Adjustment, Change};
use crate::engine::share::{NodeShare, ShareTable, UserSplit};
use crate::engine::target::Traffic;
use crate::stats::TaskAccumulator;
use crate::stats::report::TaskInfo;
use crate::stats::watch::Watch;
use crate::task::TaskKind;

use crate::task::load::exec as load;

pub use crate::task::load::exec::LoadWork;
pub use crate::task::security::exec::ScanWork;

/// What a task of a running execution does.
pub enum Work {
    /// A load test: its rate plan split into shares over its nodes.
    Load(LoadWork),
    /// A security scan: its endpoints dealt over its nodes.
    Scan(ScanWork),
}

/// What the loss of one of its nodes means for a task.
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    /// It goes on without the node's part.
    Tolerated,
    /// Its share table was re-split over the survivors.
    Reshared,
    /// The execution fails, with the reason.
    Fail(String),
}

/// What a node knows of itself when it starts its part of a task.
pub struct NodeCtx<'a> {
    /// The task's id in the node's REST API (for the logs).
    pub id: &'a str,
    pub node_id: &'a str,
    /// The node's share of the task in a cluster; `None` standalone (the node's REST API).
    pub share: Option<&'a NodeShare>,
    /// The worker pool's workers.
    pub workers: usize,
    /// The node's own allowlist (its own settings, checked again after DNS at connect time).
    pub allowlist: &'a Allowlist,
    /// The largest frame the link carries.
    pub max_frame: usize,
}

/// How a node runs its part of a task: the mechanisms the node agent knows.
pub enum NodeRun {
    /// Traffic for the worker pool, split into shards; its windows merge into the task's
    /// figures, accounted against `rate_plan` (open model).
    Pool {
        traffic: Traffic,
        split: UserSplit,
        rate_plan: Option<RatePlan>,
    },
    /// A job on the agent's arbiter (it ends early when told to stop); its result, JSON within
    /// the frame cap, goes to the orchestrator once, which hands it to the task's [`Work`].
    Job(LocalBoxFuture<'static, String>),
}

/// The per-slot facts of a task that go into its report.
pub struct Slots {
    pub name: String,
    pub nodes: Vec<String>,
    pub lost: Vec<bool>,
    pub reported_sent: Vec<u64>,
}

impl Work {
    /// A task of `kind` planned over `nodes`: what it does, its share table, the accumulator
    /// of its nodes' windows (a scan's, which receives none, finishes its slots as their
    /// reports come), and the watches of its merged seconds.
    pub fn plan(
        kind: &TaskKind,
        nodes: &[String],
    ) -> (Work, ShareTable, TaskAccumulator, Vec<Watch>) {
        match kind {
            TaskKind::LoadTest(task) => {
                let (work, acc, watches) = LoadWork::new(task.clone(), nodes.len());
                let shares = ShareTable::equal(nodes.to_vec());
                (Work::Load(work), shares, acc, watches)
            }
            TaskKind::SecurityTest(spec) => {
                let n = ScanWork::node_count(spec, nodes.len());
                let work = ScanWork::new(spec.clone(), n);
                let shares = ShareTable::equal(nodes[..n].to_vec());
                (
                    Work::Scan(work),
                    shares,
                    TaskAccumulator::unplanned(n),
                    Vec::new(),
                )
            }
        }
    }

    /// How a node runs its part of a task, from `start` until done or `stop`.
    pub fn on_node(
        kind: TaskKind,
        ctx: &NodeCtx,
        start: Instant,
        stop: watch::Receiver<bool>,
    ) -> NodeRun {
        match kind {
            TaskKind::LoadTest(load) => crate::task::load::node::run(load, ctx),
            TaskKind::SecurityTest(spec) => {
                crate::task::security::node::run(spec, ctx, start, stop)
            }
        }
    }

    /// A task's planned duration.
    pub fn duration(kind: &TaskKind) -> Duration {
        match kind {
            TaskKind::LoadTest(l) => l.profile.duration,
            TaskKind::SecurityTest(spec) => ScanWork::duration(spec),
        }
    }

    /// How much longer than planned a task may take before the watchdog gives up on it.
    pub fn slack(kind: &TaskKind) -> Duration {
        match kind {
            TaskKind::LoadTest(_) => Duration::ZERO,
            TaskKind::SecurityTest(spec) => ScanWork::slack(spec),
        }
    }

    /// The node capability a task needs.
    pub fn capability(kind: &TaskKind) -> &'static str {
        match kind {
            TaskKind::LoadTest(_) => "http_load",
            TaskKind::SecurityTest(_) => "security_testing",
        }
    }

    /// The connections a task holds open on the node of `slot` of `nodes`.
    pub fn connections(kind: &TaskKind, slot: usize, nodes: usize) -> u32 {
        match kind {
            TaskKind::LoadTest(l) => load::connections(l, slot, nodes),
            // One request at a time, on the nodes that get a slice.
            TaskKind::SecurityTest(spec) => u32::from(slot < ScanWork::node_count(spec, nodes)),
        }
    }

    /// What the loss of `slot` means for the task. A scan's lost slice is reported as not
    /// scanned; the others go on.
    pub fn on_loss(
        &self,
        name: &str,
        node: &str,
        slot: u16,
        shares: &mut ShareTable,
        at_ms: u64,
    ) -> Loss {
        match self {
            Work::Load(l) => l.on_loss(name, node, slot, shares, at_ms),
            Work::Scan(_) => Loss::Tolerated,
        }
    }

    /// Whether the task takes a live `change`, and why not.
    pub fn takes(&self, change: &Change) -> Result<(), String> {
        match self {
            Work::Load(l) => l.takes(change),
            Work::Scan(_) => Err("a security_test runs its checks as they come: \
                 it has no rate or users to change"
                .into()),
        }
    }

    /// The task's plan as its live `adjustments` left it (its planned figures in `acc`).
    pub fn replan(&mut self, adjustments: &[Adjustment], acc: &mut TaskAccumulator) {
        if let Work::Load(l) = self {
            l.replan(adjustments, acc);
        }
    }

    /// The highest rate the task plans from `from_ms` on under `adjustments` (`None`
    /// without a rate plan).
    pub fn peak_from(&self, adjustments: &[Adjustment], from_ms: u64) -> Option<f64> {
        match self {
            Work::Load(l) => l.peak_from(adjustments, from_ms),
            Work::Scan(_) => None,
        }
    }

    /// How long the task runs now (a pause makes a load task longer); `None`: as planned.
    pub fn live_duration(&self) -> Option<Duration> {
        match self {
            Work::Load(l) => Some(l.duration),
            Work::Scan(_) => None,
        }
    }

    /// Takes the result of the job `slot` (on `node`) ran, as the node sent it (a
    /// [`NodeRun::Job`]'s JSON), each kind reading its own: the requests the node sent, or
    /// `None` for a kind that runs no job, or a result already in.
    pub fn add_result(&mut self, slot: usize, node: &str, json: &str) -> Option<u64> {
        match self {
            Work::Scan(s) => s.add_result(slot, node, json),
            Work::Load(_) => None,
        }
    }

    /// The task's part of the report that only its kind has, from its merged `timeline` and
    /// (a scan) its slices over `nodes`.
    pub fn section(
        &self,
        nodes: &[String],
        timeline: &[crate::stats::TimelinePoint],
    ) -> crate::task::report::Section {
        use crate::task::report::Section;
        match self {
            Work::Load(l) => Section::of_load(l.task.stress.as_ref(), timeline),
            Work::Scan(s) => Section::Security(s.report(nodes)),
        }
    }

    /// The task's facts for its report; `aborted` is the threshold that stopped it, if one
    /// did.
    pub fn info(&self, slots: Slots, aborted: Option<(usize, u64)>) -> TaskInfo {
        match self {
            Work::Load(l) => l.info(slots, aborted),
            Work::Scan(s) => s.info(slots),
        }
    }
}
