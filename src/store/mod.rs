//! The store: users, their roles and SSH keys, and the rest of the host's state, in SQLite
//! (embedded: WAL, foreign keys on) or PostgreSQL (shared by several hosts). The only module
//! that speaks SQL; callers get plain values. How a method is written, once for both
//! databases: `db.rs`.

mod alerts;
mod cluster;
pub mod db;
mod lockdown;
pub mod postgres;
mod secrets;
mod settings;
mod totp;

pub use alerts::{Block, Incident, IncidentEvent};
pub use cluster::HostSession;
pub use lockdown::{Lockdown, LockdownSessions};
pub use secrets::SealedSecret;
pub use settings::{StoreConfig, StoreFile};

use crate::auth::Role;
use db::{args, Db, Sql};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::Path;

/// A cordon user. `id` is stable and never reused: a user removed and added again under the
/// same name is a new user (new id, new uid for their sessions) who inherits nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub locked: bool,
    pub created: String,
}

/// One SSH public key of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Key {
    pub user: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub algorithm: String,
    pub comment: String,
    /// The key in OpenSSH format (type, base64), without options.
    pub openssh: String,
    pub added: String,
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Being written (or its host stopped while writing it: interrupted).
    Recording,
    /// Sealed with its final chunk.
    Complete,
    /// Writing failed (the strict policy ended the session).
    Failed,
}

impl RecordingState {
    /// As the catalog, the listings and the API say it.
    pub fn name(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Complete => "complete",
            RecordingState::Failed => "failed",
        }
    }

    /// The state a catalog entry names.
    pub fn parse(s: &str) -> RecordingState {
        match s {
            "complete" => RecordingState::Complete,
            "failed" => RecordingState::Failed,
            // Anything else was left by a host that stopped while writing it.
            _ => RecordingState::Recording,
        }
    }
}

impl std::fmt::Display for RecordingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A recording in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingEntry {
    pub id: String,
    pub session: i64,
    pub user: String,
    /// The owner's stable id (0: a user removed before ids were recorded).
    pub user_id: i64,
    pub profile: String,
    pub command: String,
    pub started: String,
    pub ended: Option<String>,
    pub exit_status: Option<i64>,
    pub state: RecordingState,
    pub path: String,
    pub bytes: i64,
    pub key_id: String,
    /// Under legal hold: never purged.
    pub hold: bool,
}

/// What went wrong, by kind, so that each face answers it rightly: a database failure is
/// never taken for a missing user or bad input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (or is unreachable: `DbError::Unreachable`), each saying so.
    #[error("{0}")]
    Database(#[from] db::DbError),
    #[error("{0}")]
    Broken(String),
    /// No such user, key or recording.
    #[error("{0}")]
    NotFound(String),
    /// Not a valid name or key.
    #[error("{0}")]
    Invalid(String),
    /// It exists already (a user name, a key registered to someone).
    #[error("{0}")]
    Conflict(String),
    /// The database's files could not be made private (a link in their place, a chmod).
    #[error(transparent)]
    File(#[from] crate::paths::FileError),
}

type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// The database could not be reached (PostgreSQL down or cut off): logins are refused
    /// saying so, not as a wrong password.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Database(db::DbError::Unreachable(_)))
    }
}

/// The store: SQLite (embedded, the default) or PostgreSQL (shared by hosts); see `db`.
pub struct Store {
    db: Db,
}

/// The schema as it was first shipped (version 1, before `PRAGMA user_version` was kept).
const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'developer', 'auditor', 'viewer')),
    locked INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    session INTEGER NOT NULL,
    "user" TEXT NOT NULL,
    profile TEXT NOT NULL,
    command TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    exit_status INTEGER,
    state TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    key_id TEXT NOT NULL,
    hold INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS login_failures (
    subject TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_subject ON login_failures (subject, at);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    family TEXT NOT NULL,
    expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS token_cutoffs (
    "user" TEXT PRIMARY KEY,
    not_before INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL UNIQUE,
    algorithm TEXT NOT NULL,
    comment TEXT NOT NULL,
    openssh TEXT NOT NULL,
    added TEXT NOT NULL
);
"#;

/// Version 2: users keep ids that are never reused (a counter, since SQLite reuses the
/// largest rowid after a delete), and what belongs to a user (recordings, refresh tokens,
/// token cutoffs) refers to that id, so that a name removed and added again inherits
/// nothing. Access tokens name their login (refresh family), which can be revoked.
const SCHEMA_V2: &str = r#"
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) SELECT 'user_id', COALESCE(MAX(id), 0) FROM users;
ALTER TABLE recordings ADD COLUMN user_id INTEGER NOT NULL DEFAULT 0;
UPDATE recordings SET user_id = COALESCE((SELECT id FROM users WHERE users.name = recordings."user"), 0);
CREATE INDEX recordings_user_id ON recordings (user_id);
ALTER TABLE refresh_tokens ADD COLUMN user_id INTEGER NOT NULL DEFAULT 0;
UPDATE refresh_tokens SET user_id = COALESCE((SELECT id FROM users WHERE users.name = refresh_tokens."user"), 0);
CREATE TABLE user_cutoffs (user_id INTEGER PRIMARY KEY, not_before INTEGER NOT NULL);
INSERT INTO user_cutoffs (user_id, not_before)
    SELECT u.id, c.not_before FROM token_cutoffs c JOIN users u ON u.name = c."user";
