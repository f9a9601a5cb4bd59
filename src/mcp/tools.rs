//! The tools' inputs (with their JSON schemas) and the pure parts of their answers: the
//! execution body `run_load_test` submits, the verdict of `get_report`, the progress line of
//! `wait_for_execution`. No I/O here.

use std::time::Duration;

use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::execution::State;
use crate::settings::Settings;

/// The most targets one `run_load_test` may name.
pub const MAX_TARGETS: usize = 16;

/// One target of a load test.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetParam {
    /// An http:// URL, e.g. "http://127.0.0.1:8089/"; its host must match the server's
    /// load_generation.allowed_targets (loopback only by default).
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// The HTTP method (default GET).
    pub method: Option<Method>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// The rate shapes of a plan (README, "Patterns"); `b` is rps, `p` is peak_rps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// b throughout.
    Constant,
    /// Linear from b to p over the duration.
    RampUp,
    /// Linear from p down to b over the duration.
    RampDown,
    /// b, with p for a tenth of the duration (at least 1 s) from the middle.
    Spike,
    /// A cosine wave between b and p, 60 s period.
    Wave,
    /// A new rate drawn from [b, p] every 5 s.
    Random,
    /// p for the first second of every 10 s, else b.
    Burst,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Constant => "constant",
            Pattern::RampUp => "ramp_up",
            Pattern::RampDown => "ramp_down",
            Pattern::Spike => "spike",
            Pattern::Wave => "wave",
            Pattern::Random => "random",
            Pattern::Burst => "burst",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Requests start at planned times whatever the responses do (the rate is held).
    Open,
    /// concurrent_users users each loop request after request (no rate).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Evenly spaced.
    Uniform,
    /// Poisson process at the planned rate.
    Poisson,
}

/// `run_load_test`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLoadTest {
    /// The URLs to load (1 to 16); requests are shared among them equally.
    #[schemars(length(min = 1, max = 16))]
    pub targets: Vec<TargetParam>,
    /// The rate shape (default constant); every pattern but constant needs peak_rps.
    pub pattern: Option<Pattern>,
    /// The base rate in requests per second (the whole rate for constant). Capped by the
    /// server's mcp.max_rps. Not sent with model closed.
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub rps: f64,
    /// The peak rate in requests per second, for ramp_up, ramp_down, spike, wave, random and
    /// burst. Capped by mcp.max_rps.
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub peak_rps: Option<f64>,
    /// How long the test runs, in seconds. Capped by mcp.max_duration.
    #[schemars(range(min = 1, max = 300))]
    pub duration_s: u64,
    /// open (default: hold the rate) or closed (concurrent_users loop as fast as responses
    /// come back; rps, peak_rps and pattern do not apply).
    pub model: Option<Model>,
    /// Open model: the cap on requests in flight; closed model: the number of users
    /// (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub concurrent_users: Option<u32>,
    /// Open model: uniform (default) or poisson arrival times.
    pub arrivals: Option<Arrivals>,
    /// A name for the execution (default: the pattern, rate and duration).
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
    /// Pass/fail criteria over the merged figures, e.g. "p99_ms < 200", "error_rate < 0.01",
    /// "achieved_rps >= 0.99 * planned" (metrics p50_ms..p999_ms, max_ms, mean_ms,
    /// error_rate, errors, achieved_rps, late_starts). With any, the task is a
    /// performance_test and get_report gives each threshold's verdict.
    #[schemars(length(max = 32))]
    pub thresholds: Option<Vec<String>>,
    /// Stop the run as soon as a threshold fails (after its first second).
    pub abort_on_fail: Option<bool>,
}

/// The plan's `targets` of a tool's targets (method GET unless given).
fn targets_json(targets: &[TargetParam]) -> Vec<Value> {
    targets
        .iter()
        .map(|t| json!({"url": t.url, "method": t.method.unwrap_or(Method::Get).as_str()}))
        .collect()
}

