//! Placement invariants over random clusters and workloads, for every strategy: the hard
//! constraints (capabilities, capacity, health), every scenario accounted for once, no scenario
//! left out that would fit, determinism, and the strategies' promises (round-robin spreads
//! evenly, least-loaded takes a least loaded node, adaptive moves work off a worse record).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mcp_testing::placement::{
    NodeRecord, NodeState, Placement, PlacementInput, Scenario, Strategy as Placing, Weights,
    eligible, place, record_score,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

const CAPS: [&str; 5] = [
    "http_load",
    "api_testing",
    "security_testing",
    "dns",
    "grpc",
];
const RESOURCES: [&str; 4] = ["cpu", "memory", "network", "gpu"];
const LOCATIONS: [&str; 5] = ["", "us-west-1", "us-west-2", "us-east-1", "eu-central-1"];

fn names(v: Vec<&str>) -> impl Iterator<Item = String> + '_ {
    v.into_iter().map(str::to_string)
}

fn record() -> impl Strategy<Value = NodeRecord> {
    (0u64..4, 0.0..1.2f64, 0.0..1.0f64, 0.0..3000.0f64).prop_map(|(windows, a, e, p)| NodeRecord {
        windows,
        achieved_ratio: a,
        error_rate: e,
        p99_ms: p,
    })
}

/// A node without its id; ids are given by position so they are unique.
fn node() -> impl Strategy<Value = NodeState> {
    (
        subsequence(CAPS.to_vec(), 0..=CAPS.len()),
        select(LOCATIONS.to_vec()),
        prop::collection::btree_map(select(RESOURCES.to_vec()), 0.0..64.0f64, 0..=4),
        prop::collection::vec(0.0..1.2f64, 4),
        (0.0..=100.0f64, prop::bool::weighted(0.85), 0u32..10),
        record(),
    )
        .prop_map(
            |(caps, location, capacity, fill, (health_score, healthy, active_tasks), record)| {
                // Some resources partly reserved, a few over-reserved by the pool.
                let allocated = capacity
                    .iter()
                    .zip(fill)
                    .filter(|(_, f)| *f < 1.1)
                    .map(|((r, c), f)| (r.to_string(), c * f))
                    .collect();
                NodeState {
                    node_id: String::new(),
                    capabilities: names(caps).collect(),
                    location: location.to_string(),
                    capacity: capacity
                        .into_iter()
                        .map(|(r, c)| (r.to_string(), c))
                        .collect(),
                    allocated,
                    health_score,
                    healthy,
                    unhealthy: (!healthy).then(|| "critical".to_string()),
                    active_tasks,
                    record,
                }
            },
        )
}

fn nodes(max: usize) -> impl Strategy<Value = Vec<NodeState>> {
    prop::collection::vec(node(), 0..=max).prop_map(|mut v| {
        for (i, n) in v.iter_mut().enumerate() {
            n.node_id = format!("n{i:02}");
        }
        v
    })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        subsequence(CAPS.to_vec(), 0..=2),
        prop::collection::btree_map(select(RESOURCES.to_vec()), 0.0..24.0f64, 0..=3),
        prop::option::weighted(0.5, select(LOCATIONS.to_vec())),
    )
        .prop_map(|(caps, reqs, preferred)| Scenario {
            scenario_id: String::new(),
            name: String::new(),
            description: String::new(),
            test_type: "load_test".to_string(),
            parameters: serde_json::json!({}),
            required_capabilities: names(caps).collect(),
            estimated_duration: Duration::from_secs(60),
            resource_requirements: reqs.into_iter().map(|(r, a)| (r.to_string(), a)).collect(),
            preferred_location: preferred.map(str::to_string),
        })
}

fn scenarios(max: usize) -> impl Strategy<Value = Vec<Scenario>> {
    prop::collection::vec(scenario(), 0..=max).prop_map(|mut v| {
        for (i, s) in v.iter_mut().enumerate() {
            s.scenario_id = format!("s{i:02}");
        }
        v
    })
}

