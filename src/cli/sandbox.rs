//! The commands of the `cordon` binary that stand on the sandbox crate alone.

use sandbox::explain;
use sandbox::{Features, Identity, Policy, Profile, Refusal, Request, Search, Step};
use std::path::{Path, PathBuf};

fn refuse(r: &Refusal) -> i32 {
    // A refusal names paths and link targets, which anyone may have chosen: escaped.
    eprintln!("cordon: {}", crate::text::printable_lines(&r.to_string()));
    r.exit_code()
}

/// What `cordon sandbox` was asked for besides the profile and the command.
#[derive(Debug, Default)]
pub struct SandboxOptions {
    /// The workspace (default: the current directory).
    pub workspace: Option<PathBuf>,
    /// Print the resolved policy on stderr first.
    pub print_policy: bool,
    /// More paths to hide.
    pub hide: Vec<PathBuf>,
    /// The home seen inside (default: $HOME).
    pub home: Option<PathBuf>,
    /// The user to run as (default: the caller).
    pub identity: Option<Identity>,
    /// Follow no link in the workspace or the home.
    pub no_links: bool,
    /// The descriptor the host hands secret values through (`--secrets-fd`).
    pub secrets_fd: Option<i32>,
    /// The descriptor each egress attempt is written to as a JSON line (`--events-fd`).
    pub events_fd: Option<i32>,
    /// The descriptor the owner's answers to ask-mode questions come from (`--answers-fd`).
    pub answers_fd: Option<i32>,
    /// Whether refused connections are noted on stderr (`--no-egress-notes` turns it off).
    pub egress_notes: bool,
    /// The ad-hoc flags on top of the profile (`--ro`, `--rw`, `--exec`, `--env`, `--net`,
    /// `--chdir`), as given.
    pub flags: sandbox::profile::Flags,
    /// The caller's cordon home (`<home_root>/<account>`), used instead of `$HOME` for a
    /// profile that writes the home directory itself when no `--home` is given.
    pub cordon_home: Option<PathBuf>,
    /// Where to find the cordon home when `cordon_home` is not given: the data directory
    /// and the configuration, read only for a profile that writes the home (reading them
    /// and the account costs a start that does not need it).
    pub cordon_home_from: Option<(crate::paths::DataDir, Option<PathBuf>)>,
}

/// The home a profile that writes the whole home gets when none was given: the caller's
/// cordon home, never the account's real one (whose other files, Claude's settings among
/// them, cordon must not change). Created (0700) on a real run.
fn choose_home(
    profile: &Profile,
    options: &mut SandboxOptions,
    create: bool,
) -> Result<(), Refusal> {
    if options.home.is_some() || !profile.writes_home() {
        return Ok(());
    }
    let found = options.cordon_home.clone().or_else(|| {
        let (dir, config) = options.cordon_home_from.as_ref()?;
        crate::cordon_home(dir, config.as_deref())
    });
    let Some(home) = found else {
        if !create {
            // Inspecting writes nothing: $HOME stands in.
            return Ok(());
        }
        return Err(Refusal::new(
            Step::Profile,
            format!(
                "profile \"{}\" writes the home directory, and cordon will not give it your account's home; your cordon home could not be found (the configuration did not load)",
                profile.name
            ),
        )
        .hint("give --home DIR: a directory the profile may write"));
    };
    if create && !home.exists() {
        make_private_dir(&home).map_err(|e| {
            Refusal::os(
                Step::Profile,
                format!("creating your cordon home {}", home.display()),
                e,
            )
            .hint("give --home DIR: a directory the profile may write")
        })?;
        eprintln!(
            "cordon: profile \"{}\" writes the home directory: it gets your cordon home, {} (made now), not your account's (--home DIR chooses another)",
            profile.name,
            home.display()
        );
    }
    options.home = Some(home);
    Ok(())
}

fn make_private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = p.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(p)
}

