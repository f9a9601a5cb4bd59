//! Stress tests: a load test whose open-model rate steps up until the target breaks.
//!
//! ```yaml
//! tasks:
//!   - type: stress_test
//!     parameters:
//!       targets: ["http://127.0.0.1:8089/"]
//!       start_rps: 100          # the first step
//!       step_rps: 50            # added at every step
//!       step_duration: 10s      # whole seconds, at least 2 (the first is a warm-up)
//!       max_rps: 1000           # the last step (added when the steps do not land on it)
//!       break_on: {error_rate: 0.05, p99_ms: 1000, min_achieved_ratio: 0.95}  # the defaults
//!       consecutive: 2          # seconds a condition must hold in a row (default 2)
//! ```
//!
//! A stress test runs as an ordinary [`LoadTask`]: its steps become a `stages` profile (each
//! step a 1 ms rise, then a hold), so nodes, shares and merging are those of a load test. The
//! [`StressWatch`] reads the merged seconds and says when to stop: once one breaking
//! condition (error rate above `error_rate`, p99 above `p99_ms`, or completed requests below
//! `min_achieved_ratio` of the planned ones) held for `consecutive` evaluated seconds in a row.
//! The first second of every step is a warm-up: it neither counts nor breaks a streak. The
//! step in which the streak began is the one that broke; the step before it is the breaking
//! point, the last sustainable rate.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::load::plan::LoadTask;
use crate::settings::LoadSettings;
use crate::stats::TimelinePoint;
use crate::validate::{FieldErrors, Obj, join};

/// The most steps a stress test may have.
pub const MAX_STEPS: usize = 1000;

/// The rise into each step: short enough to read as a jump, long enough to be a stage.
const RISE: Duration = Duration::from_millis(1);

/// The stepped rate and the breaking conditions of a stress test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressSpec {
    pub start_rps: f64,
    pub step_rps: f64,
    /// A whole number of seconds, at least 2.
    pub step_duration: Duration,
    pub max_rps: f64,
    pub break_on: BreakOn,
    /// Evaluated seconds in a row a condition must hold to break.
    pub consecutive: u32,
}

/// The conditions under which a step is not sustainable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BreakOn {
    /// Errors over completed requests, above which a second is bad.
    pub error_rate: f64,
    /// A second's p99 (from the planned start) above which it is bad.
    pub p99_ms: f64,
    /// Completed over planned requests, below which a second is bad.
    pub min_achieved_ratio: f64,
}

impl Default for BreakOn {
    fn default() -> Self {
        BreakOn {
            error_rate: 0.05,
            p99_ms: 1000.0,
            min_achieved_ratio: 0.95,
        }
    }
}

impl StressSpec {
    /// The rate of every step: `start_rps + i × step_rps` up to `max_rps`, then `max_rps`
    /// itself when the steps do not land on it.
    pub fn steps(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let eps = 1e-9 * self.max_rps.max(1.0);
        for i in 0.. {
            let r = self.start_rps + i as f64 * self.step_rps;
            if r > self.max_rps + eps || out.len() > MAX_STEPS {
                break;
            }
            out.push(r);
        }
        if out.last().is_some_and(|last| *last < self.max_rps - eps) {
            out.push(self.max_rps);
        }
        out
    }

    /// How long all the steps take.
    pub fn duration(&self) -> Duration {
        self.step_duration * self.steps().len() as u32
    }

    /// The steps as a `stages` list (with `base_rps` = `start_rps`): the first step holds,
    /// every later one rises in [`RISE`] and holds for the rest of its step.
    fn stages(&self) -> Vec<Value> {
        let hold = |d: Duration, rps: f64| json!({"duration": format!("{}ms", d.as_millis()), "target_rps": rps});
        self.steps()
            .iter()
            .enumerate()
            .flat_map(|(i, &rps)| {
                if i == 0 {
                    vec![hold(self.step_duration, rps)]
                } else {
                    vec![hold(RISE, rps), hold(self.step_duration - RISE, rps)]
                }
            })
            .collect()
    }
}

/// Keys of a load task that a stress test sets itself.
const SET_BY_STEPS: &[&str] = &[
    "pattern",
    "stages",
    "duration",
    "base_rps",
    "peak_rps",
    "think_time",
];

