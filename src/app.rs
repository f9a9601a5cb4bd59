//! Process assembly: which actors an orchestrator, a node and a standalone process start, under
//! which supervisor, and the HTTP servers in front of them. Each `serve_*` takes a bound
//! listener, so tests bind port 0 and read the address back.

use std::cell::RefCell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::actors::agent_relay::AgentRelay;
use crate::actors::discovery::Discovery;
use crate::actors::distributor::Distributor;
use crate::actors::event_bus::EventBus;
use crate::actors::health_monitor::HealthMonitor;
use crate::actors::node_agent::{Connector, NodeAgent};
use crate::actors::node_monitor::NodeMonitor;
use crate::actors::orchestrator::Orchestrator;
use crate::actors::registry::{Registry, Slot};
use crate::actors::resource_allocator::ResourceAllocator;
use crate::actors::store::Store;
use crate::actors::supervisor::RootSupervisor;
use crate::discovery::ServiceInstance;
use crate::http::{api, cluster_route, limits, node_api};
use crate::messages::health::SetHealthSink;
use crate::metrics::NodeMetrics;
use crate::settings::Settings;
use crate::store::{DirLock, StoreError};

/// The orchestrator's actors, running.
#[derive(Clone)]
pub struct OrchestratorHandle {
    pub registry: Arc<Registry>,
    pub supervisor: Addr<RootSupervisor>,
}

/// Starts the store on the data directory `held` (one orchestrator per directory: keep the
/// lock as long as the orchestrator runs), the event bus and the orchestrator under a root
/// supervisor. Must run inside an actix `System`.
pub fn start_orchestrator(
    settings: Arc<Settings>,
    held: &DirLock,
) -> Result<OrchestratorHandle, StoreError> {
    let store = Store::start(held.dir().to_path_buf())?;
    Ok(start_orchestrator_on(settings, store))
}

/// The same over a given store (a standalone run keeps its store in memory).
pub fn start_orchestrator_on(settings: Arc<Settings>, store: Addr<Store>) -> OrchestratorHandle {
    let registry = Arc::new(Registry::new(settings.clone(), store.clone()));
    let (r1, r2, r3, r4, r5, r6) = (
        registry.clone(),
        registry.clone(),
        registry.clone(),
        registry.clone(),
        registry.clone(),
        registry.clone(),
    );
    let supervisor = RootSupervisor::new(RootSupervisor::exit_process())
        .child(
            "event_bus",
            Box::new(move |me| {
                let addr = EventBus::supervised(me).start();
                // A rebuilt bus: the health monitor publishes to it from now on.
                if let Some(health) = r1.health.get() {
                    health.do_send(SetHealthSink(addr.clone().recipient()));
                }
                r1.events.set(addr);
            }),
        )
        .child(
            "resource_allocator",
            Box::new(move |_me| {
                let r = &r3.settings.resource_management;
                let addr = ResourceAllocator::new(r.allocation_timeout, r.cleanup_interval).start();
                r3.allocator.set(addr);
            }),
        )
        .child(
            "health_monitor",
            Box::new(move |me| {
                let sink = r6.events().map(|bus| bus.recipient());
                let addr = HealthMonitor::new(sink).supervised(me).start();
                r6.health.set(addr);
            }),
        )
        .child(
            "discovery",
            Box::new(move |me| {
                let s = r5.settings.clone();
                let id = format!("orchestrator@{}:{}", host_name(), s.orchestrator.port);
                let announce = ServiceInstance::for_orchestrator(&s, id, s.orchestrator.port);
                let addr = Discovery::orchestrator(s, announce).supervised(me).start();
                r5.discovery.set(addr);
            }),
        )
        .child(
            "distributor",
            Box::new(move |me| {
                let addr = Distributor::new(r4.clone(), Some(me)).start();
                r4.distributor.set(addr);
            }),
        )
        .child(
            "orchestrator",
            Box::new(move |me| {
                let (settings, store, registry) =
                    (r2.settings.clone(), r2.store.clone(), r2.clone());
                let addr = Orchestrator::new(settings, store, registry, Some(me)).start();
                r2.orchestrator.set(addr);
            }),
        )
        .launch();
    OrchestratorHandle {
        registry,
        supervisor,
    }
}

