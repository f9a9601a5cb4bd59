//! The orchestrator's embedded database: SQLite in WAL mode, one file `mcpt.db` in the data
//! directory. `Db` is plain and synchronous; the `Store` actor (`actors::store`) owns one on a
//! `SyncArbiter` thread so no other actor blocks on disk.
//!
//! The schema is versioned with `PRAGMA user_version` and created or upgraded on open. What is
//! kept: executions (the submitted body, state, plan and report), metric windows stored once per
//! `(execution, task, node, epoch, window_index)`, nodes with their epochs, and what each node
//! said it had sent per task.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod lock;
pub mod pending;

pub use lock::DirLock;

use rusqlite::{Connection, OptionalExtension, Row, ffi, params, params_from_iter};
use serde::{Deserialize, Serialize};

/// The database file inside the data directory.
pub const DB_FILE: &str = "mcpt.db";

/// The schema, one script per version: script `i` takes `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("schema.sql")];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Statements kept prepared; more than the number of distinct queries below.
const STATEMENT_CACHE: usize = 64;

/// How long a statement waits for a lock held by another connection to the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The cause is in the message, so it is not also a `source` (a chain would say it twice).
    #[error("cannot create data directory {path}: {cause}")]
    CreateDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "data directory {dir} is in use by {}: give each orchestrator its own \
         --data-dir (orchestrator.data_dir)",
        lock::describe_holder(holder)
    )]
    InUse { dir: PathBuf, holder: Option<u32> },
    #[error("cannot lock {path}: {cause}")]
    Lock {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot open database {path}: {cause}")]
    Open {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("database {path} is in journal mode {mode}, not WAL")]
    NoWal { path: PathBuf, mode: String },
    #[error("database {path} has schema version {found}; this build knows versions 0 to {known}")]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "database {path} is damaged ({detail}); nothing was changed. Move it aside to start with \
         an empty store, e.g. `mv {path} {path}.damaged` (with its -wal and -shm files), or \
         restore it from a backup"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("{0}")]
    Unwritable(String),
    #[error("no execution {0}")]
    UnknownExecution(String),
    #[error("execution {0} already exists")]
    DuplicateExecution(String),
    #[error("{field} = {value} does not fit in a database integer")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// One execution as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub id: String,
    pub name: String,
    /// The submitted body, as received.
    pub request_json: String,
    pub state: String,
    /// Why the execution is in its state (set on failure, cancellation, degradation).
    pub reason: Option<String>,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub plan_json: Option<String>,
    pub report_json: Option<String>,
}

/// The identity of one metric window: a window is stored once per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    pub execution_id: String,
    pub task_id: u32,
    pub node_id: String,
    pub epoch: u64,
    pub window_index: u64,
}

/// One node as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: String,
    pub epoch: u64,
    /// What the node reported about itself; `null` until it has.
    pub info_json: String,
    pub last_seen_ms: u64,
}

/// A connection to the database with its schema in place.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
}

/// The columns of `ExecutionRecord`, in the order `execution_from_row` reads them.
macro_rules! select_executions {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, request_json, state, reason, created_at_ms, started_at_ms, ",
            "finished_at_ms, plan_json, report_json FROM executions ",
            $tail
        )
    };
}

/// Makes the data directory if it is missing.
fn create_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|cause| StoreError::CreateDir {
        path: dir.to_path_buf(),
        cause,
    })
}

