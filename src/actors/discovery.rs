//! `Discovery`: one per process. Owns the multicast socket, the registry of known services,
//! the replay guard and the counters; supervises nothing (its socket and DNS lookups are
//! futures of its own context). An orchestrator announces itself every `broadcast_interval`
//! (the first at once) and listens, so announcing nodes and other orchestrators appear in its
//! registry. A node announces itself and listens too; when no orchestrator address is
//! configured it reports the first valid orchestrator it hears of, by multicast or by DNS
//! (`service_discovery.dns_name`, retried with backoff), once, as `OrchestratorFound`.
//! Without a cluster secret there is no multicast at all (announcements must be signed); DNS
//! still works. A socket that cannot be opened (no such interface, no multicast route) is
//! logged and opened again later. Takes: `GetServices`, `GetDiscoveryStats`,
//! `RegisterService`, `ForgetService`.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::UdpSocket;

use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::clock::unix_ms;
use crate::discovery::multicast::{self, Endpoint};
use crate::discovery::{
    Announcement, DiscoveryCounters, Registry, ReplayGuard, ServiceInstance, ServiceType, Source,
    dns, effective_host, http_url, sign, verify,
};
use crate::messages::discovery::{
    DiscoveryStats, ForgetService, GetDiscoveryStats, GetServices, OrchestratorFound,
    RegisterService,
};
use crate::settings::Settings;

/// The first wait before opening the socket again; doubles up to [`REOPEN_MAX`].
const REOPEN_MIN: Duration = Duration::from_secs(1);
const REOPEN_MAX: Duration = Duration::from_secs(30);
/// The longest wait between two stale-service sweeps.
const CLEANUP_MAX: Duration = Duration::from_secs(5);
/// DNS failures are logged at warn on the first attempt and every this many after.
const DNS_WARN_EVERY: u32 = 10;

enum Role {
    Orchestrator,
    Node {
        on_found: Recipient<OrchestratorFound>,
        /// No address configured and none found yet.
        searching: bool,
        found: Option<url::Url>,
    },
}

/// One datagram off the socket, or the error reading it.
struct Received(io::Result<(Vec<u8>, SocketAddr)>);

impl Message for Received {
    type Result = ();
}

pub struct Discovery {
    settings: Arc<Settings>,
    me: ServiceInstance,
    role: Role,
    registry: Registry,
    guard: ReplayGuard,
    counters: DiscoveryCounters,
    endpoint: Endpoint,
    socket: Option<Rc<UdpSocket>>,
    receiving: Option<SpawnHandle>,
    reopen_after: Duration,
    send_failing: bool,
    announced: u64,
    dns_attempt: u32,
    dns_failures: u64,
    supervisor: Option<Recipient<ChildExited>>,
}

impl Discovery {
    fn new(settings: Arc<Settings>, me: ServiceInstance, role: Role) -> Discovery {
        Discovery {
            endpoint: Endpoint::from_settings(&settings.service_discovery),
            settings,
            me,
            role,
            registry: Registry::default(),
            guard: ReplayGuard::default(),
            counters: DiscoveryCounters::default(),
            socket: None,
            receiving: None,
            reopen_after: REOPEN_MIN,
            send_failing: false,
            announced: 0,
            dns_attempt: 0,
            dns_failures: 0,
            supervisor: None,
        }
    }

    /// An orchestrator's discovery, announcing `me`.
    pub fn orchestrator(settings: Arc<Settings>, me: ServiceInstance) -> Discovery {
        Discovery::new(settings, me, Role::Orchestrator)
    }

    /// A node's discovery, announcing `me`; when `node.orchestrator` is not configured, the
    /// first orchestrator found goes to `on_found`.
    pub fn node(
        settings: Arc<Settings>,
        me: ServiceInstance,
        on_found: Recipient<OrchestratorFound>,
    ) -> Discovery {
        let searching = settings.node.orchestrator.is_none();
        Discovery::new(
            settings,
            me,
            Role::Node {
                on_found,
                searching,
                found: None,
            },
        )
    }

