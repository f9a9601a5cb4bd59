//! The orchestrator's store under an unlucky operator's conditions, with real processes: a
//! damaged database file is refused at start; a full disk is reported (execution reason,
//! `/api/health`), loses nothing and marks no connected node lost, and what it kept in memory
//! is stored once there is space again. One orchestrator per data directory.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, Server, cluster_env, get, load_body, orchestrator_cmd};
use common::{ChildGuard, mcpt, target, wait_until};
use serde_json::{Value, json};

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

/// Starts an orchestrator on `data` that must refuse to start: it ends (within 30 s) without
/// serving; answers its exit code and stderr.
fn refused_start(data: &Path) -> (Option<i32>, String) {
    let mut cmd = orchestrator_cmd(data, 0);
    let out = ChildGuard::spawn(cluster_env(&mut cmd)).wait(Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("listening on"),
        "it must not serve: {stderr}"
    );
    (out.status.code(), stderr)
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

    let (code, stderr) = refused_start(&c.data);
    assert_eq!(code, Some(2), "{stderr}");
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

/// One orchestrator per data directory. A second one started on a directory in use waits 10 s
/// for it, then exits 2, naming the directory and the holder's process id, and serves nothing;
/// the first goes on (an execution runs to its end, every request counted by the target). Once
/// the holder is killed with SIGKILL (no cleanup), the directory is free again and the next
/// orchestrator reads what the first stored; one started as another stops takes over.
#[test]
fn a_data_directory_in_use_is_refused_and_free_once_its_holder_dies() {
    let t = target();
    let mut c = Cluster::start(1);
    let (code, stderr) = refused_start(&c.data);
    assert_eq!(code, Some(2), "{stderr}");
    let named = format!(
        "data directory {} is in use by process {}",
        c.data.display(),
        c.orchestrator.pid()
    );
    assert!(stderr.contains(&named), "{stderr}");

    let id = c.submit(&load_body(t.addr, 20, 1, json!({})));
    let done = c.wait_done(&id, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(t.stats.view().total, 20);

    c.orchestrator.kill();
    let again = Cluster::spawn_orchestrator(&c.data, 0);
    let (status, stored) = get(&again.url(&format!("/api/executions/{id}")));
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["state"], "completed", "{stored}");

    // A restart right after a graceful stop waits for the old process to let go.
    again.signal("TERM");
    let third = Cluster::spawn_orchestrator(&c.data, 0);
    let (status, stored) = get(&third.url(&format!("/api/executions/{id}")));
    assert_eq!(
        (status, &stored["state"]),
        (200, &json!("completed")),
        "{stored}"
    );
}

/// A data directory that is a file: refused, the cause said once.
#[test]
fn a_data_dir_that_is_a_file_is_refused_saying_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, "").unwrap();
    let (_, stderr) = refused_start(&file);
    let named = format!("cannot create data directory {}: ", file.display());
    assert!(stderr.contains(&named), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

/// A tmpfs of a given size mounted on a temporary folder (we run as root), unmounted when
/// dropped, even if the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs")
            .success();
        assert!(ok, "mount -t tmpfs (the test needs root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Frees space: the same file system, bigger.
    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("mount runs")
            .success();
        assert!(ok, "remount {size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn health(orchestrator: &Server) -> Value {
    get(&orchestrator.url("/api/health")).1
}

#[test]
fn a_full_disk_is_reported_loses_nothing_and_stores_it_all_once_there_is_space() {
    let disk = Tmpfs::mount("400k");
    let data = disk.path().join("data");
    let t = target();
    let mut cmd = orchestrator_cmd(&data, 0);
    let mut orchestrator = Server::spawn("orchestrator", cluster_env(&mut cmd));
    let mut nodes = Vec::new();
    for id in ["node-0", "node-1"] {
        let mut cmd = mcpt(&[
            "node",
            "--orchestrator",
            &orchestrator.url(""),
            "--port",
            "0",
            "--id",
            id,
        ]);
        nodes.push(Server::spawn(id, cluster_env(&mut cmd)));
    }
    let connected = || {
        get(&orchestrator.url("/api/nodes")).1["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(20), || connected()
            .iter()
            .filter(|n| n["state"] == "connected")
            .count()
            == 2),
        "nodes did not join: {:?}",
        connected()
    );
    assert_eq!(health(&orchestrator)["status"], "healthy");

    let (status, body) = common::cluster::post(
        &orchestrator.url("/api/executions"),
        &load_body(t.addr, 300, 15, json!({})),
        None,
    );
    assert_eq!(status, 201, "{body}");
    let id = body["execution_id"].as_str().unwrap().to_string();
    // The disk fills during the run: the service says so, naming the data folder.
    let mut seen = Value::Null;
    assert!(
        wait_until(Duration::from_secs(30), || {
            seen = health(&orchestrator);
            seen["status"] == "degraded"
        }),
        "health never degraded: {seen}"
    );
    let shown = data.display().to_string();
    let reasons = seen["reasons"].to_string();
    assert!(reasons.contains(&shown), "{reasons}");
    assert!(reasons.contains("full"), "{reasons}");

    let url = orchestrator.url(&format!("/api/executions/{id}"));
    let mut view = Value::Null;
    assert!(
        wait_until(Duration::from_secs(60), || {
            view = get(&url).1;
            view["finished_at_ms"].is_u64()
        }),
        "did not finish: {view}"
    );
    let (_, report) = get(&orchestrator.url(&format!("/api/executions/{id}/report")));
    let received = t.stats.view().total;
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    let reason = view["reason"].as_str().unwrap_or_default().to_string();
    eprintln!(
        "full disk: target got {received}, report says {total} (sent {}), state {}, reason {reason:?}; \
         health {}",
        report["summary"]["sent_requests"], view["state"], seen
    );
    assert_eq!(received, 4500, "the plan ran in full");
    assert_eq!(total, received, "the report counts what the target got");
    assert_eq!(report["summary"]["sent_requests"].as_u64(), Some(received));
    for n in report["tasks"][0]["nodes"].as_array().unwrap() {
        assert_eq!(n["lost"], false, "a connected node is not lost: {n}");
    }
    assert!(
        connected().iter().all(|n| n["state"] == "connected"),
        "{:?}",
        connected()
    );
    assert_eq!(view["state"], "completed_degraded", "{view}");
    assert!(
        reason.contains(&shown) && reason.contains("full"),
        "the reason names the data folder and the error: {reason}"
    );
    assert_eq!(health(&orchestrator)["status"], "degraded");

    // Space again: the kept writes are stored, and the service is healthy.
    disk.grow("64m");
    let mut h = Value::Null;
    assert!(
        wait_until(Duration::from_secs(30), || {
            h = health(&orchestrator);
            h["status"] == "healthy"
        }),
        "still degraded after space came back: {h}"
    );
    assert_eq!(h["store"]["pending_writes"], 0, "{h}");
    let stored: u64 = connected()
        .iter()
        .map(|n| n["windows_stored"].as_u64().unwrap())
        .sum();
    drop(nodes);
    orchestrator.kill();
    let conn = rusqlite::Connection::open(data.join("mcpt.db")).unwrap();
    let in_db: i64 = conn
        .query_row(
            "SELECT count(*) FROM windows WHERE execution_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let in_db = in_db as u64;
    let (state, report_json): (String, Option<String>) = conn
        .query_row(
            "SELECT state, report_json FROM executions WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    eprintln!("after space came back: {in_db} windows stored of {stored} taken; state {state}");
    assert_eq!(in_db, stored, "every window taken is in the store");
    assert_eq!(state, "completed_degraded");
    let stored_report: Value =
        serde_json::from_str(&report_json.expect("the report is stored")).unwrap();
    assert_eq!(
        stored_report["summary"]["total_requests"].as_u64(),
        Some(received)
    );
}
