//! The sandbox's filesystem: a fresh root holding only what the policy grants, built the way
//! bubblewrap builds one. Read grants are read-only binds; write grants are read-write binds
//! that are `noexec` (nothing the session writes can be executed, not by execve, not by the
//! dynamic loader, which needs PROT_EXEC mappings), except beneath the workspace or the home
//! when the profile says `[exec] workspace` or `[exec] home`; /tmp and /dev/shm are
//! private; /dev holds a handful of devices and the caller's terminal; /proc is the sandbox's
//! own. [`plan`] decides (pure); [`apply`] performs it inside a new mount namespace.
//!
//! Every bind is made from descriptors and never follows a symbolic link: the source is
//! opened beneath the host's root with `RESOLVE_NO_SYMLINKS` (the policy's paths are
//! canonical, so a link found now was swapped in after they were checked), cloned with
//! `open_tree`, given its attributes while still detached, and attached with `move_mount`
//! onto a mountpoint created and opened component by component, again without links. A
//! session may rewrite its workspace and home while the sandbox starts; it cannot make a
//! bind land elsewhere or show something else.

use crate::error::{Refusal, Step};
use crate::identity;
use crate::policy::Policy;
use crate::sys::{
    self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, RESOLVE_STRICT,
};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// One step in building the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Bind the host's `path` at the same place: read-only, and executable where Landlock
    /// allows it.
    ReadOnly(PathBuf),
    /// Bind the host's `path` read-write: `noexec` unless `exec` (beneath a tree the
    /// profile makes executable).
    Writable {
        /// The host's path, bound at the same place.
        path: PathBuf,
        /// Programs beneath may be executed (Landlock still decides which).
        exec: bool,
    },
    /// A fresh private tmpfs, `noexec`.
    Tmpfs(PathBuf),
    /// Recreate a symlink (`/bin -> usr/bin`) so that paths through it still resolve.
    Link {
        /// Where the link is.
        path: PathBuf,
        /// What it points to, as written.
        target: PathBuf,
    },
    /// Show a file holding `contents` at `path`, read-only, in place of the host's (the
    /// identity's /etc/passwd). Skipped when the new root does not show `path`.
    File {
        /// The file it covers.
        path: PathBuf,
        /// What the sandbox reads there.
        contents: Vec<u8>,
    },
    /// Cover a path with an empty read-only file or directory.
    Hide(PathBuf),
    /// Bind a directory inside the workspace onto itself, so that it cannot be renamed or
    /// removed (a directory on the way to a protected path: [`crate::protect`]).
    Pin(PathBuf),
    /// Make a path inside the workspace read-only with a bind of itself, creating an empty
    /// directory there first when it is missing (`[filesystem] protect`).
    Protect {
        /// The path made read-only.
        path: PathBuf,
        /// What protects it, as messages name it (`[filesystem] protect ".git/hooks/"`).
        key: String,
    },
}

/// The host's account files, read before the sandbox starts, from which an identity's
/// copies are made. `None` where a file could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// The host's /etc/passwd.
    pub passwd: Option<String>,
    /// The host's /etc/group.
    pub group: Option<String>,
}

impl Accounts {
    /// Reads the host's /etc/passwd and /etc/group.
    pub fn read_host() -> Accounts {
        Accounts {
            passwd: std::fs::read_to_string("/etc/passwd").ok(),
            group: std::fs::read_to_string("/etc/group").ok(),
        }
    }
}

/// The paths under which the sandbox must not see anything of the host's, and why.
pub(crate) const OWN_TREES: &[&str] = &["/tmp", "/dev", "/proc"];

