//! `ApiError`: every error a REST handler returns, with one status mapping and one JSON body
//! shape, `{"error": code, "message": ..., "field": ...}` (DESIGN §7). Bad input is always a
//! 4xx that names what was wrong, never a 500. Also the body reader every JSON endpoint uses
//! (content type, size cap, parse position) and the bearer-token guard.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use serde_json::Value;

use crate::validate::{FieldError, FieldErrors};

/// The body of every error answer (DESIGN §7). Some refusals add keys of their own (a 409 of
/// `/api/allocations` lists its `shortages`, one of `/api/workloads` its `unplaced`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ApiError)]
pub struct ErrorBody {
    /// A stable code: `bad_json`, `unauthorized`, `not_found`, `method_not_allowed`,
    /// `bad_request`, `conflict`, `too_large`, `unsupported_media_type`, `invalid`,
    /// `unavailable`, or a refusal's own (`insufficient_resources`, `unplaced`, ...).
    pub error: String,
    pub message: String,
    /// The key path of the (first) offending value, `null` when no one field is at fault.
    pub field: Option<String>,
    /// A 422: every problem found, each with its key path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (the message gives the line and column).
    #[error("{0}")]
    BadJson(String),
    #[error("missing or wrong bearer token: send `Authorization: Bearer <api.token>`")]
    Unauthorized,
    /// Refused whatever the token: e.g. a browser page of another origin.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A known path asked with a method it does not take; `allow` lists the ones it does.
    #[error("{method} is not allowed on {path} (allowed: {allow})")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    /// A request that is not JSON-bodied and is wrong in its form (e.g. a plain GET on the
    /// WebSocket route).
    #[error("{0}")]
    BadRequest(String),
    /// A query parameter that is missing or wrong: 400 naming it in `field`.
    #[error("{message}")]
    BadParam {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("body exceeds {limit} bytes (api.max_body_size)")]
    TooLarge { limit: usize },
    /// The body did not arrive in time (`api.body_timeout`), or was cut to make room for
    /// newer ones (`api.max_pending_bodies`).
    #[error("{0}")]
    Timeout(String),
    /// Values that parse but do not validate, each with its key path.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// A part of the server is restarting or gone; try again.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadJson(_) => "bad_json",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BadRequest(_) | ApiError::BadParam { .. } => "bad_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Timeout(_) => "timeout",
            ApiError::Invalid(_) => "invalid",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) | ApiError::BadParam { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = ErrorBody {
            error: self.code().to_string(),
            message: self.to_string(),
            field: None,
            errors: None,
        };
        if let ApiError::Invalid(errors) = self {
            body.field = errors.0.first().map(|e| e.field.clone());
            body.errors = Some(errors.0.clone());
        }
        if let ApiError::BadParam { field, .. } = self {
            body.field = Some(field.to_string());
        }
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                resp.insert_header((header::ALLOW, *allow));
            }
            _ => {}
        }
        resp.json(body)
    }
}

/// How a body is to be read, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BodyFormat {
    /// `application/json`, or no content type.
    Json,
    /// `application/yaml`, `text/yaml`, `application/x-yaml`, `text/x-yaml`: read as the CLI
    /// reads a plan file ([`crate::plan::parse_document`]).
    Yaml,
    /// Anything else (curl's `-d` sends `application/x-www-form-urlencoded`): taken when the
    /// body parses as JSON.
    Other,
}

fn body_format(req: &HttpRequest) -> (BodyFormat, String) {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return (BodyFormat::Json, String::new());
    };
    let ct = String::from_utf8_lossy(ct.as_bytes()).into_owned();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match essence.as_str() {
        "application/json" => BodyFormat::Json,
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml" => BodyFormat::Yaml,
        _ => BodyFormat::Other,
    };
    (format, ct)
}

/// Reads a body of JSON, or of YAML when its `Content-Type` says so: at most `limit` bytes
/// (checked while reading, so a huge body is never buffered), within the server's body
/// deadline (408 otherwise, see [`crate::http::limits`]), and it must parse. A body sent with
/// another content type is taken when it parses as JSON. serde_json refuses nesting deeper
/// than 128 levels, so a 10,000-deep document is a 400, not a stack overflow.
pub async fn json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    let (format, content_type) = body_format(req);
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::Timeout(io.to_string())
            }
            e => ApiError::BadJson(format!("cannot read the body: {e}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ApiError::BadJson(
            "the body is empty; expected a JSON object".into(),
        ));
    }
    let json_error = |e: serde_json::Error| {
        let hint = if format == BodyFormat::Other {
            format!(
                " (Content-Type {content_type:?}: a body is read as JSON, or as YAML with Content-Type: application/yaml)"
            )
        } else {
            String::new()
        };
        ApiError::BadJson(format!(
            "malformed JSON at line {} column {}: {e}{hint}",
            e.line(),
            e.column()
        ))
    };
    match format {
        BodyFormat::Json | BodyFormat::Other => serde_json::from_slice(&body).map_err(json_error),
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(&body)
                .map_err(|e| ApiError::BadJson(format!("the YAML body is not UTF-8: {e}")))?;
            // The YAML reader recurses: refuse deep nesting before it reads.
            let depth = yaml_depth_bound(text);
            if depth > MAX_YAML_DEPTH {
                return Err(ApiError::BadJson(format!(
                    "the YAML body may nest {depth} levels deep (counting indentation and \
                     brackets), more than {MAX_YAML_DEPTH}"
                )));
            }
            crate::plan::parse_document(text).map_err(|e| ApiError::BadJson(e.to_string()))
        }
    }
}

