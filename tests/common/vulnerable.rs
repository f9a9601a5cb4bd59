//! A deliberately vulnerable web application, and its fixed twin, for the security scanner's
//! tests. Test code only: it lives under `tests/`, is never a default target and never part of
//! the binary.
//!
//! Both serve the same routes on 127.0.0.1:0 and stop when dropped. The vulnerable one has
//! the flaws listed in [`KNOWN_FLAWS`]; the fixed one has none of them:
//!
//! | route | vulnerable | fixed |
//! |---|---|---|
//! | `GET /` | sets `session` without SameSite, HttpOnly, Secure | `HttpOnly; Secure; SameSite=Strict` |
//! | `GET /search?q=` | echoes `q` raw into HTML | HTML-escaped |
//! | `GET /profile?name=` | echoes `name` raw into an attribute | HTML-escaped |
//! | `GET /item?id=` | SQL built by pasting `id` (SQLite in memory): errors shown, `AND 1=2` empties, `SLEEP(n)` sleeps | bound parameter |
//! | `GET /stock?id=` | pasted SQL, errors hidden, but `AND 1=2` says "out of stock" (blind, boolean) | bound parameter |
//! | `GET /report?year=` | pasted SQL, errors hidden, same page always, but `SLEEP(n)` sleeps (blind, time-based only) | bound parameter |
//! | `POST /transfer` | accepts any form | needs the session's `csrf_token` and a same-site origin |
//! | `GET /go?next=` | redirects anywhere | relative paths only |
//! | `GET /partner` | redirects to a configured off-site URL (not a flaw: fixed data) | same |
//!
//! Every answer of the fixed twin carries HSTS, CSP, `nosniff` and `X-Frame-Options`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use mcp_testing::task::security::{Endpoint, Param, ScanType};
use rusqlite::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Vulnerable,
    Fixed,
}

/// One flaw the vulnerable server has on purpose.
#[derive(Debug, Clone, Copy)]
pub struct KnownFlaw {
    pub scan_type: ScanType,
    /// The route, or `*` for a site-wide flaw (headers, cookies).
    pub path: &'static str,
    pub parameter: Option<&'static str>,
    /// A word of the finding's title that tells flaws of one parameter apart.
    pub title_has: &'static str,
    /// Only a `deep` scan can find it (time-based).
    pub deep_only: bool,
}

const fn flaw(
    scan_type: ScanType,
    path: &'static str,
    parameter: Option<&'static str>,
    title_has: &'static str,
    deep_only: bool,
) -> KnownFlaw {
    KnownFlaw {
        scan_type,
        path,
        parameter,
        title_has,
        deep_only,
    }
}

pub const KNOWN_FLAWS: &[KnownFlaw] = &[
    flaw(ScanType::Xss, "/search", Some("q"), "reflected", false),
    flaw(ScanType::Xss, "/profile", Some("name"), "reflected", false),
    flaw(ScanType::SqlInjection, "/item", Some("id"), "SQL", false),
    flaw(
        ScanType::SqlInjection,
        "/stock",
        Some("id"),
        "boolean",
        false,
    ),
    flaw(
        ScanType::SqlInjection,
        "/report",
        Some("year"),
        "time-based",
        true,
    ),
    flaw(ScanType::Csrf, "/transfer", None, "without a token", false),
    flaw(ScanType::Csrf, "*", Some("session"), "SameSite", false),
    flaw(
        ScanType::Headers,
        "*",
        Some("strict-transport-security"),
        "HSTS",
        false,
    ),
    flaw(
        ScanType::Headers,
        "*",
        Some("content-security-policy"),
        "Content-Security-Policy",
        false,
    ),
    flaw(
        ScanType::Headers,
        "*",
        Some("x-content-type-options"),
        "nosniff",
        false,
    ),
    flaw(
        ScanType::Headers,
        "*",
        Some("x-frame-options"),
        "X-Frame-Options",
        false,
    ),
    flaw(ScanType::Headers, "*", Some("session"), "HttpOnly", false),
    flaw(ScanType::Headers, "*", Some("session"), "Secure", false),
    flaw(
        ScanType::OpenRedirect,
        "/go",
        Some("next"),
        "open redirect",
        false,
    ),
];

impl KnownFlaw {
    /// Whether `f` reports this flaw.
    pub fn matches(&self, f: &mcp_testing::task::security::Finding) -> bool {
        let path = f.endpoint.split_once(' ').map_or("", |(_, p)| p);
        f.scan_type == self.scan_type
            && (self.path == "*" || self.path == path)
            && f.parameter.as_deref() == self.parameter
            && f.title.contains(self.title_has)
    }
}

