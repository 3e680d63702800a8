//! A session's egress as the host sees it (network mode "proxy"). The sandbox's proxy
//! writes a JSON line per event to the events pipe (`cordon sandbox --events-fd`):
//!
//! - `open`: an allowed connection was made: put on the recording's timeline;
//! - `connect`: an attempt's record when it ends (verdict, rule, bytes, duration): audited
//!   as `net.connect`, put on the timeline, counted for /metrics;
//! - `ask` (`[network] unknown = "ask"`): a connection waits while the owner is asked: the
//!   question is kept here until it is answered through a face ([`Egress::answer`], which
//!   writes the answer to the answers pipe, `--answers-fd`) or `expired` says it ran out.
//!
//! Everything the session names (hosts) is bounded, and its secrets are redacted from it
//! before it is stored in the audit log or the recording: a name built from a secret is an
//! exfiltration attempt, and its evidence must not become a copy of the secret.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use super::Session;
use crate::audit::{AuditEvent, AuditLog, Kind};
use crate::record::format as recfmt;
use crate::record::net::timeline_entry;
use crate::redact::Redactor;
use sandbox::egress::Answer;

/// Most egress attempts audited per session; past it they are counted (`net.connect` with
/// `suppressed`, once, when the session ends).
const MAX_NET_EVENTS: u64 = 10_000;
/// Longest egress event line read; a longer one is skipped.
const MAX_EVENT_LINE: usize = 8 * 1024;
/// Most questions kept per session (the proxy keeps fewer open: `ask::MAX_OPEN`).
const MAX_QUESTIONS: usize = 64;

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
    NoSuchQuestion { session: u64, ask: u64 },
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

    fn lock_questions(&self) -> std::sync::MutexGuard<'_, Vec<Question>> {
        self.questions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the owner's answer to question `ask` to the proxy; the question is closed.
    pub fn answer(&self, session: u64, ask: u64, answer: Answer) -> Result<Question, AnswerError> {
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
    fn clean(&self, s: &str) -> String {
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

/// One line of the proxy's events; only these fields are taken.
#[derive(serde::Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Line {
    Open(Attempt),
    Connect(Attempt),
    Ask {
        ask: u64,
        protocol: String,
        host: String,
        port: u16,
        wait_s: u64,
    },
    Expired {
        ask: u64,
    },
}

/// An attempt as `sandbox::egress::proxy::Attempt` writes it.
#[derive(serde::Deserialize, serde::Serialize)]
struct Attempt {
    protocol: String,
    host: String,
    port: u16,
    allowed: bool,
    verdict: String,
    rule: Option<String>,
    address: Option<String>,
    bytes_up: u64,
    bytes_down: u64,
    duration_ms: u64,
    error: Option<String>,
}

/// Whose egress events are read: a session's (audited, recorded, asked about) or a run's
/// (audited only: a run has no recording and no one to ask).
pub enum Subject {
    Session(Weak<Session>, u64),
    Run { id: u64, secrets: Vec<Vec<u8>> },
}

/// Reads egress events until the proxy ends (the pipe's end): audits, records on the
/// session's timeline, counts, and keeps questions for the owner.
pub fn follow(events: File, subject: Subject, audit: &AuditLog, owner: &str) {
    // A run's names are cleaned as a session's are (it has no questions to keep).
    let (key, id, run_egress) = match &subject {
        Subject::Session(_, id) => ("session", *id, Egress::new(None, Vec::new())),
        Subject::Run { id, secrets } => ("run", *id, Egress::new(None, secrets.clone())),
    };
    let mut reader = std::io::BufReader::new(events);
    let (mut seen, mut suppressed) = (0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_EVENT_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if n > MAX_EVENT_LINE {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            if reader.read_until(b'\n', &mut rest).is_err() {
                break;
            }
            continue;
        }
        let Ok(event) = serde_json::from_slice::<Line>(&line) else {
            continue;
        };
        let session = match &subject {
            Subject::Session(w, _) => match w.upgrade() {
                Some(s) => Some(s),
                None => break,
            },
            Subject::Run { .. } => None,
        };
        let egress = match &session {
            Some(s) => &s.egress,
            None => &run_egress,
        };
        match event {
            Line::Open(mut a) => {
                if let Some(s) = &session {
                    a.host = egress.clean(&a.host);
                    s.record_net("open", &a);
                }
            }
            Line::Connect(mut a) => {
                a.host = egress.clean(&a.host);
                a.verdict = egress.clean(&a.verdict);
                let f = &FIGURES;
                if a.allowed { &f.allowed } else { &f.refused }.fetch_add(1, Ordering::Relaxed);
                f.bytes_up.fetch_add(a.bytes_up, Ordering::Relaxed);
                f.bytes_down.fetch_add(a.bytes_down, Ordering::Relaxed);
                if let Some(s) = &session {
                    s.record_net("connect", &a);
                }
                seen += 1;
                if seen > MAX_NET_EVENTS {
                    suppressed += 1;
                    continue;
                }
                let mut e = AuditEvent::new(Kind::NetConnect, owner)
                    .with(key, id)
                    .with("protocol", a.protocol)
                    .with("host", a.host)
                    .with("port", a.port)
                    .with("allowed", a.allowed)
                    .with("verdict", a.verdict)
                    .with("bytes_up", a.bytes_up)
                    .with("bytes_down", a.bytes_down)
                    .with("duration_ms", a.duration_ms);
                for (k, v) in [("rule", a.rule), ("address", a.address), ("error", a.error)] {
                    if let Some(v) = v {
                        e = e.with(k, v);
                    }
                }
                audit.report(e);
            }
            Line::Ask {
                ask,
                protocol,
                host,
                port,
                wait_s,
            } => {
                let Some(s) = &session else { continue };
                FIGURES.asked.fetch_add(1, Ordering::Relaxed);
                let q = Question {
                    ask,
                    protocol,
                    host: egress.clean(&host),
                    port,
                    asked: crate::audit::now_rfc3339(),
                    deadline: Instant::now() + Duration::from_secs(wait_s),
                };
                audit.report(
                    AuditEvent::new(Kind::NetAsk, owner)
                        .with("session", id)
                        .with("ask", ask)
                        .with("protocol", q.protocol.clone())
                        .with("host", q.host.clone())
                        .with("port", port)
                        .with("wait_s", wait_s),
                );
                s.record_net_value(
                    "ask",
                    serde_json::json!({"ask": ask, "protocol": q.protocol, "host": q.host, "port": port}),
                );
                {
                    let mut qs = egress.lock_questions();
                    let now = Instant::now();
                    qs.retain(|q| q.deadline > now);
                    if qs.len() < MAX_QUESTIONS {
                        qs.push(q);
                    }
                }
                s.wake_viewers();
            }
            Line::Expired { ask } => {
                let Some(s) = &session else { continue };
                let gone = {
                    let mut qs = egress.lock_questions();
                    let i = qs.iter().position(|q| q.ask == ask);
                    i.map(|i| qs.remove(i))
                };
                if let Some(q) = gone {
                    FIGURES.unanswered.fetch_add(1, Ordering::Relaxed);
                    audit.report(
                        AuditEvent::new(Kind::NetAnswer, owner)
                            .with("session", id)
                            .with("ask", ask)
                            .with("host", q.host.clone())
                            .with("port", q.port)
                            .with("answer", "none"),
                    );
                    s.record_net_value(
                        "expired",
                        serde_json::json!({"ask": ask, "host": q.host, "port": q.port}),
                    );
                    s.wake_viewers();
                }
            }
        }
    }
    if suppressed > 0 {
        audit.report(
            AuditEvent::new(Kind::NetConnect, owner)
                .with(key, id)
                .with("suppressed", suppressed),
        );
    }
    if let Subject::Session(w, _) = &subject {
        if let Some(s) = w.upgrade() {
            // The proxy is gone: nothing is waiting any more.
            s.egress.lock_questions().clear();
            s.wake_viewers();
        }
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

    fn record_net(&self, event: &str, a: &Attempt) {
        let v = serde_json::to_value(a).unwrap_or_default();
        self.record_net_value(event, v);
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
        let (r, w) = std::io::pipe().unwrap();
        let e = Egress::new(Some(File::from(std::os::fd::OwnedFd::from(w))), vec![]);
        e.lock_questions().push(Question {
            ask: 3,
            protocol: "connect".into(),
            host: "new.test".into(),
            port: 443,
            asked: String::new(),
            deadline: Instant::now() + Duration::from_secs(30),
        });
        assert_eq!(
            e.answer(7, 4, Answer::Once),
            Err(AnswerError::NoSuchQuestion { session: 7, ask: 4 })
        );
        let q = e.answer(7, 3, Answer::Session).unwrap();
        assert_eq!(q.host, "new.test");
        assert!(e.questions().is_empty());
        assert_eq!(
            e.answer(7, 3, Answer::Deny),
            Err(AnswerError::NoSuchQuestion { session: 7, ask: 3 }),
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
            e.answer(1, 1, Answer::Once),
            Err(AnswerError::NoSuchQuestion { .. })
        ));
    }
}
