//! Micro-benchmarks of the engine's hot pieces: arrival generation, recording into a window,
//! merging windows, and an actor round-trip against a raw channel (the cost of going through
//! a mailbox instead of a channel).

use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{Criterion, criterion_group, criterion_main};
use mcp_testing::engine::schedule::{Arrivals, LoadProfile, Pattern, RatePlan};
use mcp_testing::stats::{Outcome, Window};

fn arrivals(c: &mut Criterion) {
    let plan = RatePlan::from_profile(&LoadProfile {
        duration: Duration::from_secs(100),
        base_rps: 200.0,
        peak_rps: 2000.0,
        pattern: Pattern::RampUp {
            ramp_duration: Duration::from_secs(100),
        },
        seed: 1,
    });
    c.bench_function("arrivals uniform ramp 110k", |b| {
        b.iter(|| plan.arrivals(Arrivals::Uniform, 1).count())
    });
    c.bench_function("arrivals poisson ramp 110k", |b| {
        b.iter(|| plan.arrivals(Arrivals::Poisson, 1).count())
    });
}

fn windows(c: &mut Criterion) {
    let ok = Outcome {
        status: Some(200),
        error: None,
        bytes: 13,
        slow: false,
        handshake: None,
        ..Outcome::default()
    };
    let mut w = Window::new(0);
    let mut n = 0u64;
    c.bench_function("window record", |b| {
        b.iter(|| {
            n = n.wrapping_add(7919);
            let lat = Duration::from_micros(50 + n % 5000);
            w.record_request(0, &ok, lat, lat);
        })
    });
    let mut full = Window::new(0);
    for i in 0..10_000u64 {
        let lat = Duration::from_micros(20 + i * 13 % 100_000);
        full.record_request(0, &ok, lat, lat);
    }
    c.bench_function("window merge", |b| {
        b.iter(|| {
            let mut acc = Window::new(0);
            acc.merge(&full);
            acc
        })
    });
}

struct Echo;
impl Actor for Echo {
    type Context = Context<Self>;
}
#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);
impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, Ping(x): Ping, _: &mut Context<Self>) -> u64 {
        x + 1
    }
}

fn round_trip(c: &mut Criterion) {
    let rounds = 1000u64;
    c.bench_function("actor round-trip x1000", |b| {
        b.iter_custom(|iters| {
            actix::System::new().block_on(async move {
                let addr = Echo.start();
                let t = Instant::now();
                for _ in 0..iters {
                    for i in 0..rounds {
                        addr.send(Ping(i)).await.unwrap();
                    }
                }
                t.elapsed()
            })
        })
    });
    c.bench_function("channel round-trip x1000", |b| {
        b.iter_custom(|iters| {
            actix::System::new().block_on(async move {
                let (tx, mut rx) =
                    tokio::sync::mpsc::channel::<(u64, tokio::sync::oneshot::Sender<u64>)>(16);
                actix_rt::spawn(async move {
                    while let Some((x, reply)) = rx.recv().await {
                        let _ = reply.send(x + 1);
                    }
                });
                let t = Instant::now();
                for _ in 0..iters {
                    for i in 0..rounds {
                        let (otx, orx) = tokio::sync::oneshot::channel();
                        tx.send((i, otx)).await.unwrap();
                        orx.await.unwrap();
                    }
                }
                t.elapsed()
            })
        })
    });
}

criterion_group!(benches, arrivals, windows, round_trip);
criterion_main!(benches);
