//! Properties of the orchestrator's pure decisions before an execution starts
//! (`execution::admission`, issue 14 item 5):
//!
//! - admission: the free slots are the maximum less the executions that hold one (running,
//!   stopping, or pending with a reservation asked for or granted), never below zero;
//! - allocation requests: every node of a load task holds at least one connection, and the
//!   task's users are spread within one of equal over them; declared requirements split
//!   evenly and add up to what was declared;
//! - placement input: pinned nodes are taken as they are once all are connected; otherwise the
//!   nodes chosen are distinct, sorted, as many as asked for, capable, and healthy whenever
//!   enough healthy nodes are eligible.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mcp_testing::execution::admission::{self, NodeChoice};
use mcp_testing::execution::{Halt, Phase, Reservation, State};
use mcp_testing::placement::{NodeRecord, NodeState, Strategy as Placing, Weights};
use mcp_testing::settings::Settings;
use mcp_testing::stats::watch::StopAs;
use mcp_testing::task::{self, TestPlan};
use proptest::prelude::*;
use serde_json::json;

fn phase() -> impl Strategy<Value = Phase> {
    let nodes = vec!["a".to_string()];
    prop_oneof![
        Just(Phase::pending()),
        Just(Phase::Pending {
            reservation: Reservation::Asked {
                nodes: nodes.clone(),
                queued: true
            },
            waiting: None
        }),
        Just(Phase::Pending {
            reservation: Reservation::Granted { nodes },
            waiting: None
        }),
        Just(Phase::Planning),
        Just(Phase::Running),
        Just(Phase::Stopping(Halt::Cancelled { at_ms: None })),
        Just(Phase::Stopping(Halt::Failed)),
        Just(Phase::Stopping(Halt::Watch {
            ends_as: StopAs::Failed,
            at_ms: 1
        })),
        Just(Phase::Ended {
            state: State::Completed,
            halt: None
        }),
        Just(Phase::Ended {
            state: State::Cancelled,
            halt: Some(Halt::Cancelled { at_ms: Some(5) })
        }),
    ]
}

fn load_plan(
    users: &[u32],
    requirements: &BTreeMap<String, f64>,
    placement: serde_json::Value,
) -> TestPlan {
    let tasks: Vec<_> = users
        .iter()
        .map(|u| {
            json!({"type": "load_test", "parameters": {
                "targets": [{"url": "http://127.0.0.1:9/"}], "duration": "10s",
                "model": "closed", "concurrent_users": u}})
        })
        .collect();
    let mut placement = placement;
    placement["resource_requirements"] = json!(requirements);
    let doc = json!({"name": "p", "tasks": tasks, "placement": placement});
    task::validate(&doc, &Settings::defaults().load_generation).expect("a valid plan")
}

