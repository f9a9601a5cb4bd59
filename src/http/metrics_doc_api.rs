//! `GET /api/metrics`: the spec's metrics document (its "Monitoring" section) from live
//! figures: the orchestrator's executions and tasks, the load the executions it holds
//! generated, the nodes' resource use and their health. Schema:
//! `schemas/metrics.schema.json`. The same figures are on `/metrics` for Prometheus.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::execution::{ExecutionView, State};
use crate::health::Sample;
use crate::health::cluster::ClusterHealth;
use crate::http::api::{ApiState, unavailable};
use crate::http::error::{ApiError, ErrorBody};
use crate::messages::cluster::{ListExecutions, ListNodes};
use crate::messages::health::GetNodeHealth;

/// The spec's metrics document.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricsDocument {
    pub orchestrator: OrchestratorFigures,
    pub load_generation: LoadFigures,
    pub resource_utilization: ResourceFigures,
    pub node_health: NodeHealthFigures,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrchestratorFigures {
    /// Executions not in a final state (pending, planning, running).
    pub active_executions: usize,
    /// Nodes connected now.
    pub total_nodes: usize,
    /// Tasks of executions that ended completed or completed_degraded, since the start.
    pub tasks_completed: u64,
    /// Tasks of executions that ended failed or cancelled, since the start.
    pub tasks_failed: u64,
    /// Seconds from start to end, averaged over the executions that ended since the
    /// orchestrator started (`mcp_orchestrator_average_execution_time_seconds`); 0 before one.
    pub average_execution_time: f64,
}

/// Over the executions the orchestrator holds (running and the newest finished ones).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LoadFigures {
    /// Requests completed.
    pub total_requests: u64,
    /// The running executions' latest merged second, summed.
    pub requests_per_second: f64,
    /// Mean latency from the planned start, milliseconds, over every request counted.
    pub average_response_time: f64,
    /// Errors over completed requests.
    pub error_rate: f64,
}

/// Averages over the connected nodes' latest health samples.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResourceFigures {
    /// Percent of all cores.
    pub cpu_usage: f64,
    /// Percent of memory.
    pub memory_usage: f64,
    /// Bytes per second received and sent, all nodes together (the spec's percentage needs a
    /// link speed no node knows).
    pub network_usage: f64,
    /// Percent of the data disk.
    pub disk_usage: f64,
    /// The samples these come from.
    pub nodes_sampled: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeHealthFigures {
    pub healthy_nodes: usize,
    pub warning_nodes: usize,
    pub failed_nodes: usize,
    /// The mean score of the nodes that have one, 0 to 100.
    pub average_health_score: f64,
}

/// The document from what the orchestrator, its metrics and its health monitor hold.
pub fn document(
    executions: &[ExecutionView],
    connected: usize,
    tasks: (u64, u64),
    average_time: Option<f64>,
    samples: &[Sample],
    cluster: Option<&ClusterHealth>,
) -> MetricsDocument {
    let (mut total, mut errors, mut latency_sum, mut rps) = (0, 0, 0.0, 0.0);
    for e in executions {
        for t in &e.tasks {
            let f = &t.figures;
            total += f.completed;
            errors += f.errors;
            latency_sum += f.latency_ms.mean * f.completed as f64;
            if e.state == State::Running {
                rps += f.last_second.as_ref().map_or(0.0, |p| p.completed as f64);
            }
        }
    }
    let mean = |xs: &[f64]| {
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    let over = |n: f64, d: u64| if d == 0 { 0.0 } else { n / d as f64 };
    let of = |f: fn(&Sample) -> f64| mean(&samples.iter().map(f).collect::<Vec<_>>());
    MetricsDocument {
        orchestrator: OrchestratorFigures {
            active_executions: executions.iter().filter(|e| !e.state.is_terminal()).count(),
            total_nodes: connected,
            tasks_completed: tasks.0,
            tasks_failed: tasks.1,
            average_execution_time: average_time.unwrap_or(0.0),
        },
        load_generation: LoadFigures {
            total_requests: total,
            requests_per_second: rps,
            average_response_time: over(latency_sum, total),
            error_rate: over(errors as f64, total),
        },
        resource_utilization: ResourceFigures {
            cpu_usage: of(|s| s.cpu_percent),
            memory_usage: of(|s| s.memory_percent),
            network_usage: samples
                .iter()
                .map(|s| s.net_rx_bytes_per_s + s.net_tx_bytes_per_s)
                .sum(),
            disk_usage: of(|s| s.disk_percent),
            nodes_sampled: samples.len(),
        },
        node_health: NodeHealthFigures {
            healthy_nodes: cluster.map_or(0, |c| c.healthy),
            warning_nodes: cluster.map_or(0, |c| c.warning),
            failed_nodes: cluster.map_or(0, |c| c.failed),
            average_health_score: cluster.map_or(0.0, |c| c.average_score),
        },
    }
}

/// The spec's metrics document, from live figures (schema `schemas/metrics.schema.json`).
#[utoipa::path(
    get,
    path = "/api/metrics",
    tag = "cluster",
    responses(
        (status = 200, description = "The metrics document", body = MetricsDocument),
        (status = 503, description = "The orchestrator is restarting", body = ErrorBody),
    )
)]
pub(crate) async fn metrics(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let orch = state.orchestrator()?;
    let executions = orch.send(ListExecutions).await.map_err(unavailable)?;
    let nodes = orch.send(ListNodes).await.map_err(unavailable)?;
    let connected: Vec<String> = nodes
        .iter()
        .filter(|n| n.state == "connected")
        .map(|n| n.node_id.clone())
        .collect();
    let monitor = state.registry.health.get();
    let mut samples = Vec::new();
    let mut cluster = None;
    if let Some(m) = monitor {
        for id in &connected {
            if let Ok(Some(detail)) = m.send(GetNodeHealth(id.clone())).await
                && let Some(report) = detail.report
            {
                samples.push(report.sample);
            }
        }
        cluster = crate::http::health_api::cluster_health(&state).await.ok();
    }
    let metrics = &state.registry.metrics;
    Ok(HttpResponse::Ok().json(document(
        &executions,
        connected.len(),
        metrics.task_counts(),
        metrics.average_execution_time(),
        &samples,
        cluster.as_ref(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With nothing yet (no execution, no node, no health monitor), every figure is 0, not
    /// a division by zero.
    #[test]
    fn nothing_yet_is_all_zeros() {
        let d = document(&[], 0, (0, 0), None, &[], None);
        let v = serde_json::to_value(&d).unwrap();
        for (section, figures) in v.as_object().unwrap() {
            for (k, x) in figures.as_object().unwrap() {
                assert_eq!(x.as_f64(), Some(0.0), "{section}.{k}");
            }
        }
    }
}
