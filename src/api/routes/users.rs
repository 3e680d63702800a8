//! Users, their roles, keys, locks and tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{BadBody, Body, Common, ErrorOut, Result, P};
use crate::api::{Api, Auth};
use crate::auth::Role;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(users, add_user))
        .routes(routes!(remove_user))
        .routes(routes!(set_role))
        .routes(routes!(keys, add_key))
        .routes(routes!(remove_key))
        .routes(routes!(lock))
        .routes(routes!(unlock))
        .routes(routes!(revoke))
        .routes(routes!(reset_totp))
}

/// A role (docs/security.md says what each may do).
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Admin,
    Developer,
    Auditor,
    Viewer,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::Admin => Role::Admin,
            RoleName::Developer => Role::Developer,
            RoleName::Auditor => Role::Auditor,
            RoleName::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for RoleName {
    fn from(r: Role) -> RoleName {
        match r {
            Role::Admin => RoleName::Admin,
            Role::Developer => RoleName::Developer,
            Role::Auditor => RoleName::Auditor,
            Role::Viewer => RoleName::Viewer,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub name: String,
    pub role: RoleName,
    pub locked: bool,
    pub created: String,
    pub keys: usize,
    pub password: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserIn {
    /// A lowercase letter or _, then lowercase letters, digits, _ and -; at most 32.
    #[schema(pattern = "^[a-z_][a-z0-9_-]{0,31}$")]
    pub name: String,
    pub role: RoleName,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleIn {
    pub role: RoleName,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// An authorized_keys line: `[options] type base64 [comment]`, e.g. `ssh-ed25519
    /// AAAA... comment` (options are ignored: cordon applies its own). A line that is not a
    /// public key of the type it names is a 400.
    #[schema(format = "openssh-public-key", min_length = 1)]
    pub key: String,
}

/// A user named in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// A user name: a lowercase letter or _, then lowercase letters, digits, _ and -; at most
    /// 32.
    #[param(pattern = "^[a-z_][a-z0-9_-]{0,31}$")]
    pub name: String,
}

/// A key of a user's, named in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// A user name: a lowercase letter or _, then lowercase letters, digits, _ and -; at most
    /// 32.
    #[param(pattern = "^[a-z_][a-z0-9_-]{0,31}$")]
    pub name: String,
    /// `SHA256:...` as `ssh-keygen -l` prints it (its `/` written `%2F`), or at least 12
    /// characters of it that no other key of the user's starts with.
    #[param(pattern = "^SHA256:[A-Za-z0-9+/]{5,43}$")]
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

#[derive(Serialize, ToSchema)]
pub struct LockOut {
    pub user: String,
    pub locked: bool,
    pub sessions_ended: usize,
}

/// The 403 of the user-management endpoints.
const ADMINS_ONLY: &str = "the caller is not an admin";
/// The 404 of an endpoint that names a user.
const NO_USER: &str = "no such user";

#[utoipa::path(get, path = "/v1/users", security(("bearer" = [])),
    responses(Common, (status = 200, body = [UserOut]), (status = 403, body = ErrorOut, description = ADMINS_ONLY)))]
async fn users(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<UserOut>>> {
    Ok(Json(
        api.svc
            .users(&auth.p)?
            .into_iter()
            .map(|u| UserOut {
                name: u.user.name,
                role: u.user.role.into(),
                locked: u.user.locked,
                created: u.user.created,
                keys: u.keys,
                password: u.password,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/users", request_body = NewUserIn, security(("bearer" = [])),
    responses(Common,
        (status = 201, body = UserOut, description = "the user, added",
            links(
                ("keys" = (operation_id = "keys", parameters(("name" = "$response.body#/name")))),
                ("add_key" = (operation_id = "add_key", parameters(("name" = "$response.body#/name")))),
                ("set_role" = (operation_id = "set_role", parameters(("name" = "$response.body#/name")))),
                ("lock" = (operation_id = "lock", parameters(("name" = "$response.body#/name")))),
                ("unlock" = (operation_id = "unlock", parameters(("name" = "$response.body#/name")))),
                ("revoke" = (operation_id = "revoke", parameters(("name" = "$response.body#/name")))),
                ("remove_user" = (operation_id = "remove_user", parameters(("name" = "$response.body#/name")))),
            )),
        BadBody,
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 409, body = ErrorOut, description = "there is already a user of that name")))]
async fn add_user(
    State(api): State<Api>,
    auth: Auth,
    Body(body): Body<NewUserIn>,
) -> Result<(StatusCode, Json<UserOut>)> {
    let (u, _) = api
        .svc
        .add_user(&auth.p, &body.name, body.role.into(), &[])?;
    Ok((
        StatusCode::CREATED,
        Json(UserOut {
            name: u.name,
            role: u.role.into(),
            locked: u.locked,
            created: u.created,
            keys: 0,
            password: false,
        }),
    ))
}

/// Removes a user: their keys, tokens and sessions go too.
#[utoipa::path(delete, path = "/v1/users/{name}", params(UserPath), security(("bearer" = [])),
    responses(Common, (status = 204, description = "removed"),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = NO_USER),
        (status = 409, body = ErrorOut, description = "the user is the last active admin")))]
async fn remove_user(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
) -> Result<StatusCode> {
    api.svc.remove_user(&auth.p, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/users/{name}/role", params(UserPath), request_body = RoleIn, security(("bearer" = [])),
    responses(Common, (status = 204, description = "the role is changed, from the user's next call"), BadBody,
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = NO_USER),
        (status = 409, body = ErrorOut, description = "the user is the last active admin, and the role is not admin")))]
