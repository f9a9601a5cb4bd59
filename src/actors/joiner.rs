//! `Joiner`: in a node started without an orchestrator address, takes the one discovery found
//! (multicast or DNS) and hands it to the node's agent, and keeps it for any agent the node's
//! supervisor builds later. Owns the chosen connector; supervises nothing.
//! Takes: `OrchestratorFound`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use crate::actors::node_agent::{Connector, NodeAgent, UseOrchestrator};
use crate::app::{Slot, cluster_url};
use crate::messages::discovery::OrchestratorFound;

pub struct Joiner {
    chosen: Rc<RefCell<Option<Connector>>>,
    agent: Arc<Slot<NodeAgent>>,
}

impl Joiner {
    /// `chosen` is read by the factory of the node's agent.
    pub fn new(chosen: Rc<RefCell<Option<Connector>>>, agent: Arc<Slot<NodeAgent>>) -> Joiner {
        Joiner { chosen, agent }
    }
}

impl Actor for Joiner {
    type Context = Context<Self>;
}

impl Handler<OrchestratorFound> for Joiner {
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
