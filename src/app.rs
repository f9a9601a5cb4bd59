//! Process assembly: which actors an orchestrator, a node and a standalone process start, under
//! which supervisor, and the HTTP servers in front of them. Each `serve_*` takes a bound
//! listener, so tests bind port 0 and read the address back.

use std::net::TcpListener;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use actix_web::{App, HttpServer, web};

use crate::actors::event_bus::EventBus;
use crate::actors::node_agent::{Connector, NodeAgent};
use crate::actors::orchestrator::Orchestrator;
use crate::actors::store::Store;
use crate::actors::supervisor::RootSupervisor;
use crate::http::{api, node_api};
use crate::settings::Settings;
use crate::store::StoreError;

/// The current addresses of the supervised actors (a restart replaces them).
pub struct Registry {
    orchestrator: RwLock<Option<Addr<Orchestrator>>>,
    events: RwLock<Option<Addr<EventBus>>>,
    pub store: Addr<Store>,
    pub settings: Arc<Settings>,
}

impl Registry {
    pub fn orchestrator(&self) -> Option<Addr<Orchestrator>> {
        self.orchestrator
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn events(&self) -> Option<Addr<EventBus>> {
        self.events
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The orchestrator's actors, running.
#[derive(Clone)]
pub struct OrchestratorHandle {
    pub registry: Arc<Registry>,
    pub supervisor: Addr<RootSupervisor>,
}

/// Starts the store, the event bus and the orchestrator under a root supervisor. Must run
/// inside an actix `System`.
pub fn start_orchestrator(settings: Arc<Settings>) -> Result<OrchestratorHandle, StoreError> {
    let store = Store::start(settings.orchestrator.data_dir.clone())?;
    Ok(start_orchestrator_on(settings, store))
}

/// The same over a given store (a standalone run keeps its store in memory).
pub fn start_orchestrator_on(settings: Arc<Settings>, store: Addr<Store>) -> OrchestratorHandle {
    let registry = Arc::new(Registry {
        orchestrator: RwLock::new(None),
        events: RwLock::new(None),
        store: store.clone(),
        settings: settings.clone(),
    });
    let (r1, r2) = (registry.clone(), registry.clone());
    let supervisor = RootSupervisor::new(RootSupervisor::exit_process())
        .child(
            "event_bus",
            Box::new(move |me| {
                let addr = EventBus::supervised(me).start();
                *r1.events.write().unwrap_or_else(|e| e.into_inner()) = Some(addr);
            }),
        )
        .child(
            "orchestrator",
            Box::new(move |me| {
                let (settings, store, registry) =
                    (r2.settings.clone(), r2.store.clone(), r2.clone());
                let addr = Orchestrator::new(settings, store, registry, Some(me)).start();
                *r2.orchestrator.write().unwrap_or_else(|e| e.into_inner()) = Some(addr);
            }),
        )
        .launch();
    OrchestratorHandle {
        registry,
        supervisor,
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
        match socket.bind(&addr.into()).and_then(|()| socket.listen(1024)) {
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks that an orchestrator may listen on `host` with these settings.
pub fn check_exposure(settings: &Settings, host: &str) -> Result<(), StartError> {
    if settings.cluster.secret.is_none() && !is_loopback_host(host) {
        return Err(StartError::NoSecret(host.to_string()));
    }
    Ok(())
}

/// The orchestrator's REST API and cluster route on `listener`; await the server to run it,
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
    Ok(
        HttpServer::new(move || App::new().app_data(state.clone()).configure(api::routes))
            .workers(2)
            .tcp_nodelay(true)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)?
            .run(),
    )
}

/// Starts a node's agent. Must run inside an actix `System`.
pub fn start_node(
    settings: Arc<Settings>,
    node_id: String,
    rest_addr: String,
    connector: Option<Connector>,
) -> Addr<NodeAgent> {
    NodeAgent::new(settings, node_id, rest_addr, connector).start()
}

/// A node's REST API on `listener`; await the server to run it.
pub fn serve_node(
    agent: Addr<NodeAgent>,
    settings: Arc<Settings>,
    listener: TcpListener,
) -> Result<actix_web::dev::Server, StartError> {
    let state = web::Data::new(node_api::NodeState { agent, settings });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(node_api::routes)
    })
    .workers(1)
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
        actix_rt::spawn(api::serve_link(orch_end, registry.clone()));
        node_end
    }))
}
