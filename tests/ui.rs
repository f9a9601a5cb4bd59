//! The web UI at `/`, in headless Chromium: a run started from the form and followed live to
//! its report, and the token dialog of an orchestrator with `api.token`. Traffic goes to
//! 127.0.0.1 only (the orchestrator, its node and an `mcpt target`, all on port 0).

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, js_string};
use common::cluster::{Cluster, Server, cluster_env, get, orchestrator_cmd, post};
use common::wait_until;
use serde_json::Value;

/// Counts the page's Content-Security-Policy violations from now on (`window.cspViolations`).
const WATCH_CSP: &str = "window.cspViolations = []; \
    document.addEventListener('securitypolicyviolation', \
      e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''))); \
    return true;";

/// Sets a `<select>` and tells the form, as a user's choice would.
fn choose(b: &Browser, selector: &str, value: &str) {
    b.eval(&format!(
        "const el = document.querySelector({}); el.value = {}; \
         el.dispatchEvent(new Event('change', {{bubbles: true}})); return el.value;",
        js_string(selector),
        js_string(value)
    ));
}

fn hash(b: &Browser) -> String {
    b.eval("return location.hash;")
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn violations(b: &Browser) -> Value {
    b.eval("return window.cspViolations || null;")
}

#[test]
fn a_run_started_from_the_form_is_followed_live_to_its_report() {
    let target = common::target();
    let cluster = Cluster::start(1);
    let b = Browser::start("ui");

    b.open(&cluster.orchestrator.url("/"));
    b.eval(WATCH_CSP);
    // The cluster view lists the node, from GET /api/nodes.
    b.wait_js(
        "document.querySelector('tr[data-node=\"node-0\"]') !== null",
        Duration::from_secs(20),
        "node-0 in the cluster view",
    );

    b.screenshot("cluster.png");
    b.click("a[data-nav=new]");
    b.wait_for("#f-target-url-0", Duration::from_secs(10));
    b.fill("#f-name", "ui-acceptance");
    b.fill(
        "#f-target-url-0",
        &format!("http://{}/?from=ui", target.addr),
    );
    choose(&b, "#f-pattern", "constant");
    b.fill("#f-base-rps", "80");
    b.fill("#f-duration", "8s");
    // Poisson arrivals: a constant rate whose per-second counts vary, as real traffic does.
    choose(&b, "#f-arrivals", "poisson");

    // The preview: the server's rate plan, drawn.
    b.wait_js(
        "(document.getElementById('preview-info').textContent || '').includes('640 requests planned over 8 s')",
        Duration::from_secs(10),
        "the preview of 80 req/s for 8 s",
    );
    assert_eq!(b.count("#preview-chart svg.mcpt-chart"), 1);
    b.screenshot("new-execution.png");

    // A bad value is named inline by the server's 422, under its field.
    b.fill("#f-base-rps", "-3");
    b.wait_js(
        "document.querySelector('[data-error-for=\"tasks[0].parameters.base_rps\"]') !== null",
        Duration::from_secs(10),
        "the inline error of base_rps",
    );
    assert!(
        b.text("[data-error-for=\"tasks[0].parameters.base_rps\"]")
            .contains("must be 0 or more"),
    );
    b.fill("#f-base-rps", "80");
    b.wait_js(
        "document.querySelector('.field-error') === null \
         && document.getElementById('preview-info').textContent.includes('640 requests')",
        Duration::from_secs(10),
        "the error cleared",
    );

    let submitted = Instant::now();
    b.click("#f-submit");
    b.wait_js(
        "location.hash.startsWith('#/executions/')",
        Duration::from_secs(10),
        "the execution page after submitting",
    );
    let id = hash(&b).trim_start_matches("#/executions/").to_string();
    assert_eq!(
        get(&cluster.orchestrator.url(&format!("/api/executions/{id}"))).0,
        200
    );

    // Follow #live-rps until the page shows the execution finished.
    let mut seen: Vec<String> = Vec::new();
    let mut sources = std::collections::BTreeSet::new();
    let mut last = Value::Null;
    let mut live_shot = None;
    let done = wait_until(Duration::from_secs(60), || {
        last = b.eval(
            "const r = document.getElementById('live-rps'); \
             return {state: document.getElementById('exec-state').dataset.state, \
                     rps: r.textContent, source: r.dataset.source || null, \
                     second: r.dataset.second || null};",
        );
        let state = last["state"].as_str().unwrap_or("");
        if state == "running"
            && let (Some(rps), Some(source)) = (last["rps"].as_str(), last["source"].as_str())
        {
            sources.insert(source.to_string());
            if source == "stream" && seen.last().map(String::as_str) != Some(rps) {
                seen.push(rps.to_string());
            }
            if seen.len() == 4 && live_shot.is_none() {
                live_shot = Some(b.screenshot("execution-live.png"));
            }
        }
        matches!(
            state,
            "completed" | "completed_degraded" | "failed" | "cancelled"
        )
    });
    let to_completed = submitted.elapsed();
    assert!(done, "the page never showed the execution finished: {last}");
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    println!(
        "live-rps values shown while running (in order): {seen:?}; distinct: {}; fed by: {sources:?}",
        distinct.len()
    );
    println!("submit to `completed` in the page: {to_completed:.1?}");
    assert_eq!(last["state"], "completed", "{last}");
    assert!(
        seen.len() >= 3 && distinct.len() >= 3,
        "#live-rps should change at least three times from the live stream, saw {seen:?} (fed by {sources:?})"
    );
    assert!(
        sources.contains("stream"),
        "the live figure is fed by the event stream: {sources:?}"
    );

    // The final report, and the link to the HTML one.
    b.wait_js(
        "!document.getElementById('report').hidden && document.getElementById('report-summary') !== null",
        Duration::from_secs(15),
        "the final report",
    );
    let summary = b.text("#report-summary");
    assert!(summary.contains("requests completed"), "{summary}");
    assert!(b.count("#report .report-nodes") >= 1, "per-node figures");
    let href = b.eval("return document.getElementById('report-html-link').getAttribute('href');");
    assert_eq!(
        href,
        Value::String(format!("/api/executions/{id}/report.html"))
    );
    assert_eq!(b.count("#live-charts svg.mcpt-chart"), 3);
    assert_eq!(violations(&b), Value::Array(vec![]), "CSP violations");

    let shot = b.screenshot_page("execution.png", 2400);
    println!("screenshot of the finished execution: {}", shot.display());

    // The list shows it, newest first.
    b.click("a[data-nav=executions]");
    b.wait_js(
        &format!(
            "document.querySelector('tr[data-execution={}]') !== null",
            js_string(&id)
        ),
        Duration::from_secs(10),
        "the execution in the list",
    );
    let first = b.eval("return document.querySelector('tr[data-execution]').dataset.execution;");
    assert_eq!(first, Value::String(id.clone()));
    b.screenshot("executions.png");
}

#[test]
fn the_ui_asks_for_the_token_and_says_when_it_is_wrong() {
    const TOKEN: &str = "ui-t0ken";
    let target = common::target();
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Server::spawn(
        "orchestrator",
        cluster_env(&mut orchestrator_cmd(&dir.path().join("data"), 0)).env("MCP_API_TOKEN", TOKEN),
    );
    let b = Browser::start("ui");
    b.open(&orchestrator.url("/#/new"));
    b.eval(WATCH_CSP);
    b.wait_for("#f-target-url-0", Duration::from_secs(10));
    b.fill("#f-target-url-0", &format!("http://{}/", target.addr));
    b.fill("#f-base-rps", "5");
    b.fill("#f-duration", "30s");
    // The preview changes nothing and needs no token.
    b.wait_js(
        "document.getElementById('preview-info').textContent.includes('150 requests planned')",
        Duration::from_secs(10),
        "the preview without a token",
    );
    assert_eq!(
        b.eval("return document.getElementById('token-dialog').open;"),
        Value::Bool(false)
    );

    b.click("#f-submit");
    let dialog_open = "document.getElementById('token-dialog').open";
    b.wait_js(dialog_open, Duration::from_secs(10), "the token dialog");
    b.fill("#token-input", "wrong-token");
    b.click("#token-submit");
    b.wait_js(
        &format!(
            "{dialog_open} && document.getElementById('token-dialog').dataset.refused === 'true'"
        ),
        Duration::from_secs(10),
        "the dialog again, saying the token was refused",
    );
    let message = b.text("#token-message");
    assert!(message.contains("refused"), "{message}");
    b.screenshot("token-refused.png");

    b.fill("#token-input", TOKEN);
    b.click("#token-submit");
    b.wait_js(
        "location.hash.startsWith('#/executions/')",
        Duration::from_secs(10),
        "the execution page after the right token",
    );
    let id = hash(&b).trim_start_matches("#/executions/").to_string();
    let (status, view) = get(&orchestrator.url(&format!("/api/executions/{id}")));
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        b.eval("return sessionStorage.getItem('mcpt.token');"),
        Value::String(TOKEN.into())
    );

    // The kept token serves the next change: cancelling (no node, so it is still pending).
    b.wait_js(
        "!document.getElementById('cancel').hidden",
        Duration::from_secs(10),
        "the cancel button",
    );
    b.click("#cancel");
    b.wait_js(
        "document.getElementById('exec-state').dataset.state === 'cancelled'",
        Duration::from_secs(15),
        "the execution cancelled",
    );
    assert_eq!(
        b.eval(&format!("return {dialog_open};")),
        Value::Bool(false)
    );
    assert_eq!(
        get(&orchestrator.url(&format!("/api/executions/{id}"))).1["state"],
        "cancelled"
    );
    assert_eq!(violations(&b), Value::Array(vec![]), "CSP violations");
}

