//! User flows (issue 16): a login, a captured token and authenticated requests against
//! `mcpt target`, which refuses bad tokens and counts logins per user; standalone with
//! `mcpt run` and on a cluster of three nodes. Counts are the target's.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::Cluster;
use common::{run_plan, target, temp_file};
use serde_json::{Value, json};

/// `rows` users of a CSV file (`name,password`).
fn users_csv(rows: usize) -> common::TempFile {
    let mut csv = String::from("name,password\n");
    for i in 0..rows {
        csv.push_str(&format!("user{i:04},pw-{i:04}\n"));
    }
    temp_file("users.csv", &csv)
}

/// The login flow's parameters: log in with a row, capture the token, read `/me` `reads`
/// times with it, checking that the profile is the row's user; `bearer` is how the token goes
/// out (a wrong one makes the target refuse it).
fn login_flow(addr: std::net::SocketAddr, users: &str, order: &str, bearer: &str) -> Value {
    json!({
        "data": {"users": {"file": users, "order": order}},
        "flow": [
            {"name": "login",
             "request": {"method": "POST", "url": format!("http://{addr}/login"),
                         "body": {"user": "{{ users.name }}", "password": "{{ users.password }}"}},
             "capture": {"token": {"json": "$.token"}},
             "check": {"status": 200}},
            {"loop": 2, "steps": [
                {"name": "me",
                 "request": {"url": format!("http://{addr}/me"),
                             "headers": {"authorization": bearer}},
                 "check": {"status": 200, "json": {"$.owner": "{{ users.name }}"}}}
            ]}
        ]
    })
}

fn row<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name:?}: {}", task["requests"]))
}

