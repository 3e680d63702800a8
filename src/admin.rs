//! `cordon user ...`, `cordon token ...`, `cordon key ...`: administration from the host's
//! shell. Whoever can open the data directory (mode 0700) administers cordon; these commands
//! act through the service layer as the host's own shell (a local-admin principal,
//! `local:<account>` in the audit log), so that each rule and each audit event is the one
//! every other face goes through.

use crate::audit;
use crate::auth::Role;
use crate::paths::DataDir;
use crate::service::{Principal, Service};
use std::io::Write;
use std::sync::Arc;

/// The service, and the host's shell as its caller.
pub struct Admin {
    pub svc: Arc<Service>,
    pub me: Principal,
}

impl Admin {
    pub fn open(dir: DataDir, config: Option<&std::path::Path>) -> Result<Admin, String> {
        let config = crate::config::Config::load(config, &dir.root)?;
        let (svc, tightened) = Service::open(dir, config)?;
        for t in tightened {
            eprintln!("cordon: tightened: {t}");
        }
        Ok(Admin { svc, me: Principal::local_admin() })
    }
}

/// The name of the OS account running this process.
pub fn local_account() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    crate::tui::socket::account(uid).unwrap_or_else(|| format!("uid{uid}"))
}

fn fail(e: impl std::fmt::Display) -> i32 {
    eprintln!("cordon: {}", crate::text::printable_lines(&e.to_string()));
    1
}

macro_rules! tryc {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return fail(e),
        }
    };
}

pub fn user_add(a: &Admin, name: &str, role: Role, keys: &[String]) -> i32 {
    let (u, added) = tryc!(a.svc.add_user(&a.me, name, role, keys));
    println!("added user {} ({})", u.name, u.role);
    for k in added {
        println!("added key {} ({}) for {name}", k.fingerprint, k.algorithm);
    }
    0
}

pub fn user_list(a: &Admin, json: bool) -> i32 {
    let users = tryc!(a.svc.users(&a.me));
    if json {
        let list: Vec<&crate::store::User> = users.iter().map(|u| &u.user).collect();
        println!("{}", crate::text::json(&serde_json::to_string_pretty(&list).unwrap_or_default()));
        return 0;
    }
    if users.is_empty() {
        println!("no users yet: cordon user add NAME --role admin --key \"$(cat ~/.ssh/id_ed25519.pub)\"");
        return 0;
    }
    println!("{:<20} {:<6} {:<10} {:<7} {:<5} created", "user", "id", "role", "state", "keys");
    for u in users {
        let state = if u.user.locked { "locked" } else { "active" };
        println!("{:<20} {:<6} {:<10} {:<7} {:<5} {}", u.user.name, u.user.id, u.user.role.name(), state, u.keys, u.user.created);
    }
    0
}

pub fn user_remove(a: &Admin, name: &str) -> i32 {
    tryc!(a.svc.remove_user(&a.me, name));
    println!("removed user {name}: keys and tokens revoked, sessions ended, home and workspaces moved aside");
    0
}

pub fn user_role(a: &Admin, name: &str, role: Role) -> i32 {
    let before = tryc!(a.svc.users(&a.me)).into_iter().find(|u| u.user.name == name).map(|u| u.user.role);
    tryc!(a.svc.set_role(&a.me, name, role));
    match before {
        Some(r) => println!("{name}: {r} -> {role}"),
        None => println!("{name}: {role}"),
    }
    0
}

pub fn user_lock(a: &Admin, name: &str, locked: bool) -> i32 {
    tryc!(a.svc.set_locked(&a.me, name, locked));
    println!(
        "{name} is {}",
        if locked {
            "locked: logins are refused, API tokens revoked; a running host ends their sessions, commands and connections within a second"
        } else {
            "unlocked"
        }
    );
    0
}

/// Sets a user's password from the first line of standard input (or clears it).
pub fn user_passwd(a: &Admin, name: &str, clear: bool) -> i32 {
    if clear {
        tryc!(a.svc.set_password(&a.me, name, None));
        println!("{name} has no password now");
        return 0;
    }
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() || line.is_empty() {
        return fail("give the new password on standard input (one line)");
    }
    let password = line.trim_end_matches(['\n', '\r']);
    tryc!(a.svc.set_password(&a.me, name, Some(password)));
    println!("password set for {name} (used only when ssh.password_login = true)");
    0
}

pub fn key_add(a: &Admin, name: &str, line: &str) -> i32 {
    let k = tryc!(a.svc.add_key(&a.me, name, line));
    println!("added key {} ({}) for {name}", k.fingerprint, k.algorithm);
    if crate::store::parse_key_line(line).map(|(_, options)| options).unwrap_or(false) {
        println!("note: authorized_keys options on that line are ignored; cordon applies its own restrictions");
    }
    0
}

