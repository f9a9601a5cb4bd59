//! The MCP server's guardrails as pure checks: whatever a client sends, a load test started
//! over MCP stays within `mcp.max_rps`, `mcp.max_duration`, `mcp.max_concurrent_executions`
//! and `load_generation.allowed_targets`. A refusal says which limit, its value, and how to
//! change it (the key and its environment variable); the server returns it as a tool error.

use url::Url;

use crate::allowlist::Allowlist;
use crate::settings::McpSettings;

use crate::task::load::mcp::{MAX_TARGETS, ModelParam, PatternParam, RunLoadTest};
use crate::task::security::mcp::{MAX_SCAN_ENDPOINTS, MAX_SCAN_PARAMS, RunSecurityTest};
use crate::task::stress::mcp::RunStressTest;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "refused: {field} {asked} exceeds mcp.max_rps = {max} requests per second on this MCP server; \
         ask for at most {max}, or raise mcp.max_rps in its configuration (environment MCP_MCP_MAX_RPS)"
    )]
    Rate {
        field: &'static str,
        asked: f64,
        max: f64,
    },
    #[error(
        "refused: duration_s {asked} exceeds mcp.max_duration = {max} s on this MCP server; \
         ask for at most {max} s, or raise mcp.max_duration in its configuration (environment MCP_MCP_MAX_DURATION)"
    )]
    Duration { asked: u64, max: u64 },
    #[error(
        "refused: {running} executions started over MCP are still unfinished ({ids}) and \
         mcp.max_concurrent_executions = {max}; wait for one (wait_for_execution) or cancel one \
         (cancel_execution), or raise mcp.max_concurrent_executions in the MCP server's \
         configuration (environment MCP_MCP_MAX_CONCURRENT_EXECUTIONS)"
    )]
    Concurrent {
        running: usize,
        ids: String,
        max: u32,
    },
    #[error(
        "refused: target {url}: {why} (environment MCP_LOAD_GENERATION_ALLOWED_TARGETS, comma-separated)"
    )]
    Target { url: String, why: String },
    /// An input the schema rules out, sent anyway.
    #[error("refused: {0}")]
    Invalid(String),
}

/// The caps on one `run_load_test`: rates, duration, target count and form. The allowlist is
/// [`check_targets`], apart, because it may resolve host names.
pub fn check_load_test(p: &RunLoadTest, limits: &McpSettings) -> Result<(), Refusal> {
    match (&p.flow, p.targets.len()) {
        (Some(_), 0) => {}
        (Some(_), _) => {
            return Err(Refusal::Invalid(
                "give either targets or flow, not both".into(),
            ));
        }
        (None, n) if n == 0 || n > MAX_TARGETS => {
            return Err(Refusal::Invalid(format!(
                "targets must list 1 to {MAX_TARGETS} URLs (or give a flow), got {n}"
            )));
        }
        (None, _) => {}
    }
    // A flow's rate counts iterations: the requests are that many times more.
    let per_iteration = p
        .flow
        .as_deref()
        .map_or(1.0, crate::task::load::mcp::requests_per_iteration);
    for (field, v) in [("rps", Some(p.rps)), ("peak_rps", p.peak_rps)] {
        let Some(v) = v.map(|v| v * per_iteration) else {
            continue;
        };
        if !v.is_finite() || v < 0.0 {
            return Err(Refusal::Invalid(format!(
                "{field} must be a number of 0 or more, got {v}"
            )));
        }
        if v > limits.max_rps && per_iteration > 1.0 {
            return Err(Refusal::Invalid(format!(
                "{field} {} iterations per second of a flow of {per_iteration} requests is {v} \
                 requests per second, over mcp.max_rps = {} on this MCP server",
                v / per_iteration,
                limits.max_rps
            )));
        }
        if v > limits.max_rps {
            return Err(Refusal::Rate {
                field,
                asked: v,
                max: limits.max_rps,
            });
        }
    }
    let max = limits.max_duration.as_secs().max(1);
    if p.duration_s == 0 {
        return Err(Refusal::Invalid("duration_s must be at least 1".into()));
    }
    if p.duration_s > max {
        return Err(Refusal::Duration {
            asked: p.duration_s,
            max,
        });
    }
    if p.model() == ModelParam::Closed && p.pattern.is_some_and(|x| x != PatternParam::Constant) {
        return Err(Refusal::Invalid(
            "the closed model runs a fixed number of users; patterns apply to the open model"
                .into(),
        ));
    }
    Ok(())
}

