//! `AgentRelay`: hands what a node's other actors produce to the node's current agent (its
//! supervisor may have rebuilt it): the orchestrator discovery found, when the node was
//! started without an address (kept for any agent built later), and the node monitor's health
//! reports. Owns the chosen connector; supervises nothing.
//! Takes: `OrchestratorFound`, `NodeHealthSampled`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use crate::actors::node_agent::{Connector, NodeAgent, UseOrchestrator};
use crate::actors::registry::Slot;
use crate::messages::discovery::OrchestratorFound;
use crate::messages::health::NodeHealthSampled;

pub struct AgentRelay {
    chosen: Rc<RefCell<Option<Connector>>>,
    agent: Arc<Slot<NodeAgent>>,
}

impl AgentRelay {
    /// `chosen` is read by the factory of the node's agent.
    pub fn new(chosen: Rc<RefCell<Option<Connector>>>, agent: Arc<Slot<NodeAgent>>) -> Self {
        AgentRelay { chosen, agent }
    }
}

impl Actor for AgentRelay {
    type Context = Context<Self>;
}

impl Handler<OrchestratorFound> for AgentRelay {
    type Result = ();

    fn handle(&mut self, msg: OrchestratorFound, _ctx: &mut Context<Self>) {
        if self.chosen.borrow().is_some() {
            return;
        }
        let url = cluster_url(&msg.url);
        tracing::info!(orchestrator = %msg.url, source = ?msg.source, "orchestrator found");
        *self.chosen.borrow_mut() = Some(Connector::Ws(url.clone()));
        if let Some(agent) = self.agent.get() {
            agent.do_send(UseOrchestrator(url));
        }
    }
}

impl Handler<NodeHealthSampled> for AgentRelay {
    type Result = ();

    fn handle(&mut self, msg: NodeHealthSampled, _ctx: &mut Context<Self>) {
        // Once per check interval: not a hot path.
        if let Some(agent) = self.agent.get() {
            agent.do_send(msg);
        }
    }
}

/// The cluster route of an orchestrator address: `http://h:p` → `ws://h:p/cluster`.
pub fn cluster_url(orchestrator: &url::Url) -> String {
    let mut u = orchestrator.clone();
    let scheme = if u.scheme() == "https" { "wss" } else { "ws" };
    let _ = u.set_scheme(scheme);
    u.set_path("/cluster");
    u.to_string()
}
