//! The `tls`, `http_version` and `connections` keys through whole plans: what a target
//! inherits and overrides, every mistake named by its key path, and the JSON form that shows
//! paths and never a file's contents.

use serde_json::{Value, json};

use crate::engine::target::{HttpVersion, Pem};
use crate::plan::PlanError;
use crate::settings::{LoadSettings, Settings};
use crate::task::load::LoadTask;
use crate::task::{TaskKind, validate};

const CERT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tls/client-cert.pem"
);
const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tls/client-key.pem"
);
const P: &str = "tasks[0].parameters";

fn settings() -> LoadSettings {
    Settings::defaults().load_generation
}

/// A load task to one https target, its parameters patched by `extra`.
fn plan(extra: Value) -> Value {
    let mut params = json!({
        "targets": [{"url": "https://127.0.0.1:9/"}],
        "duration": "1s",
        "base_rps": 1,
    });
    for (k, v) in extra.as_object().expect("a mapping") {
        params[k] = v.clone();
    }
    json!({"name": "t", "tasks": [{"type": "load_test", "parameters": params}]})
}

fn load(doc: Value) -> LoadTask {
    let plan = validate(&doc, &settings()).unwrap_or_else(|e| panic!("{e}"));
    let TaskKind::LoadTest(t) = plan.tasks.into_iter().next().unwrap().kind else {
        panic!("a load test")
    };
    t
}

fn errors(doc: Value) -> Vec<(String, String)> {
    match validate(&doc, &settings()) {
        Ok(_) => panic!("plan was accepted"),
        Err(PlanError::Invalid(e)) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
        Err(other) => panic!("{other}"),
    }
}

/// The one error of `doc`: its field must be `field` and its message contain `says`.
fn one_error(doc: Value, field: &str, says: &str) {
    let got = errors(doc);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, field, "{got:?}");
    assert!(
        got[0].1.contains(says),
        "{:?} should say {says:?}",
        got[0].1
    );
}

fn pem(path: &str) -> Pem {
    Pem {
        path: path.into(),
        pem: std::fs::read_to_string(path).unwrap(),
    }
}

#[test]
fn an_https_target_is_accepted_with_the_defaults() {
    let t = load(plan(json!({})));
    assert_eq!(t.targets[0].url.scheme(), "https");
    assert_eq!(t.targets[0].tls, Default::default());
    assert_eq!(t.targets[0].http_version, HttpVersion::Auto);
    assert_eq!(t.connections, None);
}

#[test]
fn a_targets_tls_keys_override_the_tasks_key_by_key() {
    let t = load(plan(json!({
        "tls": {"ca": CERT, "insecure": true, "cert": CERT, "key": KEY, "server_name": "api.test"},
        "http_version": 2,
        "connections": 8,
        "targets": [
            {"url": "https://127.0.0.1:9/a"},
            {"url": "https://127.0.0.1:9/b", "http_version": "1.1",
             "tls": {"insecure": false, "server_name": "10.0.0.1"}},
        ],
    })));
    let (a, b) = (&t.targets[0], &t.targets[1]);
    assert_eq!(a.tls.ca, Some(pem(CERT)));
    assert!(a.tls.insecure);
    let id = a.tls.identity.as_ref().expect("the task's identity");
    assert_eq!((&id.cert, &id.key), (&pem(CERT), &pem(KEY)));
    assert_eq!(a.tls.server_name.as_deref(), Some("api.test"));
    assert_eq!(a.http_version, HttpVersion::Http2);
    // The second target keeps the task's ca and identity, and sets its own others.
    assert_eq!(b.tls.ca, a.tls.ca);
    assert_eq!(b.tls.identity, a.tls.identity);
    assert!(!b.tls.insecure);
    assert_eq!(b.tls.server_name.as_deref(), Some("10.0.0.1"));
    assert_eq!(b.http_version, HttpVersion::Http1);
    assert_eq!(t.connections, Some(8));
}

#[test]
fn http_version_reads_numbers_and_strings_and_names_anything_else() {
    for (given, want) in [
        (json!(2), HttpVersion::Http2),
        (json!(2.0), HttpVersion::Http2),
        (json!("2"), HttpVersion::Http2),
        (json!(1.1), HttpVersion::Http1),
        (json!("1.1"), HttpVersion::Http1),
        (json!("auto"), HttpVersion::Auto),
        (json!("AUTO"), HttpVersion::Auto),
    ] {
        let t = load(plan(json!({"http_version": given})));
        assert_eq!(t.targets[0].http_version, want, "{given}");
    }
    for bad in [json!(3), json!(1), json!("h2"), json!("1.0"), json!(true)] {
        one_error(
            plan(json!({"http_version": bad})),
            &format!("{P}.http_version"),
            "expected auto, \"1.1\" or \"2\"",
        );
    }
    one_error(
        plan(json!({"targets": [{"url": "http://127.0.0.1:9/", "http_version": "3"}]})),
        &format!("{P}.targets[0].http_version"),
        "expected auto",
    );
}

