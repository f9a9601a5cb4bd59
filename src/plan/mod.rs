//! The test plan: what `mcpt run` reads and what `POST /api/executions` will take. A plan is
//! YAML or JSON; it is validated as a whole, every problem named by its key path, before a
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

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::allowlist::Allowlist;
use crate::engine::schedule::{Arrivals, LoadProfile, Pattern, RatePlan, Stage};
use crate::settings::LoadSettings;
use crate::stats::thresholds::{self, Threshold};
use crate::validate::{FieldErrors, Keyword, Obj, describe, join, kind, read_list};

/// A validated test plan.
#[derive(Debug, Clone, Serialize)]
pub struct TestPlan {
    pub name: String,
    pub tasks: Vec<Task>,
    /// Where the execution runs and what it reserves (the optional `placement` key).
    pub placement: PlacementRequest,
}

/// An execution's `placement`: which nodes, by which strategy, and what it reserves from the
/// resource pool before it starts.
///
/// ```yaml
/// placement:
///   nodes: [node-1]              # run on exactly these (empty: chosen by the strategy)
///   node_count: 2                # spread over this many (default: every eligible node)
///   strategy: least_loaded       # default: distribution.default_strategy
///   preferred_location: us-west-1
///   required_capabilities: [http_load]
///   priority: 0                  # higher is served first when the pool is short
///   resource_requirements: {cpu: 2, memory: 1073741824}
/// ```
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlacementRequest {
    pub nodes: Vec<String>,
    pub node_count: Option<u32>,
    pub strategy: Option<crate::placement::Strategy>,
    pub preferred_location: Option<String>,
    pub required_capabilities: Vec<String>,
    pub priority: i32,
    pub resource_requirements: std::collections::BTreeMap<String, f64>,
}

/// The optional `priority` of an object: a whole number, higher first; 0 when absent.
pub(crate) fn read_priority(o: &mut Obj<'_>, e: &mut FieldErrors) -> i32 {
    let priority: f64 = o.or("priority", 0.0, e);
    if priority.fract() != 0.0 || priority.abs() > 1_000_000.0 {
        e.push(
            o.key_path("priority"),
            format!("expected a whole number in -1000000..=1000000, got {priority}"),
        );
        return 0;
    }
    priority as i32
}

fn read_placement(v: Option<&Value>, e: &mut FieldErrors) -> PlacementRequest {
    let Some(v) = v else {
        return PlacementRequest::default();
    };
    let Some(mut o) = Obj::new(v, "placement", e) else {
        return PlacementRequest::default();
    };
    let strategy: Option<Keyword> = o.opt("strategy", e);
    let strategy = strategy.and_then(|s| {
        s.parse::<crate::placement::Strategy>()
            .map_err(|why| e.push("placement.strategy", why.to_string()))
            .ok()
    });
    let node_count: Option<u32> = o.opt("node_count", e);
    if node_count.is_some_and(|n| n == 0 || n > MAX_NODE_COUNT) {
        e.push(
            "placement.node_count",
            format!("must be in 1..={MAX_NODE_COUNT}"),
        );
    }
    let priority = read_priority(&mut o, e);
    let mut resource_requirements = std::collections::BTreeMap::<String, f64>::new();
    match o.raw("resource_requirements") {
        None => {}
        Some(Value::Object(map)) => {
            for (name, v) in map {
                let path = format!("placement.resource_requirements.{name}");
                let resource = crate::resources::normalize(name);
                if let Some(x) = crate::resources::read_amount(&resource, v, &path, e) {
                    resource_requirements.insert(name.clone(), x);
                }
            }
        }
        Some(other) => e.push(
            "placement.resource_requirements",
            format!(
                "expected a mapping of resource to amount, got {}",
                kind(other)
            ),
        ),
    }
    for (name, amount) in &resource_requirements {
        let path = format!("placement.resource_requirements.{name}");
        if let Some(why) = crate::resources::name_problem(&crate::resources::normalize(name)) {
            e.push(&path, format!("not a resource name: {why}"));
        }
        if !amount.is_finite() || *amount < 0.0 || *amount > crate::resources::MAX_AMOUNT {
            e.push(
                &path,
                format!(
                    "must be an amount in 0..={:e}, got {amount}",
                    crate::resources::MAX_AMOUNT
                ),
            );
        }
    }
    let nodes: Vec<String> = o.or("nodes", Vec::new(), e);
    for (i, n) in nodes.iter().enumerate() {
        let path = format!("placement.nodes[{i}]");
        if n.trim().is_empty() || n.len() > 256 || n.chars().any(char::is_control) {
            e.push(
                &path,
                "must be a node id: 1 to 256 bytes, no control characters",
            );
        } else if nodes[..i].contains(n) {
            e.push(&path, format!("node {n:?} is listed twice"));
        }
    }
    let p = PlacementRequest {
        nodes,
        node_count,
        strategy,
        preferred_location: o.opt("preferred_location", e),
        required_capabilities: o.or("required_capabilities", Vec::new(), e),
        priority,
        resource_requirements,
    };
    o.finish(e);
    p
}