    /// Reports its exit to a supervisor.
    pub fn supervised(mut self, supervisor: Recipient<ChildExited>) -> Discovery {
        self.supervisor = Some(supervisor);
        self
    }

    fn secret(&self) -> Option<&[u8]> {
        self.settings.cluster.secret.as_deref().map(str::as_bytes)
    }

    fn searching(&self) -> bool {
        matches!(
            self.role,
            Role::Node {
                searching: true,
                ..
            }
        )
    }

    fn open_socket(&mut self, ctx: &mut Context<Self>) {
        match multicast::open(&self.endpoint) {
            Ok(socket) => {
                let socket = Rc::new(socket);
                tracing::info!(
                    group = %self.endpoint.group,
                    port = socket.local_addr().map(|a| a.port()).unwrap_or(0),
                    interface = %self.endpoint.interface,
                    "multicast discovery listening"
                );
                let stream = futures_util::stream::unfold(socket.clone(), |s| async move {
                    let r = multicast::recv(&s).await;
                    Some((Received(r), s))
                });
                self.receiving = Some(ctx.add_stream(stream));
                self.socket = Some(socket);
                self.reopen_after = REOPEN_MIN;
                self.announce(ctx);
            }
            Err(e) => {
                tracing::warn!(
                    group = %self.endpoint.group,
                    interface = %self.endpoint.interface,
                    error = %e,
                    retry_in_ms = self.reopen_after.as_millis() as u64,
                    "cannot open the multicast socket; retrying"
                );
                ctx.run_later(self.reopen_after, |act, ctx| act.open_socket(ctx));
                self.reopen_after = (self.reopen_after * 2).min(REOPEN_MAX);
            }
        }
    }

    fn close_socket(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.receiving.take() {
            ctx.cancel_future(h);
        }
        self.socket = None;
    }

