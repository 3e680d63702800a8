//! `cordon serve`'s configuration (TOML, documented in docs/config.md and cordon.toml(5)).
//! Every key has a default, so no file is needed; unknown keys are errors.

use crate::auth::{Role, UnknownRole};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub detach_key: u8,
    pub detach_key_name: String,
    pub keepalive: Duration,
    /// Password logins (Argon2id, lockout after repeated failures); off by default.
    pub password_login: bool,
    /// A connection that has not logged in after this long is closed.
    pub login_grace: Duration,
    /// Connections that have not logged in yet: in all, and from one address.
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_address: usize,
    /// Logged-in connections per user, and channels (sessions, commands) per connection.
    pub max_connections_per_user: usize,
    pub max_channels: usize,
    pub default_profile: String,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub workspace_root: PathBuf,
    /// Where each user's home is (`<root>/<name>`, HOME in their sessions).
    pub home_root: PathBuf,
    /// Sessions of user id N run as uid and gid `uid_base + N` when the host is root.
    pub uid_base: u32,
    /// Concurrent sessions and `run` commands per user, by role.
    pub max_sessions: BTreeMap<String, usize>,
    /// Viewers (attached and observing) per session.
    pub max_viewers: usize,
    /// Roles whose view of other users' sessions is not filtered (by default, none: what
    /// would act on a viewer's machine is dropped for everyone but the owner).
    pub unfiltered_roles: Vec<Role>,
    /// Profiles each role may choose ("*": any).
    pub profiles: BTreeMap<String, Vec<String>>,
    pub run_timeout: Duration,
    /// Where recordings are written (default: `<data dir>/recordings`).
    pub recordings_dir: Option<PathBuf>,
    pub recording_policy: crate::record::FailurePolicy,
    /// Recordings older than this are purged (none: kept forever).
    pub retention: Option<Duration>,
    /// Record input too (never while the terminal has echo off).
    pub record_input: bool,
    /// Record sessions at all (default true).
    pub recording_enabled: bool,
    pub run_output_cap: u64,
    /// Bytes of standard input a `run` command may be given (`[runner] stdin_limit`).
    pub run_stdin_limit: u64,
    /// `[workspaces]`: the path roots users may name as a workspace.
    pub workspace_grants: WorkspaceGrants,
    /// The embedded host (`cordon` with no arguments): its OS user's name and the directory
    /// it was started in, that user's default workspace and implicitly granted to them. Not
    /// read from the file.
    pub local_workspace: Option<(String, PathBuf)>,
    /// The unix socket `cordon tui` connects to (None: off).
    pub tui_socket: Option<PathBuf>,
    /// The HTTP API: TCP address and unix socket (None: off), token signing, rate limits.
    pub api_listen: Option<String>,
    pub api_socket: Option<PathBuf>,
    pub api_signing: String,
    pub api_rate: u32,
    pub api_login_rate: u32,
    /// A request's headers must arrive within this; open HTTP connections, in all and per
    /// address.
    pub api_header_timeout: Duration,
    pub api_max_connections: usize,
    pub api_max_connections_per_address: usize,
    /// PEM certificate chain and key: the TCP listener speaks HTTPS.
    pub api_tls: Option<(PathBuf, PathBuf)>,
    /// The audit log: rotation, copies elsewhere, retention (None: kept forever).
    pub audit: crate::audit::Options,
    pub audit_retention: Option<Duration>,
    /// `[keys]`: where the master key is, and how old keys may grow.
    pub master: crate::keys::MasterConfig,
    pub rotation: crate::keys::Rotation,
    /// `[alerts]`: the rules, their containment, the webhook and syslog.
    pub alerts: crate::alerts::AlertsConfig,
    /// `[auth] totp_required`: roles whose password logins need a second factor (TOTP).
    pub totp_required: Vec<Role>,
    /// `[store]`: SQLite in the data directory (the default), elsewhere, or PostgreSQL.
    pub store: crate::store::StoreConfig,
    /// `[cluster]`: this host's name among the hosts sharing the store, where users reach
    /// it, its heartbeat.
    pub cluster: crate::cluster::ClusterConfig,
    /// `[objects]`: the S3-compatible bucket recordings are uploaded to (None: local only).
    pub objects: Option<crate::objects::ObjectsConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    ssh: SshFile,
    #[serde(default)]
    sessions: SessionsFile,
    #[serde(default)]
    runner: RunnerFile,
    #[serde(default)]
    recordings: RecordingsFile,
    #[serde(default)]
    tui: TuiFile,
    #[serde(default)]
    api: ApiFile,
    #[serde(default)]
    audit: AuditFile,
    #[serde(default)]
    workspaces: WorkspacesFile,
    #[serde(default)]
    keys: KeysFile,
    #[serde(default)]
    alerts: crate::alerts::AlertsFile,
    #[serde(default)]
    auth: AuthFile,
    #[serde(default)]
    store: crate::store::StoreFile,
    #[serde(default)]
    cluster: crate::cluster::ClusterFile,
    objects: Option<crate::objects::ObjectsFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    master_key_file: Option<PathBuf>,
    rotate_master: Option<String>,
    rotate_recording: Option<String>,
    rotate_api: Option<String>,
    rotate_secrets: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    totp_required: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WorkspacesFile {
    roles: Option<BTreeMap<String, Vec<String>>>,
    users: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    forward: Option<Vec<String>>,
    syslog_socket: Option<PathBuf>,
    segment_size: Option<String>,
    retention: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    listen: Option<String>,
    socket: Option<PathBuf>,
    signing: Option<String>,
    rate_limit: Option<u32>,
    login_rate_limit: Option<u32>,
    header_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TuiFile {
    socket: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RecordingsFile {
    dir: Option<PathBuf>,
    policy: Option<String>,
    retention: Option<String>,
    input: Option<bool>,
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SshFile {
    listen: Option<String>,
    detach_key: Option<String>,
    keepalive: Option<String>,
    password_login: Option<bool>,
    login_grace: Option<String>,
    max_unauthenticated: Option<usize>,
    max_unauthenticated_per_address: Option<usize>,
    max_connections_per_user: Option<usize>,
    max_channels: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SessionsFile {
    default_profile: Option<String>,
    idle_timeout: Option<String>,
    max_duration: Option<String>,
    workspace_root: Option<PathBuf>,
    home_root: Option<PathBuf>,
    uid_base: Option<u32>,
    max_per_user: Option<BTreeMap<String, usize>>,
    max_viewers: Option<usize>,
    unfiltered_roles: Option<Vec<String>>,
    profiles: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunnerFile {
    timeout: Option<String>,
    output_cap: Option<String>,
    stdin_limit: Option<String>,
}

/// Sessions of user id N run as uid `uid_base + N`: above the ranges of system and login
/// accounts (below 60000), of systemd's dynamic users (61184-65519), of the subordinate ids
/// useradd hands out (100000 up to 600100000) and of systemd-nspawn's containers (up to
/// 1879048191), and below 2^31.
pub const DEFAULT_UID_BASE: u32 = 2_000_000_000;
/// User ids cordon gives out at most (the uid range reserved above the base).
pub const MAX_USER_ID: u32 = 1 << 24;

/// Why the configuration was refused: the file, or the key and what is wrong with its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, or not this configuration (an unknown key, a wrong type): where
    /// (its line, when toml says) and why.
    #[error("{}{}: {}", .path.display(), .line.map(|l| format!(":{l}")).unwrap_or_default(), .source.message())]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        // Boxed: toml's error is large, and every `Result` of the configuration carries it.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key's value is not one cordon takes.
    #[error("{key}: {why}")]
    Invalid { key: &'static str, why: String },
    /// A key names a role that does not exist.
    #[error("{key}: {source}")]
    Role {
        key: &'static str,
        #[source]
        source: UnknownRole,
    },
    /// `ssh.detach_key` is not a control key.
    #[error("ssh.detach_key: {0}")]
    DetachKey(#[source] KeyError),
    /// A `[workspaces]` root cordon cannot take (`key` is `workspaces.users.NAME` or
    /// `workspaces.roles.ROLE`).
    #[error("{key}: {why}")]
    Grant { key: String, why: String },
    /// A key of `[alerts]` (named in the error).
    #[error(transparent)]
    Alerts(#[from] crate::alerts::config::AlertsConfigError),
    /// A key of `[objects]` (named in the error).
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectsConfigError),
    /// `audit.forward` names no place to forward to.
    #[error("audit.forward: {0}")]
    Forward(#[source] crate::audit::AuditError),
}

impl ConfigError {
    fn invalid(key: &'static str, why: impl std::fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            key,
            why: why.to_string(),
        }
    }
}

/// A detach key that cordon cannot watch for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("\"{0}\" is not a key (write it as ctrl-X)")]
    NotAKey(String),
    #[error("\"{0}\" is not a control key (ctrl-A .. ctrl-Z, ctrl-\\, ctrl-], ctrl-^, ctrl-_)")]
    NotAControlKey(String),
}

/// `ctrl-\` → 0x1c, `ctrl-]` → 0x1d, `ctrl-a` → 0x01.
pub fn parse_key(s: &str) -> Result<u8, KeyError> {
    let lower = s.trim().to_ascii_lowercase();
    let c = lower
        .strip_prefix("ctrl-")
        .or_else(|| lower.strip_prefix("c-"))
        .or_else(|| lower.strip_prefix('^'))
        .ok_or_else(|| KeyError::NotAKey(s.to_string()))?;
    let mut chars = c.chars();
    match (chars.next(), chars.next()) {
        (Some(ch), None) if ('@'..='_').contains(&ch.to_ascii_uppercase()) => {
            Ok(ch.to_ascii_uppercase() as u8 & 0x1f)
        }
        _ => Err(KeyError::NotAControlKey(s.to_string())),
    }
}

/// A role may not choose a profile (`[sessions] profiles`): which, and what it may choose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} may not use profile \"{profile}\" (allowed: {})",
    .role.with_article(),
    if .allowed.is_empty() { "none".to_string() } else { .allowed.join(", ") }
)]
pub struct ProfileRefused {
    pub role: Role,
    pub profile: String,
    pub allowed: Vec<String>,
}

impl Config {
    /// Whether `role` may choose `profile`.
    pub fn profile_allowed(&self, role: Role, profile: &str) -> Result<(), ProfileRefused> {
        let list = self.profiles.get(role.name()).cloned().unwrap_or_default();
        if list.iter().any(|p| p == "*" || p == profile) {
            Ok(())
        } else {
            Err(ProfileRefused {
                role,
                profile: profile.to_string(),
                allowed: list,
            })
        }
    }

    /// Reads `path` (if given) over the defaults. `data_dir` anchors the default workspace root.
    pub fn load(path: Option<&Path>, data_dir: &Path) -> Result<Config, ConfigError> {
        let file: File = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source: toml::de::Error| ConfigError::Parse {
                    path: p.to_path_buf(),
                    line: source
                        .span()
                        .map(|s| text[..s.start].matches('\n').count() + 1),
                    source: Box::new(source),
                })?
            }
            None => File::default(),
        };
        let dur = |key: &'static str, v: Option<String>, default: &str| {
            sandbox::profile::parse_duration(v.as_deref().unwrap_or(default))
                .map(Duration::from_secs)
                .map_err(|e| ConfigError::invalid(key, e))
        };
        let detach = file.ssh.detach_key.unwrap_or_else(|| "ctrl-\\".into());
        let mut max_sessions: BTreeMap<String, usize> = [
            ("admin", 20),
            ("developer", 5),
            ("auditor", 0),
            ("viewer", 0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (role, n) in file.sessions.max_per_user.unwrap_or_default() {
            role.parse::<Role>().map_err(|source| ConfigError::Role {
                key: "sessions.max_per_user",
                source,
            })?;
            max_sessions.insert(role, n);
        }
        let mut profiles: BTreeMap<String, Vec<String>> = [
            ("admin", vec!["*"]),
            ("developer", vec!["default", "claude", "readonly", "strict"]),
            ("auditor", vec![]),
            ("viewer", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        for (role, list) in file.sessions.profiles.unwrap_or_default() {
            role.parse::<Role>().map_err(|source| ConfigError::Role {
                key: "sessions.profiles",
                source,
            })?;
            profiles.insert(role, list);
        }
        // Outside the data directory, which sessions never see.
        let beside = |what: &str| {
            let parent = data_dir.parent().unwrap_or(Path::new("/"));
            parent.join(format!(
                "{}-{what}",
                data_dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("cordon")
            ))
        };
        let workspace_root = file
            .sessions
            .workspace_root
            .unwrap_or_else(|| beside("workspaces"));
        let home_root = file.sessions.home_root.unwrap_or_else(|| beside("homes"));
        for (key, p) in [
            ("sessions.workspace_root", &workspace_root),
            ("sessions.home_root", &home_root),
        ] {
            if !p.is_absolute() {
                return Err(ConfigError::invalid(
                    key,
                    format!("\"{}\" is not an absolute path", p.display()),
                ));
            }
            if p.starts_with(data_dir) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} is inside the data directory, which sessions never see; put it beside it", p.display()),
                ));
            }
        }
        let uid_base = file.sessions.uid_base.unwrap_or(DEFAULT_UID_BASE);
        if uid_base < 65536
            || uid_base
                .checked_add(MAX_USER_ID)
                .is_none_or(|top| top >= i32::MAX as u32)
        {
            return Err(ConfigError::invalid(
                "sessions.uid_base",
                format!(
                    "{uid_base} must be at least 65536 (above system and login accounts) and leave room for {MAX_USER_ID} users below 2^31"
                ),
            ));
        }
        let positive = |key: &'static str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(ConfigError::invalid(key, "must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let cluster = crate::cluster::ClusterConfig::load(
            file.cluster,
            file.ssh.listen.as_deref().unwrap_or("127.0.0.1:2222"),
        )
        .map_err(|(key, why)| ConfigError::invalid(key, why))?;
        Ok(Config {
            listen: file.ssh.listen.unwrap_or_else(|| "127.0.0.1:2222".into()),
            detach_key: parse_key(&detach).map_err(ConfigError::DetachKey)?,
            detach_key_name: detach,
            keepalive: dur("ssh.keepalive", file.ssh.keepalive, "30s")?,
            password_login: file.ssh.password_login.unwrap_or(false),
            default_profile: file
                .sessions
                .default_profile
                .unwrap_or_else(|| "default".into()),
            idle_timeout: dur("sessions.idle_timeout", file.sessions.idle_timeout, "30m")?,
            max_duration: dur("sessions.max_duration", file.sessions.max_duration, "8h")?,
            workspace_root,
            home_root,
            uid_base,
            max_sessions,
            max_viewers: positive("sessions.max_viewers", file.sessions.max_viewers, 16)?,
            unfiltered_roles: file
                .sessions
                .unfiltered_roles
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    r.parse::<Role>().map_err(|source| ConfigError::Role {
                        key: "sessions.unfiltered_roles",
                        source,
                    })
                })
                .collect::<Result<_, _>>()?,
            login_grace: dur("ssh.login_grace", file.ssh.login_grace, "30s")?,
            max_unauthenticated: positive(
                "ssh.max_unauthenticated",
                file.ssh.max_unauthenticated,
                64,
            )?,
            max_unauthenticated_per_address: positive(
                "ssh.max_unauthenticated_per_address",
                file.ssh.max_unauthenticated_per_address,
                8,
            )?,
            max_connections_per_user: positive(
                "ssh.max_connections_per_user",
                file.ssh.max_connections_per_user,
                16,
            )?,
            max_channels: positive("ssh.max_channels", file.ssh.max_channels, 10)?,
            api_header_timeout: dur("api.header_timeout", file.api.header_timeout, "10s")?,
            api_max_connections: positive("api.max_connections", file.api.max_connections, 512)?,
            api_max_connections_per_address: positive(
                "api.max_connections_per_address",
                file.api.max_connections_per_address,
                64,
            )?,
            profiles,
            run_timeout: dur("runner.timeout", file.runner.timeout, "10m")?,
            retention: match file.recordings.retention {
                Some(r) => Some(dur("recordings.retention", Some(r), "0")?),
                None => None,
            },
            record_input: file.recordings.input.unwrap_or(false),
            recording_enabled: file.recordings.enabled.unwrap_or(true),
            recordings_dir: file.recordings.dir,
            recording_policy: match file.recordings.policy.as_deref().unwrap_or("strict") {
                "strict" => crate::record::FailurePolicy::Strict,
                "best-effort" => crate::record::FailurePolicy::BestEffort,
                other => {
                    return Err(ConfigError::invalid(
                        "recordings.policy",
                        format!("\"{other}\" is not a policy (strict, best-effort)"),
                    ))
                }
            },
            tui_socket: match file.tui.socket {
                Some(p) if p.as_os_str().is_empty() => None,
                Some(p) => Some(p),
                None => Some(data_dir.join("tui.sock")),
            },
            api_listen: match file.api.listen {
                Some(l) if l.is_empty() => None,
                Some(l) => Some(l),
                None => Some("127.0.0.1:8022".into()),
            },
            api_socket: match file.api.socket {
                Some(p) if p.as_os_str().is_empty() => None,
                Some(p) => Some(p),
                None => Some(data_dir.join("api.sock")),
            },
            api_signing: match file.api.signing.as_deref().unwrap_or("eddsa") {
                s @ ("eddsa" | "hs256") => s.to_string(),
                other => {
                    return Err(ConfigError::invalid(
                        "api.signing",
                        format!("\"{other}\" is not a signing algorithm (eddsa, hs256)"),
                    ))
                }
            },
            api_rate: file.api.rate_limit.unwrap_or(100).max(1),
            api_login_rate: file.api.login_rate_limit.unwrap_or(10).max(1),
            api_tls: match (file.api.tls_cert, file.api.tls_key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::invalid(
                        "api",
                        "tls_cert and tls_key go together",
                    ))
                }
            },
            run_stdin_limit: sandbox::profile::parse_size(
                file.runner.stdin_limit.as_deref().unwrap_or("64M"),
            )
            .map_err(|e| ConfigError::invalid("runner.stdin_limit", e))?,
            workspace_grants: WorkspaceGrants::load(file.workspaces, data_dir)?,
            totp_required: file
                .auth
                .totp_required
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    r.parse::<Role>().map_err(|source| ConfigError::Role {
                        key: "auth.totp_required",
                        source,
                    })
                })
                .collect::<Result<_, _>>()?,
            store: crate::store::StoreConfig::load(file.store)
                .map_err(|(key, e)| ConfigError::invalid(key, e))?,
            local_workspace: None,
            run_output_cap: sandbox::profile::parse_size(
                file.runner.output_cap.as_deref().unwrap_or("16M"),
            )
            .map_err(|e| ConfigError::invalid("runner.output_cap", e))?,
            audit: {
                let socket = file
                    .audit
                    .syslog_socket
                    .unwrap_or_else(|| PathBuf::from("/dev/log"));
                let forward = file
                    .audit
                    .forward
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        crate::audit::sinks::Target::parse(t, &socket).map_err(ConfigError::Forward)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let segment_size = sandbox::profile::parse_size(
                    file.audit.segment_size.as_deref().unwrap_or("64M"),
                )
                .map_err(|e| ConfigError::invalid("audit.segment_size", e))?;
                if segment_size < 4096 {
                    return Err(ConfigError::invalid("audit.segment_size", "at least 4K"));
                }
                crate::audit::Options {
                    segment_size,
                    forward,
                }
            },
            audit_retention: match file.audit.retention.as_deref().unwrap_or("90d") {
                "" | "0" | "forever" => None,
                r => Some(dur("audit.retention", Some(r.to_string()), "90d")?),
            },
            master: crate::keys::MasterConfig {
                file: match file.keys.master_key_file {
                    Some(p) if !p.is_absolute() => {
                        return Err(ConfigError::invalid(
                            "keys.master_key_file",
                            format!("{} is not an absolute path", p.display()),
                        ))
                    }
                    p => p,
                },
            },
            rotation: {
                let period = |key: &'static str, v: Option<String>, default: &str| match v
                    .as_deref()
                    .unwrap_or(default)
                {
                    "" | "0" | "never" => Ok(None),
                    r => dur(key, Some(r.to_string()), default).map(Some),
                };
                crate::keys::Rotation {
                    master: period("keys.rotate_master", file.keys.rotate_master, "90d")?,
                    recording: period("keys.rotate_recording", file.keys.rotate_recording, "30d")?,
                    api: period("keys.rotate_api", file.keys.rotate_api, "30d")?,
                    secrets: period("keys.rotate_secrets", file.keys.rotate_secrets, "30d")?,
                }
            },
            alerts: crate::alerts::AlertsConfig::load(file.alerts)?,
            cluster,
            objects: crate::objects::ObjectsConfig::load(file.objects)?,
        })
    }
}

