//! `mcpt run PLAN --orchestrator URL` against a cluster of real processes: the CI script of
//! `examples/ci/` passing, failing a threshold and finding no cluster; Ctrl-C cancelling the
//! remote execution; a connection to the orchestrator lost mid-run, got back or not.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{Cluster, get};
use common::proxy::FaultProxy;
use common::{ChildGuard, TargetGuard, closed_port, hold, mcpt, repo_path, target, wait_until};

const TOKEN: &str = "remote-run-token";
const WAIT: Duration = Duration::from_secs(90);

/// The example plan of `examples/ci/`, aimed at `t` instead of `mcpt target`'s default
/// address, written to `dir`.
fn ci_plan(dir: &Path, name: &str, t: &TargetGuard, path: &str) -> String {
    let example = std::fs::read_to_string(repo_path("examples/ci/plan.yaml")).unwrap();
    let aimed = example.replace(
        "http://127.0.0.1:8089/",
        &format!("http://{}{path}", t.addr),
    );
    assert_ne!(
        aimed, example,
        "the example plan names http://127.0.0.1:8089/"
    );
    let file = dir.join(name);
    std::fs::write(&file, aimed).unwrap();
    file.to_str().unwrap().to_string()
}

/// Kills a process group (a script and the `mcpt` it started) unless disarmed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
        }
    }
}

/// `examples/ci/load-test.sh` with `env`, waited for, in a process group of its own.
fn ci_script(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(repo_path("examples/ci/load-test.sh"))
        .env("MCPT", common::mcpt_path())
        .process_group(0);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCP") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = ChildGuard::spawn(&mut cmd);
    let mut group = GroupGuard(Some(child.id()));
    let output = child.wait(WAIT);
    group.0 = None;
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Acceptance 1: the CI script runs the example plan on a three-node cluster and exits 0,
/// then 3 for a failing threshold, 1 when no cluster answers, 2 for a plan it never sends.
#[test]
fn the_ci_script_passes_fails_or_finds_no_cluster() {
    let t = target();
    let c = Cluster::start_with(3, &[("MCP_API_TOKEN", TOKEN)]);
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = c.orchestrator.url("");
    let reports = dir.path().join("reports");
    let run = |plan: &str, url: &str| {
        ci_script(&[
            ("MCPT_ORCHESTRATOR", url),
            ("MCPT_TOKEN", TOKEN),
            ("MCPT_PLAN", plan),
            ("MCPT_REPORT_DIR", reports.to_str().unwrap()),
        ])
    };

    let passing = ci_plan(dir.path(), "pass.yaml", &t, "/");
    let out = run(&passing, &orchestrator);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("thresholds passed"), "{stdout}");
    assert!(stderr.contains("load test passed"), "{stderr}");
    // The local run's progress line, with the plan's rate read from the cluster.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("s/3s  planned       20 rps")),
        "{stderr}"
    );
    let report = read_json(&reports.join("report.json"));
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    assert_eq!(
        total,
        t.stats.view().total,
        "the report counts what the target got"
    );
    assert_eq!(total, 60, "{report}");
    assert_eq!(report["tasks"][0]["nodes"].as_array().unwrap().len(), 3);
    assert!(reports.join("report.html").is_file());

    let failing = ci_plan(dir.path(), "fail.yaml", &t, "/status?code=500");
    let out = run(&failing, &orchestrator);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("a threshold failed"), "{stderr}");
    let report = read_json(&reports.join("report.json"));
    assert_eq!(report["summary"]["thresholds_passed"], false, "{report}");

    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let out = run(&passing, &nowhere);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the orchestrator at {nowhere}")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no report without a cluster");

    // Read and refused here, as a local run's: exit 2, nothing submitted.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "tasks: [{type: load_test, parameters: {duration: -1}}]\n",
    )
    .unwrap();
    let before = get(&c.orchestrator.url("/api/executions")).1;
    let out = run(bad.to_str().unwrap(), &orchestrator);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(get(&c.orchestrator.url("/api/executions")).1, before);
}

