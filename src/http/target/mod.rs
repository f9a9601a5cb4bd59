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
//! - `POST /login`: a token for `{user, password}` (JSON or a form), also set as a cookie;
//!   `GET /me`: the user of the token a request brings back, else 401 (`login.rs`)
//!
//! It speaks HTTP/1.1, and HTTP/2 when asked (h2c with prior knowledge in clear, ALPN over
//! TLS); TLS with a generated or given certificate, and mTLS (`tls.rs`). `/stats` counts per
//! path, second, node, protocol and TLS version (`stats.rs`).

mod login;
mod stats;
mod tls;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

pub use login::SESSION_COOKIE;
pub use stats::{StatsView, TargetStats, TlsVersion};
pub use tls::{CertSource, ServerTls, TlsOptions, TlsSetupError, server_tls};

// Each handler's slot in stats::PATHS.
const ROOT: usize = 0;
const DELAY: usize = 1;
const STATUS: usize = 2;
const ECHO: usize = 3;
const BYTES: usize = 4;
const REDIRECT: usize = 5;
const LOGIN: usize = 6;
const ME: usize = 7;
const OTHER: usize = 8;

type Stats = web::Data<Arc<TargetStats>>;

pub(super) fn bad_request(field: &str, message: String) -> HttpResponse {
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
        .route("/login", web::to(login::login))
        .route("/me", web::to(login::me))
        .route("/stats", web::get().to(get_stats))
        .route("/stats", web::delete().to(reset_stats))
        .default_service(web::to(other));
}

/// How the target speaks on its listener.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP: HTTP/1.1, and with `h2` also HTTP/2 with prior knowledge (h2c) on the same
    /// port.
    Clear { h2: bool },
    /// TLS; the configuration's ALPN list says whether HTTP/2 is offered beside HTTP/1.1.
    Tls(Arc<rustls::ServerConfig>),
}

impl Default for Transport {
    fn default() -> Self {
        Transport::Clear { h2: false }
    }
}

/// Idle keep-alive connections are closed after this long.
const KEEP_ALIVE: Duration = Duration::from_secs(75);
/// Pending connections the listener queues, and TLS handshakes in progress per worker.
const BACKLOG: u32 = 4096;

/// The server's settings beside the transport: the deadlines of every server of ours
/// (crate::http::limits) at their defaults, and many connections, since load tests open one
/// per user.
struct Tuning {
    workers: usize,
    per_worker: usize,
    header_timeout: Duration,
    data: web::Data<Arc<TargetStats>>,
    bodies: web::Data<crate::http::limits::BodyLimits>,
}

/// The application: the routes with the target's counts and the body deadline.
fn app(
    data: web::Data<Arc<TargetStats>>,
    bodies: web::Data<crate::http::limits::BodyLimits>,
) -> actix_web::App<
    impl actix_service::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new()
        .app_data(data)
        .app_data(bodies)
        .wrap(actix_web::middleware::from_fn(
            crate::http::limits::body_deadline,
        ))
        .configure(routes)
}

/// Builds the target server on a bound listener; run it by awaiting it (inside an actix
/// `System`), stop it with its handle.
pub fn server(
    listener: TcpListener,
    workers: usize,
    stats: Arc<TargetStats>,
    transport: &Transport,
) -> std::io::Result<actix_web::dev::Server> {
    let api = crate::settings::Settings::defaults().api;
    let workers = workers.max(1);
    let tuning = Tuning {
        workers,
        per_worker: crate::http::limits::connections_per_worker(100_000, 0, workers),
        header_timeout: api.header_timeout,
        data: web::Data::new(stats),
        bodies: crate::http::limits::BodyLimits::from_settings(&api),
    };
    match transport {
        Transport::Clear { h2 } => clear_server(listener, tuning, *h2),
        Transport::Tls(config) => tls_server(listener, tuning, config.clone()),
    }
}

fn clear_server(
    listener: TcpListener,
    tuning: Tuning,
    h2: bool,
) -> std::io::Result<actix_web::dev::Server> {
    let Tuning { data, bodies, .. } = tuning;
    let server = actix_web::HttpServer::new(move || app(data.clone(), bodies.clone()))
        .workers(tuning.workers)
        .backlog(BACKLOG)
        .client_request_timeout(tuning.header_timeout)
        .max_connections(tuning.per_worker)
        .max_connection_rate(BACKLOG as usize)
        .tcp_nodelay(true)
        .keep_alive(KEEP_ALIVE)
        .disable_signals();
    let server = if h2 {
        server.listen_auto_h2c(listener)?
    } else {
        server.listen(listener)?
    };
    Ok(server.run())
}

