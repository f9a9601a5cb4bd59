//! The load reader's tests, through whole plans (moved from `plan`'s tests).

use std::time::Duration;

use serde_json::{Value, json};

use super::{LoadTask, Model, OnNodeFailure};
use crate::engine::schedule::{Arrivals, Pattern};
use crate::engine::target::ExpectedStatus;
use crate::plan::targets::MAX_TARGETS;
use crate::plan::{PlanError, parse_document};
use crate::settings::{LoadSettings, Settings};
use crate::task::{TaskKind, load_file, validate};

fn settings() -> LoadSettings {
    Settings::defaults().load_generation
}

fn task(params: Value) -> Value {
    json!({"name": "t", "tasks": [{"type": "load_test", "parameters": params}]})
}

fn errors(doc: Value) -> Vec<(String, String)> {
    match validate(&doc, &settings()) {
        Ok(_) => panic!("plan was accepted"),
        Err(PlanError::Invalid(e)) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
        Err(other) => panic!("{other}"),
    }
}

fn load(doc: Value) -> LoadTask {
    let plan = validate(&doc, &settings()).unwrap_or_else(|e| panic!("{e}"));
    let TaskKind::LoadTest(t) = plan.tasks.into_iter().next().unwrap().kind else {
        panic!("a load test")
    };
    t
}

#[test]
fn absurd_durations_and_step_counts_are_refused_not_built() {
    let url = json!([{"url": "http://127.0.0.1:9/"}]);
    let got = errors(task(
        json!({"targets": url, "duration": "2h", "base_rps": 1}),
    ));
    assert_eq!(got[0].0, "tasks[0].parameters.duration", "{got:?}");
    assert!(got[0].1.contains("task_timeout"), "{got:?}");
    for huge in [json!(1e300), json!("99999999999999999999h")] {
        let got = errors(task(
            json!({"targets": url, "duration": huge, "base_rps": 1}),
        ));
        assert_eq!(got[0].0, "tasks[0].parameters.duration", "{got:?}");
    }
    let got = errors(task(
        json!({"targets": url, "duration": "1h", "base_rps": 1,
        "peak_rps": 2, "pattern": "wave", "wave_period": "1ms"}),
    ));
    assert_eq!(got[0].0, "tasks[0].parameters.wave_period", "{got:?}");
}

#[test]
fn the_spec_example_is_accepted() {
    let t = load(task(json!({
        "targets": [{"url": "http://127.0.0.1:9/api", "method": "GET"}],
        "duration": 300, "base_rps": 100, "peak_rps": 500, "pattern": "ramp_up",
        "concurrent_users": 50
    })));
    assert_eq!(t.profile.duration, Duration::from_secs(300));
    assert_eq!(
        t.profile.pattern,
        Pattern::RampUp {
            ramp_duration: Duration::from_secs(300)
        }
    );
    assert_eq!(t.concurrent_users, 50);
    assert_eq!(t.targets[0].timeout, Duration::from_secs(300));
    assert_eq!(t.model, Model::Open);
}

#[test]
fn every_mistake_is_named() {
    let got = errors(task(json!({
        "targets": [{"url": "http://127.0.0.1:9/", "methd": "GET"}, {"url": "not a url"}, {"url": "http://10.1.2.3/"}],
        "duration": 0, "base_rps": -5, "pattern": "zigzag"
    })));
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    for want in [
        "tasks[0].parameters.targets[0].methd",
        "tasks[0].parameters.targets[1].url",
        "tasks[0].parameters.targets[2].url",
        "tasks[0].parameters.duration",
        "tasks[0].parameters.base_rps",
        "tasks[0].parameters.pattern",
    ] {
        assert!(fields.contains(&want), "missing {want} in {got:?}");
    }
    let allow = got
        .iter()
        .find(|(f, _)| f.ends_with("targets[2].url"))
        .unwrap();
    assert!(allow.1.contains("allowed_targets"), "{allow:?}");
}

#[test]
fn empty_targets_and_missing_fields() {
    let got = errors(task(json!({"targets": [], "base_rps": 10})));
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert!(fields.contains(&"tasks[0].parameters.targets"), "{got:?}");
    assert!(fields.contains(&"tasks[0].parameters.duration"), "{got:?}");
    let got = errors(json!({"tasks": []}));
    assert_eq!(got[0].0, "tasks");
    let got = errors(json!({"name": "x", "tasks": [{"type": "fuzz", "parameters": {}}]}));
    assert_eq!(got[0].0, "tasks[0].type");
}

