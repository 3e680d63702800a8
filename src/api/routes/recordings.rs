//! Recordings: list, search, look at, verify, what their sessions changed, and export.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Common, ErrorOut, Result, VerifyOut, P, Q};
use crate::api::{Api, Auth};
use crate::store::RecordingState;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(recordings))
        .routes(routes!(search))
        .routes(routes!(events))
        .routes(routes!(recording))
        .routes(routes!(verify_recording))
        .routes(routes!(recording_files))
        .routes(routes!(export))
}

#[derive(Serialize, ToSchema)]
pub struct RecordingOut {
    pub id: String,
    /// The recorded session's id.
    #[schema(pattern = "^[0-9a-hjkmnp-tv-z]{12}$", min_length = 12, max_length = 12)]
    pub session: String,
    pub user: String,
    pub profile: String,
    pub command: String,
    pub started: String,
    pub ended: Option<String>,
    pub exit_status: Option<i64>,
    pub state: RecordingStateOut,
    pub bytes: i64,
    pub key_id: String,
    pub hold: bool,
}

fn recording_out(r: crate::store::RecordingEntry) -> RecordingOut {
    RecordingOut {
        id: r.id,
        session: crate::sessions::SessionId::from_number(r.session as u64).to_string(),
        user: r.user,
        profile: r.profile,
        command: r.command,
        started: r.started,
        ended: r.ended,
        exit_status: r.exit_status,
        state: r.state.into(),
        bytes: r.bytes,
        key_id: r.key_id,
        hold: r.hold,
    }
}

/// Where a recording stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStateOut {
    /// Its session runs (or the host stopped while it did: `verify` tells).
    Recording,
    Complete,
    /// Writing it failed (the strict policy ended the session).
    Failed,
}

impl From<RecordingState> for RecordingStateOut {
    fn from(s: RecordingState) -> RecordingStateOut {
        match s {
            RecordingState::Recording => RecordingStateOut::Recording,
            RecordingState::Complete => RecordingStateOut::Complete,
            RecordingState::Failed => RecordingStateOut::Failed,
        }
    }
}

/// A recording named in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RecordingPath {
    /// The recording's id (16 hexadecimal digits), or a unique prefix of it of at least 4.
    #[param(pattern = "^[0-9a-f]{4,16}$")]
    pub id: String,
}

/// The 404 of an endpoint that names a recording.
const NO_RECORDING: &str = "No such recording, a prefix that names several, or another user's that the caller may not read (answered the same way, the attempt audited).";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Text that appeared on screen (or, with `exec=true`, in a command line a session ran).
    #[param(min_length = 1)]
    pub q: String,
    /// Search the programs sessions started instead of their screens.
    #[serde(default)]
    #[param(required = false)]
    pub exec: bool,
}

#[derive(Serialize, ToSchema)]
pub struct HitOut {
    pub recording: String,
    pub user: String,
    /// Seconds from the recording's start.
    pub at: f64,
    pub line: String,
}

/// What an export is written as.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
pub enum ExportFormat {
    #[default]
    #[serde(rename = "asciicast-v2")]
    AsciicastV2,
    #[serde(rename = "asciicast-v3")]
    AsciicastV3,
    /// The session's output bytes, exactly.
    #[serde(rename = "raw")]
    Raw,
}

impl ExportFormat {
    fn name(self) -> &'static str {
        match self {
            ExportFormat::AsciicastV2 => "asciicast-v2",
            ExportFormat::AsciicastV3 => "asciicast-v3",
            ExportFormat::Raw => "raw",
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Default: asciicast-v2.
    #[param(required = false, inline)]
    pub format: Option<ExportFormat>,
}

#[utoipa::path(get, path = "/v1/recordings", security(("bearer" = [])),
    responses(Common, (status = 200, body = [RecordingOut], description = "the recordings the caller may read")))]
