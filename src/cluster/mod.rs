//! Several hosts sharing one store (issue 20): `[cluster]`'s configuration, this host's
//! name and identity. What the hosts share lives in the store (`store/cluster.rs`); the
//! heartbeat, the published sessions and the lost hosts in the service
//! (`service/cluster.rs`).

use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// `[cluster]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    name: Option<String>,
    advertise: Option<String>,
    heartbeat: Option<String>,
    lost_after: Option<String>,
}

/// `[cluster]`, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This host's name among those sharing the store (default: the machine's hostname).
    pub name: String,
    /// `host:port` where users reach this host's SSH (shown in redirects).
    pub advertise: String,
    /// How often the host says it is alive and publishes its sessions.
    pub heartbeat: Duration,
    /// A host silent this long is lost: its sessions are marked lost by the others.
    pub lost_after: Duration,
}

/// The longest host name (a DNS label's bound, doubled for dotted names).
pub const NAME_MAX: usize = 128;

/// Whether `name` may name a host: letters, digits, `.`, `-` and `_`, at most
/// [`NAME_MAX`] bytes (it is shown in lists and redirects, and keys the audit checkpoint).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Whether `advertise` is a `host:port` users can be told to reach.
fn valid_advertise(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && host.len() <= 255
                && host.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':')
                })
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

/// The machine's hostname (the kernel's), or "cordon" when it cannot be read.
pub fn machine_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if valid_name(&name) {
        name
    } else {
        "cordon".into()
    }
}

impl ClusterConfig {
    /// Fills in the defaults; `listen` is `[ssh] listen` (the default of `advertise`). The
    /// error names the key and why.
    pub fn load(file: ClusterFile, listen: &str) -> Result<ClusterConfig, (&'static str, String)> {
        let name = match file.name {
            Some(n) if !valid_name(&n) => {
                return Err((
                    "cluster.name",
                    format!(
                        "\"{}\" is not a host name (letters, digits, '.', '-' and '_'; at most {NAME_MAX})",
                        crate::text::printable(&n)
                    ),
                ))
            }
            Some(n) => n,
            None => machine_name(),
        };
        let advertise = match file.advertise {
            Some(a) if !valid_advertise(&a) => {
                return Err((
                    "cluster.advertise",
                    format!("\"{}\" is not host:port", crate::text::printable(&a)),
                ))
            }
            Some(a) => a,
            None => default_advertise(listen, &name),
        };
        let dur = |key: &'static str, v: Option<String>, default: &str| {
            sandbox::profile::parse_duration(v.as_deref().unwrap_or(default))
                .map(Duration::from_secs)
                .map_err(|e| (key, e.to_string()))
        };
        let heartbeat = dur("cluster.heartbeat", file.heartbeat, "2s")?;
        let lost_after = dur("cluster.lost_after", file.lost_after, "10s")?;
        if heartbeat.is_zero() {
            return Err(("cluster.heartbeat", "must be at least 1s".into()));
        }
        if lost_after < heartbeat * 2 {
            return Err((
                "cluster.lost_after",
                format!(
                    "{} s is less than two heartbeats ({} s each): a host would be lost between two of its beats",
                    lost_after.as_secs(),
                    heartbeat.as_secs()
                ),
            ));
        }
        Ok(ClusterConfig {
            name,
            advertise,
            heartbeat,
            lost_after,
        })
    }
}

/// `ssh`'s words for `host:port`: `-p PORT HOST`, or `HOST` on port 22.
pub fn ssh_target(advertise: &str) -> String {
    match advertise.rsplit_once(':') {
        Some((host, "22")) => host.trim_matches(['[', ']']).to_string(),
        Some((host, port)) => format!("-p {port} {}", host.trim_matches(['[', ']'])),
        None => advertise.to_string(),
    }
}

/// `[ssh] listen` as users reach it: an unspecified address (0.0.0.0, ::) becomes the
/// host's name.
fn default_advertise(listen: &str, name: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "::" | "", port)) => format!("{name}:{port}"),
        Some(_) => listen.to_string(),
        None => format!("{name}:22"),
    }
}

/// This host's lasting identity: a random id kept in the data directory, so that a host
/// restarted after a crash is told from another host that took its name.
pub fn host_id(data_dir: &Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("host-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() == 32 => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let bytes = crate::secrets::random_bytes(16)?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    writeln!(f, "{id}")?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, listen: &str) -> Result<ClusterConfig, (&'static str, String)> {
        ClusterConfig::load(toml::from_str(text).unwrap(), listen)
    }

    #[test]
    fn the_defaults_name_the_machine_and_advertise_the_listener() {
        let c = load("", "127.0.0.1:2222").unwrap();
        assert_eq!(c.name, machine_name());
        assert_eq!(c.advertise, "127.0.0.1:2222");
        assert_eq!(c.heartbeat, Duration::from_secs(2));
        assert_eq!(c.lost_after, Duration::from_secs(10));
        let c = load("name = \"b\"", "0.0.0.0:2200").unwrap();
        assert_eq!(c.advertise, "b:2200");
        assert_eq!(ssh_target(&c.advertise), "-p 2200 b");
    }

    #[test]
    fn a_bad_name_advertise_or_heartbeat_is_refused_naming_the_key() {
        assert_eq!(load("name = \"a b\"", "x:1").unwrap_err().0, "cluster.name");
        assert_eq!(
            load("name = \"\\u001b[2J\"", "x:1").unwrap_err().0,
            "cluster.name"
        );
        assert_eq!(
            load("advertise = \"nohost\"", "x:1").unwrap_err().0,
            "cluster.advertise"
        );
        assert_eq!(
            load("heartbeat = \"5s\"\nlost_after = \"6s\"", "x:1")
                .unwrap_err()
                .0,
            "cluster.lost_after"
        );
    }
}
