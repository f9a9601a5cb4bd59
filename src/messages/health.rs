//! Messages of health monitoring: from a node's `NodeMonitor` (to whoever it reports to, the
//! node's agent, which forwards the report over the cluster link), to the `NodeMonitor` (the
//! node's REST API), and to the orchestrator's `HealthMonitor` (from the cluster side and the
//! REST API), plus the `HealthEvent`s the `HealthMonitor` publishes.

use actix::prelude::*;
use serde::Serialize;

pub use crate::health::cluster::{HealthChange, NodeHealthDetail};
use crate::health::{Alert, ClusterHealth, HealthReport};

// ---- from and to the NodeMonitor ----

/// A node's report of one round of checks, once per `health_monitoring.check_interval`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct NodeHealthSampled(pub HealthReport);

/// The node's latest report (`None` before the first round ends).
#[derive(Debug, Message)]
#[rtype(result = "Option<HealthReport>")]
pub struct GetLocalHealth;

/// Sets a custom metric's latest value and levels on the node (see
/// [`crate::health::custom`]); refused, saying why, when the node already keeps
/// [`crate::health::custom::MAX_CUSTOM_METRICS`] other metrics or the name is taken.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), MetricRefused>")]
pub struct SetCustomMetric(pub crate::health::custom::CustomMetric);

/// Why a node did not keep a custom metric.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricRefused {
    /// It keeps [`crate::health::custom::MAX_CUSTOM_METRICS`] others.
    #[error("{0}")]
    Full(String),
    /// The name is that of one of its `prometheus` checks: both would be one gauge,
    /// `mcp_node_custom_metric{name}`, for two values.
    #[error("{0}")]
    NameTaken(String),
}

/// Adds a check registered from code to the node's checks (or replaces the code check of the
/// same name); refused, with the reason, past [`crate::actors::node_monitor::MAX_CODE_CHECKS`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), String>")]
pub struct RegisterCheck(pub crate::health::code::CodeCheck);

// ---- to the HealthMonitor ----

/// A node's report, as it arrived over the cluster link.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct NodeHealthUpdate(pub HealthReport);

/// A node's link came up (`reachable`) or the node was declared failed. Only this message
/// changes a node's reachability: a report from a node marked unreachable does not revive
/// it. Unreachable raises a critical `reachability` alert at once; reachable again clears it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct NodeReachability {
    pub node_id: String,
    pub reachable: bool,
}

/// A node left the cluster or was forgotten (failed past `service_discovery.service_timeout`,
/// or `DELETE /api/nodes/{id}`): its alerts are cleared and it no longer counts.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ForgetNodeHealth(pub String);

/// From now on, publish changes to this recipient (the event bus, after it was rebuilt).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetHealthSink(pub Recipient<HealthEvent>);

/// The cluster's health.
#[derive(Debug, Message)]
#[rtype(result = "ClusterHealth")]
pub struct GetClusterHealth;

/// One node's health; `None` for a node the monitor never heard of.
#[derive(Debug, Message)]
#[rtype(result = "Option<NodeHealthDetail>")]
pub struct GetNodeHealth(pub String);

/// Alerts: the active ones (newest raised first), then, unless `active_only`, the recently
/// cleared ones (newest cleared first).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Alert>")]
pub struct GetAlerts {
    pub active_only: bool,
}

// ---- from the HealthMonitor ----

/// A change the `HealthMonitor` publishes (for the live event stream): a node's status
/// changed, an alert was raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Message)]
#[rtype(result = "()")]
#[serde(transparent)]
pub struct HealthEvent(pub HealthChange);
