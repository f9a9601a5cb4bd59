//! Custom metrics and command checks on a cluster of real processes (issue 18, acceptance 2):
//! a metric pushed to a node's `POST /health/metrics` past its critical level raises an alert
//! seen over the orchestrator's `GET /api/alerts`, its event stream (`alert_raised`, checked
//! against schemas/events.schema.json) and the node's `/metrics`, and clears when it falls
//! back; the same for a `command` check whose file is removed and made again. The metric is
//! also in the node's health (`/api/nodes/{id}/health`, `/api/health`). A `prometheus` check
//! reading a series of an application the test serves does the same, and is critical when the
//! series or the application is gone; a bad one stops the node naming its field.

mod common;

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;

use common::cluster::{Cluster, Server, get, post};
use common::wait_until;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

const TOKEN: &str = "node-t0ken";
const WAIT: Duration = Duration::from_secs(20);

type Socket = WebSocket<TcpStream>;

fn subscribe(c: &Cluster) -> Socket {
    let addr = c.orchestrator.addr;
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let url = format!("ws://{addr}/api/events");
    tungstenite::client(url.as_str(), stream)
        .expect("websocket handshake")
        .0
}

/// Reads events, each checked against the schema, until an `kind` event about `check_id`.
fn await_alert_event(socket: &mut Socket, kind: &str, check_id: &str) -> Value {
    let validator = common::schema("schemas/events.schema.json");
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let ev: Value = match socket.read() {
            Ok(Message::Text(t)) => serde_json::from_str(t.as_str()).unwrap(),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("event stream ended: {e}"),
        };
        if let Err(e) = validator.validate(&ev) {
            panic!("event off its schema: {e}\n{ev:#}");
        }
        if ev["type"] == kind && ev["alert"]["check_id"] == check_id {
            return ev;
        }
        seen.push(ev["type"].clone());
    }
    panic!("no {kind} for {check_id} within {WAIT:?}; saw {seen:?}");
}

/// A node with a fast monitor (0.2 s rounds, alerts after 2) and a command check on `marker`.
fn start(marker: &std::path::Path) -> (Cluster, Socket, common::TempFile) {
    start_with(&format!(
        "    - {{name: marker, type: command, run: \"test -e '{}'\", timeout: 2, interval: 0.4}}\n",
        marker.display()
    ))
}

/// A node with a fast monitor (0.2 s rounds, alerts after 2) and these `checks` (YAML list
/// items, indented by 4).
fn start_with(checks: &str) -> (Cluster, Socket, common::TempFile) {
    let config = common::temp_file(
        "node.yaml",
        &format!(
            "health_monitoring:\n  check_interval: 0.2\n  alert_threshold: 2\n  checks:\n{checks}"
        ),
    );
    let mut c = Cluster::empty();
    let events = subscribe(&c);
    c.add_configured_node("node-1", &config.path, &[("MCP_API_TOKEN", TOKEN)]);
    c.wait_connected(1);
    (c, events, config)
}

/// Waits for the critical alert on `check_id` (a value in jobs): its `alert_raised` event, the
/// orchestrator's one active alert saying the value, and the check showing it. Answers the event.
fn await_raised(c: &Cluster, events: &mut Socket, check_id: &str, value: f64) -> Value {
    let raised = await_alert_event(events, "alert_raised", check_id);
    assert_eq!(raised["alert"]["severity"], "critical", "{raised}");
    assert!(wait_until(WAIT, || alerts(c, check_id, true).len() == 1));
    let alert = alerts(c, check_id, true).remove(0);
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{value} jobs")),
        "{alert}"
    );
    assert!(wait_until(WAIT, || check_of(c, check_id)["value"] == value));
    raised
}

/// Waits for the alert `raised` announced to clear: its `alert_cleared` event, and no active
/// alert on its check at the orchestrator.
fn await_cleared(c: &Cluster, events: &mut Socket, raised: &Value) {
    let check_id = raised["alert"]["check_id"].as_str().unwrap();
    let cleared = await_alert_event(events, "alert_cleared", check_id);
    assert_eq!(cleared["alert"]["alert_id"], raised["alert"]["alert_id"]);
    assert!(wait_until(WAIT, || alerts(c, check_id, true).is_empty()));
}

