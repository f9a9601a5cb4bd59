//! Latency and count statistics: the one-second [`Window`] a worker records into, and the
//! [`TaskAccumulator`] that merges the windows of every shard into live and final figures.
//! Plain data and functions: the actors only move windows around.

pub mod change;
pub mod compare;
pub mod csv;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod html;
pub mod junit;
pub mod report;
pub mod request;
pub mod request_view;
pub mod thresholds;
pub mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram tracks (10 minutes, in microseconds); larger values saturate.
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Records a latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US);
    h.saturating_record(us);
}

/// Why a request failed. Failures never stop a run; they are counted by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection could be made or the connection broke while sending.
    Connect,
    /// No complete response within the target's timeout (or the end-of-run drain).
    Timeout,
    /// A response whose status the target does not expect (or a refused redirect).
    Status,
    /// A response that could not be read or parsed.
    Body,
    /// A TLS handshake that failed or a certificate that was refused.
    Tls,
    /// A flow step's check that failed, or its capture that found nothing.
    Check,
}

impl ErrorKind {
    /// Every kind, in the order of the wire's error arrays.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Status,
        ErrorKind::Body,
        ErrorKind::Tls,
        ErrorKind::Check,
    ];

    /// Its name in reports and labels.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Body => "body",
            ErrorKind::Tls => "tls",
            ErrorKind::Check => "check",
        }
    }

    /// Its index in [`ErrorKind::ALL`].
    pub fn index(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorCounts {
    pub total: u64,
    pub connect: u64,
    pub timeout: u64,
    pub status: u64,
    pub body: u64,
    /// Absent from reports stored before TLS was added (read as 0).
    #[serde(default)]
    pub tls: u64,
    /// Failed checks and captures of flow steps (absent from older reports: 0).
    #[serde(default)]
    pub check: u64,
}

impl ErrorCounts {
    /// The count of one kind.
    pub fn of(&self, kind: ErrorKind) -> u64 {
        match kind {
            ErrorKind::Connect => self.connect,
            ErrorKind::Timeout => self.timeout,
            ErrorKind::Status => self.status,
            ErrorKind::Body => self.body,
            ErrorKind::Tls => self.tls,
            ErrorKind::Check => self.check,
        }
    }

    pub fn add(&mut self, kind: ErrorKind) {
        self.total += 1;
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::Status => self.status += 1,
            ErrorKind::Body => self.body += 1,
            ErrorKind::Tls => self.tls += 1,
            ErrorKind::Check => self.check += 1,
        }
    }

    pub fn merge(&mut self, o: &ErrorCounts) {
        self.total += o.total;
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.status += o.status;
        self.body += o.body;
        self.tls += o.tls;
        self.check += o.check;
    }
}

/// How one request ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The status of the (last) response, if one arrived.
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    pub bytes: u64,
    /// Slower than the target's `expected_response_time`.
    pub slow: bool,
    /// The TLS handshake of the connection this exchange opened, if it opened one.
    pub handshake: Option<Handshake>,
    /// Why it failed, for the failures table (none: the status, or the kind, says it).
    pub reason: Option<Box<str>>,
    /// A flow step's checks that failed.
    pub checks_failed: u32,
}

/// A TLS handshake: a full one, or a session resumed from an earlier connection's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Full,
    Resumed,
}

mod encoding;

pub use encoding::Legacy as LegacyWindow;

