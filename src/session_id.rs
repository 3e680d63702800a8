//! Session ids, and how a word a user types (an id, a prefix of one, a name) finds a session.
//!
//! An id is 60 random bits, written as 12 characters of Crockford's base32 in lower case
//! (`0-9a-z` without `i l o u`). Random rather than counted, so that ids never repeat across
//! restarts, across hosts sharing a data directory, or in the audit log and the recordings
//! that outlive both; 60 bits so that it fits the catalogue's signed 64-bit column. People
//! type a prefix (as with git's hashes): lists show the first [`SHORT`] characters.
//!
//! What is not here: who may see which session. [`resolve`] is given only the sessions the
//! caller may see, so that a name or a prefix never tells one user about another's sessions.

use std::fmt;

/// Crockford's base32 alphabet, lower case: no `i`, `l`, `o`, `u` (read as 1, 1, 0, v).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters in a whole id (60 bits, 5 per character).
pub const LEN: usize = 12;
/// Characters lists show.
pub const SHORT: usize = 8;
/// The shortest prefix taken for an id (shorter ones would match too often to be meant).
pub const MIN_PREFIX: usize = 4;

/// A session's id: unique across restarts and hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(u64);

impl SessionId {
    /// A new random id.
    pub fn random() -> std::io::Result<SessionId> {
        let b = crate::secrets::random_bytes(8)?;
        let mut v = [0u8; 8];
        v.copy_from_slice(&b);
        Ok(SessionId(u64::from_le_bytes(v) >> 4))
    }

    /// The id stored as a number (the recording's header, the catalogue). Ids of hosts
    /// before random ids were counted from 1; they read back as `00000000000N`.
    pub fn from_number(n: u64) -> SessionId {
        SessionId(n & ((1 << 60) - 1))
    }

    pub fn number(self) -> u64 {
        self.0
    }

    /// The first [`SHORT`] characters, as lists show it.
    pub fn short(self) -> String {
        let mut s = self.to_string();
        s.truncate(SHORT);
        s
    }

    /// Reads a whole id; case is ignored, as are Crockford's look-alikes (`o` is `0`, `i`
    /// and `l` are `1`), so that an id read aloud or copied from a printout still works.
    pub fn parse(text: &str) -> Option<SessionId> {
        if text.len() != LEN {
            return None;
        }
        let mut n = 0u64;
        for c in text.bytes() {
            n = (n << 5) | u64::from(digit(c)?);
        }
        Some(SessionId(n))
    }

    /// Whether `prefix` (at least [`MIN_PREFIX`] characters, at most [`LEN`]) begins it.
    fn begins_with(self, prefix: &str) -> bool {
        if prefix.len() < MIN_PREFIX || prefix.len() > LEN {
            return false;
        }
        let whole = self.to_string();
        prefix
            .bytes()
            .zip(whole.bytes())
            .all(|(p, c)| digit(p).map(|d| ALPHABET[d as usize]) == Some(c))
    }
}

/// The value of one base32 character, with Crockford's substitutions.
fn digit(c: u8) -> Option<u8> {
    let c = match c.to_ascii_lowercase() {
        b'o' => b'0',
        b'i' | b'l' => b'1',
        c => c,
    };
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (LEN - 1 - i);
            *slot = ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        // The alphabet is ASCII.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Audit events carry the whole id, as text.
impl From<SessionId> for serde_json::Value {
    fn from(id: SessionId) -> serde_json::Value {
        serde_json::Value::String(id.to_string())
    }
}

/// What [`resolve`] is told of one session the caller may see.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub id: SessionId,
    pub owner: &'a str,
    pub name: &'a str,
}

/// What a typed reference came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Found(SessionId),
    /// No session answers to it.
    Missing,
    /// Several do: each as `owner/name (id)`, for the message.
    Ambiguous(Vec<String>),
}

