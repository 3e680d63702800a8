//! Sessions: list, start, look at, rename, mark, read the screen of, end, type into, resize,
//! and what they changed in their workspace (attaching and observing: `attach.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::fields::{self, whole};
use super::{parse_id, BadBody, Body, Common, ErrorOut, Result, SessionPath, NO_SESSION, P};
use crate::api::{Api, ApiError, Auth};
use crate::service::{NewSession, ScreenText};
use crate::sessions::Session;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(sessions, create))
        .routes(routes!(session, end))
        .routes(routes!(rename))
        .routes(routes!(mark))
        .routes(routes!(screen))
        .routes(routes!(input))
        .routes(routes!(resize))
        .routes(routes!(files))
}

/// Whether a session runs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Running,
    /// Its command has ended (`exit_status` says how); it leaves the list at once.
    Ended,
    /// Its host (another, sharing the store) stopped beating: listed for a day.
    Lost,
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
    pub state: SessionState,
    pub exit_status: Option<i32>,
    pub age_seconds: u64,
    pub idle_seconds: u64,
    pub viewers: usize,
    /// The recording's id ("" when recordings are off).
    pub recording: String,
    /// Frozen by the host's lockdown (its processes stopped until the lockdown ends).
    pub frozen: bool,
    /// The host it runs on (`[cluster] name`): this one, or another sharing the store,
    /// whose sessions are attached to there (`advertise`).
    #[schema(max_length = 128)]
    pub host: String,
    /// Where users reach that host's SSH (`host:port`).
    pub advertise: String,
}

fn session_out(s: &Session, here: &crate::cluster::ClusterConfig) -> SessionOut {
    let exit = s.exit_status();
    SessionOut {
        id: s.id.to_string(),
        name: s.name(),
        owner: s.owner.clone(),
        profile: s.profile.clone(),
        command: s.command.clone(),
        created: s.created.clone(),
        state: if exit.is_some() {
            SessionState::Ended
        } else {
            SessionState::Running
        },
        exit_status: exit,
        age_seconds: s.age().as_secs(),
        idle_seconds: s.idle().as_secs(),
        viewers: s.viewer_count(),
        recording: s.recording_id(),
        frozen: s.frozen(),
        host: here.name.clone(),
        advertise: here.advertise.clone(),
    }
}

/// A session of another host sharing the store, as that host published it.
fn elsewhere_out(s: &crate::store::HostSession) -> SessionOut {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    SessionOut {
        id: s.id.clone(),
        name: s.name.clone(),
        owner: s.owner.clone(),
        profile: s.profile.clone(),
        command: s.command.clone(),
        created: s.started.clone(),
        state: if s.state == "lost" {
            SessionState::Lost
        } else {
            SessionState::Running
        },
        exit_status: None,
        age_seconds: (now - s.started_unix).max(0) as u64,
        idle_seconds: 0,
        viewers: s.viewers.max(0) as usize,
        recording: String::new(),
        frozen: s.state == "frozen",
        host: s.host.clone(),
        advertise: s.advertise.clone(),
    }
}

/// The longest session name (the service's bound).
/// The longest marker label (the service's bound).
const LABEL_MAX: usize = 200;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSessionIn {
    /// A profile from GET /v1/profiles (default: the host's); one that is not there is a 404,
    /// one the caller's role may not use a 403.
    pub profile: Option<String>,
    /// A folder of the caller's workspace area, or an absolute path beneath a root granted to
    /// them (403 otherwise).
    pub workspace: Option<String>,
    /// 1 to 64 characters, no blanks, slashes or control characters, not another of the
    /// owner's live sessions' (409); absent: `OWNER-N`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x20\x7f-\xa0/\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]{1,64}$"
    )]
    pub name: Option<String>,
    /// The command and its arguments (no NUL in any); empty or absent: the profile's.
    #[schema(schema_with = fields::argv_or_none)]
    pub command: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub cols: Option<u16>,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub rows: Option<u16>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputIn {
    /// Text to type, as UTF-8 (control characters included): at most 16384 characters, and
    /// at most 16384 bytes once encoded.
    #[schema(max_length = 16384)]
    pub data: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeIn {
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "whole::required")]
    pub cols: u16,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "whole::required")]
    pub rows: u16,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameIn {
    /// The new name: 1 to 64 characters, no blanks, slashes or control characters, not
    /// another of the owner's live sessions' (409).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x20\x7f-\xa0/\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]{1,64}$"
    )]
    pub name: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct MarkIn {
    /// What the marker says: at most 200 characters, without control characters; blank or
    /// absent: "mark by USER".
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub label: Option<String>,
}

