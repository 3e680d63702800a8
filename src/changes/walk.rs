//! The walk: a workspace read into a [`Snapshot`] by the host, while the session that owns it
//! may be changing it. Everything is reached from the workspace's descriptor down, one name
//! at a time ([`crate::nofollow`]): `fstatat(AT_SYMLINK_NOFOLLOW)` describes an entry (a
//! link is an entry of its own), a directory is opened with `O_NOFOLLOW | O_DIRECTORY`
//! beneath its parent without following a link or crossing a mount point, and what was
//! opened is checked to be what was described (a directory swapped for something else in
//! between is not entered). Every count the session controls is bounded: entries recorded,
//! names held at once, depth, time; names are at most 255 bytes (the kernel's NAME_MAX).
//! What the walk does not enter or does not reach is noted in the snapshot, never skipped
//! silently.

use std::ffi::OsString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::snapshot::{Cut, Entry, Kind, NotEntered, Snapshot};
use crate::nofollow::{self, FdRef};

/// How far a walk goes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most entries recorded (and most names held at once, listed but not yet looked at).
    pub entries: usize,
    /// Directories this deep are listed but not entered.
    pub depth: usize,
    /// Longest a walk runs.
    pub time: Duration,
}

impl Limits {
    /// About 25 MB of snapshot for a session's life at most (typically a few hundred KB);
    /// a session's start waits at most 5 s for its first walk (most workspaces take a few
    /// milliseconds).
    pub const DEFAULT: Limits = Limits {
        entries: 200_000,
        depth: 64,
        time: Duration::from_secs(5),
    };
}

/// A directory being read: its descriptor, its path, the names still to look at.
struct Frame {
    dir: OwnedFd,
    prefix: Vec<u8>,
    names: std::vec::IntoIter<OsString>,
    /// The depth of its entries (the workspace's own are at 1).
    depth: usize,
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        p.extend_from_slice(prefix);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn sorted(mut names: Vec<OsString>) -> std::vec::IntoIter<OsString> {
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names.into_iter()
}

/// Why the directory `name` in `dir` (described by `st`) cannot be entered, or it opened.
fn enter(dir: BorrowedFd<'_>, name: &Path, st: &libc::stat) -> Result<OwnedFd, NotEntered> {
    let fd = nofollow::open_subdir(dir, name).map_err(|e| match e.raw_os_error() {
        Some(libc::EXDEV) => NotEntered::Device,
        // A link or something else stands there now.
        Some(libc::ELOOP | libc::ENOTDIR | libc::ENOENT) => NotEntered::Changing,
        _ => NotEntered::Unreadable,
    })?;
    let now = nofollow::stat(fd.as_fd_ref()).map_err(|_| NotEntered::Unreadable)?;
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
        return Err(NotEntered::Changing);
    }
    Ok(fd)
}

