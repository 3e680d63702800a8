//! Secrets users give their sessions (`cordon secret set`): values sealed with the host's
//! secrets key before they reach the store, opened only to start a session, held in
//! zeroizing buffers, and handed to `cordon sandbox` through a memfd (`--secrets-fd`).
//!
//! Sealing: AES-256-GCM with the key ring's `secrets` key (32 random bytes, wrapped by the
//! master key, its own key: neither the audit key nor a recording key), a random 96-bit
//! nonce per value, and the owner's user id and the secret's name as associated data, so
//! that a sealed value moved to another user's row or another name does not open. After a
//! rotation (`cordon key rotate --secrets`) values are sealed with the new key; opening
//! tries the current key first, then the older ones, until the rotation re-sealed them all.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::sync::Arc;
use zeroize::Zeroizing;

use crate::keys::{Keys, Purpose};

use crate::store::SealedSecret;

/// A secret's value, wiped from memory when dropped.
pub type Value = Zeroizing<Vec<u8>>;

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key ring could not be read.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The kernel gave no random bytes for a nonce.
    #[error("a nonce for a secret: {0}")]
    Random(#[source] std::io::Error),
    /// The sealed value does not open with this key, for this owner and name.
    #[error("the stored secret {name} does not open with any secrets key in {}: the key was lost or the row was altered; set it again (cordon secret set {name})", .key.display())]
    Opening {
        name: String,
        key: std::path::PathBuf,
    },
}

/// The host's secrets keys.
pub struct Vault {
    keys: Arc<Keys>,
}

impl Vault {
    pub fn new(keys: Arc<Keys>) -> Vault {
        Vault { keys }
    }

    fn cipher(&self) -> Result<Aes256Gcm, VaultError> {
        let (_, key) = self.keys.random_current(Purpose::Secrets)?;
        Ok(Aes256Gcm::new_from_slice(&key).expect("a 32-byte key"))
    }

    /// Starts sealing with a new key (`cordon key rotate --secrets`); returns its id.
    pub fn rotate(&self) -> Result<String, VaultError> {
        let key = Zeroizing::new(crate::secrets::random_bytes(32).map_err(VaultError::Random)?);
        Ok(self.keys.add_current(Purpose::Secrets, &key)?)
    }

    /// Seals `value` for `owner_id` (0: global) under `name`.
    pub fn seal(
        &self,
        owner_id: i64,
        name: &str,
        value: &[u8],
    ) -> Result<SealedSecret, VaultError> {
        let nonce = crate::secrets::random_bytes(12).map_err(VaultError::Random)?;
        let aad = associated(owner_id, name);
        let sealed = self
            .cipher()?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals any value under 64 GiB");
        Ok(SealedSecret { nonce, sealed })
    }

    /// Opens what [`Vault::seal`] sealed for this owner and name.
    pub fn open(&self, owner_id: i64, name: &str, s: &SealedSecret) -> Result<Value, VaultError> {
        let aad = associated(owner_id, name);
        let opening = || VaultError::Opening {
            name: name.to_string(),
            key: self.keys.path(),
        };
        if s.nonce.len() != 12 {
            return Err(opening());
        }
        // Make the first key if there is none, so that `all` has the current one.
        self.cipher()?;
        for (_, key) in self.keys.all(Purpose::Secrets)? {
            let cipher = Aes256Gcm::new_from_slice(&key).expect("a 32-byte key");
            if let Ok(v) = cipher.decrypt(
                Nonce::from_slice(&s.nonce),
                Payload {
                    msg: &s.sealed,
                    aad: &aad,
                },
            ) {
                return Ok(Zeroizing::new(v));
            }
        }
        Err(opening())
    }
}

/// What a sealed value is bound to: its owner and its name.
fn associated(owner_id: i64, name: &str) -> Vec<u8> {
    let mut aad = b"cordon secret v1\0".to_vec();
    aad.extend(owner_id.to_be_bytes());
    aad.extend(name.as_bytes());
    aad
}

/// The secrets a session receives (name, value), the names a profile asked for that have
/// none, and how they reach the sandbox. Its Debug shows names only.
#[derive(Clone, Default)]
pub struct SessionSecrets {
    pub given: Vec<(String, Value)>,
}

impl std::fmt::Debug for SessionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.given.iter().map(|(k, _)| k))
            .finish()
    }
}

impl SessionSecrets {
    /// A memfd holding the payload `cordon sandbox --secrets-fd` reads (close-on-exec here;
    /// the child's copy is made inheritable at the fd the argument names).
    pub fn memfd(&self) -> std::io::Result<std::fs::File> {
        use std::io::{Seek, Write};
        use std::os::fd::FromRawFd;
        let payload = Zeroizing::new(sandbox::secrets::encode(
            self.given.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        ));
        // SAFETY: memfd_create with a static name; the fd is owned by the File.
        let fd = unsafe { libc::memfd_create(c"cordon-secrets".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
        if fd < 3 {
            // A host started with a standard descriptor closed: keep clear of 0-2, which the
            // child's terminal or pipes take.
            // SAFETY: F_DUPFD_CLOEXEC on our own fd; the new one is owned by the File.
            let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
            if high < 0 {
                return Err(std::io::Error::last_os_error());
            }
            f = unsafe { std::fs::File::from_raw_fd(high) };
        }
        f.write_all(&payload)?;
        f.rewind()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_owner_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::new(Keys::for_tests(&crate::paths::DataDir::new(
            dir.path().to_path_buf(),
        )));
        let s = v.seal(7, "API_KEY", b"sk-123").unwrap();
        assert!(!s.sealed.windows(6).any(|w| w == b"sk-123"));
        assert_eq!(v.open(7, "API_KEY", &s).unwrap().as_slice(), b"sk-123");
        assert!(v.open(8, "API_KEY", &s).is_err(), "another user's row");
        assert!(v.open(0, "API_KEY", &s).is_err(), "the global row");
        assert!(v.open(7, "OTHER_KEY", &s).is_err(), "another name");
    }

    #[test]
    fn after_a_rotation_new_values_use_the_new_key_and_old_ones_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::new(Keys::for_tests(&crate::paths::DataDir::new(
            dir.path().to_path_buf(),
        )));
        let old = v.seal(7, "K", b"one").unwrap();
        v.rotate().unwrap();
        let new = v.seal(7, "K", b"two").unwrap();
        assert_eq!(v.open(7, "K", &old).unwrap().as_slice(), b"one");
        assert_eq!(v.open(7, "K", &new).unwrap().as_slice(), b"two");
        let (_, current) = v.keys.current(Purpose::Secrets).unwrap().unwrap();
        let only_new = Aes256Gcm::new_from_slice(&current).unwrap();
        assert!(only_new
            .decrypt(
                Nonce::from_slice(&new.nonce),
                Payload {
                    msg: &new.sealed,
                    aad: &associated(7, "K")
                }
            )
            .is_ok());
    }

    #[test]
    fn the_payload_the_sandbox_reads_holds_the_values_and_debug_shows_only_names() {
        use std::io::Read;
        let s = SessionSecrets {
            given: vec![("K".into(), Zeroizing::new(b"v1".to_vec()))],
        };
        assert_eq!(format!("{s:?}"), "[\"K\"]");
        let mut data = Vec::new();
        s.memfd().unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(
            sandbox::secrets::decode(&data).unwrap(),
            vec![("K".to_string(), "v1".to_string())]
        );
    }
}
