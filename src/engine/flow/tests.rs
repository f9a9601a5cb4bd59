//! The run-time side of flows: the wire form, rendering, captures and checks over sample
//! responses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

fn target(url: &str) -> Target {
    Target {
        name: "step".into(),
        ..step_target(url, "POST", Duration::from_secs(5))
    }
}

fn t(source: &str) -> Template {
    Template::new(source)
}

fn request(path: &str) -> RequestStep {
    RequestStep {
        target: Target {
            name: "login".into(),
            ..target("http://127.0.0.1:8089/")
        },
        path: t(path),
        headers: Vec::new(),
        body: None,
        captures: Vec::new(),
        checks: Vec::new(),
    }
}

fn users() -> DataSource {
    DataSource {
        name: "users".into(),
        file: "users.csv".into(),
        order: Order::Unique,
        columns: vec!["name".into(), "password".into()],
        rows: vec![
            vec!["alice".into(), "a\"1".into()],
            vec!["bob".into(), "b 2".into()],
        ],
    }
}

/// A flow with every kind of step, body, capture and check.
fn every_kind() -> Flow {
    let mut login = request("/login?next={{ item }}");
    login.headers = vec![("authorization".into(), t("Bearer {{ token }}"))];
    login.body = Some(Body::Json(JsonTemplate::Object(vec![
        ("user".into(), JsonTemplate::String(t("{{ users.name }}"))),
        ("n".into(), JsonTemplate::Number("1.5".into())),
        ("ok".into(), JsonTemplate::Bool(true)),
        ("none".into(), JsonTemplate::Null),
        (
            "tags".into(),
            JsonTemplate::Array(vec![JsonTemplate::String(t("x"))]),
        ),
    ])));
    login.captures = vec![
        Capture {
            var: "token".into(),
            from: CaptureFrom::Json("$.token".into()),
        },
        Capture {
            var: "sid".into(),
            from: CaptureFrom::Regex("sid=(\\w+)".into()),
        },
        Capture {
            var: "loc".into(),
            from: CaptureFrom::Header("location".into()),
        },
        Capture {
            var: "code".into(),
            from: CaptureFrom::Status,
        },
    ];
    login.checks = vec![
        Check::Status(vec![200, 201]),
        Check::Json {
            path: "$.owner".into(),
            expected: t("{{ users.name }}"),
        },
        Check::Regex {
            pattern: "id=(\\d+)".into(),
            expected: t("7"),
        },
        Check::Contains(t("ok")),
        Check::MaxTime(Duration::from_millis(500)),
    ];
    let mut form = request("/form");
    form.body = Some(Body::Form(vec![("q".into(), t("{{ users.password }}"))]));
    let mut text = request("/text");
    text.body = Some(Body::Text(t("hello {{ vu }}\n")));
    Flow {
        steps: vec![
            Step::Loop {
                times: LoopTimes::Over(vec!["a".into(), "b".into()]),
                steps: vec![Step::Request(Box::new(login))],
            },
            Step::Think(Duration::from_millis(200)),
            Step::Group {
                name: "browse".into(),
                steps: vec![Step::Loop {
                    times: LoopTimes::Count(3),
                    steps: vec![Step::Request(Box::new(form))],
                }],
            },
            Step::Request(Box::new(text)),
        ],
        before: vec![Step::Request(Box::new(request("/admin")))],
        data: vec![users()],
        cookies: true,
    }
}

fn request_of<'a>(flow: &'a CompiledFlow, at: &[usize]) -> &'a CompiledRequest {
    let mut steps = &flow.steps;
    for (i, &index) in at.iter().enumerate() {
        match &steps[index] {
            CompiledStep::Request(r) if i + 1 == at.len() => return r,
            CompiledStep::Loop { steps: inner, .. } | CompiledStep::Group { steps: inner, .. } => {
                steps = inner
            }
            other => panic!("no request at {at:?}: {other:?}"),
        }
    }
    panic!("no request at {at:?}")
}

fn vars(flow: &CompiledFlow) -> Vars {
    let mut vars = Vars::new();
    vars.set_row(flow.data_source("users").unwrap(), 0);
    vars.set_u64("vu", 4);
    vars.set_u64("iteration", 2);
    vars.set_str("token", "t0k");
    vars.set_str("item", "a b");
    vars
}

