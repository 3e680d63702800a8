//! The /v1 endpoints, one module per resource. Each handler parses, calls the service with the
//! caller's principal, and shapes the answer. Handlers are registered with `routes!`, which
//! reads their `#[utoipa::path]` annotations: the router and the OpenAPI document are built
//! from the same list, so an endpoint cannot be served without being documented, or
//! documented at a path or method it is not served on.

use std::sync::LazyLock;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Query, Request};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use super::{Api, ApiError};

mod audit;
mod auth;
mod host;
mod questions;
mod recordings;
mod run;
mod secrets;
mod sessions;
mod users;

type Result<T> = std::result::Result<T, ApiError>;

/// A JSON body whose rejections (bad JSON, wrong types, wrong content type) are clear 400s.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Body<T>> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(match e {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send JSON (Content-Type: application/json)",
                ),
                JsonRejection::BytesRejection(_) => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is too large or unreadable",
                ),
                other => ApiError::new(StatusCode::BAD_REQUEST, other.body_text()),
            }),
        }
    }
}

/// Query parameters whose rejections are clear JSON 400s.
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Q<T>> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Q(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorOut {
    pub error: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOut {
    pub ok: bool,
    pub detail: String,
}

/// A session as a path names it: its id, a unique prefix of it (4 or more characters), its
/// name or `owner/name`; the service resolves it among the sessions the caller may see. A
/// word no session could have is answered as a missing session, without a lookup.
fn parse_id(id: &str) -> Result<&str> {
    if id.is_empty() || id.chars().count() > 64 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no session {}",
                crate::text::printable(&id.chars().take(64).collect::<String>())
            ),
        ));
    }
    Ok(id)
}

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// What the document says of the API as a whole; the paths and schemas come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(title = "cordon API", version = "1", description = "Sessions, recordings, audit and users of a cordon host. Bearer JWTs from /v1/auth/login, `ssh HOST token`, or `cordon token issue`."),
    modifiers(&Bearer)
)]
struct Doc;

/// Every endpoint, with its documentation.
fn endpoints() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .merge(host::router())
        .merge(auth::router())
        .merge(sessions::router())
        .merge(questions::router())
        .merge(run::router())
        .merge(recordings::router())
        .merge(audit::router())
        .merge(users::router())
        .merge(secrets::router())
}

/// The OpenAPI 3.1 document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    static DOC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| endpoints().into_openapi());
    DOC.clone()
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

pub fn router() -> Router<Api> {
    let (router, _) = endpoints().split_for_parts();
    router
        .route("/v1/openapi.json", get(openapi_json))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint (see /v1/openapi.json)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_but_the_public_ones_asks_for_a_bearer_token_in_the_document() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let public = [
            "/v1/health",
            "/v1/auth/login",
            "/v1/auth/refresh",
            "/v1/openapi.json",
        ];
        let mut wrong = Vec::new();
        let paths = doc["paths"].as_object().unwrap();
        assert!(
            paths.len() >= 25,
            "{} paths: the routers were not all merged",
            paths.len()
        );
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let bearer = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                if bearer == public.contains(&path.as_str()) {
                    wrong.push(format!("{method} {path}"));
                }
                if !bearer {
                    continue;
                }
                let answers = op["responses"].as_object().unwrap();
                if !answers.contains_key("401") || !answers.contains_key("429") {
                    wrong.push(format!("{method} {path} does not document 401 and 429"));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:?}");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
