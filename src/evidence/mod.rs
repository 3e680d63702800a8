//! Evidence bundles: what a session (or a user's sessions since a moment) left behind, in one
//! file that an auditor checks on another machine without the host's data. A bundle holds
//! the sealed recordings as they are on disk, each with its own recording key (which opens
//! that recording only: `record::format::recording_key`) and its asciicast export, the
//! catalog entries, the audit slice (every line of the log from the first event that names
//! the selection to the last, MACs and links kept) and `manifest.json`, which names every
//! member with its SHA-256 and is signed (`manifest.sig`) with the host's Ed25519 key.
//!
//! What offline verification can honestly check, and what it cannot, is in
//! docs/security.md ("Evidence bundles: offline procedure"): the audit MAC key never leaves
//! the host, so the verifier checks the slice's continuity and the host's signed word that
//! it verified the whole chain when it exported.
//!
//! `container.rs` is the file format (pure), `audit_slice.rs` reads the slice from the log,
//! `verify.rs` checks a bundle (pure: bytes in, a report or what failed out).

pub mod audit_slice;
pub mod container;
pub mod verify;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

use container::Member;

/// The manifest's `format`.
pub const FORMAT: &str = "cordon-evidence 1";

/// What the signature covers: these bytes, then the manifest's.
pub const SIGNED_PREFIX: &[u8] = b"cordon evidence bundle v1\n";

pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
pub const CATALOG: &str = "catalog.json";
pub const AUDIT: &str = "audit.jsonl";

/// What was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Sessions by id.
    pub sessions: Vec<String>,
    /// A user's sessions (by name), with `since`.
    pub user: Option<String>,
    /// Those started at or after this RFC 3339 moment (or prefix).
    pub since: Option<String>,
}

/// A member's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub sha256: String,
    pub bytes: u64,
}

/// One recording in the bundle: its members by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRef {
    pub id: String,
    /// The session's id, as the audit log names it.
    pub session: String,
    pub user: String,
    /// The sealed file, as it is on disk.
    pub sealed: String,
    /// Its recording key (hex): opens this recording, no other.
    pub key: String,
    /// Its asciicast v2 export.
    pub asciicast: String,
}

/// The audit slice: which events it holds, which of them name the selection, and how far
/// the host verified the chain (with the key) when it exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRef {
    pub member: String,
    /// The slice's first and last sequence numbers (0 and 0: no event names the selection).
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: u64,
    /// The events that name the selection (the rest of the slice is between them, so that
    /// a gap would show).
    pub selected: Vec<u64>,
    /// The host verified every MAC of the log, from its start to this event, at export.
    pub verified_through_seq: u64,
    pub verified_through_mac: String,
}

/// The manifest: signed, it binds every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub host: String,
    /// The host's Ed25519 public key, in OpenSSH form.
    pub host_key: String,
    pub exported_at: String,
    pub exported_by: String,
    pub selection: Selection,
    pub recordings: Vec<RecordingRef>,
    pub audit: AuditRef,
    /// Every member but the manifest and its signature, by name.
    pub members: BTreeMap<String, Digest>,
}

/// A recording as it goes into a bundle.
pub struct Bundled {
    pub refer: RecordingRef,
    /// The sealed file's bytes.
    pub sealed: Vec<u8>,
    /// Its recording key.
    pub key: Vec<u8>,
    pub asciicast: Vec<u8>,
}

/// What an export puts in a bundle, gathered by the service.
pub struct Contents {
    pub host: String,
    pub host_key: String,
    pub exported_by: String,
    pub selection: Selection,
    pub recordings: Vec<Bundled>,
    /// The catalog entries (JSON array).
    pub catalog: Vec<u8>,
    pub audit: AuditRef,
    pub audit_lines: Vec<u8>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    crate::secrets::hex(&Sha256::digest(data))
}

/// The bundle's bytes: the members, the manifest naming them, and its signature with the
/// host key's Ed25519 `seed`.
pub fn build(c: Contents, seed: &[u8; 32]) -> Result<Vec<u8>, String> {
    let mut members = Vec::new();
    for b in c.recordings.iter() {
        members.push(Member {
            name: b.refer.sealed.clone(),
            data: b.sealed.clone(),
        });
        members.push(Member {
            name: b.refer.key.clone(),
            data: crate::secrets::hex(&b.key).into_bytes(),
        });
        members.push(Member {
            name: b.refer.asciicast.clone(),
            data: b.asciicast.clone(),
        });
    }
    members.push(Member {
        name: CATALOG.into(),
        data: c.catalog,
    });
    members.push(Member {
        name: c.audit.member.clone(),
        data: c.audit_lines,
    });
    let manifest = Manifest {
        format: FORMAT.into(),
        host: c.host,
        host_key: c.host_key,
        exported_at: crate::audit::now_rfc3339(),
        exported_by: c.exported_by,
        selection: c.selection,
        recordings: c.recordings.into_iter().map(|b| b.refer).collect(),
        audit: c.audit,
        members: members
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    Digest {
                        sha256: sha256_hex(&m.data),
                        bytes: m.data.len() as u64,
                    },
                )
            })
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| "the host key's seed is not an Ed25519 key".to_string())?;
    let mut signed = SIGNED_PREFIX.to_vec();
    signed.extend_from_slice(&text);
    let sig = pair.sign(&signed);
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.as_ref());
    let mut all = vec![
        Member {
            name: MANIFEST.into(),
            data: text,
        },
        Member {
            name: SIGNATURE.into(),
            data: format!("{sig}\n").into_bytes(),
        },
    ];
    all.extend(members);
    Ok(container::write(&all))
}
