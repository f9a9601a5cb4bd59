//! Where an execution is in its life, as one value: what it waits for before it starts, that
//! it runs, that its nodes are stopping (and why), or how it ended. The [`State`] the REST API
//! and the store show is read from it.
//!
//! ```text
//! Pending ──▶ Planning ──▶ Running ──▶ Ended
//!    │                        │          ▲
//!    │                        ▼          │
//!    │                     Stopping ─────┘   (cancelled, failing, or stopped by a watch)
//!    └──────────────────────────────────▶ Ended (cancelled or failed before it ran)
//! ```

use super::State;
use crate::stats::watch::StopAs;

/// An execution's phase.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Submitted, not started yet.
    Pending {
        /// Where it stands with the resource pool.
        reservation: Reservation,
        /// Why it has not been given nodes yet (none eligible, say).
        waiting: Option<String>,
    },
    /// Its tasks are being handed to the nodes.
    Planning,
    Running,
    /// Stopped before its plan ended: the nodes are stopping, and it ends once their last
    /// windows are in.
    Stopping(Halt),
    /// Ended in `state` (a final one); `halt` says why it stopped early, if it did.
    Ended {
        state: State,
        halt: Option<Halt>,
    },
}

/// Why a running execution was stopped before its plan ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Halt {
    /// Cancelled, when (ms since the Unix epoch; unknown after a restart): rates and
    /// progress cover the time until then.
    Cancelled { at_ms: Option<u64> },
    /// It failed (a node lost under `on_node_failure: fail`, say).
    Failed,
    /// A watch stopped it (a threshold with `abort_on_fail`): it ends as the watch said, and
    /// when (ms since the Unix epoch).
    Watch { ends_as: StopAs, at_ms: u64 },
}

/// An execution's reservation in the resource pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// Not asked for yet.
    None,
    /// Asked for on these nodes; waiting for the pool's answer (or in its queue).
    Asked { nodes: Vec<String>, queued: bool },
    /// Granted on these nodes: the execution may start there.
    Granted { nodes: Vec<String> },
}

impl Reservation {
    /// The id of an execution's allocation in the pool.
    pub fn allocation_id(execution_id: &str) -> String {
        format!("execution:{execution_id}")
    }
}

impl Phase {
    /// A new execution's phase: pending, nothing asked for.
    pub fn pending() -> Phase {
        Phase::Pending {
            reservation: Reservation::None,
            waiting: None,
        }
    }

    /// The state shown for it. A stopping execution shows what stopped it (a watch's stop
    /// shows `running` until the end).
    pub fn state(&self) -> State {
        match self {
            Phase::Pending { .. } => State::Pending,
            Phase::Planning => State::Planning,
            Phase::Running | Phase::Stopping(Halt::Watch { .. }) => State::Running,
            Phase::Stopping(Halt::Cancelled { .. }) => State::Cancelled,
            Phase::Stopping(Halt::Failed) => State::Failed,
            Phase::Ended { state, .. } => *state,
        }
    }

    /// Its nodes are stopping.
    pub fn is_stopping(&self) -> bool {
        matches!(self, Phase::Stopping(_))
    }

    /// It has ended, its nodes stopped.
    pub fn is_ended(&self) -> bool {
        matches!(self, Phase::Ended { .. })
    }

    /// Its nodes run (or are stopping) its tasks.
    pub fn is_live(&self) -> bool {
        matches!(self, Phase::Running | Phase::Stopping(_))
    }

    /// Why it stopped early, while it stops and after.
    pub fn halt(&self) -> Option<Halt> {
        match self {
            Phase::Stopping(h) | Phase::Ended { halt: Some(h), .. } => Some(*h),
            _ => None,
        }
    }

    /// A pending execution's reservation.
    pub fn reservation(&self) -> Option<&Reservation> {
        match self {
            Phase::Pending { reservation, .. } => Some(reservation),
            _ => None,
        }
    }
}

impl Halt {
    /// When it was stopped, if known.
    pub fn at_ms(self) -> Option<u64> {
        match self {
            Halt::Cancelled { at_ms } => at_ms,
            Halt::Failed => None,
            Halt::Watch { at_ms, .. } => Some(at_ms),
        }
    }
}
