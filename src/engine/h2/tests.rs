//! Tests of the HTTP/2 client against an in-test h2c server (the `h2` crate's server side on
//! 127.0.0.1:0) that counts connections, streams and its own peak of open streams.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use h2::server::SendResponse;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::spawn_local;

use super::{Exchange, H2Conn, H2Error, H2Head, handshake};

/// A guard against a hang, never the thing asserted.
const GUARD: Duration = Duration::from_secs(120);
/// Twice the stream window we announce: counting it needs the window given back.
const BIG: usize = 8 << 20;
const UPLOAD: usize = 1 << 20;

/// Runs `f` on a current-thread runtime inside a LocalSet, as load workers do.
pub(super) fn run<F: Future>(f: F) -> F::Output {
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

/// How the server behaves.
#[derive(Default, Clone, Copy)]
struct Opts {
    /// SETTINGS_MAX_CONCURRENT_STREAMS it announces.
    max_streams: Option<u32>,
    /// Hold each response until this many streams are open at once (or every stream of
    /// `total` has come), so a client that does not multiplex hangs instead of passing.
    hold_until_open: Option<usize>,
    /// Answer the k-th stream (from 1) only once `n + k - 1` streams (or `total`) have come:
    /// after the first `n`, one answer per new request, so each step waits on the client
    /// reading a single small response.
    answer_in_turn: Option<usize>,
    total: usize,
}

/// What the server counted itself.
#[derive(Default)]
struct Counts {
    connections: Cell<usize>,
    streams: Cell<usize>,
    upload_bytes: Cell<usize>,
    max_open: Cell<usize>,
    /// (open now, finished) — handlers wait on it.
    progress: watch::Sender<(usize, usize)>,
}

struct Server {
    addr: std::net::SocketAddr,
    counts: Rc<Counts>,
}

async fn server(opts: Opts) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts = Rc::new(Counts::default());
    let c = counts.clone();
    spawn_local(async move {
        while let Ok((sock, _)) = listener.accept().await {
            c.connections.set(c.connections.get() + 1);
            spawn_local(serve_conn(sock, opts, c.clone()));
        }
    });
    Server { addr, counts }
}

async fn serve_conn(sock: TcpStream, opts: Opts, counts: Rc<Counts>) {
    let mut builder = h2::server::Builder::new();
    if let Some(n) = opts.max_streams {
        builder.max_concurrent_streams(n);
    }
    let Ok(mut conn) = builder.handshake::<_, Bytes>(sock).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        counts.streams.set(counts.streams.get() + 1);
        counts.progress.send_modify(|(open, _)| *open += 1);
        let open = counts.progress.borrow().0;
        counts.max_open.set(counts.max_open.get().max(open));
        match req.uri().path() {
            "/bye" => conn.graceful_shutdown(),
            "/abort" => conn.abrupt_shutdown(Reason::INTERNAL_ERROR),
            _ => {}
        }
        let arrived = counts.streams.get();
        spawn_local(handle(req, respond, opts, counts.clone(), arrived));
    }
}

async fn handle(
    req: http::Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    opts: Opts,
    counts: Rc<Counts>,
    arrived: usize,
) {
    if let Some(n) = opts.answer_in_turn {
        let need = (n + arrived - 1).min(opts.total);
        let mut rx = counts.progress.subscribe();
        let _ = rx.wait_for(|&(open, done)| open + done >= need).await;
    }
    if let Some(want) = opts.hold_until_open {
        let mut rx = counts.progress.subscribe();
        let _ = rx
            .wait_for(|&(open, done)| open >= want || open + done >= opts.total)
            .await;
    }
    let path = req.uri().path().to_owned();
    let mut body = req.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        counts
            .upload_bytes
            .set(counts.upload_bytes.get() + chunk.len());
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    counts
        .progress
        .send_modify(|(open, done)| (*open, *done) = (*open - 1, *done + 1));
    respond_to(&path, &mut respond);
}

