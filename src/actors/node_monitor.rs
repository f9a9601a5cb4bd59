//! `NodeMonitor`: a node's health (DESIGN §2, node process). Owns the sysinfo [`Sampler`], an
//! HTTP client for the custom checks, the [`AlertTracker`] and the latest [`HealthReport`];
//! supervises nothing. Every `health_monitoring.check_interval` (and once at start) it samples
//! the machine, evaluates the built-in checks, runs the custom checks concurrently, feeds the
//! alert rule and sends the report as `NodeHealthSampled` to the recipient it was given (the
//! node's agent, which forwards it to the orchestrator). A round whose checks are still
//! running when the next tick comes makes that tick skip. A check with its own `interval`
//! runs only in the rounds where that much time has passed since it last ran (give or take
//! half a round); its latest result stays in the reports in between. Custom metrics set by
//! `SetCustomMetric` are evaluated every round as `metric:<name>` checks. Checks registered from
//! code (`RegisterCheck`) join the configured ones and run the same way.
//! Takes: `GetLocalHealth`, `SetCustomMetric`, `RegisterCheck`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;

use crate::actors::supervisor::{ChildExited, ExitReason};
use crate::health::checks::{self, check_ids};
use crate::health::code::CodeCheck;
use crate::health::custom::{CustomMetric, MAX_CUSTOM_METRICS};
use crate::health::sample::Sampler;
use crate::health::{
    self, AlertChange, AlertTracker, CheckKind, CheckResult, HealthReport, Sample, Status,
};
use crate::messages::health::{
    GetLocalHealth, MetricRefused, NodeHealthSampled, RegisterCheck, SetCustomMetric,
};
use crate::settings::{CheckSpec, CheckTarget, Settings};

/// How many checks registered from code a node keeps.
pub const MAX_CODE_CHECKS: usize = 100;

/// One custom check: what runs it, how often, and its latest result.
struct Check {
    id: String,
    probe: Probe,
    /// When it last ran and its latest result.
    last_run: Option<(Instant, CheckResult)>,
}

#[derive(Clone)]
enum Probe {
    /// From `health_monitoring.checks`.
    Configured(CheckSpec),
    /// Registered from code.
    Code(CodeCheck),
}

impl Probe {
    fn interval(&self) -> Option<Duration> {
        match self {
            Probe::Configured(spec) => spec.interval,
            Probe::Code(c) => c.interval,
        }
    }

    async fn run(self, client: awc::Client, id: String) -> CheckResult {
        match self {
            Probe::Configured(spec) => checks::run(&client, &spec, id).await,
            Probe::Code(c) => c.run().await,
        }
    }
}

pub struct NodeMonitor {
    node_id: String,
    settings: Arc<Settings>,
    report_to: Recipient<NodeHealthSampled>,
    /// The error text when the machine's metrics cannot be read.
    sampler: Result<Sampler, String>,
    /// Made on the actor's arbiter when it starts (`awc::Client` is `!Send`).
    client: Option<awc::Client>,
    /// The configured checks, then those registered from code.
    checks: Vec<Check>,
    /// The custom metrics, by name.
    metrics: BTreeMap<String, CustomMetric>,
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
            checks: check_ids(&h.checks)
                .into_iter()
                .zip(&h.checks)
                .map(|(id, spec)| Check {
                    id,
                    probe: Probe::Configured(spec.clone()),
                    last_run: None,
                })
                .collect(),
            metrics: BTreeMap::new(),
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

