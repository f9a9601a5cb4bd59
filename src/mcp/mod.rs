//! The MCP server (Model Context Protocol, official Rust SDK `rmcp`): tools and resources that
//! let an assistant run load tests through the orchestrator's REST API.
//!
//! Transports: stdio (`mcpt mcp --orchestrator URL`, [`stdio`]) and streamable HTTP at `/mcp`
//! on the orchestrator ([`http`]). Both drive one [`backend::Backend`], a `Send` REST client,
//! so tool handlers hold no actor state. Guardrails ([`guard`]) run on the server whatever
//! the client sends; a refusal is a tool error (`isError: true`) naming the limit, its key
//! and its environment variable.
//!
//! | tool | does |
//! |---|---|
//! | `run_load_test` | submits a one-task load test, returns `{execution_id}` at once |
//! | `run_security_test` | submits a one-task security scan, returns `{execution_id}` at once |
//! | `get_execution` | the REST view: state, progress, live figures |
//! | `wait_for_execution` | progress notifications every second until final or timeout, then the summary |
//! | `cancel_execution` | `DELETE /api/executions/{id}` |
//! | `adjust_execution` | `PATCH /api/executions/{id}` (with `max_rps`: `mcp.max_rps`) |
//! | `get_report` | summary, percentiles, errors per task, and a verdict ([`tools::verdict`]) |
//! | `list_executions` | the newest executions |
//! | `compare_executions` | `GET /api/executions/{a}/compare/{b}` |
//! | `list_nodes`, `cluster_health` | `GET /api/nodes`, `GET /api/health` |
//!
//! Resources: `mcpt://executions/{id}/report` (`application/json`) for each finished execution.

pub mod backend;
pub mod guard;
pub mod http;
mod kinds;
pub mod stdio;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};

use crate::settings::Settings;
use backend::{Backend, BackendError};
use tools::{
    AdjustExecution, Compare, ExecutionId, ListExecutions, Live, WaitFor, is_final, report_verdict,
};

/// The URI of an execution's report resource.
pub fn report_uri(id: &str) -> String {
    format!("mcpt://executions/{id}/report")
}

/// The execution id of a report resource URI.
pub fn report_id(uri: &str) -> Option<&str> {
    uri.strip_prefix("mcpt://executions/")?
        .strip_suffix("/report")
        .filter(|id| valid_id(id))
}

/// Execution ids are UUIDs; anything else is refused before it reaches a REST path.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What every session of one MCP server shares: the backend, the limits, and the executions
/// started over MCP (for `mcp.max_concurrent_executions`).
pub struct McpContext {
    pub backend: Backend,
    pub settings: Arc<Settings>,
    /// Held across the check and the submit, so two calls cannot both take the last slot.
    started: tokio::sync::Mutex<Vec<String>>,
}

impl McpContext {
    pub fn new(backend: Backend, settings: Arc<Settings>) -> Arc<McpContext> {
        Arc::new(McpContext {
            backend,
            settings,
            started: tokio::sync::Mutex::new(Vec::new()),
        })
    }
}

/// One MCP session's server: the shared context and the tool router: the generic tools and
/// each task kind's ([`kinds`]; `run_load_test`'s schema states this server's caps).
#[derive(Clone)]
pub struct McpServer {
    ctx: Arc<McpContext>,
    tool_router: ToolRouter<McpServer>,
}

fn ok(v: Value) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::structured(v))
}

fn tool_error(msg: impl std::fmt::Display) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::error(vec![ContentBlock::text(
        msg.to_string(),
    )]))
}

/// A backend error about execution `id`: a 404 is "no execution <id>".
fn execution_error(id: &str, e: BackendError) -> Result<CallToolResult, McpError> {
    match e {
        BackendError::NotFound(_) => tool_error(format!("no execution {id}")),
        other => tool_error(other),
    }
}

/// A REST answer as the tool's result, or its error as a tool error.
fn relay(answer: Result<Value, BackendError>) -> Result<CallToolResult, McpError> {
    answer.map_or_else(tool_error, ok)
}

/// The same about execution `id`.
fn relay_for(id: &str, answer: Result<Value, BackendError>) -> Result<CallToolResult, McpError> {
    answer.map_or_else(|e| execution_error(id, e), ok)
}

fn no_execution(id: &str) -> Result<CallToolResult, McpError> {
    tool_error(format!("no execution {id}"))
}

impl McpServer {
    pub fn new(ctx: Arc<McpContext>) -> McpServer {
        let tool_router = Self::tool_router() + Self::kind_tools(&ctx.settings);
        McpServer { ctx, tool_router }
    }

    fn backend(&self) -> &Backend {
        &self.ctx.backend
    }

    async fn view(&self, id: &str) -> Result<Value, BackendError> {
        self.backend().get(&format!("/api/executions/{id}")).await
    }

