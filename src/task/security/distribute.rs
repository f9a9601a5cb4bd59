//! A `security_test` over several nodes: how a scan is cut into slices, one per node, and how
//! the nodes' reports become one. Pure; the orchestrator and the node agent call these.
//!
//! A scan is not split by rate like a load test: its endpoints are dealt round-robin over the
//! task's nodes (endpoint `i` goes to slot `i % n`), each node scans its slice at the spec's
//! full `rate_limit_rps` with its own allowlist, and a task never uses more nodes than it has
//! endpoints. The slices' reports are merged: findings concatenated (site-wide ones, which
//! every slice sees on its first endpoint, once), counters summed, most severe first.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::scan::probes_for;
use super::{Finding, ScanReport, ScanSpec, ScanType, Technique, endpoint_label};

/// How many of `nodes` a scan uses: one per endpoint at most, at least one.
pub fn node_count(spec: &ScanSpec, nodes: usize) -> usize {
    nodes.min(spec.endpoints.len()).max(1)
}

/// The part of `spec` that slot `slot` of `n` scans: every `n`-th endpoint from `slot`.
pub fn slice(spec: &ScanSpec, slot: usize, n: usize) -> ScanSpec {
    let n = n.max(1);
    ScanSpec {
        endpoints: spec
            .endpoints
            .iter()
            .enumerate()
            .filter(|(i, _)| i % n == slot)
            .map(|(_, e)| e.clone())
            .collect(),
        ..spec.clone()
    }
}

/// Requests a scan sends at most (a baseline per endpoint and every probe's requests) and the
/// time its rate limit and its time-based probes take: what the run is expected to last.
pub fn estimate(spec: &ScanSpec) -> (u64, Duration) {
    let mut requests = 0u64;
    let mut sleeps = Duration::ZERO;
    for e in &spec.endpoints {
        requests += 1;
        for t in &spec.scan_types {
            for p in probes_for(*t, e, spec) {
                requests += p.requests.len() as u64;
                if let Technique::SqlTime { sleep, .. } = p.technique {
                    sleeps += sleep;
                }
            }
        }
    }
    let paced = Duration::from_secs_f64(requests as f64 / spec.rate_limit_rps);
    (requests, paced + sleeps)
}

/// One node's part of a merged scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanNode {
    pub node_id: String,
    /// `METHOD path` of each endpoint of its slice.
    pub endpoints: Vec<String>,
    pub requests_sent: u64,
    pub findings: u64,
    /// The node was lost (or never answered) before its slice's report came: its endpoints
    /// were not scanned.
    pub lost: bool,
}

/// Findings every slice reports on its first endpoint (missing headers, cookie flags): the
/// site-wide ones `judge_baseline` makes. Per-endpoint CSRF findings name no parameter.
fn site_wide(f: &Finding) -> bool {
    f.scan_type == ScanType::Headers || (f.scan_type == ScanType::Csrf && f.parameter.is_some())
}

/// How many notes a merged report keeps.
const NOTES_KEPT: usize = 8;

