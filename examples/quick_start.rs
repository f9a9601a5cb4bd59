//! The spec's Quick Start as one program: an orchestrator, two load generators that join it,
//! service discovery listing them, and an execution submitted and followed to its report. The
//! target is the repository's test server (`mcpt target`) on 127.0.0.1; its own counts are
//! compared with the report.
//!
//! Run: `cargo run --example quick_start`
//! (`MCP_*` environment variables tune it as they tune `mcpt`: a node whose disk is 95% full
//! is critical and takes no work unless `MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_CRITICAL`
//! is raised.)

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context, ensure};
use mcp_testing::cli::TargetGuard;
use mcp_testing::discovery::{Query, ServiceType};
use mcp_testing::settings::Settings;
use mcp_testing::{LoadGenerator, Orchestrator};
use serde_json::json;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let target = TargetGuard::start(TcpListener::bind("127.0.0.1:0")?, 1)?;

    // 1. The orchestrator: REST API, web UI, event stream, /metrics and MCP on a free port.
    let settings = Settings::from_env()?.on_loopback();
    let orchestrator = Orchestrator::start_in_memory(settings.clone())?;
    println!("orchestrator listening on {}", orchestrator.url());

    // 2. Two load generators join it.
    let mut nodes = Vec::new();
    for id in ["load_gen_1", "load_gen_2"] {
        nodes.push(LoadGenerator::join(&orchestrator, settings.clone(), id)?);
    }
    orchestrator
        .wait_for_nodes(2, Duration::from_secs(30))
        .await?;

    // 3. Service discovery: the generators as the orchestrator's registry knows them.
    let query = Query {
        service_type: Some(ServiceType::LoadGenerator),
        ..Query::default()
    };
    let services = orchestrator.discovery().services(query).await?;
    for s in &services {
        println!(
            "discovered {} ({:?}) at {}:{}",
            s.service.service_id, s.service.service_type, s.service.host, s.service.port
        );
    }
    ensure!(
        services.len() == 2,
        "discovery lists {} generators",
        services.len()
    );

    // 4. An execution: 3 seconds at 100 requests per second, shared by both generators.
    let url = format!("http://{}/", target.addr);
    let id = orchestrator
        .submit(json!({
            "name": "quick_start",
            "tasks": [{
                "name": "homepage",
                "type": "load_test",
                "parameters": {"targets": [{"url": url}], "duration": "3s", "base_rps": 100}
            }]
        }))
        .await?;
    println!("execution {id} submitted");
    let report = orchestrator
        .wait(&id, Duration::from_secs(60))
        .await
        .context("the execution")?;
    let summary = &report.summary;
    let counted = target.stats.view();
    println!(
        "completed {} requests at {:.1} rps, p99 {:.1} ms; the target counted {} ({:?} per node)",
        summary.total_requests,
        summary.achieved_rps,
        summary.latency_ms.p99,
        counted.total,
        counted.nodes
    );
    ensure!(
        counted.total == summary.total_requests,
        "the target counted {}, the report {}",
        counted.total,
        summary.total_requests
    );
    ensure!(
        counted.nodes.len() == 2,
        "both generators sent load: {:?}",
        counted.nodes
    );
    for node in nodes {
        node.leave().await;
    }
    orchestrator.stop().await;
    Ok(())
}
