//! Recordings: list, read, play, search, export, verify, hold, and the recording key. A
//! recording the caller may not read answers exactly like one that does not exist, and an
//! id prefix is matched only among those they may read. Every read of a recording's
//! content is audited before anything is shown; an access that cannot be audited is
//! refused.

use std::path::{Path, PathBuf};

use super::{failed, Error, Failure, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{allowed, Action};
use crate::changes::Summary;
use crate::record::{format, Hit, RecordError, Verdict};
use crate::store::RecordingEntry;

/// A recording's failures are the host's (a missing key, a disk, a damaged file: 500, the
/// source kept), but for an export format the caller asked for that does not exist.
impl From<RecordError> for Error {
    fn from(e: RecordError) -> Error {
        match e {
            RecordError::UnknownFormat(_) => Error::Invalid(e.to_string()),
            e => Error::Failed(Failure {
                what: e.to_string(),
                source: Some(Box::new(e)),
            }),
        }
    }
}

/// A recording that fails verification on the way to being read: the host's failure, with
/// the damage as its source.
fn damaged(r: &RecordingEntry) -> impl FnOnce(format::Damage) -> Error + '_ {
    move |d| Error::caused(format!("recording {} is damaged", r.id), d)
}

/// Which recordings a listing or a search covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this user's (by name).
    pub user: Option<String>,
    /// Only those started at or after this RFC 3339 prefix.
    pub since: Option<String>,
}

impl Service {
    fn may_read(p: &Principal, r: &RecordingEntry) -> bool {
        allowed(
            p.role,
            Action::ReadRecording {
                own: p.owns(r.user_id),
            },
        )
    }

    /// Recordings the principal may read, newest first: everyone's for auditors and admins,
    /// their own for others.
    pub fn recordings(&self, p: &Principal, filter: &Filter) -> Result<Vec<RecordingEntry>> {
        let p = self.current(p)?;
        let mut list = self
            .store
            .recordings(filter.user.as_deref())
            .map_err(failed)?;
        list.retain(|r| {
            Self::may_read(&p, r)
                && filter
                    .since
                    .as_deref()
                    .is_none_or(|c| r.started.as_str() >= c)
        });
        list.sort_by(|a, b| b.started.cmp(&a.started));
        Ok(list)
    }

    /// A recording the principal may read, by id or unique prefix; the current principal.
    fn readable(&self, p: &Principal, id: &str, what: &str) -> Result<(Principal, RecordingEntry)> {
        let p = self.current(p)?;
        match self.store.recording(id, |r| Self::may_read(&p, r)) {
            Ok(r) => Ok((p, r)),
            Err(e) => {
                // Whether it exists and belongs to someone else is audited, never answered.
                if let Ok(r) = self.store.recording(id, |_| true) {
                    let why = format!("recording {} belongs to {}", r.id, r.user);
                    return Err(self.refused(
                        &p,
                        what,
                        &why,
                        Error::NotFound(format!("no recording {id}")),
                    ));
                }
                Err(Error::NotFound(e.to_string()))
            }
        }
    }

    fn key_for(&self, r: &RecordingEntry) -> Result<Vec<u8>> {
        Ok(crate::record::Keyring::new(self.keys.clone()).for_file(Path::new(&r.path))?)
    }

    /// Writes an access to the audit log; an access that cannot be audited does not happen.
    fn audit_access(&self, event: AuditEvent) -> Result<()> {
        self.audit
            .record(event)
            .map_err(|e| Error::caused("the access cannot be audited, so it is refused", e))
    }

    /// A whole recording, read and verified, for playback from `at` seconds; audited before
    /// anything is returned.
    pub fn open_recording(
        &self,
        p: &Principal,
        id: &str,
        at: f64,
    ) -> Result<(RecordingEntry, format::Recording)> {
        let (p, r) = self.readable(p, id, "play")?;
        let key = self.key_for(&r)?;
        let rec = format::read(Path::new(&r.path), &key).map_err(damaged(&r))?;
        self.audit_access(
            p.stamp(AuditEvent::new(Kind::RecordingPlay, p.user.clone()))
                .with("recording", r.id.clone())
                .with("at", at),
        )?;
        Ok((r, rec))
    }

