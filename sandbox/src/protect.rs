//! Protected paths: files inside a writable workspace that run code outside the sandbox
//! later (`.git/hooks/`, `.git/config`, an editor's tasks, Claude Code's project settings),
//! kept read-only so that a session cannot plant what the developer runs unconfined.
//!
//! Landlock only grants, so it cannot take writing back beneath the workspace: mounts do.
//! Each protected path gets a read-only bind of itself, on top of the workspace's mount.
//! Every directory between the workspace and a protected path gets a writable bind of
//! itself (a *pin*): a mountpoint cannot be renamed or removed from inside its mount
//! namespace (`EBUSY`), so `mv .git .git2 && git init` cannot leave the protection behind
//! on a directory git no longer reads. A path that does not exist yet is covered at its
//! first missing component by an empty read-only directory the sandbox creates (a
//! *placeholder*) and removes when the sandbox ends, if still empty. A symbolic link on
//! the way is refused: a bind over a link is impossible, and protecting what it points to
//! would let the session choose what becomes read-only.
//!
//! [`resolve`] looks at the workspace (beneath it, never through a link) and decides;
//! [`plan`] turns the result into mount steps (pure); [`apply_pin`] and [`apply_protect`]
//! perform them inside the new root; [`Placeholders`] tidies up afterwards.

mod gitconfig;
mod placeholders;

pub use placeholders::{noted as noted_placeholders, Placeholders};

use crate::error::{Refusal, Step};
use crate::sys::{self, MOUNT_ATTR_RDONLY, RESOLVE_STRICT};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The profile key, as messages name it.
pub const KEY: &str = "[filesystem] protect";

/// One protected path of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Protected {
    /// The entry (`.git/hooks/`), relative to the workspace.
    pub entry: String,
    /// What protects it, as messages name it: `[filesystem] protect ".git/hooks/"`, or
    /// `core.hooksPath ".husky/_" in .git/config`.
    #[serde(default)]
    pub key: String,
    /// What is made read-only (absolute): the entry's path, or the file on its way that
    /// stands where a directory was expected (`.git` as a worktree's pointer file), or the
    /// entry's first missing component.
    pub path: PathBuf,
    /// The first missing component, when the entry did not exist: the sandbox creates an
    /// empty directory there and removes it afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<PathBuf>,
}

/// Where a protected path stands in the workspace, found by walking it without links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// It exists (the path to make read-only: the entry, or a file on its way).
    Exists(PathBuf),
    /// Missing from this component on.
    Missing(PathBuf),
    /// A symbolic link at this component.
    Link(PathBuf),
}

/// Walks `rel` beneath `workspace` without following links.
pub fn find(workspace: &Path, rel: &Path) -> std::io::Result<Found> {
    let mut dir = sys::openat2(
        None,
        workspace,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )?;
    let parts: Vec<_> = rel.components().collect();
    let mut walked = workspace.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else {
            continue;
        };
        walked.push(name);
        let fd = match sys::openat2(
            Some(dir.as_fd()),
            Path::new(name),
            libc::O_PATH,
            0,
            RESOLVE_STRICT,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Found::Missing(walked)),
            Err(e) if sys::is_link_error(&e) => return Ok(Found::Link(walked)),
            Err(e) => return Err(e),
        };
        if i + 1 == parts.len() || sys::file_type(fd.as_fd())? != libc::S_IFDIR {
            return Ok(Found::Exists(walked));
        }
        dir = fd;
    }
    Ok(Found::Exists(walked))
}

/// The refusal for a protected path that cannot be protected.
/// `key` says what protects it (see [`Protected::key`]).
fn cannot(key: &str, path: &Path, why: &str) -> Refusal {
    let unprotect = match key.strip_prefix(KEY) {
        Some(entry) => entry.trim().to_string(),
        // Named by .git/config: unprotecting the configuration lets the session change it.
        None => "\".git/config\"".to_string(),
    };
    Refusal::new(
        Step::Mounts,
        format!("{} cannot be protected ({key}): {why}", path.display()),
    )
    .hint(format!(
        "replace it with the file or directory itself, or, to let sessions write it, add {unprotect} to [filesystem] unprotect in a profile that extends this one"
    ))
}

