//! [`NodeMonitor`]: a node's health, from code.

use std::sync::Arc;

use super::Error;
use crate::actors::node_monitor::NodeMonitor as MonitorActor;
use crate::actors::registry::Slot;
use crate::health::HealthReport;
use crate::health::code::CodeCheck;
use crate::health::custom::CustomMetric;
use crate::messages::health::{GetLocalHealth, MetricRefused, RegisterCheck, SetCustomMetric};
use crate::validate::FieldErrors;

/// A node's health monitor: its checks run every `health_monitoring.check_interval`, and a
/// check failing `health_monitoring.alert_threshold` rounds in a row raises an alert, which
/// the orchestrator shows (`/api/alerts`, the event stream, `/metrics`) until it clears. Add
/// checks of your own (an async function) and custom metrics with warning and critical
/// levels; they count in the node's status and health score like the configured checks.
///
/// ```no_run
/// # async fn f(node: &mcp_testing::LoadGenerator) -> Result<(), mcp_testing::embed::Error> {
/// use mcp_testing::embed::{CodeCheck, CustomMetric};
/// let monitor = node.monitor();
/// monitor
///     .register_check(CodeCheck::new("database", || async {
///         Ok::<_, String>("connected".to_string())
///     }))
///     .await?;
/// monitor
///     .set_metric(CustomMetric {
///         name: "queue_depth".into(),
///         value: 42.0,
///         unit: Some("jobs".into()),
///         warning: Some(50.0),
///         critical: Some(100.0),
///         higher_is_worse: true,
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NodeMonitor {
    slot: Arc<Slot<MonitorActor>>,
}

impl NodeMonitor {
    pub(crate) fn of(slot: Arc<Slot<MonitorActor>>) -> NodeMonitor {
        NodeMonitor { slot }
    }

    fn addr(&self) -> Result<actix::Addr<MonitorActor>, Error> {
        super::live(&self.slot, "node monitor")
    }

    /// Adds a check that runs `check`'s probe (its id: `code:<name>`); a check of the same
    /// name is replaced.
    pub async fn register_check(&self, check: CodeCheck) -> Result<(), Error> {
        check.validate().map_err(Error::Invalid)?;
        self.addr()?
            .send(RegisterCheck(check))
            .await?
            .map_err(Error::Refused)
    }

    /// Sets a custom metric's latest value and levels (its check id: `metric:<name>`), as
    /// `POST /health/metrics` on the node does; validated the same way.
    pub async fn set_metric(&self, metric: CustomMetric) -> Result<(), Error> {
        // JSON has no NaN or infinity: say so before the round trip makes them missing.
        let mut fields = crate::validate::FieldErrors::default();
        let levels = [("warning", metric.warning), ("critical", metric.critical)];
        let numbers = [("value", Some(metric.value))].into_iter().chain(levels);
        for (field, x) in numbers {
            if x.is_some_and(|x| !x.is_finite()) {
                fields.push(
                    field,
                    format!("must be a finite number, got {}", x.unwrap_or(0.0)),
                );
            }
        }
        if !fields.is_empty() {
            return Err(Error::Invalid(fields));
        }
        let json = serde_json::to_value(&metric).expect("a metric serializes");
        let metric = CustomMetric::from_json(&json).map_err(Error::Invalid)?;
        match self.addr()?.send(SetCustomMetric(metric)).await? {
            Ok(()) => Ok(()),
            Err(MetricRefused::Full(why)) => Err(Error::Refused(why)),
            Err(MetricRefused::NameTaken(why)) => {
                Err(Error::Invalid(FieldErrors::one("name", why)))
            }
        }
    }

    /// The node's latest health report (`None` before its first round ends).
    pub async fn health(&self) -> Result<Option<HealthReport>, Error> {
        Ok(self.addr()?.send(GetLocalHealth).await?)
    }
}
