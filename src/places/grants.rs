//! Workspaces from real paths: `--workspace /ABS/PATH` beneath a root the configuration
//! grants the user (`[workspaces]`, by user and by role, read at each use) or, for the
//! embedded host's own user, the directory it started in.
//!
//! The root's operator part was made canonical when the configuration was loaded (links
//! there are the operator's choice); everything beneath it, `{user}` included, is the
//! users' to change, so it is opened from the root's descriptor with openat2
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`) and checked through
//! the descriptor that was opened: a directory, which the session's account may use. The
//! path handed to the sandbox is the one the kernel names for that descriptor; the sandbox
//! opens it again from `/` without following any link (`--no-links`), so a link swapped in
//! after this check fails the session instead of leading elsewhere.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use super::{Account, PlaceError, Places};
use crate::config::GrantRoot;
use crate::nofollow::{self, FdRef};
use crate::store::User;

/// Why a path was not taken as a workspace (the user's grants are added to the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it has a .. component; give the directory's own path")]
    Dotdot,
    #[error("it is not beneath a workspace root granted to you")]
    Outside,
    #[error("it is, or passes through, a symbolic link beneath {}; cordon follows no link there", .0.display())]
    Link(PathBuf),
    #[error("it is not a directory (or a component on its way is not)")]
    NotADirectory,
    #[error("it does not exist")]
    Missing,
}

/// Whether `account` may read, write and search a directory with this status: it owns it,
/// or its group (a session's only group) or everyone has all three. ACLs are not read.
pub fn usable_by(st: &libc::stat, account: Account) -> bool {
    let mode = st.st_mode;
    st.st_uid == account.uid
        || (st.st_gid == account.gid && mode & 0o070 == 0o070)
        || mode & 0o007 == 0o007
}

/// One root as granted to one user, ready to look beneath.
struct Root {
    /// The canonical root and, when the configuration names it through links, that path.
    path: PathBuf,
    written: PathBuf,
    /// The operator part (followed) and the part beneath it (not followed).
    base: PathBuf,
    rest: PathBuf,
}

impl Places {
    /// The roots `user` may name workspaces beneath, as paths (for messages and the TUI).
    pub fn granted_roots(&self, user: &User) -> Vec<PathBuf> {
        self.roots(user).into_iter().map(|r| r.path).collect()
    }

    fn roots(&self, user: &User) -> Vec<Root> {
        let mut roots: Vec<Root> = Vec::new();
        if let Some((name, dir)) = &self.local {
            if *name == user.name {
                roots.push(Root {
                    path: dir.clone(),
                    written: dir.clone(),
                    base: dir.clone(),
                    rest: PathBuf::new(),
                });
            }
        }
        let granted = self.grants.roots(&user.name, user.role);
        roots.extend(granted.into_iter().map(|g: &GrantRoot| Root {
            path: g.for_user(&user.name),
            written: g.written.join(g.rest_for(&user.name)),
            base: g.base.clone(),
            rest: g.rest_for(&user.name),
        }));
        roots
    }

    /// The refusal of `path` as a workspace, naming the user's roots and where they change.
    fn refuse(&self, user: &User, path: &Path, why: Refusal) -> PlaceError {
        PlaceError::NotGranted {
            path: path.to_path_buf(),
            why,
            granted: self.granted_roots(user),
            user: user.name.clone(),
            role: user.role.name().to_string(),
        }
    }

    /// `path` (absolute) as the workspace of one of `user`'s sessions: beneath a root
    /// granted to them, reached without a link, a directory their sessions' account may
    /// use. Returns the directory's real path.
    pub fn granted_workspace(&self, user: &User, path: &Path) -> Result<PathBuf, PlaceError> {
        let mut wanted = PathBuf::from("/");
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => wanted.push(n),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(self.refuse(user, path, Refusal::Dotdot))
                }
            }
        }
        let account = match self.account(user)? {
            Some(a) => a,
            // SAFETY: geteuid and getegid cannot fail.
            None => unsafe {
                Account {
                    uid: libc::geteuid(),
                    gid: libc::getegid(),
                }
            },
        };
        let roots = self.roots(user);
        // The deepest root that holds it decides (a user's own root inside their role's).
        let Some((root, beneath)) = roots
            .iter()
            .filter_map(|r| {
                [&r.path, &r.written]
                    .into_iter()
                    .find_map(|p| wanted.strip_prefix(p).ok())
                    .map(|rel| (r, rel.to_path_buf()))
            })
            .max_by_key(|(r, _)| r.path.components().count())
        else {
            return Err(self.refuse(user, path, Refusal::Outside));
        };
        let fd = self
            .open_beneath_root(root, &beneath)
            .map_err(|why| self.refuse(user, path, why))?;
        let st = nofollow::stat(fd.as_fd_ref())
            .map_err(|e| PlaceError::Io(format!("checking {}: {e}", wanted.display())))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(self.refuse(user, path, Refusal::NotADirectory));
        }
        if !usable_by(&st, account) {
            return Err(PlaceError::NoAccess {
                path: wanted,
                uid: st.st_uid,
                account,
            });
        }
        // What the kernel calls the directory now: the real path the sandbox opens again.
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| PlaceError::Io(format!("naming {}: {e}", wanted.display())))
    }

    /// Opens `beneath` (plain components) under `root` without following any link below
    /// the operator's part.
    fn open_beneath_root(&self, root: &Root, beneath: &Path) -> Result<OwnedFd, Refusal> {
        let base = nofollow::open_root(&root.base).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTDIR) => Refusal::NotADirectory,
            _ => Refusal::Missing,
        })?;
        let rel = root.rest.join(beneath);
        if rel.as_os_str().is_empty() {
            return Ok(base);
        }
        nofollow::open_beneath(base.as_fd_ref(), &rel, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(
            |e| match e.raw_os_error() {
                Some(libc::ELOOP) => Refusal::Link(root.path.clone()),
                Some(libc::ENOTDIR) => Refusal::NotADirectory,
                Some(libc::ENOENT) => Refusal::Missing,
                _ => Refusal::Outside,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{alice, places};
    use super::*;
    use crate::config::Config;

    /// Places whose developers are granted `<t>/projects/{user}`, and alice `<t>/extra`.
    fn granted(t: &Path) -> Places {
        std::fs::create_dir_all(t.join("projects/alice/app/src")).unwrap();
        std::fs::create_dir_all(t.join("projects/bob")).unwrap();
        std::fs::create_dir_all(t.join("projects/alicex")).unwrap();
        std::fs::create_dir_all(t.join("extra")).unwrap();
        let conf = t.join("c.toml");
        std::fs::write(
            &conf,
            format!(
                "[workspaces]\nroles.developer = [\"{0}/projects/{{user}}\"]\nusers.alice = [\"{0}/extra\"]\n",
                t.display()
            ),
        )
        .unwrap();
        let config = Config::load(Some(&conf), &t.join("data")).unwrap();
        Places {
            grants: config.workspace_grants,
            ..places(t)
        }
    }

    fn refusal(r: Result<PathBuf, PlaceError>) -> Refusal {
        match r {
            Err(PlaceError::NotGranted { why, .. }) => why,
            other => panic!("not refused as not granted: {other:?}"),
        }
    }

    #[test]
    fn a_path_beneath_a_granted_root_is_the_workspace_by_its_real_path() {
        let t = tempfile::tempdir().unwrap();
        let t = &std::fs::canonicalize(t.path()).unwrap();
        let p = granted(t);
        for (asked, real) in [
            ("projects/alice", "projects/alice"),
            ("projects/alice/app/./src", "projects/alice/app/src"),
            ("extra", "extra"),
        ] {
            assert_eq!(
                p.granted_workspace(&alice(), &t.join(asked)).unwrap(),
                t.join(real)
            );
        }
    }

    #[test]
    fn every_way_out_of_a_granted_root_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let t = &std::fs::canonicalize(t.path()).unwrap();
        let p = granted(t);
        let a = t.join("projects/alice");
        std::os::unix::fs::symlink("/etc", a.join("link-to-etc")).unwrap();
        std::os::unix::fs::symlink(a.join("app"), a.join("link-to-app")).unwrap();
        std::fs::write(a.join("file"), "x").unwrap();
        nix_mkfifo(&a.join("fifo"));
        let cases = [
            ("projects/alice/../bob", Refusal::Dotdot),
            ("projects/alice/link-to-etc", Refusal::Link(a.clone())),
            ("projects/alice/link-to-app/src", Refusal::Link(a.clone())),
            ("projects/alicex", Refusal::Outside),
            ("projects/bob", Refusal::Outside),
            ("projects", Refusal::Outside),
            ("projects/alice/file", Refusal::NotADirectory),
            ("projects/alice/fifo", Refusal::NotADirectory),
            ("projects/alice/none", Refusal::Missing),
        ];
        for (asked, why) in cases {
            let r = p.granted_workspace(&alice(), &t.join(asked));
            assert_eq!(refusal(r), why, "{asked}");
        }
        assert_eq!(
            refusal(p.granted_workspace(&alice(), Path::new("/etc"))),
            Refusal::Outside
        );
        // The message names the roots and the keys that grant them.
        let e = p
            .granted_workspace(&alice(), &t.join("projects/bob"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&a.display().to_string())
                && e.contains("[workspaces] users.alice")
                && e.contains("roles.developer"),
            "{e}"
        );
    }

    #[test]
    fn a_user_folder_swapped_for_a_link_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let t = &std::fs::canonicalize(t.path()).unwrap();
        let p = granted(t);
        std::fs::remove_dir_all(t.join("projects/alice")).unwrap();
        std::os::unix::fs::symlink(t.join("projects/bob"), t.join("projects/alice")).unwrap();
        assert_eq!(
            refusal(p.granted_workspace(&alice(), &t.join("projects/alice"))),
            Refusal::Link(t.join("projects/alice"))
        );
    }

    #[test]
    fn access_is_the_owner_or_the_accounts_group_or_everyone_with_all_of_rwx() {
        let a = Account { uid: 10, gid: 20 };
        let st = |uid, gid, mode| {
            // SAFETY: a plain C struct; zero is a valid value for every field.
            let mut s: libc::stat = unsafe { std::mem::zeroed() };
            (s.st_uid, s.st_gid, s.st_mode) = (uid, gid, libc::S_IFDIR | mode);
            s
        };
        assert!(usable_by(&st(10, 0, 0o700), a));
        assert!(usable_by(&st(1000, 20, 0o770), a));
        assert!(!usable_by(&st(1000, 20, 0o750), a));
        assert!(!usable_by(&st(1000, 1000, 0o775), a));
        assert!(usable_by(&st(1000, 1000, 0o777), a));
    }

    fn nix_mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
}
