use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fields(err: SettingsError) -> Vec<String> {
    match err {
        SettingsError::Invalid(errors) => errors.0.into_iter().map(|e| e.field).collect(),
        other => panic!("expected field errors, got {other}"),
    }
}

#[test]
fn defaults_match_the_spec() {
    let s = Settings::defaults();
    assert_eq!(s.orchestrator.host, "localhost");
    assert_eq!(s.orchestrator.port, 8080);
    assert_eq!(s.orchestrator.max_concurrent_executions, 10);
    assert_eq!(s.orchestrator.task_timeout, Duration::from_secs(3600));
    assert_eq!(s.load_generation.default_timeout, Duration::from_secs(300));
    assert_eq!(s.load_generation.max_concurrent_requests, 1000);
    assert_eq!(s.load_generation.connection_pool_size, 100);
    assert_eq!(s.load_generation.allowed_targets, Allowlist::default());
    assert_eq!(
        s.service_discovery.multicast_group,
        Ipv4Addr::new(239, 255, 255, 250)
    );
    assert_eq!(s.service_discovery.multicast_port, 1900);
    assert_eq!(s.service_discovery.service_timeout, Duration::from_secs(90));
    assert!(s.service_discovery.health_check_enabled);
    assert_eq!(
        s.resource_management.allocation_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(
        s.resource_management.cleanup_interval,
        Duration::from_secs(300)
    );
    assert_eq!(
        s.resource_management.monitoring_interval,
        Duration::from_secs(30)
    );
    assert_eq!(s.health_monitoring.check_interval, Duration::from_secs(30));
    assert_eq!(s.health_monitoring.alert_thresholds.cpu_warning, 80.0);
    assert_eq!(s.health_monitoring.alert_thresholds.memory_warning, 85.0);
    assert_eq!(s.health_monitoring.alert_thresholds.disk_critical, 95.0);
}

/// The fields a settings document with the one custom check `check` is refused for.
fn check_errors(check: serde_json::Value) -> Vec<String> {
    let doc = serde_json::json!({"health_monitoring": {"checks": [check]}});
    Settings::from_value(&doc)
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| e.field)
        .collect()
}

/// The path of key `k` of the first custom check.
fn check_key(k: &str) -> String {
    format!("health_monitoring.checks[0].{k}")
}

#[test]
fn environment_overrides_file_and_set_overrides_environment() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "orchestrator:\n  port: 9000\n  host: 0.0.0.0\nload_generation:\n  workers: 3"
    )
    .unwrap();
    let vars = env(&[
        ("MCP_ORCHESTRATOR_PORT", "9100"),
        ("MCP_DISCOVERY_MULTICAST_PORT", "1901"),
        ("MCP_RESOURCE_MONITOR_INTERVAL", "5"),
        ("MCP_HEALTH_ALERT_THRESHOLD", "4"),
        ("MCP_COMM_HEARTBEAT_INTERVAL", "2s"),
        ("MCP_COMM_DEATH_TIMEOUT", "7s"),
        (
            "MCP_LOAD_GENERATION_ALLOWED_TARGETS",
            "10.0.0.0/8, localhost",
        ),
        ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_CPU_WARNING", "70"),
        ("MCP_SERVER_TOKEN", "belongs to another tool"),
        ("PATH", "/bin"),
    ]);
    let set = ["orchestrator.port=9200".to_string()];
    let s = Settings::load(Some(f.path()), &vars, &set).unwrap();
    assert_eq!(s.orchestrator.port, 9200);
    assert_eq!(s.orchestrator.host, "0.0.0.0");
    assert_eq!(s.load_generation.workers, Some(3));
    assert_eq!(s.service_discovery.multicast_port, 1901);
    assert_eq!(
        s.resource_management.monitoring_interval,
        Duration::from_secs(5)
    );
    assert_eq!(s.health_monitoring.alert_threshold, 4);
    assert_eq!(s.communication.heartbeat_interval, Duration::from_secs(2));
    assert_eq!(s.health_monitoring.alert_thresholds.cpu_warning, 70.0);
    assert_eq!(s.load_generation.allowed_targets.patterns().len(), 2);
    let without_set = Settings::load(Some(f.path()), &vars, &[]).unwrap();
    assert_eq!(without_set.orchestrator.port, 9100);
}

