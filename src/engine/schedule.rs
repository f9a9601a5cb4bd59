//! Load profiles become one [`RatePlan`]: a piecewise-linear request rate over time. Arrival
//! times come from the plan by inverting its integral, so the number of arrivals in `[0, T)`
//! equals the planned request count `∫₀ᵀ rate` (within one request).
//!
//! The patterns, with `b = base_rps`, `p = peak_rps`, `T = duration`, `t` the time since start:
//! - `constant`: `rate(t) = b`.
//! - `ramp_up`: linear from `b` to `p` over `ramp_duration` (default `T`), then `p`.
//! - `ramp_down`: linear from `p` to `b` over `ramp_duration` (default `T`), then `b`.
//! - `spike`: `b`, except `p` during `[spike_at, spike_at + spike_duration)`
//!   (defaults `T/2` and `max(T/10, 1 s)`).
//! - `wave`: `b + (p - b)(1 - cos(2πt / wave_period)) / 2` (default period 60 s), sampled into
//!   linear pieces of `wave_period / 32`; it starts and ends each period at `b`.
//! - `random`: every `random_step` (default 5 s) a new rate drawn uniformly from `[b, p]` with
//!   the plan's `seed`, held for the step.
//! - `burst`: `p` during the first `burst_duration` (default 1 s) of every `burst_interval`
//!   (default 10 s), `b` otherwise.
//! - `stages`: each stage moves linearly from the previous stage's `target_rps` (the first from
//!   `b`, 0 when absent) to its own over its `duration`; `T` is the sum of the stages.
//!
//! Arrivals are `uniform` (the k-th request at `Λ⁻¹(k)`, `Λ` the integral of the rate) or
//! `poisson` (a Poisson process with the planned rate, drawn block by block from the seed so
//! that each node of a cluster draws only its own: see [`own`]).

use std::f64::consts::PI;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

pub mod adjust;
mod own;
pub use own::{OwnArrivals, POISSON_BLOCK, Part};

/// One linear piece of a rate plan: the rate moves from `from_rps` to `to_rps` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Segment {
    pub start: Duration,
    pub duration: Duration,
    pub from_rps: f64,
    pub to_rps: f64,
}

impl Segment {
    /// Requests planned in the whole segment.
    pub fn area(&self) -> f64 {
        (self.from_rps + self.to_rps) / 2.0 * self.duration.as_secs_f64()
    }

    /// Requests planned in the first `tau` seconds of the segment.
    fn area_until(&self, tau: f64) -> f64 {
        let d = self.duration.as_secs_f64();
        if d <= 0.0 {
            return 0.0;
        }
        let tau = tau.clamp(0.0, d);
        self.from_rps * tau + (self.to_rps - self.from_rps) * tau * tau / (2.0 * d)
    }

    /// Seconds into the segment at which `x` requests have been planned (`0 <= x <= area`).
    fn time_of(&self, x: f64) -> f64 {
        let d = self.duration.as_secs_f64();
        let (r0, r1) = (self.from_rps, self.to_rps);
        // Solves r0·τ + (r1 - r0)·τ²/(2d) = x in the form that stays stable when r1 ≈ r0.
        let disc = (r0 * r0 + 2.0 * (r1 - r0) * x / d).max(0.0);
        let denom = r0 + disc.sqrt();
        if denom <= 0.0 {
            d
        } else {
            (2.0 * x / denom).min(d)
        }
    }
}

/// How arrival times are spread under the planned rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    #[default]
    Uniform,
    Poisson,
}

