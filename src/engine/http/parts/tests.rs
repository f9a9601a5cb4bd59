//! `send_parts` against servers of the test's own on 127.0.0.1:0 that record what they got
//! and answer by path: HTTP/1.1 written by hand on httparse, HTTP/2 by the `h2` crate's
//! server, each in clear and over TLS (a generated certificate, ALPN).

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::spawn_local;

use super::{BODY_CAP, Keep, Kept, Parts, Reply};
use crate::allowlist::Allowlist;
use crate::engine::http::HttpSender;
use crate::engine::schedule::{Arrivals, LoadProfile, Model, Pattern};
use crate::engine::target::{ExpectedStatus, HttpVersion, Pem, Target, Tls, Traffic};
use crate::stats::{ErrorKind, Outcome};

/// A guard against a hang, never the thing asserted.
const GUARD: Duration = Duration::from_secs(120);
const JSON: &str = r#"{"user":{"id":42,"name":"Ada"},"tags":["a","b","c"],"token":"t0k3n"}"#;
/// A body past the cap.
const BIG: usize = BODY_CAP + 1000;

/// Runs `f` on a current-thread runtime inside a LocalSet, as load workers do.
fn run<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        tokio::time::timeout(GUARD, f)
            .await
            .expect("test hung past its guard")
    })
}

/// A request as the server got it.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    /// Every value of a header, in order (names compared without case).
    fn all(&self, name: &str) -> Vec<&str> {
        let named = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        named.map(|(_, v)| v.as_str()).collect()
    }
}

/// What the server answers on a path.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// HTTP/1.1: chunked encoding. HTTP/2: several DATA frames and no `content-length`.
    chunked: bool,
    /// An informational head (103 with a `link`) before the final one, and a trailer after
    /// the body (chunked).
    early_and_late: bool,
}

fn answer(path: &str) -> Answer {
    let ok = |body: Vec<u8>, chunked| Answer {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body,
        chunked,
        early_and_late: false,
    };
    match path {
        "/json" => ok(JSON.into(), false),
        "/json-chunked" => ok(JSON.into(), true),
        "/big" => ok(big(), false),
        "/big-chunked" => ok(big(), true),
        "/early-and-late" => Answer {
            early_and_late: true,
            ..ok(JSON.into(), true)
        },
        "/cookies" => Answer {
            status: 200,
            headers: vec![
                ("set-cookie", "a=1; Path=/".into()),
                ("x-between", "yes".into()),
                ("set-cookie", "b=2; HttpOnly".into()),
                ("set-cookie", "c=3".into()),
            ],
            body: b"ok".to_vec(),
            chunked: false,
            early_and_late: false,
        },
        "/redirect" => Answer {
            status: 302,
            headers: vec![("location", "/json".into()), ("set-cookie", "hop=1".into())],
            body: b"moved".to_vec(),
            chunked: false,
            early_and_late: false,
        },
        "/missing" => Answer {
            status: 404,
            headers: vec![],
            body: b"no such thing".to_vec(),
            chunked: false,
            early_and_late: false,
        },
        _ => ok(b"ok".to_vec(), false),
    }
}

/// A body larger than the cap, not all one byte (so a wrong slice shows).
fn big() -> Vec<u8> {
    (0..BIG).map(|i| (i % 251) as u8).collect()
}

/// How a test server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    H1,
    H1Tls,
    /// h2c with prior knowledge.
    H2,
    /// h2 by ALPN.
    H2Tls,
}

const MODES: [Mode; 4] = [Mode::H1, Mode::H1Tls, Mode::H2, Mode::H2Tls];

impl Mode {
    fn tls(self) -> bool {
        matches!(self, Mode::H1Tls | Mode::H2Tls)
    }
    fn h2(self) -> bool {
        matches!(self, Mode::H2 | Mode::H2Tls)
    }
}

struct Server {
    mode: Mode,
    port: u16,
    /// The CA that signed the server's certificate, over TLS.
    ca: Option<String>,
    got: Rc<RefCell<Vec<Got>>>,
}

