//! Secrets for sessions: the caller's own by default, `?user=NAME` (admins) or
//! `?global=true`. Values go in a JSON body and are never returned.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::{Body, ErrorOut, Result, Q};
use crate::api::{Api, ApiError, Auth};
use crate::service::{Scope, SecretInfo};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(set, remove))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    /// Another user's secrets (admins). Default: the caller's own.
    pub user: Option<String>,
    /// The global secrets: every user's sessions receive them unless the user has their own
    /// of the same name (admins set and remove; admins and developers list).
    #[serde(default)]
    pub global: bool,
}

impl ScopeQuery {
    fn scope(&self, auth: &Auth) -> Result<Scope> {
        match (&self.user, self.global) {
            (Some(_), true) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give user or global, not both",
            )),
            (_, true) => Ok(Scope::Global),
            (user, false) => Ok(Scope::user_or(user.as_deref(), &auth.p)),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretIn {
    /// The value: 8 to 1024 bytes of UTF-8 on one line, without NUL.
    /// Never returned, logged or audited.
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecretOut {
    pub name: String,
    /// "global", or the owner's name.
    pub scope: String,
    pub created: String,
    pub updated: String,
}

fn out(s: SecretInfo) -> SecretOut {
    SecretOut {
        name: s.name,
        scope: s.scope,
        created: s.created,
        updated: s.updated,
    }
}

#[utoipa::path(get, path = "/v1/secrets", params(ScopeQuery), security(("bearer" = [])),
    responses((status = 200, body = [SecretOut]), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn list(
    State(api): State<Api>,
    auth: Auth,
    Q(q): Q<ScopeQuery>,
) -> Result<Json<Vec<SecretOut>>> {
    let scope = q.scope(&auth)?;
    Ok(Json(
        api.svc
            .secrets(&auth.p, &scope)?
            .into_iter()
            .map(out)
            .collect(),
    ))
}

#[utoipa::path(put, path = "/v1/secrets/{name}", params(("name" = String, Path), ScopeQuery), request_body = SecretIn, security(("bearer" = [])),
    responses((status = 200, body = SecretOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn set(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Q(q): Q<ScopeQuery>,
    Body(body): Body<SecretIn>,
) -> Result<Json<SecretOut>> {
    let scope = q.scope(&auth)?;
    let value = Zeroizing::new(body.value);
    Ok(Json(out(api.svc.set_secret(
        &auth.p,
        &scope,
        &name,
        value.as_bytes(),
    )?)))
}

#[utoipa::path(delete, path = "/v1/secrets/{name}", params(("name" = String, Path), ScopeQuery), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn remove(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Q(q): Q<ScopeQuery>,
) -> Result<StatusCode> {
    let scope = q.scope(&auth)?;
    api.svc.remove_secret(&auth.p, &scope, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
