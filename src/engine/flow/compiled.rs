//! A [`Flow`] compiled once per task on the node: its templates in one environment, its
//! JSONPaths and regular expressions parsed, its data sources shared by the virtual users.

use std::sync::Arc;
use std::time::Duration;

use minijinja::Environment;
use url::{Position, Url};

use super::capture::CompiledCapture;
use super::check::{CheckFailure, CompiledCheck};
use super::template::{self, JsonTpl, RenderError, Tpl, Vars};
use super::{Body, CaptureFrom, Check, DataSource, Flow, JsonTemplate, LoopTimes, RequestStep};
use super::{Step, Template};
use crate::engine::target::Target;

/// A flow ready to run.
#[derive(Debug)]
pub struct CompiledFlow {
    pub steps: Vec<CompiledStep>,
    pub before: Vec<CompiledStep>,
    pub data: Vec<Arc<DataSource>>,
    pub cookies: bool,
}

#[derive(Debug)]
pub enum CompiledStep {
    Request(Box<CompiledRequest>),
    Think(Duration),
    Loop {
        times: LoopTimes,
        steps: Vec<CompiledStep>,
    },
    Group {
        name: String,
        steps: Vec<CompiledStep>,
    },
}

/// A request step: its static parts, and its templates compiled.
#[derive(Debug)]
pub struct CompiledRequest {
    pub name: String,
    /// Its target's index in the task's targets (`Flow::targets`).
    pub index: usize,
    pub target: Target,
    path: Tpl,
    /// The path and query when they hold no template: worked out once.
    fixed_path: Option<String>,
    headers: Vec<(String, Tpl)>,
    body: Option<CompiledBody>,
    pub captures: Vec<CompiledCapture>,
    pub checks: Vec<CompiledCheck>,
    reads_json: bool,
}

#[derive(Debug)]
enum CompiledBody {
    Text(Tpl),
    Json(JsonTpl),
    Form(Vec<(String, Tpl)>),
}

/// The run-time parts of one request, rendered for one virtual user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedRequest {
    /// Path and query, percent-encoded where needed (`/items/3?q=a%20b`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl CompiledFlow {
    /// Compiles every template, JSONPath and regular expression of `flow`; the plan's reader
    /// checked them, so an error here means the flow did not come from it.
    pub fn new(flow: &Flow) -> Result<CompiledFlow, String> {
        let mut env = template::environment();
        add_templates(&flow.before, &mut env)?;
        add_templates(&flow.steps, &mut env)?;
        let env = Arc::new(env);
        // Request steps are numbered as `Flow::targets` lists them: `before`, then `steps`.
        let mut index = 0;
        let before = compile_steps(&flow.before, &env, &mut index)?;
        Ok(CompiledFlow {
            steps: compile_steps(&flow.steps, &env, &mut index)?,
            before,
            data: flow.data.iter().cloned().map(Arc::new).collect(),
            cookies: flow.cookies,
        })
    }

    /// The data source named `name`.
    pub fn data_source(&self, name: &str) -> Option<&Arc<DataSource>> {
        self.data.iter().find(|d| d.name == name)
    }
}

/// The templates of a request step: path, headers, body, and the checks' expected values.
fn templates(r: &RequestStep) -> Vec<&Template> {
    let mut out = vec![&r.path];
    out.extend(r.headers.iter().map(|(_, t)| t));
    match &r.body {
        Some(Body::Text(t)) => out.push(t),
        Some(Body::Json(json)) => json_templates(json, &mut out),
        Some(Body::Form(fields)) => out.extend(fields.iter().map(|(_, t)| t)),
        None => {}
    }
    for c in &r.checks {
        match c {
            Check::Json { expected, .. } | Check::Regex { expected, .. } => out.push(expected),
            Check::Contains(t) => out.push(t),
            Check::Status(_) | Check::MaxTime(_) => {}
        }
    }
    out
}

fn json_templates<'a>(json: &'a JsonTemplate, out: &mut Vec<&'a Template>) {
    match json {
        JsonTemplate::String(t) => out.push(t),
        JsonTemplate::Array(items) => items.iter().for_each(|i| json_templates(i, out)),
        JsonTemplate::Object(fields) => fields.iter().for_each(|(_, v)| json_templates(v, out)),
        JsonTemplate::Null | JsonTemplate::Bool(_) | JsonTemplate::Number(_) => {}
    }
}

fn add_templates(steps: &[Step], env: &mut Environment<'static>) -> Result<(), String> {
    for step in steps {
        match step {
            Step::Request(r) => {
                for t in templates(r) {
                    template::add(env, t)?;
                }
            }
            Step::Think(_) => {}
            Step::Loop { steps, .. } | Step::Group { steps, .. } => add_templates(steps, env)?,
        }
    }
    Ok(())
}

fn compile_steps(
    steps: &[Step],
    env: &Arc<Environment<'static>>,
    index: &mut usize,
) -> Result<Vec<CompiledStep>, String> {
    steps
        .iter()
        .map(|step| {
            Ok(match step {
                Step::Request(r) => {
                    let mut compiled = CompiledRequest::new(r, env)?;
                    compiled.index = *index;
                    *index += 1;
                    CompiledStep::Request(Box::new(compiled))
                }
                Step::Think(d) => CompiledStep::Think(*d),
                Step::Loop { times, steps } => CompiledStep::Loop {
                    times: times.clone(),
                    steps: compile_steps(steps, env, index)?,
                },
                Step::Group { name, steps } => CompiledStep::Group {
                    name: name.clone(),
                    steps: compile_steps(steps, env, index)?,
                },
            })
        })
        .collect()
}

