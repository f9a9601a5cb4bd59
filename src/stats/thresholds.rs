//! Thresholds: declarative pass/fail criteria over a task's merged, cluster-wide figures, such
//! as `p99_ms < 200`, `error_rate < 0.01` or `achieved_rps >= 0.99 * planned`.
//!
//! A threshold is `<metric> <op> <value>`, where the value is a number or `<k> * planned`
//! (the planned rate, for `achieved_rps`). Metrics: `p50_ms`, `p90_ms`, `p95_ms`, `p99_ms`,
//! `p999_ms`, `max_ms`, `mean_ms` (corrected latency), `error_rate` (errors / completed),
//! `errors`, `achieved_rps` (completed per second), `late_starts`, `checks_failed` and
//! `checks_failed_rate` (failed checks / completed). Operators: `<`, `<=`, `>`, `>=`.
//!
//! A metric may name one request of the task: `p99_ms{request=login} < 200` holds that
//! request's figures (its name as the report shows it) to the bound.
//!
//! A `security_test` has its own counters ([`Scope::Scan`]): `findings` (all, or
//! `findings{severity=high}` of one severity, `findings{scan_type=xss}` of one check),
//! `requests_sent`, `requests_refused`, `errors` (requests with no answer) and `error_rate`
//! (errors over requests sent).
//!
//! They are evaluated over the figures *so far*, once per merged second, and over the final
//! figures at the end; the final evaluation is the verdict. With `abort_on_fail`, a threshold
//! that fails at a second after `delay_abort_eval` stops the run there (the `ThresholdWatch`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    P50Ms,
    P90Ms,
    P95Ms,
    P99Ms,
    P999Ms,
    MaxMs,
    MeanMs,
    ErrorRate,
    Errors,
    AchievedRps,
    LateStarts,
    ChecksFailed,
    ChecksFailedRate,
    Findings,
    RequestsSent,
    RequestsRefused,
}

const METRICS: &[(&str, Metric)] = &[
    ("p50_ms", Metric::P50Ms),
    ("p90_ms", Metric::P90Ms),
    ("p95_ms", Metric::P95Ms),
    ("p99_ms", Metric::P99Ms),
    ("p999_ms", Metric::P999Ms),
    ("max_ms", Metric::MaxMs),
    ("mean_ms", Metric::MeanMs),
    ("error_rate", Metric::ErrorRate),
    ("errors", Metric::Errors),
    ("achieved_rps", Metric::AchievedRps),
    ("late_starts", Metric::LateStarts),
    ("checks_failed", Metric::ChecksFailed),
    ("checks_failed_rate", Metric::ChecksFailedRate),
    ("findings", Metric::Findings),
    ("requests_sent", Metric::RequestsSent),
    ("requests_refused", Metric::RequestsRefused),
];

/// Which task kind's figures a threshold reads: a load task's (`load_test`,
/// `performance_test`, `stress_test`) or a scan's (`security_test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Load,
    Scan,
}

impl Metric {
    fn scopes(self) -> &'static [Scope] {
        match self {
            Metric::Errors | Metric::ErrorRate => &[Scope::Load, Scope::Scan],
            Metric::Findings | Metric::RequestsSent | Metric::RequestsRefused => &[Scope::Scan],
            _ => &[Scope::Load],
        }
    }

    fn name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }
}

/// What part of the task's figures a threshold reads: `{request=NAME}` (a load task's request
/// name), `{severity=high}` or `{scan_type=xss}` (a scan's findings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Request(String),
    Severity(String),
    ScanType(String),
}

