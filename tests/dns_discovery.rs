//! DNS discovery against a DNS server of the test's own, on loopback (hickory-server with an
//! in-memory zone, UDP and TCP on one port): the orchestrator is found by SRV and by A record,
//! both by the `dns` module and by a node's `Discovery` actor, and a name that appears later
//! is found on a retry.

use mcp_testing::actors::recorder::Recorder;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use mcp_testing::actors::discovery::Discovery;
use mcp_testing::discovery::dns::{self, DnsError};
use mcp_testing::discovery::{ServiceInstance, Source};
use mcp_testing::messages::discovery::{GetDiscoveryStats, OrchestratorFound};
use mcp_testing::settings::Settings;

const ZONE: &str = "mcpt.test.";
const SRV_NAME: &str = "_cluster._tcp.mcpt.test";
const A_NAME: &str = "orchestrator.mcpt.test";

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn record(owner: &str, data: RData) -> Record {
    Record::from_rdata(name(owner), 60, data)
}

/// A DNS server on 127.0.0.1 (UDP and TCP on the same port) serving `mcpt.test.`: the
/// orchestrator's A record and two SRV targets, the preferred one at `srv_port`. Returns the
/// server (it serves while held), its address and the zone, to add records to later.
async fn dns_server(srv_port: u16) -> (Server<Catalog>, SocketAddr, Arc<InMemoryZoneHandler>) {
    let mut zone: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(name(ZONE), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        name("ns.mcpt.test."),
        name("admin.mcpt.test."),
        1,
        3600,
        600,
        86400,
        0,
    );
    let records = [
        record(ZONE, RData::SOA(soa)),
        record("orchestrator.mcpt.test.", RData::A(A(Ipv4Addr::LOCALHOST))),
        record(
            "standby.mcpt.test.",
            RData::A(A(Ipv4Addr::new(127, 0, 0, 2))),
        ),
        // The standby has the larger weight but the worse priority: it comes second.
        record(
            "_cluster._tcp.mcpt.test.",
            RData::SRV(SRV::new(10, 100, 7000, name("standby.mcpt.test."))),
        ),
        record(
            "_cluster._tcp.mcpt.test.",
            RData::SRV(SRV::new(0, 5, srv_port, name("orchestrator.mcpt.test."))),
        ),
    ];
    for r in records {
        assert!(zone.upsert_mut(r, 1));
    }
    let zone = Arc::new(zone);
    let mut catalog = Catalog::new();
    catalog.upsert(
        LowerName::from(name(ZONE)),
        vec![zone.clone() as Arc<dyn ZoneHandler>],
    );
    let mut server = Server::new(catalog);
    // UDP on any free port, then TCP on the same number (retried if that one is taken).
    for _ in 0..20 {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 64);
            return (server, addr, zone);
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// A port standing for the orchestrator's (bound, so no one else has it; never connected to).
fn orchestrator_port() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    (l, p)
}

#[actix_rt::test]
async fn the_dns_module_resolves_srv_and_a_records() {
    let (_o, srv_port) = orchestrator_port();
    let (_server, addr, _zone) = dns_server(srv_port).await;

    let by_srv = dns::resolve(SRV_NAME, 1, Some(addr)).await.unwrap();
    assert_eq!(
        by_srv,
        [
            SocketAddr::from((Ipv4Addr::LOCALHOST, srv_port)),
            SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 7000)),
        ]
    );

    let by_a = dns::resolve(A_NAME, 8080, Some(addr)).await.unwrap();
    assert_eq!(by_a, [SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))]);

    let missing = dns::resolve("nobody.mcpt.test", 8080, Some(addr))
        .await
        .unwrap_err();
    assert!(matches!(missing, DnsError::Lookup { .. }), "{missing}");
    let missing_srv = dns::resolve("_nothing._tcp.mcpt.test", 8080, Some(addr))
        .await
        .unwrap_err();
    assert!(
        matches!(missing_srv, DnsError::Lookup { .. }),
        "{missing_srv}"
    );
}

type Found = Arc<Mutex<Vec<OrchestratorFound>>>;

/// Starts a node's discovery looking for `dns_name` at `server`; returns it and what it
/// reports.
fn node(dns_name: &str, server: SocketAddr, orchestrator_port: u16) -> (Addr<Discovery>, Found) {
    let mut s = Settings::defaults();
    s.node.orchestrator = None;
    s.orchestrator.port = orchestrator_port;
    s.service_discovery.multicast_enabled = false;
    s.service_discovery.dns_name = Some(dns_name.to_string());
    s.service_discovery.dns_server = Some(server);
    let s = Arc::new(s);
    let found = Arc::new(Mutex::new(Vec::new()));
    let rec = Recorder::<OrchestratorFound>(found.clone()).start();
    let me = ServiceInstance::for_node(&s, "node-1", 8081);
    (Discovery::node(s, me, rec.recipient()).start(), found)
}

/// Polls until `found` holds something, for up to `limit`.
async fn first_report(
    found: &Mutex<Vec<OrchestratorFound>>,
    limit: Duration,
) -> Vec<OrchestratorFound> {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        let got = found.lock().unwrap().clone();
        if !got.is_empty() {
            return got;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    Vec::new()
}

#[actix_rt::test]
async fn a_node_finds_the_orchestrator_by_srv_and_by_a_record() {
    let (_o, port) = orchestrator_port();
    let (_server, addr, _zone) = dns_server(port).await;

    let (_d1, by_srv) = node(SRV_NAME, addr, 1);
    let (_d2, by_a) = node(A_NAME, addr, port);
    let by_srv = first_report(&by_srv, Duration::from_secs(10)).await;
    let by_a = first_report(&by_a, Duration::from_secs(10)).await;
    let expected = OrchestratorFound {
        url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        source: Source::Dns,
    };
    assert_eq!(by_srv, std::slice::from_ref(&expected));
    assert_eq!(by_a, [expected]);
}

#[actix_rt::test]
async fn a_name_that_appears_later_is_found_on_a_retry() {
    let (_o, port) = orchestrator_port();
    let (_server, addr, zone) = dns_server(port).await;
    let (d, found) = node("late.mcpt.test", addr, port);
    // Once a lookup has failed, publish the name.
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while d.send(GetDiscoveryStats).await.unwrap().dns_failures == 0 {
        assert!(tokio::time::Instant::now() < end, "no lookup failed");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(found.lock().unwrap().is_empty());
    let late = record("late.mcpt.test.", RData::A(A(Ipv4Addr::new(127, 0, 0, 3))));
    assert!(zone.upsert(late, 2).await);
    let got = first_report(&found, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].url.as_str(), format!("http://127.0.0.3:{port}/"));
}
