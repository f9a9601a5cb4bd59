//! Failures are classified and never stop a run; redirects are followed only when a target
//! asks for it, and only to allowed hosts.

mod common;

use common::{closed_port, plan, run, target, try_run_with};
use std::time::{Duration, Instant};

use mcp_testing::allowlist::Allowlist;
use mcp_testing::engine::http::HttpSender;
use mcp_testing::run::RunError;
use mcp_testing::settings::Settings;
use mcp_testing::stats::ErrorKind;
use mcp_testing::task::TaskKind;

#[test]
fn every_kind_of_failure_is_counted_and_the_run_goes_on() {
    let t = target();
    let p = plan(&format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets:\n    - 'http://{0}/status?code=500'\n    - 'http://127.0.0.1:{1}/'\n    - {{url: 'http://{0}/delay?ms=2000', timeout: 100ms}}\n    - 'http://{0}/'\n    duration: 2s\n    base_rps: 40\n",
        t.addr,
        closed_port()
    ));
    let report = run(&p);
    let task = &report.tasks[0];
    assert_eq!(
        task.total_requests, 80,
        "every arrival was sent and finished"
    );
    let e = &task.errors;
    assert_eq!(
        (e.status, e.connect, e.timeout, e.body),
        (20, 20, 20, 0),
        "{e:?}"
    );
    assert_eq!(e.total, 60);
    assert_eq!(task.status_codes["500"], 20);
    assert_eq!(task.status_codes["200"], 20);
    // Timed-out requests are measured up to their timeout.
    assert!(
        task.latency_ms.max >= 100.0 && task.latency_ms.max < 1000.0,
        "{:?}",
        task.latency_ms
    );
}

#[test]
fn slow_responses_are_counted_against_expected_response_time() {
    let t = target();
    let p = plan(&format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets: [{{url: 'http://{}/delay?ms=30', expected_response_time: 10ms}}]\n    duration: 1s\n    base_rps: 20\n",
        t.addr
    ));
    let report = run(&p);
    assert_eq!(report.tasks[0].slow_responses, 20);
    assert_eq!(report.tasks[0].errors.total, 0);
}

#[test]
fn redirects_are_followed_only_when_asked_and_only_to_allowed_hosts() {
    let t = target();
    let yaml = |follow: bool, to: &str| {
        format!(
            "tasks:\n- type: load_test\n  parameters:\n    targets: [{{url: 'http://{}/redirect?to={to}', follow_redirects: {follow}}}]\n    duration: 1s\n    base_rps: 10\n",
            t.addr
        )
    };
    // Not followed: the 302 is the answer (3xx counts as success by default).
    let report = run(&plan(&yaml(false, "/bytes?n=7")));
    assert_eq!(report.tasks[0].status_codes["302"], 10);
    assert_eq!(t.stats.view().paths["/bytes"], 0);
    // Followed to the same allowed host.
    let report = run(&plan(&yaml(true, "/bytes?n=7")));
    assert_eq!(report.tasks[0].status_codes["200"], 10);
    assert_eq!(report.tasks[0].bytes_received, 70);
    assert_eq!(t.stats.view().paths["/bytes"], 10);
    // Followed, but the next hop is outside the allowlist: refused, counted as a status error.
    let report = run(&plan(&yaml(true, "http://10.255.255.1/")));
    assert_eq!(report.tasks[0].errors.status, 10);
    assert_eq!(report.tasks[0].status_codes["302"], 10);
}

#[test]
fn names_are_checked_again_when_connecting() {
    // `localhost` passes validation by name; the sender then runs with an allowlist that has
    // neither the name nor loopback, as if the name had come to resolve elsewhere.
    let t = target();
    let p = plan(&format!(
        "tasks:\n- type: load_test\n  parameters:\n    targets: ['http://localhost:{}/']\n    duration: 1s\n    base_rps: 10\n",
        t.addr.port()
    ));
    let TaskKind::LoadTest(task) = &p.plan.tasks[0].kind else {
        panic!("a load test")
    };
    let refused = Allowlist::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let outcome = actix::System::new().block_on(async {
        let sender = HttpSender::new(task, refused.clone(), 1, None);
        sender
            .send(0, Instant::now() + Duration::from_secs(5))
            .await
    });
    assert_eq!(outcome.error, Some(ErrorKind::Connect), "{outcome:?}");
    assert_eq!(
        t.stats.view().total,
        0,
        "a refused name still reached the target"
    );
    // A node with that allowlist refuses the task outright when it validates it again.
    let mut settings = Settings::defaults().load_generation;
    settings.allowed_targets = refused;
    match try_run_with(&p, &settings) {
        Err(RunError::Failed(reason)) => {
            assert!(reason.contains("refused task"), "{reason}")
        }
        other => panic!("expected the node to refuse the task, got {other:?}"),
    }
    assert_eq!(t.stats.view().total, 0);
    // With the default allowlist the same plan reaches it.
    let report = run(&p);
    assert_eq!(report.tasks[0].errors.total, 0);
    assert_eq!(t.stats.view().total, 10);
}
