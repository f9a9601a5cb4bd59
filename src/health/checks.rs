//! Custom checks from `health_monitoring.checks`: an HTTP GET that must answer the expected
//! status (any 2xx or 3xx when none is given; redirects are not followed), a TCP connect
//! that must open, or a command (run without a shell) that must exit 0, each within the
//! check's timeout. A failed command's message is the first line of its standard error. A
//! check that fails is critical; one that passes is healthy however slow it was (its time is
//! the result's `value`, in ms). A `prometheus` check is judged by the value it reads
//! instead ([`super::prometheus`]).

use std::time::{Duration, Instant};

use super::{CheckKind, CheckResult, Status};
use crate::settings::{CheckSpec, CheckTarget};

/// The check ids of a list of custom checks, in order: `<type>:<name>` (`http:api`); a
/// repeated id gets `#2`, `#3`... so every check keeps its own alert count.
pub fn check_ids(specs: &[CheckSpec]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<String, u32>::new();
    specs
        .iter()
        .map(|s| {
            let base = format!("{}:{}", kind_of(&s.target).as_str(), s.name);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { base } else { format!("{base}#{n}") }
        })
        .collect()
}

fn kind_of(target: &CheckTarget) -> CheckKind {
    match target {
        CheckTarget::Http { .. } => CheckKind::Http,
        CheckTarget::Tcp { .. } => CheckKind::Tcp,
        CheckTarget::Command { .. } => CheckKind::Command,
        CheckTarget::Prometheus { .. } => CheckKind::Prometheus,
    }
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Builtin => "builtin",
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Command => "command",
            CheckKind::Code => "code",
            CheckKind::Metric => "metric",
            CheckKind::Prometheus => "prometheus",
        }
    }
}

/// An HTTP client for checks: no redirects followed, so a 3xx is seen as such. `!Send`:
/// make one per arbiter.
pub fn http_client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .add_default_header(("user-agent", "mcpt-health-check"))
        .finish()
}

/// Runs one check.
pub async fn run(client: &awc::Client, spec: &CheckSpec, check_id: String) -> CheckResult {
    let started = Instant::now();
    let outcome = match &spec.target {
        CheckTarget::Http { url, expect_status } => {
            http(client, url, *expect_status, spec.timeout).await
        }
        CheckTarget::Tcp { address } => tcp(address, spec.timeout).await,
        CheckTarget::Command { program, args } => command(program, args, spec.timeout).await,
        CheckTarget::Prometheus {
            url,
            series,
            levels,
        } => {
            let read = super::prometheus::Read {
                name: &spec.name,
                url,
                series,
                levels,
                timeout: spec.timeout,
            };
            return read.run(client, check_id).await;
        }
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status, message, value) = match outcome {
        Ok(what) => (Status::Healthy, format!("{what} in {ms:.0} ms"), Some(ms)),
        Err(Failure::Answered(why)) => (Status::Critical, why, Some(ms)),
        Err(Failure::NoAnswer(why)) => (Status::Critical, why, None),
    };
    CheckResult {
        check_id,
        name: spec.name.clone(),
        kind: kind_of(&spec.target),
        status,
        message,
        unit: value.map(|_| "ms".to_string()),
        value,
    }
}

enum Failure {
    /// The target answered, wrongly.
    Answered(String),
    /// No answer: refused, unreachable, timed out.
    NoAnswer(String),
}

async fn http(
    client: &awc::Client,
    url: &url::Url,
    expect_status: Option<u16>,
    timeout: Duration,
) -> Result<String, Failure> {
    let send = client.get(url.as_str()).timeout(timeout).send();
    let resp = match tokio::time::timeout(timeout, send).await {
        Err(_) | Ok(Err(awc::error::SendRequestError::Timeout)) => {
            return Err(Failure::NoAnswer(format!(
                "GET {url}: no answer within {timeout:?}"
            )));
        }
        Ok(Err(e)) => return Err(Failure::NoAnswer(format!("GET {url}: {e}"))),
        Ok(Ok(resp)) => resp,
    };
    let got = resp.status();
    let passed = match expect_status {
        Some(want) => got.as_u16() == want,
        None => got.is_success() || got.is_redirection(),
    };
    if passed {
        Ok(format!("GET {url}: {got}"))
    } else {
        let want = expect_status.map_or("2xx or 3xx".to_string(), |s| s.to_string());
        Err(Failure::Answered(format!(
            "GET {url}: status {got}, expected {want}"
        )))
    }
}

async fn tcp(address: &str, timeout: Duration) -> Result<String, Failure> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_stream)) => Ok(format!("connected to {address}")),
        Ok(Err(e)) => Err(Failure::NoAnswer(format!("connect to {address}: {e}"))),
        Err(_) => Err(Failure::NoAnswer(format!(
            "connect to {address}: no answer within {timeout:?}"
        ))),
    }
}

