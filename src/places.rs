//! A user's places on the host: their home (HOME in their sessions, `~` in their profiles)
//! and their workspaces, each under a root the host owns (`<root>/<user name>`).
//!
//! When the host runs as root, user N's sessions run as uid and gid `uid_base + N`, which
//! owns that user's home and workspaces (0700): other users' files and the host's are then
//! kept apart by ordinary permissions as well as by Landlock. When the host runs as a
//! normal account, sessions run as that account and the places are its own.
//!
//! Sessions write into these trees, so nothing here follows a link: every name is opened
//! beneath a directory descriptor ([`crate::nofollow`]), checked through it (type, owner)
//! and used through it; a link where a workspace should be is refused.
//!
//! A workspace may also be a real path beneath a root the configuration grants
//! (`[workspaces]`): [`grants`].

mod grants;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::config::{Config, MAX_USER_ID};
use crate::nofollow::{self, FdRef};
use crate::store::User;

/// Why a place could not be prepared. Each names the path and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    /// Not one plain name (letters, digits, `.`, `_`, `-`).
    #[error("\"{0}\" is not a workspace name (one name of letters, digits, . _ -)")]
    BadName(String),
    /// A symbolic link where a directory should be.
    #[error("{} is a symbolic link; cordon does not follow links in workspaces and homes", .0.display())]
    Link(PathBuf),
    /// Owned by another account than the one the user's sessions run as.
    #[error("{} belongs to uid {uid}, not to the session's uid {expected}; if it is this user's, chown -R {expected}:{expected} it", .path.display())]
    Foreign {
        path: PathBuf,
        uid: u32,
        expected: u32,
    },
    /// A path not taken as a workspace: why, and the roots this user may name.
    #[error("{}: {why}; {}", .path.display(), granted_words(.granted, .user, .role))]
    NotGranted {
        path: PathBuf,
        why: grants::Refusal,
        granted: Vec<PathBuf>,
        user: String,
        role: String,
    },
    /// A granted directory the session's account may not read and write.
    #[error("{} belongs to uid {uid} and is not readable and writable by the session's account (uid {}, gid {}); cordon does not change a project's owner: give that group access (chgrp -R {} {path} && chmod -R g+rwX {path}), or start the session elsewhere", .path.display(), .account.uid, .account.gid, .account.gid, path = .path.display())]
    NoAccess {
        path: PathBuf,
        uid: u32,
        account: Account,
    },
    /// The host could not create or open it (the words keep the system's reason).
    #[error("{0}")]
    Io(String),
}

type Result<T> = std::result::Result<T, PlaceError>;

/// The roots a user may name, and where an admin changes them.
fn granted_words(granted: &[PathBuf], user: &str, role: &str) -> String {
    let list = if granted.is_empty() {
        "none".to_string()
    } else {
        granted
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("the workspace roots granted to you: {list} (an admin grants more in the configuration's [workspaces] users.{user} or roles.{role}); a plain name is a folder of your own workspace area")
}

fn io<'a>(what: &str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PlaceError + 'a {
    let what = what.to_string();
    move |e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            PlaceError::Link(path.to_path_buf())
        } else {
            PlaceError::Io(format!("{what} {}: {e}", path.display()))
        }
    }
}

/// The account a user's sessions run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// Where users' homes and workspaces are, and whose they are.
#[derive(Debug, Clone)]
pub struct Places {
    workspaces: PathBuf,
    homes: PathBuf,
    /// Set when the host runs as root: sessions get uids of their own.
    uid_base: Option<u32>,
    /// `[workspaces]`: the path roots users may name.
    grants: crate::config::WorkspaceGrants,
    /// The embedded host's own user and the directory it started in.
    local: Option<(String, PathBuf)>,
}

/// Where a removed user's places are kept (in each root; user names cannot start with a dot).
const REMOVED: &str = ".removed";