    fn announce(&mut self, ctx: &mut Context<Self>) {
        let (Some(socket), Some(secret)) = (self.socket.clone(), self.secret()) else {
            return;
        };
        let ann = Announcement::new(self.me.clone(), unix_ms());
        let datagram = match sign(&ann, secret) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, service = %self.me.service_id, "cannot encode the announcement");
                return;
            }
        };
        let ep = self.endpoint;
        ctx.spawn(
            async move { multicast::send(&socket, &ep, &datagram).await }
                .into_actor(self)
                .map(|res, act, _| match res {
                    Ok(()) => {
                        act.announced += 1;
                        if std::mem::take(&mut act.send_failing) {
                            tracing::info!("announcing again");
                        }
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut act.send_failing, true) {
                            tracing::warn!(error = %e, group = %act.endpoint.group, "cannot send the announcement; trying every interval");
                        }
                    }
                }),
        );
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let Some(secret) = self.settings.cluster.secret.as_deref() else {
            return;
        };
        let now = unix_ms();
        let ann = match verify(bytes, secret.as_bytes(), now, &mut self.guard) {
            Ok(a) => a,
            Err(r) => {
                self.counters.reject(&r);
                tracing::debug!(%from, reason = %r, "announcement dropped");
                return;
            }
        };
        if ann.service.service_id == self.me.service_id {
            self.counters.own += 1;
            return;
        }
        self.counters.accepted += 1;
        let mut service = ann.service;
        service.host = effective_host(&service.host, from.ip());
        let (id, kind, host, port) = (
            service.service_id.clone(),
            service.service_type,
            service.host.clone(),
            service.port,
        );
        if self.registry.upsert(service, Source::Multicast, now) {
            tracing::info!(service = %id, kind = kind.as_str(), %host, port, "service discovered");
        }
        if kind == ServiceType::Orchestrator {
            match http_url(&host, port) {
                Ok(url) => self.found(url, Source::Multicast),
                Err(e) => {
                    tracing::debug!(service = %id, %host, error = %e, "announced host is not usable")
                }
            }
        }
    }

    fn found(&mut self, url: url::Url, source: Source) {
        if let Role::Node {
            on_found,
            searching,
            found,
        } = &mut self.role
            && *searching
        {
            *searching = false;
            *found = Some(url.clone());
            tracing::info!(%url, ?source, "orchestrator found");
            on_found.do_send(OrchestratorFound { url, source });
        }
    }

    fn resolve_dns(&mut self, ctx: &mut Context<Self>) {
        let Some(name) = self.settings.service_discovery.dns_name.clone() else {
            return;
        };
        let server = self.settings.service_discovery.dns_server;
        let port = self.settings.orchestrator.port;
        let lookup = name.clone();
        ctx.spawn(
            async move { dns::resolve(&lookup, port, server).await }
                .into_actor(self)
                .map(move |res, act, ctx| act.on_dns(&name, res, ctx)),
        );
    }

    fn on_dns(
        &mut self,
        name: &str,
        res: Result<Vec<SocketAddr>, dns::DnsError>,
        ctx: &mut Context<Self>,
    ) {
        match res {
            Ok(addrs) => {
                self.dns_attempt = 0;
                let now = unix_ms();
                for a in &addrs {
                    let s = ServiceInstance {
                        service_id: format!("dns:{a}"),
                        service_type: ServiceType::Orchestrator,
                        name: name.to_string(),
                        host: a.ip().to_string(),
                        port: a.port(),
                        capabilities: Vec::new(),
                        location: String::new(),
                        healthy: true,
                        metadata: [("dns_name".to_string(), name.to_string())].into(),
                    };
                    self.registry.upsert(s, Source::Dns, now);
                }
                let first = addrs[0];
                match http_url(&first.ip().to_string(), first.port()) {
                    Ok(url) => self.found(url, Source::Dns),
                    Err(e) => tracing::warn!(%first, error = %e, "resolved address makes no URL"),
                }
                // Keep the entries fresh while the process runs.
                let every = self.settings.service_discovery.broadcast_interval;
                ctx.run_later(every, |act, ctx| act.resolve_dns(ctx));
            }
            Err(e) => {
                self.dns_failures += 1;
                let wait = dns::backoff(self.dns_attempt);
                if self.dns_attempt.is_multiple_of(DNS_WARN_EVERY) {
                    tracing::warn!(dns_name = %name, error = %e, attempt = self.dns_attempt + 1, retry_in_ms = wait.as_millis() as u64, "cannot find the orchestrator in DNS; retrying");
                } else {
                    tracing::debug!(dns_name = %name, error = %e, attempt = self.dns_attempt + 1, "dns lookup failed");
                }
                self.dns_attempt = self.dns_attempt.saturating_add(1);
                // Once found, a failed refresh waits the full interval, not the backoff.
                let wait = if self.searching() {
                    wait
                } else {
                    self.settings.service_discovery.broadcast_interval
                };
                ctx.run_later(wait, |act, ctx| act.resolve_dns(ctx));
            }
        }
    }

    fn cleanup(&mut self) {
        let timeout = self.settings.service_discovery.service_timeout;
        for s in self.registry.expire(unix_ms(), timeout) {
            tracing::info!(service = %s.service_id, kind = s.service_type.as_str(), "service expired");
        }
    }
}

/// How often stale services are swept: a third of the timeout, between 100 ms and 5 s.
fn cleanup_interval(service_timeout: Duration) -> Duration {
    (service_timeout / 3).clamp(Duration::from_millis(100), CLEANUP_MAX)
}

