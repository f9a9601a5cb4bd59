//! The `flow`, `before`, `data` and `cookies` of a load task: a good plan reads to its typed
//! flow, every mistake is named by its key path, all at once.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::engine::flow::{Capture, CaptureFrom, Check, CompiledFlow, CompiledStep, DataSource};
use crate::engine::flow::{Order, Vars};
use crate::plan::data::{MAX_DATA_BYTES, MAX_DATA_ROWS};
use crate::plan::parse_document;
use crate::settings::Settings;

const P: &str = "tasks[0].parameters";
const USERS: &str = "name,password\nalice,a1\nbob,b2\n";

fn settings() -> LoadSettings {
    Settings::defaults().load_generation
}

/// Reads `params` as a task's parameters, data files relative to `base`.
fn read(params: &Value, base: &Path) -> Result<Flow, Vec<(String, String)>> {
    let mut e = FieldErrors::default();
    let mut o = Obj::new(params, P, &mut e).unwrap();
    let flow = read_flow(
        &mut o,
        &settings(),
        &TargetDefaults::default(),
        base,
        &mut e,
    );
    o.finish(&mut e);
    match flow {
        Some(flow) if e.is_empty() => Ok(flow),
        _ => {
            assert!(!e.is_empty(), "no flow and no error");
            Err(e.0.into_iter().map(|e| (e.field, e.message)).collect())
        }
    }
}

/// A directory holding `users.csv`.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.csv"), USERS).unwrap();
    dir
}

fn errors(params: Value) -> Vec<(String, String)> {
    let dir = data_dir();
    read(&params, dir.path()).expect_err("the flow was accepted")
}

/// The one error of `params`: at `field`, saying `says`.
fn one_error(params: Value, field: &str, says: &str) {
    let got = errors(params);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, field, "{got:#?}");
    assert!(
        got[0].1.contains(says),
        "{:?} does not say {says:?}",
        got[0].1
    );
}

/// A flow of one request to `url` with `extra` keys beside `request`.
fn one_step(request: Value, extra: Value) -> Value {
    let mut step = json!({ "request": request });
    for (k, v) in extra.as_object().unwrap() {
        step[k] = v.clone();
    }
    json!({"data": {"users": {"file": "users.csv"}}, "flow": [step]})
}

const PLAN: &str = r#"
data:
  users: {file: users.csv, order: unique}
before:
  - name: admin_login
    request: {method: POST, url: "http://127.0.0.1:8089/login", body: {user: admin, password: x}}
    capture: {admin_token: {json: "$.token"}}
flow:
  - name: login
    request: {method: post, url: "https://127.0.0.1:8443/login", timeout: 2s,
              body: {user: "{{ users.name }}", password: "{{ users.password }}"}}
    capture: {token: {json: "$.token"}}
    check: {status: 200}
  - think: 200ms
  - loop: 3
    steps:
      - name: item
        request: {url: "http://127.0.0.1:8089/items/{{ iteration }}?vu={{ vu }}",
                  headers: {authorization: "Bearer {{ token }}"}}
        check: {status: [200, 201], json: {"$.owner": "{{ users.name }}", "$.n": 3}, max_ms: 500}
  - group: browse
    steps:
      - request: {url: "http://127.0.0.1:8089", form: {a: "{{ admin_token }}"}}
        capture: {sid: {regex: "sid=(\\w+)"}, loc: {header: location}, code: {status: true}}
        check: {regex: {"id=(\\d+)": "{{ sid }}"}, contains: "{{ code }}"}
  - loop: {over: [a, b]}
    steps:
      - request: {url: "http://127.0.0.1:8089/tags/{{ item }}", body: "tag {{ node }}"}
cookies: false
"#;

fn target(url: &str, method: &str) -> Target {
    crate::engine::flow::step_target(url, method, settings().default_timeout)
}

fn t(source: &str) -> Template {
    Template::new(source)
}

fn step(name: &str, target: Target, path: &str) -> RequestStep {
    RequestStep {
        target: Target {
            name: name.into(),
            ..target
        },
        path: t(path),
        headers: Vec::new(),
        body: None,
        captures: Vec::new(),
        checks: Vec::new(),
    }
}

fn content_type(ct: &str) -> Vec<(String, Template)> {
    vec![("content-type".into(), t(ct))]
}

fn capture(var: &str, from: CaptureFrom) -> Capture {
    Capture {
        var: var.into(),
        from,
    }
}

