//! `NodeMonitor`: a node's health (DESIGN §2, node process). Owns the sysinfo [`Sampler`], an
//! HTTP client for the custom checks, the [`AlertTracker`] and the latest [`HealthReport`];
//! supervises nothing. Every `health_monitoring.check_interval` (and once at start) it samples
//! the machine, evaluates the built-in checks, runs the custom checks concurrently, feeds the
//! alert rule and sends the report as `NodeHealthSampled` to the recipient it was given (the
//! node's agent, which forwards it to the orchestrator). A round whose checks are still
//! running when the next tick comes makes that tick skip. Takes: `GetLocalHealth`.

use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::join_all;

use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::health::checks::{self, check_ids};
use crate::health::sample::Sampler;
use crate::health::{
    self, AlertChange, AlertTracker, CheckKind, CheckResult, HealthReport, Sample, Status,
};
use crate::messages::health::{GetLocalHealth, NodeHealthSampled};
use crate::settings::Settings;

pub struct NodeMonitor {
    node_id: String,
    settings: Arc<Settings>,
    report_to: Recipient<NodeHealthSampled>,
    /// The error text when the machine's metrics cannot be read.
    sampler: Result<Sampler, String>,
    /// Made on the actor's arbiter when it starts (`awc::Client` is `!Send`).
    client: Option<awc::Client>,
    check_ids: Vec<String>,
    tracker: AlertTracker,
    latest: Option<HealthReport>,
    round_running: bool,
    supervisor: Option<Recipient<ChildExited>>,
}

impl NodeMonitor {
    pub fn new(
        node_id: impl Into<String>,
        settings: Arc<Settings>,
        report_to: Recipient<NodeHealthSampled>,
    ) -> NodeMonitor {
        let node_id = node_id.into();
        let sampler = Sampler::new().map_err(|e| {
            tracing::error!(error = %e, "node monitor runs without system metrics");
            e.to_string()
        });
        let h = &settings.health_monitoring;
        NodeMonitor {
            tracker: AlertTracker::new(node_id.clone(), h.alert_threshold),
            check_ids: check_ids(&h.checks),
            node_id,
            settings,
            report_to,
            sampler,
            client: None,
            latest: None,
            round_running: false,
            supervisor: None,
        }
    }

    /// Reports its exit to a supervisor.
    pub fn supervised(mut self, supervisor: Recipient<ChildExited>) -> NodeMonitor {
        self.supervisor = Some(supervisor);
        self
    }

