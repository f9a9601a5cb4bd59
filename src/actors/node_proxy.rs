//! `NodeProxy`: the orchestrator's side of one node's cluster link. Owns the node's session
//! state machine (sequence numbers, outbox, acks, resume), its epoch and its death timer;
//! stores each metric window once before handing it to the `Orchestrator` (old-epoch windows
//! too: they record requests sent before the fence), and fences the node when it goes silent
//! for the death timeout. Outlives connections: a node that reconnects
//! within the timeout resumes its session. Takes: `TakeConn`, `Deliver`, `GetNodeView`.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::actors::node_agent::FLUSH_RETRY;
use crate::actors::orchestrator::Orchestrator;
use crate::actors::store::Store;
use crate::hub::conn::{ConnEvent, Out, events};
use crate::hub::{Delivered, Delivery, Session, SessionConfig};
use crate::messages::cluster::{
    Deliver, GetNodeView, NodeFailed, NodeHealth, NodeLinkDown, NodeProgress, NodeRejected,
    NodeRunning, NodeScan, NodeUp, NodeView, NodeWindow, TakeConn,
};
use crate::messages::store::{BumpNodeEpoch, GetNodeEpoch, PutWindow, SetNodeTaskSent, UpsertNode};
use crate::messages::wire::{
    self, Hello, NodeFrame, NodeMsg, OrchFrame, OrchMsg, TaskWindow, Welcome,
};
use crate::store::{StoreError, WindowKey};

/// How many times, and how far apart, storing a window is tried before it is given up.
const STORE_ATTEMPTS: u32 = 25;
const STORE_RETRY: Duration = Duration::from_millis(200);

/// Link timers and limits, from `communication` and `cluster` settings.
#[derive(Debug, Clone)]
pub struct LinkTimers {
    pub heartbeat: Duration,
    pub lease: Duration,
    pub death: Duration,
    pub max_frame: usize,
    pub outbox: usize,
}

impl LinkTimers {
    pub fn from_settings(s: &crate::settings::Settings) -> LinkTimers {
        LinkTimers {
            heartbeat: s.communication.heartbeat_interval,
            lease: s.communication.lease_timeout,
            death: s.communication.death_timeout,
            max_frame: s.cluster.max_frame_size,
            outbox: s.cluster.outbox_capacity,
        }
    }

    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            outbox_capacity: self.outbox,
            // A lost frame is sent again after two heartbeats without its ack.
            retransmit_after: self.heartbeat * 2,
            ..SessionConfig::default()
        }
    }
}

/// From the orchestrator that owns this proxy, when it stops: close the link and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopProxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Connected,
    Disconnected,
    Failed,
}

pub struct NodeProxy {
    node_id: String,
    hello: Option<Hello>,
    timers: LinkTimers,
    orchestrator: Addr<Orchestrator>,
    store: Addr<Store>,
    session: Session<OrchMsg, NodeMsg>,
    session_id: u64,
    epoch: u64,
    state: LinkState,
    conn: Option<mpsc::Sender<Out>>,
    generation: u64,
    last_heard: Instant,
    windows_stored: u64,
    windows_duplicate: u64,
    fenced_rejected: u64,
    /// The connection's queue was full at the last flush: flush again soon.
    blocked: bool,
}

impl NodeProxy {
    /// A proxy for a node not connected yet (a restarted orchestrator creates one for every
    /// node of a running execution, so the death timer runs for those that never return).
    pub fn new(
        node_id: String,
        timers: LinkTimers,
        orchestrator: Addr<Orchestrator>,
        store: Addr<Store>,
    ) -> NodeProxy {
        NodeProxy {
            node_id,
            hello: None,
            session: Session::new(timers.session_config()),
            timers,
            orchestrator,
            store,
            session_id: 0,
            epoch: 0,
            state: LinkState::Disconnected,
            conn: None,
            generation: 0,
            last_heard: Instant::now(),
            windows_stored: 0,
            windows_duplicate: 0,
            fenced_rejected: 0,
            blocked: false,
        }
    }

    fn write(&mut self, frame: &OrchFrame) {
        let Some(tx) = &self.conn else { return };
        match wire::encode(frame, self.timers.max_frame) {
            Ok(bytes) => {
                // A full queue loses the frame; the session sends it again.
                let _ = tx.try_send(Out::Frame(bytes.into()));
            }
            Err(e) => tracing::error!(node = %self.node_id, error = %e, "frame not sent"),
        }
    }

    fn flush(&mut self) {
        let now = Instant::now();
        // Only as many frames as the connection takes now; the rest stay in the session
        // until the queue drains (see FLUSH_RETRY), instead of being lost and resent later.
        self.blocked = false;
        while self.conn.as_ref().is_some_and(|tx| tx.capacity() > 0) {
            let Some(frame) = self.session.poll_transmit(now) else {
                return;
            };
            self.write(&OrchFrame::Link(frame));
        }
        self.blocked = self.conn.is_some();
    }