impl Server {
    fn last(&self) -> Got {
        self.got
            .borrow()
            .last()
            .cloned()
            .expect("a request reached the server")
    }
}

async fn server(mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Rc::new(RefCell::new(Vec::new()));
    let tls = mode.tls().then(|| {
        use crate::http::target::{CertSource, TlsOptions, server_tls};
        server_tls(&TlsOptions {
            cert: CertSource::Generated {
                extra_names: vec![],
            },
            client_ca: None,
            h2: mode.h2(),
        })
        .expect("server TLS")
    });
    let ca = tls.as_ref().and_then(|t| t.ca_pem.clone());
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
    let g = got.clone();
    spawn_local(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, got) = (acceptor.clone(), g.clone());
            spawn_local(async move {
                let Some(acceptor) = acceptor else {
                    return serve(sock, mode.h2(), got).await;
                };
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                assert_eq!(h2, mode.h2(), "ALPN chose the mode's protocol");
                serve(tls, h2, got).await;
            });
        }
    });
    Server {
        mode,
        port,
        ca,
        got,
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    io: S,
    h2: bool,
    got: Rc<RefCell<Vec<Got>>>,
) {
    if h2 {
        serve_h2(io, got).await;
    } else {
        serve_h1(io, got).await;
    }
}

/// Reads requests (head and `content-length` body) and answers each.
async fn serve_h1<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, got: Rc<RefCell<Vec<Got>>>) {
    let mut buf = Vec::new();
    loop {
        let (mut req, used) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = parsed.parse(&buf) {
                let req = Got {
                    method: parsed.method.unwrap_or_default().into(),
                    path: parsed.path.unwrap_or_default().into(),
                    headers: (parsed.headers.iter())
                        .map(|h| (h.name.into(), String::from_utf8_lossy(h.value).into()))
                        .collect(),
                    body: Vec::new(),
                };
                break (req, n);
            }
            if !read_more(&mut io, &mut buf).await {
                return;
            }
        };
        buf.drain(..used);
        let length = req
            .all("content-length")
            .first()
            .map_or(0, |n| n.parse().unwrap());
        while buf.len() < length {
            if !read_more(&mut io, &mut buf).await {
                return;
            }
        }
        req.body = buf.drain(..length).collect();
        let path = req.path.split('?').next().unwrap_or_default().to_string();
        got.borrow_mut().push(req);
        if io.write_all(&h1_bytes(&answer(&path))).await.is_err() {
            return;
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut piece = [0u8; 16 << 10];
    match io.read(&mut piece).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&piece[..n]);
            true
        }
    }
}

/// Pieces of a chunked body: several small ones for a small body.
fn pieces(body: &[u8]) -> std::slice::Chunks<'_, u8> {
    body.chunks(if body.len() < 1000 { 7 } else { 64 << 10 })
}

fn h1_bytes(a: &Answer) -> Vec<u8> {
    let mut out = Vec::new();
    if a.early_and_late {
        out.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n");
    }
    out.extend_from_slice(format!("HTTP/1.1 {} X\r\n", a.status).as_bytes());
    for (k, v) in &a.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if a.chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        for piece in pieces(&a.body) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        if a.early_and_late {
            out.extend_from_slice(b"x-trailer: late\r\n");
        }
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", a.body.len()).as_bytes());
        out.extend_from_slice(&a.body);
    }
    out
}

async fn serve_h2<S: AsyncRead + AsyncWrite + Unpin>(io: S, got: Rc<RefCell<Vec<Got>>>) {
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        spawn_local(respond_h2(req, respond, got.clone()));
    }
}

