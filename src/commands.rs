//! The commands of the `cordon` binary that stand on the sandbox crate alone.

use sandbox::explain;
use sandbox::{Features, Identity, Policy, Refusal, Request, Search};
use std::path::PathBuf;

fn refuse(r: &Refusal) -> i32 {
    eprintln!("cordon: {r}");
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
}

fn resolve(profile: &str, command: Vec<String>, inspect: bool, options: SandboxOptions) -> Result<Policy, Refusal> {
    let profile = Search::standard().load(profile)?;
    let mut req = Request::from_process(options.workspace, command);
    req.inspect = inspect;
    req.hide.extend(options.hide);
    req.home = options.home;
    req.identity = options.identity;
    req.no_links = options.no_links;
    Policy::resolve(&profile, &req)
}

/// `cordon sandbox`: the confined command's status, or a refusal's code.
pub fn sandbox(profile: &str, options: SandboxOptions, command: Vec<String>) -> i32 {
    let print_policy = options.print_policy;
    let policy = match resolve(profile, command, false, options) {
        Ok(p) => p,
        Err(r) => return refuse(&r),
    };
    if print_policy {
        eprintln!("{}", serde_json::to_string_pretty(&policy).unwrap_or_default());
    }
    match sandbox::run(&policy, &Features::detect()) {
        Ok(outcome) => {
            if outcome == sandbox::Outcome::TimedOut {
                eprintln!("cordon: the profile's time limit ({} s) ended the command", policy.limits.timeout.unwrap_or(0));
            }
            outcome.exit_code()
        }
        Err(r) => refuse(&r),
    }
}

/// `cordon profile check`: 0 when the profile is valid (rules printed), 1 when it is not.
pub fn profile_check(profile: &str, workspace: Option<PathBuf>, json: bool) -> i32 {
    match resolve(profile, Vec::new(), true, SandboxOptions { workspace, ..SandboxOptions::default() }) {
        Ok(policy) if json => {
            println!("{}", serde_json::to_string_pretty(&policy).unwrap_or_default());
            0
        }
        Ok(policy) => {
            print!("{}", explain::rules(&policy));
            let problems = explain::cannot_enforce(&policy, &Features::detect());
            for p in &problems {
                println!("kernel    {p}");
            }
            println!("ok: profile \"{}\" is valid", policy.profile);
            0
        }
        Err(r) => {
            eprintln!("cordon: {}", r.reason);
            1
        }
    }
}

/// `cordon profile explain`.
pub fn profile_explain(profile: &str, workspace: Option<PathBuf>) -> i32 {
    match resolve(profile, Vec::new(), true, SandboxOptions { workspace, ..SandboxOptions::default() }) {
        Ok(policy) => {
            print!("{}", explain::explain(&policy, &Features::detect()));
            0
        }
        Err(r) => {
            eprintln!("cordon: {}", r.reason);
            1
        }
    }
}

/// `cordon profile list`.
pub fn profile_list() -> i32 {
    let search = Search::standard();
    for (name, origin) in search.list() {
        let description = search.load(&name).map(|p| p.description).unwrap_or_else(|e| format!("invalid: {e}"));
        println!("{name:<10} {description}\n{:<10} [{origin}]", "");
    }
    0
}

/// `cordon doctor`.
pub fn doctor(json: bool) -> i32 {
    let f = Features::detect();
    if json {
        println!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
    } else {
        print!("{}", explain::doctor(&f));
    }
    0
}
