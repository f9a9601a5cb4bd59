//! The allowlist holds against DNS: inside a network namespace of the test's own, a fake DNS
//! server answers every name, `localhost.` included, with 10.78.0.1, an address of that
//! namespace where an `mcpt target` counts what it receives. `localhost.` (trailing dot) is
//! looked up in DNS, not in /etc/hosts, so under the default allowlist (`localhost` stands for
//! the loopback addresses) `mcpt run`, a REST submission to `mcpt up` and a node's own
//! `/load/start` must refuse it, a redirect to it must not be followed, and the target must
//! count 0 requests.
//!
//! Needs root, iproute2, python3 (the DNS responder) and curl; `.ci/run` installs them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::netns::Netns;
use common::{ChildGuard, mcpt_path, temp_file, wait_until};
use serde_json::Value;

const NET: u8 = 78;
const TARGET_PORT: u16 = 8089;
const API_PORT: u16 = 8080;
const NODE_PORT: u16 = 8090;
const REDIRECT_PORT: u16 = 8091;
const WAIT: Duration = Duration::from_secs(60);

/// A DNS responder on 127.0.0.1:53 answering every A question with `argv[1]` (TTL 0) and
/// every other question with no answer. Prints `ready` once bound.
const DNS: &str = r#"
import socket, struct, sys
ip = socket.inet_aton(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(4096)
    i = 12
    while i < len(q) and q[i] != 0:
        i += 1 + q[i]
    end = i + 5
    if len(q) < 12 or end > len(q):
        continue
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + ip if qtype == 1 else b""
    head = q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if answer else 0, 0, 0)
    s.sendto(head + q[12:end] + answer, peer)
"#;

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over /etc/resolv.conf;
/// removed when dropped.
struct Resolver(PathBuf);

impl Resolver {
    fn point_at_loopback(ns: &str) -> Resolver {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("create /etc/netns/<ns> (needs root)");
        std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        Resolver(dir)
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCP_") {
            c.env_remove(k);
        }
    }
    c
}