fn weights() -> impl Strategy<Value = Weights> {
    prop::collection::vec(0.0..1.0f64, 5).prop_map(|w| Weights {
        capacity: w[0],
        load: w[1],
        health: w[2],
        locality: w[3],
        performance: w[4],
    })
}

fn strategy() -> impl Strategy<Value = Placing> {
    select(Placing::ALL.to_vec())
}

fn plan(
    scenarios: &[Scenario],
    nodes: &[NodeState],
    strategy: Placing,
    weights: &Weights,
    seed: u64,
    preferred: Option<&str>,
) -> Placement {
    place(&PlacementInput {
        scenarios,
        nodes,
        strategy,
        weights,
        seed,
        preferred_location: preferred,
    })
}

/// Whether `s` fits on `n` given what is already used there (allocated plus placed).
fn fits(s: &Scenario, n: &NodeState, used: &BTreeMap<String, f64>) -> bool {
    n.healthy
        && s.required_capabilities
            .iter()
            .all(|c| n.capabilities.contains(c))
        && s.resource_requirements
            .iter()
            .filter(|(_, a)| **a > 0.0)
            .all(|(r, a)| {
                let u = used.get(r).copied().unwrap_or(0.0);
                u + a <= n.capacity.get(r).copied().unwrap_or(0.0)
            })
}

/// `(utilization, tasks)` of a node with nothing placed yet.
fn load(n: &NodeState) -> (f64, u32) {
    let util = n
        .capacity
        .iter()
        .filter(|(_, c)| **c > 0.0)
        .map(|(r, c)| n.allocated.get(r).copied().unwrap_or(0.0) / c)
        .fold(0.0, f64::max);
    (util, n.active_tasks)
}

fn counts(plan: &Placement) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for a in &plan.assignments {
        *out.entry(a.node_id.as_str()).or_default() += 1;
    }
    out
}

