//! Logins, token refresh and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{BadBody, Body, Common, ErrorOut, Result};
use crate::api::{Api, ApiError, Auth, Peer, RequestId};
use crate::service::Login;
use crate::tokens::TokenPair;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub user: String,
    pub password: String,
    /// The 6-digit code the user's authenticator app shows now, for a user with a second
    /// factor (`ssh -t HOST totp enroll`). Without it (or `recovery_code`) such a login is
    /// a 401 saying a code is needed.
    #[schema(max_length = 64)]
    pub totp: Option<String>,
    /// One of the user's recovery codes, instead of `totp`; each is taken once.
    #[schema(max_length = 64)]
    pub recovery_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutIn {
    /// Also revoke this refresh token's family.
    pub refresh_token: Option<String>,
}

/// A token pair for a user name and password, where `[ssh] password_login` is on.
#[utoipa::path(post, path = "/v1/auth/login", request_body = LoginIn,
    responses((status = 200, body = TokenPair), BadBody,
        (status = 401, body = ErrorOut, description = "wrong user or password, a locked user, or one locked out after failed passwords or codes; a user with a second factor who gave no code (the error says a code is needed: send `totp` or `recovery_code`), or a wrong, expired or used code; a user whose role needs a second factor and who has none (the error says how to enrol)"),
        (status = 403, body = ErrorOut, description = "password logins are off on this host"),
        (status = 429, body = ErrorOut, description = "too many logins from this address", headers(("Retry-After" = u64, description = "seconds until a request is taken again"))),
        (status = 500, body = ErrorOut, description = "the host could not do it; the request id finds the details in its log")))]
async fn login(
    State(api): State<Api>,
    peer: axum::Extension<Peer>,
    rid: axum::Extension<RequestId>,
    Body(body): Body<LoginIn>,
) -> Result<Json<TokenPair>> {
    let svc = &api.svc;
    if !svc.config().password_login {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "password logins are off here; get a token with `ssh HOST token`",
        ));
    }
    let code = match (&body.totp, &body.recovery_code) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "send either totp or recovery_code, not both",
            ))
        }
        (Some(c), None) | (None, Some(c)) => Some(c.as_str()),
        (None, None) => None,
    };
    let login = svc
        .password_login(&body.user, &body.password, &peer.0 .0, "api password")
        .await;
    let login = match login {
        Ok(Login::Done(p)) => Ok(p),
        Ok(Login::NeedsCode(pending)) => match code {
            Some(code) => svc.code_login(&pending, code),
            None => {
                api.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "a second factor code is needed: send \"totp\" (the 6-digit code your authenticator app shows) or \"recovery_code\" with the user and password",
                ));
            }
        },
        Err(e) => Err(e),
    };
    match login {
        Ok(mut p) => {
            p.request = Some(rid.0 .0.clone());
            Ok(Json(svc.login_tokens(&p)?))
        }
        Err(e @ crate::service::Error::Failed(_)) => Err(e.into()),
        Err(e) => {
            api.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
    }
}

/// A new token pair for a refresh token, which is used up.
#[utoipa::path(post, path = "/v1/auth/refresh", request_body = RefreshIn,
    responses((status = 200, body = TokenPair), BadBody,
        (status = 401, body = ErrorOut, description = "not a refresh token of this host, expired, revoked, or used already (which revokes its whole login)"),
        (status = 429, body = ErrorOut, description = "too many refreshes from this address", headers(("Retry-After" = u64, description = "seconds until a request is taken again"))),
        (status = 500, body = ErrorOut, description = "the host could not do it; the request id finds the details in its log")))]
async fn refresh(
    State(api): State<Api>,
    peer: axum::Extension<Peer>,
    rid: axum::Extension<RequestId>,
    Body(body): Body<RefreshIn>,
) -> Result<Json<TokenPair>> {
    match api
        .svc
        .refresh_tokens(&body.refresh_token, &peer.0 .0, &rid.0 .0)
    {
        Ok(pair) => Ok(Json(pair)),
        Err(e @ crate::service::Error::Failed(_)) => Err(e.into()),
        Err(e) => {
            api.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
    }
}

/// Revokes the access token (and with `refresh_token`, its whole login).
#[utoipa::path(post, path = "/v1/auth/logout", request_body = LogoutIn, security(("bearer" = [])),
    responses(Common, (status = 204, description = "logged out"), BadBody))]
async fn logout(
    State(api): State<Api>,
    auth: Auth,
    Body(body): Body<LogoutIn>,
) -> Result<StatusCode> {
    api.svc
        .logout(&auth.p, &auth.claims, body.refresh_token.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}
