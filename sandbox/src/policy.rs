//! A [`Profile`] resolved for one run: every path made absolute and canonical, every
//! command name found on PATH, every interpreter added, the environment computed. The
//! result is a plain value: print it, diff it, serialize it; nothing here changes the
//! system. [`cache`] keeps resolutions between runs, each checked against the files it
//! looked at.

use crate::binfmt;
use crate::error::{Refusal, Step};
use crate::identity;
use crate::profile::{Limits, NetMode, Profile};
use crate::untrusted::{self, Found, Untrusted};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub mod cache;
pub mod flags;

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
    /// Trees whose files may be executed although the session can write them (the
    /// profile's `[exec] workspace` and `[exec] home`): not mounted `noexec`, and granted
    /// EXECUTE by Landlock.
    #[serde(default)]
    pub exec_beneath: Vec<ExecTree>,
    /// Network rules.
    pub network: Network,
    /// Resource limits.
    pub limits: Limits,
    /// The command's whole environment, but its secrets.
    pub env: Vec<(String, String)>,
    /// Names of the secrets the profile asks for (`[env] secrets`): their values are added
    /// to the environment at the run, from what the host hands over ([`crate::run_with_secrets`]),
    /// and appear in no policy, printout or explanation.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The command line, and the program it resolved to.
    pub argv: Vec<String>,
    /// The program `argv[0]` resolved to (canonical).
    pub program: PathBuf,
    /// Things skipped or adjusted while resolving (absent paths, names not found).
    pub notes: Vec<String>,
    /// The user the command runs as; none: as the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// No symbolic link is followed in the workspace or the home directory (see
    /// [`Request::no_links`]).
    #[serde(default)]
    pub no_links: bool,
    /// Paths inside the workspace kept read-only although the session could write them
    /// (`[filesystem] protect`): what runs outside the sandbox later. Only those beneath (or
    /// holding) a write grant: none when nothing in the workspace is writable.
    #[serde(default)]
    pub protect: Vec<crate::protect::Protected>,
}

/// The unprivileged user a confined command runs as: a cordon host gives each of its users
/// a uid of their own, so that sessions of different users cannot touch each other's files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The user id (never 0).
    pub uid: u32,
    /// The group id (never 0); also the only supplementary group.
    pub gid: u32,
    /// The name the command sees (`id -un`, `whoami`), added to its /etc/passwd.
    pub name: String,
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

/// A tree in which every file may be executed: the workspace or the home, by the profile's
/// key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecTree {
    /// The directory (canonical).
    pub path: PathBuf,
    /// Which one it is, and so which key opened it.
    pub place: Place,
}

/// The two places a profile can make executable.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// The workspace: `[exec] workspace`.
    Workspace,
    /// The home directory: `[exec] home`.
    Home,
}

impl Place {
    /// The profile key that makes this place executable.
    pub fn key(self) -> &'static str {
        match self {
            Place::Workspace => "[exec] workspace",
            Place::Home => "[exec] home",
        }
    }

    /// How the place is named to people.
    pub fn name(self) -> &'static str {
        match self {
            Place::Workspace => "the workspace",
            Place::Home => "the home directory",
        }
    }
}

/// Whether a file may be executed under a policy, and what decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecVerdict {
    /// It may run; the string names the grant (`[exec] allow "sh"`, `[exec] workspace =
    /// true`, `ELF interpreter of /usr/bin/git`).
    Allowed(String),
    /// It may not run, and why.
    Refused(NotExecutable),
}

/// Why a file may not be executed: which layer refuses it, and which profile key would
/// change that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotExecutable {
    /// Beneath the workspace or the home, which this profile does not make executable.
    Place {
        /// Which place.
        place: Place,
        /// The profile.
        profile: String,
    },
    /// Beneath another write grant, whose mount is always `noexec`.
    Writable {
        /// The write grant.
        grant: PathBuf,
        /// The profile.
        profile: String,
    },
    /// In the private /tmp or /dev/shm, never executable.
    Private,
    /// Readable, but not on the allowlist: Landlock refuses EXECUTE.
    NotAllowed {
        /// The profile.
        profile: String,
    },
}

impl std::fmt::Display for NotExecutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotExecutable::Place { place, profile } => write!(
                f,
                "{} is not executable under profile \"{profile}\" ({} = false)",
                place.name(),
                place.key()
            ),
            NotExecutable::Writable { grant, profile } => write!(
                f,
                "{} is writable, so mounted noexec, under profile \"{profile}\" ([filesystem] write)",
                grant.display()
            ),
            NotExecutable::Private => {
                write!(f, "the private /tmp and /dev/shm are never executable")
            }
            NotExecutable::NotAllowed { profile } => write!(
                f,
                "it is not on the exec allowlist of profile \"{profile}\" ([exec] allow)"
            ),
        }
    }
}

impl NotExecutable {
    /// What to do about it, for a refusal's hint.
    pub fn fix(&self) -> String {
        match self {
            NotExecutable::Place { place, .. } => format!(
                "set {} = true in a profile that extends this one (what the session writes there can then run), or choose a profile that has it (default, claude)",
                place.key()
            ),
            NotExecutable::Writable { grant, .. } => format!(
                "a write grant is never executable: run it from the workspace with [exec] workspace = true, or make {} a read grant",
                grant.display()
            ),
            NotExecutable::Private => {
                "build into the workspace instead, under a profile with [exec] workspace = true".into()
            }
            NotExecutable::NotAllowed { .. } => {
                "add it to [exec] allow in a profile that extends this one, or choose a profile that allows it".into()
            }
        }
    }
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
    /// What the proxy lets through (mode proxy).
    #[serde(default)]
    pub egress: crate::egress::Rules,
    /// What the proxy does with a destination no rule names (mode proxy).
    #[serde(default)]
    pub unknown: crate::profile::Unknown,
    /// Seconds an unlisted connection waits for its answer (`unknown = "ask"`).
    #[serde(default = "ask_wait_default")]
    pub ask_wait: u64,
}

