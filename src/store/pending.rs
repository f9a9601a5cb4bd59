//! Writes the database could not take (a full disk, an I/O error), kept in memory in their
//! order and tried again, so a store that cannot write loses nothing it can hold and says so.
//!
//! While anything is pending, new writes queue behind it (a state change never overtakes the
//! report it follows); [`Pending::retry`] writes from the front until the database refuses
//! again. Memory is bounded by [`MAX_PENDING_BYTES`]: past it, a write is not kept. A window
//! not kept still counts in the running execution's figures and report (they are merged in
//! memory); it is only missing from the store, so a restarted orchestrator cannot replay it,
//! and the execution's reason says how many were not kept.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::Serialize;

use super::{Db, StoreError, WindowKey};

/// The most bytes of writes kept in memory while the store cannot write.
pub const MAX_PENDING_BYTES: usize = 64 << 20;

/// One write the store owes the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Window {
        key: WindowKey,
        payload: Vec<u8>,
    },
    State {
        id: String,
        state: String,
        reason: Option<String>,
        started_at_ms: Option<u64>,
        finished_at_ms: Option<u64>,
    },
    Plan {
        id: String,
        plan_json: String,
    },
    Report {
        id: String,
        report_json: String,
    },
    NodeTaskSent {
        execution_id: String,
        task_id: u32,
        node_id: String,
        sent: u64,
    },
    Node {
        node_id: String,
        info_json: String,
        last_seen_ms: u64,
    },
}

impl Write {
    /// Applies it: `Ok(true)` when it changed the database (a window stored for the first
    /// time, or any other write).
    pub fn apply(&self, db: &Db) -> Result<bool, StoreError> {
        match self {
            Write::Window { key, payload } => db.put_window(key, payload),
            Write::State {
                id,
                state,
                reason,
                started_at_ms,
                finished_at_ms,
            } => db
                .update_execution(
                    id,
                    state,
                    reason.as_deref(),
                    *started_at_ms,
                    *finished_at_ms,
                )
                .map(|()| true),
            Write::Plan { id, plan_json } => db.set_execution_plan(id, plan_json).map(|()| true),
            Write::Report { id, report_json } => {
                db.set_execution_report(id, report_json).map(|()| true)
            }
            Write::NodeTaskSent {
                execution_id,
                task_id,
                node_id,
                sent,
            } => db
                .set_node_task_sent(execution_id, *task_id, node_id, *sent)
                .map(|()| true),
            Write::Node {
                node_id,
                info_json,
                last_seen_ms,
            } => db
                .upsert_node(node_id, info_json, *last_seen_ms)
                .map(|()| true),
        }
    }

    /// About what it holds in memory.
    pub fn size(&self) -> usize {
        let text = match self {
            Write::Window { key, payload } => {
                key.execution_id.len() + key.node_id.len() + payload.len()
            }
            Write::State {
                id, state, reason, ..
            } => id.len() + state.len() + reason.as_ref().map_or(0, String::len),
            Write::Plan { id, plan_json } => id.len() + plan_json.len(),
            Write::Report { id, report_json } => id.len() + report_json.len(),
            Write::NodeTaskSent {
                execution_id,
                node_id,
                ..
            } => execution_id.len() + node_id.len(),
            Write::Node {
                node_id, info_json, ..
            } => node_id.len() + info_json.len(),
        };
        text + 64
    }

    fn execution(&self) -> Option<&str> {
        match self {
            Write::Window { key, .. } => Some(&key.execution_id),
            Write::State { id, .. } | Write::Plan { id, .. } | Write::Report { id, .. } => Some(id),
            Write::NodeTaskSent { execution_id, .. } => Some(execution_id),
            Write::Node { .. } => None,
        }
    }
}

/// Whether an error is the database's storage failing (worth keeping the write and trying
/// again), rather than the write itself being wrong.
pub fn is_storage_failure(e: &StoreError) -> bool {
    use rusqlite::ffi::ErrorCode;
    let StoreError::Sqlite(e) = e else {
        return false;
    };
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
        )
    )
}

