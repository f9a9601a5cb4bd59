//! The security scan's MCP tool, `run_security_test`: its input (with the JSON schema clients
//! see), the plan it becomes, and what its findings make of `get_report`'s verdict. Plain
//! data: `crate::mcp` serves it and guards it.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::task::load::mcp::Method;

/// The tool's name and what it tells the assistant.
pub const NAME: &str = "run_security_test";
pub const DESCRIPTION: &str = "Start a security scan of a target's endpoints on the cluster (reflected XSS, SQL injection, CSRF, missing security headers, open redirects) and return its execution_id at once; follow it with wait_for_execution, then get_report, whose tasks[0].security lists the findings (severity, type, endpoint, parameter, evidence, remediation); a finding of fail_on's severity or worse (default high) fails the verdict. On a cluster the endpoints are dealt over the nodes. The server refuses (tool error, saying which setting) a target outside load_generation.allowed_targets (loopback only by default), a rate_limit_rps over mcp.max_rps, and more unfinished MCP-started executions than mcp.max_concurrent_executions.";

/// The most endpoints one `run_security_test` may name, and parameters per endpoint.
pub const MAX_SCAN_ENDPOINTS: usize = 50;
pub const MAX_SCAN_PARAMS: usize = 20;

/// One endpoint of a security scan.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanEndpointParam {
    /// The path on the target, e.g. "/search".
    #[schemars(length(min = 1, max = 2048))]
    pub path: String,
    /// The HTTP method (default GET); parameters go in the query for GET, HEAD and DELETE,
    /// in a form body otherwise.
    pub method: Option<Method>,
    /// The names of the parameters to probe (each sent with the harmless value "1").
    #[schemars(length(max = 20))]
    pub params: Option<Vec<ScanParamName>>,
}

/// A parameter name.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ScanParamName(#[schemars(length(min = 1, max = 256))] pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanTypeParam {
    /// Reflected cross-site scripting.
    Xss,
    /// SQL injection (error, boolean; time-based in deep scans).
    SqlInjection,
    /// State-changing requests accepted without a token from a foreign origin; cookie flags.
    Csrf,
    /// Missing security headers, cookie flags.
    Headers,
    /// Redirects to any host given in a parameter.
    OpenRedirect,
}

impl ScanTypeParam {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanTypeParam::Xss => "xss",
            ScanTypeParam::SqlInjection => "sql_injection",
            ScanTypeParam::Csrf => "csrf",
            ScanTypeParam::Headers => "headers",
            ScanTypeParam::OpenRedirect => "open_redirect",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanDepth {
    /// One or two payloads per parameter and check.
    Quick,
    /// More contexts and time-based SQL injection probes (seconds each).
    Deep,
}

/// `run_security_test`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSecurityTest {
    /// The target's base URL, e.g. "http://127.0.0.1:8089/"; it must match the server's
    /// load_generation.allowed_targets (loopback only by default).
    #[schemars(length(min = 8, max = 2048))]
    pub target: String,
    /// The endpoints to probe (1 to 50); on a cluster they are dealt over the nodes.
    #[schemars(length(min = 1, max = 50))]
    pub endpoints: Vec<ScanEndpointParam>,
    /// The checks to run (default: all five).
    #[schemars(length(min = 1, max = 5))]
    pub scan_types: Option<Vec<ScanTypeParam>>,
    /// quick (default) or deep.
    pub depth: Option<ScanDepth>,
    /// Requests per second at most (default 10). Capped by mcp.max_rps.
    #[schemars(range(min = 0.1, max = 1000.0))]
    pub rate_limit_rps: Option<f64>,
    /// A name for the execution (default: "mcp security scan" and the target).
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
    /// A finding this severe or worse fails the scan (default high; none: never).
    pub fail_on: Option<FailOn>,
}

/// `fail_on`'s levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
    None,
}

impl FailOn {
    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::Critical => "critical",
            FailOn::High => "high",
            FailOn::Medium => "medium",
            FailOn::Low => "low",
            FailOn::None => "none",
        }
    }
}