fn ask_wait_default() -> u64 {
    crate::profile::ASK_WAIT_DEFAULT
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
    /// Run the command as this user (root only, or the caller's own uid and gid).
    pub identity: Option<Identity>,
    /// The workspace and the home are written by someone cordon does not trust (a host's
    /// users): neither path may contain a symbolic link, and no link beneath them is ever
    /// followed; a grant that is a link, or has one on its way, is skipped with a note.
    pub no_links: bool,
}

impl Request {
    /// A request from this process: its current directory, environment and home.
    pub fn from_process(workspace: Option<PathBuf>, command: Vec<String>) -> Request {
        let mut hide = Vec::new();
        if let Some(data) = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
        {
            hide.push(data.join("cordon"));
        } else if let Some(h) = std::env::var_os("HOME") {
            hide.push(PathBuf::from(h).join(".local/share/cordon"));
        }
        Request {
            workspace,
            command,
            home: None,
            env: std::env::vars_os().collect(),
            hide,
            inspect: false,
            identity: None,
            no_links: false,
        }
    }
}

impl Policy {
    /// Resolves `profile` for `req`. Fails when the identity, the workspace or the program
    /// cannot be used.
    pub fn resolve(profile: &Profile, req: &Request) -> Result<Policy, Refusal> {
        Self::resolve_with(profile, req, None)
    }

    /// [`Policy::resolve`] through `cache`: a resolution whose every dependency is
    /// unchanged is taken from it, any other is made afresh and stored (see
    /// [`cache`]). What depends on the workspace's contents (its protected paths) and the
    /// environment are never cached: they are computed on each call. `req.inspect` skips
    /// the cache.
    pub fn resolve_cached(
        profile: &Profile,
        req: &Request,
        cache: &cache::Store,
    ) -> Result<Policy, Refusal> {
        Self::resolve_with(profile, req, Some(cache))
    }

    fn resolve_with(
        profile: &Profile,
        req: &Request,
        cache: Option<&cache::Store>,
    ) -> Result<Policy, Refusal> {
        let caller = identity::Caller::current();
        if let Some(id) = &req.identity {
            identity::check(id, caller)?;
        }
        let (workspace, home, untrusted) = places(req)?;
        if let Some(id) = &req.identity {
            if !identity::valid_home(&home) {
                return Err(Refusal::new(
                    Step::Identity,
                    format!(
                        "the home directory {} cannot be written to /etc/passwd for \"{}\"",
                        home.display(),
                        id.name
                    ),
                )
                .hint("use a home path without ':' or newlines"));
            }
        }
        let cache = cache.filter(|_| !req.inspect);
        let key = cache.map(|_| cache::Key::new(profile, req, &workspace, &home, caller));
        let cached = match (cache, &key) {
            (Some(store), Some(key)) => store.load(key),
            _ => None,
        };
        let mut policy = match cached {
            Some(policy) => policy,
            None => {
                let started = std::time::SystemTime::now();
                let (policy, mut resolver) =
                    Self::resolve_paths(profile, req, workspace, home, untrusted, caller)?;
                if let (Some(store), Some(key)) = (cache, &key) {
                    store.save(key, &mut resolver, &policy, started);
                }
                policy
            }
        };
        policy.finish(profile, req)?;
        Ok(policy)
    }

