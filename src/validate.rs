//! Walks a parsed document (`serde_json::Value`) into typed values while collecting every
//! problem with its key path, so a user sees all mistakes of a plan or a config file at once.
//!
//! serde's derive stops at the first error; plans and settings go through [`Obj`] instead: each
//! known key is taken with its type, the leftovers are reported as unknown keys.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

/// One problem in a document: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Key path such as `tasks[0].parameters.base_rps`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl FieldErrors {
    /// One error about `field`.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> FieldErrors {
        let mut e = FieldErrors::default();
        e.push(field, message);
        e
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was reported, else every error.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// What is wrong with a metric's `critical` level against its `warning` level, if anything:
/// critical must be at least as bad as warning (higher when higher values are worse).
pub fn critical_after_warning(
    warning: f64,
    critical: f64,
    higher_is_worse: bool,
) -> Option<String> {
    if higher_is_worse && critical < warning {
        Some(format!(
            "must not be below warning when higher values are worse ({critical} < {warning})"
        ))
    } else if !higher_is_worse && critical > warning {
        Some(format!(
            "must not be above warning when lower values are worse ({critical} > {warning})"
        ))
    } else {
        None
    }
}

/// Whether `name` is `[a-z_][a-z0-9_]{0,63}`: the name of a custom metric.
pub fn metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Joins a parent path and a key: `tasks[0]` + `type` = `tasks[0].type`.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A JSON object being taken apart; keys not taken are reported by [`Obj::finish`].
pub struct Obj<'v> {
    path: String,
    map: &'v Map<String, Value>,
    taken: Vec<&'static str>,
}

impl<'v> Obj<'v> {
    /// Reports an error (and returns `None`) when `value` is not an object.
    pub fn new(value: &'v Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Obj {
                path: path.to_string(),
                map,
                taken: Vec::new(),
            }),
            other => {
                errors.push(path, format!("expected a mapping, got {}", kind(other)));
                None
            }
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The mapping under `key`; an absent key reads as an empty mapping (every key of it then
    /// takes its default).
    pub fn child(&mut self, key: &'static str, errors: &mut FieldErrors) -> Option<Obj<'v>> {
        static EMPTY: std::sync::LazyLock<Value> =
            std::sync::LazyLock::new(|| Value::Object(Map::new()));
        let path = self.key_path(key);
        let value: &'v Value = match self.raw(key) {
            Some(v) => v,
            None => &EMPTY,
        };
        Obj::new(value, &path, errors)
    }

    /// The raw value under `key`, marking the key as known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'v Value> {
        self.taken.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The mapping under `key` (`None` when absent); anything else is reported as "expected
    /// a mapping of `of_what`" and read as absent.
    pub fn map(
        &mut self,
        key: &'static str,
        of_what: &str,
        errors: &mut FieldErrors,
    ) -> Option<&'v serde_json::Map<String, Value>> {
        let path = self.key_path(key);
        match self.raw(key)? {
            Value::Object(map) => Some(map),
            other => {
                errors.push(
                    path,
                    format!("expected a mapping of {of_what}, got {}", kind(other)),
                );
                None
            }
        }
    }

    /// An optional value; a present but malformed one is reported and read as absent.
    pub fn opt<T: FromValue>(&mut self, key: &'static str, errors: &mut FieldErrors) -> Option<T> {
        let path = self.key_path(key);
        self.raw(key).and_then(|v| T::from_value(v, &path, errors))
    }

    /// A required value; absence is reported.
    pub fn req<T: FromValue>(&mut self, key: &'static str, errors: &mut FieldErrors) -> Option<T> {
        if self.raw(key).is_none() {
            errors.push(self.key_path(key), "is required");
            return None;
        }
        self.opt(key, errors)
    }

    /// An optional value with a default used when the key is absent or malformed.
    pub fn or<T: FromValue>(
        &mut self,
        key: &'static str,
        default: T,
        errors: &mut FieldErrors,
    ) -> T {
        self.opt(key, errors).unwrap_or(default)
    }

    /// Reports every key that no `opt`/`req`/`raw` call asked for.
    pub fn finish(self, errors: &mut FieldErrors) {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.taken.contains(&k.as_str()))
            .collect();
        if unknown.is_empty() {
            return;
        }
        unknown.sort();
        let mut known = self.taken.clone();
        known.sort_unstable();
        known.dedup();
        let known = known.join(", ");
        for key in unknown {
            errors.push(
                join(&self.path, key),
                format!("unknown key (known keys here: {known})"),
            );
        }
    }
}

