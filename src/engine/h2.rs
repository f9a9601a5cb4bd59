//! One HTTP/2 client connection for the load engine, our own (RFC 9113, HPACK RFC 7541): the
//! handshake (prior knowledge, over TLS with ALPN h2 or cleartext h2c), a driver task that
//! owns the socket, and `send`, which runs one exchange as one stream so many exchanges share
//! the connection up to the server's SETTINGS_MAX_CONCURRENT_STREAMS (beyond it they wait in
//! the connection's queue). Single-threaded, as the load workers are: the handles and the
//! driver share one `Rc<RefCell<..>>`.
//!
//! The hot path: a request's header block is encoded once per target ([`H2Head`]), so a send
//! appends a 9-byte frame header and that block to the connection's write buffer and parks on
//! its stream's slot; the driver writes everything queued since its last turn in one write,
//! reads into one reused buffer and parses frames in place. Response heads go through the
//! HPACK decoder (only `:status`, and `location` on a redirect, are kept); bodies are counted,
//! never copied, and their window is given back in batches (half a window at a time). A
//! flow's exchange ([`H2Conn::send_kept`]) also keeps its response's headers and body.

mod driver;
mod frame;
mod hpack;
mod huffman;
mod lowat;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

use crate::engine::http::Kept;

/// The stream-level receive window we announce: a fast server can send this much per stream
/// before it waits for a WINDOW_UPDATE (the protocol's default is 64 KiB, which throttles a
/// large body to one window per round trip).
const STREAM_WINDOW: u32 = 4 << 20;
/// The connection-level receive window: room for several streams' windows at once.
const CONNECTION_WINDOW: u32 = 16 << 20;
/// The windows every peer starts with.
const DEFAULT_WINDOW: u32 = 65_535;
/// The dynamic table the server's encoder may use: the protocol's default (not announced).
const HEADER_TABLE: usize = 4096;
/// The largest response header block accepted (over CONTINUATION frames).
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// The payload of the PING whose answer ends the handshake.
const HANDSHAKE_PING: [u8; 8] = *b"mcpt-h2!";
/// The read buffer: several frames of the largest size we accept.
const READ_BUFFER: usize = 64 << 10;
const MAX_STREAM_ID: u32 = (1 << 31) - 1;
/// While this many streams or more wait for their responses, the driver reads them in
/// batches ([`lowat`])...
const DUE: usize = 32;
/// ...and a batch waits no longer than about this for its bytes (tokio's timers tick in
/// milliseconds).
const HOLD: std::time::Duration = std::time::Duration::from_millis(1);

/// What one exchange gave back: the status, the Location header (for redirects) and the
/// number of body bytes received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub status: u16,
    pub location: Option<String>,
    pub bytes: u64,
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H2Error {
    /// The connection could not be set up or broke: an IO error, a protocol error, a GOAWAY
    /// with an error code.
    Connect(String),
    /// The stream was reset (other than REFUSED_STREAM) or the body broke mid-way.
    Body(String),
    /// The server did not process the request: the stream was reset with REFUSED_STREAM, or a
    /// GOAWAY excluded it or came before it was sent. Safe to retry on another connection
    /// (bound the retries: a server could refuse every time).
    Refused,
}

impl fmt::Display for H2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H2Error::Connect(reason) => write!(f, "http/2 connection failed: {reason}"),
            H2Error::Body(reason) => write!(f, "http/2 stream failed: {reason}"),
            H2Error::Refused => f.write_str("http/2 stream refused by the server (not processed)"),
        }
    }
}

impl std::error::Error for H2Error {}

/// A request head, HPACK-encoded once: the pseudo-headers from the method and URL, then the
/// headers given. Static table entries where they match, literals without indexing
/// otherwise, so the block means the same on every connection and in any order.
#[derive(Clone, Debug)]
pub struct H2Head {
    block: Bytes,
}