/// What one worker saw of one task during one second. Its serde form is its wire and store
/// encoding (see [`encoding`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Seconds since the task's start: this window covers `[index, index + 1)`.
    pub index: u64,
    /// Requests started in the window.
    pub sent: u64,
    /// Requests finished in the window (successes and failures).
    pub completed: u64,
    /// Open model: arrivals that had to wait for the `concurrent_users` cap.
    pub late_starts: u64,
    pub errors: ErrorCounts,
    pub slow: u64,
    pub bytes: u64,
    pub status_codes: BTreeMap<u16, u64>,
    /// Latency from the planned start (coordinated-omission corrected).
    pub corrected: Histogram<u64>,
    /// Latency from the actual send.
    pub uncorrected: Histogram<u64>,
    /// TLS connections opened with a full handshake, and with a resumed session.
    pub tls_handshakes_full: u64,
    pub tls_handshakes_resumed: u64,
    /// Per request name, by slot (`request::RequestNames`); `None` for a name not seen.
    pub requests: Vec<Option<Box<request::RequestWindow>>>,
    /// A flow: iterations started (an open model's arrivals, a closed model's turns).
    pub iterations: u64,
    /// A flow: arrivals not started because a `unique` data source had no row left.
    pub data_exhausted: u64,
}

impl Window {
    pub fn new(index: u64) -> Window {
        Window {
            index,
            sent: 0,
            completed: 0,
            late_starts: 0,
            errors: ErrorCounts::default(),
            slow: 0,
            bytes: 0,
            status_codes: BTreeMap::new(),
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            tls_handshakes_full: 0,
            tls_handshakes_resumed: 0,
            requests: Vec::new(),
            iterations: 0,
            data_exhausted: 0,
        }
    }

    /// Records what is not a request of its own under slot `slot` only: a flow's group or
    /// iteration (its requests are recorded each on its own).
    pub fn record_aside(
        &mut self,
        slot: usize,
        outcome: &Outcome,
        corrected: Duration,
        uncorrected: Duration,
    ) {
        self.request_mut(slot)
            .record(outcome, corrected, uncorrected);
    }

    /// Records a finished request of slot `slot` (its name's): in the task's figures and in
    /// its name's.
    pub fn record_request(
        &mut self,
        slot: usize,
        outcome: &Outcome,
        corrected: Duration,
        uncorrected: Duration,
    ) {
        self.record(outcome, corrected, uncorrected);
        self.request_mut(slot)
            .record(outcome, corrected, uncorrected);
    }

    /// The window of slot `slot`, made on first use.
    pub fn request_mut(&mut self, slot: usize) -> &mut request::RequestWindow {
        if self.requests.len() <= slot {
            self.requests.resize_with(slot + 1, || None);
        }
        self.requests[slot].get_or_insert_with(Box::default)
    }

    /// Records a finished request. `corrected` runs from the planned start, `uncorrected` from
    /// the moment it was actually sent.
    pub fn record(&mut self, outcome: &Outcome, corrected: Duration, uncorrected: Duration) {
        self.completed += 1;
        record(&mut self.corrected, corrected);
        record(&mut self.uncorrected, uncorrected);
        if let Some(kind) = outcome.error {
            self.errors.add(kind);
        }
        if let Some(code) = outcome.status {
            *self.status_codes.entry(code).or_default() += 1;
        }
        self.bytes += outcome.bytes;
        self.slow += u64::from(outcome.slow);
        match outcome.handshake {
            Some(Handshake::Full) => self.tls_handshakes_full += 1,
            Some(Handshake::Resumed) => self.tls_handshakes_resumed += 1,
            None => {}
        }
    }

    pub fn merge(&mut self, o: &Window) {
        self.sent += o.sent;
        self.completed += o.completed;
        self.late_starts += o.late_starts;
        self.errors.merge(&o.errors);
        self.slow += o.slow;
        self.bytes += o.bytes;
        self.tls_handshakes_full += o.tls_handshakes_full;
        self.tls_handshakes_resumed += o.tls_handshakes_resumed;
        self.iterations += o.iterations;
        self.data_exhausted += o.data_exhausted;
        for (code, n) in &o.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        // Same bounds on both sides, so adding cannot fail.
        self.corrected
            .add(&o.corrected)
            .expect("histograms share bounds");
        self.uncorrected
            .add(&o.uncorrected)
            .expect("histograms share bounds");
        for (slot, r) in o.requests.iter().enumerate() {
            if let Some(r) = r {
                self.request_mut(slot).merge(r);
            }
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// One quantile of a microsecond histogram, in milliseconds (0 when empty).
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: quantile_ms(h, 0.50),
            p90: quantile_ms(h, 0.90),
            p95: quantile_ms(h, 0.95),
            p99: quantile_ms(h, 0.99),
            p999: quantile_ms(h, 0.999),
            max: h.max() as f64 / 1000.0,
            mean: h.mean() / 1000.0,
        }
    }
}

