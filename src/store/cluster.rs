//! What hosts sharing one store know of each other (issue 20): the hosts with their
//! heartbeats, each host's live sessions as it last published them, and the audit
//! checkpoint of each host's own chain. Plain SQL (`?N` placeholders, INTEGER and TEXT), as
//! every host of a cluster runs these against the same database.

use serde::Serialize;

use super::db::{args, Row, Sql};
use super::{Result, Store, StoreError};

/// The cluster's tables (added after schema version 8; see `migrate`). The single audit
/// checkpoint of version 4 becomes the checkpoint of the host that claims it first
/// ([`Store::audit_checkpoint`]): the host that was alone before the upgrade.
pub(super) const SCHEMA_CLUSTER: &str = "
CREATE TABLE hosts (
    name TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    advertise TEXT NOT NULL,
    started TEXT NOT NULL,
    beat INTEGER NOT NULL,
    version TEXT NOT NULL,
    lost INTEGER NOT NULL DEFAULT 0,
    stopped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE host_sessions (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    profile TEXT NOT NULL,
    command TEXT NOT NULL,
    started TEXT NOT NULL,
    started_unix INTEGER NOT NULL,
    state TEXT NOT NULL,
    viewers INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX host_sessions_host ON host_sessions (host);
CREATE TABLE audit_checkpoints (
    host TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    mac TEXT NOT NULL,
    at TEXT NOT NULL
);
INSERT INTO audit_checkpoints (host, seq, mac, at) SELECT '', seq, mac, at FROM audit_checkpoint;
DROP TABLE audit_checkpoint;
";

/// A session as its host published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSession {
    pub id: String,
    pub host: String,
    /// Where users reach that host's SSH (its `[cluster] advertise`).
    pub advertise: String,
    pub name: String,
    pub owner: String,
    pub owner_id: i64,
    pub profile: String,
    /// The command's words, their secrets masked.
    pub command: Vec<String>,
    pub started: String,
    pub started_unix: i64,
    /// `running`, `frozen`, or `lost` (its host stopped beating).
    pub state: String,
    pub viewers: i64,
    /// When its host last published it, seconds since the epoch.
    pub updated: i64,
}

/// What joining found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Sessions this host's name had published before (a crash, a kill) and that are now
    /// marked lost.
    pub leftover: usize,
}

/// The sessions of a host just marked lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostHost {
    pub name: String,
    pub beat: i64,
    pub sessions: usize,
}

