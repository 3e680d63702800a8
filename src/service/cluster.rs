//! Several hosts sharing one store (issue 20): this host joins with a heartbeat, publishes
//! the sessions it runs at each beat, marks lost the hosts that stopped beating (and their
//! sessions, said once in the audit log), lists the sessions of the other hosts under the
//! same permission as its own, and answers an attach to one of them with where it runs.
//!
//! Only `cordon serve` joins (the embedded host and the host-shell commands do not): a
//! host that has not joined publishes nothing and marks nobody lost.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{allowed, Action};
use crate::store::HostSession;

/// How long lost sessions stay listed.
const KEEP_LOST: Duration = Duration::from_secs(24 * 3600);

/// This host's place among the hosts (None until `cluster_join`).
#[derive(Default)]
pub(super) struct Membership {
    state: std::sync::Mutex<Option<Member>>,
}

struct Member {
    host_id: String,
    last_beat: Instant,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Service {
    /// Joins the hosts sharing the store under `[cluster] name`: refused (Conflict, naming
    /// the other host) while another live host has that name. Sessions this name published
    /// before stopping uncleanly are marked lost, said once in the audit log.
    pub fn cluster_join(&self) -> Result<()> {
        let c = &self.config.cluster;
        let host_id = crate::cluster::host_id(&self.dir.root).map_err(|e| {
            Error::caused("reading this host's id (host-id in the data directory)", e)
        })?;
        let t = now();
        let joined = self.store.join_host(
            &c.name,
            &host_id,
            &c.advertise,
            env!("CARGO_PKG_VERSION"),
            t,
            c.lost_after.as_secs() as i64,
        )?;
        if joined.leftover > 0 {
            self.record(
                AuditEvent::new(Kind::ClusterHostLost, "cordon")
                    .with("host", c.name.clone())
                    .with("sessions", joined.leftover)
                    .with("reason", "the host restarted without stopping cleanly"),
            );
        }
        *self
            .membership
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Member {
            host_id,
            last_beat: Instant::now(),
        });
        self.cluster_beat(true);
        Ok(())
    }

    /// The heartbeat (from [`Service::maintain`]): once per `[cluster] heartbeat`, this
    /// host's live sessions published, and the hosts silent past `lost_after` marked lost.
    pub(super) fn cluster_beat(&self, force: bool) {
        let c = &self.config.cluster;
        let host_id = {
            let mut m = self
                .membership
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let Some(m) = m.as_mut() else { return };
            if !force && m.last_beat.elapsed() < c.heartbeat {
                return;
            }
            m.last_beat = Instant::now();
            m.host_id.clone()
        };
        let t = now();
        let sessions: Vec<HostSession> = self
            .hub
            .list()
            .into_iter()
            .filter(|s| !s.ending())
            .map(|s| HostSession {
                id: s.id.to_string(),
                host: c.name.clone(),
                advertise: c.advertise.clone(),
                name: s.name(),
                owner: s.owner.clone(),
                owner_id: s.owner_id,
                profile: s.profile.clone(),
                command: s
                    .command
                    .iter()
                    .map(|w| crate::masking::mask_text(w))
                    .collect(),
                started: s.created.clone(),
                started_unix: t - s.age().as_secs() as i64,
                state: if s.frozen() { "frozen" } else { "running" }.into(),
                viewers: s.viewer_count() as i64,
                updated: t,
            })
            .collect();
        match self.store.beat_host(&c.name, &host_id, t, &sessions) {
            Ok(true) => {}
            Ok(false) => eprintln!(
                "cordon: WARNING: another host took the name \"{}\" (this one was silent past [cluster] lost_after): this host's sessions are no longer listed on the others",
                c.name
            ),
            Err(e) => eprintln!("cordon: the heartbeat: {e}"),
        }
        match self.store.lose_hosts(
            &c.name,
            t,
            c.lost_after.as_secs() as i64,
            KEEP_LOST.as_secs() as i64,
        ) {
            Ok(lost) => {
                for h in lost {
                    self.record(
                        AuditEvent::new(Kind::ClusterHostLost, "cordon")
                            .with("host", h.name)
                            .with("sessions", h.sessions)
                            .with("last_beat", h.beat)
                            .with(
                                "reason",
                                format!("no heartbeat for more than {} s", c.lost_after.as_secs()),
                            ),
                    );
                }
            }
            Err(e) => eprintln!("cordon: marking silent hosts lost: {e}"),
        }
    }