/// One second of a task, merged across shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelinePoint {
    pub second: u64,
    /// Requests the plan called for in this second (open model; 0 for closed).
    pub planned: f64,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub p50_ms: f64,
    /// Absent from reports stored before p95 was added (read as 0).
    #[serde(default)]
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Figures of a task so far, for live progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub late_starts: u64,
    pub latency_ms: Percentiles,
    /// The latest complete second, if any.
    pub last_second: Option<TimelinePoint>,
}

/// Merges the windows of several shards (a node's workers, or a task's nodes) second by
/// second. A second is complete once every shard has reported it or finished.
pub struct WindowMerger {
    shards: Vec<ShardState>,
    pending: BTreeMap<u64, Window>,
    ready: Vec<Window>,
}

#[derive(Clone, Copy, Default)]
struct ShardState {
    /// Highest window index reported plus one (0: none yet).
    next: u64,
    done: bool,
}

impl WindowMerger {
    pub fn new(shards: usize) -> WindowMerger {
        WindowMerger {
            shards: vec![ShardState::default(); shards],
            pending: BTreeMap::new(),
            ready: Vec::new(),
        }
    }

    /// Adds one shard's window; `last` marks the shard's final window. `false` for a shard
    /// this merger does not have.
    pub fn add(&mut self, shard: usize, window: Window, last: bool) -> bool {
        let Some(state) = self.shards.get_mut(shard) else {
            return false;
        };
        state.next = state.next.max(window.index + 1);
        state.done |= last;
        match self.pending.entry(window.index) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&window),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(window);
            }
        }
        self.settle();
        true
    }

    /// A shard that will send nothing more (its node was lost): stop waiting for it.
    pub fn finish(&mut self, shard: usize) {
        if let Some(state) = self.shards.get_mut(shard) {
            state.done = true;
            self.settle();
        }
    }

    fn settle(&mut self) {
        let complete_below = self
            .shards
            .iter()
            .map(|s| if s.done { u64::MAX } else { s.next })
            .min()
            .unwrap_or(0);
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= complete_below {
                break;
            }
            self.ready.push(entry.remove());
        }
    }

    /// The seconds completed since the last call, in order.
    pub fn take_ready(&mut self) -> Vec<Window> {
        std::mem::take(&mut self.ready)
    }

    pub fn is_done(&self) -> bool {
        self.shards.iter().all(|s| s.done)
    }

    pub fn is_shard_done(&self, shard: usize) -> bool {
        self.shards.get(shard).is_some_and(|s| s.done)
    }
}

/// One shard's (node's) running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ShardTotals {
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
}

/// Merges the windows of every shard of one task into live and final figures.
pub struct TaskAccumulator {
    merger: WindowMerger,
    total: Window,
    shard_totals: Vec<ShardTotals>,
    timeline: Vec<TimelinePoint>,
    planned_per_second: Box<dyn Fn(u64) -> f64 + Send>,
    names: request::RequestNames,
}

impl TaskAccumulator {
    /// `planned_per_second(k)` gives the plan's request count for second `k`.
    pub fn new(shards: usize, planned_per_second: Box<dyn Fn(u64) -> f64 + Send>) -> Self {
        TaskAccumulator {
            merger: WindowMerger::new(shards),
            total: Window::new(0),
            shard_totals: vec![ShardTotals::default(); shards],
            timeline: Vec::new(),
            planned_per_second,
            names: request::RequestNames::default(),
        }
    }