impl Actor for Discovery {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.registry
            .upsert(self.me.clone(), Source::Local, unix_ms());
        let settings = self.settings.clone();
        let d = &settings.service_discovery;
        if d.multicast_enabled {
            if self.secret().is_some() {
                self.open_socket(ctx);
                ctx.run_interval(d.broadcast_interval, |act, ctx| act.announce(ctx));
            } else {
                tracing::warn!(
                    "multicast discovery off: announcements must be signed, and cluster.secret is not set"
                );
            }
        }
        ctx.run_interval(cleanup_interval(d.service_timeout), |act, _| act.cleanup());
        if self.searching() && d.dns_name.is_some() {
            self.resolve_dns(ctx);
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "discovery",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl StreamHandler<Received> for Discovery {
    fn handle(&mut self, Received(r): Received, ctx: &mut Context<Self>) {
        match r {
            Ok((bytes, from)) => self.on_datagram(&bytes, from),
            Err(e) => {
                tracing::warn!(error = %e, "multicast socket failed; reopening");
                self.close_socket(ctx);
                ctx.run_later(self.reopen_after, |act, ctx| act.open_socket(ctx));
            }
        }
    }

    /// The stream never ends by itself; when it is cancelled the actor goes on.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<GetServices> for Discovery {
    type Result = MessageResult<GetServices>;

    fn handle(&mut self, GetServices(q): GetServices, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.registry.query(&q, unix_ms()))
    }
}

impl Handler<GetDiscoveryStats> for Discovery {
    type Result = MessageResult<GetDiscoveryStats>;

    fn handle(&mut self, _: GetDiscoveryStats, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(DiscoveryStats {
            counters: self.counters,
            known: self.registry.len(),
            multicast: self.socket.is_some(),
            multicast_port: self
                .socket
                .as_ref()
                .and_then(|s| s.local_addr().ok())
                .map(|a| a.port()),
            dns_name: self.settings.service_discovery.dns_name.clone(),
            orchestrator: match &self.role {
                Role::Node { found, .. } => found.clone(),
                Role::Orchestrator => None,
            },
            dns_failures: self.dns_failures,
            announced: self.announced,
        })
    }
}

impl Handler<RegisterService> for Discovery {
    type Result = ();

    fn handle(&mut self, RegisterService(s, source): RegisterService, _ctx: &mut Context<Self>) {
        if source == Source::Local && s.service_id == self.me.service_id {
            self.me = s.clone();
        }
        self.registry.upsert(s, source, unix_ms());
    }
}

impl Handler<ForgetService> for Discovery {
    type Result = ();