    /// Everything but the protected paths and the environment: what the cache keeps.
    /// Returns the resolver too, which knows every path looked at.
    fn resolve_paths(
        profile: &Profile,
        req: &Request,
        workspace: PathBuf,
        home: PathBuf,
        untrusted: Untrusted,
        caller: identity::Caller,
    ) -> Result<(Policy, binfmt::Resolver), Refusal> {
        let mut notes = Vec::new();
        let mut resolver = binfmt::Resolver::default();
        let expand = |s: &str| expand(s, &home, &workspace);
        // How a path is named in a note: under the home as `~/...`, as the profile says it.
        let show = |p: &Path| match p.strip_prefix(&home) {
            Ok(rel) if !rel.as_os_str().is_empty() => format!("~/{}", rel.display()),
            _ => p.display().to_string(),
        };
        let link_note = |link: &Path, area: untrusted::Area| {
            format!("{} is a symbolic link; {}", show(link), area.why())
        };

        let env_set: Vec<(String, String)> = profile
            .env_set
            .iter()
            .map(|(k, v)| (k.clone(), expand(v)))
            .collect();
        let path_var = env_set
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());

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
        if let Some(f) = &profile.flags {
            flags::refuse_hidden(f, &hide)?;
        }
        // Hides are resolved trusting every link: following one only hides more. Past this
        // point, under no_links, no link beneath the home or the workspace is followed.
        for (root, _) in untrusted.roots() {
            resolver.distrust(root);
        }
        let area_of = |p: &Path| {
            untrusted
                .roots()
                .filter(|(r, _)| p.starts_with(r))
                .max_by_key(|(r, _)| r.components().count())
                .map(|(_, a)| a)
        };
        let refused_notes =
            |resolver: &mut binfmt::Resolver, what: &str, notes: &mut Vec<String>| {
                for link in resolver.take_refused() {
                    let note = format!(
                        "{what}: {}",
                        link_note(&link, area_of(&link).unwrap_or(untrusted::Area::Home))
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            };

        let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut grants = |list: &[String], kind: &str, notes: &mut Vec<String>| {
            let mut out: Vec<PathBuf> = Vec::new();
            for raw in list {
                let p = PathBuf::from(expand(raw));
                resolver.links_along(&p, &mut links);
                // A link refused on the way is reported once, by the resolution below.
                resolver.take_refused();
                resolver.note(&p);
                let found = match untrusted.resolve(&p) {
                    Found::Path(c) => Some(c),
                    Found::Missing => None,
                    Found::Link { link, area } => {
                        let on_its_way = if link == p {
                            String::new()
                        } else {
                            format!("{}: ", show(&p))
                        };
                        notes.push(format!(
                            "{kind} {on_its_way}{}; skipped",
                            link_note(&link, area)
                        ));
                        continue;
                    }
                    // The resolver agrees with the standard library (a test says so) and,
                    // unlike it, notes every link on the way for the cache.
                    Found::Elsewhere => resolver.canonicalize(&p),
                };
                refused_notes(&mut resolver, &format!("{kind} {}", show(&p)), notes);
                match found {
                    Some(c) if hide.iter().any(|h| c.starts_with(h)) => notes.push(format!(
                        "{kind} {} is hidden by cordon; skipped",
                        p.display()
                    )),
                    Some(c) => push_unique(&mut out, c),
                    None => notes.push(format!("{kind} {} does not exist; skipped", p.display())),
                }
            }
            out
        };
        if !req.inspect {
            // Given to the identity, which must be able to write its own state.
            let owner = req
                .identity
                .as_ref()
                .filter(|_| caller.is_root())
                .map(|id| (id.uid, id.gid));
            let make = untrusted::Creation {
                home: &home,
                untrusted: &untrusted,
                no_links: req.no_links,
                owner,
            };
            untrusted::create_missing_home_grants(
                &profile.write,
                &make,
                &expand,
                &show,
                &mut notes,
            );
        }
        let mut read = grants(&profile.read, "read", &mut notes);
        let write = grants(&profile.write, "write", &mut notes);
        // A read grant inside another adds nothing, unless a write grant lies between them.
        let all_read = read.clone();
        read.retain(|p| {
            !all_read.iter().any(|outer| {
                outer != p
                    && p.starts_with(outer)
                    && !write
                        .iter()
                        .any(|w| w.starts_with(outer) && p.starts_with(w))
            })
        });

        let mut exec: Vec<ExecGrant> = Vec::new();
        for entry in &profile.exec {
            let from_flag = profile.flags.as_ref().is_some_and(|f| f.execs(entry));
            // A profile entry that cannot be allowed is a note; a flag, a refusal.
            let skip = |note: String, why: &str, notes: &mut Vec<String>| {
                if from_flag {
                    return Err(crate::profile::flags::refuse("--exec", entry, why));
                }
                notes.push(note);
                Ok(())
            };
            let expanded = expand(entry);
            if entry.contains('/') {
                resolver.links_along(Path::new(&expanded), &mut links);
                resolver.take_refused();
            }
            let found = if entry.contains('/') {
                resolver.note(Path::new(&expanded));
                match untrusted.resolve(Path::new(&expanded)) {
                    Found::Path(c) => Some(c),
                    Found::Missing => None,
                    Found::Link { link, area } => {
                        let why = link_note(&link, area);
                        skip(format!("exec {entry}: {why}; skipped"), &why, &mut notes)?;
                        continue;
                    }
                    Found::Elsewhere => resolver.canonicalize(Path::new(&expanded)),
                }
            } else {
                resolver.which(entry, &path_var)
            };
            refused_notes(&mut resolver, &format!("exec \"{entry}\""), &mut notes);
            match found {
                Some(path) if hide.iter().any(|h| path.starts_with(h)) => skip(
                    format!("exec {entry} is hidden by cordon; skipped"),
                    "hidden by cordon",
                    &mut notes,
                )?,
                Some(path) => {
                    let dir = path.is_dir();
                    if !exec.iter().any(|g| g.path == path) {
                        exec.push(ExecGrant {
                            path,
                            dir,
                            reason: if from_flag {
                                format!("--exec {entry}")
                            } else {
                                format!("[exec] allow \"{entry}\"")
                            },
                            entry: Some(entry.clone()),
                        });
                    }
                }
                None if entry.contains('/') => skip(
                    format!("exec {expanded} does not exist; skipped"),
                    "no such file or directory",
                    &mut notes,
                )?,
                None => skip(
                    format!("exec \"{entry}\" is not on the profile's PATH; skipped"),
                    &format!("not found on the profile's PATH ({path_var})"),
                    &mut notes,
                )?,
            }
        }
        add_interpreters(&mut resolver, &mut exec, &mut links, &path_var);
        refused_notes(&mut resolver, "an interpreter", &mut notes);

        let argv = if req.command.is_empty() {
            profile.command.clone()
        } else {
            req.command.clone()
        };
        let mut exec_beneath = Vec::new();
        for (on, path, place) in [
            (profile.exec_workspace, &workspace, Place::Workspace),
            (profile.exec_home, &home, Place::Home),
        ] {
            if on {
                exec_beneath.push(ExecTree {
                    path: path.clone(),
                    place,
                });
            }
        }
        let rules = ExecRules {
            exec: &exec,
            trees: &exec_beneath,
            write: &write,
            workspace: &workspace,
            home: &home,
            profile: &profile.name,
        };
        let found = resolve_program(&mut resolver, &argv, &path_var, &rules);
        let passed_over = !resolver.take_refused().is_empty();
        let program = match found {
            Ok(p) => p,
            Err(r) => {
                let r = if r.step == Step::Command && passed_over {
                    r.hint("cordon does not follow links in a host's workspaces and homes: put the program itself on PATH")
                } else {
                    r
                };
                if !req.inspect {
                    return Err(r);
                }
                notes.push(format!("the command cannot run: {}", r.reason));
                PathBuf::new()
            }
        };
        for i in binfmt::interpreters(&mut resolver, &program, &path_var) {
            resolver.links_along(&i.raw, &mut links);
            if !exec.iter().any(|g| grants_exec(g, &i.path)) {
                exec.push(ExecGrant {
                    path: i.path,
                    dir: false,
                    reason: format!("{} of {}", i.kind, program.display()),
                    entry: None,
                });
            }
        }
        refused_notes(&mut resolver, "an interpreter", &mut notes);
        for dir in path_var.split(':') {
            resolver.links_along(Path::new(dir), &mut links);
        }
        refused_notes(&mut resolver, "PATH", &mut notes);

        let visible = |p: &Path| {
            read.iter().chain(write.iter()).any(|g| p.starts_with(g))
                && !hide.iter().any(|h| p.starts_with(h))
        };
        let chdir = match &profile.flags {
            Some(f) => flags::chdir(f, visible)?,
            None => None,
        };
        let cwd = if let Some(dir) = chdir {
            dir
        } else if visible(&workspace) {
            workspace.clone()
        } else if visible(&home) {
            home.clone()
        } else {
            PathBuf::from("/tmp")
        };

        let policy = Policy {
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
            exec_beneath,
            network: Network {
                mode: profile.network.mode,
                connect: profile.network.connect.clone(),
                bind: profile.network.bind.clone(),
                udp: profile.network.udp,
                egress: profile.network.egress.clone(),
                unknown: profile.network.unknown,
                ask_wait: profile.network.ask_wait,
            },
            limits: profile.limits.clone(),
            env: Vec::new(),
            secrets: profile.env_secrets.clone(),
            argv,
            program,
            notes,
            identity: req.identity.clone(),
            no_links: req.no_links,
            protect: Vec::new(),
        };
        Ok((policy, resolver))
    }

    /// What is computed on every call, cached resolution or not: the protected paths
    /// (they depend on what the workspace holds now) and the environment (the caller's,
    /// which the cache must not keep).
    fn finish(&mut self, profile: &Profile, req: &Request) -> Result<(), Refusal> {
        // Protected paths matter wherever the session can write them: in a writable
        // workspace, or beneath a write grant inside a read-only one (`--rw ws/.git` under
        // readonly), whose protected paths would otherwise be writable.
        let writes: Vec<&PathBuf> = self
            .write
            .iter()
            .filter(|w| !self.hide.iter().any(|h| w.starts_with(h)))
            .collect();
        let writes_inside = writes
            .iter()
            .any(|w| self.workspace.starts_with(w) || w.starts_with(&self.workspace));
        self.protect =
            match crate::protect::resolve(&profile.protect, &self.workspace, writes_inside) {
                Ok(list) => list
                    .into_iter()
                    .filter(|q| {
                        writes
                            .iter()
                            .any(|w| q.path.starts_with(w) || w.starts_with(&q.path))
                    })
                    .collect(),
                // `profile check` and `explain` say what a run would refuse.
                Err(r) if req.inspect => {
                    self.notes
                        .push(format!("a session would be refused: {}", r.reason));
                    Vec::new()
                }
                Err(r) => return Err(r),
            };
        if let Some(f) = &profile.flags {
            flags::refuse_protected(f, &self.protect)?;
        }
        let env_set: Vec<(String, String)> = profile
            .env_set
            .iter()
            .map(|(k, v)| (k.clone(), expand(v, &self.home, &self.workspace)))
            .collect();
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in &req.env {
            let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
                continue;
            };
            if !k.starts_with("CORDON_") && profile.env_pass.iter().any(|pat| env_matches(pat, k)) {
                env.push((k.to_string(), v.to_string()));
            }
        }
        if let Some(id) = &req.identity {
            for k in ["USER", "LOGNAME"] {
                env.retain(|(ek, _)| ek != k);
                env.push((k.to_string(), id.name.clone()));
            }
        }
        for (k, v) in env_set {
            env.retain(|(ek, _)| *ek != k);
            env.push((k, v));
        }
        if profile.network.mode == NetMode::Proxy {
            // The proxies are the only way out: neither the caller nor the profile moves them.
            let ours = crate::egress::ENVIRONMENT;
            env.retain(|(ek, _)| !ours.iter().any(|(k, _)| ek.eq_ignore_ascii_case(k)));
            env.extend(ours.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        env.sort();
        self.env = env;
        Ok(())
    }

    /// Whether `path` (canonical) may be executed under this policy.
    pub fn may_execute(&self, path: &Path) -> bool {
        matches!(self.exec_verdict(path), ExecVerdict::Allowed(_))
    }

    /// Whether `path` (canonical) may be executed, and what decides it: the grant that
    /// allows it, or the layer that refuses it (a `noexec` mount or Landlock) with the key
    /// that would change that.
    pub fn exec_verdict(&self, path: &Path) -> ExecVerdict {
        ExecRules {
            exec: &self.exec,
            trees: &self.exec_beneath,
            write: &self.write,
            workspace: &self.workspace,
            home: &self.home,
            profile: &self.profile,
        }
        .verdict(path)
    }
}

/// The parts of a policy that decide what may run (shared by [`Policy::exec_verdict`] and
/// the resolution, which decides before the policy exists).
struct ExecRules<'a> {
    exec: &'a [ExecGrant],
    trees: &'a [ExecTree],
    write: &'a [PathBuf],
    workspace: &'a Path,
    home: &'a Path,
    profile: &'a str,
}

impl ExecRules<'_> {
    fn verdict(&self, path: &Path) -> ExecVerdict {
        let profile = self.profile.to_string();
        // An allowlisted program under a write grant gets a read-only bind of its own.
        if let Some(g) = self.exec.iter().find(|g| grants_exec(g, path)) {
            return ExecVerdict::Allowed(g.reason.clone());
        }
        if let Some(t) = self.trees.iter().find(|t| path.starts_with(&t.path)) {
            return ExecVerdict::Allowed(format!("{} = true", t.place.key()));
        }
        let deepest_write = self
            .write
            .iter()
            .filter(|w| path.starts_with(w))
            .max_by_key(|w| w.components().count());
        // The deeper of the workspace and the home names the place (a workspace may lie
        // in the home).
        let place = [(self.workspace, Place::Workspace), (self.home, Place::Home)]
            .into_iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.components().count());
        match (deepest_write, place) {
            (Some(w), Some((p, place))) if w.starts_with(p) || p.starts_with(w) => {
                ExecVerdict::Refused(NotExecutable::Place { place, profile })
            }
            (Some(w), _) => ExecVerdict::Refused(NotExecutable::Writable {
                grant: w.clone(),
                profile,
            }),
            (None, Some((_, place))) if place == Place::Workspace => {
                ExecVerdict::Refused(NotExecutable::Place { place, profile })
            }
            // The sandbox's own /tmp and /dev/shm, unless a grant is bound over them (a
            // workspace under the host's /tmp is the workspace).
            _ if ["/tmp", "/dev/shm"].iter().any(|t| path.starts_with(t)) => {
                ExecVerdict::Refused(NotExecutable::Private)
            }
            _ => ExecVerdict::Refused(NotExecutable::NotAllowed { profile }),
        }
    }
}