impl Places {
    pub fn new(config: &Config) -> Places {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        Places {
            workspaces: config.workspace_root.clone(),
            homes: config.home_root.clone(),
            uid_base: root.then_some(config.uid_base),
            grants: config.workspace_grants.clone(),
            local: config.local_workspace.clone(),
        }
    }

    /// The workspace a session asks for: none (the embedded host's starting directory for
    /// its own user, else the user's workspace area), a plain name (a folder of that area)
    /// or an absolute path (beneath a granted root).
    pub fn requested_workspace(&self, user: &User, asked: Option<&str>) -> Result<PathBuf> {
        match asked.filter(|a| !a.is_empty()) {
            None => match self.default_workspace(user) {
                Some(dir) => Ok(dir),
                None => self.workspace(user, None),
            },
            Some(a) if a.starts_with('/') => self.granted_workspace(user, Path::new(a)),
            Some(name) => self.workspace(user, Some(name)),
        }
    }

    /// The embedded host's starting directory, for its own user, when their sessions' account
    /// may use it (as root they run as a uid of their own: a directory only root may write
    /// leaves them the workspace area instead).
    pub fn default_workspace(&self, user: &User) -> Option<PathBuf> {
        let (name, dir) = self.local.as_ref()?;
        if *name != user.name {
            return None;
        }
        self.granted_workspace(user, dir).ok()
    }

    /// Where a user's plain workspace names live (`<root>/<name>`), without making it.
    pub fn workspace_area(&self, user: &User) -> PathBuf {
        std::fs::canonicalize(&self.workspaces)
            .unwrap_or_else(|_| self.workspaces.clone())
            .join(&user.name)
    }

    /// The account user's sessions run as: `uid_base + id` under a root host, None (the
    /// host's own account) otherwise.
    pub fn account(&self, user: &User) -> Result<Option<Account>> {
        let Some(base) = self.uid_base else {
            return Ok(None);
        };
        let id = u32::try_from(user.id)
            .ok()
            .filter(|&id| (1..=MAX_USER_ID).contains(&id))
            .ok_or_else(|| {
                PlaceError::Io(format!(
                    "user {} has id {}, outside the {MAX_USER_ID} ids cordon maps to uids",
                    user.name, user.id
                ))
            })?;
        let uid = base + id;
        Ok(Some(Account { uid, gid: uid }))
    }

    /// The uid that must own the user's places.
    fn expected_owner(&self, user: &User) -> Result<(u32, Option<(u32, u32)>)> {
        Ok(match self.account(user)? {
            Some(a) => (a.uid, Some((a.uid, a.gid))),
            // SAFETY: geteuid cannot fail.
            None => (unsafe { libc::geteuid() }, None),
        })
    }

    /// A root (made if missing, 0700, the host's own), as a canonical path and an open
    /// directory. The operator chose its path, links included.
    fn root(path: &Path) -> Result<(PathBuf, OwnedFd)> {
        crate::paths::private_dir(path).map_err(|e| PlaceError::Io(e.to_string()))?;
        let canonical = std::fs::canonicalize(path).map_err(io("resolving", path))?;
        let fd = nofollow::open_root(&canonical).map_err(io("opening", &canonical))?;
        Ok((canonical, fd))
    }

    /// `<root>/<user>`: made for the user if missing; otherwise it must be a directory (not
    /// a link) owned by the user's account. One left owned by root (sessions ran as root
    /// before cordon gave users uids of their own) is handed over to the user, contents
    /// included.
    fn user_dir(&self, root: &Path, user: &User) -> Result<(PathBuf, OwnedFd)> {
        let (root, root_fd) = Places::root(root)?;
        let path = root.join(&user.name);
        let (expected, owner) = self.expected_owner(user)?;
        let (fd, _) = nofollow::ensure_dir(root_fd.as_fd_ref(), &user.name, 0o700, owner)
            .map_err(io("creating", &path))?;
        let st = nofollow::stat(fd.as_fd_ref()).map_err(io("checking", &path))?;
        if st.st_uid != expected {
            match owner {
                Some((uid, gid)) if st.st_uid == 0 => {
                    let tree = nofollow::open_beneath(
                        root_fd.as_fd_ref(),
                        Path::new(&user.name),
                        libc::O_DIRECTORY | libc::O_RDONLY,
                        0,
                    )
                    .map_err(io("opening", &path))?;
                    nofollow::chown_tree(tree, uid, gid).map_err(io("handing over", &path))?;
                }
                _ => {
                    return Err(PlaceError::Foreign {
                        path,
                        uid: st.st_uid,
                        expected,
                    })
                }
            }
        }
        if st.st_mode & 0o077 != 0 {
            nofollow::chmod(fd.as_fd_ref(), 0o700).map_err(io("tightening", &path))?;
        }
        Ok((path, fd))
    }

