//! The /v1 endpoints, one module per resource. Each handler parses, calls the service with the
//! caller's principal, and shapes the answer. Handlers are registered with `routes!`, which
//! reads their `#[utoipa::path]` annotations: the router and the OpenAPI document are built
//! from the same list, so an endpoint cannot be served without being documented, or
//! documented at a path or method it is not served on.

use std::sync::LazyLock;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use super::{Api, ApiError};

mod attach;
mod audit;
mod auth;
mod fields;
mod host;
mod lockdown;
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

/// Path parameters whose rejections (a segment that is not UTF-8 once decoded, a number
/// that is not one) are JSON 404s: such a path names nothing, as every endpoint with
/// parameters in its path documents.
pub struct P<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S>
    for P<T>
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<P<T>> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(P(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("nothing at this path: {}", e.body_text()),
            )),
        }
    }
}

/// A session named in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// The session: its id, a unique prefix of its id (at least 4 characters), its name, or
    /// `owner/name`.
    #[param(min_length = 1, max_length = 64)]
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorOut {
    pub error: String,
}

/// What every endpoint that wants a token may answer besides its own answers. Listed first
/// in each endpoint's `responses`, so that an endpoint's own words for a status (a 403 that
/// says which role may) replace these.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // the document's: ApiError makes these answers
pub enum Common {
    /// No token, or not a valid one.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`")))]
    Unauthorized(ErrorOut),
    /// The caller's role may not do this (docs/security.md), or their account was locked or
    /// removed since the token was checked (audited as `refused`).
    #[response(status = 403)]
    Forbidden(ErrorOut),
    /// Over the rate limit (per address, and per user).
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds until a request is taken again")))]
    TooMany(ErrorOut),
    /// The host could not do it; no details leave it, the request id finds them in its log.
    #[response(status = 500)]
    Failed(ErrorOut),
}

/// What an endpoint that takes a JSON body may answer about the body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // the document's: Body's rejections and the handlers' checks make these
pub enum BadBody {
    /// Not the JSON the schema describes: bad JSON, a field missing, unknown or of the wrong
    /// type, a value outside its range, length or pattern.
    #[response(status = 400)]
    Invalid(ErrorOut),
    /// The body is over 64 KiB.
    #[response(status = 413)]
    TooLarge(ErrorOut),
    /// The body is not sent as JSON (`Content-Type: application/json`).
    #[response(status = 415)]
    NotJson(ErrorOut),
}

/// The 404 of an endpoint that names a session.
pub const NO_SESSION: &str = "No such session: none by that id, one that has ended (its recording stays, under /v1/recordings), or another user's that the caller may not see (answered the same way, the attempt audited).";

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
        .merge(attach::router())
        .merge(questions::router())
        .merge(run::router())
        .merge(recordings::router())
        .merge(audit::router())
        .merge(users::router())
        .merge(secrets::router())
        .merge(lockdown::router())
}

/// The OpenAPI 3.1 document, generated from the handlers' annotations, as JSON.
pub fn openapi() -> serde_json::Value {
    static DOC: LazyLock<serde_json::Value> = LazyLock::new(|| {
        let mut doc = serde_json::to_value(endpoints().into_openapi()).unwrap_or_default();
        links_in_camel_case(&mut doc);
        doc
    });
    DOC.clone()
}

/// utoipa 5 writes a Link object's fields as Rust names them (`operation_id`), where OpenAPI
/// says `operationId`: renamed here. (utoipa 6 does it right, but needs Rust 1.88.)
fn links_in_camel_case(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let answers = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for answer in answers {
        let Some(links) = answer.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(from) {
                    link.insert(to.into(), v);
                }
            }
        }
    }
}

async fn openapi_json() -> Json<serde_json::Value> {
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
    fn the_document_states_the_session_name_rule_the_service_enforces() {
        let doc = serde_json::to_value(openapi()).unwrap();
        for schema in ["RenameIn", "NewSessionIn"] {
            assert_eq!(
                doc["components"]["schemas"][schema]["properties"]["name"]["pattern"],
                crate::session_id::NAME_PATTERN,
                "{schema}"
            );
        }
    }

    #[test]
    fn every_endpoint_but_the_public_ones_asks_for_a_bearer_token_in_the_document() {
        let doc = openapi();
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

    #[test]
    fn every_link_in_the_document_names_an_operation_and_parameters_it_has() {
        let doc = openapi();
        let mut operations = std::collections::BTreeMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let names: Vec<String> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect();
                operations.insert(op["operationId"].as_str().unwrap().to_string(), names);
            }
        }
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for answer in op["responses"].as_object().unwrap().values() {
                    for (name, link) in answer["links"].as_object().into_iter().flatten() {
                        links += 1;
                        let target = link["operationId"].as_str().unwrap_or_default();
                        let Some(params) = operations.get(target) else {
                            panic!("link {name} names no operation: {link}");
                        };
                        for p in link["parameters"].as_object().unwrap().keys() {
                            assert!(params.contains(p), "link {name}: {target} has no {p}");
                        }
                    }
                }
            }
        }
        assert!(links >= 10, "{links} links");
    }
}
