//! TOTP secrets at rest: sealed with AES-256-GCM under a key of their own (the key ring's
//! `totp` key, wrapped by the master key: neither the secrets key nor a recording key), a random 96-bit nonce
//! each, and the user's id as associated data, so that a sealed secret copied to another
//! user's row does not open. The store only ever holds the sealed form.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

use crate::keys::{Keys, Purpose};

/// A TOTP secret as stored: a nonce and the AEAD's output.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTotp {
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum TotpVaultError {
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error("a nonce for a TOTP secret: {0}")]
    Random(#[source] std::io::Error),
    #[error("the stored second factor of user #{user_id} does not open with {}: the key was replaced or the row was altered; an admin resets it (cordon user totp reset NAME) and the user enrols again", .key.display())]
    Opening { user_id: i64, key: PathBuf },
}

/// The host's TOTP key.
pub struct TotpVault {
    keys: Arc<Keys>,
}

impl TotpVault {
    pub fn new(keys: Arc<Keys>) -> TotpVault {
        TotpVault { keys }
    }

    /// The one place the key is loaded (made on first use).
    fn cipher(&self) -> Result<Aes256Gcm, TotpVaultError> {
        let (_, key) = self.keys.random_current(Purpose::Totp)?;
        Ok(Aes256Gcm::new_from_slice(&key).expect("a 32-byte key"))
    }

    /// Seals `secret` for user `user_id`.
    pub fn seal(&self, user_id: i64, secret: &[u8]) -> Result<SealedTotp, TotpVaultError> {
        let nonce = crate::secrets::random_bytes(12).map_err(TotpVaultError::Random)?;
        let sealed = self
            .cipher()?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &associated(user_id),
                },
            )
            .expect("AES-GCM seals any value under 64 GiB");
        Ok(SealedTotp { nonce, sealed })
    }

    /// Opens what [`TotpVault::seal`] sealed for this user.
    pub fn open(&self, user_id: i64, s: &SealedTotp) -> Result<Zeroizing<Vec<u8>>, TotpVaultError> {
        let opening = || TotpVaultError::Opening {
            user_id,
            key: self.keys.path(),
        };
        if s.nonce.len() != 12 {
            return Err(opening());
        }
        self.cipher()?
            .decrypt(
                Nonce::from_slice(&s.nonce),
                Payload {
                    msg: &s.sealed,
                    aad: &associated(user_id),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| opening())
    }
}

fn associated(user_id: i64) -> Vec<u8> {
    let mut aad = b"cordon totp v1\0".to_vec();
    aad.extend(user_id.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_never_shows_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let v = TotpVault::new(Keys::for_tests(&crate::paths::DataDir::new(
            dir.path().to_path_buf(),
        )));
        let secret = b"0123456789abcdefghij";
        let s = v.seal(7, secret).unwrap();
        assert!(!s.sealed.windows(8).any(|w| w == &secret[..8]));
        assert_eq!(v.open(7, &s).unwrap().as_slice(), secret);
        assert!(v.open(8, &s).is_err(), "another user's row");
        let mut cut = s.clone();
        cut.sealed[0] ^= 1;
        assert!(v.open(7, &cut).is_err(), "altered");
    }
}
