//! The orchestrator's handlers of what its node proxies report: a node attached, up, failed;
//! its windows, progress, running tasks and refusals.

use actix::prelude::*;

use super::Orchestrator;
use crate::actors::node_proxy::StopProxy;
use crate::discovery::{ServiceInstance, ServiceType, Source};
use crate::health::Status;
use crate::messages::cluster::{
    Attach, ForgetNode, ForgetRefused, NodeFailed, NodeHealth, NodeJobDone, NodeLeft, NodeLinkDown,
    NodeProgress, NodeRejected, NodeRunning, NodeUp, NodeWindow, TakeConn,
};
use crate::messages::discovery::{ForgetService, RegisterService};
use crate::messages::events::EventKind;
use crate::messages::health::{ForgetNodeHealth, NodeHealthUpdate, NodeReachability};
use crate::messages::resources::SetNodeCapacity;
use crate::messages::wire::TaskRef;

impl Handler<Attach> for Orchestrator {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Self::Result {
        let proxy = self.proxy(&msg.hello.node_id, ctx);
        Box::pin(async move {
            proxy
                .send(TakeConn {
                    hello: msg.hello,
                    conn: msg.conn,
                })
                .await
                .unwrap_or_else(|_| Err("the node's proxy is gone".into()))
        })
    }
}

impl Handler<NodeUp> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeUp, ctx: &mut Context<Self>) {
        if let Some(e) = self.nodes.get_mut(&msg.node_id) {
            e.up = true;
            e.epoch = msg.epoch;
            e.up_since = std::time::Instant::now();
            let h = &msg.hello;
            e.facts.capabilities = h.capabilities.iter().cloned().collect();
            e.facts.location = h.location.clone();
            if e.facts.capacity.is_empty() {
                // Until its first health report: what it said when it joined.
                e.facts.capacity = [
                    ("cpu".to_string(), f64::from(h.capacity.cpu_cores)),
                    (
                        "connections".to_string(),
                        f64::from(h.capacity.max_concurrent_requests),
                    ),
                ]
                .into();
            }
            self.offer_capacity(&msg.node_id);
        }
        if let Some(health) = self.registry.health.get() {
            health.do_send(NodeReachability {
                node_id: msg.node_id.clone(),
                reachable: true,
            });
        }
        if let Some(e) = self.nodes.get_mut(&msg.node_id) {
            e.facts.rest_addr = msg.hello.rest_addr.clone();
        }
        // Known from the moment the node is up: placement never sees it without its health.
        if let Some(report) = msg.hello.health.clone() {
            self.take_health(&msg.node_id, *report);
        }
        self.announce_node(&msg.node_id);
        self.publish(EventKind::NodeJoined {
            node_id: msg.node_id.clone(),
        });
        self.try_start(ctx);
    }
}

impl Handler<NodeLinkDown> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeLinkDown, _ctx: &mut Context<Self>) {
        self.publish(EventKind::NodeLeft {
            node_id: msg.node_id,
            reason: format!(
                "link closed; the node may resume within {} ms",
                self.timers.death.as_millis()
            ),
        });
    }
}

impl Handler<NodeWindow> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeWindow, ctx: &mut Context<Self>) {
        let TaskRef {
            execution_id,
            task_id,
        } = msg.task;
        if !self.executions.contains_key(&execution_id) {
            tracing::warn!(execution = %execution_id, "window for an unknown execution");
            return;
        }
        let w = msg.window;
        if let Some(n) = self.nodes.get_mut(&msg.node_id) {
            super::planning::observe(&mut n.facts.record, &w);
        }
        let Some(e) = self.executions.get_mut(&execution_id) else {
            return;
        };
        if !e.add_window(task_id, &msg.node_id, w, msg.last) {
            tracing::warn!(execution = %execution_id, task = task_id, node = %msg.node_id, "window for no task of the execution");
        } else if e.phase.is_ended() {
            // A lost node came back after the end with what it had sent before.
            self.amend_report(&execution_id, ctx);
            return;
        }
        self.publish_seconds(&execution_id, ctx);
        self.check_done(&execution_id, ctx);
    }
}

