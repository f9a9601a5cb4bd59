//! `NodeAgent`: the node's side of the cluster link and the tasks it runs. Owns the session
//! state machine, the lease, the reconnection with backoff, and the running tasks (their
//! shares, stop switches and the merging of their workers' windows into one window per second,
//! sent exactly-once). Hands the shards to the `WorkerPool`. Adds each merged window and each
//! health report to the node's `/metrics` series. Takes: `WindowReport` (from the workers),
//! `StartLocal`, `StopLocal`, `GetNodeStatus` (from the node's REST API), `Leave` (the
//! process's shutdown: stop the tasks, say goodbye, close the link, reconnect no more).
//!
//! The lease: every frame of the current session renews it for `lease_timeout`. Once it has
//! lapsed, only a new handshake restores it: frames that arrive late (a node resumed after
//! SIGSTOP reads what piled up in its socket) do not, so a node the orchestrator has given up
//! on never sends another request on an old say-so. After a handshake that did not resume the
//! session, every task is held until the orchestrator confirms it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::actors::node_proxy::LinkTimers;
use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::actors::worker_pool::WorkerPool;
use crate::hub::conn::{Conn, ConnEvent, Out, events};
use crate::hub::handshake::{self, HANDSHAKE_TIMEOUT, JoinError};
use crate::hub::{Delivery, Session};
use crate::messages::health::NodeHealthSampled;
use crate::messages::load::{
    Lease, NodeShare, StartTask as PoolStart, WindowReport, node_users, shard_count,
};
use crate::messages::wire::{
    self, Capacity, Hello, NodeMsg, OrchFrame, OrchMsg, PROTOCOL_VERSION, ScanSlice, StartTask,
    TaskProgress, TaskRef, TaskWindow, Welcome, WireWindow,
};
use crate::metrics::NodeMetrics;
use crate::plan;
use crate::settings::Settings;
use crate::settings::worker_count;
use crate::stats::{Snapshot, TaskAccumulator, WindowMerger};
use crate::task::{self, TaskKind};

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

/// How soon a flush that found the connection's queue full tries again.
pub const FLUSH_RETRY: Duration = Duration::from_millis(5);

