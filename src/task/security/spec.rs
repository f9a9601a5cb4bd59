//! Reads the `parameters` of a `security_test` task, naming every problem by its key path.
//!
//! ```yaml
//! - type: security_test
//!   parameters:
//!     target: http://127.0.0.1:8089/
//!     endpoints:
//!       - {path: /search, params: [q]}
//!       - {path: /item, method: GET, params: [{name: id, value: "7"}]}
//!       - {path: /transfer, method: POST, params: [to, amount]}
//!     scan_types: [xss, sql_injection, csrf, headers, open_redirect]   # default: all
//!     depth: quick            # or deep (adds contexts and time-based SQL injection)
//!     rate_limit_rps: 10      # default 10
//!     timeout: 10s            # per request; default load_generation.default_timeout
//!     fail_on: high           # a finding this severe or worse fails the task; or none
//!     thresholds: ["findings{severity=medium} < 3", "error_rate < 0.05"]
//! ```

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::{DEFAULT_PARAM_VALUE, Depth, Endpoint, Param, ScanSpec, ScanType, Severity};
use crate::plan::thresholds::read_thresholds;
use crate::settings::LoadSettings;
use crate::stats::thresholds::{Filter, Scope, Threshold};
use crate::validate::{FieldErrors, Obj, describe, kind, read_list};

/// The highest rate a scan may ask for: a scan probes, it does not load.
pub const MAX_RATE_LIMIT_RPS: f64 = 1000.0;
pub const DEFAULT_RATE_LIMIT_RPS: f64 = 10.0;
/// A finding this severe or worse fails the task unless the plan says otherwise.
pub const DEFAULT_FAIL_ON: Severity = Severity::High;
/// The most endpoints and parameters per endpoint a scan takes.
pub const MAX_ENDPOINTS: usize = 200;
pub const MAX_PARAMS: usize = 50;

/// Validates a whole `parameters` mapping on its own (path `parameters`).
pub fn parse_scan_spec(v: &Value, settings: &LoadSettings) -> Result<ScanSpec, FieldErrors> {
    let mut e = FieldErrors::default();
    let spec = read_scan_spec(v, "parameters", settings, &mut e);
    match spec {
        Some(spec) if e.is_empty() => Ok(spec),
        _ => Err(e),
    }
}

