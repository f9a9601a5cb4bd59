//! The orchestrator's store under an unlucky operator's conditions, with real processes: a
//! damaged database file is refused at start.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, cluster_env, load_body, orchestrator_cmd};
use common::{ChildGuard, target};
use serde_json::json;

/// Writes random bytes over every page of an SQLite file, all but the file header (the first
/// 100 bytes), so the file still opens as SQLite and only a check of its pages can tell.
fn scramble_pages(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    assert!(bytes.len() >= size, "at least one page");
    for (page, chunk) in bytes.chunks_mut(size).enumerate() {
        let from = if page == 0 { 100 } else { 0 };
        for b in &mut chunk[from..] {
            *b = rand::random::<u8>();
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_store_is_refused_at_start() {
    let t = target();
    let mut c = Cluster::start(0);
    for _ in 0..7 {
        // No node: each stays pending until cancelled.
        let id = c.submit(&load_body(t.addr, 10, 1, json!({})));
        let (status, _) =
            common::cluster::delete(&c.orchestrator.url(&format!("/api/executions/{id}")), None);
        assert_eq!(status, 200);
    }
    c.orchestrator.kill();
    // Everything into the main file (no WAL left to read pages from), then damage it.
    let db = c.data.join("mcpt.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(conn);
    scramble_pages(&db);

    let mut cmd = orchestrator_cmd(&c.data, 0);
    let out = ChildGuard::spawn(cluster_env(&mut cmd)).wait(Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("listening on"),
        "it must not serve: {stderr}"
    );
    let shown = db.display().to_string();
    assert!(
        stderr.contains(&format!("database {shown} is damaged")),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains(&format!("mv {shown} {shown}.damaged")),
        "says how to move it aside: {stderr}"
    );
}
