//! The report's routes: `GET /api/executions/{id}/report` (JSON), `report.html`, `report.csv`
//! and the comparison of two executions. The report comes from the orchestrator while it holds
//! the execution, else from the store.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use crate::http::api::{ApiState, unavailable};
use crate::http::error::{ApiError, ErrorBody};
use crate::messages::cluster::GetReport;
use crate::messages::store as db;
use crate::stats::compare::Comparison;
use crate::stats::csv::Table;
use crate::stats::{compare, html};
use crate::task::report::Report;

#[utoipa::path(
    get,
    path = "/api/executions/{id}/report",
    tag = "executions",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The report (schemas/report.schema.json)", body = Report),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "No report yet", body = ErrorBody),
        (status = 503, description = "The orchestrator or the store did not answer", body = ErrorBody),
    )
)]
pub(crate) async fn report(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let report = report_value(&id.into_inner(), &state).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The report of an execution, live or stored: 404 for an unknown id, 409 for one without a
/// report yet.
async fn report_value(id: &str, state: &ApiState) -> Result<Value, ApiError> {
    let live = state
        .orchestrator()?
        .send(GetReport(id.to_string()))
        .await
        .map_err(unavailable)?;
    if let Some(report) = live {
        return Ok(report);
    }
    match state
        .registry
        .store
        .send(db::GetExecution(id.to_string()))
        .await
    {
        Ok(Ok(Some(r))) => match r.report_json {
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| unavailable(format!("the stored report of {id} is unreadable: {e}"))),
            None => Err(ApiError::Conflict(format!(
                "execution {id} is {} and has no report yet",
                r.state
            ))),
        },
        Ok(Ok(None)) => Err(ApiError::NotFound(format!("execution {id}"))),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(e) => Err(unavailable(e)),
    }
}

/// The report of an execution as the typed value the HTML page and comparisons read.
async fn typed_report(id: &str, state: &ApiState) -> Result<Report, ApiError> {
    let value = report_value(id, state).await?;
    serde_json::from_value(value)
        .map_err(|e| unavailable(format!("the report of {id} does not read back: {e}")))
}

#[utoipa::path(
    get,
    path = "/api/executions/{id}/report.html",
    tag = "executions",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The report as one self-contained HTML page", content_type = "text/html", body = String),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "No report yet", body = ErrorBody),
        (status = 503, description = "The orchestrator or the store did not answer", body = ErrorBody),
    )
)]
pub(crate) async fn report_html(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let report = typed_report(&id.into_inner(), &state).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", html::CSP))
        .body(html::render(&report)))
}

#[utoipa::path(
    get,
    path = "/api/executions/{id}/report.csv",
    tag = "executions",
    params(
        ("id" = String, Path, description = "The execution's id"),
        ("table" = String, Query, description = "timeline (per task and second) or requests (per task and request name)"),
    ),
    responses(
        (status = 200, description = "The table as CSV with a header row", content_type = "text/csv", body = String),
        (status = 400, description = "table is missing or unknown (field: table)", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "No report yet", body = ErrorBody),
        (status = 503, description = "The orchestrator or the store did not answer", body = ErrorBody),
    )
)]
pub(crate) async fn report_csv(
    id: web::Path<String>,
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let asked = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "table")
        .map(|(_, v)| v.into_owned());
    let table = asked.as_deref().and_then(Table::from_name).ok_or_else(|| {
        let known: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        ApiError::BadParam {
            field: "table",
            message: match &asked {
                None => format!("table is required: one of {}", known.join(", ")),
                Some(t) => format!("unknown table {t:?}; one of {}", known.join(", ")),
            },
        }
    })?;
    let id = id.into_inner();
    let report = typed_report(&id, &state).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}.csv\"", table.name()),
        ))
        .body(table.render(&report)))
}

#[utoipa::path(
    get,
    path = "/api/executions/{a}/compare/{b}",
    tag = "executions",
    params(
        ("a" = String, Path, description = "The baseline execution"),
        ("b" = String, Path, description = "The execution compared with it"),
    ),
    responses(
        (status = 200, description = "Deltas of b against a (schemas/compare.schema.json)", body = Comparison),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "One has no report yet", body = ErrorBody),
        (status = 503, description = "The orchestrator or the store did not answer", body = ErrorBody),
    )
)]
pub(crate) async fn compare(
    ids: web::Path<(String, String)>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let (a, b) = ids.into_inner();
    let (ra, rb) = (
        typed_report(&a, &state).await?,
        typed_report(&b, &state).await?,
    );
    Ok(HttpResponse::Ok().json(compare::compare(&ra, &rb).with_ids(&a, &b)))
}