    fn close(&mut self, code: u16, reason: &str) {
        if let Some(tx) = self.conn.take() {
            let _ = tx.try_send(Out::Close {
                code,
                reason: reason.to_string(),
            });
        }
        self.session.on_disconnect();
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let silent = self.last_heard.elapsed();
        if self.state != LinkState::Failed && silent > self.timers.death {
            self.fail(ctx);
            return;
        }
        // Heartbeats renew the node's lease. Once the node has been silent for D - L - H they
        // stop, so a node whose frames no longer arrive (a one-way failure) has paused by the
        // time its share is given away at D.
        let renewing = self
            .timers
            .death
            .saturating_sub(self.timers.lease + self.timers.heartbeat);
        if self.state == LinkState::Connected && silent <= renewing.max(self.timers.heartbeat) {
            // The heartbeat: the cumulative ack, which also renews the node's lease.
            let ack = self.session.ack_frame();
            self.write(&OrchFrame::Link(ack));
            self.flush();
        }
    }

    /// Declares the node failed: a new epoch fences whatever it still sends from the old one.
    fn fail(&mut self, ctx: &mut Context<Self>) {
        tracing::warn!(node = %self.node_id, silent_ms = self.last_heard.elapsed().as_millis() as u64, "node failed");
        self.state = LinkState::Failed;
        self.close(4000, "declared failed: nothing heard for the death timeout");
        let node_id = self.node_id.clone();
        ctx.wait(
            self.store
                .send(BumpNodeEpoch(node_id.clone()))
                .into_actor(self)
                .map(move |res, act, _| {
                    match res {
                        Ok(Ok(epoch)) => act.epoch = epoch,
                        other => {
                            // The epoch must move on even if it cannot be stored.
                            act.epoch += 1;
                            tracing::error!(node = %act.node_id, result = ?other.err(), "node epoch not stored");
                        }
                    }
                    // Nothing queued for the old epoch may reach the node when it comes back
                    // (a stale Start or Confirm would give it its old load back).
                    act.session = Session::new(act.timers.session_config());
                    act.session.set_epoch(act.epoch);
                    act.orchestrator.do_send(NodeFailed {
                        node_id,
                        epoch: act.epoch,
                    });
                }),
        );
    }

    fn on_frame(&mut self, bytes: &[u8], ctx: &mut Context<Self>) {
        let frame = match wire::decode::<NodeFrame>(bytes, self.timers.max_frame) {
            Ok(NodeFrame::Link(frame)) => frame,
            Ok(other) => {
                tracing::warn!(node = %self.node_id, frame = ?std::mem::discriminant(&other), "handshake frame after the handshake");
                self.close(1002, "unexpected handshake frame");
                return;
            }
            Err(e) => {
                tracing::warn!(node = %self.node_id, error = %e, "bad frame from node");
                let code = if matches!(e, wire::WireError::TooBig { .. }) {
                    wire::CLOSE_TOO_BIG
                } else {
                    1002
                };
                self.close(code, &e.to_string());
                return;
            }
        };
        self.last_heard = Instant::now();
        self.session.on_frame(frame, self.last_heard);
        while let Some(d) = self.session.poll_deliver() {
            self.on_message(d, ctx);
        }
        self.flush();
    }