/// A marker added to a session's recording: a named point to jump to on playback, listed
/// among the recording's events.
#[derive(Serialize, ToSchema)]
pub struct MarkOut {
    /// The session's id.
    #[schema(pattern = "^[0-9a-hjkmnp-tv-z]{12}$", min_length = 12, max_length = 12)]
    pub session: String,
    pub label: String,
}

/// A session's screen as text: what the TUI's preview shows.
#[derive(Serialize, ToSchema)]
pub struct ScreenOut {
    pub cols: u16,
    pub rows: u16,
    /// One string per row, top to bottom (`rows` of them), trailing blanks left out; the
    /// screen keeps no scrollback.
    pub lines: Vec<String>,
}

#[utoipa::path(get, path = "/v1/sessions", security(("bearer" = [])),
    responses(Common, (status = 200, body = [SessionOut], description = "the sessions the caller may see, this host's oldest first, then those of the other hosts sharing the store")))]
async fn sessions(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<SessionOut>>> {
    let here = &api.svc.config().cluster;
    let mut out: Vec<SessionOut> = api
        .svc
        .sessions(&auth.p)?
        .iter()
        .map(|s| session_out(s, here))
        .collect();
    out.extend(api.svc.cluster_sessions(&auth.p)?.iter().map(elsewhere_out));
    Ok(Json(out))
}

#[utoipa::path(post, path = "/v1/sessions", request_body = NewSessionIn, security(("bearer" = [])),
    responses(Common,
        (status = 201, body = SessionOut, description = "the session, started",
            links(
                ("session" = (operation_id = "session", parameters(("id" = "$response.body#/id")))),
                ("end" = (operation_id = "end", parameters(("id" = "$response.body#/id")))),
                ("rename" = (operation_id = "rename", parameters(("id" = "$response.body#/id")))),
                ("mark" = (operation_id = "mark", parameters(("id" = "$response.body#/id")))),
                ("screen" = (operation_id = "screen", parameters(("id" = "$response.body#/id")))),
                ("input" = (operation_id = "input", parameters(("id" = "$response.body#/id")))),
                ("resize" = (operation_id = "resize", parameters(("id" = "$response.body#/id")))),
                ("files" = (operation_id = "files", parameters(("id" = "$response.body#/id")))),
                ("questions" = (operation_id = "session_questions", parameters(("id" = "$response.body#/id")))),
            )),
        BadBody,
        (status = 403, body = ErrorOut, description = "the caller's role may not start sessions, use that profile or that workspace, or the caller has as many sessions as they may"),
        (status = 404, body = ErrorOut, description = "no such profile"),
        (status = 409, body = ErrorOut, description = "the caller has another live session by that name")))]
async fn create(
    State(api): State<Api>,
    auth: Auth,
    Body(body): Body<NewSessionIn>,
) -> Result<(StatusCode, Json<SessionOut>)> {
    let cols = fields::within("cols", body.cols.unwrap_or(80), 1..=1000)?;
    let rows = fields::within("rows", body.rows.unwrap_or(24), 1..=1000)?;
    if let Some(why) = body.name.as_deref().and_then(crate::session_id::bad_name) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, why));
    }
    let name = body.name.unwrap_or_default();
    let req = NewSession {
        profile: body.profile,
        workspace: body.workspace,
        name,
        command: body.command.unwrap_or_default(),
        cols,
        rows,
        term: "xterm-256color".into(),
    };
    let s = api.svc.create_session(&auth.p, req)?;
    Ok((
        StatusCode::CREATED,
        Json(session_out(&s, &api.svc.config().cluster)),
    ))
}

#[utoipa::path(get, path = "/v1/sessions/{id}", params(SessionPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = SessionOut), (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn session(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
) -> Result<Json<SessionOut>> {
    let s = api.svc.session_info(&auth.p, parse_id(&id)?)?;
    Ok(Json(session_out(&s, &api.svc.config().cluster)))
}

