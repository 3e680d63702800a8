//! Secrets for sessions, as the store keeps them: sealed values (the service seals and opens
//! them with the host's secrets key; the store never sees a value), per user id or global
//! (owner 0), with their dates.

use serde::Serialize;

use super::db::{args, Sql};
use super::{Result, Store};

/// Version 5 of the schema: one row per (owner, name); owner 0 is a global secret.
pub(super) const SCHEMA_V5: &str = "
CREATE TABLE secrets (
    owner_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (owner_id, name)
);
";

/// A secret as a listing shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretEntry {
    /// The owner's user id; 0 for a global secret.
    pub owner_id: i64,
    pub name: String,
    pub created: String,
    pub updated: String,
}

/// A secret's value as stored: a nonce and the AEAD's output.
pub struct SealedSecret {
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
}

impl Store {
    /// Stores a sealed secret, replacing one of the same owner and name (its creation date
    /// kept). Returns whether it replaced one.
    pub fn put_secret(&self, owner_id: i64, name: &str, value: &SealedSecret) -> Result<bool> {
        let now = crate::audit::now_rfc3339();
        self.db.transaction(|tx| {
            let replaced = tx.execute(
                "UPDATE secrets SET nonce = ?3, sealed = ?4, updated = ?5 WHERE owner_id = ?1 AND name = ?2",
                args![owner_id, name, &value.nonce, &value.sealed, &now],
            )?;
            if replaced == 0 {
                tx.execute(
                    "INSERT INTO secrets (owner_id, name, nonce, sealed, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    args![owner_id, name, &value.nonce, &value.sealed, &now],
                )?;
            }
            Ok(replaced > 0)
        })
    }

    /// Every sealed secret (owner, name, value): for re-sealing after a key rotation.
    pub fn all_sealed_secrets(&self) -> Result<Vec<(i64, String, SealedSecret)>> {
        self.db.all(
            "SELECT owner_id, name, nonce, sealed FROM secrets",
            args![],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    SealedSecret {
                        nonce: r.get(2)?,
                        sealed: r.get(3)?,
                    },
                ))
            },
        )
    }

    /// Replaces a sealed value with the same value sealed again, only if the row still
    /// holds `old` (a secret set meanwhile is newer, and kept). Its dates do not change.
    pub fn reseal_secret(
        &self,
        owner_id: i64,
        name: &str,
        old: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool> {
        let n = self.db.execute(
            "UPDATE secrets SET nonce = ?5, sealed = ?6 WHERE owner_id = ?1 AND name = ?2 AND nonce = ?3 AND sealed = ?4",
            args![owner_id, name, &old.nonce, &old.sealed, &new.nonce, &new.sealed],
        )?;
        Ok(n > 0)
    }

    /// The secrets of `owner_id` (0: the global ones), by name.
    pub fn secrets(&self, owner_id: i64) -> Result<Vec<SecretEntry>> {
        self.db.all(
            "SELECT owner_id, name, created, updated FROM secrets WHERE owner_id = ?1 ORDER BY name",
            args![owner_id],
            |r| {
                Ok(SecretEntry {
                    owner_id: r.get(0)?,
                    name: r.get(1)?,
                    created: r.get(2)?,
                    updated: r.get(3)?,
                })
            },
        )
    }

    /// One sealed secret, if there is one.
    pub fn sealed_secret(&self, owner_id: i64, name: &str) -> Result<Option<SealedSecret>> {
        self.db.opt(
            "SELECT nonce, sealed FROM secrets WHERE owner_id = ?1 AND name = ?2",
            args![owner_id, name],
            |r| {
                Ok(SealedSecret {
                    nonce: r.get(0)?,
                    sealed: r.get(1)?,
                })
            },
        )
    }

    /// Removes a secret; false if there was none.
    pub fn remove_secret(&self, owner_id: i64, name: &str) -> Result<bool> {
        let n = self.db.execute(
            "DELETE FROM secrets WHERE owner_id = ?1 AND name = ?2",
            args![owner_id, name],
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    crate::store::testing::store_tests! {
        fn secrets_are_kept_per_owner_and_go_with_their_user(s) {
            let u = s.add_user("alice", Role::Developer).unwrap();
            let sealed = |b: &[u8]| SealedSecret {
                nonce: vec![1; 12],
                sealed: b.to_vec(),
            };
            assert!(!s.put_secret(u.id, "K", &sealed(b"one")).unwrap());
            assert!(s.put_secret(u.id, "K", &sealed(b"two")).unwrap());
            s.put_secret(0, "K", &sealed(b"global")).unwrap();
            assert_eq!(s.sealed_secret(u.id, "K").unwrap().unwrap().sealed, b"two");
            assert_eq!(s.sealed_secret(0, "K").unwrap().unwrap().sealed, b"global");
            assert_eq!(s.secrets(u.id).unwrap().len(), 1);
            s.remove_user("alice").unwrap();
            assert!(s.secrets(u.id).unwrap().is_empty());
            assert!(s.remove_secret(0, "K").unwrap());
            assert!(!s.remove_secret(0, "K").unwrap());
        }
    }
}