fn node(i: usize, caps: u8, healthy: bool) -> NodeState {
    let mut capabilities = BTreeSet::new();
    if caps & 1 != 0 {
        capabilities.insert("http_load".to_string());
    }
    if caps & 2 != 0 {
        capabilities.insert("security_testing".to_string());
    }
    NodeState {
        node_id: format!("n{i}"),
        capabilities,
        location: String::new(),
        capacity: BTreeMap::from([("cpu".to_string(), 16.0)]),
        allocated: BTreeMap::new(),
        health_score: if healthy { 100.0 } else { 10.0 },
        healthy,
        unhealthy: None,
        active_tasks: (i % 3) as u32,
        record: NodeRecord::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn free_slots_count_what_holds_one(phases in proptest::collection::vec(phase(), 0..12), max in 0usize..10) {
        let taken = phases
            .iter()
            .filter(|p| match p {
                Phase::Pending { reservation, .. } => *reservation != Reservation::None,
                p => p.is_live() || **p == Phase::Planning,
            })
            .count();
        let free = admission::free_slots(max, &phases);
        prop_assert_eq!(free, max.saturating_sub(taken));
        prop_assert!(free <= max);
        for p in &phases {
            prop_assert_eq!(admission::takes_slot(p), !p.is_ended() && *p != Phase::pending());
        }
    }

    #[test]
    fn allocation_requests_spread_users_and_requirements(
        users in proptest::collection::vec(1u32..50, 1..4),
        n in 1usize..6,
        cpu in 0.0f64..64.0,
    ) {
        let requirements = BTreeMap::from([("cpu".to_string(), cpu)]);
        let plan = load_plan(&users, &requirements, json!({}));
        let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let req = admission::allocation_request("x", &plan, &nodes);
        prop_assert_eq!(req.allocation_id.as_str(), "execution:x");
        prop_assert_eq!(req.requester_id.as_str(), "x");
        prop_assert!(req.queue && req.confirm);
        let per_node = |resource: &str| -> Vec<f64> {
            nodes
                .iter()
                .map(|node| {
                    req.resources
                        .iter()
                        .filter(|r| r.resource == resource && r.node_id.as_deref() == Some(node))
                        .map(|r| r.amount)
                        .sum()
                })
                .collect()
        };
        let connections = per_node("connections");
        // Each task: max(users, n) over the nodes, one at least on each.
        let want: u32 = users.iter().map(|&u| u.max(n as u32)).sum();
        prop_assert_eq!(connections.iter().sum::<f64>(), f64::from(want));
        let least = connections.iter().copied().fold(f64::MAX, f64::min);
        let most = connections.iter().copied().fold(0.0, f64::max);
        prop_assert!(least >= users.len() as f64);
        prop_assert!(most - least <= users.len() as f64);
        let cpus = per_node("cpu");
        if cpu / n as f64 >= mcp_testing::resources::MIN_AMOUNT {
            prop_assert!((cpus.iter().sum::<f64>() - cpu).abs() < 1e-9 * cpu.max(1.0));
            prop_assert!(cpus.iter().all(|c| (c - cpu / n as f64).abs() < 1e-12 * cpu.max(1.0)));
        } else {
            prop_assert!(cpus.iter().all(|&c| c == 0.0));
        }
    }

    #[test]
    fn chosen_nodes_are_capable_distinct_and_as_many_as_asked(
        nodes in proptest::collection::vec((0u8..4, any::<bool>()), 0..8),
        count in proptest::option::of(1u32..6),
        strategy in proptest::sample::select(Placing::ALL.to_vec()),
    ) {
        let states: Vec<NodeState> =
            nodes.iter().enumerate().map(|(i, &(caps, h))| node(i, caps, h)).collect();
        let placement = match count {
            Some(c) => json!({"node_count": c}),
            None => json!({}),
        };
        let plan = load_plan(&[3], &BTreeMap::new(), placement);
        let weights = Weights::default();
        let chosen = admission::choose_nodes(NodeChoice {
            execution_id: "x",
            name: "p",
            plan: &plan,
            duration: Duration::from_secs(10),
            nodes: states.clone(),
            default_strategy: strategy,
            weights: &weights,
        });
        let capable: Vec<&NodeState> =
            states.iter().filter(|s| s.capabilities.contains("http_load")).collect();
        let healthy = capable.iter().filter(|s| s.healthy).count();
        let eligible = if healthy > 0 { healthy } else { capable.len() };
        let wanted = count.map_or(eligible, |c| c as usize);
        match chosen {
            Ok(chosen) => {
                prop_assert!(eligible > 0 && wanted <= eligible);
                prop_assert_eq!(chosen.len(), wanted);
                let mut sorted = chosen.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&sorted, &chosen);
                for id in &chosen {
                    let s = states.iter().find(|s| &s.node_id == id).unwrap();
                    prop_assert!(s.capabilities.contains("http_load"));
                    prop_assert!(s.healthy || healthy == 0, "{} is critical", id);
                }
            }
            Err(_) => prop_assert!(eligible == 0 || wanted > eligible),
        }
    }

    #[test]
    fn pinned_nodes_wait_for_every_one_of_them(connected in proptest::collection::vec(any::<bool>(), 1..5)) {
        let pinned: Vec<String> = (0..connected.len()).map(|i| format!("n{i}")).collect();
        let plan = load_plan(&[1], &BTreeMap::new(), json!({"nodes": pinned}));
        let states: Vec<NodeState> = connected
            .iter()
            .enumerate()
            .filter(|(_, c)| **c)
            .map(|(i, _)| node(i, 0, false))
            .collect();
        let weights = Weights::default();
        let chosen = admission::choose_nodes(NodeChoice {
            execution_id: "x",
            name: "p",
            plan: &plan,
            duration: Duration::from_secs(10),
            nodes: states,
            default_strategy: Placing::RoundRobin,
            weights: &weights,
        });
        match connected.iter().position(|c| !c) {
            None => prop_assert_eq!(chosen, Ok(pinned)),
            Some(i) => prop_assert_eq!(chosen, Err(format!("node n{i} to connect"))),
        }
    }
}
