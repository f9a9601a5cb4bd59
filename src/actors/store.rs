//! `Store`: owns the orchestrator's database connection (`store::Db`) on its own `SyncArbiter`
//! thread, so disk waits never block another actor. Supervises nothing. Takes the messages of
//! `messages::store`: `InsertExecution`, `UpdateExecution`, `SetExecutionPlan`,
//! `SetExecutionReport`, `GetExecution`, `ListExecutions`, `ExecutionsInStates`, `PutWindow`,
//! `WindowsOf`, `CountWindows`, `GetNodeEpoch`, `BumpNodeEpoch`, `UpsertNode`, `ListNodes`,
//! `SetNodeTaskSent`, `GetNodeTaskSent`; each answers the `Db` call's result. And
//! `RetryPending` (the orchestrator, every second): writes the database refused for its
//! storage (a full disk) wait in memory in order (`store::pending`) and are tried again; a
//! write answers `Ok` once it is kept, so nothing upstream stalls on a full disk. And
//! `GetStoreStatus`: the `StoreStatus`, which `GET /api/health` and the executions' reasons report.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use actix::prelude::*;

use crate::messages::store::{
    BumpNodeEpoch, CountWindows, ExecutionsInStates, GetExecution, GetNodeEpoch, GetNodeTaskSent,
    GetStoreStatus, InsertExecution, ListExecutions, ListNodes, PutWindow, RetryPending,
    SetExecutionPlan, SetExecutionReport, SetNodeTaskSent, UpdateExecution, UpsertNode, WindowsOf,
};
use crate::store::pending::{MAX_PENDING_BYTES, Pending, Write, is_storage_failure};
use crate::store::{Db, ExecutionRecord, NodeRecord, StoreError, WindowKey};

pub struct Store {
    db: Db,
    pending: Pending,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Store::in_dir(db, None)
    }

    /// A store of the database in `dir` (named in what it reports).
    pub fn in_dir(db: Db, dir: Option<&Path>) -> Self {
        Store {
            db,
            pending: Pending::new(dir.map(|d| d.display().to_string()), MAX_PENDING_BYTES),
        }
    }

    /// Writes `w`, or keeps it for later when the storage refuses it (or earlier writes still
    /// wait). `Ok(true)`: written or kept, and new (a window not stored before).
    fn write(&mut self, w: Write) -> Result<bool, StoreError> {
        if self.pending.is_empty() {
            match w.apply(&self.db) {
                Err(e) if is_storage_failure(&e) => {
                    tracing::error!(error = %e, "store cannot write; keeping writes in memory");
                    self.pending.failed(&e, crate::clock::unix_ms());
                }
                done => return done,
            }
        } else if let Write::Window { key, .. } = &w
            && (self.pending.holds_window(key) || self.db.has_window(key).unwrap_or(false))
        {
            return Ok(false);
        }
        if self.pending.push(w) {
            Ok(true)
        } else {
            let status = self.pending.status();
            Err(StoreError::Unwritable(
                status
                    .problem()
                    .unwrap_or_else(|| "the store cannot write".into()),
            ))
        }
    }

    fn write_unit(&mut self, w: Write) -> Result<(), StoreError> {
        self.write(w).map(|_| ())
    }

    /// Opens the database in `dir` (errors surface here, before any thread starts), then
    /// starts the actor on one `SyncArbiter` thread. The first actor gets that connection; an
    /// actor rebuilt after a restart reopens the same directory.
    pub fn start(dir: PathBuf) -> Result<Addr<Store>, StoreError> {
        let named = dir.clone();
        Store::start_with(move || Db::open(&dir), Some(named))
    }

    /// A store in memory, for a standalone run that keeps nothing (a rebuilt actor starts
    /// empty).
    pub fn start_in_memory() -> Result<Addr<Store>, StoreError> {
        Store::start_with(Db::open_in_memory, None)
    }

    fn start_with(
        open: impl Fn() -> Result<Db, StoreError> + Send + Sync + 'static,
        dir: Option<PathBuf>,
    ) -> Result<Addr<Store>, StoreError> {
        let first = Mutex::new(Some(open()?));
        Ok(SyncArbiter::start(1, move || {
            let opened = first.lock().unwrap_or_else(PoisonError::into_inner).take();
            let db = match opened {
                Some(db) => db,
                None => open().unwrap_or_else(|error| {
                    // No way to answer an error from a factory: the thread ends and every send
                    // to the store fails with a closed mailbox.
                    tracing::error!(%error, "store cannot reopen its database");
                    panic!("store cannot reopen its database: {error}")
                }),
            };
            Store::in_dir(db, dir.as_deref())
        }))
    }
}

impl Actor for Store {
    type Context = SyncContext<Self>;
}

impl Handler<InsertExecution> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: InsertExecution, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.insert_execution(&msg.0)
    }
}

impl Handler<UpdateExecution> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: UpdateExecution, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.write_unit(Write::State {
            id: msg.id,
            state: msg.state,
            reason: msg.reason,
            started_at_ms: msg.started_at_ms,
            finished_at_ms: msg.finished_at_ms,
        })
    }
}

impl Handler<SetExecutionPlan> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: SetExecutionPlan, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.write_unit(Write::Plan {
            id: msg.id,
            plan_json: msg.plan_json,
        })
    }
}

