//! Runs a scan: for each endpoint, a baseline request with harmless values, then every
//! check's probes, one request at a time under a token-bucket rate limit. Every URL is checked
//! against the allowlist before it is sent (and names again at connect time); refused
//! requests are counted, never sent. Redirects are never followed; those pointing outside the
//! allowlist are counted.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use awc::http::Method;
use futures_util::StreamExt;
use url::Url;

use super::{
    Endpoint, Exchange, Finding, Probe, ProbeRequest, Response, ScanReport, ScanSpec, ScanType,
    SentRequest, Technique, build_request, csrf, headers, redirect, sqli, xss,
};
use crate::allowlist::{Allowlist, Verdict};

/// The most of a body a check reads; the rest is dropped unread.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Distinct notes (refusals, failures) kept in the report.
const MAX_NOTES: usize = 10;

/// A token bucket: `rate` tokens a second, holding at most `capacity`. Pure over the instants
/// it is given.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Starts full.
    pub fn new(rate: f64, capacity: f64, now: Instant) -> TokenBucket {
        assert!(
            rate > 0.0 && capacity >= 1.0,
            "a bucket needs a rate and a token"
        );
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes a token and says how long to wait before using it (zero when one was there).
    /// Tokens taken ahead of time are owed: the next caller waits longer.
    pub fn acquire(&mut self, now: Instant) -> Duration {
        let since = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + since * self.rate).min(self.capacity);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The probes of one check for an endpoint.
pub fn probes_for(t: ScanType, endpoint: &Endpoint, spec: &ScanSpec) -> Vec<Probe> {
    match t {
        ScanType::Xss => xss::probes(endpoint, spec.depth),
        ScanType::SqlInjection => sqli::probes(endpoint, spec.depth),
        ScanType::Csrf => csrf::probes(endpoint, spec.depth),
        ScanType::OpenRedirect => redirect::probes(endpoint, spec.depth),
        // Judged on the baselines.
        ScanType::Headers => Vec::new(),
    }
}

/// Judges a probe with its check.
pub fn judge(
    probe: &Probe,
    endpoint: &Endpoint,
    baseline: &Exchange,
    got: &[Exchange],
) -> Option<Finding> {
    match probe.technique {
        Technique::XssReflected { .. } => xss::judge(probe, endpoint, baseline, got),
        Technique::SqlError { .. } | Technique::SqlBoolean { .. } | Technique::SqlTime { .. } => {
            sqli::judge(probe, endpoint, baseline, got)
        }
        Technique::CsrfNoToken => csrf::judge(probe, endpoint, baseline, got),
        Technique::OpenRedirect { .. } => redirect::judge(probe, endpoint, baseline, got),
    }
}

/// Findings from a baseline answer alone (headers, cookie flags, SameSite).
pub fn judge_baseline(spec: &ScanSpec, endpoint: &Endpoint, baseline: &Exchange) -> Vec<Finding> {
    let mut out = Vec::new();
    if spec.runs(ScanType::Headers) {
        out.extend(headers::judge(endpoint, baseline));
    }
    if spec.runs(ScanType::Csrf) {
        out.extend(csrf::judge_cookies(endpoint, baseline));
    }
    out
}

/// Why a request did not produce an exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// Sends requests for one scan and keeps its counters.
struct Scanner<'a> {
    spec: &'a ScanSpec,
    allowlist: &'a Allowlist,
    client: awc::Client,
    bucket: TokenBucket,
    /// Names already checked, by `(host, port)`.
    resolved: HashMap<(String, u16), Result<(), String>>,
    report: ScanReport,
    notes: BTreeSet<String>,
}

