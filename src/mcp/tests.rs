//! An in-process round trip: an rmcp client over `tokio::io::duplex` against the server, with
//! a backend pointing at a closed port (no orchestrator), so only what the server decides on
//! its own is checked here; the acceptance test drives a real orchestrator.

use super::*;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};

const TOOLS: [&str; 12] = [
    "adjust_execution",
    "cancel_execution",
    "cluster_health",
    "compare_executions",
    "get_execution",
    "get_report",
    "list_executions",
    "list_nodes",
    "run_load_test",
    "run_security_test",
    "run_stress_test",
    "wait_for_execution",
];

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connect(settings: Settings, base: &str) -> RunningService<RoleClient, ()> {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let ctx = McpContext::new(Backend::new(base, None), Arc::new(settings));
    tokio::spawn(async move {
        let running = McpServer::new(ctx).serve(server_io).await?;
        running.waiting().await?;
        anyhow::Ok(())
    });
    ().serve(client_io).await.expect("the client connects")
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    name: &'static str,
    args: Value,
) -> CallToolResult {
    let args = args.as_object().cloned().unwrap_or_default();
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args))
        .await
        .expect("a tools/call answer")
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[tokio::test]
async fn twelve_tools_each_with_a_bounded_schema() {
    let mut settings = Settings::defaults();
    settings.mcp.max_rps = 123.0;
    let base = format!("http://127.0.0.1:{}", closed_port());
    let client = connect(settings, &base).await;
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, TOOLS);
    for tool in &tools {
        let description = tool.description.as_deref().unwrap_or("");
        assert!(description.len() > 40, "{} needs a description", tool.name);
        let props = tool
            .input_schema
            .get("properties")
            .and_then(Value::as_object);
        for (name, p) in props.into_iter().flatten() {
            let types = p["type"].to_string();
            let bounded = if types.contains("integer") || types.contains("number") {
                p.get("minimum").is_some() && p.get("maximum").is_some()
            } else if types.contains("array") {
                p.get("maxItems").is_some()
            } else if types.contains("string") {
                p.get("maxLength").is_some()
            } else if types.contains("boolean") {
                true
            } else {
                // An enum, by reference.
                p.to_string().contains("$ref")
            };
            assert!(bounded, "{}.{name} is unbounded: {p}", tool.name);
        }
    }
    let run = tools.iter().find(|t| t.name == "run_load_test").unwrap();
    assert_eq!(run.input_schema["properties"]["rps"]["maximum"], 123.0);
    assert_eq!(run.input_schema["properties"]["duration_s"]["maximum"], 300);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn refusals_and_an_unreachable_orchestrator_are_tool_errors() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    let client = connect(Settings::defaults(), &base).await;
    let target = json!([{"url": "http://127.0.0.1:9/"}]);

    let r = call(
        &client,
        "run_load_test",
        json!({"targets": target, "rps": 2000, "duration_s": 5}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("MCP_MCP_MAX_RPS"), "{}", text(&r));

    // A live change over the limit is refused here, before any call.
    let r = call(
        &client,
        "adjust_execution",
        json!({"execution_id": "e1", "base_rps": 2000}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("MCP_MCP_MAX_RPS"), "{}", text(&r));

    let r = call(
        &client,
        "run_load_test",
        json!({"targets": [{"url": "http://192.0.2.7:8080/"}], "rps": 10, "duration_s": 5}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("http://192.0.2.7:8080/") && t.contains("load_generation.allowed_targets"),
        "{t}"
    );

    // Within the limits, it gets as far as the orchestrator, which is not there.
    let r = call(
        &client,
        "run_load_test",
        json!({"targets": target, "rps": 10, "duration_s": 5}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains(&format!("{base} is unreachable")),
        "{}",
        text(&r)
    );

    // A security scan: refused off the allowlist and over mcp.max_rps, like a load test.
    let eps = json!([{"path": "/search", "params": ["q"]}]);
    let r = call(
        &client,
        "run_security_test",
        json!({"target": "http://192.0.2.7:8080/", "endpoints": eps}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("allowed_targets"), "{}", text(&r));
    let r = call(
        &client,
        "run_security_test",
        json!({"target": "http://127.0.0.1:9/", "endpoints": eps, "rate_limit_rps": 1500}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("MCP_MCP_MAX_RPS"), "{}", text(&r));
    let r = call(
        &client,
        "run_security_test",
        json!({"target": "http://127.0.0.1:9/", "endpoints": eps}),
    )
    .await;
    assert!(text(&r).contains("is unreachable"), "{}", text(&r));

    let r = call(&client, "get_execution", json!({"execution_id": "abc"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("unreachable"), "{}", text(&r));

    // An id that could not be an execution never reaches a REST path.
    let r = call(&client, "get_report", json!({"execution_id": "../nodes"})).await;
    assert_eq!(text(&r), "no execution ../nodes");
    client.cancel().await.unwrap();
}

#[test]
fn report_uris_round_trip() {
    assert_eq!(report_uri("a-1"), "mcpt://executions/a-1/report");
    assert_eq!(report_id("mcpt://executions/a-1/report"), Some("a-1"));
    assert_eq!(report_id("mcpt://executions/../report"), None);
    assert_eq!(report_id("mcpt://executions/a/b/report"), None);
    assert_eq!(report_id("file:///etc/passwd"), None);
}
