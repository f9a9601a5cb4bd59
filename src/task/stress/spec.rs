//! Reads the `parameters` of a `stress_test` task: the stress keys into a [`StressSpec`], the
//! rest by the load-task reader with the steps as its stages.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::settings::LoadSettings;
use crate::task::load::LoadTask;
use crate::validate::{FieldErrors, Obj, join};

/// The most steps a stress test may have.
pub const MAX_STEPS: usize = 1000;

/// The rise into each step: short enough to read as a jump, long enough to be a stage.
const RISE: Duration = Duration::from_millis(1);

/// The stepped rate and the breaking conditions of a stress test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
pub fn read_stress_task(
    v: &Value,
    path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> Option<LoadTask> {
    let Value::Object(map) = v else {
        // Let the load reader name the problem.
        return crate::task::load::read_load_task(v, path, settings, e);
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
    let task = crate::task::load::read_load_task(&Value::Object(rest), path, settings, e);
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
        crate::plan::within_max_rps(&o.key_path(key), x, settings, e).then_some(x)
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
    if consecutive == 0 || consecutive as usize > MAX_STEPS {
        e.push(
            o.key_path("consecutive"),
            format!("must be in 1..={MAX_STEPS}, got {consecutive}"),
        );
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
    check_steps(&spec, &max_rps_path, settings, e).then_some(spec)
}

/// The number of steps and their total time within the limits; reported at `max_rps_path`.
fn check_steps(
    spec: &StressSpec,
    max_rps_path: &str,
    settings: &LoadSettings,
    e: &mut FieldErrors,
) -> bool {
    let n = (spec.max_rps - spec.start_rps) / spec.step_rps + 1.0;
    if n > MAX_STEPS as f64 {
        e.push(
            max_rps_path,
            format!("makes {n:.0} steps from start_rps by step_rps, more than {MAX_STEPS}"),
        );
        return false;
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
        return false;
    }
    true
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