    /// A recording opened for streaming playback (`cordon rec play`); audited.
    pub fn open_reader(
        &self,
        p: &Principal,
        id: &str,
        at: f64,
    ) -> Result<(RecordingEntry, format::Reader)> {
        let (p, r) = self.readable(p, id, "play")?;
        let key = self.key_for(&r)?;
        let reader = format::Reader::open(Path::new(&r.path), &key).map_err(damaged(&r))?;
        self.audit_access(
            p.stamp(AuditEvent::new(Kind::RecordingPlay, p.user.clone()))
                .with("recording", r.id.clone())
                .with("at", at),
        )?;
        Ok((r, reader))
    }

    /// The events that draw the screen at `at` seconds, from the nearest keyframe; audited
    /// like playback.
    pub fn screen_at(
        &self,
        p: &Principal,
        id: &str,
        at: f64,
    ) -> Result<(format::Header, Vec<format::Event>)> {
        let (p, r) = self.readable(p, id, "screen")?;
        let key = self.key_for(&r)?;
        let found = format::seek(Path::new(&r.path), &key, (at.max(0.0) * 1e6) as u64)
            .map_err(damaged(&r))?;
        self.audit_access(
            p.stamp(AuditEvent::new(Kind::RecordingPlay, p.user.clone()))
                .with("recording", r.id.clone())
                .with("at", at)
                .with("screen_only", true),
        )?;
        Ok(found)
    }

    /// What a recorded session created, changed and deleted in its workspace: the summary
    /// kept at its end (event `f`), read from the recording's last chunks, each verified.
    /// Reading it is reading the recording: the same permission, audited like playback
    /// before it is returned.
    pub fn recording_files(&self, p: &Principal, id: &str) -> Result<(RecordingEntry, Summary)> {
        let (p, r) = self.readable(p, id, "files")?;
        let key = self.key_for(&r)?;
        // The summary comes just before the exit status: in the final chunk or the one
        // before (a long summary may have filled its own).
        let data =
            format::last_event(Path::new(&r.path), &key, format::FILES, 3).map_err(damaged(&r))?;
        self.audit_access(
            p.stamp(AuditEvent::new(Kind::RecordingPlay, p.user.clone()))
                .with("recording", r.id.clone())
                .with("files_only", true),
        )?;
        let Some(data) = data else {
            let why = if r.state == crate::store::RecordingState::Recording {
                format!("recording {} has no summary of files changed yet: its session still runs (ask it: `files SESSION` over SSH, GET /v1/sessions/{}/files)", r.id, crate::sessions::SessionId::from_number(r.session as u64))
            } else {
                format!("recording {} holds no summary of files changed: its session ended without one (the host stopped first), or it was recorded before cordon kept them", r.id)
            };
            return Err(Error::NotFound(why));
        };
        let summary = serde_json::from_slice(&data).map_err(|e| {
            Error::caused(
                format!(
                    "recording {} holds a files summary that cannot be read",
                    r.id
                ),
                e,
            )
        })?;
        Ok((r, summary))
    }

    /// A recording in an export format (`asciicast-v2`, `asciicast-v3`, `raw`); audited
    /// (with where it goes) before it is returned.
    pub fn export(
        &self,
        p: &Principal,
        id: &str,
        fmt: &str,
        to: &str,
    ) -> Result<(RecordingEntry, Vec<u8>)> {
        let (p, r) = self.readable(p, id, "export")?;
        let key = self.key_for(&r)?;
        let rec = format::read(Path::new(&r.path), &key).map_err(damaged(&r))?;
        let bytes = crate::record::encode(&rec, fmt)?;
        self.audit_access(
            p.stamp(AuditEvent::new(Kind::RecordingExport, p.user.clone()))
                .with("recording", r.id.clone())
                .with("format", fmt.to_string())
                .with("to", to.to_string()),
        )?;
        Ok((r, bytes))
    }

