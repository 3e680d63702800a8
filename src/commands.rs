//! The commands of the `cordon` binary that stand on the sandbox crate alone.

use sandbox::explain;
use sandbox::{Features, Policy, Refusal, Request, Search};
use std::path::PathBuf;

fn refuse(r: &Refusal) -> i32 {
    eprintln!("cordon: {r}");
    r.exit_code()
}

fn resolve(profile: &str, workspace: Option<PathBuf>, command: Vec<String>, inspect: bool, hide: Vec<PathBuf>) -> Result<Policy, Refusal> {
    let profile = Search::standard().load(profile)?;
    let mut req = Request::from_process(workspace, command);
    req.inspect = inspect;
    req.hide.extend(hide);
    Policy::resolve(&profile, &req)
}

/// `cordon sandbox`: the confined command's status, or a refusal's code.
pub fn sandbox(profile: &str, workspace: Option<PathBuf>, print_policy: bool, hide: Vec<PathBuf>, command: Vec<String>) -> i32 {
    let policy = match resolve(profile, workspace, command, false, hide) {
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
    match resolve(profile, workspace, Vec::new(), true, Vec::new()) {
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
    match resolve(profile, workspace, Vec::new(), true, Vec::new()) {
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
