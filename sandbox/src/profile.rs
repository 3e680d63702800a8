//! Profiles: the TOML files that say what a confined command may read, write, run and reach.
//!
//! This module is the format: the TOML model, `extends` merging, validation, sizes and
//! durations. Where profiles are found by name is [`search`]. Neither touches the paths a
//! profile names (that is [`crate::policy`]). Every error names the file, the line and the key.

pub mod flags;
mod location;
pub mod search;

pub use flags::Flags;
pub use search::{ProfileSource, Search, SHIPPED};

use location::{key_at, line_of, line_of_key};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// One profile file as written. Unknown keys are errors.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    description: Option<String>,
    extends: Option<String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    filesystem: FsSection,
    #[serde(default)]
    exec: ExecSection,
    network: Option<NetSection>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    env: EnvSection,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct FsSection {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    hide: Vec<String>,
    #[serde(default)]
    protect: Vec<String>,
    #[serde(default)]
    unprotect: Vec<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct ExecSection {
    #[serde(default)]
    allow: Vec<String>,
    workspace: Option<bool>,
    home: Option<bool>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct NetSection {
    mode: NetMode,
    #[serde(default)]
    connect: Vec<u16>,
    #[serde(default)]
    bind: Vec<u16>,
    #[serde(default)]
    udp: bool,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    unknown: Option<Unknown>,
    ask_wait: Option<u64>,
    /// Named domain sets ([`crate::egress::sets`]) whose hosts are allowed too.
    #[serde(default)]
    include: Vec<String>,
}

/// What the proxy does with a destination no rule names (`[network] unknown`).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unknown {
    /// Refused, with the reason (the default).
    #[default]
    Deny,
    /// The connection waits while the session's owner is asked (allow once, for the
    /// session, or deny), at most `ask_wait` seconds; no answer refuses it.
    Ask,
}

/// How long an unlisted connection waits for its answer unless `ask_wait` says otherwise.
pub const ASK_WAIT_DEFAULT: u64 = 60;
/// The longest `ask_wait`: a program's connection should not hang for longer.
pub const ASK_WAIT_MAX: u64 = 600;

/// How much network a profile grants.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// A private network namespace with only loopback, and no TCP at all.
    None,
    /// The host's network, TCP restricted to the listed ports; UDP only if `udp = true`.
    Ports,
    /// A private network namespace with only loopback, where an HTTP and a SOCKS5 proxy
    /// (run outside, by the supervisor) reach the hosts `allow` names and `deny` does not.
    Proxy,
    /// The host's network, unrestricted (`"all"` is the older name).
    #[serde(alias = "all")]
    Host,
}

/// Resource limits. Every field is optional; `None` means no limit from this profile.
#[derive(Deserialize, Default, Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Processes and threads alive at once in the sandbox.
    pub processes: Option<u64>,
    /// Memory in bytes (cgroup memory limit, or RLIMIT_AS without a cgroup).
    #[serde(default, deserialize_with = "de_size")]
    pub memory: Option<u64>,
    /// Largest file the command may write, in bytes.
    #[serde(default, deserialize_with = "de_size")]
    pub file_size: Option<u64>,
    /// Open file descriptors per process.
    pub open_files: Option<u64>,
    /// CPU seconds per process.
    pub cpu_seconds: Option<u64>,
    /// Wall-clock seconds before the whole sandbox is killed.
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<u64>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct EnvSection {
    #[serde(default)]
    pass: Vec<String>,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<String>,
}

/// Network grants after merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// none, ports or all.
    pub mode: NetMode,
    /// TCP ports it may connect to (mode ports).
    pub connect: Vec<u16>,
    /// TCP ports it may listen on (mode ports).
    pub bind: Vec<u16>,
    /// UDP sockets allowed (mode ports).
    pub udp: bool,
    /// The hosts the proxy may reach, and those it may not (mode proxy); the hosts of the
    /// sets in `include` are among the allow rules, each naming its set.
    pub egress: crate::egress::Rules,
    /// What happens to a destination no rule names (mode proxy).
    pub unknown: Unknown,
    /// Seconds an unlisted connection waits for the owner's answer (`unknown = "ask"`).
    pub ask_wait: u64,
}

