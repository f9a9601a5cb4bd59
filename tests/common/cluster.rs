//! A cluster sandbox of real processes: an `mcpt orchestrator` on 127.0.0.1:0 with its own data
//! folder and short link timers, `mcpt node`s joining it, each killed (by its own pid) when the
//! sandbox drops. Also a small blocking JSON client for the REST API.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{ChildGuard, mcpt, wait_until};

/// Link timers for tests: heartbeat H, lease L, death D (D >= L + 2H).
pub const HEARTBEAT: &str = "200ms";
pub const LEASE: &str = "600ms";
pub const DEATH: &str = "1200ms";
pub const SECRET: &str = "test-cluster-secret";

/// A running `mcpt` server process and what it printed.
pub struct Server {
    pub guard: Option<ChildGuard>,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    pub name: String,
}

impl Server {
    /// Spawns `cmd` and waits for its "listening on http://ADDR" line.
    pub fn spawn(name: &str, cmd: &mut Command) -> Server {
        let mut guard = ChildGuard::spawn(cmd);
        let stderr = guard.take_stderr();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(t) = tx.take()
                {
                    let addr = rest.split([' ', ',']).next().unwrap_or("").to_string();
                    let _ = t.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{name} did not start: {:?}", log.lock().unwrap()));
        Server {
            guard: Some(guard),
            addr: addr.parse().expect("address"),
            log,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a signal to this process (and only it).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        self.signal("KILL");
        self.guard.take();
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log_text());
        }
    }
}

