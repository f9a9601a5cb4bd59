//! `GET /api/events`: the live event stream, a WebSocket of JSON text frames (the contract is
//! `schemas/events.schema.json`). `?execution_id=ID` keeps one execution's events.
//!
//! Each connection subscribes to the `EventBus` with a buffer of `api.event_buffer` events,
//! and the same bound applies to what is written but unread: pings carry the count of events
//! written, and pongs (which every WebSocket client sends as it reads) say how far it read.
//! A subscriber more than a buffer behind, in either place, is dropped: its socket is closed
//! with code 1008 and a reason starting `slow subscriber`, and the bus never waits for it. The
//! close frame queues behind what was already written, so the server waits up to
//! [`CLOSE_GRACE`] for the client to read that far, then cuts the connection. A client that
//! answers no ping for [`PONG_TIMEOUT`] is closed too.
//!
//! Who may subscribe ([`check_origin`]): WebSockets are not bound by the browser's same-origin
//! policy, so any page a user visits could open this stream on an orchestrator the browser
//! reaches. A request that carries an `Origin` (every browser sends one, and a page cannot
//! change it) must come from the origin served (`Origin` equal to `Host`, as the web UI's
//! does), or carry the API token: `Authorization: Bearer <token>`, or, for a browser, which
//! cannot set headers on a WebSocket, the subprotocol `mcpt.token.<token as hex>` beside
//! [`PROTOCOL`]. Others get 403. A request without `Origin` is not a browser's; like every
//! read of the API it is open.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::api::ApiState;
use crate::http::error::ApiError;
use crate::messages::events::{Event, EventKind, Subscribe, Unsubscribe};

/// How often the server pings an idle subscriber.
pub const PING_EVERY: Duration = Duration::from_secs(10);
/// A subscriber that answers nothing for this long is closed.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a dropped subscriber has to read up to its close frame.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Largest frame accepted from a subscriber (it only ever sends pings and a close).
const MAX_CLIENT_FRAME: usize = 4096;
/// The subprotocol a browser names beside its token one; the answer names it back.
pub const PROTOCOL: &str = "mcpt.events";
/// The prefix of the subprotocol that carries the API token (hex of its UTF-8 bytes).
pub const TOKEN_PROTOCOL: &str = "mcpt.token.";

/// Lower-case hex of a token's bytes: how a browser puts it in a subprotocol name, whose
/// characters are restricted.
pub fn token_hex(token: &str) -> String {
    crate::hex::encode(token.as_bytes())
}

/// Whether a request may subscribe: no `Origin` (not a browser), the origin served, or the
/// API token in the `Authorization` header or a subprotocol.
pub fn check_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    if same_origin(&origin, req) {
        return Ok(());
    }
    let token = req
        .app_data::<web::Data<crate::http::error::ApiToken>>()
        .and_then(|t| t.0.clone());
    if let Some(token) = token {
        let offered = format!("{TOKEN_PROTOCOL}{}", token_hex(&token));
        let by_protocol = req
            .headers()
            .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| crate::http::error::constant_time_eq(p.trim().as_bytes(), offered.as_bytes()));
        if by_protocol || crate::http::error::bearer_matches_request(req, &token) {
            return Ok(());
        }
    }
    Err(ApiError::Forbidden(format!(
        "a browser page of origin {origin:?} may not read the event stream of another origin: \
         open the web UI of this orchestrator, or send the API token (api.token) as \
         `Authorization: Bearer <token>` or as the subprotocol {TOKEN_PROTOCOL}<token as hex>"
    )))
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port the request was sent
/// to (its `Host` header).
fn same_origin(origin: &str, req: &HttpRequest) -> bool {
    let Ok(o) = url::Url::parse(origin) else {
        return false; // "null" and other opaque origins
    };
    let (Some(o_host), Some(o_port)) = (o.host_str(), o.port_or_known_default()) else {
        return false;
    };
    let Some(host) = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    // Parse the Host header as the authority of a URL of the origin's scheme, so its default
    // port and bracketed IPv6 read the same way.
    match url::Url::parse(&format!("{}://{host}", o.scheme())) {
        Ok(h) => {
            h.host_str().is_some_and(|h| h.eq_ignore_ascii_case(o_host))
                && h.port_or_known_default() == Some(o_port)
                && h.path() == "/"
                && h.username().is_empty()
        }
        Err(_) => false,
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/events")
            .route(web::get().to(events))
            .default_service(crate::http::error::not_allowed("GET")),
    );
}

/// The `execution_id` filter of a query string (no other parameter is taken).
fn filter(query: &str) -> Result<Option<String>, ApiError> {
    let mut execution_id = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "execution_id" if !v.is_empty() => execution_id = Some(v.into_owned()),
            "execution_id" => {
                return Err(ApiError::BadRequest(
                    "query parameter execution_id: must not be empty".into(),
                ));
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter {other:?}: unknown (only execution_id is taken)"
                )));
            }
        }
    }
    Ok(execution_id)
}

