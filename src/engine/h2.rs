//! One HTTP/2 client connection for the load engine, on the `h2` crate: the handshake (prior
//! knowledge, over TLS with ALPN h2 or cleartext h2c), a driver task, and `send`, which runs one
//! exchange as one stream so many exchanges share the connection up to the server's
//! SETTINGS_MAX_CONCURRENT_STREAMS. Response bodies are counted, never copied or kept.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, Reason, RecvStream};
use tokio::io::{AsyncRead, AsyncWrite};

/// The stream-level receive window we announce: a fast server can send this much per stream
/// before it waits for a WINDOW_UPDATE (the protocol's default is 64 KiB, which throttles a
/// large body to one window per round trip).
const STREAM_WINDOW: u32 = 4 << 20;
/// The connection-level receive window: room for several streams' windows at once.
const CONNECTION_WINDOW: u32 = 16 << 20;

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

/// A handle on one HTTP/2 connection. Cloning is cheap (a few reference counts); every clone
/// sends over the same connection. The connection closes once every handle is dropped and no
/// stream is open.
#[derive(Clone, Debug)]
pub struct H2Conn {
    send: SendRequest<Bytes>,
    state: Arc<ConnState>,
}

/// What the handles share with the driver task.
#[derive(Debug, Default)]
struct ConnState {
    /// The driver task ended: the connection is gone.
    ended: AtomicBool,
    /// Exchanges in progress over this connection (sent, or waiting in h2's queue for a
    /// stream slot).
    in_flight: AtomicUsize,
}

/// Performs the client handshake over `io` (prior knowledge: the caller did TLS with ALPN h2
/// already, or speaks h2c in clear), spawns the connection driver with
/// `tokio::task::spawn_local` (so it must be called inside a `LocalSet`: load workers and actix
/// arbiters qualify) and waits for one PING round trip, which guarantees the server's SETTINGS
/// (its stream limit above all) are applied before the first request. A server that never
/// answers keeps this waiting: the caller bounds it with its connect timeout.
pub async fn handshake<T>(io: T) -> Result<H2Conn, H2Error>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_push(false)
        .handshake::<T, Bytes>(io)
        .await
        .map_err(|e| H2Error::Connect(e.to_string()))?;
    let mut ping_pong = connection.ping_pong();
    let state = Arc::new(ConnState::default());
    let driver_state = state.clone();
    tokio::task::spawn_local(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "http/2 connection ended with an error");
        }
        driver_state.ended.store(true, Ordering::Release);
    });
    if let Some(ping_pong) = ping_pong.as_mut() {
        ping_pong
            .ping(Ping::opaque())
            .await
            .map_err(|e| H2Error::Connect(e.to_string()))?;
    }
    Ok(H2Conn { send, state })
}

/// Counts an exchange in flight for as long as it lives, however it ends (dropped included).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl H2Conn {
    /// Sends `req` with an optional body as one stream and reads the response to its end,
    /// counting the body's bytes and releasing flow-control capacity as they arrive. Takes
    /// `&self`: many sends run at once over the connection. When the server's stream limit is
    /// reached, h2 queues the stream until one closes (the wait is part of the exchange).
    ///
    /// The request's URI must be absolute (scheme and authority become `:scheme` and
    /// `:authority`), and it must not carry connection-specific headers (`connection`,
    /// `transfer-encoding`, `keep-alive`, `upgrade`): HTTP/2 forbids them.
    pub async fn send(
        &self,
        req: http::Request<()>,
        body: Option<Bytes>,
    ) -> Result<Exchange, H2Error> {
        let _in_flight = InFlight::enter(&self.state.in_flight);
        let mut send = self
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| before_send(&e))?;
        let (response, mut stream) = send
            .send_request(req, body.is_none())
            .map_err(|e| before_send(&e))?;
        if let Some(body) = body {
            stream
                .send_data(body, true)
                .map_err(|e| on_stream(&e, "request body"))?;
        }
        let response = response.await.map_err(|e| on_stream(&e, "response head"))?;
        let (head, mut recv) = response.into_parts();
        let bytes = count_body(&mut recv).await?;
        let location = head
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Exchange {
            status: head.status.as_u16(),
            location,
            bytes,
        })
    }

    /// True once the connection takes no new stream: the driver ended, or a GOAWAY arrived (in
    /// flight streams the server kept may still finish). The pool drops such a connection and
    /// opens another.
    pub fn is_closed(&self) -> bool {
        if self.state.ended.load(Ordering::Acquire) {
            return true;
        }
        // A fresh clone has no pending stream, so poll_ready answers at once: an error means
        // the connection recorded a GOAWAY or a failure.
        let mut probe = self.send.clone();
        let mut cx = Context::from_waker(Waker::noop());
        matches!(probe.poll_ready(&mut cx), Poll::Ready(Err(_)))
    }

    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (known once `handshake` returned), or
    /// `usize::MAX` when the server set no limit: the pool caps that with its own.
    pub fn max_concurrent(&self) -> usize {
        self.send.current_max_send_streams()
    }

    /// Exchanges in progress over this connection, those queued by h2 for a stream slot
    /// included.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    /// True when one more exchange would start at once rather than wait for a stream slot:
    /// the pool prefers such a connection, or opens another while it may.
    pub fn has_room(&self) -> bool {
        self.in_flight() < self.max_concurrent()
    }
}

/// Reads a response body to its end, counting bytes and giving the window back as each chunk
/// is consumed, so the server is never held up by flow control. Once the head has come, any
/// failure (a reset, the connection breaking) is a broken body.
async fn count_body(recv: &mut RecvStream) -> Result<u64, H2Error> {
    let mut bytes = 0u64;
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(|e| H2Error::Body(format!("response body: {e}")))?;
        let len = chunk.len();
        bytes += len as u64;
        recv.flow_control()
            .release_capacity(len)
            .map_err(|e| H2Error::Body(format!("response body: {e}")))?;
    }
    Ok(bytes)
}

/// Classifies an error met before the request left (waiting for a stream slot or opening the
/// stream): after a graceful GOAWAY (NO_ERROR) the request was never sent, so it is refused
/// and may be retried elsewhere; any other cause means the connection failed.
fn before_send(e: &h2::Error) -> H2Error {
    if e.is_go_away() && e.is_remote() && e.reason() == Some(Reason::NO_ERROR) {
        H2Error::Refused
    } else {
        H2Error::Connect(e.to_string())
    }
}

/// Classifies an error met on an open stream. h2 hands a stream the remote GOAWAY only when
/// the stream's id is above the GOAWAY's last stream id, i.e. the server never processed it.
fn on_stream(e: &h2::Error, part: &str) -> H2Error {
    let refused = e.is_reset() && e.reason() == Some(Reason::REFUSED_STREAM);
    if refused || (e.is_go_away() && e.is_remote()) {
        H2Error::Refused
    } else if e.is_reset() {
        H2Error::Body(format!("{part}: {e}"))
    } else {
        H2Error::Connect(format!("{part}: {e}"))
    }
}

#[cfg(test)]
mod tests;
