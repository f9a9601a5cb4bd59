//! `NodeAgent`: the node's side of the cluster link and the tasks it runs. Its [`NodeLink`]
//! holds the session, the connection and the pump between them (see `hub::link`); the agent
//! owns the lease, the reconnection with backoff, and the tasks: one [`NodeTask`] per
//! [`TaskRef`], with its share, its stop switch and the merging of its workers' windows into
//! one window per second, sent exactly-once. Hands the shards to the `WorkerPool`. Adds each
//! merged window and each health report to the node's `/metrics` series. Takes:
//! `WindowReport` (from the workers), `NodeHealthSampled`, `UseOrchestrator` (from the node's
//! relay), `StartLocal`, `StopTask`, `GetNodeStatus` (from the node's REST API), `Leave` (the
//! process's shutdown: stop the tasks, say goodbye, close the link, reconnect no more).
//!
//! The lease: every frame of the current session renews it for `lease_timeout`. Once it has
//! lapsed, only a new handshake restores it: frames that arrive late (a node resumed after
//! SIGSTOP reads what piled up in its socket) do not, so a node the orchestrator has given up
//! on never sends another request on an old say-so. After a handshake that did not resume the
//! session, every task is held until the orchestrator confirms it.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use tokio::sync::watch;

use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::actors::worker_pool::WorkerPool;
use crate::engine::share::{Lease, NodeShare, ShareTable, UserSplit};
use crate::engine::workers::{WindowReport, worker_count};
use crate::hub::conn::{Conn, ConnEvent};
use crate::hub::handshake::{self, Capacity, HANDSHAKE_TIMEOUT, Hello, JoinError, Welcome};
use crate::hub::link::{Event, LinkActor, LinkTimers, run_timers};
use crate::hub::{Delivery, LinkFrame};
use crate::messages::health::NodeHealthSampled;
use crate::messages::load::StartTask as PoolStart;
use crate::messages::wire::{
    NodeFrame, NodeLink, NodeMsg, OrchFrame, OrchMsg, PROTOCOL_VERSION, ScanSlice, StartTask,
    TaskProgress, TaskRef,
};
use crate::metrics::NodeMetrics;
use crate::plan::{self, TaskKind};
use crate::settings::Settings;
use crate::stats::{Snapshot, TaskAccumulator, WindowMerger};

/// How the node reaches the orchestrator.
#[derive(Clone)]
pub enum Connector {
    /// The orchestrator's `/cluster` WebSocket URL.
    Ws(String),
    /// In process: a function that opens a new in-memory connection.
    Local(Rc<dyn Fn() -> Conn>),
}

impl Connector {
    fn open(&self, cap: usize) -> LocalBoxFuture<'static, Result<Conn, String>> {
        match self {
            Connector::Ws(url) => {
                let url = url.clone();
                Box::pin(async move {
                    crate::hub::conn::connect_ws(&url, cap, HANDSHAKE_TIMEOUT)
                        .await
                        .map_err(|e| e.to_string())
                })
            }
            Connector::Local(open) => {
                let conn = open();
                Box::pin(async move { Ok(conn) })
            }
        }
    }
}

/// Finished tasks a node keeps (with their figures) for its REST API.
const FINISHED_KEPT: usize = 64;

/// Backoff between reconnection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One task on this node, from its start message until it is forgotten (it finished and is
/// no longer among the newest [`FINISHED_KEPT`]). A task started through the node's REST API
/// has no execution: its ref is `("", N)`, its id `local-N`.
enum NodeTask {
    /// Being validated: `stopped` once a stop came meanwhile, `reshared` the new shares that
    /// came meanwhile.
    Starting {
        stopped: bool,
        reshared: Option<ShareTable>,
    },
    Running(Box<Running>),
}

