//! Why a recording could not be made, written or keyed: what failed, why, and what to do.
//! Damage found in a recording while reading it is [`Damage`] (where, and why); it is one
//! of these only where a reader met it on the way to something else (finding a key).

use std::path::PathBuf;

use super::format::Damage;

/// A recording, its directory or its keys could not be made, written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file or directory could not be created, read, written or renamed.
    #[error("{action} {}: {source}", path.display())]
    File {
        /// What was being done ("creating", "writing", ...).
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing to an open recording failed: a full disk, an I/O error.
    #[error("writing the recording: {0}")]
    Write(#[source] std::io::Error),
    /// A failed write left bytes on disk that could not be cut off again: writing more would
    /// put two chunks under one nonce on disk, so nothing more is written.
    #[error("writing the recording: a failed write could not be undone; what was written before it stays readable")]
    Broken,
    /// The compressor could not start, or could not compress.
    #[error("compressing: {0}")]
    Compress(#[source] std::io::Error),
    /// Key derivation or encryption failed (not expected with a 32-byte key).
    #[error("{0} failed")]
    Crypto(&'static str),
    /// The header names a compression this cordon does not write.
    #[error("unknown compression {0:?} (zstd or deflate)")]
    UnknownCompression(String),
    /// The header's salt is not hex.
    #[error("bad salt")]
    BadSalt,
    /// The header could not be encoded.
    #[error("encoding the header: {0}")]
    Header(#[source] serde_json::Error),
    /// The kernel gave no random bytes.
    #[error("generating {what}: {source}")]
    Random {
        /// What the bytes were for ("a key", "a recording id").
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A key id that is not one (a header altered by hand).
    #[error("\"{0}\" is not a key id")]
    NotKeyId(String),
    /// The key a recording names is not in the keyring.
    #[error(
        "no recording key {key_id} in {}: restore a key backup that holds it (cordon key restore; for a recording another host made, a backup of that host's keys: docs/deploy.md); without it the recordings sealed with it cannot be read",
        dir.display()
    )]
    NoKey { key_id: String, dir: PathBuf },
    /// The key ring could not be read or changed (its words say why and the fix).
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    /// A key file could not be written.
    #[error(transparent)]
    KeyWrite(#[from] crate::paths::FileError),
    /// The recording's header could not be read (to find the key it names).
    #[error(transparent)]
    Damaged(#[from] Damage),
    /// An export format nobody asked cordon to write: the caller's mistake.
    #[error("unknown format \"{0}\" (asciicast-v2, asciicast-v3, raw)")]
    UnknownFormat(String),
}

impl RecordError {
    /// A failure at `action` on `path`.
    pub(crate) fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> RecordError {
        let path = path.into();
        move |source| RecordError::File {
            action,
            path,
            source,
        }
    }
}