fn respond_to(path: &str, respond: &mut SendResponse<Bytes>) {
    match path {
        "/reset" => respond.send_reset(Reason::INTERNAL_ERROR),
        "/refuse" => respond.send_reset(Reason::REFUSED_STREAM),
        "/reset-mid" => {
            if let Ok(mut stream) = respond.send_response(status(200), false) {
                let _ = stream.send_data(Bytes::from(vec![7u8; 1000]), false);
                stream.send_reset(Reason::INTERNAL_ERROR);
            }
        }
        "/redirect" => {
            let mut resp = status(302);
            let location = http::HeaderValue::from_static("https://elsewhere.test/next");
            resp.headers_mut().insert(http::header::LOCATION, location);
            let _ = respond.send_response(resp, true);
        }
        "/big" => reply(respond, Bytes::from(vec![1u8; BIG])),
        // After an abrupt shutdown the stream is gone: the reply fails, which is the point.
        _ => reply(respond, Bytes::from_static(b"hello")),
    }
}

fn status(code: u16) -> http::Response<()> {
    http::Response::builder().status(code).body(()).unwrap()
}

fn reply(respond: &mut SendResponse<Bytes>, body: Bytes) {
    if let Ok(mut stream) = respond.send_response(status(200), false) {
        let _ = stream.send_data(body, true);
    }
}

async fn connect(server: &Server) -> H2Conn {
    let sock = TcpStream::connect(server.addr).await.expect("connect");
    handshake(sock).await.expect("handshake")
}

fn get(server: &Server, path: &str) -> H2Head {
    head("GET", server, path)
}

fn head(method: &str, server: &Server, path: &str) -> H2Head {
    let url = url::Url::parse(&format!("http://{}{path}", server.addr)).unwrap();
    H2Head::new(method, &url, std::iter::empty()).unwrap()
}

/// Sends `n` requests for `path` at once over `conn` and returns their results in order.
async fn send_many(
    conn: &H2Conn,
    server: &Server,
    path: &str,
    n: usize,
) -> Vec<Result<Exchange, H2Error>> {
    let head = get(server, path);
    let sends = (0..n).map(|_| conn.send(&head, None));
    futures_util::future::join_all(sends).await
}

#[test]
fn many_concurrent_sends_share_one_connection() {
    run(async {
        let server = server(Opts::default()).await;
        let conn = connect(&server).await;
        let results = send_many(&conn, &server, "/", 200).await;
        for r in &results {
            assert_eq!(r.as_ref().unwrap(), &ok_hello());
        }
        assert_eq!(server.counts.streams.get(), 200);
        assert_eq!(server.counts.connections.get(), 1);
        assert_eq!(conn.in_flight(), 0);
        assert!(!conn.is_closed());
    });
}

fn ok_hello() -> Exchange {
    Exchange {
        status: 200,
        location: None,
        bytes: 5,
    }
}

#[test]
fn streams_stay_within_the_servers_limit_and_use_it() {
    run(async {
        let total = 20;
        let opts = Opts {
            max_streams: Some(2),
            hold_until_open: Some(2),
            total,
            ..Opts::default()
        };
        let server = server(opts).await;
        let conn = connect(&server).await;
        assert_eq!(conn.max_concurrent(), 2);
        let results = send_many(&conn, &server, "/", total).await;
        assert!(results.iter().all(|r| r.as_ref() == Ok(&ok_hello())));
        assert_eq!(server.counts.streams.get(), total);
        assert_eq!(server.counts.max_open.get(), 2);
    });
}

/// With many responses due the driver raises its socket's receive low-water mark
/// (`lowat`); a server that then sends less than the mark and waits for the client's next
/// request must still be read, by the mark's timer. Without that timer this hangs at the
/// first answer.
#[test]
fn responses_smaller_than_the_read_batch_are_read_all_the_same() {
    run(async {
        let users = 2 * super::DUE;
        let total = users + 20;
        let opts = Opts {
            answer_in_turn: Some(users),
            total,
            ..Opts::default()
        };
        let server = server(opts).await;
        let conn = connect(&server).await;
        let head = get(&server, "/");
        let sent = Cell::new(0);
        let user = || async {
            let mut got = Vec::new();
            while sent.get() < total {
                sent.set(sent.get() + 1);
                got.push(conn.send(&head, None).await);
            }
            got
        };
        let results = futures_util::future::join_all((0..users).map(|_| user())).await;
        let results: Vec<_> = results.into_iter().flatten().collect();
        assert_eq!(results.len(), total);
        assert!(results.iter().all(|r| r.as_ref() == Ok(&ok_hello())));
        assert_eq!(server.counts.streams.get(), total);
        assert_eq!(server.counts.connections.get(), 1);
    });
}