async fn respond_h2(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    got: Rc<RefCell<Vec<Got>>>,
) {
    let (head, mut body) = req.into_parts();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        data.extend_from_slice(&chunk);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let path = head.uri.path_and_query().map_or("", |p| p.as_str());
    got.borrow_mut().push(Got {
        method: head.method.to_string(),
        path: path.into(),
        headers: (head.headers.iter())
            .map(|(k, v)| (k.as_str().into(), v.to_str().unwrap().into()))
            .collect(),
        body: data,
    });
    let a = answer(head.uri.path());
    if a.early_and_late {
        let early = http::Response::builder()
            .status(103)
            .header("link", "</style.css>");
        respond.send_informational(early.body(()).unwrap()).unwrap();
    }
    let mut resp = http::Response::builder().status(a.status);
    for (k, v) in &a.headers {
        resp = resp.header(*k, v);
    }
    if !a.chunked {
        resp = resp.header("content-length", a.body.len());
    }
    let Ok(mut stream) = respond.send_response(resp.body(()).unwrap(), a.body.is_empty()) else {
        return;
    };
    if a.chunked {
        for piece in pieces(&a.body) {
            let _ = stream.send_data(Bytes::copy_from_slice(piece), false);
        }
        if a.early_and_late {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-trailer", http::HeaderValue::from_static("late"));
            let _ = stream.send_trailers(trailers);
        } else {
            let _ = stream.send_data(Bytes::new(), true);
        }
    } else if !a.body.is_empty() {
        let _ = stream.send_data(Bytes::from(a.body), true);
    }
}

/// A task of one target on `server` with `method`, its own headers and body.
fn traffic(server: &Server, method: &str, follow_redirects: bool) -> Traffic {
    let scheme = if server.mode.tls() { "https" } else { "http" };
    let tls = Tls {
        ca: server.ca.as_ref().map(|pem| Pem {
            path: "test-ca.pem".into(),
            pem: pem.clone(),
        }),
        ..Tls::default()
    };
    let version = match server.mode {
        Mode::H1 | Mode::H1Tls => HttpVersion::Http1,
        Mode::H2 => HttpVersion::Http2,
        Mode::H2Tls => HttpVersion::Auto,
    };
    let target = Target {
        name: "parts".into(),
        url: format!("{scheme}://127.0.0.1:{}/static?from=target", server.port)
            .parse()
            .unwrap(),
        method: method.into(),
        headers: vec![
            ("x-static".into(), "a".into()),
            ("Cookie".into(), "old=1".into()),
            ("content-type".into(), "text/plain".into()),
        ],
        body: Some("the target's body".into()),
        weight: 1,
        timeout: Duration::from_secs(30),
        expected_status: ExpectedStatus::SuccessOrRedirect,
        expected_response_time: None,
        follow_redirects,
        tls,
        http_version: version,
    };
    Traffic {
        targets: vec![target],
        flow: None,
        profile: LoadProfile {
            duration: Duration::from_secs(1),
            base_rps: 1.0,
            peak_rps: 1.0,
            pattern: Pattern::Constant,
            seed: 1,
        },
        arrivals: Arrivals::default(),
        model: Model::default(),
        concurrent_users: 1,
        think_time: Duration::ZERO,
        connections: Some(2),
    }
}

fn sender(server: &Server, method: &str, follow_redirects: bool) -> Rc<HttpSender> {
    let traffic = traffic(server, method, follow_redirects);
    HttpSender::new(&traffic, Allowlist::default(), 2, Some("n-7"))
}

fn get(path: &str) -> Parts {
    Parts {
        path_and_query: path.into(),
        ..Parts::default()
    }
}

const ALL: Keep = Keep {
    headers: true,
    set_cookie: false,
    body: true,
};

async fn send(sender: &HttpSender, parts: &Parts, keep: Keep) -> (Outcome, Option<Reply>) {
    let deadline = Instant::now() + GUARD;
    sender.send_parts(0, parts, keep, deadline).await
}

