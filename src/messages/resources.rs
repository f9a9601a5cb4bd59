//! Messages to the `ResourceAllocator` (from the REST handlers, the orchestrator and whoever
//! reports node capacity) and the events it sends to an allocation's owner. The rules behind
//! the answers are in [`crate::resources`].

use std::collections::BTreeMap;

use actix::prelude::*;

use crate::resources::{
    AllocError, AllocationRequest, AllocationState, Confirmed, EndReason, Grant, Outcome,
    PoolStatus, Released, UnknownAllocation,
};
use crate::validate::FieldErrors;

/// Asks for resources: granted whole, queued (`request.queue`) or refused. `notify` hears what
/// happens later: a queued request granted, a grant expiring or released by a node leaving.
#[derive(Message)]
#[rtype(result = "Result<Outcome, AllocError>")]
pub struct Allocate {
    pub request: AllocationRequest,
    pub notify: Option<Recipient<AllocationEvent>>,
}

/// Confirms a grant, so it no longer expires (or a waiting request, to be granted confirmed).
#[derive(Message)]
#[rtype(result = "Result<Confirmed, UnknownAllocation>")]
pub struct Confirm(pub String);

/// Releases a grant or cancels a waiting request; the queue is then served.
#[derive(Message)]
#[rtype(result = "Result<Released, UnknownAllocation>")]
pub struct Deallocate(pub String);

/// The pool: nodes, per-resource aggregates, grants and the queue.
#[derive(Message)]
#[rtype(result = "PoolStatus")]
pub struct GetPoolStatus;

/// One allocation, granted or waiting; `None`: unknown (or ended).
#[derive(Message)]
#[rtype(result = "Option<AllocationState>")]
pub struct GetAllocation(pub String);

/// A node's capacity per resource (its totals, base units: cores, bytes, mbps, requests; any
/// other name is a custom resource). Adds the node when new; a resource left out has none.
#[derive(Message)]
#[rtype(result = "Result<(), FieldErrors>")]
pub struct SetNodeCapacity {
    pub node_id: String,
    pub capacity: BTreeMap<String, f64>,
}

/// A node left: its grants are released whole (their owners hear `Released`); answers their
/// ids.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct RemoveNode(pub String);

/// The ledger's self-check: every inconsistency found, none when sound (for tests and
/// diagnostics).
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct AuditPool;

/// What happened to an allocation after its `Allocate` was answered.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub enum AllocationEvent {
    /// A queued request was granted.
    Granted(Grant),
    /// Not confirmed in time (granted), or waited longer than the allocation timeout (queued).
    Expired { allocation_id: String },
    /// Ended for another reason: its node left, or (waiting) it can no longer fit.
    Released {
        allocation_id: String,
        reason: EndReason,
    },
}