/// The endpoints of both servers, as a scan spec lists them (`/partner` left out: it is for
/// the allowlist test).
pub fn endpoints() -> Vec<Endpoint> {
    let ep = |method: &str, path: &str, params: &[(&str, &str)]| Endpoint {
        path: path.into(),
        method: method.into(),
        params: params
            .iter()
            .map(|(n, v)| Param {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
    };
    vec![
        ep("GET", "/", &[]),
        ep("GET", "/search", &[("q", "apple")]),
        ep("GET", "/profile", &[("name", "ann")]),
        ep("GET", "/item", &[("id", "1")]),
        ep("GET", "/stock", &[("id", "1")]),
        ep("GET", "/report", &[("year", "2024")]),
        ep("POST", "/transfer", &[("to", "bob"), ("amount", "5")]),
        ep("GET", "/go", &[("next", "/search")]),
    ]
}

/// The anti-CSRF token of the fixed twin's (single) session.
pub const CSRF_TOKEN: &str = "c0ffee-token";
const SESSION: &str = "s3ss10n";

struct State {
    flavor: Flavor,
    db: Mutex<Connection>,
    partner: String,
}

pub struct VulnServer {
    pub addr: SocketAddr,
    pub flavor: Flavor,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VulnServer {
    pub fn start(flavor: Flavor) -> VulnServer {
        VulnServer::start_with(flavor, "http://10.255.255.1/welcome")
    }

    /// `partner`: where `/partner` redirects (an off-site address).
    pub fn start_with(flavor: Flavor, partner: &str) -> VulnServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let partner = partner.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let state = web::Data::new(State {
                    flavor,
                    db: Mutex::new(database()),
                    partner,
                });
                let srv = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .wrap(security_headers(flavor))
                        .configure(routes)
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                let _ = tx.send(srv.handle());
                let _ = srv.await;
            })
        });
        let handle = rx.recv().expect("server thread started");
        VulnServer {
            addr,
            flavor,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/", self.addr)).unwrap()
    }
}

impl Drop for VulnServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let stopper = std::thread::spawn(move || {
            actix::System::new().block_on(handle.stop(false));
        });
        let _ = stopper.join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn database() -> Connection {
    let db = Connection::open_in_memory().expect("sqlite in memory");
    db.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO items VALUES (1, 'apple'), (2, 'pear');
         CREATE TABLE sales (year INTEGER, amount INTEGER);
         INSERT INTO sales VALUES (2024, 10), (2025, 20);",
    )
    .expect("schema");
    db
}

/// The fixed twin's headers on every answer; none for the vulnerable one.
fn security_headers(flavor: Flavor) -> DefaultHeaders {
    let h = DefaultHeaders::new();
    if flavor == Flavor::Vulnerable {
        return h;
    }
    h.add((
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    ))
    .add((
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; object-src 'none'; frame-ancestors 'none'",
    ))
    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .add((header::X_FRAME_OPTIONS, "DENY"))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/search", web::get().to(search))
        .route("/profile", web::get().to(profile))
        .route("/item", web::get().to(item))
        .route("/stock", web::get().to(stock))
        .route("/report", web::get().to(report))
        .route("/transfer", web::post().to(transfer))
        .route("/go", web::get().to(go))
        .route("/partner", web::get().to(partner));
}

type Query = web::Query<std::collections::HashMap<String, String>>;

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html>\n<html><body>\n{body}\n</body></html>\n"
        ))
}

/// The fixed twin escapes as the HTML report does.
pub use mcp_testing::stats::html::escape;

fn shown(state: &State, s: &str) -> String {
    match state.flavor {
        Flavor::Vulnerable => s.to_string(),
        Flavor::Fixed => escape(s),
    }
}

fn param<'a>(q: &'a Query, name: &str) -> &'a str {
    q.get(name).map(String::as_str).unwrap_or_default()
}

async fn home(state: web::Data<State>) -> HttpResponse {
    let cookie = match state.flavor {
        Flavor::Vulnerable => format!("session={SESSION}; Path=/"),
        Flavor::Fixed => format!("session={SESSION}; Path=/; HttpOnly; Secure; SameSite=Strict"),
    };
    let mut r = html(format!(
        "<h1>Shop</h1>\n<form method=post action=/transfer><input type=hidden name=csrf_token value={CSRF_TOKEN}></form>"
    ));
    r.headers_mut().append(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&cookie).unwrap(),
    );
    r
}

async fn search(state: web::Data<State>, q: Query) -> HttpResponse {
    html(format!(
        "<p>Results for {}</p>",
        shown(&state, param(&q, "q"))
    ))
}

async fn profile(state: web::Data<State>, q: Query) -> HttpResponse {
    html(format!(
        "<form><input name=\"name\" value=\"{}\"></form>",
        shown(&state, param(&q, "name"))
    ))
}