/// Most nesting a YAML body may have, as [`yaml_depth_bound`] counts it. The YAML reader
/// recurses per level (50,000 levels overflow a thread's stack); a plan needs a dozen.
const MAX_YAML_DEPTH: usize = 256;

/// An upper bound on how deep the collections of a YAML text nest, from its characters alone:
/// the flow brackets open at once, plus, on each line, the columns before its content
/// (indentation and the compact `- `, `? ` and `: ` indicators), since every block level takes
/// at least one of them.
fn yaml_depth_bound(text: &str) -> usize {
    let (mut flow, mut max) = (0usize, 0usize);
    for line in text.lines() {
        let prefix = line
            .chars()
            .take_while(|c| matches!(c, ' ' | '\t' | '-' | '?' | ':'))
            .count();
        max = max.max(flow + prefix);
        for c in line.chars() {
            match c {
                '[' | '{' => {
                    flow += 1;
                    max = max.max(flow + prefix);
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    max
}

/// Whether a request may pass the token guard: reads always do; mutating calls need the
/// bearer token when one is configured. Compared in constant time.
pub fn authorized(req: &actix_web::dev::ServiceRequest, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    bearer_matches(req, token)
}

/// Whether a request carries `Authorization: Bearer <token>`, whatever its method.
pub fn bearer_matches(req: &actix_web::dev::ServiceRequest, token: &str) -> bool {
    bearer_matches_request(req.request(), token)
}

/// [`bearer_matches`] for a request a handler holds.
pub fn bearer_matches_request(req: &HttpRequest, token: &str) -> bool {
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer t0ken` is as good.
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start())
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn invalid_names_the_first_field_and_lists_all() {
        let mut e = FieldErrors::default();
        e.push("tasks[0].parameters.duration", "must be greater than 0");
        e.push("name", "expected a string");
        let resp = ApiError::Invalid(e).error_response();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = resp.into_body().try_into_bytes().unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "invalid");
        assert_eq!(v["field"], "tasks[0].parameters.duration");
        assert_eq!(v["errors"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn only_the_bearer_scheme_with_the_token_passes() {
        let req = |method: Method, auth: Option<&str>| {
            let mut r = actix_web::test::TestRequest::default().method(method);
            if let Some(a) = auth {
                r = r.insert_header((header::AUTHORIZATION, a));
            }
            r.to_srv_request()
        };
        for ok in ["Bearer t0ken", "bearer t0ken", "BEARER  t0ken"] {
            assert!(
                authorized(&req(Method::POST, Some(ok)), Some("t0ken")),
                "{ok}"
            );
        }
        for bad in [
            "Bearer t0ke",
            "Basic t0ken",
            "t0ken",
            "Bearer",
            "Bearer t0ken2",
            "",
        ] {
            assert!(
                !authorized(&req(Method::POST, Some(bad)), Some("t0ken")),
                "{bad:?}"
            );
        }
        assert!(!authorized(&req(Method::DELETE, None), Some("t0ken")));
        assert!(authorized(&req(Method::GET, None), Some("t0ken")));
        assert!(authorized(&req(Method::POST, None), None));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}

/// A server's API token (`api.token`), as app data for [`require_token`].
#[derive(Debug, Clone)]
pub struct ApiToken(pub Option<String>);

/// Middleware: mutating calls need the bearer token when one is configured (401 otherwise).
pub async fn require_token(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    // The route tables always register the token; without it, fail closed: reads only.
    let allowed = match req.app_data::<web::Data<ApiToken>>() {
        Some(t) => authorized(&req, t.0.as_deref()),
        None => matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS),
    };
    if !allowed {
        let resp = ApiError::Unauthorized.error_response();
        return Ok(req.into_response(resp));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The fallback of a server: a JSON 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("{} {}", req.method(), req.path())).error_response()
}

/// The fallback of a resource: a JSON 405 naming the methods it takes.
pub fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_string(),
            allow,
        }
        .error_response()
    })
}

#[cfg(test)]
mod yaml_tests {
    use super::{MAX_YAML_DEPTH, yaml_depth_bound};

    #[test]
    fn the_depth_bound_counts_indentation_compact_entries_and_brackets() {
        assert_eq!(yaml_depth_bound("name: x\ntasks:\n  - type: t\n"), 4);
        assert_eq!(yaml_depth_bound(&("- ".repeat(50_000) + "x")), 100_000);
        assert_eq!(yaml_depth_bound(&"[".repeat(1000)), 1000);
        assert_eq!(yaml_depth_bound("a: [[1], [2]]\nb: {c: [3]}"), 2);
    }

    /// What the bound lets through, the YAML reader reads on a worker's 2 MiB stack.
    #[test]
    fn the_deepest_yaml_allowed_reads_on_a_small_stack() {
        let half = MAX_YAML_DEPTH / 2;
        let deepest = [
            "- ".repeat(half) + "x",
            "[".repeat(MAX_YAML_DEPTH) + &"]".repeat(MAX_YAML_DEPTH),
            (0..MAX_YAML_DEPTH)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect(),
        ];
        for text in deepest {
            assert!(yaml_depth_bound(&text) <= MAX_YAML_DEPTH);
            let t = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || crate::plan::parse_document(&text).map(|_| ()))
                .unwrap();
            // Read or refused with a message, it returns (an overflow would abort the test).
            let read = t.join().unwrap();
            assert!(
                read.as_ref()
                    .err()
                    .is_none_or(|e| !e.to_string().is_empty())
            );
        }
    }
}
