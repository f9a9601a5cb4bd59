//! The stress test's MCP tool, `run_stress_test`: its input (with the JSON schema clients see)
//! and the plan it becomes. Plain data: `crate::mcp` serves it and guards it.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::task::load::mcp::{TargetParam, targets_json};

/// The tool's name and what it tells the assistant.
pub const NAME: &str = "run_stress_test";
pub const DESCRIPTION: &str = "Start a stress test: the rate steps up from start_rps by step_rps every step_duration_s until max_rps, and stops by itself once the target breaks (a second's p99 over break_p99_ms, errors over break_error_rate, or under 95% of the planned rate, for `consecutive` seconds in a row). Returns the execution_id at once; follow it with wait_for_execution, then get_report, whose tasks[0].stress gives breaking_point_rps (the last sustainable rate), the condition that broke and each step's rate, latency and errors. The server refuses (tool error, saying which setting) targets outside load_generation.allowed_targets, any rate over mcp.max_rps, all steps together over mcp.max_duration, and more unfinished MCP-started executions than mcp.max_concurrent_executions.";

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