/// The mount steps for `policy`, in the order they must run. `accounts` are the host's
/// account files, copied with a line for the policy's identity, if it has one.
pub fn plan(policy: &Policy, accounts: &Accounts) -> (Vec<Op>, Vec<String>) {
    let mut notes = Vec::new();
    let mut binds: Vec<Op> = vec![Op::Tmpfs("/tmp".into())];
    let own = |p: &Path| OWN_TREES.iter().any(|t| p == Path::new(t));
    // A read grant inside another one needs no mount of its own, unless a write grant lies
    // between them (its mount would hide the read-only view).
    let redundant = |p: &Path| {
        policy.read.iter().any(|outer| {
            outer != p
                && p.starts_with(outer)
                && !policy
                    .write
                    .iter()
                    .any(|w| w.starts_with(outer) && p.starts_with(w))
        })
    };
    for p in &policy.read {
        if redundant(p) {
            continue;
        }
        if own(p) {
            notes.push(format!(
                "{} is the sandbox's own; the host's is not shown",
                p.display()
            ));
        } else {
            binds.push(Op::ReadOnly(p.clone()));
        }
    }
    let exec_tree = |p: &Path| policy.exec_beneath.iter().any(|t| p.starts_with(&t.path));
    for p in &policy.write {
        if own(p) {
            notes.push(format!(
                "{} is the sandbox's own; the host's is not shown",
                p.display()
            ));
        } else {
            binds.push(Op::Writable {
                path: p.clone(),
                exec: exec_tree(p),
            });
        }
    }
    // An executable tree inside a noexec write grant (a workspace in a writable home) needs
    // a mount of its own, or the grant's noexec would cover it.
    for t in &policy.exec_beneath {
        let inside_write = policy
            .write
            .iter()
            .any(|w| t.path.starts_with(w) && !exec_tree(w));
        let bound = binds
            .iter()
            .any(|b| matches!(b, Op::Writable { path, .. } if *path == t.path));
        if inside_write && !bound && !own(&t.path) {
            binds.push(Op::Writable {
                path: t.path.clone(),
                exec: true,
            });
        }
    }
    // A program needs its own read-only, exec-capable bind when no read grant shows it, or
    // when it sits under a write grant (whose mount is noexec) outside an executable tree.
    for g in &policy.exec {
        let in_read = policy.read.iter().any(|r| g.path.starts_with(r));
        let in_write = policy.write.iter().any(|w| g.path.starts_with(w)) && !exec_tree(&g.path);
        if (!in_read || in_write)
            && !binds
                .iter()
                .any(|b| matches!(b, Op::ReadOnly(p) if *p == g.path))
        {
            binds.push(Op::ReadOnly(g.path.clone()));
        }
    }
    // Shallow before deep, so that a deeper grant lands on top of the one containing it.
    binds.sort_by_key(|op| depth(op_path(op)));
    let mut ops = binds;
    // On top of every grant, so that no deeper bind lands over a protection.
    ops.extend(crate::protect::plan(&policy.protect, &policy.workspace));
    for (path, target) in &policy.links {
        ops.push(Op::Link {
            path: path.clone(),
            target: target.clone(),
        });
    }
    ops.extend(account_files(policy, accounts));
    for h in &policy.hide {
        ops.push(Op::Hide(h.clone()));
    }
    (ops, notes)
}

/// The identity's /etc/passwd and /etc/group, where the policy shows the host's.
fn account_files(policy: &Policy, accounts: &Accounts) -> Vec<Op> {
    let Some(id) = &policy.identity else {
        return Vec::new();
    };
    let shown = |p: &Path| {
        policy
            .read
            .iter()
            .chain(policy.write.iter())
            .any(|g| p.starts_with(g))
            && !policy.hide.iter().any(|h| p.starts_with(h))
    };
    let mut ops = Vec::new();
    if let Some(host) = accounts
        .passwd
        .as_deref()
        .filter(|_| shown(Path::new("/etc/passwd")))
    {
        ops.push(Op::File {
            path: "/etc/passwd".into(),
            contents: identity::passwd_with(host, id, &policy.home).into_bytes(),
        });
    }
    if let Some(host) = accounts
        .group
        .as_deref()
        .filter(|_| shown(Path::new("/etc/group")))
    {
        ops.push(Op::File {
            path: "/etc/group".into(),
            contents: identity::group_with(host, id).into_bytes(),
        });
    }
    ops
}

