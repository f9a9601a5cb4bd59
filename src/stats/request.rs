//! Per-request statistics. Every request of a task has a name (its target's or step's `name`,
//! else `METHOD /path`); a task's names are numbered once (their *slots*, [`RequestNames`]),
//! and each [`super::Window`] carries, per slot, a [`RequestWindow`]: counts, errors by kind,
//! status codes, failed checks, the failures by message, and both latency histograms. They
//! merge across workers and nodes as the window does, and become the report's
//! `tasks[i].requests[]` and `tasks[i].failures[]`.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{ErrorCounts, ErrorKind, MAX_LATENCY_US, Outcome, Percentiles, record};

/// The most distinct request names of a task; the requests of any further name share the
/// row [`OTHER`], so a plan of many unnamed URLs cannot grow the windows without bound.
pub const MAX_NAMES: usize = 100;
/// The row of the names beyond [`MAX_NAMES`].
pub const OTHER: &str = "(other)";
/// The row of a flow's iterations among its names (method `FLOW`); the report shows it as
/// `iterations`, apart from the requests.
pub const ITERATION: &str = "(iteration)";
/// The most distinct failure messages kept per request name per window; further ones are
/// counted under their kind with the message [`OTHER_FAILURE`].
pub const MAX_FAILURES: usize = 20;
pub const OTHER_FAILURE: &str = "(other messages)";

/// A per-request latency histogram in microseconds. Two significant digits (within 1 %)
/// keep one at 24 KiB where the task's own, with three, takes 168 KiB: a window holds two
/// per name.
pub fn new_request_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("static histogram bounds are valid")
}

/// A task's request names by slot, and each target's (or step's) slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestNames {
    /// The distinct names in order of first appearance, each with its method; at most
    /// [`MAX_NAMES`] + 1 (the last then being [`OTHER`]).
    pub names: Vec<RequestName>,
    /// The slot of each request, by its index in the task (a target's, a flow step's).
    pub slot_of: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestName {
    pub name: String,
    /// The method of the requests of that name (the first one's, when they differ).
    pub method: String,
}

impl RequestNames {
    /// Numbers the `(name, method)` of each request: one slot per distinct name.
    pub fn new<'a>(requests: impl IntoIterator<Item = (&'a str, &'a str)>) -> RequestNames {
        let mut out = RequestNames::default();
        let mut index: BTreeMap<&str, u16> = BTreeMap::new();
        for (name, method) in requests {
            let slot = match index.get(name) {
                Some(slot) => *slot,
                None if out.names.len() < MAX_NAMES => {
                    let slot = out.names.len() as u16;
                    index.insert(name, slot);
                    out.names.push(RequestName {
                        name: name.to_string(),
                        method: method.to_string(),
                    });
                    slot
                }
                None => {
                    if out.names.len() == MAX_NAMES {
                        out.names.push(RequestName {
                            name: OTHER.to_string(),
                            method: String::new(),
                        });
                    }
                    MAX_NAMES as u16
                }
            };
            out.slot_of.push(slot);
        }
        out
    }

    /// The slot of request `i` (0 for an index the task does not have).
    pub fn slot(&self, i: usize) -> usize {
        self.slot_of.get(i).map_or(0, |s| usize::from(*s))
    }
}

/// The default name of a request: `METHOD /path` (the path without its query).
pub fn default_name(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    format!("{method} {path}")
}

/// What one name's requests did during one window.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestWindow {
    pub completed: u64,
    pub errors: ErrorCounts,
    /// Checks that failed (a request may fail several).
    pub checks_failed: u64,
    pub status_codes: BTreeMap<u16, u64>,
    /// Failures by kind and message, at most [`MAX_FAILURES`] messages.
    pub failures: BTreeMap<(ErrorKind, String), u64>,
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
}

impl Default for RequestWindow {
    fn default() -> Self {
        RequestWindow {
            completed: 0,
            errors: ErrorCounts::default(),
            checks_failed: 0,
            status_codes: BTreeMap::new(),
            failures: BTreeMap::new(),
            corrected: new_request_histogram(),
            uncorrected: new_request_histogram(),
        }
    }
}

impl RequestWindow {
    pub fn record(&mut self, outcome: &Outcome, corrected: Duration, uncorrected: Duration) {
        self.completed += 1;
        record(&mut self.corrected, corrected);
        record(&mut self.uncorrected, uncorrected);
        if let Some(code) = outcome.status {
            *self.status_codes.entry(code).or_default() += 1;
        }
        self.checks_failed += u64::from(outcome.checks_failed);
        if let Some(kind) = outcome.error {
            self.errors.add(kind);
            self.add_failure(kind, failure_message(outcome), 1);
        }
    }