impl Orchestrator {
    /// Tells discovery of a node joined over the link: its REST address, capabilities,
    /// location and (with `service_discovery.health_check_enabled`) whether it is short of
    /// critical health.
    fn announce_node(&self, node_id: &str) {
        let (Some(discovery), Some(e)) = (self.registry.discovery.get(), self.nodes.get(node_id))
        else {
            return;
        };
        let (host, port) = e
            .facts
            .rest_addr
            .rsplit_once(':')
            .map(|(h, p)| {
                (
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse().unwrap_or(0),
                )
            })
            .unwrap_or_default();
        let healthy = !self.settings.service_discovery.health_check_enabled
            || e.facts
                .health
                .is_none_or(|(_, short_of_critical)| short_of_critical);
        let service = ServiceInstance {
            service_id: node_id.to_string(),
            service_type: ServiceType::LoadGenerator,
            name: format!("mcpt node {node_id}"),
            host,
            port,
            capabilities: e.facts.capabilities.iter().cloned().collect(),
            location: e.facts.location.clone(),
            healthy,
            metadata: Default::default(),
        };
        discovery.do_send(RegisterService(service, Source::Cluster));
    }
}

impl Handler<NodeHealth> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeHealth, _ctx: &mut Context<Self>) {
        if self.take_health(&msg.node_id, msg.report) {
            self.announce_node(&msg.node_id);
        }
    }
}

impl Orchestrator {
    /// Keeps a node's health report (from its hello or its link) for placement, offers its
    /// capacity and hands the report to the health monitor. Answers whether the node crossed
    /// into or out of critical.
    fn take_health(&mut self, node_id: &str, report: crate::health::HealthReport) -> bool {
        let Some(e) = self.nodes.get_mut(node_id) else {
            return false;
        };
        let r = &report;
        let was = e.facts.health.map(|h| h.1);
        e.facts.health = Some((r.score, r.status != Status::Critical));
        e.facts.why_critical = r.why_critical();
        let changed = was != Some(r.status != Status::Critical);
        if !r.capacity.is_empty() {
            // Offered with every report, so a rebuilt (empty) pool learns it again.
            e.facts.capacity = r.capacity.clone();
            self.offer_capacity(node_id);
        }
        if let Some(health) = self.registry.health.get() {
            health.do_send(NodeHealthUpdate(report));
        }
        changed
    }
}

impl Handler<NodeProgress> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeProgress, _ctx: &mut Context<Self>) {
        for t in msg.tasks {
            if let Some(e) = self.executions.get_mut(&t.task.execution_id) {
                e.set_reported_sent(t.task.task_id, &msg.node_id, t.sent);
            }
        }
    }
}

impl Handler<NodeRunning> for Orchestrator {
    type Result = MessageResult<NodeRunning>;

    fn handle(&mut self, msg: NodeRunning, ctx: &mut Context<Self>) -> Self::Result {
        let go_on: Vec<TaskRef> = msg
            .tasks
            .into_iter()
            .filter(|t| {
                self.executions
                    .get(&t.execution_id)
                    .is_some_and(|e| e.node_should_run(t.task_id, &msg.node_id))
            })
            .collect();
        // A task the node should run but did not report (it restarted and lost it): its share
        // is lost like a dead node's, by the task's policy. Only tasks handed out before the
        // node's session began: the report cannot know of later ones.
        let up_since = self.nodes.get(&msg.node_id).map(|n| n.up_since);
        let forgotten: Vec<String> = self
            .order
            .iter()
            .filter(|id| {
                self.executions.get(*id).is_some_and(|e| {
                    e.planned_at.zip(up_since).is_some_and(|(p, u)| p < u)
                        && (0..e.tasks.len() as u32).any(|t| {
                            e.node_should_run(t, &msg.node_id) && !go_on.contains(&e.task_ref(t))
                        })
                })
            })
            .cloned()
            .collect();
        let epoch = self.nodes.get(&msg.node_id).map_or(0, |n| n.epoch);
        for id in forgotten {
            tracing::warn!(execution = %id, node = %msg.node_id, "node came back without its tasks");
            self.lose_node_in(&id, &msg.node_id, epoch, ctx);
        }
        MessageResult(go_on)
    }
}