pub fn read_scan_spec(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<ScanSpec> {
    let mut o = Obj::new(v, path, e)?;
    let before = e.0.len();
    let target = o.req::<String>("target", e).and_then(|s| {
        let p = o.key_path("target");
        match Url::parse(&s) {
            Ok(u) if u.scheme() == "http" => {
                if let Err(why) = settings.allowed_targets.check_blocking(&u) {
                    e.push(p, why);
                    None
                } else {
                    Some(u)
                }
            }
            Ok(u) if u.scheme() == "https" => {
                e.push(
                    p,
                    "security_test scans speak plain http only; https targets are for \
                     load_test, performance_test and stress_test",
                );
                None
            }
            Ok(u) => {
                e.push(p, format!("unsupported scheme {:?}; use http", u.scheme()));
                None
            }
            Err(err) => {
                e.push(p, format!("{s:?} is not a valid URL: {err}"));
                None
            }
        }
    });
    let endpoints = read_endpoints(&mut o, e);
    let scan_types = read_scan_types(&mut o, e);
    let depth = match o.opt::<crate::validate::Keyword>("depth", e).as_deref() {
        None | Some("quick") => Depth::Quick,
        Some("deep") => Depth::Deep,
        Some(other) => {
            e.push(
                o.key_path("depth"),
                format!("unknown depth {other:?}; expected quick or deep"),
            );
            Depth::Quick
        }
    };
    let rate_limit_rps: f64 = o.or("rate_limit_rps", DEFAULT_RATE_LIMIT_RPS, e);
    if !(rate_limit_rps > 0.0 && rate_limit_rps <= MAX_RATE_LIMIT_RPS) {
        e.push(
            o.key_path("rate_limit_rps"),
            format!("must be more than 0 and at most {MAX_RATE_LIMIT_RPS}, got {rate_limit_rps}"),
        );
    }
    let timeout: Duration = o.or("timeout", settings.default_timeout, e);
    if timeout.is_zero() {
        e.push(o.key_path("timeout"), "must be greater than 0");
    }
    crate::plan::within_task_timeout(&o.key_path("timeout"), timeout, settings, e);
    let fail_on = read_fail_on(&mut o, e);
    let thresholds = read_scan_thresholds(&mut o, settings, scan_types.as_deref(), e);
    o.finish(e);
    if e.0.len() != before {
        return None;
    }
    Some(ScanSpec {
        target: target?,
        endpoints: endpoints?,
        scan_types: scan_types?,
        depth,
        rate_limit_rps,
        timeout,
        fail_on,
        thresholds,
    })
}

/// `fail_on`: `critical`, `high` (the default), `medium`, `low` or `none`.
fn read_fail_on(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Severity> {
    match o.opt::<crate::validate::Keyword>("fail_on", e).as_deref() {
        None => Some(DEFAULT_FAIL_ON),
        Some("none") => None,
        Some(name) => Severity::from_name(name).or_else(|| {
            e.push(
                o.key_path("fail_on"),
                format!("unknown severity {name:?}; expected critical, high, medium, low or none"),
            );
            None
        }),
    }
}

/// A scan's `thresholds` over its counters: a filter names a known severity, or a scan type
/// the scan runs; judged once at its end, so none aborts.
fn read_scan_thresholds(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
    scan_types: Option<&[ScanType]>,
    e: &mut FieldErrors,
) -> Vec<Threshold> {
    let check = |f: &Filter| match f {
        Filter::Severity(s) if Severity::from_name(s).is_none() => Err(format!(
            "unknown severity {s:?}; expected critical, high, medium or low"
        )),
        Filter::ScanType(t) => match (ScanType::from_name(t), scan_types) {
            (None, _) => {
                let known: Vec<&str> = ScanType::ALL.iter().map(|t| t.name()).collect();
                Err(format!(
                    "unknown scan type {t:?}; known: {}",
                    known.join(", ")
                ))
            }
            (Some(t), Some(run)) if !run.contains(&t) => Err(format!(
                "this scan does not run {t}; its scan_types: {}",
                run.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    };
    let thresholds = read_thresholds(o, settings, Scope::Scan, &check, e);
    if thresholds.iter().any(|t| t.abort_on_fail) {
        e.push(
            o.key_path("thresholds"),
            "a security_test's thresholds are judged once, at its end: abort_on_fail does not apply",
        );
    }
    thresholds
}

fn read_scan_types(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Vec<ScanType>> {
    let path = o.key_path("scan_types");
    let items = match o.raw("scan_types") {
        None => return Some(ScanType::ALL.to_vec()),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => {
            e.push(
                path,
                "must list at least one scan type (or be left out for all)",
            );
            return None;
        }
        Some(other) => {
            e.push(
                path,
                format!("expected a list of scan types, got {}", kind(other)),
            );
            return None;
        }
    };
    let known: Vec<&str> = ScanType::ALL.iter().map(|t| t.name()).collect();
    let before = e.0.len();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match item {
            Value::String(s) => {
                match <crate::validate::Keyword as crate::validate::FromValue>::from_value(
                    item, &p, e,
                )
                .and_then(|name: crate::validate::Keyword| ScanType::from_name(&name))
                {
                    Some(t) if out.contains(&t) => e.push(p, format!("{s:?} is listed twice")),
                    Some(t) => out.push(t),
                    None => e.push(
                        p,
                        format!("unknown scan type {s:?}; known: {}", known.join(", ")),
                    ),
                }
            }
            other => e.push(
                p,
                format!("expected a scan type name, got {}", describe(other)),
            ),
        }
    }
    (e.0.len() == before).then_some(out)
}

fn read_endpoints(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Vec<Endpoint>> {
    let path = o.key_path("endpoints");
    let items = read_list(
        o,
        "endpoints",
        "endpoint",
        "[{path: /search, method: GET, params: [q]}]",
        MAX_ENDPOINTS,
        e,
    )?;
    let read: Vec<Option<Endpoint>> = items
        .iter()
        .enumerate()
        .map(|(i, v)| read_endpoint(v, &format!("{path}[{i}]"), e))
        .collect();
    read.into_iter().collect()
}

fn read_endpoint(v: &Value, path: &str, e: &mut FieldErrors) -> Option<Endpoint> {
    // A bare string is a path probed with GET and no parameters.
    let owned;
    let v = match v {
        Value::String(s) => {
            owned = serde_json::json!({ "path": s });
            &owned
        }
        other => other,
    };
    let mut o = Obj::new(v, path, e)?;
    let before = e.0.len();
    let p: Option<String> = o.req("path", e);
    if let Some(p) = &p
        && !p.starts_with('/')
    {
        e.push(
            o.key_path("path"),
            format!("{p:?} must start with '/' (a path of the target, not a URL)"),
        );
    }
    let method = o
        .or::<String>("method", "GET".into(), e)
        .to_ascii_uppercase();
    if awc::http::Method::from_bytes(method.as_bytes()).is_err() {
        e.push(
            o.key_path("method"),
            format!("{method:?} is not an HTTP method"),
        );
    }
    let params_path = o.key_path("params");
    let params = match o.raw("params") {
        None => Some(Vec::new()),
        Some(Value::Array(items)) if items.len() > MAX_PARAMS => {
            e.push(
                &params_path,
                format!("lists {} parameters; at most {MAX_PARAMS}", items.len()),
            );
            None
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| read_param(v, &format!("{params_path}[{i}]"), e))
            .collect::<Vec<_>>()
            .into_iter()
            .collect(),
        Some(other) => {
            e.push(
                &params_path,
                format!("expected a list of parameter names, got {}", kind(other)),
            );
            None
        }
    };
    if let Some(ps) = &params {
        for (i, p) in ps.iter().enumerate() {
            if ps[..i].iter().any(|q| q.name == p.name) {
                e.push(
                    format!("{params_path}[{i}]"),
                    format!("parameter {:?} is listed twice", p.name),
                );
            }
        }
    }
    o.finish(e);
    if e.0.len() != before {
        return None;
    }
    Some(Endpoint {
        path: p?,
        method,
        params: params?,
    })
}

/// A parameter: `"q"`, or `{name: id, value: "7"}` for a harmless value other than `1`.
fn read_param(v: &Value, path: &str, e: &mut FieldErrors) -> Option<Param> {
    let (name, value) = match v {
        Value::String(s) => (Some(s.clone()), DEFAULT_PARAM_VALUE.to_string()),
        Value::Object(_) => {
            let mut o = Obj::new(v, path, e)?;
            let name: Option<String> = o.req("name", e);
            let value: String = o.or("value", DEFAULT_PARAM_VALUE.to_string(), e);
            o.finish(e);
            (name, value)
        }
        other => {
            e.push(
                path,
                format!(
                    "expected a parameter name or {{name, value}}, got {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    match name {
        Some(n) if n.trim().is_empty() => {
            e.push(path, "a parameter name must not be empty");
            None
        }
        Some(name) => Some(Param { name, value }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;

    fn settings() -> LoadSettings {
        Settings::defaults().load_generation
    }

    fn errors(v: Value) -> Vec<String> {
        parse_scan_spec(&v, &settings())
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_full_spec_reads_with_defaults() {
        let spec = parse_scan_spec(
            &json!({
                "target": "http://127.0.0.1:8089/",
                "endpoints": [
                    "/",
                    {"path": "/search", "params": ["q"]},
                    {"path": "/transfer", "method": "post", "params": ["to", {"name": "amount", "value": "5"}]}
                ]
            }),
            &settings(),
        )
        .unwrap();
        assert_eq!(spec.scan_types, ScanType::ALL.to_vec());
        assert_eq!(spec.depth, Depth::Quick);
        assert_eq!(spec.rate_limit_rps, DEFAULT_RATE_LIMIT_RPS);
        assert_eq!(spec.endpoints[0].method, "GET");
        assert!(spec.endpoints[0].params.is_empty());
        assert_eq!(spec.endpoints[2].method, "POST");
        assert_eq!(spec.endpoints[2].params[1].value, "5");
        assert_eq!(spec.endpoints[2].params[0].value, DEFAULT_PARAM_VALUE);
    }

    #[test]
    fn every_mistake_is_named() {
        let got = errors(json!({
            "target": "http://10.255.255.1/",
            "endpoints": [{"path": "search", "method": "NO PE", "params": ["q", "q", 3], "x": 1}],
            "scan_types": ["xss", "foo"],
            "depth": "deeper",
            "rate_limit_rps": 0,
            "timeout": "soon",
            "extra": true
        }));
        let expect = [
            "parameters.target: address 10.255.255.1 port 80 is not in load_generation.allowed_targets",
            "parameters.endpoints[0].path: \"search\" must start with '/'",
            "parameters.endpoints[0].method: \"NO PE\" is not an HTTP method",
            "parameters.endpoints[0].params[2]: expected a parameter name or {name, value}, got 3",
            "parameters.endpoints[0].x: unknown key",
            "parameters.scan_types[1]: unknown scan type \"foo\"; known: xss, sql_injection, csrf, headers, open_redirect",
            "parameters.depth: unknown depth \"deeper\"; expected quick or deep",
            "parameters.rate_limit_rps: must be more than 0 and at most 1000, got 0",
            "parameters.timeout: expected a duration",
            "parameters.extra: unknown key",
        ];
        for want in expect {
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "missing {want:?} in {got:#?}"
            );
        }
    }

    #[test]
    fn duplicates_and_empty_lists_are_refused() {
        let got = errors(json!({
            "target": "http://127.0.0.1:1/",
            "endpoints": [{"path": "/a", "params": ["q", "q"]}],
            "scan_types": ["xss", "xss"]
        }));
        assert!(
            got.iter().any(|g| g
                .starts_with("parameters.endpoints[0].params[1]: parameter \"q\" is listed twice")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|g| g.starts_with("parameters.scan_types[1]: \"xss\" is listed twice")),
            "{got:?}"
        );
        let got = errors(json!({"target": "ftp://127.0.0.1/", "endpoints": [], "scan_types": []}));
        assert_eq!(got.len(), 3, "{got:?}");
        let got = errors(json!({}));
        assert_eq!(
            got,
            [
                "parameters.target: is required",
                "parameters.endpoints: is required: a list like [{path: /search, method: GET, params: [q]}]"
            ]
        );
    }
}
