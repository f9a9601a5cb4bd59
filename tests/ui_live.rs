//! The execution page of a running execution, in headless Chromium (issue 17): a page opened
//! mid-run charts the seconds before it opened (`GET /api/executions/{id}/timeline`) and then
//! the live ones, each once; its summary cards and tasks table read one source; its rate
//! control changes the run (`PATCH /api/executions/{id}`). Traffic goes to 127.0.0.1 only.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::cluster::{Cluster, get};
use common::wait_until;
use serde_json::{Value, json};

/// Counts the page's Content-Security-Policy violations from now on (`window.cspViolations`).
const WATCH_CSP: &str = "window.cspViolations = []; \
    document.addEventListener('securitypolicyviolation', \
      e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''))); \
    return true;";

/// The seconds the page's charts hold (`#live-charts[data-seconds]`).
fn chart_seconds(b: &Browser) -> Vec<u64> {
    let v = b.eval("return document.getElementById('live-charts').dataset.seconds || '';");
    v.as_str()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|e| panic!("a second {s:?}: {e}")))
        .collect()
}

/// The achieved requests of each second the charts hold.
fn chart_achieved(b: &Browser) -> Vec<u64> {
    let v = b.eval("return document.getElementById('live-charts').dataset.achieved || '';");
    v.as_str()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|e| panic!("a count {s:?}: {e}")))
        .collect()
}

fn constant_run(name: &str, target: std::net::SocketAddr, rps: u32, seconds: u32) -> Value {
    json!({"name": name, "tasks": [{"type": "load_test", "name": "steady", "parameters": {
        "targets": [format!("http://{target}/")], "base_rps": rps, "duration": format!("{seconds}s")}}]})
}

/// Waits until the REST view of `id` has merged second `second` of its first task.
fn wait_merged(cluster: &Cluster, id: &str, second: u64) {
    let mut last = Value::Null;
    let ok = wait_until(Duration::from_secs(40), || {
        last = cluster.execution(id);
        last["tasks"][0]["last_second"]["second"]
            .as_u64()
            .is_some_and(|s| s >= second)
    });
    assert!(ok, "second {second} of {id} never merged: {last}");
}