/// A task that started on this node.
struct Running {
    /// Its id in the node's REST API: `execution:task`, or `local-N`.
    id: String,
    name: String,
    /// The worker pool's number of a load task: its windows come back under it.
    pool_id: Option<usize>,
    share: Option<Arc<NodeShare>>,
    stop: watch::Sender<bool>,
    merger: WindowMerger,
    acc: TaskAccumulator,
    /// Not confirmed after a new session (the node was fenced): it sends no more requests;
    /// its windows still go up (they account for what it sent before).
    dropped: bool,
    /// Reported in `Running` after a new session, not confirmed or stopped since.
    awaiting_confirm: bool,
    /// Once it has finished: its place among the finished tasks (oldest first).
    finished: Option<u64>,
}

/// A task started through the node's own REST API (not part of an execution).
#[derive(Message)]
#[rtype(result = "Result<String, crate::validate::FieldErrors>")]
pub struct StartLocal(pub serde_json::Value);

/// Stop a task by its id (`execution:task`, or a local task's id).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopTask(pub String);

/// The orchestrator to join (its `/cluster` WebSocket URL), found after the agent started (by
/// discovery); ignored when the agent has one already.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseOrchestrator(pub String);

/// From the node's shutdown path (SIGTERM, Ctrl-C): stop every task, send `Goodbye` on the
/// cluster link and close it, and connect no more. Answers once the link is closed (at once
/// without one).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// The node's snapshot, for `/load/status`, `/load/metrics` and `/health`.
#[derive(Message)]
#[rtype(result = "NodeStatus")]
pub struct GetNodeStatus;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    pub node_id: String,
    pub connected: bool,
    pub epoch: u64,
    pub lease_valid: bool,
    pub session: crate::hub::SessionStats,
    pub tasks: BTreeMap<String, TaskStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskStatus {
    pub name: String,
    pub state: &'static str,
    pub sent: u64,
    pub paused: u64,
    pub figures: Snapshot,
}

pub struct NodeAgent {
    settings: Arc<Settings>,
    node_id: String,
    rest_addr: String,
    connector: Option<Connector>,
    link: NodeLink,
    session_id: Option<u64>,
    epoch: u64,
    connecting: bool,
    /// Leaving (`Leave`): never connect again.
    leaving: bool,
    /// Told when the link has closed after a goodbye (the orchestrator's close, or the end).
    left: Option<tokio::sync::oneshot::Sender<()>>,
    backoff: Duration,
    lease: Arc<Lease>,
    pool: Addr<WorkerPool>,
    workers: usize,
    tasks: HashMap<TaskRef, NodeTask>,
    /// The next local task's number (and worker pool number).
    next_local: usize,
    /// The next finished task's place ([`Running::finished`]).
    next_finished: u64,
    last_refusal: Option<String>,
    me: Option<Addr<NodeAgent>>,
    supervisor: Option<Recipient<ChildExited>>,
    /// The node monitor's latest report, sent again after each join.
    last_health: Option<crate::health::HealthReport>,
    /// The node's `/metrics` series: every merged window and health report goes in.
    metrics: Arc<NodeMetrics>,
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
    /// `connector`: `None` for a node that only serves its REST API (no orchestrator yet).
    pub fn new(
        settings: Arc<Settings>,
        node_id: String,
        rest_addr: String,
        connector: Option<Connector>,
        metrics: Arc<NodeMetrics>,
        supervisor: Option<Recipient<ChildExited>>,
    ) -> NodeAgent {
        let workers = worker_count(&settings.load_generation);
        NodeAgent {
            link: NodeLink::new(LinkTimers::from_settings(&settings)),
            node_id,
            rest_addr,
            connector,
            session_id: None,
            epoch: 0,
            connecting: false,
            leaving: false,
            left: None,
            backoff: BACKOFF_FIRST,
            lease: Arc::new(Lease::expired()),
            pool: WorkerPool::new(workers).start(),
            workers,
            tasks: HashMap::new(),
            next_local: 0,
            next_finished: 0,
            last_refusal: None,
            me: None,
            supervisor,
            last_health: None,
            metrics,
            settings,
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            node_id: self.node_id.clone(),
            protocol_version: PROTOCOL_VERSION,
            capabilities: self.settings.node.capabilities.clone(),
            capacity: Capacity {
                cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
                workers: self.workers as u32,
                max_concurrent_requests: self.settings.load_generation.max_concurrent_requests,
            },
            location: self.settings.node.location.clone(),
            rest_addr: self.rest_addr.clone(),
            session_id: self.session_id,
            recv_hwm: self.session_id.map(|_| self.link.ack_hwm()),
        }
    }