DROP TABLE token_cutoffs;
CREATE TABLE revoked_families (family TEXT PRIMARY KEY, expires INTEGER NOT NULL);
"#;

/// Version 4: the audit log's checkpoint.
const SCHEMA_CHECKPOINT: &str = "CREATE TABLE audit_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, mac TEXT NOT NULL, at TEXT NOT NULL);";

/// The schema version this build writes; an older database is migrated on open, a newer
/// one refused.
pub const SCHEMA_VERSION: i64 = 9;

/// Brings the database to [`SCHEMA_VERSION`], one version at a time, each in a transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Broken(format!(
            "the database has schema version {version}, newer than this cordon knows ({SCHEMA_VERSION}): upgrade cordon"
        )));
    }
    if version < 1 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_V1)?;
        // Added to the first schema before versions were kept: a password hash per user.
        let has_password: bool = tx
            .prepare("SELECT 1 FROM pragma_table_info('users') WHERE name = 'password'")?
            .exists([])?;
        if !has_password {
            tx.execute_batch("ALTER TABLE users ADD COLUMN password TEXT")?;
        }
        tx.pragma_update(None, "user_version", 1)?;
        tx.commit()?;
    }
    if version < 2 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_V2)?;
        tx.pragma_update(None, "user_version", 2)?;
        tx.commit()?;
    }
    if version < 3 {
        // Version 3: commands in the catalog are stored with their secrets masked; those
        // catalogued before are masked now.
        let tx = conn.transaction()?;
        let rows: Vec<(String, String)> = tx
            .prepare("SELECT id, command FROM recordings")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        for (id, command) in rows {
            let masked = crate::masking::mask_text(&command);
            if masked != command {
                tx.execute(
                    "UPDATE recordings SET command = ?2 WHERE id = ?1",
                    params![id, masked],
                )?;
            }
        }
        tx.pragma_update(None, "user_version", 3)?;
        tx.commit()?;
    }
    if version < 4 {
        // Version 4: the audit log's last event as the host last saw it, so that a log cut
        // or replaced together with its head is still caught.
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_CHECKPOINT)?;
        tx.pragma_update(None, "user_version", 4)?;
        tx.commit()?;
    }
    if version < 5 {
        // Version 5: secrets for sessions, sealed (see `secrets.rs`).
        let tx = conn.transaction()?;
        tx.execute_batch(secrets::SCHEMA_V5)?;
        tx.pragma_update(None, "user_version", 5)?;
        tx.commit()?;
    }
    if version < 6 {
        // Version 6 (alerts, issue 19): addresses blocked by containment, and incidents
        // with their timelines (see `alerts.rs`).
        let tx = conn.transaction()?;
        tx.execute_batch(alerts::SCHEMA_ALERTS)?;
        tx.pragma_update(None, "user_version", 6)?;
        tx.commit()?;
    }
    if version < 7 {
        // Version 7: second factors (TOTP), their secrets sealed, and recovery codes as
        // hashes (see `totp.rs`).
        let tx = conn.transaction()?;
        tx.execute_batch(totp::SCHEMA_TOTP)?;
        tx.pragma_update(None, "user_version", 7)?;
        tx.commit()?;
    }
    if version < 8 {
        // Version 8: the host's lockdown (see `lockdown.rs`).
        let tx = conn.transaction()?;
        tx.execute_batch(lockdown::SCHEMA_LOCKDOWN)?;
        tx.pragma_update(None, "user_version", 8)?;
        tx.commit()?;
    }
    if version < 9 {
        // Version 9 (issue 20, several hosts): the hosts and their heartbeats, the sessions
        // each publishes, and one audit checkpoint per host (see `cluster.rs`).
        let tx = conn.transaction()?;
        tx.execute_batch(cluster::SCHEMA_CLUSTER)?;
        tx.pragma_update(None, "user_version", 9)?;
        tx.commit()?;
    }
    Ok(())
}

const USER_COLUMNS: &str = "id, name, role, locked, created";

