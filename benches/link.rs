//! The cluster link benchmark (DESIGN §4, acceptance point 8): round-trip latency and
//! at-least-once throughput of the real [`Session`] with postcard frames, over a loopback
//! WebSocket (an actix-web route with `accept_ws`, the awc client of `connect_ws`) and over the
//! in-process transport (`local_pair`), beside the same traffic without a session (raw frames on
//! the same transports), a raw tokio channel pair and an actix actor round trip.
//!
//! `cargo bench --bench link` prints one table: every figure is the median of 5 repetitions with
//! their min and max. Without `--bench` (e.g. `cargo test --benches`) it runs one short
//! repetition as a smoke test. Traffic stays on 127.0.0.1 (port 0); every loop is bounded in
//! count and every wait by a deadline.
//!
//! `LINK_BENCH_NODELAY=1` is a diagnostic: after `connect_ws` it sets TCP_NODELAY on the
//! client's socket (awc leaves Nagle's algorithm on), to show what that costs the link.
//!
//! The client side (A) runs on the actix `System` thread. B, the answering side, runs there
//! too in process, and on the HTTP server's single worker thread over the WebSocket (as the
//! orchestrator's side of a real link does).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use mcp_testing::hub::conn::{self, Conn, Out};
use mcp_testing::hub::{Delivery, LinkFrame, Session, SessionConfig};
use mcp_testing::messages::wire;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::timeout_at;

/// The frame cap (the `cluster.max_frame_size` default).
const CAP: usize = 1 << 20;
/// Queue of the raw channel baseline (the transports' own queue size).
const QUEUE: usize = 256;
/// Frames a side hands to its session before it flushes (and so acks).
const BATCH: usize = 256;
/// Deadline of one measurement; a stalled link fails the measurement, not the run.
const MEASURE_LIMIT: Duration = Duration::from_secs(20);
/// How long B serves one connection at most.
const SERVE_LIMIT: Duration = Duration::from_secs(120);
/// No repetition starts after this; the run stays within about two minutes.
const RUN_LIMIT: Duration = Duration::from_secs(100);
/// Longest warm-up of a round-trip measurement.
const WARM_TIME: Duration = Duration::from_secs(1);
/// Longest measuring time of a round-trip measurement.
const RTT_TIME: Duration = Duration::from_secs(3);
const ALO: Delivery = Delivery::AtLeastOnce;

/// The session's limits as a node proxy builds them from the defaults:
/// `cluster.outbox_capacity` 4096, retransmission after two 1 s heartbeats.
fn session_config() -> SessionConfig {
    SessionConfig {
        outbox_capacity: 4096,
        retransmit_after: Duration::from_secs(2),
        ..SessionConfig::default()
    }
}

/// The application messages of the bench, both directions.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Msg {
    /// Answered with a `Pong` of the same value.
    Ping(u64),
    Pong(u64),
    /// Counted; the `last` one is answered with a `Count` of everything since the last `Count`.
    Data {
        n: u64,
        last: bool,
    },
    Count {
        delivered: u64,
        acks: u64,
    },
}

/// How much to measure.
#[derive(Debug, Clone, Copy)]
struct Plan {
    reps: usize,
    warm_round_trips: u64,
    round_trips: u64,
    warm_messages: u64,
    messages: u64,
}

const FULL: Plan = Plan {
    reps: 5,
    warm_round_trips: 1_000,
    round_trips: 10_000,
    warm_messages: 20_000,
    messages: 200_000,
};

const SMOKE: Plan = Plan {
    reps: 1,
    warm_round_trips: 20,
    round_trips: 200,
    warm_messages: 500,
    messages: 5_000,
};

fn main() -> Result<()> {
    let plan = if std::env::args().any(|arg| arg == "--bench") {
        FULL
    } else {
        SMOKE
    };
    actix::System::new().block_on(run(plan))
}

// ---------------------------------------------------------------------------------------------
// The run and its table.

/// What one repetition of one path measured.
#[derive(Debug, Default)]
struct Figures {
    latency: Option<Latency>,
    rate: Option<f64>,
    /// Messages per ack frame B sent, in the throughput phase (session paths only).
    msgs_per_ack: Option<f64>,
    /// Data frames A sent again (session paths only).
    retransmitted: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    /// Round trips measured.
    count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Mpsc,
    Actor,
    LocalRaw,
    LocalSession,
    WsRaw,
    WsSession,
}

