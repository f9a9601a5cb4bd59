//! The cluster's application messages, carried in the link's frames ([`crate::hub::frame`]:
//! the envelope, the handshake, the encoding and the frame-size cap, re-exported here). A
//! window travels as [`Window`]'s own encoding (its histograms as V2+DEFLATE bytes).

use serde::{Deserialize, Serialize};

use crate::engine::share::ShareTable;
use crate::stats::Window;

pub use crate::hub::frame::{CLOSE_TOO_BIG, PROTOCOL_VERSION, WireError, decode, encode};
pub use crate::hub::handshake::{Capacity, Hello, Welcome, proof, verify};

/// Node → orchestrator.
pub type NodeFrame = crate::hub::frame::NodeFrame<NodeMsg>;
/// Orchestrator → node.
pub type OrchFrame = crate::hub::frame::OrchFrame<OrchMsg>;

/// The node's end of the link.
pub type NodeLink = crate::hub::Link<NodeFrame, OrchFrame>;
/// The orchestrator's end of one node's link.
pub type OrchLink = crate::hub::Link<OrchFrame, NodeFrame>;

/// Application messages from a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeMsg {
    /// Every heartbeat (fire-and-forget): what each running task has sent so far.
    Status { tasks: Vec<TaskProgress> },
    /// One second of one task on this node, merged over its workers (exactly-once); `last`
    /// on the node's last window of the task.
    Window {
        task: TaskRef,
        window: Box<Window>,
        last: bool,
    },
    /// After a new session: the tasks the node is running (or paused), for the orchestrator
    /// to confirm or stop.
    Running { tasks: Vec<TaskRef> },
    /// A task could not start on this node (its own validation refused it).
    Rejected { task: TaskRef, reason: String },
    /// Every `health_monitoring.check_interval` and after joining (fire-and-forget: the next
    /// one follows): the node's sample, checks, score, alerts and capacity.
    Health(Box<crate::health::HealthReport>),
    /// A task that runs as a job (a `security_test` slice) finished on this node, with its
    /// result (exactly-once, like a last window). Added in protocol version 3 (as `ScanDone`).
    JobDone(Box<JobResult>),
    /// The node is leaving (it was stopped, e.g. SIGTERM): it sends nothing more and will
    /// not resume this session; the orchestrator shows it `left` instead of waiting for it
    /// to fail. Fire-and-forget: a goodbye lost with the link is a failure, as before.
    /// Added in protocol version 4.
    Goodbye,
}

/// Application messages from the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrchMsg {
    Start(Box<StartTask>),
    /// New ownership of a running task's arrivals (after a node was lost).
    Reshare {
        task: TaskRef,
        shares: ShareTable,
    },
    /// Stop a task now (cancelled, failed, or no longer this node's).
    Stop {
        task: TaskRef,
    },
    /// Answer to `Running`: the tasks to go on with; every other one stops.
    Confirm {
        tasks: Vec<TaskRef>,
    },
}

pub use crate::execution::TaskRef;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartTask {
    pub task: TaskRef,
    /// The task as the orchestrator validated it; the node runs it as is, after checking its
    /// targets against its own allowlist.
    pub spec: crate::task::Task,
    /// When every node starts it, milliseconds since the Unix epoch (clocks are assumed in
    /// sync, as NTP keeps them).
    pub start_unix_ms: u64,
    pub shares: ShareTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskProgress {
    pub task: TaskRef,
    pub sent: u64,
    /// Arrivals skipped because the node's lease had run out.
    pub paused: u64,
}

/// One node's part of a task run as a job, done. The result travels as JSON, which the
/// task's kind reads on the orchestrator (a scan's report skips empty optional fields, which
/// postcard, not self-describing, could not read back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub task: TaskRef,
    pub result_json: String,
}

/// A node's window as the store keeps it: the same fields as [`NodeMsg::Window`], so a
/// window stored by an older orchestrator reads the same.
pub fn stored_window(task: &TaskRef, window: &Window, last: bool) -> Result<Vec<u8>, WireError> {
    Ok(postcard::to_allocvec(&(task, window, last))?)
}

