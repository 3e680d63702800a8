//! What alerts leave behind: addresses blocked (until a time), and incidents with their
//! timelines. Times of blocks are Unix seconds (compared); of incidents, RFC 3339 (shown).

use serde::Serialize;

use super::db::{args, Row, Sql};
use super::{Result, Store};

/// The alerts' tables (a version of the schema of their own; see `migrate`).
pub(super) const SCHEMA_ALERTS: &str = "
CREATE TABLE blocks (
    address TEXT PRIMARY KEY,
    until INTEGER NOT NULL,
    rule TEXT NOT NULL,
    incident INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    opened TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    alerts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX incidents_rule_key ON incidents (rule, key, updated_at);
CREATE TABLE incident_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    what TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident, seq);
";

/// Events kept per incident at most; later ones are left out (the audit log has them all).
pub const TIMELINE_MAX: i64 = 1000;

/// An address refused until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    pub address: String,
    /// Unix seconds.
    pub until: i64,
    pub rule: String,
    pub incident: i64,
    pub created: String,
}

/// An incident: what fired, for which key, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub id: i64,
    pub rule: String,
    pub key: String,
    pub opened: String,
    /// Unix seconds of the last event.
    pub updated_at: i64,
    /// Alerts it gathered.
    pub alerts: i64,
}

/// One moment of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentEvent {
    pub at: String,
    /// `alert.raised`, `address.block`, `user.lock`, `address.unblock`, `note`, ...
    pub what: String,
    pub detail: String,
}

const BLOCK_COLUMNS: &str = "address, until, rule, incident, created";

fn block_row(r: &Row) -> Result<Block> {
    Ok(Block {
        address: r.get(0)?,
        until: r.get(1)?,
        rule: r.get(2)?,
        incident: r.get(3)?,
        created: r.get(4)?,
    })
}

const INCIDENT_COLUMNS: &str = "id, rule, key, opened, updated_at, alerts";

fn incident_row(r: &Row) -> Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        rule: r.get(1)?,
        key: r.get(2)?,
        opened: r.get(3)?,
        updated_at: r.get(4)?,
        alerts: r.get(5)?,
    })
}

impl Store {
    /// Blocks `address` until `until` (a later block of the same address replaces it).
    pub fn block_address(
        &self,
        address: &str,
        until: i64,
        rule: &str,
        incident: i64,
    ) -> Result<()> {
        self.db.execute(
            "INSERT INTO blocks (address, until, rule, incident, created) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (address) DO UPDATE SET until = GREATEST(blocks.until, ?2), rule = ?3, incident = ?4",
            args![address, until, rule, incident, crate::audit::now_rfc3339()],
        )?;
        Ok(())
    }

    /// The block of `address` in force at `now`, if any.
    pub fn block_of(&self, address: &str, now: i64) -> Result<Option<Block>> {
        self.db.opt(
            &format!("SELECT {BLOCK_COLUMNS} FROM blocks WHERE address = ?1 AND until > ?2"),
            args![address, now],
            block_row,
        )
    }

    /// Blocks in force at `now` (expired ones are removed on the way).
    pub fn blocks(&self, now: i64) -> Result<Vec<Block>> {
        self.db
            .execute("DELETE FROM blocks WHERE until <= ?1", args![now])?;
        self.db.all(
            &format!("SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY until"),
            args![],
            block_row,
        )
    }

    /// Lifts the block of `address`; the block lifted, if there was one.
    pub fn unblock_address(&self, address: &str, now: i64) -> Result<Option<Block>> {
        let found = self.block_of(address, now)?;
        self.db
            .execute("DELETE FROM blocks WHERE address = ?1", args![address])?;
        Ok(found)
    }

    /// The incident of `rule` and `key` with an event since `since` (Unix seconds), else a
    /// new one. Returns its id and whether it is new; either way it counts one more alert.
    pub fn incident_for(&self, rule: &str, key: &str, now: i64, since: i64) -> Result<(i64, bool)> {
        let open: Option<i64> = self.db.opt(
            "SELECT id FROM incidents WHERE rule = ?1 AND key = ?2 AND updated_at >= ?3 ORDER BY id DESC LIMIT 1",
            args![rule, key, since],
            |r| r.get(0),
        )?;
        match open {
            Some(id) => {
                self.db.execute(
                    "UPDATE incidents SET alerts = alerts + 1, updated_at = ?2 WHERE id = ?1",
                    args![id, now],
                )?;
                Ok((id, false))
            }
            None => {
                let id = self.db.one(
                    "INSERT INTO incidents (rule, key, opened, opened_at, updated_at, alerts) VALUES (?1, ?2, ?3, ?4, ?4, 1) RETURNING id",
                    args![rule, key, crate::audit::now_rfc3339(), now],
                    |r| r.get(0),
                )?;
                Ok((id, true))
            }
        }
    }

