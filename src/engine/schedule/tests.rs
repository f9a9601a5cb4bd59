use super::*;
use proptest::prelude::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn profile(pattern: Pattern, base: f64, peak: f64, dur: f64, seed: u64) -> LoadProfile {
    LoadProfile {
        duration: secs(dur),
        base_rps: base,
        peak_rps: peak,
        pattern,
        seed,
    }
}

#[test]
fn names_read_back_and_match_the_serialized_tags() {
    let d = Duration::from_secs(20);
    for name in Pattern::NAMES {
        let stages = Some(vec![Stage {
            duration: d,
            target_rps: 1.0,
        }]);
        let p = Pattern::from_name(name, d, |_| None, stages).unwrap();
        assert_eq!(p.name(), name);
        assert_eq!(serde_json::to_value(&p).unwrap()["pattern"], name);
    }
    assert!(Pattern::from_name("zigzag", d, |_| None, None).is_none());
    assert!(Pattern::from_name(Pattern::STAGES, d, |_| None, None).is_none());
    for a in Arrivals::ALL {
        assert_eq!(Arrivals::from_name(a.name()), Some(a));
        assert_eq!(serde_json::to_value(a).unwrap(), a.name());
    }
    for m in Model::ALL {
        assert_eq!(Model::from_name(m.name()), Some(m));
        assert_eq!(serde_json::to_value(m).unwrap(), m.name());
    }
    for (option, owners) in Pattern::OPTIONS {
        assert!(
            owners.iter().all(|o| Pattern::NAMES.contains(o)),
            "{option}"
        );
    }
}

