//! `HealthMonitor`: the cluster's health (DESIGN §2, orchestrator process). Owns a
//! [`ClusterState`]: each node's latest report and reachability, the active alerts and the
//! recently cleared ones; supervises nothing. Takes: `NodeHealthUpdate` (a node's report),
//! `NodeReachability` (a node's link came up or the node was declared failed),
//! `ForgetNodeHealth` (a node left or was forgotten),
//! `GetClusterHealth`, `GetNodeHealth`, `GetAlerts`, `SetHealthSink`. Publishes every change
//! (status, alert raised or cleared) as a `HealthEvent` to the recipient it was given, if any
//! (in the orchestrator: the event bus, handed in again whenever the bus is rebuilt).
//!
//! It stores nothing: a restarted monitor starts empty and fills again as reports come (one
//! per node per `health_monitoring.check_interval`); nodes' active alerts come back with
//! their next report; the cleared history and which nodes are unreachable do not, unless
//! whoever restarts it sends `NodeReachability` for the nodes it knows to be down.

use actix::prelude::*;

use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::clock::unix_ms;
use crate::health::{Alert, ClusterState, HealthChange, NodeHealthDetail};
use crate::messages::health::{
    ForgetNodeHealth, GetAlerts, GetClusterHealth, GetNodeHealth, HealthEvent, NodeHealthUpdate,
    NodeReachability, SetHealthSink,
};

#[derive(Default)]
pub struct HealthMonitor {
    state: ClusterState,
    on_event: Option<Recipient<HealthEvent>>,
    supervisor: Option<Recipient<ChildExited>>,
}

impl HealthMonitor {
    /// `on_event` gets every change (a full mailbox loses it; the state is still right).
    pub fn new(on_event: Option<Recipient<HealthEvent>>) -> HealthMonitor {
        HealthMonitor {
            on_event,
            ..HealthMonitor::default()
        }
    }

    /// Reports its exit to a supervisor.
    pub fn supervised(mut self, supervisor: Recipient<ChildExited>) -> HealthMonitor {
        self.supervisor = Some(supervisor);
        self
    }

    fn publish(&self, changes: Vec<HealthChange>) {
        for change in changes {
            match &change {
                HealthChange::NodeStatusChanged {
                    node_id, from, to, ..
                } => tracing::info!(
                    node = %node_id, from = from.map(|s| s.as_str()), to = to.as_str(),
                    "node health changed"
                ),
                HealthChange::AlertRaised { alert } => tracing::warn!(
                    node = %alert.node_id, alert = %alert.alert_id,
                    severity = alert.severity.as_str(), message = %alert.message,
                    "cluster alert raised"
                ),
                HealthChange::AlertCleared { alert } => tracing::info!(
                    node = %alert.node_id, alert = %alert.alert_id, "cluster alert cleared"
                ),
            }
            if let Some(r) = &self.on_event
                && let Err(SendError::Full(_)) = r.try_send(HealthEvent(change))
            {
                tracing::warn!("health event dropped: subscriber busy");
            }
        }
    }
}

impl Actor for HealthMonitor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "health_monitor",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl Handler<NodeHealthUpdate> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, NodeHealthUpdate(report): NodeHealthUpdate, _: &mut Context<Self>) {
        let changes = self.state.report(report);
        self.publish(changes);
    }
}

impl Handler<NodeReachability> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, m: NodeReachability, _: &mut Context<Self>) {
        let changes = self.state.reachability(&m.node_id, m.reachable, unix_ms());
        self.publish(changes);
    }
}

impl Handler<ForgetNodeHealth> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, m: ForgetNodeHealth, _: &mut Context<Self>) {
        let changes = self.state.forget(&m.0, unix_ms());
        self.publish(changes);
    }
}

impl Handler<SetHealthSink> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, SetHealthSink(sink): SetHealthSink, _: &mut Context<Self>) {
        self.on_event = Some(sink);
    }
}

impl Handler<GetClusterHealth> for HealthMonitor {
    type Result = MessageResult<GetClusterHealth>;

    fn handle(&mut self, _: GetClusterHealth, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.health())
    }
}

impl Handler<GetNodeHealth> for HealthMonitor {
    type Result = Option<NodeHealthDetail>;

    fn handle(&mut self, GetNodeHealth(id): GetNodeHealth, _: &mut Context<Self>) -> Self::Result {
        self.state.node(&id)
    }
}

impl Handler<GetAlerts> for HealthMonitor {
    type Result = Vec<Alert>;

    fn handle(&mut self, m: GetAlerts, _: &mut Context<Self>) -> Vec<Alert> {
        self.state.alerts(m.active_only)
    }
}
