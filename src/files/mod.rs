//! A user's files as one tree, for copying files in and out (SFTP): `/home` is their home,
//! `/workspace` their workspace folder, each a root the host holds open by a directory
//! descriptor (more roots can join the list). Paths are made plain lexically first
//! ([`path`]); then everything is opened beneath its root's descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` and acted on
//! through descriptors (fstat, pread, pwrite, mkdirat, unlinkat, renameat2, a listing read
//! from the folder's descriptor). Links inside are listed as links, never followed, and none
//! can be made; owners cannot be changed; open files, read lengths and listing batches are
//! bounded. The operations run on a [`worker::Worker`] thread acting as the user.
//!
//! Knows nothing of users, roles or the audit log: the service decides who may use a tree
//! and records what was done with it.

pub mod path;
pub mod worker;

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

pub use path::{PathError, TreePath};
pub use worker::Worker;

use crate::nofollow;

/// The most files and folders one session may hold open.
pub const MAX_OPEN: usize = 64;
/// The most bytes one read answers with.
pub const MAX_READ: u32 = 64 << 10;
/// The most entries one listing batch holds.
pub const MAX_BATCH: usize = 128;

/// Why an operation on the tree did not happen. Each names the path as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0}: no such file or folder")]
    NotFound(String),
    #[error("{0} is or passes through a symbolic link; cordon does not follow links in homes and workspaces (copy the target itself)")]
    Link(String),
    #[error("{0}: permission denied")]
    Denied(String),
    #[error("{0} is not a regular file; only regular files are copied")]
    NotRegular(String),
    #[error(
        "{0}: the top of the tree holds only home and workspace; copy into /home or /workspace"
    )]
    Top(String),
    #[error("{what} is not offered: {why}")]
    Unsupported {
        what: &'static str,
        why: &'static str,
    },
    #[error("already {MAX_OPEN} files and folders open in this session; close some first")]
    TooManyOpen,
    #[error("no open file or folder \"{0}\"")]
    NoHandle(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// The kernel's answer for `path`, in the tree's words: a link met on the way (ELOOP,
    /// or EXDEV from RESOLVE_BENEATH) is a link, never a missing file.
    fn at(path: &TreePath, e: io::Error) -> FileError {
        let shown = path.shown();
        match e.raw_os_error() {
            Some(libc::ELOOP | libc::EXDEV) => FileError::Link(shown),
            Some(libc::ENOENT | libc::ENOTDIR) => FileError::NotFound(shown),
            Some(libc::EACCES | libc::EPERM) => FileError::Denied(shown),
            _ => FileError::Io {
                path: shown,
                source: e,
            },
        }
    }

    /// A refusal (a link, a permission, something not offered), as opposed to a file that
    /// is missing or a failure of the disk: the service audits refusals.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FileError::Link(_)
                | FileError::Denied(_)
                | FileError::NotRegular(_)
                | FileError::Top(_)
                | FileError::Unsupported { .. }
                | FileError::TooManyOpen
        )
    }
}

type Result<T> = std::result::Result<T, FileError>;

/// What a client is told about a file: lstat's fields (a link's own, never its target's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// The type and permission bits (st_mode).
    pub mode: u32,
    pub atime: u32,
    pub mtime: u32,
}

impl Attrs {
    fn of(st: &libc::stat) -> Attrs {
        Attrs {
            size: st.st_size as u64,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
            atime: st.st_atime.clamp(0, u32::MAX as i64) as u32,
            mtime: st.st_mtime.clamp(0, u32::MAX as i64) as u32,
        }
    }
}

/// How a file is opened (SFTP's pflags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenMode {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub create: bool,
    pub truncate: bool,
    pub exclusive: bool,
}

/// What a client may change (SETSTAT): permissions and times, never owners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub permissions: Option<u32>,
    /// (atime, mtime)
    pub times: Option<(u32, u32)>,
    pub owner: bool,
    pub size: Option<u64>,
}

/// A file or folder a client closed (or left open when the session ended), for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    File {
        path: String,
        mode: OpenMode,
        read: u64,
        written: u64,
        created: bool,
    },
    Folder,
}

