//! A workspace's tree at one moment, as the summary of files changed compares it: each
//! entry's path (relative, as the bytes the file system holds), kind, permission bits, size,
//! modification and change times and inode, in walk order; and what the walk did not see
//! (directories it did not enter, where it stopped). A plain value: the walk (`walk.rs`)
//! fills it, the diff (`diff.rs`) reads two of them.

use std::cmp::Ordering;
use std::time::Duration;

/// What an entry is. A symbolic link is an entry of its own (its size is its target's
/// length), never what it points to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[schema(as = FileKind)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Link,
    /// A FIFO, a socket or a device node.
    Other,
}

impl Kind {
    /// The kind of a `st_mode`.
    pub fn of_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Link,
            _ => Kind::Other,
        }
    }

    /// Whether its size means something to a reader (a directory's is the file system's
    /// bookkeeping).
    pub fn has_size(self) -> bool {
        matches!(self, Kind::File | Kind::Link)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Link => "link",
            Kind::Other => "other",
        }
    }
}

/// One entry as `fstatat(AT_SYMLINK_NOFOLLOW)` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// The permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (the writer can set it).
    pub mtime_ns: i64,
    /// Inode change time, nanoseconds since the epoch (only the kernel sets it).
    pub ctime_ns: i64,
    pub ino: u64,
}

impl Entry {
    /// The entry a `stat` describes.
    pub fn of_stat(st: &libc::stat) -> Entry {
        Entry {
            kind: Kind::of_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            size: st.st_size.max(0) as u64,
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec,
            ctime_ns: st.st_ctime.saturating_mul(1_000_000_000) + st.st_ctime_nsec,
            ino: st.st_ino,
        }
    }
}

/// Why the walk did not go into a directory (it is an entry; what is beneath it is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEntered {
    /// Deeper than the walk goes.
    Depth,
    /// A mount point, or another file system (a different device).
    Device,
    /// It could not be opened or read.
    Unreadable,
    /// It holds more names than the walk may hold at once.
    Crowded,
    /// It was replaced while the walk looked at it.
    Changing,
}

impl NotEntered {
    pub fn words(self, depth: usize, crowd: usize) -> String {
        match self {
            NotEntered::Depth => format!("deeper than {depth} levels"),
            NotEntered::Device => "a mount point or another file system".into(),
            NotEntered::Unreadable => "could not be read".into(),
            NotEntered::Crowded => format!("more than {crowd} entries to list at once"),
            NotEntered::Changing => "replaced while it was being read".into(),
        }
    }
}

/// Why a walk stopped before the end of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// It reached the most entries a walk records.
    Entries,
    /// It ran out of time.
    Time,
}

/// A tree at one moment. Entries are in walk order, which is [`order`]: a directory, then
/// everything beneath it, then its next sibling; names byte by byte.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    entries: Vec<(Box<[u8]>, Entry)>,
    not_entered: Vec<(Box<[u8]>, NotEntered)>,
    cut: Option<Cut>,
    /// How long the walk took.
    pub elapsed: Duration,
}

/// The order of a walk: component by component, names byte by byte. Comparing the joined
/// paths with `/` as the lowest byte gives it (names hold neither `/` nor NUL), so that
/// `a/b` sorts before `a-b`, as `a` does.
pub fn order(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: &u8| if *c == b'/' { 0u16 } else { u16::from(*c) + 1 };
    a.iter().map(key).cmp(b.iter().map(key))
}

/// Whether `path` lies beneath the directory `dir` (not `dir` itself).
pub fn beneath(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

impl Snapshot {
    /// Adds the next entry of the walk.
    pub fn push(&mut self, path: Vec<u8>, entry: Entry) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|(last, _)| order(last, &path) == Ordering::Less));
        self.entries.push((path.into_boxed_slice(), entry));
    }

    /// Notes that the directory `path` (an entry) was not gone into.
    pub fn not_entered(&mut self, path: &[u8], why: NotEntered) {
        self.not_entered.push((path.into(), why));
    }

    /// Notes that the walk stopped after its last entry.
    pub fn stop(&mut self, why: Cut) {
        self.cut = Some(why);
    }

    pub fn entries(&self) -> &[(Box<[u8]>, Entry)] {
        &self.entries
    }

    pub fn skipped(&self) -> &[(Box<[u8]>, NotEntered)] {
        &self.not_entered
    }

    pub fn cut(&self) -> Option<Cut> {
        self.cut
    }

    /// The last path the walk saw, when it stopped early: what comes after it in walk
    /// order was not seen.
    pub fn horizon(&self) -> Option<&[u8]> {
        self.cut?;
        Some(self.entries.last().map(|(p, _)| &p[..]).unwrap_or(b""))
    }

    /// A snapshot of these entries in any order (tests).
    #[cfg(test)]
    pub fn of(mut entries: Vec<(&str, Entry)>) -> Snapshot {
        entries.sort_by(|a, b| order(a.0.as_bytes(), b.0.as_bytes()));
        let mut s = Snapshot::default();
        for (p, e) in entries {
            s.push(p.as_bytes().to_vec(), e);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_puts_a_directory_s_contents_right_after_it() {
        let mut paths = vec!["a-b", "a/b", "a", "ab", "a/b/c", "b", "a/a"];
        paths.sort_by(|x, y| order(x.as_bytes(), y.as_bytes()));
        assert_eq!(paths, ["a", "a/a", "a/b", "a/b/c", "a-b", "ab", "b"]);
        assert!(beneath(b"a/b", b"a") && !beneath(b"ab", b"a") && !beneath(b"a", b"a"));
    }
}