#[test]
fn every_bad_key_is_reported_at_once() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "orchestrator:\n  port: 70000\n  colour: blue\nload_generation:\n  max_concurrent_requests: 0\n  allowed_targets: ['not a host']\nservice_discovery:\n  multicast_group: 10.0.0.1\nhealth_monitoring:\n  alert_thresholds:\n    cpu_warning: 99\nextra: 1"
    )
    .unwrap();
    let vars = env(&[("MCP_ORCHESTRATOR_TASK_TIMEOUT", "soon")]);
    let err = Settings::load(Some(f.path()), &vars, &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("MCP_ORCHESTRATOR_TASK_TIMEOUT"), "{text}");
    let mut got = fields(err);
    got.sort();
    assert_eq!(
        got,
        [
            "extra",
            "health_monitoring.alert_thresholds.cpu_warning",
            "load_generation.allowed_targets[0]",
            "load_generation.max_concurrent_requests",
            "orchestrator.colour",
            "orchestrator.port",
            "orchestrator.task_timeout",
            "service_discovery.multicast_group",
        ]
    );
}

#[test]
fn mcp_guardrails_default_load_and_validate() {
    let s = Settings::defaults();
    assert_eq!(s.mcp.max_rps, 1000.0);
    assert_eq!(s.mcp.max_duration, Duration::from_secs(300));
    assert_eq!(s.mcp.max_concurrent_executions, 2);
    let vars = env(&[("MCP_MCP_MAX_RPS", "250.5"), ("MCP_MCP_MAX_DURATION", "2m")]);
    let set = ["mcp.max_concurrent_executions=5".to_string()];
    let s = Settings::load(None, &vars, &set).unwrap();
    assert_eq!(s.mcp.max_rps, 250.5);
    assert_eq!(s.mcp.max_duration, Duration::from_secs(120));
    assert_eq!(s.mcp.max_concurrent_executions, 5);
    let bad = env(&[
        ("MCP_MCP_MAX_RPS", "0"),
        ("MCP_MCP_MAX_DURATION", "0"),
        ("MCP_MCP_MAX_CONCURRENT_EXECUTIONS", "0"),
        ("MCP_MCP_MAX_SPEED", "1"),
    ]);
    let err = Settings::load(None, &bad, &[]).unwrap_err();
    assert!(err.to_string().contains("MCP_MCP_MAX_RPS"), "{err}");
    let mut got = fields(err);
    got.sort();
    assert_eq!(
        got,
        [
            "mcp.max_concurrent_executions",
            "mcp.max_duration",
            "mcp.max_rps",
            "mcp.max_speed",
        ]
    );
}

#[test]
fn unknown_variable_in_a_known_section_is_an_error() {
    let err = Settings::load(None, &env(&[("MCP_LOAD_GENERATION_WORKRES", "2")]), &[]).unwrap_err();
    assert!(err.to_string().contains("load_generation.workres"), "{err}");
    assert!(
        err.to_string().contains("MCP_LOAD_GENERATION_WORKRES"),
        "{err}"
    );
}

#[test]
fn the_broken_example_lists_every_mistake() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/broken.example.yaml");
    let mut got = fields(Settings::load(Some(&path), &HashMap::new(), &[]).unwrap_err());
    got.sort();
    assert_eq!(
        got,
        [
            "health_monitoring.alert_thresholds.cpu_warning",
            "load_generation.allowed_targets[0]",
            "load_generation.max_concurrent_requests",
            "orchestrator.colour",
            "orchestrator.port",
        ]
    );
}

