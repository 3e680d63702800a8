//! The host's own moments, for the faces that run it (`cordon serve`, the embedded `cordon`,
//! the TUI's socket): starting and stopping, the logins that are neither keys nor passwords
//! (the OS account at the keyboard, a peer's credentials on the socket), TUIs opening and
//! closing, and the figures `/metrics` shows. Faces never reach the store, the hub or the
//! audit log themselves.

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{Action, Role};

/// What `/metrics` shows of the host itself.
#[derive(Debug, Clone)]
pub struct HostFigures {
    pub sessions: usize,
    pub recording_errors: u64,
    pub audit_errors: u64,
    /// Egress since the host started (network mode "proxy"), sessions and runs together.
    pub egress: EgressFigures,
    /// The master key's and each current data key's age against its rotation period;
    /// empty when the key ring could not be read.
    pub keys: Vec<crate::keys::Age>,
    /// Alerts raised since the host started, per rule (`[alerts]`).
    pub alerts: [(&'static str, u64); 8],
    /// The alert webhook's deliveries: delivered, failed after every attempt, dropped (its
    /// queue full).
    pub webhook: [(&'static str, u64); 3],
}

/// Egress counters for /metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct EgressFigures {
    pub allowed: u64,
    pub refused: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub asked: u64,
    pub answered: u64,
    pub unanswered: u64,
}

impl Service {
    /// The configuration the host runs with (read-only: a face may show or obey it).
    pub fn config(&self) -> &crate::config::Config {
        &self.config
    }

    /// Whether any user exists yet (a new host says how to add the first admin).
    pub fn has_users(&self) -> Result<bool> {
        Ok(!self.store.users()?.is_empty())
    }

    /// Records that the host started; a host whose start cannot be audited does not start.
    /// The error is `Failed`, the audit log's error its source.
    pub fn host_started(&self, listen: &str) -> Result<()> {
        self.audit
            .record(
                AuditEvent::new(Kind::ServeStart, "cordon")
                    .with("listen", listen.to_string())
                    .with("recording", self.config.recording_enabled),
            )
            .map_err(|e| {
                Error::caused(
                    "the audit log cannot be written, so the host does not start",
                    e,
                )
            })
    }

    /// Ends every session (their readers record each end, given up to a second), and
    /// records that the host stopped. Returns how many sessions were running.
    pub fn host_stopping(&self, event: Option<Kind>) -> usize {
        let running = self.hub.list().len();
        self.hub.end_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !self.hub.list().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.cluster_leave();
        if let Some(kind) = event {
            self.record(AuditEvent::new(kind, "cordon"));
        }
        running
    }

    /// Purges recordings past `[recordings] retention` (held ones never); each is audited.
    /// Starts uploading recordings to the bucket of `[objects]`, if there is one (the
    /// serving host only: one uploader per spool). Says where they go.
    pub fn start_uploads(&self) -> std::io::Result<Option<String>> {
        let Some((bucket, spool)) = crate::record::bucket() else {
            return Ok(None);
        };
        let store = self.store.clone();
        crate::record::upload::Uploader::new(bucket.clone(), spool.clone(), self.config.retention)
            .held_by(move |id| store.recording_hold(id).ok().flatten())
            .start()?;
        let c = bucket.config();
        Ok(Some(format!("bucket {} at {}", c.bucket, c.endpoint)))
    }

    pub fn purge_recordings(&self) -> Vec<String> {
        match self.config.retention {
            Some(age) => crate::record::purge(&self.store, &self.audit, age),
            None => Vec::new(),
        }
    }

    /// The OS account at this terminal as a cordon user (the embedded host): whoever owns the
    /// data directory administers it, so an account new to it is added as an admin, audited.
    pub fn local_login(&self) -> Result<Principal> {
        // SAFETY: geteuid cannot fail.
        let name = crate::accounts::name_of(unsafe { libc::geteuid() })
            .ok_or_else(|| Error::failed("cannot tell which OS user this is"))?;
        if !crate::store::valid_user_name(&name) {
            return Err(Error::Invalid(format!(
                "the OS user name \"{name}\" is not a valid cordon user name"
            )));
        }
        if self.store.user(&name)?.is_none() {
            self.add_user(&Principal::local_admin(), &name, Role::Admin, &[])?;
        }
        let p = self.principal(&name, "local")?;
        self.record(
            AuditEvent::new(Kind::TuiStart, p.user.clone())
                .with("address", "local")
                .with("recording", self.config.recording_enabled),
        );
        Ok(p)
    }

    /// A `cordon tui` connection: the cordon user named like the OS account the kernel says
    /// is connecting (SO_PEERCRED). Refusals are audited (bounded per uid).
    pub fn peer_login(&self, uid: u32) -> Result<Principal> {
        let address = format!("local uid {uid}");
        let name = crate::accounts::name_of(uid).unwrap_or_else(|| format!("uid-{uid}"));
        let p =
            self.principal(&name, &address)
                .and_then(|p| match self.lockdown_refuses(p.role)? {
                    Some(why) => Err(Error::Forbidden(why)),
                    None => Ok(p),
                });
        match p {
            Ok(p) => {
                self.record(
                    AuditEvent::new(Kind::Login, p.user.clone())
                        .with("method", "tui socket")
                        .with("address", address.clone()),
                );
                self.record(
                    AuditEvent::new(Kind::TuiStart, p.user.clone()).with("address", address),
                );
                Ok(p)
            }
            Err(e) => {
                self.record_bounded(
                    &format!("login.failed:uid{uid}"),
                    AuditEvent::new(
                        Kind::LoginFailed,
                        crate::service::users::offered_name(&name),
                    )
                    .with("method", "tui socket")
                    .with("address", address)
                    .with("why", e.to_string()),
                );
                Err(e)
            }
        }
    }

    /// A TUI over SSH opened.
    pub fn tui_opened(&self, p: &Principal) {
        self.record(p.stamp(AuditEvent::new(Kind::TuiStart, p.user.clone())));
    }

    /// The embedded host's TUI closed.
    pub fn tui_closed(&self, p: &Principal) {
        self.record(AuditEvent::new(Kind::TuiStop, p.user.clone()));
    }

    /// The host's figures for `/metrics` (those who may read the audit log).
    pub fn figures(&self, p: &Principal) -> Result<HostFigures> {
        self.check(p, Action::ReadAudit, "metrics", |p| {
            format!("{} may not read metrics", p.role.with_article())
        })?;
        Ok(HostFigures {
            sessions: self.hub.list().len(),
            recording_errors: crate::record::ERRORS.load(std::sync::atomic::Ordering::Relaxed),
            audit_errors: crate::audit::ERRORS.load(std::sync::atomic::Ordering::Relaxed),
            egress: {
                let f = &crate::sessions::egress::FIGURES;
                let get =
                    |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                EgressFigures {
                    allowed: get(&f.allowed),
                    refused: get(&f.refused),
                    bytes_up: get(&f.bytes_up),
                    bytes_down: get(&f.bytes_down),
                    asked: get(&f.asked),
                    answered: get(&f.answered),
                    unanswered: get(&f.unanswered),
                }
            },
            keys: self.key_figures().map(|s| s.ages).unwrap_or_default(),
            alerts: self.alerting.counts(),
            webhook: {
                use crate::alerts::webhook::{DELIVERED, DROPPED, FAILED};
                let get =
                    |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                [
                    ("delivered", get(&DELIVERED)),
                    ("failed", get(&FAILED)),
                    ("dropped", get(&DROPPED)),
                ]
            },
        })
    }
}