fn op_path(op: &Op) -> &Path {
    match op {
        Op::ReadOnly(p)
        | Op::Writable { path: p, .. }
        | Op::Tmpfs(p)
        | Op::Hide(p)
        | Op::Pin(p)
        | Op::Protect { path: p, .. } => p,
        Op::Link { path, .. } | Op::File { path, .. } => path,
    }
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

const OLD: &str = "/oldroot";
const NEW: &str = "/newroot";
/// Where, in the scratch root, the files of [`Op::File`] are written before being bound.
const FILES: &str = "/files";

fn under(root: &str, p: &Path) -> PathBuf {
    Path::new(root).join(p.strip_prefix("/").unwrap_or(p))
}

/// `p` relative to `/`, as openat2 beneath a root wants it.
fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

fn fail(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Refusal {
    move |e| Refusal::os(Step::Mounts, what, e)
}

/// A path of the policy (canonical when it was resolved) is now a symbolic link, or has one
/// on its way: someone rewrote it while the sandbox started.
fn swapped(p: &Path) -> Refusal {
    Refusal::new(Step::Mounts, format!("{} changed into a symbolic link after it was checked", p.display())).hint(
        "something rewrote this path while the sandbox started; cordon never binds through a link. Run it again once the path holds still",
    )
}

/// An error opening `p` without links: [`swapped`] for a link, else `what` and the error.
fn open_error(p: &Path, what: String) -> impl FnOnce(std::io::Error) -> Refusal + '_ {
    move |e| {
        if sys::is_link_error(&e) {
            swapped(p)
        } else {
            Refusal::os(Step::Mounts, what, e)
        }
    }
}

/// Builds the new root and enters it. Runs as the sandbox's init, in its own mount and pid
/// namespaces, with the capabilities of that namespace's owner. `ttys` are the host paths
/// of the caller's terminal devices.
pub fn apply(ops: &[Op], ttys: &[PathBuf]) -> Result<(), Refusal> {
    // The directories made here are the sandbox's skeleton and must be searchable by an
    // identity, whatever umask the host runs with; the command gets the host's back.
    // SAFETY: umask cannot fail.
    let umask = unsafe { libc::umask(0o022) };
    let built = build(ops, ttys);
    // SAFETY: as above.
    unsafe { libc::umask(umask) };
    built
}

fn build(ops: &[Op], ttys: &[PathBuf]) -> Result<(), Refusal> {
    // Nothing done here may propagate back to the host.
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    )
    .map_err(fail("making / a slave mount"))?;
    // A scratch tmpfs becomes the root; the host's tree is kept at /oldroot to bind from.
    let scratch = Path::new("/tmp");
    sys::mount(
        Some(Path::new("tmpfs")),
        scratch,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(fail("mounting the scratch tmpfs"))?;
    for d in ["oldroot", "newroot", "files"] {
        std::fs::create_dir(scratch.join(d)).map_err(fail(format!("creating /{d}")))?;
    }
    sys::pivot_root(scratch, &scratch.join("oldroot"))
        .map_err(fail("pivot_root into the scratch tmpfs"))?;
    std::env::set_current_dir("/").map_err(fail("chdir /"))?;
    let new = Path::new(NEW);
    sys::mount(
        Some(Path::new("tmpfs")),
        new,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(fail("mounting the new root"))?;
    let old = sys::openat2(None, Path::new(OLD), libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(fail("opening the host's tree"))?;

    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::ReadOnly(p) => bind(
                &old,
                p,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )?,
            Op::Writable { path, exec } => bind(
                &old,
                path,
                if *exec {
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                } else {
                    MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                },
            )?,
            Op::Tmpfs(p) => tmpfs(p, "1777")?,
            Op::Link { path, target } => link(path, target),
            Op::File { path, contents } => file(i, path, contents)?,
            Op::Hide(p) => hide(&old, p)?,
            // Each opened afresh from the new root: through the pins mounted before it.
            Op::Pin(p) => crate::protect::apply_pin(&new_root()?, p)?,
            Op::Protect { path, key } => crate::protect::apply_protect(&new_root()?, path, key)?,
        }
    }
    dev(&old, ttys)?;
    proc()?;
    drop(old);

    std::env::set_current_dir(new).map_err(fail("chdir /newroot"))?;
    // pivot_root(".", ".") stacks the old root (the scratch tmpfs, the host's tree still at
    // its /oldroot) under the new one; detaching it, recursively, leaves only the new root.
    // One detach for both: each waits for an RCU grace period.
    sys::pivot_root(Path::new("."), Path::new("."))
        .map_err(fail("pivot_root into the new root"))?;
    // SAFETY: a valid C string literal.
    sys::check(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })
        .map_err(fail("detaching the scratch root and the host's tree"))?;
    std::env::set_current_dir("/").map_err(fail("chdir /"))?;
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
    .map_err(fail("making the new root read-only"))?;
    Ok(())
}