fn expected() -> Flow {
    let mut admin = step(
        "admin_login",
        target("http://127.0.0.1:8089/", "POST"),
        "/login",
    );
    admin.headers = content_type("application/json");
    admin.body = Some(Body::Json(JsonTemplate::Object(vec![
        ("user".into(), JsonTemplate::String(t("admin"))),
        ("password".into(), JsonTemplate::String(t("x"))),
    ])));
    admin.captures = vec![capture("admin_token", CaptureFrom::Json("$.token".into()))];
    let mut login_target = target("https://127.0.0.1:8443/", "POST");
    login_target.timeout = Duration::from_secs(2);
    let mut login = step("login", login_target, "/login");
    login.headers = content_type("application/json");
    login.body = Some(Body::Json(JsonTemplate::Object(vec![
        ("user".into(), JsonTemplate::String(t("{{ users.name }}"))),
        (
            "password".into(),
            JsonTemplate::String(t("{{ users.password }}")),
        ),
    ])));
    login.captures = vec![capture("token", CaptureFrom::Json("$.token".into()))];
    login.checks = vec![Check::Status(vec![200])];
    let mut item = step(
        "item",
        target("http://127.0.0.1:8089/", "GET"),
        "/items/{{ iteration }}?vu={{ vu }}",
    );
    item.headers = vec![("authorization".into(), t("Bearer {{ token }}"))];
    item.checks = vec![
        Check::Status(vec![200, 201]),
        Check::Json {
            path: "$.owner".into(),
            expected: t("{{ users.name }}"),
        },
        Check::Json {
            path: "$.n".into(),
            expected: t("3"),
        },
        Check::MaxTime(Duration::from_millis(500)),
    ];
    let mut browse = step("GET /", target("http://127.0.0.1:8089/", "GET"), "/");
    browse.headers = content_type("application/x-www-form-urlencoded");
    browse.body = Some(Body::Form(vec![("a".into(), t("{{ admin_token }}"))]));
    browse.captures = vec![
        capture("sid", CaptureFrom::Regex("sid=(\\w+)".into())),
        capture("loc", CaptureFrom::Header("location".into())),
        capture("code", CaptureFrom::Status),
    ];
    browse.checks = vec![
        Check::Regex {
            pattern: "id=(\\d+)".into(),
            expected: t("{{ sid }}"),
        },
        Check::Contains(t("{{ code }}")),
    ];
    let mut tag = step(
        "GET /tags/{{ item }}",
        target("http://127.0.0.1:8089/", "GET"),
        "/tags/{{ item }}",
    );
    tag.body = Some(Body::Text(t("tag {{ node }}")));
    Flow {
        steps: vec![
            Step::Request(Box::new(login)),
            Step::Think(Duration::from_millis(200)),
            Step::Loop {
                times: LoopTimes::Count(3),
                steps: vec![Step::Request(Box::new(item))],
            },
            Step::Group {
                name: "browse".into(),
                steps: vec![Step::Request(Box::new(browse))],
            },
            Step::Loop {
                times: LoopTimes::Over(vec!["a".into(), "b".into()]),
                steps: vec![Step::Request(Box::new(tag))],
            },
        ],
        before: vec![Step::Request(Box::new(admin))],
        data: vec![DataSource {
            name: "users".into(),
            file: "users.csv".into(),
            order: Order::Unique,
            columns: vec!["name".into(), "password".into()],
            rows: vec![
                vec!["alice".into(), "a1".into()],
                vec!["bob".into(), "b2".into()],
            ],
        }],
        cookies: false,
    }
}