impl Store {
    /// Registers this host (`name`, identified by `host_id`, the id its data directory
    /// keeps) at `now`. Refused while another host by that name beats (its heartbeat newer
    /// than `lost_after` seconds and not stopped). This name's leftover sessions are marked
    /// lost.
    pub fn join_host(
        &self,
        name: &str,
        host_id: &str,
        advertise: &str,
        version: &str,
        now: i64,
        lost_after: i64,
    ) -> Result<Joined> {
        self.db.transaction(|tx| {
            let other = tx.opt(
                "SELECT host_id, advertise, beat, stopped FROM hosts WHERE name = ?1 FOR UPDATE",
                args![name],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<i64>(2)?,
                        r.get::<i64>(3)?,
                    ))
                },
            )?;
            if let Some((id, advertise, beat, stopped)) = other {
                if id != host_id && stopped == 0 && beat >= now - lost_after {
                    return Err(StoreError::Conflict(format!(
                        "another host named \"{name}\" is live (at {advertise}, its last heartbeat {} s ago): give this one another [cluster] name, or stop that one (a host silent for {lost_after} s may take its name)",
                        (now - beat).max(0)
                    )));
                }
            }
            let started = crate::audit::now_rfc3339();
            tx.execute(
                "INSERT INTO hosts (name, host_id, advertise, started, beat, version, lost, stopped)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)
                 ON CONFLICT(name) DO UPDATE SET host_id = ?2, advertise = ?3, started = ?4, beat = ?5, version = ?6, lost = 0, stopped = 0",
                args![name, host_id, advertise, started, now, version],
            )?;
            let leftover = tx.execute(
                "UPDATE host_sessions SET state = 'lost', updated = ?2 WHERE host = ?1 AND state <> 'lost'",
                args![name, now],
            )?;
            Ok(Joined {
                leftover: leftover as usize,
            })
        })
    }

    /// This host's heartbeat at `now`, with the sessions it runs (replacing those it
    /// published before; its lost ones stay). False when the name was taken over by another
    /// host (this one was silent past `lost_after` and another took its name).
    pub fn beat_host(
        &self,
        name: &str,
        host_id: &str,
        now: i64,
        sessions: &[HostSession],
    ) -> Result<bool> {
        self.db.transaction(|tx| {
            let ours = tx.execute(
                "UPDATE hosts SET beat = ?3, lost = 0 WHERE name = ?1 AND host_id = ?2",
                args![name, host_id, now],
            )? == 1;
            if !ours {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM host_sessions WHERE host = ?1 AND state <> 'lost'",
                args![name],
            )?;
            for s in sessions {
                let command = serde_json::to_string(&s.command)
                    .map_err(|e| StoreError::Broken(format!("a session's command: {e}")))?;
                tx.execute(
                    "INSERT INTO host_sessions (id, host, name, owner, owner_id, profile, command, started, started_unix, state, viewers, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT(id) DO UPDATE SET host = ?2, name = ?3, owner = ?4, owner_id = ?5, profile = ?6, command = ?7, started = ?8, started_unix = ?9, state = ?10, viewers = ?11, updated = ?12",
                    args![
                        &s.id,
                        name,
                        &s.name,
                        &s.owner,
                        s.owner_id,
                        &s.profile,
                        command,
                        &s.started,
                        s.started_unix,
                        &s.state,
                        s.viewers,
                        now
                    ],
                )?;
            }
            Ok(true)
        })
    }

    /// This host stopped cleanly: its sessions ended with it.
    pub fn leave_host(&self, name: &str, host_id: &str) -> Result<()> {
        self.db.transaction(|tx| {
            if tx.execute(
                "UPDATE hosts SET stopped = 1 WHERE name = ?1 AND host_id = ?2",
                args![name, host_id],
            )? == 1
            {
                tx.execute(
                    "DELETE FROM host_sessions WHERE host = ?1 AND state <> 'lost'",
                    args![name],
                )?;
            }
            Ok(())
        })
    }

    /// Marks lost every host but `me` whose heartbeat is older than `lost_after` seconds at
    /// `now`, and its sessions; each host is marked once (by whichever live host gets there
    /// first: the conditional update below is what decides, on either database), and
    /// returned only to that one. Lost sessions older than `keep` seconds go.
    pub fn lose_hosts(
        &self,
        me: &str,
        now: i64,
        lost_after: i64,
        keep: i64,
    ) -> Result<Vec<LostHost>> {
        self.db.transaction(|tx| {
            let silent = tx.all(
                "SELECT name, beat FROM hosts WHERE name <> ?1 AND lost = 0 AND stopped = 0 AND beat < ?2",
                args![me, now - lost_after],
                |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
            )?;
            let mut lost = Vec::new();
            for (name, beat) in silent {
                if tx.execute(
                    "UPDATE hosts SET lost = 1 WHERE name = ?1 AND lost = 0 AND beat = ?2",
                    args![&name, beat],
                )? == 1
                {
                    let sessions = tx.execute(
                        "UPDATE host_sessions SET state = 'lost', updated = ?2 WHERE host = ?1 AND state <> 'lost'",
                        args![&name, now],
                    )?;
                    lost.push(LostHost {
                        name,
                        beat,
                        sessions: sessions as usize,
                    });
                }
            }
            tx.execute(
                "DELETE FROM host_sessions WHERE state = 'lost' AND updated < ?1",
                args![now - keep],
            )?;
            Ok(lost)
        })
    }

    /// Every published session (of every host, lost ones too), oldest first.
    pub fn host_sessions(&self) -> Result<Vec<HostSession>> {
        self.db.all(
            "SELECT s.id, s.host, COALESCE(h.advertise, ''), s.name, s.owner, s.owner_id, s.profile, s.command, s.started, s.started_unix, s.state, s.viewers, s.updated
             FROM host_sessions s LEFT JOIN hosts h ON h.name = s.host ORDER BY s.started_unix, s.id",
            args![],
            row_host_session,
        )
    }

    /// The last audit event host `host` checkpointed. A host without one claims the
    /// checkpoint kept before hosts were named (version 4's single row), if any: the
    /// host that was alone before the upgrade is the first to start after it.
    pub fn audit_checkpoint(&self, host: &str) -> Result<Option<(u64, String)>> {
        self.db.transaction(|tx| {
            let mut found = checkpoint_of(tx, host)?;
            if found.is_none() && !host.is_empty() {
                tx.execute(
                    "UPDATE audit_checkpoints SET host = ?1 WHERE host = ''",
                    args![host],
                )?;
                found = checkpoint_of(tx, host)?;
            }
            Ok(found)
        })
    }

    /// Host `host`'s last audit event (never moved back).
    pub fn set_audit_checkpoint(&self, host: &str, seq: u64, mac: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO audit_checkpoints (host, seq, mac, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(host) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, at = excluded.at WHERE excluded.seq >= audit_checkpoints.seq",
            args![host, seq as i64, mac, crate::audit::now_rfc3339()],
        )?;
        Ok(())
    }
}