/// `run_stress_test`'s input: the rate steps up until the target breaks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunStressTest {
    /// The URLs to load (1 to 16).
    #[schemars(length(min = 1, max = 16))]
    pub targets: Vec<TargetParam>,
    /// The first step's rate (requests per second).
    #[schemars(range(min = 1.0, max = 1000.0))]
    pub start_rps: f64,
    /// How much each step adds.
    #[schemars(range(min = 1.0, max = 1000.0))]
    pub step_rps: f64,
    /// The last step's rate at most; capped by mcp.max_rps.
    #[schemars(range(min = 1.0, max = 1000.0))]
    pub max_rps: f64,
    /// How long each step holds, in seconds; all steps together are capped by
    /// mcp.max_duration.
    #[schemars(range(min = 2, max = 300))]
    pub step_duration_s: u64,
    /// Breaks when the p99 latency of a second is above this (default 1000 ms).
    #[schemars(range(min = 1.0, max = 60000.0))]
    pub break_p99_ms: Option<f64>,
    /// Breaks when a second's error rate is above this (default 0.05).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub break_error_rate: Option<f64>,
    /// Seconds in a row a condition must hold to break (default 2).
    #[schemars(range(min = 1, max = 30))]
    pub consecutive: Option<u32>,
    /// A name for the execution.
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
}

impl RunStressTest {
    /// The steps' rates, as the plan reader makes them (the last is max_rps).
    pub fn steps(&self) -> u64 {
        if self.step_rps <= 0.0 || self.max_rps < self.start_rps {
            return 1;
        }
        ((self.max_rps - self.start_rps) / self.step_rps).ceil() as u64 + 1
    }

    /// The `POST /api/executions` body: one `stress_test` task.
    pub fn execution_body(&self) -> Value {
        let targets = targets_json(&self.targets);
        let mut params = json!({
            "targets": targets,
            "start_rps": self.start_rps,
            "step_rps": self.step_rps,
            "max_rps": self.max_rps,
            "step_duration": format!("{}s", self.step_duration_s),
        });
        let p = params.as_object_mut().expect("an object");
        let mut break_on = serde_json::Map::new();
        if let Some(v) = self.break_p99_ms {
            break_on.insert("p99_ms".into(), json!(v));
        }
        if let Some(v) = self.break_error_rate {
            break_on.insert("error_rate".into(), json!(v));
        }
        if !break_on.is_empty() {
            p.insert("break_on".into(), Value::Object(break_on));
        }
        if let Some(n) = self.consecutive {
            p.insert("consecutive".into(), json!(n));
        }
        let name = self.name.clone().unwrap_or_else(|| {
            format!(
                "mcp stress {} to {} rps by {}",
                self.start_rps, self.max_rps, self.step_rps
            )
        });
        json!({"name": name, "tasks": [{"type": "stress_test", "parameters": params}]})
    }
}

impl RunLoadTest {
    pub fn model(&self) -> Model {
        self.model.unwrap_or(Model::Open)
    }

    pub fn pattern(&self) -> Pattern {
        self.pattern.unwrap_or(Pattern::Constant)
    }

    /// The `POST /api/executions` body (the plan schema of `src/plan/`).
    pub fn execution_body(&self) -> Value {
        let targets = targets_json(&self.targets);
        let mut params = json!({
            "targets": targets,
            "duration": format!("{}s", self.duration_s),
        });
        let p = params.as_object_mut().expect("an object");
        match self.model() {
            Model::Open => {
                p.insert("model".into(), json!("open"));
                p.insert("pattern".into(), json!(self.pattern().as_str()));
                p.insert("base_rps".into(), json!(self.rps));
                if let Some(peak) = self.peak_rps {
                    p.insert("peak_rps".into(), json!(peak));
                }
                if let Some(a) = self.arrivals {
                    let a = match a {
                        Arrivals::Uniform => "uniform",
                        Arrivals::Poisson => "poisson",
                    };
                    p.insert("arrivals".into(), json!(a));
                }
            }
            Model::Closed => {
                p.insert("model".into(), json!("closed"));
            }
        }
        if let Some(users) = self.concurrent_users {
            p.insert("concurrent_users".into(), json!(users));
        }
        let name = self.name.clone().unwrap_or_else(|| match self.model() {
            Model::Open => format!(
                "mcp {} {} rps {} s",
                self.pattern().as_str(),
                self.rps,
                self.duration_s
            ),
            Model::Closed => format!(
                "mcp closed {} users {} s",
                self.concurrent_users.unwrap_or(100),
                self.duration_s
            ),
        });
        let mut kind = "load_test";
        if let Some(thresholds) = self.thresholds.as_ref().filter(|t| !t.is_empty()) {
            kind = "performance_test";
            p.insert("thresholds".into(), json!(thresholds));
            if let Some(abort) = self.abort_on_fail {
                p.insert("abort_on_fail".into(), json!(abort));
            }
        }
        json!({"name": name, "tasks": [{"type": kind, "parameters": params}]})
    }
}

