//! Egress questions (`[network] unknown = "ask"`): a session's connection to a destination
//! no rule names waits while its owner is asked. Only the owner sees and answers them (the
//! right to attach to their own session, checked at each answer); every answer is audited.

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Action;
use crate::sessions::egress::AnswerError;
use crate::sessions::Session;
use sandbox::egress::Answer;

/// A question as the faces show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionInfo {
    pub session: crate::sessions::SessionId,
    pub session_name: String,
    /// Its number in the session.
    pub ask: u64,
    /// `http`, `connect` or `socks5`.
    pub protocol: String,
    /// The destination as the session named it (printable; its secrets redacted).
    pub host: String,
    pub port: u16,
    /// When it was asked (RFC 3339).
    pub asked: String,
    /// Seconds left before the connection stops waiting (and is refused).
    pub seconds_left: u64,
}

impl QuestionInfo {
    fn of(s: &Session, q: &crate::sessions::egress::Question) -> QuestionInfo {
        QuestionInfo {
            session: s.id,
            session_name: s.name(),
            ask: q.ask,
            protocol: q.protocol.clone(),
            host: q.host.clone(),
            port: q.port,
            asked: q.asked.clone(),
            seconds_left: q.seconds_left(),
        }
    }

    /// The question in one line: which session wants to reach what.
    pub fn words(&self) -> String {
        format!(
            "session {} ({}) asks to connect to {}:{}",
            self.session.short(),
            crate::text::printable(&self.session_name),
            self.host,
            self.port
        )
    }
}

impl Service {
    /// The questions waiting for the principal: those of their own sessions, oldest first.
    pub fn questions(&self, p: &Principal) -> Result<Vec<QuestionInfo>> {
        let p = self.check(p, Action::ListSessions, "questions", |p| {
            format!("{} may not list sessions", p.role.with_article())
        })?;
        let mut out = Vec::new();
        let sessions = self.hub.list();
        for s in sessions.iter().filter(|s| p.owns(s.owner_id)) {
            out.extend(s.egress.questions().iter().map(|q| QuestionInfo::of(s, q)));
        }
        Ok(out)
    }

    /// The questions of one session; only its owner may see them.
    pub fn session_questions(&self, p: &Principal, id: &str) -> Result<Vec<QuestionInfo>> {
        let (p, s) = self.visible(p, id, "questions")?;
        self.owner_only(&p, &s, "questions")?;
        Ok(s.egress
            .questions()
            .iter()
            .map(|q| QuestionInfo::of(&s, q))
            .collect())
    }

    /// Answers question `ask` of session `id`: allow once, for the session, or deny.
    pub fn answer_question(
        &self,
        p: &Principal,
        id: &str,
        ask: u64,
        answer: Answer,
    ) -> Result<QuestionInfo> {
        let (p, s) = self.changeable(p, id, "answer")?;
        self.owner_only(&p, &s, "answer")?;
        let q = s.answer(ask, answer, &p.user).map_err(|e| match e {
            AnswerError::NoSuchQuestion { .. } => Error::NotFound(e.to_string()),
            AnswerError::Gone => Error::Invalid(e.to_string()),
        })?;
        self.record(
            p.stamp(AuditEvent::new(Kind::NetAnswer, p.user.clone()))
                .with("session", s.id)
                .with("ask", ask)
                .with("host", q.host.clone())
                .with("port", q.port)
                .with("answer", answer.name()),
        );
        Ok(QuestionInfo::of(&s, &q))
    }

    /// Refuses (audited) anyone but the session's owner: a question is theirs to answer,
    /// even an admin who may attach to the session is not asked.
    fn owner_only(&self, p: &Principal, s: &Session, what: &str) -> Result<()> {
        if p.owns(s.owner_id) {
            return Ok(());
        }
        let why = format!(
            "only the session's owner ({}) answers its questions",
            s.owner
        );
        Err(self.refused(p, what, &why, Error::Forbidden(why.clone())))
    }
}
