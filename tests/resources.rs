//! The resource pool through its actor and its REST routes: no oversubscription under 1,000
//! random concurrent allocate/deallocate calls, expiry of unconfirmed grants and of waiting
//! requests, the priority rule (queueing, no preemption), and the REST contract.

mod common;

use mcp_testing::actors::recorder::Recorder;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use actix_web::{App, test, web};
use mcp_testing::actors::resource_allocator::ResourceAllocator;
use mcp_testing::messages::resources::{
    Allocate, AllocationEvent, AuditPool, Confirm, Deallocate, GetAllocation, GetPoolStatus,
    SetNodeCapacity,
};
use mcp_testing::resources::{
    AllocError, AllocationRequest, Confirmed, Outcome, PoolStatus, Released, ResourceSpec,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const LONG: Duration = Duration::from_secs(3600);

/// Awaits `pred` until it holds or `timeout` passes; says which.
async fn wait_for<F: Future<Output = bool>>(timeout: Duration, pred: impl FnMut() -> F) -> bool {
    common::ask_until(timeout, pred, |ok| *ok).await
}

fn recorder() -> (Recipient<AllocationEvent>, Arc<Mutex<Vec<AllocationEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    (
        Recorder::<AllocationEvent>(seen.clone())
            .start()
            .recipient(),
        seen,
    )
}

async fn set(pool: &Addr<ResourceAllocator>, node: &str, caps: &[(&str, f64)]) {
    let capacity = caps.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let msg = SetNodeCapacity {
        node_id: node.into(),
        capacity,
    };
    pool.send(msg).await.unwrap().unwrap();
}

fn cpu_request(id: &str, cpu: f64, priority: i32, queue: bool) -> AllocationRequest {
    let mut r = AllocationRequest::new(id, "test", vec![ResourceSpec::new("cpu", cpu)]);
    r.priority = priority;
    r.queue = queue;
    r
}

async fn ask(
    pool: &Addr<ResourceAllocator>,
    request: AllocationRequest,
    notify: Option<Recipient<AllocationEvent>>,
) -> Result<Outcome, AllocError> {
    pool.send(Allocate { request, notify }).await.unwrap()
}

/// Every node's allocated amounts within its capacity (capacities never shrink in these tests).
fn oversubscribed(s: &PoolStatus) -> Vec<String> {
    let mut out = Vec::new();
    for n in &s.nodes {
        for (r, a) in &n.allocated {
            let c = n.capacity.get(r).copied().unwrap_or(0.0);
            if *a > c {
                out.push(format!("{}/{r}: {a} > {c}", n.node_id));
            }
        }
    }
    out
}

#[derive(Default, Debug)]
struct Tally {
    granted: usize,
    queued: usize,
    refused: usize,
    released: usize,
}

/// One of the concurrent clients: 50 random calls, checking the pool after each.
async fn client(pool: Addr<ResourceAllocator>, who: usize) -> Tally {
    let mut rng = StdRng::seed_from_u64(0x5eed + who as u64);
    let mut mine: Vec<String> = Vec::new();
    let mut tally = Tally::default();
    for i in 0..50 {
        if !mine.is_empty() && rng.random_bool(0.4) {
            let id = mine.swap_remove(rng.random_range(0..mine.len()));
            pool.send(Deallocate(id.clone())).await.unwrap().unwrap();
            tally.released += 1;
        } else {
            let id = format!("c{who}-{i}");
            let mut resources = vec![ResourceSpec::new("cpu", rng.random_range(1..=120) as f64)];
            if rng.random_bool(0.6) {
                resources.push(ResourceSpec::new(
                    "memory",
                    rng.random_range(1..=200) as f64 * GIB,
                ));
            }
            if rng.random_bool(0.2) {
                let node = format!("n{:02}", rng.random_range(0..100));
                resources
                    .push(ResourceSpec::new("network", rng.random_range(1..=500) as f64).on(node));
            }
            let mut request = AllocationRequest::new(&id, format!("client{who}"), resources);
            request.priority = rng.random_range(-2..=2);
            request.queue = rng.random_bool(0.3);
            request.confirm = true;
            match ask(&pool, request, None).await {
                Ok(Outcome::Granted(_)) => {
                    tally.granted += 1;
                    mine.push(id);
                }
                Ok(Outcome::Queued { .. }) => {
                    tally.queued += 1;
                    mine.push(id);
                }
                Err(
                    AllocError::Insufficient { .. }
                    | AllocError::Blocked { .. }
                    | AllocError::NeverFits { .. },
                ) => tally.refused += 1,
                Err(e) => panic!("unexpected refusal of {id}: {e}"),
            }
        }
        let status = pool.send(GetPoolStatus).await.unwrap();
        let over = oversubscribed(&status);
        assert!(over.is_empty(), "after call {i} of client {who}: {over:?}");
        let audit = pool.send(AuditPool).await.unwrap();
        assert!(
            audit.is_empty(),
            "after call {i} of client {who}: {audit:?}"
        );
    }
    for id in mine {
        // Queued requests may have been granted meanwhile; either way they go.
        pool.send(Deallocate(id)).await.unwrap().unwrap();
    }
    tally
}

#[actix_rt::test]
async fn concurrent_calls_never_oversubscribe_and_release_everything() {
    let pool = ResourceAllocator::new(LONG, LONG).start();
    let mut rng = StdRng::seed_from_u64(7);
    for n in 0..100 {
        let caps = [
            ("cpu", rng.random_range(2..=32) as f64),
            ("memory", rng.random_range(4..=128) as f64 * GIB),
            ("network", rng.random_range(100..=1000) as f64),
        ];
        set(&pool, &format!("n{n:02}"), &caps).await;
    }
    let clients = (0..20).map(|who| client(pool.clone(), who));
    let tallies = futures_util::future::join_all(clients).await;
    let sum = |f: fn(&Tally) -> usize| tallies.iter().map(f).sum::<usize>();
    let (granted, queued, refused) = (sum(|t| t.granted), sum(|t| t.queued), sum(|t| t.refused));
    assert_eq!(granted + queued + refused + sum(|t| t.released), 1000);
    // The pool was contested: every outcome happened.
    assert!(granted > 0 && queued > 0 && refused > 0, "{tallies:?}");
    let s = pool.send(GetPoolStatus).await.unwrap();
    assert!(s.allocations.is_empty() && s.queued.is_empty(), "{s:?}");
    for (r, a) in &s.aggregate_utilization {
        assert_eq!(a.allocated, 0.0, "{r}");
        assert_eq!(a.available_capacity, a.total, "{r}");
    }
    assert!(pool.send(AuditPool).await.unwrap().is_empty());
}

#[actix_rt::test]
async fn unconfirmed_grants_and_waiting_requests_expire_confirmed_ones_stay() {
    // The sweep is an hour away: the deadline timer alone must do it.
    let pool = ResourceAllocator::new(Duration::from_millis(150), LONG).start();
    set(&pool, "n1", &[("cpu", 4.0)]).await;
    let (rec, seen) = recorder();
    let granted = |o: Result<Outcome, AllocError>| assert!(matches!(o, Ok(Outcome::Granted(_))));
    granted(
        ask(
            &pool,
            cpu_request("unconfirmed", 2.0, 0, false),
            Some(rec.clone()),
        )
        .await,
    );
    granted(
        ask(
            &pool,
            cpu_request("confirmed", 2.0, 0, false),
            Some(rec.clone()),
        )
        .await,
    );
    let c = pool.send(Confirm("confirmed".into())).await.unwrap();
    assert_eq!(c, Ok(Confirmed::Granted));
    let waiting = ask(&pool, cpu_request("waiting", 3.0, 0, true), Some(rec)).await;
    assert_eq!(waiting, Ok(Outcome::Queued { position: 0 }));

    let gone = |id: &'static str| {
        let pool = pool.clone();
        move || {
            let pool = pool.clone();
            async move { pool.send(GetAllocation(id.into())).await.unwrap().is_none() }
        }
    };
    assert!(wait_for(Duration::from_secs(10), gone("unconfirmed")).await);
    assert!(wait_for(Duration::from_secs(10), gone("waiting")).await);
    // Both timed out; the confirmed grant outlived them.
    let s = pool.send(GetPoolStatus).await.unwrap();
    let ids: Vec<&str> = s
        .allocations
        .iter()
        .map(|a| a.allocation_id.as_str())
        .collect();
    assert_eq!(ids, ["confirmed"]);
    assert_eq!(s.aggregate_utilization["cpu"].available_capacity, 2.0);
    let events: BTreeSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    let want: BTreeSet<String> = ["unconfirmed", "waiting"]
        .iter()
        .map(|id| {
            format!(
                "{:?}",
                AllocationEvent::Expired {
                    allocation_id: id.to_string()
                }
            )
        })
        .collect();
    assert_eq!(events, want);
}

