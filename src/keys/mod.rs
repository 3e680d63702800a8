//! The key hierarchy: one master key from outside the data directory ([`master`]), and the
//! host's data keys kept in `keys/keyring.json`, each wrapped by a key derived from the
//! master for its purpose alone (AES-256-GCM; the purpose, the key's id and its creation
//! time as associated data, so that a wrapped key moved to another purpose or id does not
//! open). The file as a whole carries an HMAC under another derived key, so that a key
//! dropped from it or a `current` moved back to an old key is noticed.
//!
//! Rotating the master re-wraps the data keys and re-encrypts no data. Rotating a data key
//! (recordings, API signing, secrets) adds a key and makes it current; old ones stay for what
//! they sealed. The file is replaced whole (written aside, synced, renamed) under a lock
//! file, so that a reader sees the old ring or the new one, and two writers do not lose
//! each other's key.

pub mod backup;
pub mod host;
pub mod master;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::paths::{DataDir, FileError};
pub use master::{Master, MasterConfig, Source};

/// What a data key is for. One purpose, one wrapping key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Purpose {
    /// The audit log's HMAC key.
    Audit,
    /// Recording master keys (each recording derives its own key from one, by its salt).
    Recording,
    /// API token signing keys, Ed25519 (PKCS#8) or HS256 (32 bytes).
    ApiEd25519,
    ApiHs256,
    /// The key that seals secrets for sessions in the store.
    Secrets,
    /// The SSH host key (OpenSSH text), which also signs evidence bundles.
    SshHost,
    /// The key that seals users' second-factor secrets in the store.
    Totp,
}

