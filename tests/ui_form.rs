//! The new-execution form in headless Chromium (issue 17): a security scan's and a stress
//! test's fields, headers, a body and thresholds on a load test, and a flow pasted as YAML
//! whose mistakes the server names under the flow field. Traffic goes to 127.0.0.1 only.

mod common;

use std::time::Duration;

use common::browser::{Browser, js_string};
use common::cluster::Cluster;
use serde_json::{Value, json};

/// Sets a field (an input, a textarea or a select) and tells the form, as typing would.
fn set(b: &Browser, selector: &str, value: &str) {
    b.eval(&format!(
        "const el = document.querySelector({}); el.value = {}; \
         el.dispatchEvent(new Event('input', {{bubbles: true}})); \
         el.dispatchEvent(new Event('change', {{bubbles: true}})); return el.value;",
        js_string(selector),
        js_string(value)
    ));
}

/// Waits until the fields `shown` show and the fields `gone` are hidden (the form lays itself
/// out a moment after a change).
fn wait_layout(b: &Browser, shown: &[&str], gone: &[&str]) {
    let visible = |s: &&str, yes: bool| {
        format!(
            "(document.querySelector({}).closest('[hidden]') === null) === {yes}",
            js_string(s)
        )
    };
    let all: Vec<String> = shown
        .iter()
        .map(|s| visible(s, true))
        .chain(gone.iter().map(|s| visible(s, false)))
        .collect();
    b.wait_js(
        &all.join(" && "),
        Duration::from_secs(10),
        &format!("{shown:?} shown, {gone:?} hidden"),
    );
}

/// Waits for the server's error under `field` that says `says`, and returns its text.
fn error_for(b: &Browser, field: &str, says: &str) -> String {
    let sel = format!("[data-error-for^={}]", js_string(field));
    b.wait_js(
        &format!(
            "Array.from(document.querySelectorAll({})).some(e => e.textContent.includes({}))",
            js_string(&sel),
            js_string(says)
        ),
        Duration::from_secs(10),
        &format!("the error under {field} saying {says:?}"),
    );
    b.text(&sel)
}