    /// Starts a round: samples now, then runs the custom checks off the actor's turn.
    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.round_running {
            tracing::debug!(node = %self.node_id, "health checks still running; tick skipped");
            return;
        }
        let (sample, builtins) = self.builtins();
        let specs = &self.settings.health_monitoring.checks;
        if specs.is_empty() {
            self.finish(sample, builtins);
            return;
        }
        let client = self.client.get_or_insert_with(checks::http_client).clone();
        let runs: Vec<_> = specs
            .iter()
            .cloned()
            .zip(self.check_ids.iter().cloned())
            .map(|(spec, id)| {
                let client = client.clone();
                async move { checks::run(&client, &spec, id).await }
            })
            .collect();
        self.round_running = true;
        ctx.spawn(
            join_all(runs)
                .into_actor(self)
                .map(move |custom, act, _ctx| {
                    act.round_running = false;
                    let mut checks = builtins;
                    checks.extend(custom);
                    act.finish(sample, checks);
                }),
        );
    }

    /// The sample and the built-in checks; a `system` warning when metrics are unreadable.
    fn builtins(&mut self) -> (Sample, Vec<CheckResult>) {
        match &mut self.sampler {
            Ok(sampler) => {
                let s = sampler.sample();
                (
                    s,
                    health::evaluate(&s, &self.settings.health_monitoring.alert_thresholds),
                )
            }
            Err(why) => {
                let s = Sample {
                    at_ms: crate::clock::unix_ms(),
                    ..Sample::default()
                };
                let check = CheckResult {
                    check_id: "system".into(),
                    name: "system".into(),
                    kind: CheckKind::Builtin,
                    status: Status::Warning,
                    message: why.clone(),
                    value: None,
                };
                (s, vec![check])
            }
        }
    }

    /// Feeds the alert rule, builds the report, keeps it and sends it.
    fn finish(&mut self, sample: Sample, checks: Vec<CheckResult>) {
        let settings = &self.settings;
        for change in self.tracker.observe(sample.at_ms, &checks) {
            match change {
                AlertChange::Raised(a) => tracing::warn!(
                    alert = %a.alert_id, severity = a.severity.as_str(), message = %a.message,
                    failures = a.consecutive_failures, "health alert raised"
                ),
                AlertChange::Cleared(a) => {
                    tracing::info!(alert = %a.alert_id, "health alert cleared")
                }
            }
        }
        let thresholds = &settings.health_monitoring.alert_thresholds;
        let report = HealthReport {
            node_id: self.node_id.clone(),
            at_ms: sample.at_ms,
            status: health::worst(&checks),
            score: health::score(&checks, &sample, thresholds),
            capacity: health::capacity(
                &sample,
                &settings.node,
                settings.load_generation.max_concurrent_requests,
            ),
            sample,
            checks,
            alerts: self.tracker.active(),
        };
        tracing::debug!(
            node = %self.node_id, status = report.status.as_str(), score = report.score,
            alerts = report.alerts.len(), "health sampled"
        );
        self.latest = Some(report.clone());
        // Once per interval: a full mailbox loses this report, the next one follows.
        match self.report_to.try_send(NodeHealthSampled(report)) {
            Ok(()) => {}
            Err(SendError::Full(_)) => {
                tracing::warn!(node = %self.node_id, "health report dropped: recipient busy")
            }
            Err(SendError::Closed(_)) => {
                tracing::debug!(node = %self.node_id, "health report dropped: recipient gone")
            }
        }
    }
}

impl Actor for NodeMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.client = Some(checks::http_client());
        self.round(ctx);
        ctx.run_interval(
            self.settings.health_monitoring.check_interval,
            |act, ctx| act.round(ctx),
        );
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(s) = &self.supervisor {
            s.do_send(ChildExited {
                name: "node_monitor",
                reason: ExitReason::Unexpected,
            });
        }
    }
}

impl Handler<GetLocalHealth> for NodeMonitor {
    type Result = Option<HealthReport>;

    fn handle(&mut self, _: GetLocalHealth, _: &mut Context<Self>) -> Option<HealthReport> {
        self.latest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    struct Recorder(Arc<Mutex<Vec<HealthReport>>>);
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<NodeHealthSampled> for Recorder {
        type Result = ();
        fn handle(&mut self, NodeHealthSampled(r): NodeHealthSampled, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(r);
        }
    }

    /// Thresholds at 0: every built-in check is critical at once, whatever the machine does.
    #[actix_rt::test]
    async fn builtin_thresholds_raise_alerts_after_the_threshold() {
        let mut s = Settings::defaults();
        s.health_monitoring.check_interval = Duration::from_millis(50);
        s.health_monitoring.alert_threshold = 2;
        let t = &mut s.health_monitoring.alert_thresholds;
        (t.cpu_warning, t.cpu_critical) = (0.0, 0.0);
        (t.memory_warning, t.memory_critical) = (0.0, 0.0);
        (t.disk_warning, t.disk_critical) = (0.0, 0.0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Recorder(seen.clone()).start();
        let mon = NodeMonitor::new("n1", Arc::new(s), rec.recipient()).start();
        for _ in 0..400 {
            if seen.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reports = seen.lock().unwrap().clone();
        assert!(reports.len() >= 2, "two rounds within 4 s");
        assert_eq!(reports[0].status, Status::Critical);
        assert!(reports[0].alerts.is_empty(), "one failure is not enough");
        let ids: Vec<_> = reports[1]
            .alerts
            .iter()
            .map(|a| a.check_id.as_str())
            .collect();
        assert_eq!(ids, ["cpu", "disk", "memory"]);
        assert_eq!(reports[1].score, 0.0, "three critical metrics");
        assert!(reports[1].capacity["cpu"] >= 1.0);
        let latest = mon.send(GetLocalHealth).await.unwrap().unwrap();
        assert!(latest.at_ms >= reports[1].at_ms);
    }
}
