//! Joining: `Hello` → `Challenge{nonce}` → `Proof{HMAC-SHA256(secret, nonce ‖ node id)}` →
//! `Welcome{epoch, ...}` (or `Refused{reason}`). No application frame is read before it
//! completes. A fresh random nonce per connection makes a recorded proof useless on another
//! one (a replay), and binds the proof to the node id it claims.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::hub::conn::{Conn, Out};
use crate::messages::wire::{
    self, Hello, NodeFrame, OrchFrame, PROTOCOL_VERSION, Welcome, WireError,
};

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
    let bytes = wire::encode(frame, cap)?;
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
    let hello = match wire::decode::<NodeFrame>(&recv(&mut conn.rx, timeout).await?, cap)? {
        NodeFrame::Hello(h) => h,
        other => {
            return Err(JoinError::Unexpected(
                format!("{other:?}").chars().take(80).collect(),
            ));
        }
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        let why = format!(
            "protocol version {} is not {PROTOCOL_VERSION}",
            hello.protocol_version
        );
        refuse(&conn.tx, &why, cap).await;
        return Err(JoinError::Refused(why));
    }
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
    let mac = match wire::decode::<NodeFrame>(&recv(&mut conn.rx, timeout).await?, cap)? {
        NodeFrame::Proof { mac } => mac,
        other => {
            return Err(JoinError::Unexpected(
                format!("{other:?}").chars().take(80).collect(),
            ));
        }
    };
    if !wire::verify(secret, &nonce, &hello.node_id, &mac) {
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
    let nonce = match wire::decode::<OrchFrame>(&recv(&mut conn.rx, timeout).await?, cap)? {
        OrchFrame::Challenge { nonce } => nonce,
        OrchFrame::Refused { reason } => return Err(JoinError::Refused(reason)),
        other => {
            return Err(JoinError::Unexpected(
                format!("{other:?}").chars().take(80).collect(),
            ));
        }
    };
    let mac = wire::proof(secret, &nonce, &node_id);
    send(&conn.tx, &NodeFrame::Proof { mac }, cap).await?;
    match wire::decode::<OrchFrame>(&recv(&mut conn.rx, timeout).await?, cap)? {
        OrchFrame::Welcome(w) => Ok(w),
        OrchFrame::Refused { reason } => Err(JoinError::Refused(reason)),
        other => Err(JoinError::Unexpected(
            format!("{other:?}").chars().take(80).collect(),
        )),
    }
}
