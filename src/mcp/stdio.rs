//! `mcpt mcp`: the MCP server on stdin/stdout for desktop assistants, a client of an
//! orchestrator's REST API. stdout carries the protocol only; logs go to stderr.

use std::sync::Arc;

use rmcp::ServiceExt;

use super::backend::Backend;
use super::{McpContext, McpServer};
use crate::settings::Settings;

/// Serves one MCP session on stdio until the client closes it. `orchestrator`: its REST base
/// URL; `token`: its `api.token`, sent on every call.
pub async fn run(
    orchestrator: &str,
    token: Option<String>,
    settings: Arc<Settings>,
) -> anyhow::Result<()> {
    let ctx = McpContext::new(Backend::new(orchestrator, token), settings);
    let running = McpServer::new(ctx)
        .serve(rmcp::transport::stdio_pipes())
        .await?;
    let reason = running.waiting().await?;
    tracing::info!(?reason, "mcp session ended");
    Ok(())
}