/// Per-request statistics in the page (issue 16): a fast, a slow and a failing target run on
/// three nodes; the execution page's requests table shows one row per name whose count is
/// what the target served, sorts by a clicked heading, and lists the failures.
#[test]
fn the_requests_table_shows_each_name_merged_over_three_nodes() {
    let target = common::target();
    let cluster = Cluster::start(3);
    cluster.wait_connected(3);
    let b = Browser::start("ui-requests");
    let a = target.addr;
    let id = cluster.submit(&serde_json::json!({
        "name": "three requests",
        "tasks": [{"type": "load_test", "name": "mixed", "parameters": {
            "targets": [
                {"url": format!("http://{a}/"), "name": "fast"},
                format!("http://{a}/delay?ms=50"),
                {"url": format!("http://{a}/status?code=500"), "name": "fail"}
            ],
            "duration": "3s", "base_rps": 60}}]
    }));
    b.open(&cluster.orchestrator.url(&format!("/#/executions/{id}")));
    b.eval(WATCH_CSP);
    b.wait_js(
        "document.querySelectorAll('#requests-table tbody tr').length === 3",
        Duration::from_secs(30),
        "the requests table while the run goes on",
    );
    let view = cluster.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed", "{view}");
    b.wait_js(
        "!document.getElementById('report').hidden",
        Duration::from_secs(15),
        "the final report",
    );
    let served = target.stats.view();
    let rows = b.eval(
        "return Array.from(document.querySelectorAll('#requests-table tbody tr')).map(tr => \
           [tr.dataset.request, Number(tr.children[2].textContent.replace(/[^0-9]/g, '')), \
            Number(tr.children[3].textContent.replace(/[^0-9]/g, ''))]);",
    );
    let mut rows: Vec<(String, u64, u64)> = serde_json::from_value(rows).unwrap();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("GET /delay".to_string(), served.paths["/delay"], 0),
            (
                "fail".to_string(),
                served.paths["/status"],
                served.paths["/status"]
            ),
            ("fast".to_string(), served.paths["/"], 0),
        ],
        "{served:?}"
    );
    assert_eq!(served.total, 180);
    // Sorted by count, most first, by default; a click on p50 sorts by it, slowest first.
    b.click("#requests-table th[data-sort=p50]");
    let first =
        b.eval("return document.querySelector('#requests-table tbody tr').dataset.request;");
    assert_eq!(first, Value::String("GET /delay".into()));
    let failures = b.text("#failures-table");
    assert!(
        failures.contains("fail") && failures.contains("unexpected status 500"),
        "{failures}"
    );
    assert_eq!(violations(&b), Value::Array(vec![]), "CSP violations");
    let shot = b.screenshot_page("requests.png", 2400);
    println!("screenshot of the requests table: {}", shot.display());
}

