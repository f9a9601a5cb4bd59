//! A node's own REST API (`mcpt node`): start and stop tasks by hand, read their figures and
//! the node's state. Mutating calls need the API token when one is set, as on the orchestrator.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/load/start` | a task `{type, name, parameters}` → 201 `{task_id}` |
//! | POST | `/load/stop/{task_id}` | stop it → `{"status": "stopping"}` |
//! | GET | `/load/metrics/{task_id}` | the task's figures on this node |
//! | GET | `/load/status` | every task, the link, the lease |
//! | GET | `/health` | liveness and whether the node is joined |
//! | POST | `/health/metrics` | a custom metric `{name, value, unit?, warning?, critical?, higher_is_worse?}` → `{status: "accepted"}` |
//! | GET | `/metrics` | Prometheus text: the node's `mcp_load_generator_*` and `mcp_node_*` series (see [`crate::metrics`]) |
//! | GET | `/openapi.json` | the OpenAPI 3.1 document of these (see [`crate::http::openapi`]) |

use std::sync::Arc;

use actix::Addr;
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::node_agent::{
    GetNodeStatus, NodeAgent, NodeStatus, StartLocal, StopTask, TaskStatus,
};
use crate::actors::node_monitor::SetMetricError;
use crate::actors::registry::Slot;
use crate::health::HealthReport;
use crate::http::error::{
    ApiError, ApiToken, ErrorBody, json_body, not_allowed, not_found, require_token,
};
use crate::http::metrics_api;
use crate::messages::health::MetricRefused;
use crate::metrics::NodeMetrics;
use crate::settings::Settings;
use crate::validate::FieldErrors;

pub struct NodeState {
    /// The current agent (a supervisor may have rebuilt it).
    pub agent: Arc<Slot<NodeAgent>>,
    /// The node's health monitor (its latest report answers `/health`).
    pub monitor: Arc<Slot<crate::actors::node_monitor::NodeMonitor>>,
    /// The node's series, fed by its agent.
    pub metrics: Arc<NodeMetrics>,
    pub settings: Arc<Settings>,
}

impl NodeState {
    fn agent(&self) -> Result<Addr<NodeAgent>, ApiError> {
        self.agent
            .get()
            .ok_or_else(|| ApiError::Unavailable("the node agent is restarting; retry".into()))
    }
}

fn unavailable<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::Unavailable(format!("the node agent did not answer: {e}"))
}

pub fn routes(token: Option<String>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| routes_with(cfg, ApiToken(token))
}

fn routes_with(cfg: &mut web::ServiceConfig, token: ApiToken) {
    cfg.app_data(web::Data::new(token));
    cfg.service(
        web::scope("/load")
            .wrap(from_fn(require_token))
            .service(
                web::resource("/start")
                    .route(web::post().to(start))
                    .default_service(not_allowed("POST")),
            )
            .service(
                web::resource("/stop/{task_id}")
                    .route(web::post().to(stop))
                    .default_service(not_allowed("POST")),
            )
            .service(
                web::resource("/metrics/{task_id}")
                    .route(web::get().to(metrics))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/status")
                    .route(web::get().to(status))
                    .default_service(not_allowed("GET")),
            ),
    )
    .configure(crate::http::openapi::configure_node)
    .service(
        web::resource("/health")
            .route(web::get().to(health))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/health/metrics")
            .wrap(from_fn(require_token))
            .route(web::post().to(custom_metric))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics_api::node))
            .default_service(not_allowed("GET")),
    )
    .default_service(web::to(not_found));
}

/// The answer of a start.
#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub task_id: String,
}

/// Starts a task on this node by hand.
#[utoipa::path(
    post,
    path = "/load/start",
    tag = "load",
    request_body = crate::http::openapi::TaskRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Started", body = Started),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid task: the field named", body = ErrorBody),
        (status = 503, description = "The node agent is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn start(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<NodeState>,
) -> Result<HttpResponse, ApiError> {
    let doc = json_body(&req, payload, state.settings.api.max_body_size).await?;
    let id = state
        .agent()?
        .send(StartLocal(doc))
        .await
        .map_err(unavailable)?
        .map_err(ApiError::Invalid)?;
    Ok(HttpResponse::Created().json(Started { task_id: id }))
}

/// The answer of a stop.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stopping {
    /// `stopping`.
    pub status: String,
    pub task_id: String,
}