    fn on_message(&mut self, d: Delivered<NodeMsg>, ctx: &mut Context<Self>) {
        // The fence stops new load, not the accounting of load already sent: a window the
        // node recorded under its old epoch (queued before the fence, resent after it came
        // back) is stored under that epoch and counted once, like any other.
        let fenced = d.is_fenced(self.epoch) && !matches!(d.body, NodeMsg::Window(_));
        if fenced {
            self.fenced_rejected += 1;
            tracing::debug!(node = %self.node_id, frame_epoch = d.epoch, epoch = self.epoch, "old-epoch frame rejected");
            if d.delivery == Delivery::ExactlyOnce {
                self.session.confirm(d.seq, d.id);
            }
            return;
        }
        // Only windows have a durable effect to wait for; anything else sent exactly-once is
        // applied by handling it.
        if d.delivery == Delivery::ExactlyOnce && !matches!(d.body, NodeMsg::Window(_)) {
            self.session.confirm(d.seq, d.id);
        }
        match d.body {
            NodeMsg::Window(w) => self.store_window(*w, d.epoch, d.seq, d.id, 0, ctx),
            NodeMsg::Status { tasks } => {
                for t in &tasks {
                    self.store.do_send(SetNodeTaskSent {
                        execution_id: t.task.execution_id.clone(),
                        task_id: t.task.task_id,
                        node_id: self.node_id.clone(),
                        sent: t.sent,
                    });
                }
                self.orchestrator.do_send(NodeProgress {
                    node_id: self.node_id.clone(),
                    tasks,
                });
            }
            NodeMsg::Running { tasks } => {
                let msg = NodeRunning {
                    node_id: self.node_id.clone(),
                    tasks,
                };
                ctx.wait(
                    self.orchestrator
                        .send(msg)
                        .into_actor(self)
                        .map(|res, act, _| {
                            let tasks = res.unwrap_or_default();
                            let _ = act.session.send(
                                OrchMsg::Confirm { tasks },
                                Delivery::AtLeastOnce,
                                Instant::now(),
                            );
                            act.flush();
                        }),
                );
            }
            NodeMsg::Rejected { task, reason } => {
                self.orchestrator.do_send(NodeRejected {
                    node_id: self.node_id.clone(),
                    task,
                    reason,
                });
            }
            NodeMsg::ScanDone(slice) => {
                // An unreadable report still ends the node's slice (with a note), rather
                // than leave the execution waiting for it.
                let report = serde_json::from_str(&slice.report_json).unwrap_or_else(|e| {
                    tracing::warn!(node = %self.node_id, error = %e, "unreadable scan report");
                    crate::security::ScanReport {
                        notes: vec![format!(
                            "node {}: unreadable scan report: {e}",
                            self.node_id
                        )],
                        ..Default::default()
                    }
                });
                self.orchestrator.do_send(NodeScan {
                    node_id: self.node_id.clone(),
                    task: slice.task,
                    report,
                });
            }
            NodeMsg::Health(report) => {
                self.orchestrator.do_send(NodeHealth {
                    node_id: self.node_id.clone(),
                    report: *report,
                });
            }
        }
    }

    /// Stores the window under its key; only a first store reaches the orchestrator, and the
    /// ack passes the message only once it is stored (exactly-once).
    fn store_window(
        &mut self,
        w: TaskWindow,
        epoch: u64,
        seq: u64,
        id: u64,
        attempt: u32,
        ctx: &mut Context<Self>,
    ) {
        let key = WindowKey {
            execution_id: w.task.execution_id.clone(),
            task_id: w.task.task_id,
            node_id: self.node_id.clone(),
            epoch,
            window_index: w.window.index,
        };
        let payload = match postcard::to_allocvec(&w) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "window not encodable; dropped");
                self.session.confirm(seq, id);
                return;
            }
        };
        let retry = w.clone();
        ctx.wait(
            self.store
                .send(PutWindow { key, payload })
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Ok(inserted)) => {
                        if inserted {
                            act.windows_stored += 1;
                            act.orchestrator.do_send(NodeWindow {
                                node_id: act.node_id.clone(),
                                window: w,
                            });
                        } else {
                            act.windows_duplicate += 1;
                        }
                        act.session.confirm(seq, id);
                        act.flush();
                    }
                    Ok(Err(StoreError::UnknownExecution(execution))) => {
                        // No execution to count it for (not ours, or from a lost store): drop
                        // it rather than have the node send it for ever.
                        tracing::warn!(node = %act.node_id, %execution, "window of an unknown execution dropped");
                        act.session.confirm(seq, id);
                        act.flush();
                    }
                    // The session will not deliver it again: try the store again, a while.
                    other if attempt < STORE_ATTEMPTS => {
                        tracing::warn!(node = %act.node_id, result = ?other, attempt, "window not stored; retrying");
                        ctx.wait(actix::clock::sleep(STORE_RETRY).into_actor(act));
                        act.store_window(retry, epoch, seq, id, attempt + 1, ctx);
                    }
                    other => {
                        // Lost, loudly: the link must not stay stuck behind it.
                        tracing::error!(node = %act.node_id, result = ?other, "window could not be stored; dropped");
                        act.session.confirm(seq, id);
                        act.flush();
                    }
                }),
        );
    }

    fn attach(
        &mut self,
        hello: Hello,
        conn: crate::hub::conn::Conn,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let live =
            self.state == LinkState::Connected && self.last_heard.elapsed() < self.timers.lease;
        let same_session = hello.session_id == Some(self.session_id) && self.session_id != 0;
        if live && !same_session {
            return Err(format!(
                "node id {} is in use by a connected node",
                self.node_id
            ));
        }
        let resume = same_session && self.state != LinkState::Failed;
        if resume {
            self.session.resume(hello.recv_hwm.unwrap_or(0));
        } else {
            if hello.session_id.is_none() {
                // A new node process: its message ids start again, so forget the old ones.
                self.session = Session::new(self.timers.session_config());
            } else {
                self.session.restart();
            }
            self.session.set_epoch(self.epoch);
            self.session_id = rand::random::<u64>().max(1);
        }
        // The old connection, if any, is done.
        if let Some(tx) = self.conn.take() {
            let _ = tx.try_send(Out::Close {
                code: 1000,
                reason: "replaced by a new connection".into(),
            });
        }
        self.generation += 1;
        let generation = self.generation;
        self.conn = Some(conn.tx);
        let frames = events(conn.rx, generation);
        ctx.add_stream(frames);
        self.state = LinkState::Connected;
        self.last_heard = Instant::now();
        let welcome = Welcome {
            epoch: self.epoch,
            session_id: self.session_id,
            resume,
            recv_hwm: self.session.ack_hwm(),
            heartbeat_ms: self.timers.heartbeat.as_millis() as u64,
            lease_ms: self.timers.lease.as_millis() as u64,
        };
        self.write(&OrchFrame::Welcome(welcome));
        self.flush();
        tracing::info!(node = %self.node_id, epoch = self.epoch, resume, "node joined");
        self.store.do_send(UpsertNode {
            node_id: self.node_id.clone(),
            info_json: serde_json::to_string(&hello_json(&hello)).unwrap_or_default(),
            last_seen_ms: crate::execution::unix_ms(),
        });
        self.hello = Some(hello.clone());
        self.orchestrator.do_send(NodeUp {
            node_id: self.node_id.clone(),
            epoch: self.epoch,
            hello,
        });
        Ok(())
    }
}

