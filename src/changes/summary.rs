//! The summary of files changed, as it is kept with a recording (event `f`), answered by the
//! API and shown on terminals: what was created, changed and deleted, with sizes, bounded,
//! and what could not be seen. Paths are the session's strings (its secrets redacted,
//! bounded): [`Summary::lines`] escapes them for a terminal.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::snapshot::Kind;

/// When a summary was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FilesTaken)]
#[serde(rename_all = "lowercase")]
pub enum Taken {
    /// After the session's command and every process of it had ended (what the recording
    /// keeps).
    End,
    /// While the session ran, when someone asked.
    Now,
}

/// How a changed entry changed, the first that applies in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FileChange)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Another kind of entry stands at the path (a file became a directory, say).
    Type,
    /// Its size or its modification time differ: its content was written.
    Content,
    /// Another inode stands at the path with the same size and time (moved or copied over
    /// it with its time kept): its content may or may not differ.
    Replaced,
    /// Its permission bits changed (`chmod`), and nothing above.
    Mode,
    /// Only its inode change time moved: its links, owner or extended attributes changed,
    /// or its content was rewritten and its modification time set back (cordon cannot tell
    /// which: it keeps no copy of the content).
    Metadata,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Type => "type",
            Change::Content => "content",
            Change::Replaced => "replaced",
            Change::Mode => "mode",
            Change::Metadata => "metadata",
        }
    }
}

/// One path in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FileEntry)]
pub struct Entry {
    /// Relative to the workspace, `/` between names; the session's bytes as UTF-8 (invalid
    /// bytes as U+FFFD), its secrets redacted, at most 1024 bytes (a longer one ends in `…`).
    pub path: String,
    /// What it is now (what it was, when deleted).
    pub kind: Kind,
    /// What it was, when that differs (a type change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_kind: Option<Kind>,
    /// Its size in bytes now, for files and links (absent when deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Its size before, for files and links (absent when created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_size: Option<u64>,
    /// How it changed (changed entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// How many paths were created, changed and deleted: all of them, listed or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FilesCounts)]
pub struct Counts {
    pub created: u64,
    pub changed: u64,
    pub deleted: u64,
}

/// Bytes, over every path counted (listed or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FilesBytes)]
pub struct Bytes {
    /// The sizes of the files and links created.
    pub created: u64,
    /// The sizes the deleted files and links had.
    pub deleted: u64,
    /// How much the changed files and links grew (negative: shrank), together.
    pub changed: i64,
}

/// What a session created, changed and deleted in its workspace between the walk taken
/// before its command started and a later one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FilesSummary)]
pub struct Summary {
    pub taken: Taken,
    /// The workspace, as the host names it.
    pub workspace: String,
    /// When the first walk was taken (before the command started) and this one (RFC 3339).
    pub since: String,
    pub at: String,
    pub counts: Counts,
    pub bytes: Bytes,
    /// In walk order (a directory before what is in it); at most 500 each, the rest only
    /// counted.
    pub created: Vec<Entry>,
    pub changed: Vec<Entry>,
    pub deleted: Vec<Entry>,
    /// Paths left out: the empty read-only directories the sandbox holds missing protected
    /// paths with while sessions of the workspace run (not the session's doing).
    #[serde(default)]
    pub excluded: Vec<String>,
    /// Whether every entry was compared (no walk cut short, no directory left unentered).
    pub complete: bool,
    /// What was not compared, and why, in words.
    #[serde(default)]
    pub unseen: Vec<String>,
}

/// Most entries listed per category; the rest are counted.
pub const MAX_LISTED: usize = 500;
/// Longest path kept, in bytes.
pub const MAX_PATH: usize = 1024;

/// `path` cut to [`MAX_PATH`] bytes on a character boundary, marked with `…` when cut.
pub fn bounded(path: String) -> String {
    if path.len() <= MAX_PATH {
        return path;
    }
    let mut end = MAX_PATH - '…'.len_utf8();
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// A size in words (`12 B`, `3.4 KiB`).
fn size(n: u64) -> String {
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if f < 1024.0 * 1024.0 {
        format!("{:.1} KiB", f / 1024.0)
    } else if f < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", f / 1048576.0)
    } else {
        format!("{:.1} GiB", f / 1073741824.0)
    }
}

fn signed(n: i64) -> String {
    if n < 0 {
        format!("-{}", size(n.unsigned_abs()))
    } else {
        format!("+{}", size(n as u64))
    }
}

impl Summary {
    /// A summary that could not be made: why, in its `unseen`.
    pub fn unavailable(taken: Taken, workspace: &str, since: &str, at: &str, why: String) -> Self {
        let mut s = Summary::empty(taken, workspace, since, at);
        s.complete = false;
        s.unseen.push(why);
        s
    }