/// Backoff between reconnection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One task this node runs.
struct Running {
    name: String,
    share: Option<Arc<NodeShare>>,
    stop: watch::Sender<bool>,
    merger: WindowMerger,
    acc: TaskAccumulator,
    /// Not confirmed after a new session (the node was fenced): it sends no more requests;
    /// its windows still go up (they account for what it sent before).
    dropped: bool,
    done: bool,
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
    timers: LinkTimers,
    session: Session<NodeMsg, OrchMsg>,
    session_id: Option<u64>,
    epoch: u64,
    conn: Option<mpsc::Sender<Out>>,
    generation: u64,
    connecting: bool,
    /// Leaving (`Leave`): never connect again.
    leaving: bool,
    /// Told when the link has closed after a goodbye (the orchestrator's close, or the end).
    left: Option<tokio::sync::oneshot::Sender<()>>,
    backoff: Duration,
    lease: Arc<Lease>,
    pool: Addr<WorkerPool>,
    workers: usize,
    tasks: HashMap<String, Running>,
    refs: HashMap<String, TaskRef>,
    local_ids: HashMap<usize, String>,
    next_local: usize,
    /// Messages waiting for room in the outbox, with their delivery mode.
    waiting: VecDeque<(NodeMsg, Delivery)>,
    last_refusal: Option<String>,
    me: Option<Addr<NodeAgent>>,
    /// Tasks reported in `Running` and not confirmed or stopped yet.
    awaiting_confirm: Vec<String>,
    /// Tasks being validated; `true` once a stop came for one meanwhile.
    starting: HashMap<String, bool>,
    /// Finished tasks, oldest first; only the newest [`FINISHED_KEPT`] are kept for the API.
    finished: VecDeque<String>,
    /// New shares that came for a task still being validated.
    reshared_early: HashMap<String, crate::engine::share::ShareTable>,
    supervisor: Option<Recipient<ChildExited>>,
    /// The connection's queue was full at the last flush: flush again soon.
    blocked: bool,
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

fn key(t: &TaskRef) -> String {
    format!("{}:{}", t.execution_id, t.task_id)
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
        let timers = LinkTimers::from_settings(&settings);
        let workers = worker_count(&settings.load_generation);
        NodeAgent {
            session: Session::new(timers.session_config()),
            timers,
            node_id,
            rest_addr,
            connector,
            session_id: None,
            epoch: 0,
            conn: None,
            generation: 0,
            connecting: false,
            leaving: false,
            left: None,
            backoff: BACKOFF_FIRST,
            lease: Arc::new(Lease::expired()),
            pool: WorkerPool::new(workers).start(),
            workers,
            tasks: HashMap::new(),
            refs: HashMap::new(),
            local_ids: HashMap::new(),
            next_local: 0,
            waiting: VecDeque::new(),
            last_refusal: None,
            me: None,
            awaiting_confirm: Vec::new(),
            starting: HashMap::new(),
            reshared_early: HashMap::new(),
            finished: VecDeque::new(),
            supervisor,
            blocked: false,
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
            recv_hwm: self.session_id.map(|_| self.session.ack_hwm()),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(connector) = self.connector.clone() else {
            return;
        };
        if self.connecting || self.conn.is_some() || self.leaving {
            return;
        }
        self.connecting = true;
        let hello = self.hello();
        let secret = self.settings.cluster.secret.clone();
        let cap = self.timers.max_frame;
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
            self.session.resume(welcome.recv_hwm);
        } else {
            self.session.restart();
            // Everything waits for the orchestrator's word (it may have moved on without us).
            for t in self.tasks.values() {
                if let Some(s) = &t.share {
                    s.held.store(true, Ordering::Relaxed);
                }
            }
        }
        self.session.set_epoch(welcome.epoch);
        self.session_id = Some(welcome.session_id);
        self.generation += 1;
        let generation = self.generation;
        self.conn = Some(conn.tx);
        let frames = events(conn.rx, generation);
        ctx.add_stream(frames);
        self.lease.renew(self.timers.lease);
        tracing::info!(node = %self.node_id, epoch = welcome.epoch, resumed, "joined the orchestrator");
        if !resumed {
            let held: Vec<String> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.share.is_some() && !t.done && !t.dropped)
                .map(|(k, _)| k.clone())
                .collect();
            let tasks = held
                .iter()
                .filter_map(|k| self.refs.get(k).cloned())
                .collect();
            self.awaiting_confirm = held;
            self.send(NodeMsg::Running { tasks }, Delivery::AtLeastOnce);
        }
        if let Some(report) = self.last_health.clone() {
            self.send(NodeMsg::Health(Box::new(report)), Delivery::FireAndForget);
        }
        self.flush();
    }

    fn disconnect(&mut self, why: &str) {
        if let Some(tx) = self.conn.take() {
            tracing::info!(node = %self.node_id, why, "cluster link down");
            let _ = tx.try_send(Out::Close {
                code: 1000,
                reason: why.to_string(),
            });
        }
        self.session.on_disconnect();
    }

    fn send(&mut self, msg: NodeMsg, delivery: Delivery) {
        if !self.waiting.is_empty() && delivery != Delivery::FireAndForget {
            self.waiting.push_back((msg, delivery));
            return;
        }
        if let Err(full) = self.session.send(msg, delivery, Instant::now()) {
            self.waiting.push_back((full.body, full.delivery));
        }
    }

    fn flush(&mut self) {
        while let Some((msg, delivery)) = self.waiting.pop_front() {
            if let Err(full) = self.session.send(msg, delivery, Instant::now()) {
                self.waiting.push_front((full.body, full.delivery));
                break;
            }
        }
        let Some(tx) = &self.conn else { return };
        let now = Instant::now();
        // Only as many frames as the connection takes now; the rest stay in the session
        // until the queue drains (see FLUSH_RETRY), instead of being lost and resent later.
        self.blocked = false;
        while tx.capacity() > 0 {
            let Some(frame) = self.session.poll_transmit(now) else {
                return;
            };
            match wire::encode(&wire::NodeFrame::Link(frame), self.timers.max_frame) {
                Ok(bytes) => {
                    let _ = tx.try_send(Out::Frame(bytes.into()));
                }
                Err(e) => tracing::error!(error = %e, "frame not sent"),
            }
        }
        self.blocked = true;
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.conn.is_some() {
            if !self.lease.is_valid() {
                // Silent for the whole lease: this link is dead; a new handshake decides.
                self.disconnect("lease lapsed");
                self.connect(ctx);
                return;
            }
            let tasks = self
                .tasks
                .iter()
                .filter(|(_, t)| !t.done)
                .filter_map(|(k, t)| {
                    let share = t.share.as_ref()?;
                    Some(TaskProgress {
                        task: self.refs.get(k)?.clone(),
                        sent: share.sent.load(Ordering::Relaxed),
                        paused: share.paused.load(Ordering::Relaxed),
                    })
                })
                .collect();
            self.send(NodeMsg::Status { tasks }, Delivery::FireAndForget);
            let ack = self.session.ack_frame();
            if let Some(tx) = &self.conn
                && let Ok(bytes) = wire::encode(&wire::NodeFrame::Link(ack), self.timers.max_frame)
            {
                let _ = tx.try_send(Out::Frame(bytes.into()));
            }
            self.flush();
        } else {
            self.connect(ctx);
        }
    }

    fn on_frame(&mut self, bytes: &[u8], ctx: &mut Context<Self>) {
        let frame = match wire::decode::<OrchFrame>(bytes, self.timers.max_frame) {
            Ok(OrchFrame::Link(f)) => f,
            Ok(other) => {
                tracing::warn!(frame = ?other, "unexpected frame after the handshake");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "bad frame from the orchestrator");
                return;
            }
        };
        if !self.lease.is_valid() {
            // Late frames never revive a lapsed lease; the tick reconnects.
            return;
        }
        self.lease.renew(self.timers.lease);
        self.session.on_frame(frame, Instant::now());
        while let Some(d) = self.session.poll_deliver() {
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
        self.flush();
    }

    fn on_message(&mut self, msg: OrchMsg, ctx: &mut Context<Self>) {
        match msg {
            OrchMsg::Start(st) => self.start_task(*st, ctx),
            OrchMsg::Reshare { task, shares } => {
                let k = key(&task);
                if let Some(share) = self.tasks.get(&k).and_then(|t| t.share.as_ref()) {
                    tracing::info!(task = %k, "new shares");
                    share.set_table(shares);
                } else if self.starting.contains_key(&k) {
                    self.reshared_early.insert(k, shares);
                }
            }
            OrchMsg::Stop { task } => {
                let k = key(&task);
                if let Some(t) = self.tasks.get(&k) {
                    let _ = t.stop.send(true);
                }
                if let Some(stopped) = self.starting.get_mut(&k) {
                    *stopped = true;
                }
            }
            OrchMsg::Confirm { tasks } => {
                // Only the tasks of the report this answers: a task started since is the
                // orchestrator's own recent word.
                let keep: Vec<String> = tasks.iter().map(key).collect();
                let asked = std::mem::take(&mut self.awaiting_confirm);
                for (k, t) in &mut self.tasks {
                    let Some(share) = &t.share else { continue };
                    if !asked.contains(k) {
                        continue;
                    }
                    if keep.contains(k) {
                        share.held.store(false, Ordering::Relaxed);
                    } else if !t.done {
                        tracing::warn!(task = %k, "task not confirmed after rejoining; stopping it");
                        t.dropped = true;
                        let _ = t.stop.send(true);
                    }
                }
            }
        }
    }

    fn start_task(&mut self, st: StartTask, ctx: &mut Context<Self>) {
        let k = key(&st.task);
        if self.tasks.contains_key(&k) || self.starting.contains_key(&k) {
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
        self.starting.insert(k.clone(), false);
        ctx.spawn(validated.into_actor(self).map(move |res, act, ctx| {
            let stopped = act.starting.remove(&k).unwrap_or(false);
            if stopped {
                act.reshared_early.remove(&k);
            }
            match res {
                Err(reason) => act.reject(st.task, reason),
                Ok(_) if stopped => tracing::info!(task = %k, "stopped before it started"),
                Ok(task) => act.begin(k, st, slot, task, ctx),
            }
        }));
    }

    fn reject(&mut self, task: TaskRef, reason: String) {
        tracing::warn!(task = %key(&task), %reason, "task refused");
        self.send(NodeMsg::Rejected { task, reason }, Delivery::AtLeastOnce);
        self.flush();
    }

    /// Starts a validated task at the execution's common start.
    fn begin(
        &mut self,
        k: String,
        st: StartTask,
        slot: u16,
        task: task::Task,
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
        let shares = self.reshared_early.remove(&k).unwrap_or(st.shares);
        let share = Arc::new(NodeShare::new(
            self.node_id.clone(),
            slot,
            shares,
            self.lease.clone(),
        ));
        self.refs.insert(k.clone(), st.task.clone());
        self.launch(k, task, start, Some(share), ctx);
    }

    /// Hands a task to the worker pool.
    fn launch(
        &mut self,
        k: String,
        task: task::Task,
        start: Instant,
        share: Option<Arc<NodeShare>>,
        ctx: &mut Context<Self>,
    ) {
        let load = match task.kind {
            TaskKind::LoadTest(load) => load,
            TaskKind::SecurityTest(spec) => {
                return self.launch_scan(k, task.name, spec, start, share, ctx);
            }
        };
        let users = node_users(load.concurrent_users, share.as_deref());
        let shards = shard_count(self.workers, users);
        let local_id = self.next_local;
        self.next_local += 1;
        let (stop_tx, stop_rx) = watch::channel(false);
        let open = load.model == crate::task::load::Model::Open;
        let acc = TaskAccumulator::for_plan(1, open.then(|| load.rate_plan()));
        let msg = PoolStart {
            task_id: local_id,
            task: Arc::new(load),
            start,
            drain: self.settings.load_generation.drain_timeout,
            allowlist: self.settings.load_generation.allowed_targets.clone(),
            pool_size: self.settings.load_generation.connection_pool_size as usize,
            sink: self.recipient_placeholder(),
            stop: stop_rx,
            share: share.clone(),
        };
        tracing::info!(task = %k, shards, "task starting");
        self.local_ids.insert(local_id, k.clone());
        self.tasks.insert(
            k,
            Running {
                name: task.name,
                share,
                stop: stop_tx,
                merger: WindowMerger::new(shards),
                acc,
                dropped: false,
                done: false,
            },
        );
        self.pool.do_send(msg);
    }

    /// Runs a scan (this node's slice of it) on the agent's own arbiter, where its `awc`
    /// client lives, with the node's own allowlist; its report goes to the orchestrator once.
    /// A scan paces itself (`rate_limit_rps`) and does not pause with the lease.
    fn launch_scan(
        &mut self,
        k: String,
        name: String,
        spec: crate::task::security::ScanSpec,
        start: Instant,
        share: Option<Arc<NodeShare>>,
        ctx: &mut Context<Self>,
    ) {
        let spec = match &share {
            Some(s) => {
                let n = s.table().nodes.len();
                crate::task::security::distribute::slice(&spec, usize::from(s.slot), n)
            }
            None => spec,
        };
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tracing::info!(task = %k, endpoints = spec.endpoints.len(), "scan starting");
        self.tasks.insert(
            k.clone(),
            Running {
                name,
                share,
                stop: stop_tx,
                merger: WindowMerger::new(1),
                acc: TaskAccumulator::for_plan(1, None),
                dropped: false,
                done: false,
            },
        );
        let allowlist = self.settings.load_generation.allowed_targets.clone();
        let run = async move {
            tokio::select! {
                r = async {
                    actix_rt::time::sleep_until(start.into()).await;
                    crate::task::security::scan::scan(&spec, &allowlist).await
                } => Some(r),
                _ = stop_rx.wait_for(|stopped| *stopped) => None,
            }
        };
        ctx.spawn(
            run.into_actor(self)
                .map(move |res, act, _| act.scan_finished(k, res)),
        );
    }

    /// A scan ended (`None`: stopped first): the task is done; its report goes up.
    fn scan_finished(&mut self, k: String, res: Option<crate::task::security::ScanReport>) {
        let mut report = res.unwrap_or_else(|| crate::task::security::ScanReport {
            notes: vec![format!(
                "node {}: stopped before its slice was scanned",
                self.node_id
            )],
            ..Default::default()
        });
        let Some(t) = self.tasks.get_mut(&k) else {
            return;
        };
        t.done = true;
        let send = t.share.is_some() && !t.dropped;
        tracing::info!(task = %k, findings = report.findings.len(), "scan finished on this node");
        self.finished.push_back(k.clone());
        if let (true, Some(task)) = (send, self.refs.get(&k).cloned()) {
            let report_json = fit_report(&mut report, self.timers.max_frame);
            let slice = ScanSlice { task, report_json };
            self.send(NodeMsg::ScanDone(Box::new(slice)), Delivery::ExactlyOnce);
        }
        self.trim_finished();
        self.flush();
    }

    /// Keeps the newest [`FINISHED_KEPT`] finished tasks.
    fn trim_finished(&mut self) {
        while self.finished.len() > FINISHED_KEPT {
            if let Some(old) = self.finished.pop_front() {
                self.tasks.remove(&old);
                self.refs.remove(&old);
                self.local_ids.retain(|_, v| *v != old);
            }
        }
    }

    fn recipient_placeholder(&self) -> Recipient<WindowReport> {
        self.me
            .clone()
            .expect("the agent knows its address once started")
            .recipient()
    }
}

