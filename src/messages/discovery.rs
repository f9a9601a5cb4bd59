//! Messages to the `Discovery` actor, and the one it sends when it finds an orchestrator.

use actix::prelude::*;
use serde::Serialize;

use crate::discovery::{DiscoveryCounters, KnownService, Query, ServiceInstance, Source};

/// The known services `Query` lets through, by id.
#[derive(Message)]
#[rtype(result = "Vec<KnownService>")]
pub struct GetServices(pub Query);

/// What discovery is doing and what it has counted.
#[derive(Message)]
#[rtype(result = "DiscoveryStats")]
pub struct GetDiscoveryStats;

#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryStats {
    pub counters: DiscoveryCounters,
    /// Services in the registry.
    pub known: usize,
    /// Whether the multicast socket is open (announcing and listening).
    pub multicast: bool,
    /// The local port of the multicast socket, once open.
    pub multicast_port: Option<u16>,
    pub dns_name: Option<String>,
    /// The orchestrator a node found (also reported once as `OrchestratorFound`), so a
    /// restarted agent can ask for it again.
    pub orchestrator: Option<url::Url>,
    /// DNS lookups that failed (each retried).
    pub dns_failures: u64,
    /// Announcements sent.
    pub announced: u64,
}

/// Records a service learned elsewhere (a node joined over the cluster link: `Source::Cluster`).
/// With `Source::Local` and this process's own id, it replaces what the process announces
/// about itself (its health, capabilities).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterService(pub ServiceInstance, pub Source);

/// Removes a service (a node whose link is gone).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetService(pub String);

/// A node without a configured orchestrator found one: sent once, to the node's `on_found`.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct OrchestratorFound {
    /// `http://host:port`.
    pub url: url::Url,
    pub source: Source,
}
