//! The service layer: every operation the faces offer (SSH commands, the TUI, the HTTP API,
//! the host-shell commands), each taking the caller's principal. The permission check and
//! the audit event live here, once; a face parses, calls, and shows the answer.
//!
//! Authority is read at each use, not cached from login: every call reloads the caller's
//! user by id (a lock, a removal or a role change applies to the next call of an open
//! connection), and [`Service::maintain`] ends what a caller may no longer do while it
//! runs (viewers, sessions and `run` commands of users locked, removed or demoted).

mod alerts;
mod claude;
mod cluster;
mod egress;
mod evidence;
mod files;
mod host;
mod keys;
mod lockdown;
mod recordings;
mod runs;
mod secrets;
mod sessions;
mod throttle;
mod totp;
mod users;

pub use crate::store::{Lockdown, LockdownSessions};
pub use egress::QuestionInfo;
pub use files::FileSession;
pub use lockdown::DATABASE_UNREACHABLE;
pub use lockdown::REASON_MAX as LOCKDOWN_REASON_MAX;
pub use recordings::Filter;
pub use runs::{RunEnd, RunInput, RunRequest};
pub use secrets::{Scope, SecretInfo};
pub use sessions::{NewSession, ScreenText, WorkspaceChoices};
pub use totp::{Enrolment, Login, PendingLogin, TotpStatus};
pub use users::UserInfo;

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditLog, Kind};
use crate::auth::{allowed, Action, Role};
use crate::config::Config;
use crate::paths::DataDir;
use crate::places::Places;
use crate::sessions::{Hub, Launcher};
use crate::store::Store;

/// Who is asking, from where, and in which request (the API's request id). `user_id` is
/// the user's stable id; 0 is the host's own shell (`cordon user ...` run by the account
/// that owns the data directory), which acts as an admin and owns nothing.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub user_id: i64,
    pub role: Role,
    pub address: String,
    pub request: Option<String>,
}

impl Principal {
    /// The host's own shell: whoever can open the data directory administers cordon.
    pub fn local_admin() -> Principal {
        Principal {
            user: format!("local:{}", crate::accounts::current()),
            user_id: 0,
            role: Role::Admin,
            address: "local".into(),
            request: None,
        }
    }

    /// Adds where the call came from to an audit event.
    pub fn stamp(&self, e: AuditEvent) -> AuditEvent {
        let e = e.with("address", self.address.clone());
        match &self.request {
            Some(r) => e.with("request", r.clone()),
            None => e,
        }
    }

    /// Whether something owned by user `owner_id` is this principal's.
    pub fn owns(&self, owner_id: i64) -> bool {
        self.user_id != 0 && self.user_id == owner_id
    }
}

/// Why a call did not happen, by kind: each face answers the kinds the same way (SSH: exit
/// status 126 or 2; the API: 403, 404, 400, 409, 500). `Forbidden` refusals are audited before
/// they are returned; `NotFound` is also the answer for what exists but the caller may not
/// see, worded the same as for what does not exist; `Invalid` is a request that could never
/// be done as asked, `Conflict` one that is well formed but clashes with how things stand now
/// (a name taken, the last admin, a question no longer waiting); `Failed` keeps its source for
/// the host's log and is never shown as a refusal or a missing thing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// The host could not do it (the database, a disk, a key).
    #[error(transparent)]
    Failed(#[from] Failure),
}

/// Something the host failed at, and why (the source kept).
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct Failure {
    pub what: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// The store's database could not be reached (PostgreSQL down or cut off): nothing about
    /// users can be known now. Faces refuse new logins saying so, and leave what is running
    /// (checked at its login) to go on until it is back.
    pub fn is_database_unreachable(&self) -> bool {
        match self {
            Error::Failed(f) => f
                .source
                .as_ref()
                .and_then(|s| (**s).downcast_ref::<crate::store::StoreError>())
                .is_some_and(|e| e.is_unreachable()),
            _ => false,
        }
    }

    /// A failure of the host with only words to say (lower layers that return them).
    pub fn failed(what: impl std::fmt::Display) -> Error {
        Error::Failed(Failure {
            what: what.to_string(),
            source: None,
        })
    }

    /// A failure of the host at `what`, caused by `source`.
    pub fn caused(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        let what = what.into();
        let what = format!("{what}: {source}");
        Error::Failed(Failure {
            what,
            source: Some(Box::new(source)),
        })
    }
}

