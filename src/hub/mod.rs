//! The cluster link (DESIGN §4): how the orchestrator and a node talk over one connection.
//!
//! The core is transport-agnostic and sans-IO: a [`Session`] per link endpoint turns
//! application messages into [`LinkFrame`]s and back, with a seq per data frame, a bounded
//! outbox of unacked frames, cumulative acks (which a transport piggy-backs on its heartbeat via
//! [`Session::ack_frame`]), retransmission on a timer and on resume, and four [`Delivery`]
//! modes: fire-and-forget, at-least-once, exactly-once and reliable-with-retries (bounded
//! attempts or deadline, then an explicit [`Failed`] report, never silent). The epoch in every
//! frame lets the caller fence a node that was declared dead ([`Delivered::is_fenced`]).
//!
//! Around it, the other modules own the IO, the postcard encoding, the frame-size cap, the
//! handshake (whose `recv_hwm` is the peer's [`Session::ack_hwm`], fed to [`Session::resume`];
//! a handshake without resume means [`Session::restart`] on both ends) and the timers.
//!
//! - this module: the session's frames ([`LinkFrame`], [`DataFrame`]), the [`SessionConfig`]
//!   and the values the session hands out ([`Delivered`], [`Failed`], [`Full`],
//!   [`SessionStats`]).
//! - `session`: the state machine.
//! - `frame`: the envelope of each direction (handshake frames and link frames), its postcard
//!   encoding under the frame-size cap, and the protocol version.
//! - `handshake`: joining (`Hello`, `Challenge`, `Proof`, `Welcome`) and its HMAC proof.
//! - `conn`: one connection as a pair of channels, over a WebSocket (actix-ws on the
//!   orchestrator, awc on the node) or in process (standalone mode and tests).
//! - `link`: [`Link`], one end of the link as an actor holds it (session, connection pump,
//!   timers), used by the node's `NodeAgent` and the orchestrator's `NodeProxy`.
//! - `fault`: a seeded, virtual-clock fault injector between two sessions (drops, duplicates,
//!   reordering, cuts with resume or restart), used by the property tests.
//!
//! # Sequencing and acks
//! Every sequenced message (all modes but fire-and-forget) gets the next `seq` of the session
//! (from 1) and stays in the outbox until the peer settles it. The receiver accepts seqs strictly
//! in order; out-of-order frames up to `reorder_window` ahead are buffered, further ones are
//! dropped and left to retransmission. A message counts as *delivered* once it is accepted in
//! order; [`Session::poll_deliver`] hands it out. The cumulative ack ([`Session::ack_hwm`]) is
//! the highest contiguous seq received, held back below the first exactly-once message the
//! application has not [`confirm`](Session::confirm)ed yet. The ack frame also carries a
//! selective ack: the ranges of seqs beyond the cumulative ack the receiver holds (buffered out
//! of order, or received and awaiting confirmation). A sender retransmits an unacked frame after
//! `retransmit_after` unless the peer holds it, and after a resume whatever the peer misses.
//!
//! # Deduplication
//! Within a session by seq. Exactly-once and reliable messages are also remembered by
//! `(epoch, id)`, which survives [`Session::restart`]: a message delivered in an earlier session
//! is dropped, and acked, when it comes again. The memory is bounded and keeps the largest keys;
//! ids grow in send order and epochs must never go back, so those are the most recent ones. It
//! is exact as long as it holds at least the peer's `outbox_capacity` entries (a retransmission
//! can only reach back that far), so [`Session::new`] raises `dedup_capacity` to the own
//! `outbox_capacity`, assuming both ends share a config.
//!
//! # The reliable give-up rule
//! A sender cannot tell a lost message from a lost ack, so giving up is a question to the peer:
//! 1. The sender gives up on a `Reliable` message when its deadline (from first queueing) has
//!    passed, or when its last allowed transmission stayed unacked for `retransmit_after`. From
//!    then on it never sends the data again; it sends [`LinkFrame::Cancel`] (same seq, id, epoch)
//!    every `retransmit_after` until the seq is settled.
//! 2. The receiver puts the cancel in the seq's place, in order like a data frame (a cancel wins
//!    over a buffered copy of the data not yet accepted). When the seq comes up in order the
//!    message is *skipped* (never delivered, recorded) unless its id was delivered in an earlier
//!    session. A seq accepted before its cancel arrived stays delivered. FIFO holds across skips.
//! 3. [`LinkFrame::Ack`] carries `ack` (every seq up to it is decided) and `skipped`, the skipped
//!    seqs up to `ack` the sender has not settled yet (the sender's `settled` field lets the
//!    receiver forget older skip records).
//! 4. The sender settles every outbox entry up to `ack`: skipped ones are reported through
//!    [`Session::poll_failed`] with the message given back, all others count as acked. So a
//!    reliable message is either delivered or reported failed, exactly one of the two, and only
//!    once the peer has answered (while the link is down the report waits).
//!
//! # Connection lifecycle
//! [`Session::on_disconnect`] stops all transmission (queued fire-and-forget frames are dropped
//! and counted, incoming frames ignored). [`Session::resume`] continues the same session on a
//! new transport: the peer's cumulative ack from the handshake settles the outbox and what the
//! peer misses is retransmitted in order. [`Session::restart`] starts a new session with a peer that lost ours:
//! unsettled messages are renumbered from 1 in their order (id and epoch kept) and the receive
//! state is reset, except the id memory and the deliveries not yet polled.

