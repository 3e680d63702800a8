//! What a sandbox reports to its host, read from the events pipe (`cordon sandbox
//! --events-fd`), one JSON line each: from the egress proxy (network mode "proxy"),
//!
//! - `open`: an allowed connection was made: put on the recording's timeline;
//! - `connect`: an attempt's record when it ends (verdict, rule, bytes, duration): audited
//!   as `net.connect`, put on the timeline, counted for /metrics;
//! - `ask` and `expired` (`[network] unknown = "ask"`): a question for the owner, kept in
//!   the session's [`super::egress::Egress`] until answered or run out;
//!
//! and from the exec watch (`sandbox::exec_events`), in every mode,
//!
//! - `exec` and `exit`: every program started (path, arguments, directory, verdict) and the
//!   status each process exits with: put on the timeline (kind `e`), not audited one by one
//!   (a build starts thousands), at most [`MAX_EXEC_EVENTS`] a session.
//!
//! Every line is bounded, and the session's secrets are redacted from what it named before
//! anything is stored.

use std::fs::File;
use std::io::{BufRead, Read};
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::egress::{Egress, Question, FIGURES, MAX_QUESTIONS};
use super::Session;
use crate::audit::{AuditEvent, AuditLog, Kind};
use crate::record::format as recfmt;

/// Most egress attempts audited per session; past it they are counted (`net.connect` with
/// `suppressed`, once, when the session ends).
const MAX_NET_EVENTS: u64 = 10_000;
/// Most exec and exit events recorded per session; past it they are counted (one `exec`
/// entry with `suppressed`, when the session ends).
pub const MAX_EXEC_EVENTS: u64 = 200_000;
/// Longest event line read; a longer one is skipped.
const MAX_EVENT_LINE: usize = 8 * 1024;

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
    Session(Weak<Session>, super::SessionId),
    Run { id: u64, secrets: Vec<Vec<u8>> },
}

/// Reads egress events until the proxy ends (the pipe's end): audits, records on the
/// session's timeline, counts, and keeps questions for the owner.
pub fn follow(events: File, subject: Subject, audit: &AuditLog, owner: &str) {
    // A run's names are cleaned as a session's are (it has no questions to keep).
    let (key, id, run_egress) = match &subject {
        Subject::Session(_, id) => (
            "session",
            serde_json::Value::from(*id),
            Egress::new(None, Vec::new()),
        ),
        Subject::Run { id, secrets } => (
            "run",
            serde_json::Value::from(*id),
            Egress::new(None, secrets.clone()),
        ),
    };
    let mut reader = std::io::BufReader::new(events);
    let (mut seen, mut suppressed) = (0u64, 0u64);
    let (mut execs, mut execs_suppressed) = (0u64, 0u64);
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
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        if matches!(value["event"].as_str(), Some("exec" | "exit")) {
            // A run has no recording: its execs are not kept.
            let Subject::Session(w, _) = &subject else {
                continue;
            };
            let Some(s) = w.upgrade() else { break };
            execs += 1;
            if execs > MAX_EXEC_EVENTS {
                execs_suppressed += 1;
                continue;
            }
            let value = redacted(&s.egress, value);
            if !s.record(recfmt::EXEC, value.to_string().as_bytes()) {
                s.kill();
            }
            continue;
        }
        let Ok(event) = serde_json::from_value::<Line>(value) else {
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
                    .with(key, id.clone())
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
                        .with("session", id.clone())
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
                            .with("session", id.clone())
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
    if execs_suppressed > 0 {
        if let Subject::Session(w, _) = &subject {
            if let Some(s) = w.upgrade() {
                let note = serde_json::json!({"event": "exec", "suppressed": execs_suppressed});
                if !s.record(recfmt::EXEC, note.to_string().as_bytes()) {
                    s.kill();
                }
            }
        }
    }
    if suppressed > 0 {
        audit.report(
            AuditEvent::new(Kind::NetConnect, owner)
                .with(key, id.clone())
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
    fn record_net(&self, event: &str, a: &Attempt) {
        let v = serde_json::to_value(a).unwrap_or_default();
        self.record_net_value(event, v);
    }
}

/// `v` with the session's secrets redacted from every string in it.
fn redacted(egress: &Egress, v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(egress.redacted(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| redacted(egress, x)).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| (k, redacted(egress, x)))
                .collect(),
        ),
        other => other,
    }
}
