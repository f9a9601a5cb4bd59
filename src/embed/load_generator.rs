//! [`LoadGenerator`]: a node in this process.

use std::sync::Arc;
use std::time::Duration;

use super::{Error, NodeMonitor, Orchestrator};
use crate::actors::node_agent::{Connector, GetNodeStatus, Leave, NodeStatus};
use crate::app::{NodeHandle, bind_listener, local_connector, serve_node, start_node};
use crate::settings::Settings;

/// A load generator (a node) running in this process: its agent, which joins an orchestrator
/// and runs the tasks it is given, its health monitor, and its REST API (`/health`,
/// `/metrics`, `POST /health/metrics`...) on `settings.node.host:port` (port 0: a free one).
/// It reports its capabilities, location and capacity (`settings.node`) when it joins.
///
/// ```no_run
/// # async fn f(orchestrator: &mcp_testing::Orchestrator) -> Result<(), mcp_testing::embed::Error> {
/// let mut settings = orchestrator.settings().clone();
/// settings.node.port = 0;
/// settings.node.location = "us-west-1".into();
/// settings.node.capabilities = vec!["http_load".into(), "api_testing".into()];
/// let node = mcp_testing::LoadGenerator::join(orchestrator, settings, "web_node_1")?;
/// println!("{} serves {}", node.node_id(), node.url());
/// # Ok(()) }
/// ```
pub struct LoadGenerator {
    node_id: String,
    url: url::Url,
    node: NodeHandle,
    server: actix_web::dev::ServerHandle,
    left: bool,
}

impl LoadGenerator {
    /// Joins an orchestrator of this process over the in-process link (the cluster protocol
    /// without a socket).
    pub fn join(
        orchestrator: &Orchestrator,
        settings: Settings,
        node_id: &str,
    ) -> Result<LoadGenerator, Error> {
        let connector = local_connector(orchestrator.handle().registry.clone());
        LoadGenerator::launch(settings, node_id, connector)
    }

    /// Joins a running orchestrator over the network (`http://host:port`, as `mcpt node
    /// --orchestrator` takes it); beyond loopback the orchestrator wants `cluster.secret`.
    pub fn connect(
        orchestrator: &url::Url,
        settings: Settings,
        node_id: &str,
    ) -> Result<LoadGenerator, Error> {
        let url = crate::actors::agent_relay::cluster_url(orchestrator);
        LoadGenerator::launch(settings, node_id, Connector::Ws(url))
    }

    fn launch(
        settings: Settings,
        node_id: &str,
        connector: Connector,
    ) -> Result<LoadGenerator, Error> {
        let host = settings.node.host.clone();
        crate::app::check_node_exposure(&settings, &host)?;
        let listener = bind_listener(&host, settings.node.port)?;
        let addr = listener.local_addr()?;
        let settings = Arc::new(settings);
        let node = start_node(
            settings.clone(),
            node_id.to_string(),
            addr.to_string(),
            Some(connector),
        );
        let server = serve_node(node.clone(), settings, listener)?;
        let running = server.handle();
        actix_rt::spawn(server);
        Ok(LoadGenerator {
            node_id: node_id.to_string(),
            url: format!("http://{addr}")
                .parse()
                .expect("a socket address is a URL"),
            node,
            server: running,
            left: false,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Where its REST API listens.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Its health monitor: checks and custom metrics from code.
    pub fn monitor(&self) -> NodeMonitor {
        NodeMonitor::of(self.node.monitor.clone())
    }

    /// Its agent's state: connected or not (and why its last join failed), its tasks.
    pub async fn status(&self) -> Result<NodeStatus, Error> {
        let agent = super::live(&self.node.agent, "node agent")?;
        Ok(agent.send(GetNodeStatus).await?)
    }

    /// Waits, at most `timeout`, until it has joined its orchestrator. A join the orchestrator
    /// refuses (a wrong `cluster.secret`, a node id in use) is retried, and the error on
    /// timeout says why it failed.
    pub async fn wait_joined(&self, timeout: Duration) -> Result<(), Error> {
        let started = tokio::time::Instant::now();
        loop {
            let status = self.status().await?;
            if status.connected {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                let why = status.join_error.unwrap_or_else(|| "no answer yet".into());
                return Err(Error::TimedOut(format!(
                    "{} did not join within {timeout:?}: {why}",
                    self.node_id
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Leaves the cluster (the orchestrator shows it `left`, not failed, and moves its share
    /// of running tasks to the others) and stops its REST API. Dropping the handle does the
    /// same without waiting.
    pub async fn leave(mut self) {
        self.left = true;
        if let Some(agent) = self.node.agent.get() {
            let _ = tokio::time::timeout(Duration::from_secs(2), agent.send(Leave)).await;
        }
        self.server.stop(true).await;
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        if let Some(agent) = self.node.agent.get() {
            agent.do_send(Leave);
        }
        // The command is sent at once; nobody needs to await the server's end.
        drop(self.server.stop(true));
    }
}