pub mod conn;
pub mod fault;
pub mod frame;
pub mod handshake;
pub mod link;
pub mod session;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use fault::{FaultConfig, FaultLink, FaultStats, Observed, Side};
pub use link::{Link, LinkTimers};
pub use session::Session;

/// Limits and timers of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Maximum unsettled sequenced messages (and queued fire-and-forget frames).
    pub outbox_capacity: usize,
    /// Retransmit a frame that stayed unacked this long.
    pub retransmit_after: Duration,
    /// How far beyond the next expected seq out-of-order frames are buffered.
    pub reorder_window: usize,
    /// Exactly-once/reliable ids remembered across sessions (raised to `outbox_capacity`).
    pub dedup_capacity: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            outbox_capacity: 1024,
            retransmit_after: Duration::from_secs(1),
            reorder_window: 1024,
            dedup_capacity: 16 * 1024,
        }
    }
}

/// Most selective-ack ranges one ack frame carries.
pub const MAX_SACK_RANGES: usize = 16;

/// How hard the link tries to deliver one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// No seq, never retransmitted; drops while disconnected or queue-full are counted.
    FireAndForget,
    /// Sequenced, kept in the outbox and retransmitted until acked; may arrive twice across a
    /// restart.
    AtLeastOnce,
    /// At-least-once plus dedup by seq and by `(epoch, id)` across sessions; the ack passes the
    /// message only once the application confirmed its effect.
    ExactlyOnce,
    /// Retransmitted until acked, at most `attempts` transmissions and no later than
    /// `deadline_ms` after first queueing; then delivered or reported failed, never both.
    Reliable {
        /// Maximum number of data transmissions.
        attempts: u32,
        /// Give up this many milliseconds after the message was first queued.
        deadline_ms: u32,
    },
}

impl Delivery {
    /// Whether messages of this mode carry a seq and live in the outbox.
    pub fn is_sequenced(self) -> bool {
        !matches!(self, Delivery::FireAndForget)
    }

    fn dedup_by_id(self) -> bool {
        matches!(self, Delivery::ExactlyOnce | Delivery::Reliable { .. })
    }
}

/// One application message on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFrame<M> {
    /// Seq within the session, from 1; 0 for unsequenced fire-and-forget.
    pub seq: u64,
    /// Sender-unique id, stable across retransmissions and sessions.
    pub id: u64,
    /// The sender's epoch when the message was first queued; never rewritten.
    pub epoch: u64,
    /// The delivery mode.
    pub delivery: Delivery,
    /// The application message.
    pub body: M,
}

