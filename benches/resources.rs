//! Allocations per second with 100 nodes: allocate + deallocate pairs of three resources on the
//! pure ledger (placed on one node, and split across several), the pool's status, and the
//! same pairs through the `ResourceAllocator`'s mailbox. The pool is kept half full by 500
//! standing grants, half of them unconfirmed, so the deadline index is not empty.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_testing::actors::resource_allocator::ResourceAllocator;
use mcp_testing::messages::resources::{Allocate, Deallocate, SetNodeCapacity};
use mcp_testing::resources::{AllocationRequest, Ledger, Outcome, ResourceSpec};

const NODES: usize = 100;
const STANDING: usize = 500;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn capacity() -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("cpu".to_string(), 32.0),
        ("memory".to_string(), 128.0 * GIB),
        ("network".to_string(), 10_000.0),
        ("connections".to_string(), 10_000.0),
    ])
}

/// Three resources; `cpu` cores decide whether it fits on one node (32 each).
fn request(id: &str, cpu: f64) -> AllocationRequest {
    AllocationRequest::new(
        id,
        "bench",
        vec![
            ResourceSpec::new("cpu", cpu),
            ResourceSpec::new("memory", 2.0 * GIB),
            ResourceSpec::new("network", 50.0),
        ],
    )
}

/// The standing grants: 500 of 3 cores (about half the pool's 3,200), every other confirmed.
fn standing() -> impl Iterator<Item = AllocationRequest> {
    (0..STANDING).map(|i| {
        let mut r = request(&format!("standing-{i}"), 3.0);
        r.confirm = i % 2 == 0;
        r
    })
}

fn pool() -> Ledger {
    let now = Instant::now();
    let mut l = Ledger::new(Duration::from_secs(3600));
    for n in 0..NODES {
        l.set_capacity(&format!("node-{n:03}"), &capacity(), now)
            .unwrap();
    }
    for r in standing() {
        assert!(matches!(l.allocate(&r, now), Ok(Outcome::Granted(_))));
    }
    l
}

fn ledger(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger 100 nodes");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, cpu) in [("on one node", 4.0), ("split over ~8 nodes", 120.0)] {
        let mut l = pool();
        g.bench_function(format!("allocate+deallocate {name}"), |b| {
            let r = request("bench", cpu);
            b.iter(|| {
                let now = Instant::now();
                let o = l.allocate(black_box(&r), now).unwrap();
                assert!(matches!(o, Outcome::Granted(_)));
                l.deallocate("bench", now).unwrap()
            })
        });
    }
    let l = pool();
    g.bench_function("status (500 grants)", |b| {
        b.iter(|| l.status(Instant::now()))
    });
    g.finish();
}

fn actor(c: &mut Criterion) {
    let rounds = 1000u64;
    let mut g = c.benchmark_group("allocator actor 100 nodes");
    g.throughput(Throughput::Elements(rounds));
    g.measurement_time(Duration::from_secs(6));
    g.sample_size(20);
    g.bench_function("allocate+deallocate x1000 through the mailbox", |b| {
        b.iter_custom(|iters| {
            System::new().block_on(async move {
                let addr =
                    ResourceAllocator::new(Duration::from_secs(3600), Duration::from_secs(3600))
                        .start();
                for n in 0..NODES {
                    let msg = SetNodeCapacity {
                        node_id: format!("node-{n:03}"),
                        capacity: capacity(),
                    };
                    addr.send(msg).await.unwrap().unwrap();
                }
                for request in standing() {
                    addr.send(Allocate {
                        request,
                        notify: None,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                }
                let r = request("bench", 4.0);
                let t = Instant::now();
                for _ in 0..iters {
                    for _ in 0..rounds {
                        let request = r.clone();
                        let o = addr.send(Allocate {
                            request,
                            notify: None,
                        });
                        assert!(matches!(o.await.unwrap(), Ok(Outcome::Granted(_))));
                        addr.send(Deallocate("bench".into()))
                            .await
                            .unwrap()
                            .unwrap();
                    }
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, ledger, actor);
criterion_main!(benches);
