//! Two snapshots of a workspace compared: what was created, changed (and how) and deleted,
//! in walk order, bounded, with what neither walk could see said in words. Pure.
//!
//! "Changed" is decided from what `stat` shows, without reading content (cordon keeps no
//! copy of a workspace to compare with): another kind of entry; a different size or
//! modification time (content); another inode (replaced); other permission bits (mode);
//! or only the inode change time moved (metadata: links, owner, extended attributes, or
//! content rewritten with its time set back, which the change time, set by the kernel
//! alone, still betrays). A directory is changed only by type, replacement or mode: its
//! size and times move with its entries, which are listed themselves.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::snapshot::{beneath, order, Entry, NotEntered, Snapshot};
use super::summary::{self, Bytes, Change, Counts, Summary, Taken, MAX_LISTED};
use super::walk::Limits;

/// What a diff needs besides the two snapshots.
pub struct Context<'a> {
    pub taken: Taken,
    pub workspace: &'a str,
    /// When the first and the second walk were taken (RFC 3339).
    pub since: &'a str,
    pub at: &'a str,
    /// Paths (relative) where the sandbox may hold a missing protected path with an empty
    /// directory: such a directory created or deleted is left out, and said to be.
    pub placeholders: &'a BTreeSet<Vec<u8>>,
    /// A path as the summary shows it (see [`summary::Entry::path`]).
    pub name: &'a dyn Fn(&[u8]) -> String,
    /// The bounds the walks had (for their words).
    pub limits: &'a Limits,
}

/// How `old` became `new`, if it changed at all (see the module's words).
pub fn classify(old: &Entry, new: &Entry) -> Option<Change> {
    if old.kind != new.kind {
        return Some(Change::Type);
    }
    if old.kind == super::snapshot::Kind::Dir {
        return if old.ino != new.ino {
            Some(Change::Replaced)
        } else if old.mode != new.mode {
            Some(Change::Mode)
        } else {
            None
        };
    }
    if old.size != new.size || old.mtime_ns != new.mtime_ns {
        Some(Change::Content)
    } else if old.ino != new.ino {
        Some(Change::Replaced)
    } else if old.mode != new.mode {
        Some(Change::Mode)
    } else if old.ctime_ns != new.ctime_ns {
        Some(Change::Metadata)
    } else {
        None
    }
}

/// Most directories not entered that are named one by one; the rest are counted.
const MAX_NOT_ENTERED_NAMED: usize = 20;

/// Which snapshot an entry of the merge comes from.
enum Side<'s> {
    Before(&'s [u8], &'s Entry),
    After(&'s [u8], &'s Entry),
    Both(&'s [u8], &'s Entry, &'s Entry),
}

impl<'s> Side<'s> {
    fn path(&self) -> &'s [u8] {
        match self {
            Side::Before(p, _) | Side::After(p, _) | Side::Both(p, _, _) => p,
        }
    }
}

/// Whether the entry at `i` of `snap` is an empty directory that was entered (so known to
/// be empty): what a placeholder is.
fn empty_dir(snap: &Snapshot, i: usize) -> bool {
    let entries = snap.entries();
    let (path, e) = &entries[i];
    e.kind == super::snapshot::Kind::Dir
        && !entries.get(i + 1).is_some_and(|(p, _)| beneath(p, path))
        && !snap.skipped().iter().any(|(p, _)| p == path)
}

