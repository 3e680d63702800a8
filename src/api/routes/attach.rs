//! Attaching to a session (typing and reading) and observing it (reading) over a WebSocket:
//! binary frames carry the terminal's bytes both ways, text frames JSON control.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::atomic::Ordering;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{parse_id, Common, ErrorOut, Result, SessionPath, NO_SESSION, P};
use crate::api::{Api, ApiError, Auth};
use crate::sessions::Session;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(attach))
        .routes(routes!(observe))
}

/// A WebSocket upgrade, or why the request was not one (answered 426).
type WsUpgrade =
    std::result::Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

/// Attach (`writer`) or observe over a WebSocket: binary frames carry the terminal's bytes
/// both ways; text frames carry JSON control (`{"type":"resize","cols":C,"rows":R}` from the
/// client, `{"type":"exit","status":N}` from the host at the end).
async fn ws(
    api: Api,
    auth: Auth,
    id: String,
    upgrade: WsUpgrade,
    writer: bool,
) -> Result<Response> {
    let upgrade = upgrade
        .map_err(|_| ApiError::new(StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint"))?;
    let (session, viewer) = api.svc.attach(&auth.p, parse_id(&id)?, writer)?;
    api.metrics.attaches.fetch_add(1, Ordering::Relaxed);
    Ok(upgrade.on_upgrade(move |socket| pump(api, auth, session, viewer, socket, writer)))
}

async fn pump(
    api: Api,
    auth: Auth,
    s: std::sync::Arc<Session>,
    v: std::sync::Arc<crate::sessions::Viewer>,
    mut socket: WebSocket,
    writer: bool,
) {
    loop {
        let out = v.drain();
        if !out.is_empty() {
            api.metrics
                .bytes_out
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            if socket.send(Message::Binary(out.into())).await.is_err() {
                break;
            }
        }
        if let Some(why) = v.revoked() {
            // The user may no longer watch (locked, removed, demoted): the host ended it.
            let _ = socket
                .send(Message::Text(
                    serde_json::json!({"type": "revoked", "reason": why})
                        .to_string()
                        .into(),
                ))
                .await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        if let Some(code) = s.exit_status() {
            let rest = v.drain();
            if !rest.is_empty() {
                let _ = socket.send(Message::Binary(rest.into())).await;
            }
            let _ = socket
                .send(Message::Text(
                    serde_json::json!({"type": "exit", "status": code})
                        .to_string()
                        .into(),
                ))
                .await;
            let _ = socket.send(Message::Close(None)).await;
            break;
        }
        tokio::select! {
            _ = v.notify.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            m = socket.recv() => match m {
                Some(Ok(Message::Binary(b))) if writer && !v.gone.load(Ordering::SeqCst) => {
                    api.metrics.bytes_in.fetch_add(b.len() as u64, Ordering::Relaxed);
                    let _ = s.input(&b);
                }
                Some(Ok(Message::Text(t))) if writer => {
                    let c: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    if c["type"] == "resize" {
                        let (cols, rows) = (c["cols"].as_u64().unwrap_or(0), c["rows"].as_u64().unwrap_or(0));
                        if (1..=1000).contains(&cols) && (1..=1000).contains(&rows) {
                            s.resize(cols as u16, rows as u16);
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            }
        }
    }
    api.svc.detach(&auth.p, &s, &v);
}

/// The WebSocket handshake's headers (RFC 6455, 4.1), as a client library sends them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by axum's WebSocketUpgrade; declared here for the document
struct Handshake {
    #[param(rename = "Upgrade", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$")]
    upgrade: String,
    /// Holds the token `Upgrade`.
    #[param(rename = "Connection")]
    connection: String,
    #[param(rename = "Sec-WebSocket-Version", pattern = "^13$")]
    version: String,
    /// 16 random bytes, base64.
    #[param(rename = "Sec-WebSocket-Key", pattern = "^[A-Za-z0-9+/]{22}==$")]
    key: String,
}

/// Attaches: types and reads.
#[utoipa::path(get, path = "/v1/sessions/{id}/attach", params(SessionPath, Handshake), security(("bearer" = [])),
    responses(Common, (status = 101, description = "WebSocket: binary frames are terminal bytes; text frames JSON control"),
        (status = 403, body = ErrorOut, description = "the caller may see the session but not attach to it, or it has as many viewers as it may"),
        (status = 404, body = ErrorOut, description = NO_SESSION),
        (status = 409, body = ErrorOut, description = "the session runs on another host sharing the store: the message says which and how to reach it (or that it is lost)"),
        (status = 426, body = ErrorOut, description = "not a WebSocket handshake", headers(("Upgrade" = String, description = "`websocket`"), ("Sec-WebSocket-Version" = String, description = "`13`")))))]
async fn attach(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
    upgrade: WsUpgrade,
) -> Result<Response> {
    ws(api, auth, id, upgrade, true).await
}

/// Observes: reads only.
#[utoipa::path(get, path = "/v1/sessions/{id}/observe", params(SessionPath, Handshake), security(("bearer" = [])),
    responses(Common, (status = 101, description = "WebSocket, read-only"),
        (status = 403, body = ErrorOut, description = "the session has as many viewers as it may"),
        (status = 404, body = ErrorOut, description = NO_SESSION),
        (status = 409, body = ErrorOut, description = "the session runs on another host sharing the store: the message says which and how to reach it (or that it is lost)"),
        (status = 426, body = ErrorOut, description = "not a WebSocket handshake", headers(("Upgrade" = String, description = "`websocket`"), ("Sec-WebSocket-Version" = String, description = "`13`")))))]
async fn observe(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
    upgrade: WsUpgrade,
) -> Result<Response> {
    ws(api, auth, id, upgrade, false).await
}