/// `SLEEP(n)` in pasted SQL (SQLite has no such function): the seconds asked for, at most 5,
/// and the SQL with the call replaced by `1`.
fn simulated_sleep(sql: &str) -> (Duration, String) {
    let upper = sql.to_ascii_uppercase();
    let Some(at) = upper.find("SLEEP(") else {
        return (Duration::ZERO, sql.to_string());
    };
    let rest = &sql[at + 6..];
    let Some(close) = rest.find(')') else {
        return (Duration::ZERO, sql.to_string());
    };
    let secs: u64 = rest[..close].trim().parse().unwrap_or(0);
    let replaced = format!("{}1{}", &sql[..at], &rest[close + 1..]);
    (Duration::from_secs(secs.min(5)), replaced)
}

async fn item(state: web::Data<State>, q: Query) -> HttpResponse {
    let id = param(&q, "id").to_string();
    let found: Result<Option<String>, String> = match state.flavor {
        Flavor::Vulnerable => {
            let (sleep, sql) = simulated_sleep(&format!("SELECT name FROM items WHERE id = {id}"));
            actix_rt::time::sleep(sleep).await;
            let db = state.db.lock().unwrap();
            let mut rows = Vec::new();
            match db.prepare(&sql) {
                Ok(mut stmt) => match stmt.query_map([], |r| r.get::<_, String>(0)) {
                    Ok(it) => {
                        rows.extend(it.flatten());
                        Ok(rows.into_iter().next())
                    }
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            }
        }
        Flavor::Fixed => {
            let db = state.db.lock().unwrap();
            db.query_row("SELECT name FROM items WHERE id = ?1", [&id], |r| r.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e.to_string()),
                })
        }
    };
    match found {
        Ok(Some(name)) => html(format!("<p>item: {}</p>", escape(&name))),
        Ok(None) => HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body("<p>no such item</p>"),
        // The vulnerable app shows the database's complaint (as text).
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("database error: {e}")),
    }
}

async fn stock(state: web::Data<State>, q: Query) -> HttpResponse {
    let id = param(&q, "id").to_string();
    let db = state.db.lock().unwrap();
    let count: i64 = match state.flavor {
        // Errors read as "none": only the true/false difference shows.
        Flavor::Vulnerable => db
            .query_row(
                &format!("SELECT count(*) FROM items WHERE id = {id}"),
                [],
                |r| r.get(0),
            )
            .unwrap_or(0),
        Flavor::Fixed => db
            .query_row("SELECT count(*) FROM items WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .unwrap_or(0),
    };
    html(
        if count > 0 {
            "<p>in stock</p>"
        } else {
            "<p>out of stock</p>"
        }
        .into(),
    )
}

async fn report(state: web::Data<State>, q: Query) -> HttpResponse {
    let year = param(&q, "year").to_string();
    match state.flavor {
        Flavor::Vulnerable => {
            let (sleep, sql) =
                simulated_sleep(&format!("SELECT count(*) FROM sales WHERE year = {year}"));
            actix_rt::time::sleep(sleep).await;
            // Errors and results are swallowed: only time tells.
            let db = state.db.lock().unwrap();
            let _ = db.query_row(&sql, [], |r| r.get::<_, i64>(0));
        }
        Flavor::Fixed => {
            let db = state.db.lock().unwrap();
            let _ = db.query_row("SELECT count(*) FROM sales WHERE year = ?1", [&year], |r| {
                r.get::<_, i64>(0)
            });
        }
    }
    html("<p>report queued</p>".into())
}

async fn transfer(
    state: web::Data<State>,
    req: HttpRequest,
    form: web::Form<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    if state.flavor == Flavor::Fixed {
        let token_ok = form.get("csrf_token").map(String::as_str) == Some(CSRF_TOKEN);
        let host = req.connection_info().host().to_string();
        let origin_ok = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_none_or(|o| o == format!("http://{host}"));
        if !(token_ok && origin_ok) {
            return HttpResponse::Forbidden()
                .content_type("text/plain")
                .body("missing or wrong csrf token");
        }
    }
    let to = form.get("to").map(String::as_str).unwrap_or_default();
    let amount = form.get("amount").map(String::as_str).unwrap_or_default();
    html(format!(
        "<p>transferred {} to {}</p>",
        escape(amount),
        escape(to)
    ))
}

/// The fixed twin: a path of this site only (not `//host`, not `/\host`, no scheme).
fn is_local_path(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\")
}

async fn go(state: web::Data<State>, q: Query) -> HttpResponse {
    let next = param(&q, "next");
    let to = match state.flavor {
        Flavor::Vulnerable => next,
        Flavor::Fixed if is_local_path(next) => next,
        Flavor::Fixed => "/",
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, to))
        .finish()
}

async fn partner(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, state.partner.as_str()))
        .finish()
}