/// The protected paths of a workspace: `entries` (the profile's, relative) looked up beneath
/// `workspace`, with, when `.git/config` is among them, what it makes git read or run from
/// the workspace (its `core.hooksPath`, its includes). Nothing is protected when the
/// workspace is not writable. A link on the way is refused; a path inside another protected
/// one needs nothing of its own.
pub fn resolve(
    entries: &[String],
    workspace: &Path,
    writable: bool,
) -> Result<Vec<Protected>, Refusal> {
    if !writable {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<(String, String)> = entries
        .iter()
        .map(|e| (e.clone(), format!("{KEY} \"{e}\"")))
        .collect();
    if entries.iter().any(|e| e == ".git/config") {
        wanted.extend(named_by_git_config(workspace));
    }
    let mut out: Vec<Protected> = Vec::new();
    for (entry, key) in wanted {
        let rel = Path::new(entry.trim_end_matches('/'));
        let found = find(workspace, rel).map_err(|e| {
            Refusal::os(
                Step::Mounts,
                format!("looking for {} ({key})", workspace.join(rel).display()),
                e,
            )
        })?;
        let (path, placeholder) = match found {
            Found::Exists(p) => (p, None),
            // A missing file in a directory of its own (`.claude/settings.json`): the
            // directory is made read-only rather than a placeholder put where programs
            // expect a file (Claude Code refuses a settings "file" that is a directory).
            Found::Missing(p)
                if !entry.ends_with('/')
                    && p == workspace.join(rel)
                    && p.parent().is_some_and(|d| d != workspace) =>
            {
                (p.parent().map(Path::to_path_buf).unwrap_or(p), None)
            }
            Found::Missing(p) => (p.clone(), Some(p)),
            Found::Link(p) => {
                return Err(cannot(
                    &key,
                    &p,
                    "it is a symbolic link, and a read-only bind cannot cover a link",
                ))
            }
        };
        out.push(Protected {
            entry,
            key,
            path,
            placeholder,
        });
    }
    Ok(dedup(out))
}

/// What the workspace's `.git/config` (read beneath it, without links, at most 1 MiB) makes
/// git read or run from inside the workspace, as (entry relative to the workspace, why).
/// A relative `core.hooksPath` is relative to the workspace, an include to `.git`; a hooks
/// directory named `_` (husky's) runs the scripts of its parent, which is protected.
fn named_by_git_config(workspace: &Path) -> Vec<(String, String)> {
    use std::io::Read;
    let Ok(Found::Exists(config)) = find(workspace, Path::new(".git/config")) else {
        return Vec::new();
    };
    let Ok(fd) = sys::openat2(None, &config, libc::O_RDONLY, 0, sys::RESOLVE_NO_SYMLINKS) else {
        return Vec::new();
    };
    let mut text = String::new();
    if std::fs::File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .is_err()
    {
        return Vec::new();
    }
    let git_dir = workspace.join(".git");
    let mut out = Vec::new();
    for named in gitconfig::named_paths(&text) {
        let base = if named.key == "core.hooksPath" {
            workspace
        } else {
            &git_dir
        };
        let Some(mut rel) = beneath(workspace, &base.join(&named.value)) else {
            continue;
        };
        if named.key == "core.hooksPath" && rel.file_name().is_some_and(|n| n == "_") {
            rel.pop();
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        out.push((
            rel.display().to_string(),
            format!("{} \"{}\" in .git/config", named.key, named.value),
        ));
    }
    out
}

/// `p` made lexically normal (`..` taken off) and relative to `workspace`, when it lies
/// beneath it.
fn beneath(workspace: &Path, p: &Path) -> Option<PathBuf> {
    let mut norm = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                norm.pop();
            }
            Component::CurDir => {}
            c => norm.push(c),
        }
    }
    norm.strip_prefix(workspace).ok().map(Path::to_path_buf)
}

/// Drops protected paths inside another one (its read-only bind covers them).
fn dedup(list: Vec<Protected>) -> Vec<Protected> {
    let mut out: Vec<Protected> = Vec::new();
    for p in &list {
        let covered = list
            .iter()
            .any(|q| q.path != p.path && p.path.starts_with(&q.path))
            || out.iter().any(|q| q.path == p.path);
        if !covered {
            out.push(p.clone());
        }
    }
    out
}