#[test]
fn a_good_plan_reads_to_its_typed_flow() {
    let dir = data_dir();
    let params = parse_document(PLAN).unwrap();
    let flow = read(&params, dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(flow, expected());
}

/// The flow a plan reads to goes over the wire, compiles on the node and renders.
#[test]
fn a_read_flow_compiles_and_renders_after_the_wire() {
    let dir = data_dir();
    let flow = read(&parse_document(PLAN).unwrap(), dir.path()).unwrap();
    let flow: Flow = postcard::from_bytes(&postcard::to_stdvec(&flow).unwrap()).unwrap();
    let flow = CompiledFlow::new(&flow).unwrap();
    let CompiledStep::Request(login) = &flow.steps[0] else {
        panic!("login first")
    };
    let mut vars = Vars::new();
    vars.set_row(flow.data_source("users").unwrap(), 1);
    let rendered = login.render(&vars).unwrap();
    assert_eq!(rendered.path, "/login");
    assert_eq!(
        rendered.body.as_deref(),
        Some(r#"{"user":"bob","password":"b2"}"#)
    );
}

/// Every mistake of a plan at once, each at its full key path.
#[test]
fn every_bad_path_is_reported_at_once() {
    let params = json!({
        "targets": ["http://127.0.0.1:8089/"],
        "data": {"users": {"file": "users.csv", "order": "shuffled"}, "vu": {"file": "users.csv"}},
        "cookies": "maybe",
        "flow": [
            {"request": {"url": "http://127.0.0.1:8089/", "method": "GE T", "headers": {"bad name": "x"}},
             "capture": {"token": {"json": "$$.token"}, "t2": {"regex": "("}, "t3": {}}},
            {"think": "soon"},
            {"loop": 0, "steps": [{"request": {"url": "http://127.0.0.1:8089/", "tiemout": 1}}]},
            {"group": "g", "steps": [
                {"request": {"url": "ftp://127.0.0.1/"}, "check": {"status": 99, "json": {"$[": "x"}, "max_ms": 0}}
            ]},
            {"request": {"url": "http://127.0.0.1:8089/"}, "think": "1s"},
            {"nothing": true},
        ],
    });
    let all = errors(params);
    for (field, message) in &all {
        println!("{field}: {message}");
    }
    let got: Vec<String> = all.into_iter().map(|(f, _)| f).collect();
    let f = |s: &str| format!("{P}.{s}");
    assert_eq!(
        got,
        [
            f("targets"),
            f("data.users.order"),
            f("data.vu"),
            f("cookies"),
            f("flow[0].request.method"),
            f("flow[0].request.headers.bad name"),
            f("flow[0].capture.token.json"),
            f("flow[0].capture.t2.regex"),
            f("flow[0].capture.t3"),
            f("flow[1].think"),
            f("flow[2].loop"),
            f("flow[2].steps[0].request.tiemout"),
            f("flow[3].steps[0].request.url"),
            f("flow[3].steps[0].check.status"),
            f("flow[3].steps[0].check.json.$["),
            f("flow[3].steps[0].check.max_ms"),
            f("flow[4]"),
            f("flow[5]"),
            f("flow[5].nothing"),
        ]
    );
}

#[test]
fn an_unknown_variable_is_named_with_its_path() {
    one_error(
        one_step(
            json!({"url": "http://127.0.0.1:8089/", "headers": {"authorization": "Bearer {{ tokn }}"}}),
            json!({}),
        ),
        &format!("{P}.flow[0].request.headers.authorization"),
        "names the variable \"tokn\", which nothing defines here",
    );
}

#[test]
fn an_unknown_column_is_named_with_the_columns() {
    one_error(
        one_step(
            json!({"url": "http://127.0.0.1:8089/", "body": {"u": ["{{ users.nmae }}"]}}),
            json!({}),
        ),
        &format!("{P}.flow[0].request.body.u[0]"),
        "data source users has no column \"nmae\" (its columns: name, password)",
    );
}

/// A capture is defined from its step on (its own checks included), not before.
#[test]
fn captures_are_defined_from_their_step_on() {
    let url = "http://127.0.0.1:8089/";
    let flow = json!({"flow": [
        {"request": {"url": format!("{url}{{{{ token }}}}")}},
        {"request": {"url": url}, "capture": {"token": {"header": "x-token"}},
         "check": {"contains": "{{ token }}"}},
        {"request": {"url": format!("{url}{{{{ token }}}}")}},
    ]});
    let got = errors(flow);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, format!("{P}.flow[0].request.url"));
}

/// `before` steps have `node` and their own captures; the flow has theirs too.
#[test]
fn before_steps_have_node_and_share_their_captures() {
    let params = json!({
        "data": {"users": {"file": "users.csv"}},
        "before": [
            {"request": {"url": "http://127.0.0.1:8089/{{ node }}"}, "capture": {"admin": {"status": true}}},
            {"request": {"url": "http://127.0.0.1:8089/{{ admin }}/{{ vu }}/{{ users.name }}"}},
        ],
        "flow": [{"request": {"url": "http://127.0.0.1:8089/{{ admin }}/{{ vu }}/{{ users.name }}"}}],
    });
    let got = errors(params);
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    let at = format!("{P}.before[1].request.url");
    assert_eq!(fields, [at.as_str(), at.as_str()], "{got:#?}");
    // In the order of the variables' names.
    assert!(got[0].1.contains("names the data source users"), "{got:?}");
    assert!(
        got[1]
            .1
            .contains("names vu, which before steps do not have"),
        "{got:?}"
    );
}

#[test]
fn item_is_defined_inside_a_loop_over_a_list_only() {
    let inner = json!([{"request": {"url": "http://127.0.0.1:8089/{{ item }}"}}]);
    let over = json!({"flow": [{"loop": {"over": ["a", 2, true]}, "steps": inner}]});
    let flow = read(&over, Path::new("")).unwrap();
    let Step::Loop { times, .. } = &flow.steps[0] else {
        panic!("a loop")
    };
    assert_eq!(
        *times,
        LoopTimes::Over(vec!["a".into(), "2".into(), "true".into()])
    );
    one_error(
        json!({"flow": [{"loop": 2, "steps": inner}]}),
        &format!("{P}.flow[0].steps[0].request.url"),
        "names item, which only the steps of a loop over a list",
    );
}

#[test]
fn a_templated_scheme_host_or_port_is_refused() {
    for url in [
        "https://{{ host }}/x",
        "http://127.0.0.1:{{ port }}/",
        "{{ base }}/login",
        "http{{ s }}://127.0.0.1/",
    ] {
        one_error(
            json!({"flow": [{"request": {"url": url}}]}),
            &format!("{P}.flow[0].request.url"),
            "the scheme, host and port must be literal",
        );
    }
    let flow = read(
        &json!({"flow": [{"request": {"url": "http://127.0.0.1:8089?q={{ node }}"}}]}),
        Path::new(""),
    )
    .unwrap();
    let Step::Request(r) = &flow.steps[0] else {
        panic!("a request")
    };
    assert_eq!(r.path, t("/?q={{ node }}"));
    assert_eq!(r.target.name, "GET /");
}

#[test]
fn a_host_outside_the_allowlist_is_refused() {
    one_error(
        json!({"flow": [{"request": {"url": "http://10.1.2.3/{{ node }}"}}]}),
        &format!("{P}.flow[0].request.url"),
        "10.1.2.3",
    );
}

#[test]
fn an_invalid_template_is_refused() {
    one_error(
        json!({"flow": [{"request": {"url": "http://127.0.0.1/", "body": "{{ node "}}]}),
        &format!("{P}.flow[0].request.body"),
        "is not a valid template",
    );
}

#[test]
fn sizes_are_bounded() {
    let request = json!({"request": {"url": "http://127.0.0.1/"}});
    let many: Vec<Value> = (0..101).map(|_| request.clone()).collect();
    one_error(
        json!({"flow": [{"group": "g", "steps": many}]}),
        &format!("{P}.flow"),
        "holds 101 request steps (loops' and groups' included); at most 100",
    );
    let mut nested = json!([request]);
    for _ in 0..9 {
        nested = json!([{"loop": 1, "steps": nested}]);
    }
    let deepest = format!("{P}.flow[0]{}", ".steps[0]".repeat(8));
    one_error(
        json!({"flow": nested}),
        &deepest,
        "nests loops and groups 9 deep; at most 8",
    );
    one_error(
        json!({"flow": [{"loop": 10_001, "steps": [request]}]}),
        &format!("{P}.flow[0].loop"),
        "must be in 1..=10000, got 10001",
    );
}

#[test]
fn flow_and_targets_together_are_refused_and_flow_keys_need_a_flow() {
    let dir = data_dir();
    let run = |params: Value| {
        let mut e = FieldErrors::default();
        let mut o = Obj::new(&params, P, &mut e).unwrap();
        let got = read_requests(
            &mut o,
            &settings(),
            &TargetDefaults::default(),
            dir.path(),
            &mut e,
        );
        o.finish(&mut e);
        (
            got,
            e.0.into_iter()
                .map(|e| (e.field, e.message))
                .collect::<Vec<_>>(),
        )
    };
    let (got, e) = run(json!({"targets": ["http://127.0.0.1/"], "flow": [{"think": 1}]}));
    assert!(got.is_none());
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, format!("{P}.targets"));
    assert!(e[0].1.contains("cannot be given with flow"));
    let (got, e) = run(json!({"targets": ["http://127.0.0.1/"], "cookies": true}));
    assert!(matches!(got, Some(Requests::Targets(_))));
    assert_eq!(
        e,
        [(
            format!("{P}.cookies"),
            "applies to a flow only: give flow instead of targets".into()
        )]
    );
    let (got, e) = run(json!({}));
    assert!(got.is_none());
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, format!("{P}.targets"));
    assert!(e[0].1.starts_with("is required"), "{e:?}");
    let (got, e) = run(json!({"flow": [{"think": 1}]}));
    assert!(matches!(got, Some(Requests::Flow(_))), "{e:?}");
}