#[actix_rt::test]
async fn the_periodic_sweep_expires_too() {
    let pool = ResourceAllocator::new(Duration::from_millis(50), Duration::from_millis(20)).start();
    set(&pool, "n1", &[("cpu", 1.0)]).await;
    let o = ask(&pool, cpu_request("u", 1.0, 0, false), None).await;
    assert!(matches!(o, Ok(Outcome::Granted(_))));
    let free = || {
        let pool = pool.clone();
        async move {
            pool.send(GetPoolStatus)
                .await
                .unwrap()
                .aggregate_utilization["cpu"]
                .allocated
                == 0.0
        }
    };
    assert!(wait_for(Duration::from_secs(10), free).await);
}

#[actix_rt::test]
async fn a_higher_priority_waits_its_turn_and_is_served_first() {
    let pool = ResourceAllocator::new(LONG, LONG).start();
    set(&pool, "n1", &[("cpu", 4.0)]).await;
    let mut running = cpu_request("running", 4.0, 0, false);
    running.confirm = true;
    assert!(matches!(
        ask(&pool, running, None).await,
        Ok(Outcome::Granted(_))
    ));
    let (rec, seen) = recorder();
    let q = |id: &'static str, cpu, p| ask(&pool, cpu_request(id, cpu, p, true), Some(rec.clone()));
    assert_eq!(q("low", 2.0, 1).await, Ok(Outcome::Queued { position: 0 }));
    assert_eq!(q("high", 4.0, 5).await, Ok(Outcome::Queued { position: 0 }));
    assert_eq!(q("low2", 1.0, 1).await, Ok(Outcome::Queued { position: 2 }));
    // No preemption: the running allocation stays whatever the priority.
    let urgent = ask(&pool, cpu_request("urgent", 1.0, 100, false), None).await;
    assert!(
        matches!(urgent, Err(AllocError::Insufficient { .. })),
        "{urgent:?}"
    );
    // Equal priority to a waiting request, and it would fit once... still behind it.
    set(&pool, "n2", &[("cpu", 1.0)]).await;
    let blocked = ask(&pool, cpu_request("late", 1.0, 1, false), None).await;
    assert_eq!(blocked, Err(AllocError::Blocked { ahead: 3 }));

    let released = pool.send(Deallocate("running".into())).await.unwrap();
    assert!(matches!(released, Ok(Released::Grant(_))));
    let granted = |n: usize| {
        let seen = seen.clone();
        move || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().len() >= n }
        }
    };
    assert!(wait_for(Duration::from_secs(10), granted(1)).await);
    // "high" arrived after "low" and took the whole freed node; "low" (2) does not fit in the
    // 1 left on n2 and "low2" waits behind it.
    let s = pool.send(GetPoolStatus).await.unwrap();
    let waiting: Vec<&str> = s.queued.iter().map(|q| q.allocation_id.as_str()).collect();
    assert_eq!(waiting, ["low", "low2"]);
    pool.send(Deallocate("high".into())).await.unwrap().unwrap();
    assert!(wait_for(Duration::from_secs(10), granted(3)).await);
    let order: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            AllocationEvent::Granted(g) => g.allocation_id.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order, ["high", "low", "low2"]);
}

