//! The load test's MCP tool, `run_load_test`: its input (with the JSON schema clients see)
//! and the plan it becomes. Plain data: `crate::mcp` serves it and guards it.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::engine::schedule::{Arrivals, Model, Pattern};
use crate::settings::Settings;

/// A tool's input schema (an object).
pub type JsonObject = Map<String, Value>;

/// The tool's name and what it tells the assistant.
pub const NAME: &str = "run_load_test";
pub const DESCRIPTION: &str = "Start an HTTP load test on the cluster and return its execution_id at once (it runs in the background; follow it with wait_for_execution, then get_report). One task: the targets share the requests, or a user flow (flow: login, capture a token, use it; rps then counts iterations) runs once per arrival; the report has a row per request name; `rps` is the base rate, `peak_rps` the top of ramp_up/ramp_down/spike/wave/random/burst patterns. The server refuses (tool error, saying which setting) targets outside load_generation.allowed_targets (loopback only by default), rates over mcp.max_rps, durations over mcp.max_duration, and more unfinished MCP-started executions than mcp.max_concurrent_executions.";

/// The most targets one `run_load_test` may name.
pub const MAX_TARGETS: usize = 16;

/// One target of a load test.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetParam {
    /// An http:// or https:// URL, e.g. "http://127.0.0.1:8089/" (https is verified against
    /// the system's roots); its host must match the server's load_generation.allowed_targets
    /// (loopback only by default).
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

/// The names the plan gives the patterns, models and arrivals, in the order of the variants
/// below (a test checks each variant reads as its name). MCP offers every pattern but the
/// last, `stages`, which needs a plan's stages.
const PATTERN_NAMES: &[&str] = Pattern::NAMES.split_last().expect("patterns").1;
const MODEL_NAMES: &[&str] = &Model::NAMES;
const ARRIVALS_NAMES: &[&str] = &Arrivals::NAMES;

/// The rate shapes of a plan (README, "Patterns"); `b` is rps, `p` is peak_rps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Pattern")]
pub enum PatternParam {
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

impl PatternParam {
    /// The pattern's name in a plan.
    pub fn name(self) -> &'static str {
        PATTERN_NAMES[self as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Model")]
pub enum ModelParam {
    /// Requests start at planned times whatever the responses do (the rate is held).
    Open,
    /// concurrent_users users each loop request after request (no rate).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Arrivals")]
pub enum ArrivalsParam {
    /// Evenly spaced.
    Uniform,
    /// Poisson process at the planned rate.
    Poisson,
}

impl ModelParam {
    /// The model's name in a plan.
    pub fn name(self) -> &'static str {
        MODEL_NAMES[self as usize]
    }
}

impl ArrivalsParam {
    /// The arrivals' name in a plan.
    pub fn name(self) -> &'static str {
        ARRIVALS_NAMES[self as usize]
    }
}

/// `run_load_test`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLoadTest {
    /// The URLs to load (1 to 16); requests are shared among them equally. Give either
    /// targets or flow.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub targets: Vec<TargetParam>,
    /// A user flow instead of targets: the plan's `flow` steps, e.g.
    /// [{"name": "login", "request": {"method": "POST", "url": "http://127.0.0.1:8089/login",
    /// "body": {"user": "u{{ vu }}", "password": "p"}}, "capture": {"token": {"json":
    /// "$.token"}}, "check": {"status": 200}}, {"name": "me", "request": {"url":
    /// "http://127.0.0.1:8089/me", "headers": {"authorization": "Bearer {{ token }}"}}}].
    /// Step kinds: request (with capture: json/regex/header/status, check: status/json/
    /// regex/contains/max_ms), think, loop, group; variables: captures, vu, iteration, node.
    /// rps then counts iterations, and rps times the requests of one iteration must stay
    /// within mcp.max_rps.
    #[schemars(length(min = 1, max = 100))]
    pub flow: Option<Vec<Value>>,
    /// The rate shape (default constant); every pattern but constant needs peak_rps.
    pub pattern: Option<PatternParam>,
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
    pub model: Option<ModelParam>,
    /// Open model: the cap on requests in flight; closed model: the number of users
    /// (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub concurrent_users: Option<u32>,
    /// Open model: uniform (default) or poisson arrival times.
    pub arrivals: Option<ArrivalsParam>,
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

/// The requests one iteration of `steps` (a flow's, in the plan's JSON) sends: loops
/// multiply, groups add; at least 1.
pub fn requests_per_iteration(steps: &[Value]) -> f64 {
    fn count(steps: &[Value]) -> f64 {
        steps
            .iter()
            .map(|s| {
                let inner = || count(s["steps"].as_array().map_or(&[][..], Vec::as_slice));
                if s.get("request").is_some() {
                    1.0
                } else if let Some(times) = s.get("loop") {
                    let n = times
                        .as_f64()
                        .or_else(|| times["over"].as_array().map(|a| a.len() as f64))
                        .unwrap_or(1.0);
                    n * inner()
                } else if s.get("group").is_some() {
                    inner()
                } else {
                    0.0
                }
            })
            .sum()
    }
    count(steps).max(1.0)
}

/// The plan's `targets` of a tool's targets (method GET unless given).
pub fn targets_json(targets: &[TargetParam]) -> Vec<Value> {
    targets
        .iter()
        .map(|t| json!({"url": t.url, "method": t.method.unwrap_or(Method::Get).as_str()}))
        .collect()
}

impl RunLoadTest {
    pub fn model(&self) -> ModelParam {
        self.model.unwrap_or(ModelParam::Open)
    }

