use super::*;
use crate::engine::schedule::{Arrivals, Part};
use proptest::prelude::*;

fn adj(from_ms: u64, change: Change) -> Adjustment {
    Adjustment {
        from_ms,
        change,
        by: "test".into(),
        at_unix_ms: 0,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_factor_scales_only_the_rest_of_the_plan() {
    let plan = RatePlan::constant(300.0, secs(10))
        .adjusted((300.0, 300.0), &[adj(5000, Change::RateFactor(2.0))]);
    assert_eq!(plan.duration(), secs(10));
    assert!((plan.integral(secs(5)) - 1500.0).abs() < 1e-6);
    assert!((plan.total() - 4500.0).abs() < 1e-6);
    assert_eq!(plan.rate_at(Duration::from_millis(4999)), 300.0);
    assert_eq!(plan.rate_at(secs(5)), 600.0);
}

#[test]
fn new_rates_map_the_pattern_from_the_old_base_and_peak() {
    // A ramp from 100 to 200 over 10 s, re-based at 5 s onto [300, 500]: it goes on from 400.
    let ramp = RatePlan {
        segments: vec![Segment {
            start: Duration::ZERO,
            duration: secs(10),
            from_rps: 100.0,
            to_rps: 200.0,
        }],
        kept: 0,
    };
    let rates = Change::Rates {
        base_rps: 300.0,
        peak_rps: Some(500.0),
    };
    let plan = ramp.adjusted((100.0, 200.0), &[adj(5000, rates)]);
    // 150 is halfway up the old range: 300 + 50 · 2.
    assert!(
        (plan.rate_at(secs(5)) - 400.0).abs() < 1e-9,
        "{}",
        plan.rate_at(secs(5))
    );
    let plan = ramp.adjusted(
        (100.0, 200.0),
        &[adj(
            5000,
            Change::Rates {
                base_rps: 300.0,
                peak_rps: Some(400.0),
            },
        )],
    );
    assert!((plan.rate_at(secs(5)) - 350.0).abs() < 1e-9);
    // A constant plan's rate becomes the new base; a base alone shifts a ramp.
    let flat = RatePlan::constant(300.0, secs(10));
    let set = flat.adjusted(
        (300.0, 300.0),
        &[adj(
            2000,
            Change::Rates {
                base_rps: 50.0,
                peak_rps: None,
            },
        )],
    );
    assert_eq!(set.rate_at(secs(3)), 50.0);
    let shifted = ramp.adjusted(
        (100.0, 200.0),
        &[adj(
            5000,
            Change::Rates {
                base_rps: 110.0,
                peak_rps: None,
            },
        )],
    );
    assert!((shifted.rate_at(secs(5)) - 160.0).abs() < 1e-9);
}

#[test]
fn a_pause_moves_the_rest_later_and_a_resume_brings_it_back() {
    let plan = RatePlan::constant(100.0, secs(10));
    let paused = plan.adjusted((100.0, 100.0), &[adj(3000, Change::Paused(true))]);
    assert_eq!(paused.duration(), secs(10) + MAX_PAUSE);
    assert!((paused.total() - 1000.0).abs() < 1e-6);
    let both = [
        adj(3000, Change::Paused(true)),
        adj(6000, Change::Paused(false)),
    ];
    let resumed = plan.adjusted((100.0, 100.0), &both);
    assert_eq!(resumed.duration(), secs(13));
    assert!((resumed.total() - 1000.0).abs() < 1e-6);
    assert_eq!(resumed.between(secs(3), secs(6)), 0.0);
    assert_eq!(resumed.rate_at(secs(6)), 100.0);
    assert!(paused_at(&both, Duration::from_millis(3000)));
    assert!(paused_at(&both, Duration::from_millis(5999)));
    assert!(!paused_at(&both, Duration::from_millis(6000)));
    assert!(!paused_at(&both, Duration::from_millis(2999)));
    assert_eq!(stretched(secs(10), &both), secs(13));
    // A second pause while paused, and a resume while running, change nothing.
    let noise = [
        adj(3000, Change::Paused(true)),
        adj(4000, Change::Paused(true)),
        adj(6000, Change::Paused(false)),
        adj(7000, Change::Paused(false)),
    ];
    let noisy = plan.adjusted((100.0, 100.0), &noise);
    assert_eq!(noisy.duration(), resumed.duration());
    for ms in (0..14_000).step_by(50) {
        let t = Duration::from_millis(ms);
        assert_eq!(noisy.rate_at(t), resumed.rate_at(t), "at {ms} ms");
    }
}

#[test]
fn a_pause_after_the_end_changes_nothing() {
    let plan = RatePlan::constant(100.0, secs(10));
    let late = [adj(10_000, Change::Paused(true))];
    assert_eq!(plan.adjusted((100.0, 100.0), &late).duration(), secs(10));
    assert_eq!(stretched(secs(10), &late), secs(10));
    let later = [
        adj(12_000, Change::Paused(true)),
        adj(13_000, Change::Paused(false)),
    ];
    assert_eq!(plan.adjusted((100.0, 100.0), &later).duration(), secs(10));
}

#[test]
fn users_follow_the_last_change_in_force() {
    let list = [
        adj(1000, Change::ConcurrentUsers(20)),
        adj(2000, Change::RateFactor(3.0)),
        adj(3000, Change::ConcurrentUsers(5)),
    ];
    assert_eq!(users_at(&list, Duration::from_millis(999), 10), 10);
    assert_eq!(users_at(&list, Duration::from_millis(2500), 10), 20);
    assert_eq!(users_at(&list, secs(4), 10), 5);
}

#[test]
fn changes_hold_from_a_block_boundary_after_the_margin() {
    assert_eq!(change_instant(4020, Duration::from_millis(250)), 4300);
    assert_eq!(change_instant(4050, Duration::from_millis(250)), 4300);
    assert_eq!(change_instant(4051, Duration::from_millis(250)), 4400);
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0.0f64..4.0).prop_map(Change::RateFactor),
        (0.0f64..500.0, proptest::option::of(0.0f64..800.0))
            .prop_map(|(base_rps, peak_rps)| Change::Rates { base_rps, peak_rps }),
        any::<bool>().prop_map(Change::Paused),
        (1u32..100).prop_map(Change::ConcurrentUsers),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The arrivals before a change's instant are the same, by number and time, under the
    /// plan before it and after it: a node that rebuilds its arrivals loses or repeats none.
    #[test]
    fn arrivals_before_a_change_never_move(
        base in 10.0f64..400.0,
        peak in 10.0f64..800.0,
        dur in 2u64..20,
        blocks in proptest::collection::vec(1u64..40, 1..4),
        changes in proptest::collection::vec(change(), 1..4),
        poisson in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mode = if poisson { Arrivals::Poisson } else { Arrivals::Uniform };
        let plan = RatePlan {
            segments: vec![Segment {
                start: Duration::ZERO,
                duration: secs(dur),
                from_rps: base,
                to_rps: peak,
            }],
            kept: 0,
        };
        let mut list: Vec<Adjustment> = Vec::new();
        let mut from = 0;
        for (b, c) in blocks.iter().zip(&changes) {
            from += b * POISSON_BLOCK.as_millis() as u64;
            let before = plan.adjusted((base, peak), &list);
            list.push(adj(from, *c));
            let after = plan.adjusted((base, peak), &list);
            let at = Duration::from_millis(from);
            prop_assert!((before.integral(at) - after.integral(at)).abs() < 1e-6);
            let old: Vec<_> = before
                .own_arrivals(mode, seed, Part::WHOLE)
                .take_while(|(_, t)| *t < at)
                .collect();
            let new: Vec<_> = after
                .own_arrivals(mode, seed, Part::WHOLE)
                .take_while(|(_, t)| *t < at)
                .collect();
            prop_assert_eq!(old.len(), new.len());
            for ((n0, t0), (n1, t1)) in old.iter().zip(&new) {
                prop_assert_eq!(n0, n1);
                let gap = t0.abs_diff(*t1);
                prop_assert!(gap < Duration::from_micros(1), "{:?} vs {:?}", t0, t1);
            }
        }
    }
}

/// A change whose rest rounds to less than what was sent before it keeps those arrivals
/// (found by the property above: a ramp set to nothing at 0.5 s).
#[test]
fn a_rest_of_nothing_keeps_the_arrivals_already_sent() {
    let ramp = RatePlan {
        segments: vec![Segment {
            start: Duration::ZERO,
            duration: secs(4),
            from_rps: 383.62814665200864,
            to_rps: 10.0,
        }],
        kept: 0,
    };
    let none = Change::Rates {
        base_rps: 0.0,
        peak_rps: None,
    };
    let after = ramp.adjusted((383.62814665200864, 10.0), &[adj(500, none)]);
    let at = Duration::from_millis(500);
    let sent = ramp
        .arrivals(Arrivals::Uniform, 0)
        .take_while(|t| *t < at)
        .count() as u64;
    assert_eq!(after.planned_requests(Arrivals::Uniform, 0), sent);
    assert_eq!(after.arrivals(Arrivals::Uniform, 0).count() as u64, sent);
}