pub fn key_list(a: &Admin, name: &str, json: bool) -> i32 {
    let keys = tryc!(a.svc.keys(&a.me, name));
    if json {
        println!("{}", crate::text::json(&serde_json::to_string_pretty(&keys).unwrap_or_default()));
    } else {
        for k in keys {
            // The comment is whatever the key's line said.
            println!("{} {} {} (added {})", k.fingerprint, k.algorithm, crate::text::printable(&k.comment), k.added);
        }
    }
    0
}

pub fn key_remove(a: &Admin, name: &str, fingerprint: &str) -> i32 {
    let k = tryc!(a.svc.remove_key(&a.me, name, fingerprint));
    println!("removed key {} from {name}", k.fingerprint);
    0
}

/// `cordon audit verify [--against COPY]`: 0 when the chain holds, 1 naming the first bad
/// line (or the first event a forwarded copy holds and the log lacks) otherwise. It reads
/// the files itself, without opening the log for writing: it must work on a broken log.
pub fn audit_verify(dir: &DataDir, against: Option<&std::path::Path>) -> i32 {
    let log = dir.audit_log();
    let key = match std::fs::read(dir.audit_key()) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !log.exists() => {
            println!("no audit log yet at {}", log.display());
            return 0;
        }
        Err(e) => return fail(format!("reading {}: {e}", dir.audit_key().display())),
    };
    // The event the host last saw, if it has recorded one: a log cut or replaced together
    // with its head still falls short of it.
    let checkpoint = crate::store::Store::open(&dir.database()).ok().and_then(|s| s.audit_checkpoint().ok().flatten());
    let verdict = audit::verify_log(&log, &key, checkpoint);
    let mut code = 0;
    match &verdict {
        Ok(p) => println!("ok: {} events, chain intact to event {} ({})", p.events, p.seq, log.display()),
        Err(b) => {
            println!("BROKEN: {}", crate::text::printable(&b.to_string()));
            code = 1;
        }
    }
    if let Some(copy) = against {
        match audit::chain::verify_against(&log, copy) {
            Ok(n) => println!("ok: the {n} events of {} are all in the log", copy.display()),
            Err(b) => {
                println!("BROKEN: {}", crate::text::printable(&b.to_string()));
                code = 1;
            }
        }
    }
    code
}

/// `cordon audit tail`: the last `n` events, then (with `follow`) new ones as they come.
pub fn audit_tail(dir: &DataDir, n: usize, follow: bool, json: bool) -> i32 {
    // Events hold what users and sessions typed (commands, labels, names): escaped.
    let show = |v: &serde_json::Value| {
        if json {
            println!("{}", crate::text::json(&v.to_string()));
        } else {
            let mut extra: Vec<String> = Vec::new();
            if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    if !matches!(k.as_str(), "seq" | "time" | "event" | "actor" | "prev" | "mac") {
                        let val = val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string());
                        extra.push(format!("{}={}", crate::text::printable(k), crate::text::printable(&val)));
                    }
                }
            }
            let s = |k: &str| crate::text::printable(v.get(k).and_then(|x| x.as_str()).unwrap_or("")).into_owned();
            println!("{} {:<16} {:<20} {}", s("time"), s("event"), s("actor"), extra.join(" "));
        }
        let _ = std::io::stdout().flush();
    };
    // Read from the end of the log, however long it is.
    let seq = |v: &serde_json::Value| v.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
    let latest = |n: usize| audit::read::latest(&dir.audit_log(), n, None, u64::MAX);
    let mut seen = 0;
    for v in latest(n).iter().rev() {
        show(v);
        seen = seen.max(seq(v));
    }
    if !follow {
        return 0;
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let mut fresh: Vec<serde_json::Value> = latest(1000).into_iter().take_while(|v| seq(v) > seen).collect();
        fresh.reverse();
        for v in &fresh {
            show(v);
            seen = seen.max(seq(v));
        }
    }
}

/// `cordon token issue USER`: an API token pair for a user, from the host's shell.
pub fn token_issue(a: &Admin, name: &str) -> i32 {
    let pair = tryc!(a.svc.issue_token(&a.me, name, "cli"));
    println!("{}", serde_json::to_string_pretty(&pair).unwrap_or_default());
    0
}

/// `cordon token rotate`: new tokens are signed with a new key; older ones stay valid until
/// they expire.
pub fn token_rotate(a: &Admin) -> i32 {
    let kid = tryc!(a.svc.rotate_token_key(&a.me));
    println!(
        "API tokens are now signed with key {kid}; a running host uses it at once (tokens signed before stay valid until they expire)"
    );
    0
}