    /// Starts a round: samples now, then runs the custom checks that are due off the
    /// actor's turn.
    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.round_running {
            tracing::debug!(node = %self.node_id, "health checks still running; tick skipped");
            return;
        }
        let (sample, builtins) = self.builtins();
        let due = self.due(Instant::now());
        if due.is_empty() {
            self.finish(sample, builtins, Vec::new());
            return;
        }
        let client = self.client.get_or_insert_with(checks::http_client).clone();
        let runs: Vec<_> = due
            .into_iter()
            .map(|i| {
                let (probe, id) = (self.checks[i].probe.clone(), self.checks[i].id.clone());
                let run = probe.run(client.clone(), id);
                async move { (i, run.await) }
            })
            .collect();
        self.round_running = true;
        ctx.spawn(
            join_all(runs)
                .into_actor(self)
                .map(move |fresh, act, _ctx| {
                    act.round_running = false;
                    act.finish(sample, builtins, fresh);
                }),
        );
    }

    /// The custom checks to run in a round starting `now`: those without an interval, and
    /// those whose interval has passed since they last ran, give or take half a round.
    fn due(&self, now: Instant) -> Vec<usize> {
        let half_round = self.settings.health_monitoring.check_interval / 2;
        (0..self.checks.len())
            .filter(
                |&i| match (self.checks[i].probe.interval(), &self.checks[i].last_run) {
                    (None, _) | (_, None) => true,
                    (Some(every), Some((at, _))) => {
                        now.saturating_duration_since(*at) + half_round >= every
                    }
                },
            )
            .collect()
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
                    unit: None,
                };
                (s, vec![check])
            }
        }
    }

    /// Feeds the alert rule with this round's results (the built-ins, the checks that ran,
    /// the custom metrics), builds the report from every check's latest result, keeps it and
    /// sends it.
    fn finish(
        &mut self,
        sample: Sample,
        builtins: Vec<CheckResult>,
        fresh: Vec<(usize, CheckResult)>,
    ) {
        let ran_at = Instant::now();
        let mut observed = builtins.clone();
        for (i, result) in fresh {
            observed.push(result.clone());
            // A code check replaced while it ran: its index may now hold another check.
            if let Some(check) = self.checks.get_mut(i)
                && check.id == result.check_id
            {
                check.last_run = Some((ran_at, result));
            }
        }
        let metrics: Vec<CheckResult> = self.metrics.values().map(CustomMetric::check).collect();
        observed.extend(metrics.iter().cloned());
        self.log_alerts(sample.at_ms, &observed);
        let mut checks = builtins;
        checks.extend(
            self.checks
                .iter()
                .filter_map(|c| c.last_run.as_ref().map(|(_, r)| r.clone())),
        );
        checks.extend(metrics);
        let settings = &self.settings;
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

impl NodeMonitor {
    /// Feeds the alert rule and logs what it changed.
    fn log_alerts(&mut self, at_ms: u64, observed: &[CheckResult]) {
        for change in self.tracker.observe(at_ms, observed) {
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

impl Handler<SetCustomMetric> for NodeMonitor {
    type Result = Result<(), MetricRefused>;

    fn handle(
        &mut self,
        SetCustomMetric(m): SetCustomMetric,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let prometheus = |c: &Check| match &c.probe {
            Probe::Configured(spec) => {
                matches!(spec.target, CheckTarget::Prometheus { .. }) && spec.name == m.name
            }
            Probe::Code(_) => false,
        };
        if self.checks.iter().any(prometheus) {
            return Err(MetricRefused::NameTaken(format!(
                "{:?} is the name of this node's prometheus check; a pushed metric needs one of its own",
                m.name
            )));
        }
        if !self.metrics.contains_key(&m.name) && self.metrics.len() >= MAX_CUSTOM_METRICS {
            return Err(MetricRefused::Full(format!(
                "this node already keeps {MAX_CUSTOM_METRICS} custom metrics; {:?} is not one of them",
                m.name
            )));
        }
        self.metrics.insert(m.name.clone(), m);
        Ok(())
    }
}

impl Handler<RegisterCheck> for NodeMonitor {
    type Result = Result<(), String>;

    /// Adds the check, or replaces the code check of the same name (its latest result goes).
    fn handle(
        &mut self,
        RegisterCheck(check): RegisterCheck,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let id = check.id();
        if let Some(known) = self.checks.iter_mut().find(|c| c.id == id) {
            known.probe = Probe::Code(check);
            known.last_run = None;
            return Ok(());
        }
        let code = self
            .checks
            .iter()
            .filter(|c| matches!(c.probe, Probe::Code(_)));
        if code.count() >= MAX_CODE_CHECKS {
            return Err(format!(
                "this node already keeps {MAX_CODE_CHECKS} checks from code; {id:?} is not one of them"
            ));
        }
        self.checks.push(Check {
            id,
            probe: Probe::Code(check),
            last_run: None,
        });
        Ok(())
    }
}

/// Why a custom metric was not kept.
#[derive(Debug, thiserror::Error)]
pub enum SetMetricError {
    /// The node refused it.
    #[error(transparent)]
    Refused(#[from] MetricRefused),
    /// The monitor did not answer.
    #[error("{0}")]
    Gone(String),
}

/// Sets a custom metric on a node's monitor, from code (validate it first with
/// [`CustomMetric::from_json`] or build a valid one): what `POST /health/metrics` does.
pub async fn set_custom_metric(
    monitor: &Addr<NodeMonitor>,
    metric: CustomMetric,
) -> Result<(), SetMetricError> {
    monitor
        .send(SetCustomMetric(metric))
        .await
        .map_err(|e| SetMetricError::Gone(format!("the health monitor did not answer: {e}")))?
        .map_err(SetMetricError::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::CheckSpec;
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

    fn counting_check(name: &str, file: &std::path::Path, interval: Option<Duration>) -> CheckSpec {
        let run = format!("echo x >> {}", file.display());
        CheckSpec {
            name: name.into(),
            target: crate::settings::CheckTarget::Command {
                program: "sh".into(),
                args: vec!["-c".into(), run],
            },
            timeout: Duration::from_secs(5),
            interval,
        }
    }

    async fn wait_for(
        seen: &Arc<Mutex<Vec<HealthReport>>>,
        pred: impl Fn(&[HealthReport]) -> bool,
    ) {
        for _ in 0..800 {
            if pred(&seen.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not within 8 s: {:?}", seen.lock().unwrap().last());
    }

    /// A check with a long interval runs once while one without runs every round; a custom
    /// metric past its critical level raises an alert after the threshold and clears.
    #[actix_rt::test]
    async fn per_check_intervals_and_custom_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let (every, hourly) = (dir.path().join("every"), dir.path().join("hourly"));
        let mut s = Settings::defaults();
        s.health_monitoring.check_interval = Duration::from_millis(50);
        s.health_monitoring.alert_threshold = 2;
        s.health_monitoring.alert_thresholds.cpu_critical = 101.0;
        s.health_monitoring.alert_thresholds.memory_critical = 101.0;
        s.health_monitoring.alert_thresholds.disk_critical = 101.0;
        s.health_monitoring.alert_thresholds.cpu_warning = 101.0;
        s.health_monitoring.alert_thresholds.memory_warning = 101.0;
        s.health_monitoring.alert_thresholds.disk_warning = 101.0;
        s.health_monitoring.checks = vec![
            counting_check("every", &every, None),
            counting_check("hourly", &hourly, Some(Duration::from_secs(3600))),
        ];
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Recorder(seen.clone()).start();
        let mon = NodeMonitor::new("n1", Arc::new(s), rec.recipient()).start();
        wait_for(&seen, |r| r.len() >= 4).await;
        let lines = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert!(lines(&every) >= 4, "runs every round");
        assert_eq!(lines(&hourly), 1, "runs once an hour");
        let last = seen.lock().unwrap().last().unwrap().clone();
        let ids: Vec<_> = last.checks.iter().map(|c| c.check_id.as_str()).collect();
        assert_eq!(
            ids,
            ["cpu", "memory", "disk", "command:every", "command:hourly"]
        );

        let metric = |value: f64| {
            SetCustomMetric(CustomMetric {
                name: "queue".into(),
                value,
                unit: None,
                warning: Some(5.0),
                critical: Some(10.0),
                higher_is_worse: true,
            })
        };
        mon.send(metric(11.0)).await.unwrap().unwrap();
        let queue_alert = |r: &HealthReport| r.alerts.iter().any(|a| a.check_id == "metric:queue");
        wait_for(&seen, |r| r.last().is_some_and(queue_alert)).await;
        let last = seen.lock().unwrap().last().unwrap().clone();
        assert_eq!(last.status, Status::Critical);
        assert!(last.score <= 100.0 - health::FAILED_CHECK_PENALTY);
        set_custom_metric(&mon, metric(1.0).0).await.unwrap();
        wait_for(&seen, |r| r.last().is_some_and(|r| !queue_alert(r))).await;
        assert_eq!(seen.lock().unwrap().last().unwrap().status, Status::Healthy);

        for i in 1..MAX_CUSTOM_METRICS {
            let mut m = metric(0.0);
            m.0.name = format!("m{i}");
            mon.send(m).await.unwrap().unwrap();
        }
        let mut over = metric(0.0);
        over.0.name = "one_too_many".into();
        let refused = set_custom_metric(&mon, over.0).await;
        assert!(
            matches!(
                refused,
                Err(SetMetricError::Refused(MetricRefused::Full(_)))
            ),
            "bounded"
        );
        mon.send(metric(2.0))
            .await
            .unwrap()
            .expect("a known name is updated");
    }
}