/// Nodes that take anything: healthy, every capability, room for everything.
fn ample(n: usize) -> Vec<NodeState> {
    (0..n)
        .map(|i| NodeState {
            node_id: format!("n{i:02}"),
            capabilities: CAPS.iter().map(|c| c.to_string()).collect(),
            location: LOCATIONS[i % LOCATIONS.len()].to_string(),
            capacity: RESOURCES.iter().map(|r| (r.to_string(), 1e9)).collect(),
            allocated: BTreeMap::new(),
            health_score: 100.0,
            healthy: true,
            unhealthy: None,
            active_tasks: 0,
            record: NodeRecord::default(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Every scenario is assigned or unplaced exactly once, in input order; an assignment goes
    /// to a healthy node with every required capability; no node's capacity is exceeded; an
    /// unplaced scenario has a reason and fits nowhere even at the end of the plan.
    #[test]
    fn plans_keep_the_hard_constraints(
        nodes in nodes(8),
        scenarios in scenarios(24),
        strategy in strategy(),
        weights in weights(),
        seed in any::<u64>(),
        preferred in prop::option::of(select(LOCATIONS.to_vec())),
    ) {
        let p = plan(&scenarios, &nodes, strategy, &weights, seed, preferred);

        let mut seen: Vec<&str> = p.assignments.iter().map(|a| a.scenario_id.as_str())
            .chain(p.unplaced.iter().map(|u| u.scenario_id.as_str()))
            .collect();
        seen.sort_unstable();
        let all: Vec<&str> = scenarios.iter().map(|s| s.scenario_id.as_str()).collect();
        prop_assert_eq!(&seen, &all);
        let assigned: Vec<&str> = p.assignments.iter().map(|a| a.scenario_id.as_str()).collect();
        prop_assert!(assigned.is_sorted(), "assignments in input order");

        let by_id: BTreeMap<&str, &NodeState> =
            nodes.iter().map(|n| (n.node_id.as_str(), n)).collect();
        let scen: BTreeMap<&str, &Scenario> =
            scenarios.iter().map(|s| (s.scenario_id.as_str(), s)).collect();
        let mut used: BTreeMap<&str, BTreeMap<String, f64>> = nodes
            .iter()
            .map(|n| (n.node_id.as_str(), n.allocated.clone()))
            .collect();
        for a in &p.assignments {
            let n = by_id.get(a.node_id.as_str()).copied();
            prop_assert!(n.is_some(), "unknown node {}", a.node_id);
            let n = n.unwrap();
            let s = scen[a.scenario_id.as_str()];
            prop_assert!(n.healthy, "{} on unhealthy {}", s.scenario_id, n.node_id);
            for c in &s.required_capabilities {
                prop_assert!(n.capabilities.contains(c), "{} lacks {c}", n.node_id);
            }
            let u = used.get_mut(n.node_id.as_str()).unwrap();
            for (r, amount) in s.resource_requirements.iter().filter(|(_, a)| **a > 0.0) {
                let total = u.entry(r.clone()).or_insert(0.0);
                *total += amount;
                let cap = n.capacity.get(r).copied().unwrap_or(0.0);
                prop_assert!(*total <= cap, "{} {r}: {total} > {cap}", n.node_id);
            }
        }
        for un in &p.unplaced {
            prop_assert!(!un.reason.is_empty());
            let s = scen[un.scenario_id.as_str()];
            for n in &nodes {
                prop_assert!(
                    !fits(s, n, &used[n.node_id.as_str()]),
                    "{} left out but fits on {} ({})", s.scenario_id, n.node_id, un.reason
                );
            }
        }
    }

    /// The same input and seed give the same plan, again and again, whatever the order of the
    /// nodes; the plan survives a serde round trip.
    #[test]
    fn plans_are_deterministic(
        nodes in nodes(8),
        scenarios in scenarios(24),
        strategy in strategy(),
        weights in weights(),
        seed in any::<u64>(),
    ) {
        let west = Some("us-west-1");
        let first = plan(&scenarios, &nodes, strategy, &weights, seed, west);
        let again = plan(&scenarios.clone(), &nodes.clone(), strategy, &weights, seed, west);
        prop_assert_eq!(&first, &again);
        let mut reversed = nodes.clone();
        reversed.reverse();
        let shuffled = plan(&scenarios, &reversed, strategy, &weights, seed, west);
        prop_assert_eq!(&first, &shuffled);
        let json = serde_json::to_string(&first).unwrap();
        prop_assert_eq!(&first, &serde_json::from_str::<Placement>(&json).unwrap());
    }

    /// With every node eligible and room to spare, round-robin's counts differ by at most one.
    #[test]
    fn round_robin_spreads_evenly(
        n in 1usize..12,
        scenarios in scenarios(40),
        seed in any::<u64>(),
    ) {
        let nodes = ample(n);
        let p = plan(&scenarios, &nodes, Placing::RoundRobin, &Weights::default(), seed, None);
        prop_assert!(p.unplaced.is_empty());
        let c = counts(&p);
        let per_node: Vec<usize> = nodes
            .iter()
            .map(|n| c.get(n.node_id.as_str()).copied().unwrap_or(0))
            .collect();
        let (lo, hi) = (per_node.iter().min().unwrap(), per_node.iter().max().unwrap());
        prop_assert!(hi - lo <= 1, "{per_node:?}");
    }

    /// One scenario under least-loaded goes to an eligible node whose load is minimal among
    /// the eligible ones; it is unplaced exactly when no node is eligible.
    #[test]
    fn least_loaded_picks_a_least_loaded_node(
        nodes in nodes(10),
        scenario in scenario(),
        seed in any::<u64>(),
    ) {
        let mut scenario = scenario;
        scenario.scenario_id = "s".to_string();
        let one = std::slice::from_ref(&scenario);
        let p = plan(one, &nodes, Placing::LeastLoaded, &Weights::default(), seed, None);
        let ok: Vec<&NodeState> = eligible(&scenario, &nodes);
        let expected: Vec<&NodeState> =
            nodes.iter().filter(|n| fits(&scenario, n, &n.allocated)).collect();
        prop_assert_eq!(&ok, &expected);
        match p.assignments.first() {
            None => prop_assert!(ok.is_empty()),
            Some(a) => {
                let chosen = ok.iter().find(|n| n.node_id == a.node_id);
                prop_assert!(chosen.is_some(), "{} not eligible", a.node_id);
                let best = load(chosen.unwrap());
                for n in &ok {
                    let other = load(n);
                    prop_assert!(
                        best.0 < other.0 || (best.0 == other.0 && best.1 <= other.1),
                        "{} {best:?} chosen over {} {other:?}", a.node_id, n.node_id
                    );
                }
            }
        }
    }

    /// Two nodes alike but for the record: the worse record never gets more work, gets
    /// strictly less when the count is odd, and equal records split evenly.
    #[test]
    fn adaptive_moves_load_away_from_the_worse_record(
        good in (1u64..50, 0.8..=1.0f64, 0.0..0.2f64, 1.0..500.0f64),
        worse in (0.0..0.5f64, 0.0..0.5f64, 0.0..3000.0f64, 0usize..3),
        n in 1usize..40,
        seed in any::<u64>(),
    ) {
        let good = NodeRecord {
            windows: good.0,
            achieved_ratio: good.1,
            error_rate: good.2,
            p99_ms: good.3,
        };
        let (mut da, mut de, mut dp, which) = worse;
        match which {
            0 => da += 0.05,
            1 => de += 0.05,
            _ => dp += 50.0,
        }
        let bad = NodeRecord {
            achieved_ratio: good.achieved_ratio - da,
            error_rate: good.error_rate + de,
            p99_ms: good.p99_ms + dp,
            ..good
        };
        prop_assert!(record_score(&bad) < record_score(&good));
        let mut nodes = ample(2);
        nodes[0].record = good;
        nodes[1].record = bad;
        let scenarios: Vec<Scenario> = (0..n)
            .map(|i| Scenario {
                scenario_id: format!("s{i:02}"),
                name: String::new(),
                description: String::new(),
                test_type: "load_test".to_string(),
                parameters: serde_json::json!({}),
                required_capabilities: vec!["http_load".to_string()],
                estimated_duration: Duration::from_secs(60),
                resource_requirements: BTreeMap::from([("cpu".to_string(), 2.0)]),
                preferred_location: None,
            })
            .collect();
        let p = plan(&scenarios, &nodes, Placing::Adaptive, &Weights::default(), seed, None);
        let c = counts(&p);
        let (g, b) = (c.get("n00").copied().unwrap_or(0), c.get("n01").copied().unwrap_or(0));
        prop_assert_eq!(g + b, n);
        prop_assert!(b <= g, "good {g}, bad {b}");
        if n % 2 == 1 {
            prop_assert!(b < g, "good {g}, bad {b}");
        }

        nodes[1].record = good;
        let even = plan(&scenarios, &nodes, Placing::Adaptive, &Weights::default(), seed, None);
        let c = counts(&even);
        let (g, b) = (c.get("n00").copied().unwrap_or(0), c.get("n01").copied().unwrap_or(0));
        prop_assert!(g.abs_diff(b) <= 1, "{g} vs {b}");
    }

    /// A record that is worse in every measure never scores higher, and scores stay in 0..=1.
    #[test]
    fn record_score_falls_with_a_worse_record(
        r in record(),
        da in 0.0..1.0f64,
        de in 0.0..1.0f64,
        dp in 0.0..5000.0f64,
    ) {
        let s = record_score(&r);
        prop_assert!((0.0..=1.0).contains(&s));
        let mut worse = r;
        worse.windows = r.windows.max(1);
        let base = record_score(&worse);
        worse.achieved_ratio -= da;
        worse.error_rate += de;
        worse.p99_ms += dp;
        prop_assert!(record_score(&worse) <= base);
    }
}

/// The spec's example: a clearly worse node (achieved 0.5, p99 2 s) against a good one (1.0,
/// 20 ms) over 20 equal scenarios.
#[test]
fn adaptive_gives_the_good_node_the_majority() {
    let mut nodes = ample(2);
    nodes[0].record = NodeRecord {
        windows: 20,
        achieved_ratio: 1.0,
        error_rate: 0.0,
        p99_ms: 20.0,
    };
    nodes[1].record = NodeRecord {
        windows: 20,
        achieved_ratio: 0.5,
        error_rate: 0.0,
        p99_ms: 2000.0,
    };
    let scenarios: Vec<Scenario> = (0..20)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "scenario_id": format!("s{i}"),
                "test_type": "load_test",
                "resource_requirements": {"cpu": 1},
            }))
            .unwrap()
        })
        .collect();
    let p = plan(
        &scenarios,
        &nodes,
        Placing::Adaptive,
        &Weights::default(),
        0,
        None,
    );
    let c = counts(&p);
    assert!(c["n00"] > 10 && c["n01"] < c["n00"], "{c:?}");
    assert!(c["n01"] > 0, "the load still spreads: {c:?}");
}