/// Acceptance 4 of issue 17: a page opened at t = 6 s of a 10 s run shows all 6 past seconds.
#[test]
fn a_page_opened_at_six_seconds_charts_the_six_seconds_before() {
    let target = common::target();
    let cluster = Cluster::start(1);
    let id = cluster.submit(&constant_run("opened late", target.addr, 40, 10));
    // The 6th merged second (second 5), by REST, before the page opens.
    wait_merged(&cluster, &id, 5);
    let (status, timeline) = get(&cluster
        .orchestrator
        .url(&format!("/api/executions/{id}/timeline")));
    assert_eq!(status, 200, "{timeline}");
    let merged: Vec<(u64, u64)> = timeline["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["second"].as_u64().unwrap(),
                s["completed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(merged.len() >= 6, "{timeline}");

    let b = Browser::start("ui-live");
    b.open(&cluster.orchestrator.url(&format!("/#/executions/{id}")));
    b.eval(WATCH_CSP);
    b.wait_js(
        "(document.getElementById('live-charts').dataset.seconds || '').split(',').length >= 6",
        Duration::from_secs(15),
        "six seconds in the charts",
    );
    let shot = b.screenshot_page("opened-at-6s.png", 2400);
    println!("screenshot of the page opened at 6 s: {}", shot.display());
    let seconds = chart_seconds(&b);
    let achieved = chart_achieved(&b);
    // Every past second, in order, each once: 0..=5 and whatever the stream added since.
    let expected: Vec<u64> = (0..seconds.len() as u64).collect();
    assert_eq!(seconds, expected, "the charts' seconds");
    assert!(seconds.len() >= 6);
    // The seconds before the page opened show what the orchestrator merged.
    for (second, completed) in merged.iter().take(6) {
        assert_eq!(
            achieved[*second as usize], *completed,
            "second {second}: charts {achieved:?}, timeline {merged:?}"
        );
    }

    // The live seconds append, without a gap or a second twice.
    b.wait_js(
        "(document.getElementById('live-charts').dataset.seconds || '').split(',').length >= 9",
        Duration::from_secs(30),
        "nine seconds in the charts",
    );
    let seconds = chart_seconds(&b);
    assert_eq!(seconds, (0..seconds.len() as u64).collect::<Vec<_>>());
    let view = cluster.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed", "{view}");
    b.wait_js(
        "!document.getElementById('report').hidden",
        Duration::from_secs(15),
        "the final report",
    );
    assert_eq!(chart_seconds(&b), (0..10).collect::<Vec<u64>>());
    assert_eq!(
        b.eval("return window.cspViolations;"),
        json!([]),
        "CSP violations"
    );
    b.screenshot_page("opened-at-6s-finished.png", 2400);

    // An unknown execution has no timeline: a JSON 404.
    let (status, body) = get(&cluster.orchestrator.url("/api/executions/nope/timeline"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_found", "{body}");
}

/// The summary cards and the tasks table once disagreed (completed 350 against 234): the
/// cards summed the stream's totals, the table showed the REST view's, read at other times
/// (and the requests table the stream's rows). All three now come from one view, drawn
/// together: whatever the stream says between two views, they agree.
#[test]
fn the_summary_cards_and_the_tables_read_one_source() {
    let target = common::target();
    let cluster = Cluster::start(1);
    let id = cluster.submit(&constant_run("one source", target.addr, 50, 8));
    let b = Browser::start("ui-one-source");
    b.open(&cluster.orchestrator.url(&format!("/#/executions/{id}")));
    b.wait_js(
        "document.querySelector('#exec-tasks tbody tr') !== null \
         && document.querySelector('#requests-table tbody tr') !== null \
         && Mcpt.seenOf(location.hash.split('/')[2]).tasks[0] !== undefined",
        Duration::from_secs(30),
        "the tasks table and a live second",
    );
    // Card and table read in one script, so no redraw comes between them.
    let both = "const card = Number(document.getElementById('total-completed').textContent.replace(/[^0-9]/g, '')); \
        const sum = (rows, column) => Array.from(document.querySelectorAll(rows)) \
          .reduce((n, tr) => n + Number(tr.children[column].textContent.replace(/[^0-9]/g, '')), 0); \
        return [card, sum('#exec-tasks tbody tr', 3), sum('#requests-table tbody tr', 2)];";
    // A stats event whose totals run ahead of the view (as a live event does between two
    // views): the cards must not take them.
    b.eval(
        "const id = location.hash.split('/')[2]; const last = Mcpt.seenOf(id).tasks[0].last; \
         const ev = Object.assign({}, last, {total_completed: last.total_completed + 100000}); \
         Mcpt.Live.emit('stats', ev); return true;",
    );
    let card_js =
        "Number(document.getElementById('total-completed').textContent.replace(/[^0-9]/g, ''))";
    let mut samples = Vec::new();
    let mut running = true;
    while running {
        // Each time the card changes (or the run ends), the three agree.
        let shown = samples.last().copied().unwrap_or(0);
        b.wait_js(
            &format!(
                "{card_js} !== {shown} \
                 || document.getElementById('exec-state').dataset.state !== 'running'"
            ),
            Duration::from_secs(30),
            "the completed card to change",
        );
        let v = b.eval(both);
        let (card, table, requests) = (
            v[0].as_u64().unwrap(),
            v[1].as_u64().unwrap(),
            v[2].as_u64().unwrap(),
        );
        assert_eq!(card, table, "the completed card against the tasks table");
        assert_eq!(
            card, requests,
            "the completed card against the requests table"
        );
        samples.push(card);
        running = b.eval("return document.getElementById('exec-state').dataset.state;")
            == json!("running");
    }
    println!("completed as the card and the table showed it: {samples:?}");
    assert!(
        samples.windows(2).any(|w| w[0] != w[1]),
        "the figures moved while the run went on: {samples:?}"
    );
}

/// Acceptance 4 of issue 17: the rate control changes the run (`PATCH
/// /api/executions/{id}`): the target serves more, and the page, the report and the HTML
/// report show the change once, made by the UI.
#[test]
fn the_rate_control_changes_the_run() {
    let target = common::target();
    let cluster = Cluster::start(1);
    let id = cluster.submit(&constant_run("rate control", target.addr, 20, 10));
    let b = Browser::start("ui-control");
    b.open(&cluster.orchestrator.url(&format!("/#/executions/{id}")));
    b.eval(WATCH_CSP);
    b.wait_js(
        "!document.getElementById('exec-controls').hidden \
         && !document.getElementById('ctl-rate').hidden",
        Duration::from_secs(30),
        "the live control of a running execution",
    );
    wait_merged(&cluster, &id, 1);
    b.fill("#ctl-rate-factor", "2");
    b.click("#ctl-rate-apply");
    let mut answer = Value::Null;
    let answered = wait_until(Duration::from_secs(15), || {
        answer = b.eval(
            "const e = document.getElementById('ctl-error'); \
             return {listed: document.querySelectorAll('#adjustments li').length, \
                     error: e.hidden ? null : e.textContent};",
        );
        answer["listed"].as_u64().unwrap_or(0) > 0 || answer["error"].is_string()
    });
    assert!(answered, "the PATCH got no answer in the page: {answer}");
    assert!(
        answer["error"].is_null(),
        "the rate control was refused (PATCH /api/executions/{{id}} is the lead's part of \
         issue 17): {answer}"
    );
    let listed = b.text("#adjustments");
    assert!(listed.contains("rate × 2"), "{listed}");
    b.screenshot_page("rate-control-applied.png", 2400);

    let view = cluster.wait_done(&id, Duration::from_secs(60));
    assert!(
        matches!(
            view["state"].as_str(),
            Some("completed" | "completed_degraded")
        ),
        "{view}"
    );
    // The target saw more than the 200 requests planned before the change.
    let served = target.stats.view().total;
    assert!(
        served > 240,
        "the target served {served}, as if nothing changed"
    );
    let report = cluster.report(&id);
    let adjustments = &report["tasks"][0]["adjustments"];
    assert!(
        adjustments
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["change"]["rate_factor"] == 2.0)),
        "the report's adjustments: {adjustments}"
    );
    b.wait_js(
        "!document.getElementById('report').hidden \
         && document.querySelectorAll('#live-charts .mcpt-mark').length >= 3",
        Duration::from_secs(15),
        "the report, the change marked on the three charts",
    );
    // Listed once (the report's form of it is the same change), made by the UI.
    let listed = b.eval(
        "return Array.from(document.querySelectorAll('#adjustments li')).map(li => li.textContent);",
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(listed[0].as_str().unwrap().contains("by ui "), "{listed}");
    assert!(
        adjustments[0]["by"].as_str().unwrap().starts_with("ui "),
        "{adjustments}"
    );
    assert_eq!(b.eval("return window.cspViolations;"), json!([]));
    b.screenshot_page("rate-control-finished.png", 2400);

    // The HTML report marks the change on its charts and lists it with who made it.
    b.open(
        &cluster
            .orchestrator
            .url(&format!("/api/executions/{id}/report.html")),
    );
    b.wait_js(
        "document.documentElement.dataset.charts === 'drawn' \
         && document.querySelectorAll('.mcpt-mark').length === 3",
        Duration::from_secs(15),
        "the HTML report's charts, the change marked on each",
    );
    let listed = b.text("table.adjustments");
    assert!(
        listed.contains("rate ×2") && listed.contains("ui 127.0.0.1"),
        "{listed}"
    );
    b.screenshot_page("rate-control-report.png", 2400);
}

/// The pause button pauses the run and resumes it: the button turns to Resume and back, the
/// page lists both changes, and the target got the whole plan after the pause (the rest of
/// the plan waits for the resume).
#[test]
fn the_pause_button_pauses_and_resumes_the_run() {
    let target = common::target();
    let cluster = Cluster::start(1);
    let id = cluster.submit(&constant_run("pause", target.addr, 20, 6));
    let b = Browser::start("ui-pause");
    b.open(&cluster.orchestrator.url(&format!("/#/executions/{id}")));
    b.eval(WATCH_CSP);
    b.wait_js(
        "!document.getElementById('exec-controls').hidden",
        Duration::from_secs(30),
        "the live control of a running execution",
    );
    wait_merged(&cluster, &id, 1);
    b.click("#ctl-pause");
    b.wait_js(
        "document.getElementById('ctl-pause').textContent === 'Resume'",
        Duration::from_secs(15),
        "the button offers to resume",
    );
    let paused_at = target.stats.view().total;
    common::hold(Duration::from_secs(2));
    let while_paused = target.stats.view().total - paused_at;
    b.screenshot_page("paused.png", 2400);
    b.click("#ctl-pause");
    b.wait_js(
        "document.getElementById('ctl-pause').textContent === 'Pause' \
         && document.querySelectorAll('#adjustments li').length === 2",
        Duration::from_secs(15),
        "both changes listed, the button back to Pause",
    );
    let listed = b.text("#adjustments");
    assert!(
        listed.contains("paused") && listed.contains("resumed"),
        "{listed}"
    );
    cluster.wait_done(&id, Duration::from_secs(60));
    // The pause holds about half a second after the answer: of the 40 requests 2 s would
    // hold, only those of that half second went.
    assert!(while_paused < 20, "{while_paused} requests while paused");
    assert_eq!(
        target.stats.view().total,
        120,
        "the whole plan, after the resume"
    );
    assert_eq!(b.eval("return window.cspViolations;"), json!([]));
}