/// `curl` inside `ns`; the body of the answer and its status.
fn curl(net: &Netns, ns: &str, args: &[&str]) -> (u16, String) {
    let mut argv = vec!["curl", "-s", "-m", "10", "-w", "\n%{http_code}"];
    argv.extend_from_slice(args);
    let out = net.exec(ns, &argv);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// What the target counted, by its own `GET /stats`.
fn target_total(net: &Netns, ns: &str, addr: &str) -> u64 {
    let (code, body) = curl(net, ns, &[&format!("http://{addr}:{TARGET_PORT}/stats")]);
    assert_eq!(code, 200, "target stats: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["total"].as_u64().expect("total")
}

#[test]
fn localhost_with_a_trailing_dot_answered_by_dns_gets_no_load() {
    let mut net = Netns::new(NET);
    let ns = net.host(1);
    let addr = net.addr(1);
    let _resolv = Resolver::point_at_loopback(&ns);

    let mut dns = ChildGuard::spawn(&mut in_ns(&ns, "python3", &["-c", DNS, &addr]));
    let mut ready = String::new();
    BufReader::new(dns.take_stdout())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "the DNS responder did not start");

    let port = TARGET_PORT.to_string();
    let mcpt = mcpt_path();
    let mcpt = mcpt.to_str().unwrap();
    let _target = ChildGuard::spawn(&mut in_ns(
        &ns,
        mcpt,
        &["target", "--host", &addr, "--port", &port, "--workers", "1"],
    ));
    assert!(
        wait_until(WAIT, || curl(
            &net,
            &ns,
            &[&format!("http://{addr}:{TARGET_PORT}/stats")]
        )
        .0 == 200),
        "the target did not start"
    );

    // The premise: in this namespace the system resolver asks DNS for `localhost.`, and DNS
    // answers the target's address.
    let seen = net.exec(&ns, &["getent", "ahostsv4", "localhost."]);
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(
        seen.contains(&addr),
        "localhost. does not resolve to {addr} here: {seen:?}"
    );

    // `mcpt run`: refused before anything is sent, the host and its address named.
    let url = format!("http://localhost.:{TARGET_PORT}/");
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "name: dot\ntasks:\n- type: load_test\n  parameters:\n    targets: ['{url}']\n    duration: 2s\n    base_rps: 20\n"
        ),
    );
    let out = ChildGuard::spawn(&mut in_ns(
        &ns,
        mcpt,
        &["run", "--quiet", plan.path.to_str().unwrap()],
    ))
    .wait(WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        target_total(&net, &ns, &addr),
        0,
        "mcpt run sent load to the address DNS gave for localhost. (exit {:?})",
        out.status.code()
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "mcpt run was not refused: {stderr}"
    );
    assert!(
        stderr.contains("tasks[0].parameters.targets")
            && stderr.contains("localhost.")
            && stderr.contains(&addr)
            && stderr.contains("loopback"),
        "the refusal does not say why: {stderr}"
    );

    // A redirect to it is not followed: a loopback target answers 302 to `localhost.`.
    let redirector = format!("127.0.0.1:{REDIRECT_PORT}");
    let _redirector = ChildGuard::spawn(&mut in_ns(
        &ns,
        mcpt,
        &[
            "target",
            "--host",
            "127.0.0.1",
            "--port",
            &REDIRECT_PORT.to_string(),
            "--workers",
            "1",
        ],
    ));
    assert!(
        wait_until(WAIT, || curl(
            &net,
            &ns,
            &[&format!("http://{redirector}/stats")]
        )
        .0 == 200),
        "the redirecting target did not start"
    );
    let plan = temp_file(
        "plan.yaml",
        &format!(
            "name: hop\ntasks:\n- type: load_test\n  parameters:\n    targets: [{{url: 'http://{redirector}/redirect?to={url}', follow_redirects: true}}]\n    duration: 1s\n    base_rps: 5\n"
        ),
    );
    let out = ChildGuard::spawn(&mut in_ns(
        &ns,
        mcpt,
        &["run", "--quiet", plan.path.to_str().unwrap()],
    ))
    .wait(WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (_, hops) = curl(&net, &ns, &[&format!("http://{redirector}/stats")]);
    let hops: Value = serde_json::from_str(&hops).unwrap();
    assert_eq!(hops["total"], 5, "the redirects were not asked for: {hops}");
    assert_eq!(
        target_total(&net, &ns, &addr),
        0,
        "a redirect led load to the address DNS gave for localhost."
    );

    // REST: `mcpt up` in the namespace answers 422 naming the field.
    let data = tempfile::tempdir().unwrap();
    let api = API_PORT.to_string();
    let _up = ChildGuard::spawn(
        in_ns(
            &ns,
            mcpt,
            &[
                "up",
                "--host",
                "127.0.0.1",
                "--port",
                &api,
                "--data-dir",
                data.path().to_str().unwrap(),
            ],
        )
        .env("MCP_CLUSTER_SECRET", "allowlist-dns-test-secret"),
    );
    let health = format!("http://127.0.0.1:{API_PORT}/api/health");
    assert!(
        wait_until(WAIT, || curl(&net, &ns, &[&health]).0 == 200),
        "mcpt up did not start"
    );
    let body = serde_json::json!({
        "name": "dot",
        "tasks": [{"type": "load_test", "parameters": {
            "targets": [url], "duration": "2s", "base_rps": 20}}]
    })
    .to_string();
    let (code, answer) = curl(
        &net,
        &ns,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            &format!("http://127.0.0.1:{API_PORT}/api/executions"),
        ],
    );
    assert_eq!(code, 422, "the submission was not refused: {answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["field"], "tasks[0].parameters.targets[0].url",
        "{answer}"
    );
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&addr) && message.contains("loopback"),
        "{answer}"
    );

    // A node's own `/load/start` (its orchestrator is not there; its API still works).
    let _node = ChildGuard::spawn(&mut in_ns(
        &ns,
        mcpt,
        &[
            "node",
            "--orchestrator",
            "http://127.0.0.1:1",
            "--port",
            &NODE_PORT.to_string(),
            "--id",
            "solo",
        ],
    ));
    let node = format!("http://127.0.0.1:{NODE_PORT}");
    assert!(
        wait_until(WAIT, || curl(&net, &ns, &[&format!("{node}/health")]).0
            == 200),
        "the node did not start"
    );
    let task = serde_json::json!({"type": "load_test", "parameters": {
        "targets": [url], "duration": "2s", "base_rps": 20}})
    .to_string();
    let (code, answer) = curl(
        &net,
        &ns,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &task,
            &format!("{node}/load/start"),
        ],
    );
    assert_eq!(code, 422, "the node started the task: {answer}");
    assert!(
        answer.contains(&addr) && answer.contains("loopback"),
        "{answer}"
    );

    assert_eq!(
        target_total(&net, &ns, &addr),
        0,
        "load reached the address DNS gave for localhost."
    );
}
