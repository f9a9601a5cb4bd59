//! Messages of the `EventBus`: the live events it fans out (the JSON contract of `GET
//! /api/events`, `schemas/events.schema.json`), publishing, and subscribing.

use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;

use crate::health::{Alert, Status};

/// One live event: when it happened, and what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(flatten)]
    pub kind: EventKind,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What happened; serialized with a `type` tag (the schema's one-of).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The first frame a subscriber gets: its filter and its buffer.
    Hello {
        execution_id: Option<String>,
        buffer: usize,
    },
    ExecutionState {
        execution_id: String,
        name: String,
        state: &'static str,
        reason: Option<String>,
    },
    Stats(TaskSecond),
    /// A live change to a running execution (`PATCH /api/executions/{id}`, MCP).
    ExecutionAdjusted {
        execution_id: String,
        adjustment: crate::execution::AdjustmentView,
    },
    NodeJoined {
        node_id: String,
    },
    /// The node's link closed; it may resume within the death timeout.
    NodeLeft {
        node_id: String,
        reason: String,
    },
    NodeFailed {
        node_id: String,
        reason: String,
    },
    NodeHealth {
        node_id: String,
        from: Option<Status>,
        to: Status,
        score: Option<f64>,
    },
    AlertRaised {
        alert: Alert,
    },
    AlertCleared {
        alert: Alert,
    },
}

pub use crate::execution::TaskSecond;

impl Event {
    pub fn now(kind: EventKind) -> Event {
        Event {
            kind,
            at_ms: crate::clock::unix_ms(),
        }
    }

    /// The execution the event is about, if any (what a subscriber's filter matches).
    pub fn execution_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::ExecutionState { execution_id, .. } => Some(execution_id),
            EventKind::Stats(s) => Some(&s.execution_id),
            EventKind::ExecutionAdjusted { execution_id, .. } => Some(execution_id),
            EventKind::Hello { execution_id, .. } => execution_id.as_deref(),
            _ => None,
        }
    }

    /// The event as one JSON text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }
}

/// Publish an event to every subscriber whose filter takes it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

/// Subscribe: events matching `execution_id` (all when `None`) arrive on the subscription's
/// channel, already serialized. When more than `buffer` events wait, the subscriber is dropped:
/// its channel closes and `dropped` says why.
#[derive(Debug, Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe {
    pub execution_id: Option<String>,
    pub buffer: usize,
}

/// A subscriber's end.
#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub events: tokio::sync::mpsc::Receiver<Arc<str>>,
    /// Fires with the reason when the bus drops the subscriber.
    pub dropped: tokio::sync::oneshot::Receiver<String>,
}

/// The subscriber is gone: its socket closed, or (`slow`) it was closed for reading too
/// slowly.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub id: u64,
    pub slow: bool,
}

/// The bus's figures.
#[derive(Debug, Message)]
#[rtype(result = "EventBusState")]
pub struct GetEventBusState;

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventBusState {
    pub subscribers: usize,
    pub published: u64,
    /// Subscribers dropped because they fell more than their buffer behind.
    pub dropped_slow: u64,
}