impl Scanner<'_> {
    async fn allowed(&mut self, url: &Url) -> Result<(), String> {
        match self.allowlist.check(url) {
            Verdict::Allowed => Ok(()),
            Verdict::Denied(why) => Err(why),
            Verdict::Resolve { host, port } => {
                if let Some(v) = self.resolved.get(&(host.clone(), port)) {
                    return v.clone();
                }
                let verdict = match tokio::net::lookup_host((host.as_str(), port)).await {
                    Ok(addrs) => {
                        let ips: Vec<std::net::IpAddr> = addrs.map(|a| a.ip()).collect();
                        self.allowlist.check_resolved(&host, port, &ips)
                    }
                    Err(e) => Err(format!("host {host} could not be resolved: {e}")),
                };
                self.resolved.insert((host, port), verdict.clone());
                verdict
            }
        }
    }

    fn note(&mut self, what: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.insert(what);
        }
    }

    async fn send(
        &mut self,
        req: &SentRequest,
        min_timeout: Option<Duration>,
    ) -> Result<Exchange, SendError> {
        let url = Url::parse(&req.url).map_err(|e| SendError::Failed(e.to_string()))?;
        if let Err(why) = self.allowed(&url).await {
            self.report.requests_refused += 1;
            self.note(format!("refused {}: {why}", req.url));
            return Err(SendError::Refused(why));
        }
        let wait = self.bucket.acquire(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let timeout = min_timeout.map_or(self.spec.timeout, |m| m.max(self.spec.timeout));
        self.report.requests_sent += 1;
        let started = Instant::now();
        let answer = tokio::time::timeout(timeout, self.exchange(req)).await;
        let response = match answer {
            Ok(Ok(mut r)) => {
                r.elapsed = started.elapsed();
                r
            }
            Ok(Err(why)) => {
                self.report.request_errors += 1;
                self.note(format!("{} {}: {why}", req.method, req.url));
                return Err(SendError::Failed(why));
            }
            Err(_) => {
                self.report.request_errors += 1;
                let why = format!("no answer within {} ms", timeout.as_millis());
                self.note(format!("{} {}: {why}", req.method, req.url));
                return Err(SendError::Failed(why));
            }
        };
        let x = Exchange {
            request: req.clone(),
            response,
        };
        // Redirects are read, never followed; count those that lead outside the allowlist.
        if let Some(to) = redirect::redirect_target(&x)
            && !self.allowlist.lists(&to)
        {
            self.report.offsite_redirects += 1;
        }
        Ok(x)
    }

    async fn exchange(&self, req: &SentRequest) -> Result<Response, String> {
        let method = Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut r = self.client.request(method, req.url.as_str());
        for (k, v) in &req.headers {
            r = r.insert_header((k.as_str(), v.as_str()));
        }
        let sent = match &req.body {
            Some(body) => {
                r.insert_header((
                    awc::http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                ))
                .send_body(body.clone())
                .await
            }
            None => r.send().await,
        };
        let mut resp = sent.map_err(|e| e.to_string())?;
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(|e| format!("reading the body: {e}"))?;
            let room = MAX_BODY_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY_BYTES {
                break;
            }
        }
        Ok(Response {
            status: resp.status().as_u16(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: Duration::ZERO,
        })
    }

    async fn send_probe(
        &mut self,
        endpoint: &Endpoint,
        request: &ProbeRequest,
    ) -> Result<Exchange, SendError> {
        let req = build_request(
            &self.spec.target,
            endpoint,
            &request.values,
            &request.headers,
        )
        .map_err(|e| SendError::Failed(e.to_string()))?;
        self.send(&req, request.min_timeout).await
    }
}

fn client(allowlist: &Allowlist) -> awc::Client {
    let tcp = crate::engine::http::GuardedConnector::new(allowlist.clone());
    let connector = awc::Connector::new()
        .connector(tcp)
        .limit(4)
        .timeout(Duration::from_secs(10))
        .conn_keep_alive(Duration::from_secs(15));
    awc::Client::builder()
        .connector(connector)
        // Timeouts wrap the whole exchange (see `send`).
        .disable_timeout()
        .disable_redirects()
        .add_default_header((
            awc::http::header::USER_AGENT,
            concat!("mcpt-security/", env!("CARGO_PKG_VERSION")),
        ))
        .finish()
}

