//! The spec's Custom Health Monitoring as one program: a node's monitor gets a check of our
//! own (an async function that connects to "the database", a TCP listener this program owns)
//! and a custom metric with warning and critical levels, fed by a collector task. The metric
//! crossing its critical level raises an alert at the orchestrator, which clears when it falls
//! back; the database going away does the same for the check. The node's `/metrics` shows the
//! metric as a gauge.
//!
//! Run: `cargo run --example custom_monitoring`
//! (`MCP_*` environment variables tune it as they tune `mcpt`: a node whose disk is 95% full
//! is critical and takes no work unless `MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_CRITICAL`
//! is raised.)

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use mcp_testing::embed::{CodeCheck, CustomMetric};
use mcp_testing::settings::Settings;
use mcp_testing::{LoadGenerator, NodeMonitor, Orchestrator};

const METRIC: &str = "custom_application_metric";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?.on_loopback();
    // Quick rounds for a demonstration: a check every 250 ms, an alert after 2 failures.
    settings.health_monitoring.check_interval = Duration::from_millis(250);
    settings.health_monitoring.alert_threshold = 2;
    let orchestrator = Orchestrator::start_in_memory(settings.clone())?;
    let node = LoadGenerator::join(&orchestrator, settings, "custom_node")?;
    orchestrator
        .wait_for_nodes(1, Duration::from_secs(30))
        .await?;
    let monitor = node.monitor();

    // A custom async check: can we connect to the database?
    let database = TcpListener::bind("127.0.0.1:0")?;
    let db_addr = database.local_addr()?;
    let check = CodeCheck::new("database_connectivity", move || async move {
        tokio::net::TcpStream::connect(db_addr)
            .await
            .map(|_| format!("connected to {db_addr}"))
            .map_err(|e| format!("cannot connect to {db_addr}: {e}"))
    })
    .timeout(Duration::from_secs(10))
    .interval(Duration::from_millis(250));
    monitor.register_check(check).await?;

    // A custom metric, collected every 250 ms from the application's figure.
    let figure = Arc::new(AtomicU64::new(42f64.to_bits()));
    actix_rt::spawn(collect(monitor.clone(), figure.clone()));

    let alert_id = METRIC;
    println!("{METRIC} = 42 requests/sec (warning 50, critical 100)");
    until_alert(&orchestrator, alert_id, false).await?;
    figure.store(120f64.to_bits(), Relaxed);
    println!("{METRIC} = 120: past critical");
    until_alert(&orchestrator, alert_id, true).await?;
    show_gauge(&node).await?;
    figure.store(42f64.to_bits(), Relaxed);
    println!("{METRIC} = 42 again");
    until_alert(&orchestrator, alert_id, false).await?;

    println!("the database goes away");
    drop(database);
    until_alert(&orchestrator, "database_connectivity", true).await?;
    let database = rebind(db_addr)?;
    println!("the database is back on {}", database.local_addr()?);
    until_alert(&orchestrator, "database_connectivity", false).await?;

    let health = orchestrator.health().await?;
    println!(
        "cluster: {:?}, {} healthy, {} warning, {} failed",
        health.status, health.healthy, health.warning, health.failed
    );
    node.leave().await;
    orchestrator.stop().await;
    Ok(())
}

/// Sets the metric from `figure` every 250 ms, as an application's collector would.
async fn collect(monitor: NodeMonitor, figure: Arc<AtomicU64>) {
    loop {
        let metric = CustomMetric {
            name: METRIC.into(),
            value: f64::from_bits(figure.load(Relaxed)),
            unit: Some("requests/sec".into()),
            warning: Some(50.0),
            critical: Some(100.0),
            higher_is_worse: true,
        };
        if let Err(e) = monitor.set_metric(metric).await {
            eprintln!("the metric was not kept: {e}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the orchestrator shows an active alert whose check id ends with `check`
/// (`active`), or none (`!active`).
async fn until_alert(orchestrator: &Orchestrator, check: &str, active: bool) -> anyhow::Result<()> {
    for _ in 0..300 {
        let alerts = orchestrator.alerts(true).await?;
        let found = alerts.iter().find(|a| a.check_id.ends_with(check));
        match (found, active) {
            (Some(a), true) => {
                println!(
                    "alert raised: {} [{}] {}",
                    a.alert_id,
                    a.severity.as_str(),
                    a.message
                );
                return Ok(());
            }
            (None, false) => {
                println!("no alert on {check}");
                return Ok(());
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    bail!(
        "the alert on {check} did not become {}",
        if active { "active" } else { "clear" }
    )
}

/// The node's `/metrics` line of the custom gauge.
async fn show_gauge(node: &LoadGenerator) -> anyhow::Result<()> {
    let url = node.url().join("metrics")?;
    let mut resp = awc::Client::default()
        .get(url.as_str())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    let body = resp.body().await.context("the node's /metrics")?;
    let text = String::from_utf8_lossy(&body);
    for line in text
        .lines()
        .filter(|l| l.contains(METRIC) && !l.starts_with('#'))
    {
        println!("node /metrics: {line}");
    }
    Ok(())
}

/// Listens on `addr` again.
fn rebind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(16)?;
    Ok(socket.into())
}