#[test]
fn a_flow_goes_over_postcard_and_back() {
    let flow = every_kind();
    let bytes = postcard::to_stdvec(&flow).unwrap();
    let back: Flow = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, flow);
}

/// In JSON a data source shows its file, columns and row count, not its rows.
#[test]
fn a_data_source_in_json_counts_its_rows() {
    let json = serde_json::to_value(users()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"name": "users", "file": "users.csv", "order": "unique",
                           "columns": ["name", "password"], "rows": 2})
    );
    assert!(serde_json::from_value::<DataSource>(json).is_err());
}

#[test]
fn a_request_renders_its_path_headers_and_json_body() {
    let flow = CompiledFlow::new(&every_kind()).unwrap();
    let login = request_of(&flow, &[0, 0]);
    let rendered = login.render(&vars(&flow)).unwrap();
    assert_eq!(rendered.path, "/login?next=a%20b");
    assert_eq!(
        rendered.headers,
        [("authorization".to_string(), "Bearer t0k".to_string())]
    );
    assert_eq!(
        rendered.body.as_deref(),
        Some(r#"{"user":"alice","n":1.5,"ok":true,"none":null,"tags":["x"]}"#)
    );
    assert!(login.reads_json());
}

/// A rendered value is JSON-escaped in a JSON body, URL-encoded in a form.
#[test]
fn rendered_values_are_escaped_for_their_body() {
    let mut flow = every_kind();
    flow.data[0].rows[0] = vec!["a\"l\\ice\n".into(), "p&w=1 2".into()];
    let flow = CompiledFlow::new(&flow).unwrap();
    let vars = vars(&flow);
    let body = request_of(&flow, &[0, 0])
        .render_body(&vars)
        .unwrap()
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["user"], "a\"l\\ice\n");
    let form = request_of(&flow, &[2, 0, 0]).render_body(&vars).unwrap();
    assert_eq!(form.as_deref(), Some("q=p%26w%3D1+2"));
    let text = request_of(&flow, &[3]).render_body(&vars).unwrap();
    assert_eq!(
        text.as_deref(),
        Some("hello 4\n"),
        "the trailing newline is kept"
    );
}

/// A rendered path stays a path on the target: it cannot name another host.
#[test]
fn a_rendered_path_never_changes_the_host() {
    let mut step = request("{{ p }}");
    step.target = target("https://127.0.0.1:8443/");
    let flow = Flow {
        steps: vec![Step::Request(Box::new(step))],
        before: Vec::new(),
        data: Vec::new(),
        cookies: true,
    };
    let flow = CompiledFlow::new(&flow).unwrap();
    let r = request_of(&flow, &[0]);
    let mut vars = Vars::new();
    for (p, want) in [
        ("//evil.example/x", "//evil.example/x"),
        ("http://evil.example/", "/http://evil.example/"),
        ("/a b/c?d=e f#frag", "/a%20b/c?d=e%20f"),
        ("", "/"),
    ] {
        vars.set_str("p", p);
        assert_eq!(r.render_path(&vars).unwrap(), want, "{p}");
    }
}

#[test]
fn an_undefined_variable_or_a_bad_header_value_is_a_render_error() {
    let flow = CompiledFlow::new(&every_kind()).unwrap();
    let login = request_of(&flow, &[0, 0]);
    let mut vars = vars(&flow);
    vars.remove("token");
    let err = login.render_headers(&vars).unwrap_err();
    assert_eq!(err.template, "Bearer {{ token }}");
    assert!(err.message.contains("undefined"), "{err}");
    vars.set_str("token", "x\r\ninjected: 1");
    let err = login.render_headers(&vars).unwrap_err();
    assert!(
        err.message
            .contains("not a valid value for header authorization"),
        "{err}"
    );
}

/// A template that would run for ever runs out of fuel instead.
#[test]
fn a_runaway_template_runs_out_of_fuel() {
    let mut step = request("/");
    step.body = Some(Body::Text(t(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    )));
    let flow = Flow {
        steps: vec![Step::Request(Box::new(step))],
        before: Vec::new(),
        data: Vec::new(),
        cookies: false,
    };
    let flow = CompiledFlow::new(&flow).unwrap();
    let err = request_of(&flow, &[0])
        .render_body(&Vars::new())
        .unwrap_err();
    assert!(err.message.contains("fuel"), "{err}");
}

