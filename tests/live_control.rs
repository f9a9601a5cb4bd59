//! Live control of a running execution (`PATCH /api/executions/{id}`) on a real cluster of
//! processes: an orchestrator, three nodes, and a target that counts what it receives per
//! second. The counts are the target's, the plan's total is the report's.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, load_body, patch};
use common::{hold, target};
use serde_json::{Value, json};

fn adjust(c: &Cluster, id: &str, body: Value) -> Value {
    let (status, view) = patch(
        &c.orchestrator.url(&format!("/api/executions/{id}")),
        &body,
        None,
    );
    assert_eq!(status, 200, "{view}");
    view
}

/// The median of `xs` (sorted copy).
fn median(xs: &[u64]) -> u64 {
    let mut v = xs.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Acceptance 3: 300 rps over three nodes, doubled at about t = 5 s. The target's seconds
/// before the change hold 300, those after it 600, the one it falls in between; the target
/// received exactly the plan as changed, which the report plans and counts too.
#[test]
fn a_rate_change_holds_on_every_node_from_one_instant() {
    let t = target();
    let c = Cluster::start(3);
    let id = c.submit(&load_body(t.addr, 300, 10, json!({})));
    c.wait_for_second(&id, 4.6);
    // Over a caller's own limit (MCP sends its mcp.max_rps): refused, nothing changes.
    let (status, e) = patch(
        &c.orchestrator.url(&format!("/api/executions/{id}")),
        &json!({"rate_factor": 10.0, "max_rps": 1000.0}),
        None,
    );
    assert_eq!(
        (status, e["field"].as_str()),
        (422, Some("rate_factor")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("3000.0 rps"), "{e}");
    let view = adjust(&c, &id, json!({"rate_factor": 2.0}));
    assert_eq!(view["adjustments"].as_array().unwrap().len(), 1, "{view}");
    let change = &view["adjustments"][0];
    assert_eq!(change["change"], json!({"rate_factor": 2.0}), "{view}");
    assert!(
        change["by"].as_str().unwrap().starts_with("rest "),
        "{change}"
    );
    let from_ms = (change["at_s"].as_f64().unwrap() * 1000.0).round() as u64;
    assert_eq!(
        from_ms % 100,
        0,
        "a change holds from a block boundary: {from_ms}"
    );
    let done = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");

    // 300 rps until from_ms, 600 after: the plan as changed, exactly.
    let planned = (300 * from_ms + 600 * (10_000 - from_ms)) / 1000;
    let report = c.report(&id);
    let task = &report["tasks"][0];
    let seen = t.stats.view();
    eprintln!(
        "change from {from_ms} ms; planned {planned}; per second {:?}",
        seen.per_second
    );
    assert_eq!(task["planned_requests"], planned, "{task}");
    assert_eq!(seen.total, planned, "the target got the plan as changed");
    assert_eq!(task["total_requests"], seen.total);
    assert_eq!(task["not_sent"], 0);
    assert_eq!(
        task["adjustments"][0]["change"],
        json!({"rate_factor": 2.0})
    );
    // The report's timeline plans the change from its second on.
    let timeline = task["timeline"].as_array().unwrap();
    let k = (from_ms / 1000) as usize;
    assert_eq!(timeline[k - 1]["planned"], 300.0);
    assert_eq!(timeline[k + 1]["planned"], 600.0);

    // The target's own seconds: 300 before the change's second, 600 from the next one.
    let before = &seen.per_second[..k];
    let after = &seen.per_second[k + 1..10];
    let (b, a) = (median(before), median(after));
    assert!((285..=315).contains(&b), "before: {before:?}");
    assert!((570..=630).contains(&a), "after: {after:?}");
}

/// Acceptance 3: a pause of about 3 s sends nothing in its seconds (the target's counts); the
/// rest of the plan follows the resume, so the total is still the plan's.
#[test]
fn a_pause_sends_nothing_and_the_rest_follows_the_resume() {
    let t = target();
    let c = Cluster::start(3);
    let id = c.submit(&load_body(t.addr, 200, 6, json!({})));
    c.wait_for_second(&id, 2.2);
    adjust(&c, &id, json!({"paused": true}));
    hold(Duration::from_secs(3));
    let view = adjust(&c, &id, json!({"paused": false}));
    let at = |i: usize| (view["adjustments"][i]["at_s"].as_f64().unwrap() * 1000.0) as u64;
    let (paused_ms, resumed_ms) = (at(0), at(1));
    assert!(resumed_ms >= paused_ms + 2900, "{view}");
    let done = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");

    let seen = t.stats.view();
    eprintln!(
        "paused {paused_ms}..{resumed_ms} ms; per second {:?}",
        seen.per_second
    );
    assert_eq!(seen.total, 1200, "the whole plan, after the pause");
    let report = c.report(&id);
    let task = &report["tasks"][0];
    assert_eq!(task["total_requests"], 1200);
    assert_eq!(task["planned_requests"], 1200);
    let ran = task["duration_s"].as_f64().unwrap();
    let pause_s = (resumed_ms - paused_ms) as f64 / 1000.0;
    assert!(
        (ran - (6.0 + pause_s)).abs() < 1e-6,
        "duration {ran}, pause {pause_s}"
    );
    // Every target second wholly inside the pause got nothing.
    let first = paused_ms.div_ceil(1000) as usize;
    let last = (resumed_ms / 1000) as usize;
    assert!(last > first, "at least one whole second paused");
    for k in first..last {
        assert_eq!(seen.per_second[k], 0, "second {k}: {:?}", seen.per_second);
    }
    assert!(seen.per_second[first - 2] > 150, "{:?}", seen.per_second);
    assert!(seen.per_second[last + 1] > 150, "{:?}", seen.per_second);
}

/// A closed model's users change live on every node, and pause; a rate change is refused for
/// it (422, naming the field); a finished execution takes no change (409); bad bodies are
/// 400/422.
#[test]
fn changes_that_do_not_fit_are_refused_and_users_change() {
    let t = target();
    let c = Cluster::start(2);
    let mut body = load_body(
        t.addr,
        0,
        6,
        json!({"model": "closed", "concurrent_users": 2, "think_time": "100ms"}),
    );
    let params = body["tasks"][0]["parameters"].as_object_mut().unwrap();
    params.remove("base_rps");
    params.remove("pattern");
    let id = c.submit(&body);
    c.wait_for_second(&id, 1.0);
    let url = c.orchestrator.url(&format!("/api/executions/{id}"));
    let (status, e) = patch(&url, &json!({"rate_factor": 2.0}), None);
    assert_eq!(
        (status, e["field"].as_str()),
        (422, Some("rate_factor")),
        "{e}"
    );
    let (status, e) = patch(&url, &json!({"rate_factor": 2.0, "paused": true}), None);
    assert_eq!(status, 422, "{e}");
    let (status, e) = patch(&url, &json!({"speed": 2}), None);
    assert_eq!(status, 400, "{e}");
    let (status, e) = patch(&url, &json!({"concurrent_users": 0}), None);
    assert_eq!(
        (status, e["field"].as_str()),
        (422, Some("concurrent_users")),
        "{e}"
    );
    let (status, e) = patch(&url, &json!({"task": 5, "paused": true}), None);
    assert_eq!((status, e["field"].as_str()), (422, Some("task")), "{e}");
    let (status, _) = patch(
        &c.orchestrator.url("/api/executions/nope"),
        &json!({"paused": true}),
        None,
    );
    assert_eq!(status, 404);

    let before = t.stats.view().total;
    let view = adjust(&c, &id, json!({"concurrent_users": 8}));
    let from_ms = (view["adjustments"][0]["at_s"].as_f64().unwrap() * 1000.0) as u64;
    c.wait_for_second(&id, from_ms as f64 / 1000.0 + 2.0);
    let gained = t.stats.view().total - before;
    // Paused, the closed model's users send nothing (once the pause holds and the requests
    // in flight are back); resumed, they go on.
    let view = adjust(&c, &id, json!({"paused": true}));
    let paused_s = view["adjustments"][1]["at_s"].as_f64().unwrap();
    c.wait_for_second(&id, paused_s + 0.5);
    let at_pause = t.stats.view().total;
    hold(Duration::from_secs(1));
    let while_paused = t.stats.view().total - at_pause;
    adjust(&c, &id, json!({"paused": false}));
    let done = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(while_paused, 0, "a paused closed model sent {while_paused}");
    assert_eq!(done["state"], "completed", "{done}");
    // 2 users with 100 ms of thinking make under 20 requests a second; 8 make up to 80.
    eprintln!("over the change's first 2+ s: {gained} requests");
    assert!(gained > 60, "8 users sent only {gained}");
    let report = c.report(&id);
    assert_eq!(
        report["tasks"][0]["adjustments"][0]["change"],
        json!({"concurrent_users": 8})
    );
    let (status, e) = patch(&url, &json!({"paused": true}), None);
    assert_eq!(status, 409, "{e}");
}