/// A profile after `extends` is merged: still unresolved (names, `~`, `{workspace}`).
#[derive(Debug, Clone)]
pub struct Profile {
    /// The name it was asked for (or the file's stem).
    pub name: String,
    /// The files merged, base first.
    pub sources: Vec<String>,
    /// What the profile is for.
    pub description: String,
    /// The default command.
    pub command: Vec<String>,
    /// Paths readable (unexpanded).
    pub read: Vec<String>,
    /// Paths writable (unexpanded).
    pub write: Vec<String>,
    /// Paths made invisible (an empty file or directory) even inside a readable grant.
    pub hide: Vec<String>,
    /// Paths relative to the workspace that stay read-only in a writable workspace
    /// (`[filesystem] protect`, less `unprotect`): what runs outside the sandbox later.
    pub protect: Vec<String>,
    /// The exec allowlist as written (names, files, directories).
    pub exec: Vec<String>,
    /// `[exec] workspace`: files beneath the workspace may be executed (its mount is not
    /// `noexec`, and Landlock grants EXECUTE beneath it), although the session can write
    /// them. Off unless a profile says so: W^X is kept.
    pub exec_workspace: bool,
    /// `[exec] home`: the same for the home directory.
    pub exec_home: bool,
    /// Network grants.
    pub network: NetworkRules,
    /// Resource limits.
    pub limits: Limits,
    /// Variables passed from the caller (a trailing * is a prefix).
    pub env_pass: Vec<String>,
    /// Variables set (values may hold {home} and {workspace}).
    pub env_set: BTreeMap<String, String>,
    /// Secrets the host puts in the command's environment (`[env] secrets`): names only;
    /// the values come from the host (`--secrets-fd`), never from the profile.
    pub env_secrets: Vec<String>,
    /// The ad-hoc flags layered on top (`cordon sandbox --rw ...`), kept so that the policy
    /// refuses what it would only skip for a profile entry: none for a profile alone.
    pub flags: Option<Flags>,
}

impl Profile {
    /// Whether the profile grants writing the home directory itself (`~` or `{home}` in
    /// `[filesystem] write`), not only paths beneath it: such a profile should not be run
    /// on a home whose other files matter (a host account's real home).
    pub fn writes_home(&self) -> bool {
        self.write
            .iter()
            .any(|w| matches!(w.trim_end_matches('/'), "~" | "{home}"))
    }
}

/// A profile problem: the file, the line (when known), the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The file (or `shipped:NAME`).
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// The dotted key, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ProfileError {}

impl From<ProfileError> for crate::Refusal {
    fn from(e: ProfileError) -> Self {
        crate::Refusal::new(crate::Step::Profile, e.to_string())
    }
}

fn err(
    file: &str,
    line: Option<usize>,
    key: Option<&str>,
    message: impl Into<String>,
) -> ProfileError {
    ProfileError {
        file: file.to_string(),
        line,
        key: key.map(str::to_string),
        message: message.into(),
    }
}

/// One profile's text, parsed and validated on its own; `origin` names it in errors.
fn parse(origin: &str, text: &str) -> Result<ProfileFile, ProfileError> {
    let file: ProfileFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let key = e.span().and_then(|s| key_at(text, s.start));
        err(origin, line, key.as_deref(), e.message().trim().to_string())
    })?;
    validate(origin, text, &file)?;
    Ok(file)
}