fn resolve(
    profile: &str,
    command: Vec<String>,
    inspect: bool,
    mut options: SandboxOptions,
) -> Result<Policy, Refusal> {
    let mut profile = Search::standard().load(profile)?;
    if !options.flags.is_empty() {
        let cwd = std::env::current_dir()
            .map_err(|e| Refusal::os(Step::Profile, "cannot read the current directory", e))?;
        let flags = sandbox::policy::flags::resolve(&options.flags, &cwd)?;
        profile = profile.with_flags(&flags)?;
    }
    choose_home(&profile, &mut options, !inspect)?;
    let mut req = Request::from_process(options.workspace, command);
    req.inspect = inspect;
    req.hide.extend(options.hide);
    req.home = options.home;
    req.identity = options.identity;
    req.no_links = options.no_links;
    // Inspecting always resolves afresh; a run takes what it can from the cache.
    match sandbox::policy::cache::Store::standard().filter(|_| !inspect) {
        Some(cache) => Policy::resolve_cached(&profile, &req, &cache),
        None => Policy::resolve(&profile, &req),
    }
}

/// `cordon sandbox`: the confined command's status, or a refusal's code.
pub fn sandbox(profile: &str, options: SandboxOptions, command: Vec<String>) -> i32 {
    let print_policy = options.print_policy;
    let (events_fd, answers_fd, notes) =
        (options.events_fd, options.answers_fd, options.egress_notes);
    // Read (and closed) first: the descriptor must not outlive this step.
    let secrets = match options.secrets_fd.map(sandbox::secrets::read_fd) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("cordon: {e}");
            return sandbox::EXIT_REFUSED;
        }
    };
    let policy = match resolve(profile, command, false, options) {
        Ok(p) => p,
        Err(r) => return refuse(&r),
    };
    if print_policy {
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&policy).unwrap_or_default()
        );
    }
    if let Some(given) = &secrets {
        // A host that hands secrets over says which the profile asked for and the user has
        // not set: the session starts anyway, without them.
        for name in &policy.secrets {
            if !given.iter().any(|(k, _)| k == name) {
                eprintln!("cordon: no secret {name} is set for you or globally; this runs without it (set it with `secret set {name}` over SSH, S in the TUI, or PUT /v1/secrets/{name})");
            }
        }
    }
    let given = secrets.unwrap_or_default();
    let egress = match egress_options(events_fd, answers_fd, notes) {
        Ok(e) => e,
        Err(message) => {
            eprintln!("cordon: {message}");
            return sandbox::EXIT_REFUSED;
        }
    };
    match sandbox::run_with(&policy, &Features::detect(), &given, egress) {
        Ok(outcome) => {
            if outcome == sandbox::Outcome::TimedOut {
                eprintln!(
                    "cordon: the profile's time limit ({} s) ended the command",
                    policy.limits.timeout.unwrap_or(0)
                );
            }
            outcome.exit_code()
        }
        Err(r) => refuse(&r),
    }
}

/// The supervisor's egress settings: the events descriptor, and the resolver's overrides
/// from `CORDON_EGRESS_RESOLVE` (an operator's and the tests' knob, like curl's
/// `--resolve`; the session never sees it, its environment is the policy's).
fn egress_options(
    events_fd: Option<i32>,
    answers_fd: Option<i32>,
    notes: bool,
) -> Result<sandbox::EgressOptions, String> {
    let resolver = match std::env::var("CORDON_EGRESS_RESOLVE") {
        Ok(spec) => {
            sandbox::egress::resolve::Resolver::with_overrides(&spec).map_err(|e| e.to_string())?
        }
        Err(_) => Default::default(),
    };
    let events = events_fd
        .map(|fd| inherited(fd, "--events-fd"))
        .transpose()?;
    let answers = answers_fd
        .map(|fd| inherited(fd, "--answers-fd"))
        .transpose()?;
    Ok(sandbox::EgressOptions {
        resolver,
        events,
        answers,
        notes,
        ..Default::default()
    })
}