    /// From now on, the seconds not merged yet are planned by `planned_per_second` (a live
    /// change of the task's plan; the seconds merged keep what was planned for them).
    pub fn set_planned(&mut self, planned_per_second: Box<dyn Fn(u64) -> f64 + Send>) {
        self.planned_per_second = planned_per_second;
    }

    /// With the task's request names, for its per-request figures.
    pub fn named(mut self, names: request::RequestNames) -> Self {
        self.names = names;
        self
    }

    /// The task's request names (none for a scan).
    pub fn names(&self) -> &request::RequestNames {
        &self.names
    }

    /// The per-request figures so far, one row per name (`ran_s`: see [`load_seconds`]).
    pub fn request_rows(&self, ran_s: f64) -> Vec<request::RequestReport> {
        request::rows(&self.names, &self.total.requests, ran_s).0
    }

    /// For a task that plans no rate (a closed model, a scan).
    pub fn unplanned(shards: usize) -> Self {
        TaskAccumulator::new(shards, Box::new(|_| 0.0))
    }

    /// Adds one shard's window; `last` marks the shard's final window.
    pub fn add(&mut self, shard: usize, window: Window, last: bool) {
        let Some(t) = self.shard_totals.get_mut(shard) else {
            return;
        };
        t.sent += window.sent;
        t.completed += window.completed;
        t.errors += window.errors.total;
        self.total.merge(&window);
        self.merger.add(shard, window, last);
        self.settle();
    }

    /// A shard that will send nothing more.
    pub fn finish(&mut self, shard: usize) {
        self.merger.finish(shard);
        self.settle();
    }

    pub fn is_shard_done(&self, shard: usize) -> bool {
        self.merger.is_shard_done(shard)
    }

    pub fn shard_totals(&self) -> &[ShardTotals] {
        &self.shard_totals
    }

    fn settle(&mut self) {
        for w in self.merger.take_ready() {
            let mut next_second = self.timeline.last().map_or(0, |p| p.second + 1);
            if w.index < next_second {
                // A second already settled, from a shard that was given up on and came back
                // (a lost node's late window): its counts join that second's point; the
                // point's percentiles stay those of the windows it settled with (the totals
                // take the late window's histograms whole).
                if let Some(p) = self.timeline.iter_mut().find(|p| p.second == w.index) {
                    p.sent += w.sent;
                    p.completed += w.completed;
                    p.errors += w.errors.total;
                }
                continue;
            }
            // Seconds in which no shard reported anything still appear, as empty points.
            while next_second < w.index {
                let empty = TimelinePoint {
                    second: next_second,
                    planned: (self.planned_per_second)(next_second),
                    sent: 0,
                    completed: 0,
                    errors: 0,
                    p50_ms: 0.0,
                    p95_ms: 0.0,
                    p99_ms: 0.0,
                };
                self.timeline.push(empty);
                next_second += 1;
            }
            let point = self.point(&w);
            self.timeline.push(point);
        }
    }

    fn point(&self, w: &Window) -> TimelinePoint {
        TimelinePoint {
            second: w.index,
            planned: (self.planned_per_second)(w.index),
            sent: w.sent,
            completed: w.completed,
            errors: w.errors.total,
            p50_ms: quantile_ms(&w.corrected, 0.50),
            p95_ms: quantile_ms(&w.corrected, 0.95),
            p99_ms: quantile_ms(&w.corrected, 0.99),
        }
    }

    pub fn is_done(&self) -> bool {
        self.merger.is_done()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sent: self.total.sent,
            completed: self.total.completed,
            errors: self.total.errors.total,
            late_starts: self.total.late_starts,
            latency_ms: Percentiles::of(&self.total.corrected),
            last_second: self.timeline.last().cloned(),
        }
    }

    /// Everything merged so far.
    pub fn total(&self) -> &Window {
        &self.total
    }

    pub fn timeline(&self) -> &[TimelinePoint] {
        &self.timeline
    }
}

