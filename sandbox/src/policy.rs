//! A [`Profile`] resolved for one run: every path made absolute and canonical, every
//! command name found on PATH, every interpreter added, the environment computed. The
//! result is a plain value: print it, diff it, serialize it; nothing here changes the
//! system.

use crate::binfmt;
use crate::error::{Refusal, Step};
use crate::profile::{Limits, NetMode, Profile};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Paths hidden in every sandbox, whatever the profile grants: secrets of the host.
pub const ALWAYS_HIDDEN: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/cordon",
    "/var/lib/cordon",
];

/// Everything the sandbox will enforce for one command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Policy {
    /// The profile's name.
    pub profile: String,
    /// The profile files merged, base first.
    pub sources: Vec<String>,
    /// The profile's description.
    pub description: String,
    /// The workspace directory (canonical).
    pub workspace: PathBuf,
    /// The home directory seen inside.
    pub home: PathBuf,
    /// Where the command starts.
    pub cwd: PathBuf,
    /// Readable (and, for programs on the allowlist, executable) paths.
    pub read: Vec<PathBuf>,
    /// Readable and writable paths, never executable.
    pub write: Vec<PathBuf>,
    /// Paths replaced by an empty file or directory.
    pub hide: Vec<PathBuf>,
    /// Symlinks on the way to a grant (`/bin -> usr/bin`), recreated inside so that paths
    /// written through them (`#!/bin/sh`, PT_INTERP) still resolve.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Programs that may be executed, with the reason each is there.
    pub exec: Vec<ExecGrant>,
    /// Network rules.
    pub network: Network,
    /// Resource limits.
    pub limits: Limits,
    /// The command's whole environment.
    pub env: Vec<(String, String)>,
    /// The command line, and the program it resolved to.
    pub argv: Vec<String>,
    /// The program `argv[0]` resolved to (canonical).
    pub program: PathBuf,
    /// Things skipped or adjusted while resolving (absent paths, names not found).
    pub notes: Vec<String>,
}

/// One entry of the exec allowlist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecGrant {
    /// A file, or a directory when `dir` is set (canonical).
    pub path: PathBuf,
    /// A directory: every program beneath it may run.
    pub dir: bool,
    /// Why it is allowed: the profile entry, or the program whose interpreter it is.
    pub reason: String,
    /// The profile entry that allowed it (`"sh"`, `"~/.cargo/bin"`); none for interpreters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// Network rules as enforced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Network {
    /// none, ports or all.
    pub mode: NetMode,
    /// TCP ports it may connect to (mode ports).
    pub connect: Vec<u16>,
    /// TCP ports it may listen on (mode ports).
    pub bind: Vec<u16>,
    /// UDP sockets allowed (mode ports).
    pub udp: bool,
}

/// What the caller asks for, beside the profile.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The workspace directory (default: the current directory).
    pub workspace: Option<PathBuf>,
    /// The command (default: the profile's).
    pub command: Vec<String>,
    /// The home directory seen inside (default: `$HOME`, or the passwd entry).
    pub home: Option<PathBuf>,
    /// The caller's environment, filtered by the profile's `env.pass`.
    pub env: Vec<(OsString, OsString)>,
    /// More paths to hide (the host's data directory, for example).
    pub hide: Vec<PathBuf>,
    /// Resolve for inspection (`profile check`, `explain`): a command that cannot run
    /// becomes a note instead of a refusal.
    pub inspect: bool,
}

impl Request {
    /// A request from this process: its current directory, environment and home.
    pub fn from_process(workspace: Option<PathBuf>, command: Vec<String>) -> Request {
        let mut hide = Vec::new();
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
            hide.push(data.join("cordon"));
        } else if let Some(h) = std::env::var_os("HOME") {
            hide.push(PathBuf::from(h).join(".local/share/cordon"));
        }
        Request { workspace, command, home: None, env: std::env::vars_os().collect(), hide, inspect: false }
    }
}