impl Purpose {
    pub const ALL: [Purpose; 7] = [
        Purpose::Audit,
        Purpose::Recording,
        Purpose::ApiEd25519,
        Purpose::ApiHs256,
        Purpose::Secrets,
        Purpose::SshHost,
        Purpose::Totp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Purpose::Audit => "audit",
            Purpose::Recording => "recording",
            Purpose::ApiEd25519 => "api-eddsa",
            Purpose::ApiHs256 => "api-hs256",
            Purpose::Secrets => "secrets",
            Purpose::SshHost => "ssh-host",
            Purpose::Totp => "totp",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// Why the keys could not be read, made or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("generating a key: {0}")]
    Random(#[source] std::io::Error),
    /// A configured master key file is missing.
    #[error("the master key file {} does not exist: create it (64 hex characters, mode 0600; e.g. `head -c32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE`) or fix the setting that names it", .path.display())]
    MasterMissing { path: PathBuf },
    /// The data directory has keys, and no master key was found to open them.
    #[error("no master key was found (looked at ${env}, $CORDON_MASTER_KEY_FILE, [keys] master_key_file, the systemd credential cordon-master-key, and {}); the keys in this data directory were wrapped by one: provide it, or restore a key backup (cordon key restore)", .looked.display())]
    NoMaster { looked: PathBuf, env: &'static str },
    /// The master key's text is not a key.
    #[error("{source_name} does not hold a master key: it must be 64 hex characters (32 bytes)")]
    MasterText { source_name: String },
    /// A master key file inside the data directory would travel with every copy of it.
    #[error("the master key file {} is inside the data directory; move it out (e.g. to /etc/cordon/master.key) and point [keys] master_key_file at it", .path.display())]
    MasterInData { path: PathBuf },
    /// The master key is not the one that wrapped the keys.
    #[error("the master key from {source_name} (id {got}) is not the one that wrapped the keys in {} (id {expected}): give cordon that key, or restore a key backup", .path.display())]
    WrongMaster {
        source_name: String,
        got: String,
        expected: String,
        path: PathBuf,
    },
    /// The key ring's file was changed or cut by something other than cordon.
    #[error("{} is damaged: {why}; restore it from a key backup (cordon key restore)", .path.display())]
    Damaged { path: PathBuf, why: String },
    /// A key that a recording or a token names is not in the ring.
    #[error("no {purpose} key {id} in {}: it was never here, or was lost; restore a key backup that holds it", .path.display())]
    Missing {
        purpose: &'static str,
        id: String,
        path: PathBuf,
    },
    /// The new master key is the current one.
    #[error("the new master key is the one in use; generate another")]
    SameMaster,
    /// The master key comes from a place cordon does not write.
    #[error("the master key comes from {source_name}, which cordon does not write: put a new key in a file (64 hex characters, mode 0600) and run `cordon key rotate --master --new-key-file FILE`, then point that setting at it")]
    MasterFixed { source_name: String },
    /// A key backup that does not open or is not one.
    #[error("{0}")]
    Backup(String),
    /// Restoring would replace a key that data here was sealed with.
    #[error("the backup's {purpose} key {theirs} differs from this data directory's ({ours}); what was sealed with {ours} would no longer open. Restore into a fresh data directory, or pass --replace to keep both and make the backup's current")]
    Conflict {
        purpose: &'static str,
        ours: String,
        theirs: String,
    },
}

/// One wrapped key as the file holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    purpose: String,
    id: String,
    /// Unix seconds.
    created: i64,
    /// Nonce (12 bytes) then ciphertext and tag, base64.
    wrapped: String,
}

/// The key ring's file: its body, and the body's MAC.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
struct Body {
    format: u32,
    /// The id of the master key that wrapped the keys.
    master: String,
    /// When that master key began wrapping them (unix seconds): its age.
    master_since: i64,
    /// The id each purpose uses now.
    current: BTreeMap<String, String>,
    keys: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct File {
    #[serde(flatten)]
    body: Body,
    mac: String,
}

/// What a master rotation did: the new key's id, how many keys it re-wrapped, where the
/// new key is (`moved`: cordon replaced the old file with it).
#[derive(Debug)]
pub struct Rotated {
    pub id: String,
    pub count: usize,
    pub file: PathBuf,
    pub moved: bool,
}

/// A key as listed: never its material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub purpose: Purpose,
    pub id: String,
    pub created: i64,
    pub current: bool,
}

/// The opened key ring of one data directory.
pub struct Keys {
    dir: PathBuf,
    /// The master key; replaced when another process rotated it and its source (a file)
    /// now gives the new one, so that a running host survives `cordon key rotate --master`.
    master: std::sync::RwLock<Arc<Master>>,
    /// Where the master key was found, to look again after a rotation.
    config: MasterConfig,
    root: PathBuf,
    /// The ring last read, with the file's identity (device, inode, size, mtime) then.
    cache: Mutex<Option<(Stamp, Arc<Body>)>>,
    /// What opening found to say (a generated master key, keys imported from plain files).
    pub notes: Vec<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({}, {:?})", self.dir.display(), self.master())
    }
}

type HmacSha256 = Hmac<Sha256>;
/// A file's identity and version: device, inode, size, mtime (seconds, nanoseconds).
type Stamp = (u64, u64, u64, i64, i64);
/// A key's id and its material, wiped when dropped.
pub type Material = (String, Zeroizing<Vec<u8>>);

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A key id from its material: the first 8 bytes of its SHA-256, hex.
pub fn id_of(material: &[u8]) -> String {
    use sha2::Digest;
    crate::secrets::hex(&Sha256::digest(material)[..8])
}

impl Keys {
    /// Opens the key ring of `data` with the master key the environment and `config` name.
    /// A data directory without a ring gets one; keys kept as plain files by an older cordon
    /// are moved into it (and the files removed).
    pub fn open(data: &DataDir, config: &MasterConfig) -> Result<Arc<Keys>, KeyError> {
        let dir = data.root.join("keys");
        crate::paths::private_dir(&dir)?;
        let fresh = !dir.join(RING).exists();
        let (master, warning) = master::find(config, &data.root, fresh)?;
        let source = master.source.clone();
        match Keys::build(data, master, warning, config.clone()) {
            Err(KeyError::WrongMaster {
                source_name,
                got,
                expected,
                path,
            }) => {
                // A master rotation that stopped between re-wrapping the ring and renaming
                // the new key file into place: the new key is still beside the old one.
                if let Source::File(p) | Source::Generated(p) = &source {
                    let aside = master::aside(p);
                    if master::read_named(&aside, &data.root).is_ok_and(|m| m.id == expected) {
                        std::fs::rename(&aside, p).map_err(FileError::io("replacing", p))?;
                        let (m, _) = master::find(config, &data.root, false)?;
                        let note = format!(
                            "finished a master key rotation that was interrupted: {} now holds key {expected}",
                            p.display()
                        );
                        return Keys::build(data, m, Some(note), config.clone());
                    }
                }
                Err(KeyError::WrongMaster {
                    source_name,
                    got,
                    expected,
                    path,
                })
            }
            r => r,
        }
    }

