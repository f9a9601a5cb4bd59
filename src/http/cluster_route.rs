//! The orchestrator's `/cluster` route: a node's WebSocket link, its handshake, and the hand-over
//! of the connection to the orchestrator (which starts the node's proxy). [`serve_link`] is
//! shared with the in-process transport of a standalone run.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::actors::registry::Registry;
use crate::http::api::ApiState;
use crate::http::error::{ApiError, ErrorBody};
use crate::hub::conn::{Conn, Out};
use crate::hub::handshake::{self, HANDSHAKE_TIMEOUT, JoinError};
use crate::messages::cluster::Attach;
use crate::messages::wire::{CLOSE_TOO_BIG, WireError};

/// The nodes' cluster link: a WebSocket (nodes only; a request without the upgrade is a 400).
#[utoipa::path(
    get,
    path = "/cluster",
    tag = "cluster",
    responses(
        (status = 101, description = "Switching to the WebSocket link"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
    )
)]
pub(crate) async fn cluster(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let cap = state.registry.settings.cluster.max_frame_size;
    let (resp, conn) = crate::hub::conn::accept_ws(&req, body, cap).map_err(|e| {
        ApiError::BadRequest(format!(
            "/cluster is the nodes' WebSocket link and needs a WebSocket upgrade: {e}"
        ))
    })?;
    actix_rt::spawn(serve_link(conn, state.registry.clone()));
    Ok(resp)
}

/// The WebSocket close code and reason for a failed handshake that is not closed yet.
fn handshake_close(e: &JoinError) -> Option<(u16, &'static str)> {
    match e {
        JoinError::Refused(_) | JoinError::Closed => None,
        JoinError::Timeout(_) => Some((1008, "no handshake in time")),
        JoinError::Wire(WireError::TooBig { .. }) => Some((CLOSE_TOO_BIG, "frame over the cap")),
        JoinError::Wire(_) | JoinError::Unexpected(_) => Some((1002, "handshake expected")),
    }
}

/// Runs the orchestrator's half of the handshake on a new connection, then hands it to the
/// node's proxy. Shared by the WebSocket route and the in-process transport.
pub async fn serve_link(mut conn: Conn, registry: Arc<Registry>) {
    let settings = &registry.settings;
    let cap = settings.cluster.max_frame_size;
    let hello = match handshake::accept(
        &mut conn,
        settings.cluster.secret.as_deref(),
        cap,
        HANDSHAKE_TIMEOUT,
    )
    .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "node handshake failed");
            // A refusal has closed the link already. Otherwise close it here: dropping `conn`
            // alone leaves the socket open for as long as the peer keeps it.
            if let Some((code, reason)) = handshake_close(&e) {
                let _ = conn
                    .tx
                    .send(Out::Close {
                        code,
                        reason: reason.into(),
                    })
                    .await;
            }
            return;
        }
    };
    let tx = conn.tx.clone();
    let Some(orch) = registry.orchestrator() else {
        handshake::refuse(&tx, "the orchestrator is restarting", cap).await;
        return;
    };
    match orch.send(Attach { hello, conn }).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => handshake::refuse(&tx, &reason, cap).await,
        Err(_) => handshake::refuse(&tx, "the orchestrator is restarting", cap).await,
    }
}
