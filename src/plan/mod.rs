//! The execution document: what `mcpt run` reads and what `POST /api/executions` takes. A plan
//! is YAML or JSON; it is validated as a whole, every problem named by its key path, before a
//! single request is sent.
//!
//! ```yaml
//! name: checkout
//! tasks:
//!   - type: load_test
//!     parameters:
//!       targets: [{url: "http://127.0.0.1:8089/", method: GET}]
//!       duration: 30s
//!       base_rps: 100
//!       peak_rps: 500
//!       pattern: ramp_up
//! ```
//!
//! This module reads what every task kind shares: the document ([`parse_document`]), the plan
//! header ([`Plan`]: its name, its tasks, its [`placement`]) and the readers of targets,
//! headers, stages, thresholds, TLS, rates and durations. It does not know the task kinds: a plan
//! is read with a task reader, which [`crate::task`] provides.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::settings::LoadSettings;
use crate::validate::{FieldErrors, Obj, kind};

pub mod data;
pub mod document;
pub mod flow;
pub mod limits;
pub mod placement;
pub mod stages;
pub mod targets;
pub mod thresholds;
pub mod tls;

pub use document::parse_document;
pub use limits::{listed, read_name, within_max_rps, within_task_timeout};
pub use placement::{MAX_NODE_COUNT, PlacementRequest, read_priority};

/// A validated plan whose tasks are `T`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan<T> {
    pub name: String,
    pub tasks: Vec<T>,
    /// Where the execution runs and what it reserves (the optional `placement` key).
    pub placement: PlacementRequest,
}

/// Reads one task: its value, its key path (`tasks[i]`), its index, the limits; `None` (with
/// the problems in the errors) when it is not valid.
pub type ReadTask<T> = fn(&Value, &str, usize, &LoadSettings, &mut FieldErrors) -> Option<T>;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("plan is not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("invalid plan:\n{0}")]
    Invalid(FieldErrors),
}

/// Validates a plan document against the load settings (limits, target allowlist), each task
/// by `read_task`. Host names that only an address pattern could allow are resolved with the
/// system resolver (blocking).
pub fn validate<T>(
    doc: &Value,
    settings: &LoadSettings,
    read_task: ReadTask<T>,
) -> Result<Plan<T>, PlanError> {
    let mut errors = FieldErrors::default();
    let plan = read_plan(doc, settings, read_task, &mut errors);
    match plan {
        Some(plan) if errors.is_empty() => Ok(plan),
        _ => Err(PlanError::Invalid(errors)),
    }
}

/// Reads a plan file and validates it, keeping the document (what a cluster's nodes get).
pub fn read_file<T>(
    path: &Path,
    settings: &LoadSettings,
    read_task: ReadTask<T>,
) -> Result<(Value, Plan<T>), PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let doc = parse_document(&text)?;
    let plan = validate(&doc, settings, read_task)?;
    Ok((doc, plan))
}

/// Reads the plan header and each of its tasks by `read_task`.
pub fn read_plan<T>(
    doc: &Value,
    settings: &LoadSettings,
    read_task: ReadTask<T>,
    e: &mut FieldErrors,
) -> Option<Plan<T>> {
    let mut top = Obj::new(doc, "", e)?;
    let name: String = top.or("name", "test".into(), e);
    let _description: Option<String> = top.opt("description", e);
    let tasks = match top.raw("tasks") {
        None => {
            e.push(
                "tasks",
                "is required: a list of tasks, e.g. [{type: load_test, parameters: {...}}]",
            );
            None
        }
        Some(Value::Array(items)) if items.is_empty() => {
            e.push("tasks", "must list at least one task");
            None
        }
        Some(Value::Array(items)) => {
            let tasks: Vec<Option<T>> = items
                .iter()
                .enumerate()
                .map(|(i, t)| read_task(t, &format!("tasks[{i}]"), i, settings, e))
                .collect();
            tasks.into_iter().collect::<Option<Vec<T>>>()
        }
        Some(other) => {
            e.push("tasks", format!("expected a list, got {}", kind(other)));
            None
        }
    };
    let placement = placement::read_placement(top.raw("placement"), e);
    top.finish(e);
    Some(Plan {
        name,
        tasks: tasks?,
        placement,
    })
}