/// A folder's entries, read from its descriptor a batch at a time.
struct Listing {
    dir: *mut libc::DIR,
}

// SAFETY: a DIR stream may move between threads; the tree uses it from one at a time.
unsafe impl Send for Listing {}

impl Drop for Listing {
    fn drop(&mut self) {
        // SAFETY: dir came from fdopendir and is closed once, here.
        unsafe { libc::closedir(self.dir) };
    }
}

enum Open {
    File {
        fd: OwnedFd,
        path: String,
        mode: OpenMode,
        read: u64,
        written: u64,
        created: bool,
    },
    Folder {
        fd: OwnedFd,
        entries: Listing,
    },
    /// `/`: the roots' names, given once.
    Top {
        given: bool,
    },
}

/// A user's roots and what their client holds open in them.
pub struct Tree {
    roots: Vec<(String, OwnedFd)>,
    open: HashMap<u32, Open>,
    next: u32,
}

fn cname(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn fstatat_nofollow(dir: BorrowedFd<'_>, name: &str) -> io::Result<libc::stat> {
    let c = cname(name)?;
    // SAFETY: a valid dirfd, one NUL-terminated name, a zeroed struct; AT_SYMLINK_NOFOLLOW
    // describes a link itself.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

impl Tree {
    /// A tree of `roots` (a name and an open directory each; the first is where relative
    /// paths start).
    pub fn new(roots: Vec<(String, OwnedFd)>) -> Tree {
        Tree {
            roots,
            open: HashMap::new(),
            next: 1,
        }
    }

    /// Where relative paths start: the first root (the workspace).
    pub fn start(&self) -> TreePath {
        TreePath {
            root: self.roots.first().map(|(n, _)| n.clone()),
            names: vec![],
        }
    }

    /// `given` made plain, relative to the start.
    pub fn resolve(&self, given: &str) -> Result<TreePath> {
        Ok(path::normalize(&self.start(), given)?)
    }

    fn root(&self, p: &TreePath) -> Result<BorrowedFd<'_>> {
        let name = p.root.as_deref().ok_or_else(|| FileError::Top(p.shown()))?;
        self.roots
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, fd)| fd.as_fd())
            .ok_or_else(|| FileError::NotFound(p.shown()))
    }

    fn open_at(&self, p: &TreePath, flags: i32, mode: u32) -> Result<OwnedFd> {
        nofollow::open_beneath(self.root(p)?, Path::new(&p.beneath()), flags, mode)
            .map_err(|e| FileError::at(p, e))
    }

    fn folder(&self, p: &TreePath) -> Result<OwnedFd> {
        self.open_at(p, libc::O_DIRECTORY | libc::O_RDONLY, 0)
    }

    fn register(&mut self, o: Open) -> Result<u32> {
        if self.open.len() >= MAX_OPEN {
            return Err(FileError::TooManyOpen);
        }
        let h = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.open.insert(h, o);
        Ok(h)
    }

    /// The attributes of `p` itself (a link's own: nothing is followed).
    pub fn lstat(&self, p: &TreePath) -> Result<Attrs> {
        if p.root.is_none() {
            return Ok(Attrs {
                mode: libc::S_IFDIR | 0o555,
                ..Attrs::default()
            });
        }
        let fd = self.open_at(p, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        nofollow::stat(fd.as_fd())
            .map(|st| Attrs::of(&st))
            .map_err(|e| FileError::at(p, e))
    }

    /// Opens the regular file `p`; `perm` is the mode a created file gets (0644 if none).
    pub fn open(&mut self, p: &TreePath, mode: OpenMode, perm: Option<u32>) -> Result<u32> {
        if p.names.is_empty() {
            return Err(FileError::NotRegular(p.shown()));
        }
        if self.open.len() >= MAX_OPEN {
            return Err(FileError::TooManyOpen);
        }
        let access = match (mode.read, mode.write || mode.append) {
            (true, true) => libc::O_RDWR,
            (false, true) => libc::O_WRONLY,
            _ => libc::O_RDONLY,
        };
        // O_NONBLOCK: a FIFO planted in the tree must not hang the session's thread.
        let mut flags = access | libc::O_NONBLOCK | libc::O_NOCTTY;
        if mode.append {
            flags |= libc::O_APPEND;
        }
        if mode.truncate {
            flags |= libc::O_TRUNC;
        }
        let want = perm.unwrap_or(0o644) & 0o777;
        let (fd, created) = if mode.create {
            match self.open_at(p, flags | libc::O_CREAT | libc::O_EXCL, want) {
                Ok(fd) => (fd, true),
                Err(FileError::Io { source, .. })
                    if source.raw_os_error() == Some(libc::EEXIST) && !mode.exclusive =>
                {
                    (self.open_at(p, flags, 0)?, false)
                }
                Err(e) => return Err(e),
            }
        } else {
            (self.open_at(p, flags, 0)?, false)
        };
        let st = nofollow::stat(fd.as_fd()).map_err(|e| FileError::at(p, e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(FileError::NotRegular(p.shown()));
        }
        if created {
            // The host's umask (077) applied to the create: give the mode the client asked.
            nofollow::chmod(fd.as_fd(), want).map_err(|e| FileError::at(p, e))?;
        }
        self.register(Open::File {
            fd,
            path: p.shown(),
            mode,
            read: 0,
            written: 0,
            created,
        })
    }

    fn file(&mut self, h: u32) -> Result<(&OwnedFd, &mut u64, &mut u64, &str)> {
        match self.open.get_mut(&h) {
            Some(Open::File {
                fd,
                read,
                written,
                path,
                ..
            }) => Ok((fd, read, written, path)),
            _ => Err(FileError::NoHandle(h.to_string())),
        }
    }

    /// Up to `len` bytes (at most [`MAX_READ`]) at `offset`; None at the end of the file.
    pub fn read(&mut self, h: u32, offset: u64, len: u32) -> Result<Option<Vec<u8>>> {
        let (fd, read, _, path) = self.file(h)?;
        let mut buf = vec![0u8; len.min(MAX_READ) as usize];
        let offset = i64::try_from(offset).map_err(|_| FileError::Io {
            path: path.to_string(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        // SAFETY: pread into a buffer of its length, on a descriptor held here.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
        if n < 0 {
            return Err(FileError::Io {
                path: path.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        if n == 0 && !buf.is_empty() {
            return Ok(None);
        }
        buf.truncate(n as usize);
        *read += n as u64;
        Ok(Some(buf))
    }

    /// Writes all of `data` at `offset` (at the end when opened for appending).
    pub fn write(&mut self, h: u32, offset: u64, data: &[u8]) -> Result<()> {
        let (fd, _, written, path) = self.file(h)?;
        let fail = |source: io::Error| FileError::Io {
            path: path.to_string(),
            source,
        };
        let mut at =
            i64::try_from(offset).map_err(|_| fail(io::Error::from_raw_os_error(libc::EINVAL)))?;
        let mut rest = data;
        while !rest.is_empty() {
            // SAFETY: pwrite from a slice of its length, on a descriptor held here.
            let n = unsafe { libc::pwrite(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), at) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(fail(e));
            }
            rest = &rest[n as usize..];
            at += n as i64;
            *written += n as u64;
        }
        Ok(())
    }

    /// The attributes of an open file or folder.
    pub fn fstat(&self, h: u32) -> Result<Attrs> {
        let (fd, path) = match self.open.get(&h) {
            Some(Open::File { fd, path, .. }) => (fd, path.clone()),
            Some(Open::Folder { fd, .. }) => (fd, String::new()),
            Some(Open::Top { .. }) => {
                return self.lstat(&TreePath {
                    root: None,
                    names: vec![],
                })
            }
            None => return Err(FileError::NoHandle(h.to_string())),
        };
        nofollow::stat(fd.as_fd())
            .map(|st| Attrs::of(&st))
            .map_err(|source| FileError::Io { path, source })
    }

    /// Closes an open file or folder, saying what was done with it.
    pub fn close(&mut self, h: u32) -> Result<Closed> {
        match self.open.remove(&h) {
            Some(o) => Ok(Tree::closed(o)),
            None => Err(FileError::NoHandle(h.to_string())),
        }
    }

    /// Closes everything still open (the session ended).
    pub fn close_all(&mut self) -> Vec<Closed> {
        self.open.drain().map(|(_, o)| Tree::closed(o)).collect()
    }

    fn closed(o: Open) -> Closed {
        match o {
            Open::File {
                path,
                mode,
                read,
                written,
                created,
                ..
            } => Closed::File {
                path,
                mode,
                read,
                written,
                created,
            },
            _ => Closed::Folder,
        }
    }

    /// Opens the folder `p` for listing.
    pub fn opendir(&mut self, p: &TreePath) -> Result<u32> {
        if p.root.is_none() {
            return self.register(Open::Top { given: false });
        }
        if self.open.len() >= MAX_OPEN {
            return Err(FileError::TooManyOpen);
        }
        let fd = self.folder(p)?;
        // The stream reads through a second descriptor; the first stays for fstatat.
        let fail = |e| FileError::at(p, e);
        let second = fd.try_clone().map_err(fail)?;
        // SAFETY: fdopendir takes the descriptor, which the Listing closes (closedir).
        let dir = unsafe { libc::fdopendir(second.as_raw_fd()) };
        if dir.is_null() {
            return Err(fail(io::Error::last_os_error()));
        }
        std::mem::forget(second);
        self.register(Open::Folder {
            fd,
            entries: Listing { dir },
        })
    }

    /// The next batch of entries (at most [`MAX_BATCH`]), each with its own attributes;
    /// None when the listing is done.
    pub fn readdir(&mut self, h: u32) -> Result<Option<Vec<(String, Attrs)>>> {
        let top: Vec<(String, Attrs)> = self
            .roots
            .iter()
            .filter_map(|(n, fd)| {
                nofollow::stat(fd.as_fd())
                    .ok()
                    .map(|st| (n.clone(), Attrs::of(&st)))
            })
            .collect();
        match self.open.get_mut(&h) {
            Some(Open::Top { given }) => {
                if *given {
                    return Ok(None);
                }
                *given = true;
                Ok(Some(top))
            }
            Some(Open::Folder { fd, entries }) => {
                let mut batch = Vec::new();
                while batch.len() < MAX_BATCH {
                    // SAFETY: an open DIR stream of this folder.
                    let e = unsafe { libc::readdir(entries.dir) };
                    if e.is_null() {
                        break;
                    }
                    // SAFETY: d_name is NUL-terminated inside the entry readdir returned.
                    let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) };
                    let name = name.to_string_lossy().into_owned();
                    if name == "." || name == ".." {
                        continue;
                    }
                    // Gone since it was listed, or not a name we can say: left out.
                    if let Ok(st) = fstatat_nofollow(fd.as_fd(), &name) {
                        batch.push((name, Attrs::of(&st)));
                    }
                }
                Ok((!batch.is_empty()).then_some(batch))
            }
            _ => Err(FileError::NoHandle(h.to_string())),
        }
    }

    /// The folder holding `p` (opened without links) and `p`'s last name; a root and the
    /// top cannot be made, removed or renamed.
    fn parent(&self, p: &TreePath) -> Result<(OwnedFd, CString)> {
        let (dir, name) = p
            .parent_and_name()
            .ok_or_else(|| FileError::Top(p.shown()))?;
        let fd = self.folder(&dir)?;
        let c = cname(name).map_err(|e| FileError::at(p, e))?;
        Ok((fd, c))
    }

    /// Makes the folder `p` with `perm` (0755 if none).
    pub fn mkdir(&self, p: &TreePath, perm: Option<u32>) -> Result<()> {
        let (dir, name) = self.parent(p)?;
        // SAFETY: a valid dirfd and a NUL-terminated single name; mkdirat never follows.
        check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) })
            .map_err(|e| FileError::at(p, e))?;
        let made = self.folder(p)?;
        nofollow::chmod(made.as_fd(), perm.unwrap_or(0o755) & 0o777)
            .map_err(|e| FileError::at(p, e))
    }

    /// Removes the empty folder `p`.
    pub fn rmdir(&self, p: &TreePath) -> Result<()> {
        let (dir, name) = self.parent(p)?;
        // SAFETY: a valid dirfd and a NUL-terminated single name.
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
            .map_err(|e| FileError::at(p, e))
    }

    /// Removes the file `p` (a link is removed, never its target).
    pub fn remove(&self, p: &TreePath) -> Result<()> {
        let (dir, name) = self.parent(p)?;
        // SAFETY: a valid dirfd and a NUL-terminated single name.
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
            .map_err(|e| FileError::at(p, e))
    }

    /// Renames `from` to `to`, which must not exist (SFTP's rename); across roots too
    /// when they share a file system.
    pub fn rename(&self, from: &TreePath, to: &TreePath) -> Result<()> {
        let (a, an) = self.parent(from)?;
        let (b, bn) = self.parent(to)?;
        // SAFETY: valid dirfds and NUL-terminated single names; renameat2 follows no link.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                a.as_raw_fd(),
                an.as_ptr(),
                b.as_raw_fd(),
                bn.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // Which side was wrong: a missing source is the source's.
            return Err(match e.raw_os_error() {
                Some(libc::EEXIST | libc::EXDEV) => FileError::Io {
                    path: to.shown(),
                    source: e,
                },
                _ => FileError::at(from, e),
            });
        }
        Ok(())
    }

    /// What the link `p` points to, as text (nothing is followed).
    pub fn readlink(&self, p: &TreePath) -> Result<String> {
        let (dir, name) = self.parent(p)?;
        let mut buf = vec![0u8; 4096];
        // SAFETY: a valid dirfd, a NUL-terminated name, a buffer of its length.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(FileError::at(p, io::Error::last_os_error()));
        }
        buf.truncate(n as usize);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Changes permissions and times of `p` (through a descriptor of it, never a link).
    pub fn setstat(&self, p: &TreePath, c: Change) -> Result<()> {
        refuse_owner(&c)?;
        if p.names.is_empty() {
            return Err(FileError::Top(p.shown()));
        }
        let kind = self.lstat(p)?.mode & libc::S_IFMT;
        let fd = match kind {
            libc::S_IFDIR => self.folder(p)?,
            libc::S_IFREG => self
                .open_at(p, libc::O_RDONLY | libc::O_NONBLOCK, 0)
                .or_else(|_| self.open_at(p, libc::O_WRONLY | libc::O_NONBLOCK, 0))?,
            libc::S_IFLNK => return Err(FileError::Link(p.shown())),
            _ => return Err(FileError::NotRegular(p.shown())),
        };
        change(fd.as_fd(), &c).map_err(|e| FileError::at(p, e))
    }

    /// Changes permissions and times of an open file.
    pub fn fsetstat(&self, h: u32, c: Change) -> Result<()> {
        refuse_owner(&c)?;
        match self.open.get(&h) {
            Some(Open::File { fd, path, .. }) => {
                change(fd.as_fd(), &c).map_err(|source| FileError::Io {
                    path: path.clone(),
                    source,
                })
            }
            Some(_) => Err(FileError::Unsupported {
                what: "changing a listed folder through its handle",
                why: "change it by its path",
            }),
            None => Err(FileError::NoHandle(h.to_string())),
        }
    }
}

fn refuse_owner(c: &Change) -> Result<()> {
    if c.owner {
        return Err(FileError::Unsupported {
            what: "changing a file's owner",
            why: "files belong to the user who copies them",
        });
    }
    Ok(())
}

/// Applies a change through `fd`: permission bits only (no set-id bits), times, a size
/// (ftruncate, for a file opened for writing).
fn change(fd: BorrowedFd<'_>, c: &Change) -> io::Result<()> {
    if let Some(size) = c.size {
        let size = i64::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: ftruncate on a descriptor held here.
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    }
    if let Some(perm) = c.permissions {
        nofollow::chmod(fd, perm & 0o1777)?;
    }
    if let Some((atime, mtime)) = c.times {
        let t = [
            libc::timespec {
                tv_sec: atime.into(),
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: mtime.into(),
                tv_nsec: 0,
            },
        ];
        // SAFETY: futimens on a descriptor held here, with two timespecs.
        check(unsafe { libc::futimens(fd.as_raw_fd(), t.as_ptr()) })?;
    }
    Ok(())
}
