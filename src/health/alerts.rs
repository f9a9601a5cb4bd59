//! The consecutive-failure alert rule. Per check, the tracker counts the results in a row
//! that were not healthy; when the count reaches `alert_after` (`health_monitoring.
//! alert_threshold`, `MCP_HEALTH_ALERT_THRESHOLD`) an [`Alert`] is raised, and the first
//! healthy result clears it. A failure after that starts a new count (and, past the
//! threshold, a new alert with a new id).
//!
//! An alert's severity is the worst status seen in its streak: a check that went critical
//! and is now only warning stays a critical alert until it recovers. Its message and
//! `consecutive_failures` follow the newest result.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{CheckResult, Status};

/// How many cleared alerts a tracker (and the cluster's monitor) keeps, newest first.
pub const KEEP_CLEARED: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// `<node>:<check>:<n>`, n counting the alerts the tracker raised.
    pub alert_id: String,
    pub node_id: String,
    pub check_id: String,
    pub name: String,
    /// Warning or critical: the worst status of the streak.
    pub severity: Status,
    /// The newest failing result's message.
    pub message: String,
    pub raised_at_ms: u64,
    pub consecutive_failures: u32,
    /// `None` while the alert is active.
    pub cleared_at_ms: Option<u64>,
}

impl Alert {
    pub fn is_active(&self) -> bool {
        self.cleared_at_ms.is_none()
    }
}

/// What one result changed.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    Raised(Alert),
    Cleared(Alert),
}

#[derive(Debug, Default)]
struct Streak {
    failures: u32,
    worst: Status,
    alert: Option<Alert>,
}

/// The alert rule over the results of one node's checks.
#[derive(Debug)]
pub struct AlertTracker {
    node_id: String,
    alert_after: u32,
    streaks: BTreeMap<String, Streak>,
    raised: u64,
    /// Newest first, at most [`KEEP_CLEARED`].
    cleared: VecDeque<Alert>,
}

impl AlertTracker {
    /// `alert_after` of 0 is taken as 1 (the settings refuse 0).
    pub fn new(node_id: impl Into<String>, alert_after: u32) -> AlertTracker {
        AlertTracker {
            node_id: node_id.into(),
            alert_after: alert_after.max(1),
            streaks: BTreeMap::new(),
            raised: 0,
            cleared: VecDeque::new(),
        }
    }

    /// Feeds one round of results (taken at `at_ms`); returns the alerts raised and cleared.
    /// A check absent from a round keeps its count.
    pub fn observe(&mut self, at_ms: u64, results: &[CheckResult]) -> Vec<AlertChange> {
        results
            .iter()
            .filter_map(|r| self.observe_one(at_ms, r))
            .collect()
    }

    /// Feeds one result of one check.
    pub fn observe_one(&mut self, at_ms: u64, r: &CheckResult) -> Option<AlertChange> {
        let streak = self.streaks.entry(r.check_id.clone()).or_default();
        if r.is_healthy() {
            streak.failures = 0;
            streak.worst = Status::Healthy;
            let mut alert = streak.alert.take()?;
            alert.cleared_at_ms = Some(at_ms);
            self.cleared.push_front(alert.clone());
            self.cleared.truncate(KEEP_CLEARED);
            return Some(AlertChange::Cleared(alert));
        }
        streak.failures = streak.failures.saturating_add(1);
        streak.worst = streak.worst.max(r.status);
        if let Some(alert) = &mut streak.alert {
            alert.consecutive_failures = streak.failures;
            alert.severity = streak.worst;
            alert.message.clone_from(&r.message);
            return None;
        }
        if streak.failures < self.alert_after {
            return None;
        }
        self.raised += 1;
        let alert = Alert {
            alert_id: format!("{}:{}:{}", self.node_id, r.check_id, self.raised),
            node_id: self.node_id.clone(),
            check_id: r.check_id.clone(),
            name: r.name.clone(),
            severity: streak.worst,
            message: r.message.clone(),
            raised_at_ms: at_ms,
            consecutive_failures: streak.failures,
            cleared_at_ms: None,
        };
        streak.alert = Some(alert.clone());
        Some(AlertChange::Raised(alert))
    }

    /// The active alerts, by check id.
    pub fn active(&self) -> Vec<Alert> {
        self.streaks
            .values()
            .filter_map(|s| s.alert.clone())
            .collect()
    }

    /// The cleared alerts kept, newest first.
    pub fn cleared(&self) -> impl Iterator<Item = &Alert> {
        self.cleared.iter()
    }