    /// Keeps in `started` the ids started over MCP that are not final yet.
    async fn unfinished(&self, started: &mut Vec<String>) -> Result<(), BackendError> {
        let ids = std::mem::take(started);
        let mut failure = None;
        for id in ids {
            if failure.is_some() {
                started.push(id);
                continue;
            }
            match self.view(&id).await {
                Ok(v) if is_final(v["state"].as_str().unwrap_or("")) => {}
                Ok(_) => started.push(id),
                Err(BackendError::NotFound(_)) => {}
                Err(e) => {
                    started.push(id);
                    failure = Some(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Submits an execution started over MCP, within `mcp.max_concurrent_executions`.
    async fn submit(&self, body: Value, what: &str) -> Result<CallToolResult, McpError> {
        let mut started = self.ctx.started.lock().await;
        if let Err(e) = self.unfinished(&mut started).await {
            return tool_error(e);
        }
        if let Err(refusal) = guard::check_concurrency(&started, &self.ctx.settings.mcp) {
            return tool_error(refusal);
        }
        match self.backend().post("/api/executions", body.clone()).await {
            Ok(answer) => {
                let Some(id) = answer["execution_id"].as_str() else {
                    return tool_error(format!(
                        "the orchestrator answered without an id: {answer}"
                    ));
                };
                started.push(id.to_string());
                tracing::info!(execution = %id, what, "started over mcp");
                ok(json!({"execution_id": id, "name": body["name"]}))
            }
            Err(e) => tool_error(format!("the {what} was not started: {e}")),
        }
    }

    /// The report summary and verdict of a final execution (`view`: its REST view).
    async fn outcome(&self, id: &str, view: &Value) -> Value {
        let state = view["state"].as_str().unwrap_or("unknown");
        let report = self
            .backend()
            .get(&format!("/api/executions/{id}/report"))
            .await
            .ok();
        let summary = report.as_ref().map(|r| r["summary"].clone());
        let v = match &report {
            Some(r) => report_verdict(state, r),
            None => tools::verdict(state, None),
        };
        json!({
            "execution_id": id,
            "name": view["name"],
            "state": state,
            "reason": view["reason"],
            "verdict": v.verdict,
            "reasons": v.reasons,
            "summary": summary,
            "report_uri": report.as_ref().map(|_| report_uri(id)),
        })
    }
}

#[tool_router]
impl McpServer {
    #[tool(
        description = "An execution's current state (pending, planning, running, completed, completed_degraded, failed, cancelled), progress_percent, planned duration_s, and live figures per task (sent, completed, errors, latency percentiles so far, the latest second).",
        annotations(read_only_hint = true)
    )]
    async fn get_execution(
        &self,
        Parameters(ExecutionId { execution_id: id }): Parameters<ExecutionId>,
    ) -> Result<CallToolResult, McpError> {
        if !valid_id(&id) {
            return no_execution(&id);
        }
        relay_for(&id, self.view(&id).await)
    }

    #[tool(
        description = "Wait until an execution is final (or timeout_s passes; the execution keeps running then), sending a progress notification every second when the request carries a progress token (progress/total in seconds, message like 'running 3/8 s: 99.8 rps, p99 2.1 ms, 0 errors'). Returns the state, the report summary and the verdict (passed, degraded or failed, with reasons); timed_out is true when it gave up waiting.",
        annotations(read_only_hint = true)
    )]
    async fn wait_for_execution(
        &self,
        Parameters(w): Parameters<WaitFor>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let id = w.execution_id.clone();
        if !valid_id(&id) {
            return no_execution(&id);
        }
        let token = ctx.meta.get_progress_token();
        let started = tokio::time::Instant::now();
        let deadline = started + w.timeout();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = 0.0f64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = ctx.ct.cancelled() => {
                    return Err(McpError::internal_error("the wait was cancelled", None));
                }
            }
            let view = match self.view(&id).await {
                Ok(v) => v,
                Err(e) => return execution_error(&id, e),
            };
            let state = view["state"].as_str().unwrap_or("unknown").to_string();
            let done = is_final(&state);
            if let Some(token) = &token {
                let mut live = Live::of(&view);
                if done {
                    live.elapsed_s = live.duration_s.max(last);
                }
                // Milliseconds are enough, and progress never goes back.
                last = last.max((live.elapsed_s * 1000.0).round() / 1000.0);
                let note = ProgressNotificationParam::new(token.clone(), last)
                    .with_total(live.duration_s)
                    .with_message(live.message(&state));
                if let Err(e) = ctx.peer.notify_progress(note).await {
                    tracing::debug!(error = %e, "progress notification not sent");
                }
            }
            if done {
                let mut out = self.outcome(&id, &view).await;
                out["timed_out"] = json!(false);
                out["waited_s"] = json!(started.elapsed().as_secs_f64().round());
                return ok(out);
            }
            if tokio::time::Instant::now() >= deadline {
                let live = Live::of(&view);
                return ok(json!({
                    "execution_id": id,
                    "state": state,
                    "timed_out": true,
                    "waited_s": started.elapsed().as_secs_f64().round(),
                    "progress_percent": view["progress_percent"],
                    "message": format!(
                        "still {}; call wait_for_execution again, or cancel_execution",
                        live.message(&state)
                    ),
                }));
            }
        }
    }

    #[tool(
        description = "Cancel a pending or running execution: no more requests start, those in flight finish, and the report covers what ran. An execution already final cannot be cancelled (tool error naming its state).",
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn cancel_execution(
        &self,
        Parameters(ExecutionId { execution_id: id }): Parameters<ExecutionId>,
    ) -> Result<CallToolResult, McpError> {
        if !valid_id(&id) {
            return no_execution(&id);
        }
        let answer = self
            .backend()
            .delete(&format!("/api/executions/{id}"))
            .await;
        relay_for(&id, answer)
    }

    #[tool(
        description = "Change a running execution live, from an instant about half a second ahead on every node: rate_factor scales the rest of its rate plan, base_rps/peak_rps set new rates, concurrent_users sets a closed model's users, paused pauses or resumes (the rest of the plan waits). Give exactly one. The server refuses (tool error naming the field) a change that would ask for more than mcp.max_rps, and any change to an execution that is not running. Answers the execution's view with every change so far in adjustments.",
        annotations(destructive_hint = false, idempotent_hint = false)
    )]
    async fn adjust_execution(
        &self,
        Parameters(a): Parameters<AdjustExecution>,
    ) -> Result<CallToolResult, McpError> {
        let id = a.execution_id;
        if !valid_id(&id) {
            return no_execution(&id);
        }
        let limits = &self.ctx.settings.mcp;
        for (field, asked) in [("base_rps", a.base_rps), ("peak_rps", a.peak_rps)] {
            if let Some(asked) = asked.filter(|v| *v > limits.max_rps) {
                let max = limits.max_rps;
                return tool_error(guard::Refusal::Rate { field, asked, max });
            }
        }
        let body = json!({
            "task": a.task,
            "rate_factor": a.rate_factor,
            "base_rps": a.base_rps,
            "peak_rps": a.peak_rps,
            "concurrent_users": a.concurrent_users,
            "paused": a.paused,
            "max_rps": limits.max_rps,
        });
        // Absent keys, not nulls: the API takes exactly one change.
        let body: serde_json::Map<String, Value> = body
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let answer = self
            .backend()
            .patch(&format!("/api/executions/{id}"), Value::Object(body))
            .await;
        relay_for(&id, answer)
    }

    #[tool(
        description = "A finished execution's report: the summary (requests, achieved rps, errors by kind, error_rate, latency percentiles p50..max in ms, corrected for coordinated omission), each task's figures (status codes, not_sent, late starts), and a verdict: passed (completed, error rate below 1 %, every planned request sent), degraded (error rate 1-5 %, planned requests not sent, or a node lost) or failed (failed or cancelled, nothing completed, or 5 % errors or more), with reasons.",
        annotations(read_only_hint = true)
    )]
    async fn get_report(
        &self,
        Parameters(ExecutionId { execution_id: id }): Parameters<ExecutionId>,
    ) -> Result<CallToolResult, McpError> {
        if !valid_id(&id) {
            return no_execution(&id);
        }
        let view = match self.view(&id).await {
            Ok(v) => v,
            Err(e) => return execution_error(&id, e),
        };
        let state = view["state"].as_str().unwrap_or("unknown");
        let report = match self
            .backend()
            .get(&format!("/api/executions/{id}/report"))
            .await
        {
            Ok(r) => r,
            Err(BackendError::Api { status: 409, .. }) => {
                return tool_error(format!(
                    "execution {id} is {state} and has no report yet; call wait_for_execution first"
                ));
            }
            Err(e) => return execution_error(&id, e),
        };
        let v = report_verdict(state, &report);
        let tasks: Vec<Value> = report["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let mut t = t.clone();
                if let Some(o) = t.as_object_mut() {
                    o.remove("timeline");
                }
                t
            })
            .collect();
        ok(json!({
            "execution_id": id,
            "name": report["name"],
            "state": state,
            "verdict": v.verdict,
            "reasons": v.reasons,
            "summary": report["summary"],
            "tasks": tasks,
            "report_uri": report_uri(&id),
        }))
    }

    #[tool(
        description = "The newest executions (default 20, at most 100), each with its id, name, state, progress and times.",
        annotations(read_only_hint = true)
    )]
    async fn list_executions(
        &self,
        Parameters(l): Parameters<ListExecutions>,
    ) -> Result<CallToolResult, McpError> {
        let all = match self.backend().get("/api/executions").await {
            Ok(v) => v,
            Err(e) => return tool_error(e),
        };
        let list = all["executions"].as_array().cloned().unwrap_or_default();
        let total = list.len();
        let executions: Vec<Value> = list
            .into_iter()
            .take(l.limit())
            .map(|e| {
                json!({
                    "execution_id": e["execution_id"],
                    "name": e["name"],
                    "state": e["state"],
                    "reason": e["reason"],
                    "progress_percent": e["progress_percent"],
                    "created_at_ms": e["created_at_ms"],
                    "started_at_ms": e["started_at_ms"],
                    "finished_at_ms": e["finished_at_ms"],
                })
            })
            .collect();
        ok(json!({"executions": executions, "total": total}))
    }

    #[tool(
        description = "Compare two executions' reports: b against a, deltas (b - a, and percent) of achieved rps, requests, errors, error rate and latency p50/p90/p95/p99/max, for the summary and for tasks matched by name.",
        annotations(read_only_hint = true)
    )]
    async fn compare_executions(
        &self,
        Parameters(Compare { a, b }): Parameters<Compare>,
    ) -> Result<CallToolResult, McpError> {
        for id in [&a, &b] {
            if !valid_id(id) {
                return no_execution(id);
            }
        }
        match self
            .backend()
            .get(&format!("/api/executions/{a}/compare/{b}"))
            .await
        {
            Ok(v) => ok(v),
            Err(BackendError::NotFound(msg)) => {
                let missing = if msg.contains(&a) { &a } else { &b };
                no_execution(missing)
            }
            Err(BackendError::Api {
                status: 409,
                message,
            }) => tool_error(format!(
                "{message}; compare finished executions (wait_for_execution first)"
            )),
            Err(e) => tool_error(e),
        }
    }

    #[tool(
        description = "The cluster's load-generating nodes: id, state, capabilities, capacity, location, and health (status, score, CPU/memory/disk use).",
        annotations(read_only_hint = true)
    )]
    async fn list_nodes(&self) -> Result<CallToolResult, McpError> {
        relay(self.backend().get("/api/nodes").await)
    }

    #[tool(
        description = "The orchestrator's health: version, nodes connected/disconnected/failed, executions running and pending, the cluster's health (healthy, warning and failed nodes, average score).",
        annotations(read_only_hint = true)
    )]
    async fn cluster_health(&self) -> Result<CallToolResult, McpError> {
        relay(self.backend().get("/api/health").await)
    }
}

