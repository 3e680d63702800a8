//! Egress questions (`[network] unknown = "ask"`): what the caller's sessions ask to reach,
//! and the answers (allow once, allow for the session, deny).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{parse_id, BadBody, Body, Common, ErrorOut, Result, SessionPath, NO_SESSION, P};
use crate::api::{Api, Auth};
use crate::service::QuestionInfo;
use sandbox::egress::Answer;

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(all_questions))
        .routes(routes!(session_questions))
        .routes(routes!(answer))
}

/// How a session asked to connect.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// A plain HTTP request through the proxy.
    Http,
    /// An HTTP CONNECT tunnel.
    Connect,
    Socks5,
}

/// A connection waiting for the session's owner.
#[derive(Serialize, ToSchema)]
pub struct QuestionOut {
    /// The session's id.
    #[schema(pattern = "^[0-9a-hjkmnp-tv-z]{12}$", min_length = 12, max_length = 12)]
    pub session: String,
    pub session_name: String,
    /// Its number in the session: what an answer names.
    #[schema(minimum = 1)]
    pub ask: u64,
    pub protocol: Protocol,
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
            // The proxy asks with these three (sandbox::egress::proxy).
            protocol: match q.protocol.as_str() {
                "http" => Protocol::Http,
                "connect" => Protocol::Connect,
                _ => Protocol::Socks5,
            },
            host: q.host,
            port: q.port,
            asked: q.asked,
            seconds_left: q.seconds_left,
        }
    }
}

/// An answer.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum AnswerName {
    /// Let this connection through.
    Once,
    /// Let this host and port through for the rest of the session.
    Session,
    /// Refuse it, and do not ask again in this session.
    Deny,
}

impl From<AnswerName> for Answer {
    fn from(a: AnswerName) -> Answer {
        match a {
            AnswerName::Once => Answer::Once,
            AnswerName::Session => Answer::Session,
            AnswerName::Deny => Answer::Deny,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerIn {
    pub answer: AnswerName,
}

/// A question of a session named in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QuestionPath {
    /// The session: its id, a unique prefix of its id (at least 4 characters), or its name.
    #[param(min_length = 1, max_length = 64)]
    pub id: String,
    /// The question's number in the session.
    #[param(minimum = 1)]
    pub ask: u64,
}

/// The questions of all the caller's sessions, oldest first.
#[utoipa::path(get, path = "/v1/questions", security(("bearer" = [])),
    responses(Common, (status = 200, body = [QuestionOut]), (status = 403, body = ErrorOut, description = "the caller's role may not list sessions")))]
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
#[utoipa::path(get, path = "/v1/sessions/{id}/questions", params(SessionPath), security(("bearer" = [])),
    responses(Common, (status = 200, body = [QuestionOut]),
        (status = 403, body = ErrorOut, description = "the caller may see the session but is not its owner, who alone answers its questions"),
        (status = 404, body = ErrorOut, description = NO_SESSION)))]
async fn session_questions(
    State(api): State<Api>,
    auth: Auth,
    P(SessionPath { id }): P<SessionPath>,
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
#[utoipa::path(post, path = "/v1/sessions/{id}/questions/{ask}", params(QuestionPath), request_body = AnswerIn, security(("bearer" = [])),
    responses(Common, (status = 200, body = QuestionOut, description = "the question, answered"), BadBody,
        (status = 403, body = ErrorOut, description = "the caller may see the session but is not its owner, who alone answers its questions"),
        (status = 404, body = ErrorOut, description = "no such session (as for every endpoint that names one), or no such question waiting: answered already, or it stopped waiting"),
        (status = 409, body = ErrorOut, description = "the session is ending: its proxy no longer takes answers")))]
async fn answer(
    State(api): State<Api>,
    auth: Auth,
    P(QuestionPath { id, ask }): P<QuestionPath>,
    Body(body): Body<AnswerIn>,
) -> Result<Json<QuestionOut>> {
    Ok(Json(
        api.svc
            .answer_question(&auth.p, parse_id(&id)?, ask, body.answer.into())?
            .into(),
    ))
}
