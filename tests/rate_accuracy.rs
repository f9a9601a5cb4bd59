//! Rate accuracy, counted by the target: the number of requests it received, in total and per
//! second, against the plan. (The full figures, 1,500 rps and a 200→2,000 ramp over 10 s, are
//! in benches/rate_accuracy.sh; these are the same checks at smaller figures.)

mod common;

use common::{plan, run, target};

/// Fraction of seconds whose received count is within ±5% of the planned count.
fn seconds_within(per_second: &[u64], planned: impl Fn(usize) -> f64, seconds: usize) -> f64 {
    let ok = (0..seconds)
        .filter(|&k| {
            let got = per_second.get(k).copied().unwrap_or(0) as f64;
            (got - planned(k)).abs() <= 0.05 * planned(k)
        })
        .count();
    ok as f64 / seconds as f64
}

#[test]
fn constant_rate_is_delivered() {
    let t = target();
    let p = plan(&format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets: ['http://{}/']\n    duration: 4s\n    base_rps: 500\n",
        t.addr
    ));
    let report = run(&p);
    let seen = t.stats.view();
    assert!(
        (seen.total as f64 - 2000.0).abs() <= 20.0,
        "target saw {} of 2000",
        seen.total
    );
    assert_eq!(
        report.tasks[0].total_requests, seen.total,
        "report and target disagree"
    );
    assert_eq!(report.tasks[0].planned_requests, Some(2000));
    let frac = seconds_within(&seen.per_second, |_| 500.0, 4);
    assert!(frac >= 0.95, "per-second counts {:?}", seen.per_second);
}

#[test]
fn ramp_up_is_delivered() {
    let t = target();
    // 100 → 500 rps over 4 s: (100 + 500) / 2 × 4 = 1,200 requests.
    let p = plan(&format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets: ['http://{}/']\n    duration: 4s\n    base_rps: 100\n    peak_rps: 500\n    pattern: ramp_up\n",
        t.addr
    ));
    let report = run(&p);
    let seen = t.stats.view();
    assert!(
        (seen.total as f64 - 1200.0).abs() <= 12.0,
        "target saw {} of 1200",
        seen.total
    );
    assert_eq!(report.tasks[0].planned_requests, Some(1200));
    // Second k of the ramp plans 100 + 100 × (k + 0.5) requests.
    let frac = seconds_within(&seen.per_second, |k| 100.0 + 100.0 * (k as f64 + 0.5), 4);
    assert!(frac >= 0.95, "per-second counts {:?}", seen.per_second);
    // The report's own timeline follows the same plan: four planned seconds, then at most a
    // drain second (requests that completed after the fourth; a busy machine has some) with
    // nothing planned.
    let planned: Vec<f64> = report.tasks[0].timeline.iter().map(|p| p.planned).collect();
    assert!(planned.len() == 4 || planned.len() == 5, "{planned:?}");
    assert!(planned[4..].iter().all(|p| *p == 0.0), "{planned:?}");
    assert!(
        (planned[0] - 150.0).abs() < 1e-6 && (planned[3] - 450.0).abs() < 1e-6,
        "{planned:?}"
    );
}

#[test]
fn weights_split_the_requests() {
    let t = target();
    let p = plan(&format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets:\n    - {{url: 'http://{0}/', weight: 3}}\n    - {{url: 'http://{0}/echo', weight: 1, method: POST, body: hi}}\n    duration: 2s\n    base_rps: 200\n    arrivals: poisson\n    seed: 7\n",
        t.addr
    ));
    let report = run(&p);
    let seen = t.stats.view();
    let (root, echo) = (seen.paths["/"], seen.paths["/echo"]);
    assert_eq!(root + echo, report.tasks[0].total_requests);
    // Weighted picking is exact over every 4 consecutive requests.
    assert!(
        (root as f64 / (root + echo) as f64 - 0.75).abs() < 0.01,
        "{root} vs {echo}"
    );
    assert_eq!(report.tasks[0].errors.total, 0);
}
