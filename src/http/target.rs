//! `mcpt target`: a small, fast HTTP server for demos, tests and benchmarks, loopback by
//! default. It counts what it receives, per path and per second, so tests and benches check
//! the load generator against the target's own count (`GET /stats`, `DELETE /stats`).
//!
//! - `/`: `Hello, World!`
//! - `/delay?ms=N`: answers after N ms (at most 60,000)
//! - `/status?code=N`: answers with status N
//! - `/echo`: answers with the request body and content type
//! - `/bytes?n=N`: N bytes (at most 100 MiB)
//! - `/redirect?to=URL`: a 302 to URL (not decoded: pass a path or a plain URL)

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::engine::http::NODE_HEADER;

/// Paths counted one by one; anything else counts as `other`.
const PATHS: [&str; 7] = [
    "/",
    "/delay",
    "/status",
    "/echo",
    "/bytes",
    "/redirect",
    "other",
];
// Each handler's slot in PATHS.
const ROOT: usize = 0;
const DELAY: usize = 1;
const STATUS: usize = 2;
const ECHO: usize = 3;
const BYTES: usize = 4;
const REDIRECT: usize = 5;
const OTHER: usize = 6;
/// Seconds of per-second counts kept (one day); later requests count in the last slot.
const SECONDS_KEPT: usize = 86_400;

/// What the target received since it started or was last reset.
pub struct TargetStats {
    epoch: Instant,
    /// Nanoseconds after `epoch` of the first request since the last reset, plus one (0: none).
    first: AtomicU64,
    per_path: [AtomicU64; PATHS.len()],
    per_second: Box<[AtomicU64]>,
    /// Requests per value of the `x-mcpt-node` header (which node of a cluster sent them).
    per_node: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct StatsView {
    pub total: u64,
    pub paths: std::collections::BTreeMap<String, u64>,
    /// Requests received in each second since the first request (trailing empty seconds cut).
    pub per_second: Vec<u64>,
    /// Requests per sending node (the `x-mcpt-node` header), when nodes sent them.
    #[serde(default)]
    pub nodes: std::collections::BTreeMap<String, u64>,
}

impl Default for TargetStats {
    fn default() -> Self {
        TargetStats {
            epoch: Instant::now(),
            first: AtomicU64::new(0),
            per_path: Default::default(),
            per_second: (0..SECONDS_KEPT).map(|_| AtomicU64::new(0)).collect(),
            per_node: Default::default(),
        }
    }
}

impl TargetStats {
    fn count(&self, path: usize, req: &HttpRequest) {
        self.per_path[path].fetch_add(1, Relaxed);
        if let Some(node) = req.headers().get(NODE_HEADER).and_then(|v| v.to_str().ok()) {
            let mut nodes = self.per_node.lock().unwrap_or_else(|e| e.into_inner());
            *nodes.entry(node.to_string()).or_default() += 1;
        }
        let now = self.epoch.elapsed().as_nanos() as u64 + 1;
        let first = match self.first.compare_exchange(0, now, Relaxed, Relaxed) {
            Ok(_) => now,
            Err(existing) => existing,
        };
        let second = (now.saturating_sub(first) / 1_000_000_000) as usize;
        self.per_second[second.min(SECONDS_KEPT - 1)].fetch_add(1, Relaxed);
    }

