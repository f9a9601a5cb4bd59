//! The tasks of a `NodeAgent`: one [`NodeTask`] per [`TaskRef`], from the start message (or
//! the node's REST API) through the node's own allowlist check, the worker pool or a job (what
//! the task's kind makes of it: [`Work::on_node`]), the merging of the workers' windows, to the
//! finished tasks the node keeps for its REST API. Nothing here knows the task kinds.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::watch;

use super::{GetNodeStatus, NodeAgent, NodeStatus, StartLocal, StopTask, TaskStatus};
use crate::engine::share::{NodeShare, ShareTable};
use crate::engine::workers::WindowReport;
use crate::hub::Delivery;
use crate::messages::load::StartTask as PoolStart;
use crate::messages::wire::{JobResult, NodeMsg, StartTask, TaskRef};
use crate::stats::{TaskAccumulator, WindowMerger};
use crate::task::{self, work::NodeCtx, work::NodeRun, work::Work};

/// Finished tasks a node keeps (with their figures) for its REST API.
pub(super) const FINISHED_KEPT: usize = 64;

/// One task on this node, from its start message until it is forgotten (it finished and is
/// no longer among the newest [`FINISHED_KEPT`]). A task started through the node's REST API
/// has no execution: its ref is `("", N)`, its id `local-N`.
pub(super) enum NodeTask {
    /// Its targets being checked against the node's allowlist: `stopped` once a stop came
    /// meanwhile, `reshared` the new shares that came meanwhile.
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

impl NodeAgent {
    /// The running tasks (not those whose targets are being checked).
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
        // The orchestrator validated the task against its settings; the node checks only its
        // targets against its own allowlist. That may resolve host names: off this event
        // loop, which also carries the heartbeats.
        let allowlist = self.settings.load_generation.allowed_targets.clone();
        let spec = st.spec.clone();
        let allowed = async move {
            actix_rt::task::spawn_blocking(move || spec.check_allowed(&allowlist).map(|()| spec))
                .await
                .map_err(|e| format!("the allowlist check did not finish: {e}"))?
        };
        let starting = NodeTask::Starting {
            stopped: false,
            reshared: None,
        };
        self.tasks.insert(st.task.clone(), starting);
        ctx.spawn(allowed.into_actor(self).map(move |res, act, ctx| {
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

    /// Starts a task its node allows at the execution's common start.
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

    /// Starts a task by what its kind makes of it: traffic for the worker pool, or a job on
    /// this arbiter. Every task takes a number (a pool task's windows come back under it).
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
        let number = self.next_local;
        self.next_local += 1;
        let load_settings = &self.settings.load_generation;
        let node = NodeCtx {
            id: &id,
            node_id: &self.node_id,
            share: share.as_deref(),
            workers: self.workers,
            allowlist: &load_settings.allowed_targets,
            max_frame: self.link.timers().max_frame,
        };
        let run = Work::on_node(task.kind, &node, start, stop_rx.clone());
        let mut running = Running {
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
        match run {
            NodeRun::Pool {
                traffic,
                split,
                rate_plan,
            } => {
                running.acc = crate::engine::schedule::accumulator(1, rate_plan)
                    .named(traffic.request_names());
                running.merger = WindowMerger::new(split.shards);
                running.pool_id = Some(number);
                tracing::info!(task = %running.id, shards = split.shards, "task starting");
                self.pool.do_send(PoolStart {
                    task_id: number,
                    task: Arc::new(traffic),
                    split,
                    start,
                    drain: load_settings.drain_timeout,
                    allowlist: load_settings.allowed_targets.clone(),
                    pool_size: load_settings.connection_pool_size as usize,
                    sink: self.sink(),
                    stop: stop_rx,
                    share: running.share.clone(),
                });
            }
            NodeRun::Job(job) => {
                let key = key.clone();
                ctx.spawn(
                    job.into_actor(self)
                        .map(move |result, act, _| act.job_finished(&key, result)),
                );
            }
        }
        self.tasks.insert(key, NodeTask::Running(Box::new(running)));
    }

    /// A job ended (it was stopped, or done): the task is done; its result goes up once.
    pub(super) fn job_finished(&mut self, key: &TaskRef, result: String) {
        let Some(NodeTask::Running(t)) = self.tasks.get_mut(key) else {
            return;
        };
        t.finished = Some(self.next_finished);
        self.next_finished += 1;
        if t.share.is_some() && !t.dropped {
            let done = JobResult {
                task: key.clone(),
                result_json: result,
            };
            self.link
                .queue(NodeMsg::JobDone(Box::new(done)), Delivery::ExactlyOnce);
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
            self.metrics.record(&window, t.acc.names());
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
        // `launch` takes this number (a pool task's windows come back under it).
        let n = self.next_local;
        let id = format!("local-{n}");
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
            join_error: self
                .last_refusal
                .clone()
                .filter(|_| !self.link.is_connected()),
            epoch: self.epoch,
            lease_valid: self.lease.is_valid(),
            session: self.link.stats(),
            tasks,
        })
    }
}