/// `[workspaces]`: the path roots granted to each role and to each user. A user may work
/// in a directory beneath any root of their role's list or of their own.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceGrants {
    /// By role name.
    pub roles: BTreeMap<String, Vec<GrantRoot>>,
    /// By user name.
    pub users: BTreeMap<String, Vec<GrantRoot>>,
}

/// One granted root as the configuration gives it: `base` is the operator's part (made
/// canonical at load when it exists: links in it are the operator's choice), `rest` the
/// components from the first one that names `{user}` on, which are the user's to control
/// and so are resolved beneath `base` without following links, at each use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRoot {
    /// Where it is configured (`workspaces.roles.developer`), for messages.
    pub key: String,
    pub base: PathBuf,
    /// `base` as written (a user may name a path through the operator's links).
    pub written: PathBuf,
    pub rest: Vec<String>,
}

/// What `{user}` stands for in a granted root.
pub const USER_PLACEHOLDER: &str = "{user}";

impl GrantRoot {
    /// Checks one configured root (absolute, no `..`, nothing but `{user}` in braces, not
    /// `/`, not in the data directory) and makes its operator's part canonical.
    fn parse(key: &str, written: &str, data_dir: &Path) -> Result<GrantRoot, ConfigError> {
        let bad = |why: String| ConfigError::Grant {
            key: key.to_string(),
            why: format!("\"{written}\" {why}"),
        };
        let path = Path::new(written);
        if !path.is_absolute() {
            return Err(bad("is not an absolute path".into()));
        }
        if written.replace(USER_PLACEHOLDER, "").contains(['{', '}']) {
            return Err(bad("has braces other than {user}".into()));
        }
        let mut base = PathBuf::from("/");
        let mut rest = Vec::new();
        for c in path.components() {
            match c {
                std::path::Component::RootDir | std::path::Component::CurDir => {}
                std::path::Component::Normal(n) => {
                    let n = n.to_string_lossy().into_owned();
                    if rest.is_empty() && !n.contains(USER_PLACEHOLDER) {
                        base.push(n);
                    } else {
                        rest.push(n);
                    }
                }
                _ => return Err(bad("has a .. component; name the directory itself".into())),
            }
        }
        if rest.is_empty() && base == Path::new("/") {
            return Err(bad(
                "would grant the whole filesystem; name a directory".into()
            ));
        }
        let written = base.clone();
        if let Ok(canonical) = std::fs::canonicalize(&base) {
            base = canonical;
        }
        let data = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        if base.starts_with(&data) || data.starts_with(&base) && rest.is_empty() {
            return Err(bad(format!(
                "holds or is inside the data directory {}, which sessions never see",
                data.display()
            )));
        }
        Ok(GrantRoot {
            key: key.to_string(),
            base,
            written,
            rest,
        })
    }

