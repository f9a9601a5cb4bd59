//! Service discovery, the pure parts and the I/O helpers the `Discovery` actor drives.
//!
//! - [`announce`]: the signed announcement datagram (format, signing, verification, the replay
//!   guard, the counters of accepted and rejected datagrams).
//! - [`registry`]: the services a process knows, where each came from, expiry and queries.
//! - [`multicast`]: the UDP socket joined to the multicast group on a given interface.
//! - [`dns`]: finding the orchestrator by an SRV or A/AAAA name (a Kubernetes headless
//!   Service), with the system's resolver configuration or one given name server.
//!
//! A [`ServiceInstance`] carries the spec's fields (`service_id`, `service_type`, `name`,
//! `host`, `port`, `capabilities`) and ours (`location`, `healthy`, `metadata`).

pub mod announce;
pub mod dns;
pub mod multicast;
pub mod registry;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::settings::Settings;

pub use announce::{
    Announcement, DiscoveryCounters, REPLAY_WINDOW, Rejection, ReplayGuard, sign, verify,
};
pub use registry::{KnownService, Query, Registry};

/// What a service is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    Orchestrator,
    LoadGenerator,
}

impl ServiceType {
    pub const ALL: [ServiceType; 2] = [ServiceType::Orchestrator, ServiceType::LoadGenerator];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Orchestrator => "orchestrator",
            ServiceType::LoadGenerator => "load_generator",
        }
    }

    /// The inverse of [`ServiceType::as_str`].
    pub fn parse(s: &str) -> Option<ServiceType> {
        ServiceType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a process learned of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A signed multicast announcement.
    Multicast,
    /// A DNS lookup of `service_discovery.dns_name`.
    Dns,
    /// A node joined over the cluster link.
    Cluster,
    /// The process itself.
    Local,
}

impl Source {
    /// Heard-of sources (multicast, DNS) expire when not refreshed; a live link or the process
    /// itself holds the others until they are forgotten.
    pub fn expires(self) -> bool {
        matches!(self, Source::Multicast | Source::Dns)
    }

    /// Which source's view of a service wins when two report it.
    fn rank(self) -> u8 {
        match self {
            Source::Multicast | Source::Dns => 0,
            Source::Cluster => 1,
            Source::Local => 2,
        }
    }
}

/// A service as announced and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceInstance {
    pub service_id: String,
    pub service_type: ServiceType,
    pub name: String,
    /// Where to reach it; unspecified (`0.0.0.0`, `::`, empty): the address the announcement
    /// came from.
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub location: String,
    #[serde(default = "yes")]
    pub healthy: bool,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl ServiceInstance {
    /// The orchestrator of these settings, reachable at `port` (the bound one, which differs
    /// from `orchestrator.port` when that is 0).
    pub fn for_orchestrator(settings: &Settings, service_id: String, port: u16) -> Self {
        ServiceInstance {
            name: format!("mcpt orchestrator {service_id}"),
            service_id,
            service_type: ServiceType::Orchestrator,
            host: settings.orchestrator.host.clone(),
            port,
            capabilities: Vec::new(),
            location: String::new(),
            healthy: true,
            metadata: BTreeMap::new(),
        }
    }

    /// A node (load generator) of these settings, its REST API at `port`.
    pub fn for_node(settings: &Settings, node_id: &str, port: u16) -> Self {
        ServiceInstance {
            service_id: node_id.to_string(),
            service_type: ServiceType::LoadGenerator,
            name: format!("mcpt node {node_id}"),
            host: settings.node.host.clone(),
            port,
            capabilities: settings.node.capabilities.clone(),
            location: settings.node.location.clone(),
            healthy: true,
            metadata: BTreeMap::new(),
        }
    }
}

/// Whether an announced host says "wherever this came from".
pub fn host_is_unspecified(host: &str) -> bool {
    let h = host.trim().trim_matches(['[', ']']);
    h.is_empty() || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// The host to reach an announced service at: its own, or the datagram's source address when
/// it announced an unspecified one.
pub fn effective_host(announced: &str, from: IpAddr) -> String {
    if host_is_unspecified(announced) {
        from.to_string()
    } else {
        announced.trim().trim_matches(['[', ']']).to_string()
    }
}

/// `http://host:port`, with an IPv6 address in brackets.
pub fn http_url(host: &str, port: u16) -> Result<url::Url, url::ParseError> {
    let h = host.trim().trim_matches(['[', ']']);
    let authority = match h.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{h}:{port}"),
    };
    url::Url::parse(&format!("http://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn unspecified_hosts_take_the_source_address() {
        let from = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        for h in ["0.0.0.0", "", "::", "[::]", " "] {
            assert_eq!(effective_host(h, from), "10.1.2.3", "{h:?}");
        }
        assert_eq!(effective_host("orch.example", from), "orch.example");
        assert_eq!(effective_host("[fd00::1]", from), "fd00::1");
    }

    #[test]
    fn urls_bracket_ipv6() {
        assert_eq!(
            http_url("fd00::1", 8080).unwrap().as_str(),
            "http://[fd00::1]:8080/"
        );
        assert_eq!(
            http_url("10.0.0.1", 8080).unwrap().as_str(),
            "http://10.0.0.1:8080/"
        );
        assert_eq!(
            http_url("orch.example", 80).unwrap().host_str(),
            Some("orch.example")
        );
        assert!(http_url("bad host", 80).is_err());
    }

    #[test]
    fn service_types_round_trip() {
        for t in ServiceType::ALL {
            assert_eq!(ServiceType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
        }
        assert_eq!(ServiceType::parse("node"), None);
    }

    #[test]
    fn instances_from_settings() {
        let s = Settings::defaults();
        let o = ServiceInstance::for_orchestrator(&s, "o1".into(), 9000);
        assert_eq!(o.service_type, ServiceType::Orchestrator);
        assert_eq!(o.port, 9000);
        let n = ServiceInstance::for_node(&s, "n1", 8081);
        assert_eq!(n.service_type, ServiceType::LoadGenerator);
        assert_eq!(n.capabilities, s.node.capabilities);
        assert_eq!(n.location, s.node.location);
    }
}
