//! Prometheus metrics, served at `GET /metrics` in the Prometheus text format 0.0.4.
//!
//! **Where series live.** Each process serves only what it alone knows, so a Prometheus that
//! scrapes the orchestrator and every node (`deploy/prometheus.yml`) and sums across jobs never
//! counts a thing twice:
//! - the orchestrator serves `mcp_orchestrator_*` ([`OrchestratorMetrics`]): executions and the
//!   tasks in them, and the nodes joined to it;
//! - each node serves `mcp_load_generator_*` and `mcp_node_*` ([`NodeMetrics`]), every series
//!   labelled `node_id`: the requests its workers completed and the node's health.
//!
//! The orchestrator never re-serves the load figures it merges from the nodes' windows. The one
//! exception proves the rule: a standalone process (`mcpt up`) runs its node in process, with
//! no node endpoint to scrape, so its orchestrator's `/metrics` carries that node's series too
//! ([`OrchestratorMetrics::include_node`]).
//!
//! **Cost.** Counters and gauges are atomics; the node's figures are added once per metric
//! window (one per second per task), never per request; a scrape only reads atomics and formats
//! a few dozen lines.
//!
//! **Counters.** prometheus-client's own `Counter` writes OpenMetrics (`# TYPE x counter` above
//! a sample `x_total`), which the 0.0.4 format and `promtool check metrics` read as an untyped
//! `x_total`. Counters here are [`Total`]s, whose `TYPE` line names the sample itself. Their
//! names end in `_total` as Prometheus recommends, except the three the spec names otherwise
//! (`mcp_orchestrator_tasks_completed`, `mcp_orchestrator_tasks_failed`,
//! `mcp_load_generator_total_requests`): dashboards written from the spec query those names, so
//! they are served as named (promtool's linter flags the missing suffix on them, nothing else).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hdrhistogram::Histogram;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::execution::State;

/// The `Content-Type` of a `/metrics` answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the request-duration buckets in microseconds, 1 ms to 10 s (the `+Inf`
/// bucket comes after them).
pub const LATENCY_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Buckets: one per bound, then `+Inf`.
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A monotonic counter, served under its own name.
#[derive(Debug, Default, Clone)]
pub struct Total(Arc<AtomicU64>);

