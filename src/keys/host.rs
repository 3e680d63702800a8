//! The host's Ed25519 key: the SSH host key clients pin in `known_hosts`, which also signs
//! evidence bundles; kept in the ring (purpose `ssh-host`, as OpenSSH's private key text)
//! and made on first use.

use russh::keys::PrivateKey;
use zeroize::Zeroizing;

use super::{KeyError, Keys, Purpose};

/// The host key, generated on first use.
pub fn ssh_host_key(keys: &Keys) -> Result<PrivateKey, KeyError> {
    let (id, text) = keys.current_or_make(Purpose::SshHost, || {
        let seed = Zeroizing::new(crate::secrets::random_bytes(32).map_err(KeyError::Random)?);
        let mut s = Zeroizing::new([0u8; 32]);
        s.copy_from_slice(&seed);
        let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&s);
        let text = PrivateKey::from(pair)
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .map_err(|e| KeyError::Damaged {
                path: keys.path(),
                why: format!("encoding a new host key: {e}"),
            })?;
        Ok(text.as_bytes().to_vec())
    })?;
    PrivateKey::from_openssh(&text[..]).map_err(|e| KeyError::Damaged {
        path: keys.path(),
        why: format!("the ssh-host key {id} is not an OpenSSH private key: {e}"),
    })
}

/// The host key's public half in OpenSSH form, and its fingerprint as `ssh-keygen -lf` prints
/// it (`SHA256:...`).
pub fn public(key: &PrivateKey) -> (String, String) {
    let public = key.public_key();
    (
        public.to_openssh().unwrap_or_default(),
        public.fingerprint(russh::keys::HashAlg::Sha256).to_string(),
    )
}

/// The 32-byte Ed25519 seed of the host key, for signing; an error when the key is not
/// Ed25519 (an operator's own key put in its place).
pub fn ed25519_seed(key: &PrivateKey) -> Result<zeroize::Zeroizing<[u8; 32]>, String> {
    match key.key_data().ed25519() {
        Some(pair) => Ok(zeroize::Zeroizing::new(pair.private.to_bytes())),
        None => Err(format!(
            "the host key is {}, not Ed25519: evidence bundles are signed with Ed25519",
            key.algorithm()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_key_is_made_once_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::for_tests(&crate::paths::DataDir::new(dir.path().to_path_buf()));
        let a = ssh_host_key(&keys).unwrap();
        let b = ssh_host_key(&keys).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.algorithm(), russh::keys::Algorithm::Ed25519);
    }
}
