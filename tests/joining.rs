//! Joining the cluster is refused before any task is sent: the test opens the orchestrator's
//! `/cluster` link itself and plays a node without the secret, with a wrong one, with a proof
//! recorded on another connection (a replay), with another node's id, with a wrong protocol
//! version, with a frame before `Hello` and with a frame over the size cap. None of them gets a
//! task: the pending execution stays pending and the target hears nothing.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{Cluster, SECRET, Server, cluster_env, get, load_body, orchestrator_cmd};
use common::{mcpt, target, wait_until};
use mcp_testing::health::{CheckKind, CheckResult, HealthReport, Sample, Status};
use mcp_testing::hub::conn::{Conn, Out, connect_ws};
use mcp_testing::hub::handshake::{JoinError, join};
use mcp_testing::messages::wire::{self, Hello, NodeFrame, OrchFrame, PROTOCOL_VERSION};
use serde_json::{Value, json};

/// The orchestrator's `cluster.max_frame_size` (the default).
const CAP: usize = 1 << 20;
/// Longest wait for any answer of the orchestrator (its own handshake timeout is 5 s).
const WAIT: Duration = Duration::from_secs(8);

fn hello(node_id: &str) -> Hello {
    Hello {
        node_id: node_id.to_string(),
        protocol_version: PROTOCOL_VERSION,
        capabilities: vec![],
        capacity: Default::default(),
        location: String::new(),
        rest_addr: String::new(),
        session_id: None,
        recv_hwm: None,
        health: None,
    }
}

async fn open(addr: SocketAddr) -> Conn {
    connect_ws(&format!("ws://{addr}/cluster"), CAP, WAIT)
        .await
        .expect("the cluster route takes a WebSocket")
}

async fn send(conn: &Conn, frame: &NodeFrame) {
    let bytes = wire::encode(frame, CAP).expect("encodes");
    send_raw(conn, bytes).await;
}

async fn send_raw(conn: &Conn, bytes: Vec<u8>) {
    conn.tx
        .send(Out::Frame(bytes.into()))
        .await
        .expect("the link is open");
}

/// The next frame from the orchestrator, or `None` once it closed the link.
async fn next(conn: &mut Conn) -> Option<OrchFrame> {
    let bytes = tokio::time::timeout(WAIT, conn.rx.recv())
        .await
        .expect("the orchestrator answers or closes the link in time")?;
    Some(wire::decode(&bytes, CAP).expect("a frame of the protocol"))
}

/// Reads frames until the orchestrator closes the link; the frames it sent before that.
async fn until_closed(conn: &mut Conn) -> Vec<OrchFrame> {
    let mut seen = Vec::new();
    while let Some(f) = next(conn).await {
        seen.push(f);
    }
    seen
}

async fn close(conn: Conn) {
    let _ = conn
        .tx
        .send(Out::Close {
            code: 1000,
            reason: "done".into(),
        })
        .await;
}

/// Runs `join` on a new connection.
async fn try_join(
    addr: SocketAddr,
    hello: Hello,
    secret: Option<&str>,
) -> (Conn, Result<wire::Welcome, JoinError>) {
    let mut conn = open(addr).await;
    let r = join(&mut conn, hello, secret, CAP, WAIT).await;
    (conn, r)
}