impl Arrivals {
    /// Every kind of arrivals, as a plan names it.
    pub const ALL: [Arrivals; 2] = [Arrivals::Uniform, Arrivals::Poisson];
    pub const NAMES: [&'static str; 2] = ["uniform", "poisson"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The arrivals a plan names `name` (lower case).
    pub fn from_name(name: &str) -> Option<Arrivals> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Open model: arrivals at planned times. Closed model: users looping request → think time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    #[default]
    Open,
    Closed,
}

impl Model {
    pub const ALL: [Model; 2] = [Model::Open, Model::Closed];
    /// Every model, as a plan names it.
    pub const NAMES: [&'static str; 2] = ["open", "closed"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The model a plan names `name` (lower case).
    pub fn from_name(name: &str) -> Option<Model> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One stage of an explicit `stages` profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub duration: Duration,
    pub target_rps: f64,
}

/// A load shape with every option resolved to a value. In JSON it is tagged by its `pattern`
/// name; on the cluster's wire (postcard, which cannot read a tag inside) it goes as
/// [`WirePattern`] (see [`LoadProfile::pattern`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "pattern", rename_all = "snake_case")]
pub enum Pattern {
    Constant,
    RampUp {
        ramp_duration: Duration,
    },
    RampDown {
        ramp_duration: Duration,
    },
    Spike {
        spike_at: Duration,
        spike_duration: Duration,
    },
    Wave {
        wave_period: Duration,
    },
    Random {
        random_step: Duration,
    },
    Burst {
        burst_interval: Duration,
        burst_duration: Duration,
    },
    Stages {
        stages: Vec<Stage>,
    },
}

/// [`Pattern`]'s form on the cluster's wire: the variant first, then its fields. The same
/// variants (serde checks that they match).
#[derive(Serialize, Deserialize)]
#[serde(remote = "Pattern", rename_all = "snake_case")]
enum WirePattern {
    Constant,
    RampUp {
        ramp_duration: Duration,
    },
    RampDown {
        ramp_duration: Duration,
    },
    Spike {
        spike_at: Duration,
        spike_duration: Duration,
    },
    Wave {
        wave_period: Duration,
    },
    Random {
        random_step: Duration,
    },
    Burst {
        burst_interval: Duration,
        burst_duration: Duration,
    },
    Stages {
        stages: Vec<Stage>,
    },
}

/// A profile's pattern: tagged in human-readable formats (JSON), as [`WirePattern`] in the
/// others (postcard); it is read back only from the wire.
mod pattern_form {
    use serde::{Deserializer, Serialize, Serializer};

    use super::{Pattern, WirePattern};

    pub fn serialize<S: Serializer>(p: &Pattern, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            p.serialize(s)
        } else {
            WirePattern::serialize(p, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        WirePattern::deserialize(d)
    }
}

impl Pattern {
    /// Every pattern, as a plan names it (and as it is tagged when serialized).
    pub const NAMES: [&'static str; 8] = [
        "constant",
        "ramp_up",
        "ramp_down",
        "spike",
        "wave",
        "random",
        "burst",
        "stages",
    ];

