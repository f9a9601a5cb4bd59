//! Messages of the cluster's control actors: to the `Orchestrator` (from REST handlers, the
//! cluster route and the node proxies), to a `NodeProxy` (from the orchestrator) and to a
//! `NodeAgent` (from the node's REST API).

use actix::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::execution::ExecutionView;
use crate::hub::conn::Conn;
use crate::hub::handshake::{Capacity, Hello};
use crate::messages::wire::{OrchMsg, TaskProgress, TaskRef};
use crate::task::TestPlan;

// ---- to the Orchestrator ----

/// A validated execution to store and run; answers its id once it is stored.
#[derive(Message)]
#[rtype(result = "Result<String, SubmitError>")]
pub struct Submit {
    pub request: Value,
    pub plan: TestPlan,
    /// A member of a coordinated group: `(group id, size)`; it starts when all have their
    /// resources, together.
    pub barrier: Option<(String, usize)>,
}

/// A node's latest health report (from its proxy).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeHealth {
    pub node_id: String,
    pub report: crate::health::HealthReport,
}

/// The known nodes as placement sees them (capabilities, capacity, health, record); those not
/// connected are unhealthy, `unreachable`.
#[derive(Message)]
#[rtype(result = "Vec<crate::placement::NodeState>")]
pub struct GetNodeStates;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the execution could not be stored: {0}")]
    Store(String),
}

/// Cancels an execution; answers its state afterwards, `None` if unknown.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct Cancel(pub String);

/// A live change to a running execution; answers its view afterwards.
#[derive(Message)]
#[rtype(result = "Result<ExecutionView, crate::execution::AdjustError>")]
pub struct Adjust {
    pub id: String,
    pub request: crate::execution::AdjustRequest,
}

/// The live view of an execution the orchestrator holds (`None`: not in memory).
#[derive(Message)]
#[rtype(result = "Option<ExecutionView>")]
pub struct GetExecution(pub String);

/// Views of the executions in memory, newest first.
#[derive(Message)]
#[rtype(result = "Vec<ExecutionView>")]
pub struct ListExecutions;

/// The timeline so far of an execution the orchestrator holds (`None`: not in memory).
#[derive(Message)]
#[rtype(result = "Option<crate::execution::Timeline>")]
pub struct GetTimeline(pub String);

/// The report of an execution in memory (live until it ends, final after).
#[derive(Message)]
#[rtype(result = "Option<Value>")]
pub struct GetReport(pub String);

/// The report of an execution in memory as a value (for `mcpt run`'s text report).
#[derive(Message)]
#[rtype(result = "Option<crate::task::report::Report>")]
pub struct BuildReport(pub String);

/// The cluster's nodes.
#[derive(Message)]
#[rtype(result = "Vec<NodeView>")]
pub struct ListNodes;

/// A node passed the handshake on `conn`: hand it to its proxy, or refuse (the reason).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Attach {
    pub hello: Hello,
    pub conn: Conn,
}

/// From a proxy: a node's session is up (new or resumed), at this epoch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeUp {
    pub node_id: String,
    pub epoch: u64,
    /// What the node said of itself when it joined.
    pub hello: Hello,
}

/// From a proxy: a window was stored for the first time; merge it (`last`: the node's last
/// window of the task).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeWindow {
    pub node_id: String,
    pub task: TaskRef,
    pub window: crate::stats::Window,
    pub last: bool,
}

/// From a proxy: what a node says it has sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeProgress {
    pub node_id: String,
    pub tasks: Vec<TaskProgress>,
}

/// From a proxy: the tasks a node runs after a new session; answers those to go on with.
#[derive(Message)]
#[rtype(result = "Vec<TaskRef>")]
pub struct NodeRunning {
    pub node_id: String,
    pub tasks: Vec<TaskRef>,
}

/// From a proxy: the node refused a task.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeRejected {
    pub node_id: String,
    pub task: TaskRef,
    pub reason: String,
}

/// From a proxy: a node's part of a task run as a job, done, with its result as the node
/// sent it (JSON, read by the task's kind).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeJobDone {
    pub node_id: String,
    pub task: TaskRef,
    pub result_json: String,
}

/// From a proxy: the node's link closed; it may resume within the death timeout.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeLinkDown {
    pub node_id: String,
}

/// From a proxy: nothing heard from the node for the death timeout; it is fenced, and frames
/// of epochs before `epoch` are rejected from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeFailed {
    pub node_id: String,
    pub epoch: u64,
}

/// From a proxy: the node said goodbye (it was stopped); fenced at `epoch` like a failed node,
/// and shown `left`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeLeft {
    pub node_id: String,
    pub epoch: u64,
}

/// Forget a node: from its proxy (failed or left for `service_discovery.service_timeout`) or
/// `DELETE /api/nodes/{id}`. A node still connected (or inside its death timeout) is not
/// forgotten.
#[derive(Message)]
#[rtype(result = "Result<(), ForgetRefused>")]
pub struct ForgetNode {
    pub node_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgetRefused {
    #[error("no node {0:?}")]
    Unknown(String),
    #[error(
        "node {0:?} is connected (or may still resume its link): stop it (it leaves with a \
         goodbye) or wait until it has failed, then forget it"
    )]
    Connected(String),
}

// ---- to a NodeProxy ----

/// Send an application message to the node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub OrchMsg);

/// Take over a new connection of the node.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct TakeConn {
    pub hello: Hello,
    pub conn: Conn,
}

/// The proxy's snapshot.
#[derive(Message)]
#[rtype(result = "NodeView")]
pub struct GetNodeView;

/// A node as the orchestrator sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub node_id: String,
    /// `connected`, `disconnected` (its session may resume) or `failed` (fenced).
    pub state: &'static str,
    pub epoch: u64,
    pub location: String,
    pub capabilities: Vec<String>,
    pub capacity: Capacity,
    pub rest_addr: String,
    /// Milliseconds since the node was last heard from.
    pub last_heard_ms: u64,
    pub windows_stored: u64,
    pub windows_duplicate: u64,
    /// Windows counted in their execution but not kept by the store (its disk refused them
    /// and its memory bound was reached).
    pub windows_unstored: u64,
    /// Frames stamped with an epoch older than the node's (sent before it was fenced).
    pub fenced_frames_rejected: u64,
    pub link: crate::hub::session::SessionStats,
}
