//! Workloads: scenarios placed on the cluster's nodes by a strategy and run as executions.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/api/workloads` | `{workload_id?, name?, scenarios: [...], execution_mode?, strategy?, timeout?, preferred_location?, priority?, dry_run?}` → 201 the plan (200 for a dry run) |
//! | GET | `/api/plans` | every plan kept, newest first |
//! | GET | `/api/plans/{id}` | one plan: its assignments, their executions and `progress_percent` |
//!
//! A scenario has the spec's fields (`scenario_id`, `name`, `description`, `test_type`,
//! `parameters`, `required_capabilities`, `estimated_duration`, `resource_requirements`) and
//! an optional `preferred_location`; its `parameters` are those of a task of its `test_type`
//! and are validated as such (errors are named `scenarios[i].parameters...`).
//! `execution_mode` is `parallel` (default), `coordinated` (all start at one instant once every
//! one holds its resources) or `sequential`; `strategy` one of the six of
//! [`crate::placement`] (default `distribution.default_strategy`). A workload any scenario of
//! which fits no node is refused whole: 409 `{"error": "unplaced", ..., "unplaced": [{scenario_id,
//! reason}]}`.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use crate::actors::distributor::{Distributor, scenario_request};
use crate::http::api::{ApiState, validate_plan};
use crate::http::error::{ApiError, ErrorBody, json_body, not_allowed};
use crate::messages::distributor::{
    ExecutionMode, GetPlan, ListPlans, PlanView, PreparedScenario, SubmitWorkload, Workload,
    WorkloadError,
};
use crate::placement::{Scenario, Strategy, check_workload};
use crate::validate::{FieldError, FieldErrors, Obj};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/workloads")
            .route(web::post().to(submit))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/plans")
            .route(web::get().to(list))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/plans/{id}")
            .route(web::get().to(get))
            .default_service(not_allowed("GET")),
    );
}

fn distributor(state: &ApiState) -> Result<actix::Addr<Distributor>, ApiError> {
    state
        .registry
        .distributor
        .get()
        .ok_or_else(|| ApiError::Unavailable("the distributor is restarting; retry".into()))
}

fn unavailable<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::Unavailable(format!("the distributor did not answer: {e}"))
}

/// The workload's own keys, read and checked (the scenarios' executions are validated after).
struct Form {
    workload_id: String,
    name: String,
    scenarios: Vec<Scenario>,
    execution_mode: ExecutionMode,
    strategy: Option<Strategy>,
    timeout: Option<Duration>,
    preferred_location: Option<String>,
    priority: i32,
    dry_run: bool,
}

fn read_form(doc: &Value) -> Result<Form, FieldErrors> {
    let mut e = FieldErrors::default();
    let Some(mut o) = Obj::new(doc, "", &mut e) else {
        return Err(e);
    };
    let workload_id: String = o.or("workload_id", uuid::Uuid::new_v4().to_string(), &mut e);
    let name: String = o.or("name", workload_id.clone(), &mut e);
    let scenarios: Option<Vec<Scenario>> = o.req("scenarios", &mut e);
    if let Some(s) = &scenarios {
        if s.is_empty() {
            e.push("scenarios", "must list at least one scenario");
        }
        check_workload(s, "scenarios", &mut e);
    }
    let mode: crate::validate::Keyword = o.or(
        "execution_mode",
        crate::validate::Keyword("parallel".into()),
        &mut e,
    );
    let execution_mode = mode.parse().unwrap_or_else(|why: String| {
        e.push("execution_mode", why);
        ExecutionMode::Parallel
    });
    let strategy: Option<Strategy> = o.opt("strategy", &mut e);
    let timeout: Option<Duration> = o.opt("timeout", &mut e);
    if timeout.is_some_and(|t| t.is_zero()) {
        e.push("timeout", "must be greater than 0");
    }
    let priority = crate::plan::read_priority(&mut o, &mut e);
    let form = Form {
        workload_id,
        name,
        scenarios: scenarios.unwrap_or_default(),
        execution_mode,
        strategy,
        timeout,
        preferred_location: o.opt("preferred_location", &mut e),
        priority,
        dry_run: o.or("dry_run", false, &mut e),
    };
    o.finish(&mut e);
    e.into_result(form)
}

/// Names a scenario's execution errors after the scenario: `tasks[0].parameters.x` becomes
/// `scenarios[i].parameters.x`, `tasks[0].type` becomes `scenarios[i].test_type`.
fn rename(errors: FieldErrors, i: usize) -> FieldErrors {
    let at = format!("scenarios[{i}]");
    FieldErrors(
        errors
            .0
            .into_iter()
            .map(|f| {
                let field = match f.field.as_str() {
                    "tasks[0].type" => format!("{at}.test_type"),
                    "tasks[0].name" => format!("{at}.scenario_id"),
                    other => match other.strip_prefix("tasks[0]") {
                        Some(rest) => format!("{at}{rest}"),
                        None if other.is_empty() => at.clone(),
                        None => format!("{at}.{other}"),
                    },
                };
                FieldError {
                    field,
                    message: f.message,
                }
            })
            .collect(),
    )
}

/// A workload's 409: an `ApiError`; when a scenario fits no node (`"error": "unplaced"`), with
/// each such scenario and why.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkloadRefusal {
    #[serde(flatten)]
    pub body: ErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unplaced: Option<Vec<crate::placement::Unplaced>>,
}

