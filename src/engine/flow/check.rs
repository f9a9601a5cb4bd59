//! Checks: what a response must be for its step to pass. The status, a JSONPath's first value
//! or a regular expression's group 1 equal to a rendered value, the body containing a
//! rendered text, the time taken. A failed check is counted per request name; it says which
//! check and how it failed.

use std::sync::Arc;
use std::time::Duration;

use minijinja::Environment;
use serde_json_path::JsonPath;

use super::Check;
use super::capture::{Response, first_json, first_match, json_path, regex};
use super::template::{Tpl, Vars, cut};

/// A check with its templates, JSONPath and regular expression compiled.
#[derive(Debug, Clone)]
pub struct CompiledCheck(Kind);

#[derive(Debug, Clone)]
enum Kind {
    Status(Vec<u16>),
    Json {
        text: String,
        path: JsonPath,
        expected: Tpl,
    },
    Regex {
        pattern: regex::bytes::Regex,
        expected: Tpl,
    },
    Contains(Tpl),
    MaxTime(Duration),
}

/// A check that failed: which (`status`, `json $.owner`) and how (`expected 200, got 401`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {message}")]
pub struct CheckFailure {
    pub check: String,
    pub message: String,
}

impl CompiledCheck {
    pub(crate) fn new(c: &Check, env: &Arc<Environment<'static>>) -> Result<CompiledCheck, String> {
        Ok(CompiledCheck(match c {
            Check::Status(codes) => Kind::Status(codes.clone()),
            Check::Json { path, expected } => Kind::Json {
                text: path.clone(),
                path: json_path(path)?,
                expected: Tpl::new(env, expected)?,
            },
            Check::Regex { pattern, expected } => Kind::Regex {
                pattern: regex(pattern)?,
                expected: Tpl::new(env, expected)?,
            },
            Check::Contains(text) => Kind::Contains(Tpl::new(env, text)?),
            Check::MaxTime(max) => Kind::MaxTime(*max),
        }))
    }

    /// The check's name in reports: `status`, `json $.owner`, `regex tok=(\w+)`, `contains`,
    /// `max_ms`.
    pub fn name(&self) -> String {
        match &self.0 {
            Kind::Status(_) => "status".into(),
            Kind::Json { text, .. } => format!("json {text}"),
            Kind::Regex { pattern, .. } => format!("regex {}", pattern.as_str()),
            Kind::Contains(_) => "contains".into(),
            Kind::MaxTime(_) => "max_ms".into(),
        }
    }

    /// Whether the check reads the body as JSON.
    pub fn reads_json(&self) -> bool {
        matches!(self.0, Kind::Json { .. })
    }

    /// Whether it reads the body.
    pub fn reads_body(&self) -> bool {
        matches!(
            self.0,
            Kind::Json { .. } | Kind::Regex { .. } | Kind::Contains(_)
        )
    }

    /// Whether it judges the status (a step without one fails on a status of 400 or more).
    pub fn is_status(&self) -> bool {
        matches!(self.0, Kind::Status(_))
    }
}

/// Checks `r` (which took `elapsed`) against `c`, its expected values rendered with `vars`.
pub fn check(
    c: &CompiledCheck,
    r: &Response<'_>,
    elapsed: Duration,
    vars: &Vars,
) -> Result<(), CheckFailure> {
    let fail = |message: String| {
        Err(CheckFailure {
            check: c.name(),
            message,
        })
    };
    match &c.0 {
        Kind::Status(codes) if codes.contains(&r.status) => Ok(()),
        Kind::Status(codes) => fail(format!(
            "expected {}, got {}",
            expected_codes(codes),
            r.status
        )),
        Kind::Json { path, expected, .. } => {
            if r.json().is_none() {
                return fail("the body is not JSON".into());
            }
            let got = first_json(path, r);
            equal(got, expected, vars).or_else(fail)
        }
        Kind::Regex { pattern, expected } => {
            equal(first_match(pattern, r.body), expected, vars).or_else(fail)
        }
        Kind::Contains(text) => {
            let text = match text.render(vars) {
                Ok(t) => t,
                Err(e) => return fail(e.to_string()),
            };
            if contains(r.body, text.as_bytes()) {
                Ok(())
            } else {
                fail(format!("the body does not contain {:?}", cut(&text)))
            }
        }
        Kind::MaxTime(max) if elapsed <= *max => Ok(()),
        Kind::MaxTime(max) => fail(format!(
            "took {} ms, more than {} ms",
            elapsed.as_millis(),
            max.as_millis()
        )),
    }
}

/// `Ok` when `got` is the rendered `expected`, else the message.
fn equal(got: Option<String>, expected: &Tpl, vars: &Vars) -> Result<(), String> {
    let Some(got) = got else {
        return Err("found nothing".into());
    };
    let expected = expected.render(vars).map_err(|e| e.to_string())?;
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "expected {:?}, got {:?}",
            cut(&expected),
            cut(&got)
        ))
    }
}

fn expected_codes(codes: &[u16]) -> String {
    match codes {
        [one] => one.to_string(),
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            format!("one of {}", list.join(", "))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
