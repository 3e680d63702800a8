//! Evidence bundles (`cordon evidence export`): the recordings, catalog entries and audit
//! slice of a selection, signed with the host key (see `crate::evidence`). For admins and
//! auditors; refused while the audit chain does not verify (a bundle would carry the host's
//! signed word that it does); audited as `evidence.exported` before the bundle is handed out.

use std::path::Path;

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Action;
use crate::evidence::{AuditRef, Bundled, Contents, RecordingRef, Selection};
use crate::record::format::{self, KeyGiven};
use crate::session_id::SessionId;

/// The most bytes of sealed recordings one bundle holds.
const RECORDINGS_MAX: u64 = 1 << 30;
/// The most bytes of audit lines one bundle holds.
const AUDIT_MAX: u64 = 256 << 20;

/// What an export put in its bundle.
#[derive(Debug)]
pub struct Exported {
    pub bundle: Vec<u8>,
    pub recordings: usize,
    pub audit_events: u64,
    /// The host key's fingerprint, for the auditor to compare.
    pub fingerprint: String,
}

impl Service {
    /// An evidence bundle of `selection`: sessions by id, or a user's since a moment.
    pub fn export_evidence(&self, p: &Principal, selection: Selection) -> Result<Exported> {
        let p = self.check(p, Action::ExportEvidence, "evidence export", |p| {
            format!("{} may not export evidence", p.role.with_article())
        })?;
        let sessions: Vec<SessionId> = selection
            .sessions
            .iter()
            .map(|s| {
                SessionId::parse(s)
                    .ok_or_else(|| Error::Invalid(format!("\"{s}\" is not a session id")))
            })
            .collect::<Result<_>>()?;
        match (&sessions[..], &selection.user, &selection.since) {
            ([], Some(_), Some(_)) | ([_, ..], None, None) => {}
            _ => {
                return Err(Error::Invalid(
                    "select sessions (--session ID) or a user's since a moment (--user NAME --since TIME), not both".into(),
                ))
            }
        }
        // The chain, verified with the key, through its last event now.
        let key = match self.keys.current(crate::keys::Purpose::Audit) {
            Ok(Some((_, k))) => k,
            Ok(None) => return Err(Error::failed("the key ring holds no audit key")),
            Err(e) => return Err(Error::caused("reading the audit key", e)),
        };
        // Another process may append between the log and its head being read: a break that
        // goes away when read again was such a moment, not damage.
        let mut attempts = 0;
        let through = loop {
            let checkpoint = self
                .store
                .audit_checkpoint(&self.config.cluster.name)
                .ok()
                .flatten();
            match crate::audit::verify_log(&self.dir.audit_log(), &key, checkpoint) {
                Ok(pos) => break pos,
                Err(_) if attempts < 3 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(b) => {
                    return Err(Error::Conflict(format!(
                        "the audit chain does not verify ({b}): evidence is not exported from a broken log; see `cordon audit verify`"
                    )))
                }
            }
        };

        let filter = super::Filter {
            user: selection.user.clone(),
            since: selection.since.clone(),
        };
        let mut entries = self.recordings(&p, &filter)?;
        if !sessions.is_empty() {
            entries.retain(|r| sessions.iter().any(|s| s.number() as i64 == r.session));
            if let Some(s) = sessions
                .iter()
                .find(|s| !entries.iter().any(|r| r.session == s.number() as i64))
            {
                return Err(Error::NotFound(format!(
                    "no recording of session {s} that you may read"
                )));
            }
        }
        entries.sort_by(|a, b| a.started.cmp(&b.started));
        let total: i64 = entries.iter().map(|r| r.bytes.max(0)).sum();
        if total as u64 > RECORDINGS_MAX {
            return Err(Error::Invalid(format!(
                "the selection's recordings hold {} MiB, more than a bundle holds ({} MiB): narrow it",
                total >> 20,
                RECORDINGS_MAX >> 20
            )));
        }
        let keyring = crate::record::Keyring::new(self.keys.clone());
        let mut recordings = Vec::new();
        for r in &entries {
            let path = Path::new(&r.path);
            let master = keyring.for_file(path)?;
            let rec_key = format::recording_key(path, &master)
                .map_err(|d| Error::caused(format!("recording {} is damaged", r.id), d))?;
            // Read once: the bundle's bytes are the ones verified and exported (a recording
            // being written grows meanwhile).
            let sealed = crate::record::source::read_all(path)
                .map_err(|e| Error::caused(format!("reading recording {}", r.id), e))?;
            let file = crate::evidence::verify::in_memory(&sealed)
                .map_err(|e| Error::caused("holding a recording in memory", e))?;
            let rec = format::read_file_with(file, KeyGiven::Recording(rec_key.as_ref()))
                .map_err(|d| Error::caused(format!("recording {} is damaged", r.id), d))?;
            let cast = crate::record::asciicast(&rec, 2).into_bytes();
            let refer = RecordingRef {
                id: r.id.clone(),
                session: SessionId::from_number(r.session as u64).to_string(),
                user: r.user.clone(),
                sealed: format!("recordings/{}.cordonrec", r.id),
                key: format!("recordings/{}.key", r.id),
                asciicast: format!("recordings/{}.cast", r.id),
            };
            recordings.push(Bundled {
                refer,
                sealed,
                key: rec_key.to_vec(),
                asciicast: cast,
            });
        }

        let session_ids: Vec<String> = recordings.iter().map(|b| b.refer.session.clone()).collect();
        let recording_ids: Vec<String> = entries.iter().map(|r| r.id.clone()).collect();
        let (user, since) = (selection.user.clone(), selection.since.clone());
        let selects = move |v: &serde_json::Value| {
            let is = |field: &str, set: &[String]| {
                v[field]
                    .as_str()
                    .is_some_and(|x| set.iter().any(|s| s == x))
            };
            let names_session = is("session", &session_ids) || is("recording", &recording_ids);
            let names_user = user.as_deref().is_some_and(|u| {
                ["actor", "user", "owner"]
                    .iter()
                    .any(|f| v[*f].as_str() == Some(u))
                    && since
                        .as_deref()
                        .is_none_or(|s| v["time"].as_str().is_some_and(|t| t >= s))
            });
            names_session || names_user
        };
        let slice = crate::evidence::audit_slice::read(
            &self.dir.audit_log(),
            through.seq,
            &selects,
            AUDIT_MAX,
        )
        .map_err(Error::Invalid)?;

        let host_key = self.host_key()?;
        let seed = crate::keys::host::ed25519_seed(&host_key).map_err(Error::failed)?;
        let (public, fingerprint) = crate::keys::host::public(&host_key);
        let catalog =
            serde_json::to_vec_pretty(&entries).map_err(|e| Error::caused("the catalog", e))?;
        let audit_events = slice.events;
        let count = recordings.len();
        let bundle = crate::evidence::build(
            Contents {
                host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_default(),
                host_key: public,
                exported_by: p.user.clone(),
                selection: selection.clone(),
                recordings,
                catalog,
                audit: AuditRef {
                    member: crate::evidence::AUDIT.into(),
                    first_seq: slice.first_seq,
                    last_seq: slice.last_seq,
                    events: slice.events,
                    selected: slice.selected,
                    verified_through_seq: through.seq,
                    verified_through_mac: through.mac.clone(),
                },
                audit_lines: slice.lines,
            },
            &seed,
        )
        .map_err(Error::failed)?;
        self.audit
            .record(
                p.stamp(AuditEvent::new(Kind::EvidenceExport, p.user.clone()))
                    .with("sessions", selection.sessions.join(" "))
                    .with("user", selection.user.clone().unwrap_or_default())
                    .with("since", selection.since.clone().unwrap_or_default())
                    .with("recordings", count)
                    .with("audit_events", audit_events)
                    .with("bundle_sha256", crate::evidence::sha256_hex(&bundle)),
            )
            .map_err(|e| Error::caused("the export cannot be audited, so it is refused", e))?;
        Ok(Exported {
            bundle,
            recordings: count,
            audit_events,
            fingerprint,
        })
    }
}