/// This machine's name (`/etc/hostname`), or `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Binds a listener with `SO_REUSEADDR`, so a restarted orchestrator gets its port back while
/// the connections of the one before linger in TIME_WAIT.
pub fn bind_listener(host: &str, port: u16) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket.bind(&addr.into()).and_then(|()| socket.listen(4096)) {
            Ok(()) => return Ok(socket.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{host} resolves to nothing"))))
}

/// Whether an address is loopback (or a name that means it).
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to listen on {0} without a cluster secret: set cluster.secret (MCP_CLUSTER_SECRET), or listen on loopback"
    )]
    NoSecret(String),
    #[error(
        "refusing to serve {what} on {host} without an API token: anyone who reaches it could start load. \
         Set api.token (in the --config file, or MCP_API_TOKEN=<token> in the environment, or \
         --set api.token=<token>), or listen on loopback"
    )]
    NoToken { what: &'static str, host: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks that an orchestrator may listen on `host` with these settings: beyond loopback it
/// needs the cluster secret (nodes prove it) and the API token (mutating calls carry it).
pub fn check_exposure(settings: &Settings, host: &str) -> Result<(), StartError> {
    if is_loopback_host(host) {
        return Ok(());
    }
    if settings.cluster.secret.is_none() {
        return Err(StartError::NoSecret(host.to_string()));
    }
    check_token("an orchestrator", settings, host)
}

/// Checks that a node may serve its REST API on `host`: beyond loopback, `/load/start` must
/// need the API token.
pub fn check_node_exposure(settings: &Settings, host: &str) -> Result<(), StartError> {
    if is_loopback_host(host) {
        return Ok(());
    }
    check_token("a node", settings, host)
}

fn check_token(what: &'static str, settings: &Settings, host: &str) -> Result<(), StartError> {
    if settings.api.token.is_none() {
        return Err(StartError::NoToken {
            what,
            host: host.to_string(),
        });
    }
    Ok(())
}

/// The orchestrator's REST API, cluster route and MCP endpoint (`/mcp`) on `listener`; await the server to run it,
/// stop it through its handle.
pub fn serve_orchestrator(
    handle: OrchestratorHandle,
    listener: TcpListener,
) -> Result<actix_web::dev::Server, StartError> {
    let host = listener.local_addr()?.ip().to_string();
    check_exposure(&handle.registry.settings, &host)?;
    let state = web::Data::new(api::ApiState {
        registry: handle.registry.clone(),
    });
    let settings = &handle.registry.settings;
    let token = settings.api.token.clone();
    let mcp = crate::mcp::http::service(settings.clone(), listener.local_addr()?);
    let bodies = limits::BodyLimits::from_settings(&settings.api);
    limits::spawn_memory_trim();
    let workers = 2;
    // `mcpt up` runs a node's load connections in this process too.
    let load_fds = settings.load_generation.max_concurrent_requests as usize;
    let per_worker =
        limits::connections_per_worker(settings.api.max_connections, load_fds, workers);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(bodies.clone())
            .wrap(from_fn(limits::body_deadline))
            .configure(crate::mcp::http::configure(mcp.clone(), token.clone()))
            .configure(crate::http::ui::configure)
            .configure(api::routes(token.clone()))
    })
    .workers(workers)
    .client_request_timeout(settings.api.header_timeout)
    .max_connections(per_worker)
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

/// A node's running actors: the agent (its current address) under a root supervisor.
#[derive(Clone)]
pub struct NodeHandle {
    pub agent: Arc<Slot<NodeAgent>>,
    pub monitor: Arc<Slot<NodeMonitor>>,
    /// The node's series (`/metrics`), fed by the agent.
    pub metrics: Arc<NodeMetrics>,
    pub supervisor: Addr<RootSupervisor>,
    /// The orchestrator the agent joins; set later when discovery finds one.
    pub chosen: Rc<RefCell<Option<Connector>>>,
}

