//! Each task kind's tool, registered here in one place: the kind's folder
//! (`crate::task::<kind>::mcp`) gives its input, schema, description and the plan it becomes;
//! this file serves it behind the guardrails.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData as McpError, tool, tool_router};

use super::{McpServer, guard, tool_error};
use crate::settings::Settings;
use crate::task::load::mcp::{self as load, RunLoadTest};
use crate::task::security::mcp::{self as security, RunSecurityTest};
use crate::task::stress::mcp::{self as stress, RunStressTest};

impl McpServer {
    /// The kinds' tools, their schemas stating this server's caps.
    pub(super) fn kind_tools(settings: &Settings) -> ToolRouter<McpServer> {
        let mut router = Self::kind_router();
        if let Some(route) = router.map.get_mut(load::NAME) {
            let mut schema = (*route.attr.input_schema).clone();
            load::bound_schema(&mut schema, settings);
            route.attr.input_schema = Arc::new(schema);
        }
        router
    }
}

#[tool_router(router = kind_router)]
impl McpServer {
    #[tool(
        description = load::DESCRIPTION
    )]
    async fn run_load_test(
        &self,
        Parameters(p): Parameters<RunLoadTest>,
    ) -> Result<CallToolResult, McpError> {
        if let Err(refusal) = guard::check_load_test(&p, &self.ctx.settings.mcp) {
            return tool_error(refusal);
        }
        let allowlist = self.ctx.settings.load_generation.allowed_targets.clone();
        let checked = p.clone();
        let allowed =
            tokio::task::spawn_blocking(move || guard::check_targets(&checked, &allowlist)).await;
        match allowed {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return tool_error(refusal),
            Err(e) => return tool_error(format!("the target check was lost: {e}")),
        }
        self.submit(p.execution_body(), "load test").await
    }

    #[tool(
        description = stress::DESCRIPTION
    )]
    async fn run_stress_test(
        &self,
        Parameters(p): Parameters<RunStressTest>,
    ) -> Result<CallToolResult, McpError> {
        if let Err(refusal) = guard::check_stress_test(&p, &self.ctx.settings.mcp) {
            return tool_error(refusal);
        }
        let allowlist = self.ctx.settings.load_generation.allowed_targets.clone();
        let urls: Vec<String> = p.targets.iter().map(|t| t.url.clone()).collect();
        let allowed = tokio::task::spawn_blocking(move || {
            urls.iter()
                .try_for_each(|url| guard::check_url(url, guard::LOAD_SCHEMES, &allowlist))
        })
        .await;
        match allowed {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return tool_error(refusal),
            Err(e) => return tool_error(format!("the target check was lost: {e}")),
        }
        self.submit(p.execution_body(), "stress test").await
    }

    #[tool(
        description = security::DESCRIPTION
    )]
    async fn run_security_test(
        &self,
        Parameters(p): Parameters<RunSecurityTest>,
    ) -> Result<CallToolResult, McpError> {
        if let Err(refusal) = guard::check_security_test(&p, &self.ctx.settings.mcp) {
            return tool_error(refusal);
        }
        let allowlist = self.ctx.settings.load_generation.allowed_targets.clone();
        let target = p.target.clone();
        let allowed = tokio::task::spawn_blocking(move || {
            guard::check_url(&target, guard::SCAN_SCHEMES, &allowlist)
        })
        .await;
        match allowed {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return tool_error(refusal),
            Err(e) => return tool_error(format!("the target check was lost: {e}")),
        }
        self.submit(p.execution_body(), "security test").await
    }
}