    fn build(
        data: &DataDir,
        master: Master,
        warning: Option<String>,
        config: MasterConfig,
    ) -> Result<Arc<Keys>, KeyError> {
        let dir = data.root.join("keys");
        crate::paths::private_dir(&dir)?;
        let mut keys = Keys {
            dir,
            master: std::sync::RwLock::new(Arc::new(master)),
            config,
            root: data.root.clone(),
            cache: Mutex::new(None),
            notes: warning.into_iter().collect(),
        };
        let imported = keys.update(|ring, k| legacy::import(&k.dir, ring, k))?;
        if !imported.is_empty() {
            legacy::remove(&keys.dir, &imported);
            keys.notes.push(format!(
                "moved {} plain key file(s) into {}, wrapped by the master key: {}",
                imported.len(),
                keys.dir.join(RING).display(),
                imported
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Arc::new(keys))
    }

    /// The id of `purpose`'s current key, without opening it.
    pub fn current_id(&self, purpose: Purpose) -> Result<Option<String>, KeyError> {
        Ok(self.ring()?.current.get(purpose.name()).cloned())
    }

    fn master(&self) -> Arc<Master> {
        self.master
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn master_id(&self) -> String {
        self.master().id.clone()
    }
    pub fn master_source(&self) -> Source {
        self.master().source.clone()
    }
    pub fn path(&self) -> PathBuf {
        self.dir.join(RING)
    }

    /// The key `id` of `purpose`.
    pub fn get(&self, purpose: Purpose, id: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let ring = self.ring()?;
        let e = ring
            .keys
            .iter()
            .find(|e| e.purpose == purpose.name() && e.id == id)
            .ok_or_else(|| KeyError::Missing {
                purpose: purpose.name(),
                id: id.to_string(),
                path: self.path(),
            })?;
        self.unwrap(e)
    }

    /// The current key of `purpose` and its id, if there is one.
    pub fn current(&self, purpose: Purpose) -> Result<Option<Material>, KeyError> {
        let ring = self.ring()?;
        match ring.current.get(purpose.name()) {
            Some(id) => Ok(Some((id.clone(), self.get(purpose, id)?))),
            None => Ok(None),
        }
    }

    /// The current key of `purpose`, made by `make` (its material) on first use.
    pub fn current_or_make(
        &self,
        purpose: Purpose,
        make: impl FnOnce() -> Result<Vec<u8>, KeyError>,
    ) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
        if let Some(k) = self.current(purpose)? {
            return Ok(k);
        }
        self.update(|ring, k| {
            if let Some(id) = ring.current.get(purpose.name()).cloned() {
                let e = ring
                    .keys
                    .iter()
                    .find(|e| e.purpose == purpose.name() && e.id == id)
                    .cloned();
                if let Some(e) = e {
                    return Ok((id, k.unwrap(&e)?));
                }
            }
            let material = Zeroizing::new(make()?);
            let id = id_for(purpose, &material);
            k.insert(ring, purpose, &id, &material, now(), true)?;
            Ok((id, material))
        })
    }

    /// A random 32-byte key, made current for `purpose` on first use.
    pub fn random_current(
        &self,
        purpose: Purpose,
    ) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
        self.current_or_make(purpose, || {
            crate::secrets::random_bytes(32).map_err(KeyError::Random)
        })
    }

    /// Adds a key for `purpose` and makes it current: a rotation. Returns its id.
    pub fn add_current(&self, purpose: Purpose, material: &[u8]) -> Result<String, KeyError> {
        self.update(|ring, k| {
            let id = id_for(purpose, material);
            k.insert(ring, purpose, &id, material, now(), true)?;
            Ok(id)
        })
    }

    /// Every key of `purpose`, with its id, the current one first.
    pub fn all(&self, purpose: Purpose) -> Result<Vec<Material>, KeyError> {
        let ring = self.ring()?;
        let current = ring.current.get(purpose.name());
        let mut out = Vec::new();
        for e in ring.keys.iter().filter(|e| e.purpose == purpose.name()) {
            let k = (e.id.clone(), self.unwrap(e)?);
            if Some(&e.id) == current {
                out.insert(0, k);
            } else {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Every key, listed (no material), and when the master key began wrapping them.
    pub fn list(&self) -> Result<(Vec<KeyInfo>, i64), KeyError> {
        let ring = self.ring()?;
        let list = ring
            .keys
            .iter()
            .filter_map(|e| {
                Some(KeyInfo {
                    purpose: Purpose::parse(&e.purpose)?,
                    id: e.id.clone(),
                    created: e.created,
                    current: ring.current.get(&e.purpose) == Some(&e.id),
                })
            })
            .collect();
        Ok((list, ring.master_since))
    }

    /// Re-wraps every key with `new` and re-encrypts no data. Each key is opened with the
    /// old master under the lock, so that a key another process just added is kept. This
    /// handle keeps the old master: callers open the keys again. Returns the keys' count.
    pub fn rewrap(&self, new: &Master) -> Result<usize, KeyError> {
        self.update_as(Some(new), |ring, k| {
            let mut fresh = Body {
                format: FORMAT,
                master: new.id.clone(),
                master_since: now(),
                current: ring.current.clone(),
                keys: Vec::new(),
            };
            for e in &ring.keys {
                let material = k.unwrap(e)?;
                let purpose =
                    Purpose::parse(&e.purpose).ok_or_else(|| k.damaged("an unknown purpose"))?;
                fresh
                    .keys
                    .push(wrap(new, purpose, &e.id, e.created, &material)?);
            }
            *ring = fresh;
            Ok(ring.keys.len())
        })
    }

    /// `cordon key rotate --master`: a new master key, from `new_file` or, when the master
    /// key is a file cordon may replace, generated in its place. The new file is written
    /// beside the old one (`.new`) before the ring is re-wrapped, and renamed over it after,
    /// so that a crash in between is finished by the next open (see [`Keys::open`]).
    pub fn rotate_master(
        &self,
        new_file: Option<&Path>,
        data: &DataDir,
    ) -> Result<Rotated, KeyError> {
        if let Some(f) = new_file {
            let new = master::read_named(f, &data.root)?;
            if new.id == self.master().id {
                return Err(KeyError::SameMaster);
            }
            let count = self.rewrap(&new)?;
            return Ok(Rotated {
                id: new.id,
                count,
                file: f.to_path_buf(),
                moved: false,
            });
        }
        let path = match &self.master().source {
            Source::File(p) | Source::Generated(p) => p.clone(),
            other => {
                return Err(KeyError::MasterFixed {
                    source_name: other.to_string(),
                })
            }
        };
        let aside = master::aside(&path);
        let _ = std::fs::remove_file(&aside);
        let new = Master::generate(Source::File(path.clone()))?;
        master::write_new(&aside, &new)?;
        let count = self.rewrap(&new)?;
        std::fs::rename(&aside, &path).map_err(FileError::io("replacing", &path))?;
        Ok(Rotated {
            id: new.id,
            count,
            file: path,
            moved: true,
        })
    }

    /// The keys' material, for a backup.
    fn export(&self) -> Result<backup::Plain, KeyError> {
        let ring = self.ring()?;
        let mut keys = Vec::new();
        for e in &ring.keys {
            keys.push(backup::PlainKey {
                purpose: e.purpose.clone(),
                id: e.id.clone(),
                created: e.created,
                material: base64::engine::general_purpose::STANDARD.encode(&*self.unwrap(e)?),
            });
        }
        Ok(backup::Plain {
            current: ring.current.clone(),
            keys,
        })
    }

    /// Adds a backup's keys. A purpose whose current key here differs from the backup's
    /// is a conflict unless `replace` (then both are kept and the backup's is current).
    /// Returns how many keys were added.
    fn import(&self, plain: &backup::Plain, replace: bool) -> Result<usize, KeyError> {
        self.update(|ring, k| {
            for (purpose, theirs) in &plain.current {
                if let Some(ours) = ring.current.get(purpose) {
                    let multi = matches!(
                        Purpose::parse(purpose),
                        Some(Purpose::Recording | Purpose::ApiEd25519 | Purpose::ApiHs256)
                    );
                    if ours != theirs && !multi && !replace {
                        return Err(KeyError::Conflict {
                            purpose: Purpose::parse(purpose)
                                .map(|p| p.name())
                                .unwrap_or("unknown"),
                            ours: ours.clone(),
                            theirs: theirs.clone(),
                        });
                    }
                }
            }
            let mut added = 0;
            for pk in &plain.keys {
                let Some(purpose) = Purpose::parse(&pk.purpose) else {
                    return Err(KeyError::Backup(format!(
                        "the backup holds a key of unknown purpose {:?}",
                        pk.purpose
                    )));
                };
                if ring
                    .keys
                    .iter()
                    .any(|e| e.purpose == pk.purpose && e.id == pk.id)
                {
                    continue;
                }
                let material = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(&pk.material)
                        .map_err(|_| {
                            KeyError::Backup("the backup's key material is not base64".into())
                        })?,
                );
                ring.keys
                    .push(wrap(&k.master(), purpose, &pk.id, pk.created, &material)?);
                added += 1;
            }
            for (purpose, theirs) in &plain.current {
                if replace || !ring.current.contains_key(purpose) {
                    ring.current.insert(purpose.clone(), theirs.clone());
                }
            }
            Ok(added)
        })
    }

    fn unwrap(&self, e: &Entry) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let purpose =
            Purpose::parse(&e.purpose).ok_or_else(|| self.damaged("an unknown purpose"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&e.wrapped)
            .map_err(|_| self.damaged("a wrapped key is not base64"))?;
        if bytes.len() < 12 + 16 {
            return Err(self.damaged("a wrapped key is cut short"));
        }
        let kek = self.master().derive(wrap_info(purpose).as_bytes());
        let cipher = Aes256Gcm::new_from_slice(&kek[..]).expect("a 32-byte key");
        cipher
            .decrypt(
                Nonce::from_slice(&bytes[..12]),
                Payload {
                    msg: &bytes[12..],
                    aad: &associated(purpose, &e.id, e.created),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| self.damaged(&format!("the {} key {} does not open", e.purpose, e.id)))
    }

    fn insert(
        &self,
        ring: &mut Body,
        purpose: Purpose,
        id: &str,
        material: &[u8],
        created: i64,
        current: bool,
    ) -> Result<(), KeyError> {
        if !ring
            .keys
            .iter()
            .any(|e| e.purpose == purpose.name() && e.id == id)
        {
            ring.keys
                .push(wrap(&self.master(), purpose, id, created, material)?);
        }
        if current {
            ring.current
                .insert(purpose.name().to_string(), id.to_string());
        }
        Ok(())
    }

    fn damaged(&self, why: &str) -> KeyError {
        KeyError::Damaged {
            path: self.path(),
            why: why.to_string(),
        }
    }

    /// The ring as on disk now (read again when the file changed).
    fn ring(&self) -> Result<Arc<Body>, KeyError> {
        let path = self.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Arc::new(self.empty()));
            }
            Err(e) => return Err(FileError::io("reading", &path)(e).into()),
        };
        let stamp = (
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
        );
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, body)) = cache.as_ref() {
            if *s == stamp {
                return Ok(body.clone());
            }
        }
        let body = Arc::new(self.read(&path)?);
        *cache = Some((stamp, body.clone()));
        Ok(body)
    }