impl Handler<NodeJobDone> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeJobDone, ctx: &mut Context<Self>) {
        let TaskRef {
            execution_id,
            task_id,
        } = msg.task;
        let Some(e) = self.executions.get_mut(&execution_id) else {
            tracing::warn!(execution = %execution_id, "job result for an unknown execution");
            return;
        };
        let taken = e
            .tasks
            .get_mut(task_id as usize)
            .is_some_and(|t| t.add_result(&msg.node_id, &msg.result_json));
        if taken {
            tracing::info!(execution = %execution_id, task = task_id, node = %msg.node_id, "job result in");
        } else {
            tracing::warn!(execution = %execution_id, task = task_id, node = %msg.node_id, "job result for no open slot; ignored");
        }
        self.check_done(&execution_id, ctx);
    }
}

impl Handler<NodeRejected> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeRejected, ctx: &mut Context<Self>) {
        let Some(e) = self.executions.get_mut(&msg.task.execution_id) else {
            return;
        };
        // It will send no window for the task: the end waits only for the others.
        e.refused(msg.task.task_id, &msg.node_id);
        let live = e.phase == crate::execution::Phase::Running;
        if !live {
            self.check_done(&msg.task.execution_id, ctx);
            return;
        }
        let reason = format!(
            "node {} refused task {}: {}",
            msg.node_id, msg.task.task_id, msg.reason
        );
        self.fail_execution(&msg.task.execution_id, reason, ctx);
    }
}

impl Handler<NodeFailed> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeFailed, ctx: &mut Context<Self>) {
        self.node_gone(msg.node_id, msg.epoch, false, ctx);
    }
}

impl Handler<NodeLeft> for Orchestrator {
    type Result = ();

    fn handle(&mut self, msg: NodeLeft, ctx: &mut Context<Self>) {
        self.node_gone(msg.node_id, msg.epoch, true, ctx);
    }
}

impl Handler<ForgetNode> for Orchestrator {
    type Result = Result<(), ForgetRefused>;

    fn handle(&mut self, msg: ForgetNode, _ctx: &mut Context<Self>) -> Self::Result {
        let node = msg.node_id;
        let Some(e) = self.nodes.get(&node) else {
            return Err(ForgetRefused::Unknown(node));
        };
        // `up` holds until the node failed or left: its work is its own until then.
        if e.up {
            return Err(ForgetRefused::Connected(node));
        }
        if let Some(e) = self.nodes.remove(&node) {
            e.proxy.do_send(StopProxy);
        }
        if let Some(health) = self.registry.health.get() {
            health.do_send(ForgetNodeHealth(node.clone()));
        }
        tracing::info!(node = %node, "node forgotten");
        self.publish(EventKind::NodeLeft {
            node_id: node,
            reason: "forgotten: failed or left, and not back".into(),
        });
        Ok(())
    }
}

impl Orchestrator {
    /// A node failed (silent for the death timeout) or `left` (said goodbye), fenced at
    /// `epoch`: it offers nothing, and each execution loses it by its task's policy. A node
    /// that left no longer counts in the cluster's health; a failed one does (unreachable)
    /// until it is back or forgotten.
    fn node_gone(&mut self, node: String, epoch: u64, left: bool, ctx: &mut Context<Self>) {
        let msg = NodeFailed {
            node_id: node.clone(),
            epoch,
        };
        if let Some(e) = self.nodes.get_mut(&node) {
            e.up = false;
            e.epoch = msg.epoch;
        }
        if let Some(discovery) = self.registry.discovery.get() {
            discovery.do_send(ForgetService(node.clone()));
        }
        if let Some(health) = self.registry.health.get() {
            if left {
                health.do_send(ForgetNodeHealth(node.clone()));
            } else {
                health.do_send(NodeReachability {
                    node_id: node.clone(),
                    reachable: false,
                });
            }
        }
        // A failed node offers nothing until it is back; what it held stays held until its
        // owners end.
        if let Some(allocator) = self.registry.allocator.get() {
            allocator.do_send(SetNodeCapacity {
                node_id: node.clone(),
                capacity: Default::default(),
            });
        }
        if left {
            self.publish(EventKind::NodeLeft {
                node_id: node.clone(),
                reason: format!("the node left (goodbye); fenced at epoch {}", msg.epoch),
            });
        } else {
            self.publish(EventKind::NodeFailed {
                node_id: node.clone(),
                reason: format!(
                    "nothing heard for the death timeout; fenced at epoch {}",
                    msg.epoch
                ),
            });
        }
        for id in self.order.clone() {
            self.lose_node_in(&id, &node, msg.epoch, ctx);
        }
    }
}
