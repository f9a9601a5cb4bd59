//! `mcpt run PLAN --orchestrator URL`: the plan, read and validated here as for a local run,
//! is submitted to a cluster's orchestrator (`POST /api/executions`, the plan document as the
//! body), followed live on `GET /api/events?execution_id=ID` with the local run's progress
//! line, and its report fetched at the end (`GET /api/executions/{id}/report`), then printed
//! and written as a local run's is, with the same exit codes.
//!
//! The event stream has no replay, so the follower reads the execution's state
//! (`GET /api/executions/{id}`) whenever it (re)connects, on every state event, and every
//! [`POLL`] besides: a final state announced while it was away is still seen. It ends only on
//! a final state read from the orchestrator, never on a closed stream. A lost connection is
//! retried with backoff; one not back within `--reconnect-timeout` is an error (exit 1).
//! Ctrl-C cancels the execution (`DELETE`, sent again after a reconnect if it could not go
//! out), then waits for its report; a second Ctrl-C quits at once.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use awc::http::Method;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;

use super::{EXIT_INTERRUPTED, EXIT_INVALID, ProgressView, RunArgs, finish_run, stop_on_ctrl_c};
use crate::embed::client::{Api, CallError};
use crate::execution::State;
use crate::run::Progress;
use crate::settings::Settings;
use crate::task::report::Report;

/// How often the execution's state is read besides the stream's events.
const POLL: Duration = Duration::from_secs(2);
/// The first wait before reconnecting; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The largest event frame read.
const MAX_FRAME: usize = 16 << 20;

/// `--reconnect-timeout`'s parser.
pub(super) fn duration_arg(s: &str) -> Result<Duration, String> {
    crate::validate::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration such as 60s, 2m or 500ms"))
}

#[derive(Debug, thiserror::Error)]
enum RemoteError {
    #[error("cannot reach the orchestrator at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("the orchestrator at {url} refused the plan ({status}): {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error(
        "lost the orchestrator at {url} and could not reach it again within {secs} s ({why}); \
         execution {id} may still be running: see {url}/api/executions/{id}"
    )]
    Lost {
        url: String,
        secs: f64,
        why: String,
        id: String,
    },
    #[error("execution {id}: the orchestrator answered {status}: {message}")]
    Answer {
        id: String,
        status: u16,
        message: String,
    },
    #[error("the execution failed: {0}")]
    Failed(String),
}