fn resolve_program(
    r: &mut binfmt::Resolver,
    argv: &[String],
    path_var: &str,
    rules: &ExecRules,
) -> Result<PathBuf, Refusal> {
    let name = argv
        .first()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Refusal::new(Step::Command, "no command to run"))?;
    let program = r.which(name, path_var).ok_or_else(|| {
        Refusal::new(
            Step::Command,
            format!("{name}: command not found on the profile's PATH ({path_var})"),
        )
    })?;
    match rules.verdict(&program) {
        ExecVerdict::Allowed(_) => Ok(program),
        ExecVerdict::Refused(why) => Err(Refusal::new(
            Step::Exec,
            match &why {
                NotExecutable::NotAllowed { profile } => format!(
                    "{name} ({}) is not on the exec allowlist of profile \"{profile}\"",
                    program.display()
                ),
                _ => format!("{name} ({}) cannot be executed: {why}", program.display()),
            },
        )
        .hint(why.fix())),
    }
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
fn add_interpreters(
    r: &mut binfmt::Resolver,
    exec: &mut Vec<ExecGrant>,
    links: &mut Vec<(PathBuf, PathBuf)>,
    path_var: &str,
) {
    let programs: Vec<PathBuf> = exec
        .iter()
        .filter(|g| !g.dir)
        .map(|g| g.path.clone())
        .collect();
    let mut seen: Vec<PathBuf> = Vec::new();
    for program in programs {
        for i in binfmt::interpreters(r, &program, path_var) {
            if seen.contains(&i.raw) {
                continue;
            }
            r.links_along(&i.raw, links);
            seen.push(i.raw.clone());
            if !exec.iter().any(|g| grants_exec(g, &i.path)) {
                exec.push(ExecGrant {
                    path: i.path,
                    dir: false,
                    reason: format!("{} of {}", i.kind, program.display()),
                    entry: None,
                });
            }
        }
    }
}

