//! `GET /metrics` on the orchestrator and on a node: the Prometheus text of the series each
//! process owns ([`crate::metrics`] says which live where). Reads atomics and formats; never
//! waits on an actor.

use actix_web::{HttpResponse, web};

use crate::http::api::ApiState;
use crate::http::error::ApiError;
use crate::http::node_api::NodeState;

/// The orchestrator's `mcp_orchestrator_*` series (and, in a standalone process, its node's).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 503, description = "The series could not be formatted", body = crate::http::error::ErrorBody),
    )
)]
pub async fn orchestrator(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    // The nodes by health, as the health monitor counts them now.
    if let Some(monitor) = state.registry.health.get()
        && let Ok(c) = monitor
            .send(crate::messages::health::GetClusterHealth)
            .await
    {
        state
            .registry
            .metrics
            .set_node_health(c.healthy, c.warning, c.failed);
    }
    exposition(state.registry.metrics.encode())
}

/// A node's `mcp_load_generator_*` and `mcp_node_*` series.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 503, description = "The series could not be formatted", body = crate::http::error::ErrorBody),
    )
)]
pub async fn node(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
    exposition(state.metrics.encode())
}

fn exposition(text: Result<String, std::fmt::Error>) -> Result<HttpResponse, ApiError> {
    // Formatting into a String fails only through a bug in a metric's encoder.
    let text = text
        .map_err(|e| ApiError::Unavailable(format!("the metrics could not be formatted: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}