/// Runs the plan `doc` (validated) on the cluster of `url`; the exit code as a local run's.
pub(super) fn run(
    args: &RunArgs,
    url: &url::Url,
    settings: &Settings,
    doc: &Value,
) -> anyhow::Result<ExitCode> {
    if url.scheme() != "http" || url.host().is_none() {
        eprintln!(
            "error: --orchestrator must be the orchestrator's http:// address, e.g. http://127.0.0.1:8080, got {url}"
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let base = url.as_str().trim_end_matches('/').to_string();
    let token = args.token.clone().or_else(|| settings.api.token.clone());
    let progress = ProgressView::new(args.quiet);
    let outcome = actix::System::new().block_on(async {
        let api = Api::new(base, token);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        actix_rt::spawn(stop_on_ctrl_c(stop_tx));
        let id = api.submit(doc).await?;
        eprintln!("execution {id} submitted to {}", api.base);
        let mut follower = Follower::new(&api, id, stop, &progress, args.reconnect_timeout);
        let view = follower.follow().await?;
        let report = follower.report().await;
        Ok::<_, RemoteError>((view, report))
    });
    progress.finish();
    let (view, report) = match outcome {
        Ok(done) => done,
        Err(e) if e.plan_invalid() => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        Err(e) => return Err(e.into()),
    };
    let state = view["state"].as_str().unwrap_or_default();
    // Failed, and not by a threshold's abort: no report to show, as with a local run.
    if state == "failed"
        && !report
            .as_ref()
            .is_ok_and(|r| r.summary.stopped_by.is_some())
    {
        let reason = view["reason"].as_str().unwrap_or("no reason given");
        return Err(RemoteError::Failed(reason.to_string()).into());
    }
    let report = report?;
    let code = finish_run(args, &report)?;
    // Whatever the report says, a failed or cancelled execution is not a pass.
    let code = match state {
        "failed" if code == 0 => 1,
        "cancelled" if code == 0 => EXIT_INTERRUPTED,
        _ => code,
    };
    Ok(ExitCode::from(code))
}

impl RemoteError {
    /// The plan is what the orchestrator refused (its validation, its size or its type), as
    /// opposed to the call (a token, say).
    fn plan_invalid(&self) -> bool {
        matches!(self, RemoteError::Refused { status, .. } if matches!(status, 400 | 413 | 415 | 422))
    }
}

impl Api {
    /// `POST /api/executions`: the execution's id.
    async fn submit(&self, doc: &Value) -> Result<String, RemoteError> {
        let answer = self.call(Method::POST, "/api/executions", Some(doc)).await;
        let answer = answer.map_err(|e| match e {
            CallError::Transient(why) => RemoteError::Unreachable {
                url: self.base.clone(),
                why,
            },
            CallError::Status {
                status, message, ..
            } => RemoteError::Refused {
                url: self.base.clone(),
                status,
                message: if status == 401 {
                    format!("{message} (pass --token, or set api.token or MCP_API_TOKEN)")
                } else {
                    message
                },
            },
        })?;
        answer["execution_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RemoteError::Unreachable {
                url: self.base.clone(),
                why: format!("no execution_id in the answer to the submit: {answer}"),
            })
    }

    async fn execution(&self, id: &str) -> Result<Value, CallError> {
        self.call(Method::GET, &format!("/api/executions/{id}"), None)
            .await
    }

    /// The live stream of execution `id`'s events.
    async fn events(
        &self,
        id: &str,
    ) -> Result<
        impl futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
        + Unpin
        + use<>,
        CallError,
    > {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let url = format!(
            "ws{}/api/events?execution_id={id}",
            self.base.trim_start_matches("http")
        );
        let mut req = self.client.ws(url).max_frame_size(MAX_FRAME);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.connect().await {
            Ok((_, framed)) => Ok(framed),
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.is_client_error() => {
                Err(CallError::Status {
                    status: s.as_u16(),
                    message: "the event stream was refused".into(),
                    fields: None,
                })
            }
            Err(e) => Err(CallError::Transient(e.to_string())),
        }
    }
}

/// Whether an execution's view shows it over: a final state, and its end time set (a
/// cancelled one ends once its nodes have reported).
fn over(view: &Value) -> bool {
    let terminal = view["state"]
        .as_str()
        .and_then(State::parse)
        .is_some_and(State::is_terminal);
    terminal && view["finished_at_ms"].is_u64()
}

/// The progress line's figures from an execution's view (`GET /api/executions/{id}`), as
/// a local run takes them from the same view (`run::Progress`).
fn progress(elapsed: Duration, v: &Value) -> Progress {
    let num = |x: &Value| x.as_f64().unwrap_or(0.0);
    let mut p = Progress {
        elapsed,
        duration: Duration::try_from_secs_f64(num(&v["duration_s"])).unwrap_or_default(),
        average_rps: num(&v["achieved_rps"]),
        ..Progress::default()
    };
    let tasks = v["tasks"].as_array().map(Vec::as_slice).unwrap_or_default();
    p.flow = tasks.iter().any(|t| !t["iterations"].is_null());
    for t in tasks {
        if t["last_second"].is_object() {
            p.planned_rps += num(&t["last_second"]["planned"]);
            p.achieved_rps += num(&t["last_second"]["completed"]);
        }
        p.p50_ms = p.p50_ms.max(num(&t["latency_ms"]["p50"]));
        p.p99_ms = p.p99_ms.max(num(&t["latency_ms"]["p99"]));
        p.completed += t["completed"].as_u64().unwrap_or(0);
        p.errors += t["errors"].as_u64().unwrap_or(0);
    }
    p
}

/// Where the cancel of Ctrl-C stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cancel {
    No,
    /// Asked for; not yet taken by the orchestrator (sent again after a reconnect).
    Wanted,
    Sent,
}

/// Follows one execution to its end.
struct Follower<'a> {
    api: &'a Api,
    id: String,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Nobody can press Ctrl-C any more (the handler is gone).
    stop_gone: bool,
    cancel: Cancel,
    progress: &'a ProgressView,
    reconnect_within: Duration,
    /// Seconds of the run shown so far, and when it started (the orchestrator's clock).
    shown: u64,
    started_at_ms: Option<u64>,
    /// What a pending execution waits for, as last said.
    waiting: Option<String>,
}

