//! The `thresholds` of a task: pass/fail criteria over its merged figures.

use std::time::Duration;

use serde_json::Value;

use super::within_task_timeout;
use crate::settings::LoadSettings;
use crate::stats::thresholds::{self, Filter, Scope, Threshold};
use crate::validate::{FieldErrors, Obj};

/// `thresholds`: strings (`"p99_ms < 200"`) or `{threshold, abort_on_fail?, delay_abort_eval?}`;
/// the task's `abort_on_fail` and `delay_abort_eval` are the defaults of each. `scope` is the
/// task kind's metrics, and `check` says whether a filter's value is one the task has (see
/// [`request_names`]).
pub fn read_thresholds(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
    scope: Scope,
    check: &dyn Fn(&Filter) -> Result<(), String>,
    e: &mut FieldErrors,
) -> Vec<Threshold> {
    let abort: bool = o.or("abort_on_fail", false, e);
    let delay: Duration = o.or("delay_abort_eval", Duration::ZERO, e);
    within_task_timeout(&o.key_path("delay_abort_eval"), delay, settings, e);
    let path = o.key_path("thresholds");
    let items = match o.raw("thresholds") {
        None => return Vec::new(),
        Some(Value::Array(items)) if items.len() <= 64 => items,
        Some(_) => {
            e.push(path, "must be a list of at most 64 thresholds");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let (expr, abort_on_fail, delay_abort_eval, expr_path) = match item {
            Value::String(s) => (s.clone(), abort, delay, item_path),
            Value::Object(_) => {
                let Some(mut t) = Obj::new(item, &item_path, e) else {
                    continue;
                };
                let expr: Option<String> = t.req("threshold", e);
                let a: bool = t.or("abort_on_fail", abort, e);
                let d: Duration = t.or("delay_abort_eval", delay, e);
                within_task_timeout(&t.key_path("delay_abort_eval"), d, settings, e);
                let expr_path = t.key_path("threshold");
                t.finish(e);
                let Some(expr) = expr else { continue };
                (expr, a, d, expr_path)
            }
            _ => {
                e.push(
                    item_path,
                    "must be a string like \"p99_ms < 200\" or {threshold, abort_on_fail, delay_abort_eval}",
                );
                continue;
            }
        };
        match thresholds::parse(&expr, scope) {
            Ok(p) => {
                if let Some(Err(why)) = p.filter.as_ref().map(check) {
                    e.push(expr_path, why);
                    continue;
                }
                out.push(Threshold {
                    expr: expr.trim().to_string(),
                    metric: p.metric,
                    filter: p.filter,
                    op: p.op,
                    bound: p.bound,
                    abort_on_fail,
                    delay_abort_eval,
                });
            }
            Err(why) => e.push(expr_path, why),
        }
    }
    out
}

/// A load task's filter check: a `{request=NAME}` must name one of `requests`, the task's
/// request names (not checked when they are unknown: its targets were wrong).
pub fn request_names<'a>(
    requests: Option<&'a [&'a str]>,
) -> impl Fn(&Filter) -> Result<(), String> + 'a {
    move |f| match (f, requests) {
        (Filter::Request(request), Some(names)) if !names.contains(&request.as_str()) => {
            Err(format!(
                "no request of this task is named {request:?}; its requests: {}",
                names.join(", ")
            ))
        }
        _ => Ok(()),
    }
}