impl Policy {
    /// Resolves `profile` for `req`. Fails when the workspace or the program cannot be used.
    pub fn resolve(profile: &Profile, req: &Request) -> Result<Policy, Refusal> {
        let home =
            req.home.clone().or_else(home_dir).ok_or_else(|| {
                Refusal::new(Step::Profile, "cannot tell the home directory: $HOME is unset and there is no passwd entry")
            })?;
        let ws = match &req.workspace {
            Some(w) => w.clone(),
            None => std::env::current_dir().map_err(|e| Refusal::os(Step::Profile, "cannot read the current directory", e))?,
        };
        let workspace = std::fs::canonicalize(&ws).map_err(|e| {
            Refusal::os(Step::Profile, format!("workspace {}", ws.display()), e).hint("give an existing directory with --workspace")
        })?;
        if !workspace.is_dir() {
            return Err(Refusal::new(Step::Profile, format!("workspace {} is not a directory", workspace.display())));
        }
        if workspace == Path::new("/") {
            return Err(Refusal::new(Step::Profile, "the workspace cannot be / (it would grant the whole filesystem)")
                .hint("run from a project directory, or pass --workspace DIR"));
        }
        let mut notes = Vec::new();
        let mut resolver = binfmt::Resolver::default();
        let expand = |s: &str| expand(s, &home, &workspace);

        let env_set: Vec<(String, String)> = profile.env_set.iter().map(|(k, v)| (k.clone(), expand(v))).collect();
        let path_var =
            env_set.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());

        let mut hide: Vec<PathBuf> = Vec::new();
        for h in ALWAYS_HIDDEN
            .iter()
            .map(PathBuf::from)
            .chain(req.hide.iter().cloned())
            .chain(profile.hide.iter().map(|h| PathBuf::from(expand(h))))
        {
            if let Some(c) = resolver.canonicalize(&h) {
                push_unique(&mut hide, c);
            }
        }

        let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut grants = |list: &[String], kind: &str, notes: &mut Vec<String>| {
            let mut out: Vec<PathBuf> = Vec::new();
            for raw in list {
                let p = PathBuf::from(expand(raw));
                resolver.links_along(&p, &mut links);
                match std::fs::canonicalize(&p) {
                    Ok(c) if hide.iter().any(|h| c.starts_with(h)) => {
                        notes.push(format!("{kind} {} is hidden by cordon; skipped", p.display()))
                    }
                    Ok(c) => push_unique(&mut out, c),
                    Err(_) => notes.push(format!("{kind} {} does not exist; skipped", p.display())),
                }
            }
            out
        };
        if !req.inspect {
            create_missing_home_grants(&profile.write, &home, &expand, &mut notes);
        }
        let mut read = grants(&profile.read, "read", &mut notes);
        let write = grants(&profile.write, "write", &mut notes);
        // A read grant inside another adds nothing, unless a write grant lies between them.
        let all_read = read.clone();
        read.retain(|p| {
            !all_read
                .iter()
                .any(|outer| outer != p && p.starts_with(outer) && !write.iter().any(|w| w.starts_with(outer) && p.starts_with(w)))
        });

        let mut exec: Vec<ExecGrant> = Vec::new();
        for entry in &profile.exec {
            let expanded = expand(entry);
            if entry.contains('/') {
                resolver.links_along(Path::new(&expanded), &mut links);
            }
            let found = if entry.contains('/') { resolver.canonicalize(Path::new(&expanded)) } else { resolver.which(entry, &path_var) };
            match found {
                Some(path) if hide.iter().any(|h| path.starts_with(h)) => notes.push(format!("exec {entry} is hidden by cordon; skipped")),
                Some(path) => {
                    let dir = path.is_dir();
                    if !exec.iter().any(|g| g.path == path) {
                        exec.push(ExecGrant { path, dir, reason: format!("[exec] allow \"{entry}\""), entry: Some(entry.clone()) });
                    }
                }
                None if entry.contains('/') => notes.push(format!("exec {expanded} does not exist; skipped")),
                None => notes.push(format!("exec \"{entry}\" is not on the profile's PATH; skipped")),
            }
        }
        add_interpreters(&mut resolver, &mut exec, &mut links, &path_var);

        let argv = if req.command.is_empty() { profile.command.clone() } else { req.command.clone() };
        let program = match resolve_program(&mut resolver, &argv, &path_var, &exec, &profile.name) {
            Ok(p) => p,
            Err(r) if req.inspect => {
                notes.push(format!("the command cannot run: {}", r.reason));
                PathBuf::new()
            }
            Err(r) => return Err(r),
        };
        for i in binfmt::interpreters(&mut resolver, &program, &path_var) {
            resolver.links_along(&i.raw, &mut links);
            if !exec.iter().any(|g| grants_exec(g, &i.path)) {
                exec.push(ExecGrant { path: i.path, dir: false, reason: format!("{} of {}", i.kind, program.display()), entry: None });
            }
        }
        for dir in path_var.split(':') {
            resolver.links_along(Path::new(dir), &mut links);
        }

