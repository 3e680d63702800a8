//! The paths of ad-hoc flags (`--ro`, `--rw`, `--exec PATH`, `--chdir`) made absolute and
//! canonical without following any link, and the checks a flag gets where a profile entry
//! gets a note: a flag that is missing, hidden, protected or not visible is refused, naming
//! the flag, because the person who typed it wants it (or wants to know why not).
//!
//! No link is followed at all, where a profile's paths outside the home and the workspace
//! follow theirs: a flag names a path as the person sees it, often in a workspace an agent
//! writes, and `--rw out` where the agent made `out -> /etc` must not grant /etc. The
//! refusal names where the link leads, so that giving the real path is one copy away.
//! The binds themselves never follow a link either ([`crate::mounts`]): a path that turns
//! into one after this check is refused there.

use crate::error::{Refusal, Step};
use crate::profile::flags::refuse;
use crate::profile::Flags;
use crate::protect::Protected;
use crate::sys::{self, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// `flags` with every path absolute (relative ones taken from `cwd`) and canonical,
/// reached without a link; `--exec` entries with a `/` are paths, others names.
pub fn resolve(flags: &Flags, cwd: &Path) -> Result<Flags, Refusal> {
    let mut out = flags.clone();
    out.read = flags
        .read
        .iter()
        .map(|p| grant("--ro", p, cwd))
        .collect::<Result<_, _>>()?;
    out.write = flags
        .write
        .iter()
        .map(|p| grant("--rw", p, cwd))
        .collect::<Result<_, _>>()?;
    out.exec = flags
        .exec
        .iter()
        .map(|e| {
            if !e.contains('/') {
                return Ok(e.clone());
            }
            let (path, _) = open("--exec", Path::new(e), cwd)?;
            path.to_str().map(String::from).ok_or_else(|| {
                refuse(
                    "--exec",
                    e,
                    "cordon takes paths in UTF-8, as profiles write them",
                )
            })
        })
        .collect::<Result<_, _>>()?;
    out.chdir = match &flags.chdir {
        None => None,
        Some(d) => {
            let (path, kind) = open("--chdir", d, cwd)?;
            if kind != libc::S_IFDIR {
                return Err(refuse("--chdir", d.display(), "not a directory"));
            }
            Some(path)
        }
    };
    Ok(out)
}

/// A `--ro` or `--rw` path, resolved, and refused where a grant of it would mean something
/// else than it says.
fn grant(flag: &str, p: &Path, cwd: &Path) -> Result<PathBuf, Refusal> {
    let (path, _) = open(flag, p, cwd)?;
    if path == Path::new("/") && flag == "--rw" {
        return Err(refuse(
            flag,
            "/",
            "would let the command write the whole filesystem",
        )
        .hint("name the directories it needs to write"));
    }
    if crate::mounts::OWN_TREES
        .iter()
        .any(|t| path == Path::new(t))
    {
        return Err(refuse(
            flag,
            path.display(),
            "the sandbox has its own (private, emptied when it ends); the host's is never shown",
        )
        .hint("name a directory beneath it"));
    }
    Ok(path)
}

/// `p` (relative to `cwd` if it is) opened without following any link: its canonical path
/// and its file type.
fn open(flag: &str, p: &Path, cwd: &Path) -> Result<(PathBuf, libc::mode_t), Refusal> {
    let absolute = cwd.join(p);
    let fd = sys::openat2(
        None,
        &absolute,
        libc::O_PATH,
        0,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
            refuse(flag, p.display(), "no such file or directory")
        }
        _ if sys::is_link_error(&e) => {
            let real = std::fs::canonicalize(&absolute)
                .map(|r| format!(" ({})", r.display()))
                .unwrap_or_default();
            refuse(
                flag,
                p.display(),
                "it is, or passes through, a symbolic link",
            )
            .hint(format!(
                "cordon follows no link in a path given by a flag: give the path it leads to{real}"
            ))
        }
        _ => Refusal::os(Step::Profile, format!("{flag} {}", p.display()), e),
    })?;
    let path = crate::untrusted::fd_path(&fd)
        .map_err(|e| Refusal::os(Step::Profile, format!("{flag} {}", p.display()), e))?;
    let kind = sys::file_type(fd.as_fd())
        .map_err(|e| Refusal::os(Step::Profile, format!("{flag} {}", p.display()), e))?;
    Ok((path, kind))
}

