//! The spec's Resource-Aware Testing as one program: a resource pool of five nodes (their
//! managers report 16 cores, 32 GiB and 1,000 Mbps each), the spec's high-intensity request
//! for 64 cores, 128 GiB and 10,000 Mbps (refused: the pool has 5,000 Mbps in all, and the
//! refusal says what is short), a reduced request granted across the nodes, and its release.
//!
//! Run: `cargo run --example resource_aware_testing`

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure};
use mcp_testing::ResourcePool;
use mcp_testing::resources::{AllocError, AllocationRequest, Outcome, ResourceSpec};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // Grants not confirmed within 5 minutes expire; expiries are swept every 30 s.
    let pool = ResourcePool::start(Duration::from_secs(300), Duration::from_secs(30));
    for i in 0..5 {
        let capacity = BTreeMap::from([
            ("cpu".to_string(), 16.0),
            ("memory".to_string(), 32.0 * GIB),
            ("network".to_string(), 1000.0),
        ]);
        pool.add_node(&format!("node_{i}"), capacity).await?;
    }
    show(&pool).await?;

    let ask = |network: f64| {
        let mut request = AllocationRequest::new(
            "high_intensity_test",
            "test_suite",
            vec![
                ResourceSpec::new("cpu", 64.0),
                ResourceSpec::new("memory", 128.0 * GIB),
                ResourceSpec::new("network", network),
            ],
        );
        request.priority = 1;
        request
    };

    // The spec's request: more network than the whole pool has.
    match pool.allocate(ask(10_000.0)).await? {
        Err(refused @ AllocError::NeverFits { .. }) => {
            println!("Insufficient resources available: {refused}");
        }
        other => bail!("the request for 10,000 Mbps was not refused as never fitting: {other:?}"),
    }

    // Reduced to what the pool can give: granted whole, spread over the nodes.
    let grant = match pool.allocate(ask(4_000.0)).await? {
        Ok(Outcome::Granted(grant)) => grant,
        other => bail!("the reduced request was not granted: {other:?}"),
    };
    println!("Resources allocated successfully:");
    for p in &grant.portions {
        println!("  {} {}", p.node_id, amount(&p.resource, p.amount));
    }
    pool.confirm(&grant.allocation_id).await?;
    show(&pool).await?;

    // ... run your tests here ...

    pool.deallocate("high_intensity_test").await?;
    let after = pool.status().await?;
    ensure!(after.allocations.is_empty(), "released");
    ensure!(
        after
            .aggregate_utilization
            .values()
            .all(|a| a.allocated == 0.0),
        "nothing allocated after the release"
    );
    println!("Deallocated: the pool is free again.");
    show(&pool).await
}

async fn show(pool: &ResourcePool) -> anyhow::Result<()> {
    let status = pool.status().await?;
    for (resource, a) in &status.aggregate_utilization {
        println!(
            "  {} allocated of {} ({:.1}%)",
            amount(resource, a.allocated),
            amount(resource, a.total),
            a.utilization_percent
        );
    }
    Ok(())
}

/// An amount in the unit people read: GiB of memory, cores, Mbps.
fn amount(resource: &str, x: f64) -> String {
    match resource {
        "memory" => format!("{:.0} GiB memory", x / GIB),
        "cpu" => format!("{x:.0} cores"),
        "network" => format!("{x:.0} Mbps network"),
        other => format!("{x} {other}"),
    }
}
