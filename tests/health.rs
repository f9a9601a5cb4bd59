//! Node and cluster health: a custom HTTP check whose target starts failing raises an alert
//! after `alert_threshold` consecutive failures (not before), on the node and on the cluster's
//! monitor, and the alert clears on recovery; the cluster's counts with an unreachable node.
//! Every wait is for a condition seen in the reports, with a deadline.

mod common;

use common::{ask_until, switchable_target};
use mcp_testing::actors::recorder::Recorder as Keep;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use mcp_testing::actors::health_monitor::HealthMonitor;
use mcp_testing::actors::node_monitor::NodeMonitor;
use mcp_testing::health::{Alert, HealthReport, Status};
use mcp_testing::messages::health::{
    GetAlerts, GetClusterHealth, GetLocalHealth, GetNodeHealth, HealthEvent, NodeHealthSampled,
    NodeHealthUpdate, NodeReachability,
};
use mcp_testing::settings::{AlertThresholds, CheckSpec, CheckTarget, Settings};

const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `pred` until it holds or `timeout` passes; says which.
async fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    ask_until(timeout, || std::future::ready(pred()), |ok| *ok).await
}

/// Records every report and forwards it to a cluster monitor, as a node's agent would.
struct Recorder {
    seen: Arc<Mutex<Vec<HealthReport>>>,
    forward: Option<Addr<HealthMonitor>>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<NodeHealthSampled> for Recorder {
    type Result = ();

    fn handle(&mut self, NodeHealthSampled(r): NodeHealthSampled, _: &mut Context<Self>) {
        if let Some(m) = &self.forward {
            // A test recorder: keeps the order of the reports.
            m.do_send(NodeHealthUpdate(r.clone()));
        }
        self.seen.lock().unwrap().push(r);
    }
}

/// Built-in thresholds no reading reaches (percentages stop at 100), so only the custom
/// checks decide.
fn unreachable_thresholds() -> AlertThresholds {
    AlertThresholds {
        cpu_warning: 101.0,
        cpu_critical: 101.0,
        memory_warning: 101.0,
        memory_critical: 101.0,
        disk_warning: 101.0,
        disk_critical: 101.0,
    }
}

fn settings(interval: Duration, checks: Vec<CheckSpec>) -> Arc<Settings> {
    let mut s = Settings::defaults();
    s.health_monitoring.check_interval = interval;
    s.health_monitoring.alert_threshold = 3;
    s.health_monitoring.alert_thresholds = unreachable_thresholds();
    s.health_monitoring.checks = checks;
    Arc::new(s)
}

fn http_check(url: &str) -> CheckSpec {
    CheckSpec {
        name: "api".into(),
        target: CheckTarget::Http {
            url: url.parse().unwrap(),
            expect_status: None,
        },
        timeout: Duration::from_secs(2),
        interval: None,
    }
}

fn check_status(r: &HealthReport) -> Status {
    r.checks
        .iter()
        .find(|c| c.check_id == "http:api")
        .expect("the custom check runs every round")
        .status
}

fn api_alert(r: &HealthReport) -> Option<&Alert> {
    r.alerts.iter().find(|a| a.check_id == "http:api")
}

#[actix_rt::test]
async fn a_failing_http_check_raises_an_alert_after_three_failures_and_clears() {
    let failing = Arc::new(AtomicBool::new(false));
    let server = switchable_target(failing.clone());
    let url = format!("http://{}/health", server.addr);
    let events = Arc::new(Mutex::new(Vec::new()));
    let cluster = HealthMonitor::new(Some(
        Keep::<HealthEvent>(events.clone()).start().recipient(),
    ))
    .start();
    let seen = Arc::new(Mutex::new(Vec::<HealthReport>::new()));
    let recorder = Recorder {
        seen: seen.clone(),
        forward: Some(cluster.clone()),
    }
    .start();
    let s = settings(Duration::from_millis(100), vec![http_check(&url)]);
    let node = NodeMonitor::new("node-1", s, recorder.recipient()).start();

    // Passing first.
    let reports = || seen.lock().unwrap().clone();
    assert!(
        wait_until(DEADLINE, || reports()
            .iter()
            .any(|r| check_status(r) == Status::Healthy))
        .await,
        "no passing round"
    );
    failing.store(true, Ordering::SeqCst);

    // The alert comes with the third failure in a row, not before.
    let raised = || reports().iter().any(|r| api_alert(r).is_some());
    assert!(
        wait_until(DEADLINE, raised).await,
        "no alert: {:#?}",
        reports()
    );
    let all = reports();
    let first_fail = all
        .iter()
        .position(|r| check_status(r) == Status::Critical)
        .unwrap();
    let first_alert = all.iter().position(|r| api_alert(r).is_some()).unwrap();
    assert_eq!(first_alert, first_fail + 2, "raised with the third failure");
    for r in &all[first_fail..=first_alert] {
        assert_eq!(check_status(r), Status::Critical);
        assert!(r.checks.iter().any(|c| c.message.contains("status 500")));
    }
    assert!(all[..first_alert].iter().all(|r| api_alert(r).is_none()));
    let alert = api_alert(&all[first_alert]).unwrap().clone();
    assert_eq!(alert.consecutive_failures, 3);
    assert_eq!(alert.severity, Status::Critical);
    assert_eq!(alert.node_id, "node-1");
    assert_eq!(alert.raised_at_ms, all[first_alert].at_ms);
    assert_eq!(all[first_alert].status, Status::Critical);

    // The cluster's monitor sees the same alert.
    let active = cluster.send(GetAlerts { active_only: true }).await.unwrap();
    assert_eq!(active.len(), 1, "{active:#?}");
    assert_eq!(active[0].alert_id, alert.alert_id);
    let detail = cluster
        .send(GetNodeHealth("node-1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.status, Status::Critical);
    assert_eq!(detail.alerts[0].alert_id, alert.alert_id);

    // Recovery clears it with the first passing round.
    failing.store(false, Ordering::SeqCst);
    let recovered = || {
        reports()
            .iter()
            .skip(first_alert)
            .any(|r| check_status(r) == Status::Healthy)
    };
    assert!(wait_until(DEADLINE, recovered).await, "no recovery");
    let all = reports();
    let back = first_alert
        + all[first_alert..]
            .iter()
            .position(|r| check_status(r) == Status::Healthy)
            .unwrap();
    assert!(
        api_alert(&all[back - 1]).is_some(),
        "active until the recovery"
    );
    assert!(api_alert(&all[back]).is_none(), "cleared by the first pass");
    assert_eq!(all[back].status, Status::Healthy);
    let latest = node.send(GetLocalHealth).await.unwrap().unwrap();
    assert!(api_alert(&latest).is_none());

    // On the cluster: no active alert; the cleared one in the history, at the recovery.
    let history = ask_until(
        DEADLINE,
        || cluster.send(GetAlerts { active_only: false }),
        |h| h.as_ref().is_ok_and(|h| h.iter().all(|a| !a.is_active())),
    )
    .await
    .unwrap();
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(history[0].alert_id, alert.alert_id);
    assert_eq!(history[0].cleared_at_ms, Some(all[back].at_ms));
    assert!(
        cluster
            .send(GetAlerts { active_only: true })
            .await
            .unwrap()
            .is_empty()
    );

    // And it said so: raised, then cleared, with the node's status changes around them.
    let kinds: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|HealthEvent(e)| {
            serde_json::to_value(e).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap_or(usize::MAX);
    assert!(pos("alert_raised") < pos("alert_cleared"), "{kinds:?}");
    assert!(pos("alert_cleared") < usize::MAX, "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "alert_raised").count(),
        1,
        "{kinds:?}"
    );

    drop(server);
}

#[actix_rt::test]
async fn the_cluster_counts_an_unreachable_node_as_failed() {
    let cluster = HealthMonitor::new(None).start();
    // One round each (the interval is long): reports are fixed.
    let interval = Duration::from_secs(3600);
    let seen = Arc::new(Mutex::new(Vec::<HealthReport>::new()));
    let start = |id: &str, s: Arc<Settings>| {
        let recorder = Recorder {
            seen: seen.clone(),
            forward: Some(cluster.clone()),
        }
        .start();
        NodeMonitor::new(id, s, recorder.recipient()).start()
    };
    // healthy-1 and lost-3: nothing reaches the thresholds; warm-2: every metric is past
    // warning (0) and short of critical (101).
    let _n1 = start("healthy-1", settings(interval, vec![]));
    let mut warm = (*settings(interval, vec![])).clone();
    let t = &mut warm.health_monitoring.alert_thresholds;
    (t.cpu_warning, t.memory_warning, t.disk_warning) = (0.0, 0.0, 0.0);
    let _n2 = start("warm-2", Arc::new(warm));
    let _n3 = start("lost-3", settings(interval, vec![]));

    let c = ask_until(
        DEADLINE,
        || cluster.send(GetClusterHealth),
        |c| {
            c.as_ref().is_ok_and(|c| {
                c.nodes.iter().all(|n| n.last_report_ms.is_some()) && c.nodes.len() == 3
            })
        },
    )
    .await
    .unwrap();
    assert_eq!((c.healthy, c.warning, c.failed), (2, 1, 0), "{c:#?}");
    cluster
        .send(NodeReachability {
            node_id: "lost-3".into(),
            reachable: false,
        })
        .await
        .unwrap();

    let c = cluster.send(GetClusterHealth).await.unwrap();
    assert_eq!((c.healthy, c.warning, c.failed), (1, 1, 1), "{c:#?}");
    assert_eq!(c.status, Status::Warning);
    let score = |id: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .find(|r| r.node_id == id)
            .unwrap()
            .score
    };
    assert_eq!(score("healthy-1"), 100.0);
    assert!(score("warm-2") < 100.0 && score("warm-2") > 0.0);
    let expected = (score("healthy-1") + score("warm-2") + 0.0) / 3.0;
    assert!((c.average_score - expected).abs() < 1e-9, "{c:#?}");
    let lost = c.nodes.iter().find(|n| n.node_id == "lost-3").unwrap();
    assert_eq!((lost.reachable, lost.score), (false, Some(0.0)));
    let active = cluster.send(GetAlerts { active_only: true }).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].check_id, "reachability");
    assert_eq!(active[0].node_id, "lost-3");

    cluster
        .send(NodeReachability {
            node_id: "lost-3".into(),
            reachable: true,
        })
        .await
        .unwrap();
    let c = cluster.send(GetClusterHealth).await.unwrap();
    assert_eq!((c.healthy, c.warning, c.failed), (2, 1, 0));
    assert!(
        cluster
            .send(GetAlerts { active_only: true })
            .await
            .unwrap()
            .is_empty()
    );
}
