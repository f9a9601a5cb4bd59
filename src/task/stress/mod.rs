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
//! A stress test runs as an ordinary [`LoadTask`](crate::task::load::LoadTask): its steps become a `stages` profile (each
//! step a 1 ms rise, then a hold), so nodes, shares and merging are those of a load test. The
//! [`StressWatch`] reads the merged seconds and says when to stop: once one breaking
//! condition (error rate above `error_rate`, p99 above `p99_ms`, or completed requests below
//! `min_achieved_ratio` of the planned ones) held for `consecutive` evaluated seconds in a row.
//! The first second of every step is a warm-up: it neither counts nor breaks a streak. The
//! step in which the streak began is the one that broke; the step before it is the breaking
//! point, the last sustainable rate.

use serde::{Deserialize, Serialize};

use crate::stats::TimelinePoint;

pub mod spec;

pub use spec::{BreakOn, MAX_STEPS, StressSpec, read_stress_task};

/// What a stress test found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

impl crate::stats::watch::KindWatch for StressWatch {
    fn catch_up(&mut self, timeline: &[TimelinePoint]) -> Option<String> {
        StressWatch::catch_up(self, timeline)
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

pub mod mcp;
pub mod report;
#[cfg(test)]
mod tests;