fn refused(what: &str, r: Result<wire::Welcome, JoinError>) -> String {
    match r {
        Err(JoinError::Refused(reason)) => reason,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn unauthenticated_nodes_are_refused_before_any_task() {
    let t = target();
    let c = Cluster::start(0);
    let id = c.submit(&load_body(t.addr, 50, 1, json!({})));
    assert_eq!(c.execution(&id)["state"], "pending");
    let addr = c.orchestrator.addr;
    let sys = actix::System::new();

    sys.block_on(async {
        // A link that never says anything: closed when the handshake times out (checked last).
        let mut silent = open(addr).await;

        // (a) No secret: the proof is keyed with an empty key.
        let (_, r) = try_join(addr, hello("intruder-a"), None).await;
        let why = refused("no secret", r);
        assert!(why.contains("secret"), "{why}");

        // (b) A wrong secret.
        let (_, r) = try_join(addr, hello("intruder-b"), Some("not-the-secret")).await;
        refused("wrong secret", r);

        // (c) A replay: a proof made for one connection's nonce, sent on another connection.
        let mut first = open(addr).await;
        send(&first, &NodeFrame::Hello(hello("intruder-c"))).await;
        let Some(OrchFrame::Challenge { nonce: nonce1 }) = next(&mut first).await else {
            panic!("no challenge on the first connection");
        };
        let recorded = wire::proof(Some(SECRET), &nonce1, "intruder-c");
        close(first).await; // its proof is never used there
        let mut second = open(addr).await;
        send(&second, &NodeFrame::Hello(hello("intruder-c"))).await;
        let Some(OrchFrame::Challenge { nonce: nonce2 }) = next(&mut second).await else {
            panic!("no challenge on the second connection");
        };
        assert_ne!(nonce1, nonce2, "every connection gets a fresh nonce");
        assert_eq!(nonce2.len(), 32);
        send(&second, &NodeFrame::Proof { mac: recorded }).await;
        match next(&mut second).await {
            Some(OrchFrame::Refused { reason }) => assert!(reason.contains("secret"), "{reason}"),
            other => panic!("replayed proof: expected Refused, got {other:?}"),
        }
        assert_eq!(
            until_closed(&mut second).await,
            vec![],
            "closed after the refusal"
        );

        // The right secret for another node's id does not pass either: the proof binds the id.
        let mut conn = open(addr).await;
        send(&conn, &NodeFrame::Hello(hello("intruder-d"))).await;
        let Some(OrchFrame::Challenge { nonce }) = next(&mut conn).await else {
            panic!("no challenge");
        };
        let mac = wire::proof(Some(SECRET), &nonce, "someone-else");
        send(&conn, &NodeFrame::Proof { mac }).await;
        assert!(matches!(
            next(&mut conn).await,
            Some(OrchFrame::Refused { .. })
        ));

        // A wrong protocol version: refused before any challenge.
        let mut old = hello("intruder-e");
        old.protocol_version = PROTOCOL_VERSION + 1;
        let (_, r) = try_join(addr, old, Some(SECRET)).await;
        let why = refused("protocol version", r);
        assert!(why.contains("protocol version"), "{why}");

        // A node of protocol 9, whose Hello had another shape (no health report): refused
        // naming both versions, not dropped as an undecodable frame.
        #[derive(serde::Serialize)]
        enum V9Frame {
            Hello {
                node_id: String,
                protocol_version: u32,
                capabilities: Vec<String>,
                capacity: (u32, u32, u32),
                location: String,
                rest_addr: String,
                session_id: Option<u64>,
                recv_hwm: Option<u64>,
            },
        }
        let mut conn = open(addr).await;
        let v9 = V9Frame::Hello {
            node_id: "old-node".into(),
            protocol_version: 9,
            capabilities: vec![],
            capacity: (2, 2, 100),
            location: String::new(),
            rest_addr: String::new(),
            session_id: None,
            recv_hwm: None,
        };
        send_raw(&conn, wire::encode(&v9, CAP).unwrap()).await;
        match next(&mut conn).await {
            Some(OrchFrame::Refused { reason }) => assert_eq!(
                reason,
                format!("protocol version 9 is not {PROTOCOL_VERSION}")
            ),
            other => panic!("a protocol 9 node: {other:?}"),
        }

        // Node ids that are empty or too long.
        for bad in [String::new(), "n".repeat(129)] {
            let (_, r) = try_join(addr, hello(&bad), Some(SECRET)).await;
            refused("bad node id", r);
        }

        // A frame other than Hello first: no challenge, the link closes.
        let mut conn = open(addr).await;
        send(&conn, &NodeFrame::Proof { mac: vec![0; 32] }).await;
        assert_eq!(until_closed(&mut conn).await, vec![], "proof before hello");

        // Bytes that are no frame at all.
        let mut conn = open(addr).await;
        send_raw(&conn, vec![0xff; 64]).await;
        assert_eq!(until_closed(&mut conn).await, vec![], "garbage first frame");

        // (e) A frame over the 1 MiB cap before Hello: closed, no challenge.
        let mut conn = open(addr).await;
        send_raw(&conn, vec![0; 2 << 20]).await;
        assert_eq!(
            until_closed(&mut conn).await,
            vec![],
            "oversize first frame"
        );

        assert_eq!(until_closed(&mut silent).await, vec![], "silent link");
    });

    // Nothing reached the target, nothing started, no node was admitted.
    assert_eq!(t.stats.view().total, 0);
    let view = c.execution(&id);
    assert_eq!(view["state"], "pending", "{view}");
    assert_eq!(c.nodes_view(), Vec::<Value>::new());
}

/// The cluster's environment with a lease long enough that a busy machine cannot make a node
/// look gone.
fn long_lease(cmd: &mut std::process::Command) {
    cluster_env(cmd)
        .env("MCP_COMM_LEASE_TIMEOUT", "5s")
        .env("MCP_COMM_DEATH_TIMEOUT", "6s");
}

/// An orchestrator with [`long_lease`] and its data directory.
fn long_lease_orchestrator() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = orchestrator_cmd(&dir.path().join("data"), 0);
    long_lease(&mut cmd);
    (Server::spawn("orchestrator", &mut cmd), dir)
}

/// An orchestrator and one node, `node-0`, with a lease long enough that a busy machine
/// cannot make the node look gone (an id is free again once its lease runs out).
struct LongLease {
    orchestrator: Server,
    _node: Server,
    _dir: tempfile::TempDir,
}

impl LongLease {
    fn start() -> LongLease {
        let (orchestrator, dir) = long_lease_orchestrator();
        let url = orchestrator.url("");
        let mut cmd = mcpt(&[
            "node",
            "--orchestrator",
            &url,
            "--port",
            "0",
            "--id",
            "node-0",
        ]);
        long_lease(&mut cmd);
        let node = Server::spawn("node-0", &mut cmd);
        let s = LongLease {
            orchestrator,
            _node: node,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(20), || s.state("node-0").as_deref()
                == Some("connected")),
            "node-0 did not connect: {:?}",
            s.nodes()
        );
        s
    }

    fn nodes(&self) -> Vec<Value> {
        get(&self.orchestrator.url("/api/nodes")).1["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn state(&self, id: &str) -> Option<String> {
        self.nodes()
            .into_iter()
            .find(|n| n["node_id"] == id)
            .map(|n| n["state"].as_str().unwrap_or("").to_string())
    }
}

/// A node id in use by a connected node cannot be taken over, even with the secret; the real
/// node stays connected. The same handshake by hand with a free id is welcomed (so the
/// refusals above are the orchestrator's, not a broken client), and a frame over the cap
/// after it closes the link.
#[test]
fn a_connected_node_id_cannot_be_taken_over() {
    let c = LongLease::start();
    let addr = c.orchestrator.addr;
    let sys = actix::System::new();

    sys.block_on(async {
        // (d) node-0's id, the right secret, no session id.
        let (_, r) = try_join(addr, hello("node-0"), Some(SECRET)).await;
        let why = refused("node-0 without its session", r);
        assert!(why.contains("node-0") && why.contains("in use"), "{why}");

        // A guessed session id is no better.
        let mut guess = hello("node-0");
        guess.session_id = Some(1);
        guess.recv_hwm = Some(0);
        let (_, r) = try_join(addr, guess, Some(SECRET)).await;
        refused("node-0 with a guessed session", r);
    });
    let nodes = c.nodes();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["node_id"], "node-0");
    assert_eq!(nodes[0]["state"], "connected", "{nodes:?}");

    let mut conn = sys.block_on(async {
        let (conn, r) = try_join(addr, hello("probe-1"), Some(SECRET)).await;
        let welcome = r.expect("a free id with the secret is welcomed");
        assert!(welcome.session_id != 0);
        conn
    });
    let state = |id: &str| c.state(id);
    assert_eq!(state("probe-1").as_deref(), Some("connected"));

    sys.block_on(async {
        send_raw(&conn, vec![0; 2 << 20]).await;
        // Heartbeats may come first; then the link closes.
        let frames = until_closed(&mut conn).await;
        assert!(
            frames.iter().all(|f| matches!(f, OrchFrame::Link(_))),
            "{frames:?}"
        );
    });
    assert!(
        wait_until(Duration::from_secs(5), || state("probe-1").as_deref()
            != Some("connected")),
        "probe-1 is still connected: {:?}",
        c.nodes()
    );
    assert_eq!(state("node-0").as_deref(), Some("connected"));
}