    fn empty(&self) -> Body {
        Body {
            format: FORMAT,
            master: self.master().id.clone(),
            master_since: now(),
            current: BTreeMap::new(),
            keys: Vec::new(),
        }
    }

    fn read(&self, path: &Path) -> Result<Body, KeyError> {
        let bytes = read_private(path)?;
        let file: File = serde_json::from_slice(&bytes)
            .map_err(|e| self.damaged(&format!("not a key ring ({e})")))?;
        if file.body.format != FORMAT {
            return Err(self.damaged(&format!(
                "format {} is not one this cordon reads",
                file.body.format
            )));
        }
        let mut m = self.master();
        if file.body.master != m.id {
            // Another process rotated the master key: its source may give the new one now.
            match master::find(&self.config, &self.root, false) {
                Ok((found, _)) if found.id == file.body.master && found.source == m.source => {
                    let found = Arc::new(found);
                    *self.master.write().unwrap_or_else(|e| e.into_inner()) = found.clone();
                    m = found;
                }
                _ => {
                    return Err(KeyError::WrongMaster {
                        source_name: m.source.to_string(),
                        got: m.id.clone(),
                        expected: file.body.master.clone(),
                        path: path.to_path_buf(),
                    })
                }
            }
        }
        let given = hex_decode(&file.mac).unwrap_or_default();
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&m.derive(b"ring mac")[..])
            .expect("HMAC takes any key");
        mac.update(&body_bytes(&file.body));
        if mac.verify_slice(&given).is_err() {
            return Err(self.damaged(
                "its MAC does not match (a key was removed, added or changed outside cordon)",
            ));
        }
        Ok(file.body)
    }

    /// Reads the ring under the lock, lets `f` change it, and writes it back if it changed.
    fn update<T>(
        &self,
        f: impl FnOnce(&mut Body, &Keys) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        self.update_as(None, f)
    }

    /// [`Keys::update`], the result MACed by `new` (a master rotation) or by this master.
    fn update_as<T>(
        &self,
        new: Option<&Master>,
        f: impl FnOnce(&mut Body, &Keys) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let lock_path = self.dir.join("keyring.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode_private()
            .open(&lock_path)
            .map_err(FileError::io("opening", &lock_path))?;
        // SAFETY: flock on a descriptor we own; released when `lock` drops.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(
                FileError::io("locking", &lock_path)(std::io::Error::last_os_error()).into(),
            );
        }
        let path = self.path();
        let before = if path.exists() {
            self.read(&path)?
        } else {
            self.empty()
        };
        let mut ring = before.clone();
        let out = f(&mut ring, self)?;
        if ring != before || !path.exists() {
            self.write(&path, &ring, new.unwrap_or(&self.master()))?;
        }
        drop(lock);
        Ok(out)
    }

    /// Writes the ring, MACed by `master` (the one that wrapped it).
    fn write(&self, path: &Path, ring: &Body, master: &Master) -> Result<(), KeyError> {
        let m = mac(master, ring);
        let text = serde_json::to_vec_pretty(&File {
            body: ring.clone(),
            mac: m,
        })
        .expect("a key ring serializes");
        let tmp = self.dir.join(format!("{RING}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        crate::secrets::write_private(&tmp, &text)?;
        std::fs::rename(&tmp, path).map_err(FileError::io("replacing", path))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

const RING: &str = "keyring.json";
const FORMAT: u32 = 1;

trait PrivateOpen {
    fn mode_private(&mut self) -> &mut Self;
}
impl PrivateOpen for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600).custom_flags(libc::O_NOFOLLOW)
    }
}

