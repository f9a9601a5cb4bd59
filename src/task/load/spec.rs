//! Reads the `parameters` of a `load_test` (or `performance_test`) task into a [`LoadTask`]:
//! its targets, its rate shape (pattern, rates, duration or stages), its model and its
//! thresholds, every problem named by its key path.

use std::collections::HashMap;
use std::ops::Deref;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::flow::Flow;
use crate::engine::schedule::{Arrivals, LoadProfile, Model, Pattern, RatePlan, Stage};
use crate::engine::target::{Target, Traffic};
use crate::plan::flow::{Requests, read_requests};
use crate::plan::stages::read_stages;
use crate::plan::thresholds::{read_thresholds, request_names};
use crate::plan::tls::{TargetDefaults, read_defaults};
use crate::plan::{listed, read_name, within_max_rps, within_task_timeout};
use crate::settings::LoadSettings;
use crate::stats::thresholds::{Scope, Threshold};
use crate::validate::{FieldErrors, Keyword, Obj, join};

/// The most pieces a rate plan may have (a wave has 32 per period, a burst 2 per interval).
const MAX_RATE_PIECES: u128 = 200_000;

/// A load task: the traffic the engine sends, and what the orchestrator does around it. In
/// JSON, empty optional parts are left out; on the cluster's wire (postcard, not
/// self-describing) every field goes, and comes back: [`WireLoadTask`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTask {
    pub traffic: Traffic,
    /// What a cluster does when a node running the task is lost.
    pub on_node_failure: OnNodeFailure,
    /// A `stress_test`: the stepped rate's spec and breaking conditions.
    pub stress: Option<crate::task::stress::StressSpec>,
    /// The task's type as submitted: `load_test`, `performance_test` or `stress_test`.
    pub label: Label,
    /// Pass/fail criteria over the task's merged figures (`performance_test` needs one).
    pub thresholds: Vec<Threshold>,
}

/// [`LoadTask`] in JSON (human-readable formats).
#[derive(Serialize)]
#[serde(remote = "LoadTask")]
struct JsonLoadTask {
    traffic: Traffic,
    on_node_failure: OnNodeFailure,
    #[serde(skip_serializing_if = "Option::is_none")]
    stress: Option<crate::task::stress::StressSpec>,
    #[serde(skip)]
    label: Label,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thresholds: Vec<Threshold>,
}

/// [`LoadTask`] on the cluster's wire: every field, in order.
#[derive(Serialize, Deserialize)]
#[serde(remote = "LoadTask")]
struct WireLoadTask {
    traffic: Traffic,
    on_node_failure: OnNodeFailure,
    stress: Option<crate::task::stress::StressSpec>,
    #[serde(with = "label")]
    label: Label,
    thresholds: Vec<Threshold>,
}

impl Serialize for LoadTask {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            JsonLoadTask::serialize(self, s)
        } else {
            WireLoadTask::serialize(self, s)
        }
    }
}

/// Read back only from the wire.
impl<'de> Deserialize<'de> for LoadTask {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LoadTask, D::Error> {
        WireLoadTask::deserialize(d)
    }
}

/// A load task's type, as submitted (one of [`LABELS`]). A name for `&'static str`: serde
/// would borrow a field of that type from its input, which a task read off a frame outlives.
pub type Label = &'static str;

/// A task type's name as serialized: read back as the one of [`LABELS`] it is.
mod label {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(label: &super::Label, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(label)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Label, D::Error> {
        let name = String::deserialize(d)?;
        super::LABELS
            .into_iter()
            .find(|l| *l == name)
            .ok_or_else(|| D::Error::custom(format!("unknown load task type {name:?}")))
    }
}

/// The types a [`LoadTask`] may have been submitted as.
pub const LABELS: [&str; 3] = ["load_test", "performance_test", "stress_test"];

/// A load task reads as its traffic (`task.targets`, `task.model`, `task.rate_plan()`), and
/// goes to the engine as it.
impl Deref for LoadTask {
    type Target = Traffic;
    fn deref(&self) -> &Traffic {
        &self.traffic
    }
}

/// A lost node's share: re-split over the others (the global rate holds), left unsent (the
/// run goes on, degraded), or the end of the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
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

/// The rate keys of a load task as read, before they are checked against each other.
struct Shape<'v> {
    base: Option<f64>,
    peak: Option<f64>,
    duration: Option<Duration>,
    /// The pattern's name: given, or implied (`stages` by a `stages` key, else `constant`).
    pattern: String,
    stages_raw: Option<&'v Value>,
    stages_path: String,
    /// The pattern options given.
    options: HashMap<&'static str, Duration>,
}