/// Walks the directory `root` (the workspace) into a snapshot, within `limits`. Fails only
/// when the workspace itself cannot be read.
pub fn walk(root: BorrowedFd<'_>, limits: &Limits) -> io::Result<Snapshot> {
    let started = Instant::now();
    let mut snap = Snapshot::default();
    let root_dev = nofollow::stat(root)?.st_dev;
    let top = nofollow::open_beneath(root, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let names = nofollow::names(top.as_fd_ref(), limits.entries)?.ok_or_else(|| {
        io::Error::other(format!(
            "the workspace holds more than {} entries at its top",
            limits.entries
        ))
    })?;
    // Names listed and not yet looked at, across every directory being read.
    let mut pending = names.len();
    let mut stack = vec![Frame {
        dir: top,
        prefix: Vec::new(),
        names: sorted(names),
        depth: 1,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.next() else {
            stack.pop();
            continue;
        };
        pending -= 1;
        if snap.entries().len() >= limits.entries {
            snap.stop(Cut::Entries);
            break;
        }
        if started.elapsed() >= limits.time {
            snap.stop(Cut::Time);
            break;
        }
        let path = join(&frame.prefix, name.as_bytes());
        let st = match nofollow::stat_at(frame.dir.as_fd_ref(), Path::new(&name)) {
            Ok(st) => st,
            // Gone since its directory was listed: as if listed a moment later.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            // The directory cannot be searched (a host that is not root, a mode the session
            // set): nothing in it is compared.
            Err(e) if frame.prefix.is_empty() => return Err(e),
            Err(_) => {
                pending -= frame.names.len();
                let prefix = std::mem::take(&mut frame.prefix);
                stack.pop();
                snap.not_entered(&prefix, NotEntered::Unreadable);
                continue;
            }
        };
        let entry = Entry::of_stat(&st);
        if entry.kind != Kind::Dir {
            snap.push(path, entry);
            continue;
        }
        let depth = frame.depth;
        let opened = if depth >= limits.depth {
            Err(NotEntered::Depth)
        } else if st.st_dev != root_dev {
            Err(NotEntered::Device)
        } else {
            enter(frame.dir.as_fd_ref(), Path::new(&name), &st)
        };
        let listed = opened.and_then(|fd| {
            // What the walk may hold at once bounds what one directory may make it read.
            match nofollow::names(fd.as_fd_ref(), limits.entries.saturating_sub(pending)) {
                Ok(Some(list)) => Ok((fd, list)),
                Ok(None) => Err(NotEntered::Crowded),
                Err(_) => Err(NotEntered::Unreadable),
            }
        });
        snap.push(path.clone(), entry);
        match listed {
            Ok((dir, list)) => {
                pending += list.len();
                stack.push(Frame {
                    dir,
                    prefix: path,
                    names: sorted(list),
                    depth: depth + 1,
                });
            }
            Err(why) => snap.not_entered(&path, why),
        }
    }
    snap.elapsed = started.elapsed();
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn walked(dir: &Path, limits: &Limits) -> Snapshot {
        let root = nofollow::open_root(dir).unwrap();
        walk(root.as_fd_ref(), limits).unwrap()
    }

    fn paths(s: &Snapshot) -> Vec<String> {
        s.entries()
            .iter()
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    #[test]
    fn a_link_planted_at_any_level_is_an_entry_of_its_own_never_followed() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("secret/deeper")).unwrap();
        std::fs::write(outside.path().join("secret/key"), "k").unwrap();
        std::fs::create_dir_all(ws.path().join("a/b/c")).unwrap();
        std::fs::write(ws.path().join("a/b/c/file"), "12345").unwrap();
        let target = outside.path().join("secret");
        for at in ["top", "a/mid", "a/b/c/deep"] {
            symlink(&target, ws.path().join(at)).unwrap();
        }
        symlink(outside.path().join("secret/key"), ws.path().join("a/b/key")).unwrap();
        let s = walked(ws.path(), &Limits::DEFAULT);
        assert_eq!(
            paths(&s),
            [
                "a",
                "a/b",
                "a/b/c",
                "a/b/c/deep",
                "a/b/c/file",
                "a/b/key",
                "a/mid",
                "top"
            ]
        );
        let kind = |p: &str| {
            s.entries()
                .iter()
                .find(|(q, _)| &q[..] == p.as_bytes())
                .map(|(_, e)| *e)
                .unwrap()
        };
        for link in ["top", "a/mid", "a/b/c/deep"] {
            let e = kind(link);
            assert_eq!(e.kind, Kind::Link, "{link}");
            assert_eq!(
                e.size,
                target.as_os_str().len() as u64,
                "{link}: the link's own size, its target's length"
            );
        }
        assert_eq!(kind("a/b/c/file").size, 5);
        assert!(s.skipped().is_empty() && s.cut().is_none());
    }

    #[test]
    fn a_directory_swapped_for_a_link_is_not_entered() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(ws.path().join("d")).unwrap();
        let root = nofollow::open_root(ws.path()).unwrap();
        let st = nofollow::stat_at(root.as_fd_ref(), Path::new("d")).unwrap();
        // Between the walk's look and its open, the session puts a link in its place.
        std::fs::remove_dir(ws.path().join("d")).unwrap();
        symlink(outside.path(), ws.path().join("d")).unwrap();
        assert_eq!(
            enter(root.as_fd_ref(), Path::new("d"), &st).err(),
            Some(NotEntered::Changing)
        );
        // Or another directory: what was described is not what would be read.
        std::fs::remove_file(ws.path().join("d")).unwrap();
        std::fs::create_dir(ws.path().join("d")).unwrap();
        let st_other = nofollow::stat_at(root.as_fd_ref(), Path::new("d")).unwrap();
        if st_other.st_ino != st.st_ino {
            assert_eq!(
                enter(root.as_fd_ref(), Path::new("d"), &st).err(),
                Some(NotEntered::Changing)
            );
        }
    }

    #[test]
    fn depth_entries_and_crowded_directories_are_bounded_and_noted() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("1/2/3/4/5")).unwrap();
        let s = walked(
            ws.path(),
            &Limits {
                depth: 3,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(paths(&s), ["1", "1/2", "1/2/3"]);
        assert_eq!(
            s.skipped(),
            &[(b"1/2/3".to_vec().into_boxed_slice(), NotEntered::Depth)]
        );

        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir(ws.path().join("crowd")).unwrap();
        for i in 0..20 {
            std::fs::write(ws.path().join(format!("crowd/f{i:02}")), "x").unwrap();
        }
        std::fs::write(ws.path().join("z"), "x").unwrap();
        let s = walked(
            ws.path(),
            &Limits {
                entries: 10,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(paths(&s), ["crowd", "z"]);
        assert_eq!(s.skipped()[0].1, NotEntered::Crowded);
    }

    #[test]
    fn a_walk_past_its_bound_of_entries_stops_and_says_where() {
        let ws = tempfile::tempdir().unwrap();
        for d in ["a", "b"] {
            std::fs::create_dir(ws.path().join(d)).unwrap();
            for i in 0..3 {
                std::fs::write(ws.path().join(format!("{d}/{i}")), "x").unwrap();
            }
        }
        let limits = |entries| Limits {
            entries,
            ..Limits::DEFAULT
        };
        let whole = walked(ws.path(), &limits(8));
        assert_eq!((whole.entries().len(), whole.cut()), (8, None), "8 fit 8");
        let s = walked(ws.path(), &limits(5));
        assert_eq!(paths(&s), ["a", "a/0", "a/1", "a/2", "b"]);
        assert_eq!(s.cut(), Some(Cut::Entries));
        assert_eq!(s.horizon(), Some(&b"b"[..]));
        // A top holding more names than a walk may hold cannot be walked at all.
        let root = nofollow::open_root(ws.path()).unwrap();
        assert!(walk(root.as_fd_ref(), &limits(1)).is_err());
    }
}
