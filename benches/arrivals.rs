//! Issue 15, acceptance 6: the CPU a node spends per arrival it owns, with the whole task and
//! with a 1/64 share of it (a 10 s plan at 50,000 rps, uniform and Poisson). A node computes
//! only its own arrivals, so the two should cost the same per arrival; the summary at the end
//! prints the ratio, measured in thread CPU time (median of several runs).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_testing::engine::schedule::{Arrivals, Part, RatePlan};
use mcp_testing::engine::share::{Lease, NodeShare, ShareTable};

const RATE: f64 = 50_000.0;
const SECONDS: u64 = 10;
const SEED: u64 = 15;

/// A node of a cluster of `nodes` equal shares (slot `nodes / 2`, one shard).
fn node(nodes: usize) -> NodeShare {
    let names = (0..nodes).map(|i| format!("n{i}")).collect();
    let slot = (nodes / 2) as u16;
    NodeShare::new(
        format!("n{slot}"),
        slot,
        ShareTable::equal(names),
        Arc::new(Lease::expired()),
    )
}

/// Walks the node's own arrivals; returns how many there were.
fn walk(plan: &RatePlan, mode: Arrivals, node: &NodeShare) -> u64 {
    let part = Part {
        share: Some(node),
        shard: 0,
        shards: 1,
    };
    let mut count = 0;
    for (n, at) in plan.own_arrivals(mode, SEED, part) {
        black_box((n, at));
        count += 1;
    }
    count
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median thread CPU per own arrival over `runs` walks, in nanoseconds.
fn cpu_per_arrival(plan: &RatePlan, mode: Arrivals, node: &NodeShare, runs: usize) -> f64 {
    let mut per: Vec<f64> = (0..runs)
        .map(|_| {
            let before = thread_cpu();
            let n = walk(plan, mode, node);
            (thread_cpu() - before).as_nanos() as f64 / n.max(1) as f64
        })
        .collect();
    per.sort_by(f64::total_cmp);
    per[runs / 2]
}

fn own_arrivals(c: &mut Criterion) {
    let plan = RatePlan::constant(RATE, Duration::from_secs(SECONDS));
    let mut group = c.benchmark_group("own arrivals 50k rps 10 s");
    for mode in Arrivals::ALL {
        for nodes in [1, 64] {
            let node = node(nodes);
            group.throughput(Throughput::Elements(walk(&plan, mode, &node)));
            group.bench_function(format!("{} 1/{nodes}", mode.name()), |b| {
                b.iter(|| walk(&plan, mode, &node))
            });
        }
    }
    group.finish();
    println!("\nCPU per own arrival (thread CPU, median of 3 rounds of 11 walks):");
    for mode in Arrivals::ALL {
        let (whole, part) = (node(1), node(64));
        // Interleaved, so both see the same machine.
        let mut w = Vec::new();
        let mut p = Vec::new();
        for _ in 0..3 {
            w.push(cpu_per_arrival(&plan, mode, &whole, 11));
            p.push(cpu_per_arrival(&plan, mode, &part, 11));
        }
        w.sort_by(f64::total_cmp);
        p.sort_by(f64::total_cmp);
        let (w, p) = (w[1], p[1]);
        println!(
            "  {:8} whole task {w:6.1} ns, 1/64 share {p:6.1} ns, ratio {:.2} (goal <= 1.2)",
            mode.name(),
            p / w
        );
    }
}

criterion_group!(benches, own_arrivals);
criterion_main!(benches);
