//! The key hierarchy's operations (admins): the master key rotated, the secrets key rotated
//! and every stored secret sealed again, the keys' ages, a key backup made, a restore
//! recorded. Restoring itself happens before the service opens (a data directory whose keys
//! are lost cannot open its audit log): see `cli/keys.rs`.

use super::*;
use crate::keys::{Age, Rotated, Source};
use std::path::Path;

/// What `cordon key status` and /metrics show: never key material.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub master_id: String,
    pub master_source: Source,
    pub ages: Vec<Age>,
}

impl Service {
    fn keys_admin(&self, p: &Principal, what: &str) -> Result<Principal> {
        self.check(p, Action::ManageUsers, what, |p| {
            format!("{} may not manage keys", p.role.with_article())
        })
    }

    /// `cordon key rotate --master`: every data key re-wrapped with a new master key (from
    /// `new_file`, or generated in the current key file's place); no data is re-encrypted.
    pub fn rotate_master_key(&self, p: &Principal, new_file: Option<&Path>) -> Result<Rotated> {
        let p = self.keys_admin(p, "key rotate --master")?;
        let old = self.keys.master_id();
        let r = self
            .keys
            .rotate_master(new_file, &self.dir)
            .map_err(|e| match e {
                e @ (crate::keys::KeyError::MasterFixed { .. }
                | crate::keys::KeyError::SameMaster
                | crate::keys::KeyError::MasterMissing { .. }
                | crate::keys::KeyError::MasterText { .. }
                | crate::keys::KeyError::MasterInData { .. }) => Error::Invalid(e.to_string()),
                e => Error::caused("rotating the master key", e),
            })?;
        self.record(
            p.stamp(AuditEvent::new(Kind::KeyRotate, p.user.clone()))
                .with("key", "master")
                .with("key_id", r.id.clone())
                .with("previous", old)
                .with("keys", r.count as u64),
        );
        Ok(r)
    }

    /// `cordon key rotate --secrets`: a new secrets key current, and every stored secret
    /// sealed again with it. Returns the new key's id and how many were sealed again.
    pub fn rotate_secrets_key(&self, p: &Principal) -> Result<(String, usize)> {
        let p = self.keys_admin(p, "key rotate --secrets")?;
        let id = self
            .vault
            .rotate()
            .map_err(|e| Error::caused("rotating the secrets key", e))?;
        let mut resealed = 0;
        for (owner, name, old) in self.store.all_sealed_secrets()? {
            let value = self
                .vault
                .open(owner, &name, &old)
                .map_err(|e| Error::caused("opening a stored secret to seal it again", e))?;
            let new = self
                .vault
                .seal(owner, &name, &value)
                .map_err(|e| Error::caused("sealing a stored secret again", e))?;
            if self.store.reseal_secret(owner, &name, &old, &new)? {
                resealed += 1;
            }
        }
        self.record(
            p.stamp(AuditEvent::new(Kind::KeyRotate, p.user.clone()))
                .with("key", "secrets")
                .with("key_id", id.clone())
                .with("resealed", resealed as u64),
        );
        Ok((id, resealed))
    }

    /// The master key's source and id, and the age of each current key against its period.
    pub fn key_status(&self, p: &Principal) -> Result<KeyStatus> {
        self.keys_admin(p, "key status")?;
        self.key_figures()
    }

    /// [`Service::key_status`] without a caller: /metrics and the host's start.
    pub fn key_figures(&self) -> Result<KeyStatus> {
        let (list, since) = self
            .keys
            .list()
            .map_err(|e| Error::caused("reading the key ring", e))?;
        let master_id = self.keys.master_id();
        Ok(KeyStatus {
            ages: crate::keys::ages(
                &list,
                &master_id,
                since,
                crate::keys::now(),
                &self.config.rotation,
            ),
            master_id,
            master_source: self.keys.master_source(),
        })
    }

    /// `cordon key backup`: every data key sealed with `passphrase` (Argon2id, AES-256-GCM).
    pub fn key_backup(&self, p: &Principal, passphrase: &str) -> Result<Vec<u8>> {
        let p = self.keys_admin(p, "key backup")?;
        if let Some(why) = crate::keys::backup::weak(passphrase) {
            return Err(Error::Invalid(why));
        }
        let bytes = crate::keys::backup::seal(&self.keys, passphrase)
            .map_err(|e| Error::caused("making the key backup", e))?;
        let (list, _) = self
            .keys
            .list()
            .map_err(|e| Error::caused("reading the key ring", e))?;
        self.record(
            p.stamp(AuditEvent::new(Kind::KeyBackup, p.user.clone()))
                .with("keys", list.len() as u64),
        );
        Ok(bytes)
    }

    /// The host's SSH key (made on first use), for the SSH face to serve with.
    pub fn host_key(&self) -> Result<russh::keys::PrivateKey> {
        crate::keys::host::ssh_host_key(&self.keys)
            .map_err(|e| Error::caused("reading the SSH host key", e))
    }

    /// Records a restore that `cordon key restore` made before the service opened.
    pub fn key_restored(&self, p: &Principal, added: usize, made: i64) -> Result<()> {
        let p = self.keys_admin(p, "key restore")?;
        self.record(
            p.stamp(AuditEvent::new(Kind::KeyRestore, p.user.clone()))
                .with("keys", added as u64)
                .with("backup_made", made),
        );
        Ok(())
    }
}