/// Reads the parameters of a load task at `path`.
pub fn read_load_task(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<LoadTask> {
    let mut o = Obj::new(v, path, e)?;
    let before = e.0.len();
    let defaults = read_defaults(&mut o, &TargetDefaults::default(), e);
    let (targets, flow) = read_targets_or_flow(&mut o, settings, &defaults, e);
    let connections = read_connections(&mut o, settings, e);
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
    let concurrent_users = read_users(&mut o, settings, e);
    let think_time: Duration = o.or("think_time", Duration::ZERO, e);
    within_task_timeout(&o.key_path("think_time"), think_time, settings, e);
    let seed: u64 = o.opt("seed", e).unwrap_or_else(rand::random);
    let names = filter_names(targets.as_deref(), flow.as_deref());
    let names: Option<Vec<&str>> = names
        .as_ref()
        .map(|n| n.iter().map(String::as_str).collect());
    let check = request_names(names.as_deref());
    let thresholds = read_thresholds(&mut o, settings, Scope::Load, &check, e);

    let shape = read_shape(&mut o, path, settings, e)?;
    check_model(&mut o, path, &shape, model, arrivals_given, e);
    if model == Model::Open && !think_time.is_zero() {
        e.push(o.key_path("think_time"), "applies to the closed model only");
    }
    let (stages, duration) = read_duration(&mut o, &shape, settings, e);
    o.finish(e);
    let profile = build_profile(path, shape, stages, duration?, seed, settings, e)?;
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
    let traffic = Traffic {
        targets: targets?,
        flow,
        profile,
        arrivals,
        model,
        concurrent_users,
        think_time,
        connections,
    };
    Some(LoadTask {
        traffic,
        on_node_failure,
        stress: None,
        label: "load_test",
        thresholds,
    })
}

/// The task's `targets`, or its flow and the flow's request steps as its targets. Data files
/// are read relative to the working directory, as TLS files are.
fn read_targets_or_flow(
    o: &mut Obj<'_>,
    settings: &LoadSettings,
    defaults: &TargetDefaults,
    e: &mut FieldErrors,
) -> (Option<Vec<Target>>, Option<Box<Flow>>) {
    match read_requests(o, settings, defaults, std::path::Path::new(""), e) {
        Some(Requests::Targets(targets)) => (Some(targets), None),
        Some(Requests::Flow(flow)) => (Some(flow.targets()), Some(flow)),
        None => (None, None),
    }
}

/// The names a threshold's filter may give: the requests', and a flow's groups and its
/// iterations (`None` when the targets could not be read).
fn filter_names(targets: Option<&[Target]>, flow: Option<&Flow>) -> Option<Vec<String>> {
    let groups = flow.map(Flow::group_names).unwrap_or_default();
    let iterations = flow.map(|_| crate::stats::request::ITERATION.to_string());
    Some(
        targets?
            .iter()
            .map(|t| t.name.clone())
            .chain(groups)
            .chain(iterations)
            .collect(),
    )
}

/// Reads the parameters of a `performance_test`: a load task that needs a threshold.
pub fn read_performance_task(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<LoadTask> {
    let mut load = read_load_task(v, path, settings, e)?;
    load.label = "performance_test";
    if load.thresholds.is_empty() {
        e.push(
            join(path, "thresholds"),
            "a performance_test needs at least one threshold, e.g. \"p99_ms < 200\"",
        );
    }
    Some(load)
}

/// `concurrent_users`: at least 1, at most `load_generation.max_concurrent_requests`.
fn read_users(o: &mut Obj<'_>, settings: &LoadSettings, e: &mut FieldErrors) -> u32 {
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
    concurrent_users
}

/// `connections`: the sockets a node opens at most, 1 to
/// `load_generation.max_concurrent_requests`; absent, the engine chooses.
fn read_connections(o: &mut Obj<'_>, settings: &LoadSettings, e: &mut FieldErrors) -> Option<u32> {
    let n: u32 = o.opt("connections", e)?;
    let max = settings.max_concurrent_requests;
    if n == 0 || n > max {
        e.push(
            o.key_path("connections"),
            format!("must be in 1..={max} (load_generation.max_concurrent_requests), got {n}"),
        );
        return None;
    }
    Some(n)
}

/// The rates, the duration, the pattern and its options; `None` when the pattern is unknown
/// or contradicts a `stages` key.
fn read_shape<'v>(
    o: &mut Obj<'v>,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<Shape<'v>> {
    // Rates: checked for sign here, for presence per pattern later.
    let rate = |o: &mut Obj<'_>, key: &'static str, e: &mut FieldErrors| -> Option<f64> {
        let v: f64 = o.opt(key, e)?;
        if v < 0.0 {
            e.push(o.key_path(key), format!("must be 0 or more, got {v}"));
            return None;
        }
        within_max_rps(&o.key_path(key), v, settings, e).then_some(v)
    };
    let base = rate(o, "base_rps", e);
    let peak = rate(o, "peak_rps", e);
    let duration: Option<Duration> = o.opt("duration", e);
    if duration.is_some_and(|d| d.is_zero()) {
        e.push(o.key_path("duration"), "must be greater than 0");
    }
    let stages_path = o.key_path("stages");
    let stages_raw = o.raw("stages");
    let pattern = read_pattern_name(o, stages_raw.is_some(), &stages_path, e)?;
    let options = read_pattern_options(o, path, &pattern, settings, e);
    Some(Shape {
        base,
        peak,
        duration,
        pattern,
        stages_raw,
        stages_path,
        options,
    })
}

/// The pattern's name: the `pattern` key, else `stages` when stages are given, else
/// `constant`.
fn read_pattern_name(
    o: &mut Obj<'_>,
    has_stages: bool,
    stages_path: &str,
    e: &mut FieldErrors,
) -> Option<String> {
    let given: Option<String> = o.opt::<Keyword>("pattern", e).map(|k| k.0);
    match (given.as_deref(), has_stages) {
        (None, true) => Some(Pattern::STAGES.to_string()),
        (None, false) => Some(Pattern::CONSTANT.to_string()),
        (Some(p), _) if !Pattern::NAMES.contains(&p) => {
            e.push(
                o.key_path("pattern"),
                format!(
                    "unknown pattern {p:?}; expected one of {}",
                    Pattern::NAMES.join(", ")
                ),
            );
            None
        }
        (Some(p), true) if p != Pattern::STAGES => {
            e.push(
                stages_path,
                format!("only applies to pattern stages (the pattern is {p})"),
            );
            None
        }
        (Some(p), _) => Some(p.to_string()),
    }
}

/// The pattern options given, each a span of time that belongs to `pattern`.
fn read_pattern_options(
    o: &mut Obj<'_>,
    path: &str,
    pattern: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> HashMap<&'static str, Duration> {
    let mut opts = HashMap::new();
    for (key, owners) in Pattern::OPTIONS {
        let Some(d) = o.opt::<Duration>(key, e) else {
            continue;
        };
        within_task_timeout(&o.key_path(key), d, settings, e);
        if !owners.contains(&pattern) {
            e.push(
                o.key_path(key),
                format!(
                    "only applies to pattern {} (the pattern is {pattern})",
                    owners.join(" or ")
                ),
            );
        }
        opts.insert(key, d);
    }
    // Every option but `spike_at` is a length: 0 would be no pattern at all.
    for (key, _) in Pattern::OPTIONS.iter().filter(|(k, _)| *k != "spike_at") {
        if opts.get(key).is_some_and(|d| d.is_zero()) {
            e.push(join(path, key), "must be greater than 0");
        }
    }
    opts
}

/// The keys that belong to one model or pattern only, given to another.
fn check_model(
    o: &mut Obj<'_>,
    path: &str,
    shape: &Shape<'_>,
    model: Model,
    arrivals_given: bool,
    e: &mut FieldErrors,
) {
    let pattern = &shape.pattern;
    // `peak_rps` belongs to the patterns that have a peak; given to another, it would be
    // silently ignored (a constant base_rps planned instead).
    if model == Model::Open && !Pattern::has_peak(pattern) && shape.peak.is_some() {
        let with_peak: Vec<&str> = Pattern::NAMES
            .into_iter()
            .filter(|p| Pattern::has_peak(p))
            .collect();
        let given = if o.raw("pattern").is_some() {
            format!("the pattern is {pattern}")
        } else {
            format!("no pattern is given, so the pattern is {pattern}")
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
    check_rates(path, shape, model, e);
}

/// The open model needs its rates (`base_rps`, and `peak_rps` for a pattern with a peak);
/// the closed model takes none, nor a pattern.
fn check_rates(path: &str, shape: &Shape<'_>, model: Model, e: &mut FieldErrors) {
    let rate_path = |key: &str| join(path, key);
    let pattern = &shape.pattern;
    match model {
        Model::Open => {
            if *pattern != Pattern::STAGES
                && shape.base.is_none()
                && !e.0.iter().any(|x| x.field == rate_path("base_rps"))
            {
                e.push(
                    rate_path("base_rps"),
                    "is required for the open model (requests per second)",
                );
            }
            if Pattern::has_peak(pattern)
                && shape.peak.is_none()
                && !e.0.iter().any(|x| x.field == rate_path("peak_rps"))
            {
                e.push(
                    rate_path("peak_rps"),
                    format!("is required for pattern {pattern}"),
                );
            }
        }
        Model::Closed => {
            let given = [
                ("base_rps", shape.base.is_some()),
                ("peak_rps", shape.peak.is_some()),
            ];
            for (key, given) in given {
                if given {
                    e.push(rate_path(key), "does not apply to the closed model, whose users send as fast as responses come back; use the open model for a rate");
                }
            }
            if *pattern != Pattern::CONSTANT {
                e.push(rate_path("pattern"), "the closed model runs a fixed number of users; patterns apply to the open model");
            }
        }
    }
}

/// The stages (of the `stages` pattern) and the duration: the stages' sum, or the `duration`
/// key, which is then required.
fn read_duration(
    o: &mut Obj<'_>,
    shape: &Shape<'_>,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> (Option<Vec<Stage>>, Option<Duration>) {
    if shape.pattern != Pattern::STAGES {
        if shape.duration.is_none() && !e.0.iter().any(|x| x.field == o.key_path("duration")) {
            e.push(
                o.key_path("duration"),
                "is required (seconds, or a string like \"30s\" or \"5m\")",
            );
        }
        return (Some(Vec::new()), shape.duration);
    }
    let stages = read_stages(shape.stages_raw, &shape.stages_path, settings, e);
    let stages_total: Duration = stages.iter().flatten().map(|s| s.duration).sum();
    if let Some(d) = shape
        .duration
        .filter(|d| *d != stages_total && stages.is_some())
    {
        e.push(
            o.key_path("duration"),
            format!(
                "is {:?} but the stages add up to {:?}; leave duration out or make them agree",
                d, stages_total
            ),
        );
    }
    (stages, Some(stages_total))
}

/// The profile of a shape over `duration`; `None` when it runs longer than a task may, or
/// has too many rate pieces.
fn build_profile(
    path: &str,
    shape: Shape<'_>,
    stages: Option<Vec<Stage>>,
    duration: Duration,
    seed: u64,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<LoadProfile> {
    if duration > settings.task_timeout {
        e.push(
            join(path, "duration"),
            format!(
                "is {duration:?}, longer than orchestrator.task_timeout ({:?})",
                settings.task_timeout
            ),
        );
        return None;
    }
    let (base, peak) = (shape.base, shape.peak);
    let (base, peak) = (base.unwrap_or(0.0), peak.unwrap_or(base.unwrap_or(0.0)));
    let options = &shape.options;
    let pattern = Pattern::from_name(
        &shape.pattern,
        duration,
        |k| options.get(k).copied(),
        stages,
    )?;
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
    Some(LoadProfile {
        duration,
        base_rps: base,
        peak_rps: peak,
        pattern,
        seed,
    })
}