#[test]
fn a_reset_stream_fails_alone() {
    run(async {
        let server = server(Opts::default()).await;
        let conn = connect(&server).await;
        let paths = [
            "/",
            "/reset",
            "/",
            "/reset-mid",
            "/refuse",
            "/redirect",
            "/",
        ];
        let heads: Vec<H2Head> = paths.iter().map(|p| get(&server, p)).collect();
        let sends = heads.iter().map(|h| conn.send(h, None));
        let results = futures_util::future::join_all(sends).await;
        assert_eq!(results[0], Ok(ok_hello()));
        assert!(
            matches!(results[1], Err(H2Error::Body(_))),
            "{:?}",
            results[1]
        );
        assert_eq!(results[2], Ok(ok_hello()));
        assert!(
            matches!(results[3], Err(H2Error::Body(_))),
            "{:?}",
            results[3]
        );
        assert_eq!(results[4], Err(H2Error::Refused));
        let redirect = Exchange {
            status: 302,
            location: Some("https://elsewhere.test/next".into()),
            bytes: 0,
        };
        assert_eq!(results[5], Ok(redirect));
        assert_eq!(results[6], Ok(ok_hello()));
        assert_eq!(server.counts.streams.get(), paths.len());
        assert!(!conn.is_closed());
        assert_eq!(conn.send(&get(&server, "/"), None).await, Ok(ok_hello()));
    });
}

/// Waits (bounded by the test's guard) until the connection reports itself closed.
async fn until_closed(conn: &H2Conn) {
    while !conn.is_closed() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_graceful_goaway_refuses_later_sends() {
    run(async {
        let server = server(Opts::default()).await;
        let conn = connect(&server).await;
        assert_eq!(conn.send(&get(&server, "/bye"), None).await, Ok(ok_hello()));
        until_closed(&conn).await;
        assert_eq!(
            conn.send(&get(&server, "/"), None).await,
            Err(H2Error::Refused)
        );
        assert_eq!(server.counts.streams.get(), 1);
    });
}

#[test]
fn an_abrupt_goaway_with_an_error_fails_the_connection() {
    run(async {
        let server = server(Opts::default()).await;
        let conn = connect(&server).await;
        assert_eq!(conn.send(&get(&server, "/"), None).await, Ok(ok_hello()));
        let aborted = conn.send(&get(&server, "/abort"), None).await;
        assert!(matches!(aborted, Err(H2Error::Connect(_))), "{aborted:?}");
        until_closed(&conn).await;
        let later = conn.send(&get(&server, "/"), None).await;
        assert!(matches!(later, Err(H2Error::Connect(_))), "{later:?}");
        assert_eq!(server.counts.streams.get(), 2);
    });
}

#[test]
fn a_large_body_is_counted_exactly_both_ways() {
    run(async {
        let server = server(Opts::default()).await;
        let conn = connect(&server).await;
        let got = conn.send(&get(&server, "/big"), None).await.unwrap();
        assert_eq!(got.bytes, BIG as u64);
        let upload = head("POST", &server, "/upload");
        let body = Bytes::from(vec![3u8; UPLOAD]);
        assert_eq!(conn.send(&upload, Some(body)).await, Ok(ok_hello()));
        assert_eq!(server.counts.upload_bytes.get(), UPLOAD);
    });
}

#[test]
fn a_dead_server_fails_the_handshake() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        spawn_local(async move {
            // Accept and close at once: no SETTINGS, no PING answer.
            let _ = listener.accept().await;
        });
        let sock = TcpStream::connect(addr).await.expect("connect");
        let got = handshake(sock).await.map(|_| ());
        assert!(matches!(got, Err(H2Error::Connect(_))), "{got:?}");
    });
}