impl Filter {
    /// `request=login`.
    pub fn key(&self) -> String {
        match self {
            Filter::Request(v) => format!("request={v}"),
            Filter::Severity(v) => format!("severity={v}"),
            Filter::ScanType(v) => format!("scan_type={v}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A bound: a number, or a multiple of the planned rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Value(f64),
    TimesPlanned(f64),
}

/// One threshold, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// As written, e.g. `p99_ms < 200`.
    pub expr: String,
    pub metric: Metric,
    /// `{request=NAME}`: the figures of that request name only (and a scan's filters).
    pub filter: Option<Filter>,
    pub op: Op,
    pub bound: Bound,
    pub abort_on_fail: bool,
    /// No abort before this much of the run has passed (the figures settle first).
    #[serde(with = "duration_ms")]
    pub delay_abort_eval: Duration,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A parsed expression: `<metric>[{request=NAME}] <op> <value>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub metric: Metric,
    pub filter: Option<Filter>,
    pub op: Op,
    pub bound: Bound,
}

/// Parses `<metric>[{request=NAME}] <op> <value>` for a task of `scope`; the error says what
/// is wrong. A scan's filter values (severities, scan types) are its reader's to check.
pub fn parse(expr: &str, scope: Scope) -> Result<Parsed, String> {
    let expr = expr.trim();
    let (at, op) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)]
        .iter()
        .find_map(|(s, op)| expr.find(s).map(|i| ((i, s.len()), *op)))
        .ok_or_else(|| format!("{expr:?} has no operator; expected <metric> <op> <value>, e.g. \"p99_ms < 200\" (operators: <, <=, >, >=)"))?;
    let (name, value) = (expr[..at.0].trim(), expr[at.0 + at.1..].trim());
    let (name, filter) = split_filter(name)?;
    let known = || {
        let names: Vec<&str> = METRICS
            .iter()
            .filter(|(_, m)| m.scopes().contains(&scope))
            .map(|(n, _)| *n)
            .collect();
        names.join(", ")
    };
    let metric = METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .ok_or_else(|| format!("unknown metric {name:?}; known: {}", known()))?;
    if !metric.scopes().contains(&scope) {
        let kind = match scope {
            Scope::Load => "a load task's (load_test, performance_test, stress_test)",
            Scope::Scan => "a security_test's",
        };
        return Err(format!(
            "{name:?} is not one of {kind} metrics; known: {}",
            known()
        ));
    }
    check_filter(metric, filter.as_ref())?;
    let number = |s: &str| -> Result<f64, String> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{s:?} is not a number"))
    };
    let bound = match value.split_once('*') {
        Some((k, p)) if p.trim() == "planned" => Bound::TimesPlanned(number(k)?),
        Some((p, k)) if p.trim() == "planned" => Bound::TimesPlanned(number(k)?),
        Some(_) => return Err(format!("{value:?}: expected a number or <k> * planned")),
        None if value == "planned" => Bound::TimesPlanned(1.0),
        None => Bound::Value(number(value)?),
    };
    if matches!(bound, Bound::TimesPlanned(_)) && metric != Metric::AchievedRps {
        return Err(format!(
            "{value:?}: only achieved_rps compares with the planned rate"
        ));
    }
    Ok(Parsed {
        metric,
        filter,
        op,
        bound,
    })
}

/// Whether `metric` takes `filter`: a load metric a request name, `findings` a severity or a
/// scan type, the other scan counters none.
fn check_filter(metric: Metric, filter: Option<&Filter>) -> Result<(), String> {
    let name = metric.name();
    match (metric, filter) {
        (_, None) => Ok(()),
        (Metric::LateStarts, Some(_)) => {
            Err("late_starts belongs to the task's arrivals, not to one request".into())
        }
        (Metric::Findings, Some(Filter::Severity(_) | Filter::ScanType(_))) => Ok(()),
        (Metric::Findings, Some(_)) => {
            Err("findings takes {severity=LEVEL} or {scan_type=TYPE}".into())
        }
        (m, Some(f)) if m.scopes() == [Scope::Scan] => Err(format!(
            "{name} takes no filter (`{}`); only findings does",
            f.key()
        )),
        (_, Some(Filter::Request(_))) => Ok(()),
        (_, Some(f)) => Err(format!(
            "{name}: `{}` filters a security_test's findings; a load task's metric takes \
             {{request=NAME}}",
            f.key()
        )),
    }
}

/// `p99_ms{request=login}` into `p99_ms` and `login` (the name may be quoted); the same for
/// `severity` and `scan_type`.
fn split_filter(name: &str) -> Result<(&str, Option<Filter>), String> {
    let Some((metric, rest)) = name.split_once('{') else {
        return Ok((name, None));
    };
    let inner = rest
        .strip_suffix('}')
        .ok_or_else(|| format!("{name:?}: a filter is written {{request=NAME}}, closed by }}"))?;
    let (key, value) = inner
        .split_once('=')
        .ok_or_else(|| format!("{name:?}: a filter is written {{request=NAME}}"))?;
    let make: fn(String) -> Filter = match key.trim() {
        "request" => Filter::Request,
        "severity" => Filter::Severity,
        "scan_type" => Filter::ScanType,
        other => {
            return Err(format!(
                "{name:?}: unknown filter {other:?}; the filters are request (a load task's), \
                 severity and scan_type (a security_test's findings)"
            ));
        }
    };
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .trim();
    if value.is_empty() {
        return Err(format!("{name:?}: the {} is empty", key.trim()));
    }
    Ok((metric.trim(), Some(make(value.to_string()))))
}

/// The figures a threshold reads: the task's, and each request name's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub completed: u64,
    pub errors: u64,
    pub late_starts: u64,
    pub achieved_rps: f64,
    /// The planned rate over the same time (0 for a closed model).
    pub planned_rps: f64,
    pub checks_failed: u64,
    /// By request name (empty within a request's own figures).
    pub requests: std::collections::BTreeMap<String, Figures>,
    /// A scan's findings, its requests sent (also its `completed`: an unanswered one is one
    /// of its `errors`) and refused.
    pub findings: u64,
    pub requests_sent: u64,
    pub requests_refused: u64,
    /// A scan's findings by [`Filter::Severity`] and [`Filter::ScanType`] (a filter it has
    /// no finding for reads 0).
    pub findings_by: std::collections::BTreeMap<Filter, u64>,
}

impl Figures {
    /// A task's figures so far: latency and counts over everything merged, rates over the
    /// seconds the load ran (`load_s` at most: see [`super::load_seconds`]).
    pub fn so_far(acc: &super::TaskAccumulator, load_s: f64) -> Figures {
        let total = acc.total();
        let p = super::Percentiles::of(&total.corrected);
        let mut f = Figures::rates(acc.timeline(), load_s);
        f.p50_ms = p.p50;
        f.p90_ms = p.p90;
        f.p95_ms = p.p95;
        f.p99_ms = p.p99;
        f.p999_ms = p.p999;
        f.max_ms = p.max;
        f.mean_ms = p.mean;
        f.completed = total.completed;
        f.errors = total.errors.total;
        f.late_starts = total.late_starts;
        let seconds = super::load_seconds(acc.timeline().len(), load_s);
        for r in acc.request_rows(seconds) {
            f.checks_failed += r.checks_failed;
            let p = r.latency_ms;
            f.requests.insert(
                r.name,
                Figures {
                    p50_ms: p.p50,
                    p90_ms: p.p90,
                    p95_ms: p.p95,
                    p99_ms: p.p99,
                    p999_ms: p.p999,
                    max_ms: p.max,
                    mean_ms: p.mean,
                    completed: r.count,
                    errors: r.errors.total,
                    achieved_rps: r.rps,
                    // The task's: a flow's iterations hold to it (`(iteration)`).
                    planned_rps: f.planned_rps,
                    checks_failed: r.checks_failed,
                    ..Figures::default()
                },
            );
        }
        f
    }

    /// The achieved and planned rates over the seconds the load ran (the drain excluded).
    fn rates(timeline: &[super::TimelinePoint], load_s: f64) -> Figures {
        let seconds = super::load_seconds(timeline.len(), load_s);
        let completed = timeline.iter().map(|p| p.completed).sum::<u64>();
        let planned: f64 = timeline.iter().map(|p| p.planned).sum();
        Figures {
            achieved_rps: super::achieved_rps(completed, seconds),
            planned_rps: if seconds > 0.0 {
                planned / seconds
            } else {
                0.0
            },
            ..Figures::default()
        }
    }

    fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::P50Ms => self.p50_ms,
            Metric::P90Ms => self.p90_ms,
            Metric::P95Ms => self.p95_ms,
            Metric::P99Ms => self.p99_ms,
            Metric::P999Ms => self.p999_ms,
            Metric::MaxMs => self.max_ms,
            Metric::MeanMs => self.mean_ms,
            Metric::ErrorRate if self.completed == 0 => 0.0,
            Metric::ErrorRate => self.errors as f64 / self.completed as f64,
            Metric::Errors => self.errors as f64,
            Metric::AchievedRps => self.achieved_rps,
            Metric::LateStarts => self.late_starts as f64,
            Metric::ChecksFailed => self.checks_failed as f64,
            Metric::ChecksFailedRate if self.completed == 0 => 0.0,
            Metric::ChecksFailedRate => self.checks_failed as f64 / self.completed as f64,
            Metric::Findings => self.findings as f64,
            Metric::RequestsSent => self.requests_sent as f64,
            Metric::RequestsRefused => self.requests_refused as f64,
        }
    }
}

/// A threshold's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verdict {
    pub threshold: String,
    pub passed: bool,
    /// The metric's value.
    pub actual: f64,
    /// The bound it was held to (a multiple of planned, worked out).
    pub bound: f64,
    /// This threshold stopped the run (`abort_on_fail`), at this second.
    pub aborted_at_s: Option<u64>,
}

impl Threshold {
    pub fn evaluate(&self, f: &Figures) -> Verdict {
        let f = match &self.filter {
            // A name that ran nothing reads as an empty row.
            Some(Filter::Request(name)) => f.requests.get(name).cloned().unwrap_or_default(),
            Some(by) => Figures {
                findings: f.findings_by.get(by).copied().unwrap_or(0),
                ..Figures::default()
            },
            None => f.clone(),
        };
        let actual = f.get(self.metric);
        let bound = match self.bound {
            Bound::Value(v) => v,
            Bound::TimesPlanned(k) => k * f.planned_rps,
        };
        Verdict {
            threshold: self.expr.clone(),
            passed: self.op.holds(actual, bound),
            actual,
            bound,
            aborted_at_s: None,
        }
    }

    /// `p99_ms 250.3 is not < 200`.
    pub fn explain(&self, v: &Verdict) -> String {
        let name = self.metric.name();
        format!(
            "threshold `{}` failed: {name} {} is not {} {}",
            self.expr,
            round(v.actual),
            self.op.as_str(),
            round(v.bound)
        )
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Watches a task's thresholds second by second; the first failing one with `abort_on_fail`
/// past its delay stops the run.
#[derive(Debug, Clone)]
pub struct ThresholdWatch {
    thresholds: Vec<Threshold>,
    /// The threshold that stopped the run, and at which second.
    aborted: Option<(usize, u64)>,
    /// How long the load runs (seconds): rates never count the drain after it.
    load_s: f64,
}

impl ThresholdWatch {
    pub fn new(thresholds: Vec<Threshold>) -> ThresholdWatch {
        ThresholdWatch {
            load_s: f64::INFINITY,
            thresholds,
            aborted: None,
        }
    }

    /// For a task whose load runs `duration`.
    pub fn over(mut self, duration: Duration) -> ThresholdWatch {
        self.load_s = duration.as_secs_f64();
        self
    }

    /// How long the load runs, in seconds (the rates' time, see [`super::load_seconds`]).
    pub fn load_s(&self) -> f64 {
        self.load_s
    }

    /// The figures so far after `second` (0-based) merged: the reason to stop, if any.
    pub fn second(&mut self, second: u64, so_far: &Figures) -> Option<String> {
        if self.aborted.is_some() {
            return None;
        }
        let elapsed = Duration::from_secs(second + 1);
        for (i, t) in self.thresholds.iter().enumerate() {
            if !t.abort_on_fail || elapsed < t.delay_abort_eval {
                continue;
            }
            let v = t.evaluate(so_far);
            if !v.passed {
                self.aborted = Some((i, second));
                return Some(format!("{} at {} s; aborted", t.explain(&v), second + 1));
            }
        }
        None
    }

    /// The threshold that stopped the run (its index), and at which second (0-based).
    pub fn aborted(&self) -> Option<(usize, u64)> {
        self.aborted
    }

    /// The verdicts over the final figures.
    pub fn verdicts(&self, last: &Figures) -> Vec<Verdict> {
        verdicts(&self.thresholds, last, self.aborted)
    }
}

/// The verdicts of `thresholds` over `figures`; `aborted` marks the one that stopped the run.
pub fn verdicts(
    thresholds: &[Threshold],
    figures: &Figures,
    aborted: Option<(usize, u64)>,
) -> Vec<Verdict> {
    thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut v = t.evaluate(figures);
            if let Some((at, s)) = aborted
                && at == i
            {
                // It failed when it stopped the run, whatever the last figures say.
                v.passed = false;
                v.aborted_at_s = Some(s + 1);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(expr: &str, abort: bool, delay_s: u64) -> Threshold {
        let Parsed {
            metric,
            filter,
            op,
            bound,
        } = parse(expr, Scope::Load)
            .or_else(|_| parse(expr, Scope::Scan))
            .unwrap();
        Threshold {
            expr: expr.into(),
            metric,
            filter,
            op,
            bound,
            abort_on_fail: abort,
            delay_abort_eval: Duration::from_secs(delay_s),
        }
    }

    fn parsed(expr: &str) -> (Metric, Option<Filter>, Op, Bound) {
        let p = parse(expr, Scope::Load).unwrap();
        (p.metric, p.filter, p.op, p.bound)
    }

    #[test]
    fn expressions_parse_or_say_why_not() {
        assert_eq!(
            parsed("p99_ms < 200"),
            (Metric::P99Ms, None, Op::Lt, Bound::Value(200.0))
        );
        assert_eq!(
            parsed(" achieved_rps>=0.99 * planned"),
            (Metric::AchievedRps, None, Op::Ge, Bound::TimesPlanned(0.99))
        );
        assert_eq!(
            parsed("error_rate <= 0.01"),
            (Metric::ErrorRate, None, Op::Le, Bound::Value(0.01))
        );
        assert_eq!(
            parsed("p99_ms{request=login} < 200"),
            (
                Metric::P99Ms,
                Some(Filter::Request("login".into())),
                Op::Lt,
                Bound::Value(200.0)
            )
        );
        assert_eq!(
            parsed("error_rate{ request = \"GET /items\" }<0.01"),
            (
                Metric::ErrorRate,
                Some(Filter::Request("GET /items".into())),
                Op::Lt,
                Bound::Value(0.01)
            )
        );
        assert_eq!(
            parsed("checks_failed_rate < 0.001"),
            (Metric::ChecksFailedRate, None, Op::Lt, Bound::Value(0.001))
        );
        for (bad, why) in [
            ("p99 < 200", "unknown metric"),
            ("p99_ms 200", "no operator"),
            ("p99_ms < fast", "not a number"),
            ("p99_ms < 0.5 * planned", "only achieved_rps"),
            ("error_rate < NaN", "not a number"),
            ("p99_ms{request=login < 200", "closed by }"),
            ("p99_ms{node=a} < 200", "unknown filter \"node\""),
            ("p99_ms{request=} < 200", "empty"),
            ("late_starts{request=a} < 2", "not to one request"),
        ] {
            let e = parse(bad, Scope::Load).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn verdicts_hold_the_figures_to_their_bounds() {
        let f = Figures {
            p99_ms: 250.0,
            completed: 1000,
            errors: 5,
            achieved_rps: 99.5,
            planned_rps: 100.0,
            ..Figures::default()
        };
        let vs = verdicts(
            &[
                t("p99_ms < 200", false, 0),
                t("error_rate < 0.01", false, 0),
                t("achieved_rps >= 0.99 * planned", false, 0),
            ],
            &f,
            None,
        );
        assert_eq!(
            vs.iter().map(|v| v.passed).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert_eq!(vs[1].actual, 0.005);
        assert_eq!(vs[2].bound, 99.0);
    }

    /// A filtered threshold reads its request's figures only: the task's are fine, one
    /// request's are not, and a name that ran nothing reads as empty.
    #[test]
    fn a_filtered_threshold_holds_one_request_to_its_bound() {
        let login = Figures {
            p99_ms: 450.0,
            completed: 100,
            errors: 3,
            checks_failed: 2,
            ..Figures::default()
        };
        let mut f = Figures {
            p99_ms: 120.0,
            completed: 10_000,
            errors: 3,
            checks_failed: 2,
            ..Figures::default()
        };
        f.requests.insert("login".into(), login);
        let vs = verdicts(
            &[
                t("p99_ms < 200", false, 0),
                t("p99_ms{request=login} < 200", false, 0),
                t("error_rate{request=login} < 0.01", false, 0),
                t("checks_failed_rate < 0.001", false, 0),
                t("checks_failed_rate{request=login} < 0.001", false, 0),
                t("errors{request=idle} < 1", false, 0),
            ],
            &f,
            None,
        );
        assert_eq!(
            vs.iter().map(|v| v.passed).collect::<Vec<_>>(),
            [true, false, false, true, false, true]
        );
        assert_eq!(vs[1].actual, 450.0);
        assert_eq!(vs[2].actual, 0.03);
        assert_eq!(vs[4].actual, 0.02);
    }

    #[test]
    fn the_watch_aborts_after_its_delay_on_the_first_failing_second() {
        let mut w = ThresholdWatch::new(vec![
            t("p99_ms < 200", true, 3),
            t("errors < 1000", false, 0),
        ]);
        let slow = Figures {
            p99_ms: 900.0,
            ..Figures::default()
        };
        // Seconds 0 and 1 (1 s and 2 s in) are inside the delay.
        assert_eq!(w.second(0, &slow), None);
        assert_eq!(w.second(1, &slow), None);
        let why = w.second(2, &slow).expect("stops at 3 s");
        assert!(why.contains("p99_ms 900 is not < 200"), "{why}");
        assert_eq!(w.second(3, &slow), None, "once");
        let vs = w.verdicts(&Figures::default());
        assert!(!vs[0].passed, "the aborting threshold failed");
        assert_eq!(vs[0].aborted_at_s, Some(3));
        assert!(vs[1].passed);
    }
}