    /// The options a plan may give a pattern (spans of time), and the patterns they belong to.
    pub const OPTIONS: [(&'static str, &'static [&'static str]); 7] = [
        ("ramp_duration", &["ramp_up", "ramp_down"]),
        ("spike_at", &["spike"]),
        ("spike_duration", &["spike"]),
        ("wave_period", &["wave"]),
        ("burst_interval", &["burst"]),
        ("burst_duration", &["burst"]),
        ("random_step", &["random"]),
    ];

    /// The pattern of a plan that gives none, and the one its `stages` key implies.
    pub const CONSTANT: &'static str = Self::NAMES[0];
    pub const STAGES: &'static str = Self::NAMES[7];

    /// The pattern's name, one of [`Pattern::NAMES`].
    pub fn name(&self) -> &'static str {
        let i = match self {
            Pattern::Constant => 0,
            Pattern::RampUp { .. } => 1,
            Pattern::RampDown { .. } => 2,
            Pattern::Spike { .. } => 3,
            Pattern::Wave { .. } => 4,
            Pattern::Random { .. } => 5,
            Pattern::Burst { .. } => 6,
            Pattern::Stages { .. } => 7,
        };
        Self::NAMES[i]
    }

    /// Whether the pattern named `name` moves between `base_rps` and a `peak_rps`.
    pub fn has_peak(name: &str) -> bool {
        name != Self::CONSTANT && name != Self::STAGES
    }

    /// The pattern a plan names, for a task of `duration`: each option from `option` or its
    /// default (see the module's description); `stages` for the `stages` pattern. `None` for
    /// an unknown name, or `stages` without its stages.
    pub fn from_name(
        name: &str,
        duration: Duration,
        option: impl Fn(&str) -> Option<Duration>,
        stages: Option<Vec<Stage>>,
    ) -> Option<Pattern> {
        let opt = |key: &str, default: Duration| option(key).unwrap_or(default);
        let i = Self::NAMES.iter().position(|n| *n == name)?;
        Some(match i {
            0 => Pattern::Constant,
            1 => Pattern::RampUp {
                ramp_duration: opt("ramp_duration", duration),
            },
            2 => Pattern::RampDown {
                ramp_duration: opt("ramp_duration", duration),
            },
            3 => Pattern::Spike {
                spike_at: opt("spike_at", duration / 2),
                spike_duration: opt(
                    "spike_duration",
                    (duration / 10).max(Duration::from_secs(1)),
                ),
            },
            4 => Pattern::Wave {
                wave_period: opt("wave_period", Duration::from_secs(60)),
            },
            5 => Pattern::Random {
                random_step: opt("random_step", Duration::from_secs(5)),
            },
            6 => Pattern::Burst {
                burst_interval: opt("burst_interval", Duration::from_secs(10)),
                burst_duration: opt("burst_duration", Duration::from_secs(1)),
            },
            _ => Pattern::Stages { stages: stages? },
        })
    }
}

/// Everything that decides a task's planned rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadProfile {
    pub duration: Duration,
    pub base_rps: f64,
    pub peak_rps: f64,
    #[serde(with = "pattern_form")]
    pub pattern: Pattern,
    /// Seeds the `random` pattern and Poisson arrivals.
    pub seed: u64,
}

/// Piecewise-linear request rate over time; the segments are contiguous from 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatePlan {
    pub segments: Vec<Segment>,
    /// Uniform arrivals a live change's plan keeps whatever its total rounds to: those the
    /// plan before the change had before its instant, already sent (see [`adjust`]).
    #[serde(skip)]
    pub kept: u64,
}

/// The accumulator of a task with this rate plan (`None`: a closed model, which plans no
/// rate): each merged second shows what the plan asked of it.
pub fn accumulator(shards: usize, rate: Option<RatePlan>) -> crate::stats::TaskAccumulator {
    match rate {
        Some(rate) => crate::stats::TaskAccumulator::new(shards, planned_seconds(rate)),
        None => crate::stats::TaskAccumulator::unplanned(shards),
    }
}

/// The requests `rate` plans in second `k`, as an accumulator reads them.
pub fn planned_seconds(rate: RatePlan) -> Box<dyn Fn(u64) -> f64 + Send> {
    Box::new(move |k| rate.between(Duration::from_secs(k), Duration::from_secs(k + 1)))
}

impl RatePlan {
    pub fn from_profile(p: &LoadProfile) -> RatePlan {
        let total = p.duration;
        let (b, peak) = (p.base_rps, p.peak_rps);
        let mut plan = PlanBuilder::default();
        match &p.pattern {
            Pattern::Constant => plan.push(total, b, b),
            Pattern::RampUp { ramp_duration } => {
                let ramp = (*ramp_duration).min(total);
                plan.push(ramp, b, peak);
                plan.push(total - ramp, peak, peak);
            }
            Pattern::RampDown { ramp_duration } => {
                let ramp = (*ramp_duration).min(total);
                plan.push(ramp, peak, b);
                plan.push(total - ramp, b, b);
            }
            Pattern::Spike {
                spike_at,
                spike_duration,
            } => {
                let at = (*spike_at).min(total);
                let len = (*spike_duration).min(total - at);
                plan.push(at, b, b);
                plan.push(len, peak, peak);
                plan.push(total - at - len, b, b);
            }
            Pattern::Wave { wave_period } => {
                let period = wave_period.as_secs_f64().max(1e-3);
                let piece = period / 32.0;
                let wave = |t: f64| b + (peak - b) * (1.0 - (2.0 * PI * t / period).cos()) / 2.0;
                let end = total.as_secs_f64();
                let mut t = 0.0;
                while t < end {
                    let next = (t + piece).min(end);
                    plan.push(Duration::from_secs_f64(next - t), wave(t), wave(next));
                    t = next;
                }
            }
            Pattern::Random { random_step } => {
                let mut rng = StdRng::seed_from_u64(p.seed ^ 0x005e_ed0f_7a7e);
                let (lo, hi) = (b.min(peak), b.max(peak));
                let step = (*random_step).max(Duration::from_millis(1));
                let mut left = total;
                while !left.is_zero() {
                    let len = step.min(left);
                    let r = lo + (hi - lo) * rng.random::<f64>();
                    plan.push(len, r, r);
                    left -= len;
                }
            }
            Pattern::Burst {
                burst_interval,
                burst_duration,
            } => {
                let interval = (*burst_interval).max(Duration::from_millis(1));
                let burst = (*burst_duration).min(interval);
                let mut left = total;
                while !left.is_zero() {
                    let hot = burst.min(left);
                    plan.push(hot, peak, peak);
                    left -= hot;
                    let cold = (interval - burst).min(left);
                    plan.push(cold, b, b);
                    left -= cold;
                }
            }
            Pattern::Stages { stages } => {
                let mut from = b;
                for s in stages {
                    plan.push(s.duration, from, s.target_rps);
                    from = s.target_rps;
                }
            }
        }
        plan.build()
    }