// ---- REST ----

mod rest {
    use super::*;
    use mcp_testing::actors::registry::Registry;
    use mcp_testing::actors::store::Store;
    use mcp_testing::http::api::{self, ApiState};
    use mcp_testing::settings::Settings;

    /// The API's state with no actor in it: the test adds the allocator itself.
    struct Handle {
        registry: Arc<Registry>,
    }

    fn orchestrator() -> Handle {
        let store = Store::start_in_memory().unwrap();
        Handle {
            registry: Arc::new(Registry::new(Arc::new(Settings::defaults()), store)),
        }
    }

    macro_rules! app {
        ($h:expr, $token:expr) => {
            test::init_service(
                App::new()
                    .app_data(web::Data::new(ApiState {
                        registry: $h.registry.clone(),
                    }))
                    .configure(api::routes($token)),
            )
            .await
        };
    }

    /// Calls the app; answers the status and the JSON body (null when not JSON).
    macro_rules! call {
        ($app:expr, $method:expr, $path:expr, $body:expr) => {{
            let mut req = test::TestRequest::default()
                .method($method.parse().unwrap())
                .uri($path);
            let body: Option<Value> = $body;
            if let Some(b) = body {
                req = req.set_json(b);
            }
            let resp = test::call_service(&$app, req.to_request()).await;
            let status = resp.status().as_u16();
            let bytes = test::read_body(resp).await;
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, v)
        }};
    }

    #[actix_rt::test]
    async fn the_pool_over_rest() {
        let h = orchestrator();
        let app = app!(h, None);
        // No allocator yet: unavailable, not a 500.
        let (s, b) = call!(app, "GET", "/api/resources", None);
        assert_eq!((s, b["error"].as_str()), (503, Some("unavailable")));

        let pool = ResourceAllocator::new(LONG, LONG).start();
        h.registry.allocator.set(pool.clone());
        set(&pool, "n1", &[("cpu", 8.0), ("memory", 16.0 * GIB)]).await;
        set(
            &pool,
            "n2",
            &[("cpu", 8.0), ("memory", 16.0 * GIB), ("gpu", 1.0)],
        )
        .await;
        let (s, b) = call!(app, "GET", "/api/resources", None);
        assert_eq!(s, 200);
        assert_eq!(
            b["aggregate_utilization"]["cpu"]["available_capacity"],
            16.0
        );
        assert_eq!(b["aggregate_utilization"]["gpu"]["total"], 1.0);
        assert_eq!(b["nodes"].as_array().unwrap().len(), 2);

        let body = json!({
            "allocation_id": "suite-1",
            "requester_id": "suite",
            "resources": [
                {"type": "CPU", "amount": 10, "unit": "cores"},
                {"resource": "memory", "amount": 4, "unit": "GiB"}
            ],
            "priority": 1,
        });
        let (s, b) = call!(app, "POST", "/api/allocations", Some(body));
        assert_eq!(s, 201, "{b}");
        assert_eq!(
            (b["status"].as_str(), b["confirmed"].as_bool()),
            (Some("granted"), Some(false))
        );
        let cpu: f64 = b["portions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["resource"] == "cpu")
            .map(|p| p["amount"].as_f64().unwrap())
            .sum();
        assert_eq!(cpu, 10.0);

        // Too much now: 409 with what was short; with queue: 202.
        let big = json!({"requester_id": "suite", "resources": [{"type": "cpu", "amount": 8}]});
        let (s, b) = call!(app, "POST", "/api/allocations", Some(big.clone()));
        assert_eq!(
            (s, b["error"].as_str(), b["field"].as_str()),
            (409, Some("insufficient_resources"), Some("resources"))
        );
        assert_eq!(b["shortages"][0]["resource"], "cpu");
        assert_eq!(b["shortages"][0]["requested"], 8.0);
        assert_eq!(b["shortages"][0]["available"], 6.0);
        let mut queued = big.clone();
        queued["queue"] = json!(true);
        queued["allocation_id"] = json!("later");
        let (s, b) = call!(app, "POST", "/api/allocations", Some(queued));
        assert_eq!(s, 202, "{b}");
        assert_eq!(
            (b["status"].as_str(), b["position"].as_u64()),
            (Some("queued"), Some(0))
        );
        let (s, b) = call!(app, "GET", "/api/allocations/later", None);
        assert_eq!((s, b["status"].as_str()), (200, Some("queued")));

        // Beyond the pool: 409 even with queue.
        let huge = json!({"requester_id": "s", "queue": true, "resources": [{"type": "gpu", "amount": 2}]});
        let (s, b) = call!(app, "POST", "/api/allocations", Some(huge));
        assert_eq!((s, b["error"].as_str()), (409, Some("exceeds_capacity")));
        assert_eq!(b["shortages"][0]["total"], 1.0);

        // Invalid fields: 422 naming each; a duplicate id: 409.
        let bad = json!({"requester_id": "s", "resources": [{"type": "cpu", "amount": 1}, {"type": "cpu", "amount": -1}]});
        let (s, b) = call!(app, "POST", "/api/allocations", Some(bad));
        assert_eq!((s, b["field"].as_str()), (422, Some("resources[1].amount")));
        let dup = json!({"allocation_id": "suite-1", "requester_id": "s", "resources": [{"type": "cpu", "amount": 1}]});
        let (s, b) = call!(app, "POST", "/api/allocations", Some(dup));
        assert_eq!(
            (s, b["error"].as_str()),
            (409, Some("duplicate_allocation"))
        );

        let (s, b) = call!(app, "POST", "/api/allocations/suite-1/confirm", None);
        assert_eq!(
            (s, b["status"].as_str(), b["granted"].as_bool()),
            (200, Some("confirmed"), Some(true))
        );
        let (s, b) = call!(app, "GET", "/api/allocations/suite-1", None);
        assert_eq!(
            (s, b["status"].as_str(), b["confirmed"].as_bool()),
            (200, Some("granted"), Some(true))
        );

        // Releasing serves the queue.
        let (s, b) = call!(app, "DELETE", "/api/allocations/suite-1", None);
        assert_eq!(
            (s, b["status"].as_str(), b["was"].as_str()),
            (200, Some("deallocated"), Some("granted"))
        );
        let (s, b) = call!(app, "GET", "/api/allocations/later", None);
        assert_eq!((s, b["status"].as_str()), (200, Some("granted")));
        let (s, _) = call!(app, "DELETE", "/api/allocations/later", None);
        assert_eq!(s, 200);
        for (method, path) in [
            ("DELETE", "/api/allocations/suite-1"),
            ("GET", "/api/allocations/nope"),
            ("POST", "/api/allocations/nope/confirm"),
        ] {
            let (s, b) = call!(app, method, path, None);
            assert_eq!(
                (s, b["error"].as_str()),
                (404, Some("not_found")),
                "{method} {path}"
            );
        }
        let (s, b) = call!(app, "PUT", "/api/resources", None);
        assert_eq!((s, b["error"].as_str()), (405, Some("method_not_allowed")));
        let (_, b) = call!(app, "GET", "/api/resources", None);
        assert_eq!(b["aggregate_utilization"]["cpu"]["allocated"], 0.0);
    }

    #[actix_rt::test]
    async fn mutating_calls_need_the_token() {
        let h = orchestrator();
        let pool = ResourceAllocator::new(LONG, LONG).start();
        h.registry.allocator.set(pool.clone());
        set(&pool, "n1", &[("cpu", 1.0)]).await;
        let app = app!(h, Some("t0ken".to_string()));
        let body = json!({"requester_id": "s", "resources": [{"type": "cpu", "amount": 1}]});
        let (s, _) = call!(app, "POST", "/api/allocations", Some(body));
        assert_eq!(s, 401);
        let (s, _) = call!(app, "GET", "/api/resources", None);
        assert_eq!(s, 200);
        let s = pool.send(GetPoolStatus).await.unwrap();
        assert!(s.allocations.is_empty());
    }
}