impl H2Head {
    /// Connection-specific headers (`connection`, `keep-alive`, `transfer-encoding`,
    /// `upgrade`, `host`: HTTP/2 has `:authority`) are left out, as is `te` other than
    /// `trailers`; names are lower-cased.
    pub fn new<'a>(
        method: &str,
        url: &Url,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<H2Head, String> {
        let host = url.host_str().ok_or_else(|| format!("{url}: no host"))?;
        let mut block = Vec::with_capacity(64);
        hpack::put_field(&mut block, ":method", method.as_bytes());
        hpack::put_field(&mut block, ":scheme", url.scheme().as_bytes());
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let path = if path.is_empty() { "/" } else { path };
        hpack::put_field(&mut block, ":path", path.as_bytes());
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        hpack::put_field(&mut block, ":authority", authority.as_bytes());
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let skip = matches!(
                name.as_str(),
                "host"
                    | "connection"
                    | "keep-alive"
                    | "proxy-connection"
                    | "transfer-encoding"
                    | "upgrade"
            ) || name.starts_with(':')
                || (name == "te" && !value.eq_ignore_ascii_case(b"trailers"));
            if !skip {
                hpack::put_field(&mut block, &name, value);
            }
        }
        Ok(H2Head {
            block: Bytes::from(block),
        })
    }
}

/// A handle on one HTTP/2 connection. Cloning is cheap (a reference count); every clone
/// sends over the same connection. The connection closes once every handle is dropped and no
/// stream is open.
pub struct H2Conn {
    shared: Rc<Shared>,
}

