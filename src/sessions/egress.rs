//! A session's egress as the host keeps it (network mode "proxy"): the questions waiting
//! for the owner (`[network] unknown = "ask"`) until a face answers them
//! ([`Egress::answer`] writes the answer to the proxy's answers pipe, `--answers-fd`), the
//! egress figures for /metrics, and the cleaning of what the session names (its secrets
//! redacted, control characters escaped) before the audit log or the recording stores it:
//! a name built from a secret is an exfiltration attempt, and its evidence must not become
//! a copy of the secret. The events themselves are read in [`super::events`].

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::Session;
use crate::record::format as recfmt;
use crate::record::timeline::timeline_entry;
use crate::redact::Redactor;
use sandbox::egress::Answer;

/// Most questions kept per session (the proxy keeps fewer open: `ask::MAX_OPEN`).
pub(super) const MAX_QUESTIONS: usize = 64;

/// Egress figures since the host started, for /metrics.
#[derive(Default)]
pub struct Figures {
    pub allowed: AtomicU64,
    pub refused: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub asked: AtomicU64,
    pub answered: AtomicU64,
    pub unanswered: AtomicU64,
}

/// The host's egress figures.
pub static FIGURES: Figures = Figures {
    allowed: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    bytes_up: AtomicU64::new(0),
    bytes_down: AtomicU64::new(0),
    asked: AtomicU64::new(0),
    answered: AtomicU64::new(0),
    unanswered: AtomicU64::new(0),
};

/// A connection waiting for the session's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Its number in the session.
    pub ask: u64,
    /// `http`, `connect` or `socks5`.
    pub protocol: String,
    /// The destination as the session named it (printable, its secrets redacted).
    pub host: String,
    pub port: u16,
    /// When it was asked (RFC 3339).
    pub asked: String,
    /// When the connection stops waiting.
    pub deadline: Instant,
}

impl Question {
    /// Seconds left to answer.
    pub fn seconds_left(&self) -> u64 {
        self.deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
    }
}

/// Why an answer was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("session {session} has no open question {ask} (answered, or it stopped waiting)")]
    NoSuchQuestion { session: super::SessionId, ask: u64 },
    #[error("the session's proxy no longer listens for answers (the session is ending)")]
    Gone,
}

/// A session's side of egress: its open questions and where answers go.
pub struct Egress {
    questions: Mutex<Vec<Question>>,
    answers: Mutex<Option<File>>,
    /// The session's secrets, redacted from what the session names.
    secrets: Vec<Vec<u8>>,
}

impl Egress {
    pub(super) fn new(answers: Option<File>, secrets: Vec<Vec<u8>>) -> Egress {
        Egress {
            questions: Mutex::new(Vec::new()),
            answers: Mutex::new(answers),
            secrets,
        }
    }

    /// The questions waiting for the owner, oldest first.
    pub fn questions(&self) -> Vec<Question> {
        let now = Instant::now();
        self.lock_questions()
            .iter()
            .filter(|q| q.deadline > now)
            .cloned()
            .collect()
    }

    pub(super) fn lock_questions(&self) -> std::sync::MutexGuard<'_, Vec<Question>> {
        self.questions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the owner's answer to question `ask` to the proxy; the question is closed.
    pub fn answer(
        &self,
        session: super::SessionId,
        ask: u64,
        answer: Answer,
    ) -> Result<Question, AnswerError> {
        let mut qs = self.lock_questions();
        let now = Instant::now();
        let Some(i) = qs.iter().position(|q| q.ask == ask && q.deadline > now) else {
            return Err(AnswerError::NoSuchQuestion { session, ask });
        };
        let line = format!("{{\"ask\":{ask},\"answer\":\"{}\"}}\n", answer.name());
        let mut pipe = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        match pipe.as_mut().map(|p| p.write_all(line.as_bytes())) {
            Some(Ok(())) => Ok(qs.remove(i)),
            _ => {
                *pipe = None;
                Err(AnswerError::Gone)
            }
        }
    }

    /// The session's string made fit to store and show: its secrets redacted, control
    /// characters escaped.
    pub(super) fn clean(&self, s: &str) -> String {
        crate::text::printable(&self.redacted(s)).into_owned()
    }