    /// A recording exported into the principal's workspace (`exports/ID.cast`), where they
    /// and their sessions find it. Written without following links (see [`crate::places`]).
    pub fn export_recording(&self, p: &Principal, id: &str, fmt: &str) -> Result<PathBuf> {
        let user = self
            .store
            .user_by_id(p.user_id)
            .map_err(failed)?
            .ok_or_else(|| {
                Error::Invalid(
                    "the host's own shell has no workspace: use `cordon rec export -o FILE`".into(),
                )
            })?;
        let ext = if fmt == "raw" { "raw" } else { "cast" };
        let (_, r) = self.readable(p, id, "export")?;
        let file = format!("{}.{ext}", r.id);
        let (_, bytes) = self.export(
            p,
            &r.id,
            fmt,
            &format!("exports/{file} in the workspace of {}", user.name),
        )?;
        self.places
            .write_export(&user, &file, &bytes)
            .map_err(Error::failed)
    }

    /// A recording's catalog entry.
    pub fn recording(&self, p: &Principal, id: &str) -> Result<RecordingEntry> {
        Ok(self.readable(p, id, "info")?.1)
    }

    /// Whether a recording reads back whole, and if not what is wrong and where.
    pub fn verify_recording(&self, p: &Principal, id: &str) -> Result<(RecordingEntry, Verdict)> {
        let (p, r) = self.readable(p, id, "verify")?;
        let verdict = self.verdict(&r);
        self.record(
            p.stamp(AuditEvent::new(Kind::RecordingVerify, p.user.clone()))
                .with("recording", r.id.clone())
                .with("ok", verdict.is_whole()),
        );
        Ok((r, verdict))
    }

    /// Every recording the principal may read, verified; audited once with the count.
    pub fn verify_all(&self, p: &Principal) -> Result<Vec<(RecordingEntry, Verdict)>> {
        let p = self.current(p)?;
        let list = self.recordings(&p, &Filter::default())?;
        let out: Vec<_> = list
            .into_iter()
            .map(|r| (r.clone(), self.verdict(&r)))
            .collect();
        let damaged = out.iter().filter(|(_, v)| !v.is_whole()).count();
        self.record(
            p.stamp(AuditEvent::new(Kind::RecordingVerify, p.user.clone()))
                .with("count", out.len())
                .with("damaged", damaged),
        );
        Ok(out)
    }

    fn verdict(&self, r: &RecordingEntry) -> Verdict {
        // A recording the host finished sealing must be complete; one still "recording" in
        // the catalog whose host is gone was interrupted.
        let keys = crate::record::Keyring::new(self.keys.clone());
        crate::record::verdict(
            &keys,
            Path::new(&r.path),
            r.state == crate::store::RecordingState::Complete,
        )
    }