impl Clone for H2Conn {
    fn clone(&self) -> Self {
        self.shared.handles.set(self.shared.handles.get() + 1);
        H2Conn {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for H2Conn {
    fn drop(&mut self) {
        let handles = self.shared.handles.get() - 1;
        self.shared.handles.set(handles);
        if handles == 0 {
            self.shared.inner.borrow_mut().wake_driver();
        }
    }
}

impl fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Conn")
            .field("in_flight", &self.in_flight())
            .field("max_concurrent", &self.max_concurrent())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// What the handles share with the driver task.
struct Shared {
    inner: RefCell<Inner>,
    /// Live `H2Conn` handles.
    handles: Cell<usize>,
    /// Exchanges in progress (sent, or waiting in the queue for a stream slot).
    in_flight: Cell<usize>,
}

/// Where an exchange is.
#[derive(Debug, Default)]
enum Phase {
    #[default]
    Free,
    /// Waiting for a stream slot: its head is kept until it is written.
    Queued,
    Open,
    Done(Result<Exchange, H2Error>),
}

/// One exchange's slot; reused once the exchange is dropped.
#[derive(Debug, Default)]
struct Entry {
    phase: Phase,
    id: u32,
    waker: Option<Waker>,
    /// The head, while queued.
    head: Option<Bytes>,
    /// The part of the request body not yet sent.
    body: Option<Bytes>,
    /// What the server lets us send on this stream.
    send_window: i64,
    /// Body bytes received and not yet given back with a WINDOW_UPDATE.
    unacked: u32,
    /// The response's status, 0 until its head came.
    status: u16,
    location: Option<String>,
    bytes: u64,
    /// What a flow's exchange keeps of its response (`None` on the plain path).
    keep: Option<Box<Kept>>,
}

/// Stream ids are odd and increasing: a cheap hash spreads them over the buckets.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 << 8 | u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n >> 1));
    }
    fn write_u64(&mut self, n: u64) {
        let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

struct Inner {
    entries: Vec<Entry>,
    free: Vec<usize>,
    /// Open streams by id.
    ids: HashMap<u32, usize, BuildHasherDefault<IdHasher>>,
    /// Exchanges waiting for a stream slot, in order.
    queue: VecDeque<usize>,
    /// Open streams with body left, waiting for window.
    sending: Vec<usize>,
    /// Frames to write; the driver swaps it with its own buffer.
    out: Vec<u8>,
    /// Responses completed on the connection.
    completed: u64,
    next_id: u32,
    open: usize,
    max_concurrent: usize,
    /// The server's SETTINGS_INITIAL_WINDOW_SIZE: a new stream's send window.
    peer_window: i64,
    /// The connection's send window.
    send_window: i64,
    /// The server's SETTINGS_MAX_FRAME_SIZE.
    max_frame: usize,
    settings_seen: bool,
    /// The PING of the handshake was answered.
    ready: bool,
    /// (last stream id, error code) of the server's GOAWAY.
    goaway: Option<(u32, u32)>,
    /// The connection is gone, and why.
    ended: Option<H2Error>,
    driver: Option<Waker>,
    /// The driver was woken and has not run since.
    notified: bool,
    /// The handshake waiting for `ready`.
    waiter: Option<Waker>,
}

impl Inner {
    fn new() -> Inner {
        Inner {
            entries: Vec::new(),
            free: Vec::new(),
            ids: HashMap::default(),
            queue: VecDeque::new(),
            sending: Vec::new(),
            out: Vec::with_capacity(4096),
            completed: 0,
            next_id: 1,
            open: 0,
            max_concurrent: usize::MAX,
            peer_window: i64::from(DEFAULT_WINDOW),
            send_window: i64::from(DEFAULT_WINDOW),
            max_frame: frame::DEFAULT_MAX_FRAME,
            settings_seen: false,
            ready: false,
            goaway: None,
            ended: None,
            driver: None,
            notified: false,
            waiter: None,
        }
    }

    fn wake_driver(&mut self) {
        if !self.notified {
            self.notified = true;
            if let Some(w) = &self.driver {
                w.wake_by_ref();
            }
        }
    }

    /// No new stream may start here.
    fn closed(&self) -> bool {
        self.ended.is_some() || self.goaway.is_some() || self.next_id > MAX_STREAM_ID
    }

    /// Why a send to a closed connection fails.
    fn refusal(&self) -> H2Error {
        match (self.goaway, &self.ended) {
            (Some((_, frame::NO_ERROR)), _) => H2Error::Refused,
            (Some((_, code)), _) => H2Error::Connect(goaway_reason(code)),
            (None, Some(e)) => e.clone(),
            (None, None) => H2Error::Refused,
        }
    }

    fn alloc(&mut self) -> usize {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry::default());
                self.entries.len() - 1
            }
        }
    }

    /// Opens a stream for entry `idx` and writes its head (and what the windows allow of
    /// its body).
    fn start(&mut self, idx: usize, block: &[u8]) {
        let id = self.next_id;
        self.next_id += 2;
        let e = &mut self.entries[idx];
        e.phase = Phase::Open;
        e.id = id;
        e.send_window = self.peer_window;
        let end = e.body.is_none();
        frame::put_headers(&mut self.out, id, block, end, self.max_frame);
        self.ids.insert(id, idx);
        self.open += 1;
        if !end && !self.push_body(idx) {
            self.sending.push(idx);
        }
    }

    /// Writes as much of entry `idx`'s body as the windows and the frame size allow; whether
    /// it is all sent.
    fn push_body(&mut self, idx: usize) -> bool {
        let Inner {
            entries,
            out,
            send_window,
            max_frame,
            ..
        } = self;
        let e = &mut entries[idx];
        loop {
            let Some(body) = e.body.as_mut() else {
                return true;
            };
            let room = e.send_window.min(*send_window).max(0) as usize;
            let n = body.len().min(*max_frame).min(room);
            if n == 0 {
                return false;
            }
            let chunk = body.split_to(n);
            let last = body.is_empty();
            let flags = if last { frame::END_STREAM } else { 0 };
            frame::put_head(out, n, frame::DATA, flags, e.id);
            out.extend_from_slice(&chunk);
            e.send_window -= n as i64;
            *send_window -= n as i64;
            if last {
                e.body = None;
            }
        }
    }

