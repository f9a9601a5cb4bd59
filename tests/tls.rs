//! The sender over TLS and its connections, against an HTTPS server of the test's own that
//! counts connections and requests itself: trust by a CA, `insecure`, mutual TLS, a wrong CA,
//! the allowlist before any socket, resumed sessions, redirects to https, stale kept-alive
//! connections and the socket limit.

mod common;
#[path = "common/tls.rs"]
mod tls_server;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tls_server::{Behaviour, Server, authority, issue, pem, server_tls};

use mcp_testing::allowlist::Allowlist;
use mcp_testing::engine::http::HttpSender;
use mcp_testing::engine::target::{Identity, Tls, Traffic};
use mcp_testing::stats::{ErrorKind, Handshake, Outcome};
use mcp_testing::task::TaskKind;

/// A task of one target at `url` (the plan readers take http only yet: the URL and TLS
/// setting are put in afterwards).
fn traffic(url: &str, tls: Tls) -> Traffic {
    let p = common::plan(
        "tasks:\n- type: load_test\n  parameters:\n    targets: [{url: 'http://127.0.0.1:1/', follow_redirects: true}]\n    duration: 1s\n    base_rps: 1\n",
    );
    let TaskKind::LoadTest(task) = &p.plan.tasks[0].kind else {
        panic!("a load test")
    };
    let mut traffic = task.traffic.clone();
    traffic.targets[0].url = url.parse().unwrap();
    traffic.targets[0].tls = tls;
    traffic
}

/// Sends `n` requests one after another.
fn send(traffic: &Traffic, allowlist: Allowlist, connections: usize, n: usize) -> Vec<Outcome> {
    actix::System::new().block_on(async {
        let sender = HttpSender::new(traffic, allowlist, connections, None);
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                sender
                    .send(0, Instant::now() + Duration::from_secs(10))
                    .await,
            );
        }
        out
    })
}

/// Runs `f` with the log captured; returns what it logged.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    (out, text)
}

fn ok(outcome: &Outcome) -> bool {
    outcome.status == Some(200) && outcome.error.is_none() && outcome.bytes == 2
}

#[test]
fn https_is_trusted_by_its_ca_and_connections_are_kept_alive() {
    let ca = authority("test CA");
    let server = Server::start(Some(server_tls(&ca, None)), Behaviour::default());
    let tls = Tls {
        ca: Some(pem(&ca.pem())),
        ..Tls::default()
    };
    for host in ["localhost", "127.0.0.1"] {
        let before = (server.connections(), server.requests());
        let url = format!("https://{host}:{}/", server.addr.port());
        let outcomes = send(&traffic(&url, tls.clone()), Allowlist::default(), 4, 3);
        assert!(outcomes.iter().all(ok), "{host}: {outcomes:?}");
        // One connection carried all three; its handshake is on the first request.
        assert_eq!(outcomes[0].handshake, Some(Handshake::Full), "{host}");
        assert_eq!(outcomes[1].handshake, None);
        assert_eq!(server.connections() - before.0, 1, "{host}");
        assert_eq!(server.requests() - before.1, 3, "{host}");
    }
}

#[test]
fn sessions_are_resumed_when_connections_are_opened_again() {
    let ca = authority("test CA");
    let closing = Behaviour {
        close: true,
        ..Behaviour::default()
    };
    let server = Server::start(Some(server_tls(&ca, None)), closing);
    let tls = Tls {
        ca: Some(pem(&ca.pem())),
        ..Tls::default()
    };
    let url = format!("https://localhost:{}/", server.addr.port());
    let outcomes = send(&traffic(&url, tls), Allowlist::default(), 1, 3);
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    let handshakes: Vec<_> = outcomes.iter().map(|o| o.handshake).collect();
    assert_eq!(
        handshakes,
        [
            Some(Handshake::Full),
            Some(Handshake::Resumed),
            Some(Handshake::Resumed)
        ]
    );
    assert_eq!(server.connections(), 3);
}

