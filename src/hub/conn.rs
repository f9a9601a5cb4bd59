//! One connection of the cluster link as a pair of channels of encoded frames, whatever carries
//! them: a WebSocket (actix-ws on the orchestrator, awc's client on the node) or, in a single
//! process, a pair of in-memory channels. The session logic above sees only [`Conn`], so
//! standalone runs and clusters share one code path, encoding included.
//!
//! Every adapter enforces the frame cap: a frame over it closes the connection with code 1009.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::hub::frame::CLOSE_TOO_BIG;

/// Frames queued towards the peer before senders wait.
const QUEUE: usize = 256;

/// What a link side writes.
#[derive(Debug)]
pub enum Out {
    Frame(Bytes),
    /// Answer to a WebSocket ping (ignored in process).
    Pong(Bytes),
    /// Close the connection with a WebSocket close code and reason.
    Close {
        code: u16,
        reason: String,
    },
}

/// One open connection: write frames to `tx`; frames from the peer come out of `rx`, which
/// ends when the connection does.
#[derive(Debug)]
pub struct Conn {
    pub tx: mpsc::Sender<Out>,
    pub rx: mpsc::Receiver<Bytes>,
}

/// What a link side's actor hears from one connection, tagged with the connection's
/// generation so that frames of a replaced connection are told apart and ignored.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub enum ConnEvent {
    Frame(u64, Bytes),
    /// The connection ended (always the last event of its stream).
    Closed(u64),
}

/// The frames of `rx` as a stream of events ending with `Closed`, for `ctx.add_stream`.
pub fn events(
    rx: mpsc::Receiver<Bytes>,
    generation: u64,
) -> impl futures_util::Stream<Item = ConnEvent> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
        .map(move |b| ConnEvent::Frame(generation, b))
        .chain(futures_util::stream::once(async move {
            ConnEvent::Closed(generation)
        }))
}

/// Two connected in-process ends. Frames over `cap` bytes close the connection, as on a
/// WebSocket. Must be called inside an actix (or tokio) runtime.
pub fn local_pair(cap: usize) -> (Conn, Conn) {
    let (a_out, a_out_rx) = mpsc::channel(QUEUE);
    let (b_out, b_out_rx) = mpsc::channel(QUEUE);
    let (a_in_tx, a_in) = mpsc::channel(QUEUE);
    let (b_in_tx, b_in) = mpsc::channel(QUEUE);
    actix_rt::spawn(pipe(a_out_rx, b_in_tx, cap));
    actix_rt::spawn(pipe(b_out_rx, a_in_tx, cap));
    (
        Conn {
            tx: a_out,
            rx: a_in,
        },
        Conn {
            tx: b_out,
            rx: b_in,
        },
    )
}

async fn pipe(mut from: mpsc::Receiver<Out>, to: mpsc::Sender<Bytes>, cap: usize) {
    while let Some(out) = from.recv().await {
        match out {
            Out::Frame(b) if b.len() <= cap => {
                if to.send(b).await.is_err() {
                    return;
                }
            }
            Out::Frame(b) => {
                tracing::warn!(
                    size = b.len(),
                    cap,
                    "local link frame over the cap; closing"
                );
                return;
            }
            Out::Pong(_) => {}
            Out::Close { .. } => return,
        }
    }
}