    /// The root for `user`: `{user}` replaced by their name (user names are one plain
    /// component), beneath the canonical base.
    pub fn for_user(&self, user: &str) -> PathBuf {
        self.base.join(self.rest_for(user))
    }

    /// The components beneath `base` for `user`, as a relative path.
    pub fn rest_for(&self, user: &str) -> PathBuf {
        self.rest
            .iter()
            .map(|c| c.replace(USER_PLACEHOLDER, user))
            .collect()
    }
}

impl WorkspaceGrants {
    fn load(file: WorkspacesFile, data_dir: &Path) -> Result<WorkspaceGrants, ConfigError> {
        let mut grants = WorkspaceGrants::default();
        for (role, list) in file.roles.unwrap_or_default() {
            let key = format!("workspaces.roles.{role}");
            let parsed = role.parse::<Role>().map_err(|e| ConfigError::Grant {
                key: key.clone(),
                why: e.to_string(),
            })?;
            let roots = list
                .iter()
                .map(|w| GrantRoot::parse(&key, w, data_dir))
                .collect::<Result<_, _>>()?;
            grants.roles.insert(parsed.name().to_string(), roots);
        }
        for (user, list) in file.users.unwrap_or_default() {
            let key = format!("workspaces.users.{user}");
            let roots = list
                .iter()
                .map(|w| GrantRoot::parse(&key, w, data_dir))
                .collect::<Result<_, _>>()?;
            grants.users.insert(user, roots);
        }
        Ok(grants)
    }

