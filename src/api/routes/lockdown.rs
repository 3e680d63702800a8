//! The host's lockdown: see it, begin it (or change its terms), end it. Admins only.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{BadBody, Body, Common, ErrorOut, Result};
use crate::api::{Api, Auth};
use crate::service::{Lockdown, LockdownSessions};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(lockdown, lockdown_on, lockdown_off))
}

const ADMINS_ONLY: &str = "only admins see and change the host's lockdown";

/// What a lockdown does to the sessions running when it begins.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum SessionsIn {
    /// Frozen (cgroup freezer) until the lockdown ends.
    Freeze,
    /// Ended.
    End,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockdownIn {
    pub sessions: SessionsIn,
    /// Why (shown to those refused, and audited).
    #[schema(max_length = 500)]
    #[serde(default)]
    pub reason: String,
}

/// The host's lockdown: `on`, and while on, since when, by whom, what it did to sessions, why.
#[derive(Serialize, ToSchema)]
pub struct LockdownOut {
    pub on: bool,
    pub since: Option<String>,
    pub by: Option<String>,
    pub sessions: Option<SessionsIn>,
    pub reason: Option<String>,
}

impl From<Option<Lockdown>> for LockdownOut {
    fn from(l: Option<Lockdown>) -> LockdownOut {
        match l {
            None => LockdownOut {
                on: false,
                since: None,
                by: None,
                sessions: None,
                reason: None,
            },
            Some(l) => LockdownOut {
                on: true,
                since: Some(l.since),
                by: Some(l.actor),
                sessions: Some(match l.sessions {
                    LockdownSessions::Freeze => SessionsIn::Freeze,
                    LockdownSessions::End => SessionsIn::End,
                }),
                reason: Some(l.reason),
            },
        }
    }
}

/// Whether the host is in lockdown.
#[utoipa::path(get, path = "/v1/lockdown", security(("bearer" = [])),
    responses(Common, (status = 200, body = LockdownOut),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY)))]
async fn lockdown(State(api): State<Api>, auth: Auth) -> Result<Json<LockdownOut>> {
    Ok(Json(api.svc.lockdown_status(&auth.p)?.into()))
}

/// Puts the host in lockdown (or changes its terms): only admins may log in and act; the
/// sessions running when it began are frozen or ended.
#[utoipa::path(put, path = "/v1/lockdown", request_body = LockdownIn, security(("bearer" = [])),
    responses(Common, (status = 200, body = LockdownOut, description = "the lockdown in force"), BadBody,
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 409, body = ErrorOut, description = "`freeze` asked where the sessions' cgroups offer no freezer (use `end`)")))]
async fn lockdown_on(
    State(api): State<Api>,
    auth: Auth,
    Body(body): Body<LockdownIn>,
) -> Result<Json<LockdownOut>> {
    let sessions = match body.sessions {
        SessionsIn::Freeze => LockdownSessions::Freeze,
        SessionsIn::End => LockdownSessions::End,
    };
    let l = api.svc.lockdown_on(&auth.p, sessions, &body.reason)?;
    Ok(Json(Some(l).into()))
}

/// Ends the lockdown (frozen sessions are thawed); answers the state now (off).
#[utoipa::path(delete, path = "/v1/lockdown", security(("bearer" = [])),
    responses(Common, (status = 200, body = LockdownOut, description = "the lockdown is off"),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY)))]
async fn lockdown_off(State(api): State<Api>, auth: Auth) -> Result<Json<LockdownOut>> {
    api.svc.lockdown_off(&auth.p)?;
    Ok(Json(None.into()))
}