/// A descriptor the caller handed over (`flag FD`): owned from here, close-on-exec.
fn inherited(fd: i32, flag: &str) -> Result<std::fs::File, String> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(format!(
            "{flag} {fd}: descriptor {fd} is standard input, output or error"
        ));
    }
    // SAFETY: fcntl on an integer; an fd that is not open is refused, not taken.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(format!("{flag} {fd}: descriptor {fd} is not open"));
    }
    // SAFETY: the caller hands this descriptor over; owned from here.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// `cordon profile check`: 0 when the profile is valid (rules printed), 1 when it is not.
pub fn profile_check(
    profile: &str,
    workspace: Option<PathBuf>,
    json: bool,
    flags: sandbox::profile::Flags,
    cordon_home: Option<PathBuf>,
) -> i32 {
    match resolve(
        profile,
        Vec::new(),
        true,
        SandboxOptions {
            workspace,
            flags,
            cordon_home,
            ..SandboxOptions::default()
        },
    ) {
        Ok(policy) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&policy).unwrap_or_default()
            );
            0
        }
        Ok(policy) => {
            print!("{}", explain::rules(&policy));
            let problems = explain::cannot_enforce(&policy, &Features::detect());
            for p in &problems {
                println!("kernel    {p}");
            }
            for w in explain::warnings(&policy) {
                println!("warning   {w}");
            }
            println!("ok: profile \"{}\" is valid", policy.profile);
            0
        }
        Err(r) => {
            // Reasons and hints name paths and link targets, which anyone may have chosen.
            eprintln!("cordon: {}", crate::text::printable(&r.reason));
            if let Some(hint) = &r.hint {
                eprintln!("  hint: {}", crate::text::printable(hint));
            }
            1
        }
    }
}

/// `cordon profile explain`; with a path, whether it may run (0) or not (1).
pub fn profile_explain(
    profile: &str,
    workspace: Option<PathBuf>,
    path: Option<&Path>,
    flags: sandbox::profile::Flags,
    cordon_home: Option<PathBuf>,
) -> i32 {
    match resolve(
        profile,
        Vec::new(),
        true,
        SandboxOptions {
            workspace,
            flags,
            cordon_home,
            ..SandboxOptions::default()
        },
    ) {
        Ok(policy) => match path {
            None => {
                print!("{}", explain::explain(&policy, &Features::detect()));
                0
            }
            Some(path) => {
                // Paths inside are the host's (every grant is bound at its own place).
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
                let canonical = std::fs::canonicalize(&absolute).ok();
                let answer =
                    explain::may_run(&policy, path, canonical.as_deref().unwrap_or(&absolute));
                print!("{}", answer.text);
                i32::from(!answer.runs)
            }
        },
        Err(r) => {
            // Reasons and hints name paths and link targets, which anyone may have chosen.
            eprintln!("cordon: {}", crate::text::printable(&r.reason));
            if let Some(hint) = &r.hint {
                eprintln!("  hint: {}", crate::text::printable(hint));
            }
            1
        }
    }
}

/// `cordon profile list`.
pub fn profile_list() -> i32 {
    let search = Search::standard();
    for (name, origin) in search.list() {
        let description = search
            .load(&name)
            .map(|p| p.description)
            .unwrap_or_else(|e| format!("invalid: {e}"));
        println!("{name:<10} {description}\n{:<10} [{origin}]", "");
    }
    0
}

/// `cordon profile sets`.
pub fn profile_sets() -> i32 {
    print!("{}", explain::domain_sets());
    0
}

/// `cordon doctor`: what the kernel can enforce, then the host's own state: anything in the
/// data directory, the homes or the workspaces looser than it should be. Exits 1 when the
/// host has a problem.
pub fn doctor(json: bool, dir: &crate::paths::DataDir, config: Option<&std::path::Path>) -> i32 {
    let f = Features::detect();
    let problems = host_problems(dir, config);
    let (key_lines, overdue) = key_report(dir, config);
    if json {
        let mut v = serde_json::to_value(&f).unwrap_or_default();
        v["host_problems"] = serde_json::json!(problems);
        v["keys"] = serde_json::json!(key_lines);
        v["keys_overdue"] = serde_json::json!(overdue);
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", explain::doctor(&f));
        if problems.is_empty() {
            println!(
                "host      ok: the data directory, homes and workspaces are private ({})",
                dir.root.display()
            );
        }
        for p in &problems {
            println!("host      LOOSE: {p}");
        }
        for l in &key_lines {
            println!("keys      {l}");
        }
    }
    i32::from(!problems.is_empty() || overdue > 0)
}

