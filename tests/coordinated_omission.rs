//! Coordinated omission: a target that freezes for one second once, under an open model of
//! 200 rps with `concurrent_users: 10`. The corrected p99 must match the true p99 computed
//! from the planned times; the uncorrected one stays far lower.

mod common;

use std::time::Duration;

use common::{StallTarget, plan, run_with};
use mcp_testing::settings::Settings;

#[test]
fn corrected_latency_sees_the_stall() {
    // 200 rps for 6 s = 1,200 arrivals every 5 ms; the 400th (t ≈ 2 s) starts the freeze.
    let t = StallTarget::start(400, Duration::from_secs(1));
    let p = plan(&format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets: ['http://{}/']\n    duration: 6s\n    base_rps: 200\n    concurrent_users: 10\n",
        t.addr
    ));
    // One worker: one queue behind the cap, so arrivals reach the target in planned order.
    let mut settings = Settings::defaults().load_generation;
    settings.workers = Some(1);
    let report = run_with(&p, &settings);
    let task = &report.tasks[0];
    let mut seen = t.log.lock().unwrap().clone();
    assert_eq!(seen.len() as u64, task.total_requests);
    assert_eq!(seen.len(), 1200, "every planned request was sent");

    // The k-th request to arrive is the k-th planned one (arrivals are FIFO behind the cap);
    // the plan starts when the first request arrives and spaces them 5 ms apart.
    seen.sort_by_key(|s| s.received);
    let t0 = seen[0].received;
    let mut truth: Vec<f64> = seen
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let planned = t0 + Duration::from_millis(5 * k as u64);
            s.released.saturating_duration_since(planned).as_secs_f64() * 1000.0
        })
        .collect();
    truth.sort_by(f64::total_cmp);
    let true_p99 = truth[(truth.len() * 99).div_ceil(100) - 1];
    assert!(
        true_p99 > 800.0,
        "the freeze dominates the true p99 ({true_p99} ms)"
    );

    let corrected = task.latency_ms.p99;
    let uncorrected = task.latency_uncorrected_ms.p99;
    eprintln!(
        "true p99 {true_p99:.1} ms, corrected p99 {corrected:.1} ms, uncorrected p99 {uncorrected:.1} ms, late starts {}",
        task.late_starts
    );
    assert!(
        (corrected - true_p99).abs() <= true_p99 * 0.05,
        "corrected p99 {corrected} ms vs true {true_p99} ms"
    );
    assert!(
        uncorrected < 100.0,
        "uncorrected p99 {uncorrected} ms should miss the freeze"
    );
    // The ~190 arrivals that came during the freeze had to wait for the cap.
    assert!(task.late_starts >= 150, "late starts {}", task.late_starts);
    assert_eq!(task.errors.total, 0);
}
