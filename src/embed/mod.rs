//! The library: mcp-testing embedded in a Rust program (the spec's Quick Start and Usage
//! Examples). Each type here is a thin handle over the actors the `mcpt` processes run, and
//! answers with the same types the REST API serializes:
//!
//! - [`Orchestrator`]: starts an orchestrator in this process (its actors, and its REST API,
//!   web UI, event stream, `/metrics` and MCP on a port); submit executions and read their
//!   state and reports. [`Orchestrator::connect`] gives an [`OrchestratorClient`] to a running
//!   one over its REST API.
//! - [`LoadGenerator`]: a node in this process that joins an orchestrator, in process or over
//!   the network.
//! - [`Discovery`], [`Distributor`], [`ResourcePool`]: the orchestrator's service registry,
//!   workload distributor and global resource pool ([`ResourcePool::start`] also runs a pool
//!   alone).
//! - [`NodeMonitor`]: a node's health: checks registered from code and custom metrics with
//!   warning and critical levels, which raise alerts like any other check.
//!
//! Everything runs on actix: call these inside an actix `System` (`#[actix_web::main]`, or
//! `actix_rt::System::new().block_on(...)`). The examples in `examples/` run each of the
//! spec's usage examples.
//!
//! ```
//! use mcp_testing::{LoadGenerator, Orchestrator, settings::Settings};
//! use std::time::Duration;
//! # let target = mcp_testing::cli::TargetGuard::start(
//! #     std::net::TcpListener::bind("127.0.0.1:0").unwrap(), 1).unwrap();
//! # let url = format!("http://{}/", target.addr);
//! # actix_rt::System::new().block_on(async {
//! let settings = Settings::loopback(); // 127.0.0.1, free ports
//! # // The machine's own CPU and disk must not decide where this runs (a full CI disk).
//! # let mut settings = settings;
//! # let t = &mut settings.health_monitoring.alert_thresholds;
//! # (t.cpu_warning, t.cpu_critical, t.disk_warning, t.disk_critical) = (101.0, 101.0, 101.0, 101.0);
//! let orchestrator = Orchestrator::start_in_memory(settings.clone())?;
//! let _node = LoadGenerator::join(&orchestrator, settings, "node-1")?;
//! let id = orchestrator
//!     .submit(serde_json::json!({
//!         "name": "smoke",
//!         "tasks": [{"type": "load_test", "parameters": {
//!             "targets": [{"url": url}], "duration": "1s", "base_rps": 20}}]
//!     }))
//!     .await?;
//! let report = orchestrator.wait(&id, Duration::from_secs(60)).await?;
//! assert_eq!(report.summary.total_requests, 20);
//! # Ok::<(), mcp_testing::embed::Error>(())
//! # }).unwrap();
//! ```

pub(crate) mod client;
mod cluster;
mod load_generator;
mod monitor;
mod orchestrator;
mod pool;

pub use client::{ExecutionStatus, NodeSummary, OrchestratorClient};
pub use cluster::{Discovery, Distributor};
pub use load_generator::LoadGenerator;
pub use monitor::NodeMonitor;
pub use orchestrator::Orchestrator;
pub use pool::ResourcePool;

pub use crate::health::code::CodeCheck;
pub use crate::health::custom::CustomMetric;

use std::future::Future;
use std::time::Duration;

use crate::execution::State;
use crate::http::error::ApiError;
use crate::task::report::Report;
use crate::validate::FieldErrors;

/// Why a call through the library failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid: each problem names its field, as the REST API's 422 does.
    #[error("invalid: {0}")]
    Invalid(FieldErrors),
    #[error("{0} not found")]
    NotFound(String),
    /// Scenarios of a workload that fit no node, each with what was missing.
    #[error("{} scenario(s) fit no node: {}", .0.len(), .0.iter().map(|u| format!("{}: {}", u.scenario_id, u.reason)).collect::<Vec<_>>().join("; "))]
    Unplaced(Vec<crate::placement::Unplaced>),
    /// Understood and refused (a workload id taken, a node that keeps too many metrics).
    #[error("refused: {0}")]
    Refused(String),
    /// An actor did not answer (it is restarting), or a remote orchestrator cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The execution failed.
    #[error("the execution failed: {0}")]
    Failed(String),
    /// Waited longer than asked.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// The process could not start (a port, the store, the exposure rules).
    #[error(transparent)]
    Start(#[from] crate::app::StartError),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        match e {
            ApiError::Invalid(fields) => Error::Invalid(fields),
            ApiError::NotFound(what) => Error::NotFound(what),
            ApiError::Conflict(why) => Error::Refused(why),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

impl From<actix::MailboxError> for Error {
    fn from(e: actix::MailboxError) -> Error {
        Error::Unavailable(format!("an actor did not answer: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Start(e.into())
    }
}

/// Calls `step` every `every` until it answers `Some`, for at most `timeout`; `what` says what
/// did not happen in time.
async fn poll<T, F, Fut>(
    every: Duration,
    timeout: Duration,
    what: String,
    mut step: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let waiting = async {
        loop {
            if let Some(done) = step().await? {
                return Ok(done);
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::time::timeout(timeout, waiting)
        .await
        .map_err(|_| Error::TimedOut(format!("{what} within {timeout:?}")))?
}

/// What waiting on an execution in `status` comes to: its report once it is over (`report`
/// is only awaited then); a failure, unless a threshold with `abort_on_fail` stopped it (its
/// report says why); `None` while it runs.
/// Lists nodes every `every` until at least `count` are connected (`state` reads a node's
/// state), at most `timeout`; answers the list. The waits of both orchestrator handles.
async fn wait_connected<T, F, Fut>(
    every: Duration,
    count: usize,
    timeout: Duration,
    list: F,
    state: fn(&T) -> &str,
) -> Result<Vec<T>, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Vec<T>, Error>>,
{
    let joined = || async {
        let nodes = list().await?;
        let connected = nodes.iter().filter(|n| state(n) == "connected").count();
        Ok((connected >= count).then_some(nodes))
    };
    poll(
        every,
        timeout,
        format!("{count} nodes did not join"),
        joined,
    )
    .await
}

async fn settle(
    status: ExecutionStatus,
    report: impl Future<Output = Result<Report, Error>>,
) -> Result<Option<Report>, Error> {
    if status.state == State::Failed {
        return match report.await {
            Ok(r) if r.summary.stopped_by.is_some() => Ok(Some(r)),
            _ => Err(Error::Failed(status.reason.unwrap_or_default())),
        };
    }
    if status.is_over() {
        return report.await.map(Some);
    }
    Ok(None)
}

/// An actor's address, or `Unavailable` while its supervisor rebuilds it.
fn live<A: actix::Actor>(
    slot: &crate::actors::registry::Slot<A>,
    what: &str,
) -> Result<actix::Addr<A>, Error> {
    slot.get()
        .ok_or_else(|| Error::Unavailable(format!("the {what} is restarting")))
}