/// The new root, opened afresh: an fd opened before a mount landed on the root itself would
/// still show what is underneath.
fn new_root() -> Result<OwnedFd, Refusal> {
    sys::openat2(None, Path::new(NEW), libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(fail("opening the new root"))
}

/// Binds the host's `p` at the same path in the new root, with `attrs` on it and below.
fn bind(old: &OwnedFd, p: &Path, attrs: u64) -> Result<(), Refusal> {
    let src = sys::openat2(Some(old.as_fd()), rel(p), libc::O_PATH, 0, RESOLVE_STRICT).map_err(
        open_error(p, format!("{} (granted by the profile)", p.display())),
    )?;
    let is_dir = sys::file_type(src.as_fd())
        .map_err(fail(format!("{} (granted by the profile)", p.display())))?
        == libc::S_IFDIR;
    let tree = sys::clone_tree(src.as_fd()).map_err(fail(format!("binding {}", p.display())))?;
    // Set while the tree is detached: it is never visible writable or executable.
    sys::mount_setattr_fd(tree.as_fd(), attrs, true).map_err(fail(format!(
        "setting {} on {}",
        describe(attrs),
        p.display()
    )))?;
    let target = mountpoint(p, is_dir)?;
    sys::move_mount(tree.as_fd(), target.as_fd()).map_err(fail(format!("binding {}", p.display())))
}

fn describe(attrs: u64) -> String {
    let mut out = Vec::new();
    for (bit, name) in [
        (MOUNT_ATTR_RDONLY, "ro"),
        (MOUNT_ATTR_NOSUID, "nosuid"),
        (MOUNT_ATTR_NODEV, "nodev"),
        (MOUNT_ATTR_NOEXEC, "noexec"),
    ] {
        if attrs & bit != 0 {
            out.push(name);
        }
    }
    out.join(",")
}

/// The plain components of `p` below `/`.
fn components(p: &Path) -> Vec<&OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Opens `p` in the new root as a mountpoint (a directory when `dir`, else a file),
/// creating what is missing one component at a time, each relative to its parent's
/// descriptor, none through a link. Directories inside a bound user directory are created
/// there too (a nested grant needs its mountpoint), but never through a link.
fn mountpoint(p: &Path, dir: bool) -> Result<OwnedFd, Refusal> {
    let parts = components(p);
    let mut cur = new_root()?;
    let mut walked = PathBuf::from("/");
    for (i, name) in parts.iter().enumerate() {
        walked.push(name);
        let name = Path::new(name);
        let last = i + 1 == parts.len();
        if last && !dir {
            match sys::create_new_at(cur.as_fd(), name.as_os_str(), 0o644) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => {
                    return Err(Refusal::os(
                        Step::Mounts,
                        format!("creating {}", walked.display()),
                        e,
                    ))
                }
            }
            return sys::openat2(Some(cur.as_fd()), name, libc::O_PATH, 0, RESOLVE_STRICT)
                .map_err(open_error(&walked, format!("opening {}", walked.display())));
        }
        let open = |cur: &OwnedFd| {
            sys::openat2(
                Some(cur.as_fd()),
                name,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                RESOLVE_STRICT,
            )
        };
        cur = match open(&cur) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                match sys::mkdirat(cur.as_fd(), name.as_os_str(), 0o755) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => {
                        return Err(Refusal::os(
                            Step::Mounts,
                            format!("creating {}", walked.display()),
                            e,
                        ))
                    }
                }
                open(&cur).map_err(open_error(&walked, format!("opening {}", walked.display())))?
            }
            Err(e) => return Err(open_error(&walked, format!("opening {}", walked.display()))(e)),
        };
    }
    Ok(cur)
}

/// A fresh tmpfs (nosuid, nodev, noexec) with root directory `mode` at `p`.
fn tmpfs(p: &Path, mode: &str) -> Result<(), Refusal> {
    let fs = sys::new_fs(
        "tmpfs",
        &[("mode", mode)],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )
    .map_err(fail(format!(
        "creating a private tmpfs for {}",
        p.display()
    )))?;
    let target = mountpoint(p, true)?;
    sys::move_mount(fs.as_fd(), target.as_fd())
        .map_err(fail(format!("mounting a private tmpfs on {}", p.display())))
}

