//! What a session did, on its recording's timeline: egress events (kind `n`,
//! [`super::format::NET`]: `open`, `connect`, `ask`, `answer`, `expired`, with the
//! destination and what became of it) and exec events (kind `e`, [`super::format::EXEC`]:
//! `exec` with the command line and its verdict, `exit` with a status), each a JSON object;
//! the one line of words the player, `cordon rec events` and asciicast markers show for
//! each; and the list of them read from a recording.

use super::format::{self, Recording};

/// What the recording's timeline holds for one egress event (kind `n`, JSON): the event,
/// the destination, and what became of it.
pub fn timeline_entry(event: &str, fields: serde_json::Value) -> Vec<u8> {
    let mut v = fields;
    if let Some(o) = v.as_object_mut() {
        o.insert("event".into(), event.into());
    }
    v.to_string().into_bytes()
}

/// One entry of a recording's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Microseconds from the recording's start.
    pub at_us: u64,
    /// `exec`, `exit`, `net` or `marker`.
    pub kind: &'static str,
    /// The event as recorded (for a marker: `{"label": ...}`).
    pub data: serde_json::Value,
    /// One printable line about it.
    pub words: String,
}

/// The timeline of `rec`: its exec and exit events, egress events and markers, in order.
pub fn entries(rec: &Recording) -> Vec<Entry> {
    rec.events
        .iter()
        .filter_map(|e| {
            let (kind, data, words) = match e.kind {
                format::EXEC => {
                    let v: serde_json::Value = serde_json::from_slice(&e.data).unwrap_or_default();
                    let k = if v["event"] == "exit" { "exit" } else { "exec" };
                    (k, v, exec_words(&e.data))
                }
                format::NET => (
                    "net",
                    serde_json::from_slice(&e.data).unwrap_or_default(),
                    timeline_words(&e.data),
                ),
                format::MARKER => {
                    let label = String::from_utf8_lossy(&e.data).into_owned();
                    let words = crate::text::printable(&format!("marker: {label}")).into_owned();
                    ("marker", serde_json::json!({ "label": label }), words)
                }
                _ => return None,
            };
            Some(Entry {
                at_us: e.at_us,
                kind,
                data,
                words,
            })
        })
        .collect()
}

/// Whether an exec-kind event records a program started (not an exit).
pub fn is_exec(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| v["event"] == "exec")
}

/// The command line an exec event ran (its arguments, quoted where a shell would need it).
pub fn command_line(v: &serde_json::Value) -> String {
    v["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let s = x.as_str().unwrap_or("");
                    if !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
                    {
                        s.to_string()
                    } else {
                        format!("'{}'", s.replace('\'', "'\\''"))
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// One line of words for an exec event.
pub fn exec_words(data: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return "exec: (unreadable)".into();
    };
    let words = match v["event"].as_str() {
        Some("exit") => format!(
            "exit: pid {} status {}",
            v["pid"].as_u64().unwrap_or(0),
            v["status"].as_i64().unwrap_or(0)
        ),
        _ if v["suppressed"].is_u64() => format!(
            "exec: {} more not recorded (the session's limit)",
            v["suppressed"]
        ),
        _ => {
            let mut w = format!("exec: {}", command_line(&v));
            let more = v["argc"].as_u64().unwrap_or(0)
                > v["argv"].as_array().map(|a| a.len() as u64).unwrap_or(0);
            if more {
                w.push_str(" ...");
            }
            match v["outcome"].as_str() {
                Some("refused") => w.push_str(" (refused)"),
                Some("failed") => {
                    w.push_str(&format!(" (failed: {})", v["why"].as_str().unwrap_or("")))
                }
                _ => {}
            }
            w
        }
    };
    crate::text::printable(&words).into_owned()
}

/// One line of words for an egress entry (the player, asciicast markers).
pub fn timeline_words(data: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return "net: (unreadable)".into();
    };
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let dest = format!("{}:{}", s("host"), v["port"].as_u64().unwrap_or(0));
    let words = match s("event").as_str() {
        "open" => format!("net: {dest} open ({})", s("verdict")),
        "connect" if v["allowed"] == true => format!(
            "net: {dest} closed, {} B up, {} B down ({})",
            v["bytes_up"].as_u64().unwrap_or(0),
            v["bytes_down"].as_u64().unwrap_or(0),
            s("verdict")
        ),
        "connect" => format!("net: {dest} refused: {}", s("verdict")),
        "ask" => format!("net: {dest} waits for the owner's answer"),
        "answer" => format!("net: {dest}: {} answered {}", s("by"), s("answer")),
        "expired" => format!("net: {dest}: no answer in time, refused"),
        other => format!("net: {other} {dest}"),
    };
    crate::text::printable(&words).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_words_give_the_command_line_and_its_verdict() {
        let e = |v: serde_json::Value| exec_words(v.to_string().as_bytes());
        assert_eq!(
            e(
                serde_json::json!({"event": "exec", "argv": ["git", "commit", "-m", "it's done"], "argc": 4, "outcome": "allowed"})
            ),
            "exec: git commit -m 'it'\\''s done'"
        );
        assert_eq!(
            e(
                serde_json::json!({"event": "exec", "argv": ["python3", "-c", "1"], "argc": 3, "outcome": "refused"})
            ),
            "exec: python3 -c 1 (refused)"
        );
        assert_eq!(
            e(serde_json::json!({"event": "exit", "pid": 4, "status": 2})),
            "exit: pid 4 status 2"
        );
        let w = e(
            serde_json::json!({"event": "exec", "argv": ["echo", "\u{1b}]52;c;QQ==\u{7}"], "argc": 9}),
        );
        assert!(!w.contains('\u{1b}') && w.ends_with("..."), "{w}");
    }

    #[test]
    fn timeline_words_say_what_became_of_each_connection() {
        let entry = |event: &str, v: serde_json::Value| timeline_words(&timeline_entry(event, v));
        assert_eq!(
            entry(
                "connect",
                serde_json::json!({"host": "evil.test", "port": 443, "allowed": false, "verdict": "no rule names it"})
            ),
            "net: evil.test:443 refused: no rule names it"
        );
        assert_eq!(
            entry(
                "connect",
                serde_json::json!({"host": "api.anthropic.com", "port": 443, "allowed": true, "verdict": "allow api.anthropic.com", "bytes_up": 10, "bytes_down": 20})
            ),
            "net: api.anthropic.com:443 closed, 10 B up, 20 B down (allow api.anthropic.com)"
        );
        assert_eq!(
            entry(
                "answer",
                serde_json::json!({"host": "x.test", "port": 80, "by": "alice", "answer": "once"})
            ),
            "net: x.test:80: alice answered once"
        );
        // What the session named never reaches a terminal raw.
        let w = entry(
            "ask",
            serde_json::json!({"host": "a\u{1b}]52;c;QQ==\u{7}.test", "port": 443}),
        );
        assert!(!w.contains('\u{1b}') && !w.contains('\u{7}'), "{w}");
    }
}
