//! The MCP server's one backend: a client of the orchestrator's REST API (base URL and an
//! optional bearer token). Both transports use it: `mcpt mcp` points it at the orchestrator
//! it was given, `/mcp` at the orchestrator's own bound address. It is `Send` (tool handlers
//! run on rmcp's tasks): blocking `ureq` calls on tokio's blocking pool, never an awc client.

use std::time::Duration;

use serde_json::Value;

/// How long one REST call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read (a long run's report with its timeline).
const MAX_BODY: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    #[error(
        "the orchestrator at {url} is unreachable ({why}); check that it is running and that the MCP server points at it (mcpt mcp --orchestrator URL)"
    )]
    Unreachable { url: String, why: String },
    #[error(
        "the orchestrator at {url} refused the API token (401): pass the orchestrator's api.token with --token or MCP_API_TOKEN"
    )]
    Unauthorized { url: String },
    #[error("{0}")]
    NotFound(String),
    /// Any other 4xx/5xx: the API's own message (and its field errors).
    #[error("the orchestrator answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("the orchestrator's answer to {path} is not JSON: {why}")]
    BadAnswer { path: String, why: String },
}

/// A client of one orchestrator's REST API.
#[derive(Clone)]
pub struct Backend {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Backend {
    /// `base`: the orchestrator's address, e.g. `http://127.0.0.1:8080` (a trailing slash is
    /// fine).
    pub fn new(base: &str, token: Option<String>) -> Backend {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        Backend {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Value, BackendError> {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, BackendError> {
        self.call("POST", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, BackendError> {
        self.call("DELETE", path, None).await
    }

    /// A PATCH, marked as the MCP server's (a live change records who made it).
    pub async fn patch(&self, path: &str, body: Value) -> Result<Value, BackendError> {
        self.call("PATCH", path, Some(body)).await
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BackendError> {
        let this = self.clone();
        let path = path.to_string();
        let url = self.base.clone();
        tokio::task::spawn_blocking(move || this.call_blocking(method, &path, body))
            .await
            .map_err(|e| BackendError::Unreachable {
                url,
                why: format!("the call was lost: {e}"),
            })?
    }

    /// The request with the bearer token, when there is one.
    fn authorized<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => r.header("Authorization", format!("Bearer {t}")),
            None => r,
        }
    }

    fn call_blocking(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BackendError> {
        let url = format!("{}{path}", self.base);
        let sent = match method {
            "POST" => self
                .authorized(self.agent.post(&url))
                .send_json(body.unwrap_or(Value::Null)),
            "DELETE" => self.authorized(self.agent.delete(&url)).call(),
            "PATCH" => self
                .authorized(self.agent.patch(&url))
                .header(crate::http::adjust_api::CLIENT_HEADER, "mcp")
                .send_json(body.unwrap_or(Value::Null)),
            _ => self.authorized(self.agent.get(&url)).call(),
        };
        let mut resp = sent.map_err(|e| BackendError::Unreachable {
            url: self.base.clone(),
            why: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| BackendError::Unreachable {
                url: self.base.clone(),
                why: format!("reading the answer to {method} {path}: {e}"),
            })?;
        let value: Option<Value> = serde_json::from_str(&text).ok();
        match status {
            200..=299 => value.ok_or_else(|| BackendError::BadAnswer {
                path: path.to_string(),
                why: text.chars().take(200).collect(),
            }),
            401 => Err(BackendError::Unauthorized {
                url: self.base.clone(),
            }),
            404 => Err(BackendError::NotFound(api_message(value.as_ref(), &text))),
            _ => Err(BackendError::Api {
                status,
                message: api_message(value.as_ref(), &text),
            }),
        }
    }
}

/// The message of an [`crate::http::error::ApiError`] body, with its field errors.
fn api_message(body: Option<&Value>, text: &str) -> String {
    let Some(b) = body else {
        return text.chars().take(500).collect();
    };
    let mut msg = b["message"].as_str().unwrap_or(text).to_string();
    if let Some(errors) = b["errors"].as_array() {
        let list: Vec<String> = errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["field"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect();
        if !list.is_empty() && !list.iter().all(|l| msg.contains(l.as_str())) {
            msg = format!("{msg} [{}]", list.join("; "));
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_messages_carry_their_field_errors() {
        let body = json!({"error": "invalid", "message": "2 errors",
            "errors": [{"field": "tasks[0].parameters.peak_rps", "message": "is required for pattern spike"}]});
        let m = api_message(Some(&body), "");
        assert!(
            m.contains("tasks[0].parameters.peak_rps: is required"),
            "{m}"
        );
        assert_eq!(api_message(None, "plain"), "plain");
    }

    #[tokio::test]
    async fn an_unreachable_orchestrator_is_named() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let b = Backend::new(&format!("http://127.0.0.1:{port}/"), None);
        let e = b.get("/api/health").await.unwrap_err();
        assert!(matches!(e, BackendError::Unreachable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("http://127.0.0.1:{port} is unreachable")),
            "{text}"
        );
    }
}