#[test]
fn templated_path_extra_headers_and_body_reach_the_server_exactly() {
    let parts = Parts {
        path_and_query: "/users/42?q=a%20b&x=1#fragment".into(),
        headers: vec![
            ("cookie".into(), "sid=abc".into()),
            ("authorization".into(), "Bearer t0k".into()),
            ("content-type".into(), "application/json".into()),
            ("x-trace".into(), "7".into()),
            // Computed instead.
            ("content-length".into(), "999".into()),
        ],
        body: Some(Bytes::from_static(JSON.as_bytes())),
    };
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let sender = sender(&server, "POST", false);
            let (outcome, reply) = send(&sender, &parts, Keep::default()).await;
            assert_eq!(
                (outcome.status, outcome.error),
                (Some(200), None),
                "{mode:?}"
            );
            assert_eq!(reply.map(|r| r.status), Some(200));
            let got = server.last();
            assert_eq!(got.method, "POST");
            assert_eq!(got.path, "/users/42?q=a%20b&x=1", "{mode:?}");
            assert_eq!(got.body, JSON.as_bytes(), "{mode:?}");
            let length = JSON.len().to_string();
            let ua = concat!("mcpt/", env!("CARGO_PKG_VERSION"));
            if mode.h2() {
                // The part's header replaces the target's of that name; the rest is kept.
                for (name, values) in [
                    ("cookie", vec!["sid=abc"]),
                    ("authorization", vec!["Bearer t0k"]),
                    ("content-type", vec!["application/json"]),
                    ("x-trace", vec!["7"]),
                    ("x-static", vec!["a"]),
                    ("content-length", vec![length.as_str()]),
                    ("user-agent", vec![ua]),
                    ("x-mcpt-node", vec!["n-7"]),
                ] {
                    assert_eq!(got.all(name), values, "{mode:?} {name}");
                }
                assert_eq!(got.headers.len(), 8, "{mode:?}: {:?}", got.headers);
            } else {
                let host = format!("127.0.0.1:{}", server.port);
                let expected = [
                    ("host", host.as_str()),
                    ("user-agent", ua),
                    ("x-mcpt-node", "n-7"),
                    ("x-static", "a"),
                    ("cookie", "sid=abc"),
                    ("authorization", "Bearer t0k"),
                    ("content-type", "application/json"),
                    ("x-trace", "7"),
                    ("content-length", length.as_str()),
                ];
                let expected: Vec<(String, String)> = (expected.iter())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(got.headers, expected, "{mode:?}");
            }
        });
    }
}

#[test]
fn without_a_body_of_its_own_a_step_sends_the_targets_and_get_sends_none() {
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let post = sender(&server, "POST", false);
            let (outcome, _) = send(&post, &get("/p"), Keep::default()).await;
            assert_eq!(outcome.status, Some(200));
            let got = server.last();
            assert_eq!(got.body, b"the target's body", "{mode:?}");
            assert_eq!(got.all("cookie"), ["old=1"], "{mode:?}");
            let get_sender = sender(&server, "GET", false);
            let parts = Parts {
                body: Some(Bytes::from_static(b"ignored")),
                ..get("/g")
            };
            let (outcome, _) = send(&get_sender, &parts, Keep::default()).await;
            assert_eq!(outcome.status, Some(200));
            let got = server.last();
            assert_eq!((got.method.as_str(), got.path.as_str()), ("GET", "/g"));
            assert!(got.body.is_empty(), "{mode:?}");
            assert!(got.all("content-length").is_empty(), "{mode:?}");
        });
    }
}

#[test]
fn a_json_body_comes_back_whole_chunked_or_sized() {
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let sender = sender(&server, "GET", false);
            for path in ["/json", "/json-chunked", "/json", "/json-chunked"] {
                let (outcome, reply) = send(&sender, &get(path), ALL).await;
                let reply = reply.expect("a reply");
                assert_eq!(reply.status, 200);
                assert_eq!(reply.body, JSON.as_bytes(), "{mode:?} {path}");
                assert!(!reply.truncated);
                assert_eq!(outcome.bytes, JSON.len() as u64);
                assert_eq!(reply.header("content-type"), Some("application/json"));
                let framing = if path.ends_with("chunked") {
                    (!mode.h2()).then_some("chunked")
                } else {
                    None
                };
                assert_eq!(reply.header("transfer-encoding"), framing, "{mode:?}");
                serde_json::from_slice::<serde_json::Value>(&reply.body).expect("JSON");
            }
        });
    }
}

