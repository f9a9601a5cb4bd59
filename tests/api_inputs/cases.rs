//! The cases of `hostile_inputs_are_named_4xx_and_store_nothing`: each hostile request and
//! the 4xx answer it must get.

use serde_json::json;

use super::*;

/// What the error body's `field` must say.
#[derive(Debug)]
pub enum Field {
    Null,
    Is(&'static str),
}

pub struct Case {
    pub name: &'static str,
    pub path: String,
    pub request: Request,
    pub status: u16,
    pub error: &'static str,
    pub field: Field,
    /// A text the message must contain.
    pub says: &'static str,
}

fn case(
    name: &'static str,
    path: &str,
    request: Request,
    status: u16,
    error: &'static str,
    field: Field,
) -> Case {
    Case {
        name,
        path: path.to_string(),
        request,
        status,
        error,
        field,
        says: "",
    }
}

pub fn invalid(name: &'static str, body: Vec<u8>, field: &'static str) -> Case {
    case(
        name,
        EXECUTIONS,
        Request::json(body),
        422,
        "invalid",
        Field::Is(field),
    )
}

const URL: &str = "tasks[0].parameters.targets[0].url";
/// A client certificate the reader accepts (its key left out on purpose).
const CLIENT_CERT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tls/client-cert.pem"
);

