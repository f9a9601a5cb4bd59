//! A node's series (`mcp_load_generator_*`, `mcp_node_*`), each labelled with its `node_id`:
//! its workers' windows, its health readings, its custom metrics.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Label, LatencyHistogram, Reading, Total, latency_buckets};
use crate::health::HealthReport;
use crate::stats::request::RequestNames;
use crate::stats::{ErrorKind, Window};

/// A node's series, each labelled with its `node_id`. Shared (`Arc`) by the node's agent,
/// which adds its workers' windows and the health reports, and its REST API, which serves them.
#[derive(Debug)]
pub struct NodeMetrics {
    pub(super) registry: Registry,
    requests: Total,
    errors: Family<Label, Total>,
    handshakes: Family<Label, Total>,
    duration: LatencyHistogram,
    readings: HealthReadings,
    /// `mcp_node_custom_metric{name}`: the custom metrics' latest values (pushed ones and the
    /// prometheus checks' series).
    custom: CustomFamily,
    by_request: ByRequest,
}

/// A node's latest health sample and score, each a gauge not served before the first report.
#[derive(Debug, Default)]
struct HealthReadings {
    cpu: Reading,
    memory: Reading,
    disk: Reading,
    net_rx: Reading,
    net_tx: Reading,
    health: Reading,
}

impl HealthReadings {
    fn register(registry: &mut Registry) -> HealthReadings {
        let r = HealthReadings::default();
        for (name, help, reading) in [
            (
                "mcp_node_cpu_usage",
                "CPU use of all cores together, percent (latest health sample)",
                &r.cpu,
            ),
            (
                "mcp_node_memory_usage",
                "Memory in use, percent (latest health sample)",
                &r.memory,
            ),
            (
                "mcp_node_disk_usage",
                "Data disk in use, percent (latest health sample)",
                &r.disk,
            ),
            (
                "mcp_node_network_receive_bytes_per_second",
                "Bytes received per second, all interfaces (latest health sample)",
                &r.net_rx,
            ),
            (
                "mcp_node_network_transmit_bytes_per_second",
                "Bytes sent per second, all interfaces (latest health sample)",
                &r.net_tx,
            ),
            (
                "mcp_node_health_score",
                "Health score, 0 to 100 (latest health report)",
                &r.health,
            ),
        ] {
            registry.register(name, help, reading.clone());
        }
        r
    }

    fn observe(&self, r: &HealthReport) {
        self.cpu.set(r.sample.cpu_percent);
        self.memory.set(r.sample.memory_percent);
        self.disk.set(r.sample.disk_percent);
        self.net_rx.set(r.sample.net_rx_bytes_per_s);
        self.net_tx.set(r.sample.net_tx_bytes_per_s);
        self.health.set(r.score);
    }
}