/// Every target is an http URL on the allowlist. Blocking: a host name that only an address
/// pattern could allow is resolved.
pub fn check_targets(p: &RunLoadTest, allowlist: &Allowlist) -> Result<(), Refusal> {
    p.targets
        .iter()
        .try_for_each(|t| check_url(&t.url, LOAD_SCHEMES, allowlist))
}

/// The schemes load and stress tests send to (https verified against the system's roots).
pub const LOAD_SCHEMES: &[&str] = &["http", "https"];
/// The schemes a security scan speaks.
pub const SCAN_SCHEMES: &[&str] = &["http"];

/// One URL in one of `schemes`, on the allowlist (blocking, as [`check_targets`]).
pub fn check_url(raw: &str, schemes: &[&str], allowlist: &Allowlist) -> Result<(), Refusal> {
    let url = Url::parse(raw).map_err(|e| Refusal::Target {
        url: raw.to_string(),
        why: format!("not a valid URL: {e}"),
    })?;
    if !schemes.contains(&url.scheme()) {
        let names: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(Refusal::Invalid(format!(
            "target {raw}: only {} URLs are supported here",
            names.join(" and ")
        )));
    }
    allowlist
        .check_blocking(&url)
        .map_err(|why| Refusal::Target {
            url: raw.to_string(),
            why,
        })
}

/// The caps on one `run_security_test`: its rate under `mcp.max_rps`, its endpoint and
/// parameter counts. The target's allowlist is [`check_url`], apart.
pub fn check_security_test(p: &RunSecurityTest, limits: &McpSettings) -> Result<(), Refusal> {
    if p.endpoints.is_empty() || p.endpoints.len() > MAX_SCAN_ENDPOINTS {
        return Err(Refusal::Invalid(format!(
            "endpoints must list 1 to {MAX_SCAN_ENDPOINTS} endpoints, got {}",
            p.endpoints.len()
        )));
    }
    if let Some(e) = p.endpoints.iter().find(|e| {
        e.params
            .as_ref()
            .is_some_and(|ps| ps.len() > MAX_SCAN_PARAMS)
    }) {
        return Err(Refusal::Invalid(format!(
            "endpoint {}: at most {MAX_SCAN_PARAMS} params",
            e.path
        )));
    }
    if let Some(v) = p.rate_limit_rps {
        if !v.is_finite() || v <= 0.0 {
            return Err(Refusal::Invalid(format!(
                "rate_limit_rps must be more than 0, got {v}"
            )));
        }
        if v > limits.max_rps {
            return Err(Refusal::Rate {
                field: "rate_limit_rps",
                asked: v,
                max: limits.max_rps,
            });
        }
    }
    Ok(())
}

/// The caps on one `run_stress_test`: every step's rate under `mcp.max_rps`, all steps
/// together under `mcp.max_duration`. The targets' allowlist is [`check_url`], apart.
pub fn check_stress_test(p: &RunStressTest, limits: &McpSettings) -> Result<(), Refusal> {
    if p.targets.is_empty() || p.targets.len() > MAX_TARGETS {
        return Err(Refusal::Invalid(format!(
            "targets must list 1 to {MAX_TARGETS} URLs, got {}",
            p.targets.len()
        )));
    }
    for (field, v) in [
        ("start_rps", p.start_rps),
        ("step_rps", p.step_rps),
        ("max_rps", p.max_rps),
    ] {
        if !v.is_finite() || v <= 0.0 {
            return Err(Refusal::Invalid(format!(
                "{field} must be more than 0, got {v}"
            )));
        }
        if v > limits.max_rps {
            return Err(Refusal::Rate {
                field,
                asked: v,
                max: limits.max_rps,
            });
        }
    }
    let total = p.steps().saturating_mul(p.step_duration_s);
    let max = limits.max_duration.as_secs();
    if total > max {
        return Err(Refusal::Duration { asked: total, max });
    }
    Ok(())
}