#[test]
fn env_key_mapping() {
    assert_eq!(
        env_key("MCP_ORCHESTRATOR_HOST").as_deref(),
        Some("orchestrator.host")
    );
    assert_eq!(
        env_key("MCP_DISCOVERY_MULTICAST_GROUP").as_deref(),
        Some("service_discovery.multicast_group")
    );
    assert_eq!(
        env_key("MCP_HEALTH_CHECK_INTERVAL").as_deref(),
        Some("health_monitoring.check_interval")
    );
    assert_eq!(
        env_key("MCP_COMM_MESSAGE_TIMEOUT").as_deref(),
        Some("communication.message_timeout")
    );
    assert_eq!(
        env_key("MCP_RESOURCE_CLEANUP_INTERVAL").as_deref(),
        Some("resource_management.cleanup_interval")
    );
    assert_eq!(env_key("MCP_MCP_MAX_RPS").as_deref(), Some("mcp.max_rps"));
    assert_eq!(env_key("MCP_SOMETHING_ELSE"), None);
    assert_eq!(env_key("HOME"), None);
}

#[test]
fn a_heartbeat_alone_sets_the_lease_and_death_timeouts() {
    let secs = Duration::from_secs;
    let from_env =
        Settings::load(None, &env(&[("MCP_COMM_HEARTBEAT_INTERVAL", "30")]), &[]).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "communication:\n  heartbeat_interval: 30s").unwrap();
    let from_file = Settings::load(Some(f.path()), &HashMap::new(), &[]).unwrap();
    let from_flag = Settings::load(
        None,
        &HashMap::new(),
        &["communication.heartbeat_interval=30".to_string()],
    )
    .unwrap();
    for s in [from_env, from_file, from_flag] {
        let c = s.communication;
        assert_eq!(
            (c.heartbeat_interval, c.lease_timeout, c.death_timeout),
            (secs(30), secs(90), secs(150))
        );
    }
    // Given with the heartbeat, a timeout is taken as given.
    let both = Settings::load(
        None,
        &env(&[
            ("MCP_COMM_HEARTBEAT_INTERVAL", "2"),
            ("MCP_COMM_LEASE_TIMEOUT", "4"),
            ("MCP_COMM_DEATH_TIMEOUT", "9"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(both.communication.lease_timeout, secs(4));
    assert_eq!(both.communication.death_timeout, secs(9));
}

#[test]
fn an_invalid_timeout_combination_names_every_source() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "communication:\n  lease_timeout: 40").unwrap();
    let err = Settings::load(
        Some(f.path()),
        &env(&[("MCP_COMM_HEARTBEAT_INTERVAL", "30")]),
        &[],
    )
    .unwrap_err();
    let SettingsError::Invalid(errors) = err else {
        panic!("{err}")
    };
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert_eq!(e.field, "communication.death_timeout");
    let file = f.path().display().to_string();
    for part in [
        "heartbeat_interval 30s: from environment variable MCP_COMM_HEARTBEAT_INTERVAL",
        &format!("lease_timeout 40s: from {file}"),
        "death_timeout 5s: the default",
    ] {
        assert!(
            e.message.contains(part),
            "{part:?} missing from {}",
            e.message
        );
    }
    // A flag is named as a flag.
    let err = Settings::load(
        None,
        &HashMap::new(),
        &[
            "communication.heartbeat_interval=30".to_string(),
            "communication.death_timeout=60".to_string(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("from --set communication.heartbeat_interval=30")
            && err.contains("from --set communication.death_timeout=60"),
        "{err}"
    );
}

#[test]
fn enum_settings_are_read_in_any_case() {
    let s = Settings::load(
        None,
        &env(&[("MCP_DISTRIBUTION_DEFAULT_STRATEGY", "ROUND_ROBIN")]),
        &[],
    )
    .unwrap();
    assert_eq!(
        s.distribution.default_strategy,
        crate::placement::Strategy::RoundRobin
    );
    assert_eq!(Settings::defaults().load_generation.max_rps, 1_000_000.0);
    let bad = Settings::load(None, &env(&[("MCP_LOAD_GENERATION_MAX_RPS", "0")]), &[]);
    assert_eq!(fields(bad.unwrap_err()), ["load_generation.max_rps"]);
}

#[test]
fn a_level_above_100_switches_a_metric_off_and_a_negative_one_is_refused() {
    let s = Settings::load(
        None,
        &env(&[
            ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_CPU_WARNING", "101"),
            ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_CPU_CRITICAL", "101"),
        ]),
        &[],
    )
    .unwrap();
    let t = &s.health_monitoring.alert_thresholds;
    assert_eq!(
        crate::health::level(100.0, t.cpu_warning, t.cpu_critical),
        crate::health::Status::Healthy
    );
    let bad = Settings::load(
        None,
        &env(&[("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_WARNING", "-1")]),
        &[],
    );
    assert_eq!(
        fields(bad.unwrap_err()),
        ["health_monitoring.alert_thresholds.disk_warning"]
    );
}

#[test]
fn command_checks_and_per_check_intervals() {
    let doc = serde_json::json!({"health_monitoring": {"checks": [
        {"name": "marker", "type": "command", "run": "test -e '/tmp/a b'", "timeout": "2s",
         "interval": "10s"},
        {"name": "db", "type": "tcp", "address": "127.0.0.1:5432"},
    ]}});
    let s = Settings::from_value(&doc).unwrap();
    let checks = &s.health_monitoring.checks;
    assert_eq!(
        checks[0].target,
        CheckTarget::Command {
            program: "test".into(),
            args: vec!["-e".into(), "/tmp/a b".into()],
        }
    );
    assert_eq!(checks[0].timeout, Duration::from_secs(2));
    assert_eq!(checks[0].interval, Some(Duration::from_secs(10)));
    assert_eq!(checks[1].interval, None, "default: every check_interval");

    let (bad, at) = (check_errors, check_key);
    assert_eq!(
        bad(serde_json::json!({"name": "c", "type": "command"})),
        [at("run")]
    );
    for run in ["", "   ", "echo 'unclosed"] {
        assert_eq!(
            bad(serde_json::json!({"name": "c", "type": "command", "run": run})),
            [at("run")],
            "{run:?}"
        );
    }
    assert_eq!(
        bad(serde_json::json!({"name": "c", "type": "command", "run": "true", "interval": 0})),
        [at("interval")]
    );
    assert_eq!(
        bad(serde_json::json!({"name": "c", "type": "command", "run": "true", "interval": "x"})),
        [at("interval")]
    );
    assert_eq!(
        bad(serde_json::json!({"name": "c", "type": "shell"})),
        [at("type")]
    );
}

#[test]
fn prometheus_checks_read_a_series_with_levels() {
    let doc = serde_json::json!({"health_monitoring": {"checks": [
        {"name": "queue", "type": "prometheus", "url": "http://127.0.0.1:9000/metrics",
         "series": "app_queue_depth{queue=\"orders\"}", "warning": 100, "critical": "500",
         "unit": "jobs", "timeout": "2s", "interval": 10},
        {"name": "free", "type": "prometheus", "url": "https://app/metrics", "series": "free_bytes",
         "warning": 10, "critical": 5, "higher_is_worse": false},
    ]}});
    let s = Settings::from_value(&doc).unwrap();
    let checks = &s.health_monitoring.checks;
    let CheckTarget::Prometheus {
        url,
        series,
        levels,
    } = &checks[0].target
    else {
        panic!("{:?}", checks[0].target);
    };
    assert_eq!(url.as_str(), "http://127.0.0.1:9000/metrics");
    assert_eq!(series.to_string(), "app_queue_depth{queue=\"orders\"}");
    assert_eq!(
        *levels,
        MetricLevels {
            unit: Some("jobs".into()),
            warning: Some(100.0),
            critical: Some(500.0),
            higher_is_worse: true,
        }
    );
    assert_eq!(checks[0].timeout, Duration::from_secs(2));
    let CheckTarget::Prometheus { levels, .. } = &checks[1].target else {
        panic!()
    };
    assert!(!levels.higher_is_worse && levels.unit.is_none());

    let (bad, at) = (check_errors, check_key);
    let ok = serde_json::json!({"name": "q", "type": "prometheus",
        "url": "http://127.0.0.1:1/metrics", "series": "q"});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = ok.clone();
        c[k] = v;
        c
    };
    assert!(bad(with("extra", 1.into())) == [at("extra")]);
    for (key, value) in [
        ("series", serde_json::json!("q{a=b}")),
        ("series", serde_json::json!("")),
        ("series", serde_json::json!("q{a=~\"(\"}")),
        ("url", serde_json::json!("ftp://x/metrics")),
        ("name", serde_json::json!("Queue-Depth")),
        ("warning", serde_json::json!("high")),
        ("unit", serde_json::json!("x".repeat(33))),
        ("timeout", serde_json::json!(0)),
        ("higher_is_worse", serde_json::json!("maybe")),
    ] {
        assert_eq!(bad(with(key, value.clone())), [at(key)], "{key}: {value}");
    }
    let mut no_series = ok.clone();
    no_series.as_object_mut().unwrap().remove("series");
    assert_eq!(bad(no_series), [at("series")]);
    let mut crossed = with("warning", 9.into());
    crossed["critical"] = 3.into();
    assert_eq!(bad(crossed), [at("critical")]);
}

/// A warning level past its critical level names both keys, so the one the user set is named
/// with its source (an outside tester set only the critical level and was told of the warning).
#[test]
fn a_threshold_conflict_names_the_key_that_was_set() {
    let var = "MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_CRITICAL";
    let err = Settings::load(None, &env(&[(var, "0")]), &[]).unwrap_err();
    let SettingsError::Invalid(errors) = err else {
        panic!("{err}")
    };
    let critical = errors
        .0
        .iter()
        .find(|e| e.field == "health_monitoring.alert_thresholds.disk_critical")
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(
        critical
            .message
            .contains("must not be below disk_warning (0 < 80)"),
        "{errors}"
    );
    assert!(critical.message.contains(var), "{errors}");
}

/// An empty data directory is refused naming its source: it would put the database in
/// whatever folder the process starts in.
#[test]
fn an_empty_data_dir_is_refused() {
    let var = "MCP_ORCHESTRATOR_DATA_DIR";
    let err = Settings::load(None, &env(&[(var, "")]), &[]).unwrap_err();
    let SettingsError::Invalid(errors) = err else {
        panic!("{err}")
    };
    assert_eq!(errors.0[0].field, "orchestrator.data_dir", "{errors}");
    assert!(errors.0[0].message.contains(var), "{errors}");
    let err = Settings::load(None, &env(&[]), &["orchestrator.data_dir=".into()]).unwrap_err();
    assert!(err.to_string().contains("orchestrator.data_dir"), "{err}");
}

/// Two prometheus checks of one name would be one gauge for two values: the second is refused
/// naming both (checks of other kinds may share a name: `http:api`, `http:api#2`).
#[test]
fn prometheus_check_names_are_distinct() {
    let check = |name: &str, kind: &str| match kind {
        "prometheus" => serde_json::json!({"name": name, "type": "prometheus",
            "url": "http://127.0.0.1:9000/metrics", "series": "q"}),
        _ => serde_json::json!({"name": name, "type": "tcp", "address": "127.0.0.1:9"}),
    };
    let doc = serde_json::json!({"health_monitoring": {"checks": [
        check("orders", "prometheus"), check("orders", "tcp"), check("orders", "prometheus"),
    ]}});
    let errors = Settings::from_value(&doc).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].field, "health_monitoring.checks[2].name");
    assert!(errors.0[0].message.contains("checks[0]"), "{errors}");
    let doc = serde_json::json!({"health_monitoring": {"checks": [
        check("orders", "prometheus"), check("orders", "tcp"), check("queue", "prometheus"),
    ]}});
    Settings::from_value(&doc).expect("distinct prometheus names");
}
