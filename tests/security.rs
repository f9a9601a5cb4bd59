//! `security_test`: the scanner finds every known flaw of a deliberately vulnerable server with
//! the right type, finds nothing on its fixed twin, and sends nothing outside the allowlist.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::vulnerable::{Flavor, KNOWN_FLAWS, VulnServer, endpoints};
use mcp_testing::allowlist::Allowlist;
use mcp_testing::task::security::scan::scan;
use mcp_testing::task::security::{Depth, Endpoint, Param, ScanReport, ScanSpec, ScanType};

fn spec(server: &VulnServer, depth: Depth, rate: f64) -> ScanSpec {
    ScanSpec {
        target: server.url(),
        endpoints: endpoints(),
        scan_types: ScanType::ALL.to_vec(),
        depth,
        rate_limit_rps: rate,
        timeout: Duration::from_secs(5),
        fail_on: None,
        thresholds: Vec::new(),
    }
}

fn run(spec: &ScanSpec, allowlist: &Allowlist) -> ScanReport {
    actix::System::new().block_on(scan(spec, allowlist))
}

fn show(what: &str, report: &ScanReport) {
    println!(
        "{what}: {} findings, {} requests sent, {} refused, {} errors, {} off-site redirects, {:.1} s\n{}",
        report.findings.len(),
        report.requests_sent,
        report.requests_refused,
        report.request_errors,
        report.offsite_redirects,
        report.duration_s,
        report.table()
    );
}

/// Every known flaw (of this depth) is reported, and nothing else is.
fn assert_exactly_the_known_flaws(report: &ScanReport, depth: Depth) {
    for flaw in KNOWN_FLAWS {
        if flaw.deep_only && depth == Depth::Quick {
            continue;
        }
        assert!(
            report.findings.iter().any(|f| flaw.matches(f)),
            "not found: {flaw:?}\n{}",
            report.table()
        );
    }
    for f in &report.findings {
        assert!(
            KNOWN_FLAWS.iter().any(|k| k.matches(f)),
            "unexpected finding (a false positive?): {f:#?}"
        );
        assert!(f.evidence.excerpt.chars().count() <= 300);
        assert!(!f.remediation.is_empty());
    }
    assert_eq!(report.request_errors, 0, "{:?}", report.notes);
    assert_eq!(report.requests_refused, 0, "{:?}", report.notes);
}

