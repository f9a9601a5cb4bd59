//! `NodeProxy`: the orchestrator's side of one node's cluster link. Owns the node's session
//! state machine (sequence numbers, outbox, acks, resume), its epoch and its death timer;
//! stores each metric window once before handing it to the `Orchestrator` (old-epoch windows
//! too: they record requests sent before the fence), and fences the node when it goes silent
//! for the death timeout. Outlives connections: a node that reconnects within the timeout
//! resumes its session. A node that says goodbye is fenced the same way at once and shown
//! `left`; a node failed or left for `service_discovery.service_timeout` is forgotten
//! (`ForgetNode` to the orchestrator). Takes: `TakeConn`, `Deliver`, `GetNodeView`.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::actors::node_agent::FLUSH_RETRY;
use crate::actors::orchestrator::Orchestrator;
use crate::actors::store::Store;
use crate::hub::conn::{ConnEvent, Out, events};
use crate::hub::{Delivered, Delivery, Session, SessionConfig};
use crate::messages::cluster::{
    Deliver, ForgetNode, GetNodeView, NodeFailed, NodeHealth, NodeLeft, NodeLinkDown, NodeProgress,
    NodeRejected, NodeRunning, NodeScan, NodeUp, NodeView, NodeWindow, TakeConn,
};
use crate::messages::store::{BumpNodeEpoch, GetNodeEpoch, PutWindow, SetNodeTaskSent, UpsertNode};
use crate::messages::wire::{
    self, Hello, NodeFrame, NodeMsg, OrchFrame, OrchMsg, TaskWindow, Welcome,
};
use crate::store::{StoreError, WindowKey};

/// Link timers and limits, from `communication` and `cluster` settings.
#[derive(Debug, Clone)]
pub struct LinkTimers {
    pub heartbeat: Duration,
    pub lease: Duration,
    pub death: Duration,
    pub max_frame: usize,
    pub outbox: usize,
    /// A node failed or left this long ago is forgotten
    /// (`service_discovery.service_timeout`).
    pub forget: Duration,
}

impl LinkTimers {
    pub fn from_settings(s: &crate::settings::Settings) -> LinkTimers {
        LinkTimers {
            heartbeat: s.communication.heartbeat_interval,
            lease: s.communication.lease_timeout,
            death: s.communication.death_timeout,
            max_frame: s.cluster.max_frame_size,
            outbox: s.cluster.outbox_capacity,
            forget: s.service_discovery.service_timeout,
        }
    }