    /// The user's home, ready for a session.
    pub fn home(&self, user: &User) -> Result<PathBuf> {
        Ok(self.user_dir(&self.homes, user)?.0)
    }

    /// The user's workspace, or its subfolder `name` (one plain name), ready for a session.
    pub fn workspace(&self, user: &User, name: Option<&str>) -> Result<PathBuf> {
        let (base, base_fd) = self.user_dir(&self.workspaces, user)?;
        let Some(name) = name else { return Ok(base) };
        if !valid_workspace_name(name) {
            return Err(PlaceError::BadName(name.to_string()));
        }
        let path = base.join(name);
        let (expected, owner) = self.expected_owner(user)?;
        let (fd, _) = nofollow::ensure_dir(base_fd.as_fd_ref(), name, 0o755, owner)
            .map_err(io("creating", &path))?;
        let st = nofollow::stat(fd.as_fd_ref()).map_err(io("checking", &path))?;
        if st.st_uid != expected {
            return Err(PlaceError::Foreign {
                path,
                uid: st.st_uid,
                expected,
            });
        }
        Ok(path)
    }

    /// Writes `bytes` as `exports/<file>` in the user's workspace, where they and their
    /// sessions find it: the folder and the file are reached without following links, and
    /// the file is written aside and renamed into place, so a link planted at its name is
    /// replaced, never written through.
    pub fn write_export(&self, user: &User, file: &str, bytes: &[u8]) -> Result<PathBuf> {
        if !valid_workspace_name(file) {
            return Err(PlaceError::BadName(file.to_string()));
        }
        let (base, base_fd) = self.user_dir(&self.workspaces, user)?;
        let (_, owner) = self.expected_owner(user)?;
        let dir = base.join("exports");
        let (dir_fd, _) = nofollow::ensure_dir(base_fd.as_fd_ref(), "exports", 0o755, owner)
            .map_err(io("creating", &dir))?;
        let tmp = format!(
            ".{file}.{}",
            crate::secrets::random_bytes(6)
                .map(|b| crate::secrets::hex(&b))
                .unwrap_or_default()
        );
        nofollow::create_file(dir_fd.as_fd_ref(), &tmp, 0o644, bytes, owner)
            .map_err(io("writing", &dir.join(&tmp)))?;
        if let Err(e) = nofollow::rename(dir_fd.as_fd_ref(), &tmp, dir_fd.as_fd_ref(), file) {
            let _ = nofollow::unlink(dir_fd.as_fd_ref(), &tmp);
            return Err(io("renaming into", &dir.join(file))(e));
        }
        Ok(dir.join(file))
    }

