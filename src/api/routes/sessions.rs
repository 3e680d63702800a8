//! Sessions: list, start, look at, end, type into, resize, what they changed in their
//! workspace, attach and observe over a WebSocket.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{parse_id, Body, ErrorOut, Result};
use crate::api::{Api, ApiError, Auth};
use crate::service::NewSession;
use crate::sessions::Session;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(sessions, create))
        .routes(routes!(session, end))
        .routes(routes!(input))
        .routes(routes!(resize))
        .routes(routes!(files))
        .routes(routes!(attach))
        .routes(routes!(observe))
}

#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    /// 12 characters of base32: unique across restarts and hosts. A path takes it, a
    /// unique prefix of it (4 or more characters), the session's name, or `owner/name`.
    #[schema(pattern = "^[0-9a-hjkmnp-tv-z]{12}$", min_length = 12, max_length = 12)]
    pub id: String,
    pub name: String,
    pub owner: String,
    pub profile: String,
    pub command: Vec<String>,
    pub created: String,
    /// "running", or "ended" with `exit_status`.
    pub state: String,
    pub exit_status: Option<i32>,
    pub age_seconds: u64,
    pub idle_seconds: u64,
    pub viewers: usize,
    /// The recording's id ("" when recordings are off).
    pub recording: String,
}

fn session_out(s: &Session) -> SessionOut {
    let exit = s.exit_status();
    SessionOut {
        id: s.id.to_string(),
        name: s.name(),
        owner: s.owner.clone(),
        profile: s.profile.clone(),
        command: s.command.clone(),
        created: s.created.clone(),
        state: if exit.is_some() {
            "ended".into()
        } else {
            "running".into()
        },
        exit_status: exit,
        age_seconds: s.age().as_secs(),
        idle_seconds: s.idle().as_secs(),
        viewers: s.viewer_count(),
        recording: s.recording_id(),
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSessionIn {
    pub profile: Option<String>,
    pub workspace: Option<String>,
    pub name: Option<String>,
    /// argv; empty: the profile's command.
    pub command: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 1000)]
    pub cols: Option<u16>,
    #[schema(minimum = 1, maximum = 1000)]
    pub rows: Option<u16>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputIn {
    /// Text to type, as UTF-8 (control characters included).
    #[schema(max_length = 16384)]
    pub data: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeIn {
    #[schema(minimum = 1, maximum = 1000)]
    pub cols: u16,
    #[schema(minimum = 1, maximum = 1000)]
    pub rows: u16,
}

#[utoipa::path(get, path = "/v1/sessions", security(("bearer" = [])),
    responses((status = 200, body = [SessionOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn sessions(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<SessionOut>>> {
    Ok(Json(
        api.svc
            .sessions(&auth.p)?
            .iter()
            .map(|s| session_out(s))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/sessions", request_body = NewSessionIn, security(("bearer" = [])),
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn create(
    State(api): State<Api>,
    auth: Auth,
    Body(body): Body<NewSessionIn>,
) -> Result<(StatusCode, Json<SessionOut>)> {
    let (cols, rows) = (body.cols.unwrap_or(80), body.rows.unwrap_or(24));
    if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "cols and rows must be between 1 and 1000",
        ));
    }
    let req = NewSession {
        profile: body.profile,
        workspace: body.workspace,
        name: body.name.unwrap_or_default(),
        command: body.command.unwrap_or_default(),
        cols,
        rows,
        term: "xterm-256color".into(),
    };
    let s = api.svc.create_session(&auth.p, req)?;
    Ok((StatusCode::CREATED, Json(session_out(&s))))
}

#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn session(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<SessionOut>> {
    let s = api.svc.session_info(&auth.p, parse_id(&id)?)?;
    Ok(Json(session_out(&s)))
}

#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn end(State(api): State<Api>, auth: Auth, Path(id): Path<String>) -> Result<StatusCode> {
    api.svc.end_session(&auth.p, parse_id(&id)?)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sessions/{id}/input", params(("id" = String, Path)), request_body = InputIn, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn input(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<InputIn>,
) -> Result<StatusCode> {
    if body.data.len() > 16384 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "at most 16384 bytes of input per call",
        ));
    }
    api.svc
        .input(&auth.p, parse_id(&id)?, body.data.as_bytes())?;
    api.metrics
        .bytes_in
        .fetch_add(body.data.len() as u64, Ordering::Relaxed);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sessions/{id}/resize", params(("id" = String, Path)), request_body = ResizeIn, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn resize(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<ResizeIn>,
) -> Result<StatusCode> {
    api.svc
        .resize(&auth.p, parse_id(&id)?, body.cols, body.rows)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sessions/{id}/files", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::changes::Summary, description = "what the running session has created, changed and deleted in its workspace since its command started (a walk now)"), (status = 401, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn files(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<crate::changes::Summary>> {
    let id = parse_id(&id)?.to_string();
    let svc = api.svc.clone();
    // A walk of the workspace: off the async workers.
    let summary = tokio::task::spawn_blocking(move || svc.session_files(&auth.p, &id))
        .await
        .map_err(|e| ApiError::from(crate::service::Error::failed(e)))??;
    Ok(Json(summary))
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

#[utoipa::path(get, path = "/v1/sessions/{id}/attach", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 101, description = "WebSocket: binary frames are terminal bytes; text frames JSON control"), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 426, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn attach(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
    upgrade: WsUpgrade,
) -> Result<Response> {
    ws(api, auth, id, upgrade, true).await
}

#[utoipa::path(get, path = "/v1/sessions/{id}/observe", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 101, description = "WebSocket, read-only"), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 426, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn observe(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
    upgrade: WsUpgrade,
) -> Result<Response> {
    ws(api, auth, id, upgrade, false).await
}