    pub fn pattern(&self) -> PatternParam {
        self.pattern.unwrap_or(PatternParam::Constant)
    }

    /// The `POST /api/executions` body (the plan schema of `src/plan/`).
    pub fn execution_body(&self) -> Value {
        let mut params = json!({"duration": format!("{}s", self.duration_s)});
        let p = params.as_object_mut().expect("an object");
        match &self.flow {
            Some(flow) => p.insert("flow".into(), json!(flow)),
            None => p.insert("targets".into(), json!(targets_json(&self.targets))),
        };
        match self.model() {
            ModelParam::Open => {
                p.insert("model".into(), json!(ModelParam::Open.name()));
                p.insert("pattern".into(), json!(self.pattern().name()));
                p.insert("base_rps".into(), json!(self.rps));
                if let Some(peak) = self.peak_rps {
                    p.insert("peak_rps".into(), json!(peak));
                }
                if let Some(a) = self.arrivals {
                    p.insert("arrivals".into(), json!(a.name()));
                }
            }
            ModelParam::Closed => {
                p.insert("model".into(), json!(ModelParam::Closed.name()));
            }
        }
        if let Some(users) = self.concurrent_users {
            p.insert("concurrent_users".into(), json!(users));
        }
        let name = self.name.clone().unwrap_or_else(|| match self.model() {
            ModelParam::Open => format!(
                "mcp {} {} rps {} s",
                self.pattern().name(),
                self.rps,
                self.duration_s
            ),
            ModelParam::Closed => format!(
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

/// Sets `properties.<prop>.<key>` of a tool's input schema, so the schema an assistant sees
/// states this server's limits rather than the defaults.
fn set_bound(schema: &mut JsonObject, prop: &str, key: &str, value: Value) {
    if let Some(Value::Object(p)) = schema
        .get_mut("properties")
        .and_then(|props| props.get_mut(prop))
    {
        p.insert(key.to_string(), value);
    }
}

/// `run_load_test`'s schema with this server's caps.
pub fn bound_schema(schema: &mut JsonObject, settings: &Settings) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    /// A flow goes into the plan instead of targets; its rate counts iterations, held to
    /// the server's cap by the requests of one.
    #[test]
    fn a_flow_is_a_valid_plan_and_its_requests_count_against_the_cap() {
        let flow = json!([
            {"name": "login", "request": {"method": "POST", "url": "http://127.0.0.1:9/login",
             "body": {"user": "u{{ vu }}", "password": "p"}},
             "capture": {"token": {"json": "$.token"}}, "check": {"status": 200}},
            {"loop": 3, "steps": [{"name": "me", "request": {"url": "http://127.0.0.1:9/me",
             "headers": {"authorization": "Bearer {{ token }}"}}}]},
            {"group": "tail", "steps": [{"think": "10ms"},
             {"request": {"url": "http://127.0.0.1:9/"}}]}
        ]);
        let p = params(json!({"flow": flow, "rps": 50, "duration_s": 2}));
        assert_eq!(requests_per_iteration(p.flow.as_deref().unwrap()), 5.0);
        let body = p.execution_body();
        assert_eq!(body["tasks"][0]["parameters"]["flow"], flow);
        assert!(body["tasks"][0]["parameters"].get("targets").is_none());
        let settings = Settings::defaults();
        crate::task::validate(&body, &settings.load_generation).expect("a valid plan");
        let mut limits = settings.mcp.clone();
        limits.max_rps = 200.0;
        let refused = crate::mcp::guard::check_load_test(&p, &limits).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("of a flow of 5 requests is 250"),
            "{refused}"
        );
        limits.max_rps = 250.0;
        assert_eq!(crate::mcp::guard::check_load_test(&p, &limits), Ok(()));
        let both = params(
            json!({"flow": flow, "targets": [{"url": "http://127.0.0.1:9/"}],
                                 "rps": 1, "duration_s": 1}),
        );
        assert!(crate::mcp::guard::check_load_test(&both, &limits).is_err());
        let neither = params(json!({"rps": 1, "duration_s": 1}));
        assert!(crate::mcp::guard::check_load_test(&neither, &limits).is_err());
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
        bound_schema(&mut schema, &settings);
        let props = &schema["properties"];
        assert_eq!(props["rps"]["maximum"], 250.0);
        assert_eq!(props["peak_rps"]["maximum"], 250.0);
        assert_eq!(props["duration_s"]["maximum"], 60);
        assert_eq!(props["duration_s"]["minimum"], 1);
        assert_eq!(props["targets"]["maxItems"], 16);
        assert_eq!(props["concurrent_users"]["maximum"], 1000);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["required"],
            json!(["rps", "duration_s"]),
            "{schema:?}"
        );
    }

    /// The names the schema offers are the plan's: each variant reads as its name.
    #[test]
    fn each_variant_reads_as_its_name() {
        let offered: Vec<PatternParam> = PATTERN_NAMES
            .iter()
            .filter_map(|n| serde_json::from_value(json!(n)).ok())
            .collect();
        assert_eq!(offered.len(), 7, "every pattern but stages");
        for (i, p) in offered.iter().enumerate() {
            assert_eq!((p.name(), *p as usize), (PATTERN_NAMES[i], i));
        }
        for name in MODEL_NAMES {
            let m: ModelParam = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(m.name(), *name);
        }
        for name in ARRIVALS_NAMES {
            let a: ArrivalsParam = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(a.name(), *name);
        }
    }
}