/// Recreates a link of the host's inside the new root. A link that cannot be made (its
/// place is taken, read-only, or reached through another link) only hides a path; the
/// grants stand.
fn link(path: &Path, target: &Path) {
    let Some((name, parent)) = path.file_name().zip(path.parent()) else {
        return;
    };
    let Ok(dir) = mountpoint(parent, true) else {
        return;
    };
    let (Ok(name), Ok(target)) = (sys::cstr(Path::new(name)), sys::cstr(target)) else {
        return;
    };
    // SAFETY: two valid C strings and an open directory fd.
    unsafe {
        libc::symlinkat(
            target.as_ptr(),
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            name.as_ptr(),
        )
    };
}

/// Writes `contents` to a file of the scratch root (a private tmpfs) and binds it,
/// read-only, over `path` when the new root shows a file there.
fn file(index: usize, path: &Path, contents: &[u8]) -> Result<(), Refusal> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let root = new_root()?;
    let target = match sys::openat2(
        Some(root.as_fd()),
        rel(path),
        libc::O_PATH,
        0,
        RESOLVE_STRICT,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(open_error(path, format!("opening {}", path.display()))(e)),
    };
    if sys::file_type(target.as_fd()).ok() != Some(libc::S_IFREG) {
        return Ok(());
    }
    let src = Path::new(FILES).join(index.to_string());
    let what = || format!("writing the sandbox's {}", path.display());
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&src)
        .and_then(|mut f| f.write_all(contents))
        .map_err(fail(what()))?;
    let src = sys::openat2(None, &src, libc::O_PATH, 0, 0).map_err(fail(what()))?;
    let tree = sys::clone_tree(src.as_fd()).map_err(fail(what()))?;
    sys::mount_setattr_fd(
        tree.as_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        true,
    )
    .map_err(fail(what()))?;
    sys::move_mount(tree.as_fd(), target.as_fd())
        .map_err(fail(format!("showing the sandbox's {}", path.display())))
}

/// Covers `p` (when the new root shows it) with an empty read-only file or directory.
fn hide(old: &OwnedFd, p: &Path) -> Result<(), Refusal> {
    let root = new_root()?;
    let target = match sys::openat2(Some(root.as_fd()), rel(p), libc::O_PATH, 0, RESOLVE_STRICT) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(open_error(p, format!("hiding {}", p.display()))(e)),
    };
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    let cover = if sys::file_type(target.as_fd())
        .map_err(fail(format!("hiding {}", p.display())))?
        == libc::S_IFDIR
    {
        sys::new_fs("tmpfs", &[("mode", "0755"), ("size", "4k")], attrs)
    } else {
        sys::openat2(
            Some(old.as_fd()),
            Path::new("dev/null"),
            libc::O_PATH,
            0,
            RESOLVE_STRICT,
        )
        .and_then(|null| {
            let tree = sys::clone_tree(null.as_fd())?;
            sys::mount_setattr_fd(tree.as_fd(), attrs, true)?;
            Ok(tree)
        })
    }
    .map_err(fail(format!("hiding {}", p.display())))?;
    sys::move_mount(cover.as_fd(), target.as_fd()).map_err(fail(format!("hiding {}", p.display())))
}