/// The mount steps that protect `list` in `workspace`: every directory between the
/// workspace and a protected path pinned (shallow first, each once), then each protected
/// path made read-only. Pins come first: a pin mounted later would stack over a read-only
/// bind beneath it and hide it.
pub fn plan(list: &[Protected], workspace: &Path) -> Vec<crate::mounts::Op> {
    use crate::mounts::Op;
    let mut pins: Vec<PathBuf> = Vec::new();
    for p in list {
        let mut a = p.path.parent();
        while let Some(dir) = a {
            if !dir.starts_with(workspace) || dir == workspace {
                break;
            }
            let protected = list.iter().any(|q| dir.starts_with(&q.path));
            if !protected && !pins.iter().any(|x| x == dir) {
                pins.push(dir.to_path_buf());
            }
            a = dir.parent();
        }
    }
    pins.sort_by_key(|p| p.components().count());
    let mut ops: Vec<Op> = pins.into_iter().map(Op::Pin).collect();
    ops.extend(list.iter().map(|p| Op::Protect {
        path: p.path.clone(),
        key: p.key.clone(),
    }));
    ops
}

/// Opens `p` in the new root `root` without links; with `create`, a missing component is
/// made an empty directory (mode 0755) first. `Ok(None)` when missing and not created.
fn open_in(root: &OwnedFd, p: &Path, create: bool) -> Result<Option<OwnedFd>, std::io::Error> {
    let mut cur = sys::openat2(Some(root.as_fd()), Path::new("."), libc::O_PATH, 0, 0)?;
    for c in p.components() {
        let Component::Normal(name) = c else {
            continue;
        };
        let open = |cur: &OwnedFd| {
            sys::openat2(
                Some(cur.as_fd()),
                Path::new(name),
                libc::O_PATH,
                0,
                RESOLVE_STRICT,
            )
        };
        cur = match open(&cur) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                match sys::mkdirat(cur.as_fd(), name, 0o755) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                open(&cur)?
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    Ok(Some(cur))
}

/// Binds the directory at `p` (in the new root `root`) onto itself, so that it cannot be
/// renamed or removed inside the sandbox. Nothing to pin when it is missing or no
/// directory (the protected path's own bind then covers it).
pub fn apply_pin(root: &OwnedFd, p: &Path) -> Result<(), Refusal> {
    let what = || format!("pinning {} ({KEY})", p.display());
    let fd = match open_in(root, p, false) {
        Ok(Some(fd)) => fd,
        Ok(None) => return Ok(()),
        Err(e) if sys::is_link_error(&e) => {
            return Err(Refusal::new(
                Step::Mounts,
                format!(
                    "{} turned into a symbolic link while the sandbox started ({KEY})",
                    p.display()
                ),
            ))
        }
        Err(e) => return Err(Refusal::os(Step::Mounts, what(), e)),
    };
    if sys::file_type(fd.as_fd()).map_err(|e| Refusal::os(Step::Mounts, what(), e))?
        != libc::S_IFDIR
    {
        return Ok(());
    }
    let tree = sys::clone_tree(fd.as_fd()).map_err(|e| Refusal::os(Step::Mounts, what(), e))?;
    sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(|e| Refusal::os(Step::Mounts, what(), e))
}

/// Makes `p` (in the new root `root`) read-only with a bind of itself, creating an empty
/// directory there first when it is missing.
pub fn apply_protect(root: &OwnedFd, p: &Path, key: &str) -> Result<(), Refusal> {
    let what = || format!("protecting {} ({key})", p.display());
    let fd = match open_in(root, p, true) {
        Ok(Some(fd)) => fd,
        Ok(None) => {
            return Err(Refusal::new(
                Step::Mounts,
                format!("{}: it could not be created", what()),
            ))
        }
        Err(e) if sys::is_link_error(&e) => {
            return Err(cannot(
                key,
                p,
                "it turned into a symbolic link while the sandbox started",
            ))
        }
        Err(e) => return Err(Refusal::os(Step::Mounts, what(), e)),
    };
    let tree = sys::clone_tree(fd.as_fd()).map_err(|e| Refusal::os(Step::Mounts, what(), e))?;
    // The clone keeps the workspace mount's other attributes (noexec or not).
    sys::mount_setattr_fd(tree.as_fd(), MOUNT_ATTR_RDONLY, true)
        .map_err(|e| Refusal::os(Step::Mounts, what(), e))?;
    sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(|e| Refusal::os(Step::Mounts, what(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::Op;

    fn prot(entry: &str, path: &str) -> Protected {
        Protected {
            entry: entry.into(),
            key: format!("{KEY} \"{entry}\""),
            path: path.into(),
            placeholder: None,
        }
    }

    #[test]
    fn every_directory_between_the_workspace_and_a_protected_path_is_pinned_once_before_any_protection(
    ) {
        let list = vec![
            prot(".git/hooks/", "/w/.git/hooks"),
            prot(".git/config", "/w/.git/config"),
            prot(".claude/settings.json", "/w/.claude/settings.json"),
            prot(".git/modules/", "/w/.git/modules"),
        ];
        let ops = plan(&list, Path::new("/w"));
        let pins: Vec<_> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Pin(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            pins,
            vec![PathBuf::from("/w/.git"), PathBuf::from("/w/.claude")]
        );
        let first_protect = ops
            .iter()
            .position(|o| matches!(o, Op::Protect { .. }))
            .unwrap();
        assert!(
            ops[first_protect..]
                .iter()
                .all(|o| matches!(o, Op::Protect { .. })),
            "{ops:?}"
        );
        assert!(
            !pins.contains(&PathBuf::from("/w")),
            "the workspace is its own mount"
        );
    }

    #[test]
    fn a_path_inside_another_protected_one_needs_no_bind_and_no_pin() {
        let list = dedup(vec![
            prot(".claude/", "/w/.claude"),
            prot(".claude/settings.json", "/w/.claude/settings.json"),
        ]);
        assert_eq!(list, vec![prot(".claude/", "/w/.claude")]);
        let ops = plan(&list, Path::new("/w"));
        assert_eq!(
            ops,
            vec![Op::Protect {
                path: "/w/.claude".into(),
                key: "[filesystem] protect \".claude/\"".into()
            }]
        );
    }

    #[test]
    fn the_hooks_directory_and_includes_git_config_names_inside_the_workspace_are_protected_too() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        std::fs::create_dir_all(w.join(".git")).unwrap();
        std::fs::create_dir_all(w.join(".husky/_")).unwrap();
        std::fs::write(
            w.join(".git/config"),
            "[core]\n\thooksPath = .husky/_\n[include]\n\tpath = ../project.gitconfig\n\tpath = /etc/gitconfig\n\tpath = ../../outside\n",
        )
        .unwrap();
        let list = resolve(&[".git/config".into()], w, true).unwrap();
        let paths: Vec<_> = list.iter().map(|p| p.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                w.join(".git/config"),
                w.join("project.gitconfig"),
                w.join(".husky")
            ],
            "husky's _ runs its parent's scripts; paths outside the workspace are not ours"
        );
        assert_eq!(list[1].placeholder, Some(w.join("project.gitconfig")));
        let unprotected = resolve(&[".git/hooks/".into()], w, true).unwrap();
        assert!(
            !unprotected.iter().any(|p| p.path == w.join(".husky")),
            "without .git/config protected, what it names is not either"
        );
    }

    #[test]
    fn nothing_is_protected_in_a_workspace_the_session_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let list = resolve(&[".git/hooks/".into()], dir.path(), false).unwrap();
        assert!(list.is_empty());
    }

    #[test]
    fn a_missing_path_is_covered_at_its_first_missing_component_or_its_directory_and_a_file_on_the_way_is_protected_itself(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        std::fs::write(w.join(".git"), "gitdir: /elsewhere\n").unwrap();
        std::fs::create_dir(w.join(".vscode")).unwrap();
        let list = resolve(
            &[
                ".git/hooks/".into(),
                ".vscode/tasks.json".into(),
                ".claude/settings.json".into(),
            ],
            w,
            true,
        )
        .unwrap();
        assert_eq!(list[0].path, w.join(".git"), "a worktree's pointer file");
        assert_eq!(list[0].placeholder, None);
        assert_eq!(
            (list[1].path.clone(), list[1].placeholder.clone()),
            (w.join(".vscode"), None),
            "a missing file in an existing directory: the directory is protected"
        );
        assert_eq!(list[2].placeholder, Some(w.join(".claude")));
        assert_eq!(list[2].path, w.join(".claude"));
    }

    #[test]
    fn a_link_at_or_on_the_way_to_a_protected_path_is_refused_naming_the_path_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        std::fs::create_dir(w.join(".git")).unwrap();
        std::os::unix::fs::symlink("/tmp", w.join(".git/hooks")).unwrap();
        let r = resolve(&[".git/hooks/".into()], w, true).unwrap_err();
        assert_eq!(r.step, Step::Mounts);
        assert!(r.reason.contains(".git/hooks"), "{}", r.reason);
        assert!(r.reason.contains(KEY), "{}", r.reason);
        assert!(r.reason.contains("symbolic link"), "{}", r.reason);
    }
}