#[test]
fn a_quick_scan_finds_every_known_flaw_of_the_vulnerable_server() {
    let server = VulnServer::start(Flavor::Vulnerable);
    // The default rate limit: the quick scan still takes only a few seconds.
    let report = run(&spec(&server, Depth::Quick, 10.0), &Allowlist::default());
    show("vulnerable, quick", &report);
    assert_exactly_the_known_flaws(&report, Depth::Quick);
    assert_eq!(report.by_type[&ScanType::Headers], 6);
    assert_eq!(report.by_type[&ScanType::Xss], 2);
    let sqli = report
        .findings
        .iter()
        .find(|f| f.scan_type == ScanType::SqlInjection)
        .unwrap();
    assert!(
        sqli.evidence.excerpt.contains("unrecognized token"),
        "{sqli:#?}"
    );
    assert!(sqli.evidence.request.url.contains("/item?id=1%27"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["findings"][0]["severity"], "critical");
    assert!(json["findings"][0]["evidence"]["request"]["method"].is_string());
}

#[test]
fn a_deep_scan_also_finds_the_time_based_injection() {
    let server = VulnServer::start(Flavor::Vulnerable);
    let report = run(&spec(&server, Depth::Deep, 100.0), &Allowlist::default());
    show("vulnerable, deep", &report);
    assert_exactly_the_known_flaws(&report, Depth::Deep);
    let timed = report
        .findings
        .iter()
        .find(|f| f.title.contains("time-based"))
        .unwrap();
    assert_eq!(timed.endpoint, "GET /report");
    assert!(
        timed.evidence.request.url.contains("SLEEP%283%29"),
        "{timed:#?}"
    );
}

#[test]
fn the_fixed_twin_yields_no_findings_at_either_depth() {
    let server = VulnServer::start(Flavor::Fixed);
    for depth in [Depth::Quick, Depth::Deep] {
        let report = run(&spec(&server, depth, 100.0), &Allowlist::default());
        show(&format!("fixed, {depth:?}"), &report);
        assert_eq!(report.findings, vec![], "{}", report.table());
        assert!(report.requests_sent > 30);
        assert_eq!(report.request_errors, 0, "{:?}", report.notes);
        assert_eq!(report.by_type.len(), 5);
        assert!(report.by_type.values().all(|n| *n == 0));
    }
}

fn only(patterns: &[&str]) -> Allowlist {
    Allowlist::new(patterns.iter().map(|p| p.parse().unwrap()).collect())
}

/// A listener on 127.0.0.2, outside an allowlist of 127.0.0.1 only; it must never be reached.
struct Bystander(TcpListener);

impl Bystander {
    fn start() -> Bystander {
        Bystander(TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2:0"))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.0.local_addr().unwrap())
    }

    /// No connection reached it (the kernel completes handshakes into the backlog, so any
    /// attempt would be waiting there).
    fn untouched(&self) -> bool {
        self.0.set_nonblocking(true).unwrap();
        matches!(self.0.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

#[test]
fn targets_outside_the_allowlist_get_no_request() {
    let ep = |path: &str| Endpoint {
        path: path.into(),
        method: "GET".into(),
        params: vec![Param {
            name: "q".into(),
            value: "1".into(),
        }],
    };
    let bystander = Bystander::start();
    for target in ["http://10.255.255.1/".to_string(), bystander.url("/")] {
        let spec = ScanSpec {
            target: target.parse().unwrap(),
            endpoints: vec![ep("/"), ep("/search")],
            scan_types: ScanType::ALL.to_vec(),
            depth: Depth::Deep,
            rate_limit_rps: 100.0,
            timeout: Duration::from_secs(2),
            fail_on: None,
            thresholds: Vec::new(),
        };
        let report = run(&spec, &only(&["127.0.0.1"]));
        show(&target, &report);
        assert_eq!(report.requests_sent, 0);
        // Each endpoint's baseline was refused, and nothing was probed after it.
        assert_eq!(report.requests_refused, 2);
        assert!(report.notes[0].contains("not in load_generation.allowed_targets"));
        assert_eq!(report.findings, vec![]);
    }
    assert!(bystander.untouched(), "a request reached 127.0.0.2");
}

#[test]
fn redirects_are_never_followed_and_off_site_ones_are_counted() {
    let bystander = Bystander::start();
    let server = VulnServer::start_with(Flavor::Vulnerable, &bystander.url("/landing"));
    let spec = ScanSpec {
        target: server.url(),
        endpoints: vec![
            Endpoint {
                path: "/partner".into(),
                method: "GET".into(),
                params: vec![],
            },
            Endpoint {
                path: "/go".into(),
                method: "GET".into(),
                params: vec![Param {
                    name: "next".into(),
                    value: "/search".into(),
                }],
            },
        ],
        scan_types: vec![ScanType::OpenRedirect],
        depth: Depth::Deep,
        rate_limit_rps: 100.0,
        timeout: Duration::from_secs(2),
        fail_on: None,
        thresholds: Vec::new(),
    };
    let report = run(&spec, &only(&["127.0.0.1"]));
    show("redirects", &report);
    // Two baselines and the first open-redirect probe (once found, the other forms are
    // skipped); none followed.
    assert_eq!(report.requests_sent, 3);
    assert_eq!(report.requests_refused, 0);
    // /partner's redirect to 127.0.0.2 and /go's to the probe host.
    assert_eq!(report.offsite_redirects, 2);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].endpoint, "GET /go");
    assert!(
        bystander.untouched(),
        "a redirect to 127.0.0.2 was followed"
    );
}
