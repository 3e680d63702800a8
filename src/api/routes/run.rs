//! One command run to its end, its output returned whole.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::fields::{self, whole};
use super::{BadBody, Body, Common, ErrorOut, Result};
use crate::api::{Api, ApiError, Auth};
use crate::service::RunEnd;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(run))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunIn {
    /// The command and its arguments (no NUL in any).
    #[schema(schema_with = fields::argv)]
    pub argv: Vec<String>,
    /// A profile from GET /v1/profiles (default: the host's); one that is not there is a 404,
    /// one the caller's role may not use a 403.
    pub profile: Option<String>,
    /// A folder of the caller's workspace area, or an absolute path beneath a root granted to
    /// them (403 otherwise).
    pub workspace: Option<String>,
    /// Seconds (default and cap: the host's `[runner] timeout`).
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub timeout: Option<u64>,
    /// The command's standard input, base64 (standard alphabet, padded, no bits left over);
    /// none: empty. At most `[runner] stdin_limit` bytes, and the request at most the API's
    /// body limit (64 KiB): larger input goes through `ssh HOST run`.
    #[schema(
        content_encoding = "base64",
        pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
    )]
    pub stdin: Option<String>,
}

/// Why the host ended a command.
#[derive(Serialize, ToSchema)]
pub enum EndedBy {
    /// The time limit.
    #[serde(rename = "timeout")]
    Timeout,
    /// Its output passed the runner's cap.
    #[serde(rename = "output cap")]
    OutputCap,
    /// Its standard input passed `[runner] stdin_limit`.
    #[serde(rename = "stdin limit")]
    StdinLimit,
    /// The client stopped listening.
    #[serde(rename = "client gone")]
    ClientGone,
}

impl From<RunEnd> for EndedBy {
    fn from(e: RunEnd) -> EndedBy {
        match e {
            RunEnd::Timeout => EndedBy::Timeout,
            RunEnd::OutputCap => EndedBy::OutputCap,
            RunEnd::StdinLimit => EndedBy::StdinLimit,
            RunEnd::ClientGone => EndedBy::ClientGone,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunOut {
    /// Standard output and error as UTF-8 (invalid bytes replaced).
    pub stdout: String,
    pub stderr: String,
    pub exit_status: i32,
    /// Set when the host ended the command.
    pub ended_by: Option<EndedBy>,
}

/// Runs a command confined, without a terminal, to its end.
#[utoipa::path(post, path = "/v1/run", request_body = RunIn, security(("bearer" = [])),
    responses(Common, (status = 200, body = RunOut, description = "the command ran (whatever its exit status)"), BadBody,
        (status = 403, body = ErrorOut, description = "the caller's role may not run commands, use that profile or that workspace, or the caller runs as many as they may"),
        (status = 404, body = ErrorOut, description = "no such profile")))]
async fn run(State(api): State<Api>, auth: Auth, Body(body): Body<RunIn>) -> Result<Json<RunOut>> {
    if let Some(t) = body.timeout {
        fields::within("timeout", t, 1..=86400)?;
    }
    let input = match &body.stdin {
        None => crate::service::RunInput::Empty,
        Some(b64) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("stdin is not base64 (standard alphabet, padded): {e}"),
                    )
                })?;
            crate::service::RunInput::Bytes(bytes)
        }
    };
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
        let result = svc.run(&auth.p, req, input, &mut |stream, bytes| {
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
    api.metrics
        .bytes_out
        .fetch_add((out.len() + err.len()) as u64, Ordering::Relaxed);
    Ok(Json(RunOut {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        exit_status: o.exit_status,
        ended_by: o.ended_by.map(EndedBy::from),
    }))
}
