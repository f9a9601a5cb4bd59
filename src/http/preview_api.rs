//! The rate preview of an execution, for the web UI's form: the planned requests per second of
//! each task, computed by the same plan validation and [`RatePlan`] that `POST
//! /api/executions` runs, without submitting anything.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/api/executions/preview` | the body of `POST /api/executions` → 200 `{duration_s, tasks: [{name, model, planned_requests, planned_rps: [per second]}]}`; the submit's 400/408/413/422 errors |
//! | POST | `/api/executions/validate` | the body of `POST /api/executions` → 200 `{valid: true}`; the submit's 400/408/413/422 errors |
//!
//! Both take the plan as JSON, or as YAML with `Content-Type: application/yaml` (as the submit
//! does; the web UI sends YAML when a flow is pasted as YAML). They change nothing, so it is open like a GET: no bearer token is needed even when
//! `api.token` is set (a form can preview while its user has not typed the token yet).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::engine::schedule::RatePlan;
use crate::http::api::{ApiState, read_plan};
use crate::http::error::{ApiError, ErrorBody, not_allowed};
use crate::task::TestPlan;
use crate::task::load::Model;

pub const PATH: &str = "/api/executions/preview";
pub const VALIDATE_PATH: &str = "/api/executions/validate";

/// Registers the route. It must come before `/api/executions/{id}` (which would take
/// `preview` for an id) and outside the token guard.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(PATH)
            .route(web::post().to(preview))
            .default_service(not_allowed("POST")),
    );
    cfg.service(
        web::resource(VALIDATE_PATH)
            .route(web::post().to(validate))
            .default_service(not_allowed("POST")),
    );
}

/// The answer of a document that would be accepted.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Valid {
    /// Always `true` (an invalid document is a 4xx `ApiError`).
    pub valid: bool,
}

/// Validates an execution document as the submit does, without starting it (open like a GET:
/// no token).
#[utoipa::path(
    post,
    path = "/api/executions/validate",
    tag = "executions",
    request_body(content(
        (crate::http::openapi::ExecutionRequest = "application/json"),
        (crate::http::openapi::ExecutionRequest = "application/yaml"),
    )),
    responses(
        (status = 200, description = "The document would be accepted", body = Valid),
        (status = 400, description = "Not JSON, or not YAML", body = ErrorBody),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid plan: the field named", body = ErrorBody),
        (status = 503, description = "Validation could not run", body = ErrorBody),
    )
)]
pub(crate) async fn validate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    read_plan(&req, payload, &state).await?;
    Ok(HttpResponse::Ok().json(Valid { valid: true }))
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Preview {
    /// The longest task's duration.
    pub duration_s: f64,
    pub tasks: Vec<TaskPreview>,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TaskPreview {
    pub name: String,
    /// `open`, `closed`, or `scan` (a `security_test`, which plans no rate).
    #[schema(value_type = String)]
    pub model: &'static str,
    /// Open model: the plan's request count (its rate integral); `null` for closed.
    pub planned_requests: Option<u64>,
    /// Requests planned in each second `[k, k+1)` of the task (the last may be partial); all
    /// zero for the closed model, which plans no rate.
    pub planned_rps: Vec<f64>,
}

/// The planned rates of an execution, without submitting it (open like a GET: no token).
#[utoipa::path(
    post,
    path = "/api/executions/preview",
    tag = "executions",
    request_body(content(
        (crate::http::openapi::ExecutionRequest = "application/json"),
        (crate::http::openapi::ExecutionRequest = "application/yaml"),
    )),
    responses(
        (status = 200, description = "The planned requests per second of each task", body = Preview),
        (status = 400, description = "Not JSON, or not YAML", body = ErrorBody),
        (status = 413, description = "Over api.max_body_size", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid plan: the field named", body = ErrorBody),
        (status = 503, description = "Validation could not run", body = ErrorBody),
    )
)]
pub(crate) async fn preview(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let (_, plan) = read_plan(&req, payload, &state).await?;
    Ok(HttpResponse::Ok().json(preview_of(&plan)))
}

/// The preview of a validated plan.
pub fn preview_of(plan: &TestPlan) -> Preview {
    let tasks: Vec<TaskPreview> = plan
        .tasks
        .iter()
        .map(|t| {
            let Some(l) = t.kind.load() else {
                let seconds = t.kind.planned_duration().as_secs_f64().ceil() as usize;
                return TaskPreview {
                    name: t.name.clone(),
                    model: "scan",
                    planned_requests: None,
                    planned_rps: vec![0.0; seconds],
                };
            };
            let rate = l.rate_plan();
            let seconds = rate.duration().as_secs_f64().ceil() as usize;
            let (planned_rps, planned_requests) = match l.model {
                Model::Open => (per_second(&rate), Some(rate.total().round() as u64)),
                Model::Closed => (vec![0.0; seconds], None),
            };
            TaskPreview {
                name: t.name.clone(),
                model: l.model.name(),
                planned_requests,
                planned_rps,
            }
        })
        .collect();
    let duration_s = plan
        .tasks
        .iter()
        .map(|t| t.kind.planned_duration().as_secs_f64())
        .fold(0.0, f64::max);
    Preview { duration_s, tasks }
}

