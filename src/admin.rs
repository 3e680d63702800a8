//! `cordon user ...` and `cordon audit ...`: administration from the host's command line.
//! Whoever can open the data directory (mode 0700) administers cordon; every change is
//! recorded in the audit log with the local account that made it.

use crate::audit::{self, AuditEvent, AuditLog};
use crate::auth::Role;
use crate::paths::DataDir;
use crate::store::Store;
use std::io::Write;

/// The state an administrative command works on.
pub struct Admin {
    pub dir: DataDir,
    pub store: Store,
    pub audit: AuditLog,
    /// `local:<account>`: who is at the keyboard.
    pub actor: String,
}

impl Admin {
    pub fn open(dir: DataDir) -> Result<Admin, String> {
        dir.ensure()?;
        let store = Store::open(&dir.database()).map_err(|e| e.to_string())?;
        let key = crate::secrets::load_or_create_key(&dir.audit_key())?;
        let audit = AuditLog::open(&dir.audit_log(), key)?;
        Ok(Admin { dir, store, audit, actor: format!("local:{}", local_account()) })
    }

    fn record(&self, event: AuditEvent) -> Result<(), String> {
        self.audit.record(event)
    }
}

/// The name of the OS account running this process.
pub fn local_account() -> String {
    // SAFETY: getpwuid returns static storage or null; read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return format!("uid{}", libc::geteuid());
        }
        std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned()
    }
}

fn fail(e: impl std::fmt::Display) -> i32 {
    eprintln!("cordon: {e}");
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
    let u = tryc!(a.store.add_user(name, role));
    tryc!(a.record(AuditEvent::new("user.add", &a.actor).with("user", name).with("role", role.name())));
    println!("added user {} ({})", u.name, u.role);
    for line in keys {
        let code = key_add(a, name, line);
        if code != 0 {
            return code;
        }
    }
    0
}

pub fn user_list(a: &Admin, json: bool) -> i32 {
    let users = tryc!(a.store.users());
    if json {
        println!("{}", serde_json::to_string_pretty(&users).unwrap_or_default());
        return 0;
    }
    if users.is_empty() {
        println!("no users yet: cordon user add NAME --role admin --key \"$(cat ~/.ssh/id_ed25519.pub)\"");
        return 0;
    }
    println!("{:<20} {:<10} {:<7} {:<5} created", "user", "role", "state", "keys");
    for u in users {
        let keys = a.store.keys(&u.name).map(|k| k.len()).unwrap_or(0);
        println!("{:<20} {:<10} {:<7} {:<5} {}", u.name, u.role.name(), if u.locked { "locked" } else { "active" }, keys, u.created);
    }
    0
}

pub fn user_remove(a: &Admin, name: &str) -> i32 {
    let u = tryc!(a.store.existing(name));
    if u.role == Role::Admin && !u.locked && a.store.count_admins().unwrap_or(0) <= 1 {
        return fail(format!("\"{name}\" is the last active admin; add another admin first"));
    }
    tryc!(a.store.remove_user(name));
    tryc!(a.record(AuditEvent::new("user.remove", &a.actor).with("user", name)));
    println!("removed user {name} and their keys");
    0
}

pub fn user_role(a: &Admin, name: &str, role: Role) -> i32 {
    let u = tryc!(a.store.existing(name));
    if u.role == Role::Admin && role != Role::Admin && !u.locked && a.store.count_admins().unwrap_or(0) <= 1 {
        return fail(format!("\"{name}\" is the last active admin; add another admin first"));
    }
    tryc!(a.store.set_role(name, role));
    tryc!(a.record(AuditEvent::new("user.role", &a.actor).with("user", name).with("from", u.role.name()).with("to", role.name())));
    println!("{name}: {} -> {role}", u.role);
    0
}

pub fn user_lock(a: &Admin, name: &str, locked: bool) -> i32 {
    tryc!(a.store.existing(name));
    tryc!(a.store.set_locked(name, locked));
    if locked {
        tryc!(a.store.revoke_user_tokens(name, crate::api::tokens::now()));
    }
    tryc!(a.record(AuditEvent::new(if locked { "user.lock" } else { "user.unlock" }, &a.actor).with("user", name)));
    println!(
        "{name} is {}",
        if locked {
            "locked: logins are refused, API tokens revoked; a running host ends their sessions within seconds"
        } else {
            "unlocked"
        }
    );
    0
}

/// Sets a user's password from the first line of standard input (or clears it).
pub fn user_passwd(a: &Admin, name: &str, clear: bool) -> i32 {
    tryc!(a.store.existing(name));
    if clear {
        tryc!(a.store.set_password(name, None));
        tryc!(a.record(AuditEvent::new("user.password.clear", &a.actor).with("user", name)));
        println!("{name} has no password now");
        return 0;
    }
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() || line.is_empty() {
        return fail("give the new password on standard input (one line)");
    }
    let password = line.trim_end_matches(['\n', '\r']);
    tryc!(crate::auth::password::check_policy(name, password));
    let phc = tryc!(crate::auth::password::hash(password));
    tryc!(a.store.set_password(name, Some(&phc)));
    tryc!(a.record(AuditEvent::new("user.password.set", &a.actor).with("user", name)));
    println!("password set for {name} (used only when ssh.password_login = true)");
    0
}

