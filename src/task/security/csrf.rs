//! CSRF: a state-changing request sent without any token and from a foreign `Origin` is
//! accepted (a 2xx answer), and cookies are set without `SameSite` (so a cross-site form post
//! carries them).

use super::{
    Depth, Endpoint, Evidence, Exchange, Finding, Probe, ProbeRequest, ScanType, Severity,
    Technique, endpoint_label,
};

/// The origin a CSRF probe claims: a site that is never the target's.
pub const FOREIGN_ORIGIN: &str = "http://mcpt-csrf-probe.invalid";

/// Parameter names that carry an anti-CSRF token; the probe leaves them out.
fn is_token_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["csrf", "xsrf", "token", "authenticity", "nonce"]
        .iter()
        .any(|t| n.contains(t))
}

pub fn probes(endpoint: &Endpoint, _depth: Depth) -> Vec<Probe> {
    if !endpoint.state_changing() {
        return Vec::new();
    }
    let values = endpoint
        .baseline_values()
        .into_iter()
        .filter(|(k, _)| !is_token_name(k))
        .collect();
    vec![Probe {
        scan_type: ScanType::Csrf,
        parameter: None,
        technique: Technique::CsrfNoToken,
        requests: vec![ProbeRequest {
            values,
            headers: vec![
                ("origin".into(), FOREIGN_ORIGIN.into()),
                ("referer".into(), format!("{FOREIGN_ORIGIN}/form")),
            ],
            min_timeout: None,
        }],
    }]
}

pub fn judge(
    probe: &Probe,
    endpoint: &Endpoint,
    _baseline: &Exchange,
    got: &[Exchange],
) -> Option<Finding> {
    if probe.technique != Technique::CsrfNoToken {
        return None;
    }
    let x = got.first()?;
    if !(200..300).contains(&x.response.status) {
        return None;
    }
    Some(Finding {
        scan_type: ScanType::Csrf,
        severity: Severity::High,
        endpoint: endpoint_label(endpoint),
        parameter: None,
        title: format!(
            "CSRF: {} {} is accepted without a token from a foreign origin",
            endpoint.method, endpoint.path
        ),
        evidence: Evidence::around(x, ""),
        remediation: "require a per-session anti-CSRF token (synchronizer or double-submit) on \
                      every state-changing request, check Origin/Referer, and set session \
                      cookies with SameSite=Lax or Strict"
            .into(),
    })
}

/// A `Set-Cookie` value taken apart: the name and the lower-case attributes.
pub struct Cookie {
    pub name: String,
    attrs: Vec<(String, String)>,
}

impl Cookie {
    pub fn parse(set_cookie: &str) -> Option<Cookie> {
        let mut parts = set_cookie.split(';');
        let (name, _) = parts.next()?.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let attrs = parts
            .map(|a| {
                let (k, v) = a.split_once('=').unwrap_or((a, ""));
                (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase())
            })
            .collect();
        Some(Cookie {
            name: name.to_string(),
            attrs,
        })
    }

    pub fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|(k, _)| k == attr)
    }

    pub fn attr(&self, attr: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == attr)
            .map(|(_, v)| v.as_str())
    }
}

/// Cookies the baseline answer sets without `SameSite=Lax|Strict`.
pub fn judge_cookies(endpoint: &Endpoint, baseline: &Exchange) -> Vec<Finding> {
    baseline
        .response
        .header_all("set-cookie")
        .filter_map(|raw| {
            let c = Cookie::parse(raw)?;
            let same_site = c.attr("samesite");
            if matches!(same_site, Some("lax" | "strict")) {
                return None;
            }
            let what = match same_site {
                Some("none") => "SameSite=None",
                _ => "no SameSite attribute",
            };
            Some(Finding {
                scan_type: ScanType::Csrf,
                severity: Severity::Medium,
                endpoint: endpoint_label(endpoint),
                parameter: Some(c.name.clone()),
                title: format!("CSRF: cookie {:?} is set with {what}", c.name),
                evidence: Evidence::noting(baseline, format!("set-cookie: {raw}")),
                remediation: "set SameSite=Lax (or Strict) on session and authentication \
                              cookies so cross-site requests do not carry them"
                    .into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::security::{Param, Response, SentRequest};

    fn endpoint(method: &str) -> Endpoint {
        Endpoint {
            path: "/transfer".into(),
            method: method.into(),
            params: ["to", "amount", "csrf_token"]
                .iter()
                .map(|n| Param {
                    name: n.to_string(),
                    value: "1".into(),
                })
                .collect(),
        }
    }

    fn x(status: u16, cookies: &[&str]) -> Exchange {
        Exchange {
            request: SentRequest {
                method: "POST".into(),
                url: "http://127.0.0.1/transfer".into(),
                body: Some("to=1&amount=1".into()),
                headers: vec![],
            },
            response: Response {
                status,
                headers: cookies
                    .iter()
                    .map(|c| ("set-cookie".to_string(), c.to_string()))
                    .collect(),
                body: "done".into(),
                ..Response::default()
            },
        }
    }

    #[test]
    fn only_state_changing_requests_are_probed_without_their_token() {
        assert!(probes(&endpoint("GET"), Depth::Deep).is_empty());
        let ps = probes(&endpoint("POST"), Depth::Quick);
        assert_eq!(ps.len(), 1);
        let names: Vec<&str> = ps[0].requests[0]
            .values
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(names, ["to", "amount"]);
        assert!(
            ps[0].requests[0]
                .headers
                .iter()
                .any(|(k, v)| k == "origin" && v == FOREIGN_ORIGIN)
        );
    }

    #[test]
    fn accepted_is_a_finding_refused_is_not() {
        let e = endpoint("POST");
        let p = &probes(&e, Depth::Quick)[0];
        let base = x(200, &[]);
        assert!(judge(p, &e, &base, &[x(200, &[])]).is_some());
        assert_eq!(judge(p, &e, &base, &[x(403, &[])]), None);
        assert_eq!(judge(p, &e, &base, &[x(302, &[])]), None);
    }

    #[test]
    fn cookies_need_lax_or_strict() {
        let e = endpoint("GET");
        let base = x(
            200,
            &[
                "session=abc; Path=/",
                "a=1; SameSite=None; Secure",
                "b=2; samesite=strict",
                "c=3; SameSite=Lax; HttpOnly",
            ],
        );
        let found = judge_cookies(&e, &base);
        let names: Vec<_> = found.iter().map(|f| f.parameter.clone().unwrap()).collect();
        assert_eq!(names, ["session", "a"]);
        assert!(found[0].evidence.excerpt.contains("session=abc"));
    }
}