/// A valid user name: what a Unix login would accept.
pub fn valid_user_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(f) if f.is_ascii_lowercase() || f == '_')
        && name.len() <= 32
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
}

/// Parses one authorized_keys line: `[options] type base64 [comment]`. Options are ignored
/// (cordon applies its own restrictions); the second value says whether any were present.
pub fn parse_key_line(line: &str) -> Result<(russh::keys::PublicKey, bool)> {
    let line = line.trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    let start = words
        .iter()
        .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-sha2-") || w.starts_with("sk-"))
        .ok_or_else(|| {
            StoreError::Invalid(
                "not an SSH public key line (expected e.g. `ssh-ed25519 AAAA... comment`)".into(),
            )
        })?;
    let key_text = words[start..].join(" ");
    let key = russh::keys::PublicKey::from_openssh(&key_text)
        .map_err(|e| StoreError::Invalid(format!("not a valid SSH public key: {e}")))?;
    Ok((key, start > 0))
}

impl Store {
    /// Opens (creating) the SQLite database at `path`, migrating an older schema. The file
    /// and its WAL companions are made private (0600) even when they existed before: they
    /// hold password hashes and token hashes.
    pub fn open(path: &Path) -> Result<Store> {
        // Before SQLite opens them: closing any descriptor of a file drops every POSIX lock
        // this process holds on it, so touching them afterwards would silently release
        // SQLite's locks (another process would then delete the WAL under us).
        for suffix in ["", "-wal", "-shm"] {
            let mut f = path.as_os_str().to_owned();
            f.push(suffix);
            crate::paths::tighten_file(Path::new(&f), 0o600)?;
        }
        let mut conn = Connection::open(path)
            .map_err(|e| StoreError::Broken(format!("opening {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(Store {
            db: Db::Sqlite(std::sync::Mutex::new(conn)),
        })
    }

    /// Opens the store `[store]` names: SQLite at `default` (`<data dir>/cordon.db`) when
    /// it names none, SQLite elsewhere, or PostgreSQL (migrated under an advisory lock).
    pub fn open_config(config: &StoreConfig, default: &Path) -> Result<Store> {
        match config {
            StoreConfig::SqliteDefault => Store::open(default),
            StoreConfig::Sqlite(path) => Store::open(path),
            StoreConfig::Postgres(opts) => {
                let pool = postgres::Pool::open((**opts).clone())?;
                postgres::migrate(&pool)?;
                Ok(Store {
                    db: Db::Postgres(Box::new(pool)),
                })
            }
        }
    }

    /// Adds a user with a new id, larger than any id ever given (never reused).
    pub fn add_user(&self, name: &str, role: Role) -> Result<User> {
        if !valid_user_name(name) {
            return Err(StoreError::Invalid(format!(
                "\"{name}\" is not a user name (lowercase letters, digits, _ and -; at most 32)"
            )));
        }
        let created = crate::audit::now_rfc3339();
        self.db.transaction(|tx| {
            // The counter first: its row lock serializes every addition (on PostgreSQL, a
            // second host's waits here and then sees the first's user below).
            let id: i64 = tx.one(
                "UPDATE counters SET value = value + 1 WHERE name = 'user_id' RETURNING value",
                args![],
                |r| r.get(0),
            )?;
            if tx.exists("SELECT 1 FROM users WHERE name = ?1", args![name])? {
                return Err(StoreError::Conflict(format!(
                    "user \"{name}\" already exists"
                )));
            }
            tx.execute(
                "INSERT INTO users (id, name, role, created) VALUES (?1, ?2, ?3, ?4)",
                args![id, name, role.name(), &created],
            )?;
            Ok(User {
                id,
                name: name.into(),
                role,
                locked: false,
                created: created.clone(),
            })
        })
    }

    pub fn user(&self, name: &str) -> Result<Option<User>> {
        self.db.opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
            args![name],
            row_user,
        )
    }