    fn add_failure(&mut self, kind: ErrorKind, message: String, n: u64) {
        let key = if self.failures.len() < MAX_FAILURES
            || self.failures.contains_key(&(kind, message.clone()))
        {
            (kind, message)
        } else {
            (kind, OTHER_FAILURE.to_string())
        };
        *self.failures.entry(key).or_default() += n;
    }

    pub fn merge(&mut self, o: &RequestWindow) {
        self.completed += o.completed;
        self.errors.merge(&o.errors);
        self.checks_failed += o.checks_failed;
        for (code, n) in &o.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        for ((kind, message), n) in &o.failures {
            self.add_failure(*kind, message.clone(), *n);
        }
        self.corrected
            .add(&o.corrected)
            .expect("histograms share bounds");
        self.uncorrected
            .add(&o.uncorrected)
            .expect("histograms share bounds");
    }
}

/// What the failures table says of a failed request: its reason, else its status.
fn failure_message(outcome: &Outcome) -> String {
    match (&outcome.reason, outcome.status) {
        (Some(reason), _) => reason.to_string(),
        (None, Some(code)) => format!("unexpected status {code}"),
        (None, None) => match outcome.error {
            Some(ErrorKind::Timeout) => "no response within the timeout".to_string(),
            _ => "failed".to_string(),
        },
    }
}

/// One request name's row in the report (`tasks[i].requests[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestReport {
    pub name: String,
    pub method: String,
    /// Requests of this name that finished (successes and failures).
    pub count: u64,
    pub errors: ErrorCounts,
    pub error_rate: f64,
    pub status_codes: BTreeMap<String, u64>,
    /// From the planned start (coordinated-omission corrected).
    pub latency_ms: Percentiles,
    /// From the actual send.
    pub latency_uncorrected_ms: Percentiles,
    pub checks_failed: u64,
    /// Requests of this name per second of the load.
    pub rps: f64,
}

/// A flow's iterations (`tasks[i].iterations`): the row of its iterations, apart from the
/// requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IterationsReport {
    /// Open model: the plan's arrivals, one iteration each; `null` for closed.
    pub planned: Option<u64>,
    pub started: u64,
    pub completed: u64,
    /// Iterations in which a request failed or a capture found nothing.
    pub failed: u64,
    /// Completed iterations per second of the load.
    pub rps: f64,
    /// From the planned start to the end of its last step (coordinated-omission corrected).
    pub latency_ms: Percentiles,
    /// From its first send.
    pub latency_uncorrected_ms: Percentiles,
    /// A `unique` data source ran out of rows: the arrivals after it were not started.
    pub data_exhausted: bool,
}

/// One row of the failures table (`tasks[i].failures[]`), most frequent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailureReport {
    pub request: String,
    /// The error kind (`connect`, `timeout`, `status`, `body`, `tls`, `check`).
    pub kind: String,
    pub message: String,
    pub count: u64,
}

