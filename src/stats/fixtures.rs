//! Hand-made reports for the unit tests of the report's readers (HTML, comparison).

use std::collections::BTreeMap;

use super::report::{NodeReport, Report, Summary, TaskReport};
use super::{ErrorCounts, Percentiles, TimelinePoint};

/// Latency percentiles that rise with the quantile and end at `p99` (ms) for p99.
pub fn percentiles(p99: f64) -> Percentiles {
    Percentiles {
        p50: p99 / 4.0,
        p90: p99 / 2.0,
        p95: p99 * 0.75,
        p99,
        p999: p99 * 1.5,
        max: p99 * 2.0,
        mean: p99 / 3.0,
    }
}

/// A task of `total` requests over 10 s with `errors` status errors, `rps` achieved, and a
/// timeline of 10 points.
pub fn task<S: Default>(name: &str, total: u64, errors: u64, rps: f64, p99: f64) -> TaskReport<S> {
    let err = ErrorCounts {
        total: errors,
        status: errors,
        ..ErrorCounts::default()
    };
    let mut codes = BTreeMap::new();
    codes.insert("200".to_string(), total - errors);
    if errors > 0 {
        codes.insert("503".to_string(), errors);
    }
    TaskReport {
        name: name.into(),
        kind: "load_test".into(),
        model: "open".into(),
        pattern: "constant".into(),
        arrivals: "uniform".into(),
        seed: 1,
        concurrent_users: 10,
        duration_s: 10.0,
        planned_requests: Some(total),
        total_requests: total,
        sent_requests: total,
        not_sent: Some(0),
        achieved_rps: rps,
        late_starts: 0,
        latency_ms: percentiles(p99),
        latency_uncorrected_ms: percentiles(p99 / 2.0),
        errors: err,
        status_codes: codes,
        slow_responses: 0,
        bytes_received: total * 10,
        tls: None,
        nodes: vec![NodeReport {
            node_id: "node-1".into(),
            sent: total,
            completed: total,
            errors,
            lost: false,
            in_flight: None,
        }],
        requests: Vec::new(),
        failures: Vec::new(),
        iterations: None,
        thresholds: Vec::new(),
        section: S::default(),
        adjustments: Vec::new(),
        timeline: (0..10)
            .map(|s| TimelinePoint {
                second: s,
                planned: rps,
                sent: total / 10,
                completed: total / 10,
                errors: errors / 10,
                p50_ms: p99 / 4.0,
                p95_ms: p99 * 0.75,
                p99_ms: p99,
            })
            .collect(),
    }
}

/// A report of the given tasks `(name, total, errors, rps, p99_ms)`; its summary adds them up.
pub fn report_with<S: Default>(name: &str, tasks: &[(&str, u64, u64, f64, f64)]) -> Report<S> {
    let tasks: Vec<TaskReport<S>> = tasks
        .iter()
        .map(|&(n, total, errors, rps, p99)| task(n, total, errors, rps, p99))
        .collect();
    let total: u64 = tasks.iter().map(|t| t.total_requests).sum();
    let mut errors = ErrorCounts::default();
    for t in &tasks {
        errors.merge(&t.errors);
    }
    let p99 = tasks.iter().map(|t| t.latency_ms.p99).fold(0.0, f64::max);
    Report {
        name: name.into(),
        started_at_ms: 1_700_000_000_000,
        summary: Summary {
            interrupted: false,
            stopped_by: None,
            thresholds_passed: None,
            total_requests: total,
            planned_requests: total,
            sent_requests: total,
            not_sent: 0,
            achieved_rps: total as f64 / 10.0,
            duration_s: 10.0,
            late_starts: 0,
            errors,
            error_rate: if total > 0 {
                errors.total as f64 / total as f64
            } else {
                0.0
            },
            latency_ms: percentiles(p99),
            latency_uncorrected_ms: percentiles(p99 / 2.0),
        },
        tasks,
    }
}