impl Actor for NodeAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        ctx.run_interval(self.timers.heartbeat, |act, ctx| act.tick(ctx));
        ctx.run_interval(FLUSH_RETRY, |act, _| {
            if act.blocked {
                act.flush();
            }
        });
        self.connect(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for t in self.tasks.values() {
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
        match ev {
            ConnEvent::Frame(g, bytes) if g == self.generation => self.on_frame(&bytes, ctx),
            ConnEvent::Closed(g) if g == self.generation => {
                if let Some(left) = self.left.take() {
                    let _ = left.send(());
                }
                self.conn = None;
                self.session.on_disconnect();
                tracing::info!(node = %self.node_id, "cluster link closed; reconnecting");
                self.retry(ctx);
            }
            _ => {}
        }
    }

    // One stream per connection: its end is not the agent's.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<WindowReport> for NodeAgent {
    type Result = ();

    fn handle(&mut self, msg: WindowReport, _ctx: &mut Context<Self>) {
        let Some(k) = self.local_ids.get(&msg.task_id).cloned() else {
            return;
        };
        let Some(t) = self.tasks.get_mut(&k) else {
            return;
        };
        t.merger.add(msg.shard, msg.window, msg.last);
        let ready = t.merger.take_ready();
        let done = t.merger.is_done();
        let n = ready.len();
        let mut out = Vec::new();
        for (i, w) in ready.into_iter().enumerate() {
            let last = done && i + 1 == n;
            self.metrics.record(&w);
            t.acc.add(0, w.clone(), last);
            // A dropped task (not confirmed after a re-join: the node was fenced) sends no
            // new request, but its windows still go up: they record the requests it sent
            // before the fence, finishing, and the orchestrator counts them once.
            if t.share.is_some() {
                out.push((w, last));
            }
        }
        if done {
            t.done = true;
            tracing::info!(task = %k, "task finished on this node");
            self.finished.push_back(k.clone());
        }
        let task_ref = self.refs.get(&k).cloned();
        if let Some(task) = task_ref {
            for (w, last) in out {
                let window = TaskWindow {
                    task: task.clone(),
                    window: WireWindow::from_window(&w),
                    last,
                };
                self.send(NodeMsg::Window(Box::new(window)), Delivery::ExactlyOnce);
            }
        }
        self.trim_finished();
        self.flush();
    }
}

