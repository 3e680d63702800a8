//! Users, their roles, keys, locks and tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Body, ErrorOut, Result, Q};
use crate::api::{Api, ApiError, Auth};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(users, add_user))
        .routes(routes!(remove_user))
        .routes(routes!(set_role))
        .routes(routes!(keys, add_key, remove_key))
        .routes(routes!(lock))
        .routes(routes!(unlock))
        .routes(routes!(revoke))
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
    KeyOut {
        fingerprint: k.fingerprint,
        algorithm: k.algorithm,
        comment: k.comment,
        added: k.added,
    }
}

fn role(name: &str) -> Result<crate::auth::Role> {
    name.parse().map_err(|e: crate::auth::UnknownRole| {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    })
}

#[derive(Serialize, ToSchema)]
pub struct LockOut {
    pub user: String,
    pub locked: bool,
    pub sessions_ended: usize,
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
async fn add_user(
    State(api): State<Api>,
    auth: Auth,
    Body(body): Body<NewUserIn>,
) -> Result<(StatusCode, Json<UserOut>)> {
    let (u, _) = api
        .svc
        .add_user(&auth.p, &body.name, role(&body.role)?, &[])?;
    Ok((
        StatusCode::CREATED,
        Json(UserOut {
            name: u.name,
            role: u.role.name().into(),
            locked: u.locked,
            created: u.created,
            keys: 0,
            password: false,
        }),
    ))
}

#[utoipa::path(delete, path = "/v1/users/{name}", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn remove_user(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    api.svc.remove_user(&auth.p, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/users/{name}/role", params(("name" = String, Path)), request_body = RoleIn, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn set_role(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Body(body): Body<RoleIn>,
) -> Result<StatusCode> {
    api.svc.set_role(&auth.p, &name, role(&body.role)?)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/users/{name}/keys", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = [KeyOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn keys(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Vec<KeyOut>>> {
    Ok(Json(
        api.svc
            .keys(&auth.p, &name)?
            .into_iter()
            .map(key_out)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/users/{name}/keys", params(("name" = String, Path)), request_body = KeyIn, security(("bearer" = [])),
    responses((status = 201, body = KeyOut), (status = 400, body = ErrorOut), (status = 413, body = ErrorOut), (status = 415, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn add_key(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Body(body): Body<KeyIn>,
) -> Result<(StatusCode, Json<KeyOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(key_out(api.svc.add_key(&auth.p, &name, &body.key)?)),
    ))
}

#[utoipa::path(delete, path = "/v1/users/{name}/keys", params(("name" = String, Path), FingerprintQuery), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn remove_key(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
    Q(q): Q<FingerprintQuery>,
) -> Result<StatusCode> {
    api.svc.remove_key(&auth.p, &name, &q.fingerprint)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_lock(api: Api, auth: Auth, name: String, locked: bool) -> Result<Json<LockOut>> {
    let ended = api.svc.set_locked(&auth.p, &name, locked)?;
    Ok(Json(LockOut {
        user: name,
        locked,
        sessions_ended: ended,
    }))
}

#[utoipa::path(post, path = "/v1/users/{name}/lock", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LockOut), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn lock(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<LockOut>> {
    set_lock(api, auth, name, true).await
}

#[utoipa::path(post, path = "/v1/users/{name}/unlock", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LockOut), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn unlock(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<LockOut>> {
    set_lock(api, auth, name, false).await
}

#[utoipa::path(post, path = "/v1/users/{name}/revoke", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn revoke(
    State(api): State<Api>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    api.svc.revoke_tokens(&auth.p, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