    pub fn view(&self) -> StatsView {
        let paths: std::collections::BTreeMap<String, u64> = PATHS
            .iter()
            .zip(&self.per_path)
            .map(|(p, n)| (p.to_string(), n.load(Relaxed)))
            .collect();
        let mut per_second: Vec<u64> = self.per_second.iter().map(|n| n.load(Relaxed)).collect();
        while per_second.last() == Some(&0) {
            per_second.pop();
        }
        StatsView {
            total: paths.values().sum(),
            paths,
            per_second,
            nodes: self
                .per_node
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    pub fn reset(&self) {
        self.first.store(0, Relaxed);
        for n in self.per_path.iter().chain(self.per_second.iter()) {
            n.store(0, Relaxed);
        }
        self.per_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

type Stats = web::Data<Arc<TargetStats>>;

fn bad_request(field: &str, message: String) -> HttpResponse {
    HttpResponse::BadRequest()
        .json(serde_json::json!({"error": "invalid_parameter", "message": message, "field": field}))
}

/// The raw value of a query parameter, if present.
fn raw_param<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Reads a whole-number query parameter, `default` when absent; the error names it.
fn param(req: &HttpRequest, name: &str, default: u64) -> Result<u64, String> {
    match raw_param(req, name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| format!("{name}={raw:?} is not a whole number")),
    }
}

async fn hello(stats: Stats, req: HttpRequest) -> HttpResponse {
    stats.count(ROOT, &req);
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("Hello, World!")
}

async fn delay(stats: Stats, req: HttpRequest) -> HttpResponse {
    stats.count(DELAY, &req);
    let ms = match param(&req, "ms", 0) {
        Ok(v) => v,
        Err(why) => return bad_request("ms", why),
    };
    if ms > 60_000 {
        return bad_request("ms", format!("ms={ms} is over the 60000 ms limit"));
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn status(stats: Stats, req: HttpRequest) -> HttpResponse {
    stats.count(STATUS, &req);
    let code = match param(&req, "code", 200) {
        Ok(v) => v,
        Err(why) => return bad_request("code", why),
    };
    match u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(code) if code.as_u16() >= 200 => HttpResponse::build(code).finish(),
        _ => bad_request(
            "code",
            format!("code={code} is not a status between 200 and 999"),
        ),
    }
}

async fn echo(stats: Stats, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    stats.count(ECHO, &req);
    let mut resp = HttpResponse::Ok();
    if let Some(ct) = req.headers().get(actix_web::http::header::CONTENT_TYPE) {
        resp.insert_header((actix_web::http::header::CONTENT_TYPE, ct.clone()));
    }
    resp.body(body)
}

async fn bytes(stats: Stats, req: HttpRequest) -> HttpResponse {
    stats.count(BYTES, &req);
    let n = match param(&req, "n", 0) {
        Ok(v) => v,
        Err(why) => return bad_request("n", why),
    };
    if n > 100 << 20 {
        return bad_request("n", format!("n={n} is over the 100 MiB limit"));
    }
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(vec![b'x'; n as usize])
}

async fn redirect(stats: Stats, req: HttpRequest) -> HttpResponse {
    stats.count(REDIRECT, &req);
    match raw_param(&req, "to") {
        Some(to) if !to.is_empty() => HttpResponse::Found()
            .insert_header((actix_web::http::header::LOCATION, to.to_string()))
            .finish(),
        _ => bad_request("to", "to= is required: the redirect's Location".into()),
    }
}

async fn other(stats: Stats, req: HttpRequest) -> HttpResponse {
    stats.count(OTHER, &req);
    HttpResponse::NotFound()
        .json(serde_json::json!({"error": "not_found", "message": "no such path", "field": null}))
}

async fn get_stats(stats: Stats) -> HttpResponse {
    HttpResponse::Ok().json(stats.view())
}

async fn reset_stats(stats: Stats) -> HttpResponse {
    stats.reset();
    HttpResponse::NoContent().finish()
}

/// The route table, shared by the server and the handler tests.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::to(hello))
        .route("/delay", web::to(delay))
        .route("/status", web::to(status))
        .route("/echo", web::to(echo))
        .route("/bytes", web::to(bytes))
        .route("/redirect", web::to(redirect))
        .route("/stats", web::get().to(get_stats))
        .route("/stats", web::delete().to(reset_stats))
        .default_service(web::to(other));
}

/// Builds the target server on a bound listener; run it by awaiting it (inside an actix
/// `System`), stop it with its handle.
pub fn server(
    listener: TcpListener,
    workers: usize,
    stats: Arc<TargetStats>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(stats);
    // The deadlines of every server of ours (crate::http::limits), at their defaults; many
    // connections, since load tests open one per user.
    let api = crate::settings::Settings::defaults().api;
    let bodies = crate::http::limits::BodyLimits::from_settings(&api);
    let workers = workers.max(1);
    let per_worker = crate::http::limits::connections_per_worker(100_000, 0, workers);
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(bodies.clone())
            .wrap(actix_web::middleware::from_fn(
                crate::http::limits::body_deadline,
            ))
            .configure(routes)
    })
    .workers(workers)
    .backlog(4096)
    .client_request_timeout(api.header_timeout)
    .max_connections(per_worker)
    .max_connection_rate(4096)
    .tcp_nodelay(true)
    .keep_alive(Duration::from_secs(75))
    .disable_signals()
    .listen(listener)?
    .run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;

    #[actix_web::test]
    async fn endpoints_answer_and_are_counted() {
        let stats = Arc::new(TargetStats::default());
        let app = test::init_service(
            actix_web::App::new()
                .app_data(web::Data::new(stats.clone()))
                .configure(routes),
        )
        .await;
        let call = |uri: &str| test::TestRequest::get().uri(uri).to_request();
        let resp = test::call_service(&app, call("/")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(test::read_body(resp).await, "Hello, World!");
        assert_eq!(
            test::call_service(&app, call("/status?code=503"))
                .await
                .status(),
            503
        );
        assert_eq!(
            test::call_service(&app, call("/status?code=abc"))
                .await
                .status(),
            400
        );
        assert_eq!(
            test::call_service(&app, call("/delay?ms=5")).await.status(),
            200
        );
        assert_eq!(
            test::call_service(&app, call("/delay?ms=999999"))
                .await
                .status(),
            400
        );
        let resp = test::call_service(&app, call("/bytes?n=1000")).await;
        assert_eq!(test::read_body(resp).await.len(), 1000);
        let echo = test::TestRequest::post()
            .uri("/echo")
            .set_payload("ping")
            .to_request();
        assert_eq!(
            test::read_body(test::call_service(&app, echo).await).await,
            "ping"
        );
        assert_eq!(test::call_service(&app, call("/nope")).await.status(), 404);
        let resp = test::call_service(&app, call("/redirect?to=/bytes")).await;
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers().get("location").unwrap(), "/bytes");
        let view = stats.view();
        assert_eq!(view.total, 9);
        assert_eq!(view.paths["/status"], 2);
        assert_eq!(view.paths["other"], 1);
        assert_eq!(view.per_second.iter().sum::<u64>(), 9);
        let resp =
            test::call_service(&app, test::TestRequest::delete().uri("/stats").to_request()).await;
        assert_eq!(resp.status(), 204);
        assert_eq!(stats.view().total, 0);
        assert!(stats.view().per_second.is_empty());
    }
}