#[test]
fn the_form_takes_scans_stress_tests_headers_thresholds_and_a_yaml_flow() {
    let target = common::target();
    let cluster = Cluster::start(1);
    let a = target.addr;
    let b = Browser::start("ui-form");
    b.open(&cluster.orchestrator.url("/#/new"));
    b.wait_for("#f-type", Duration::from_secs(10));
    set(&b, "#f-name", "form");

    // A security scan: its own fields, validated by the server without starting anything.
    set(&b, "#f-type", "security_test");
    wait_layout(&b, &["#f-scan-target"], &["#f-target-url-0"]);
    set(&b, "#f-scan-target", &format!("http://{a}/"));
    set(
        &b,
        "#f-scan-endpoints",
        "/search q\nPOST /transfer to amount=5",
    );
    set(&b, "#f-scan-rate", "0");
    b.click("#f-validate");
    error_for(&b, "tasks[0].parameters.rate_limit_rps", "more than 0");
    set(&b, "#f-scan-rate", "20");
    set(&b, "#f-scan-depth", "deep");
    b.click("#f-validate");
    b.wait_js(
        "document.getElementById('f-validity').dataset.valid === 'true'",
        Duration::from_secs(10),
        "the scan valid",
    );
    b.screenshot_page("form-security.png", 2400);

    // A stress test: its steps; a bad one is named under its field.
    set(&b, "#f-type", "stress_test");
    wait_layout(
        &b,
        &["#f-stress-start-rps", "#f-target-url-0"],
        &["#f-scan-target", "#f-base-rps"],
    );
    set(&b, "#f-target-url-0", &format!("http://{a}/"));
    set(&b, "#f-stress-start-rps", "10");
    set(&b, "#f-stress-step-rps", "10");
    set(&b, "#f-stress-step-duration", "2s");
    set(&b, "#f-stress-max-rps", "5");
    error_for(&b, "tasks[0].parameters.max_rps", "below start_rps");
    set(&b, "#f-stress-max-rps", "30");
    b.wait_js(
        "document.getElementById('preview-info').textContent.includes('120 requests planned over 6 s')",
        Duration::from_secs(10),
        "the stress test's steps previewed",
    );
    b.screenshot_page("form-stress.png", 2400);

    // A load test: a POST with headers and a JSON body, and a threshold.
    set(&b, "#f-type", "load_test");
    wait_layout(&b, &["#f-base-rps"], &["#f-stress-start-rps"]);
    set(&b, "#f-target-url-0", &format!("http://{a}/echo"));
    set(&b, "#f-target-method-0", "POST");
    b.click("#f-target-more-0");
    set(&b, "#f-target-headers-0", "X-Run: form\nX-Other: 2");
    set(&b, "#f-target-body-0", "{\"a\": 1}");
    set(&b, "#f-thresholds", "p99_ms < 5000\nerrors < 1");
    set(&b, "#f-base-rps", "10");
    set(&b, "#f-duration", "2s");
    b.wait_js(
        "document.getElementById('preview-info').textContent.includes('20 requests planned')",
        Duration::from_secs(10),
        "the load test previewed",
    );
    let sent: Value = serde_json::from_str(
        b.eval("return document.getElementById('preview-json').textContent;")
            .as_str()
            .unwrap_or(""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &sent["tasks"][0]["parameters"];
    assert_eq!(
        p["targets"][0],
        json!({"url": format!("http://{a}/echo"), "method": "POST",
               "headers": {"X-Run": "form", "X-Other": "2"}, "body": {"a": 1}})
    );
    assert_eq!(p["thresholds"], json!(["p99_ms < 5000", "errors < 1"]));
    b.screenshot_page("form-load.png", 2400);
    b.click("#f-submit");
    b.wait_js(
        "location.hash.startsWith('#/executions/')",
        Duration::from_secs(10),
        "the execution page",
    );
    let id = b.eval("return location.hash.split('/')[2];");
    let id = id.as_str().unwrap().to_string();
    let view = cluster.wait_done(&id, Duration::from_secs(60));
    assert_eq!(view["state"], "completed", "{view}");
    let report = cluster.report(&id);
    let verdicts = &report["tasks"][0]["thresholds"];
    assert_eq!(verdicts.as_array().map(Vec::len), Some(2), "{verdicts}");
    assert_eq!(target.stats.view().paths["/echo"], 20);

    // A flow pasted as YAML: a misspelt key, then a syntax error, named under the flow.
    b.open(&cluster.orchestrator.url("/#/new"));
    b.wait_for("#f-flow", Duration::from_secs(10));
    set(&b, "#f-name", "yaml flow");
    let flow = format!(
        "- name: login\n  request:\n    method: POST\n    url: http://{a}/login\n    body: {{user: \"u{{{{ vu }}}}\", password: p}}\n  capture:\n    token: {{json: \"$.token\"}}\n  check: {{status: 200}}\n- name: me\n  request:\n    url: http://{a}/me\n    headers: {{authorization: \"Bearer {{{{ token }}}}\"}}\n  check: {{status: 200}}\n"
    );
    set(&b, "#f-flow", &flow.replace("  capture:", "  captures:"));
    error_for(&b, "tasks[0].parameters.flow[0]", "captures");
    set(
        &b,
        "#f-flow",
        &flow.replace(
            "  check: {status: 200}\n- name: me",
            "  check: {status: 200\n- name: me",
        ),
    );
    // The YAML error's line, counted in the flow's own lines.
    let err = error_for(&b, "tasks[0].parameters.flow", "of the flow");
    println!("the YAML error under the flow: {err}");
    b.screenshot_page("form-yaml-error.png", 2400);
    set(&b, "#f-flow", &flow);
    set(&b, "#f-duration", "2s");
    set(&b, "#f-base-rps", "10");
    b.wait_js(
        "document.getElementById('preview-info').textContent.includes('20 flow iterations planned')",
        Duration::from_secs(10),
        "the YAML flow previewed",
    );
    b.click("#f-submit");
    b.wait_js(
        "location.hash.startsWith('#/executions/') \
         && document.getElementById('exec-state').dataset.state === 'completed'",
        Duration::from_secs(60),
        "the YAML flow run to its end",
    );
    let served = target.stats.view();
    assert_eq!((served.paths["/login"], served.paths["/me"]), (20, 20));
    assert_eq!(served.rejected_tokens, 0);
}