/// Accepts a WebSocket upgrade on the orchestrator (route `/cluster`).
pub fn accept_ws(
    req: &actix_web::HttpRequest,
    body: actix_web::web::Payload,
    cap: usize,
) -> Result<(actix_web::HttpResponse, Conn), actix_web::Error> {
    let (resp, session, stream) = actix_ws::handle(req, body)?;
    let mut stream = stream
        .max_frame_size(cap)
        .aggregate_continuations()
        .max_continuation_size(cap);
    let (out_tx, out_rx) = mpsc::channel::<Out>(QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(QUEUE);

    let mut reader_session = session.clone();
    // Weak: dropping the `Conn` must end the writer, and with it the socket.
    let closer = out_tx.downgrade();
    actix_rt::spawn(async move {
        while let Some(msg) = stream.recv().await {
            match msg {
                Ok(actix_ws::AggregatedMessage::Binary(b)) => {
                    if in_tx.send(b).await.is_err() {
                        break;
                    }
                }
                Ok(actix_ws::AggregatedMessage::Ping(p)) => {
                    if reader_session.pong(&p).await.is_err() {
                        break;
                    }
                }
                Ok(actix_ws::AggregatedMessage::Close(_)) => break,
                Ok(_) => {}
                Err(actix_ws::ProtocolError::Overflow) => {
                    if let Some(closer) = closer.upgrade() {
                        let _ = closer
                            .send(Out::Close {
                                code: CLOSE_TOO_BIG,
                                reason: format!("frame over {cap} bytes"),
                            })
                            .await;
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cluster websocket protocol error");
                    break;
                }
            }
        }
        // Dropping `in_tx` ends the reader side for the session logic.
    });

    actix_rt::spawn(ws_writer(session, out_rx));
    Ok((
        resp,
        Conn {
            tx: out_tx,
            rx: in_rx,
        },
    ))
}

/// Writes what the orchestrator's side of a WebSocket link sends, until it closes.
async fn ws_writer(mut session: actix_ws::Session, mut out_rx: mpsc::Receiver<Out>) {
    while let Some(out) = out_rx.recv().await {
        match out {
            Out::Frame(b) => {
                if session.binary(b).await.is_err() {
                    return;
                }
            }
            Out::Pong(p) => {
                if session.pong(&p).await.is_err() {
                    return;
                }
            }
            Out::Close { code, reason } => {
                let reason = actix_ws::CloseReason {
                    code: code.into(),
                    description: Some(reason),
                };
                let _ = session.close(Some(reason)).await;
                return;
            }
        }
    }
    let _ = session.close(None).await;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {url}: {why}")]
pub struct ConnectError {
    pub url: String,
    pub why: String,
}

/// Opens the node's WebSocket to the orchestrator's `/cluster` route.
pub async fn connect_ws(url: &str, cap: usize, timeout: Duration) -> Result<Conn, ConnectError> {
    let tcp = crate::engine::http::nodelay(actix_tls::connect::Connector::default().service());
    let client = awc::Client::builder()
        .connector(awc::Connector::new().connector(tcp))
        .timeout(timeout)
        .finish();
    let (_resp, framed) = client
        .ws(url)
        .max_frame_size(cap)
        .connect()
        .await
        .map_err(|e| ConnectError {
            url: url.to_string(),
            why: e.to_string(),
        })?;
    let (sink, mut stream) = framed.split();
    let (out_tx, out_rx) = mpsc::channel::<Out>(QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(QUEUE);
    // Weak: dropping the `Conn` must end the writer, and with it the socket.
    let ponger = out_tx.downgrade();

    actix_rt::spawn(async move {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(awc::ws::Frame::Binary(b)) => {
                    if in_tx.send(b).await.is_err() {
                        break;
                    }
                }
                Ok(awc::ws::Frame::Ping(p)) => {
                    // The writer task owns the sink.
                    if let Some(ponger) = ponger.upgrade() {
                        let _ = ponger.try_send(Out::Pong(p));
                    }
                }
                Ok(awc::ws::Frame::Close(reason)) => {
                    tracing::debug!(?reason, "orchestrator closed the cluster link");
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "cluster websocket protocol error");
                    break;
                }
            }
        }
    });
    actix_rt::spawn(awc_writer(sink, out_rx));
    Ok(Conn {
        tx: out_tx,
        rx: in_rx,
    })
}

/// Writes what the node's side of a WebSocket link sends, until it closes. Every frame
/// already queued goes into one flush: with TCP_NODELAY a flush per frame would be a packet
/// per frame.
async fn awc_writer<S>(mut sink: S, mut out_rx: mpsc::Receiver<Out>)
where
    S: futures_util::Sink<awc::ws::Message> + Unpin,
{
    while let Some(first) = out_rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            let msg = match out {
                Out::Pong(p) => awc::ws::Message::Pong(p),
                Out::Frame(b) => awc::ws::Message::Binary(b),
                Out::Close { code, reason } => {
                    let reason = awc::ws::CloseReason {
                        code: code.into(),
                        description: Some(reason),
                    };
                    let _ = sink.send(awc::ws::Message::Close(Some(reason))).await;
                    return;
                }
            };
            if sink.feed(msg).await.is_err() {
                return;
            }
            next = out_rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.send(awc::ws::Message::Close(None)).await;
}