#[test]
fn insecure_accepts_a_certificate_of_an_unknown_ca() {
    let server = Server::start(
        Some(server_tls(&authority("unknown CA"), None)),
        Behaviour::default(),
    );
    let url = format!("https://localhost:{}/", server.addr.port());
    let insecure = Tls {
        insecure: true,
        ..Tls::default()
    };
    let outcomes = send(&traffic(&url, insecure), Allowlist::default(), 1, 2);
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    assert_eq!(server.requests(), 2);
}

#[test]
fn a_wrong_ca_is_a_tls_error_with_its_reason_and_no_request() {
    let server = Server::start(
        Some(server_tls(&authority("server CA"), None)),
        Behaviour::default(),
    );
    let url = format!("https://localhost:{}/", server.addr.port());
    let wrong = Tls {
        ca: Some(pem(&authority("other CA").pem())),
        ..Tls::default()
    };
    let (outcomes, log) = logged(|| send(&traffic(&url, wrong), Allowlist::default(), 1, 3));
    for o in &outcomes {
        assert_eq!(o.error, Some(ErrorKind::Tls), "{o:?}");
        assert_eq!(o.status, None);
    }
    assert!(log.contains("UnknownIssuer"), "{log}");
    // Each distinct reason is logged once, not per request.
    assert_eq!(log.matches("UnknownIssuer").count(), 1, "{log}");
    assert_eq!(server.requests(), 0);
    assert_eq!(server.counts.handshakes.load(Ordering::SeqCst), 0);
}

#[test]
fn mutual_tls_sends_the_client_certificate_the_server_demands() {
    let ca = authority("server CA");
    let clients = authority("client CA");
    let server = Server::start(Some(server_tls(&ca, Some(&clients))), Behaviour::default());
    let url = format!("https://localhost:{}/", server.addr.port());
    let (cert, key) = issue(&clients);
    let with_cert = Tls {
        ca: Some(pem(&ca.pem())),
        identity: Some(Identity {
            cert: pem(&cert),
            key: pem(&key),
        }),
        ..Tls::default()
    };
    let outcomes = send(&traffic(&url, with_cert), Allowlist::default(), 1, 2);
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    assert_eq!(server.requests(), 2);
    // Without one the server refuses: a TLS error, and no request reaches it.
    let without = Tls {
        ca: Some(pem(&ca.pem())),
        ..Tls::default()
    };
    let outcomes = send(&traffic(&url, without), Allowlist::default(), 1, 2);
    for o in &outcomes {
        assert_eq!(o.error, Some(ErrorKind::Tls), "{o:?}");
    }
    assert_eq!(server.requests(), 2);
}

#[test]
fn a_name_outside_the_allowlist_is_refused_before_any_connection() {
    let ca = authority("test CA");
    let server = Server::start(Some(server_tls(&ca, None)), Behaviour::default());
    let url = format!("https://localhost:{}/", server.addr.port());
    let tls = Tls {
        ca: Some(pem(&ca.pem())),
        ..Tls::default()
    };
    let elsewhere = Allowlist::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let outcomes = send(&traffic(&url, tls), elsewhere, 1, 2);
    for o in &outcomes {
        assert_eq!(o.error, Some(ErrorKind::Connect), "{o:?}");
    }
    assert_eq!(server.connections(), 0, "a socket reached the server");
}