    /// Adds a moment to incident `id`'s timeline (none past [`TIMELINE_MAX`]). NotFound for
    /// no such incident.
    pub fn incident_note(&self, id: i64, what: &str, detail: &str) -> Result<()> {
        if !self
            .db
            .exists("SELECT id FROM incidents WHERE id = ?1", args![id])?
        {
            return Err(super::StoreError::NotFound(format!("no incident {id}")));
        }
        let n: i64 = self.db.one(
            "SELECT COUNT(*) FROM incident_events WHERE incident = ?1",
            args![id],
            |r| r.get(0),
        )?;
        if n >= TIMELINE_MAX {
            return Ok(());
        }
        self.db.execute(
            "INSERT INTO incident_events (incident, at, what, detail) VALUES (?1, ?2, ?3, ?4)",
            args![id, crate::audit::now_rfc3339(), what, detail],
        )?;
        self.db.execute(
            "UPDATE incidents SET updated_at = GREATEST(updated_at, ?2) WHERE id = ?1",
            args![id, crate::audit::unix_seconds()],
        )?;
        Ok(())
    }

    /// The latest `limit` incidents, newest first.
    pub fn incidents(&self, limit: usize) -> Result<Vec<Incident>> {
        self.db.all(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY id DESC LIMIT ?1"),
            args![limit as i64],
            incident_row,
        )
    }

    /// Incident `id` and its timeline, oldest first.
    pub fn incident(&self, id: i64) -> Result<Option<(Incident, Vec<IncidentEvent>)>> {
        let Some(i) = self.db.opt(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
            args![id],
            incident_row,
        )?
        else {
            return Ok(None);
        };
        let events = self.db.all(
            "SELECT at, what, detail FROM incident_events WHERE incident = ?1 ORDER BY seq",
            args![id],
            |r| {
                Ok(IncidentEvent {
                    at: r.get(0)?,
                    what: r.get(1)?,
                    detail: r.get(2)?,
                })
            },
        )?;
        Ok(Some((i, events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::testing::store_tests! {
        fn a_block_holds_until_its_time_and_can_be_lifted(s) {
            s.block_address("10.0.0.9", 1000, "failed_logins_address", 1)
                .unwrap();
            assert!(s.block_of("10.0.0.9", 999).unwrap().is_some());
            assert!(s.block_of("10.0.0.9", 1000).unwrap().is_none());
            assert!(s.block_of("10.0.0.8", 10).unwrap().is_none());
            // A shorter block later does not shorten it.
            s.block_address("10.0.0.9", 500, "failed_logins_address", 2)
                .unwrap();
            assert_eq!(s.block_of("10.0.0.9", 0).unwrap().unwrap().until, 1000);
            assert_eq!(s.blocks(0).unwrap().len(), 1);
            assert!(s.unblock_address("10.0.0.9", 0).unwrap().is_some());
            assert!(s.block_of("10.0.0.9", 0).unwrap().is_none());
            assert!(s.unblock_address("10.0.0.9", 0).unwrap().is_none());
        }

        fn an_alert_joins_the_incident_of_its_rule_and_key_while_it_is_recent(s) {
            let (a, new) = s.incident_for("r", "k", 100, 0).unwrap();
            assert!(new);
            let (b, new) = s.incident_for("r", "k", 200, 50).unwrap();
            assert!(!new);
            assert_eq!(a, b);
            let (c, new) = s.incident_for("r", "other", 200, 50).unwrap();
            assert!(new && c != a);
            // Quiet since before `since`: a new incident.
            let (d, new) = s.incident_for("r", "k", 10_000, 5_000).unwrap();
            assert!(new && d != a);
            s.incident_note(a, "alert.raised", "5 in 300 s").unwrap();
            s.incident_note(a, "address.block", "until x").unwrap();
            let (i, events) = s.incident(a).unwrap().unwrap();
            assert_eq!(i.alerts, 2);
            assert_eq!(
                events.iter().map(|e| e.what.as_str()).collect::<Vec<_>>(),
                ["alert.raised", "address.block"]
            );
            assert!(s.incident_note(999, "x", "y").is_err());
            assert_eq!(s.incidents(10).unwrap().len(), 3);
        }

        fn a_timeline_is_bounded(s) {
            let (a, _) = s.incident_for("r", "k", 1, 0).unwrap();
            for _ in 0..(TIMELINE_MAX + 10) {
                s.incident_note(a, "note", "x").unwrap();
            }
            assert_eq!(s.incident(a).unwrap().unwrap().1.len() as i64, TIMELINE_MAX);
        }
    }
}