    /// A summary of nothing changed, everything seen.
    pub fn empty(taken: Taken, workspace: &str, since: &str, at: &str) -> Self {
        Summary {
            taken,
            workspace: workspace.to_string(),
            since: since.to_string(),
            at: at.to_string(),
            counts: Counts::default(),
            bytes: Bytes::default(),
            created: Vec::new(),
            changed: Vec::new(),
            deleted: Vec::new(),
            excluded: Vec::new(),
            complete: true,
            unseen: Vec::new(),
        }
    }

    /// One line: the counts.
    pub fn headline(&self) -> String {
        let c = &self.counts;
        format!(
            "files: {} created, {} changed, {} deleted{}",
            c.created,
            c.changed,
            c.deleted,
            if self.complete { "" } else { " (incomplete)" }
        )
    }

    /// The summary for a terminal, one line each, every string the session controls
    /// escaped ([`crate::text::printable`]).
    pub fn lines(&self) -> Vec<String> {
        use crate::text::printable as p;
        let mut out = vec![
            self.headline(),
            format!("workspace: {}", p(&self.workspace)),
            format!(
                "from {} to {}{}",
                self.since,
                self.at,
                match self.taken {
                    Taken::End => " (the session's end)",
                    Taken::Now => " (now, while it runs)",
                }
            ),
        ];
        if self.counts.created + self.counts.changed + self.counts.deleted > 0 {
            let b = &self.bytes;
            out.push(format!(
                "bytes: {} created, {} deleted, {} by changes",
                size(b.created),
                size(b.deleted),
                signed(b.changed)
            ));
        }
        let dir = |e: &Entry| if e.kind == Kind::Dir { "/" } else { "" };
        let sized = |n: Option<u64>| n.map(size).unwrap_or_default();
        for (verb, list, count) in [
            ("created", &self.created, self.counts.created),
            ("changed", &self.changed, self.counts.changed),
            ("deleted", &self.deleted, self.counts.deleted),
        ] {
            for e in list {
                let (kind, sizes) = match verb {
                    "created" => (e.kind.name().to_string(), sized(e.size)),
                    "deleted" => (e.kind.name().to_string(), sized(e.old_size)),
                    _ => (
                        match e.old_kind {
                            Some(old) => format!("{}→{}", old.name(), e.kind.name()),
                            None => e.kind.name().to_string(),
                        },
                        match (e.old_size, e.size) {
                            (Some(a), Some(b)) if a == b => size(a),
                            (None, None) => String::new(),
                            (a, b) => {
                                let or_none = |n: Option<u64>| n.map_or_else(|| "-".into(), size);
                                format!("{} → {}", or_none(a), or_none(b))
                            }
                        },
                    ),
                };
                let how = e
                    .change
                    .map(|c| format!(" ({})", c.name()))
                    .unwrap_or_default();
                out.push(format!(
                    "{verb}  {kind:<9} {sizes:>18}  {}{}{how}",
                    p(&e.path),
                    dir(e)
                ));
            }
            let more = count.saturating_sub(list.len() as u64);
            if more > 0 {
                out.push(format!("{verb}  … and {more} more, not listed"));
            }
        }
        for x in &self.excluded {
            out.push(format!(
                "left out: {} (a placeholder the sandbox holds a protected path with)",
                p(x)
            ));
        }
        for u in &self.unseen {
            out.push(format!("not seen: {}", p(u)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_path_is_cut_on_a_character_boundary_and_marked() {
        let long = "é".repeat(MAX_PATH);
        let b = bounded(long);
        assert!(b.len() <= MAX_PATH && b.ends_with('…'), "{}", b.len());
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn a_path_the_session_named_is_escaped_on_a_terminal() {
        let mut s = Summary::unavailable(Taken::Now, "/w", "t0", "t1", "none".into());
        s.counts.created = 1;
        s.created.push(Entry {
            path: "evil\u{1b}]52;c;QQ==\u{7}\u{202e}.txt".into(),
            kind: Kind::File,
            old_kind: None,
            size: Some(3),
            old_size: None,
            change: None,
        });
        let text = s.lines().join("\n");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("\\x1b]52"), "{text}");
    }
}
