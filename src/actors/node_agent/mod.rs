//! `NodeAgent`: the node's side of the cluster link and the tasks it runs. Its [`NodeLink`]
//! holds the session, the connection and the pump between them (see `hub::link`); the agent
//! owns the lease, the reconnection with backoff, and the tasks: one [`NodeTask`] per
//! [`TaskRef`], with its share, its stop switch and the merging of its workers' windows into
//! one window per second, sent exactly-once. A task comes typed (the orchestrator validated it);
//! the agent checks its targets against the node's own allowlist, then runs what the task's
//! kind makes of it (`task::work::Work::on_node`): shards for the `WorkerPool`, or a job whose
//! result goes up once. It knows no task kind. Adds each merged window and each health report
//! to the node's `/metrics` series. Takes:
//! `WindowReport` (from the workers), `NodeHealthSampled`, `UseOrchestrator` (from the node's
//! relay), `StartLocal`, `StopTask`, `GetNodeStatus` (from the node's REST API), `Leave` (the
//! process's shutdown: stop the tasks, say goodbye, close the link, reconnect no more).
//!
//! Joining: the hello carries the node's latest health report, and the first join waits for
//! the first one (at most `FIRST_HEALTH_WAIT`, 5 s), so the orchestrator never places work on a
//! node whose health it does not know yet.
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

use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::actors::worker_pool::WorkerPool;
use crate::engine::share::Lease;
use crate::engine::workers::worker_count;
use crate::hub::conn::{Conn, ConnEvent};
use crate::hub::handshake::{self, Capacity, HANDSHAKE_TIMEOUT, Hello, JoinError, Welcome};
use crate::hub::link::{Event, LinkActor, LinkTimers, run_timers};
use crate::hub::{Delivery, LinkFrame};
use crate::messages::health::NodeHealthSampled;
use crate::messages::wire::{
    NodeFrame, NodeLink, NodeMsg, OrchFrame, OrchMsg, PROTOCOL_VERSION, TaskProgress, TaskRef,
};
use crate::metrics::NodeMetrics;
use crate::settings::Settings;
use crate::stats::Snapshot;

mod tasks;

use tasks::NodeTask;

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

/// Backoff between reconnection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a starting node waits for its first health report before it joins without one
/// (custom checks slower than this; a rebuilt agent, whose monitor reports at its next round).
const FIRST_HEALTH_WAIT: Duration = Duration::from_secs(5);

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
    /// While not connected: why the last attempt to join failed (a wrong cluster secret, a
    /// node id taken, an orchestrator that cannot be reached).
    pub join_error: Option<String>,
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
    /// The next task's number: every task started takes one (a local task's id is `local-N`;
    /// a worker-pool task's windows come back under it).
    next_local: usize,
    /// The next finished task's place ([`Running::finished`]).
    next_finished: u64,
    last_refusal: Option<String>,
    me: Option<Addr<NodeAgent>>,
    supervisor: Option<Recipient<ChildExited>>,
    /// The node monitor's latest report, sent again after each join.
    last_health: Option<crate::health::HealthReport>,
    /// Until the first health report (or [`FIRST_HEALTH_WAIT`]): the node does not join yet,
    /// so that the orchestrator learns its health with its hello.
    awaiting_health: bool,
    /// The node's `/metrics` series: every merged window and health report goes in.
    metrics: Arc<NodeMetrics>,
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
            awaiting_health: true,
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
            health: self.last_health.clone().map(Box::new),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(connector) = self.connector.clone() else {
            return;
        };
        if self.connecting || self.link.is_connected() || self.leaving || self.awaiting_health {
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

    /// Lets the first join go, with the health report the agent has by now, if any.
    fn stop_awaiting_health(&mut self, ctx: &mut Context<Self>) {
        if self.awaiting_health {
            self.awaiting_health = false;
            self.connect(ctx);
        }
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
        // The first join waits for the node's first health report (or FIRST_HEALTH_WAIT).
        ctx.run_later(FIRST_HEALTH_WAIT, |act, ctx| act.stop_awaiting_health(ctx));
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

impl Handler<NodeHealthSampled> for NodeAgent {
    type Result = ();

    fn handle(&mut self, NodeHealthSampled(report): NodeHealthSampled, ctx: &mut Context<Self>) {
        self.metrics.observe_health(&report);
        self.last_health = Some(report.clone());
        self.stop_awaiting_health(ctx);
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
