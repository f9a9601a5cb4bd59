//! The cost of one health sample: a full sysinfo refresh (processes, every CPU, memory, every
//! disk and interface, as `System::new_all` + `refresh_all` and the disk and network lists'
//! `refresh`) against the node monitor's `Sampler::sample`, which refreshes only what it
//! reads (CPU usage, RAM, one disk's storage, interface counters, load average).
//!
//! sysinfo re-reads the CPU times only when 200 ms (`MINIMUM_CPU_UPDATE_INTERVAL`) have passed
//! since the last read, so a tight loop of samples skips that read; `sampler_sample_spaced`
//! (printed, not a criterion measurement) waits past the interval before each sample, as the
//! monitor does, and is the figure of a real round.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_testing::health::sample::Sampler;
use sysinfo::{Disks, Networks, System};

fn sysinfo(c: &mut Criterion) {
    let mut g = c.benchmark_group("sysinfo");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let mut system = System::new_all().expect("sysinfo works here");
    let mut disks = Disks::new_with_refreshed_list().expect("disks");
    let mut networks = Networks::new_with_refreshed_list().expect("interfaces");
    g.bench_function("full_refresh", |b| {
        b.iter(|| {
            system.refresh_all();
            disks.refresh(true);
            networks.refresh(true);
            black_box(system.global_cpu_usage())
        })
    });

    // The sampler's parts, apart: memory (CPU times are re-read only 200 ms apart, see
    // `sampler_sample_spaced`), the interfaces' counters, every disk's storage.
    let mut parts = System::new().expect("sysinfo works here");
    parts.refresh_cpu_usage();
    g.bench_function("part_cpu_memory", |b| {
        b.iter(|| {
            parts.refresh_cpu_usage();
            parts.refresh_memory_specifics(sysinfo::MemoryRefreshKind::nothing().with_ram());
            black_box(parts.used_memory())
        })
    });
    g.bench_function("part_networks", |b| {
        b.iter(|| {
            networks.refresh(true);
            black_box(networks.len())
        })
    });
    g.bench_function("part_load_average", |b| {
        b.iter(|| black_box(System::load_average().map(|l| l.one)))
    });

    let mut sampler = Sampler::new().expect("sysinfo works here");
    g.bench_function("sampler_sample", |b| b.iter(|| black_box(sampler.sample())));
    g.finish();

    spaced(&mut sampler);
}

/// Samples spaced past the CPU interval, timed one by one (criterion sizes its runs from the
/// measured time, which would make it sleep for hours here): median and max of 20.
fn spaced(sampler: &mut Sampler) {
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            #[allow(
                clippy::disallowed_methods,
                reason = "an unmeasured pause so sysinfo re-reads the CPU times"
            )]
            std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(5));
            let start = Instant::now();
            black_box(sampler.sample());
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "sysinfo/sampler_sample_spaced: median {:?}, max {:?} over {} samples",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
}

criterion_group!(benches, sysinfo);
criterion_main!(benches);
