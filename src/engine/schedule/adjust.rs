//! Live changes to a running task's plan: scale the rest of it, set new rates, change the
//! closed model's users, pause and resume. Plain data and functions; the orchestrator decides
//! when a change holds, every node applies the same list to the same plan, so every node
//! computes the same new plan and the cluster's sum stays exact.
//!
//! A change holds from `from_ms` after the task's start, an instant a little in the future
//! and on a [`POISSON_BLOCK`] boundary, so every node learns of it before it matters and no
//! Poisson block straddles it. The plan before that instant never changes: the arrivals
//! already sent keep their numbers, and a node that rebuilds its arrivals from the new plan
//! goes on from the first arrival it has not handled.
//!
//! A pause is a stretch of zero rate: the rest of the plan moves later by the pause's length.
//! Until it is resumed, a pause lasts [`MAX_PAUSE`]; a resume cuts it short, and the rest of
//! the plan follows from the resume's instant.

use std::time::Duration;

use super::{POISSON_BLOCK, PlanBuilder, RatePlan, Segment};

/// How long a pause lasts when nobody resumes it.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

pub use crate::stats::change::{Adjustment, Change};

/// The first instant a change asked for `now_ms` after the task's start can hold: `margin`
/// later, rounded up to a [`POISSON_BLOCK`] boundary.
pub fn change_instant(now_ms: u64, margin: Duration) -> u64 {
    let block = POISSON_BLOCK.as_millis() as u64;
    (now_ms + margin.as_millis() as u64).div_ceil(block) * block
}

/// Whether the task is paused at `offset` after its start, by `adjustments`.
pub fn paused_at(adjustments: &[Adjustment], offset: Duration) -> bool {
    let ms = offset.as_millis() as u64;
    let mut paused = None;
    for a in adjustments {
        if let Change::Paused(p) = a.change
            && a.from_ms <= ms
        {
            paused = if p { paused.or(Some(a.from_ms)) } else { None };
        }
    }
    paused.is_some_and(|since| ms < since + MAX_PAUSE.as_millis() as u64)
}

/// The closed model's users over the cluster at `offset`: the last change's, else `initial`.
pub fn users_at(adjustments: &[Adjustment], offset: Duration, initial: u32) -> u32 {
    let ms = offset.as_millis() as u64;
    adjustments
        .iter()
        .filter(|a| a.from_ms <= ms)
        .fold(initial, |users, a| match a.change {
            Change::ConcurrentUsers(u) => u,
            _ => users,
        })
}

/// How long a task that planned `duration` runs, with its pauses.
pub fn stretched(duration: Duration, adjustments: &[Adjustment]) -> Duration {
    RatePlan::constant(1.0, duration)
        .adjusted((1.0, 1.0), adjustments)
        .duration()
}

impl RatePlan {
    /// The plan as `adjustments` (in the order they were made) changed it; `rates` are the
    /// profile's `(base_rps, peak_rps)`, which a [`Change::Rates`] maps from.
    pub fn adjusted(&self, rates: (f64, f64), adjustments: &[Adjustment]) -> RatePlan {
        let mut plan = self.clone();
        let mut rates = rates;
        let mut paused_since = None;
        for a in adjustments {
            let at = Duration::from_millis(a.from_ms);
            // The uniform arrivals before the instant, n < Λ(at): the new plan keeps them even
            // if its rest is too small for its total to round up to them.
            let before = plan.uniform_count().min(plan.integral(at).ceil() as u64);
            let kept = plan.kept.max(before);
            let (head, tail) = plan.split(at);
            let tail = match a.change {
                Change::RateFactor(f) => map_rates(tail, |r| r * f),
                Change::Rates { base_rps, peak_rps } => {
                    let (b0, p0) = rates;
                    let p1 = peak_rps.unwrap_or(p0 - b0 + base_rps);
                    rates = (base_rps, p1);
                    if (p0 - b0).abs() < 1e-9 {
                        map_rates(tail, |r| if r > 0.0 { base_rps } else { 0.0 })
                    } else {
                        let k = (p1 - base_rps) / (p0 - b0);
                        map_rates(tail, |r| {
                            if r > 0.0 {
                                (base_rps + (r - b0) * k).max(0.0)
                            } else {
                                0.0
                            }
                        })
                    }
                }
                Change::ConcurrentUsers(_) => tail,
                // A pause with nothing left to hold back changes nothing.
                Change::Paused(true) if paused_since.is_none() && !tail.is_empty() => {
                    paused_since = Some(at);
                    let mut pause = vec![Segment {
                        start: Duration::ZERO,
                        duration: MAX_PAUSE,
                        from_rps: 0.0,
                        to_rps: 0.0,
                    }];
                    pause.extend(tail);
                    pause
                }
                Change::Paused(false) => match paused_since.take() {
                    // What is left of the pause goes; the rest follows from now on.
                    Some(since) => {
                        let left = (since + MAX_PAUSE).saturating_sub(at);
                        RatePlan::from_pieces(tail).split(left).1
                    }
                    None => tail,
                },
                Change::Paused(true) => tail,
            };
            plan = RatePlan::joined(head, tail);
            plan.kept = kept;
        }
        plan
    }

    /// The plan before `at` and after it, each piece's `start` from its own beginning.
    fn split(&self, at: Duration) -> (Vec<Segment>, Vec<Segment>) {
        let (mut head, mut tail) = (Vec::new(), Vec::new());
        for s in &self.segments {
            let end = s.start + s.duration;
            if end <= at {
                head.push(*s);
            } else if s.start >= at {
                tail.push(Segment {
                    start: s.start - at,
                    ..*s
                });
            } else {
                let d = s.duration.as_secs_f64();
                let cut = (at - s.start).as_secs_f64();
                let mid = s.from_rps + (s.to_rps - s.from_rps) * cut / d;
                head.push(Segment {
                    duration: at - s.start,
                    to_rps: mid,
                    ..*s
                });
                tail.push(Segment {
                    start: Duration::ZERO,
                    duration: end - at,
                    from_rps: mid,
                    to_rps: s.to_rps,
                });
            }
        }
        (head, tail)
    }

    fn from_pieces(segments: Vec<Segment>) -> RatePlan {
        RatePlan { segments, kept: 0 }
    }

    /// `head` (which starts at 0), then `tail` right after it.
    fn joined(head: Vec<Segment>, tail: Vec<Segment>) -> RatePlan {
        let mut plan = PlanBuilder::default();
        for s in head.into_iter().chain(tail) {
            plan.push(s.duration, s.from_rps, s.to_rps);
        }
        plan.build()
    }
}

fn map_rates(segments: Vec<Segment>, f: impl Fn(f64) -> f64) -> Vec<Segment> {
    segments
        .into_iter()
        .map(|s| Segment {
            from_rps: f(s.from_rps),
            to_rps: f(s.to_rps),
            ..s
        })
        .collect()
}

#[cfg(test)]
mod tests;
