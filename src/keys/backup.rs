//! Key backups (`cordon key backup`, `cordon key restore`): every data key, sealed with a
//! passphrase, so that the keys outlive both the data directory and the master key.
//!
//! The file is text: a first line naming the format, a JSON header (the KDF and its
//! parameters, salt, nonce; it is the ciphertext's associated data, so a weakened parameter
//! does not open), and the ciphertext in base64. The key comes from the passphrase by
//! Argon2id with 64 MiB and 3 passes: memory-hard, so that guessing it costs memory per try
//! on any hardware. AES-256-GCM seals the keys' JSON.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

use super::{KeyError, Keys};

const MAGIC: &str = "cordon key backup v1";
/// Argon2id's cost: 64 MiB, 3 passes, one lane (RFC 9106's second recommended option).
const M_KIB: u32 = 64 * 1024;
const T: u32 = 3;
const P: u32 = 1;
/// The least a passphrase may be, in characters.
pub const MIN_PASSPHRASE: usize = 12;

#[derive(Serialize, Deserialize)]
pub(super) struct PlainKey {
    pub purpose: String,
    pub id: String,
    pub created: i64,
    pub material: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Plain {
    pub current: BTreeMap<String, String>,
    pub keys: Vec<PlainKey>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    /// When the backup was made (unix seconds) and how many keys it holds: shown by restore.
    created: i64,
    keys: usize,
}

fn kdf(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    // Bounds on what a header may ask for, so that a crafted file cannot make restore
    // allocate without limit or run for hours.
    if !(8 * 1024..=1024 * 1024).contains(&m) || !(1..=16).contains(&t) || !(1..=8).contains(&p) {
        return Err(KeyError::Backup(format!(
            "the backup asks for Argon2id m={m} KiB t={t} p={p}, outside what cordon accepts"
        )));
    }
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|e| KeyError::Backup(format!("Argon2id parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out[..])
        .map_err(|e| KeyError::Backup(format!("Argon2id: {e}")))?;
    Ok(out)
}

/// Why a passphrase is refused for a new backup, if it is.
pub fn weak(passphrase: &str) -> Option<String> {
    (passphrase.chars().count() < MIN_PASSPHRASE)
        .then(|| format!("a backup's passphrase must be at least {MIN_PASSPHRASE} characters"))
}

/// Every key of `keys`, sealed with `passphrase`.
pub fn seal(keys: &Keys, passphrase: &str) -> Result<Vec<u8>, KeyError> {
    if let Some(why) = weak(passphrase) {
        return Err(KeyError::Backup(why));
    }
    let plain = keys.export()?;
    let json = Zeroizing::new(serde_json::to_vec(&plain).expect("keys serialize"));
    let salt = crate::secrets::random_bytes(16).map_err(KeyError::Random)?;
    let nonce = crate::secrets::random_bytes(12).map_err(KeyError::Random)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let header = Header {
        kdf: "argon2id".into(),
        m_kib: M_KIB,
        t: T,
        p: P,
        salt: b64.encode(&salt),
        nonce: b64.encode(&nonce),
        created: super::now(),
        keys: plain.keys.len(),
    };
    let header = serde_json::to_string(&header).expect("a header serializes");
    let key = kdf(passphrase, &salt, M_KIB, T, P)?;
    let sealed = Aes256Gcm::new_from_slice(&key[..])
        .expect("a 32-byte key")
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &json,
                aad: header.as_bytes(),
            },
        )
        .expect("AES-GCM seals the keys");
    Ok(format!("{MAGIC}\n{header}\n{}\n", b64.encode(sealed)).into_bytes())
}

/// What a backup held, once opened.
pub struct Opened {
    plain: Plain,
    pub created: i64,
    pub count: usize,
}

/// Opens a backup with its passphrase.
pub fn open(bytes: &[u8], passphrase: &str) -> Result<Opened, KeyError> {
    let not = |why: &str| KeyError::Backup(format!("not a cordon key backup: {why}"));
    let text = std::str::from_utf8(bytes).map_err(|_| not("not text"))?;
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(not("its first line is not \"cordon key backup v1\""));
    }
    let header_text = lines.next().ok_or_else(|| not("no header"))?;
    let header: Header =
        serde_json::from_str(header_text).map_err(|_| not("its header is not one"))?;
    if header.kdf != "argon2id" {
        return Err(not("its KDF is not argon2id"));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64
        .decode(&header.salt)
        .map_err(|_| not("its salt is not base64"))?;
    let nonce = b64
        .decode(&header.nonce)
        .map_err(|_| not("its nonce is not base64"))?;
    if nonce.len() != 12 || salt.len() < 8 {
        return Err(not("its salt or nonce has the wrong length"));
    }
    let sealed = b64
        .decode(lines.next().ok_or_else(|| not("no keys"))?.trim())
        .map_err(|_| not("its keys are not base64"))?;
    let key = kdf(passphrase, &salt, header.m_kib, header.t, header.p)?;
    let json = Zeroizing::new(
        Aes256Gcm::new_from_slice(&key[..])
            .expect("a 32-byte key")
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: header_text.as_bytes(),
                },
            )
            .map_err(|_| {
                KeyError::Backup(
                    "the backup does not open: a wrong passphrase, or the file was changed".into(),
                )
            })?,
    );
    let plain: Plain =
        serde_json::from_slice(&json).map_err(|_| not("its keys are not cordon's"))?;
    Ok(Opened {
        count: plain.keys.len(),
        created: header.created,
        plain,
    })
}

/// Adds what `opened` holds to `keys`, wrapped by their master key. Returns the count added.
pub fn restore(keys: &Keys, opened: &Opened, replace: bool) -> Result<usize, KeyError> {
    keys.import(&opened.plain, replace)
}