fn read_private(path: &Path) -> Result<Vec<u8>, KeyError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(FileError::io("opening", path))?;
    let meta = f.metadata().map_err(FileError::io("reading", path))?;
    if meta.mode() & 0o077 != 0 {
        return Err(FileError::Exposed {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o777,
        }
        .into());
    }
    // A ring of a few hundred keys is tens of KiB; anything past 16 MiB is not one.
    let mut bytes = Vec::new();
    (&mut f)
        .take(16 << 20)
        .read_to_end(&mut bytes)
        .map_err(FileError::io("reading", path))?;
    Ok(bytes)
}

fn wrap_info(purpose: Purpose) -> String {
    format!("wrap {}", purpose.name())
}

fn associated(purpose: Purpose, id: &str, created: i64) -> Vec<u8> {
    format!("cordon key\0{}\0{id}\0{created}", purpose.name()).into_bytes()
}

fn wrap(
    master: &Master,
    purpose: Purpose,
    id: &str,
    created: i64,
    material: &[u8],
) -> Result<Entry, KeyError> {
    let kek = master.derive(wrap_info(purpose).as_bytes());
    let cipher = Aes256Gcm::new_from_slice(&kek[..]).expect("a 32-byte key");
    let nonce = crate::secrets::random_bytes(12).map_err(KeyError::Random)?;
    let mut out = nonce.clone();
    out.extend(
        cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: material,
                    aad: &associated(purpose, id, created),
                },
            )
            .expect("AES-GCM wraps a key"),
    );
    Ok(Entry {
        purpose: purpose.name().to_string(),
        id: id.to_string(),
        created,
        wrapped: base64::engine::general_purpose::STANDARD.encode(out),
    })
}