impl Path {
    const ALL: [Path; 6] = [
        Path::Mpsc,
        Path::Actor,
        Path::LocalRaw,
        Path::LocalSession,
        Path::WsRaw,
        Path::WsSession,
    ];

    fn label(self) -> &'static str {
        match self {
            Path::Mpsc => "tokio mpsc pair (u64)",
            Path::Actor => "actix actor (addr.send)",
            Path::LocalRaw => "local_pair, raw frames",
            Path::LocalSession => "local_pair, Session+postcard",
            Path::WsRaw => "WebSocket, raw frames",
            Path::WsSession => "WebSocket, Session+postcard",
        }
    }
}

#[derive(Debug)]
struct Row {
    path: Path,
    runs: Vec<Figures>,
    failures: Vec<String>,
}

async fn run(plan: Plan) -> Result<()> {
    let started = Instant::now();
    let server = start_server()?;
    let mut rows: Vec<Row> = Path::ALL
        .iter()
        .map(|&path| Row {
            path,
            runs: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    for rep in 0..plan.reps {
        if rep > 0 && started.elapsed() > RUN_LIMIT {
            eprintln!("link bench: run limit reached after {rep} repetitions");
            break;
        }
        for row in &mut rows {
            let deadline = Instant::now() + MEASURE_LIMIT;
            let measured = timeout_at(
                deadline.into(),
                measure(row.path, plan, &server.base, deadline),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow!("measurement timed out")));
            match measured {
                Ok(figures) => row.runs.push(figures),
                Err(e) => {
                    eprintln!("link bench: {} failed: {e:#}", row.path.label());
                    row.failures.push(format!("{e:#}"));
                }
            }
        }
    }
    server.handle.stop(false).await;
    print!("{}", table(&rows, plan));
    Ok(())
}

async fn measure(path: Path, plan: Plan, base: &str, deadline: Instant) -> Result<Figures> {
    let mut figures = Figures::default();
    match path {
        Path::Mpsc => {
            figures.latency = Some(mpsc_round_trips(plan, deadline).await?);
            figures.rate = Some(mpsc_throughput(plan).await?);
        }
        Path::Actor => figures.latency = Some(actor_round_trips(plan, deadline).await?),
        Path::LocalRaw => {
            let (a, b) = conn::local_pair(CAP);
            actix_rt::spawn(serve_raw_logged(b));
            raw_link(a, plan, deadline, &mut figures).await?;
        }
        Path::LocalSession => {
            let (a, b) = conn::local_pair(CAP);
            actix_rt::spawn(serve_session_logged(b));
            session_link(a, plan, deadline, &mut figures).await?;
        }
        Path::WsRaw => {
            let a = connect(&format!("{base}/raw")).await?;
            raw_link(a, plan, deadline, &mut figures).await?;
        }
        Path::WsSession => {
            let a = connect(&format!("{base}/link")).await?;
            session_link(a, plan, deadline, &mut figures).await?;
        }
    }
    Ok(figures)
}

async fn connect(url: &str) -> Result<Conn> {
    let conn = conn::connect_ws(url, CAP, Duration::from_secs(5)).await?;
    if nodelay_forced() {
        force_nodelay()?;
    }
    Ok(conn)
}

/// Whether `LINK_BENCH_NODELAY` asks for the diagnostic run (see the module doc).
fn nodelay_forced() -> bool {
    std::env::var_os("LINK_BENCH_NODELAY").is_some_and(|v| v == "1")
}

/// Diagnostic: sets TCP_NODELAY on every socket of this process, which reaches the one awc
/// just opened for `connect_ws` (awc's connector leaves Nagle's algorithm on). Non-TCP
/// sockets refuse the option, which is ignored.
fn force_nodelay() -> Result<()> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().starts_with("socket:") {
            // SAFETY: the fd is open (listed just now) and handed back with `into_raw_fd`
            // before the `TcpStream` is dropped, so it is never closed here; a socket that
            // is not TCP only fails `set_nodelay`.
            let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
            let _ = stream.set_nodelay(true);
            let _ = stream.into_raw_fd();
        }
    }
    Ok(())
}

/// Median, min and max.
fn spread(mut values: Vec<f64>) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    Some((median, values[0], values[values.len() - 1]))
}

/// `median (min-max)`, with three significant digits or more.
fn cell(values: Vec<f64>) -> String {
    let num = |v: f64| match v {
        v if v < 10.0 => format!("{v:.2}"),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    };
    match spread(values) {
        Some((median, min, max)) => format!("{} ({}-{})", num(median), num(min), num(max)),
        None => "-".to_string(),
    }
}