    /// The running tasks (not those being validated).
    fn running(&self) -> impl Iterator<Item = (&TaskRef, &Running)> {
        self.tasks.iter().filter_map(|(k, t)| match t {
            NodeTask::Running(r) => Some((k, &**r)),
            NodeTask::Starting { .. } => None,
        })
    }

    fn running_mut(&mut self) -> impl Iterator<Item = (&TaskRef, &mut Running)> {
        self.tasks.iter_mut().filter_map(|(k, t)| match t {
            NodeTask::Running(r) => Some((k, &mut **r)),
            NodeTask::Starting { .. } => None,
        })
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(connector) = self.connector.clone() else {
            return;
        };
        if self.connecting || self.link.is_connected() || self.leaving {
            return;
        }
        self.connecting = true;
        let hello = self.hello();
        let secret = self.settings.cluster.secret.clone();
        let cap = self.link.timers().max_frame;
        let fut = async move {
            let mut conn = connector.open(cap).await.map_err(JoinError::Refused)?;
            let welcome =
                handshake::join(&mut conn, hello, secret.as_deref(), cap, HANDSHAKE_TIMEOUT)
                    .await?;
            Ok::<_, JoinError>((conn, welcome))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.connecting = false;
            match res {
                Ok((conn, welcome)) => act.joined(conn, welcome, ctx),
                Err(e) => {
                    let why = e.to_string();
                    if act.last_refusal.as_deref() != Some(&why) {
                        tracing::warn!(node = %act.node_id, error = %why, "cannot join the orchestrator; retrying");
                        act.last_refusal = Some(why);
                    }
                    act.retry(ctx);
                }
            }
        }));
    }

    fn retry(&mut self, ctx: &mut Context<Self>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    fn joined(&mut self, conn: Conn, welcome: Welcome, ctx: &mut Context<Self>) {
        self.last_refusal = None;
        self.backoff = BACKOFF_FIRST;
        self.epoch = welcome.epoch;
        let resumed = welcome.resume && self.session_id == Some(welcome.session_id);
        if resumed {
            self.link.session().resume(welcome.recv_hwm);
        } else {
            self.link.session().restart();
            // Everything waits for the orchestrator's word (it may have moved on without us).
            for (_, t) in self.running() {
                if let Some(s) = &t.share {
                    s.held.store(true, Ordering::Relaxed);
                }
            }
        }
        self.link.session().set_epoch(welcome.epoch);
        self.session_id = Some(welcome.session_id);
        ctx.add_stream(self.link.attach(conn));
        self.lease.renew(self.link.timers().lease);
        tracing::info!(node = %self.node_id, epoch = welcome.epoch, resumed, "joined the orchestrator");
        if !resumed {
            let mut tasks = Vec::new();
            for (k, t) in self.running_mut() {
                t.awaiting_confirm = t.share.is_some() && t.finished.is_none() && !t.dropped;
                if t.awaiting_confirm {
                    tasks.push(k.clone());
                }
            }
            self.link
                .queue(NodeMsg::Running { tasks }, Delivery::AtLeastOnce);
        }
        if let Some(report) = self.last_health.clone() {
            self.link
                .queue(NodeMsg::Health(Box::new(report)), Delivery::FireAndForget);
        }
        self.link.flush();
    }

    fn disconnect(&mut self, why: &str) {
        if self.link.is_connected() {
            tracing::info!(node = %self.node_id, why, "cluster link down");
        }
        self.link.close(1000, why);
    }

    fn on_frame(&mut self, frame: LinkFrame<OrchMsg>, ctx: &mut Context<Self>) {
        if !self.lease.is_valid() {
            // Late frames never revive a lapsed lease; the tick reconnects.
            return;
        }
        self.lease.renew(self.link.timers().lease);
        self.link.receive(frame, Instant::now());
        while let Some(d) = self.link.poll_deliver() {
            // Queued for an epoch this node has left (it was fenced): not its word any more.
            if d.is_fenced(self.epoch) {
                tracing::warn!(
                    frame_epoch = d.epoch,
                    epoch = self.epoch,
                    "old-epoch message ignored"
                );
                continue;
            }
            self.on_message(d.body, ctx);
        }
        self.link.flush();
    }

    fn on_message(&mut self, msg: OrchMsg, ctx: &mut Context<Self>) {
        match msg {
            OrchMsg::Start(st) => self.start_task(*st, ctx),
            OrchMsg::Reshare { task, shares } => match self.tasks.get_mut(&task) {
                Some(NodeTask::Running(t)) => {
                    if let Some(share) = &t.share {
                        tracing::info!(task = %t.id, "new shares");
                        share.set_table(shares);
                    }
                }
                Some(NodeTask::Starting { reshared, .. }) => *reshared = Some(shares),
                None => {}
            },
            OrchMsg::Stop { task } => match self.tasks.get_mut(&task) {
                Some(NodeTask::Running(t)) => {
                    let _ = t.stop.send(true);
                }
                Some(NodeTask::Starting { stopped, .. }) => *stopped = true,
                None => {}
            },
            OrchMsg::Confirm { tasks } => self.confirm(&tasks),
        }
    }

    /// The orchestrator's answer to `Running`: only the tasks of the report it answers go on
    /// or stop (a task started since is the orchestrator's own recent word).
    fn confirm(&mut self, keep: &[TaskRef]) {
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

    fn start_task(&mut self, st: StartTask, ctx: &mut Context<Self>) {
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
                plan::validate_task(&doc, index, &settings).map_err(|e| e.to_string())
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
        task: plan::Task,
        ctx: &mut Context<Self>,
    ) {
        let now_ms = crate::execution::unix_ms();
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
        task: plan::Task,
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
            acc: TaskAccumulator::for_plan(1, None),
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
        load: plan::LoadTask,
        start: Instant,
        stop: watch::Receiver<bool>,
    ) {
        let split = UserSplit::new(load.concurrent_users, run.share.as_deref(), self.workers);
        let pool_id = self.next_local;
        self.next_local += 1;
        let open = load.model == crate::plan::Model::Open;
        run.acc = TaskAccumulator::for_plan(1, open.then(|| load.rate_plan()));
        run.merger = WindowMerger::new(split.shards);
        run.pool_id = Some(pool_id);
        tracing::info!(task = %run.id, shards = split.shards, "task starting");
        let load_settings = &self.settings.load_generation;
        self.pool.do_send(PoolStart {
            task_id: pool_id,
            task: Arc::new(load),
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
    fn scan_finished(&mut self, key: &TaskRef, res: Option<crate::task::security::ScanReport>) {
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
    fn trim_finished(&mut self) {
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

    fn sink(&self) -> Recipient<WindowReport> {
        self.me
            .clone()
            .expect("the agent knows its address once started")
            .recipient()
    }
}

impl LinkActor for NodeAgent {
    type Out = NodeFrame;
    type In = OrchFrame;

    fn link(&mut self) -> &mut NodeLink {
        &mut self.link
    }

    /// Every heartbeat: the tasks' progress and the cumulative ack go up; a link silent for
    /// the whole lease is dropped, and a node without one connects.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.link.is_connected() {
            return self.connect(ctx);
        }
        if !self.lease.is_valid() {
            // Silent for the whole lease: this link is dead; a new handshake decides.
            self.disconnect("lease lapsed");
            self.connect(ctx);
            return;
        }
        let tasks = self
            .running()
            .filter(|(_, t)| t.finished.is_none())
            .filter_map(|(k, t)| {
                let share = t.share.as_ref()?;
                Some(TaskProgress {
                    task: k.clone(),
                    sent: share.sent.load(Ordering::Relaxed),
                    paused: share.paused.load(Ordering::Relaxed),
                })
            })
            .collect();
        self.link
            .queue(NodeMsg::Status { tasks }, Delivery::FireAndForget);
        self.link.heartbeat();
        self.link.flush();
    }
}

impl Actor for NodeAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        run_timers(self, ctx);
        self.connect(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for (_, t) in self.running() {
            let _ = t.stop.send(true);
        }
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "node_agent",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl StreamHandler<ConnEvent> for NodeAgent {
    fn handle(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        match self.link.on_event(ev) {
            Some(Event::Frame(frame)) => self.on_frame(frame, ctx),
            Some(Event::Bad(Ok(other))) => {
                tracing::warn!(frame = ?other, "unexpected frame after the handshake");
            }
            Some(Event::Bad(Err(e))) => {
                tracing::warn!(error = %e, "bad frame from the orchestrator");
            }
            Some(Event::Closed) => {
                if let Some(left) = self.left.take() {
                    let _ = left.send(());
                }
                tracing::info!(node = %self.node_id, "cluster link closed; reconnecting");
                self.retry(ctx);
            }
            None => {}
        }
    }

    // One stream per connection: its end is not the agent's.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
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

impl Handler<NodeHealthSampled> for NodeAgent {
    type Result = ();

    fn handle(&mut self, NodeHealthSampled(report): NodeHealthSampled, _ctx: &mut Context<Self>) {
        self.metrics.observe_health(&report);
        self.last_health = Some(report.clone());
        if self.link.is_connected() {
            self.link
                .queue(NodeMsg::Health(Box::new(report)), Delivery::FireAndForget);
            self.link.flush();
        }
    }
}

impl Handler<UseOrchestrator> for NodeAgent {
    type Result = ();

    fn handle(&mut self, UseOrchestrator(url): UseOrchestrator, ctx: &mut Context<Self>) {
        if self.connector.is_none() {
            self.connector = Some(Connector::Ws(url));
            self.connect(ctx);
        }
    }
}

impl Handler<StartLocal> for NodeAgent {
    type Result = Result<String, crate::validate::FieldErrors>;

    fn handle(&mut self, StartLocal(doc): StartLocal, ctx: &mut Context<Self>) -> Self::Result {
        // The body is one task: its keys are named from its top (`parameters.base_rps`), not
        // as a plan's first task (`tasks[0].parameters.base_rps`).
        let task = plan::validate_task(&doc, 0, &self.settings.load_generation).map_err(|e| {
            let mut fields = crate::validate::FieldErrors::default();
            match e {
                plan::PlanError::Invalid(errors) => {
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

impl Handler<Leave> for NodeAgent {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Leave, _ctx: &mut Context<Self>) -> Self::Result {
        self.leaving = true;
        for (_, t) in self.running() {
            let _ = t.stop.send(true);
        }
        if !self.link.is_connected() {
            return Box::pin(async {});
        }
        tracing::info!(node = %self.node_id, "leaving the cluster");
        self.link.queue(NodeMsg::Goodbye, Delivery::FireAndForget);
        self.link.flush();
        self.disconnect("node leaving");
        // The closing handshake: wait until the orchestrator has closed its side too (it does
        // on the goodbye) before the process exits. A socket closed with the orchestrator's
        // heartbeats still unread is reset, and a reset can throw away the goodbye before the
        // orchestrator reads it: the node was then shown failed, not left. The caller bounds
        // the wait.
        let (left, closed) = tokio::sync::oneshot::channel();
        self.left = Some(left);
        Box::pin(async move {
            let _ = closed.await;
        })
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