#[test]
fn connections_must_be_within_the_users_limit() {
    let max = settings().max_concurrent_requests;
    for bad in [json!(0), json!(max + 1)] {
        one_error(
            plan(json!({"connections": bad})),
            &format!("{P}.connections"),
            "max_concurrent_requests",
        );
    }
    one_error(
        plan(json!({"connections": "many"})),
        &format!("{P}.connections"),
        "",
    );
    assert_eq!(
        load(plan(json!({"connections": max}))).connections,
        Some(max)
    );
}

#[test]
fn every_tls_mistake_names_its_key() {
    let tls = |v: Value| plan(json!({"tls": v}));
    let at = |k: &str| format!("{P}.tls.{k}");
    one_error(
        tls(json!({"ca": "/no/such/ca.pem"})),
        &at("ca"),
        "cannot read",
    );
    one_error(tls(json!({"ca": ""})), &at("ca"), "empty");
    one_error(tls(json!({"ca": KEY})), &at("ca"), "holds no certificate");
    one_error(
        tls(json!({"cert": CERT})),
        &at("key"),
        "is required with cert",
    );
    one_error(
        tls(json!({"key": KEY})),
        &at("cert"),
        "is required with key",
    );
    one_error(
        tls(json!({"cert": KEY, "key": KEY})),
        &at("cert"),
        "holds no certificate",
    );
    one_error(
        tls(json!({"cert": CERT, "key": CERT})),
        &at("key"),
        "holds no private key",
    );
    one_error(
        tls(json!({"server_name": "not a name!"})),
        &at("server_name"),
        "DNS name",
    );
    one_error(tls(json!({"insecure": "sure"})), &at("insecure"), "");
    one_error(tls(json!({"verify": false})), &at("verify"), "unknown key");
    one_error(tls(json!("on")), &format!("{P}.tls"), "expected a mapping");
    // On a target, the target's path.
    one_error(
        plan(json!({"targets": [{"url": "https://127.0.0.1:9/", "tls": {"ca": "/no/such"}}]})),
        &format!("{P}.targets[0].tls.ca"),
        "cannot read",
    );
}

#[test]
fn a_pem_file_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pem");
    let cert = std::fs::read_to_string(CERT).unwrap();
    let copies = (super::MAX_PEM_BYTES as usize / cert.len()) + 1;
    std::fs::write(&big, cert.repeat(copies)).unwrap();
    one_error(
        plan(json!({"tls": {"ca": big}})),
        &format!("{P}.tls.ca"),
        "more than a PEM file may be",
    );
}

#[test]
fn json_shows_the_files_paths_and_the_wire_carries_their_contents() {
    let t = load(plan(json!({"tls": {"ca": CERT, "cert": CERT, "key": KEY}})));
    let key_text = std::fs::read_to_string(KEY).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    let json = serde_json::to_string(&t).unwrap();
    assert!(!json.contains(key_body), "{json}");
    assert!(!json.contains("PRIVATE KEY"), "{json}");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["traffic"]["targets"][0]["tls"],
        json!({"ca": CERT, "insecure": false, "cert": CERT, "key": KEY})
    );
    assert_eq!(v["traffic"]["targets"][0]["http_version"], json!("auto"));
    let wire = postcard::to_stdvec(&t).unwrap();
    let back: LoadTask = postcard::from_bytes(&wire).unwrap();
    assert_eq!(back, t);
    let id = back.targets[0].tls.identity.as_ref().unwrap();
    assert_eq!(id.key.pem, key_text);
    // A Pem on its own in JSON is its path too, and JSON cannot give one back.
    assert_eq!(serde_json::to_value(pem(KEY)).unwrap(), json!(KEY));
    assert!(serde_json::from_value::<Pem>(json!(KEY)).is_err());
}

#[test]
fn security_scans_still_refuse_https_naming_the_field() {
    let doc = json!({"tasks": [{"type": "security_test",
        "parameters": {"target": "https://127.0.0.1:9/"}}]});
    let got = errors(doc);
    assert_eq!(got[0].0, "tasks[0].parameters.target", "{got:?}");
    assert!(got[0].1.contains("https"), "{got:?}");
}

#[test]
fn the_report_knows_a_task_with_https_targets_and_insecure_ones() {
    let tls_of = |doc: Value| {
        let (work, _, _) = crate::task::load::exec::LoadWork::new(load(doc), 1);
        let slots = crate::task::work::Slots {
            name: "t".into(),
            nodes: Vec::new(),
            lost: Vec::new(),
            reported_sent: Vec::new(),
        };
        work.info(slots, None).tls
    };
    let http = json!({"targets": [{"url": "http://127.0.0.1:9/"}], "tls": {"insecure": true}});
    assert_eq!(tls_of(plan(http)), None);
    let secure = tls_of(plan(json!({}))).expect("an https task");
    assert!(!secure.insecure);
    let mixed = json!({"targets": [
        {"url": "https://127.0.0.1:9/"},
        {"url": "https://127.0.0.1:9/", "tls": {"insecure": true}},
    ]});
    assert!(tls_of(plan(mixed)).unwrap().insecure);
}