    /// This host stops cleanly: its sessions leave the others' lists.
    pub(super) fn cluster_leave(&self) {
        let member = self
            .membership
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(m) = member {
            if let Err(e) = self.store.leave_host(&self.config.cluster.name, &m.host_id) {
                eprintln!("cordon: leaving the cluster: {e}");
            }
        }
    }

    /// The sessions of the other hosts sharing the store (and this host's own lost ones)
    /// that the principal may see, by the same rule as this host's own (a developer sees
    /// only theirs), oldest first. Each names its host and where to reach it.
    pub fn cluster_sessions(&self, p: &Principal) -> Result<Vec<HostSession>> {
        let p = self.check(p, Action::ListSessions, "ls", |p| {
            format!("{} may not list sessions", p.role.with_article())
        })?;
        self.others(&p)
    }

    /// The published sessions the (current) principal may see, but this host's live ones.
    fn others(&self, p: &Principal) -> Result<Vec<HostSession>> {
        let me = &self.config.cluster.name;
        Ok(self
            .store
            .host_sessions()?
            .into_iter()
            .filter(|s| s.host != *me || s.state == "lost")
            .filter(|s| {
                allowed(
                    p.role,
                    Action::ObserveSession {
                        own: p.owns(s.owner_id),
                    },
                )
            })
            .collect())
    }

    /// Where a session this host does not run lives, for an attach (`writer`) or observe
    /// that found none here: a redirect (Conflict) naming the host and how to reach it,
    /// when the principal may see it and do that to it; a refusal (audited) when they may
    /// see it but not do that; `missing` when they may not see it (a whole id of one is
    /// refused, audited, as a local one is); None when no other host has it.
    pub(super) fn elsewhere(
        &self,
        p: &Principal,
        reference: &str,
        writer: bool,
        missing: Error,
    ) -> Option<Error> {
        use crate::sessions::id::{resolve, Candidate, Resolved, SessionId};
        let verb = if writer { "attach" } else { "observe" };
        let p = self.current(p).ok()?;
        let seen = self.others(&p).ok()?;
        let hidden = |missing: Error| {
            let id = SessionId::parse(reference)?.to_string();
            let all = self.store.host_sessions().ok()?;
            let s = all.iter().find(|s| s.id == id)?;
            let why = format!(
                "session {} on host {} belongs to {}",
                s.id,
                crate::text::printable(&s.host),
                crate::text::printable(&s.owner)
            );
            Some(self.refused(&p, verb, &why, missing))
        };
        let candidates: Vec<Candidate<'_>> = seen
            .iter()
            .filter_map(|s| {
                Some(Candidate {
                    id: crate::sessions::id::SessionId::parse(&s.id)?,
                    owner: &s.owner,
                    name: &s.name,
                })
            })
            .collect();
        let Resolved::Found(id) = resolve(reference, &p.user, &candidates) else {
            return hidden(missing);
        };
        let s = seen.iter().find(|s| s.id == id.to_string())?;
        let own = p.owns(s.owner_id);
        let action = if writer {
            Action::AttachSession { own }
        } else {
            Action::ObserveSession { own }
        };
        if let Err(e) = self.permit(&p, action, verb, |p| {
            format!(
                "{} may not {verb} session {} of {}",
                p.role.with_article(),
                s.id,
                crate::text::printable(&s.owner)
            )
        }) {
            return Some(e);
        }
        let short: String = s.id.chars().take(8).collect();
        let host = crate::text::printable(&s.host);
        if s.state == "lost" {
            return Some(Error::Conflict(format!(
                "session {short} ran on host {host}, which stopped beating: the session is lost"
            )));
        }
        let target = crate::cluster::ssh_target(&s.advertise);
        let target = crate::text::printable(&target);
        Some(Error::Conflict(format!(
            "session {short} runs on host {host}: connect to {} (ssh -t {target} {verb} {short})",
            crate::text::printable(&s.advertise)
        )))
    }
}