/// A flow pasted into the form (issue 16): it runs instead of the targets, and the execution
/// page shows its requests by name; the target refused no token.
#[test]
fn the_form_runs_a_flow_pasted_as_json() {
    let target = common::target();
    let cluster = Cluster::start(1);
    let b = Browser::start("ui-flow");
    b.open(&cluster.orchestrator.url("/#/new"));
    b.eval(WATCH_CSP);
    b.wait_for("#f-flow", Duration::from_secs(10));
    b.fill("#f-name", "ui-flow");
    let a = target.addr;
    let flow = serde_json::json!([
        {"name": "login", "request": {"method": "POST", "url": format!("http://{a}/login"),
         "body": {"user": "u{{ vu }}", "password": "p"}},
         "capture": {"token": {"json": "$.token"}}, "check": {"status": 200}},
        {"name": "me", "request": {"url": format!("http://{a}/me"),
         "headers": {"authorization": "Bearer {{ token }}"}}, "check": {"status": 200}}
    ]);
    b.fill("#f-flow", &flow.to_string());
    b.fill("#f-duration", "2s");
    b.fill("#f-base-rps", "20");
    b.wait_js(
        "(document.getElementById('preview-info').textContent || '').includes('40 flow iterations planned')",
        Duration::from_secs(10),
        "the preview of the flow's plan",
    );
    assert!(
        b.eval("return document.querySelector('[data-field$=\"targets\"]').hidden;")
            == Value::Bool(true),
        "the targets give way to the flow"
    );
    b.click("#f-submit");
    b.wait_js(
        "location.hash.startsWith('#/executions/')",
        Duration::from_secs(10),
        "the execution page",
    );
    b.wait_js(
        "document.getElementById('exec-state').dataset.state === 'completed' \
         && !document.getElementById('report').hidden \
         && document.querySelectorAll('#requests-table tbody tr').length === 2",
        Duration::from_secs(60),
        "the finished flow with its two requests",
    );
    let served = target.stats.view();
    assert_eq!(served.rejected_tokens, 0);
    assert_eq!((served.paths["/login"], served.paths["/me"]), (40, 40));
    let names = b.eval(
        "return Array.from(document.querySelectorAll('#requests-table tbody tr')).map(tr => tr.dataset.request).sort();",
    );
    assert_eq!(names, serde_json::json!(["login", "me"]));
    let iterations = b.text("#report .report-iterations");
    assert!(
        iterations.contains("Flow iterations: 40 of 40 planned, 0 failed"),
        "{iterations}"
    );
    assert_eq!(violations(&b), Value::Array(vec![]), "CSP violations");
    b.screenshot_page("flow.png", 2400);
}