/// A data source named `file` in a directory holding `contents`: the error at its `file`.
fn data_error(file: &str, contents: &[u8], says: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), contents).unwrap();
    let params = json!({"data": {"d": {"file": file}}, "flow": [{"think": 1}]});
    let got = read(&params, dir.path()).expect_err("accepted");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, format!("{P}.data.d.file"));
    assert!(
        got[0].1.contains(says),
        "{:?} does not say {says:?}",
        got[0].1
    );
}

#[test]
fn bad_data_files_are_refused() {
    data_error("empty.csv", b"", "is empty");
    data_error("blank.jsonl", b"\n\n", "is empty");
    data_error("ragged.csv", b"a,b\n1,2\n3\n", "found record with 1 field");
    data_error("unnamed.csv", b"a,,c\n1,2,3\n", "column 2 has no name");
    data_error("twice.csv", b"a,a\n1,2\n", "repeats the name \"a\"");
    data_error("header.csv", b"a,b\n", "no rows of data");
    data_error(
        "ragged.jsonl",
        b"{\"a\":1}\n{\"b\":1}\n",
        "line 2 has the keys [b]",
    );
    data_error("nested.ndjson", b"{\"a\":[1]}\n", "\"a\" is a list");
    data_error("list.jsonl", b"[1]\n", "expected a JSON object");
    data_error("users.txt", b"a\n1\n", "name it .csv");
    let dir = tempfile::tempdir().unwrap();
    let params = json!({"data": {"d": {"file": "missing.csv"}}, "flow": [{"think": 1}]});
    let got = read(&params, dir.path()).unwrap_err();
    assert!(got[0].1.contains("cannot read \"missing.csv\""), "{got:?}");
}