/// The orchestrator's alerts about `check_id`, active ones or all.
fn alerts(c: &Cluster, check_id: &str, active: bool) -> Vec<Value> {
    get(&c.orchestrator.url(&format!("/api/alerts?active={active}"))).1["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["check_id"] == check_id && a["node_id"] == "node-1")
        .collect()
}

/// The node's check `check_id` as the orchestrator last heard it.
fn check_of(c: &Cluster, check_id: &str) -> Value {
    let h = get(&c.orchestrator.url("/api/nodes/node-1/health")).1;
    h["report"]["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["check_id"] == check_id).cloned())
        .unwrap_or(Value::Null)
}

fn node_metrics(node: &Server) -> String {
    ureq::get(&node.url("/metrics"))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// `promtool check metrics` parses the exposition and lints nothing about the custom series.
fn promtool_accepts_the_custom_series(text: &str) {
    let out = common::promtool_check_metrics(text);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(
        out.status.code(),
        Some(1),
        "a parse error: {stdout}\n{text}"
    );
    assert!(!stdout.contains("mcp_node_custom_metric"), "{stdout}");
}

fn push(node: &Server, body: &Value, token: Option<&str>) -> (u16, Value) {
    post(&node.url("/health/metrics"), body, token)
}

#[test]
fn bad_metrics_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").unwrap();
    let (c, _events, _config) = start(&marker);
    let node = &c.nodes[0];
    let ok = json!({"name": "queue_depth", "value": 1});
    assert_eq!(push(node, &ok, None).0, 401, "behind the node's token");
    assert_eq!(push(node, &ok, Some("wrong")).0, 401);
    let cases = [
        (json!({"name": "Queue", "value": 1}), "name"),
        (json!({"value": 1}), "name"),
        (json!({"name": "q"}), "value"),
        (json!({"name": "q", "value": "high"}), "value"),
        (
            json!({"name": "q", "value": 1, "critical": "x"}),
            "critical",
        ),
        (
            json!({"name": "q", "value": 1, "warning": 9, "critical": 3}),
            "critical",
        ),
        (json!({"name": "q", "value": 1, "extra": true}), "extra"),
    ];
    for (body, field) in cases {
        let (status, answer) = push(node, &body, Some(TOKEN));
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"], "invalid", "{answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    for i in 0..100 {
        let m = json!({"name": format!("m{i}"), "value": i});
        assert_eq!(push(node, &m, Some(TOKEN)).0, 200);
    }
    let (status, answer) = push(node, &ok, Some(TOKEN));
    assert_eq!(status, 409, "at most 100 metrics per node: {answer}");
    let known = json!({"name": "m7", "value": 8});
    assert_eq!(
        push(node, &known, Some(TOKEN)).0,
        200,
        "a known one updates"
    );
}

#[test]
fn a_custom_metric_past_critical_raises_an_alert_that_clears() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").unwrap();
    let (c, mut events, _config) = start(&marker);
    let node = &c.nodes[0];
    let id = "metric:queue_depth";
    let metric = |value: f64| {
        json!({"name": "queue_depth", "value": value, "unit": "jobs", "warning": 10,
               "critical": 20, "higher_is_worse": true})
    };
    let (status, answer) = push(node, &metric(50.0), Some(TOKEN));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "accepted");

    let raised = await_raised(&c, &mut events, id, 50.0);
    assert_eq!(check_of(&c, id)["kind"], "metric");
    let cluster = get(&c.orchestrator.url("/api/health")).1["cluster"].clone();
    let view = &cluster["nodes"][0];
    assert_eq!(view["custom_metrics"]["queue_depth"], 50.0, "{cluster}");
    let line = "mcp_node_custom_metric{node_id=\"node-1\",name=\"queue_depth\"} 50.0";
    assert!(node_metrics(node).contains(line), "{}", node_metrics(node));
    promtool_accepts_the_custom_series(&node_metrics(node));
    let node_health = get(&c.orchestrator.url("/api/nodes/node-1/health")).1;
    assert!(
        node_health["report"]["score"].as_f64().unwrap() <= 75.0,
        "{node_health}"
    );

    assert_eq!(push(node, &metric(3.0), Some(TOKEN)).0, 200);
    await_cleared(&c, &mut events, &raised);
    assert!(alerts(&c, id, false)[0]["cleared_at_ms"].is_u64());
    let line = "mcp_node_custom_metric{node_id=\"node-1\",name=\"queue_depth\"} 3.0";
    assert!(wait_until(WAIT, || node_metrics(node).contains(line)));
}

#[test]
fn a_failing_command_check_raises_an_alert_that_clears() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "").unwrap();
    let (c, mut events, _config) = start(&marker);
    let id = "command:marker";
    assert!(
        wait_until(WAIT, || check_of(&c, id)["status"] == "healthy"),
        "{}",
        check_of(&c, id)
    );
    assert!(alerts(&c, id, true).is_empty(), "no alert while it passes");

    std::fs::remove_file(&marker).unwrap();
    let raised = await_alert_event(&mut events, "alert_raised", id);
    assert_eq!(raised["alert"]["severity"], "critical", "{raised}");
    assert!(wait_until(WAIT, || alerts(&c, id, true).len() == 1));
    assert_eq!(check_of(&c, id)["kind"], "command");

    std::fs::write(&marker, "").unwrap();
    await_cleared(&c, &mut events, &raised);
    assert!(wait_until(WAIT, || check_of(&c, id)["status"] == "healthy"));
}

/// An application's `/metrics` on 127.0.0.1:0 whose text the test sets.
fn exporter(text: &str) -> (common::TestServer, Arc<Mutex<String>>) {
    let shared = Arc::new(Mutex::new(text.to_string()));
    let served = shared.clone();
    let server = common::TestServer::start(move |req| {
        let body = served.lock().unwrap().clone();
        async move {
            if req.path() == "/metrics" {
                HttpResponse::Ok()
                    .content_type("text/plain; version=0.0.4; charset=utf-8")
                    .body(body)
            } else {
                HttpResponse::NotFound().finish()
            }
        }
    });
    (server, shared)
}