/// Refuses a command with a NUL byte in an argument: no program can be given one (an
/// argument is a C string), so the start would fail after every check had passed.
fn command_without_nul(argv: &[String]) -> Result<()> {
    match argv.iter().position(|a| a.contains('\0')) {
        Some(i) => Err(Error::Invalid(format!(
            "argument {i} of the command holds a NUL byte, which no program can be given"
        ))),
        None => Ok(()),
    }
}

/// Two errors are the same answer: the same kind and the same words (tests compare them).
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

/// The store's kinds kept: its missing things are missing, its bad input is invalid, what
/// already exists a conflict, and its failures stay failures (never a 404 or a 400).
impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Error {
        use crate::store::StoreError::*;
        match e {
            NotFound(m) => Error::NotFound(m),
            Invalid(m) => Error::Invalid(m),
            Conflict(m) => Error::Conflict(m),
            // SQLite's errors say "the database: ..." already.
            e @ Database(_) => Error::Failed(Failure {
                what: e.to_string(),
                source: Some(Box::new(e)),
            }),
            e @ (Broken(_) | File(_)) => Error::caused("the database", e),
        }
    }
}

/// Why the host could not open its data directory: each part's own error, whose words name
/// the file, the reason and the fix (the faces print it and exit).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Files(#[from] crate::paths::FileError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Recordings(#[from] crate::record::RecordError),
    #[error(transparent)]
    Sessions(#[from] crate::sessions::SessionError),
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokenError),
    #[error(transparent)]
    Objects(crate::objects::ObjectError),
}

/// A session's own failures are the host's; a session with no room for another viewer is a
/// refusal of the caller.
impl From<crate::sessions::SessionError> for Error {
    fn from(e: crate::sessions::SessionError) -> Error {
        match e {
            crate::sessions::SessionError::Full { .. } => Error::Forbidden(e.to_string()),
            e => Error::Failed(Failure {
                what: e.to_string(),
                source: Some(Box::new(e)),
            }),
        }
    }
}