        let visible = |p: &Path| read.iter().chain(write.iter()).any(|g| p.starts_with(g)) && !hide.iter().any(|h| p.starts_with(h));
        let cwd = if visible(&workspace) {
            workspace.clone()
        } else if visible(&home) {
            home.clone()
        } else {
            PathBuf::from("/tmp")
        };

        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in &req.env {
            let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else { continue };
            if !k.starts_with("CORDON_") && profile.env_pass.iter().any(|pat| env_matches(pat, k)) {
                env.push((k.to_string(), v.to_string()));
            }
        }
        for (k, v) in env_set {
            env.retain(|(ek, _)| *ek != k);
            env.push((k, v));
        }
        env.sort();

        Ok(Policy {
            profile: profile.name.clone(),
            sources: profile.sources.clone(),
            description: profile.description.clone(),
            workspace,
            home,
            cwd,
            read,
            write,
            hide,
            links,
            exec,
            network: Network {
                mode: profile.network.mode,
                connect: profile.network.connect.clone(),
                bind: profile.network.bind.clone(),
                udp: profile.network.udp,
            },
            limits: profile.limits.clone(),
            env,
            argv,
            program,
            notes,
        })
    }

    /// Whether `path` (canonical) may be executed under this policy.
    pub fn may_execute(&self, path: &Path) -> bool {
        self.exec.iter().any(|g| grants_exec(g, path))
    }
}

fn resolve_program(
    r: &mut binfmt::Resolver,
    argv: &[String],
    path_var: &str,
    exec: &[ExecGrant],
    profile: &str,
) -> Result<PathBuf, Refusal> {
    let name = argv.first().filter(|a| !a.is_empty()).ok_or_else(|| Refusal::new(Step::Command, "no command to run"))?;
    let program = r
        .which(name, path_var)
        .ok_or_else(|| Refusal::new(Step::Command, format!("{name}: command not found on the profile's PATH ({path_var})")))?;
    if !exec.iter().any(|g| grants_exec(g, &program)) {
        return Err(Refusal::new(
            Step::Exec,
            format!("{} ({}) is not on the exec allowlist of profile \"{}\"", name, program.display(), profile),
        )
        .hint("add it to [exec] allow in a profile that extends this one, or choose a profile that allows it"));
    }
    Ok(program)
}

fn grants_exec(g: &ExecGrant, path: &Path) -> bool {
    if g.dir {
        path.starts_with(&g.path)
    } else {
        g.path == path
    }
}

/// Adds the ELF and script interpreters of every allowlisted file. Directories are not
/// scanned: their programs run with the loaders the allowlist already holds, and a script
/// interpreter they need must be listed (a directory should not quietly allow perl).
fn add_interpreters(r: &mut binfmt::Resolver, exec: &mut Vec<ExecGrant>, links: &mut Vec<(PathBuf, PathBuf)>, path_var: &str) {
    let programs: Vec<PathBuf> = exec.iter().filter(|g| !g.dir).map(|g| g.path.clone()).collect();
    let mut seen: Vec<PathBuf> = Vec::new();
    for program in programs {
        for i in binfmt::interpreters(r, &program, path_var) {
            if seen.contains(&i.raw) {
                continue;
            }
            r.links_along(&i.raw, links);
            seen.push(i.raw.clone());
            if !exec.iter().any(|g| grants_exec(g, &i.path)) {
                exec.push(ExecGrant { path: i.path, dir: false, reason: format!("{} of {}", i.kind, program.display()), entry: None });
            }
        }
    }
}

