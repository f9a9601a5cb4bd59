//! Hostile input to the orchestrator's REST API: oversize, deeply nested, malformed and
//! mistyped bodies, wrong content types, targets outside the allowlist, unknown ids, paths and
//! methods. Each is a 4xx whose JSON body names the field (or the error code), nothing is
//! stored, and nothing is ever a 5xx. Also the bearer token on mutating calls.

mod common;

use common::closed_port;
use common::cluster::{Server, cluster_env, load_body, orchestrator_cmd};
use serde_json::{Value, json};

#[path = "api_inputs/cases.rs"]
mod cases;
use cases::{Case, Field, cases, invalid};

const EXECUTIONS: &str = "/api/executions";
const JSON: Option<&str> = Some("application/json");
/// `api.max_body_size` of the orchestrator most cases go to.
const SMALL_LIMIT: usize = 4096;

/// An orchestrator with extra `MCP_*` settings and a data folder of its own.
struct Orchestrator {
    server: Server,
    _dir: tempfile::TempDir,
}

impl Orchestrator {
    fn start(env: &[(&str, &str)]) -> Orchestrator {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut cmd = orchestrator_cmd(&data, 0);
        cluster_env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Orchestrator {
            server: Server::spawn("orchestrator", &mut cmd),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The executions the orchestrator knows, live and stored.
    fn executions(&self) -> Vec<Value> {
        let (status, body) = call(&self.url(EXECUTIONS), &Request::get());
        assert_eq!(status, 200, "{body}");
        body["executions"].as_array().cloned().expect("a list")
    }
}

/// How a body is sent.
enum Body {
    None,
    /// With a `Content-Length`.
    Sized(Vec<u8>),
    /// `Transfer-Encoding: chunked`, so the server learns the size only while reading.
    Chunked(Vec<u8>),
}

struct Request {
    method: &'static str,
    content_type: Option<&'static str>,
    body: Body,
    authorization: Option<&'static str>,
}

impl Request {
    fn get() -> Request {
        Request::bare("GET")
    }

    fn bare(method: &'static str) -> Request {
        Request {
            method,
            content_type: None,
            body: Body::None,
            authorization: None,
        }
    }

    fn json(body: impl Into<Vec<u8>>) -> Request {
        Request {
            method: "POST",
            content_type: JSON,
            body: Body::Sized(body.into()),
            authorization: None,
        }
    }

    fn with_authorization(mut self, value: &'static str) -> Request {
        self.authorization = Some(value);
        self
    }
}

/// What came back: the status (0 when nothing answered), the body as JSON (or as a string
/// naming the content type when it is not JSON), and the headers.
struct Answer {
    status: u16,
    body: Value,
    headers: ureq::http::HeaderMap,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn send(url: &str, r: &Request) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut b = ureq::http::Request::builder().method(r.method).uri(url);
    if let Some(ct) = r.content_type {
        b = b.header("Content-Type", ct);
    }
    if let Some(a) = r.authorization {
        b = b.header("Authorization", a);
    }
    let resp = match &r.body {
        Body::None => agent.run(b.body(()).unwrap()),
        Body::Sized(bytes) => agent.run(b.body(bytes.clone()).unwrap()),
        Body::Chunked(bytes) => agent.run(
            b.body(ureq::SendBody::from_owned_reader(std::io::Cursor::new(
                bytes.clone(),
            )))
            .unwrap(),
        ),
    };
    match resp {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            let body = match serde_json::from_str::<Value>(&text) {
                Ok(v) if ct.starts_with("application/json") => v,
                _ => Value::String(format!("(not JSON, content type {ct:?}) {text}")),
            };
            Answer {
                status,
                body,
                headers,
            }
        }
        Err(e) => Answer {
            status: 0,
            body: Value::String(format!("no answer: {e}")),
            headers: Default::default(),
        },
    }
}

/// The status and the JSON body.
fn call(url: &str, r: &Request) -> (u16, Value) {
    let a = send(url, r);
    (a.status, a.body)
}

/// A valid submission whose load task's parameters are patched (a `null` removes a key).
fn body_with(patch: Value) -> Vec<u8> {
    let mut params = json!({
        "targets": [{"url": format!("http://127.0.0.1:{}/", closed_port())}],
        "duration": "1s",
        "base_rps": 1,
    });
    for (k, v) in patch.as_object().expect("a patch is a mapping") {
        if v.is_null() {
            params.as_object_mut().unwrap().remove(k);
        } else {
            params[k] = v.clone();
        }
    }
    json!({"name": "hostile", "tasks": [{"type": "load_test", "parameters": params}]})
        .to_string()
        .into_bytes()
}

fn with_url(url: &str) -> Vec<u8> {
    body_with(json!({"targets": [{"url": url}]}))
}

/// Nested JSON arrays, `depth` deep, closed.
fn nested(depth: usize) -> Vec<u8> {
    let mut v = "[".repeat(depth).into_bytes();
    v.extend("]".repeat(depth).into_bytes());
    v
}

/// Checks one answer against its case; the reasons it does not match.
fn check(c: &Case, answer: &Answer) -> Vec<String> {
    let (status, body) = (answer.status, &answer.body);
    let mut wrong = Vec::new();
    if status == 405 && answer.header("allow").is_empty() {
        wrong.push("a 405 without an Allow header".into());
    }
    if status != c.status {
        wrong.push(format!("status {status}, expected {}", c.status));
    }
    if !body.is_object() {
        wrong.push("the body is not a JSON object".into());
        return wrong;
    }
    for key in ["error", "message", "field"] {
        if body.get(key).is_none() {
            wrong.push(format!("no {key:?} key"));
        }
    }
    if body["error"] != c.error {
        wrong.push(format!("error {}, expected {:?}", body["error"], c.error));
    }
    let message = body["message"].as_str().unwrap_or("");
    if message.is_empty() || !message.contains(c.says) {
        wrong.push(format!("message {message:?} does not say {:?}", c.says));
    }
    let field_ok = match c.field {
        Field::Null => body["field"].is_null(),
        Field::Is(f) => body["field"] == f,
    };
    if !field_ok {
        wrong.push(format!("field {}, expected {:?}", body["field"], c.field));
    }
    if c.error == "invalid" {
        // The valid base of each case adds no error of its own.
        let errors = body["errors"].as_array().map(Vec::len).unwrap_or(0);
        if errors != 1 {
            wrong.push(format!("{errors} field errors, expected 1"));
        }
    }
    wrong
}

#[test]
fn hostile_inputs_are_named_4xx_and_store_nothing() {
    let limit = SMALL_LIMIT.to_string();
    let orch = Orchestrator::start(&[("MCP_API_MAX_BODY_SIZE", &limit)]);
    let cases = cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for c in &cases {
        let answer = send(&orch.url(&c.path), &c.request);
        let (status, body) = (answer.status, &answer.body);
        eprintln!("{status:>3}  {:<50} {}", c.name, body["field"]);
        assert!(
            (400..500).contains(&status),
            "{}: status {status} is not a 4xx: {body}",
            c.name
        );
        let wrong = check(c, &answer);
        if !wrong.is_empty() {
            failures.push(format!("{}: {} in {body}", c.name, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(orch.executions(), Vec::<Value>::new(), "nothing is stored");
    let (status, health) = call(&orch.url("/api/health"), &Request::get());
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["executions"], json!({"running": 0, "pending": 0}));
}

/// serde_json stops at 128 levels; a document nested 10,000 (or 100,000) deep is a 400, not a
/// stack overflow that takes the orchestrator down.
#[test]
fn deeply_nested_json_is_a_400_not_a_crash() {
    let orch = Orchestrator::start(&[]);
    let objects = |depth: usize| {
        let mut v = r#"{"a":"#.repeat(depth).into_bytes();
        v.extend(b"1");
        v.extend("}".repeat(depth).into_bytes());
        v
    };
    let bodies = [
        ("arrays 10,000 deep", nested(10_000)),
        ("objects 10,000 deep", objects(10_000)),
        ("arrays 100,000 deep", nested(100_000)),
        (
            "unclosed arrays 100,000 deep",
            "[".repeat(100_000).into_bytes(),
        ),
    ];
    let yaml = |text: String| Request {
        content_type: Some("application/yaml"),
        ..Request::json(text)
    };
    let requests = bodies
        .into_iter()
        .map(|(name, body)| (name, Request::json(body)))
        .chain([
            ("YAML flow arrays 100,000 deep", yaml("[".repeat(100_000))),
            (
                "YAML block sequences 50,000 deep",
                yaml("- ".repeat(50_000) + "x"),
            ),
            (
                "YAML mappings 1,000 deep",
                yaml(
                    (0..1000)
                        .map(|i| format!("{}k:\n", " ".repeat(i)))
                        .collect(),
                ),
            ),
        ]);
    for (name, request) in requests {
        let (status, resp) = call(&orch.url(EXECUTIONS), &request);
        eprintln!("{status}  {name}: {resp}");
        assert_eq!(status, 400, "{name}: {resp}");
        assert_eq!(resp["error"], "bad_json", "{name}: {resp}");
        assert!(resp["field"].is_null(), "{name}: {resp}");
    }
    let (status, health) = call(&orch.url("/api/health"), &Request::get());
    assert_eq!(status, 200, "the orchestrator still answers: {health}");
    assert_eq!(orch.executions(), Vec::<Value>::new(), "nothing is stored");
}

#[test]
fn a_configured_token_guards_every_mutating_call() {
    let orch = Orchestrator::start(&[("MCP_API_TOKEN", "t0ken")]);
    let body = load_body(
        format!("127.0.0.1:{}", closed_port()).parse().unwrap(),
        10,
        1,
        json!({}),
    )
    .to_string();
    let submit = |authorization: Option<&'static str>| {
        let mut r = Request::json(body.clone());
        r.authorization = authorization;
        send(&orch.url(EXECUTIONS), &r)
    };
    let unauthorized = |what: &str, answer: Answer| {
        let resp = &answer.body;
        assert_eq!(answer.status, 401, "{what}: {resp}");
        assert_eq!(answer.header("www-authenticate"), "Bearer", "{what}");
        assert_eq!(resp["error"], "unauthorized", "{what}: {resp}");
        assert!(resp["field"].is_null(), "{what}: {resp}");
        assert!(resp["message"].is_string(), "{what}: {resp}");
    };

    unauthorized("no token", submit(None));
    unauthorized("wrong token", submit(Some("Bearer t0ke")));
    unauthorized("token as another scheme", submit(Some("Basic t0ken")));
    unauthorized("token without a scheme", submit(Some("t0ken")));
    unauthorized(
        "an invalid body without a token (auth first, nothing validated)",
        send(&orch.url(EXECUTIONS), &Request::json("{")),
    );
    assert_eq!(orch.executions(), Vec::<Value>::new(), "nothing is stored");

    let Answer {
        status,
        body: created,
        ..
    } = submit(Some("Bearer t0ken"));
    assert_eq!(status, 201, "{created}");
    let id = created["execution_id"].as_str().expect("an id").to_string();
    let one = orch.url(&format!("{EXECUTIONS}/{id}"));

    // Reads need no token.
    for path in [EXECUTIONS, "/api/nodes", "/api/health"] {
        let (status, resp) = call(&orch.url(path), &Request::get());
        assert_eq!(status, 200, "GET {path}: {resp}");
    }
    let (status, view) = call(&one, &Request::get());
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "pending", "no node, so it waits: {view}");

    unauthorized(
        "DELETE without a token",
        send(&one, &Request::bare("DELETE")),
    );
    unauthorized(
        "DELETE with a wrong token",
        send(
            &one,
            &Request::bare("DELETE").with_authorization("Bearer nope"),
        ),
    );
    assert_eq!(call(&one, &Request::get()).1["state"], "pending");

    // Cancelling is idempotent: a second DELETE of the finished execution says the same
    // (and the scheme's case does not matter).
    for (attempt, auth) in [("first", "Bearer t0ken"), ("second", "bearer t0ken")] {
        let (status, resp) = call(&one, &Request::bare("DELETE").with_authorization(auth));
        assert_eq!(status, 200, "{attempt} DELETE: {resp}");
        assert_eq!(resp["status"], "cancelled", "{attempt} DELETE: {resp}");
    }
    assert_eq!(call(&one, &Request::get()).1["state"], "cancelled");
    let listed = orch.executions();
    assert_eq!(listed.len(), 1, "{listed:?}");
}

/// Every number a plan carries has a bound: `base_rps: 1e308` was accepted (201) with
/// `planned_requests` at u64::MAX. Over its bound, each is a 422 naming its key, on submission
/// and on preview alike, and nothing is stored.
#[test]
fn numbers_beyond_their_bounds_are_422_naming_the_key() {
    let orch = Orchestrator::start(&[("MCP_LOAD_GENERATION_MAX_RPS", "5000")]);
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "base_rps 1e308",
            body_with(json!({"base_rps": 1e308})),
            "tasks[0].parameters.base_rps",
            "load_generation.max_rps (5000)",
        ),
        (
            "base_rps just over max_rps",
            body_with(json!({"base_rps": 5000.5})),
            "tasks[0].parameters.base_rps",
            "load_generation.max_rps",
        ),
        (
            "peak_rps over max_rps",
            body_with(json!({"pattern": "ramp_up", "peak_rps": 1e9})),
            "tasks[0].parameters.peak_rps",
            "load_generation.max_rps",
        ),
        (
            "a stage's target_rps over max_rps",
            body_with(json!({"base_rps": null, "duration": null,
                "stages": [{"duration": "1s", "target_rps": 1e12}]})),
            "tasks[0].parameters.stages[0].target_rps",
            "load_generation.max_rps",
        ),
        (
            "a target's timeout of 30 years",
            body_with(json!({"targets": [{"url": url, "timeout": 1e9}]})),
            "tasks[0].parameters.targets[0].timeout",
            "orchestrator.task_timeout",
        ),
        (
            "a target's weight of 2 million",
            body_with(json!({"targets": [{"url": url, "weight": 2_000_000}]})),
            "tasks[0].parameters.targets[0].weight",
            "1..=1000000",
        ),
        (
            "a think time of 1e7 s",
            body_with(
                json!({"model": "closed", "base_rps": null, "concurrent_users": 1,
                "think_time": 1e7}),
            ),
            "tasks[0].parameters.think_time",
            "orchestrator.task_timeout",
        ),
        (
            "a ramp of 1e9 s",
            body_with(json!({"pattern": "ramp_up", "peak_rps": 2, "ramp_duration": 1e9})),
            "tasks[0].parameters.ramp_duration",
            "orchestrator.task_timeout",
        ),
        (
            "an abort delay of 1e9 s",
            body_with(json!({"thresholds": ["p99_ms < 100"], "delay_abort_eval": 1e9})),
            "tasks[0].parameters.delay_abort_eval",
            "orchestrator.task_timeout",
        ),
    ];
    let mut failures = Vec::new();
    for (name, body, field, says) in cases {
        for path in [EXECUTIONS, "/api/executions/preview"] {
            let c = Case {
                says,
                ..invalid(name, body.clone(), field)
            };
            let answer = send(&orch.url(path), &Request::json(body.clone()));
            let wrong = check(&c, &answer);
            if !wrong.is_empty() {
                failures.push(format!(
                    "{name} ({path}): {} in {}",
                    wrong.join("; "),
                    answer.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(orch.executions(), Vec::<Value>::new(), "nothing is stored");
}