/// Reads the parameters of a `stress_test` task (at `path`): the stress keys here, the rest
/// (targets, users, arrivals, ...) by the load-task reader, with the steps as its stages.
pub(crate) fn read_stress_task(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<LoadTask> {
    let Value::Object(map) = v else {
        // Let the load reader name the problem.
        return crate::load::plan::read_load_task(v, path, settings, e);
    };
    let (mut own, mut rest) = (Map::new(), Map::new());
    for (k, val) in map {
        let stress_key = [
            "start_rps",
            "step_rps",
            "step_duration",
            "max_rps",
            "break_on",
            "consecutive",
        ]
        .contains(&k.as_str());
        if stress_key {
            own.insert(k.clone(), val.clone());
        } else {
            rest.insert(k.clone(), val.clone());
        }
    }
    let before = e.0.len();
    let spec = read_spec(&Value::Object(own), path, settings, e);
    for key in SET_BY_STEPS {
        if rest.remove(*key).is_some() {
            e.push(
                join(path, key),
                "does not apply to a stress test: its rate steps from start_rps by step_rps every step_duration up to max_rps",
            );
        }
    }
    if let Some(model) = rest.get("model")
        && model.as_str() != Some("open")
    {
        e.push(
            join(path, "model"),
            format!("a stress test steps an open-model rate; expected open, got {model}"),
        );
        rest.remove("model");
    }
    // Without a valid spec, a placeholder stage still lets the rest be checked.
    let (base, stages) = match &spec {
        Some(s) => (s.start_rps, s.stages()),
        None => (1.0, vec![json!({"duration": 1, "target_rps": 1})]),
    };
    rest.insert("base_rps".into(), json!(base));
    rest.insert("stages".into(), Value::Array(stages));
    let task = crate::load::plan::read_load_task(&Value::Object(rest), path, settings, e);
    if e.0.len() != before {
        return None;
    }
    Some(LoadTask {
        stress: spec,
        label: "stress_test",
        ..task?
    })
}

fn read_spec(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<StressSpec> {
    let mut o = Obj::new(v, path, e)?;
    let before = e.0.len();
    let positive = |o: &mut Obj<'_>, key: &'static str, e: &mut FieldErrors| -> Option<f64> {
        let x: f64 = o.req(key, e)?;
        if x <= 0.0 {
            e.push(o.key_path(key), format!("must be greater than 0, got {x}"));
            return None;
        }
        Some(x)
    };
    let start_rps = positive(&mut o, "start_rps", e);
    let step_rps = positive(&mut o, "step_rps", e);
    let max_rps = positive(&mut o, "max_rps", e);
    if let (Some(start), Some(max)) = (start_rps, max_rps)
        && max < start
    {
        e.push(
            o.key_path("max_rps"),
            format!("is {max}, below start_rps ({start})"),
        );
    }
    let step_duration: Option<Duration> = o.req("step_duration", e);
    if let Some(d) = step_duration
        && (d.subsec_nanos() != 0 || d < Duration::from_secs(2))
    {
        e.push(
            o.key_path("step_duration"),
            format!(
                "must be a whole number of seconds, at least 2s (the first second of each step is a warm-up), got {d:?}"
            ),
        );
    }
    let consecutive: u32 = o.or("consecutive", 2, e);
    if consecutive == 0 {
        e.push(o.key_path("consecutive"), "must be at least 1");
    }
    let break_on = read_break_on(&mut o, e);
    let max_rps_path = o.key_path("max_rps");
    o.finish(e);
    if e.0.len() != before {
        return None;
    }
    let spec = StressSpec {
        start_rps: start_rps?,
        step_rps: step_rps?,
        step_duration: step_duration?,
        max_rps: max_rps?,
        break_on,
        consecutive,
    };
    let n = (spec.max_rps - spec.start_rps) / spec.step_rps + 1.0;
    if n > MAX_STEPS as f64 {
        e.push(
            max_rps_path,
            format!("makes {n:.0} steps from start_rps by step_rps, more than {MAX_STEPS}"),
        );
        return None;
    }
    if spec.duration() > settings.task_timeout {
        e.push(
            max_rps_path,
            format!(
                "makes {} steps of {:?}: {:?} in all, longer than orchestrator.task_timeout ({:?})",
                spec.steps().len(),
                spec.step_duration,
                spec.duration(),
                settings.task_timeout
            ),
        );
        return None;
    }
    Some(spec)
}

fn read_break_on(o: &mut Obj<'_>, e: &mut FieldErrors) -> BreakOn {
    let d = BreakOn::default();
    let Some(mut b) = o.child("break_on", e) else {
        return d;
    };
    let mut bounded = |key: &'static str, default: f64, ok: fn(f64) -> bool, want: &str| {
        let x: f64 = b.or(key, default, e);
        if !ok(x) {
            e.push(b.key_path(key), format!("must be {want}, got {x}"));
        }
        x
    };
    let error_rate = bounded(
        "error_rate",
        d.error_rate,
        |x| (0.0..1.0).contains(&x),
        "in 0..1 (a fraction of the completed requests)",
    );
    let p99_ms = bounded("p99_ms", d.p99_ms, |x| x > 0.0, "greater than 0");
    let min_achieved_ratio = bounded(
        "min_achieved_ratio",
        d.min_achieved_ratio,
        |x| x > 0.0 && x <= 1.0,
        "in (0, 1] (a fraction of the planned requests)",
    );
    b.finish(e);
    BreakOn {
        error_rate,
        p99_ms,
        min_achieved_ratio,
    }
}

/// What a stress test found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressResult {
    /// The highest step that held: the last sustainable rate (`null` when the first broke).
    pub breaking_point_rps: Option<f64>,
    /// The step that broke (`null` when none did).
    pub broke_at_rps: Option<f64>,
    /// What broke it, e.g. `p99_ms 1840.2 > 1000 for 2 s` (`null` when nothing did).
    pub condition: Option<String>,
    /// `false` when the steps reached `max_rps` without breaking.
    pub broke: bool,
    /// The curve: one entry per step that ran, in order.
    pub steps: Vec<StressStep>,
}