#[test]
fn pattern_options_must_match_the_pattern() {
    let got = errors(task(json!({
        "targets": ["http://127.0.0.1:9/"], "duration": "10s", "base_rps": 10, "spike_at": 3
    })));
    assert_eq!(got[0].0, "tasks[0].parameters.spike_at", "{got:?}");
    let got = errors(task(json!({
        "targets": ["http://127.0.0.1:9/"], "duration": "10s", "base_rps": 10, "pattern": "wave"
    })));
    assert_eq!(got[0].0, "tasks[0].parameters.peak_rps", "{got:?}");
}

#[test]
fn stages_set_the_duration() {
    let t = load(task(json!({
        "targets": ["http://127.0.0.1:9/"],
        "stages": [{"duration": "2s", "target_rps": 100}, {"duration": 3, "target_rps": 50}]
    })));
    assert_eq!(t.profile.duration, Duration::from_secs(5));
    let got = errors(task(json!({
        "targets": ["http://127.0.0.1:9/"], "duration": 9,
        "stages": [{"duration": "2s", "target_rps": 100}]
    })));
    assert_eq!(got[0].0, "tasks[0].parameters.duration", "{got:?}");
}

#[test]
fn closed_model_takes_users_not_rates() {
    let t = load(task(json!({
        "targets": ["http://127.0.0.1:9/"], "duration": 5, "model": "closed",
        "concurrent_users": 8, "think_time": "100ms"
    })));
    assert_eq!((t.model, t.concurrent_users), (Model::Closed, 8));
    assert_eq!(t.think_time, Duration::from_millis(100));
    let got = errors(task(json!({
        "targets": ["http://127.0.0.1:9/"], "duration": 5, "model": "closed", "base_rps": 5
    })));
    assert_eq!(got[0].0, "tasks[0].parameters.base_rps");
}

#[test]
fn users_above_the_configured_maximum_are_refused() {
    let got = errors(task(json!({
        "targets": ["http://127.0.0.1:9/"], "duration": 5, "base_rps": 5, "concurrent_users": 5000
    })));
    assert_eq!(got[0].0, "tasks[0].parameters.concurrent_users");
    assert!(got[0].1.contains("max_concurrent_requests"));
}

#[test]
fn every_example_plan_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // Plans are YAML or JSON; the folder also holds their data files (users.csv).
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "json")
        ) {
            continue;
        }
        load_file(&path, &settings()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 6, "{seen} plans");
}