/// The TLS server, assembled from actix's parts because actix-web's own TLS listener always
/// offers h2 by ALPN: here the configuration's ALPN list decides, and the negotiated protocol
/// picks the HTTP/1.1 or HTTP/2 dispatcher. Each connection's TLS version is stashed in its
/// extensions for the counts.
fn tls_server(
    listener: TcpListener,
    tuning: Tuning,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    use actix_rt::net::TcpStream;
    use actix_service::ServiceFactoryExt as _;
    use actix_tls::accept::TlsError;
    use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};

    actix_tls::accept::max_concurrent_tls_connect(BACKLOG as usize);
    let Tuning { data, bodies, .. } = tuning;
    let factory = move || {
        let app =
            actix_service::IntoServiceFactory::into_factory(app(data.clone(), bodies.clone()))
                .map_err(|e| e.error_response());
        let http = actix_http::HttpService::build()
            .keep_alive(KEEP_ALIVE)
            .client_request_timeout(tuning.header_timeout)
            .on_connect_ext(|io: &TlsStream<TcpStream>, ext| {
                let version = io.get_ref().1.protocol_version();
                if let Some(version) = version.and_then(TlsVersion::of) {
                    ext.insert(version);
                }
            })
            .finish(actix_service::map_config(app, |_| {
                actix_web::dev::AppConfig::default()
            }));
        Acceptor::new((*config).clone())
            .map_init_err(|_| ())
            .map_err(TlsError::into_service_error)
            .and_then(|io: TlsStream<TcpStream>| async move {
                let (tcp, tls) = io.get_ref();
                let _ = tcp.set_nodelay(true);
                let protocol = match tls.alpn_protocol() {
                    Some(b"h2") => actix_http::Protocol::Http2,
                    _ => actix_http::Protocol::Http1,
                };
                let peer = tcp.peer_addr().ok();
                Ok::<_, TlsError<_, actix_http::error::DispatchError>>((io, protocol, peer))
            })
            .and_then(http.map_err(TlsError::Service))
    };
    Ok(actix_server::Server::build()
        .workers(tuning.workers)
        .backlog(BACKLOG)
        .max_concurrent_connections(tuning.per_worker)
        .disable_signals()
        .listen("mcpt-target-tls", listener, factory)?
        .run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;

    /// The routes on `stats`, as a test service.
    async fn app_on(
        stats: &Arc<TargetStats>,
    ) -> impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    > {
        test::init_service(
            actix_web::App::new()
                .app_data(web::Data::new(stats.clone()))
                .configure(routes),
        )
        .await
    }

    #[actix_web::test]
    async fn endpoints_answer_and_are_counted() {
        let stats = Arc::new(TargetStats::default());
        let app = app_on(&stats).await;
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
        assert_eq!(view.protocols["h1"], 9);
        assert_eq!(view.protocols["h2"], 0);
        assert_eq!(view.tls_versions.values().sum::<u64>(), 0);
        let resp =
            test::call_service(&app, test::TestRequest::delete().uri("/stats").to_request()).await;
        assert_eq!(resp.status(), 204);
        assert_eq!(stats.view().total, 0);
        assert!(stats.view().per_second.is_empty());
        assert_eq!(stats.view().protocols["h1"], 0);
    }

    #[actix_web::test]
    async fn login_tokens_open_me_and_bad_ones_are_counted_rejected() {
        let stats = Arc::new(TargetStats::default());
        let app = app_on(&stats).await;
        let login = |body: &'static str, form: bool| {
            let ct = if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            test::TestRequest::post()
                .uri("/login")
                .insert_header(("content-type", ct))
                .set_payload(body)
                .to_request()
        };
        let resp =
            test::call_service(&app, login(r#"{"user":"ann","password":"pw"}"#, false)).await;
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap();
        assert!(cookie.starts_with("mcpt_session=ann."), "{cookie}");
        let json: serde_json::Value = test::read_body_json(resp).await;
        let token = json["token"].as_str().unwrap().to_string();
        assert_eq!(json["user"], "ann");
        let resp = test::call_service(&app, login("user=bob&password=x", true)).await;
        assert_eq!(resp.status(), 200);

        let me = |auth: Option<String>, cookie: Option<String>| {
            let mut r = test::TestRequest::get().uri("/me");
            if let Some(a) = auth {
                r = r.insert_header(("authorization", a));
            }
            if let Some(c) = cookie {
                r = r.insert_header(("cookie", c));
            }
            r.to_request()
        };
        let resp = test::call_service(&app, me(Some(format!("Bearer {token}")), None)).await;
        assert_eq!(resp.status(), 200);
        let json: serde_json::Value = test::read_body_json(resp).await;
        assert_eq!(json["user"], "ann");
        let by_cookie = me(None, Some(format!("mcpt_session={token}")));
        assert_eq!(test::call_service(&app, by_cookie).await.status(), 200);
        // Refused: no token, a forged one, and one for another user with ann's MAC.
        let forged = token.replacen("ann", "eve", 1);
        for bad in [me(None, None), me(Some(format!("Bearer {forged}")), None)] {
            let resp = test::call_service(&app, bad).await;
            assert_eq!(resp.status(), 401);
            let json: serde_json::Value = test::read_body_json(resp).await;
            assert_eq!(json["field"], "authorization");
        }
        // Bad logins name their field.
        for (body, field) in [
            (r#"{"user":"","password":"pw"}"#, "user"),
            (r#"{"user":"a b","password":"pw"}"#, "user"),
            (r#"{"user":"ann"}"#, "password"),
            ("not json", "body"),
        ] {
            let resp = test::call_service(&app, login(body, false)).await;
            assert_eq!(resp.status(), 400, "{body}");
            let json: serde_json::Value = test::read_body_json(resp).await;
            assert_eq!(json["field"], field, "{body}");
        }

        let view = stats.view();
        assert_eq!(view.paths["/login"], 6);
        assert_eq!(view.paths["/me"], 4);
        assert_eq!(view.rejected_tokens, 2);
        assert_eq!(view.logins.get("ann"), Some(&1));
        assert_eq!(view.logins.get("bob"), Some(&1));
        assert_eq!(view.logins.len(), 2);
        stats.reset();
        assert_eq!(stats.view().rejected_tokens, 0);
        assert!(stats.view().logins.is_empty());
    }
}
