-- Schema version 1 of the orchestrator's database. Applied once, in a transaction, when
-- `PRAGMA user_version` is 0; later versions are new files applied after this one.
-- Timestamps are milliseconds since the Unix epoch. Every u64 is stored as INTEGER (i64).

-- One row per submitted execution; `state` is one of pending, planning, running, completed,
-- completed_degraded, failed, cancelled.
CREATE TABLE executions (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    request_json   TEXT NOT NULL,
    state          TEXT NOT NULL,
    reason         TEXT,
    created_at_ms  INTEGER NOT NULL,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,
    plan_json      TEXT,
    report_json    TEXT
) STRICT;

CREATE INDEX executions_by_created ON executions (created_at_ms);
CREATE INDEX executions_by_state ON executions (state);

-- Metric windows, stored once per key: a resent window is ignored. The primary key is laid out
-- in the order windows are read back (task, window, node, epoch).
CREATE TABLE windows (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    task_id      INTEGER NOT NULL,
    window_index INTEGER NOT NULL,
    node_id      TEXT NOT NULL,
    epoch        INTEGER NOT NULL,
    payload      BLOB NOT NULL,
    PRIMARY KEY (execution_id, task_id, window_index, node_id, epoch)
) STRICT, WITHOUT ROWID;

-- Nodes ever seen and their current epoch (bumped when a node is declared dead or rejoins).
-- `info_json` is 'null' until the node has reported itself.
CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY NOT NULL,
    epoch        INTEGER NOT NULL DEFAULT 0,
    info_json    TEXT NOT NULL DEFAULT 'null',
    last_seen_ms INTEGER NOT NULL DEFAULT 0
) STRICT;

-- How many requests each node said it had sent per task: the planned-but-not-sent count of a
-- node lost mid-run is its share minus this.
CREATE TABLE node_task_sent (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    task_id      INTEGER NOT NULL,
    node_id      TEXT NOT NULL,
    sent         INTEGER NOT NULL,
    PRIMARY KEY (execution_id, task_id, node_id)
) STRICT, WITHOUT ROWID;