/// The session a reference names, among `visible` (the sessions the caller, `me`, may see).
/// In order, the first rule that matches decides:
///
/// 1. a whole id;
/// 2. the name of one of the caller's own sessions (names are unique per user);
/// 3. `owner/name`;
/// 4. a name that one visible session has;
/// 5. a prefix of one visible session's id (at least [`MIN_PREFIX`] characters).
///
/// A rule that matches several sessions makes the reference ambiguous rather than falling
/// through to the next one: the caller should pick, not the host.
pub fn resolve(reference: &str, me: &str, visible: &[Candidate<'_>]) -> Resolved {
    let reference = reference.trim();
    if reference.is_empty() {
        return Resolved::Missing;
    }
    let decide = |found: Vec<&Candidate<'_>>| match found.as_slice() {
        [] => None,
        [one] => Some(Resolved::Found(one.id)),
        many => Some(Resolved::Ambiguous(
            many.iter()
                .map(|c| format!("{}/{} ({})", c.owner, c.name, c.id.short()))
                .collect(),
        )),
    };
    if let Some(id) = SessionId::parse(reference) {
        if visible.iter().any(|c| c.id == id) {
            return Resolved::Found(id);
        }
    }
    let rules: [&dyn Fn(&Candidate<'_>) -> bool; 4] = [
        &|c| c.owner == me && c.name == reference,
        &|c| {
            reference
                .split_once('/')
                .is_some_and(|(o, n)| c.owner == o && c.name == n)
        },
        &|c| c.name == reference,
        &|c| c.id.begins_with(reference),
    ];
    for rule in rules {
        if let Some(r) = decide(visible.iter().filter(|c| rule(c)).collect()) {
            return r;
        }
    }
    Resolved::Missing
}

/// Why a name cannot be a session's name, if it cannot: names are shown in lists and typed
/// as words, and `owner/name` must stay readable.
pub fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("a session's name cannot be empty")
    } else if name.chars().count() > 64 {
        Some("a session's name has at most 64 characters")
    } else if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        Some("a session's name has no spaces, slashes or control characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> SessionId {
        SessionId::parse(text).unwrap()
    }

    fn c<'a>(i: &str, owner: &'a str, name: &'a str) -> Candidate<'a> {
        Candidate {
            id: id(i),
            owner,
            name,
        }
    }

    #[test]
    fn an_id_reads_back_as_it_was_written() {
        for _ in 0..1000 {
            let a = SessionId::random().unwrap();
            let text = a.to_string();
            assert_eq!(text.len(), LEN);
            assert!(text.bytes().all(|b| ALPHABET.contains(&b)), "{text}");
            assert_eq!(SessionId::parse(&text), Some(a));
            assert_eq!(SessionId::parse(&text.to_uppercase()), Some(a));
        }
    }

    #[test]
    fn random_ids_fit_the_catalogues_signed_column_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let a = SessionId::random().unwrap();
            assert!(i64::try_from(a.number()).is_ok());
            assert!(seen.insert(a));
        }
    }

    #[test]
    fn look_alike_letters_read_as_the_digits_they_resemble() {
        assert_eq!(id("0000000000o1"), id("00000000000l"));
        assert_eq!(id("00000000000i"), id("00000000000l"));
        assert_eq!(id("0000000000o1").number(), 1);
        assert_eq!(SessionId::from_number(1).to_string(), "000000000001");
        assert_eq!(SessionId::parse("00000000000u"), None);
        assert_eq!(SessionId::parse("0001"), None);
    }

    #[test]
    fn a_whole_id_wins_over_a_name() {
        let v = [
            c("k3f9x2ab0000", "alice", "k3f9x2ab0001"),
            c("k3f9x2ab0001", "bob", "build"),
        ];
        assert_eq!(
            resolve("k3f9x2ab0001", "alice", &v),
            Resolved::Found(id("k3f9x2ab0001"))
        );
    }

    #[test]
    fn ones_own_name_wins_over_another_users_same_name() {
        let v = [
            c("aaaaaaaaaaaa", "alice", "build"),
            c("bbbbbbbbbbbb", "bob", "build"),
        ];
        assert_eq!(
            resolve("build", "bob", &v),
            Resolved::Found(id("bbbbbbbbbbbb"))
        );
        assert_eq!(
            resolve("alice/build", "bob", &v),
            Resolved::Found(id("aaaaaaaaaaaa"))
        );
    }

    #[test]
    fn a_name_two_others_share_is_ambiguous_and_names_both() {
        let v = [
            c("aaaaaaaaaaaa", "alice", "build"),
            c("bbbbbbbbbbbb", "bob", "build"),
        ];
        match resolve("build", "carol", &v) {
            Resolved::Ambiguous(list) => {
                assert_eq!(list, ["alice/build (aaaaaaaa)", "bob/build (bbbbbbbb)"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_prefix_finds_the_one_session_it_begins() {
        let v = [
            c("k3f9x2ab0000", "alice", "one"),
            c("k3g000000000", "alice", "two"),
        ];
        assert_eq!(
            resolve("k3f9", "alice", &v),
            Resolved::Found(id("k3f9x2ab0000"))
        );
        assert_eq!(
            resolve("K3F9X", "alice", &v),
            Resolved::Found(id("k3f9x2ab0000"))
        );
        assert!(matches!(resolve("k3", "alice", &v), Resolved::Missing));
        assert!(matches!(resolve("k3f", "alice", &v), Resolved::Missing));
    }

    #[test]
    fn a_prefix_two_sessions_begin_is_ambiguous() {
        let v = [
            c("k3f9x2ab0000", "alice", "one"),
            c("k3f9zzzz0000", "alice", "two"),
        ];
        assert!(matches!(
            resolve("k3f9", "alice", &v),
            Resolved::Ambiguous(l) if l.len() == 2
        ));
        assert_eq!(
            resolve("k3f9x", "alice", &v),
            Resolved::Found(id("k3f9x2ab0000"))
        );
    }

    #[test]
    fn a_session_the_caller_may_not_see_is_missing_whatever_is_typed() {
        // The caller's list is all `resolve` knows: bob's session is not in it.
        let v = [c("aaaaaaaaaaaa", "alice", "build")];
        for r in ["bbbbbbbbbbbb", "bbbb", "bob/secret", "secret", "", "  "] {
            assert_eq!(resolve(r, "alice", &v), Resolved::Missing, "{r:?}");
        }
    }

    #[test]
    fn names_with_spaces_slashes_or_controls_are_refused() {
        assert!(bad_name("build").is_none());
        assert!(bad_name("fix-issue-18").is_none());
        for bad in ["", "a b", "a/b", "a\x1b[2Jb", "a\tb", &"x".repeat(65)] {
            assert!(bad_name(bad).is_some(), "{bad:?}");
        }
    }
}
