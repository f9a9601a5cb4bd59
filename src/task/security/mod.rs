//! Security scanning (`security_test` tasks): probes a target's endpoints for reflected XSS,
//! SQL injection, CSRF, missing security headers and open redirects, and reports findings
//! with evidence and remediation.
//!
//! Each check is a module with two pure functions: `probes(endpoint, depth)` says which
//! requests to send, `judge(probe, baseline, exchanges)` reads the answers. Only
//! [`scan`](scan::scan) sends anything: rate-limited, one request at a time, every URL
//! checked against the allowlist first, redirects never followed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

pub mod csrf;
pub mod distribute;
pub mod exec;
pub mod headers;
pub mod mcp;
pub mod node;
pub mod redirect;
pub mod report;
pub mod scan;
pub mod spec;
pub mod sqli;
pub mod verdict;
pub mod xss;

/// The kinds of check a scan can run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScanType {
    Xss,
    SqlInjection,
    Csrf,
    Headers,
    OpenRedirect,
}

impl ScanType {
    pub const ALL: [ScanType; 5] = [
        ScanType::Xss,
        ScanType::SqlInjection,
        ScanType::Csrf,
        ScanType::Headers,
        ScanType::OpenRedirect,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScanType::Xss => "xss",
            ScanType::SqlInjection => "sql_injection",
            ScanType::Csrf => "csrf",
            ScanType::Headers => "headers",
            ScanType::OpenRedirect => "open_redirect",
        }
    }

    pub fn from_name(name: &str) -> Option<ScanType> {
        ScanType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for ScanType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// `quick`: one or two payloads per parameter and check; `deep`: more contexts and the
/// time-based SQL injection probes (which wait seconds each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Depth {
    #[default]
    Quick,
    Deep,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Most severe first.
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One parameter of an endpoint and the harmless value it takes when not probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// The value a parameter takes when the spec gives none: numeric, so it fits both text and
/// number contexts.
pub const DEFAULT_PARAM_VALUE: &str = "1";

/// A path of the target, the method to use and the parameters to probe (in the query for
/// GET, HEAD and DELETE, in a form body otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub path: String,
    pub method: String,
    pub params: Vec<Param>,
}

impl Endpoint {
    /// Whether this endpoint changes state (what CSRF protects).
    pub fn state_changing(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE")
    }

    fn params_in_body(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS")
    }

    /// The parameters with their harmless values.
    pub fn baseline_values(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    }

    /// The harmless values with `name` set to `value`.
    pub fn with_value(&self, name: &str, value: &str) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|p| {
                let v = if p.name == name { value } else { &p.value };
                (p.name.clone(), v.to_string())
            })
            .collect()
    }
}

/// A validated `security_test` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanSpec {
    pub target: Url,
    pub endpoints: Vec<Endpoint>,
    pub scan_types: Vec<ScanType>,
    pub depth: Depth,
    /// Requests per second at most (a token bucket).
    pub rate_limit_rps: f64,
    /// Per request; time-based probes get at least their sleep plus a margin.
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// A finding of this severity or worse fails the task (`None`: `fail_on: none`).
    pub fail_on: Option<Severity>,
    /// Its thresholds over its counters (`findings`, `requests_sent`, ...), judged at its end.
    pub thresholds: Vec<crate::stats::thresholds::Threshold>,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl ScanSpec {
    pub fn runs(&self, t: ScanType) -> bool {
        self.scan_types.contains(&t)
    }
}

/// A request as sent (or as it would have been).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SentRequest {
    pub method: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub body: Option<String>,
    /// Extra headers the probe set (the cross-site `Origin` of a CSRF probe).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub headers: Vec<(String, String)>,
}

/// Builds the request for `endpoint` with these parameter values. Pure: the runner sends it,
/// the checks quote it as evidence.
pub fn build_request(
    target: &Url,
    endpoint: &Endpoint,
    values: &[(String, String)],
    headers: &[(String, String)],
) -> Result<SentRequest, url::ParseError> {
    let mut url = target.join(&endpoint.path)?;
    let mut body = None;
    if !values.is_empty() {
        if endpoint.params_in_body() {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(values);
            body = Some(form.finish());
        } else {
            url.query_pairs_mut().extend_pairs(values);
        }
    }
    Ok(SentRequest {
        method: endpoint.method.clone(),
        url: url.to_string(),
        body,
        headers: headers.to_vec(),
    })
}

