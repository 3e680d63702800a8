//! Secrets for sessions: the caller's own by default, `?user=NAME` (admins) or
//! `?global=true`. Values go in a JSON body and are never returned.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::{BadBody, Body, Common, ErrorOut, Result, P, Q};
use crate::api::{Api, ApiError, Auth};
use crate::service::{Scope, SecretInfo};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(set, remove))
}

/// Whose secrets: the caller's own unless one of these says otherwise (not both).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    /// Another user's secrets (admins; anyone else gets 403, whether or not the user exists).
    #[param(required = false, pattern = "^[a-z_][a-z0-9_-]{0,31}$")]
    pub user: Option<String>,
    /// The global secrets: every user's sessions receive them unless the user has their own
    /// of the same name (admins set and remove; admins and developers list).
    #[serde(default)]
    #[param(required = false)]
    pub global: bool,
}

/// A secret named in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretPath {
    /// An environment variable name in capitals, digits and _ (not starting with a digit), at
    /// most 128 characters, that the sandbox does not set itself (PATH, HOME, LD_..., ...).
    #[param(required = true, schema_with = secret_name)]
    pub name: String,
}

/// The schema of a secret's name: the sandbox's rule (`sandbox::secrets::name_problem`) as a
/// pattern, with the names and prefixes the sandbox keeps for itself left out by lookaheads.
fn secret_name() -> utoipa::openapi::Object {
    use sandbox::secrets::{CONTROLLED, CONTROLLED_PREFIXES, MAX_NAME};
    let pattern = format!(
        "^(?!(?:{})$)(?!{})[A-Z_][A-Z0-9_]{{0,{}}}$",
        CONTROLLED.join("|"),
        CONTROLLED_PREFIXES.join("|"),
        MAX_NAME - 1
    );
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(pattern))
        .build()
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

/// The 400 of a scope.
const SCOPE_400: &str = "both `user` and `global=true`, or an unknown query parameter";
/// The 403 of a scope.
const SCOPE_403: &str = "another user's secrets and the caller is not an admin; global ones and the caller may not (list: admins and developers; change: admins); or the caller's role keeps no secrets";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretIn {
    /// The value: one line without NUL, at least 8 characters and at most 1024 bytes of UTF-8
    /// (what the recorder can keep out of recordings). Never returned, logged or audited.
    #[schema(min_length = 8, max_length = 1024, pattern = r"^[^\r\n\x00]*$")]
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
    responses(Common, (status = 200, body = [SecretOut], description = "names, scopes and dates; never values"),
        (status = 400, body = ErrorOut, description = SCOPE_400),
        (status = 403, body = ErrorOut, description = SCOPE_403),
        (status = 404, body = ErrorOut, description = "no such user")))]
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

#[utoipa::path(put, path = "/v1/secrets/{name}", params(SecretPath, ScopeQuery), request_body = SecretIn, security(("bearer" = [])),
    responses(Common,
        (status = 200, body = SecretOut, description = "the secret, set (added or replaced)",
            links(
                ("remove" = (operation_id = "remove", parameters(("name" = "$response.body#/name")))),
            )),
        BadBody,
        (status = 403, body = ErrorOut, description = SCOPE_403),
        (status = 404, body = ErrorOut, description = "no such user")))]
async fn set(
    State(api): State<Api>,
    auth: Auth,
    P(SecretPath { name }): P<SecretPath>,
    Q(q): Q<ScopeQuery>,
    Body(body): Body<SecretIn>,
) -> Result<Json<SecretOut>> {
    let scope = q.scope(&auth)?;
    let value = Zeroizing::new(body.value);
    if value.chars().count() < 8 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a secret's value has at least 8 characters",
        ));
    }
    Ok(Json(out(api.svc.set_secret(
        &auth.p,
        &scope,
        &name,
        value.as_bytes(),
    )?)))
}

#[utoipa::path(delete, path = "/v1/secrets/{name}", params(SecretPath, ScopeQuery), security(("bearer" = [])),
    responses(Common, (status = 204, description = "removed"),
        (status = 400, body = ErrorOut, description = SCOPE_400),
        (status = 403, body = ErrorOut, description = SCOPE_403),
        (status = 404, body = ErrorOut, description = "no such user, or no such secret of theirs")))]
async fn remove(
    State(api): State<Api>,
    auth: Auth,
    P(SecretPath { name }): P<SecretPath>,
    Q(q): Q<ScopeQuery>,
) -> Result<StatusCode> {
    let scope = q.scope(&auth)?;
    api.svc.remove_secret(&auth.p, &scope, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
