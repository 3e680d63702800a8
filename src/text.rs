//! Strings that users and sessions control (commands, labels, names, key comments, lines
//! from a screen), made safe to print on someone's terminal: every control character (C0,
//! DEL, C1) and every character that reorders or hides text (bidirectional overrides and
//! isolates, zero-width joiners and marks) is shown as an escape (`\x1b`, `\u{202e}`), so
//! that no string can set a clipboard (OSC 52), retitle a window, erase or forge a line,
//! or make a terminal answer a query.
//!
//! The API's JSON is JSON already (serde escapes C0); the command line's JSON output goes
//! through [`json`], which also escapes C1, DEL and the reordering characters, keeping it
//! valid JSON.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width space, joiners, LRM, RLM
            | '\u{202a}'..='\u{202e}' // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{061c}'              // Arabic letter mark
            | '\u{feff}'              // zero-width no-break space
        )
}

fn escape_into(out: &mut String, c: char) {
    if (c as u32) < 0x80 {
        out.push_str(&format!("\\x{:02x}", c as u32));
    } else {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    }
}

/// Splits a command line into words as a POSIX shell would (quotes group, `\\` escapes),
/// with the `shlex` crate: what `ssh HOST COMMAND` and the TUI's command field receive.
pub fn split_words(s: &str) -> Result<Vec<String>, UnfinishedWords> {
    shlex::split(s).ok_or(UnfinishedWords)
}

/// A command line a shell would still be waiting on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unterminated quote or a trailing backslash")]
pub struct UnfinishedWords;

/// `s` with every unsafe character escaped (a single line: newlines are escaped too).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text of several lines (a listing, an error message) with every unsafe character escaped
/// except the line breaks and tabs that lay it out.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c) && c != '\n' && c != '\t') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) && c != '\n' && c != '\t' {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text (as serde_json writes it) made safe for a terminal, and still valid JSON:
/// what serde leaves raw (DEL, C1, reordering characters) becomes a `\uXXXX` escape.
pub fn json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) && c != '\n' {
            // Every unsafe character is in the Basic Multilingual Plane: one \u escape.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `n` and the noun, singular or plural ("1 session", "3 sessions"): counts in messages.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_count_agrees_with_its_noun() {
        assert_eq!(super::count(0, "key"), "0 keys");
        assert_eq!(super::count(1, "key"), "1 key");
        assert_eq!(super::count(2, "session"), "2 sessions");
    }

    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words("run -- sh -c 'echo hi; exit 3'").unwrap(),
            vec!["run", "--", "sh", "-c", "echo hi; exit 3"]
        );
        assert_eq!(
            split_words(r#"new --name "my box" -- a\ b"#).unwrap(),
            vec!["new", "--name", "my box", "--", "a b"]
        );
        assert!(split_words("echo 'open").is_err());
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn escape_sequences_in_a_string_are_shown_not_obeyed() {
        let osc52 = "make\x1b]52;c;cm0gLXJmIH4=\x07 test";
        assert_eq!(printable(osc52), "make\\x1b]52;c;cm0gLXJmIH4=\\x07 test");
        assert_eq!(printable("a\rforged line\nb"), "a\\x0dforged line\\x0ab");
        assert_eq!(printable("c1 \u{9b}31m csi"), "c1 \\u{9b}31m csi");
        assert_eq!(printable("rm \u{202e}txt.exe"), "rm \\u{202e}txt.exe");
        assert!(matches!(printable("plain ünïcode ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_listing_keeps_its_lines_but_not_its_escapes() {
        assert_eq!(
            printable_lines("ID\tNAME\n1\tx\x1b[2Ky\n"),
            "ID\tNAME\n1\tx\\x1b[2Ky\n"
        );
    }

    #[test]
    fn json_for_a_terminal_stays_json_and_loses_raw_c1() {
        let v = serde_json::json!({"command": "echo \u{9b}2J \u{7f} \u{202e}x \x1b]0;t\x07"});
        let text = serde_json::to_string(&v).unwrap();
        let safe = json(&text);
        assert!(!safe.chars().any(unsafe_char), "{safe}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            v,
            "the same value once parsed"
        );
    }
}