#[test]
fn yaml_and_json_read_the_same() {
    let yaml = "name: y\ntasks:\n  - type: load_test\n    parameters:\n      targets: [{url: 'http://127.0.0.1:9/', expected_status: [200, 204], body: {a: 1}}]\n      duration: 2s\n      base_rps: 1.5\n";
    let doc = parse_document(yaml).unwrap();
    let json_doc = parse_document(&doc.to_string()).unwrap();
    assert_eq!(doc, json_doc);
    let t = load(doc);
    assert_eq!(
        t.targets[0].expected_status,
        ExpectedStatus::Codes(vec![200, 204])
    );
    assert_eq!(t.targets[0].body.as_deref(), Some(r#"{"a":1}"#));
    assert!(
        t.targets[0]
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json")
    );
    assert!(matches!(
        parse_document("a: [1,"),
        Err(PlanError::Syntax { .. })
    ));
}

#[test]
fn options_of_another_pattern_or_model_are_errors() {
    let base = |extra: Value| {
        let mut p = json!({"targets": ["http://127.0.0.1:9/"], "duration": 2, "base_rps": 5});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        task(p)
    };
    let field =
        |extra: Value| -> Vec<String> { errors(base(extra)).into_iter().map(|(f, _)| f).collect() };
    let peak = "tasks[0].parameters.peak_rps";
    let no_pattern = errors(base(json!({"peak_rps": 500})));
    assert_eq!(no_pattern.len(), 1, "{no_pattern:?}");
    assert_eq!(no_pattern[0].0, peak);
    assert!(
        no_pattern[0].1.contains("no pattern is given"),
        "{no_pattern:?}"
    );
    assert_eq!(
        field(json!({"peak_rps": 500, "pattern": "constant"})),
        [peak]
    );
    assert_eq!(
        field(json!({"peak_rps": 500, "base_rps": null,
            "stages": [{"duration": 2, "target_rps": 5}], "duration": null})),
        [peak]
    );
    assert_eq!(
        field(json!({"model": "closed", "base_rps": null, "arrivals": "poisson"})),
        ["tasks[0].parameters.arrivals"]
    );
    // Each pattern's own options are accepted with it.
    for (pattern, option) in [
        ("ramp_up", "ramp_duration"),
        ("ramp_down", "ramp_duration"),
        ("spike", "spike_at"),
        ("spike", "spike_duration"),
        ("wave", "wave_period"),
        ("random", "random_step"),
        ("burst", "burst_interval"),
        ("burst", "burst_duration"),
    ] {
        let ok = base(json!({"pattern": pattern, "peak_rps": 9, option: 1}));
        validate(&ok, &settings()).unwrap_or_else(|e| panic!("{pattern} {option}: {e}"));
        for other in Pattern::NAMES.iter().filter(|p| {
            !Pattern::OPTIONS
                .iter()
                .any(|(k, owners)| *k == option && owners.contains(p))
        }) {
            let mut extra = json!({"pattern": other, option: 1});
            if !matches!(*other, "constant" | "stages") {
                extra["peak_rps"] = json!(9);
            }
            if *other == "stages" {
                extra["stages"] = json!([{"duration": 2, "target_rps": 5}]);
                extra["duration"] = Value::Null;
            }
            let f = field(extra);
            assert!(
                f.contains(&format!("tasks[0].parameters.{option}")),
                "{option} with {other}: {f:?}"
            );
        }
    }
}

#[test]
fn enum_names_are_read_in_any_case() {
    let doc = json!({"name": "t", "tasks": [{"type": "LOAD_TEST", "parameters": {
        "targets": ["http://127.0.0.1:9/"], "duration": 2, "base_rps": 5, "peak_rps": 9,
        "pattern": "Ramp_Up", "arrivals": "POISSON", "model": "OPEN",
        "on_node_failure": "FAIL"}}],
        "placement": {"strategy": "ROUND_ROBIN",
            "resource_requirements": {"memory": "2GB", "cpu": "2 cores"}}});
    let plan = validate(&doc, &settings()).unwrap_or_else(|e| panic!("{e}"));
    let TaskKind::LoadTest(t) = &plan.tasks[0].kind else {
        panic!("a load test")
    };
    assert!(matches!(t.profile.pattern, Pattern::RampUp { .. }));
    assert_eq!(t.arrivals, Arrivals::Poisson);
    assert_eq!(t.on_node_failure, OnNodeFailure::Fail);
    assert_eq!(
        plan.placement.strategy,
        Some(crate::placement::Strategy::RoundRobin)
    );
    assert_eq!(plan.placement.resource_requirements["memory"], 2e9);
    assert_eq!(plan.placement.resource_requirements["cpu"], 2.0);
}

#[test]
fn numbers_beyond_their_bounds_name_their_key() {
    let mut s = settings();
    s.max_rps = 1000.0;
    let over = |params: Value| -> Vec<String> {
        match validate(&task(params), &s) {
            Ok(_) => panic!("accepted"),
            Err(PlanError::Invalid(e)) => e.0.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("{other}"),
        }
    };
    let t = "http://127.0.0.1:9/";
    assert_eq!(
        over(json!({"targets": [t], "duration": 2, "base_rps": 1e308})),
        ["tasks[0].parameters.base_rps"]
    );
    assert_eq!(
        over(
            json!({"targets": [t], "duration": 2, "base_rps": 1, "peak_rps": 1001,
            "pattern": "spike"})
        ),
        ["tasks[0].parameters.peak_rps"]
    );
    assert_eq!(
        over(
            json!({"targets": [{"url": t, "expected_response_time": 1e7}],
            "duration": 2, "base_rps": 1})
        ),
        ["tasks[0].parameters.targets[0].expected_response_time"]
    );
    assert_eq!(
        over(
            json!({"targets": [t], "duration": 2, "base_rps": 1, "pattern": "wave",
            "peak_rps": 2, "wave_period": 1e9})
        ),
        ["tasks[0].parameters.wave_period"]
    );
    let many: Vec<&str> = vec![t; MAX_TARGETS + 1];
    assert_eq!(
        over(json!({"targets": many, "duration": 2, "base_rps": 1})),
        ["tasks[0].parameters.targets"]
    );
    // At the bound is fine.
    let at = task(json!({"targets": [t], "duration": 2, "base_rps": 1000}));
    validate(&at, &s).unwrap_or_else(|e| panic!("{e}"));
    let mut doc = task(json!({"targets": [t], "duration": 2, "base_rps": 1}));
    doc["placement"] = json!({"node_count": 1_000_000});
    assert!(matches!(validate(&doc, &s), Err(PlanError::Invalid(e))
        if e.0[0].field == "placement.node_count"));
}
