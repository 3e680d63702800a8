//! The host's Ed25519 key: the SSH host key (`keys/ssh_host_ed25519_key`, OpenSSH format,
//! mode 0600), which also signs evidence bundles. Loaded in one place, so that how it is
//! stored can change without its users knowing.

use russh::keys::PrivateKey;
use std::path::Path;

/// Loads the Ed25519 host key, generating it (mode 0600) on first start.
pub fn load_or_create(path: &Path) -> Result<PrivateKey, String> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by others (mode {mode:o}); chmod 600 it",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        return PrivateKey::from_openssh(text.as_bytes())
            .map_err(|e| format!("{}: not an OpenSSH private key: {e}", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let seed =
        crate::secrets::random_bytes(32).map_err(|e| format!("generating the host key: {e}"))?;
    let mut s = [0u8; 32];
    s.copy_from_slice(&seed);
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&s);
    let key = PrivateKey::from(pair);
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| format!("encoding the host key: {e}"))?;
    crate::secrets::write_private(path, text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(key)
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
