//! The sandbox's filesystem: a fresh root holding only what the policy grants, built the way
//! bubblewrap builds one. Read grants are read-only binds; write grants are read-write binds
//! that are always `noexec` (nothing the session writes can be executed, not by execve,
//! not by the dynamic loader, which needs PROT_EXEC mappings); /tmp and /dev/shm are
//! private; /dev holds a handful of devices and the caller's terminal; /proc is the sandbox's
//! own. [`plan`] decides (pure); [`apply`] performs it inside a new mount namespace.

use crate::error::{Refusal, Step};
use crate::policy::Policy;
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::path::{Path, PathBuf};

/// One step in building the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Bind the host's `path` at the same place: read-only, and executable where Landlock
    /// allows it.
    ReadOnly(PathBuf),
    /// Bind the host's `path` read-write, `noexec`.
    Writable(PathBuf),
    /// A fresh private tmpfs, `noexec`.
    Tmpfs(PathBuf),
    /// Recreate a symlink (`/bin -> usr/bin`) so that paths through it still resolve.
    Link {
        /// Where the link is.
        path: PathBuf,
        /// What it points to, as written.
        target: PathBuf,
    },
    /// Cover a path with an empty read-only file or directory.
    Hide(PathBuf),
}

/// The paths under which the sandbox must not see anything of the host's, and why.
const OWN_TREES: &[&str] = &["/tmp", "/dev", "/proc"];

/// The mount steps for `policy`, in the order they must run.
pub fn plan(policy: &Policy) -> (Vec<Op>, Vec<String>) {
    let mut notes = Vec::new();
    let mut binds: Vec<Op> = vec![Op::Tmpfs("/tmp".into())];
    let own = |p: &Path| OWN_TREES.iter().any(|t| p == Path::new(t));
    // A read grant inside another one needs no mount of its own, unless a write grant lies
    // between them (its mount would hide the read-only view).
    let redundant = |p: &Path| {
        policy
            .read
            .iter()
            .any(|outer| outer != p && p.starts_with(outer) && !policy.write.iter().any(|w| w.starts_with(outer) && p.starts_with(w)))
    };
    for p in &policy.read {
        if redundant(p) {
            continue;
        }
        if own(p) {
            notes.push(format!("{} is the sandbox's own; the host's is not shown", p.display()));
        } else {
            binds.push(Op::ReadOnly(p.clone()));
        }
    }
    for p in &policy.write {
        if own(p) {
            notes.push(format!("{} is the sandbox's own; the host's is not shown", p.display()));
        } else {
            binds.push(Op::Writable(p.clone()));
        }
    }
    // A program needs its own read-only, exec-capable bind when no read grant shows it, or
    // when it sits under a write grant (whose mount is noexec).
    for g in &policy.exec {
        let in_read = policy.read.iter().any(|r| g.path.starts_with(r));
        let in_write = policy.write.iter().any(|w| g.path.starts_with(w));
        if (!in_read || in_write) && !binds.iter().any(|b| matches!(b, Op::ReadOnly(p) if *p == g.path)) {
            binds.push(Op::ReadOnly(g.path.clone()));
        }
    }
    // Shallow before deep, so that a deeper grant lands on top of the one containing it.
    binds.sort_by_key(|op| depth(op_path(op)));
    let mut ops = binds;
    for (path, target) in &policy.links {
        ops.push(Op::Link { path: path.clone(), target: target.clone() });
    }
    for h in &policy.hide {
        ops.push(Op::Hide(h.clone()));
    }
    (ops, notes)
}

