//! The master key: where it comes from, and the keys derived from it.
//!
//! It is never kept in the data directory, so that a copy of that directory (a backup, a
//! disk sent for repair) holds only keys wrapped by a key it does not contain. Sources, the
//! first present wins:
//!
//! 1. `$CORDON_MASTER_KEY`: 64 hex characters;
//! 2. `$CORDON_MASTER_KEY_FILE`, else `[keys] master_key_file`: a file that must exist;
//! 3. systemd's credential `cordon-master-key` (`LoadCredential=` in the unit), read from
//!    `$CREDENTIALS_DIRECTORY`;
//! 4. the generated one: `/etc/cordon/master.key` for root, else
//!    `$XDG_CONFIG_HOME/cordon/master.key`, made on a fresh data directory only (with a
//!    warning), so that a data directory moved without its key is refused, not re-keyed.

use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::KeyError;

/// The environment variable holding the master key itself (hex).
pub const ENV_KEY: &str = "CORDON_MASTER_KEY";
/// The environment variable naming the master key's file.
pub const ENV_FILE: &str = "CORDON_MASTER_KEY_FILE";
/// The systemd credential's name (`LoadCredential=cordon-master-key:/etc/cordon/master.key`).
pub const CREDENTIAL: &str = "cordon-master-key";

/// Where the master key came from, for messages, `doctor` and `key status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Env,
    File(PathBuf),
    Credential(PathBuf),
    /// The file cordon generates where none was configured.
    Generated(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env => write!(f, "${ENV_KEY}"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Credential(p) => write!(f, "systemd credential {}", p.display()),
            Source::Generated(p) => write!(f, "{} (generated)", p.display()),
        }
    }
}

/// A master key: 32 bytes, wiped when dropped, and its id (a hash, safe to show).
pub struct Master {
    key: Zeroizing<[u8; 32]>,
    pub id: String,
    pub source: Source,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Master({} from {})", self.id, self.source)
    }
}

/// Where to look, besides the environment: the configuration's `[keys] master_key_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterConfig {
    pub file: Option<PathBuf>,
}

const SALT: &[u8] = b"cordon keyring v1";

impl Master {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32], source: Source) -> Master {
        let key = Zeroizing::new(*bytes);
        let mut id = [0u8; 8];
        derive_into(&key, b"master id", &mut id);
        Master {
            key,
            id: crate::secrets::hex(&id),
            source,
        }
    }

    /// A new random master key.
    pub fn generate(source: Source) -> Result<Master, KeyError> {
        let bytes = Zeroizing::new(crate::secrets::random_bytes(32).map_err(KeyError::Random)?);
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        let m = Master::from_bytes(&k, source);
        zeroize::Zeroize::zeroize(&mut k);
        Ok(m)
    }

    /// A key for one purpose (`wrap audit`, `ring mac`, ...): HKDF-SHA256, so that no two
    /// purposes share a key and none is the master itself.
    pub fn derive(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        derive_into(&self.key, info, &mut out[..]);
        out
    }

    /// The key as a master key file holds it: 64 hex characters and a newline.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", crate::secrets::hex(&self.key[..])))
    }
}

fn derive_into(master: &[u8; 32], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(Some(SALT), master)
        .expand(info, out)
        .expect("HKDF-SHA256 gives up to 8160 bytes");
}

/// The default place of a generated master key for this account.
pub fn default_path() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/etc/cordon/master.key");
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/"))
                .join(".config")
        });
    config.join("cordon/master.key")
}

