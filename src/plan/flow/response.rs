//! The `capture` and `check` of a flow's request step: what a response gives the next steps,
//! and what it must be.

use std::time::Duration;

use serde_json::Value;

use super::{CAPTURE_KINDS, Reader};
use crate::engine::flow::capture::{json_path, regex};
use crate::engine::flow::{Capture, CaptureFrom, Check, Template};
use crate::plan::data::check_name;
use crate::plan::{listed, within_task_timeout};
use crate::validate::{FieldErrors, FromValue, Obj, describe, join, kind};

impl Reader<'_> {
    /// `capture: {VAR: {json | regex | header | status}}`; each VAR is defined from here on.
    pub(super) fn read_captures(&mut self, o: &mut Obj<'_>, e: &mut FieldErrors) -> Vec<Capture> {
        let path = o.key_path("capture");
        let Some(map) = o.map(
            "capture",
            "variable names to captures, like {token: {json: \"$.token\"}}",
            e,
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (var, spec) in map {
            let p = join(&path, var);
            if let Err(why) = check_name(var) {
                e.push(p.clone(), why);
            } else if self.data.iter().any(|d| d.name == *var) {
                e.push(
                    p.clone(),
                    format!("{var:?} is the name of a data source; choose another"),
                );
            }
            self.captures.insert(var.clone());
            if let Some(from) = read_capture_from(spec, &p, e) {
                out.push(Capture {
                    var: var.clone(),
                    from,
                });
            }
        }
        out
    }

    /// `check: {status, json, regex, contains, max_ms}`.
    pub(super) fn read_checks(&mut self, o: &mut Obj<'_>, e: &mut FieldErrors) -> Vec<Check> {
        let Some(v) = o.raw("check") else {
            return Vec::new();
        };
        let Some(mut c) = Obj::new(v, &o.key_path("check"), e) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(codes) = read_status(&mut c, e) {
            out.push(Check::Status(codes));
        }
        for (p, path, expected) in self.expectations(&mut c, "json", e) {
            match json_path(&p) {
                Ok(_) => out.push(Check::Json { path: p, expected }),
                Err(why) => e.push(path, why),
            }
        }
        for (pattern, path, expected) in self.expectations(&mut c, "regex", e) {
            match regex(&pattern) {
                Ok(_) => out.push(Check::Regex { pattern, expected }),
                Err(why) => e.push(path, why),
            }
        }
        if let Some(text) = c.opt::<String>("contains", e) {
            let t = self.template(text, &c.key_path("contains"), e);
            out.push(Check::Contains(t));
        }
        if let Some(ms) = c.opt::<u64>("max_ms", e) {
            let max = Duration::from_millis(ms);
            if ms == 0 {
                e.push(c.key_path("max_ms"), "must be at least 1");
            } else if within_task_timeout(&c.key_path("max_ms"), max, self.settings, e) {
                out.push(Check::MaxTime(max));
            }
        }
        c.finish(e);
        out
    }

    /// The mapping at `key` of a check: each key with its path and its expected value (a
    /// template; a number or a boolean by its JSON text).
    fn expectations(
        &mut self,
        c: &mut Obj<'_>,
        key: &'static str,
        e: &mut FieldErrors,
    ) -> Vec<(String, String, Template)> {
        let path = c.key_path(key);
        let map = match c.raw(key) {
            None => return Vec::new(),
            Some(Value::Object(map)) if !map.is_empty() => map,
            Some(other) => {
                e.push(
                    path,
                    format!(
                        "expected a mapping of {} to expected values, got {}",
                        if key == "json" {
                            "JSONPaths"
                        } else {
                            "patterns"
                        },
                        describe(other)
                    ),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let p = join(&path, k);
            let source = match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(_) | Value::Bool(_) | Value::Null => Some(v.to_string()),
                other => {
                    e.push(
                        p.clone(),
                        format!(
                            "expected a string, a number or a boolean, got {}",
                            kind(other)
                        ),
                    );
                    None
                }
            };
            if let Some(source) = source {
                let t = self.template(source, &p, e);
                out.push((k.clone(), p, t));
            }
        }
        out
    }
}

/// One capture's source: exactly one of `json`, `regex`, `header`, `status: true`.
fn read_capture_from(v: &Value, path: &str, e: &mut FieldErrors) -> Option<CaptureFrom> {
    let mut o = Obj::new(v, path, e)?;
    let given: Vec<&str> = CAPTURE_KINDS
        .into_iter()
        .filter(|k| o.raw(k).is_some())
        .collect();
    let from = match given.as_slice() {
        ["json"] => valid(&mut o, "json", |p| json_path(p).map(drop), e).map(CaptureFrom::Json),
        ["regex"] => valid(&mut o, "regex", |p| regex(p).map(drop), e).map(CaptureFrom::Regex),
        ["header"] => valid(&mut o, "header", header_name, e).map(CaptureFrom::Header),
        ["status"] => match o.req::<bool>("status", e) {
            Some(true) => Some(CaptureFrom::Status),
            Some(false) => {
                e.push(
                    o.key_path("status"),
                    "expected true (status: true captures the status code)",
                );
                None
            }
            None => None,
        },
        [] => {
            e.push(
                path,
                "expected one of json, regex, header or status, like {json: \"$.token\"}",
            );
            None
        }
        many => {
            e.push(
                path,
                format!("gives {}; a capture takes one of them", listed(many, "and")),
            );
            None
        }
    };
    o.finish(e);
    from
}

/// The string at `key`, if `check` passes it (else its complaint is reported).
fn valid(
    o: &mut Obj<'_>,
    key: &'static str,
    check: fn(&str) -> Result<(), String>,
    e: &mut FieldErrors,
) -> Option<String> {
    let text: String = o.req(key, e)?;
    match check(&text) {
        Ok(()) => Some(text),
        Err(why) => {
            e.push(o.key_path(key), why);
            None
        }
    }
}

fn header_name(name: &str) -> Result<(), String> {
    match http::HeaderName::from_bytes(name.as_bytes()) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{name:?} is not a valid header name")),
    }
}

/// `status: 200` or `[200, 201]`, each in 100..=599.
fn read_status(c: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Vec<u16>> {
    let v = c.raw("status")?;
    let p = c.key_path("status");
    let codes: Vec<u16> = match v {
        Value::Array(_) => FromValue::from_value(v, &p, e)?,
        single => vec![u16::from_value(single, &p, e)?],
    };
    if codes.is_empty() || !codes.iter().all(|c| (100..600).contains(c)) {
        e.push(p, "expected HTTP status codes between 100 and 599");
        return None;
    }
    Some(codes)
}
