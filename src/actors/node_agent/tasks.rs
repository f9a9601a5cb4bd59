//! The tasks of a `NodeAgent`: one [`NodeTask`] per [`TaskRef`], from the start message (or
//! the node's REST API) through validation, the worker pool or the scan, the merging of the
//! workers' windows, to the finished tasks the node keeps for its REST API.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::watch;

use super::{GetNodeStatus, NodeAgent, NodeStatus, StartLocal, StopTask, TaskStatus};
use crate::engine::share::{NodeShare, ShareTable, UserSplit};
use crate::engine::workers::WindowReport;
use crate::hub::Delivery;
use crate::messages::load::StartTask as PoolStart;
use crate::messages::wire::{NodeMsg, ScanSlice, StartTask, TaskRef};
use crate::stats::{TaskAccumulator, WindowMerger};
use crate::task::{self, TaskKind};

/// Finished tasks a node keeps (with their figures) for its REST API.
pub(super) const FINISHED_KEPT: usize = 64;

/// One task on this node, from its start message until it is forgotten (it finished and is
/// no longer among the newest [`FINISHED_KEPT`]). A task started through the node's REST API
/// has no execution: its ref is `("", N)`, its id `local-N`.
pub(super) enum NodeTask {
    /// Being validated: `stopped` once a stop came meanwhile, `reshared` the new shares that
    /// came meanwhile.
    Starting {
        stopped: bool,
        reshared: Option<ShareTable>,
    },
    Running(Box<Running>),
}

/// A task that started on this node.
pub(super) struct Running {
    /// Its id in the node's REST API: `execution:task`, or `local-N`.
    pub(super) id: String,
    pub(super) name: String,
    /// The worker pool's number of a load task: its windows come back under it.
    pub(super) pool_id: Option<usize>,
    pub(super) share: Option<Arc<NodeShare>>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) merger: WindowMerger,
    pub(super) acc: TaskAccumulator,
    /// Not confirmed after a new session (the node was fenced): it sends no more requests;
    /// its windows still go up (they account for what it sent before).
    pub(super) dropped: bool,
    /// Reported in `Running` after a new session, not confirmed or stopped since.
    pub(super) awaiting_confirm: bool,
    /// Once it has finished: its place among the finished tasks (oldest first).
    pub(super) finished: Option<u64>,
}