/// Ends a session and answers once it has ended (its processes gone, its recording closed),
/// or after 5 seconds if its processes take longer to go.
#[utoipa::path(delete, path = "/v1/sessions/{id}", params(SessionPath), security(("bearer" = [])),
    responses(Common, (status = 204, description = "ended"),
        (status = 403, body = ErrorOut, description = "the caller may see the session but not end it"),
        (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn end(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
) -> Result<StatusCode> {
    let id = parse_id(&id)?;
    api.svc.end_session(&auth.p, id)?;
    // Answered once it is gone, so that the caller's next look finds it ended (404), not
    // still running.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match api.svc.session_info(&auth.p, id) {
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            Err(crate::service::Error::NotFound(_)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Renames a session (the right to attach to it).
#[utoipa::path(post, path = "/v1/sessions/{id}/rename", params(SessionPath), request_body = RenameIn, security(("bearer" = [])),
    responses(Common, (status = 200, body = SessionOut, description = "the session, renamed"), BadBody,
        (status = 403, body = ErrorOut, description = "the caller may see the session but not change it"),
        (status = 404, body = ErrorOut, description = NO_SESSION),
        (status = 409, body = ErrorOut, description = "the owner has another live session by that name")))]
async fn rename(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
    Body(body): Body<RenameIn>,
) -> Result<Json<SessionOut>> {
    if let Some(why) = crate::session_id::bad_name(&body.name) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, why));
    }
    let id = parse_id(&id)?;
    // The session itself: the name in the path is its old one.
    let s = api.svc.rename_session(&auth.p, id, &body.name)?;
    Ok(Json(session_out(&s, &api.svc.config().cluster)))
}

/// Adds a marker to a session's recording (the right to attach to it).
#[utoipa::path(post, path = "/v1/sessions/{id}/marks", params(SessionPath), request_body = MarkIn, security(("bearer" = [])),
    responses(Common, (status = 201, body = MarkOut, description = "the marker, on the recording"), BadBody,
        (status = 403, body = ErrorOut, description = "the caller may see the session but not change it"),
        (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn mark(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
    Body(body): Body<MarkIn>,
) -> Result<(StatusCode, Json<MarkOut>)> {
    let label = body.label.unwrap_or_default();
    fields::text("label", &label, LABEL_MAX)?;
    let (session, label) = api.svc.mark(&auth.p, parse_id(&id)?, &label)?;
    Ok((
        StatusCode::CREATED,
        Json(MarkOut {
            session: session.to_string(),
            label,
        }),
    ))
}

/// The session's screen as text (the right to observe it).
#[utoipa::path(get, path = "/v1/sessions/{id}/screen", params(SessionPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = ScreenOut), (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn screen(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
) -> Result<Json<ScreenOut>> {
    let s: ScreenText = api.svc.screen_text(&auth.p, parse_id(&id)?)?;
    Ok(Json(ScreenOut {
        cols: s.cols,
        rows: s.rows,
        lines: s.lines,
    }))
}

/// Types into a session (the right to attach to it).
#[utoipa::path(post, path = "/v1/sessions/{id}/input", params(SessionPath), request_body = InputIn, security(("bearer" = [])),
    responses(Common, (status = 204, description = "written to the session's terminal"), BadBody,
        (status = 403, body = ErrorOut, description = "the caller may see the session but not type into it"),
        (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn input(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
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

/// Resizes a session's terminal (the right to attach to it).
#[utoipa::path(post, path = "/v1/sessions/{id}/resize", params(SessionPath), request_body = ResizeIn, security(("bearer" = [])),
    responses(Common, (status = 204, description = "resized"), BadBody,
        (status = 403, body = ErrorOut, description = "the caller may see the session but not change it"),
        (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn resize(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
    Body(body): Body<ResizeIn>,
) -> Result<StatusCode> {
    api.svc
        .resize(&auth.p, parse_id(&id)?, body.cols, body.rows)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sessions/{id}/files", params(SessionPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = crate::changes::Summary, description = "what the running session has created, changed and deleted in its workspace since its command started (a walk now)"),
        (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn files(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
) -> Result<Json<crate::changes::Summary>> {
    let id = parse_id(&id)?.to_string();
    let svc = api.svc.clone();
    // A walk of the workspace: off the async workers.
    let summary = tokio::task::spawn_blocking(move || svc.session_files(&auth.p, &id))
        .await
        .map_err(|e| ApiError::from(crate::service::Error::failed(e)))??;
    Ok(Json(summary))
}
