//! The stress spec's parsing, the watch on synthetic timelines, and the report sections.

use super::*;
use crate::plan::PlanError;
use crate::settings::{LoadSettings, Settings};
use crate::task::load::LoadTask;
use crate::task::{TaskKind, validate};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::time::Duration;

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
    let TaskKind::LoadTest(t) = plan.tasks.into_iter().next().unwrap().kind else {
        panic!("a load task")
    };
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
    assert_eq!(t.arrivals, crate::engine::schedule::Arrivals::Poisson);
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
    let TaskKind::LoadTest(l) = &plan.tasks[0].kind else {
        panic!("a load task")
    };
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
    use crate::stats::report::TaskInfo;
    use crate::stats::{TaskAccumulator, Window};
    use crate::task::report::{Report, Section};
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
                handshake: None,
                ..crate::stats::Outcome::default()
            };
            w.record(
                &outcome,
                Duration::from_millis(ms),
                Duration::from_millis(ms),
            );
        }
        acc.add(0, w, k == 5);
    }
    let info = |stress: Option<&StressSpec>| TaskInfo {
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
        judged: Vec::new(),
        thresholds: Vec::new(),
        aborted: None,
        tls: None,
    };
    let report = Report::build(
        "stress".into(),
        0,
        vec![(
            info(Some(&s)),
            &acc,
            Section::of_load(Some(&s), acc.timeline()),
        )],
    );
    let t = &report.tasks[0];
    assert_eq!(t.kind, "stress_test");
    let r = t.section.stress().expect("a stress result");
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
    let plain = Report::build("load".into(), 0, vec![(info(None), &acc, Section::Load)]);
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