    fn handle(&mut self, ForgetService(id): ForgetService, _ctx: &mut Context<Self>) {
        if id != self.me.service_id {
            self.registry.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::recorder::Recorder;
    use crate::discovery::{Query, sign};
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    fn settings(secret: Option<&str>) -> Settings {
        let mut s = Settings::defaults();
        s.cluster.secret = secret.map(String::from);
        let d = &mut s.service_discovery;
        d.multicast_group = Ipv4Addr::new(239, 255, 77, 10);
        d.multicast_port = 0;
        d.multicast_interface = Ipv4Addr::LOCALHOST;
        s.node.orchestrator = None;
        s
    }

    fn service(id: &str, t: ServiceType, host: &str, port: u16) -> ServiceInstance {
        ServiceInstance {
            service_id: id.into(),
            service_type: t,
            name: id.into(),
            host: host.into(),
            port,
            capabilities: vec!["http_load".into()],
            location: String::new(),
            healthy: true,
            metadata: Default::default(),
        }
    }

    /// Polls `f` every 10 ms for up to 5 s.
    async fn wait_for<F: AsyncFnMut() -> bool>(mut f: F) -> bool {
        for _ in 0..500 {
            if f().await {
                return true;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[actix_rt::test]
    async fn a_node_joins_the_first_signed_orchestrator_and_counts_the_rest() {
        let found = Arc::new(Mutex::new(Vec::new()));
        let rec = Recorder::<OrchestratorFound>(found.clone()).start();
        let me = service("node-1", ServiceType::LoadGenerator, "0.0.0.0", 8081);
        let d = Discovery::node(Arc::new(settings(Some("k"))), me, rec.recipient()).start();
        let mut port = None;
        assert!(
            wait_for(async || {
                port = d.send(GetDiscoveryStats).await.unwrap().multicast_port;
                port.is_some()
            })
            .await
        );
        let to = (Ipv4Addr::LOCALHOST, port.unwrap());
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let now = unix_ms();
        let orch = |id: &str, p| service(id, ServiceType::Orchestrator, "0.0.0.0", p);
        let unsigned = serde_json::to_vec(&Announcement::new(orch("bad", 1), now)).unwrap();
        let forged = sign(&Announcement::new(orch("bad", 1), now), b"other").unwrap();
        let old = sign(&Announcement::new(orch("bad", 1), now - 60_000), b"k").unwrap();
        for d in [&unsigned, &forged, &old, &b"junk".to_vec()] {
            sender.send_to(d, to).await.unwrap();
        }
        let first = sign(&Announcement::new(orch("orch-a", 9001), now), b"k").unwrap();
        let second = sign(&Announcement::new(orch("orch-b", 9002), now), b"k").unwrap();
        sender.send_to(&first, to).await.unwrap();
        sender.send_to(&second, to).await.unwrap();
        sender.send_to(&first, to).await.unwrap(); // a replay
        assert!(
            wait_for(async || {
                let s = d.send(GetDiscoveryStats).await.unwrap();
                s.counters.accepted == 2 && s.counters.replayed == 2
            })
            .await
        );
        let stats = d.send(GetDiscoveryStats).await.unwrap();
        let c = stats.counters;
        assert_eq!((c.unsigned, c.bad_signature, c.malformed), (1, 1, 1));
        assert_eq!(
            stats.orchestrator.map(String::from).as_deref(),
            Some("http://127.0.0.1:9001/")
        );
        assert_eq!(
            *found.lock().unwrap(),
            [OrchestratorFound {
                url: "http://127.0.0.1:9001".parse().unwrap(),
                source: Source::Multicast
            }]
        );
        let q = Query {
            service_type: Some(ServiceType::Orchestrator),
            ..Query::default()
        };
        let known = d.send(GetServices(q)).await.unwrap();
        let ids: Vec<&str> = known
            .iter()
            .map(|k| k.service.service_id.as_str())
            .collect();
        assert_eq!(ids, ["orch-a", "orch-b"]);
        assert!(known.iter().all(|k| k.source == Source::Multicast));
    }

    #[actix_rt::test]
    async fn without_a_secret_there_is_no_multicast() {
        let me = service("orch", ServiceType::Orchestrator, "0.0.0.0", 8080);
        let d = Discovery::orchestrator(Arc::new(settings(None)), me).start();
        let s = d.send(GetDiscoveryStats).await.unwrap();
        assert!(!s.multicast);
        assert_eq!(s.known, 1);
    }

    #[actix_rt::test]
    async fn registered_services_are_listed_until_forgotten() {
        let me = service("orch", ServiceType::Orchestrator, "0.0.0.0", 8080);
        let d = Discovery::orchestrator(Arc::new(settings(None)), me.clone()).start();
        let mut node = service("n1", ServiceType::LoadGenerator, "10.0.0.5", 8081);
        d.send(RegisterService(node.clone(), Source::Cluster))
            .await
            .unwrap();
        node.service_id = "n2".into();
        node.healthy = false;
        d.send(RegisterService(node, Source::Cluster))
            .await
            .unwrap();
        let healthy_nodes = Query {
            service_type: Some(ServiceType::LoadGenerator),
            capability: Some("http_load".into()),
            healthy_only: true,
        };
        let got = d.send(GetServices(healthy_nodes.clone())).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].service.service_id.as_str(), got[0].source),
            ("n1", Source::Cluster)
        );
        d.send(ForgetService("n1".into())).await.unwrap();
        d.send(ForgetService("orch".into())).await.unwrap();
        assert!(d.send(GetServices(healthy_nodes)).await.unwrap().is_empty());
        let all = d.send(GetServices(Query::default())).await.unwrap();
        let ids: Vec<&str> = all.iter().map(|k| k.service.service_id.as_str()).collect();
        assert_eq!(ids, ["n2", "orch"]);
        assert_eq!(all[1].source, Source::Local);
    }

    #[test]
    fn cleanup_runs_often_enough() {
        assert_eq!(
            cleanup_interval(Duration::from_secs(90)),
            Duration::from_secs(5)
        );
        assert_eq!(
            cleanup_interval(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            cleanup_interval(Duration::from_millis(1)),
            Duration::from_millis(100)
        );
    }
}
