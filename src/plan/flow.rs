//! The `flow` of a load task (DESIGN §11), given instead of its `targets`: the steps each
//! virtual user runs per iteration, the `before` steps run once per node, the `data` sources
//! and `cookies`.
//!
//! ```yaml
//! data:
//!   users: {file: users.csv, order: unique}
//! flow:
//!   - name: login
//!     request: {method: POST, url: "http://127.0.0.1:8089/login",
//!               body: {user: "{{ users.name }}"}}
//!     capture: {token: {json: "$.token"}}
//!     check: {status: 200}
//!   - think: 200ms
//!   - loop: 3
//!     steps:
//!       - request: {url: "http://127.0.0.1:8089/items/{{ iteration }}",
//!                   headers: {authorization: "Bearer {{ token }}"}}
//! ```
//!
//! Everything is checked here, each problem with its key path: templates (syntax, and every
//! variable they name defined by then: an earlier step's capture, a data source and its
//! column, `vu`, `iteration`, `node`, `item` inside a `loop: {over}`), JSONPaths, regular
//! expressions, sizes. A request's scheme, host and port are literal: the connection and the
//! allowlist check are fixed when the plan is submitted. A step's checks see its own captures.
//! `before` steps run for no virtual user: they see `node` and their own earlier captures.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::data::{Declared, read_data};
use super::targets::read_targets;
use super::tls::{TargetDefaults, read_defaults};
use super::{listed, within_task_timeout};
use crate::engine::flow::template::{is_literal, variables};
use crate::engine::flow::{BUILTINS, Body, Flow, ITEM};
use crate::engine::flow::{JsonTemplate, LoopTimes, RequestStep, Step, Template};
use crate::engine::target::{ExpectedStatus, Target};
use crate::settings::LoadSettings;
use crate::validate::{FieldErrors, FromValue, Obj, describe, join, kind, read_list};

/// The most request steps a flow (or its `before`) may hold, loops' and groups' included.
pub const MAX_REQUEST_STEPS: usize = 100;
/// How deep loops and groups may nest.
pub const MAX_DEPTH: usize = 8;
/// The most times a loop may run (its count, or the length of its list).
pub const MAX_LOOP_COUNT: u32 = 10_000;
/// The most steps one list (a flow, `before`, a loop's or a group's `steps`) may hold.
pub const MAX_LIST_STEPS: usize = 1_000;
/// The longest name of a step or a group (names label statistics).
pub const MAX_NAME_CHARS: usize = 200;

/// The keys that only a flow takes.
const FLOW_ONLY: [&str; 3] = ["before", "data", "cookies"];
const STEP_KINDS: [&str; 4] = ["request", "think", "loop", "group"];
const CAPTURE_KINDS: [&str; 4] = ["json", "regex", "header", "status"];
const LIST_EXAMPLE: &str = "[{request: {url: \"http://127.0.0.1:8089/\"}}]";

/// What a load task sends: its `targets`, or its `flow`.
#[derive(Debug, Clone, PartialEq)]
pub enum Requests {
    Targets(Vec<Target>),
    Flow(Box<Flow>),
}

/// Reads `flow` when `o` gives one, else `targets` (whose absence is the usual error);
/// `before`, `data` and `cookies` without a flow are errors.
pub fn read_requests(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
    defaults: &TargetDefaults,
    base: &Path,
    e: &mut FieldErrors,
) -> Option<Requests> {
    if o.raw("flow").is_some() {
        return read_flow(o, settings, defaults, base, e).map(|f| Requests::Flow(Box::new(f)));
    }
    for key in FLOW_ONLY {
        if o.raw(key).is_some() {
            e.push(
                o.key_path(key),
                "applies to a flow only: give flow instead of targets",
            );
        }
    }
    read_targets(o, settings, defaults, e).map(Requests::Targets)
}

