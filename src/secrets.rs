//! Random bytes and key files: generated once, kept with mode 0600, never logged.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::paths::FileError;

/// `n` bytes from the kernel's CSPRNG.
pub fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: writing into the unfilled tail of buf.
        let r = unsafe {
            libc::getrandom(
                buf[filled..].as_mut_ptr() as *mut libc::c_void,
                n - filled,
                0,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += r as usize;
    }
    Ok(buf)
}

/// Why a key file could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file or its directory could not be read, made, or kept private.
    #[error(transparent)]
    File(#[from] FileError),
    /// The file is not a key: someone wrote or cut it.
    #[error("{} holds {len} bytes; a key is 32", .path.display())]
    Size { path: PathBuf, len: usize },
    /// The kernel gave no random bytes for a new key.
    #[error("generating a key: {0}")]
    Random(#[source] std::io::Error),
}

/// Reads a 32-byte key from `path`, creating it (mode 0600, in a 0700 directory) if absent.
/// A key file with a wrong size or a mode readable by others is refused.
pub fn load_or_create_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(FileError::io("creating", dir))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    match std::fs::read(path) {
        Ok(key) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(FileError::Exposed {
                    path: path.to_path_buf(),
                    mode,
                }
                .into());
            }
            if key.len() != 32 {
                return Err(KeyFileError::Size {
                    path: path.to_path_buf(),
                    len: key.len(),
                });
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_bytes(32).map_err(KeyFileError::Random)?;
            write_private(path, &key)?;
            Ok(key)
        }
        Err(e) => Err(FileError::io("reading", path)(e).into()),
    }
}

/// Creates `path` (which must not exist) with mode 0600 and `bytes`, synced to disk.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(FileError::io("creating", path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(FileError::io("writing", path))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