/// Scans `spec.target`. Never fails: refusals and failures are counted in the report. Runs on
/// the current arbiter (awc's client is `!Send`).
pub async fn scan(spec: &ScanSpec, allowlist: &Allowlist) -> ScanReport {
    let started = Instant::now();
    let mut s = Scanner {
        spec,
        allowlist,
        client: client(allowlist),
        bucket: TokenBucket::new(spec.rate_limit_rps, 1.0, started),
        resolved: HashMap::new(),
        report: ScanReport::default(),
        notes: BTreeSet::new(),
    };
    for t in &spec.scan_types {
        s.report.by_type.insert(*t, 0);
    }
    // Site-wide findings (headers, cookies) are reported once, on the first endpoint.
    let mut site_wide: BTreeSet<(ScanType, Option<String>, String)> = BTreeSet::new();
    let mut findings: Vec<Finding> = Vec::new();
    for endpoint in &spec.endpoints {
        let base = ProbeRequest::values(endpoint.baseline_values());
        let Ok(baseline) = s.send_probe(endpoint, &base).await else {
            continue;
        };
        for f in judge_baseline(spec, endpoint, &baseline) {
            if site_wide.insert((f.scan_type, f.parameter.clone(), f.title.clone())) {
                findings.push(f);
            }
        }
        // Once a parameter is found open to a check, its remaining probes are skipped.
        let mut found: BTreeSet<(ScanType, Option<String>)> = BTreeSet::new();
        for t in &spec.scan_types {
            for probe in probes_for(*t, endpoint, spec) {
                if found.contains(&(probe.scan_type, probe.parameter.clone())) {
                    continue;
                }
                let mut got = Vec::with_capacity(probe.requests.len());
                for request in &probe.requests {
                    match s.send_probe(endpoint, request).await {
                        Ok(x) => got.push(x),
                        Err(_) => break,
                    }
                }
                if got.len() != probe.requests.len() {
                    continue;
                }
                if let Some(f) = judge(&probe, endpoint, &baseline, &got) {
                    found.insert((f.scan_type, f.parameter.clone()));
                    findings.push(f);
                }
            }
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in &findings {
        *s.report.by_type.entry(f.scan_type).or_default() += 1;
    }
    s.report.findings = findings;
    s.report.notes = s.notes.into_iter().collect();
    s.report.duration_s = started.elapsed().as_secs_f64();
    s.report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_spaces_requests_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 1.0, t0);
        assert_eq!(b.acquire(t0), Duration::ZERO);
        // Taken at once, each next token is owed 100 ms after the previous.
        let waits: Vec<Duration> = (0..3).map(|_| b.acquire(t0)).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 300]);
        // After a long pause the bucket holds one token, not ten.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.acquire(later), Duration::ZERO);
        assert_eq!(b.acquire(later).as_millis(), 100);
    }

    proptest::proptest! {
        /// However the calls come, n tokens never start within less than (n - capacity) / rate.
        #[test]
        fn the_bucket_never_exceeds_its_rate(
            rate in 1.0f64..500.0,
            capacity in 1u32..5,
            gaps in proptest::collection::vec(0u64..50_000, 1..200),
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::new(rate, f64::from(capacity), t0);
            let mut now = t0;
            let mut starts = Vec::new();
            for gap in gaps {
                now += Duration::from_micros(gap);
                starts.push(now + b.acquire(now));
            }
            let n = starts.len() as f64;
            let span = starts.last().unwrap().duration_since(t0).as_secs_f64();
            let least = (n - f64::from(capacity)) / rate;
            proptest::prop_assert!(span + 1e-6 >= least, "{n} starts in {span} s; least {least}");
            // Starts are in order: a later caller never overtakes.
            proptest::prop_assert!(starts.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