/// 32 bytes from a key's text: 64 hex characters (blanks around them allowed), or 32 raw
/// bytes (as `systemd-creds` may hand them).
pub fn parse(text: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    if text.len() == 32 && std::str::from_utf8(text).is_err() {
        out.copy_from_slice(text);
        return Some(out);
    }
    let s = std::str::from_utf8(text).ok()?.trim();
    if s.len() != 64 {
        return None;
    }
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// What the environment and the configuration say, without reading any file: the pure part
/// of the search, tested on its own.
#[derive(Debug, PartialEq, Eq)]
pub enum Where {
    Env,
    File(PathBuf),
    Credential(PathBuf),
    /// No source configured: the generated key's place.
    Default(PathBuf),
}

/// Which source applies, given the environment's values and the configuration.
pub fn choose(
    env_key: bool,
    env_file: Option<PathBuf>,
    config: &MasterConfig,
    credentials_dir: Option<PathBuf>,
    default: PathBuf,
) -> Where {
    if env_key {
        return Where::Env;
    }
    if let Some(f) = env_file.or_else(|| config.file.clone()) {
        return Where::File(f);
    }
    if let Some(dir) = credentials_dir {
        let p = dir.join(CREDENTIAL);
        if p.exists() {
            return Where::Credential(p);
        }
    }
    Where::Default(default)
}

/// Finds the master key. `fresh`: the data directory has no keys yet, so a missing default
/// key may be generated. Returns the key and, when it was just generated, a warning to show.
pub fn find(
    config: &MasterConfig,
    data_root: &Path,
    fresh: bool,
) -> Result<(Master, Option<String>), KeyError> {
    let env_key = std::env::var_os(ENV_KEY).filter(|v| !v.is_empty());
    let place = choose(
        env_key.is_some(),
        std::env::var_os(ENV_FILE)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        config,
        std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        default_path(),
    );
    match place {
        Where::Env => {
            let text = env_key.unwrap_or_default();
            let key = parse(text.as_encoded_bytes()).ok_or_else(|| KeyError::MasterText {
                source_name: format!("${ENV_KEY}"),
            })?;
            Ok((Master::from_bytes(&key, Source::Env), None))
        }
        Where::File(path) => {
            let key = read_file(&path, data_root, true)?;
            Ok((Master::from_bytes(&key, Source::File(path)), None))
        }
        Where::Credential(path) => {
            // systemd made this file for this service alone (0400, in a private mount).
            let key = read_file(&path, data_root, false)?;
            Ok((Master::from_bytes(&key, Source::Credential(path)), None))
        }
        Where::Default(path) => match read_file(&path, data_root, true) {
            Ok(key) => Ok((Master::from_bytes(&key, Source::Generated(path)), None)),
            Err(KeyError::MasterMissing { .. }) if fresh => {
                let m = generate_at(&path)?;
                let warning = format!(
                    "no master key was configured, so cordon generated one at {}: keep a copy \
                     apart from the data directory (cordon key backup), or set {ENV_FILE} or \
                     [keys] master_key_file (docs/security.md, \"Keys\")",
                    path.display()
                );
                Ok((m, Some(warning)))
            }
            Err(KeyError::MasterMissing { path }) => Err(KeyError::NoMaster {
                looked: path,
                env: ENV_KEY,
            }),
            Err(e) => Err(e),
        },
    }
}

/// Reads a master key file: a plain file of ours, not readable by others (`private`), not
/// beneath the data directory.
fn read_file(
    path: &Path,
    data_root: &Path,
    private: bool,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    use std::os::unix::fs::MetadataExt;
    let inside = |p: &Path| {
        let root = std::fs::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf());
        std::fs::canonicalize(p).is_ok_and(|c| c.starts_with(&root))
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::MasterMissing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(crate::paths::FileError::io("reading", path)(e).into()),
    };
    if inside(path) {
        return Err(KeyError::MasterInData {
            path: path.to_path_buf(),
        });
    }
    // Credentials are links into systemd's private directory on some versions; a file we
    // were pointed at must be a plain one.
    if private && !meta.file_type().is_file() {
        return Err(crate::paths::FileError::Link(path.to_path_buf()).into());
    }
    if private && meta.mode() & 0o077 != 0 {
        return Err(crate::paths::FileError::Exposed {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o777,
        }
        .into());
    }
    let text =
        Zeroizing::new(std::fs::read(path).map_err(crate::paths::FileError::io("reading", path))?);
    parse(&text).ok_or_else(|| KeyError::MasterText {
        source_name: path.display().to_string(),
    })
}

/// Generates a master key at `path` (0600, its directory 0700 when cordon makes it). Two
/// processes starting at once both end up with the one written first: the file is made
/// under a temporary name and linked into place, which fails if it exists.
pub fn generate_at(path: &Path) -> Result<Master, KeyError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(crate::paths::FileError::io("creating", dir))?;
    let m = Master::generate(Source::Generated(path.to_path_buf()))?;
    let tmp = dir.join(format!(
        ".master.key.{}.{}",
        std::process::id(),
        crate::secrets::hex(&crate::secrets::random_bytes(4).map_err(KeyError::Random)?)
    ));
    crate::secrets::write_private(&tmp, m.to_file_text().as_bytes())?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(m),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = read_file(path, Path::new("/nonexistent"), true)?;
            Ok(Master::from_bytes(
                &key,
                Source::Generated(path.to_path_buf()),
            ))
        }
        Err(e) => Err(crate::paths::FileError::io("creating", path)(e).into()),
    }
}

