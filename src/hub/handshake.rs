//! Joining: `Hello` → `Challenge{nonce}` → `Proof{HMAC-SHA256(secret, nonce ‖ node id)}` →
//! `Welcome{epoch, ...}` (or `Refused{reason}`). No application frame is read before it
//! completes. A fresh random nonce per connection makes a recorded proof useless on another
//! one (a replay), and binds the proof to the node id it claims.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::health::HealthReport;
use crate::hub::conn::{Conn, Out};
use crate::hub::frame::{self, PROTOCOL_VERSION, Unread, WireError};

/// The handshake reads no application message: a link frame's body stays unread.
type NodeFrame = frame::NodeFrame<Unread>;
type OrchFrame = frame::OrchFrame<Unread>;

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
    /// The node's latest health report: the orchestrator knows a node's health from the moment
    /// it is up, so a node whose disk is full takes no work in the instant after it joined.
    /// `None` from a node that has not sampled yet (it joined after waiting for its first).
    pub health: Option<Box<HealthReport>>,
}

/// What every version's `Hello` begins with (the first variant of `NodeFrame`, then the node
/// id and the protocol version): read alone, so that a node of another version is refused
/// naming the versions even when the rest of its `Hello` has another shape. Keep these two
/// fields first in `Hello`, in this order.
#[derive(Deserialize)]
enum HelloHead {
    Hello {
        #[allow(dead_code, reason = "read only to reach the version")]
        node_id: String,
        version: u32,
    },
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

/// Longest wait for each handshake frame.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the link closed during the handshake")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("refused: {0}")]
    Refused(String),
    #[error("unexpected frame during the handshake: {0}")]
    Unexpected(String),
    #[error(transparent)]
    Wire(#[from] WireError),
}

async fn recv(rx: &mut mpsc::Receiver<Bytes>, timeout: Duration) -> Result<Bytes, JoinError> {
    match tokio::time::timeout(timeout, rx.recv()).await {
        Err(_) => Err(JoinError::Timeout(timeout)),
        Ok(None) => Err(JoinError::Closed),
        Ok(Some(b)) => Ok(b),
    }
}

async fn send<T: serde::Serialize>(
    tx: &mpsc::Sender<Out>,
    frame: &T,
    cap: usize,
) -> Result<(), JoinError> {
    let bytes = frame::encode(frame, cap)?;
    tx.send(Out::Frame(bytes.into()))
        .await
        .map_err(|_| JoinError::Closed)
}

/// Refuses a joining node: the reason goes out, then the link closes.
pub async fn refuse(tx: &mpsc::Sender<Out>, reason: &str, cap: usize) {
    tracing::warn!(%reason, "node join refused");
    let _ = send(
        tx,
        &OrchFrame::Refused {
            reason: reason.to_string(),
        },
        cap,
    )
    .await;
    let _ = tx
        .send(Out::Close {
            code: 1008,
            reason: reason.chars().take(100).collect(),
        })
        .await;
}

/// The orchestrator's half: reads `Hello`, challenges, checks the proof. On success the
/// caller answers `Welcome` (the node's proxy knows the epoch and session).
pub async fn accept(
    conn: &mut Conn,
    secret: Option<&str>,
    cap: usize,
    timeout: Duration,
) -> Result<Hello, JoinError> {
    let first = recv(&mut conn.rx, timeout).await?;
    // The version first: another version's `Hello` may not decode as this one's.
    if let Ok(HelloHead::Hello { version, .. }) = frame::decode::<HelloHead>(&first, cap)
        && version != PROTOCOL_VERSION
    {
        let why = format!("protocol version {version} is not {PROTOCOL_VERSION}");
        refuse(&conn.tx, &why, cap).await;
        return Err(JoinError::Refused(why));
    }
    let hello = match frame::decode::<NodeFrame>(&first, cap)? {
        NodeFrame::Hello(h) => h,
        other => {
            return Err(JoinError::Unexpected(
                format!("{other:?}").chars().take(80).collect(),
            ));
        }
    };
    if hello.node_id.is_empty() || hello.node_id.len() > 128 {
        let why = "node id must be 1 to 128 characters".to_string();
        refuse(&conn.tx, &why, cap).await;
        return Err(JoinError::Refused(why));
    }
    let nonce: [u8; 32] = rand::random();
    send(
        &conn.tx,
        &OrchFrame::Challenge {
            nonce: nonce.to_vec(),
        },
        cap,
    )
    .await?;
    let mac = match frame::decode::<NodeFrame>(&recv(&mut conn.rx, timeout).await?, cap)? {
        NodeFrame::Proof { mac } => mac,
        other => {
            return Err(JoinError::Unexpected(
                format!("{other:?}").chars().take(80).collect(),
            ));
        }
    };
    if !verify(secret, &nonce, &hello.node_id, &mac) {
        let why = "wrong cluster secret".to_string();
        refuse(&conn.tx, &why, cap).await;
        return Err(JoinError::Refused(why));
    }
    Ok(hello)
}

/// The node's half: sends `Hello`, proves the secret, waits for `Welcome`.
pub async fn join(
    conn: &mut Conn,
    hello: Hello,
    secret: Option<&str>,
    cap: usize,
    timeout: Duration,
) -> Result<Welcome, JoinError> {
    let node_id = hello.node_id.clone();
    send(&conn.tx, &NodeFrame::Hello(hello), cap).await?;
    let nonce = match frame::decode::<OrchFrame>(&recv(&mut conn.rx, timeout).await?, cap)? {
        OrchFrame::Challenge { nonce } => nonce,
        OrchFrame::Refused { reason } => return Err(JoinError::Refused(reason)),
        other => {
            return Err(JoinError::Unexpected(
                format!("{other:?}").chars().take(80).collect(),
            ));
        }
    };
    let mac = proof(secret, &nonce, &node_id);
    send(&conn.tx, &NodeFrame::Proof { mac }, cap).await?;
    match frame::decode::<OrchFrame>(&recv(&mut conn.rx, timeout).await?, cap)? {
        OrchFrame::Welcome(w) => Ok(w),
        OrchFrame::Refused { reason } => Err(JoinError::Refused(reason)),
        other => Err(JoinError::Unexpected(
            format!("{other:?}").chars().take(80).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