/// Refuses a flag's path that lies beneath a hidden one (`hide`, canonical): a flag cannot
/// show what the sandbox hides, whatever a profile entry could.
pub(crate) fn refuse_hidden(flags: &Flags, hide: &[PathBuf]) -> Result<(), Refusal> {
    let paths = flags
        .read
        .iter()
        .map(|p| ("--ro", p.clone()))
        .chain(flags.write.iter().map(|p| ("--rw", p.clone())))
        .chain(
            flags
                .exec
                .iter()
                .filter(|e| e.starts_with('/'))
                .map(|e| ("--exec", PathBuf::from(e))),
        )
        .chain(flags.chdir.iter().map(|p| ("--chdir", p.clone())));
    for (flag, p) in paths {
        if let Some(h) = hide.iter().find(|h| p.starts_with(h)) {
            let why = if super::ALWAYS_HIDDEN.iter().any(|a| Path::new(a) == h) {
                "the host's secrets and cordon's own state are hidden in every sandbox"
            } else {
                "cordon's data directory, the profile's [filesystem] hide, or --hide"
            };
            return Err(refuse(
                flag,
                p.display(),
                format!("{} is hidden ({why}); a flag cannot show it", h.display()),
            ));
        }
    }
    Ok(())
}

/// Refuses a `--rw` path at or beneath a protected one: it stays read-only whatever grants
/// it (the protection is mounted on top), and the flag would say otherwise.
pub(crate) fn refuse_protected(flags: &Flags, protect: &[Protected]) -> Result<(), Refusal> {
    for w in &flags.write {
        if let Some(q) = protect.iter().find(|q| w.starts_with(&q.path)) {
            let entry = if q.key.starts_with(crate::protect::KEY) {
                q.entry.as_str()
            } else {
                ".git/config"
            };
            return Err(refuse(
                "--rw",
                w.display(),
                format!(
                    "protected ({}): what runs outside the sandbox later reads it, so a session may not write it",
                    q.key
                ),
            )
            .hint(format!(
                "to let sessions write it, add \"{entry}\" to [filesystem] unprotect in a profile that extends this one"
            )));
        }
    }
    Ok(())
}