/// What `GET /api/health` and the orchestrator learn of the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoreStatus {
    /// The data directory (`None` for a store in memory).
    pub data_dir: Option<String>,
    /// Why the store cannot write now, if it cannot.
    pub error: Option<String>,
    /// Since when it cannot (ms since the Unix epoch).
    pub failing_since_ms: Option<u64>,
    /// Writes kept in memory, waiting for the database, and their size.
    pub pending_writes: usize,
    pub pending_bytes: usize,
    /// Per execution: windows kept in memory, not stored yet.
    pub pending_windows: BTreeMap<String, u64>,
    /// Per execution: windows not kept (past [`MAX_PENDING_BYTES`]): in its report, not in
    /// the store.
    pub dropped_windows: BTreeMap<String, u64>,
    /// Executions that had a write refused since the orchestrator started.
    pub troubled: BTreeMap<String, String>,
}

impl StoreStatus {
    /// Whether the store is short of what it should hold.
    pub fn degraded(&self) -> bool {
        self.error.is_some() || self.pending_writes > 0
    }

    /// One line on what is wrong, if anything.
    pub fn problem(&self) -> Option<String> {
        let error = self.error.as_deref()?;
        let dir = self.data_dir.as_deref().unwrap_or("memory");
        let dropped: u64 = self.dropped_windows.values().sum();
        Some(format!(
            "the store in {dir} cannot write: {error}; {} writes ({} KiB) are kept in memory and \
             retried every second{}",
            self.pending_writes,
            self.pending_bytes.div_ceil(1024),
            if dropped > 0 {
                format!(
                    "; {dropped} windows were past the {} MiB bound and are not kept (they count \
                     in the reports, a restart cannot replay them)",
                    MAX_PENDING_BYTES >> 20
                )
            } else {
                String::new()
            }
        ))
    }
}

/// The queue of writes owed to the database.
#[derive(Debug)]
pub struct Pending {
    queue: VecDeque<Write>,
    bytes: usize,
    max_bytes: usize,
    windows: HashSet<WindowKey>,
    error: Option<(String, u64)>,
    status: StoreStatus,
}

