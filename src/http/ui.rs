//! The web UI: a page at `/` and its assets at `/ui/{file}`, embedded in the binary (no build
//! step, nothing fetched from elsewhere). The page is plain JavaScript over the REST API and
//! the live event stream (`/api/events`); `charts.js` is the chart module the HTML report
//! shares.
//!
//! | method | path | |
//! |---|---|---|
//! | GET, HEAD | `/` | the page (`index.html`) |
//! | GET, HEAD | `/ui/{file}` | `app.js`, `form.js`, `execution.js`, `charts.js`, `style.css`, `favicon.svg`; a JSON 404 for any other name |
//!
//! Every answer carries a strict `Content-Security-Policy` (scripts, styles, images and
//! connections from this origin only; no inline script or style, no frames, no plugins), a
//! strong `ETag` of the embedded bytes and `Cache-Control: no-cache`, so a browser revalidates
//! (a 304 when unchanged) and never runs the assets of an older binary.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, guard, web};

use crate::http::error::{not_allowed, not_found};

/// The policy of every UI answer. `connect-src 'self'` covers the same origin's WebSocket
/// (`ws:`/`wss:`, CSP level 3).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
    etag: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("ui/", $name)),
            etag: {
                const HASH: [u8; 18] = etag_of(include_str!(concat!("ui/", $name)));
                // The bytes are ASCII hex between quotes, so this cannot fail.
                match std::str::from_utf8(&HASH) {
                    Ok(s) => s,
                    Err(_) => panic!("an etag is ASCII"),
                }
            },
        }
    };
}

pub const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

pub const ASSETS: &[Asset] = &[
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("form.js", "text/javascript; charset=utf-8"),
    asset!("execution.js", "text/javascript; charset=utf-8"),
    asset!("charts.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// `"<16 hex digits>"`: the FNV-1a hash of the text, computed at compile time.
const fn etag_of(text: &str) -> [u8; 18] {
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    let digits = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut k = 0;
    while k < 16 {
        out[1 + k] = digits[((hash >> (60 - 4 * k)) & 0xf) as usize];
        k += 1;
    }
    out
}

/// Registers `/` and `/ui/{file}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = || guard::Any(guard::Get()).or(guard::Head());
    cfg.service(
        web::resource("/")
            .route(web::route().guard(read()).to(index))
            .default_service(not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/ui/{file}")
            .route(web::route().guard(read()).to(file))
            .default_service(not_allowed("GET, HEAD")),
    );
}

/// The web UI.
#[utoipa::path(
    get,
    path = "/",
    tag = "ui",
    responses(
        (status = 200, description = "The web UI's page", content_type = "text/html", body = String),
        (status = 304, description = "Not modified (If-None-Match)"),
    )
)]
pub(crate) async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &INDEX)
}

/// One of the web UI's files (scripts, styles).
#[utoipa::path(
    get,
    path = "/ui/{file}",
    tag = "ui",
    params(("file" = String, Path, description = "The file's name")),
    responses(
        (status = 200, description = "The file", content_type = "*/*", body = String),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such file", body = crate::http::error::ErrorBody),
    )
)]
pub(crate) async fn file(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == name.as_str()) {
        Some(asset) => serve(&req, asset),
        None => not_found(req).await,
    }
}

fn serve(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, asset.etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        resp.finish()
    } else {
        resp.content_type(asset.content_type).body(asset.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::App;
    use actix_web::test as web_test;

    #[test]
    fn etags_differ_by_content_and_are_quoted_hex() {
        let a = etag_of("a");
        let b = etag_of("b");
        assert_ne!(a, b);
        let s = std::str::from_utf8(&a).unwrap();
        assert!(s.starts_with('"') && s.ends_with('"'), "{s}");
        assert!(s[1..17].chars().all(|c| c.is_ascii_hexdigit()), "{s}");
        let names: std::collections::HashSet<_> = ASSETS.iter().map(|a| a.etag).collect();
        assert_eq!(names.len(), ASSETS.len(), "each asset has its own etag");
    }

    #[test]
    fn the_page_loads_only_embedded_assets() {
        // Every script and stylesheet the page names is one this module serves.
        for reference in INDEX
            .body
            .split(['"', '\''])
            .filter(|s| s.starts_with("/ui/"))
        {
            let name = &reference["/ui/".len()..];
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html names {reference}, which is not embedded"
            );
        }
        // Nothing from elsewhere: no absolute URL but the SVG namespace and the form's example
        // target, which name nothing to fetch.
        for asset in std::iter::once(&INDEX).chain(ASSETS) {
            let text = asset
                .body
                .replace("http://www.w3.org/2000/svg", "")
                .replace("placeholder: 'http://127.0.0.1:8089/'", "");
            for needle in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(needle), "{} refers to {needle}", asset.name);
            }
        }
    }

    #[actix_rt::test]
    async fn serves_the_page_and_assets_with_types_policy_and_revalidation() {
        let app = web_test::init_service(App::new().configure(configure)).await;
        for (uri, ty) in [
            ("/", "text/html; charset=utf-8"),
            ("/ui/app.js", "text/javascript; charset=utf-8"),
            ("/ui/form.js", "text/javascript; charset=utf-8"),
            ("/ui/execution.js", "text/javascript; charset=utf-8"),
            ("/ui/charts.js", "text/javascript; charset=utf-8"),
            ("/ui/style.css", "text/css; charset=utf-8"),
            ("/ui/favicon.svg", "image/svg+xml"),
        ] {
            let resp =
                web_test::call_service(&app, web_test::TestRequest::get().uri(uri).to_request())
                    .await;
            assert_eq!(resp.status(), 200, "{uri}");
            let h = resp.headers();
            assert_eq!(h.get("content-type").unwrap(), ty, "{uri}");
            assert_eq!(h.get("content-security-policy").unwrap(), CSP);
            assert_eq!(h.get("cache-control").unwrap(), "no-cache");
            assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
            let etag = h.get("etag").unwrap().clone();
            let body = web_test::read_body(resp).await;
            assert!(!body.is_empty(), "{uri}");

            let again = web_test::TestRequest::get()
                .uri(uri)
                .insert_header(("if-none-match", etag))
                .to_request();
            let resp = web_test::call_service(&app, again).await;
            assert_eq!(resp.status(), 304, "{uri}");
            assert!(web_test::read_body(resp).await.is_empty());
        }
        let head = web_test::TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/ui/app.js")
            .to_request();
        assert_eq!(web_test::call_service(&app, head).await.status(), 200);

        let missing = web_test::TestRequest::get()
            .uri("/ui/../Cargo.toml")
            .to_request();
        assert_eq!(web_test::call_service(&app, missing).await.status(), 404);
        let missing = web_test::TestRequest::get()
            .uri("/ui/nothing.js")
            .to_request();
        let resp = web_test::call_service(&app, missing).await;
        assert_eq!(resp.status(), 404);
        let body: serde_json::Value = web_test::read_body_json(resp).await;
        assert_eq!(body["error"], "not_found");

        let post = web_test::TestRequest::post().uri("/").to_request();
        let resp = web_test::call_service(&app, post).await;
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers().get("allow").unwrap(), "GET, HEAD");
    }
}
