//! `NodeProxy`: the orchestrator's side of one node's cluster link. Owns the node's
//! [`Link`](crate::hub::Link) (the session with its sequence numbers, outbox, acks and resume;
//! the connection and the pump between them), its epoch and its death timer; stores each
//! metric window once before handing it to the `Orchestrator` (old-epoch windows too: they
//! record requests sent before the fence), and fences the node when it goes silent for the
//! death timeout. Outlives connections: a node that reconnects within the timeout resumes its
//! session. A node that says goodbye is fenced the same way at once and shown `left`; a node
//! failed or left for `service_discovery.service_timeout` is forgotten (`ForgetNode` to the
//! orchestrator). Takes: `TakeConn`, `Deliver`, `GetNodeView`, `StopProxy`.

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::actors::orchestrator::Orchestrator;
use crate::actors::store::Store;
use crate::hub::conn::ConnEvent;
use crate::hub::handshake::{Hello, Welcome};
use crate::hub::link::{Event, LinkActor, LinkTimers, Silence, bad_frame_code, run_timers};
use crate::hub::{Delivered, Delivery};
use crate::messages::cluster::{
    Deliver, ForgetNode, GetNodeView, NodeFailed, NodeHealth, NodeJobDone, NodeLeft, NodeLinkDown,
    NodeProgress, NodeRejected, NodeRunning, NodeUp, NodeView, NodeWindow, TakeConn,
};
use crate::messages::store::{BumpNodeEpoch, GetNodeEpoch, PutWindow, SetNodeTaskSent, UpsertNode};
use crate::messages::wire::{
    JobResult, NodeFrame, NodeMsg, OrchFrame, OrchLink, OrchMsg, TaskProgress, TaskRef,
    stored_window,
};
use crate::stats::Window;
use crate::store::{StoreError, WindowKey};

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
    link: OrchLink,
    orchestrator: Addr<Orchestrator>,
    store: Addr<Store>,
    session_id: u64,
    epoch: u64,
    state: LinkState,
    last_heard: Instant,
    windows_stored: u64,
    windows_duplicate: u64,
    /// Windows counted but not kept by the store (past its memory bound for a full disk).
    windows_unstored: u64,
    fenced_rejected: u64,
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
            link: OrchLink::new(timers),
            orchestrator,
            store,
            session_id: 0,
            epoch: 0,
            state: LinkState::Disconnected,
            last_heard: Instant::now(),
            windows_stored: 0,
            windows_duplicate: 0,
            windows_unstored: 0,
            fenced_rejected: 0,
            forgotten: false,
        }
    }

    /// Every heartbeat: forget, fail, heartbeat or wait, after the node's silence.
    fn on_silence(&mut self, ctx: &mut Context<Self>) {
        let silent = self.last_heard.elapsed();
        if forget_due(self.state.gone(), silent, self.link.timers().forget) && !self.forgotten {
            self.forgotten = true;
            tracing::info!(node = %self.node_id, silent_ms = silent.as_millis() as u64, "node gone past the service timeout; forgotten");
            self.orchestrator.do_send(ForgetNode {
                node_id: self.node_id.clone(),
            });
            return;
        }
        match self
            .link
            .timers()
            .on_silence(silent, self.state == LinkState::Connected)
        {
            Silence::Fail if !self.state.gone() => self.fail(ctx),
            Silence::Heartbeat => {
                self.link.heartbeat();
                self.link.flush();
            }
            Silence::Fail | Silence::Wait => {}
        }
    }

    /// Declares the node failed: a new epoch fences whatever it still sends from the old one.
    fn fail(&mut self, ctx: &mut Context<Self>) {
        tracing::warn!(node = %self.node_id, silent_ms = self.last_heard.elapsed().as_millis() as u64, "node failed");
        self.state = LinkState::Failed;
        self.link
            .close(4000, "declared failed: nothing heard for the death timeout");
        self.fence(false, ctx);
    }

    /// The node said goodbye: fenced like a failed node, at once, and shown `left`.
    fn leave(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(node = %self.node_id, "node left the cluster");
        self.state = LinkState::Left;
        self.link.close(1000, "goodbye");
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
                    act.link.renew_session();
                    act.link.session().set_epoch(act.epoch);
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

    fn on_frame(&mut self, frame: crate::hub::LinkFrame<NodeMsg>, ctx: &mut Context<Self>) {
        self.last_heard = Instant::now();
        self.link.receive(frame, self.last_heard);
        while let Some(d) = self.link.poll_deliver() {
            self.on_message(d, ctx);
        }
        self.link.flush();
    }

    fn on_bad_frame(&mut self, bad: Result<NodeFrame, crate::hub::frame::WireError>) {
        let code = bad_frame_code(&bad);
        match bad {
            Ok(other) => {
                tracing::warn!(node = %self.node_id, frame = ?std::mem::discriminant(&other), "handshake frame after the handshake");
                self.link.close(code, "unexpected handshake frame");
            }
            Err(e) => {
                tracing::warn!(node = %self.node_id, error = %e, "bad frame from node");
                self.link.close(code, &e.to_string());
            }
        }
    }

    fn on_message(&mut self, d: Delivered<NodeMsg>, ctx: &mut Context<Self>) {
        let is_window = matches!(d.body, NodeMsg::Window { .. });
        // The fence stops new load, not the accounting of load already sent: a window the
        // node recorded under its old epoch (queued before the fence, resent after it came
        // back) is stored under that epoch and counted once, like any other.
        if d.is_fenced(self.epoch) && !is_window {
            self.fenced_rejected += 1;
            tracing::debug!(node = %self.node_id, frame_epoch = d.epoch, epoch = self.epoch, "old-epoch frame rejected");
            if d.delivery == Delivery::ExactlyOnce {
                self.link.session().confirm(d.seq, d.id);
            }
            return;
        }
        // Only windows have a durable effect to wait for; anything else sent exactly-once is
        // applied by handling it.
        if d.delivery == Delivery::ExactlyOnce && !is_window {
            self.link.session().confirm(d.seq, d.id);
        }
        let node_id = self.node_id.clone();
        match d.body {
            NodeMsg::Window { task, window, last } => {
                let stored = Received {
                    task,
                    window: *window,
                    last,
                    epoch: d.epoch,
                    seq: d.seq,
                    id: d.id,
                };
                self.store_window(stored, ctx)
            }
            NodeMsg::Status { tasks } => self.on_status(tasks),
            NodeMsg::Running { tasks } => self.on_running(tasks, ctx),
            NodeMsg::Rejected { task, reason } => {
                let msg = NodeRejected {
                    node_id,
                    task,
                    reason,
                };
                self.orchestrator.do_send(msg);
            }
            NodeMsg::JobDone(done) => self.on_job_done(*done),
            NodeMsg::Health(report) => {
                let report = *report;
                self.orchestrator.do_send(NodeHealth { node_id, report });
            }
            NodeMsg::Goodbye => self.leave(ctx),
        }
    }

    fn on_status(&mut self, tasks: Vec<TaskProgress>) {
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

    /// The node's tasks after a new session: the orchestrator says which go on.
    fn on_running(&mut self, tasks: Vec<TaskRef>, ctx: &mut Context<Self>) {
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
                    let _ = act
                        .link
                        .send(OrchMsg::Confirm { tasks }, Delivery::AtLeastOnce);
                    act.link.flush();
                }),
        );
    }

    /// A job's result goes to the orchestrator as the node sent it: the task's kind reads it.
    fn on_job_done(&mut self, done: JobResult) {
        self.orchestrator.do_send(NodeJobDone {
            node_id: self.node_id.clone(),
            task: done.task,
            result_json: done.result_json,
        });
    }

    /// Stores the window under its key; only a first store reaches the orchestrator, and the
    /// ack passes the message only once it is stored (exactly-once).
    fn store_window(&mut self, w: Received, ctx: &mut Context<Self>) {
        let key = WindowKey {
            execution_id: w.task.execution_id.clone(),
            task_id: w.task.task_id,
            node_id: self.node_id.clone(),
            epoch: w.epoch,
            window_index: w.window.index,
        };
        let payload = match stored_window(&w.task, &w.window, w.last) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "window not encodable; dropped");
                self.link.session().confirm(w.seq, w.id);
                return;
            }
        };
        ctx.wait(
            self.store
                .send(PutWindow { key, payload })
                .into_actor(self)
                .map(move |res, act, _ctx| {
                    let (seq, id) = (w.seq, w.id);
                    match res {
                        Ok(Ok(inserted)) => {
                            if inserted {
                                act.windows_stored += 1;
                                act.orchestrator.do_send(w.into_message(&act.node_id));
                            } else {
                                act.windows_duplicate += 1;
                            }
                        }
                        Ok(Err(StoreError::UnknownExecution(execution))) => {
                            // No execution to count it for (not ours, or from a lost store):
                            // drop it rather than have the node send it for ever.
                            tracing::warn!(node = %act.node_id, %execution, "window of an unknown execution dropped");
                        }
                        other => {
                            // The store keeps what its disk refuses and retries it; this is a
                            // window it could not even keep. The requests were sent: they
                            // count (the execution merges in memory), only the store misses
                            // them. Never wait here: a link that stops reading for a store
                            // looks dead.
                            tracing::error!(node = %act.node_id, result = ?other, "window not stored; counted, not kept");
                            act.windows_unstored += 1;
                            act.orchestrator.do_send(w.into_message(&act.node_id));
                        }
                    }
                    act.link.session().confirm(seq, id);
                    act.link.flush();
                }),
        );
    }

    fn attach(
        &mut self,
        hello: Hello,
        conn: crate::hub::conn::Conn,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let live = self.state == LinkState::Connected
            && self.last_heard.elapsed() < self.link.timers().lease;
        let same_session = hello.session_id == Some(self.session_id) && self.session_id != 0;
        if live && !same_session {
            return Err(format!(
                "node id {} is in use by a connected node",
                self.node_id
            ));
        }
        let resume = same_session && !self.state.gone();
        if resume {
            self.link.session().resume(hello.recv_hwm.unwrap_or(0));
        } else {
            if hello.session_id.is_none() {
                // A new node process: its message ids start again, so forget the old ones.
                self.link.renew_session();
            } else {
                self.link.session().restart();
            }
            self.link.session().set_epoch(self.epoch);
            self.session_id = rand::random::<u64>().max(1);
        }
        // The old connection, if any, is done.
        ctx.add_stream(self.link.attach(conn));
        self.state = LinkState::Connected;
        self.forgotten = false;
        self.last_heard = Instant::now();
        let timers = self.link.timers();
        let welcome = Welcome {
            epoch: self.epoch,
            session_id: self.session_id,
            resume,
            recv_hwm: self.link.ack_hwm(),
            heartbeat_ms: timers.heartbeat.as_millis() as u64,
            lease_ms: timers.lease.as_millis() as u64,
        };
        self.link.write(&OrchFrame::Welcome(welcome));
        self.link.flush();
        tracing::info!(node = %self.node_id, epoch = self.epoch, resume, "node joined");
        self.store.do_send(UpsertNode {
            node_id: self.node_id.clone(),
            info_json: serde_json::to_string(&hello_json(&hello)).unwrap_or_default(),
            last_seen_ms: crate::clock::unix_ms(),
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

/// A window as it arrived, waiting for the store.
struct Received {
    task: TaskRef,
    window: Window,
    last: bool,
    /// Of its delivery: the epoch it was sent in, and what confirms it.
    epoch: u64,
    seq: u64,
    id: u64,
}

impl Received {
    fn into_message(self, node_id: &str) -> NodeWindow {
        NodeWindow {
            node_id: node_id.to_string(),
            task: self.task,
            window: self.window,
            last: self.last,
        }
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

impl LinkActor for NodeProxy {
    type Out = OrchFrame;
    type In = NodeFrame;

    fn link(&mut self) -> &mut OrchLink {
        &mut self.link
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.on_silence(ctx);
    }
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
                        act.link.session().set_epoch(epoch);
                    }
                }),
        );
        run_timers(self, ctx);
    }
}