/// Reads `flow`, `before`, `data` and `cookies` of `o` (a load task's parameters); data files
/// are read from `base` when relative. `targets` beside `flow` is an error.
pub fn read_flow(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
    defaults: &TargetDefaults,
    base: &Path,
    e: &mut FieldErrors,
) -> Option<Flow> {
    let start = e.0.len();
    if o.raw("targets").is_some() {
        e.push(
            o.key_path("targets"),
            "cannot be given with flow: a task sends either its targets or its flow",
        );
    }
    let declared = read_data(o, base, e);
    let cookies: bool = o.or("cookies", true, e);
    let mut reader = Reader {
        settings,
        defaults,
        data: &declared,
        captures: BTreeSet::new(),
        items: 0,
        in_before: true,
        requests: 0,
    };
    let before = match o.raw("before") {
        None => Some(Vec::new()),
        Some(_) => reader.read_list(o, "before", 0, e),
    };
    reader.check_requests(&o.key_path("before"), e);
    reader.in_before = false;
    reader.requests = 0;
    let steps = reader.read_list(o, "flow", 0, e);
    reader.check_requests(&o.key_path("flow"), e);
    if e.0.len() != start {
        return None;
    }
    Some(Flow {
        steps: steps?,
        before: before?,
        data: declared
            .into_iter()
            .map(|d| d.source)
            .collect::<Option<_>>()?,
        cookies,
    })
}

/// Reads steps in order, knowing which variables are defined at each.
struct Reader<'a> {
    settings: &'a LoadSettings,
    defaults: &'a TargetDefaults,
    data: &'a [Declared],
    /// Every capture of the steps read so far (`before`'s included).
    captures: BTreeSet<String>,
    /// How many `loop: {over}` the step being read is inside.
    items: usize,
    in_before: bool,
    /// Request steps read in the current list (`before` or `flow`).
    requests: usize,
}

/// `Some` of every item when all are.
fn all<T>(items: Vec<Option<T>>) -> Option<Vec<T>> {
    items.into_iter().collect()
}