    /// The session's string with its secrets redacted (a name built from a secret must not
    /// become a copy of it where it is kept).
    pub(super) fn redacted(&self, s: &str) -> String {
        if self.secrets.is_empty() {
            return s.to_string();
        }
        let mut r = Redactor::new(self.secrets.iter().map(|v| v.as_slice()));
        let mut out = Vec::new();
        r.push(s.as_bytes(), &mut out);
        r.finish(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Session {
    /// Hands the owner's answer to question `ask` to the proxy, and puts it on the
    /// recording's timeline (`by`: who answered).
    pub fn answer(&self, ask: u64, answer: Answer, by: &str) -> Result<Question, AnswerError> {
        let q = self.egress.answer(self.id, ask, answer)?;
        FIGURES.answered.fetch_add(1, Ordering::Relaxed);
        self.record_net_value(
            "answer",
            serde_json::json!({"ask": ask, "host": q.host, "port": q.port, "answer": answer.name(), "by": by}),
        );
        self.wake_viewers();
        Ok(q)
    }

    /// Puts an egress event on the recording's timeline.
    pub(super) fn record_net_value(&self, event: &str, fields: serde_json::Value) {
        if !self.record(recfmt::NET, &timeline_entry(event, fields)) {
            self.kill();
        }
    }

    /// Wakes every viewer's face (a question came or went).
    pub(super) fn wake_viewers(&self) {
        for v in self.viewers() {
            v.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    /// A pipe (read end, write end), close-on-exec.
    fn os_pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: a two-int array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        use std::os::fd::FromRawFd;
        // SAFETY: pipe2 returned them; owned from here.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn a_secret_in_a_name_the_session_asks_for_is_redacted_and_escaped() {
        let e = Egress::new(None, vec![b"hunter2-secret-value".to_vec()]);
        let host = "hunter2-secret-value.evil.test\u{1b}[2J";
        let clean = e.clean(host);
        assert!(!clean.contains("hunter2-secret-value"), "{clean}");
        assert!(clean.contains("[redacted]"), "{clean}");
        assert!(!clean.contains('\u{1b}'), "{clean}");
    }

    #[test]
    fn an_answer_goes_to_the_proxy_as_one_line_and_closes_the_question() {
        let (r, w) = os_pipe();
        let e = Egress::new(Some(w), vec![]);
        e.lock_questions().push(Question {
            ask: 3,
            protocol: "connect".into(),
            host: "new.test".into(),
            port: 443,
            asked: String::new(),
            deadline: Instant::now() + Duration::from_secs(30),
        });
        assert_eq!(
            e.answer(crate::sessions::SessionId::from_number(7), 4, Answer::Once),
            Err(AnswerError::NoSuchQuestion {
                session: crate::sessions::SessionId::from_number(7),
                ask: 4
            })
        );
        let q = e
            .answer(
                crate::sessions::SessionId::from_number(7),
                3,
                Answer::Session,
            )
            .unwrap();
        assert_eq!(q.host, "new.test");
        assert!(e.questions().is_empty());
        assert_eq!(
            e.answer(crate::sessions::SessionId::from_number(7), 3, Answer::Deny),
            Err(AnswerError::NoSuchQuestion {
                session: crate::sessions::SessionId::from_number(7),
                ask: 3
            }),
            "answered once only"
        );
        drop(e);
        let mut text = String::new();
        std::io::BufReader::new(r)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"ask\":3,\"answer\":\"session\"}\n");
    }

    #[test]
    fn a_question_past_its_deadline_cannot_be_answered() {
        let e = Egress::new(None, vec![]);
        e.lock_questions().push(Question {
            ask: 1,
            protocol: "connect".into(),
            host: "late.test".into(),
            port: 443,
            asked: String::new(),
            deadline: Instant::now(),
        });
        assert!(e.questions().is_empty());
        assert!(matches!(
            e.answer(crate::sessions::SessionId::from_number(1), 1, Answer::Once),
            Err(AnswerError::NoSuchQuestion { .. })
        ));
    }
}
