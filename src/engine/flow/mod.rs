//! User flows (DESIGN §11): what a virtual user does per iteration, as the plan's reader
//! builds it and the cluster's wire carries it ([`Flow`]), and its run-time form, compiled
//! once per task on the node ([`CompiledFlow`]): templates ([`template`]), captures
//! ([`capture`]) and checks ([`check`]).
//!
//! The wire types are postcard-friendly: no flattened or internally tagged enums, no skipped
//! fields. In JSON (REST bodies, the store, reports) a [`DataSource`] shows its file, columns
//! and row count, never its rows.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::target::Target;

pub mod capture;
pub mod check;
pub mod compiled;
pub mod run;
pub mod template;

pub use capture::{CompiledCapture, Response, capture};
pub use check::{CheckFailure, CompiledCheck, check};
pub use compiled::{CompiledFlow, CompiledRequest, CompiledStep, RenderedRequest};
pub use template::{RenderError, Vars};

/// The names every flow defines: the virtual user's number, its iteration and the node's.
pub const BUILTINS: [&str; 3] = ["vu", "iteration", "node"];
/// The current element inside a `loop: {over: [...]}`.
pub const ITEM: &str = "item";

/// A load task's user flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// What each virtual user does per iteration, in order.
    pub steps: Vec<Step>,
    /// Run once per node before the load; their captures are seen by every user.
    pub before: Vec<Step>,
    /// The data sources, in the order the plan lists them.
    pub data: Vec<DataSource>,
    /// One cookie jar per virtual user.
    pub cookies: bool,
}

impl Flow {
    /// The targets of its request steps, in order: `before`'s, then `steps`'. A request
    /// step's index here is its target's in the task (`CompiledRequest::index`).
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        collect_targets(&self.before, &mut out);
        collect_targets(&self.steps, &mut out);
        out
    }

    /// The names of its groups, in order, each once.
    pub fn group_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_groups(&self.steps, &mut out);
        out
    }
}

fn collect_targets(steps: &[Step], out: &mut Vec<Target>) {
    for step in steps {
        match step {
            Step::Request(r) => out.push(r.target.clone()),
            Step::Think(_) => {}
            Step::Loop { steps, .. } | Step::Group { steps, .. } => collect_targets(steps, out),
        }
    }
}

fn collect_groups(steps: &[Step], out: &mut Vec<String>) {
    for step in steps {
        match step {
            Step::Request(_) | Step::Think(_) => {}
            Step::Loop { steps, .. } => collect_groups(steps, out),
            Step::Group { name, steps } => {
                if !out.contains(name) {
                    out.push(name.clone());
                }
                collect_groups(steps, out);
            }
        }
    }
}

/// A request step's target as the plan's reader builds it (any status accepted, no headers
/// nor body), for tests.
#[cfg(test)]
pub(crate) fn step_target(url: &str, method: &str, timeout: Duration) -> Target {
    use crate::engine::target::{ExpectedStatus, HttpVersion, Tls};
    Target {
        name: String::new(),
        url: url.parse().expect("a test URL"),
        method: method.into(),
        headers: Vec::new(),
        body: None,
        weight: 1,
        timeout,
        expected_status: ExpectedStatus::Codes((100..600).collect()),
        expected_response_time: None,
        follow_redirects: false,
        tls: Tls::default(),
        http_version: HttpVersion::Auto,
    }
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    Request(Box<RequestStep>),
    /// `think: 200ms`: a pause of the virtual user.
    Think(Duration),
    /// `loop: 3` or `loop: {over: [a, b]}`, with its `steps`.
    Loop {
        times: LoopTimes,
        steps: Vec<Step>,
    },
    /// `group: NAME`, with its `steps`.
    Group {
        name: String,
        steps: Vec<Step>,
    },
}

/// How many times a loop runs its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoopTimes {
    Count(u32),
    /// Once per element, the element in the variable [`ITEM`].
    Over(Vec<String>),
}

