//! The library facade against a running orchestrator in another process (issue 18, point 1):
//! a `LoadGenerator` of this process joins it over the network and an `OrchestratorClient`
//! drives an execution through its REST API; the target's own counts agree with the report.
//! Bad input comes back as the errors the REST API gives, naming the field.

mod common;

use common::cluster::{Cluster, SECRET, load_body};
use mcp_testing::embed::Error;
use mcp_testing::{LoadGenerator, Orchestrator};
use serde_json::json;
use std::time::Duration;

#[test]
fn a_node_and_a_client_of_this_process_drive_a_running_orchestrator() {
    let target = common::target();
    let cluster = Cluster::empty();
    let url = cluster.orchestrator.url("");
    actix_rt::System::new().block_on(async {
        let mut settings = common::steady_settings();
        settings.cluster.secret = Some(SECRET.into());
        let node = LoadGenerator::connect(&url.parse().unwrap(), settings, "embedded").unwrap();
        let client = Orchestrator::connect(&url, None).unwrap();
        let nodes = client
            .wait_for_nodes(1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(nodes[0].node_id, "embedded", "{nodes:?}");

        // Run on the node alone.
        let id = client
            .submit(load_body(target.addr, 50, 2, json!({})))
            .await
            .unwrap();
        let report = client.wait(&id, Duration::from_secs(60)).await.unwrap();
        let status = client.execution(&id).await.unwrap();
        assert!(status.is_over(), "{status:?}");
        let counted = target.stats.view();
        assert_eq!(report.summary.total_requests, 100, "2 s at 50 rps");
        assert_eq!(counted.total, report.summary.total_requests);
        assert_eq!(counted.nodes.get("embedded"), Some(&100), "{counted:?}");

        match client.submit(json!({"name": "no tasks"})).await {
            Err(Error::Invalid(fields)) => {
                assert_eq!(fields.0[0].field, "tasks", "{fields}")
            }
            other => panic!("a plan without tasks was taken: {other:?}"),
        }
        assert!(
            matches!(client.execution("nope").await, Err(Error::NotFound(_))),
            "an unknown execution"
        );
        node.leave().await;
    });
    let closed =
        Orchestrator::connect(&format!("http://127.0.0.1:{}", common::closed_port()), None)
            .unwrap();
    let unreachable = actix_rt::System::new().block_on(closed.execution("x"));
    assert!(
        matches!(unreachable, Err(Error::Unavailable(_))),
        "{unreachable:?}"
    );
    assert!(matches!(
        Orchestrator::connect("not a url", None),
        Err(Error::Invalid(_))
    ));
}

/// An orchestrator of this process: an execution that ran before a restart on the same data
/// directory is still read (its state and report from the store); a workload that fits no node
/// is refused with each scenario's reason; a dry run's plan is answered at once; bad checks and
/// metrics from code are refused naming the field.
#[test]
fn the_in_process_handles_read_the_store_and_refuse_clearly() {
    let target = common::target();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::steady_settings();
    settings.orchestrator.data_dir = dir.path().join("data");
    actix_rt::System::new().block_on(async {
        let first = Orchestrator::start(settings.clone()).unwrap();
        // Its data directory is its own while it runs.
        match Orchestrator::start(settings.clone()) {
            Err(e @ Error::Start(_)) => assert!(e.to_string().contains("is in use"), "{e}"),
            Err(other) => panic!("a held data directory: {other:?}"),
            Ok(_) => panic!("two orchestrators opened one data directory"),
        }
        let node = LoadGenerator::join(&first, settings.clone(), "n1").unwrap();
        node.wait_joined(Duration::from_secs(30)).await.unwrap();
        let mut events = first.events(None, 1024).await.unwrap();
        let id = first
            .submit(load_body(target.addr, 20, 1, json!({})))
            .await
            .unwrap();
        let ran = first.wait(&id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(ran.summary.total_requests, 20);
        // The stream told the same story: the execution's states, in order, to completed.
        let mut states = Vec::new();
        while let Ok(text) = events.events.try_recv() {
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            let errors = common::schema_errors("schemas/events.schema.json", &event);
            assert!(errors.is_empty(), "{errors:?}: {event}");
            if event["type"] == "execution_state" && event["execution_id"] == id.as_str() {
                states.push(event["state"].as_str().unwrap_or_default().to_string());
            }
        }
        assert_eq!(states.last().map(String::as_str), Some("completed"), "{states:?}");
        assert!(states.iter().any(|s| s == "running"), "{states:?}");

        let workload = |dry_run: bool| {
            json!({"dry_run": dry_run, "scenarios": [{"scenario_id": "gpu_job", "test_type": "load_test",
                "required_capabilities": ["gpu_inference"],
                "parameters": {"targets": [{"url": format!("http://{}/", target.addr)}], "duration": "1s", "base_rps": 1}}]})
        };
        match first.distributor().submit(workload(false)).await {
            Err(Error::Unplaced(u)) => assert_eq!(u[0].scenario_id, "gpu_job", "{u:?}"),
            other => panic!("a scenario no node fits was placed: {other:?}"),
        }
        let mut fits = workload(true);
        fits["scenarios"][0]["required_capabilities"] = json!([]);
        let planned = first.distributor().submit(fits).await.unwrap();
        let waited = first
            .distributor()
            .wait(&planned.plan_id, Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(waited.state, "planned", "a dry run is answered as it is");

        let monitor = node.monitor();
        let bad = mcp_testing::embed::CodeCheck::new("bad name!", || async { Ok(String::new()) });
        assert!(matches!(monitor.register_check(bad).await, Err(Error::Invalid(e)) if e.0[0].field == "name"));
        let nan = mcp_testing::embed::CustomMetric {
            name: "queue".into(),
            value: f64::NAN,
            unit: None,
            warning: None,
            critical: Some(f64::INFINITY),
            higher_is_worse: true,
        };
        match monitor.set_metric(nan).await {
            Err(Error::Invalid(e)) => {
                let fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
                assert_eq!(fields, ["value", "critical"]);
            }
            other => panic!("a NaN metric was taken: {other:?}"),
        }
        // Dropped, the node leaves: the orchestrator no longer counts it connected.
        drop(node);
        let mut gone = false;
        for _ in 0..100 {
            let nodes = first.nodes().await.unwrap();
            if !nodes.iter().any(|n| n.state == "connected") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "a dropped node left: {:?}", first.nodes().await.unwrap());
        first.stop().await;

        // The same data directory, a new orchestrator: the execution is only in the store.
        let second = Orchestrator::start(settings.clone()).unwrap();
        assert!(matches!(second.execution(&id).await, Err(Error::NotFound(_))));
        let status = second.status(&id).await.unwrap();
        assert!(status.is_over(), "{status:?}");
        let stored = second.wait(&id, Duration::from_secs(10)).await.unwrap();
        assert_eq!(stored.summary.total_requests, ran.summary.total_requests);
        let again = second.report(&id).await.unwrap();
        assert_eq!(again.summary.total_requests, stored.summary.total_requests);
        second.stop().await;
    });
}

/// A node with the wrong cluster secret is not let in; waiting for it to join says why.
#[test]
fn a_refused_join_says_why() {
    let cluster = Cluster::empty();
    let url = cluster.orchestrator.url("");
    actix_rt::System::new().block_on(async {
        let mut settings = common::steady_settings();
        settings.cluster.secret = Some("not-the-secret".into());
        let node = LoadGenerator::connect(&url.parse().unwrap(), settings, "outsider").unwrap();
        match node.wait_joined(Duration::from_secs(3)).await {
            Err(Error::TimedOut(why)) => assert!(why.contains("secret"), "{why}"),
            other => panic!("a node with a wrong secret joined: {other:?}"),
        }
    });
}
