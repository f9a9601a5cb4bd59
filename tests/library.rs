//! The library facade against a running orchestrator in another process (issue 18, point 1):
//! a `LoadGenerator` of this process joins it over the network and an `OrchestratorClient`
//! drives an execution through its REST API; the target's own counts agree with the report.
//! Bad input comes back as the errors the REST API gives, naming the field.

mod common;

use common::cluster::{Cluster, SECRET, load_body};
use mcp_testing::embed::Error;
use mcp_testing::settings::Settings;
use mcp_testing::{LoadGenerator, Orchestrator};
use serde_json::json;

#[test]
fn a_node_and_a_client_of_this_process_drive_a_running_orchestrator() {
    let target = common::target();
    let cluster = Cluster::empty();
    let url = cluster.orchestrator.url("");
    actix_rt::System::new().block_on(async {
        let mut settings = Settings::defaults();
        settings.cluster.secret = Some(SECRET.into());
        settings.node.host = "127.0.0.1".into();
        settings.node.port = 0;
        let node = LoadGenerator::connect(&url.parse().unwrap(), settings, "embedded").unwrap();
        let client = Orchestrator::connect(&url, None).unwrap();

        // Queued until the node has joined, then run on it alone.
        let id = client
            .submit(load_body(target.addr, 50, 2, json!({})))
            .await
            .unwrap();
        let report = client.wait(&id).await.unwrap();
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