    /// The user with this id, if they still exist.
    pub fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.db.opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            args![id],
            row_user,
        )
    }

    pub fn users(&self) -> Result<Vec<User>> {
        self.db.all(
            &format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"),
            args![],
            row_user,
        )
    }

    pub fn count_admins(&self) -> Result<i64> {
        self.db.one(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND locked = 0",
            args![],
            |r| r.get(0),
        )
    }

    /// Removes a user and everything that authenticates them: keys (by cascade), refresh
    /// tokens and login failures. Their recordings stay (auditors need them), still owned by
    /// the old id, which no later user gets.
    pub fn remove_user(&self, name: &str) -> Result<User> {
        self.db.transaction(|tx| {
            let u = tx
                .opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1 FOR UPDATE"),
                    args![name],
                    row_user,
                )?
                .ok_or_else(|| StoreError::NotFound(format!("no user \"{name}\"")))?;
            tx.execute("DELETE FROM users WHERE id = ?1", args![u.id])?;
            tx.execute("DELETE FROM refresh_tokens WHERE user_id = ?1", args![u.id])?;
            tx.execute(
                "DELETE FROM login_failures WHERE subject = ?1",
                args![format!("user:{name}")],
            )?;
            tx.execute("DELETE FROM secrets WHERE owner_id = ?1", args![u.id])?;
            Ok(u)
        })
    }

    pub fn set_role(&self, name: &str, role: Role) -> Result<()> {
        let n = self.db.execute(
            "UPDATE users SET role = ?2 WHERE name = ?1",
            args![name, role.name()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no user \"{name}\"")));
        }
        Ok(())
    }

    pub fn set_locked(&self, name: &str, locked: bool) -> Result<()> {
        let n = self.db.execute(
            "UPDATE users SET locked = ?2 WHERE name = ?1",
            args![name, locked],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no user \"{name}\"")));
        }
        Ok(())
    }

    /// Adds a key from an authorized_keys line. A key already registered (to anyone) is refused.
    pub fn add_key(&self, user: &str, line: &str) -> Result<(Key, bool)> {
        let (key, had_options) = parse_key_line(line)?;
        let fingerprint = key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
        let openssh = key
            .to_openssh()
            .map_err(|e| StoreError::Invalid(format!("cannot encode the key: {e}")))?;
        let openssh = openssh
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let comment = key.comment().to_string();
        let algorithm = key.algorithm().to_string();
        let added = crate::audit::now_rfc3339();
        let uid: i64 = self
            .db
            .opt("SELECT id FROM users WHERE name = ?1", args![user], |r| {
                r.get(0)
            })?
            .ok_or_else(|| StoreError::NotFound(format!("no user \"{user}\"")))?;
        let owner: Option<String> = self.db.opt(
            "SELECT u.name FROM keys k JOIN users u ON u.id = k.user_id WHERE k.fingerprint = ?1",
            args![&fingerprint],
            |r| r.get(0),
        )?;
        if let Some(owner) = owner {
            return Err(StoreError::Conflict(format!(
                "key {fingerprint} is already registered to \"{owner}\""
            )));
        }
        self.db.execute(
            "INSERT INTO keys (user_id, fingerprint, algorithm, comment, openssh, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![uid, &fingerprint, &algorithm, &comment, &openssh, &added],
        )?;
        Ok((
            Key {
                user: user.into(),
                fingerprint,
                algorithm,
                comment,
                openssh,
                added,
            },
            had_options,
        ))
    }

    pub fn keys(&self, user: &str) -> Result<Vec<Key>> {
        self.db.all(
            "SELECT u.name, k.fingerprint, k.algorithm, k.comment, k.openssh, k.added FROM keys k JOIN users u ON u.id = k.user_id WHERE u.name = ?1 ORDER BY k.id",
            args![user],
            row_key,
        )
    }

    /// Removes the key of `user` whose fingerprint is (or starts with) `fingerprint`.
    pub fn remove_key(&self, user: &str, fingerprint: &str) -> Result<Key> {
        let matches: Vec<Key> = self
            .keys(user)?
            .into_iter()
            .filter(|k| {
                k.fingerprint == fingerprint
                    || (fingerprint.len() >= 12 && k.fingerprint.starts_with(fingerprint))
            })
            .collect();
        match matches.as_slice() {
            [k] => {
                self.db.execute(
                    "DELETE FROM keys WHERE fingerprint = ?1",
                    args![&k.fingerprint],
                )?;
                Ok(k.clone())
            }
            [] => Err(StoreError::NotFound(format!(
                "user \"{user}\" has no key {fingerprint}"
            ))),
            _ => Err(StoreError::Invalid(format!(
                "{fingerprint} matches several keys; give more of the fingerprint"
            ))),
        }
    }

    /// Sets (or with `None` clears) a user's password hash.
    pub fn set_password(&self, name: &str, phc: Option<&str>) -> Result<()> {
        let n = self.db.execute(
            "UPDATE users SET password = ?2 WHERE name = ?1",
            args![name, phc],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no user \"{name}\"")));
        }
        Ok(())
    }

    /// A user's password hash, if they have one.
    pub fn password(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .opt(
                "SELECT password FROM users WHERE name = ?1",
                args![name],
                |r| r.get::<Option<String>>(0),
            )?
            .flatten())
    }

    /// Records a failed login for each subject (`user:NAME`, `addr:IP`) and forgets
    /// failures older than the lockout window.
    pub fn record_failure(&self, subjects: &[String], now: i64) -> Result<()> {
        self.db.execute(
            "DELETE FROM login_failures WHERE at < ?1",
            args![now - crate::auth::password::LOCKOUT_WINDOW_SECS],
        )?;
        for s in subjects {
            self.db.execute(
                "INSERT INTO login_failures (subject, at) VALUES (?1, ?2)",
                args![s, now],
            )?;
        }
        Ok(())
    }

    /// Failures of `subject` within the lockout window.
    pub fn recent_failures(&self, subject: &str, now: i64) -> Result<i64> {
        self.db.one(
            "SELECT COUNT(*) FROM login_failures WHERE subject = ?1 AND at >= ?2",
            args![subject, now - crate::auth::password::LOCKOUT_WINDOW_SECS],
            |r| r.get(0),
        )
    }

    pub fn add_recording(&self, r: &RecordingEntry) -> Result<()> {
        self.db.execute(
            r#"INSERT INTO recordings (id, session, "user", user_id, profile, command, started, state, path, bytes, key_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"#,
            args![&r.id, r.session, &r.user, r.user_id, &r.profile, &r.command, &r.started, r.state.name(), &r.path, r.bytes, &r.key_id],
        )?;
        Ok(())
    }

    pub fn end_recording(
        &self,
        id: &str,
        exit_status: Option<i64>,
        state: RecordingState,
        bytes: i64,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE recordings SET ended = ?2, exit_status = ?3, state = ?4, bytes = ?5 WHERE id = ?1",
            args![id, crate::audit::now_rfc3339(), exit_status, state.name(), bytes],
        )?;
        Ok(())
    }

    /// Recordings, newest first, optionally of one user.
    pub fn recordings(&self, user: Option<&str>) -> Result<Vec<RecordingEntry>> {
        // `rowid`: SQLite's own; a column of that name on PostgreSQL (see `postgres.rs`).
        self.db.all(
            r#"SELECT id, session, "user", user_id, profile, command, started, ended, exit_status, state, path, bytes, key_id, hold FROM recordings WHERE (CAST(?1 AS TEXT) IS NULL OR "user" = ?1) ORDER BY started DESC, rowid DESC"#,
            args![user],
            row_recording,
        )
    }

    pub fn set_hold(&self, id: &str, hold: bool) -> Result<()> {
        self.db.execute(
            "UPDATE recordings SET hold = ?2 WHERE id = ?1",
            args![id, hold],
        )?;
        Ok(())
    }

    /// Whether recording `id` is under legal hold (None: not in the catalogue). The
    /// uploader reads it before each object it puts: `rec hold` on another host sharing
    /// the store reaches the spool of this one only through here.
    pub fn recording_hold(&self, id: &str) -> Result<Option<bool>> {
        self.db.opt(
            "SELECT hold FROM recordings WHERE id = ?1",
            args![id],
            |r| r.get(0),
        )
    }

    pub fn remove_recording(&self, id: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM recordings WHERE id = ?1", args![id])?;
        Ok(())
    }

    /// A recording by id (or a unique prefix of at least 4 characters) among those `visible`
    /// keeps: a prefix never tells whether recordings the caller may not read exist.
    pub fn recording(
        &self,
        id: &str,
        visible: impl Fn(&RecordingEntry) -> bool,
    ) -> Result<RecordingEntry> {
        let all = self.recordings(None)?;
        let mut found = all
            .into_iter()
            .filter(|r| visible(r) && (r.id == id || (id.len() >= 4 && r.id.starts_with(id))));
        match (found.next(), found.next()) {
            (Some(r), None) => Ok(r),
            (None, _) => Err(StoreError::NotFound(format!("no recording {id}"))),
            _ => Err(StoreError::Invalid(format!(
                "{id} matches several recordings; give more of the id"
            ))),
        }
    }

    // The audit checkpoints, one per host: `cluster.rs`.

    /// The user owning the key with this fingerprint.
    pub fn user_by_key(&self, fingerprint: &str) -> Result<Option<User>> {
        self.db.opt(
            "SELECT u.id, u.name, u.role, u.locked, u.created FROM keys k JOIN users u ON u.id = k.user_id WHERE k.fingerprint = ?1",
            args![fingerprint],
            row_user,
        )
    }
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Valid and now used up: issue the next one in `family`.
    Valid { user_id: i64, family: String },
    /// Used before: someone holds a copy. Its whole family (refresh and access tokens) is
    /// now revoked.
    Reused { user_id: i64, family: String },
    /// Unknown, expired or revoked.
    Invalid,
}