const INSTRUCTIONS: &str = "mcp-testing runs HTTP load tests on a cluster. Start one with \
run_load_test (targets, rps, duration_s; it returns an execution_id at once), follow it with \
wait_for_execution (progress every second), then read get_report for the verdict. \
Finished reports are also resources: mcpt://executions/{id}/report. Targets must be on the \
server's allowlist; rates, durations and concurrent executions are capped by the server.";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("mcpt", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let all = self
            .backend()
            .get("/api/executions")
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let resources = all["executions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| is_final(e["state"].as_str().unwrap_or("")))
            // One cancelled before it started has no report.
            .filter(|e| !e["started_at_ms"].is_null())
            .filter_map(|e| {
                let id = e["execution_id"].as_str()?;
                let name = e["name"].as_str().unwrap_or(id);
                let state = e["state"].as_str().unwrap_or("");
                Some(
                    Resource::new(report_uri(id), format!("report {name} ({id})"))
                        .with_description(format!("the JSON report of execution {id}, {state}"))
                        .with_mime_type("application/json"),
                )
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(
                "mcpt://executions/{execution_id}/report",
                "execution report",
            )
            .with_description("the JSON report of a finished execution")
            .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let Some(id) = report_id(&uri) else {
            return Err(McpError::resource_not_found(
                format!("no resource {uri}; reports are mcpt://executions/{{id}}/report"),
                None,
            ));
        };
        match self
            .backend()
            .get(&format!("/api/executions/{id}/report"))
            .await
        {
            Ok(report) => {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| McpError::internal_error(e.to_string(), None))?;
                let contents =
                    ResourceContents::text(text, uri.clone()).with_mime_type("application/json");
                Ok(ReadResourceResult::new(vec![contents]).into())
            }
            Err(BackendError::NotFound(_)) => Err(McpError::resource_not_found(
                format!("no execution {id}"),
                None,
            )),
            Err(BackendError::Api {
                status: 409,
                message,
            }) => Err(McpError::resource_not_found(message, None)),
            Err(e) => Err(McpError::internal_error(e.to_string(), None)),
        }
    }
}

#[cfg(test)]
mod tests;
