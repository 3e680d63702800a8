//! Checking a bundle with nothing but the bundle: the container, the manifest's signature
//! (with the public key it names, compared with `--expect-key` when given), every member's
//! SHA-256 against the signed manifest (none missing, none added), each sealed recording
//! opened with its own key and verified chunk by chunk, its asciicast made again from it and
//! compared, the catalog against the recordings, and the audit slice's continuity (sequence
//! numbers without a gap, each event's `prev` the MAC of the one before). Pure: bytes in, a
//! report or the first thing that failed out.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::FromRawFd;

use super::container::{self, ContainerError, Member};
use super::{Manifest, CATALOG, FORMAT, MANIFEST, SIGNATURE, SIGNED_PREFIX};
use crate::record::format::{self, KeyGiven};

/// What failed, in words an auditor can act on.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("the bundle has no {0}: it is incomplete or was altered")]
    Missing(&'static str),
    #[error(
        "the manifest is not valid: {0} (it was altered, or the bundle is from another version)"
    )]
    Manifest(String),
    #[error("the manifest names a host key that is not an Ed25519 public key: {0}")]
    Key(String),
    #[error("the bundle is signed by host key {found}, not the expected {expected}")]
    WrongKey { found: String, expected: String },
    #[error("the manifest's signature does not verify with the host key it names: the manifest or its signature was altered")]
    Signature,
    #[error("member {0} was altered: its SHA-256 is not the one the signed manifest names")]
    Altered(String),
    #[error("member {0} is not named in the signed manifest: it was added")]
    Added(String),
    #[error("member {0}, named in the signed manifest, is missing")]
    Absent(String),
    #[error("recording {id}: {why}")]
    Recording { id: String, why: String },
    #[error("the catalog: {0}")]
    Catalog(String),
    #[error("the audit slice: {0}")]
    Audit(String),
}

/// A recording as verified.
#[derive(Debug)]
pub struct RecordingReport {
    pub id: String,
    pub session: String,
    pub user: String,
    pub events: usize,
    pub seconds: f64,
    /// Sealed with its final chunk (else: its host stopped, or it was still being written).
    pub complete: bool,
}

/// What a verified bundle holds.
#[derive(Debug)]
pub struct Report {
    pub manifest: Manifest,
    /// The signing key's fingerprint, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    pub recordings: Vec<RecordingReport>,
    /// Every member, verified (for `--extract`).
    pub members: Vec<Member>,
}

/// The fingerprint (`SHA256:...`) and the 32 bytes of an OpenSSH Ed25519 public key line.
pub fn host_key(line: &str) -> Result<(String, [u8; 32]), VerifyError> {
    let key = russh::keys::PublicKey::from_openssh(line.trim())
        .map_err(|e| VerifyError::Key(e.to_string()))?;
    let bytes = key
        .key_data()
        .ed25519()
        .map(|k| k.0)
        .ok_or_else(|| VerifyError::Key(format!("a {} key", key.algorithm())))?;
    Ok((
        key.fingerprint(russh::keys::HashAlg::Sha256).to_string(),
        bytes,
    ))
}

/// Checks a bundle; `expect_key` is the fingerprint the auditor knows the host by.
pub fn verify(bytes: &[u8], expect_key: Option<&str>) -> Result<Report, VerifyError> {
    let members = container::read(bytes)?;
    let by_name: BTreeMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let text = by_name
        .get(MANIFEST)
        .ok_or(VerifyError::Missing(MANIFEST))?
        .data
        .as_slice();
    let sig = by_name
        .get(SIGNATURE)
        .ok_or(VerifyError::Missing(SIGNATURE))?
        .data
        .as_slice();
    // The key is read from the manifest before the signature is checked (it says which key
    // to check with); nothing else of it is trusted until then.
    #[derive(serde::Deserialize)]
    struct KeyOnly {
        host_key: String,
    }
    let key: KeyOnly =
        serde_json::from_slice(text).map_err(|e| VerifyError::Manifest(e.to_string()))?;
    let (fingerprint, public) = host_key(&key.host_key)?;
    if let Some(expected) = expect_key {
        if expected.trim() != fingerprint {
            return Err(VerifyError::WrongKey {
                found: fingerprint,
                expected: expected.trim().to_string(),
            });
        }
    }
    use base64::Engine as _;
    let sig = std::str::from_utf8(sig)
        .ok()
        .and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        })
        .ok_or(VerifyError::Signature)?;
    let mut signed = SIGNED_PREFIX.to_vec();
    signed.extend_from_slice(text);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
        .verify(&signed, &sig)
        .map_err(|_| VerifyError::Signature)?;
    let manifest: Manifest =
        serde_json::from_slice(text).map_err(|e| VerifyError::Manifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(VerifyError::Manifest(format!(
            "format \"{}\", not \"{FORMAT}\"",
            manifest.format
        )));
    }
    for m in &members {
        if m.name == MANIFEST || m.name == SIGNATURE {
            continue;
        }
        let d = manifest
            .members
            .get(&m.name)
            .ok_or_else(|| VerifyError::Added(m.name.clone()))?;
        if d.bytes != m.data.len() as u64 || d.sha256 != super::sha256_hex(&m.data) {
            return Err(VerifyError::Altered(m.name.clone()));
        }
    }
    if let Some(name) = manifest
        .members
        .keys()
        .find(|n| !by_name.contains_key(n.as_str()))
    {
        return Err(VerifyError::Absent(name.clone()));
    }
    let member = |name: &str| -> Result<&[u8], VerifyError> {
        by_name
            .get(name)
            .map(|m| m.data.as_slice())
            .ok_or_else(|| VerifyError::Absent(name.to_string()))
    };
    let mut recordings = Vec::new();
    for r in &manifest.recordings {
        let bad = |why: String| VerifyError::Recording {
            id: r.id.clone(),
            why,
        };
        let key = std::str::from_utf8(member(&r.key)?)
            .ok()
            .and_then(|k| format::hex_decode(k.trim()))
            .filter(|k| k.len() == 32)
            .ok_or_else(|| bad("its key is not 32 bytes in hex".into()))?;
        let file = in_memory(member(&r.sealed)?).map_err(|e| bad(e.to_string()))?;
        let rec = format::read_file_with(file, KeyGiven::Recording(&key))
            .map_err(|d| bad(format!("the sealed recording fails verification: {d}")))?;
        if rec.header.id != r.id {
            return Err(bad(format!(
                "the sealed file is recording {}, not this one",
                rec.header.id
            )));
        }
        if crate::record::asciicast(&rec, 2).as_bytes() != member(&r.asciicast)? {
            return Err(bad(
                "its asciicast is not what the sealed recording plays".into()
            ));
        }
        recordings.push(RecordingReport {
            id: r.id.clone(),
            session: r.session.clone(),
            user: r.user.clone(),
            events: rec.events.len(),
            seconds: rec
                .events
                .last()
                .map(|e| e.at_us as f64 / 1e6)
                .unwrap_or(0.0),
            complete: matches!(rec.ending, format::Ending::Complete),
        });
    }
    check_catalog(member(CATALOG)?, &manifest)?;
    check_audit(member(&manifest.audit.member)?, &manifest.audit)?;
    Ok(Report {
        manifest,
        fingerprint,
        recordings,
        members,
    })
}