/// A minimal /dev: null, zero, full, random, urandom, tty, the caller's terminal, a private
/// /dev/shm, and the usual symlinks. No ptmx, no disks, no /dev/mem.
fn dev(old: &OwnedFd, ttys: &[PathBuf]) -> Result<(), Refusal> {
    let devfs = sys::new_fs(
        "tmpfs",
        &[("mode", "0755")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    )
    .map_err(fail("creating /dev"))?;
    let target = mountpoint(Path::new("/dev"), true)?;
    sys::move_mount(devfs.as_fd(), target.as_fd()).map_err(fail("mounting /dev"))?;
    let mut devices: Vec<PathBuf> = ["null", "zero", "full", "random", "urandom", "tty"]
        .iter()
        .map(|d| Path::new("/dev").join(d))
        .collect();
    devices.extend(ttys.iter().filter(|t| t.starts_with("/dev/")).cloned());
    for d in &devices {
        // The host's /dev is the host's own (no session writes there): its links, if any,
        // are followed; magic links are not.
        let Ok(src) = sys::openat2(
            Some(old.as_fd()),
            rel(d),
            libc::O_PATH,
            0,
            sys::RESOLVE_NO_MAGICLINKS,
        ) else {
            continue;
        };
        let tree =
            sys::clone_tree(src.as_fd()).map_err(fail(format!("binding {}", d.display())))?;
        sys::mount_setattr_fd(tree.as_fd(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, true)
            .map_err(fail(format!("securing {}", d.display())))?;
        let target = mountpoint(d, false)?;
        sys::move_mount(tree.as_fd(), target.as_fd())
            .map_err(fail(format!("binding {}", d.display())))?;
    }
    let dev = under(NEW, Path::new("/dev"));
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(fail(format!("creating /dev/{link}")))?;
    }
    tmpfs(Path::new("/dev/shm"), "1777")?;
    mountpoint(Path::new("/dev/pts"), true)?;
    // Nothing new can be created in /dev; not recursive, so that the devices and /dev/shm
    // keep their own attributes.
    sys::mount_setattr_fd(
        devfs.as_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
        false,
    )
    .map_err(fail("making /dev read-only"))?;
    Ok(())
}

/// The pid namespace's own /proc, with /proc/sys read-only.
fn proc() -> Result<(), Refusal> {
    let procfs = sys::new_fs(
        "proc",
        &[],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )
    .map_err(fail("creating /proc"))?;
    let target = mountpoint(Path::new("/proc"), true)?;
    sys::move_mount(procfs.as_fd(), target.as_fd()).map_err(fail("mounting /proc"))?;
    let sys_dir = sys::openat2(
        Some(procfs.as_fd()),
        Path::new("sys"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_STRICT,
    )
    .map_err(fail("opening /proc/sys"))?;
    let tree = sys::clone_tree(sys_dir.as_fd()).map_err(fail("binding /proc/sys"))?;
    sys::mount_setattr_fd(
        tree.as_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        true,
    )
    .map_err(fail("making /proc/sys read-only"))?;
    sys::move_mount(tree.as_fd(), sys_dir.as_fd()).map_err(fail("binding /proc/sys"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ExecGrant, ExecTree, Identity, Network, Place};
    use crate::profile::NetMode;

    fn policy() -> Policy {
        Policy {
            profile: "t".into(),
            sources: vec![],
            description: String::new(),
            workspace: "/home/u/src".into(),
            home: "/home/u".into(),
            cwd: "/home/u/src".into(),
            read: vec![
                "/usr".into(),
                "/home/u/.cargo".into(),
                "/tmp".into(),
                "/usr/lib".into(),
            ],
            write: vec!["/home/u/src".into(), "/home/u".into()],
            hide: vec!["/etc/shadow".into()],
            links: vec![("/bin".into(), "usr/bin".into())],
            exec_beneath: vec![],
            exec: vec![
                ExecGrant {
                    path: "/usr/bin/git".into(),
                    dir: false,
                    reason: String::new(),
                    entry: None,
                },
                ExecGrant {
                    path: "/opt/tool/bin/tool".into(),
                    dir: false,
                    reason: String::new(),
                    entry: None,
                },
                ExecGrant {
                    path: "/home/u/.local/bin/claude".into(),
                    dir: false,
                    reason: String::new(),
                    entry: None,
                },
            ],
            network: Network {
                mode: NetMode::None,
                connect: vec![],
                bind: vec![],
                udp: false,
                egress: Default::default(),
                unknown: Default::default(),
                ask_wait: 60,
            },
            limits: Default::default(),
            env: vec![],
            secrets: vec![],
            argv: vec![],
            program: "/usr/bin/git".into(),
            notes: vec![],
            identity: None,
            no_links: false,
            protect: vec![],
        }
    }

    fn host_accounts() -> Accounts {
        Accounts {
            passwd: Some("root:x:0:0:root:/root:/bin/bash\n".into()),
            group: Some("root:x:0:\n".into()),
        }
    }

    fn alice() -> Option<Identity> {
        Some(Identity {
            uid: 2_000_000_123,
            gid: 2_000_000_124,
            name: "alice".into(),
        })
    }

    fn w(p: &str, exec: bool) -> Op {
        Op::Writable {
            path: p.into(),
            exec,
        }
    }

    #[test]
    fn write_grants_are_noexec_unless_beneath_a_tree_the_profile_makes_executable() {
        let (ops, _) = plan(&policy(), &Accounts::default());
        assert!(ops.contains(&w("/home/u/src", false)) && ops.contains(&w("/home/u", false)));

        let mut p = policy();
        p.exec_beneath.push(ExecTree {
            path: "/home/u/src".into(),
            place: Place::Workspace,
        });
        let (ops, _) = plan(&p, &Accounts::default());
        assert!(ops.contains(&w("/home/u/src", true)), "{ops:?}");
        assert!(
            ops.contains(&w("/home/u", false)),
            "the home keeps noexec: {ops:?}"
        );

        // A workspace that is no write grant of its own, inside a writable home, gets its own
        // executable bind on top of the home's.
        p.write.retain(|g| g != Path::new("/home/u/src"));
        let (ops, _) = plan(&p, &Accounts::default());
        let pos = |op: &Op| ops.iter().position(|o| o == op);
        assert!(
            pos(&w("/home/u", false)) < pos(&w("/home/u/src", true)),
            "{ops:?}"
        );
        assert!(pos(&w("/home/u/src", true)).is_some(), "{ops:?}");
    }

    #[test]
    fn deeper_grants_are_mounted_after_the_ones_containing_them() {
        let (ops, _) = plan(&policy(), &Accounts::default());
        let pos = |op: &Op| ops.iter().position(|o| o == op).unwrap();
        assert!(pos(&w("/home/u", false)) < pos(&w("/home/u/src", false)));
        assert!(pos(&w("/home/u", false)) < pos(&Op::ReadOnly("/home/u/.cargo".into())));
        assert!(pos(&Op::Tmpfs("/tmp".into())) == 0);
        assert!(
            matches!(ops.last(), Some(Op::Hide(_))),
            "hides come last: {ops:?}"
        );
    }

    #[test]
    fn the_host_tmp_is_never_shown() {
        let (ops, notes) = plan(&policy(), &Accounts::default());
        assert!(!ops.contains(&Op::ReadOnly("/tmp".into())));
        assert!(notes.iter().any(|n| n.contains("/tmp")));
    }

    #[test]
    fn programs_outside_read_grants_or_under_write_grants_get_their_own_bind() {
        let (ops, _) = plan(&policy(), &Accounts::default());
        assert!(ops.contains(&Op::ReadOnly("/opt/tool/bin/tool".into())));
        assert!(
            ops.contains(&Op::ReadOnly("/home/u/.local/bin/claude".into())),
            "under a noexec write grant"
        );
        assert!(
            !ops.contains(&Op::ReadOnly("/usr/bin/git".into())),
            "already visible through /usr"
        );
        assert!(
            !ops.contains(&Op::ReadOnly("/usr/lib".into())),
            "already visible through /usr"
        );
    }

    #[test]
    fn an_identity_sees_its_own_name_in_passwd_and_group() {
        let mut p = policy();
        p.read.push("/etc".into());
        p.identity = alice();
        let (ops, _) = plan(&p, &host_accounts());
        let file = |path: &str| {
            ops.iter()
                .find_map(|o| match o {
                    Op::File { path: q, contents } if q == Path::new(path) => {
                        Some(String::from_utf8(contents.clone()).unwrap())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no file op for {path}: {ops:?}"))
        };
        assert_eq!(
            file("/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nalice:x:2000000123:2000000124:cordon user alice:/home/u:/bin/sh\n"
        );
        assert_eq!(file("/etc/group"), "root:x:0:\nalice:x:2000000124:\n");
        let pos = |f: &dyn Fn(&Op) -> bool| ops.iter().position(f).unwrap();
        assert!(
            pos(&|o| matches!(o, Op::ReadOnly(p) if p == Path::new("/etc")))
                < pos(&|o| matches!(o, Op::File { .. }))
        );
    }

    #[test]
    fn no_account_file_is_shown_without_an_identity_or_where_etc_is_not_shown() {
        let mut p = policy();
        p.read.push("/etc".into());
        let (ops, _) = plan(&p, &host_accounts());
        assert!(
            !ops.iter().any(|o| matches!(o, Op::File { .. })),
            "no identity: {ops:?}"
        );

        let mut p = policy();
        p.identity = alice();
        let (ops, _) = plan(&p, &host_accounts());
        assert!(
            !ops.iter().any(|o| matches!(o, Op::File { .. })),
            "/etc not granted: {ops:?}"
        );

        let mut p = policy();
        p.read.push("/etc".into());
        p.hide.push("/etc/group".into());
        p.identity = alice();
        let (ops, _) = plan(
            &p,
            &Accounts {
                passwd: None,
                ..host_accounts()
            },
        );
        assert!(
            !ops.iter().any(|o| matches!(o, Op::File { .. })),
            "passwd unreadable, group hidden: {ops:?}"
        );
    }
}