/// A request of a flow: its static parts in `target`, its templated parts beside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStep {
    /// The connection's parts, fixed when the plan is submitted: the step's name (its
    /// `name`, else `METHOD /path` of the path's template, without its query), the URL's
    /// origin (path `/`), the method, timeout, TLS, HTTP version and redirects; any status
    /// is accepted (the checks decide); no headers nor body (they are below).
    pub target: Target,
    /// The path and query, `/` at least.
    pub path: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Body>,
    pub captures: Vec<Capture>,
    pub checks: Vec<Check>,
}

/// A template's source (minijinja syntax, `{{ users.name }}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub source: String,
}

impl Template {
    pub fn new(source: impl Into<String>) -> Template {
        Template {
            source: source.into(),
        }
    }
}

/// A request's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A string body, sent as rendered.
    Text(Template),
    /// A mapping or a list, sent as JSON; its string leaves are templates whose rendered
    /// values are JSON-escaped.
    Json(JsonTemplate),
    /// `form: {k: v}`, sent URL-encoded.
    Form(Vec<(String, Template)>),
}

/// A JSON document whose strings are templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    /// A number, by its JSON text (postcard cannot carry `serde_json::Number`).
    Number(String),
    String(Template),
    Array(Vec<JsonTemplate>),
    /// Keys in the plan's order, literal.
    Object(Vec<(String, JsonTemplate)>),
}

/// `capture: {VAR: {...}}`: a value of the response kept in a variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub var: String,
    pub from: CaptureFrom,
}

/// Where a capture looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptureFrom {
    /// The first value a JSONPath finds in the body (a string as is, else its JSON text).
    Json(String),
    /// The first match of a regular expression in the body: its group 1, else all of it.
    Regex(String),
    /// A response header, by its name (any case).
    Header(String),
    /// The status code.
    Status,
}

/// One check of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check {
    /// `status: 200` or `[200, 201]`.
    Status(Vec<u16>),
    /// `json: {"$.path": expected}`: the first value found, as text, equals the rendered
    /// expected value.
    Json { path: String, expected: Template },
    /// `regex: {pattern: expected}`: the first match's group 1 (else all of it) equals it.
    Regex { pattern: String, expected: Template },
    /// `contains: text`: the body contains the rendered text.
    Contains(Template),
    /// `max_ms: 500`: the response took at most this long.
    MaxTime(Duration),
}

/// `data: {NAME: {file, order}}`: a table read when the plan is read, so nodes need no files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    pub name: String,
    /// The file as the plan named it, for messages and reports.
    pub file: String,
    pub order: Order,
    pub columns: Vec<String>,
    /// Each row has one cell per column.
    pub rows: Vec<Vec<String>>,
}

/// In which order virtual users take a data source's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Row after row, starting over at the end.
    Sequence,
    /// A row drawn at random each time.
    Random,
    /// Each row once, cluster-wide.
    Unique,
}

impl Order {
    pub const NAMES: [&'static str; 3] = ["sequence", "random", "unique"];

    pub fn from_name(name: &str) -> Option<Order> {
        Order::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| [Order::Sequence, Order::Random, Order::Unique][i])
    }
}

impl DataSource {
    /// The position of `column`.
    pub fn column(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }
}

/// [`DataSource`] on the cluster's wire: every field, in order.
#[derive(Serialize, Deserialize)]
#[serde(remote = "DataSource")]
struct WireDataSource {
    name: String,
    file: String,
    order: Order,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// [`DataSource`] in JSON: its rows counted, not shown.
#[derive(Serialize)]
struct JsonDataSource<'a> {
    name: &'a str,
    file: &'a str,
    order: Order,
    columns: &'a [String],
    rows: usize,
}

impl Serialize for DataSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            JsonDataSource {
                name: &self.name,
                file: &self.file,
                order: self.order,
                columns: &self.columns,
                rows: self.rows.len(),
            }
            .serialize(s)
        } else {
            WireDataSource::serialize(self, s)
        }
    }
}

/// Read back only from the wire: JSON does not carry the rows.
impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DataSource, D::Error> {
        if d.is_human_readable() {
            return Err(D::Error::custom(
                "a data source's rows are not carried in JSON; read the plan again",
            ));
        }
        WireDataSource::deserialize(d)
    }
}

#[cfg(test)]
mod tests;
