//! Each strategy's preference on small hand-made clusters, the reasons of unplaced scenarios,
//! and the request forms.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::validate::{FieldErrors, FromValue};

fn node(id: &str, caps: &[&str], location: &str) -> NodeState {
    NodeState {
        node_id: id.to_string(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        location: location.to_string(),
        capacity: BTreeMap::from([("cpu".to_string(), 16.0), ("memory".to_string(), 64.0)]),
        allocated: BTreeMap::new(),
        health_score: 100.0,
        healthy: true,
        unhealthy: None,
        active_tasks: 0,
        record: NodeRecord::default(),
    }
}

fn scenario(id: &str, caps: &[&str], cpu: f64) -> Scenario {
    Scenario {
        scenario_id: id.to_string(),
        name: String::new(),
        description: String::new(),
        test_type: "load_test".to_string(),
        parameters: json!({}),
        required_capabilities: caps.iter().map(|c| c.to_string()).collect(),
        estimated_duration: Duration::from_secs(60),
        resource_requirements: BTreeMap::from([("cpu".to_string(), cpu)]),
        preferred_location: None,
    }
}

fn run(scenarios: &[Scenario], nodes: &[NodeState], strategy: Strategy) -> Placement {
    run_with(scenarios, nodes, strategy, &Weights::default(), None)
}

fn run_with(
    scenarios: &[Scenario],
    nodes: &[NodeState],
    strategy: Strategy,
    weights: &Weights,
    preferred_location: Option<&str>,
) -> Placement {
    place(&PlacementInput {
        scenarios,
        nodes,
        strategy,
        weights,
        seed: 7,
        preferred_location,
    })
}

fn chosen(plan: &Placement) -> Vec<&str> {
    plan.assignments
        .iter()
        .map(|a| a.node_id.as_str())
        .collect()
}

fn busy(mut n: NodeState, cpu: f64) -> NodeState {
    n.allocated.insert("cpu".to_string(), cpu);
    n
}

#[test]
fn round_robin_cycles_in_id_order_and_skips_nodes_that_do_not_fit() {
    let nodes = [
        node("c", &[], ""),
        node("a", &[], ""),
        node("b", &["x"], ""),
    ];
    let plan = run(
        &(0..6)
            .map(|i| scenario(&i.to_string(), &[], 1.0))
            .collect::<Vec<_>>(),
        &nodes,
        Strategy::RoundRobin,
    );
    let got = chosen(&plan);
    // Some rotation of a, b, c repeated.
    let start = ["a", "b", "c"].iter().position(|n| *n == got[0]).unwrap();
    let expected: Vec<&str> = (0..6).map(|i| ["a", "b", "c"][(start + i) % 3]).collect();
    assert_eq!(got, expected);

    let only_b: Vec<Scenario> = (0..3)
        .map(|i| scenario(&i.to_string(), &["x"], 1.0))
        .collect();
    assert_eq!(
        chosen(&run(&only_b, &nodes, Strategy::RoundRobin)),
        ["b", "b", "b"]
    );
}

#[test]
fn least_loaded_takes_utilization_first_then_tasks() {
    let mut idle_but_busy_tasks = node("a", &[], "");
    idle_but_busy_tasks.active_tasks = 9;
    let nodes = [busy(node("b", &[], ""), 8.0), idle_but_busy_tasks.clone()];
    assert_eq!(
        chosen(&run(
            &[scenario("s", &[], 1.0)],
            &nodes,
            Strategy::LeastLoaded
        )),
        ["a"]
    );
    let same_util = [node("b", &[], ""), idle_but_busy_tasks];
    assert_eq!(
        chosen(&run(
            &[scenario("s", &[], 0.0)],
            &same_util,
            Strategy::LeastLoaded
        )),
        ["b"]
    );
    // Counting what the plan placed: two 8-cpu scenarios on two empty nodes go one each.
    let two = [node("a", &[], ""), node("b", &[], "")];
    let plan = run(
        &[scenario("1", &[], 8.0), scenario("2", &[], 8.0)],
        &two,
        Strategy::LeastLoaded,
    );
    let mut got = chosen(&plan);
    got.sort();
    assert_eq!(got, ["a", "b"]);
}

#[test]
fn capability_based_gives_specialised_work_to_the_specialised_node() {
    // The general node is idle, the specialist is busier: a least-loaded choice would differ.
    let nodes = [
        node("general", &["http_load", "security_testing", "dns"], ""),
        busy(node("specialist", &["security_testing"], ""), 4.0),
    ];
    let plan = run(
        &[
            scenario("scan", &["security_testing"], 1.0),
            scenario("load", &["http_load"], 1.0),
        ],
        &nodes,
        Strategy::CapabilityBased,
    );
    assert_eq!(chosen(&plan), ["specialist", "general"]);
    let ll = run(
        &[scenario("scan", &["security_testing"], 1.0)],
        &nodes,
        Strategy::LeastLoaded,
    );
    assert_eq!(chosen(&ll), ["general"]);
}

#[test]
fn locality_aware_prefers_the_location_then_the_region_then_the_least_loaded() {
    let nodes = [
        node("east", &[], "us-east-1"),
        busy(node("west2", &[], "us-west-2"), 2.0),
        busy(node("west1", &[], "us-west-1"), 4.0),
    ];
    let mut s = scenario("s", &[], 1.0);
    s.preferred_location = Some("us-west-1".to_string());
    assert_eq!(
        chosen(&run(&[s.clone()], &nodes, Strategy::LocalityAware)),
        ["west1"]
    );

    s.preferred_location = Some("us-west-3".to_string());
    assert_eq!(
        chosen(&run(&[s.clone()], &nodes, Strategy::LocalityAware)),
        ["west2"]
    );

    // The request's location applies to a scenario without one; the scenario's wins over it.
    let plain = scenario("p", &[], 1.0);
    let w = Weights::default();
    let by_request = run_with(
        std::slice::from_ref(&plain),
        &nodes,
        Strategy::LocalityAware,
        &w,
        Some("us-west-1"),
    );
    assert_eq!(chosen(&by_request), ["west1"]);
    s.preferred_location = Some("us-east-1".to_string());
    let own = run_with(&[s], &nodes, Strategy::LocalityAware, &w, Some("us-west-1"));
    assert_eq!(chosen(&own), ["east"]);

    // No preference at all: the least loaded.
    assert_eq!(
        chosen(&run(&[plain], &nodes, Strategy::LocalityAware)),
        ["east"]
    );
}

#[test]
fn weighted_scoring_follows_whichever_weight_is_set() {
    let zero = Weights {
        capacity: 0.0,
        load: 0.0,
        health: 0.0,
        locality: 0.0,
        performance: 0.0,
    };
    let mut roomy = node("roomy", &[], "eu-west-1");
    roomy.capacity.insert("cpu".to_string(), 64.0);
    roomy.allocated.insert("cpu".to_string(), 16.0); // more free, but higher utilization
    roomy.health_score = 50.0;
    let mut healthy = busy(node("healthy", &[], "us-east-1"), 12.0);
    healthy.health_score = 100.0;
    let mut proven = busy(node("proven", &[], "ap-south-1"), 12.0);
    proven.health_score = 60.0;
    proven.record = NodeRecord {
        windows: 10,
        achieved_ratio: 1.0,
        error_rate: 0.0,
        p99_ms: 20.0,
    };
    let mut small = node("small", &[], "sa-east-1");
    small.capacity.insert("cpu".to_string(), 4.0);
    small.capacity.insert("memory".to_string(), 1.0);
    small.allocated.insert("memory".to_string(), 0.9);
    small.health_score = 10.0;
    let nodes = [roomy, healthy, proven, small];
    let s = [scenario("s", &[], 1.0)];
    let with = |f: fn(&mut Weights)| {
        let mut w = zero;
        f(&mut w);
        chosen(&run_with(
            &s,
            &nodes,
            Strategy::WeightedScoring,
            &w,
            Some("us-east-1"),
        ))[0]
            .to_string()
    };
    // Free fractions: roomy (0.75 + 1) / 2, healthy (0.25 + 1) / 2, proven the same,
    // small (1 + 0.1) / 2.
    assert_eq!(with(|w| w.capacity = 1.0), "roomy");
    assert_eq!(with(|w| w.health = 1.0), "healthy");
    assert_eq!(with(|w| w.locality = 1.0), "healthy");
    assert_eq!(with(|w| w.performance = 1.0), "proven");
    // Utilizations: roomy 0.25, healthy 0.75, proven 0.75, small 0.9.
    assert_eq!(with(|w| w.load = 1.0), "roomy");
    // All zero: every score ties, the least loaded wins.
    assert_eq!(with(|_| {}), "roomy");
}

#[test]
fn adaptive_moves_work_to_the_better_record_and_spreads_equal_records() {
    let mut good = node("good", &[], "");
    good.record = NodeRecord {
        windows: 30,
        achieved_ratio: 1.0,
        error_rate: 0.0,
        p99_ms: 20.0,
    };
    let mut bad = node("bad", &[], "");
    bad.record = NodeRecord {
        windows: 30,
        achieved_ratio: 0.5,
        error_rate: 0.0,
        p99_ms: 2000.0,
    };
    let scenarios: Vec<Scenario> = (0..20)
        .map(|i| scenario(&i.to_string(), &[], 0.1))
        .collect();
    let count =
        |plan: &Placement, id: &str| plan.assignments.iter().filter(|a| a.node_id == id).count();
    let plan = run(&scenarios, &[good.clone(), bad.clone()], Strategy::Adaptive);
    assert!(plan.unplaced.is_empty());
    assert!(count(&plan, "bad") < count(&plan, "good"), "{plan:?}");
    assert!(count(&plan, "good") > 10);
    assert!(count(&plan, "bad") >= 1, "load still spreads: {plan:?}");

    let mut twin = good.clone();
    twin.node_id = "twin".to_string();
    let even = run(&scenarios, &[good, twin], Strategy::Adaptive);
    assert_eq!(count(&even, "good"), 10);
    assert_eq!(count(&even, "twin"), 10);
}

#[test]
fn unhealthy_nodes_are_never_chosen_and_duplicate_ids_count_once() {
    let mut sick = node("a", &[], "");
    sick.healthy = false;
    for strategy in Strategy::ALL {
        let plan = run(
            &[scenario("s", &[], 1.0)],
            &[sick.clone(), node("b", &[], "")],
            strategy,
        );
        assert_eq!(chosen(&plan), ["b"], "{strategy}");
    }
    // The first entry of "a" is small; the second, larger entry is ignored.
    let mut small = node("a", &[], "");
    small.capacity.insert("cpu".to_string(), 1.0);
    let plan = run(
        &[scenario("s", &[], 8.0)],
        &[small, node("a", &[], "")],
        Strategy::LeastLoaded,
    );
    assert_eq!(plan.unplaced.len(), 1);
}

#[test]
fn unplaced_scenarios_say_what_is_missing() {
    let mut sick = node("sick", &["gpu"], "");
    sick.healthy = false;
    let nodes = [
        node("web", &["http_load", "api_testing"], ""),
        node("sec", &["security_testing"], ""),
        busy(node("big", &["http_load"], ""), 2.0),
        sick,
    ];
    let mut mem = scenario("mem", &["http_load"], 1.0);
    mem.resource_requirements
        .insert("memory".to_string(), 100.0);
    let hoard = scenario("hoard", &[], 16.0);
    let mut custom = scenario("custom", &[], 0.0);
    custom
        .resource_requirements
        .insert("gpu_slots".to_string(), 1.0);
    let scenarios = [
        scenario("gpu", &["gpu"], 1.0),
        scenario("mixed", &["security_testing", "api_testing"], 1.0),
        scenario("cpu", &["http_load"], 20.0),
        mem,
        scenario("fine", &["http_load"], 1.0),
        hoard.clone(),
        hoard,
        custom,
    ];
    let plan = run(&scenarios, &nodes, Strategy::LeastLoaded);
    let reasons: BTreeMap<&str, &str> = plan
        .unplaced
        .iter()
        .map(|u| (u.scenario_id.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(
        reasons["gpu"],
        r#"capability "gpu" on no healthy node: sick has it but is unhealthy"#
    );
    assert_eq!(
        reasons["mixed"],
        r#"no healthy node has all of the capabilities "api_testing", "security_testing""#
    );
    assert_eq!(
        reasons["cpu"],
        r#"resource "cpu" short: needed 20, most free 16"#
    );
    assert_eq!(
        reasons["mem"],
        r#"resource "memory" short: needed 100, most free 64"#
    );
    assert_eq!(
        reasons["custom"],
        r#"resource "gpu_slots" short: needed 1, most free 0"#
    );
    // "fine" took 1 cpu of "web", the first hoard all of "sec": the second finds at most 15.
    assert_eq!(
        reasons["hoard"],
        r#"resource "cpu" short: needed 16, most free 15"#
    );
    assert!(!reasons.contains_key("fine"), "{plan:?}");
    assert_eq!(
        plan.assignments.len() + plan.unplaced.len(),
        scenarios.len()
    );

    let none = run(&[scenario("s", &[], 1.0)], &[], Strategy::RoundRobin);
    assert_eq!(
        none.unplaced[0].reason,
        "no healthy node: no node is connected"
    );
}

fn sick(id: &str, caps: &[&str], why: Option<&str>) -> NodeState {
    let mut n = node(id, caps, "");
    n.healthy = false;
    n.health_score = 10.0;
    n.unhealthy = why.map(str::to_string);
    n
}

fn reason(scenario: Scenario, nodes: &[NodeState]) -> String {
    let plan = run(&[scenario], nodes, Strategy::LeastLoaded);
    assert!(plan.assignments.is_empty(), "{plan:?}");
    plan.unplaced[0].reason.clone()
}

#[test]
fn unplaced_reasons_name_the_nodes_left_out_for_their_health_and_why() {
    let disk = "critical (disk: disk use 96.2% is at or past the critical threshold 95%)";
    let nodes = [
        sick("web_node_1", &["http_load"], Some(disk)),
        sick(
            "security_node_1",
            &["security_testing"],
            Some("unreachable"),
        ),
        // Counted once: the first entry of an id.
        sick("web_node_1", &[], Some("ignored")),
    ];
    assert_eq!(
        reason(scenario("s", &[], 1.0), &nodes),
        format!("no healthy node: security_node_1 is unreachable, web_node_1 is {disk}")
    );

    // At most five named, in id order, then how many more; a long reason is clipped.
    let long = format!("critical ({})", "x".repeat(300));
    let many: Vec<NodeState> = (0..8)
        .map(|i| {
            sick(
                &format!("n{i}"),
                &[],
                Some(&long).filter(|_| i == 0).map(|s| s.as_str()),
            )
        })
        .collect();
    let text = reason(scenario("s", &[], 1.0), &many);
    let clipped = format!("{}…", &long[..159]);
    assert_eq!(
        text,
        format!(
            "no healthy node: n0 is {clipped}, n1 is unhealthy, n2 is unhealthy, \
             n3 is unhealthy, n4 is unhealthy, and 3 more"
        )
    );

    // A capability only unhealthy nodes have: which of them have it, and why they are out.
    let nodes = [
        node("web", &["http_load"], ""),
        sick(
            "gpu_b",
            &["gpu", "fpga"],
            Some("critical (memory: memory use 99.0% is at or past the critical threshold 95%)"),
        ),
        sick("gpu_a", &["gpu"], None),
        sick("plain", &[], Some("critical (cpu: cpu use 100.0%)")),
    ];
    assert_eq!(
        reason(scenario("s", &["gpu"], 1.0), &nodes),
        "capability \"gpu\" on no healthy node: gpu_a has it but is unhealthy, gpu_b has it but \
         is critical (memory: memory use 99.0% is at or past the critical threshold 95%)"
    );
    assert_eq!(
        reason(scenario("s", &["gpu", "fpga", "tpu"], 1.0), &nodes),
        "capabilities \"fpga\", \"gpu\", \"tpu\" on no healthy node: gpu_a has \"gpu\" but is \
         unhealthy, gpu_b has \"fpga\", \"gpu\" but is critical (memory: memory use 99.0% is at \
         or past the critical threshold 95%)"
    );
    // No unhealthy node has it: nothing more to say.
    assert_eq!(
        reason(scenario("s", &["tpu"], 1.0), &nodes),
        r#"capability "tpu" on no healthy node"#
    );
    // Each capability on some healthy node, all of them only on an unhealthy one.
    let nodes = [
        node("web", &["http_load"], ""),
        node("sec", &["security_testing"], ""),
        sick(
            "both",
            &["http_load", "security_testing"],
            Some("critical (command:probe: exit status 1)"),
        ),
    ];
    assert_eq!(
        reason(
            scenario("s", &["http_load", "security_testing"], 1.0),
            &nodes
        ),
        "no healthy node has all of the capabilities \"http_load\", \"security_testing\": both has \
         them but is critical (command:probe: exit status 1)"
    );
}

#[test]
fn no_single_node_reason_when_each_resource_fits_somewhere() {
    let mut cpu_rich = node("cpu_rich", &[], "");
    cpu_rich.allocated.insert("memory".to_string(), 60.0);
    let mem_rich = busy(node("mem_rich", &[], ""), 14.0);
    let mut s = scenario("s", &[], 8.0);
    s.resource_requirements.insert("memory".to_string(), 32.0);
    let plan = run(&[s], &[cpu_rich, mem_rich], Strategy::RoundRobin);
    assert_eq!(
        plan.unplaced[0].reason,
        "no single node has room for all of cpu 8, memory 32 at once"
    );
}

#[test]
fn record_score_is_bounded_neutral_without_record_and_falls_with_each_measure() {
    assert_eq!(record_score(&NodeRecord::default()), NEUTRAL_RECORD);
    let base = NodeRecord {
        windows: 5,
        achieved_ratio: 1.0,
        error_rate: 0.0,
        p99_ms: 0.0,
    };
    assert_eq!(record_score(&base), 1.0);
    let worse = [
        NodeRecord {
            achieved_ratio: 0.9,
            ..base
        },
        NodeRecord {
            error_rate: 0.1,
            ..base
        },
        NodeRecord {
            p99_ms: 100.0,
            ..base
        },
    ];
    for w in worse {
        let s = record_score(&w);
        assert!((0.0..1.0).contains(&s), "{w:?} {s}");
    }
    let nan = NodeRecord {
        windows: 1,
        achieved_ratio: f64::NAN,
        error_rate: f64::NAN,
        p99_ms: f64::NAN,
    };
    assert_eq!(record_score(&nan), 0.0);
    assert_eq!(
        record_score(&NodeRecord {
            achieved_ratio: 3.0,
            ..base
        }),
        1.0
    );
}

#[test]
fn region_drops_the_last_segment() {
    assert_eq!(region("us-west-1"), "us-west");
    assert_eq!(region("us-west-1a"), "us-west");
    assert_eq!(region("eu/paris/dc2"), "eu/paris");
    assert_eq!(region("lab"), "lab");
    assert_eq!(region("-x"), "-x");
    assert_eq!(region(""), "");
}

#[test]
fn strategy_names_parse_display_and_serialize_alike() {
    for s in Strategy::ALL {
        assert_eq!(s.to_string().parse::<Strategy>(), Ok(s));
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        assert_eq!(
            serde_json::from_value::<Strategy>(json!(s.as_str())).unwrap(),
            s
        );
    }
    let err = "fastest".parse::<Strategy>().unwrap_err().to_string();
    for s in Strategy::ALL {
        assert!(err.contains(s.as_str()), "{err}");
    }
    assert!(err.contains("\"fastest\""));
}

#[test]
fn scenario_serde_takes_durations_with_units_and_rejects_unknown_fields() {
    let v = json!({
        "scenario_id": "api_load_test",
        "test_type": "load_test",
        "required_capabilities": ["http_load"],
        "estimated_duration": "30m",
        "resource_requirements": {"cpu": 8.0, "memory": 16.0},
    });
    let s: Scenario = serde_json::from_value(v).unwrap();
    assert_eq!(s.estimated_duration, Duration::from_secs(1800));
    assert_eq!(s.parameters, json!({}));
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(back["estimated_duration"], json!(1800));
    assert_eq!(serde_json::from_value::<Scenario>(back).unwrap(), s);
    let half: Scenario = serde_json::from_value(json!({
        "scenario_id": "x", "test_type": "load_test", "estimated_duration": 0.5
    }))
    .unwrap();
    assert_eq!(half.estimated_duration, Duration::from_millis(500));

    let unknown = serde_json::from_value::<Scenario>(json!({
        "scenario_id": "x", "test_type": "load_test", "timeout": 3
    }));
    assert!(unknown.unwrap_err().to_string().contains("timeout"));
    let negative = serde_json::from_value::<Scenario>(json!({
        "scenario_id": "x", "test_type": "load_test", "estimated_duration": -1
    }));
    assert!(negative.is_err());
}

#[test]
fn scenario_form_reports_every_problem_with_its_path() {
    let v = json!({
        "scenario_id": "",
        "test_type": "soak_test",
        "required_capabilities": ["ok", " "],
        "estimated_duration": "soon",
        "resource_requirements": {"cpu": -1, "memory": "lots"},
        "parameters": [1],
        "color": "red",
    });
    let mut errors = FieldErrors::default();
    assert!(Scenario::from_value(&v, "scenarios[0]", &mut errors).is_none());
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "scenarios[0].scenario_id",
        "scenarios[0].test_type",
        "scenarios[0].required_capabilities[1]",
        "scenarios[0].estimated_duration",
        "scenarios[0].resource_requirements.memory",
        "scenarios[0].color",
    ] {
        assert!(fields.contains(&f), "{f} missing from {errors}");
    }

    // The checks after parsing: a negative amount, parameters that are not a mapping.
    let v = json!({
        "scenario_id": "a", "test_type": "load_test",
        "resource_requirements": {"cpu": -1}, "parameters": [1]
    });
    let mut errors = FieldErrors::default();
    assert!(Scenario::from_value(&v, "s", &mut errors).is_none());
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["s.resource_requirements.cpu", "s.parameters"]);

    let good =
        json!({"scenario_id": "a", "test_type": "security_test", "estimated_duration": 7200});
    let mut errors = FieldErrors::default();
    let s = Scenario::from_value(&good, "s", &mut errors).unwrap();
    assert!(errors.is_empty());
    assert_eq!(s.estimated_duration, Duration::from_secs(7200));

    let mut errors = FieldErrors::default();
    check_workload(&[s.clone(), s], "scenarios", &mut errors);
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].field, "scenarios[1].scenario_id");
}

#[test]
fn weights_and_strategy_forms() {
    let mut errors = FieldErrors::default();
    let w = Weights::from_value(&json!({"health": 2}), "weights", &mut errors).unwrap();
    assert_eq!(
        w,
        Weights {
            health: 2.0,
            ..Weights::default()
        }
    );
    assert!(
        Weights::from_value(&json!({"load": -1, "speed": 1}), "weights", &mut errors).is_none()
    );
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["weights.speed", "weights.load"]);

    let mut errors = FieldErrors::default();
    assert_eq!(
        Strategy::from_value(&json!("adaptive"), "strategy", &mut errors),
        Some(Strategy::Adaptive)
    );
    assert!(Strategy::from_value(&json!("best"), "strategy", &mut errors).is_none());
    assert!(errors.0[0].message.contains("round_robin"));
    let partial: Weights = serde_json::from_value(json!({"locality": 1.0})).unwrap();
    assert_eq!(partial.locality, 1.0);
    assert_eq!(partial.capacity, Weights::default().capacity);
}
