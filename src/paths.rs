//! Where cordon keeps its state: the data directory and what lives in it.

use std::path::{Path, PathBuf};

/// The data directory: `--data-dir`, else `$CORDON_DATA_DIR`, else `/var/lib/cordon` for
/// root, else `$XDG_DATA_HOME/cordon` (default `~/.local/share/cordon`).
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("CORDON_DATA_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return p;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/cordon");
    }
    if let Some(p) = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return p.join("cordon");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/cordon")
}

/// The files under a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: PathBuf) -> DataDir {
        DataDir { root }
    }
    /// Creates the directory if needed, and makes it and what it holds private (0700
    /// directories, 0600 files) even when they existed with looser modes. Returns what it
    /// tightened, in words, for the caller to say.
    pub fn ensure(&self) -> Result<Vec<String>, FileError> {
        let mut fixed = Vec::new();
        fixed.extend(private_dir(&self.root)?);
        fixed.extend(private_dir(&self.root.join("keys"))?);
        let db = |suffix: &str| self.root.join(format!("cordon.db{suffix}"));
        for f in [
            db(""),
            db("-wal"),
            db("-shm"),
            self.audit_log(),
            self.audit_log().with_extension("head"),
        ] {
            if tighten_file(&f, 0o600)? {
                fixed.push(format!(
                    "{} was readable by others; it is 0600 now",
                    f.display()
                ));
            }
        }
        Ok(fixed)
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("cordon.db")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }
}

/// Why a file or directory of cordon's state could not be made, read or kept private.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The system refused to `action` it (create, open, read, write, rename, remove).
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Its mode could not be tightened to `mode`.
    #[error("chmod {mode:o} {}: {source}", .path.display())]
    Chmod {
        path: PathBuf,
        mode: u32,
        #[source]
        source: std::io::Error,
    },
    /// Another account owns it: cordon's state must be its own.
    #[error("{} belongs to uid {uid}, not to this account (uid {me}): run cordon as its owner, or chown it", .path.display())]
    Foreign { path: PathBuf, uid: u32, me: u32 },
    /// A symbolic link where cordon keeps a plain file.
    #[error("{} is a symbolic link; cordon keeps only plain files there", .0.display())]
    Link(PathBuf),
    /// A secret that other accounts may read.
    #[error("{} is readable by others (mode {mode:o}); chmod 600 it", .path.display())]
    Exposed { path: PathBuf, mode: u32 },
}

impl FileError {
    /// For `map_err`: `action` on `path` failed.
    pub fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> FileError + 'a {
        move |source| FileError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Creates `path` (mode 0700) if it is missing, or tightens it to 0700. A directory another
/// account owns is refused: cordon's state must be its own. Returns what was tightened.
pub fn private_dir(path: &Path) -> Result<Option<String>, FileError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(FileError::io("creating", path))?;
    let fd = crate::nofollow::open_root(path).map_err(FileError::io("opening", path))?;
    let st = crate::nofollow::stat(std::os::fd::AsFd::as_fd(&fd))
        .map_err(FileError::io("checking", path))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if st.st_uid != me {
        return Err(FileError::Foreign {
            path: path.to_path_buf(),
            uid: st.st_uid,
            me,
        });
    }
    if st.st_mode & 0o077 != 0 {
        crate::nofollow::chmod(std::os::fd::AsFd::as_fd(&fd), 0o700).map_err(|source| {
            FileError::Chmod {
                path: path.to_path_buf(),
                mode: 0o700,
                source,
            }
        })?;
        return Ok(Some(format!(
            "{} was open to others (mode {:o}); it is 0700 now",
            path.display(),
            st.st_mode & 0o777
        )));
    }
    Ok(None)
}

/// Makes the file at `path` no looser than `mode`, if it exists, without following a link
/// (a link where cordon keeps a file is refused). Returns whether it had to change it.
/// It opens the file: never call it on a file this process holds POSIX locks on (an open
/// SQLite database), since closing any descriptor of a file releases them all.
pub fn tighten_file(path: &Path, mode: u32) -> Result<bool, FileError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the path"))
        .map_err(FileError::io("opening", path))?;
    // SAFETY: a NUL-terminated path; O_NOFOLLOW refuses a link, O_NONBLOCK a FIFO's wait.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) => Ok(false),
            Some(libc::ELOOP) => Err(FileError::Link(path.to_path_buf())),
            _ => Err(FileError::io("opening", path)(e)),
        };
    }
    // SAFETY: a new descriptor owned here.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let st = crate::nofollow::stat(std::os::fd::AsFd::as_fd(&fd))
        .map_err(FileError::io("checking", path))?;
    if st.st_mode & 0o777 & !mode == 0 {
        return Ok(false);
    }
    crate::nofollow::chmod(std::os::fd::AsFd::as_fd(&fd), st.st_mode & 0o777 & mode).map_err(
        |source| FileError::Chmod {
            path: path.to_path_buf(),
            mode,
            source,
        },
    )?;
    Ok(true)
}

/// Whether a directory or file is open to other accounts, for `cordon doctor`: None when it
/// is fine or missing, else what is wrong.
pub fn looser_than(path: &Path, mode: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    if m.file_type().is_symlink() {
        return Some(format!("{} is a symbolic link", path.display()));
    }
    let extra = m.mode() & 0o777 & !mode;
    (extra != 0).then(|| {
        format!(
            "{} has mode {:o}; it should be {:o} or tighter",
            path.display(),
            m.mode() & 0o777,
            mode
        )
    })
}