#[test]
fn json_lines_read_to_columns_and_text_cells() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("u.jsonl"),
        "{\"name\":\"al\",\"age\":3,\"admin\":true,\"note\":null}\n\n{\"age\":4.5,\"name\":\"bo\",\"admin\":false,\"note\":\"x\"}\n",
    )
    .unwrap();
    let params = json!({"data": {"u": {"file": "u.jsonl", "order": "RANDOM"}},
                        "flow": [{"request": {"url": "http://127.0.0.1/{{ u.age }}"}}]});
    let flow = read(&params, dir.path()).unwrap();
    let d = &flow.data[0];
    assert_eq!(d.order, Order::Random);
    assert_eq!(d.columns, ["name", "age", "admin", "note"]);
    assert_eq!(
        d.rows,
        [["al", "3", "true", ""], ["bo", "4.5", "false", "x"]]
    );
}

/// The data of a task is bounded in bytes (a sparse file: nothing is written) and in rows.
#[test]
fn data_files_are_bounded_per_task() {
    let dir = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(dir.path().join("big.csv")).unwrap();
    big.set_len(MAX_DATA_BYTES + 1).unwrap();
    let params = json!({"data": {"d": {"file": "big.csv"}}, "flow": [{"think": 1}]});
    let got = read(&params, dir.path()).unwrap_err();
    assert!(
        got[0]
            .1
            .contains("(64 MiB) the data files of a task may hold in all"),
        "{got:?}"
    );

    let mut rows = String::from("n\n");
    for i in 0..MAX_DATA_ROWS / 2 + 1 {
        rows.push_str(&format!("{i}\n"));
    }
    std::fs::write(dir.path().join("half.csv"), &rows).unwrap();
    let params = json!({"data": {"a": {"file": "half.csv"}, "b": {"file": "half.csv"}},
                        "flow": [{"think": 1}]});
    let got = read(&params, dir.path()).unwrap_err();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, format!("{P}.data.b.file"));
    assert!(
        got[0]
            .1
            .contains("of the 1000000 rows the data files of a task may hold"),
        "{got:?}"
    );
}
