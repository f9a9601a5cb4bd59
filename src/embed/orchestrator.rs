//! [`Orchestrator`]: an orchestrator in this process.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use serde_json::Value;

use super::ExecutionStatus;
use super::{Discovery, Distributor, Error, ResourcePool, live, poll, settle};
use crate::actors::orchestrator::Orchestrator as OrchestratorActor;
use crate::actors::store::Store;
use crate::app::{OrchestratorHandle, bind_listener, serve_orchestrator, start_orchestrator_on};
use crate::execution::ExecutionView;
use crate::health::{Alert, ClusterHealth};
use crate::messages::cluster::{BuildReport, Cancel, GetExecution, ListNodes, NodeView, Submit};
use crate::messages::events::{Subscribe, Subscription};
use crate::messages::health::{GetAlerts, GetClusterHealth};
use crate::messages::store as db;
use crate::settings::Settings;
use crate::store::{DirLock, ExecutionRecord};
use crate::task::report::Report;

/// How often [`Orchestrator::wait`] looks at an execution.
const POLL: Duration = Duration::from_millis(100);

/// An orchestrator running in this process: its actors under their supervisor, and its HTTP
/// server (REST API, web UI, event stream, `/metrics`, MCP) on
/// `settings.orchestrator.host:port`. A supervised actor that keeps failing ends the process,
/// as it does `mcpt orchestrator`.
///
/// ```no_run
/// # async fn f() -> Result<(), mcp_testing::embed::Error> {
/// let mut settings = mcp_testing::settings::Settings::defaults();
/// settings.orchestrator.port = 0;
/// let orchestrator = mcp_testing::Orchestrator::start_in_memory(settings)?;
/// println!("REST API and UI at {}", orchestrator.url());
/// # Ok(()) }
/// ```
pub struct Orchestrator {
    handle: OrchestratorHandle,
    url: url::Url,
    server: actix_web::dev::ServerHandle,
    /// Its data directory, held until it stops (see [`crate::store::DirLock`]).
    _data_lock: Option<DirLock>,
}

impl Orchestrator {
    /// Starts one that keeps its executions in `settings.orchestrator.data_dir`, as
    /// `mcpt orchestrator` does. Port 0 takes a free port ([`Orchestrator::url`] says which).
    /// Beyond loopback it needs `cluster.secret` and `api.token`, like the CLI. A data
    /// directory that another orchestrator (of this process or another) holds is refused
    /// (`Error::Start`, naming it); [`Orchestrator::stop`] or dropping the handle frees it.
    pub fn start(settings: Settings) -> Result<Orchestrator, Error> {
        let start = |e| Error::from(crate::app::StartError::from(e));
        let lock = DirLock::acquire(&settings.orchestrator.data_dir).map_err(start)?;
        let store = Store::start(lock.dir().to_path_buf()).map_err(start)?;
        Orchestrator::launch(settings, store, Some(lock))
    }

    /// Starts one that keeps nothing on disk.
    pub fn start_in_memory(settings: Settings) -> Result<Orchestrator, Error> {
        let store = Store::start_in_memory().map_err(crate::app::StartError::from)?;
        Orchestrator::launch(settings, store, None)
    }

    fn launch(
        mut settings: Settings,
        store: Addr<Store>,
        data_lock: Option<DirLock>,
    ) -> Result<Orchestrator, Error> {
        let host = settings.orchestrator.host.clone();
        crate::app::check_exposure(&settings, &host)?;
        let listener = bind_listener(&host, settings.orchestrator.port)?;
        let addr = listener.local_addr()?;
        // Announced by discovery: the port bound.
        settings.orchestrator.port = addr.port();
        let handle = start_orchestrator_on(Arc::new(settings), store);
        let server = serve_orchestrator(handle.clone(), listener)?;
        let url = format!("http://{addr}")
            .parse()
            .expect("a socket address is a URL");
        let running = server.handle();
        actix_rt::spawn(server);
        Ok(Orchestrator {
            handle,
            url,
            server: running,
            _data_lock: data_lock,
        })
    }

    /// A client of a running orchestrator's REST API (`token`: its `api.token`).
    pub fn connect(url: &str, token: Option<String>) -> Result<super::OrchestratorClient, Error> {
        super::OrchestratorClient::new(url, token)
    }

    /// Where its HTTP server listens: `http://host:port`.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The settings it runs with (its port the bound one).
    pub fn settings(&self) -> &Settings {
        &self.handle.registry.settings
    }

    /// Its internals, for in-process nodes and the other handles.
    pub(crate) fn handle(&self) -> &OrchestratorHandle {
        &self.handle
    }

    fn actor(&self) -> Result<Addr<OrchestratorActor>, Error> {
        self.handle
            .registry
            .orchestrator()
            .ok_or_else(|| Error::Unavailable("the orchestrator is restarting".into()))
    }

