//! Reflected XSS: a payload sent in a parameter comes back unescaped in an HTML answer.
//! Each payload carries a marker no page holds by itself, so a reflection is never a
//! coincidence; escaped output (`&lt;svg`) never matches.

use super::{
    Depth, Endpoint, Evidence, Exchange, Finding, Probe, ProbeRequest, ScanType, Severity,
    Technique, endpoint_label,
};

/// Breaks out of text, attribute and quoted contexts at once.
const QUICK: &[&str] = &["\"'><svg onload=mcptxss()>"];
/// More contexts: a script block, event handlers without a tag break. (A `javascript:` URL
/// has no character to escape, so its reflection alone proves nothing: not probed.)
const DEEP: &[&str] = &[
    "</script><script>mcptxss()</script>",
    "\" autofocus onfocus=mcptxss() x=\"",
    "' autofocus onfocus=mcptxss() x='",
];

pub fn probes(endpoint: &Endpoint, depth: Depth) -> Vec<Probe> {
    let payloads: Vec<&str> = match depth {
        Depth::Quick => QUICK.to_vec(),
        Depth::Deep => QUICK.iter().chain(DEEP).copied().collect(),
    };
    endpoint
        .params
        .iter()
        .flat_map(|p| {
            payloads.iter().map(|payload| Probe {
                scan_type: ScanType::Xss,
                parameter: Some(p.name.clone()),
                technique: Technique::XssReflected {
                    payload: payload.to_string(),
                },
                requests: vec![ProbeRequest::values(endpoint.with_value(&p.name, payload))],
            })
        })
        .collect()
}

/// Whether a content type is rendered as a page (no type at all is sniffed as one).
fn renders_as_html(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("html") || ct.contains("xml")
    })
}

pub fn judge(
    probe: &Probe,
    endpoint: &Endpoint,
    baseline: &Exchange,
    got: &[Exchange],
) -> Option<Finding> {
    let Technique::XssReflected { payload } = &probe.technique else {
        return None;
    };
    let x = got.first()?;
    let r = &x.response;
    if !renders_as_html(r.header("content-type"))
        || !r.body.contains(payload.as_str())
        || baseline.response.body.contains(payload.as_str())
    {
        return None;
    }
    let param = probe.parameter.clone().unwrap_or_default();
    Some(Finding {
        scan_type: ScanType::Xss,
        severity: Severity::High,
        endpoint: endpoint_label(endpoint),
        parameter: probe.parameter.clone(),
        title: format!("reflected XSS: parameter {param:?} is echoed unescaped into HTML"),
        evidence: Evidence::around(x, payload),
        remediation: "HTML-escape every value written into a page for its context (text, \
                      attribute, script, URL), preferably with an auto-escaping template \
                      engine; add a Content-Security-Policy that forbids inline script"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::security::{Param, Response, SentRequest};

    fn endpoint() -> Endpoint {
        Endpoint {
            path: "/search".into(),
            method: "GET".into(),
            params: vec![Param {
                name: "q".into(),
                value: "1".into(),
            }],
        }
    }

    fn exchange(ct: Option<&str>, body: &str) -> Exchange {
        Exchange {
            request: SentRequest {
                method: "GET".into(),
                url: "http://127.0.0.1/search?q=x".into(),
                body: None,
                headers: vec![],
            },
            response: Response {
                status: 200,
                headers: ct
                    .map(|c| vec![("content-type".to_string(), c.to_string())])
                    .unwrap_or_default(),
                body: body.into(),
                ..Response::default()
            },
        }
    }

    #[test]
    fn raw_reflection_in_html_is_found_escaped_is_not() {
        let e = endpoint();
        let probes = probes(&e, Depth::Quick);
        assert_eq!(probes.len(), 1);
        let p = &probes[0];
        let Technique::XssReflected { payload } = &p.technique else {
            unreachable!()
        };
        let base = exchange(Some("text/html"), "Results for 1");
        let raw = exchange(Some("text/html"), &format!("Results for {payload}"));
        let f = judge(p, &e, &base, &[raw]).expect("found");
        assert_eq!(f.parameter.as_deref(), Some("q"));
        assert!(f.evidence.excerpt.contains(payload.as_str()));
        let escaped = exchange(
            Some("text/html; charset=utf-8"),
            "Results for &quot;&#x27;&gt;&lt;svg onload=mcptxss()&gt;",
        );
        assert_eq!(judge(p, &e, &base, &[escaped]), None);
        let json = exchange(
            Some("application/json"),
            &format!("{{\"q\":\"{payload}\"}}"),
        );
        assert_eq!(judge(p, &e, &base, &[json]), None);
        let untyped = exchange(None, payload);
        assert!(judge(p, &e, &base, &[untyped]).is_some());
    }

    #[test]
    fn deep_tries_more_contexts_per_parameter() {
        let mut e = endpoint();
        e.params.push(Param {
            name: "page".into(),
            value: "1".into(),
        });
        assert_eq!(
            probes(&e, Depth::Deep).len(),
            2 * (QUICK.len() + DEEP.len())
        );
        // Only the probed parameter carries the payload.
        let p = &probes(&e, Depth::Quick)[1];
        assert_eq!(p.requests[0].values[0], ("q".into(), "1".into()));
        assert_eq!(p.parameter.as_deref(), Some("page"));
    }
}
