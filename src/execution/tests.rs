//! The execution's accounting: losses by policy, scan slices, the end state and its reason.

use std::time::Duration;

use super::*;
use crate::settings::Settings;
use crate::stats::Window;
use crate::task::security::ScanReport;
use serde_json::json;

fn execution(policy: &str, model: &str) -> Execution {
    let settings = Settings::defaults();
    let mut params = json!({
        "targets": [{"url": "http://127.0.0.1:9/"}], "duration": "10s",
        "on_node_failure": policy, "model": model, "concurrent_users": 3});
    if model == "open" {
        params["base_rps"] = json!(30);
    }
    let doc = json!({"name": "e", "tasks": [{"type": "load_test", "parameters": params}]});
    let plan = crate::task::validate(&doc, &settings.load_generation).unwrap();
    let record = crate::store::ExecutionRecord {
        id: "x".into(),
        name: "e".into(),
        request_json: doc.to_string(),
        state: "running".into(),
        reason: None,
        created_at_ms: 0,
        started_at_ms: None,
        finished_at_ms: None,
        plan_json: None,
        report_json: None,
    };
    let mut e = Execution::pending(&record, plan);
    e.phase = Phase::Running;
    let nodes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    e.plan_over(&nodes, 1000);
    e
}

#[test]
fn a_lost_node_is_reshared_then_done() {
    let mut e = execution("rebalance", "open");
    assert_eq!(e.lose_node("b", 5000, 1), LossOutcome::Reshared(vec![0]));
    assert!(e.degraded);
    assert!(!e.node_should_run(0, "b"));
    assert!(e.node_should_run(0, "a"));
    assert_eq!(e.tasks[0].shares.active_from(5000), [0, 2]);
    // Losing it again changes nothing.
    assert_eq!(e.lose_node("b", 6000, 1), LossOutcome::Unaffected);
    for node in ["a", "c"] {
        assert!(!e.all_done());
        e.add_window(0, node, Window::new(0), true);
    }
    assert!(e.all_done());
    assert_eq!(e.final_state(&e.report()).0, State::CompletedDegraded);
    // The stored plan restores the loss.
    let stored = e.stored_plan();
    let mut again = execution("rebalance", "open");
    again.restore(stored);
    assert!(again.tasks[0].lost[1]);
    // Every window b recorded counts: the one of its old epoch and the one it sent after
    // it came back (the in-flight requests of before the fence, finishing).
    let mut before = Window::new(0);
    before.sent = 7;
    assert!(again.add_window(0, "b", before, false));
    let mut after = Window::new(1);
    after.completed = 5;
    assert!(again.add_window(0, "b", after, false));
    again.settle_losses();
    assert!(again.tasks[0].acc.is_shard_done(1));
    let b = again.tasks[0].acc.shard_totals()[1];
    assert_eq!((b.sent, b.completed), (7, 5));
}

#[test]
fn a_scan_task_ends_when_every_slice_is_in_or_lost() {
    let settings = Settings::defaults();
    let eps: Vec<_> = (0..3)
        .map(|i| json!({"path": format!("/e{i}"), "params": ["q"]}))
        .collect();
    let doc = json!({"name": "s", "tasks": [{"type": "security_test", "parameters": {
        "target": "http://127.0.0.1:9/", "endpoints": eps}}]});
    let plan = crate::task::validate(&doc, &settings.load_generation).unwrap();
    let mut e = execution("rebalance", "open");
    e.plan = plan;
    let nodes: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    e.plan_over(&nodes, 1000);
    // Three endpoints: three nodes at most.
    assert_eq!(e.tasks[0].shares.nodes, ["a", "b", "c"]);
    assert!(e.duration() > Duration::ZERO);
    let slice = serde_json::to_string(&ScanReport {
        requests_sent: 4,
        ..ScanReport::default()
    })
    .unwrap();
    assert!(e.tasks[0].add_result("a", &slice));
    assert!(!e.tasks[0].add_result("a", &slice), "counted twice");
    assert!(!e.tasks[0].add_result("d", &slice), "d has no slice");
    assert_eq!(e.lose_node("b", 2000, 1), LossOutcome::Tolerated);
    assert!(!e.all_done());
    assert!(!e.tasks[0].add_result("b", &slice), "b was lost");
    assert!(e.tasks[0].add_result("c", &slice));
    assert!(e.all_done());
    assert_eq!(e.final_state(&e.report()).0, State::CompletedDegraded);
    let report = e.report();
    let t = &report.tasks[0];
    assert_eq!((t.kind.as_ref(), t.achieved_rps), ("security_test", 0.0));
    let scan = t.section.security().unwrap();
    assert_eq!(
        (scan.requests_sent, scan.nodes_lost.clone()),
        (8, vec!["b".to_string()])
    );
    assert_eq!(t.nodes[0].sent, 4);
}