/// The per-request series: `request`-labelled copies of the request count, the errors by kind
/// and the latency histogram. At most [`MAX_REQUEST_LABELS`] distinct names per process (a
/// node runs many tasks in its life); later names count under `(other)`.
#[derive(Debug, Default)]
struct ByRequest {
    requests: Family<[(&'static str, String); 1], Total>,
    errors: Family<[(&'static str, String); 2], Total>,
    duration: Family<[(&'static str, String); 1], LatencyHistogram>,
    names: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The most distinct `request` label values a process serves.
pub const MAX_REQUEST_LABELS: usize = 100;

impl ByRequest {
    /// The label value of `name`: itself while the cap allows, else `(other)`. A label seen
    /// for the first time gets its error series at 0, one per kind, as the node's errors do.
    fn label(&self, name: &str) -> String {
        let label = {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            if names.contains(name) || names.len() < MAX_REQUEST_LABELS {
                names.insert(name.to_string());
                name.to_string()
            } else {
                crate::stats::request::OTHER.to_string()
            }
        };
        let first = [("request", label.clone()), ("kind", "connect".to_string())];
        if self.errors.get(&first).is_none() {
            for kind in ErrorKind::ALL {
                let _ = self
                    .errors
                    .get_or_create(&[("request", label.clone()), ("kind", kind.name().into())]);
            }
        }
        label
    }

    fn record(&self, w: &Window, names: &RequestNames) {
        for (slot, r) in w.requests.iter().enumerate() {
            let (Some(r), Some(name)) = (r, names.names.get(slot)) else {
                continue;
            };
            let label = self.label(&name.name);
            self.requests
                .get_or_create(&[("request", label.clone())])
                .inc_by(r.completed);
            for kind in ErrorKind::ALL {
                let n = r.errors.of(kind);
                if n > 0 {
                    self.errors
                        .get_or_create(&[("request", label.clone()), ("kind", kind.name().into())])
                        .inc_by(n);
                }
            }
            self.duration
                .get_or_create(&[("request", label)])
                .add(&latency_buckets(&r.corrected));
        }
    }
}

impl NodeMetrics {
    pub fn new(node_id: &str) -> NodeMetrics {
        let mut registry = Registry::with_labels(std::iter::once((
            Cow::Borrowed("node_id"),
            Cow::Owned(node_id.to_string()),
        )));
        let requests = Total::default();
        let errors = Family::<Label, Total>::default();
        let handshakes = Family::<Label, Total>::default();
        let duration = LatencyHistogram::default();
        registry.register(
            "mcp_load_generator_total_requests",
            "Requests this node completed (successes and failures)",
            requests.clone(),
        );
        registry.register(
            "mcp_load_generator_errors_total",
            "Failed requests of this node, by kind (connect, timeout, status, body, tls, check)",
            errors.clone(),
        );
        registry.register(
            "mcp_load_generator_tls_handshakes_total",
            "TLS connections this node opened, by handshake (full, resumed)",
            handshakes.clone(),
        );
        registry.register(
            "mcp_load_generator_request_duration_seconds",
            "Request latency from the planned start (coordinated-omission corrected)",
            duration.clone(),
        );
        let by_request = ByRequest::default();
        registry.register(
            "mcp_load_generator_requests_by_name_total",
            "Requests this node completed, by request name (at most 100 names; then (other))",
            by_request.requests.clone(),
        );
        registry.register(
            "mcp_load_generator_request_errors_by_name_total",
            "Failed requests of this node, by request name and kind",
            by_request.errors.clone(),
        );
        registry.register(
            "mcp_load_generator_request_duration_by_name_seconds",
            "Request latency by request name, from the planned start (corrected)",
            by_request.duration.clone(),
        );
        let readings = HealthReadings::register(&mut registry);
        let custom = register_custom(&mut registry);
        for kind in ErrorKind::ALL {
            let _ = errors.get_or_create(&[("kind", kind.name())]);
        }
        for kind in HANDSHAKE_KINDS {
            let _ = handshakes.get_or_create(&[("kind", kind)]);
        }
        NodeMetrics {
            registry,
            requests,
            errors,
            handshakes,
            duration,
            readings,
            custom,
            by_request,
        }
    }

    /// Adds one metric window (a second of one task, merged across the node's workers), its
    /// per-request windows under `names`, the task's.
    pub fn record(&self, w: &Window, names: &RequestNames) {
        self.requests.inc_by(w.completed);
        self.by_request.record(w, names);
        for kind in ErrorKind::ALL {
            let n = w.errors.of(kind);
            if n > 0 {
                self.errors
                    .get_or_create(&[("kind", kind.name())])
                    .inc_by(n);
            }
        }
        let handshakes = [w.tls_handshakes_full, w.tls_handshakes_resumed];
        for (kind, n) in HANDSHAKE_KINDS.iter().zip(handshakes) {
            if n > 0 {
                self.handshakes.get_or_create(&[("kind", kind)]).inc_by(n);
            }
        }
        self.duration.add(&latency_buckets(&w.corrected));
    }

    /// Takes the node monitor's latest report.
    pub fn observe_health(&self, r: &HealthReport) {
        self.readings.observe(r);
        // Pushed metrics and prometheus checks. A check that read nothing (its application is
        // down, its series gone) has no series until it reads again: a value kept from before
        // would read as current.
        for c in &r.checks {
            let Some(name) = c.metric_name() else {
                continue;
            };
            let labels = [("name", name.to_string())];
            match c.value {
                Some(v) => {
                    self.custom.get_or_create(&labels).set(v);
                }
                None => {
                    self.custom.remove(&labels);
                }
            }
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
        Ok(out)
    }
}

type CustomFamily = Family<[(&'static str, String); 1], Gauge<f64, AtomicU64>>;

/// Registers `mcp_node_custom_metric{name}`.
fn register_custom(registry: &mut Registry) -> CustomFamily {
    let custom = CustomFamily::default();
    registry.register(
        "mcp_node_custom_metric",
        "Custom metrics of the node (pushed to POST /health/metrics, or read by a prometheus check), latest value, by name",
        custom.clone(),
    );
    custom
}

/// The `kind` label values of the TLS handshakes.
const HANDSHAKE_KINDS: [&str; 2] = ["full", "resumed"];