/// Checks the values serde cannot: ports, names, paths, limits.
fn validate(origin: &str, text: &str, file: &ProfileFile) -> Result<(), ProfileError> {
    let at = |path: &[&str], message: String| {
        err(
            origin,
            line_of_key(text, path),
            Some(&path.join(".")),
            message,
        )
    };
    if let Some(cmd) = &file.command {
        if cmd.is_empty() || cmd[0].is_empty() {
            return Err(at(
                &["command"],
                "must name a program: command = [\"bash\", \"-l\"]".into(),
            ));
        }
    }
    for (key, list) in [
        ("read", &file.filesystem.read),
        ("write", &file.filesystem.write),
        ("hide", &file.filesystem.hide),
    ] {
        for p in list {
            if !(p.starts_with('/')
                || p.starts_with("~/")
                || p == "~"
                || p.starts_with("{home}")
                || p.starts_with("{workspace}"))
            {
                return Err(at(
                    &["filesystem", key],
                    format!("\"{p}\" must be an absolute path, or start with ~/, {{home}} or {{workspace}}"),
                ));
            }
            if p.split('/').any(|c| c == "..") {
                return Err(at(
                    &["filesystem", key],
                    format!("\"{p}\" must not contain `..`"),
                ));
            }
        }
    }
    for (key, list) in [
        ("protect", &file.filesystem.protect),
        ("unprotect", &file.filesystem.unprotect),
    ] {
        for p in list {
            if let Some(problem) = protect_entry_problem(p) {
                return Err(at(&["filesystem", key], format!("\"{p}\" {problem}")));
            }
        }
    }
    for e in &file.exec.allow {
        if e.is_empty()
            || (e.contains('/')
                && !(e.starts_with('/') || e.starts_with("~/") || e.starts_with("{home}")))
        {
            return Err(at(
                &["exec", "allow"],
                format!("\"{e}\" must be a command name (found on PATH) or an absolute path"),
            ));
        }
    }
    if let Some(net) = &file.network {
        let proxy_only = [
            ("allow", net.allow.is_empty()),
            ("deny", net.deny.is_empty()),
            ("include", net.include.is_empty()),
        ];
        if net.mode != NetMode::Proxy {
            if let Some((key, _)) = proxy_only.iter().find(|(_, empty)| !empty) {
                return Err(at(
                    &["network", key],
                    "allow, deny and include apply only with mode = \"proxy\"".into(),
                ));
            }
        }
        if net.mode != NetMode::Proxy && (net.unknown.is_some() || net.ask_wait.is_some()) {
            return Err(at(
                &[
                    "network",
                    if net.unknown.is_some() {
                        "unknown"
                    } else {
                        "ask_wait"
                    },
                ],
                "unknown and ask_wait apply only with mode = \"proxy\"".into(),
            ));
        }
        if let Some(w) = net.ask_wait {
            if !(1..=ASK_WAIT_MAX).contains(&w) {
                return Err(at(
                    &["network", "ask_wait"],
                    format!("must be between 1 and {ASK_WAIT_MAX} seconds"),
                ));
            }
        }
        if let Err((key, entry, e)) = crate::egress::Rules::parse(&net.allow, &net.deny) {
            return Err(at(&["network", key], format!("\"{entry}\" {e}")));
        }
        if let Some(name) = net
            .include
            .iter()
            .find(|n| crate::egress::sets::find(n).is_none())
        {
            return Err(at(
                &["network", "include"],
                format!(
                    "\"{name}\" is not a domain set: the sets are {} (`cordon profile sets` lists their hosts); list other hosts in allow",
                    crate::egress::sets::names()
                ),
            ));
        }
        if net.mode != NetMode::Ports
            && (!net.connect.is_empty() || !net.bind.is_empty() || net.udp)
        {
            return Err(at(
                &["network", "mode"],
                "connect, bind and udp apply only with mode = \"ports\"".into(),
            ));
        }
        if net.mode == NetMode::Ports && net.connect.is_empty() && net.bind.is_empty() && !net.udp {
            return Err(at(
                &["network", "mode"],
                "mode = \"ports\" needs at least one port in connect or bind".into(),
            ));
        }
        if net.connect.contains(&0) {
            return Err(at(
                &["network", "connect"],
                "port 0 is not a port one can connect to".into(),
            ));
        }
    }
    let l = &file.limits;
    for (key, v) in [
        ("processes", l.processes),
        ("memory", l.memory),
        ("file_size", l.file_size),
        ("open_files", l.open_files),
        ("cpu_seconds", l.cpu_seconds),
        ("timeout", l.timeout),
    ] {
        if v == Some(0) {
            return Err(at(
                &["limits", key],
                "must be greater than zero (leave it out for no limit)".into(),
            ));
        }
    }
    if let Some(m) = l.memory {
        if m < 16 << 20 {
            return Err(at(
                &["limits", "memory"],
                "below 16 MiB nothing useful runs".into(),
            ));
        }
    }
    for name in &file.env.pass {
        let base = name.strip_suffix('*').unwrap_or(name);
        if !valid_env_name(base) && name != "*" {
            return Err(at(
                &["env", "pass"],
                format!("\"{name}\" is not a variable name (or a prefix ending in *)"),
            ));
        }
    }
    if file.env.pass.iter().any(|n| n == "*") {
        return Err(at(
            &["env", "pass"],
            "\"*\" would pass the whole host environment, secrets included; list the variables"
                .into(),
        ));
    }
    for name in &file.env.secrets {
        if let Some(problem) = crate::secrets::name_problem(name) {
            return Err(at(&["env", "secrets"], problem));
        }
    }
    for name in file.env.set.keys() {
        if !valid_env_name(name) {
            return Err(at(
                &["env", "set", name],
                format!("\"{name}\" is not a variable name"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with a `protect` or `unprotect` entry, if anything: it names a path
/// beneath the workspace, relative to it.
fn protect_entry_problem(p: &str) -> Option<&'static str> {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        Some("must name a path inside the workspace (protecting the whole workspace is `readonly`'s job)")
    } else if p.starts_with('/') || p.starts_with('~') || p.starts_with('{') {
        Some("must be relative to the workspace, like \".git/hooks/\"")
    } else if trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("must be a plain relative path (no `.`, `..` or `//`)")
    } else {
        None
    }
}

/// A protect entry without the trailing `/` that marks a directory: the form `unprotect`
/// matches on.
fn protect_key(p: &str) -> &str {
    p.trim_end_matches('/')
}

fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Merges an `extends` chain, base first, each file with its origin: lists are appended
/// (without repeats), scalars and the network section are replaced, limits are replaced one
/// by one.
fn merge(name: String, chain: Vec<(String, ProfileFile)>) -> Profile {
    let mut p = Profile {
        name,
        sources: Vec::new(),
        description: String::new(),
        command: vec!["sh".into()],
        read: Vec::new(),
        write: Vec::new(),
        hide: Vec::new(),
        protect: Vec::new(),
        exec: Vec::new(),
        exec_workspace: false,
        exec_home: false,
        network: NetworkRules {
            mode: NetMode::None,
            connect: vec![],
            bind: vec![],
            udp: false,
            egress: crate::egress::Rules::default(),
            unknown: Unknown::Deny,
            ask_wait: ASK_WAIT_DEFAULT,
        },
        limits: Limits::default(),
        env_pass: Vec::new(),
        env_set: BTreeMap::new(),
        env_secrets: Vec::new(),
        flags: None,
    };
    for (origin, f) in chain {
        layer(&mut p, origin, f);
    }
    p
}

/// Puts one validated file on top of `p`, as the next link of an `extends` chain.
fn layer(p: &mut Profile, origin: String, f: ProfileFile) {
    p.sources.push(origin);
    if let Some(d) = f.description {
        p.description = d;
    }
    if let Some(c) = f.command {
        p.command = c;
    }
    extend_unique(&mut p.read, f.filesystem.read);
    extend_unique(&mut p.write, f.filesystem.write);
    extend_unique(&mut p.hide, f.filesystem.hide);
    // A file's own `unprotect` removes what it and its parents protect; a child's
    // `protect` can add it back.
    for add in f.filesystem.protect {
        if !p
            .protect
            .iter()
            .any(|q| protect_key(q) == protect_key(&add))
        {
            p.protect.push(add);
        }
    }
    // Unprotecting a directory unprotects what lies beneath it too.
    p.protect.retain(|q| {
        !f.filesystem.unprotect.iter().any(|u| {
            let (q, u) = (protect_key(q), protect_key(u));
            q == u || q.strip_prefix(u).is_some_and(|rest| rest.starts_with('/'))
        })
    });
    extend_unique(&mut p.exec, f.exec.allow);
    p.exec_workspace = f.exec.workspace.unwrap_or(p.exec_workspace);
    p.exec_home = f.exec.home.unwrap_or(p.exec_home);
    if let Some(n) = f.network {
        // Validated already; a file that fails here never reaches the merge.
        let mut egress = crate::egress::Rules::parse(&n.allow, &n.deny).unwrap_or_default();
        for set in n
            .include
            .iter()
            .filter_map(|name| crate::egress::sets::find(name))
        {
            egress.include(set);
        }
        // The whole table is replaced, `include` with `allow`: a child that writes its
        // own [network] says everything it reaches, and never inherits a set unseen.
        p.network = NetworkRules {
            mode: n.mode,
            connect: n.connect,
            bind: n.bind,
            udp: n.udp,
            egress,
            unknown: n.unknown.unwrap_or_default(),
            ask_wait: n.ask_wait.unwrap_or(ASK_WAIT_DEFAULT),
        };
    }
    let l = f.limits;
    let pl = &mut p.limits;
    pl.processes = l.processes.or(pl.processes);
    pl.memory = l.memory.or(pl.memory);
    pl.file_size = l.file_size.or(pl.file_size);
    pl.open_files = l.open_files.or(pl.open_files);
    pl.cpu_seconds = l.cpu_seconds.or(pl.cpu_seconds);
    pl.timeout = l.timeout.or(pl.timeout);
    extend_unique(&mut p.env_pass, f.env.pass);
    p.env_set.extend(f.env.set);
    extend_unique(&mut p.env_secrets, f.env.secrets);
    p.network.connect.sort_unstable();
    p.network.connect.dedup();
    p.network.bind.sort_unstable();
    p.network.bind.dedup();
}

fn extend_unique(into: &mut Vec<String>, from: Vec<String>) {
    for item in from {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(u64),
    Text(String),
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(Some(n)),
        NumOrText::Text(s) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(Some(n)),
        NumOrText::Text(s) => parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// "512M", "2G", "1GiB", "4096" → bytes (K, M, G, T are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a size (examples: 4096, 512M, 2G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("\"{s}\" has an unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

/// "90s", "30m", "8h", "1d", "600" → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration (examples: 90s, 30m, 8h)"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("\"{s}\" has an unknown unit (use s, m, h or d)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// Writes `NAME.toml` into `dir` (shared with the search's tests).
    pub(super) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "bad",
            "description = \"x\"\n[limits]\nprocesses = 5\nmemroy = \"1G\"\n",
        );
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.key.as_deref(), Some("limits.memroy"), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        assert!(e.to_string().starts_with(&p.display().to_string()));
    }

    #[test]
    fn bad_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad", "[limits]\nmemory = \"lots\"\n");
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("limits.memory")),
            "{e}"
        );
        let p = write(
            dir.path(),
            "bad2",
            "[network]\nmode = \"ports\"\nconnect = [70000]\n",
        );
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("network.connect"), "{e}");
    }

    #[test]
    fn semantic_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "rel",
            "description = \"x\"\n\n[filesystem]\nread = [\"relative/path\"]\n",
        );
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("filesystem.read")),
            "{e}"
        );
        let p = write(dir.path(), "star", "[env]\npass = [\"*\"]\n");
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert!(e.message.contains("secrets"), "{e}");
    }

    #[test]
    fn secrets_are_names_appended_along_extends_and_never_ones_the_sandbox_controls() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "parent", "[env]\nsecrets = [\"A_KEY\"]\n");
        write(
            dir.path(),
            "child",
            "extends = \"parent\"\n[env]\nsecrets = [\"B_TOKEN\", \"A_KEY\"]\n",
        );
        let search = Search {
            dirs: vec![dir.path().to_path_buf()],
        };
        let profile = search.load("child").unwrap();
        assert_eq!(profile.env_secrets, vec!["A_KEY", "B_TOKEN"]);
        for bad in ["LD_PRELOAD", "PATH", "lower"] {
            let p = write(
                dir.path(),
                "bad",
                &format!("[env]\nsecrets = [\"{bad}\"]\n"),
            );
            let e = Search::shipped_only()
                .load(p.to_str().unwrap())
                .unwrap_err();
            assert_eq!(e.key.as_deref(), Some("env.secrets"), "{bad}: {e}");
        }
        let claude = Search::shipped_only().load("claude").unwrap();
        assert!(claude
            .env_secrets
            .contains(&"ANTHROPIC_API_KEY".to_string()));
    }

    #[test]
    fn a_bad_port_in_a_multi_line_array_names_the_array_and_the_ports_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "ports",
            "[network]\nmode = \"ports\"\nconnect = [\n  443,\n  70000,\n]\n",
        );
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(5), Some("network.connect")),
            "{e}"
        );
    }

    #[test]
    fn extends_appends_lists_and_overrides_scalars() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base", "description = \"base\"\n[exec]\nallow = [\"sh\"]\n[limits]\nprocesses = 10\nmemory = \"1G\"\n");
        write(
            dir.path(),
            "child",
            "extends = \"base\"\n[exec]\nallow = [\"git\"]\n[limits]\nprocesses = 20\n",
        );
        let s = Search {
            dirs: vec![dir.path().to_path_buf()],
        };
        let p = s.load("child").unwrap();
        assert_eq!(p.exec, vec!["sh", "git"]);
        assert_eq!(p.limits.processes, Some(20));
        assert_eq!(p.limits.memory, Some(1 << 30));
        assert_eq!(p.description, "base");
        assert_eq!(p.sources.len(), 2);
    }

    #[test]
    fn exec_beneath_the_workspace_is_off_unless_a_profile_in_the_chain_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base", "[exec]\nallow = [\"sh\"]\n");
        write(
            dir.path(),
            "on",
            "extends = \"base\"\n[exec]\nworkspace = true\n",
        );
        write(
            dir.path(),
            "off",
            "extends = \"on\"\n[exec]\nworkspace = false\n",
        );
        write(
            dir.path(),
            "kept",
            "extends = \"on\"\n[exec]\nallow = [\"git\"]\n",
        );
        let s = Search {
            dirs: vec![dir.path().to_path_buf()],
        };
        let get = |n: &str| s.load(n).unwrap();
        assert!(!get("base").exec_workspace && !get("base").exec_home);
        assert!(get("on").exec_workspace);
        assert!(!get("off").exec_workspace, "a child may turn it off again");
        assert!(
            get("kept").exec_workspace,
            "a child that does not say keeps its parent's"
        );
        let shipped = |n: &str| Search::shipped_only().load(n).unwrap();
        assert!(shipped("default").exec_workspace && shipped("claude").exec_workspace);
        for n in ["strict", "readonly", "base"] {
            assert!(
                !shipped(n).exec_workspace && !shipped(n).exec_home,
                "{n} keeps W^X"
            );
        }
        assert!(!shipped("default").exec_home && !shipped("claude").exec_home);
    }

    #[test]
    fn protected_paths_are_appended_along_extends_and_unprotect_removes_a_path_and_what_lies_beneath(
    ) {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "parent",
            "[filesystem]\nprotect = [\".git/hooks/\", \".git/config\", \".vscode/\"]\n",
        );
        write(
            dir.path(),
            "child",
            "extends = \"parent\"\n[filesystem]\nprotect = [\".envrc\", \".git/hooks\"]\nunprotect = [\".vscode\"]\n",
        );
        write(
            dir.path(),
            "nogit",
            "extends = \"child\"\n[filesystem]\nunprotect = [\".git/\"]\n",
        );
        let s = Search {
            dirs: vec![dir.path().to_path_buf()],
        };
        assert_eq!(
            s.load("child").unwrap().protect,
            vec![".git/hooks/", ".git/config", ".envrc"],
            "a repeat with or without / is the same path"
        );
        assert_eq!(s.load("nogit").unwrap().protect, vec![".envrc"]);
        let shipped = |n: &str| Search::shipped_only().load(n).unwrap().protect;
        for n in ["default", "claude", "readonly", "base"] {
            for must in [".git/hooks/", ".git/config", ".claude/settings.json"] {
                assert!(shipped(n).iter().any(|p| p == must), "{n} protects {must}");
            }
        }
    }

    #[test]
    fn a_protected_path_must_be_relative_to_the_workspace_and_plain() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "/etc/x",
            "~/.bashrc",
            "{workspace}/.git",
            "../x",
            "a/../b",
            "",
            "./",
            "a//b",
        ] {
            let p = write(
                dir.path(),
                "bad",
                &format!("[filesystem]\nprotect = [\"{bad}\"]\n"),
            );
            let e = Search::shipped_only()
                .load(p.to_str().unwrap())
                .unwrap_err();
            assert_eq!(e.key.as_deref(), Some("filesystem.protect"), "{bad}: {e}");
        }
    }

    #[test]
    fn proxy_mode_reads_allow_and_deny_rules_normalized() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "px",
            "[network]\nmode = \"proxy\"\nallow = [\"API.Anthropic.com\", \"*.example.org:443\", \"10.0.0.5:8080\"]\ndeny = [\"*.evil.com\"]\n",
        );
        let net = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap()
            .network;
        assert_eq!(net.mode, NetMode::Proxy);
        let shown: Vec<String> = net.egress.allow.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            shown,
            ["api.anthropic.com", "*.example.org:443", "10.0.0.5:8080"]
        );
        assert_eq!(net.egress.deny[0].to_string(), "*.evil.com");
    }

    #[test]
    fn a_bad_rule_names_its_key_and_entry_and_rules_need_mode_proxy() {
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str, text: &str| {
            let p = write(dir.path(), name, text);
            Search::shipped_only()
                .load(p.to_str().unwrap())
                .unwrap_err()
        };
        let e = load(
            "bad-allow",
            "[network]\nmode = \"proxy\"\nallow = [\"ok.test\", \"bücher.de\"]\n",
        );
        assert_eq!(e.key.as_deref(), Some("network.allow"), "{e}");
        assert!(
            e.message.contains("\"bücher.de\"") && e.message.contains("xn--"),
            "{e}"
        );
        let e = load(
            "bad-deny",
            "[network]\nmode = \"proxy\"\ndeny = [\"a.test:99999\"]\n",
        );
        assert_eq!(e.key.as_deref(), Some("network.deny"), "{e}");
        let e = load(
            "not-proxy",
            "[network]\nmode = \"host\"\nallow = [\"a.test\"]\n",
        );
        assert_eq!(e.key.as_deref(), Some("network.allow"), "{e}");
        assert!(e.message.contains("mode = \"proxy\""), "{e}");
    }

    #[test]
    fn unknown_destinations_are_refused_unless_the_profile_asks_and_the_wait_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str, text: &str| {
            let p = write(dir.path(), name, text);
            Search::shipped_only().load(p.to_str().unwrap())
        };
        let net = load("plain", "[network]\nmode = \"proxy\"\n")
            .unwrap()
            .network;
        assert_eq!(
            (net.unknown, net.ask_wait),
            (Unknown::Deny, ASK_WAIT_DEFAULT)
        );
        let net = load(
            "asks",
            "[network]\nmode = \"proxy\"\nunknown = \"ask\"\nask_wait = 20\n",
        )
        .unwrap()
        .network;
        assert_eq!((net.unknown, net.ask_wait), (Unknown::Ask, 20));
        for (name, text, key) in [
            (
                "too-long",
                "[network]\nmode = \"proxy\"\nunknown = \"ask\"\nask_wait = 601\n",
                "network.ask_wait",
            ),
            (
                "zero",
                "[network]\nmode = \"proxy\"\nask_wait = 0\n",
                "network.ask_wait",
            ),
            (
                "not-proxy",
                "[network]\nmode = \"none\"\nunknown = \"ask\"\n",
                "network.unknown",
            ),
        ] {
            let e = load(name, text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{name}: {e}");
        }
        let e = load(
            "maybe",
            "[network]\nmode = \"proxy\"\nunknown = \"maybe\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
    }

    fn allowed(p: &Profile) -> Vec<(String, Option<&'static str>)> {
        p.network
            .egress
            .allow
            .iter()
            .map(|r| (r.to_string(), r.set()))
            .collect()
    }

    #[test]
    fn include_adds_each_sets_hosts_after_the_profiles_own_allow_rules_naming_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "inc",
            "[network]\nmode = \"proxy\"\nallow = [\"a.test\"]\ninclude = [\"pypi\", \"crates\", \"pypi\"]\n",
        );
        let p = Search::shipped_only().load(p.to_str().unwrap()).unwrap();
        assert_eq!(
            allowed(&p),
            [
                ("a.test".to_string(), None),
                ("pypi.org".to_string(), Some("pypi")),
                ("files.pythonhosted.org".to_string(), Some("pypi")),
                ("index.crates.io".to_string(), Some("crates")),
                ("static.crates.io".to_string(), Some("crates")),
            ],
            "a set named twice is included once"
        );
        assert_eq!(p.network.egress.sets(), ["pypi", "crates"]);
    }

    #[test]
    fn include_travels_with_the_network_table_along_extends() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "parent",
            "[network]\nmode = \"proxy\"\nallow = [\"a.test\"]\ninclude = [\"npm\"]\n",
        );
        write(
            dir.path(),
            "quiet",
            "extends = \"parent\"\n[exec]\nallow = [\"sh\"]\n",
        );
        write(
            dir.path(),
            "own",
            "extends = \"parent\"\n[network]\nmode = \"proxy\"\ninclude = [\"pypi\"]\n",
        );
        let s = Search {
            dirs: vec![dir.path().to_path_buf()],
        };
        let sets = |n: &str| s.load(n).unwrap().network.egress.sets();
        assert_eq!(
            sets("quiet"),
            ["npm"],
            "a child without [network] keeps its parent's sets"
        );
        assert_eq!(
            sets("own"),
            ["pypi"],
            "a child's own [network] replaces the table, include with allow, as docs/profiles.md says"
        );
        assert_eq!(
            allowed(&s.load("own").unwrap()).len(),
            2,
            "no a.test either"
        );
    }

    #[test]
    fn an_unknown_set_is_refused_naming_the_key_the_name_and_the_sets_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "unknown",
            "[network]\nmode = \"proxy\"\ninclude = [\"npm\", \"maven\"]\n",
        );
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("network.include")),
            "{e}"
        );
        assert!(e.message.contains("\"maven\""), "{e}");
        assert!(e.message.contains("npm, pypi, crates, github"), "{e}");
        assert!(e.message.contains("cordon profile sets"), "{e}");
    }

    #[test]
    fn include_needs_mode_proxy_as_allow_does() {
        let dir = tempfile::tempdir().unwrap();
        for mode in ["none", "host"] {
            let p = write(
                dir.path(),
                mode,
                &format!("[network]\nmode = \"{mode}\"\ninclude = [\"npm\"]\n"),
            );
            let e = Search::shipped_only()
                .load(p.to_str().unwrap())
                .unwrap_err();
            assert_eq!(e.key.as_deref(), Some("network.include"), "{e}");
            assert!(e.message.contains("mode = \"proxy\""), "{e}");
        }
    }

    #[test]
    fn claude_reaches_the_registries_through_sets_and_no_more_than_before_but_yarns_name() {
        let claude = Search::shipped_only().load("claude").unwrap();
        let own = [
            "api.anthropic.com",
            "claude.ai",
            "platform.claude.com",
            "console.anthropic.com",
            "statsig.anthropic.com",
            "sentry.io",
            "raw.githubusercontent.com",
        ];
        let mut expected: Vec<(String, Option<&str>)> =
            own.iter().map(|h| (h.to_string(), None)).collect();
        for (host, set) in [
            // The hosts claude listed by hand before, each on 443 ...
            ("registry.npmjs.org", "npm"),
            // ... and the one a set adds: yarn's name for the npm registry.
            ("registry.yarnpkg.com", "npm"),
            ("pypi.org", "pypi"),
            ("files.pythonhosted.org", "pypi"),
            ("index.crates.io", "crates"),
            ("static.crates.io", "crates"),
        ] {
            expected.push((host.to_string(), Some(set)));
        }
        assert_eq!(allowed(&claude), expected);
        assert!(claude.network.egress.deny.is_empty());
    }

    #[test]
    fn mode_all_is_read_as_mode_host() {
        let dir = tempfile::tempdir().unwrap();
        let s = Search::shipped_only();
        for (name, mode) in [("old", "all"), ("new", "host")] {
            let p = write(dir.path(), name, &format!("[network]\nmode = \"{mode}\"\n"));
            assert_eq!(
                s.load(p.to_str().unwrap()).unwrap().network.mode,
                NetMode::Host
            );
        }
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("2X").is_err());
        assert_eq!(parse_duration("8h"), Ok(8 * 3600));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert!(parse_duration("soon").is_err());
    }
}