/// The seconds a task's load ran, for its rates: the seconds merged so far, never more than
/// `load_s`, the time the load was meant to run (the plan's duration, or up to the stop of a
/// run cancelled or stopped early). The drain after the last planned second is not load time.
pub fn load_seconds(merged_seconds: usize, load_s: f64) -> f64 {
    (merged_seconds as f64).min(load_s).max(0.0)
}

/// The achieved rate, the one definition that the report, the thresholds, the live view (REST,
/// UI, MCP) and the CLI show: requests completed over the seconds the load ran (`ran_s`, see
/// [`load_seconds`]). Requests that complete during the drain count; the drain's time does not.
/// 0 when no time ran.
pub fn achieved_rps(completed: u64, ran_s: f64) -> f64 {
    if ran_s > 0.0 {
        completed as f64 / ran_s
    } else {
        0.0
    }
}

/// The coordinated-omission rule in one place: latency is measured from when the request
/// *should* have started: `corrected = completed - min(planned, sent)`,
/// `uncorrected = completed - sent`. A request sent a little early (the arrival loop wakes
/// within the timer's 1 ms resolution of the planned time) is measured from its send, so the
/// corrected figure is never below the uncorrected one.
pub fn latencies(
    planned: std::time::Instant,
    sent: std::time::Instant,
    completed: std::time::Instant,
) -> (Duration, Duration) {
    let reference = planned.min(sent);
    (
        completed.saturating_duration_since(reference),
        completed.saturating_duration_since(sent),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_achieved_rate_is_over_the_seconds_that_ran_without_the_drain() {
        // 50 rps for 6 s, the last requests completing in 2 drain seconds: 50, not 37.5.
        assert_eq!(load_seconds(8, 6.0), 6.0);
        assert_eq!(achieved_rps(300, load_seconds(8, 6.0)), 50.0);
        // Mid-run: the seconds merged so far.
        assert_eq!(achieved_rps(150, load_seconds(3, 6.0)), 50.0);
        // Cancelled after 10 s of a 300 s plan at 107 rps: over the 10 s that ran.
        assert_eq!(achieved_rps(1070, load_seconds(11, 10.0)), 107.0);
        // A fraction of a second planned: the fraction, not the whole second.
        assert_eq!(achieved_rps(25, load_seconds(2, 0.5)), 50.0);
        // No time: no rate.
        assert_eq!(achieved_rps(10, load_seconds(0, 6.0)), 0.0);
        assert_eq!(achieved_rps(10, 0.0), 0.0);
    }

    fn ok() -> Outcome {
        Outcome {
            status: Some(200),
            error: None,
            bytes: 10,
            slow: false,
            handshake: None,
            ..Outcome::default()
        }
    }

    /// Synthetic timings: a server that stalls for 1 s once, behind a cap that queues the
    /// arrivals; the corrected figure sees the stall in every queued request, the uncorrected
    /// one only in the few that were in flight.
    #[test]
    fn correction_on_synthetic_timings() {
        let t0 = Instant::now();
        let ms = |x: u64| t0 + Duration::from_millis(x);
        let mut w = Window::new(0);
        // 1,000 arrivals every 5 ms; service takes 1 ms, except that everything in flight or
        // queued between 1000 ms and 2000 ms completes at 2000 ms. One request in flight at a
        // time: the first one sent at 1000 ms waits the whole second, the queued ones are sent
        // at 2000 ms and take 1 ms each.
        let mut free_at = 0u64;
        let mut exact = Vec::new();
        for i in 0..1000u64 {
            let planned = i * 5;
            let sent = planned.max(free_at);
            let done = if (1000..2000).contains(&sent) {
                2000
            } else {
                sent + 1
            };
            free_at = done;
            exact.push(done - planned);
            let (c, u) = latencies(ms(planned), ms(sent), ms(done));
            w.record(&ok(), c, u);
        }
        exact.sort_unstable();
        let true_p99 = exact[(exact.len() * 99).div_ceil(100) - 1] as f64;
        let corrected = Percentiles::of(&w.corrected);
        let uncorrected = Percentiles::of(&w.uncorrected);
        assert!(
            true_p99 > 900.0,
            "the stall dominates the true p99: {true_p99}"
        );
        assert!(
            (corrected.p99 - true_p99).abs() <= true_p99 * 0.002,
            "corrected p99 {} vs true {true_p99}",
            corrected.p99
        );
        assert!(uncorrected.p99 < 5.0, "uncorrected p99 {}", uncorrected.p99);
        assert!((corrected.max - 1000.0).abs() < 2.0 && (uncorrected.max - 1000.0).abs() < 2.0);
    }

    #[test]
    fn an_early_send_is_measured_from_the_send() {
        let t0 = Instant::now();
        let ms = |x: u64| t0 + Duration::from_millis(x);
        // Sent 1 ms before its planned time, done 3 ms after the send.
        assert_eq!(
            latencies(ms(5), ms(4), ms(7)),
            (Duration::from_millis(3), Duration::from_millis(3))
        );
        // Sent 10 ms late: the wait counts.
        assert_eq!(
            latencies(ms(5), ms(15), ms(17)),
            (Duration::from_millis(12), Duration::from_millis(2))
        );
    }

    #[test]
    fn windows_merge_and_settle_in_order() {
        let mut acc = TaskAccumulator::new(2, Box::new(|_| 10.0));
        let mut a0 = Window::new(0);
        a0.sent = 5;
        a0.record(&ok(), Duration::from_millis(2), Duration::from_millis(1));
        acc.add(0, a0, false);
        assert!(
            acc.timeline().is_empty(),
            "shard 1 has not reported second 0"
        );
        let mut b0 = Window::new(0);
        b0.sent = 5;
        b0.errors.add(ErrorKind::Timeout);
        acc.add(1, b0, false);
        assert_eq!(acc.timeline().len(), 1);
        assert_eq!(acc.timeline()[0].sent, 10);
        assert_eq!(acc.timeline()[0].errors, 1);
        // Shard 0 ends at second 2 (second 1 empty for it), shard 1 at second 1.
        acc.add(0, Window::new(2), true);
        assert_eq!(acc.timeline().len(), 1);
        acc.add(1, Window::new(1), true);
        assert_eq!(
            acc.timeline().iter().map(|p| p.second).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(acc.is_done());
        assert_eq!(acc.total().sent, 10);
        assert_eq!(acc.snapshot().completed, 1);
    }

    /// A shard given up on (its node was lost) that comes back: its windows of seconds that
    /// settled without it join those seconds (no second twice), and the totals.
    #[test]
    fn a_given_up_shards_late_windows_join_their_seconds() {
        let mut acc = TaskAccumulator::new(2, Box::new(|_| 10.0));
        acc.finish(1);
        for i in 0..3 {
            let mut w = Window::new(i);
            w.sent = 4;
            acc.add(0, w, i == 2);
        }
        assert_eq!(acc.timeline().len(), 3);
        let mut late = Window::new(1);
        late.sent = 3;
        late.record(&ok(), Duration::from_millis(2), Duration::from_millis(1));
        acc.add(1, late, false);
        let seconds: Vec<(u64, u64, u64)> = acc
            .timeline()
            .iter()
            .map(|p| (p.second, p.sent, p.completed))
            .collect();
        assert_eq!(seconds, [(0, 4, 0), (1, 7, 1), (2, 4, 0)]);
        assert_eq!(acc.shard_totals()[1].sent, 3);
        assert_eq!((acc.total().sent, acc.total().completed), (15, 1));
    }
}