/// The key hierarchy, for `doctor`: where the master key comes from, and each key's age
/// against its rotation period (an overdue key is a problem). Opens an existing key ring
/// only: doctor makes no key.
fn key_report(
    dir: &crate::paths::DataDir,
    config: Option<&std::path::Path>,
) -> (Vec<String>, usize) {
    let Ok(config) = crate::config::Config::load(config, &dir.root) else {
        return (Vec::new(), 0);
    };
    if !dir.root.join("keys/keyring.json").exists() {
        return (
            vec!["no key ring yet (made at the host's first start)".into()],
            0,
        );
    }
    let keys = match crate::keys::Keys::open(dir, &config.master) {
        Ok(k) => k,
        Err(e) => return (vec![format!("UNREADABLE: {e}")], 1),
    };
    let mut lines = vec![format!(
        "master key {} from {}",
        keys.master_id(),
        keys.master_source()
    )];
    if let crate::keys::Source::Generated(p) = keys.master_source() {
        lines.push(format!(
            "NOTE: the master key is the one cordon generated at {}; keep a key backup apart from the host (cordon key backup), or configure one (docs/security.md, \"Keys\")",
            p.display()
        ));
    }
    let (list, since) = match keys.list() {
        Ok(l) => l,
        Err(e) => return (vec![format!("UNREADABLE: {e}")], 1),
    };
    let ages = crate::keys::ages(
        &list,
        &keys.master_id(),
        since,
        crate::keys::now(),
        &config.rotation,
    );
    let mut overdue = 0;
    for a in &ages {
        let days = a.age.as_secs() / 86_400;
        if a.overdue() {
            overdue += 1;
            lines.push(format!(
                "OVERDUE: the {} key {} is {days} days old, past its {} days: run {}",
                a.key,
                a.id,
                a.period.map(|p| p.as_secs() / 86_400).unwrap_or(0),
                a.fix()
            ));
        } else {
            lines.push(format!("ok: the {} key {} is {days} days old", a.key, a.id));
        }
    }
    (lines, overdue)
}

/// What is looser than it should be: the data directory and what it holds (0700
/// directories, 0600 files), the roots of homes and workspaces and each user's folder in
/// them (0700).
fn host_problems(dir: &crate::paths::DataDir, config: Option<&std::path::Path>) -> Vec<String> {
    use crate::paths::looser_than;
    let mut out = Vec::new();
    let config = match crate::config::Config::load(config, &dir.root) {
        Ok(c) => c,
        Err(e) => return vec![format!("the configuration: {e}")],
    };
    if !dir.root.exists() {
        return out;
    }
    let mut check = |p: &std::path::Path, mode: u32| out.extend(looser_than(p, mode));
    check(&dir.root, 0o700);
    for f in [
        "cordon.db",
        "cordon.db-wal",
        "cordon.db-shm",
        "audit.log",
        "audit.head",
    ] {
        check(&dir.root.join(f), 0o600);
    }
    let keys = dir.root.join("keys");
    check(&keys, 0o700);
    for sub in [keys.clone()] {
        for e in std::fs::read_dir(&sub).into_iter().flatten().flatten() {
            let p = e.path();
            check(&p, if p.is_dir() { 0o700 } else { 0o600 });
        }
    }
    check(
        &config
            .recordings_dir
            .clone()
            .unwrap_or_else(|| dir.root.join("recordings")),
        0o700,
    );
    for root in [&config.home_root, &config.workspace_root] {
        if !root.exists() {
            continue;
        }
        check(root, 0o700);
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            check(&e.path(), 0o700);
        }
    }
    out
}
