//! The orchestrator's health routes (mounted inside `/api`), answered by the `HealthMonitor`.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/nodes/{id}/health` | a node's status, score, active alerts and latest report; 404 for an unknown node |
//! | GET | `/api/alerts` | `{"alerts": [...]}`: active first (newest raised first), then recently cleared (newest first); `?active=true` for the active ones only |
//!
//! `GET /api/health` is api.rs's; it merges [`cluster_health`] into its body.

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::actors::health_monitor::HealthMonitor;
use crate::health::{Alert, ClusterHealth, NodeHealthDetail};
use crate::http::api::ApiState;
use crate::http::error::{ApiError, ErrorBody, not_allowed};
use crate::messages::health::{GetAlerts, GetClusterHealth, GetNodeHealth};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/nodes/{id}/health")
            .route(web::get().to(node_health))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/alerts")
            .route(web::get().to(alerts))
            .default_service(not_allowed("GET")),
    );
}

fn monitor(state: &ApiState) -> Result<Addr<HealthMonitor>, ApiError> {
    state
        .registry
        .health
        .get()
        .ok_or_else(|| ApiError::Unavailable("the health monitor is not running; retry".into()))
}

fn unavailable<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::Unavailable(format!("the health monitor did not answer: {e}"))
}

/// The cluster's health, for `GET /api/health`.
pub async fn cluster_health(state: &ApiState) -> Result<ClusterHealth, ApiError> {
    monitor(state)?
        .send(GetClusterHealth)
        .await
        .map_err(unavailable)
}

#[utoipa::path(
    get,
    path = "/api/nodes/{id}/health",
    tag = "cluster",
    params(("id" = String, Path, description = "The node's id")),
    responses(
        (status = 200, description = "The node's latest report, its history and alerts", body = NodeHealthDetail),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 503, description = "The health monitor is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn node_health(
    id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let detail = monitor(&state)?
        .send(GetNodeHealth(id.clone()))
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("node {id:?}")))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// The alerts: active ones, then (unless `active`) the recently cleared ones.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AlertList {
    pub alerts: Vec<Alert>,
}

#[utoipa::path(
    get,
    path = "/api/alerts",
    tag = "cluster",
    params(("active" = inline(Option<crate::http::openapi::ActiveQuery>), Query, description = "Only active alerts (`true`/`1`, `false`/`0`)")),
    responses(
        (status = 200, description = "Active alerts (newest raised first), then cleared ones", body = AlertList),
        (status = 400, description = "A bad `active`", body = ErrorBody),
        (status = 503, description = "The health monitor is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn alerts(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let active_only = active_param(req.query_string())?;
    let alerts = monitor(&state)?
        .send(GetAlerts { active_only })
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(AlertList { alerts }))
}

/// `active` of a query string: `true`/`1` or `false`/`0`, false when absent.
pub(crate) fn active_param(query: &str) -> Result<bool, ApiError> {
    let mut active = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "active" {
            active = match v.as_ref() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "query parameter active: expected true or false, got {other:?}"
                    )));
                }
            };
        }
    }
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::store::Store;
    use crate::health::{Alert, HealthReport, Sample, Status};
    use crate::messages::health::{NodeHealthUpdate, NodeReachability};
    use actix::Actor;
    use actix_web::App;
    use actix_web::test as web_test;
    use serde_json::Value;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn report(node: &str, alerts: Vec<Alert>) -> HealthReport {
        HealthReport {
            node_id: node.into(),
            at_ms: 10,
            sample: Sample::default(),
            checks: vec![],
            status: if alerts.is_empty() {
                Status::Healthy
            } else {
                Status::Critical
            },
            score: 100.0,
            alerts,
            capacity: BTreeMap::new(),
        }
    }

    #[test]
    fn the_active_parameter() {
        assert!(!active_param("").unwrap());
        assert!(active_param("active=true").unwrap());
        assert!(active_param("x=1&active=1").unwrap());
        assert!(!active_param("active=false").unwrap());
        assert!(active_param("active=yes").is_err());
    }

    #[actix_rt::test]
    async fn routes_answer_from_the_monitor() {
        let settings = Arc::new(crate::settings::Settings::defaults());
        let registry = Arc::new(crate::actors::registry::Registry::new(
            settings,
            Store::start_in_memory().unwrap(),
        ));
        let app = web_test::init_service(
            App::new()
                .app_data(web::Data::new(ApiState {
                    registry: registry.clone(),
                }))
                .configure(crate::http::api::routes(None)),
        )
        .await;
        let get = |uri: &str| web_test::TestRequest::get().uri(uri).to_request();

        // Not running yet: 503, in the API's error shape.
        let resp = web_test::call_service(&app, get("/api/alerts")).await;
        assert_eq!(resp.status(), 503);
        let body: Value = web_test::read_body_json(resp).await;
        assert_eq!(body["error"], "unavailable");
        let state = ApiState {
            registry: registry.clone(),
        };
        assert!(cluster_health(&state).await.is_err());

        let mon = HealthMonitor::new(None).start();
        registry.health.set(mon.clone());
        let down = Alert {
            alert_id: "a:http:api:1".into(),
            node_id: "a".into(),
            check_id: "http:api".into(),
            name: "api".into(),
            severity: Status::Critical,
            message: "GET http://x/: status 500".into(),
            raised_at_ms: 10,
            consecutive_failures: 3,
            cleared_at_ms: None,
        };
        mon.send(NodeHealthUpdate(report("a", vec![down])))
            .await
            .unwrap();
        mon.send(NodeHealthUpdate(report("b", vec![])))
            .await
            .unwrap();
        mon.send(NodeReachability {
            node_id: "b".into(),
            reachable: false,
        })
        .await
        .unwrap();
        mon.send(NodeReachability {
            node_id: "b".into(),
            reachable: true,
        })
        .await
        .unwrap();

        let resp = web_test::call_service(&app, get("/api/alerts")).await;
        assert_eq!(resp.status(), 200);
        let body: Value = web_test::read_body_json(resp).await;
        let alerts = body["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 2, "{body}");
        assert_eq!(alerts[0]["alert_id"], "a:http:api:1");
        assert_eq!(alerts[0]["severity"], "critical");
        assert_eq!(alerts[1]["check_id"], "reachability");
        assert!(alerts[1]["cleared_at_ms"].is_u64());

        let body: Value = web_test::read_body_json(
            web_test::call_service(&app, get("/api/alerts?active=true")).await,
        )
        .await;
        assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
        let resp = web_test::call_service(&app, get("/api/alerts?active=maybe")).await;
        assert_eq!(resp.status(), 400);

        let resp = web_test::call_service(&app, get("/api/nodes/a/health")).await;
        assert_eq!(resp.status(), 200);
        let body: Value = web_test::read_body_json(resp).await;
        assert_eq!(body["node_id"], "a");
        assert_eq!(body["status"], "critical");
        assert_eq!(body["reachable"], true);
        assert_eq!(body["alerts"][0]["alert_id"], "a:http:api:1");
        assert_eq!(body["report"]["at_ms"], 10);

        let resp = web_test::call_service(&app, get("/api/nodes/nope/health")).await;
        assert_eq!(resp.status(), 404);
        let body: Value = web_test::read_body_json(resp).await;
        assert_eq!(body["error"], "not_found");

        let resp = web_test::call_service(
            &app,
            web_test::TestRequest::post()
                .uri("/api/nodes/a/health")
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 405);

        let c = cluster_health(&state).await.unwrap();
        assert_eq!((c.healthy, c.warning, c.failed), (1, 0, 1));
    }
}