fn body_bytes(body: &Body) -> Vec<u8> {
    serde_json::to_vec(body).expect("a key ring serializes")
}

fn mac(master: &Master, body: &Body) -> String {
    let mut m = <HmacSha256 as Mac>::new_from_slice(&master.derive(b"ring mac")[..])
        .expect("HMAC takes any key");
    m.update(&body_bytes(body));
    crate::secrets::hex(&m.finalize().into_bytes())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The id a new key of `purpose` gets. Recording keys keep the id the recording format
/// writes in each header (4 bytes); the others 8 bytes of their hash.
pub fn id_for(purpose: Purpose, material: &[u8]) -> String {
    match purpose {
        // The id each recording's header names: `record::format::key_id` (a test there
        // keeps the two equal).
        Purpose::Recording => {
            use sha2::Digest;
            crate::secrets::hex(&Sha256::digest(material)[..4])
        }
        Purpose::ApiEd25519 | Purpose::ApiHs256 => {
            use sha2::Digest;
            crate::secrets::hex(&Sha256::digest(material)[..6])
        }
        _ => id_of(material),
    }
}

/// How old keys may grow before they are due for rotation (`[keys] rotate_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub master: Option<Duration>,
    pub recording: Option<Duration>,
    pub api: Option<Duration>,
    pub secrets: Option<Duration>,
}