async fn set_role(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
    Body(body): Body<RoleIn>,
) -> Result<StatusCode> {
    api.svc.set_role(&auth.p, &name, body.role.into())?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/users/{name}/keys", params(UserPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = [KeyOut]),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = NO_USER)))]
async fn keys(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
) -> Result<Json<Vec<KeyOut>>> {
    Ok(Json(
        api.svc
            .keys(&auth.p, &name)?
            .into_iter()
            .map(key_out)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/users/{name}/keys", params(UserPath), request_body = KeyIn, security(("bearer" = [])),
    responses(Common,
        (status = 201, body = KeyOut, description = "the key, added",
            links(
                ("remove_key" = (operation_id = "remove_key", parameters(("name" = "$request.path.name"), ("fingerprint" = "$response.body#/fingerprint")))),
            )),
        BadBody,
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = NO_USER),
        (status = 409, body = ErrorOut, description = "the key is registered already (to this user or another)")))]
async fn add_key(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
    Body(body): Body<KeyIn>,
) -> Result<(StatusCode, Json<KeyOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(key_out(api.svc.add_key(&auth.p, &name, &body.key)?)),
    ))
}

#[utoipa::path(delete, path = "/v1/users/{name}/keys/{fingerprint}", params(KeyPath), security(("bearer" = [])),
    responses(Common, (status = 204, description = "removed"),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = "no such user, or no key of theirs with that fingerprint (or several that start with it)")))]
async fn remove_key(
    State(api): State<Api>,
    auth: Auth,
    P(KeyPath { name, fingerprint }): P<KeyPath>,
) -> Result<StatusCode> {
    api.svc.remove_key(&auth.p, &name, &fingerprint)?;
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

/// Locks a user: ends their sessions and revokes their tokens.
#[utoipa::path(post, path = "/v1/users/{name}/lock", params(UserPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = LockOut),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = NO_USER),
        (status = 409, body = ErrorOut, description = "the user is the caller, or the last active admin")))]
async fn lock(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
) -> Result<Json<LockOut>> {
    set_lock(api, auth, name, true).await
}

#[utoipa::path(post, path = "/v1/users/{name}/unlock", params(UserPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = LockOut),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = NO_USER)))]
async fn unlock(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
) -> Result<Json<LockOut>> {
    set_lock(api, auth, name, false).await
}

/// Voids every token of the user issued until now (admins; anyone for themselves).
#[utoipa::path(post, path = "/v1/users/{name}/revoke", params(UserPath), security(("bearer" = [])),
    responses(Common, (status = 204, description = "revoked"),
        (status = 403, body = ErrorOut, description = "the caller is not an admin, and the user is not the caller"),
        (status = 404, body = ErrorOut, description = NO_USER)))]
async fn revoke(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
) -> Result<StatusCode> {
    api.svc.revoke_tokens(&auth.p, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user's second factor and recovery codes (a lost device), if they have one;
/// they enrol again (`ssh -t HOST totp enroll`). Admins only.
#[utoipa::path(delete, path = "/v1/users/{name}/totp", params(UserPath), security(("bearer" = [])),
    responses(Common, (status = 204, description = "the user has no second factor now (removed, or there was none)"),
        (status = 403, body = ErrorOut, description = ADMINS_ONLY),
        (status = 404, body = ErrorOut, description = NO_USER)))]
async fn reset_totp(
    State(api): State<Api>,
    auth: Auth,
    P(UserPath { name }): P<UserPath>,
) -> Result<StatusCode> {
    api.svc.totp_reset(&auth.p, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
