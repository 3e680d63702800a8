//! The directories a session writes (its home and its workspace) hold whatever an attacker
//! put there, symbolic links included. Under `no_links` (a cordon host's sessions) every
//! path beneath them is opened relative to a descriptor of the directory, never following
//! a link (openat2 with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`): a
//! grant that is a link, or has one on its way, is skipped with a note saying so; a missing
//! write grant is created one component at a time, never outside the directory.
//!
//! [`create_missing_home_grants`] lives here too: under no_links it creates that way; for a
//! single user who owns the home (links included) it creates the plain way. Nothing here
//! decides what is granted: [`crate::policy`] asks, and notes the answers.

use crate::sys::{self, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_STRICT};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Which directory a path lies beneath, for the words of a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The home directory seen inside.
    Home,
    /// The workspace.
    Workspace,
}

impl Area {
    /// Why a link there was not followed, for notes.
    pub fn why(self) -> &'static str {
        match self {
            Area::Home => "links under a cordon home are not followed",
            Area::Workspace => "links in a cordon workspace are not followed",
        }
    }
}

#[derive(Debug)]
struct Root {
    path: PathBuf,
    fd: OwnedFd,
    area: Area,
}

/// The home and the workspace, each held open (by a descriptor reached without links).
/// Empty unless `no_links`: then every question gets [`Found::Elsewhere`].
#[derive(Debug, Default)]
pub struct Untrusted {
    roots: Vec<Root>,
}

/// Where a path beneath a home or workspace led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// It is not beneath either: resolve it as any other path.
    Elsewhere,
    /// It exists and was reached without a link: its canonical path.
    Path(PathBuf),
    /// Nothing is there.
    Missing,
    /// A link is on its way: `link` is that link (the path itself, or a directory above it).
    Link {
        /// The link met.
        link: PathBuf,
        /// The directory it lies beneath.
        area: Area,
    },
}

/// Opens the directory `path` (absolute) without following any link on it, from `/` down.
/// `ELOOP` means a component is a symbolic link.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    sys::openat2(
        None,
        path,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
}

