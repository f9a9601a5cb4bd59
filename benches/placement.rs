//! Time to place 10,000 scenarios on 1,000 nodes with each of the six strategies. The cluster
//! is made up but shaped like a real one: mixed capabilities, four resources partly reserved,
//! twelve zones, varied health and records, and enough room for most but not all of the work.

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use mcp_testing::placement::{
    NodeRecord, NodeState, PlacementInput, Scenario, Strategy, Weights, place,
};

const CAPS: [&str; 8] = [
    "http_load",
    "api_testing",
    "security_testing",
    "vulnerability_scanning",
    "dns",
    "grpc",
    "websocket",
    "browser",
];
const ZONES: [&str; 12] = [
    "us-west-1",
    "us-west-2",
    "us-east-1",
    "us-east-2",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "sa-east-1",
    "",
];

/// A small fixed generator, so every run plans the same cluster.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn cluster(n: usize, g: &mut Gen) -> Vec<NodeState> {
    (0..n)
        .map(|i| {
            let mut capabilities: std::collections::BTreeSet<String> =
                ["http_load".to_string()].into();
            for _ in 0..(1 + g.next() % 4) {
                capabilities.insert(g.pick(&CAPS).to_string());
            }
            let capacity: BTreeMap<String, f64> = [
                ("cpu", g.range(16.0, 64.0).round()),
                ("memory", g.range(32.0, 256.0).round()),
                ("network", g.range(1000.0, 10000.0).round()),
                ("disk", g.range(100.0, 2000.0).round()),
            ]
            .into_iter()
            .map(|(r, c)| (r.to_string(), c))
            .collect();
            let fill = g.range(0.0, 0.3);
            let allocated = capacity
                .iter()
                .map(|(r, c)| (r.clone(), c * fill))
                .collect();
            NodeState {
                node_id: format!("node-{i:04}"),
                capabilities,
                location: g.pick(&ZONES).to_string(),
                capacity,
                allocated,
                health_score: g.range(50.0, 100.0),
                healthy: g.unit() < 0.97,
                unhealthy: None,
                active_tasks: (g.next() % 5) as u32,
                record: NodeRecord {
                    windows: g.next() % 20,
                    achieved_ratio: g.range(0.5, 1.0),
                    error_rate: g.range(0.0, 0.1),
                    p99_ms: g.range(10.0, 2000.0),
                },
            }
        })
        .collect()
}

fn workload(n: usize, g: &mut Gen) -> Vec<Scenario> {
    (0..n)
        .map(|i| {
            let required_capabilities = (0..g.next() % 3)
                .map(|_| g.pick(&CAPS).to_string())
                .collect();
            let resource_requirements = [
                ("cpu", g.range(0.5, 4.0)),
                ("memory", g.range(1.0, 8.0)),
                ("network", g.range(10.0, 500.0)),
            ]
            .into_iter()
            .map(|(r, a)| (r.to_string(), a))
            .collect();
            Scenario {
                scenario_id: format!("scenario-{i:05}"),
                name: String::new(),
                description: String::new(),
                test_type: "load_test".to_string(),
                parameters: serde_json::json!({}),
                required_capabilities,
                estimated_duration: Duration::from_secs(600),
                resource_requirements,
                preferred_location: (g.unit() < 0.5).then(|| g.pick(&ZONES).to_string()),
            }
        })
        .collect()
}

fn placement(c: &mut Criterion) {
    let mut g = Gen(42);
    let nodes = cluster(1_000, &mut g);
    let scenarios = workload(10_000, &mut g);
    let weights = Weights::default();
    let mut group = c.benchmark_group("place 10k scenarios on 1k nodes");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for strategy in Strategy::ALL {
        let input = PlacementInput {
            scenarios: &scenarios,
            nodes: &nodes,
            strategy,
            weights: &weights,
            seed: 7,
            preferred_location: Some("us-west-1"),
        };
        let plan = place(&input);
        eprintln!(
            "{strategy}: {} placed, {} unplaced",
            plan.assignments.len(),
            plan.unplaced.len()
        );
        group.bench_function(strategy.as_str(), |b| b.iter(|| place(&input)));
    }
    group.finish();
}

criterion_group!(benches, placement);
criterion_main!(benches);