/// Why the audit chain is not known to be intact: it could not be checked, or it is broken
/// (where, and what is wrong).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The key the chain is sealed with could not be read, so nothing was checked.
    #[error("reading the audit key: {0}")]
    Key(#[source] crate::keys::KeyError),
    #[error(transparent)]
    Broken(#[from] crate::audit::Broken),
}

pub type Result<T> = std::result::Result<T, Error>;

fn failed(e: impl std::fmt::Display) -> Error {
    Error::failed(e)
}

/// The host's parts, shared by every face and reached only through the service's
/// operations: no face touches the store, the hub or the audit log.
pub struct Service {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    hub: Arc<Hub>,
    config: Config,
    dir: DataDir,
    /// Users' homes and workspaces.
    places: Places,
    /// API token signing and checking.
    tokens: Arc<crate::tokens::Tokens>,
    /// The key secrets for sessions are sealed with.
    vault: crate::vault::Vault,
    /// The data keys, wrapped by the master key.
    keys: Arc<crate::keys::Keys>,
    /// The key second factors' secrets are sealed with.
    totp_vault: crate::auth::totp_vault::TotpVault,
    runs: runs::Runs,
    /// Held while a new session or run is checked against the per-user limit and
    /// registered, so that concurrent requests cannot all pass the check.
    admission: std::sync::Mutex<()>,
    throttle: throttle::Throttle,
    /// Bounds concurrent password hashing (about 19 MiB each).
    hashing: tokio::sync::Semaphore,
    /// How far the audit chain was verified, to go on from there (the Audit view's state).
    chain: std::sync::Mutex<Option<crate::audit::chain::Position>>,
    /// When retention last ran, and the audit checkpoint last written.
    housekeeping: std::sync::Mutex<(std::time::Instant, u64)>,
    /// Alert rules' windows, the sinks, the counts (`alerts.rs`).
    alerting: alerts::Alerting,
    /// This host among those sharing the store (`cluster.rs`; `cordon serve` joins).
    membership: cluster::Membership,
}

impl Service {
    /// Opens the data directory and builds the host (store, audit log, recorder, hub).
    /// Returns the service and what it found to say on the way (modes that were too loose
    /// and were tightened, a master key generated, plain key files moved into the ring).
    pub fn open(
        dir: DataDir,
        config: Config,
    ) -> std::result::Result<(Arc<Service>, Vec<String>), OpenError> {
        let mut tightened = dir.ensure()?;
        let keys = crate::keys::Keys::open(&dir, &config.master)?;
        tightened.extend(keys.notes.iter().cloned());
        let store = Store::open_config(&config.store, &dir.database())?;
        let key = keys.random_current(crate::keys::Purpose::Audit)?.1.to_vec();
        // A log from before sealed heads may be opened (and its head sealed) only while the
        // database has never checkpointed one: afterwards an unsealed head is a forgery.
        let unsealed_ok = store.audit_checkpoint(&config.cluster.name)?.is_none();
        let audit = Arc::new(
            AuditLog::open(&dir.audit_log(), key, config.audit.clone(), unsealed_ok)?
                .naming(&config.cluster.name),
        );
        let store = Arc::new(store);
        let recorder = Arc::new(crate::record::Recorder::new(
            config
                .recordings_dir
                .clone()
                .unwrap_or_else(|| dir.root.join("recordings")),
            crate::record::Keyring::new(keys.clone()),
            config.recording_policy,
            config.record_input,
            config.recording_enabled,
        )?);
        // `[objects]`: recordings uploaded to a bucket, and read from it once their local
        // copy is gone. A bucket that cannot be used as configured stops the host.
        if let Some(cfg) = &config.objects {
            let bucket = crate::objects::Bucket::open(cfg).map_err(OpenError::Objects)?;
            bucket.check_access().map_err(OpenError::Objects)?;
            crate::record::use_bucket(bucket, recorder.dir.clone());
        }
        let hub = Hub::new(
            Launcher::for_this_build()?,
            vec![dir.root.clone(), recorder.dir.clone()],
            audit.clone(),
            recorder,
            store.clone(),
        );
        let tokens = Arc::new(crate::tokens::Tokens::open(
            keys.clone(),
            &config.api_signing,
        )?);
        let places = Places::new(&config);
        if config.password_login {
            crate::auth::password::warm();
        }
        let svc = Service {
            store,
            audit,
            hub,
            places,
            vault: crate::vault::Vault::new(keys.clone()),
            totp_vault: crate::auth::totp_vault::TotpVault::new(keys.clone()),
            keys,
            dir,
            tokens,
            runs: runs::Runs::default(),
            admission: std::sync::Mutex::new(()),
            throttle: throttle::Throttle::default(),
            hashing: tokio::sync::Semaphore::new(2),
            chain: std::sync::Mutex::new(None),
            housekeeping: std::sync::Mutex::new((
                std::time::Instant::now() - std::time::Duration::from_secs(3600),
                0,
            )),
            alerting: alerts::Alerting::new(&config.alerts),
            membership: cluster::Membership::default(),
            config,
        };
        Ok((Arc::new(svc), tightened))
    }

    /// Appends to the audit log after the action (docs/audit-events.md: a failure is said
    /// and counted; the action stands).
    pub fn record(&self, event: AuditEvent) {
        self.audit.report(event);
    }

    /// Appends an event that strangers can cause at any rate (failed logins, refused
    /// requests): the first few per `key` and minute are written, the rest counted and
    /// written as one `audit.suppressed` event.
    pub fn record_bounded(&self, key: &str, event: AuditEvent) {
        if self.throttle.admit(key) {
            self.record(event);
        }
    }

    /// A refusal, audited (bounded per caller), returned as `err`.
    fn refused(&self, p: &Principal, what: &str, why: &str, err: Error) -> Error {
        // Bounded per user (however many connections they spread it over).
        self.record_bounded(
            &format!("refused:{}", p.user_id),
            p.stamp(AuditEvent::new(Kind::Refused, p.user.clone()))
                .with("what", what.to_string())
                .with("why", why.to_string()),
        );
        err
    }

    /// The caller as the store knows them now: locked or removed users have no authority,
    /// and the role is the current one.
    pub fn current(&self, p: &Principal) -> Result<Principal> {
        if p.user_id == 0 {
            return Ok(p.clone());
        }
        match self.store.user_by_id(p.user_id) {
            Ok(Some(u)) if !u.locked => {
                let p = Principal {
                    user: u.name,
                    role: u.role,
                    ..p.clone()
                };
                self.lockdown_gate(&p)?;
                Ok(p)
            }
            Ok(Some(_)) => Err(self.refused(
                p,
                "act",
                "the account is locked",
                Error::Forbidden("your account is locked".into()),
            )),
            Ok(None) => Err(self.refused(
                p,
                "act",
                "the account was removed",
                Error::Forbidden("your account was removed".into()),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The permission check, with the caller's current role: a refusal is audited and
    /// returned. Gives back the current principal.
    fn check(
        &self,
        p: &Principal,
        action: Action,
        what: &str,
        why: impl FnOnce(&Principal) -> String,
    ) -> Result<Principal> {
        let p = self.current(p)?;
        self.permit(&p, action, what, why)?;
        Ok(p)
    }

    /// The permission check for a principal just read by [`Service::current`].
    fn permit(
        &self,
        p: &Principal,
        action: Action,
        what: &str,
        why: impl FnOnce(&Principal) -> String,
    ) -> Result<()> {
        if allowed(p.role, action) {
            return Ok(());
        }
        let why = why(p);
        Err(self.refused(p, what, &why, Error::Forbidden(why.clone())))
    }

    /// The principal of a user in the store, by name (locked users have none).
    pub fn principal(&self, user: &str, address: &str) -> Result<Principal> {
        match self.store.user(user) {
            Ok(Some(u)) if !u.locked => Ok(Principal {
                user: u.name,
                user_id: u.id,
                role: u.role,
                address: address.to_string(),
                request: None,
            }),
            Ok(Some(_)) => Err(Error::Forbidden(format!("{user} is locked"))),
            Ok(None) => Err(Error::NotFound(format!("no user {user}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// The principal of user `id` (API tokens name the id they were issued to).
    pub fn principal_by_id(&self, id: i64, address: &str) -> Result<Principal> {
        match self.store.user_by_id(id) {
            Ok(Some(u)) if !u.locked => Ok(Principal {
                user: u.name,
                user_id: u.id,
                role: u.role,
                address: address.to_string(),
                request: None,
            }),
            Ok(Some(u)) => Err(Error::Forbidden(format!("{} is locked", u.name))),
            Ok(None) => Err(Error::NotFound("the user no longer exists".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends what callers may no longer do (run it a few times a second): sessions and `run`
    /// commands of users locked or removed, and viewers whose user may no longer watch or
    /// type (locked, removed, or demoted). Then the idle and age limits, and the summaries
    /// of bounded audit events.
    pub fn maintain(&self) {
        let lockdown = self.store.lockdown().ok().flatten();
        let mut users = std::collections::HashMap::new();
        // Err: the database is unreachable, so nothing is known of the user now: what runs
        // goes on (checked at its login) until it is back. Any other failure reads as no user.
        let mut user = |id: i64| -> std::result::Result<Option<crate::store::User>, ()> {
            users
                .entry(id)
                .or_insert_with(|| match self.store.user_by_id(id) {
                    Ok(u) => Ok(u),
                    Err(e) if e.is_unreachable() => Err(()),
                    Err(_) => Ok(None),
                })
                .clone()
        };
        for s in self.hub.list().into_iter().filter(|s| !s.ending()) {
            if user(s.owner_id).is_ok_and(|u| u.is_none_or(|u| u.locked)) {
                self.record(
                    AuditEvent::new(Kind::SessionKill, "cordon")
                        .with("session", s.id)
                        .with("reason", "the owner is locked or removed"),
                );
                s.kill();
                continue;
            }
            for v in s.viewers() {
                if v.user_id == 0 {
                    continue;
                }
                let own = v.user_id == s.owner_id;
                let why = match user(v.user_id).map_err(|_| ()) {
                    Err(()) => None,
                    Ok(None) => Some("your account was removed".to_string()),
                    Ok(Some(u)) if u.locked => Some("your account is locked".to_string()),
                    Ok(Some(u)) if u.role != Role::Admin && lockdown.is_some() => {
                        lockdown.as_ref().map(lockdown::refusal)
                    }
                    Ok(Some(u)) if v.writer && !allowed(u.role, Action::AttachSession { own }) => {
                        Some(format!(
                            "{} may not type into session {}",
                            u.role.with_article(),
                            s.id
                        ))
                    }
                    Ok(Some(u)) if !allowed(u.role, Action::ObserveSession { own }) => Some(
                        format!("{} may not see session {}", u.role.with_article(), s.id),
                    ),
                    Ok(Some(_)) => None,
                };
                if let Some(why) = why {
                    // The reason first: detaching wakes the viewer's face, which says it.
                    v.revoke(&why);
                    s.detach(&v);
                    self.record(
                        AuditEvent::new(Kind::SessionDetach, "cordon")
                            .with("session", s.id)
                            .with("user_id", v.user_id)
                            .with("reason", why),
                    );
                }
            }
        }
        for job in self.runs.list() {
            if user(job.owner_id).is_ok_and(|u| u.is_none_or(|u| u.locked)) {
                self.record(
                    AuditEvent::new(Kind::RunKill, "cordon")
                        .with("owner", job.owner.clone())
                        .with("reason", "the owner is locked or removed"),
                );
                job.kill();
            }
        }
        self.enforce_lockdown();
        self.hub
            .enforce_limits(self.config.idle_timeout, self.config.max_duration);
        self.audit_housekeeping();
        self.cluster_beat(false);
        self.alert_checks();
        for summary in self.throttle.expired() {
            self.record(
                AuditEvent::new(Kind::AuditSuppressed, "cordon")
                    .with("key", summary.key)
                    .with("suppressed", summary.suppressed)
                    .with("window_seconds", throttle::WINDOW.as_secs()),
            );
        }
    }

    /// The audit log's upkeep: its last event checkpointed in the database (so that a log
    /// cut or replaced with its head is caught), and, hourly, retention.
    fn audit_housekeeping(&self) {
        let mut h = self.housekeeping.lock().unwrap_or_else(|e| e.into_inner());
        let (seq, mac) = self.audit.last();
        if seq > h.1
            && self
                .store
                .set_audit_checkpoint(&self.config.cluster.name, seq, &mac)
                .is_ok()
        {
            h.1 = seq;
        }
        if let Some(age) = self.config.audit_retention {
            if h.0.elapsed() >= std::time::Duration::from_secs(3600) {
                h.0 = std::time::Instant::now();
                drop(h);
                match self.audit.apply_retention(age) {
                    Ok(removed) if !removed.is_empty() => {
                        println!("cordon: audit retention removed {}", removed.join(", "))
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("cordon: audit retention: {e}"),
                }
            }
        }
    }

    /// Sessions plus `run` commands of user `id`, the number the per-user limit counts.
    fn running_for(&self, id: i64) -> usize {
        self.hub.count_for(id) + self.runs.count_for(id)
    }

    /// The per-user limit of the principal's role, refused (audited) when reached.
    fn within_limit(&self, p: &Principal, what: &str) -> Result<()> {
        let limit = self
            .config
            .max_sessions
            .get(p.role.name())
            .copied()
            .unwrap_or(0);
        if p.user_id != 0 && self.running_for(p.user_id) >= limit {
            let why = format!(
                "{} already runs {limit} sessions and commands, the most a {} may",
                p.user, p.role
            );
            return Err(self.refused(p, what, &why, Error::Forbidden(why.clone())));
        }
        Ok(())
    }

    /// Profiles the principal may start sessions with, for the role they have now.
    pub fn profiles(&self, p: &Principal) -> Result<Vec<String>> {
        let p = self.current(p)?;
        Ok(sandbox::profile::Search::standard()
            .list()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| self.config.profile_allowed(p.role, name).is_ok())
            .collect())
    }

    /// The latest `limit` audit events, newest first, those containing `filter` if given
    /// (read from the end of the log: as fast for a GB as for a thousand events; a filter
    /// searches the latest 256 MiB).
    pub fn audit_events(
        &self,
        p: &Principal,
        limit: usize,
        filter: Option<&str>,
    ) -> Result<Vec<serde_json::Value>> {
        self.check(p, Action::ReadAudit, "audit", |p| {
            format!("{} may not read the audit log", p.role.with_article())
        })?;
        Ok(crate::audit::read::latest(
            &self.dir.audit_log(),
            limit,
            filter.filter(|f| !f.is_empty()),
            256 << 20,
        ))
    }

    /// The audit chain's state: Ok(events) or Err(where it breaks). `full` verifies every
    /// line again; otherwise only what was appended since the last verification is read
    /// (the head and the database checkpoint are checked either way).
    pub fn audit_verify(
        &self,
        p: &Principal,
        full: bool,
    ) -> Result<std::result::Result<u64, ChainError>> {
        self.check(p, Action::ReadAudit, "audit verify", |p| {
            format!("{} may not read the audit log", p.role.with_article())
        })?;
        Ok(self.verify_chain(full))
    }

    /// The chain verified (see [`Service::audit_verify`]), without a caller (the host warms
    /// the Audit view's state with it at start).
    pub fn verify_chain(&self, full: bool) -> std::result::Result<u64, ChainError> {
        let key = match self.keys.current(crate::keys::Purpose::Audit) {
            Ok(Some((_, k))) => k.to_vec(),
            Ok(None) => {
                return Err(ChainError::Key(crate::keys::KeyError::Missing {
                    purpose: "audit",
                    id: "(current)".into(),
                    path: self.keys.path(),
                }))
            }
            Err(e) => return Err(ChainError::Key(e)),
        };
        let checkpoint = self
            .store
            .audit_checkpoint(&self.config.cluster.name)
            .ok()
            .flatten();
        let mut cache = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        let from = if full { None } else { cache.clone() };
        match crate::audit::verify_log_from(&self.dir.audit_log(), &key, checkpoint, from.as_ref())
        {
            Ok(pos) => {
                let events = pos.events;
                *cache = Some(pos);
                Ok(events)
            }
            Err(b) => {
                *cache = None;
                Err(b.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod matrix;
