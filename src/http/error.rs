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
    #[error("{0}")]
    Conflict(String),
    #[error("body exceeds {limit} bytes (api.max_body_size)")]
    TooLarge { limit: usize },
    #[error("expected Content-Type: application/json, got {0:?}")]
    UnsupportedMediaType(String),
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
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
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
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
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

/// Reads a JSON body: `Content-Type` must be JSON (or absent), at most `limit` bytes (checked
/// while reading, so a huge body is never buffered), and it must parse. serde_json refuses
/// nesting deeper than 128 levels, so a 10,000-deep document is a 400, not a stack overflow.
pub async fn json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType(ct.to_string()));
        }
    }
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
        let chunk = chunk.map_err(|e| ApiError::BadJson(format!("cannot read the body: {e}")))?;
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
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadJson(format!(
            "malformed JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