impl Handler<NodeHealthSampled> for NodeAgent {
    type Result = ();

    fn handle(&mut self, NodeHealthSampled(report): NodeHealthSampled, _ctx: &mut Context<Self>) {
        self.metrics.observe_health(&report);
        self.last_health = Some(report.clone());
        if self.conn.is_some() {
            self.send(NodeMsg::Health(Box::new(report)), Delivery::FireAndForget);
            self.flush();
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
        let task = task::validate_task(&doc, 0, &self.settings.load_generation).map_err(|e| {
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
        let id = format!("local-{}", self.next_local);
        self.next_local += usize::from(matches!(task.kind, TaskKind::SecurityTest(_)));
        self.launch(
            id.clone(),
            task,
            Instant::now() + Duration::from_millis(100),
            None,
            ctx,
        );
        Ok(id)
    }
}

impl Handler<StopTask> for NodeAgent {
    type Result = bool;

    fn handle(&mut self, StopTask(id): StopTask, _ctx: &mut Context<Self>) -> bool {
        match self.tasks.get(&id) {
            Some(t) => {
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
        for t in self.tasks.values() {
            let _ = t.stop.send(true);
        }
        if self.conn.is_none() {
            return Box::pin(async {});
        }
        tracing::info!(node = %self.node_id, "leaving the cluster");
        self.send(NodeMsg::Goodbye, Delivery::FireAndForget);
        self.flush();
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
            .tasks
            .iter()
            .map(|(k, t)| {
                let (sent, paused) = t.share.as_ref().map_or((t.acc.total().sent, 0), |s| {
                    (
                        s.sent.load(Ordering::Relaxed),
                        s.paused.load(Ordering::Relaxed),
                    )
                });
                let state = if t.done {
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
                (k.clone(), status)
            })
            .collect();
        MessageResult(NodeStatus {
            node_id: self.node_id.clone(),
            connected: self.conn.is_some(),
            epoch: self.epoch,
            lease_valid: self.lease.is_valid(),
            session: self.session.stats(),
            tasks,
        })
    }
}