/// One task of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub name: String,
    #[serde(flatten)]
    pub kind: TaskKind,
}

/// Writes each load task's seed into the plan document `doc` (the one `plan` was read
/// from), where the plan left it to chance. Whoever reads the document again (every node the
/// task is sent to, a restarted orchestrator) then draws the same arrival sequence, which is
/// one global sequence shared out by index (DESIGN §6), and the report's `seed` is the one
/// that ran.
pub fn pin_seeds(doc: &mut serde_json::Value, plan: &TestPlan) {
    let Some(tasks) = doc.get_mut("tasks").and_then(|t| t.as_array_mut()) else {
        return;
    };
    for (t, task) in tasks.iter_mut().zip(&plan.tasks) {
        if let TaskKind::LoadTest(load) = &task.kind
            && let Some(params) = t.get_mut("parameters").and_then(|p| p.as_object_mut())
        {
            params
                .entry("seed")
                .or_insert_with(|| serde_json::Value::from(load.profile.seed));
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "parameters", rename_all = "snake_case")]
pub enum TaskKind {
    LoadTest(LoadTask),
    SecurityTest(crate::task::security::ScanSpec),
}

pub use crate::engine::schedule::Model;

#[derive(Debug, Clone, Serialize)]
pub struct LoadTask {
    pub targets: Vec<Target>,
    pub profile: LoadProfile,
    pub arrivals: Arrivals,
    pub model: Model,
    /// Open model: the cap on requests in flight. Closed model: the number of users.
    pub concurrent_users: u32,
    pub think_time: Duration,
    /// What a cluster does when a node running the task is lost.
    pub on_node_failure: OnNodeFailure,
    /// A `stress_test`: the stepped rate's spec and breaking conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stress: Option<crate::task::stress::StressSpec>,
    /// The task's type as submitted: `load_test` or `performance_test`.
    #[serde(skip)]
    pub label: &'static str,
    /// Pass/fail criteria over the task's merged figures (`performance_test` needs one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
}

/// A lost node's share: re-split over the others (the global rate holds), left unsent (the
/// run goes on, degraded), or the end of the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnNodeFailure {
    #[default]
    Rebalance,
    Tolerate,
    Fail,
}

impl OnNodeFailure {
    pub const ALL: [OnNodeFailure; 3] = [
        OnNodeFailure::Rebalance,
        OnNodeFailure::Tolerate,
        OnNodeFailure::Fail,
    ];
    /// Every policy, as a plan names it.
    pub const NAMES: [&'static str; 3] = ["rebalance", "tolerate", "fail"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The policy a plan names `name` (lower case).
    pub fn from_name(name: &str) -> Option<OnNodeFailure> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl LoadTask {
    pub fn rate_plan(&self) -> RatePlan {
        RatePlan::from_profile(&self.profile)
    }
}

/// One endpoint of a load task.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub url: Url,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub weight: u32,
    pub timeout: Duration,
    pub expected_status: ExpectedStatus,
    pub expected_response_time: Option<Duration>,
    pub follow_redirects: bool,
}

/// Which status codes count as success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedStatus {
    /// 200..=399, the default.
    SuccessOrRedirect,
    Codes(Vec<u16>),
}

impl ExpectedStatus {
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            ExpectedStatus::SuccessOrRedirect => (200..400).contains(&code),
            ExpectedStatus::Codes(codes) => codes.contains(&code),
        }
    }
}

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

impl PlanError {
    /// The field errors, when the plan parsed but did not validate.
    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            PlanError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

/// Parses YAML or JSON text into a document (JSON is YAML, but JSON's errors read better).
pub fn parse_document(text: &str) -> Result<Value, PlanError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| PlanError::Syntax {
            format: "JSON",
            message: e.to_string(),
        });
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| PlanError::Syntax {
        format: "YAML",
        message: e.to_string(),
    })?;
    match docs.as_slice() {
        [doc] => yaml_to_json(doc, ""),
        [] => Err(PlanError::Syntax {
            format: "YAML",
            message: "the document is empty".into(),
        }),
        _ => Err(PlanError::Syntax {
            format: "YAML",
            message: "expected one document, found several".into(),
        }),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml, path: &str) -> Result<Value, PlanError> {
    use yaml_rust2::Yaml;
    let bad = |message: String| PlanError::Syntax {
        format: "YAML",
        message,
    };
    Ok(match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(n) => Value::Number(n),
            None => return Err(bad(format!("{path}: {s:?} is not a finite number"))),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(bad(format!("{path}: unsupported key {other:?}"))),
                };
                let child = yaml_to_json(v, &join(path, &key))?;
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Yaml::Alias(_) => return Err(bad(format!("{path}: YAML aliases are not supported"))),
    })
}