fn op_path(op: &Op) -> &Path {
    match op {
        Op::ReadOnly(p) | Op::Writable(p) | Op::Tmpfs(p) | Op::Hide(p) => p,
        Op::Link { path, .. } => path,
    }
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

const OLD: &str = "/oldroot";
const NEW: &str = "/newroot";

fn under(root: &str, p: &Path) -> PathBuf {
    Path::new(root).join(p.strip_prefix("/").unwrap_or(p))
}

fn fail(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Refusal {
    move |e| Refusal::os(Step::Mounts, what, e)
}

/// Builds the new root and enters it. Runs as the sandbox's init, in its own mount and pid
/// namespaces, with the capabilities of that namespace's owner. `ttys` are the host paths
/// of the caller's terminal devices.
pub fn apply(ops: &[Op], ttys: &[PathBuf]) -> Result<(), Refusal> {
    // Nothing done here may propagate back to the host.
    sys::mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_SLAVE, None).map_err(fail("making / a slave mount"))?;
    // A scratch tmpfs becomes the root; the host's tree is kept at /oldroot to bind from.
    let scratch = Path::new("/tmp");
    sys::mount(Some(Path::new("tmpfs")), scratch, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=0755"))
        .map_err(fail("mounting the scratch tmpfs"))?;
    for d in ["oldroot", "newroot"] {
        std::fs::create_dir(scratch.join(d)).map_err(fail(format!("creating /{d}")))?;
    }
    sys::pivot_root(scratch, &scratch.join("oldroot")).map_err(fail("pivot_root into the scratch tmpfs"))?;
    std::env::set_current_dir("/").map_err(fail("chdir /"))?;
    let new = Path::new(NEW);
    sys::mount(Some(Path::new("tmpfs")), new, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=0755"))
        .map_err(fail("mounting the new root"))?;

    for op in ops {
        match op {
            Op::ReadOnly(p) => bind(p, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?,
            Op::Writable(p) => bind(p, MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?,
            Op::Tmpfs(p) => tmpfs(&under(NEW, p))?,
            Op::Link { path, target } => {
                let dest = under(NEW, path);
                if std::fs::symlink_metadata(&dest).is_err() {
                    if let Some(parent) = dest.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    // A link that cannot be made only hides a path; the grants stand.
                    let _ = std::os::unix::fs::symlink(target, &dest);
                }
            }
            Op::Hide(p) => hide(p)?,
        }
    }
    dev(ttys)?;
    proc()?;

    // SAFETY: a valid C string literal.
    sys::check(unsafe { libc::umount2(c"/oldroot".as_ptr(), libc::MNT_DETACH) }).map_err(fail("detaching the host's tree"))?;
    std::env::set_current_dir(new).map_err(fail("chdir /newroot"))?;
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only
    // the new root.
    sys::pivot_root(Path::new("."), Path::new(".")).map_err(fail("pivot_root into the new root"))?;
    // SAFETY: a valid C string literal.
    sys::check(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) }).map_err(fail("detaching the scratch root"))?;
    std::env::set_current_dir("/").map_err(fail("chdir /"))?;
    sys::mount(None, Path::new("/"), None, libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV, None)
        .map_err(fail("making the new root read-only"))?;
    Ok(())
}

/// Binds the host's `p` at the same path in the new root, with `attrs` on it and below.
fn bind(p: &Path, attrs: u64) -> Result<(), Refusal> {
    let src = under(OLD, p);
    let dest = under(NEW, p);
    let meta = std::fs::metadata(&src).map_err(fail(format!("{} (granted by the profile)", p.display())))?;
    make_mountpoint(&dest, meta.is_dir())?;
    sys::mount(Some(&src), &dest, None, libc::MS_BIND | libc::MS_REC, None).map_err(fail(format!("binding {}", p.display())))?;
    sys::mount_setattr_recursive(&dest, attrs).map_err(fail(format!("setting {} on {}", describe(attrs), p.display())))?;
    Ok(())
}

fn describe(attrs: u64) -> String {
    let mut out = Vec::new();
    for (bit, name) in
        [(MOUNT_ATTR_RDONLY, "ro"), (MOUNT_ATTR_NOSUID, "nosuid"), (MOUNT_ATTR_NODEV, "nodev"), (MOUNT_ATTR_NOEXEC, "noexec")]
    {
        if attrs & bit != 0 {
            out.push(name);
        }
    }
    out.join(",")
}

fn make_mountpoint(dest: &Path, dir: bool) -> Result<(), Refusal> {
    if std::fs::symlink_metadata(dest).is_ok() {
        return Ok(());
    }
    if dir {
        std::fs::create_dir_all(dest).map_err(fail(format!("creating {}", dest.display())))
    } else {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(fail(format!("creating {}", parent.display())))?;
        }
        std::fs::File::create(dest).map(drop).map_err(fail(format!("creating {}", dest.display())))
    }
}

fn tmpfs(dest: &Path) -> Result<(), Refusal> {
    make_mountpoint(dest, true)?;
    sys::mount(Some(Path::new("tmpfs")), dest, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, Some("mode=1777"))
        .map_err(fail(format!("mounting a private tmpfs on {}", dest.display())))
}

/// Covers `p` (when the new root shows it) with an empty read-only file or directory.
fn hide(p: &Path) -> Result<(), Refusal> {
    let dest = under(NEW, p);
    let Ok(meta) = std::fs::symlink_metadata(&dest) else { return Ok(()) };
    if meta.is_dir() {
        sys::mount(
            Some(Path::new("tmpfs")),
            &dest,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=0755,size=4k"),
        )
        .map_err(fail(format!("hiding {}", p.display())))
    } else {
        sys::mount(Some(&under(OLD, Path::new("/dev/null"))), &dest, None, libc::MS_BIND, None)
            .map_err(fail(format!("hiding {}", p.display())))?;
        sys::mount_setattr_recursive(&dest, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)
            .map_err(fail(format!("hiding {}", p.display())))
    }
}

/// A minimal /dev: null, zero, full, random, urandom, tty, the caller's terminal, a private
/// /dev/shm, and the usual symlinks. No ptmx, no disks, no /dev/mem.
fn dev(ttys: &[PathBuf]) -> Result<(), Refusal> {
    let dev = under(NEW, Path::new("/dev"));
    make_mountpoint(&dev, true)?;
    sys::mount(Some(Path::new("tmpfs")), &dev, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some("mode=0755"))
        .map_err(fail("mounting /dev"))?;
    let mut devices: Vec<PathBuf> =
        ["null", "zero", "full", "random", "urandom", "tty"].iter().map(|d| Path::new("/dev").join(d)).collect();
    devices.extend(ttys.iter().filter(|t| t.starts_with("/dev/")).cloned());
    for d in &devices {
        let src = under(OLD, d);
        if std::fs::metadata(&src).is_err() {
            continue;
        }
        let dest = under(NEW, d);
        make_mountpoint(&dest, false)?;
        sys::mount(Some(&src), &dest, None, libc::MS_BIND, None).map_err(fail(format!("binding {}", d.display())))?;
        sys::mount_setattr_recursive(&dest, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC).map_err(fail(format!("securing {}", d.display())))?;
    }
    for (link, target) in
        [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
    {
        std::os::unix::fs::symlink(target, dev.join(link)).map_err(fail(format!("creating /dev/{link}")))?;
    }
    tmpfs(&dev.join("shm"))?;
    make_mountpoint(&dev.join("pts"), true)?;
    sys::mount(None, &dev, None, libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC, None)
        .map_err(fail("making /dev read-only"))?;
    Ok(())
}

/// The pid namespace's own /proc, with /proc/sys read-only.
fn proc() -> Result<(), Refusal> {
    let proc = under(NEW, Path::new("/proc"));
    make_mountpoint(&proc, true)?;
    sys::mount(Some(Path::new("proc")), &proc, Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
        .map_err(fail("mounting /proc"))?;
    let sys_dir = proc.join("sys");
    sys::mount(Some(&sys_dir), &sys_dir, None, libc::MS_BIND | libc::MS_REC, None).map_err(fail("binding /proc/sys"))?;
    sys::mount_setattr_recursive(&sys_dir, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
        .map_err(fail("making /proc/sys read-only"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ExecGrant, Network};
    use crate::profile::NetMode;

    fn policy() -> Policy {
        Policy {
            profile: "t".into(),
            sources: vec![],
            description: String::new(),
            workspace: "/home/u/src".into(),
            home: "/home/u".into(),
            cwd: "/home/u/src".into(),
            read: vec!["/usr".into(), "/home/u/.cargo".into(), "/tmp".into(), "/usr/lib".into()],
            write: vec!["/home/u/src".into(), "/home/u".into()],
            hide: vec!["/etc/shadow".into()],
            links: vec![("/bin".into(), "usr/bin".into())],
            exec: vec![
                ExecGrant { path: "/usr/bin/git".into(), dir: false, reason: String::new(), entry: None },
                ExecGrant { path: "/opt/tool/bin/tool".into(), dir: false, reason: String::new(), entry: None },
                ExecGrant { path: "/home/u/.local/bin/claude".into(), dir: false, reason: String::new(), entry: None },
            ],
            network: Network { mode: NetMode::None, connect: vec![], bind: vec![], udp: false },
            limits: Default::default(),
            env: vec![],
            argv: vec![],
            program: "/usr/bin/git".into(),
            notes: vec![],
        }
    }

    #[test]
    fn deeper_grants_are_mounted_after_the_ones_containing_them() {
        let (ops, _) = plan(&policy());
        let pos = |op: &Op| ops.iter().position(|o| o == op).unwrap();
        assert!(pos(&Op::Writable("/home/u".into())) < pos(&Op::Writable("/home/u/src".into())));
        assert!(pos(&Op::Writable("/home/u".into())) < pos(&Op::ReadOnly("/home/u/.cargo".into())));
        assert!(pos(&Op::Tmpfs("/tmp".into())) == 0);
        assert!(matches!(ops.last(), Some(Op::Hide(_))), "hides come last: {ops:?}");
    }

    #[test]
    fn the_host_tmp_is_never_shown() {
        let (ops, notes) = plan(&policy());
        assert!(!ops.contains(&Op::ReadOnly("/tmp".into())));
        assert!(notes.iter().any(|n| n.contains("/tmp")));
    }

    #[test]
    fn programs_outside_read_grants_or_under_write_grants_get_their_own_bind() {
        let (ops, _) = plan(&policy());
        assert!(ops.contains(&Op::ReadOnly("/opt/tool/bin/tool".into())));
        assert!(ops.contains(&Op::ReadOnly("/home/u/.local/bin/claude".into())), "under a noexec write grant");
        assert!(!ops.contains(&Op::ReadOnly("/usr/bin/git".into())), "already visible through /usr");
        assert!(!ops.contains(&Op::ReadOnly("/usr/lib".into())), "already visible through /usr");
    }
}
