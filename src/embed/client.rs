//! [`OrchestratorClient`]: a running orchestrator, over its REST API; and the REST calls
//! `mcpt run --orchestrator` makes too.

use std::time::Duration;

use awc::http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{Error, poll, settle};
use crate::execution::State;
use crate::task::report::Report;
use crate::validate::FieldErrors;

/// How long one call to the orchestrator may take before it counts as lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer (a report) read.
const MAX_BODY: usize = 256 << 20;
/// How often [`OrchestratorClient::wait`] looks at an execution.
const POLL: Duration = Duration::from_millis(250);

/// A running orchestrator (`mcpt orchestrator`, or an [`super::Orchestrator`] of another
/// process), over its REST API. Made by [`super::Orchestrator::connect`].
///
/// ```no_run
/// # async fn f() -> Result<(), mcp_testing::embed::Error> {
/// let client = mcp_testing::Orchestrator::connect("http://127.0.0.1:8080", None)?;
/// let id = client.submit(serde_json::json!({"name": "smoke", "tasks": [{"type": "load_test",
///     "parameters": {"targets": [{"url": "http://127.0.0.1:9000/"}], "duration": "2s", "base_rps": 10}}]})).await?;
/// let report = client.wait(&id, std::time::Duration::from_secs(60)).await?;
/// println!("{} requests", report.summary.total_requests);
/// # Ok(()) }
/// ```
pub struct OrchestratorClient {
    api: Api,
}

/// An execution's state (`GET /api/executions/{id}`, its leading fields).
#[derive(Debug, Clone, Deserialize)]
pub struct ExecutionStatus {
    pub execution_id: String,
    pub name: String,
    pub state: State,
    pub reason: Option<String>,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub progress_percent: f64,
    /// Completed requests per second over the time the load ran (`None`: a stored execution
    /// without a report).
    pub achieved_rps: Option<f64>,
}

/// A node of the cluster (`GET /api/nodes`, its leading fields).
#[derive(Debug, Clone, Deserialize)]
pub struct NodeSummary {
    pub node_id: String,
    /// `connected`, `disconnected` (its session may resume) or `failed` (fenced).
    pub state: String,
    pub location: String,
    pub capabilities: Vec<String>,
    /// Its REST API (`host:port`).
    pub rest_addr: String,
    /// Milliseconds since the orchestrator last heard from it.
    pub last_heard_ms: u64,
}

impl ExecutionStatus {
    /// The leading fields of a live view.
    pub fn of(v: &crate::execution::ExecutionView) -> ExecutionStatus {
        ExecutionStatus {
            execution_id: v.execution_id.clone(),
            name: v.name.clone(),
            state: v.state,
            reason: v.reason.clone(),
            started_at_ms: v.started_at_ms,
            finished_at_ms: v.finished_at_ms,
            progress_percent: v.progress_percent,
            achieved_rps: Some(v.achieved_rps),
        }
    }

    /// A final state, and its end time set (a cancelled one ends once its nodes reported).
    pub fn is_over(&self) -> bool {
        self.state.is_terminal() && self.finished_at_ms.is_some()
    }
}