/// Every strategy places the spec's advanced example: the API load test on the web node, the
/// security scan on the security node.
#[test]
fn every_strategy_places_the_spec_example() {
    let node = |id: &str, caps: &[&str], cap: [f64; 3], used: [f64; 3], loc: &str| NodeState {
        node_id: id.to_string(),
        capabilities: caps.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>(),
        location: loc.to_string(),
        capacity: ["cpu", "memory", "network"]
            .into_iter()
            .map(str::to_string)
            .zip(cap)
            .collect(),
        allocated: ["cpu", "memory", "network"]
            .into_iter()
            .map(str::to_string)
            .zip(used)
            .collect(),
        health_score: 100.0,
        healthy: true,
        unhealthy: None,
        active_tasks: 0,
        record: NodeRecord::default(),
    };
    let nodes = [
        node(
            "web_node_1",
            &["http_load", "api_testing"],
            [16.0, 32.0, 10000.0],
            [2.0, 4.0, 1000.0],
            "us-west-1",
        ),
        node(
            "security_node_1",
            &["security_testing", "vulnerability_scanning"],
            [8.0, 16.0, 1000.0],
            [1.0, 2.0, 100.0],
            "us-east-1",
        ),
    ];
    let scenarios: Vec<Scenario> = serde_json::from_value(serde_json::json!([
        {
            "scenario_id": "api_load_test", "name": "API Load Test",
            "description": "Test API endpoints under load", "test_type": "load_test",
            "parameters": {"duration": 1800, "base_rps": 100, "peak_rps": 1000, "pattern": "wave"},
            "required_capabilities": ["http_load", "api_testing"],
            "estimated_duration": "30m",
            "resource_requirements": {"cpu": 8.0, "memory": 16.0, "network": 5000.0}
        },
        {
            "scenario_id": "security_scan", "name": "Security Vulnerability Scan",
            "description": "Comprehensive security testing", "test_type": "security_test",
            "parameters": {"target": "example.com", "depth": "deep"},
            "required_capabilities": ["security_testing"],
            "estimated_duration": 7200,
            "resource_requirements": {"cpu": 4.0, "memory": 8.0, "network": 500.0}
        }
    ]))
    .unwrap();
    for strategy in Placing::ALL {
        let p = plan(
            &scenarios,
            &nodes,
            strategy,
            &Weights::default(),
            1,
            Some("us-west-1"),
        );
        assert!(p.unplaced.is_empty(), "{strategy}: {p:?}");
        let on: BTreeMap<&str, &str> = p
            .assignments
            .iter()
            .map(|a| (a.scenario_id.as_str(), a.node_id.as_str()))
            .collect();
        assert_eq!(on["api_load_test"], "web_node_1", "{strategy}");
        assert_eq!(on["security_scan"], "security_node_1", "{strategy}");
    }
}
