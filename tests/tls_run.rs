//! HTTPS through the real `mcpt run` and a plan's `tls` keys (issue 15), against the tests'
//! own HTTPS server, which counts what reaches it.

mod common;
#[path = "common/tls.rs"]
mod tls_server;

use common::temp_file;
use serde_json::Value;
use tls_server::{Behaviour, Server, authority, server_tls};

/// Runs `plan` with `mcpt run`; the JSON report and stderr.
fn run(plan: &str) -> (Value, String) {
    let (output, report) = common::run_plan(plan, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (report.expect("a report"), stderr)
}

fn plan(url: &str, tls: &str) -> String {
    format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets: ['{url}']\n    duration: 1s\n    base_rps: 10\n    tls: {tls}\n"
    )
}

#[test]
fn https_with_the_plans_ca_reaches_the_server() {
    let ca = authority("test CA");
    let server = Server::start(Some(server_tls(&ca, None)), Behaviour::default());
    let ca_file = temp_file("ca.pem", &ca.pem());
    let url = format!("https://localhost:{}/", server.addr.port());
    let (report, stderr) = run(&plan(
        &url,
        &format!("{{ca: '{}'}}", ca_file.path.display()),
    ));
    let task = &report["tasks"][0];
    assert_eq!(task["total_requests"], 10, "{stderr}");
    assert_eq!(task["errors"]["total"], 0, "{task}");
    assert_eq!(server.requests(), 10);
}

#[test]
fn a_wrong_ca_gives_tls_errors_with_a_reason_and_no_requests() {
    let server = Server::start(
        Some(server_tls(&authority("server CA"), None)),
        Behaviour::default(),
    );
    let other = temp_file("ca.pem", &authority("other CA").pem());
    let url = format!("https://localhost:{}/", server.addr.port());
    let (report, stderr) = run(&plan(&url, &format!("{{ca: '{}'}}", other.path.display())));
    let errors = &report["tasks"][0]["errors"];
    assert_eq!(errors["tls"], 10, "{errors}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert_eq!(server.requests(), 0);
}

#[test]
fn insecure_trusts_an_unknown_ca() {
    let server = Server::start(
        Some(server_tls(&authority("unknown CA"), None)),
        Behaviour::default(),
    );
    let url = format!("https://localhost:{}/", server.addr.port());
    let (report, _) = run(&plan(&url, "{insecure: true}"));
    assert_eq!(report["tasks"][0]["errors"]["total"], 0);
    assert_eq!(server.requests(), 10);
}

/// `connections` bounds the sockets a run opens (8 users over 2 connections), where without
/// it the users open more; the server counts the connections it accepted.
#[test]
fn connections_bound_the_sockets_a_run_opens() {
    let ca = authority("test CA");
    let ca_file = temp_file("ca.pem", &ca.pem());
    let closed = |server: &Server, extra: &str| {
        format!(
            "tasks:\n- type: load_test\n  parameters:\n    targets: ['https://localhost:{}/']\n    duration: 1s\n    model: closed\n    concurrent_users: 8\n    tls: {{ca: '{}'}}\n{extra}",
            server.addr.port(),
            ca_file.path.display()
        )
    };
    let bounded = Server::start(Some(server_tls(&ca, None)), Behaviour::default());
    let (report, stderr) = run(&closed(&bounded, "    connections: 2\n"));
    assert_eq!(report["tasks"][0]["errors"]["total"], 0, "{stderr}");
    assert!(bounded.requests() > 0);
    assert!(
        (1..=2).contains(&bounded.connections()),
        "{} connections",
        bounded.connections()
    );

    let free = Server::start(Some(server_tls(&ca, None)), Behaviour::default());
    let (report, stderr) = run(&closed(&free, ""));
    assert_eq!(report["tasks"][0]["errors"]["total"], 0, "{stderr}");
    assert!(free.connections() > 2, "{} connections", free.connections());
}
