//! Captures: a value of a response kept in a variable for the next steps. A JSONPath (the
//! first value found: a string as is, anything else as its JSON text), a regular expression
//! over the body (its group 1, else the whole match), a header, or the status. A capture that
//! finds nothing returns `None` (the runner fails the step).

use std::cell::OnceCell;

use serde_json_path::JsonPath;

use super::{Capture, CaptureFrom};

/// A response as captures and checks see it. The body is parsed as JSON at most once, and
/// only when a JSONPath capture or check asks.
pub struct Response<'a> {
    pub status: u16,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    json: OnceCell<Option<serde_json::Value>>,
}

impl<'a> Response<'a> {
    pub fn new(status: u16, headers: &'a [(String, String)], body: &'a [u8]) -> Response<'a> {
        Response {
            status,
            headers,
            body,
            json: OnceCell::new(),
        }
    }

    /// The body as JSON, `None` when it is not JSON.
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }

    /// Whether the body was parsed as JSON (for tests of laziness).
    pub fn json_parsed(&self) -> bool {
        self.json.get().is_some()
    }

    /// The first header named `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A capture with its JSONPath or regular expression parsed.
#[derive(Debug, Clone)]
pub struct CompiledCapture {
    pub var: String,
    from: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Json(JsonPath),
    Regex(regex::bytes::Regex),
    Header(String),
    Status,
}

impl CompiledCapture {
    pub fn new(c: &Capture) -> Result<CompiledCapture, String> {
        let from = match &c.from {
            CaptureFrom::Json(path) => Source::Json(json_path(path)?),
            CaptureFrom::Regex(pattern) => Source::Regex(regex(pattern)?),
            CaptureFrom::Header(name) => Source::Header(name.clone()),
            CaptureFrom::Status => Source::Status,
        };
        Ok(CompiledCapture {
            var: c.var.clone(),
            from,
        })
    }
}

impl CompiledCapture {
    /// Whether it reads the body (a JSONPath or a regular expression).
    pub fn reads_body(&self) -> bool {
        matches!(self.from, Source::Json(_) | Source::Regex(_))
    }

    /// Whether it reads a header.
    pub fn reads_headers(&self) -> bool {
        matches!(self.from, Source::Header(_))
    }

    /// Where it looks, for the failures table: `json $.token`, `header x-token`.
    pub fn describe(&self) -> String {
        match &self.from {
            Source::Json(path) => format!("json {path}"),
            Source::Regex(re) => format!("regex {}", re.as_str()),
            Source::Header(name) => format!("header {name}"),
            Source::Status => "status".into(),
        }
    }
}

/// Parses a JSONPath, saying what is wrong.
pub fn json_path(path: &str) -> Result<JsonPath, String> {
    JsonPath::parse(path).map_err(|e| format!("{path:?} is not a valid JSONPath: {e}"))
}

/// Parses a regular expression over bytes, saying what is wrong.
pub fn regex(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(pattern)
        .map_err(|e| format!("{pattern:?} is not a valid regular expression: {e}"))
}

/// The value `c` takes from `r`, `None` when there is none.
pub fn capture(c: &CompiledCapture, r: &Response<'_>) -> Option<String> {
    match &c.from {
        Source::Json(path) => first_json(path, r),
        Source::Regex(re) => first_match(re, r.body),
        Source::Header(name) => r.header(name).map(str::to_string),
        Source::Status => Some(r.status.to_string()),
    }
}

/// The first value `path` finds in the body, as text: `None` when the body is not JSON or
/// the path finds nothing.
pub(crate) fn first_json(path: &JsonPath, r: &Response<'_>) -> Option<String> {
    path.query(r.json()?).first().map(json_text)
}

/// A JSON value as text: a string as is, anything else as its JSON text.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first match of `re` in `body`: its group 1 when it has one that took part, else the
/// whole match.
pub(crate) fn first_match(re: &regex::bytes::Regex, body: &[u8]) -> Option<String> {
    let caps = re.captures(body)?;
    let m = caps.get(1).or_else(|| caps.get(0))?;
    Some(String::from_utf8_lossy(m.as_bytes()).into_owned())
}