impl Reader<'_> {
    /// The steps listed at `key` of `o`, at nesting `depth`.
    fn read_list(
        &mut self,
        o: &mut Obj<'_>,
        key: &'static str,
        depth: usize,
        e: &mut FieldErrors,
    ) -> Option<Vec<Step>> {
        let path = o.key_path(key);
        let items = read_list(o, key, "step", LIST_EXAMPLE, MAX_LIST_STEPS, e)?;
        let steps = items
            .iter()
            .enumerate()
            .map(|(i, v)| self.read_step(v, &format!("{path}[{i}]"), depth, e))
            .collect();
        all(steps)
    }

    fn check_requests(&self, path: &str, e: &mut FieldErrors) {
        if self.requests > MAX_REQUEST_STEPS {
            e.push(
                path,
                format!(
                    "holds {} request steps (loops' and groups' included); at most {MAX_REQUEST_STEPS}",
                    self.requests
                ),
            );
        }
    }

    fn read_step(
        &mut self,
        v: &Value,
        path: &str,
        depth: usize,
        e: &mut FieldErrors,
    ) -> Option<Step> {
        let mut o = Obj::new(v, path, e)?;
        let given: Vec<&str> = STEP_KINDS
            .into_iter()
            .filter(|k| o.raw(k).is_some())
            .collect();
        let step = match given.as_slice() {
            ["request"] => self
                .read_request(&mut o, e)
                .map(|r| Step::Request(Box::new(r))),
            ["think"] => self.read_think(&mut o, e),
            ["loop"] => self.read_loop(&mut o, depth, e),
            ["group"] => self.read_group(&mut o, depth, e),
            [] => {
                e.push(
                    path,
                    "expected a step: a mapping with one of request, think, loop or group",
                );
                None
            }
            many => {
                e.push(
                    path,
                    format!(
                        "a step is one of request, think, loop or group; this one has {}",
                        listed(many, "and")
                    ),
                );
                None
            }
        };
        o.finish(e);
        step
    }

    fn read_think(&mut self, o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Step> {
        let d: Duration = o.opt("think", e)?;
        within_task_timeout(&o.key_path("think"), d, self.settings, e).then_some(Step::Think(d))
    }

    fn read_loop(&mut self, o: &mut Obj<'_>, depth: usize, e: &mut FieldErrors) -> Option<Step> {
        let times = read_times(o.raw("loop")?, &o.key_path("loop"), e);
        let over = matches!(times, Some(LoopTimes::Over(_)));
        let steps = self.nested(o, depth, over, e);
        Some(Step::Loop {
            times: times?,
            steps: steps?,
        })
    }

    fn read_group(&mut self, o: &mut Obj<'_>, depth: usize, e: &mut FieldErrors) -> Option<Step> {
        let name = read_step_name(o, "group", e);
        let steps = self.nested(o, depth, false, e);
        Some(Step::Group {
            name: name?,
            steps: steps?,
        })
    }

    /// The `steps` of a loop or group at `depth`; `over`: inside them `item` is defined.
    fn nested(
        &mut self,
        o: &mut Obj<'_>,
        depth: usize,
        over: bool,
        e: &mut FieldErrors,
    ) -> Option<Vec<Step>> {
        if depth >= MAX_DEPTH {
            e.push(
                o.path(),
                format!(
                    "nests loops and groups {} deep; at most {MAX_DEPTH}",
                    depth + 1
                ),
            );
            o.raw("steps");
            return None;
        }
        self.items += usize::from(over);
        let steps = self.read_list(o, "steps", depth + 1, e);
        self.items -= usize::from(over);
        steps
    }

    fn read_request(&mut self, o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<RequestStep> {
        let start = e.0.len();
        let name = match o.raw("name") {
            Some(_) => read_step_name(o, "name", e),
            None => None,
        };
        let mut r = Obj::new(o.raw("request")?, &o.key_path("request"), e)?;
        let (url, path) = self.read_url(&mut r, e);
        let method = r
            .or::<String>("method", "GET".into(), e)
            .to_ascii_uppercase();
        if http::Method::from_bytes(method.as_bytes()).is_err() {
            e.push(
                r.key_path("method"),
                format!("{method:?} is not an HTTP method"),
            );
        }
        let mut headers = self.read_headers(&mut r, e);
        let body = self.read_body(&mut r, &mut headers, e);
        let timeout: Duration = r.or("timeout", self.settings.default_timeout, e);
        if timeout.is_zero() {
            e.push(r.key_path("timeout"), "must be greater than 0");
        }
        within_task_timeout(&r.key_path("timeout"), timeout, self.settings, e);
        let follow_redirects: bool = r.or("follow_redirects", false, e);
        let own = read_defaults(&mut r, self.defaults, e);
        r.finish(e);
        let captures = self.read_captures(o, e);
        let checks = self.read_checks(o, e);
        self.requests += 1;
        if e.0.len() != start {
            return None;
        }
        let path = path?;
        let name = name.unwrap_or_else(|| {
            let bare = path.source.split('?').next().unwrap_or_default();
            format!("{method} {bare}")
        });
        let target = Target {
            name,
            url: url?,
            method,
            headers: Vec::new(),
            body: None,
            weight: 1,
            timeout,
            // Any status: the step's checks decide.
            expected_status: ExpectedStatus::Codes((100..600).collect()),
            expected_response_time: None,
            follow_redirects,
            tls: own.tls,
            http_version: own.http_version,
        };
        Some(RequestStep {
            target,
            path,
            headers,
            body,
            captures,
            checks,
        })
    }

    /// `url`: a literal origin (checked against the allowlist) and a templated path.
    fn read_url(
        &mut self,
        r: &mut Obj<'_>,
        e: &mut FieldErrors,
    ) -> (Option<Url>, Option<Template>) {
        let at = r.key_path("url");
        let Some(text) = r.req::<String>("url", e) else {
            return (None, None);
        };
        let (origin, rest) = match split_url(&text) {
            Ok(parts) => parts,
            Err(why) => {
                e.push(at, why);
                return (None, None);
            }
        };
        let url = match Url::parse(&format!("{origin}/")) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(u) => {
                e.push(
                    at.clone(),
                    format!("unsupported scheme {:?}; use http or https", u.scheme()),
                );
                None
            }
            Err(err) => {
                e.push(at.clone(), format!("{text:?} is not a valid URL: {err}"));
                None
            }
        };
        if let Some(u) = &url
            && let Err(why) = self.settings.allowed_targets.check_blocking(u)
        {
            e.push(at.clone(), why);
        }
        let path = match rest {
            "" => "/".to_string(),
            p if p.starts_with('/') => p.to_string(),
            p => format!("/{p}"),
        };
        (url, Some(self.template(path, &at, e)))
    }

    /// `headers`: names to templated values.
    fn read_headers(&mut self, r: &mut Obj<'_>, e: &mut FieldErrors) -> Vec<(String, Template)> {
        let path = r.key_path("headers");
        let Some(map) = r.map("headers", "header names to values", e) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, v) in map {
            let p = join(&path, name);
            let Some(value) = scalar(v, &p, e) else {
                continue;
            };
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                e.push(p, "is not a valid header name");
            } else if is_literal(&value) && http::HeaderValue::from_str(&value).is_err() {
                e.push(p, "is not a valid header value");
            } else {
                out.push((name.clone(), self.template(value, &p, e)));
            }
        }
        out
    }

    /// `body` (a string, or a mapping or list sent as JSON) or `form` (sent URL-encoded), with
    /// a content type unless the headers name one.
    fn read_body(
        &mut self,
        r: &mut Obj<'_>,
        headers: &mut Vec<(String, Template)>,
        e: &mut FieldErrors,
    ) -> Option<Body> {
        let (body_path, form_path) = (r.key_path("body"), r.key_path("form"));
        let (body, content_type) = match (r.raw("body"), r.raw("form")) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                e.push(
                    form_path,
                    "cannot be given with body: a request sends one body",
                );
                return None;
            }
            (Some(Value::String(s)), None) => {
                (Body::Text(self.template(s.clone(), &body_path, e)), None)
            }
            (Some(v @ (Value::Object(_) | Value::Array(_))), None) => (
                Body::Json(self.json_template(v, &body_path, e)),
                Some("application/json"),
            ),
            (Some(other), None) => {
                e.push(
                    body_path,
                    format!(
                        "expected a string, a mapping or a list, got {}",
                        describe(other)
                    ),
                );
                return None;
            }
            (None, Some(Value::Object(map))) => {
                let mut fields = Vec::new();
                for (k, v) in map {
                    let p = join(&form_path, k);
                    if let Some(value) = scalar(v, &p, e) {
                        fields.push((k.clone(), self.template(value, &p, e)));
                    }
                }
                (
                    Body::Form(fields),
                    Some("application/x-www-form-urlencoded"),
                )
            }
            (None, Some(other)) => {
                e.push(
                    form_path,
                    format!(
                        "expected a mapping of field names to values, got {}",
                        kind(other)
                    ),
                );
                return None;
            }
        };
        let named = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if let (Some(ct), false) = (content_type, named) {
            headers.push(("content-type".into(), Template::new(ct)));
        }
        Some(body)
    }

    fn json_template(&mut self, v: &Value, path: &str, e: &mut FieldErrors) -> JsonTemplate {
        match v {
            Value::Null => JsonTemplate::Null,
            Value::Bool(b) => JsonTemplate::Bool(*b),
            Value::Number(n) => JsonTemplate::Number(n.to_string()),
            Value::String(s) => JsonTemplate::String(self.template(s.clone(), path, e)),
            Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.json_template(item, &format!("{path}[{i}]"), e))
                    .collect(),
            ),
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, item)| (k.clone(), self.json_template(item, &join(path, k), e)))
                    .collect(),
            ),
        }
    }

    /// `source` as a template, its syntax and every variable it names checked.
    fn template(&self, source: String, path: &str, e: &mut FieldErrors) -> Template {
        match variables(&source) {
            Err(why) => e.push(path, format!("is not a valid template: {why}")),
            Ok(vars) => {
                for v in &vars {
                    if let Err(why) = self.known(v) {
                        e.push(path, why);
                    }
                }
            }
        }
        Template::new(source)
    }

    /// Whether the variable `var` (`token`, `users.name`) is defined here.
    fn known(&self, var: &str) -> Result<(), String> {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or(var);
        let attr = parts.next();
        if self.captures.contains(root) {
            return Ok(());
        }
        if BUILTINS.contains(&root) {
            if self.in_before && root != "node" {
                return Err(format!(
                    "names {root}, which before steps do not have (they run once per node, for no virtual user): they have node and their earlier captures"
                ));
            }
            return Ok(());
        }
        if root == ITEM {
            if self.items > 0 {
                return Ok(());
            }
            return Err(format!(
                "names {ITEM}, which only the steps of a loop over a list (loop: {{over: [...]}}) have"
            ));
        }
        if let Some(d) = self.data.iter().find(|d| d.name == root) {
            if self.in_before {
                return Err(format!(
                    "names the data source {root}, which before steps do not read (they run once per node, for no virtual user)"
                ));
            }
            if let (Some(col), Some(source)) = (attr, &d.source)
                && source.column(col).is_none()
            {
                return Err(format!(
                    "names {root}.{col}, but data source {root} has no column {col:?} (its columns: {})",
                    source.columns.join(", ")
                ));
            }
            return Ok(());
        }
        Err(format!(
            "names the variable {root:?}, which nothing defines here: no earlier step captures it, and it is no data source nor one of {}",
            BUILTINS.join(", ")
        ))
    }
}

