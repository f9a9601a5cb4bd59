//! The orchestrator's REST API (DESIGN §7) and its cluster route. Handlers hold actor
//! addresses (through the registry, current after a restart), never actor state; every error
//! is an [`ApiError`].
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/api/executions` | submit `{name, tasks[{type, parameters}]}` → 201 `{execution_id}` |
//! | GET | `/api/executions` | newest first |
//! | GET | `/api/executions/{id}` | state, progress, per-task and per-node figures |
//! | DELETE | `/api/executions/{id}` | cancel → `{"status": "cancelled"}` (idempotent) |
//! | PATCH | `/api/executions/{id}` | live change (rate, users, pause) → its view ([`adjust_api`]) |
//! | GET | `/api/executions/{id}/timeline` | every merged second so far, as the `stats` events carry them ([`timeline_api`]) |
//! | GET | `/api/executions/{id}/report` | the report (schema of `mcpt run --output`) |
//! | GET | `/api/executions/{id}/report.html` | the report as one self-contained HTML page (`mcpt run --html`) |
//! | GET | `/api/executions/{id}/report.csv?table=timeline\|requests` | one of the report's tables as CSV (`mcpt run --csv`) |
//! | GET | `/api/executions/{a}/compare/{b}` | deltas of `b` against `a`: summary and tasks matched by name (`schemas/compare.schema.json`) |
//! | GET | `/api/nodes` | the cluster's nodes, each with its health |
//! | DELETE | `/api/nodes/{id}` | forget a failed or departed node → `{node_id, forgotten}` (404 unknown, 409 connected) |
//! | GET | `/api/metrics` | the spec's metrics document from live figures ([`metrics_doc_api`]) |
//! | GET | `/api/health` | the orchestrator, counts of nodes and executions, and the cluster's health (`cluster`: healthy, warning and failed nodes, average score, per node), and the event stream's figures (`events`: subscribers, published, dropped_slow) |
//! | GET | `/api/events` | the live event stream (WebSocket; `?execution_id=ID`; schema `schemas/events.schema.json`) |
//! | GET | `/cluster` | the cluster link (WebSocket, nodes only; [`cluster_route`]) |
//! | GET | `/metrics` | Prometheus text: the `mcp_orchestrator_*` series (see [`crate::metrics`]) |
//! | GET | `/api/openapi.json` | the OpenAPI 3.1 document of all of these (see [`crate::http::openapi`]) |

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::actors::orchestrator::Orchestrator;
use crate::actors::registry::Registry;
use crate::execution::{ExecutionView, State};
use crate::health::{ClusterHealth, NodeHealthView};
use crate::http::error::{
    ApiError, ApiToken, ErrorBody, json_body, not_allowed, not_found, require_token,
};
use crate::http::{
    adjust_api, cluster_route, events, health_api, metrics_api, metrics_doc_api, report_api,
    resources_api, services_api, timeline_api, workloads_api,
};
use crate::messages::cluster::NodeView;
use crate::messages::cluster::{Cancel, GetExecution, ListExecutions, ListNodes, Submit};
use crate::messages::events::EventBusState;
use crate::messages::events::GetEventBusState;
use crate::messages::store as db;
use crate::plan::PlanError;
use crate::task;

pub struct ApiState {
    pub registry: Arc<Registry>,
}

impl ApiState {
    pub(crate) fn orchestrator(&self) -> Result<actix::Addr<Orchestrator>, ApiError> {
        self.registry
            .orchestrator()
            .ok_or_else(|| ApiError::Unavailable("the orchestrator is restarting; retry".into()))
    }
}

pub(crate) fn unavailable<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::Unavailable(format!("the orchestrator did not answer: {e}"))
}

/// The route table; tests use it as is (`App::new().configure(routes)`). Every API path
/// answers a method it does not take with a JSON 405 and an `Allow` header.
pub fn routes(token: Option<String>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| routes_with(cfg, ApiToken(token))
}

fn routes_with(cfg: &mut web::ServiceConfig, token: ApiToken) {
    cfg.app_data(web::Data::new(token));
    // Before the guarded scope: the preview is open like a GET (see preview_api).
    crate::http::preview_api::configure(cfg);
    crate::http::openapi::configure_orchestrator(cfg);
    cfg.service(
        web::scope("/api")
            .wrap(from_fn(require_token))
            .service(
                web::resource("/executions")
                    .route(web::post().to(submit))
                    .route(web::get().to(list))
                    .default_service(not_allowed("GET, POST")),
            )
            .service(
                web::resource("/executions/{id}")
                    .route(web::get().to(get))
                    .route(web::delete().to(cancel))
                    .route(web::patch().to(adjust_api::adjust))
                    .default_service(not_allowed("GET, DELETE, PATCH")),
            )
            .service(
                web::resource("/executions/{id}/report")
                    .route(web::get().to(report_api::report))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/executions/{id}/report.html")
                    .route(web::get().to(report_api::report_html))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/executions/{id}/report.csv")
                    .route(web::get().to(report_api::report_csv))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/executions/{a}/compare/{b}")
                    .route(web::get().to(report_api::compare))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/nodes")
                    .route(web::get().to(nodes))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/nodes/{id}")
                    .route(web::delete().to(forget_node))
                    .default_service(not_allowed("DELETE")),
            )
            .service(
                web::resource("/metrics")
                    .route(web::get().to(metrics_doc_api::metrics))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/health")
                    .route(web::get().to(health))
                    .default_service(not_allowed("GET")),
            )
            .configure(events::routes)
            .configure(timeline_api::configure)
            .configure(health_api::configure)
            .configure(resources_api::configure)
            .configure(services_api::configure)
            .configure(workloads_api::configure),
    )
    .service(
        web::resource("/cluster")
            .route(web::get().to(cluster_route::cluster))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics_api::orchestrator))
            .default_service(not_allowed("GET")),
    )
    .default_service(web::to(not_found));
}

/// Validates an execution document off the event loop (validation may resolve host names,
/// for the allowlist). A panic in it is a validator bug that some input reached; the client
/// still gets a 4xx, not a 503.
pub(crate) async fn validate_plan(
    doc: Value,
    settings: Arc<crate::settings::Settings>,
) -> Result<(Value, task::TestPlan), ApiError> {
    let (doc, result) = web::block(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            task::validate(&doc, &settings.load_generation)
        }));
        (doc, r)
    })
    .await
    .map_err(unavailable)?;
    let result = result.map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        tracing::error!(%why, "plan validation panicked");
        let mut e = crate::validate::FieldErrors::default();
        e.push(
            "",
            format!("the plan holds a value out of any usable range ({why})"),
        );
        ApiError::Invalid(e)
    })?;
    let plan = result.map_err(|e| match e {
        PlanError::Invalid(fields) => ApiError::Invalid(fields),
        other => ApiError::BadJson(other.to_string()),
    })?;
    Ok((doc, plan))
}

/// Reads an execution body (a plan) and validates it: what the submit and the preview take.
pub async fn read_plan(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ApiState,
) -> Result<(Value, task::TestPlan), ApiError> {
    let settings = state.registry.settings.clone();
    let doc = json_body(req, payload, settings.api.max_body_size).await?;
    if !doc.is_object() {
        let mut e = crate::validate::FieldErrors::default();
        e.push("", "the body must be a JSON object {name, tasks}");
        return Err(ApiError::Invalid(e));
    }
    validate_plan(doc, settings).await
}

/// The answer of a submit.
#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    pub execution_id: String,
}

/// Submits an execution: it is validated, stored, and started once nodes are eligible.
#[utoipa::path(
    post,
    path = "/api/executions",
    tag = "executions",
    request_body(content(
        (crate::http::openapi::ExecutionRequest = "application/json"),
        (crate::http::openapi::ExecutionRequest = "application/yaml"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Accepted", body = Submitted),
        (status = 400, description = "Not JSON, or not YAML", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid plan: the field named", body = ErrorBody),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let (doc, plan) = read_plan(&req, payload, &state).await?;
    let id = state
        .orchestrator()?
        .send(Submit {
            request: doc,
            plan,
            barrier: None,
        })
        .await
        .map_err(unavailable)?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Created().json(Submitted { execution_id: id }))
}

/// Every execution, live ones first then those only stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionList {
    pub executions: Vec<ExecutionEntry>,
}

/// An execution the orchestrator runs (or ran since it started), or one known only to the
/// store (finished under an earlier run of the orchestrator).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ExecutionEntry {
    Live(ExecutionView),
    Stored(StoredExecution),
}

impl utoipa::PartialSchema for ExecutionEntry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // anyOf, not oneOf: a live view also has every key of a stored one.
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(ExecutionView::name()))
            .item(utoipa::openapi::Ref::from_schema_name(
                StoredExecution::name(),
            ))
            .into()
    }
}

impl ToSchema for ExecutionEntry {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((ExecutionView::name().into(), ExecutionView::schema()));
        ExecutionView::schemas(schemas);
        schemas.push((StoredExecution::name().into(), StoredExecution::schema()));
        StoredExecution::schemas(schemas);
    }
}

/// An execution known only to the store.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredExecution {
    pub execution_id: String,
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub progress_percent: f64,
    /// Completed requests per second over the seconds the load ran (`null` before the
    /// execution has a report).
    pub achieved_rps: Option<f64>,
    /// The stored report's summary (`null` before it has one).
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
}

#[utoipa::path(
    get,
    path = "/api/executions",
    tag = "executions",
    responses(
        (status = 200, description = "Newest first", body = ExecutionList),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let live = state
        .orchestrator()?
        .send(ListExecutions)
        .await
        .map_err(unavailable)?;
    // Finished executions of earlier runs of the orchestrator are only in the store.
    let known: std::collections::HashSet<String> =
        live.iter().map(|v| v.execution_id.clone()).collect();
    let mut out: Vec<ExecutionEntry> = live.into_iter().map(ExecutionEntry::Live).collect();
    if let Ok(Ok(records)) = state.registry.store.send(db::ListExecutions).await {
        out.extend(
            records
                .into_iter()
                .filter(|r| !known.contains(&r.id))
                .map(|r| ExecutionEntry::Stored(stored_view(&r, &state.registry.settings))),
        );
    }
    Ok(HttpResponse::Ok().json(ExecutionList { executions: out }))
}

/// The view of an execution known only to the store.
pub(crate) fn stored_view(
    r: &crate::store::ExecutionRecord,
    settings: &crate::settings::Settings,
) -> StoredExecution {
    let report: Option<Value> = r
        .report_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    let terminal = State::parse(&r.state).is_some_and(State::is_terminal);
    // A run stopped before its plan ended (cancelled, or stopped by a watch) got as far as
    // the time its report covers, as the live view says.
    let stopped_at_percent = report
        .as_ref()
        .filter(|rep| rep["summary"]["interrupted"] == true)
        .and_then(|rep| {
            let ran = rep["summary"]["duration_s"].as_f64()?;
            let doc: Value = serde_json::from_str(&r.request_json).ok()?;
            let plan = task::validate(&doc, &settings.load_generation).ok()?;
            let planned = crate::execution::Execution::pending(r, plan).duration();
            (!planned.is_zero()).then(|| (ran / planned.as_secs_f64() * 100.0).clamp(0.0, 100.0))
        });
    let progress = match (terminal, stopped_at_percent) {
        (true, Some(p)) => p,
        (true, None) => 100.0,
        (false, _) => 0.0,
    };
    StoredExecution {
        execution_id: r.id.clone(),
        name: r.name.clone(),
        state: r.state.clone(),
        reason: r.reason.clone(),
        created_at_ms: r.created_at_ms,
        started_at_ms: r.started_at_ms,
        finished_at_ms: r.finished_at_ms,
        progress_percent: progress,
        achieved_rps: report
            .as_ref()
            .and_then(|r| r["summary"]["achieved_rps"].as_f64()),
        summary: report
            .and_then(|mut r| r.get_mut("summary").map(Value::take))
            .filter(Value::is_object),
    }
}

#[utoipa::path(
    get,
    path = "/api/executions/{id}",
    tag = "executions",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "State, progress, per-task and per-node figures", body = ExecutionEntry),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 503, description = "The orchestrator or the store did not answer", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if let Some(view) = state
        .orchestrator()?
        .send(GetExecution(id.clone()))
        .await
        .map_err(unavailable)?
    {
        return Ok(HttpResponse::Ok().json(view));
    }
    match state
        .registry
        .store
        .send(db::GetExecution(id.clone()))
        .await
    {
        Ok(Ok(Some(r))) => Ok(HttpResponse::Ok().json(stored_view(&r, &state.registry.settings))),
        Ok(Ok(None)) => Err(ApiError::NotFound(format!("execution {id}"))),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(e) => Err(unavailable(e)),
    }
}

/// The answer of a cancel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// Always `cancelled`.
    pub status: String,
    pub execution_id: String,
}

/// Cancels a pending or running execution (idempotent: a cancelled one answers 200 again).
#[utoipa::path(
    delete,
    path = "/api/executions/{id}",
    tag = "executions",
    params(("id" = String, Path, description = "The execution's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = Cancelled),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "It already ended otherwise", body = ErrorBody),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let known = state
        .orchestrator()?
        .send(Cancel(id.clone()))
        .await
        .map_err(unavailable)?;
    let final_state = match known {
        Some(s) => s,
        None => match state
            .registry
            .store
            .send(db::GetExecution(id.clone()))
            .await
        {
            Ok(Ok(Some(r))) => r.state,
            _ => return Err(ApiError::NotFound(format!("execution {id}"))),
        },
    };
    if final_state == "cancelled" {
        Ok(HttpResponse::Ok().json(Cancelled {
            status: "cancelled".into(),
            execution_id: id,
        }))
    } else {
        Err(ApiError::Conflict(format!(
            "execution {id} already ended as {final_state}; only a pending or running execution can be cancelled"
        )))
    }
}

/// A node forgotten by `DELETE /api/nodes/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Forgotten {
    pub node_id: String,
    /// Always `true`.
    pub forgotten: bool,
}