    /// Sends what the windows now allow of the bodies waiting for them.
    fn push_bodies(&mut self) {
        let mut waiting = std::mem::take(&mut self.sending);
        waiting.retain(|&idx| !self.push_body(idx));
        self.sending = waiting;
    }

    /// Starts queued exchanges while the server's limit allows.
    fn promote(&mut self) {
        while self.open < self.max_concurrent && !self.closed() {
            let Some(idx) = self.queue.pop_front() else {
                break;
            };
            let head = self.entries[idx]
                .head
                .take()
                .expect("a queued entry keeps its head");
            self.start(idx, &head);
        }
    }

    /// Ends the open stream of entry `idx` with `result`, resetting it with `rst` (or with
    /// CANCEL when its body is unsent), and starts a queued exchange in its place.
    fn finish(&mut self, idx: usize, result: Result<Exchange, H2Error>, rst: Option<u32>) {
        let e = &mut self.entries[idx];
        if !matches!(e.phase, Phase::Open) {
            return;
        }
        let id = e.id;
        let unsent = e.body.take().is_some();
        e.phase = Phase::Done(result);
        if let Some(w) = e.waker.take() {
            w.wake();
        }
        self.ids.remove(&id);
        self.open -= 1;
        if unsent {
            self.sending.retain(|&i| i != idx);
        }
        if let Some(code) = rst.or(unsent.then_some(frame::CANCEL)) {
            frame::put_rst(&mut self.out, id, code);
        }
        self.promote();
    }

    /// The response of entry `idx` is complete.
    fn complete(&mut self, idx: usize) {
        let e = &mut self.entries[idx];
        let ex = Exchange {
            status: e.status,
            location: e.location.take(),
            bytes: e.bytes,
        };
        self.completed += 1;
        self.finish(idx, Ok(ex), None);
    }

    /// Fails every queued exchange with `queued` and every open one with `open`.
    fn fail(&mut self, queued: &H2Error, open: Option<&H2Error>) {
        while let Some(idx) = self.queue.pop_front() {
            let e = &mut self.entries[idx];
            e.head = None;
            e.body = None;
            e.phase = Phase::Done(Err(queued.clone()));
            if let Some(w) = e.waker.take() {
                w.wake();
            }
        }
        if let Some(err) = open {
            let ids: Vec<usize> = self.ids.values().copied().collect();
            for idx in ids {
                self.finish(idx, Err(err.clone()), None);
            }
        }
    }

    /// The connection is gone: every exchange fails with `err`.
    fn end(&mut self, err: H2Error) {
        if self.ended.is_some() {
            return;
        }
        let queued = if matches!(self.goaway, Some((_, frame::NO_ERROR))) {
            H2Error::Refused
        } else {
            err.clone()
        };
        self.fail(&queued, Some(&err));
        self.ended = Some(err);
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    fn on_goaway(&mut self, last: u32, code: u32) {
        self.goaway = Some((last, code));
        let refused: Vec<usize> = self
            .ids
            .iter()
            .filter(|&(&id, _)| id > last)
            .map(|(_, &idx)| idx)
            .collect();
        for idx in refused {
            self.finish(idx, Err(H2Error::Refused), None);
        }
        if code == frame::NO_ERROR {
            self.fail(&H2Error::Refused, None);
        } else {
            let err = H2Error::Connect(goaway_reason(code));
            self.fail(&err, Some(&err));
        }
    }

    fn apply_settings(&mut self, payload: &[u8]) -> Result<(), ConnError> {
        for s in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                // Our head blocks never use the server's dynamic table: any size suits them.
                frame::SETTINGS_HEADER_TABLE_SIZE => {}
                frame::SETTINGS_ENABLE_PUSH if value > 1 => {
                    return Err(ConnError::protocol("SETTINGS_ENABLE_PUSH above 1"));
                }
                frame::SETTINGS_MAX_CONCURRENT_STREAMS => {
                    self.max_concurrent = value as usize;
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(ConnError::new(
                            frame::FLOW_CONTROL_ERROR,
                            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        ));
                    }
                    let delta = value - self.peer_window;
                    self.peer_window = value;
                    for &idx in self.ids.values() {
                        self.entries[idx].send_window += delta;
                    }
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(ConnError::protocol("SETTINGS_MAX_FRAME_SIZE out of range"));
                    }
                    self.max_frame = value as usize;
                }
                _ => {}
            }
        }
        self.push_bodies();
        self.promote();
        Ok(())
    }
}

