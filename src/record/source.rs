//! Where a recording's bytes are read from: its local file, or, once the local copy is gone,
//! the bucket it was uploaded to (`remote`). The reader (`format`) reads through this one
//! interface with positioned reads, so playback, seeking, export and verify work the same
//! from either.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::format::ChunkRef;

/// Bytes of one recording, read at positions.
pub trait Source: Send + Sync {
    /// Its length in bytes.
    fn size(&self) -> u64;
    /// Exactly `buf.len()` bytes from `pos`.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// The places of its chunks when known without scanning them (a bucket's index); each
    /// is checked against the chunk's own clear header when the chunk is read.
    fn index(&self) -> Option<Vec<ChunkRef>> {
        None
    }
    /// The reader will go through the whole recording (a bucket fetches whole parts then,
    /// not a ranged read per chunk).
    fn whole(&self) {}
}

impl Source for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, pos)
    }
}

/// Opens recordings that are not on this host's disk (the bucket of `[objects]`).
pub trait Remote: Send + Sync {
    /// The recording with this id, or NotFound.
    fn open(&self, id: &str) -> io::Result<Box<dyn Source>>;
}

static REMOTE: OnceLock<Arc<dyn Remote>> = OnceLock::new();

/// Makes recordings whose local file is gone readable from `remote` (once per process: the
/// configuration's bucket).
pub fn register(remote: Arc<dyn Remote>) {
    let _ = REMOTE.set(remote);
}

/// The recording at `path`: the local file, or when it is gone the recording of that id in
/// the bucket, if one is configured.
pub fn open(path: &Path) -> io::Result<Box<dyn Source>> {
    match std::fs::File::open(path) {
        Ok(f) => Ok(Box::new(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let remote = REMOTE.get().ok_or(e)?;
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".rec"))
                .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} is gone and is not a recording's name", path.display()),
                    )
                })?;
            remote.open(id)
        }
        Err(e) => Err(e),
    }
}

/// The whole recording at `path` in memory, from wherever [`open`] finds it (an evidence
/// bundle's copy).
pub fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    let src = open(path)?;
    src.whole();
    let mut data = vec![0u8; src.size() as usize];
    src.read_exact_at(&mut data, 0)?;
    Ok(data)
}