    /// What a recording's session did, in order: the programs it started and their exits,
    /// its connections and its markers; audited as reading it.
    pub fn recording_events(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<(RecordingEntry, Vec<crate::record::timeline::Entry>)> {
        let (p, r) = self.readable(p, id, "events")?;
        let key = self.key_for(&r)?;
        let rec = format::read(Path::new(&r.path), &key).map_err(damaged(&r))?;
        self.audit_access(
            p.stamp(AuditEvent::new(Kind::RecordingPlay, p.user.clone()))
                .with("recording", r.id.clone())
                .with("events_only", true),
        )?;
        Ok((r, crate::record::timeline::entries(&rec)))
    }

    /// Programs the sessions of the recordings the principal may read started whose command
    /// line holds `pattern`; audited like [`Service::search`].
    pub fn search_exec(
        &self,
        p: &Principal,
        pattern: &str,
        filter: &Filter,
    ) -> Result<(Vec<Hit>, Vec<String>)> {
        self.search_target(p, pattern, filter, crate::record::Target::Exec)
    }

    /// Lines that appeared on screen in the recordings the principal may read; audited
    /// (with the recordings shown) before the hits are returned. Also returns the ids of
    /// recordings that could not be read.
    pub fn search(
        &self,
        p: &Principal,
        pattern: &str,
        filter: &Filter,
    ) -> Result<(Vec<Hit>, Vec<String>)> {
        self.search_target(p, pattern, filter, crate::record::Target::Screen)
    }

    fn search_target(
        &self,
        p: &Principal,
        pattern: &str,
        filter: &Filter,
        target: crate::record::Target,
    ) -> Result<(Vec<Hit>, Vec<String>)> {
        if pattern.is_empty() {
            return Err(Error::Invalid("an empty pattern matches everything".into()));
        }
        let p = self.current(p)?;
        let list = self.recordings(&p, filter)?;
        let found = crate::record::search(
            &crate::record::Keyring::new(self.keys.clone()),
            &list,
            pattern,
            target,
        );
        let matched: Vec<String> =
            found
                .hits
                .iter()
                .map(|h| h.recording.clone())
                .fold(Vec::new(), |mut v, id| {
                    if v.last() != Some(&id) {
                        v.push(id);
                    }
                    v
                });
        self.audit
            .record(
                p.stamp(AuditEvent::new(Kind::RecordingSearch, p.user.clone()))
                    .with("pattern", pattern.to_string())
                    .with(
                        "in",
                        match target {
                            crate::record::Target::Screen => "screen",
                            crate::record::Target::Exec => "exec",
                        },
                    )
                    .with("recordings", found.searched)
                    .with("hits", found.hits.len())
                    .with("matched", matched),
            )
            .map_err(|e| Error::caused("the search cannot be audited, so it is refused", e))?;
        Ok((found.hits, found.unreadable))
    }

    /// Puts a recording under legal hold (never purged), or lifts it (admins and auditors).
    pub fn hold(&self, p: &Principal, id: &str, hold: bool) -> Result<RecordingEntry> {
        let (p, r) = self.readable(p, id, "hold")?;
        self.permit(&p, Action::ReadAudit, "hold", |p| {
            format!("{} may not hold recordings", p.role.with_article())
        })?;
        self.store.set_hold(&r.id, hold).map_err(failed)?;
        self.record(
            p.stamp(AuditEvent::new(
                if hold {
                    Kind::RecordingHold
                } else {
                    Kind::RecordingRelease
                },
                p.user.clone(),
            ))
            .with("recording", r.id.clone()),
        );
        // The catalog's hold is what purge obeys; the bucket's keeps the objects too.
        if let Some((bucket, spool)) = crate::record::bucket() {
            crate::record::upload::hold(bucket, spool, &r.id, hold).map_err(|e| {
                Error::caused(
                    format!(
                        "recording {} is {} in the catalog, but the legal hold of its objects in the bucket could not be {}: run it again when the bucket answers",
                        r.id,
                        if hold { "held" } else { "released" },
                        if hold { "set" } else { "cleared" }
                    ),
                    e,
                )
            })?;
        }
        Ok(r)
    }

    /// Makes a new recording master key current (admins); old recordings stay readable.
    pub fn rotate_recording_key(&self, p: &Principal) -> Result<String> {
        let p = self.check(p, Action::ManageUsers, "key rotate", |p| {
            format!("{} may not rotate keys", p.role.with_article())
        })?;
        let id = crate::record::Keyring::new(self.keys.clone()).rotate()?;
        self.record(
            p.stamp(AuditEvent::new(Kind::KeyRotate, p.user.clone()))
                .with("key", "recording")
                .with("key_id", id.clone()),
        );
        Ok(id)
    }
}
