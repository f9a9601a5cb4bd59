//! The resource pool's REST routes (mounted under `/api`); handlers talk to the
//! `ResourceAllocator`, the rules are in [`crate::resources`].
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/resources` | the pool: `{nodes, aggregate_utilization: {cpu: {total, allocated, available_capacity, utilization_percent}, ...}, allocations, queued}` |
//! | POST | `/api/allocations` | ask: `{allocation_id?, requester_id, resources: [{resource or type, amount, unit?, node_id?}], priority?, queue?, confirm?}` → 201 `{allocation_id, status: "granted", portions, confirmed}`, 202 `{allocation_id, status: "queued", position}`, 409 when refused |
//! | GET | `/api/allocations/{id}` | one allocation: `{status: "granted", ...}` or `{status: "queued", position, ...}` |
//! | POST | `/api/allocations/{id}/confirm` | → `{allocation_id, status: "confirmed", granted}`; a confirmed grant never expires |
//! | DELETE | `/api/allocations/{id}` | release, or cancel a waiting request → `{allocation_id, status: "deallocated", was}` |
//!
//! An allocation is granted whole or not at all. Amounts are in the resource's base unit
//! (`cpu` cores, `memory`/`disk` bytes, `network` mbps, `connections` requests; custom names
//! as their capacity was given) unless `unit` says otherwise (`GiB`, `millicores`, `gbps`,
//! ...). `allocation_id` is a new UUID when absent. A grant not confirmed (here or with
//! `confirm: true`) within `resource_management.allocation_timeout` is released.
//!
//! **Priority rule: queueing, no preemption.** A granted allocation is never taken back for a
//! higher priority. A request is granted at once only if it fits and no waiting request has a
//! priority greater than or equal to its own (`priority`, default 0, higher first). Otherwise,
//! with `queue: true` it waits (202), ordered by priority then arrival, and is granted when
//! capacity frees and everything ahead of it was granted; it is dropped after waiting
//! `allocation_timeout`. Without `queue` it is refused (409). A request larger than the whole
//! pool is refused even with `queue`.
//!
//! Refusals are 409 with the usual error body plus details: `insufficient_resources` and
//! `exceeds_capacity` carry `shortages: [{resource, node_id?, requested, available, total}]`,
//! `queued_ahead` carries `ahead`, `queue_full` carries `limit`, `duplicate_allocation` names
//! `allocation_id`. Invalid fields are 422 naming each (`resources[1].amount`); an unknown id
//! is 404.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::actors::resource_allocator::ResourceAllocator;
use crate::http::api::ApiState;
use crate::http::error::{ApiError, ErrorBody, json_body, not_allowed};
use crate::messages::resources::{Allocate, Confirm, Deallocate, GetAllocation, GetPoolStatus};
use crate::resources::{
    AllocError, AllocationRequest, AllocationState, Confirmed, Outcome, PoolStatus, Portion,
    Released, ResourceSpec, Shortage,
};
use crate::validate::{FieldErrors, Obj, describe};

/// Registers the routes, relative to `/api`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/resources")
            .route(web::get().to(pool))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/allocations")
            .route(web::post().to(allocate))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/allocations/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(deallocate))
            .default_service(not_allowed("GET, DELETE")),
    )
    .service(
        web::resource("/allocations/{id}/confirm")
            .route(web::post().to(confirm))
            .default_service(not_allowed("POST")),
    );
}

fn allocator(state: &ApiState) -> Result<Addr<ResourceAllocator>, ApiError> {
    state
        .registry
        .allocator
        .get()
        .ok_or_else(|| ApiError::Unavailable("the resource allocator is restarting; retry".into()))
}

fn unavailable<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::Unavailable(format!("the resource allocator did not answer: {e}"))
}

#[utoipa::path(
    get,
    path = "/api/resources",
    tag = "resources",
    responses(
        (status = 200, description = "The pool: nodes, per-resource aggregates, grants and the queue", body = PoolStatus),
        (status = 503, description = "The resource allocator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn pool(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let status = allocator(&state)?
        .send(GetPoolStatus)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(status))
}

/// The answer of an allocation: granted (201) or queued (202).
#[derive(Debug, Serialize, ToSchema)]
pub struct Allocated {
    pub allocation_id: String,
    /// `granted` or `queued`.
    pub status: String,
    /// Granted: what each node gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portions: Option<Vec<Portion>>,
    /// Granted: whether it is confirmed already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Queued: requests ahead of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// A refused allocation (409): an `ApiError` with what was short, or what is ahead.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationRefusal {
    #[serde(flatten)]
    pub body: ErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortages: Option<Vec<Shortage>>,
    /// `queued_ahead`: requests waiting before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<usize>,
    /// `queue_full`: the queue's bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Reserves resources in the pool: granted at once, queued, or refused.
#[utoipa::path(
    post,
    path = "/api/allocations",
    tag = "resources",
    request_body = crate::http::openapi::AllocationRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Granted", body = Allocated),
        (status = 202, description = "Queued", body = Allocated),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 409, description = "Refused: short, never fits, blocked, queue full, or a duplicate id", body = AllocationRefusal),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid: the field named", body = ErrorBody),
        (status = 503, description = "The resource allocator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn allocate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let doc = json_body(&req, payload, state.registry.settings.api.max_body_size).await?;
    let request = parse_request(&doc).map_err(ApiError::Invalid)?;
    let id = request.allocation_id.clone();
    let outcome = allocator(&state)?
        .send(Allocate {
            request,
            notify: None,
        })
        .await
        .map_err(unavailable)?;
    match outcome {
        Ok(Outcome::Granted(g)) => Ok(HttpResponse::Created().json(Allocated {
            allocation_id: g.allocation_id,
            status: "granted".into(),
            portions: Some(g.portions),
            confirmed: Some(g.confirmed),
            position: None,
        })),
        Ok(Outcome::Queued { position }) => Ok(HttpResponse::Accepted().json(Allocated {
            allocation_id: id,
            status: "queued".into(),
            portions: None,
            confirmed: None,
            position: Some(position),
        })),
        Err(AllocError::Invalid(fields)) => Err(ApiError::Invalid(fields)),
        Err(e) => Ok(refusal(&e)),
    }
}

/// The 409 of a refused request: the usual error body plus what the client needs to retry.
pub fn refusal(e: &AllocError) -> HttpResponse {
    let (mut shortages, mut ahead, mut limit) = (None, None, None);
    let (code, field) = match e {
        AllocError::Insufficient { shortages: s } => {
            shortages = Some(s.clone());
            ("insufficient_resources", "resources")
        }
        AllocError::NeverFits { shortages: s } => {
            shortages = Some(s.clone());
            ("exceeds_capacity", "resources")
        }
        AllocError::Blocked { ahead: a } => {
            ahead = Some(*a);
            ("queued_ahead", "priority")
        }
        AllocError::QueueFull { limit: l } => {
            limit = Some(*l);
            ("queue_full", "queue")
        }
        AllocError::Duplicate(_) => ("duplicate_allocation", "allocation_id"),
        AllocError::Invalid(f) => return ApiError::Invalid(f.clone()).error_response(),
    };
    let body = ErrorBody {
        error: code.into(),
        message: e.to_string(),
        field: Some(field.into()),
        errors: None,
    };
    HttpResponse::build(StatusCode::CONFLICT).json(AllocationRefusal {
        body,
        shortages,
        ahead,
        limit,
    })
}

/// Reads the body of `POST /api/allocations`, reporting every malformed field at once. The
/// ledger checks the values (amounts, names, units) and names their fields the same way.
pub fn parse_request(doc: &Value) -> Result<AllocationRequest, FieldErrors> {
    let mut e = FieldErrors::default();
    let Some(mut top) = Obj::new(doc, "", &mut e) else {
        return Err(e);
    };
    let allocation_id: Option<String> = top.opt("allocation_id", &mut e);
    let requester_id: Option<String> = top.req("requester_id", &mut e);
    let resources = match top.raw("resources") {
        None => {
            e.push("resources", "is required");
            Vec::new()
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| parse_spec(item, &format!("resources[{i}]"), &mut e))
            .collect(),
        Some(other) => {
            e.push(
                "resources",
                format!("expected a list, got {}", describe(other)),
            );
            Vec::new()
        }
    };
    let priority = match top.raw("priority") {
        None => 0,
        Some(v) => match v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|p| i32::try_from(p).ok())
        {
            Some(p) => p,
            None => {
                e.push(
                    "priority",
                    format!(
                        "expected a whole number from {} to {}, got {}",
                        i32::MIN,
                        i32::MAX,
                        describe(v)
                    ),
                );
                0
            }
        },
    };
    let queue = top.or("queue", false, &mut e);
    let confirm = top.or("confirm", false, &mut e);
    top.finish(&mut e);
    let request = AllocationRequest {
        allocation_id: allocation_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        requester_id: requester_id.unwrap_or_default(),
        resources,
        priority,
        queue,
        confirm,
    };
    e.into_result(request)
}

/// One entry of `resources`: `resource` (or `type`, any case), `amount`, `unit?`, `node_id?`.
fn parse_spec(v: &Value, path: &str, e: &mut FieldErrors) -> Option<ResourceSpec> {
    let mut o = Obj::new(v, path, e)?;
    let before = e.0.len();
    let resource: Option<String> = o.opt("resource", e);
    let kind: Option<String> = o.opt("type", e);
    let resource = match (resource, kind) {
        (Some(r), None) | (None, Some(r)) => Some(r),
        (Some(_), Some(_)) => {
            e.push(o.key_path("type"), "give either resource or type, not both");
            None
        }
        (None, None) if e.0.len() == before => {
            e.push(
                o.key_path("resource"),
                "is required (e.g. \"cpu\", \"memory\", \"gpu\")",
            );
            None
        }
        (None, None) => None,
    };
    let unit: Option<String> = o.opt("unit", e);
    let amount_path = o.key_path("amount");
    // A number in `unit` (default: the base unit), or a string with its own unit ("128GB").
    let amount = match o.raw("amount") {
        None => {
            e.push(&amount_path, "is required");
            None
        }
        Some(v) => {
            let own_unit = matches!(v, Value::String(s)
                if crate::resources::split_amount(s).is_some_and(|(_, u)| !u.is_empty()));
            if own_unit && unit.is_some() {
                e.push(
                    &amount_path,
                    "carries a unit and so does unit: give the unit once",
                );
                None
            } else {
                let name = crate::resources::normalize(resource.as_deref().unwrap_or(""));
                crate::resources::read_amount(&name, v, &amount_path, e)
            }
        }
    };
    let node_id: Option<String> = o.opt("node_id", e);
    o.finish(e);
    Some(ResourceSpec {
        resource: resource?,
        amount: amount?,
        unit,
        node_id,
    })
}

#[utoipa::path(
    get,
    path = "/api/allocations/{id}",
    tag = "resources",
    params(("id" = String, Path, description = "The allocation's id")),
    responses(
        (status = 200, description = "The allocation, granted or queued", body = AllocationState),
        (status = 404, description = "No such allocation", body = ErrorBody),
        (status = 503, description = "The resource allocator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match allocator(&state)?
        .send(GetAllocation(id.clone()))
        .await
        .map_err(unavailable)?
    {
        Some(view) => Ok(HttpResponse::Ok().json(view)),
        None => Err(ApiError::NotFound(format!("allocation {id}"))),
    }
}

/// The answer of a confirm.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmedAnswer {
    pub allocation_id: String,
    /// `confirmed`.
    pub status: String,
    /// Whether it was granted (a queued one is confirmed for when it is).
    pub granted: bool,
}

/// Confirms an allocation, so it is not released at `allocation_timeout`.
#[utoipa::path(
    post,
    path = "/api/allocations/{id}/confirm",
    tag = "resources",
    params(("id" = String, Path, description = "The allocation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed", body = ConfirmedAnswer),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such allocation", body = ErrorBody),
        (status = 503, description = "The resource allocator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn confirm(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let confirmed = allocator(&state)?
        .send(Confirm(id.clone()))
        .await
        .map_err(unavailable)?
        .map_err(|_| ApiError::NotFound(format!("allocation {id}")))?;
    Ok(HttpResponse::Ok().json(ConfirmedAnswer {
        allocation_id: id,
        status: "confirmed".into(),
        granted: confirmed == Confirmed::Granted,
    }))
}

/// The answer of a release.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deallocated {
    pub allocation_id: String,
    /// `deallocated`.
    pub status: String,
    /// What it was: `granted` or `queued`.
    pub was: String,
}

/// Releases an allocation (or takes it out of the queue).
#[utoipa::path(
    delete,
    path = "/api/allocations/{id}",
    tag = "resources",
    params(("id" = String, Path, description = "The allocation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Released", body = Deallocated),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such allocation", body = ErrorBody),
        (status = 503, description = "The resource allocator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn deallocate(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let released = allocator(&state)?
        .send(Deallocate(id.clone()))
        .await
        .map_err(unavailable)?
        .map_err(|_| ApiError::NotFound(format!("allocation {id}")))?;
    let was = match released {
        Released::Grant(_) => "granted",
        Released::Queued { .. } => "queued",
    };
    Ok(HttpResponse::Ok().json(Deallocated {
        allocation_id: id,
        status: "deallocated".into(),
        was: was.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(doc: Value) -> Vec<String> {
        parse_request(&doc)
            .unwrap_err()
            .0
            .into_iter()
            .map(|f| f.field)
            .collect()
    }

    #[test]
    fn a_body_reads_into_a_request() {
        let doc = json!({
            "requester_id": "suite",
            "resources": [
                {"type": "CPU", "amount": 4, "unit": "cores"},
                {"resource": "memory", "amount": "1024", "node_id": "n1"}
            ],
            "priority": -3,
            "queue": true,
        });
        let r = parse_request(&doc).unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(&r.allocation_id)
                .unwrap()
                .get_version_num(),
            4
        );
        assert_eq!((r.priority, r.queue, r.confirm), (-3, true, false));
        assert_eq!(r.resources[0].resource, "CPU");
        assert_eq!(r.resources[1].amount, 1024.0);
        assert_eq!(r.resources[1].node_id.as_deref(), Some("n1"));
    }

    #[test]
    fn amounts_carry_the_units_the_spec_writes() {
        let doc = json!({
            "requester_id": "test_suite",
            "resources": [
                {"type": "CPU", "amount": "64 cores"},
                {"type": "MEMORY", "amount": "128GB"},
                {"type": "NETWORK", "amount": "10000mbps"},
                {"type": "memory", "amount": "1.5 GiB"},
                {"type": "cpu", "amount": "500m"},
            ],
        });
        let r = parse_request(&doc).unwrap_or_else(|e| panic!("{e}"));
        let (normal, _) = crate::resources::validate(&r).unwrap_or_else(|e| panic!("{e}"));
        let amounts: Vec<f64> = normal.resources.iter().map(|s| s.amount).collect();
        assert_eq!(
            amounts,
            [64.0, 128e9, 10000.0, 1.5 * 1024.0 * 1024.0 * 1024.0, 0.5]
        );
        assert_eq!(
            fields(json!({"requester_id": "s", "resources": [
                {"resource": "cpu", "amount": "64 cores", "unit": "cores"},
                {"resource": "cpu", "amount": "64 GB"},
                {"resource": "network", "amount": "fast"},
            ]})),
            [
                "resources[0].amount",
                "resources[1].amount",
                "resources[2].amount"
            ]
        );
    }

    #[test]
    fn every_malformed_field_is_named() {
        assert_eq!(fields(json!([])), [""]);
        assert_eq!(fields(json!({})), ["requester_id", "resources"]);
        let doc = json!({
            "requester_id": "s",
            "resources": [
                {"amount": 1},
                {"resource": "cpu", "type": "cpu", "amount": 1},
                {"resource": "cpu", "amount": "lots", "color": "red"},
                7
            ],
            "priority": 1.5,
            "queue": "sometimes",
            "extra": 1
        });
        assert_eq!(
            fields(doc),
            [
                "resources[0].resource",
                "resources[1].type",
                "resources[2].amount",
                "resources[2].color",
                "resources[3]",
                "priority",
                "queue",
                "extra"
            ]
        );
        assert_eq!(
            fields(json!({"requester_id": "s", "resources": {}})),
            ["resources"]
        );
    }

    #[test]
    fn refusals_are_409_with_what_was_short() {
        let e = AllocError::Insufficient {
            shortages: vec![crate::resources::Shortage {
                resource: "cpu".into(),
                node_id: None,
                requested: 8.0,
                available: 2.0,
                total: 16.0,
            }],
        };
        let resp = refusal(&e);
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        let body = actix_web::body::MessageBody::try_into_bytes(resp.into_body()).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "insufficient_resources");
        assert_eq!(v["field"], "resources");
        assert_eq!(v["shortages"][0]["available"], 2.0);
        assert!(v["message"].as_str().unwrap().contains("requested 8"));
    }
}