/// The directory `--chdir` asked for, refused unless the command can see it.
pub(crate) fn chdir(
    flags: &Flags,
    visible: impl Fn(&Path) -> bool,
) -> Result<Option<PathBuf>, Refusal> {
    match &flags.chdir {
        Some(d) if !visible(d) => Err(refuse(
            "--chdir",
            d.display(),
            "not visible inside the sandbox (no read or write grant holds it)",
        )
        .hint("choose a directory beneath the workspace or a grant, or add --ro DIR")),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags::default()
    }

    #[test]
    fn a_relative_path_is_taken_from_the_current_directory_and_made_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(real.join("a/b")).unwrap();
        let f = resolve(
            &Flags {
                read: vec!["a/b/..".into()],
                chdir: Some("a/b".into()),
                ..flags()
            },
            &real,
        )
        .unwrap();
        assert_eq!(f.read, vec![real.join("a")]);
        assert_eq!(f.chdir, Some(real.join("a/b")));
    }

    #[test]
    fn a_path_that_is_or_passes_through_a_link_is_refused_naming_the_flag_and_where_it_leads() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::os::unix::fs::symlink("/etc", real.join("out")).unwrap();
        for p in ["out", "out/hostname"] {
            let r = resolve(
                &Flags {
                    write: vec![p.into()],
                    ..flags()
                },
                &real,
            )
            .unwrap_err();
            assert!(r.reason.starts_with(&format!("--rw {p}:")), "{r}");
            assert!(r.reason.contains("symbolic link"), "{r}");
            assert!(r.hint.as_deref().unwrap_or("").contains("/etc"), "{r}");
        }
    }

    #[test]
    fn a_missing_path_the_root_and_the_sandboxs_own_trees_are_refused() {
        let cases = [
            (
                Flags {
                    read: vec!["/nonexistent/x".into()],
                    ..flags()
                },
                "no such file",
            ),
            (
                Flags {
                    write: vec!["/".into()],
                    ..flags()
                },
                "whole filesystem",
            ),
            (
                Flags {
                    write: vec!["/tmp".into()],
                    ..flags()
                },
                "its own",
            ),
            (
                Flags {
                    read: vec!["/proc".into()],
                    ..flags()
                },
                "its own",
            ),
            (
                Flags {
                    chdir: Some("/etc/passwd".into()),
                    ..flags()
                },
                "not a directory",
            ),
            (
                Flags {
                    exec: vec!["./nope".into()],
                    ..flags()
                },
                "no such file",
            ),
        ];
        for (f, says) in cases {
            let r = resolve(&f, Path::new("/")).unwrap_err();
            assert!(r.reason.contains(says), "{f:?}: {r}");
        }
        let ok = resolve(
            &Flags {
                read: vec!["/".into()],
                exec: vec!["sh".into()],
                ..flags()
            },
            Path::new("/"),
        );
        assert_eq!(
            ok.unwrap().exec,
            vec!["sh"],
            "--ro / is allowed, a name stays a name"
        );
    }

    #[test]
    fn a_flag_beneath_a_hidden_path_is_refused_and_one_above_it_is_not() {
        let hide = vec![PathBuf::from("/etc/shadow"), PathBuf::from("/srv/private")];
        let r = refuse_hidden(
            &Flags {
                write: vec!["/srv/private/x".into()],
                ..flags()
            },
            &hide,
        )
        .unwrap_err();
        assert!(r.reason.starts_with("--rw /srv/private/x"), "{r}");
        assert!(r.reason.contains("[filesystem] hide"), "{r}");
        let r = refuse_hidden(
            &Flags {
                read: vec!["/etc/shadow".into()],
                ..flags()
            },
            &hide,
        )
        .unwrap_err();
        assert!(r.reason.contains("every sandbox"), "{r}");
        assert!(refuse_hidden(
            &Flags {
                write: vec!["/etc".into()],
                ..flags()
            },
            &hide
        )
        .is_ok());
    }

    #[test]
    fn a_write_flag_at_or_beneath_a_protected_path_is_refused_with_the_entry_to_unprotect() {
        let protect = vec![Protected {
            entry: ".git/hooks/".into(),
            key: format!("{} \".git/hooks/\"", crate::protect::KEY),
            path: "/w/.git/hooks".into(),
            placeholder: None,
        }];
        for p in ["/w/.git/hooks", "/w/.git/hooks/pre-commit"] {
            let r = refuse_protected(
                &Flags {
                    write: vec![p.into()],
                    ..flags()
                },
                &protect,
            )
            .unwrap_err();
            assert!(r.reason.starts_with(&format!("--rw {p}")), "{r}");
            assert!(r.hint.unwrap().contains("\".git/hooks/\""));
        }
        assert!(refuse_protected(
            &Flags {
                write: vec!["/w/.git".into()],
                ..flags()
            },
            &protect
        )
        .is_ok());
    }

    /// Resolves `profile` with `flags` (resolved as a run would) for workspace `ws`.
    fn policy(profile: &str, flags: Flags, ws: &Path) -> Result<crate::Policy, Refusal> {
        let profile = crate::profile::Search::shipped_only()
            .load(profile)
            .unwrap();
        let profile = profile.with_flags(&resolve(&flags, ws)?)?;
        let req = crate::Request {
            workspace: Some(ws.to_path_buf()),
            command: vec!["true".into()],
            home: Some(PathBuf::from("/root")),
            ..crate::Request::default()
        };
        crate::Policy::resolve(&profile, &req)
    }

    /// A workspace holding a git repository (`.git/hooks`, `.git/config`).
    fn repository() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::write(ws.join(".git/config"), "[core]\n").unwrap();
        (dir, ws)
    }

    #[test]
    fn a_write_flag_inside_a_read_only_workspace_keeps_the_protected_paths_beneath_it_read_only() {
        let (_dir, ws) = repository();
        let p = policy(
            "readonly",
            Flags {
                write: vec![".git".into()],
                ..flags()
            },
            &ws,
        )
        .unwrap();
        assert!(p.write.contains(&ws.join(".git")), "{:?}", p.write);
        let protected: Vec<&Path> = p.protect.iter().map(|q| q.path.as_path()).collect();
        assert!(
            protected.contains(&ws.join(".git/hooks").as_path())
                && protected.contains(&ws.join(".git/config").as_path()),
            "{protected:?}"
        );
        assert!(
            protected.iter().all(|q| q.starts_with(ws.join(".git"))),
            "nothing outside the write grant needs protecting (nor a placeholder in a read-only workspace): {protected:?}"
        );
        let alone = policy("readonly", flags(), &ws).unwrap();
        assert!(
            alone.protect.is_empty(),
            "a read-only workspace needs no protection"
        );
    }

    #[test]
    fn a_write_flag_on_a_protected_path_is_refused_whatever_the_workspace() {
        let (_dir, ws) = repository();
        for profile in ["default", "readonly"] {
            let r = policy(
                profile,
                Flags {
                    write: vec![".git/hooks".into()],
                    ..flags()
                },
                &ws,
            )
            .unwrap_err();
            assert!(
                r.reason.contains("--rw") && r.reason.contains("protected"),
                "{profile}: {r}"
            );
        }
    }

    #[test]
    fn a_read_flag_on_a_secret_of_the_host_is_refused() {
        let (_dir, ws) = repository();
        let r = policy(
            "default",
            Flags {
                read: vec!["/etc/shadow".into()],
                ..flags()
            },
            &ws,
        )
        .unwrap_err();
        assert!(r.reason.starts_with("--ro /etc/shadow"), "{r}");
    }

    #[test]
    fn an_exec_flag_off_path_is_refused_where_a_profile_entry_would_be_a_note() {
        let (_dir, ws) = repository();
        let r = policy(
            "default",
            Flags {
                exec: vec!["no-such-tool-here".into()],
                ..flags()
            },
            &ws,
        )
        .unwrap_err();
        assert!(r.reason.starts_with("--exec no-such-tool-here"), "{r}");
        assert!(r.reason.contains("PATH"), "{r}");
        let p = policy(
            "strict",
            Flags {
                exec: vec!["bash".into()],
                ..flags()
            },
            &ws,
        )
        .unwrap();
        let bash = p
            .exec
            .iter()
            .find(|g| g.entry.as_deref() == Some("bash"))
            .unwrap();
        assert_eq!(bash.reason, "--exec bash");
    }

    #[test]
    fn chdir_is_where_the_command_starts_when_a_grant_shows_it() {
        let (_dir, ws) = repository();
        let p = policy(
            "default",
            Flags {
                chdir: Some(".git".into()),
                ..flags()
            },
            &ws,
        )
        .unwrap();
        assert_eq!(p.cwd, ws.join(".git"));
        let r = policy(
            "default",
            Flags {
                chdir: Some("/var".into()),
                ..flags()
            },
            &ws,
        )
        .unwrap_err();
        assert!(r.reason.starts_with("--chdir /var"), "{r}");
        let p = policy(
            "default",
            Flags {
                read: vec!["/var".into()],
                chdir: Some("/var".into()),
                ..flags()
            },
            &ws,
        )
        .unwrap();
        assert_eq!(p.cwd, Path::new("/var"));
    }
}
