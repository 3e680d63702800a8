//! The /v1 endpoints. Each parses, calls the service with the caller's principal, and shapes
//! the answer; the OpenAPI document is generated from these annotations.

use std::sync::atomic::Ordering;

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{Api, ApiError, Auth, Peer, RequestId};
use crate::service::NewSession;
use crate::sessions::Session;
use crate::tokens::TokenPair;

type Result<T> = std::result::Result<T, ApiError>;

/// A JSON body whose rejections (bad JSON, wrong types, wrong content type) are clear 400s.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Body<T>> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(match e {
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send JSON (Content-Type: application/json)")
                }
                JsonRejection::BytesRejection(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large or unreadable"),
                other => ApiError::new(StatusCode::BAD_REQUEST, other.body_text()),
            }),
        }
    }
}

/// Query parameters whose rejections are clear JSON 400s.
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Q<T>> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Q(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorOut {
    pub error: String,
}

#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    pub status: String,
    pub version: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub user: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutIn {
    /// Also revoke this refresh token's family.
    pub refresh_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    pub id: u64,
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
        id: s.id,
        name: s.name(),
        owner: s.owner.clone(),
        profile: s.profile.clone(),
        command: s.command.clone(),
        created: s.created.clone(),
        state: if exit.is_some() { "ended".into() } else { "running".into() },
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunIn {
    /// The command and its arguments.
    #[schema(min_items = 1)]
    pub argv: Vec<String>,
    pub profile: Option<String>,
    pub workspace: Option<String>,
    /// Seconds; at most the host's runner timeout (the default).
    #[schema(minimum = 1)]
    pub timeout: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct RunOut {
    /// Standard output and error as UTF-8 (invalid bytes replaced).
    pub stdout: String,
    pub stderr: String,
    pub exit_status: i32,
    /// "timeout" or "output cap" when the host ended the command.
    pub ended_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecordingOut {
    pub id: String,
    pub session: i64,
    pub user: String,
    pub profile: String,
    pub command: String,
    pub started: String,
    pub ended: Option<String>,
    pub exit_status: Option<i64>,
    pub state: String,
    pub bytes: i64,
    pub key_id: String,
    pub hold: bool,
}

fn recording_out(r: crate::store::RecordingEntry) -> RecordingOut {
    RecordingOut {
        id: r.id,
        session: r.session,
        user: r.user,
        profile: r.profile,
        command: r.command,
        started: r.started,
        ended: r.ended,
        exit_status: r.exit_status,
        state: r.state.name().to_string(),
        bytes: r.bytes,
        key_id: r.key_id,
        hold: r.hold,
    }
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOut {
    pub ok: bool,
    pub detail: String,
}

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Text that appeared on screen.
    pub q: String,
}

#[derive(Serialize, ToSchema)]
pub struct HitOut {
    pub recording: String,
    pub user: String,
    /// Seconds from the recording's start.
    pub at: f64,
    pub line: String,
}

#[derive(Deserialize, IntoParams)]
pub struct ExportQuery {
    /// asciicast-v2 (default), asciicast-v3 or raw.
    pub format: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// At most this many of the latest events (default 100, at most 10000).
    pub limit: Option<u32>,
    /// Only events whose line contains this text (searched among the latest 256 MiB of the log).
    pub q: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub name: String,
    pub role: String,
    pub locked: bool,
    pub created: String,
    pub keys: usize,
    pub password: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserIn {
    /// Lowercase letters, digits, _ and -; at most 32.
    pub name: String,
    /// admin, developer, auditor or viewer.
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleIn {
    /// admin, developer, auditor or viewer.
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// An authorized_keys line: `ssh-ed25519 AAAA... comment`.
    pub key: String,
}

#[derive(Deserialize, IntoParams)]
pub struct FingerprintQuery {
    /// `SHA256:...` as `ssh-keygen -l` prints it (or at least 12 characters of it).
    pub fingerprint: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    pub fingerprint: String,
    pub algorithm: String,
    pub comment: String,
    pub added: String,
}

fn key_out(k: crate::store::Key) -> KeyOut {
    KeyOut { fingerprint: k.fingerprint, algorithm: k.algorithm, comment: k.comment, added: k.added }
}

fn role(name: &str) -> Result<crate::auth::Role> {
    name.parse().map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, e))
}

#[derive(Serialize, ToSchema)]
pub struct LockOut {
    pub user: String,
    pub locked: bool,
    pub sessions_ended: usize,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileOut {
    pub name: String,
}

fn parse_id(id: &str) -> Result<u64> {
    id.parse().map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no session {id}")))
}

#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = HealthOut)))]
async fn health() -> Json<HealthOut> {
    Json(HealthOut { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

#[utoipa::path(post, path = "/v1/auth/login", request_body = LoginIn,
    responses((status = 200, body = TokenPair), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn login(
    State(api): State<Api>,
    peer: axum::Extension<Peer>,
    rid: axum::Extension<RequestId>,
    Body(body): Body<LoginIn>,
) -> Result<Json<TokenPair>> {
    let svc = &api.svc;
    if !svc.config().password_login {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "password logins are off here; get a token with `ssh HOST token`"));
    }
    match svc.password_login(&body.user, &body.password, &peer.0 .0, "api password").await {
        Ok(mut p) => {
            p.request = Some(rid.0 .0.clone());
            Ok(Json(svc.login_tokens(&p)?))
        }
        Err(e @ crate::service::Error::Failed(_)) => Err(e.into()),
        Err(e) => {
            api.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
    }
}

#[utoipa::path(post, path = "/v1/auth/refresh", request_body = RefreshIn,
    responses((status = 200, body = TokenPair), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn refresh(
    State(api): State<Api>,
    peer: axum::Extension<Peer>,
    rid: axum::Extension<RequestId>,
    Body(body): Body<RefreshIn>,
) -> Result<Json<TokenPair>> {
    match api.svc.refresh_tokens(&body.refresh_token, &peer.0 .0, &rid.0 .0) {
        Ok(pair) => Ok(Json(pair)),
        Err(e @ crate::service::Error::Failed(_)) => Err(e.into()),
        Err(e) => {
            api.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
    }
}

#[utoipa::path(post, path = "/v1/auth/logout", request_body = LogoutIn, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn logout(State(api): State<Api>, auth: Auth, Body(body): Body<LogoutIn>) -> Result<StatusCode> {
    api.svc.logout(&auth.p, &auth.claims, body.refresh_token.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sessions", security(("bearer" = [])),
    responses((status = 200, body = [SessionOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn sessions(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<SessionOut>>> {
    Ok(Json(api.svc.sessions(&auth.p)?.iter().map(|s| session_out(s)).collect()))
}

#[utoipa::path(post, path = "/v1/sessions", request_body = NewSessionIn, security(("bearer" = [])),
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn create(State(api): State<Api>, auth: Auth, Body(body): Body<NewSessionIn>) -> Result<(StatusCode, Json<SessionOut>)> {
    let (cols, rows) = (body.cols.unwrap_or(80), body.rows.unwrap_or(24));
    if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "cols and rows must be between 1 and 1000"));
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
async fn session(State(api): State<Api>, auth: Auth, Path(id): Path<String>) -> Result<Json<SessionOut>> {
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
async fn input(State(api): State<Api>, auth: Auth, Path(id): Path<String>, Body(body): Body<InputIn>) -> Result<StatusCode> {
    if body.data.len() > 16384 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "at most 16384 bytes of input per call"));
    }
    api.svc.input(&auth.p, parse_id(&id)?, body.data.as_bytes())?;
    api.metrics.bytes_in.fetch_add(body.data.len() as u64, Ordering::Relaxed);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sessions/{id}/resize", params(("id" = String, Path)), request_body = ResizeIn, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn resize(State(api): State<Api>, auth: Auth, Path(id): Path<String>, Body(body): Body<ResizeIn>) -> Result<StatusCode> {
    api.svc.resize(&auth.p, parse_id(&id)?, body.cols, body.rows)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A WebSocket upgrade, or why the request was not one (answered 426).
type WsUpgrade = std::result::Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

/// Attach (`writer`) or observe over a WebSocket: binary frames carry the terminal's bytes
/// both ways; text frames carry JSON control (`{"type":"resize","cols":C,"rows":R}` from the
/// client, `{"type":"exit","status":N}` from the host at the end).
async fn ws(api: Api, auth: Auth, id: String, upgrade: WsUpgrade, writer: bool) -> Result<Response> {
    let upgrade = upgrade.map_err(|_| ApiError::new(StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint"))?;
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
            api.metrics.bytes_out.fetch_add(out.len() as u64, Ordering::Relaxed);
            if socket.send(Message::Binary(out.into())).await.is_err() {
                break;
            }
        }
        if let Some(why) = v.revoked() {
            // The user may no longer watch (locked, removed, demoted): the host ended it.
            let _ = socket.send(Message::Text(serde_json::json!({"type": "revoked", "reason": why}).to_string().into())).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        if let Some(code) = s.exit_status() {
            let rest = v.drain();
            if !rest.is_empty() {
                let _ = socket.send(Message::Binary(rest.into())).await;
            }
            let _ = socket.send(Message::Text(serde_json::json!({"type": "exit", "status": code}).to_string().into())).await;
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
async fn attach(State(api): State<Api>, auth: Auth, Path(id): Path<String>, upgrade: WsUpgrade) -> Result<Response> {
    ws(api, auth, id, upgrade, true).await
}

#[utoipa::path(get, path = "/v1/sessions/{id}/observe", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 101, description = "WebSocket, read-only"), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 426, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn observe(State(api): State<Api>, auth: Auth, Path(id): Path<String>, upgrade: WsUpgrade) -> Result<Response> {
    ws(api, auth, id, upgrade, false).await
}

#[utoipa::path(post, path = "/v1/run", request_body = RunIn, security(("bearer" = [])),
    responses((status = 200, body = RunOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn run(State(api): State<Api>, auth: Auth, Body(body): Body<RunIn>) -> Result<Json<RunOut>> {
    if body.timeout == Some(0) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "timeout must be at least 1 second"));
    }
    let req = crate::service::RunRequest {
        argv: body.argv,
        profile: body.profile,
        workspace: body.workspace,
        timeout: body.timeout.map(std::time::Duration::from_secs),
    };
    api.svc.prepare_run(&auth.p, &req)?;
    let svc = api.svc.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = svc.run(&auth.p, req, &mut |stream, bytes| {
            if stream == 0 {
                out.extend(bytes)
            } else {
                err.extend(bytes)
            }
            true
        });
        result.map(|o| (o, out, err))
    })
    .await
    .map_err(|e| ApiError::from(crate::service::Error::failed(e)))??;
    let (o, out, err) = outcome;
    api.metrics.bytes_out.fetch_add((out.len() + err.len()) as u64, Ordering::Relaxed);
    Ok(Json(RunOut {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        exit_status: o.exit_status,
        ended_by: o.ended_by.map(|e| e.name().to_string()),
    }))
}

#[utoipa::path(get, path = "/v1/recordings", security(("bearer" = [])),
    responses((status = 200, body = [RecordingOut]), (status = 401, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn recordings(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<RecordingOut>>> {
    Ok(Json(api.svc.recordings(&auth.p, &Default::default())?.into_iter().map(recording_out).collect()))
}

#[utoipa::path(get, path = "/v1/recordings/search", params(SearchQuery), security(("bearer" = [])),
    responses((status = 200, body = [HitOut]), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn search(State(api): State<Api>, auth: Auth, Q(q): Q<SearchQuery>) -> Result<Json<Vec<HitOut>>> {
    let (hits, _) = api.svc.search(&auth.p, &q.q, &Default::default())?;
    Ok(Json(hits.into_iter().map(|h| HitOut { recording: h.recording, user: h.user, at: h.at, line: h.line }).collect()))
}

#[utoipa::path(get, path = "/v1/recordings/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RecordingOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn recording(State(api): State<Api>, auth: Auth, Path(id): Path<String>) -> Result<Json<RecordingOut>> {
    Ok(Json(recording_out(api.svc.recording(&auth.p, &id)?)))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/verify", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = VerifyOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn verify_recording(State(api): State<Api>, auth: Auth, Path(id): Path<String>) -> Result<Json<VerifyOut>> {
    Ok(Json(match api.svc.verify_recording(&auth.p, &id)?.1 {
        Ok(d) => VerifyOut { ok: true, detail: d },
        Err(d) => VerifyOut { ok: false, detail: d },
    }))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/export", params(("id" = String, Path), ExportQuery), security(("bearer" = [])),
    responses((status = 200, description = "the recording as asciicast (application/x-asciicast) or, with format=raw, its exact output bytes", content(("application/x-asciicast"), ("application/octet-stream"))), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn export(State(api): State<Api>, auth: Auth, Path(id): Path<String>, Q(q): Q<ExportQuery>) -> Result<Response> {
    let fmt = q.format.unwrap_or_else(|| "asciicast-v2".into());
    let (r, bytes) = api.svc.export(&auth.p, &id, &fmt, "api")?;
    api.metrics.bytes_out.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let (ctype, ext) = if fmt == "raw" { ("application/octet-stream", "raw") } else { ("application/x-asciicast", "cast") };
    // Streamed in chunks: a long recording does not wait in one write.
    let chunks: Vec<std::result::Result<Vec<u8>, std::io::Error>> = bytes.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
    Ok((
        [(header::CONTENT_TYPE, ctype.to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.{ext}\"", r.id))],
        body,
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = [Object]), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn audit(State(api): State<Api>, auth: Auth, Q(q): Q<AuditQuery>) -> Result<Json<Vec<serde_json::Value>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10000) as usize;
    Ok(Json(api.svc.audit_events(&auth.p, limit, q.q.as_deref())?))
}

#[utoipa::path(get, path = "/v1/audit/verify", security(("bearer" = [])),
    responses((status = 200, body = VerifyOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn audit_verify(State(api): State<Api>, auth: Auth) -> Result<Json<VerifyOut>> {
    Ok(Json(match api.svc.audit_verify(&auth.p, true)? {
        Ok(n) => VerifyOut { ok: true, detail: format!("{n} events, chain intact") },
        Err(e) => VerifyOut { ok: false, detail: format!("broken at {e}") },
    }))
}

#[utoipa::path(get, path = "/v1/users", security(("bearer" = [])),
    responses((status = 200, body = [UserOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn users(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<UserOut>>> {
    Ok(Json(
        api.svc
            .users(&auth.p)?
            .into_iter()
            .map(|u| UserOut {
                name: u.user.name,
                role: u.user.role.name().into(),
                locked: u.user.locked,
                created: u.user.created,
                keys: u.keys,
                password: u.password,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/users", request_body = NewUserIn, security(("bearer" = [])),
    responses((status = 201, body = UserOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn add_user(State(api): State<Api>, auth: Auth, Body(body): Body<NewUserIn>) -> Result<(StatusCode, Json<UserOut>)> {
    let (u, _) = api.svc.add_user(&auth.p, &body.name, role(&body.role)?, &[])?;
    Ok((
        StatusCode::CREATED,
        Json(UserOut { name: u.name, role: u.role.name().into(), locked: u.locked, created: u.created, keys: 0, password: false }),
    ))
}

#[utoipa::path(delete, path = "/v1/users/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn remove_user(State(api): State<Api>, auth: Auth, Path(name): Path<String>) -> Result<StatusCode> {
    api.svc.remove_user(&auth.p, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/users/{name}/role", params(("name" = String, Path)), request_body = RoleIn, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn set_role(State(api): State<Api>, auth: Auth, Path(name): Path<String>, Body(body): Body<RoleIn>) -> Result<StatusCode> {
    api.svc.set_role(&auth.p, &name, role(&body.role)?)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/users/{name}/keys", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = [KeyOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn keys(State(api): State<Api>, auth: Auth, Path(name): Path<String>) -> Result<Json<Vec<KeyOut>>> {
    Ok(Json(api.svc.keys(&auth.p, &name)?.into_iter().map(key_out).collect()))
}

#[utoipa::path(post, path = "/v1/users/{name}/keys", params(("name" = String, Path)), request_body = KeyIn, security(("bearer" = [])),
    responses((status = 201, body = KeyOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn add_key(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Body(body): Body<KeyIn>,
) -> Result<(StatusCode, Json<KeyOut>)> {
    Ok((StatusCode::CREATED, Json(key_out(api.svc.add_key(&auth.p, &name, &body.key)?))))
}

#[utoipa::path(delete, path = "/v1/users/{name}/keys", params(("name" = String, Path), FingerprintQuery), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn remove_key(State(api): State<Api>, auth: Auth, Path(name): Path<String>, Q(q): Q<FingerprintQuery>) -> Result<StatusCode> {
    api.svc.remove_key(&auth.p, &name, &q.fingerprint)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_lock(api: Api, auth: Auth, name: String, locked: bool) -> Result<Json<LockOut>> {
    let ended = api.svc.set_locked(&auth.p, &name, locked)?;
    Ok(Json(LockOut { user: name, locked, sessions_ended: ended }))
}

#[utoipa::path(post, path = "/v1/users/{name}/lock", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LockOut), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn lock(State(api): State<Api>, auth: Auth, Path(name): Path<String>) -> Result<Json<LockOut>> {
    set_lock(api, auth, name, true).await
}

#[utoipa::path(post, path = "/v1/users/{name}/unlock", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LockOut), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn unlock(State(api): State<Api>, auth: Auth, Path(name): Path<String>) -> Result<Json<LockOut>> {
    set_lock(api, auth, name, false).await
}

#[utoipa::path(post, path = "/v1/users/{name}/revoke", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn revoke(State(api): State<Api>, auth: Auth, Path(name): Path<String>) -> Result<StatusCode> {
    api.svc.revoke_tokens(&auth.p, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/profiles", security(("bearer" = [])),
    responses((status = 200, body = [ProfileOut]), (status = 401, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn profiles(State(api): State<Api>, auth: Auth) -> Json<Vec<ProfileOut>> {
    Json(api.svc.profiles(&auth.p).into_iter().map(|name| ProfileOut { name }).collect())
}

/// Prometheus metrics, for admins and auditors.
#[utoipa::path(get, path = "/metrics", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn metrics(State(api): State<Api>, auth: Auth) -> Result<Response> {
    let host = api.svc.figures(&auth.p)?;
    let m = &api.metrics;
    let mut out = String::new();
    for (name, help, kind, v) in [
        ("cordon_sessions", "Sessions running.", "gauge", host.sessions as u64),
        ("cordon_api_requests_total", "API requests.", "counter", m.requests.load(Ordering::Relaxed)),
        ("cordon_api_attaches_total", "WebSocket attaches and observes.", "counter", m.attaches.load(Ordering::Relaxed)),
        ("cordon_api_bytes_out_total", "Terminal and export bytes sent by the API.", "counter", m.bytes_out.load(Ordering::Relaxed)),
        ("cordon_api_bytes_in_total", "Terminal bytes received by the API.", "counter", m.bytes_in.load(Ordering::Relaxed)),
        ("cordon_auth_failures_total", "Refused logins and tokens.", "counter", m.auth_failures.load(Ordering::Relaxed)),
        ("cordon_api_rate_limited_total", "Requests answered 429.", "counter", m.rate_limited.load(Ordering::Relaxed)),
        ("cordon_recording_errors_total", "Failed recording writes.", "counter", host.recording_errors),
        ("cordon_audit_errors_total", "Audit events that could not be written.", "counter", host.audit_errors),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "cordon API", version = "1", description = "Sessions, recordings, audit and users of a cordon host. Bearer JWTs from /v1/auth/login, `ssh HOST token`, or `cordon token issue`."),
    paths(health, login, refresh, logout, sessions, create, session, end, input, resize, attach, observe, run, recordings, search, recording, verify_recording, export, audit, audit_verify, users, add_user, remove_user, set_role, keys, add_key, remove_key, lock, unlock, revoke, profiles, metrics),
    modifiers(&Bearer)
)]
struct Doc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The OpenAPI 3.1 document, generated from the handlers above.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "this document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

pub fn router(_api: Api) -> Router<Api> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/sessions", get(sessions).post(create))
        .route("/v1/sessions/{id}", get(session).delete(end))
        .route("/v1/sessions/{id}/input", post(input))
        .route("/v1/sessions/{id}/resize", post(resize))
        .route("/v1/sessions/{id}/attach", get(attach))
        .route("/v1/sessions/{id}/observe", get(observe))
        .route("/v1/run", post(run))
        .route("/v1/recordings", get(recordings))
        .route("/v1/recordings/search", get(search))
        .route("/v1/recordings/{id}", get(recording))
        .route("/v1/recordings/{id}/verify", get(verify_recording))
        .route("/v1/recordings/{id}/export", get(export))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/users", get(users).post(add_user))
        .route("/v1/users/{name}", axum::routing::delete(remove_user))
        .route("/v1/users/{name}/role", post(set_role))
        .route("/v1/users/{name}/keys", get(keys).post(add_key).delete(remove_key))
        .route("/v1/users/{name}/lock", post(lock))
        .route("/v1/users/{name}/unlock", post(unlock))
        .route("/v1/users/{name}/revoke", post(revoke))
        .route("/v1/profiles", get(profiles))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (see /v1/openapi.json)") })
}