#[test]
fn compiling_a_bad_template_fails_with_its_source() {
    let mut flow = every_kind();
    flow.before = vec![Step::Request(Box::new(request("/{{ oops")))];
    let err = CompiledFlow::new(&flow).unwrap_err();
    assert!(err.contains("/{{ oops"), "{err}");
}

#[test]
fn vars_hold_rows_json_and_counters() {
    let source = Arc::new(users());
    let mut vars = Vars::new();
    vars.set_row(&source, 1);
    vars.set_json("doc", &serde_json::json!({"a": [1, {"b": "c"}]}));
    vars.set_u64("vu", 9);
    let mut step = request("/{{ users.name }}/{{ doc.a[1].b }}/{{ vu + 1 }}/{{ users|length }}");
    step.target = target("http://127.0.0.1:1/");
    let flow = CompiledFlow::new(&Flow {
        steps: vec![Step::Request(Box::new(step))],
        before: Vec::new(),
        data: Vec::new(),
        cookies: true,
    })
    .unwrap();
    let path = request_of(&flow, &[0]).render_path(&vars).unwrap();
    assert_eq!(path, "/bob/c/10/2");
    assert_eq!(vars.get("vu").as_deref(), Some("9"));
}

/// Measures rendering a header of two variables (printed, not asserted: timing belongs in a
/// bench, not in a test's verdict).
#[test]
fn rendering_a_two_variable_header_is_cheap() {
    let mut step = request("/");
    step.headers = vec![("x-user".into(), t("{{ users.name }}:{{ token }}"))];
    let flow = Flow {
        steps: vec![Step::Request(Box::new(step))],
        before: Vec::new(),
        data: vec![users()],
        cookies: true,
    };
    let flow = CompiledFlow::new(&flow).unwrap();
    let r = request_of(&flow, &[0]);
    let vars = vars(&flow);
    let rounds = 10_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        let headers = r.render_headers(&vars).unwrap();
        assert_eq!(headers[0].1, "alice:t0k");
    }
    let each = started.elapsed() / rounds;
    println!("rendering a two-variable header: {each:?} each");
}

fn response<'a>(status: u16, headers: &'a [(String, String)], body: &'a str) -> Response<'a> {
    Response::new(status, headers, body.as_bytes())
}

fn compiled_capture(from: CaptureFrom) -> CompiledCapture {
    CompiledCapture::new(&Capture {
        var: "v".into(),
        from,
    })
    .unwrap()
}