    /// Submits an execution (`POST /api/executions`'s body: `{name, tasks}`), validated as the
    /// REST API validates it; answers its id. It starts once nodes are eligible.
    pub async fn submit(&self, execution: Value) -> Result<String, Error> {
        let settings = self.handle.registry.settings.clone();
        let (request, plan) = crate::http::api::validate_plan(execution, settings).await?;
        let submit = Submit {
            request,
            plan,
            barrier: None,
        };
        self.actor()?
            .send(submit)
            .await?
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// An execution's live view: state, per-task and per-node figures (`GET
    /// /api/executions/{id}` while the orchestrator keeps it live: running, or among the
    /// latest finished). [`Orchestrator::status`] and [`Orchestrator::report`] also read the
    /// older ones from the store.
    pub async fn execution(&self, id: &str) -> Result<ExecutionView, Error> {
        self.actor()?
            .send(GetExecution(id.to_string()))
            .await?
            .ok_or_else(|| Error::NotFound(format!("execution {id}")))
    }

    /// An execution's state, live or stored: what [`super::OrchestratorClient::execution`]
    /// answers for a remote one.
    pub async fn status(&self, id: &str) -> Result<ExecutionStatus, Error> {
        if let Some(view) = self.actor()?.send(GetExecution(id.to_string())).await? {
            return Ok(ExecutionStatus::of(&view));
        }
        let record = self.stored(id).await?;
        let stored = crate::http::api::stored_view(&record, self.settings());
        let json = serde_json::to_value(stored).expect("a stored view serializes");
        serde_json::from_value(json).map_err(|e| {
            Error::Unavailable(format!("the stored execution {id} does not read: {e}"))
        })
    }

    /// The store's record of an execution.
    async fn stored(&self, id: &str) -> Result<ExecutionRecord, Error> {
        let get = db::GetExecution(id.to_string());
        match self.handle.registry.store.send(get).await? {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(Error::NotFound(format!("execution {id}"))),
            Err(e) => Err(Error::Unavailable(format!("the store: {e}"))),
        }
    }

    /// Cancels an execution: no more requests start, those in flight finish.
    pub async fn cancel(&self, id: &str) -> Result<(), Error> {
        self.actor()?
            .send(Cancel(id.to_string()))
            .await?
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(format!("execution {id}")))
    }

    /// An execution's report, as far as it has run; a finished one's from the store once the
    /// orchestrator no longer keeps it live.
    pub async fn report(&self, id: &str) -> Result<Report, Error> {
        if let Some(report) = self.actor()?.send(BuildReport(id.to_string())).await? {
            return Ok(report);
        }
        let record = self.stored(id).await?;
        let Some(json) = record.report_json else {
            return Err(Error::Refused(format!(
                "execution {id} is {} and has no report yet",
                record.state
            )));
        };
        serde_json::from_str(&json).map_err(|e| {
            Error::Unavailable(format!("the stored report of {id} does not read: {e}"))
        })
    }

    /// Waits, at most `timeout`, until an execution is over and answers its report. A failed
    /// execution is an error, unless a threshold with `abort_on_fail` stopped it (its report
    /// says why). An execution waits for nodes when there are none: give the time that takes.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Report, Error> {
        let over = || async { settle(self.status(id).await?, self.report(id)).await };
        poll(POLL, timeout, format!("execution {id} not over"), over).await
    }

    /// The nodes of the cluster (`GET /api/nodes`).
    pub async fn nodes(&self) -> Result<Vec<NodeView>, Error> {
        Ok(self.actor()?.send(ListNodes).await?)
    }

    /// Waits until at least `count` nodes are connected; answers them.
    pub async fn wait_for_nodes(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<NodeView>, Error> {
        super::wait_connected(POLL, count, timeout, || self.nodes(), |n| n.state).await
    }

    /// The cluster's health (`GET /api/health`).
    pub async fn health(&self) -> Result<ClusterHealth, Error> {
        let monitor = live(&self.handle.registry.health, "health monitor")?;
        Ok(monitor.send(GetClusterHealth).await?)
    }

    /// Alerts (`GET /api/alerts`): the active ones, then, unless `active_only`, those cleared
    /// lately.
    pub async fn alerts(&self, active_only: bool) -> Result<Vec<Alert>, Error> {
        let monitor = live(&self.handle.registry.health, "health monitor")?;
        Ok(monitor.send(GetAlerts { active_only }).await?)
    }

    /// The live event stream, as `GET /api/events` sends it: each event is the JSON text of
    /// one frame (`schemas/events.schema.json`: `execution_state`, `stats`, `node_joined`,
    /// `alert_raised`…), for every execution or only `execution_id`'s. A subscriber that lets
    /// more than `buffer` events wait is dropped (its channel closes, `dropped` says why).
    pub async fn events(
        &self,
        execution_id: Option<&str>,
        buffer: usize,
    ) -> Result<Subscription, Error> {
        let bus = live(&self.handle.registry.events, "event bus")?;
        let subscribe = Subscribe {
            execution_id: execution_id.map(str::to_string),
            buffer: buffer.max(1),
        };
        Ok(bus.send(subscribe).await?)
    }

    /// Its service registry.
    pub fn discovery(&self) -> Discovery {
        Discovery::of(self.handle.registry.clone())
    }

    /// Its workload distributor.
    pub fn distributor(&self) -> Distributor {
        Distributor::of(self.handle.registry.clone())
    }

    /// Its global resource pool (the nodes' capacities).
    pub fn resource_pool(&self) -> ResourcePool {
        ResourcePool::of(self.handle.registry.clone())
    }

    /// Stops its HTTP server (connections in flight get a second to finish) and frees its
    /// data directory. The actors stop with the actix `System`. Dropping the handle does the
    /// same without waiting.
    pub async fn stop(self) {
        self.server.stop(true).await;
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        // The command is sent at once (a second stop, after `stop`, does nothing).
        drop(self.server.stop(true));
    }
}