/// A node's hello carries its health: a node whose disk is full is critical from the moment it
/// is up, before any health report over the link, so a workload submitted then is refused
/// naming it, not placed on it. A node that joined before its first report is not chosen
/// either until it has reported.
#[test]
fn a_node_is_known_by_the_health_its_hello_carries() {
    let (orchestrator, _dir) = long_lease_orchestrator();
    let sys = actix::System::new();
    let mut sick = hello("full-disk");
    let disk = CheckResult {
        check_id: "disk".into(),
        name: "disk".into(),
        kind: CheckKind::Builtin,
        status: Status::Critical,
        message: "disk use 99.0% is at or past the critical threshold 95%".into(),
        value: Some(99.0),
        unit: Some("%".into()),
    };
    sick.health = Some(Box::new(HealthReport {
        node_id: "full-disk".into(),
        at_ms: 1,
        sample: Sample::default(),
        checks: vec![disk],
        status: Status::Critical,
        score: 10.0,
        alerts: vec![],
        capacity: Default::default(),
    }));
    // The test's nodes say nothing after their handshake: no health report follows. The
    // second one joins without a report (its checks were slower than its join).
    let _conns = sys.block_on(async {
        let (sick_conn, r) = try_join(orchestrator.addr, sick, Some(SECRET)).await;
        r.expect("welcomed");
        let (silent_conn, r) = try_join(orchestrator.addr, hello("no-report"), Some(SECRET)).await;
        r.expect("welcomed");
        (sick_conn, silent_conn)
    });
    let connected = || {
        get(&orchestrator.url("/api/nodes")).1["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["state"] == "connected").count() == 2)
    };
    assert!(
        wait_until(WAIT, connected),
        "the nodes never showed connected"
    );
    let workload = json!({"scenarios": [{"scenario_id": "s1", "test_type": "load_test",
        "parameters": {"targets": [{"url": "http://127.0.0.1:9/"}], "duration": "1s", "base_rps": 1}}]});
    let (status, body) =
        common::cluster::post(&orchestrator.url("/api/workloads"), &workload, None);
    assert_eq!(status, 409, "{body}");
    let reason = body["unplaced"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("full-disk is critical (disk: disk use 99.0%"),
        "{body}"
    );
    assert!(
        reason.contains("no-report is waiting for its first health report"),
        "{body}"
    );
}
