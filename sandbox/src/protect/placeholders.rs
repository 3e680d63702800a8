//! Placeholders: the empty read-only directories that hold missing protected paths while
//! sandboxes of a workspace run, and their removal by the last one to end.

use super::Protected;
use crate::sys;
use std::path::{Path, PathBuf};

/// The placeholders of one sandbox, removed when it ends, unless another sandbox on the
/// same workspace still runs: removing a directory from outside detaches the mounts on it
/// in every other mount namespace, so a running session would lose the protection there.
/// Sandboxes of a workspace hold a shared lock on a file of its own (by device and inode)
/// in a directory no sandbox sees (`/run/cordon/protect` as root, else
/// `$XDG_RUNTIME_DIR/cordon-protect`), noting there the placeholders each made; the last
/// one out takes it exclusively and removes them all.
/// Without such a directory, placeholders stay (empty directories; safe, only untidy).
#[derive(Debug)]
pub struct Placeholders {
    lock: Option<std::fs::File>,
    list: Vec<PathBuf>,
}

impl Placeholders {
    /// Takes the workspace's shared lock, before the sandbox creates anything, and notes
    /// its placeholders in the lock file, for whichever sandbox of the workspace ends last.
    pub fn hold(workspace: &Path, list: &[Protected]) -> Placeholders {
        use std::io::Write;
        // Every sandbox that protects anything holds the lock, not only one that made
        // placeholders: a sandbox that starts while another's placeholders exist finds
        // them as existing paths and binds them read-only; were it not holding the lock,
        // the other's end would remove them, and with them its protection.
        let lock = if list.is_empty() {
            None
        } else {
            lock_file(workspace)
        };
        let list: Vec<PathBuf> = list.iter().filter_map(|p| p.placeholder.clone()).collect();
        if let Some(mut f) = lock.as_ref() {
            // SAFETY: an open file; blocks only while another sandbox tidies up.
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(f), libc::LOCK_SH) };
            let mut lines = String::new();
            for p in list
                .iter()
                .filter_map(|p| p.to_str())
                .filter(|p| !p.contains('\n'))
            {
                lines.push_str(p);
                lines.push('\n');
            }
            // One append: whole lines, whatever other sandboxes append at the same time.
            let _ = f.write_all(lines.as_bytes());
        }
        Placeholders { lock, list }
    }

    /// Removes the placeholders noted by every sandbox of the workspace that are still
    /// empty directories, beneath their parents and without links, when no other sandbox of
    /// the workspace runs.
    pub fn finish(self) {
        use std::io::{Read, Seek};
        let Some(mut f) = self.lock.as_ref() else {
            return;
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(f);
        // SAFETY: an open file.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return;
        }
        let mut noted = String::new();
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = f.take(1 << 20).read_to_string(&mut noted);
        let noted: Vec<PathBuf> = noted.lines().map(PathBuf::from).collect();
        // Ours are among those noted (unless the note was lost): each is removed once.
        let all: std::collections::BTreeSet<&PathBuf> = self.list.iter().chain(&noted).collect();
        for ph in all {
            remove_empty_dir(ph);
        }
        let _ = f.set_len(0);
    }
}

/// The placeholders that the sandboxes of `workspace` running now have noted (absolute
/// paths), read without taking the lock: what a host leaves out when it sums up the files a
/// session changed. Empty where there is no private place for the list.
pub fn noted(workspace: &Path) -> Vec<PathBuf> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = lock_dir().and_then(|dir| lock_path(&dir, workspace)) else {
        return Vec::new();
    };
    let mut text = String::new();
    let read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|f| f.take(1 << 20).read_to_string(&mut text));
    match read {
        Ok(_) => text.lines().map(PathBuf::from).collect(),
        Err(_) => Vec::new(),
    }
}

/// Where the lock files are: `/run/cordon/protect` as root, else
/// `$XDG_RUNTIME_DIR/cordon-protect`.
fn lock_dir_path() -> Option<PathBuf> {
    if crate::identity::Caller::current().is_root() {
        Some(PathBuf::from("/run/cordon/protect"))
    } else {
        Some(PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?).join("cordon-protect"))
    }
}

/// `dir`, if it is a directory private to this uid.
fn private(dir: PathBuf) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    // SAFETY: getuid cannot fail.
    if !meta.is_dir() || meta.uid() != unsafe { libc::getuid() } || meta.mode() & 0o022 != 0 {
        return None;
    }
    Some(dir)
}

/// The lock directory, when it exists and is private.
fn lock_dir() -> Option<PathBuf> {
    lock_dir_path().and_then(private)
}

/// The lock file of `workspace` in `dir`: named by its device and inode.
fn lock_path(dir: &Path, workspace: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ws = std::fs::metadata(workspace).ok()?;
    Some(dir.join(format!("{:x}-{:x}", ws.dev(), ws.ino())))
}

/// The lock file of `workspace`'s sandboxes, created if needed; `None` where there is no
/// private place for it.
fn lock_file(workspace: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = lock_dir_path()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let path = lock_path(&private(dir)?, workspace)?;
    std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()
}

/// rmdir `p`, its parent opened without links; anything but an empty directory stays.
fn remove_empty_dir(p: &Path) {
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return;
    };
    let Ok(dir) = sys::openat2(
        None,
        parent,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    ) else {
        return;
    };
    let Ok(name) = sys::cstr(Path::new(name)) else {
        return;
    };
    // SAFETY: an open directory fd and a valid C string; rmdir never follows a link and
    // fails on anything but an empty directory.
    unsafe {
        libc::unlinkat(
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            name.as_ptr(),
            libc::AT_REMOVEDIR,
        )
    };
}