fn table(rows: &[Row], plan: Plan) -> String {
    let mut out = String::new();
    let reps = rows.iter().map(|row| row.runs.len()).max().unwrap_or(0);
    let nodelay = if nodelay_forced() {
        " [LINK_BENCH_NODELAY=1: TCP_NODELAY forced on the client]"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "===== cluster link{nodelay}: median (min-max) of {reps} reps; round trips: {} after {} \
         warm-up; throughput: {} msgs after {} warm-up =====",
        plan.round_trips, plan.warm_round_trips, plan.messages, plan.warm_messages
    );
    let _ = writeln!(
        out,
        "{:<29} {:>22} {:>22} {:>22}",
        "path", "rtt p50 us", "rtt p99 us", "k msgs/s"
    );
    for row in rows {
        let pick = |f: &dyn Fn(&Figures) -> Option<f64>| -> Vec<f64> {
            row.runs.iter().filter_map(f).collect()
        };
        let _ = writeln!(
            out,
            "{:<29} {:>22} {:>22} {:>22}",
            row.path.label(),
            cell(pick(&|f| f.latency.map(|l| l.p50_us))),
            cell(pick(&|f| f.latency.map(|l| l.p99_us))),
            cell(pick(&|f| f.rate.map(|r| r / 1_000.0))),
        );
    }
    for row in rows {
        let counts = row.runs.iter().filter_map(|f| f.latency.map(|l| l.count));
        let (fewest, most) = counts.fold((u64::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
        if fewest < plan.round_trips {
            let _ = writeln!(
                out,
                "{}: only {fewest}-{most} round trips per rep (time bound {} s)",
                row.path.label(),
                RTT_TIME.as_secs()
            );
        }
        let acks = row.runs.iter().filter_map(|f| f.msgs_per_ack);
        let acks: Vec<f64> = acks.collect();
        if !acks.is_empty() {
            let retransmitted: u64 = row.runs.iter().filter_map(|f| f.retransmitted).sum();
            let _ = writeln!(
                out,
                "{}: messages per ack frame from B {}, data frames retransmitted {retransmitted}",
                row.path.label(),
                cell(acks),
            );
        }
        for failure in &row.failures {
            let _ = writeln!(out, "{}: FAILED {failure}", row.path.label());
        }
    }
    let _ = writeln!(out, "=====");
    out
}

/// Numbers the round trips of one measurement and records the measured ones: a warm-up of
/// the planned count (or `WARM_TIME`), then the planned count (or `RTT_TIME`), whichever
/// ends first, so a slow path still finishes in time.
struct RoundTrips {
    plan: Plan,
    next: u64,
    warm_until: Instant,
    /// Set when the warm-up ends.
    measure_until: Option<Instant>,
    histogram: Histogram<u64>,
}

impl RoundTrips {
    fn new(plan: Plan) -> Self {
        Self {
            plan,
            next: 0,
            warm_until: Instant::now() + WARM_TIME,
            measure_until: None,
            histogram: new_histogram(),
        }
    }

    /// The number of the next round trip, `None` when the measurement is complete.
    fn next(&mut self) -> Option<u64> {
        let now = Instant::now();
        let warm = self.next >= self.plan.warm_round_trips || now >= self.warm_until;
        if self.measure_until.is_none() && warm {
            self.measure_until = Some(now + RTT_TIME);
        }
        if let Some(until) = self.measure_until
            && (self.histogram.len() >= self.plan.round_trips || now >= until)
        {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    /// Records the round trip that started at `start`, unless it was a warm-up one.
    fn done(&mut self, start: Instant) {
        if self.measure_until.is_some() {
            let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.histogram.saturating_record(ns);
        }
    }

    fn latency(&self) -> Latency {
        let us = |q| self.histogram.value_at_quantile(q) as f64 / 1_000.0;
        Latency {
            p50_us: us(0.5),
            p99_us: us(0.99),
            count: self.histogram.len(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

// ---------------------------------------------------------------------------------------------
// The server side of the WebSocket paths.

struct Server {
    base: String,
    handle: actix_web::dev::ServerHandle,
}

fn start_server() -> Result<Server> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(|| {
        App::new()
            .route("/raw", web::get().to(raw_route))
            .route("/link", web::get().to(link_route))
    })
    .workers(1)
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(Server {
        base: format!("ws://{addr}"),
        handle,
    })
}

async fn raw_route(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    let (resp, conn) = conn::accept_ws(&req, body, CAP)?;
    actix_rt::spawn(serve_raw_logged(conn));
    Ok(resp)
}

async fn link_route(
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let (resp, conn) = conn::accept_ws(&req, body, CAP)?;
    actix_rt::spawn(serve_session_logged(conn));
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Baselines: a tokio channel pair and an actor.

async fn mpsc_round_trips(plan: Plan, deadline: Instant) -> Result<Latency> {
    let (to_echo, mut echo_rx) = mpsc::channel::<u64>(QUEUE);
    let (echo_tx, mut from_echo) = mpsc::channel::<u64>(QUEUE);
    actix_rt::spawn(async move {
        while let Some(x) = echo_rx.recv().await {
            if echo_tx.send(x).await.is_err() {
                break;
            }
        }
    });
    let mut round_trips = RoundTrips::new(plan);
    while let Some(i) = round_trips.next() {
        let start = Instant::now();
        to_echo.send(i).await.map_err(|_| anyhow!("echo gone"))?;
        let back = timeout_at(deadline.into(), from_echo.recv()).await?;
        ensure!(back == Some(i), "echo answered {back:?} to {i}");
        round_trips.done(start);
    }
    Ok(round_trips.latency())
}

async fn mpsc_throughput(plan: Plan) -> Result<f64> {
    let (tx, mut rx) = mpsc::channel::<u64>(QUEUE);
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let total = plan.messages;
    actix_rt::spawn(async move {
        let mut count = 0u64;
        while let Some(_x) = rx.recv().await {
            count += 1;
            if count == total {
                break;
            }
        }
        let _ = done_tx.send(count);
    });
    let start = Instant::now();
    for i in 0..total {
        tx.send(i).await.map_err(|_| anyhow!("receiver gone"))?;
    }
    let count = done.await?;
    ensure!(count == total, "received {count} of {total}");
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

impl Handler<Ping> for Echo {
    type Result = u64;

    fn handle(&mut self, Ping(x): Ping, _: &mut Context<Self>) -> u64 {
        x
    }
}

async fn actor_round_trips(plan: Plan, deadline: Instant) -> Result<Latency> {
    let addr = Echo.start();
    let mut round_trips = RoundTrips::new(plan);
    while let Some(i) = round_trips.next() {
        let start = Instant::now();
        let back = timeout_at(deadline.into(), addr.send(Ping(i))).await??;
        ensure!(back == i, "actor answered {back} to {i}");
        round_trips.done(start);
    }
    Ok(round_trips.latency())
}

// ---------------------------------------------------------------------------------------------
// Raw frames on a transport: what the transport costs without a session and encoding.

const RAW_PING: u8 = 0;
const RAW_DATA: u8 = 1;
const RAW_LAST: u8 = 2;
const RAW_COUNT: u8 = 3;

fn raw(kind: u8, n: u64) -> Bytes {
    let mut frame = [0u8; 9];
    frame[0] = kind;
    frame[1..].copy_from_slice(&n.to_le_bytes());
    Bytes::copy_from_slice(&frame)
}

fn raw_value(frame: &[u8]) -> Option<(u8, u64)> {
    let (&kind, n) = frame.split_first()?;
    Some((kind, u64::from_le_bytes(n.try_into().ok()?)))
}

/// A's side: round trips, then throughput, on one connection.
async fn raw_link(mut a: Conn, plan: Plan, deadline: Instant, figures: &mut Figures) -> Result<()> {
    let closed = || anyhow!("link closed");
    let mut round_trips = RoundTrips::new(plan);
    while let Some(i) = round_trips.next() {
        let start = Instant::now();
        a.tx.send(Out::Frame(raw(RAW_PING, i)))
            .await
            .map_err(|_| closed())?;
        let back = timeout_at(deadline.into(), a.rx.recv())
            .await?
            .ok_or_else(closed)?;
        ensure!(raw_value(&back) == Some((RAW_PING, i)), "bad echo");
        round_trips.done(start);
    }
    figures.latency = Some(round_trips.latency());
    let mut rate = 0.0;
    for total in [plan.warm_messages, plan.messages] {
        let start = Instant::now();
        for i in 0..total {
            let kind = if i + 1 == total { RAW_LAST } else { RAW_DATA };
            a.tx.send(Out::Frame(raw(kind, i)))
                .await
                .map_err(|_| closed())?;
        }
        let back = timeout_at(deadline.into(), a.rx.recv())
            .await?
            .ok_or_else(closed)?;
        ensure!(
            raw_value(&back) == Some((RAW_COUNT, total)),
            "the peer counted {:?} of {total}",
            raw_value(&back)
        );
        rate = total as f64 / start.elapsed().as_secs_f64();
    }
    figures.rate = Some(rate);
    Ok(())
}

/// B's side: echoes pings, counts data, answers the last with the count.
async fn serve_raw(mut b: Conn) -> Result<()> {
    let deadline = Instant::now() + SERVE_LIMIT;
    let mut count = 0;
    while let Some(frame) = timeout_at(deadline.into(), b.rx.recv()).await? {
        let reply = match raw_value(&frame) {
            Some((RAW_PING, _)) => frame,
            Some((RAW_DATA, _)) => {
                count += 1;
                continue;
            }
            Some((RAW_LAST, _)) => {
                count += 1;
                raw(RAW_COUNT, std::mem::take(&mut count))
            }
            other => bail!("unexpected raw frame {other:?}"),
        };
        b.tx.send(Out::Frame(reply))
            .await
            .map_err(|_| anyhow!("link closed"))?;
    }
    Ok(())
}

async fn serve_raw_logged(b: Conn) {
    if let Err(e) = serve_raw(b).await {
        eprintln!("link bench: raw server side failed: {e:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// The session over a transport.

/// One side of a link: a [`Session`] over a [`Conn`], driven the way a transport must drive
/// it: flush after every change, keep reading while a write waits for room (so neither side
/// can block the other), and wake up when a retransmission is due.
struct Endpoint {
    session: Session<Msg, Msg>,
    conn: Conn,
    /// Frames read while a write waited, not yet handed to the session.
    inbox: VecDeque<Bytes>,
    deadline: Instant,
    acks_out: u64,
}

impl Endpoint {
    fn new(conn: Conn, deadline: Instant) -> Self {
        Self {
            session: Session::new(session_config()),
            conn,
            inbox: VecDeque::new(),
            deadline,
            acks_out: 0,
        }
    }

    /// Encodes and writes every frame the session has to send.
    async fn flush(&mut self) -> Result<()> {
        let now = Instant::now();
        while let Some(frame) = self.session.poll_transmit(now) {
            self.acks_out += u64::from(matches!(frame, LinkFrame::Ack { .. }));
            let bytes = Bytes::from(wire::encode(&frame, CAP)?);
            self.put(bytes).await?;
        }
        Ok(())
    }

    /// Writes one frame; while the transport queue is full, reads into the inbox.
    async fn put(&mut self, bytes: Bytes) -> Result<()> {
        let out = match self.conn.tx.try_send(Out::Frame(bytes)) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => bail!("link closed"),
            Err(TrySendError::Full(out)) => out,
        };
        let deadline = tokio::time::Instant::from_std(self.deadline);
        // Bounded by the deadline.
        loop {
            tokio::select! {
                permit = self.conn.tx.reserve() => {
                    permit.map_err(|_| anyhow!("link closed"))?.send(out);
                    return Ok(());
                }
                got = self.conn.rx.recv() => {
                    self.inbox.push_back(got.ok_or_else(|| anyhow!("link closed"))?);
                }
                () = tokio::time::sleep_until(deadline) => bail!("write blocked until the deadline"),
            }
        }
    }

    /// Hands up to a batch of arrived frames to the session.
    fn absorb(&mut self) -> Result<()> {
        let now = Instant::now();
        for _ in 0..BATCH {
            let Some(bytes) = self
                .inbox
                .pop_front()
                .or_else(|| self.conn.rx.try_recv().ok())
            else {
                break;
            };
            let frame: LinkFrame<Msg> = wire::decode(&bytes, CAP)?;
            self.session.on_frame(frame, now);
        }
        Ok(())
    }

    /// Waits until a frame arrived or a retransmission is due; false when the link closed.
    async fn wait(&mut self) -> Result<bool> {
        ensure!(Instant::now() < self.deadline, "link deadline passed");
        if !self.inbox.is_empty() {
            return Ok(true);
        }
        let until = self
            .session
            .poll_timeout()
            .map_or(self.deadline, |due| due.min(self.deadline));
        match timeout_at(until.into(), self.conn.rx.recv()).await {
            Ok(Some(bytes)) => {
                self.inbox.push_back(bytes);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(_) => Ok(true),
        }
    }

    async fn wait_open(&mut self) -> Result<()> {
        ensure!(self.wait().await?, "link closed");
        Ok(())
    }
}

/// A's side: round trips, then throughput, on one connection and one session.
async fn session_link(a: Conn, plan: Plan, deadline: Instant, figures: &mut Figures) -> Result<()> {
    let mut a = Endpoint::new(a, deadline);
    let mut round_trips = RoundTrips::new(plan);
    while let Some(i) = round_trips.next() {
        let start = Instant::now();
        let sent = a.session.send(Msg::Ping(i), ALO, start);
        sent.map_err(|_| anyhow!("outbox full with one message in flight"))?;
        a.flush().await?;
        // Bounded by the endpoint's deadline.
        'reply: loop {
            a.wait_open().await?;
            a.absorb()?;
            if let Some(delivered) = a.session.poll_deliver() {
                match delivered.body {
                    Msg::Pong(x) if x == i => break 'reply,
                    other => bail!("unexpected {other:?} waiting for pong {i}"),
                }
            }
            a.flush().await?;
        }
        round_trips.done(start);
        // The ack of the pong, and any frame that came with it.
        a.flush().await?;
    }
    figures.latency = Some(round_trips.latency());

    let retransmitted = a.session.stats().retransmitted;
    let mut rate = 0.0;
    let mut acks = 0;
    for total in [plan.warm_messages, plan.messages] {
        let start = Instant::now();
        let counted = session_throughput(&mut a, total).await?;
        rate = total as f64 / start.elapsed().as_secs_f64();
        ensure!(
            counted.0 == total,
            "the peer delivered {} of {total}",
            counted.0
        );
        acks = counted.1;
    }
    figures.rate = Some(rate);
    figures.msgs_per_ack = Some(plan.messages as f64 / acks.max(1) as f64);
    figures.retransmitted = Some(a.session.stats().retransmitted - retransmitted);
    Ok(())
}

/// Sends `total` messages as fast as the outbox takes them; returns when B has counted all of
/// them (its answer to the last) and A's outbox is empty, with B's count and its ack frames.
async fn session_throughput(a: &mut Endpoint, total: u64) -> Result<(u64, u64)> {
    let mut next = 0;
    let mut counted = None;
    // Bounded by the endpoint's deadline (checked in `wait`) and by `total`.
    loop {
        let now = Instant::now();
        let mut full = false;
        while next < total {
            let body = Msg::Data {
                n: next,
                last: next + 1 == total,
            };
            if a.session.send(body, ALO, now).is_err() {
                full = true;
                break;
            }
            next += 1;
        }
        a.flush().await?;
        a.absorb()?;
        while let Some(delivered) = a.session.poll_deliver() {
            match delivered.body {
                Msg::Count { delivered, acks } => counted = Some((delivered, acks)),
                other => bail!("unexpected {other:?} during throughput"),
            }
        }
        if let Some(counted) = counted
            && a.session.outbox_len() == 0
        {
            a.flush().await?;
            return Ok(counted);
        }
        if (full || next == total) && a.inbox.is_empty() {
            a.wait_open().await?;
        }
        ensure!(Instant::now() < a.deadline, "throughput deadline passed");
    }
}

/// B's side: answers pings with pongs, counts data, answers the last with the count; acks
/// once per batch of frames read.
async fn serve_session(b: Conn) -> Result<()> {
    let mut b = Endpoint::new(b, Instant::now() + SERVE_LIMIT);
    let mut replies = VecDeque::new();
    let mut delivered = 0;
    let mut acks_at_count = 0;
    // Bounded by the endpoint's deadline (checked in `wait`).
    while b.wait().await? {
        b.absorb()?;
        while let Some(message) = b.session.poll_deliver() {
            match message.body {
                Msg::Ping(x) => replies.push_back(Msg::Pong(x)),
                Msg::Data { last, .. } => {
                    delivered += 1;
                    if last {
                        let acks = b.acks_out - acks_at_count;
                        acks_at_count = b.acks_out;
                        replies.push_back(Msg::Count { delivered, acks });
                        delivered = 0;
                    }
                }
                other => bail!("unexpected {other:?} from A"),
            }
        }
        let now = Instant::now();
        while let Some(reply) = replies.pop_front() {
            if let Err(full) = b.session.send(reply, ALO, now) {
                replies.push_front(full.body);
                break;
            }
        }
        b.flush().await?;
    }
    Ok(())
}

async fn serve_session_logged(b: Conn) {
    if let Err(e) = serve_session(b).await {
        eprintln!("link bench: session server side failed: {e:#}");
    }
}