    /// Moves a removed user's home and workspaces aside (`<root>/.removed/<name>-<id>-<time>`,
    /// 0700, for auditors to look at and the operator to delete), so that a user added
    /// later under the same name starts empty. Returns where they went.
    pub fn retire(&self, user: &User) -> Result<Vec<PathBuf>> {
        let stamp = crate::audit::unix_seconds();
        let mut moved = Vec::new();
        for root in [&self.homes, &self.workspaces] {
            if !root.exists() {
                continue;
            }
            let (root, root_fd) = Places::root(root)?;
            let aside = root.join(REMOVED);
            let (removed_fd, _) = nofollow::ensure_dir(root_fd.as_fd_ref(), REMOVED, 0o700, None)
                .map_err(io("creating", &aside))?;
            let to = format!("{}-{}-{stamp}", user.name, user.id);
            match nofollow::rename(root_fd.as_fd_ref(), &user.name, removed_fd.as_fd_ref(), &to) {
                Ok(()) => moved.push(aside.join(to)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(io("moving aside", &root.join(&user.name))(e)),
            }
        }
        Ok(moved)
    }
}

/// One plain name: letters, digits, `.`, `_`, `-`; not `.` or `..`; at most 64 bytes.
pub fn valid_workspace_name(n: &str) -> bool {
    !n.is_empty()
        && n != "."
        && n != ".."
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    pub(super) fn places(t: &Path) -> Places {
        Places {
            workspaces: t.join("ws"),
            homes: t.join("homes"),
            uid_base: None,
            grants: Default::default(),
            local: None,
        }
    }

    pub(super) fn alice() -> User {
        User {
            id: 3,
            name: "alice".into(),
            role: Role::Developer,
            locked: false,
            created: String::new(),
        }
    }

    #[test]
    fn a_symlinked_workspace_is_refused_and_its_target_untouched() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let p = places(t.path());
        p.workspace(&alice(), None).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("ws/alice/evil")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", t.path().join("ws/alice/dangling")).unwrap();
        for name in ["evil", "dangling"] {
            let e = p.workspace(&alice(), Some(name)).unwrap_err();
            assert!(matches!(e, PlaceError::Link(_)), "{name}: {e}");
        }
        for name in ["..", ".", "a/b", "", "x y"] {
            assert!(
                matches!(
                    p.workspace(&alice(), Some(name)),
                    Err(PlaceError::BadName(_))
                ),
                "{name:?}"
            );
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert_eq!(
            p.workspace(&alice(), Some("proj")).unwrap(),
            std::fs::canonicalize(t.path())
                .unwrap()
                .join("ws/alice/proj")
        );
    }

    #[test]
    fn a_user_dir_that_is_a_link_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let p = places(t.path());
        std::fs::create_dir_all(t.path().join("homes")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("homes/alice")).unwrap();
        assert!(matches!(p.home(&alice()), Err(PlaceError::Link(_))));
    }

    #[test]
    fn an_export_replaces_a_planted_link_instead_of_writing_through_it() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let p = places(t.path());
        let ws = p.workspace(&alice(), None).unwrap();
        std::fs::create_dir(ws.join("exports")).unwrap();
        std::fs::write(outside.path().join("bashrc"), "original").unwrap();
        std::os::unix::fs::symlink(outside.path().join("bashrc"), ws.join("exports/abc.cast"))
            .unwrap();
        let written = p.write_export(&alice(), "abc.cast", b"recording").unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path().join("bashrc")).unwrap(),
            "original"
        );
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "recording");

        // The exports folder itself swapped for a link: refused, nothing written there.
        std::fs::remove_dir_all(ws.join("exports")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.join("exports")).unwrap();
        assert!(matches!(
            p.write_export(&alice(), "abc.cast", b"x"),
            Err(PlaceError::Link(_))
        ));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_removed_users_places_move_aside_and_the_name_starts_empty() {
        let t = tempfile::tempdir().unwrap();
        let p = places(t.path());
        let ws = p.workspace(&alice(), Some("proj")).unwrap();
        std::fs::write(ws.join("notes"), "old").unwrap();
        let home = p.home(&alice()).unwrap();
        std::fs::write(home.join(".history"), "old").unwrap();
        let moved = p.retire(&alice()).unwrap();
        assert_eq!(moved.len(), 2, "{moved:?}");
        assert!(
            moved
                .iter()
                .all(|m| m.to_string_lossy().contains("/.removed/alice-3-")),
            "{moved:?}"
        );
        let again = User { id: 9, ..alice() };
        assert!(!p
            .workspace(&again, Some("proj"))
            .unwrap()
            .join("notes")
            .exists());
        assert!(!p.home(&again).unwrap().join(".history").exists());
    }
}