fn queue_depths(orders: f64) -> String {
    format!(
        "# HELP app_queue_depth Jobs waiting.\n# TYPE app_queue_depth gauge\n\
         app_queue_depth{{queue=\"orders\"}} {orders}\napp_queue_depth{{queue=\"mail\"}} 900\n"
    )
}

#[test]
fn a_prometheus_series_past_critical_raises_an_alert_that_clears() {
    let (app, text) = exporter(&queue_depths(5.0));
    let check = format!(
        "    - name: orders\n      type: prometheus\n      url: http://{}/metrics\n      \
         series: 'app_queue_depth{{queue=\"orders\"}}'\n      warning: 10\n      \
         critical: 20\n      unit: jobs\n      timeout: 2\n",
        app.addr
    );
    let (c, mut events, _config) = start_with(&check);
    let node = &c.nodes[0];
    let id = "prometheus:orders";
    assert!(
        wait_until(WAIT, || check_of(&c, id)["value"] == 5.0),
        "{}",
        check_of(&c, id)
    );
    let healthy = check_of(&c, id);
    assert_eq!(healthy["status"], "healthy", "{healthy}");
    assert_eq!(healthy["kind"], "prometheus");
    // A pushed metric may not take its name: both would be one gauge for two values.
    let same = json!({"name": "orders", "value": 1});
    let (status, answer) = push(node, &same, Some(TOKEN));
    assert_eq!(
        (status, &answer["field"]),
        (422, &json!("name")),
        "{answer}"
    );
    assert_eq!(healthy["unit"], "jobs");
    assert!(alerts(&c, id, true).is_empty(), "no alert while it is low");

    *text.lock().unwrap() = queue_depths(50.0);
    let raised = await_raised(&c, &mut events, id, 50.0);
    let line = "mcp_node_custom_metric{node_id=\"node-1\",name=\"orders\"} 50.0";
    assert!(
        wait_until(WAIT, || node_metrics(node).contains(line)),
        "{}",
        node_metrics(node)
    );
    promtool_accepts_the_custom_series(&node_metrics(node));
    let cluster = get(&c.orchestrator.url("/api/health")).1["cluster"].clone();
    assert_eq!(
        cluster["nodes"][0]["custom_metrics"]["orders"], 50.0,
        "{cluster}"
    );
    // What the web UI shows of it: status, value and unit.
    let shown = &cluster["nodes"][0]["custom_metric_checks"][0];
    assert_eq!(shown["check_id"], id, "{cluster}");
    assert_eq!(
        (&shown["status"], &shown["value"], &shown["unit"]),
        (&json!("critical"), &json!(50.0), &json!("jobs")),
        "{shown}"
    );

    *text.lock().unwrap() = queue_depths(3.0);
    await_cleared(&c, &mut events, &raised);
    let line = "mcp_node_custom_metric{node_id=\"node-1\",name=\"orders\"} 3.0";
    assert!(wait_until(WAIT, || node_metrics(node).contains(line)));

    // The series gone, then the application: critical, each saying why.
    *text.lock().unwrap() = "app_queue_depth{queue=\"mail\"} 900\n".into();
    assert!(
        wait_until(WAIT, || check_of(&c, id)["status"] == "critical"),
        "{}",
        check_of(&c, id)
    );
    let gone = check_of(&c, id);
    assert!(
        gone["message"]
            .as_str()
            .unwrap()
            .contains("no sample matches"),
        "{gone}"
    );
    assert!(gone["value"].is_null(), "{gone}");
    // Nothing read, no series: a value kept from before would read as current.
    let served = node_metrics(node);
    assert!(!served.contains("name=\"orders\""), "{served}");
    drop(app);
    assert!(
        wait_until(WAIT, || check_of(&c, id)["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("GET "))),
        "{}",
        check_of(&c, id)
    );
    assert_eq!(check_of(&c, id)["status"], "critical");
    assert!(wait_until(WAIT, || alerts(&c, id, true).len() == 1));
}

#[test]
fn a_bad_prometheus_check_is_refused_naming_the_field() {
    let cases = [
        (
            "series: 'app_queue_depth{queue=orders}'",
            "health_monitoring.checks[0].series",
        ),
        (
            "series: q\n      critical: x",
            "health_monitoring.checks[0].critical",
        ),
        (
            "series: q\n      warning: 9\n      critical: 3",
            "health_monitoring.checks[0].critical",
        ),
    ];
    for (extra, field) in cases {
        let config = common::temp_file(
            "node.yaml",
            &format!(
                "health_monitoring:\n  checks:\n    - name: q\n      type: prometheus\n      \
                 url: http://127.0.0.1:1/metrics\n      {extra}\n"
            ),
        );
        let mut cmd = common::mcpt(&[
            "node",
            "--port",
            "0",
            "--config",
            config.path.to_str().unwrap(),
        ]);
        let out = common::ChildGuard::spawn(&mut cmd).wait(WAIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}: accepted");
        assert!(stderr.contains(field), "{extra}: {stderr}");
    }
}
