//! Where cordon keeps its state: the data directory and what lives in it.

use std::path::{Path, PathBuf};

/// The data directory: `--data-dir`, else `$CORDON_DATA_DIR`, else `/var/lib/cordon` for
/// root, else `$XDG_DATA_HOME/cordon` (default `~/.local/share/cordon`).
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("CORDON_DATA_DIR").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return p;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/cordon");
    }
    if let Some(p) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return p.join("cordon");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
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
    /// Creates the directory (mode 0700) if needed.
    pub fn ensure(&self) -> Result<(), String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| format!("creating {}: {e}", self.root.display()))
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("cordon.db")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }
    pub fn audit_key(&self) -> PathBuf {
        self.root.join("keys/audit.key")
    }
    pub fn host_key(&self) -> PathBuf {
        self.root.join("keys/ssh_host_ed25519_key")
    }
}