/// `mcpt orchestrator` on 127.0.0.1:`port` with its store in `data` (no environment set).
pub fn orchestrator_cmd(data: &std::path::Path, port: u16) -> Command {
    mcpt(&[
        "orchestrator",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

/// Environment every cluster process gets: short timers, the secret, quiet logs.
pub fn cluster_env(cmd: &mut Command) -> &mut Command {
    cmd.env("MCP_CLUSTER_SECRET", SECRET)
        .env("MCP_COMM_HEARTBEAT_INTERVAL", HEARTBEAT)
        .env("MCP_COMM_LEASE_TIMEOUT", LEASE)
        .env("MCP_COMM_DEATH_TIMEOUT", DEATH)
        .env("MCP_LOAD_GENERATION_DRAIN_TIMEOUT", "2s")
        .envs(super::STEADY_HEALTH)
        // Tests send nothing beyond loopback: no multicast (tests/multicast.rs has its own
        // network of namespaces).
        .env("MCP_DISCOVERY_MULTICAST_ENABLED", "false")
        .env("MCPT_LOG", "info,actix_server=warn")
}

pub struct Cluster {
    pub orchestrator: Server,
    pub nodes: Vec<Server>,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// An orchestrator and `n` nodes (`node-0`, ...), all joined.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    pub fn spawn_orchestrator(data: &std::path::Path, port: u16) -> Server {
        Server::spawn(
            "orchestrator",
            cluster_env(&mut orchestrator_cmd(data, port)),
        )
    }

    pub fn add_node(&mut self, id: &str) {
        let url = self.orchestrator.url("");
        self.add_node_via(id, &url);
    }

    /// A node that reaches the orchestrator at `url` (a proxy, say).
    pub fn add_node_via(&mut self, id: &str, url: &str) {
        self.add_node_with(id, url, &[]);
    }

    /// A node with extra environment (its own settings).
    pub fn add_node_with(&mut self, id: &str, url: &str, env: &[(&str, &str)]) {
        self.spawn_node(id, url, &[], env);
    }

    /// A node of this orchestrator with a settings file (`--config`) and extra environment.
    pub fn add_configured_node(
        &mut self,
        id: &str,
        config: &std::path::Path,
        env: &[(&str, &str)],
    ) {
        let url = self.orchestrator.url("");
        let config = config.to_str().expect("a UTF-8 path");
        self.spawn_node(id, &url, &["--config", config], env);
    }

    fn spawn_node(&mut self, id: &str, url: &str, args: &[&str], env: &[(&str, &str)]) {
        let mut cmd = mcpt(&["node", "--orchestrator", url, "--port", "0", "--id", id]);
        cmd.args(args);
        cluster_env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.nodes.push(Server::spawn(id, &mut cmd));
    }

    /// An orchestrator with extra environment (its own settings) and `n` nodes, all joined.
    pub fn start_with(n: usize, orchestrator_env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut cmd = orchestrator_cmd(&data, 0);
        cluster_env(&mut cmd);
        for (k, v) in orchestrator_env {
            cmd.env(k, v);
        }
        let mut c = Cluster {
            orchestrator: Server::spawn("orchestrator", &mut cmd),
            nodes: Vec::new(),
            data,
            _dir: dir,
        };
        for i in 0..n {
            c.add_node(&format!("node-{i}"));
        }
        c.wait_connected(n);
        c
    }

    /// An orchestrator alone; add nodes with [`Cluster::add_node_with`].
    pub fn empty() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Cluster {
            orchestrator: Cluster::spawn_orchestrator(&data, 0),
            nodes: Vec::new(),
            data,
            _dir: dir,
        }
    }

    /// One node's entry in `GET /api/nodes` (`null` when it is not listed).
    pub fn node_view(&self, node: &str) -> Value {
        self.nodes_view()
            .into_iter()
            .find(|v| v["node_id"] == node)
            .unwrap_or_default()
    }

    /// Waits until `at_s` seconds after execution `id`'s common start.
    pub fn wait_for_second(&self, id: &str, at_s: f64) {
        let mut start = None;
        assert!(wait_until(Duration::from_secs(30), || {
            start = self.execution(id)["started_at_ms"].as_u64();
            start.is_some()
        }));
        let at = start.unwrap() + (at_s * 1000.0) as u64;
        wait_until(Duration::from_secs(60), || now_ms() >= at);
    }

    pub fn nodes_view(&self) -> Vec<Value> {
        get(&self.orchestrator.url("/api/nodes")).1["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `n` nodes are connected.
    pub fn wait_connected(&self, n: usize) {
        let ok = wait_until(Duration::from_secs(20), || {
            self.nodes_view()
                .iter()
                .filter(|v| v["state"] == "connected")
                .count()
                == n
        });
        assert!(ok, "{n} nodes did not connect: {:?}", self.nodes_view());
    }

    pub fn submit(&self, body: &Value) -> String {
        let (status, resp) = post(&self.orchestrator.url("/api/executions"), body, None);
        assert_eq!(status, 201, "{resp}");
        resp["execution_id"].as_str().unwrap().to_string()
    }

    pub fn execution(&self, id: &str) -> Value {
        get(&self.orchestrator.url(&format!("/api/executions/{id}"))).1
    }

    /// Waits for the execution to reach a final state and returns its view.
    pub fn wait_done(&self, id: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let done = wait_until(timeout, || {
            last = self.execution(id);
            last["finished_at_ms"].is_u64()
                && matches!(
                    last["state"].as_str(),
                    Some("completed" | "completed_degraded" | "failed" | "cancelled")
                )
        });
        assert!(done, "execution {id} did not finish: {last}");
        last
    }

    pub fn report(&self, id: &str) -> Value {
        let (status, r) = get(&self
            .orchestrator
            .url(&format!("/api/executions/{id}/report")));
        assert_eq!(status, 200, "{r}");
        r
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn read(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    match resp {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// GET; the status (0 when nothing answered) and the JSON body.
pub fn get(url: &str) -> (u16, Value) {
    read(agent().get(url).call())
}

/// POST a JSON body, with a bearer token if given.
pub fn post(url: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().post(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    read(req.send_json(body))
}

/// PATCH a JSON body, with a bearer token if given.
pub fn patch(url: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().patch(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    read(req.send_json(body))
}

/// DELETE, with a bearer token if given.
pub fn delete(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().delete(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    read(req.call())
}

/// POST raw bytes with a content type.
pub fn post_raw(url: &str, content_type: &str, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().post(url).header("Content-Type", content_type);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    read(req.send(&body[..]))
}

/// A load-test execution body against `target` (host:port).
pub fn load_body(target: SocketAddr, rps: u32, duration_s: u32, extra: Value) -> Value {
    let mut params = serde_json::json!({
        "targets": [{"url": format!("http://{target}/")}],
        "duration": format!("{duration_s}s"),
        "base_rps": rps,
        "pattern": "constant",
    });
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    serde_json::json!({"name": "cluster-test", "tasks": [{"type": "load_test", "parameters": params}]})
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