impl OrchestratorClient {
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<OrchestratorClient, Error> {
        let parsed = url::Url::parse(url).map_err(|e| {
            let mut f = crate::validate::FieldErrors::default();
            f.push("url", format!("{url:?} is not a URL: {e}"));
            Error::Invalid(f)
        })?;
        let base = parsed.as_str().trim_end_matches('/').to_string();
        Ok(OrchestratorClient {
            api: Api::new(base, token),
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        self.api
            .call(method, path, body)
            .await
            .map_err(|e| match e {
                CallError::Transient(why) => {
                    Error::Unavailable(format!("{}: {why}", self.api.base))
                }
                CallError::Status {
                    status: 404,
                    message,
                    ..
                } => Error::NotFound(message.trim_end_matches(" not found").to_string()),
                CallError::Status {
                    status: 422,
                    fields: Some(fields),
                    ..
                } => Error::Invalid(fields),
                CallError::Status {
                    status, message, ..
                } => Error::Refused(format!("{status}: {message}")),
            })
    }

    /// Submits an execution (`{name, tasks}`); answers its id. The orchestrator validates it.
    pub async fn submit(&self, execution: Value) -> Result<String, Error> {
        let answer = self
            .call(Method::POST, "/api/executions", Some(&execution))
            .await?;
        answer["execution_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Unavailable(format!("no execution_id in {answer}")))
    }

    /// An execution's state.
    pub async fn execution(&self, id: &str) -> Result<ExecutionStatus, Error> {
        let v = self
            .call(Method::GET, &format!("/api/executions/{id}"), None)
            .await?;
        serde_json::from_value(v)
            .map_err(|e| Error::Unavailable(format!("the answer does not read: {e}")))
    }

    /// The cluster's nodes.
    pub async fn nodes(&self) -> Result<Vec<NodeSummary>, Error> {
        let v = self.call(Method::GET, "/api/nodes", None).await?;
        serde_json::from_value(v["nodes"].clone())
            .map_err(|e| Error::Unavailable(format!("the node list does not read: {e}")))
    }

    /// Waits, at most `timeout`, until at least `count` nodes are connected; answers them.
    pub async fn wait_for_nodes(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<NodeSummary>, Error> {
        super::wait_connected(POLL, count, timeout, || self.nodes(), |n| &n.state).await
    }

    /// Cancels an execution.
    pub async fn cancel(&self, id: &str) -> Result<(), Error> {
        self.call(Method::DELETE, &format!("/api/executions/{id}"), None)
            .await
            .map(|_| ())
    }

    /// An execution's report.
    pub async fn report(&self, id: &str) -> Result<Report, Error> {
        let v = self
            .call(Method::GET, &format!("/api/executions/{id}/report"), None)
            .await?;
        serde_json::from_value(v)
            .map_err(|e| Error::Unavailable(format!("the report does not read: {e}")))
    }

    /// Waits, at most `timeout`, until an execution is over and answers its report; a failed
    /// execution is an error unless a threshold with `abort_on_fail` stopped it.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Report, Error> {
        let over = || async { settle(self.execution(id).await?, self.report(id)).await };
        poll(POLL, timeout, format!("execution {id} not over"), over).await
    }
}

/// The orchestrator's REST API, called from the run's actix system.
pub(crate) struct Api {
    pub(crate) client: awc::Client,
    pub(crate) base: String,
    pub(crate) token: Option<String>,
}

impl Api {
    pub(crate) fn new(base: String, token: Option<String>) -> Api {
        Api {
            client: awc::Client::builder().timeout(CALL_TIMEOUT).finish(),
            base,
            token,
        }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> awc::ClientRequest {
        let req = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request and reads its JSON answer.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let req = self.request(method, path);
        let sent = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| CallError::Transient(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .body()
            .limit(MAX_BODY)
            .await
            .map_err(|e| CallError::Transient(e.to_string()))?;
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            Ok(json)
        } else if status == awc::http::StatusCode::SERVICE_UNAVAILABLE {
            Err(CallError::Transient(message(&json)))
        } else {
            Err(CallError::Status {
                status: status.as_u16(),
                message: message(&json),
                fields: field_errors(&json),
            })
        }
    }
}

/// What went wrong with one call to the orchestrator.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer (the connection failed, closed or timed out) or a 503 (restarting): worth
    /// trying again.
    Transient(String),
    /// An answer that trying again will not change; a 422's problems by field.
    Status {
        status: u16,
        message: String,
        fields: Option<FieldErrors>,
    },
}

/// The problems an error answer lists by field (`errors`, else its one `field`), if any.
fn field_errors(v: &Value) -> Option<FieldErrors> {
    let mut fields = FieldErrors::default();
    for e in v["errors"].as_array().into_iter().flatten() {
        if let (Some(f), Some(m)) = (e["field"].as_str(), e["message"].as_str()) {
            fields.push(f, m);
        }
    }
    if let (true, Some(f), Some(m)) = (
        fields.is_empty(),
        v["field"].as_str(),
        v["message"].as_str(),
    ) {
        fields.push(f, m);
    }
    (!fields.is_empty()).then_some(fields)
}

/// The message of an error answer (`{error, message, field}`), else the answer itself.
pub(crate) fn message(v: &Value) -> String {
    match (v["message"].as_str(), v["field"].as_str()) {
        (Some(m), Some(f)) if !f.is_empty() && !m.contains(f) => format!("{f}: {m}"),
        (Some(m), _) => m.to_string(),
        _ => v.to_string(),
    }
}