/// Splits a URL into its origin (`https://host:port`, literal) and the rest (templated).
fn split_url(text: &str) -> Result<(&str, &str), String> {
    let literal_origin = || {
        "the scheme, host and port must be literal, without {{ }}: the connection and the allowlist check are fixed when the plan is submitted (template the path, query, headers and body)".to_string()
    };
    let Some(scheme_end) = text.find("://") else {
        return Err(if is_literal(text) {
            format!("{text:?} is not a valid URL: expected http://host/path or https://host/path")
        } else {
            literal_origin()
        });
    };
    let authority = &text[scheme_end + 3..];
    let end = scheme_end + 3 + authority.find(['/', '?', '#']).unwrap_or(authority.len());
    let (origin, rest) = text.split_at(end);
    if !is_literal(origin) {
        return Err(literal_origin());
    }
    Ok((origin, rest))
}

/// A step's `name` or a group's: a non-empty string of at most [`MAX_NAME_CHARS`].
fn read_step_name(o: &mut Obj<'_>, key: &'static str, e: &mut FieldErrors) -> Option<String> {
    let name: String = o.req(key, e)?;
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS {
        e.push(
            o.key_path(key),
            format!("must be a name of 1 to {MAX_NAME_CHARS} characters, got {chars}"),
        );
        return None;
    }
    Some(name)
}