/// Merges the slices of a scan (by slot; `None`: no report, the node was lost) into one report.
pub fn merge(spec: &ScanSpec, nodes: &[String], slices: &[Option<ScanReport>]) -> ScanReport {
    let n = nodes.len();
    let mut out = ScanReport::default();
    let mut seen_site_wide = BTreeSet::new();
    let mut notes = BTreeSet::new();
    for (slot, node) in nodes.iter().enumerate() {
        let endpoints = slice(spec, slot, n)
            .endpoints
            .iter()
            .map(endpoint_label)
            .collect();
        let Some(r) = slices.get(slot).and_then(Option::as_ref) else {
            out.nodes_lost.push(node.clone());
            out.nodes.push(ScanNode {
                node_id: node.clone(),
                endpoints,
                lost: true,
                ..ScanNode::default()
            });
            continue;
        };
        out.nodes.push(ScanNode {
            node_id: node.clone(),
            endpoints,
            requests_sent: r.requests_sent,
            findings: r.findings.len() as u64,
            lost: false,
        });
        for f in &r.findings {
            if site_wide(f)
                && !seen_site_wide.insert((f.scan_type, f.parameter.clone(), f.title.clone()))
            {
                continue;
            }
            out.findings.push(f.clone());
        }
        out.requests_sent += r.requests_sent;
        out.requests_refused += r.requests_refused;
        out.request_errors += r.request_errors;
        out.offsite_redirects += r.offsite_redirects;
        notes.extend(r.notes.iter().cloned());
        out.duration_s = out.duration_s.max(r.duration_s);
    }
    // Stable: within a severity, slot order (and each slice's own order) holds.
    out.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for t in &spec.scan_types {
        out.by_type.insert(*t, 0);
    }
    for f in &out.findings {
        *out.by_type.entry(f.scan_type).or_default() += 1;
    }
    out.notes = notes.into_iter().take(NOTES_KEPT).collect();
    out.fail_on = spec.fail_on;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::security::{Depth, Endpoint, Evidence, Param, SentRequest, Severity};
    use url::Url;

    fn spec(endpoints: usize) -> ScanSpec {
        ScanSpec {
            target: Url::parse("http://127.0.0.1:9/").unwrap(),
            endpoints: (0..endpoints)
                .map(|i| Endpoint {
                    path: format!("/e{i}"),
                    method: "GET".into(),
                    params: vec![Param {
                        name: "q".into(),
                        value: "1".into(),
                    }],
                })
                .collect(),
            scan_types: ScanType::ALL.to_vec(),
            depth: Depth::Quick,
            rate_limit_rps: 10.0,
            timeout: Duration::from_secs(1),
            fail_on: None,
            thresholds: Vec::new(),
        }
    }

    fn finding(t: ScanType, sev: Severity, endpoint: &str, param: Option<&str>) -> Finding {
        Finding {
            scan_type: t,
            severity: sev,
            endpoint: endpoint.into(),
            parameter: param.map(String::from),
            title: format!("{t} {}", param.unwrap_or("-")),
            evidence: Evidence {
                request: SentRequest {
                    method: "GET".into(),
                    url: "http://127.0.0.1:9/".into(),
                    body: None,
                    headers: Vec::new(),
                },
                response_status: 200,
                excerpt: String::new(),
            },
            remediation: String::new(),
        }
    }

    #[test]
    fn slices_cover_every_endpoint_once() {
        for endpoints in 1..9 {
            let s = spec(endpoints);
            for nodes in 1..5 {
                let n = node_count(&s, nodes);
                assert!(n <= endpoints && n <= nodes && n >= 1);
                let mut all: Vec<String> = (0..n)
                    .flat_map(|slot| slice(&s, slot, n).endpoints)
                    .map(|e| e.path)
                    .collect();
                assert!((0..n).all(|slot| !slice(&s, slot, n).endpoints.is_empty()));
                all.sort();
                let mut want: Vec<String> = s.endpoints.iter().map(|e| e.path.clone()).collect();
                want.sort();
                assert_eq!(all, want);
            }
        }
    }

    #[test]
    fn merging_sums_dedups_site_wide_and_marks_the_lost() {
        let s = spec(3);
        let nodes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let a = ScanReport {
            findings: vec![
                finding(
                    ScanType::Headers,
                    Severity::Low,
                    "GET /e0",
                    Some("x-frame-options"),
                ),
                finding(ScanType::Xss, Severity::High, "GET /e0", Some("q")),
            ],
            requests_sent: 10,
            request_errors: 1,
            notes: vec!["n1".into()],
            duration_s: 2.0,
            ..ScanReport::default()
        };
        let b = ScanReport {
            findings: vec![
                finding(
                    ScanType::Headers,
                    Severity::Low,
                    "GET /e1",
                    Some("x-frame-options"),
                ),
                finding(
                    ScanType::SqlInjection,
                    Severity::Critical,
                    "GET /e1",
                    Some("q"),
                ),
                finding(ScanType::Csrf, Severity::High, "GET /e1", None),
            ],
            requests_sent: 7,
            duration_s: 3.0,
            ..ScanReport::default()
        };
        let m = merge(&s, &nodes, &[Some(a), Some(b), None]);
        let kinds: Vec<ScanType> = m.findings.iter().map(|f| f.scan_type).collect();
        assert_eq!(
            kinds,
            [
                ScanType::SqlInjection,
                ScanType::Xss,
                ScanType::Csrf,
                ScanType::Headers
            ]
        );
        assert_eq!((m.requests_sent, m.request_errors), (17, 1));
        assert_eq!(m.duration_s, 3.0);
        assert_eq!(m.nodes_lost, ["c"]);
        assert_eq!(m.by_type[&ScanType::Headers], 1);
        assert_eq!(m.by_type[&ScanType::OpenRedirect], 0);
        assert!(m.nodes[2].lost && m.nodes[2].endpoints == ["GET /e2"]);
        assert_eq!(m.nodes[1].findings, 3);
    }

    #[test]
    fn the_estimate_counts_baselines_and_probes() {
        let (requests, time) = estimate(&spec(2));
        assert!(requests > 2, "{requests}");
        assert_eq!(time, Duration::from_secs_f64(requests as f64 / 10.0));
    }
}
