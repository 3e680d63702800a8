//! The audit log: the latest events and the chain's verification.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::fields;
use super::{Common, ErrorOut, Result, VerifyOut, Q};
use crate::api::{Api, Auth};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(audit))
        .routes(routes!(audit_verify))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// At most this many of the latest events (default 100).
    #[param(required = false, minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Only events whose line contains this text (searched among the latest 256 MiB of the
    /// log; empty: every event).
    #[param(required = false)]
    pub q: Option<String>,
}

/// The latest audit events, newest first (auditors and admins).
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), security(("bearer" = [])),
    responses(Common, (status = 200, body = [Object], description = "events as the log holds them (docs/audit-events.md)"),
        (status = 400, body = ErrorOut, description = "a limit out of its range"),
        (status = 403, body = ErrorOut, description = "the caller's role may not read the audit log")))]
async fn audit(
    State(api): State<Api>,
    auth: Auth,
    Q(q): Q<AuditQuery>,
) -> Result<Json<Vec<serde_json::Value>>> {
    let limit = fields::within("limit", q.limit.unwrap_or(100), 1..=10000)? as usize;
    Ok(Json(api.svc.audit_events(
        &auth.p,
        limit,
        q.q.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/audit/verify", security(("bearer" = [])),
    responses(Common, (status = 200, body = VerifyOut), (status = 403, body = ErrorOut, description = "the caller's role may not read the audit log")))]
async fn audit_verify(State(api): State<Api>, auth: Auth) -> Result<Json<VerifyOut>> {
    Ok(Json(match api.svc.audit_verify(&auth.p, true)? {
        Ok(n) => VerifyOut {
            ok: true,
            detail: format!("{n} events, chain intact"),
        },
        Err(e) => VerifyOut {
            ok: false,
            detail: format!("broken at {e}"),
        },
    }))
}