/// The summary of what changed from `before` to `after`.
pub fn diff(before: &Snapshot, after: &Snapshot, cx: &Context) -> Summary {
    let mut s = Summary::empty(cx.taken, cx.workspace, cx.since, cx.at);
    let mut counts = Counts::default();
    let mut bytes = Bytes::default();
    let sized = |e: &Entry| e.kind.has_size().then_some(e.size);

    // Nothing past where either walk stopped is compared.
    let horizon = match (before.horizon(), after.horizon()) {
        (Some(a), Some(b)) => Some(if order(a, b) == Ordering::Less { a } else { b }),
        (a, b) => a.or(b),
    };
    let skipped: BTreeMap<&[u8], NotEntered> = before
        .skipped()
        .iter()
        .chain(after.skipped())
        .map(|(p, why)| (&p[..], *why))
        .collect();

    let (a, b) = (before.entries(), after.entries());
    let (mut i, mut j) = (0, 0);
    // A directory one walk did not enter: nothing beneath it is compared.
    let mut skip_root: Option<&[u8]> = None;
    loop {
        let side = match (a.get(i), b.get(j)) {
            (None, None) => break,
            (Some((p, e)), None) => Side::Before(p, e),
            (None, Some((p, e))) => Side::After(p, e),
            (Some((p, e)), Some((q, f))) => match order(p, q) {
                Ordering::Less => Side::Before(p, e),
                Ordering::Greater => Side::After(q, f),
                Ordering::Equal => Side::Both(p, e, f),
            },
        };
        let path = side.path();
        if horizon.is_some_and(|h| order(path, h) == Ordering::Greater) {
            break;
        }
        let (ai, bj) = (i, j);
        match side {
            Side::Before(..) => i += 1,
            Side::After(..) => j += 1,
            Side::Both(..) => (i, j) = (i + 1, j + 1),
        }
        if let Some(root) = skip_root {
            if beneath(path, root) {
                continue;
            }
            skip_root = None;
        }
        if skipped.contains_key(path) {
            skip_root = Some(path);
        }
        let placeholder = cx.placeholders.contains(path);
        match side {
            Side::Before(p, e) => {
                if placeholder && empty_dir(before, ai) {
                    s.excluded.push((cx.name)(p));
                    continue;
                }
                counts.deleted += 1;
                bytes.deleted += sized(e).unwrap_or(0);
                if s.deleted.len() < MAX_LISTED {
                    s.deleted.push(summary::Entry {
                        path: (cx.name)(p),
                        kind: e.kind,
                        old_kind: None,
                        size: None,
                        old_size: sized(e),
                        change: None,
                    });
                }
            }
            Side::After(p, e) => {
                if placeholder && empty_dir(after, bj) {
                    s.excluded.push((cx.name)(p));
                    continue;
                }
                counts.created += 1;
                bytes.created += sized(e).unwrap_or(0);
                if s.created.len() < MAX_LISTED {
                    s.created.push(summary::Entry {
                        path: (cx.name)(p),
                        kind: e.kind,
                        old_kind: None,
                        size: sized(e),
                        old_size: None,
                        change: None,
                    });
                }
            }
            Side::Both(p, old, new) => {
                let Some(change) = classify(old, new) else {
                    continue;
                };
                counts.changed += 1;
                bytes.changed += sized(new).unwrap_or(0) as i64 - sized(old).unwrap_or(0) as i64;
                if s.changed.len() < MAX_LISTED {
                    s.changed.push(summary::Entry {
                        path: (cx.name)(p),
                        kind: new.kind,
                        old_kind: (old.kind != new.kind).then_some(old.kind),
                        size: sized(new),
                        old_size: sized(old),
                        change: Some(change),
                    });
                }
            }
        }
    }
    s.counts = counts;
    s.bytes = bytes;

    for (snap, which) in [
        (before, "the walk before the command started"),
        (after, "this walk"),
    ] {
        if let (Some(why), Some(last)) = (snap.cut(), snap.horizon()) {
            let reason = match why {
                super::snapshot::Cut::Entries => {
                    format!(
                        "reached {} entries, the most a walk records",
                        cx.limits.entries
                    )
                }
                super::snapshot::Cut::Time => {
                    format!("ran {} s, the longest a walk may", cx.limits.time.as_secs())
                }
            };
            s.unseen.push(format!(
                "{which} stopped after {} ({reason}): nothing after it in name order is compared",
                if last.is_empty() {
                    "its start".to_string()
                } else {
                    (cx.name)(last)
                }
            ));
        }
    }
    for (path, why) in skipped.iter().take(MAX_NOT_ENTERED_NAMED) {
        s.unseen.push(format!(
            "{}/: not entered ({}): nothing in it is compared",
            (cx.name)(path),
            why.words(cx.limits.depth, cx.limits.entries)
        ));
    }
    if skipped.len() > MAX_NOT_ENTERED_NAMED {
        s.unseen.push(format!(
            "… and {} more directories not entered",
            skipped.len() - MAX_NOT_ENTERED_NAMED
        ));
    }
    s.complete = s.unseen.is_empty();
    s
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::{Cut, Kind};
    use super::*;

    fn e(kind: Kind, size: u64, mtime: i64, ino: u64) -> Entry {
        Entry {
            kind,
            mode: 0o644,
            size,
            mtime_ns: mtime,
            ctime_ns: mtime,
            ino,
        }
    }
    fn file(size: u64, mtime: i64, ino: u64) -> Entry {
        e(Kind::File, size, mtime, ino)
    }
    fn dir(ino: u64) -> Entry {
        e(Kind::Dir, 4096, 1, ino)
    }

    fn limits() -> Limits {
        Limits {
            entries: 10,
            depth: 4,
            time: std::time::Duration::from_secs(5),
        }
    }

    fn run(before: &Snapshot, after: &Snapshot, placeholders: &[&str]) -> Summary {
        let ph: BTreeSet<Vec<u8>> = placeholders.iter().map(|p| p.as_bytes().to_vec()).collect();
        let name = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        diff(
            before,
            after,
            &Context {
                taken: Taken::End,
                workspace: "/w",
                since: "t0",
                at: "t1",
                placeholders: &ph,
                name: &name,
                limits: &limits(),
            },
        )
    }

    fn paths(list: &[summary::Entry]) -> Vec<&str> {
        list.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn created_changed_and_deleted_files_are_listed_in_walk_order_with_their_sizes() {
        let before = Snapshot::of(vec![
            ("keep.txt", file(5, 10, 1)),
            ("change.txt", file(4, 10, 2)),
            ("gone.txt", file(6, 10, 3)),
            ("src", dir(4)),
            ("src/old.rs", file(100, 10, 5)),
        ]);
        let after = Snapshot::of(vec![
            ("keep.txt", file(5, 10, 1)),
            ("change.txt", file(17, 20, 2)),
            ("new.txt", file(12, 20, 6)),
            ("src", dir(4)),
            ("src/old.rs", file(100, 10, 5)),
            ("src/new", dir(7)),
            ("src/new/a.rs", file(3, 20, 8)),
        ]);
        let s = run(&before, &after, &[]);
        assert_eq!(paths(&s.created), ["new.txt", "src/new", "src/new/a.rs"]);
        assert_eq!(s.created[0].size, Some(12));
        assert_eq!(s.created[1].size, None, "a directory's size means nothing");
        assert_eq!(paths(&s.changed), ["change.txt"]);
        assert_eq!(
            (
                s.changed[0].old_size,
                s.changed[0].size,
                s.changed[0].change
            ),
            (Some(4), Some(17), Some(Change::Content))
        );
        assert_eq!(paths(&s.deleted), ["gone.txt"]);
        assert_eq!(s.deleted[0].old_size, Some(6));
        assert_eq!(
            s.counts,
            Counts {
                created: 3,
                changed: 1,
                deleted: 1
            }
        );
        assert_eq!(
            s.bytes,
            Bytes {
                created: 15,
                deleted: 6,
                changed: 13
            }
        );
        assert!(s.complete && s.unseen.is_empty() && s.excluded.is_empty());
    }

    #[test]
    fn a_file_that_became_a_directory_is_a_type_change_and_its_contents_are_created() {
        let before = Snapshot::of(vec![("x", file(3, 1, 1))]);
        let after = Snapshot::of(vec![("x", dir(2)), ("x/inner", file(1, 2, 3))]);
        let s = run(&before, &after, &[]);
        assert_eq!(paths(&s.changed), ["x"]);
        let c = &s.changed[0];
        assert_eq!(
            (c.old_kind, c.kind, c.old_size, c.size, c.change),
            (
                Some(Kind::File),
                Kind::Dir,
                Some(3),
                None,
                Some(Change::Type)
            )
        );
        assert_eq!(paths(&s.created), ["x/inner"]);
    }

    #[test]
    fn what_stat_cannot_tell_apart_is_named_for_what_it_shows() {
        let old = file(10, 100, 1);
        assert_eq!(classify(&old, &old), None);
        assert_eq!(
            classify(&old, &file(10, 200, 1)),
            Some(Change::Content),
            "touched"
        );
        assert_eq!(
            classify(&old, &file(10, 100, 2)),
            Some(Change::Replaced),
            "moved over it with its time kept"
        );
        let chmod = Entry { mode: 0o755, ..old };
        assert_eq!(classify(&old, &chmod), Some(Change::Mode));
        let hidden = Entry {
            ctime_ns: 300,
            ..old
        };
        assert_eq!(
            classify(&old, &hidden),
            Some(Change::Metadata),
            "rewritten with its size and time put back: only the change time says so"
        );
        // A directory's times move with its entries: not a change of its own.
        let d = dir(5);
        let busier = Entry {
            size: 8192,
            mtime_ns: 9,
            ctime_ns: 9,
            ..d
        };
        assert_eq!(classify(&d, &busier), None);
        assert_eq!(classify(&d, &dir(6)), Some(Change::Replaced));
    }

    #[test]
    fn a_link_is_compared_as_itself() {
        let link = |size, ino| e(Kind::Link, size, 1, ino);
        let before = Snapshot::of(vec![("l", link(8, 1))]);
        let after = Snapshot::of(vec![("l", link(11, 2))]);
        let s = run(&before, &after, &[]);
        assert_eq!(
            (s.changed[0].kind, s.changed[0].old_size, s.changed[0].size),
            (Kind::Link, Some(8), Some(11))
        );
    }

    #[test]
    fn listings_are_bounded_and_the_rest_counted() {
        let before = Snapshot::default();
        let names: Vec<String> = (0..MAX_LISTED + 7).map(|i| format!("f{i:04}")).collect();
        let after = Snapshot::of(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), file(1, 1, i as u64)))
                .collect(),
        );
        let s = run(&before, &after, &[]);
        assert_eq!(s.created.len(), MAX_LISTED);
        assert_eq!(s.counts.created, MAX_LISTED as u64 + 7);
        assert_eq!(s.bytes.created, MAX_LISTED as u64 + 7);
        assert!(s.lines().iter().any(|l| l.contains("and 7 more")));
    }

    #[test]
    fn nothing_past_where_a_walk_stopped_is_compared_and_the_summary_says_so() {
        let mut before = Snapshot::of(vec![("a", file(1, 1, 1)), ("b", file(1, 1, 2))]);
        before.stop(Cut::Entries);
        // After the first walk's last entry: unknown before, so not "created".
        let after = Snapshot::of(vec![
            ("a", file(1, 1, 1)),
            ("b", file(2, 2, 2)),
            ("c", file(1, 1, 3)),
        ]);
        let s = run(&before, &after, &[]);
        assert_eq!(paths(&s.changed), ["b"]);
        assert!(s.created.is_empty(), "{:?}", s.created);
        assert!(!s.complete);
        assert!(s.unseen[0].contains("stopped after b"), "{:?}", s.unseen);
    }

    #[test]
    fn beneath_a_directory_either_walk_did_not_enter_nothing_is_compared() {
        let mut before = Snapshot::of(vec![("m", dir(1)), ("n", file(1, 1, 2))]);
        before.not_entered(b"m", NotEntered::Device);
        let after = Snapshot::of(vec![
            ("m", dir(1)),
            ("m/inside", file(1, 1, 3)),
            ("n", file(1, 1, 2)),
            ("o", file(1, 1, 4)),
        ]);
        let s = run(&before, &after, &[]);
        assert_eq!(paths(&s.created), ["o"]);
        assert!(!s.complete);
        assert!(
            s.unseen[0].starts_with("m/: not entered (a mount point"),
            "{:?}",
            s.unseen
        );
    }

    #[test]
    fn an_empty_placeholder_directory_is_left_out_and_named_but_not_one_with_contents() {
        let before = Snapshot::default();
        let after = Snapshot::of(vec![
            (".git", dir(1)),
            (".vscode", dir(2)),
            (".vscode/tasks.json", file(2, 1, 3)),
        ]);
        let s = run(&before, &after, &[".git", ".vscode"]);
        assert_eq!(s.excluded, [".git"]);
        assert_eq!(paths(&s.created), [".vscode", ".vscode/tasks.json"]);
        assert!(s.complete, "left out and said, not unseen");
        // And the other way: one there at the start and gone at the end.
        let s = run(
            &Snapshot::of(vec![(".git", dir(1))]),
            &Snapshot::default(),
            &[".git"],
        );
        assert_eq!((s.excluded.len(), s.deleted.len()), (1, 0));
    }
}