    /// The current count of unhealthy results in a row of a check.
    pub fn failures(&self, check_id: &str) -> u32 {
        self.streaks.get(check_id).map_or(0, |s| s.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::CheckKind;
    use crate::health::tests::any_status;
    use proptest::prelude::*;

    fn result(check: &str, status: Status) -> CheckResult {
        CheckResult {
            check_id: check.into(),
            name: check.into(),
            kind: CheckKind::Http,
            status,
            message: format!("{check} is {}", status.as_str()),
            value: None,
            unit: None,
        }
    }

    #[test]
    fn raised_at_the_threshold_and_cleared_on_recovery() {
        let mut t = AlertTracker::new("n1", 3);
        let fail = result("http:api", Status::Critical);
        let ok = result("http:api", Status::Healthy);
        assert_eq!(t.observe(1, std::slice::from_ref(&fail)), []);
        assert_eq!(t.observe(2, std::slice::from_ref(&fail)), []);
        assert!(t.active().is_empty(), "two failures are not enough");
        let changes = t.observe(3, std::slice::from_ref(&fail));
        let [AlertChange::Raised(a)] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!(a.alert_id, "n1:http:api:1");
        assert_eq!((a.raised_at_ms, a.consecutive_failures), (3, 3));
        assert_eq!(a.severity, Status::Critical);
        assert_eq!(t.observe(4, std::slice::from_ref(&fail)), [], "raised once");
        assert_eq!(t.active()[0].consecutive_failures, 4);

        let changes = t.observe(5, std::slice::from_ref(&ok));
        let [AlertChange::Cleared(c)] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!(c.alert_id, "n1:http:api:1");
        assert_eq!(c.cleared_at_ms, Some(5));
        assert!(t.active().is_empty());
        assert_eq!(t.cleared().count(), 1);

        // A new streak counts from zero and raises a new alert.
        t.observe(6, std::slice::from_ref(&fail));
        t.observe(7, std::slice::from_ref(&fail));
        assert!(t.active().is_empty());
        t.observe(8, std::slice::from_ref(&fail));
        assert_eq!(t.active()[0].alert_id, "n1:http:api:2");
    }

    #[test]
    fn severity_is_the_worst_of_the_streak() {
        let mut t = AlertTracker::new("n1", 2);
        t.observe(1, &[result("cpu", Status::Warning)]);
        t.observe(2, &[result("cpu", Status::Warning)]);
        assert_eq!(t.active()[0].severity, Status::Warning);
        t.observe(3, &[result("cpu", Status::Critical)]);
        assert_eq!(t.active()[0].severity, Status::Critical);
        t.observe(4, &[result("cpu", Status::Warning)]);
        let a = &t.active()[0];
        assert_eq!(
            a.severity,
            Status::Critical,
            "does not fall back within the streak"
        );
        assert_eq!(a.message, "cpu is warning", "the message is the newest");
    }

    #[test]
    fn checks_count_apart_and_history_is_bounded() {
        let mut t = AlertTracker::new("n1", 1);
        t.observe(
            1,
            &[result("a", Status::Critical), result("b", Status::Healthy)],
        );
        assert_eq!(t.active().len(), 1);
        assert_eq!(t.failures("a"), 1);
        assert_eq!(t.failures("b"), 0);
        for i in 0..(KEEP_CLEARED as u64 + 10) {
            t.observe(2 * i + 2, &[result("a", Status::Healthy)]);
            t.observe(2 * i + 3, &[result("a", Status::Critical)]);
        }
        assert_eq!(t.cleared().count(), KEEP_CLEARED);
        let newest = t.cleared().next().unwrap().cleared_at_ms.unwrap();
        assert!(t.cleared().all(|a| a.cleared_at_ms.unwrap() <= newest));
    }

    proptest! {
        /// After every result: an alert is active iff the last `alert_after` results of the
        /// check were all unhealthy; every streak that reached the threshold and then saw a
        /// healthy result was cleared exactly once; alert ids never repeat.
        #[test]
        fn the_consecutive_failure_rule(
            alert_after in 1u32..6,
            events in proptest::collection::vec((0usize..2, any_status()), 1..80),
        ) {
            let checks = ["x", "y"];
            let mut t = AlertTracker::new("n", alert_after);
            let mut history: [Vec<Status>; 2] = Default::default();
            let mut expected_cleared = 0;
            let mut ids = std::collections::HashSet::new();
            for (i, (which, status)) in events.into_iter().enumerate() {
                let h = &mut history[which];
                let streak = h.iter().rev().take_while(|s| **s != Status::Healthy).count();
                if status == Status::Healthy && streak >= alert_after as usize {
                    expected_cleared += 1;
                }
                h.push(status);
                for change in t.observe(i as u64, &[result(checks[which], status)]) {
                    if let AlertChange::Raised(a) = change {
                        prop_assert!(ids.insert(a.alert_id));
                    }
                }
                for (c, h) in checks.iter().zip(&history) {
                    let n = alert_after as usize;
                    let due = h.len() >= n && h[h.len() - n..].iter().all(|s| *s != Status::Healthy);
                    let active = t.active().iter().filter(|a| a.check_id == *c).count();
                    prop_assert_eq!(active, usize::from(due), "check {} after {:?}", c, h);
                }
            }
            prop_assert_eq!(t.cleared().count(), expected_cleared.min(KEEP_CLEARED));
            prop_assert!(t.cleared().all(|a| a.cleared_at_ms.is_some()));
        }
    }
}