    /// What the orchestrator's side of a link does after hearing nothing from its node for
    /// `silent`: the death timer's whole decision, kept apart from the clock so that tests
    /// drive it with any durations they like.
    ///
    /// The node is declared failed once it has been silent for longer than the death timeout
    /// D. Heartbeats renew the node's lease only while it has been silent for at most
    /// `D - L - H`: a node whose frames no longer arrive (a one-way failure) then has paused
    /// (its lease L lapsed) by the time its share is given away at D.
    pub fn on_silence(&self, silent: Duration, connected: bool) -> Silence {
        if silent > self.death {
            return Silence::Fail;
        }
        let renewing = self.death.saturating_sub(self.lease + self.heartbeat);
        if connected && silent <= renewing.max(self.heartbeat) {
            Silence::Heartbeat
        } else {
            Silence::Wait
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

/// The death timer's verdict on a silence ([`LinkTimers::on_silence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Send a heartbeat: the cumulative ack, which also renews the node's lease.
    Heartbeat,
    /// Send nothing and wait: the node's lease is left to lapse.
    Wait,
    /// Declare the node failed and fence it with a new epoch.
    Fail,
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
    /// The node said goodbye.
    Left,
}

impl LinkState {
    /// Fenced: failed, or left.
    fn gone(self) -> bool {
        matches!(self, LinkState::Failed | LinkState::Left)
    }
}

/// Whether a node gone (failed or left) and silent for `silent` is to be forgotten now.
fn forget_due(gone: bool, silent: Duration, forget_after: Duration) -> bool {
    gone && silent >= forget_after
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
    /// Windows counted but not kept by the store (past its memory bound for a full disk).
    windows_unstored: u64,
    fenced_rejected: u64,
    /// The connection's queue was full at the last flush: flush again soon.
    blocked: bool,
    /// `ForgetNode` was sent.
    forgotten: bool,
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
            windows_unstored: 0,
            fenced_rejected: 0,
            blocked: false,
            forgotten: false,
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
        if forget_due(self.state.gone(), silent, self.timers.forget) && !self.forgotten {
            self.forgotten = true;
            tracing::info!(node = %self.node_id, silent_ms = silent.as_millis() as u64, "node gone past the service timeout; forgotten");
            self.orchestrator.do_send(ForgetNode {
                node_id: self.node_id.clone(),
            });
            return;
        }
        match self
            .timers
            .on_silence(silent, self.state == LinkState::Connected)
        {
            Silence::Fail if !self.state.gone() => self.fail(ctx),
            Silence::Heartbeat => {
                let ack = self.session.ack_frame();
                self.write(&OrchFrame::Link(ack));
                self.flush();
            }
            Silence::Fail | Silence::Wait => {}
        }
    }

    /// Declares the node failed: a new epoch fences whatever it still sends from the old one.
    fn fail(&mut self, ctx: &mut Context<Self>) {
        tracing::warn!(node = %self.node_id, silent_ms = self.last_heard.elapsed().as_millis() as u64, "node failed");
        self.state = LinkState::Failed;
        self.close(4000, "declared failed: nothing heard for the death timeout");
        self.fence(false, ctx);
    }

    /// The node said goodbye: fenced like a failed node, at once, and shown `left`.
    fn leave(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(node = %self.node_id, "node left the cluster");
        self.state = LinkState::Left;
        self.close(1000, "goodbye");
        self.fence(true, ctx);
    }

    /// A new epoch fences whatever the node still sends from the old one; then the
    /// orchestrator hears the node failed (or left).
    fn fence(&mut self, left: bool, ctx: &mut Context<Self>) {
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
                    if left {
                        act.orchestrator.do_send(NodeLeft {
                            node_id,
                            epoch: act.epoch,
                        });
                    } else {
                        act.orchestrator.do_send(NodeFailed {
                            node_id,
                            epoch: act.epoch,
                        });
                    }
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
            NodeMsg::Window(w) => self.store_window(*w, d.epoch, d.seq, d.id, ctx),
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
                    crate::task::security::ScanReport {
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
            NodeMsg::Goodbye => self.leave(ctx),
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
        ctx.wait(
            self.store
                .send(PutWindow { key, payload })
                .into_actor(self)
                .map(move |res, act, _ctx| match res {
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
                    other => {
                        // The store keeps what its disk refuses and retries it; this is a
                        // window it could not even keep. The requests were sent: they count
                        // (the execution merges in memory), only the store misses them. Never
                        // wait here: a link that stops reading for a store looks dead.
                        tracing::error!(node = %act.node_id, result = ?other, "window not stored; counted, not kept");
                        act.windows_unstored += 1;
                        act.orchestrator.do_send(NodeWindow {
                            node_id: act.node_id.clone(),
                            window: w,
                        });
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
        let resume = same_session && !self.state.gone();
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
        self.forgotten = false;
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
        if self.state.gone() {
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
                LinkState::Left => "left",
            },
            epoch: self.epoch,
            location: h.map(|h| h.location.clone()).unwrap_or_default(),
            capabilities: h.map(|h| h.capabilities.clone()).unwrap_or_default(),
            capacity: h.map(|h| h.capacity.clone()).unwrap_or_default(),
            rest_addr: h.map(|h| h.rest_addr.clone()).unwrap_or_default(),
            last_heard_ms: self.last_heard.elapsed().as_millis() as u64,
            windows_stored: self.windows_stored,
            windows_duplicate: self.windows_duplicate,
            windows_unstored: self.windows_unstored,
            fenced_frames_rejected: self.fenced_rejected,
            link: self.session.stats(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The death timer's decisions, driven by chosen silences instead of the wall clock.

    use std::time::Duration;

    use proptest::prelude::*;

    use super::{LinkState, LinkTimers, Silence, forget_due};

    /// Valid timers (the settings require D >= L + 2H), in milliseconds.
    fn timers() -> impl Strategy<Value = LinkTimers> {
        (1u64..2_000, 1u64..10_000, 0u64..10_000).prop_map(|(h, l, extra)| LinkTimers {
            heartbeat: Duration::from_millis(h),
            lease: Duration::from_millis(l),
            death: Duration::from_millis(l + 2 * h + extra),
            max_frame: 1 << 20,
            outbox: 1024,
            forget: Duration::from_secs(90),
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_test_timers_fail_a_node_after_the_death_timeout_and_not_before() {
        let t = LinkTimers {
            heartbeat: ms(200),
            lease: ms(600),
            death: ms(1200),
            max_frame: 1 << 20,
            outbox: 1024,
            forget: Duration::from_secs(90),
        };
        assert_eq!(t.on_silence(ms(0), true), Silence::Heartbeat);
        assert_eq!(t.on_silence(ms(400), true), Silence::Heartbeat);
        assert_eq!(t.on_silence(ms(401), true), Silence::Wait);
        assert_eq!(t.on_silence(ms(1200), true), Silence::Wait);
        assert_eq!(t.on_silence(ms(1201), true), Silence::Fail);
        assert_eq!(t.on_silence(ms(1201), false), Silence::Fail);
        assert_eq!(t.on_silence(ms(0), false), Silence::Wait);
    }

    proptest! {
        /// A node is failed exactly when it has been silent for longer than D.
        #[test]
        fn fails_exactly_past_the_death_timeout(t in timers(), silent in 0u64..30_000, connected: bool) {
            let verdict = t.on_silence(ms(silent), connected);
            prop_assert_eq!(verdict == Silence::Fail, ms(silent) > t.death);
        }

        /// A lease renewed by the last heartbeat, delivered within H, lapses by D: the node
        /// has paused before its share is given to the others.
        #[test]
        fn the_last_lease_lapses_before_the_share_moves(t in timers(), silent in 0u64..30_000) {
            if t.on_silence(ms(silent), true) == Silence::Heartbeat {
                prop_assert!(ms(silent) + t.lease + t.heartbeat <= t.death);
            }
        }

        /// A healthy link (something heard every heartbeat) is always renewed, and a
        /// disconnected one never is.
        #[test]
        fn healthy_links_are_renewed(t in timers(), silent in 0u64..2_000) {
            if ms(silent) <= t.heartbeat {
                prop_assert_eq!(t.on_silence(ms(silent), true), Silence::Heartbeat);
            }
            prop_assert_ne!(t.on_silence(ms(silent), false), Silence::Heartbeat);
        }

        /// Silence only gets worse: no heartbeat after the first wait, no reprieve after fail.
        #[test]
        fn verdicts_never_go_back(t in timers(), a in 0u64..30_000, b in 0u64..30_000) {
            let (early, late) = (a.min(b), a.max(b));
            let rank = |v: Silence| match v {
                Silence::Heartbeat => 0,
                Silence::Wait => 1,
                Silence::Fail => 2,
            };
            prop_assert!(rank(t.on_silence(ms(early), true)) <= rank(t.on_silence(ms(late), true)));
        }
    }

    #[test]
    fn only_a_gone_node_is_forgotten_and_only_after_the_timeout() {
        let after = Duration::from_secs(90);
        assert!(
            !forget_due(false, Duration::from_secs(1000), after),
            "a live node stays"
        );
        assert!(!forget_due(true, Duration::from_secs(89), after));
        assert!(forget_due(true, after, after));
        assert!(LinkState::Failed.gone() && LinkState::Left.gone());
        assert!(!LinkState::Connected.gone() && !LinkState::Disconnected.gone());
    }
}