/// A sealed recording's bytes as a file (a memfd: nothing touches a disk).
pub fn in_memory(data: &[u8]) -> std::io::Result<std::fs::File> {
    // SAFETY: a static NUL-terminated name; the descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"cordon-evidence".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is ours alone.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(data)?;
    Ok(file)
}

/// Every catalog entry is one of the bundle's recordings, and every recording has one.
fn check_catalog(data: &[u8], manifest: &Manifest) -> Result<(), VerifyError> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(data).map_err(|e| VerifyError::Catalog(e.to_string()))?;
    let ids: Vec<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    if ids.len() != entries.len() {
        return Err(VerifyError::Catalog("an entry has no id".into()));
    }
    for r in &manifest.recordings {
        if !ids.contains(&r.id.as_str()) {
            return Err(VerifyError::Catalog(format!(
                "no entry for recording {}",
                r.id
            )));
        }
    }
    if let Some(id) = ids
        .iter()
        .find(|id| !manifest.recordings.iter().any(|r| r.id == **id))
    {
        return Err(VerifyError::Catalog(format!(
            "an entry for recording {id}, which the bundle does not hold"
        )));
    }
    Ok(())
}

/// The slice runs without a gap from its first event to its last, each event linked to the
/// one before by its `prev` (the MAC of the previous line), as the manifest says.
fn check_audit(data: &[u8], a: &super::AuditRef) -> Result<(), VerifyError> {
    let bad = |why: String| VerifyError::Audit(why);
    let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8".into()))?;
    let mut prev_mac: Option<String> = None;
    let mut count = 0u64;
    for (i, line) in text.lines().enumerate() {
        let (body, mac) = crate::audit::chain::split_line(line)
            .ok_or_else(|| bad(format!("line {} has no MAC", i + 1)))?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| bad(format!("line {} is not JSON: {e}", i + 1)))?;
        let seq = v["seq"]
            .as_u64()
            .ok_or_else(|| bad(format!("line {} has no sequence number", i + 1)))?;
        if seq != a.first_seq + i as u64 {
            return Err(bad(format!(
                "line {} is event {seq}, where event {} belongs: events are missing or out of order",
                i + 1,
                a.first_seq + i as u64
            )));
        }
        if let Some(p) = &prev_mac {
            if v["prev"].as_str() != Some(p.as_str()) {
                return Err(bad(format!(
                    "event {seq} does not link to event {}: an event was changed, removed or inserted",
                    seq - 1
                )));
            }
        }
        if seq == a.verified_through_seq && mac != a.verified_through_mac {
            return Err(bad(format!(
                "event {seq}'s MAC is not the one the host verified the chain through"
            )));
        }
        prev_mac = Some(mac.to_string());
        count += 1;
    }
    if count != a.events || (count > 0 && a.first_seq + count - 1 != a.last_seq) {
        return Err(bad(format!(
            "it holds {count} events, not the {} from {} to {} the manifest names",
            a.events, a.first_seq, a.last_seq
        )));
    }
    if a.last_seq > a.verified_through_seq {
        return Err(bad(format!(
            "it goes on to event {}, past event {} the host verified the chain through",
            a.last_seq, a.verified_through_seq
        )));
    }
    if let Some(s) = a
        .selected
        .iter()
        .find(|s| **s < a.first_seq || **s > a.last_seq)
    {
        return Err(bad(format!("selected event {s} is not in the slice")));
    }
    Ok(())
}
