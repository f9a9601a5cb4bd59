//! `/mcp` on the orchestrator: MCP's streamable HTTP transport (rmcp-actix-web), behind the
//! API token. With `api.token` set, every request (any method) needs
//! `Authorization: Bearer <token>`, else a 401 JSON [`ApiError::Unauthorized`]. The server's
//! backend calls the orchestrator's own REST API on its bound address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use actix_web::middleware::{Next, from_fn};
use actix_web::{ResponseError, web};
use rmcp_actix_web::transport::{LocalSessionManager, StreamableHttpService};

use super::backend::Backend;
use super::{McpContext, McpServer};
use crate::http::error::{ApiError, bearer_matches};
use crate::settings::Settings;

/// The transport, built once per server and cloned into each worker (one session manager).
pub type McpService = StreamableHttpService<McpServer, LocalSessionManager>;

/// The REST base URL of an orchestrator bound to `addr`: an unspecified address is reached
/// on loopback.
pub fn self_url(addr: SocketAddr) -> String {
    let mut a = addr;
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => a.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => a.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    format!("http://{a}")
}

/// The MCP service of an orchestrator bound to `addr`.
pub fn service(settings: Arc<Settings>, addr: SocketAddr) -> McpService {
    let backend = Backend::new(&self_url(addr), settings.api.token.clone());
    let ctx = McpContext::new(backend, settings);
    // rmcp accepts loopback `Host`s only by default (against DNS rebinding); an orchestrator
    // listening beyond loopback is reached under names we cannot list, and its REST API
    // takes any `Host` too.
    let loopback = addr.ip().is_loopback();
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(McpServer::new(ctx.clone()))))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .maybe_allowed_hosts((!loopback).then(Vec::new))
        .build()
}

/// The token `/mcp` requires (`api.token`), as app data of its scope.
#[derive(Clone)]
struct McpToken(Option<String>);

/// Mounts `/mcp`.
pub fn configure(
    service: McpService,
    token: Option<String>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::scope("/mcp")
                .app_data(web::Data::new(McpToken(token)))
                .wrap(from_fn(require_bearer))
                .service(service.scope()),
        );
    }
}

/// Every method needs the token when one is set (MCP's GET opens a stream of the session).
async fn require_bearer(
    req: actix_web::dev::ServiceRequest,
    next: Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<McpToken>>()
        .and_then(|t| t.0.clone());
    if let Some(token) = token
        && !bearer_matches(&req, &token)
    {
        let resp = ApiError::Unauthorized.error_response();
        return Ok(req.into_response(resp));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::App;
    use actix_web::http::StatusCode;
    use actix_web::test::{TestRequest, call_service, init_service, read_body_json};

    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

    fn init(auth: Option<&str>) -> TestRequest {
        let mut r = TestRequest::post()
            .uri("/mcp")
            .insert_header(("host", "127.0.0.1"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", "application/json, text/event-stream"))
            .set_payload(INIT);
        if let Some(a) = auth {
            r = r.insert_header(("authorization", a));
        }
        r
    }

    #[actix_web::test]
    async fn mcp_needs_the_api_token_when_one_is_set() {
        let settings = Arc::new(Settings::defaults());
        let svc = service(settings, "127.0.0.1:9".parse().unwrap());
        let app = init_service(App::new().configure(configure(svc, Some("s3cret".into())))).await;
        for (auth, want) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some("Bearer wrong"), StatusCode::UNAUTHORIZED),
            (Some("Bearer s3cret"), StatusCode::OK),
        ] {
            let resp = call_service(&app, init(auth).to_request()).await;
            assert_eq!(resp.status(), want, "{auth:?}");
            if want == StatusCode::UNAUTHORIZED {
                let body: serde_json::Value = read_body_json(resp).await;
                assert_eq!(body["error"], "unauthorized");
            }
        }
        let get = TestRequest::get().uri("/mcp").to_request();
        assert_eq!(
            call_service(&app, get).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[actix_web::test]
    async fn without_a_token_mcp_is_open() {
        let settings = Arc::new(Settings::defaults());
        let svc = service(settings, "127.0.0.1:9".parse().unwrap());
        let app = init_service(App::new().configure(configure(svc, None))).await;
        let resp = call_service(&app, init(None).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().contains_key("mcp-session-id"));
    }

    #[test]
    fn the_backend_reaches_an_unspecified_bind_on_loopback() {
        assert_eq!(
            self_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(self_url("[::]:81".parse().unwrap()), "http://[::1]:81");
        assert_eq!(
            self_url("10.1.2.3:82".parse().unwrap()),
            "http://10.1.2.3:82"
        );
    }
}
