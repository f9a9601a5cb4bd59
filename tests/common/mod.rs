//! Test harness: targets on port 0 that stop when dropped, a guard for spawned `mcpt`
//! processes, plan files, and the one polling helper, `wait_until`.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};

pub mod browser;
pub mod capacity;
pub mod cluster;
pub mod netns;
pub mod proxy;
pub mod vulnerable;
pub use mcp_testing::cli::TargetGuard;
use mcp_testing::plan;
use mcp_testing::settings::Settings;
use mcp_testing::task::report::Report;
use mcp_testing::task::{self, TestPlan};

/// The machine's own CPU and disk levels, off: a build beside the suite, the other tests or a
/// nearly full disk must not make a node critical, so that a node's health is what a test does
/// to it (kill, freeze, cut) and placement never finds "no healthy node" by accident.
pub const STEADY_HEALTH: [(&str, &str); 4] = [
    ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_CPU_WARNING", "101"),
    ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_CPU_CRITICAL", "101"),
    ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_WARNING", "101"),
    (
        "MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_CRITICAL",
        "101",
    ),
];

/// Settings for a process of the library on 127.0.0.1 (free ports), with [`STEADY_HEALTH`].
pub fn steady_settings() -> Settings {
    let env = STEADY_HEALTH
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load(None, &env, &[])
        .expect("steady settings")
        .on_loopback()
}