/// Reads back [`stored_window`]'s bytes: the window and its `last` flag. Bytes stored by
/// protocol 6 (before per-request windows) read as a window without them.
pub fn read_stored_window(bytes: &[u8]) -> Result<(TaskRef, Window, bool), WireError> {
    match postcard::take_from_bytes::<(TaskRef, Window, bool)>(bytes) {
        Ok((stored, [])) => Ok(stored),
        current => {
            let legacy = postcard::from_bytes::<(TaskRef, crate::stats::LegacyWindow, bool)>(bytes);
            match (current, legacy) {
                (_, Ok((task, w, last))) => Ok((task, w.0, last)),
                (Ok((stored, _)), Err(_)) => Ok(stored),
                (Err(e), Err(_)) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ErrorKind, Outcome};
    use std::time::Duration;

    #[test]
    fn windows_round_trip_with_their_histograms() {
        let mut w = Window::new(7);
        w.sent = 3;
        for ms in [1, 5, 900] {
            let outcome = Outcome {
                status: Some(200),
                error: (ms == 900).then_some(ErrorKind::Timeout),
                bytes: 12,
                slow: ms > 100,
                handshake: None,
                ..Outcome::default()
            };
            w.record(
                &outcome,
                Duration::from_millis(ms),
                Duration::from_millis(ms / 2 + 1),
            );
        }
        let bytes = encode(&w, 1 << 20).unwrap();
        let w2: Window = decode(&bytes, 1 << 20).unwrap();
        assert_eq!(w2.index, 7);
        assert_eq!(
            (w2.sent, w2.completed, w2.errors, w2.slow),
            (3, 3, w.errors, 1)
        );
        assert_eq!(w2.corrected, w.corrected);
        assert_eq!(w2.uncorrected.max(), w.uncorrected.max());
        assert!(
            bytes.len() < 400,
            "compressed window is {} bytes",
            bytes.len()
        );
    }

    /// Per-request windows travel with their slots, failures and histograms; a window the
    /// store kept under protocol 6 (no per-request windows) still reads.
    #[test]
    fn per_request_windows_round_trip_and_version_6_windows_still_read() {
        let mut w = Window::new(3);
        let failed = Outcome {
            status: Some(503),
            error: Some(ErrorKind::Status),
            ..Outcome::default()
        };
        let ms = Duration::from_millis;
        w.record_request(0, &Outcome::default(), ms(4), ms(3));
        w.record_request(2, &failed, ms(50), ms(50));
        w.record_request(2, &Outcome::default(), ms(60), ms(60));
        let task = TaskRef {
            execution_id: "e1".into(),
            task_id: 4,
        };
        let (task2, w2, last) =
            read_stored_window(&stored_window(&task, &w, true).unwrap()).unwrap();
        assert_eq!((task2, last), (task.clone(), true));
        assert_eq!(w2, w);
        assert!(w2.requests[1].is_none());
        let slow = w2.requests[2].as_deref().unwrap();
        assert_eq!((slow.completed, slow.errors.status), (2, 1));
        assert_eq!(slow.failures.values().sum::<u64>(), 1);

        // Version 6's form, field for field.
        #[derive(Serialize)]
        struct Encoded6 {
            index: u64,
            sent: u64,
            completed: u64,
            late_starts: u64,
            errors: [u64; 6],
            slow: u64,
            bytes: u64,
            status_codes: Vec<(u16, u64)>,
            corrected: Vec<u8>,
            uncorrected: Vec<u8>,
            tls_handshakes: [u64; 2],
        }
        let histogram = |h: &hdrhistogram::Histogram<u64>| {
            use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
            let mut out = Vec::new();
            V2DeflateSerializer::new().serialize(h, &mut out).unwrap();
            out
        };
        let old = Encoded6 {
            index: 9,
            sent: 5,
            completed: 3,
            late_starts: 1,
            errors: [1, 0, 0, 1, 0, 0],
            slow: 0,
            bytes: 30,
            status_codes: vec![(200, 2), (503, 1)],
            corrected: histogram(&w.corrected),
            uncorrected: histogram(&w.uncorrected),
            tls_handshakes: [2, 1],
        };
        let bytes = postcard::to_allocvec(&(&task, &old, false)).unwrap();
        let (task3, w3, last) = read_stored_window(&bytes).unwrap();
        assert_eq!((task3, last), (task, false));
        assert_eq!(
            (w3.index, w3.sent, w3.completed, w3.late_starts),
            (9, 5, 3, 1)
        );
        assert_eq!(
            (w3.errors.total, w3.errors.status, w3.errors.check),
            (1, 1, 0)
        );
        assert_eq!(w3.corrected, w.corrected);
        assert_eq!((w3.tls_handshakes_full, w3.tls_handshakes_resumed), (2, 1));
        assert!(w3.requests.is_empty());
    }

    /// Every kind of task comes back from its postcard frame as it was validated, every field
    /// (a performance test's thresholds, a stress test's steps, a scan's endpoints) and the
    /// type it was submitted as included.
    #[test]
    fn typed_tasks_round_trip_through_a_start_frame() {
        use serde_json::json;
        let target = json!([{"url": "http://127.0.0.1:9/a", "method": "POST", "body": "{}",
                              "headers": {"x-k": "v"}, "expected_status": [201]}]);
        let doc = json!({"name": "every kind", "tasks": [
            {"type": "load_test", "name": "load", "parameters": {
                "targets": target, "pattern": "burst", "base_rps": 5, "peak_rps": 40,
                "duration": "20s", "burst_interval": "4s", "burst_duration": "1s",
                "arrivals": "poisson", "on_node_failure": "tolerate"}},
            {"type": "stress_test", "name": "stress", "parameters": {
                "targets": ["http://127.0.0.1:9/"], "start_rps": 100, "step_rps": 50,
                "step_duration": "2s", "max_rps": 300, "break_on": {"p99_ms": 250}}},
            {"type": "performance_test", "name": "perf", "parameters": {
                "targets": ["http://localhost:9/"], "duration": "3s", "base_rps": 50,
                "thresholds": ["p99_ms < 1000", "achieved_rps >= 0.95 * planned"]}},
            {"type": "security_test", "name": "scan", "parameters": {
                "target": "http://127.0.0.1:9/",
                "endpoints": [{"path": "/search", "params": ["q"]},
                              {"path": "/t", "method": "POST", "params": [{"name": "id", "value": "7"}]}],
                "scan_types": ["xss", "csrf"], "depth": "deep", "timeout": "2s"}},
        ]});
        let plan =
            crate::task::validate(&doc, &crate::settings::Settings::defaults().load_generation)
                .expect("a valid plan");
        let labels: Vec<&str> = plan
            .tasks
            .iter()
            .map(|t| t.kind.load().map_or("security_test", |l| l.label))
            .collect();
        assert_eq!(
            labels,
            [
                "load_test",
                "stress_test",
                "performance_test",
                "security_test"
            ]
        );
        for (i, task) in plan.tasks.iter().enumerate() {
            let start = StartTask {
                task: TaskRef {
                    execution_id: "e".into(),
                    task_id: i as u32,
                },
                spec: task.clone(),
                start_unix_ms: 1_000,
                shares: ShareTable::equal(vec!["a".into(), "b".into()]),
            };
            let msg = OrchMsg::Start(Box::new(start));
            let bytes = encode(&msg, 1 << 20).unwrap();
            let back: OrchMsg = decode(&bytes, 1 << 20).unwrap();
            assert_eq!(back, msg, "task {} ({})", task.name, labels[i]);
        }
    }

    /// The stored form reads like the message it came in: the same bytes as
    /// protocol version 4's `TaskWindow { task, window, last }`.
    #[test]
    fn stored_windows_read_back() {
        let task = TaskRef {
            execution_id: "e".into(),
            task_id: 2,
        };
        let mut w = Window::new(4);
        w.sent = 9;
        let bytes = stored_window(&task, &w, true).unwrap();
        let (t, back, last) = read_stored_window(&bytes).unwrap();
        assert_eq!((t, back.index, back.sent, last), (task.clone(), 4, 9, true));
        let msg = NodeMsg::Window {
            task,
            window: Box::new(w),
            last: true,
        };
        let framed = postcard::to_allocvec(&msg).unwrap();
        assert_eq!(
            &framed[1..],
            &bytes[..],
            "the message is its variant tag and the stored bytes"
        );
    }
}