/// A scan report as JSON within the frame cap: when too big (thousands of findings), the
/// least severe findings are dropped, and a note says how many.
fn fit_report(report: &mut crate::task::security::ScanReport, cap: usize) -> String {
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

impl NodeAgent {
    /// The running tasks (not those being validated).
    pub(super) fn running(&self) -> impl Iterator<Item = (&TaskRef, &Running)> {
        self.tasks.iter().filter_map(|(k, t)| match t {
            NodeTask::Running(r) => Some((k, &**r)),
            NodeTask::Starting { .. } => None,
        })
    }

    pub(super) fn running_mut(&mut self) -> impl Iterator<Item = (&TaskRef, &mut Running)> {
        self.tasks.iter_mut().filter_map(|(k, t)| match t {
            NodeTask::Running(r) => Some((k, &mut **r)),
            NodeTask::Starting { .. } => None,
        })
    }

    /// The orchestrator's answer to `Running`: only the tasks of the report it answers go on
    /// or stop (a task started since is the orchestrator's own recent word).
    pub(super) fn confirm(&mut self, keep: &[TaskRef]) {
        for (k, t) in self.running_mut() {
            let asked = std::mem::take(&mut t.awaiting_confirm);
            let Some(share) = &t.share else { continue };
            if !asked {
                continue;
            }
            if keep.contains(k) {
                share.held.store(false, Ordering::Relaxed);
            } else if t.finished.is_none() {
                tracing::warn!(task = %t.id, "task not confirmed after rejoining; stopping it");
                t.dropped = true;
                let _ = t.stop.send(true);
            }
        }
    }

    pub(super) fn start_task(&mut self, st: StartTask, ctx: &mut Context<Self>) {
        if self.tasks.contains_key(&st.task) {
            return;
        }
        let Some(slot) = st.shares.slot(&self.node_id) else {
            return self.reject(st.task, "this node has no share of the task".into());
        };
        // Validation may resolve host names (the allowlist): off this event loop, which
        // also carries the heartbeats.
        let settings = self.settings.load_generation.clone();
        let (json, index) = (st.task_json.clone(), st.task.task_id as usize);
        let validated = async move {
            actix_rt::task::spawn_blocking(move || {
                let doc: serde_json::Value =
                    serde_json::from_str(&json).map_err(|e| format!("task is not JSON: {e}"))?;
                task::validate_task(&doc, index, &settings).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| format!("validation did not finish: {e}"))?
        };
        let starting = NodeTask::Starting {
            stopped: false,
            reshared: None,
        };
        self.tasks.insert(st.task.clone(), starting);
        ctx.spawn(validated.into_actor(self).map(move |res, act, ctx| {
            let (stopped, reshared) = match act.tasks.remove(&st.task) {
                Some(NodeTask::Starting { stopped, reshared }) => (stopped, reshared),
                _ => (false, None),
            };
            match res {
                Err(reason) => act.reject(st.task, reason),
                Ok(_) if stopped => {
                    let t = &st.task;
                    tracing::info!(task = %format!("{}:{}", t.execution_id, t.task_id), "stopped before it started");
                }
                Ok(task) => act.begin(st, slot, reshared, task, ctx),
            }
        }));
    }

    fn reject(&mut self, task: TaskRef, reason: String) {
        tracing::warn!(task = %format!("{}:{}", task.execution_id, task.task_id), %reason, "task refused");
        self.link
            .queue(NodeMsg::Rejected { task, reason }, Delivery::AtLeastOnce);
        self.link.flush();
    }

    /// Starts a validated task at the execution's common start.
    fn begin(
        &mut self,
        st: StartTask,
        slot: u16,
        reshared: Option<ShareTable>,
        task: task::Task,
        ctx: &mut Context<Self>,
    ) {
        let now_ms = crate::clock::unix_ms();
        let start = if st.start_unix_ms >= now_ms {
            Instant::now() + Duration::from_millis(st.start_unix_ms - now_ms)
        } else {
            Instant::now()
                .checked_sub(Duration::from_millis(now_ms - st.start_unix_ms))
                .unwrap_or_else(Instant::now)
        };
        let shares = reshared.unwrap_or(st.shares);
        let share = NodeShare::new(self.node_id.clone(), slot, shares, self.lease.clone());
        let id = format!("{}:{}", st.task.execution_id, st.task.task_id);
        self.launch(st.task, id, task, start, Some(Arc::new(share)), ctx);
    }

    /// Starts a task: a load task on the worker pool, a scan on this arbiter.
    fn launch(
        &mut self,
        key: TaskRef,
        id: String,
        task: task::Task,
        start: Instant,
        share: Option<Arc<NodeShare>>,
        ctx: &mut Context<Self>,
    ) {
        let (stop, stop_rx) = watch::channel(false);
        let mut run = Running {
            id,
            name: task.name,
            pool_id: None,
            share,
            stop,
            merger: WindowMerger::new(1),
            acc: TaskAccumulator::unplanned(1),
            dropped: false,
            awaiting_confirm: false,
            finished: None,
        };
        match task.kind {
            TaskKind::LoadTest(load) => self.launch_load(&mut run, load, start, stop_rx),
            TaskKind::SecurityTest(spec) => {
                self.launch_scan(key.clone(), &run, spec, start, stop_rx, ctx)
            }
        }
        self.tasks.insert(key, NodeTask::Running(Box::new(run)));
    }

    /// Hands a load task to the worker pool.
    fn launch_load(
        &mut self,
        run: &mut Running,
        load: task::load::LoadTask,
        start: Instant,
        stop: watch::Receiver<bool>,
    ) {
        let split = UserSplit::new(load.concurrent_users, run.share.as_deref(), self.workers);
        let pool_id = self.next_local;
        self.next_local += 1;
        let open = load.model == crate::engine::schedule::Model::Open;
        run.acc = crate::engine::schedule::accumulator(1, open.then(|| load.rate_plan()));
        run.merger = WindowMerger::new(split.shards);
        run.pool_id = Some(pool_id);
        tracing::info!(task = %run.id, shards = split.shards, "task starting");
        let load_settings = &self.settings.load_generation;
        self.pool.do_send(PoolStart {
            task_id: pool_id,
            task: Arc::new(load.traffic),
            split,
            start,
            drain: load_settings.drain_timeout,
            allowlist: load_settings.allowed_targets.clone(),
            pool_size: load_settings.connection_pool_size as usize,
            sink: self.sink(),
            stop,
            share: run.share.clone(),
        });
    }

    /// Runs a scan (this node's slice of it) on the agent's own arbiter, where its `awc`
    /// client lives, with the node's own allowlist; its report goes to the orchestrator once.
    /// A scan paces itself (`rate_limit_rps`) and does not pause with the lease.
    fn launch_scan(
        &mut self,
        key: TaskRef,
        run: &Running,
        spec: crate::task::security::ScanSpec,
        start: Instant,
        mut stop: watch::Receiver<bool>,
        ctx: &mut Context<Self>,
    ) {
        let spec = match &run.share {
            Some(s) => {
                let n = s.table().nodes.len();
                crate::task::security::distribute::slice(&spec, usize::from(s.slot), n)
            }
            None => spec,
        };
        tracing::info!(task = %run.id, endpoints = spec.endpoints.len(), "scan starting");
        let allowlist = self.settings.load_generation.allowed_targets.clone();
        let scan = async move {
            tokio::select! {
                r = async {
                    actix_rt::time::sleep_until(start.into()).await;
                    crate::task::security::scan::scan(&spec, &allowlist).await
                } => Some(r),
                _ = stop.wait_for(|stopped| *stopped) => None,
            }
        };
        ctx.spawn(
            scan.into_actor(self)
                .map(move |res, act, _| act.scan_finished(&key, res)),
        );
    }

    /// A scan ended (`None`: stopped first): the task is done; its report goes up.
    pub(super) fn scan_finished(
        &mut self,
        key: &TaskRef,
        res: Option<crate::task::security::ScanReport>,
    ) {
        let mut report = res.unwrap_or_else(|| crate::task::security::ScanReport {
            notes: vec![format!(
                "node {}: stopped before its slice was scanned",
                self.node_id
            )],
            ..Default::default()
        });
        let Some(NodeTask::Running(t)) = self.tasks.get_mut(key) else {
            return;
        };
        t.finished = Some(self.next_finished);
        self.next_finished += 1;
        let send = t.share.is_some() && !t.dropped;
        tracing::info!(task = %t.id, findings = report.findings.len(), "scan finished on this node");
        if send {
            let report_json = fit_report(&mut report, self.link.timers().max_frame);
            let slice = ScanSlice {
                task: key.clone(),
                report_json,
            };
            self.link
                .queue(NodeMsg::ScanDone(Box::new(slice)), Delivery::ExactlyOnce);
        }
        self.trim_finished();
        self.link.flush();
    }

    /// Keeps the newest [`FINISHED_KEPT`] finished tasks.
    pub(super) fn trim_finished(&mut self) {
        let mut finished: Vec<(u64, TaskRef)> = self
            .running()
            .filter_map(|(k, t)| Some((t.finished?, k.clone())))
            .collect();
        if finished.len() <= FINISHED_KEPT {
            return;
        }
        finished.sort_unstable();
        for (_, old) in &finished[..finished.len() - FINISHED_KEPT] {
            self.tasks.remove(old);
        }
    }

    pub(super) fn sink(&self) -> Recipient<WindowReport> {
        self.me
            .clone()
            .expect("the agent knows its address once started")
            .recipient()
    }
}

impl Handler<WindowReport> for NodeAgent {
    type Result = ();

    fn handle(&mut self, msg: WindowReport, _ctx: &mut Context<Self>) {
        let Some((task, t)) = self.tasks.iter_mut().find_map(|(k, t)| match t {
            NodeTask::Running(r) if r.pool_id == Some(msg.task_id) => Some((k, r)),
            _ => None,
        }) else {
            return;
        };
        t.merger.add(msg.shard, msg.window, msg.last);
        let ready = t.merger.take_ready();
        let done = t.merger.is_done();
        let n = ready.len();
        let mut out = Vec::new();
        for (i, window) in ready.into_iter().enumerate() {
            let last = done && i + 1 == n;
            self.metrics.record(&window);
            t.acc.add(0, window.clone(), last);
            // A dropped task (not confirmed after a re-join: the node was fenced) sends no
            // new request, but its windows still go up: they record the requests it sent
            // before the fence, finishing, and the orchestrator counts them once.
            if t.share.is_some() {
                let window = Box::new(window);
                let task = task.clone();
                out.push(NodeMsg::Window { task, window, last });
            }
        }
        if done && t.finished.is_none() {
            t.finished = Some(self.next_finished);
            self.next_finished += 1;
            tracing::info!(task = %t.id, "task finished on this node");
        }
        for msg in out {
            self.link.queue(msg, Delivery::ExactlyOnce);
        }
        self.trim_finished();
        self.link.flush();
    }
}

impl Handler<StartLocal> for NodeAgent {
    type Result = Result<String, crate::validate::FieldErrors>;

    fn handle(&mut self, StartLocal(doc): StartLocal, ctx: &mut Context<Self>) -> Self::Result {
        // The body is one task: its keys are named from its top (`parameters.base_rps`), not
        // as a plan's first task (`tasks[0].parameters.base_rps`).
        let task = task::validate_task(&doc, 0, &self.settings.load_generation).map_err(|e| {
            let mut fields = crate::validate::FieldErrors::default();
            match e {
                crate::plan::PlanError::Invalid(errors) => {
                    for f in errors.0 {
                        let field = f.field.strip_prefix("tasks[0]").unwrap_or(&f.field);
                        fields.push(field.trim_start_matches('.'), f.message);
                    }
                }
                other => fields.push("", other.to_string()),
            }
            fields
        })?;
        // A load task takes this number in the worker pool too (`launch_load`).
        let n = self.next_local;
        let id = format!("local-{n}");
        self.next_local += usize::from(matches!(task.kind, TaskKind::SecurityTest(_)));
        let key = TaskRef {
            execution_id: String::new(),
            task_id: n as u32,
        };
        let start = Instant::now() + Duration::from_millis(100);
        self.launch(key, id.clone(), task, start, None, ctx);
        Ok(id)
    }
}

impl Handler<StopTask> for NodeAgent {
    type Result = bool;

    fn handle(&mut self, StopTask(id): StopTask, _ctx: &mut Context<Self>) -> bool {
        match self.running().find(|(_, t)| t.id == id) {
            Some((_, t)) => {
                let _ = t.stop.send(true);
                true
            }
            None => false,
        }
    }
}

impl Handler<GetNodeStatus> for NodeAgent {
    type Result = MessageResult<GetNodeStatus>;

    fn handle(&mut self, _: GetNodeStatus, _ctx: &mut Context<Self>) -> Self::Result {
        let tasks = self
            .running()
            .map(|(_, t)| {
                let (sent, paused) = t.share.as_ref().map_or((t.acc.total().sent, 0), |s| {
                    (
                        s.sent.load(Ordering::Relaxed),
                        s.paused.load(Ordering::Relaxed),
                    )
                });
                let state = if t.finished.is_some() {
                    "finished"
                } else if *t.stop.borrow() {
                    "stopping"
                } else if t.share.as_ref().is_some_and(|s| !s.may_send()) {
                    "paused"
                } else {
                    "running"
                };
                let status = TaskStatus {
                    name: t.name.clone(),
                    state,
                    sent,
                    paused,
                    figures: t.acc.snapshot(),
                };
                (t.id.clone(), status)
            })
            .collect();
        MessageResult(NodeStatus {
            node_id: self.node_id.clone(),
            connected: self.link.is_connected(),
            epoch: self.epoch,
            lease_valid: self.lease.is_valid(),
            session: self.link.stats(),
            tasks,
        })
    }
}