/// A response as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    /// Lower-case names, in order; repeated headers (`set-cookie`) repeat.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy), cut at the runner's read limit.
    pub body: String,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

impl Response {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
}

/// One request and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub request: SentRequest,
    pub response: Response,
}

/// Where a finding shows: the request and a short excerpt of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    pub request: SentRequest,
    pub response_status: u16,
    /// At most [`EXCERPT_CHARS`] characters around what gave the flaw away.
    pub excerpt: String,
}

pub const EXCERPT_CHARS: usize = 300;

impl Evidence {
    /// Evidence from an exchange, the excerpt centred on `needle` (or the start of the body).
    pub fn around(x: &Exchange, needle: &str) -> Evidence {
        Evidence {
            request: x.request.clone(),
            response_status: x.response.status,
            excerpt: excerpt(&x.response.body, needle),
        }
    }

    /// Evidence whose excerpt is a text of the check's own (headers, timings).
    pub fn noting(x: &Exchange, note: impl Into<String>) -> Evidence {
        let mut note: String = note.into();
        if note.chars().count() > EXCERPT_CHARS {
            note = note.chars().take(EXCERPT_CHARS).collect();
        }
        Evidence {
            request: x.request.clone(),
            response_status: x.response.status,
            excerpt: note,
        }
    }
}

/// At most [`EXCERPT_CHARS`] characters of `text` around the first `needle` (the start when
/// absent), on character boundaries.
pub fn excerpt(text: &str, needle: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= EXCERPT_CHARS {
        return text.to_string();
    }
    let at = if needle.is_empty() {
        None
    } else {
        text.find(needle)
    };
    let start_char = match at {
        None => 0,
        Some(byte) => {
            let centre = text[..byte].chars().count() + needle.chars().count() / 2;
            centre
                .saturating_sub(EXCERPT_CHARS / 2)
                .min(chars.len() - EXCERPT_CHARS)
        }
    };
    chars[start_char..start_char + EXCERPT_CHARS]
        .iter()
        .collect()
}

/// A flaw found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub scan_type: ScanType,
    pub severity: Severity,
    /// `METHOD path`.
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parameter: Option<String>,
    pub title: String,
    pub evidence: Evidence,
    pub remediation: String,
}

impl Finding {
    /// Findings with the same key say the same thing; the scan keeps the first.
    pub fn key(&self) -> (ScanType, String, Option<String>, String) {
        (
            self.scan_type,
            self.endpoint.clone(),
            self.parameter.clone(),
            self.title.clone(),
        )
    }
}

pub fn endpoint_label(e: &Endpoint) -> String {
    format!("{} {}", e.method, e.path)
}

/// What a check wants sent: one or more requests (a boolean SQL injection probe needs a true
/// and a false one), judged together.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub scan_type: ScanType,
    pub parameter: Option<String>,
    pub technique: Technique,
    pub requests: Vec<ProbeRequest>,
}

/// One request of a probe: every parameter's value and extra headers.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRequest {
    pub values: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// At least this timeout (a time-based probe must outlive its sleep).
    pub min_timeout: Option<Duration>,
}

impl ProbeRequest {
    pub fn values(values: Vec<(String, String)>) -> ProbeRequest {
        ProbeRequest {
            values,
            headers: Vec::new(),
            min_timeout: None,
        }
    }
}

/// How a probe tests for its flaw; the judge reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Technique {
    /// The payload must come back unescaped in an HTML answer.
    XssReflected { payload: String },
    /// A database error text appears that the baseline lacks.
    SqlError { payload: String },
    /// The true condition answers like the baseline, the false one differently.
    SqlBoolean {
        when_true: String,
        when_false: String,
    },
    /// The sleep payload is slower than the baseline by a margin; the zero-sleep one is not.
    SqlTime {
        sleep: Duration,
        payload: String,
        margin: Duration,
    },
    /// A state-changing request without a token, from a foreign origin, is accepted.
    CsrfNoToken,
    /// A redirect to the probe host.
    OpenRedirect { payload: String, host: String },
}