/// API tokens: refresh tokens (stored as hashes), revoked access tokens and logins (refresh
/// families), and per-user cutoffs (tokens issued before are void: a lock, an admin's revoke).
impl Store {
    pub fn add_refresh(&self, hash: &str, user: &User, family: &str, expires: i64) -> Result<()> {
        self.db.execute(
            r#"INSERT INTO refresh_tokens (hash, "user", user_id, family, expires) VALUES (?1, ?2, ?3, ?4, ?5)"#,
            args![hash, &user.name, user.id, family, expires],
        )?;
        Ok(())
    }

    /// Uses a refresh token up, atomically: a second use revokes its family, access tokens
    /// included (they name the family), until `family_expires`.
    pub fn use_refresh(&self, hash: &str, now: i64, family_expires: i64) -> Result<Refresh> {
        self.db.transaction(|tx| {
            let row: Option<(i64, String, i64, bool, bool)> = tx.opt(
                "SELECT user_id, family, expires, used, revoked FROM refresh_tokens WHERE hash = ?1 FOR UPDATE",
                args![hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            Ok(match row {
                None => Refresh::Invalid,
                Some((user_id, family, _, true, _)) => {
                    revoke_family_in(tx, &family, family_expires)?;
                    Refresh::Reused { user_id, family }
                }
                Some((_, _, expires, _, revoked)) if revoked || expires <= now => Refresh::Invalid,
                Some((user_id, family, ..)) => {
                    tx.execute(
                        "UPDATE refresh_tokens SET used = 1 WHERE hash = ?1",
                        args![hash],
                    )?;
                    Refresh::Valid { user_id, family }
                }
            })
        })
    }

    /// Ends a login: its refresh tokens, and its access tokens until `expires` (when the
    /// last of them has expired anyway).
    pub fn revoke_family(&self, family: &str, expires: i64) -> Result<()> {
        self.db
            .transaction(|tx| revoke_family_in(tx, family, expires))
    }

    /// Whether the login `family` was revoked.
    pub fn family_revoked(&self, family: &str) -> Result<bool> {
        self.db.exists(
            "SELECT 1 FROM revoked_families WHERE family = ?1",
            args![family],
        )
    }

    /// The family of a refresh token, whatever its state (logout names the login to end).
    pub fn refresh_family(&self, hash: &str) -> Result<Option<(i64, String)>> {
        self.db.opt(
            "SELECT user_id, family FROM refresh_tokens WHERE hash = ?1",
            args![hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Voids every token of user `id` issued before `now` (access and refresh).
    pub fn revoke_user_tokens(&self, id: i64, now: i64) -> Result<()> {
        self.db.execute(
            "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1",
            args![id],
        )?;
        self.db.execute(
            "INSERT INTO user_cutoffs (user_id, not_before) VALUES (?1, ?2) ON CONFLICT(user_id) DO UPDATE SET not_before = excluded.not_before",
            args![id, now],
        )?;
        Ok(())
    }

    /// Tokens of user `id` issued before this are void.
    pub fn token_cutoff(&self, id: i64) -> Result<i64> {
        Ok(self
            .db
            .opt(
                "SELECT not_before FROM user_cutoffs WHERE user_id = ?1",
                args![id],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    pub fn revoke_jti(&self, jti: &str, expires: i64) -> Result<()> {
        self.db.execute(
            "INSERT INTO revoked_tokens (jti, expires) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![jti, expires],
        )?;
        // Forget revocations of tokens that have expired anyway.
        self.db.execute(
            "DELETE FROM revoked_tokens WHERE expires < ?1",
            args![expires - 86400 * 2],
        )?;
        Ok(())
    }

    pub fn is_revoked(&self, jti: &str) -> Result<bool> {
        self.db
            .exists("SELECT 1 FROM revoked_tokens WHERE jti = ?1", args![jti])
    }
}

fn revoke_family_in(tx: &db::Tx<'_>, family: &str, expires: i64) -> Result<()> {
    tx.execute(
        "UPDATE refresh_tokens SET revoked = 1 WHERE family = ?1",
        args![family],
    )?;
    tx.execute(
        "INSERT INTO revoked_families (family, expires) VALUES (?1, ?2) ON CONFLICT(family) DO UPDATE SET expires = GREATEST(revoked_families.expires, excluded.expires)",
        args![family, expires],
    )?;
    // Forget revoked logins whose tokens have all expired.
    tx.execute(
        "DELETE FROM revoked_families WHERE expires < ?1",
        args![expires - 86400 * 60],
    )?;
    Ok(())
}

fn row_user(r: &db::Row) -> Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role.parse().unwrap_or(Role::Viewer),
        locked: r.get(3)?,
        created: r.get(4)?,
    })
}

fn row_recording(r: &db::Row) -> Result<RecordingEntry> {
    Ok(RecordingEntry {
        id: r.get(0)?,
        session: r.get(1)?,
        user: r.get(2)?,
        user_id: r.get(3)?,
        profile: r.get(4)?,
        command: r.get(5)?,
        started: r.get(6)?,
        ended: r.get(7)?,
        exit_status: r.get(8)?,
        state: RecordingState::parse(&r.get::<String>(9)?),
        path: r.get(10)?,
        bytes: r.get(11)?,
        key_id: r.get(12)?,
        hold: r.get(13)?,
    })
}

fn row_key(r: &db::Row) -> Result<Key> {
    Ok(Key {
        user: r.get(0)?,
        fingerprint: r.get(1)?,
        algorithm: r.get(2)?,
        comment: r.get(3)?,
        openssh: r.get(4)?,
        added: r.get(5)?,
    })
}

// Last: the architecture test reads a file up to its first test-only item.
#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF/3dAuyMeMnu4bPw7UlF36UtKWQlpslv7cRSyvUDxw+ alice@laptop";

    crate::store::testing::store_tests! {
        fn users_added_at_once_get_distinct_ids_and_a_name_only_once(s) {
            let results: Vec<Result<User>> = std::thread::scope(|scope| {
                let hs: Vec<_> = (0..12)
                    .map(|i| {
                        let s = &s;
                        scope.spawn(move || s.add_user(&format!("u{}", i % 6), Role::Developer))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let added: Vec<&User> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(added.len(), 6, "each name once: {results:?}");
            assert!(results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, StoreError::Conflict(_))));
            let mut ids: Vec<i64> = added.iter().map(|u| u.id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 6);
        }

        fn a_refresh_token_used_at_once_from_many_threads_is_valid_once(s) {
            let u = s.add_user("alice", Role::Developer).unwrap();
            s.add_refresh("h1", &u, "fam", i64::MAX).unwrap();
            let outcomes: Vec<Refresh> = std::thread::scope(|scope| {
                let hs: Vec<_> = (0..8)
                    .map(|_| {
                        let s = &s;
                        scope.spawn(move || s.use_refresh("h1", 0, 100).unwrap())
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(
                outcomes
                    .iter()
                    .filter(|o| matches!(o, Refresh::Valid { .. }))
                    .count(),
                1,
                "{outcomes:?}"
            );
            assert!(s.family_revoked("fam").unwrap());
        }

        fn recordings_blocks_and_checkpoints_round_trip(s) {
            let r = RecordingEntry {
                id: "r1".into(),
                session: 3,
                user: "alice".into(),
                user_id: 1,
                profile: "default".into(),
                command: "bash".into(),
                started: "2026-01-01T00:00:00Z".into(),
                ended: None,
                exit_status: None,
                state: RecordingState::Recording,
                path: "/x".into(),
                bytes: 0,
                key_id: "k".into(),
                hold: false,
            };
            s.add_recording(&r).unwrap();
            s.add_recording(&RecordingEntry { id: "r2".into(), user: "bob".into(), ..r.clone() })
                .unwrap();
            s.end_recording("r1", Some(0), RecordingState::Complete, 42).unwrap();
            s.set_hold("r1", true).unwrap();
            assert_eq!(s.recording_hold("r1").unwrap(), Some(true));
            assert_eq!(s.recording_hold("r2").unwrap(), Some(false));
            assert_eq!(s.recording_hold("nope").unwrap(), None);
            let all = s.recordings(None).unwrap();
            assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r2", "r1"]);
            let mine = s.recordings(Some("alice")).unwrap();
            assert_eq!(mine.len(), 1);
            assert_eq!((mine[0].state, mine[0].bytes, mine[0].hold, mine[0].exit_status), (RecordingState::Complete, 42, true, Some(0)));
            assert!(mine[0].ended.is_some());
            assert_eq!(s.recording("r1", |_| true).unwrap().id, "r1");
            s.remove_recording("r2").unwrap();
            assert_eq!(s.recordings(None).unwrap().len(), 1);
            assert_eq!(s.audit_checkpoint("a").unwrap(), None);
            s.set_audit_checkpoint("a", 5, "m5").unwrap();
            s.set_audit_checkpoint("a", 3, "m3").unwrap();
            assert_eq!(s.audit_checkpoint("a").unwrap(), Some((5, "m5".into())), "only forward");
            s.revoke_jti("j", 1000).unwrap();
            s.revoke_jti("j", 1000).unwrap();
            assert!(s.is_revoked("j").unwrap());
            s.revoke_user_tokens(7, 99).unwrap();
            s.revoke_user_tokens(7, 100).unwrap();
            assert_eq!(s.token_cutoff(7).unwrap(), 100);
            s.set_password("nobody", None).unwrap_err();
            s.add_user("carol", Role::Admin).unwrap();
            s.set_password("carol", Some("$argon2id$x")).unwrap();
            assert_eq!(s.password("carol").unwrap().as_deref(), Some("$argon2id$x"));
            assert_eq!(s.count_admins().unwrap(), 1);
            s.record_failure(&["user:carol".into(), "addr:1.2.3.4".into()], 1000).unwrap();
            assert_eq!(s.recent_failures("user:carol", 1000).unwrap(), 1);
        }

        fn users_keys_and_roles_round_trip(s) {
            s.add_user("alice", Role::Developer).unwrap();
            assert!(s.add_user("alice", Role::Admin).is_err());
            assert!(s.add_user("Bad Name", Role::Admin).is_err());
            let (k, opts) = s
                .add_key("alice", &format!("no-pty,command=\"x\" {KEY}"))
                .unwrap();
            assert!(opts);
            assert!(k.fingerprint.starts_with("SHA256:"));
            assert_eq!(k.comment, "alice@laptop");
            assert_eq!(
                s.user_by_key(&k.fingerprint).unwrap().unwrap().name,
                "alice"
            );
            s.set_role("alice", Role::Auditor).unwrap();
            s.set_locked("alice", true).unwrap();
            let u = s.user("alice").unwrap().unwrap();
            assert_eq!((u.role, u.locked), (Role::Auditor, true));
            s.add_user("bob", Role::Viewer).unwrap();
            assert!(s
                .add_key("bob", KEY)
                .unwrap_err()
                .to_string()
                .contains("already registered"));
            s.remove_key("alice", &k.fingerprint[..20]).unwrap();
            assert!(s.keys("alice").unwrap().is_empty());
            s.remove_user("alice").unwrap();
            assert!(s.user("alice").unwrap().is_none());
        }

        fn a_name_removed_and_added_again_is_a_new_user_with_a_new_id(s) {
            let first = s.add_user("alice", Role::Developer).unwrap();
            let bob = s.add_user("bob", Role::Developer).unwrap();
            s.add_refresh("h1", &bob, "f1", i64::MAX).unwrap();
            // The largest id removed: SQLite alone would give it out again.
            assert_eq!(s.remove_user("bob").unwrap().id, bob.id);
            assert_eq!(
                s.use_refresh("h1", 0, 1).unwrap(),
                Refresh::Invalid,
                "a removed user's refresh tokens are gone"
            );
            let again = s.add_user("bob", Role::Developer).unwrap();
            assert!(
                again.id > bob.id && bob.id > first.id,
                "{first:?} {bob:?} {again:?}"
            );
            assert_eq!(s.user_by_id(bob.id).unwrap(), None);
            assert_eq!(s.user_by_id(again.id).unwrap().unwrap().name, "bob");
        }

        fn a_reused_refresh_token_revokes_its_whole_login(s) {
            let u = s.add_user("alice", Role::Developer).unwrap();
            s.add_refresh("h1", &u, "fam", i64::MAX).unwrap();
            assert_eq!(
                s.use_refresh("h1", 0, 100).unwrap(),
                Refresh::Valid {
                    user_id: u.id,
                    family: "fam".into()
                }
            );
            assert!(!s.family_revoked("fam").unwrap());
            assert_eq!(
                s.use_refresh("h1", 0, 100).unwrap(),
                Refresh::Reused {
                    user_id: u.id,
                    family: "fam".into()
                }
            );
            assert!(
                s.family_revoked("fam").unwrap(),
                "access tokens of the login must be refused too"
            );
        }
    }

    #[test]
    fn a_first_version_database_is_migrated_keeping_its_users_and_their_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch(
                "ALTER TABLE users ADD COLUMN password TEXT;
                 INSERT INTO users (id, name, role, created) VALUES (7, 'alice', 'developer', 'then');
                 INSERT INTO recordings (id, session, user, profile, command, started, state, path, key_id)
                     VALUES ('r1', 1, 'alice', 'default', 'deploy --password hunter2', 'then', 'complete', '/x', 'k');
                 INSERT INTO token_cutoffs (user, not_before) VALUES ('alice', 42);",
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let alice = s.user("alice").unwrap().unwrap();
        assert_eq!(alice.id, 7);
        assert_eq!(s.recordings(None).unwrap()[0].user_id, 7);
        assert_eq!(
            s.recordings(None).unwrap()[0].command,
            "deploy --password ***",
            "secrets stored before are masked"
        );
        assert_eq!(s.token_cutoff(7).unwrap(), 42);
        assert!(s.add_user("bob", Role::Viewer).unwrap().id > 7);
        drop(s);
        assert!(Store::open(&path).is_ok(), "opening again is a no-op");
    }

    #[test]
    fn the_database_is_private_even_when_it_existed_with_a_loose_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(&path).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(parse_key_line("hello world").is_err());
        assert!(parse_key_line("ssh-ed25519 notbase64!").is_err());
    }
}