/// A new execution may start while fewer than `mcp.max_concurrent_executions` started over
/// MCP are unfinished (`unfinished`: their ids).
pub fn check_concurrency(unfinished: &[String], limits: &McpSettings) -> Result<(), Refusal> {
    if unfinished.len() >= limits.max_concurrent_executions as usize {
        return Err(Refusal::Concurrent {
            running: unfinished.len(),
            ids: unfinished.join(", "),
            max: limits.max_concurrent_executions,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;
    use std::time::Duration;

    fn limits() -> McpSettings {
        Settings::defaults().mcp
    }

    fn test(v: serde_json::Value) -> RunLoadTest {
        let mut base =
            json!({"targets": [{"url": "http://127.0.0.1:9/"}], "rps": 10, "duration_s": 5});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn stress(v: serde_json::Value) -> RunStressTest {
        let mut base = json!({"targets": [{"url": "http://127.0.0.1:9/"}], "start_rps": 100,
                              "step_rps": 50, "max_rps": 400, "step_duration_s": 5});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_stress_test_is_held_to_the_rate_and_duration_caps() {
        // 100, 150, ..., 400: 7 steps of 5 s.
        assert_eq!(stress(json!({})).steps(), 7);
        assert_eq!(check_stress_test(&stress(json!({})), &limits()), Ok(()));
        let e = check_stress_test(&stress(json!({"max_rps": 1500})), &limits()).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::Rate {
                    field: "max_rps",
                    ..
                }
            ),
            "{e:?}"
        );
        // 7 steps of 60 s is 420 s, over the 300 s cap.
        let e = check_stress_test(&stress(json!({"step_duration_s": 60})), &limits()).unwrap_err();
        assert_eq!(
            e,
            Refusal::Duration {
                asked: 420,
                max: 300
            }
        );
        assert!(e.to_string().contains("MCP_MCP_MAX_DURATION"));
        let body = stress(json!({"break_p99_ms": 250})).execution_body();
        let task = &body["tasks"][0];
        assert_eq!(task["type"], "stress_test");
        assert_eq!(task["parameters"]["step_duration"], "5s");
        assert_eq!(task["parameters"]["break_on"]["p99_ms"], 250.0);
    }

    #[test]
    fn thresholds_make_a_performance_test() {
        let body =
            test(json!({"thresholds": ["p99_ms < 200"], "abort_on_fail": true})).execution_body();
        let task = &body["tasks"][0];
        assert_eq!(task["type"], "performance_test");
        assert_eq!(task["parameters"]["thresholds"], json!(["p99_ms < 200"]));
        assert_eq!(task["parameters"]["abort_on_fail"], true);
        assert_eq!(
            test(json!({})).execution_body()["tasks"][0]["type"],
            "load_test"
        );
    }

    #[test]
    fn within_the_limits_passes() {
        assert_eq!(check_load_test(&test(json!({})), &limits()), Ok(()));
        let at_caps =
            test(json!({"rps": 1000, "peak_rps": 1000, "duration_s": 300, "pattern": "spike"}));
        assert_eq!(check_load_test(&at_caps, &limits()), Ok(()));
        assert_eq!(check_targets(&at_caps, &Allowlist::default()), Ok(()));
    }

    #[test]
    fn the_rate_cap_applies_to_base_and_peak() {
        let e = check_load_test(&test(json!({"rps": 1000.5})), &limits()).unwrap_err();
        assert!(matches!(e, Refusal::Rate { field: "rps", .. }), "{e:?}");
        let text = e.to_string();
        for part in ["mcp.max_rps = 1000", "MCP_MCP_MAX_RPS", "rps 1000.5"] {
            assert!(text.contains(part), "{text}");
        }
        let e = check_load_test(
            &test(json!({"pattern": "ramp_up", "peak_rps": 5000})),
            &limits(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("refused: peak_rps 5000 exceeds mcp.max_rps"),
            "{e}"
        );
        let mut low = limits();
        low.max_rps = 5.0;
        assert!(check_load_test(&test(json!({})), &low).is_err());
    }

    #[test]
    fn the_duration_cap() {
        let e = check_load_test(&test(json!({"duration_s": 301})), &limits()).unwrap_err();
        assert_eq!(
            e,
            Refusal::Duration {
                asked: 301,
                max: 300
            }
        );
        let text = e.to_string();
        for part in [
            "mcp.max_duration = 300 s",
            "MCP_MCP_MAX_DURATION",
            "duration_s 301",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let mut short = limits();
        short.max_duration = Duration::from_secs(4);
        assert!(check_load_test(&test(json!({})), &short).is_err());
        assert!(matches!(
            check_load_test(&test(json!({"duration_s": 0})), &limits()),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn the_concurrency_cap_names_the_running_ones() {
        let l = limits();
        assert_eq!(check_concurrency(&[], &l), Ok(()));
        assert_eq!(check_concurrency(&["a".into()], &l), Ok(()));
        let e = check_concurrency(&["a".into(), "b".into()], &l).unwrap_err();
        let text = e.to_string();
        for part in [
            "mcp.max_concurrent_executions = 2",
            "MCP_MCP_MAX_CONCURRENT_EXECUTIONS",
            "(a, b)",
            "cancel_execution",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }

    #[test]
    fn targets_off_the_allowlist_are_named_with_the_setting() {
        let p = test(
            json!({"targets": [{"url": "http://127.0.0.1:9/"}, {"url": "http://10.1.2.3:8080/x"}]}),
        );
        let e = check_targets(&p, &Allowlist::default()).unwrap_err();
        let text = e.to_string();
        for part in [
            "http://10.1.2.3:8080/x",
            "load_generation.allowed_targets",
            "MCP_LOAD_GENERATION_ALLOWED_TARGETS",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let open: Allowlist = Allowlist::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            check_targets(
                &test(json!({"targets": [{"url": "http://10.1.2.3/"}]})),
                &open
            ),
            Ok(())
        );
        let https = test(json!({"targets": [{"url": "https://127.0.0.1/"}]}));
        assert_eq!(check_targets(&https, &Allowlist::default()), Ok(()));
        let ftp = test(json!({"targets": [{"url": "ftp://127.0.0.1/"}]}));
        assert!(matches!(
            check_targets(&ftp, &Allowlist::default()),
            Err(Refusal::Invalid(_))
        ));
        // A scan speaks http only.
        assert!(matches!(
            check_url("https://127.0.0.1/", SCAN_SCHEMES, &Allowlist::default()),
            Err(Refusal::Invalid(why)) if why.contains("only http:// URLs")
        ));
        let junk = test(json!({"targets": [{"url": "not a url"}]}));
        assert!(matches!(
            check_targets(&junk, &Allowlist::default()),
            Err(Refusal::Target { .. })
        ));
    }

    #[test]
    fn inputs_the_schema_rules_out_are_refused_anyway() {
        let many: Vec<_> = (0..17)
            .map(|i| json!({"url": format!("http://127.0.0.1:{i}/")}))
            .collect();
        assert!(matches!(
            check_load_test(&test(json!({"targets": many})), &limits()),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            check_load_test(&test(json!({"targets": []})), &limits()),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            check_load_test(&test(json!({"rps": -1})), &limits()),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            check_load_test(
                &test(json!({"model": "closed", "pattern": "wave"})),
                &limits()
            ),
            Err(Refusal::Invalid(_))
        ));
    }
}
