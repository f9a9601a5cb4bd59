//! Readers every task kind shares: rates and spans of time within the configured limits, and
//! keywords from a fixed list of names.

use std::time::Duration;

use crate::settings::LoadSettings;
use crate::validate::{FieldErrors, Keyword, Obj};

/// A rate (requests per second) within `load_generation.max_rps`; reports it at `path` when
/// it is not.
pub fn within_max_rps(path: &str, rps: f64, settings: &LoadSettings, e: &mut FieldErrors) -> bool {
    if rps > settings.max_rps {
        e.push(
            path,
            format!(
                "{rps} requests per second is more than load_generation.max_rps ({}); raise that setting to allow it",
                settings.max_rps
            ),
        );
        return false;
    }
    true
}

/// A span of time (a timeout, a think time, a pattern's step) no longer than a task may run,
/// `orchestrator.task_timeout`; reports it at `path` when it is.
pub fn within_task_timeout(
    path: &str,
    d: Duration,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> bool {
    if d > settings.task_timeout {
        e.push(
            path,
            format!(
                "is {d:?}, longer than orchestrator.task_timeout ({:?})",
                settings.task_timeout
            ),
        );
        return false;
    }
    true
}

/// Names as a sentence lists them: `a, b or c` (`and` for `last`).
pub fn listed(names: &[&str], last: &str) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., end] => format!("{} {last} {end}", init.join(", ")),
    }
}

/// The optional keyword `key`, one of `names` (read by `from_name`); the first name when
/// absent or unknown (reported as an unknown `what`).
pub fn read_name<T>(
    o: &mut Obj<'_>,
    key: &'static str,
    what: &str,
    names: &[&str],
    from_name: fn(&str) -> Option<T>,
    e: &mut FieldErrors,
) -> T {
    let default = || from_name(names[0]).expect("the first name reads");
    let Some(name) = o.opt::<Keyword>(key, e) else {
        return default();
    };
    from_name(&name).unwrap_or_else(|| {
        e.push(
            o.key_path(key),
            format!(
                "unknown {what} {:?}; expected {}",
                &*name,
                listed(names, "or")
            ),
        );
        default()
    })
}