#[utoipa::path(
    post,
    path = "/load/stop/{task_id}",
    tag = "load",
    params(("task_id" = String, Path, description = "The task's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stopping", body = Stopping),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 503, description = "The node agent is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn stop(
    id: web::Path<String>,
    state: web::Data<NodeState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if state
        .agent()?
        .send(StopTask(id.clone()))
        .await
        .map_err(unavailable)?
    {
        Ok(HttpResponse::Ok().json(Stopping {
            status: "stopping".into(),
            task_id: id,
        }))
    } else {
        Err(ApiError::NotFound(format!("task {id}")))
    }
}

/// One task's figures on this node.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskMetrics {
    pub task_id: String,
    pub task: TaskStatus,
}

#[utoipa::path(
    get,
    path = "/load/metrics/{task_id}",
    tag = "load",
    params(("task_id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task's figures on this node", body = TaskMetrics),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 503, description = "The node agent is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn metrics(
    id: web::Path<String>,
    state: web::Data<NodeState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let status = state
        .agent()?
        .send(GetNodeStatus)
        .await
        .map_err(unavailable)?;
    match status.tasks.get(&id) {
        Some(t) => Ok(HttpResponse::Ok().json(TaskMetrics {
            task_id: id,
            task: t.clone(),
        })),
        None => Err(ApiError::NotFound(format!("task {id}"))),
    }
}

#[utoipa::path(
    get,
    path = "/load/status",
    tag = "load",
    responses(
        (status = 200, description = "Every task, the link, the lease", body = NodeStatus),
        (status = 503, description = "The node agent is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn status(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
    let status = state
        .agent()?
        .send(GetNodeStatus)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(status))
}

/// A node's `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeHealthAnswer {
    /// The latest report's status (`healthy` before the first one).
    pub status: String,
    pub node_id: String,
    /// Whether the node is joined to an orchestrator.
    pub joined: bool,
    pub epoch: u64,
    /// How many tasks it holds.
    pub tasks: usize,
    /// The latest health report (`null` before the first one).
    pub health: Option<HealthReport>,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "load",
    responses(
        (status = 200, description = "Liveness and whether the node is joined", body = NodeHealthAnswer),
        (status = 503, description = "The node agent is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn health(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
    let status = state
        .agent()?
        .send(GetNodeStatus)
        .await
        .map_err(unavailable)?;
    let report = match state.monitor.get() {
        Some(m) => m
            .send(crate::messages::health::GetLocalHealth)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    Ok(HttpResponse::Ok().json(NodeHealthAnswer {
        status: report
            .as_ref()
            .map_or("healthy", |r| r.status.as_str())
            .into(),
        node_id: status.node_id,
        joined: status.connected,
        epoch: status.epoch,
        tasks: status.tasks.len(),
        health: report,
    }))
}

/// The answer of a custom metric accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricAccepted {
    /// `accepted`: the node's health monitor keeps it; its next round evaluates it.
    pub status: String,
    pub name: String,
}

/// Sets a custom metric's latest value and its levels on this node. A value at or past
/// `critical` (or `warning`) for `health_monitoring.alert_threshold` rounds raises an alert,
/// which clears when it falls back; the metric shows in the node's health report and on
/// `/metrics` as `mcp_node_custom_metric{name}`.
#[utoipa::path(
    post,
    path = "/health/metrics",
    tag = "load",
    request_body = crate::health::custom::CustomMetric,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Kept", body = MetricAccepted),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 409, description = "The node already keeps 100 other custom metrics", body = ErrorBody),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid metric: the field named", body = ErrorBody),
        (status = 503, description = "The health monitor is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn custom_metric(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<NodeState>,
) -> Result<HttpResponse, ApiError> {
    let doc = json_body(&req, payload, state.settings.api.max_body_size).await?;
    let metric = crate::health::custom::CustomMetric::from_json(&doc).map_err(ApiError::Invalid)?;
    let name = metric.name.clone();
    let monitor = state
        .monitor
        .get()
        .ok_or_else(|| ApiError::Unavailable("the health monitor is restarting; retry".into()))?;
    crate::actors::node_monitor::set_custom_metric(&monitor, metric)
        .await
        .map_err(|e| match e {
            SetMetricError::Refused(MetricRefused::Full(why)) => ApiError::Conflict(why),
            SetMetricError::Refused(MetricRefused::NameTaken(why)) => {
                ApiError::Invalid(FieldErrors::one("name", why))
            }
            SetMetricError::Gone(why) => ApiError::Unavailable(why),
        })?;
    Ok(HttpResponse::Ok().json(MetricAccepted {
        status: "accepted".into(),
        name,
    }))
}
