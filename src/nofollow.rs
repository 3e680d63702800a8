//! File operations that never follow a link: for the trees users and sessions write into
//! (homes, workspaces, exports). Every path is opened relative to a directory descriptor
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, so a link
//! anywhere on the way fails the open instead of leading elsewhere, and what is checked
//! (`fstat`) is what is then used: the same descriptor.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Opens `path` beneath `dir` without following any link on the way (the last component
/// included). `flags` are open(2) flags; O_CLOEXEC is always added.
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    openat2(dir, path, flags, mode, 0)
}

/// Opens the directory `name` in `dir` for listing, neither following a link nor crossing
/// a mount point (`EXDEV`): what a walk of a tree a session writes goes down into.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &Path) -> io::Result<OwnedFd> {
    openat2(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
        libc::RESOLVE_NO_XDEV,
    )
}

/// openat2 beneath `dir` without links, with `extra` resolve flags.
fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    extra: u64,
) -> io::Result<OwnedFd> {
    let name = cstr(path)?;
    // libc's open_how is non-exhaustive; the kernel's struct is three u64s (open_how(2)).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & libc::O_CREAT != 0 {
            u64::from(mode)
        } else {
            0
        },
        resolve: libc::RESOLVE_BENEATH
            | libc::RESOLVE_NO_SYMLINKS
            | libc::RESOLVE_NO_MAGICLINKS
            | extra,
    };
    loop {
        // SAFETY: a valid dirfd, a NUL-terminated path and an open_how whose size is passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                name.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check(r) {
            // openat2 asks callers to retry when a concurrent rename raced the lookup.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(e),
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        }
    }
}

/// Opens a directory the operator named (a configured root): links in the operator's own
/// path are theirs to choose, so this one follows them.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    // SAFETY: a NUL-terminated path.
    let fd = check(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    } as libc::c_long)?;
    // SAFETY: a new descriptor owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The status of what `fd` refers to.
pub fn stat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: fstat into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st)
}

pub fn chmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod on a descriptor we hold.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) } as libc::c_long).map(drop)
}

pub fn chown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: fchown on a descriptor we hold.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } as libc::c_long).map(drop)
}

/// Makes the directory `name` in `dir` (one component) if it is missing, and opens it
/// without following links. `owner` gets what is created (never what already existed).
/// Returns the directory and whether it was created.
pub fn ensure_dir(
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<(OwnedFd, bool)> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a name with a NUL byte"))?;
    // SAFETY: a valid dirfd and a NUL-terminated name. mkdirat never follows a link in its
    // last component: an existing link makes it fail with EEXIST.
    let made =
        match check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) } as libc::c_long) {
            Ok(_) => true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
            Err(e) => return Err(e),
        };
    let fd = open_beneath(dir, Path::new(name), libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
    if made {
        // mkdirat's mode passed through the umask: say exactly what is meant.
        chmod(fd.as_fd_ref(), mode)?;
        if let Some((uid, gid)) = owner {
            chown(fd.as_fd_ref(), uid, gid)?;
        }
    }
    Ok((fd, made))
}

/// Creates the file `name` in `dir` (it must not exist; a link in its place is not followed)
/// with `mode`, writes `bytes`, syncs, and gives it to `owner`.
pub fn create_file(
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
    bytes: &[u8],
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    use std::io::Write;
    let fd = open_beneath(
        dir,
        Path::new(name),
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        mode,
    )?;
    chmod(fd.as_fd_ref(), mode)?;
    if let Some((uid, gid)) = owner {
        chown(fd.as_fd_ref(), uid, gid)?;
    }
    let mut f = File::from(fd);
    f.write_all(bytes)?;
    f.sync_all()
}

/// Renames `from` to `to`, both single names in `dir`. rename(2) never follows a link: one
/// at `to` is replaced, not written through.
pub fn rename(dir: BorrowedFd<'_>, from: &str, to_dir: BorrowedFd<'_>, to: &str) -> io::Result<()> {
    let (a, b) = (cstr(Path::new(from))?, cstr(Path::new(to))?);
    // SAFETY: valid dirfds and NUL-terminated names.
    check(
        unsafe { libc::renameat(dir.as_raw_fd(), a.as_ptr(), to_dir.as_raw_fd(), b.as_ptr()) }
            as libc::c_long,
    )
    .map(drop)
}

/// Removes the file `name` in `dir` (a link is removed, never its target).
pub fn unlink(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let c = cstr(Path::new(name))?;
    // SAFETY: a valid dirfd and a NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } as libc::c_long).map(drop)
}

/// Gives everything beneath `dir` (and `dir`) to `uid:gid`, never following a link. Files
/// with several hard links are left alone: one could be another file's second name.
/// Returns how many entries were changed and how many were left.
pub fn chown_tree(dir: OwnedFd, uid: u32, gid: u32) -> io::Result<(u64, u64)> {
    let (mut changed, mut left) = (0u64, 0u64);
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        chown(d.as_fd_ref(), uid, gid)?;
        changed += 1;
        // The directory's entries, read through a second descriptor (readdir consumes it).
        let listing = open_beneath(
            d.as_fd_ref(),
            Path::new("."),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
        )?;
        for name in read_dir(listing)? {
            let Ok(child) = open_beneath(
                d.as_fd_ref(),
                Path::new(&name),
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
            ) else {
                left += 1;
                continue;
            };
            let st = stat(child.as_fd_ref())?;
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => stack.push(open_beneath(
                    d.as_fd_ref(),
                    Path::new(&name),
                    libc::O_DIRECTORY | libc::O_RDONLY,
                    0,
                )?),
                libc::S_IFREG if st.st_nlink > 1 => left += 1,
                _ => {
                    let c = CString::new(name.as_bytes())
                        .map_err(|_| io::Error::other("NUL in a name"))?;
                    // SAFETY: a valid dirfd and name; AT_SYMLINK_NOFOLLOW changes a link itself.
                    check(unsafe {
                        libc::fchownat(
                            d.as_raw_fd(),
                            c.as_ptr(),
                            uid,
                            gid,
                            libc::AT_SYMLINK_NOFOLLOW,
                        )
                    } as libc::c_long)?;
                    changed += 1;
                }
            }
        }
    }
    Ok((changed, left))
}

