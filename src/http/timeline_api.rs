//! The timeline of an execution so far, for a page opened mid-run: it charts the seconds
//! merged before it opened, then appends the live `stats` events of `/api/events` (the same
//! objects, merged by `(task_id, second)`).
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/executions/{id}/timeline` | `{execution_id, state, seconds: [stats event]}`; 404 for an unknown id |

use actix_web::{HttpResponse, web};

use crate::execution::Timeline;
use crate::http::api::ApiState;
use crate::http::error::{ApiError, ErrorBody, not_allowed};
use crate::messages::cluster::GetTimeline;
use crate::messages::store as db;

/// Registers the route (inside the `/api` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/executions/{id}/timeline")
            .route(web::get().to(timeline))
            .default_service(not_allowed("GET")),
    );
}

fn unavailable<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::Unavailable(format!("the orchestrator did not answer: {e}"))
}

/// Every second merged so far of every task of an execution, running or ended.
#[utoipa::path(
    get,
    path = "/api/executions/{id}/timeline",
    tag = "executions",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "Each task's merged seconds so far, as the live stats events carry them", body = Timeline),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 503, description = "The orchestrator or the store did not answer", body = ErrorBody),
    )
)]
pub(crate) async fn timeline(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let orchestrator = state
        .registry
        .orchestrator()
        .ok_or_else(|| ApiError::Unavailable("the orchestrator is restarting; retry".into()))?;
    if let Some(t) = orchestrator
        .send(GetTimeline(id.clone()))
        .await
        .map_err(unavailable)?
    {
        return Ok(HttpResponse::Ok().json(t));
    }
    // Ended under an earlier run of the orchestrator: its stored report's timelines.
    let record = match state
        .registry
        .store
        .send(db::GetExecution(id.clone()))
        .await
    {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return Err(ApiError::NotFound(format!("execution {id}"))),
        Ok(Err(e)) => return Err(unavailable(e)),
        Err(e) => return Err(unavailable(e)),
    };
    let report: Option<crate::task::report::Report> = record
        .report_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    let t = match report {
        Some(r) => Timeline::of_report(&id, &record.state, &r),
        None => Timeline {
            execution_id: id,
            state: record.state,
            seconds: Vec::new(),
        },
    };
    Ok(HttpResponse::Ok().json(t))
}
