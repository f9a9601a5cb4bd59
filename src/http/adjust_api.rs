//! `PATCH /api/executions/{id}`: a live change to a running execution: scale the rest of its
//! rate plan, set new rates, set a closed model's users, pause or resume. Every node applies
//! it from a common instant a little ahead (`crate::engine::schedule::adjust`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::engine::schedule::adjust::Change;
use crate::execution::{AdjustError, AdjustRequest, ExecutionView};
use crate::http::api::ApiState;
use crate::http::error::{ApiError, ErrorBody, json_body};
use crate::messages::cluster::Adjust;
use crate::validate::FieldErrors;

/// One live change: exactly one of `rate_factor`, `base_rps` (with `peak_rps` if wanted),
/// `concurrent_users` or `paused`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    /// The task's index (from 0); absent: every task that takes the change.
    pub task: Option<u32>,
    /// Scales the rest of the rate plan (open model), e.g. 2 doubles it; over 0, at most 100.
    pub rate_factor: Option<f64>,
    /// A new base rate (open model): a constant plan runs at it from now on.
    pub base_rps: Option<f64>,
    /// A new peak rate, with `base_rps`, for patterns that have one.
    pub peak_rps: Option<f64>,
    /// The closed model's users over the cluster.
    pub concurrent_users: Option<u32>,
    /// `true` pauses (nothing is sent; the rest of the plan waits), `false` resumes.
    pub paused: Option<bool>,
    /// Refuse the change if a changed task would then ask for more than this rate (the
    /// caller's own guard: the MCP server sends its `mcp.max_rps`).
    pub max_rps: Option<f64>,
}

/// The header a client names itself by (`ui`, `mcp`, `cli`), recorded with a change.
pub const CLIENT_HEADER: &str = "X-Mcpt-Client";

/// Who made a change: the client's name when it gave a plain one, else `rest`, and its address.
fn made_by(req: &HttpRequest) -> String {
    let client = req
        .headers()
        .get(CLIENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 32
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or("rest");
    match req.peer_addr() {
        Some(peer) => format!("{client} {}", peer.ip()),
        None => client.to_string(),
    }
}

impl AdjustBody {
    /// The change it asks for, or every problem with it.
    pub fn change(&self) -> Result<Change, FieldErrors> {
        let mut errors = FieldErrors::default();
        let given = [
            self.rate_factor.is_some(),
            self.base_rps.is_some() || self.peak_rps.is_some(),
            self.concurrent_users.is_some(),
            self.paused.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            errors.push(
                "",
                "give exactly one of rate_factor, base_rps (with peak_rps), concurrent_users, paused",
            );
            return Err(errors);
        }
        let rate = |field: &str, v: f64, errors: &mut FieldErrors| {
            if !v.is_finite() || v < 0.0 {
                errors.push(field, "must be a number of requests per second, 0 or more");
            }
        };
        let change = if let Some(f) = self.rate_factor {
            if !(f.is_finite() && f > 0.0 && f <= 100.0) {
                errors.push("rate_factor", "must be over 0 and at most 100");
            }
            Change::RateFactor(f)
        } else if self.base_rps.is_some() || self.peak_rps.is_some() {
            let Some(base) = self.base_rps else {
                errors.push("base_rps", "peak_rps goes with a base_rps");
                return Err(errors);
            };
            rate("base_rps", base, &mut errors);
            if let Some(peak) = self.peak_rps {
                rate("peak_rps", peak, &mut errors);
                if peak < base {
                    errors.push("peak_rps", "must be at least base_rps");
                }
            }
            Change::Rates {
                base_rps: base,
                peak_rps: self.peak_rps,
            }
        } else if let Some(users) = self.concurrent_users {
            if users == 0 {
                errors.push("concurrent_users", "must be at least 1");
            }
            Change::ConcurrentUsers(users)
        } else {
            Change::Paused(self.paused.unwrap_or(false))
        };
        if errors.0.is_empty() {
            Ok(change)
        } else {
            Err(errors)
        }
    }
}

/// What a refused change becomes on the API.
pub fn adjust_error(id: &str, e: AdjustError) -> ApiError {
    match e {
        AdjustError::NotFound => ApiError::NotFound(format!("execution {id}")),
        AdjustError::NotRunning(state) => ApiError::Conflict(format!(
            "execution {id} is {}: only a running execution can be changed",
            state.as_str()
        )),
        AdjustError::Refused { field, message } => {
            let mut errors = FieldErrors::default();
            errors.push(field, message);
            ApiError::Invalid(errors)
        }
    }
}

/// Changes a running execution from a common instant a little ahead (about half a second):
/// its remaining rate plan, a closed model's users, or a pause. Answers its view, whose
/// `adjustments` list every change so far.
#[utoipa::path(
    patch,
    path = "/api/executions/{id}",
    tag = "executions",
    params(("id" = String, Path, description = "The execution's id")),
    request_body = AdjustBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed; the execution's view", body = ExecutionView),
        (status = 400, description = "Not JSON, or an unknown key", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "A value out of range, or no task takes it: the field named", body = ErrorBody),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn adjust(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let limit = state.registry.settings.api.max_body_size;
    let doc = json_body(&req, payload, limit).await?;
    let body: AdjustBody =
        serde_json::from_value(doc).map_err(|e| ApiError::BadJson(e.to_string()))?;
    let change = body.change().map_err(ApiError::Invalid)?;
    if let Some(max) = body.max_rps
        && !(max.is_finite() && max > 0.0)
    {
        let mut errors = FieldErrors::default();
        errors.push("max_rps", "must be a number over 0");
        return Err(ApiError::Invalid(errors));
    }
    let request = AdjustRequest {
        task: body.task,
        change,
        by: made_by(&req),
        max_rps: body.max_rps,
    };
    let view = state
        .orchestrator()?
        .send(Adjust {
            id: id.clone(),
            request,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| adjust_error(&id, e))?;
    Ok(HttpResponse::Ok().json(view))
}
