//! Open redirect: a parameter set to a foreign URL makes the answer redirect there. The
//! redirect is read, never followed (the probe host does not even resolve).

use url::Url;

use super::{
    Depth, Endpoint, Evidence, Exchange, Finding, Probe, ProbeRequest, ScanType, Severity,
    Technique, endpoint_label,
};

/// A host that is nobody's (`.invalid` never resolves).
pub const PROBE_HOST: &str = "mcpt-redirect-probe.invalid";

pub fn probes(endpoint: &Endpoint, depth: Depth) -> Vec<Probe> {
    let mut payloads = vec![format!("http://{PROBE_HOST}/")];
    if depth == Depth::Deep {
        // Scheme-relative, backslash (browsers read it as a slash) and scheme-only forms,
        // which naive "starts with /" or "starts with http" checks let through.
        payloads.push(format!("//{PROBE_HOST}/"));
        payloads.push(format!("/\\{PROBE_HOST}/"));
        payloads.push(format!("https:{PROBE_HOST}"));
    }
    endpoint
        .params
        .iter()
        .flat_map(|p| {
            payloads.iter().map(|payload| Probe {
                scan_type: ScanType::OpenRedirect,
                parameter: Some(p.name.clone()),
                technique: Technique::OpenRedirect {
                    payload: payload.clone(),
                    host: PROBE_HOST.into(),
                },
                requests: vec![ProbeRequest::values(endpoint.with_value(&p.name, payload))],
            })
        })
        .collect()
}

/// Where a redirect answer points, resolved against the request URL as a browser would.
pub fn redirect_target(x: &Exchange) -> Option<Url> {
    if !x.response.is_redirect() {
        return None;
    }
    let location = x.response.header("location")?;
    Url::parse(&x.request.url).ok()?.join(location).ok()
}

pub fn judge(
    probe: &Probe,
    endpoint: &Endpoint,
    _baseline: &Exchange,
    got: &[Exchange],
) -> Option<Finding> {
    let Technique::OpenRedirect { payload, host } = &probe.technique else {
        return None;
    };
    let x = got.first()?;
    let to = redirect_target(x)?;
    if to.host_str() != Some(host.as_str()) {
        return None;
    }
    let param = probe.parameter.clone().unwrap_or_default();
    Some(Finding {
        scan_type: ScanType::OpenRedirect,
        severity: Severity::Medium,
        endpoint: endpoint_label(endpoint),
        parameter: probe.parameter.clone(),
        title: format!("open redirect: {param:?} sends the browser to any site"),
        evidence: Evidence::noting(
            x,
            format!(
                "{payload:?} answered {} with location: {}",
                x.response.status,
                x.response.header("location").unwrap_or_default()
            ),
        ),
        remediation: "redirect only to relative paths of this site (reject //, \\ and schemes) \
                      or to an allowlist of destinations"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::security::{Param, Response, SentRequest};

    fn endpoint() -> Endpoint {
        Endpoint {
            path: "/go".into(),
            method: "GET".into(),
            params: vec![Param {
                name: "next".into(),
                value: "/".into(),
            }],
        }
    }

    fn x(status: u16, location: &str) -> Exchange {
        Exchange {
            request: SentRequest {
                method: "GET".into(),
                url: "http://127.0.0.1:9/go?next=x".into(),
                body: None,
                headers: vec![],
            },
            response: Response {
                status,
                headers: vec![("location".into(), location.into())],
                ..Response::default()
            },
        }
    }

    #[test]
    fn only_a_redirect_to_the_probe_host_counts() {
        let e = endpoint();
        let ps = probes(&e, Depth::Deep);
        assert_eq!(ps.len(), 4);
        let base = x(302, "/");
        for p in &ps {
            let Technique::OpenRedirect { payload, .. } = &p.technique else {
                unreachable!()
            };
            // Every form, echoed into Location, leads to the probe host.
            assert!(
                judge(p, &e, &base, &[x(302, payload)]).is_some(),
                "{payload}"
            );
            assert!(judge(p, &e, &base, &[x(302, "/")]).is_none());
            assert!(judge(p, &e, &base, &[x(302, "/home")]).is_none());
            assert!(judge(p, &e, &base, &[x(200, payload)]).is_none());
        }
        assert!(judge(&ps[0], &e, &base, &[x(301, "http://other.test/")]).is_none());
    }
}
