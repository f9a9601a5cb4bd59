//! The report's two tables as CSV (`mcpt run --csv DIR`, `GET
//! /api/executions/{id}/report.csv?table=`): every task's per-second timeline, and every
//! task's per-request table. Pure renderers of [`Report`], one header row each, one row per
//! task and second (or request name).

use serde::Serialize;

use super::report::Report;

/// The tables there are, by the name the REST route and the file take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `timeline.csv`.
    Timeline,
    /// `requests.csv`.
    Requests,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Timeline, Table::Requests];

    pub fn name(self) -> &'static str {
        match self {
            Table::Timeline => "timeline",
            Table::Requests => "requests",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table of `report`, as CSV text.
    pub fn render<S>(self, report: &Report<S>) -> String {
        match self {
            Table::Timeline => timeline(report),
            Table::Requests => requests(report),
        }
    }
}

#[derive(Serialize)]
struct TimelineRow<'a> {
    task: &'a str,
    second: u64,
    planned: f64,
    sent: u64,
    completed: u64,
    errors: u64,
    /// Completed in this second: its rate.
    rps: u64,
    error_rate: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize)]
struct RequestRow<'a> {
    task: &'a str,
    name: &'a str,
    method: &'a str,
    count: u64,
    errors: u64,
    error_rate: f64,
    rps: f64,
    checks_failed: u64,
    p50_ms: f64,
    p90_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    mean_ms: f64,
}

/// Every task's timeline: one row per task and second.
pub fn timeline<S>(report: &Report<S>) -> String {
    let rows = report.tasks.iter().flat_map(|t| {
        t.timeline.iter().map(|p| TimelineRow {
            task: &t.name,
            second: p.second,
            planned: p.planned,
            sent: p.sent,
            completed: p.completed,
            errors: p.errors,
            rps: p.completed,
            error_rate: if p.completed > 0 {
                p.errors as f64 / p.completed as f64
            } else {
                0.0
            },
            p50_ms: p.p50_ms,
            p95_ms: p.p95_ms,
            p99_ms: p.p99_ms,
        })
    });
    write(rows, TIMELINE_HEADER)
}

/// Every task's per-request table: one row per task and request name.
pub fn requests<S>(report: &Report<S>) -> String {
    let rows = report.tasks.iter().flat_map(|t| {
        t.requests.iter().map(|r| RequestRow {
            task: &t.name,
            name: &r.name,
            method: &r.method,
            count: r.count,
            errors: r.errors.total,
            error_rate: r.error_rate,
            rps: r.rps,
            checks_failed: r.checks_failed,
            p50_ms: r.latency_ms.p50,
            p90_ms: r.latency_ms.p90,
            p95_ms: r.latency_ms.p95,
            p99_ms: r.latency_ms.p99,
            p999_ms: r.latency_ms.p999,
            max_ms: r.latency_ms.max,
            mean_ms: r.latency_ms.mean,
        })
    });
    write(rows, REQUESTS_HEADER)
}

const TIMELINE_HEADER: &[&str] = &[
    "task",
    "second",
    "planned",
    "sent",
    "completed",
    "errors",
    "rps",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
];

const REQUESTS_HEADER: &[&str] = &[
    "task",
    "name",
    "method",
    "count",
    "errors",
    "error_rate",
    "rps",
    "checks_failed",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "mean_ms",
];

/// The rows under `header` (written even when there is no row, so the file always says its
/// columns).
fn write<R: Serialize>(rows: impl Iterator<Item = R>, header: &[&str]) -> String {
    let mut w = ::csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(header).expect("writing to memory");
    for row in rows {
        w.serialize(row).expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_read_back_with_their_headers() {
        let mut r: Report<()> =
            super::super::fixtures::report_with("run", &[("a,\"b\"", 100, 3, 10.0, 5.0)]);
        let text = timeline(&r);
        let mut rd = ::csv::Reader::from_reader(text.as_bytes());
        assert_eq!(rd.headers().unwrap(), TIMELINE_HEADER);
        let rows: Vec<::csv::StringRecord> = rd.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), r.tasks[0].timeline.len());
        assert_eq!(&rows[0][0], "a,\"b\"", "the name round-trips quoted");
        r.tasks[0].requests.clear();
        let text = requests(&r);
        assert_eq!(text.lines().next().unwrap(), REQUESTS_HEADER.join(","));
        assert_eq!(text.lines().count(), 1);
        assert_eq!(Table::from_name("requests"), Some(Table::Requests));
        assert_eq!(Table::from_name("x"), None);
    }
}