#[test]
fn https_redirects_are_followed_to_allowed_hosts_only() {
    let ca = authority("test CA");
    let server = Server::start(Some(server_tls(&ca, None)), Behaviour::default());
    let tls = Tls {
        ca: Some(pem(&ca.pem())),
        ..Tls::default()
    };
    let port = server.addr.port();
    // To an allowed https host (another name of the same server): followed.
    let url = format!("https://localhost:{port}/redirect?to=https://127.0.0.1:{port}/final");
    let outcomes = send(&traffic(&url, tls.clone()), Allowlist::default(), 2, 2);
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    let paths = server.counts.paths.lock().unwrap().clone();
    assert_eq!(
        paths.iter().filter(|p| *p == "/final").count(),
        2,
        "{paths:?}"
    );
    // From http to https, too.
    let plain = Server::start(None, Behaviour::default());
    let url = format!(
        "http://127.0.0.1:{}/redirect?to=https://localhost:{port}/final",
        plain.addr.port()
    );
    let outcomes = send(&traffic(&url, tls.clone()), Allowlist::default(), 2, 1);
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    // To a host outside the allowlist: counted as a status error, not followed.
    let before = server.requests();
    let url = format!("https://localhost:{port}/redirect?to=https://10.255.255.1/");
    let outcomes = send(&traffic(&url, tls), Allowlist::default(), 1, 2);
    for o in &outcomes {
        assert_eq!((o.status, o.error), (Some(302), Some(ErrorKind::Status)));
    }
    assert_eq!(server.requests() - before, 2);
}

#[test]
fn a_kept_alive_connection_the_server_closed_is_replaced_without_an_error() {
    let server = Server::start(
        None,
        Behaviour {
            close_silently: true,
            ..Behaviour::default()
        },
    );
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let outcomes = send(&traffic(&url, Tls::default()), Allowlist::default(), 1, 4);
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    assert_eq!(server.requests(), 4);
    assert_eq!(server.connections(), 4);
}

#[test]
fn requests_wait_for_a_connection_at_the_limit() {
    let server = Server::start(
        None,
        Behaviour {
            delay: Duration::from_millis(20),
            ..Behaviour::default()
        },
    );
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let traffic = traffic(&url, Tls::default());
    let outcomes = actix::System::new().block_on(async {
        let sender = HttpSender::new(&traffic, Allowlist::default(), 2, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        futures_util::future::join_all((0..12).map(|_| sender.send(0, deadline))).await
    });
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    assert_eq!(server.requests(), 12);
    assert_eq!(
        server.connections(),
        2,
        "the sender opened more than its limit"
    );
}

/// An h2c server (prior knowledge) on its own thread that counts connections and streams and
/// answers each stream once `hold` streams are open at once, so a client that does not
/// multiplex over the connections it has hangs instead of passing.
fn h2c_server(hold: usize) -> (std::net::SocketAddr, Arc<Mutex<(u64, u64)>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let c = counts.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (open, _) = tokio::sync::watch::channel(0usize);
            let open = std::rc::Rc::new(open);
            while let Ok((sock, _)) = listener.accept().await {
                c.lock().unwrap().0 += 1;
                let (c, open) = (c.clone(), open.clone());
                tokio::task::spawn_local(async move {
                    let Ok(mut conn) = h2::server::handshake(sock).await else {
                        return;
                    };
                    while let Some(Ok((_req, mut respond))) = conn.accept().await {
                        c.lock().unwrap().1 += 1;
                        open.send_modify(|n| *n += 1);
                        let mut seen = open.subscribe();
                        tokio::task::spawn_local(async move {
                            let _ = seen.wait_for(|&n| n >= hold).await;
                            let head = http::Response::new(());
                            if let Ok(mut body) = respond.send_response(head, false) {
                                let _ = body.send_data(bytes::Bytes::from_static(b"ok"), true);
                            }
                        });
                    }
                });
            }
        });
    });
    (addr, counts)
}

#[test]
fn http2_requests_beyond_the_connections_share_them_as_streams() {
    // 40 requests at once over at most 2 sockets: each must become a stream on one of them.
    let (addr, counts) = h2c_server(40);
    let mut traffic = traffic(&format!("http://{addr}/"), Tls::default());
    traffic.targets[0].http_version = mcp_testing::engine::target::HttpVersion::Http2;
    let outcomes = actix::System::new().block_on(async {
        let sender = HttpSender::new(&traffic, Allowlist::default(), 2, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        futures_util::future::join_all((0..40).map(|_| sender.send(0, deadline))).await
    });
    assert!(outcomes.iter().all(ok), "{outcomes:?}");
    assert_eq!(*counts.lock().unwrap(), (2, 40), "(connections, streams)");
}