/// Writes a new master key file at `path` (which must not exist), for a rotation.
pub fn write_new(path: &Path, m: &Master) -> Result<(), KeyError> {
    crate::secrets::write_private(path, m.to_file_text().as_bytes())?;
    Ok(())
}

/// Where a rotation writes the new key before it takes the old one's place: `PATH.new`.
pub fn aside(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".new");
    PathBuf::from(s)
}

/// Reads a master key from a file the operator names (`--new-key-file`).
pub fn read_named(path: &Path, data_root: &Path) -> Result<Master, KeyError> {
    let key = read_file(path, data_root, true)?;
    Ok(Master::from_bytes(&key, Source::File(path.to_path_buf())))
}

/// A master key file in `dir` for a test's host (made once), so that tests never use the
/// account's default key.
#[cfg(test)]
pub fn for_tests(dir: &Path) -> PathBuf {
    let path = dir.join("master.key");
    generate_at(&path).expect("a master key in a test directory");
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_then_a_named_file_then_a_credential_then_the_default() {
        let cfg = MasterConfig {
            file: Some("/etc/cordon/k".into()),
        };
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join(CREDENTIAL), "x").unwrap();
        let d = PathBuf::from("/d");
        let c = || Some(creds.path().to_path_buf());
        assert_eq!(choose(true, None, &cfg, c(), d.clone()), Where::Env);
        assert_eq!(
            choose(false, Some("/e".into()), &cfg, c(), d.clone()),
            Where::File("/e".into())
        );
        assert_eq!(
            choose(false, None, &cfg, c(), d.clone()),
            Where::File("/etc/cordon/k".into())
        );
        assert_eq!(
            choose(false, None, &MasterConfig::default(), c(), d.clone()),
            Where::Credential(creds.path().join(CREDENTIAL))
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            choose(
                false,
                None,
                &MasterConfig::default(),
                Some(empty.path().into()),
                d.clone()
            ),
            Where::Default(d)
        );
    }

    #[test]
    fn a_key_is_64_hex_characters_or_32_raw_bytes_and_nothing_else() {
        let hex = "ab".repeat(32);
        assert_eq!(parse(hex.as_bytes()).unwrap()[0], 0xab);
        assert_eq!(parse(format!("  {hex}\n").as_bytes()).unwrap()[31], 0xab);
        assert!(parse(&hex.as_bytes()[..62]).is_none());
        assert!(parse(format!("{hex}00").as_bytes()).is_none());
        assert!(parse("zz".repeat(32).as_bytes()).is_none());
        let mut raw = [0xffu8; 32];
        raw[0] = 0x80;
        assert_eq!(parse(&raw).unwrap()[1], 0xff);
    }

    #[test]
    fn purposes_get_different_keys_and_the_id_does_not_show_the_key() {
        let m = Master::from_bytes(&[7u8; 32], Source::Env);
        assert_ne!(*m.derive(b"wrap audit"), *m.derive(b"wrap recording"));
        assert_ne!(*m.derive(b"wrap audit"), [7u8; 32]);
        assert_eq!(m.id.len(), 16);
        assert!(!format!("{m:?}").contains("0707"));
        assert_eq!(
            Master::from_bytes(&[7u8; 32], Source::Env).id,
            m.id,
            "the id is stable"
        );
    }

    #[test]
    fn a_master_key_file_inside_the_data_directory_or_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        let inside = data.path().join("master.key");
        std::fs::write(&inside, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_file(&inside, data.path(), true),
            Err(KeyError::MasterInData { .. })
        ));
        let other = tempfile::tempdir().unwrap();
        let open = other.path().join("master.key");
        std::fs::write(&open, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_file(&open, data.path(), true).is_err());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_file(&open, data.path(), true).is_ok());
    }

    #[test]
    fn two_generations_at_once_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = generate_at(&path).unwrap();
        let b = generate_at(&path).unwrap();
        assert_eq!(a.id, b.id);
    }
}