fn arb_pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        Just(Pattern::Constant),
        (0.1f64..60.0).prop_map(|r| Pattern::RampUp {
            ramp_duration: secs(r)
        }),
        (0.1f64..60.0).prop_map(|r| Pattern::RampDown {
            ramp_duration: secs(r)
        }),
        (0.0f64..30.0, 0.1f64..30.0).prop_map(|(a, d)| Pattern::Spike {
            spike_at: secs(a),
            spike_duration: secs(d)
        }),
        (0.5f64..40.0).prop_map(|p| Pattern::Wave {
            wave_period: secs(p)
        }),
        (0.1f64..10.0).prop_map(|s| Pattern::Random {
            random_step: secs(s)
        }),
        (0.5f64..20.0, 0.1f64..20.0).prop_map(|(i, d)| Pattern::Burst {
            burst_interval: secs(i),
            burst_duration: secs(d)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The arrival count in [0, T) is the plan's integral, within one request.
    #[test]
    fn uniform_arrivals_match_the_integral(
        pattern in arb_pattern(),
        base in 0.0f64..400.0,
        peak in 0.0f64..400.0,
        dur in 0.5f64..40.0,
        seed in any::<u64>(),
    ) {
        let plan = RatePlan::from_profile(&profile(pattern, base, peak, dur, seed));
        let n = plan.arrivals(Arrivals::Uniform, seed).count() as f64;
        prop_assert!((n - plan.total()).abs() <= 1.0, "{} arrivals vs integral {}", n, plan.total());
        prop_assert!((plan.duration().as_secs_f64() - dur).abs() < 1e-6);
    }

    /// Every pattern but stages stays between base and peak.
    #[test]
    fn rate_stays_between_base_and_peak(
        pattern in arb_pattern(),
        base in 0.0f64..1000.0,
        peak in 0.0f64..1000.0,
        dur in 0.5f64..40.0,
        seed in any::<u64>(),
        probes in proptest::collection::vec(0.0f64..1.0, 50),
    ) {
        let plan = RatePlan::from_profile(&profile(pattern, base, peak, dur, seed));
        let (lo, hi) = (base.min(peak) - 1e-9, base.max(peak) + 1e-9);
        for s in &plan.segments {
            prop_assert!(s.from_rps >= lo && s.from_rps <= hi && s.to_rps >= lo && s.to_rps <= hi);
        }
        for p in probes {
            let r = plan.rate_at(secs(p * dur));
            prop_assert!(r >= lo && r <= hi, "rate {} outside [{}, {}]", r, lo, hi);
        }
    }

    /// Arrivals are sorted and inside the plan.
    #[test]
    fn arrivals_are_ordered_and_inside(
        pattern in arb_pattern(),
        base in 0.0f64..200.0,
        peak in 0.0f64..200.0,
        dur in 0.5f64..20.0,
        seed in any::<u64>(),
        poisson in any::<bool>(),
    ) {
        let plan = RatePlan::from_profile(&profile(pattern, base, peak, dur, seed));
        let mode = if poisson { Arrivals::Poisson } else { Arrivals::Uniform };
        let mut last = Duration::ZERO;
        for t in plan.arrivals(mode, seed) {
            prop_assert!(t >= last && t < plan.duration());
            last = t;
        }
    }

    /// Stages: the plan ends at the last target and lasts the sum of the stages.
    #[test]
    fn stages_follow_their_targets(
        targets in proptest::collection::vec((0.1f64..10.0, 0.0f64..500.0), 1..6),
        base in 0.0f64..100.0,
    ) {
        let stages: Vec<Stage> = targets.iter()
            .map(|&(d, r)| Stage { duration: secs(d), target_rps: r }).collect();
        let total: f64 = targets.iter().map(|t| t.0).sum();
        let plan = RatePlan::from_profile(&profile(Pattern::Stages { stages }, base, 0.0, total, 1));
        prop_assert!((plan.duration().as_secs_f64() - total).abs() < 1e-6);
        let last = plan.segments.last().unwrap();
        prop_assert!((last.to_rps - targets.last().unwrap().1).abs() < 1e-9);
        let n = plan.arrivals(Arrivals::Uniform, 0).count() as f64;
        prop_assert!((n - plan.total()).abs() <= 1.0);
    }
}

#[test]
fn ramp_up_integral_is_the_trapezoid() {
    let ramp = Pattern::RampUp {
        ramp_duration: secs(10.0),
    };
    let plan = RatePlan::from_profile(&profile(ramp, 200.0, 2000.0, 10.0, 0));
    assert!((plan.total() - 11_000.0).abs() < 1e-6);
    assert_eq!(plan.arrivals(Arrivals::Uniform, 0).count(), 11_000);
    assert!((plan.between(secs(0.0), secs(1.0)) - 290.0).abs() < 1e-6);
}

#[test]
fn uniform_constant_arrivals_are_evenly_spaced() {
    let plan = RatePlan::constant(4.0, secs(1.0));
    let got: Vec<f64> = plan
        .arrivals(Arrivals::Uniform, 0)
        .map(|d| d.as_secs_f64())
        .collect();
    assert_eq!(got.len(), 4);
    for (i, t) in got.iter().enumerate() {
        assert!((t - i as f64 * 0.25).abs() < 1e-9, "{got:?}");
    }
}

/// Poisson counts over many seeds: mean and variance both equal the planned count.
#[test]
fn poisson_counts_have_the_right_mean_and_dispersion() {
    let plan = RatePlan::constant(50.0, secs(4.0)); // 200 planned
    let counts: Vec<f64> = (0..2000u64)
        .map(|seed| plan.arrivals(Arrivals::Poisson, seed).count() as f64)
        .collect();
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<f64>() / n;
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // Standard error of the mean is sqrt(200/2000) ≈ 0.32; of the variance ≈ 200·sqrt(2/2000) ≈ 6.3.
    assert!((mean - 200.0).abs() < 1.5, "mean {mean}");
    assert!((var / 200.0 - 1.0).abs() < 0.15, "variance {var}");
    // Inter-arrival gaps of one long run: exponential, so their mean equals their std dev.
    let long = RatePlan::constant(100.0, secs(200.0));
    let times: Vec<f64> = long
        .arrivals(Arrivals::Poisson, 7)
        .map(|d| d.as_secs_f64())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let gm = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let gsd = (gaps.iter().map(|g| (g - gm).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
    assert!((gm - 0.01).abs() < 0.0005, "gap mean {gm}");
    assert!(
        (gsd / gm - 1.0).abs() < 0.05,
        "coefficient of variation {}",
        gsd / gm
    );
}

#[test]
fn a_poisson_plan_plans_what_its_sequence_holds() {
    let plan = RatePlan::constant(80.0, Duration::from_secs(4));
    assert_eq!(plan.planned_requests(Arrivals::Uniform, 1), 320);
    let counts: Vec<u64> = (0..20)
        .map(|seed| {
            let planned = plan.planned_requests(Arrivals::Poisson, seed);
            assert_eq!(
                planned,
                plan.arrivals(Arrivals::Poisson, seed).count() as u64
            );
            planned
        })
        .collect();
    // The count is the sequence's, not the integral: it varies with the seed.
    assert!(counts.iter().any(|&c| c != 320), "{counts:?}");
}

#[test]
fn poisson_is_reproducible_for_a_seed() {
    let plan = RatePlan::constant(100.0, secs(2.0));
    let a: Vec<_> = plan.arrivals(Arrivals::Poisson, 42).collect();
    let b: Vec<_> = plan.arrivals(Arrivals::Poisson, 42).collect();
    let c: Vec<_> = plan.arrivals(Arrivals::Poisson, 43).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn spike_and_burst_shapes() {
    let spike = Pattern::Spike {
        spike_at: secs(4.0),
        spike_duration: secs(2.0),
    };
    let plan = RatePlan::from_profile(&profile(spike, 10.0, 100.0, 10.0, 0));
    assert_eq!(plan.rate_at(secs(3.9)), 10.0);
    assert_eq!(plan.rate_at(secs(4.5)), 100.0);
    assert_eq!(plan.rate_at(secs(6.1)), 10.0);
    assert!((plan.total() - (8.0 * 10.0 + 2.0 * 100.0)).abs() < 1e-9);
    let burst = Pattern::Burst {
        burst_interval: secs(5.0),
        burst_duration: secs(1.0),
    };
    let plan = RatePlan::from_profile(&profile(burst, 10.0, 100.0, 10.0, 0));
    assert_eq!(plan.rate_at(secs(0.5)), 100.0);
    assert_eq!(plan.rate_at(secs(2.0)), 10.0);
    assert_eq!(plan.rate_at(secs(5.5)), 100.0);
    let wave = Pattern::Wave {
        wave_period: secs(10.0),
    };
    let plan = RatePlan::from_profile(&profile(wave, 0.0, 100.0, 10.0, 0));
    assert!(plan.rate_at(secs(0.0)).abs() < 1e-9);
    assert!((plan.rate_at(secs(5.0)) - 100.0).abs() < 1e-6);
    // The sampled wave keeps the sinusoid's mean: (b + p) / 2 over whole periods.
    assert!((plan.total() - 500.0).abs() < 5.0, "{}", plan.total());
}