#[test]
fn captures_take_json_regex_header_and_status() {
    let headers = vec![("Location".to_string(), "/next".to_string())];
    let r = response(
        201,
        &headers,
        r#"{"token":"abc","n":3,"o":{"k":true}} sid=xyz id=42"#,
    );
    // Not JSON as a whole (text follows), so JSON captures find nothing there.
    let json = compiled_capture(CaptureFrom::Json("$.token".into()));
    assert_eq!(capture(&json, &r), None);
    let r = response(
        201,
        &headers,
        r#"{"token":"abc","n":3,"o":{"k":true},"s":"sid=xyz"}"#,
    );
    assert_eq!(capture(&json, &r).as_deref(), Some("abc"));
    let n = compiled_capture(CaptureFrom::Json("$.n".into()));
    assert_eq!(capture(&n, &r).as_deref(), Some("3"));
    let o = compiled_capture(CaptureFrom::Json("$.o".into()));
    assert_eq!(capture(&o, &r).as_deref(), Some(r#"{"k":true}"#));
    let missing = compiled_capture(CaptureFrom::Json("$.nope".into()));
    assert_eq!(capture(&missing, &r), None);
    let group = compiled_capture(CaptureFrom::Regex("sid=(\\w+)".into()));
    assert_eq!(capture(&group, &r).as_deref(), Some("xyz"));
    let whole = compiled_capture(CaptureFrom::Regex("sid=\\w+".into()));
    assert_eq!(capture(&whole, &r).as_deref(), Some("sid=xyz"));
    let header = compiled_capture(CaptureFrom::Header("location".into()));
    assert_eq!(capture(&header, &r).as_deref(), Some("/next"));
    let absent = compiled_capture(CaptureFrom::Header("x-none".into()));
    assert_eq!(capture(&absent, &r), None);
    let status = compiled_capture(CaptureFrom::Status);
    assert_eq!(capture(&status, &r).as_deref(), Some("201"));
}

/// The body is parsed as JSON only when a JSONPath asks for it.
#[test]
fn the_body_is_parsed_as_json_only_on_demand() {
    let r = response(200, &[], r#"{"a":"sid=1"}"#);
    let re = compiled_capture(CaptureFrom::Regex("sid=(\\d)".into()));
    assert_eq!(capture(&re, &r).as_deref(), Some("1"));
    assert!(!r.json_parsed());
    let json = compiled_capture(CaptureFrom::Json("$.a".into()));
    assert_eq!(capture(&json, &r).as_deref(), Some("sid=1"));
    assert!(r.json_parsed());
}

/// Runs the checks of `every_kind`'s login step over a response; the failures, as
/// `check: message`.
fn failures(status: u16, body: &str, elapsed_ms: u64) -> Vec<String> {
    let flow = CompiledFlow::new(&every_kind()).unwrap();
    let login = request_of(&flow, &[0, 0]);
    let r = response(status, &[], body);
    login
        .failed_checks(&r, Duration::from_millis(elapsed_ms), &vars(&flow))
        .into_iter()
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn checks_pass_on_a_good_response() {
    assert_eq!(
        failures(201, r#"{"owner":"alice","note":"ok id=7"}"#, 500),
        Vec::<String>::new()
    );
}

#[test]
fn every_failed_check_says_which_and_how() {
    assert_eq!(
        failures(401, r#"{"owner":"bob","note":"id=8"}"#, 620),
        [
            "status: expected one of 200, 201, got 401",
            "json $.owner: expected \"alice\", got \"bob\"",
            "regex id=(\\d+): expected \"7\", got \"8\"",
            "contains: the body does not contain \"ok\"",
            "max_ms: took 620 ms, more than 500 ms",
        ]
    );
    assert_eq!(
        failures(200, "not json", 1),
        [
            "json $.owner: the body is not JSON",
            "regex id=(\\d+): found nothing",
            "contains: the body does not contain \"ok\"",
        ]
    );
    assert_eq!(
        failures(200, r#"{"note":"ok id=7"}"#, 1),
        ["json $.owner: found nothing"]
    );
}

/// Numbers and booleans compare by their JSON text; a single status says just its code.
#[test]
fn json_checks_compare_numbers_and_booleans_by_their_text() {
    let env = Arc::new(template::environment());
    let json_check = |path: &str, expected: &str| {
        CompiledCheck::new(
            &Check::Json {
                path: path.into(),
                expected: t(expected),
            },
            &env,
        )
        .unwrap()
    };
    let r = response(200, &[], r#"{"n":3,"b":true,"s":"3"}"#);
    let ok = |c: &CompiledCheck| check(c, &r, Duration::ZERO, &Vars::new());
    assert_eq!(ok(&json_check("$.n", "3")), Ok(()));
    assert_eq!(ok(&json_check("$.b", "true")), Ok(()));
    assert_eq!(ok(&json_check("$.s", "3")), Ok(()));
    assert!(ok(&json_check("$.b", "True")).is_err());
    let status = CompiledCheck::new(&Check::Status(vec![200]), &env).unwrap();
    let r = response(503, &[], "");
    assert_eq!(
        check(&status, &r, Duration::ZERO, &Vars::new()),
        Err(CheckFailure {
            check: "status".into(),
            message: "expected 200, got 503".into()
        })
    );
}

#[test]
fn template_variables_are_found_with_their_attributes() {
    let vars = template::variables(
        "{{ users.name }}-{{ token }}{% set x = 1 %}{{ x }}{{ range(2)|length }}",
    )
    .unwrap();
    assert_eq!(
        vars.into_iter().collect::<Vec<_>>(),
        ["token", "users.name"]
    );
    assert!(template::variables("{{ a").is_err());
    assert!(template::variables("{ \"json\": 1 }").unwrap().is_empty());
}