/// Issue 18: a custom metric pushed to a node shows in the cluster view with its value, unit
/// and status, its alert among the active alerts, and both follow the metric back down.
#[test]
fn a_custom_metric_pushed_to_a_node_shows_in_the_cluster_view() {
    let mut cluster = Cluster::empty();
    let url = cluster.orchestrator.url("");
    cluster.add_node_with(
        "node-0",
        &url,
        &[
            ("MCP_HEALTH_MONITORING_CHECK_INTERVAL", "0.2"),
            ("MCP_HEALTH_MONITORING_ALERT_THRESHOLD", "2"),
        ],
    );
    cluster.wait_connected(1);
    let push = |value: f64| {
        let body = serde_json::json!({"name": "queue_depth", "value": value, "unit": "jobs",
            "warning": 10, "critical": 20});
        let (status, answer) = post(&cluster.nodes[0].url("/health/metrics"), &body, None);
        assert_eq!(status, 200, "{answer}");
    };
    let b = Browser::start("ui-custom-metric");
    b.open(&cluster.orchestrator.url("/"));
    b.wait_for("#custom-metrics p.empty", Duration::from_secs(20));

    push(50.0);
    let row = js_string("tr[data-metric=\"node-0/metric:queue_depth\"]");
    b.wait_js(
        &format!(
            "(() => {{ const r = document.querySelector({row}); \
             return r !== null && r.dataset.status === 'critical' && r.textContent.includes('50 jobs'); }})()"
        ),
        Duration::from_secs(20),
        "queue_depth critical at 50 jobs",
    );
    let text = b.text("tr[data-metric=\"node-0/metric:queue_depth\"]");
    assert!(
        text.contains("queue_depth") && text.contains("critical"),
        "{text}"
    );
    b.wait_js(
        "[...document.querySelectorAll('tr[data-alert]')]\
           .some(r => r.textContent.includes('metric:queue_depth'))",
        Duration::from_secs(20),
        "the metric's alert among the active alerts",
    );
    b.screenshot("custom-metric.png");

    push(3.0);
    b.wait_js(
        &format!(
            "(() => {{ const r = document.querySelector({row}); \
             return r !== null && r.dataset.status === 'healthy' && r.textContent.includes('3 jobs'); }})()"
        ),
        Duration::from_secs(20),
        "queue_depth healthy at 3 jobs",
    );
    b.wait_js(
        "![...document.querySelectorAll('tr[data-alert]')]\
           .some(r => r.textContent.includes('metric:queue_depth'))",
        Duration::from_secs(20),
        "the alert cleared",
    );
}
