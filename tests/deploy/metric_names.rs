//! The metric names the Grafana dashboard may query: the series `/metrics` serves. The deploy
//! test checks the dashboard against this list; `tests/metrics.rs` checks it against live
//! endpoints (issue 5).

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Series names, as Prometheus stores them: counters with their `_total` suffix; histograms
/// are queried through their `_bucket`, `_sum` and `_count` series. Labels: `node_id` on the
/// load and node metrics, `kind` (connect, timeout, status, body, tls, check) on the errors,
/// `request` (a request name, at most 100 per node) on the `_by_name` series.
pub const METRICS: &[(&str, MetricKind)] = &[
    ("mcp_orchestrator_active_executions", MetricKind::Gauge),
    ("mcp_orchestrator_total_nodes", MetricKind::Gauge),
    ("mcp_orchestrator_tasks_completed", MetricKind::Counter),
    ("mcp_orchestrator_tasks_failed", MetricKind::Counter),
    (
        "mcp_orchestrator_average_execution_time_seconds",
        MetricKind::Gauge,
    ),
    ("mcp_orchestrator_healthy_nodes", MetricKind::Gauge),
    ("mcp_orchestrator_warning_nodes", MetricKind::Gauge),
    ("mcp_orchestrator_failed_nodes", MetricKind::Gauge),
    ("mcp_load_generator_total_requests", MetricKind::Counter),
    ("mcp_load_generator_errors_total", MetricKind::Counter),
    (
        "mcp_load_generator_request_duration_seconds",
        MetricKind::Histogram,
    ),
    (
        "mcp_load_generator_requests_by_name_total",
        MetricKind::Counter,
    ),
    (
        "mcp_load_generator_request_errors_by_name_total",
        MetricKind::Counter,
    ),
    (
        "mcp_load_generator_request_duration_by_name_seconds",
        MetricKind::Histogram,
    ),
    ("mcp_node_cpu_usage", MetricKind::Gauge),
    ("mcp_node_memory_usage", MetricKind::Gauge),
    ("mcp_node_disk_usage", MetricKind::Gauge),
    (
        "mcp_node_network_receive_bytes_per_second",
        MetricKind::Gauge,
    ),
    (
        "mcp_node_network_transmit_bytes_per_second",
        MetricKind::Gauge,
    ),
    ("mcp_node_health_score", MetricKind::Gauge),
];