/// The workspace (canonical), the home seen inside, and, under `no_links`, both held open
/// by descriptors reached without following any link.
fn places(req: &Request) -> Result<(PathBuf, PathBuf, Untrusted), Refusal> {
    let home = req.home.clone().or_else(home_dir).ok_or_else(|| {
        Refusal::new(
            Step::Profile,
            "cannot tell the home directory: $HOME is unset and there is no passwd entry",
        )
    })?;
    if !home.is_absolute() {
        return Err(Refusal::new(
            Step::Profile,
            format!(
                "the home directory {} is not an absolute path",
                home.display()
            ),
        )
        .hint("give --home an absolute path"));
    }
    let ws = match &req.workspace {
        Some(w) => w.clone(),
        None => std::env::current_dir()
            .map_err(|e| Refusal::os(Step::Profile, "cannot read the current directory", e))?,
    };
    let mut untrusted = Untrusted::default();
    let (workspace, home) = if req.no_links {
        let ws = if ws.is_absolute() {
            ws
        } else {
            std::env::current_dir()
                .map_err(|e| Refusal::os(Step::Profile, "cannot read the current directory", e))?
                .join(ws)
        };
        let link_refusal = |what: &str, p: &Path| {
            Refusal::new(
                Step::Profile,
                format!(
                    "the {what} {} is, or passes through, a symbolic link",
                    p.display()
                ),
            )
            .hint(
                "cordon does not follow links in a host's workspaces and homes: give the real path",
            )
        };
        let ws_fd = untrusted::open_root(&ws).map_err(|e| {
            if crate::sys::is_link_error(&e) {
                link_refusal("workspace", &ws)
            } else {
                Refusal::os(Step::Profile, format!("workspace {}", ws.display()), e)
                    .hint("give an existing directory with --workspace")
            }
        })?;
        let workspace = untrusted::fd_path(&ws_fd)
            .map_err(|e| Refusal::os(Step::Profile, format!("workspace {}", ws.display()), e))?;
        untrusted.add(workspace.clone(), ws_fd, untrusted::Area::Workspace);
        let home = match untrusted::open_root(&home) {
            Ok(fd) => {
                let real = untrusted::fd_path(&fd).map_err(|e| {
                    Refusal::os(Step::Profile, format!("home {}", home.display()), e)
                })?;
                untrusted.add(real.clone(), fd, untrusted::Area::Home);
                real
            }
            // A home that does not exist holds nothing to follow; its grants are absent.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => home,
            Err(e) if crate::sys::is_link_error(&e) => {
                return Err(link_refusal("home directory", &home))
            }
            Err(e) => {
                return Err(Refusal::os(
                    Step::Profile,
                    format!("home {}", home.display()),
                    e,
                ))
            }
        };
        (workspace, home)
    } else {
        let workspace = std::fs::canonicalize(&ws).map_err(|e| {
            Refusal::os(Step::Profile, format!("workspace {}", ws.display()), e)
                .hint("give an existing directory with --workspace")
        })?;
        if !workspace.is_dir() {
            return Err(Refusal::new(
                Step::Profile,
                format!("workspace {} is not a directory", workspace.display()),
            ));
        }
        (workspace, home)
    };
    if workspace == Path::new("/") {
        return Err(Refusal::new(
            Step::Profile,
            "the workspace cannot be / (it would grant the whole filesystem)",
        )
        .hint("run from a project directory, or pass --workspace DIR"));
    }
    Ok((workspace, home, untrusted))
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
    s.replace("{home}", &home.display().to_string())
        .replace("{workspace}", &workspace.display().to_string())
}

fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Some(h);
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_dir.is_null() {
            return None;
        }
        Some(PathBuf::from(
            std::ffi::CStr::from_ptr((*pw).pw_dir)
                .to_string_lossy()
                .into_owned(),
        ))
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
            identity: None,
            no_links: false,
        }
    }

    #[test]
    fn the_environment_is_the_profiles_list_only() {
        let ws = tempfile::tempdir().unwrap();
        let p = Policy::resolve(
            &Search::shipped_only().load("default").unwrap(),
            &request(ws.path(), &["true"]),
        )
        .unwrap();
        let names: Vec<&str> = p.env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            names.contains(&"TERM") && names.contains(&"LC_ALL") && names.contains(&"PATH"),
            "{names:?}"
        );
        assert!(
            !names.contains(&"AWS_SECRET_ACCESS_KEY") && !names.contains(&"CORDON_TOKEN"),
            "{names:?}"
        );
        assert!(p.env.contains(&("HOME".into(), "/root".into())));
    }

    #[test]
    fn in_proxy_mode_the_proxy_variables_are_the_policys_whatever_the_caller_passes() {
        let ws = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("px.toml");
        let text = "extends = \"default\"\n[env]\npass = [\"HTTPS_PROXY\", \"https_proxy\"]\n[env.set]\nHTTP_PROXY = \"http://evil:1\"\n[network]\nmode = \"proxy\"\n";
        std::fs::write(&path, text).unwrap();
        let profile = Search::shipped_only().load(path.to_str().unwrap()).unwrap();
        let mut req = request(ws.path(), &["true"]);
        req.env = vec![
            ("HTTPS_PROXY".into(), "http://evil:2".into()),
            ("https_proxy".into(), "http://evil:3".into()),
        ];
        let p = Policy::resolve(&profile, &req).unwrap();
        let get = |k: &str| {
            p.env
                .iter()
                .filter(|(ek, _)| ek == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("HTTP_PROXY"), ["http://127.0.0.1:3128"]);
        assert_eq!(get("HTTPS_PROXY"), ["http://127.0.0.1:3128"]);
        assert_eq!(get("https_proxy"), ["http://127.0.0.1:3128"]);
        assert_eq!(get("ALL_PROXY"), ["socks5h://127.0.0.1:1080"]);
        assert_eq!(get("no_proxy"), ["localhost,127.0.0.1,::1"]);
        let other =
            Policy::resolve(&Search::shipped_only().load("default").unwrap(), &req).unwrap();
        assert!(!other
            .env
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("all_proxy")));
    }

    #[test]
    fn a_program_off_the_allowlist_is_refused_at_the_exec_step() {
        let ws = tempfile::tempdir().unwrap();
        let e = Policy::resolve(
            &Search::shipped_only().load("strict").unwrap(),
            &request(ws.path(), &["bash"]),
        )
        .unwrap_err();
        assert_eq!(e.step, Step::Exec, "{e}");
        assert!(e.to_string().contains("allowlist"), "{e}");
    }

    #[test]
    fn allowlisted_programs_bring_their_loader() {
        let ws = tempfile::tempdir().unwrap();
        let p = Policy::resolve(
            &Search::shipped_only().load("strict").unwrap(),
            &request(ws.path(), &["sh"]),
        )
        .unwrap();
        assert!(
            p.exec
                .iter()
                .any(|g| g.path.to_string_lossy().contains("ld-linux")),
            "{:?}",
            p.exec
        );
        assert!(p.may_execute(&p.program));
    }

    #[test]
    fn the_workspace_is_writable_under_default_and_secrets_are_hidden() {
        let ws = tempfile::tempdir().unwrap();
        let p = Policy::resolve(
            &Search::shipped_only().load("default").unwrap(),
            &request(ws.path(), &[]),
        )
        .unwrap();
        assert!(p.write.contains(&std::fs::canonicalize(ws.path()).unwrap()));
        assert!(p.hide.contains(&PathBuf::from("/etc/shadow")));
        assert_eq!(p.argv, vec!["bash"]);
    }

    #[test]
    fn a_program_in_the_workspace_runs_under_default_and_strict_says_which_key_refuses_it() {
        let ws = tempfile::tempdir().unwrap();
        let prog = ws.path().join("a.out");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        let prog = std::fs::canonicalize(prog).unwrap();
        let p = Policy::resolve(
            &Search::shipped_only().load("default").unwrap(),
            &request(ws.path(), &[prog.to_str().unwrap()]),
        )
        .unwrap();
        assert_eq!(
            p.exec_verdict(&prog),
            ExecVerdict::Allowed("[exec] workspace = true".into())
        );
        assert_eq!(p.program, prog);

        let mut readonly = Search::shipped_only().load("readonly").unwrap();
        readonly.exec.clear();
        readonly.exec.push("sh".into());
        let e =
            Policy::resolve(&readonly, &request(ws.path(), &[prog.to_str().unwrap()])).unwrap_err();
        assert_eq!(e.step, Step::Exec, "{e}");
        assert!(
            e.reason.contains("the workspace is not executable under profile \"readonly\" ([exec] workspace = false)"),
            "{e}"
        );
        assert!(
            e.hint
                .as_deref()
                .unwrap_or("")
                .contains("set [exec] workspace = true"),
            "{e}"
        );
        let p = Policy::resolve(&readonly, &request(ws.path(), &["sh"])).unwrap();
        assert_eq!(
            p.exec_verdict(Path::new("/tmp/x")),
            ExecVerdict::Refused(NotExecutable::Private)
        );
        assert!(matches!(
            p.exec_verdict(Path::new("/usr/bin/perl")),
            ExecVerdict::Refused(NotExecutable::NotAllowed { .. })
        ));
    }

    #[test]
    fn a_writable_home_stays_non_executable_unless_exec_home_is_set() {
        let ws = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let mut profile = profile_with(&[], &["~"], &[]);
        let req = Request {
            home: Some(home.path().to_path_buf()),
            ..request(ws.path(), &["true"])
        };
        let p = Policy::resolve(&profile, &req).unwrap();
        let tool = std::fs::canonicalize(home.path()).unwrap().join("bin/tool");
        match p.exec_verdict(&tool) {
            ExecVerdict::Refused(
                why @ NotExecutable::Place {
                    place: Place::Home, ..
                },
            ) => {
                assert!(why.to_string().contains("([exec] home = false)"), "{why}")
            }
            v => panic!("{v:?}"),
        }
        profile.exec_home = true;
        let p = Policy::resolve(&profile, &req).unwrap();
        assert_eq!(
            p.exec_verdict(&tool),
            ExecVerdict::Allowed("[exec] home = true".into())
        );
    }

    #[test]
    fn a_missing_json_file_grant_is_never_created_empty() {
        let ws = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let profile = profile_with(&[], &["~/.claude.json", "~/.state/"], &[]);
        let req = Request {
            home: Some(home.path().to_path_buf()),
            ..request(ws.path(), &["true"])
        };
        let p = Policy::resolve(&profile, &req).unwrap();
        assert!(!home.path().join(".claude.json").exists());
        assert!(home.path().join(".state").is_dir());
        assert!(
            p.notes
                .iter()
                .any(|n| n
                    .contains("did not create ~/.claude.json: an empty file is not valid JSON")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn the_root_directory_is_not_a_workspace() {
        let e = Policy::resolve(
            &Search::shipped_only().load("default").unwrap(),
            &request(Path::new("/"), &["true"]),
        )
        .unwrap_err();
        assert!(e.reason.contains("cannot be /"), "{e}");
    }

    /// A caller's identity that passes the check whoever runs the tests: a fresh uid as
    /// root, one's own ids otherwise.
    fn someone() -> Identity {
        let me = identity::Caller::current();
        if me.is_root() {
            Identity {
                uid: 2_000_000_123,
                gid: 2_000_000_123,
                name: "alice".into(),
            }
        } else {
            Identity {
                uid: me.uid,
                gid: me.gid,
                name: "alice".into(),
            }
        }
    }

    /// A home holding links of every kind an attacker would plant, a workspace, and a
    /// directory outside both with a marker in it.
    struct Planted {
        home: tempfile::TempDir,
        ws: tempfile::TempDir,
        outside: tempfile::TempDir,
    }

    impl Planted {
        fn new() -> Planted {
            use std::os::unix::fs::symlink;
            let p = Planted {
                home: tempfile::tempdir().unwrap(),
                ws: tempfile::tempdir().unwrap(),
                outside: tempfile::tempdir().unwrap(),
            };
            std::fs::write(p.outside.path().join("marker"), "outside").unwrap();
            std::fs::write(p.home.path().join(".real"), "mine").unwrap();
            symlink(
                p.outside.path().join("marker"),
                p.home.path().join(".gitconfig"),
            )
            .unwrap();
            symlink(p.outside.path(), p.home.path().join(".x")).unwrap();
            symlink(p.outside.path(), p.ws.path().join("evil")).unwrap();
            p
        }

        fn request(&self, no_links: bool) -> Request {
            Request {
                home: Some(self.home.path().to_path_buf()),
                no_links,
                ..request(self.ws.path(), &["true"])
            }
        }

        fn home(&self) -> PathBuf {
            std::fs::canonicalize(self.home.path()).unwrap()
        }
    }

    fn profile_with(read: &[&str], write: &[&str], exec: &[&str]) -> Profile {
        let mut p = Search::shipped_only().load("default").unwrap();
        p.read.extend(read.iter().map(|s| s.to_string()));
        p.write.extend(write.iter().map(|s| s.to_string()));
        p.exec.extend(exec.iter().map(|s| s.to_string()));
        p
    }

    #[test]
    fn an_identity_of_root_is_refused_at_the_identity_step() {
        let ws = tempfile::tempdir().unwrap();
        let req = Request {
            identity: Some(Identity {
                uid: 0,
                gid: 0,
                name: "root".into(),
            }),
            ..request(ws.path(), &["true"])
        };
        let e =
            Policy::resolve(&Search::shipped_only().load("default").unwrap(), &req).unwrap_err();
        assert_eq!(e.step, Step::Identity, "{e}");
    }

    #[test]
    fn the_identity_is_kept_and_its_name_is_the_users_in_the_environment() {
        let ws = tempfile::tempdir().unwrap();
        let req = Request {
            identity: Some(someone()),
            ..request(ws.path(), &["true"])
        };
        let p = Policy::resolve(&Search::shipped_only().load("default").unwrap(), &req).unwrap();
        assert_eq!(p.identity, Some(someone()));
        assert!(
            p.env.contains(&("USER".into(), "alice".into()))
                && p.env.contains(&("LOGNAME".into(), "alice".into())),
            "{:?}",
            p.env
        );
    }

    #[test]
    fn a_home_that_cannot_be_a_passwd_field_is_refused_with_an_identity() {
        let ws = tempfile::tempdir().unwrap();
        let req = Request {
            identity: Some(someone()),
            home: Some("/h:/bin/sh".into()),
            ..request(ws.path(), &["true"])
        };
        let e =
            Policy::resolve(&Search::shipped_only().load("default").unwrap(), &req).unwrap_err();
        assert_eq!(e.step, Step::Identity, "{e}");
    }

    #[test]
    fn under_no_links_a_workspace_that_is_or_passes_through_a_link_is_refused_naming_it() {
        let planted = Planted::new();
        for ws in [
            planted.ws.path().join("evil"),
            planted.ws.path().join("evil/."),
        ] {
            let req = Request {
                workspace: Some(ws.clone()),
                ..planted.request(true)
            };
            let e = Policy::resolve(&Search::shipped_only().load("default").unwrap(), &req)
                .unwrap_err();
            assert_eq!(e.step, Step::Profile, "{e}");
            assert!(
                e.reason.contains(&ws.display().to_string()) && e.reason.contains("symbolic link"),
                "{e}"
            );
            assert!(
                e.hint
                    .as_deref()
                    .unwrap_or("")
                    .contains("does not follow links in a host's workspaces and homes"),
                "{e}"
            );
        }
        let req = Request {
            workspace: Some(planted.ws.path().join("evil")),
            ..planted.request(false)
        };
        let p = Policy::resolve(&Search::shipped_only().load("default").unwrap(), &req).unwrap();
        assert_eq!(
            p.workspace,
            std::fs::canonicalize(planted.outside.path()).unwrap(),
            "followed without no_links, as before"
        );
    }

    #[test]
    fn under_no_links_a_home_that_passes_through_a_link_is_refused() {
        let planted = Planted::new();
        let req = Request {
            home: Some(planted.home.path().join(".x")),
            ..planted.request(true)
        };
        let e =
            Policy::resolve(&Search::shipped_only().load("default").unwrap(), &req).unwrap_err();
        assert_eq!(e.step, Step::Profile, "{e}");
        assert!(
            e.reason.contains("home directory") && e.reason.contains("symbolic link"),
            "{e}"
        );
    }

    #[test]
    fn under_no_links_a_grant_that_is_or_passes_through_a_link_is_skipped_with_a_note() {
        let planted = Planted::new();
        let profile = profile_with(
            &["~/.real", "~/.x/marker", "{workspace}/evil"],
            &["~/.x"],
            &["~/.x/marker"],
        );
        let p = Policy::resolve(&profile, &planted.request(true)).unwrap();
        let outside = std::fs::canonicalize(planted.outside.path()).unwrap();
        for g in p
            .read
            .iter()
            .chain(&p.write)
            .chain(p.exec.iter().map(|g| &g.path))
        {
            assert!(
                !g.starts_with(&outside),
                "{} is granted: {:?}",
                g.display(),
                p.notes
            );
        }
        assert!(
            p.read.contains(&planted.home().join(".real")),
            "{:?}",
            p.read
        );
        let notes = p.notes.join("\n");
        assert!(
            notes.contains(
                "read ~/.gitconfig is a symbolic link; links under a cordon home are not followed"
            ),
            "{notes}"
        );
        assert!(notes.contains("read ~/.x/marker: ~/.x is a symbolic link; links under a cordon home are not followed"), "{notes}");
        assert!(notes.contains("write ~/.x is a symbolic link"), "{notes}");
        assert!(
            notes.contains("exec ~/.x/marker: ~/.x is a symbolic link"),
            "{notes}"
        );
        assert!(
            notes.contains("evil is a symbolic link; links in a cordon workspace are not followed"),
            "{notes}"
        );
        for n in &p.notes {
            assert!(
                !n.contains(".gitconfig is a symbolic link") || n.starts_with("read ~/.gitconfig"),
                "misattributed: {n}"
            );
        }
        assert!(p.no_links);

        let trusting = Policy::resolve(&profile, &planted.request(false)).unwrap();
        assert!(
            trusting.read.iter().any(|g| g.starts_with(&outside)),
            "without no_links links are followed, as before"
        );
    }

    #[test]
    fn under_no_links_a_program_on_path_through_a_home_link_is_passed_over() {
        let planted = Planted::new();
        let bin = planted.home.path().join(".local/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink("/usr/bin/od", bin.join("tool")).unwrap();
        let profile = profile_with(&[], &[], &["tool"]);
        let p = Policy::resolve(
            &profile,
            &Request {
                command: vec!["tool".into()],
                ..planted.request(true)
            },
        );
        let e = p.unwrap_err();
        assert_eq!(e.step, Step::Command, "{e}");
        assert!(
            e.hint
                .as_deref()
                .unwrap_or("")
                .contains("does not follow links"),
            "{e}"
        );
        let p = Policy::resolve(
            &profile,
            &Request {
                inspect: true,
                ..planted.request(true)
            },
        )
        .unwrap();
        assert!(
            !p.exec.iter().any(|g| g.path.ends_with("od")),
            "{:?}",
            p.exec
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("exec \"tool\": ~/.local/bin/tool is a symbolic link")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn under_no_links_a_missing_write_grant_is_created_in_home_and_never_through_a_link() {
        let planted = Planted::new();
        let profile = profile_with(&[], &["~/.x/new/", "~/.x/made.txt", "~/.tool/state/"], &[]);
        let req = Request {
            identity: Some(someone()),
            ..planted.request(true)
        };
        let p = Policy::resolve(&profile, &req).unwrap();
        let left: Vec<_> = std::fs::read_dir(planted.outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("marker")],
            "nothing was created outside home"
        );
        let made = planted.home().join(".tool/state");
        assert!(made.is_dir() && p.write.contains(&made), "{:?}", p.notes);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("did not create ~/.x/new: ~/.x is a symbolic link")),
            "{:?}",
            p.notes
        );
        if identity::Caller::current().is_root() {
            use std::os::unix::fs::MetadataExt;
            for d in [planted.home().join(".tool"), made] {
                assert_eq!(
                    std::fs::metadata(&d).unwrap().uid(),
                    2_000_000_123,
                    "{} belongs to the identity",
                    d.display()
                );
            }
        }
    }
}