impl RunSecurityTest {
    /// The `POST /api/executions` body: one `security_test` task.
    pub fn execution_body(&self) -> Value {
        let endpoints: Vec<Value> = self
            .endpoints
            .iter()
            .map(|e| {
                let params: Vec<&str> = e.params.iter().flatten().map(|p| p.0.as_str()).collect();
                json!({"path": e.path, "method": e.method.unwrap_or(Method::Get).as_str(),
                       "params": params})
            })
            .collect();
        let mut params = json!({"target": self.target, "endpoints": endpoints});
        let p = params.as_object_mut().expect("an object");
        if let Some(types) = &self.scan_types {
            let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            p.insert("scan_types".into(), json!(names));
        }
        if let Some(depth) = self.depth {
            let depth = match depth {
                ScanDepth::Quick => "quick",
                ScanDepth::Deep => "deep",
            };
            p.insert("depth".into(), json!(depth));
        }
        if let Some(rate) = self.rate_limit_rps {
            p.insert("rate_limit_rps".into(), json!(rate));
        }
        if let Some(level) = self.fail_on {
            p.insert("fail_on".into(), json!(level.as_str()));
        }
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("mcp security scan {}", self.target));
        json!({"name": name, "tasks": [{"type": "security_test", "parameters": params}]})
    }
}

/// The plan's name of the task type.
pub const TASK_TYPE: &str = "security_test";

/// The summary `get_report` judges when every task is a scan: the scans' own requests, with
/// the report's verdict fields (`interrupted`, `thresholds_passed`, `stopped_by`) as they are.
pub fn summary(scans: &[&Value], report_summary: &Value) -> Value {
    let sum = |k: &str| -> u64 {
        scans
            .iter()
            .map(|t| t["security"][k].as_u64().unwrap_or(0))
            .sum()
    };
    let (sent, errors) = (sum("requests_sent"), sum("request_errors"));
    let rate = if sent > 0 {
        errors as f64 / sent as f64
    } else {
        0.0
    };
    let mut s = json!({"total_requests": sent, "errors": {"total": errors},
           "error_rate": rate, "not_sent": 0});
    for k in ["interrupted", "thresholds_passed", "stopped_by"] {
        if let Some(v) = report_summary.get(k) {
            s[k] = v.clone();
        }
    }
    s
}

/// What a scan task's findings (`t`: the task in the report's JSON) add to `get_report`'s
/// verdict beyond its `fail_on` (a verdict of the task's `thresholds`, judged with them):
/// findings that pass it degrade the verdict, as does a slice not scanned.
pub fn judge_findings(t: &Value, degraded: &mut Vec<String>) {
    let findings: Vec<&Value> = t["security"]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let name = t["name"].as_str().unwrap_or("");
    let by: Vec<String> = ["critical", "high", "medium", "low"]
        .iter()
        .filter_map(|level| {
            let n = findings
                .iter()
                .filter(|f| f["severity"].as_str() == Some(level))
                .count();
            (n > 0).then(|| format!("{n} {level}"))
        })
        .collect();
    if !findings.is_empty() {
        degraded.push(format!(
            "security_test {name}: {} findings ({})",
            findings.len(),
            by.join(", ")
        ));
    }
    if let Some(lost) = t["security"]["nodes_lost"]
        .as_array()
        .filter(|l| !l.is_empty())
    {
        degraded.push(format!(
            "security_test {name}: the slices of {} lost nodes were not scanned",
            lost.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn a_security_body_is_a_valid_plan() {
        let p: RunSecurityTest = serde_json::from_value(json!({
            "target": "http://127.0.0.1:9/",
            "endpoints": [{"path": "/search", "params": ["q"]}, {"path": "/t", "method": "POST"}],
            "scan_types": ["xss", "csrf"], "depth": "deep", "rate_limit_rps": 5,
            "fail_on": "medium"
        }))
        .unwrap();
        let body = p.execution_body();
        let plan = crate::task::validate(&body, &Settings::defaults().load_generation)
            .unwrap_or_else(|e| panic!("{e}\n{body}"));
        let crate::task::TaskKind::SecurityTest(spec) = &plan.tasks[0].kind else {
            panic!("{body}")
        };
        assert_eq!(spec.endpoints.len(), 2);
        assert_eq!(spec.rate_limit_rps, 5.0);
        assert_eq!(spec.fail_on, Some(crate::task::security::Severity::Medium));
        assert!(
            serde_json::from_value::<RunSecurityTest>(json!({
                "target": "http://127.0.0.1:9/", "endpoints": [{"path": "/"}], "extra": 1
            }))
            .is_err()
        );
    }
}
