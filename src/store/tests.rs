use super::*;

fn execution(id: &str, created_at_ms: u64) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_owned(),
        name: format!("run {id}"),
        request_json: r#"{"name":"run","tasks":[]}"#.to_owned(),
        state: "pending".to_owned(),
        reason: None,
        created_at_ms,
        started_at_ms: None,
        finished_at_ms: None,
        plan_json: None,
        report_json: None,
    }
}

fn key(execution_id: &str, task_id: u32, node_id: &str, epoch: u64, window: u64) -> WindowKey {
    WindowKey {
        execution_id: execution_id.to_owned(),
        task_id,
        node_id: node_id.to_owned(),
        epoch,
        window_index: window,
    }
}

#[test]
fn a_damaged_file_is_refused_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path()).unwrap();
    db.insert_execution(&execution("a", 1)).unwrap();
    db.conn
        .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(db);
    let path = tmp.path().join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    // Past the header: the file still opens as SQLite, its pages are garbage.
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    std::fs::write(&path, &bytes).unwrap();
    match Db::open(tmp.path()) {
        Err(e @ StoreError::Corrupt { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("mv "), "{text}");
        }
        other => panic!("a damaged file must be refused: {other:?}"),
    }
    // Not a database at all (its header too): the same answer.
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        Db::open(tmp.path()),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn open_creates_the_directory_the_file_and_the_schema_in_wal_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data").join("nested");
    let db = Db::open(&dir).unwrap();
    assert!(dir.join(DB_FILE).is_file());

    let version: i64 = db
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = db
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let synchronous: i64 = db
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");

    let mut stmt = db
        .conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["executions", "node_task_sent", "nodes", "windows"]);

    // Opening again finds the schema in place and leaves it be.
    drop(stmt);
    drop(db);
    let db = Db::open(&dir).unwrap();
    assert!(db.list_executions().unwrap().is_empty());
}

#[test]
fn open_refuses_a_schema_newer_than_this_build() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path()).unwrap();
    db.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let err = Db::open(tmp.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaVersion { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(DB_FILE), "{err}");
}