/// Validates a plan document against the load settings (limits, target allowlist). Host names
/// that only an address pattern could allow are resolved with the system resolver (blocking).
pub fn validate(doc: &Value, settings: &LoadSettings) -> Result<TestPlan, PlanError> {
    let mut errors = FieldErrors::default();
    let plan = read_plan(doc, settings, &mut errors);
    match plan {
        Some(plan) if errors.is_empty() => Ok(plan),
        _ => Err(PlanError::Invalid(errors)),
    }
}

/// Reads a plan file (YAML or JSON) and validates it.
pub fn load_file(path: &std::path::Path, settings: &LoadSettings) -> Result<TestPlan, PlanError> {
    read_file(path, settings).map(|(_, plan)| plan)
}

/// Reads a plan file and validates it, keeping the document (what a cluster's nodes get).
pub fn read_file(
    path: &std::path::Path,
    settings: &LoadSettings,
) -> Result<(Value, TestPlan), PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let doc = parse_document(&text)?;
    let plan = validate(&doc, settings)?;
    Ok((doc, plan))
}

fn read_plan(doc: &Value, settings: &LoadSettings, e: &mut FieldErrors) -> Option<TestPlan> {
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
            let tasks: Vec<Option<Task>> = items
                .iter()
                .enumerate()
                .map(|(i, t)| read_task(t, &format!("tasks[{i}]"), i, settings, e))
                .collect();
            tasks.into_iter().collect::<Option<Vec<Task>>>()
        }
        Some(other) => {
            e.push("tasks", format!("expected a list, got {}", kind(other)));
            None
        }
    };
    let placement = read_placement(top.raw("placement"), e);
    top.finish(e);
    Some(TestPlan {
        name,
        tasks: tasks?,
        placement,
    })
}

/// Validates one task (`{"type", "name", "parameters"}`) on its own, as a node does with
/// the tasks it is given; errors are named under `tasks[index]`.
pub fn validate_task(v: &Value, index: usize, settings: &LoadSettings) -> Result<Task, PlanError> {
    let mut errors = FieldErrors::default();
    let task = read_task(v, &format!("tasks[{index}]"), index, settings, &mut errors);
    match task {
        Some(task) if errors.is_empty() => Ok(task),
        _ => Err(PlanError::Invalid(errors)),
    }
}

fn read_task(
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
    let kind = match kind.as_deref() {
        Some(label @ ("load_test" | "performance_test")) => {
            let Some(params) = params else {
                e.push(params_path, "is required");
                return None;
            };
            let mut load = read_load_task(params, &params_path, settings, e)?;
            if label == "performance_test" {
                load.label = "performance_test";
                if load.thresholds.is_empty() {
                    e.push(
                        join(&params_path, "thresholds"),
                        "a performance_test needs at least one threshold, e.g. \"p99_ms < 200\"",
                    );
                }
            }
            TaskKind::LoadTest(load)
        }
        Some("stress_test") => {
            let Some(params) = params else {
                e.push(params_path, "is required");
                return None;
            };
            let task = crate::task::stress::read_stress_task(params, &params_path, settings, e);
            TaskKind::LoadTest(task?)
        }
        Some("security_test") => {
            let Some(params) = params else {
                e.push(params_path, "is required");
                return None;
            };
            TaskKind::SecurityTest(crate::task::security::parse::read_scan_spec(
                params,
                &params_path,
                settings,
                e,
            )?)
        }
        Some(other) => {
            e.push(
                join(path, "type"),
                format!(
                    "unknown task type {other:?}; supported: load_test, performance_test, \
                     stress_test, security_test"
                ),
            );
            return None;
        }
        None => return None,
    };
    Some(Task { name, kind })
}

/// The most pieces a rate plan may have (a wave has 32 per period, a burst 2 per interval).
const MAX_RATE_PIECES: u128 = 200_000;
/// The most targets a task may list.
pub const MAX_TARGETS: usize = 1000;
/// The most stages a `stages` pattern may list.
pub const MAX_STAGES: usize = 1000;
/// The largest weight of one target.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// The most nodes `placement.node_count` may ask for.
pub const MAX_NODE_COUNT: u32 = 10_000;

/// A rate (requests per second) within `load_generation.max_rps`; reports it at `path` when
/// it is not.
pub(crate) fn within_max_rps(
    path: &str,
    rps: f64,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> bool {
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
pub(crate) fn within_task_timeout(
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
fn listed(names: &[&str], last: &str) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., end] => format!("{} {last} {end}", init.join(", ")),
    }
}