/// Short name of a JSON value's kind, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Reads one typed value out of a JSON value, reporting problems at `path`.
pub trait FromValue: Sized {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self>;
}

/// Numbers may come as strings (environment variables and CLI overrides are strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        match number(v) {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                errors.push(path, format!("expected a number, got {}", describe(v)));
                None
            }
        }
    }
}

impl FromValue for u64 {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        // Exactly, where the value is a whole number (or its text): through f64 a u64 past
        // 2^53 came back as another number (a pinned 64-bit seed drew another sequence).
        if let Some(x) = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            return Some(x);
        }
        match number(v) {
            Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => Some(x as u64),
            _ => {
                errors.push(
                    path,
                    format!("expected a whole number >= 0, got {}", describe(v)),
                );
                None
            }
        }
    }
}

impl FromValue for u32 {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let x = u64::from_value(v, path, errors)?;
        match u32::try_from(x) {
            Ok(x) => Some(x),
            Err(_) => {
                errors.push(path, format!("must be at most {}, got {x}", u32::MAX));
                None
            }
        }
    }
}

impl FromValue for u16 {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let x = u64::from_value(v, path, errors)?;
        match u16::try_from(x) {
            Ok(x) => Some(x),
            Err(_) => {
                errors.push(path, format!("must be at most {}, got {x}", u16::MAX));
                None
            }
        }
    }
}

impl FromValue for usize {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let x = u64::from_value(v, path, errors)?;
        match usize::try_from(x) {
            Ok(x) => Some(x),
            Err(_) => {
                errors.push(path, format!("must be at most {}, got {x}", usize::MAX));
                None
            }
        }
    }
}

impl FromValue for bool {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            other => {
                errors.push(
                    path,
                    format!("expected true or false, got {}", describe(other)),
                );
                None
            }
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                errors.push(path, format!("expected a string, got {}", describe(other)));
                None
            }
        }
    }
}

/// The name of an enum value (`model: open`, `strategy: locality_aware`, `type: load_test`).
/// Names are written in snake_case and read in any case (the spec writes `LOCALITY_AWARE`,
/// `COORDINATED`, `LOAD_TEST`, `ROUND_ROBIN`): every enum of a plan, a workload or the
/// settings is read through this one type, so every one accepts every case alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword(pub String);

impl std::ops::Deref for Keyword {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl FromValue for Keyword {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        match v {
            Value::String(s) => Some(Keyword(s.trim().to_ascii_lowercase())),
            other => {
                errors.push(path, format!("expected a name, got {}", describe(other)));
                None
            }
        }
    }
}

/// Durations: a number of seconds (`30`, `0.5`) or a string with a unit (`250ms`, `30s`, `5m`,
/// `1h`, `1m30s`).
impl FromValue for Duration {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let parsed = match v {
            Value::Number(n) => n.as_f64().and_then(seconds),
            Value::String(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            errors.push(
                path,
                format!(
                    "expected a duration (seconds, or a string like \"250ms\", \"30s\", \"5m\"), got {}",
                    describe(v)
                ),
            );
        }
        parsed
    }
}

/// A mapping of names to values (`resources: {gpu: 1}`).
impl<T: FromValue> FromValue for std::collections::BTreeMap<String, T> {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let Value::Object(map) = v else {
            errors.push(path, format!("expected a mapping, got {}", describe(v)));
            return None;
        };
        let before = errors.0.len();
        let out: std::collections::BTreeMap<String, T> = map
            .iter()
            .filter_map(|(k, item)| Some((k.clone(), T::from_value(item, &join(path, k), errors)?)))
            .collect();
        (errors.0.len() == before).then_some(out)
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let Value::Array(items) = v else {
            errors.push(path, format!("expected a list, got {}", describe(v)));
            return None;
        };
        let before = errors.0.len();
        let out: Vec<T> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| T::from_value(item, &format!("{path}[{i}]"), errors))
            .collect();
        (errors.0.len() == before).then_some(out)
    }
}