impl Pending {
    pub fn new(data_dir: Option<String>, max_bytes: usize) -> Pending {
        Pending {
            queue: VecDeque::new(),
            bytes: 0,
            max_bytes,
            windows: HashSet::new(),
            error: None,
            status: StoreStatus {
                data_dir,
                ..StoreStatus::default()
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether this window waits in memory already.
    pub fn holds_window(&self, key: &WindowKey) -> bool {
        self.windows.contains(key)
    }

    /// The database refused a write for this reason.
    pub fn failed(&mut self, error: &StoreError, now_ms: u64) {
        let text = error.to_string();
        match &mut self.error {
            Some((e, _)) => *e = text,
            None => self.error = Some((text, now_ms)),
        }
    }

    /// Keeps `w` for later; `false` when it is past the bound and not kept.
    pub fn push(&mut self, w: Write) -> bool {
        if let (Some(id), Some((error, _))) = (w.execution(), &self.error) {
            self.status
                .troubled
                .entry(id.to_string())
                .or_insert_with(|| error.clone());
        }
        let size = w.size();
        if self.bytes + size > self.max_bytes {
            if let Write::Window { key, .. } = &w {
                *self
                    .status
                    .dropped_windows
                    .entry(key.execution_id.clone())
                    .or_default() += 1;
            }
            return false;
        }
        if let Write::Window { key, .. } = &w {
            self.windows.insert(key.clone());
            *self
                .status
                .pending_windows
                .entry(key.execution_id.clone())
                .or_default() += 1;
        }
        self.bytes += size;
        self.queue.push_back(w);
        true
    }

    /// Writes from the front with `apply` until it refuses again (the error is kept) or the
    /// queue is empty (the store is well again). A write refused for what it is (not for the
    /// storage) is dropped, with `on_dropped` told why.
    pub fn retry(
        &mut self,
        now_ms: u64,
        mut apply: impl FnMut(&Write) -> Result<bool, StoreError>,
        mut on_dropped: impl FnMut(&Write, &StoreError),
    ) {
        while let Some(w) = self.queue.front() {
            match apply(w) {
                Ok(_) => {}
                Err(e) if is_storage_failure(&e) => {
                    self.failed(&e, now_ms);
                    return;
                }
                Err(e) => on_dropped(w, &e),
            }
            let w = self.queue.pop_front().expect("a front");
            self.bytes -= w.size();
            if let Write::Window { key, .. } = &w {
                self.windows.remove(key);
                if let Some(n) = self.status.pending_windows.get_mut(&key.execution_id) {
                    *n -= 1;
                    if *n == 0 {
                        self.status.pending_windows.remove(&key.execution_id);
                    }
                }
            }
        }
        self.error = None;
    }

    pub fn status(&self) -> StoreStatus {
        let mut s = self.status.clone();
        s.error = self.error.as_ref().map(|(e, _)| e.clone());
        s.failing_since_ms = self.error.as_ref().map(|(_, at)| *at);
        s.pending_writes = self.queue.len();
        s.pending_bytes = self.bytes;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        ))
    }

    fn window(execution: &str, index: u64, bytes: usize) -> Write {
        Write::Window {
            key: WindowKey {
                execution_id: execution.into(),
                task_id: 0,
                node_id: "n".into(),
                epoch: 0,
                window_index: index,
            },
            payload: vec![0; bytes],
        }
    }

    #[test]
    fn writes_wait_in_order_and_are_written_once_the_storage_takes_them() {
        let mut p = Pending::new(Some("/data".into()), 1 << 20);
        p.failed(&full(), 5);
        assert!(p.push(window("e", 0, 10)));
        assert!(p.push(Write::Report {
            id: "e".into(),
            report_json: "{}".into()
        }));
        assert!(p.push(window("e", 1, 10)));
        let s = p.status();
        assert!(s.degraded());
        assert_eq!(s.failing_since_ms, Some(5));
        assert_eq!(s.pending_windows["e"], 2);
        assert!(s.troubled.contains_key("e"));
        let problem = s.problem().unwrap();
        assert!(
            problem.contains("/data") && problem.contains("disk is full"),
            "{problem}"
        );

        // Still full: nothing moves, nothing is lost.
        p.retry(6, |_| Err(full()), |_, _| panic!("nothing dropped"));
        assert_eq!(p.status().pending_writes, 3);
        // Space again: everything goes, in order.
        let mut seen = Vec::new();
        p.retry(
            7,
            |w| {
                seen.push(w.clone());
                Ok(true)
            },
            |_, _| panic!("nothing dropped"),
        );
        assert_eq!(seen.len(), 3);
        assert!(matches!(seen[1], Write::Report { .. }));
        let s = p.status();
        assert!(!s.degraded(), "{s:?}");
        assert!(s.pending_windows.is_empty() && s.error.is_none());
        assert!(
            s.troubled.contains_key("e"),
            "the execution remembers its trouble"
        );
    }

    #[test]
    fn memory_is_bounded_and_what_is_not_kept_is_counted() {
        let mut p = Pending::new(None, 1000);
        p.failed(&full(), 1);
        assert!(p.push(window("e", 0, 500)));
        assert!(!p.push(window("e", 1, 500)), "past the bound");
        let s = p.status();
        assert_eq!((s.pending_writes, s.dropped_windows["e"]), (1, 1));
        assert!(s.pending_bytes <= 1000);
        assert!(p.holds_window(&WindowKey {
            execution_id: "e".into(),
            task_id: 0,
            node_id: "n".into(),
            epoch: 0,
            window_index: 0,
        }));
    }
}
