//! Security headers: HSTS, CSP, `X-Content-Type-Options: nosniff`, framing protection
//! (`X-Frame-Options` or CSP `frame-ancestors`), and the `HttpOnly` and `Secure` flags of
//! cookies. Judged on the baseline answers; the scan reports each once for the site.

use super::csrf::Cookie;
use super::{Endpoint, Evidence, Exchange, Finding, ScanType, Severity, endpoint_label};

pub fn judge(endpoint: &Endpoint, baseline: &Exchange) -> Vec<Finding> {
    let mut out = missing_headers(endpoint, baseline);
    out.extend(cookie_flags(endpoint, baseline));
    out
}

/// The security headers the baseline answer lacks.
fn missing_headers(endpoint: &Endpoint, baseline: &Exchange) -> Vec<Finding> {
    let r = &baseline.response;
    let mut out = Vec::new();
    let mut missing = |header: &str, severity: Severity, title: &str, remediation: &str| {
        out.push(Finding {
            scan_type: ScanType::Headers,
            severity,
            endpoint: endpoint_label(endpoint),
            parameter: Some(header.to_string()),
            title: title.to_string(),
            evidence: Evidence::noting(baseline, present(baseline)),
            remediation: remediation.to_string(),
        });
    };
    if r.header("strict-transport-security").is_none() {
        missing(
            "strict-transport-security",
            Severity::Low,
            "missing Strict-Transport-Security (HSTS)",
            "serve the site over HTTPS and send Strict-Transport-Security: max-age=31536000; \
             includeSubDomains",
        );
    }
    let csp = r.header("content-security-policy");
    if csp.is_none() {
        missing(
            "content-security-policy",
            Severity::Medium,
            "missing Content-Security-Policy",
            "send a Content-Security-Policy such as default-src 'self'; object-src 'none'; \
             frame-ancestors 'none'",
        );
    }
    if !r
        .header("x-content-type-options")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("nosniff"))
    {
        missing(
            "x-content-type-options",
            Severity::Low,
            "missing X-Content-Type-Options: nosniff",
            "send X-Content-Type-Options: nosniff",
        );
    }
    let frame_ancestors = csp.is_some_and(|c| c.to_ascii_lowercase().contains("frame-ancestors"));
    if r.header("x-frame-options").is_none() && !frame_ancestors {
        missing(
            "x-frame-options",
            Severity::Medium,
            "missing X-Frame-Options (and no CSP frame-ancestors): clickjacking",
            "send X-Frame-Options: DENY (or SAMEORIGIN), or CSP frame-ancestors 'none'",
        );
    }
    out
}

/// The `HttpOnly` and `Secure` flags each cookie the baseline answer sets lacks.
fn cookie_flags(endpoint: &Endpoint, baseline: &Exchange) -> Vec<Finding> {
    let mut out = Vec::new();
    for raw in baseline.response.header_all("set-cookie") {
        let Some(c) = Cookie::parse(raw) else {
            continue;
        };
        let mut flag = |attr: &str, shown: &str, severity: Severity, remediation: &str| {
            if !c.has(attr) {
                out.push(Finding {
                    scan_type: ScanType::Headers,
                    severity,
                    endpoint: endpoint_label(endpoint),
                    parameter: Some(c.name.clone()),
                    title: format!("cookie {:?} is set without {shown}", c.name),
                    evidence: Evidence::noting(baseline, format!("set-cookie: {raw}")),
                    remediation: remediation.to_string(),
                });
            }
        };
        flag(
            "httponly",
            "HttpOnly",
            Severity::Medium,
            "set HttpOnly on cookies scripts need not read (session cookies above all)",
        );
        flag(
            "secure",
            "Secure",
            Severity::Low,
            "set Secure on cookies so they never travel over plain HTTP",
        );
    }
    out
}

/// The security headers an answer did send, for the evidence.
fn present(x: &Exchange) -> String {
    const WATCHED: [&str; 4] = [
        "strict-transport-security",
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
    ];
    let seen: Vec<String> = x
        .response
        .headers
        .iter()
        .filter(|(k, _)| WATCHED.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if seen.is_empty() {
        "no security headers in the answer".into()
    } else {
        format!("security headers present: {}", seen.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::security::{Response, SentRequest};

    fn x(headers: &[(&str, &str)]) -> Exchange {
        Exchange {
            request: SentRequest {
                method: "GET".into(),
                url: "http://127.0.0.1/".into(),
                body: None,
                headers: vec![],
            },
            response: Response {
                status: 200,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Response::default()
            },
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            path: "/".into(),
            method: "GET".into(),
            params: vec![],
        }
    }

    fn params(found: &[Finding]) -> Vec<&str> {
        found
            .iter()
            .map(|f| f.parameter.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn a_bare_answer_misses_every_header_and_cookie_flag() {
        let found = judge(&endpoint(), &x(&[("set-cookie", "session=1; Path=/")]));
        assert_eq!(
            params(&found),
            [
                "strict-transport-security",
                "content-security-policy",
                "x-content-type-options",
                "x-frame-options",
                "session",
                "session"
            ]
        );
        assert_eq!(found[4].title, "cookie \"session\" is set without HttpOnly");
        assert_eq!(found[5].title, "cookie \"session\" is set without Secure");
    }

    #[test]
    fn a_hardened_answer_has_no_findings() {
        let found = judge(
            &endpoint(),
            &x(&[
                ("strict-transport-security", "max-age=31536000"),
                (
                    "content-security-policy",
                    "default-src 'self'; frame-ancestors 'none'",
                ),
                ("x-content-type-options", "nosniff"),
                ("set-cookie", "s=1; HttpOnly; Secure; SameSite=Strict"),
            ]),
        );
        assert_eq!(found, vec![]);
    }
}
