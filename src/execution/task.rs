//! One task of a running execution: what it does (its kind's [`Work`]), its shares over the
//! nodes, which of them were lost, and the accumulator of their windows.

use crate::engine::share::ShareTable;
use crate::stats::TaskAccumulator;
use crate::stats::report::TaskInfo;
use crate::stats::watch::Watch;
use crate::task::TaskKind;
use crate::task::work::{Loss, Slots, Work};

/// One task of a running execution. A scan task keeps an accumulator too (it receives no
/// windows): its slots are finished as their reports come, so completion, losses and the
/// watchdog treat both kinds alike.
pub struct ExecTask {
    pub name: String,
    pub work: Work,
    pub shares: ShareTable,
    pub lost: Vec<bool>,
    /// Per slot: the epoch a lost node was fenced at.
    pub lost_epoch: Vec<u64>,
    /// Per slot: what the node's heartbeats said it had sent.
    pub reported_sent: Vec<u64>,
    pub acc: TaskAccumulator,
    /// Timeline points already published as live `stats` events.
    pub(super) streamed: usize,
    /// What watches the task's merged seconds (its thresholds), and may stop the run.
    pub watches: Vec<Watch>,
}

impl ExecTask {
    /// A task of `kind` over `nodes` (a scan may use only the first few).
    pub fn new(name: String, kind: &TaskKind, nodes: &[String]) -> ExecTask {
        let (work, shares, acc, watches) = Work::plan(kind, nodes);
        let n = shares.nodes.len();
        ExecTask {
            name,
            work,
            lost: vec![false; n],
            lost_epoch: vec![0; n],
            reported_sent: vec![0; n],
            acc,
            shares,
            streamed: 0,
            watches,
        }
    }

    /// The task's part of the report that only its kind has.
    pub fn section(&self) -> crate::task::report::Section {
        self.work.section(&self.shares.nodes, self.acc.timeline())
    }

    /// Takes a node's job result (JSON, read by the task's kind); `false` when the task does
    /// not run as a job, the node has no slot, was lost, or already sent it (a resent result
    /// counts once).
    pub fn add_result(&mut self, node: &str, json: &str) -> bool {
        let Some(slot) = self.shares.slot(node).map(usize::from) else {
            return false;
        };
        if self.lost[slot] {
            return false;
        }
        let Some(sent) = self.work.add_result(slot, node, json) else {
            return false;
        };
        self.reported_sent[slot] = sent;
        self.acc.finish(slot);
        true
    }

    /// Marks the node of `slot` lost (fenced at `epoch`); `None` when it was lost already or
    /// had finished. While the execution winds down no policy applies; otherwise the task's
    /// kind says what the loss means (a re-split takes effect `at_ms` after the start).
    pub fn lose(&mut self, slot: u16, epoch: u64, at_ms: u64, winding_down: bool) -> Option<Loss> {
        let s = slot as usize;
        if self.lost[s] || self.acc.is_shard_done(s) {
            return None;
        }
        self.lost[s] = true;
        self.lost_epoch[s] = epoch;
        self.acc.finish(s);
        if winding_down {
            return Some(Loss::Tolerated);
        }
        let node = self.shares.nodes[s].clone();
        Some(
            self.work
                .on_loss(&self.name, &node, slot, &mut self.shares, at_ms),
        )
    }

    pub fn info(&self) -> TaskInfo {
        let slots = Slots {
            name: self.name.clone(),
            nodes: self.shares.nodes.clone(),
            lost: self.lost.clone(),
            reported_sent: self.reported_sent.clone(),
        };
        let aborted = self.watches.iter().find_map(|w| match w {
            Watch::Thresholds(t) => t.aborted(),
            Watch::Kind(_) => None,
        });
        self.work.info(slots, aborted)
    }
}