/// The path an open descriptor refers to, as the kernel names it.
pub fn fd_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The plain components of a relative path; `None` if it has anything else (`..`, a root).
fn plain(rel: &Path) -> Option<Vec<&OsStr>> {
    rel.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

impl Untrusted {
    /// Adds a directory (canonical `path`, held open as `fd`) whose contents are not trusted.
    pub fn add(&mut self, path: PathBuf, fd: OwnedFd, area: Area) {
        self.roots.push(Root { path, fd, area });
    }

    /// The directories added, deepest last.
    pub fn roots(&self) -> impl Iterator<Item = (&Path, Area)> {
        self.roots.iter().map(|r| (r.path.as_path(), r.area))
    }

    /// The deepest directory `p` lies beneath (the workspace may be inside the home).
    fn root_of(&self, p: &Path) -> Option<&Root> {
        self.roots
            .iter()
            .filter(|r| p.starts_with(&r.path))
            .max_by_key(|r| r.path.components().count())
    }

    /// Resolves `p` (absolute, as the profile wrote it once expanded) without following any
    /// link beneath the home or the workspace.
    pub fn resolve(&self, p: &Path) -> Found {
        let Some(root) = self.root_of(p) else {
            return Found::Elsewhere;
        };
        let Some(parts) = p.strip_prefix(&root.path).ok().and_then(plain) else {
            return Found::Missing;
        };
        if parts.is_empty() {
            return Found::Path(root.path.clone());
        }
        let rel: PathBuf = parts.iter().collect();
        match sys::openat2(Some(root.fd.as_fd()), &rel, libc::O_PATH, 0, RESOLVE_STRICT) {
            Ok(_) => Found::Path(root.path.join(rel)),
            Err(e) if sys::is_link_error(&e) => Found::Link {
                link: self.first_link(root, &parts),
                area: root.area,
            },
            Err(_) => Found::Missing,
        }
    }

    /// The first component of `parts` (beneath `root`) that is a link, for the note; the
    /// whole path when the walk cannot tell (it changed meanwhile).
    fn first_link(&self, root: &Root, parts: &[&OsStr]) -> PathBuf {
        let mut prefix = PathBuf::new();
        for part in parts {
            prefix.push(part);
            match sys::openat2(
                Some(root.fd.as_fd()),
                &prefix,
                libc::O_PATH,
                0,
                RESOLVE_STRICT,
            ) {
                Ok(_) => {}
                Err(e) if sys::is_link_error(&e) => return root.path.join(prefix),
                Err(_) => break,
            }
        }
        root.path.join(parts.iter().collect::<PathBuf>())
    }

    /// Creates `p` beneath the home (a directory when `dir`, else an empty file with mode
    /// 0600), one missing component at a time, each created relative to its parent's
    /// descriptor, none through a link. What it creates is given to `owner` when set.
    /// Returns whether anything was created; `Err` says why not.
    pub fn create(&self, p: &Path, dir: bool, owner: Option<(u32, u32)>) -> Result<bool, Refused> {
        let root = self
            .roots
            .iter()
            .find(|r| r.area == Area::Home && p.starts_with(&r.path))
            .ok_or(Refused::Outside)?;
        let parts = p
            .strip_prefix(&root.path)
            .ok()
            .and_then(plain)
            .filter(|p| !p.is_empty())
            .ok_or(Refused::Outside)?;
        let link = |upto: usize| Refused::Link {
            link: root.path.join(parts[..=upto].iter().collect::<PathBuf>()),
            area: root.area,
        };
        let chown =
            |fd: &OwnedFd| owner.map_or(Ok(()), |(uid, gid)| sys::fchown(fd.as_fd(), uid, gid));
        let mut cur = sys::openat2(
            Some(root.fd.as_fd()),
            Path::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            RESOLVE_STRICT,
        )?;
        let mut created = false;
        for (i, name) in parts.iter().enumerate() {
            let name = Path::new(name);
            if i + 1 == parts.len() && !dir {
                match sys::create_new_at(cur.as_fd(), name.as_os_str(), 0o600) {
                    Ok(fd) => {
                        chown(&fd)?;
                        return Ok(true);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(created),
                    Err(e) => return Err(e.into()),
                }
            }
            let next = match sys::openat2(
                Some(cur.as_fd()),
                name,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                RESOLVE_STRICT,
            ) {
                Ok(fd) => fd,
                Err(e) if sys::is_link_error(&e) => return Err(link(i)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    sys::mkdirat(cur.as_fd(), name.as_os_str(), 0o700)?;
                    // Opened for reading (not O_PATH) so that it can be given away; a link
                    // swapped in since the mkdirat is refused here.
                    let fd = sys::openat2(
                        Some(cur.as_fd()),
                        name,
                        libc::O_RDONLY | libc::O_DIRECTORY,
                        0,
                        RESOLVE_STRICT,
                    )
                    .map_err(|e| {
                        if sys::is_link_error(&e) {
                            link(i)
                        } else {
                            e.into()
                        }
                    })?;
                    chown(&fd)?;
                    created = true;
                    fd
                }
                Err(e) => return Err(e.into()),
            };
            cur = next;
        }
        Ok(created)
    }
}

/// Why [`Untrusted::create`] created nothing.
#[derive(Debug)]
pub enum Refused {
    /// The path is not beneath the home.
    Outside,
    /// A link is on its way.
    Link {
        /// The link met.
        link: PathBuf,
        /// The directory it lies beneath.
        area: Area,
    },
    /// A system call failed.
    Io(io::Error),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Self {
        Refused::Io(e)
    }
}

/// How missing write grants under the home are created.
pub struct Creation<'a> {
    /// The home directory seen inside.
    pub home: &'a Path,
    /// The home, held open (under no_links).
    pub untrusted: &'a Untrusted,
    /// Component by component, relative to descriptors, never through a link.
    pub no_links: bool,
    /// Who gets what is created (the identity, when cordon is root).
    pub owner: Option<(u32, u32)>,
}

/// Creates the write grants under the home directory that do not exist yet (a directory
/// when the entry ends with `/`, else an empty private file), so that a tool's state
/// (`~/.claude/`) is writable on its first run. Nothing outside home is ever created.
pub fn create_missing_home_grants(
    list: &[String],
    how: &Creation,
    expand: &dyn Fn(&str) -> String,
    show: &dyn Fn(&Path) -> String,
    notes: &mut Vec<String>,
) {
    for raw in list {
        if !(raw.starts_with("~/") || raw.starts_with("{home}/")) {
            continue;
        }
        let p = PathBuf::from(expand(raw));
        if !p.starts_with(how.home) || p.components().any(|c| c == std::path::Component::ParentDir)
        {
            continue;
        }
        let dir = raw.ends_with('/');
        // An empty file is not valid JSON: the program that owns it would refuse it (an
        // empty ~/.claude.json breaks Claude Code, inside cordon and out).
        if !dir && p.extension().is_some_and(|e| e == "json") {
            if std::fs::symlink_metadata(&p).is_err() {
                notes.push(format!(
                    "did not create {}: an empty file is not valid JSON (grant its directory, or the home, and let the program create it)",
                    show(&p)
                ));
            }
            continue;
        }
        let made = if how.no_links {
            match how.untrusted.create(&p, dir, how.owner) {
                Ok(made) => Ok(made),
                Err(Refused::Link { link, area }) => {
                    notes.push(format!(
                        "did not create {}: {} is a symbolic link; {}",
                        show(&p),
                        show(&link),
                        area.why()
                    ));
                    continue;
                }
                // Paths outside home were passed over above: the home itself is missing.
                Err(Refused::Outside) => {
                    notes.push(format!(
                        "did not create {}: the home directory {} does not exist",
                        p.display(),
                        how.home.display()
                    ));
                    continue;
                }
                Err(Refused::Io(e)) => Err(e),
            }
        } else if std::fs::symlink_metadata(&p).is_ok() {
            Ok(false)
        } else {
            create_following_links(&p, dir, how.owner)
        };
        match made {
            Ok(true) => notes.push(format!(
                "created {} (a write grant that did not exist)",
                p.display()
            )),
            Ok(false) => {}
            Err(e) => notes.push(format!("could not create {}: {e}", p.display())),
        }
    }
}

/// The single-user way (the caller owns its home, links included): the standard library
/// creates the path; what it created is then given to `owner`.
fn create_following_links(p: &Path, dir: bool, owner: Option<(u32, u32)>) -> std::io::Result<bool> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let missing: Vec<PathBuf> = p
        .ancestors()
        .take_while(|a| std::fs::symlink_metadata(a).is_err())
        .map(Path::to_path_buf)
        .collect();
    if dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(p)?;
    } else {
        if let Some(d) = p.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)?;
    }
    if let Some((uid, gid)) = owner {
        for m in &missing {
            std::os::unix::fs::lchown(m, Some(uid), Some(gid))?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A home with a real file, a link to a file outside, a directory reached through a
    /// link, and an outside directory holding a marker.
    fn fixture() -> (tempfile::TempDir, tempfile::TempDir, Untrusted) {
        let home = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("marker"), "outside").unwrap();
        std::fs::write(home.path().join(".real"), "mine").unwrap();
        symlink(
            outside.path().join("marker"),
            home.path().join(".gitconfig"),
        )
        .unwrap();
        symlink(outside.path(), home.path().join(".x")).unwrap();
        let path = std::fs::canonicalize(home.path()).unwrap();
        let mut u = Untrusted::default();
        u.add(path.clone(), open_root(&path).unwrap(), Area::Home);
        (home, outside, u)
    }

    #[test]
    fn a_path_beneath_the_home_is_found_without_links() {
        let (home, _o, u) = fixture();
        let h = std::fs::canonicalize(home.path()).unwrap();
        assert_eq!(u.resolve(&h.join(".real")), Found::Path(h.join(".real")));
        assert_eq!(u.resolve(&h), Found::Path(h.clone()));
        assert_eq!(u.resolve(&h.join(".absent")), Found::Missing);
        assert_eq!(u.resolve(Path::new("/usr/bin")), Found::Elsewhere);
    }

    #[test]
    fn a_link_or_a_link_on_the_way_is_named_and_not_followed() {
        let (home, _o, u) = fixture();
        let h = std::fs::canonicalize(home.path()).unwrap();
        assert_eq!(
            u.resolve(&h.join(".gitconfig")),
            Found::Link {
                link: h.join(".gitconfig"),
                area: Area::Home
            }
        );
        assert_eq!(
            u.resolve(&h.join(".x/marker")),
            Found::Link {
                link: h.join(".x"),
                area: Area::Home
            }
        );
    }

    #[test]
    fn a_missing_grant_is_created_in_the_home_and_never_through_a_link() {
        let (home, outside, u) = fixture();
        let h = std::fs::canonicalize(home.path()).unwrap();
        assert!(u
            .create(&h.join(".tool/state/db.json"), false, None)
            .unwrap());
        assert!(h.join(".tool/state/db.json").is_file());
        assert!(u.create(&h.join(".cache/tool"), true, None).unwrap());
        assert!(h.join(".cache/tool").is_dir());
        assert!(
            !u.create(&h.join(".cache/tool"), true, None).unwrap(),
            "already there"
        );

        assert!(
            matches!(u.create(&h.join(".x/new/file"), false, None), Err(Refused::Link { link, .. }) if link == h.join(".x"))
        );
        assert!(matches!(
            u.create(&h.join(".x"), true, None),
            Err(Refused::Link { .. })
        ));
        assert!(matches!(
            u.create(Path::new("/var/tmp/x"), true, None),
            Err(Refused::Outside)
        ));
        let left: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("marker")],
            "nothing was created outside home"
        );
    }

    #[test]
    fn what_is_created_belongs_to_the_owner_given() {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: giving files away cannot be checked");
            return;
        }
        let (home, _o, u) = fixture();
        let h = std::fs::canonicalize(home.path()).unwrap();
        u.create(
            &h.join(".claude/settings.json"),
            false,
            Some((2_000_000_123, 2_000_000_124)),
        )
        .unwrap();
        for p in [h.join(".claude"), h.join(".claude/settings.json")] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (2_000_000_123, 2_000_000_124),
                "{}",
                p.display()
            );
        }
    }
}
