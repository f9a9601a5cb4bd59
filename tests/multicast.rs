//! Zero-configuration discovery across a real network: an orchestrator in one network
//! namespace and two nodes in two others, on one bridge, the nodes started with no address.
//! They hear the orchestrator's signed multicast announcements, join, and run an execution;
//! forged announcements (unsigned, wrongly signed, replayed) sent meanwhile are ignored and
//! counted.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{SECRET, Server};
use common::netns::Netns;
use common::{mcpt_path, wait_until};
use mcp_testing::discovery::{Announcement, ServiceInstance, ServiceType, sign};
use serde_json::{Value, json};

const INTERVAL_S: u64 = 2;
const GROUP: &str = "239.255.77.77";
/// The group's port is one every member shares, so it is fixed; it lives only in the
/// namespaces this test makes. Every TCP port is 0.
const PORT: u16 = 19077;

/// The header that carries [`TOKEN`].
const AUTHORIZATION: &str = "Authorization: Bearer multicast-test-token";

/// A JSON request made with curl inside `ns` (the test process is not on the bridge).
fn curl(net: &Netns, ns: &str, method: &str, url: &str, body: Option<&Value>) -> Value {
    let mut argv = vec!["curl", "-s", "-m", "10", "-X", method, url];
    let text;
    if let Some(b) = body {
        text = b.to_string();
        argv.extend(["-H", "Content-Type: application/json", "-d", &text]);
        argv.extend(["-H", AUTHORIZATION]);
    }
    let out = net.exec(ns, &argv);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        Value::String(format!(
            "{} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// The API token of the processes here (they listen beyond loopback).
const TOKEN: &str = "multicast-test-token";

/// Environment every process of this network gets.
fn env<'a>(cmd: &'a mut Command, iface: &str) -> &'a mut Command {
    // They listen beyond loopback: a token is required (reads stay open).
    cmd.env("MCP_CLUSTER_SECRET", SECRET)
        .env("MCP_API_TOKEN", TOKEN)
        .env("MCP_DISCOVERY_MULTICAST_GROUP", GROUP)
        .env("MCP_DISCOVERY_MULTICAST_PORT", PORT.to_string())
        .env("MCP_DISCOVERY_MULTICAST_INTERFACE", iface)
        .env("MCP_DISCOVERY_BROADCAST_INTERVAL", INTERVAL_S.to_string())
        .env("MCP_HEALTH_CHECK_INTERVAL", "1")
        .env("MCP_LOAD_GENERATION_ALLOWED_TARGETS", "10.0.0.0/8")
        .env("MCP_LOAD_GENERATION_DRAIN_TIMEOUT", "2s")
        .env("MCPT_LOG", "info,actix_server=warn")
}

/// Sends `datagram` to the group from inside `ns` (python's socket module, one line).
fn send_datagram(net: &Netns, ns: &str, iface: &str, datagram: &[u8]) {
    let hex: String = datagram.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);\
         s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton('{iface}'));\
         s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_TTL,1);\
         s.sendto(bytes.fromhex('{hex}'),('{GROUP}',{PORT}))"
    );
    let out = net.exec(ns, &["python3", "-c", &script]);
    assert!(
        out.status.success(),
        "sending a datagram failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first datagram on the group from inside `ns` that contains `needle`.
fn capture(net: &Netns, ns: &str, iface: &str, needle: &str) -> Vec<u8> {
    let script = format!(
        "import socket,struct;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1);\
         s.bind(('',{PORT}));\
         s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,socket.inet_aton('{GROUP}')+socket.inet_aton('{iface}'));\
         s.settimeout({});\n\
         while True:\n d=s.recv(65536)\n if b'{needle}' in d:\n  print(d.hex());break",
        3 * INTERVAL_S
    );
    let out = net.exec(ns, &["python3", "-c", &script]);
    assert!(
        out.status.success(),
        "no announcement heard: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// An announcement of a fake orchestrator at `host`, sent `age_ms` ago.
fn fake(host: &str, age_ms: u64, nonce: u64) -> Announcement {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Announcement {
        version: 1,
        service: ServiceInstance {
            service_id: "impostor".into(),
            service_type: ServiceType::Orchestrator,
            name: "impostor".into(),
            host: host.into(),
            port: 8080,
            capabilities: vec![],
            location: String::new(),
            healthy: true,
            metadata: Default::default(),
        },
        sent_at_ms: now - age_ms,
        nonce,
    }
}

#[test]
fn nodes_with_no_address_find_the_orchestrator_by_multicast() {
    let mut net = Netns::new(77);
    let orch_ns = net.host(1);
    let node_ns = [net.host(2), net.host(3)];
    let forger_ns = net.host(4);
    let orch_ip = net.addr(1);
    let dir = tempfile::tempdir().unwrap();

    let orchestrator = Server::spawn(
        "orchestrator",
        env(
            net.command(&orch_ns, mcpt_path().to_str().unwrap()).args([
                "orchestrator",
                "--host",
                &orch_ip,
                "--port",
                "0",
                "--data-dir",
                dir.path().join("data").to_str().unwrap(),
            ]),
            &orch_ip,
        ),
    );
    let api = format!("http://{}", orchestrator.addr);
    let target = Server::spawn(
        "target",
        net.command(&orch_ns, mcpt_path().to_str().unwrap())
            .args(["target", "--host", &orch_ip, "--port", "0"]),
    );

    // Forged announcements pointing at an orchestrator that does not exist, sent before and
    // while the nodes listen: unsigned, signed with the wrong secret, and replayed (a valid
    // signature over a 60-second-old timestamp, and the same datagram twice).
    let bogus = net.addr(99);
    let forger_ip = net.addr(4);
    let unsigned = serde_json::to_vec(&fake(&bogus, 0, 1)).unwrap();
    let wrong = sign(&fake(&bogus, 0, 2), b"not-the-secret").unwrap();
    let stale = sign(&fake(&bogus, 60_000, 3), SECRET.as_bytes()).unwrap();
    let forge = |net: &Netns| {
        send_datagram(net, &forger_ns, &forger_ip, &unsigned);
        send_datagram(net, &forger_ns, &forger_ip, &wrong);
        send_datagram(net, &forger_ns, &forger_ip, &stale);
    };
    forge(&net);

    let started = Instant::now();
    let mut nodes = Vec::new();
    for (i, ns) in node_ns.iter().enumerate() {
        let ip = net.addr(2 + i as u8);
        nodes.push(Server::spawn(
            &format!("node-{i}"),
            env(
                net.command(ns, mcpt_path().to_str().unwrap()).args([
                    "node",
                    "--id",
                    &format!("node-{i}"),
                    "--host",
                    &ip,
                    "--port",
                    "0",
                ]),
                &ip,
            ),
        ));
    }
    forge(&net);

    let connected = || {
        curl(&net, &orch_ns, "GET", &format!("{api}/api/nodes"), None)["nodes"]
            .as_array()
            .map_or(0, |n| {
                n.iter().filter(|v| v["state"] == "connected").count()
            })
    };
    // A guard, not a bound: on a busy machine joining can take longer than two intervals.
    let joined = wait_until(Duration::from_secs(15 * INTERVAL_S), || connected() == 2);
    let took = started.elapsed();
    assert!(
        joined,
        "the nodes did not join: {}\n{}\n{}\n{}",
        curl(&net, &orch_ns, "GET", &format!("{api}/api/nodes"), None),
        orchestrator.log_text(),
        nodes[0].log_text(),
        nodes[1].log_text()
    );
    println!("both nodes joined {took:?} after they started (interval {INTERVAL_S} s)");
    for n in &nodes {
        assert!(
            !n.log_text().contains(&bogus),
            "a node tried the forged orchestrator: {}",
            n.log_text()
        );
    }

    // The orchestrator's own announcement, heard by the forger and sent again verbatim.
    let heard = capture(&net, &forger_ns, &forger_ip, "orchestrator@");
    send_datagram(&net, &forger_ns, &forger_ip, &heard);
    send_datagram(&net, &forger_ns, &forger_ip, &heard);

    // An execution over both nodes against a target in the orchestrator's namespace.
    let body = json!({"name": "multicast", "tasks": [{"type": "load_test", "parameters": {
        "targets": [{"url": format!("http://{}/", target.addr)}],
        "duration": "3s", "base_rps": 100, "pattern": "constant"}}]});
    let created = curl(
        &net,
        &orch_ns,
        "POST",
        &format!("{api}/api/executions"),
        Some(&body),
    );
    let id = created["execution_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    let mut view = Value::Null;
    let done = wait_until(Duration::from_secs(30), || {
        view = curl(
            &net,
            &orch_ns,
            "GET",
            &format!("{api}/api/executions/{id}"),
            None,
        );
        view["finished_at_ms"].is_u64()
    });
    assert!(done, "the execution did not finish: {view}");
    assert_eq!(view["state"], "completed", "{view}");
    let report = curl(
        &net,
        &orch_ns,
        "GET",
        &format!("{api}/api/executions/{id}/report"),
        None,
    );
    assert_eq!(report["summary"]["total_requests"], 300, "{report}");
    let per_node = report["tasks"][0]["nodes"].as_array().unwrap();
    assert_eq!(per_node.len(), 2, "{report}");

    // What the orchestrator's own listener made of the forged datagrams.
    let services = curl(&net, &orch_ns, "GET", &format!("{api}/api/services"), None);
    let c = &services["counters"];
    println!("discovery counters on the orchestrator: {c}");
    assert!(c["unsigned"].as_u64() >= Some(2), "{services}");
    assert!(c["bad_signature"].as_u64() >= Some(2), "{services}");
    assert!(c["replayed"].as_u64() >= Some(3), "{services}");
    let listed = services["services"].as_array().unwrap();
    assert!(
        listed.iter().all(|s| s["host"] != bogus.as_str()),
        "a forged service was listed: {services}"
    );
    assert_eq!(
        listed
            .iter()
            .filter(|s| s["service_type"] == "load_generator")
            .count(),
        2,
        "both nodes are listed: {services}"
    );
    drop((target, orchestrator));
}
