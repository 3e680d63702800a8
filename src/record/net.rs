//! Egress events on a recording's timeline (kind `n`, [`super::format::NET`]): a JSON object
//! per event (`open`, `connect`, `ask`, `answer`, `expired`) with the destination and what
//! became of it, and the one line of words the player and asciicast markers show for it.

/// What the recording's timeline holds for one egress event (kind `n`, JSON): the event,
/// the destination, and what became of it.
pub fn timeline_entry(event: &str, fields: serde_json::Value) -> Vec<u8> {
    let mut v = fields;
    if let Some(o) = v.as_object_mut() {
        o.insert("event".into(), event.into());
    }
    v.to_string().into_bytes()
}

/// One line of words for a timeline entry (the player, asciicast markers).
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