/// Creates the write grants under the home directory that do not exist yet (a directory
/// when the entry ends with `/`, else an empty private file), so that a tool's state
/// (`~/.claude/`) is writable on its first run. Nothing outside home is ever created.
fn create_missing_home_grants(list: &[String], home: &Path, expand: &dyn Fn(&str) -> String, notes: &mut Vec<String>) {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    for raw in list {
        if !(raw.starts_with("~/") || raw.starts_with("{home}/")) {
            continue;
        }
        let p = PathBuf::from(expand(raw));
        if std::fs::symlink_metadata(&p).is_ok() || !p.starts_with(home) || p.components().any(|c| c == std::path::Component::ParentDir) {
            continue;
        }
        let made = if raw.ends_with('/') {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&p)
        } else {
            p.parent()
                .map_or(Ok(()), |d| std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d))
                .and_then(|_| std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p).map(drop))
        };
        match made {
            Ok(()) => notes.push(format!("created {} (a write grant that did not exist)", p.display())),
            Err(e) => notes.push(format!("could not create {}: {e}", p.display())),
        }
    }
}

fn env_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn push_unique(v: &mut Vec<PathBuf>, p: PathBuf) {
    if !v.contains(&p) {
        v.push(p);
    }
}

/// `~`, `~/x`, `{home}` and `{workspace}` expanded.
fn expand(s: &str, home: &Path, workspace: &Path) -> String {
    let s = if s == "~" {
        home.display().to_string()
    } else if let Some(rest) = s.strip_prefix("~/") {
        format!("{}/{rest}", home.display())
    } else {
        s.to_string()
    };
    s.replace("{home}", &home.display().to_string()).replace("{workspace}", &workspace.display().to_string())
}

fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(h);
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_dir.is_null() {
            return None;
        }
        Some(PathBuf::from(std::ffi::CStr::from_ptr((*pw).pw_dir).to_string_lossy().into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Search;

    fn request(ws: &Path, cmd: &[&str]) -> Request {
        Request {
            workspace: Some(ws.to_path_buf()),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            home: Some(PathBuf::from("/root")),
            env: vec![
                ("TERM".into(), "xterm".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "s3cr3t".into()),
                ("LC_ALL".into(), "C".into()),
                ("CORDON_TOKEN".into(), "x".into()),
            ],
            hide: vec![],
            inspect: false,
        }
    }

    #[test]
    fn the_environment_is_the_profiles_list_only() {
        let ws = tempfile::tempdir().unwrap();
        let p = Policy::resolve(&Search::shipped_only().load("default").unwrap(), &request(ws.path(), &["true"])).unwrap();
        let names: Vec<&str> = p.env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"TERM") && names.contains(&"LC_ALL") && names.contains(&"PATH"), "{names:?}");
        assert!(!names.contains(&"AWS_SECRET_ACCESS_KEY") && !names.contains(&"CORDON_TOKEN"), "{names:?}");
        assert!(p.env.contains(&("HOME".into(), "/root".into())));
    }

    #[test]
    fn a_program_off_the_allowlist_is_refused_at_the_exec_step() {
        let ws = tempfile::tempdir().unwrap();
        let e = Policy::resolve(&Search::shipped_only().load("strict").unwrap(), &request(ws.path(), &["bash"])).unwrap_err();
        assert_eq!(e.step, Step::Exec, "{e}");
        assert!(e.to_string().contains("allowlist"), "{e}");
    }

    #[test]
    fn allowlisted_programs_bring_their_loader() {
        let ws = tempfile::tempdir().unwrap();
        let p = Policy::resolve(&Search::shipped_only().load("strict").unwrap(), &request(ws.path(), &["sh"])).unwrap();
        assert!(p.exec.iter().any(|g| g.path.to_string_lossy().contains("ld-linux")), "{:?}", p.exec);
        assert!(p.may_execute(&p.program));
    }

    #[test]
    fn the_workspace_is_writable_under_default_and_secrets_are_hidden() {
        let ws = tempfile::tempdir().unwrap();
        let p = Policy::resolve(&Search::shipped_only().load("default").unwrap(), &request(ws.path(), &[])).unwrap();
        assert!(p.write.contains(&std::fs::canonicalize(ws.path()).unwrap()));
        assert!(p.hide.contains(&PathBuf::from("/etc/shadow")));
        assert_eq!(p.argv, vec!["bash"]);
    }

    #[test]
    fn the_root_directory_is_not_a_workspace() {
        let e = Policy::resolve(&Search::shipped_only().load("default").unwrap(), &request(Path::new("/"), &["true"])).unwrap_err();
        assert!(e.reason.contains("cannot be /"), "{e}");
    }
}
