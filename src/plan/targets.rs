//! The `targets` of a load task: each a request template, its URL (`http` or `https`) checked
//! against the allowlist, its `tls` and `http_version` the task's unless it gives its own.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::tls::{TargetDefaults, read_defaults};
use super::within_task_timeout;
use crate::allowlist::Allowlist;
use crate::engine::target::{ExpectedStatus, Target};
use crate::settings::LoadSettings;
use crate::stats::request::default_name;
use crate::validate::{FieldErrors, Obj, describe, join, kind, read_list};

/// The most targets a task may list.
pub const MAX_TARGETS: usize = 1000;
/// The largest weight of one target.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Reads the `targets` key of `o`; each target takes `defaults` (the task's `tls` and
/// `http_version`) where it does not give its own.
pub fn read_targets(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
    defaults: &TargetDefaults,
    e: &mut FieldErrors,
) -> Option<Vec<Target>> {
    let path = o.key_path("targets");
    let items = read_list(
        o,
        "targets",
        "target",
        "[{url: \"http://127.0.0.1:8089/\"}]",
        MAX_TARGETS,
        e,
    )?;
    let targets: Vec<Option<Target>> = items
        .iter()
        .enumerate()
        .map(|(i, t)| read_target(t, &format!("{path}[{i}]"), settings, defaults, e))
        .collect();
    targets.into_iter().collect()
}

fn read_target(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    defaults: &TargetDefaults,
    e: &mut FieldErrors,
) -> Option<Target> {
    // A bare string is a URL with every default.
    let owned;
    let v = match v {
        Value::String(s) => {
            owned = serde_json::json!({ "url": s });
            &owned
        }
        other => other,
    };
    let mut o = Obj::new(v, path, e)?;
    let before = e.0.len();
    let url = read_url(&mut o, settings, e);
    let method = o
        .or::<String>("method", "GET".into(), e)
        .to_ascii_uppercase();
    if awc::http::Method::from_bytes(method.as_bytes()).is_err() {
        e.push(
            o.key_path("method"),
            format!("{method:?} is not an HTTP method"),
        );
    }
    let (body, headers) = read_body(&mut o, e);
    let weight: u32 = o.or("weight", 1, e);
    if weight == 0 || weight > MAX_WEIGHT {
        e.push(
            o.key_path("weight"),
            format!("must be in 1..={MAX_WEIGHT}, got {weight}"),
        );
    }
    let timeout: Duration = o.or("timeout", settings.default_timeout, e);
    if timeout.is_zero() {
        e.push(o.key_path("timeout"), "must be greater than 0");
    }
    within_task_timeout(&o.key_path("timeout"), timeout, settings, e);
    let expected_status = read_expected_status(&mut o, e);
    let expected_response_time: Option<Duration> = o.opt("expected_response_time", e);
    if let Some(d) = expected_response_time {
        within_task_timeout(&o.key_path("expected_response_time"), d, settings, e);
    }
    let follow_redirects: bool = o.or("follow_redirects", false, e);
    let name = read_name(&mut o, e);
    let own = read_defaults(&mut o, defaults, e);
    o.finish(e);
    if e.0.len() != before {
        return None;
    }
    let url = url?;
    Some(Target {
        name: name.unwrap_or_else(|| default_name(&method, url.path())),
        url,
        method,
        headers,
        body,
        weight,
        timeout,
        expected_status: expected_status?,
        expected_response_time,
        follow_redirects,
        tls: own.tls,
        http_version: own.http_version,
    })
}

/// The longest request name.
pub const MAX_NAME: usize = 200;

/// `name`: what the requests are counted under in the report (1 to 200 characters).
pub fn read_name(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<String> {
    let name: String = o.opt("name", e)?;
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_NAME {
        e.push(
            o.key_path("name"),
            format!(
                "must be 1 to {MAX_NAME} characters, got {}",
                trimmed.chars().count()
            ),
        );
        return None;
    }
    Some(trimmed.to_string())
}

/// The `url`: an http or https URL the allowlist lets through.
fn read_url(o: &mut Obj<'_>, settings: &LoadSettings, e: &mut FieldErrors) -> Option<Url> {
    let url = o.req::<String>("url", e).and_then(|s| {
        let url_path = o.key_path("url");
        match Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(u) => {
                e.push(
                    url_path,
                    format!("unsupported scheme {:?}; use http or https", u.scheme()),
                );
                None
            }
            Err(err) => {
                e.push(url_path, format!("{s:?} is not a valid URL: {err}"));
                None
            }
        }
    });
    if let Some(u) = &url {
        check_allowed(&settings.allowed_targets, u, &o.key_path("url"), e);
    }
    url
}

/// The `headers` and the `body`: a string, or a mapping sent as JSON (with a JSON
/// content type unless the headers name one).
fn read_body(o: &mut Obj<'_>, e: &mut FieldErrors) -> (Option<String>, Vec<(String, String)>) {
    let headers = read_headers(o, e);
    let body = match o.raw("body") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(structured @ (Value::Object(_) | Value::Array(_))) => Some(structured.to_string()),
        Some(other) => {
            e.push(
                o.key_path("body"),
                format!("expected a string or a mapping, got {}", describe(other)),
            );
            None
        }
    };
    let body_is_json = matches!(o.raw("body"), Some(Value::Object(_) | Value::Array(_)));
    let mut headers = headers.unwrap_or_default();
    if body_is_json
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), "application/json".into()));
    }
    (body, headers)
}

/// `expected_status`: a code or a list of codes; 200..=399 when absent.
fn read_expected_status(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<ExpectedStatus> {
    match o.raw("expected_status") {
        None => Some(ExpectedStatus::SuccessOrRedirect),
        Some(v) => {
            let p = o.key_path("expected_status");
            let codes: Option<Vec<u16>> = match v {
                Value::Array(_) => crate::validate::FromValue::from_value(v, &p, e),
                single => crate::validate::FromValue::from_value(single, &p, e).map(|c| vec![c]),
            };
            match codes {
                Some(c) if !c.is_empty() && c.iter().all(|c| (100..600).contains(c)) => {
                    Some(ExpectedStatus::Codes(c))
                }
                Some(_) => {
                    e.push(p, "expected HTTP status codes between 100 and 599");
                    None
                }
                None => None,
            }
        }
    }
}

fn read_headers(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Vec<(String, String)>> {
    let path = o.key_path("headers");
    let map = o.map("headers", "header names to values", e)?;
    let mut out = Vec::new();
    for (k, v) in map {
        let p = join(&path, k);
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                e.push(p, format!("expected a string, got {}", kind(other)));
                continue;
            }
        };
        if awc::http::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
            e.push(p, "is not a valid header name");
        } else if awc::http::header::HeaderValue::from_str(&value).is_err() {
            e.push(p, "is not a valid header value");
        } else {
            out.push((k.clone(), value));
        }
    }
    Some(out)
}

fn check_allowed(list: &Allowlist, url: &Url, path: &str, e: &mut FieldErrors) {
    if let Err(why) = list.check_blocking(url) {
        e.push(path, why);
    }
}