#[test]
fn repeated_set_cookie_headers_are_all_kept_in_order() {
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let sender = sender(&server, "GET", false);
            let (_, reply) = send(&sender, &get("/cookies"), ALL).await;
            let reply = reply.expect("a reply");
            let cookies: Vec<&str> = (reply.headers.iter())
                .filter(|(k, _)| k == "set-cookie")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(cookies, ["a=1; Path=/", "b=2; HttpOnly", "c=3"], "{mode:?}");
            assert_eq!(reply.header("x-between"), Some("yes"));
            assert!(reply.headers.iter().all(|(k, _)| !k.starts_with(':')));
            assert_eq!(reply.body, "ok");
        });
    }
}

#[test]
fn only_the_final_heads_headers_are_kept() {
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let sender = sender(&server, "GET", false);
            let (outcome, reply) = send(&sender, &get("/early-and-late"), ALL).await;
            assert_eq!(outcome.status, Some(200), "{mode:?}");
            let reply = reply.expect("a reply");
            let names: Vec<&str> = reply.headers.iter().map(|(k, _)| k.as_str()).collect();
            // Neither the 103's `link` nor the trailer.
            let framing = if mode.h2() {
                vec!["content-type"]
            } else {
                vec!["content-type", "transfer-encoding"]
            };
            assert_eq!(names, framing, "{mode:?}");
            assert_eq!(reply.body, JSON.as_bytes(), "{mode:?}");
        });
    }
}

#[test]
fn a_body_over_the_cap_is_truncated_and_counted_whole() {
    let whole = big();
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let sender = sender(&server, "GET", false);
            for path in ["/big", "/big-chunked"] {
                let (outcome, reply) = send(&sender, &get(path), ALL).await;
                let reply = reply.expect("a reply");
                assert_eq!(outcome.bytes, BIG as u64, "{mode:?} {path}");
                assert!(reply.truncated, "{mode:?} {path}");
                assert_eq!(reply.body.len(), BODY_CAP);
                assert!(
                    reply.body == whole[..BODY_CAP],
                    "{mode:?} {path}: the body's start"
                );
            }
            // The connection carries on: a small body after a large one.
            let (_, reply) = send(&sender, &get("/json"), ALL).await;
            assert_eq!(reply.unwrap().body, JSON.as_bytes());
        });
    }
}

#[test]
fn keep_default_keeps_the_status_only() {
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let sender = sender(&server, "GET", false);
            for path in ["/cookies", "/json-chunked", "/big"] {
                let (outcome, reply) = send(&sender, &get(path), Keep::default()).await;
                let expected = Reply {
                    status: 200,
                    ..Reply::default()
                };
                assert_eq!(reply, Some(expected), "{mode:?} {path}");
                assert!(outcome.bytes > 0, "the body is still counted");
            }
            // Headers only, or body only.
            let headers = Keep {
                headers: true,
                ..Keep::default()
            };
            let (_, reply) = send(&sender, &get("/json"), headers).await;
            let reply = reply.unwrap();
            assert!(reply.body.is_empty() && !reply.headers.is_empty());
            let body = Keep {
                body: true,
                ..Keep::default()
            };
            let (_, reply) = send(&sender, &get("/json"), body).await;
            let reply = reply.unwrap();
            assert!(reply.headers.is_empty() && reply.body == JSON.as_bytes());
            // A cookie jar's: the set-cookie headers alone.
            let cookies = Keep {
                set_cookie: true,
                ..Keep::default()
            };
            let (_, reply) = send(&sender, &get("/cookies"), cookies).await;
            let reply = reply.unwrap();
            assert!(!reply.headers.is_empty(), "{mode:?}");
            assert!(
                reply.headers.iter().all(|(k, _)| k == "set-cookie"),
                "{mode:?}: {:?}",
                reply.headers
            );
        });
    }
}