async fn command(program: &str, args: &[String], timeout: Duration) -> Result<String, Failure> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::NoAnswer(format!("{program}: could not start: {e}")))?;
    // On timeout the future is dropped with the child, which kills it.
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            return Err(Failure::NoAnswer(format!(
                "{program}: did not exit within {timeout:?}"
            )));
        }
        Ok(Err(e)) => return Err(Failure::NoAnswer(format!("{program}: {e}"))),
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        return Ok(format!("{program}: exited 0"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    Err(Failure::Answered(match first {
        Some(line) => line.chars().take(500).collect(),
        None => format!("{program}: {}", out.status),
    }))
}

/// For the checks' tests: an HTTP server on 127.0.0.1:0, one worker, with the routes
/// `configure` adds; answers its address and a handle that stops it.
#[cfg(test)]
pub(crate) fn loopback_server(
    configure: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let srv =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
    let handle = srv.handle();
    actix_rt::spawn(srv);
    (addr, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, target: CheckTarget) -> CheckSpec {
        CheckSpec {
            name: name.into(),
            target,
            timeout: Duration::from_secs(2),
            interval: None,
        }
    }

    fn http_spec(name: &str, url: &str, expect_status: Option<u16>) -> CheckSpec {
        spec(
            name,
            CheckTarget::Http {
                url: url.parse().unwrap(),
                expect_status,
            },
        )
    }

    #[test]
    fn ids_are_unique_and_stable() {
        let specs = [
            http_spec("api", "http://127.0.0.1:1/", None),
            spec(
                "api",
                CheckTarget::Tcp {
                    address: "127.0.0.1:1".into(),
                },
            ),
            http_spec("api", "http://127.0.0.1:2/", None),
        ];
        assert_eq!(check_ids(&specs), ["http:api", "tcp:api", "http:api#2"]);
        assert_eq!(check_ids(&specs), check_ids(&specs));
    }

    /// A server on 127.0.0.1:0 answering `/s/{code}` with that status.
    fn status_server() -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
        use actix_web::{HttpResponse, web};
        loopback_server(|cfg| {
            cfg.route(
                "/s/{code}",
                web::get().to(|code: web::Path<u16>| async move {
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(code.into_inner()).unwrap(),
                    )
                    .insert_header(("location", "/s/200"))
                    .finish()
                }),
            );
        })
    }

    #[actix_rt::test]
    async fn http_checks_pass_on_the_expected_status() {
        let (addr, handle) = status_server();
        let client = http_client();
        let url = |code: u16| format!("http://{addr}/s/{code}");
        let cases = [
            (url(200), None, Status::Healthy),
            (url(302), None, Status::Healthy),
            (url(404), None, Status::Critical),
            (url(500), None, Status::Critical),
            (url(204), Some(204), Status::Healthy),
            (url(200), Some(204), Status::Critical),
            (url(503), Some(503), Status::Healthy),
        ];
        for (u, expect, want) in cases {
            let r = run(&client, &http_spec("t", &u, expect), "http:t".into()).await;
            assert_eq!(r.status, want, "{u} expecting {expect:?}: {}", r.message);
            assert_eq!(r.kind, CheckKind::Http);
            assert!(r.value.is_some(), "answered: timed");
        }
        handle.stop(false).await;
    }

    #[actix_rt::test]
    async fn unreachable_targets_fail() {
        // A port bound and released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = http_client();
        let r = run(
            &client,
            &http_spec("t", &format!("http://127.0.0.1:{port}/"), None),
            "http:t".into(),
        )
        .await;
        assert_eq!(r.status, Status::Critical, "{}", r.message);
        assert_eq!(r.value, None);
        let tcp_spec = |address: String| spec("db", CheckTarget::Tcp { address });
        let r = run(
            &client,
            &tcp_spec(format!("127.0.0.1:{port}")),
            "tcp:db".into(),
        )
        .await;
        assert_eq!(
            (r.status, r.kind),
            (Status::Critical, CheckKind::Tcp),
            "{}",
            r.message
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let r = run(&client, &tcp_spec(open.to_string()), "tcp:db".into()).await;
        assert_eq!(r.status, Status::Healthy, "{}", r.message);
    }

    #[actix_rt::test]
    async fn a_silent_target_times_out() {
        // Accepts connections (the kernel's backlog) but never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = http_spec("slow", &format!("http://{addr}/"), None);
        s.timeout = Duration::from_millis(200);
        let r = run(&http_client(), &s, "http:slow".into()).await;
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("no answer within"), "{}", r.message);
        drop(listener);
    }

    fn command_spec(run: &[&str]) -> CheckSpec {
        let mut words = run.iter().map(|w| w.to_string());
        spec(
            "cmd",
            CheckTarget::Command {
                program: words.next().unwrap(),
                args: words.collect(),
            },
        )
    }

    #[actix_rt::test]
    async fn command_checks_pass_on_exit_0() {
        let client = http_client();
        let r = run(&client, &command_spec(&["true"]), "command:cmd".into()).await;
        assert_eq!((r.status, r.kind), (Status::Healthy, CheckKind::Command));
        let failing = [
            "sh",
            "-c",
            "echo; echo 'disk gone' >&2; echo more >&2; exit 3",
        ];
        let r = run(&client, &command_spec(&failing), "command:cmd".into()).await;
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.message, "disk gone", "the first line of stderr");
        let r = run(&client, &command_spec(&["false"]), "command:cmd".into()).await;
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("exit status: 1"), "{}", r.message);
        let r = run(&client, &command_spec(&["/no/such/program"]), "c".into()).await;
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("could not start"), "{}", r.message);
    }

    #[actix_rt::test]
    async fn a_slow_command_times_out() {
        let mut s = command_spec(&["sleep", "30"]);
        s.timeout = Duration::from_millis(200);
        let r = run(&http_client(), &s, "command:cmd".into()).await;
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("did not exit within"), "{}", r.message);
    }
}