#[test]
fn open_failure_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Db::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn execution_round_trip_and_state_updates() {
    let db = Db::open_in_memory().unwrap();
    let rec = execution("e1", 1_000);
    db.insert_execution(&rec).unwrap();
    assert_eq!(db.get_execution("e1").unwrap(), Some(rec.clone()));
    assert_eq!(db.get_execution("nope").unwrap(), None);
    assert!(matches!(
        db.insert_execution(&rec),
        Err(StoreError::DuplicateExecution(id)) if id == "e1"
    ));

    db.update_execution("e1", "running", None, Some(1_500), None)
        .unwrap();
    db.set_execution_plan("e1", r#"{"shares":[]}"#).unwrap();
    // A later change without timestamps keeps the ones stored.
    db.update_execution("e1", "failed", Some("node lost"), None, Some(9_000))
        .unwrap();
    db.set_execution_report("e1", r#"{"tasks":[]}"#).unwrap();
    let got = db.get_execution("e1").unwrap().unwrap();
    assert_eq!(
        got,
        ExecutionRecord {
            state: "failed".to_owned(),
            reason: Some("node lost".to_owned()),
            started_at_ms: Some(1_500),
            finished_at_ms: Some(9_000),
            plan_json: Some(r#"{"shares":[]}"#.to_owned()),
            report_json: Some(r#"{"tasks":[]}"#.to_owned()),
            ..rec
        }
    );
    // The reason follows the state: a change without one clears it.
    db.update_execution("e1", "cancelled", None, None, None)
        .unwrap();
    assert_eq!(db.get_execution("e1").unwrap().unwrap().reason, None);

    for err in [
        db.update_execution("nope", "running", None, None, None),
        db.set_execution_plan("nope", "{}"),
        db.set_execution_report("nope", "{}"),
    ] {
        assert!(matches!(err, Err(StoreError::UnknownExecution(id)) if id == "nope"));
    }
}

#[test]
fn executions_are_listed_newest_first_and_filtered_by_state() {
    let db = Db::open_in_memory().unwrap();
    for (id, at, state) in [
        ("a", 10, "completed"),
        ("b", 30, "running"),
        ("c", 20, "pending"),
        ("d", 20, "failed"),
    ] {
        db.insert_execution(&ExecutionRecord {
            state: state.to_owned(),
            ..execution(id, at)
        })
        .unwrap();
    }
    let ids = |v: Vec<ExecutionRecord>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    // Equal timestamps: the later insert first.
    assert_eq!(ids(db.list_executions().unwrap()), ["b", "d", "c", "a"]);
    assert_eq!(
        ids(db
            .executions_in_states(&["pending", "planning", "running"])
            .unwrap()),
        ["b", "c"]
    );
    assert_eq!(ids(db.executions_in_states(&["failed"]).unwrap()), ["d"]);
    assert!(db.executions_in_states(&[]).unwrap().is_empty());
}

#[test]
fn a_window_is_stored_once_per_key_and_epochs_are_distinct_keys() {
    let db = Db::open_in_memory().unwrap();
    db.insert_execution(&execution("e1", 1)).unwrap();
    db.insert_execution(&execution("e2", 2)).unwrap();

    assert!(db.put_window(&key("e1", 0, "n1", 1, 0), b"first").unwrap());
    assert!(!db.put_window(&key("e1", 0, "n1", 1, 0), b"resent").unwrap());
    assert!(
        db.put_window(&key("e1", 0, "n1", 2, 0), b"new epoch")
            .unwrap()
    );
    assert!(db.put_window(&key("e1", 0, "n0", 1, 1), b"n0 w1").unwrap());
    assert!(db.put_window(&key("e1", 0, "n1", 1, 1), b"n1 w1").unwrap());
    assert!(db.put_window(&key("e1", 1, "n0", 1, 0), b"task 1").unwrap());
    assert!(db.put_window(&key("e2", 0, "n1", 1, 0), b"other").unwrap());

    assert_eq!(db.count_windows("e1").unwrap(), 5);
    assert_eq!(db.count_windows("e2").unwrap(), 1);
    assert_eq!(db.count_windows("none").unwrap(), 0);
    let got = db.windows_of("e1").unwrap();
    let expected: Vec<(WindowKey, Vec<u8>)> = vec![
        (key("e1", 0, "n1", 1, 0), b"first".to_vec()),
        (key("e1", 0, "n1", 2, 0), b"new epoch".to_vec()),
        (key("e1", 0, "n0", 1, 1), b"n0 w1".to_vec()),
        (key("e1", 0, "n1", 1, 1), b"n1 w1".to_vec()),
        (key("e1", 1, "n0", 1, 0), b"task 1".to_vec()),
    ];
    assert_eq!(got, expected);
}

#[test]
fn rows_for_an_unknown_execution_are_refused() {
    let db = Db::open_in_memory().unwrap();
    let err = db.put_window(&key("ghost", 0, "n1", 1, 0), b"x");
    assert!(matches!(err, Err(StoreError::UnknownExecution(id)) if id == "ghost"));
    let err = db.set_node_task_sent("ghost", 0, "n1", 5);
    assert!(matches!(err, Err(StoreError::UnknownExecution(id)) if id == "ghost"));
}

#[test]
fn values_beyond_i64_are_refused_not_wrapped() {
    let db = Db::open_in_memory().unwrap();
    db.insert_execution(&execution("e1", 1)).unwrap();
    let err = db.put_window(&key("e1", 0, "n1", u64::MAX, 0), b"x");
    assert!(matches!(
        err,
        Err(StoreError::OutOfRange { field: "epoch", .. })
    ));
}

#[test]
fn bump_node_epoch_increments_and_persists_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = Db::open(tmp.path()).unwrap();
        assert_eq!(db.node_epoch("n1").unwrap(), 0);
        assert_eq!(db.bump_node_epoch("n1").unwrap(), 1);
        assert_eq!(db.bump_node_epoch("n1").unwrap(), 2);
        assert_eq!(db.node_epoch("n1").unwrap(), 2);
        assert_eq!(db.node_epoch("n2").unwrap(), 0);
    }
    let db = Db::open(tmp.path()).unwrap();
    assert_eq!(db.node_epoch("n1").unwrap(), 2);
    assert_eq!(db.bump_node_epoch("n1").unwrap(), 3);
    assert_eq!(db.bump_node_epoch("n2").unwrap(), 1);
}

#[test]
fn upsert_node_keeps_the_epoch() {
    let db = Db::open_in_memory().unwrap();
    db.bump_node_epoch("n2").unwrap();
    db.upsert_node("n2", r#"{"cores":4}"#, 100).unwrap();
    db.upsert_node("n1", r#"{"cores":2}"#, 50).unwrap();
    db.upsert_node("n1", r#"{"cores":8}"#, 70).unwrap();
    db.bump_node_epoch("n3").unwrap();
    assert_eq!(
        db.list_nodes().unwrap(),
        [
            NodeRecord {
                node_id: "n1".to_owned(),
                epoch: 0,
                info_json: r#"{"cores":8}"#.to_owned(),
                last_seen_ms: 70,
            },
            NodeRecord {
                node_id: "n2".to_owned(),
                epoch: 1,
                info_json: r#"{"cores":4}"#.to_owned(),
                last_seen_ms: 100,
            },
            NodeRecord {
                node_id: "n3".to_owned(),
                epoch: 1,
                info_json: "null".to_owned(),
                last_seen_ms: 0,
            },
        ]
    );
}

#[test]
fn set_node_task_sent_keeps_the_max() {
    let db = Db::open_in_memory().unwrap();
    db.insert_execution(&execution("e1", 1)).unwrap();
    db.set_node_task_sent("e1", 1, "n1", 10).unwrap();
    db.set_node_task_sent("e1", 1, "n1", 40).unwrap();
    db.set_node_task_sent("e1", 1, "n1", 25).unwrap();
    db.set_node_task_sent("e1", 0, "n2", 7).unwrap();
    db.set_node_task_sent("e1", 1, "n0", 3).unwrap();
    assert_eq!(
        db.node_task_sent("e1").unwrap(),
        [
            (0, "n2".to_owned(), 7),
            (1, "n0".to_owned(), 3),
            (1, "n1".to_owned(), 40),
        ]
    );
    assert!(db.node_task_sent("other").unwrap().is_empty());
}

#[test]
fn everything_survives_close_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = ExecutionRecord {
        state: "running".to_owned(),
        started_at_ms: Some(5),
        plan_json: Some("{}".to_owned()),
        ..execution("e1", 1)
    };
    {
        let db = Db::open(tmp.path()).unwrap();
        db.insert_execution(&rec).unwrap();
        assert!(db.put_window(&key("e1", 0, "n1", 1, 0), b"w0").unwrap());
        db.upsert_node("n1", "{}", 9).unwrap();
        db.bump_node_epoch("n1").unwrap();
        db.set_node_task_sent("e1", 0, "n1", 12).unwrap();
    }
    // The orchestrator restarts.
    let db = Db::open(tmp.path()).unwrap();
    assert_eq!(db.get_execution("e1").unwrap(), Some(rec.clone()));
    assert_eq!(db.executions_in_states(&["running"]).unwrap(), [rec]);
    assert_eq!(
        db.windows_of("e1").unwrap(),
        [(key("e1", 0, "n1", 1, 0), b"w0".to_vec())]
    );
    // A window resent after the restart still counts once.
    assert!(!db.put_window(&key("e1", 0, "n1", 1, 0), b"w0").unwrap());
    assert_eq!(db.count_windows("e1").unwrap(), 1);
    assert_eq!(
        db.list_nodes().unwrap(),
        [NodeRecord {
            node_id: "n1".to_owned(),
            epoch: 1,
            info_json: "{}".to_owned(),
            last_seen_ms: 9,
        }]
    );
    assert_eq!(db.node_task_sent("e1").unwrap(), [(0, "n1".to_owned(), 12)]);
}