pub(crate) fn read_load_task(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<LoadTask> {
    let mut o = Obj::new(v, path, e)?;
    let before = e.0.len();

    let targets = read_targets(&mut o, settings, e);

    let model = read_name(&mut o, "model", "model", &Model::NAMES, Model::from_name, e);
    let on_node_failure = read_name(
        &mut o,
        "on_node_failure",
        "policy",
        &OnNodeFailure::NAMES,
        OnNodeFailure::from_name,
        e,
    );
    let arrivals_given = o.raw("arrivals").is_some();
    let arrivals = read_name(
        &mut o,
        "arrivals",
        "arrivals",
        &Arrivals::NAMES,
        Arrivals::from_name,
        e,
    );

    let max_users = settings.max_concurrent_requests;
    let concurrent_users: u32 = o.or("concurrent_users", 100, e);
    if concurrent_users == 0 {
        e.push(o.key_path("concurrent_users"), "must be at least 1");
    } else if concurrent_users > max_users {
        e.push(
            o.key_path("concurrent_users"),
            format!(
                "{concurrent_users} exceeds load_generation.max_concurrent_requests ({max_users}); raise that setting to allow it"
            ),
        );
    }
    let think_time: Duration = o.or("think_time", Duration::ZERO, e);
    within_task_timeout(&o.key_path("think_time"), think_time, settings, e);
    let seed: u64 = o.opt("seed", e).unwrap_or_else(rand::random);
    let thresholds = read_thresholds(&mut o, settings, e);

    // Rates: checked for sign here, for presence per pattern below.
    let rate = |o: &mut Obj<'_>, key: &'static str, e: &mut FieldErrors| -> Option<f64> {
        let v: f64 = o.opt(key, e)?;
        if v < 0.0 {
            e.push(o.key_path(key), format!("must be 0 or more, got {v}"));
            return None;
        }
        within_max_rps(&o.key_path(key), v, settings, e).then_some(v)
    };
    let base = rate(&mut o, "base_rps", e);
    let peak = rate(&mut o, "peak_rps", e);
    let duration: Option<Duration> = o.opt("duration", e);
    if duration.is_some_and(|d| d.is_zero()) {
        e.push(o.key_path("duration"), "must be greater than 0");
    }

    let stages_path = o.key_path("stages");
    let stages_raw = o.raw("stages");
    let pattern_name: Option<String> = o.opt::<Keyword>("pattern", e).map(|k| k.0);
    let pattern_name = match (pattern_name.as_deref(), stages_raw) {
        (None, Some(_)) => Pattern::STAGES.to_string(),
        (None, None) => Pattern::CONSTANT.to_string(),
        (Some(p), _) if !Pattern::NAMES.contains(&p) => {
            e.push(
                o.key_path("pattern"),
                format!(
                    "unknown pattern {p:?}; expected one of {}",
                    Pattern::NAMES.join(", ")
                ),
            );
            return None;
        }
        (Some(p), Some(_)) if p != Pattern::STAGES => {
            e.push(
                stages_path,
                format!("only applies to pattern stages (the pattern is {p})"),
            );
            return None;
        }
        (Some(p), _) => p.to_string(),
    };

    let mut opts = std::collections::HashMap::new();
    for (key, owners) in Pattern::OPTIONS {
        let Some(d) = o.opt::<Duration>(key, e) else {
            continue;
        };
        within_task_timeout(&o.key_path(key), d, settings, e);
        if !owners.contains(&pattern_name.as_str()) {
            e.push(
                o.key_path(key),
                format!(
                    "only applies to pattern {} (the pattern is {pattern_name})",
                    owners.join(" or ")
                ),
            );
        }
        opts.insert(key, d);
    }
    let positive_opt = |key: &'static str, e: &mut FieldErrors| {
        if opts.get(key).is_some_and(|d| d.is_zero()) {
            e.push(join(path, key), "must be greater than 0");
        }
    };
    // Every option but `spike_at` is a length: 0 would be no pattern at all.
    for (key, _) in Pattern::OPTIONS.iter().filter(|(k, _)| *k != "spike_at") {
        positive_opt(key, e);
    }

    let needs_peak = Pattern::has_peak(&pattern_name);
    // `peak_rps` belongs to the patterns that have a peak; given to another, it would be
    // silently ignored (a constant base_rps planned instead).
    if model == Model::Open && !needs_peak && peak.is_some() {
        let with_peak: Vec<&str> = Pattern::NAMES
            .into_iter()
            .filter(|p| Pattern::has_peak(p))
            .collect();
        let given = if o.raw("pattern").is_some() {
            format!("the pattern is {pattern_name}")
        } else {
            format!("no pattern is given, so the pattern is {pattern_name}")
        };
        e.push(
            o.key_path("peak_rps"),
            format!(
                "only applies to patterns {} ({given}); set a pattern or leave peak_rps out",
                listed(&with_peak, "and")
            ),
        );
    }
    if model == Model::Closed && arrivals_given {
        e.push(
            o.key_path("arrivals"),
            "applies to the open model only; the closed model's users send as responses come back",
        );
    }
    let rate_path = |key: &str| join(path, key);
    match model {
        Model::Open => {
            if pattern_name != Pattern::STAGES
                && base.is_none()
                && !e.0.iter().any(|x| x.field == rate_path("base_rps"))
            {
                e.push(
                    rate_path("base_rps"),
                    "is required for the open model (requests per second)",
                );
            }
            if needs_peak && peak.is_none() && !e.0.iter().any(|x| x.field == rate_path("peak_rps"))
            {
                e.push(
                    rate_path("peak_rps"),
                    format!("is required for pattern {pattern_name}"),
                );
            }
        }
        Model::Closed => {
            for (key, given) in [("base_rps", base.is_some()), ("peak_rps", peak.is_some())] {
                if given {
                    e.push(rate_path(key), "does not apply to the closed model, whose users send as fast as responses come back; use the open model for a rate");
                }
            }
            if pattern_name != Pattern::CONSTANT {
                e.push(rate_path("pattern"), "the closed model runs a fixed number of users; patterns apply to the open model");
            }
        }
    }
    if model == Model::Open && !think_time.is_zero() {
        e.push(o.key_path("think_time"), "applies to the closed model only");
    }

    let stages = if pattern_name == Pattern::STAGES {
        read_stages(stages_raw, &stages_path, settings, e)
    } else {
        Some(Vec::new())
    };
    let stages_total: Duration = stages.iter().flatten().map(|s| s.duration).sum();
    let duration = if pattern_name == Pattern::STAGES {
        if let Some(d) = duration.filter(|d| *d != stages_total && stages.is_some()) {
            e.push(
                o.key_path("duration"),
                format!(
                    "is {:?} but the stages add up to {:?}; leave duration out or make them agree",
                    d, stages_total
                ),
            );
        }
        Some(stages_total)
    } else {
        if duration.is_none() && !e.0.iter().any(|x| x.field == o.key_path("duration")) {
            e.push(
                o.key_path("duration"),
                "is required (seconds, or a string like \"30s\" or \"5m\")",
            );
        }
        duration
    };
    let duration_path = o.key_path("duration");
    o.finish(e);

    let duration = duration?;
    if duration > settings.task_timeout {
        e.push(
            duration_path,
            format!(
                "is {duration:?}, longer than orchestrator.task_timeout ({:?})",
                settings.task_timeout
            ),
        );
        return None;
    }
    let (base, peak) = (base.unwrap_or(0.0), peak.unwrap_or(base.unwrap_or(0.0)));
    let pattern = Pattern::from_name(&pattern_name, duration, |k| opts.get(k).copied(), stages)?;
    // Wave, random and burst plans have a rate piece per step: keep their number sane.
    let steps = |key: &'static str, step: Duration, per_step: u128| {
        (key, duration.as_nanos() / step.as_nanos().max(1) * per_step)
    };
    let pieces = match &pattern {
        Pattern::Wave { wave_period } => Some(steps("wave_period", *wave_period, 32)),
        Pattern::Random { random_step } => Some(steps("random_step", *random_step, 1)),
        Pattern::Burst { burst_interval, .. } => Some(steps("burst_interval", *burst_interval, 2)),
        _ => None,
    };
    if let Some((key, n)) = pieces.filter(|(_, n)| *n > MAX_RATE_PIECES) {
        e.push(
            join(path, key),
            format!(
                "makes {n} rate pieces over the duration, more than {MAX_RATE_PIECES}: use a longer {key} or a shorter duration"
            ),
        );
        return None;
    }
    let profile = LoadProfile {
        duration,
        base_rps: base,
        peak_rps: peak,
        pattern,
        seed,
    };
    if model == Model::Open && e.0.len() == before && RatePlan::from_profile(&profile).total() < 1.0
    {
        e.push(
            path,
            "the plan sends no request: the rate times the duration is below 1",
        );
    }
    if e.0.len() != before {
        return None;
    }
    Some(LoadTask {
        targets: targets?,
        profile,
        arrivals,
        model,
        concurrent_users,
        think_time,
        on_node_failure,
        stress: None,
        label: "load_test",
        thresholds,
    })
}

