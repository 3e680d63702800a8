//! Random bytes, and private files (mode 0600) for what must stay private.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