impl RequestReport {
    pub fn of(name: &RequestName, w: &RequestWindow, ran_s: f64) -> RequestReport {
        RequestReport {
            name: name.name.clone(),
            method: name.method.clone(),
            count: w.completed,
            errors: w.errors,
            error_rate: rate(w.errors.total, w.completed),
            status_codes: w
                .status_codes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            latency_ms: Percentiles::of(&w.corrected),
            latency_uncorrected_ms: Percentiles::of(&w.uncorrected),
            checks_failed: w.checks_failed,
            rps: super::achieved_rps(w.completed, ran_s),
        }
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// The report's rows: one per name that has a slot (in slot order, names that saw no request
/// included, so a silent request shows as 0), and the failures, most frequent first.
pub fn rows(
    names: &RequestNames,
    windows: &[Option<Box<RequestWindow>>],
    ran_s: f64,
) -> (Vec<RequestReport>, Vec<FailureReport>) {
    let empty = RequestWindow::default();
    let mut requests = Vec::with_capacity(names.names.len());
    let mut failures = Vec::new();
    for (slot, name) in names.names.iter().enumerate() {
        let w = windows
            .get(slot)
            .and_then(|w| w.as_deref())
            .unwrap_or(&empty);
        requests.push(RequestReport::of(name, w, ran_s));
        // A flow's groups and iterations fail through their requests, which say why.
        if name.method == "GROUP" || name.method == "FLOW" {
            continue;
        }
        for ((kind, message), count) in &w.failures {
            failures.push(FailureReport {
                request: name.name.clone(),
                kind: kind.name().to_string(),
                message: message.clone(),
                count: *count,
            });
        }
    }
    failures.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.request.cmp(&b.request))
    });
    (requests, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<u16>, error: Option<ErrorKind>) -> Outcome {
        Outcome {
            status,
            error,
            ..Outcome::default()
        }
    }

    #[test]
    fn names_get_one_slot_each_and_the_rest_share_other() {
        let many: Vec<String> = (0..MAX_NAMES + 5).map(|i| format!("GET /{i}")).collect();
        let mut requests: Vec<(&str, &str)> = vec![("login", "POST"), ("GET /a", "GET")];
        requests.push(("login", "POST"));
        requests.extend(many.iter().map(|n| (n.as_str(), "GET")));
        let names = RequestNames::new(requests);
        assert_eq!(names.names.len(), MAX_NAMES + 1);
        assert_eq!(names.names[MAX_NAMES].name, OTHER);
        assert_eq!((names.slot(0), names.slot(1), names.slot(2)), (0, 1, 0));
        assert_eq!(names.slot(3), 2, "GET /0");
        assert_eq!(names.slot(names.slot_of.len() - 1), MAX_NAMES);
        assert_eq!(names.slot(100_000), 0);
    }

    #[test]
    fn the_default_name_is_the_method_and_the_path_without_the_query() {
        assert_eq!(default_name("GET", "/items/3?x=1"), "GET /items/3");
        assert_eq!(default_name("POST", ""), "POST /");
    }

    #[test]
    fn rows_count_errors_and_failures_by_message() {
        let names = RequestNames::new([("fast", "GET"), ("broken", "GET"), ("silent", "GET")]);
        let mut fast = RequestWindow::default();
        let mut broken = RequestWindow::default();
        for _ in 0..3 {
            fast.record(
                &outcome(Some(200), None),
                Duration::from_millis(2),
                Duration::from_millis(1),
            );
            broken.record(
                &outcome(Some(500), Some(ErrorKind::Status)),
                Duration::from_millis(5),
                Duration::from_millis(5),
            );
        }
        let refused = Outcome {
            reason: Some("connection refused".into()),
            ..outcome(None, Some(ErrorKind::Connect))
        };
        broken.record(&refused, Duration::from_millis(1), Duration::from_millis(1));
        // Merging two halves equals recording the whole.
        let mut merged = RequestWindow::default();
        merged.merge(&broken);
        let windows = vec![Some(Box::new(fast)), Some(Box::new(merged)), None];
        let (rows, failures) = rows(&names, &windows, 2.0);
        assert_eq!(
            rows.iter()
                .map(|r| (r.name.as_str(), r.count, r.errors.total))
                .collect::<Vec<_>>(),
            [("fast", 3, 0), ("broken", 4, 4), ("silent", 0, 0)]
        );
        assert_eq!(rows[0].rps, 1.5);
        assert_eq!(rows[1].error_rate, 1.0);
        assert_eq!(rows[1].status_codes.get("500"), Some(&3));
        assert!((rows[0].latency_ms.p50 - 2.0).abs() < 0.03);
        let table: Vec<(&str, &str, &str, u64)> = failures
            .iter()
            .map(|f| {
                (
                    f.request.as_str(),
                    f.kind.as_str(),
                    f.message.as_str(),
                    f.count,
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                ("broken", "status", "unexpected status 500", 3),
                ("broken", "connect", "connection refused", 1)
            ]
        );
    }

    #[test]
    fn failure_messages_beyond_the_cap_share_one_row() {
        let mut w = RequestWindow::default();
        for i in 0..MAX_FAILURES + 7 {
            let o = Outcome {
                reason: Some(format!("reason {i}").into()),
                ..outcome(None, Some(ErrorKind::Body))
            };
            w.record(&o, Duration::from_millis(1), Duration::from_millis(1));
        }
        assert_eq!(w.failures.len(), MAX_FAILURES + 1);
        assert_eq!(
            w.failures
                .get(&(ErrorKind::Body, OTHER_FAILURE.to_string())),
            Some(&7)
        );
        assert_eq!(w.failures.values().sum::<u64>(), w.errors.total);
    }
}
