//! The cluster wire protocol: one tagged enum per direction, postcard-encoded, one frame per
//! binary WebSocket message (or in-process channel item), each at most `cluster.max_frame_size`
//! bytes. A link opens with the handshake (`Hello` → `Challenge` → `Proof` → `Welcome`);
//! everything after is a [`LinkFrame`] of the session state machine in `hub::session`.
//!
//! HDR histograms travel as their own V2+DEFLATE bytes inside [`WireWindow`] (hdrhistogram has
//! no serde).

use std::collections::BTreeMap;

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::engine::share::ShareTable;
use crate::hub::session::LinkFrame;
use crate::stats::{ErrorCounts, Window};

/// Bumped on any incompatible change of these types; checked in the handshake.
pub const PROTOCOL_VERSION: u32 = 4;

/// Close code of a link whose peer sent a frame over the size cap (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Node → orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeFrame {
    Hello(Hello),
    /// HMAC-SHA256 of the challenge's nonce and the node id, keyed by the cluster secret.
    Proof {
        mac: Vec<u8>,
    },
    Link(LinkFrame<NodeMsg>),
}

/// Orchestrator → node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrchFrame {
    Challenge {
        nonce: Vec<u8>,
    },
    Welcome(Welcome),
    /// The join was refused; the link closes after this frame.
    Refused {
        reason: String,
    },
    Link(LinkFrame<OrchMsg>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub node_id: String,
    pub protocol_version: u32,
    pub capabilities: Vec<String>,
    pub capacity: Capacity,
    pub location: String,
    /// Where the node's own REST API listens.
    pub rest_addr: String,
    /// Set when the node wants to resume this session after a broken connection.
    pub session_id: Option<u64>,
    /// With `session_id`: the highest contiguous sequence number the node received.
    pub recv_hwm: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Capacity {
    pub cpu_cores: u32,
    pub workers: u32,
    pub max_concurrent_requests: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The node's epoch: frames stamped with an older one are rejected (fenced).
    pub epoch: u64,
    pub session_id: u64,
    /// The session continues (the node resends what `recv_hwm` shows missing); otherwise a
    /// new session starts and the node re-reports its running tasks.
    pub resume: bool,
    pub recv_hwm: u64,
    pub heartbeat_ms: u64,
    pub lease_ms: u64,
}

/// Application messages from a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeMsg {
    /// Every heartbeat (fire-and-forget): what each running task has sent so far.
    Status { tasks: Vec<TaskProgress> },
    /// One second of one task on this node, merged over its workers (exactly-once).
    Window(Box<TaskWindow>),
    /// After a new session: the tasks the node is running (or paused), for the orchestrator
    /// to confirm or stop.
    Running { tasks: Vec<TaskRef> },
    /// A task could not start on this node (its own validation refused it).
    Rejected { task: TaskRef, reason: String },
    /// Every `health_monitoring.check_interval` and after joining (fire-and-forget: the next
    /// one follows): the node's sample, checks, score, alerts and capacity.
    Health(Box<crate::health::HealthReport>),
    /// A `security_test` slice finished on this node (exactly-once, like a last window).
    /// Added in protocol version 3.
    ScanDone(Box<ScanSlice>),
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
    /// The task as submitted (`{"type", "name", "parameters"}`, JSON); the node validates it
    /// again against its own settings, allowlist included.
    pub task_json: String,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskWindow {
    pub task: TaskRef,
    pub window: WireWindow,
    /// The node's last window of the task.
    pub last: bool,
}

/// One node's slice of a scan, done. The report travels as JSON: its serde form skips empty
/// optional fields, which postcard (not self-describing) could not read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanSlice {
    pub task: TaskRef,
    pub report_json: String,
}

/// A [`Window`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireWindow {
    pub index: u64,
    pub sent: u64,
    pub completed: u64,
    pub late_starts: u64,
    pub errors: [u64; 5],
    pub slow: u64,
    pub bytes: u64,
    pub status_codes: Vec<(u16, u64)>,
    /// V2+DEFLATE histograms.
    pub corrected: Vec<u8>,
    pub uncorrected: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {size} bytes exceeds the {cap}-byte cap")]
    TooBig { size: usize, cap: usize },
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("bad histogram: {0}")]
    Histogram(String),
}

/// Encodes a frame, refusing one over `cap` bytes.
pub fn encode<T: Serialize>(frame: &T, cap: usize) -> Result<Vec<u8>, WireError> {
    let bytes = postcard::to_allocvec(frame)?;
    if bytes.len() > cap {
        return Err(WireError::TooBig {
            size: bytes.len(),
            cap,
        });
    }
    Ok(bytes)
}