impl Default for Rotation {
    /// The security specification's: 90 days for the master key, 30 for the data keys that
    /// rotate in place.
    fn default() -> Rotation {
        let days = |d: u64| Some(Duration::from_secs(d * 86_400));
        Rotation {
            master: days(90),
            recording: days(30),
            api: days(30),
            secrets: days(30),
        }
    }
}

/// One key's age against its rotation period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    /// `master`, or a purpose's name.
    pub key: &'static str,
    pub id: String,
    pub age: Duration,
    pub period: Option<Duration>,
}

impl Age {
    pub fn overdue(&self) -> bool {
        self.period.is_some_and(|p| self.age > p)
    }
    /// The command that rotates it.
    pub fn fix(&self) -> &'static str {
        match self.key {
            "master" => "cordon key rotate --master",
            "recording" => "cordon key rotate",
            "api-eddsa" | "api-hs256" => "cordon token rotate",
            "secrets" => "cordon key rotate --secrets",
            _ => "(no rotation in place; see docs/security.md, \"Keys\")",
        }
    }
}

/// The ages of the master key and of each purpose's current key at `now` (pure).
pub fn ages(
    list: &[KeyInfo],
    master_id: &str,
    master_since: i64,
    now: i64,
    r: &Rotation,
) -> Vec<Age> {
    let since = |t: i64| Duration::from_secs(now.saturating_sub(t).max(0) as u64);
    let mut out = vec![Age {
        key: "master",
        id: master_id.to_string(),
        age: since(master_since),
        period: r.master,
    }];
    for k in list.iter().filter(|k| k.current) {
        let period = match k.purpose {
            Purpose::Recording => r.recording,
            Purpose::ApiEd25519 | Purpose::ApiHs256 => r.api,
            Purpose::Secrets => r.secrets,
            // The audit key, the SSH host key and the second-factor key do not rotate in
            // place (see docs/security.md): their age is shown, and never overdue.
            Purpose::Audit | Purpose::SshHost | Purpose::Totp => None,
        };
        out.push(Age {
            key: k.purpose.name(),
            id: k.id.clone(),
            age: since(k.created),
            period,
        });
    }
    out
}

