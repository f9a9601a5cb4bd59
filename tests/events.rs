//! The live event stream (`GET /api/events`): a whole execution's events against the committed
//! schema, cluster events (a node joining, leaving, failing, its health and alerts), the
//! execution filter, and a subscriber that never reads being dropped while a 1,000 rps run
//! keeps its rate.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, delete, get, load_body};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<TcpStream>;

/// A subscriber's stream that can stop writing: once muted, what the client would write (the
/// pongs tungstenite sends on its own when it reads a ping) is dropped. A subscriber the server
/// has dropped then reads what was written to it up to the close frame, whether or not the
/// server has closed the connection by then (a pong written to a closed connection fails the
/// read with a broken pipe).
struct Mutable {
    stream: TcpStream,
    muted: bool,
}

impl std::io::Read for Mutable {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf)
    }
}

impl std::io::Write for Mutable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.muted {
            return Ok(buf.len());
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

fn schema() -> jsonschema::Validator {
    common::schema("schemas/events.schema.json")
}

fn orchestrator_addr(c: &Cluster) -> SocketAddr {
    let url = url::Url::parse(&c.orchestrator.url("")).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
        .parse()
        .unwrap()
}

/// Opens `/api/events` (with `query`) over `stream`.
fn subscribe_over(stream: TcpStream, addr: SocketAddr, query: &str) -> Socket {
    let url = format!("ws://{addr}/api/events{query}");
    let (socket, resp) = tungstenite::client(url.as_str(), stream).expect("websocket handshake");
    assert_eq!(resp.status().as_u16(), 101);
    socket
}

fn subscribe(addr: SocketAddr, query: &str) -> Socket {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    subscribe_over(stream, addr, query)
}

/// The next event, or `None` when `deadline` passes first. Panics if the socket ends.
fn next_event(socket: &mut Socket, deadline: Instant) -> Option<Value> {
    while Instant::now() < deadline {
        match socket.read() {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
    None
}

/// Reads events (checking each against the schema) until one satisfies `stop`; all of them.
fn read_until(
    socket: &mut Socket,
    validator: &jsonschema::Validator,
    timeout: Duration,
    mut stop: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(ev) = next_event(socket, deadline) {
        if let Err(e) = validator.validate(&ev) {
            panic!("event off its schema: {e}\n{ev:#}");
        }
        let done = stop(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
    let kinds: Vec<&str> = seen.iter().filter_map(|e| e["type"].as_str()).collect();
    panic!("no awaited event within {timeout:?}; saw {kinds:?}");
}

fn is_final(ev: &Value, id: &str) -> bool {
    ev["type"] == "execution_state"
        && ev["execution_id"] == id
        && matches!(
            ev["state"].as_str(),
            Some("completed" | "completed_degraded" | "failed" | "cancelled")
        )
}

#[test]
fn a_whole_execution_and_the_cluster_stream_by_the_schema() {
    let validator = schema();
    let mut c = Cluster::start(1);
    let addr = orchestrator_addr(&c);
    let t = common::target();
    let mut all = subscribe(addr, "");
    let hello = read_until(&mut all, &validator, Duration::from_secs(5), |_| true);
    assert_eq!(hello[0]["type"], "hello", "{hello:?}");
    assert!(hello[0]["execution_id"].is_null());

    // A node joins.
    let url = c.orchestrator.url("");
    c.add_node_with("node-1", &url, &[]);
    read_until(&mut all, &validator, Duration::from_secs(20), |e| {
        e["type"] == "node_joined" && e["node_id"] == "node-1"
    });
    c.wait_connected(2);

    // An execution over both nodes, from submission to its end.
    let id = c.submit(&load_body(t.addr, 100, 4, json!({})));
    let mut mine = subscribe(addr, &format!("?execution_id={id}"));
    let events = read_until(&mut all, &validator, Duration::from_secs(40), |e| {
        is_final(e, &id)
    });
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "execution_state" && e["execution_id"] == id.as_str())
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(states.first(), Some(&"pending"), "{states:?}");
    assert!(states.contains(&"running"), "{states:?}");
    assert_eq!(states.last(), Some(&"completed"), "{states:?}");
    let stats: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "stats" && e["execution_id"] == id.as_str())
        .collect();
    let seconds: Vec<u64> = stats
        .iter()
        .map(|e| e["second"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seconds,
        (0..seconds.len() as u64).collect::<Vec<_>>(),
        "one event per second, in order"
    );
    assert!(seconds.len() >= 4, "{seconds:?}");
    assert!(stats.iter().all(|e| e["nodes"] == 2 && e["task_id"] == 0));
    // Merged across both nodes: the seconds add up to the report.
    let report = c.report(&id);
    let total = report["summary"]["total_requests"].as_u64().unwrap();
    let streamed: u64 = stats.iter().map(|e| e["completed"].as_u64().unwrap()).sum();
    assert_eq!(streamed, total, "the stats events add up to the report");
    assert_eq!(stats.last().unwrap()["total_completed"], total);
    let full: Vec<f64> = stats[1..stats.len() - 1]
        .iter()
        .map(|e| e["achieved_rps"].as_f64().unwrap())
        .collect();
    eprintln!(
        "execution {id}: {} events, {} stats seconds, achieved rps per second {full:?}, {total} requests",
        events.len(),
        stats.len()
    );

    // The filtered subscriber saw this execution's events only, to the end.
    let filtered = read_until(&mut mine, &validator, Duration::from_secs(10), |e| {
        is_final(e, &id)
    });
    assert_eq!(filtered[0]["type"], "hello");
    assert_eq!(filtered[0]["execution_id"], id.as_str());
    assert!(
        filtered[1..]
            .iter()
            .all(|e| e["execution_id"] == id.as_str())
    );
    assert!(filtered.iter().any(|e| e["type"] == "stats"));

    // The node dies: it leaves, fails, turns critical, and raises an alert.
    c.nodes[1].kill();
    let mut pending: Vec<&str> = vec!["node_left", "node_failed", "node_health", "alert_raised"];
    let cluster_events = read_until(&mut all, &validator, Duration::from_secs(20), |e| {
        let about_node = e["node_id"] == "node-1" || e["alert"]["node_id"] == "node-1";
        if about_node && let Some(kind) = e["type"].as_str() {
            pending.retain(|k| *k != kind);
        }
        pending.is_empty()
    });
    let kinds: Vec<&str> = cluster_events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    eprintln!("after the kill: {kinds:?}");
    let health = cluster_events
        .iter()
        .find(|e| e["type"] == "node_health" && e["node_id"] == "node-1")
        .unwrap();
    assert_eq!(health["to"], "critical", "{health}");
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_while_the_rate_holds() {
    const RPS: u64 = 1000;
    const SECONDS: u64 = 8;
    let c = Cluster::start_with(1, &[("MCP_API_EVENT_BUFFER", "16")]);
    let addr = orchestrator_addr(&c);
    let t = common::target();
    let id = c.submit(&load_body(
        t.addr,
        RPS as u32,
        SECONDS as u32,
        json!({"concurrent_users": 200}),
    ));
    assert!(common::wait_until(Duration::from_secs(10), || {
        c.execution(&id)["state"] == "running"
    }));

    // The lazy subscriber: a small receive window, and it reads nothing.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream = Mutable {
        stream: socket.into(),
        muted: false,
    };
    let (mut lazy, resp) = tungstenite::client(format!("ws://{addr}/api/events").as_str(), stream)
        .expect("websocket handshake");
    assert_eq!(resp.status().as_u16(), 101);
    let dropped = |c: &Cluster| {
        get(&c.orchestrator.url("/api/health")).1["events"]["dropped_slow"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(dropped(&c), 0);

    // Plenty of events while the run goes on: executions submitted and cancelled at once
    // (each a `pending` and a `cancelled` event), a bounded number of them.
    let mut churned = 0;
    for _ in 0..400 {
        let other = c.submit(&load_body(t.addr, 10, 1, json!({})));
        let (status, _) = delete(
            &c.orchestrator.url(&format!("/api/executions/{other}")),
            None,
        );
        assert_eq!(status, 200);
        churned += 1;
        if churned % 10 == 0 && dropped(&c) >= 1 {
            break;
        }
    }
    assert!(
        common::wait_until(Duration::from_secs(5), || dropped(&c) >= 1),
        "the lazy subscriber was not dropped after {churned} executions churned"
    );
    eprintln!("lazy subscriber dropped after {churned} executions churned");

    // Reading now (and writing nothing), it finds what was written, then the close frame
    // with the reason.
    lazy.get_mut().muted = true;
    lazy.get_ref()
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut frames = 0;
    let close = loop {
        match lazy.read() {
            Ok(Message::Text(_)) => frames += 1,
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(e) => panic!("the stream ended without a close frame after {frames} frames: {e}"),
        }
    };
    let close = close.expect("a close frame with a reason");
    assert_eq!(u16::from(close.code), 1008);
    assert!(
        close.reason.starts_with("slow subscriber"),
        "{}",
        close.reason
    );
    eprintln!(
        "lazy subscriber: {frames} frames before the close, reason {:?}",
        close.reason.as_str()
    );

    // The run kept its rate all along.
    c.wait_done(&id, Duration::from_secs(30));
    let report = c.report(&id);
    let s = &report["summary"];
    let planned = s["planned_requests"].as_u64().unwrap();
    let sent = s["sent_requests"].as_u64().unwrap();
    let total = s["total_requests"].as_u64().unwrap();
    let per_second: Vec<u64> = report["tasks"][0]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sent"].as_u64().unwrap())
        .collect();
    eprintln!(
        "1,000 rps run: planned {planned}, sent {sent}, completed {total}, not sent {}, per second {per_second:?}",
        s["not_sent"]
    );
    assert_eq!(planned, RPS * SECONDS);
    assert_eq!(s["not_sent"], 0, "{s}");
    assert!(sent * 100 >= planned * 99, "sent {sent} of {planned}");
    assert_eq!(s["errors"]["total"], 0, "{s}");
}

/// Opens `/api/events` with extra request headers: the handshake's status, and the
/// subprotocol the answer names.
fn handshake(addr: SocketAddr, headers: &[(&str, String)]) -> (u16, Option<String>) {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/api/events")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let stream = TcpStream::connect(addr).unwrap();
    match tungstenite::client(req, stream) {
        Ok((_, resp)) => (
            resp.status().as_u16(),
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string()),
        ),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            (resp.status().as_u16(), None)
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

/// Issue 13, item 2: any page a browser opened could read the event stream (WebSockets are
/// not bound by the same-origin policy). Now a browser's upgrade is answered only from the
/// orchestrator's own origin or with the API token; a client without `Origin` reads it like
/// the rest of the API.
#[test]
fn the_event_stream_answers_its_own_origin_or_the_token() {
    const TOKEN: &str = "s3cret tok/en";
    let c = Cluster::start_with(0, &[("MCP_API_TOKEN", TOKEN)]);
    let addr = orchestrator_addr(&c);
    let hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    let evil = ("Origin", "http://evil.example".to_string());
    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(&str, Headers, u16)> = vec![
        ("another site", vec![evil.clone()], 403),
        ("an opaque origin", vec![("Origin", "null".into())], 403),
        (
            "the same host on another port",
            vec![(
                "Origin",
                format!("http://{}:{}", addr.ip(), addr.port() + 1),
            )],
            403,
        ),
        (
            "another site with a wrong token",
            vec![evil.clone(), ("Authorization", "Bearer nope".into())],
            403,
        ),
        (
            "another site with a wrong token subprotocol",
            vec![
                evil.clone(),
                (
                    "Sec-WebSocket-Protocol",
                    "mcpt.events, mcpt.token.6e6f7065".into(),
                ),
            ],
            403,
        ),
        (
            "its own origin",
            vec![("Origin", format!("http://{addr}"))],
            101,
        ),
        (
            "another site with the token",
            vec![evil.clone(), ("Authorization", format!("Bearer {TOKEN}"))],
            101,
        ),
        ("no Origin (not a browser)", vec![], 101),
    ];
    for (what, headers, want) in cases {
        let (status, _) = handshake(addr, &headers);
        assert_eq!(status, want, "{what}");
    }
    // What the web UI sends when it holds the token: the answer names mcpt.events back.
    let (status, protocol) = handshake(
        addr,
        &[
            evil,
            (
                "Sec-WebSocket-Protocol",
                format!("mcpt.events, mcpt.token.{hex}"),
            ),
        ],
    );
    assert_eq!(
        (status, protocol.as_deref()),
        (101, Some("mcpt.events")),
        "the token as a subprotocol"
    );
}

/// A live change is announced on the stream (by the schema), with the instant it holds from
/// and who made it; the report keeps it.
#[test]
fn a_live_change_is_announced() {
    let validator = schema();
    let c = Cluster::start(1);
    let addr = orchestrator_addr(&c);
    let t = common::target();
    let id = c.submit(&load_body(t.addr, 50, 4, json!({})));
    let mut mine = subscribe(addr, &format!("?execution_id={id}"));
    c.wait_for_second(&id, 1.0);
    let (status, view) = common::cluster::patch(
        &c.orchestrator.url(&format!("/api/executions/{id}")),
        &json!({"base_rps": 80}),
        None,
    );
    assert_eq!(status, 200, "{view}");
    let events = read_until(&mut mine, &validator, Duration::from_secs(20), |e| {
        e["type"] == "execution_adjusted"
    });
    let ev = events.last().unwrap();
    assert_eq!(ev["execution_id"], id.as_str());
    let a = &ev["adjustment"];
    assert_eq!(
        a["change"],
        json!({"rates": {"base_rps": 80.0, "peak_rps": null}}),
        "{ev}"
    );
    assert_eq!(a["task"], 0);
    assert!(a["by"].as_str().unwrap().starts_with("rest "), "{ev}");
    assert_eq!(a, &view["adjustments"][0]);
    c.wait_done(&id, Duration::from_secs(30));
    let report = c.report(&id);
    let problems = common::schema_errors("schemas/report.schema.json", &report);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(report["tasks"][0]["adjustments"][0]["change"], a["change"]);
}