/// Places a workload's scenarios on the cluster's nodes and runs them as executions.
#[utoipa::path(
    post,
    path = "/api/workloads",
    tag = "workloads",
    request_body = crate::http::openapi::WorkloadRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A dry run: the plan, nothing started", body = PlanView),
        (status = 201, description = "The plan, its executions submitted", body = PlanView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 409, description = "A scenario fits no node (`unplaced`), or the workload id is taken", body = WorkloadRefusal),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid: the field named", body = ErrorBody),
        (status = 503, description = "The distributor is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.registry.settings.clone();
    let doc = json_body(&req, payload, settings.api.max_body_size).await?;
    let msg = read_workload(&doc, settings).await?;
    let dry_run = msg.dry_run;
    let plan = distributor(&state)?.send(msg).await.map_err(unavailable)?;
    match plan {
        Ok(view) if dry_run => Ok(HttpResponse::Ok().json(view)),
        Ok(view) => Ok(HttpResponse::Created().json(view)),
        Err(WorkloadError::Unplaced(unplaced)) => {
            let message = WorkloadError::Unplaced(unplaced.clone()).to_string();
            Ok(HttpResponse::Conflict().json(WorkloadRefusal {
                body: ErrorBody {
                    error: "unplaced".into(),
                    message,
                    field: Some("scenarios".into()),
                    errors: None,
                },
                unplaced: Some(unplaced),
            }))
        }
        Err(e @ WorkloadError::TooLargeToCoordinate { .. }) => {
            let mut f = FieldErrors::default();
            f.push("execution_mode", e.to_string());
            Err(ApiError::Invalid(f))
        }
        Err(e @ WorkloadError::Duplicate(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(WorkloadError::Unavailable(why)) => Err(ApiError::Unavailable(why)),
    }
}

/// Every plan kept, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PlanList {
    pub plans: Vec<PlanView>,
}

#[utoipa::path(
    get,
    path = "/api/plans",
    tag = "workloads",
    responses(
        (status = 200, description = "Every plan kept, newest first", body = PlanList),
        (status = 503, description = "The distributor is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let plans = distributor(&state)?
        .send(ListPlans)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(PlanList { plans }))
}

#[utoipa::path(
    get,
    path = "/api/plans/{id}",
    tag = "workloads",
    params(("id" = String, Path, description = "The plan's (workload's) id")),
    responses(
        (status = 200, description = "The plan: its assignments, their executions and progress", body = PlanView),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 503, description = "The distributor is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    distributor(&state)?
        .send(GetPlan(id.clone()))
        .await
        .map_err(unavailable)?
        .map(|p| HttpResponse::Ok().json(p))
        .ok_or_else(|| ApiError::NotFound(format!("plan {id}")))
}

/// Reads a workload document (`POST /api/workloads`'s body) and validates each scenario's
/// execution; every problem names its field (`scenarios[i].…`).
pub(crate) async fn read_workload(
    doc: &Value,
    settings: std::sync::Arc<crate::settings::Settings>,
) -> Result<SubmitWorkload, ApiError> {
    let form = read_form(doc).map_err(ApiError::Invalid)?;
    let mut errors = FieldErrors::default();
    let mut prepared = Vec::new();
    for (i, scenario) in form.scenarios.into_iter().enumerate() {
        match validate_plan(scenario_request(&scenario), settings.clone()).await {
            Ok((request, plan)) => prepared.push(PreparedScenario {
                scenario,
                request,
                plan,
            }),
            Err(ApiError::Invalid(fields)) => errors.0.extend(rename(fields, i).0),
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(SubmitWorkload {
        workload: Workload {
            workload_id: form.workload_id,
            name: form.name,
            execution_mode: form.execution_mode,
            timeout: form.timeout,
            preferred_location: form.preferred_location,
            priority: form.priority,
            scenarios: prepared,
        },
        strategy: form
            .strategy
            .unwrap_or(settings.distribution.default_strategy),
        dry_run: form.dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_spec_upper_case_names_are_read() {
        let doc = json!({
            "name": "suite",
            "execution_mode": "COORDINATED",
            "strategy": "LOCALITY_AWARE",
            "scenarios": [{
                "scenario_id": "api_load_test",
                "test_type": "LOAD_TEST",
                "parameters": {"targets": ["http://127.0.0.1:9/"], "duration": 1, "base_rps": 1},
                "resource_requirements": {"cpu": "8 cores", "memory": "16GB", "network": "5000mbps"}
            }]
        });
        let form = read_form(&doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(form.execution_mode, ExecutionMode::Coordinated);
        assert_eq!(form.strategy, Some(Strategy::LocalityAware));
        let s = &form.scenarios[0];
        assert_eq!(s.test_type, "load_test");
        assert_eq!(s.resource_requirements["cpu"], 8.0);
        assert_eq!(s.resource_requirements["memory"], 16e9);
        assert_eq!(s.resource_requirements["network"], 5000.0);
        // Unknown names are still refused, whatever their case.
        let bad = json!({"execution_mode": "LOCKSTEP", "scenarios": doc["scenarios"]});
        let fields: Vec<String> = read_form(&bad)
            .err()
            .expect("refused")
            .0
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, ["execution_mode"]);
    }
}