fn goaway_reason(code: u32) -> String {
    format!(
        "the server closed the connection (GOAWAY {})",
        frame::error_name(code)
    )
}

/// A connection error: the GOAWAY code we send and the reason the exchanges fail with.
#[derive(Debug)]
struct ConnError {
    code: u32,
    why: String,
}

impl ConnError {
    fn new(code: u32, why: impl Into<String>) -> ConnError {
        ConnError {
            code,
            why: why.into(),
        }
    }
    fn protocol(why: impl Into<String>) -> ConnError {
        ConnError::new(frame::PROTOCOL_ERROR, why)
    }
}

/// The byte stream a connection runs over, and the kernel socket beneath it (under any TLS),
/// whose receive low-water mark the driver raises while many responses are due
/// ([`lowat`]).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + 'static {
    /// The socket, or `None` when there is none (an in-memory stream).
    fn socket(&self) -> Option<RawFd>;
}

impl Transport for tokio::net::TcpStream {
    fn socket(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

/// Performs the client handshake over `io` (prior knowledge: the caller did TLS with ALPN h2
/// already, or speaks h2c in clear), spawns the connection driver with
/// `tokio::task::spawn_local` (so it must be called inside a `LocalSet`: load workers and actix
/// arbiters qualify) and waits for one PING round trip, which guarantees the server's SETTINGS
/// (its stream limit above all) are applied before the first request. A server that never
/// answers keeps this waiting: the caller bounds it with its connect timeout.
pub async fn handshake<T: Transport>(io: T) -> Result<H2Conn, H2Error> {
    let mut inner = Inner::new();
    inner.out.extend_from_slice(frame::PREFACE);
    frame::put_settings(
        &mut inner.out,
        &[
            (frame::SETTINGS_ENABLE_PUSH, 0),
            (frame::SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),
        ],
    );
    frame::put_window_update(&mut inner.out, 0, CONNECTION_WINDOW - DEFAULT_WINDOW);
    frame::put_ping(&mut inner.out, 0, &HANDSHAKE_PING);
    let shared = Rc::new(Shared {
        inner: RefCell::new(inner),
        handles: Cell::new(1),
        in_flight: Cell::new(0),
    });
    let conn = H2Conn {
        shared: shared.clone(),
    };
    driver::spawn(io, shared);
    poll_fn(|cx| {
        let mut inner = conn.shared.inner.borrow_mut();
        if let Some(e) = &inner.ended {
            return Poll::Ready(Err(e.clone()));
        }
        if inner.ready {
            return Poll::Ready(Ok(()));
        }
        inner.waiter = Some(cx.waker().clone());
        Poll::Pending
    })
    .await?;
    Ok(conn)
}

/// An exchange in progress: counted in flight while it lives; dropping it before its end
/// takes it out of the queue, or resets its stream (CANCEL).
struct Pending<'a> {
    shared: &'a Shared,
    idx: usize,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut inner = self.shared.inner.borrow_mut();
        let idx = self.idx;
        match inner.entries[idx].phase {
            Phase::Queued => inner.queue.retain(|&i| i != idx),
            Phase::Open => {
                inner.finish(idx, Err(H2Error::Refused), Some(frame::CANCEL));
                inner.wake_driver();
            }
            Phase::Done(_) | Phase::Free => {}
        }
        let e = &mut inner.entries[idx];
        e.phase = Phase::Free;
        e.waker = None;
        e.head = None;
        e.body = None;
        e.location = None;
        e.keep = None;
        e.status = 0;
        e.bytes = 0;
        e.unacked = 0;
        inner.free.push(idx);
        let in_flight = self.shared.in_flight.get() - 1;
        self.shared.in_flight.set(in_flight);
        if in_flight == 0 && self.shared.handles.get() == 0 {
            inner.wake_driver();
        }
    }
}