/// The status of `name` in `dir` itself: a link is described, never followed.
pub fn stat_at(dir: BorrowedFd<'_>, name: &Path) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: fstatat into a zeroed struct, with a valid dirfd and a NUL-terminated name.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } as libc::c_long)?;
    Ok(st)
}

/// The names in the directory `dir` (without `.` and `..`), or None when it holds more
/// than `max`: a directory a session fills cannot make the host read without end. Read
/// through a copy of the descriptor, so that `dir` stays usable for `*at` calls.
pub fn names(dir: BorrowedFd<'_>, max: usize) -> io::Result<Option<Vec<std::ffi::OsString>>> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we hold returns a new one we own.
    let copy =
        check(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) } as libc::c_long)?;
    // SAFETY: the copy was just made and nothing else owns it.
    let copy = unsafe { OwnedFd::from_raw_fd(copy as i32) };
    // The copy shares the directory's offset: start from its first entry.
    // SAFETY: lseek on a descriptor we own.
    check(unsafe { libc::lseek(copy.as_raw_fd(), 0, libc::SEEK_SET) } as libc::c_long)?;
    read_names(copy, max)
}

/// The names in a directory (without `.` and `..`).
fn read_dir(dir: OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    Ok(read_names(dir, usize::MAX)?.unwrap_or_default())
}

/// The names in a directory (without `.` and `..`), or None past `max` of them.
fn read_names(dir: OwnedFd, max: usize) -> io::Result<Option<Vec<std::ffi::OsString>>> {
    use std::os::unix::ffi::OsStringExt;
    let raw = dir.as_raw_fd();
    // SAFETY: fdopendir takes ownership of the descriptor (closed by closedir below).
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dir);
    let mut names = Vec::new();
    loop {
        // readdir returns null at the end and on an error; only errno tells them apart.
        // SAFETY: errno is this thread's; d is an open DIR stream.
        let e = unsafe {
            *libc::__errno_location() = 0;
            libc::readdir(d)
        };
        if e.is_null() {
            let err = io::Error::last_os_error();
            // SAFETY: closing the stream opened above.
            unsafe { libc::closedir(d) };
            return match err.raw_os_error() {
                Some(0) | None => Ok(Some(names)),
                Some(_) => Err(err),
            };
        }
        // SAFETY: d_name is NUL-terminated inside the dirent readdir returned.
        let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) }
            .to_bytes()
            .to_vec();
        if name != b"." && name != b".." {
            if names.len() == max {
                // SAFETY: closing the stream opened above.
                unsafe { libc::closedir(d) };
                return Ok(None);
            }
            names.push(std::ffi::OsString::from_vec(name));
        }
    }
}

/// A borrowed view of an owned descriptor (shorter to write at every call).
pub trait FdRef {
    fn as_fd_ref(&self) -> BorrowedFd<'_>;
}

impl FdRef for OwnedFd {
    fn as_fd_ref(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_anywhere_on_the_way_fails_the_open() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("evil")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), t.path().join("real/file"))
            .unwrap();
        let root = open_root(t.path()).unwrap();
        assert!(open_beneath(root.as_fd_ref(), Path::new("real"), libc::O_DIRECTORY, 0).is_ok());
        for p in ["evil", "evil/secret", "real/file", "../x", "/etc"] {
            let e = open_beneath(root.as_fd_ref(), Path::new(p), libc::O_RDONLY, 0).unwrap_err();
            assert!(
                matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV)),
                "{p}: {e}"
            );
        }
    }

    #[test]
    fn a_planted_link_is_replaced_never_written_through() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "untouched").unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), t.path().join("out.cast"))
            .unwrap();
        let dir = open_root(t.path()).unwrap();
        assert!(
            create_file(dir.as_fd_ref(), "out.cast", 0o600, b"x", None).is_err(),
            "O_EXCL refuses the link's place"
        );
        create_file(dir.as_fd_ref(), ".tmp", 0o600, b"new", None).unwrap();
        rename(dir.as_fd_ref(), ".tmp", dir.as_fd_ref(), "out.cast").unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim")).unwrap(),
            "untouched"
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("out.cast")).unwrap(),
            "new"
        );
        assert!(!std::fs::symlink_metadata(t.path().join("out.cast"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn ensure_dir_makes_a_missing_directory_and_refuses_a_link_in_its_place() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        let root = open_root(t.path()).unwrap();
        let (_, made) = ensure_dir(root.as_fd_ref(), "new", 0o700, None).unwrap();
        assert!(made);
        let (_, made) = ensure_dir(root.as_fd_ref(), "new", 0o700, None).unwrap();
        assert!(!made);
        assert!(ensure_dir(root.as_fd_ref(), "link", 0o700, None).is_err());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(t.path().join("new"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
}