/// The optional keyword `key`, one of `names` (read by `from_name`); the first name when
/// absent or unknown (reported as an unknown `what`).
fn read_name<T>(
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

/// `thresholds`: strings (`"p99_ms < 200"`) or `{threshold, abort_on_fail?, delay_abort_eval?}`;
/// the task's `abort_on_fail` and `delay_abort_eval` are the defaults of each.
fn read_thresholds(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
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
        match thresholds::parse(&expr) {
            Ok((metric, op, bound)) => out.push(Threshold {
                expr: expr.trim().to_string(),
                metric,
                op,
                bound,
                abort_on_fail,
                delay_abort_eval,
            }),
            Err(why) => e.push(expr_path, why),
        }
    }
    out
}

fn read_stages(
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

fn read_targets(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
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
        .map(|(i, t)| read_target(t, &format!("{path}[{i}]"), settings, e))
        .collect();
    targets.into_iter().collect()
}

fn read_target(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
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
    let url = o.req::<String>("url", e).and_then(|s| {
        let url_path = o.key_path("url");
        match Url::parse(&s) {
            Ok(u) if u.scheme() == "http" => Some(u),
            Ok(u) if u.scheme() == "https" => {
                e.push(url_path, "https targets are not supported yet; use http");
                None
            }
            Ok(u) => {
                e.push(
                    url_path,
                    format!("unsupported scheme {:?}; use http", u.scheme()),
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
    let method = o
        .or::<String>("method", "GET".into(), e)
        .to_ascii_uppercase();
    if awc::http::Method::from_bytes(method.as_bytes()).is_err() {
        e.push(
            o.key_path("method"),
            format!("{method:?} is not an HTTP method"),
        );
    }
    let headers = read_headers(&mut o, e);
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
    let expected_status = match o.raw("expected_status") {
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
    };
    let expected_response_time: Option<Duration> = o.opt("expected_response_time", e);
    if let Some(d) = expected_response_time {
        within_task_timeout(&o.key_path("expected_response_time"), d, settings, e);
    }
    let follow_redirects: bool = o.or("follow_redirects", false, e);
    o.finish(e);
    if e.0.len() != before {
        return None;
    }
    Some(Target {
        url: url?,
        method,
        headers,
        body,
        weight,
        timeout,
        expected_status: expected_status?,
        expected_response_time,
        follow_redirects,
    })
}

fn read_headers(o: &mut Obj<'_>, e: &mut FieldErrors) -> Option<Vec<(String, String)>> {
    let path = o.key_path("headers");
    let map = match o.raw("headers")? {
        Value::Object(map) => map,
        other => {
            e.push(
                path,
                format!(
                    "expected a mapping of header names to values, got {}",
                    kind(other)
                ),
            );
            return None;
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;

    fn settings() -> LoadSettings {
        Settings::defaults().load_generation
    }

    fn task(params: Value) -> Value {
        json!({"name": "t", "tasks": [{"type": "load_test", "parameters": params}]})
    }

    fn errors(doc: Value) -> Vec<(String, String)> {
        match validate(&doc, &settings()) {
            Ok(_) => panic!("plan was accepted"),
            Err(PlanError::Invalid(e)) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
            Err(other) => panic!("{other}"),
        }
    }

    fn load(doc: Value) -> LoadTask {
        let plan = validate(&doc, &settings()).unwrap_or_else(|e| panic!("{e}"));
        let TaskKind::LoadTest(t) = plan.tasks.into_iter().next().unwrap().kind else {
            panic!("a load test")
        };
        t
    }

    #[test]
    fn absurd_durations_and_step_counts_are_refused_not_built() {
        let url = json!([{"url": "http://127.0.0.1:9/"}]);
        let got = errors(task(
            json!({"targets": url, "duration": "2h", "base_rps": 1}),
        ));
        assert_eq!(got[0].0, "tasks[0].parameters.duration", "{got:?}");
        assert!(got[0].1.contains("task_timeout"), "{got:?}");
        for huge in [json!(1e300), json!("99999999999999999999h")] {
            let got = errors(task(
                json!({"targets": url, "duration": huge, "base_rps": 1}),
            ));
            assert_eq!(got[0].0, "tasks[0].parameters.duration", "{got:?}");
        }
        let got = errors(task(
            json!({"targets": url, "duration": "1h", "base_rps": 1,
            "peak_rps": 2, "pattern": "wave", "wave_period": "1ms"}),
        ));
        assert_eq!(got[0].0, "tasks[0].parameters.wave_period", "{got:?}");
    }

    #[test]
    fn the_spec_example_is_accepted() {
        let t = load(task(json!({
            "targets": [{"url": "http://127.0.0.1:9/api", "method": "GET"}],
            "duration": 300, "base_rps": 100, "peak_rps": 500, "pattern": "ramp_up",
            "concurrent_users": 50
        })));
        assert_eq!(t.profile.duration, Duration::from_secs(300));
        assert_eq!(
            t.profile.pattern,
            Pattern::RampUp {
                ramp_duration: Duration::from_secs(300)
            }
        );
        assert_eq!(t.concurrent_users, 50);
        assert_eq!(t.targets[0].timeout, Duration::from_secs(300));
        assert_eq!(t.model, Model::Open);
    }

    #[test]
    fn every_mistake_is_named() {
        let got = errors(task(json!({
            "targets": [{"url": "http://127.0.0.1:9/", "methd": "GET"}, {"url": "not a url"}, {"url": "http://10.1.2.3/"}],
            "duration": 0, "base_rps": -5, "pattern": "zigzag"
        })));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "tasks[0].parameters.targets[0].methd",
            "tasks[0].parameters.targets[1].url",
            "tasks[0].parameters.targets[2].url",
            "tasks[0].parameters.duration",
            "tasks[0].parameters.base_rps",
            "tasks[0].parameters.pattern",
        ] {
            assert!(fields.contains(&want), "missing {want} in {got:?}");
        }
        let allow = got
            .iter()
            .find(|(f, _)| f.ends_with("targets[2].url"))
            .unwrap();
        assert!(allow.1.contains("allowed_targets"), "{allow:?}");
    }

    #[test]
    fn empty_targets_and_missing_fields() {
        let got = errors(task(json!({"targets": [], "base_rps": 10})));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"tasks[0].parameters.targets"), "{got:?}");
        assert!(fields.contains(&"tasks[0].parameters.duration"), "{got:?}");
        let got = errors(json!({"tasks": []}));
        assert_eq!(got[0].0, "tasks");
        let got = errors(json!({"name": "x", "tasks": [{"type": "fuzz", "parameters": {}}]}));
        assert_eq!(got[0].0, "tasks[0].type");
    }

    #[test]
    fn pattern_options_must_match_the_pattern() {
        let got = errors(task(json!({
            "targets": ["http://127.0.0.1:9/"], "duration": "10s", "base_rps": 10, "spike_at": 3
        })));
        assert_eq!(got[0].0, "tasks[0].parameters.spike_at", "{got:?}");
        let got = errors(task(json!({
            "targets": ["http://127.0.0.1:9/"], "duration": "10s", "base_rps": 10, "pattern": "wave"
        })));
        assert_eq!(got[0].0, "tasks[0].parameters.peak_rps", "{got:?}");
    }

    #[test]
    fn stages_set_the_duration() {
        let t = load(task(json!({
            "targets": ["http://127.0.0.1:9/"],
            "stages": [{"duration": "2s", "target_rps": 100}, {"duration": 3, "target_rps": 50}]
        })));
        assert_eq!(t.profile.duration, Duration::from_secs(5));
        let got = errors(task(json!({
            "targets": ["http://127.0.0.1:9/"], "duration": 9,
            "stages": [{"duration": "2s", "target_rps": 100}]
        })));
        assert_eq!(got[0].0, "tasks[0].parameters.duration", "{got:?}");
    }

    #[test]
    fn closed_model_takes_users_not_rates() {
        let t = load(task(json!({
            "targets": ["http://127.0.0.1:9/"], "duration": 5, "model": "closed",
            "concurrent_users": 8, "think_time": "100ms"
        })));
        assert_eq!((t.model, t.concurrent_users), (Model::Closed, 8));
        assert_eq!(t.think_time, Duration::from_millis(100));
        let got = errors(task(json!({
            "targets": ["http://127.0.0.1:9/"], "duration": 5, "model": "closed", "base_rps": 5
        })));
        assert_eq!(got[0].0, "tasks[0].parameters.base_rps");
    }

    #[test]
    fn users_above_the_configured_maximum_are_refused() {
        let got = errors(task(json!({
            "targets": ["http://127.0.0.1:9/"], "duration": 5, "base_rps": 5, "concurrent_users": 5000
        })));
        assert_eq!(got[0].0, "tasks[0].parameters.concurrent_users");
        assert!(got[0].1.contains("max_concurrent_requests"));
    }

    #[test]
    fn every_example_plan_is_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            load_file(&path, &settings()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen > 0);
    }

    #[test]
    fn yaml_and_json_read_the_same() {
        let yaml = "name: y\ntasks:\n  - type: load_test\n    parameters:\n      targets: [{url: 'http://127.0.0.1:9/', expected_status: [200, 204], body: {a: 1}}]\n      duration: 2s\n      base_rps: 1.5\n";
        let doc = parse_document(yaml).unwrap();
        let json_doc = parse_document(&doc.to_string()).unwrap();
        assert_eq!(doc, json_doc);
        let t = load(doc);
        assert_eq!(
            t.targets[0].expected_status,
            ExpectedStatus::Codes(vec![200, 204])
        );
        assert_eq!(t.targets[0].body.as_deref(), Some(r#"{"a":1}"#));
        assert!(
            t.targets[0]
                .headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/json")
        );
        assert!(matches!(
            parse_document("a: [1,"),
            Err(PlanError::Syntax { .. })
        ));
    }

    #[test]
    fn options_of_another_pattern_or_model_are_errors() {
        let base = |extra: Value| {
            let mut p = json!({"targets": ["http://127.0.0.1:9/"], "duration": 2, "base_rps": 5});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            task(p)
        };
        let field = |extra: Value| -> Vec<String> {
            errors(base(extra)).into_iter().map(|(f, _)| f).collect()
        };
        let peak = "tasks[0].parameters.peak_rps";
        let no_pattern = errors(base(json!({"peak_rps": 500})));
        assert_eq!(no_pattern.len(), 1, "{no_pattern:?}");
        assert_eq!(no_pattern[0].0, peak);
        assert!(
            no_pattern[0].1.contains("no pattern is given"),
            "{no_pattern:?}"
        );
        assert_eq!(
            field(json!({"peak_rps": 500, "pattern": "constant"})),
            [peak]
        );
        assert_eq!(
            field(json!({"peak_rps": 500, "base_rps": null,
                "stages": [{"duration": 2, "target_rps": 5}], "duration": null})),
            [peak]
        );
        assert_eq!(
            field(json!({"model": "closed", "base_rps": null, "arrivals": "poisson"})),
            ["tasks[0].parameters.arrivals"]
        );
        // Each pattern's own options are accepted with it.
        for (pattern, option) in [
            ("ramp_up", "ramp_duration"),
            ("ramp_down", "ramp_duration"),
            ("spike", "spike_at"),
            ("spike", "spike_duration"),
            ("wave", "wave_period"),
            ("random", "random_step"),
            ("burst", "burst_interval"),
            ("burst", "burst_duration"),
        ] {
            let ok = base(json!({"pattern": pattern, "peak_rps": 9, option: 1}));
            validate(&ok, &settings()).unwrap_or_else(|e| panic!("{pattern} {option}: {e}"));
            for other in Pattern::NAMES.iter().filter(|p| {
                !Pattern::OPTIONS
                    .iter()
                    .any(|(k, owners)| *k == option && owners.contains(p))
            }) {
                let mut extra = json!({"pattern": other, option: 1});
                if !matches!(*other, "constant" | "stages") {
                    extra["peak_rps"] = json!(9);
                }
                if *other == "stages" {
                    extra["stages"] = json!([{"duration": 2, "target_rps": 5}]);
                    extra["duration"] = Value::Null;
                }
                let f = field(extra);
                assert!(
                    f.contains(&format!("tasks[0].parameters.{option}")),
                    "{option} with {other}: {f:?}"
                );
            }
        }
    }

    #[test]
    fn enum_names_are_read_in_any_case() {
        let doc = json!({"name": "t", "tasks": [{"type": "LOAD_TEST", "parameters": {
            "targets": ["http://127.0.0.1:9/"], "duration": 2, "base_rps": 5, "peak_rps": 9,
            "pattern": "Ramp_Up", "arrivals": "POISSON", "model": "OPEN",
            "on_node_failure": "FAIL"}}],
            "placement": {"strategy": "ROUND_ROBIN",
                "resource_requirements": {"memory": "2GB", "cpu": "2 cores"}}});
        let plan = validate(&doc, &settings()).unwrap_or_else(|e| panic!("{e}"));
        let TaskKind::LoadTest(t) = &plan.tasks[0].kind else {
            panic!("a load test")
        };
        assert!(matches!(t.profile.pattern, Pattern::RampUp { .. }));
        assert_eq!(t.arrivals, Arrivals::Poisson);
        assert_eq!(t.on_node_failure, OnNodeFailure::Fail);
        assert_eq!(
            plan.placement.strategy,
            Some(crate::placement::Strategy::RoundRobin)
        );
        assert_eq!(plan.placement.resource_requirements["memory"], 2e9);
        assert_eq!(plan.placement.resource_requirements["cpu"], 2.0);
    }

    #[test]
    fn numbers_beyond_their_bounds_name_their_key() {
        let mut s = settings();
        s.max_rps = 1000.0;
        let over = |params: Value| -> Vec<String> {
            match validate(&task(params), &s) {
                Ok(_) => panic!("accepted"),
                Err(PlanError::Invalid(e)) => e.0.into_iter().map(|e| e.field).collect(),
                Err(other) => panic!("{other}"),
            }
        };
        let t = "http://127.0.0.1:9/";
        assert_eq!(
            over(json!({"targets": [t], "duration": 2, "base_rps": 1e308})),
            ["tasks[0].parameters.base_rps"]
        );
        assert_eq!(
            over(
                json!({"targets": [t], "duration": 2, "base_rps": 1, "peak_rps": 1001,
                "pattern": "spike"})
            ),
            ["tasks[0].parameters.peak_rps"]
        );
        assert_eq!(
            over(
                json!({"targets": [{"url": t, "expected_response_time": 1e7}],
                "duration": 2, "base_rps": 1})
            ),
            ["tasks[0].parameters.targets[0].expected_response_time"]
        );
        assert_eq!(
            over(
                json!({"targets": [t], "duration": 2, "base_rps": 1, "pattern": "wave",
                "peak_rps": 2, "wave_period": 1e9})
            ),
            ["tasks[0].parameters.wave_period"]
        );
        let many: Vec<&str> = vec![t; MAX_TARGETS + 1];
        assert_eq!(
            over(json!({"targets": many, "duration": 2, "base_rps": 1})),
            ["tasks[0].parameters.targets"]
        );
        // At the bound is fine.
        let at = task(json!({"targets": [t], "duration": 2, "base_rps": 1000}));
        validate(&at, &s).unwrap_or_else(|e| panic!("{e}"));
        let mut doc = task(json!({"targets": [t], "duration": 2, "base_rps": 1}));
        doc["placement"] = json!({"node_count": 1_000_000});
        assert!(matches!(validate(&doc, &s), Err(PlanError::Invalid(e))
            if e.0[0].field == "placement.node_count"));
    }
}