fn compile_pairs(
    pairs: &[(String, Template)],
    env: &Arc<Environment<'static>>,
) -> Result<Vec<(String, Tpl)>, String> {
    pairs
        .iter()
        .map(|(k, t)| Ok((k.clone(), Tpl::new(env, t)?)))
        .collect()
}

impl CompiledRequest {
    fn new(r: &RequestStep, env: &Arc<Environment<'static>>) -> Result<CompiledRequest, String> {
        let body = match &r.body {
            None => None,
            Some(Body::Text(t)) => Some(CompiledBody::Text(Tpl::new(env, t)?)),
            Some(Body::Json(json)) => Some(CompiledBody::Json(JsonTpl::new(env, json)?)),
            Some(Body::Form(fields)) => Some(CompiledBody::Form(compile_pairs(fields, env)?)),
        };
        let captures: Vec<CompiledCapture> = r
            .captures
            .iter()
            .map(CompiledCapture::new)
            .collect::<Result<_, _>>()?;
        let checks: Vec<CompiledCheck> = r
            .checks
            .iter()
            .map(|c| CompiledCheck::new(c, env))
            .collect::<Result<_, _>>()?;
        let reads_json = r
            .captures
            .iter()
            .any(|c| matches!(c.from, CaptureFrom::Json(_)))
            || checks.iter().any(CompiledCheck::reads_json);
        Ok(CompiledRequest {
            index: 0,
            name: r.target.name.clone(),
            target: r.target.clone(),
            path: Tpl::new(env, &r.path)?,
            fixed_path: template::is_literal(&r.path.source)
                .then(|| path_and_query(&r.target.url, &r.path.source)),
            headers: compile_pairs(&r.headers, env)?,
            body,
            captures,
            checks,
            reads_json,
        })
    }

    /// What of the response its captures and checks read; headers too when the user keeps
    /// cookies.
    pub fn keep(&self, cookies: bool) -> crate::engine::http::Keep {
        crate::engine::http::Keep {
            headers: self.captures.iter().any(CompiledCapture::reads_headers),
            set_cookie: cookies,
            body: self.captures.iter().any(CompiledCapture::reads_body)
                || self.checks.iter().any(CompiledCheck::reads_body),
        }
    }

    /// Whether a check of the step judges the status.
    pub fn judges_status(&self) -> bool {
        self.checks.iter().any(CompiledCheck::is_status)
    }

    /// Whether a capture or a check of this step reads the body as JSON.
    pub fn reads_json(&self) -> bool {
        self.reads_json
    }

    /// The path, headers and body for one virtual user.
    pub fn render(&self, vars: &Vars) -> Result<RenderedRequest, RenderError> {
        Ok(RenderedRequest {
            path: self.render_path(vars)?,
            headers: self.render_headers(vars)?,
            body: self.render_body(vars)?,
        })
    }

    /// The path and query (a fragment is dropped), percent-encoded where needed; it never
    /// changes the target's scheme, host or port.
    pub fn render_path(&self, vars: &Vars) -> Result<String, RenderError> {
        if let Some(fixed) = &self.fixed_path {
            return Ok(fixed.clone());
        }
        let rendered = self.path.render(vars)?;
        Ok(path_and_query(&self.target.url, &rendered))
    }

    /// The headers, each a valid header value.
    pub fn render_headers(&self, vars: &Vars) -> Result<Vec<(String, String)>, RenderError> {
        self.headers
            .iter()
            .map(|(name, t)| {
                let value = t.render(vars)?.into_owned();
                if http::HeaderValue::from_str(&value).is_err() {
                    return Err(RenderError {
                        template: template::cut(&value),
                        message: format!("is not a valid value for header {name}"),
                    });
                }
                Ok((name.clone(), value))
            })
            .collect()
    }

    /// The body: text as rendered, JSON with its strings escaped, a form URL-encoded.
    pub fn render_body(&self, vars: &Vars) -> Result<Option<String>, RenderError> {
        Ok(match &self.body {
            None => None,
            Some(CompiledBody::Text(t)) => Some(t.render(vars)?.into_owned()),
            Some(CompiledBody::Json(json)) => {
                let mut out = String::new();
                json.render(vars, &mut out)?;
                Some(out)
            }
            Some(CompiledBody::Form(fields)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, t) in fields {
                    form.append_pair(k, &t.render(vars)?);
                }
                Some(form.finish())
            }
        })
    }

    /// Runs every check of the step; the failures, in the step's order.
    pub fn failed_checks(
        &self,
        r: &super::Response<'_>,
        elapsed: Duration,
        vars: &Vars,
    ) -> Vec<CheckFailure> {
        self.checks
            .iter()
            .filter_map(|c| super::check(c, r, elapsed, vars).err())
            .collect()
    }
}

/// `rendered` (a path, maybe with a query and a fragment) on `origin`: the path and query.
fn path_and_query(origin: &Url, rendered: &str) -> String {
    let rendered = rendered.split('#').next().unwrap_or_default();
    let (path, query) = match rendered.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rendered, None),
    };
    let mut url = origin.clone();
    url.set_path(path);
    url.set_query(query);
    url[Position::BeforePath..Position::AfterQuery].to_string()
}