fn checkpoint_of(tx: &impl Sql, host: &str) -> Result<Option<(u64, String)>> {
    tx.opt(
        "SELECT seq, mac FROM audit_checkpoints WHERE host = ?1",
        args![host],
        |r| Ok((r.get::<i64>(0)? as u64, r.get(1)?)),
    )
}

fn row_host_session(r: &Row) -> Result<HostSession> {
    let command: String = r.get(7)?;
    Ok(HostSession {
        id: r.get(0)?,
        host: r.get(1)?,
        advertise: r.get(2)?,
        name: r.get(3)?,
        owner: r.get(4)?,
        owner_id: r.get(5)?,
        profile: r.get(6)?,
        // Written by a host as JSON; anything else shows as one word.
        command: serde_json::from_str(&command).unwrap_or_else(|_| vec![command]),
        started: r.get(8)?,
        started_unix: r.get(9)?,
        state: r.get(10)?,
        viewers: r.get(11)?,
        updated: r.get(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_tests;

    fn session(id: &str) -> HostSession {
        HostSession {
            id: id.into(),
            host: String::new(),
            advertise: String::new(),
            name: "work".into(),
            owner: "alice".into(),
            owner_id: 1,
            profile: "default".into(),
            command: vec!["sh".into()],
            started: "2026-01-01T00:00:00Z".into(),
            started_unix: 1,
            state: "running".into(),
            viewers: 0,
            updated: 0,
        }
    }

    store_tests! {
        fn a_live_name_is_refused_to_another_host_and_freed_when_it_goes_silent(s) {
            s.join_host("a", "id-a", "a:22", "1", 100, 10).unwrap();
            let Err(StoreError::Conflict(why)) = s.join_host("a", "id-b", "b:22", "1", 105, 10) else {
                panic!("a second live host took the name")
            };
            assert!(why.contains("another host named \"a\" is live"), "{why}");
            // The same host again (restarted after a crash) takes its name back at once.
            s.join_host("a", "id-a", "a:22", "1", 106, 10).unwrap();
            // Silent past lost_after: another host may take it.
            s.join_host("a", "id-b", "b:22", "1", 120, 10).unwrap();
            assert!(!s.beat_host("a", "id-a", 121, &[]).unwrap());
        }

        fn a_silent_hosts_sessions_are_lost_once_and_a_restarted_host_loses_its_leftovers(s) {
            s.join_host("a", "id-a", "a:22", "1", 100, 10).unwrap();
            s.join_host("b", "id-b", "b:22", "1", 100, 10).unwrap();
            assert!(s.beat_host("b", "id-b", 101, &[session("s1")]).unwrap());
            assert!(s.lose_hosts("a", 105, 10, 3600).unwrap().is_empty());
            let lost = s.lose_hosts("a", 112, 10, 3600).unwrap();
            assert_eq!(lost.len(), 1);
            assert_eq!((lost[0].name.as_str(), lost[0].sessions), ("b", 1));
            assert!(s.lose_hosts("a", 113, 10, 3600).unwrap().is_empty(), "once");
            let all = s.host_sessions().unwrap();
            assert_eq!(all[0].state, "lost");
            assert_eq!(all[0].advertise, "b:22");
            // b comes back: the lost session stays lost, its new ones are published.
            let joined = s.join_host("b", "id-b", "b:22", "1", 120, 10).unwrap();
            assert_eq!(joined.leftover, 0);
            assert!(s.beat_host("b", "id-b", 121, &[session("s2")]).unwrap());
            let states: Vec<_> = s
                .host_sessions()
                .unwrap()
                .into_iter()
                .map(|h| (h.id, h.state))
                .collect();
            assert!(states.contains(&("s1".into(), "lost".into())));
            assert!(states.contains(&("s2".into(), "running".into())));
            // Killed and restarted: its own leftovers are lost at once.
            assert_eq!(
                s.join_host("b", "id-b", "b:22", "1", 122, 10)
                    .unwrap()
                    .leftover,
                1
            );
        }

        fn each_host_keeps_its_own_audit_checkpoint_and_the_first_claims_the_old_one(s) {
            s.db.execute(
                "INSERT INTO audit_checkpoints (host, seq, mac, at) VALUES ('', 7, 'm7', 'x')",
                args![],
            )
            .unwrap();
            assert_eq!(s.audit_checkpoint("a").unwrap(), Some((7, "m7".into())));
            assert_eq!(s.audit_checkpoint("b").unwrap(), None);
            s.set_audit_checkpoint("b", 3, "m3").unwrap();
            s.set_audit_checkpoint("a", 9, "m9").unwrap();
            s.set_audit_checkpoint("a", 8, "m8").unwrap();
            assert_eq!(s.audit_checkpoint("a").unwrap(), Some((9, "m9".into())));
            assert_eq!(s.audit_checkpoint("b").unwrap(), Some((3, "m3".into())));
        }
    }
}
