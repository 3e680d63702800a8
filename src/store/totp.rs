//! Second factors as the store keeps them: each user's TOTP secret, sealed (the service seals
//! and opens it; the store never sees it in the clear), whether it is confirmed, the last
//! step a code was accepted for, and the hashes of the recovery codes with when each was
//! spent. Rows go with their user (foreign keys, `ON DELETE CASCADE`).

use super::db::{args, Sql};
use super::{Result, Store};
use crate::auth::totp_vault::SealedTotp;

/// The schema block after version 5 (TOTP): one row per user in `totp`, their recovery
/// codes in `totp_recovery`.
pub(super) const SCHEMA_TOTP: &str = "
CREATE TABLE totp (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    last_step INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    confirmed_at TEXT
);
CREATE TABLE totp_recovery (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    used TEXT,
    PRIMARY KEY (user_id, hash)
);
";

/// A user's second factor as stored.
pub struct TotpRow {
    pub sealed: SealedTotp,
    /// Confirmed with a code; until then the enrolment is pending and logins ignore it.
    pub confirmed: bool,
    pub last_step: i64,
    pub created: String,
    pub confirmed_at: Option<String>,
}

impl Store {
    /// Starts (or starts again) an enrolment: a pending secret, replacing any pending one,
    /// and no recovery codes. Refused (`Conflict`) when a confirmed one exists.
    pub fn totp_begin(&self, user_id: i64, sealed: &SealedTotp) -> Result<()> {
        let now = crate::audit::now_rfc3339();
        self.db.transaction(|tx| {
            let confirmed: Option<bool> = tx.opt(
                "SELECT confirmed FROM totp WHERE user_id = ?1 FOR UPDATE",
                args![user_id],
                |r| r.get(0),
            )?;
            if confirmed == Some(true) {
                return Err(super::StoreError::Conflict(
                    "a second factor is enrolled already: disable it (totp disable) or have an admin reset it first".into(),
                ));
            }
            tx.execute("DELETE FROM totp WHERE user_id = ?1", args![user_id])?;
            tx.execute(
                "DELETE FROM totp_recovery WHERE user_id = ?1",
                args![user_id],
            )?;
            tx.execute(
                "INSERT INTO totp (user_id, nonce, sealed, created) VALUES (?1, ?2, ?3, ?4)",
                args![user_id, &sealed.nonce, &sealed.sealed, &now],
            )?;
            Ok(())
        })
    }

    /// A user's second factor, pending or confirmed.
    pub fn totp(&self, user_id: i64) -> Result<Option<TotpRow>> {
        self.db.opt(
            "SELECT nonce, sealed, confirmed, last_step, created, confirmed_at FROM totp WHERE user_id = ?1",
            args![user_id],
            |r| {
                Ok(TotpRow {
                    sealed: SealedTotp {
                        nonce: r.get(0)?,
                        sealed: r.get(1)?,
                    },
                    confirmed: r.get(2)?,
                    last_step: r.get(3)?,
                    created: r.get(4)?,
                    confirmed_at: r.get(5)?,
                })
            },
        )
    }

    /// Confirms a pending enrolment with the step its code was for and the recovery codes'
    /// hashes. False when there was no pending enrolment to confirm.
    pub fn totp_confirm(&self, user_id: i64, step: i64, recovery: &[String]) -> Result<bool> {
        let now = crate::audit::now_rfc3339();
        self.db.transaction(|tx| {
            let n = tx.execute(
                "UPDATE totp SET confirmed = 1, confirmed_at = ?3, last_step = ?2 WHERE user_id = ?1 AND confirmed = 0",
                args![user_id, step, &now],
            )?;
            if n == 0 {
                return Ok(false);
            }
            for h in recovery {
                tx.execute(
                    "INSERT INTO totp_recovery (user_id, hash) VALUES (?1, ?2)",
                    args![user_id, h],
                )?;
            }
            Ok(true)
        })
    }

    /// Takes `step` as used if it is later than the last one used: true once per step, so
    /// that two logins racing with one code cannot both pass (one statement: on PostgreSQL
    /// the second waits for the first's row and finds its step taken).
    pub fn totp_use_step(&self, user_id: i64, step: i64) -> Result<bool> {
        Ok(self.db.execute(
            "UPDATE totp SET last_step = ?2 WHERE user_id = ?1 AND confirmed = 1 AND last_step < ?2",
            args![user_id, step],
        )? == 1)
    }

    /// The hashes of a user's recovery codes not spent yet.
    pub fn totp_recovery_unused(&self, user_id: i64) -> Result<Vec<String>> {
        self.db.all(
            "SELECT hash FROM totp_recovery WHERE user_id = ?1 AND used IS NULL ORDER BY hash",
            args![user_id],
            |r| r.get(0),
        )
    }

    /// Spends a recovery code: true once, for the first caller.
    pub fn totp_recovery_spend(&self, user_id: i64, hash: &str) -> Result<bool> {
        Ok(self.db.execute(
            "UPDATE totp_recovery SET used = ?3 WHERE user_id = ?1 AND hash = ?2 AND used IS NULL",
            args![user_id, hash, crate::audit::now_rfc3339()],
        )? == 1)
    }

    /// Removes a user's second factor and recovery codes; whether there was one.
    pub fn totp_remove(&self, user_id: i64) -> Result<bool> {
        self.db.transaction(|tx| {
            let n = tx.execute("DELETE FROM totp WHERE user_id = ?1", args![user_id])?;
            tx.execute(
                "DELETE FROM totp_recovery WHERE user_id = ?1",
                args![user_id],
            )?;
            Ok(n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn sealed() -> SealedTotp {
        SealedTotp {
            nonce: vec![1; 12],
            sealed: vec![2; 36],
        }
    }

    crate::store::testing::store_tests! {
        fn a_step_and_a_recovery_code_are_each_taken_once(s) {
            let u = s.add_user("alice", Role::Developer).unwrap();
            s.totp_begin(u.id, &sealed()).unwrap();
            assert!(!s.totp(u.id).unwrap().unwrap().confirmed);
            assert!(!s.totp_use_step(u.id, 10).unwrap(), "pending: no login");
            assert!(s
                .totp_confirm(u.id, 10, &["h1".into(), "h2".into()])
                .unwrap());
            assert!(!s.totp_confirm(u.id, 11, &[]).unwrap(), "confirmed once");
            assert!(s.totp_begin(u.id, &sealed()).is_err(), "enrolled already");
            assert!(!s.totp_use_step(u.id, 10).unwrap(), "the confirming step");
            assert!(s.totp_use_step(u.id, 11).unwrap());
            assert!(!s.totp_use_step(u.id, 11).unwrap(), "replayed");
            assert_eq!(s.totp_recovery_unused(u.id).unwrap(), ["h1", "h2"]);
            assert!(s.totp_recovery_spend(u.id, "h1").unwrap());
            assert!(!s.totp_recovery_spend(u.id, "h1").unwrap());
            assert_eq!(s.totp_recovery_unused(u.id).unwrap(), ["h2"]);
            s.remove_user("alice").unwrap();
            assert!(s.totp(u.id).unwrap().is_none(), "gone with its user");
            assert!(s.totp_recovery_unused(u.id).unwrap().is_empty());
        }
    }
}
