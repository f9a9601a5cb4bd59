//! The templates of a flow (`{{ users.name }}`, `Bearer {{ token }}`), on minijinja: one
//! [`Environment`] per flow, each template added once when the flow is compiled and rendered
//! per request with the virtual user's [`Vars`]. A template without template syntax is a
//! literal and never reaches the engine.
//!
//! Rendering is strict (an undefined variable is an error, not an empty string), never
//! HTML-escaped, keeps a trailing newline, and is bounded by fuel (a plan's template cannot
//! loop for ever on a node).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Enumerator, Object};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::{DataSource, JsonTemplate, Template};

/// The work one render may do (minijinja's fuel: about one unit per instruction).
pub const RENDER_FUEL: u64 = 100_000;

/// A flow's environment, before its templates are added.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // The default delimiters always build; a test holds the trailing newline.
    if let Ok(syntax) = SyntaxConfig::builder().keep_trailing_newline(true).build() {
        env.set_syntax(syntax);
    }
    env.set_fuel(Some(RENDER_FUEL));
    env
}

/// Whether `source` is plain text (no `{{`, `{%` nor `{#`).
pub fn is_literal(source: &str) -> bool {
    !(source.contains("{{") || source.contains("{%") || source.contains("{#"))
}

/// The variables `source` reads, with their attribute lookups (`users.name`, `token`), or
/// why it is not a valid template. The engine's globals (`range`, `dict`, ...) are left out.
pub fn variables(source: &str) -> Result<BTreeSet<String>, String> {
    static ENV: LazyLock<Environment<'static>> = LazyLock::new(environment);
    if is_literal(source) {
        return Ok(BTreeSet::new());
    }
    let template = ENV.template_from_str(source).map_err(|e| e.to_string())?;
    let globals: BTreeSet<&str> = ENV.globals().map(|(name, _)| name).collect();
    Ok(template
        .undeclared_variables(true)
        .into_iter()
        .filter(|v| !globals.contains(v.split('.').next().unwrap_or(v)))
        .collect())
}

/// Adds `template` to `env` (by its source, so a template used twice is compiled once).
pub(crate) fn add(env: &mut Environment<'static>, template: &Template) -> Result<(), String> {
    if is_literal(&template.source) || env.get_template(&template.source).is_ok() {
        return Ok(());
    }
    env.add_template_owned(template.source.clone(), template.source.clone())
        .map_err(|e| format!("template {:?}: {e}", cut(&template.source)))
}

/// A template ready to render: a literal, or a template of the flow's environment.
#[derive(Debug, Clone)]
pub(crate) enum Tpl {
    Literal(String),
    Jinja {
        env: Arc<Environment<'static>>,
        name: String,
    },
}

impl Tpl {
    /// `template` of `env`, which [`add`] was given.
    pub(crate) fn new(env: &Arc<Environment<'static>>, template: &Template) -> Result<Tpl, String> {
        if is_literal(&template.source) {
            return Ok(Tpl::Literal(template.source.clone()));
        }
        env.get_template(&template.source)
            .map_err(|e| format!("template {:?}: {e}", cut(&template.source)))?;
        Ok(Tpl::Jinja {
            env: Arc::clone(env),
            name: template.source.clone(),
        })
    }

    pub(crate) fn render(&self, vars: &Vars) -> Result<Cow<'_, str>, RenderError> {
        match self {
            Tpl::Literal(text) => Ok(Cow::Borrowed(text)),
            Tpl::Jinja { env, name } => env
                .get_template(name)
                .and_then(|t| t.render(vars.value()))
                .map(Cow::Owned)
                .map_err(|e| RenderError {
                    template: cut(name),
                    message: e.to_string(),
                }),
        }
    }
}

/// A template that could not be rendered (an undefined variable, a filter's error, no fuel
/// left).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render {template:?}: {message}")]
pub struct RenderError {
    /// The template's source, cut short when long.
    pub template: String,
    pub message: String,
}

/// `s` cut to 80 characters for a message.
pub(crate) fn cut(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

/// A virtual user's variables: captures, data rows, `vu`, `iteration`, `node`, `item`.
/// Cloning is cheap (the map is shared until written).
#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: Arc<BTreeMap<String, Value>>,
}

impl Vars {
    pub fn new() -> Vars {
        Vars::default()
    }

    fn put(&mut self, name: &str, value: Value) {
        let map = Arc::make_mut(&mut self.map);
        match map.get_mut(name) {
            Some(slot) => *slot = value,
            None => {
                map.insert(name.to_string(), value);
            }
        }
    }

    /// A string: a capture, the `item` of a loop.
    pub fn set_str(&mut self, name: &str, value: &str) {
        self.put(name, Value::from(value));
    }