impl StreamHandler<ConnEvent> for NodeProxy {
    fn handle(&mut self, ev: ConnEvent, ctx: &mut Context<Self>) {
        match self.link.on_event(ev) {
            Some(Event::Frame(frame)) => self.on_frame(frame, ctx),
            Some(Event::Bad(bad)) => self.on_bad_frame(bad),
            Some(Event::Closed) if self.state == LinkState::Connected => {
                tracing::info!(node = %self.node_id, "node link closed; waiting for it to resume");
                self.state = LinkState::Disconnected;
                self.orchestrator.do_send(NodeLinkDown {
                    node_id: self.node_id.clone(),
                });
            }
            Some(Event::Closed) | None => {}
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
        self.link.close(1012, "orchestrator restarting");
        ctx.stop();
    }
}

impl Handler<Deliver> for NodeProxy {
    type Result = ();

    fn handle(&mut self, Deliver(msg): Deliver, _ctx: &mut Context<Self>) {
        if self.state.gone() {
            return;
        }
        if let Err(full) = self.link.send(msg, Delivery::AtLeastOnce) {
            tracing::error!(node = %self.node_id, body = ?full.body, "node outbox full; message dropped");
        }
        self.link.flush();
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
            link: self.link.stats(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{LinkState, forget_due};

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