fn seconds(x: f64) -> Option<Duration> {
    // Beyond what a Duration holds is an error, not a panic.
    (x.is_finite() && x >= 0.0)
        .then(|| Duration::try_from_secs_f64(x).ok())
        .flatten()
}

/// Parses `"1.5"`, `"250ms"`, `"30s"`, `"5m"`, `"1h"` and sums such as `"1m30s"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(x) = s.parse::<f64>() {
        return seconds(x);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_end..];
    }
    seconds(total)
}

/// A value quoted for an error message, cut short when long.
pub fn describe(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=57).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// A required, non-empty list at `key` of at most `max` items (`noun`: "target", say; `example`
/// shows its form). Each problem is pushed, naming the key.
pub fn read_list<'v>(
    o: &mut Obj<'v>,
    key: &'static str,
    noun: &str,
    example: &str,
    max: usize,
    e: &mut FieldErrors,
) -> Option<&'v Vec<Value>> {
    let path = o.key_path(key);
    match o.raw(key) {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= max => Some(items),
        Some(Value::Array(items)) if items.is_empty() => {
            e.push(path, format!("must list at least one {noun}"));
            None
        }
        Some(Value::Array(items)) => {
            e.push(
                path,
                format!("lists {} {noun}s; at most {max}", items.len()),
            );
            None
        }
        None => {
            e.push(path, format!("is required: a list like {example}"));
            None
        }
        Some(other) => {
            e.push(
                path,
                format!("expected a list of {noun}s, got {}", kind(other)),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A 64-bit number (a seed) is read exactly, not through f64.
    #[test]
    fn whole_numbers_past_2_pow_53_are_exact() {
        let mut e = FieldErrors::default();
        let big = 9_307_846_775_626_449_086u64;
        assert_eq!(u64::from_value(&json!(big), "seed", &mut e), Some(big));
        assert_eq!(
            u64::from_value(&json!(big.to_string()), "seed", &mut e),
            Some(big)
        );
        assert_eq!(u64::from_value(&json!(3.0), "n", &mut e), Some(3));
        assert!(e.is_empty());
        assert_eq!(u64::from_value(&json!(-1), "n", &mut e), None);
    }

    #[test]
    fn durations_parse_in_every_form() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("-3s"), None);
        assert_eq!(parse_duration("3 parsecs"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let doc = json!({"a": "x", "b": -1, "c": {"d": true}, "zz": 1, "yy": 2});
        let mut errors = FieldErrors::default();
        let mut obj = Obj::new(&doc, "top", &mut errors).unwrap();
        let a: Option<u64> = obj.opt("a", &mut errors);
        let b: Option<u64> = obj.opt("b", &mut errors);
        let missing: Option<String> = obj.req("missing", &mut errors);
        let c = obj.raw("c").unwrap();
        let mut inner = Obj::new(c, &obj.key_path("c"), &mut errors).unwrap();
        let d: Option<bool> = inner.opt("d", &mut errors);
        inner.finish(&mut errors);
        obj.finish(&mut errors);
        assert_eq!((a, b, missing, d), (None, None, None, Some(true)));
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["top.a", "top.b", "top.missing", "top.yy", "top.zz"]
        );
        assert!(errors.0[3].message.contains("unknown key"), "{}", errors);
    }

    #[test]
    fn numbers_may_come_as_strings() {
        let mut errors = FieldErrors::default();
        assert_eq!(
            u16::from_value(&json!("8080"), "p", &mut errors),
            Some(8080)
        );
        assert_eq!(u16::from_value(&json!(70000), "p", &mut errors), None);
        assert_eq!(errors.0.len(), 1);
        assert!(errors.0[0].message.contains("at most 65535"));
    }

    /// The message says which way critical is off (it once said "above" for a critical below).
    #[test]
    fn critical_after_warning_says_which_way() {
        let low = critical_after_warning(10.0, 5.0, true).unwrap();
        assert!(low.starts_with("must not be below warning"), "{low}");
        let high = critical_after_warning(5.0, 10.0, false).unwrap();
        assert!(high.starts_with("must not be above warning"), "{high}");
        assert_eq!(critical_after_warning(5.0, 10.0, true), None);
        assert_eq!(critical_after_warning(10.0, 5.0, false), None);
        assert_eq!(critical_after_warning(7.0, 7.0, true), None);
    }
}