    /// A counter: `vu`, `iteration`, `node`.
    pub fn set_u64(&mut self, name: &str, value: u64) {
        self.put(name, Value::from(value));
    }

    /// A JSON value, objects and lists included.
    pub fn set_json(&mut self, name: &str, value: &serde_json::Value) {
        self.put(name, from_json(value));
    }

    /// Row `row` of `source`, under the source's name, its cells by column
    /// (`{{ users.name }}`).
    pub fn set_row(&mut self, source: &Arc<DataSource>, row: usize) {
        let value = Value::from_object(Row {
            source: Arc::clone(source),
            row,
        });
        self.put(&source.name, value);
    }

    pub fn remove(&mut self, name: &str) {
        if self.map.contains_key(name) {
            Arc::make_mut(&mut self.map).remove(name);
        }
    }

    /// A variable as a template shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        self.map.get(name).map(|v| v.to_string())
    }

    /// The render context: the map itself, shared.
    fn value(&self) -> Value {
        Value::from_dyn_object(Arc::clone(&self.map))
    }
}

fn from_json(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (_, Some(i), _) => Value::from(i),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::from(n.to_string()),
        },
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => Value::from(items.iter().map(from_json).collect::<Vec<_>>()),
        J::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), from_json(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// One row of a data source, its cells looked up by column name, not copied.
struct Row {
    source: Arc<DataSource>,
    row: usize,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Row({}[{}])", self.source.name, self.row)
    }
}

impl Object for Row {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let column = self.source.column(key.as_str()?)?;
        let cell = self.source.rows.get(self.row)?.get(column)?;
        Some(Value::from(cell.as_str()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.source
                .columns
                .iter()
                .map(|c| Value::from(c.as_str()))
                .collect(),
        )
    }
}

/// A JSON body ready to render: subtrees without templates are serialized once.
#[derive(Debug, Clone)]
pub(crate) enum JsonTpl {
    /// JSON text, written as is.
    Literal(String),
    /// A string leaf: rendered, then JSON-escaped.
    String(Tpl),
    Array(Vec<JsonTpl>),
    /// Keys as JSON strings (quoted and escaped).
    Object(Vec<(String, JsonTpl)>),
}

impl JsonTpl {
    pub(crate) fn new(
        env: &Arc<Environment<'static>>,
        json: &JsonTemplate,
    ) -> Result<JsonTpl, String> {
        if !has_template(json) {
            let mut text = String::new();
            write_literal(json, &mut text);
            return Ok(JsonTpl::Literal(text));
        }
        Ok(match json {
            JsonTemplate::String(t) => JsonTpl::String(Tpl::new(env, t)?),
            JsonTemplate::Array(items) => JsonTpl::Array(
                items
                    .iter()
                    .map(|i| JsonTpl::new(env, i))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(fields) => JsonTpl::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((json_string(k), JsonTpl::new(env, v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            scalar => {
                let mut text = String::new();
                write_literal(scalar, &mut text);
                JsonTpl::Literal(text)
            }
        })
    }

    pub(crate) fn render(&self, vars: &Vars, out: &mut String) -> Result<(), RenderError> {
        match self {
            JsonTpl::Literal(text) => out.push_str(text),
            JsonTpl::String(t) => out.push_str(&json_string(&t.render(vars)?)),
            JsonTpl::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render(vars, out)?;
                }
                out.push(']');
            }
            JsonTpl::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(key);
                    out.push(':');
                    value.render(vars, out)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }
}

/// `s` as a JSON string.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Whether a string of `json` is a template.
fn has_template(json: &JsonTemplate) -> bool {
    match json {
        JsonTemplate::String(t) => !is_literal(&t.source),
        JsonTemplate::Array(items) => items.iter().any(has_template),
        JsonTemplate::Object(fields) => fields.iter().any(|(_, v)| has_template(v)),
        JsonTemplate::Null | JsonTemplate::Bool(_) | JsonTemplate::Number(_) => false,
    }
}

/// Writes `json` as JSON text, its strings as written (templates or not), its keys in order.
fn write_literal(json: &JsonTemplate, out: &mut String) {
    match json {
        JsonTemplate::Null => out.push_str("null"),
        JsonTemplate::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsonTemplate::Number(n) => out.push_str(n),
        JsonTemplate::String(t) => out.push_str(&json_string(&t.source)),
        JsonTemplate::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_literal(item, out);
            }
            out.push(']');
        }
        JsonTemplate::Object(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(key));
                out.push(':');
                write_literal(value, out);
            }
            out.push('}');
        }
    }
}