/// One step's figures over its evaluated seconds (the warm-up second left out); latencies
/// are the step's worst second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressStep {
    /// The planned rate.
    pub rps: f64,
    /// Completed requests per second.
    pub achieved_rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Errors over completed requests.
    pub error_rate: f64,
    /// Evaluated seconds.
    pub seconds: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct StepFigures {
    seconds: u32,
    completed: u64,
    errors: u64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

/// The breaking conditions, in the order they are reported when several break together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    ErrorRate,
    P99,
    Achieved,
}

const CONDITIONS: [Condition; 3] = [Condition::ErrorRate, Condition::P99, Condition::Achieved];

#[derive(Debug, Clone, Default)]
struct Streak {
    seconds: u32,
    /// The step of the streak's first second.
    first_step: usize,
    /// The condition as its first second saw it (the figures of the step it blames).
    first_seen: String,
}

#[derive(Debug, Clone)]
struct Break {
    step: usize,
    condition: String,
}

/// Watches the merged seconds of a stress test and says when it broke.
#[derive(Debug, Clone)]
pub struct StressWatch {
    spec: StressSpec,
    steps: Vec<f64>,
    step_secs: u64,
    figures: Vec<StepFigures>,
    streaks: [Streak; 3],
    broke: Option<Break>,
    /// Timeline points taken by [`StressWatch::catch_up`].
    fed: usize,
}

impl StressWatch {
    pub fn new(spec: &StressSpec) -> StressWatch {
        let steps = spec.steps();
        StressWatch {
            figures: vec![StepFigures::default(); steps.len()],
            steps,
            step_secs: spec.step_duration.as_secs().max(1),
            spec: spec.clone(),
            streaks: Default::default(),
            broke: None,
            fed: 0,
        }
    }

    /// Takes the points of a task's timeline not seen yet (the orchestrator may merge
    /// several seconds at once); the reason to stop, once, as [`StressWatch::second`].
    pub fn catch_up(&mut self, timeline: &[TimelinePoint]) -> Option<String> {
        let mut stop = None;
        for p in timeline.iter().skip(self.fed) {
            if let Some(why) = self.second(p) {
                stop.get_or_insert(why);
            }
        }
        self.fed = self.fed.max(timeline.len());
        stop
    }

