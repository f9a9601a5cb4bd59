//! The task kinds, one folder each: what a kind reads from a plan, runs on a node, merges on
//! the orchestrator and reports. This file is the only one that lists them: [`read_task`]
//! sends each `type` to its folder's reader.
//!
//! | `type` | folder |
//! |---|---|
//! | `load_test`, `performance_test` | [`load`] |
//! | `stress_test` | [`stress`] (a load task with a stepped rate) |
//! | `security_test` | [`security`] |

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::allowlist::Allowlist;
use crate::plan::{self, Plan, PlanError};
use crate::settings::LoadSettings;
use crate::validate::{FieldErrors, Keyword, Obj, join};

pub mod load;
pub mod report;
pub mod security;
pub mod stress;
pub mod work;

use load::LoadTask;

/// A validated test plan: the plan header over this crate's tasks.
pub type TestPlan = Plan<Task>;

/// One task of a plan, validated once on the orchestrator and sent to its nodes as is (in
/// postcard, which is not self-describing: no flattened, tagged or skipped fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskKind {
    /// `load_test`, `performance_test` and `stress_test`: traffic at a rate or from users.
    LoadTest(LoadTask),
    SecurityTest(security::ScanSpec),
}

impl Task {
    /// Checks the task's targets against `allowlist` (a node's own: the task was validated
    /// against the orchestrator's), resolving names with the system resolver where only an
    /// address pattern could allow them (blocking). The sender checks again at connect time.
    pub fn check_allowed(&self, allowlist: &Allowlist) -> Result<(), String> {
        for url in self.kind.targets() {
            allowlist
                .check_blocking(url)
                .map_err(|why| format!("target {url}: {why}"))?;
        }
        Ok(())
    }
}

impl TaskKind {
    /// Every URL the task sends to (a scan: its target, under which it probes).
    pub fn targets(&self) -> Vec<&Url> {
        match self {
            TaskKind::LoadTest(load) => load.targets.iter().map(|t| &t.url).collect(),
            TaskKind::SecurityTest(spec) => vec![&spec.target],
        }
    }

    /// The load task, for the kinds that run as one.
    pub fn load(&self) -> Option<&LoadTask> {
        match self {
            TaskKind::LoadTest(load) => Some(load),
            TaskKind::SecurityTest(_) => None,
        }
    }

    /// The URL the task sends to first: a load task's first target, a scan's target.
    pub fn first_target(&self) -> &Url {
        match self {
            TaskKind::LoadTest(load) => &load.targets[0].url,
            TaskKind::SecurityTest(spec) => &spec.target,
        }
    }

    /// How long the task is planned to run (for a scan, the estimate of its probes).
    pub fn planned_duration(&self) -> Duration {
        match self {
            TaskKind::LoadTest(load) => load.profile.duration,
            TaskKind::SecurityTest(spec) => security::distribute::estimate(spec).1,
        }
    }
}

/// Reads a task's `parameters` at a key path.
type ReadKind = fn(&Value, &str, &LoadSettings, &mut FieldErrors) -> Option<TaskKind>;

/// The task kinds: each type a plan may name, and its folder's reader. A new kind is a folder
/// and a line here.
const KINDS: [(&str, ReadKind); 4] = [
    ("load_test", |v, p, s, e| {
        load::read_load_task(v, p, s, e).map(TaskKind::LoadTest)
    }),
    ("performance_test", |v, p, s, e| {
        load::spec::read_performance_task(v, p, s, e).map(TaskKind::LoadTest)
    }),
    ("stress_test", |v, p, s, e| {
        stress::read_stress_task(v, p, s, e).map(TaskKind::LoadTest)
    }),
    ("security_test", |v, p, s, e| {
        security::spec::read_scan_spec(v, p, s, e).map(TaskKind::SecurityTest)
    }),
];

/// Validates a plan document against the load settings (limits, target allowlist). Host names
/// that only an address pattern could allow are resolved with the system resolver (blocking).
pub fn validate(doc: &Value, settings: &LoadSettings) -> Result<TestPlan, PlanError> {
    plan::validate(doc, settings, read_task)
}

/// Reads a plan file (YAML or JSON) and validates it.
pub fn load_file(path: &Path, settings: &LoadSettings) -> Result<TestPlan, PlanError> {
    read_file(path, settings).map(|(_, plan)| plan)
}

/// Reads a plan file and validates it, keeping the document (what a cluster's nodes get).
pub fn read_file(path: &Path, settings: &LoadSettings) -> Result<(Value, TestPlan), PlanError> {
    plan::read_file(path, settings, read_task)
}

/// Validates one task (`{"type", "name", "parameters"}`) on its own, as a node does with a
/// task posted to its REST API; errors are named under `tasks[index]`.
pub fn validate_task(v: &Value, index: usize, settings: &LoadSettings) -> Result<Task, PlanError> {
    let mut errors = FieldErrors::default();
    let task = read_task(v, &format!("tasks[{index}]"), index, settings, &mut errors);
    match task {
        Some(task) if errors.is_empty() => Ok(task),
        _ => Err(PlanError::Invalid(errors)),
    }
}

/// Writes each load task's seed into the plan document `doc` (the one `plan` was read
/// from), where the plan left it to chance. Whoever reads the document again (every node the
/// task is sent to, a restarted orchestrator) then draws the same arrival sequence, which is
/// one global sequence shared out by index (DESIGN §6), and the report's `seed` is the one
/// that ran.
pub fn pin_seeds(doc: &mut Value, plan: &TestPlan) {
    let Some(tasks) = doc.get_mut("tasks").and_then(|t| t.as_array_mut()) else {
        return;
    };
    for (t, task) in tasks.iter_mut().zip(&plan.tasks) {
        if let TaskKind::LoadTest(load) = &task.kind
            && let Some(params) = t.get_mut("parameters").and_then(|p| p.as_object_mut())
        {
            params
                .entry("seed")
                .or_insert_with(|| Value::from(load.profile.seed));
        }
    }
}

/// Reads one task at `path`: its name, its type, and its parameters by its kind's reader.
pub fn read_task(
    v: &Value,
    path: &str,
    index: usize,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<Task> {
    let mut o = Obj::new(v, path, e)?;
    let name: String = o.or("name", format!("task-{}", index + 1), e);
    let kind: Option<Keyword> = o.req("type", e);
    let params_path = o.key_path("parameters");
    let params = o.raw("parameters");
    o.finish(e);
    let kind = kind?;
    let Some((_, read)) = KINDS.iter().find(|(name, _)| **name == *kind) else {
        let types: Vec<&str> = KINDS.iter().map(|(name, _)| *name).collect();
        e.push(
            join(path, "type"),
            format!(
                "unknown task type {:?}; supported: {}",
                &*kind,
                types.join(", ")
            ),
        );
        return None;
    };
    let Some(params) = params else {
        e.push(params_path, "is required");
        return None;
    };
    let kind = read(params, &params_path, settings, e)?;
    Some(Task { name, kind })
}