/// Issue 13 item 9: whatever left requests unsent, the end is `completed_degraded` and
/// the reason says how many.
#[test]
fn requests_not_sent_end_degraded_with_the_reason() {
    for (sent_each, state) in [(100, State::Completed), (97, State::CompletedDegraded)] {
        let mut e = execution("rebalance", "open");
        for node in ["a", "b", "c"] {
            let mut w = Window::new(0);
            w.sent = sent_each;
            w.completed = sent_each;
            assert!(e.add_window(0, node, w, true));
        }
        assert!(e.all_done());
        let report = e.report();
        let (got, reason) = e.final_state(&report);
        assert_eq!(got, state, "{reason:?}");
        if state == State::CompletedDegraded {
            assert_eq!(
                reason.as_deref(),
                Some("9 of 300 planned requests were not sent")
            );
        } else {
            assert_eq!(reason, None);
        }
    }
}

/// A store that could not keep every window degrades the run with its own reason (not
/// "a node was lost"), beside any other; a note of trouble that passed keeps it completed.
#[test]
fn the_stores_trouble_is_the_reason_it_gives() {
    for (sent_each, degraded, state, reason) in [
        (100, true, State::CompletedDegraded, "the store is full"),
        (
            97,
            true,
            State::CompletedDegraded,
            "9 of 300 planned requests were not sent; the store is full",
        ),
        (100, false, State::Completed, "the store is full"),
    ] {
        let mut e = execution("rebalance", "open");
        for node in ["a", "b", "c"] {
            let mut w = Window::new(0);
            w.sent = sent_each;
            w.completed = sent_each;
            assert!(e.add_window(0, node, w, true));
        }
        e.degraded = degraded;
        e.store_note = Some("the store is full".into());
        let report = e.report();
        let (got, why) = e.final_state(&report);
        assert_eq!((got, why.as_deref()), (state, Some(reason)));
        // Asked again (a late window amends the report), the reason does not grow.
        e.reason = why;
        assert_eq!(e.final_state(&report).1.as_deref(), Some(reason));
    }
}

/// A node that refused its task sends no window: the end waits only for the others.
#[test]
fn a_refusing_node_is_not_waited_for() {
    let mut e = execution("rebalance", "open");
    e.refused(0, "b");
    for node in ["a", "c"] {
        assert!(!e.all_done());
        e.add_window(0, node, Window::new(0), true);
    }
    assert!(e.all_done());
}

#[test]
fn policies_tolerate_and_fail() {
    let mut e = execution("tolerate", "open");
    assert_eq!(e.lose_node("a", 1000, 1), LossOutcome::Tolerated);
    assert_eq!(e.tasks[0].shares.active_from(1000), [0, 1, 2]);
    let mut e = execution("fail", "open");
    assert!(matches!(e.lose_node("a", 1000, 1), LossOutcome::Fail(_)));
    let mut e = execution("rebalance", "closed");
    assert_eq!(e.lose_node("a", 1000, 1), LossOutcome::Tolerated);
}

/// The state shown in every phase: a stopping execution shows what stopped it (a watch's stop
/// shows `running` until the end), and ends as that decided.
#[test]
fn each_phase_shows_its_state_and_a_stop_ends_as_decided() {
    use crate::stats::watch::StopAs;
    let watch = Halt::Watch {
        ends_as: StopAs::Failed,
        at_ms: 3000,
    };
    for (phase, shown) in [
        (Phase::pending(), "pending"),
        (Phase::Planning, "planning"),
        (Phase::Running, "running"),
        (Phase::Stopping(watch), "running"),
        (
            Phase::Stopping(Halt::Cancelled { at_ms: None }),
            "cancelled",
        ),
        (Phase::Stopping(Halt::Failed), "failed"),
        (
            Phase::Ended {
                state: State::CompletedDegraded,
                halt: None,
            },
            "completed_degraded",
        ),
    ] {
        assert_eq!(phase.state().as_str(), shown, "{phase:?}");
    }
    let mut e = execution("rebalance", "open");
    e.phase = Phase::Stopping(watch);
    assert!(!e.node_should_run(0, "a"));
    assert_eq!(e.stopped_after_s(), Some(2.0));
    assert_eq!(e.final_state(&e.report()).0, State::Failed);
    e.phase = Phase::Stopping(Halt::Cancelled { at_ms: Some(1500) });
    assert_eq!(e.final_state(&e.report()).0, State::Cancelled);
    assert_eq!(e.stopped_after_s(), Some(0.5));
}