    /// Takes the next merged second; returns why to stop, once, when a condition has held
    /// for `consecutive` evaluated seconds. Seconds after that, warm-up seconds and seconds
    /// past the last step are not evaluated.
    pub fn second(&mut self, p: &TimelinePoint) -> Option<String> {
        if self.broke.is_some() {
            return None;
        }
        let step = (p.second / self.step_secs) as usize;
        if step >= self.steps.len() || p.second.is_multiple_of(self.step_secs) || p.planned <= 0.0 {
            return None;
        }
        let f = &mut self.figures[step];
        f.seconds += 1;
        f.completed += p.completed;
        f.errors += p.errors;
        f.p50_ms = f.p50_ms.max(p.p50_ms);
        f.p95_ms = f.p95_ms.max(p.p95_ms);
        f.p99_ms = f.p99_ms.max(p.p99_ms);

        let b = self.spec.break_on;
        let need = self.spec.consecutive;
        let mut broken = None;
        for (c, streak) in CONDITIONS.iter().zip(self.streaks.iter_mut()) {
            let (holds, what) = match c {
                Condition::ErrorRate => {
                    let rate = error_rate(p.errors, p.completed);
                    (
                        rate > b.error_rate,
                        format!("error_rate {rate:.3} > {}", b.error_rate),
                    )
                }
                Condition::P99 => (
                    p.p99_ms > b.p99_ms,
                    format!("p99_ms {:.1} > {}", p.p99_ms, b.p99_ms),
                ),
                Condition::Achieved => {
                    let ratio = p.completed as f64 / p.planned;
                    (
                        ratio < b.min_achieved_ratio,
                        format!(
                            "achieved_ratio {ratio:.3} < {} ({} of {:.0} planned)",
                            b.min_achieved_ratio, p.completed, p.planned
                        ),
                    )
                }
            };
            if !holds {
                streak.seconds = 0;
                continue;
            }
            if streak.seconds == 0 {
                streak.first_step = step;
                streak.first_seen = what;
            }
            streak.seconds += 1;
            if streak.seconds >= need && broken.is_none() {
                broken = Some(Break {
                    step: streak.first_step,
                    condition: format!("{} for {need} s", streak.first_seen),
                });
            }
        }
        let broken = broken?;
        let reason = format!(
            "stress test broke at {} rps: {}; breaking point {}",
            self.steps[broken.step],
            broken.condition,
            match broken.step {
                0 => "none (the first step broke)".to_string(),
                s => format!("{} rps", self.steps[s - 1]),
            }
        );
        self.broke = Some(broken);
        Some(reason)
    }

    /// The breaking point and the curve so far.
    pub fn result(&self) -> StressResult {
        let steps: Vec<StressStep> = self
            .steps
            .iter()
            .zip(&self.figures)
            .filter(|(_, f)| f.seconds > 0)
            .map(|(&rps, f)| StressStep {
                rps,
                achieved_rps: f.completed as f64 / f64::from(f.seconds),
                p50_ms: f.p50_ms,
                p95_ms: f.p95_ms,
                p99_ms: f.p99_ms,
                error_rate: error_rate(f.errors, f.completed),
                seconds: f.seconds,
            })
            .collect();
        match &self.broke {
            Some(b) => StressResult {
                breaking_point_rps: b.step.checked_sub(1).map(|s| self.steps[s]),
                broke_at_rps: Some(self.steps[b.step]),
                condition: Some(b.condition.clone()),
                broke: true,
                steps,
            },
            None => StressResult {
                // Bad seconds too few to break still keep their steps from the point.
                breaking_point_rps: match self
                    .streaks
                    .iter()
                    .filter(|s| s.seconds > 0)
                    .map(|s| s.first_step)
                    .min()
                {
                    Some(open) => open.checked_sub(1).map(|s| self.steps[s]),
                    None => steps.last().map(|s| s.rps),
                },
                broke_at_rps: None,
                condition: None,
                broke: false,
                steps,
            },
        }
    }
}

impl StressResult {
    /// The stress part of the text report: the verdict, then one line per step.
    pub fn to_text(&self) -> String {
        let rps = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{r} rps"));
        let mut out = match (&self.condition, self.broke) {
            (Some(c), true) => format!(
                "  stress     breaking point {}, broke at {}: {c}\n",
                rps(self.breaking_point_rps),
                rps(self.broke_at_rps)
            ),
            _ => format!(
                "  stress     did not break up to {}\n",
                rps(self.breaking_point_rps)
            ),
        };
        out.push_str("    step rps  achieved    p50 ms    p95 ms    p99 ms   errors  seconds\n");
        for s in &self.steps {
            out.push_str(&format!(
                "  {:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.2}% {:>8}\n",
                s.rps,
                s.achieved_rps,
                s.p50_ms,
                s.p95_ms,
                s.p99_ms,
                s.error_rate * 100.0,
                s.seconds
            ));
        }
        out
    }
}