    /// A constant rate for `duration`.
    pub fn constant(rps: f64, duration: Duration) -> RatePlan {
        let mut plan = PlanBuilder::default();
        plan.push(duration, rps, rps);
        plan.build()
    }

    pub fn duration(&self) -> Duration {
        self.segments
            .last()
            .map(|s| s.start + s.duration)
            .unwrap_or_default()
    }

    /// The highest rate the plan asks for from `t` on.
    pub fn peak_from(&self, t: Duration) -> f64 {
        self.segments
            .iter()
            .filter(|s| s.start + s.duration > t)
            .map(|s| s.from_rps.max(s.to_rps))
            .fold(0.0, f64::max)
    }

    /// The planned rate at `t` (0 past the end).
    pub fn rate_at(&self, t: Duration) -> f64 {
        self.segments
            .iter()
            .find(|s| t >= s.start && t < s.start + s.duration)
            .map(|s| {
                let d = s.duration.as_secs_f64();
                let tau = (t - s.start).as_secs_f64();
                s.from_rps + (s.to_rps - s.from_rps) * tau / d
            })
            .unwrap_or(0.0)
    }

    /// Requests planned in `[0, t)`.
    pub fn integral(&self, t: Duration) -> f64 {
        let mut total = 0.0;
        for s in &self.segments {
            if t <= s.start {
                break;
            }
            total += s.area_until((t - s.start).as_secs_f64());
        }
        total
    }

    /// How many uniform arrivals the plan holds: its integral, rounded, or what it keeps.
    pub fn uniform_count(&self) -> u64 {
        (self.total().round() as u64).max(self.kept)
    }

    /// Requests planned in the whole plan.
    pub fn total(&self) -> f64 {
        self.segments.iter().map(Segment::area).sum()
    }

    /// Requests planned in `[from, to)`.
    pub fn between(&self, from: Duration, to: Duration) -> f64 {
        self.integral(to) - self.integral(from)
    }

    /// The requests a run of this plan is to send: for `uniform` arrivals the integral
    /// (rounded), for `poisson` the number of arrivals the seeded blocks hold (the integral is
    /// only its mean), which the nodes share out between them, so that a run that sent all it
    /// was given reports nothing unsent. One draw per [`POISSON_BLOCK`].
    pub fn planned_requests(&self, mode: Arrivals, seed: u64) -> u64 {
        match mode {
            Arrivals::Uniform => self.uniform_count(),
            Arrivals::Poisson => self.poisson_blocks(seed).sum(),
        }
    }

    /// Every arrival's offset from the start, in order, all before [`RatePlan::duration`]
    /// (the whole task's [`RatePlan::own_arrivals`]).
    pub fn arrivals(&self, mode: Arrivals, seed: u64) -> impl Iterator<Item = Duration> + '_ {
        self.own_arrivals(mode, seed, Part::WHOLE).map(|(_, at)| at)
    }
}

#[derive(Default)]
struct PlanBuilder {
    segments: Vec<Segment>,
    end: Duration,
}

impl PlanBuilder {
    fn push(&mut self, duration: Duration, from_rps: f64, to_rps: f64) {
        if duration.is_zero() {
            return;
        }
        self.segments.push(Segment {
            start: self.end,
            duration,
            from_rps,
            to_rps,
        });
        self.end += duration;
    }

    fn build(self) -> RatePlan {
        RatePlan {
            segments: self.segments,
            kept: 0,
        }
    }
}

#[cfg(test)]
mod tests;
