//! One command run to its end, its output returned whole.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Body, ErrorOut, Result};
use crate::api::{Api, ApiError, Auth};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(run))
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
    /// The command's standard input, base64 (standard alphabet, padded); none: empty. At
    /// most `[runner] stdin_limit` bytes, and the request at most the API's body limit
    /// (64 KiB): larger input goes through `ssh HOST run`.
    pub stdin: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RunOut {
    /// Standard output and error as UTF-8 (invalid bytes replaced).
    pub stdout: String,
    pub stderr: String,
    pub exit_status: i32,
    /// "timeout", "output cap" or "stdin limit" when the host ended the command.
    pub ended_by: Option<String>,
}

#[utoipa::path(post, path = "/v1/run", request_body = RunIn, security(("bearer" = [])),
    responses((status = 200, body = RunOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn run(State(api): State<Api>, auth: Auth, Body(body): Body<RunIn>) -> Result<Json<RunOut>> {
    if body.timeout == Some(0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "timeout must be at least 1 second",
        ));
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
        ended_by: o.ended_by.map(|e| e.name().to_string()),
    }))
}