/// Decodes a frame, refusing one over `cap` bytes before reading it.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], cap: usize) -> Result<T, WireError> {
    if bytes.len() > cap {
        return Err(WireError::TooBig {
            size: bytes.len(),
            cap,
        });
    }
    Ok(postcard::from_bytes(bytes)?)
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn keyed(secret: Option<&str>, nonce: &[u8], node_id: &str) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.unwrap_or("").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(nonce);
    mac.update(&[0]);
    mac.update(node_id.as_bytes());
    mac
}

/// The proof a node sends: HMAC-SHA256 over the nonce and its id, keyed by the secret (an
/// empty key when the cluster has none, which only a loopback orchestrator accepts).
pub fn proof(secret: Option<&str>, nonce: &[u8], node_id: &str) -> Vec<u8> {
    keyed(secret, nonce, node_id)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Checks a proof in constant time.
pub fn verify(secret: Option<&str>, nonce: &[u8], node_id: &str, mac: &[u8]) -> bool {
    keyed(secret, nonce, node_id).verify_slice(mac).is_ok()
}

impl WireWindow {
    pub fn from_window(w: &Window) -> WireWindow {
        let mut ser = V2DeflateSerializer::new();
        let mut hist = |h: &hdrhistogram::Histogram<u64>| {
            let mut out = Vec::new();
            ser.serialize(h, &mut out)
                .expect("serializing into memory cannot fail");
            out
        };
        let e = &w.errors;
        WireWindow {
            index: w.index,
            sent: w.sent,
            completed: w.completed,
            late_starts: w.late_starts,
            errors: [e.total, e.connect, e.timeout, e.status, e.body],
            slow: w.slow,
            bytes: w.bytes,
            status_codes: w.status_codes.iter().map(|(k, v)| (*k, *v)).collect(),
            corrected: hist(&w.corrected),
            uncorrected: hist(&w.uncorrected),
        }
    }

    pub fn to_window(&self) -> Result<Window, WireError> {
        let mut de = Deserializer::new();
        let mut hist = |bytes: &[u8]| -> Result<hdrhistogram::Histogram<u64>, WireError> {
            let h: hdrhistogram::Histogram<u64> = de
                .deserialize(&mut std::io::Cursor::new(bytes))
                .map_err(|e| WireError::Histogram(format!("{e:?}")))?;
            // Re-home into our bounds so merging cannot fail.
            let mut ours = crate::stats::new_histogram();
            ours.add(&h)
                .map_err(|e| WireError::Histogram(format!("{e:?}")))?;
            Ok(ours)
        };
        let [total, connect, timeout, status, body] = self.errors;
        Ok(Window {
            index: self.index,
            sent: self.sent,
            completed: self.completed,
            late_starts: self.late_starts,
            errors: ErrorCounts {
                total,
                connect,
                timeout,
                status,
                body,
            },
            slow: self.slow,
            bytes: self.bytes,
            status_codes: self
                .status_codes
                .iter()
                .copied()
                .collect::<BTreeMap<_, _>>(),
            corrected: hist(&self.corrected)?,
            uncorrected: hist(&self.uncorrected)?,
        })
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
            };
            w.record(
                &outcome,
                Duration::from_millis(ms),
                Duration::from_millis(ms / 2 + 1),
            );
        }
        let wire = WireWindow::from_window(&w);
        let bytes = encode(&wire, 1 << 20).unwrap();
        let back: WireWindow = decode(&bytes, 1 << 20).unwrap();
        let w2 = back.to_window().unwrap();
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

    #[test]
    fn oversize_frames_are_refused_both_ways() {
        let big = OrchFrame::Refused {
            reason: "x".repeat(2000),
        };
        assert!(matches!(
            encode(&big, 1024),
            Err(WireError::TooBig { cap: 1024, .. })
        ));
        let bytes = encode(&big, 4096).unwrap();
        assert!(matches!(
            decode::<OrchFrame>(&bytes, 1024),
            Err(WireError::TooBig { .. })
        ));
    }

    #[test]
    fn proofs_bind_secret_nonce_and_node() {
        let mac = proof(Some("s3cret"), b"nonce-1", "node-a");
        assert!(verify(Some("s3cret"), b"nonce-1", "node-a", &mac));
        assert!(!verify(Some("other"), b"nonce-1", "node-a", &mac));
        assert!(!verify(Some("s3cret"), b"nonce-2", "node-a", &mac));
        assert!(!verify(Some("s3cret"), b"nonce-1", "node-b", &mac));
        assert!(!verify(None, b"nonce-1", "node-a", &mac));
    }
}