/// `DELETE /api/nodes/{id}`: forgets a node that failed or left (its alerts cleared, out of
/// the cluster's health); 404 for an unknown node, 409 for one still connected.
#[utoipa::path(
    delete,
    path = "/api/nodes/{id}",
    tag = "cluster",
    params(("id" = String, Path, description = "The node's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Forgotten", body = Forgotten),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "The node is connected or may still resume its link", body = ErrorBody),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn forget_node(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let node_id = id.into_inner();
    let forgotten = state
        .orchestrator()?
        .send(crate::messages::cluster::ForgetNode {
            node_id: node_id.clone(),
        })
        .await
        .map_err(unavailable)?;
    match forgotten {
        Ok(()) => Ok(HttpResponse::Ok().json(Forgotten {
            node_id,
            forgotten: true,
        })),
        Err(e @ crate::messages::cluster::ForgetRefused::Unknown(_)) => {
            Err(ApiError::NotFound(e.to_string()))
        }
        Err(e) => Err(ApiError::Conflict(e.to_string())),
    }
}

/// The cluster's nodes.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeEntry>,
}

/// A node with its health.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeEntry {
    #[serde(flatten)]
    pub node: NodeView,
    /// Status, score and usage, when the health monitor has them.
    pub health: Option<NodeHealthView>,
}

