//! A host's data keys read the way someone holding its master key could: the key ring
//! (`keys/keyring.json`) opened with the master key file the harness gave the host. Tests
//! that play an attacker who knows a key (the API's signing key) and benchmarks that write
//! the audit log themselves use it; it follows docs/security.md's description of the ring,
//! so a change there that these lines do not follow fails those tests.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use std::path::Path;

/// The current key of `purpose` (`audit`, `recording`, `api-eddsa`, ...) in the data
/// directory `state`, opened with the master key in `master_file`: its id and material.
/// None when the master key does not open it.
pub fn current(state: &Path, master_file: &Path, purpose: &str) -> Option<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(master_file).ok()?;
    let hex = text.trim();
    let master: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let ring: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("keys/keyring.json")).ok()?).ok()?;
    let id = ring["current"][purpose].as_str()?.to_string();
    let entry = ring["keys"]
        .as_array()?
        .iter()
        .find(|e| e["purpose"] == purpose && e["id"] == id.as_str())?;
    let created = entry["created"].as_i64()?;
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(entry["wrapped"].as_str()?)
        .ok()?;
    let mut kek = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"cordon keyring v1"), &master)
        .expand(format!("wrap {purpose}").as_bytes(), &mut kek)
        .ok()?;
    let aad = format!("cordon key\0{purpose}\0{id}\0{created}");
    let material = Aes256Gcm::new_from_slice(&kek)
        .ok()?
        .decrypt(
            Nonce::from_slice(&wrapped[..12]),
            Payload {
                msg: &wrapped[12..],
                aad: aad.as_bytes(),
            },
        )
        .ok()?;
    Some((id, material))
}
