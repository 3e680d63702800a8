//! Recordings: list, search, look at, verify, what their sessions changed, and export.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorOut, Result, VerifyOut, Q};
use crate::api::{Api, Auth};

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
    pub state: String,
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
        state: r.state.name().to_string(),
        bytes: r.bytes,
        key_id: r.key_id,
        hold: r.hold,
    }
}

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Text that appeared on screen (or, with `exec=true`, in a command line a session ran).
    pub q: String,
    /// Search the programs sessions started instead of their screens.
    #[serde(default)]
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

#[derive(Deserialize, IntoParams)]
pub struct ExportQuery {
    /// asciicast-v2 (default), asciicast-v3 or raw.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/v1/recordings", security(("bearer" = [])),
    responses((status = 200, body = [RecordingOut]), (status = 401, body = ErrorOut), (status = 429, body = ErrorOut)))]
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
    responses((status = 200, body = [HitOut]), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 429, body = ErrorOut)))]
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
#[utoipa::path(get, path = "/v1/recordings/{id}/events", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = [EventOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn events(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
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

#[utoipa::path(get, path = "/v1/recordings/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RecordingOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn recording(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<RecordingOut>> {
    Ok(Json(recording_out(api.svc.recording(&auth.p, &id)?)))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/verify", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = VerifyOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn verify_recording(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<VerifyOut>> {
    let (_, verdict) = api.svc.verify_recording(&auth.p, &id)?;
    Ok(Json(VerifyOut {
        ok: verdict.is_whole(),
        detail: verdict.to_string(),
    }))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/files", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::changes::Summary, description = "what the recorded session created, changed and deleted in its workspace, as kept at its end"), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn recording_files(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<crate::changes::Summary>> {
    let (_, summary) = api.svc.recording_files(&auth.p, &id)?;
    Ok(Json(summary))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/export", params(("id" = String, Path), ExportQuery), security(("bearer" = [])),
    responses((status = 200, description = "the recording as asciicast (application/x-asciicast) or, with format=raw, its exact output bytes", content(("application/x-asciicast"), ("application/octet-stream"))), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn export(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
    Q(q): Q<ExportQuery>,
) -> Result<Response> {
    let fmt = q.format.unwrap_or_else(|| "asciicast-v2".into());
    let (r, bytes) = api.svc.export(&auth.p, &id, &fmt, "api")?;
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