impl Db {
    /// Opens (creating if missing) `dir/mcpt.db`, in WAL mode, with the schema in place.
    pub fn open(dir: &Path) -> Result<Db, StoreError> {
        create_dir(dir)?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|cause| StoreError::Open {
            path: path.clone(),
            cause,
        })?;
        Self::init(conn, path, true)
    }

    /// A private database that lives as long as the value; for tests.
    pub fn open_in_memory() -> Result<Db, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|cause| StoreError::Open {
            path: path.clone(),
            cause,
        })?;
        Self::init(conn, path, false)
    }

    fn init(mut conn: Connection, path: PathBuf, wal: bool) -> Result<Db, StoreError> {
        let open_err = |cause| StoreError::Open {
            path: path.clone(),
            cause,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // A damaged file is refused before anything reads or writes it: a header that is not
        // SQLite's fails the first statement, damaged pages fail the check.
        let damaged = |source: rusqlite::Error| match source.sqlite_error_code() {
            Some(ffi::ErrorCode::NotADatabase | ffi::ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt {
                    path: path.clone(),
                    detail: source.to_string(),
                }
            }
            _ => open_err(source),
        };
        if wal {
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(damaged)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::NoWal { path, mode });
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        quick_check(&conn).map_err(|e| match e {
            Ok(detail) => StoreError::Corrupt {
                path: path.clone(),
                detail,
            },
            Err(source) => damaged(source),
        })?;

        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_err)?;
        let Some(pending) = usize::try_from(found)
            .ok()
            .and_then(|applied| MIGRATIONS.get(applied..))
        else {
            return Err(StoreError::SchemaVersion {
                path,
                found,
                known: SCHEMA_VERSION,
            });
        };
        for (offset, script) in pending.iter().enumerate() {
            let version = found + 1 + offset as i64;
            let tx = conn.transaction().map_err(open_err)?;
            tx.execute_batch(script).map_err(open_err)?;
            tx.pragma_update(None, "user_version", version)
                .map_err(open_err)?;
            tx.commit().map_err(open_err)?;
            tracing::info!(path = %path.display(), version, "database schema upgraded");
        }
        Ok(Db { conn })
    }

    // ---- executions ----------------------------------------------------------------------

    /// Stores a new execution; its id must be new.
    pub fn insert_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO executions (id, name, request_json, state, reason, created_at_ms, \
             started_at_ms, finished_at_ms, plan_json, report_json) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        stmt.execute(params![
            record.id,
            record.name,
            record.request_json,
            record.state,
            record.reason,
            int("created_at_ms", record.created_at_ms)?,
            opt_int("started_at_ms", record.started_at_ms)?,
            opt_int("finished_at_ms", record.finished_at_ms)?,
            record.plan_json,
            record.report_json,
        ])
        .map_err(|e| {
            if is_constraint(&e, ffi::SQLITE_CONSTRAINT_PRIMARYKEY) {
                StoreError::DuplicateExecution(record.id.clone())
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// Sets the state and reason (`None` clears it); each timestamp changes only when `Some`.
    pub fn update_execution(
        &self,
        id: &str,
        state: &str,
        reason: Option<&str>,
        started_at_ms: Option<u64>,
        finished_at_ms: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE executions SET state = ?2, reason = ?3, \
             started_at_ms = coalesce(?4, started_at_ms), \
             finished_at_ms = coalesce(?5, finished_at_ms) \
             WHERE id = ?1",
        )?;
        let changed = stmt.execute(params![
            id,
            state,
            reason,
            opt_int("started_at_ms", started_at_ms)?,
            opt_int("finished_at_ms", finished_at_ms)?,
        ])?;
        expect_one(changed, id)
    }

    pub fn set_execution_plan(&self, id: &str, plan_json: &str) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE executions SET plan_json = ?2 WHERE id = ?1")?;
        expect_one(stmt.execute(params![id, plan_json])?, id)
    }

    pub fn set_execution_report(&self, id: &str, report_json: &str) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE executions SET report_json = ?2 WHERE id = ?1")?;
        expect_one(stmt.execute(params![id, report_json])?, id)
    }

    pub fn get_execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(select_executions!("WHERE id = ?1"))?;
        Ok(stmt.query_row([id], execution_from_row).optional()?)
    }

    /// Every execution, newest first.
    pub fn list_executions(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(select_executions!(
            "ORDER BY created_at_ms DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map([], execution_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The executions in any of `states`, newest first (to resume or fail them on restart).
    pub fn executions_in_states(
        &self,
        states: &[&str],
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        // One cached statement per number of states; callers use a handful of fixed sets.
        let placeholders = vec!["?"; states.len()].join(", ");
        let sql = format!(
            "{} WHERE state IN ({placeholders}) ORDER BY created_at_ms DESC, rowid DESC",
            select_executions!("")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(states), execution_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- metric windows ------------------------------------------------------------------

    /// Stores a window once: true when inserted, false when its key was already stored (the
    /// payload of a resend is ignored). The execution must exist.
    pub fn put_window(&self, key: &WindowKey, payload: &[u8]) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO windows (execution_id, task_id, window_index, node_id, epoch, payload) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?;
        let inserted = stmt
            .execute(params![
                key.execution_id,
                key.task_id,
                int("window_index", key.window_index)?,
                key.node_id,
                int("epoch", key.epoch)?,
                payload,
            ])
            .map_err(|e| unknown_execution_or(e, &key.execution_id))?;
        Ok(inserted == 1)
    }

    /// Whether a window is stored under this key.
    pub fn has_window(&self, key: &WindowKey) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM windows WHERE execution_id = ?1 AND task_id = ?2 \
             AND window_index = ?3 AND node_id = ?4 AND epoch = ?5",
        )?;
        Ok(stmt
            .query_row(
                params![
                    key.execution_id,
                    key.task_id,
                    int("window_index", key.window_index)?,
                    key.node_id,
                    int("epoch", key.epoch)?,
                ],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The windows of an execution ordered by task, window index, node (then epoch).
    pub fn windows_of(&self, execution_id: &str) -> Result<Vec<(WindowKey, Vec<u8>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT task_id, window_index, node_id, epoch, payload FROM windows \
             WHERE execution_id = ?1 ORDER BY task_id, window_index, node_id, epoch",
        )?;
        let rows = stmt.query_map([execution_id], |row| {
            let key = WindowKey {
                execution_id: execution_id.to_owned(),
                task_id: row.get(0)?,
                window_index: get_u64(row, 1)?,
                node_id: row.get(2)?,
                epoch: get_u64(row, 3)?,
            };
            Ok((key, row.get(4)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn count_windows(&self, execution_id: &str) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT count(*) FROM windows WHERE execution_id = ?1")?;
        Ok(stmt.query_row([execution_id], |row| get_u64(row, 0))?)
    }

    // ---- nodes and epochs ----------------------------------------------------------------

    /// The node's current epoch; 0 for a node never seen.
    pub fn node_epoch(&self, node_id: &str) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT epoch FROM nodes WHERE node_id = ?1")?;
        let epoch = stmt
            .query_row([node_id], |row| get_u64(row, 0))
            .optional()?;
        Ok(epoch.unwrap_or(0))
    }

    /// Increments the node's epoch in one statement and returns the new one (1 for a node
    /// never seen).
    pub fn bump_node_epoch(&self, node_id: &str) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO nodes (node_id, epoch) VALUES (?1, 1) \
             ON CONFLICT (node_id) DO UPDATE SET epoch = epoch + 1 RETURNING epoch",
        )?;
        Ok(stmt.query_row([node_id], |row| get_u64(row, 0))?)
    }

    /// Records what a node reported and when it was last heard; its epoch is left alone (0 for
    /// a new node).
    pub fn upsert_node(
        &self,
        node_id: &str,
        info_json: &str,
        last_seen_ms: u64,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO nodes (node_id, info_json, last_seen_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (node_id) DO UPDATE SET \
             info_json = excluded.info_json, last_seen_ms = excluded.last_seen_ms",
        )?;
        stmt.execute(params![
            node_id,
            info_json,
            int("last_seen_ms", last_seen_ms)?
        ])?;
        Ok(())
    }

    /// Every node ever seen, by id.
    pub fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT node_id, epoch, info_json, last_seen_ms FROM nodes ORDER BY node_id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(NodeRecord {
                node_id: row.get(0)?,
                epoch: get_u64(row, 1)?,
                info_json: row.get(2)?,
                last_seen_ms: get_u64(row, 3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- per-node task progress ----------------------------------------------------------

    /// Records how many requests a node said it had sent for a task; a lower count than the
    /// one stored (a late or resent report) never lowers it. The execution must exist.
    pub fn set_node_task_sent(
        &self,
        execution_id: &str,
        task_id: u32,
        node_id: &str,
        sent: u64,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO node_task_sent (execution_id, task_id, node_id, sent) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (execution_id, task_id, node_id) \
             DO UPDATE SET sent = max(sent, excluded.sent)",
        )?;
        stmt.execute(params![execution_id, task_id, node_id, int("sent", sent)?])
            .map_err(|e| unknown_execution_or(e, execution_id))?;
        Ok(())
    }

    /// `(task, node, sent)` for every node of every task of an execution, by task then node.
    pub fn node_task_sent(
        &self,
        execution_id: &str,
    ) -> Result<Vec<(u32, String, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT task_id, node_id, sent FROM node_task_sent \
             WHERE execution_id = ?1 ORDER BY task_id, node_id",
        )?;
        let rows = stmt.query_map([execution_id], |row| {
            Ok((row.get(0)?, row.get(1)?, get_u64(row, 2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// `PRAGMA quick_check`: `Err(Ok(what))` names the damage it found (the first few
/// problems), `Err(Err(e))` is a check that could not run at all.
fn quick_check(conn: &Connection) -> Result<(), Result<String, rusqlite::Error>> {
    let mut stmt = conn.prepare("PRAGMA quick_check(5)").map_err(Err)?;
    let problems: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(Err)?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        [] => Err(Ok("the integrity check found nothing to read".into())),
        _ => Err(Ok(format!("integrity check: {}", problems.join("; ")))),
    }
}

fn execution_from_row(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        request_json: row.get(2)?,
        state: row.get(3)?,
        reason: row.get(4)?,
        created_at_ms: get_u64(row, 5)?,
        started_at_ms: get_opt_u64(row, 6)?,
        finished_at_ms: get_opt_u64(row, 7)?,
        plan_json: row.get(8)?,
        report_json: row.get(9)?,
    })
}

/// A u64 as the i64 SQLite stores.
fn int(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field, value })
}

fn opt_int(field: &'static str, value: Option<u64>) -> Result<Option<i64>, StoreError> {
    value.map(|v| int(field, v)).transpose()
}

/// A stored i64 read back as the u64 it was written from.
fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

fn get_opt_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let value: Option<i64> = row.get(idx)?;
    value
        .map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)))
        .transpose()
}

fn expect_one(changed: usize, id: &str) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::UnknownExecution(id.to_owned()))
    } else {
        Ok(())
    }
}

fn is_constraint(error: &rusqlite::Error, extended_code: std::ffi::c_int) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.extended_code == extended_code)
}

/// A foreign-key failure on a row that names an execution means the execution is unknown.
fn unknown_execution_or(error: rusqlite::Error, execution_id: &str) -> StoreError {
    if is_constraint(&error, ffi::SQLITE_CONSTRAINT_FOREIGNKEY) {
        StoreError::UnknownExecution(execution_id.to_owned())
    } else {
        error.into()
    }
}

#[cfg(test)]
mod tests;