/// The live event stream: a WebSocket of JSON text frames (`schemas/events.schema.json`).
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    params(("execution_id" = Option<String>, Query, description = "Keep only this execution's events")),
    responses(
        (status = 101, description = "Switching to the WebSocket stream"),
        (status = 400, description = "Not a WebSocket upgrade, or a bad query parameter", body = crate::http::error::ErrorBody),
        (status = 503, description = "The event bus is restarting", body = crate::http::error::ErrorBody),
    )
)]
pub(crate) async fn events(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req)?;
    let execution_id = filter(req.query_string())?;
    let bus = state
        .registry
        .events()
        .ok_or_else(|| ApiError::Unavailable("the event bus is restarting; retry".into()))?;
    let buffer = state.registry.settings.api.event_buffer;
    let (resp, session, stream) = actix_ws::handle_with_protocols(&req, body, &[PROTOCOL])
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let subscription = bus
        .send(Subscribe {
            execution_id: execution_id.clone(),
            buffer,
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("the event bus did not answer: {e}")))?;
    let id = subscription.id;
    let hello = Event::now(EventKind::Hello {
        execution_id,
        buffer,
    });
    actix_rt::spawn(async move {
        let stream = stream.max_frame_size(MAX_CLIENT_FRAME);
        let (session, end) = serve(session, stream, subscription, hello).await;
        // Counted when it is decided, not after the close frame has waited behind what a
        // slow client left unread (up to CLOSE_GRACE).
        let slow = matches!(&end, Step::Close(_, reason) if reason.starts_with("slow subscriber"));
        bus.do_send(Unsubscribe { id, slow });
        close(session, end).await;
    });
    Ok(resp)
}

/// What ended a step of the connection loop.
enum Step {
    Go,
    End,
    Close(actix_ws::CloseCode, String),
}

/// Flow control over pings: each ping carries the count of events written so far, and the
/// pong echoes it back, telling how far the client has read. The kernel's socket buffers hold
/// megabytes on loopback, so waiting for a write to block would let a reader that never
/// reads cost that much before it is noticed; this bounds what is in flight to the buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    buffer: u64,
    written: u64,
    acked: u64,
    pinged_at: u64,
}

impl Window {
    fn new(buffer: usize) -> Window {
        Window {
            buffer: buffer.max(1) as u64,
            written: 0,
            acked: 0,
            pinged_at: 0,
        }
    }

    /// One more event written: whether to ping now (every quarter of the buffer).
    fn wrote(&mut self) -> bool {
        self.written += 1;
        let every = (self.buffer / 4).max(1);
        if self.written - self.pinged_at >= every {
            self.pinged_at = self.written;
            true
        } else {
            false
        }
    }

    /// A pong's payload: the count its ping carried.
    fn pong(&mut self, payload: &[u8]) {
        if let Ok(bytes) = <[u8; 8]>::try_from(payload) {
            // Never beyond what was written (a client cannot ack ahead).
            self.acked = self.acked.max(u64::from_be_bytes(bytes).min(self.written));
        }
    }

    /// More events unread than the buffer allows.
    fn overflowing(&self) -> bool {
        self.written - self.acked > self.buffer
    }

    fn slow_reason(&self) -> String {
        format!(
            "slow subscriber: {} events unread, more than the buffer of {}; reconnect and refetch",
            self.written - self.acked,
            self.buffer
        )
    }
}

async fn serve(
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut sub: crate::messages::events::Subscription,
    hello: Event,
) -> (actix_ws::Session, Step) {
    if session.text(hello.to_json()).await.is_err() {
        return (session, Step::End);
    }
    let mut window = Window::new(sub.events.max_capacity());
    let mut heard = Instant::now();
    let mut heartbeat = actix_rt::time::interval(PING_EVERY);
    heartbeat.tick().await;
    let restarted = || "the event bus restarted; reconnect".to_string();
    let end = loop {
        let step = tokio::select! {
            reason = &mut sub.dropped => Step::Close(
                actix_ws::CloseCode::Policy,
                reason.unwrap_or_else(|_| restarted()),
            ),
            frame = sub.events.recv() => match frame {
                // Writing waits while the socket is full; meanwhile the bus may drop us.
                Some(frame) => tokio::select! {
                    sent = session.text(frame.to_string()) => match sent {
                        Err(_) => Step::End,
                        Ok(()) if window.wrote() => ping(&mut session, window.written).await,
                        Ok(()) => Step::Go,
                    },
                    reason = &mut sub.dropped => Step::Close(
                        actix_ws::CloseCode::Policy,
                        reason.unwrap_or_else(|_| restarted()),
                    ),
                },
                None => Step::Close(
                    actix_ws::CloseCode::Policy,
                    sub.dropped.try_recv().unwrap_or_else(|_| restarted()),
                ),
            },
            msg = futures_util::StreamExt::next(&mut stream) => {
                from_client(&mut session, msg, &mut heard, &mut window).await
            }
            _ = heartbeat.tick() => {
                if heard.elapsed() > PONG_TIMEOUT {
                    Step::Close(
                        actix_ws::CloseCode::Policy,
                        format!("no answer to pings for {} s", PONG_TIMEOUT.as_secs()),
                    )
                } else {
                    ping(&mut session, window.written).await
                }
            }
        };
        match step {
            Step::Go if window.overflowing() => {
                break Step::Close(actix_ws::CloseCode::Policy, window.slow_reason());
            }
            Step::Go => continue,
            other => break other,
        }
    };
    (session, end)
}

