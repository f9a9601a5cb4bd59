//! `Registry`: the current addresses of the orchestrator's supervised actors, each in a `Slot`
//! that a restart refills, for the actors and HTTP handlers that talk to them.

use std::sync::{Arc, RwLock};

use actix::prelude::*;

use crate::actors::discovery::Discovery;
use crate::actors::distributor::Distributor;
use crate::actors::event_bus::EventBus;
use crate::actors::health_monitor::HealthMonitor;
use crate::actors::orchestrator::Orchestrator;
use crate::actors::resource_allocator::ResourceAllocator;
use crate::actors::store::Store;
use crate::metrics::OrchestratorMetrics;
use crate::settings::Settings;

/// The current address of a supervised actor: a restart puts the new one here.
pub struct Slot<A: Actor>(RwLock<Option<Addr<A>>>);

impl<A: Actor> Default for Slot<A> {
    fn default() -> Self {
        Slot(RwLock::new(None))
    }
}

impl<A: Actor> Slot<A> {
    pub fn get(&self) -> Option<Addr<A>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, addr: Addr<A>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }
}

/// The current addresses of the orchestrator's supervised actors.
pub struct Registry {
    pub(crate) orchestrator: Slot<Orchestrator>,
    pub(crate) events: Slot<EventBus>,
    pub allocator: Slot<ResourceAllocator>,
    pub health: Slot<HealthMonitor>,
    pub discovery: Slot<Discovery>,
    pub distributor: Slot<Distributor>,
    pub store: Addr<Store>,
    pub settings: Arc<Settings>,
    /// The `mcp_orchestrator_*` series `/metrics` serves.
    pub metrics: Arc<OrchestratorMetrics>,
}

impl Registry {
    /// A registry with no actor in it yet (handler tests fill in the ones they use).
    pub fn new(settings: Arc<Settings>, store: Addr<Store>) -> Registry {
        Registry {
            orchestrator: Slot::default(),
            events: Slot::default(),
            allocator: Slot::default(),
            health: Slot::default(),
            discovery: Slot::default(),
            distributor: Slot::default(),
            store,
            settings,
            metrics: Arc::default(),
        }
    }

    pub fn orchestrator(&self) -> Option<Addr<Orchestrator>> {
        self.orchestrator.get()
    }

    pub fn events(&self) -> Option<Addr<EventBus>> {
        self.events.get()
    }
}