impl Handler<SetExecutionReport> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: SetExecutionReport, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.write_unit(Write::Report {
            id: msg.id,
            report_json: msg.report_json,
        })
    }
}

impl Handler<GetExecution> for Store {
    type Result = Result<Option<ExecutionRecord>, StoreError>;

    fn handle(&mut self, msg: GetExecution, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.get_execution(&msg.0)
    }
}

impl Handler<ListExecutions> for Store {
    type Result = Result<Vec<ExecutionRecord>, StoreError>;

    fn handle(&mut self, _msg: ListExecutions, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.list_executions()
    }
}

impl Handler<ExecutionsInStates> for Store {
    type Result = Result<Vec<ExecutionRecord>, StoreError>;

    fn handle(&mut self, msg: ExecutionsInStates, _ctx: &mut SyncContext<Self>) -> Self::Result {
        let states: Vec<&str> = msg.0.iter().map(String::as_str).collect();
        self.db.executions_in_states(&states)
    }
}

impl Handler<PutWindow> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: PutWindow, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.write(Write::Window {
            key: msg.key,
            payload: msg.payload,
        })
    }
}

impl Handler<WindowsOf> for Store {
    type Result = Result<Vec<(WindowKey, Vec<u8>)>, StoreError>;

    fn handle(&mut self, msg: WindowsOf, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.windows_of(&msg.0)
    }
}

impl Handler<CountWindows> for Store {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, msg: CountWindows, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.count_windows(&msg.0)
    }
}

impl Handler<GetNodeEpoch> for Store {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, msg: GetNodeEpoch, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.node_epoch(&msg.0)
    }
}

impl Handler<BumpNodeEpoch> for Store {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, msg: BumpNodeEpoch, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.bump_node_epoch(&msg.0)
    }
}

impl Handler<UpsertNode> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: UpsertNode, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.write_unit(Write::Node {
            node_id: msg.node_id,
            info_json: msg.info_json,
            last_seen_ms: msg.last_seen_ms,
        })
    }
}

impl Handler<ListNodes> for Store {
    type Result = Result<Vec<NodeRecord>, StoreError>;

    fn handle(&mut self, _msg: ListNodes, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.list_nodes()
    }
}

impl Handler<SetNodeTaskSent> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: SetNodeTaskSent, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.write_unit(Write::NodeTaskSent {
            execution_id: msg.execution_id,
            task_id: msg.task_id,
            node_id: msg.node_id,
            sent: msg.sent,
        })
    }
}

impl Handler<GetNodeTaskSent> for Store {
    type Result = Result<Vec<(u32, String, u64)>, StoreError>;

    fn handle(&mut self, msg: GetNodeTaskSent, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.db.node_task_sent(&msg.0)
    }
}

impl Handler<RetryPending> for Store {
    type Result = MessageResult<RetryPending>;

    fn handle(&mut self, _: RetryPending, _ctx: &mut SyncContext<Self>) -> Self::Result {
        if !self.pending.is_empty() {
            let db = &self.db;
            self.pending.retry(
                crate::clock::unix_ms(),
                |w| w.apply(db),
                |w, e| tracing::error!(error = %e, write = ?std::mem::discriminant(w), "kept write refused; dropped"),
            );
            if self.pending.is_empty() {
                tracing::info!("store writes again; every kept write is stored");
            }
        }
        MessageResult(self.pending.status())
    }
}

impl Handler<GetStoreStatus> for Store {
    type Result = MessageResult<GetStoreStatus>;

    fn handle(&mut self, _: GetStoreStatus, _ctx: &mut SyncContext<Self>) -> Self::Result {
        MessageResult(self.pending.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_window_round_trips_through_the_actor() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::start(tmp.path().join("data")).unwrap();
        let execution = ExecutionRecord {
            id: "e1".to_owned(),
            name: "run".to_owned(),
            request_json: "{}".to_owned(),
            state: "running".to_owned(),
            reason: None,
            created_at_ms: 1,
            started_at_ms: Some(2),
            finished_at_ms: None,
            plan_json: None,
            report_json: None,
        };
        store
            .send(InsertExecution(execution.clone()))
            .await
            .unwrap()
            .unwrap();
        let key = WindowKey {
            execution_id: "e1".to_owned(),
            task_id: 0,
            node_id: "n1".to_owned(),
            epoch: 1,
            window_index: 0,
        };
        let put = |payload: &[u8]| {
            store.send(PutWindow {
                key: key.clone(),
                payload: payload.to_vec(),
            })
        };
        assert!(put(b"window").await.unwrap().unwrap());
        assert!(!put(b"resent").await.unwrap().unwrap());
        let windows = store
            .send(WindowsOf("e1".to_owned()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(windows, [(key.clone(), b"window".to_vec())]);
        assert_eq!(
            store
                .send(GetExecution("e1".to_owned()))
                .await
                .unwrap()
                .unwrap(),
            Some(execution)
        );
        let err = store
            .send(SetExecutionPlan {
                id: "ghost".to_owned(),
                plan_json: "{}".to_owned(),
            })
            .await
            .unwrap();
        assert!(matches!(err, Err(StoreError::UnknownExecution(_))));
    }
}