/// An execution id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionId {
    /// The id `run_load_test` or `list_executions` gave.
    #[schemars(length(min = 1, max = 128))]
    pub execution_id: String,
}

/// `wait_for_execution`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    /// The id `run_load_test` gave.
    #[schemars(length(min = 1, max = 128))]
    pub execution_id: String,
    /// Give up waiting after this many seconds (default 300); the execution keeps running.
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_s: Option<u64>,
}

pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

impl WaitFor {
    pub fn timeout(&self) -> Duration {
        self.timeout_s
            .map_or(DEFAULT_WAIT, |s| Duration::from_secs(s.max(1)))
            .min(MAX_WAIT)
    }
}

/// `list_executions`' input.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListExecutions {
    /// The newest this many (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

impl ListExecutions {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(20).clamp(1, 100) as usize
    }
}

/// `compare_executions`' input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The baseline execution.
    #[schemars(length(min = 1, max = 128))]
    pub a: String,
    /// The execution compared with it (deltas are b - a).
    #[schemars(length(min = 1, max = 128))]
    pub b: String,
}

/// Sets `properties.<prop>.<key>` of a tool's input schema, so the schema an assistant sees
/// states this server's limits rather than the defaults.
pub fn set_bound(schema: &mut JsonObject, prop: &str, key: &str, value: Value) {
    if let Some(Value::Object(p)) = schema
        .get_mut("properties")
        .and_then(|props| props.get_mut(prop))
    {
        p.insert(key.to_string(), value);
    }
}

/// `run_load_test`'s schema with this server's caps.
pub fn bound_load_test_schema(schema: &mut JsonObject, settings: &Settings) {
    let max_rps = json!(settings.mcp.max_rps);
    set_bound(schema, "rps", "maximum", max_rps.clone());
    set_bound(schema, "peak_rps", "maximum", max_rps);
    set_bound(
        schema,
        "duration_s",
        "maximum",
        json!(settings.mcp.max_duration.as_secs().max(1)),
    );
    set_bound(
        schema,
        "concurrent_users",
        "maximum",
        json!(settings.load_generation.max_concurrent_requests),
    );
}

/// What an execution's report says, in one word with reasons:
/// - `passed`: it completed, its error rate is below 1 % and every planned request was sent;
/// - `failed`: it failed or was cancelled, no request completed, or 5 % or more failed;
/// - `degraded`: anything between (errors from 1 % up to 5 %, planned requests not sent, a
///   node lost during the run, an interrupted run).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub verdict: &'static str,
    pub reasons: Vec<String>,
}

pub const PASS_ERROR_RATE: f64 = 0.01;
pub const FAIL_ERROR_RATE: f64 = 0.05;

/// The verdict of an execution in `state` whose report summary is `summary` (`None`: no
/// report).
pub fn verdict(state: &str, summary: Option<&Value>) -> Verdict {
    let mut failed = Vec::new();
    let mut degraded = Vec::new();
    match State::parse(state) {
        Some(State::Completed) => {}
        Some(State::CompletedDegraded) => {
            degraded.push("completed degraded: a node was lost during the run".to_string())
        }
        Some(State::Failed) => failed.push("the execution failed".to_string()),
        Some(State::Cancelled) => failed.push("the execution was cancelled".to_string()),
        _ => failed.push(format!("the execution is {state}, not finished")),
    }
    match summary {
        None => failed.push("there is no report".to_string()),
        Some(s) => {
            let num = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let total = num("total_requests");
            let rate = num("error_rate");
            let not_sent = num("not_sent");
            let errors = s
                .get("errors")
                .and_then(|e| e.get("total"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            if total == 0.0 {
                failed.push("no request completed".to_string());
            } else if rate >= FAIL_ERROR_RATE {
                failed.push(format!(
                    "error rate {:.2} % ({errors} of {total} requests) is 5 % or more",
                    rate * 100.0
                ));
            } else if rate >= PASS_ERROR_RATE {
                degraded.push(format!(
                    "error rate {:.2} % ({errors} of {total} requests) is 1 % or more",
                    rate * 100.0
                ));
            }
            if not_sent > 0.0 {
                degraded.push(format!("{not_sent} planned requests were never sent"));
            }
            if s.get("thresholds_passed").and_then(Value::as_bool) == Some(false) {
                failed.push(
                    "a threshold failed (see each task's `thresholds`: threshold, actual, bound)"
                        .to_string(),
                );
            }
            // A watch's stop (a threshold's abort fails the execution; a stress test's breaking
            // point completes it) is no interruption.
            if let Some(why) = s.get("stopped_by").and_then(Value::as_str) {
                if State::parse(state) == Some(State::Failed) {
                    failed.push(format!("stopped early: {why}"));
                }
            } else if s.get("interrupted").and_then(Value::as_bool) == Some(true) {
                degraded.push("the run was interrupted".to_string());
            }
        }
    }
    if !failed.is_empty() {
        failed.extend(degraded);
        Verdict {
            verdict: "failed",
            reasons: failed,
        }
    } else if !degraded.is_empty() {
        Verdict {
            verdict: "degraded",
            reasons: degraded,
        }
    } else {
        Verdict {
            verdict: "passed",
            reasons: vec![format!(
                "completed with an error rate below 1 % and every planned request sent"
            )],
        }
    }
}

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
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("mcp security scan {}", self.target));
        json!({"name": name, "tasks": [{"type": "security_test", "parameters": params}]})
    }
}

