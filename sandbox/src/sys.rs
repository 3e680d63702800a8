//! Thin wrappers over the system calls libc does not wrap, and a helper turning `-1` into
//! an `io::Error`. Nothing here decides anything.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `-1` → the current `errno` as an error; anything else passes through.
pub fn check<T: PartialEq + Copy + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A path as a C string; paths with NUL bytes are refused.
pub fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

pub fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(|s| CString::new(s).unwrap_or_default());
    let data = data.map(|s| CString::new(s).unwrap_or_default());
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is a valid NUL-terminated string or null, as mount(2) allows.
    check(unsafe {
        libc::mount(
            ptr(&src),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data) as *const libc::c_void,
        )
    })?;
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let a = cstr(new_root)?;
    let b = cstr(put_old)?;
    // SAFETY: two valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) })?;
    Ok(())
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
}

/// Writes `data` to a file that must already exist (procfs, cgroupfs).
pub fn write_file(path: &Path, data: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(data.as_bytes())
}

/// Writes all of `buf` to a raw fd, ignoring errors (used to report a refusal from a child
/// where nothing else can be done).
pub fn write_all_fd(fd: libc::c_int, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: buf is a valid slice for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        buf = &buf[n as usize..];
    }
}

/// `openat2(2)` resolve flag: no `/proc/self/fd/N`-style magic links.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `openat2(2)` resolve flag: no symbolic link anywhere on the path (implies no magic links).
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `openat2(2)` resolve flag: the path must stay beneath the directory fd (no absolute
/// paths, no `..` above it).
pub const RESOLVE_BENEATH: u64 = 0x08;
/// Never follow a link, never leave the directory: how every path under a directory an
/// attacker may write is opened.
pub const RESOLVE_STRICT: u64 = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)` (Linux 5.6): opens `path` relative to `dir` (or the current directory when
/// `dir` is `None`) with `resolve` restricting how the path may be walked. A symbolic link
/// met under `RESOLVE_NO_SYMLINKS` is `ELOOP`; leaving the directory under
/// `RESOLVE_BENEATH` is `EXDEV`.
pub fn openat2(
    dir: Option<BorrowedFd<'_>>,
    path: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let mut attempts = 0;
    loop {
        attempts += 1;
        // SAFETY: a valid C string and an open_how struct that outlives the call, its size
        // passed as the kernel expects.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check(r) {
            // The kernel says EAGAIN when a concurrent rename made it unsure the walk stayed
            // beneath the directory; asking again is the documented answer (a bounded number
            // of times: someone renaming without pause must not keep the sandbox spinning).
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
                    && attempts < 64 =>
            {
                continue
            }
            // SAFETY: the kernel just returned this fd and nothing else owns it.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }),
            Err(e) => return Err(e),
        }
    }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_EMPTY_PATH: libc::c_uint = 0x1000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// `open_tree(2)` with `OPEN_TREE_CLONE | AT_RECURSIVE` on the file `fd` refers to: a
/// detached copy of the mount tree there (a recursive bind mount not yet attached anywhere).
pub fn clone_tree(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_EMPTY_PATH | AT_RECURSIVE;
    // SAFETY: an open fd and an empty C string, as AT_EMPTY_PATH allows.
    let r =
        check(unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) })?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) })
}

/// `move_mount(2)`: attaches the detached mount `tree` on the file `target` refers to.
pub fn move_mount(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: two open fds and empty C strings, as the EMPTY_PATH flags allow.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Sets mount attributes on the mount `fd` refers to, and on every mount below it when
/// `recursive` (mount_setattr(2) with `AT_EMPTY_PATH`). Works on detached trees too, so a
/// bind can be read-only before it is ever visible.
pub fn mount_setattr_fd(fd: BorrowedFd<'_>, set: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: an open fd, an empty C string, and the attr struct living for the call with
    // its size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

/// A new, detached filesystem of type `fstype` (fsopen, fsconfig, fsmount: Linux 5.2) with
/// string `options` and the mount attributes `attrs`; attach it with [`move_mount`].
pub fn new_fs(fstype: &str, options: &[(&str, &str)], attrs: u64) -> io::Result<OwnedFd> {
    let name = CString::new(fstype).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string.
    let fs = check(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as libc::c_int) };
    for (key, value) in options {
        let k = CString::new(*key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let v = CString::new(*value).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: an open fs context and two valid C strings.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: an open fs context; CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<u8>(),
            0,
        )
    })?;
    // SAFETY: an open, created fs context.
    let m = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(m as libc::c_int) })
}

/// `mkdirat(2)`: a directory `name` (one component) inside `dir`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let c = cstr(Path::new(name))?;
    // SAFETY: an open fd and a valid C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) })?;
    Ok(())
}

/// A new, empty file `name` (one component) inside `dir`, never through a link
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`): `EEXIST` when anything is already there.
pub fn create_new_at(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cstr(Path::new(name))?;
    // SAFETY: an open fd and a valid C string.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    })?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fchown(2)` on an fd opened for reading or writing (not `O_PATH`).
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: an open fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

/// `fstat(2)`'s file type bits (`S_IFDIR`, `S_IFREG`, ...) of an open fd.
pub fn file_type(fd: BorrowedFd<'_>) -> io::Result<libc::mode_t> {
    // SAFETY: a zeroed stat struct is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: an open fd and a valid out-pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT)
}

/// Whether an error is the one a symbolic link met under `RESOLVE_NO_SYMLINKS` (or
/// `O_NOFOLLOW`) gives.
pub fn is_link_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Closes every descriptor above 2 but those in `keep`.
pub fn close_fds_except(keep: &[i32]) -> io::Result<()> {
    let close_range = |lo: u32, hi: u32| {
        if lo > hi {
            return Ok(());
        }
        // SAFETY: close_range with plain integers.
        check(unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) }).map(drop)
    };
    let mut keep: Vec<u32> = keep.iter().map(|&k| k as u32).collect();
    keep.sort_unstable();
    let mut lo = 3;
    for k in keep {
        if k >= lo {
            close_range(lo, k.saturating_sub(1))?;
            lo = k + 1;
        }
    }
    close_range(lo, u32::MAX)
}
