//! The host's lockdown: only admins may log in and act, new sessions are for admins only,
//! and the sessions running when it began are frozen (the cgroup freezer) or ended. The
//! state is the store's (`store/lockdown.rs`), read at each check, so that `cordon lockdown
//! on` at the host's shell reaches a running host at its next check and a restart keeps it.
//!
//! Who is refused where: [`Service::current`] refuses every call of a non-admin (so an SSH
//! connection's watch closes it, and each API request answers 403); the key, password and
//! TUI-socket logins refuse non-admins (the SSH banner tells the client why); `maintain`
//! detaches non-admin viewers, ends non-admins' `run` commands, and freezes, ends or thaws
//! sessions ([`Service::enforce_lockdown`]).

use super::*;
use crate::store::{Lockdown, LockdownSessions};

/// The most characters a lockdown's reason keeps.
pub const REASON_MAX: usize = 500;

/// What a refused non-admin is told.
pub fn refusal(l: &Lockdown) -> String {
    let reason = if l.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", l.reason)
    };
    format!(
        "the host is in lockdown since {}{reason}; only admins may log in",
        l.since
    )
}

impl Service {
    /// The lockdown in force, if any.
    pub fn lockdown_status(&self, p: &Principal) -> Result<Option<Lockdown>> {
        self.check(p, Action::ManageLockdown, "lockdown status", |p| {
            format!("{} may not see the host's lockdown", p.role.with_article())
        })?;
        Ok(self.store.lockdown()?)
    }

    /// Puts the host in lockdown (or changes what it does to sessions, and why): non-admins
    /// are refused from now on, and the sessions running now are frozen or ended. Freezing
    /// is refused, with the reason, where the sandbox's cgroups offer no freezer.
    pub fn lockdown_on(
        &self,
        p: &Principal,
        sessions: LockdownSessions,
        reason: &str,
    ) -> Result<Lockdown> {
        let p = self.check(p, Action::ManageLockdown, "lockdown on", |p| {
            format!("{} may not put the host in lockdown", p.role.with_article())
        })?;
        if reason.chars().count() > REASON_MAX {
            return Err(Error::Invalid(format!(
                "a lockdown's reason is at most {REASON_MAX} characters"
            )));
        }
        if sessions == LockdownSessions::Freeze {
            crate::sessions::freeze::supported().map_err(|why| {
                Error::Conflict(format!(
                    "{why}: put the host in lockdown with `--end` to end its sessions instead"
                ))
            })?;
        }
        let (since, since_unix) = match self.store.lockdown()? {
            Some(l) => (l.since, l.since_unix),
            None => (crate::audit::now_rfc3339(), unix_now()),
        };
        let l = Lockdown {
            since,
            since_unix,
            actor: p.user.clone(),
            sessions,
            reason: reason.to_string(),
        };
        self.store.set_lockdown(&l)?;
        // The lockdown is an incident of its own (or a step of the one open for it), so that
        // `cordon incident show` tells its story next to the alerts'.
        let incident = self.incident_record(
            "lockdown",
            "host",
            "lockdown.on",
            &format!(
                "by {}; sessions: {}; reason: {}",
                p.user,
                sessions.name(),
                if reason.is_empty() {
                    "(none given)"
                } else {
                    reason
                }
            ),
        )?;
        self.record(
            p.stamp(AuditEvent::new(Kind::LockdownOn, p.user.clone()))
                .with("sessions", sessions.name())
                .with("reason", reason.to_string())
                .with("since", l.since.clone())
                .with("incident", incident),
        );
        self.enforce_lockdown();
        Ok(l)
    }

    /// Ends the lockdown (frozen sessions are thawed); the one that was in force, if any.
    pub fn lockdown_off(&self, p: &Principal) -> Result<Option<Lockdown>> {
        let p = self.check(p, Action::ManageLockdown, "lockdown off", |p| {
            format!("{} may not end the host's lockdown", p.role.with_article())
        })?;
        let ended = self.store.lockdown()?;
        if let Some(l) = &ended {
            self.store.clear_lockdown()?;
            let incident = self.incident_record(
                "lockdown",
                "host",
                "lockdown.off",
                &format!("by {}; in force since {}", p.user, l.since),
            )?;
            self.record(
                p.stamp(AuditEvent::new(Kind::LockdownOff, p.user.clone()))
                    .with("since", l.since.clone())
                    .with("incident", incident),
            );
        }
        self.enforce_lockdown();
        Ok(ended)
    }