/// `get_report`'s verdict over a whole report: [`verdict`] over the load figures (over the
/// scans' own requests when every task is a scan), and the security tasks' findings: a high
/// or critical one fails it, a medium or low one degrades it, as does a slice not scanned.
pub fn report_verdict(state: &str, report: &Value) -> Verdict {
    let tasks: Vec<&Value> = report["tasks"].as_array().into_iter().flatten().collect();
    let scans: Vec<&Value> = tasks
        .iter()
        .copied()
        .filter(|t| t["type"] == "security_test")
        .collect();
    let mut summary = report["summary"].clone();
    if !scans.is_empty() && scans.len() == tasks.len() {
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
        summary = json!({"total_requests": sent, "errors": {"total": errors},
                         "error_rate": rate, "not_sent": 0,
                         "interrupted": report["summary"]["interrupted"]});
    }
    let v = verdict(state, Some(&summary));
    let (mut failed, mut degraded) = (Vec::new(), Vec::new());
    for t in scans {
        let findings: Vec<&Value> = t["security"]["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let severe = findings
            .iter()
            .filter(|f| matches!(f["severity"].as_str(), Some("high" | "critical")))
            .count();
        let name = t["name"].as_str().unwrap_or("");
        if severe > 0 {
            failed.push(format!(
                "security_test {name}: {} findings, {severe} high or critical",
                findings.len()
            ));
        } else if !findings.is_empty() {
            degraded.push(format!(
                "security_test {name}: {} findings, none high or critical",
                findings.len()
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
    let mut reasons = if v.verdict == "passed" && (failed.len() + degraded.len()) > 0 {
        Vec::new()
    } else {
        v.reasons
    };
    let verdict = if v.verdict == "failed" || !failed.is_empty() {
        "failed"
    } else if v.verdict == "degraded" || !degraded.is_empty() {
        "degraded"
    } else {
        "passed"
    };
    reasons.extend(failed);
    reasons.extend(degraded);
    Verdict { verdict, reasons }
}

/// Live figures of an execution view (`GET /api/executions/{id}`), summed over its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Live {
    pub elapsed_s: f64,
    pub duration_s: f64,
    /// Completed in the latest complete second while it runs; once it has ended, the
    /// server's `achieved_rps` (completed over the seconds the load ran).
    pub rps: f64,
    /// The highest p99 so far among the tasks (ms).
    pub p99_ms: f64,
    pub errors: u64,
}

impl Live {
    pub fn of(view: &Value) -> Live {
        let duration_s = view["duration_s"].as_f64().unwrap_or(0.0);
        let percent = view["progress_percent"].as_f64().unwrap_or(0.0);
        let mut live = Live {
            elapsed_s: (percent / 100.0 * duration_s).clamp(0.0, duration_s),
            duration_s,
            ..Live::default()
        };
        let ended = view["state"].as_str().is_some_and(is_final);
        if ended {
            live.rps = view["achieved_rps"].as_f64().unwrap_or(0.0);
        }
        for t in view["tasks"].as_array().into_iter().flatten() {
            if !ended {
                live.rps += t["last_second"]["completed"].as_f64().unwrap_or(0.0);
            }
            live.p99_ms = live
                .p99_ms
                .max(t["latency_ms"]["p99"].as_f64().unwrap_or(0.0));
            live.errors += t["errors"].as_u64().unwrap_or(0);
        }
        live
    }

    /// `running 3/8 s: 99.8 rps, p99 2.1 ms, 0 errors`.
    pub fn message(&self, state: &str) -> String {
        format!(
            "{state} {:.0}/{:.0} s: {:.1} rps, p99 {:.1} ms, {} errors",
            self.elapsed_s, self.duration_s, self.rps, self.p99_ms, self.errors
        )
    }
}

/// Whether an execution state is final.
pub fn is_final(state: &str) -> bool {
    State::parse(state).is_some_and(State::is_terminal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> RunLoadTest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_body_is_a_valid_plan_with_the_given_keys() {
        let p = params(json!({
            "targets": [{"url": "http://127.0.0.1:9/a", "method": "POST"}, {"url": "http://localhost:9/b"}],
            "pattern": "ramp_up", "rps": 10, "peak_rps": 50, "duration_s": 8,
            "concurrent_users": 20, "arrivals": "poisson", "name": "checkout"
        }));
        let body = p.execution_body();
        assert_eq!(
            body,
            json!({"name": "checkout", "tasks": [{"type": "load_test", "parameters": {
                "targets": [{"url": "http://127.0.0.1:9/a", "method": "POST"},
                            {"url": "http://localhost:9/b", "method": "GET"}],
                "duration": "8s", "model": "open", "pattern": "ramp_up",
                "base_rps": 10.0, "peak_rps": 50.0, "arrivals": "poisson", "concurrent_users": 20}}]})
        );
        let settings = Settings::defaults();
        crate::task::validate(&body, &settings.load_generation).expect("a valid plan");
    }

    #[test]
    fn a_closed_model_body_has_no_rate_and_defaults_are_named() {
        let p = params(json!({
            "targets": [{"url": "http://127.0.0.1:9/"}], "rps": 5, "duration_s": 3,
            "model": "closed", "concurrent_users": 4
        }));
        let body = p.execution_body();
        let params = &body["tasks"][0]["parameters"];
        assert_eq!(params["model"], "closed");
        assert!(params.get("base_rps").is_none() && params.get("pattern").is_none());
        assert_eq!(body["name"], "mcp closed 4 users 3 s");
        let settings = Settings::defaults();
        crate::task::validate(&body, &settings.load_generation).expect("a valid plan");
        let open = params_default();
        assert_eq!(open.execution_body()["name"], "mcp constant 100 rps 5 s");
    }

    fn params_default() -> RunLoadTest {
        params(json!({"targets": [{"url": "http://127.0.0.1:9/"}], "rps": 100, "duration_s": 5}))
    }

    #[test]
    fn unknown_fields_and_values_do_not_parse() {
        let bad = [
            json!({"targets": [{"url": "http://127.0.0.1:9/"}], "rps": 1, "duration_s": 1, "extra": 1}),
            json!({"targets": [{"url": "http://127.0.0.1:9/"}], "rps": 1, "duration_s": 1, "pattern": "sine"}),
            json!({"targets": [{"url": "http://127.0.0.1:9/", "method": "BREW"}], "rps": 1, "duration_s": 1}),
            json!({"targets": [{"url": "http://127.0.0.1:9/"}], "duration_s": 1}),
        ];
        for b in bad {
            assert!(
                serde_json::from_value::<RunLoadTest>(b.clone()).is_err(),
                "{b}"
            );
        }
    }

    #[test]
    fn the_schema_states_this_servers_limits() {
        let mut settings = Settings::defaults();
        settings.mcp.max_rps = 250.0;
        settings.mcp.max_duration = Duration::from_secs(60);
        let mut schema = (*rmcp::handler::server::common::schema_for_type::<RunLoadTest>()).clone();
        bound_load_test_schema(&mut schema, &settings);
        let props = &schema["properties"];
        assert_eq!(props["rps"]["maximum"], 250.0);
        assert_eq!(props["peak_rps"]["maximum"], 250.0);
        assert_eq!(props["duration_s"]["maximum"], 60);
        assert_eq!(props["duration_s"]["minimum"], 1);
        assert_eq!(props["targets"]["maxItems"], 16);
        assert_eq!(props["targets"]["minItems"], 1);
        assert_eq!(props["concurrent_users"]["maximum"], 1000);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["required"],
            json!(["targets", "rps", "duration_s"]),
            "{schema:?}"
        );
    }

    fn summary(total: u64, errors: u64, not_sent: u64) -> Value {
        json!({"total_requests": total, "not_sent": not_sent, "interrupted": false,
               "errors": {"total": errors},
               "error_rate": if total > 0 { errors as f64 / total as f64 } else { 0.0 }})
    }

    #[test]
    fn verdicts() {
        let v = |state: &str, s: Option<Value>| verdict(state, s.as_ref());
        assert_eq!(v("completed", Some(summary(1000, 9, 0))).verdict, "passed");
        let d = v("completed", Some(summary(1000, 10, 0)));
        assert_eq!(d.verdict, "degraded");
        assert!(d.reasons[0].contains("1.00 %"), "{d:?}");
        assert_eq!(
            v("completed", Some(summary(1000, 0, 3))).verdict,
            "degraded"
        );
        assert_eq!(
            v("completed_degraded", Some(summary(1000, 0, 0))).verdict,
            "degraded"
        );
        assert_eq!(v("completed", Some(summary(1000, 50, 0))).verdict, "failed");
        let mut judged = summary(1000, 0, 0);
        judged["thresholds_passed"] = json!(false);
        let t = v("completed", Some(judged));
        assert_eq!(t.verdict, "failed");
        assert!(t.reasons[0].contains("threshold"), "{t:?}");
        assert_eq!(v("completed", Some(summary(0, 0, 0))).verdict, "failed");
        let c = v("cancelled", Some(summary(1000, 0, 500)));
        assert_eq!(c.verdict, "failed");
        assert_eq!(c.reasons.len(), 2, "{c:?}");
        assert_eq!(v("failed", None).verdict, "failed");
        assert_eq!(v("running", Some(summary(10, 0, 0))).verdict, "failed");
    }

    #[test]
    fn a_security_body_is_a_valid_plan_and_its_verdict_reads_the_findings() {
        let p: RunSecurityTest = serde_json::from_value(json!({
            "target": "http://127.0.0.1:9/",
            "endpoints": [{"path": "/search", "params": ["q"]}, {"path": "/t", "method": "POST"}],
            "scan_types": ["xss", "csrf"], "depth": "deep", "rate_limit_rps": 5
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
        assert!(
            serde_json::from_value::<RunSecurityTest>(json!({
                "target": "http://127.0.0.1:9/", "endpoints": [{"path": "/"}], "extra": 1
            }))
            .is_err()
        );

        let report = |findings: Value| {
            json!({"summary": {"total_requests": 0, "errors": {"total": 0}, "error_rate": 0.0,
                               "not_sent": 0, "interrupted": false},
                   "tasks": [{"type": "security_test", "name": "s", "security": {
                       "requests_sent": 40, "request_errors": 0, "findings": findings,
                       "nodes_lost": []}}]})
        };
        let clean = report_verdict("completed", &report(json!([])));
        assert_eq!(clean.verdict, "passed", "{clean:?}");
        let low = report_verdict("completed", &report(json!([{"severity": "low"}])));
        assert_eq!(low.verdict, "degraded", "{low:?}");
        assert_eq!(low.reasons.len(), 1, "{low:?}");
        let high = report_verdict(
            "completed",
            &report(json!([{"severity": "low"}, {"severity": "critical"}])),
        );
        assert_eq!(high.verdict, "failed", "{high:?}");
        assert!(high.reasons[0].contains("1 high or critical"), "{high:?}");
    }

    #[test]
    fn the_progress_line_sums_the_tasks() {
        let view = json!({"state": "running", "duration_s": 8.0, "progress_percent": 37.5,
        "tasks": [
            {"errors": 1, "latency_ms": {"p99": 2.1}, "last_second": {"completed": 60}},
            {"errors": 0, "latency_ms": {"p99": 1.5}, "last_second": {"completed": 39.8}},
        ]});
        let live = Live::of(&view);
        assert_eq!(live.elapsed_s, 3.0);
        assert_eq!(
            live.message("running"),
            "running 3/8 s: 99.8 rps, p99 2.1 ms, 1 errors"
        );
        let pending = Live::of(
            &json!({"state": "pending", "duration_s": 8.0, "progress_percent": 0, "tasks": []}),
        );
        assert_eq!(
            pending.message("pending"),
            "pending 0/8 s: 0.0 rps, p99 0.0 ms, 0 errors"
        );
        // Cancelled after 2 of 8 s: how far it got and the server's rate over those 2 s.
        let cancelled = Live::of(&json!({"state": "cancelled", "duration_s": 8.0,
            "progress_percent": 25.0, "achieved_rps": 107.0,
            "tasks": [{"errors": 0, "latency_ms": {"p99": 1.0}, "last_second": {"completed": 3}}]}));
        assert_eq!(
            cancelled.message("cancelled"),
            "cancelled 2/8 s: 107.0 rps, p99 1.0 ms, 0 errors"
        );
    }
}
