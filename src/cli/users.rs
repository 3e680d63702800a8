//! `cordon user ...`, `cordon user key ...`, `cordon token ...`: users, their keys and API
//! tokens, through the service.

use super::{fail, tryc, Admin};
use crate::auth::Role;

pub fn user_add(a: &Admin, name: &str, role: Role, keys: &[String]) -> i32 {
    let (u, added) = match a.svc.add_user(&a.me, name, role, keys) {
        Ok(v) => v,
        Err(e) => {
            let code = crate::cli::fail(e);
            // Nothing was changed; a user who exists gets keys with `user key add`.
            let exists = a
                .svc
                .users(&a.me)
                .is_ok_and(|us| us.iter().any(|u| u.user.name == name));
            if exists {
                eprintln!(
                    "to give {} another key: cordon user key add {} \"$(cat KEY.pub)\"",
                    crate::text::printable(name),
                    crate::text::printable(name)
                );
            }
            return code;
        }
    };
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
        println!(
            "{}",
            crate::text::json(&serde_json::to_string_pretty(&list).unwrap_or_default())
        );
        return 0;
    }
    if users.is_empty() {
        println!("no users yet: cordon user add NAME --role admin --key \"$(cat ~/.ssh/id_ed25519.pub)\"");
        return 0;
    }
    println!(
        "{:<20} {:<6} {:<10} {:<7} {:<5} created",
        "user", "id", "role", "state", "keys"
    );
    for u in users {
        let state = if u.user.locked { "locked" } else { "active" };
        println!(
            "{:<20} {:<6} {:<10} {:<7} {:<5} {}",
            u.user.name,
            u.user.id,
            u.user.role.name(),
            state,
            u.keys,
            u.user.created
        );
    }
    0
}

pub fn user_remove(a: &Admin, name: &str) -> i32 {
    tryc!(a.svc.remove_user(&a.me, name));
    println!("removed user {name}: keys and tokens revoked, sessions ended, home and workspaces moved aside");
    0
}

pub fn user_role(a: &Admin, name: &str, role: Role) -> i32 {
    let before = tryc!(a.svc.users(&a.me))
        .into_iter()
        .find(|u| u.user.name == name)
        .map(|u| u.user.role);
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
    if crate::store::parse_key_line(line)
        .map(|(_, options)| options)
        .unwrap_or(false)
    {
        println!("note: authorized_keys options on that line are ignored; cordon applies its own restrictions");
    }
    0
}

pub fn key_list(a: &Admin, name: &str, json: bool) -> i32 {
    let keys = tryc!(a.svc.keys(&a.me, name));
    if json {
        println!(
            "{}",
            crate::text::json(&serde_json::to_string_pretty(&keys).unwrap_or_default())
        );
    } else {
        for k in keys {
            // The comment is whatever the key's line said.
            println!(
                "{} {} {} (added {})",
                k.fingerprint,
                k.algorithm,
                crate::text::printable(&k.comment),
                k.added
            );
        }
    }
    0
}

pub fn key_remove(a: &Admin, name: &str, fingerprint: &str) -> i32 {
    let k = tryc!(a.svc.remove_key(&a.me, name, fingerprint));
    println!("removed key {} from {name}", k.fingerprint);
    0
}

/// `cordon token issue USER`: an API token pair for a user, from the host's shell.
pub fn token_issue(a: &Admin, name: &str) -> i32 {
    let pair = tryc!(a.svc.issue_token(&a.me, name, "cli"));
    println!(
        "{}",
        serde_json::to_string_pretty(&pair).unwrap_or_default()
    );
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