/// Requests planned in each whole second of the plan, `plan.between(k, k+1)`, in one pass over
/// the segments (a wave plan has thousands of them; asking `between` per second would be
/// quadratic).
pub fn per_second(plan: &RatePlan) -> Vec<f64> {
    let end = plan.duration().as_secs_f64();
    let seconds = end.ceil() as usize;
    let mut out = vec![0.0; seconds];
    for s in &plan.segments {
        let (start, d) = (s.start.as_secs_f64(), s.duration.as_secs_f64());
        if d <= 0.0 {
            continue;
        }
        let rate = |t: f64| s.from_rps + (s.to_rps - s.from_rps) * (t - start) / d;
        let mut t = start;
        while t < start + d {
            let k = t.floor() as usize;
            let next = ((k + 1) as f64).min(start + d);
            if let Some(slot) = out.get_mut(k) {
                *slot += (rate(t) + rate(next)) / 2.0 * (next - t);
            }
            t = next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::store::Store;
    use crate::task::TaskKind;
    use actix_web::App;
    use actix_web::test as web_test;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::time::Duration;

    fn plan(params: Value) -> TestPlan {
        let doc = json!({"name": "p", "tasks": [{"type": "load_test", "parameters": params}]});
        crate::task::validate(&doc, &crate::settings::Settings::defaults().load_generation).unwrap()
    }

    fn target() -> Value {
        json!([{"url": "http://127.0.0.1:9/", "method": "GET"}])
    }

    #[test]
    fn per_second_matches_between_for_every_pattern() {
        let shapes = [
            json!({"pattern": "constant", "base_rps": 50, "duration": "8s"}),
            json!({"pattern": "ramp_up", "base_rps": 10, "peak_rps": 100, "duration": "10.5s"}),
            json!({"pattern": "ramp_down", "base_rps": 10, "peak_rps": 100, "duration": 12, "ramp_duration": "7.3s"}),
            json!({"pattern": "spike", "base_rps": 10, "peak_rps": 300, "duration": 20}),
            json!({"pattern": "wave", "base_rps": 10, "peak_rps": 90, "duration": 45, "wave_period": "13s"}),
            json!({"pattern": "random", "base_rps": 5, "peak_rps": 50, "duration": 30, "seed": 7}),
            json!({"pattern": "burst", "base_rps": 1, "peak_rps": 80, "duration": 25, "burst_interval": "4s", "burst_duration": "0.5s"}),
            json!({"stages": [{"duration": "3s", "target_rps": 40}, {"duration": 2.5, "target_rps": 10}]}),
        ];
        for mut params in shapes {
            params["targets"] = target();
            let p = plan(params.clone());
            let TaskKind::LoadTest(l) = &p.tasks[0].kind else {
                panic!("a load test")
            };
            let rate = l.rate_plan();
            let fast = per_second(&rate);
            assert_eq!(
                fast.len(),
                rate.duration().as_secs_f64().ceil() as usize,
                "{params}"
            );
            for (k, got) in fast.iter().enumerate() {
                let want = rate.between(
                    Duration::from_secs(k as u64),
                    Duration::from_secs(k as u64 + 1),
                );
                assert!(
                    (got - want).abs() < 1e-6,
                    "{params} second {k}: {got} != {want}"
                );
            }
            let sum: f64 = fast.iter().sum();
            assert!((sum - rate.total()).abs() < 1e-6, "{params}");
        }
    }

    #[test]
    fn closed_tasks_plan_no_rate_and_the_longest_task_sets_the_duration() {
        let doc = json!({"name": "p", "tasks": [
            {"type": "load_test", "name": "open", "parameters": {"targets": target(), "base_rps": 20, "duration": 4}},
            {"type": "load_test", "name": "closed", "parameters": {"targets": target(), "model": "closed", "concurrent_users": 3, "duration": 6}},
        ]});
        let p = crate::task::validate(&doc, &crate::settings::Settings::defaults().load_generation)
            .unwrap();
        let v = preview_of(&p);
        assert_eq!(v.duration_s, 6.0);
        assert_eq!(v.tasks[0].planned_rps, vec![20.0; 4]);
        assert_eq!(v.tasks[0].planned_requests, Some(80));
        assert_eq!(v.tasks[1].model, "closed");
        assert_eq!(v.tasks[1].planned_rps, vec![0.0; 6]);
        assert_eq!(v.tasks[1].planned_requests, None);
    }

    /// The production route table over a registry with no actor running (the preview needs
    /// none).
    macro_rules! app {
        ($token:expr) => {{
            let settings = Arc::new(crate::settings::Settings::defaults());
            let registry = Arc::new(crate::actors::registry::Registry::new(
                settings,
                Store::start_in_memory().unwrap(),
            ));
            web_test::init_service(
                App::new()
                    .app_data(web::Data::new(ApiState { registry }))
                    .configure(crate::http::api::routes($token)),
            )
            .await
        }};
    }

    fn post(body: Value) -> web_test::TestRequest {
        web_test::TestRequest::post().uri(PATH).set_json(body)
    }

    #[actix_rt::test]
    async fn previews_through_the_production_routes_without_a_token() {
        let app = app!(Some("t0ken".to_string()));
        let body = json!({"name": "ramp", "tasks": [{"type": "load_test", "parameters": {
            "targets": target(), "pattern": "ramp_up", "base_rps": 0, "peak_rps": 40, "duration": "4s"}}]});
        let resp = web_test::call_service(&app, post(body).to_request()).await;
        assert_eq!(resp.status(), 200);
        let v: Value = web_test::read_body_json(resp).await;
        assert_eq!(v["duration_s"], 4.0);
        assert_eq!(v["tasks"][0]["name"], "task-1");
        assert_eq!(v["tasks"][0]["model"], "open");
        assert_eq!(v["tasks"][0]["planned_requests"], 80);
        assert_eq!(v["tasks"][0]["planned_rps"], json!([5.0, 15.0, 25.0, 35.0]));

        // Submitting still needs the token: the preview route is the only open POST.
        let submit = web_test::TestRequest::post()
            .uri("/api/executions")
            .set_json(json!({}))
            .to_request();
        let resp = web_test::call_service(&app, submit).await;
        assert_eq!(resp.status(), 401);
    }

    #[actix_rt::test]
    async fn invalid_plans_answer_the_submits_errors_naming_the_field() {
        let app = app!(None);
        let body = json!({"name": "x", "tasks": [{"type": "load_test", "parameters": {
            "targets": target(), "pattern": "spike", "base_rps": 10, "duration": "10s"}}]});
        let resp = web_test::call_service(&app, post(body).to_request()).await;
        assert_eq!(resp.status(), 422);
        let v: Value = web_test::read_body_json(resp).await;
        assert_eq!(v["error"], "invalid");
        assert_eq!(v["field"], "tasks[0].parameters.peak_rps");

        let resp = web_test::call_service(&app, post(json!([1, 2])).to_request()).await;
        assert_eq!(resp.status(), 422);

        let raw = web_test::TestRequest::post()
            .uri(PATH)
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"name\": ")
            .to_request();
        let resp = web_test::call_service(&app, raw).await;
        assert_eq!(resp.status(), 400);
        let v: Value = web_test::read_body_json(resp).await;
        assert_eq!(v["error"], "bad_json");

        let get = web_test::TestRequest::get().uri(PATH).to_request();
        let resp = web_test::call_service(&app, get).await;
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers().get("allow").unwrap(), "POST");
    }

    #[actix_rt::test]
    async fn validate_answers_valid_or_the_submits_errors_for_json_and_yaml() {
        let app = app!(Some("t0ken".to_string()));
        let validate = |body: Value| {
            web_test::TestRequest::post()
                .uri(VALIDATE_PATH)
                .set_json(body)
                .to_request()
        };
        let ok = json!({"tasks": [{"type": "load_test", "parameters": {
            "targets": target(), "base_rps": 5, "duration": "2s"}}]});
        let resp = web_test::call_service(&app, validate(ok)).await;
        assert_eq!(resp.status(), 200, "no token needed");
        let v: Value = web_test::read_body_json(resp).await;
        assert_eq!(v, json!({"valid": true}));

        let bad = json!({"tasks": [{"type": "load_test", "parameters": {
            "targets": target(), "base_rps": -1, "duration": "2s"}}]});
        let resp = web_test::call_service(&app, validate(bad)).await;
        assert_eq!(resp.status(), 422);
        let v: Value = web_test::read_body_json(resp).await;
        assert_eq!(v["field"], "tasks[0].parameters.base_rps");

        // A flow pasted as YAML, in a YAML body: its step's bad key is named like JSON's.
        let yaml = |text: &str| {
            web_test::TestRequest::post()
                .uri(VALIDATE_PATH)
                .insert_header(("content-type", "application/yaml"))
                .set_payload(text.to_string())
                .to_request()
        };
        let flow = "tasks:\n  - type: load_test\n    parameters:\n      base_rps: 5\n      duration: 2s\n      flow:\n        - name: home\n          request: {url: \"http://127.0.0.1:9/\"}\n";
        let resp = web_test::call_service(&app, yaml(flow)).await;
        assert_eq!(resp.status(), 200);
        let wrong = flow.replace("request:", "requets:");
        let resp = web_test::call_service(&app, yaml(&wrong)).await;
        assert_eq!(resp.status(), 422);
        let v: Value = web_test::read_body_json(resp).await;
        assert!(
            v["field"]
                .as_str()
                .unwrap()
                .starts_with("tasks[0].parameters.flow[0]"),
            "{v}"
        );
        let resp = web_test::call_service(&app, yaml("tasks: [\n  - x: : :")).await;
        assert_eq!(resp.status(), 400);
        let v: Value = web_test::read_body_json(resp).await;
        assert_eq!(v["error"], "bad_json");
    }
}