#[utoipa::path(
    get,
    path = "/api/nodes",
    tag = "cluster",
    responses(
        (status = 200, description = "The cluster's nodes, each with its health", body = NodeList),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn nodes(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let nodes = state
        .orchestrator()?
        .send(ListNodes)
        .await
        .map_err(unavailable)?;
    // Each node with its health (status, score, usage), when the monitor has it.
    let health = health_api::cluster_health(&state).await.ok();
    let nodes: Vec<NodeEntry> = nodes
        .into_iter()
        .map(|node| {
            let health = health
                .as_ref()
                .and_then(|c| c.nodes.iter().find(|h| h.node_id == node.node_id))
                .cloned();
            NodeEntry { node, health }
        })
        .collect();
    Ok(HttpResponse::Ok().json(NodeList { nodes }))
}

/// `GET /api/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `healthy`, or `degraded` while the store cannot write.
    pub status: String,
    /// What makes the service degraded (empty when healthy).
    pub reasons: Vec<String>,
    /// The store's state (`null` while the store restarts).
    pub store: Option<crate::store::pending::StoreStatus>,
    pub version: String,
    pub nodes: NodeCounts,
    pub executions: ExecutionCounts,
    /// The cluster's health (`null` while the health monitor restarts).
    pub cluster: Option<ClusterHealth>,
    /// The event stream's figures (`null` while the event bus restarts).
    pub events: Option<EventBusState>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeCounts {
    pub connected: usize,
    pub disconnected: usize,
    pub failed: usize,
    /// Nodes that said goodbye and are not forgotten yet.
    pub left: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionCounts {
    pub running: usize,
    pub pending: usize,
}

#[utoipa::path(
    get,
    path = "/api/health",
    tag = "cluster",
    responses(
        (status = 200, description = "The orchestrator, its nodes and executions, the cluster's health", body = Health),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn health(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let orch = state.orchestrator()?;
    let nodes = orch.send(ListNodes).await.map_err(unavailable)?;
    let execs = orch.send(ListExecutions).await.map_err(unavailable)?;
    let count = |s: &str| nodes.iter().filter(|n| n.state == s).count();
    let running = execs.iter().filter(|e| e.state == State::Running).count();
    let pending = execs.iter().filter(|e| e.state == State::Pending).count();
    // The orchestrator answers even while its health monitor restarts.
    let cluster = health_api::cluster_health(&state).await.ok();
    let events = match state.registry.events() {
        Some(bus) => bus.send(GetEventBusState).await.ok(),
        None => None,
    };
    // A store that cannot write keeps what it is given in memory; the service is degraded
    // until it writes again.
    let store = state.registry.store.send(db::GetStoreStatus).await.ok();
    let reasons: Vec<String> = store.iter().filter_map(|s| s.problem()).collect();
    let status = if store.as_ref().is_some_and(|s| s.degraded()) {
        "degraded"
    } else {
        "healthy"
    };
    Ok(HttpResponse::Ok().json(Health {
        status: status.into(),
        reasons,
        store,
        version: env!("CARGO_PKG_VERSION").into(),
        nodes: NodeCounts {
            connected: count("connected"),
            disconnected: count("disconnected"),
            failed: count("failed"),
            left: count("left"),
        },
        executions: ExecutionCounts { running, pending },
        cluster,
        events,
    }))
}