/// Starts a node's agent under a root supervisor (a rebuilt agent starts without tasks and
/// joins again). Must run inside an actix `System`.
pub fn start_node(
    settings: Arc<Settings>,
    node_id: String,
    rest_addr: String,
    connector: Option<Connector>,
) -> NodeHandle {
    let agent = Arc::new(Slot::default());
    let slot = agent.clone();
    let chosen = Rc::new(RefCell::new(connector));
    let current = chosen.clone();
    let relay = AgentRelay::new(chosen.clone(), agent.clone()).start();
    let monitor = Arc::new(Slot::default());
    let monitor_slot = monitor.clone();
    let metrics = Arc::new(NodeMetrics::new(&node_id));
    let fed = metrics.clone();
    let (s1, id1) = (settings.clone(), node_id.clone());
    let supervisor = RootSupervisor::new(RootSupervisor::exit_process())
        .child(
            "node_agent",
            Box::new(move |me| {
                let a = NodeAgent::new(
                    settings.clone(),
                    node_id.clone(),
                    rest_addr.clone(),
                    current.borrow().clone(),
                    fed.clone(),
                    Some(me),
                );
                slot.set(a.start());
            }),
        )
        .child(
            "node_monitor",
            Box::new(move |me| {
                let m = NodeMonitor::new(id1.clone(), s1.clone(), relay.clone().recipient())
                    .supervised(me)
                    .start();
                monitor_slot.set(m);
            }),
        )
        .launch();
    NodeHandle {
        agent,
        monitor,
        metrics,
        supervisor,
        chosen,
    }
}

/// Starts a node's discovery: it announces the node and, when the node has no orchestrator
/// yet, finds one (multicast or DNS) and has the agent join it.
pub fn start_node_discovery(
    node: &NodeHandle,
    settings: Arc<Settings>,
    node_id: &str,
    rest_port: u16,
) {
    let me = ServiceInstance::for_node(&settings, node_id, rest_port);
    let relay = AgentRelay::new(node.chosen.clone(), node.agent.clone()).start();
    Discovery::node(settings, me, relay.recipient()).start();
}

/// A node's REST API on `listener`; await the server to run it.
pub fn serve_node(
    node: NodeHandle,
    settings: Arc<Settings>,
    listener: TcpListener,
) -> Result<actix_web::dev::Server, StartError> {
    let host = listener.local_addr()?.ip().to_string();
    check_node_exposure(&settings, &host)?;
    let token = settings.api.token.clone();
    let bodies = limits::BodyLimits::from_settings(&settings.api);
    limits::spawn_memory_trim();
    let header_timeout = settings.api.header_timeout;
    let load_fds = settings.load_generation.max_concurrent_requests as usize;
    let per_worker = limits::connections_per_worker(settings.api.max_connections, load_fds, 1);
    let state = web::Data::new(node_api::NodeState {
        agent: node.agent,
        monitor: node.monitor,
        metrics: node.metrics,
        settings,
    });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(bodies.clone())
            .wrap(from_fn(limits::body_deadline))
            .configure(node_api::routes(token.clone()))
    })
    .workers(1)
    .client_request_timeout(header_timeout)
    .max_connections(per_worker)
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

/// An in-process connector to an orchestrator of this process: each call opens a pair of
/// in-memory channels and serves the orchestrator's end like a WebSocket.
pub fn local_connector(registry: Arc<Registry>) -> Connector {
    let cap = registry.settings.cluster.max_frame_size;
    Connector::Local(std::rc::Rc::new(move || {
        let (node_end, orch_end) = crate::hub::conn::local_pair(cap);
        actix_rt::spawn(cluster_route::serve_link(orch_end, registry.clone()));
        node_end
    }))
}
