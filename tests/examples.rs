//! Every program in `examples/` (the spec's Quick Start and usage examples, through the
//! library facade) builds and exits 0 (issue 18, acceptance 1). Each checks its own outcome
//! against what a target or the cluster saw (`anyhow::ensure!`), so exit 0 means it held; the
//! lines asserted here are the outcome each one prints.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::ChildGuard;

/// Builds the examples (a no-op when `cargo test` or an earlier test built them) and answers
/// the path of `name`'s executable, as cargo reports it.
fn example(name: &str) -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["build", "--examples", "--locked", "--message-format=json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run cargo build --examples");
    assert!(out.status.success(), "cargo build --examples failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == name
                && m["target"]["kind"][0] == "example"
        })
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no example {name}"))
}

/// Runs an example to its end (killed if it runs past 5 minutes) with [`common::STEADY_HEALTH`]
/// and then `env` in its environment.
fn output(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let exe = example(name);
    let mut cmd = Command::new(exe);
    cmd.envs(common::STEADY_HEALTH).envs(env.iter().copied());
    ChildGuard::spawn(&mut cmd).wait(Duration::from_secs(300))
}

/// Runs an example, which must exit 0, and answers its stdout.
fn run(name: &str) -> String {
    let out = output(name, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The examples read the `MCP_*` environment as `mcpt` does. At a disk level this machine is
/// past, every node is critical from the moment it joins (its hello carries its health), so
/// the workload submitted right after the nodes joined is refused saying why, never placed.
/// A bad value is named.
#[test]
fn the_examples_read_the_mcp_environment() {
    let critical = [
        ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_WARNING", "0"),
        ("MCP_HEALTH_MONITORING_ALERT_THRESHOLDS_DISK_CRITICAL", "0"),
    ];
    let out = output("advanced_load_test", &critical);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "placed on a critical node: {stderr}");
    for node in ["web_node_1", "security_node_1"] {
        assert!(
            stderr.contains(&format!("{node} is critical (disk: disk use")),
            "{stderr}"
        );
    }

    let bad = [("MCP_LOAD_GENERATION_WORKERS", "many")];
    let out = output("quick_start", &bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "took a bad setting: {stderr}");
    assert!(stderr.contains("MCP_LOAD_GENERATION_WORKERS"), "{stderr}");
}

#[test]
fn quick_start_runs_an_execution_on_two_generators() {
    let out = run("quick_start");
    assert!(out.contains("discovered load_gen_1"), "{out}");
    assert!(out.contains("discovered load_gen_2"), "{out}");
    // 3 s at 100 rps, every request counted by the target, half on each generator.
    assert!(
        out.contains(r#"the target counted 300 ({"load_gen_1": 150, "load_gen_2": 150} per node)"#),
        "{out}"
    );
}

#[test]
fn advanced_load_test_places_by_locality_and_starts_together() {
    let out = run("advanced_load_test");
    assert!(out.contains("api_load_test -> web_node_1"), "{out}");
    assert!(out.contains("security_scan -> security_node_1"), "{out}");
    assert!(out.contains("Progress: 100.0% (completed)"), "{out}");
    assert!(out.contains("Test execution completed!"), "{out}");
}

#[test]
fn resource_aware_testing_refuses_grants_and_releases() {
    let out = run("resource_aware_testing");
    assert!(
        out.contains("Insufficient resources available: the request exceeds the pool's total capacity: network"),
        "{out}"
    );
    assert!(out.contains("Resources allocated successfully"), "{out}");
    assert!(
        out.contains("4000 Mbps network allocated of 5000 Mbps network (80.0%)"),
        "{out}"
    );
    assert!(
        out.contains("Deallocated: the pool is free again."),
        "{out}"
    );
}

#[test]
fn custom_monitoring_raises_and_clears_alerts() {
    let out = run("custom_monitoring");
    assert!(
        out.contains("alert raised: custom_node:metric:custom_application_metric"),
        "{out}"
    );
    assert!(
        out.contains(
            r#"mcp_node_custom_metric{node_id="custom_node",name="custom_application_metric"} 120"#
        ),
        "{out}"
    );
    assert!(
        out.contains("alert raised: custom_node:code:database_connectivity"),
        "{out}"
    );
    assert!(out.contains("no alert on database_connectivity"), "{out}");
}