/// The findings of a scan and what it sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanReport {
    pub findings: Vec<Finding>,
    /// Requests that left for the target.
    pub requests_sent: u64,
    /// Requests not sent because their address is outside the allowlist.
    pub requests_refused: u64,
    /// Requests sent that got no answer (connect failure, timeout, unreadable body).
    pub request_errors: u64,
    /// Redirects whose `Location` is outside the allowlist (never followed; no redirect is).
    pub offsite_redirects: u64,
    /// Findings per scan type (every type run appears, with 0 when clean).
    pub by_type: BTreeMap<ScanType, u64>,
    /// Distinct reasons requests were refused or failed, the first few.
    pub notes: Vec<String>,
    pub duration_s: f64,
    /// A distributed scan: each node's slice (empty for a scan on one node's own).
    #[serde(default)]
    pub nodes: Vec<distribute::ScanNode>,
    /// Nodes lost before their slice's report came: their endpoints were not scanned.
    #[serde(default)]
    pub nodes_lost: Vec<String>,
    /// The task's `fail_on`: a finding this severe or worse failed it (`null`: `none`, or a
    /// report stored before it was added).
    #[serde(default)]
    pub fail_on: Option<Severity>,
}

impl ScanReport {
    /// Findings as a text table (severity, type, endpoint, parameter, title).
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<9} {:<14} {:<22} {:<24} title",
            "severity", "type", "endpoint", "parameter"
        );
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{:<9} {:<14} {:<22} {:<24} {}",
                f.severity,
                f.scan_type,
                f.endpoint,
                f.parameter.as_deref().unwrap_or("-"),
                f.title
            );
        }
        out
    }
}

/// Whether two answers look alike: same status, and bodies that share most of their lines
/// once the values sent (which a page may echo) are blanked out.
pub fn similar(a: &Response, b: &Response, echoed: &[&str]) -> bool {
    if a.status != b.status {
        return false;
    }
    let clean = |s: &str| {
        let mut s = s.to_string();
        for e in echoed.iter().filter(|e| !e.is_empty()) {
            s = s.replace(e, "");
        }
        s
    };
    let (x, y) = (clean(&a.body), clean(&b.body));
    if x == y {
        return true;
    }
    let lines_x: Vec<&str> = x.lines().collect();
    let lines_y: Vec<&str> = y.lines().collect();
    let shared = lines_x.iter().filter(|l| lines_y.contains(l)).count();
    let most = lines_x.len().max(lines_y.len()).max(1);
    // One-line pages that differ are different pages.
    most > 1 && shared * 100 / most >= 90
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(method: &str, params: &[&str]) -> Endpoint {
        Endpoint {
            path: "/p".into(),
            method: method.into(),
            params: params
                .iter()
                .map(|n| Param {
                    name: n.to_string(),
                    value: "1".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn requests_put_parameters_in_the_query_or_a_form() {
        let target = Url::parse("http://127.0.0.1:8/app/").unwrap();
        let get = build_request(
            &target,
            &ep("GET", &["q"]),
            &[("q".into(), "<a b>".into())],
            &[],
        )
        .unwrap();
        assert_eq!(get.url, "http://127.0.0.1:8/p?q=%3Ca+b%3E");
        assert_eq!(get.body, None);
        let post = build_request(
            &target,
            &ep("POST", &["to", "n"]),
            &[("to".into(), "x&y".into()), ("n".into(), "1".into())],
            &[],
        )
        .unwrap();
        assert_eq!(post.url, "http://127.0.0.1:8/p");
        assert_eq!(post.body.as_deref(), Some("to=x%26y&n=1"));
    }

    #[test]
    fn excerpts_are_short_and_centred() {
        let long = format!("{}NEEDLE{}", "a".repeat(1000), "é".repeat(1000));
        let e = excerpt(&long, "NEEDLE");
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.contains("NEEDLE"));
        assert_eq!(excerpt("short", "x"), "short");
        let start = excerpt(&long, "absent");
        assert!(start.starts_with("aaa"));
        let end = excerpt(&format!("{}END", "b".repeat(1000)), "END");
        assert!(end.ends_with("END"));
    }

    #[test]
    fn similarity_ignores_echoed_values() {
        let r = |status, body: &str| Response {
            status,
            body: body.into(),
            ..Response::default()
        };
        assert!(similar(
            &r(200, "item 1"),
            &r(200, "item 1 AND 1=1"),
            &["1 AND 1=1", "1"]
        ));
        assert!(!similar(&r(200, "apple"), &r(200, "pear"), &[]));
        assert!(!similar(&r(200, "a"), &r(404, "a"), &[]));
        let many: String = (0..20).map(|i| format!("line {i}\n")).collect();
        assert!(similar(
            &r(200, &many),
            &r(200, &format!("{many}extra\n")),
            &[]
        ));
    }
}
