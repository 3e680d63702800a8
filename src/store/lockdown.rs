//! The host's lockdown, as the store keeps it: one row while it is on (when it began, who
//! began it, what becomes of the sessions running then, and why), none while it is off. In
//! the database so that it survives a restart and so that `cordon lockdown on` at the host's
//! shell reaches a running `cordon serve`, which reads it at each check.

use serde::Serialize;

use super::db::{args, Sql};
use super::{Result, Store};

/// The lockdown's table (added after schema version 5; see `migrate`).
pub(super) const SCHEMA_LOCKDOWN: &str = "
CREATE TABLE lockdown (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    since TEXT NOT NULL,
    since_unix INTEGER NOT NULL,
    actor TEXT NOT NULL,
    sessions TEXT NOT NULL,
    reason TEXT NOT NULL
);
";

/// What a lockdown does to the sessions running when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockdownSessions {
    /// Frozen (the cgroup freezer) until the lockdown ends, then thawed.
    Freeze,
    /// Ended.
    End,
}

impl LockdownSessions {
    pub fn name(self) -> &'static str {
        match self {
            LockdownSessions::Freeze => "freeze",
            LockdownSessions::End => "end",
        }
    }

    fn parse(s: &str) -> LockdownSessions {
        match s {
            "freeze" => LockdownSessions::Freeze,
            // Anything else ends them: the stricter reading.
            _ => LockdownSessions::End,
        }
    }
}

/// A lockdown in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lockdown {
    /// When it began (RFC 3339, UTC).
    pub since: String,
    /// The same moment in seconds since the epoch (sessions started before it are acted on).
    pub since_unix: i64,
    /// Who began it.
    pub actor: String,
    pub sessions: LockdownSessions,
    pub reason: String,
}

impl Store {
    /// The lockdown in force, if any.
    pub fn lockdown(&self) -> Result<Option<Lockdown>> {
        self.db.opt(
            "SELECT since, since_unix, actor, sessions, reason FROM lockdown WHERE id = 1",
            args![],
            |r| {
                Ok(Lockdown {
                    since: r.get(0)?,
                    since_unix: r.get(1)?,
                    actor: r.get(2)?,
                    sessions: LockdownSessions::parse(&r.get::<String>(3)?),
                    reason: r.get(4)?,
                })
            },
        )
    }

    /// Puts the host in lockdown, or changes what it does to sessions and why; a lockdown
    /// already in force keeps its start (and so the sessions it applies to).
    pub fn set_lockdown(&self, l: &Lockdown) -> Result<()> {
        self.db.execute(
            "INSERT INTO lockdown (id, since, since_unix, actor, sessions, reason) VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET actor = ?3, sessions = ?4, reason = ?5",
            args![&l.since, l.since_unix, &l.actor, l.sessions.name(), &l.reason],
        )?;
        Ok(())
    }

    /// Ends the lockdown; whether one was in force.
    pub fn clear_lockdown(&self) -> Result<bool> {
        Ok(self.db.execute("DELETE FROM lockdown", args![])? > 0)
    }
}