impl Total {
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for Total {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Total {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The gauge encoder writes the sample under the family's name, with no suffix.
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A gauge that is not served until it has been set (a health score of 0 before the first
/// health report would read as a dying node).
#[derive(Debug, Clone)]
pub struct Reading(Arc<AtomicU64>);

impl Default for Reading {
    fn default() -> Self {
        Reading(Arc::new(AtomicU64::new(f64::NAN.to_bits())))
    }
}

impl Reading {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// `None` until set.
    pub fn get(&self) -> Option<f64> {
        Some(f64::from_bits(self.0.load(Ordering::Relaxed))).filter(|v| !v.is_nan())
    }
}

impl TypedMetric for Reading {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for Reading {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get().unwrap_or(0.0))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.get().is_none()
    }
}

/// An HDR histogram's content in the request-duration buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyBuckets {
    /// Values per bucket (not cumulative): one per [`LATENCY_BOUNDS_US`] entry, then `+Inf`.
    pub counts: [u64; BUCKETS],
    /// The sum of the values, in microseconds.
    pub sum_us: u64,
}

impl LatencyBuckets {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Sorts an HDR histogram of microseconds into the request-duration buckets. Each HDR bucket
/// goes whole under the first bound that its highest equivalent value does not exceed (so no
/// request is counted faster than it may have been; the error is HDR's resolution, 0.1% at 3
/// significant digits); the sum adds each HDR bucket's median equivalent, as HDR's mean does.
pub fn latency_buckets(h: &Histogram<u64>) -> LatencyBuckets {
    let mut b = LatencyBuckets::default();
    for v in h.iter_recorded() {
        let n = v.count_at_value();
        let top = v.value_iterated_to();
        let i = LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| top <= bound)
            .unwrap_or(BUCKETS - 1);
        b.counts[i] += n;
        b.sum_us = b
            .sum_us
            .saturating_add(h.median_equivalent(top).saturating_mul(n));
    }
    b
}

/// A request-duration histogram fed with [`LatencyBuckets`], served in seconds.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram(Arc<LatencyCells>);

#[derive(Debug, Default)]
struct LatencyCells {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    pub fn add(&self, b: &LatencyBuckets) {
        for (cell, n) in self.0.counts.iter().zip(b.counts) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
        self.0.sum_us.fetch_add(b.sum_us, Ordering::Relaxed);
    }

    /// What has been added so far.
    pub fn get(&self) -> LatencyBuckets {
        LatencyBuckets {
            counts: std::array::from_fn(|i| self.0.counts[i].load(Ordering::Relaxed)),
            sum_us: self.0.sum_us.load(Ordering::Relaxed),
        }
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let b = self.get();
        // `_count` from the buckets read, so it always equals the `+Inf` bucket.
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(b.counts)
            .collect();
        encoder.encode_histogram::<NoLabelSet>(b.sum_us as f64 / 1e6, b.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One label.
type Label = [(&'static str, &'static str); 1];

/// The orchestrator's series. Shared (`Arc`) through the orchestrator's
/// [`Registry`](crate::actors::registry::Registry), so they outlive a restart of the orchestrator actor.
#[derive(Debug)]
pub struct OrchestratorMetrics {
    registry: Registry,
    /// Executions not in a final state yet: pending, planning or running.
    active: Gauge,
    /// Nodes connected now.
    nodes: Gauge,
    /// Tasks of executions that ended `completed` or `completed_degraded`.
    tasks_completed: Total,
    /// Tasks of executions that ended `failed` or `cancelled`.
    tasks_failed: Total,
    /// Executions by the final state they reached.
    ended: Family<Label, Total>,
    /// Seconds from start to end, averaged over the executions that ended and had started.
    average_time: Reading,
    /// Its sum of seconds and count.
    times: std::sync::Mutex<(f64, u64)>,
    /// Connected nodes by health status (the health monitor's, read at each scrape).
    healthy: Gauge,
    warning: Gauge,
    failed: Gauge,
    /// A standalone process's in-process node.
    local_node: OnceLock<Arc<NodeMetrics>>,
}

impl Default for OrchestratorMetrics {
    fn default() -> Self {
        OrchestratorMetrics::new()
    }
}

impl OrchestratorMetrics {
    pub fn new() -> OrchestratorMetrics {
        let mut registry = Registry::default();
        let (active, nodes) = (Gauge::default(), Gauge::default());
        let (tasks_completed, tasks_failed) = (Total::default(), Total::default());
        let ended = Family::<Label, Total>::default();
        registry.register(
            "mcp_orchestrator_active_executions",
            "Executions not in a final state yet (pending, planning or running)",
            active.clone(),
        );
        registry.register(
            "mcp_orchestrator_total_nodes",
            "Nodes connected to the orchestrator",
            nodes.clone(),
        );
        registry.register(
            "mcp_orchestrator_tasks_completed",
            "Tasks of executions that ended completed or completed_degraded, counted when the execution ends",
            tasks_completed.clone(),
        );
        registry.register(
            "mcp_orchestrator_tasks_failed",
            "Tasks of executions that ended failed or cancelled, counted when the execution ends",
            tasks_failed.clone(),
        );
        registry.register(
            "mcp_orchestrator_executions_ended_total",
            "Executions that reached a final state, by that state",
            ended.clone(),
        );
        let average_time = Reading::default();
        registry.register(
            "mcp_orchestrator_average_execution_time_seconds",
            "Seconds from start to end, averaged over the executions that ended (since the orchestrator started)",
            average_time.clone(),
        );
        let (healthy, warning, failed) = (Gauge::default(), Gauge::default(), Gauge::default());
        for (name, help, g) in [
            (
                "mcp_orchestrator_healthy_nodes",
                "Nodes whose health is healthy",
                &healthy,
            ),
            (
                "mcp_orchestrator_warning_nodes",
                "Nodes whose health is warning",
                &warning,
            ),
            (
                "mcp_orchestrator_failed_nodes",
                "Nodes whose health is critical or that are unreachable",
                &failed,
            ),
        ] {
            registry.register(name, help, g.clone());
        }
        for s in [
            State::Completed,
            State::CompletedDegraded,
            State::Failed,
            State::Cancelled,
        ] {
            let _ = ended.get_or_create(&[("state", s.as_str())]);
        }
        OrchestratorMetrics {
            registry,
            active,
            nodes,
            tasks_completed,
            tasks_failed,
            ended,
            average_time,
            times: std::sync::Mutex::new((0.0, 0)),
            healthy,
            warning,
            failed,
            local_node: OnceLock::new(),
        }
    }

    /// The gauges, as the orchestrator counts them.
    pub fn set_gauges(&self, active_executions: usize, connected_nodes: usize) {
        self.active.set(active_executions as i64);
        self.nodes.set(connected_nodes as i64);
    }

    /// The cluster's nodes by health status.
    pub fn set_node_health(&self, healthy: usize, warning: usize, failed: usize) {
        self.healthy.set(healthy as i64);
        self.warning.set(warning as i64);
        self.failed.set(failed as i64);
    }

    /// Seconds from start to end, averaged over the executions that ended; `None` before one.
    pub fn average_execution_time(&self) -> Option<f64> {
        self.average_time.get()
    }

    /// An execution of `tasks` tasks reached its final `state` after running `ran_s` seconds
    /// (`None`: it never started). Call it once per execution: when its state first becomes
    /// final.
    pub fn execution_ended(&self, state: State, tasks: usize, ran_s: Option<f64>) {
        if let (true, Some(ran)) = (state.is_terminal(), ran_s) {
            let mut t = self.times.lock().unwrap_or_else(|e| e.into_inner());
            t.0 += ran;
            t.1 += 1;
            self.average_time.set(t.0 / t.1 as f64);
        }
        match state {
            State::Completed | State::CompletedDegraded => {
                self.tasks_completed.inc_by(tasks as u64)
            }
            State::Failed | State::Cancelled => self.tasks_failed.inc_by(tasks as u64),
            State::Pending | State::Planning | State::Running => return,
        }
        self.ended
            .get_or_create(&[("state", state.as_str())])
            .inc_by(1);
    }

    /// Tasks of executions that ended completed (or degraded), and failed (or cancelled).
    pub fn task_counts(&self) -> (u64, u64) {
        (self.tasks_completed.get(), self.tasks_failed.get())
    }

    /// Serves `node`'s series beside the orchestrator's (a standalone process's own node).
    pub fn include_node(&self, node: Arc<NodeMetrics>) {
        let _ = self.local_node.set(node);
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
        if let Some(node) = self.local_node.get() {
            prometheus_client::encoding::text::encode_registry(&mut out, &node.registry)?;
        }
        Ok(out)
    }
}

mod node;
pub use node::{MAX_REQUEST_LABELS, NodeMetrics};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthReport;
    use crate::stats::new_histogram;
    use crate::stats::request::RequestNames;
    use crate::stats::{ErrorKind, Window};

    #[test]
    fn hdr_values_land_in_their_buckets() {
        let mut h = new_histogram();
        // 1 ms exactly is in the 1 ms bucket; a microsecond more is not.
        h.record_n(1_000, 3).unwrap();
        h.record(1_001).unwrap();
        h.record(2_400).unwrap();
        h.record(9_990_000).unwrap();
        // 10 s exactly shares its HDR bucket with values up to 10.0024 s: it counts above.
        h.record(10_000_000).unwrap();
        h.record(600_000_000).unwrap();
        let b = latency_buckets(&h);
        let mut want = [0u64; BUCKETS];
        want[0] = 3; // <= 1 ms
        want[1] = 2; // <= 2.5 ms
        want[12] = 1; // <= 10 s
        want[13] = 2; // +Inf
        assert_eq!(b.counts, want);
        assert_eq!(b.count(), h.len());
        // The sum is exact to HDR's resolution.
        let exact: u64 = 3 * 1_000 + 1_001 + 2_400 + 9_990_000 + 10_000_000 + 600_000_000;
        let err = (b.sum_us as f64 - exact as f64).abs() / exact as f64;
        assert!(err < 1e-3, "sum {} against {exact}", b.sum_us);
        assert_eq!(latency_buckets(&new_histogram()), LatencyBuckets::default());
    }

    #[test]
    fn every_recorded_value_counts_once_and_bounds_hold() {
        let mut h = new_histogram();
        for us in (1..20_000_000u64).step_by(7_919) {
            h.record(us).unwrap();
        }
        let b = latency_buckets(&h);
        assert_eq!(b.count(), h.len());
        // Cumulative counts against HDR's own count at or below each bound (an HDR bucket
        // that straddles a bound goes above it).
        let mut cum = 0;
        for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
            cum += b.counts[i];
            let at_most = h
                .iter_recorded()
                .filter(|v| v.value_iterated_to() <= *bound)
                .map(|v| v.count_at_value())
                .sum::<u64>();
            assert_eq!(cum, at_most, "le {bound} us");
        }
    }

    #[test]
    fn custom_metrics_are_gauges_by_name() {
        let m = NodeMetrics::new("n-1");
        let metric = |name: &str, value: f64| crate::health::custom::CustomMetric {
            name: name.into(),
            value,
            unit: None,
            warning: None,
            critical: Some(10.0),
            higher_is_worse: true,
        };
        let report = HealthReport {
            node_id: "n-1".into(),
            at_ms: 1,
            sample: crate::health::Sample::default(),
            checks: vec![metric("queue", 12.5).check(), metric("lag", 3.0).check()],
            status: crate::health::Status::Critical,
            score: 75.0,
            alerts: Vec::new(),
            capacity: Default::default(),
        };
        m.observe_health(&report);
        let text = m.encode().unwrap();
        assert!(
            text.contains("# TYPE mcp_node_custom_metric gauge\n"),
            "{text}"
        );
        let line = "mcp_node_custom_metric{node_id=\"n-1\",name=\"queue\"} 12.5\n";
        assert!(text.contains(line), "{text}");
        assert!(text.contains("name=\"lag\"} 3.0\n"), "{text}");
    }

    #[test]
    fn node_series_carry_the_node_id_and_serve_counters_by_their_sample_name() {
        let m = NodeMetrics::new("n-1");
        let text = m.encode().unwrap();
        assert!(text.contains("# TYPE mcp_load_generator_total_requests counter\n"));
        assert!(text.contains("mcp_load_generator_total_requests{node_id=\"n-1\"} 0\n"));
        assert!(
            !text.contains("mcp_node_health_score"),
            "no health before a report"
        );
        let mut w = Window::new(0);
        let outcome = crate::stats::Outcome {
            status: Some(500),
            error: Some(crate::stats::ErrorKind::Status),
            bytes: 0,
            slow: false,
            handshake: None,
            ..crate::stats::Outcome::default()
        };
        let ms = std::time::Duration::from_millis(3);
        w.record(&outcome, ms, ms);
        let refused = crate::stats::Outcome {
            status: None,
            error: Some(crate::stats::ErrorKind::Tls),
            handshake: Some(crate::stats::Handshake::Resumed),
            ..outcome.clone()
        };
        w.record(&refused, ms, ms);
        m.record(&w, &RequestNames::default());
        let text = m.encode().unwrap();
        assert!(text.contains("mcp_load_generator_total_requests{node_id=\"n-1\"} 2\n"));
        assert!(text.contains("kind=\"status\"} 1\n"), "{text}");
        assert!(
            text.contains("mcp_load_generator_errors_total{node_id=\"n-1\",kind=\"tls\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "mcp_load_generator_tls_handshakes_total{node_id=\"n-1\",kind=\"resumed\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "mcp_load_generator_request_duration_seconds_bucket{node_id=\"n-1\",le=\"0.005\"} 2\n"
        ));
    }

    /// Per-request series carry the name as `request`; past the cap, names share `(other)`.
    #[test]
    fn request_names_label_their_own_series_up_to_the_cap() {
        let m = NodeMetrics::new("n-1");
        let many: Vec<String> = (0..MAX_REQUEST_LABELS + 3)
            .map(|i| format!("r{i}"))
            .collect();
        let failed = crate::stats::Outcome {
            status: Some(500),
            error: Some(ErrorKind::Status),
            ..crate::stats::Outcome::default()
        };
        let ms = std::time::Duration::from_millis(30);
        for chunk in many.chunks(7) {
            // Each task names its own requests; the process's cap spans them all.
            let names = RequestNames::new(chunk.iter().map(|n| (n.as_str(), "GET")));
            let mut w = Window::new(0);
            for slot in 0..chunk.len() {
                w.record_request(slot, &failed, ms, ms);
            }
            m.record(&w, &names);
        }
        let text = m.encode().unwrap();
        assert!(
            text.contains(
                "mcp_load_generator_requests_by_name_total{node_id=\"n-1\",request=\"r0\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "mcp_load_generator_request_errors_by_name_total{node_id=\"n-1\",request=\"r5\",kind=\"status\"} 1\n"
        ));
        assert!(text.contains(
            "mcp_load_generator_request_duration_by_name_seconds_bucket{node_id=\"n-1\",le=\"0.05\",request=\"r9\"} 1\n"
        ));
        assert!(text.contains(
            "mcp_load_generator_requests_by_name_total{node_id=\"n-1\",request=\"(other)\"} 3\n"
        ));
        let labels = text
            .lines()
            .filter(|l| l.starts_with("mcp_load_generator_requests_by_name_total{"))
            .count();
        assert_eq!(labels, MAX_REQUEST_LABELS + 1);
    }

    #[test]
    fn tasks_count_by_final_state() {
        let m = OrchestratorMetrics::new();
        assert_eq!(m.average_execution_time(), None);
        m.execution_ended(State::Completed, 2, Some(10.0));
        m.execution_ended(State::CompletedDegraded, 1, Some(20.0));
        m.execution_ended(State::Cancelled, 3, None);
        m.execution_ended(State::Running, 5, Some(99.0));
        assert_eq!(m.average_execution_time(), Some(15.0));
        assert_eq!(m.tasks_completed.get(), 3);
        assert_eq!(m.tasks_failed.get(), 3);
        let text = m.encode().unwrap();
        assert!(text.contains("mcp_orchestrator_executions_ended_total{state=\"completed\"} 1\n"));
        assert!(text.contains("mcp_orchestrator_executions_ended_total{state=\"failed\"} 0\n"));
        assert!(
            text.contains("mcp_orchestrator_average_execution_time_seconds 15.0\n"),
            "{text}"
        );
    }
}
