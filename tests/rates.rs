//! Rates over the time that ran, with real processes: a long plan cancelled after a few
//! seconds reports the rate it ran at and how far it got, not its planned time.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, delete, get, load_body};
use common::{target, wait_until};
use serde_json::json;

#[test]
fn a_cancelled_run_reports_its_rate_over_the_seconds_that_ran() {
    let t = target();
    let mut c = Cluster::start(1);
    let id = c.submit(&load_body(t.addr, 100, 300, json!({})));
    // A few seconds of load, then the cancel.
    assert!(
        wait_until(Duration::from_secs(30), || t.stats.view().total >= 300),
        "no load reached the target"
    );
    let url = c.orchestrator.url(&format!("/api/executions/{id}"));
    let (status, body) = delete(&url, None);
    assert_eq!(status, 200, "{body}");
    let view = c.wait_done(&id, Duration::from_secs(60));
    let report = c.report(&id);
    let s = &report["summary"];
    let total = s["total_requests"].as_u64().unwrap();
    let duration_s = s["duration_s"].as_f64().unwrap();
    let rps = s["achieved_rps"].as_f64().unwrap();
    let progress = view["progress_percent"].as_f64().unwrap();
    eprintln!(
        "cancelled: {total} completed (target saw {}), {duration_s} s ran, achieved_rps {rps}, \
         progress {progress} %",
        t.stats.view().total
    );
    assert_eq!(view["state"], "cancelled", "{view}");
    assert_eq!(
        total,
        t.stats.view().total,
        "the report counts what the target got"
    );
    assert_eq!(s["interrupted"], true, "{s}");
    assert!(
        duration_s < 300.0,
        "the time that ran, not the plan's: {duration_s}"
    );
    assert_eq!(
        rps,
        total as f64 / duration_s,
        "completed over the seconds that ran"
    );
    assert!(
        rps > 50.0,
        "about the 100 rps it ran at, not total / 300 s: {rps}"
    );
    assert_eq!(
        report["tasks"][0]["achieved_rps"], s["achieved_rps"],
        "one task: the same rate"
    );
    assert_eq!(
        view["achieved_rps"], s["achieved_rps"],
        "the view shows the report's rate"
    );
    let ran_share = duration_s / 300.0 * 100.0;
    assert!(
        progress < 100.0 && (progress - ran_share).abs() < 0.01,
        "progress is how far it got ({ran_share:.2} %), not 100 %: {progress}"
    );

    // After a restart the execution is read from the store: the same figures.
    c.orchestrator.kill();
    let again = Cluster::spawn_orchestrator(&c.data, 0);
    let stored = get(&again.url(&format!("/api/executions/{id}"))).1;
    assert_eq!(stored["state"], "cancelled", "{stored}");
    assert_eq!(stored["achieved_rps"], s["achieved_rps"], "{stored}");
    let stored_progress = stored["progress_percent"].as_f64().unwrap();
    assert!(
        (stored_progress - ran_share).abs() < 0.01,
        "the stored view says how far it got too: {stored_progress}"
    );
}