pub fn key_add(a: &Admin, name: &str, line: &str) -> i32 {
    let (k, had_options) = tryc!(a.store.add_key(name, line));
    tryc!(a.record(
        AuditEvent::new("key.add", &a.actor)
            .with("user", name)
            .with("fingerprint", k.fingerprint.clone())
            .with("algorithm", k.algorithm.clone())
    ));
    println!("added key {} ({}) for {name}", k.fingerprint, k.algorithm);
    if had_options {
        println!("note: authorized_keys options on that line are ignored; cordon applies its own restrictions");
    }
    0
}

pub fn key_list(a: &Admin, name: &str, json: bool) -> i32 {
    tryc!(a.store.existing(name));
    let keys = tryc!(a.store.keys(name));
    if json {
        println!("{}", serde_json::to_string_pretty(&keys).unwrap_or_default());
    } else {
        for k in keys {
            println!("{} {} {} (added {})", k.fingerprint, k.algorithm, k.comment, k.added);
        }
    }
    0
}

pub fn key_remove(a: &Admin, name: &str, fingerprint: &str) -> i32 {
    let k = tryc!(a.store.remove_key(name, fingerprint));
    tryc!(a.record(AuditEvent::new("key.remove", &a.actor).with("user", name).with("fingerprint", k.fingerprint.clone())));
    println!("removed key {} from {name}", k.fingerprint);
    0
}

/// `cordon audit verify`: 0 when the chain holds, 1 naming the first bad line otherwise.
pub fn audit_verify(dir: &DataDir) -> i32 {
    let key = match std::fs::read(dir.audit_key()) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.audit_log().exists() => {
            println!("no audit log yet at {}", dir.audit_log().display());
            return 0;
        }
        Err(e) => return fail(format!("reading {}: {e}", dir.audit_key().display())),
    };
    match audit::verify_file(&dir.audit_log(), &key, Some(&dir.audit_log().with_extension("head"))) {
        Ok((n, _)) => {
            println!("ok: {} events, chain intact ({})", n, dir.audit_log().display());
            0
        }
        Err(b) => {
            println!("BROKEN at line {}: {}", b.line, b.reason);
            1
        }
    }
}

/// `cordon audit tail`: the last `n` events, then (with `follow`) new ones as they come.
pub fn audit_tail(dir: &DataDir, n: usize, follow: bool, json: bool) -> i32 {
    let show = |v: &serde_json::Value| {
        if json {
            println!("{v}");
        } else {
            let mut extra: Vec<String> = Vec::new();
            if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    if !matches!(k.as_str(), "seq" | "time" | "event" | "actor" | "prev" | "mac") {
                        extra.push(format!("{k}={}", val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string())));
                    }
                }
            }
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            println!("{} {:<16} {:<20} {}", s("time"), s("event"), s("actor"), extra.join(" "));
        }
        let _ = std::io::stdout().flush();
    };
    let events = audit::read_events(&dir.audit_log());
    let mut seen = events.len();
    for v in events.iter().skip(events.len().saturating_sub(n)) {
        show(v);
    }
    if !follow {
        return 0;
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let events = audit::read_events(&dir.audit_log());
        for v in events.iter().skip(seen) {
            show(v);
        }
        seen = events.len().max(seen);
    }
}

/// `cordon token issue USER`: an API token pair for a user, from the host's shell.
pub fn token_issue(a: &Admin, name: &str, config: Option<&std::path::Path>) -> i32 {
    let user = tryc!(a.store.existing(name));
    if user.locked {
        return fail(format!("{name} is locked"));
    }
    let config = tryc!(crate::config::Config::load(config, &a.dir.root));
    let tokens = tryc!(crate::api::tokens::Tokens::open(&a.dir, &config.api_signing));
    let pair = tryc!(tokens.pair(&a.store, name, None));
    tryc!(a.record(AuditEvent::new("token.issue", &a.actor).with("user", name).with("via", "cli")));
    println!("{}", serde_json::to_string_pretty(&pair).unwrap_or_default());
    0
}

/// `cordon token rotate`: new tokens are signed with a new key; older ones stay valid until
/// they expire.
pub fn token_rotate(a: &Admin, config: Option<&std::path::Path>) -> i32 {
    let config = tryc!(crate::config::Config::load(config, &a.dir.root));
    let kid = tryc!(crate::api::tokens::Tokens::rotate(&a.dir, &config.api_signing));
    tryc!(a.record(AuditEvent::new("token.rotate_key", &a.actor).with("kid", kid.clone())));
    println!(
        "API tokens are now signed with key {kid}; restart `cordon serve` to use it (tokens signed before stay valid until they expire)"
    );
    0
}