fn error_rate(errors: u64, completed: u64) -> f64 {
    if completed == 0 {
        0.0
    } else {
        errors as f64 / completed as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::plan::{PlanError, TaskKind, validate};
    use crate::settings::Settings;
    use proptest::prelude::*;

    fn settings() -> LoadSettings {
        Settings::defaults().load_generation
    }

    fn doc(params: Value) -> Value {
        json!({"tasks": [{"type": "stress_test", "parameters": params}]})
    }

    fn base() -> Value {
        json!({"targets": ["http://127.0.0.1:9/"], "start_rps": 100, "step_rps": 50,
               "step_duration": "2s", "max_rps": 300})
    }

    fn with(mut params: Value, key: &str, v: Value) -> Value {
        params[key] = v;
        params
    }

    fn errors(params: Value) -> Vec<(String, String)> {
        match validate(&doc(params), &settings()) {
            Ok(_) => panic!("plan was accepted"),
            Err(PlanError::Invalid(e)) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
            Err(other) => panic!("{other}"),
        }
    }

    fn load(params: Value) -> LoadTask {
        let plan = validate(&doc(params), &settings()).unwrap_or_else(|e| panic!("{e}"));
        let TaskKind::LoadTest(t) = plan.tasks.into_iter().next().unwrap().kind;
        t
    }

    fn spec(start: f64, step: f64, max: f64, secs: u64) -> StressSpec {
        StressSpec {
            start_rps: start,
            step_rps: step,
            step_duration: Duration::from_secs(secs),
            max_rps: max,
            break_on: BreakOn::default(),
            consecutive: 2,
        }
    }

    #[test]
    fn the_steps_become_a_stages_profile() {
        let t = load(base());
        let s = t.stress.clone().expect("a stress spec");
        assert_eq!(t.label, "stress_test");
        assert_eq!(s.steps(), [100.0, 150.0, 200.0, 250.0, 300.0]);
        assert_eq!(s.break_on, BreakOn::default());
        assert_eq!(s.consecutive, 2);
        assert_eq!(t.profile.duration, Duration::from_secs(10));
        let plan = t.rate_plan();
        for (i, want) in s.steps().iter().enumerate() {
            let mid = Duration::from_millis(2000 * i as u64 + 1000);
            assert_eq!(plan.rate_at(mid), *want, "step {i}");
            // Each second but the rise's plans the step's rate, within a request.
            let second = plan.between(mid, mid + Duration::from_secs(1));
            assert!((second - want).abs() < 1e-6, "{second} vs {want}");
        }
        assert!(
            (plan.total() - 2.0 * 1000.0).abs() < 1.0,
            "{}",
            plan.total()
        );
        // A max that the steps miss is the last step.
        assert_eq!(
            spec(100.0, 50.0, 220.0, 2).steps(),
            [100.0, 150.0, 200.0, 220.0]
        );
        assert_eq!(spec(100.0, 50.0, 100.0, 2).steps(), [100.0]);
    }

    #[test]
    fn load_keys_pass_through_and_break_on_is_read() {
        let mut p = with(base(), "concurrent_users", json!(7));
        p["arrivals"] = json!("poisson");
        p["model"] = json!("open");
        p["break_on"] = json!({"p99_ms": 250, "error_rate": 0.01});
        p["consecutive"] = json!(3);
        let t = load(p);
        assert_eq!(t.concurrent_users, 7);
        assert_eq!(t.arrivals, crate::load::schedule::Arrivals::Poisson);
        let s = t.stress.unwrap();
        assert_eq!(
            s.break_on,
            BreakOn {
                error_rate: 0.01,
                p99_ms: 250.0,
                min_achieved_ratio: 0.95
            }
        );
        assert_eq!(s.consecutive, 3);
        // A load test has no stress spec.
        let plan = validate(
            &json!({"tasks": [{"type": "load_test", "parameters": {"targets": ["http://127.0.0.1:9/"], "duration": 1, "base_rps": 5}}]}),
            &settings(),
        )
        .unwrap();
        let TaskKind::LoadTest(l) = &plan.tasks[0].kind;
        assert!(l.stress.is_none());
        assert!(serde_json::to_value(l).unwrap().get("stress").is_none());
    }

    #[test]
    fn every_mistake_is_named() {
        let mut p = with(base(), "step_rps", json!(0));
        p["step_duration"] = json!("1500ms");
        p["max_rps"] = json!(50);
        p["pattern"] = json!("ramp_up");
        p["duration"] = json!(10);
        p["model"] = json!("closed");
        p["consecutive"] = json!(0);
        p["break_on"] = json!({"error_rate": 2, "p99": 5, "min_achieved_ratio": 0});
        p["targets"] = json!([{"url": "http://10.9.9.9/"}]);
        let got = errors(p);
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "step_rps",
            "step_duration",
            "max_rps",
            "pattern",
            "duration",
            "model",
            "consecutive",
            "break_on.error_rate",
            "break_on.p99",
            "break_on.min_achieved_ratio",
            "targets[0].url",
        ] {
            let want = format!("tasks[0].parameters.{want}");
            assert!(
                fields.contains(&want.as_str()),
                "missing {want} in {got:#?}"
            );
        }
        // Only those: no complaint about the stages the test made itself.
        assert!(!fields.iter().any(|f| f.contains("stages")), "{got:#?}");
        let got = errors(json!({"targets": ["http://127.0.0.1:9/"]}));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        for key in ["start_rps", "step_rps", "step_duration", "max_rps"] {
            let want = format!("tasks[0].parameters.{key}");
            assert!(
                fields.contains(&want.as_str()),
                "missing {want} in {got:#?}"
            );
        }
    }

    #[test]
    fn too_many_or_too_long_steps_are_refused() {
        let got = errors(with(base(), "step_rps", json!(0.001)));
        assert_eq!(got[0].0, "tasks[0].parameters.max_rps", "{got:?}");
        assert!(got[0].1.contains("steps"), "{got:?}");
        let got = errors(with(base(), "step_duration", json!("2h")));
        assert_eq!(got[0].0, "tasks[0].parameters.max_rps", "{got:?}");
        assert!(got[0].1.contains("task_timeout"), "{got:?}");
    }

    fn point(second: u64, planned: f64, completed: u64, errors: u64, p99: f64) -> TimelinePoint {
        TimelinePoint {
            second,
            planned,
            sent: planned as u64,
            completed,
            errors,
            p50_ms: p99 / 4.0,
            p95_ms: p99 / 2.0,
            p99_ms: p99,
        }
    }

    /// Feeds `per_second(second, step_rate)` for every second of every step; returns the
    /// result and the second at which the watch said stop.
    fn run(
        s: &StressSpec,
        mut per_second: impl FnMut(u64, f64) -> TimelinePoint,
    ) -> (StressResult, Option<(u64, String)>) {
        let mut w = StressWatch::new(s);
        let mut stop = None;
        let secs = s.step_duration.as_secs();
        for (i, rps) in s.steps().into_iter().enumerate() {
            for k in 0..secs {
                let second = i as u64 * secs + k;
                if let Some(why) = w.second(&per_second(second, rps)) {
                    assert!(stop.is_none(), "said stop twice");
                    stop = Some((second, why));
                }
            }
        }
        (w.result(), stop)
    }

    #[test]
    fn p99_over_the_limit_for_two_seconds_breaks() {
        let s = spec(100.0, 100.0, 500.0, 3);
        // p99 goes bad from 300 rps on.
        let (r, stop) = run(&s, |sec, rps| {
            point(
                sec,
                rps,
                rps as u64,
                0,
                if rps >= 300.0 { 1840.2 } else { 20.0 },
            )
        });
        assert_eq!(r.breaking_point_rps, Some(200.0));
        assert_eq!(r.broke_at_rps, Some(300.0));
        assert_eq!(r.condition.as_deref(), Some("p99_ms 1840.2 > 1000 for 2 s"));
        assert!(r.broke);
        // Step 300 runs seconds 6..9; 6 is its warm-up, 7 and 8 break it.
        let (at, why) = stop.unwrap();
        assert_eq!(at, 8);
        assert!(
            why.contains("300 rps") && why.contains("breaking point 200 rps"),
            "{why}"
        );
        assert_eq!(r.steps.len(), 3, "nothing after the break: {:?}", r.steps);
        assert_eq!(r.steps[2].seconds, 2);
        assert_eq!(r.steps[0].achieved_rps, 100.0);
    }

    #[test]
    fn warm_up_seconds_and_single_blips_do_not_break() {
        let s = spec(100.0, 100.0, 400.0, 3);
        // Every warm-up second is terrible, and one evaluated second is too.
        let (r, stop) = run(&s, |sec, rps| {
            if sec % 3 == 0 || sec == 4 {
                point(sec, rps, 0, 0, 9000.0)
            } else {
                point(sec, rps, rps as u64, 0, 10.0)
            }
        });
        assert!(stop.is_none(), "{stop:?}");
        assert!(!r.broke);
        assert_eq!(r.breaking_point_rps, Some(400.0));
        assert_eq!((r.broke_at_rps, r.condition), (None, None));
        assert_eq!(r.steps.len(), 4);
        assert!(r.steps.iter().all(|st| st.seconds == 2));
    }

    #[test]
    fn a_streak_runs_across_steps_and_blames_its_first() {
        // Two-second steps evaluate one second each: a streak of 2 spans two steps.
        let s = spec(100.0, 50.0, 300.0, 2);
        let (r, stop) = run(&s, |sec, rps| {
            let bad = rps >= 200.0;
            point(sec, rps, if bad { 5 } else { rps as u64 }, 5, 10.0)
        });
        assert!(r.broke);
        assert_eq!(r.broke_at_rps, Some(200.0));
        assert_eq!(r.breaking_point_rps, Some(150.0));
        // Step 250's evaluated second is 7.
        assert_eq!(stop.unwrap().0, 7);
        assert!(
            r.condition
                .as_deref()
                .unwrap()
                .starts_with("error_rate 1.000 > 0.05"),
            "{r:?}"
        );
    }

    #[test]
    fn the_first_step_breaking_has_no_breaking_point() {
        let s = spec(100.0, 100.0, 300.0, 2);
        let (r, _) = run(&s, |sec, rps| point(sec, rps, (rps / 2.0) as u64, 0, 10.0));
        assert!(r.broke);
        assert_eq!(r.breaking_point_rps, None);
        assert_eq!(r.broke_at_rps, Some(100.0));
        assert_eq!(
            r.condition.as_deref(),
            Some("achieved_ratio 0.500 < 0.95 (50 of 100 planned) for 2 s")
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["breaking_point_rps"], Value::Null);
        let back: StressResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        let text = r.to_text();
        assert!(
            text.contains("breaking point none, broke at 100 rps: achieved_ratio 0.500"),
            "{text}"
        );
        assert!(text.contains("     100.0      50.0"), "{text}");
    }

    #[test]
    fn catching_up_sees_every_second_once() {
        let s = spec(100.0, 100.0, 500.0, 3);
        let mut server = capacity_server(250.0);
        let timeline: Vec<TimelinePoint> = s
            .steps()
            .iter()
            .enumerate()
            .flat_map(|(i, &rps)| (0..3).map(move |k| (i as u64 * 3 + k, rps)))
            .map(|(sec, rps)| server(sec, rps))
            .collect();
        let mut one_by_one = StressWatch::new(&s);
        let first: Vec<Option<String>> = timeline.iter().map(|p| one_by_one.second(p)).collect();
        // Merged in uneven batches, with repeats of the same prefix.
        let mut batched = StressWatch::new(&s);
        let mut said = Vec::new();
        for end in [0, 2, 2, 5, 6, 11, 15] {
            said.extend(batched.catch_up(&timeline[..end]));
        }
        assert_eq!(said, first.into_iter().flatten().collect::<Vec<_>>());
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(batched.result(), one_by_one.result());
        assert_eq!(batched.result().breaking_point_rps, Some(200.0));
    }

    #[test]
    fn seconds_past_the_last_step_are_not_evaluated() {
        let s = spec(100.0, 100.0, 100.0, 2);
        let mut w = StressWatch::new(&s);
        for sec in 2..10 {
            assert_eq!(w.second(&point(sec, 0.0, 0, 0, 0.0)), None);
            assert_eq!(w.second(&point(sec, 100.0, 0, 0, 0.0)), None);
        }
        assert!(w.result().steps.is_empty());
    }

    #[test]
    fn a_stress_task_reports_its_result_in_json_text_and_html() {
        use crate::stats::report::{Report, TaskInfo};
        use crate::stats::{TaskAccumulator, Window};
        let s = spec(100.0, 100.0, 300.0, 2);
        let steps = s.steps();
        let rate = move |k: u64| steps.get(k as usize / 2).copied().unwrap_or(0.0);
        let mut acc = TaskAccumulator::new(1, Box::new(rate.clone()));
        for k in 0..6 {
            let mut w = Window::new(k);
            // 150 served a second at most; latency high past it.
            let served = rate(k).min(150.0) as u64;
            w.sent = rate(k) as u64;
            for _ in 0..served {
                let ms = if rate(k) > 150.0 { 1500 } else { 5 };
                let outcome = crate::stats::Outcome {
                    status: Some(200),
                    error: None,
                    bytes: 0,
                    slow: false,
                };
                w.record(
                    &outcome,
                    Duration::from_millis(ms),
                    Duration::from_millis(ms),
                );
            }
            acc.add(0, w, k == 5);
        }
        let info = |stress: Option<StressSpec>| TaskInfo {
            name: "capacity".into(),
            model: "open",
            pattern: "stages".into(),
            arrivals: "uniform",
            seed: 1,
            concurrent_users: 10,
            duration_s: 6.0,
            planned_requests: Some(1200),
            nodes: Vec::new(),
            lost: Vec::new(),
            reported_sent: Vec::new(),
            kind: if stress.is_some() {
                "stress_test"
            } else {
                "load_test"
            },
            stress,
            thresholds: Vec::new(),
            aborted: None,
        };
        let report = Report::build("stress".into(), 0, vec![(info(Some(s)), &acc)]);
        let t = &report.tasks[0];
        assert_eq!(t.kind, "stress_test");
        let r = t.stress.as_ref().expect("a stress result");
        assert_eq!(
            (r.breaking_point_rps, r.broke_at_rps),
            (Some(100.0), Some(200.0))
        );
        assert!(
            r.condition.as_deref().unwrap().starts_with("p99_ms 1500"),
            "{r:?}"
        );
        assert!(
            report
                .to_text()
                .contains("breaking point 100 rps, broke at 200 rps")
        );
        let html = crate::stats::html::render(&report);
        assert!(html.contains(r#"data-figure="breaking_point_rps" data-value="100""#));
        assert!(html.contains(r#"<div class="charts" data-stress="0">"#));
        // A load test has neither.
        let plain = Report::build("load".into(), 0, vec![(info(None), &acc)]);
        assert_eq!(plain.tasks[0].kind, "load_test");
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json["tasks"][0].get("stress").is_none());
        assert!(!crate::stats::html::render(&plain).contains(r#"class="charts" data-stress"#));
    }

    /// A server that serves at most `k` requests a second and queues the rest (FIFO):
    /// completions are `min(planned + queue, k)`, and latency grows with the queue.
    fn capacity_server(k: f64) -> impl FnMut(u64, f64) -> TimelinePoint {
        let mut queue = 0.0_f64;
        move |sec, rps| {
            let served = (queue + rps).min(k);
            queue = queue + rps - served;
            let p99 = 5.0 + queue / k * 1000.0;
            point(sec, rps, served.round() as u64, 0, p99)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Against a server of capacity K the breaking point is the highest step at or below
        /// K, or a step above K that still serves `min_achieved_ratio` of its plan; the
        /// broken step is above K.
        #[test]
        fn the_breaking_point_finds_the_capacity(
            start in 10.0f64..200.0,
            step in 5.0f64..100.0,
            n_steps in 3usize..30,
            k_frac in 0.0f64..1.0,
            secs in 2u64..6,
            consecutive in 1u32..4,
        ) {
            let max = start + step * (n_steps - 1) as f64;
            let k = start + step * 0.5 + k_frac * (max - start - step);
            let mut s = spec(start, step, max, secs);
            s.consecutive = consecutive;
            let (r, stop) = run(&s, capacity_server(k));
            let highest_held = s.steps().into_iter().filter(|r| *r <= k).fold(0.0, f64::max);
            let bp = r.breaking_point_rps.expect("the first step is below K");
            prop_assert!(bp >= highest_held, "{} below {} (k {})", bp, highest_held, k);
            prop_assert!(bp <= k / 0.95 + 1.0, "{} above k {}", bp, k);
            prop_assert_eq!(r.broke, stop.is_some());
            if r.broke {
                let at = r.broke_at_rps.unwrap();
                prop_assert!(at > k);
                prop_assert!((at - bp - step).abs() < 1e-6, "{} then {}", bp, at);
            }
            // The curve lists the steps in order, each achieving at most K (rounded).
            prop_assert!(r.steps.windows(2).all(|w| w[0].rps < w[1].rps));
            prop_assert!(r.steps.iter().all(|st| st.achieved_rps <= k + 1.0));
        }

        /// A server that never breaks runs every step.
        #[test]
        fn a_server_with_room_to_spare_reaches_max(
            start in 20.0f64..500.0,
            step in 1.0f64..100.0,
            n_steps in 1usize..20,
            secs in 2u64..5,
        ) {
            let max = start + step * (n_steps - 1) as f64;
            let s = spec(start, step, max, secs);
            let (r, stop) = run(&s, capacity_server(max * 2.0));
            prop_assert!(stop.is_none());
            prop_assert!(!r.broke);
            prop_assert_eq!(r.breaking_point_rps, Some(max));
            prop_assert_eq!(r.steps.len(), s.steps().len());
        }
    }
}