#[test]
fn redirects_carry_the_parts_and_the_reply_is_the_final_hops() {
    let parts = Parts {
        headers: vec![("authorization".into(), "Bearer t0k".into())],
        body: Some(Bytes::from_static(b"{}")),
        ..get("/redirect")
    };
    for mode in MODES {
        run(async {
            let server = server(mode).await;
            let following = sender(&server, "POST", true);
            let (outcome, reply) = send(&following, &parts, ALL).await;
            assert_eq!(outcome.status, Some(200), "{mode:?}");
            let reply = reply.expect("a reply");
            assert_eq!(reply.body, JSON.as_bytes());
            assert_eq!(reply.header("set-cookie"), None, "the first hop's headers");
            let got = server.got.borrow().clone();
            assert_eq!(got.len(), 2);
            assert_eq!(
                (got[0].method.as_str(), got[0].body.as_slice()),
                ("POST", &b"{}"[..])
            );
            // 302 after a POST goes on as a GET, without the body, with the part's headers.
            assert_eq!(
                (got[1].method.as_str(), got[1].path.as_str()),
                ("GET", "/json")
            );
            assert!(got[1].body.is_empty());
            assert_eq!(got[1].all("authorization"), ["Bearer t0k"], "{mode:?}");
            // Not following: the 302 itself is the reply.
            let staying = sender(&server, "POST", false);
            let (outcome, reply) = send(&staying, &parts, ALL).await;
            assert_eq!((outcome.status, outcome.error), (Some(302), None));
            let reply = reply.expect("a reply");
            assert_eq!(reply.header("location"), Some("/json"));
            assert_eq!(reply.header("set-cookie"), Some("hop=1"));
            assert_eq!(reply.body, "moved");
        });
    }
}

#[test]
fn an_unexpected_status_has_a_reply_and_a_failed_exchange_has_none() {
    run(async {
        let server = server(Mode::H1).await;
        let sender = sender(&server, "GET", false);
        let (outcome, reply) = send(&sender, &get("/missing"), ALL).await;
        assert_eq!(
            (outcome.status, outcome.error),
            (Some(404), Some(ErrorKind::Status))
        );
        assert_eq!(reply.unwrap().body, "no such thing");
        // Nothing listens on the port any more: no status, no reply.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let nowhere = Server { port, ..server };
        let sender = self::sender(&nowhere, "GET", false);
        let (outcome, reply) = send(&sender, &get("/json"), ALL).await;
        assert_eq!(
            (outcome.status, outcome.error),
            (None, Some(ErrorKind::Connect))
        );
        assert_eq!(reply, None);
    });
}

#[test]
fn the_path_replaces_the_targets_and_stays_on_its_endpoint() {
    let base: url::Url = "https://example.com:8443/static?from=target#top"
        .parse()
        .unwrap();
    for (path, expected) in [
        ("/a/b?x=1&y=%2F", "https://example.com:8443/a/b?x=1&y=%2F"),
        ("/a b", "https://example.com:8443/a%20b"),
        ("", "https://example.com:8443/"),
        ("/only#frag", "https://example.com:8443/only"),
        (
            "http://elsewhere.test/x",
            "https://example.com:8443/http://elsewhere.test/x",
        ),
    ] {
        assert_eq!(get(path).url(&base).as_str(), expected, "{path}");
    }
}

#[test]
fn the_kept_body_stops_at_the_cap_exactly() {
    let mut kept = Kept::new(ALL);
    kept.data(&vec![1; BODY_CAP - 1]);
    kept.data(&[2]);
    let reply = kept.reply(200);
    assert!(!reply.truncated, "exactly the cap is not truncated");
    let mut kept = Kept::new(ALL);
    kept.data(&vec![1; BODY_CAP]);
    kept.data(&[2]);
    kept.header(b"Set-Cookie", b"x=1");
    let reply = kept.reply(200);
    assert!(reply.truncated);
    assert_eq!(reply.body.len(), BODY_CAP);
    assert_eq!(
        reply.headers,
        [("set-cookie".to_string(), "x=1".to_string())]
    );
}