/// Everything a session sends to its peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LinkFrame<M> {
    /// An application message.
    Data(DataFrame<M>),
    /// The receiver's state for the peer's stream, plus the sender's settled point for its own.
    Ack {
        /// Cumulative ack: every seq up to this one is decided (delivered or skipped).
        ack: u64,
        /// Selective ack: inclusive ranges of seqs beyond `ack` the receiver already holds
        /// (at most [`MAX_SACK_RANGES`]); the sender does not retransmit them.
        sack: Vec<(u64, u64)>,
        /// Seqs up to `ack` that were skipped on a cancel and that the peer has not settled.
        skipped: Vec<u64>,
        /// Every seq of the ack's sender up to this one is settled on its side.
        settled: u64,
    },
    /// The sender gave up on a reliable message: skip it unless it is already delivered.
    Cancel {
        /// The message's seq in the current session.
        seq: u64,
        /// The message id.
        id: u64,
        /// The message epoch.
        epoch: u64,
    },
}

/// The outbox is full: the message comes back (backpressure).
#[derive(Debug, Clone, PartialEq)]
pub struct Full<M> {
    /// The refused message.
    pub body: M,
    /// Its delivery mode.
    pub delivery: Delivery,
}

impl<M> fmt::Display for Full<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("link outbox full")
    }
}

impl<M: fmt::Debug> std::error::Error for Full<M> {}

/// Why a reliable message was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GiveUp {
    /// All allowed transmissions went unacked.
    Attempts,
    /// The deadline after first queueing passed.
    Deadline,
}

/// A reliable message the peer confirmed it never delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed<M> {
    /// The message id.
    pub id: u64,
    /// The message epoch.
    pub epoch: u64,
    /// The delivery mode it was sent with.
    pub delivery: Delivery,
    /// How often the data was transmitted.
    pub transmissions: u32,
    /// Why the sender gave up.
    pub reason: GiveUp,
    /// The message, given back.
    pub body: M,
}

/// A message handed to the application.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered<M> {
    /// Seq in the session it was accepted in (0 for fire-and-forget).
    pub seq: u64,
    /// The sender's message id.
    pub id: u64,
    /// The sender's epoch when the message was first queued.
    pub epoch: u64,
    /// The delivery mode.
    pub delivery: Delivery,
    /// The application message.
    pub body: M,
}

impl<M> Delivered<M> {
    /// Whether the message comes from an epoch older than `current_epoch` and must be rejected.
    pub fn is_fenced(&self, current_epoch: u64) -> bool {
        self.epoch < current_epoch
    }
}

impl<M> From<DataFrame<M>> for Delivered<M> {
    fn from(frame: DataFrame<M>) -> Self {
        Self {
            seq: frame.seq,
            id: frame.id,
            epoch: frame.epoch,
            delivery: frame.delivery,
            body: frame.body,
        }
    }
}

/// Counters of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionStats {
    /// Messages accepted by `send` (every mode).
    pub sent: u64,
    /// Data transmissions after a message's first.
    pub retransmitted: u64,
    /// Messages handed out by `poll_deliver`.
    pub delivered: u64,
    /// Received data frames dropped as duplicates (by seq or by id).
    pub duplicates_dropped: u64,
    /// Received data frames dropped beyond the reorder window.
    pub out_of_window_dropped: u64,
    /// Fire-and-forget messages that could not go out.
    pub fire_and_forget_dropped: u64,
    /// Reliable messages reported failed.
    pub failed: u64,
    /// Sequenced messages the peer acknowledged.
    pub acked: u64,
    /// Received seqs skipped on a cancel.
    pub skipped: u64,
    /// Unsettled messages in the outbox now.
    pub outbox_len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_compares_epochs() {
        let old = Delivered {
            seq: 1,
            id: 1,
            epoch: 3,
            delivery: Delivery::AtLeastOnce,
            body: 0,
        };
        assert!(old.is_fenced(4));
        assert!(!old.is_fenced(3));
    }
}
