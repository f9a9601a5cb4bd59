//! The frame envelope of the cluster link: one tagged enum per direction, postcard-encoded,
//! one frame per binary WebSocket message (or in-process channel item), each at most
//! `cluster.max_frame_size` bytes. A link opens with the handshake (`Hello` → `Challenge` →
//! `Proof` → `Welcome`, see [`crate::hub::handshake`]); everything after is a [`LinkFrame`] of
//! the session state machine, carrying the application's messages (`M`; the cluster's are in
//! `messages::wire`).

use serde::{Deserialize, Serialize};

use crate::hub::LinkFrame;
use crate::hub::handshake::{Hello, Welcome};

/// Bumped on any incompatible change of the frames or of the messages they carry (the
/// cluster's in `messages::wire`, the `Window` encoding in `stats`); checked in the handshake.
/// 5: a window travels as `stats::Window`'s own encoding.
/// 6: a window counts `tls` errors and TLS handshakes.
/// 7: a window carries per-request windows and counts `check` errors; a task's targets have
/// names (flows).
/// 8: a share table carries the live changes to its task's plan (`adjustments`).
/// 9: a health check result carries its unit; checks of kind `prometheus`.
/// 10: `Hello` carries the node's latest health report.
pub const PROTOCOL_VERSION: u32 = 10;

/// Close code of a link whose peer sent a frame over the size cap (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Node → orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeFrame<M> {
    Hello(Hello),
    /// HMAC-SHA256 of the challenge's nonce and the node id, keyed by the cluster secret.
    Proof {
        mac: Vec<u8>,
    },
    Link(LinkFrame<M>),
}

/// Orchestrator → node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrchFrame<M> {
    Challenge {
        nonce: Vec<u8>,
    },
    Welcome(Welcome),
    /// The join was refused; the link closes after this frame.
    Refused {
        reason: String,
    },
    Link(LinkFrame<M>),
}

/// A direction's envelope: the session's frames go in and out of its `Link` variant.
pub trait Envelope: Serialize + for<'de> Deserialize<'de> + std::fmt::Debug {
    /// The application message of the session's frames.
    type Msg;
    /// Wraps a session frame.
    fn link(frame: LinkFrame<Self::Msg>) -> Self;
    /// The session frame inside, or the frame itself when it is a handshake frame.
    fn into_link(self) -> Result<LinkFrame<Self::Msg>, Self>;
}

impl<M> Envelope for NodeFrame<M>
where
    M: Serialize + for<'de> Deserialize<'de> + std::fmt::Debug,
{
    type Msg = M;

    fn link(frame: LinkFrame<M>) -> Self {
        NodeFrame::Link(frame)
    }

    fn into_link(self) -> Result<LinkFrame<M>, Self> {
        match self {
            NodeFrame::Link(f) => Ok(f),
            other => Err(other),
        }
    }
}

impl<M> Envelope for OrchFrame<M>
where
    M: Serialize + for<'de> Deserialize<'de> + std::fmt::Debug,
{
    type Msg = M;

    fn link(frame: LinkFrame<M>) -> Self {
        OrchFrame::Link(frame)
    }

    fn into_link(self) -> Result<LinkFrame<M>, Self> {
        match self {
            OrchFrame::Link(f) => Ok(f),
            other => Err(other),
        }
    }
}

/// The body of a link frame read where none belongs (during the handshake): left unread. The
/// body is the last thing in a frame, so nothing after it is misread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unread;

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unread)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {size} bytes exceeds the {cap}-byte cap")]
    TooBig { size: usize, cap: usize },
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{DataFrame, Delivery};

    #[test]
    fn oversize_frames_are_refused_both_ways() {
        let big = OrchFrame::<u8>::Refused {
            reason: "x".repeat(2000),
        };
        assert!(matches!(
            encode(&big, 1024),
            Err(WireError::TooBig { cap: 1024, .. })
        ));
        let bytes = encode(&big, 4096).unwrap();
        assert!(matches!(
            decode::<OrchFrame<u8>>(&bytes, 1024),
            Err(WireError::TooBig { .. })
        ));
    }

    #[test]
    fn a_link_frame_reads_as_one_with_its_body_unread() {
        let frame = NodeFrame::Link(LinkFrame::Data(DataFrame {
            seq: 3,
            id: 9,
            epoch: 2,
            delivery: Delivery::AtLeastOnce,
            body: "a body".to_string(),
        }));
        let bytes = encode(&frame, 1024).unwrap();
        match decode::<NodeFrame<Unread>>(&bytes, 1024).unwrap() {
            NodeFrame::Link(LinkFrame::Data(d)) => assert_eq!((d.seq, d.id, d.epoch), (3, 9, 2)),
            other => panic!("{other:?}"),
        }
    }
}
