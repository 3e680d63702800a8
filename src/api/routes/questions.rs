//! Egress questions (`[network] unknown = "ask"`): what the caller's sessions ask to reach,
//! and the answers (allow once, allow for the session, deny).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{parse_id, Body, ErrorOut, Result};
use crate::api::{Api, ApiError, Auth};
use crate::service::QuestionInfo;
use sandbox::egress::Answer;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(all_questions))
        .routes(routes!(session_questions))
        .routes(routes!(answer))
}

/// A connection waiting for the session's owner.
#[derive(Serialize, ToSchema)]
pub struct QuestionOut {
    /// The session's id.
    #[schema(pattern = "^[0-9a-hjkmnp-tv-z]{12}$", min_length = 12, max_length = 12)]
    pub session: String,
    pub session_name: String,
    /// Its number in the session: what an answer names.
    pub ask: u64,
    /// "http", "connect" or "socks5".
    pub protocol: String,
    pub host: String,
    pub port: u16,
    /// When it was asked (RFC 3339).
    pub asked: String,
    /// Seconds left before the connection stops waiting and is refused.
    pub seconds_left: u64,
}

impl From<QuestionInfo> for QuestionOut {
    fn from(q: QuestionInfo) -> QuestionOut {
        QuestionOut {
            session: q.session.to_string(),
            session_name: q.session_name,
            ask: q.ask,
            protocol: q.protocol,
            host: q.host,
            port: q.port,
            asked: q.asked,
            seconds_left: q.seconds_left,
        }
    }
}

/// An answer: "once" (this connection), "session" (this host and port for the rest of the
/// session), "deny" (refused, and not asked again in this session).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerIn {
    pub answer: String,
}

/// The questions of all the caller's sessions, oldest first.
#[utoipa::path(get, path = "/v1/questions", security(("bearer" = [])),
    responses((status = 200, body = [QuestionOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn all_questions(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<QuestionOut>>> {
    Ok(Json(
        api.svc
            .questions(&auth.p)?
            .into_iter()
            .map(QuestionOut::from)
            .collect(),
    ))
}

/// The questions of one of the caller's sessions.
#[utoipa::path(get, path = "/v1/sessions/{id}/questions", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = [QuestionOut]), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn session_questions(
    State(api): State<Api>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<QuestionOut>>> {
    Ok(Json(
        api.svc
            .session_questions(&auth.p, parse_id(&id)?)?
            .into_iter()
            .map(QuestionOut::from)
            .collect(),
    ))
}

/// Answers a question; the waiting connection goes on (or is refused) at once.
#[utoipa::path(post, path = "/v1/sessions/{id}/questions/{ask}", params(("id" = String, Path), ("ask" = String, Path)), request_body = AnswerIn, security(("bearer" = [])),
    responses((status = 200, body = QuestionOut), (status = 400, body = ErrorOut), (status = 401, body = ErrorOut), (status = 403, body = ErrorOut), (status = 404, body = ErrorOut), (status = 415, body = ErrorOut), (status = 429, body = ErrorOut)))]
async fn answer(
    State(api): State<Api>,
    auth: Auth,
    Path((id, ask)): Path<(String, String)>,
    Body(body): Body<AnswerIn>,
) -> Result<Json<QuestionOut>> {
    let Some(a) = Answer::parse(&body.answer) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "answer must be \"once\", \"session\" or \"deny\"",
        ));
    };
    let ask = ask
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no question {ask}")))?;
    Ok(Json(
        api.svc
            .answer_question(&auth.p, parse_id(&id)?, ask, a)?
            .into(),
    ))
}