pub fn cases() -> Vec<Case> {
    let big = {
        let mut v = br#"{"name": ""#.to_vec();
        v.extend(std::iter::repeat_n(b'a', 8 * 1024));
        v.extend(br#""}"#);
        v
    };
    let one = "/api/executions/0a7c0f8e-0000-4000-8000-000000000000";
    vec![
        case(
            "8 KiB body over a 4 KiB api.max_body_size",
            EXECUTIONS,
            Request::json(big.clone()),
            413,
            "too_large",
            Field::Null,
        ),
        case(
            "8 KiB chunked body (no Content-Length)",
            EXECUTIONS,
            Request {
                body: Body::Chunked(big),
                ..Request::json("")
            },
            413,
            "too_large",
            Field::Null,
        ),
        case(
            "arrays nested 2,000 deep (inside the size cap)",
            EXECUTIONS,
            Request::json(nested(2000)),
            400,
            "bad_json",
            Field::Null,
        ),
        Case {
            says: "line 3 column",
            ..case(
                "malformed JSON names line and column",
                EXECUTIONS,
                Request::json("{\n  \"name\": \"x\",\n  \"tasks\": [,]\n}"),
                400,
                "bad_json",
                Field::Null,
            )
        },
        case(
            "invalid UTF-8 in a string",
            EXECUTIONS,
            Request::json(b"{\"name\": \"\xff\"}".to_vec()),
            400,
            "bad_json",
            Field::Null,
        ),
        case(
            "a number out of range (1e400)",
            EXECUTIONS,
            Request::json(r#"{"tasks": [], "x": 1e400}"#),
            400,
            "bad_json",
            Field::Null,
        ),
        // A body is JSON whatever its content type says (curl's -d sends a form type), or
        // YAML when it says so; what parses as neither is a 400 naming the content type.
        Case {
            says: "Content-Type",
            ..case(
                "a form content type and a body that is not JSON",
                EXECUTIONS,
                Request {
                    content_type: Some("application/x-www-form-urlencoded"),
                    ..Request::json("name=x&tasks=")
                },
                400,
                "bad_json",
                Field::Null,
            )
        },
        Case {
            says: "YAML",
            ..case(
                "YAML that does not parse",
                EXECUTIONS,
                Request {
                    content_type: Some("application/yaml"),
                    ..Request::json("name: [unclosed\ntasks: {")
                },
                400,
                "bad_json",
                Field::Null,
            )
        },
        case(
            "a YAML plan with a target outside the allowlist",
            EXECUTIONS,
            Request {
                content_type: Some("text/yaml"),
                ..Request::json(
                    "name: y\ntasks:\n  - type: load_test\n    parameters:\n      \
                     targets: [{url: 'http://10.9.9.9/'}]\n      duration: 1s\n      base_rps: 1\n",
                )
            },
            422,
            "invalid",
            Field::Is(URL),
        ),
        Case {
            says: "empty",
            ..case(
                "empty body",
                EXECUTIONS,
                Request::json(""),
                400,
                "bad_json",
                Field::Null,
            )
        },
        invalid("a JSON array, not an object", b"[]".to_vec(), ""),
        invalid("a bare JSON string", br#""tasks""#.to_vec(), ""),
        invalid(
            "tasks is a string",
            br#"{"name": "x", "tasks": "load_test"}"#.to_vec(),
            "tasks",
        ),
        invalid(
            "base_rps is an object",
            body_with(json!({"base_rps": {"rps": 1}})),
            "tasks[0].parameters.base_rps",
        ),
        invalid(
            "duration is true",
            body_with(json!({"duration": true})),
            "tasks[0].parameters.duration",
        ),
        invalid(
            "negative duration",
            body_with(json!({"duration": -5})),
            "tasks[0].parameters.duration",
        ),
        invalid(
            "negative duration string",
            body_with(json!({"duration": "-5s"})),
            "tasks[0].parameters.duration",
        ),
        invalid(
            "negative concurrent_users",
            body_with(json!({"concurrent_users": -1})),
            "tasks[0].parameters.concurrent_users",
        ),
        invalid(
            "unknown task type",
            br#"{"tasks": [{"type": "fork_bomb", "parameters": {}}]}"#.to_vec(),
            "tasks[0].type",
        ),
        invalid("a URL that does not parse", with_url("ht!tp:/x"), URL),
        invalid("a private address", with_url("http://10.1.2.3/"), URL),
        invalid(
            "the cloud metadata address",
            with_url("http://169.254.169.254/latest/meta-data/"),
            URL,
        ),
        invalid(
            "a private address written as one number",
            with_url("http://167837955/"),
            URL,
        ),
        invalid(
            "a private address mapped into IPv6",
            with_url("http://[::ffff:10.1.2.3]/"),
            URL,
        ),
        invalid("an https private address", with_url("https://10.1.2.3/"), URL),
        invalid(
            "a CA file that does not exist",
            body_with(json!({"tls": {"ca": "/nonexistent/ca.pem"}})),
            "tasks[0].parameters.tls.ca",
        ),
        invalid(
            "a client certificate without its key",
            body_with(json!({"tls": {"cert": CLIENT_CERT}})),
            "tasks[0].parameters.tls.key",
        ),
        invalid(
            "an http_version that does not exist",
            body_with(json!({"http_version": 3})),
            "tasks[0].parameters.http_version",
        ),
        invalid(
            "a security scan of an https URL",
            br#"{"tasks": [{"type": "security_test", "parameters": {"target": "https://127.0.0.1:9/", "endpoints": [{"path": "/", "params": ["q"]}]}}]}"#
                .to_vec(),
            "tasks[0].parameters.target",
        ),
        invalid("a file URL", with_url("file:///etc/passwd"), URL),
        invalid(
            "unknown top-level key",
            {
                let mut doc: Value = serde_json::from_slice(&body_with(json!({}))).unwrap();
                doc["colour"] = json!("blue");
                doc.to_string().into_bytes()
            },
            "colour",
        ),
        invalid(
            "unknown key in the parameters",
            body_with(json!({"rps": 10})),
            "tasks[0].parameters.rps",
        ),
        invalid("missing tasks", br#"{"name": "x"}"#.to_vec(), "tasks"),
        invalid(
            "no task",
            br#"{"name": "x", "tasks": []}"#.to_vec(),
            "tasks",
        ),
        // Too large for a `Duration`: once a panic in the validator, now a named error.
        invalid(
            "a duration of 1e300 seconds",
            body_with(json!({"duration": 1e300})),
            "tasks[0].parameters.duration",
        ),
        invalid(
            "a duration over orchestrator.task_timeout",
            body_with(json!({"duration": "1000000h"})),
            "tasks[0].parameters.duration",
        ),
        invalid(
            "a wave of a million pieces",
            body_with(
                json!({"duration": "1h", "pattern": "wave", "peak_rps": 20, "wave_period": "1ms"}),
            ),
            "tasks[0].parameters.wave_period",
        ),
        case(
            "GET an unknown id",
            one,
            Request::get(),
            404,
            "not_found",
            Field::Null,
        ),
        case(
            "DELETE an unknown id",
            one,
            Request::bare("DELETE"),
            404,
            "not_found",
            Field::Null,
        ),
        case(
            "DELETE the unknown id again",
            one,
            Request::bare("DELETE"),
            404,
            "not_found",
            Field::Null,
        ),
        case(
            "the report of an unknown id",
            &format!("{one}/report"),
            Request::get(),
            404,
            "not_found",
            Field::Null,
        ),
        case(
            "PUT on the collection",
            EXECUTIONS,
            Request {
                method: "PUT",
                ..Request::json(body_with(json!({})))
            },
            405,
            "method_not_allowed",
            Field::Null,
        ),
        case(
            "PUT on an execution",
            one,
            Request {
                method: "PUT",
                ..Request::json("{}")
            },
            405,
            "method_not_allowed",
            Field::Null,
        ),
        case(
            "PATCH with no change",
            one,
            Request {
                method: "PATCH",
                ..Request::json("{}")
            },
            422,
            "invalid",
            Field::Is(""),
        ),
        case(
            "PATCH with an unknown key",
            one,
            Request {
                method: "PATCH",
                ..Request::json(r#"{"speed": 2}"#)
            },
            400,
            "bad_json",
            Field::Null,
        ),
        case(
            "POST on the health check",
            "/api/health",
            Request::json("{}"),
            405,
            "method_not_allowed",
            Field::Null,
        ),
        case(
            "DELETE on the node list",
            "/api/nodes",
            Request::bare("DELETE"),
            405,
            "method_not_allowed",
            Field::Null,
        ),
        case(
            "POST on a report",
            &format!("{one}/report"),
            Request::json("{}"),
            405,
            "method_not_allowed",
            Field::Null,
        ),
        case(
            "unknown API path",
            "/api/executionz",
            Request::get(),
            404,
            "not_found",
            Field::Null,
        ),
        case(
            "unknown path",
            "/../../etc/passwd",
            Request::get(),
            404,
            "not_found",
            Field::Null,
        ),
        case(
            "the cluster route without a WebSocket upgrade",
            "/cluster",
            Request::get(),
            400,
            "bad_request",
            Field::Null,
        ),
    ]
}