fn hello_json(h: &Hello) -> serde_json::Value {
    serde_json::json!({
        "capabilities": h.capabilities,
        "location": h.location,
        "rest_addr": h.rest_addr,
        "cpu_cores": h.capacity.cpu_cores,
        "workers": h.capacity.workers,
    })
}

impl Actor for NodeProxy {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.wait(
            self.store
                .send(GetNodeEpoch(self.node_id.clone()))
                .into_actor(self)
                .map(|res, act, _| {
                    if let Ok(Ok(epoch)) = res {
                        act.epoch = epoch;
                        act.session.set_epoch(epoch);
                    }
                }),
        );
        ctx.run_interval(self.timers.heartbeat, |act, ctx| act.tick(ctx));
        ctx.run_interval(FLUSH_RETRY, |act, _| {
            if act.blocked {
                act.flush();
            }
        });
    }
}

impl StreamHandler<ConnEvent> for NodeProxy {
    fn handle(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        match ev {
            ConnEvent::Frame(g, bytes) if g == self.generation => self.on_frame(&bytes, ctx),
            ConnEvent::Closed(g) if g == self.generation => {
                if self.state == LinkState::Connected {
                    tracing::info!(node = %self.node_id, "node link closed; waiting for it to resume");
                    self.state = LinkState::Disconnected;
                    self.orchestrator.do_send(NodeLinkDown {
                        node_id: self.node_id.clone(),
                    });
                }
                self.conn = None;
                self.session.on_disconnect();
            }
            _ => {}
        }
    }

    // One stream per connection: its end is not the proxy's.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<TakeConn> for NodeProxy {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: TakeConn, ctx: &mut Context<Self>) -> Result<(), String> {
        self.attach(msg.hello, msg.conn, ctx)
    }
}

impl Handler<StopProxy> for NodeProxy {
    type Result = ();

    fn handle(&mut self, _: StopProxy, ctx: &mut Context<Self>) {
        self.close(1012, "orchestrator restarting");
        ctx.stop();
    }
}

impl Handler<Deliver> for NodeProxy {
    type Result = ();

    fn handle(&mut self, Deliver(msg): Deliver, _ctx: &mut Context<Self>) {
        if self.state == LinkState::Failed {
            return;
        }
        if let Err(full) = self
            .session
            .send(msg, Delivery::AtLeastOnce, Instant::now())
        {
            tracing::error!(node = %self.node_id, body = ?full.body, "node outbox full; message dropped");
        }
        self.flush();
    }
}

impl Handler<GetNodeView> for NodeProxy {
    type Result = MessageResult<GetNodeView>;

    fn handle(&mut self, _: GetNodeView, _ctx: &mut Context<Self>) -> Self::Result {
        let h = self.hello.as_ref();
        MessageResult(NodeView {
            node_id: self.node_id.clone(),
            state: match self.state {
                LinkState::Connected => "connected",
                LinkState::Disconnected => "disconnected",
                LinkState::Failed => "failed",
            },
            epoch: self.epoch,
            location: h.map(|h| h.location.clone()).unwrap_or_default(),
            capabilities: h.map(|h| h.capabilities.clone()).unwrap_or_default(),
            capacity: h.map(|h| h.capacity.clone()).unwrap_or_default(),
            rest_addr: h.map(|h| h.rest_addr.clone()).unwrap_or_default(),
            last_heard_ms: self.last_heard.elapsed().as_millis() as u64,
            windows_stored: self.windows_stored,
            windows_duplicate: self.windows_duplicate,
            fenced_frames_rejected: self.fenced_rejected,
            link: self.session.stats(),
        })
    }
}