impl<'a> Follower<'a> {
    fn new(
        api: &'a Api,
        id: String,
        stop: tokio::sync::watch::Receiver<bool>,
        progress: &'a ProgressView,
        reconnect_within: Duration,
    ) -> Follower<'a> {
        Follower {
            api,
            id,
            stop,
            stop_gone: false,
            cancel: Cancel::No,
            progress,
            reconnect_within,
            shown: 0,
            started_at_ms: None,
            waiting: None,
        }
    }

    /// Follows the execution until its view shows it over, and returns that view; reconnects
    /// after a lost connection, within `reconnect_within` of the loss.
    async fn follow(&mut self) -> Result<Value, RemoteError> {
        let mut lost_since: Option<Instant> = None;
        let mut backoff = BACKOFF_FIRST;
        loop {
            let why = match self.session(&mut lost_since).await {
                Ok(view) => return Ok(view),
                Err(CallError::Transient(why)) => why,
                Err(CallError::Status {
                    status, message, ..
                }) => {
                    return Err(RemoteError::Answer {
                        id: self.id.clone(),
                        status,
                        message,
                    });
                }
            };
            if lost_since.is_none() {
                backoff = BACKOFF_FIRST;
                eprintln!(
                    "lost the orchestrator at {} ({why}); reconnecting for up to {} s",
                    self.api.base,
                    self.reconnect_within.as_secs_f64()
                );
            }
            let since = *lost_since.get_or_insert_with(Instant::now);
            let left = self.reconnect_within.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(self.lost(why));
            }
            self.pause(backoff.min(left)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn lost(&self, why: String) -> RemoteError {
        RemoteError::Lost {
            url: self.api.base.clone(),
            secs: self.reconnect_within.as_secs_f64(),
            why,
            id: self.id.clone(),
        }
    }

    /// One connection to the event stream: the final view once the execution is over, or
    /// why the connection was lost or refused. `lost_since` is cleared once caught up.
    async fn session(&mut self, lost_since: &mut Option<Instant>) -> Result<Value, CallError> {
        let mut ws = self.api.events(&self.id).await?;
        // Subscribed: from here on no event is missed. Catch up on what happened before.
        if self.cancel == Cancel::Wanted {
            self.send_cancel().await?;
        }
        let view = self.api.execution(&self.id).await?;
        if lost_since.take().is_some() {
            eprintln!("reconnected to the orchestrator at {}", self.api.base);
        }
        if let Some(done) = self.look(view) {
            return Ok(done);
        }
        let mut poll = actix_rt::time::interval(POLL);
        poll.tick().await;
        loop {
            use awc::ws::Frame;
            tokio::select! {
                changed = self.stop.changed(), if self.listening() => {
                    self.note_stop(changed.is_ok());
                    if self.cancel == Cancel::Wanted {
                        self.send_cancel().await?;
                    }
                }
                _ = poll.tick() => {
                    if let Some(done) = self.refresh().await? {
                        return Ok(done);
                    }
                }
                frame = ws.next() => match frame {
                    Some(Ok(Frame::Text(text))) => {
                        if let Some(done) = self.on_event(&text).await? {
                            return Ok(done);
                        }
                    }
                    Some(Ok(Frame::Ping(p))) => ws
                        .send(awc::ws::Message::Pong(p))
                        .await
                        .map_err(|e| CallError::Transient(e.to_string()))?,
                    Some(Ok(Frame::Close(reason))) => {
                        let why = reason.and_then(|r| r.description).unwrap_or_default();
                        return Err(CallError::Transient(format!("the event stream closed: {why}")));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(CallError::Transient(e.to_string())),
                    None => return Err(CallError::Transient("the event stream ended".into())),
                },
            }
        }
    }

    /// One event of the stream: a second merged shows the progress line (once per second of
    /// the run), a state change reads the view.
    async fn on_event(&mut self, text: &[u8]) -> Result<Option<Value>, CallError> {
        let Ok(event) = serde_json::from_slice::<Value>(text) else {
            return Ok(None);
        };
        match event["type"].as_str() {
            Some("stats") => {
                let at = event["at_ms"].as_u64().unwrap_or(0);
                let second = |start: u64| at.saturating_sub(start) / 1000;
                if self.started_at_ms.is_some_and(|s| second(s) <= self.shown) {
                    return Ok(None);
                }
                let view = self.api.execution(&self.id).await?;
                self.started_at_ms = view["started_at_ms"].as_u64();
                if let Some(start) = self.started_at_ms
                    && second(start) > self.shown
                    && !over(&view)
                {
                    self.shown = second(start);
                    let elapsed = Duration::from_millis(at.saturating_sub(start));
                    self.progress.show(&progress(elapsed, &view));
                }
                Ok(self.look(view))
            }
            Some("execution_state") => self.refresh().await,
            _ => Ok(None),
        }
    }

    async fn refresh(&mut self) -> Result<Option<Value>, CallError> {
        let view = self.api.execution(&self.id).await?;
        Ok(self.look(view))
    }

    /// The view if it shows the execution over; says what a pending one waits for.
    fn look(&mut self, view: Value) -> Option<Value> {
        if over(&view) {
            return Some(view);
        }
        let waiting = view["waiting_for"].as_str().map(str::to_string);
        if waiting.is_some() && waiting != self.waiting {
            eprintln!(
                "execution {} waits: {}",
                self.id,
                waiting.as_deref().unwrap_or("")
            );
        }
        self.waiting = waiting;
        None
    }

    /// Whether a Ctrl-C is still to be listened for.
    fn listening(&self) -> bool {
        !self.stop_gone && self.cancel == Cancel::No
    }

    /// The stop signal changed (`alive`) or its sender is gone.
    fn note_stop(&mut self, alive: bool) {
        self.stop_gone = !alive;
        if alive && *self.stop.borrow() {
            eprintln!("cancelling execution {} on {}", self.id, self.api.base);
            self.cancel = Cancel::Wanted;
        }
    }

    /// `DELETE /api/executions/{id}`. One that ended otherwise meanwhile (409) is followed to
    /// its end like a cancelled one.
    async fn send_cancel(&mut self) -> Result<(), CallError> {
        let path = format!("/api/executions/{}", self.id);
        match self.api.call(Method::DELETE, &path, None).await {
            Ok(_) | Err(CallError::Status { status: 409, .. }) => {
                self.cancel = Cancel::Sent;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Waits `d` before a reconnect, noting a Ctrl-C meanwhile (its cancel goes out once
    /// reconnected).
    async fn pause(&mut self, d: Duration) {
        let sleep = actix_rt::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                changed = self.stop.changed(), if self.listening() => {
                    self.note_stop(changed.is_ok());
                }
            }
        }
    }

    /// The execution's report, retried as a lost connection is.
    async fn report(&mut self) -> Result<Report, RemoteError> {
        let path = format!("/api/executions/{}/report", self.id);
        let mut lost_since: Option<Instant> = None;
        let mut backoff = BACKOFF_FIRST;
        loop {
            let why = match self.api.call(Method::GET, &path, None).await {
                Ok(v) => {
                    return serde_json::from_value(v).map_err(|e| RemoteError::Answer {
                        id: self.id.clone(),
                        status: 200,
                        message: format!("the report does not read: {e}"),
                    });
                }
                Err(CallError::Transient(why)) => why,
                Err(CallError::Status {
                    status, message, ..
                }) => {
                    return Err(RemoteError::Answer {
                        id: self.id.clone(),
                        status,
                        message,
                    });
                }
            };
            let since = *lost_since.get_or_insert_with(Instant::now);
            let left = self.reconnect_within.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(self.lost(why));
            }
            actix_rt::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{duration_arg, over};
    use crate::embed::client::message;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn an_execution_is_over_in_a_final_state_with_its_end_time() {
        assert!(over(&json!({"state": "completed", "finished_at_ms": 5})));
        assert!(over(&json!({"state": "cancelled", "finished_at_ms": 5})));
        // Cancelled, its nodes still reporting: not yet.
        assert!(!over(
            &json!({"state": "cancelled", "finished_at_ms": null})
        ));
        assert!(!over(&json!({"state": "running", "finished_at_ms": 5})));
        assert!(!over(&json!({"error": "not_found"})));
    }

    #[test]
    fn an_error_answer_names_its_field() {
        let e = json!({"error": "invalid", "message": "must be positive", "field": "tasks[0].parameters.base_rps"});
        assert_eq!(
            message(&e),
            "tasks[0].parameters.base_rps: must be positive"
        );
        assert_eq!(
            message(&json!({"error": "unauthorized", "message": "no token", "field": null})),
            "no token"
        );
        assert_eq!(message(&json!("plain")), "\"plain\"");
    }

    #[test]
    fn the_reconnect_timeout_reads_durations() {
        assert_eq!(duration_arg("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(duration_arg("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration_arg("soon").is_err());
    }
}
