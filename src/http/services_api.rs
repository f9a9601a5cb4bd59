//! The services the orchestrator knows of (DESIGN §7), from its `Discovery` actor.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/services?type=&capability=&healthy=` | `{"services": [..], "counters": {..}}` |
//!
//! `type` is `orchestrator` or `load_generator`, `capability` one capability the service must
//! list, `healthy` `true` (only healthy ones) or `false` (all); each is optional and an empty
//! value counts as absent. Each service carries its `ServiceInstance` fields, its `source`
//! (`multicast`, `dns`, `cluster`, `local`), `first_seen_ms`, `last_seen_ms` and `age_ms`
//! (since last heard of). `counters` are the announcements accepted and dropped, by reason.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::discovery::{DiscoveryCounters, KnownService, Query, ServiceType};
use crate::http::api::ApiState;
use crate::http::error::{ApiError, ErrorBody, not_allowed};
use crate::messages::discovery::{GetDiscoveryStats, GetServices};
use crate::validate::FieldErrors;

/// Registers `/services`, relative to the `/api` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/services")
            .route(web::get().to(list))
            .default_service(not_allowed("GET")),
    );
}

/// Reads the query string into a [`Query`], naming every bad parameter.
pub fn parse_query(query_string: &str) -> Result<Query, FieldErrors> {
    let mut q = Query::default();
    let mut e = FieldErrors::default();
    for (k, v) in url::form_urlencoded::parse(query_string.as_bytes()) {
        let v = v.trim();
        match k.as_ref() {
            _ if v.is_empty() => {}
            "type" => match ServiceType::parse(v) {
                Some(t) => q.service_type = Some(t),
                None => e.push(
                    "type",
                    format!("expected orchestrator or load_generator, got {v:?}"),
                ),
            },
            "capability" => q.capability = Some(v.to_string()),
            "healthy" => match v {
                "true" => q.healthy_only = true,
                "false" => q.healthy_only = false,
                _ => e.push("healthy", format!("expected true or false, got {v:?}")),
            },
            other => e.push(
                other,
                "unknown parameter; expected type, capability or healthy",
            ),
        }
    }
    if e.0.is_empty() { Ok(q) } else { Err(e) }
}

/// `GET /api/services`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ServiceList {
    pub services: Vec<KnownService>,
    /// Announcements accepted and dropped, by reason.
    pub counters: DiscoveryCounters,
}

#[utoipa::path(
    get,
    path = "/api/services",
    tag = "cluster",
    params(
        ("type" = inline(Option<crate::http::openapi::ServiceTypeQuery>), Query, description = "`orchestrator` or `load_generator`"),
        ("capability" = Option<String>, Query, description = "A capability the service must list"),
        ("healthy" = inline(Option<crate::http::openapi::HealthyQuery>), Query, description = "`true`: only healthy ones"),
    ),
    responses(
        (status = 200, description = "The services discovery knows of", body = ServiceList),
        (status = 422, description = "A bad query parameter, named", body = ErrorBody),
        (status = 503, description = "Discovery is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.query_string()).map_err(ApiError::Invalid)?;
    let discovery = state
        .registry
        .discovery
        .get()
        .ok_or_else(|| ApiError::Unavailable("discovery is restarting; retry".into()))?;
    let gone =
        |e: actix::MailboxError| ApiError::Unavailable(format!("discovery did not answer: {e}"));
    let services = discovery.send(GetServices(query)).await.map_err(gone)?;
    let stats = discovery.send(GetDiscoveryStats).await.map_err(gone)?;
    Ok(HttpResponse::Ok().json(ServiceList {
        services,
        counters: stats.counters,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::discovery::Discovery;
    use crate::actors::registry::Registry;
    use crate::actors::store::Store;
    use crate::discovery::{ServiceInstance, Source};
    use crate::messages::discovery::RegisterService;
    use crate::settings::Settings;
    use actix::Actor;
    use actix_web::{App, test as t};
    use serde_json::Value;
    use std::sync::Arc;

    #[test]
    fn queries_parse_and_bad_values_name_their_field() {
        let q = parse_query("type=load_generator&capability=http_load&healthy=true").unwrap();
        assert_eq!(q.service_type, Some(ServiceType::LoadGenerator));
        assert_eq!(q.capability.as_deref(), Some("http_load"));
        assert!(q.healthy_only);
        assert_eq!(parse_query("").unwrap(), Query::default());
        assert_eq!(parse_query("type=&healthy=").unwrap(), Query::default());
        let e = parse_query("type=node&healthy=yes&colour=blue").unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["type", "healthy", "colour"]);
    }

    #[actix_rt::test]
    async fn lists_services_with_source_and_age() {
        let settings = Arc::new(Settings::defaults());
        let registry = Arc::new(Registry::new(
            settings.clone(),
            Store::start_in_memory().unwrap(),
        ));
        let state = web::Data::new(ApiState {
            registry: registry.clone(),
        });
        let app = t::init_service(
            App::new()
                .app_data(state)
                .service(web::scope("/api").configure(configure)),
        )
        .await;

        let resp = t::call_service(
            &app,
            t::TestRequest::get().uri("/api/services").to_request(),
        )
        .await;
        assert_eq!(resp.status(), 503);

        let me = ServiceInstance::for_orchestrator(&settings, "orch".into(), 8080);
        let d = Discovery::orchestrator(settings.clone(), me).start();
        let node = ServiceInstance::for_node(&settings, "n1", 8081);
        d.send(RegisterService(node, Source::Cluster))
            .await
            .unwrap();
        registry.discovery.set(d);

        let get = |uri: &str| t::TestRequest::get().uri(uri).to_request();
        let body: Value = t::call_and_read_body_json(&app, get("/api/services")).await;
        let services = body["services"].as_array().unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0]["service_id"], "n1");
        assert_eq!(services[0]["service_type"], "load_generator");
        assert_eq!(services[0]["source"], "cluster");
        for key in [
            "name",
            "host",
            "port",
            "capabilities",
            "age_ms",
            "last_seen_ms",
        ] {
            assert!(!services[0][key].is_null(), "{key}");
        }
        assert_eq!(body["counters"]["accepted"], 0);

        let body: Value =
            t::call_and_read_body_json(&app, get("/api/services?type=orchestrator")).await;
        assert_eq!(body["services"][0]["service_id"], "orch");
        assert_eq!(body["services"][0]["source"], "local");
        assert_eq!(body["services"].as_array().unwrap().len(), 1);

        let resp = t::call_service(&app, get("/api/services?healthy=maybe")).await;
        assert_eq!(resp.status(), 422);
        let body: Value = t::read_body_json(resp).await;
        assert_eq!(body["field"], "healthy");

        let resp = t::call_service(
            &app,
            t::TestRequest::post().uri("/api/services").to_request(),
        )
        .await;
        assert_eq!(resp.status(), 405);
    }
}