/// Answers what the client sent: its pongs move the window, its pings get a pong.
async fn from_client(
    session: &mut actix_ws::Session,
    msg: Option<Result<actix_ws::Message, actix_ws::ProtocolError>>,
    heard: &mut Instant,
    window: &mut Window,
) -> Step {
    match msg {
        Some(Ok(actix_ws::Message::Pong(p))) => {
            *heard = Instant::now();
            window.pong(&p);
            Step::Go
        }
        Some(Ok(actix_ws::Message::Ping(p))) => {
            *heard = Instant::now();
            match actix_rt::time::timeout(Duration::from_secs(1), session.pong(&p)).await {
                Ok(Err(_)) => Step::End,
                _ => Step::Go,
            }
        }
        Some(Ok(actix_ws::Message::Close(_))) | None => Step::End,
        Some(Ok(_)) => {
            *heard = Instant::now();
            Step::Go
        }
        Some(Err(e)) => Step::Close(
            actix_ws::CloseCode::Protocol,
            format!("protocol error: {e}"),
        ),
    }
}

/// Closes the connection the way `end` says.
async fn close(session: actix_ws::Session, end: Step) {
    if let Step::Close(code, reason) = end {
        tracing::info!(%reason, "closing an event subscriber");
        let close = session.close(Some(actix_ws::CloseReason {
            code,
            description: Some(reason),
        }));
        // Behind everything already written: give the client time to read that far.
        let _ = actix_rt::time::timeout(CLOSE_GRACE, close).await;
    }
}

/// Pings with the count of events written. A client that reads nothing may leave no room for
/// it: then go on, and let the window or the pong timeout end the connection.
async fn ping(session: &mut actix_ws::Session, written: u64) -> Step {
    match actix_rt::time::timeout(Duration::from_secs(1), session.ping(&written.to_be_bytes()))
        .await
    {
        Ok(Err(_)) => Step::End,
        _ => Step::Go,
    }
}

#[cfg(test)]
mod tests {
    use super::{Window, filter, same_origin};

    #[test]
    fn an_origin_is_the_same_when_it_names_the_host_and_port_served() {
        let host = |h: &str| {
            actix_web::test::TestRequest::default()
                .insert_header(("Host", h))
                .to_http_request()
        };
        for (origin, served) in [
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://LocalHost:8080", "localhost:8080"),
            ("http://example.com", "example.com:80"),
            ("https://example.com", "example.com"),
            ("http://[::1]:8080", "[::1]:8080"),
        ] {
            assert!(same_origin(origin, &host(served)), "{origin} on {served}");
        }
        for (origin, served) in [
            ("http://evil.example", "127.0.0.1:8080"),
            ("http://127.0.0.1:8081", "127.0.0.1:8080"),
            ("https://example.com", "example.com:80"),
            ("null", "127.0.0.1:8080"),
            ("http://127.0.0.1:8080", "127.0.0.1:8080/x"),
            ("http://127.0.0.1:8080", "user@127.0.0.1:8080"),
        ] {
            assert!(!same_origin(origin, &host(served)), "{origin} on {served}");
        }
    }

    #[test]
    fn the_window_counts_what_the_pongs_acknowledge() {
        let mut w = Window::new(8);
        let pings: Vec<bool> = (0..8).map(|_| w.wrote()).collect();
        assert_eq!(
            pings,
            [false, true, false, true, false, true, false, true],
            "a ping every quarter of the buffer"
        );
        assert!(!w.overflowing(), "8 unread of 8");
        w.wrote();
        assert!(w.overflowing(), "9 unread of 8");
        w.pong(&4u64.to_be_bytes());
        assert!(!w.overflowing());
        // Garbage and acks from the future change nothing beyond what was written.
        w.pong(b"junk");
        assert_eq!(w.acked, 4);
        w.pong(&100u64.to_be_bytes());
        assert_eq!(w.acked, 9);
        assert!(w.slow_reason().starts_with("slow subscriber"));
    }

    #[test]
    fn the_filter_takes_an_execution_id_and_nothing_else() {
        assert_eq!(filter("").unwrap(), None);
        assert_eq!(filter("execution_id=abc").unwrap(), Some("abc".to_string()));
        assert!(filter("execution_id=").is_err());
        assert!(filter("execution=abc").is_err());
    }
}
