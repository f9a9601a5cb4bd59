//! The `stages` of a load shape: each a duration and the rate it moves to.

use std::time::Duration;

use serde_json::Value;

use super::{within_max_rps, within_task_timeout};
use crate::engine::schedule::Stage;
use crate::settings::LoadSettings;
use crate::validate::{FieldErrors, Obj, join, kind};

/// The most stages a `stages` pattern may list.
pub const MAX_STAGES: usize = 1000;

/// Reads the list of stages at `path` (`raw` is its value).
pub fn read_stages(
    raw: Option<&Value>,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<Vec<Stage>> {
    let items = match raw {
        Some(Value::Array(items)) if items.len() > MAX_STAGES => {
            e.push(
                path,
                format!("lists {} stages, more than {MAX_STAGES}", items.len()),
            );
            return None;
        }
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) | None => {
            e.push(
                path,
                "must list at least one stage: [{duration: 30s, target_rps: 100}]",
            );
            return None;
        }
        Some(other) => {
            e.push(
                path,
                format!("expected a list of stages, got {}", kind(other)),
            );
            return None;
        }
    };
    let mut stages = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(mut o) = Obj::new(item, &p, e) else {
            continue;
        };
        let duration: Option<Duration> = o.req("duration", e);
        let target: Option<f64> = o.req("target_rps", e);
        o.finish(e);
        if duration.is_some_and(|d| d.is_zero()) {
            e.push(join(&p, "duration"), "must be greater than 0");
        }
        if target.is_some_and(|t| t < 0.0) {
            e.push(join(&p, "target_rps"), "must be 0 or more");
        } else if let Some(t) = target {
            within_max_rps(&join(&p, "target_rps"), t, settings, e);
        }
        if let Some(d) = duration {
            within_task_timeout(&join(&p, "duration"), d, settings, e);
        }
        if let (Some(duration), Some(target_rps)) = (duration, target) {
            stages.push(Stage {
                duration,
                target_rps,
            });
        }
    }
    (stages.len() == items.len()).then_some(stages)
}