    /// What a client is shown before it logs in while the host is in lockdown (the SSH
    /// banner): a client turned away should know why.
    pub fn lockdown_notice(&self) -> Option<String> {
        match self.store.lockdown() {
            Ok(l) => l.map(|l| format!("cordon: {}\r\n", crate::text::printable(&refusal(&l)))),
            // The store on PostgreSQL, out of reach: no login can be checked, and the client
            // is told so rather than left to think its password or key wrong.
            Err(e) if e.is_unreachable() => {
                eprintln!("cordon: refusing logins: {e}");
                Some(format!("cordon: {DATABASE_UNREACHABLE}\r\n"))
            }
            Err(_) => None,
        }
    }

    /// Refuses a non-admin while the host is in lockdown (audited, bounded); `p` is current.
    pub(super) fn lockdown_gate(&self, p: &Principal) -> Result<()> {
        if p.role == Role::Admin {
            return Ok(());
        }
        match self.store.lockdown()? {
            Some(l) => {
                let why = refusal(&l);
                Err(self.refused(p, "act", &why, Error::Forbidden(why.clone())))
            }
            None => Ok(()),
        }
    }

    /// Why a login of a user in `role` is refused now (lockdown), if it is.
    pub(super) fn lockdown_refuses(&self, role: Role) -> Result<Option<String>> {
        if role == Role::Admin {
            return Ok(None);
        }
        Ok(self.store.lockdown()?.map(|l| refusal(&l)))
    }

    /// Brings sessions and runs in line with the lockdown (run by `maintain`, and at once by
    /// the operations): in lockdown, the sessions that were running when it began are frozen
    /// (one that cannot be is ended, and the audit event says why) or ended, and non-admins'
    /// runs end; out of it, frozen sessions are thawed. Sessions admins start during a
    /// lockdown run freely.
    pub(super) fn enforce_lockdown(&self) {
        let lockdown = match self.store.lockdown() {
            Ok(l) => l,
            // The next tick tries again; the gates fail closed meanwhile.
            Err(_) => return,
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for s in self.hub.list().into_iter().filter(|s| !s.ending()) {
            let Some(l) = &lockdown else {
                match s.thaw("the lockdown ended") {
                    Ok(true) => self
                        .record(AuditEvent::new(Kind::SessionThaw, "cordon").with("session", s.id)),
                    Ok(false) => {}
                    Err(e) => self.record_bounded(
                        &format!("thaw:{}", s.id),
                        AuditEvent::new(Kind::SessionThaw, "cordon")
                            .with("session", s.id)
                            .with("error", e.to_string()),
                    ),
                }
                continue;
            };
            // Started after the lockdown began (by an admin): not the lockdown's to stop.
            // Compared in milliseconds: the lockdown's start is kept in whole seconds, so a
            // session started in that same second may have run before it and is acted on
            // (failing closed). Whole seconds on both sides once missed a session started
            // less than a second before the lockdown.
            let started_ms = now_ms - s.age().as_millis() as i64;
            if started_ms >= (l.since_unix + 1) * 1000 {
                continue;
            }
            let reason = format!("the host is in lockdown since {}", l.since);
            match l.sessions {
                LockdownSessions::Freeze if s.frozen() => {}
                LockdownSessions::Freeze => match s.freeze(&reason) {
                    Ok(false) => {}
                    Ok(true) => self.record(
                        AuditEvent::new(Kind::SessionFreeze, "cordon")
                            .with("session", s.id)
                            .with("reason", reason),
                    ),
                    Err(e) => {
                        // Fail closed: a session the lockdown cannot stop is ended, and says so.
                        self.record(
                            AuditEvent::new(Kind::SessionFreeze, "cordon")
                                .with("session", s.id)
                                .with("reason", reason.clone())
                                .with("error", format!("{e}; ended instead")),
                        );
                        self.record(
                            AuditEvent::new(Kind::SessionKill, "cordon")
                                .with("session", s.id)
                                .with("reason", format!("{reason}; it could not be frozen")),
                        );
                        s.kill();
                    }
                },
                LockdownSessions::End => {
                    self.record(
                        AuditEvent::new(Kind::SessionKill, "cordon")
                            .with("session", s.id)
                            .with("reason", reason),
                    );
                    s.kill();
                }
            }
        }
        if let Some(l) = &lockdown {
            for job in self.runs.list() {
                let admin = matches!(self.store.user_by_id(job.owner_id), Ok(Some(u)) if u.role == Role::Admin);
                if !admin {
                    self.record_bounded(
                        &format!("lockdown.run:{}", job.owner_id),
                        AuditEvent::new(Kind::RunKill, "cordon")
                            .with("owner", job.owner.clone())
                            .with(
                                "reason",
                                format!("the host is in lockdown since {}", l.since),
                            ),
                    );
                    job.kill();
                }
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a client is told while the store's database cannot be reached (the details, which
/// name the server, go to the host's log only).
pub const DATABASE_UNREACHABLE: &str =
    "logins are refused: the host's database is unreachable; running sessions go on; try again later";