/// Polls `pred` every 10 ms until it holds or `timeout` passes; says which.
pub fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "the single polling helper of the tests"
        )]
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asks `ask` every 10 ms until its answer satisfies `done` or `timeout` passes, and returns
/// the last answer. The async twin of [`wait_until`], for tests whose actors run on the test's
/// own runtime (a sleeping thread would stop them), and for conditions only an actor can tell.
pub async fn ask_until<T, F: std::future::Future<Output = T>>(
    timeout: Duration,
    mut ask: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let end = Instant::now() + timeout;
    loop {
        let answer = ask().await;
        if done(&answer) || Instant::now() >= end {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets `d` pass. Only for scenarios that need time itself to pass (a node frozen past the
/// death timeout, a restart one second later) or that check that nothing more happens over
/// a while; everything else waits for its condition with [`wait_until`].
pub fn hold(d: Duration) {
    wait_until(d, || false);
}

/// An `mcpt target` on 127.0.0.1:0 in this process, with one server thread.
pub fn target() -> TargetGuard {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    TargetGuard::start(listener, 1).expect("target starts")
}

/// A port on which nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plan document and its validation against the default settings.
pub struct Plan {
    pub doc: serde_json::Value,
    pub plan: TestPlan,
}

/// Validates a plan against the default settings, panicking with the errors.
pub fn plan(yaml: &str) -> Plan {
    let doc = plan::parse_document(yaml).expect("plan parses");
    let plan = task::validate(&doc, &Settings::defaults().load_generation)
        .unwrap_or_else(|e| panic!("{e}"));
    Plan { doc, plan }
}

/// Runs a plan in this process (orchestrator and node, joined in process), on a System of
/// its own.
pub fn run(plan: &Plan) -> Report {
    run_with(plan, &Settings::defaults().load_generation)
}

/// Runs a plan with the given load settings (the node validates it against them again).
pub fn run_with(plan: &Plan, settings: &mcp_testing::settings::LoadSettings) -> Report {
    try_run_with(plan, settings).expect("the run completes")
}

/// Runs a plan; the error of a run that could not start or failed.
pub fn try_run_with(
    plan: &Plan,
    settings: &mcp_testing::settings::LoadSettings,
) -> Result<Report, mcp_testing::run::RunError> {
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let settings = mcp_testing::run::standalone_settings(settings);
    actix::System::new().block_on(mcp_testing::run::run_plan(
        &plan.doc,
        &plan.plan,
        &settings,
        stop_rx,
        |_| {},
    ))
}

/// A file in a temporary folder that lives as long as the value.
pub struct TempFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn temp_file(name: &str, contents: &str) -> TempFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(contents.as_bytes())
        .unwrap();
    TempFile { _dir: dir, path }
}

/// `mcpt run` of the plan `yaml` with `extra` arguments, waited for (a minute at most): the
/// process's output and the JSON report it wrote, if it wrote one.
#[allow(dead_code)]
pub fn run_plan(yaml: &str, extra: &[&str]) -> (Output, Option<serde_json::Value>) {
    let plan = temp_file("plan.yaml", yaml);
    let out = plan.path.with_extension("json");
    let mut args = vec!["run", plan.path.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--output", out.to_str().unwrap()]);
    let output = ChildGuard::spawn(&mut mcpt(&args)).wait(Duration::from_secs(60));
    let report = std::fs::read_to_string(&out)
        .ok()
        .map(|text| serde_json::from_str(&text).expect("the report is JSON"));
    (output, report)
}

/// A spawned process that is killed (and reaped) when dropped, even if the test fails.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        ChildGuard(Some(child))
    }

    /// The process's stderr, to read it as it comes.
    pub fn take_stderr(&mut self) -> std::process::ChildStderr {
        self.0
            .as_mut()
            .expect("running")
            .stderr
            .take()
            .expect("stderr is piped")
    }

    /// The process's stdout, to read it as it comes.
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.0
            .as_mut()
            .expect("running")
            .stdout
            .take()
            .expect("stdout is piped")
    }

    /// The process id, to signal this process (and only it).
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// Waits for the process to exit within `timeout` and returns its output.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let mut child = self.0.take().unwrap();
        let exited = wait_until(timeout, || {
            child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        if !exited {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "process did not exit within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `promtool check metrics` (the Prometheus project's own parser and linter) on `text`: exit 0
/// clean, 1 a parse error, 3 lint problems only (listed on stdout).
pub fn promtool_check_metrics(text: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus; .ci/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// `mcpt` with arguments, with no `MCP_*` variables of the caller's environment.
pub fn mcpt(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpt"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCP_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The `mcpt` binary under test (for commands wrapped by another, like `ip netns exec`).
pub fn mcpt_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcpt"))
}

/// The validator of a committed schema (`rel` from the repository root, e.g.
/// `schemas/report.schema.json`).
pub fn schema(rel: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_path(rel)).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{rel} compiles: {e}"))
}

/// What in `v` breaks the committed schema `rel`, each with its place.
pub fn schema_errors(rel: &str, v: &serde_json::Value) -> Vec<String> {
    schema(rel)
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A little HTTP server on 127.0.0.1:0, on its own thread and actix system, answering every
/// request with `handler`; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start<F, Fut>(handler: F) -> TestServer
    where
        F: Fn(actix_web::HttpRequest) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = HttpResponse> + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let srv = actix_web::HttpServer::new(move || {
                    actix_web::App::new().default_service(web::to(handler.clone()))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(srv.handle()).unwrap();
                let _ = srv.await;
            })
        });
        TestServer {
            addr,
            handle: rx.recv().unwrap(),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ =
            std::thread::spawn(move || actix::System::new().block_on(handle.stop(false))).join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A target that answers 200, or 500 while `failing` is set (a service that starts failing).
pub fn switchable_target(failing: Arc<std::sync::atomic::AtomicBool>) -> TestServer {
    TestServer::start(move |_req| {
        let down = failing.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if down {
                HttpResponse::InternalServerError().body("down")
            } else {
                HttpResponse::Ok().body("up")
            }
        }
    })
}

/// One request as the stall target saw it.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub received: Instant,
    pub released: Instant,
}

/// A target that answers at once, except that from its `stall_after`-th request on it holds
/// every response until one `stall` after that request arrived: the server "freezes" once.
pub struct StallTarget {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Seen>>>,
    _server: TestServer,
}

struct StallState {
    received: std::sync::atomic::AtomicUsize,
    stall_after: usize,
    stall: Duration,
    stall_start: Mutex<Option<Instant>>,
    log: Arc<Mutex<Vec<Seen>>>,
}

async fn stall_handler(state: Arc<StallState>) -> HttpResponse {
    let received = Instant::now();
    let index = state
        .received
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let release_at = {
        let mut start = state.stall_start.lock().unwrap();
        if start.is_none() && index + 1 >= state.stall_after {
            *start = Some(received);
        }
        start.map(|s| s + state.stall).filter(|end| *end > received)
    };
    if let Some(end) = release_at {
        tokio::time::sleep_until(end.into()).await;
    }
    state.log.lock().unwrap().push(Seen {
        received,
        released: Instant::now(),
    });
    HttpResponse::Ok().body("ok")
}

impl StallTarget {
    pub fn start(stall_after: usize, stall: Duration) -> StallTarget {
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(StallState {
            received: Default::default(),
            stall_after,
            stall,
            stall_start: Mutex::new(None),
            log: log.clone(),
        });
        let server = TestServer::start(move |_req| stall_handler(state.clone()));
        StallTarget {
            addr: server.addr,
            log,
            _server: server,
        }
    }
}