/// Keys an older cordon kept as plain 0600 files, moved into the ring.
mod legacy {
    use super::*;

    /// The plain files under `dir` and what each is.
    fn found(dir: &Path) -> Vec<(Purpose, PathBuf, Option<String>, bool)> {
        let mut out = Vec::new();
        for (purpose, name) in [
            (Purpose::Audit, "audit.key"),
            (Purpose::Secrets, "secrets.key"),
            (Purpose::SshHost, "ssh_host_ed25519_key"),
            (Purpose::Totp, "totp.key"),
        ] {
            let p = dir.join(name);
            if p.is_file() {
                out.push((purpose, p, None, true));
            }
        }
        let current = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        let rec = dir.join("recording");
        let rec_current = current(&rec.join("current"));
        for (sub, purpose, ext, cur) in [
            (&rec, Purpose::Recording, "key", rec_current),
            (
                &dir.join("api"),
                Purpose::ApiEd25519,
                "ed25519",
                current(&dir.join("api/current.ed25519")),
            ),
            (
                &dir.join("api"),
                Purpose::ApiHs256,
                "hs256",
                current(&dir.join("api/current.hs256")),
            ),
        ] {
            let Ok(entries) = std::fs::read_dir(sub) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let (Some(stem), Some(x)) = (
                    p.file_stem().and_then(|s| s.to_str()),
                    p.extension().and_then(|s| s.to_str()),
                ) else {
                    continue;
                };
                if x == ext && stem != "current" {
                    let is_current = cur.as_deref() == Some(stem);
                    out.push((purpose, p.clone(), Some(stem.to_string()), is_current));
                }
            }
        }
        out
    }

    /// Adds each plain key to the ring; returns the files to remove once it is written.
    pub fn import(dir: &Path, ring: &mut Body, k: &Keys) -> Result<Vec<PathBuf>, KeyError> {
        let mut done = Vec::new();
        for (purpose, path, id, current) in found(dir) {
            let material = Zeroizing::new(read_private(&path)?);
            let id = id.unwrap_or_else(|| id_for(purpose, &material));
            let created = std::fs::metadata(&path)
                .map(|m| m.mtime())
                .unwrap_or_else(|_| now());
            let single = id_for(purpose, &material) == id
                && matches!(
                    purpose,
                    Purpose::Audit | Purpose::Secrets | Purpose::SshHost | Purpose::Totp
                );
            if single && ring.current.get(purpose.name()).is_some_and(|c| *c != id) {
                // The ring already has another key for this purpose: leave the file for
                // the operator rather than guess.
                continue;
            }
            k.insert(ring, purpose, &id, &material, created, current)?;
            done.push(path);
        }
        Ok(done)
    }

    /// Removes the imported files and the `current` pointers beside them.
    pub fn remove(dir: &Path, files: &[PathBuf]) {
        for f in files {
            let _ = std::fs::remove_file(f);
        }
        for f in [
            "recording/current",
            "api/current.ed25519",
            "api/current.hs256",
        ] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_dir(dir.join("recording"));
        let _ = std::fs::remove_dir(dir.join("api"));
    }
}

/// Rings for tests, under a master key given by the test.
#[cfg(test)]
impl Keys {
    /// Opens the ring with this master key (tests).
    pub fn with_master(
        data: &DataDir,
        master: Master,
        warning: Option<String>,
    ) -> Result<Arc<Keys>, KeyError> {
        Keys::build(data, master, warning, MasterConfig::default())
    }

    /// A ring under a fixed master key, for unit tests.
    pub fn for_tests(data: &DataDir) -> Arc<Keys> {
        Keys::with_master(data, Master::from_bytes(&[42u8; 32], Source::Env), None)
            .expect("a key ring in a test directory")
    }
}

#[cfg(test)]
mod tests;
