//! The spec's Advanced Load Testing as one program: two generators with different
//! capabilities and locations, a workload of two scenarios (an API load test and a security
//! scan) placed by the locality-aware strategy and run in coordinated mode (both start at one
//! instant), its progress polled until it is over. Targets are the repository's test server
//! on 127.0.0.1.
//!
//! Run: `cargo run --example advanced_load_test`
//! (`MCP_*` environment variables tune it as they tune `mcpt`: a node whose disk is 95% full
//! is critical and takes no work unless `MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_CRITICAL`
//! is raised.)

use std::net::TcpListener;
use std::time::Duration;

use anyhow::ensure;
use mcp_testing::cli::TargetGuard;
use mcp_testing::settings::Settings;
use mcp_testing::{LoadGenerator, Orchestrator};
use serde_json::json;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let target = TargetGuard::start(TcpListener::bind("127.0.0.1:0")?, 1)?;
    let base = format!("http://{}", target.addr);

    let settings = Settings::from_env()?.on_loopback();
    let orchestrator = Orchestrator::start_in_memory(settings.clone())?;

    // Nodes with different capabilities, in different places.
    let web = node(&settings, "us-west-1", &["http_load", "api_testing"]);
    let security = node(
        &settings,
        "us-east-1",
        &["security_testing", "vulnerability_scanning"],
    );
    let _web = LoadGenerator::join(&orchestrator, web, "web_node_1")?;
    let _security = LoadGenerator::join(&orchestrator, security, "security_node_1")?;
    orchestrator
        .wait_for_nodes(2, Duration::from_secs(30))
        .await?;

    let workload = json!({
        "workload_id": "comprehensive_test",
        "name": "Comprehensive Testing Suite",
        "strategy": "locality_aware",
        "execution_mode": "coordinated",
        "preferred_location": "us-west-1",
        "timeout": "2m",
        "scenarios": [
            {
                "scenario_id": "api_load_test",
                "name": "API Load Test",
                "description": "Test API endpoints under load",
                "test_type": "load_test",
                "parameters": {
                    "targets": [
                        {"url": format!("{base}/"), "method": "GET"},
                        {"url": format!("{base}/echo"), "method": "POST", "body": "{\"order\": 1}"}
                    ],
                    "duration": "6s",
                    "base_rps": 20,
                    "peak_rps": 100,
                    "pattern": "wave"
                },
                "required_capabilities": ["http_load", "api_testing"],
                "estimated_duration": "6s",
                "resource_requirements": {"cpu": 0.5, "memory": "64MB", "network": "10mbps"}
            },
            {
                "scenario_id": "security_scan",
                "name": "Security Vulnerability Scan",
                "description": "Comprehensive security testing",
                "test_type": "security_test",
                "parameters": {
                    "target": base,
                    "scan_types": ["xss", "sql_injection", "csrf"],
                    "endpoints": [{"path": "/echo", "method": "GET", "params": [{"name": "q", "value": "x"}]}],
                    "depth": "quick",
                    "rate_limit_rps": 50
                },
                "required_capabilities": ["security_testing"],
                "estimated_duration": "30s",
                "resource_requirements": {"cpu": 0.25, "memory": "64MB", "network": "5mbps"}
            }
        ]
    });
    let distributor = orchestrator.distributor();
    let plan = distributor.submit(workload).await?;
    for a in &plan.assignments {
        println!("{} -> {}", a.scenario_id, a.node_id);
    }
    let placed = |scenario: &str| {
        plan.assignments
            .iter()
            .find(|a| a.scenario_id == scenario)
            .map(|a| a.node_id.clone())
    };
    ensure!(placed("api_load_test").as_deref() == Some("web_node_1"));
    ensure!(placed("security_scan").as_deref() == Some("security_node_1"));

    // Progress, until the plan is over.
    let done = loop {
        let status = distributor.plan(&plan.plan_id).await?;
        println!(
            "Progress: {:.1}% ({})",
            status.progress_percent, status.state
        );
        if status.finished_at_ms.is_some() {
            break status;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    ensure!(
        done.state == "completed",
        "the workload ended {}",
        done.state
    );

    // Coordinated: both executions started at one instant.
    let mut starts = Vec::new();
    for a in &done.assignments {
        let id = a.execution_id.as_deref().unwrap_or_default();
        let view = orchestrator.execution(id).await?;
        starts.push(view.started_at_ms);
        let report = orchestrator.report(id).await?;
        let task = &report.tasks[0];
        match task.section.security() {
            Some(scan) => println!(
                "{}: {} probes sent, {} findings",
                a.scenario_id,
                scan.requests_sent,
                scan.findings.len()
            ),
            None => println!(
                "{}: {} requests, {} errors, p99 {:.1} ms",
                a.scenario_id, task.total_requests, task.errors.total, task.latency_ms.p99
            ),
        }
    }
    ensure!(
        starts[0].is_some() && starts[0] == starts[1],
        "coordinated starts: {starts:?}"
    );
    println!(
        "Test execution completed! The target counted {} requests.",
        target.stats.view().total
    );
    orchestrator.stop().await;
    Ok(())
}

/// Settings of a node at `location` with these capabilities.
fn node(settings: &Settings, location: &str, capabilities: &[&str]) -> Settings {
    let mut s = settings.clone();
    s.node.location = location.into();
    s.node.capabilities = capabilities.iter().map(|c| c.to_string()).collect();
    s
}