impl H2Conn {
    /// Sends `head` with an optional body as one stream and reads the response to its end,
    /// counting the body's bytes and giving flow-control window back as they arrive. Takes
    /// `&self`: many sends run at once over the connection. Beyond the server's stream limit
    /// the exchange waits in the connection's queue (the wait is part of the exchange).
    pub async fn send(&self, head: &H2Head, body: Option<Bytes>) -> Result<Exchange, H2Error> {
        let sent = self.exchange::<false>(head, body, None).await;
        sent.map(|(ex, _)| ex)
    }

    /// As [`send`](Self::send), keeping of the response what `kept` asks for (its headers,
    /// its body up to a cap); `kept` comes back filled.
    pub(crate) async fn send_kept(
        &self,
        head: &H2Head,
        body: Option<Bytes>,
        kept: Box<Kept>,
    ) -> Result<(Exchange, Box<Kept>), H2Error> {
        let (ex, kept) = self.exchange::<true>(head, body, Some(kept)).await?;
        Ok((ex, kept.unwrap_or_default()))
    }

    /// One exchange; with `KEEP`, `keep` rides on the stream's entry and comes back.
    async fn exchange<const KEEP: bool>(
        &self,
        head: &H2Head,
        body: Option<Bytes>,
        keep: Option<Box<Kept>>,
    ) -> Result<(Exchange, Option<Box<Kept>>), H2Error> {
        let shared = &*self.shared;
        let pending = {
            let mut inner = shared.inner.borrow_mut();
            if inner.closed() {
                return Err(inner.refusal());
            }
            let idx = inner.alloc();
            shared.in_flight.set(shared.in_flight.get() + 1);
            inner.entries[idx].body = body.filter(|b| !b.is_empty());
            if KEEP {
                inner.entries[idx].keep = keep;
            }
            if inner.open < inner.max_concurrent && inner.queue.is_empty() {
                inner.start(idx, &head.block);
            } else {
                let e = &mut inner.entries[idx];
                e.phase = Phase::Queued;
                e.head = Some(head.block.clone());
                inner.queue.push_back(idx);
            }
            inner.wake_driver();
            Pending { shared, idx }
        };
        poll_fn(|cx| {
            let mut inner = shared.inner.borrow_mut();
            let e = &mut inner.entries[pending.idx];
            match &mut e.phase {
                Phase::Done(result) => {
                    let result = std::mem::replace(result, Err(H2Error::Refused));
                    let kept = if KEEP { e.keep.take() } else { None };
                    Poll::Ready(result.map(|ex| (ex, kept)))
                }
                _ => {
                    if !e.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        e.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// True once the connection takes no new stream: the driver ended, or a GOAWAY arrived (in
    /// flight streams the server kept may still finish). The pool drops such a connection and
    /// opens another.
    pub fn is_closed(&self) -> bool {
        self.shared.inner.borrow().closed()
    }

    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (known once `handshake` returned), or
    /// `usize::MAX` when the server set no limit: the pool caps that with its own.
    pub fn max_concurrent(&self) -> usize {
        self.shared.inner.borrow().max_concurrent
    }

    /// Exchanges in progress over this connection, those queued for a stream slot included.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.get()
    }

    /// True when one more exchange would start at once rather than wait for a stream slot:
    /// the pool prefers such a connection, or opens another while it may.
    pub fn has_room(&self) -> bool {
        self.in_flight() < self.max_concurrent()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;
