//! Messages to the `Store` actor: one per `Db` operation, answered with its result.

use actix::prelude::*;

use crate::store::pending::StoreStatus;
use crate::store::{ExecutionRecord, NodeRecord, StoreError, WindowKey};

// ---- executions --------------------------------------------------------------------------

/// Store a new execution; its id must be new.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct InsertExecution(pub ExecutionRecord);

/// Set an execution's state and reason (`None` clears it); each timestamp changes only when
/// `Some`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct UpdateExecution {
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SetExecutionPlan {
    pub id: String,
    pub plan_json: String,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SetExecutionReport {
    pub id: String,
    pub report_json: String,
}

/// One execution by id.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<ExecutionRecord>, StoreError>")]
pub struct GetExecution(pub String);

/// Every execution, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<ExecutionRecord>, StoreError>")]
pub struct ListExecutions;

/// The executions in any of these states, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<ExecutionRecord>, StoreError>")]
pub struct ExecutionsInStates(pub Vec<String>);

// ---- metric windows ----------------------------------------------------------------------

/// Store a window once: `true` when inserted, `false` when its key was already stored.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct PutWindow {
    pub key: WindowKey,
    pub payload: Vec<u8>,
}

/// The windows of an execution (by id), ordered by task, window index, node.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(WindowKey, Vec<u8>)>, StoreError>")]
pub struct WindowsOf(pub String);

/// How many windows an execution (by id) has stored.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct CountWindows(pub String);

// ---- nodes and epochs --------------------------------------------------------------------

/// A node's current epoch (by node id); 0 for a node never seen.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct GetNodeEpoch(pub String);

/// Increment a node's epoch (by node id); answers the new epoch.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct BumpNodeEpoch(pub String);

/// Record what a node reported and when it was last heard; its epoch is left alone.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct UpsertNode {
    pub node_id: String,
    pub info_json: String,
    pub last_seen_ms: u64,
}

/// Every node ever seen, by id.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<NodeRecord>, StoreError>")]
pub struct ListNodes;

// ---- per-node task progress --------------------------------------------------------------

/// Record how many requests a node said it had sent for a task (the stored count never drops).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SetNodeTaskSent {
    pub execution_id: String,
    pub task_id: u32,
    pub node_id: String,
    pub sent: u64,
}

/// `(task, node, sent)` for every node of every task of an execution (by id).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(u32, String, u64)>, StoreError>")]
pub struct GetNodeTaskSent(pub String);

// ---- the store's own health --------------------------------------------------------------

/// Try the writes kept in memory again (the orchestrator, every second); answers the status
/// after the try.
#[derive(Debug, Message)]
#[rtype(result = "StoreStatus")]
pub struct RetryPending;

/// Whether the store can write, and what it keeps in memory.
#[derive(Debug, Message)]
#[rtype(result = "StoreStatus")]
pub struct GetStoreStatus;