    /// The roots granted to `user` in `role`: their own, then their role's.
    pub fn roots(&self, user: &str, role: Role) -> Vec<&GrantRoot> {
        self.users
            .get(user)
            .into_iter()
            .chain(self.roles.get(role.name()))
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference block of docs/config.md (what install.sh writes, commented, to
    /// /etc/cordon/cordon.toml).
    fn documented() -> String {
        let doc = include_str!("../docs/config.md");
        let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        doc[start..end].to_string()
    }

    #[test]
    fn every_key_the_configuration_reference_documents_loads_with_its_example_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cordon.toml");
        std::fs::write(&file, documented()).unwrap();
        let c = Config::load(Some(&file), &dir.path().join("data"))
            .unwrap_or_else(|e| panic!("docs/config.md's example does not load: {e}"));
        assert_eq!(c.listen, "127.0.0.1:2222");
        assert_eq!(c.max_viewers, 16);
    }

    #[test]
    fn the_commented_reference_install_sh_writes_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cordon.toml");
        let commented: String = documented().lines().map(|l| format!("# {l}\n")).collect();
        std::fs::write(&file, commented).unwrap();
        let data = dir.path().join("data");
        let c = Config::load(Some(&file), &data).unwrap();
        let d = Config::load(None, &data).unwrap();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    #[test]
    fn control_keys_parse() {
        assert_eq!(parse_key("ctrl-\\"), Ok(0x1c));
        assert_eq!(parse_key("ctrl-]"), Ok(0x1d));
        assert_eq!(parse_key("ctrl-a"), Ok(0x01));
        assert!(parse_key("alt-x").is_err());
    }

    #[test]
    fn defaults_need_no_file_and_unknown_keys_are_refused() {
        let c = Config::load(None, Path::new("/var/lib/cordon")).unwrap();
        assert_eq!(c.listen, "127.0.0.1:2222");
        assert_eq!(c.idle_timeout, Duration::from_secs(1800));
        assert_eq!(
            c.workspace_root,
            PathBuf::from("/var/lib/cordon-workspaces")
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[ssh]\nlisten = \"127.0.0.1:2200\"\nlisen = 1\n").unwrap();
        let e = Config::load(Some(&p), dir.path()).unwrap_err().to_string();
        assert!(e.contains(":3") && e.contains("lisen"), "{e}");
    }

    #[test]
    fn workspace_grants_are_checked_at_load_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let p = dir.path().join("c.toml");
        for (toml, key, words) in [
            (
                "users.alice = [\"src\"]",
                "workspaces.users.alice",
                "not an absolute path",
            ),
            (
                "roles.developer = [\"/srv/../etc\"]",
                "workspaces.roles.developer",
                "..",
            ),
            (
                "roles.wizard = [\"/srv\"]",
                "workspaces.roles.wizard",
                "wizard",
            ),
            (
                "users.bob = [\"/\"]",
                "workspaces.users.bob",
                "whole filesystem",
            ),
            (
                "users.bob = [\"/srv/{name}\"]",
                "workspaces.users.bob",
                "braces",
            ),
        ] {
            std::fs::write(&p, format!("[workspaces]\n{toml}\n")).unwrap();
            let e = Config::load(Some(&p), &data).unwrap_err().to_string();
            assert!(e.starts_with(key) && e.contains(words), "{toml}: {e}");
        }
        std::fs::write(
            &p,
            format!(
                "[workspaces]\nusers.bob = [\"{}\"]\n",
                data.join("x").display()
            ),
        )
        .unwrap();
        let e = Config::load(Some(&p), &data).unwrap_err().to_string();
        assert!(e.contains("data directory"), "{e}");
    }

    #[test]
    fn a_granted_roots_operator_part_is_made_canonical_and_user_is_substituted_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            format!(
                "[workspaces]\nroles.developer = [\"{}/link/{{user}}/src\"]\nusers.alice = [\"{}/link\"]\n",
                dir.path().display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let c = Config::load(Some(&p), &dir.path().join("data")).unwrap();
        let canonical = std::fs::canonicalize(&real).unwrap();
        let roots = c.workspace_grants.roots("alice", Role::Developer);
        assert_eq!(roots.len(), 2);
        assert_eq!(roots[0].for_user("alice"), canonical);
        assert_eq!(roots[1].base, canonical);
        assert_eq!(roots[1].for_user("alice"), canonical.join("alice/src"));
        assert_eq!(c.workspace_grants.roots("bob", Role::Viewer).len(), 0);
    }
}