/// `mcpt run ... --orchestrator` spawned with its stderr read line by line as it comes.
struct Running {
    child: ChildGuard,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(cmd: &mut Command) -> Running {
        let mut child = ChildGuard::spawn(cmd);
        let pipe = child.take_stderr();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits for a progress line of the run.
    fn wait_progress(&self) {
        let seen = wait_until(WAIT, || self.stderr().contains("planned"));
        assert!(seen, "no progress line: {}", self.stderr());
    }

    /// The process's exit, and all it wrote on stderr.
    fn finish(self) -> (Output, String) {
        let out = self.child.wait(WAIT);
        // The reader has the rest once the pipe closes.
        wait_until(Duration::from_secs(5), || {
            Arc::strong_count(&self.stderr) == 1
        });
        let stderr = self.stderr.lock().unwrap().join("\n");
        (out, stderr)
    }
}

/// A plan of `seconds` at 20 rps against `t`, in `dir`.
fn plan_file(dir: &Path, t: &TargetGuard, seconds: u32) -> String {
    let file = dir.join("plan.yaml");
    std::fs::write(
        &file,
        format!(
            "name: remote\ntasks:\n  - type: load_test\n    parameters:\n      targets: ['http://{}/']\n      duration: {seconds}s\n      base_rps: 20\n",
            t.addr
        ),
    )
    .unwrap();
    file.to_str().unwrap().to_string()
}

/// Ctrl-C (SIGINT to `mcpt run`) cancels the execution on the cluster, then prints the
/// report of what ran and exits 130. The token comes from MCP_API_TOKEN.
#[test]
fn ctrl_c_cancels_the_remote_execution() {
    let t = target();
    let c = Cluster::start_with(3, &[("MCP_API_TOKEN", TOKEN)]);
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), &t, 60);
    let output = dir.path().join("report.json");
    let url = c.orchestrator.url("");
    let run = Running::start(
        mcpt(&["run", &plan, "--orchestrator", &url])
            .args(["--output", output.to_str().unwrap()])
            .env("MCP_API_TOKEN", TOKEN),
    );
    run.wait_progress();
    let ok = Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (out, stderr) = run.finish();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("cancelling execution"), "{stderr}");
    let executions = get(&c.orchestrator.url("/api/executions")).1;
    let list = executions["executions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{executions}");
    assert_eq!(list[0]["state"], "cancelled", "{executions}");
    let report = read_json(&output);
    assert_eq!(report["summary"]["interrupted"], true, "{report}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    assert_eq!(total, t.stats.view().total);
    assert!(total < 60 * 20, "cancelled before its end: {total}");
}

/// The connection to the orchestrator is cut mid-run and refused for a while: the run gets
/// it back, follows the execution to its end and reports all of it.
#[test]
fn a_lost_orchestrator_is_followed_again_once_back() {
    let t = target();
    let c = Cluster::start(1);
    let proxy = FaultProxy::start(c.orchestrator.addr);
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), &t, 6);
    let output = dir.path().join("report.json");
    let url = format!("http://{}", proxy.addr);
    let run = Running::start(
        mcpt(&["run", &plan, "--orchestrator", &url]).args(["--output", output.to_str().unwrap()]),
    );
    run.wait_progress();
    proxy.partition();
    hold(Duration::from_secs(2));
    proxy.heal();
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("lost the orchestrator"), "{stderr}");
    assert!(stderr.contains("reconnected"), "{stderr}");
    let report = read_json(&output);
    assert_eq!(report["summary"]["interrupted"], false, "{report}");
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    assert_eq!(total, 120, "{report}");
    assert_eq!(total, t.stats.view().total);
}

/// An orchestrator that stays out of reach past --reconnect-timeout: exit 1, no report, never
/// a success it did not see.
#[test]
fn a_lost_orchestrator_that_stays_away_is_an_error() {
    let t = target();
    let c = Cluster::start(1);
    let proxy = FaultProxy::start(c.orchestrator.addr);
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), &t, 6);
    let url = format!("http://{}", proxy.addr);
    let run = Running::start(&mut mcpt(&[
        "run",
        &plan,
        "--orchestrator",
        &url,
        "--reconnect-timeout",
        "1s",
    ]));
    run.wait_progress();
    proxy.partition();
    let (out, stderr) = run.finish();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "lost the orchestrator at {url} and could not reach it again within 1 s"
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no report: {}", text(&out.stdout));
    // The execution itself ran on, to its end.
    let list = get(&c.orchestrator.url("/api/executions")).1;
    let id = list["executions"][0]["execution_id"].as_str().unwrap();
    assert_eq!(c.wait_done(id, WAIT)["state"], "completed");
}