#[test]
fn a_login_flow_runs_standalone_with_no_rejected_token() {
    let t = target();
    let users = users_csv(100);
    let mut params = login_flow(
        t.addr,
        users.path.to_str().unwrap(),
        "sequence",
        "Bearer {{ token }}",
    );
    params["base_rps"] = json!(40);
    params["duration"] = json!("2s");
    // The iterations' rate holds to the plan's (which counts iterations); the last one
    // cannot hold, and fails the run.
    params["thresholds"] = json!([
        "achieved_rps{request=\"(iteration)\"} >= 0.9 * planned",
        "error_rate{request=me} < 0.01",
        "achieved_rps{request=\"(iteration)\"} >= 2 * planned"
    ]);
    let plan = json!({"name": "login", "tasks": [{"type": "load_test", "parameters": params}]});
    let (out, report) = run_plan(&serde_json::to_string(&plan).unwrap(), &["-q"]);
    let report = report.unwrap_or_else(|| {
        panic!(
            "no report: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(3));
    let verdicts: Vec<(bool, f64, f64)> = report["tasks"][0]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["passed"].as_bool().unwrap(),
                v["actual"].as_f64().unwrap(),
                v["bound"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [(true, 40.0, 36.0), (true, 0.0, 0.01), (false, 40.0, 80.0)]
    );
    let problems = common::schema_errors("schemas/report.schema.json", &report);
    assert!(problems.is_empty(), "{problems:#?}");
    let served = t.stats.view();
    let task = &report["tasks"][0];
    // 80 arrivals, one iteration each: a login and two reads.
    assert_eq!(
        (served.paths["/login"], served.paths["/me"]),
        (80, 160),
        "{served:?}"
    );
    assert_eq!(served.rejected_tokens, 0);
    assert_eq!(row(task, "login")["count"], served.paths["/login"]);
    assert_eq!(row(task, "me")["count"], served.paths["/me"]);
    assert_eq!(task["errors"]["total"], 0, "{}", task["failures"]);
    assert_eq!(task["iterations"]["completed"], 80);
    assert_eq!(task["iterations"]["planned"], 80);
    assert_eq!(task["not_sent"], 0);
    // `sequence` over 100 rows: the first 80 users logged in once each.
    assert_eq!(served.logins.len(), 80);
    assert!(
        served.logins.values().all(|n| *n == 1),
        "{:?}",
        served.logins
    );
}

/// The same flow with the token sent wrong: the target refuses every read, and the report
/// says so per request, with the check that failed.
#[test]
fn a_wrong_token_is_refused_and_reported_against_its_request() {
    let t = target();
    let users = users_csv(10);
    let mut params = login_flow(
        t.addr,
        users.path.to_str().unwrap(),
        "random",
        "Bearer x{{ token }}",
    );
    params["base_rps"] = json!(20);
    params["duration"] = json!("1s");
    let plan = json!({"tasks": [{"type": "load_test", "parameters": params}]});
    let (out, report) = run_plan(&serde_json::to_string(&plan).unwrap(), &["-q"]);
    let report = report.expect("a report");
    assert_eq!(out.status.code(), Some(0), "no threshold: the run passes");
    let served = t.stats.view();
    assert_eq!(served.rejected_tokens, 40, "{served:?}");
    let task = &report["tasks"][0];
    let me = row(task, "me");
    assert_eq!(
        (me["count"].clone(), me["errors"]["check"].clone()),
        (json!(40), json!(40))
    );
    assert_eq!(me["checks_failed"], 80, "status and owner, twice each");
    assert_eq!(row(task, "login")["errors"]["total"], 0);
    assert_eq!(
        task["failures"].as_array().unwrap().len(),
        1,
        "{}",
        task["failures"]
    );
    let failure = &task["failures"][0];
    assert_eq!(
        (failure["request"].as_str(), failure["kind"].as_str()),
        (Some("me"), Some("check"))
    );
    assert_eq!(failure["message"], "status: expected 200, got 401");
    assert_eq!(task["iterations"]["failed"], 20);
}

/// A unique data file used up: its rows go once each, and the later arrivals are not started.
#[test]
fn a_unique_file_that_runs_out_ends_the_arrivals_and_says_so() {
    let t = target();
    let users = users_csv(30);
    let mut params = login_flow(
        t.addr,
        users.path.to_str().unwrap(),
        "unique",
        "Bearer {{ token }}",
    );
    params["base_rps"] = json!(25);
    params["duration"] = json!("2s");
    let plan = json!({"tasks": [{"type": "load_test", "parameters": params}]});
    let (out, report) = run_plan(&serde_json::to_string(&plan).unwrap(), &[]);
    let report = report.expect("a report");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let served = t.stats.view();
    assert_eq!(served.logins.len(), 30, "{served:?}");
    assert!(served.logins.values().all(|n| *n == 1));
    let task = &report["tasks"][0];
    assert_eq!(task["iterations"]["data_exhausted"], true);
    assert_eq!(task["iterations"]["started"], 30);
    assert_eq!(task["not_sent"], 20);
    assert!(stdout.contains("data exhausted"), "{stdout}");
}

/// On three nodes: 1,000 unique rows at 100 iterations per second for 5 s; the target sees
/// 500 distinct users, none twice, no token refused, and the report's per-request counts are
/// the target's per-path counts.
#[test]
fn unique_rows_are_dealt_once_over_three_nodes() {
    let t = target();
    let users = users_csv(1000);
    let c = Cluster::start(3);
    let mut params = login_flow(
        t.addr,
        users.path.to_str().unwrap(),
        "unique",
        "Bearer {{ token }}",
    );
    params["base_rps"] = json!(100);
    params["duration"] = json!("5s");
    // A data file over the 64 MiB a task may carry is refused at submit, naming its key.
    let big = temp_file("big.csv", "name,password\n");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big.path)
        .unwrap()
        .set_len(64 * 1024 * 1024 + 1)
        .unwrap();
    let mut too_big = params.clone();
    too_big["data"]["users"]["file"] = json!(big.path.to_str().unwrap());
    let (status, body) = common::cluster::post(
        &c.orchestrator.url("/api/executions"),
        &json!({"tasks": [{"type": "load_test", "parameters": too_big}]}),
        None,
    );
    assert_eq!(status, 422, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("tasks[0].parameters.data.users.file") && text.contains("64 MiB"),
        "{text}"
    );
    let id = c.submit(&json!({"name": "unique over three",
        "tasks": [{"type": "load_test", "name": "login", "parameters": params}]}));
    let view = c.wait_done(&id, Duration::from_secs(90));
    assert_eq!(view["state"], "completed", "{view}");
    let report = c.report(&id);
    let served = t.stats.view();
    assert_eq!(served.logins.len(), 500, "distinct users: {served:?}");
    let twice: BTreeSet<&String> = served
        .logins
        .iter()
        .filter(|(_, n)| **n != 1)
        .map(|(u, _)| u)
        .collect();
    assert!(twice.is_empty(), "logged in more than once: {twice:?}");
    assert_eq!(served.rejected_tokens, 0);
    // Every node took part.
    assert_eq!(served.nodes.len(), 3, "{:?}", served.nodes);
    let task = &report["tasks"][0];
    assert_eq!(row(task, "login")["count"], served.paths["/login"]);
    assert_eq!(row(task, "me")["count"], served.paths["/me"]);
    assert_eq!(served.paths["/login"], 500);
    assert_eq!(served.paths["/me"], 1000);
    assert_eq!(task["iterations"]["completed"], 500);
    assert_eq!(task["errors"]["total"], 0, "{}", task["failures"]);
}

/// Closed model, cookies: each user logs in once per iteration and reads `/me` with no
/// header; its jar sends the session cookie the target set. Without a jar, every read is
/// refused.
#[test]
fn closed_model_users_keep_their_cookies_and_lose_them_without_a_jar() {
    for cookies in [true, false] {
        let t = target();
        let a = t.addr;
        let plan = json!({"tasks": [{"type": "load_test", "parameters": {
        "model": "closed", "concurrent_users": 4, "duration": "1s", "think_time": "20ms",
        "cookies": cookies,
        "flow": [
            {"name": "login", "request": {"method": "POST", "url": format!("http://{a}/login"),
             "form": {"user": "u{{ vu }}", "password": "p"}}, "check": {"status": 200}},
            {"name": "me", "request": {"url": format!("http://{a}/me")}}
        ]}}]});
        let (out, report) = run_plan(&serde_json::to_string(&plan).unwrap(), &["-q"]);
        let report = report.unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        let served = t.stats.view();
        let task = &report["tasks"][0];
        let me = served.paths["/me"];
        assert!(me >= 4, "every user read at least once: {served:?}");
        assert_eq!(row(task, "me")["count"], me);
        assert_eq!(row(task, "login")["count"], served.paths["/login"]);
        assert_eq!(
            served.logins.len(),
            4,
            "one user per vu: {:?}",
            served.logins
        );
        if cookies {
            assert_eq!(served.rejected_tokens, 0, "{served:?}");
            assert_eq!(row(task, "me")["errors"]["total"], 0);
        } else {
            assert_eq!(served.rejected_tokens, me, "{served:?}");
            assert_eq!(row(task, "me")["errors"]["status"], me);
        }
        assert_eq!(task["iterations"]["planned"], Value::Null);
    }
}