async fn recordings(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<RecordingOut>>> {
    Ok(Json(
        api.svc
            .recordings(&auth.p, &Default::default())?
            .into_iter()
            .map(recording_out)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/recordings/search", params(SearchQuery), security(("bearer" = [])),
    responses(Common, (status = 200, body = [HitOut]), (status = 400, body = ErrorOut, description = "no `q`, an empty one")))]
async fn search(
    State(api): State<Api>,
    auth: Auth,
    Q(q): Q<SearchQuery>,
) -> Result<Json<Vec<HitOut>>> {
    let (hits, _) = if q.exec {
        api.svc.search_exec(&auth.p, &q.q, &Default::default())?
    } else {
        api.svc.search(&auth.p, &q.q, &Default::default())?
    };
    Ok(Json(
        hits.into_iter()
            .map(|h| HitOut {
                recording: h.recording,
                user: h.user,
                at: h.at,
                line: h.line,
            })
            .collect(),
    ))
}

/// One event of a session's timeline.
#[derive(Serialize, ToSchema)]
pub struct EventOut {
    /// Seconds from the recording's start.
    pub at: f64,
    /// "exec", "exit", "net" or "marker".
    pub kind: String,
    /// The event as recorded (docs/recording-format.md).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// It in one line.
    pub words: String,
}

/// What the session did, in order: programs started and their exits, connections, markers.
#[utoipa::path(get, path = "/v1/recordings/{id}/events", params(RecordingPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = [EventOut]), (status = 404, body = ErrorOut, description = NO_RECORDING)))]
async fn events(
    State(api): State<Api>,
    auth: Auth,
    P(RecordingPath { id }): P<RecordingPath>,
) -> Result<Json<Vec<EventOut>>> {
    let (_, entries) = api.svc.recording_events(&auth.p, &id)?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| EventOut {
                at: e.at_us as f64 / 1e6,
                kind: e.kind.into(),
                event: e.data,
                words: e.words,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/recordings/{id}", params(RecordingPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = RecordingOut), (status = 404, body = ErrorOut, description = NO_RECORDING)))]
async fn recording(
    State(api): State<Api>,
    auth: Auth,
    P(RecordingPath { id }): P<RecordingPath>,
) -> Result<Json<RecordingOut>> {
    Ok(Json(recording_out(api.svc.recording(&auth.p, &id)?)))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/verify", params(RecordingPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = VerifyOut), (status = 404, body = ErrorOut, description = NO_RECORDING)))]
async fn verify_recording(
    State(api): State<Api>,
    auth: Auth,
    P(RecordingPath { id }): P<RecordingPath>,
) -> Result<Json<VerifyOut>> {
    let (_, verdict) = api.svc.verify_recording(&auth.p, &id)?;
    Ok(Json(VerifyOut {
        ok: verdict.is_whole(),
        detail: verdict.to_string(),
    }))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/files", params(RecordingPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = crate::changes::Summary, description = "what the recorded session created, changed and deleted in its workspace, as kept at its end"), (status = 404, body = ErrorOut, description = NO_RECORDING)))]
async fn recording_files(
    State(api): State<Api>,
    auth: Auth,
    P(RecordingPath { id }): P<RecordingPath>,
) -> Result<Json<crate::changes::Summary>> {
    let (_, summary) = api.svc.recording_files(&auth.p, &id)?;
    Ok(Json(summary))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/export", params(RecordingPath, ExportQuery), security(("bearer" = [])),
    responses(Common, (status = 200, description = "the recording as asciicast (application/x-asciicast) or, with format=raw, its exact output bytes", content(("application/x-asciicast"), ("application/octet-stream"))), (status = 400, body = ErrorOut), (status = 404, body = ErrorOut, description = NO_RECORDING)))]
async fn export(
    State(api): State<Api>,
    auth: Auth,
    P(RecordingPath { id }): P<RecordingPath>,
    Q(q): Q<ExportQuery>,
) -> Result<Response> {
    let fmt = q.format.unwrap_or_default().name();
    let (r, bytes) = api.svc.export(&auth.p, &id, fmt, "api")?;
    api.metrics
        .bytes_out
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let (ctype, ext) = if fmt == "raw" {
        ("application/octet-stream", "raw")
    } else {
        ("application/x-asciicast", "cast")
    };
    // Streamed in chunks: a long recording does not wait in one write.
    let chunks: Vec<std::result::Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.{ext}\"", r.id),
            ),
        ],
        body,
    )
        .into_response())
}