/// A loop's `loop`: a count, or `{over: [...]}`.
fn read_times(v: &Value, path: &str, e: &mut FieldErrors) -> Option<LoopTimes> {
    match v {
        Value::Number(_) | Value::String(_) => {
            let n = u32::from_value(v, path, e)?;
            if n == 0 || n > MAX_LOOP_COUNT {
                e.push(path, format!("must be in 1..={MAX_LOOP_COUNT}, got {n}"));
                return None;
            }
            Some(LoopTimes::Count(n))
        }
        Value::Object(_) => {
            let mut o = Obj::new(v, path, e)?;
            let over_path = o.key_path("over");
            let items = read_list(
                &mut o,
                "over",
                "item",
                "[a, b, c]",
                MAX_LOOP_COUNT as usize,
                e,
            );
            o.finish(e);
            let items = items?
                .iter()
                .enumerate()
                .map(|(i, item)| scalar(item, &format!("{over_path}[{i}]"), e))
                .collect();
            all(items).map(LoopTimes::Over)
        }
        other => {
            e.push(
                path,
                format!(
                    "expected a count (loop: 3) or a list (loop: {{over: [a, b]}}), got {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

/// A string, or a number or boolean as its text.
fn scalar(v: &Value, path: &str, e: &mut FieldErrors) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        other => {
            e.push(path, format!("expected a string, got {}", describe(other)));
            None
        }
    }
}

mod response;
#[cfg(test)]
mod tests;
